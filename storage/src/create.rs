//! Torrent creation from a file or a directory (BEP 3 metainfo, BEP 12 `announce-list`, BEP 19
//! `url-list`, BEP 27 `private`), byte-for-byte compatible with mktorrent 1.1. v2-only and hybrid
//! torrents (BEP 52, [`CreateOptions::version`]) are created by `create_v2`.
//!
//! For the same data, name, piece length and `private` flag, the `info` dictionary, and so the
//! info-hash, equals mktorrent's: mktorrent writes exactly the keys `Info::encode` writes, and
//! this module lists files in mktorrent's order. Differences from mktorrent, on purpose:
//! symbolic links below the root are followed only when [`CreateOptions::symlinks`] says so, and
//! then only those that resolve beneath the root (mktorrent follows every link, even out of the
//! tree); the others are skipped and reported ([`survey`]). An input of 0 bytes is refused, and
//! names that [`SafeRelPath`](crate::SafeRelPath) would refuse when loading are refused here
//! too.
//!
//! A followed link is listed under its own path (as mktorrent lists it) and read through it,
//! beneath the root, with the kernel's `RESOLVE_BENEATH` check ([`SymlinkPolicy`]): a torrent
//! made this way is seeded with [`Storage::open_with`](crate::Storage::open_with) and the same
//! policy, and no open ever leaves the data directory.

use std::cmp::Ordering;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use seednode_wire::display::escape_path;
use seednode_wire::metainfo::{FileEntry, Info, Metainfo};

use crate::files::{Backing, FileSet, FileSpec};
use crate::hash::hash_pieces;
use crate::layout::Geometry;
use crate::limits::{
    AUTO_MAX_PIECES, MAX_DIRS, MAX_FILES, MAX_PATH_COMPONENTS, MAX_PIECE_LEN, MAX_TORRENT_LEN,
    MAX_TOTAL_LENGTH, MIN_PIECE_LEN,
};
use crate::path::{PathError, validate_component};
use crate::root::{Root, SymlinkPolicy};
use crate::{StorageError, TorrentVersion, default_threads};

/// The `created by` value of torrents this crate creates.
pub const CREATED_BY: &str = concat!("seednode ", env!("CARGO_PKG_VERSION"));

/// What to put in a new torrent besides its data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateOptions {
    /// Which metainfo format to write: v1 (the default, mktorrent-compatible), v2-only or hybrid
    /// (BEP 52). Only [`create_torrent`] makes v2 and hybrid torrents.
    pub version: TorrentVersion,
    /// Piece length in bytes: a power of two in
    /// [`MIN_PIECE_LEN`]`..=`[`MAX_PIECE_LEN`]; `None` chooses [`auto_piece_length`].
    pub piece_length: Option<u32>,
    /// Tracker URLs, in tiers (BEP 12 `announce-list`; the first URL is also `announce`).
    pub trackers: Vec<Vec<String>>,
    /// Web seed URLs (BEP 19 `url-list`).
    pub url_list: Vec<String>,
    /// Sets the BEP 27 `private` flag (it changes the info-hash).
    pub private: bool,
    /// Hashing threads; 0 means one per core ([`default_threads`]). Small inputs use fewer.
    pub threads: usize,
    /// The torrent's `name`; `None` uses the file or directory name.
    pub name: Option<String>,
    /// `comment`.
    pub comment: Option<String>,
    /// `creation date`, seconds since the Unix epoch (the caller reads the clock); `None` omits
    /// it.
    pub creation_date: Option<i64>,
    /// `source` in the `info` dictionary (not a BEP: private trackers require it; it changes the
    /// info-hash, so the same data gets a distinct swarm per tracker). Added by
    /// [`create_torrent`]; [`create_info`] ignores it.
    pub source: Option<String>,
    /// Whether symbolic links below a directory are followed (those beneath it only).
    pub symlinks: SymlinkPolicy,
}

