//! NAT port mapping (issue 15): asks the gateway to forward the node's listen port, TCP (peers,
//! HTTP) and UDP (DHT, uTP, the UDP tracker), with UPnP IGD (`WANIPConnection`
//! `AddPortMapping` / `DeletePortMapping` / `GetExternalIPAddress`, UPnP IGD 1.0 and 2.0, through
//! `igd-next`) and with NAT-PMP (RFC 6886, through `natpmp`).
//!
//! The contract: every blocking call (SSDP search, SOAP over HTTP, NAT-PMP's retransmissions) runs
//! on the one worker thread this module starts, never on the event loop. The worker publishes its
//! results in a [`NatStatus`] behind a mutex and wakes the loop through the loop's [`Waker`]; the
//! loop reads it with [`NatHandle::status`]. Leases are renewed at half their lifetime (RFC 6886
//! §3.3), and [`NatHandle::stop`] removes the mappings (RFC 6886 §3.4: lifetime 0; UPnP
//! `DeletePortMapping`) within [`SHUTDOWN_TIMEOUT`]. Nothing the gateway sends can panic the worker
//! or grow memory without bound: NAT-PMP replies are read into a 16-byte buffer by the crate, UPnP
//! bodies are capped by `igd-next` at 1 MiB, and error texts kept here at [`MAX_DETAIL_LEN`].

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::Waker;
use tracing::{info, warn};

/// Lease asked for when the operator sets none: one hour, renewed every half hour. RFC 6886 §3.3
/// recommends 7200 s; an hour keeps a stale mapping short after a crash that skipped removal.
pub(crate) const DEFAULT_LEASE: Duration = Duration::from_secs(3600);

/// Shortest lease accepted (`nat_lease_secs`, `--nat-lease`): tests use short leases to see a
/// renewal; below this the renewals (every half lease) would become chatter.
pub(crate) const MIN_LEASE: Duration = Duration::from_secs(4);

/// Longest lease accepted: one day, the largest `max_lifetime` miniupnpd accepts by default.
pub(crate) const MAX_LEASE: Duration = Duration::from_secs(86_400);

/// How long the SSDP search (UPnP Device Architecture 1.1 §1.3.2, `M-SEARCH`) waits for a gateway
/// to answer. Gateways answer within `MX` = 1–3 s; 2 s keeps a node without a gateway quick.
const SEARCH_TIMEOUT: Duration = Duration::from_secs(2);

/// How long one NAT-PMP request is retried (RFC 6886 §3.1: 250 ms, doubling). The RFC's nine tries
/// take 64 s; four tries (0.25 + 0.5 + 1 s) answer "no gateway" sooner, and the next round asks again.
const NATPMP_TIMEOUT: Duration = Duration::from_millis(1900);

/// Pause between polls of the NAT-PMP socket while a request is pending.
const NATPMP_POLL_INTERVAL: Duration = Duration::from_millis(25);

/// How long [`NatHandle::stop`] waits for the mappings to be removed: the node's shutdown must end
/// within 5 s, and removing four mappings from a working gateway takes milliseconds.
pub(crate) const SHUTDOWN_TIMEOUT: Duration = Duration::from_millis(1500);

/// Longest wait before asking again after a refusal or when no gateway answered: a gateway that
/// boots after the node is found within this time.
const RETRY_INTERVAL: Duration = Duration::from_secs(300);

/// Longest error text kept from a gateway's answer (characters), for the log and the status API.
pub(crate) const MAX_DETAIL_LEN: usize = 160;

/// What the mapping's description says in the gateway's table (UPnP `NewPortMappingDescription`).
const DESCRIPTION: &str = "seednode";

/// How a mapping was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    /// UPnP IGD 1.0/2.0 `WANIPConnection` (or `WANPPPConnection`).
    Upnp,
    /// NAT-PMP, RFC 6886.
    Natpmp,
}

impl Method {
    /// The label used in logs, `/metrics` and the status API.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Upnp => "upnp",
            Self::Natpmp => "natpmp",
        }
    }
}

/// The transport whose port is mapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// Peers and HTTP.
    Tcp,
    /// DHT, uTP and the UDP tracker.
    Udp,
}

impl Protocol {
    /// The label used in logs, `/metrics` and the status API.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
        }
    }
}

