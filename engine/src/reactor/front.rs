//! The HTTP front door on the node's ports: the built-in tracker (`/announce`, `/scrape`),
//! `/metrics` and `/healthz`, the JSON API under `/api/v1/`, `.torrent` files and magnets under
//! `/t/`, BEP 19 webseeds under `/webseed/`, and the status page at `/`.
//!
//! Routing happens here; parsing and the pure rules (ranges, validators, tokens, hosts,
//! escaping) are in `crate::http` and `crate::front_door`. Responses go out in request order;
//! file bodies are sent with `sendfile`.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Instant, SystemTime};

use seednode_storage::catalog::Scopes;
use seednode_wire::InfoHash;
use seednode_wire::magnet::MagnetLink;
use seednode_wire::metainfo::Metainfo;
use serde_json::json;

use super::Reactor;
use super::conn::ConnState;
use super::torrent::TorrentSlot;
use crate::events::kind;
use crate::front_door;
use crate::http::{self, Body, Request, Response};

/// What an API request needs (RFC 6750 scopes, as tokens carry them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Need {
    /// Reading the catalog and live state.
    Read,
    /// `/metrics` (also open to loopback).
    Metrics,
    /// Adding torrents (`upload` scope).
    Upload,
    /// Changing what the node seeds otherwise: removing, pausing (`admin`).
    Write,
}

impl Need {
    pub(super) const fn scopes(self) -> Scopes {
        match self {
            Self::Read => Scopes::READ,
            Self::Metrics => Scopes::METRICS,
            Self::Upload => Scopes::UPLOAD,
            Self::Write => Scopes::ADMIN,
        }
    }

    const fn scope(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Metrics => "metrics",
            Self::Upload => "upload",
            Self::Write => "admin",
        }
    }
}

const JSON: &str = "application/json";

/// Largest body of `POST /oauth/token` and `POST /oauth/introspect`, bytes: a form with a grant
/// type, scopes, client credentials or a token is well under 1 KiB.
pub(super) const MAX_OAUTH_BODY_LEN: usize = 4096;

/// A response now, or later (the request went to the catalog worker with this id).
pub(super) enum Routed {
    /// Send this.
    Now(Response),
    /// Wait for the catalog's reply to this request.
    Later(u64),
}

impl Reactor {
    /// Answers `request` (with its `body`) on connection `key`, the `served`-th on it: queues the
    /// response and sets the connection's next state (another request, or close once sent).
    pub(super) fn respond(
        &mut self,
        key: usize,
        now: Instant,
        request: &Request,
        body: &[u8],
        served: usize,
    ) {
        self.stats.http_requests += 1;
        let response = match self.route(key, now, request, body) {
            Routed::Now(r) => r,
            Routed::Later(request_id) => {
                if let Some(conn) = self.conns.get_mut(key) {
                    conn.state = ConnState::HttpWaiting {
                        request: request_id,
                        served,
                        since: now,
                        close: request.close,
                    };
                }
                return;
            }
        };
        self.send_response(key, now, response, request.close, request.is_head(), served);
    }

    /// Whether the body announced by `request` may be read. Only `POST /api/v1/torrents` takes
    /// one, from an allowed `Host` with a token allowed to write; anything else is refused
    /// before a byte of the body is buffered (the refusal closes the connection), so an
    /// anonymous client cannot make the node hold 10 MiB per connection.
    pub(super) fn check_body(&mut self, key: usize, request: &Request) -> Result<(), Response> {
        let Some(conn) = self.conns.get(key) else {
            return Err(Response::error(503, ""));
        };
        if request.method == "POST" && request.path.starts_with("/oauth/") {
            // Small form bodies; the credentials are inside (or in Basic), checked after.
            if request.content_length > MAX_OAUTH_BODY_LEN {
                return Err(Response::error(
                    413,
                    "an OAuth request body is a small form",
                ));
            }
            let ip = seednode_wire::addr::canonical_ip(conn.remote.ip());
            if self.lockout.borrow().is_locked(ip, self.now) {
                return Err(Response::error(429, "too many failed authentications")
                    .header("Retry-After", self.config.lockout.as_secs().to_string()));
            }
            return Ok(());
        }
        if request.method == "POST"
            && let Some(rest) = request.path.strip_prefix("/api/v1/")
            && (rest.starts_with("approvals/") || rest == "tokens" || rest == "devices")
        {
            // Small JSON bodies (docs/approvals.md); a grant's credential is its signature,
            // the others need an admin token (checked on the route).
            let limit = if rest.starts_with("approvals/") {
                crate::events::approvals::MAX_GRANT_BODY_LEN
            } else {
                super::approve::MAX_SMALL_JSON_BODY_LEN
            };
            if request.content_length > limit {
                return Err(Response::error(413, "this body is a small JSON object"));
            }
            let ip = seednode_wire::addr::canonical_ip(conn.remote.ip());
            if self.lockout.borrow().is_locked(ip, self.now) {
                return Err(Response::error(429, "too many failed authentications")
                    .header("Retry-After", self.config.lockout.as_secs().to_string()));
            }
            return Ok(());
        }
        if request.method != "POST" || request.path != "/api/v1/torrents" {
            return Err(Response::error(413, "no request body is accepted here"));
        }
        if !front_door::host_allowed(request.host.as_deref(), &self.config.allowed_hosts) {
            return Err(Response::error(
                421,
                "this Host is not one the node answers to",
            ));
        }
        let remote = conn.remote;
        self.authorize(request, remote, Need::Upload, false, None)
            .map(drop)
    }

