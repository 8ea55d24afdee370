//! Every bound this crate enforces, with its unit, its reason and what happens at the limit.

/// Open file handles cached per [`Storage`](crate::Storage), in files.
///
/// libtorrent's `file_pool_size` defaults to 40; SECURITY §2.7 asks for 40–256 handles. Handles
/// are opened lazily on first read; when the cache is full, the least recently used handle is
/// dropped from the cache before a new one is cached (a read still using it keeps it open until it
/// finishes, so the bound is this plus one per in-flight read). The engine's descriptor budget is
/// therefore about this value times the number of open torrents.
pub const MAX_OPEN_FILES_PER_TORRENT: usize = 64;

/// Attempts at one `openat2`/`openat` of a torrent file, in calls. The kernel asks for a retry
/// (`EAGAIN`) when a concurrent rename made it unsure that `RESOLVE_BENEATH` holds, and an open
/// can be interrupted (`EINTR`); after this many the error is returned (the read fails, nothing
/// is served), so a directory renamed in a loop cannot hold a disk thread.
pub const MAX_OPEN_ATTEMPTS: usize = 4;

/// Bytes each hashing thread reads from disk per `pread` round, in bytes: 64 KiB.
///
/// Small enough to stay in the L1/L2 caches of any core (a Raspberry Pi Zero 2 shares 512 KiB of
/// L2 between four cores), so SHA-1 reads what `pread` just wrote without going back to memory,
/// and below glibc's initial `mmap` threshold (128 KiB), so the buffer is recycled from the heap
/// instead of raising the threshold and leaving megabytes of free heap resident after seeding
/// starts (1,000 small torrents: 0.5 MiB less RSS than with 1 MiB buffers). Syscall overhead
/// stays negligible: 1 GiB hashed in 0.68 s on one core with 64 KiB reads, 0.70-0.72 s with
/// 256 KiB and 1 MiB (`seednode create --threads 1`, page-cached). It is also the memory each
/// hashing thread holds, whatever the piece length: longer pieces are hashed incrementally.
/// Progress is reported once per round per thread.
pub const READ_BUF_LEN: usize = 64 * 1024;

/// Bytes of contiguous pieces a hashing thread takes from the shared queue at a time, in bytes:
/// 8 MiB (about 6 ms of SHA-1 at 1.4 GB/s), rounded down to whole pieces, at least one piece.
///
/// Small enough that threads finish within a few milliseconds of each other even when one core
/// is busy with other work; large enough that each chunk is a long sequential read and the queue's
/// lock is taken about 170 times per GB.
pub const HASH_CHUNK_LEN: u64 = 8 * 1024 * 1024;

/// Largest number of hashing threads, in threads. A larger request is clamped to this.
///
/// Memory for hashing is this times [`READ_BUF_LEN`] at most (4 MiB).
pub const MAX_HASH_THREADS: usize = 64;

/// Fewest bytes worth a hashing thread of their own, in bytes: 16 MiB.
///
/// Below this, starting a thread costs more than it saves; an input of `n` bytes uses at most
/// `n / MIN_BYTES_PER_HASH_THREAD` threads (and at least one).
pub const MIN_BYTES_PER_HASH_THREAD: u64 = 16 * 1024 * 1024;

/// Smallest piece length for a new torrent, in bytes: 16 KiB, one block (BEP 3; libtorrent's
/// minimum). A smaller explicit piece length is rejected.
pub const MIN_PIECE_LEN: u32 = 16 * 1024;

/// Largest piece length for a new torrent, in bytes: 16 MiB. Larger pieces cost more to
/// re-download after one bad block and delay the first complete piece a leecher can share;
/// SECURITY §2.7 accepts up to 64 MiB in uploads, so every torrent created here can be uploaded.
/// (mktorrent 1.1 accepts 32 KiB–256 MiB.) A larger explicit piece length is rejected; the
/// automatic choice stops here, so inputs over 31.25 GiB get more than [`AUTO_MAX_PIECES`]
/// pieces.
pub const MAX_PIECE_LEN: u32 = 16 * 1024 * 1024;

