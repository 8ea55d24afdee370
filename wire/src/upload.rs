//! The upload framing: how a client pushes a torrent or a file to the node over a plain TCP
//! connection (this project's own protocol, documented in `docs/upload.md`).
//!
//! Three requests, told apart from the peer wire and HTTP by their first bytes ([`sniff`],
//! [`PREFIXES`]):
//!
//! - `UPLOAD_TORRENT:<token>:<bencoded torrent>`: the token ends at the second `:`; the torrent
//!   is one bencoded dictionary, self-delimiting, found by a bounded incremental scanner, so the
//!   node knows where it ends without the client closing its side. Nothing may follow it.
//! - `UPLOAD_FILE <token> <length> <name>[ sha256=<hex>]\n`, then exactly `<length>` bytes.
//! - `UPLOAD_RESUME <token> <upload-id> <offset>\n`, then the rest of the file.
//!
//! Replies are single lines of at most [`MAX_UPLOAD_REPLY_LEN`] bytes: [`Reply::Upload`]
//! (`UPLOAD <upload-id> <offset>\n`, the first line for a file or a resume, before any payload
//! byte is read), then [`Reply::Ok`] (`OK <info-hash hex> <magnet>\n`) or [`Reply::Err`]
//! (`ERR <code> <reason>\n`, [`ErrorCode`]).
//!
//! # Call order
//! [`sniff`] on the first bytes; then a [`Decoder`] per connection: call
//! [`Decoder::decode`] with the receive buffer after every read until it returns a
//! [`Request`] or an error. A [`Request::File`] or [`Request::Resume`] leaves the bytes after
//! the header line in the buffer: they are payload, the caller's to stream. After a
//! [`Request::Torrent`], keep calling [`Decoder::decode`] on any byte that still arrives: it
//! refuses it ([`UploadError::TrailingBytes`]).
//!
//! Like the rest of this crate, nothing here reads a clock, opens a socket or draws randomness:
//! the upload id is the caller's ([`UploadId::from_bytes`] with bytes from its RNG).

use std::fmt;

use bytes::{Buf as _, Bytes, BytesMut};

use crate::InfoHash;
use crate::bencode;
use crate::limits::{
    MAX_BENCODE_DEPTH, MAX_BENCODE_TOKENS, MAX_PATH_COMPONENT_LEN, MAX_UPLOAD_FILE_LEN,
    MAX_UPLOAD_HEADER_LEN, MAX_UPLOAD_REPLY_LEN, MAX_UPLOAD_TOKEN_LEN, MAX_UPLOAD_TORRENT_LEN,
};

/// The first bytes of an `UPLOAD_TORRENT` request.
pub const TORRENT_PREFIX: &[u8] = b"UPLOAD_TORRENT:";
/// The first bytes of an `UPLOAD_FILE` request.
pub const FILE_PREFIX: &[u8] = b"UPLOAD_FILE ";
/// The first bytes of an `UPLOAD_RESUME` request.
pub const RESUME_PREFIX: &[u8] = b"UPLOAD_RESUME ";
/// Every opening of an upload request, for a sniffer's signature table.
pub const PREFIXES: [&[u8]; 3] = [TORRENT_PREFIX, FILE_PREFIX, RESUME_PREFIX];

/// Length of an upload id in bytes (its text is twice as many lowercase hex digits).
pub const UPLOAD_ID_LEN: usize = 16;

/// Length of a SHA-256 digest in bytes.
pub const SHA256_LEN: usize = 32;

/// Which request the first bytes of a connection open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `UPLOAD_TORRENT:`.
    Torrent,
    /// `UPLOAD_FILE `.
    File,
    /// `UPLOAD_RESUME `.
    Resume,
}

/// What the first bytes of a connection say about the upload protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniff {
    /// A prefix of at least one opening: read more.
    NeedMore,
    /// This request.
    Is(Kind),
    /// Not an upload request.
    No,
}

/// Classifies the first bytes of a connection (any number, from 0).
#[must_use]
pub fn sniff(buf: &[u8]) -> Sniff {
    let mut need_more = false;
    for (prefix, kind) in [
        (TORRENT_PREFIX, Kind::Torrent),
        (FILE_PREFIX, Kind::File),
        (RESUME_PREFIX, Kind::Resume),
    ] {
        let n = buf.len().min(prefix.len());
        if buf[..n] == prefix[..n] {
            if buf.len() >= prefix.len() {
                return Sniff::Is(kind);
            }
            need_more = true;
        }
    }
    if need_more {
        Sniff::NeedMore
    } else {
        Sniff::No
    }
}

