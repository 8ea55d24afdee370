//! An HTTP tracker load generator: `C` connections, each a thread sending one request at a time,
//! announces (BEP 3 with BEP 23 `compact=1`) and scrapes (BEP 48) of simulated peers over the
//! same Zipf-distributed swarms as the UDP generator, for a fixed time.
//!
//! A connection is reused while the tracker keeps it open (HTTP/1.1 keep-alive) and opened anew
//! when it answers `Connection: close` (as seednode and opentracker do) or closes. Against a
//! loopback tracker connection `j` binds its own source address (`first_source + j`), so peers
//! of distinct connections have distinct IPs; peer `i` announces port `1024 + i / C`.
//!
//! Responses are untrusted: the head is read into a [`MAX_HTTP_HEAD_LEN`] buffer and parsed with
//! httparse (at most [`MAX_HTTP_HEADERS`] headers), the body is bounded by `Content-Length` and
//! [`MAX_HTTP_BODY_LEN`], and announce bodies are decoded with the tracker client's own parser.

use std::io::{self, Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use seednode_tracker::client::response::{HttpAnnounceResponse, parse_http_announce};
use seednode_wire::bencode;
use seednode_wire::percent;
use seednode_wire::rng::Rng;

use super::Histogram;
use super::limits::{
    FIRST_PEER_PORT, HTTP_REQUEST_TIMEOUT, MAX_HTTP_BODY_LEN, MAX_HTTP_HEAD_LEN, MAX_HTTP_HEADERS,
    NUMWANT, PORTS_PER_SOURCE, SEEDER_PERCENT,
};
use super::swarm::{Swarms, is_seeder};
use super::tracker_udp::TrackerReport;

/// An HTTP tracker run.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// The URL as given, for the report.
    pub url: String,
    /// The tracker's resolved address.
    pub server: SocketAddr,
    /// `Host` header value (`host:port`).
    pub host: String,
    /// Path and query of the announce URL (`/announce`, maybe with `?passkey=..`).
    pub announce_path: String,
    /// Path and query of the scrape URL (BEP 48: the last `announce` replaced by `scrape`), if
    /// the announce path allows one.
    pub scrape_path: Option<String>,
    /// How long to send.
    pub duration: Duration,
    /// Simulated peers.
    pub peers: u64,
    /// Concurrent connections (threads).
    pub connections: usize,
    /// Source address of the first connection to a loopback tracker.
    pub first_source: Ipv4Addr,
    /// Weights of announce and scrape requests (scrapes are skipped without a scrape path).
    pub mix: [u32; 2],
    /// Info-hashes per scrape.
    pub scrape_hashes: usize,
    /// Seed of the request stream.
    pub seed: u64,
}

/// Why an HTTP URL cannot be benchmarked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Not `http://`.
    #[error("only http:// tracker URLs can be benchmarked, not {0:?}")]
    Scheme(String),
    /// No host.
    #[error("the URL has no host: {0:?}")]
    NoHost(String),
}

/// The parts of an `http://host[:port]/path?query` URL: `(host:port, path and query)`.
///
/// # Errors
/// [`UrlError`] for another scheme or a missing host.
pub fn split_url(url: &str) -> Result<(String, String), UrlError> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| UrlError::Scheme(url.to_owned()))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/announce"),
    };
    if authority.is_empty() || authority.starts_with(':') {
        return Err(UrlError::NoHost(url.to_owned()));
    }
    let has_port = match authority.rfind(':') {
        Some(i) => !authority[i..].contains(']'),
        None => false,
    };
    let host_port = if has_port {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    Ok((host_port, path.to_owned()))
}

/// BEP 48: the scrape path of an announce path, when its last segment starts with `announce`.
#[must_use]
pub fn scrape_path(announce: &str) -> Option<String> {
    let (path, query) = announce
        .split_once('?')
        .map_or((announce, None), |(p, q)| (p, Some(q)));
    let slash = path.rfind('/')?;
    let last = &path[slash + 1..];
    let tail = last.strip_prefix("announce")?;
    let mut s = format!("{}scrape{tail}", &path[..=slash]);
    if let Some(q) = query {
        s.push('?');
        s.push_str(q);
    }
    Some(s)
}

