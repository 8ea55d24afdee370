//! HTTPS announces (BEP 3 over TLS): `https://` tracker URLs are fetched by [`ureq`] with rustls
//! on a few worker threads of their own, so that neither DNS, nor the TLS handshake, nor a slow
//! tracker ever blocks the event loop.
//!
//! The loop hands a job ([`HttpsWorkers::submit`]) to a bounded queue; a worker resolves the
//! host, connects to **one** address it picked (pinned, so the engine knows which tracker
//! answered: a tracker on loopback may name loopback peers, a public one may not, see
//! [`seednode_wire::addr::may_dial`]), verifies the certificate chain against Mozilla's roots
//! (plus the CAs of `--tracker-ca`), reads at most [`MAX_TRACKER_RESPONSE_LEN`] bytes of body,
//! pushes the outcome to a shared list and wakes the loop through its [`Waker`]; the loop takes
//! the outcomes with [`HttpsWorkers::finished`] and feeds them to the sans-IO tracker client.
//!
//! Certificates are always verified; there is no option to accept invalid ones. A private
//! tracker with a CA of its own is trusted by adding that CA with `--tracker-ca FILE`.
//!
//! Redirects: at most [`MAX_TRACKER_REDIRECTS`], to `https://` only, and only to an address the
//! redirecting tracker could have named as a peer ([`may_dial`]): a public tracker cannot send
//! the node to a loopback or LAN service, and the address the final answer came from is the one
//! reported with it.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use mio::Waker;
use seednode_tracker::client::RequestId;
use seednode_tracker::limits::MAX_TRACKER_RESPONSE_LEN;
use seednode_wire::addr::{canonical_ip, may_dial};
use ureq::config::Config;
use ureq::http::Uri;
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};
use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};
use ureq::{Agent, Error as UreqError};

/// Worker threads performing HTTPS announces. A seed announces each torrent to each tracker
/// every 30 minutes or so; two workers keep one slow tracker from delaying every other, and
/// stay cheap (each thread holds at most one connection and one response body).
pub(super) const HTTPS_WORKERS: usize = 2;

/// HTTPS announces waiting for a worker at most; a job past it fails at once ("queue full")
/// and the tracker client retries on its own backoff (or tries the tier's next tracker).
pub(super) const MAX_QUEUED_HTTPS_JOBS: usize = 64;

/// Longest a job may wait in the queue, seconds-scale: a job dequeued later is failed without
/// being sent, since the tracker client ([`seednode_tracker::limits::CLIENT_HTTP_TIMEOUT`],
/// 30 s) has given up on it by the time it would finish
/// (`HTTPS_MAX_QUEUE_WAIT + HTTPS_REQUEST_TIMEOUT` ≤ 30 s).
pub(super) const HTTPS_MAX_QUEUE_WAIT: Duration = Duration::from_secs(15);

