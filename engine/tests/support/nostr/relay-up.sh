#!/usr/bin/env bash
# Start a real Nostr relay (PyPI package nostr-relay 1.14, SQLite storage) on
# 127.0.0.1:<port> for integration tests. The relay's venv is $VENV (scripts/test makes it in
# target/test-relay); its database, config and log go to $RELAY_DIR (default .relay/ next to
# this script; tests pass a temporary directory). Prints the relay PID; stop it with:
#   kill "$(cat "$RELAY_DIR/relay.pid")"
# Usage: bash relay-up.sh [port]      (default 17777)
# Env:   RELAY_AUTH=1 RELAY_WRITERS="<hex pubkey> ..."  -> NIP-42 auth required to publish
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
port=${1:-17777}
venv=${VENV:-$here/.venv}
if [ ! -x "$venv/bin/nostr-relay" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q -r "$here/requirements-relay.txt"
fi
if curl -s -o /dev/null "http://127.0.0.1:$port/"; then
  echo "port $port is already in use" >&2; exit 1
fi
dir=${RELAY_DIR:-$here/.relay}
mkdir -p "$dir"
pkgcfg=$("$venv/bin/python" -c 'import nostr_relay, os; print(os.path.join(os.path.dirname(nostr_relay.__file__), "config.yaml"))')
# Same defaults as the package, with the port, the DB path and the NIP-42 URLs changed.
sed -e "s#sqlite+aiosqlite:///nostr.sqlite3#sqlite+aiosqlite:///$dir/relay.sqlite3#" \
    -e "s#bind: 127.0.0.1:6969#bind: 127.0.0.1:$port#" -e "s#port: 6969#port: $port#" \
    -e "s#ws://localhost:6969#ws://localhost:$port#" -e "s#ws://127.0.0.1:6969#ws://127.0.0.1:$port#" \
    "$pkgcfg" > "$dir/relay.yaml"
if [ "${RELAY_AUTH:-0}" = 1 ]; then
  # NIP-42: the relay sends ["AUTH", challenge] on connect; only pubkeys holding
  # the "w" role may publish (reads stay open). Grant it with RELAY_WRITERS="<hex> ...".
  python3 - "$dir/relay.yaml" "ws://127.0.0.1:$port ws://localhost:$port" <<'PY'
import sys; p=sys.argv[1]; s=open(p).read()
# nostr-relay 1.14 reads the accepted relay URLs from "relay_urls" (one string,
# substring match) and ignores the "valid_urls" list its sample config ships with.
s=s.replace("authentication:\n  enabled: false",
            "authentication:\n  enabled: true\n  relay_urls: %s" % sys.argv[2], 1)
s=s.replace("actions:\n    save: a", "actions:\n    save: w", 1)
open(p,'w').write(s)
PY
fi
cd "$dir"
nohup "$venv/bin/nostr-relay" -c "$dir/relay.yaml" serve > "$dir/relay.log" 2>&1 &
echo $! > "$dir/relay.pid"
for _ in $(seq 1 50); do
  if curl -sf -H 'Accept: application/nostr+json' "http://127.0.0.1:$port/" > /dev/null; then
    # roles live in the relay's DB, which exists once the server has migrated it
    for pk in ${RELAY_WRITERS:-}; do
      "$venv/bin/nostr-relay" -c "$dir/relay.yaml" role set -p "$pk" -r aw > /dev/null
    done
    echo "relay up: ws://127.0.0.1:$port pid=$(cat "$dir/relay.pid")"; exit 0
  fi
  sleep 0.3
done
echo "relay did not come up; see $dir/relay.log" >&2
exit 1