/// The outcome of the latest request for one mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// Not asked yet.
    Pending,
    /// The gateway forwards the port.
    Mapped,
    /// A gateway answered and refused (UPnP error, NAT-PMP result code other than 0).
    Refused,
    /// No gateway of this kind answered.
    NoGateway,
    /// Removed at shutdown.
    Removed,
}

impl State {
    /// Every state, in the order `/metrics` lists them.
    pub(crate) const ALL: [Self; 5] = [
        Self::Pending,
        Self::Mapped,
        Self::Refused,
        Self::NoGateway,
        Self::Removed,
    ];

    /// The label used in logs, `/metrics` and the status API.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Mapped => "mapped",
            Self::Refused => "refused",
            Self::NoGateway => "no_gateway",
            Self::Removed => "removed",
        }
    }
}

/// One mapping: a method and a protocol, and what the gateway said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mapping {
    /// How it was asked for.
    pub(crate) method: Method,
    /// Which port.
    pub(crate) protocol: Protocol,
    /// The latest outcome.
    pub(crate) state: State,
    /// The port on the gateway's external address, when mapped.
    pub(crate) external_port: Option<u16>,
    /// The lease the gateway granted (seconds), when mapped.
    pub(crate) lease_secs: Option<u64>,
    /// Successful requests so far (the first mapping, then each renewal).
    pub(crate) grants: u64,
    /// Why it was refused, at most [`MAX_DETAIL_LEN`] characters.
    pub(crate) detail: Option<String>,
}

/// What the worker knows, shared with the loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NatStatus {
    /// The gateway's external address (UPnP `GetExternalIPAddress` or NAT-PMP opcode 0), when
    /// one told it.
    pub(crate) external_ip: Option<IpAddr>,
    /// The internal port mapped (the listen port).
    pub(crate) port: u16,
    /// One entry per method and protocol (four).
    pub(crate) mappings: Vec<Mapping>,
}

impl NatStatus {
    fn new(port: u16) -> Self {
        let mut mappings = Vec::with_capacity(4);
        for method in [Method::Upnp, Method::Natpmp] {
            for protocol in [Protocol::Tcp, Protocol::Udp] {
                mappings.push(Mapping {
                    method,
                    protocol,
                    state: State::Pending,
                    external_port: None,
                    lease_secs: None,
                    grants: 0,
                    detail: None,
                });
            }
        }
        Self {
            external_ip: None,
            port,
            mappings,
        }
    }

    fn entry(&mut self, method: Method, protocol: Protocol) -> &mut Mapping {
        let i = match (method, protocol) {
            (Method::Upnp, Protocol::Tcp) => 0,
            (Method::Upnp, Protocol::Udp) => 1,
            (Method::Natpmp, Protocol::Tcp) => 2,
            (Method::Natpmp, Protocol::Udp) => 3,
        };
        &mut self.mappings[i]
    }
}

/// Settings of the NAT worker.
#[derive(Debug, Clone)]
pub(crate) struct NatConfig {
    /// The address the node listens on (TCP and UDP share its port).
    pub(crate) listen: SocketAddr,
    /// Lease asked for, clamped to [`MIN_LEASE`]..=[`MAX_LEASE`].
    pub(crate) lease: Duration,
}

/// Whether mapping is attempted for a node listening on `ip`: on every interface or on a private
/// IPv4 address (RFC 1918, RFC 6598 shared space), never on loopback or a public address.
pub(crate) fn eligible(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_unspecified()
                || v4.is_private()
                || (v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64)
        }
        IpAddr::V6(v6) => {
            v6.is_unspecified() || v6.to_ipv4_mapped().is_some_and(|v4| eligible(v4.into()))
        }
    }
}

/// Starts the NAT worker for a node listening on `listen` and hands it to the loop, if the
/// address is [`eligible`]; logs why not otherwise. `use_external`: announce the gateway's
/// external address (no `--announce-host`).
pub(crate) fn attach(
    reactor: &mut crate::reactor::Reactor,
    listen: SocketAddr,
    lease: Duration,
    use_external: bool,
) {
    if !eligible(listen.ip()) {
        tracing::debug!(listen = %listen, "NAT port mapping skipped: not a private or wildcard address");
        return;
    }
    let config = NatConfig { listen, lease };
    match NatHandle::start(config, reactor.waker()) {
        Ok(handle) => {
            info!(
                port = listen.port(),
                "asking the gateway for port mappings (UPnP IGD, NAT-PMP)"
            );
            reactor.set_nat(handle, use_external);
        }
        Err(e) => warn!(error = %e, "NAT port mapping not started"),
    }
}

