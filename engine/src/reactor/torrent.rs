//! The torrents the loop seeds: their pieces, their data path, and the per-torrent work of the
//! loop (BEP 52 hash answers, BEP 16 super-seeding offers).

use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use seednode_storage::Storage;
use seednode_wire::InfoHash;
use seednode_wire::mse;
use seednode_wire::peer::{self, hashes};
use tracing::debug;

use super::Reactor;
use crate::outq::OutQueue;
use crate::rate::TokenBucket;
use crate::session::PieceMap;

/// A torrent the node seeds.
pub(crate) struct SeededTorrent {
    /// Its info-hash.
    pub(crate) info_hash: InfoHash,
    /// Its name (BEP 3 `name`: untrusted, escape before showing it).
    pub(crate) name: Box<str>,
    /// Where its data lives.
    pub(crate) storage: Arc<Storage>,
    /// Piece length in bytes.
    pub(crate) piece_length: u32,
    /// Total payload bytes.
    pub(crate) total_length: u64,
    /// Which pieces verified (all of them for a torrent we created).
    pub(crate) have: Have,
    /// The raw info dictionary, for `ut_metadata` (BEP 9).
    pub(crate) info_bytes: Bytes,
    /// Checks a piece read for sending against its hash (SHA-1 for v1, the merkle piece layer
    /// for v2-only torrents).
    pub(crate) piece_check: PieceCheck,
    /// The BEP 52 side of a v2 or hybrid torrent: answers `hash request`s.
    pub(crate) v2: Option<Arc<V2Torrent>>,
    /// Other info-hashes peers may use for this torrent (a hybrid's truncated v2 hash).
    pub(crate) aliases: Vec<InfoHash>,
    /// BEP 27 private torrent: peers come only from its trackers (no PEX, no DHT).
    pub(crate) private: bool,
    /// Super-seeding (BEP 16): each peer is offered one piece at a time, the least common first.
    pub(crate) super_seed: bool,
}

/// Which pieces of a torrent verified: all of them (a seed, the common case, stored in no
/// bytes at all) or a bitfield in the BEP 3 bit order (high bit of the first byte is piece 0).
/// Build it with [`Have::from_flags`], which keeps the bitfield's length and spare bits right.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Have {
    /// Every one of `count` pieces.
    All { count: u32 },
    /// A bitfield of `count` pieces, `count.div_ceil(8)` bytes, spare bits zero.
    Some { count: u32, bits: Box<[u8]> },
}

impl Have {
    /// From one flag per piece; at most `u32::MAX` pieces are counted.
    pub(crate) fn from_flags(flags: &[bool]) -> Self {
        let count = u32::try_from(flags.len()).unwrap_or(u32::MAX);
        if flags.iter().all(|h| *h) {
            return Self::All { count };
        }
        let mut bits = vec![0u8; flags.len().div_ceil(8)];
        for (i, _) in flags.iter().enumerate().filter(|(_, h)| **h) {
            bits[i / 8] |= 0x80 >> (i % 8);
        }
        Self::Some {
            count,
            bits: bits.into_boxed_slice(),
        }
    }

    /// Number of pieces of the torrent (had or not).
    pub(crate) const fn piece_count(&self) -> u32 {
        match self {
            Self::All { count } | Self::Some { count, .. } => *count,
        }
    }

    /// Whether piece `index` verified.
    pub(crate) fn get(&self, index: u32) -> bool {
        match self {
            Self::All { count } => index < *count,
            Self::Some { bits, .. } => usize::try_from(index / 8)
                .ok()
                .and_then(|i| bits.get(i))
                .is_some_and(|b| b & (0x80 >> (index % 8)) != 0),
        }
    }

    /// The `bitfield` payload (BEP 3): `piece_count().div_ceil(8)` bytes, spare bits zero.
    pub(crate) fn bitfield(&self) -> Bytes {
        match self {
            Self::All { count } => {
                let mut bits = vec![0xffu8; count.div_ceil(8) as usize];
                if let Some(last) = bits.last_mut()
                    && count % 8 != 0
                {
                    *last = 0xff << (8 - count % 8);
                }
                Bytes::from(bits)
            }
            Self::Some { bits, .. } => Bytes::copy_from_slice(bits),
        }
    }
}

