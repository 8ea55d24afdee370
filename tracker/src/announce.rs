//! Parsing of HTTP announce requests (BEP 3 §Trackers, BEP 23 `compact`, BEP 7).

use std::net::IpAddr;

use seednode_wire::{InfoHash, PeerId};

use crate::limits::{DEFAULT_NUMWANT, MAX_NUMWANT, MAX_QUERY_LEN, MAX_QUERY_PARAMS};
use crate::query::{decode_20, pairs, parse_u64, percent_decode};

/// The `event` parameter of an announce (BEP 3; BEP 15 numbers them 0–3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AnnounceEvent {
    /// No event: a regular re-announce (`event` absent, empty or `empty`; UDP 0).
    #[default]
    None,
    /// The peer started the torrent (UDP 2).
    Started,
    /// The peer stopped the torrent and leaves the swarm (UDP 3).
    Stopped,
    /// The peer finished downloading (UDP 1).
    Completed,
}

impl AnnounceEvent {
    /// The BEP 15 number of this event.
    #[must_use]
    pub const fn to_udp(self) -> u32 {
        match self {
            Self::None => 0,
            Self::Completed => 1,
            Self::Started => 2,
            Self::Stopped => 3,
        }
    }

    /// The event a BEP 15 number stands for, `None` for numbers outside 0–3.
    #[must_use]
    pub const fn from_udp(n: u32) -> Option<Self> {
        match n {
            0 => Some(Self::None),
            1 => Some(Self::Completed),
            2 => Some(Self::Started),
            3 => Some(Self::Stopped),
            _ => None,
        }
    }

    /// The HTTP `event` value, `None` for a regular announce.
    #[must_use]
    pub const fn as_http(self) -> Option<&'static str> {
        match self {
            Self::None => None,
            Self::Started => Some("started"),
            Self::Stopped => Some("stopped"),
            Self::Completed => Some("completed"),
        }
    }
}

/// A validated HTTP announce request (BEP 3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceRequest {
    /// Torrent announced.
    pub info_hash: InfoHash,
    /// The announcing peer's ID.
    pub peer_id: PeerId,
    /// TCP port the peer listens on, 1..=65535.
    pub port: u16,
    /// Bytes uploaded so far.
    pub uploaded: u64,
    /// Bytes downloaded so far.
    pub downloaded: u64,
    /// Bytes left to download; 0 means the peer is a seeder.
    pub left: u64,
    /// The `event` parameter.
    pub event: AnnounceEvent,
    /// Peers wanted, already clamped to [`MAX_NUMWANT`].
    pub numwant: usize,
    /// `compact=0` asks for the dictionary model (BEP 3 `peers` list); anything else, or no
    /// `compact`, gets compact peers (BEP 23 suggests compact by default).
    pub compact: bool,
    /// `no_peer_id=1`: leave `peer id` out of dictionary-model peers. Parsed for completeness;
    /// this tracker stores no peer IDs and always answers as if it were set (see [`crate::http`]).
    pub no_peer_id: bool,
    /// The `ip` parameter when it is an IP literal. Used only when the tracker is configured to
    /// trust it ([`crate::TrackerConfig::trust_ip_param`]); otherwise the peer's address is the
    /// socket address (SECURITY.md rule 6, TH3). DNS names are ignored.
    pub ip: Option<IpAddr>,
}

