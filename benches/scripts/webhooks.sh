#!/usr/bin/env bash
# Issue 13's webhook benchmark, one run, loopback only:
#  1. events per second through the outbox: N events are queued in the catalog's outbox for one
#     endpoint (as the node queues them, one row each), then `seednode run` delivers them to a
#     local receiver (Python ThreadingHTTPServer answering 200); the rate is N over the time
#     from the first to the last delivery. Every delivery is a signed POST on a fresh TCP
#     connection (no reuse: the SSRF pinning), in order.
#  2. upload throughput (`seednode push` of a file, as benches/scripts/push_vs_nc.sh) to a node
#     with ten webhook endpoints subscribed to every event against a node with none,
#     alternating ROUNDS times; the goal is <= 5 % loss (median against median).
#
# Usage: benches/scripts/webhooks.sh [EVENTS] [SIZE_MIB] [ROUNDS] (default 2000 256 3).
# Binary: $SEEDNODE_BIN, else target/release/seednode (cargo build --release -p seednode).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
EVENTS="${1:-2000}"
SIZE_MIB="${2:-256}"
ROUNDS="${3:-3}"
BIN="${SEEDNODE_BIN:-$PWD/target/release/seednode}"
WORK="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
SECRET="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
PY=/usr/bin/python3
port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# A receiver on $1 that answers 200; writes "<count> <unix time>" to $2 at the first and at
# every 100th request, and at request number $3 (at every request when $3 is 0).
receiver() {
  "$PY" - "$1" "$2" "$3" <<'PY' &
import http.server, sys, threading, time
port, out, last = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
lock, n = threading.Lock(), [0]
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", "0")))
        self.send_response(200); self.send_header("content-length", "0"); self.end_headers()
        with lock:
            n[0] += 1
            if last == 0 or n[0] == 1 or n[0] == last or n[0] % 100 == 0:
                with open(out, "a") as f: f.write(f"{n[0]} {time.time()}\n")
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
PY
}

start_node() { # DATA_DIR PORT LOG -> waits until listening
  "$BIN" run --data-dir "$1" --listen "127.0.0.1:$2" --no-dht > "$3.out" 2> "$3" &
  NODE_PID=$!
  for _ in $(seq 200); do grep -q listening "$3.out" 2>/dev/null && break; sleep 0.05; done
}

# 1. Events per second through the outbox.
HOOK=$(port)
receiver "$HOOK" "$WORK/events.count" "$EVENTS"
"$BIN" webhook add "http://127.0.0.1:$HOOK/e" --kinds bench.event --secret "$SECRET" \
  --allow-private --data-dir "$WORK/events" > /dev/null
"$PY" - "$WORK/events/catalog.sqlite" "$EVENTS" <<'PY'
import json, os, sqlite3, sys, time
db, n = sqlite3.connect(sys.argv[1]), int(sys.argv[2])
now = int(time.time())
body = json.dumps({"type": "bench.event", "timestamp": "2026-12-06T00:00:00Z",
                   "data": {"info_hash": "ab" * 20, "actor": "0123456789ab", "source": "127.0.0.1"}})
with db:
    db.executemany(
        "INSERT INTO webhook_outbox (endpoint_id, event_id, kind, body, created_at, next_attempt_ms)"
        " VALUES (1, ?, 'bench.event', ?, ?, 0)",
        [("msg_" + os.urandom(16).hex(), body, now) for _ in range(n)])
PY
P=$(port)
start_node "$WORK/events" "$P" "$WORK/events.log"
for _ in $(seq 1200); do
  grep -q "^$EVENTS " "$WORK/events.count" 2>/dev/null && break; sleep 0.1
done
read -r _ first < <(head -n1 "$WORK/events.count")
read -r got last < <(tail -n1 "$WORK/events.count")
kill "$NODE_PID" 2>/dev/null || true
printf '| outbox -> local receiver | %d events | %.2f s | %.0f events/s |\n' \
  "$got" "$(echo "$last - $first" | bc -l)" "$(echo "($got - 1) / ($last - $first)" | bc -l)"

# 2. Upload throughput, ten endpoints against none.
head -c "$((SIZE_MIB * 1024 * 1024))" /dev/urandom > "$WORK/payload.bin"
cat "$WORK/payload.bin" > /dev/null
declare -A PORTS TOKENS
for node in none ten; do
  TOKENS[$node]="$("$BIN" token create --data-dir "$WORK/$node" --scope upload 2>/dev/null)"
done
for i in $(seq 10); do
  H=$(port)
  receiver "$H" "$WORK/ten.$i.count" 0
  "$BIN" webhook add "http://127.0.0.1:$H/u$i" --kinds '*' --secret "$SECRET" \
    --allow-private --data-dir "$WORK/ten" > /dev/null
done
for node in none ten; do
  PORTS[$node]=$(port)
  start_node "$WORK/$node" "${PORTS[$node]}" "$WORK/$node.log"
done
now() { date +%s.%N; }
declare -A TIMES
for r in $(seq "$ROUNDS"); do
  for node in none ten; do
    cp "$WORK/payload.bin" "$WORK/p.$node.$r.bin"  # a new torrent each time (same bytes: "exists")
    printf 'x%s' "$node$r" >> "$WORK/p.$node.$r.bin"
    cat "$WORK/p.$node.$r.bin" > /dev/null
    t0=$(now)
    "$BIN" push "$WORK/p.$node.$r.bin" --node "127.0.0.1:${PORTS[$node]}" --token "${TOKENS[$node]}" \
      > /dev/null 2>&1
    t1=$(now)
    TIMES[$node]+="$(echo "$t1 - $t0" | bc -l) "
    rm -f "$WORK/p.$node.$r.bin"
  done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
m_none=$(echo "${TIMES[none]}" | median)
m_ten=$(echo "${TIMES[ten]}" | median)
for _ in $(seq 150); do  # the deliveries (a few events per push) arrive within seconds
  [ "$(ls "$WORK"/ten.*.count 2>/dev/null | wc -l)" -ge 10 ] && break; sleep 0.1
done
delivered=$({ cat "$WORK"/ten.*.count 2>/dev/null || true; } | wc -l)
printf '| push, no webhook endpoint | %s MiB | median %.2f s of %s | %.0f MiB/s |\n' \
  "$SIZE_MIB" "$m_none" "${TIMES[none]}" "$(echo "$SIZE_MIB / $m_none" | bc -l)"
printf '| push, 10 webhook endpoints | %s MiB | median %.2f s of %s | %.0f MiB/s |\n' \
  "$SIZE_MIB" "$m_ten" "${TIMES[ten]}" "$(echo "$SIZE_MIB / $m_ten" | bc -l)"
printf 'loss with ten endpoints: %.1f %% (goal <= 5 %%); deliveries the ten receivers got: %s\n' \
  "$(echo "($m_ten - $m_none) / $m_none * 100" | bc -l)" "${delivered:-0}"