    /// Refuses `request` at once and closes the connection once the refusal is sent.
    pub(super) fn refuse(
        &mut self,
        key: usize,
        now: Instant,
        mut response: Response,
        served: usize,
    ) {
        self.stats.http_requests += 1;
        response.close = true;
        self.send_response(key, now, response, true, false, served);
    }

    /// Answers the request of connection `requester` that waited for the catalog (a no-op when
    /// the connection is gone or no longer waiting for `request`).
    pub(crate) fn finish_deferred(
        &mut self,
        requester: super::catalog::Requester,
        request: u64,
        response: Response,
    ) {
        let now = self.now;
        let Some(conn) = self.conns.get(requester.key) else {
            return;
        };
        let ConnState::HttpWaiting {
            request: waiting,
            served,
            close,
            ..
        } = conn.state
        else {
            return;
        };
        if conn.generation != requester.generation || waiting != request {
            return;
        }
        self.send_response(requester.key, now, response, close, false, served);
        // Requests pipelined behind this one were left in the buffer.
        self.backlog.push((requester.key, requester.generation));
        self.flush(requester.key);
    }

    fn send_response(
        &mut self,
        key: usize,
        now: Instant,
        mut response: Response,
        close: bool,
        head_only: bool,
        served: usize,
    ) {
        if response.status >= 400 {
            self.stats.http_errors += 1;
        }
        let last = close || response.close || !http::may_keep_alive(served + 1);
        response.close = last;
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        conn.out.push_bytes(response.head());
        if !head_only {
            match response.body {
                Body::Bytes(b) => conn.out.push_bytes(b),
                Body::File { file, offset, len } => {
                    conn.out
                        .push_file(file, offset, usize::try_from(len).unwrap_or(usize::MAX));
                }
            }
        }
        conn.state = if last {
            conn.rbuf.clear();
            ConnState::Closing
        } else {
            ConnState::Http {
                served: served + 1,
                since: now,
            }
        };
    }

    /// The checks every catalog-backed route makes before its work: the `Host` the request
    /// names must be one this node answers to (421 otherwise, against DNS rebinding), then
    /// `need` as [`Self::authorize`] decides it (`None`: no token wanted, the caller has its own
    /// credential). Returns who asked, for the deferred reply and its events; a refusal is the
    /// response to send.
    fn requester(
        &mut self,
        key: usize,
        req: &Request,
        body: &[u8],
        need: Option<(Need, bool)>,
    ) -> Result<super::catalog::Requester, Response> {
        let Some(conn) = self.conns.get(key) else {
            return Err(Response::error(503, ""));
        };
        let (remote, generation) = (conn.remote, conn.generation);
        if !front_door::host_allowed(req.host.as_deref(), &self.config.allowed_hosts) {
            return Err(Response::error(
                421,
                "this Host is not one the node answers to",
            ));
        }
        let actor = match need {
            Some((need, record)) => self.authorize(req, remote, need, record, Some(body))?,
            None => None,
        };
        Ok(super::catalog::Requester {
            key,
            generation,
            actor,
            source: Some(remote.ip()),
        })
    }

    fn route(&mut self, key: usize, now: Instant, req: &Request, body: &[u8]) -> Routed {
        let Some(conn) = self.conns.get(key) else {
            return Routed::Now(Response::error(503, ""));
        };
        let remote = conn.remote;
        if let Some(blossom) = seednode::blossom::route(&req.method, &req.path) {
            return self.blossom(key, req, blossom);
        }
        let api = req.path.strip_prefix("/api/v1/");
        let read_only = matches!(req.method.as_str(), "GET" | "HEAD");
        if api == Some("torrents") && req.method == "POST" {
            return match self.requester(key, req, body, Some((Need::Upload, true))) {
                Ok(requester) => self.write_route(requester, req, body, false),
                Err(refused) => Routed::Now(refused),
            };
        }
        if let Some(rest) = api.filter(|r| r.starts_with("approvals/") || *r == "devices") {
            let id = rest.strip_prefix("approvals/");
            let need = match id {
                // A grant's credential is the device's signature, and an approval's id (128
                // random bits, known to its requester and the approval webhooks) is what lets
                // one read it: no token, as a phone app has none; the lockout still applies.
                Some(_) => {
                    let ip = seednode_wire::addr::canonical_ip(remote.ip());
                    if self.lockout.borrow().is_locked(ip, self.now) {
                        return Routed::Now(
                            Response::error(429, "too many failed authentications")
                                .header("Retry-After", self.config.lockout.as_secs().to_string()),
                        );
                    }
                    None
                }
                None => Some((Need::Write, !read_only)),
            };
            let requester = match self.requester(key, req, body, need) {
                Ok(requester) => requester,
                Err(refused) => return Routed::Now(refused),
            };
            return match id {
                Some(id) => self.approval_route(requester, req, body, id),
                None if read_only => self.device_list_request(requester),
                None => self.write_route(requester, req, body, false),
            };
        }
        if api == Some("audit") && read_only {
            // The audit log names tokens and addresses: admin only.
            return match self.requester(key, req, body, Some((Need::Write, false))) {
                Ok(requester) => self.audit_request(requester, req),
                Err(refused) => Routed::Now(refused),
            };
        }
        if let Some(hash) = api.and_then(|r| r.strip_prefix("lookup/"))
            && read_only
        {
            return match self.requester(key, req, body, Some((Need::Read, true))) {
                Ok(requester) => self.lookup_request(requester, hash),
                Err(refused) => Routed::Now(refused),
            };
        }
        if let Some(rest) = api
            && matches!(req.method.as_str(), "POST" | "DELETE")
        {
            let segments: Vec<&str> = rest.split('/').collect();
            if super::approve::is_write(&req.method, &segments) {
                return match self.requester(key, req, body, Some((Need::Write, true))) {
                    Ok(requester) => self.write_route(requester, req, body, false),
                    Err(refused) => Routed::Now(refused),
                };
            }
        }
        Routed::Now(self.route_now(key, now, req, body))
    }

