//! The peer wire on a connection past its handshake: sessions, choking, PEX, dialling, and block
//! reads handed to the send queue or the disk pool.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use seednode_wire::limits::MAX_BLOCK_LEN;
use seednode_wire::peer::{self, Handshake, Message, hashes, pex};
use seednode_wire::{InfoHash, PeerId};
use tracing::{debug, info, warn};

use seednode_wire::addr::{canonical_addr, canonical_ip};

use super::conn::{Conn, ConnState};
use super::metrics::CloseReason;
use super::torrent::{DataPath, Serve, queue_block_from_files};
use super::{Reactor, announcer};
use crate::dial::PeerSource;
use crate::disk::{DiskJob, JobKind};
use crate::limits::{MAX_READS_IN_FLIGHT_PER_PEER, SEND_BUFFER_HIGH_WATER};
use crate::session::{LocalInfo, PeerCaps, PeerSession, Step};
use seednode_storage::Residency;

/// Our client name and version, for the extension handshake's `v` (BEP 10).
const CLIENT_NAME: &str = concat!("seednode/", env!("CARGO_PKG_VERSION"));

/// How long after a leecher's announce to this node's tracker the node dials it, if it has not
/// connected by then: a client that dials seeders itself does so within a second or two of its
/// announce, and waiting spares it a duplicate connection.
pub(super) const DIAL_BACK_DELAY: std::time::Duration = std::time::Duration::from_secs(3);

/// Announcers waiting to be dialled back, at most: past it new ones are not (an announce flood
/// cannot grow the queue; the dial budgets bound the dials themselves).
pub(super) const MAX_PENDING_DIAL_BACKS: usize = 256;

impl Reactor {
    /// Connects out to a peer of `torrent` learnt from `source`, unless the dial rules refuse
    /// the address or the budgets are spent ([`DialPolicy`](crate::dial::DialPolicy)), it was
    /// tried lately, it is connected already, or a connection limit says no.
    pub(crate) fn dial_peer(
        &mut self,
        now: Instant,
        torrent: usize,
        addr: SocketAddr,
        source: PeerSource,
    ) {
        let addr = canonical_addr(addr);
        if self.bans.is_banned(now, addr.ip())
            || self
                .dialed
                .get(&addr)
                .is_some_and(|t| now.saturating_duration_since(*t) < announcer::REDIAL_INTERVAL)
            || self.conns.iter().any(|(_, c)| c.remote == addr)
            || self.conns.len() >= self.config.max_connections
            || self
                .per_ip
                .get(&seednode_wire::addr::limit_key(addr.ip()))
                .copied()
                .unwrap_or(0)
                >= self.config.max_connections_per_ip
        {
            return;
        }
        let mut own: Vec<SocketAddr> = self
            .listeners
            .iter()
            .filter_map(|(l, _)| l.local_addr().ok())
            .collect();
        if let Some(ip) = self.config.announce_ip {
            own.push(SocketAddr::new(ip, self.config.peer_port));
        }
        let addr = match self.dial_policy.check(now, addr, source, &own) {
            Ok(addr) => addr,
            Err(denied) => {
                *self.stats.dials_refused.entry(denied.label()).or_insert(0) += 1;
                return;
            }
        };
        if self.dialed.len() >= announcer::MAX_DIAL_MEMORY {
            self.dialed
                .retain(|_, t| now.saturating_duration_since(*t) < announcer::REDIAL_INTERVAL);
            if self.dialed.len() >= announcer::MAX_DIAL_MEMORY {
                return;
            }
        }
        self.dialed.insert(addr, now);
        // TCP or uTP first per `--prefer-utp`, the other if that cannot start (`reactor::utp`).
        if self.connect_peer(now, torrent, addr).is_some() {
            let info_hash = self.torrents[torrent].torrent.info_hash;
            debug!(peer = %addr, %info_hash, ?source, "dialling");
        }
    }

