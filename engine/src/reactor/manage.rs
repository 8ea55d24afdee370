//! Managing torrents while the node runs (`seednode run`): remove, pause and resume over the
//! API (`DELETE /api/v1/torrents/<ih>[?delete_data=true]`, `POST /api/v1/torrents/<ih>/pause`,
//! `POST /api/v1/torrents/<ih>/resume`; docs/api.md).
//!
//! Each change is committed by the catalog worker first and applied to the loop when its reply
//! comes back: a torrent stops seeding ([`Reactor::unload_torrent`]) only once the catalog says
//! it is paused or gone, so a restart never brings back what was acknowledged as removed, and
//! never forgets what was acknowledged as kept. Torrents of the catalog that do not seed
//! (paused, missing data, error) are kept here as [`IdleTorrent`]s, a few dozen bytes each, so
//! the API lists them and can resume them.

use std::collections::HashMap;

use seednode_storage::catalog::{State, TorrentId};
use seednode_wire::InfoHash;
use serde_json::json;
use tracing::{debug, info, warn};

use super::Reactor;
use super::catalog::Requester;
use super::front::{Routed, json_error, json_response};
use crate::daemon::resume::Loaded;
use crate::daemon::worker::Command;
use crate::http::{Request, Response};

/// A catalog torrent the loop does not seed, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IdleTorrent {
    /// Its catalog id.
    pub(crate) id: TorrentId,
    /// Its name (untrusted: escaped wherever it is shown).
    pub(crate) name: Box<str>,
    /// Total payload bytes.
    pub(crate) size_bytes: u64,
    /// `paused`, `missing_data` or `error`.
    pub(crate) state: State,
    /// Why, for `missing_data` and `error`.
    pub(crate) reason: Option<String>,
}

impl IdleTorrent {
    /// The API's JSON for it (the same keys as a seeding torrent's where they apply).
    pub(crate) fn json(&self, info_hash: InfoHash) -> serde_json::Value {
        json!({
            "info_hash": info_hash.to_hex(),
            "name": &*self.name,
            "size_bytes": self.size_bytes,
            "state": self.state.as_str(),
            "reason": self.reason,
            "peers": 0,
            "uploaded_bytes": 0,
        })
    }
}

/// The catalog torrents not seeded, by swarm info-hash.
pub(crate) type IdleTable = HashMap<InfoHash, IdleTorrent>;

/// What a management request asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Remove { delete_data: bool },
    Pause,
    Resume,
}

impl Reactor {
    /// Makes room for `n` more seeded torrents in one allocation per table (at start, when the
    /// catalog's count is known): growing by doubling would leave up to half of each table
    /// allocated and unused.
    pub(crate) fn reserve_torrents(&mut self, n: usize) {
        self.torrents.reserve_exact(n);
        self.by_hash.reserve(n);
        self.mse_keys.reserve(n);
        if let Some(link) = &mut self.catalog {
            link.reserve(n);
        }
    }

    /// Records the catalog torrents that do not seed at start (`seednode run`).
    pub(crate) fn set_idle(&mut self, idle: IdleTable) {
        self.idle = idle;
    }

    /// The catalog id and info-hash of the torrent `text` names (40 hex digits), seeding or
    /// idle, with its slot index when it seeds.
    fn managed(&self, text: &str) -> Option<(TorrentId, InfoHash, Option<usize>)> {
        let ih = InfoHash::from_text(text).ok()?;
        if let Some(&index) = self.by_hash.get(&ih) {
            let swarm = self.torrents.get(index)?.torrent.info_hash;
            let id = self.catalog_id(&swarm)?;
            return Some((id, swarm, Some(index)));
        }
        self.idle.get(&ih).map(|t| (t.id, ih, None))
    }