/// Runs the load of `config` over `swarms`; `progress` gets the responses so far from time to
/// time (from the calling thread).
#[must_use]
pub fn run(config: &HttpConfig, swarms: &Swarms, progress: &mut dyn FnMut(u64)) -> TrackerReport {
    let start = Instant::now();
    let cpu_start = super::process_cpu_secs("self").ok();
    let done = std::sync::atomic::AtomicU64::new(0);
    let (reports, latency) = std::thread::scope(|s| {
        let handles: Vec<_> = (0..config.connections)
            .map(|j| {
                let done = &done;
                s.spawn(move || Worker::new(config, swarms, j, done).run(start))
            })
            .collect();
        while handles.iter().any(|h| !h.is_finished()) {
            progress(done.load(std::sync::atomic::Ordering::Relaxed));
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut reports = Vec::with_capacity(handles.len());
        let mut latency = Histogram::new();
        for h in handles {
            match h.join() {
                Ok((r, l)) => {
                    latency.merge(&l);
                    reports.push(r);
                }
                Err(_) => {
                    let mut r = TrackerReport::default();
                    r.count_error("a connection thread panicked");
                    r.io_errors += 1;
                    reports.push(r);
                }
            }
        }
        (reports, latency)
    });
    let mut report = TrackerReport {
        tracker: config.url.clone(),
        ..TrackerReport::default()
    };
    for r in &reports {
        report.merge(r);
    }
    report.generator_cpu_secs = super::process_cpu_secs("self")
        .ok()
        .zip(cpu_start)
        .map(|(end, start)| end - start);
    report.finish(start.elapsed().as_secs_f64(), &latency);
    report
}

/// One `read` that waits at most until `deadline` (`TimedOut` past it).
fn read_by(stream: &mut TcpStream, buf: &mut [u8], deadline: Instant) -> io::Result<usize> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(io::ErrorKind::TimedOut.into());
    }
    stream.set_read_timeout(Some(left))?;
    loop {
        match stream.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

/// What a request was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Announce,
    Scrape,
}

/// One connection's loop.
struct Worker<'a> {
    o: &'a HttpConfig,
    swarms: &'a Swarms,
    index: usize,
    rng: Rng,
    stream: Option<TcpStream>,
    request: String,
    head: Vec<u8>,
    body: Vec<u8>,
    report: TrackerReport,
    latency: Histogram,
    done: &'a std::sync::atomic::AtomicU64,
}

