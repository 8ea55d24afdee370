//! Value parsers for command-line flags: sizes with units (`256K`, `1M`), and listen addresses
//! in every form people type (`:7000`, `127.0.0.1`, `[::1]:7000`, `7000`).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

/// One KiB, the unit of the `K` suffix (piece lengths are powers of two: units are binary, as
/// mktorrent's and qBittorrent's piece size menus are).
const KIB: u64 = 1024;

/// Parses a byte count: plain digits, or digits with a binary unit `K`/`KiB`/`KB`, `M`/`MiB`/
/// `MB`, `G`/`GiB`/`GB` (case-insensitive; `K` = 1024 bytes).
///
/// # Errors
/// A message naming the accepted forms, for clap to show.
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (digits, unit) = trimmed.split_at(split);
    let bad = || format!("{text:?} is not a size: use bytes (262144) or a unit (256K, 1M, 4MiB)");
    let number: u64 = digits.parse().map_err(|_| bad())?;
    let scale = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => KIB,
        "m" | "mb" | "mib" => KIB * KIB,
        "g" | "gb" | "gib" => KIB * KIB * KIB,
        _ => return Err(bad()),
    };
    number.checked_mul(scale).ok_or_else(bad)
}

/// [`parse_size`] for a piece length, which must fit in 32 bits.
///
/// # Errors
/// As [`parse_size`], or a size over `u32::MAX` bytes.
pub(crate) fn parse_piece_length(text: &str) -> Result<u32, String> {
    let bytes = parse_size(text)?;
    u32::try_from(bytes).map_err(|_| format!("{text:?} is too large for a piece length"))
}

/// A listen address as typed: any of `IP:PORT`, `[IPv6]:PORT`, `:PORT`, `IP`, `IPv6`, `PORT`;
/// the missing half comes from defaults (see [`Listen::resolve`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Listen {
    /// The IP address, when given.
    pub(crate) ip: Option<IpAddr>,
    /// The port, when given.
    pub(crate) port: Option<u16>,
}

impl FromStr for Listen {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "{text:?} is not an address to listen on: use IP:PORT, :PORT, IP or PORT \
                 (e.g. 0.0.0.0:6881, :7000, 127.0.0.1, [::]:6881)"
            )
        };
        let text = text.trim();
        if let Ok(addr) = text.parse::<SocketAddr>() {
            return Ok(Self {
                ip: Some(addr.ip()),
                port: Some(addr.port()),
            });
        }
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Ok(Self {
                ip: Some(ip),
                port: None,
            });
        }
        if let Some(ip) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
            let ip = ip.parse::<IpAddr>().map_err(|_| bad())?;
            return Ok(Self {
                ip: Some(ip),
                port: None,
            });
        }
        let port = text.strip_prefix(':').unwrap_or(text);
        let port = port.parse::<u16>().map_err(|_| bad())?;
        Ok(Self {
            ip: None,
            port: Some(port),
        })
    }
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.ip, self.port) {
            (Some(ip), Some(port)) => write!(f, "{}", SocketAddr::new(ip, port)),
            (Some(IpAddr::V6(ip)), None) => write!(f, "[{ip}]"),
            (Some(ip), None) => write!(f, "{ip}"),
            (None, Some(port)) => write!(f, ":{port}"),
            (None, None) => Ok(()),
        }
    }
}

impl Listen {
    /// The socket address: the given IP or every interface of both families
    /// ([`super::net::any_ip`]: `[::]` dual-stack, `0.0.0.0` where IPv6 is off), and the port from
    /// `-p`/`--port` (`port_flag`), from the address, or `default_port`.
    ///
    /// # Errors
    /// When the address and `-p` name two different ports.
    pub(crate) fn resolve(
        listen: Option<Self>,
        port_flag: Option<u16>,
        default_port: u16,
    ) -> Result<SocketAddr, String> {
        let listen = listen.unwrap_or(Self {
            ip: None,
            port: None,
        });
        let port = match (listen.port, port_flag) {
            (Some(a), Some(b)) if a != b => {
                return Err(format!(
                    "--listen {listen} and -p {b} name two ports: give the port once"
                ));
            }
            (Some(p), _) | (None, Some(p)) => p,
            (None, None) => default_port,
        };
        Ok(SocketAddr::new(
            listen.ip.unwrap_or_else(super::net::any_ip),
            port,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_binary_units() {
        for (text, bytes) in [
            ("262144", 262_144),
            ("256K", 262_144),
            ("256k", 262_144),
            ("256KiB", 262_144),
            ("1M", 1 << 20),
            ("1m", 1 << 20),
            ("4MiB", 4 << 20),
            ("16 MB", 16 << 20),
            ("1G", 1 << 30),
        ] {
            assert_eq!(parse_size(text), Ok(bytes), "{text}");
        }
        for text in ["", "K", "1.5M", "1T", "-1", "18446744073709551615K"] {
            assert!(parse_size(text).is_err(), "{text}");
        }
        assert!(parse_piece_length("4G").is_err());
    }

    #[test]
    fn listen_takes_every_usual_form() {
        let at = |text: &str, port: Option<u16>, default: u16| {
            Listen::resolve(Some(text.parse().unwrap()), port, default)
                .unwrap()
                .to_string()
        };
        assert_eq!(at("0.0.0.0:6881", None, 1), "0.0.0.0:6881");
        // No address: every interface of both families (IPv4 only where IPv6 is off).
        let any = super::super::net::any_ip();
        let any_at = |port: u16| SocketAddr::new(any, port).to_string();
        assert_eq!(at(":7000", None, 1), any_at(7000));
        assert_eq!(at("7000", None, 1), any_at(7000));
        assert_eq!(at("127.0.0.1", None, 6881), "127.0.0.1:6881");
        assert_eq!(at("127.0.0.1", Some(7000), 6881), "127.0.0.1:7000");
        assert_eq!(at("[::1]:7000", None, 1), "[::1]:7000");
        assert_eq!(at("::1", None, 6881), "[::1]:6881");
        assert_eq!(at("[::]", None, 6881), "[::]:6881");
        assert_eq!(at(":7000", Some(7000), 1), any_at(7000));
        assert_eq!(
            Listen::resolve(None, Some(9), 6881).unwrap().to_string(),
            any_at(9)
        );
        assert!(Listen::resolve(Some(":7000".parse().unwrap()), Some(7001), 1).is_err());
        for text in ["", "host:1", "1.2.3.4:99999", "::1:x", "[::1"] {
            assert!(text.parse::<Listen>().is_err(), "{text}");
        }
    }
}
