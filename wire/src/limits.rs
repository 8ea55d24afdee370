//! Every bound on untrusted input this crate enforces, with its reason.
//!
//! Each constant gives its unit, why this value (the BEP section or the client it matches), and
//! what happens at the limit. Composite limits are derived from their parts.

// ---------------------------------------------------------------------------------------------
// Peer wire (BEP 3)
// ---------------------------------------------------------------------------------------------

/// Largest block a peer may request or send, in bytes: 16 KiB, the size every client uses
/// (BEP 3; libtorrent rejects larger requests). Over it: the request is rejected.
pub const MAX_BLOCK_LEN: u32 = 16 * 1024;

/// Hard ceiling on any peer wire frame body, in bytes (libtorrent's 1 MiB). Over it: close.
pub const MAX_FRAME_LEN: u32 = 1024 * 1024;

/// Largest BEP 10 extended message body accepted by the frame decoder, in bytes: 64 KiB, enough
/// for a `ut_metadata` piece (16 KiB + dict), PEX and an extension handshake, and well under
/// [`MAX_FRAME_LEN`]. Over it: [`crate::peer::max_frame_len`] does not grow for it, so a larger
/// frame is refused at its length prefix and the connection is closed. (The extension handshake
/// gets its own tighter 16 KiB limit where it is parsed.)
pub const MAX_EXTENDED_LEN: u32 = 64 * 1024;

// ---------------------------------------------------------------------------------------------
// Bencode (BEP 3)
// ---------------------------------------------------------------------------------------------

/// Deepest nesting of lists and dictionaries, in levels (libtorrent's `max_decode_depth`, 100; a
/// real .torrent needs 4 plus its directory depth, which [`MAX_PATH_DEPTH`] also caps at 100 inside
/// a flat list). At the limit: [`crate::bencode::DecodeError::DepthExceeded`].
pub const MAX_BENCODE_DEPTH: usize = 100;

/// Most tokens (integers, strings, list/dict starts and ends) in one bencoded value: 3 000 000,
/// libtorrent's `max_decode_tokens` for .torrent files, so every torrent libtorrent loads decodes
/// here. Memory: the decoded tree costs about 32 bytes per token plus one allocation per
/// container; measured peak RSS at this limit is about 100 MB for the worst hostile shapes (a
/// real 9 MB torrent of 100 000 files: about 80 MB), so callers that decode untrusted files
/// concurrently bound their concurrency. Over it: [`crate::bencode::DecodeError::TooManyTokens`].
pub const MAX_BENCODE_TOKENS: usize = 3_000_000;

/// Most digits in a bencoded integer: 19, the digits of `i64::MAX` (leading zeros are refused, so
/// any longer integer overflows `i64`). Over it: [`crate::bencode::DecodeError::IntegerOverflow`]
/// at the 20th digit, so `i` followed by 10 000 digits is refused without reading them all.
pub const MAX_INTEGER_DIGITS: usize = 19;

// ---------------------------------------------------------------------------------------------
// Metainfo (BEP 3, 12, 19, 27)
// ---------------------------------------------------------------------------------------------

/// Largest .torrent file accepted, in bytes: 10 MiB, the upload body limit (libtorrent's
/// `max_buffer_size` is 10 MB; rqbit's 10 MiB). Over it:
/// [`crate::metainfo::MetainfoError::TooLarge`] before any decoding.
pub const MAX_TORRENT_LEN: usize = 10 * 1024 * 1024;

/// Most pieces in one torrent: 2^21 (libtorrent's `max_pieces`), i.e. a 40 MiB `pieces` string,
/// which [`MAX_TORRENT_LEN`] already rules out; the constant also sizes the largest bitfield
/// (256 KiB). Over it: [`crate::metainfo::MetainfoError::OutOfRange`] for `info.pieces`.
pub const MAX_PIECES: u32 = 1 << 21;