    /// A peer announced itself to this node's own tracker (HTTP, or UDP with a verified
    /// connection id) from `ip`, listening on `port`: when it still needs data (`left > 0`, not
    /// `stopped`) of a torrent this node seeds, the node dials it back after
    /// [`DIAL_BACK_DELAY`] unless it connected by then. Clients that do not dial loopback or LAN
    /// seeders themselves (Transmission refuses "martian" addresses) can then be served. The
    /// address is the announcer's own source address (never the `ip` parameter), so this is no
    /// reflection vector; the usual dial rules and budgets apply ([`Reactor::dial_peer`]).
    pub(super) fn announced_here(
        &mut self,
        now: Instant,
        ip: std::net::IpAddr,
        port: u16,
        info_hash: InfoHash,
        left: u64,
        stopped: bool,
    ) {
        if left == 0 || stopped || port == 0 || !self.by_hash.contains_key(&info_hash) {
            return;
        }
        let addr = canonical_addr(SocketAddr::new(ip, port));
        if self.dial_backs.len() >= MAX_PENDING_DIAL_BACKS
            || self
                .dial_backs
                .iter()
                .any(|(_, a, h)| *a == addr && *h == info_hash)
        {
            return;
        }
        self.dial_backs
            .push_back((now + DIAL_BACK_DELAY, addr, info_hash));
    }

    /// Dials the announcers whose [`DIAL_BACK_DELAY`] is over and that have not connected
    /// (from their address, for that torrent) meanwhile. Called once per loop turn.
    pub(super) fn run_dial_backs(&mut self, now: Instant) {
        while let Some(&(due, addr, info_hash)) = self.dial_backs.front() {
            if due > now {
                break;
            }
            self.dial_backs.pop_front();
            let Some(&torrent) = self.by_hash.get(&info_hash) else {
                continue;
            };
            let connected = self.conns.iter().any(|(_, c)| {
                canonical_ip(c.remote.ip()) == addr.ip()
                    && matches!(&c.state, ConnState::Peer { torrent: t, .. } if *t == torrent)
            });
            if !connected {
                self.dial_peer(now, torrent, addr, PeerSource::Tracker(Some(addr.ip())));
            }
        }
    }

    /// Completes the BitTorrent handshake (BEP 3) of connection `key`: finds the torrent,
    /// answers with our handshake when the peer dialled us, and starts the [`PeerSession`],
    /// whose greeting is queued.
    ///
    /// # Errors
    /// The reason to close: unknown info-hash, wrong torrent, ourselves, torrent full.
    pub(super) fn start_peer(
        &mut self,
        key: usize,
        now: Instant,
        hs: &Handshake,
        dialed: Option<usize>,
    ) -> Result<(), CloseReason> {
        let torrent = *self
            .by_hash
            .get(&hs.info_hash)
            .ok_or(CloseReason::UnknownInfoHash)?;
        if dialed.is_some_and(|t| t != torrent) {
            return Err(CloseReason::WrongTorrent);
        }
        if hs.peer_id == self.config.peer_id {
            return Err(CloseReason::SelfConnection);
        }
        if self.torrents[torrent].peers >= self.config.max_peers_per_torrent {
            return Err(CloseReason::TorrentFull);
        }
        if dialed.is_none() {
            let ours = handshake_bytes(
                hs.info_hash,
                self.config.peer_id,
                self.dht.is_some(),
                self.torrents[torrent].torrent.v2.is_some(),
            );
            self.queue(key, ours);
            self.utp_push(key);
        }
        let dht_port = self
            .dht
            .as_ref()
            .and(self.udp.as_ref())
            .and_then(|u| u.local_addr().ok())
            .map(|a| a.port());
        let Some(conn) = self.conns.get_mut(key) else {
            return Ok(());
        };
        let local = LocalInfo {
            client: CLIENT_NAME,
            dht_port,
            yourip: Some(canonical_ip(conn.remote.ip())),
        };
        let caps = PeerCaps {
            fast: hs.supports_fast_extension(),
            extensions: hs.supports_extension_protocol(),
            dht: hs.supports_dht(),
        };
        let slot = &mut self.torrents[torrent];
        let session = PeerSession::new(now, caps, &local, slot);
        slot.peers += 1;
        conn.state = ConnState::Peer {
            torrent,
            session: Box::new(session),
        };
        info!(peer = %conn.remote, info_hash = %hs.info_hash, utp = conn.transport.is_utp(), "peer connected");
        self.drain_outbox(key);
        Ok(())
    }

