//! seednode storage: a torrent's files on disk, block reads for seeding, torrent creation and
//! verification.
//!
//! The contract:
//! - Storage only reads torrent data, with one exception: [`ingest`] writes an uploaded file
//!   (a temporary file beneath the data directory, renamed into place without replacing
//!   anything), on the engine's disk thread. It never writes, truncates or deletes a file of an
//!   existing torrent; the other file it writes is the [`catalog`] (SQLite), on the engine's
//!   catalog thread.
//! - Every filesystem path built from torrent data goes through [`SafeRelPath`]; nothing below a
//!   torrent's data path is reached through a symbolic link. The data path is resolved once, when
//!   [`Storage::open`] (or creation) holds its directory open; every open of a file, including
//!   each reopen after the handle cache evicted it, is relative to that directory with
//!   `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` or an `O_NOFOLLOW` walk (SECURITY §0
//!   rule 8). The one exception is opt-in ([`SymlinkPolicy::FollowWithinRoot`], for torrents
//!   created by following a tree's own links): links are followed only while the kernel's
//!   `RESOLVE_BENEATH` sees every step stay beneath the data path, so nothing outside it is
//!   ever read either way.
//! - Missing data is an error, never zeros: a missing, short or truncated file fails the read
//!   (SECURITY S5). Only BEP 47 padding files read as zeros.
//! - Every offset is computed with checked arithmetic or proven in range first; requests are
//!   validated against the torrent before any file is touched.
//! - Threads are started only to hash ([`create_torrent`], [`verify`]), scoped to the call; block
//!   reads run on the caller's thread (the engine's disk pool).
//!
//! Call order for seeding: [`Storage::open`] (checks every file exists with its length), then
//! optionally [`verify`], then [`Storage::read_block`] or [`Storage::block_segments`] +
//! [`Storage::file`] (for `sendfile`) per request, from any thread through an `Arc<Storage>`.
//!
//! v2 and hybrid torrents (BEP 52) are opened the same way with their `Metainfo::info` (the
//! piece space, files aligned by padding that reads as zeros); [`verify_v2`] checks the data
//! against the SHA-256 merkle hashes, and [`block_hashes_v2`] hashes the blocks a `hash request`
//! below the piece layer needs.
//! The engine builds the data path of a torrent named `name` as
//! `SafeRelPath::new(&[name])?.under(root)`.
//!
//! The [`catalog`] remembers torrents, files, statistics, settings and API tokens across
//! restarts, and decides at start which torrents seed at once ([`catalog::resume`]).
//!
//! Bounds are in [`limits`].

#![warn(missing_docs)]

pub mod catalog;
mod create;
mod create_v2;
mod delete;
mod files;
mod hash;
mod hash_v2;
pub mod ingest;
mod layout;
pub mod limits;
mod path;
mod root;
mod verify;

pub use catalog::{Catalog, CatalogError};
pub use create::{
    CREATED_BY, CreateError, CreateOptions, SkipReason, SkippedLink, Survey, auto_piece_length,
    create_info, create_torrent, survey,
};
pub use create_v2::TorrentVersion;
pub use delete::{DeleteError, DeleteReport, delete_torrent_data};
pub use files::{Segment, SegmentIter};
pub use hash::default_threads;
pub use hash_v2::{block_hashes_v2, verify_v2};
pub use ingest::{Ingest, IngestError, Ingested, NewUpload};
pub use layout::{Residency, Storage, StorageError, WARM_CHUNK_LEN};
pub use path::{
    NonPortable, PathError, SafeRelPath, non_portable_paths, portability_issue, validate_component,
};
pub use root::SymlinkPolicy;
pub use verify::verify;
