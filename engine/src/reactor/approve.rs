//! Out-of-band approvals on the loop (issue 13, docs/approvals.md): the one gate every API
//! write passes ([`Reactor::write_route`]), the approval routes
//! (`GET|POST /api/v1/approvals/<id>`), devices and tokens over the API.
//!
//! A critical write is not run: its request (method, path, body up to
//! `MAX_APPROVAL_BODY_LEN`) is stored with a challenge bound to the action, its target, the
//! actor, an expiry and a nonce, and the caller gets `202 Accepted` with the approval id. A
//! device's Ed25519 signature over the challenge (RFC 8032) makes the catalog worker mark the
//! approval granted, once; the stored request then runs here, as its original actor, and its
//! answer goes to whoever presented the signature. Catalog work runs on the worker
//! ([`Command::Job`]); the loop never waits.

use std::net::IpAddr;

use ring::rand::{SecureRandom as _, SystemRandom};
use seednode_storage::catalog::{
    Approval, ApprovalState, Catalog, CatalogError, MAX_APPROVAL_BODY_LEN, Scopes, TOKEN_PREFIX,
    TOKEN_SECRET_LEN, token_digest,
};
use seednode_wire::InfoHash;
use seednode_wire::metainfo::Metainfo;
use serde_json::{Value, json};
use tracing::{info, warn};

use super::Reactor;
use super::catalog::Requester;
use super::conn::ConnState;
use super::front::{Routed, json_error, json_response, query_value};
use crate::daemon::unix_now;
use crate::daemon::worker::{Command, Job, JobDone};
use crate::events::approvals::{
    self as policy, APPROVAL_ID_RANDOM_LEN, Challenge, MAX_GRANT_BODY_LEN, NONCE_LEN, SIGNATURE_LEN,
};
use crate::events::{Event, kind};
use crate::http::{Request, Response};

/// Largest body of `POST /api/v1/tokens` and `POST /api/v1/devices`, bytes: a small JSON
/// object (scopes, a label up to 256 bytes, a key).
pub(super) const MAX_SMALL_JSON_BODY_LEN: usize = 4096;

/// Whether `segments` (the path after `/api/v1/`) with `method` is a write [`write_route`]
/// handles.
///
/// [`write_route`]: Reactor::write_route
pub(super) fn is_write(method: &str, segments: &[&str]) -> bool {
    matches!(
        (method, segments),
        ("POST" | "DELETE", ["torrents", ..] | ["devices", _]) | ("POST", ["tokens" | "devices"])
    )
}

/// What an API write does, for the policy: the action name and its target; `None` when the
/// request is malformed (the route itself refuses it).
fn classify(req: &Request, segments: &[&str], body: &[u8]) -> Option<(&'static str, String)> {
    let hash = |t: &str| InfoHash::from_text(t).ok().map(|h| h.to_hex());
    Some(match (req.method.as_str(), segments) {
        ("DELETE", ["torrents", ih]) => {
            let data = query_value(&req.query, b"delete_data")
                .is_some_and(|v| matches!(v.as_str(), "1" | "true" | "yes"));
            let action = if data {
                policy::DATA_DELETE
            } else {
                policy::TORRENT_REMOVE
            };
            (action, hash(ih)?)
        }
        ("POST", ["torrents", ih, "pause"]) => (policy::TORRENT_PAUSE, hash(ih)?),
        ("POST", ["torrents", ih, "resume"]) => (policy::TORRENT_RESUME, hash(ih)?),
        ("POST", ["torrents"]) => (
            policy::TORRENT_ADD,
            Metainfo::from_bytes(body).ok()?.info_hash.to_hex(),
        ),
        ("POST", ["devices"]) => (
            policy::DEVICE_ADD,
            serde_json::from_slice::<Value>(body).ok()?["name"]
                .as_str()?
                .to_owned(),
        ),
        ("DELETE", ["devices", name]) => (policy::DEVICE_REVOKE, (*name).to_owned()),
        _ => return None,
    })
}