    /// Decodes and handles one message of peer `key`; false when the buffer holds no whole
    /// message.
    ///
    /// # Errors
    /// The reason to close: a frame over its limit, or a rule of the peer wire broken.
    pub(super) fn peer_message(&mut self, key: usize, now: Instant) -> Result<bool, CloseReason> {
        let Some(conn) = self.conns.get_mut(key) else {
            return Ok(false);
        };
        let ConnState::Peer { torrent, session } = &mut conn.state else {
            return Ok(false);
        };
        let torrent = *torrent;
        let slot = &mut self.torrents[torrent];
        let max = peer::max_frame_len(slot.torrent.piece_count());
        let Some(msg) = peer::decode_frame(&mut conn.rbuf, max)? else {
            return Ok(false);
        };
        let knew_client = session.client.is_some();
        let step = session.handle_message(now, &msg, slot)?;
        let remote = conn.remote;
        if let Some(client) = session.client.as_deref().filter(|_| !knew_client) {
            // Known only from the extension handshake (BEP 10 `v`), after "peer connected".
            info!(peer = %remote, client = %seednode_wire::display::escape_name(client), "peer client");
        }
        let decisions = match step {
            Step::Continue => {
                if matches!(msg, Message::Request(_)) {
                    self.choker.record_request(now, key);
                }
                Vec::new()
            }
            Step::Interested => self.choker.interested(now, key, torrent),
            Step::NotInterested => self.choker.leave(now, key),
            Step::HashRequest(req) => {
                self.answer_hash_request(key, torrent, &req);
                Vec::new()
            }
            Step::DhtPort(port) => {
                self.dht_port_message(now, remote, port);
                Vec::new()
            }
            Step::Peers(peers) => {
                let source = PeerSource::Pex(remote.ip());
                for addr in peers {
                    self.dial_peer(now, torrent, addr, source);
                }
                Vec::new()
            }
        };
        self.drain_outbox(key);
        self.apply_choking(&decisions);
        Ok(true)
    }