// ---------------------------------------------------------------------------------------------
// Validated values
// ---------------------------------------------------------------------------------------------

/// A bearer token as sent: 1 to [`MAX_UPLOAD_TOKEN_LEN`] bytes of the RFC 6750 §2.1 `b64token`
/// alphabet (`A-Z a-z 0-9 - . _ ~ + /`, then trailing `=`), which holds this node's `sn_` tokens
/// and OAuth2 access tokens, and excludes `:`, spaces and controls. Not checked against
/// anything: that is the catalog's job. `Debug` never shows it (SECURITY A7).
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// Validates `s` as a token.
    ///
    /// # Errors
    /// [`UploadError::TokenTooLong`], [`UploadError::EmptyToken`], [`UploadError::BadToken`].
    pub fn new(s: &[u8]) -> Result<Self, UploadError> {
        if s.len() > MAX_UPLOAD_TOKEN_LEN {
            return Err(UploadError::TokenTooLong {
                limit: MAX_UPLOAD_TOKEN_LEN,
            });
        }
        if s.is_empty() {
            return Err(UploadError::EmptyToken);
        }
        let body_end = s.iter().rposition(|&b| b != b'=').map_or(0, |i| i + 1);
        if body_end == 0 || !s[..body_end].iter().all(|&b| is_token_byte(b)) {
            return Err(UploadError::BadToken);
        }
        // Only ASCII passed the check.
        String::from_utf8(s.to_vec())
            .map(Self)
            .map_err(|_| UploadError::BadToken)
    }

    /// The token's text (a secret: never log it).
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token(<{} bytes>)", self.0.len())
    }
}

/// Whether `b` may appear in a token before its trailing `=` (RFC 6750 §2.1 `b64token`).
const fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
}

/// A file name from `UPLOAD_FILE`: one safe path component of 1 to
/// [`MAX_PATH_COMPONENT_LEN`] bytes of UTF-8, by the rules every torrent path obeys
/// ([`crate::metainfo::validate_component`]: no `/` or `\`, not `.` or `..`, no NUL, control,
/// bidi or zero-width character, no drive prefix). Spaces are allowed; a leading or trailing
/// space is not (it would not survive the header line's field splitting unchanged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileName(String);

impl FileName {
    /// Validates `s` as an upload's file name.
    ///
    /// # Errors
    /// [`UploadError::BadName`] with the rule it breaks.
    pub fn new(s: &[u8]) -> Result<Self, UploadError> {
        let s = std::str::from_utf8(s).map_err(|_| UploadError::BadName {
            reason: "not UTF-8",
        })?;
        if s.len() > MAX_PATH_COMPONENT_LEN {
            return Err(UploadError::BadName {
                reason: "longer than 255 bytes",
            });
        }
        crate::metainfo::validate_component(s).map_err(|reason| UploadError::BadName { reason })?;
        if s.starts_with(' ') || s.ends_with(' ') {
            return Err(UploadError::BadName {
                reason: "leading or trailing space",
            });
        }
        Ok(Self(s.to_owned()))
    }

    /// The name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An upload's id: [`UPLOAD_ID_LEN`] random bytes chosen by the node, written as lowercase hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UploadId([u8; UPLOAD_ID_LEN]);

impl UploadId {
    /// The id made of `bytes` (the engine draws them from its RNG).
    #[must_use]
    pub const fn from_bytes(bytes: [u8; UPLOAD_ID_LEN]) -> Self {
        Self(bytes)
    }

    /// The raw bytes.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; UPLOAD_ID_LEN] {
        &self.0
    }

    /// Parses exactly 32 hex digits (either case).
    ///
    /// # Errors
    /// [`UploadError::BadUploadId`].
    pub fn parse(s: &[u8]) -> Result<Self, UploadError> {
        hex_array(s).map(Self).ok_or(UploadError::BadUploadId)
    }
}

impl fmt::Display for UploadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for UploadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UploadId({self})")
    }
}

/// `2 * N` hex digits as `N` bytes, or `None`.
fn hex_array<const N: usize>(s: &[u8]) -> Option<[u8; N]> {
    if s.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        let hi = char::from(pair[0]).to_digit(16)?;
        let lo = char::from(pair[1]).to_digit(16)?;
        // Two hex digits: at most 255.
        *byte = u8::try_from(hi * 16 + lo).ok()?;
    }
    Some(out)
}