/// Seconds since the Unix epoch, for the catalog and the challenge (wall time: it is shown to
/// a person and compared across processes).
fn now_unix() -> i64 {
    unix_now()
}

impl Reactor {
    /// Turns approvals on with `policy` (`seednode run`).
    pub(crate) fn set_approvals(&mut self, policy: policy::Policy) {
        if policy.enabled() {
            info!(critical = ?policy.critical, all_writes = policy.all_writes, "approvals on");
        }
        self.approvals = Some(policy);
    }

    /// Whether `action` waits for a device's signature.
    fn needs_approval(&self, action: &str) -> bool {
        self.approvals
            .as_ref()
            .is_some_and(|p| p.is_critical(action))
    }

    /// Every API write comes here, its token checked: the approval gate (unless `approved`:
    /// the write was stored and granted), then the route that does it.
    pub(super) fn write_route(
        &mut self,
        requester: Requester,
        req: &Request,
        body: &[u8],
        approved: bool,
    ) -> Routed {
        let rest = req.path.strip_prefix("/api/v1/").unwrap_or_default();
        let segments: Vec<&str> = rest.split('/').collect();
        if !approved
            && let Some((action, target)) = classify(req, &segments, body)
            && self.needs_approval(action)
        {
            let path = if req.query.is_empty() {
                req.path.clone()
            } else {
                format!("{}?{}", req.path, String::from_utf8_lossy(&req.query))
            };
            return self.request_approval(
                requester,
                action,
                &target,
                (&req.method, &path, body.to_vec()),
                Value::Null,
            );
        }
        match (req.method.as_str(), segments.as_slice()) {
            ("POST", ["torrents"]) => self.add_torrent_request(requester, req, body),
            ("POST", ["tokens"]) => self.token_create_request(requester, body, approved),
            ("POST", ["devices"]) => self.device_add_request(requester, body),
            ("DELETE", ["devices", name]) => {
                let name = (*name).to_owned();
                self.job(requester, move |c| device_revoke(c, &name))
            }
            _ => self
                .manage_request(requester, req, &segments)
                .unwrap_or_else(|| {
                    Routed::Now(json_error(405, "method_not_allowed", "see docs/api.md"))
                }),
        }
    }

    /// Runs `f` on the catalog worker for `requester`; 503 when the worker is busy, 405
    /// without a catalog.
    fn job(
        &mut self,
        requester: Requester,
        f: impl FnOnce(&mut Catalog) -> JobDone + Send + 'static,
    ) -> Routed {
        if self.catalog.is_none() {
            return Routed::Now(json_error(
                405,
                "method_not_allowed",
                "this needs `seednode run` (the catalog)",
            ));
        }
        let made = self.catalog_request(requester, |request| Command::Job {
            request,
            job: Job(Box::new(f)),
        });
        match made {
            Ok(id) => Routed::Later(id),
            Err(_) => Routed::Now(json_error(503, "busy", "the catalog is busy; retry")),
        }
    }

