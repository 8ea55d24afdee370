#!/usr/bin/python3
"""libtorrent's DHT (python3-libtorrent 2.0.8) measured the way `dht_memory` and the `dht`
criterion bench measure seednode's: memory per routing-table entry, per stored peer, and queries
answered per second. Everything stays on loopback; run it with Debian's /usr/bin/python3.

    lt_dht.py routing [--sessions K] [--depths D]
    lt_dht.py store   [--sessions K] [--per-info-hash 10|500]
    lt_dht.py flood   [--seconds S] [--node-cpu C] [--flood-cpu C] [--sources N]
                      [--seednode BIN]

Each subcommand starts a separate "node" process (`lt_dht.py node ...`) holding K libtorrent
sessions with only the DHT on (one UDP port each on 127.0.0.1, no bootstrap node, libtorrent's
loopback restrictions off and its rate limits raised, INTEROP.md), and reads that process's VmRSS
from /proc before and after filling its tables over the wire:

- routing: every session is told about simulated nodes (`session.add_dht_node`), libtorrent
  queries each one, this script answers from that node's own 127.20.x.y address with an ID at a
  chosen common-prefix length from the session's ID (128, 64, 32, 16 nodes for the first four
  buckets, libtorrent's `dht_extended_routing_table` sizes, then 8 per bucket), so each enters a
  live bucket the way a real node does. Counters `dht.dht_nodes` / `dht.dht_node_cache` give the
  entries held. RSS is read before, after the first half of the prefix lengths and at the end
  ("marginal" = the second half: 8 entries per bucket, no set-up cost in it).
- store: from 1 000 (or 500) source IPs (127.30.x.y) per session, `get_peers` then
  `announce_peer` with that token (libtorrent's tokens are bound to IP and info-hash) for 20
  info-hashes each, `ro` = 1, until `dht.dht_peers` shows every peer stored: 2 000 info-hashes x
  10 peers or 20 x 500 per session (libtorrent's `dht_max_torrents` / `dht_max_peers` defaults,
  the same limits as seednode's).
- flood: one session pinned to --node-cpu, its routing table holding 20 answering nodes and one
  stored peer; this process, pinned to --flood-cpu, sends the criterion bench's query mix (ping,
  find_node, get_peers for the stored info-hash, announce_peer with a bad token,
  sample_infohashes, in turn, `t` 2 bytes, querier ID 0x11 x 20) from N source addresses
  (127.42.x.y, --sources, default 16) as fast as it can for S seconds (after 1 s of warm-up)
  and counts replies; the node's CPU time comes from /proc/PID/stat, the datagrams it received
  from the kernel's drop counter for its socket (/proc/net/udp). Prints replies/s, replies per
  node CPU-second, user and system CPU microseconds per reply, and CPU microseconds per
  datagram received. `--seednode BIN` floods `BIN dht --listen 127.0.0.1:PORT` instead (its 20
  table nodes enter through the verification pings it sends to nodes that query it).

Output: Markdown table rows on stdout, progress on stderr. Flood rows: node | sources | seconds
| sent | received | replies | replies/s | node CPU-s | replies per CPU-s | user us per reply |
system us per reply | CPU us per datagram received.
"""

import argparse
import json
import os
import selectors
import socket
import subprocess
import sys
import time

BASE_PORT = 47100  # the first port tried; see free_base_port
SIM_PORT = 6881
QUERIER_ID = b"\x11" * 20
# Flood: default source sockets (libtorrent's per-IP limit is raised, so a few suffice) and
# queries sent between two drains of their replies.
SOURCES = 16
BATCH = 128
# libtorrent's bucket sizes with dht_extended_routing_table (routing_table::bucket_limit).
BUCKET_SIZES = [128, 64, 32, 16]


# ---------------------------------------------------------------------------------------------
# bencode
# ---------------------------------------------------------------------------------------------

def benc(x):
    if isinstance(x, int):
        return b"i%de" % x
    if isinstance(x, bytes):
        return b"%d:%s" % (len(x), x)
    if isinstance(x, str):
        return benc(x.encode())
    if isinstance(x, list):
        return b"l" + b"".join(benc(v) for v in x) + b"e"
    if isinstance(x, dict):
        items = sorted((k.encode() if isinstance(k, str) else k, v) for k, v in x.items())
        return b"d" + b"".join(benc(k) + benc(v) for k, v in items) + b"e"
    raise TypeError(type(x))