/// Appends `bytes` as lowercase hex.
fn put_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)]);
        out.push(DIGITS[usize::from(b & 15)]);
    }
}

/// A decimal byte count of at most `limit`: ASCII digits, no sign, no leading zero (but `0`).
fn decimal(s: &[u8], field: &'static str, limit: u64) -> Result<u64, UploadError> {
    let bad = || UploadError::BadNumber { field };
    // 20 digits hold u64::MAX; more is refused before any arithmetic.
    if s.is_empty() || s.len() > 20 || (s.len() > 1 && s[0] == b'0') {
        return Err(bad());
    }
    let mut value: u64 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return Err(bad());
        }
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(b - b'0')))
            .ok_or(UploadError::FileTooLarge { limit })?;
    }
    if value > limit {
        return Err(UploadError::FileTooLarge { limit });
    }
    Ok(value)
}

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

/// The header of an `UPLOAD_FILE`: `<length>` payload bytes follow it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileHeader {
    /// The bearer token.
    pub token: Token,
    /// Bytes of payload that follow the header: 1 to [`MAX_UPLOAD_FILE_LEN`].
    pub length: u64,
    /// The file's name in the data directory.
    pub name: FileName,
    /// The SHA-256 the whole file must have, if the client gave one.
    pub sha256: Option<[u8; SHA256_LEN]>,
}

/// The header of an `UPLOAD_RESUME`: the rest of the file follows the node's
/// [`Reply::Upload`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumeHeader {
    /// The bearer token (the one the upload started with, or one of the same owner: the
    /// engine's rule).
    pub token: Token,
    /// The interrupted upload.
    pub upload_id: UploadId,
    /// The offset the client believes the node has, in bytes: at most [`MAX_UPLOAD_FILE_LEN`].
    /// The node answers with the offset it continues from, which may be lower.
    pub offset: u64,
}

/// One decoded upload request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `UPLOAD_TORRENT:<token>:<torrent>`.
    Torrent {
        /// The bearer token.
        token: Token,
        /// The bencoded torrent: one whole dictionary that [`bencode::decode`] accepts (not yet
        /// checked as metainfo), a slice of the receive buffer.
        torrent: Bytes,
    },
    /// `UPLOAD_FILE ...\n`.
    File(FileHeader),
    /// `UPLOAD_RESUME ...\n`.
    Resume(ResumeHeader),
}

impl Request {
    /// Appends the request's bytes as a client sends them (for a file or a resume, the header
    /// line only).
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Self::Torrent { token, torrent } => {
                out.extend_from_slice(TORRENT_PREFIX);
                out.extend_from_slice(token.0.as_bytes());
                out.push(b':');
                out.extend_from_slice(torrent);
            }
            Self::File(h) => {
                out.extend_from_slice(FILE_PREFIX);
                out.extend_from_slice(h.token.0.as_bytes());
                out.extend_from_slice(format!(" {} ", h.length).as_bytes());
                out.extend_from_slice(h.name.0.as_bytes());
                if let Some(digest) = &h.sha256 {
                    out.extend_from_slice(b" sha256=");
                    put_hex(out, digest);
                }
                out.push(b'\n');
            }
            Self::Resume(h) => {
                out.extend_from_slice(RESUME_PREFIX);
                out.extend_from_slice(h.token.0.as_bytes());
                out.extend_from_slice(format!(" {} {}\n", h.upload_id, h.offset).as_bytes());
            }
        }
    }
}