    fn route_now(&mut self, key: usize, now: Instant, req: &Request, body: &[u8]) -> Response {
        let Some(conn) = self.conns.get(key) else {
            return Response::error(503, "");
        };
        let (remote, local) = (conn.remote, conn.local);
        let read_only = matches!(req.method.as_str(), "GET" | "HEAD");
        let path = req.path.as_str();
        if path == "/announce" || path == "/scrape" {
            if !read_only {
                return Response::error(405, "").header("Allow", "GET, HEAD");
            }
            let body = if path == "/scrape" {
                self.tracker.http_scrape(now, &req.query)
            } else {
                let ip = self.config.announce_ip.unwrap_or_else(|| local.ip());
                let me = SocketAddr::new(ip, self.config.peer_port);
                let body = self
                    .tracker
                    .http_announce(now, remote, Some(me), &req.query);
                if let Ok(a) = seednode_tracker::AnnounceRequest::parse_query(&req.query) {
                    let stopped = a.event == seednode_tracker::AnnounceEvent::Stopped;
                    self.announced_here(now, remote.ip(), a.port, a.info_hash, a.left, stopped);
                }
                body
            };
            return Response::new(200, "text/plain", body);
        }
        if let Some(endpoint) = path.strip_prefix("/oauth/") {
            if req.method != "POST" {
                return Response::error(405, "").header("Allow", "POST");
            }
            return self.oauth(endpoint, req, body, remote);
        }
        if path == "/healthz" {
            return Response::new(200, "text/plain; charset=utf-8", "ok\n");
        }
        if let Some(rest) = path.strip_prefix("/webseed/") {
            if !read_only {
                return Response::error(405, "").header("Allow", "GET, HEAD");
            }
            return self.webseed(rest, req);
        }
        if let Some(rest) = path.strip_prefix("/t/") {
            if !read_only {
                return Response::error(405, "").header("Allow", "GET, HEAD");
            }
            return self.torrent_file(rest, req, local);
        }
        if path == "/metrics" {
            // Scrapers name the node however they reach it; the counters hold no secret worth
            // a rebinding attack, and off loopback a token is needed anyway.
            if let Err(refused) = self.authorize(req, remote, Need::Metrics, true, Some(body)) {
                return refused;
            }
            let text = self.metrics();
            return Response::new(200, "text/plain; version=0.0.4", text);
        }
        // What follows is for people and scripts managing the node: DNS rebinding guard first.
        if !front_door::host_allowed(req.host.as_deref(), &self.config.allowed_hosts) {
            return Response::error(421, "this Host is not one the node answers to");
        }
        if path == "/" {
            if !read_only {
                return Response::error(405, "").header("Allow", "GET, HEAD");
            }
            if let Err(refused) = self.authorize(req, remote, Need::Read, true, Some(body)) {
                return refused;
            }
            return Response::new(200, "text/html; charset=utf-8", self.status_page());
        }
        if let Some(rest) = path.strip_prefix("/api/v1/") {
            let need = if read_only { Need::Read } else { Need::Write };
            if let Err(refused) = self.authorize(req, remote, need, true, Some(body)) {
                return refused;
            }
            return self.api(rest, req, body);
        }
        Response::error(404, "")
    }

