//! Magnet URIs (BEP 9): `magnet:?xt=urn:btih:<info-hash>&dn=<name>&tr=<tracker>&x.pe=<host:port>`,
//! and their BEP 52 form `xt=urn:btmh:1220<64 hex>` (a multihash: `0x12` = SHA2-256, `0x20` = 32
//! bytes) for v2 torrents; a hybrid torrent's magnet carries both `xt`.
//!
//! Two types: [`Magnet`] is the v1 magnet (a `urn:btih:` is required, any `urn:btmh:` is
//! ignored); [`MagnetLink`] reads and writes both topics, so it also holds v2-only magnets.
//!
//! Parsing is bounded: the URI is at most [`MAX_MAGNET_URI_LEN`] bytes, and at most
//! [`MAX_MAGNET_TRACKERS`] `tr` and [`MAX_MAGNET_PEERS`] `x.pe` values are kept (the rest are
//! ignored). Values are percent-decoded (`+` reads as a space, as libtorrent does); unknown
//! parameters, other `xt` values (and `urn:btmh:` multihashes other than SHA2-256) and empty
//! values are ignored. The first `urn:btih:` and the first `urn:btmh:` win. Numbered parameters
//! (`tr.1`, `xt.1`) are read like their plain form.

use std::fmt;

use crate::limits::{MAX_MAGNET_PEERS, MAX_MAGNET_TRACKERS, MAX_MAGNET_URI_LEN};
use crate::metainfo::Metainfo;
use crate::percent;
use crate::{InfoHash, InfoHashV2};

/// Prefix of a BEP 52 `xt` value: `urn:btmh:` then the multihash header of a SHA2-256 digest
/// (`0x12` function, `0x20` = 32 bytes), in hex.
const BTMH_SHA256_PREFIX: &str = "urn:btmh:1220";

/// A parsed magnet URI (BEP 9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Magnet {
    /// The v1 info-hash from `xt=urn:btih:` (40 hex or 32 base32 characters).
    pub info_hash: InfoHash,
    /// `dn`: the display name, if any.
    pub display_name: Option<String>,
    /// `tr`: tracker URLs, in URI order.
    pub trackers: Vec<String>,
    /// `x.pe`: peer addresses (`host:port`, `[v6]:port`), in URI order.
    pub peers: Vec<String>,
}

/// Why a magnet URI was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MagnetError {
    /// The URI is longer than [`MAX_MAGNET_URI_LEN`].
    #[error("magnet URI of {len} bytes exceeds the limit of {limit}")]
    TooLong {
        /// URI length in bytes.
        len: usize,
        /// [`MAX_MAGNET_URI_LEN`].
        limit: usize,
    },
    /// The URI does not start with `magnet:?`.
    #[error("not a magnet URI (expected `magnet:?`)")]
    NotMagnet,
    /// No `xt=urn:btih:` parameter.
    #[error("magnet URI has no `xt=urn:btih:` info-hash")]
    MissingInfoHash,
    /// The `urn:btih:` value is not 40 hex or 32 base32 characters.
    #[error("bad magnet info-hash: {0}")]
    BadInfoHash(#[from] crate::ParseHashError),
    /// A `urn:btmh:1220` value not followed by exactly 64 hex digits ([`MagnetLink`] only).
    #[error("bad magnet v2 info-hash: `urn:btmh:1220` needs 64 hex digits")]
    BadInfoHashV2,
    /// Neither a `urn:btih:` nor a SHA2-256 `urn:btmh:` topic ([`MagnetLink`] only).
    #[error("magnet URI has no `xt=urn:btih:` or `xt=urn:btmh:1220` info-hash")]
    MissingTopic,
    /// A `%` not followed by two hex digits.
    #[error("bad percent-encoding in magnet parameter `{param}`")]
    BadPercentEncoding {
        /// Parameter name (`dn`, `tr`, `x.pe`, `xt`).
        param: &'static str,
    },
    /// A value that does not decode to UTF-8.
    #[error("magnet parameter `{param}` is not valid UTF-8")]
    NotUtf8 {
        /// Parameter name (`dn`, `tr`, `x.pe`, `xt`).
        param: &'static str,
    },
}

/// The parameters this module reads, by their plain name.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Param {
    ExactTopic,
    DisplayName,
    Tracker,
    Peer,
}