    /// Stores an approval for `action` on `target` with the request to run
    /// (`(method, path with query, body)`); answers 202 once committed and emits
    /// `approval.requested`. `extra` (an object, or null) is merged into the 202 answer.
    fn request_approval(
        &mut self,
        requester: Requester,
        action: &'static str,
        target: &str,
        (method, path, body): (&str, &str, Vec<u8>),
        extra: Value,
    ) -> Routed {
        if body.len() > MAX_APPROVAL_BODY_LEN {
            return Routed::Now(json_error(
                413,
                "too_large_for_approval",
                &format!(
                    "a write waiting for approval holds at most {MAX_APPROVAL_BODY_LEN} bytes"
                ),
            ));
        }
        let actor = requester.actor.as_deref().unwrap_or("-").to_owned();
        if !policy::field_ok(target) || !policy::field_ok(&actor) {
            return Routed::Now(json_error(
                400,
                "bad_target",
                "the target must be printable ASCII (at most 256 bytes)",
            ));
        }
        let rng = SystemRandom::new();
        let mut random = [0u8; APPROVAL_ID_RANDOM_LEN + NONCE_LEN];
        if rng.fill(&mut random).is_err() {
            return Routed::Now(json_error(500, "internal", "no randomness"));
        }
        let (id_bytes, nonce) = random.split_at(APPROVAL_ID_RANDOM_LEN);
        let id = format!("apr_{}", policy::hex(id_bytes));
        let nonce = policy::hex(nonce);
        let now = now_unix();
        let expiry = self
            .approvals
            .as_ref()
            .map_or(policy::DEFAULT_EXPIRY_SECS, |p| p.expiry_secs);
        let expires_at = now.saturating_add(i64::try_from(expiry).unwrap_or(i64::MAX));
        let challenge = Challenge {
            id: &id,
            action,
            target,
            actor: &actor,
            expires_at,
            nonce: &nonce,
        }
        .to_bytes();
        let approval = Approval {
            id,
            action: action.to_owned(),
            target: target.to_owned(),
            actor: requester.actor.as_deref().map(str::to_owned),
            source: requester.source.map(|ip| ip.to_string()),
            challenge,
            method: method.to_owned(),
            path: path.to_owned(),
            body,
            created_at: now,
            expires_at,
            state: ApprovalState::Pending,
            device: None,
            decided_at: None,
        };
        let source = requester.source;
        let mut requested = approval_event(kind::APPROVAL_REQUESTED, &approval, source);
        requested.details["challenge"] = json!(policy::b64(&approval.challenge));
        let (rows, ids) = self.reports(
            &requester,
            vec![(kind::APPROVAL_REQUESTED, requested.details.clone())],
        );
        requested.webhook_id = ids.into_iter().next().map(|(_, id)| id);
        self.job(requester, move |c| {
            let now_ms = now.saturating_mul(1000);
            match c.create_approval_reported(&approval, now, &rows, now_ms) {
                Ok(()) => {
                    let mut answer = approval_json(&approval);
                    answer["message"] = json!(
                        "waiting for a device's signature: POST /api/v1/approvals/<id> \
                         (docs/approvals.md)"
                    );
                    if let (Value::Object(extra), Value::Object(a)) = (extra, &mut answer) {
                        a.extend(extra);
                    }
                    JobDone {
                        response: json_response(202, &answer)
                            .header("Location", format!("/api/v1/approvals/{}", approval.id)),
                        events: vec![requested],
                        run: None,
                        reload_tokens: false,
                    }
                }
                Err(CatalogError::TooManyApprovals { limit }) => JobDone::answer(json_error(
                    503,
                    "too_many_approvals",
                    &format!("{limit} approvals wait already; retry later"),
                )),
                Err(e) => JobDone::answer(catalog_failure(&e)),
            }
        })
    }