/// Why an upload request was refused: what the client sent wrong. Every variant maps to
/// `ERR malformed` or `ERR too_large` ([`UploadError::code`]); the connection is closed after
/// the reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UploadError {
    /// The connection does not open with an upload request.
    #[error("not an upload request")]
    NotUpload,
    /// The token has no byte.
    #[error("empty token")]
    EmptyToken,
    /// The token runs past its limit.
    #[error("token longer than {limit} bytes")]
    TokenTooLong {
        /// [`MAX_UPLOAD_TOKEN_LEN`].
        limit: usize,
    },
    /// The token has a byte outside its alphabet.
    #[error("token has a byte outside the b64token alphabet")]
    BadToken,
    /// The header line runs past its limit without a `\n`.
    #[error("header line longer than {limit} bytes")]
    HeaderTooLong {
        /// [`MAX_UPLOAD_HEADER_LEN`].
        limit: usize,
    },
    /// The header line has the wrong fields (count, separators, a non-UTF-8 or control byte).
    #[error("malformed header line: {reason}")]
    BadHeader {
        /// What is wrong.
        reason: &'static str,
    },
    /// A number field is not a plain decimal.
    #[error("`{field}` is not a decimal number")]
    BadNumber {
        /// The field.
        field: &'static str,
    },
    /// The declared length (or offset) is over the protocol's ceiling.
    #[error("length over {limit} bytes")]
    FileTooLarge {
        /// [`MAX_UPLOAD_FILE_LEN`].
        limit: u64,
    },
    /// `UPLOAD_FILE` with a length of 0: a torrent needs at least one byte.
    #[error("empty file")]
    EmptyFile,
    /// The file name breaks a rule.
    #[error("bad file name: {reason}")]
    BadName {
        /// The rule.
        reason: &'static str,
    },
    /// `sha256=` is not 64 hex digits.
    #[error("sha256 is not 64 hex digits")]
    BadSha256,
    /// The upload id is not 32 hex digits.
    #[error("upload id is not 32 hex digits")]
    BadUploadId,
    /// The torrent does not start with a dictionary.
    #[error("torrent is not a bencoded dictionary")]
    TorrentNotDictionary,
    /// The torrent runs past its limit before its dictionary closes.
    #[error("torrent longer than {limit} bytes")]
    TorrentTooLarge {
        /// [`MAX_UPLOAD_TORRENT_LEN`].
        limit: usize,
    },
    /// The torrent is not valid bencode.
    #[error("torrent is not valid bencode: {0}")]
    BadBencode(bencode::DecodeError),
    /// Bytes after the torrent's dictionary.
    #[error("bytes after the torrent")]
    TrailingBytes,
}

impl UploadError {
    /// The reply code for this error.
    #[must_use]
    pub const fn code(&self) -> ErrorCode {
        match self {
            Self::TokenTooLong { .. }
            | Self::FileTooLarge { .. }
            | Self::TorrentTooLarge { .. } => ErrorCode::TooLarge,
            _ => ErrorCode::Malformed,
        }
    }
}

/// Where a [`Decoder`] is.
#[derive(Debug, Clone)]
enum State {
    /// Waiting for a whole opening.
    Start,
    /// After `UPLOAD_TORRENT:`, reading the token; `scanned` bytes of it were checked.
    TorrentToken { scanned: usize },
    /// Reading the torrent after `UPLOAD_TORRENT:<token>:`.
    Torrent { token: Token, scanner: Scanner },
    /// Reading a header line; `scanned` bytes were searched for `\n`.
    Line { kind: Kind, scanned: usize },
    /// A torrent was returned: any further byte is an error.
    AfterTorrent,
    /// A file or resume header was returned: the rest is payload, not ours.
    AfterHeader,
}

