#!/usr/bin/env bash
# Blossom (issue 14): GET and PUT of one blob by seednode against the same bytes through
# seednode's webseed path and through nginx (GET: static file; PUT: the WebDAV module writing
# the body to disk, no hashing), same run, curl on loopback. Then NIP-98 verifications per
# second on one core (benches/src/bin/nip98_verify.rs).
#
#   benches/scripts/blossom_vs_nginx.sh [SIZE_MIB] [REPEATS]     (default 100 MiB, 5)
#
# Needs: target/release/seednode and target/release/nip98_verify
# (cargo build --release -p seednode -p seednode-benches --bin seednode --bin nip98_verify),
# nginx, curl, node with the npm packages of engine/tests/support/nostr
# (SEEDNODE_TEST_NODE_MODULES, else that folder's node_modules) to sign the kind-24242 events.
# Everything on 127.0.0.1; nginx runs from a config of its own in a temp dir.
# Each figure is the median of REPEATS transfers (curl's time_total); PUTs of seednode are of the
# same blob, deleted (signed DELETE) between two uploads, so each one streams, hashes (SHA-256 and
# the torrent's SHA-1 pieces), fsyncs, commits and seeds it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT="$PWD"

SIZE_MIB="${1:-100}"
REPEATS="${2:-5}"
BIN=target/release/seednode
VERIFY=target/release/nip98_verify
MODULES="${SEEDNODE_TEST_NODE_MODULES:-$ROOT/engine/tests/support/nostr/node_modules}"
for p in "$BIN" "$VERIFY" nginx curl node; do
    command -v "$p" >/dev/null 2>&1 || [[ -x $p ]] || { echo "missing: $p" >&2; exit 2; }
done
[[ -d $MODULES/nostr-tools ]] || { echo "missing npm packages in $MODULES" >&2; exit 2; }

TMP="$(mktemp -d /var/tmp/blossom_bench.XXXXXX)"
SEED_PID=""
NGINX_PID=""
cleanup() {
    [[ -n $SEED_PID ]] && kill "$SEED_PID" 2>/dev/null || true
    [[ -n $NGINX_PID ]] && kill "$NGINX_PID" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT

mkdir -p "$TMP/www" "$TMP/dav" "$TMP/sign"
chmod 755 "$TMP" "$TMP/www"
chmod 777 "$TMP/dav"
head -c "$((SIZE_MIB * 1024 * 1024))" /dev/urandom >"$TMP/www/payload.bin"
chmod 644 "$TMP/www/payload.bin"
cat "$TMP/www/payload.bin" >/dev/null # page cache
SHA="$(sha256sum "$TMP/www/payload.bin" | cut -d' ' -f1)"

# Signing with nostr-tools (a fixed bench key).
SK=5f7a1d0d3b2c4e6f8a9b0c1d2e3f405162738495a6b7c8d9eafb0c1d2e3f4051
ln -s "$MODULES" "$TMP/sign/node_modules"
cat >"$TMP/sign/sign.mjs" <<'EOF'
import { finalizeEvent, getPublicKey } from 'nostr-tools/pure';
import { hexToBytes } from 'nostr-tools/utils';
const [sk, verb, x] = process.argv.slice(2);
if (verb === 'pubkey') { console.log(getPublicKey(hexToBytes(sk))); process.exit(0); }
const now = Math.floor(Date.now() / 1000);
const ev = finalizeEvent({ kind: 24242, created_at: now, content: verb,
  tags: [['t', verb], ['x', x], ['expiration', String(now + 3600)]] }, hexToBytes(sk));
console.log('Nostr ' + Buffer.from(JSON.stringify(ev)).toString('base64url'));
EOF
sign() { node "$TMP/sign/sign.mjs" "$SK" "$@"; }
PUBKEY="$(sign pubkey)"

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
SP="$(port)"
NP="$(port)"
cat >"$TMP/seednode.toml" <<EOF
[[nostr.pubkey]]
npub = "$PUBKEY"
scopes = ["upload"]
EOF
RUST_LOG=warn "$BIN" run --config "$TMP/seednode.toml" --data-dir "$TMP/node" \
    --listen "127.0.0.1:$SP" --no-dht >"$TMP/seed.out" 2>"$TMP/seed.err" &
SEED_PID=$!
for _ in $(seq 1 600); do grep -q '^listening:' "$TMP/seed.out" 2>/dev/null && break; sleep 0.1; done
grep -q '^listening:' "$TMP/seed.out" || { echo "seednode did not start" >&2; cat "$TMP/seed.err" >&2; exit 1; }

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
    client_max_body_size 0;
    client_body_temp_path $TMP/body;
    proxy_temp_path $TMP/proxy;
    fastcgi_temp_path $TMP/fcgi;
    uwsgi_temp_path $TMP/uwsgi;
    scgi_temp_path $TMP/scgi;
    server {
        listen 127.0.0.1:$NP;
        root $TMP/www;
        location /dav/ {
            root $TMP;
            dav_methods PUT DELETE;
            create_full_put_path on;
        }
    }
}
EOF
nginx -c "$TMP/nginx.conf" -p "$TMP" &
NGINX_PID=$!
sleep 0.5

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
timed() { curl -sf -o /dev/null -w '%{time_total}\n' "$@"; }
mibs() { python3 -c "print('%.0f' % ($SIZE_MIB / $1))"; }

