//! Announcing to the external trackers a torrent names: the I/O around the sans-IO
//! [`TrackerClient`] (`http://` GETs on the loop's own connections, `https://` GETs on the
//! worker threads of [`super::https`], BEP 15 datagrams on a UDP socket of their own, host
//! names resolved off the loop), and dialling the peers it reports.
//!
//! A seed connects out to the leechers a tracker reports: transmission, for one, only finds a
//! seed that way (INTEROP.md).

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mio::Waker;
use mio::net::UdpSocket;
use seednode_tracker::client::{ClientEvent, RequestId, TrackerClient, Transmit};
use seednode_tracker::limits::MAX_TRACKER_RESPONSE_LEN;
use tracing::{debug, info, warn};
use ureq::tls::Certificate;

use super::https::HttpsWorkers;

/// Host names waiting for the resolver at most; more transmits fail at once.
const MAX_PENDING_LOOKUPS: usize = 64;

/// How long a resolved host name is reused.
const DNS_CACHE_TTL: Duration = Duration::from_secs(300);

/// Host names remembered at most; the oldest is forgotten first.
const MAX_DNS_CACHE: usize = 256;

/// Peers dialled per tracker reply at most: a seed needs only the leechers, and a reply names
/// at most 200 peers.
pub(super) const MAX_DIALS_PER_REPLY: usize = 20;

/// A peer address is not dialled again within this time (it was tried, or it is connected).
pub(super) const REDIAL_INTERVAL: Duration = Duration::from_secs(300);

/// Addresses remembered as dialled at most; older ones are forgotten first.
pub(super) const MAX_DIAL_MEMORY: usize = 4096;

/// Largest request head of an HTTP announce we write (the URL is bounded by the client).
const MAX_REQUEST_HEAD_LEN: usize = 4096;

/// Work that waits for a host name.
pub(super) enum Pending {
    /// An HTTP GET of `path` with `Host: host_header`.
    Http {
        id: RequestId,
        port: u16,
        host_header: String,
        path: String,
    },
    /// A BEP 15 datagram.
    Udp {
        id: RequestId,
        port: u16,
        payload: Vec<u8>,
    },
}

/// A finished lookup: the host name and its addresses.
type Lookup = (String, io::Result<Vec<IpAddr>>);

/// A lookup's outcome (addresses, or why not) with the work that waited for it.
type Resolved = (Result<Vec<IpAddr>, String>, Vec<Pending>);

/// Resolves host names on a thread of its own (getaddrinfo blocks), answering through the loop's
/// waker.
pub(super) struct Resolver {
    jobs: Option<Sender<String>>,
    /// The loop's waker, for the HTTPS workers started later.
    waker: Arc<Waker>,
    done: Arc<Mutex<Vec<Lookup>>>,
    thread: Option<JoinHandle<()>>,
    cache: HashMap<String, (Vec<IpAddr>, Instant)>,
    /// Work per host name being resolved.
    waiting: HashMap<String, Vec<Pending>>,
}

impl Resolver {
    pub(super) fn new(waker: Arc<Waker>) -> io::Result<Self> {
        let (tx, rx) = mpsc::channel::<String>();
        let done: Arc<Mutex<Vec<Lookup>>> = Arc::new(Mutex::new(Vec::new()));
        let results = Arc::clone(&done);
        let loop_waker = Arc::clone(&waker);
        let thread = std::thread::Builder::new()
            .name("resolver".into())
            .spawn(move || {
                for host in rx {
                    let result = (host.as_str(), 0)
                        .to_socket_addrs()
                        .map(|addrs| addrs.map(|a| a.ip()).collect::<Vec<_>>());
                    results
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push((host, result));
                    // A failed wake leaves the answer queued for the loop's next turn.
                    let _ = waker.wake();
                }
            })?;
        Ok(Self {
            jobs: Some(tx),
            waker: loop_waker,
            done,
            thread: Some(thread),
            cache: HashMap::new(),
            waiting: HashMap::new(),
        })
    }