def bdec(data, i=0):
    c = data[i:i + 1]
    if c == b"i":
        j = data.index(b"e", i)
        return int(data[i + 1:j]), j + 1
    if c == b"l":
        out, i = [], i + 1
        while data[i:i + 1] != b"e":
            v, i = bdec(data, i)
            out.append(v)
        return out, i + 1
    if c == b"d":
        out, i = {}, i + 1
        while data[i:i + 1] != b"e":
            k, i = bdec(data, i)
            v, i = bdec(data, i)
            out[k] = v
        return out, i + 1
    j = data.index(b":", i)
    n = int(data[i:j])
    return data[j + 1:j + 1 + n], j + 1 + n


def decode(data):
    try:
        msg, _ = bdec(data)
        return msg if isinstance(msg, dict) else None
    except (ValueError, IndexError):
        return None


def query(t, method, args, ro=False):
    a = {"id": QUERIER_ID}
    a.update(args)
    msg = {"t": t, "y": "q", "q": method, "a": a}
    if ro:
        msg["ro"] = 1
    return benc(msg)


# ---------------------------------------------------------------------------------------------
# the node process
# ---------------------------------------------------------------------------------------------

def free_base_port(n):
    """The first port p >= BASE_PORT such that p..p+n are free for both TCP and UDP on
    127.0.0.1 (other benchmarks and tests share the machine)."""
    base = BASE_PORT
    while True:
        try:
            for port in range(base, base + n + 1):
                for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                    with socket.socket(socket.AF_INET, kind) as s:
                        s.bind(("127.0.0.1", port))
            return base
        except OSError:
            base += n + 1


def node_main(args):
    import libtorrent as lt

    sessions = []
    for i in range(args.sessions):
        port = args.base_port + i
        sessions.append(lt.session({
            "listen_interfaces": "127.0.0.1:%d" % port,
            "enable_dht": True,
            "dht_bootstrap_nodes": "",
            "enable_lsd": False,
            "enable_upnp": False,
            "enable_natpmp": False,
            "enable_ip_notifier": False,
            "enable_incoming_utp": False,
            "enable_outgoing_utp": False,
            "dht_restrict_routing_ips": False,
            "dht_restrict_search_ips": False,
            "dht_ignore_dark_internet": False,
            "dht_prefer_verified_node_ids": False,
            "dht_enforce_node_id": False,
            "dht_privacy_lookups": False,
            "dht_block_ratelimit": 1_000_000,
            "dht_upload_rate_limit": 1 << 30,
            "alert_mask": lt.alert.category_t.stats_notification,
        }))
    wanted = ["dht.dht_nodes", "dht.dht_node_cache", "dht.dht_torrents", "dht.dht_peers",
              "dht.dht_messages_in", "dht.dht_messages_out", "dht.dht_messages_in_dropped",
              "dht.dht_invalid_announce"]
    print("ready", flush=True)
    for line in sys.stdin:
        cmd = line.split()
        if not cmd:
            continue
        if cmd[0] == "add":  # add SESSION IP PORT
            sessions[int(cmd[1])].add_dht_node((cmd[2], int(cmd[3])))
        elif cmd[0] == "stats":
            out = []
            for s in sessions:
                s.post_session_stats()
                values = None
                deadline = time.time() + 5
                while values is None and time.time() < deadline:
                    s.wait_for_alert(500)
                    for a in s.pop_alerts():
                        if isinstance(a, lt.session_stats_alert):
                            values = a.values
                out.append({n: (values[n] if values else None) for n in wanted})
            print(json.dumps(out), flush=True)
        elif cmd[0] == "quit":
            break