    /// `GET /api/v1/approvals/<id>` (read scope) and `POST /api/v1/approvals/<id>` (the
    /// device's signature is the credential: no token needed).
    pub(super) fn approval_route(
        &mut self,
        requester: Requester,
        req: &Request,
        body: &[u8],
        id: &str,
    ) -> Routed {
        if id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Routed::Now(json_error(
                404,
                "no_such_approval",
                "no approval with this id",
            ));
        }
        let id = id.to_owned();
        match req.method.as_str() {
            "GET" | "HEAD" => self.job(requester, move |c| match c.approval(&id) {
                Ok(Some(a)) => JobDone::answer(json_response(200, &approval_json(&a))),
                Ok(None) => JobDone::answer(no_such_approval()),
                Err(e) => JobDone::answer(catalog_failure(&e)),
            }),
            "POST" => {
                let grant = match parse_grant(body) {
                    Ok(g) => g,
                    Err(message) => {
                        return Routed::Now(json_error(400, "bad_request", &message));
                    }
                };
                let source = requester.source;
                self.job(requester, move |c| {
                    decide(c, &id, &grant, source, now_unix())
                })
            }
            _ => Routed::Now(json_error(405, "method_not_allowed", "use GET or POST")),
        }
    }

    /// A [`Command::Job`] answered: emits its events, then runs the granted request or
    /// answers.
    pub(super) fn on_job_done(&mut self, waiting: Option<Requester>, request: u64, done: JobDone) {
        let now = self.now;
        for event in &done.events {
            self.events.emit(now, event);
            if event.kind == kind::APPROVAL_REFUSED
                && let Some(ip) = event.source
            {
                // An unauthenticated caller presenting bad signatures counts towards the
                // lockout like a bad token.
                let mut failed = Event::new(kind::AUTH_FAILED, event.at);
                failed.source = Some(ip);
                failed.details =
                    json!({ "surface": "approvals", "reason": event.details["reason"] });
                self.events.emit(now, &failed);
            }
        }
        match done.run {
            Some(approval) => {
                // The grant is committed: the action runs even if the approver went away.
                let approver = waiting.unwrap_or(Requester {
                    key: usize::MAX,
                    generation: 0,
                    actor: None,
                    source: None,
                });
                self.run_approved(approver, request, *approval);
            }
            None => {
                if let Some(w) = waiting {
                    self.finish_deferred(w, request, done.response);
                }
            }
        }
    }

    /// Runs a granted approval's stored request as its original actor; the answer goes to
    /// the approver's connection (waiting for `request`).
    fn run_approved(&mut self, approver: Requester, request: u64, a: Approval) {
        let (path, query) = match a.path.split_once('?') {
            Some((p, q)) => (p.to_owned(), q.as_bytes().to_vec()),
            None => (a.path.clone(), Vec::new()),
        };
        let req = Request {
            method: a.method.clone(),
            path,
            query,
            content_length: a.body.len(),
            ..Request::default()
        };
        let original = Requester {
            key: approver.key,
            generation: approver.generation,
            actor: a.actor.as_deref().map(Box::from),
            source: a.source.as_deref().and_then(|s| s.parse::<IpAddr>().ok()),
        };
        info!(approval = %a.id, action = %a.action, "approved; running");
        match self.write_route(original, &req, &a.body, true) {
            Routed::Now(response) => self.finish_deferred(approver, request, response),
            Routed::Later(next) => {
                // The approver's connection now waits for the action's own reply.
                if let Some(conn) = self.conns.get_mut(approver.key)
                    && conn.generation == approver.generation
                    && let ConnState::HttpWaiting { request: r, .. } = &mut conn.state
                    && *r == request
                {
                    *r = next;
                }
            }
        }
    }

    /// `POST /api/v1/tokens` `{"scope": "read", "label": "…", "expires_in": SECS}`: creates an
    /// API token and answers it once (201). Under `token.create` approval the token is drawn
    /// now and answered in the 202 (the requester holds it; only its SHA-256 is stored, with
    /// the approval), and it works once a device grants the approval.
    fn token_create_request(
        &mut self,
        requester: Requester,
        body: &[u8],
        approved: bool,
    ) -> Routed {
        let Ok(v) = serde_json::from_slice::<Value>(body) else {
            return Routed::Now(json_error(400, "bad_request", "the body is a JSON object"));
        };
        let Some(scopes) = v["scope"].as_str().and_then(Scopes::parse) else {
            return Routed::Now(json_error(
                400,
                "bad_scope",
                "`scope`: comma-separated admin, upload, read, metrics",
            ));
        };
        let label = v["label"].as_str().unwrap_or("").to_owned();
        if label.len() > 256 {
            return Routed::Now(json_error(400, "bad_label", "`label`: at most 256 bytes"));
        }
        let now = now_unix();
        let expires_at = if approved {
            v["expires_at"].as_i64()
        } else {
            v["expires_in"]
                .as_u64()
                .map(|s| now.saturating_add(i64::try_from(s).unwrap_or(i64::MAX)))
        };
        if approved {
            // The stored request carries the id and SHA-256 of a secret handed out at
            // request time.
            let id = v["id"].as_str().unwrap_or("").to_owned();
            let Some(hash) = v["hash"].as_str().and_then(policy::decode_fixed::<32>) else {
                return Routed::Now(json_error(500, "internal", "stored token request"));
            };
            return self.job(requester, move |c| {
                match c.create_token_hashed(&id, &hash, scopes, expires_at, &label, now) {
                    Ok(()) => token_created(json!({ "id": id, "scope": scopes.to_string() }), &id),
                    Err(e) => JobDone::answer(catalog_failure(&e)),
                }
            });
        }
        let mut secret = [0u8; TOKEN_SECRET_LEN];
        if SystemRandom::new().fill(&mut secret).is_err() {
            return Routed::Now(json_error(500, "internal", "no randomness"));
        }
        let (id, hash) = token_digest(&secret);
        let token = format!("{TOKEN_PREFIX}{id}_{}", policy::hex(&secret));
        if self.needs_approval(policy::TOKEN_CREATE) {
            let stored = json!({
                "scope": scopes.to_string(),
                "label": label,
                "expires_at": expires_at,
                "id": id,
                "hash": policy::hex(&hash),
            });
            return self.request_approval(
                requester,
                policy::TOKEN_CREATE,
                &id,
                ("POST", "/api/v1/tokens", stored.to_string().into_bytes()),
                json!({
                    "token": token,
                    "token_id": id,
                    "note": "the token works once the approval is granted; it is shown once",
                }),
            );
        }
        self.job(requester, move |c| {
            match c.create_token_hashed(&id, &hash, scopes, expires_at, &label, now) {
                Ok(()) => token_created(
                    json!({ "id": id, "token": token, "scope": scopes.to_string() }),
                    &id,
                ),
                Err(e) => JobDone::answer(catalog_failure(&e)),
            }
        })
    }

    /// `POST /api/v1/devices` `{"name": "phone", "public_key": "<base64 or hex>"}`.
    fn device_add_request(&mut self, requester: Requester, body: &[u8]) -> Routed {
        let Ok(v) = serde_json::from_slice::<Value>(body) else {
            return Routed::Now(json_error(400, "bad_request", "the body is a JSON object"));
        };
        let name = v["name"].as_str().unwrap_or("").to_owned();
        let Some(key) = v["public_key"]
            .as_str()
            .and_then(policy::decode_fixed::<32>)
        else {
            return Routed::Now(json_error(
                400,
                "bad_key",
                "`public_key`: a 32-byte Ed25519 public key in base64 or hex",
            ));
        };
        let actor = requester.actor.as_deref().map(str::to_owned);
        self.job(requester, move |c| {
            match c.add_device(&name, &key, now_unix()) {
                Ok(id) => {
                    let mut e = Event::new(kind::DEVICE_ADDED, now_unix());
                    e.actor = actor;
                    e.details = json!({ "device": name, "device_id": id });
                    JobDone {
                        response: json_response(201, &json!({ "id": id, "name": name })),
                        events: vec![e],
                        run: None,
                        reload_tokens: false,
                    }
                }
                Err(e @ (CatalogError::Invalid { .. } | CatalogError::TooLong { .. })) => {
                    JobDone::answer(json_error(400, "bad_device", &e.to_string()))
                }
                Err(e) => JobDone::answer(catalog_failure(&e)),
            }
        })
    }

    /// `GET /api/v1/devices` (admin).
    pub(super) fn device_list_request(&mut self, requester: Requester) -> Routed {
        self.job(requester, |c| match c.list_devices() {
            Ok(list) => JobDone::answer(json_response(
                200,
                &json!({ "devices": list.iter().map(device_json).collect::<Vec<_>>() }),
            )),
            Err(e) => JobDone::answer(catalog_failure(&e)),
        })
    }
}