    /// The cached addresses of `host`, if fresh.
    fn cached(&self, now: Instant, host: &str) -> Option<&[IpAddr]> {
        self.cache
            .get(host)
            .filter(|(_, at)| now.duration_since(*at) < DNS_CACHE_TTL)
            .map(|(a, _)| a.as_slice())
    }

    /// Parks `work` until `host` resolves. `Err(work)` when too many lookups are pending.
    fn enqueue(&mut self, host: &str, work: Pending) -> Result<(), Pending> {
        if let Some(list) = self.waiting.get_mut(host) {
            list.push(work);
            return Ok(());
        }
        if self.waiting.len() >= MAX_PENDING_LOOKUPS {
            return Err(work);
        }
        self.waiting.insert(host.to_owned(), vec![work]);
        if let Some(tx) = &self.jobs {
            let _ = tx.send(host.to_owned());
        }
        Ok(())
    }

    /// Takes finished lookups with the work that waited for them.
    fn finished(&mut self, now: Instant) -> Vec<Resolved> {
        let done: Vec<_> =
            std::mem::take(&mut *self.done.lock().unwrap_or_else(PoisonError::into_inner));
        let mut out = Vec::new();
        for (host, result) in done {
            let work = self.waiting.remove(&host).unwrap_or_default();
            let result = match result {
                Ok(addrs) if !addrs.is_empty() => {
                    if self.cache.len() >= MAX_DNS_CACHE
                        && let Some(oldest) = self
                            .cache
                            .iter()
                            .min_by_key(|(_, (_, at))| *at)
                            .map(|(h, _)| h.clone())
                    {
                        self.cache.remove(&oldest);
                    }
                    self.cache.insert(host, (addrs.clone(), now));
                    Ok(addrs)
                }
                Ok(_) => Err(format!("{host}: no addresses")),
                Err(e) => Err(format!("{host}: {e}")),
            };
            out.push((result, work));
        }
        out
    }
}

impl Drop for Resolver {
    fn drop(&mut self) {
        self.jobs = None;
        // The thread may be inside getaddrinfo; it ends at its next receive. Not joined, so a
        // slow DNS server cannot delay shutdown.
        drop(self.thread.take());
    }
}

/// The announcing side of the node.
pub(super) struct Announcer {
    pub(super) client: TrackerClient,
    pub(super) socket: UdpSocket,
    pub(super) resolver: Resolver,
    rx: Box<[u8]>,
    /// The HTTPS workers, started with the first `https://` announce.
    https: Option<HttpsWorkers>,
    /// CAs trusted for HTTPS trackers besides Mozilla's (`--tracker-ca`).
    extra_roots: Vec<Certificate<'static>>,
}

impl Announcer {
    pub(super) fn new(client: TrackerClient, socket: UdpSocket, resolver: Resolver) -> Self {
        Self {
            client,
            socket,
            resolver,
            rx: vec![0; 2048].into_boxed_slice(),
            https: None,
            extra_roots: Vec::new(),
        }
    }

    /// Queues an HTTPS announce, starting the workers first if need be.
    fn submit_https(&mut self, now: Instant, id: RequestId, url: String) -> Result<(), String> {
        if self.https.is_none() {
            let workers = HttpsWorkers::new(Arc::clone(&self.resolver.waker), &self.extra_roots)
                .map_err(|e| format!("starting the HTTPS workers: {e}"))?;
            self.https = Some(workers);
        }
        match &self.https {
            Some(w) => w.submit(now, id, url).map_err(|e| e.to_string()),
            None => Err("no HTTPS workers".into()),
        }
    }
}

/// Whether `url` is an `https://` URL (scheme case-insensitive).
fn is_https(url: &str) -> bool {
    url.get(..8)
        .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
}

