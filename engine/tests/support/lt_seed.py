#!/usr/bin/python3
"""Seed a file or directory with python3-libtorrent on one loopback address.

A reference seeder for benchmarks and for checking the interop harness against a known-good
implementation. Run it with Debian's /usr/bin/python3: the `python3` first on PATH on these machines
cannot import libtorrent (see /work/shared/INTEROP.md).

    lt_seed.py PATH --listen 127.0.0.1:PORT [--torrent FILE] [-o FILE] [--tracker URL]...
               [--piece-length N] [--shared-port] [--timeout SECS] [--utp]
    lt_seed.py PATH --create-only -o FILE [--tracker URL]... [--piece-length N]

Stdout follows the `seednode seed` contract, one line each, flushed:

    info-hash: <40 hex>
    magnet: magnet:?xt=urn:btih:<40 hex>&dn=<name>&tr=<announce>
    torrent: <path of the .torrent>
    listening: <addr>

Without `--torrent`, PATH is hashed (v1 only, no pad files) and the torrent is written to `-o FILE`,
or `PATH.torrent` beside PATH, announcing to `http://<listen>/announce` (and any `--tracker`).
With `--shared-port`, ADDR serves both the peer wire and a minimal HTTP tracker, as seednode does:
connections that start with `GET ` get a tracker answer naming ADDR as the only peer, everything else
is relayed to libtorrent on a private ephemeral port. Without it, libtorrent listens on ADDR itself.

Seeds until SIGINT/SIGTERM (exit 0) or `--timeout` seconds (exit 0). Progress goes to stderr.
`--create-only` writes the torrent (announcing only to the `--tracker` URLs) and exits.
"""

import argparse
import os
import signal
import socket
import sys
import threading
import time
import urllib.parse

try:
    import libtorrent as lt
except ImportError as exc:  # pragma: no cover - environment problem, reported clearly
    sys.exit(
        f"lt_seed.py: cannot import libtorrent ({exc}); install python3-libtorrent and run "
        f"with /usr/bin/python3 (this is {sys.executable})"
    )

STOP = threading.Event()


def log(msg):
    print(f"lt_seed: {msg}", file=sys.stderr, flush=True)


def parse_addr(text):
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected IP:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def session_settings(listen_host, listen_port, utp=False):
    return {
        "listen_interfaces": f"{listen_host}:{listen_port}",
        "outgoing_interfaces": listen_host,
        "enable_dht": False,
        "dht_bootstrap_nodes": "",
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_ip_notifier": False,
        "enable_outgoing_utp": utp,
        "enable_incoming_utp": utp,
        "enable_outgoing_tcp": not utp,
        "enable_incoming_tcp": not utp,
        "allow_multiple_connections_per_ip": True,
        "announce_to_all_trackers": True,
        "alert_mask": lt.alert.category_t.error_notification
        | lt.alert.category_t.status_notification,
        "user_agent": "lt_seed/" + lt.__version__,
    }


def make_torrent(path, out, trackers, piece_length):
    fs = lt.file_storage()
    lt.add_files(fs, path)
    if fs.num_files() == 0:
        sys.exit(f"lt_seed.py: nothing to seed under {path}")
    ct = lt.create_torrent(fs, piece_length, flags=lt.create_torrent.v1_only)
    for tier, url in enumerate(trackers):
        ct.add_tracker(url, tier)
    ct.set_creator("lt_seed.py (libtorrent " + lt.__version__ + ")")
    lt.set_piece_hashes(ct, os.path.dirname(os.path.abspath(path)))
    with open(out, "wb") as f:
        f.write(lt.bencode(ct.generate()))


# --- --shared-port: one address for peer wire and tracker, like seednode ----------------------


def tracker_reply(peer_host, peer_port):
    compact = socket.inet_aton(peer_host) + peer_port.to_bytes(2, "big")
    body = b"d8:completei1e10:incompletei0e8:intervali30e12:min intervali5e5:peers6:" + compact + b"e"
    head = (
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    return head + body


def pump(src, dst):
    try:
        while True:
            data = src.recv(1 << 18)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (dst, src):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def serve_conn(conn, public, backend):
    try:
        conn.settimeout(30)
        first = conn.recv(4, socket.MSG_PEEK)
        if first == b"GET ":
            buf = b""
            while b"\r\n\r\n" not in buf and len(buf) < 16384:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                buf += chunk
            conn.sendall(tracker_reply(*public))
            conn.close()
            return
        conn.settimeout(None)
        up = socket.create_connection(backend, timeout=10)
        up.settimeout(None)
        up.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=pump, args=(up, conn), daemon=True).start()
        pump(conn, up)
    except OSError as exc:
        log(f"front door connection error: {exc}")
        conn.close()