class Node:
    """A `lt_dht.py node` child process."""

    def __init__(self, sessions, cpu=None):
        base = free_base_port(sessions)
        argv = [sys.executable, os.path.abspath(__file__), "node", "--sessions", str(sessions),
                "--base-port", str(base)]
        if cpu is not None:
            argv = ["taskset", "-c", str(cpu)] + argv
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)
        if self.proc.stdout.readline().strip() != "ready":
            raise SystemExit("node process did not start")
        self.ports = [base + i for i in range(sessions)]
        # taskset execs python in place, so the pid is the node's.
        self.pid = self.proc.pid

    def send(self, line):
        self.proc.stdin.write(line + "\n")

    def stats(self):
        self.send("stats")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def rss_kib(self):
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise SystemExit("no VmRSS")

    def cpu_seconds(self):
        """(user, system) CPU seconds of the whole process, all threads."""
        with open("/proc/%d/stat" % self.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        tck = os.sysconf("SC_CLK_TCK")
        return int(fields[11]) / tck, int(fields[12]) / tck

    def close(self):
        try:
            self.send("quit")
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        self.proc.wait(timeout=30)


def node_ids(node):
    """Each session's DHT node ID, from a ping reply."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.9.0.1", 0))
    s.settimeout(1.0)
    ids = []
    for port in node.ports:
        for _ in range(10):
            s.sendto(query(b"pi", "ping", {}, ro=True), ("127.0.0.1", port))
            try:
                data, _ = s.recvfrom(1500)
            except socket.timeout:
                continue
            msg = decode(data)
            if msg and msg.get(b"y") == b"r":
                ids.append(msg[b"r"][b"id"])
                break
        else:
            raise SystemExit("session on port %d does not answer ping" % port)
    s.close()
    return ids


def row(what, sessions, items, before, after):
    per = (after - before) * 1024 / items
    return "| %s | %d | %d | %d | %d | %.0f | %.1f | %.0f |" % (
        what, sessions, items, before, after, per, per * 1000 / 1024, per * 10000 / 1024)


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def settle(node, key, want, timeout=60):
    """Polls the node's counters until `key` summed over sessions stops changing (or = want)."""
    last, stable, deadline = None, 0, time.time() + timeout
    while time.time() < deadline:
        stats = node.stats()
        total = sum(s[key] for s in stats)
        if total == want:
            return stats
        stable = stable + 1 if total == last else 0
        if stable >= 3:
            return stats
        last = total
        time.sleep(1)
    return node.stats()


# ---------------------------------------------------------------------------------------------
# routing
# ---------------------------------------------------------------------------------------------

def sim_id(own, depth, j):
    """An ID sharing exactly `depth` leading bits with `own`; the rest pseudo-random."""
    rnd = int.from_bytes(
        bytes((depth * 131 + j * 31 + k * 7 + 5) % 251 for k in range(20)), "big")
    rnd = (rnd * 0x9E3779B97F4A7C15 + depth * 1000 + j) % (1 << 160)
    own_int = int.from_bytes(own, "big")
    keep = ((1 << 160) - 1) ^ ((1 << (160 - depth)) - 1)  # the first `depth` bits
    flip = 1 << (159 - depth)
    value = (own_int & keep) | ((own_int ^ flip) & flip) | (rnd & (flip - 1))
    return value.to_bytes(20, "big")


def routing_main(args):
    node = Node(args.sessions)
    ids = node_ids(node)
    sizes = [BUCKET_SIZES[d] if d < len(BUCKET_SIZES) else 8 for d in range(args.depths)]
    # Simulated node (depth, j) listens on 127.20.depth.j (j < 256) and answers every session.
    sel = selectors.DefaultSelector()
    socks = []
    for d, n in enumerate(sizes):
        for j in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.20.%d.%d" % (d, j), SIM_PORT))
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ, (d, j))
            socks.append(s)
    port_to_session = {p: i for i, p in enumerate(node.ports)}
    answered = [0]

    def serve(seconds):
        end = time.time() + seconds
        while True:
            left = end - time.time()
            if left <= 0:
                return
            for key, _ in sel.select(left):
                d, j = key.data
                while True:
                    try:
                        data, src = key.fileobj.recvfrom(1500)
                    except BlockingIOError:
                        break
                    msg = decode(data)
                    session = port_to_session.get(src[1])
                    if not msg or msg.get(b"y") != b"q" or session is None:
                        continue
                    r = {"id": sim_id(ids[session], d, j)}
                    if msg.get(b"q") in (b"get_peers", b"find_node"):
                        r["nodes"] = b""
                    if msg.get(b"q") == b"get_peers":
                        r["token"] = b"tokn"
                    key.fileobj.sendto(benc({"t": msg.get(b"t", b""), "y": "r", "r": r}), src)
                    answered[0] += 1

    serve(1)
    before = node.rss_kib()
    log("routing: %d sessions, offering %d nodes each over %d prefix lengths; RSS %d KiB"
        % (args.sessions, sum(sizes), args.depths, before))
    def offer(depths):
        batch = 0
        for d in depths:
            for j in range(sizes[d]):
                for i in range(args.sessions):
                    node.send("add %d 127.20.%d.%d %d" % (i, d, j, SIM_PORT))
                    batch += 1
                if batch >= 64:
                    node.proc.stdin.flush()
                    serve(0.05)
                    batch = 0
        node.proc.stdin.flush()
        serve(3)
        stats = node.stats()
        for _ in range(20):
            serve(2)
            again = node.stats()
            if [s["dht.dht_nodes"] for s in again] == [s["dht.dht_nodes"] for s in stats]:
                break
            stats = again
        serve(2)
        rss = node.rss_kib()
        nodes = sum(s["dht.dht_nodes"] for s in stats)
        cache = sum(s["dht.dht_node_cache"] for s in stats)
        log("routing: prefix lengths %s: %d answered so far; %d live entries, %d replacement "
            "entries; RSS %d KiB" % (depths, answered[0], nodes, cache, rss))
        return rss, nodes + cache

    half = args.depths // 2
    r1, e1 = offer(range(0, half))
    r2, e2 = offer(range(half, args.depths))
    print(row("libtorrent routing entries, from empty", args.sessions, e2, before, r2))
    print(row("libtorrent routing entries, marginal (2nd half)", args.sessions, e2 - e1, r1,
              r2))
    node.close()


