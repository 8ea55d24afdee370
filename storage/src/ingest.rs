//! Streaming ingest of one uploaded file (`UPLOAD_FILE`, `docs/upload.md`): the bytes are
//! written to a temporary file in the data directory and hashed from the very buffer that is
//! written, never read back, then the file is renamed into place and its torrent built.
//!
//! # What is computed, and how it matches `seednode create`
//! The temporary file is opened write-only, so the node cannot read it back even by mistake.
//! Each chunk passed to [`Ingest::write`] is written with `pwrite` and, from the same slice, fed
//! to the whole-file SHA-256 and to the piece hasher `creation` uses ([`crate::create_torrent`]
//! hashes pieces read from disk with the same `PieceHasher`): SHA-1 per piece for v1 and
//! hybrid, SHA-256 per 16 KiB block reduced to each piece's merkle root for v2 and hybrid. The
//! torrent is assembled by the very functions creation uses (`metainfo_v1`, `build_v2`,
//! `finish_metainfo`), with the same piece-length rule ([`crate::auto_piece_length`] unless
//! [`CreateOptions::piece_length`]), so for the same bytes, name and [`CreateOptions`] the
//! info-hash equals what [`crate::create_torrent`] gives for the finished file (tested for v1, v2
//! and hybrid).
//!
//! # Files and durability (SECURITY §0 rules 8 and 12)
//! The temporary file is `<data dir>/`[`PARTIAL_DIR`]`/<upload id>.part`, created with
//! `O_CREAT | O_EXCL | O_NOFOLLOW` beneath the data directory held open (`Root`); the final
//! name is one component validated by [`crate::validate_component`]. [`Ingest::finish`]:
//! `fsync` of the file, SHA-256 check (a mismatch removes the file: nothing is left), the
//! torrent built, `renameat2(RENAME_NOREPLACE)` into the data directory (an existing entry of
//! that name, a link included, is never replaced: [`IngestError::Exists`], and the temporary
//! file is removed), `fsync` of both directories. The caller commits its catalog row after
//! that, then answers `OK`.
//!
//! # Resuming
//! [`Ingest::checkpoint`] `fdatasync`s the temporary file and serialises the exact hashing state
//! at the current offset (`sha2`/`sha1` 0.11 hashers are serialisable, so nothing is re-hashed
//! and the offset need not be on a piece boundary): the whole-file SHA-256, the current piece's
//! SHA-1 and 16 KiB block states, the piece's leaf hashes so far and every finished piece's
//! digests. [`Ingest::resume`] truncates the temporary file to the checkpoint's offset (bytes
//! written after it were not hashed) and continues from there. The checkpoint's size is about
//! 52 bytes per finished piece (hybrid; 20 for v1, 32 for v2), at most a few MiB because
//! a torrent is at most [`crate::limits::MAX_TORRENT_LEN`] bytes.
//!
//! [`Ingest::save_checkpoint`] keeps the checkpoint durably beside the temporary file
//! (`<upload id>.ckpt`), so [`Ingest::resume_saved`] continues after a restart with no catalog
//! row involved. Dropping an [`Ingest`] leaves its files for a later resume; [`Ingest::abort`]
//! and [`discard`] remove them, [`partial_uploads`] lists them (with their age) for the expiry
//! and the cleanup at start.
//!
//! Every call blocks on the disk: the engine runs it on a disk thread, never the event loop.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt as _;
use std::path::Path;
use std::time::SystemTime;

use rustix::io::Errno;
use seednode_wire::merkle;
use seednode_wire::metainfo::{FileEntry, Info, Metainfo};
use seednode_wire::metainfo_v2::{FileV2, InfoV2, PieceMap};
use seednode_wire::upload::{ErrorCode, SHA256_LEN, UploadId};
use sha1::Sha1;
use sha2::digest::common::hazmat::{SerializableState, SerializedState};
use sha2::{Digest as _, Sha256};

use crate::create::{
    CreateError, CreateOptions, choose_piece_length, finish_metainfo, metainfo_v1,
};
use crate::create_v2::build_v2;
use crate::hash_v2::{PieceDigest, PieceHasher};
use crate::limits::{MAX_TORRENT_LEN, MAX_TOTAL_LENGTH};
use crate::path::{PathError, validate_component};
use crate::root::Root;
use crate::{StorageError, TorrentVersion};

/// The directory below the data directory that holds partial uploads (hidden, one level).
pub const PARTIAL_DIR: &str = ".seednode-partial";

/// Suffix of a partial upload's file name after its upload id's hex.
pub const PARTIAL_SUFFIX: &str = ".part";