/// Splits `http://host[:port]/path?query` into host, port and path; `None` for other schemes
/// (`https` goes to the workers of [`super::https`] instead).
fn split_http_url(url: &str) -> Option<(String, u16, String)> {
    let rest = url.strip_prefix("http://").or_else(|| {
        url.get(..7)
            .filter(|s| s.eq_ignore_ascii_case("http://"))
            .map(|_| &url[7..])
    })?;
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let path = if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_owned()
    };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']')?;
        (h, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) => p.parse().ok().filter(|&p| p != 0)?,
        None => 80,
    };
    (!host.is_empty()).then(|| (host.to_owned(), port, path))
}

/// The whole `GET` request for an announce.
fn http_get(host_header: &str, path: &str) -> Option<Bytes> {
    let head = format!(
        "GET {path} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: seednode/{}\r\n\
         Accept-Encoding: identity\r\nConnection: close\r\n\r\n",
        env!("CARGO_PKG_VERSION")
    );
    (head.len() <= MAX_REQUEST_HEAD_LEN).then(|| Bytes::from(head))
}

/// What the bytes of an HTTP response say so far.
pub(super) enum ResponseState {
    /// Wait for more (or for the end of the stream).
    Partial,
    /// Status and body.
    Done(u16, Vec<u8>),
    /// Broken or too large.
    Bad(&'static str),
}

/// Parses a tracker's HTTP response from `buf`; `eof` when the server closed the connection.
pub(super) fn parse_response(buf: &[u8], eof: bool) -> ResponseState {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    let head_len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if eof => {
            return ResponseState::Bad("truncated response head");
        }
        Ok(httparse::Status::Partial) if buf.len() > 16 * 1024 => {
            return ResponseState::Bad("response head too large");
        }
        Ok(httparse::Status::Partial) => return ResponseState::Partial,
        Err(_) => return ResponseState::Bad("malformed response"),
    };
    let status = resp.code.unwrap_or(0);
    let mut content_length = None;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            content_length = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok());
        } else if h.name.eq_ignore_ascii_case("transfer-encoding")
            && !h.value.eq_ignore_ascii_case(b"identity")
        {
            return ResponseState::Bad("chunked responses are not supported");
        }
    }
    let body = &buf[head_len..];
    if body.len() > MAX_TRACKER_RESPONSE_LEN
        || content_length.is_some_and(|n| n > MAX_TRACKER_RESPONSE_LEN)
    {
        return ResponseState::Bad("response body too large");
    }
    match content_length {
        Some(n) if body.len() >= n => ResponseState::Done(status, body[..n].to_vec()),
        _ if eof => ResponseState::Done(status, body.to_vec()),
        _ => ResponseState::Partial,
    }
}

impl super::Reactor {
    /// Runs the client's timers, then performs its transmits and handles its events.
    pub(super) fn drive_announcer(&mut self, now: Instant) {
        let Some(a) = &mut self.announcer else { return };
        if a.client.poll_timeout().is_some_and(|t| t <= now) {
            a.client.handle_timeout(now);
        }
        self.flush_announcer(now);
    }

    /// Performs every transmit and handles every event the client has ready.
    pub(super) fn flush_announcer(&mut self, now: Instant) {
        loop {
            let Some(a) = &mut self.announcer else { return };
            if let Some(t) = a.client.poll_transmit() {
                self.perform(now, t);
                continue;
            }
            let Some(event) = a.client.poll_event() else {
                return;
            };
            match event {
                ClientEvent::Announced {
                    info_hash,
                    tracker,
                    event,
                    interval,
                    seeders,
                    leechers,
                    ..
                } => {
                    info!(%info_hash, %tracker, ?event, next_secs = interval.as_secs(), ?seeders, ?leechers, "announced");
                }
                ClientEvent::Failed {
                    info_hash,
                    tracker,
                    reason,
                } => {
                    warn!(%info_hash, %tracker, %reason, "announce failed");
                }
                ClientEvent::Stopped { info_hash } => debug!(%info_hash, "stopped announcing"),
                ClientEvent::Peers { info_hash, peers } => {
                    if let Some(&torrent) = self.by_hash.get(&info_hash) {
                        let source = crate::dial::PeerSource::Tracker(self.peer_source);
                        for addr in peers.into_iter().take(MAX_DIALS_PER_REPLY) {
                            self.dial_peer(now, torrent, addr, source);
                        }
                    }
                }
            }
        }
    }