    /// Tells every peer that speaks `ut_pex` (BEP 11) which peers of its swarm joined and left
    /// since the last message: at most 50 of each, once a minute, never for private torrents.
    pub(super) fn send_pex(&mut self) {
        // Each torrent's connected peers, by the address they accept connections on.
        let mut swarms: HashMap<usize, Vec<SocketAddr>> = HashMap::new();
        for (_, conn) in &self.conns {
            if let ConnState::Peer { torrent, session } = &conn.state
                && let Some(addr) = listen_addr(conn, session)
            {
                swarms.entry(*torrent).or_default().push(addr);
            }
        }
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            let Some(conn) = self.conns.get_mut(key) else {
                continue;
            };
            let own = match &conn.state {
                ConnState::Peer { session, .. } => listen_addr(conn, session),
                _ => continue,
            };
            let ConnState::Peer { torrent, session } = &mut conn.state else {
                continue;
            };
            let Some(id) = session.peer_ut_pex else {
                continue;
            };
            let swarm = swarms.get(torrent).map(Vec::as_slice).unwrap_or_default();
            let current: std::collections::HashSet<SocketAddr> =
                swarm.iter().copied().filter(|a| Some(*a) != own).collect();
            let added: Vec<(SocketAddr, u8)> = current
                .difference(&session.pex_sent)
                .take(pex::MAX_PEX_PEERS_PER_MESSAGE)
                .map(|a| (*a, 0))
                .collect();
            let dropped: Vec<SocketAddr> = session
                .pex_sent
                .difference(&current)
                .take(pex::MAX_PEX_PEERS_PER_MESSAGE)
                .copied()
                .collect();
            if added.is_empty() && dropped.is_empty() {
                continue;
            }
            for (a, _) in &added {
                session.pex_sent.insert(*a);
            }
            for a in &dropped {
                session.pex_sent.remove(a);
            }
            let payload = pex::PexMessage { added, dropped }.encode();
            self.queue(
                key,
                encode(&Message::Extended {
                    id,
                    payload: payload.into(),
                }),
            );
            self.flush(key);
        }
    }

    /// Applies the choker's decisions: each peer is choked or unchoked and told so.
    pub(super) fn apply_choking(&mut self, decisions: &[crate::choker::Decision]) {
        for &(key, unchoke) in decisions {
            let Some(conn) = self.conns.get_mut(key) else {
                continue;
            };
            let ConnState::Peer { session, .. } = &mut conn.state else {
                continue;
            };
            if unchoke {
                session.unchoke();
            } else {
                session.choke();
            }
            self.drain_outbox(key);
            self.pump(key);
        }
    }

    /// Queues every message the peer session wants sent.
    pub(super) fn drain_outbox(&mut self, key: usize) {
        while let Some(msg) = self.conns.get_mut(key).and_then(|c| match &mut c.state {
            ConnState::Peer { session, .. } => session.poll_send(),
            _ => None,
        }) {
            self.queue(key, encode(&msg));
        }
    }

    /// Issues disk reads for queued requests while the send buffer has room, then writes.
    pub(super) fn pump(&mut self, key: usize) {
        self.issue_reads(key);
        self.flush(key);
    }

    pub(super) fn on_disk_done(&mut self) {
        let now = self.now;
        let mut done = std::mem::take(&mut self.done);
        self.disk.drain(&mut done);
        for d in done.drain(..) {
            match d.kind {
                JobKind::Verify => {
                    self.piece_checked(now, d.torrent, d.req.piece, d.result.err());
                    continue;
                }
                JobKind::Warm => {
                    // A failed warm-up is not an error of its own: the send reports it.
                    let waiters = self
                        .torrents
                        .get_mut(d.torrent)
                        .map(|slot| {
                            if d.result.is_ok() {
                                slot.mark_resident(now, d.req.piece);
                            }
                            slot.done_waiting(d.req.piece)
                        })
                        .unwrap_or_default();
                    self.wake(waiters);
                    continue;
                }
                JobKind::Block => {}
            }
            let Some(conn) = self.conns.get_mut(d.key) else {
                continue;
            };
            if conn.generation != d.generation {
                continue;
            }
            let ConnState::Peer { torrent, session } = &mut conn.state else {
                continue;
            };
            session.reads_in_flight = session.reads_in_flight.saturating_sub(1);
            match d.result {
                Ok((header, block)) if d.epoch == session.choke_epoch => {
                    session.uploaded += u64::from(d.req.length);
                    self.choker.record_upload(d.key, u64::from(d.req.length));
                    self.torrents[*torrent].uploaded += u64::from(d.req.length);
                    self.queue(d.key, header);
                    self.queue(d.key, block);
                    self.pump(d.key);
                }
                Ok(_) => {
                    // Choked since: the block is not sent (BEP 6 peers get a reject).
                    session.stale_read(d.req);
                    self.drain_outbox(d.key);
                    self.pump(d.key);
                }
                Err(crate::disk::DiskError::HashMismatch { piece }) => {
                    // Changed on disk since it was verified: withheld from now on.
                    session.withhold(d.req);
                    let torrent = *torrent;
                    self.piece_checked(
                        now,
                        torrent,
                        piece,
                        Some(crate::disk::DiskError::HashMismatch { piece }),
                    );
                    self.drain_outbox(d.key);
                    self.pump(d.key);
                }
                Err(e) => {
                    // A missing or short file is never served as zeros (SECURITY.md S5).
                    warn!(info_hash = %self.torrents[*torrent].torrent.info_hash, error = %e,
                          "disk read failed");
                    self.close(d.key, CloseReason::Disk(e.to_string()));
                }
            }
        }
        self.done = done;
    }

    /// The check of `piece` of `torrent` ended (`error` is `None` when it matched): records it,
    /// logs a failure (once per torrent per minute) and wakes the connections that waited.
    fn piece_checked(
        &mut self,
        now: Instant,
        torrent: usize,
        piece: u32,
        error: Option<crate::disk::DiskError>,
    ) {
        let Some(slot) = self.torrents.get_mut(torrent) else {
            return;
        };
        if error.is_some() {
            self.stats.pieces_failed += 1;
        }
        let (waiters, log) = slot.verified(now, piece, error.is_none());
        if error.is_none() {
            // Just read whole on a disk thread: in the page cache.
            slot.mark_resident(now, piece);
        }
        if log {
            warn!(
                info_hash = %slot.torrent.info_hash,
                piece,
                failed_since_last_line = slot.faults_unlogged,
                error = %error.as_ref().map(ToString::to_string).unwrap_or_default(),
                "piece does not match its hash: withheld from peers (data changed on disk?)"
            );
            slot.faults_unlogged = 0;
        }
        self.wake(waiters);
    }

    /// Serves the connections that waited for disk work, if they are still there.
    fn wake(&mut self, waiters: Vec<(usize, u64)>) {
        for (key, generation) in waiters {
            if self
                .conns
                .get(key)
                .is_some_and(|c| c.generation == generation)
            {
                self.pump(key);
                self.drain_outbox(key);
            }
        }
    }

    /// Hands queued block requests to the disk pool (or, with `sendfile`, to the send queue)
    /// while the peer's send buffer, counting reads in flight, stays under
    /// [`SEND_BUFFER_HIGH_WATER`]. A piece is served only once verified in this run: the first
    /// request for it starts the check and the peer waits for it.
    pub(super) fn issue_reads(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let mut failed = None;
        let mut declined = false;
        if let ConnState::Peer { torrent, session } = &mut conn.state {
            let now = self.now;
            let slot = &mut self.torrents[*torrent];
            while session.reads_in_flight < MAX_READS_IN_FLIGHT_PER_PEER
                && conn.out.len() + session.reads_in_flight * (MAX_BLOCK_LEN as usize)
                    < SEND_BUFFER_HIGH_WATER
            {
                let Some(&req) = session.peek_request() else {
                    break;
                };
                match slot.before_serving(req.piece, key, conn.generation) {
                    Serve::Go => {}
                    Serve::Withheld => {
                        session.next_request();
                        session.withhold(req);
                        declined = true;
                        continue;
                    }
                    Serve::Wait { submit } => {
                        if submit {
                            self.disk.submit(DiskJob::new(
                                key,
                                conn.generation,
                                session.choke_epoch,
                                *torrent,
                                &slot.torrent,
                                req,
                                JobKind::Verify,
                            ));
                        }
                        break;
                    }
                }
                let sendfile = self.config.data_path == DataPath::Sendfile
                    && conn.cipher.is_none()
                    && !conn.transport.is_utp();
                let cold = sendfile
                    && !slot.lately_resident(now, req.piece)
                    && match slot
                        .torrent
                        .storage
                        .block_residency(req.piece, req.begin, req.length)
                    {
                        Residency::Cold => true,
                        Residency::Cached => {
                            slot.mark_resident(now, req.piece);
                            false
                        }
                        Residency::Unknown => false,
                    };
                if cold {
                    // `sendfile` would wait for the disk on the loop thread: a disk thread reads
                    // the piece into the page cache first, and the peer waits for it.
                    self.stats.cold_blocks += 1;
                    if slot.wait_for(req.piece, key, conn.generation) {
                        self.disk.submit(DiskJob::new(
                            key,
                            conn.generation,
                            session.choke_epoch,
                            *torrent,
                            &slot.torrent,
                            req,
                            JobKind::Warm,
                        ));
                    }
                    break;
                }
                // Upload limits are charged when the read is issued: what is read is sent.
                let len = u64::from(req.length);
                if !self.upload_limit.can_take(now, len) || !slot.upload_limit.can_take(now, len) {
                    if !self.throttled.contains(&(key, conn.generation)) {
                        self.throttled.push_back((key, conn.generation));
                    }
                    break;
                }
                self.upload_limit.take(now, len);
                slot.upload_limit.take(now, len);
                session.next_request();
                if sendfile {
                    // The block goes from the page cache to the socket (`sendfile`); only the
                    // 13-byte header is built in memory.
                    if let Err(e) =
                        queue_block_from_files(&mut conn.out, &slot.torrent.storage, req)
                    {
                        failed = Some(CloseReason::Disk(format!("block {req:?}: {e}")));
                        break;
                    }
                    session.uploaded += len;
                    session.last_send = now;
                    slot.uploaded += len;
                    self.choker.record_upload(key, len);
                    continue;
                }
                session.reads_in_flight += 1;
                self.disk.submit(DiskJob::new(
                    key,
                    conn.generation,
                    session.choke_epoch,
                    *torrent,
                    &slot.torrent,
                    req,
                    JobKind::Block,
                ));
            }
        }
        if declined {
            self.drain_outbox(key);
        }
        if let Some(why) = failed {
            // A missing or short file is never served as zeros (SECURITY.md S5).
            warn!(error = %why, "cannot serve block");
            self.close(key, why);
        }
    }
}

/// Our BEP 3 handshake for `info_hash`, advertising BEP 10 and BEP 6.
pub(super) fn handshake_bytes(info_hash: InfoHash, peer_id: PeerId, dht: bool, v2: bool) -> Bytes {
    let mut reserved = Handshake::reserved_bits(true, true, dht);
    if v2 {
        reserved[hashes::RESERVED_V2_BYTE] |= hashes::RESERVED_V2_MASK;
    }
    let hs = Handshake {
        reserved,
        info_hash,
        peer_id,
    };
    Bytes::copy_from_slice(&hs.encode())
}

/// The address a connected peer accepts connections on: the one we dialled, or its IP with the
/// port from its extension handshake; `None` when it never said.
pub(super) fn listen_addr(conn: &Conn, session: &PeerSession) -> Option<SocketAddr> {
    if conn.dialed {
        return Some(conn.remote);
    }
    session
        .listen_port
        .map(|p| SocketAddr::new(canonical_ip(conn.remote.ip()), p))
}

/// One message, length prefix included.
pub(super) fn encode(msg: &Message) -> Bytes {
    let mut b = BytesMut::new();
    msg.encode(&mut b);
    b.freeze()
}