/// The decoder of one upload connection's request (see the module docs for the call order).
#[derive(Debug, Clone)]
pub struct Decoder {
    state: State,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    /// A decoder at the start of a connection.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            state: State::Start,
        }
    }

    /// The token of an `UPLOAD_TORRENT` once it is complete, while the torrent is still
    /// arriving: the engine checks it (and stops reading until the answer) before it buffers a
    /// torrent of up to [`MAX_UPLOAD_TORRENT_LEN`] bytes from a client that may not upload.
    /// `None` before the token's `:` and after the request was returned.
    #[must_use]
    pub const fn pending_token(&self) -> Option<&Token> {
        match &self.state {
            State::Torrent { token, .. } => Some(token),
            _ => None,
        }
    }

    /// Decodes from the front of `buf` (all bytes received and not yet consumed). `Ok(None)`:
    /// read more and call again with the grown buffer; the work already done is not redone, so
    /// the cost is linear in the bytes received. `Ok(Some(request))`: the request's bytes were
    /// split off `buf`; for a file or a resume what is left in `buf` is payload.
    ///
    /// # Errors
    /// [`UploadError`]: the client is broken or hostile; reply with [`UploadError::code`] and
    /// close. Each limit is enforced as soon as the bytes received pass it.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Request>, UploadError> {
        loop {
            match &mut self.state {
                State::Start => match sniff(buf) {
                    Sniff::NeedMore => return Ok(None),
                    Sniff::No => return Err(UploadError::NotUpload),
                    Sniff::Is(Kind::Torrent) => {
                        self.state = State::TorrentToken {
                            scanned: TORRENT_PREFIX.len(),
                        };
                    }
                    Sniff::Is(kind) => self.state = State::Line { kind, scanned: 0 },
                },
                State::TorrentToken { scanned } => {
                    let start = TORRENT_PREFIX.len();
                    let mut end = None;
                    for (i, &b) in buf.iter().enumerate().skip(*scanned) {
                        if b == b':' {
                            end = Some(i);
                            break;
                        }
                        if i - start >= MAX_UPLOAD_TOKEN_LEN {
                            return Err(UploadError::TokenTooLong {
                                limit: MAX_UPLOAD_TOKEN_LEN,
                            });
                        }
                        if !is_token_byte(b) && b != b'=' {
                            return Err(UploadError::BadToken);
                        }
                    }
                    let Some(end) = end else {
                        *scanned = buf.len();
                        return Ok(None);
                    };
                    let token = Token::new(&buf[start..end])?;
                    buf.advance(end + 1);
                    self.state = State::Torrent {
                        token,
                        scanner: Scanner::default(),
                    };
                    if buf.is_empty() {
                        // Give the caller the chance to check the token before any torrent
                        // byte (see `pending_token`).
                        return Ok(None);
                    }
                }
                State::Torrent { token, scanner } => {
                    let Some(len) = scanner.scan(buf)? else {
                        return Ok(None);
                    };
                    let torrent = buf.split_to(len).freeze();
                    bencode::decode(&torrent).map_err(UploadError::BadBencode)?;
                    let token = token.clone();
                    self.state = State::AfterTorrent;
                    if !buf.is_empty() {
                        return Err(UploadError::TrailingBytes);
                    }
                    return Ok(Some(Request::Torrent { token, torrent }));
                }
                State::Line { kind, scanned } => {
                    let kind = *kind;
                    let from = *scanned;
                    let Some(nl) = buf[from..].iter().position(|&b| b == b'\n') else {
                        if buf.len() >= MAX_UPLOAD_HEADER_LEN {
                            return Err(UploadError::HeaderTooLong {
                                limit: MAX_UPLOAD_HEADER_LEN,
                            });
                        }
                        *scanned = buf.len();
                        return Ok(None);
                    };
                    let end = from + nl;
                    if end + 1 > MAX_UPLOAD_HEADER_LEN {
                        return Err(UploadError::HeaderTooLong {
                            limit: MAX_UPLOAD_HEADER_LEN,
                        });
                    }
                    let line = buf.split_to(end + 1);
                    self.state = State::AfterHeader;
                    return parse_line(kind, &line[..end]).map(Some);
                }
                State::AfterTorrent => {
                    return if buf.is_empty() {
                        Ok(None)
                    } else {
                        Err(UploadError::TrailingBytes)
                    };
                }
                State::AfterHeader => return Ok(None),
            }
        }
    }
}

/// Splits the field before the next space off `rest`; `what` names the field missing when there
/// is no space.
fn next<'a>(rest: &mut &'a [u8], what: &'static str) -> Result<&'a [u8], UploadError> {
    let Some(sp) = rest.iter().position(|&b| b == b' ') else {
        return Err(UploadError::BadHeader { reason: what });
    };
    let (field, tail) = rest.split_at(sp);
    *rest = &tail[1..];
    Ok(field)
}