impl SeededTorrent {
    pub(crate) fn piece_count(&self) -> u32 {
        self.have.piece_count()
    }

    pub(crate) fn piece_len(&self, index: u32) -> Option<u32> {
        if index >= self.piece_count() {
            return None;
        }
        let pl = u64::from(self.piece_length);
        let len = self
            .total_length
            .saturating_sub(u64::from(index) * pl)
            .min(pl);
        u32::try_from(len).ok()
    }

    pub(crate) fn have(&self, index: u32) -> bool {
        self.have.get(index)
    }
}

impl SeededTorrent {
    /// Whether every piece verified.
    pub(crate) const fn is_complete(&self) -> bool {
        matches!(self.have, Have::All { .. })
    }
}

/// How block payloads reach the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum DataPath {
    /// `sendfile(2)` from the page cache to the socket: no copy in user space.
    Sendfile,
    /// `pread` on a disk thread into a buffer, then `writev`: one copy each way.
    Copy,
}

/// Queues the `piece` message for `req`: its header in memory, its payload as file ranges (or
/// zeros for BEP 47 padding files).
pub(super) fn queue_block_from_files(
    out: &mut OutQueue,
    storage: &Storage,
    req: peer::BlockRequest,
) -> Result<(), seednode_storage::StorageError> {
    // Collect first, so that a failure queues nothing.
    let mut ranges = Vec::with_capacity(2);
    for seg in storage.block_segments(req.piece, req.begin, req.length)? {
        let len = usize::try_from(seg.len).unwrap_or(usize::MAX);
        if seg.padding {
            ranges.push((None, seg.file_offset, len));
        } else {
            ranges.push((Some(storage.file(seg.file_index)?), seg.file_offset, len));
        }
    }
    out.push_bytes(Bytes::copy_from_slice(&peer::piece_header(
        req.piece, req.begin, req.length,
    )));
    for (file, offset, len) in ranges {
        match file {
            Some(f) => out.push_file(f, offset, len),
            None => out.push_bytes(Bytes::from(vec![0; len])),
        }
    }
    Ok(())
}

/// Checks that the bytes of piece `index` are the torrent's: true when they match.
pub(crate) type PieceCheck = Arc<dyn Fn(u32, &[u8]) -> bool + Send + Sync>;

/// A v2 or hybrid torrent's BEP 52 metadata, with its piece map built once.
pub(crate) struct V2Torrent {
    /// The v2 metainfo.
    pub(crate) meta: seednode_wire::metainfo_v2::MetainfoV2,
    /// Where each piece lies.
    pub(crate) map: seednode_wire::metainfo_v2::PieceMap,
}

/// Merkle trees kept per torrent for answering hash requests, at most; past it the oldest file's
/// tree is dropped and rebuilt when asked again.
pub(super) const MAX_CACHED_MERKLE_TREES: usize = 64;