/// The NAT worker as the loop holds it.
#[derive(Debug)]
pub(crate) struct NatHandle {
    shared: Arc<Mutex<NatStatus>>,
    stop: Option<mpsc::Sender<()>>,
    done: mpsc::Receiver<()>,
    thread: Option<JoinHandle<()>>,
}

impl NatHandle {
    /// Starts the worker, which maps at once and then renews.
    ///
    /// # Errors
    /// The thread could not be spawned.
    pub(crate) fn start(config: NatConfig, waker: Arc<Waker>) -> std::io::Result<Self> {
        let lease = config.lease.clamp(MIN_LEASE, MAX_LEASE);
        let shared = Arc::new(Mutex::new(NatStatus::new(config.listen.port())));
        let (stop_tx, stop_rx) = mpsc::channel();
        let (done_tx, done_rx) = mpsc::channel();
        let worker = Worker {
            shared: Arc::clone(&shared),
            waker,
            listen: config.listen,
            lease,
            gateway: None,
        };
        let thread = std::thread::Builder::new()
            .name("nat".into())
            .spawn(move || {
                worker.run(&stop_rx);
                let _ = done_tx.send(());
            })?;
        Ok(Self {
            shared,
            stop: Some(stop_tx),
            done: done_rx,
            thread: Some(thread),
        })
    }

