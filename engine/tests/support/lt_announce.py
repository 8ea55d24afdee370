#!/usr/bin/python3
"""Announce one torrent with python3-libtorrent to the trackers it names, and report the peers
the trackers gave; optionally download it through them (no peer is dialled directly).

Run it with Debian's /usr/bin/python3: the `python3` first on PATH on these machines cannot import
libtorrent (see /work/shared/INTEROP.md). Run each announcing peer in its own process: libtorrent
shares UDP tracker connection IDs across a process (INTEROP.md).

    lt_announce.py TORRENT --save-dir DIR --listen 127.0.0.x:PORT --timeout SECS
                   [--expect-peer IP]... [--upload-mode] [--download] [--exit-when-done]

The session has DHT, LSD, UPnP, NAT-PMP, the IP notifier, PEX-free loopback settings and uTP off,
so the torrent's trackers are the only way to find a peer. If DIR already holds the data, the
torrent is seeded (announced with left=0). `--upload-mode` keeps a leecher from requesting pieces,
so it stays a leecher (its `left` stays > 0).

While an `--expect-peer` IP has not been reported by a tracker, the torrent re-announces every
REANNOUNCE_INTERVAL seconds (ignoring the tracker's min interval).

Stdout, one flushed line each:
    tracker-reply <url> peers <n>        every tracker reply
    tracker-peer <ip>                    each peer address a tracker reported (first time only)
    tracker-error <url> <message>        every tracker error
    ok: learned <ip>... [downloaded <n> bytes]
                                          once every expected peer was reported (and, with
                                          --download, every wanted byte is downloaded and checked)

After `ok:` the session keeps running, announced and serving, until SIGTERM/SIGINT (exit 0) or
the timeout (exit 0), so that other peers can still learn of it and download from it; with
`--exit-when-done` it pauses the torrent and exits 0 at once. Without `ok:` by the timeout the
exit status is 2. A torrent error is exit 3, bad arguments exit 1.
"""

import argparse
import os
import re
import signal
import sys
import threading
import time

try:
    import libtorrent as lt
except ImportError as exc:  # environment problem, reported clearly
    sys.exit(
        f"lt_announce.py: cannot import libtorrent ({exc}); install python3-libtorrent and run "
        f"with /usr/bin/python3 (this is {sys.executable})"
    )

REANNOUNCE_INTERVAL = 2.0
# libtorrent's torrent log line listing the peers a tracker response added (libtorrent 2.0):
# `tracker add_peer() [ 127.0.0.45 127.0.0.1 ] connect-candidates: 2`.
ADD_PEER = re.compile(r"tracker add_peer\(\) \[ ([^\]]*)\]")

STOP = threading.Event()


def parse_addr(text):
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected IP:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def say(msg):
    print(msg, flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("torrent", help=".torrent file to announce")
    ap.add_argument("--save-dir", required=True, metavar="DIR")
    ap.add_argument("--listen", type=parse_addr, required=True, metavar="127.0.0.x:PORT",
                    help="this client's own address (a 127.0.0.x of its own)")
    ap.add_argument("--timeout", type=float, required=True, metavar="SECS")
    ap.add_argument("--expect-peer", action="append", default=[], metavar="IP",
                    help="an IP a tracker must report (repeatable)")
    ap.add_argument("--upload-mode", action="store_true", help="never request pieces")
    ap.add_argument("--download", action="store_true",
                    help="`ok:` also needs the whole torrent downloaded and hash-checked")
    ap.add_argument("--exit-when-done", action="store_true", help="exit 0 right after `ok:`")
    args = ap.parse_args()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: STOP.set())

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
        "announce_to_all_tiers": True,
        "min_reconnect_time": 1,
        "alert_mask": lt.alert.category_t.error_notification
        | lt.alert.category_t.status_notification
        | lt.alert.category_t.tracker_notification
        | lt.alert.category_t.torrent_log_notification,
        "user_agent": "lt_announce/" + lt.__version__,
    })

    atp = lt.add_torrent_params()
    atp.ti = lt.torrent_info(args.torrent)
    atp.save_path = args.save_dir
    atp.flags &= ~lt.torrent_flags.auto_managed
    atp.flags &= ~lt.torrent_flags.paused
    if args.upload_mode:
        atp.flags |= lt.torrent_flags.upload_mode
    h = ses.add_torrent(atp)
    trackers = [t.url for t in atp.ti.trackers()]
    say(f"lt_announce: added {args.torrent} from {host}:{port}, trackers {trackers}")

    learned = []
    expected = set(args.expect_peer)
    last_announce = time.monotonic()
    ok = False
    while not STOP.is_set():
        now = time.monotonic()
        for a in ses.pop_alerts():
            if isinstance(a, lt.torrent_log_alert):
                m = ADD_PEER.search(a.log_message())
                for ip in m.group(1).split() if m else []:
                    # Some trackers (opentracker) list the announcing peer itself.
                    if ip != host and ip not in learned:
                        learned.append(ip)
                        say(f"tracker-peer {ip}")
            elif isinstance(a, lt.tracker_reply_alert):
                say(f"tracker-reply {a.tracker_url()} peers {a.num_peers}")
            elif isinstance(a, lt.tracker_error_alert):
                say(f"tracker-error {a.tracker_url()} {a.message()}")
            elif a.category() & lt.alert.category_t.error_notification:
                say(f"lt_announce: alert: {a.message()}")
        st = h.status()
        if st.errc.value() != 0:
            say(f"lt_announce: FAILED: torrent error: {st.errc.message()}")
            return 3
        done = (not args.download) or (
            (st.is_finished or st.is_seeding) and st.state != lt.torrent_status.checking_files)
        if not ok and expected.issubset(learned) and done:
            extra = f" downloaded {st.total_wanted_done} bytes" if args.download else ""
            say(f"ok: learned {' '.join(learned) or '(none expected)'}{extra} "
                f"in {now - start:.2f} s")
            ok = True
            if args.exit_when_done:
                h.pause()
                # Wait briefly for the pause so libtorrent has released its files.
                pause_deadline = time.monotonic() + 5
                while time.monotonic() < pause_deadline:
                    if any(isinstance(a, lt.torrent_paused_alert) for a in ses.pop_alerts()):
                        break
                    time.sleep(0.05)
                return 0
        if now >= deadline:
            if ok:
                return 0
            say(f"lt_announce: FAILED: timeout after {args.timeout:.0f} s: learned {learned}, "
                f"expected {sorted(expected)}; state {st.state} progress "
                f"{st.progress * 100:.1f}% peers {st.num_peers}")
            return 2
        if not expected.issubset(learned) and now - last_announce >= REANNOUNCE_INTERVAL:
            h.force_reannounce(0, -1, lt.reannounce_flags_t.ignore_min_interval)
            last_announce = now
        STOP.wait(0.05)
    return 0 if ok else 2


if __name__ == "__main__":
    sys.exit(main())