/// Largest `piece length` accepted when reading a torrent, in bytes: 512 MiB (the largest any
/// client creates; libtorrent creates up to 128 MiB). It must also be above zero; a power of two is
/// not required on read. Over it: [`crate::metainfo::MetainfoError::OutOfRange`].
pub const MAX_PIECE_LENGTH: u32 = 512 * 1024 * 1024;

/// Largest total torrent size, in bytes: 2^48 (256 TiB), far above any real torrent, and small
/// enough that `piece * piece_length + offset` never overflows `u64`. Over it:
/// [`crate::metainfo::MetainfoError::OutOfRange`] for `info total length`.
pub const MAX_TOTAL_LENGTH: u64 = 1 << 48;

/// Most files in one torrent: 100 000 (real multi-file torrents stay in the low thousands;
/// Transmission and libtorrent do not cap, but every file costs an open handle and a catalog row
/// here). Over it: [`crate::metainfo::MetainfoError::OutOfRange`] for `info.files`, checked
/// before the list is walked.
pub const MAX_FILES: usize = 100_000;

/// Most path components below the torrent's `name`, in components: 100 (security rule M5).
/// Over it: [`crate::metainfo::MetainfoError::BadPath`].
pub const MAX_PATH_DEPTH: usize = 100;

/// Longest path component (and `name`), in bytes of UTF-8: 255, the `NAME_MAX` of every common
/// file system (ext4, XFS, APFS, NTFS). Over it: [`crate::metainfo::MetainfoError::BadPath`].
pub const MAX_PATH_COMPONENT_LEN: usize = 255;

// ---------------------------------------------------------------------------------------------
// Magnet URIs (BEP 9)
// ---------------------------------------------------------------------------------------------

/// Longest magnet URI accepted, in bytes: 64 KiB, room for [`MAX_MAGNET_TRACKERS`] long tracker
/// URLs (real magnets are under 4 KiB). Over it: [`crate::magnet::MagnetError::TooLong`].
pub const MAX_MAGNET_URI_LEN: usize = 64 * 1024;

/// Most `tr` (tracker) parameters kept from one magnet URI: 100 (security row M11). Beyond it:
/// the rest are ignored (truncate).
pub const MAX_MAGNET_TRACKERS: usize = 100;

/// Most `x.pe` (peer address) parameters kept from one magnet URI: 100 (security row M11).
/// Beyond it: the rest are ignored (truncate).
pub const MAX_MAGNET_PEERS: usize = 100;

// ---------------------------------------------------------------------------------------------
// v2 metainfo and merkle trees (BEP 52)
// ---------------------------------------------------------------------------------------------

/// Smallest `piece length` of a v2 or hybrid torrent, in bytes: 16 KiB, one merkle leaf block
/// (BEP 52 §info dictionary: "It must be a power of two and at least 16KiB"; libtorrent refuses
/// smaller ones). Below it, or not a power of two:
/// [`crate::metainfo::MetainfoError::OutOfRange`] for `info.piece length`.
pub const MIN_PIECE_LENGTH_V2: u32 = 16 * 1024;

/// Deepest v2 `file tree`, in path components of one file: [`MAX_PATH_DEPTH`] (100, security rule
/// M5; libtorrent's `max_directory_depth` is 100 too). The tree is walked with an explicit stack,
/// never by recursion. Over it: [`crate::metainfo::MetainfoError::BadPath`].
pub const MAX_FILE_TREE_DEPTH: usize = MAX_PATH_DEPTH;

/// Tallest merkle tree of one file, in layers above the 16 KiB leaves: 34, the height for a file of
/// [`MAX_TOTAL_LENGTH`] bytes (2^48 / 2^14 = 2^34 leaves). Every tree this crate builds is at most
/// this tall, which bounds the proof hashes of one `hashes` message.
pub const MAX_MERKLE_HEIGHT: u32 = MAX_TOTAL_LENGTH.ilog2() - crate::merkle::BLOCK_LEN.ilog2();

