#!/usr/bin/env bash
# Webseed range serving (BEP 19) by seednode against nginx serving the same file, same run
# (issue 11): wrk on loopback, 16 KiB and 1 MiB ranges at random-ish offsets, and whole-file GETs.
#
#   [NGINX_WORKERS=N] benches/scripts/webseed_vs_nginx.sh [SIZE_MIB] [SECONDS]
#
# Needs: target/release/seednode (cargo build --release -p seednode), nginx and wrk (Debian).
# nginx runs as the invoking user from a config of its own in a temp dir (sendfile on, access
# log off, one worker per core), on 127.0.0.1 only. Prints one line per (server, test) and the
# seednode/nginx ratios.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

SIZE_MIB="${1:-256}"
SECS="${2:-10}"
BIN=target/release/seednode
for p in "$BIN" nginx wrk; do
    command -v "$p" >/dev/null 2>&1 || [[ -x $p ]] || { echo "missing: $p" >&2; exit 2; }
done

TMP="$(mktemp -d /var/tmp/webseed_bench.XXXXXX)"
SEED_PID=""
NGINX_PID=""
cleanup() {
    [[ -n $SEED_PID ]] && kill "$SEED_PID" 2>/dev/null || true
    [[ -n $NGINX_PID ]] && kill "$NGINX_PID" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT

mkdir -p "$TMP/www"
# nginx workers drop to an unprivileged user when started as root: let them read the payload.
chmod 755 "$TMP" "$TMP/www"
head -c "$((SIZE_MIB * 1024 * 1024))" /dev/urandom >"$TMP/www/payload.bin"
chmod 644 "$TMP/www/payload.bin"
cat "$TMP/www/payload.bin" >/dev/null # page cache, for both

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
SP="$(port)"
NP="$(port)"

RUST_LOG=warn "$BIN" seed "$TMP/www/payload.bin" --listen "127.0.0.1:$SP" --no-dht \
    >"$TMP/seed.out" 2>"$TMP/seed.err" &
SEED_PID=$!
for _ in $(seq 1 600); do grep -q '^listening:' "$TMP/seed.out" 2>/dev/null && break; sleep 0.1; done
IH="$(sed -n 's/^info-hash: //p' "$TMP/seed.out")"
[[ -n $IH ]] || { echo "seednode did not start" >&2; cat "$TMP/seed.err" >&2; exit 1; }

cat >"$TMP/nginx.conf" <<EOF
worker_processes ${NGINX_WORKERS:-auto};
daemon off;
pid $TMP/nginx.pid;
error_log $TMP/nginx.err warn;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100;
    client_body_temp_path $TMP/body;
    proxy_temp_path $TMP/proxy;
    fastcgi_temp_path $TMP/fcgi;
    uwsgi_temp_path $TMP/uwsgi;
    scgi_temp_path $TMP/scgi;
    server {
        listen 127.0.0.1:$NP;
        root $TMP/www;
    }
}
EOF
nginx -c "$TMP/nginx.conf" -p "$TMP" &
NGINX_PID=$!
sleep 0.5

SEED_URL="http://127.0.0.1:$SP/webseed/$IH/payload.bin"
NGINX_URL="http://127.0.0.1:$NP/payload.bin"
curl -sf -o /dev/null "$SEED_URL" -r 0-0 || { echo "seednode webseed not answering" >&2; exit 1; }
curl -sf -o /dev/null "$NGINX_URL" -r 0-0 || { echo "nginx not answering" >&2; exit 1; }

# A Lua script for wrk: ranges of LEN bytes at offsets walking the file.
range_script() {
    cat >"$TMP/range.lua" <<EOF
local size = $((SIZE_MIB * 1024 * 1024))
local len = $1
local n = 0
request = function()
  n = n + 1
  local start = ((n * 7919) % math.floor(size / len)) * len
  return wrk.format("GET", nil, {["Range"] = "bytes=" .. start .. "-" .. (start + len - 1)})
end
EOF
}

run() { # server url test
    local out
    out="$(wrk -t2 -c8 -d"${SECS}s" ${4:+-s "$4"} "$2")"
    local rps bps
    rps="$(awk '/^Requests\/sec/ {print $2}' <<<"$out")"
    bps="$(awk '/^Transfer\/sec/ {print $2}' <<<"$out")"
    printf '%-9s %-12s requests/s %10s  transfer/s %10s\n' "$1" "$3" "$rps" "$bps"
    echo "$rps"
}

echo "# $(date -u +%FT%TZ) $(nproc) cores, $(uname -r), payload ${SIZE_MIB} MiB, wrk -t2 -c8 -d${SECS}s"
declare -A R
for test in 16KiB 1MiB whole; do
    case $test in
        16KiB) range_script 16384; script="$TMP/range.lua" ;;
        1MiB) range_script 1048576; script="$TMP/range.lua" ;;
        whole) script="" ;;
    esac
    for server in seednode nginx; do
        url="$SEED_URL"; [[ $server == nginx ]] && url="$NGINX_URL"
        mapfile -t lines < <(run "$server" "$url" "$test" "$script")
        echo "${lines[0]}"
        R[$server-$test]="${lines[1]}"
    done
    python3 -c "print('ratio     %-12s seednode/nginx requests/s %.2f' % ('$test', ${R[seednode-$test]} / ${R[nginx-$test]}))"
done