pub(super) struct TorrentSlot {
    pub(super) torrent: SeededTorrent,
    /// Connections of this torrent past the handshake.
    pub(super) peers: usize,
    /// Merkle trees of the files hash requests asked about (BEP 52), by file index.
    pub(super) merkle_trees: Vec<(usize, seednode_wire::merkle::MerkleTree)>,
    /// Super-seeding only (empty otherwise): per piece, peers seen to have it plus times it
    /// was offered (super-seeding picks the lowest). Peers that leave are not subtracted: it
    /// only has to rank pieces.
    pub(super) availability: Vec<u32>,
    pub(super) upload_limit: TokenBucket,
    pub(super) uploaded: u64,
    /// Pieces checked against their hash in this run (BEP 3 bit order): a piece is read whole
    /// and verified on a disk thread the first time it is served, whatever the data path
    /// (libtorrent's seed mode), so bit rot or a file changed behind the node's back never
    /// reaches a peer.
    pub(super) verified: PieceBits,
    /// Pieces that failed their check: withheld (left out of new bitfields, requests
    /// rejected) for the rest of the run.
    pub(super) failed: PieceBits,
    /// Pieces being verified or read into the page cache on a disk thread, with the
    /// connections waiting for each (at most one piece per connection, so bounded by the
    /// connection cap).
    pub(super) pending: Vec<(u32, Vec<(usize, u64)>)>,
    /// Why the torrent is degraded (the last failed check), for the status API and logs.
    pub(super) fault: Option<String>,
    /// When a failed check was last logged (one line per torrent per
    /// [`FAULT_LOG_INTERVAL`]).
    pub(super) fault_logged: Option<Instant>,
    /// Failed checks not logged since the last line.
    pub(super) faults_unlogged: u64,
    /// Pieces lately found in the page cache (or just read into it), with when: a block of
    /// one of them is sent without probing again for [`RESIDENT_TTL`]. Consecutive blocks of
    /// a piece then cost one probe, not one each.
    /// Allocated at the first mark, so an idle torrent does not pay for it.
    pub(super) resident: Option<Box<ResidentMemo>>,
    /// Next slot of `resident` to overwrite.
    pub(super) resident_next: usize,
    /// Paused or removed while the node runs ([`Reactor::unload_torrent`]): a tombstone kept so
    /// that slot indexes held by in-flight disk jobs stay valid. It is out of `by_hash`, has no
    /// peers, is announced nowhere and listed nowhere; the same torrent added again takes its
    /// place (so pausing and resuming never grows the table).
    pub(super) removed: bool,
}

/// [`TorrentSlot::resident`]: (piece, when it was found resident).
pub(super) type ResidentMemo = [(u32, Option<Instant>); RESIDENT_MEMO];

/// Pieces per torrent remembered as lately resident in the page cache (one per concurrent
/// sequential reader is enough).
pub(super) const RESIDENT_MEMO: usize = 16;

/// How long a piece found resident is taken to stay so: short, so that memory pressure that
/// evicts it costs at most this much of a stall risk.
pub(super) const RESIDENT_TTL: std::time::Duration = std::time::Duration::from_millis(500);

/// A failed hash check is logged at most once per torrent per this interval.
pub(super) const FAULT_LOG_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

/// One bit per piece, BEP 3 order (high bit of byte 0 is piece 0); out-of-range pieces read as
/// unset and are never set.
#[derive(Debug, Clone)]
pub(super) struct PieceBits(Box<[u8]>);

impl PieceBits {
    /// All clear, for `count` pieces.
    pub(super) fn new(count: u32) -> Self {
        Self(vec![0; count.div_ceil(8) as usize].into_boxed_slice())
    }

    /// Whether piece `index` is set.
    pub(super) fn get(&self, index: u32) -> bool {
        self.0
            .get((index / 8) as usize)
            .is_some_and(|b| b & (0x80 >> (index % 8)) != 0)
    }

    /// Sets piece `index` (ignored when out of range).
    pub(super) fn set(&mut self, index: u32) {
        if let Some(b) = self.0.get_mut((index / 8) as usize) {
            *b |= 0x80 >> (index % 8);
        }
    }

    /// Clears piece `index` (ignored when out of range).
    pub(super) fn clear(&mut self, index: u32) {
        if let Some(b) = self.0.get_mut((index / 8) as usize) {
            *b &= !(0x80 >> (index % 8));
        }
    }

    /// Whether no piece is set.
    pub(super) fn is_empty(&self) -> bool {
        self.0.iter().all(|b| *b == 0)
    }

    /// Clears in `bitfield` (same layout) every piece set here.
    pub(super) fn clear_from(&self, bitfield: &mut [u8]) {
        for (b, f) in bitfield.iter_mut().zip(self.0.iter()) {
            *b &= !f;
        }
    }
}

