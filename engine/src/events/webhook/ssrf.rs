//! SSRF rules for webhook URLs (SECURITY rule 11): a URL names its host; the node resolves it
//! itself, checks **every** address it resolves to, and connects only to the address it checked
//! ([`PinnedResolver`]): a DNS answer that changes between the check and the connect (DNS
//! rebinding) cannot move the connection, and redirects are never followed.
//!
//! The rules, applied at registration ([`check_registration`]) and again before every delivery:
//!
//! | Address scope ([`AddrScope`], after [`canonical_ip`]) | default | `allow_private` |
//! |---|---|---|
//! | global | allowed | allowed |
//! | loopback, private (RFC 1918, ULA), CGNAT shared (RFC 6598) | refused | allowed |
//! | link-local (`169.254/16`: cloud metadata services; `fe80::/10`) | refused | refused |
//! | unspecified, multicast, broadcast, reserved (incl. NAT64 / 6to4 / Teredo forms of a non-global IPv4 address, documentation and benchmarking ranges) | refused | refused |
//!
//! IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`) are judged as the IPv4 address they carry.
//! One refused address refuses the URL, even if another would be allowed (a name resolving to
//! both a public and a private address is not delivered to).
//!
//! Schemes: `https://` (certificates always checked, Mozilla's roots, through ureq + rustls);
//! `http://` only with `allow_private` **and** only when every address is loopback, private or
//! CGNAT (a LAN receiver or a test); a public receiver must use TLS. URLs with user
//! information (`user:pass@`) are refused (credentials would end up in logs), as are hosts whose
//! last label is numeric but that are not a dotted-quad IPv4 address (`0x7f000001`, `2130706433`,
//! `127.1`: forms that `getaddrinfo` would quietly turn into an address).

use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex, PoisonError};

use seednode_wire::addr::{AddrScope, canonical_ip};
use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;

/// Addresses of one host checked at most: a name with more (a DNS answer is at most a few dozen)
/// is refused rather than checked in part.
pub(crate) const MAX_RESOLVED_ADDRS: usize = 32;

/// A function resolving a host name to its addresses (blocking): [`system_resolve`] in the
/// node, a table in tests.
pub(crate) type ResolveFn = fn(&str, u16) -> io::Result<Vec<SocketAddr>>;

/// Why a webhook URL, or the address it resolved to, is refused. Named for what is wrong with
/// the URL; only [`SsrfError::Resolve`] is worth retrying.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SsrfError {
    /// The URL cannot be used (not a URI, no host, user information, a numeric host in a
    /// non-canonical form). The URL itself is not repeated: it may carry a token.
    #[error("bad webhook URL: {reason}")]
    BadUrl {
        /// What is wrong.
        reason: &'static str,
    },
    /// The scheme is neither `https` nor `http`.
    #[error("webhook URL scheme must be https")]
    Scheme,
    /// `http://` to an endpoint without `allow_private`, or to a global address.
    #[error("plain http:// is only allowed to a private-network receiver with allow_private")]
    PlainHttp,
    /// The host name could not be resolved (retried at delivery).
    #[error("resolving the webhook host failed: {0}")]
    Resolve(String),
    /// The host resolved to more than [`MAX_RESOLVED_ADDRS`] addresses.
    #[error("webhook host resolves to more than {limit} addresses")]
    TooManyAddresses {
        /// [`MAX_RESOLVED_ADDRS`].
        limit: usize,
    },
    /// An address the host resolved to is not allowed.
    #[error("webhook host resolves to {addr}, a {scope} address{hint}", hint = if .scope.is_local_network() && *.scope != AddrScope::LinkLocal { " (allowed only with allow_private)" } else { "" })]
    Refused {
        /// The address.
        addr: IpAddr,
        /// Its scope.
        scope: AddrScope,
    },
}

impl SsrfError {
    /// Whether a delivery refused for this reason may succeed later (a DNS failure); the other
    /// reasons are permanent for the row.
    pub(crate) const fn is_transient(&self) -> bool {
        matches!(self, Self::Resolve(_))
    }
}

