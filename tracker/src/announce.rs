//! Parsing of HTTP announce requests (BEP 3 §Trackers, BEP 23 `compact`).

use seednode_wire::{InfoHash, PeerId};

use crate::limits::{DEFAULT_NUMWANT, MAX_NUMWANT, MAX_QUERY_LEN, MAX_QUERY_PARAMS};

/// The `event` parameter of an announce (BEP 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AnnounceEvent {
    /// No event: a regular re-announce.
    #[default]
    None,
    /// The peer started the torrent.
    Started,
    /// The peer stopped the torrent and leaves the swarm.
    Stopped,
    /// The peer finished downloading.
    Completed,
}

/// A validated HTTP announce request (BEP 3). The peer's address comes from the socket, never from
/// the `ip` parameter (SECURITY.md rule 6).
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
    /// `compact=0` asks for the dictionary model; we always answer compact (BEP 23 allows it).
    pub compact: bool,
}

/// Why an announce was refused; the text becomes the `failure reason` (BEP 3).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnnounceError {
    /// A required parameter is absent.
    #[error("missing parameter `{0}`")]
    Missing(&'static str),
    /// A parameter's value does not parse or is out of range.
    #[error("invalid parameter `{0}`")]
    Invalid(&'static str),
    /// The query string is longer than [`MAX_QUERY_LEN`] or has more than [`MAX_QUERY_PARAMS`]
    /// parameters.
    #[error("request too large")]
    TooLarge,
    /// The tracker does not accept new torrents (store full).
    #[error("tracker is full")]
    Full,
    /// The torrent is not hosted here.
    #[error("torrent not registered with this tracker")]
    UnknownTorrent,
}

/// Decodes `%XX` escapes and `+` into `out`, which is cleared first.
///
/// # Errors
/// `Err(())` for a truncated or non-hex escape.
fn percent_decode(input: &[u8], out: &mut Vec<u8>) -> Result<(), ()> {
    out.clear();
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'%' => {
                let hi = input.get(i + 1).and_then(|c| hex_val(*c)).ok_or(())?;
                let lo = input.get(i + 2).and_then(|c| hex_val(*c)).ok_or(())?;
                out.push((hi << 4) | lo);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(())
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn parse_u64(value: &[u8], name: &'static str) -> Result<u64, AnnounceError> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or(AnnounceError::Invalid(name))
}

fn decode_20(raw: &[u8], buf: &mut Vec<u8>, name: &'static str) -> Result<[u8; 20], AnnounceError> {
    percent_decode(raw, buf).map_err(|()| AnnounceError::Invalid(name))?;
    <[u8; 20]>::try_from(buf.as_slice()).map_err(|_| AnnounceError::Invalid(name))
}

impl AnnounceRequest {
    /// Parses the query string of `GET /announce?...` (the bytes after `?`).
    ///
    /// `info_hash` and `peer_id` must percent-decode to exactly 20 bytes; `port` must be
    /// 1..=65535; `uploaded`, `downloaded` and `left` are decimal u64 (missing counts as 0);
    /// `numwant` is clamped to [`MAX_NUMWANT`] and a value that does not parse falls back to
    /// [`DEFAULT_NUMWANT`]; `ip` is ignored. Unknown parameters are ignored.
    ///
    /// # Errors
    /// [`AnnounceError`] naming the missing or invalid parameter, or `TooLarge`.
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
        let mut buf = Vec::with_capacity(64);
        for (n, pair) in query.split(|&b| b == b'&').enumerate() {
            if n >= MAX_QUERY_PARAMS {
                return Err(AnnounceError::TooLarge);
            }
            let (key, value) = match pair.iter().position(|&b| b == b'=') {
                Some(eq) => (&pair[..eq], &pair[eq + 1..]),
                None => (pair, &b""[..]),
            };
            match key {
                b"info_hash" => {
                    info_hash = Some(InfoHash(decode_20(value, &mut buf, "info_hash")?));
                }
                b"peer_id" => peer_id = Some(PeerId(decode_20(value, &mut buf, "peer_id")?)),
                b"port" => {
                    let p = parse_u64(value, "port")?;
                    port = Some(
                        u16::try_from(p)
                            .ok()
                            .filter(|&p| p != 0)
                            .ok_or(AnnounceError::Invalid("port"))?,
                    );
                }
                b"uploaded" => uploaded = parse_u64(value, "uploaded")?,
                b"downloaded" => downloaded = parse_u64(value, "downloaded")?,
                b"left" => left = parse_u64(value, "left")?,
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
                    numwant = parse_u64(value, "numwant").map_or(DEFAULT_NUMWANT, |n| {
                        usize::try_from(n).unwrap_or(MAX_NUMWANT).min(MAX_NUMWANT)
                    });
                }
                b"compact" => compact = value != b"0",
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
    fn ignores_ip_parameter_and_non_utf8() {
        let req =
            AnnounceRequest::parse_query(query("&ip=10.0.0.1&junk=%FF%FE").as_bytes()).unwrap();
        assert_eq!(req.port, 6881);
    }
}
