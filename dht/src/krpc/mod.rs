//! KRPC messages (BEP 5 §KRPC Protocol): decoding from a datagram, canonical encoding.
//!
//! A [`Message`] borrows every byte string from the datagram it was decoded from (zero copy).
//! [`decode`] is lenient exactly where libtorrent is (unsorted or duplicate dictionary keys, the
//! first duplicate wins, unknown keys ignored, a non-list `want` ignored) and strict on what a
//! reply depends on: a 20-byte `id`, `target` and `info_hash`, a `port` in 1..=65535 unless
//! `implied_port` is set. [`Message::encode`] writes canonical bencode (keys sorted), so the BEP 5
//! examples encode byte for byte.
//!
//! # What a malformed datagram gets back
//!
//! [`Malformed::reply`] decides: only a *query* (`y` = `q`) with a usable transaction id
//! (1 to [`MAX_TRANSACTION_ID_LEN`] bytes) gets an error reply, 203 for bad arguments and 204
//! for an unknown method (BEP 5 §Errors). Everything else (not bencode, not a dictionary, no or a
//! long `t`, unknown `y`, a malformed response or error) is dropped silently: replying to
//! responses could start error ping-pong between two nodes, and echoing a long `t` would reflect
//! attacker bytes (SECURITY D3).

pub mod compact;
mod decode;
mod encode;

use std::net::SocketAddr;

use seednode_wire::InfoHash;
use seednode_wire::bencode::DecodeError;

use crate::id::NodeId;
use crate::limits::MAX_TRANSACTION_ID_LEN;

pub use decode::decode;
pub(crate) use encode::bytes_len as encoded_bytes_len;

/// Error code 201, "Generic Error" (BEP 5 §Errors).
pub const ERROR_GENERIC: i64 = 201;
/// Error code 202, "Server Error" (BEP 5 §Errors).
pub const ERROR_SERVER: i64 = 202;
/// Error code 203, "Protocol Error, such as a malformed packet, invalid arguments, or bad token"
/// (BEP 5 §Errors).
pub const ERROR_PROTOCOL: i64 = 203;
/// Error code 204, "Method Unknown" (BEP 5 §Errors).
pub const ERROR_METHOD_UNKNOWN: i64 = 204;

/// One KRPC message: the top-level dictionary (BEP 5 §KRPC Protocol).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    /// `t`: the transaction id chosen by the querier and echoed in its response.
    pub transaction_id: &'a [u8],
    /// `v`: the sender's client version (BEP 5 leaves it free; 2 letters + 2 bytes by custom).
    pub version: Option<&'a [u8]>,
    /// `ro` = 1: the sender is a read-only node and must not enter routing tables (BEP 43).
    pub read_only: bool,
    /// `ip`: the requester's address as the responder sees it (BEP 42 §Bootstrapping).
    pub ip: Option<SocketAddr>,
    /// `y` and its payload.
    pub body: Body<'a>,
}

/// The three message types, `y` = `q`, `r` or `e` (BEP 5 §KRPC Protocol).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body<'a> {
    /// `y` = `q`: a query with `q` (method) and `a` (arguments).
    Query(Query<'a>),
    /// `y` = `r`: a response with `r`.
    Response(Response<'a>),
    /// `y` = `e`: an error with `e` = `[code, message]`.
    Error(ErrorBody<'a>),
}

/// A query: the querier's ID and the method with its arguments (BEP 5 §DHT Queries).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query<'a> {
    /// `a.id`: the querying node's ID.
    pub id: NodeId,
    /// `q` and the method's other arguments.
    pub method: Method<'a>,
}

/// The query methods this node understands; any other `q` is answered with error 204.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method<'a> {
    /// `ping` (BEP 5 §ping).
    Ping,
    /// `find_node` (BEP 5 §find_node), with BEP 32 `want`.
    FindNode {
        /// `target`: the ID sought.
        target: NodeId,
        /// `want` (BEP 32).
        want: Option<Want>,
    },
    /// `get_peers` (BEP 5 §get_peers), with BEP 32 `want`.
    GetPeers {
        /// `info_hash`.
        info_hash: InfoHash,
        /// `want` (BEP 32).
        want: Option<Want>,
    },
    /// `announce_peer` (BEP 5 §announce_peer).
    AnnouncePeer {
        /// `info_hash`.
        info_hash: InfoHash,
        /// `port`: the peer's TCP port; 0 only when `implied_port` is set and `port` was
        /// missing or out of range.
        port: u16,
        /// `implied_port` non-zero: use the datagram's source port instead of `port`.
        implied_port: bool,
        /// `token` from an earlier `get_peers` reply.
        token: &'a [u8],
    },
    /// `sample_infohashes` (BEP 51), with BEP 32 `want`.
    SampleInfohashes {
        /// `target`: the ID `nodes` should be close to.
        target: NodeId,
        /// `want` (BEP 32).
        want: Option<Want>,
    },
}