/// Most entries [`partial_uploads`] lists in one call: 100 000 (far above the engine's
/// concurrent-upload caps; a larger directory is cleaned over several starts).
pub const MAX_PARTIAL_LISTED: usize = 100_000;

/// Why an upload could not be ingested.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The file name is not one safe path component.
    #[error("bad file name: {0}")]
    BadName(#[from] PathError),
    /// A declared length of 0 bytes (a torrent needs data).
    #[error("empty file")]
    Empty,
    /// A declared length over the limit.
    #[error("file of {length} bytes over the limit of {limit}")]
    TooLarge {
        /// Declared length in bytes.
        length: u64,
        /// [`MAX_TOTAL_LENGTH`].
        limit: u64,
    },
    /// The torrent could not be planned or built (piece length, a .torrent over
    /// [`MAX_TORRENT_LEN`], a build that does not load).
    #[error(transparent)]
    Create(#[from] CreateError),
    /// An entry of that name already exists in the data directory; it was not touched.
    #[error("a file of that name already exists")]
    Exists,
    /// More bytes than the declared length.
    #[error("{got} bytes past offset {offset} overrun the declared {length} bytes")]
    Overrun {
        /// Offset of the write in bytes.
        offset: u64,
        /// Bytes in the write.
        got: u64,
        /// Declared length in bytes.
        length: u64,
    },
    /// [`Ingest::finish`] before all the bytes arrived.
    #[error("{offset} of {length} bytes received")]
    Incomplete {
        /// Bytes received.
        offset: u64,
        /// Declared length in bytes.
        length: u64,
    },
    /// The file's SHA-256 is not the one the client announced; the file was removed.
    #[error("sha256 mismatch")]
    Sha256Mismatch,
    /// No partial upload of that id, or its file is shorter than its checkpoint.
    #[error("no partial upload to resume")]
    NotFound,
    /// A checkpoint that does not parse, or does not match the options given to resume it.
    #[error("bad checkpoint: {reason}")]
    BadCheckpoint {
        /// What is wrong.
        reason: &'static str,
    },
    /// The data directory could not be opened.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A file operation failed (`ENOSPC` included).
    #[error("{op}: {source}")]
    Io {
        /// The operation.
        op: &'static str,
        /// The error.
        source: io::Error,
    },
}

impl IngestError {
    /// The upload reply code for this error (`docs/upload.md`).
    #[must_use]
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::BadName(_)
            | Self::Empty
            | Self::Overrun { .. }
            | Self::Incomplete { .. }
            | Self::Sha256Mismatch
            | Self::BadCheckpoint { .. }
            | Self::NotFound => ErrorCode::Malformed,
            Self::TooLarge { .. } => ErrorCode::TooLarge,
            Self::Create(CreateError::TorrentTooLarge { .. } | CreateError::TooLarge { .. }) => {
                ErrorCode::TooLarge
            }
            Self::Create(CreateError::BadPieceLength { .. }) => ErrorCode::Malformed,
            Self::Exists => ErrorCode::Exists,
            Self::Io { source, .. }
                if source.raw_os_error() == Some(Errno::NOSPC.raw_os_error()) =>
            {
                ErrorCode::Busy
            }
            Self::Create(_) | Self::Storage(_) | Self::Io { .. } => ErrorCode::Internal,
        }
    }
}

/// `errno` as an [`IngestError::Io`] for `op`.
fn io_err(op: &'static str) -> impl Fn(Errno) -> IngestError {
    move |errno| IngestError::Io {
        op,
        source: io::Error::from(errno),
    }
}

/// A finished upload: the file is in place, durable, and this is its torrent.
#[derive(Debug, Clone)]
pub struct Ingested {
    /// The torrent, as [`crate::create_torrent`] would make it of the file.
    pub metainfo: Metainfo,
    /// The whole file's SHA-256.
    pub sha256: [u8; SHA256_LEN],
    /// The file's length in bytes.
    pub length: u64,
}

/// The hashing state of one upload: everything a checkpoint holds besides names.
#[derive(Clone)]
struct HashState {
    length: u64,
    piece_length: u32,
    version: TorrentVersion,
    offset: u64,
    whole: Sha256,
    piece: PieceHasher,
    digests: Vec<PieceDigest>,
}

impl HashState {
    fn new(length: u64, piece_length: u32, version: TorrentVersion) -> Self {
        Self {
            length,
            piece_length,
            version,
            offset: 0,
            whole: Sha256::new(),
            piece: PieceHasher::new(version != TorrentVersion::V2, version != TorrentVersion::V1),
            digests: Vec::new(),
        }
    }