# ---------------------------------------------------------------------------------------------
# store
# ---------------------------------------------------------------------------------------------

def store_main(args):
    node = Node(args.sessions)
    node_ids(node)
    time.sleep(1)
    per_ih = args.per_info_hash
    n_ih = 20 if per_ih >= 500 else 2000
    per_session = n_ih * per_ih
    ips = per_session // 20
    before = node.rss_kib()
    log("store: %d sessions x %d info-hashes x %d peers, %d source IPs each; RSS %d KiB"
        % (args.sessions, n_ih, per_ih, ips, before))

    def ih(session, j):
        return (b"%02d-%06d-" % (session, j)).ljust(20, b"x")

    # Work: (session, ip index, info-hash index); each needs get_peers then announce_peer.
    todo = [(sess, ip, (ip * 20 + k) % n_ih)
            for sess in range(args.sessions) for ip in range(ips) for k in range(20)]
    window = 128
    rounds = 0
    while todo and rounds < 10:
        rounds += 1
        failed = []
        # Group by source IP so each IP gets one socket.
        by_ip = {}
        for w in todo:
            by_ip.setdefault(w[1], []).append(w)
        items = list(by_ip.items())
        for start in range(0, len(items), window // 20 or 1):
            chunk = items[start:start + max(1, window // 20)]
            socks = {}
            for ip, works in chunk:
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
                s.bind(("127.30.%d.%d" % (ip >> 8, ip & 0xff), SIM_PORT))
                s.settimeout(0.0)
                socks[ip] = (s, works)
            # get_peers, one per (ip, info-hash, session); t = index in works.
            pending = {}
            for ip, (s, works) in socks.items():
                for n, (sess, _, j) in enumerate(works):
                    s.sendto(query(b"g%d" % n, "get_peers", {"info_hash": ih(sess, j)}, True),
                             ("127.0.0.1", node.ports[sess]))
                    pending[(ip, n)] = None
            tokens = collect(socks, pending, b"g")
            # announce_peer with the tokens.
            pending = {}
            for (ip, n), token in tokens.items():
                s, works = socks[ip]
                sess, _, j = works[n]
                s.sendto(query(b"a%d" % n, "announce_peer",
                               {"info_hash": ih(sess, j), "port": 6881, "token": token}, True),
                         ("127.0.0.1", node.ports[sess]))
                pending[(ip, n)] = None
            done = collect(socks, pending, b"a")
            for ip, (s, works) in socks.items():
                for n, w in enumerate(works):
                    if (ip, n) not in done:
                        failed.append(w)
                s.close()
        log("store: round %d: %d announces, %d to retry" % (rounds, len(todo), len(failed)))
        todo = failed
    stats = settle(node, "dht.dht_peers", per_session * args.sessions, timeout=10)
    time.sleep(1)
    after = node.rss_kib()
    peers = sum(s["dht.dht_peers"] for s in stats)
    torrents = sum(s["dht.dht_torrents"] for s in stats)
    nodes = sum(s["dht.dht_nodes"] + s["dht.dht_node_cache"] for s in stats)
    log("store: %d peers in %d info-hashes stored (routing entries %d); RSS %d KiB"
        % (peers, torrents, nodes, after))
    print(row("libtorrent stored peers, %d per info-hash" % per_ih, args.sessions, peers,
              before, after))
    node.close()


def collect(socks, pending, prefix, timeout=2.0):
    """Receives replies to `pending` (ip, n) keys; returns {key: token or True}."""
    got = {}
    sel = selectors.DefaultSelector()
    for ip, (s, _) in socks.items():
        sel.register(s, selectors.EVENT_READ, ip)
    end = time.time() + timeout
    while len(got) < len(pending) and time.time() < end:
        for key, _ in sel.select(0.2):
            ip = key.data
            while True:
                try:
                    data, _ = key.fileobj.recvfrom(1500)
                except BlockingIOError:
                    break
                msg = decode(data)
                if not msg or msg.get(b"y") != b"r":
                    continue
                t = msg.get(b"t", b"")
                if not t.startswith(prefix):
                    continue
                n = int(t[1:])
                r = msg.get(b"r", {})
                got[(ip, n)] = r.get(b"token", True) if prefix == b"g" else True
    sel.close()
    return got


# ---------------------------------------------------------------------------------------------
# flood
# ---------------------------------------------------------------------------------------------

def udp_drops(port):
    """Datagrams the kernel dropped at 127.0.0.1:`port` because its receive buffer was full
    (the `drops` column of /proc/net/udp)."""
    want = "0100007F:%04X" % port
    with open("/proc/net/udp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[1] == want:
                return int(fields[-1])
    return 0


def ask(sock, dst, t, method, args):
    """Sends a query and returns its reply's `r` (skipping the node's own queries to us)."""
    sock.sendto(query(t, method, args), dst)
    while True:
        msg = decode(sock.recvfrom(1500)[0])
        if msg and msg.get(b"t") == t and msg.get(b"y") in (b"r", b"e"):
            return msg.get(b"r", {})


class Seednode:
    """`seednode dht --listen 127.0.0.1:PORT` as the flooded node (same verbs as `Node`)."""

    def __init__(self, binary, cpu=None):
        self.state = "/tmp/lt_dht_seednode_state.%d" % os.getpid()
        base = free_base_port(1)
        argv = [binary, "dht", "--listen", "127.0.0.1:%d" % base, "--state", self.state]
        if cpu is not None:
            argv = ["taskset", "-c", str(cpu)] + argv
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        self.ports = [base]
        self.pid = self.proc.pid

    def send(self, line):
        pass

    def stats(self):
        return None

    rss_kib = Node.rss_kib
    cpu_seconds = Node.cpu_seconds

    def close(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        for suffix in ("", ".tmp"):
            try:
                os.unlink(self.state + suffix)
            except FileNotFoundError:
                pass


def flood_main(args):
    if args.seednode:
        node, name = Seednode(args.seednode, cpu=args.node_cpu), "seednode `dht`"
        time.sleep(0.5)
    else:
        node, name = Node(1, cpu=args.node_cpu), "libtorrent 2.0.8"
    if args.flood_cpu is not None:
        os.sched_setaffinity(0, {args.flood_cpu})
    (own,) = node_ids(node)
    port = node.ports[0]
    dst = ("127.0.0.1", port)
    # 20 answering nodes in its routing table: libtorrent queries the nodes it is given with
    # add_dht_node; seednode pings the nodes that query it (and keeps those that answer).
    sims = []
    for j in range(20):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.40.0.%d" % (j + 1), SIM_PORT))
        s.setblocking(False)
        sims.append(s)
        node.send("add 0 127.40.0.%d %d" % (j + 1, SIM_PORT))
        if args.seednode:
            s.sendto(benc({"t": b"hi", "y": "q", "q": "ping",
                           "a": {"id": sim_id(own, j % 4, j)}}), dst)
    if not args.seednode:
        node.proc.stdin.flush()
    end = time.time() + 3
    while time.time() < end:
        for j, s in enumerate(sims):
            try:
                data, src = s.recvfrom(1500)
            except BlockingIOError:
                continue
            msg = decode(data)
            if msg and msg.get(b"y") == b"q":
                r = {"id": sim_id(own, j % 4, j)}
                if msg.get(b"q") == b"get_peers":
                    r["token"] = b"tokn"
                s.sendto(benc({"t": msg[b"t"], "y": "r", "r": r}), src)
        time.sleep(0.001)
    # One stored peer for the info-hash the get_peers queries ask for.
    info_hash = b"mnopqrstuvwxyz123456"
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.41.0.1", 7000))
    s.settimeout(1)
    reply = ask(s, dst, b"gp", "get_peers", {"info_hash": info_hash})
    ask(s, dst, b"an", "announce_peer",
        {"info_hash": info_hash, "port": 6881, "token": reply[b"token"]})
    reply = ask(s, dst, b"gq", "get_peers", {"info_hash": info_hash})
    s.close()
    log("flood: %s: get_peers now returns %d peer(s) and %d nodes" % (
        name, len(reply.get(b"values", [])), len(reply.get(b"nodes", b"")) // 26))

    target = b"\x77" * 20
    mix = [
        query(b"qq", "ping", {}),
        query(b"qq", "find_node", {"target": target}),
        query(b"qq", "get_peers", {"info_hash": info_hash}),
        query(b"qq", "announce_peer", {"info_hash": info_hash, "port": 1, "token": b"badtoken"}),
        query(b"qq", "sample_infohashes", {"target": target}),
    ]
    socks = []
    sel = selectors.DefaultSelector()
    for i in range(args.sources):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        s.bind(("127.42.%d.%d" % (i // 250, i % 250 + 1), 0))
        s.setblocking(False)
        s.connect(dst)
        sel.register(s, selectors.EVENT_READ)
        socks.append(s)
    kinds = {}

    def drain():
        for key, _ in sel.select(0):
            while True:
                try:
                    data = key.fileobj.recv(1500)
                except BlockingIOError:
                    break
                # y:r, or y:e for the announce with a bad token; the node's pings to us are y:q.
                y = data.find(b"1:y1:")
                kind = data[y + 5:y + 6] if y >= 0 else b"?"
                kinds[kind] = kinds.get(kind, 0) + 1

    # Warm up for 1 s, then measure.
    n = args.sources
    for phase, seconds in (("warm-up", 1.0), ("measure", args.seconds)):
        kinds.clear()
        sent = 0
        (ut0, st0) = node.cpu_seconds()
        drops0 = udp_drops(port)
        t0 = time.time()
        end = t0 + seconds
        i = 0
        while time.time() < end:
            for _ in range(BATCH):
                try:
                    socks[i % n].send(mix[i % 5])
                    sent += 1
                except (BlockingIOError, ConnectionRefusedError):
                    pass
                i += 1
            drain()
        elapsed = time.time() - t0
        time.sleep(0.2)
        drain()
        (ut1, st1) = node.cpu_seconds()
        received = sent - (udp_drops(port) - drops0)
    ut, st = ut1 - ut0, st1 - st0
    cpu = ut + st
    replies = kinds.get(b"r", 0) + kinds.get(b"e", 0)
    log("flood: %s, %d sources, %.1f s: sent %d, received %d (the rest dropped by the kernel), "
        "replies %d (%s), node CPU %.2f s (user %.2f, system %.2f)" % (
            name, n, elapsed, sent, received, replies,
            {k.decode(): v for k, v in kinds.items()}, cpu, ut, st))
    per = (lambda x: "%.2f" % (x * 1e6 / replies)) if replies else (lambda x: "-")
    print("| %s | %d | %.1f | %d | %d | %d | %.0f | %.2f | %.0f | %s | %s | %.2f |" % (
        name, n, elapsed, sent, received, replies, replies / elapsed, cpu,
        replies / cpu if cpu else 0, per(ut), per(st), cpu * 1e6 / max(received, 1)))
    node.close()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    n = sub.add_parser("node")
    n.add_argument("--sessions", type=int, default=1)
    n.add_argument("--base-port", type=int, default=BASE_PORT)
    r = sub.add_parser("routing")
    r.add_argument("--sessions", type=int, default=4)
    r.add_argument("--depths", type=int, default=100)
    s = sub.add_parser("store")
    s.add_argument("--sessions", type=int, default=4)
    s.add_argument("--per-info-hash", type=int, default=10, choices=[10, 500])
    f = sub.add_parser("flood")
    f.add_argument("--seconds", type=float, default=10)
    f.add_argument("--node-cpu", type=int, default=1)
    f.add_argument("--flood-cpu", type=int, default=0)
    f.add_argument("--sources", type=int, default=SOURCES)
    f.add_argument("--seednode", metavar="BIN", help="flood `BIN dht` instead of libtorrent")
    args = p.parse_args()
    {"node": node_main, "routing": routing_main, "store": store_main,
     "flood": flood_main}[args.cmd](args)


if __name__ == "__main__":
    main()
