#!/usr/bin/python3
"""Connect a TCP socket from a chosen local address, then run a program with it as stdin.

    dial_from.py SRC_IP DST_IP:PORT [--timeout SECS] -- PROGRAM [ARGS...]

The Rust standard library cannot bind the local address of an outgoing TCP connection, and the
benchmark crates forbid `unsafe` and carry no socket crate; this helper does the bind + connect and
then *execs* PROGRAM with the connected socket as file descriptor 0, so no byte is relayed through
Python (the sink leecher turns its stdin back into a `TcpStream`). Used by `sink_leecher --source`
to give every connection its own 127.0.0.x address, so that a seeder's per-IP rules (one connection
per IP in transmission, eight in seednode) do not bite.

Exit status: 111 when the connection cannot be made (the error goes to stderr); otherwise PROGRAM's.
Any Python 3 works (no third-party module).
"""

import os
import socket
import sys


def main():
    args = sys.argv[1:]
    if "--" not in args:
        sys.exit(__doc__)
    sep = args.index("--")
    opts, program = args[:sep], args[sep + 1:]
    timeout = 10.0
    if "--timeout" in opts:
        i = opts.index("--timeout")
        timeout = float(opts[i + 1])
        del opts[i:i + 2]
    if len(opts) != 2 or not program:
        sys.exit(__doc__)
    src, dst = opts
    host, _, port = dst.rpartition(":")
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((src, 0))
        sock.settimeout(timeout)
        sock.connect((host.strip("[]"), int(port)))
        sock.settimeout(None)  # back to a blocking descriptor before it is handed on
    except OSError as exc:
        print(f"dial_from.py: connecting {src} -> {dst}: {exc}", file=sys.stderr, flush=True)
        sys.exit(111)
    os.dup2(sock.fileno(), 0)  # dup2 makes fd 0 inheritable
    sock.close()
    try:
        os.execv(program[0], program)
    except OSError as exc:
        print(f"dial_from.py: exec {program[0]}: {exc}", file=sys.stderr, flush=True)
        sys.exit(111)


if __name__ == "__main__":
    main()