/// Parses a header line without its `\n` (a trailing `\r` is dropped, for `nc -C`).
fn parse_line(kind: Kind, line: &[u8]) -> Result<Request, UploadError> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.iter().any(|&b| b.is_ascii_control()) {
        return Err(UploadError::BadHeader {
            reason: "control byte",
        });
    }
    let fields = |prefix: &[u8]| line.get(prefix.len()..).unwrap_or_default();
    match kind {
        Kind::Torrent => Err(UploadError::NotUpload),
        Kind::File => {
            let mut rest = fields(FILE_PREFIX);
            let token = Token::new(next(&mut rest, "missing length")?)?;
            let length = decimal(
                next(&mut rest, "missing name")?,
                "length",
                MAX_UPLOAD_FILE_LEN,
            )?;
            if length == 0 {
                return Err(UploadError::EmptyFile);
            }
            let mut name = rest;
            let mut sha256 = None;
            if let Some(sp) = rest.iter().rposition(|&b| b == b' ')
                && let Some(hex) = rest[sp + 1..].strip_prefix(b"sha256=")
            {
                sha256 = Some(hex_array(hex).ok_or(UploadError::BadSha256)?);
                name = &rest[..sp];
            }
            let name = FileName::new(name)?;
            Ok(Request::File(FileHeader {
                token,
                length,
                name,
                sha256,
            }))
        }
        Kind::Resume => {
            let mut rest = fields(RESUME_PREFIX);
            let token = Token::new(next(&mut rest, "missing upload id")?)?;
            let upload_id = UploadId::parse(next(&mut rest, "missing offset")?)?;
            let offset = decimal(rest, "offset", MAX_UPLOAD_FILE_LEN)?;
            Ok(Request::Resume(ResumeHeader {
                token,
                upload_id,
                offset,
            }))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The torrent's end: a bounded, incremental bencode scanner
// ---------------------------------------------------------------------------------------------

/// Finds where one bencoded value ends in a growing buffer, resuming where it stopped, in
/// bounded memory: a bit per open container ([`MAX_BENCODE_DEPTH`] of them), the token count
/// ([`MAX_BENCODE_TOKENS`]), and [`MAX_UPLOAD_TORRENT_LEN`] bytes at most. It checks only the
/// structure that decides where values end (lengths, `e`, string keys); [`bencode::decode`]
/// then checks the whole value.
#[derive(Debug, Clone, Default)]
struct Scanner {
    /// Bytes of the buffer consumed so far.
    pos: usize,
    /// Open containers, innermost last: `true` for a dictionary.
    stack: Vec<bool>,
    /// Per open dictionary (by depth), whether the next value is a key.
    awaiting_key: Vec<bool>,
    /// Tokens seen.
    tokens: usize,
    /// The token in progress.
    token: Tok,
}

/// A token in progress.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Tok {
    /// Between tokens.
    #[default]
    Between,
    /// Inside `i...e`, `digits` bytes after the `i`.
    Int { digits: usize },
    /// Inside a string's length, so far `len`.
    StrLen { len: u64, digits: usize },
    /// Inside a string's bytes, `left` to go.
    StrBody { left: u64 },
}

impl Scanner {
    /// Scans what `buf` holds past the last call. `Ok(Some(len))`: the value is `buf[..len]`.
    fn scan(&mut self, buf: &[u8]) -> Result<Option<usize>, UploadError> {
        let too_large = UploadError::TorrentTooLarge {
            limit: MAX_UPLOAD_TORRENT_LEN,
        };
        let limit = buf.len().min(MAX_UPLOAD_TORRENT_LEN);
        let bad = |pos| UploadError::BadBencode(bencode::DecodeError::Malformed { pos });
        while self.pos < limit {
            let pos = self.pos;
            let b = buf[pos];
            match self.token {
                Tok::StrBody { left } => {
                    let avail = (limit - pos) as u64;
                    let take = left.min(avail);
                    // take <= avail, a usize.
                    self.pos += take as usize;
                    if take == left {
                        self.token = Tok::Between;
                        if let Some(done) = self.value_done() {
                            return Ok(Some(done));
                        }
                    } else {
                        self.token = Tok::StrBody { left: left - take };
                    }
                    continue;
                }
                Tok::Int { digits } => {
                    self.pos += 1;
                    match b {
                        b'e' if digits > 0 => {
                            self.token = Tok::Between;
                            if let Some(done) = self.value_done() {
                                return Ok(Some(done));
                            }
                        }
                        b'-' if digits == 0 => self.token = Tok::Int { digits: 1 },
                        b'0'..=b'9' if digits <= 20 => self.token = Tok::Int { digits: digits + 1 },
                        _ => return Err(bad(pos)),
                    }
                    continue;
                }
                Tok::StrLen { len, digits } => {
                    self.pos += 1;
                    match b {
                        b':' => {
                            if len > (MAX_UPLOAD_TORRENT_LEN as u64) {
                                return Err(too_large);
                            }
                            self.token = Tok::StrBody { left: len };
                            if len == 0 {
                                self.token = Tok::Between;
                                if let Some(done) = self.value_done() {
                                    return Ok(Some(done));
                                }
                            }
                        }
                        b'0'..=b'9' if digits < 20 => {
                            let len = len
                                .checked_mul(10)
                                .and_then(|l| l.checked_add(u64::from(b - b'0')))
                                .ok_or(too_large.clone())?;
                            self.token = Tok::StrLen {
                                len,
                                digits: digits + 1,
                            };
                        }
                        _ => return Err(bad(pos)),
                    }
                    continue;
                }
                Tok::Between => {}
            }
            // A new token starts at `pos`.
            if pos == 0 && b != b'd' {
                return Err(UploadError::TorrentNotDictionary);
            }
            self.tokens += 1;
            if self.tokens > MAX_BENCODE_TOKENS {
                return Err(UploadError::BadBencode(
                    bencode::DecodeError::TooManyTokens {
                        pos,
                        limit: MAX_BENCODE_TOKENS,
                    },
                ));
            }
            let key_expected = self.awaiting_key.last() == Some(&true);
            if key_expected && b != b'e' && !b.is_ascii_digit() {
                return Err(UploadError::BadBencode(
                    bencode::DecodeError::NonStringKey { pos },
                ));
            }
            self.pos += 1;
            match b {
                b'd' | b'l' => {
                    if self.stack.len() >= MAX_BENCODE_DEPTH {
                        return Err(UploadError::BadBencode(
                            bencode::DecodeError::DepthExceeded {
                                pos,
                                limit: MAX_BENCODE_DEPTH,
                            },
                        ));
                    }
                    self.stack.push(b == b'd');
                    self.awaiting_key.push(b == b'd');
                }
                b'e' => {
                    let Some(is_dict) = self.stack.pop() else {
                        return Err(bad(pos));
                    };
                    let awaiting = self.awaiting_key.pop();
                    if is_dict && awaiting == Some(false) {
                        return Err(UploadError::BadBencode(
                            bencode::DecodeError::MissingValue { pos },
                        ));
                    }
                    if let Some(done) = self.value_done() {
                        return Ok(Some(done));
                    }
                }
                b'i' => self.token = Tok::Int { digits: 0 },
                b'0'..=b'9' => {
                    self.token = Tok::StrLen {
                        len: u64::from(b - b'0'),
                        digits: 1,
                    };
                }
                _ => return Err(bad(pos)),
            }
        }
        if buf.len() >= MAX_UPLOAD_TORRENT_LEN {
            return Err(too_large);
        }
        Ok(None)
    }

    /// A value (or a key) just ended at `self.pos`: flips the parent dictionary between key and
    /// value; returns the total length when the top-level value closed.
    fn value_done(&mut self) -> Option<usize> {
        match (self.stack.last(), self.awaiting_key.last_mut()) {
            (None, _) => Some(self.pos),
            (Some(true), Some(awaiting)) => {
                *awaiting = !*awaiting;
                None
            }
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Replies
// ---------------------------------------------------------------------------------------------

/// The code of an `ERR` reply: what the client should do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// `auth`: the token is unknown, expired or revoked (or the IP is locked out).
    Auth,
    /// `scope`: the token is valid but may not upload.
    Scope,
    /// `quota`: the token's or client's quota (bytes, torrents, rate, concurrent uploads) would
    /// be exceeded.
    Quota,
    /// `too_large`: a length, token or torrent over a protocol or per-scope limit.
    TooLarge,
    /// `malformed`: the request breaks the framing, or the torrent does not load, or the file's
    /// SHA-256 differs from the `sha256=` given.
    Malformed,
    /// `exists`: a file or torrent of that name or info-hash is already there; nothing changed.
    Exists,
    /// `busy`: too many uploads at once (per IP or in total), or the disk is full; retry later.
    Busy,
    /// `internal`: the node failed (disk, catalog); nothing was stored.
    Internal,
}

impl ErrorCode {
    /// Every code, in documentation order.
    pub const ALL: [Self; 8] = [
        Self::Auth,
        Self::Scope,
        Self::Quota,
        Self::TooLarge,
        Self::Malformed,
        Self::Exists,
        Self::Busy,
        Self::Internal,
    ];

    /// The code as written on the wire.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::Scope => "scope",
            Self::Quota => "quota",
            Self::TooLarge => "too_large",
            Self::Malformed => "malformed",
            Self::Exists => "exists",
            Self::Busy => "busy",
            Self::Internal => "internal",
        }
    }

    /// The code written as `s`, if any.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// A reply line of the node (see the module docs for when each is sent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `UPLOAD <upload-id> <offset>\n`: the node accepted a file or resume header and reads
    /// payload from byte `offset` of the file (0 for a new upload).
    Upload {
        /// The upload's id, for `UPLOAD_RESUME`.
        upload_id: UploadId,
        /// The offset the client must send from, in bytes.
        offset: u64,
    },
    /// `OK <info-hash hex> <magnet>\n`: stored and seeding. The info-hash is the v1 one, or,
    /// for a v2-only torrent, the v2 one truncated to 20 bytes (the swarm's id).
    Ok {
        /// The swarm's 20-byte info-hash.
        info_hash: InfoHash,
        /// The torrent's magnet URI (no spaces or controls).
        magnet: String,
    },
    /// `ERR <code> <reason>\n`: refused; nothing was stored.
    Err {
        /// What kind of refusal.
        code: ErrorCode,
        /// One line of text for a human.
        reason: String,
    },
}

/// Why a reply line could not be parsed (the client side's error: the node is broken).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// No `\n` within [`MAX_UPLOAD_REPLY_LEN`] bytes.
    #[error("reply line longer than {limit} bytes")]
    TooLong {
        /// [`MAX_UPLOAD_REPLY_LEN`].
        limit: usize,
    },
    /// Not one of the three forms.
    #[error("malformed reply line")]
    Malformed,
}