    /// A copy of what the worker knows now.
    pub(crate) fn status(&self) -> NatStatus {
        match self.shared.lock() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Asks the worker to remove the mappings and stop; returns at once. [`Self::wait`] then
    /// waits for it, so the loop can do its own shutdown work in between.
    pub(crate) fn begin_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Waits until `deadline` at most for the worker to finish removing the mappings; a worker
    /// still blocked on an unresponsive gateway is left behind (the process is exiting).
    pub(crate) fn wait(&mut self, deadline: Instant) {
        self.begin_stop();
        let left = deadline.saturating_duration_since(Instant::now());
        match self.done.recv_timeout(left) {
            Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                if let Some(t) = self.thread.take() {
                    let _ = t.join();
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                warn!("NAT mappings not all removed in time; they expire with their lease");
            }
        }
    }
}

/// A UPnP gateway found by the SSDP search, and the LAN address it forwards to.
struct UpnpGateway {
    gateway: igd_next::Gateway,
    local_ip: IpAddr,
}

/// The worker thread's state.
struct Worker {
    shared: Arc<Mutex<NatStatus>>,
    waker: Arc<Waker>,
    listen: SocketAddr,
    lease: Duration,
    gateway: Option<UpnpGateway>,
}

/// Shortens an error text from the gateway to [`MAX_DETAIL_LEN`] characters, control characters
/// escaped.
fn detail(e: &dyn fmt::Display) -> String {
    let text = e.to_string();
    let mut out = String::with_capacity(MAX_DETAIL_LEN.min(text.len()));
    for c in text
        .chars()
        .flat_map(char::escape_default)
        .take(MAX_DETAIL_LEN)
    {
        out.push(c);
    }
    out
}

impl Worker {
    fn run(mut self, stop: &mpsc::Receiver<()>) {
        loop {
            let mapped = self.round();
            let wait = if mapped {
                self.lease / 2
            } else {
                (self.lease / 2).min(RETRY_INTERVAL)
            };
            match stop.recv_timeout(wait) {
                Err(RecvTimeoutError::Timeout) => {}
                Ok(()) | Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        self.remove_all();
    }

    fn update(&self, f: impl FnOnce(&mut NatStatus)) {
        match self.shared.lock() {
            Ok(mut s) => f(&mut s),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
        let _ = self.waker.wake();
    }

    fn record(&self, method: Method, protocol: Protocol, result: Grant) {
        let previous = self.status_of(method, protocol);
        let (state, text) = match &result {
            Ok(_) => (State::Mapped, None),
            Err(Outcome::NoGateway) => (State::NoGateway, None),
            Err(Outcome::Refused(d)) => (State::Refused, Some(d.clone())),
        };
        if previous != state {
            let (m, p) = (method.as_str(), protocol.as_str());
            match &result {
                Ok((port, lease)) => {
                    info!(
                        method = m,
                        protocol = p,
                        external_port = port,
                        lease_secs = lease,
                        "NAT port mapped"
                    );
                }
                Err(Outcome::NoGateway) => {
                    info!(
                        method = m,
                        protocol = p,
                        "NAT port mapping: no gateway answered"
                    );
                }
                Err(Outcome::Refused(d)) => {
                    warn!(method = m, protocol = p, error = %d, "NAT port mapping refused by the gateway");
                }
            }
        }
        self.update(|s| {
            let e = s.entry(method, protocol);
            e.state = state;
            e.detail = text;
            match result {
                Ok((port, lease)) => {
                    e.external_port = Some(port);
                    e.lease_secs = Some(lease);
                    e.grants = e.grants.saturating_add(1);
                }
                Err(_) => {
                    e.external_port = None;
                    e.lease_secs = None;
                }
            }
        });
    }

    fn status_of(&self, method: Method, protocol: Protocol) -> State {
        match self.shared.lock() {
            Ok(mut s) => s.entry(method, protocol).state,
            Err(poisoned) => poisoned.into_inner().entry(method, protocol).state,
        }
    }

    fn set_external_ip(&self, ip: IpAddr) {
        let changed = self
            .shared
            .lock()
            .map(|s| s.external_ip != Some(ip))
            .unwrap_or(true);
        if changed {
            info!(external_ip = %ip, "NAT gateway reports the external address");
            self.update(|s| s.external_ip = Some(ip));
        }
    }

    /// One round of requests (the first, then each renewal); true if any mapping holds.
    fn round(&mut self) -> bool {
        let mut mapped = false;
        for (protocol, result) in self.upnp_round() {
            mapped |= result.is_ok();
            self.record(Method::Upnp, protocol, result);
        }
        for (protocol, result) in self.natpmp_round() {
            mapped |= result.is_ok();
            self.record(Method::Natpmp, protocol, result);
        }
        mapped
    }

    fn upnp_round(&mut self) -> Vec<(Protocol, Grant)> {
        let both = [Protocol::Tcp, Protocol::Udp];
        if self.gateway.is_none() {
            match self.search_upnp() {
                Ok(g) => self.gateway = Some(g),
                Err(o) => return both.map(|p| (p, Err(o.clone()))).to_vec(),
            }
        }
        let Some(g) = &self.gateway else {
            return Vec::new();
        };
        let external_ip = g.gateway.get_external_ip();
        let local = SocketAddr::new(g.local_ip, self.listen.port());
        let lease = u32::try_from(self.lease.as_secs()).unwrap_or(u32::MAX);
        let results: Vec<_> = both
            .iter()
            .map(|p| {
                let r = g
                    .gateway
                    .add_port(
                        upnp_protocol(*p),
                        self.listen.port(),
                        local,
                        lease,
                        DESCRIPTION,
                    )
                    .map(|()| (self.listen.port(), u64::from(lease)))
                    .map_err(|e| Outcome::Refused(detail(&e)));
                (*p, r)
            })
            .collect();
        if results.iter().all(|(_, r)| r.is_err()) {
            // Search again next round: the gateway may have moved or restarted.
            self.gateway = None;
        }
        if let Ok(ip) = external_ip
            && !ip.is_unspecified()
        {
            self.set_external_ip(ip);
        }
        results
    }

    fn search_upnp(&self) -> Result<UpnpGateway, Outcome> {
        let mut options = igd_next::SearchOptions::default();
        options.timeout = Some(SEARCH_TIMEOUT);
        options.single_search_timeout = Some(SEARCH_TIMEOUT);
        options.gateway_ip_version = igd_next::GatewayIpVersion::V4;
        if let IpAddr::V4(ip) = self.listen.ip()
            && !ip.is_unspecified()
        {
            options.bind_addr = SocketAddr::new(ip.into(), 0);
        }
        let gateway = igd_next::search_gateway(options).map_err(|e| match e {
            igd_next::SearchError::IoError(_)
            | igd_next::SearchError::InvalidResponse
            | igd_next::SearchError::NoResponseWithinTimeout => Outcome::NoGateway,
            other => Outcome::Refused(detail(&other)),
        })?;
        let local_ip = local_ip_towards(self.listen.ip(), gateway.addr.ip())
            .ok_or_else(|| Outcome::Refused("no local address reaches the gateway".into()))?;
        Ok(UpnpGateway { gateway, local_ip })
    }

    fn natpmp_round(&self) -> Vec<(Protocol, Grant)> {
        let both = [Protocol::Tcp, Protocol::Udp];
        let Ok(mut client) = natpmp::Natpmp::new() else {
            return both.map(|p| (p, Err(Outcome::NoGateway))).to_vec();
        };
        match natpmp_request(&mut client, Request::PublicAddress) {
            Ok(Reply::PublicAddress(ip)) if !ip.is_unspecified() => self.set_external_ip(ip.into()),
            Ok(_) => {}
            Err(o) => return both.map(|p| (p, Err(o.clone()))).to_vec(),
        }
        let lease = u32::try_from(self.lease.as_secs()).unwrap_or(u32::MAX);
        both.map(|p| {
            let r = natpmp_request(&mut client, Request::Map(p, self.listen.port(), lease))
                .and_then(|reply| match reply {
                    Reply::Mapped(port, lifetime) => Ok((port, lifetime)),
                    Reply::PublicAddress(_) => {
                        Err(Outcome::Refused("answer to another request".into()))
                    }
                });
            (p, r)
        })
        .to_vec()
    }

    /// Removes every mapping that holds (UPnP `DeletePortMapping`; NAT-PMP a request with
    /// lifetime 0, RFC 6886 §3.4).
    fn remove_all(&self) {
        let status = match self.shared.lock() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        let mut natpmp_client = None;
        for m in status.mappings.iter().filter(|m| m.state == State::Mapped) {
            let removed = match m.method {
                Method::Upnp => self.gateway.as_ref().is_some_and(|g| {
                    g.gateway
                        .remove_port(
                            upnp_protocol(m.protocol),
                            m.external_port.unwrap_or(status.port),
                        )
                        .is_ok()
                }),
                Method::Natpmp => {
                    if natpmp_client.is_none() {
                        natpmp_client = natpmp::Natpmp::new().ok();
                    }
                    natpmp_client.as_mut().is_some_and(|c| {
                        natpmp_request(c, Request::Map(m.protocol, status.port, 0)).is_ok()
                    })
                }
            };
            info!(
                method = m.method.as_str(),
                protocol = m.protocol.as_str(),
                removed,
                "NAT port mapping removed"
            );
            self.update(|s| {
                let e = s.entry(m.method, m.protocol);
                e.state = State::Removed;
                e.external_port = None;
            });
        }
    }
}

/// A gateway's answer to one mapping request: the external port and the lease granted (seconds),
/// or why there is none.
type Grant = Result<(u16, u64), Outcome>;

/// Why a request found no mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// Nobody answered.
    NoGateway,
    /// A gateway answered no; the text says why.
    Refused(String),
}

fn upnp_protocol(p: Protocol) -> igd_next::PortMappingProtocol {
    match p {
        Protocol::Tcp => igd_next::PortMappingProtocol::TCP,
        Protocol::Udp => igd_next::PortMappingProtocol::UDP,
    }
}

/// The local address the kernel picks to reach `gateway`, or the listen address when it is one.
fn local_ip_towards(listen: IpAddr, gateway: IpAddr) -> Option<IpAddr> {
    if !listen.is_unspecified() {
        return Some(listen);
    }
    let bind: IpAddr = if gateway.is_ipv4() {
        Ipv4Addr::UNSPECIFIED.into()
    } else {
        std::net::Ipv6Addr::UNSPECIFIED.into()
    };
    let socket = UdpSocket::bind((bind, 0)).ok()?;
    socket.connect((gateway, 1900)).ok()?;
    Some(socket.local_addr().ok()?.ip())
}

/// A NAT-PMP request (RFC 6886 §3.2 opcode 0, §3.3 opcodes 1 and 2).
#[derive(Debug, Clone, Copy)]
enum Request {
    PublicAddress,
    /// Protocol, internal (and suggested external) port, lifetime in seconds.
    Map(Protocol, u16, u32),
}

/// A NAT-PMP answer that matched its request.
#[derive(Debug, Clone, Copy)]
enum Reply {
    PublicAddress(Ipv4Addr),
    /// External port, lifetime in seconds.
    Mapped(u16, u64),
}

/// Sends one NAT-PMP request and waits for its answer, at most [`NATPMP_TIMEOUT`]. An answer of
/// another opcode or for another port is ignored (RFC 6886 §3.5: match on opcode).
fn natpmp_request(client: &mut natpmp::Natpmp, request: Request) -> Result<Reply, Outcome> {
    let sent = match request {
        Request::PublicAddress => client.send_public_address_request(),
        Request::Map(p, port, lifetime) => {
            let proto = match p {
                Protocol::Tcp => natpmp::Protocol::TCP,
                Protocol::Udp => natpmp::Protocol::UDP,
            };
            client.send_port_mapping_request(proto, port, port, lifetime)
        }
    };
    if sent.is_err() {
        return Err(Outcome::NoGateway);
    }
    let deadline = Instant::now() + NATPMP_TIMEOUT;
    loop {
        match client.read_response_or_retry() {
            Ok(natpmp::Response::Gateway(g)) => {
                if let Request::PublicAddress = request {
                    return Ok(Reply::PublicAddress(*g.public_address()));
                }
            }
            Ok(natpmp::Response::TCP(m)) => {
                if let Request::Map(Protocol::Tcp, port, _) = request
                    && m.private_port() == port
                {
                    return Ok(Reply::Mapped(m.public_port(), m.lifetime().as_secs()));
                }
            }
            Ok(natpmp::Response::UDP(m)) => {
                if let Request::Map(Protocol::Udp, port, _) = request
                    && m.private_port() == port
                {
                    return Ok(Reply::Mapped(m.public_port(), m.lifetime().as_secs()));
                }
            }
            Err(natpmp::Error::NATPMP_TRYAGAIN) => {}
            Err(
                natpmp::Error::NATPMP_ERR_NOGATEWAYSUPPORT
                | natpmp::Error::NATPMP_ERR_RECVFROM
                | natpmp::Error::NATPMP_ERR_SENDERR,
            ) => return Err(Outcome::NoGateway),
            // A packet from elsewhere than the gateway: keep waiting for the real answer.
            Err(natpmp::Error::NATPMP_ERR_WRONGPACKETSOURCE) => {}
            Err(e) => return Err(Outcome::Refused(detail(&format!("{e:?}")))),
        }
        if Instant::now() >= deadline {
            return Err(Outcome::NoGateway);
        }
        std::thread::sleep(NATPMP_POLL_INTERVAL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eligible_only_on_unspecified_and_private_addresses() {
        assert!(eligible("0.0.0.0".parse().unwrap()));
        assert!(eligible("::".parse().unwrap()));
        assert!(eligible("192.168.1.5".parse().unwrap()));
        assert!(eligible("10.0.0.1".parse().unwrap()));
        assert!(eligible("100.64.0.1".parse().unwrap()));
        assert!(eligible("::ffff:192.168.1.5".parse().unwrap()));
        assert!(!eligible("127.0.0.1".parse().unwrap()));
        assert!(!eligible("::1".parse().unwrap()));
        assert!(!eligible("8.8.8.8".parse().unwrap()));
        assert!(!eligible("2001:db8::1".parse().unwrap()));
    }

    #[test]
    fn detail_is_bounded_and_escaped() {
        let long = "x\u{7}".repeat(1000);
        let d = detail(&long);
        assert!(d.chars().count() <= MAX_DETAIL_LEN);
        assert!(!d.contains('\u{7}'));
    }

    #[test]
    fn status_has_one_entry_per_method_and_protocol() {
        let mut s = NatStatus::new(6881);
        assert_eq!(s.mappings.len(), 4);
        s.entry(Method::Natpmp, Protocol::Udp).state = State::Mapped;
        assert_eq!(s.mappings[3].state, State::Mapped);
        assert!(s.mappings[..3].iter().all(|m| m.state == State::Pending));
    }
}
