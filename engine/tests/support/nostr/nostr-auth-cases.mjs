// Nostr-signed requests against a seednode (events signed with nostr-tools, Blossom events
// built with blossom-client-sdk): Blossom list and delete, Blossom authorizations that must be
// refused (wrong kind, expired, wrong t, wrong x, foreign server tag, bad signature, a key
// without a grant, a body that is not the announced hash), NIP-98 requests accepted and
// refused (wrong URL, method, stale created_at, wrong payload hash, bad signature, unknown key),
// and the lockout counting auth.nostr.failed.
// Usage: node nostr-auth-cases.mjs http://127.0.0.1:PORT
// Env:   BLOSSOM_SK=<hex> a key granted read+upload; STRANGER_SK=<hex> a key with no grant.
//        Each refused case comes from its own 127.0.0.x source address, so that the node's
//        lockout (5 failures a minute per address) does not mask the next case.
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import { Actions, createAuthEvent, createDeleteAuth, createUploadAuth, encodeAuthorizationHeader } from 'blossom-client-sdk';
import { finalizeEvent, getPublicKey } from 'nostr-tools/pure';
import { hexToBytes } from 'nostr-tools/utils';

const server = (process.argv[2] || '').replace(/\/$/, '');
const url = new URL(server);
const sk = hexToBytes(process.env.BLOSSOM_SK);
const stranger = hexToBytes(process.env.STRANGER_SK);
const signer = async (draft) => finalizeEvent(draft, sk);
const strangerSigner = async (draft) => finalizeEvent(draft, stranger);
const pubkey = getPublicKey(sk);
let pass = 0, fail = 0;
const check = (name, cond, extra = '') => {
  if (cond) { pass++; console.log(`ok   ${name}`); } else { fail++; console.log(`FAIL ${name} ${extra}`); }
};
const killer = setTimeout(() => { console.log('FAIL timeout'); process.exit(2); }, 60000);
const now = () => Math.floor(Date.now() / 1000);
const sha = (b) => createHash('sha256').update(b).digest('hex');

// One request from source address `from` (127.0.0.x); resolves to { status, body }.
let nextSource = 100;
const source = () => `127.0.0.${nextSource++}`;
function request(method, path, { headers = {}, body, from } = {}) {
  // A Content-Length, not chunked encoding (the node answers 411 to Transfer-Encoding).
  if (body) headers = { ...headers, 'Content-Length': String(body.length) };
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: url.hostname, port: url.port, method, path, headers,
      localAddress: from || '127.0.0.1', agent: false, timeout: 20000,
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString() }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    if (body) req.write(body);
    req.end();
  });
}
const header = (ev) => encodeAuthorizationHeader(ev);
const nip98 = (ev) => 'Nostr ' + Buffer.from(JSON.stringify(ev)).toString('base64');

// --- Blossom: upload, list, delete with the SDK -------------------------------------------
const bytes = new Uint8Array(randomBytes(2048));
const hash = sha(bytes);
const desc = await Actions.uploadBlob(server, new Blob([bytes], { type: 'image/png' }), {
  auth: true, onAuth: (_s, h) => createUploadAuth(signer, h, { message: 'cases' }),
});
check('upload with a type: descriptor type and url extension', desc.type === 'image/png' && desc.url.endsWith(`${hash}.png`), JSON.stringify(desc));
check('descriptor carries magnet and infohash', /^magnet:\?xt=urn:btih:[0-9a-f]{40}/.test(desc.magnet || '') && /^[0-9a-f]{40}$/.test(desc.infohash || ''), JSON.stringify(desc));
const listed = await Actions.listBlobs(server, pubkey);
check('list shows the blob', listed.some((d) => d.sha256 === hash), JSON.stringify(listed));
check('list of another key is empty', (await Actions.listBlobs(server, getPublicKey(stranger))).length === 0);
const head = await request('HEAD', `/${hash}`);
check('HEAD has the type', head.status === 200 && head.headers['content-type'] === 'image/png', `(${head.status} ${head.headers['content-type']})`);
const opts = await request('OPTIONS', '/upload', { headers: { Origin: 'https://app.example', 'Access-Control-Request-Method': 'PUT' } });
check('OPTIONS preflight allows PUT from anywhere', opts.status < 300 && opts.headers['access-control-allow-origin'] === '*' && /PUT/.test(opts.headers['access-control-allow-methods'] || ''), `(${opts.status})`);
// A stranger cannot delete it.
const strangerDel = await createDeleteAuth(strangerSigner, hash);
const sd = await request('DELETE', `/${hash}`, { headers: { Authorization: header(strangerDel) }, from: source() });
check('delete by another key is 403', sd.status === 403, `(${sd.status})`);
let deleted = 'ok';
try {
  await Actions.deleteBlob(server, hash, { auth: true, onAuth: (_s, h) => createDeleteAuth(signer, h) });
} catch (e) { deleted = e.message; }
check('delete by the uploader', deleted === 'ok', deleted);
check('gone after delete', (await request('HEAD', `/${hash}`)).status === 404);
check('list empty after delete', !(await Actions.listBlobs(server, pubkey)).some((d) => d.sha256 === hash));