impl Reply {
    /// Appends the reply line, `\n` included, at most [`MAX_UPLOAD_REPLY_LEN`] bytes: an `ERR`
    /// reason has every control character replaced by a space and is cut (at a character
    /// boundary) to fit; an `OK` magnet longer than fits is cut before an `&` (its first `xt`
    /// always stays; a magnet with no room even for that is cut short).
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        match self {
            Self::Upload { upload_id, offset } => {
                out.extend_from_slice(format!("UPLOAD {upload_id} {offset}\n").as_bytes());
            }
            Self::Ok { info_hash, magnet } => {
                out.extend_from_slice(b"OK ");
                put_hex(out, info_hash.as_bytes());
                out.push(b' ');
                let room = MAX_UPLOAD_REPLY_LEN - (out.len() - start) - 1;
                let magnet: String = magnet
                    .chars()
                    .map(|c| if c.is_control() || c == ' ' { '+' } else { c })
                    .collect();
                let mut cut = magnet.as_str();
                if cut.len() > room {
                    cut = truncate_str(cut, room);
                    if let Some(amp) = cut.rfind('&') {
                        cut = &cut[..amp];
                    }
                }
                out.extend_from_slice(cut.as_bytes());
                out.push(b'\n');
            }
            Self::Err { code, reason } => {
                out.extend_from_slice(b"ERR ");
                out.extend_from_slice(code.as_str().as_bytes());
                let reason: String = reason
                    .chars()
                    .map(|c| if c.is_control() { ' ' } else { c })
                    .collect();
                let reason = reason.trim();
                if !reason.is_empty() {
                    out.push(b' ');
                    let room = MAX_UPLOAD_REPLY_LEN - (out.len() - start) - 1;
                    out.extend_from_slice(truncate_str(reason, room).trim_end().as_bytes());
                }
                out.push(b'\n');
            }
        }
    }

    /// Parses one reply line from the front of `buf` (the client side: `seednode push`).
    /// `Ok(None)`: no whole line yet. `Ok(Some((reply, used)))`: the line spans `used` bytes.
    ///
    /// # Errors
    /// [`ReplyError`].
    pub fn parse(buf: &[u8]) -> Result<Option<(Self, usize)>, ReplyError> {
        let Some(nl) = buf.iter().position(|&b| b == b'\n') else {
            return if buf.len() >= MAX_UPLOAD_REPLY_LEN {
                Err(ReplyError::TooLong {
                    limit: MAX_UPLOAD_REPLY_LEN,
                })
            } else {
                Ok(None)
            };
        };
        if nl + 1 > MAX_UPLOAD_REPLY_LEN {
            return Err(ReplyError::TooLong {
                limit: MAX_UPLOAD_REPLY_LEN,
            });
        }
        let line = std::str::from_utf8(&buf[..nl]).map_err(|_| ReplyError::Malformed)?;
        let reply = if let Some(rest) = line.strip_prefix("UPLOAD ") {
            let (id, offset) = rest.split_once(' ').ok_or(ReplyError::Malformed)?;
            Self::Upload {
                upload_id: UploadId::parse(id.as_bytes()).map_err(|_| ReplyError::Malformed)?,
                offset: decimal(offset.as_bytes(), "offset", u64::MAX)
                    .map_err(|_| ReplyError::Malformed)?,
            }
        } else if let Some(rest) = line.strip_prefix("OK ") {
            let (hash, magnet) = rest.split_once(' ').ok_or(ReplyError::Malformed)?;
            let info_hash = hex_array(hash.as_bytes())
                .map(InfoHash)
                .ok_or(ReplyError::Malformed)?;
            Self::Ok {
                info_hash,
                magnet: magnet.to_owned(),
            }
        } else if let Some(rest) = line.strip_prefix("ERR ") {
            let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
            Self::Err {
                code: ErrorCode::parse(code).ok_or(ReplyError::Malformed)?,
                reason: reason.to_owned(),
            }
        } else {
            return Err(ReplyError::Malformed);
        };
        Ok(Some((reply, nl + 1)))
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn truncate_str(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests;