BLOSSOM="http://127.0.0.1:$SP"
put_seednode() {
    timed -X PUT -T "$TMP/www/payload.bin" -H "Authorization: $(sign upload "$SHA")" \
        -H "X-SHA-256: $SHA" -H 'Content-Type: application/octet-stream' "$BLOSSOM/upload"
}
delete_seednode() {
    curl -sf -o /dev/null -X DELETE -H "Authorization: $(sign delete "$SHA")" "$BLOSSOM/$SHA"
    for _ in $(seq 1 100); do
        [[ $(curl -s -o /dev/null -w '%{http_code}' -I "$BLOSSOM/$SHA") == 404 ]] && return
        sleep 0.1
    done
}

echo "# $(date -u +%FT%TZ) $(nproc) cores, $(uname -r), blob ${SIZE_MIB} MiB, median of $REPEATS, curl on loopback"
declare -a SP_PUT NG_PUT
for i in $(seq 1 "$REPEATS"); do
    SP_PUT+=("$(put_seednode)")
    [[ $i -lt $REPEATS ]] && delete_seednode
    NG_PUT+=("$(timed -X PUT -T "$TMP/www/payload.bin" "http://127.0.0.1:$NP/dav/payload-$i.bin")")
    rm -f "$TMP/dav/payload-$i.bin"
done
S_PUT="$(printf '%s\n' "${SP_PUT[@]}" | median)"
N_PUT="$(printf '%s\n' "${NG_PUT[@]}" | median)"
IH="$(curl -sf "$BLOSSOM/list/$PUBKEY" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["infohash"])')"
NAME="$(curl -sf "$BLOSSOM/list/$PUBKEY" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["url"].rsplit("/",1)[1])')"
declare -a B W N
for _ in $(seq 1 "$REPEATS"); do
    B+=("$(timed "$BLOSSOM/$SHA")")
    W+=("$(timed "$BLOSSOM/webseed/$IH/$NAME")")
    N+=("$(timed "http://127.0.0.1:$NP/payload.bin")")
done
S_GET="$(printf '%s\n' "${B[@]}" | median)"
W_GET="$(printf '%s\n' "${W[@]}" | median)"
N_GET="$(printf '%s\n' "${N[@]}" | median)"
printf 'PUT  seednode blossom %8.3f s  %5s MiB/s\n' "$S_PUT" "$(mibs "$S_PUT")"
printf 'PUT  nginx dav        %8.3f s  %5s MiB/s\n' "$N_PUT" "$(mibs "$N_PUT")"
printf 'GET  seednode blossom %8.3f s  %5s MiB/s\n' "$S_GET" "$(mibs "$S_GET")"
printf 'GET  seednode webseed %8.3f s  %5s MiB/s\n' "$W_GET" "$(mibs "$W_GET")"
printf 'GET  nginx static     %8.3f s  %5s MiB/s\n' "$N_GET" "$(mibs "$N_GET")"
python3 -c "print('ratio PUT blossom/nginx time %.2f; GET blossom/webseed time %.2f; GET blossom/nginx time %.2f' % ($S_PUT/$N_PUT, $S_GET/$W_GET, $S_GET/$N_GET))"
"$VERIFY" 5
