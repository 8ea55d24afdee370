//! The Mainline DHT in the loop: the I/O around the sans-IO [`seednode_dht::Dht`].
//!
//! KRPC shares the node's UDP socket with the BEP 15 tracker: a KRPC message is a bencoded
//! dictionary and starts with `d`, which no BEP 15 packet does (connect requests start with the
//! protocol id 0x417..., and our connection ids have their top bit set). Every seeded torrent
//! that is not private (BEP 27) is announced at start and every [`DHT_ANNOUNCE_INTERVAL`]; peers
//! the DHT finds are dialled (a seed wants the leechers).

use std::fs;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use seednode_dht::id::NodeId;
use seednode_dht::{Dht, Event};
use tracing::{debug, info, warn};

/// How often every torrent is announced to the DHT again (BEP 5 peers expire after 30 minutes;
/// libtorrent re-announces every 15).
pub(super) const DHT_ANNOUNCE_INTERVAL: Duration = Duration::from_secs(15 * 60);

/// Most nodes written to the state file (a few full buckets are plenty to rejoin).
const MAX_SAVED_NODES: usize = 200;

/// Largest state file read, bytes.
const MAX_STATE_FILE_LEN: u64 = 64 * 1024;

/// The DHT side of the node.
pub(super) struct DhtNode {
    pub(super) dht: Dht,
    /// Where the routing table is saved on shutdown.
    pub(super) state_file: Option<PathBuf>,
    pub(super) next_announce: Instant,
    /// Whether an announce ran while the routing table had nodes.
    pub(super) announced_with_nodes: bool,
}

/// Reads `node_id_hex ip:port` lines saved by [`save_nodes`]; bad lines are skipped.
pub(crate) fn load_nodes(path: &Path) -> Vec<(NodeId, SocketAddr)> {
    let Ok(meta) = fs::metadata(path) else {
        return Vec::new();
    };
    if meta.len() > MAX_STATE_FILE_LEN {
        warn!(path = %path.display(), "DHT state file too large; ignored");
        return Vec::new();
    }
    let Ok(text) = fs::read_to_string(path) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|line| {
            let (id, addr) = line.split_once(' ')?;
            let id = seednode_wire::InfoHash::from_text(id).ok()?;
            Some((NodeId(id.0), addr.trim().parse().ok()?))
        })
        .take(MAX_SAVED_NODES)
        .collect()
}

/// Writes the routing table through a temporary file and a rename.
fn save_nodes(path: &Path, nodes: &[(NodeId, SocketAddr)]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("part");
    let mut f = fs::File::create(&tmp)?;
    for (id, addr) in nodes.iter().take(MAX_SAVED_NODES) {
        writeln!(f, "{} {addr}", seednode_wire::InfoHash(id.0).to_hex())?;
    }
    f.sync_all()?;
    fs::rename(&tmp, path)
}