impl Param {
    fn from_key(key: &str) -> Option<Self> {
        // `tr.1` reads like `tr`.
        let plain = match key.rsplit_once('.') {
            Some((base, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => base,
            _ => key,
        };
        match plain {
            "xt" => Some(Self::ExactTopic),
            "dn" => Some(Self::DisplayName),
            "tr" => Some(Self::Tracker),
            "x.pe" => Some(Self::Peer),
            _ => None,
        }
    }

    const fn name(self) -> &'static str {
        match self {
            Self::ExactTopic => "xt",
            Self::DisplayName => "dn",
            Self::Tracker => "tr",
            Self::Peer => "x.pe",
        }
    }
}

/// A magnet URI of a v1, v2 or hybrid torrent (BEP 9; BEP 52 `urn:btmh:`): at least one of the
/// two info-hashes is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MagnetLink {
    /// The v1 info-hash from `xt=urn:btih:` (40 hex or 32 base32 characters).
    pub info_hash: Option<InfoHash>,
    /// The v2 info-hash from `xt=urn:btmh:1220<64 hex>`.
    pub info_hash_v2: Option<InfoHashV2>,
    /// `dn`: the display name, if any.
    pub display_name: Option<String>,
    /// `tr`: tracker URLs, in URI order.
    pub trackers: Vec<String>,
    /// `x.pe`: peer addresses (`host:port`, `[v6]:port`), in URI order.
    pub peers: Vec<String>,
}

impl MagnetLink {
    /// Parses a magnet URI with a `urn:btih:` topic, a `urn:btmh:1220` topic, or both.
    ///
    /// # Errors
    /// [`MagnetError`]: too long, not `magnet:?`, [`MagnetError::MissingTopic`],
    /// [`MagnetError::BadInfoHash`], [`MagnetError::BadInfoHashV2`] for a malformed SHA2-256
    /// `urn:btmh:` (other multihashes are ignored), or a value with bad percent-encoding or
    /// invalid UTF-8.
    pub fn parse(uri: &str) -> Result<Self, MagnetError> {
        let parsed = parse_uri(uri)?;
        let info_hash_v2 = parsed.info_hash_v2.transpose()?;
        if parsed.info_hash.is_none() && info_hash_v2.is_none() {
            return Err(MagnetError::MissingTopic);
        }
        Ok(Self {
            info_hash: parsed.info_hash,
            info_hash_v2,
            display_name: parsed.display_name,
            trackers: parsed.trackers,
            peers: parsed.peers,
        })
    }

    /// The magnet of `metainfo`: its v1 info-hash when it has a v1 side, its v2 info-hash when it
    /// has a v2 side, `dn` = its name, `tr` = every tracker of every tier in order; no peers.
    #[must_use]
    pub fn for_metainfo(metainfo: &Metainfo) -> Self {
        let name = metainfo
            .v2
            .as_ref()
            .map_or(&metainfo.info.name, |v2| &v2.info.name);
        Self {
            info_hash: metainfo.has_v1().then_some(metainfo.info_hash),
            info_hash_v2: metainfo.info_hash_v2(),
            display_name: Some(name.clone()),
            trackers: metainfo.announce_list.iter().flatten().cloned().collect(),
            peers: Vec::new(),
        }
    }

    /// The 20-byte identifier of the swarm: the v1 info-hash if any, else the truncated v2 one
    /// (what a v2-only torrent's handshake, trackers and DHT use).
    ///
    /// # Panics
    /// Never for a parsed link; a hand-built one with neither hash gives all zeros.
    #[must_use]
    pub fn swarm_id(&self) -> InfoHash {
        self.info_hash
            .or_else(|| self.info_hash_v2.map(|h| h.truncated()))
            .unwrap_or_default()
    }

    /// Formats this magnet as a URI: `xt=urn:btih:` (lowercase hex) and/or
    /// `xt=urn:btmh:1220…`, then `dn`, every `tr`, every `x.pe`, each value percent-encoded (as
    /// libtorrent's `make_magnet_uri`).
    #[must_use]
    pub fn to_uri(&self) -> String {
        let mut out = String::from("magnet:?");
        let mut sep = "";
        if let Some(ih) = &self.info_hash {
            out.push_str("xt=urn:btih:");
            out.push_str(&ih.to_hex());
            sep = "&";
        }
        if let Some(ih) = &self.info_hash_v2 {
            out.push_str(sep);
            out.push_str("xt=");
            out.push_str(BTMH_SHA256_PREFIX);
            out.push_str(&ih.to_hex());
        }
        if let Some(dn) = &self.display_name {
            out.push_str("&dn=");
            percent_encode(dn, &mut out);
        }
        for tr in &self.trackers {
            out.push_str("&tr=");
            percent_encode(tr, &mut out);
        }
        for pe in &self.peers {
            out.push_str("&x.pe=");
            percent_encode(pe, &mut out);
        }
        out
    }
}