    /// Routes `DELETE /api/v1/torrents/<ih>`, `POST /api/v1/torrents/<ih>/pause|resume`
    /// (`segments` are the path after `/api/v1/`); `None` for any other request. The caller
    /// checked the Host and the token (write scope).
    pub(super) fn manage_request(
        &mut self,
        requester: Requester,
        req: &Request,
        segments: &[&str],
    ) -> Option<Routed> {
        let (text, action) = match (req.method.as_str(), segments) {
            ("DELETE", ["torrents", ih]) => {
                let delete_data = super::front::query_value(&req.query, b"delete_data")
                    .is_some_and(|v| matches!(v.as_str(), "1" | "true" | "yes"));
                (*ih, Action::Remove { delete_data })
            }
            ("POST", ["torrents", ih, "pause"]) => (*ih, Action::Pause),
            ("POST", ["torrents", ih, "resume"]) => (*ih, Action::Resume),
            (_, ["torrents", _, "pause" | "resume"]) => {
                return Some(Routed::Now(
                    json_error(405, "method_not_allowed", "use POST").header("Allow", "POST"),
                ));
            }
            _ => return None,
        };
        if self.catalog.is_none() {
            return Some(Routed::Now(json_error(
                405,
                "method_not_allowed",
                "removing, pausing and resuming torrents needs `seednode run` (the catalog)",
            )));
        }
        let Some((id, ih, seeding)) = self.managed(text) else {
            return Some(Routed::Now(json_error(
                404,
                "no_such_torrent",
                "no torrent with this info-hash",
            )));
        };
        let already = match action {
            Action::Pause => self.idle.get(&ih).is_some_and(|t| t.state == State::Paused),
            Action::Resume => seeding.is_some(),
            Action::Remove { .. } => false,
        };
        if already {
            return Some(Routed::Now(state_response(ih, &self.state_of(&ih))));
        }
        let content_root = self.config.content_root.clone();
        let (events, ids) = match action {
            Action::Remove { delete_data } => self.reports(
                &requester,
                vec![(
                    crate::events::kind::TORRENT_REMOVED,
                    json!({ "delete_data": delete_data, "info_hash": ih.to_hex() }),
                )],
            ),
            Action::Pause | Action::Resume => (Vec::new(), Vec::new()),
        };
        let made = self.catalog_request(requester, |request| match action {
            Action::Remove { delete_data } => Command::Remove {
                request,
                id,
                delete_data: if delete_data { content_root } else { None },
                events,
            },
            Action::Pause => Command::SetState {
                request,
                id,
                state: State::Paused,
                reason: None,
            },
            Action::Resume => Command::Resume { request, id },
        });
        Some(match made {
            Ok(request) => {
                self.remember_reports(request, ids);
                Routed::Later(request)
            }
            Err(_) => Routed::Now(json_error(503, "busy", "the catalog is busy; retry")),
        })
    }

    /// The state name the API shows for torrent `ih`.
    fn state_of(&self, ih: &InfoHash) -> String {
        if let Some(t) = self.idle.get(ih) {
            return t.state.as_str().to_owned();
        }
        match self.by_hash.get(ih).and_then(|&i| self.torrents.get(i)) {
            Some(slot) if slot.fault.is_some() => "degraded".into(),
            Some(_) => "seeding".into(),
            None => "removed".into(),
        }
    }

    /// The swarm info-hash of catalog torrent `id` (seeding or idle).
    fn hash_of(&self, id: TorrentId) -> Option<InfoHash> {
        self.catalog_hash(id)
            .or_else(|| self.idle.iter().find(|(_, t)| t.id == id).map(|(h, _)| *h))
    }

    /// Stops seeding `ih` (if it seeds) after saving what it uploaded; returns its name and
    /// size for an idle entry.
    fn stop_seeding(&mut self, ih: &InfoHash) -> Option<(Box<str>, u64)> {
        let index = *self.by_hash.get(ih)?;
        self.flush_torrent_stats(ih);
        let slot = self.torrents.get(index)?;
        let kept = (slot.torrent.name.clone(), slot.torrent.total_length);
        self.unload_torrent(index);
        self.forget_catalog_id(ih);
        Some(kept)
    }

