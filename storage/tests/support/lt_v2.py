#!/usr/bin/python3
"""libtorrent 2.0.8 (Debian's python3-libtorrent) as an oracle for storage/tests/v2.rs.

    lt_v2.py info TORRENT             what libtorrent reads from a .torrent
    lt_v2.py check TORRENT SAVE_PATH  hash-checks the data under SAVE_PATH
    lt_v2.py create PATH PIECE_LEN (v2|hybrid) OUT   libtorrent's own torrent of PATH

Output is line-based, tab-separated (no JSON parser needed on the Rust side):
    key<TAB>value
    file<TAB>path<TAB>size<TAB>offset<TAB>pad(0|1)
"""
import sys
import time

import libtorrent as lt


def hex_or_none(h):
    s = str(h)
    return "none" if s.strip("0") == "" else s


def info(path):
    ti = lt.torrent_info(path)
    hashes = ti.info_hashes()
    print("v1\t%s" % hex_or_none(hashes.v1))
    print("v2\t%s" % hex_or_none(hashes.v2))
    print("name\t%s" % ti.name())
    print("piece_length\t%d" % ti.piece_length())
    print("num_pieces\t%d" % ti.num_pieces())
    print("last_piece_size\t%d" % ti.piece_size(ti.num_pieces() - 1))
    files = ti.files()
    for i in range(files.num_files()):
        pad = 1 if files.file_flags(i) & lt.file_storage.flag_pad_file else 0
        print("file\t%s\t%d\t%d\t%d" % (files.file_path(i), files.file_size(i),
                                        files.file_offset(i), pad))


def check(path, save_path):
    ses = lt.session({
        "listen_interfaces": "127.0.0.1:0",
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "alert_mask": lt.alert.category_t.status_notification | lt.alert.category_t.error_notification,
    })
    atp = lt.add_torrent_params()
    atp.ti = lt.torrent_info(path)
    atp.save_path = save_path
    atp.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
    h = ses.add_torrent(atp)
    deadline = time.time() + 60
    checked = False
    while time.time() < deadline and not checked:
        ses.wait_for_alert(500)
        for a in ses.pop_alerts():
            if isinstance(a, lt.torrent_checked_alert):
                checked = True
            elif isinstance(a, (lt.file_error_alert, lt.torrent_error_alert)):
                print("error\t%s" % a.message())
    s = h.status()
    print("checked\t%d" % (1 if checked else 0))
    print("have\t%d" % s.num_pieces)
    print("num_pieces\t%d" % h.torrent_file().num_pieces())
    print("seeding\t%d" % (1 if s.is_seeding else 0))


def create(path, piece_length, kind, out):
    import os
    fs = lt.file_storage()
    lt.add_files(fs, path)
    flags = lt.create_torrent.v2_only if kind == "v2" else 0
    ct = lt.create_torrent(fs, int(piece_length), flags=flags)
    lt.set_piece_hashes(ct, os.path.dirname(os.path.abspath(path)))
    with open(out, "wb") as f:
        f.write(lt.bencode(ct.generate()))


if __name__ == "__main__":
    cmd = sys.argv[1]
    {"info": info, "check": check, "create": create}[cmd](*sys.argv[2:])