    /// Whether `req` may do what `need` says: a bearer token with the scope (RFC 6750), or,
    /// without a token, a client on loopback reading `/metrics`, or reading anything under
    /// `seed` (which has no token store; `run` has, and then the API always wants a token).
    /// Returns the accepted token's id (`None` when none was needed); a refusal is the
    /// response to send.
    ///
    /// An address locked out after failed authentications ([`crate::events::lockout`]) gets
    /// 429 before its token is looked at. With `record`, the outcome is an event: a refused
    /// token `auth.oauth.failed` (counted by the lockout), a token lacking the scope
    /// `auth.oauth.denied`, a write allowed `auth.oauth.success` (reads are not recorded).
    ///
    /// `Authorization: Nostr <event>` is NIP-98 instead ([`Reactor::authorize_nostr`]); `body`
    /// is the request's body for its `payload` check, `None` while it has not arrived.
    fn authorize(
        &mut self,
        req: &Request,
        remote: SocketAddr,
        need: Need,
        record: bool,
        body: Option<&[u8]>,
    ) -> Result<Option<Box<str>>, Response> {
        let ip = seednode_wire::addr::canonical_ip(remote.ip());
        let now = self.now;
        if self.lockout.borrow().is_locked(ip, now) {
            return Err(Response::error(
                429,
                "too many failed authentications from this address; try again later",
            )
            .header("Retry-After", self.config.lockout.as_secs().to_string()));
        }
        if req
            .authorization
            .as_deref()
            .and_then(|a| a.get(..6))
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("nostr "))
        {
            return self.authorize_nostr(req, remote, need, record, body);
        }
        let presented = front_door::bearer(req.authorization.as_deref());
        if presented.is_none() && req.authorization.is_some() {
            self.auth_event(
                record,
                kind::AUTH_FAILED,
                ip,
                None,
                "not a bearer token",
                need,
            );
            return Err(unauthorized(
                "invalid_request",
                "Authorization is not a bearer token",
            ));
        }
        let open_on_loopback = match need {
            Need::Metrics => true,
            Need::Read => self.tokens.is_none(),
            Need::Upload | Need::Write => false,
        };
        let Some(token) = presented else {
            return if ip.is_loopback() && open_on_loopback {
                Ok(None)
            } else {
                Err(unauthorized("", "a bearer token is required"))
            };
        };
        let now_unix = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        match self.verify_bearer_at(token, now_unix) {
            Ok((scopes, id))
                if scopes.contains(Scopes::ADMIN) || scopes.contains(need.scopes()) =>
            {
                if matches!(need, Need::Write | Need::Upload) {
                    self.auth_event(record, kind::AUTH_SUCCESS, ip, Some(&id), "", need);
                }
                Ok(Some(id))
            }
            Ok((_, id)) => {
                self.auth_event(
                    record,
                    kind::AUTH_DENIED,
                    ip,
                    Some(&id),
                    "insufficient_scope",
                    need,
                );
                Err(Response::error(403, "the token lacks the scope").header(
                    "WWW-Authenticate",
                    format!(
                        "Bearer realm=\"seednode\", error=\"insufficient_scope\", scope=\"{}\"",
                        need.scope()
                    ),
                ))
            }
            // Unknown, expired, revoked or malformed: one answer (RFC 6750 §3.1).
            Err(e) => {
                self.auth_event(record, kind::AUTH_FAILED, ip, None, &e.to_string(), need);
                Err(unauthorized(
                    "invalid_token",
                    "unknown, expired or revoked token",
                ))
            }
        }
    }

    /// `POST /oauth/token` (RFC 6749 §4.4, client credentials) and `POST /oauth/introspect`
    /// (RFC 7662). The client authenticates with HTTP Basic (RFC 6749 §2.3.1, both parts
    /// form-urlencoded) or `client_id`/`client_secret` in the form; introspection also takes an
    /// admin bearer token. Errors per RFC 6749 §5.2; failures count towards the lockout.
    fn oauth(
        &mut self,
        endpoint: &str,
        req: &Request,
        body: &[u8],
        remote: SocketAddr,
    ) -> Response {
        let ip = seednode_wire::addr::canonical_ip(remote.ip());
        if self.lockout.borrow().is_locked(ip, self.now) {
            return Response::error(429, "too many failed authentications")
                .header("Retry-After", self.config.lockout.as_secs().to_string());
        }
        if self.tokens.is_none() {
            return oauth_error(404, "invalid_request", "OAuth2 needs `seednode run`");
        }
        if endpoint != "token" && endpoint != "introspect" {
            return Response::error(404, "");
        }
        let form_ok = req
            .content_type
            .as_deref()
            .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
        if !form_ok {
            return oauth_error(
                400,
                "invalid_request",
                "the body must be application/x-www-form-urlencoded",
            );
        }
        let now_unix = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let basic = req
            .authorization
            .as_deref()
            .and_then(|a| a.strip_prefix("Basic "))
            .and_then(front_door::basic_credentials);
        let credentials = basic.clone().or_else(|| {
            Some((
                query_value(body, b"client_id")?,
                query_value(body, b"client_secret")?,
            ))
        });
        let client = credentials.as_ref().and_then(|(id, secret)| {
            self.tokens
                .as_ref()?
                .verify_client(id, secret, now_unix)
                .ok()
                .map(|v| (v.id.to_owned(), v.scopes))
        });
        if endpoint == "introspect" {
            // A client, or an admin bearer token, may introspect (RFC 7662 §2.1).
            let admin = req
                .authorization
                .as_deref()
                .and_then(|a| front_door::bearer(Some(a)))
                .and_then(|t| self.verify_bearer_at(t, now_unix).ok())
                .is_some_and(|(s, _)| s.contains(Scopes::ADMIN));
            if client.is_none() && !admin {
                self.auth_event(
                    true,
                    kind::AUTH_FAILED,
                    ip,
                    None,
                    "introspection unauthenticated",
                    Need::Write,
                );
                return oauth_error(401, "invalid_client", "client authentication failed")
                    .header("WWW-Authenticate", "Basic realm=\"seednode\"");
            }
            let Some(token) = query_value(body, b"token") else {
                return oauth_error(400, "invalid_request", "`token` is required");
            };
            // A client may introspect only access tokens issued to itself (RFC 7662 §4 lets
            // the server limit what a caller learns); an admin, any token.
            let allowed = admin
                || client.as_ref().is_some_and(|(id, _)| {
                    token
                        .strip_prefix(crate::daemon::oauth::ACCESS_TOKEN_PREFIX)
                        .is_some_and(|rest| rest.starts_with(id.as_str()))
                });
            let verdict = if allowed {
                self.tokens.as_ref().map(|t| t.verify(&token, now_unix))
            } else {
                None
            };
            let answer = match verdict {
                Some(Ok(v)) => {
                    let exp = token
                        .strip_prefix(crate::daemon::oauth::ACCESS_TOKEN_PREFIX)
                        .and_then(|r| r.split('_').nth(1))
                        .and_then(|e| e.parse::<i64>().ok());
                    json!({
                        "active": true,
                        "scope": v.scopes.to_string().replace(',', " "),
                        "client_id": v.id,
                        "token_type": "Bearer",
                        "exp": exp,
                    })
                }
                _ => json!({ "active": false }),
            };
            return json_response(200, &answer).header("Cache-Control", "no-store");
        }
        // The token endpoint.
        if query_value(body, b"grant_type").as_deref() != Some("client_credentials") {
            return oauth_error(
                400,
                "unsupported_grant_type",
                "only client_credentials is supported",
            );
        }
        let Some((client_id, allowed)) = client else {
            let actor = credentials
                .as_ref()
                .map(|(id, _)| id.chars().take(12).collect::<String>());
            self.auth_event(
                true,
                kind::AUTH_FAILED,
                ip,
                actor.as_deref(),
                "invalid_client",
                Need::Write,
            );
            let mut r = oauth_error(401, "invalid_client", "client authentication failed");
            if basic.is_some() || credentials.is_none() {
                r = r.header("WWW-Authenticate", "Basic realm=\"seednode\"");
            }
            return r;
        };
        let scopes = match query_value(body, b"scope") {
            None => allowed,
            Some(asked) => {
                match Scopes::parse(&asked.split_whitespace().collect::<Vec<_>>().join(",")) {
                    Some(s) if allowed.contains(s) => s,
                    _ => {
                        self.auth_event(
                            true,
                            kind::AUTH_DENIED,
                            ip,
                            Some(&client_id),
                            "invalid_scope",
                            Need::Write,
                        );
                        return oauth_error(
                            400,
                            "invalid_scope",
                            "a scope the client does not have",
                        );
                    }
                }
            }
        };
        let lifetime = crate::daemon::oauth::ACCESS_TOKEN_LIFETIME.as_secs();
        let Some(signer) = self.tokens.as_ref().and_then(|t| t.signer()) else {
            return oauth_error(500, "server_error", "the node has no token key");
        };
        let expires_at = now_unix.saturating_add(i64::try_from(lifetime).unwrap_or(3600));
        let access_token = signer.issue(&client_id, scopes, expires_at);
        self.auth_event(
            true,
            kind::AUTH_SUCCESS,
            ip,
            Some(&client_id),
            "",
            Need::Write,
        );
        json_response(
            200,
            &json!({
                "access_token": access_token,
                "token_type": "Bearer",
                "expires_in": lifetime,
                "scope": scopes.to_string().replace(',', " "),
            }),
        )
        .header("Cache-Control", "no-store")
        .header("Pragma", "no-cache")
    }

    /// Emits an authentication event (when `record`).
    pub(super) fn auth_event(
        &mut self,
        record: bool,
        kind: &'static str,
        ip: std::net::IpAddr,
        actor: Option<&str>,
        reason: &str,
        need: Need,
    ) {
        // Failures always count (the lockout, the audit log); `record` only spares a success
        // that the request's own route records again.
        if !record && kind != kind::AUTH_FAILED {
            return;
        }
        let at = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let mut event = crate::events::Event::new(kind, at);
        event.source = Some(ip);
        event.actor = actor.map(str::to_owned);
        event.details = json!({ "surface": "api", "scope": need.scope() });
        if !reason.is_empty() {
            event.details["reason"] = json!(reason);
        }
        let now = self.now;
        self.events.emit(now, &event);
    }

    /// The JSON API (`/api/v1/...`).
    fn api(&mut self, rest: &str, req: &Request, _body: &[u8]) -> Response {
        let segments: Vec<&str> = rest.split('/').collect();
        match (req.method.as_str(), segments.as_slice()) {
            ("GET" | "HEAD", ["status"]) => json_response(200, &json!({ "nat": self.nat_json() })),
            ("GET" | "HEAD", ["torrents"]) => {
                let mut list: Vec<serde_json::Value> = self
                    .torrents
                    .iter()
                    .filter(|t| !t.removed)
                    .map(|t| self.torrent_json(t, false))
                    .collect();
                let mut idle: Vec<_> = self.idle.iter().collect();
                idle.sort_by_key(|(_, t)| t.id);
                list.extend(idle.into_iter().map(|(ih, t)| t.json(*ih)));
                json_response(200, &json!({ "torrents": list }))
            }
            ("GET" | "HEAD", ["torrents", ih]) => match self.find_torrent(ih) {
                Some(t) => json_response(200, &self.torrent_json(&self.torrents[t], true)),
                None => match InfoHash::from_text(ih)
                    .ok()
                    .and_then(|h| self.idle.get(&h).map(|t| t.json(h)))
                {
                    Some(v) => json_response(200, &v),
                    None => json_error(404, "no_such_torrent", "no torrent with this info-hash"),
                },
            },
            (_, ["torrents"] | ["torrents", _]) => json_error(
                405,
                "method_not_allowed",
                "adding and removing torrents needs `seednode run` (the catalog)",
            ),
            _ => json_error(404, "no_such_endpoint", "see docs/api.md"),
        }
    }

    /// `POST /api/v1/torrents?path=REL` with a .torrent as the body: the torrent is added to the
    /// catalog (answered once committed: 201 with its info-hash) and seeded from
    /// `<content root>/REL`, a path checked like a torrent's own (no `..`, nothing absolute).
    pub(super) fn add_torrent_request(
        &mut self,
        requester: super::catalog::Requester,
        req: &Request,
        body: &[u8],
    ) -> Routed {
        let Some(root) = self.config.content_root.clone() else {
            return Routed::Now(json_error(
                405,
                "method_not_allowed",
                "adding torrents needs `seednode run` (the catalog)",
            ));
        };
        let rel = query_value(&req.query, b"path").unwrap_or_default();
        if rel.starts_with('/') || rel.contains("//") || rel.ends_with('/') {
            return Routed::Now(json_error(
                400,
                "bad_path",
                "`path` is relative to the node's content directory, `dir/file`",
            ));
        }
        let components: Vec<&str> = rel.split('/').filter(|c| !c.is_empty()).collect();
        let rel = match seednode_storage::SafeRelPath::new(&components) {
            Ok(p) if !components.is_empty() => p,
            Ok(_) => return Routed::Now(json_error(400, "bad_path", "`path` is required")),
            Err(e) => return Routed::Now(json_error(400, "bad_path", &e.to_string())),
        };
        let meta = match Metainfo::from_bytes(body) {
            Ok(m) => m,
            Err(e) => return Routed::Now(json_error(400, "malformed", &e.to_string())),
        };
        if self.by_hash.contains_key(&meta.info_hash) {
            return Routed::Now(json_error(
                409,
                "exists",
                "the node seeds this torrent already",
            ));
        }
        let added_at = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let owner = requester.actor.as_deref().map(|a| self.owner_of(a));
        let torrent = match seednode_storage::catalog::NewTorrent::from_metainfo(
            body.to_vec(),
            &meta,
            rel.under(&root),
            added_at,
        ) {
            Ok(mut t) => {
                t.owner = owner;
                t
            }
            Err(e) => return Routed::Now(json_error(400, "malformed", &e.to_string())),
        };
        let (events, ids) = self.reports(
            &requester,
            vec![(
                kind::TORRENT_ADDED,
                json!({ "info_hash": meta.info_hash.to_hex() }),
            )],
        );
        match self.catalog_request(requester, |request| crate::daemon::worker::Command::Add {
            request,
            torrent: Box::new(torrent),
            events,
        }) {
            Ok(id) => {
                self.remember_reports(id, ids);
                Routed::Later(id)
            }
            Err(_) => Routed::Now(json_error(503, "busy", "the catalog is busy; retry")),
        }
    }

    /// `GET /api/v1/audit[?since=UNIX&kind=K&limit=N]`: the newest `limit` (default 100, at
    /// most `MAX_AUDIT_QUERY_ROWS`) audit rows at or after `since`, of kind `K` (or a prefix
    /// ending in `.`), oldest first; read by the catalog worker.
    fn audit_request(&mut self, requester: super::catalog::Requester, req: &Request) -> Routed {
        let since = match query_value(&req.query, b"since").map(|v| v.parse::<i64>()) {
            None => 0,
            Some(Ok(v)) => v,
            Some(Err(_)) => {
                return Routed::Now(json_error(400, "bad_since", "`since` is Unix seconds"));
            }
        };
        let limit = match query_value(&req.query, b"limit").map(|v| v.parse::<usize>()) {
            None => 100,
            Some(Ok(v)) => v.min(seednode_storage::catalog::MAX_AUDIT_QUERY_ROWS),
            Some(Err(_)) => {
                return Routed::Now(json_error(400, "bad_limit", "`limit` is a count"));
            }
        };
        let kind = query_value(&req.query, b"kind").filter(|k| k.len() <= 64);
        if self.catalog.is_none() {
            return Routed::Now(json_error(
                404,
                "no_audit_log",
                "the audit log needs `seednode run` (the catalog)",
            ));
        }
        match self.catalog_request(requester, |request| {
            crate::daemon::worker::Command::AuditQuery {
                request,
                since,
                kind,
                limit,
            }
        }) {
            Ok(id) => Routed::Later(id),
            Err(_) => Routed::Now(json_error(503, "busy", "the catalog is busy; retry")),
        }
    }

    /// `GET /api/v1/lookup/<hash>`: the torrents and files `hash` names (40 hex digits: a v1
    /// info-hash or a v2 swarm hash; 64: a v2 info-hash, a file's SHA-256 or its BEP 52
    /// `pieces root`), read by the catalog worker.
    fn lookup_request(&mut self, requester: super::catalog::Requester, hex: &str) -> Routed {
        use seednode::nostr_auth::unhex;
        let hash = unhex::<20>(hex)
            .map(|h| h.to_vec())
            .or_else(|| unhex::<32>(hex).map(|h| h.to_vec()));
        let Some(hash) = hash else {
            return Routed::Now(json_error(
                400,
                "bad_hash",
                "a lookup takes 40 hex digits (SHA-1 info-hash) or 64 (SHA-256: a v2 \
                     info-hash, a file's SHA-256 or pieces root)",
            ));
        };
        if self.catalog.is_none() {
            return Routed::Now(json_error(
                404,
                "no_catalog",
                "lookups need `seednode run` (the catalog)",
            ));
        }
        match self.catalog_request(requester, |request| {
            crate::daemon::worker::Command::Lookup { request, hash }
        }) {
            Ok(id) => Routed::Later(id),
            Err(_) => Routed::Now(json_error(503, "busy", "the catalog is busy; retry")),
        }
    }

    /// The torrent a URL names by its info-hash (40 hex digits, either case).
    fn find_torrent(&self, text: &str) -> Option<usize> {
        let ih = InfoHash::from_text(text).ok()?;
        self.by_hash.get(&ih).copied()
    }

    fn torrent_json(&self, slot: &TorrentSlot, detail: bool) -> serde_json::Value {
        let t = &slot.torrent;
        // The list reads the count the slot keeps; only the detail walks the connections.
        let mut peers = Vec::new();
        if detail {
            let index = self.by_hash.get(&t.info_hash).copied();
            for (_, conn) in &self.conns {
                if let ConnState::Peer { torrent, session } = &conn.state
                    && Some(*torrent) == index
                {
                    peers.push(json!({
                        "address": conn.remote.to_string(),
                        "client": session.client.as_deref().unwrap_or(""),
                        "uploaded_bytes": session.uploaded,
                        "choked": session.choked,
                        "interested": session.interested,
                    }));
                }
            }
        }
        let state = if slot.fault.is_some() {
            "degraded"
        } else {
            "seeding"
        };
        let mut v = json!({
            "info_hash": t.info_hash.to_hex(),
            "name": &*t.name,
            "size_bytes": t.total_length,
            "piece_length": t.piece_length,
            "pieces": t.have.piece_count(),
            "state": state,
            "peers": slot.peers,
            "uploaded_bytes": slot.uploaded,
            "private": t.private,
        });
        if detail {
            v["fault"] = json!(slot.fault);
            v["connected_peers"] = json!(peers);
            v["files"] = json!(
                (0..t.storage.file_count())
                    .filter_map(|i| Some(json!({
                        "index": i,
                        "length": t.storage.file_len(i)?,
                    })))
                    .collect::<Vec<_>>()
            );
        }
        v
    }

    /// `GET /t/<info-hash>.torrent` and `GET /t/<info-hash>/magnet`.
    fn torrent_file(&self, rest: &str, req: &Request, local: SocketAddr) -> Response {
        let (ih, what) = if let Some(ih) = rest.strip_suffix(".torrent") {
            (ih, "torrent")
        } else if let Some(ih) = rest.strip_suffix("/magnet") {
            (ih, "magnet")
        } else {
            return Response::error(404, "");
        };
        let Some(index) = self.find_torrent(ih) else {
            return Response::error(404, "no torrent with this info-hash");
        };
        let t = &self.torrents[index].torrent;
        let host = req
            .host
            .as_deref()
            .filter(|h| front_door::host_allowed(Some(h), &self.config.allowed_hosts))
            .map_or_else(
                || {
                    let ip = self.config.announce_ip.unwrap_or_else(|| local.ip());
                    SocketAddr::new(ip, self.config.peer_port).to_string()
                },
                str::to_owned,
            );
        let announce = format!("http://{host}/announce");
        let mut bytes = format!("d8:announce{}:{announce}4:info", announce.len()).into_bytes();
        bytes.extend_from_slice(&t.info_bytes);
        bytes.push(b'e');
        if what == "torrent" {
            let file_name = format!("{}.torrent", t.info_hash.to_hex());
            return Response::new(200, "application/x-bittorrent", bytes).header(
                "Content-Disposition",
                format!("attachment; filename=\"{file_name}\""),
            );
        }
        let Ok(meta) = Metainfo::from_bytes(&bytes) else {
            return Response::error(500, "");
        };
        let mut link = MagnetLink::for_metainfo(&meta);
        link.trackers = vec![announce];
        link.peers = vec![host];
        Response::new(200, "text/plain; charset=utf-8", link.to_uri() + "\n")
    }

    /// `GET`/`HEAD /webseed/<info-hash>/<name>[/<path>...]` (BEP 19) with one `Range`.
    fn webseed(&self, rest: &str, req: &Request) -> Response {
        let Some((ih, file_path)) = rest.split_once('/') else {
            return Response::error(404, "");
        };
        let Some(index) = self.find_torrent(ih) else {
            return Response::error(404, "no torrent with this info-hash");
        };
        let t = &self.torrents[index].torrent;
        let Some(segments) = front_door::webseed_segments(file_path) else {
            return Response::error(400, "bad path");
        };
        let Some((name, path)) = segments.split_first() else {
            return Response::error(404, "");
        };
        if **name != *t.name {
            return Response::error(404, "");
        }
        let Some(file_index) = t.storage.file_index_by_path(path) else {
            return Response::error(404, "no such file in the torrent");
        };
        let Ok(file) = t.storage.file(file_index) else {
            return Response::error(503, "the file cannot be read");
        };
        self.serve_file(file, req)
    }

    /// The status page: every torrent with its size, state, peers, upload, magnet and
    /// `.torrent` links; plain HTML and CSS, no external assets, refreshed every 10 s; every
    /// name escaped (torrent names are untrusted).
    fn status_page(&self) -> String {
        let mut rows = String::new();
        let mut total_uploaded = 0u64;
        for slot in self.torrents.iter().filter(|t| !t.removed) {
            let j = self.torrent_json(slot, false);
            let t = &slot.torrent;
            total_uploaded += slot.uploaded;
            let ih = t.info_hash.to_hex();
            let _ = writeln!(
                rows,
                "<tr><td class=\"name\">{name}</td><td>{size}</td><td>{state}</td><td>{peers}</td>\
                 <td>{up}</td><td><a href=\"/t/{ih}/magnet\">magnet</a> \
                 <a href=\"/t/{ih}.torrent\">.torrent</a></td></tr>",
                name = front_door::html_escape(&t.name),
                size = front_door::human_bytes(t.total_length),
                state = j["state"].as_str().unwrap_or(""),
                peers = j["peers"],
                up = front_door::human_bytes(slot.uploaded),
            );
        }
        let mut idle: Vec<_> = self.idle.values().collect();
        idle.sort_by_key(|t| t.id);
        for t in &idle {
            let _ = writeln!(
                rows,
                "<tr><td class=\"name\">{name}</td><td>{size}</td><td>{state}</td><td>0</td>\
                 <td>0 B</td><td></td></tr>",
                name = front_door::html_escape(&t.name),
                size = front_door::human_bytes(t.size_bytes),
                state = t.state.as_str(),
            );
        }
        if rows.is_empty() {
            rows.push_str("<tr><td colspan=\"6\">No torrents.</td></tr>\n");
        }
        let count = self.torrents.iter().filter(|t| !t.removed).count() + idle.len();
        let peers = self
            .conns
            .iter()
            .filter(|(_, c)| matches!(c.state, ConnState::Peer { .. }))
            .count();
        format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta http-equiv=\"refresh\" content=\"10\">\
             <meta name=\"viewport\" content=\"width=device-width\">\
             <title>seednode</title><style>\
             body{{font:15px system-ui,sans-serif;margin:2em;color:#222}}\
             table{{border-collapse:collapse;width:100%}}\
             th,td{{text-align:left;padding:.4em .8em;border-bottom:1px solid #ddd}}\
             td.name{{word-break:break-all}}</style></head><body>\
             <h1>seednode</h1><p id=\"summary\">{count} {torrents}, {peers} {peer_word}, {up} \
             uploaded since start.</p>\
             <table><thead><tr><th>Name</th><th>Size</th><th>State</th><th>Peers</th>\
             <th>Uploaded</th><th>Links</th></tr></thead><tbody>\n{rows}</tbody></table>\
             </body></html>\n",
            torrents = if count == 1 { "torrent" } else { "torrents" },
            peer_word = if peers == 1 { "peer" } else { "peers" },
            up = front_door::human_bytes(total_uploaded),
        )
    }
}