/// TCP connect timeout of one HTTPS announce: a tracker that does not accept within 5 s is
/// treated as down for this round (the announce fails; the client tries the tier's next
/// tracker).
pub(super) const HTTPS_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Whole-request timeout of one HTTPS announce (connect, TLS handshake, request, response head
/// and body, every redirect; not the host name lookup, see [`PinningResolver`]). Past it the
/// announce fails and the client moves on. Half of libtorrent's `tracker_completion_timeout`
/// (30 s), so that queue wait plus request stay within the client's own timeout.
pub(super) const HTTPS_REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// Redirects followed at most per announce (`https://` targets only); one more is an error
/// ("too many redirects"). Two covers a moved tracker (`/announce` to a new host) without
/// letting a tracker bounce the node around.
pub(super) const MAX_TRACKER_REDIRECTS: u32 = 2;

/// Largest response head accepted, bytes: the same 16 KiB the loop's own HTTP announces allow;
/// a larger head fails the announce.
pub(super) const MAX_RESPONSE_HEAD_LEN: usize = 16 * 1024;

/// Largest `--tracker-ca` file read, bytes: a PEM bundle of a few hundred CAs fits; a larger
/// file is refused at start.
pub(crate) const MAX_CA_FILE_LEN: u64 = 1024 * 1024;

/// Why a `--tracker-ca` file was not loaded (the node then refuses to start).
#[derive(Debug, thiserror::Error)]
pub(crate) enum CaFileError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: io::Error,
    },
    /// The file is larger than [`MAX_CA_FILE_LEN`].
    #[error("{path} is {len} bytes, more than the {limit} a CA file may have")]
    TooLarge {
        /// The file.
        path: String,
        /// Its length, bytes.
        len: u64,
        /// [`MAX_CA_FILE_LEN`].
        limit: u64,
    },
    /// A PEM block could not be decoded.
    #[error("{path}: not PEM: {reason}")]
    BadPem {
        /// The file.
        path: String,
        /// The decoder's message.
        reason: String,
    },
    /// The file holds no `CERTIFICATE` block.
    #[error("{path} holds no PEM certificate")]
    NoCertificate {
        /// The file.
        path: String,
    },
}

/// Reads the PEM certificates of a `--tracker-ca` file (other PEM blocks, such as keys, are
/// ignored). They are trusted as roots for HTTPS trackers, next to Mozilla's.
///
/// # Errors
/// [`CaFileError`]: unreadable, too large, not PEM, or no certificate in it.
pub(crate) fn load_tracker_ca(path: &Path) -> Result<Vec<Certificate<'static>>, CaFileError> {
    let shown = path.display().to_string();
    let read_err = |source| CaFileError::Read {
        path: shown.clone(),
        source,
    };
    let len = std::fs::metadata(path).map_err(read_err)?.len();
    if len > MAX_CA_FILE_LEN {
        return Err(CaFileError::TooLarge {
            path: shown,
            len,
            limit: MAX_CA_FILE_LEN,
        });
    }
    let pem = std::fs::read(path).map_err(read_err)?;
    parse_ca_pem(&pem).map_err(|e| match e {
        Some(reason) => CaFileError::BadPem {
            path: shown.clone(),
            reason,
        },
        None => CaFileError::NoCertificate {
            path: shown.clone(),
        },
    })
}

/// The certificates of a PEM bundle; `Err(None)` when it has none, `Err(Some(why))` when a
/// block is broken.
fn parse_ca_pem(pem: &[u8]) -> Result<Vec<Certificate<'static>>, Option<String>> {
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(pem) {
        match item {
            Ok(PemItem::Certificate(c)) => certs.push(c),
            Ok(_) => {}
            Err(e) => return Err(Some(e.to_string())),
        }
    }
    if certs.is_empty() {
        Err(None)
    } else {
        Ok(certs)
    }
}

