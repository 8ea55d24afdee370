//! The pure parts of the HTTP front door: `Range` and `If-Range` (RFC 9110 §14), validators
//! (`ETag`, `Last-Modified`), webseed paths (BEP 19) matched against a torrent's own file list,
//! bearer tokens (RFC 6750 §2.1), `Host` checks against DNS rebinding, and escaping for HTML
//! and JSON. The reactor's `front` module routes requests and calls these.

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What a `Range` header asks of a representation of `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RangeAsk {
    /// No usable range: send it whole (200). Also for several ranges, which the node does not
    /// serve as `multipart/byteranges` (RFC 9110 §14.2 lets a server ignore `Range`).
    Whole,
    /// Bytes `start..=end` (206).
    Part {
        /// First byte.
        start: u64,
        /// Last byte, inclusive.
        end: u64,
    },
    /// A range outside the representation (416 with `Content-Range: bytes */len`).
    Unsatisfiable,
}

/// Parses a `Range` header (RFC 9110 §14.1.2) for a representation of `len` bytes: one
/// `bytes=first-last`, `bytes=first-` or `bytes=-suffix` range.
pub(crate) fn parse_range(header: &str, len: u64) -> RangeAsk {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return RangeAsk::Whole;
    };
    if spec.contains(',') {
        return RangeAsk::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeAsk::Whole;
    };
    let num = |s: &str| -> Option<u64> {
        let s = s.trim();
        (!s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    match (first.trim().is_empty(), num(first), num(last)) {
        // bytes=-N: the last N bytes.
        (true, _, Some(suffix)) => {
            if suffix == 0 || len == 0 {
                RangeAsk::Unsatisfiable
            } else {
                RangeAsk::Part {
                    start: len.saturating_sub(suffix),
                    end: len - 1,
                }
            }
        }
        (false, Some(start), last) if last.is_some() || last_is_empty(last_str(spec)) => {
            if start >= len {
                return RangeAsk::Unsatisfiable;
            }
            let end = last.map_or(len - 1, |l| l.min(len - 1));
            if end < start {
                // `first > last` is syntactically invalid: the header is ignored (§14.1.1).
                return RangeAsk::Whole;
            }
            RangeAsk::Part { start, end }
        }
        _ => RangeAsk::Whole,
    }
}

fn last_str(spec: &str) -> &str {
    spec.split_once('-').map_or("", |(_, l)| l)
}

fn last_is_empty(s: &str) -> bool {
    s.trim().is_empty()
}

/// A strong validator for a file of `len` bytes last modified at `mtime`: changes whenever
/// either does (as nginx's `"mtime-len"`).
pub(crate) fn etag(mtime: SystemTime, len: u64) -> String {
    let secs = mtime
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    format!("\"{secs:x}-{len:x}\"")
}

/// `If-Range` (RFC 9110 §13.1.5): the range is served only when the validator still matches
/// (an entity tag exactly, or a date equal to `Last-Modified`).
pub(crate) fn if_range_holds(if_range: Option<&str>, etag: &str, last_modified: &str) -> bool {
    match if_range.map(str::trim) {
        None => true,
        Some(v) if v.starts_with('"') || v.starts_with("W/") => v == etag,
        Some(v) => v == last_modified,
    }
}

/// `time` as an HTTP date (RFC 9110 §5.6.7, IMF-fixdate).
pub(crate) fn http_date(time: SystemTime) -> String {
    httpdate::fmt_http_date(time)
}

/// Decodes one percent-encoded path segment (RFC 3986 §2.1); `None` when an escape is broken,
/// the result is not UTF-8, or it names `.`, `..`, holds a `/`, `\` or NUL (never a path to
/// walk: segments are only compared with the torrent's own names).
pub(crate) fn decode_segment(segment: &str) -> Option<String> {
    // Path segments decode `%XX` only: `+` is a literal plus here, unlike in a query.
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hi = seednode_wire::percent::hex_val(*bytes.get(i + 1)?)?;
            let lo = seednode_wire::percent::hex_val(*bytes.get(i + 2)?)?;
            out.push((hi << 4) | lo);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    let s = String::from_utf8(out).ok()?;
    if s.is_empty() || s == "." || s == ".." || s.contains(['/', '\\', '\0']) {
        return None;
    }
    Some(s)
}

/// The webseed path after `/webseed/<info-hash>/` as decoded segments (BEP 19: the torrent's
/// `name`, then for a multi-file torrent the file's path); `None` for any segment that is not a
/// plain name.
pub(crate) fn webseed_segments(rest: &str) -> Option<Vec<String>> {
    rest.split('/').map(decode_segment).collect()
}

/// The token of an `Authorization: Bearer <token>` header (RFC 6750 §2.1); `None` for any
/// other scheme or a malformed value.
pub(crate) fn bearer(header: Option<&str>) -> Option<&str> {
    let value = header?.trim();
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    (!token.is_empty()
        && token.len() <= MAX_BEARER_LEN
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b)))
    .then_some(token)
}

/// The client id and secret of an HTTP Basic credential (RFC 7617; `b64` is what follows
/// `Basic `), each form-urlencoded first as RFC 6749 §2.3.1 asks. `None` for anything
/// malformed or longer than [`MAX_BASIC_LEN`].
pub(crate) fn basic_credentials(b64: &str) -> Option<(String, String)> {
    use base64::Engine as _;
    let b64 = b64.trim();
    if b64.len() > MAX_BASIC_LEN {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (id, secret) = text.split_once(':')?;
    let decode = |s: &str| {
        let mut out = Vec::new();
        seednode_wire::percent::decode(s.as_bytes(), &mut out).ok()?;
        String::from_utf8(out).ok()
    };
    Some((decode(id)?, decode(secret)?))
}

/// Longest HTTP Basic credential looked at, base64 characters: a 12-digit client id and a
/// 64-digit secret take 104.
pub(crate) const MAX_BASIC_LEN: usize = 512;

/// Longest bearer token looked at (this node's are under 100 characters); longer ones are
/// refused without a lookup.
pub(crate) const MAX_BEARER_LEN: usize = 256;

/// Whether a `Host` header may reach the API and the status page: an IP literal (with or
/// without a port), `localhost`, or one of `allowed` (names the operator configured). A name
/// the operator did not configure is how DNS rebinding reaches a node on a private network,
/// so it gets 421.
pub(crate) fn host_allowed(host: Option<&str>, allowed: &[String]) -> bool {
    let Some(host) = host.map(str::trim) else {
        // HTTP/1.0 clients may omit it; nothing to rebind then.
        return true;
    };
    let name = if let Some(rest) = host.strip_prefix('[') {
        // [v6]:port
        match rest.split_once(']') {
            Some((ip, _)) => return ip.parse::<std::net::Ipv6Addr>().is_ok(),
            None => return false,
        }
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    name.parse::<IpAddr>().is_ok()
        || name.eq_ignore_ascii_case("localhost")
        || allowed.iter().any(|a| a.eq_ignore_ascii_case(name))
}

/// `text` escaped for HTML text and attribute values.
pub(crate) fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A human size: `1.5 GiB`.
pub(crate) fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_per_rfc_9110() {
        use RangeAsk::{Part, Unsatisfiable, Whole};
        let r = |h| parse_range(h, 1000);
        assert_eq!(r("bytes=0-499"), Part { start: 0, end: 499 });
        assert_eq!(
            r("bytes=500-"),
            Part {
                start: 500,
                end: 999
            }
        );
        assert_eq!(
            r("bytes=-100"),
            Part {
                start: 900,
                end: 999
            }
        );
        assert_eq!(r("bytes=-5000"), Part { start: 0, end: 999 });
        assert_eq!(
            r("bytes=900-5000"),
            Part {
                start: 900,
                end: 999
            }
        );
        assert_eq!(r("bytes=1000-"), Unsatisfiable);
        assert_eq!(r("bytes=-0"), Unsatisfiable);
        assert_eq!(r("bytes=5-1"), Whole);
        assert_eq!(r("bytes=0-1,5-6"), Whole);
        assert_eq!(r("items=0-1"), Whole);
        assert_eq!(r("bytes=a-b"), Whole);
        assert_eq!(r("bytes=99999999999999999999999-"), Whole);
        assert_eq!(r("bytes=-"), Whole);
        assert_eq!(parse_range("bytes=0-", 0), Unsatisfiable);
    }

    #[test]
    fn if_range_compares_validators_exactly() {
        let (e, d) = ("\"5f-10\"", "Sun, 06 Dec 2026 12:00:00 GMT");
        assert!(if_range_holds(None, e, d));
        assert!(if_range_holds(Some("\"5f-10\""), e, d));
        assert!(!if_range_holds(Some("\"5f-11\""), e, d));
        assert!(
            !if_range_holds(Some("W/\"5f-10\""), e, d),
            "weak never matches"
        );
        assert!(if_range_holds(Some(d), e, d));
        assert!(!if_range_holds(Some("Sat, 05 Dec 2026 12:00:00 GMT"), e, d));
    }

    #[test]
    fn webseed_segments_are_names_never_paths() {
        assert_eq!(
            webseed_segments("dir/a%20b.bin"),
            Some(vec!["dir".into(), "a b.bin".into()])
        );
        assert_eq!(webseed_segments("a+b"), Some(vec!["a+b".into()]));
        for bad in [
            "..", "a/../b", "%2e%2e", "a%2fb", "a%5cb", "%00", "a//b", "%zz", "%ff", ".",
        ] {
            assert_eq!(webseed_segments(bad), None, "{bad}");
        }
    }

    #[test]
    fn bearer_tokens_per_rfc_6750() {
        assert_eq!(bearer(Some("Bearer sn_ab_cd")), Some("sn_ab_cd"));
        assert_eq!(bearer(Some("bearer  sn_ab")), Some("sn_ab"));
        assert_eq!(bearer(Some("Basic dXNlcg==")), None);
        assert_eq!(bearer(Some("Bearer")), None);
        assert_eq!(bearer(Some("Bearer a b")), None);
        assert_eq!(bearer(None), None);
        let long = format!("Bearer {}", "a".repeat(MAX_BEARER_LEN + 1));
        assert_eq!(bearer(Some(&long)), None);
    }

    #[test]
    fn hosts_that_could_be_rebound_are_refused() {
        let allowed = vec!["seed.example.org".to_owned()];
        for ok in [
            "127.0.0.1:6881",
            "10.0.0.5",
            "[::1]:6881",
            "localhost:6881",
            "SEED.example.org",
        ] {
            assert!(host_allowed(Some(ok), &allowed), "{ok}");
        }
        assert!(host_allowed(None, &allowed));
        for bad in [
            "evil.example.com",
            "evil.example.com:6881",
            "[zz]:1",
            "[::1",
        ] {
            assert!(!host_allowed(Some(bad), &allowed), "{bad}");
        }
    }

    #[test]
    fn escapes_html_and_formats_sizes() {
        assert_eq!(
            html_escape("<script>\"a\"&'b'"),
            "&lt;script&gt;&quot;a&quot;&amp;&#39;b&#39;"
        );
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
    }

    #[test]
    fn validators_change_with_time_and_length() {
        let t = UNIX_EPOCH + Duration::from_secs(0x5f);
        assert_eq!(etag(t, 16), "\"5f-10\"");
        assert_eq!(http_date(t), "Thu, 01 Jan 1970 00:01:35 GMT");
    }
}
