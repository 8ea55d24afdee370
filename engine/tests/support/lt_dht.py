#!/usr/bin/python3
"""A python3-libtorrent DHT peer on loopback, for the DHT interop tests (BEP 5).

    lt_dht.py download MAGNET --save-dir DIR --bootstrap IP:PORT --listen 127.0.0.x:PORT --timeout S
    lt_dht.py seed TORRENT --save-dir DIR --bootstrap IP:PORT --listen 127.0.0.x:PORT --timeout S

The session has DHT on with the node under test as its only bootstrap node, and libtorrent's
restrictions on loopback and private addresses switched off (INTEROP.md); no trackers, LSD, UPnP,
NAT-PMP or uTP. `download` adds the magnet link (no `tr=`, no `x.pe=`) and exits 0 once the data is
complete; `seed` adds the torrent with its data, announces it to the DHT again every few seconds,
and runs until the timeout or SIGTERM (exit 0), printing `announced` once an announce succeeded.
Exit status 2 on timeout.
"""

import argparse
import signal
import sys
import time

import libtorrent as lt


def session(listen, bootstrap):
    s = lt.session({
        "listen_interfaces": listen,
        "enable_dht": True,
        "dht_bootstrap_nodes": bootstrap,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_ip_notifier": False,
        "enable_incoming_utp": False,
        "enable_outgoing_utp": False,
        "allow_multiple_connections_per_ip": True,
        "dht_restrict_routing_ips": False,
        "dht_restrict_search_ips": False,
        "dht_ignore_dark_internet": False,
        "dht_prefer_verified_node_ids": False,
        "dht_enforce_node_id": False,
        "dht_privacy_lookups": False,
        "dht_block_ratelimit": 100000,
        "dht_announce_interval": 5,
        "alert_mask": lt.alert.category_t.all_categories,
    })
    return s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["download", "seed"])
    ap.add_argument("source")
    ap.add_argument("--save-dir", required=True)
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--listen", required=True)
    ap.add_argument("--timeout", type=float, default=60)
    a = ap.parse_args()
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    s = session(a.listen, a.bootstrap)
    if a.mode == "download":
        p = lt.parse_magnet_uri(a.source)
        p.save_path = a.save_dir
        h = s.add_torrent(p)
    else:
        h = s.add_torrent({"ti": lt.torrent_info(a.source), "save_path": a.save_dir})
    deadline = time.time() + a.timeout
    announced = False
    last_force = 0.0
    while time.time() < deadline and not stop:
        for alert in s.pop_alerts():
            if isinstance(alert, lt.dht_reply_alert) and not announced:
                announced = True
                print("announced", flush=True)
            if isinstance(alert, (lt.dht_announce_alert, lt.dht_get_peers_alert, lt.peer_connect_alert,
                                  lt.dht_bootstrap_alert, lt.torrent_error_alert)):
                print("alert:", alert.message(), flush=True)
        st = h.status()
        if a.mode == "download" and st.is_seeding:
            print(f"done: {st.total_wanted} bytes", flush=True)
            return 0
        if time.time() - last_force > 3:
            last_force = time.time()
            h.force_dht_announce()
            for peer in h.get_peer_info():
                print(f"peer {peer.ip[0]}:{peer.ip[1]}", flush=True)
            print(f"status: {st.state} progress {st.progress:.3f} peers {st.num_peers}", flush=True)
        time.sleep(0.2)
    if stop:
        return 0
    print("timeout", flush=True)
    return 2 if a.mode == "download" else 0


if __name__ == "__main__":
    sys.exit(main())