/// Most pieces the automatic piece length aims for, in pieces.
///
/// The automatic piece length is the smallest power of two in
/// [`MIN_PIECE_LEN`]`..=`[`MAX_PIECE_LEN`] that cuts the input into at most this many pieces, so
/// an input between 31.25 MiB and 31.25 GiB gets 1 001–2 000 pieces (libtorrent and mktorrent users
/// aim at 1 000–2 000: a `.torrent` of about 40 KiB with pieces short enough to share early).
pub const AUTO_MAX_PIECES: u64 = 2000;

/// Most files in a torrent this crate creates, in files: `wire`'s
/// [`MAX_FILES`](seednode_wire::limits::MAX_FILES) (100 000), so every torrent created here
/// loads. A directory with more regular files is rejected before anything is hashed.
pub const MAX_FILES: usize = seednode_wire::limits::MAX_FILES;

/// Most components in a file's path below the torrent's root (directories plus the file name), in
/// components: `wire`'s [`MAX_PATH_DEPTH`](seednode_wire::limits::MAX_PATH_DEPTH) (100, SECURITY
/// §2.7 "dir depth ≤ 100", row M5). [`SafeRelPath`](crate::SafeRelPath) refuses longer paths;
/// creation refuses a directory whose files would have longer paths (never skips it silently).
pub const MAX_PATH_COMPONENTS: usize = seednode_wire::limits::MAX_PATH_DEPTH;

/// Longest path component, in bytes: `wire`'s
/// [`MAX_PATH_COMPONENT_LEN`](seednode_wire::limits::MAX_PATH_COMPONENT_LEN) (255, SECURITY §2.7;
/// Linux's `NAME_MAX`). A longer component is rejected.
pub const MAX_COMPONENT_LEN: usize = seednode_wire::limits::MAX_PATH_COMPONENT_LEN;

/// Largest `.torrent` this crate creates, in bytes (estimated before hashing): `wire`'s
/// [`MAX_TORRENT_LEN`](seednode_wire::limits::MAX_TORRENT_LEN) (10 MiB, the upload limit), so
/// every torrent seednode creates can be uploaded back to a seednode. Over it: creation is
/// rejected; a larger piece length helps. It also keeps the piece count far below `wire`'s
/// [`MAX_PIECES`](seednode_wire::limits::MAX_PIECES).
pub const MAX_TORRENT_LEN: u64 = seednode_wire::limits::MAX_TORRENT_LEN as u64;

/// Largest input creation accepts, in bytes: `wire`'s
/// [`MAX_TOTAL_LENGTH`](seednode_wire::limits::MAX_TOTAL_LENGTH) (2^48, 256 TiB), the largest
/// torrent seednode loads. Over it: rejected before hashing.
pub const MAX_TOTAL_LENGTH: u64 = seednode_wire::limits::MAX_TOTAL_LENGTH;

/// Most directories creation descends into below the input, in directories. Each pending
/// directory costs its path in memory; over the limit, creation is rejected.
pub const MAX_DIRS: usize = 100_000;

/// Most 16 KiB leaf hashes one hashing thread keeps for a piece of a v2 or hybrid torrent, in
/// hashes: `wire`'s [`MAX_PIECE_LENGTH`](seednode_wire::limits::MAX_PIECE_LENGTH) (512 MiB, the
/// largest piece any torrent may have) divided by the 16 KiB block, so 32 768 hashes, 1 MiB per
/// thread. A piece's leaves are reduced to its root as soon as it is read; pieces are never longer,
/// so the limit is never hit.
pub const MAX_LEAVES_PER_PIECE: usize =
    (seednode_wire::limits::MAX_PIECE_LENGTH / seednode_wire::merkle::BLOCK_LEN) as usize;