/// What [`TorrentSlot::before_serving`] says about a piece.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Serve {
    /// Verified in this run: serve it.
    Go,
    /// Failed its check: decline the request.
    Withheld,
    /// Being verified: wait. `submit` is true for the first waiter, which starts the check.
    Wait { submit: bool },
}

impl TorrentSlot {
    /// Whether piece `piece` may be served to connection `(key, generation)` now; when it is
    /// not verified yet the connection is registered to be woken when the check ends.
    pub(super) fn before_serving(&mut self, piece: u32, key: usize, generation: u64) -> Serve {
        if self.failed.get(piece) {
            return Serve::Withheld;
        }
        if self.verified.get(piece) {
            return Serve::Go;
        }
        Serve::Wait {
            submit: self.wait_for(piece, key, generation),
        }
    }

    /// Whether `piece` was found in the page cache less than [`RESIDENT_TTL`] ago.
    pub(super) fn lately_resident(&self, now: Instant, piece: u32) -> bool {
        self.resident.as_deref().is_some_and(|memo| {
            memo.iter().any(|(p, at)| {
                *p == piece && at.is_some_and(|t| now.saturating_duration_since(t) < RESIDENT_TTL)
            })
        })
    }

    /// Remembers that `piece` is in the page cache at `now`.
    pub(super) fn mark_resident(&mut self, now: Instant, piece: u32) {
        let memo = self
            .resident
            .get_or_insert_with(|| Box::new([(0, None); RESIDENT_MEMO]));
        if let Some(slot) = memo.iter_mut().find(|(p, at)| *p == piece && at.is_some()) {
            slot.1 = Some(now);
            return;
        }
        memo[self.resident_next] = (piece, Some(now));
        self.resident_next = (self.resident_next + 1) % RESIDENT_MEMO;
    }

    /// Registers connection `(key, generation)` as waiting for disk work on `piece`; true when
    /// no work is pending for it yet (the caller submits it).
    pub(super) fn wait_for(&mut self, piece: u32, key: usize, generation: u64) -> bool {
        if let Some((_, waiters)) = self.pending.iter_mut().find(|(p, _)| *p == piece) {
            if !waiters.contains(&(key, generation)) {
                waiters.push((key, generation));
            }
            return false;
        }
        self.pending.push((piece, vec![(key, generation)]));
        true
    }

    /// The disk work on `piece` ended: the connections that waited for it.
    pub(super) fn done_waiting(&mut self, piece: u32) -> Vec<(usize, u64)> {
        match self.pending.iter().position(|(p, _)| *p == piece) {
            Some(i) => self.pending.swap_remove(i).1,
            None => Vec::new(),
        }
    }

    /// Records the end of piece `piece`'s check; returns the connections to wake, and whether
    /// to log the failure now (at most once per [`FAULT_LOG_INTERVAL`]).
    pub(super) fn verified(
        &mut self,
        now: Instant,
        piece: u32,
        ok: bool,
    ) -> (Vec<(usize, u64)>, bool) {
        let waiters = self.done_waiting(piece);
        if ok {
            self.verified.set(piece);
            return (waiters, false);
        }
        self.failed.set(piece);
        self.fault = Some(format!("piece {piece} failed its hash check"));
        self.faults_unlogged += 1;
        let log = self
            .fault_logged
            .is_none_or(|t| now.saturating_duration_since(t) >= FAULT_LOG_INTERVAL);
        if log {
            self.fault_logged = Some(now);
        }
        (waiters, log)
    }
}

