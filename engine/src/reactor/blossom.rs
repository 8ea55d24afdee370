//! Blossom on the front door (BUD-01, BUD-02, BUD-06, BUD-11, BUD-12; `docs/blossom.md`) and
//! NIP-98 on the API: both authenticate with a Nostr event ([`seednode::nostr_auth`]).
//!
//! - `GET`/`HEAD /<sha256>[.ext]`: the blob's file, served like a webseed (ranges, `sendfile`).
//! - `PUT /upload`: checked on the loop (lockout, kind-24242 event, the key's `upload` grant,
//!   length, quota, uploads at once), then the connection leaves the loop for a thread of its
//!   own, as `UPLOAD_FILE` does ([`super::upload_file`]): the body is streamed into a
//!   [`seednode_storage::Ingest`] (written to `<data>/.seednode-partial/`, hashed for SHA-256
//!   and the torrent's pieces from the same buffer), renamed to `<data>/<sha256>.<ext>`, its
//!   torrent committed to the catalog through the same add path as every upload (events, quota),
//!   seeded, and the blob descriptor written back.
//! - `HEAD /upload` (BUD-06), `DELETE /<sha256>`, `GET /list/<pubkey>`, `OPTIONS` (CORS).
//!
//! A blob is a seeded single-file torrent whose file's SHA-256 the catalog records
//! ([`BlobIndex`]); its media type is the one its file name's extension stands for
//! ([`seednode::blossom::type_for_ext`]).

use crate::daemon::unix_now;
use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::Sender;
use std::time::{Instant, SystemTime};

use mio::Waker;
use seednode::blossom::{self as rules, Route};
use seednode::nostr_auth::{self, AuthError, AuthEvent};
use seednode_storage::catalog::Scopes;
use seednode_storage::{CreateOptions, Ingest, IngestError, NewUpload};
use seednode_wire::InfoHash;
use seednode_wire::upload::{ErrorCode, Reply, UploadId};
use serde_json::json;
use tracing::{info, warn};

use super::Reactor;
use super::catalog::Requester;
use super::front::{Need, Routed};
use super::upload_file::{
    MIN_UPLOAD_BYTES_PER_WINDOW, UPLOAD_CHUNK_LEN, UPLOAD_RATE_WINDOW, UPLOAD_VERDICT_TIMEOUT,
    UploadEvent,
};
use crate::daemon::resume::BlobRecord;
use crate::events::{Event, kind};
use crate::http::{Body, Request, Response};

/// A refused `PUT /upload` whose body is at most this many bytes is read (and dropped) before
/// the refusal is sent, on a connection kept open: 64 KiB. Closing a socket with unread bytes
/// makes the kernel send a reset that can destroy the refusal before the client reads it; a
/// larger body is not worth reading for someone refused, so then the connection closes.
pub(crate) const REFUSAL_DRAIN_LEN: u64 = 64 * 1024;

/// Most `[[nostr.pubkey]]` entries: 1024 (a grant per person; a larger community would use a
/// list kept elsewhere). More: the config is refused at start.
pub(crate) const MAX_NOSTR_GRANTS: usize = 1024;

/// One `[[nostr.pubkey]]` grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NostrGrant {
    /// The x-only public key (BIP-340).
    pub(crate) pubkey: [u8; 32],
    /// What it may do, as a token's scopes.
    pub(crate) scopes: Scopes,
    /// Most torrents it may have in the catalog.
    pub(crate) max_torrents: Option<u64>,
    /// Most payload bytes over its torrents.
    pub(crate) max_bytes: Option<u64>,
}

/// The grants of the config's `[[nostr.pubkey]]` entries.
///
/// # Errors
/// A key that does not parse, an unknown scope, too many entries (worded for the operator).
pub(crate) fn grants(
    entries: &[crate::daemon::config::NostrPubkeyConfig],
) -> Result<Vec<NostrGrant>, String> {
    if entries.len() > MAX_NOSTR_GRANTS {
        return Err(format!(
            "[[nostr.pubkey]]: {} entries, at most {MAX_NOSTR_GRANTS}",
            entries.len()
        ));
    }
    entries
        .iter()
        .map(|e| {
            let pubkey = nostr_auth::parse_pubkey(&e.npub)
                .map_err(|err| format!("[[nostr.pubkey]] {}: {err}", e.npub))?;
            let scopes = Scopes::parse(&e.scopes.join(","))
                .ok_or_else(|| format!("[[nostr.pubkey]] {}: unknown or no scopes", e.npub))?;
            Ok(NostrGrant {
                pubkey,
                scopes,
                max_torrents: e.quota_torrents,
                max_bytes: e.quota_bytes,
            })
        })
        .collect()
}

