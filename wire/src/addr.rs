//! Address rules: which IP addresses a peer or DHT node may name for us to dial or hand out.
//!
//! PEX (BEP 11), DHT `nodes`/`nodes6`/`values` (BEP 5, 32) and tracker replies carry addresses
//! chosen by a remote. Dialled blindly, they let anyone on the internet make this node send
//! packets into its own host or network (127.0.0.1, 10.0.0.0/8, a router's admin port, a
//! cloud metadata service at 169.254.169.254), and handed on, they leak one network's internal
//! addresses to another. The rules here are pure functions of the addresses involved:
//!
//! 1. [`canonical_ip`] first: an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) *is* the IPv4
//!    address (SECURITY rule "before any per-IP rule").
//! 2. [`AddrScope::of`] classifies it (table below).
//! 3. [`may_dial`]: port 0 and addresses no peer can have ([`AddrScope::is_never_dialable`]) are
//!    refused whoever names them; a global address is fine from anyone; a local-network address
//!    (loopback, private, link-local, CGNAT) only when learnt from an address of the same scope,
//!    i.e. from inside that kind of network (either family: a dual-stack site has both 10/8 and
//!    `fd00::/8` addresses). [`may_dial_on`] is the same rule
//!    relative to the network our own socket is on (for the DHT, which learns nodes from nodes).
//!
//! The caller still refuses its own listening addresses ([`is_own_address`]).
//!
//! | Scope | IPv4 | IPv6 |
//! |---|---|---|
//! | [`Unspecified`](AddrScope::Unspecified) | `0.0.0.0` | `::` |
//! | [`Loopback`](AddrScope::Loopback) | `127.0.0.0/8` | `::1` |
//! | [`Private`](AddrScope::Private) | `10/8`, `172.16/12`, `192.168/16` (RFC 1918) | `fc00::/7` (ULA, RFC 4193) |
//! | [`LinkLocal`](AddrScope::LinkLocal) | `169.254/16` (RFC 3927) | `fe80::/10` |
//! | [`SharedCgnat`](AddrScope::SharedCgnat) | `100.64/10` (RFC 6598) | |
//! | [`Multicast`](AddrScope::Multicast) | `224/4` | `ff00::/8` |
//! | [`Broadcast`](AddrScope::Broadcast) | `255.255.255.255` | |
//! | [`Reserved`](AddrScope::Reserved) | `0/8` (but `0.0.0.0`), `192.0.0/24`, `192.0.2/24`, `192.88.99/24`, `198.18/15`, `198.51.100/24`, `203.0.113/24`, `240/4` (but broadcast) | everything outside `2000::/3` not listed above, `2001:db8::/32`, `3fff::/20`, `2001:2::/48`, `2001:10::/28`, `2001:20::/28`, `fec0::/10`, `::/96` (IPv4-compatible) |
//! | [`Global`](AddrScope::Global) | the rest | the rest of `2000::/3` |
//!
//! Decisions:
//! - Documentation (RFC 5737, 3849, 9637) and benchmarking (198.18/15, RFC 2544; 2001:2::/48,
//!   RFC 5180) ranges are [`Reserved`](AddrScope::Reserved): no real peer has them, and a lab
//!   that uses 198.18/15 internally is exactly the network a stranger must not reach.
//! - IPv6 addresses that embed an IPv4 destination are judged by it: NAT64 `64:ff9b::/96`
//!   (RFC 6052), 6to4 `2002::/16` (RFC 3056) and Teredo `2001::/32` (RFC 4380, the client
//!   address XORed with `0xffffffff`) are [`Global`](AddrScope::Global) when the embedded
//!   IPv4 address is global and [`Reserved`](AddrScope::Reserved) otherwise: a translator or
//!   relay would deliver to that IPv4 address, and RFC 6052 §3.1 forbids non-global ones in
//!   the well-known prefix. The local-use NAT64 prefix `64:ff9b:1::/48` (RFC 8215) and the
//!   deprecated IPv4-compatible `::a.b.c.d` are outside `2000::/3`, so reserved.
//! - Site-local `fec0::/10` was deprecated (RFC 3879) and is allocated to no one: reserved.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// What kind of network an IP address belongs to, after [`canonical_ip`]. See the module docs
/// for the ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AddrScope {
    /// `0.0.0.0` or `::`: "any address", never a peer.
    Unspecified,
    /// This host: `127.0.0.0/8`, `::1`.
    Loopback,
    /// A private network: RFC 1918 IPv4 ranges and IPv6 unique-local `fc00::/7`.
    Private,
    /// One link: `169.254.0.0/16`, `fe80::/10`.
    LinkLocal,
    /// Carrier-grade NAT shared space `100.64.0.0/10` (RFC 6598): the ISP's side of a NAT.
    SharedCgnat,
    /// `224.0.0.0/4`, `ff00::/8`.
    Multicast,
    /// The limited broadcast address `255.255.255.255`.
    Broadcast,
    /// Special-purpose or unallocated space no peer has: "this network" `0/8`, documentation,
    /// benchmarking, IETF protocol assignments, `240/4`, IPv6 outside `2000::/3`, and embedded
    /// IPv4 forms pointing at a non-global address.
    Reserved,
    /// Anything else: reachable on the public internet.
    Global,
}