    fn perform(&mut self, now: Instant, t: Transmit) {
        let (host, work) = match t {
            Transmit::Udp {
                id,
                host,
                port,
                payload,
            } => (host, Pending::Udp { id, port, payload }),
            Transmit::Http { id, url } if is_https(&url) => {
                let Some(a) = &mut self.announcer else { return };
                if let Err(e) = a.submit_https(now, id, url) {
                    self.request_failed(now, id, &e);
                }
                return;
            }
            Transmit::Http { id, url } => match split_http_url(&url) {
                Some((host, port, path)) => {
                    let host_header = if port == 80 {
                        host.clone()
                    } else if host.contains(':') {
                        format!("[{host}]:{port}")
                    } else {
                        format!("{host}:{port}")
                    };
                    (
                        host,
                        Pending::Http {
                            id,
                            port,
                            host_header,
                            path,
                        },
                    )
                }
                None => {
                    self.request_failed(now, id, "malformed http:// tracker URL");
                    return;
                }
            },
        };
        let Some(a) = &mut self.announcer else { return };
        let ip = host.parse::<IpAddr>().ok().or_else(|| {
            a.resolver
                .cached(now, &host)
                .and_then(|ips| ips.first().copied())
        });
        match ip {
            Some(ip) => self.send_pending(now, ip, work),
            None => {
                if let Err(work) = a.resolver.enqueue(&host, work) {
                    self.request_failed(
                        now,
                        pending_id(&work),
                        "too many host names being resolved",
                    );
                }
            }
        }
    }

    /// Hands resolved host names' waiting work on, and HTTPS outcomes to the client (called on
    /// every waker event).
    pub(super) fn on_resolved(&mut self, now: Instant) {
        let Some(a) = &mut self.announcer else { return };
        let https_done = a.https.as_ref().map(HttpsWorkers::finished);
        for (result, work) in a.resolver.finished(now) {
            for w in work {
                match &result {
                    Ok(ips) => self.send_pending(now, ips[0], w),
                    Err(e) => self.request_failed(now, pending_id(&w), e),
                }
            }
        }
        for (id, outcome) in https_done.into_iter().flatten() {
            match outcome {
                Ok((from, status, body)) => self.http_response(now, from, id, status, &body),
                Err(e) => self.request_failed(now, id, &e.to_string()),
            }
        }
        self.flush_announcer(now);
    }

    /// Trusts `certs` (PEM CAs of `--tracker-ca`) for HTTPS trackers, besides Mozilla's roots.
    /// Call before the first announce: workers already started keep their roots.
    pub(crate) fn set_tracker_ca(&mut self, certs: Vec<Certificate<'static>>) {
        if let Some(a) = &mut self.announcer {
            a.extra_roots = certs;
        }
    }

    fn send_pending(&mut self, now: Instant, ip: IpAddr, work: Pending) {
        match work {
            Pending::Udp { id, port, payload } => {
                let Some(a) = &mut self.announcer else { return };
                if let Err(e) = a.socket.send_to(&payload, SocketAddr::new(ip, port)) {
                    self.request_failed(now, id, &format!("send: {e}"));
                }
            }
            Pending::Http {
                id,
                port,
                host_header,
                path,
            } => {
                let Some(request) = http_get(&host_header, &path) else {
                    self.request_failed(now, id, "announce URL too long");
                    return;
                };
                match mio::net::TcpStream::connect(SocketAddr::new(ip, port)) {
                    Ok(stream) => {
                        let addr = SocketAddr::new(ip, port);
                        match self.insert_conn(
                            now,
                            stream,
                            addr,
                            super::conn::ConnState::TrackerFetch { id },
                        ) {
                            Some(key) => self.queue(key, request),
                            None => self.request_failed(now, id, "connection limit reached"),
                        }
                    }
                    Err(e) => self.request_failed(now, id, &format!("connect: {e}")),
                }
            }
        }
    }