/// Most 16 KiB blocks [`block_hashes_v2`](crate::block_hashes_v2) reads and hashes for one call:
/// one piece's worth, `wire`'s
/// [`MAX_HASH_REQUEST_PIECES`](seednode_wire::limits::MAX_HASH_REQUEST_PIECES) (a `hash request`
/// below the piece layer is answered from at most one piece of data); the exact bound is the
/// torrent's blocks per piece, at most [`MAX_LEAVES_PER_PIECE`]. A larger span is refused with
/// `StorageError::RangeOutOfBounds`.
pub const MAX_BLOCK_HASHES_PER_CALL: usize =
    MAX_LEAVES_PER_PIECE * seednode_wire::limits::MAX_HASH_REQUEST_PIECES as usize;

// The catalog (`crate::catalog`): bounds on what is stored per row, and SQLite's settings.

/// How long a catalog statement waits for another connection's write lock before failing with
/// `SQLITE_BUSY`, in milliseconds: 5 s (SECURITY §2.7, SQLite row). The engine has one writer;
/// this covers a `token` command run against the data directory of a node that is running.
pub const CATALOG_BUSY_TIMEOUT_MS: u32 = 5_000;

/// Size the write-ahead log is truncated back to after a checkpoint, in bytes: 64 MiB
/// (`PRAGMA journal_size_limit`; SECURITY §2.7 and S8: the WAL stays bounded). A checkpoint
/// itself runs automatically every 1 000 pages (SQLite's default, about 4 MiB).
pub const CATALOG_JOURNAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

/// Longest torrent name stored, in bytes: a path component ([`MAX_COMPONENT_LEN`], 255). A
/// longer name is rejected (`wire` already refuses such a torrent).
pub const MAX_CATALOG_NAME_LEN: usize = MAX_COMPONENT_LEN;

/// Longest data path stored, in bytes: Linux's `PATH_MAX` (4 096). A longer path is rejected.
pub const MAX_CATALOG_DATA_PATH_LEN: usize = 4096;

/// Longest file path stored for a file of a torrent (components joined by `/`), in bytes:
/// [`MAX_PATH_COMPONENTS`] components of [`MAX_COMPONENT_LEN`] bytes and their separators. A
/// longer path is rejected (`wire` already refuses such a torrent).
pub const MAX_CATALOG_FILE_PATH_LEN: usize = MAX_PATH_COMPONENTS * (MAX_COMPONENT_LEN + 1);

/// Largest metainfo (`.torrent`) stored, in bytes: [`MAX_TORRENT_LEN`] (10 MiB, the upload
/// limit). A larger one is rejected.
pub const MAX_CATALOG_METAINFO_LEN: usize = seednode_wire::limits::MAX_TORRENT_LEN;

/// Longest reason stored with a torrent's `missing data` or `error` state, in bytes: 1 KiB.
/// Reasons are error messages; a longer one is truncated at a character boundary, never
/// rejected (the state change matters more than its words).
pub const MAX_STATE_REASON_LEN: usize = 1024;

/// Longest setting key, in bytes: 128. A longer key is rejected.
pub const MAX_SETTING_KEY_LEN: usize = 128;

/// Longest setting value, in bytes: 64 KiB. A longer value is rejected.
pub const MAX_SETTING_VALUE_LEN: usize = 64 * 1024;

/// Longest label of an API token, in bytes: 256. A longer label is rejected.
pub const MAX_TOKEN_LABEL_LEN: usize = 256;

/// Most API tokens in the catalog, revoked ones included, in tokens: 1 000. Creating one more is
/// refused until some are deleted; a node needs a handful, the bound keeps `token list` short.
pub const MAX_TOKENS: usize = 1000;

/// Most torrents added in one catalog transaction, in torrents: 256. A longer batch
/// (`Catalog::add_torrents`) is committed in several transactions of this many, so one commit
/// (one `fsync` of the WAL) holds at most 256 × 10 MiB of metainfo in the worst case and a burst
/// of small adds shares its `fsync`.
pub const MAX_ADDS_PER_TRANSACTION: usize = 256;

/// Largest slice of the info dictionary read in one call of `Catalog::info_dict_slice`, in bytes:
/// 16 KiB, one BEP 9 metadata piece. A longer request is refused.
pub const MAX_INFO_SLICE_LEN: usize = 16 * 1024;