impl AddrScope {
    /// Classifies `ip`, unwrapping IPv4-mapped IPv6 first ([`canonical_ip`]).
    #[must_use]
    pub fn of(ip: IpAddr) -> Self {
        match canonical_ip(ip) {
            IpAddr::V4(v4) => scope_v4(v4),
            IpAddr::V6(v6) => scope_v6(v6),
        }
    }

    /// Reachable on the public internet.
    #[must_use]
    pub const fn is_global(self) -> bool {
        matches!(self, Self::Global)
    }

    /// An address that only means something inside one host or network: loopback, private,
    /// link-local or CGNAT shared space. Dialable only when learnt from inside that network.
    #[must_use]
    pub const fn is_local_network(self) -> bool {
        matches!(
            self,
            Self::Loopback | Self::Private | Self::LinkLocal | Self::SharedCgnat
        )
    }

    /// An address no peer can have: unspecified, multicast, broadcast or reserved. Refused
    /// whoever names it.
    #[must_use]
    pub const fn is_never_dialable(self) -> bool {
        matches!(
            self,
            Self::Unspecified | Self::Multicast | Self::Broadcast | Self::Reserved
        )
    }

    const fn name(self) -> &'static str {
        match self {
            Self::Unspecified => "unspecified",
            Self::Loopback => "loopback",
            Self::Private => "private",
            Self::LinkLocal => "link-local",
            Self::SharedCgnat => "CGNAT shared",
            Self::Multicast => "multicast",
            Self::Broadcast => "broadcast",
            Self::Reserved => "reserved",
            Self::Global => "global",
        }
    }
}

impl fmt::Display for AddrScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why an address named by a remote (in PEX, a DHT reply, a tracker reply) must not be dialled
/// or handed on. Named for what the remote did; the caller drops the address and may count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DialRefusal {
    /// The remote named port 0, which nothing listens on.
    #[error("named port 0")]
    PortZero,
    /// The remote named an address no peer can have (unspecified, multicast, broadcast,
    /// reserved).
    #[error("named a {scope} address, which no peer has")]
    NeverDialable {
        /// The address's scope.
        scope: AddrScope,
    },
    /// The remote named a local-network address although it is not on such a network itself:
    /// its `10.0.0.1` is not ours.
    #[error("named a {candidate} address from a {learnt_from} address")]
    LocalFromOutside {
        /// The named address's scope.
        candidate: AddrScope,
        /// The scope of the address it was learnt from.
        learnt_from: AddrScope,
    },
    /// The remote named a local-network address of a kind of network this node is not on.
    #[error("named a {candidate} address to a node on a {ours} network")]
    NotOurNetwork {
        /// The named address's scope.
        candidate: AddrScope,
        /// The scope of our own address.
        ours: AddrScope,
    },
    /// The remote named one of our own addresses (see [`is_own_address`]).
    #[error("named our own address")]
    OwnAddress,
}

/// Unwraps an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, `::ffff:0:0/96`) to its IPv4 address,
/// so that one host has one identity before any per-IP rule. Every other address is returned
/// unchanged (IPv4-compatible `::a.b.c.d` is deprecated and not unwrapped; see the module docs).
#[must_use]
pub const fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        IpAddr::V4(_) => ip,
    }
}

/// The key per-address limits and lockouts count under: the canonical form of `ip`
/// ([`canonical_ip`]), and for IPv6 its /64 network. One IPv6 host usually holds a whole /64,
/// so counting single addresses would hand an attacker 2^64 fresh quotas.
#[must_use]
pub fn limit_key(ip: IpAddr) -> IpAddr {
    match canonical_ip(ip) {
        IpAddr::V6(v6) => {
            let mut o = v6.octets();
            o[8..].fill(0);
            IpAddr::V6(Ipv6Addr::from(o))
        }
        v4 @ IpAddr::V4(_) => v4,
    }
}