/// The kind of a query, for statistics and for parsing its response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QueryKind {
    /// `ping`.
    Ping,
    /// `find_node`.
    FindNode,
    /// `get_peers`.
    GetPeers,
    /// `announce_peer`.
    AnnouncePeer,
    /// `sample_infohashes`.
    SampleInfohashes,
}

impl Method<'_> {
    /// The kind of this query.
    #[must_use]
    pub const fn kind(&self) -> QueryKind {
        match self {
            Self::Ping => QueryKind::Ping,
            Self::FindNode { .. } => QueryKind::FindNode,
            Self::GetPeers { .. } => QueryKind::GetPeers,
            Self::AnnouncePeer { .. } => QueryKind::AnnouncePeer,
            Self::SampleInfohashes { .. } => QueryKind::SampleInfohashes,
        }
    }
}

impl QueryKind {
    /// The method name, the value of `q`.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Ping => "ping",
            Self::FindNode => "find_node",
            Self::GetPeers => "get_peers",
            Self::AnnouncePeer => "announce_peer",
            Self::SampleInfohashes => "sample_infohashes",
        }
    }
}

/// BEP 32 `want`: which node lists the querier asks for. Unknown strings are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Want {
    /// `n4`: include `nodes` (IPv4).
    pub n4: bool,
    /// `n6`: include `nodes6` (IPv6).
    pub n6: bool,
}

/// A response's `r` dictionary. Which keys are present depends on the query it answers; every
/// one is optional except `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response<'a> {
    /// `id`: the responding node's ID.
    pub id: NodeId,
    /// `nodes`: compact IPv4 nodes, 26 bytes each; see [`compact::nodes_v4`].
    pub nodes: Option<&'a [u8]>,
    /// `nodes6`: compact IPv6 nodes, 38 bytes each (BEP 32); see [`compact::nodes_v6`].
    pub nodes6: Option<&'a [u8]>,
    /// `token`: the write token of a `get_peers` reply.
    pub token: Option<&'a [u8]>,
    /// `values`: compact peers, 6 or 18 bytes each; see [`compact::peer`].
    pub values: Option<Vec<&'a [u8]>>,
    /// `samples`: concatenated 20-byte info-hashes (BEP 51).
    pub samples: Option<&'a [u8]>,
    /// `interval`: seconds before the sample changes (BEP 51).
    pub interval: Option<i64>,
    /// `num`: info-hashes the responder stores (BEP 51).
    pub num: Option<i64>,
}

impl<'a> Response<'a> {
    /// A response carrying only `id` (the answer to `ping` and `announce_peer`).
    #[must_use]
    pub const fn id_only(id: NodeId) -> Self {
        Self {
            id,
            nodes: None,
            nodes6: None,
            token: None,
            values: None,
            samples: None,
            interval: None,
            num: None,
        }
    }
}

/// An error's `e` list: `[code, message]` (BEP 5 §Errors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorBody<'a> {
    /// The error code, 201–204 in BEP 5.
    pub code: i64,
    /// The human-readable message (not necessarily UTF-8).
    pub message: &'a [u8],
}

