//! Sockets and addresses for the subcommands: binding with errors that say which flag to
//! change, the address other machines can reach, the DHT node, and the OS RNG.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use seednode_wire::{InfoHash, PeerId};
use tracing::{info, warn};

use super::CliError;
use crate::reactor;

/// Backlog of pending connections on each listener.
const LISTEN_BACKLOG: i32 = 1024;

/// How long start-up waits for bootstrap host names to resolve (there may be no DNS at all).
const BOOTSTRAP_RESOLVE_TIMEOUT: Duration = Duration::from_secs(3);

/// Bootstrap hosts named one by one when they fail to resolve; the rest are counted.
const BOOTSTRAP_FAILURES_NAMED: usize = 2;

/// Where the route to the internet is looked up (RFC 5737 TEST-NET-1 and RFC 3849 documentation
/// addresses: routed like any public address, yet no host answers there). A UDP `connect` only
/// picks the route and the source address; no packet is sent.
const ROUTE_PROBE_V4: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 9);
const ROUTE_PROBE_V6: SocketAddr = SocketAddr::new(
    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
    9,
);

/// The hint appended to a failed bind of `flag`.
fn bind_hint(e: &std::io::Error, flag: &str) -> String {
    match e.kind() {
        std::io::ErrorKind::AddrInUse => format!(
            "; another program (or another seednode) uses this port: choose another with \
             {flag} (e.g. {flag} :7000)"
        ),
        std::io::ErrorKind::AddrNotAvailable => {
            format!("; no interface of this machine has that address: check {flag}")
        }
        std::io::ErrorKind::PermissionDenied => {
            format!("; ports below 1024 need privileges: choose a higher one with {flag}")
        }
        _ => String::new(),
    }
}

/// The address to listen on when none is given: `[::]`, every interface of both families
/// (one dual-stack socket, `IPV6_V6ONLY` off: IPv4 peers arrive as `::ffff:a.b.c.d` and are
/// unwrapped everywhere by `seednode_wire::addr::canonical_ip`), or `0.0.0.0` on a machine
/// where IPv6 sockets cannot be made or bound (IPv6 disabled in the kernel), with a note.
pub(crate) fn any_ip() -> IpAddr {
    use socket2::{Domain, Socket, Type};
    let dual_stack = || -> std::io::Result<()> {
        let socket = Socket::new(Domain::IPV6, Type::DGRAM, None)?;
        socket.set_only_v6(false)?;
        socket.bind(&SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), 0).into())
    };
    match dual_stack() {
        Ok(()) => Ipv6Addr::UNSPECIFIED.into(),
        Err(e) => {
            info!(error = %e, "IPv6 is not available here: listening on IPv4 only (0.0.0.0)");
            Ipv4Addr::UNSPECIFIED.into()
        }
    }
}

/// A TCP listener on `addr` (dual-stack for `[::]`); `flag` names the option that sets it.
pub(crate) fn bind(addr: SocketAddr, flag: &str) -> Result<std::net::TcpListener, CliError> {
    use socket2::{Domain, Protocol, Socket, Type};
    let bind = || -> std::io::Result<std::net::TcpListener> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_reuse_address(true)?;
        if addr.is_ipv6() {
            socket.set_only_v6(false)?;
        }
        socket.bind(&addr.into())?;
        socket.listen(LISTEN_BACKLOG)?;
        Ok(socket.into())
    };
    bind().map_err(|e| format!("cannot listen on {addr}: {e}{}", bind_hint(&e, flag)))
}

/// A UDP socket on `addr` (dual-stack for `[::]`, whatever the system's
/// `net.ipv6.bindv6only`); `flag` names the option that sets it.
pub(crate) fn bind_udp(addr: SocketAddr, flag: &str) -> Result<UdpSocket, CliError> {
    use socket2::{Domain, Protocol, Socket, Type};
    let bind = || -> std::io::Result<UdpSocket> {
        let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
        if addr.is_ipv6() {
            socket.set_only_v6(false)?;
        }
        socket.bind(&addr.into())?;
        Ok(socket.into())
    };
    bind().map_err(|e| format!("cannot listen on udp {addr}: {e}{}", bind_hint(&e, flag)))
}

/// The address of the interface that reaches the internet (the default route's source
/// address), or `None` offline.
pub(crate) fn primary_ip(v6: bool) -> Option<IpAddr> {
    let (bind, probe): (IpAddr, SocketAddr) = if v6 {
        (Ipv6Addr::UNSPECIFIED.into(), ROUTE_PROBE_V6)
    } else {
        (Ipv4Addr::UNSPECIFIED.into(), ROUTE_PROBE_V4)
    };
    let socket = UdpSocket::bind(SocketAddr::new(bind, 0)).ok()?;
    socket.connect(probe).ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_unspecified()).then_some(ip)
}