/// A blob the node serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BlobEntry {
    /// The torrent it is the file of.
    pub(crate) info_hash: InfoHash,
    /// Who added it (a Nostr public key in hex for Blossom uploads).
    pub(crate) owner: Option<Box<str>>,
    /// When, seconds since the Unix epoch.
    pub(crate) uploaded: i64,
    /// Its media type.
    pub(crate) mime: &'static str,
    /// Its extension in URLs.
    pub(crate) ext: &'static str,
    /// Its length in bytes.
    pub(crate) size: u64,
}

/// Blobs by SHA-256.
pub(crate) type BlobIndex = HashMap<[u8; 32], BlobEntry>;

/// Adds BUD-01's CORS headers.
fn cors(mut r: Response) -> Response {
    for (name, value) in rules::CORS_HEADERS {
        r = r.header(name, *value);
    }
    r
}

/// A Blossom error: the status, `X-Reason` (BUD-01) and the same text as the body.
fn blossom_error(status: u16, reason: &str) -> Response {
    cors(Response::error(status, reason).header("X-Reason", reason))
}

/// A 401 asking for a Nostr authorization.
fn unauthorized(reason: &str) -> Response {
    blossom_error(401, reason).header("WWW-Authenticate", "Nostr")
}

/// What an accepted `PUT /upload` becomes.
struct UploadPlan {
    sha256: [u8; 32],
    pubkey: String,
    length: u64,
    ext: &'static str,
    /// The hash came from `X-SHA-256` (a mismatch is 409) rather than the event's `x` tag.
    declared: bool,
}

impl Reactor {
    /// The grant of `pubkey`, if the config has one.
    fn nostr_grant(&self, pubkey: &[u8; 32]) -> Option<&NostrGrant> {
        self.config
            .nostr_pubkeys
            .iter()
            .find(|g| g.pubkey == *pubkey)
    }

    /// The quota of a Nostr public key owner (64 hex digits), when `actor` is one with a grant.
    pub(super) fn nostr_quota(&self, actor: &str) -> Option<(Option<u64>, Option<u64>)> {
        let key = nostr_auth::unhex::<32>(actor)?;
        self.nostr_grant(&key)
            .map(|g| (g.max_torrents, g.max_bytes))
    }

    /// Records a seeded catalog torrent that is a blob.
    pub(super) fn index_blob(&mut self, info_hash: InfoHash, name: &str, size: u64, b: BlobRecord) {
        let (mime, ext) = match rules::from_file_name(name) {
            Some((named, mime)) if named == b.sha256 => (
                mime,
                name.rsplit_once('.').map_or("bin", |(_, e)| ext_static(e)),
            ),
            _ => ("application/octet-stream", "bin"),
        };
        self.blobs.insert(
            b.sha256,
            BlobEntry {
                info_hash,
                owner: b.owner.map(String::into_boxed_str),
                uploaded: b.added_at,
                mime,
                ext,
                size,
            },
        );
    }

    /// The base URL blobs are named under: `http://<Host>` when the `Host` is one the node
    /// answers to, else its local address.
    fn blob_base(&self, req: &Request, local: SocketAddr) -> String {
        let host = req
            .host
            .as_deref()
            .filter(|h| crate::front_door::host_allowed(Some(h), &self.config.allowed_hosts))
            .map_or_else(|| local.to_string(), str::to_owned);
        format!("http://{host}")
    }

    /// The blob descriptor (BUD-02) of `sha256`, with its `magnet` and `infohash`.
    fn descriptor(&self, sha256: &[u8; 32], blob: &BlobEntry, base: &str) -> serde_json::Value {
        let hex = nostr_auth::hex(sha256);
        json!({
            "url": format!("{base}/{hex}.{}", blob.ext),
            "sha256": hex,
            "size": blob.size,
            "type": blob.mime,
            "uploaded": blob.uploaded,
            "infohash": blob.info_hash.to_hex(),
            "magnet": self.upload_magnet(blob.info_hash, None),
        })
    }

    /// Emits a Nostr authentication event: `auth.nostr.failed` (counted by the lockout) or
    /// `auth.nostr.success`.
    pub(super) fn nostr_event(
        &mut self,
        kind: &'static str,
        ip: std::net::IpAddr,
        pubkey: Option<&[u8; 32]>,
        surface: &str,
        reason: &str,
    ) {
        let mut event = Event::new(kind, unix_now());
        event.source = Some(ip);
        event.actor = pubkey.map(|k| nostr_auth::hex(k));
        event.details = json!({ "surface": surface });
        if !reason.is_empty() {
            event.details["reason"] = json!(reason);
        }
        let now = self.now;
        self.events.emit(now, &event);
    }

