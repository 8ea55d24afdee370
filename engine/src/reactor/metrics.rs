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
            self.torrents.len() as u64,
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
        let _ = writeln!(
            out,
            "# HELP seednode_dials_total Outgoing peer connections started.\n# TYPE seednode_dials_total counter\nseednode_dials_total {}",
            self.stats.dials
        );
        out
    }
}