/// [`canonical_ip`] of a socket address, port kept.
#[must_use]
pub const fn canonical_addr(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(canonical_ip(addr.ip()), addr.port())
}

/// Whether this node may dial `candidate`, an address a remote at `learnt_from` named (a PEX
/// peer's IP, the DHT node whose `nodes` or `values` carried it, a tracker's IP).
///
/// Both are canonicalised first. A global candidate is fine from anyone; a local-network
/// candidate ([`AddrScope::is_local_network`]) only from an address of the same scope, in either
/// family (a loopback source may name loopback peers, a private-network one private-network
/// peers, RFC 1918 or ULA); anything else is refused. The caller also refuses its own addresses
/// ([`is_own_address`]).
///
/// # Errors
/// The first rule `candidate` breaks, as a [`DialRefusal`].
pub fn may_dial(candidate: SocketAddr, learnt_from: IpAddr) -> Result<(), DialRefusal> {
    let candidate = canonical_addr(candidate);
    let scope = check_peer_addr(candidate)?;
    if scope.is_global() {
        return Ok(());
    }
    let source = AddrScope::of(learnt_from);
    if source == scope {
        Ok(())
    } else {
        Err(DialRefusal::LocalFromOutside {
            candidate: scope,
            learnt_from: source,
        })
    }
}

/// Whether a node whose own socket is on a network of scope `ours` may dial `candidate`: a
/// global candidate always, a local-network candidate only when `ours` is that same scope (a
/// node on loopback reaches loopback addresses, one on a private network private addresses).
/// Pass `AddrScope::of(bound_ip)`; a node bound to the unspecified address, or on a global
/// address, accepts only global candidates.
///
/// # Errors
/// The first rule `candidate` breaks, as a [`DialRefusal`].
pub fn may_dial_on(candidate: SocketAddr, ours: AddrScope) -> Result<(), DialRefusal> {
    let scope = check_peer_addr(canonical_addr(candidate))?;
    if scope.is_global() || scope == ours {
        Ok(())
    } else {
        Err(DialRefusal::NotOurNetwork {
            candidate: scope,
            ours,
        })
    }
}

/// Whether `candidate` is one of `own` (our listening or external addresses), comparing
/// canonical forms, so `::ffff:192.0.2.1:6881` equals `192.0.2.1:6881`. An `own` entry matches
/// its exact IP and port only.
#[must_use]
pub fn is_own_address(candidate: SocketAddr, own: &[SocketAddr]) -> bool {
    let candidate = canonical_addr(candidate);
    own.iter().any(|&a| canonical_addr(a) == candidate)
}

/// Refuses port 0 and never-dialable scopes; returns the scope of a canonical address.
fn check_peer_addr(candidate: SocketAddr) -> Result<AddrScope, DialRefusal> {
    if candidate.port() == 0 {
        return Err(DialRefusal::PortZero);
    }
    let scope = AddrScope::of(candidate.ip());
    if scope.is_never_dialable() {
        return Err(DialRefusal::NeverDialable { scope });
    }
    Ok(scope)
}

/// Whether the top `len` bits of `ip` equal those of `prefix`.
const fn in_v4(ip: u32, prefix: [u8; 4], len: u32) -> bool {
    let prefix = u32::from_be_bytes(prefix);
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    ip & mask == prefix & mask
}

fn scope_v4(ip: Ipv4Addr) -> AddrScope {
    let x = u32::from(ip);
    if x == 0 {
        AddrScope::Unspecified
    } else if x == u32::MAX {
        AddrScope::Broadcast
    } else if in_v4(x, [127, 0, 0, 0], 8) {
        AddrScope::Loopback
    } else if in_v4(x, [10, 0, 0, 0], 8)
        || in_v4(x, [172, 16, 0, 0], 12)
        || in_v4(x, [192, 168, 0, 0], 16)
    {
        AddrScope::Private
    } else if in_v4(x, [169, 254, 0, 0], 16) {
        AddrScope::LinkLocal
    } else if in_v4(x, [100, 64, 0, 0], 10) {
        AddrScope::SharedCgnat
    } else if in_v4(x, [224, 0, 0, 0], 4) {
        AddrScope::Multicast
    } else if in_v4(x, [0, 0, 0, 0], 8)
        || in_v4(x, [192, 0, 0, 0], 24)
        || in_v4(x, [192, 0, 2, 0], 24)
        || in_v4(x, [192, 88, 99, 0], 24)
        || in_v4(x, [198, 18, 0, 0], 15)
        || in_v4(x, [198, 51, 100, 0], 24)
        || in_v4(x, [203, 0, 113, 0], 24)
        || in_v4(x, [240, 0, 0, 0], 4)
    {
        AddrScope::Reserved
    } else {
        AddrScope::Global
    }
}