/// A device's JSON (`device list --json`, `GET /api/v1/devices`).
pub(crate) fn device_json(d: &seednode_storage::catalog::Device) -> Value {
    json!({
        "id": d.id,
        "name": d.name,
        "public_key": policy::b64(&d.public_key),
        "added_at": d.added_at,
        "revoked_at": d.revoked_at,
        "status": if d.revoked_at.is_some() { "revoked" } else { "active" },
    })
}

fn device_revoke(c: &mut Catalog, name: &str) -> JobDone {
    match c.revoke_device(name, now_unix()) {
        Ok(()) => {
            let mut e = Event::new(kind::DEVICE_REVOKED, now_unix());
            e.details = json!({ "device": name });
            JobDone {
                response: json_response(200, &json!({ "name": name, "revoked": true })),
                events: vec![e],
                run: None,
                reload_tokens: false,
            }
        }
        Err(CatalogError::NoSuchDevice { .. }) => JobDone::answer(json_error(
            404,
            "no_such_device",
            "no device with this name",
        )),
        Err(e) => JobDone::answer(catalog_failure(&e)),
    }
}

fn token_created(answer: Value, id: &str) -> JobDone {
    let mut e = Event::new(kind::TOKEN_CREATED, now_unix());
    e.details = json!({ "token_id": id });
    JobDone {
        response: json_response(201, &answer),
        events: vec![e],
        run: None,
        reload_tokens: true,
    }
}