    /// Feeds the bytes at `self.offset`, finishing each piece as its last byte goes by.
    fn feed(&mut self, mut bytes: &[u8]) -> Result<(), IngestError> {
        self.whole.update(bytes);
        let pl = u64::from(self.piece_length);
        let width = merkle::piece_leaves(self.length, self.piece_length);
        while !bytes.is_empty() {
            let piece_left = pl - self.offset % pl;
            let take = usize::try_from(piece_left).map_or(bytes.len(), |p| p.min(bytes.len()));
            let (now, later) = bytes.split_at(take);
            self.piece.data(now)?;
            self.offset += take as u64;
            bytes = later;
            if self.offset.is_multiple_of(pl) || self.offset == self.length {
                self.digests.push(self.piece.finish(width)?);
            }
        }
        Ok(())
    }
}

/// One upload in progress (see the module docs).
pub struct Ingest {
    data: Root,
    partial: Root,
    file: File,
    temp_name: String,
    upload_id: UploadId,
    name: String,
    owner: String,
    expected_sha256: Option<[u8; SHA256_LEN]>,
    opts: CreateOptions,
    state: HashState,
}

/// What [`Ingest::start`] needs to know about a new upload, from its `UPLOAD_FILE` header and
/// the engine.
#[derive(Debug, Clone, Copy)]
pub struct NewUpload<'a> {
    /// The id the engine drew for it (random, [`UploadId`]).
    pub upload_id: UploadId,
    /// The file's name in the data directory: one component ([`crate::validate_component`]).
    pub name: &'a str,
    /// Bytes the client will send: 1 to [`MAX_TOTAL_LENGTH`].
    pub length: u64,
    /// The whole file's SHA-256 the client announced, checked at the end.
    pub sha256: Option<[u8; SHA256_LEN]>,
    /// Who uploads (the token's or client's id, never a secret): at most [`MAX_OWNER_LEN`]
    /// bytes, kept in checkpoints.
    pub owner: &'a str,
}

/// Longest [`NewUpload::owner`], in bytes: 255.
pub const MAX_OWNER_LEN: usize = 255;

/// Largest checkpoint file [`Ingest::resume_saved`] reads, in bytes: 32 MiB, above the largest
/// checkpoint a torrent within [`MAX_TORRENT_LEN`] can have (52 bytes per piece, at most
/// `MAX_TORRENT_LEN / 20` pieces, about 27 MiB). Over it: [`IngestError::BadCheckpoint`].
pub const MAX_CHECKPOINT_LEN: u64 = 32 * 1024 * 1024;

impl std::fmt::Debug for Ingest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingest")
            .field("upload_id", &self.upload_id)
            .field("offset", &self.state.offset)
            .field("length", &self.state.length)
            .finish_non_exhaustive()
    }
}

/// The temporary file name of `upload_id`.
fn temp_name(upload_id: UploadId) -> String {
    format!("{upload_id}{PARTIAL_SUFFIX}")
}

/// Checks what can be checked before any payload byte: the name, the length, the piece length
/// and the size of the torrent to be.
fn plan(name: &str, length: u64, opts: &CreateOptions) -> Result<u32, IngestError> {
    validate_component(name)?;
    if length == 0 {
        return Err(IngestError::Empty);
    }
    if length > MAX_TOTAL_LENGTH {
        return Err(IngestError::TooLarge {
            length,
            limit: MAX_TOTAL_LENGTH,
        });
    }
    let piece_length = choose_piece_length(opts, length)?;
    let estimated = if opts.version == TorrentVersion::V1 {
        let files = [FileEntry {
            path: Vec::new(),
            length,
        }];
        crate::create::estimate_torrent_len(
            name,
            &files,
            length.div_ceil(u64::from(piece_length)),
            opts,
        )
    } else {
        crate::create_v2::estimate_torrent_len(
            &info_v2(name, length, piece_length),
            opts.version == TorrentVersion::Hybrid,
            opts,
        )
    };
    if estimated > MAX_TORRENT_LEN {
        return Err(CreateError::TorrentTooLarge {
            estimated,
            limit: MAX_TORRENT_LEN,
        }
        .into());
    }
    Ok(piece_length)
}

/// The v2 `info` of a single file, roots unset: what creation makes of one file.
fn info_v2(name: &str, length: u64, piece_length: u32) -> InfoV2 {
    InfoV2 {
        name: name.to_owned(),
        piece_length,
        files: vec![FileV2 {
            path: vec![name.to_owned()],
            length,
            pieces_root: None,
        }],
        multi_file: false,
    }
}

