//! Fast resume at start (and for a torrent just added): from the catalog's file records and
//! one `fstat` per file, decide whether a torrent seeds at once, seeds with some pieces
//! withheld until re-verified, or cannot seed (`docs/catalog.md`, "Fast resume").
//!
//! First version: the torrent's info dictionary (and v2 piece layers) stay in the heap while it
//! is seeded, as `seed` keeps them; serving BEP 9 metadata straight from the catalog
//! (`Catalog::info_dict_slice`) so an idle torrent costs only its summary is left for later.

use std::num::NonZeroU32;
use std::ops::Range;
use std::path::Path;

use seednode_storage::catalog::resume::{self, OnDisk, Resume};
use seednode_storage::catalog::{Catalog, FileRecord, TorrentId, TorrentSummary};
use seednode_storage::{Storage, SymlinkPolicy};
use seednode_wire::display::escape_path;
use seednode_wire::metainfo::Metainfo;

use crate::cli::seed::{Prepared, seeded_torrent};
use crate::reactor::{IdleTorrent, SeededTorrent};

/// Pieces to verify before serving them, and what is needed to record the files afterwards.
pub(crate) struct RecheckPlan {
    /// Piece ranges withheld until verified (sorted, disjoint).
    pub(crate) pieces: Vec<Range<u32>>,
    /// The files as recorded.
    pub(crate) files: Vec<FileRecord>,
    /// What was on disk *before* hashing (the mtimes to record when the pieces verify).
    pub(crate) observed: Vec<OnDisk>,
    /// Piece length in bytes.
    pub(crate) piece_length: u32,
}

impl RecheckPlan {
    /// Number of pieces to verify.
    pub(crate) fn piece_count(&self) -> u64 {
        self.pieces.iter().map(|r| u64::from(r.end - r.start)).sum()
    }
}

/// A catalog torrent ready for the loop.
pub(crate) struct Loaded {
    /// Its catalog id.
    pub(crate) id: TorrentId,
    /// What the reactor seeds (every piece claimed; [`Loaded::recheck`] says which to
    /// withhold until verified).
    pub(crate) torrent: SeededTorrent,
    /// External tracker tiers to announce to (BEP 12).
    pub(crate) tiers: Vec<Vec<String>>,
    /// Pieces to re-verify before serving them; `None` when every file is as recorded.
    pub(crate) recheck: Option<RecheckPlan>,
    /// A single-file torrent whose file's SHA-256 the catalog records is a Blossom blob
    /// (`docs/blossom.md`): its hash, owner and time added.
    pub(crate) blob: Option<BlobRecord>,
}

/// What the Blossom index keeps of a catalog torrent that is a blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BlobRecord {
    /// The file's SHA-256.
    pub(crate) sha256: [u8; 32],
    /// Who added it (a token, client or Nostr public key id).
    pub(crate) owner: Option<String>,
    /// When, seconds since the Unix epoch.
    pub(crate) added_at: i64,
}

/// The API's entry for catalog torrent `t`, which does not seed (its state says why): its
/// swarm info-hash and what the list shows. The size is the sum of its recorded files.
pub(crate) fn idle_entry(
    catalog: &Catalog,
    t: &TorrentSummary,
) -> (seednode_wire::InfoHash, IdleTorrent) {
    let size_bytes = catalog
        .files(t.id)
        .map(|files| files.iter().map(|f| f.length).sum())
        .unwrap_or(0);
    (
        t.swarm_hash(),
        IdleTorrent {
            id: t.id,
            name: t.name.as_str().into(),
            size_bytes,
            state: t.state,
            reason: t.state_reason.clone(),
        },
    )
}

/// What to do with a catalog torrent.
pub(crate) enum Start {
    /// Seed it.
    Seed(Box<Loaded>),
    /// A file is missing or has another length: do not seed (SECURITY rule 13, never zeros).
    Missing {
        /// Which file and why, for the torrent's state reason.
        reason: String,
    },
}

/// Loads torrent `id`, whose data is at `data_path`, from `catalog`: its files, one `fstat`
/// each ([`resume::observe`]), [`resume::classify`], and for a torrent that can seed, its
/// metainfo and storage. Blocking (SQLite reads, file opens): never on the event loop.
///
/// # Errors
/// The catalog cannot be read, or its metainfo does not parse (worded for logs).
pub(crate) fn load(catalog: &Catalog, id: TorrentId, data_path: &Path) -> Result<Start, String> {
    let files = catalog.files(id).map_err(|e| e.to_string())?;
    let blob = match files.as_slice() {
        [file] => match file.sha256 {
            Some(sha256) => {
                let (owner, added_at) =
                    catalog.owner_and_added_at(id).map_err(|e| e.to_string())?;
                Some(BlobRecord {
                    sha256,
                    owner,
                    added_at,
                })
            }
            None => None,
        },
        _ => None,
    };
    let observed = resume::observe(data_path, &files);
    let bytes = catalog.metainfo(id).map_err(|e| e.to_string())?;
    let meta = Metainfo::from_bytes(&bytes).map_err(|e| format!("stored metainfo: {e}"))?;
    drop(bytes);
    let piece_length = NonZeroU32::new(meta.info.piece_length)
        .ok_or_else(|| "stored metainfo: piece length 0".to_owned())?;
    let recheck = match resume::classify(&files, &observed, piece_length) {
        Resume::Ready => None,
        Resume::Recheck { pieces } => Some(RecheckPlan {
            pieces,
            files,
            observed,
            piece_length: piece_length.get(),
        }),
        Resume::MissingData { reason, .. } => return Ok(Start::Missing { reason }),
    };
    let storage = Storage::open_with(data_path, &meta.info, SymlinkPolicy::FollowWithinRoot)
        .map_err(|e| format!("{}: {e}", escape_path(data_path)))?;
    let have = vec![true; meta.info.pieces.len()];
    let (torrent, tiers) = seeded_torrent(
        Prepared {
            meta,
            torrent_path: data_path.to_path_buf(),
            have,
            storage,
        },
        false,
        &[],
    );
    Ok(Start::Seed(Box::new(Loaded {
        id,
        torrent,
        tiers,
        recheck,
        blob,
    })))
}
