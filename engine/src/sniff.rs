//! Tells protocols apart by the first bytes a client sends, so one TCP port carries them all.
//!
//! Adding a protocol is one entry in [`SIGNATURES`].

use seednode_wire::peer::PROTOCOL_PREFIX;

/// A protocol spoken on the shared port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// The BitTorrent peer wire (BEP 3 handshake `\x13BitTorrent protocol`).
    PeerWire,
    /// HTTP/1.x (request line starting with a method we serve).
    Http,
    /// This node's upload framing (`UPLOAD_TORRENT:`, `UPLOAD_FILE `, `UPLOAD_RESUME `;
    /// `seednode_wire::upload`).
    Upload,
}

/// What the bytes so far say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sniff {
    /// Consistent with at least one protocol; read more.
    NeedMore,
    /// This protocol.
    Is(Protocol),
    /// No protocol starts like this: close.
    Unknown,
}

/// Each protocol's fixed opening bytes.
const SIGNATURES: &[(&[u8], Protocol)] = &[
    (PROTOCOL_PREFIX, Protocol::PeerWire),
    (b"GET ", Protocol::Http),
    (b"HEAD ", Protocol::Http),
    (b"POST ", Protocol::Http),
    (b"PUT ", Protocol::Http),
    (b"DELETE ", Protocol::Http),
    (b"OPTIONS ", Protocol::Http),
    (seednode_wire::upload::TORRENT_PREFIX, Protocol::Upload),
    (seednode_wire::upload::FILE_PREFIX, Protocol::Upload),
    (seednode_wire::upload::RESUME_PREFIX, Protocol::Upload),
];

/// Classifies a connection by the bytes received so far.
pub(crate) fn sniff(buf: &[u8]) -> Sniff {
    let mut need_more = false;
    for (sig, proto) in SIGNATURES {
        let n = buf.len().min(sig.len());
        if buf[..n] == sig[..n] {
            if buf.len() >= sig.len() {
                return Sniff::Is(*proto);
            }
            need_more = true;
        }
    }
    if need_more {
        Sniff::NeedMore
    } else {
        Sniff::Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_handshake_from_http() {
        assert_eq!(sniff(b""), Sniff::NeedMore);
        assert_eq!(sniff(b"\x13Bit"), Sniff::NeedMore);
        assert_eq!(
            sniff(b"\x13BitTorrent protocol\0\0"),
            Sniff::Is(Protocol::PeerWire)
        );
        assert_eq!(sniff(b"GE"), Sniff::NeedMore);
        assert_eq!(
            sniff(b"GET /announce?x HTTP/1.1"),
            Sniff::Is(Protocol::Http)
        );
        assert_eq!(sniff(b"HEAD / HTTP/1.0"), Sniff::Is(Protocol::Http));
        assert_eq!(sniff(b"DELETE /api/v1/x"), Sniff::Is(Protocol::Http));
        assert_eq!(sniff(b"DEL"), Sniff::NeedMore);
        assert_eq!(sniff(b"UPLOAD_"), Sniff::NeedMore);
        assert_eq!(sniff(b"UPLOAD_TORRENT:x"), Sniff::Is(Protocol::Upload));
        assert_eq!(sniff(b"UPLOAD_FILE t"), Sniff::Is(Protocol::Upload));
    }

    #[test]
    fn rejects_unknown_openings() {
        assert_eq!(sniff(b"\x12BitTorrent"), Sniff::Unknown);
        assert_eq!(sniff(b"\x13BitTorrent protocoX"), Sniff::Unknown);
        assert_eq!(sniff(b"GOT "), Sniff::Unknown);
        assert_eq!(sniff(b"\x16\x03\x01"), Sniff::Unknown);
    }
}