def front_door(listener, public, backend):
    while not STOP.is_set():
        try:
            conn, _ = listener.accept()
        except OSError:
            break
        threading.Thread(target=serve_conn, args=(conn, public, backend), daemon=True).start()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("path", help="file or directory to seed")
    ap.add_argument("--listen", type=parse_addr, metavar="IP:PORT")
    ap.add_argument("--torrent", help="seed this existing .torrent instead of hashing PATH")
    ap.add_argument("-o", "--output", help="where to write the .torrent (default PATH.torrent)")
    ap.add_argument("--tracker", action="append", default=[], metavar="URL")
    ap.add_argument("--piece-length", type=int, default=0, help="bytes; 0 lets libtorrent choose")
    ap.add_argument("--shared-port", action="store_true", help="peer wire + HTTP tracker on one port")
    ap.add_argument("--timeout", type=float, default=0, help="stop after SECS (0: never)")
    ap.add_argument("--utp", action="store_true",
                    help="peers over uTP only (BEP 29), TCP off both ways: the uTP benchmark's "
                    "reference seeder")
    ap.add_argument("--create-only", action="store_true", help="write the torrent and exit")
    args = ap.parse_args()

    path = os.path.abspath(args.path.rstrip("/"))
    if not os.path.exists(path):
        sys.exit(f"lt_seed.py: {path} does not exist")
    if args.create_only:
        if not args.output:
            sys.exit("lt_seed.py: --create-only needs -o FILE")
        make_torrent(path, os.path.abspath(args.output), args.tracker, args.piece_length)
        return 0
    if args.listen is None:
        sys.exit("lt_seed.py: --listen IP:PORT is required to seed")
    host, port = args.listen
    public = (host, port)

    listener = None
    if args.shared_port:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(public)
        listener.listen(128)
        probe = socket.socket()
        probe.bind((host, 0))
        lt_port = probe.getsockname()[1]
        probe.close()
    else:
        lt_port = port

    if args.torrent:
        torrent_path = os.path.abspath(args.torrent)
    else:
        torrent_path = os.path.abspath(args.output or path + ".torrent")
        make_torrent(path, torrent_path, [f"http://{host}:{port}/announce"] + args.tracker,
                     args.piece_length)

    ti = lt.torrent_info(torrent_path)
    name = os.path.basename(path)
    if ti.num_files() == 1 and not os.path.isdir(path) and ti.files().file_path(0) != name:
        ti.rename_file(0, name)

    ses = lt.session(session_settings(host, lt_port, args.utp))
    atp = lt.add_torrent_params()
    atp.ti = ti
    atp.save_path = os.path.dirname(path)
    atp.flags &= ~lt.torrent_flags.auto_managed
    atp.flags &= ~lt.torrent_flags.paused
    h = ses.add_torrent(atp)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: STOP.set())

    deadline = time.monotonic() + 120
    while True:
        st = h.status()
        if st.is_seeding:
            break
        if st.errc.value() != 0:
            sys.exit(f"lt_seed.py: torrent error: {st.errc.message()}")
        if st.state == lt.torrent_status.downloading or time.monotonic() > deadline or STOP.is_set():
            sys.exit(f"lt_seed.py: data does not match the torrent (state {st.state}, "
                     f"progress {st.progress:.3f})")
        time.sleep(0.05)

    if listener is not None:
        threading.Thread(target=front_door, args=(listener, public, (host, lt_port)),
                         daemon=True).start()

    ih = str(ti.info_hashes().v1) if hasattr(ti, "info_hashes") else str(ti.info_hash())
    print(f"info-hash: {ih}", flush=True)
    print(f"magnet: {lt.make_magnet_uri(ti)}", flush=True)
    print(f"torrent: {torrent_path}", flush=True)
    print(f"listening: {host}:{port}", flush=True)

    end = time.monotonic() + args.timeout if args.timeout > 0 else None
    last = 0.0
    while not STOP.is_set():
        if end is not None and time.monotonic() >= end:
            break
        for a in ses.pop_alerts():
            if a.category() & lt.alert.category_t.error_notification:
                log(a.message())
        now = time.monotonic()
        if now - last >= 2:
            st = h.status()
            log(f"peers {st.num_peers} up {st.upload_rate / 1e6:.1f} MB/s "
                f"total {st.all_time_upload / 1e6:.1f} MB")
            last = now
        STOP.wait(0.2)

    if listener is not None:
        listener.close()
    ses.pause()
    log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