/// A grant as presented: `{"device": NAME, "signature": B64, "challenge": B64?}`.
pub(super) struct Grant {
    device: String,
    signature: Vec<u8>,
    challenge: Option<Vec<u8>>,
}

fn parse_grant(body: &[u8]) -> Result<Grant, String> {
    if body.len() > MAX_GRANT_BODY_LEN {
        return Err(format!("the body is at most {MAX_GRANT_BODY_LEN} bytes"));
    }
    let v: Value = serde_json::from_slice(body)
        .map_err(|_| "the body is a JSON object: {\"device\", \"signature\"}".to_owned())?;
    let device = v["device"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| v["device"].as_i64().map(|i| i.to_string()))
        .filter(|d| !d.is_empty() && d.len() <= 64)
        .ok_or("`device`: the device's name or id")?;
    let signature = v["signature"]
        .as_str()
        .and_then(|s| policy::b64_decode(s, 128))
        .filter(|s| s.len() == SIGNATURE_LEN)
        .ok_or("`signature`: 64 bytes in standard base64 (Ed25519, RFC 8032)")?;
    let challenge = match v["challenge"].as_str() {
        None => None,
        Some(c) => {
            Some(policy::b64_decode(c, 2048).ok_or("`challenge`: the signed bytes in base64")?)
        }
    };
    Ok(Grant {
        device,
        signature,
        challenge,
    })
}