impl Reactor {
    /// Adds a torrent to seed and registers it with the built-in tracker. Returns its slot
    /// index: the tombstone of the same torrent paused or removed earlier in this run, or a new
    /// slot.
    pub(crate) fn add_torrent(&mut self, torrent: SeededTorrent) -> usize {
        let index = self
            .torrents
            .iter()
            .position(|t| t.removed && t.torrent.info_hash == torrent.info_hash)
            .unwrap_or(self.torrents.len());
        self.tracker.host(torrent.info_hash);
        self.by_hash.insert(torrent.info_hash, index);
        self.mse_keys
            .insert(mse::req2_hash(&torrent.info_hash), torrent.info_hash);
        for alias in &torrent.aliases {
            self.by_hash.insert(*alias, index);
            self.mse_keys.insert(mse::req2_hash(alias), *alias);
            self.tracker.host(*alias);
        }
        let count = torrent.piece_count();
        let slot = TorrentSlot {
            merkle_trees: Vec::new(),
            peers: 0,
            availability: if torrent.super_seed {
                vec![0; torrent.piece_count() as usize]
            } else {
                Vec::new()
            },
            torrent,
            upload_limit: TokenBucket::new(self.now, self.config.torrent_upload_rate_bytes_per_sec),
            uploaded: 0,
            verified: PieceBits::new(count),
            failed: PieceBits::new(count),
            pending: Vec::new(),
            fault: None,
            fault_logged: None,
            faults_unlogged: 0,
            resident: None,
            resident_next: 0,
            removed: false,
        };
        if index == self.torrents.len() {
            self.torrents.push(slot);
        } else {
            self.torrents[index] = slot;
        }
        index
    }

    /// Stops seeding the torrent in slot `index` (pause or removal while the node runs): closes
    /// its peer connections, forgets its info-hashes (new handshakes for it are refused as
    /// unknown, its webseed and `.torrent` URLs answer 404), stops hosting it on the built-in
    /// tracker and announcing it to the DHT, sends `stopped` to its trackers (BEP 3), and
    /// leaves a tombstone ([`TorrentSlot::removed`]). Returns the bytes it uploaded in this run
    /// (for the statistics), `None` if the slot is already a tombstone.
    pub(crate) fn unload_torrent(&mut self, index: usize) -> Option<u64> {
        let slot = self.torrents.get_mut(index).filter(|s| !s.removed)?;
        slot.removed = true;
        let uploaded = slot.uploaded;
        let gone = slot.torrent.info_hash;
        self.blobs.retain(|_, b| b.info_hash != gone);
        let slot = self.torrents.get_mut(index)?;
        let hashes: Vec<InfoHash> = std::iter::once(slot.torrent.info_hash)
            .chain(slot.torrent.aliases.iter().copied())
            .collect();
        // What only a live torrent needs goes now: the tombstone keeps its name, its counts and
        // its storage handle (files closed), a few hundred bytes. Piece hashes and bitfields
        // are dropped: a late verify result on the tombstone finds nothing to set. (One that
        // lands after the same torrent was resumed into this slot is applied to it: slot loads
        // carry no generation yet; noted in issue 11.)
        slot.merkle_trees = Vec::new();
        slot.availability = Vec::new();
        slot.resident = None;
        slot.torrent.info_bytes = Bytes::new();
        slot.torrent.piece_check = Arc::new(|_, _| false);
        slot.torrent.v2 = None;
        slot.torrent.aliases = Vec::new();
        slot.torrent.have = Have::All {
            count: slot.torrent.have.piece_count(),
        };
        slot.verified = PieceBits::new(0);
        slot.failed = PieceBits::new(0);
        slot.torrent.storage.close_files();
        let keys: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| {
                matches!(&c.state, super::conn::ConnState::Peer { torrent, .. } if *torrent == index)
            })
            .map(|(k, _)| k)
            .collect();
        for key in keys {
            self.close(key, super::metrics::CloseReason::TorrentStopped);
        }
        if let Some(slot) = self.torrents.get_mut(index) {
            slot.pending.clear();
        }
        let now = self.now;
        for ih in &hashes {
            self.by_hash.remove(ih);
            self.mse_keys.remove(&mse::req2_hash(ih));
            self.tracker.unhost(ih);
            if let Some(a) = &mut self.announcer {
                a.client.remove_torrent(now, ih);
            }
        }
        self.flush_announcer(now);
        Some(uploaded)
    }

    /// Answers a BEP 52 `hash request` with `hashes` (and their proof), or `hash reject` when the
    /// torrent has no such file or tree, the request is malformed, or the data needed is
    /// unreadable.
    pub(super) fn answer_hash_request(
        &mut self,
        key: usize,
        torrent: usize,
        req: &hashes::HashRequest,
    ) {
        let reply = self
            .hash_answer(torrent, req)
            .unwrap_or(hashes::HashMessage::Reject(*req));
        debug!(
            ?req,
            answered = matches!(reply, hashes::HashMessage::Hashes { .. }),
            "hash request"
        );
        let mut b = BytesMut::new();
        reply.encode(&mut b);
        self.queue(key, b.freeze());
    }

    pub(super) fn hash_answer(
        &mut self,
        torrent: usize,
        req: &hashes::HashRequest,
    ) -> Option<hashes::HashMessage> {
        let slot = &mut self.torrents[torrent];
        let v2 = Arc::clone(slot.torrent.v2.as_ref()?);
        let file = v2.meta.file_by_root(&req.pieces_root)?;
        if !slot.merkle_trees.iter().any(|(f, _)| *f == file) {
            if slot.merkle_trees.len() >= MAX_CACHED_MERKLE_TREES {
                slot.merkle_trees.remove(0);
            }
            slot.merkle_trees
                .push((file, v2.meta.merkle_tree(file).ok()?));
        }
        let (_, tree) = slot.merkle_trees.iter().find(|(f, _)| *f == file)?;
        // Block hashes come from disk only for requests below the piece layer (at most one
        // piece of data, checked against the layer before use).
        let leaves = match tree.leaves_needed(req).ok()? {
            None => None,
            Some(span) => Some(
                seednode_storage::block_hashes_v2(
                    &slot.torrent.storage,
                    &v2.meta.info,
                    &v2.map,
                    file,
                    span,
                )
                .ok()?,
            ),
        };
        let list = tree.hashes(req, leaves.as_deref()).ok()?;
        Some(hashes::HashMessage::hashes(*req, &list))
    }
}