// --- Blossom: authorizations that must be refused -----------------------------------------
const body = randomBytes(1024);
const bodyHash = sha(body);
const put = async (ev, extra = {}) => request('PUT', '/upload', {
  headers: { Authorization: typeof ev === 'string' ? ev : header(ev), 'X-SHA-256': bodyHash, 'Content-Type': 'application/octet-stream', ...extra },
  body, from: source(),
});
const draft = (tags, kind = 24242, created_at = now()) => ({ kind, created_at, content: 'x', tags });
const good = [['t', 'upload'], ['x', bodyHash], ['expiration', String(now() + 600)]];
const refused = async (name, ev, want = [401]) => {
  const r = await put(ev);
  check(`refused: ${name}`, want.includes(r.status), `(got ${r.status} ${r.headers['x-reason'] || ''})`);
};
await refused('wrong kind', finalizeEvent(draft(good, 27235), sk));
await refused('expired', finalizeEvent(draft([['t', 'upload'], ['x', bodyHash], ['expiration', String(now() - 10)]]), sk));
await refused('wrong t', finalizeEvent(draft([['t', 'delete'], ['x', bodyHash], ['expiration', String(now() + 600)]]), sk));
await refused('wrong x', finalizeEvent(draft([['t', 'upload'], ['x', 'f'.repeat(64)], ['expiration', String(now() + 600)]]), sk), [401, 403]);
await refused('foreign server tag', finalizeEvent(draft([...good, ['server', 'blossom.example.com']]), sk), [401, 403]);
const forged = finalizeEvent(draft(good), sk);
forged.sig = (forged.sig[0] === '0' ? '1' : '0') + forged.sig.slice(1);
await refused('bad signature', forged);
await refused('key without a grant', finalizeEvent(draft(good), stranger), [403]);
// Standard base64 (not base64url) is accepted too: the SDK sends base64url.
const std = 'Nostr ' + Buffer.from(JSON.stringify(finalizeEvent(draft(good), sk))).toString('base64');
const okStd = await put(std);
check('standard base64 authorization accepted', okStd.status === 201, `(${okStd.status} ${okStd.body})`);
// The body is not what X-SHA-256 announced: 409, nothing kept.
const liar = randomBytes(1024);
const lie = await request('PUT', '/upload', {
  headers: { Authorization: header(finalizeEvent(draft([['t', 'upload'], ['x', sha(Buffer.from('other'))], ['expiration', String(now() + 600)]]), sk)), 'X-SHA-256': sha(Buffer.from('other')) },
  body: liar, from: source(),
});
check('body not matching X-SHA-256 is 409', lie.status === 409, `(${lie.status})`);
check('nothing kept after 409', (await request('HEAD', `/${sha(Buffer.from('other'))}`)).status === 404);
// `Expect: 100-continue` (curl sends it for bodies over 1 MiB): the node answers 100 first.
const big2 = randomBytes(3 * 1024 * 1024);
const expectOk = await new Promise((resolve, reject) => {
  const auth = header(finalizeEvent(draft([['t', 'upload'], ['x', sha(big2)], ['expiration', String(now() + 600)]]), sk));
  const req = http.request({ host: url.hostname, port: url.port, method: 'PUT', path: '/upload', agent: false, timeout: 20000,
    headers: { Authorization: auth, 'X-SHA-256': sha(big2), 'Content-Length': String(big2.length), Expect: '100-continue' } }, (res) => {
    res.resume(); res.on('end', () => resolve({ status: res.statusCode, continued }));
  });
  let continued = false;
  req.on('continue', () => { continued = true; req.end(big2); });
  req.on('timeout', () => req.destroy(new Error('timeout')));
  req.on('error', reject);
});
check('Expect: 100-continue gets 100, then 201', expectOk.continued && expectOk.status === 201, JSON.stringify(expectOk));
// BUD-06 preflight with a valid token: 200; over the key's quota: 413.
const pre = await request('HEAD', '/upload', { headers: { Authorization: header(finalizeEvent(draft(good), sk)), 'X-SHA-256': bodyHash, 'X-Content-Length': '1024', 'X-Content-Type': 'application/octet-stream' } });
check('HEAD /upload with a valid token is 200', pre.status === 200, `(${pre.status})`);
const big = await request('HEAD', '/upload', { headers: { Authorization: header(finalizeEvent(draft(good), sk)), 'X-SHA-256': bodyHash, 'X-Content-Length': String(1024 ** 4), 'X-Content-Type': 'application/octet-stream' } });
check('HEAD /upload over the limits is 413', big.status === 413, `(${big.status})`);