/// Decides approval `id` on the worker: every check, then the single-use transition.
fn decide(c: &mut Catalog, id: &str, g: &Grant, source: Option<IpAddr>, now: i64) -> JobDone {
    let a = match c.approval(id) {
        Ok(Some(a)) => a,
        Ok(None) => return JobDone::answer(no_such_approval()),
        Err(e) => return JobDone::answer(catalog_failure(&e)),
    };
    let refuse = |status: u16, code: &str, message: String, kind: &'static str| {
        let mut e = approval_event(kind, &a, source);
        e.details["reason"] = json!(code);
        e.details["device"] = json!(g.device);
        warn!(approval = %a.id, reason = code, "approval refused");
        JobDone {
            response: json_error(status, code, &message),
            events: vec![e],
            run: None,
            reload_tokens: false,
        }
    };
    if a.state != ApprovalState::Pending {
        return refuse(
            409,
            "already_decided",
            format!(
                "this approval is {} already; a challenge is used once",
                a.state.as_str()
            ),
            kind::APPROVAL_REFUSED,
        );
    }
    if now >= a.expires_at {
        let _ = c.finish_approval(&a.id, ApprovalState::Expired, None, now);
        return refuse(
            410,
            "expired",
            format!("the challenge expired at {} (Unix time)", a.expires_at),
            kind::APPROVAL_EXPIRED,
        );
    }
    if let Some(signed) = &g.challenge
        && *signed != a.challenge
    {
        let what = match (
            policy::parse_challenge(signed),
            policy::parse_challenge(&a.challenge),
        ) {
            (Some(s), Some(mine)) if s.action != mine.action || s.target != mine.target => {
                format!(
                    "the signature is for {} on {}, this approval is for {} on {}",
                    s.action, s.target, mine.action, mine.target
                )
            }
            (Some(s), Some(_)) => format!("the signature is for approval {}", s.id),
            _ => "the signed bytes are not a seednode challenge".to_owned(),
        };
        return refuse(403, "wrong_challenge", what, kind::APPROVAL_REFUSED);
    }
    let device = match c.device(&g.device) {
        Ok(Some(d)) => d,
        Ok(None) => {
            return refuse(
                403,
                "unknown_device",
                "no device with this name (seednode device add)".into(),
                kind::APPROVAL_REFUSED,
            );
        }
        Err(e) => return JobDone::answer(catalog_failure(&e)),
    };
    if device.revoked_at.is_some() {
        return refuse(
            403,
            "revoked_device",
            "this device's key is revoked".into(),
            kind::APPROVAL_REFUSED,
        );
    }
    if !policy::verify(&device.public_key, &a.challenge, &g.signature) {
        return refuse(
            403,
            "bad_signature",
            "the signature does not verify with this device's key over this approval's \
             challenge (Ed25519, RFC 8032)"
                .into(),
            kind::APPROVAL_REFUSED,
        );
    }
    match c.finish_approval(&a.id, ApprovalState::Granted, Some(device.id), now) {
        Ok(true) => {
            let mut e = approval_event(kind::APPROVAL_GRANTED, &a, source);
            e.details["device"] = json!(device.name);
            JobDone {
                response: json_error(500, "internal", ""),
                events: vec![e],
                run: Some(Box::new(a)),
                reload_tokens: false,
            }
        }
        Ok(false) => refuse(
            409,
            "already_decided",
            "this approval was decided meanwhile".into(),
            kind::APPROVAL_REFUSED,
        ),
        Err(e) => JobDone::answer(catalog_failure(&e)),
    }
}

/// An `approval.*` event about `a` (actor: the requester; source: who caused this event).
fn approval_event(kind: &'static str, a: &Approval, source: Option<IpAddr>) -> Event {
    let mut e = Event::new(kind, now_unix());
    e.actor.clone_from(&a.actor);
    e.source = source;
    e.details = json!({
        "approval_id": a.id,
        "action": a.action,
        "target": a.target,
        "expires_at": a.expires_at,
    });
    e
}

/// The API's JSON for an approval (never its stored body).
fn approval_json(a: &Approval) -> Value {
    json!({
        "approval_id": a.id,
        "action": a.action,
        "target": a.target,
        "actor": a.actor,
        "state": a.state.as_str(),
        "created_at": a.created_at,
        "expires_at": a.expires_at,
        "decided_at": a.decided_at,
        "device": a.device,
        "challenge": policy::b64(&a.challenge),
    })
}

fn no_such_approval() -> Response {
    json_error(404, "no_such_approval", "no approval with this id")
}

fn catalog_failure(e: &CatalogError) -> Response {
    match e {
        CatalogError::DiskFull => json_error(507, "disk_full", "the catalog's disk is full"),
        CatalogError::TooManyTokens { .. } | CatalogError::TooManyDevices { .. } => {
            json_error(409, "too_many", &e.to_string())
        }
        other => json_error(500, "internal", &other.to_string()),
    }
}