/// Why a datagram is not a usable KRPC message: the variants name what the remote did.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KrpcError {
    /// The datagram is not valid bencode (or over the decoder's depth limit).
    #[error("not bencode: {0}")]
    Bencode(#[from] DecodeError),
    /// The top-level value is not a dictionary.
    #[error("message is not a dictionary")]
    NotADictionary,
    /// No `t`, or `t` not a string.
    #[error("missing transaction id")]
    MissingTransactionId,
    /// `t` empty or longer than [`MAX_TRANSACTION_ID_LEN`]; never echoed.
    #[error("transaction id of {len} bytes (1..={limit} accepted)")]
    BadTransactionIdLength {
        /// Bytes received.
        len: usize,
        /// [`MAX_TRANSACTION_ID_LEN`].
        limit: usize,
    },
    /// `y` missing or not one of `q`, `r`, `e`.
    #[error("unknown message type")]
    UnknownMessageType,
    /// A required key is missing.
    #[error("missing `{field}`")]
    MissingField {
        /// The key.
        field: &'static str,
    },
    /// A key has the wrong bencode type.
    #[error("`{field}` has the wrong type")]
    WrongType {
        /// The key.
        field: &'static str,
    },
    /// A string key has the wrong length (e.g. a 19-byte `id`).
    #[error("`{field}` is {got} bytes, expected {expected}")]
    WrongLength {
        /// The key.
        field: &'static str,
        /// Bytes received.
        got: usize,
        /// Bytes required.
        expected: usize,
    },
    /// `announce_peer` with a `port` outside 1..=65535 and no `implied_port`.
    #[error("port {got} out of range")]
    PortOutOfRange {
        /// The value received.
        got: i64,
    },
    /// A query method this node does not implement.
    #[error("unknown query method")]
    UnknownMethod,
}

impl KrpcError {
    /// The KRPC error code a query with this problem is answered with (BEP 5 §Errors): 204 for
    /// an unknown method, 203 for bad arguments, `None` (silence) for envelope problems.
    #[must_use]
    pub const fn code(&self) -> Option<i64> {
        match self {
            Self::UnknownMethod => Some(ERROR_METHOD_UNKNOWN),
            Self::MissingField { .. }
            | Self::WrongType { .. }
            | Self::WrongLength { .. }
            | Self::PortOutOfRange { .. } => Some(ERROR_PROTOCOL),
            Self::Bencode(_)
            | Self::NotADictionary
            | Self::MissingTransactionId
            | Self::BadTransactionIdLength { .. }
            | Self::UnknownMessageType => None,
        }
    }

    /// The short message sent in the error reply (fixed ASCII, never remote bytes).
    #[must_use]
    pub const fn reply_message(&self) -> &'static str {
        match self {
            Self::UnknownMethod => "Method Unknown",
            Self::MissingField { .. } => "missing argument",
            Self::WrongType { .. } | Self::WrongLength { .. } => "invalid argument",
            Self::PortOutOfRange { .. } => "invalid port",
            _ => "Protocol Error",
        }
    }
}

/// A datagram [`decode`] refused, with what is needed to answer it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed<'a> {
    /// The transaction id, when it is present and 1..=[`MAX_TRANSACTION_ID_LEN`] bytes long.
    pub transaction_id: Option<&'a [u8]>,
    /// True when `y` was `q`.
    pub is_query: bool,
    /// What was wrong.
    pub error: KrpcError,
}

impl<'a> Malformed<'a> {
    /// The error code and the transaction id to answer with, or `None` for silence: only a
    /// query with a usable `t` is answered (see the module docs).
    #[must_use]
    pub fn reply(&self) -> Option<(i64, &'a [u8])> {
        if !self.is_query {
            return None;
        }
        let t = self.transaction_id?;
        debug_assert!(!t.is_empty() && t.len() <= MAX_TRANSACTION_ID_LEN);
        Some((self.error.code()?, t))
    }
}

impl Message<'_> {
    /// Appends the canonical bencoding of this message to `out` (keys sorted, BEP 3). Values are
    /// written as given: callers keep `values` to 6- or 18-byte strings.
    pub fn encode(&self, out: &mut Vec<u8>) {
        encode::message(self, out);
    }

    /// The canonical bencoding of this message in a new buffer.
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        self.encode(&mut out);
        out
    }
}