/// A fresh 32-byte secret for keyed MACs (UDP connection ids, tokens).
pub(crate) fn random_secret() -> [u8; 32] {
    use ring::rand::SecureRandom;
    let mut secret = [0u8; 32];
    if ring::rand::SystemRandom::new().fill(&mut secret).is_err() {
        // Without the OS RNG there is no safe secret; refusing to start beats a guessable one.
        eprintln!("error: the operating system's random number generator failed");
        std::process::exit(1);
    }
    secret
}

pub(crate) fn new_peer_id() -> PeerId {
    use ring::rand::SecureRandom;
    let mut id = [0u8; 20];
    id[..8].copy_from_slice(b"-SN0100-");
    // Without randomness the ID is still valid, just predictable.
    let _ = ring::rand::SystemRandom::new().fill(&mut id[8..]);
    PeerId(id)
}

/// `$XDG_STATE_HOME/seednode/dht_nodes` or `~/.local/state/seednode/dht_nodes`.
pub(crate) fn default_dht_state() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))?;
    Some(base.join("seednode").join("dht_nodes"))
}

/// Resolves `HOST:PORT` bootstrap names on threads of their own, waiting at most
/// [`BOOTSTRAP_RESOLVE_TIMEOUT`]; names that fail or are late are skipped, with one warning
/// for all of them.
fn resolve_bootstrap(names: &[String]) -> Vec<SocketAddr> {
    use std::net::ToSocketAddrs;
    let (tx, rx) = std::sync::mpsc::channel();
    let names: Vec<&String> = names.iter().filter(|n| n.as_str() != "none").collect();
    for name in &names {
        let (tx, name) = (tx.clone(), (*name).clone());
        let _ = std::thread::Builder::new()
            .name("resolve".into())
            .spawn(move || {
                let addrs: Vec<SocketAddr> = name
                    .to_socket_addrs()
                    .map(Iterator::collect)
                    .unwrap_or_default();
                let _ = tx.send((name, addrs));
            });
    }
    drop(tx);
    let deadline = Instant::now() + BOOTSTRAP_RESOLVE_TIMEOUT;
    let mut out = Vec::new();
    let mut resolved = Vec::new();
    while let Ok((name, addrs)) =
        rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
    {
        if !addrs.is_empty() {
            resolved.push(name);
        }
        out.extend(addrs);
    }
    let failed: Vec<&str> = names
        .iter()
        .filter(|n| !resolved.contains(n))
        .map(|n| n.as_str())
        .collect();
    if !failed.is_empty() {
        let mut named = failed[..failed.len().min(BOOTSTRAP_FAILURES_NAMED)].join(", ");
        if failed.len() > BOOTSTRAP_FAILURES_NAMED {
            named.push_str(&format!(
                " and {} more",
                failed.len() - BOOTSTRAP_FAILURES_NAMED
            ));
        }
        warn!(
            "DHT: {} of {} bootstrap hosts did not resolve ({named}); {}",
            failed.len(),
            names.len(),
            if out.is_empty() {
                "offline? The DHT waits for nodes from saved state or peers (--no-dht turns it off)"
            } else {
                "starting from the others"
            }
        );
    }
    out
}

/// A DHT node bootstrapping from `bootstrap`, with the routing table of the last run from
/// `state` (and the node ID it had then). `local_ip` is the address its socket is bound to or
/// reached at: internal addresses (loopback, LAN) are used only when it is one of them.
pub(crate) fn new_dht(
    bootstrap: &[String],
    state: Option<PathBuf>,
    external_ip: Option<IpAddr>,
    local_ip: IpAddr,
) -> (seednode_dht::Dht, Option<PathBuf>) {
    let config = seednode_dht::Config {
        bootstrap_nodes: resolve_bootstrap(bootstrap),
        local_scope: seednode_dht::AddrScope::of(local_ip),
        ..seednode_dht::Config::default()
    };
    let saved = state
        .as_deref()
        .map(reactor::dht::load_nodes)
        .unwrap_or_default();
    let secret = random_secret();
    let seed = u64::from_le_bytes(secret[..8].try_into().unwrap_or([0; 8]));
    let id = match external_ip.filter(|ip| !ip.is_loopback() && !ip.is_unspecified()) {
        Some(ip) => seednode_dht::IdSource::ExternalIp(ip),
        None => {
            let mut id = [0u8; 20];
            id.copy_from_slice(&random_secret()[..20]);
            seednode_dht::IdSource::Fixed(seednode_dht::NodeId(id))
        }
    };
    let mut dht = seednode_dht::Dht::new(config, id, random_secret(), seed, Instant::now());
    dht.import_nodes(&saved);
    let _ = dht.bootstrap(Instant::now());
    info!(node_id = %InfoHash(dht.node_id().0), saved_nodes = saved.len(), "DHT node started");
    (dht, state)
}