impl super::Reactor {
    /// Feeds one KRPC datagram to the DHT.
    pub(super) fn dht_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        if let Some(node) = &mut self.dht {
            node.dht.handle_datagram(now, from, datagram);
        }
    }

    /// Runs the DHT's timers and the periodic announces, then sends and handles what it has.
    pub(super) fn drive_dht(&mut self, now: Instant) {
        let Some(node) = &mut self.dht else { return };
        if node.dht.poll_timeout().is_some_and(|t| t <= now) {
            node.dht.handle_timeout(now);
        }
        // The first announce went nowhere if the routing table was empty: announce again as
        // soon as the table has nodes.
        if !node.announced_with_nodes && node.dht.good_nodes() > 0 {
            node.announced_with_nodes = true;
            node.next_announce = now;
        }
        if now >= node.next_announce {
            node.next_announce = now + DHT_ANNOUNCE_INTERVAL;
            let port = self.config.peer_port;
            // Our own node answers for our torrents too: the first node a client asks may be us.
            let me = self.config.announce_ip.or_else(|| {
                self.udp
                    .as_ref()
                    .and_then(|u| u.local_addr().ok())
                    .map(|a| a.ip())
                    .filter(|ip| !ip.is_unspecified())
            });
            for slot in self
                .torrents
                .iter()
                .filter(|t| !t.torrent.private && !t.removed)
            {
                for &ih in std::iter::once(&slot.torrent.info_hash).chain(&slot.torrent.aliases) {
                    let _ = node.dht.announce(now, ih, Some(port));
                    if let Some(ip) = me {
                        node.dht.add_local_peer(now, ih, SocketAddr::new(ip, port));
                    }
                }
            }
        }
        self.flush_dht(now);
    }

    /// Sends every datagram the DHT has ready and handles its events.
    pub(super) fn flush_dht(&mut self, now: Instant) {
        loop {
            let Some(node) = &mut self.dht else { return };
            if let Some(t) = node.dht.poll_transmit() {
                if let Some(socket) = &self.udp {
                    // A full send buffer drops the datagram: KRPC retries by itself.
                    let _ = socket.send_to(&t.payload, t.dst);
                }
                continue;
            }
            let Some(event) = node.dht.poll_event() else {
                return;
            };
            match event {
                Event::Peers {
                    info_hash, peers, ..
                } => {
                    if let Some(&torrent) = self.by_hash.get(&info_hash) {
                        for addr in peers
                            .into_iter()
                            .take(super::announcer::MAX_DIALS_PER_REPLY)
                        {
                            self.dial_peer(now, torrent, addr, self.dht_source());
                        }
                    }
                }
                Event::Announced {
                    info_hash,
                    acked,
                    sent,
                    ..
                } => {
                    if acked > 0 {
                        info!(%info_hash, acked, sent, "announced to the DHT");
                    } else {
                        // Offline or not bootstrapped yet: retried at the next interval.
                        debug!(%info_hash, sent, "DHT announce reached no node");
                    }
                }
                Event::ExternalAddress { ip, votes } => {
                    debug!(%ip, votes, "external address reported by DHT nodes");
                }
                Event::PeerAnnounced { info_hash, peer } => {
                    if let Some(&torrent) = self.by_hash.get(&info_hash) {
                        self.dial_peer(now, torrent, peer, self.dht_source());
                    }
                }
                Event::LookupDone { .. } => {}
            }
        }
    }

    /// A peer told us its DHT port (BEP 5 `port`): ping it so it may join the routing table.
    pub(super) fn dht_port_message(&mut self, now: Instant, peer: SocketAddr, port: u16) {
        if port == 0 {
            return;
        }
        if let Some(node) = &mut self.dht {
            node.dht.ping(now, SocketAddr::new(peer.ip(), port));
        }
        self.flush_dht(now);
    }

    /// Where DHT peers come from, for the dial rules: the network the node's UDP socket is on
    /// (an unspecified bind counts as the public internet).
    fn dht_source(&self) -> crate::dial::PeerSource {
        let local = self
            .config
            .announce_ip
            .or_else(|| {
                self.udp
                    .as_ref()
                    .and_then(|u| u.local_addr().ok())
                    .map(|a| a.ip())
            })
            .filter(|ip| !ip.is_unspecified())
            .unwrap_or(std::net::IpAddr::from([8, 8, 8, 8]));
        crate::dial::PeerSource::Dht { local }
    }

    /// Saves the routing table for the next start.
    pub(super) fn save_dht(&mut self) {
        let Some(node) = &self.dht else { return };
        let Some(path) = &node.state_file else { return };
        let nodes = node.dht.export_nodes();
        match save_nodes(path, &nodes) {
            Ok(()) => {
                debug!(path = %path.display(), nodes = nodes.len(), "DHT routing table saved")
            }
            Err(e) => {
                warn!(path = %path.display(), error = %e, "cannot save the DHT routing table")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_file_round_trips_and_skips_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/dht_nodes");
        let nodes = vec![
            (NodeId([1; 20]), "127.0.0.1:6881".parse().unwrap()),
            (NodeId([0xab; 20]), "[::1]:7000".parse().unwrap()),
        ];
        save_nodes(&path, &nodes).unwrap();
        assert_eq!(load_nodes(&path), nodes);
        let mut text = fs::read_to_string(&path).unwrap();
        text.push_str("junk\nzz 1.2.3.4:5\n0101010101010101010101010101010101010101 nope\n");
        fs::write(&path, text).unwrap();
        assert_eq!(load_nodes(&path), nodes);
        assert!(load_nodes(&dir.path().join("missing")).is_empty());
    }
}