/// The first value of `key` in a query string, percent-decoded (`+` is a space there).
pub(super) fn query_value(query: &[u8], key: &[u8]) -> Option<String> {
    for pair in query.split(|b| *b == b'&') {
        let (k, v) = match pair.iter().position(|b| *b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &[][..]),
        };
        if k == key {
            let mut out = Vec::new();
            seednode_wire::percent::decode(v, &mut out).ok()?;
            return String::from_utf8(out).ok();
        }
    }
    None
}

/// The JSON answer to `GET /api/v1/lookup/<hash>`: `{"matches": [...]}`, each with how it
/// matched, the torrent (info-hashes, name, state, its `.torrent` and magnet URLs) and, for a
/// file identity, the file (index, path, length, SHA-256, pieces root, webseed URL); 404 with
/// `{"matches": []}` when nothing does.
pub(super) fn lookup_response(
    result: Result<Vec<seednode_storage::catalog::LookupMatch>, seednode_storage::CatalogError>,
) -> Response {
    let matches = match result {
        Ok(m) => m,
        Err(seednode_storage::CatalogError::Invalid { reason, .. }) => {
            return json_error(400, "bad_hash", reason);
        }
        Err(e) => return json_error(500, "internal", &e.to_string()),
    };
    let rows: Vec<serde_json::Value> = matches
        .iter()
        .map(|m| {
            let t = &m.torrent;
            let ih = t.swarm_hash().to_hex();
            let file = m.file.as_ref().map(|f| {
                // BEP 19 URL: <name> for a single file, <name>/<path> in a multi-file torrent.
                let mut webseed = format!("/webseed/{ih}/");
                seednode_wire::percent::encode(t.name.as_bytes(), &mut webseed);
                for part in f.path.split('/').filter(|p| !p.is_empty()) {
                    webseed.push('/');
                    seednode_wire::percent::encode(part.as_bytes(), &mut webseed);
                }
                json!({
                    "index": f.index,
                    "path": f.path,
                    "length": f.length,
                    "sha256": f.sha256.map(|h| seednode::nostr_auth::hex(&h)),
                    "pieces_root": f.pieces_root.map(|h| seednode::nostr_auth::hex(&h)),
                    "webseed": webseed,
                })
            });
            json!({
                "matched_by": m.matched_by.as_str(),
                "info_hash": ih,
                "info_hash_v1": t.info_hash_v1.map(|h| h.to_hex()),
                "info_hash_v2": t.info_hash_v2.map(|h| seednode::nostr_auth::hex(&h.0)),
                "name": t.name,
                "state": t.state.as_str(),
                "torrent": format!("/t/{ih}.torrent"),
                "magnet": format!("/t/{ih}/magnet"),
                "file": file,
            })
        })
        .collect();
    let status = if rows.is_empty() { 404 } else { 200 };
    json_response(status, &json!({ "matches": rows }))
}

