//! Tracker URLs from a torrent's `announce` / `announce-list` (BEP 12): `http://`, `https://`
//! and `udp://host:port` (BEP 15). Other schemes (`wss://`, typos) are not usable and are
//! skipped by the client.

use std::net::Ipv6Addr;

use crate::limits::MAX_TRACKER_URL_LEN;

/// A usable tracker URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TrackerUrl {
    /// `http://` or `https://`: the engine GETs the announce URL built from it (TLS is the
    /// engine's business).
    Http {
        /// The URL as given, without any `#fragment`.
        url: String,
    },
    /// `udp://host:port[/path]`: BEP 15. The path (BEP 41 URL data) is not sent.
    Udp {
        /// The URL as given.
        url: String,
        /// Host name or IP literal (IPv6 without brackets).
        host: String,
        /// UDP port, non-zero.
        port: u16,
    },
}

impl TrackerUrl {
    /// Parses a tracker URL; `None` for anything unusable (other schemes, no host, a UDP URL
    /// without a port, longer than [`MAX_TRACKER_URL_LEN`], whitespace or control characters).
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        if text.is_empty()
            || text.len() > MAX_TRACKER_URL_LEN
            || text.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return None;
        }
        let (scheme, rest) = text.split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        // Userinfo is not supported in tracker URLs.
        if authority.is_empty() || authority.contains('@') {
            return None;
        }
        match scheme.as_str() {
            "http" | "https" => {
                let url = text.split('#').next().unwrap_or(text).to_owned();
                Some(Self::Http { url })
            }
            "udp" => {
                let (host, port) = split_host_port(authority)?;
                let port: u16 = port.parse().ok().filter(|&p| p != 0)?;
                Some(Self::Udp {
                    url: text.to_owned(),
                    host: host.to_owned(),
                    port,
                })
            }
            _ => None,
        }
    }

    /// The URL text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            Self::Http { url } | Self::Udp { url, .. } => url,
        }
    }
}

/// Splits `host:port` or `[v6]:port`; the host must be non-empty.
fn split_host_port(authority: &str) -> Option<(&str, &str)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        host.parse::<Ipv6Addr>().ok()?;
        let port = after.strip_prefix(':')?;
        Some((host, port))
    } else {
        let (host, port) = authority.rsplit_once(':')?;
        (!host.is_empty() && !host.contains(':')).then_some((host, port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_http_and_udp_urls() {
        assert_eq!(
            TrackerUrl::parse(" http://t.example:8080/announce?passkey=x#frag "),
            Some(TrackerUrl::Http {
                url: "http://t.example:8080/announce?passkey=x".into()
            })
        );
        assert!(matches!(
            TrackerUrl::parse("HTTPS://t.example/announce"),
            Some(TrackerUrl::Http { .. })
        ));
        assert_eq!(
            TrackerUrl::parse("udp://tracker.example.org:6969/announce"),
            Some(TrackerUrl::Udp {
                url: "udp://tracker.example.org:6969/announce".into(),
                host: "tracker.example.org".into(),
                port: 6969
            })
        );
        let Some(TrackerUrl::Udp { host, port, .. }) = TrackerUrl::parse("udp://[2001:db8::1]:80")
        else {
            panic!("v6 literal");
        };
        assert_eq!((host.as_str(), port), ("2001:db8::1", 80));
    }

    #[test]
    fn refuses_unusable_urls() {
        for bad in [
            "",
            "wss://t.example/announce",
            "udp://t.example",
            "udp://t.example:0",
            "udp://t.example:70000",
            "udp://:6969",
            "udp://[zz]:1",
            "udp://2001:db8::1:80",
            "http://",
            "http://user@t.example/",
            "http://t.example/a b",
            "tracker.example:6969",
        ] {
            assert_eq!(TrackerUrl::parse(bad), None, "{bad}");
        }
        let long = format!("http://t.example/{}", "a".repeat(MAX_TRACKER_URL_LEN));
        assert_eq!(TrackerUrl::parse(&long), None);
    }
}