impl Ingest {
    /// Starts `upload` into `data_dir`, to become a torrent as `opts` say (`opts.name` is
    /// ignored: the torrent is named `upload.name`). Everything that can be refused before the
    /// payload is checked here, so the engine calls it before answering `UPLOAD <id> 0`.
    ///
    /// # Errors
    /// [`IngestError::BadName`], [`IngestError::Empty`], [`IngestError::TooLarge`],
    /// [`IngestError::Create`] (piece length, torrent too large), [`IngestError::Exists`]
    /// when the name is already taken, [`IngestError::Storage`] when `data_dir` cannot be
    /// opened, [`IngestError::Io`] (a temporary file of this id exists, a link in place of
    /// [`PARTIAL_DIR`], no space, ...).
    pub fn start(
        data_dir: &Path,
        upload: &NewUpload<'_>,
        opts: &CreateOptions,
    ) -> Result<Self, IngestError> {
        let NewUpload {
            upload_id,
            name,
            length,
            sha256,
            owner,
        } = *upload;
        if owner.len() > MAX_OWNER_LEN {
            return Err(IngestError::BadCheckpoint {
                reason: "owner too long",
            });
        }
        let piece_length = plan(name, length, opts)?;
        let data = Root::open_dir(data_dir)?;
        if data.contains(name) {
            return Err(IngestError::Exists);
        }
        let partial = data
            .subdir(PARTIAL_DIR)
            .map_err(io_err("partial directory"))?;
        let temp_name = temp_name(upload_id);
        let file = partial
            .create_new(&temp_name)
            .map_err(io_err("create partial file"))?;
        Ok(Self {
            data,
            partial,
            file,
            temp_name,
            upload_id,
            name: name.to_owned(),
            owner: owner.to_owned(),
            expected_sha256: sha256,
            opts: opts.clone(),
            state: HashState::new(length, piece_length, opts.version),
        })
    }

    /// Who started the upload: the `owner` given to [`Ingest::start`], kept in checkpoints, for
    /// the engine to check that the client resuming it is the same.
    #[must_use]
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The file's name in the data directory.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The upload's id.
    #[must_use]
    pub const fn upload_id(&self) -> UploadId {
        self.upload_id
    }

    /// Bytes received and hashed so far: the offset the next [`Ingest::write`] starts at.
    #[must_use]
    pub const fn offset(&self) -> u64 {
        self.state.offset
    }

    /// The declared length in bytes.
    #[must_use]
    pub const fn length(&self) -> u64 {
        self.state.length
    }

    /// Writes `chunk` at [`Ingest::offset`] and hashes it from the same slice.
    ///
    /// # Errors
    /// [`IngestError::Overrun`] past the declared length (nothing written);
    /// [`IngestError::Io`] when the write fails (`ENOSPC`: [`ErrorCode::Busy`]); the offset
    /// does not move then.
    pub fn write(&mut self, chunk: &[u8]) -> Result<(), IngestError> {
        let offset = self.state.offset;
        let got = chunk.len() as u64;
        if offset
            .checked_add(got)
            .is_none_or(|end| end > self.state.length)
        {
            return Err(IngestError::Overrun {
                offset,
                got,
                length: self.state.length,
            });
        }
        self.file
            .write_all_at(chunk, offset)
            .map_err(|source| IngestError::Io {
                op: "write",
                source,
            })?;
        self.state.feed(chunk)
    }

    /// Makes the bytes so far durable and returns the state to resume from at
    /// [`Ingest::offset`] (see the module docs; opaque bytes, for the catalog).
    ///
    /// # Errors
    /// [`IngestError::Io`] when `fdatasync` fails.
    pub fn checkpoint(&self) -> Result<Vec<u8>, IngestError> {
        self.file.sync_data().map_err(|source| IngestError::Io {
            op: "fdatasync",
            source,
        })?;
        Ok(encode_checkpoint(self))
    }

