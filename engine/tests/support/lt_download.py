#!/usr/bin/python3
"""Download one torrent with python3-libtorrent from a seeder on loopback, then exit.

Run it with Debian's /usr/bin/python3: the `python3` first on PATH on these machines cannot import
libtorrent (see /work/shared/INTEROP.md).

    lt_download.py TORRENT         --save-dir DIR --peer IP:PORT --listen 127.0.0.x:PORT --timeout SECS
                                   [--encryption rc4|plaintext] [--transport tcp|utp|utp-incoming]
    lt_download.py --magnet URI    --save-dir DIR --peer IP:PORT --listen 127.0.0.x:PORT --timeout SECS

The session has DHT, LSD, UPnP, NAT-PMP, the IP notifier and uTP off, and allows several
connections per IP. `--transport utp` turns TCP off both ways and uTP on instead;
`--transport utp-incoming` (`tcp-incoming`) accepts uTP (TCP) only and connects out to nobody. The seeder at --peer,
if given, is dialled directly (again every few seconds while no peer is connected); the
torrent's own trackers are used as well.

Exit status: 0 once every wanted byte is downloaded and hash-checked (the torrent is finished or
seeding); 2 on timeout; 3 on a torrent or metadata error; 1 on bad arguments. Progress lines go to
stdout when state or peer count change, else every few seconds:
`progress <percent> state <state> peers <n> down <MB/s>`.
"""

import argparse
import os
import sys
import time

try:
    import libtorrent as lt
except ImportError as exc:  # environment problem, reported clearly
    sys.exit(
        f"lt_download.py: cannot import libtorrent ({exc}); install python3-libtorrent and run "
        f"with /usr/bin/python3 (this is {sys.executable})"
    )

RECONNECT_INTERVAL = 3.0
REPORT_INTERVAL = 5.0


def parse_addr(text):
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected IP:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def say(msg):
    print(msg, flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("torrent", nargs="?", help=".torrent file to download")
    src.add_argument("--magnet", metavar="URI", help="magnet link to download (metadata via BEP 9)")
    ap.add_argument("--save-dir", required=True, metavar="DIR")
    ap.add_argument("--peer", type=parse_addr, metavar="IP:PORT",
                    help="the seeder, dialled directly (without it, peers come from the "
                    "torrent's trackers only)")
    ap.add_argument("--listen", type=parse_addr, required=True, metavar="127.0.0.x:PORT",
                    help="this client's own address (use 127.0.0.x distinct from the seeder)")
    ap.add_argument("--timeout", type=float, required=True, metavar="SECS")
    ap.add_argument("--encryption", choices=["default", "rc4", "plaintext"], default="default",
                    help="force an MSE/PE handshake selecting RC4 or plaintext (default: "
                    "libtorrent's own policy)")
    ap.add_argument("--transport", choices=["tcp", "utp", "tcp-incoming", "utp-incoming"],
                    default="tcp",
                    help="the only transport used, both ways (default: tcp); *-incoming: only "
                    "connections the seeder opens over it (no outgoing connections at all)")
    args = ap.parse_args()

    start = time.monotonic()
    deadline = start + args.timeout
    host, port = args.listen
    os.makedirs(args.save_dir, exist_ok=True)

    ses = lt.session({
        "listen_interfaces": f"{host}:{port}",
        "outgoing_interfaces": host,
        "enable_dht": False,
        "dht_bootstrap_nodes": "",
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_ip_notifier": False,
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        "allow_multiple_connections_per_ip": True,
        "announce_to_all_trackers": True,
        "min_reconnect_time": 1,
        "alert_mask": lt.alert.category_t.error_notification
        | lt.alert.category_t.status_notification
        | lt.alert.category_t.tracker_notification,
        "user_agent": "lt_download/" + lt.__version__,
    })
    if args.transport == "tcp-incoming":
        ses.apply_settings({"enable_outgoing_tcp": False})
    elif args.transport != "tcp":
        ses.apply_settings({
            "enable_outgoing_tcp": False,
            "enable_incoming_tcp": False,
            "enable_outgoing_utp": args.transport == "utp",
            "enable_incoming_utp": True,
        })
    if args.encryption != "default":
        # pe_forced (0): only MSE/PE connections; allowed_enc_level 1 = plaintext, 2 = RC4.
        ses.apply_settings({
            "out_enc_policy": 0,
            "in_enc_policy": 0,
            "allowed_enc_level": 2 if args.encryption == "rc4" else 1,
            "prefer_rc4": args.encryption == "rc4",
        })

    if args.magnet:
        atp = lt.parse_magnet_uri(args.magnet)
        what = "magnet"
    else:
        atp = lt.add_torrent_params()
        atp.ti = lt.torrent_info(args.torrent)
        what = args.torrent
    atp.save_path = args.save_dir
    atp.flags &= ~lt.torrent_flags.auto_managed
    atp.flags &= ~lt.torrent_flags.paused
    h = ses.add_torrent(atp)
    if args.peer:
        h.connect_peer(args.peer)
        say(f"lt_download: added {what}, dialling {args.peer[0]}:{args.peer[1]} from "
            f"{host}:{port} over {args.transport}")
    else:
        say(f"lt_download: added {what}, listening on {host}:{port} over {args.transport}")

    last_dial = time.monotonic()
    last_report = 0.0
    last_shape = None
    errors = []
    while True:
        now = time.monotonic()
        for a in ses.pop_alerts():
            cat = a.category()
            if cat & lt.alert.category_t.error_notification:
                errors.append(a.message())
                say(f"lt_download: alert: {a.message()}")
            elif isinstance(a, (lt.tracker_reply_alert, lt.tracker_error_alert,
                                lt.metadata_received_alert)):
                say(f"lt_download: alert: {a.message()}")
        st = h.status()
        if st.errc.value() != 0:
            say(f"lt_download: FAILED: torrent error: {st.errc.message()}")
            return 3
        if st.has_metadata and (st.is_finished or st.is_seeding) \
                and st.state != lt.torrent_status.checking_files:
            h.pause()
            say(f"lt_download: done: {st.total_wanted} bytes in {now - start:.2f} s "
                f"({st.total_wanted / max(now - start, 1e-6) / 1e6:.1f} MB/s), "
                f"state {st.state}")
            # Wait briefly for the pause so libtorrent has released its files.
            pause_deadline = time.monotonic() + 5
            while time.monotonic() < pause_deadline:
                if any(isinstance(a, lt.torrent_paused_alert) for a in ses.pop_alerts()):
                    break
                time.sleep(0.05)
            return 0
        if now >= deadline:
            say(f"lt_download: FAILED: timeout after {args.timeout:.0f} s: progress "
                f"{st.progress * 100:.1f}% state {st.state} peers {st.num_peers} "
                f"metadata {st.has_metadata} downloaded {st.total_wanted_done} of "
                f"{st.total_wanted} bytes; last errors: {errors[-3:]}")
            return 2
        if args.peer and st.num_peers == 0 and now - last_dial >= RECONNECT_INTERVAL:
            h.connect_peer(args.peer)
            last_dial = now
        shape = (st.state, st.num_peers)
        if shape != last_shape or now - last_report >= REPORT_INTERVAL:
            last_shape = shape
            say(f"progress {st.progress * 100:.1f}% state {st.state} peers {st.num_peers} "
                f"down {st.download_rate / 1e6:.1f} MB/s")
            last_report = now
        time.sleep(0.05)


if __name__ == "__main__":
    sys.exit(main())