/// The JSON answer to `GET /api/v1/audit`.
pub(super) fn audit_response(
    result: Result<Vec<seednode_storage::catalog::AuditRecord>, seednode_storage::CatalogError>,
) -> Response {
    match result {
        Ok(rows) => {
            let rows: Vec<serde_json::Value> = rows
                .iter()
                .map(|r| {
                    json!({
                        "id": r.id,
                        "at": r.at,
                        "kind": r.kind,
                        "actor": r.actor,
                        "source": r.source,
                        "details": serde_json::from_str::<serde_json::Value>(&r.details)
                            .unwrap_or(serde_json::Value::Null),
                    })
                })
                .collect();
            json_response(200, &json!({ "events": rows }))
        }
        Err(e) => json_error(500, "internal", &e.to_string()),
    }
}

/// The JSON answer to a committed (or refused) add.
pub(super) fn added_response(
    result: Result<(InfoHash, bool), (u16, &'static str, String)>,
) -> Response {
    match result {
        Ok((ih, seeding)) => json_response(
            201,
            &json!({ "info_hash": ih.to_hex(), "seeding": seeding }),
        ),
        Err((status, code, message)) => json_error(status, code, &message),
    }
}

fn unauthorized(error: &str, detail: &str) -> Response {
    let challenge = if error.is_empty() {
        "Bearer realm=\"seednode\"".to_owned()
    } else {
        format!("Bearer realm=\"seednode\", error=\"{error}\"")
    };
    let status = if error == "invalid_request" { 400 } else { 401 };
    Response::error(status, detail).header("WWW-Authenticate", challenge)
}

pub(super) fn json_response(status: u16, value: &serde_json::Value) -> Response {
    let mut body = serde_json::to_vec_pretty(value).unwrap_or_default();
    body.push(b'\n');
    Response::new(status, JSON, body)
}

/// An RFC 6749 §5.2 error: `{"error": code, "error_description": text}`.
fn oauth_error(status: u16, code: &str, description: &str) -> Response {
    json_response(
        status,
        &json!({ "error": code, "error_description": description }),
    )
    .header("Cache-Control", "no-store")
}

pub(super) fn json_error(status: u16, code: &str, message: &str) -> Response {
    json_response(status, &json!({ "error": code, "message": message }))
}