    /// Continues the upload a [`Ingest::checkpoint`] describes, in `data_dir`, with the same
    /// `opts` it started with: the temporary file is truncated to the checkpoint's offset, which
    /// [`Ingest::offset`] then returns (the client sends from there).
    ///
    /// # Errors
    /// [`IngestError::BadCheckpoint`] when `checkpoint` does not parse or its version or piece
    /// length differ from `opts`'; [`IngestError::NotFound`] when the temporary file is
    /// missing or shorter than the offset; [`IngestError::Exists`] when the name was taken
    /// meanwhile; [`IngestError::Storage`], [`IngestError::Io`].
    pub fn resume(
        data_dir: &Path,
        checkpoint: &[u8],
        opts: &CreateOptions,
    ) -> Result<Self, IngestError> {
        let decoded = decode_checkpoint(checkpoint)?;
        let piece_length = plan(&decoded.name, decoded.state.length, opts)?;
        if piece_length != decoded.state.piece_length || opts.version != decoded.state.version {
            return Err(IngestError::BadCheckpoint {
                reason: "options differ from the upload's",
            });
        }
        let data = Root::open_dir(data_dir)?;
        if data.contains(&decoded.name) {
            return Err(IngestError::Exists);
        }
        let partial = data
            .subdir(PARTIAL_DIR)
            .map_err(io_err("partial directory"))?;
        let temp_name = temp_name(decoded.upload_id);
        let file = partial
            .open_write(&temp_name)
            .map_err(|errno| match errno {
                Errno::NOENT => IngestError::NotFound,
                errno => io_err("open partial file")(errno),
            })?;
        let on_disk = file
            .metadata()
            .map_err(|source| IngestError::Io {
                op: "stat partial file",
                source,
            })?
            .len();
        if on_disk < decoded.state.offset {
            return Err(IngestError::NotFound);
        }
        file.set_len(decoded.state.offset)
            .map_err(|source| IngestError::Io {
                op: "truncate partial file",
                source,
            })?;
        Ok(Self {
            data,
            partial,
            file,
            temp_name,
            upload_id: decoded.upload_id,
            name: decoded.name,
            owner: decoded.owner,
            expected_sha256: decoded.expected_sha256,
            opts: opts.clone(),
            state: decoded.state,
        })
    }

    /// Ends the upload once every byte arrived: `fsync`, SHA-256 check, torrent, rename into
    /// place without replacing anything, directory `fsync`s (see the module docs).
    ///
    /// # Errors
    /// [`IngestError::Incomplete`] before the last byte (the upload stays resumable);
    /// [`IngestError::Sha256Mismatch`] and [`IngestError::Exists`] remove the temporary file;
    /// [`IngestError::Create`], [`IngestError::Io`] (the temporary file is removed too).
    pub fn finish(self) -> Result<Ingested, IngestError> {
        if self.state.offset != self.state.length {
            return Err(IngestError::Incomplete {
                offset: self.state.offset,
                length: self.state.length,
            });
        }
        let result = self.finish_inner();
        // Done or refused for good: nothing of this upload stays in the partial directory (a
        // failure to clean up is left to the cleanup at start).
        let _ = remove_partial(&self.partial, self.upload_id);
        result
    }

    fn finish_inner(&self) -> Result<Ingested, IngestError> {
        self.file.sync_all().map_err(|source| IngestError::Io {
            op: "fsync",
            source,
        })?;
        let sha256: [u8; SHA256_LEN] = self.state.whole.clone().finalize().into();
        if self.expected_sha256.is_some_and(|want| want != sha256) {
            return Err(IngestError::Sha256Mismatch);
        }
        let metainfo = self.metainfo()?;
        self.partial
            .rename_noreplace(&self.temp_name, &self.data, &self.name)
            .map_err(|errno| match errno {
                Errno::EXIST => IngestError::Exists,
                errno => io_err("rename into place")(errno),
            })?;
        self.data.sync().map_err(io_err("fsync data directory"))?;
        self.partial
            .sync()
            .map_err(io_err("fsync partial directory"))?;
        Ok(Ingested {
            metainfo,
            sha256,
            length: self.state.length,
        })
    }

    /// The torrent of the finished file, built as creation builds it.
    fn metainfo(&self) -> Result<Metainfo, IngestError> {
        let s = &self.state;
        let metainfo = if s.version == TorrentVersion::V1 {
            let info = Info {
                name: self.name.clone(),
                piece_length: s.piece_length,
                pieces: s.digests.iter().map(|d| d.v1).collect(),
                files: vec![FileEntry {
                    path: Vec::new(),
                    length: s.length,
                }],
                multi_file: false,
                private: self.opts.private,
            };
            metainfo_v1(info, &self.opts)
        } else {
            let info = info_v2(&self.name, s.length, s.piece_length);
            let map = PieceMap::new(&info);
            build_v2(
                info,
                &map,
                &s.digests,
                s.version == TorrentVersion::Hybrid,
                &self.opts,
            )?
        };
        Ok(finish_metainfo(metainfo, &self.opts)?)
    }