/// The trust roots: Mozilla's (webpki), plus `extra` (also the webhook sender's).
pub(crate) fn root_certs(extra: &[Certificate<'static>]) -> RootCerts {
    if extra.is_empty() {
        return RootCerts::WebPki;
    }
    webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .map(|c| Certificate::from_der(c.as_ref()))
        .chain(extra.iter().cloned())
        .into()
}

/// Why an HTTPS announce failed; its text becomes the client's failure reason (logged as
/// `announce failed`).
#[derive(Debug, thiserror::Error)]
pub(super) enum HttpsError {
    /// [`MAX_QUEUED_HTTPS_JOBS`] announces are already waiting.
    #[error("too many HTTPS announces queued ({limit})")]
    QueueFull {
        /// [`MAX_QUEUED_HTTPS_JOBS`].
        limit: usize,
    },
    /// The workers are gone (only while shutting down).
    #[error("HTTPS workers stopped")]
    Stopped,
    /// The job waited longer than [`HTTPS_MAX_QUEUE_WAIT`]; it was not sent.
    #[error("waited over {}s for an HTTPS worker", HTTPS_MAX_QUEUE_WAIT.as_secs())]
    QueuedTooLong,
    /// The tracker's certificate was not accepted (unknown issuer, expired, wrong name, ...).
    #[error("TLS certificate of the tracker not accepted: {0}")]
    Certificate(String),
    /// The body is larger than [`MAX_TRACKER_RESPONSE_LEN`].
    #[error("response body over {limit} bytes")]
    BodyTooLarge {
        /// [`MAX_TRACKER_RESPONSE_LEN`].
        limit: usize,
    },
    /// A redirect named a URL that is not `https://` (`https only`). The URL is not kept: it
    /// carries the announce query, and a private tracker's passkey.
    #[error("redirect to a URL that is not https:// refused (https only)")]
    RedirectNotHttps,
    /// A URL (the announce URL or a redirect's) is not a valid URI; not kept, as above.
    #[error("bad URL")]
    BadUri,
    /// A redirect went to an address the redirecting tracker may not send the node to.
    #[error("redirect from {from} to {to} refused")]
    RedirectRefused {
        /// The address of the redirecting tracker.
        from: IpAddr,
        /// The address the redirect resolved to.
        to: IpAddr,
    },
    /// Anything else: DNS, connect, TLS protocol, timeout, malformed HTTP, too many redirects,
    /// a redirect to `http://`.
    #[error("{0}")]
    Http(String),
}

impl From<UreqError> for HttpsError {
    fn from(e: UreqError) -> Self {
        match e {
            UreqError::BodyExceedsLimit(_) => Self::BodyTooLarge {
                limit: MAX_TRACKER_RESPONSE_LEN,
            },
            UreqError::Rustls(tls) => match tls {
                rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented => {
                    Self::Certificate(tls.to_string())
                }
                other => Self::Http(format!("TLS: {other}")),
            },
            // rustls' stream reports handshake failures as I/O errors wrapping its own.
            UreqError::Io(io) => match io
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            {
                Some(
                    tls @ (rustls::Error::InvalidCertificate(_)
                    | rustls::Error::NoCertificatesPresented),
                ) => Self::Certificate(tls.to_string()),
                _ => Self::Http(format!("io: {io}")),
            },
            UreqError::RequireHttpsOnly(_) => Self::RedirectNotHttps,
            UreqError::BadUri(_) => Self::BadUri,
            other => Self::Http(other.to_string()),
        }
    }
}

/// The addresses one announce connected to, in order (the first URL's, then each redirect's).
/// Shared by a worker and its agent's resolver; a worker runs one announce at a time.
#[derive(Debug, Default)]
struct Hops(Mutex<Vec<IpAddr>>);

impl Hops {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<IpAddr>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Resolves a URL's host and pins the connection to the first address: ureq connects to what
/// this returns, so the engine knows which address answered. A redirect's target must be an
/// address the previous tracker may name ([`may_dial`]).
///
/// The lookup is a plain blocking getaddrinfo on the worker (bounded by the system resolver's
/// own timeouts, not by [`HTTPS_REQUEST_TIMEOUT`]); jobs queued behind a slow lookup are failed
/// unsent once they waited [`HTTPS_MAX_QUEUE_WAIT`]. Only the first address is tried, as for
/// the loop's own `http://` announces.
#[derive(Debug)]
struct PinningResolver(Arc<Hops>);

/// The default port of `uri`'s scheme (`https` 443, `http` 80).
fn uri_port(uri: &Uri) -> u16 {
    uri.port_u16().unwrap_or_else(|| {
        if uri.scheme_str() == Some("http") {
            80
        } else {
            443
        }
    })
}

/// The first address of `host` (a name, an IP literal, or a bracketed IPv6 literal). Blocks
/// (getaddrinfo): called on a worker only.
fn resolve_first(host: &str, port: u16) -> io::Result<SocketAddr> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    (bare, port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{bare}: no addresses")))
}

/// Whether an announce that connected to `hops` so far may connect to `addr` next: the first
/// hop is the URL's own host (any address, as for `http://`); a redirect must go to an address
/// the redirecting tracker could name as a peer ([`may_dial`]).
fn next_hop(hops: &[IpAddr], addr: SocketAddr) -> Result<(), HttpsError> {
    match hops.last() {
        Some(&from) => may_dial(addr, from).map_err(|_| HttpsError::RedirectRefused {
            from,
            to: addr.ip(),
        }),
        None => Ok(()),
    }
}

impl Resolver for PinningResolver {
    fn resolve(
        &self,
        uri: &Uri,
        _config: &Config,
        _timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, UreqError> {
        let host = uri.host().ok_or(UreqError::HostNotFound)?;
        let addr = resolve_first(host, uri_port(uri))?;
        let mut hops = self.0.lock();
        next_hop(&hops, addr).map_err(|e| UreqError::Io(io::Error::other(e)))?;
        hops.push(canonical_ip(addr.ip()));
        let mut out = self.empty();
        out.push(addr);
        Ok(out)
    }
}

/// One announce for a worker.
struct Job {
    id: RequestId,
    url: String,
    /// Not sent when dequeued after this.
    send_by: Instant,
}

/// What became of one announce: the address that answered, the status and the body.
pub(super) type Outcome = Result<(IpAddr, u16, Vec<u8>), HttpsError>;

/// The HTTPS announce workers and their queues.
pub(super) struct HttpsWorkers {
    jobs: Option<SyncSender<Job>>,
    /// Kept so that the queue stays open even with no worker (tests of the queue).
    _queue: Arc<Mutex<Receiver<Job>>>,
    done: Arc<Mutex<Vec<(RequestId, Outcome)>>>,
}

impl fmt::Debug for HttpsWorkers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpsWorkers").finish_non_exhaustive()
    }
}

impl HttpsWorkers {
    /// Starts [`HTTPS_WORKERS`] threads trusting Mozilla's roots and `extra_roots`; each
    /// outcome is announced through `waker`.
    ///
    /// # Errors
    /// A thread could not be spawned.
    pub(super) fn new(waker: Arc<Waker>, extra_roots: &[Certificate<'static>]) -> io::Result<Self> {
        Self::with_threads(waker, extra_roots, HTTPS_WORKERS)
    }

    /// [`Self::new`] with `threads` workers (none in tests of the queue).
    fn with_threads(
        waker: Arc<Waker>,
        extra_roots: &[Certificate<'static>],
        threads: usize,
    ) -> io::Result<Self> {
        let (tx, rx) = mpsc::sync_channel::<Job>(MAX_QUEUED_HTTPS_JOBS);
        let rx = Arc::new(Mutex::new(rx));
        let done = Arc::new(Mutex::new(Vec::new()));
        let config = agent_config(root_certs(extra_roots));
        for i in 0..threads {
            let rx = Arc::clone(&rx);
            let done = Arc::clone(&done);
            let waker = Arc::clone(&waker);
            let config = config.clone();
            // Not joined: a worker may be inside a request for up to HTTPS_REQUEST_TIMEOUT, and
            // shutdown must not wait for it; it ends at its next receive.
            let _ = std::thread::Builder::new()
                .name(format!("https-{i}"))
                .spawn(move || worker(&rx, &done, &waker, config))?;
        }
        Ok(Self {
            jobs: Some(tx),
            _queue: rx,
            done,
        })
    }

    /// Queues `GET url`; the outcome comes back through [`Self::finished`].
    ///
    /// # Errors
    /// [`HttpsError::QueueFull`] past [`MAX_QUEUED_HTTPS_JOBS`]; [`HttpsError::Stopped`] when
    /// the workers are gone.
    pub(super) fn submit(
        &self,
        now: Instant,
        id: RequestId,
        url: String,
    ) -> Result<(), HttpsError> {
        let Some(jobs) = &self.jobs else {
            return Err(HttpsError::Stopped);
        };
        let job = Job {
            id,
            url,
            send_by: now + HTTPS_MAX_QUEUE_WAIT,
        };
        jobs.try_send(job).map_err(|e| match e {
            TrySendError::Full(_) => HttpsError::QueueFull {
                limit: MAX_QUEUED_HTTPS_JOBS,
            },
            TrySendError::Disconnected(_) => HttpsError::Stopped,
        })
    }

    /// Takes the outcomes so far (at most the queue plus one per worker).
    pub(super) fn finished(&self) -> Vec<(RequestId, Outcome)> {
        std::mem::take(&mut *self.done.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl Drop for HttpsWorkers {
    fn drop(&mut self) {
        // Closing the queue ends each worker after its current request.
        self.jobs = None;
    }
}

/// The client settings of every HTTPS announce (see the limits above).
fn agent_config(roots: RootCerts) -> Config {
    Agent::config_builder()
        .https_only(true)
        .http_status_as_error(false)
        // No proxy from the environment: the pinned address must be the tracker's.
        .proxy(None)
        .max_redirects(MAX_TRACKER_REDIRECTS)
        .max_redirects_will_error(true)
        .max_response_header_size(MAX_RESPONSE_HEAD_LEN)
        // One announce per tracker every half hour: nothing to reuse, and a pooled connection
        // would bypass the pinning resolver.
        .max_idle_connections(0)
        .max_idle_connections_per_host(0)
        .timeout_connect(Some(HTTPS_CONNECT_TIMEOUT))
        .timeout_global(Some(HTTPS_REQUEST_TIMEOUT))
        .user_agent(concat!("seednode/", env!("CARGO_PKG_VERSION")))
        .tls_config(TlsConfig::builder().root_certs(roots).build())
        .build()
}

fn worker(
    rx: &Mutex<Receiver<Job>>,
    done: &Mutex<Vec<(RequestId, Outcome)>>,
    waker: &Waker,
    config: Config,
) {
    let hops = Arc::new(Hops::default());
    let agent = Agent::with_parts(
        config,
        DefaultConnector::default(),
        PinningResolver(Arc::clone(&hops)),
    );
    loop {
        // The lock is held only while waiting; another worker may be mid-request meanwhile.
        let job = rx.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(job) = job else { return };
        let outcome = if Instant::now() > job.send_by {
            Err(HttpsError::QueuedTooLong)
        } else {
            hops.lock().clear();
            fetch(&agent, &job.url, &hops)
        };
        done.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((job.id, outcome));
        // A failed wake leaves the outcome queued for the loop's next turn.
        let _ = waker.wake();
    }
}

/// `GET url`: the address that answered, the status and at most [`MAX_TRACKER_RESPONSE_LEN`]
/// bytes of body.
fn fetch(agent: &Agent, url: &str, hops: &Hops) -> Outcome {
    let result = agent.get(url).call();
    let mut response = match result {
        Ok(r) => r,
        Err(UreqError::Io(io)) if io.get_ref().is_some_and(|e| e.is::<HttpsError>()) => {
            let inner = io
                .into_inner()
                .and_then(|e| e.downcast::<HttpsError>().ok());
            return Err(inner.map_or(HttpsError::Http("redirect refused".into()), |e| *e));
        }
        Err(e) => return Err(e.into()),
    };
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .with_config()
        .limit(MAX_TRACKER_RESPONSE_LEN as u64)
        .read_to_vec()?;
    let from = hops
        .lock()
        .last()
        .copied()
        .ok_or_else(|| HttpsError::Http("no address was connected to".into()))?;
    Ok((from, status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A throw-away self-signed certificate (`openssl req -x509 -newkey ec`), only parsed here.
    const TEST_CA_PEM: &str = include_str!("https_test_ca.pem");

    fn waker() -> (mio::Poll, Arc<Waker>) {
        let poll = mio::Poll::new().expect("poll");
        let waker = Arc::new(Waker::new(poll.registry(), mio::Token(0)).expect("waker"));
        (poll, waker)
    }

    #[test]
    fn ca_files_need_a_certificate() {
        let certs = parse_ca_pem(TEST_CA_PEM.as_bytes()).expect("the test CA parses");
        assert_eq!(certs.len(), 1);
        let two = format!("{TEST_CA_PEM}\n{TEST_CA_PEM}");
        assert_eq!(parse_ca_pem(two.as_bytes()).map(|c| c.len()), Ok(2));
        assert!(matches!(parse_ca_pem(b""), Err(None)));
        assert!(matches!(parse_ca_pem(b"hello\n"), Err(None)));
        let broken = b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
        assert!(matches!(parse_ca_pem(broken), Err(Some(_))));
    }

    #[test]
    fn extra_cas_are_added_to_the_public_roots() {
        assert!(matches!(root_certs(&[]), RootCerts::WebPki));
        let extra = parse_ca_pem(TEST_CA_PEM.as_bytes()).expect("the test CA parses");
        let RootCerts::Specific(all) = root_certs(&extra) else {
            panic!("extra CAs must give a specific root list");
        };
        assert_eq!(
            all.len(),
            webpki_root_certs::TLS_SERVER_ROOT_CERTS.len() + 1
        );
        assert_eq!(all.last().map(Certificate::der), Some(extra[0].der()));
    }

    #[test]
    fn ca_file_over_the_limit_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("big.pem");
        let file = std::fs::File::create(&path).expect("create");
        file.set_len(MAX_CA_FILE_LEN + 1).expect("grow");
        assert!(matches!(
            load_tracker_ca(&path),
            Err(CaFileError::TooLarge { .. })
        ));
        assert!(matches!(
            load_tracker_ca(&dir.path().join("missing.pem")),
            Err(CaFileError::Read { .. })
        ));
    }

    #[test]
    fn queue_refuses_past_its_limit() {
        let (_poll, waker) = waker();
        // No worker takes jobs: the queue fills up.
        let workers = HttpsWorkers::with_threads(waker, &[], 0).expect("workers");
        let now = Instant::now();
        let mut client = seednode_tracker::client::TrackerClient::new(
            seednode_tracker::client::ClientConfig::new(seednode_wire::PeerId([1; 20]), 6881),
            [0; 32],
        );
        let ids = request_ids(&mut client, now, MAX_QUEUED_HTTPS_JOBS + 1);
        for &id in &ids[..MAX_QUEUED_HTTPS_JOBS] {
            workers
                .submit(now, id, "https://t.invalid/announce".into())
                .expect("room in the queue");
        }
        assert!(matches!(
            workers.submit(
                now,
                ids[MAX_QUEUED_HTTPS_JOBS],
                "https://t.invalid/a".into()
            ),
            Err(HttpsError::QueueFull {
                limit: MAX_QUEUED_HTTPS_JOBS
            })
        ));
    }

    #[test]
    fn a_job_that_waited_too_long_is_not_sent() {
        let (_poll, waker) = waker();
        let workers = HttpsWorkers::with_threads(waker, &[], 1).expect("workers");
        let now = Instant::now();
        let Some(long_ago) = now.checked_sub(HTTPS_MAX_QUEUE_WAIT * 2) else {
            return; // the clock started too recently to express the past
        };
        let mut client = seednode_tracker::client::TrackerClient::new(
            seednode_tracker::client::ClientConfig::new(seednode_wire::PeerId([1; 20]), 6881),
            [0; 32],
        );
        let id = request_ids(&mut client, now, 1)[0];
        // A URL that would fail differently if it were sent.
        workers
            .submit(long_ago, id, "https://t.invalid/announce".into())
            .expect("room in the queue");
        let end = Instant::now() + Duration::from_secs(10);
        let done = loop {
            let done = workers.finished();
            if !done.is_empty() || Instant::now() > end {
                break done;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        assert!(
            matches!(done.as_slice(), [(got, Err(HttpsError::QueuedTooLong))] if *got == id),
            "{done:?}"
        );
    }

    /// `n` request IDs from a client announcing `n` torrents to one HTTPS tracker each.
    fn request_ids(
        client: &mut seednode_tracker::client::TrackerClient,
        now: Instant,
        n: usize,
    ) -> Vec<RequestId> {
        let mut ids = Vec::new();
        for i in 0..n {
            let mut ih = [0u8; 20];
            ih[..8].copy_from_slice(&(i as u64).to_le_bytes());
            let tiers = vec![vec!["https://t.invalid/announce".to_owned()]];
            client
                .add_torrent(now, seednode_wire::InfoHash(ih), &tiers, 0)
                .expect("add torrent");
            while let Some(t) = client.poll_transmit() {
                if let seednode_tracker::client::Transmit::Http { id, .. } = t {
                    ids.push(id);
                }
            }
        }
        assert_eq!(ids.len(), n);
        ids
    }

    #[test]
    fn redirects_may_not_reach_inward() {
        let public: IpAddr = "9.9.9.9".parse().expect("ip");
        let lo: IpAddr = "127.0.0.1".parse().expect("ip");
        let a = |s: &str| s.parse::<SocketAddr>().expect("addr");
        // The URL's own host may be anything (as for http://).
        assert!(next_hop(&[], a("127.0.0.1:443")).is_ok());
        assert!(next_hop(&[public], a("1.1.1.1:443")).is_ok());
        assert!(next_hop(&[lo], a("127.0.0.1:8443")).is_ok());
        for inward in [
            "127.0.0.1:443",
            "10.0.0.1:443",
            "192.168.1.1:443",
            "[::1]:443",
        ] {
            assert!(
                matches!(
                    next_hop(&[public], a(inward)),
                    Err(HttpsError::RedirectRefused { .. })
                ),
                "{inward}"
            );
        }
    }

    #[test]
    fn certificate_errors_are_named_as_such() {
        let unknown = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let e = HttpsError::from(UreqError::Rustls(unknown.clone()));
        assert!(matches!(e, HttpsError::Certificate(_)), "{e}");
        assert!(e.to_string().contains("UnknownIssuer"), "{e}");
        let wrapped = UreqError::Io(io::Error::new(io::ErrorKind::InvalidData, unknown));
        assert!(matches!(
            HttpsError::from(wrapped),
            HttpsError::Certificate(_)
        ));
        assert!(matches!(
            HttpsError::from(UreqError::BodyExceedsLimit(1)),
            HttpsError::BodyTooLarge {
                limit: MAX_TRACKER_RESPONSE_LEN
            }
        ));
        let e = HttpsError::from(UreqError::RequireHttpsOnly(
            "http://t/?passkey=s3cret".into(),
        ));
        assert!(!e.to_string().contains("s3cret"), "{e}");
        let e = HttpsError::from(UreqError::BadUri("https://t/?passkey=s3cret".into()));
        assert!(!e.to_string().contains("s3cret"), "{e}");
        assert!(matches!(
            HttpsError::from(UreqError::TooManyRedirects),
            HttpsError::Http(_)
        ));
    }

    #[test]
    fn hosts_resolve_to_one_pinned_address() {
        assert_eq!(
            resolve_first("127.0.0.1", 443).ok(),
            Some("127.0.0.1:443".parse().expect("addr"))
        );
        assert_eq!(
            resolve_first("[::1]", 8443).ok(),
            Some("[::1]:8443".parse().expect("addr"))
        );
        let uri: Uri = "https://t.example/announce".parse().expect("uri");
        assert_eq!(uri_port(&uri), 443);
        let uri: Uri = "http://t.example/announce".parse().expect("uri");
        assert_eq!(uri_port(&uri), 80);
        let uri: Uri = "https://t.example:8443/announce".parse().expect("uri");
        assert_eq!(uri_port(&uri), 8443);
    }
}