/// Most hashes one BEP 52 `hash request` may ask for (its `length`): 8 192, libtorrent's limit
/// (`validate_hash_request`: "a limit of 8192 corresponds to a piece size of 128MB", since a
/// client asks for the leaf hashes of a whole piece at a time). BEP 52 says `length` SHOULD NOT
/// exceed 512, which is what libtorrent asks for in the piece layer. Over it: the request is
/// answered with a `hash reject`, and a `hashes` message claiming more is refused by
/// [`crate::peer::hashes::HashMessage::parse`].
pub const MAX_HASH_REQUEST_LENGTH: u32 = 8192;

/// Pieces of file data read from disk to answer one `hash request` whose base layer lies below
/// the layer a seed keeps in memory (the piece layer): 1. libtorrent asks for leaf hashes one whole
/// piece at a time, so one piece is all a real client needs; a request spanning more is answered
/// with a `hash reject`, which bounds the disk reads and hashing a peer can make a seed do per
/// 49-byte request to one piece.
pub const MAX_HASH_REQUEST_PIECES: u64 = 1;

/// Largest body (id byte and payload) of a BEP 52 `hashes` message, in bytes: the 49-byte header
/// plus [`MAX_HASH_REQUEST_LENGTH`] base hashes and one proof hash per layer of the tallest tree,
/// 32 bytes each (about 264 KiB, under [`MAX_FRAME_LEN`]). A seed never asks for hashes, so it
/// never needs to accept one this large; the constant sizes the answers it sends.
pub const MAX_HASHES_MESSAGE_LEN: usize =
    1 + 48 + 32 * (MAX_HASH_REQUEST_LENGTH as usize + MAX_MERKLE_HEIGHT as usize + 1);

// ---------------------------------------------------------------------------------------------
// Upload framing (`upload`, this project's own protocol: docs/upload.md)
// ---------------------------------------------------------------------------------------------

/// Longest bearer token on the upload port, in bytes: 4 KiB, room for an OAuth2 access token
/// from an external server (JWTs run to 1–2 KiB) and far above this node's own 80-byte `sn_`
/// tokens. Over it: [`crate::upload::UploadError::TokenTooLong`] once that many bytes arrived
/// without the token's end, before any more is buffered.
pub const MAX_UPLOAD_TOKEN_LEN: usize = 4 * 1024;

/// Longest `UPLOAD_FILE` / `UPLOAD_RESUME` header line, in bytes, `\n` included: the keyword, a
/// token of [`MAX_UPLOAD_TOKEN_LEN`], a length of 20 digits, a name of
/// [`MAX_PATH_COMPONENT_LEN`] and ` sha256=` with 64 hex digits, with room to spare. Over it
/// without a `\n`: [`crate::upload::UploadError::HeaderTooLong`].
pub const MAX_UPLOAD_HEADER_LEN: usize = MAX_UPLOAD_TOKEN_LEN + MAX_PATH_COMPONENT_LEN + 128;

/// Largest bencoded torrent after `UPLOAD_TORRENT:<token>:`, in bytes: [`MAX_TORRENT_LEN`], the
/// same bound as every other way a torrent enters the node. Over it before the dictionary
/// closes: [`crate::upload::UploadError::TorrentTooLarge`] (a torrent that never ends is cut
/// here, or by the engine's idle deadline before).
pub const MAX_UPLOAD_TORRENT_LEN: usize = MAX_TORRENT_LEN;

/// Largest `<length>` of an `UPLOAD_FILE`, in bytes: [`MAX_TOTAL_LENGTH`] (2^48), the largest
/// torrent this node creates. The protocol's hard ceiling: quotas per token are the engine's
/// and are tighter. Over it: [`crate::upload::UploadError::FileTooLarge`].
pub const MAX_UPLOAD_FILE_LEN: u64 = MAX_TOTAL_LENGTH;

/// Longest reply line the node sends on the upload port, in bytes, `\n` included: 1 024, what
/// existing clients read (issue 12: "up to 1,024 bytes"). An `ERR` reason is truncated to fit;
/// an `OK` magnet loses its trailing parameters (from an `&`) to fit.
pub const MAX_UPLOAD_REPLY_LEN: usize = 1024;
