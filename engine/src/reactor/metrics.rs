//! `GET /metrics`: the loop's counters in the Prometheus text format.

use std::collections::BTreeMap;

use seednode_wire::mse::MseError;
use seednode_wire::peer::FrameError;

use super::Reactor;
use super::conn::ConnState;
use crate::session::PeerError;

/// Counters the engine keeps for `/metrics` (bad input is counted, never logged per packet).
#[derive(Debug, Default)]
pub(super) struct EngineStats {
    /// Peers disconnected for breaking the protocol.
    pub(super) peers_dropped: u64,
    /// Connections closed, by [`CloseReason::label`] (a fixed set of labels).
    pub(super) closed: BTreeMap<&'static str, u64>,
    /// Peer addresses not dialled, by reason (a fixed set of labels).
    pub(super) dials_refused: BTreeMap<&'static str, u64>,
    /// Connections dialled.
    pub(super) dials: u64,
    /// Pieces that failed their hash check when read to be served.
    pub(super) pieces_failed: u64,
    /// Blocks found not in the page cache before `sendfile` (their piece was read ahead on a
    /// disk thread first).
    pub(super) cold_blocks: u64,
    /// Time per loop turn.
    pub(super) turns: TurnHistogram,
    /// HTTP requests answered.
    pub(super) http_requests: u64,
    /// HTTP responses with an error status (4xx, 5xx).
    pub(super) http_errors: u64,
    /// HTTP requests refused before routing (malformed, oversized).
    pub(super) http_rejected: u64,
}

/// Upper bounds of the loop-turn histogram's buckets, microseconds (Prometheus `le`): from
/// 5 µs (an idle turn) to 1 s (a turn stalled on the disk); longer ones fall in `+Inf`.
pub(super) const TURN_BUCKETS_MICROS: [u64; 18] = [
    5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000,
    500_000, 1_000_000, 2_000_000,
];

/// How long each turn of the event loop took to handle what `poll` returned (the time every
/// other connection waited), as a Prometheus histogram.
#[derive(Debug, Default)]
pub(super) struct TurnHistogram {
    /// Turns per bucket of [`TURN_BUCKETS_MICROS`], plus one for longer turns.
    counts: [u64; TURN_BUCKETS_MICROS.len() + 1],
    sum_micros: u64,
    max_micros: u64,
}

impl TurnHistogram {
    /// Records one turn of `micros` microseconds.
    pub(super) fn record(&mut self, micros: u64) {
        let i = TURN_BUCKETS_MICROS
            .iter()
            .position(|b| micros <= *b)
            .unwrap_or(TURN_BUCKETS_MICROS.len());
        self.counts[i] += 1;
        self.sum_micros = self.sum_micros.saturating_add(micros);
        self.max_micros = self.max_micros.max(micros);
    }

    fn write(&self, out: &mut String) {
        use std::fmt::Write as _;
        let name = "seednode_loop_turn_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Time the event loop spent per turn handling ready sockets, timers and disk results.\n# TYPE {name} histogram"
        );
        let mut cumulative = 0;
        for (bound, n) in TURN_BUCKETS_MICROS.iter().zip(self.counts) {
            cumulative += n;
            let le = *bound as f64 / 1e6;
            let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
        }
        cumulative += self.counts[TURN_BUCKETS_MICROS.len()];
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
        let _ = writeln!(out, "{name}_sum {}", self.sum_micros as f64 / 1e6);
        let _ = writeln!(out, "{name}_count {cumulative}");
        let _ = writeln!(
            out,
            "# HELP seednode_loop_turn_max_seconds Longest turn of the event loop since start.\n# TYPE seednode_loop_turn_max_seconds gauge\nseednode_loop_turn_max_seconds {}",
            self.max_micros as f64 / 1e6
        );
    }
}