/// A symbolic link below a torrent's input that was not followed, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedLink {
    /// The link's path on disk.
    pub path: PathBuf,
    /// Why it was skipped.
    pub reason: SkipReason,
}

/// Why a symbolic link was skipped when creating a torrent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// Links are not followed ([`SymlinkPolicy::Refuse`], or a kernel without `openat2`).
    NotFollowed,
    /// The link resolves outside the input directory, or is absolute.
    LeavesRoot,
    /// The link's target does not exist.
    Broken,
    /// The link points at a directory that contains it (or is a chain of links too long).
    Loop,
    /// The target is neither a regular file nor a directory.
    Special,
}

impl SkipReason {
    /// A few words for messages.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::NotFollowed => "links are not followed",
            Self::LeavesRoot => "points outside the directory, or is absolute",
            Self::Broken => "target missing",
            Self::Loop => "loops back to a directory above it",
            Self::Special => "not a file or directory",
        }
    }
}

/// What a new torrent of an input would hold, found without reading any data: for checks and a
/// progress total before hashing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Survey {
    /// Bytes of data.
    pub total_length: u64,
    /// Regular files (followed links included).
    pub files: usize,
    /// Links below a directory that were skipped, in walk order.
    pub skipped_links: Vec<SkippedLink>,
}

/// Lists the input `path` as [`create_torrent`] would with `symlinks`, without hashing.
///
/// # Errors
/// The errors of [`create_info`] about the input and its size (not the piece length).
pub fn survey(path: &Path, symlinks: SymlinkPolicy) -> Result<Survey, CreateError> {
    let input = read_input(path, symlinks)?;
    let total_length = total_length(&input.files, path)?;
    Ok(Survey {
        total_length,
        files: input.files.len(),
        skipped_links: input.skipped_links,
    })
}

/// Why a torrent could not be created. I/O variants carry the path involved.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// Stat'ing or listing a path failed.
    #[error("{shown}: {source}", shown = escape_path(.path))]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// The input is neither a regular file nor a directory.
    #[error("{shown}: neither a regular file nor a directory", shown = escape_path(.path))]
    NotFileOrDirectory {
        /// The input path.
        path: PathBuf,
    },
    /// A file or directory name is not UTF-8 (a torrent's paths are UTF-8 strings, BEP 3).
    #[error("{shown}: name is not UTF-8", shown = escape_path(.path))]
    NonUtf8Name {
        /// The path with that name.
        path: PathBuf,
    },
    /// A file or directory name, or the torrent name, would be refused when loading.
    #[error("{shown}: {source}", shown = escape_path(.path))]
    UnsafeName {
        /// The path with that name (for the torrent name: the input path).
        path: PathBuf,
        /// What is wrong with the name.
        source: PathError,
    },
    /// The input path has no final component to name the torrent after (e.g. `/`); pass a name.
    #[error("{shown}: no name to give the torrent", shown = escape_path(.path))]
    NoName {
        /// The input path.
        path: PathBuf,
    },
    /// A directory is nested so deep that its files' paths would have more than
    /// [`MAX_PATH_COMPONENTS`] components.
    #[error("{shown}: files here would have paths of more than {limit} components", shown = escape_path(.path))]
    TooDeep {
        /// The first directory over the limit.
        path: PathBuf,
        /// [`MAX_PATH_COMPONENTS`].
        limit: usize,
    },
    /// The input holds more than [`MAX_FILES`] regular files.
    #[error("more than {limit} files")]
    TooManyFiles {
        /// Most files allowed.
        limit: usize,
    },
    /// The input holds more than [`MAX_DIRS`] directories.
    #[error("more than {limit} directories")]
    TooManyDirectories {
        /// Most directories allowed.
        limit: usize,
    },
    /// The input holds no bytes (an empty file, or only empty files): there is nothing to share.
    #[error("{shown}: no data (0 bytes)", shown = escape_path(.path))]
    NoData {
        /// The input path.
        path: PathBuf,
    },
    /// An explicit piece length is not a power of two in `min..=max`.
    #[error("piece length {got} is not a power of two in {min}..={max}")]
    BadPieceLength {
        /// The piece length asked for, in bytes.
        got: u32,
        /// [`MIN_PIECE_LEN`].
        min: u32,
        /// [`MAX_PIECE_LEN`].
        max: u32,
    },
    /// The `.torrent` would exceed [`MAX_TORRENT_LEN`]; a larger piece length shrinks it.
    #[error("the .torrent would be about {estimated} bytes, limit {limit}")]
    TorrentTooLarge {
        /// Estimated size in bytes.
        estimated: u64,
        /// [`MAX_TORRENT_LEN`].
        limit: u64,
    },
    /// The input is larger than [`MAX_TOTAL_LENGTH`] bytes.
    #[error("{shown}: {total} bytes, limit {limit}", shown = escape_path(.path))]
    TooLarge {
        /// The input path.
        path: PathBuf,
        /// Bytes in the input.
        total: u64,
        /// [`MAX_TOTAL_LENGTH`].
        limit: u64,
    },
    /// File lengths add up past `u64::MAX`.
    #[error("file lengths overflow 64 bits")]
    LengthOverflow,
    /// Reading the data failed while hashing, e.g. a file changed or vanished meanwhile.
    #[error("reading data: {0}")]
    Read(#[from] StorageError),
    /// [`create_info`] builds a v1 `info` only; v2 and hybrid torrents come from
    /// [`create_torrent`].
    #[error("create_info makes v1 torrents only; use create_torrent for {version:?}")]
    NotV1 {
        /// The version asked for.
        version: TorrentVersion,
    },
    /// A v2-only torrent of a directory that holds a single file: BEP 52 (and libtorrent) would
    /// load it as a single-file torrent of that file, not of the directory. Create it from the
    /// file itself, or as a hybrid.
    #[error(
        "{shown}: a v2-only torrent of a one-file directory would name the file, not the directory",
        shown = escape_path(.path)
    )]
    SingleFileDirectory {
        /// The directory.
        path: PathBuf,
    },
    /// The finished torrent did not pass `wire`'s own parser (a bug, or data that changed its
    /// shape while being hashed).
    #[error("the created torrent does not load: {0}")]
    Invalid(#[from] seednode_wire::metainfo::MetainfoError),
}

