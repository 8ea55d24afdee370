#!/usr/bin/env bash
# Issue 12's upload benchmark: `seednode push` of a file to a running `seednode run` on loopback
# (upload + SHA-1/SHA-256 hashing as it arrives + fsync + catalog commit), against `sha1sum` of
# the same file and a plain socket copy of it (bash /dev/tcp into a discarding receiver), in the
# same run, file in the page cache for all three.
#
# Usage: benches/scripts/push_vs_nc.sh [SIZE_MIB] (default 1024). Needs a release build:
# cargo build --release -p seednode.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
SIZE_MIB="${1:-1024}"
BIN="$PWD/target/release/seednode"
WORK="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
head -c "$((SIZE_MIB * 1024 * 1024))" /dev/urandom > "$WORK/payload.bin"
cat "$WORK/payload.bin" > /dev/null

TOKEN="$("$BIN" token create --data-dir "$WORK/node" --scope upload 2>/dev/null)"
PORT=$((20000 + RANDOM % 20000))
"$BIN" run --data-dir "$WORK/node" --listen "127.0.0.1:$PORT" --no-dht > "$WORK/run.out" 2> "$WORK/run.log" &
for _ in $(seq 100); do grep -q listening "$WORK/run.out" 2>/dev/null && break; sleep 0.1; done

now() { date +%s.%N; }
t0=$(now); "$BIN" push "$WORK/payload.bin" --node "127.0.0.1:$PORT" --token "$TOKEN" > "$WORK/push.out" 2>/dev/null; t1=$(now)
push_s=$(echo "$t1 - $t0" | bc -l)
t0=$(now); sha1sum "$WORK/payload.bin" > /dev/null; t1=$(now)
sha_s=$(echo "$t1 - $t0" | bc -l)
SINK=$((PORT + 1))
/usr/bin/python3 - "$SINK" <<'PY' &
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(1)
c, _ = s.accept()
buf = bytearray(1 << 20)
while c.recv_into(buf):
    pass
PY
sleep 0.3
t0=$(now); cat "$WORK/payload.bin" > "/dev/tcp/127.0.0.1/$SINK"; wait %2 2>/dev/null || true; t1=$(now)
nc_s=$(echo "$t1 - $t0" | bc -l)
mbps() { echo "$SIZE_MIB / $1" | bc -l; }
printf '| %s | %.2f s | %.0f MiB/s |\n' "seednode push (upload+hash+fsync+commit)" "$push_s" "$(mbps "$push_s")"
printf '| %s | %.2f s | %.0f MiB/s |\n' "sha1sum" "$sha_s" "$(mbps "$sha_s")"
printf '| %s | %.2f s | %.0f MiB/s |\n' "plain socket copy" "$nc_s" "$(mbps "$nc_s")"
slower=$(echo "if ($sha_s > $nc_s) $sha_s else $nc_s" | bc -l)
printf 'push / slower of the two: %.2fx (throughput ratio)\n' "$(echo "$slower / $push_s" | bc -l)"
grep info-hash "$WORK/push.out"