/// Why a connection is closed: logged at debug, counted in `/metrics` by [`CloseReason::label`].
#[derive(Debug, thiserror::Error)]
pub(super) enum CloseReason {
    /// The peer broke a rule of the peer wire (BEP 3 and extensions).
    #[error(transparent)]
    Peer(#[from] PeerError),
    /// A frame or handshake that does not decode (length over its limit, bad payload).
    #[error("bad frame: {0}")]
    BadFrame(#[from] FrameError),
    /// The MSE handshake failed (garbage, unknown info-hash, no common crypto).
    #[error("MSE handshake failed: {0}")]
    Mse(#[from] MseError),
    /// The handshake named a torrent we do not seed (SECURITY.md W2).
    #[error("unknown info-hash")]
    UnknownInfoHash,
    /// A peer we dialled answered for another torrent.
    #[error("dialled peer answered for another torrent")]
    WrongTorrent,
    /// The handshake carried our own peer ID.
    #[error("connected to ourselves")]
    SelfConnection,
    /// The torrent has its most peers already.
    #[error("torrent's peer limit reached")]
    TorrentFull,
    /// No handshake (or HTTP head) within its deadline.
    #[error("handshake timeout")]
    HandshakeTimeout,
    /// An HTTP connection outlived its deadline.
    #[error("http timeout")]
    HttpTimeout,
    /// A peer sent nothing for too long.
    #[error("idle timeout")]
    IdleTimeout,
    /// The remote closed its side.
    #[error("closed by the remote")]
    RemoteClosed,
    /// Reading the socket failed.
    #[error("read error: {0}")]
    ReadError(std::io::Error),
    /// Writing failed: the socket, or a file being sent (truncated or unreadable).
    #[error(transparent)]
    WriteError(#[from] crate::outq::WriteError),
    /// An HTTP response (or a tracker fetch) is done.
    #[error("exchange complete")]
    Done,
    /// A tracker's HTTP response was malformed.
    #[error("bad tracker response: {0}")]
    BadTrackerResponse(&'static str),
    /// The data for a block could not be read (missing or short file, I/O error).
    #[error("disk: {0}")]
    Disk(String),
    /// The node is shutting down.
    #[error("shutdown")]
    Shutdown,
    /// The torrent was paused or removed while the peer was connected.
    #[error("torrent stopped")]
    TorrentStopped,
    /// Closed at the connection limit to make room: it had not proven itself (no handshake,
    /// or an idle HTTP connection) and was the oldest such.
    #[error("evicted at the connection limit")]
    Evicted,
}

impl CloseReason {
    /// A short stable label for `/metrics` (`reason="..."`).
    pub(super) const fn label(&self) -> &'static str {
        match self {
            Self::Peer(e) => e.label(),
            Self::BadFrame(_) => "bad_frame",
            Self::Mse(_) => "mse_failed",
            Self::UnknownInfoHash => "unknown_info_hash",
            Self::WrongTorrent => "wrong_torrent",
            Self::SelfConnection => "self_connection",
            Self::TorrentFull => "torrent_full",
            Self::HandshakeTimeout => "handshake_timeout",
            Self::HttpTimeout => "http_timeout",
            Self::IdleTimeout => "idle_timeout",
            Self::RemoteClosed => "remote_closed",
            Self::ReadError(_) => "read_error",
            Self::WriteError(_) => "write_error",
            Self::Done => "done",
            Self::BadTrackerResponse(_) => "bad_tracker_response",
            Self::Disk(_) => "disk_error",
            Self::Shutdown => "shutdown",
            Self::TorrentStopped => "torrent_stopped",
            Self::Evicted => "evicted",
        }
    }

    /// Whether the remote broke a protocol rule (counted as `peers_dropped_total` too).
    pub(super) const fn is_misbehaviour(&self) -> bool {
        matches!(self, Self::Peer(_) | Self::BadFrame(_))
    }
}

impl Reactor {
    /// Counters in the Prometheus text format (`GET /metrics`).
    pub(super) fn metrics(&self) -> String {
        use std::fmt::Write as _;
        let peers = self
            .conns
            .iter()
            .filter(|(_, c)| matches!(c.state, ConnState::Peer { .. }))
            .count();
        let uploaded: u64 = self.torrents.iter().map(|t| t.uploaded).sum();
        let t = self.tracker.stats();
        let mut out = String::new();
        let mut put = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP seednode_{name} {help}\n# TYPE seednode_{name} {kind}\nseednode_{name} {value}"
            );
        };
        put(
            "uploaded_bytes_total",
            "counter",
            "Block payload bytes sent to peers.",
            uploaded,
        );
        put(
            "torrents",
            "gauge",
            "Torrents seeded.",
            self.torrents.iter().filter(|t| !t.removed).count() as u64,
        );
        put(
            "connections",
            "gauge",
            "Open connections of every kind.",
            self.conns.len() as u64,
        );
        put("peers", "gauge", "Peers past the handshake.", peers as u64);
        put(
            "peers_dropped_total",
            "counter",
            "Peers disconnected for breaking the protocol.",
            self.stats.peers_dropped,
        );
        put(
            "tracker_http_announces_total",
            "counter",
            "HTTP announces answered.",
            t.http_announces,
        );
        put(
            "tracker_udp_announces_total",
            "counter",
            "UDP announces answered.",
            t.udp_announces,
        );
        put(
            "tracker_udp_dropped_total",
            "counter",
            "UDP tracker datagrams dropped (malformed or bad connection id).",
            t.udp_dropped_malformed + t.udp_dropped_connection_id,
        );
        put(
            "tracker_torrents",
            "gauge",
            "Swarms the tracker holds (hosted ones included).",
            self.tracker.torrent_count() as u64,
        );
        put(
            "tracker_peers",
            "gauge",
            "Peers the tracker stores over all swarms.",
            self.tracker.peer_count() as u64,
        );
        if let Some(node) = &self.dht {
            put(
                "dht_nodes",
                "gauge",
                "Good nodes in the DHT routing table.",
                node.dht.good_nodes() as u64,
            );
        }
        self.utp_metrics(&mut out);
        let _ = writeln!(
            out,
            "# HELP seednode_connections_closed_total Connections closed, by reason.\n# TYPE seednode_connections_closed_total counter"
        );
        for (reason, n) in &self.stats.closed {
            let _ = writeln!(
                out,
                "seednode_connections_closed_total{{reason=\"{reason}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP seednode_dials_refused_total Peer addresses not dialled, by reason.\n# TYPE seednode_dials_refused_total counter"
        );
        for (reason, n) in &self.stats.dials_refused {
            let _ = writeln!(
                out,
                "seednode_dials_refused_total{{reason=\"{reason}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP seednode_pieces_failed_total Pieces that failed their hash check when read to be served (withheld since).\n# TYPE seednode_pieces_failed_total counter\nseednode_pieces_failed_total {}",
            self.stats.pieces_failed
        );
        self.stats.turns.write(&mut out);
        let _ = writeln!(
            out,
            "# HELP seednode_http_requests_total HTTP requests answered.\n# TYPE seednode_http_requests_total counter\nseednode_http_requests_total {}",
            self.stats.http_requests
        );
        let _ = writeln!(
            out,
            "# HELP seednode_http_errors_total HTTP responses with an error status.\n# TYPE seednode_http_errors_total counter\nseednode_http_errors_total {}",
            self.stats.http_errors + self.stats.http_rejected
        );
        let _ = writeln!(
            out,
            "# HELP seednode_banned_addresses Addresses banned for repeated misbehaviour (recent).\n# TYPE seednode_banned_addresses gauge\nseednode_banned_addresses {}",
            self.bans.banned_count()
        );
        let _ = writeln!(
            out,
            "# HELP seednode_cold_blocks_total Blocks not in the page cache before sendfile (read ahead on a disk thread).\n# TYPE seednode_cold_blocks_total counter\nseednode_cold_blocks_total {}",
            self.stats.cold_blocks
        );
        let _ = writeln!(
            out,
            "# HELP seednode_dials_total Outgoing peer connections started.\n# TYPE seednode_dials_total counter\nseednode_dials_total {}",
            self.stats.dials
        );
        if let Some(rehashed) = self.rehashed_bytes() {
            let _ = writeln!(
                out,
                "# HELP seednode_rehashed_bytes_total Bytes re-verified at start because fast resume could not vouch for them (0 when files are unchanged).\n# TYPE seednode_rehashed_bytes_total counter\nseednode_rehashed_bytes_total {rehashed}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP seednode_events_total Events emitted on the event bus.\n# TYPE seednode_events_total counter\nseednode_events_total {}",
            self.events.emitted()
        );
        let _ = writeln!(
            out,
            "# HELP seednode_lockouts_total Addresses locked out after failed authentications.\n# TYPE seednode_lockouts_total counter\nseednode_lockouts_total {}",
            self.lockout.borrow().locked_total()
        );
        if let Some(w) = &self.webhooks {
            let _ = writeln!(
                out,
                "# HELP seednode_webhook_sender_up Whether the webhook delivery thread runs.\n# TYPE seednode_webhook_sender_up gauge\nseednode_webhook_sender_up {}\n# HELP seednode_webhook_events_dropped_total Webhook events dropped because the catalog fell behind.\n# TYPE seednode_webhook_events_dropped_total counter\nseednode_webhook_events_dropped_total {}",
                u8::from(w.sender.is_running()),
                w.buffer.borrow().dropped()
            );
        }
        if let Some((publisher, _)) = &self.nostr {
            let _ = writeln!(out, "{}", publisher.metrics());
        }
        if let Some(audit) = &self.audit {
            let _ = writeln!(
                out,
                "# HELP seednode_audit_dropped_total Audit records dropped because the catalog fell behind.\n# TYPE seednode_audit_dropped_total counter\nseednode_audit_dropped_total {}",
                audit.borrow().dropped()
            );
        }
        if self.catalog.is_some() {
            let _ = writeln!(
                out,
                "# HELP seednode_catalog_torrents Catalog torrents by state (seednode run).\n\
                 # TYPE seednode_catalog_torrents gauge"
            );
            for state in [
                seednode_storage::catalog::State::Paused,
                seednode_storage::catalog::State::MissingData,
                seednode_storage::catalog::State::Error,
            ] {
                let n = self.idle.values().filter(|t| t.state == state).count();
                let _ = writeln!(
                    out,
                    "seednode_catalog_torrents{{state=\"{}\"}} {n}",
                    state.as_str()
                );
            }
            let seeding = self.torrents.iter().filter(|t| !t.removed).count();
            let _ = writeln!(
                out,
                "seednode_catalog_torrents{{state=\"seeding\"}} {seeding}"
            );
        }
        self.nat_metrics(&mut out);
        out
    }
}
