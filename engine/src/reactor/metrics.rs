//! `GET /metrics`: the loop's counters in the Prometheus text format.

use super::Reactor;
use super::conn::ConnState;

/// Counters the engine keeps for `/metrics` (bad input is counted, never logged per packet).
#[derive(Debug, Default)]
pub(super) struct EngineStats {
    /// Peers disconnected for breaking the protocol.
    pub(super) peers_dropped: u64,
}

/// Why a connection is being closed; logged at debug.
pub(super) type CloseReason = String;

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
        out
    }
}