    /// A removal was committed (or refused): stops seeding, forgets the torrent, answers.
    pub(super) fn on_removed(
        &mut self,
        waiting: Option<Requester>,
        request: u64,
        id: TorrentId,
        result: Result<(), seednode_storage::CatalogError>,
        deleted: Option<Result<seednode_storage::DeleteReport, String>>,
    ) {
        let ih = self.hash_of(id);
        let response = match result {
            Ok(()) => {
                if let Some(ih) = ih {
                    self.stop_seeding(&ih);
                    self.idle.remove(&ih);
                    let webhook_id =
                        self.take_report(request, crate::events::kind::TORRENT_REMOVED);
                    self.emit_torrent_event(
                        crate::events::kind::TORRENT_REMOVED,
                        waiting.as_ref(),
                        ih,
                        json!({ "delete_data": deleted.is_some() }),
                        webhook_id,
                    );
                }
                info!(torrent = %id, "removed");
                let deleted = match deleted {
                    None => json!(null),
                    Some(Ok(r)) => json!({
                        "files_removed": r.files_removed,
                        "files_missing": r.files_missing,
                        "dirs_removed": r.dirs_removed,
                    }),
                    Some(Err(e)) => {
                        warn!(torrent = %id, error = %e, "data not deleted");
                        json!({ "error": e })
                    }
                };
                json_response(
                    200,
                    &json!({
                        "info_hash": ih.map(|h| h.to_hex()),
                        "removed": true,
                        "data_deleted": deleted,
                    }),
                )
            }
            Err(e) => catalog_error(&e),
        };
        if let Some(waiting) = waiting {
            self.finish_deferred(waiting, request, response);
        }
    }

    /// A state change was committed (or refused): a pause stops seeding.
    pub(super) fn on_state_set(
        &mut self,
        waiting: Option<Requester>,
        request: u64,
        id: TorrentId,
        state: State,
        result: Result<(), seednode_storage::CatalogError>,
    ) {
        let Some(ih) = self.hash_of(id) else {
            debug!(torrent = %id, "state set for a torrent the loop does not know");
            return;
        };
        let response = match result {
            Ok(()) => {
                if state != State::Seeding {
                    let stopped = self.stop_seeding(&ih);
                    let entry = self.idle.entry(ih).or_insert_with(|| IdleTorrent {
                        id,
                        name: Box::from(""),
                        size_bytes: 0,
                        state,
                        reason: None,
                    });
                    if let Some((name, size)) = stopped {
                        entry.name = name;
                        entry.size_bytes = size;
                    }
                    entry.state = state;
                    entry.reason = None;
                    info!(torrent = %id, state = %state, "stopped seeding");
                    self.emit_torrent_event(
                        crate::events::kind::TORRENT_PAUSED,
                        waiting.as_ref(),
                        ih,
                        json!({}),
                        None,
                    );
                }
                state_response(ih, &self.state_of(&ih))
            }
            Err(e) => catalog_error(&e),
        };
        if let Some(waiting) = waiting {
            self.finish_deferred(waiting, request, response);
        }
    }

    /// A resume was prepared: seeds it, or records why it cannot.
    pub(super) fn on_resumed(
        &mut self,
        waiting: Option<Requester>,
        request: u64,
        id: TorrentId,
        result: Result<Result<Box<Loaded>, String>, seednode_storage::CatalogError>,
    ) {
        let ih = self.hash_of(id);
        let response = match (result, ih) {
            (Ok(Ok(loaded)), _) => {
                let ih = loaded.torrent.info_hash;
                self.idle.remove(&ih);
                let _ = self.seed_loaded(*loaded);
                info!(torrent = %id, "resumed");
                self.emit_torrent_event(
                    crate::events::kind::TORRENT_RESUMED,
                    waiting.as_ref(),
                    ih,
                    json!({}),
                    None,
                );
                state_response(ih, &self.state_of(&ih))
            }
            (Ok(Err(reason)), Some(ih)) => {
                if let Some(t) = self.idle.get_mut(&ih) {
                    t.state = State::MissingData;
                    t.reason = Some(reason.clone());
                }
                warn!(torrent = %id, reason = %seednode_wire::display::escape_name(&reason), "not resumed");
                json_error(409, "missing_data", &reason)
            }
            (Ok(Err(reason)), None) => json_error(409, "missing_data", &reason),
            (Err(e), _) => catalog_error(&e),
        };
        if let Some(waiting) = waiting {
            self.finish_deferred(waiting, request, response);
        }
    }
}

/// `{"info_hash": ..., "state": ...}` with 200.
fn state_response(ih: InfoHash, state: &str) -> Response {
    json_response(200, &json!({ "info_hash": ih.to_hex(), "state": state }))
}

/// The API's answer to a catalog error.
fn catalog_error(e: &seednode_storage::CatalogError) -> Response {
    use seednode_storage::CatalogError;
    match e {
        CatalogError::NoSuchTorrent { .. } => {
            json_error(404, "no_such_torrent", "no torrent with this info-hash")
        }
        CatalogError::DiskFull => json_error(507, "disk_full", "the catalog's disk is full"),
        other => json_error(500, "internal", &other.to_string()),
    }
}