/// A webhook URL's scheme, host and port, checked for form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    /// `https` (else `http`).
    pub(crate) https: bool,
    /// The host, without IPv6 brackets.
    pub(crate) host: String,
    /// The port (the scheme's default when absent).
    pub(crate) port: u16,
}

/// Checks a URL's form and returns its target.
///
/// # Errors
/// [`SsrfError::BadUrl`], [`SsrfError::Scheme`].
pub(crate) fn parse_url(url: &str) -> Result<Target, SsrfError> {
    let uri: Uri = url.parse().map_err(|_| SsrfError::BadUrl {
        reason: "not a URI",
    })?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(SsrfError::Scheme),
    };
    let authority = uri
        .authority()
        .ok_or(SsrfError::BadUrl { reason: "no host" })?;
    if authority.as_str().contains('@') {
        return Err(SsrfError::BadUrl {
            reason: "user information in the URL",
        });
    }
    let host = authority.host();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
        .to_ascii_lowercase();
    if host.is_empty() {
        return Err(SsrfError::BadUrl { reason: "no host" });
    }
    if host.parse::<IpAddr>().is_err() && numeric_last_label(&host) {
        return Err(SsrfError::BadUrl {
            reason: "numeric host that is not a dotted-quad IPv4 address",
        });
    }
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    if port == 0 {
        return Err(SsrfError::BadUrl { reason: "port 0" });
    }
    Ok(Target { https, host, port })
}

/// Whether the last label of `host` is a number (decimal, or `0x` hex) — the WHATWG URL
/// standard's test for "this host is an IPv4 address".
fn numeric_last_label(host: &str) -> bool {
    let last = host.trim_end_matches('.').rsplit('.').next().unwrap_or("");
    let hex = last.strip_prefix("0x");
    match hex {
        Some(h) => h.chars().all(|c| c.is_ascii_hexdigit()),
        None => !last.is_empty() && last.chars().all(|c| c.is_ascii_digit()),
    }
}

/// Checks one resolved address; returns its scope.
///
/// # Errors
/// [`SsrfError::Refused`] per the module's table.
pub(crate) fn check_ip(ip: IpAddr, allow_private: bool) -> Result<AddrScope, SsrfError> {
    let ip = canonical_ip(ip);
    let scope = AddrScope::of(ip);
    let ok = match scope {
        AddrScope::Global => true,
        AddrScope::Loopback | AddrScope::Private | AddrScope::SharedCgnat => allow_private,
        AddrScope::LinkLocal
        | AddrScope::Unspecified
        | AddrScope::Multicast
        | AddrScope::Broadcast
        | AddrScope::Reserved => false,
    };
    if ok {
        Ok(scope)
    } else {
        Err(SsrfError::Refused { addr: ip, scope })
    }
}

/// Resolves `target` with `resolve`, checks every address, and returns the one to pin (the
/// first). Blocks for the lookup: call it on the sender thread or the CLI, never the loop.
///
/// # Errors
/// [`SsrfError::Resolve`] (no address, lookup failure), [`SsrfError::TooManyAddresses`],
/// [`SsrfError::Refused`], [`SsrfError::PlainHttp`].
pub(crate) fn resolve_checked(
    target: &Target,
    allow_private: bool,
    resolve: ResolveFn,
) -> Result<SocketAddr, SsrfError> {
    if !target.https && !allow_private {
        return Err(SsrfError::PlainHttp);
    }
    let addrs = match target.host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, target.port)],
        Err(_) => {
            resolve(&target.host, target.port).map_err(|e| SsrfError::Resolve(e.to_string()))?
        }
    };
    if addrs.len() > MAX_RESOLVED_ADDRS {
        return Err(SsrfError::TooManyAddresses {
            limit: MAX_RESOLVED_ADDRS,
        });
    }
    let mut first = None;
    for addr in &addrs {
        let scope = check_ip(addr.ip(), allow_private)?;
        if !target.https && scope.is_global() {
            return Err(SsrfError::PlainHttp);
        }
        first.get_or_insert(SocketAddr::new(canonical_ip(addr.ip()), addr.port()));
    }
    first.ok_or_else(|| SsrfError::Resolve("no addresses".into()))
}