impl From<Magnet> for MagnetLink {
    fn from(m: Magnet) -> Self {
        Self {
            info_hash: Some(m.info_hash),
            info_hash_v2: None,
            display_name: m.display_name,
            trackers: m.trackers,
            peers: m.peers,
        }
    }
}

impl fmt::Display for MagnetLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_uri())
    }
}

/// What one pass over a magnet URI finds.
struct Parsed {
    info_hash: Option<InfoHash>,
    /// The first SHA2-256 `urn:btmh:` topic, or why it is malformed.
    info_hash_v2: Option<Result<InfoHashV2, MagnetError>>,
    display_name: Option<String>,
    trackers: Vec<String>,
    peers: Vec<String>,
}

impl Magnet {
    /// Parses a magnet URI (BEP 9).
    ///
    /// # Errors
    /// [`MagnetError`]: too long, not `magnet:?`, no or bad `urn:btih:` info-hash (a v2-only
    /// magnet has none: read it with [`MagnetLink::parse`]), or a value with bad
    /// percent-encoding or invalid UTF-8.
    pub fn parse(uri: &str) -> Result<Self, MagnetError> {
        let parsed = parse_uri(uri)?;
        Ok(Self {
            info_hash: parsed.info_hash.ok_or(MagnetError::MissingInfoHash)?,
            display_name: parsed.display_name,
            trackers: parsed.trackers,
            peers: parsed.peers,
        })
    }

    /// Formats this magnet as a URI: `xt` (lowercase hex), then `dn`, every `tr`, every `x.pe`,
    /// each value percent-encoded (everything but RFC 3986 unreserved characters).
    #[must_use]
    pub fn to_uri(&self) -> String {
        let mut out = String::from("magnet:?xt=urn:btih:");
        out.push_str(&self.info_hash.to_hex());
        if let Some(dn) = &self.display_name {
            out.push_str("&dn=");
            percent_encode(dn, &mut out);
        }
        for tr in &self.trackers {
            out.push_str("&tr=");
            percent_encode(tr, &mut out);
        }
        for pe in &self.peers {
            out.push_str("&x.pe=");
            percent_encode(pe, &mut out);
        }
        out
    }
}

/// Parses the parameters of a magnet URI.
fn parse_uri(uri: &str) -> Result<Parsed, MagnetError> {
    if uri.len() > MAX_MAGNET_URI_LEN {
        return Err(MagnetError::TooLong {
            len: uri.len(),
            limit: MAX_MAGNET_URI_LEN,
        });
    }
    let query = uri
        .get(..8)
        .filter(|scheme| scheme.eq_ignore_ascii_case("magnet:?"))
        .and_then(|_| uri.get(8..))
        .ok_or(MagnetError::NotMagnet)?;
    let mut info_hash = None;
    let mut info_hash_v2 = None;
    let mut display_name = None;
    let mut trackers = Vec::new();
    let mut peers = Vec::new();
    for pair in query.split('&') {
        let (key, raw) = pair.split_once('=').unwrap_or((pair, ""));
        let Some(param) = Param::from_key(key) else {
            continue;
        };
        match param {
            Param::ExactTopic if info_hash.is_none() || info_hash_v2.is_none() => {
                let value = decode_value(raw, param)?;
                if let Some(hash) = strip_prefix_ignore_case(&value, "urn:btih:") {
                    if info_hash.is_none() {
                        info_hash = Some(InfoHash::from_text(hash)?);
                    }
                } else if let Some(hex) = strip_prefix_ignore_case(&value, BTMH_SHA256_PREFIX)
                    && info_hash_v2.is_none()
                {
                    info_hash_v2 =
                        Some(InfoHashV2::from_hex(hex).ok_or(MagnetError::BadInfoHashV2));
                }
            }
            Param::DisplayName if display_name.is_none() => {
                display_name = Some(decode_value(raw, param)?).filter(|v| !v.is_empty());
            }
            Param::Tracker if trackers.len() < MAX_MAGNET_TRACKERS => {
                let value = decode_value(raw, param)?;
                if !value.is_empty() {
                    trackers.push(value);
                }
            }
            Param::Peer if peers.len() < MAX_MAGNET_PEERS => {
                let value = decode_value(raw, param)?;
                if !value.is_empty() {
                    peers.push(value);
                }
            }
            _ => {}
        }
    }
    Ok(Parsed {
        info_hash,
        info_hash_v2,
        display_name,
        trackers,
        peers,
    })
}