/// The automatic piece length for `total_length` bytes, in bytes: the smallest power of two in
/// [`MIN_PIECE_LEN`]`..=`[`MAX_PIECE_LEN`] that gives at most [`AUTO_MAX_PIECES`] pieces.
///
/// So inputs up to 31.25 MiB (2 000 × 16 KiB) use 16 KiB pieces, inputs up to 31.25 GiB
/// (2 000 × 16 MiB) get 1 001–2 000 pieces, and larger inputs use 16 MiB pieces.
#[must_use]
pub fn auto_piece_length(total_length: u64) -> u32 {
    let mut piece_length = MIN_PIECE_LEN;
    while piece_length < MAX_PIECE_LEN
        && total_length.div_ceil(u64::from(piece_length)) > AUTO_MAX_PIECES
    {
        piece_length *= 2;
    }
    piece_length
}

/// Creates a torrent of the file or directory at `path`: hashes its data and returns the
/// metainfo (`created by` [`CREATED_BY`]), in the format [`CreateOptions::version`] names (for
/// v2 and hybrid, see [`TorrentVersion`]).
///
/// A regular file (or a link to one) gives a single-file torrent; a directory gives a
/// multi-file torrent of every regular file below it, hidden ones and empty ones included, in
/// mktorrent's order (bytewise order of the `/`-joined relative paths). Symbolic links below the
/// directory, sockets, FIFOs and devices are skipped. `progress` receives the bytes hashed so far
/// (from any thread, one call at a time, never decreasing).
///
/// # Errors
/// See [`create_info`]; for v2 and hybrid also [`CreateError::SingleFileDirectory`] and
/// [`CreateError::Invalid`].
pub fn create_torrent(
    path: &Path,
    opts: &CreateOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Metainfo, CreateError> {
    let metainfo = if opts.version == TorrentVersion::V1 {
        metainfo_v1(create_info(path, opts, progress)?, opts)
    } else {
        crate::create_v2::create_v2(path, opts, progress)?
    };
    finish_metainfo(metainfo, opts)
}

/// The v1 metainfo of `info` with the fields of `opts` outside `info` (trackers, web seeds,
/// [`with_options`]): the one way both creation from disk and streaming ingest wrap a v1 `info`.
pub(crate) fn metainfo_v1(info: Info, opts: &CreateOptions) -> Metainfo {
    with_options(
        Metainfo::new(info, opts.trackers.clone(), opts.url_list.clone()),
        opts,
    )
}

/// The last step of every creation, v1, v2 or hybrid, from disk or streamed: `opts.source`
/// spliced into `info` ([`with_source`]).
///
/// # Errors
/// [`CreateError::Invalid`] when the result does not load.
pub(crate) fn finish_metainfo(
    metainfo: Metainfo,
    opts: &CreateOptions,
) -> Result<Metainfo, CreateError> {
    match &opts.source {
        Some(source) => with_source(&metainfo, source),
        None => Ok(metainfo),
    }
}

/// `metainfo` with `source` added to its `info` dictionary, parsed anew (new info-hashes).
/// `source` sorts after every other key of a v1, v2 or hybrid `info` (`private` is the last
/// one before it), so it goes just before the dictionary's closing `e`.
fn with_source(metainfo: &Metainfo, source: &str) -> Result<Metainfo, CreateError> {
    let info = &metainfo.info_bytes;
    let Some((b'e', body)) = info.split_last() else {
        // Never happens: info_bytes is a whole dictionary.
        return Err(CreateError::Invalid(
            seednode_wire::metainfo::MetainfoError::Bencode(
                seednode_wire::bencode::DecodeError::UnexpectedEof { pos: info.len() },
            ),
        ));
    };
    let mut spliced = Vec::with_capacity(info.len() + source.len() + 32);
    spliced.extend_from_slice(body);
    spliced.extend_from_slice(format!("6:source{}:", source.len()).as_bytes());
    spliced.extend_from_slice(source.as_bytes());
    spliced.push(b'e');
    let mut with = metainfo.clone();
    with.info_bytes = spliced.into();
    Ok(Metainfo::from_bytes(&with.to_bytes())?)
}

/// `metainfo` with the fields of `opts` outside `info` (v1, v2 and hybrid alike): `comment`,
/// `creation date`, and `created by` [`CREATED_BY`].
pub(crate) fn with_options(mut metainfo: Metainfo, opts: &CreateOptions) -> Metainfo {
    metainfo.comment.clone_from(&opts.comment);
    metainfo.created_by = Some(CREATED_BY.to_owned());
    metainfo.creation_date = opts.creation_date;
    metainfo
}

/// Builds and hashes the `info` dictionary of a new torrent of `path`, as
/// [`create_torrent`] does, without the metainfo around it (`trackers`, `url_list`, `comment` and
/// `creation_date` of `opts` are not used).
///
/// # Errors
/// [`CreateError::Io`], [`CreateError::NotFileOrDirectory`], [`CreateError::NonUtf8Name`],
/// [`CreateError::UnsafeName`], [`CreateError::NoName`] for an unusable input;
/// [`CreateError::TooDeep`], [`CreateError::TooManyFiles`], [`CreateError::TooManyDirectories`],
/// [`CreateError::TooLarge`], [`CreateError::TorrentTooLarge`], [`CreateError::LengthOverflow`]
/// over a limit;
/// [`CreateError::NoData`] for 0 bytes; [`CreateError::BadPieceLength`];
/// [`CreateError::Read`] when data changes or fails to read while hashing; and
/// [`CreateError::NotV1`] unless `opts.version` is [`TorrentVersion::V1`].
pub fn create_info(
    path: &Path,
    opts: &CreateOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Info, CreateError> {
    if opts.version != TorrentVersion::V1 {
        return Err(CreateError::NotV1 {
            version: opts.version,
        });
    }
    let name = torrent_name(path, opts.name.as_deref())?;
    let input = read_input(path, opts.symlinks)?;
    let total_length = total_length(&input.files, path)?;
    let file_set = FileSet::new(input.root, input.files.iter().map(Found::spec))?;
    let multi_file = input.multi_file;
    let files: Vec<FileEntry> = input
        .files
        .into_iter()
        .map(|f| FileEntry {
            path: f.rel,
            length: f.length,
        })
        .collect();
    let piece_length = choose_piece_length(opts, total_length)?;
    let piece_count = total_length.div_ceil(u64::from(piece_length));
    let estimated = estimate_torrent_len(&name, &files, piece_count, opts);
    if estimated > MAX_TORRENT_LEN {
        return Err(CreateError::TorrentTooLarge {
            estimated,
            limit: MAX_TORRENT_LEN,
        });
    }
    // piece_count <= MAX_TORRENT_LEN / 20, far below usize::MAX and u32::MAX.
    let piece_count = usize::try_from(piece_count).map_err(|_| CreateError::LengthOverflow)?;
    let geometry = Geometry::new(piece_length, piece_count, total_length)?;
    let mut pieces = vec![[0u8; 20]; piece_count];
    hash_pieces(
        &file_set,
        geometry,
        threads(opts),
        progress,
        &mut pieces,
        &|_, digest| digest,
    )?;
    Ok(Info {
        name,
        piece_length,
        pieces,
        files,
        multi_file,
        private: opts.private,
    })
}

/// `opts.piece_length` when valid, else [`auto_piece_length`] of `total_length`.
///
/// # Errors
/// [`CreateError::BadPieceLength`] for an explicit length that is not a power of two in
/// [`MIN_PIECE_LEN`]`..=`[`MAX_PIECE_LEN`].
pub(crate) fn choose_piece_length(
    opts: &CreateOptions,
    total_length: u64,
) -> Result<u32, CreateError> {
    match opts.piece_length {
        None => Ok(auto_piece_length(total_length)),
        Some(got) if got.is_power_of_two() && (MIN_PIECE_LEN..=MAX_PIECE_LEN).contains(&got) => {
            Ok(got)
        }
        Some(got) => Err(CreateError::BadPieceLength {
            got,
            min: MIN_PIECE_LEN,
            max: MAX_PIECE_LEN,
        }),
    }
}

pub(crate) fn threads(opts: &CreateOptions) -> usize {
    if opts.threads == 0 {
        default_threads()
    } else {
        opts.threads
    }
}

pub(crate) fn io_error(path: &Path, source: io::Error) -> CreateError {
    CreateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The torrent's name: `explicit`, or the input's last component, validated either way.
pub(crate) fn torrent_name(path: &Path, explicit: Option<&str>) -> Result<String, CreateError> {
    let name = match explicit {
        Some(name) => name.to_owned(),
        None => {
            let last = match path.file_name() {
                Some(last) => last.to_owned(),
                // `.`, `..`, `dir/..`: name it after the directory it resolves to.
                None => fs::canonicalize(path)
                    .map_err(|source| io_error(path, source))?
                    .file_name()
                    .ok_or_else(|| CreateError::NoName {
                        path: path.to_path_buf(),
                    })?
                    .to_owned(),
            };
            last.into_string().map_err(|_| CreateError::NonUtf8Name {
                path: path.to_path_buf(),
            })?
        }
    };
    validate_component(&name).map_err(|source| CreateError::UnsafeName {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(name)
}

/// A regular file of a new torrent's input.
pub(crate) struct Found {
    /// Path components relative to the input directory (empty for a single-file input).
    pub(crate) rel: Vec<String>,
    /// Path on disk, for messages.
    pub(crate) abs: PathBuf,
    /// The path opened, relative to the input's [`Root`].
    pub(crate) disk: PathBuf,
    /// Length in bytes when listed.
    pub(crate) length: u64,
}

impl Found {
    /// The file, to be read from disk.
    pub(crate) fn spec(&self) -> FileSpec {
        FileSpec {
            path: self.abs.clone(),
            rel: self.disk.clone(),
            length: self.length,
            backing: Backing::Disk,
        }
    }
}

/// A new torrent's input: its root, held open, and its regular files.
pub(crate) struct Input {
    /// Links below a directory that were not followed.
    pub(crate) skipped_links: Vec<SkippedLink>,
    /// The directory every file is read beneath: the input directory, or a single file's
    /// directory.
    pub(crate) root: Root,
    /// The files, a directory's in mktorrent's order.
    pub(crate) files: Vec<Found>,
    /// True for a directory.
    pub(crate) multi_file: bool,
}

/// Sum of the lengths of `files`, in bytes, within creation's bounds; `path` is the input, for
/// errors.
///
/// # Errors
/// [`CreateError::LengthOverflow`] past `u64::MAX`, [`CreateError::NoData`] for 0 bytes,
/// [`CreateError::TooLarge`] over [`MAX_TOTAL_LENGTH`].
pub(crate) fn total_length(files: &[Found], path: &Path) -> Result<u64, CreateError> {
    let total_length = files
        .iter()
        .try_fold(0u64, |sum, f| sum.checked_add(f.length))
        .ok_or(CreateError::LengthOverflow)?;
    if total_length == 0 {
        return Err(CreateError::NoData {
            path: path.to_path_buf(),
        });
    }
    if total_length > MAX_TOTAL_LENGTH {
        return Err(CreateError::TooLarge {
            path: path.to_path_buf(),
            total: total_length,
            limit: MAX_TOTAL_LENGTH,
        });
    }
    Ok(total_length)
}

/// Opens the root of the file or directory `path` (following a link given as `path`, the
/// operator's choice) and lists its regular files (see [`walk`]). Every later read of the files
/// is beneath that root, through no link (SECURITY §0 rule 8).
///
/// # Errors
/// [`CreateError::Io`] when `path` cannot be stat'ed, [`CreateError::NotFileOrDirectory`], the
/// errors of [`walk`], and [`CreateError::Read`] when the root cannot be opened.
pub(crate) fn read_input(path: &Path, symlinks: SymlinkPolicy) -> Result<Input, CreateError> {
    let meta = fs::metadata(path).map_err(|source| io_error(path, source))?;
    if meta.is_file() {
        let (root, name) = Root::for_file(path)?;
        let root = root.with_symlinks(symlinks);
        let file = Found {
            rel: Vec::new(),
            abs: path.to_path_buf(),
            disk: name,
            length: meta.len(),
        };
        Ok(Input {
            root,
            files: vec![file],
            multi_file: false,
            skipped_links: Vec::new(),
        })
    } else if meta.is_dir() {
        // Opened before the walk: the files listed are read beneath this very directory.
        let root = Root::open_dir(path)?.with_symlinks(symlinks);
        let (files, skipped_links) = walk(path, &root)?;
        Ok(Input {
            root,
            files,
            multi_file: true,
            skipped_links,
        })
    } else {
        Err(CreateError::NotFileOrDirectory {
            path: path.to_path_buf(),
        })
    }
}

/// A directory's identity, to notice a link that leads back to a directory above it.
type DirId = (u64, u64);

fn dir_id(path: &Path) -> Result<DirId, CreateError> {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::metadata(path).map_err(|source| io_error(path, source))?;
    Ok((meta.dev(), meta.ino()))
}

/// Lists the regular files below `root_path` (held open as `root`), in mktorrent's order, and
/// the links it did not follow. A link is followed when `root` allows it and
/// [`Root::stat_beneath`] (the same check every later open makes) resolves it beneath the root
/// to a file or a directory that is not one of its own ancestors.
pub(crate) fn walk(
    root_path: &Path,
    root: &Root,
) -> Result<(Vec<Found>, Vec<SkippedLink>), CreateError> {
    let mut found = Vec::new();
    let mut skipped = Vec::new();
    let mut pending = vec![(
        root_path.to_path_buf(),
        Vec::<String>::new(),
        vec![dir_id(root_path)?],
    )];
    let mut dirs = 1usize;
    while let Some((dir, rel, ancestors)) = pending.pop() {
        let entries = fs::read_dir(&dir).map_err(|source| io_error(&dir, source))?;
        for entry in entries {
            let entry = entry.map_err(|source| io_error(&dir, source))?;
            let path = entry.path();
            // DirEntry::file_type does not follow links.
            let mut file_type = entry
                .file_type()
                .map_err(|source| io_error(&path, source))?;
            let is_link = file_type.is_symlink();
            if is_link && root.symlinks() == SymlinkPolicy::Refuse {
                skipped.push(SkippedLink {
                    path,
                    reason: SkipReason::NotFollowed,
                });
                continue;
            }
            if !is_link && !file_type.is_dir() && !file_type.is_file() {
                tracing::debug!(path = %escape_path(&path), "skipping special file");
                continue;
            }
            let name = entry
                .file_name()
                .into_string()
                .map_err(|_| CreateError::NonUtf8Name { path: path.clone() })?;
            validate_component(&name).map_err(|source| CreateError::UnsafeName {
                path: path.clone(),
                source,
            })?;
            let mut child = rel.clone();
            child.push(name);
            let mut length = None;
            if is_link {
                let disk: PathBuf = child.iter().collect();
                let reason = match root.stat_beneath(&disk) {
                    Ok((rustix::fs::FileType::RegularFile, len)) => {
                        length = Some(len);
                        file_type = fs::metadata(&path)
                            .map_err(|source| io_error(&path, source))?
                            .file_type();
                        None
                    }
                    Ok((rustix::fs::FileType::Directory, _)) => {
                        if ancestors.contains(&dir_id(&path)?) {
                            Some(SkipReason::Loop)
                        } else {
                            file_type = fs::metadata(&path)
                                .map_err(|source| io_error(&path, source))?
                                .file_type();
                            None
                        }
                    }
                    // Still a link: the kernel cannot follow links safely (no openat2).
                    Ok((rustix::fs::FileType::Symlink, _)) => Some(SkipReason::NotFollowed),
                    Ok(_) => Some(SkipReason::Special),
                    Err(rustix::io::Errno::XDEV) => Some(SkipReason::LeavesRoot),
                    Err(rustix::io::Errno::NOENT) => Some(SkipReason::Broken),
                    Err(rustix::io::Errno::LOOP) => Some(SkipReason::Loop),
                    Err(errno) => return Err(io_error(&path, io::Error::from(errno))),
                };
                if let Some(reason) = reason {
                    skipped.push(SkippedLink { path, reason });
                    continue;
                }
            }
            if file_type.is_dir() {
                // Its files will have at least one more component.
                if child.len() >= MAX_PATH_COMPONENTS {
                    return Err(CreateError::TooDeep {
                        path,
                        limit: MAX_PATH_COMPONENTS,
                    });
                }
                dirs += 1;
                if dirs > MAX_DIRS {
                    return Err(CreateError::TooManyDirectories { limit: MAX_DIRS });
                }
                let mut below = ancestors.clone();
                below.push(dir_id(&path)?);
                pending.push((path, child, below));
            } else {
                if found.len() >= MAX_FILES {
                    return Err(CreateError::TooManyFiles { limit: MAX_FILES });
                }
                let length = match length {
                    Some(length) => length,
                    None => entry
                        .metadata()
                        .map_err(|source| io_error(&path, source))?
                        .len(),
                };
                found.push(Found {
                    disk: child.iter().collect(),
                    rel: child,
                    abs: path,
                    length,
                });
            }
        }
    }
    found.sort_unstable_by(|a, b| mktorrent_order(&a.rel, &b.rel));
    Ok((found, skipped))
}

/// mktorrent 1.1's file order: `strcmp` of the `/`-joined relative paths, so `a.txt` comes
/// before `a/b` ('.' < '/') and `.hid/f` before `.hidden`. Not a per-component order.
fn mktorrent_order(a: &[String], b: &[String]) -> Ordering {
    fn joined(path: &[String]) -> impl Iterator<Item = u8> + '_ {
        path.iter()
            .enumerate()
            .flat_map(|(i, component)| (i > 0).then_some(b'/').into_iter().chain(component.bytes()))
    }
    joined(a).cmp(joined(b))
}

/// Upper estimate of the bencoded `.torrent` size in bytes (saturating).
pub(crate) fn estimate_torrent_len(
    name: &str,
    files: &[FileEntry],
    piece_count: u64,
    opts: &CreateOptions,
) -> u64 {
    // Per file: `d6:lengthi…e4:pathl…ee`.
    let file_cost = |f: &FileEntry| {
        f.path
            .iter()
            .map(|c| estimate_string_len(c))
            .fold(40u64, u64::saturating_add)
    };
    [
        estimate_string_len(name),
        piece_count.saturating_mul(20),
        256,
        estimate_options_len(opts),
    ]
    .into_iter()
    .chain(files.iter().map(file_cost))
    .fold(0u64, u64::saturating_add)
}

/// Upper estimate of a bencoded string in bytes: its bytes plus up to 21 bytes of length prefix.
pub(crate) fn estimate_string_len(s: &str) -> u64 {
    u64::try_from(s.len())
        .unwrap_or(u64::MAX)
        .saturating_add(21)
}

/// Upper estimate in bytes (saturating) of what `opts` adds outside `info`, any version: tracker
/// and web seed URLs, and the comment.
pub(crate) fn estimate_options_len(opts: &CreateOptions) -> u64 {
    let comment = opts.comment.as_deref().map_or(0, estimate_string_len);
    opts.trackers
        .iter()
        .flatten()
        .chain(&opts.url_list)
        .map(|u| estimate_string_len(u))
        .fold(comment, u64::saturating_add)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_piece_length_aims_at_at_most_2000_pieces() {
        assert_eq!(auto_piece_length(1), MIN_PIECE_LEN);
        assert_eq!(auto_piece_length(2000 * 16 * 1024), MIN_PIECE_LEN);
        assert_eq!(auto_piece_length(2000 * 16 * 1024 + 1), 32 * 1024);
        assert_eq!(auto_piece_length(1 << 30), 1 << 20); // 1 GiB: 1 024 pieces of 1 MiB
        assert_eq!(auto_piece_length(1 << 40), MAX_PIECE_LEN);
        assert_eq!(auto_piece_length(u64::MAX), MAX_PIECE_LEN);
        for shift in 24..=33 {
            let total = 3u64 << shift;
            let pieces = total.div_ceil(u64::from(auto_piece_length(total)));
            assert!(
                (1001..=2000).contains(&pieces),
                "{total} bytes -> {pieces} pieces"
            );
        }
    }

    #[test]
    fn orders_paths_like_mktorrent() {
        // Observed with mktorrent 1.1 on this machine (see tests/mktorrent.rs).
        let mut paths: Vec<Vec<String>> = [
            &["ü"][..],
            &["sub", "link"],
            &["a", "b"],
            &["a.txt"],
            &["a-b"],
            &["Zed"],
            &[".hidden"],
            &[".hid", "f"],
            &["sub", "deeper", "n"],
            &["empty"],
        ]
        .iter()
        .map(|p| p.iter().map(|c| (*c).to_owned()).collect())
        .collect();
        paths.sort_by(|a, b| mktorrent_order(a, b));
        let joined: Vec<String> = paths.iter().map(|p| p.join("/")).collect();
        assert_eq!(
            joined,
            [
                ".hid/f",
                ".hidden",
                "Zed",
                "a-b",
                "a.txt",
                "a/b",
                "empty",
                "sub/deeper/n",
                "sub/link",
                "ü"
            ]
        );
    }
}
