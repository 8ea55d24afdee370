#!/usr/bin/python3
"""python3-libtorrent over uTP only, for utp/tests/libtorrent_interop.rs.

    lt_utp.py seed DIR PORT     creates DIR/data (256 KiB, deterministic), seeds it on
                                127.0.0.1:PORT; prints "info-hash: <hex>", then "ready"
    lt_utp.py leech HASH PORT DIR
                                adds HASH (no metadata) and connects to 127.0.0.1:PORT over uTP;
                                prints "connecting"

TCP is off both ways (enable_outgoing_tcp / enable_incoming_tcp), so every connection is uTP.
Runs until stdin closes or 60 s pass. Run with /usr/bin/python3 (see /work/shared/INTEROP.md).
"""

import os
import random
import select
import sys
import time

import libtorrent as lt

PIECE_LENGTH = 32 * 1024
SIZE = 256 * 1024


def settings(port):
    return {
        "listen_interfaces": f"127.0.0.1:{port}",
        "outgoing_interfaces": "127.0.0.1",
        "enable_dht": False,
        "dht_bootstrap_nodes": "",
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_ip_notifier": False,
        "enable_outgoing_tcp": False,
        "enable_incoming_tcp": False,
        "enable_outgoing_utp": True,
        "enable_incoming_utp": True,
        "allow_multiple_connections_per_ip": True,
        # Plain BitTorrent handshakes (MSE is the peer session's business, not uTP's).
        "out_enc_policy": int(lt.enc_policy.disabled),
        "in_enc_policy": int(lt.enc_policy.enabled),
        "alert_mask": lt.alert.category_t.error_notification
        | lt.alert.category_t.status_notification
        | lt.alert.category_t.peer_notification,
    }


def wait_stdin_or_timeout(ses, secs=60):
    end = time.time() + secs
    while time.time() < end:
        r, _, _ = select.select([sys.stdin], [], [], 0.2)
        if r and not sys.stdin.read(1):
            return
        for a in ses.pop_alerts():
            print(f"lt_utp: {a.what()}: {a.message()}", file=sys.stderr, flush=True)


def seed(directory, port):
    path = os.path.join(directory, "data")
    rng = random.Random(29)
    with open(path, "wb") as f:
        f.write(bytes(rng.getrandbits(8) for _ in range(SIZE)))
    fs = lt.file_storage()
    lt.add_files(fs, path)
    ct = lt.create_torrent(fs, PIECE_LENGTH, flags=lt.create_torrent.v1_only)
    lt.set_piece_hashes(ct, directory)
    ti = lt.torrent_info(ct.generate())
    ses = lt.session(settings(port))
    h = ses.add_torrent({"ti": ti, "save_path": directory})
    print(f"info-hash: {ti.info_hashes().v1}", flush=True)
    end = time.time() + 30
    while not h.status().is_seeding and time.time() < end:
        time.sleep(0.05)
    print("ready" if h.status().is_seeding else "not-seeding", flush=True)
    wait_stdin_or_timeout(ses)


def leech(info_hash, port, directory):
    ses = lt.session(settings(0))
    atp = lt.add_torrent_params()
    atp.info_hashes = lt.info_hash_t(lt.sha1_hash(bytes.fromhex(info_hash)))
    atp.save_path = directory
    h = ses.add_torrent(atp)
    h.connect_peer(("127.0.0.1", port))
    print("connecting", flush=True)
    wait_stdin_or_timeout(ses)


if __name__ == "__main__":
    if sys.argv[1] == "seed":
        seed(sys.argv[2], int(sys.argv[3]))
    else:
        leech(sys.argv[2], int(sys.argv[3]), sys.argv[4])
