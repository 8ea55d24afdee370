#!/usr/bin/env bash
# The "seednode bench" figures of docs/BENCHMARKS.md, in one run on loopback:
#   bench leech against `seednode seed` and against libtorrent (lt_seed.py) seeding the same file,
#   alternating A B A B; bench tracker --udp against `seednode tracker` and opentracker (whitelist
#   of the same generated info-hashes), alternating; and bench self.
# Usage: benches/scripts/bench_cmd_figures.sh [SIZE_MIB] [SECS]   (after cargo build --release)
# Every process it starts is stopped on exit. Results (JSON) go to $OUT (default /tmp/bench_cmd).
set -euo pipefail
cd "$(dirname "$0")/../.."
SIZE_MIB=${1:-1024}
SECS=${2:-10}
OUT=${OUT:-/tmp/bench_cmd}
SN=${SN:-target/release/seednode}
rm -rf "$OUT" && mkdir -p "$OUT"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

head -c $((SIZE_MIB << 20)) /dev/urandom > "$OUT/payload.bin"
"$SN" create "$OUT/payload.bin" -o "$OUT/payload.torrent" --piece-length 1M > /dev/null

"$SN" seed "$OUT/payload.bin" --torrent "$OUT/payload.torrent" --listen 127.0.0.1:17001 \
    --no-dht --summary-interval 0 > "$OUT/seed.out" 2> "$OUT/seed.err" & pids+=($!)
/usr/bin/python3 engine/tests/support/lt_seed.py "$OUT/payload.bin" --torrent "$OUT/payload.torrent" \
    --listen 127.0.0.1:17002 > "$OUT/lt.out" 2> "$OUT/lt.err" & pids+=($!)
until grep -q '^listening' "$OUT/seed.out" 2>/dev/null && grep -q '^listening' "$OUT/lt.out" 2>/dev/null; do sleep 0.5; done

for round in 1 2; do
  for who in seednode:17001:127.0.2.1 libtorrent:17002:127.0.3.1; do
    IFS=: read -r name port src <<< "$who"
    "$SN" bench leech --torrent "$OUT/payload.torrent" --peer 127.0.0.1:$port --connections 2 \
        --source "${src%.*}.$((${src##*.} + 10 * round))" --warmup 1 --duration "$SECS" --json \
        > "$OUT/leech-$name-$round.json"
  done
done

"$SN" bench tracker --write-info-hashes "$OUT/whitelist" 2> /dev/null
"$SN" tracker --listen 127.0.0.1:17003 2> "$OUT/tracker.err" & pids+=($!)
printf 'listen.tcp 127.0.0.1:17004\nlisten.udp 127.0.0.1:17004\naccess.whitelist %s\n' \
    "$OUT/whitelist" > "$OUT/opentracker.conf"
opentracker -f "$OUT/opentracker.conf" > "$OUT/opentracker.log" 2>&1 & pids+=($!)
sleep 1
for round in 1 2; do
  for who in seednode:17003 opentracker:17004; do
    IFS=: read -r name port <<< "$who"
    "$SN" bench tracker --udp 127.0.0.1:$port --info-hash-file "$OUT/whitelist" \
        --duration "$SECS" --json > "$OUT/tracker-$name-$round.json"
  done
done
cleanup; pids=()
"$SN" bench self --json > "$OUT/self.json"
"$SN" bench self
ls "$OUT"/*.json