    /// NIP-98 (`Authorization: Nostr <base64 kind-27235 event>`) for an API request needing
    /// `need`: decoded, verified, checked against the request (`u` is `http://<Host><target>`,
    /// the method, the window, the `payload` hash of `body`; `None` while the body has not
    /// arrived yet, then the payload is checked on the full request), and the key's grant.
    /// Returns the key (hex) as the actor.
    pub(super) fn authorize_nostr(
        &mut self,
        req: &Request,
        remote: SocketAddr,
        need: Need,
        record: bool,
        body: Option<&[u8]>,
    ) -> Result<Option<Box<str>>, Response> {
        let ip = seednode_wire::addr::canonical_ip(remote.ip());
        let header = req.authorization.as_deref().unwrap_or("");
        let target = if req.query.is_empty() {
            req.path.clone()
        } else {
            format!("{}?{}", req.path, String::from_utf8_lossy(&req.query))
        };
        let url = format!("http://{}{target}", req.host.as_deref().unwrap_or(""));
        let checked = nostr_auth::decode_header(header).and_then(|ev| {
            nostr_auth::verify_event(&ev)?;
            match body {
                Some(b) => nostr_auth::check_nip98(
                    &ev,
                    &nostr_auth::HttpRequestFacts {
                        url: &url,
                        method: &req.method,
                        body_sha256: (!b.is_empty()).then(|| nostr_auth::sha256(b)),
                    },
                    unix_now(),
                )?,
                None => {
                    // The payload is checked once the body is in; the rest now.
                    let facts = nostr_auth::HttpRequestFacts {
                        url: &url,
                        method: &req.method,
                        body_sha256: None,
                    };
                    match nostr_auth::check_nip98(&ev, &facts, unix_now()) {
                        Ok(()) | Err(AuthError::Tag("payload")) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            Ok(ev)
        });
        let ev = match checked {
            Ok(ev) => ev,
            Err(e) => {
                self.nostr_event(kind::NOSTR_AUTH_FAILED, ip, None, "api", &e.to_string());
                return Err(Response::error(401, &format!("NIP-98: {e}"))
                    .header("WWW-Authenticate", "Nostr"));
            }
        };
        let Some(grant) = self.nostr_grant(&ev.pubkey).cloned() else {
            self.nostr_event(
                kind::NOSTR_AUTH_FAILED,
                ip,
                Some(&ev.pubkey),
                "api",
                "no grant for this key",
            );
            return Err(
                Response::error(401, "NIP-98: this key has no grant on this node")
                    .header("WWW-Authenticate", "Nostr"),
            );
        };
        if !grant.scopes.contains(Scopes::ADMIN) && !grant.scopes.contains(need.scopes()) {
            self.auth_event(
                record,
                kind::AUTH_DENIED,
                ip,
                Some(&ev.pubkey_hex()),
                "insufficient_scope",
                need,
            );
            return Err(Response::error(403, "the key lacks the scope"));
        }
        if record && matches!(need, Need::Write | Need::Upload) {
            self.nostr_event(kind::NOSTR_AUTH_SUCCESS, ip, Some(&ev.pubkey), "api", "");
        }
        Ok(Some(ev.pubkey_hex().into_boxed_str()))
    }

    /// A Blossom authorization (BUD-11) for `verb`, naming `x` when given: the verified event,
    /// or the refusal (401; 429 when the address is locked out). With `record`, a refusal is an
    /// `auth.nostr.failed` event.
    fn blossom_auth(
        &mut self,
        req: &Request,
        remote: SocketAddr,
        verb: &str,
        x: Option<&[u8; 32]>,
        record: bool,
    ) -> Result<AuthEvent, Response> {
        let ip = seednode_wire::addr::canonical_ip(remote.ip());
        if self.lockout.borrow().is_locked(ip, self.now) {
            return Err(blossom_error(429, "too many failed authentications")
                .header("Retry-After", self.config.lockout.as_secs().to_string()));
        }
        let Some(header) = req.authorization.as_deref() else {
            return Err(unauthorized(
                "a Nostr authorization (kind 24242) is required",
            ));
        };
        let host = req
            .host
            .as_deref()
            .map(|h| strip_port(h).to_ascii_lowercase())
            .unwrap_or_default();
        let checked = nostr_auth::decode_header(header).and_then(|ev| {
            nostr_auth::verify_event(&ev)?;
            nostr_auth::check_blossom(
                &ev,
                &nostr_auth::BlossomFacts {
                    verb,
                    x,
                    server: &host,
                },
                unix_now(),
            )?;
            Ok(ev)
        });
        checked.map_err(|e| {
            if record {
                self.nostr_event(kind::NOSTR_AUTH_FAILED, ip, None, "blossom", &e.to_string());
            }
            unauthorized(&format!("authorization refused: {e}"))
        })
    }

    /// Routes a Blossom request (`route` from [`rules::route`]) on connection `key`.
    pub(super) fn blossom(&mut self, key: usize, req: &Request, route: Route<'_>) -> Routed {
        let Some(conn) = self.conns.get(key) else {
            return Routed::Now(Response::error(503, ""));
        };
        let (remote, local, generation) = (conn.remote, conn.local, conn.generation);
        match route {
            Route::Preflight => Routed::Now(cors(Response::new(204, "text/plain", ""))),
            Route::NotAllowed(allow) => {
                Routed::Now(blossom_error(405, "method not allowed").header("Allow", allow))
            }
            Route::Blob { sha256, .. } => Routed::Now(self.serve_blob(&sha256, req)),
            Route::List { pubkey } => Routed::Now(self.list_blobs(&pubkey, req, local)),
            Route::UploadCheck => Routed::Now(self.upload_check(req, remote)),
            Route::Upload => {
                // Here only with a small body read after a refusal (see `blossom_put`).
                let refusal = match self.upload_plan(req, remote, true) {
                    Err(r) => r,
                    Ok(_) => blossom_error(503, "retry the upload"),
                };
                Routed::Now(refusal)
            }
            Route::Delete { sha256 } => {
                let ev = match self.blossom_auth(req, remote, "delete", Some(&sha256), true) {
                    Ok(ev) => ev,
                    Err(r) => return Routed::Now(r),
                };
                let Some(blob) = self.blobs.get(&sha256).cloned() else {
                    return Routed::Now(blossom_error(404, "no such blob"));
                };
                let pubkey = ev.pubkey_hex();
                let admin = self
                    .nostr_grant(&ev.pubkey)
                    .is_some_and(|g| g.scopes.contains(Scopes::ADMIN));
                if !admin && blob.owner.as_deref() != Some(pubkey.as_str()) {
                    let ip = seednode_wire::addr::canonical_ip(remote.ip());
                    self.auth_event(
                        true,
                        kind::AUTH_DENIED,
                        ip,
                        Some(&pubkey),
                        "not the uploader",
                        Need::Write,
                    );
                    return Routed::Now(blossom_error(
                        403,
                        "only the uploader or an admin may delete this blob",
                    ));
                }
                let ip = seednode_wire::addr::canonical_ip(remote.ip());
                self.nostr_event(
                    kind::NOSTR_AUTH_SUCCESS,
                    ip,
                    Some(&ev.pubkey),
                    "blossom",
                    "",
                );
                let requester = Requester {
                    key,
                    generation,
                    actor: Some(pubkey.into_boxed_str()),
                    source: Some(remote.ip()),
                };
                let delete = Request {
                    method: "DELETE".into(),
                    query: b"delete_data=true".to_vec(),
                    ..Request::default()
                };
                let ih = blob.info_hash.to_hex();
                self.manage_request(requester, &delete, &["torrents", ih.as_str()])
                    .unwrap_or_else(|| Routed::Now(blossom_error(500, "")))
            }
        }
    }

    /// `GET`/`HEAD /<sha256>[.ext]`: the blob's bytes with its type, ranges as the webseed.
    fn serve_blob(&self, sha256: &[u8; 32], req: &Request) -> Response {
        let Some(blob) = self.blobs.get(sha256) else {
            return blossom_error(404, "no such blob");
        };
        let Some(&index) = self.by_hash.get(&blob.info_hash) else {
            return blossom_error(404, "no such blob");
        };
        let Some(slot) = self.torrents.get(index).filter(|s| !s.removed) else {
            return blossom_error(404, "no such blob");
        };
        let Ok(file) = slot.torrent.storage.file(0) else {
            return blossom_error(503, "the blob cannot be read");
        };
        let mut response = cors(self.serve_file(file, req));
        response.content_type = blob.mime;
        response.header("X-Content-Type-Options", "nosniff")
    }

    /// `GET /list/<pubkey>[?since=&until=&limit=]` (BUD-12): the key's blobs, newest first.
    fn list_blobs(&self, pubkey: &[u8; 32], req: &Request, local: SocketAddr) -> Response {
        let owner = nostr_auth::hex(pubkey);
        let since = super::front::query_value(&req.query, b"since")
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(i64::MIN);
        let until = super::front::query_value(&req.query, b"until")
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(i64::MAX);
        let limit = super::front::query_value(&req.query, b"limit")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(rules::MAX_LIST_LEN)
            .min(rules::MAX_LIST_LEN);
        let mut mine: Vec<(&[u8; 32], &BlobEntry)> = self
            .blobs
            .iter()
            .filter(|(_, b)| b.owner.as_deref() == Some(owner.as_str()))
            .filter(|(_, b)| b.uploaded >= since && b.uploaded <= until)
            .collect();
        mine.sort_by(|a, b| b.1.uploaded.cmp(&a.1.uploaded).then(a.0.cmp(b.0)));
        mine.truncate(limit);
        let base = self.blob_base(req, local);
        let list: Vec<serde_json::Value> = mine
            .into_iter()
            .map(|(h, b)| self.descriptor(h, b, &base))
            .collect();
        cors(super::front::json_response(200, &json!(list)))
    }

    /// `HEAD /upload` (BUD-06): would this upload be accepted? 401 without a valid
    /// authorization (so clients sign and retry), 403 for a key without `upload`, 411/413 for
    /// a missing or too large `X-Content-Length`, 200 otherwise.
    fn upload_check(&mut self, req: &Request, remote: SocketAddr) -> Response {
        let x = req.x_sha256.as_deref().and_then(nostr_auth::unhex::<32>);
        if req.x_sha256.is_some() && x.is_none() {
            return blossom_error(400, "X-SHA-256 is not 64 hex digits");
        }
        let ev = match self.blossom_auth(req, remote, "upload", x.as_ref(), true) {
            Ok(ev) => ev,
            Err(r) => return r,
        };
        if let Err(r) = self.upload_grant(&ev, remote) {
            return r;
        }
        let Some(length) = req
            .x_content_length
            .as_deref()
            .and_then(|v| v.parse::<u64>().ok())
        else {
            return blossom_error(411, "X-Content-Length is required");
        };
        if let Err(r) = self.length_allowed(&ev.pubkey_hex(), length) {
            return r;
        }
        cors(Response::new(200, "text/plain", ""))
    }

    /// The key's `upload` grant, or 403.
    fn upload_grant(&mut self, ev: &AuthEvent, remote: SocketAddr) -> Result<(), Response> {
        let allowed = self
            .nostr_grant(&ev.pubkey)
            .is_some_and(|g| g.scopes.contains(Scopes::UPLOAD) || g.scopes.contains(Scopes::ADMIN));
        if allowed {
            return Ok(());
        }
        let ip = seednode_wire::addr::canonical_ip(remote.ip());
        self.auth_event(
            true,
            kind::AUTH_DENIED,
            ip,
            Some(&ev.pubkey_hex()),
            "no upload grant",
            Need::Upload,
        );
        Err(blossom_error(
            403,
            "this key may not upload here (no `upload` grant)",
        ))
    }

    /// Whether a blob of `length` bytes fits the limits and the key's byte quota.
    fn length_allowed(&self, pubkey: &str, length: u64) -> Result<(), Response> {
        if length == 0 {
            return Err(blossom_error(400, "an empty blob"));
        }
        if length > rules::MAX_BLOB_LEN {
            return Err(blossom_error(413, "the blob is over the node's size limit"));
        }
        if self
            .owner_of(pubkey)
            .max_bytes
            .is_some_and(|max| length > max)
        {
            return Err(blossom_error(413, "the blob is over this key's byte quota"));
        }
        Ok(())
    }

    /// Everything checked on the loop before a `PUT /upload` body byte is read.
    fn upload_plan(
        &mut self,
        req: &Request,
        remote: SocketAddr,
        record: bool,
    ) -> Result<UploadPlan, Response> {
        let declared = match req.x_sha256.as_deref() {
            Some(v) => Some(
                nostr_auth::unhex::<32>(v)
                    .ok_or_else(|| blossom_error(400, "X-SHA-256 is not 64 hex digits"))?,
            ),
            None => None,
        };
        let ev = self.blossom_auth(req, remote, "upload", declared.as_ref(), record)?;
        let (sha256, from_header) = match declared {
            Some(h) => (h, true),
            None => match nostr_auth::x_hashes(&ev).as_slice() {
                [one] => (*one, false),
                [] => {
                    if record {
                        let ip = seednode_wire::addr::canonical_ip(remote.ip());
                        self.nostr_event(
                            kind::NOSTR_AUTH_FAILED,
                            ip,
                            Some(&ev.pubkey),
                            "blossom",
                            "no x tag",
                        );
                    }
                    return Err(unauthorized("the authorization names no blob (`x` tag)"));
                }
                _ => {
                    return Err(blossom_error(
                        400,
                        "the authorization names several blobs: send X-SHA-256",
                    ));
                }
            },
        };
        if record {
            self.upload_grant(&ev, remote)?;
        } else if !self
            .nostr_grant(&ev.pubkey)
            .is_some_and(|g| g.scopes.contains(Scopes::UPLOAD) || g.scopes.contains(Scopes::ADMIN))
        {
            return Err(blossom_error(403, "no upload grant"));
        }
        let pubkey = ev.pubkey_hex();
        let Some(length) = req.blob_length else {
            return Err(blossom_error(411, "Content-Length is required"));
        };
        self.length_allowed(&pubkey, length)?;
        if self.catalog.is_none() || self.config.content_root.is_none() {
            return Err(blossom_error(
                405,
                "uploads need `seednode run` (the catalog)",
            ));
        }
        Ok(UploadPlan {
            sha256,
            pubkey,
            length,
            ext: rules::ext_for_type(req.content_type.as_deref()),
            declared: from_header,
        })
    }

    /// A `PUT /upload` head on connection `key` (the body follows in the socket): refused at
    /// once, or the connection leaves the loop for an upload thread.
    pub(super) fn blossom_put(
        &mut self,
        key: usize,
        now: Instant,
        request: Box<Request>,
        served: usize,
    ) {
        let Some(conn) = self.conns.get(key) else {
            return;
        };
        let (remote, local) = (conn.remote, conn.local);
        let plan = match self.upload_plan(&request, remote, false) {
            Ok(plan) => plan,
            Err(refusal) => {
                let length = request.blob_length.unwrap_or(0);
                if request.expect_continue && length > 0 {
                    // The client waits for `100 Continue` before the body: refuse at once.
                    let refusal = match self.upload_plan(&request, remote, true) {
                        Err(r) => r,
                        Ok(_) => refusal,
                    };
                    self.refuse(key, now, refusal, served);
                    return;
                }
                if length == 0 {
                    // No body: answered (and recorded) by the router, connection kept.
                    self.respond(key, now, &request, &[], served);
                    return;
                }
                if length <= REFUSAL_DRAIN_LEN {
                    // Read the small body, then answer (recorded then) on an open connection.
                    let mut request = request;
                    request.content_length = usize::try_from(length).unwrap_or(0);
                    if let Some(conn) = self.conns.get_mut(key) {
                        conn.state = super::conn::ConnState::HttpBody {
                            request,
                            served,
                            since: now,
                        };
                    }
                    return;
                }
                let refusal = match self.upload_plan(&request, remote, true) {
                    Err(r) => r,
                    Ok(_) => refusal,
                };
                self.refuse(key, now, refusal, served);
                return;
            }
        };
        let base = self.blob_base(&request, local);
        // The same blob again: its descriptor, once the body is read.
        let existing = self
            .blobs
            .get(&plan.sha256)
            .map(|b| (b.info_hash, self.descriptor(&plan.sha256, b, &base)));
        // A body read and dropped holds a thread too: it counts as an upload.
        if self.uploads.full_for(&plan.pubkey) {
            let r = blossom_error(503, "too many uploads at once; retry later")
                .header("Retry-After", "5");
            self.refuse(key, now, r, served);
            return;
        }
        let mut id = [0u8; seednode_wire::upload::UPLOAD_ID_LEN];
        if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut id).is_err() {
            self.refuse(key, now, blossom_error(500, "no randomness"), served);
            return;
        }
        let upload_id = UploadId::from_bytes(id);
        let Some(content_root) = self.config.content_root.clone() else {
            return;
        };
        let ip = seednode_wire::addr::canonical_ip(remote.ip());
        let key_bytes = nostr_auth::unhex::<32>(&plan.pubkey);
        self.nostr_event(
            kind::NOSTR_AUTH_SUCCESS,
            ip,
            key_bytes.as_ref(),
            "blossom",
            "",
        );
        let Some((stream, leftover)) = self.detach(key) else {
            return;
        };
        self.stats.http_requests += 1;
        if existing.is_none() {
            let mut event = Event::new(kind::UPLOAD_STARTED, unix_now());
            event.source = Some(remote.ip());
            event.actor = Some(plan.pubkey.clone());
            event.details = json!({
                "surface": "blossom",
                "kind": "blob",
                "sha256": nostr_auth::hex(&plan.sha256),
                "bytes": plan.length,
                "upload_id": upload_id.to_string(),
            });
            self.events.emit(now, &event);
        }
        let job = BlobJob {
            expect_continue: request.expect_continue,
            stream,
            leftover,
            plan,
            upload_id,
            source: remote,
            content_root,
            base,
            existing,
            events: self.uploads.tx.clone(),
            waker: self.waker(),
        };
        let owner = job.plan.pubkey.clone();
        self.uploads
            .spawn("blossom-upload", &owner, upload_id, move || run(job));
    }

    /// `GET`/`HEAD` of an open file with one `Range` (RFC 9110 §14), as the webseed serves:
    /// `ETag`/`Last-Modified` validators, `If-Range`, `sendfile` body.
    pub(super) fn serve_file(&self, file: Arc<std::fs::File>, req: &Request) -> Response {
        use crate::front_door::{self, RangeAsk};
        let Ok(meta) = file.metadata() else {
            return Response::error(503, "the file cannot be read");
        };
        let len = meta.len();
        let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        let etag = front_door::etag(modified, len);
        let last_modified = front_door::http_date(modified);
        let ask = match &req.range {
            Some(r)
                if front_door::if_range_holds(req.if_range.as_deref(), &etag, &last_modified) =>
            {
                front_door::parse_range(r, len)
            }
            _ => RangeAsk::Whole,
        };
        let (status, offset, body_len) = match ask {
            RangeAsk::Whole => (200, 0, len),
            RangeAsk::Part { start, end } => (206, start, end - start + 1),
            RangeAsk::Unsatisfiable => {
                return Response::error(416, "")
                    .header("Content-Range", format!("bytes */{len}"))
                    .header("Accept-Ranges", "bytes");
            }
        };
        let mut response = Response {
            status,
            content_type: "application/octet-stream",
            headers: Vec::new(),
            body: Body::File {
                file,
                offset,
                len: body_len,
            },
            close: false,
        }
        .header("Accept-Ranges", "bytes")
        .header("ETag", etag)
        .header("Last-Modified", last_modified);
        if status == 206 {
            response = response.header(
                "Content-Range",
                format!("bytes {offset}-{}/{len}", offset + body_len - 1),
            );
        }
        if body_len == 0 {
            response.body = Body::Bytes(bytes::Bytes::new());
        }
        response
    }
}

/// `host[:port]` without the port (IPv6 literals keep their brackets).
fn strip_port(host: &str) -> &str {
    match host.rsplit_once(':') {
        Some((h, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

/// The extension as a `'static` string from the node's type table (`bin` if not in it).
fn ext_static(ext: &str) -> &'static str {
    rules::ext_for_type(Some(rules::type_for_ext(ext)))
}

/// Everything a Blossom upload thread needs.
struct BlobJob {
    /// The client waits for `100 Continue` before sending the body.
    expect_continue: bool,
    stream: std::net::TcpStream,
    leftover: bytes::BytesMut,
    plan: UploadPlan,
    upload_id: UploadId,
    source: SocketAddr,
    content_root: PathBuf,
    base: String,
    /// The blob is already here (its torrent and descriptor): read the body, answer this.
    existing: Option<(InfoHash, serde_json::Value)>,
    events: Sender<UploadEvent>,
    waker: Arc<Waker>,
}

/// The HTTP/1.1 response of an upload thread (the connection closes after it).
fn write_response(stream: &mut std::net::TcpStream, response: Response) {
    let mut response = response;
    response.close = true;
    let mut bytes = response.head().to_vec();
    if let Body::Bytes(b) = &response.body {
        bytes.extend_from_slice(b);
    }
    let _ = stream.write_all(&bytes);
    let _ = stream.flush();
}

/// The upload thread: stream, hash, store, commit, answer; then release its upload slot (the
/// `Finished` event).
fn run(mut job: BlobJob) {
    if job.expect_continue {
        let _ = job.stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
    }
    let (response, outcome) = match job.existing.take() {
        Some((info_hash, descriptor)) => match drain(&mut job) {
            Ok(()) => (
                Some(cors(super::front::json_response(200, &descriptor))),
                Ok(info_hash.to_hex()),
            ),
            Err(()) => (
                None,
                Err((ErrorCode::Malformed, "connection lost".to_owned())),
            ),
        },
        None => match store(&mut job) {
            Ok((response, ih)) => (Some(response), Ok(ih)),
            Err((response, code, reason)) => (response, Err((code, reason))),
        },
    };
    if let Some(response) = response {
        write_response(&mut job.stream, response);
    }
    let _ = job.stream.shutdown(std::net::Shutdown::Both);
    let _ = job.events.send(UploadEvent::Finished {
        upload_id: job.upload_id,
        source: job.source,
        owner: job.plan.pubkey.clone(),
        outcome,
        surface: "blossom",
    });
    let _ = job.waker.wake();
}

/// Reads and drops the body (a blob the node has already).
fn drain(job: &mut BlobJob) -> Result<(), ()> {
    let mut left = job
        .plan
        .length
        .checked_sub(job.leftover.len() as u64)
        .ok_or(())?;
    let mut buf = vec![0u8; UPLOAD_CHUNK_LEN];
    while left > 0 {
        let want = usize::try_from(left).map_or(buf.len(), |l| l.min(buf.len()));
        match job.stream.read(&mut buf[..want]) {
            Ok(0) | Err(_) => return Err(()),
            Ok(n) => left -= n as u64,
        }
    }
    Ok(())
}

type Refusal = (Option<Response>, ErrorCode, String);

/// The HTTP status of an ingest error.
fn ingest_status(e: &IngestError, declared: bool) -> u16 {
    match e {
        IngestError::Sha256Mismatch if declared => 409,
        IngestError::Sha256Mismatch => 403,
        IngestError::TooLarge { .. } => 413,
        IngestError::Exists => 409,
        IngestError::Empty | IngestError::Overrun { .. } | IngestError::BadName(_) => 400,
        _ if e.code() == ErrorCode::Busy => 507,
        _ => 500,
    }
}

/// Streams the body into an [`Ingest`], stores it, has the loop commit its torrent, and
/// returns the response with the info-hash.
fn store(job: &mut BlobJob) -> Result<(Response, String), Refusal> {
    let plan = &job.plan;
    let refuse = |status: u16, code: ErrorCode, reason: String| -> Result<_, Refusal> {
        Err((Some(blossom_error(status, &reason)), code, reason))
    };
    let opts = CreateOptions {
        threads: 1,
        ..CreateOptions::default()
    };
    let name = rules::file_name(&plan.sha256, plan.ext);
    let upload = NewUpload {
        upload_id: job.upload_id,
        name: &name,
        length: plan.length,
        sha256: Some(plan.sha256),
        owner: &plan.pubkey,
    };
    let mut ingest = match Ingest::start(&job.content_root, &upload, &opts) {
        Ok(i) => i,
        Err(e) => return refuse(ingest_status(&e, plan.declared), e.code(), e.to_string()),
    };
    if job.leftover.len() as u64 > plan.length {
        let _ = ingest.abort();
        return refuse(400, ErrorCode::Malformed, "bytes after the body".into());
    }
    if !job.leftover.is_empty()
        && let Err(e) = ingest.write(&job.leftover)
    {
        let _ = ingest.abort();
        return refuse(ingest_status(&e, plan.declared), e.code(), e.to_string());
    }
    let mut buf = vec![0u8; UPLOAD_CHUNK_LEN];
    let (mut window_start, mut window_bytes) = (Instant::now(), 0u64);
    while ingest.offset() < plan.length {
        let want =
            usize::try_from(plan.length - ingest.offset()).map_or(buf.len(), |r| r.min(buf.len()));
        if window_start.elapsed() >= UPLOAD_RATE_WINDOW {
            if window_bytes < MIN_UPLOAD_BYTES_PER_WINDOW {
                let _ = ingest.abort();
                return refuse(408, ErrorCode::Busy, "the upload is too slow".into());
            }
            (window_start, window_bytes) = (Instant::now(), 0);
        }
        match job.stream.read(&mut buf[..want]) {
            Ok(0) | Err(_) => {
                // Blossom has no resume: what arrived goes.
                let _ = ingest.abort();
                return Err((None, ErrorCode::Malformed, "connection lost".into()));
            }
            Ok(n) => {
                window_bytes += n as u64;
                if let Err(e) = ingest.write(&buf[..n]) {
                    let _ = ingest.abort();
                    return refuse(ingest_status(&e, plan.declared), e.code(), e.to_string());
                }
            }
        }
    }
    let ingested = match ingest.finish() {
        Ok(i) => i,
        Err(e) => {
            let reason = if matches!(e, IngestError::Sha256Mismatch) {
                "the body's SHA-256 is not the one announced".to_owned()
            } else {
                e.to_string()
            };
            return refuse(ingest_status(&e, plan.declared), e.code(), reason);
        }
    };
    let data_path = job.content_root.join(&name);
    let verified = std::fs::symlink_metadata(&data_path).ok().map(|m| {
        use std::os::unix::fs::MetadataExt as _;
        (
            m.mtime()
                .saturating_mul(1_000_000_000)
                .saturating_add(m.mtime_nsec()),
            ingested.sha256,
        )
    });
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let stored = UploadEvent::Stored {
        metainfo: ingested.metainfo.to_bytes(),
        data_path: data_path.clone(),
        owner: plan.pubkey.clone(),
        source: job.source,
        verified,
        reply: tx,
    };
    if job.events.send(stored).is_err() {
        let _ = std::fs::remove_file(&data_path);
        return refuse(503, ErrorCode::Internal, "the node is stopping".into());
    }
    let _ = job.waker.wake();
    let Ok(verdict) = rx.recv_timeout(UPLOAD_VERDICT_TIMEOUT) else {
        return refuse(
            503,
            ErrorCode::Busy,
            "stored, but the catalog did not confirm in time; check with HEAD before retrying"
                .into(),
        );
    };
    match verdict {
        Reply::Ok { info_hash, magnet } => {
            info!(sha256 = %nostr_auth::hex(&plan.sha256), bytes = plan.length, "blob stored");
            let hex = nostr_auth::hex(&plan.sha256);
            let descriptor = json!({
                "url": format!("{}/{hex}.{}", job.base, plan.ext),
                "sha256": hex,
                "size": plan.length,
                "type": rules::type_for_ext(plan.ext),
                "uploaded": unix_now(),
                "infohash": info_hash.to_hex(),
                "magnet": magnet,
            });
            Ok((
                cors(super::front::json_response(201, &descriptor)),
                info_hash.to_hex(),
            ))
        }
        Reply::Err { code, reason } => {
            if let Err(e) = std::fs::remove_file(&data_path) {
                warn!(error = %e, "blob not removed after a refusal");
            }
            let status = match code {
                ErrorCode::Exists => 409,
                ErrorCode::Quota => 413,
                ErrorCode::Busy => 503,
                _ => 500,
            };
            refuse(status, code, reason)
        }
        Reply::Upload { .. } => refuse(500, ErrorCode::Internal, "unexpected reply".into()),
    }
}