    /// Gives up the upload: its temporary file and saved checkpoint are removed.
    ///
    /// # Errors
    /// [`IngestError::Io`] when the removal fails.
    pub fn abort(self) -> Result<(), IngestError> {
        remove_partial(&self.partial, self.upload_id).map(|_| ())
    }

    /// [`Ingest::checkpoint`], saved durably next to the temporary file as
    /// `<upload id>.ckpt` (written to a temporary name, `fsync`ed, renamed over the previous
    /// one, directory `fsync`ed), for [`Ingest::resume_saved`], even after a restart. No catalog
    /// row is involved: a partial upload lives only in [`PARTIAL_DIR`].
    ///
    /// # Errors
    /// [`IngestError::Io`].
    pub fn save_checkpoint(&self) -> Result<(), IngestError> {
        let bytes = self.checkpoint()?;
        let saved = checkpoint_name(self.upload_id);
        let temp = format!("{saved}.tmp");
        match self.partial.remove_file(&temp) {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(errno) => return Err(io_err("remove stale checkpoint")(errno)),
        }
        let file = self
            .partial
            .create_new(&temp)
            .map_err(io_err("create checkpoint"))?;
        file.write_all_at(&bytes, 0)
            .and_then(|()| file.sync_all())
            .map_err(|source| IngestError::Io {
                op: "write checkpoint",
                source,
            })?;
        self.partial
            .rename_replace(&temp, &saved)
            .map_err(io_err("rename checkpoint"))?;
        self.partial
            .sync()
            .map_err(io_err("fsync partial directory"))
    }

    /// [`Ingest::resume`] from the checkpoint [`Ingest::save_checkpoint`] saved for
    /// `upload_id` in `data_dir`.
    ///
    /// # Errors
    /// [`IngestError::NotFound`] when there is none; as [`Ingest::resume`].
    pub fn resume_saved(
        data_dir: &Path,
        upload_id: UploadId,
        opts: &CreateOptions,
    ) -> Result<Self, IngestError> {
        let data = Root::open_dir(data_dir)?;
        if !data.contains(PARTIAL_DIR) {
            return Err(IngestError::NotFound);
        }
        let partial = data
            .subdir(PARTIAL_DIR)
            .map_err(io_err("partial directory"))?;
        let name = checkpoint_name(upload_id);
        let (file, len) = match partial.open_file(Path::new(&name), Path::new(&name)) {
            Ok(opened) => opened,
            Err(StorageError::FileMissing { .. }) => return Err(IngestError::NotFound),
            Err(e) => return Err(e.into()),
        };
        if len > MAX_CHECKPOINT_LEN {
            return Err(IngestError::BadCheckpoint {
                reason: "checkpoint file too large",
            });
        }
        // len <= MAX_CHECKPOINT_LEN, a usize.
        let mut bytes = vec![0u8; len as usize];
        file.read_exact_at(&mut bytes, 0)
            .map_err(|source| IngestError::Io {
                op: "read checkpoint",
                source,
            })?;
        let resumed = Self::resume(data_dir, &bytes, opts)?;
        if resumed.upload_id != upload_id {
            return Err(IngestError::BadCheckpoint {
                reason: "checkpoint of another upload",
            });
        }
        Ok(resumed)
    }
}

/// The name of `upload_id`'s saved checkpoint.
fn checkpoint_name(upload_id: UploadId) -> String {
    format!("{upload_id}{CHECKPOINT_SUFFIX}")
}

/// Suffix of a saved checkpoint's file name after its upload id's hex.
pub const CHECKPOINT_SUFFIX: &str = ".ckpt";

/// Removes `upload_id`'s temporary file and saved checkpoint from `partial`, then `fsync`s it;
/// returns whether there was anything.
fn remove_partial(partial: &Root, upload_id: UploadId) -> Result<bool, IngestError> {
    let mut found = false;
    let saved = checkpoint_name(upload_id);
    for name in [temp_name(upload_id), format!("{saved}.tmp"), saved] {
        match partial.remove_file(&name) {
            Ok(()) => found = true,
            Err(Errno::NOENT) => {}
            Err(errno) => return Err(io_err("remove partial file")(errno)),
        }
    }
    if found {
        partial.sync().map_err(io_err("fsync partial directory"))?;
    }
    Ok(found)
}

/// Removes the temporary file and saved checkpoint of `upload_id` in `data_dir`, if any (an
/// expired or cancelled upload). Returns whether there was one.
///
/// # Errors
/// [`IngestError::Storage`] when `data_dir` cannot be opened, [`IngestError::Io`].
pub fn discard(data_dir: &Path, upload_id: UploadId) -> Result<bool, IngestError> {
    let data = Root::open_dir(data_dir)?;
    if !data.contains(PARTIAL_DIR) {
        return Ok(false);
    }
    let partial = data
        .subdir(PARTIAL_DIR)
        .map_err(io_err("partial directory"))?;
    remove_partial(&partial, upload_id)
}

