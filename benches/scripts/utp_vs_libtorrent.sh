#!/usr/bin/env bash
# Issue 15's uTP benchmark: seeding SIZE_MIB over uTP (BEP 29) on loopback to python3-libtorrent
# set to uTP only (lt_download.py --transport utp), with seednode as the seeder and then with
# libtorrent itself (lt_seed.py --utp: uTP only, TCP off), the same file and torrent, in the
# same run: wall time of the download, throughput, and the seeder's CPU seconds (utime + stime
# of its process, from /proc) per GB sent.
#
# Usage: benches/scripts/utp_vs_libtorrent.sh [SIZE_MIB] (default 1024). Needs a release
# build (cargo build --release -p seednode) and python3-libtorrent.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
SIZE_MIB="${1:-1024}"
BIN="$PWD/target/release/seednode"
SUPPORT="$PWD/engine/tests/support"
WORK="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
mkdir -p "$WORK/seed"
head -c "$((SIZE_MIB * 1024 * 1024))" /dev/urandom > "$WORK/seed/payload.bin"
"$BIN" create "$WORK/seed/payload.bin" -o "$WORK/payload.torrent" --piece-length 1M > /dev/null
TICKS=$(getconf CLK_TCK)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
now() { date +%s.%N; }

# run_one NAME PID PORT: downloads from 127.0.0.1:PORT over uTP; prints "NAME secs MB/s cpu_s".
run_one() {
    local name=$1 pid=$2 port=$3 dl="$WORK/dl-$1" c0 c1 t0 t1
    rm -rf "$dl"
    cat "$WORK/seed/payload.bin" > /dev/null
    c0=$(cpu_ticks "$pid"); t0=$(now)
    /usr/bin/python3 "$SUPPORT/lt_download.py" "$WORK/payload.torrent" --save-dir "$dl" \
        --peer "127.0.0.1:$port" --listen "127.0.0.2:$((port + 1))" --transport utp \
        --timeout 600 > "$WORK/$name.dl.log" 2>&1
    t1=$(now); c1=$(cpu_ticks "$pid")
    cmp -s "$dl/payload.bin" "$WORK/seed/payload.bin" || { echo "$name: download differs" >&2; exit 1; }
    echo "$name $(echo "$t1 - $t0" | bc -l) $(echo "$SIZE_MIB * 1.048576 / ($t1 - $t0)" | bc -l) $(echo "($c1 - $c0) / $TICKS" | bc -l)"
}

PORT=$((20000 + RANDOM % 20000))
"$BIN" seed "$WORK/seed/payload.bin" --torrent "$WORK/payload.torrent" --listen "127.0.0.1:$PORT" \
    --no-dht > "$WORK/sn.out" 2> "$WORK/sn.log" &
SN=$!
for _ in $(seq 300); do grep -q listening "$WORK/sn.out" 2>/dev/null && break; sleep 0.1; done
SN_ROW=$(run_one seednode "$SN" "$PORT")
kill "$SN"; wait "$SN" 2>/dev/null || true

PORT=$((PORT + 7))
/usr/bin/python3 "$SUPPORT/lt_seed.py" "$WORK/seed/payload.bin" --torrent "$WORK/payload.torrent" \
    --listen "127.0.0.1:$PORT" --utp > "$WORK/lt.out" 2> "$WORK/lt.log" &
LT=$!
for _ in $(seq 600); do grep -q listening "$WORK/lt.out" 2>/dev/null && break; sleep 0.1; done
LT_ROW=$(run_one libtorrent "$LT" "$PORT")
kill "$LT"; wait "$LT" 2>/dev/null || true

GB=$(echo "$SIZE_MIB / 1024 * 1.073741824" | bc -l)
printf '%-11s %9s %9s %12s\n' seeder seconds MB/s "CPU s per GB"
for row in "$SN_ROW" "$LT_ROW"; do
    read -r name secs rate cpu <<<"$row"
    printf '%-11s %9.2f %9.1f %12.2f\n' "$name" "$secs" "$rate" "$(echo "$cpu / $GB" | bc -l)"
done
read -r _ sn_s sn_r sn_c <<<"$SN_ROW"
read -r _ lt_s lt_r lt_c <<<"$LT_ROW"
printf 'throughput seednode/libtorrent = %.2fx, CPU per GB seednode/libtorrent = %.2fx\n' \
    "$(echo "$sn_r / $lt_r" | bc -l)" "$(echo "$sn_c / $lt_c" | bc -l)"