/// The registration check of `seednode webhook add` and of `[[webhook]]` config entries: the
/// URL's form, then [`resolve_checked`] with the system resolver. Blocks (DNS).
///
/// # Errors
/// Any [`SsrfError`]; a DNS failure at registration is an error too (the operator retries).
pub(crate) fn check_registration(url: &str, allow_private: bool) -> Result<SocketAddr, SsrfError> {
    resolve_checked(&parse_url(url)?, allow_private, system_resolve)
}

/// The system resolver (`getaddrinfo`, blocking, bounded by its own timeouts): every address,
/// at most [`MAX_RESOLVED_ADDRS`] + 1 (one more tells "too many").
///
/// # Errors
/// The lookup failed.
pub(crate) fn system_resolve(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    Ok((host, port)
        .to_socket_addrs()?
        .take(MAX_RESOLVED_ADDRS + 1)
        .collect())
}

/// The address a delivery may connect to: set by the sender after [`resolve_checked`], read by
/// ureq through [`PinnedResolver`].
#[derive(Debug, Default)]
pub(crate) struct Pin(Mutex<Option<(String, u16, SocketAddr)>>);

impl Pin {
    /// Pins `host:port` to `addr` for the next request.
    pub(crate) fn set(&self, host: &str, port: u16, addr: SocketAddr) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) =
            Some((host.to_owned(), port, addr));
    }

    /// Forgets the pin (after a request).
    pub(crate) fn clear(&self) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    fn get(&self) -> Option<(String, u16, SocketAddr)> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// A ureq resolver that performs no lookup: it answers with the pinned address when the URI's
/// host and port are the pinned ones, and fails otherwise (a redirect, were one followed, or a
/// request sent without a pin). See https.rs's `PinningResolver`, which resolves itself.
#[derive(Debug)]
pub(crate) struct PinnedResolver(pub(crate) Arc<Pin>);