/// A failed exchange: counted under its kind, and the connection is dropped.
enum Failure {
    Timeout,
    Io(io::Error),
    Malformed(&'static str),
}

impl<'a> Worker<'a> {
    fn new(
        o: &'a HttpConfig,
        swarms: &'a Swarms,
        index: usize,
        done: &'a std::sync::atomic::AtomicU64,
    ) -> Self {
        Self {
            o,
            swarms,
            index,
            rng: Rng::from_u64(o.seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            stream: None,
            request: String::with_capacity(512),
            head: vec![0; MAX_HTTP_HEAD_LEN],
            body: Vec::with_capacity(4096),
            report: TrackerReport::default(),
            latency: Histogram::new(),
            done,
        }
    }

    fn run(mut self, start: Instant) -> (TrackerReport, Histogram) {
        let end = start + self.o.duration;
        loop {
            let now = Instant::now();
            if now >= end {
                break;
            }
            let kind = self.pick_kind();
            self.build(kind);
            self.report.sent += 1;
            let left = end - now;
            match self.exchange(left.min(HTTP_REQUEST_TIMEOUT)) {
                Ok((close, status_ok)) => {
                    if status_ok {
                        self.latency.record(now.elapsed());
                        self.on_body(kind);
                    }
                    if close {
                        self.stream = None;
                    }
                }
                Err(f) => {
                    self.stream = None;
                    match f {
                        Failure::Timeout if Instant::now() >= end => {
                            self.report.sent -= 1; // cut by the end of the run, not a failure
                        }
                        Failure::Timeout => {
                            self.report.timeouts += 1;
                            self.report.count_error("timeout (no response in 5 s)");
                        }
                        Failure::Io(e) => {
                            self.report.io_errors += 1;
                            self.report.count_error(&format!("I/O: {}", e.kind()));
                            // A refused connection would otherwise spin: pause a little.
                            std::thread::sleep(Duration::from_millis(10));
                        }
                        Failure::Malformed(why) => {
                            self.report.malformed += 1;
                            self.report.count_error(why);
                        }
                    }
                }
            }
        }
        (self.report, self.latency)
    }

    fn pick_kind(&mut self) -> Kind {
        let [a, s] = self.o.mix.map(u64::from);
        if self.o.scrape_path.is_none() || s == 0 {
            return Kind::Announce;
        }
        if self.rng.next_u64() % (a + s).max(1) < a {
            Kind::Announce
        } else {
            Kind::Scrape
        }
    }

    fn build(&mut self, kind: Kind) {
        let o = self.o;
        let r = &mut self.request;
        r.clear();
        r.push_str("GET ");
        match kind {
            Kind::Announce => {
                let conns = o.connections as u64;
                let per_conn = o
                    .peers
                    .saturating_sub(self.index as u64)
                    .div_ceil(conns)
                    .max(1);
                let k = self.rng.next_u64() % per_conn;
                let peer = k * conns + self.index as u64;
                r.push_str(&o.announce_path);
                r.push(if o.announce_path.contains('?') {
                    '&'
                } else {
                    '?'
                });
                r.push_str("info_hash=");
                percent::encode(&self.swarms.torrent_of(peer).0, r);
                let mut peer_id = [0u8; 20];
                peer_id[..8].copy_from_slice(b"-SB0001-");
                peer_id[8..16].copy_from_slice(&peer.to_be_bytes());
                r.push_str("&peer_id=");
                percent::encode(&peer_id, r);
                let left = if is_seeder(peer, SEEDER_PERCENT) {
                    0
                } else {
                    1 << 20
                };
                let port = u64::from(FIRST_PEER_PORT) + k % PORTS_PER_SOURCE;
                r.push_str(&format!(
                    "&port={port}&uploaded=0&downloaded=0&left={left}&compact=1&no_peer_id=1\
                     &numwant={NUMWANT}&key={:08x}",
                    peer as u32
                ));
            }
            Kind::Scrape => {
                let path = o.scrape_path.as_deref().unwrap_or("/scrape");
                r.push_str(path);
                let mut sep = if path.contains('?') { '&' } else { '?' };
                for _ in 0..o.scrape_hashes {
                    let x = self.rng.next_u64();
                    r.push(sep);
                    sep = '&';
                    r.push_str("info_hash=");
                    percent::encode(&self.swarms.pick(x).0, r);
                }
            }
        }
        r.push_str(" HTTP/1.1\r\nHost: ");
        r.push_str(&o.host);
        r.push_str("\r\nUser-Agent: seednode-bench\r\nAccept-Encoding: identity\r\n\r\n");
    }

    fn connect(&self, timeout: Duration) -> io::Result<TcpStream> {
        let stream = if self.o.server.ip().is_loopback() && self.o.server.is_ipv4() {
            let ip = u32::from(self.o.first_source)
                .checked_add(self.index as u32)
                .map_or(Ipv4Addr::LOCALHOST, Ipv4Addr::from);
            let socket = socket2::Socket::new(
                socket2::Domain::IPV4,
                socket2::Type::STREAM,
                Some(socket2::Protocol::TCP),
            )?;
            socket.bind(&SocketAddr::new(IpAddr::V4(ip), 0).into())?;
            socket.connect_timeout(&self.o.server.into(), timeout)?;
            socket.into()
        } else {
            TcpStream::connect_timeout(&self.o.server, timeout)?
        };
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    /// Sends the request and reads the response into `self.body`; returns whether the
    /// connection must be closed after it, and whether the status was 200 (another status is
    /// already counted).
    fn exchange(&mut self, timeout: Duration) -> Result<(bool, bool), Failure> {
        let timeout = timeout.max(Duration::from_millis(1));
        // The whole exchange, however slowly a tracker trickles its bytes.
        let deadline = Instant::now() + timeout;
        let map_io = |e: io::Error| match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Failure::Timeout,
            _ => Failure::Io(e),
        };
        let fresh = self.stream.is_none();
        if fresh {
            self.stream = Some(self.connect(timeout).map_err(map_io)?);
        }
        let Some(stream) = self.stream.as_mut() else {
            return Err(Failure::Malformed("no connection"));
        };
        stream
            .set_read_timeout(Some(timeout))
            .map_err(Failure::Io)?;
        stream
            .set_write_timeout(Some(timeout))
            .map_err(Failure::Io)?;
        if let Err(e) = stream.write_all(self.request.as_bytes()) {
            return Err(map_io(e));
        }
        // The head: read until "\r\n\r\n", at most MAX_HTTP_HEAD_LEN bytes.
        let mut got = 0;
        let (head_len, status, close, content_length) = loop {
            if got == self.head.len() {
                return Err(Failure::Malformed("response head over 8 KiB"));
            }
            let n = read_by(stream, &mut self.head[got..], deadline).map_err(map_io)?;
            if n == 0 {
                return Err(if got == 0 && !fresh {
                    // A kept-alive connection the tracker closed meanwhile: not its fault.
                    Failure::Io(io::Error::from(io::ErrorKind::ConnectionAborted))
                } else {
                    Failure::Malformed("connection closed inside the response head")
                });
            }
            got += n;
            let mut headers = [httparse::EMPTY_HEADER; MAX_HTTP_HEADERS];
            let mut resp = httparse::Response::new(&mut headers);
            match resp.parse(&self.head[..got]) {
                Ok(httparse::Status::Complete(len)) => {
                    let mut close = resp.version != Some(1);
                    let mut content_length = None;
                    for h in resp.headers.iter() {
                        if h.name.eq_ignore_ascii_case("connection") {
                            close = h.value.eq_ignore_ascii_case(b"close");
                        } else if h.name.eq_ignore_ascii_case("content-length") {
                            content_length = std::str::from_utf8(h.value)
                                .ok()
                                .and_then(|v| v.trim().parse::<usize>().ok());
                        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                            return Err(Failure::Malformed("chunked responses are not supported"));
                        }
                    }
                    break (len, resp.code.unwrap_or(0), close, content_length);
                }
                Ok(httparse::Status::Partial) => {}
                Err(_) => return Err(Failure::Malformed("response head is not HTTP/1.x")),
            }
        };
        self.body.clear();
        self.body.extend_from_slice(&self.head[head_len..got]);
        match content_length {
            Some(len) if len > MAX_HTTP_BODY_LEN => {
                return Err(Failure::Malformed("response body over the 128 KiB limit"));
            }
            Some(len) => {
                if self.body.len() > len {
                    return Err(Failure::Malformed("more bytes than Content-Length"));
                }
                let mut at = self.body.len();
                self.body.resize(len, 0);
                while at < len {
                    match read_by(stream, &mut self.body[at..], deadline).map_err(map_io)? {
                        0 => return Err(Failure::Malformed("connection closed inside the body")),
                        n => at += n,
                    }
                }
            }
            None => {
                // Until the tracker closes, bounded.
                let mut chunk = [0u8; 4096];
                loop {
                    let n = read_by(stream, &mut chunk, deadline).map_err(map_io)?;
                    if n == 0 {
                        break;
                    }
                    if self.body.len() + n > MAX_HTTP_BODY_LEN {
                        return Err(Failure::Malformed("response body over the 128 KiB limit"));
                    }
                    self.body.extend_from_slice(&chunk[..n]);
                }
            }
        }
        if status != 200 {
            self.report.error_responses += 1;
            self.report.count_error(&format!("HTTP status {status}"));
            return Ok((close || content_length.is_none(), false));
        }
        Ok((close || content_length.is_none(), true))
    }

    /// Counts the 200 response in `self.body`.
    fn on_body(&mut self, kind: Kind) {
        match kind {
            Kind::Announce => match parse_http_announce(&self.body) {
                Ok(HttpAnnounceResponse::Success(reply)) => {
                    self.report.announces += 1;
                    self.report.add_peers(reply.peers.len() as u64);
                }
                Ok(HttpAnnounceResponse::Failure(reason)) => {
                    self.report.error_responses += 1;
                    self.report
                        .count_error(&format!("failure reason: {reason}"));
                }
                Err(_) => {
                    self.report.malformed += 1;
                    self.report
                        .count_error("announce response is not a bencoded dictionary");
                }
            },
            Kind::Scrape => match bencode::decode(&self.body) {
                Ok(v) if v.as_dict().is_some_and(|d| d.get(b"files").is_some()) => {
                    self.report.scrapes += 1;
                }
                Ok(v)
                    if v.as_dict()
                        .is_some_and(|d| d.get(b"failure reason").is_some()) =>
                {
                    self.report.error_responses += 1;
                    self.report.count_error("scrape failure reason");
                }
                _ => {
                    self.report.malformed += 1;
                    self.report
                        .count_error("scrape response without `files` (BEP 48)");
                }
            },
        }
        self.done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_host_and_path() {
        assert_eq!(
            split_url("http://127.0.0.1:6969/announce").unwrap(),
            ("127.0.0.1:6969".to_owned(), "/announce".to_owned())
        );
        assert_eq!(
            split_url("http://tracker.example/a?x=1").unwrap(),
            ("tracker.example:80".to_owned(), "/a?x=1".to_owned())
        );
        assert_eq!(
            split_url("http://[::1]:80/announce").unwrap().0,
            "[::1]:80".to_owned()
        );
        assert!(matches!(
            split_url("https://x/announce"),
            Err(UrlError::Scheme(_))
        ));
        assert!(matches!(
            split_url("http://:80/announce"),
            Err(UrlError::NoHost(_))
        ));
    }

    #[test]
    fn scrape_path_follows_bep48() {
        assert_eq!(scrape_path("/announce").as_deref(), Some("/scrape"));
        assert_eq!(
            scrape_path("/x/announce.php?pk=1").as_deref(),
            Some("/x/scrape.php?pk=1")
        );
        assert_eq!(scrape_path("/a"), None);
        assert_eq!(scrape_path("/announce/x"), None);
    }
}