/// A partial upload found in [`PARTIAL_DIR`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartialUpload {
    /// Its id.
    pub upload_id: UploadId,
    /// When its temporary file was last written (the engine expires it from there); the epoch
    /// when it has none (a leftover checkpoint: expire it at once).
    pub modified: SystemTime,
    /// Whether a checkpoint was saved for it ([`Ingest::resume_saved`] can continue it).
    pub resumable: bool,
}

/// The partial uploads in `data_dir`'s [`PARTIAL_DIR`] (every id with a temporary file, a
/// saved checkpoint, or a leftover of either), sorted by id, from at most
/// [`MAX_PARTIAL_LISTED`] entries; other entries are ignored. The engine calls it at start and [`discard`]s those expired or not
/// resumable (SECURITY S1).
///
/// # Errors
/// [`IngestError::Storage`] when `data_dir` cannot be opened, [`IngestError::Io`].
pub fn partial_uploads(data_dir: &Path) -> Result<Vec<PartialUpload>, IngestError> {
    let data = Root::open_dir(data_dir)?;
    if !data.contains(PARTIAL_DIR) {
        return Ok(Vec::new());
    }
    let partial = data
        .subdir(PARTIAL_DIR)
        .map_err(io_err("partial directory"))?;
    let names = partial
        .list(MAX_PARTIAL_LISTED)
        .map_err(io_err("list partial directory"))?;
    let mut ids: Vec<UploadId> = names
        .iter()
        .filter_map(|n| {
            let n = n.strip_suffix(".tmp").unwrap_or(n);
            n.strip_suffix(PARTIAL_SUFFIX)
                .or_else(|| n.strip_suffix(CHECKPOINT_SUFFIX))
        })
        .filter_map(|id| UploadId::parse(id.as_bytes()).ok())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let out = ids
        .into_iter()
        .map(|upload_id| PartialUpload {
            upload_id,
            modified: partial
                .modified(&temp_name(upload_id))
                .unwrap_or(SystemTime::UNIX_EPOCH),
            resumable: partial.contains(&checkpoint_name(upload_id)),
        })
        .collect();
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Checkpoint format
// ---------------------------------------------------------------------------------------------

/// First bytes of a checkpoint, then the format version.
const CHECKPOINT_MAGIC: &[u8; 4] = b"SNI\x02";

fn encode_checkpoint(ingest: &Ingest) -> Vec<u8> {
    let s = &ingest.state;
    let mut out = Vec::with_capacity(256 + s.digests.len() * 52);
    out.extend_from_slice(CHECKPOINT_MAGIC);
    out.extend_from_slice(ingest.upload_id.as_bytes());
    // The name is at most 255 bytes (validated).
    out.push(u8::try_from(ingest.name.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(ingest.name.as_bytes());
    // The owner is at most MAX_OWNER_LEN (255) bytes (checked by start).
    out.push(u8::try_from(ingest.owner.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(ingest.owner.as_bytes());
    out.extend_from_slice(&s.length.to_le_bytes());
    out.extend_from_slice(&s.piece_length.to_le_bytes());
    out.push(match s.version {
        TorrentVersion::V1 => 1,
        TorrentVersion::V2 => 2,
        TorrentVersion::Hybrid => 3,
    });
    match &ingest.expected_sha256 {
        Some(d) => {
            out.push(1);
            out.extend_from_slice(d);
        }
        None => out.push(0),
    }
    out.extend_from_slice(&s.offset.to_le_bytes());
    out.extend_from_slice(&s.whole.serialize());
    if let Some(sha1) = &s.piece.sha1 {
        out.extend_from_slice(&sha1.serialize());
    }
    out.extend_from_slice(&s.piece.block.serialize());
    out.extend_from_slice(&s.piece.block_fill.to_le_bytes());
    // Leaves of one piece and pieces of one torrent fit u32 (MAX_LEAVES_PER_PIECE, MAX_PIECES).
    out.extend_from_slice(&(s.piece.leaves.len() as u32).to_le_bytes());
    s.piece.leaves.iter().for_each(|l| out.extend_from_slice(l));
    out.extend_from_slice(&(s.digests.len() as u32).to_le_bytes());
    for d in &s.digests {
        if s.version != TorrentVersion::V2 {
            out.extend_from_slice(&d.v1);
        }
        if s.version != TorrentVersion::V1 {
            out.extend_from_slice(&d.v2);
        }
    }
    out
}

/// A parsed checkpoint.
struct Decoded {
    upload_id: UploadId,
    name: String,
    owner: String,
    expected_sha256: Option<[u8; SHA256_LEN]>,
    state: HashState,
}

/// A cursor over checkpoint bytes; every read is bounds-checked.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], IngestError> {
        if self.0.len() < n {
            return Err(IngestError::BadCheckpoint {
                reason: "truncated",
            });
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], IngestError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    fn u8(&mut self) -> Result<u8, IngestError> {
        Ok(self.array::<1>()?[0])
    }
    fn u32(&mut self) -> Result<u32, IngestError> {
        self.array().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Result<u64, IngestError> {
        self.array().map(u64::from_le_bytes)
    }
    fn state<T: SerializableState>(&mut self) -> Result<T, IngestError> {
        let bad = IngestError::BadCheckpoint {
            reason: "hash state",
        };
        let n = size_of::<SerializedState<T>>();
        let bytes = self.take(n)?;
        let state =
            SerializedState::<T>::try_from(bytes).map_err(|_| IngestError::BadCheckpoint {
                reason: "hash state",
            })?;
        T::deserialize(&state).map_err(|_| bad)
    }
}

fn decode_checkpoint(bytes: &[u8]) -> Result<Decoded, IngestError> {
    let bad = |reason| IngestError::BadCheckpoint { reason };
    let mut r = Reader(bytes);
    if r.take(4)? != CHECKPOINT_MAGIC {
        return Err(bad("unknown format"));
    }
    let upload_id = UploadId::from_bytes(r.array()?);
    let name_len = usize::from(r.u8()?);
    let name = std::str::from_utf8(r.take(name_len)?)
        .map_err(|_| bad("name"))?
        .to_owned();
    let owner_len = usize::from(r.u8()?);
    let owner = std::str::from_utf8(r.take(owner_len)?)
        .map_err(|_| bad("owner"))?
        .to_owned();
    let length = r.u64()?;
    let piece_length = r.u32()?;
    let version = match r.u8()? {
        1 => TorrentVersion::V1,
        2 => TorrentVersion::V2,
        3 => TorrentVersion::Hybrid,
        _ => return Err(bad("version")),
    };
    let expected_sha256 = match r.u8()? {
        0 => None,
        1 => Some(r.array()?),
        _ => return Err(bad("sha256 flag")),
    };
    let offset = r.u64()?;
    if length == 0 || length > MAX_TOTAL_LENGTH || offset > length || piece_length == 0 {
        return Err(bad("lengths"));
    }
    let mut state = HashState::new(length, piece_length, version);
    state.offset = offset;
    state.whole = r.state::<Sha256>()?;
    if state.piece.sha1.is_some() {
        state.piece.sha1 = Some(r.state::<Sha1>()?);
    }
    state.piece.block = r.state::<Sha256>()?;
    state.piece.block_fill = r.u32()?;
    let leaves = r.u32()? as usize;
    // The piece in progress and the finished pieces must agree with the offset (at the end,
    // the last piece is finished even when short).
    let pl = u64::from(piece_length);
    let done = offset == length;
    let in_piece = if done { 0 } else { offset % pl };
    let v2 = version != TorrentVersion::V1;
    let block = u64::from(merkle::BLOCK_LEN);
    let (want_leaves, want_fill) = if v2 {
        (in_piece / block, in_piece % block)
    } else {
        (0, 0)
    };
    if leaves as u64 != want_leaves || u64::from(state.piece.block_fill) != want_fill {
        return Err(bad("piece state"));
    }
    state.piece.leaves = (0..leaves).map(|_| r.array()).collect::<Result<_, _>>()?;
    let pieces = r.u32()? as usize;
    let want_pieces = if done {
        length.div_ceil(pl)
    } else {
        offset / pl
    };
    if pieces as u64 != want_pieces {
        return Err(bad("piece count"));
    }
    state.digests = (0..pieces)
        .map(|_| {
            let mut d = PieceDigest::default();
            if version != TorrentVersion::V2 {
                d.v1 = r.array()?;
            }
            if version != TorrentVersion::V1 {
                d.v2 = r.array()?;
            }
            Ok(d)
        })
        .collect::<Result<_, IngestError>>()?;
    if !r.0.is_empty() {
        return Err(bad("trailing bytes"));
    }
    validate_component(&name)?;
    Ok(Decoded {
        upload_id,
        name,
        owner,
        expected_sha256,
        state,
    })
}