// --- NIP-98 on the API ---------------------------------------------------------------------
const api = `${server}/api/v1/torrents`;
const signed = (key, u, method, created_at = now(), extra = []) =>
  finalizeEvent({ kind: 27235, created_at, content: '', tags: [['u', u], ['method', method], ...extra] }, key);
const get = async (ev, from) => request('GET', '/api/v1/torrents', { headers: { Authorization: typeof ev === 'string' ? ev : nip98(ev) }, from: from || source() });
const accepted = await get(signed(sk, api, 'GET'));
check('NIP-98 GET accepted', accepted.status === 200 && accepted.body.includes('"torrents"'), `(${accepted.status} ${accepted.body})`);
const nipRefused = async (name, ev) => {
  const r = await get(ev);
  check(`NIP-98 refused: ${name}`, r.status === 401, `(got ${r.status})`);
};
await nipRefused('wrong URL', signed(sk, `${server}/api/v1/torrents?x=1`, 'GET'));
await nipRefused('wrong method', signed(sk, api, 'POST'));
await nipRefused('stale created_at', signed(sk, api, 'GET', now() - 120));
await nipRefused('from the future', signed(sk, api, 'GET', now() + 120));
await nipRefused('wrong kind', finalizeEvent({ kind: 24242, created_at: now(), content: '', tags: [['u', api], ['method', 'GET']] }, sk));
const badSig = signed(sk, api, 'GET');
badSig.sig = (badSig.sig[0] === '0' ? '1' : '0') + badSig.sig.slice(1);
await nipRefused('bad signature', badSig);
await nipRefused('unknown key', signed(stranger, api, 'GET'));
// A body: its SHA-256 in `payload`. Not a .torrent, so the node answers 400 once past auth.
const postBody = Buffer.from('not a torrent');
const postUrl = `${server}/api/v1/torrents?path=x.bin`;
const post = async (payload) => request('POST', '/api/v1/torrents?path=x.bin', {
  headers: { Authorization: nip98(signed(sk, postUrl, 'POST', now(), [['payload', payload]])), 'Content-Type': 'application/x-bittorrent' },
  body: postBody, from: source(),
});
const right = await post(sha(postBody));
check('NIP-98 POST with the right payload passes auth (400: not a torrent)', right.status === 400, `(${right.status} ${right.body})`);
const wrong = await post(sha(Buffer.from('something else')));
check('NIP-98 POST with a wrong payload hash refused', wrong.status === 401, `(${wrong.status})`);

// --- Lockout: auth.nostr.failed counts ------------------------------------------------------
const attacker = source();
let lastStatus = 0;
for (let i = 0; i < 7; i++) lastStatus = (await get(badSig, attacker)).status;
const after = await get(signed(sk, api, 'GET'), attacker);
check('six NIP-98 failures lock the address out (429)', after.status === 429, `(last ${lastStatus}, then ${after.status})`);
const other = await get(signed(sk, api, 'GET'));
check('another address is still served', other.status === 200, `(${other.status})`);

clearTimeout(killer);
console.log(`${pass} passed, ${fail} failed`);
process.exit(fail ? 1 : 0);
