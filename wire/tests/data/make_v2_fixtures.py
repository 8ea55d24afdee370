#!/usr/bin/python3
"""Regenerates the BEP 52 fixtures in this directory with libtorrent 2.0.8 (Debian's
python3-libtorrent; run with /usr/bin/python3, see INTEROP.md):

    /usr/bin/python3 wire/tests/data/make_v2_fixtures.py wire/tests/data

The file contents come from `content(seed, len)`, the xorshift64* generator of
storage/tests/common/mod.rs, so wire/tests/v2_libtorrent.rs rebuilds the same bytes without
files. Prints the info-hashes and layouts libtorrent reports; the test pins them.
"""
import os
import sys
import tempfile

import libtorrent as lt

M = (1 << 64) - 1


def content(seed, n):
    s = ((seed * 0x9E3779B97F4A7C15) & M) | 1
    out = bytearray()
    while len(out) < n:
        s ^= s >> 12
        s ^= (s << 25) & M
        s ^= s >> 27
        out += ((s * 0x2545F4914F6CDD1D) & M).to_bytes(8, "little")
    return bytes(out[:n])


# (relative path, length, seed): pads of equal length twice (a.bin, sub/d.bin), an empty file, a
# file of exactly one block, and `x.txt` next to directory `x` (tree order puts x/y first).
TREE = [
    ("a.bin", 50000, 1),
    ("b.bin", 16384, 2),
    ("empty", 0, 0),
    ("sub/c.txt", 100, 3),
    ("sub/d.bin", 82768, 4),
    ("x.txt", 10, 5),
    ("x/y", 20000, 6),
]
SINGLE = ("single.bin", 70000, 9)


def make(base, target, flags, piece_length, out):
    fs = lt.file_storage()
    lt.add_files(fs, os.path.join(base, target))
    ct = lt.create_torrent(fs, piece_length, flags=flags)
    ct.set_creator("libtorrent 2.0.8 (make_v2_fixtures.py)")
    lt.set_piece_hashes(ct, base)
    entry = ct.generate()
    entry[b"creation date"] = 1700000000
    with open(out, "wb") as f:
        f.write(lt.bencode(entry))
    ti = lt.torrent_info(out)
    files = ti.files()
    print(os.path.basename(out), "v1", ti.info_hashes().v1, "v2", ti.info_hashes().v2,
          "pieces", ti.num_pieces())
    for i in range(files.num_files()):
        pad = bool(files.file_flags(i) & lt.file_storage.flag_pad_file)
        print("   ", files.file_path(i), files.file_size(i), files.file_offset(i),
              "pad" if pad else "")


def main(dest):
    base = tempfile.mkdtemp()
    for rel, n, seed in TREE:
        path = os.path.join(base, "tree", rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(content(seed, n))
    with open(os.path.join(base, SINGLE[0]), "wb") as f:
        f.write(content(SINGLE[2], SINGLE[1]))
    v2 = lt.create_torrent.v2_only
    make(base, "tree", v2, 32768, os.path.join(dest, "lt_v2_multi.torrent"))
    make(base, "tree", 0, 32768, os.path.join(dest, "lt_hybrid_multi.torrent"))
    make(base, SINGLE[0], v2, 16384, os.path.join(dest, "lt_v2_single.torrent"))
    make(base, SINGLE[0], 0, 16384, os.path.join(dest, "lt_hybrid_single.torrent"))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__)))