    pub(super) fn request_failed(&mut self, now: Instant, id: RequestId, reason: &str) {
        if let Some(a) = &mut self.announcer {
            a.client.handle_request_failed(now, id, reason);
        }
    }

    /// Hands the HTTP response of tracker `from` to the client, and acts on what it says.
    pub(super) fn http_response(
        &mut self,
        now: Instant,
        from: IpAddr,
        id: RequestId,
        status: u16,
        body: &[u8],
    ) {
        if let Some(a) = &mut self.announcer {
            a.client.handle_http_response(now, id, status, body);
        }
        self.peer_source = Some(from);
        self.flush_announcer(now);
        self.peer_source = None;
    }

    /// Reads the client's UDP socket dry (bounded), feeding each datagram to the client.
    pub(super) fn drain_announcer_udp(&mut self, now: Instant) {
        for _ in 0..super::MAX_DATAGRAMS_PER_WAKE {
            let Some(a) = &mut self.announcer else { return };
            match a.socket.recv_from(&mut a.rx) {
                Ok((n, src)) => {
                    let src = seednode_wire::addr::canonical_addr(src);
                    if a.client.handle_udp_datagram(now, src, &a.rx[..n]) {
                        // Peers a reply names are learnt from this tracker.
                        self.peer_source = Some(src.ip());
                        self.flush_announcer(now);
                        self.peer_source = None;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {}
            }
        }
        self.flush_announcer(now);
    }
}

fn pending_id(w: &Pending) -> RequestId {
    match w {
        Pending::Http { id, .. } | Pending::Udp { id, .. } => *id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_http_urls() {
        assert_eq!(
            split_http_url("http://127.0.0.1:6969/announce?info_hash=%12"),
            Some(("127.0.0.1".into(), 6969, "/announce?info_hash=%12".into()))
        );
        assert_eq!(
            split_http_url("HTTP://tracker.example/a"),
            Some(("tracker.example".into(), 80, "/a".into()))
        );
        assert_eq!(
            split_http_url("http://[::1]:80?x=1"),
            Some(("::1".into(), 80, "/?x=1".into()))
        );
        assert_eq!(split_http_url("https://t.example/announce"), None);
        assert!(is_https("HTTPS://t.example/announce"));
        assert!(!is_https("http://t.example/announce"));
        assert!(!is_https("https:/"));
        assert_eq!(split_http_url("http://:80/"), None);
        assert_eq!(split_http_url("http://h:0/"), None);
        assert_eq!(split_http_url("http://h:99999/"), None);
    }

    #[test]
    fn parses_responses_by_length_or_eof() {
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nd1:ae";
        assert!(matches!(
            parse_response(&r[..r.len() - 1], false),
            ResponseState::Partial
        ));
        assert!(matches!(parse_response(r, false), ResponseState::Done(200, b) if b == b"d1:ae"));
        let r = b"HTTP/1.0 200 OK\r\n\r\nd1:ae";
        assert!(matches!(parse_response(r, false), ResponseState::Partial));
        assert!(matches!(parse_response(r, true), ResponseState::Done(200, b) if b == b"d1:ae"));
        let r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nd1:ae\r\n0\r\n\r\n";
        assert!(matches!(parse_response(r, true), ResponseState::Bad(_)));
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n";
        assert!(matches!(parse_response(r, false), ResponseState::Bad(_)));
        assert!(matches!(
            parse_response(b"HTTP/1.1 200", true),
            ResponseState::Bad(_)
        ));
        assert!(matches!(
            parse_response(b"garbage\r\n\r\n", false),
            ResponseState::Bad(_)
        ));
    }
}