/// Why an announce or scrape was refused; the text becomes the `failure reason` (BEP 3) or the
/// BEP 15 error message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnnounceError {
    /// A required parameter is absent.
    #[error("missing parameter `{0}`")]
    Missing(&'static str),
    /// A parameter's value does not parse or is out of range.
    #[error("invalid parameter `{0}`")]
    Invalid(&'static str),
    /// The query string is longer than its limit or has too many parameters.
    #[error("request too large")]
    TooLarge,
    /// The tracker does not accept new torrents or peers (store full).
    #[error("tracker is full")]
    Full,
    /// The torrent is not hosted here, not on the allow-list, or on the deny-list.
    #[error("torrent not registered with this tracker")]
    UnknownTorrent,
    /// A scrape named more info-hashes than the limit.
    #[error("too many info_hash values, limit {limit}")]
    TooManyInfoHashes {
        /// [`crate::limits::MAX_SCRAPE_INFO_HASHES`].
        limit: usize,
    },
    /// A scrape named no info-hash: full scrapes are not served.
    #[error("full scrape is not supported")]
    FullScrape,
}

fn number(value: &[u8], name: &'static str) -> Result<u64, AnnounceError> {
    parse_u64(value).ok_or(AnnounceError::Invalid(name))
}

/// Parses the `ip` value as an IP literal (percent-decoded first); `None` for DNS names and
/// garbage.
fn ip_literal(value: &[u8]) -> Option<IpAddr> {
    let mut buf = Vec::with_capacity(value.len().min(64));
    if value.len() > 64 || percent_decode(value, &mut buf).is_err() {
        return None;
    }
    std::str::from_utf8(&buf).ok()?.parse().ok()
}

impl AnnounceRequest {
    /// Parses the query string of `GET /announce?...` (the bytes after `?`).
    ///
    /// `info_hash` and `peer_id` must percent-decode to exactly 20 bytes; `port` must be
    /// 1..=65535; `uploaded`, `downloaded` and `left` are decimal u64 (missing counts as 0);
    /// `numwant` is clamped to [`MAX_NUMWANT`] and a value that does not parse (`-1`, `abc`)
    /// falls back to [`DEFAULT_NUMWANT`]; `ip` is kept only as a literal; unknown parameters
    /// (`key`, `trackerid`, `supportcrypto`, ...) are ignored; a repeated parameter's last value
    /// wins. Non-UTF-8 bytes are fine anywhere.
    ///
    /// # Errors
    /// [`AnnounceError`] naming the missing or invalid parameter, or `TooLarge` for a query over
    /// [`MAX_QUERY_LEN`] bytes (refused before it is scanned) or [`MAX_QUERY_PARAMS`] pairs.
    pub fn parse_query(query: &[u8]) -> Result<Self, AnnounceError> {
        if query.len() > MAX_QUERY_LEN {
            return Err(AnnounceError::TooLarge);
        }
        let mut info_hash = None;
        let mut peer_id = None;
        let mut port = None;
        let (mut uploaded, mut downloaded, mut left) = (0, 0, 0);
        let mut event = AnnounceEvent::None;
        let mut numwant = DEFAULT_NUMWANT;
        let mut compact = true;
        let mut no_peer_id = false;
        let mut ip = None;
        for (n, (key, value)) in pairs(query).enumerate() {
            if n >= MAX_QUERY_PARAMS {
                return Err(AnnounceError::TooLarge);
            }
            match key {
                b"info_hash" => {
                    let raw = decode_20(value).map_err(|()| AnnounceError::Invalid("info_hash"))?;
                    info_hash = Some(InfoHash(raw));
                }
                b"peer_id" => {
                    let raw = decode_20(value).map_err(|()| AnnounceError::Invalid("peer_id"))?;
                    peer_id = Some(PeerId(raw));
                }
                b"port" => {
                    let p = number(value, "port")?;
                    port = Some(
                        u16::try_from(p)
                            .ok()
                            .filter(|&p| p != 0)
                            .ok_or(AnnounceError::Invalid("port"))?,
                    );
                }
                b"uploaded" => uploaded = number(value, "uploaded")?,
                b"downloaded" => downloaded = number(value, "downloaded")?,
                b"left" => left = number(value, "left")?,
                b"event" => {
                    event = match value {
                        b"started" => AnnounceEvent::Started,
                        b"stopped" => AnnounceEvent::Stopped,
                        b"completed" => AnnounceEvent::Completed,
                        b"" | b"empty" => AnnounceEvent::None,
                        _ => return Err(AnnounceError::Invalid("event")),
                    }
                }
                b"numwant" => {
                    numwant = parse_u64(value).map_or(DEFAULT_NUMWANT, |n| {
                        usize::try_from(n).unwrap_or(MAX_NUMWANT).min(MAX_NUMWANT)
                    });
                }
                b"compact" => compact = value != b"0",
                b"no_peer_id" => no_peer_id = value != b"0",
                b"ip" => ip = ip_literal(value),
                _ => {}
            }
        }
        Ok(Self {
            info_hash: info_hash.ok_or(AnnounceError::Missing("info_hash"))?,
            peer_id: peer_id.ok_or(AnnounceError::Missing("peer_id"))?,
            port: port.ok_or(AnnounceError::Missing("port"))?,
            uploaded,
            downloaded,
            left,
            event,
            numwant,
            compact,
            no_peer_id,
            ip,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IH: &str = "%124Vx%9A%BC%DE%F1%23Eg%89%AB%CD%EF%124Vx%9A";

    fn query(extra: &str) -> String {
        format!("info_hash={IH}&peer_id=-SN0001-abcdefghijkl&port=6881&left=0{extra}")
    }

    #[test]
    fn parses_bep3_announce() {
        let req = AnnounceRequest::parse_query(
            query("&uploaded=5&downloaded=7&event=started&numwant=10&compact=1").as_bytes(),
        )
        .unwrap();
        assert_eq!(
            req.info_hash.to_hex(),
            "123456789abcdef123456789abcdef123456789a"
        );
        assert_eq!(&req.peer_id.0, b"-SN0001-abcdefghijkl");
        assert_eq!(
            (req.port, req.uploaded, req.downloaded, req.left),
            (6881, 5, 7, 0)
        );
        assert_eq!(req.event, AnnounceEvent::Started);
        assert_eq!(req.numwant, 10);
        assert!(req.compact);
    }

    #[test]
    fn rejects_info_hash_of_wrong_length() {
        let q = "info_hash=%12%34&peer_id=-SN0001-abcdefghijkl&port=1";
        assert_eq!(
            AnnounceRequest::parse_query(q.as_bytes()),
            Err(AnnounceError::Invalid("info_hash"))
        );
        let q = query("").replace("%12", "%G1");
        assert_eq!(
            AnnounceRequest::parse_query(q.as_bytes()),
            Err(AnnounceError::Invalid("info_hash"))
        );
    }

    #[test]
    fn rejects_bad_ports() {
        for p in ["0", "65536", "-1", "x"] {
            let q = query("").replace("port=6881", &format!("port={p}"));
            assert_eq!(
                AnnounceRequest::parse_query(q.as_bytes()),
                Err(AnnounceError::Invalid("port"))
            );
        }
        let q = query("").replace("&port=6881", "");
        assert_eq!(
            AnnounceRequest::parse_query(q.as_bytes()),
            Err(AnnounceError::Missing("port"))
        );
    }

    #[test]
    fn clamps_numwant() {
        for (n, want) in [
            ("2147483647", MAX_NUMWANT),
            ("-1", DEFAULT_NUMWANT),
            ("abc", DEFAULT_NUMWANT),
        ] {
            let req =
                AnnounceRequest::parse_query(query(&format!("&numwant={n}")).as_bytes()).unwrap();
            assert_eq!(req.numwant, want, "numwant={n}");
        }
    }

    #[test]
    fn rejects_oversized_query() {
        let q = query(&"&x=y".repeat(MAX_QUERY_LEN));
        assert_eq!(
            AnnounceRequest::parse_query(q.as_bytes()),
            Err(AnnounceError::TooLarge)
        );
        let q = query(&"&x".repeat(MAX_QUERY_PARAMS));
        assert_eq!(
            AnnounceRequest::parse_query(q.as_bytes()),
            Err(AnnounceError::TooLarge)
        );
    }

    #[test]
    fn keeps_ip_literal_only_and_accepts_non_utf8() {
        let req =
            AnnounceRequest::parse_query(query("&ip=10.0.0.1&junk=%FF%FE").as_bytes()).unwrap();
        assert_eq!(req.ip, Some("10.0.0.1".parse().unwrap()));
        let req = AnnounceRequest::parse_query(query("&ip=victim.example").as_bytes()).unwrap();
        assert_eq!(req.ip, None);
        let req = AnnounceRequest::parse_query(query("&ip=%3A%3A1").as_bytes()).unwrap();
        assert_eq!(req.ip, Some("::1".parse().unwrap()));
        // Raw (unescaped) high bytes in info_hash are 20 bytes too.
        let mut q = b"info_hash=".to_vec();
        q.extend_from_slice(&[0xfe; 20]);
        q.extend_from_slice(b"&peer_id=-SN0001-abcdefghijkl&port=1&\xff\x00=\x80");
        let req = AnnounceRequest::parse_query(&q).unwrap();
        assert_eq!(req.info_hash, InfoHash([0xfe; 20]));
    }

    #[test]
    fn parses_dictionary_model_flags_and_events() {
        let req =
            AnnounceRequest::parse_query(query("&compact=0&no_peer_id=1").as_bytes()).unwrap();
        assert!(!req.compact && req.no_peer_id);
        for (text, event) in [
            ("", AnnounceEvent::None),
            ("empty", AnnounceEvent::None),
            ("started", AnnounceEvent::Started),
            ("stopped", AnnounceEvent::Stopped),
            ("completed", AnnounceEvent::Completed),
        ] {
            let req =
                AnnounceRequest::parse_query(query(&format!("&event={text}")).as_bytes()).unwrap();
            assert_eq!(req.event, event);
            if let Some(t) = event.as_http() {
                assert_eq!(t, text);
            }
            assert_eq!(AnnounceEvent::from_udp(event.to_udp()), Some(event));
        }
        assert_eq!(
            AnnounceRequest::parse_query(query("&event=paused").as_bytes()),
            Err(AnnounceError::Invalid("event"))
        );
        assert_eq!(AnnounceEvent::from_udp(4), None);
    }

    #[test]
    fn rejects_one_mebibyte_query_without_scanning() {
        let q = vec![b'a'; 1 << 20];
        assert_eq!(
            AnnounceRequest::parse_query(&q),
            Err(AnnounceError::TooLarge)
        );
    }

    #[test]
    fn missing_peer_id_and_info_hash_are_named() {
        let q = query("").replace("&peer_id=-SN0001-abcdefghijkl", "");
        assert_eq!(
            AnnounceRequest::parse_query(q.as_bytes()),
            Err(AnnounceError::Missing("peer_id"))
        );
        assert_eq!(
            AnnounceRequest::parse_query(b"peer_id=-SN0001-abcdefghijkl&port=1"),
            Err(AnnounceError::Missing("info_hash"))
        );
        assert_eq!(
            AnnounceRequest::parse_query(query("&left=-5").as_bytes()),
            Err(AnnounceError::Invalid("left"))
        );
    }
}