impl Resolver for PinnedResolver {
    fn resolve(
        &self,
        uri: &Uri,
        _config: &Config,
        _timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let target =
            parse_url(&uri.to_string()).map_err(|e| ureq::Error::Io(io::Error::other(e)))?;
        match self.0.get() {
            Some((host, port, addr)) if host == target.host && port == target.port => {
                let mut out = self.empty();
                out.push(addr);
                Ok(out)
            }
            _ => Err(ureq::Error::Io(io::Error::other(
                "connection to an unpinned host refused",
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn v4(s: &str) -> IpAddr {
        IpAddr::V4(s.parse::<Ipv4Addr>().expect("ipv4"))
    }

    fn table(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        let ip: IpAddr = match host {
            "lan.test" => "10.0.0.5".parse().expect("ip"),
            "public.test" => "93.184.215.14".parse().expect("ip"),
            "metadata.test" => "169.254.169.254".parse().expect("ip"),
            "both.test" => {
                return Ok(vec![
                    "93.184.215.14:443".parse().expect("addr"),
                    SocketAddr::new("10.1.2.3".parse().expect("ip"), port),
                ]);
            }
            "many.test" => {
                return Ok((0..=MAX_RESOLVED_ADDRS)
                    .map(|i| SocketAddr::new(v4(&format!("93.184.215.{i}")), port))
                    .collect());
            }
            _ => return Err(io::Error::new(io::ErrorKind::NotFound, "no such host")),
        };
        Ok(vec![SocketAddr::new(ip, port)])
    }

    fn check(url: &str, allow_private: bool) -> Result<SocketAddr, SsrfError> {
        resolve_checked(&parse_url(url)?, allow_private, table)
    }

    /// The URLs of issue 13's SSRF test, refused without `allow_private`.
    #[test]
    fn issue_13_ssrf_urls_are_refused() {
        for url in [
            "http://127.0.0.1/",
            "https://127.0.0.1/",
            "http://[::1]/",
            "https://[::1]:8443/",
            "http://0x7f000001/",
            "https://0x7f000001/",
            "https://2130706433/",
            "https://127.1/",
            "http://169.254.169.254/latest/meta-data/",
            "https://169.254.169.254/",
            "https://[::ffff:10.0.0.1]/",
            "https://[::ffff:7f00:1]/",
            "https://lan.test/hook",
            "https://metadata.test/",
            "https://both.test/",
            "https://0.0.0.0/",
            "https://[::]/",
            "https://224.0.0.1/",
            "https://255.255.255.255/",
            "https://100.64.0.1/",
            "https://[fe80::1]/",
            "https://[fd00::1]/",
            "https://[64:ff9b::a00:1]/", // NAT64 of 10.0.0.1
            "https://[2002:7f00:1::1]/", // 6to4 of 127.0.0.1
            "https://198.18.0.1/",
        ] {
            assert!(check(url, false).is_err(), "{url} must be refused");
        }
    }

    #[test]
    fn allow_private_opens_the_lan_but_not_link_local_or_reserved() {
        assert!(check("http://127.0.0.1:8080/", true).is_ok());
        assert!(check("https://[::1]/", true).is_ok());
        assert!(check("https://lan.test/", true).is_ok());
        assert!(check("http://[::ffff:10.0.0.1]/", true).is_ok());
        assert_eq!(
            check("https://[::ffff:10.0.0.1]/", true).expect("allowed"),
            "10.0.0.1:443".parse().expect("addr"),
            "the pinned address is canonical"
        );
        for url in [
            "https://169.254.169.254/",
            "https://metadata.test/",
            "https://[fe80::1]/",
            "https://0.0.0.0/",
            "https://224.0.0.1/",
            "https://[64:ff9b::a00:1]/",
        ] {
            assert!(
                matches!(check(url, true), Err(SsrfError::Refused { .. })),
                "{url}"
            );
        }
    }

    #[test]
    fn schemes_and_forms() {
        assert_eq!(
            check("https://public.test/hook", false).expect("public https"),
            "93.184.215.14:443".parse().expect("addr")
        );
        assert_eq!(
            check("http://public.test/", false),
            Err(SsrfError::PlainHttp)
        );
        assert_eq!(
            check("http://public.test/", true),
            Err(SsrfError::PlainHttp)
        );
        assert_eq!(check("ftp://public.test/", false), Err(SsrfError::Scheme));
        assert!(check("file:///etc/passwd", false).is_err());
        assert!(matches!(
            check("https://user:pw@public.test/", false),
            Err(SsrfError::BadUrl { .. })
        ));
        assert!(matches!(
            check("not a url", false),
            Err(SsrfError::BadUrl { .. })
        ));
        assert!(matches!(
            check("https://public.test:0/", false),
            Err(SsrfError::BadUrl { .. })
        ));
        let e = check("https://nxdomain.test/", false).expect_err("unresolvable");
        assert!(e.is_transient(), "{e}");
        assert_eq!(
            check("https://many.test/", false),
            Err(SsrfError::TooManyAddresses {
                limit: MAX_RESOLVED_ADDRS
            })
        );
        // Names with numeric-looking labels that are not the last one are names.
        assert!(!numeric_last_label("1.2.3.example"));
        assert!(numeric_last_label("example.0x1f"));
        let e = check("https://127.0.0.1/", false).expect_err("loopback");
        assert!(e.to_string().contains("allow_private"), "{e}");
        assert!(!e.is_transient());
    }

    #[test]
    fn the_pinned_resolver_answers_only_for_its_pin() {
        let pin = Arc::new(Pin::default());
        let resolver = PinnedResolver(Arc::clone(&pin));
        let config = ureq::Agent::config_builder().build();
        let uri: Uri = "https://public.test/hook".parse().expect("uri");
        assert!(
            resolver
                .resolve(&uri, &config, NextTimeout::default())
                .is_err()
        );
        let addr: SocketAddr = "93.184.215.14:443".parse().expect("addr");
        pin.set("public.test", 443, addr);
        let got = resolver
            .resolve(&uri, &config, NextTimeout::default())
            .expect("pinned");
        assert_eq!(got.iter().copied().collect::<Vec<_>>(), [addr]);
        let other: Uri = "https://other.test/hook".parse().expect("uri");
        assert!(
            resolver
                .resolve(&other, &config, NextTimeout::default())
                .is_err()
        );
        pin.clear();
        assert!(
            resolver
                .resolve(&uri, &config, NextTimeout::default())
                .is_err()
        );
    }
}