impl PieceMap for TorrentSlot {
    fn piece_count(&self) -> u32 {
        self.torrent.piece_count()
    }

    fn piece_len(&self, index: u32) -> Option<u32> {
        self.torrent.piece_len(index)
    }

    fn have(&self, index: u32) -> bool {
        self.torrent.have(index)
    }

    fn withheld(&self, index: u32) -> bool {
        self.failed.get(index)
    }

    fn info_bytes(&self) -> &Bytes {
        &self.torrent.info_bytes
    }

    fn is_private(&self) -> bool {
        self.torrent.private
    }

    fn bitfield(&self) -> Bytes {
        let mut bits = self.torrent.have.bitfield().to_vec();
        self.failed.clear_from(&mut bits);
        Bytes::from(bits)
    }

    fn is_complete(&self) -> bool {
        self.torrent.is_complete() && self.failed.is_empty()
    }

    fn super_seed_availability(&mut self) -> Option<&mut [u32]> {
        self.torrent
            .super_seed
            .then_some(self.availability.as_mut_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn have_all_stores_no_bits_and_encodes_a_bep3_bitfield() {
        let have = Have::from_flags(&[true; 11]);
        assert_eq!(have, Have::All { count: 11 });
        assert!(have.get(0) && have.get(10) && !have.get(11));
        // Spare bits of the last byte are zero (BEP 3).
        assert_eq!(&have.bitfield()[..], &[0xff, 0xe0]);
        assert_eq!(&Have::from_flags(&[true; 16]).bitfield()[..], &[0xff, 0xff]);
        assert!(Have::from_flags(&[]).bitfield().is_empty());
    }

    #[test]
    fn have_some_keeps_a_bitfield() {
        let flags = [true, false, true, false, false, false, false, false, true];
        let have = Have::from_flags(&flags);
        assert_eq!(have.piece_count(), 9);
        for (i, f) in flags.iter().enumerate() {
            assert_eq!(have.get(i as u32), *f, "piece {i}");
        }
        assert!(!have.get(9) && !have.get(u32::MAX));
        assert_eq!(&have.bitfield()[..], &[0xa0, 0x80]);
    }
}
