#!/usr/bin/python3
"""A bare BitTorrent `piece` sender, to compare ways of putting 16 KiB blocks on a socket.

    bare_seed.py FILE TORRENT --listen 127.0.0.1:PORT --mode split|more|cork [--connections N]

Not a seeder: it accepts N connections (one thread each), answers the handshake with the
torrent's info-hash, sends `have_all` (or a full bitfield) and `unchoke`, then serves every
`request` from FILE, ignoring everything else. It exists to measure, with `sink_leecher` as the
leecher, what the kernel spends per block in each of three send patterns (TCP_NODELAY is on in
all, as in seednode):

- split: `send(header)` then `sendfile(payload)`: the header leaves as its own segment
  (seednode's `--data-path sendfile` today: a 13-byte `writev`, then `sendfile`);
- more:  `send(header, MSG_MORE)` then `sendfile(payload)`: header and payload share a segment;
- cork:  `TCP_CORK` on, every request read in one `recv` answered (header + sendfile each),
  `TCP_CORK` off: the batch leaves in as few (64 KiB) segments as the kernel can build.

Python adds a few microseconds per block, the same in every mode; compare the modes' CPU per GB
and rate with each other, not with seednode. Exits after --timeout seconds (default 120).
"""

import argparse
import hashlib
import os
import socket
import struct
import sys
import threading
import time

HANDSHAKE_LEN = 68
PSTR = b"\x13BitTorrent protocol"


def bdecode_info_hash(data):
    """SHA-1 of the raw `info` value, and the piece length and total length (v1 single file)."""
    def parse(i):
        c = data[i:i + 1]
        if c == b"i":
            j = data.index(b"e", i)
            return int(data[i + 1:j]), j + 1
        if c == b"l":
            i += 1
            out = []
            while data[i:i + 1] != b"e":
                v, i = parse(i)
                out.append(v)
            return out, i + 1
        if c == b"d":
            i += 1
            out = {}
            while data[i:i + 1] != b"e":
                k, i = parse(i)
                start = i
                v, i = parse(i)
                out[k] = v
                if k == b"info":
                    out[b"__info_span"] = (start, i)
            return out, i + 1
        j = data.index(b":", i)
        n = int(data[i:j])
        return data[j + 1:j + 1 + n], j + 1 + n

    top, _ = parse(0)
    a, b = top[b"__info_span"]
    info = top[b"info"]
    return hashlib.sha1(data[a:b]).digest(), info[b"piece length"], info[b"length"], len(info[b"pieces"]) // 20


def recv_exact(conn, n):
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def serve(conn, fd, info_hash, piece_length, npieces, mode):
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    hs = recv_exact(conn, HANDSHAKE_LEN)
    reserved = bytearray(8)
    reserved[7] |= 0x04  # fast extension
    conn.sendall(PSTR + bytes(reserved) + info_hash + b"-BS0001-000000000000")
    fast = hs[27] & 0x04
    if fast:
        conn.sendall(struct.pack(">IB", 1, 14))  # have_all
    else:
        bits = bytearray((npieces + 7) // 8)
        for p in range(npieces):
            bits[p // 8] |= 0x80 >> (p % 8)
        conn.sendall(struct.pack(">IB", 1 + len(bits), 5) + bytes(bits))
    conn.sendall(struct.pack(">IB", 1, 1))  # unchoke
    buf = b""
    out = conn.fileno()
    while True:
        data = conn.recv(1 << 16)
        if not data:
            return
        buf += data
        reqs = []
        while len(buf) >= 4:
            (n,) = struct.unpack_from(">I", buf)
            if len(buf) < 4 + n:
                break
            body = buf[4:4 + n]
            buf = buf[4 + n:]
            if n == 13 and body[0] == 6:
                reqs.append(struct.unpack_from(">III", body, 1))
        if not reqs:
            continue
        if mode == "cork":
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
        for piece, begin, length in reqs:
            header = struct.pack(">IBII", 9 + length, 7, piece, begin)
            if mode == "more":
                conn.send(header, socket.MSG_MORE)
            else:
                conn.sendall(header)
            offset = piece * piece_length + begin
            left = length
            while left:
                sent = os.sendfile(out, fd, offset, left)
                if sent == 0:
                    raise ConnectionError("file ended")
                offset += sent
                left -= sent
        if mode == "cork":
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("file")
    ap.add_argument("torrent")
    ap.add_argument("--listen", required=True)
    ap.add_argument("--mode", choices=["split", "more", "cork"], required=True)
    ap.add_argument("--connections", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=120)
    args = ap.parse_args()
    info_hash, piece_length, _, npieces = bdecode_info_hash(open(args.torrent, "rb").read())
    host, _, port = args.listen.rpartition(":")
    lst = socket.socket()
    lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lst.bind((host, int(port)))
    lst.listen(64)
    print(f"listening: {args.listen}", flush=True)
    fd = os.open(args.file, os.O_RDONLY)

    def run(conn):
        try:
            serve(conn, fd, info_hash, piece_length, npieces, args.mode)
        except (ConnectionError, OSError):
            pass
        finally:
            conn.close()

    lst.settimeout(1.0)
    end = time.monotonic() + args.timeout
    while time.monotonic() < end:
        try:
            conn, _ = lst.accept()
        except socket.timeout:
            continue
        threading.Thread(target=run, args=(conn,), daemon=True).start()
    return 0


if __name__ == "__main__":
    sys.exit(main())