/// Whether the top `len` bits of `ip` equal those of `prefix`.
const fn in_v6(ip: u128, prefix: [u16; 8], len: u32) -> bool {
    let mut p: u128 = 0;
    let mut i = 0;
    while i < 8 {
        p = (p << 16) | prefix[i] as u128;
        i += 1;
    }
    let mask = if len == 0 {
        0
    } else {
        u128::MAX << (128 - len)
    };
    ip & mask == p & mask
}

/// Global when the embedded IPv4 destination is, reserved otherwise.
fn embedded(v4: u32) -> AddrScope {
    if scope_v4(Ipv4Addr::from(v4)).is_global() {
        AddrScope::Global
    } else {
        AddrScope::Reserved
    }
}

fn scope_v6(ip: Ipv6Addr) -> AddrScope {
    let x = u128::from(ip);
    if x == 0 {
        AddrScope::Unspecified
    } else if x == 1 {
        AddrScope::Loopback
    } else if in_v6(x, [0xff00, 0, 0, 0, 0, 0, 0, 0], 8) {
        AddrScope::Multicast
    } else if in_v6(x, [0xfc00, 0, 0, 0, 0, 0, 0, 0], 7) {
        AddrScope::Private
    } else if in_v6(x, [0xfe80, 0, 0, 0, 0, 0, 0, 0], 10) {
        AddrScope::LinkLocal
    } else if in_v6(x, [0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96) {
        // NAT64 well-known prefix (RFC 6052): the IPv4 address is the low 32 bits.
        embedded(x as u32)
    } else if !in_v6(x, [0x2000, 0, 0, 0, 0, 0, 0, 0], 3) {
        // Outside global unicast: ::/96 (IPv4-compatible), 100::/64, 64:ff9b:1::/48, fec0::/10
        // and all unallocated space.
        AddrScope::Reserved
    } else if in_v6(x, [0x2002, 0, 0, 0, 0, 0, 0, 0], 16) {
        // 6to4 (RFC 3056): the IPv4 address is bits 16..48.
        embedded((x >> 80) as u32)
    } else if in_v6(x, [0x2001, 0, 0, 0, 0, 0, 0, 0], 32) {
        // Teredo (RFC 4380): the client's IPv4 address, XORed with all ones, is the low 32 bits.
        embedded(!(x as u32))
    } else if in_v6(x, [0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32)
        || in_v6(x, [0x3fff, 0, 0, 0, 0, 0, 0, 0], 20)
        || in_v6(x, [0x2001, 0x2, 0, 0, 0, 0, 0, 0], 48)
        || in_v6(x, [0x2001, 0x10, 0, 0, 0, 0, 0, 0], 28)
        || in_v6(x, [0x2001, 0x20, 0, 0, 0, 0, 0, 0], 28)
    {
        AddrScope::Reserved
    } else {
        AddrScope::Global
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn limit_keys_group_ipv6_by_64_and_unwrap_mapped_ipv4() {
        let key = |s: &str| limit_key(s.parse().unwrap()).to_string();
        assert_eq!(key("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::");
        assert_eq!(key("2001:db8:1:2::ffff"), key("2001:db8:1:2::1"));
        assert_ne!(key("2001:db8:1:3::1"), key("2001:db8:1:2::1"));
        assert_eq!(key("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(key("192.0.2.7"), "192.0.2.7");
    }

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn scope(s: &str) -> AddrScope {
        AddrScope::of(ip(s))
    }

    /// Every IPv4 range boundary: the first and last address inside, and the neighbours outside.
    #[test]
    fn ipv4_range_boundaries() {
        use AddrScope::*;
        let vectors: &[(&str, AddrScope)] = &[
            ("0.0.0.0", Unspecified),
            ("0.0.0.1", Reserved),
            ("0.255.255.255", Reserved),
            ("1.0.0.0", Global),
            ("9.255.255.255", Global),
            ("10.0.0.0", Private),
            ("10.255.255.255", Private),
            ("11.0.0.0", Global),
            ("100.63.255.255", Global),
            ("100.64.0.0", SharedCgnat),
            ("100.127.255.255", SharedCgnat),
            ("100.128.0.0", Global),
            ("126.255.255.255", Global),
            ("127.0.0.0", Loopback),
            ("127.0.0.1", Loopback),
            ("127.255.255.255", Loopback),
            ("128.0.0.0", Global),
            ("169.253.255.255", Global),
            ("169.254.0.0", LinkLocal),
            ("169.254.169.254", LinkLocal),
            ("169.254.255.255", LinkLocal),
            ("169.255.0.0", Global),
            ("172.15.255.255", Global),
            ("172.16.0.0", Private),
            ("172.31.255.255", Private),
            ("172.32.0.0", Global),
            ("191.255.255.255", Global),
            ("192.0.0.0", Reserved),
            ("192.0.0.255", Reserved),
            ("192.0.1.255", Global),
            ("192.0.2.0", Reserved),
            ("192.0.2.255", Reserved),
            ("192.0.3.0", Global),
            ("192.88.98.255", Global),
            ("192.88.99.0", Reserved),
            ("192.88.99.255", Reserved),
            ("192.88.100.0", Global),
            ("192.167.255.255", Global),
            ("192.168.0.0", Private),
            ("192.168.255.255", Private),
            ("192.169.0.0", Global),
            ("198.17.255.255", Global),
            ("198.18.0.0", Reserved),
            ("198.19.255.255", Reserved),
            ("198.20.0.0", Global),
            ("198.51.99.255", Global),
            ("198.51.100.0", Reserved),
            ("198.51.100.255", Reserved),
            ("198.51.101.0", Global),
            ("203.0.112.255", Global),
            ("203.0.113.0", Reserved),
            ("203.0.113.255", Reserved),
            ("203.0.114.0", Global),
            ("223.255.255.255", Global),
            ("224.0.0.0", Multicast),
            ("239.255.255.255", Multicast),
            ("240.0.0.0", Reserved),
            ("255.255.255.254", Reserved),
            ("255.255.255.255", Broadcast),
            ("8.8.8.8", Global),
        ];
        for &(s, want) in vectors {
            assert_eq!(scope(s), want, "{s}");
        }
    }

    #[test]
    fn ipv6_range_boundaries() {
        use AddrScope::*;
        let vectors: &[(&str, AddrScope)] = &[
            ("::", Unspecified),
            ("::1", Loopback),
            ("::2", Reserved),
            // IPv4-compatible (deprecated): not unwrapped, reserved.
            ("::127.0.0.1", Reserved),
            ("::8.8.8.8", Reserved),
            ("100::", Reserved),
            ("1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Reserved),
            ("2000::", Global),
            ("2001:470::1", Global),
            ("2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", Global),
            ("2001:db8::", Reserved),
            ("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", Reserved),
            ("2001:db9::", Global),
            ("2001:1:ffff:ffff:ffff:ffff:ffff:ffff", Global),
            ("2001:2::", Reserved),
            ("2001:2:0:ffff:ffff:ffff:ffff:ffff", Reserved),
            ("2001:2:1::", Global),
            ("2001:f:ffff:ffff:ffff:ffff:ffff:ffff", Global),
            ("2001:10::", Reserved),
            ("2001:2f:ffff:ffff:ffff:ffff:ffff:ffff", Reserved),
            ("2001:30::", Global),
            ("2400:cb00::1", Global),
            ("3ffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Global),
            ("3fff::", Reserved),
            ("3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff", Reserved),
            ("3fff:1000::", Global),
            ("3fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Global),
            ("4000::", Reserved),
            ("fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Reserved),
            ("fc00::", Private),
            ("fd00::1", Private),
            ("fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Private),
            ("fe00::", Reserved),
            ("fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Reserved),
            ("fe80::", LinkLocal),
            ("febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", LinkLocal),
            ("fec0::", Reserved),
            ("feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Reserved),
            ("ff00::", Multicast),
            ("ff02::1", Multicast),
            ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Multicast),
        ];
        for &(s, want) in vectors {
            assert_eq!(scope(s), want, "{s}");
        }
    }

    #[test]
    fn ipv4_mapped_ipv6_is_judged_as_ipv4() {
        use AddrScope::*;
        let vectors: &[(&str, AddrScope)] = &[
            ("::ffff:0.0.0.0", Unspecified),
            ("::ffff:127.0.0.1", Loopback),
            ("::ffff:10.1.2.3", Private),
            ("::ffff:172.16.0.1", Private),
            ("::ffff:192.168.1.1", Private),
            ("::ffff:169.254.169.254", LinkLocal),
            ("::ffff:100.64.0.1", SharedCgnat),
            ("::ffff:224.0.0.1", Multicast),
            ("::ffff:255.255.255.255", Broadcast),
            ("::ffff:192.0.2.1", Reserved),
            ("::ffff:8.8.8.8", Global),
        ];
        for &(s, want) in vectors {
            assert_eq!(scope(s), want, "{s}");
        }
        assert_eq!(canonical_ip(ip("::ffff:10.1.2.3")), ip("10.1.2.3"));
        assert_eq!(canonical_ip(ip("::10.1.2.3")), ip("::10.1.2.3"));
        assert_eq!(canonical_ip(ip("2001:db8::1")), ip("2001:db8::1"));
        assert_eq!(canonical_ip(ip("10.1.2.3")), ip("10.1.2.3"));
        assert_eq!(
            canonical_addr(sa("[::ffff:1.2.3.4]:6881")),
            sa("1.2.3.4:6881")
        );
    }

    #[test]
    fn embedded_ipv4_forms_are_judged_by_their_ipv4_address() {
        use AddrScope::*;
        let vectors: &[(&str, AddrScope)] = &[
            // NAT64 well-known prefix.
            ("64:ff9b::8.8.8.8", Global),
            ("64:ff9b::127.0.0.1", Reserved),
            ("64:ff9b::10.0.0.1", Reserved),
            ("64:ff9b::169.254.169.254", Reserved),
            ("64:ff9b::100.64.0.1", Reserved),
            ("64:ff9b::192.0.2.1", Reserved),
            ("64:ff9b:1::a00:1", Reserved),
            // 6to4: 2002:AABB:CCDD::/48.
            ("2002:808:808::1", Global),
            ("2002:7f00:1::1", Reserved),
            ("2002:a00:1::1", Reserved),
            ("2002:c0a8:101::1", Reserved),
            ("2002:a9fe:a9fe::1", Reserved),
            ("2001:ffff::1", Global),
            // Teredo: client address XOR 0xffffffff in the low 32 bits.
            ("2001:0:4136:e378:8000:63bf:f7f7:f7f7", Global), // client 8.8.8.8
            ("2001:0:4136:e378:8000:63bf:80ff:fffe", Reserved), // client 127.0.0.1
            ("2001:0:4136:e378:8000:63bf:f5ff:fffe", Reserved), // client 10.0.0.1
        ];
        for &(s, want) in vectors {
            assert_eq!(scope(s), want, "{s}");
        }
    }

    #[test]
    fn scope_predicates_partition_the_scopes() {
        use AddrScope::*;
        for s in [
            Unspecified,
            Loopback,
            Private,
            LinkLocal,
            SharedCgnat,
            Multicast,
            Broadcast,
            Reserved,
            Global,
        ] {
            let n = u8::from(s.is_global())
                + u8::from(s.is_local_network())
                + u8::from(s.is_never_dialable());
            assert_eq!(n, 1, "{s}");
        }
    }

    #[test]
    fn global_candidates_are_dialable_from_anyone() {
        for from in [
            "8.8.8.8",
            "127.0.0.1",
            "10.0.0.1",
            "::1",
            "2001:470::1",
            "0.0.0.0",
        ] {
            assert_eq!(may_dial(sa("1.2.3.4:6881"), ip(from)), Ok(()), "{from}");
            assert_eq!(may_dial(sa("[2400::1]:6881"), ip(from)), Ok(()), "{from}");
            assert_eq!(
                may_dial(sa("[::ffff:1.2.3.4]:6881"), ip(from)),
                Ok(()),
                "{from}"
            );
        }
    }

    #[test]
    fn refuses_port_zero_whoever_names_it() {
        for c in [
            "1.2.3.4:0",
            "127.0.0.1:0",
            "[2400::1]:0",
            "[::ffff:1.2.3.4]:0",
        ] {
            assert_eq!(
                may_dial(sa(c), ip("127.0.0.1")),
                Err(DialRefusal::PortZero),
                "{c}"
            );
            assert_eq!(
                may_dial_on(sa(c), AddrScope::Loopback),
                Err(DialRefusal::PortZero)
            );
        }
        assert_eq!(may_dial(sa("1.2.3.4:1"), ip("8.8.8.8")), Ok(()));
        assert_eq!(may_dial(sa("1.2.3.4:65535"), ip("8.8.8.8")), Ok(()));
    }

    #[test]
    fn refuses_never_dialable_addresses_whoever_names_them() {
        let vectors: &[(&str, AddrScope)] = &[
            ("0.0.0.0:6881", AddrScope::Unspecified),
            ("[::]:6881", AddrScope::Unspecified),
            ("[::ffff:0.0.0.0]:6881", AddrScope::Unspecified),
            ("224.0.0.1:6881", AddrScope::Multicast),
            ("[ff02::1]:6881", AddrScope::Multicast),
            ("255.255.255.255:6881", AddrScope::Broadcast),
            ("192.0.2.1:6881", AddrScope::Reserved),
            ("198.18.0.1:6881", AddrScope::Reserved),
            ("240.0.0.1:6881", AddrScope::Reserved),
            ("0.1.2.3:6881", AddrScope::Reserved),
            ("[2001:db8::1]:6881", AddrScope::Reserved),
            ("[::127.0.0.1]:6881", AddrScope::Reserved),
            ("[64:ff9b::10.0.0.1]:6881", AddrScope::Reserved),
        ];
        for &(c, scope) in vectors {
            for from in [c.rsplit_once(':').unwrap().0, "8.8.8.8", "127.0.0.1"] {
                let from = ip(from.trim_start_matches('[').trim_end_matches(']'));
                assert_eq!(
                    may_dial(sa(c), from),
                    Err(DialRefusal::NeverDialable { scope }),
                    "{c} from {from}"
                );
            }
            for ours in [AddrScope::Global, AddrScope::Loopback, scope] {
                assert_eq!(
                    may_dial_on(sa(c), ours),
                    Err(DialRefusal::NeverDialable { scope })
                );
            }
        }
    }

    #[test]
    fn local_network_candidates_only_from_inside_that_network() {
        use AddrScope::*;
        let candidates: &[(&str, AddrScope)] = &[
            ("127.0.0.1:6881", Loopback),
            ("[::1]:6881", Loopback),
            ("[::ffff:127.0.0.1]:6881", Loopback),
            ("10.0.0.1:6881", Private),
            ("172.16.0.1:6881", Private),
            ("192.168.1.1:6881", Private),
            ("[fd00::1]:6881", Private),
            ("169.254.169.254:80", LinkLocal),
            ("[fe80::1]:6881", LinkLocal),
            ("100.64.0.1:6881", SharedCgnat),
        ];
        let sources = [
            "8.8.8.8",
            "2400::1",
            "127.0.0.2",
            "::1",
            "10.9.9.9",
            "192.168.7.7",
            "fd12::7",
            "169.254.1.1",
            "fe80::7",
            "100.100.0.1",
            "::ffff:10.9.9.9",
        ];
        for &(c, scope) in candidates {
            for from in sources {
                let source = AddrScope::of(ip(from));
                let want = if source == scope {
                    Ok(())
                } else {
                    Err(DialRefusal::LocalFromOutside {
                        candidate: scope,
                        learnt_from: source,
                    })
                };
                assert_eq!(may_dial(sa(c), ip(from)), want, "{c} from {from}");
            }
            assert_eq!(may_dial_on(sa(c), scope), Ok(()), "{c}");
            for ours in [
                Global,
                Unspecified,
                Loopback,
                Private,
                LinkLocal,
                SharedCgnat,
            ] {
                if ours != scope {
                    assert_eq!(
                        may_dial_on(sa(c), ours),
                        Err(DialRefusal::NotOurNetwork {
                            candidate: scope,
                            ours
                        }),
                        "{c} on {ours}"
                    );
                }
            }
        }
        // Explicit rows for the issue: a public peer names internal addresses.
        assert!(may_dial(sa("127.0.0.1:22"), ip("8.8.8.8")).is_err());
        assert!(may_dial(sa("169.254.169.254:80"), ip("8.8.8.8")).is_err());
        assert!(may_dial(sa("[::ffff:192.168.0.1]:80"), ip("8.8.8.8")).is_err());
        // The same kinds of network do work from inside.
        assert_eq!(may_dial(sa("127.0.0.1:6881"), ip("127.0.0.5")), Ok(()));
        assert_eq!(may_dial(sa("10.0.0.1:6881"), ip("192.168.1.1")), Ok(()));
        // Scope, not family: a dual-stack private network has both kinds of address.
        assert_eq!(may_dial(sa("[fd00::1]:6881"), ip("10.0.0.1")), Ok(()));
        assert_eq!(may_dial(sa("127.0.0.1:6881"), ip("::1")), Ok(()));
    }

    #[test]
    fn own_addresses_match_in_canonical_form() {
        let own = [sa("203.0.114.7:6881"), sa("[2400::7]:6881")];
        assert!(is_own_address(sa("203.0.114.7:6881"), &own));
        assert!(is_own_address(sa("[::ffff:203.0.114.7]:6881"), &own));
        assert!(is_own_address(sa("[2400::7]:6881"), &own));
        assert!(!is_own_address(sa("203.0.114.7:6882"), &own));
        assert!(!is_own_address(sa("203.0.114.8:6881"), &own));
        assert!(!is_own_address(sa("203.0.114.7:6881"), &[]));
        let mapped_own = [sa("[::ffff:203.0.114.7]:6881")];
        assert!(is_own_address(sa("203.0.114.7:6881"), &mapped_own));
    }

    proptest::proptest! {
        /// The scopes std can tell agree with std, for any address.
        #[test]
        fn ipv4_scopes_agree_with_std(x: u32) {
            let v4 = Ipv4Addr::from(x);
            let s = AddrScope::of(IpAddr::V4(v4));
            proptest::prop_assert_eq!(s == AddrScope::Private, v4.is_private());
            proptest::prop_assert_eq!(s == AddrScope::Loopback, v4.is_loopback());
            proptest::prop_assert_eq!(s == AddrScope::LinkLocal, v4.is_link_local());
            proptest::prop_assert_eq!(s == AddrScope::Multicast, v4.is_multicast());
            proptest::prop_assert_eq!(s == AddrScope::Broadcast, v4.is_broadcast());
            proptest::prop_assert_eq!(s == AddrScope::Unspecified, v4.is_unspecified());
            proptest::prop_assert_eq!(
                s == AddrScope::Reserved && v4.is_documentation(),
                v4.is_documentation()
            );
            // The mapped form is the same address.
            proptest::prop_assert_eq!(AddrScope::of(IpAddr::V6(v4.to_ipv6_mapped())), s);
        }

        #[test]
        fn ipv6_scopes_agree_with_std(x: u128) {
            let v6 = Ipv6Addr::from(x);
            let ip = IpAddr::V6(v6);
            proptest::prop_assert_eq!(canonical_ip(ip), ip.to_canonical());
            if v6.to_ipv4_mapped().is_none() {
                let s = AddrScope::of(ip);
                proptest::prop_assert_eq!(s == AddrScope::Private, v6.is_unique_local());
                proptest::prop_assert_eq!(s == AddrScope::LinkLocal, v6.is_unicast_link_local());
                proptest::prop_assert_eq!(s == AddrScope::Loopback, v6.is_loopback());
                proptest::prop_assert_eq!(s == AddrScope::Multicast, v6.is_multicast());
                proptest::prop_assert_eq!(s == AddrScope::Unspecified, v6.is_unspecified());
            }
        }

        /// Whatever is named, whoever names it: never a panic, and a refusal for every
        /// never-dialable scope and for port 0.
        #[test]
        fn may_dial_refuses_what_no_peer_has(c: u128, port: u16, from: u128) {
            let cand = SocketAddr::new(IpAddr::V6(Ipv6Addr::from(c)), port);
            let from = IpAddr::V6(Ipv6Addr::from(from));
            let scope = AddrScope::of(cand.ip());
            let r = may_dial(cand, from);
            if port == 0 || scope.is_never_dialable() {
                proptest::prop_assert!(r.is_err());
            }
            if port != 0 && scope.is_global() {
                proptest::prop_assert!(r.is_ok());
            }
        }
    }

    #[test]
    fn refusals_say_what_the_remote_did() {
        assert_eq!(DialRefusal::PortZero.to_string(), "named port 0");
        assert_eq!(
            may_dial(sa("10.0.0.1:1"), ip("8.8.8.8"))
                .unwrap_err()
                .to_string(),
            "named a private address from a global address"
        );
        assert_eq!(
            may_dial_on(sa("127.0.0.1:1"), AddrScope::Global)
                .unwrap_err()
                .to_string(),
            "named a loopback address to a node on a global network"
        );
    }
}