impl fmt::Display for Magnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_uri())
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// Percent-decodes `raw` (`+` is a space) into UTF-8.
fn decode_value(raw: &str, param: Param) -> Result<String, MagnetError> {
    let mut out = Vec::with_capacity(raw.len());
    percent::decode(raw.as_bytes(), &mut out).map_err(|percent::BadEscape| {
        MagnetError::BadPercentEncoding {
            param: param.name(),
        }
    })?;
    String::from_utf8(out).map_err(|_| MagnetError::NotUtf8 {
        param: param.name(),
    })
}

/// Appends `value` percent-encoded: RFC 3986 unreserved characters stay, every other byte
/// becomes `%XX`.
fn percent_encode(value: &str, out: &mut String) {
    percent::encode(value.as_bytes(), out);
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "c12fe1c06bba254a9dc9f519b335aa7c1367a88a";

    #[test]
    fn bep9_minimal_vector() {
        let m = Magnet::parse(&format!("magnet:?xt=urn:btih:{HEX}")).unwrap();
        assert_eq!(m.info_hash.to_hex(), HEX);
        assert_eq!(m.display_name, None);
        assert!(m.trackers.is_empty() && m.peers.is_empty());
    }

    #[test]
    fn bep9_full_vector() {
        let uri = format!(
            "magnet:?xt=urn:btih:{}&dn=Ubuntu+22.04%20desktop&tr=http%3A%2F%2Ftracker.example%3A80%2Fannounce\
             &tr=udp://t2.example:6969&x.pe=10.0.0.1:6881&x.pe=%5B2001%3Adb8%3A%3A1%5D%3A6881&ws=http://w.example/",
            HEX.to_uppercase()
        );
        let m = Magnet::parse(&uri).unwrap();
        assert_eq!(m.info_hash.to_hex(), HEX);
        assert_eq!(m.display_name.as_deref(), Some("Ubuntu 22.04 desktop"));
        assert_eq!(
            m.trackers,
            [
                "http://tracker.example:80/announce",
                "udp://t2.example:6969"
            ]
        );
        assert_eq!(m.peers, ["10.0.0.1:6881", "[2001:db8::1]:6881"]);
    }

    #[test]
    fn base32_info_hash() {
        let m = Magnet::parse(&format!("magnet:?xt=urn:btih:{}", "A".repeat(32))).unwrap();
        assert_eq!(m.info_hash, InfoHash([0; 20]));
    }

    #[test]
    fn numbered_params_and_v2_xt() {
        let uri = format!(
            "MAGNET:?xt.1=urn:btmh:1220abcd&xt.2=urn:btih:{HEX}&tr.1=http://a/&tr.2=http://b/"
        );
        let m = Magnet::parse(&uri).unwrap();
        assert_eq!(m.info_hash.to_hex(), HEX);
        assert_eq!(m.trackers, ["http://a/", "http://b/"]);
    }

    #[test]
    fn m11_missing_or_bad_xt_rejected() {
        assert_eq!(
            Magnet::parse("magnet:?dn=x"),
            Err(MagnetError::MissingInfoHash)
        );
        assert_eq!(
            Magnet::parse("magnet:?xt=urn:btmh:1220abcd"),
            Err(MagnetError::MissingInfoHash)
        );
        assert!(matches!(
            Magnet::parse("magnet:?xt=urn:btih:0123"),
            Err(MagnetError::BadInfoHash(crate::ParseHashError::BadLength {
                got: 4
            }))
        ));
        let bad32 = format!("magnet:?xt=urn:btih:{}", "1".repeat(32));
        assert_eq!(
            Magnet::parse(&bad32),
            Err(MagnetError::BadInfoHash(
                crate::ParseHashError::BadCharacter
            ))
        );
        assert_eq!(Magnet::parse("http://x"), Err(MagnetError::NotMagnet));
        assert_eq!(Magnet::parse(""), Err(MagnetError::NotMagnet));
    }

    #[test]
    fn m11_tracker_flood_capped() {
        let mut uri = format!("magnet:?xt=urn:btih:{HEX}");
        for i in 0..10_000 {
            uri.push_str(&format!("&tr=u{i}"));
            if uri.len() > MAX_MAGNET_URI_LEN - 100 {
                break;
            }
        }
        let m = Magnet::parse(&uri).unwrap();
        assert_eq!(m.trackers.len(), MAX_MAGNET_TRACKERS);
        let long = format!("{uri}{}", "&tr=x".repeat(MAX_MAGNET_URI_LEN / 5));
        assert!(matches!(
            Magnet::parse(&long),
            Err(MagnetError::TooLong { .. })
        ));
    }

    #[test]
    fn bad_percent_and_utf8_rejected() {
        let uri = format!("magnet:?xt=urn:btih:{HEX}&dn=%zz");
        assert_eq!(
            Magnet::parse(&uri),
            Err(MagnetError::BadPercentEncoding { param: "dn" })
        );
        let uri = format!("magnet:?xt=urn:btih:{HEX}&tr=%f");
        assert_eq!(
            Magnet::parse(&uri),
            Err(MagnetError::BadPercentEncoding { param: "tr" })
        );
        let uri = format!("magnet:?xt=urn:btih:{HEX}&dn=%ff%fe");
        assert_eq!(
            Magnet::parse(&uri),
            Err(MagnetError::NotUtf8 { param: "dn" })
        );
    }

    const HEX_V2: &str = "5a1d7b3fbb1d1b0e0e4fbe6b2d5a0b9c8d7e6f5a4b3c2d1e0f1a2b3c4d5e6f70";

    #[test]
    fn bep52_v2_only_magnet() {
        let uri = format!("magnet:?xt=urn:btmh:1220{HEX_V2}&dn=v2");
        let m = MagnetLink::parse(&uri).unwrap();
        assert_eq!(m.info_hash, None);
        assert_eq!(m.info_hash_v2.unwrap().to_hex(), HEX_V2);
        assert_eq!(m.swarm_id().to_hex(), HEX_V2[..40]);
        assert_eq!(m.to_uri(), uri);
        assert_eq!(Magnet::parse(&uri), Err(MagnetError::MissingInfoHash));
    }

    #[test]
    fn bep52_hybrid_magnet_carries_both_topics() {
        let uri = format!(
            "magnet:?xt=urn:btih:{HEX}&xt=urn:btmh:1220{}&dn=h&tr=http%3A%2F%2Ft%2F",
            HEX_V2.to_uppercase()
        );
        let m = MagnetLink::parse(&uri).unwrap();
        assert_eq!(m.info_hash.unwrap().to_hex(), HEX);
        assert_eq!(m.info_hash_v2.unwrap().to_hex(), HEX_V2);
        assert_eq!(m.swarm_id().to_hex(), HEX);
        assert_eq!(MagnetLink::parse(&m.to_uri()).unwrap(), m);
        assert!(m.to_uri().starts_with(&format!(
            "magnet:?xt=urn:btih:{HEX}&xt=urn:btmh:1220{HEX_V2}&dn=h"
        )));
        // The v1 view of the same URI ignores the v2 topic.
        assert_eq!(Magnet::parse(&uri).unwrap().info_hash.to_hex(), HEX);
        let v1 = Magnet::parse(&format!("magnet:?xt=urn:btih:{HEX}")).unwrap();
        assert_eq!(MagnetLink::from(v1).info_hash_v2, None);
    }

    #[test]
    fn bad_v2_topics() {
        for bad in [
            "urn:btmh:1220abcd",
            &format!("urn:btmh:1220{HEX_V2}00"),
            &format!("urn:btmh:1220{}", "g".repeat(64)),
        ] {
            assert_eq!(
                MagnetLink::parse(&format!("magnet:?xt={bad}")),
                Err(MagnetError::BadInfoHashV2),
                "{bad}"
            );
        }
        // Another multihash function (0x13 = SHA-512) is ignored.
        assert_eq!(
            MagnetLink::parse(&format!("magnet:?xt=urn:btmh:1340{}", "ab".repeat(64))),
            Err(MagnetError::MissingTopic)
        );
        assert_eq!(
            MagnetLink::parse("magnet:?dn=x"),
            Err(MagnetError::MissingTopic)
        );
    }

    #[test]
    fn uri_round_trip() {
        let m = Magnet {
            info_hash: InfoHash([0x5a; 20]),
            display_name: Some("a b&c=d/é+%".to_owned()),
            trackers: vec!["http://t.example/announce?x=1&y=2".to_owned()],
            peers: vec!["[::1]:6881".to_owned()],
        };
        let uri = m.to_uri();
        assert!(uri.starts_with("magnet:?xt=urn:btih:5a5a"));
        assert!(uri.contains("&dn=a%20b%26c%3Dd%2F%C3%A9%2B%25"));
        assert_eq!(Magnet::parse(&uri).unwrap(), m);
        assert_eq!(m.to_string(), uri);
    }
}
