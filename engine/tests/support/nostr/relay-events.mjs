// Reads a relay's events by author (and kinds) with nostr-tools, checks every signature
// (verifyEvent), and prints them as one JSON array on stdout. The node's announcements are
// checked against this independent implementation (engine/tests/nostr.rs).
// Usage: node relay-events.mjs ws://127.0.0.1:PORT <author hex> [kinds, comma-separated]
// Exit: 0 with the array (maybe empty); 1 when an event fails verifyEvent; 2 on timeout.
import WebSocket from 'ws';
import { verifyEvent } from 'nostr-tools/pure';
import { Relay, useWebSocketImplementation } from 'nostr-tools/relay';

useWebSocketImplementation(WebSocket);

const [url, author, kindsArg] = process.argv.slice(2);
const kinds = (kindsArg || '1063,2003,5').split(',').map(Number);
const killer = setTimeout(() => { console.error('FAIL: timeout'); process.exit(2); },
  Number(process.env.TIMEOUT_MS || 10000));

const relay = await Relay.connect(url);
const got = await new Promise((resolve) => {
  const found = [];
  const sub = relay.subscribe([{ authors: [author], kinds }], {
    onevent(e) { found.push(e); },
    oneose() { sub.close(); resolve(found); },
  });
});
relay.close();
clearTimeout(killer);
const bad = got.filter((e) => !verifyEvent(e));
if (bad.length) {
  console.error(`FAIL: ${bad.length} events fail verifyEvent: ${bad.map((e) => e.id)}`);
  process.exit(1);
}
console.log(JSON.stringify(got));
