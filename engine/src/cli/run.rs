//! `seednode run`: the long-lived node. Opens the data directory's catalog, resumes every
//! torrent from its file records (no hashing when files are unchanged), and serves them until
//! SIGINT or SIGTERM; then saves the statistics, checkpoints the catalog and exits 0.
//!
//! `seednode catalog add|list`: the catalog of a stopped node, for imports and tests (the
//! running node adds torrents through its API).

use std::io::{Read as _, Write as _};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use seednode_storage::catalog::{Catalog, FileCheck, NewTorrent, State, TorrentSummary, resume};
use seednode_tracker::{Tracker, TrackerConfig};
use seednode_wire::display::{escape_name, escape_path};
use tracing::{info, warn};

use super::net::{bind, bind_udp, new_dht, new_peer_id, random_secret};
use super::parse::Listen;
use super::torrent_file::{MAX_TORRENT_FILE_LEN, open_storage, read_torrent_file, verify_data};
use super::{CatalogArgs, CatalogCommand, CliError, DEFAULT_SEED_PORT, RunArgs};
use crate::daemon::config::{Config, STATS_FLUSH_INTERVAL_RANGE};
use crate::daemon::recheck::Rechecker;
use crate::daemon::resume::{Loaded, Start, idle_entry, load};
use crate::daemon::tokens::TokenTable;
use crate::daemon::worker::{CatalogWorker, Outbox};
use crate::daemon::{data_dir, open_catalog, unix_now};
use crate::limits::DEFAULT_DISK_THREADS;
use crate::reactor::catalog::CatalogLink;
use crate::reactor::{DataPath, IdleTable, ListenerKind, Reactor, ReactorConfig};

/// The configuration in force: the file's, with the flags given on top.
fn effective_config(args: &RunArgs) -> Result<Config, CliError> {
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(dir) = &args.data.data_dir {
        config.data_dir = Some(dir.clone());
    }
    if let Some(listen) = args.listen {
        config.listen = listen.to_string();
    }
    if let Some(upload) = args.upload {
        config.upload = Some(upload.to_string());
    }
    if let Some(http) = args.http {
        config.http = Some(http.to_string());
    }
    if args.no_udp {
        config.udp_tracker = false;
    }
    if args.no_dht {
        config.dht = false;
    }
    if args.no_nat {
        config.nat = false;
    }
    if let Some(host) = &args.announce_host {
        config.announce_host = Some(host.clone());
    }
    if let Some(rate) = args.max_upload_rate {
        config.max_upload_rate = rate;
    }
    if let Some(n) = args.max_connections {
        config.max_connections = n;
    }
    if !args.nostr_relays.is_empty() {
        config.nostr.relays.clone_from(&args.nostr_relays);
    }
    if let Some(url) = &args.nostr_public_url {
        config.nostr.public_url = Some(url.clone());
    }
    config.nostr.check("command line")?;
    if let Some(secs) = args.stats_flush_interval {
        if !STATS_FLUSH_INTERVAL_RANGE.contains(&secs) {
            return Err(format!(
                "--stats-flush-interval {secs}: must be {} to {} seconds",
                STATS_FLUSH_INTERVAL_RANGE.start(),
                STATS_FLUSH_INTERVAL_RANGE.end()
            ));
        }
        config.stats_flush_interval = secs;
    }
    Ok(config)
}

/// Parses an address setting (`listen`, `http`).
fn listen_of(text: &str, key: &str) -> Result<SocketAddr, CliError> {
    let listen: Listen = text.parse().map_err(|e| format!("{key} = {text:?}: {e}"))?;
    Listen::resolve(Some(listen), None, DEFAULT_SEED_PORT)
}

/// Registers the config's `[[webhook]]` endpoints whose URL the catalog does not have yet, with
/// the checks of `seednode webhook add` (SSRF rules, secrets, key).
fn register_config_webhooks(
    catalog: &mut Catalog,
    hooks: &[crate::daemon::config::WebhookConfig],
) -> Result<(), CliError> {
    if hooks.is_empty() {
        return Ok(());
    }
    let known = catalog.webhook_endpoints().map_err(|e| e.to_string())?;
    for hook in hooks {
        if known.iter().any(|k| k.endpoint.url == hook.url) {
            continue;
        }
        let recipient_key = match &hook.recipient_key {
            Some(k) => Some(
                crate::events::webhook::seal::parse_recipient_key(k).map_err(|e| {
                    format!("[[webhook]] {}: recipient_key: {e}", escape_name(&hook.url))
                })?,
            ),
            None => None,
        };
        let endpoint = seednode_storage::catalog::NewWebhookEndpoint {
            url: hook.url.clone(),
            kinds: hook.kinds.clone(),
            secrets: hook.secrets.clone(),
            recipient_key,
            allow_private: hook.allow_private,
            created_at: unix_now(),
            label: "config".into(),
        };
        crate::events::webhook::check_endpoint(&endpoint)
            .map_err(|e| format!("[[webhook]] {}: {e}", escape_name(&hook.url)))?;
        let id = catalog
            .add_webhook_endpoint(&endpoint)
            .map_err(|e| format!("[[webhook]] {}: {e}", escape_name(&hook.url)))?;
        info!(webhook = id, url = %escape_name(&hook.url), "webhook registered from the configuration");
    }
    Ok(())
}

/// Removes the partial uploads of `content` that cannot be resumed or were last written more
/// than `expiry` ago (docs/upload.md); the others wait for their `UPLOAD_RESUME`.
fn expire_partial_uploads(content: &Path, expiry: Duration) {
    let partial = match seednode_storage::ingest::partial_uploads(content) {
        Ok(p) => p,
        Err(e) => {
            warn!(error = %e, "partial uploads not listed");
            return;
        }
    };
    let now = std::time::SystemTime::now();
    for p in partial {
        let old = now.duration_since(p.modified).is_ok_and(|age| age > expiry);
        if !p.resumable || old {
            match seednode_storage::ingest::discard(content, p.upload_id) {
                Ok(_) => {
                    info!(upload = %p.upload_id, resumable = p.resumable, "partial upload removed")
                }
                Err(e) => warn!(upload = %p.upload_id, error = %e, "partial upload not removed"),
            }
        }
    }
}

/// The DHT routing table kept between runs, in the data directory (`seednode run`).
const DHT_STATE_FILE_NAME: &str = "dht_nodes";

/// Decides, for every catalog torrent, whether it seeds (fast resume) and records the state of
/// those that cannot. Runs before the loop starts: blocking reads are fine here.
///
/// Returns the torrents to seed and the API's entries for those that do not.
fn resume_all(catalog: &mut Catalog) -> Result<(Vec<Loaded>, IdleTable), CliError> {
    let torrents = catalog.list_torrents().map_err(|e| e.to_string())?;
    let mut ready = Vec::with_capacity(torrents.len());
    let mut idle = IdleTable::new();
    for t in torrents {
        if t.state == State::Paused {
            info!(torrent = %t.id, name = %escape_name(&t.name), "paused: not seeded");
            let (ih, entry) = idle_entry(catalog, &t);
            idle.insert(ih, entry);
            continue;
        }
        match load(catalog, t.id, &t.data_path) {
            Ok(Start::Seed(loaded)) => {
                if t.state != State::Seeding {
                    // The data came back (or the error went away).
                    let _ = catalog.set_state(t.id, State::Seeding, None);
                }
                match &loaded.recheck {
                    None => {
                        info!(torrent = %t.id, name = %escape_name(&t.name), "resumed: files unchanged, no hashing")
                    }
                    Some(plan) => {
                        info!(torrent = %t.id, name = %escape_name(&t.name), pieces = plan.piece_count(),
                        "resumed: pieces of changed files withheld until re-verified")
                    }
                }
                ready.push(*loaded);
            }
            Ok(Start::Missing { reason }) => {
                warn!(torrent = %t.id, name = %escape_name(&t.name), reason = %escape_name(&reason), "missing data: not seeded");
                if t.state != State::MissingData || t.state_reason.as_deref() != Some(&reason) {
                    catalog
                        .set_state(t.id, State::MissingData, Some(&reason))
                        .map_err(|e| e.to_string())?;
                }
                let (ih, mut entry) = idle_entry(catalog, &t);
                entry.state = State::MissingData;
                entry.reason = Some(reason);
                idle.insert(ih, entry);
            }
            Err(e) => {
                warn!(torrent = %t.id, name = %escape_name(&t.name), error = %escape_name(&e), "cannot be loaded: not seeded");
                let _ = catalog.set_state(t.id, State::Error, Some(&e));
                let (ih, mut entry) = idle_entry(catalog, &t);
                entry.state = State::Error;
                entry.reason = Some(e);
                idle.insert(ih, entry);
            }
        }
    }
    Ok((ready, idle))
}

/// The tracker URLs that name this node: its hosts (the announce host, the listen IP or, on
/// every interface, the primary one, and loopback) on its ports, over HTTP and UDP.
fn own_urls(config: &Config, listen: SocketAddr, http: Option<SocketAddr>) -> Vec<String> {
    let mut hosts: Vec<String> = vec!["127.0.0.1".into(), "localhost".into(), "[::1]".into()];
    hosts.extend(config.announce_host.iter().cloned());
    let ip = if listen.ip().is_unspecified() {
        super::net::primary_ip(listen.is_ipv6())
    } else {
        Some(listen.ip())
    };
    hosts.extend(ip.map(|ip| match ip {
        IpAddr::V6(v6) => format!("[{v6}]"),
        IpAddr::V4(v4) => v4.to_string(),
    }));
    let mut urls = Vec::new();
    for host in &hosts {
        for port in std::iter::once(listen.port()).chain(http.map(|h| h.port())) {
            urls.push(format!("http://{host}:{port}/announce"));
            urls.push(format!("udp://{host}:{port}/announce"));
        }
    }
    urls
}

/// Starts the Nostr publisher when `[nostr] relays` is set (docs/nostr.md): reads the node's
/// key (refusing a missing or exposed key file), resolves the public URL.
fn start_nostr(
    config: &Config,
    dir: &Path,
    listen: SocketAddr,
    reactor: &Reactor,
) -> Result<
    Option<(
        crate::nostr::publisher::Publisher,
        std::sync::mpsc::Receiver<crate::nostr::publisher::NostrNotice>,
    )>,
    CliError,
> {
    let n = &config.nostr;
    if n.relays.is_empty() {
        return Ok(None);
    }
    let keys = crate::nostr::key::load(dir).map_err(|e| e.to_string())?;
    let public_url = n
        .public_url
        .clone()
        .or_else(|| {
            config
                .announce_host
                .as_ref()
                .map(|h| format!("http://{h}:{}", listen.port()))
        })
        .map(|u| u.trim_end_matches('/').to_owned());
    if public_url.is_none() {
        warn!("[nostr] no public_url or announce_host: announcements carry no `url` tag");
    }
    let settings = crate::nostr::NostrSettings {
        relays: n.relays.clone(),
        public_url,
        topics: n.topics.clone(),
        retry_period: Duration::from_secs(n.retry_period_secs),
        timeout: Duration::from_secs(n.timeout_secs),
    };
    let (notice_tx, notice_rx) = crate::nostr::publisher::notice_channel();
    let publisher = crate::nostr::publisher::Publisher::start(
        crate::nostr::publisher::PublisherConfig {
            catalog: dir.join(crate::daemon::CATALOG_FILE_NAME),
            settings,
            backoff_base: crate::nostr::publisher::BACKOFF_BASE,
        },
        keys,
        notice_tx,
        Some(reactor.waker()),
    )
    .map_err(|e| format!("starting the Nostr publisher: {e}"))?;
    info!(
        relays = n.relays.len(),
        "announcing torrents to Nostr relays"
    );
    Ok(Some((publisher, notice_rx)))
}

/// Tells systemd (when `NOTIFY_SOCKET` is set) how the service is doing; silent otherwise.
fn notify(state: sd_notify::NotifyState<'_>) {
    if std::env::var_os("NOTIFY_SOCKET").is_some()
        && let Err(e) = sd_notify::notify(false, &[state])
    {
        warn!(error = %e, "sd_notify failed");
    }
}

/// Runs `seednode run`.
///
/// # Errors
/// The failure, worded for the operator.
pub(crate) fn run(args: &RunArgs) -> Result<(), CliError> {
    let config = effective_config(args)?;
    let dir = data_dir(config.data_dir.as_deref())?;
    let mut catalog = open_catalog(&dir)?;
    // The key of the OAuth2 access tokens this node issues, made once per catalog.
    if catalog
        .get_setting(crate::daemon::oauth::HMAC_KEY_SETTING)
        .map_err(|e| e.to_string())?
        .is_none()
    {
        catalog
            .set_setting(
                crate::daemon::oauth::HMAC_KEY_SETTING,
                &crate::daemon::oauth::new_key_hex()?,
            )
            .map_err(|e| e.to_string())?;
    }
    register_config_webhooks(&mut catalog, &config.webhook)?;
    let tokens = TokenTable::load(&catalog).map_err(|e| e.to_string())?;
    let tracker_ca = match &config.tracker_ca {
        Some(path) => crate::reactor::https::load_tracker_ca(path).map_err(|e| e.to_string())?,
        None => Vec::new(),
    };

    // Ports before the torrents: a port in use is the likelier mistake, and costs nothing.
    let listen = listen_of(&config.listen, "listen")?;
    let listener = bind(listen, "--listen (config `listen`)")?;
    let listen = listener.local_addr().map_err(|e| e.to_string())?;
    let mut listeners = vec![(listener, ListenerKind::Shared)];
    let mut http_addr = None;
    if let Some(http) = &config.http {
        let l = bind(listen_of(http, "http")?, "--http (config `http`)")?;
        http_addr = Some(l.local_addr().map_err(|e| e.to_string())?);
        listeners.push((l, ListenerKind::HttpOnly));
    }
    let mut upload_addr = None;
    if let Some(upload) = &config.upload {
        let l = bind(listen_of(upload, "upload")?, "--upload (config `upload`)")?;
        upload_addr = Some(l.local_addr().map_err(|e| e.to_string())?);
        listeners.push((l, ListenerKind::UploadOnly));
    }
    let udp = if config.udp_tracker || config.dht || config.utp {
        Some(bind_udp(listen, "--listen (config `listen`)")?)
    } else {
        None
    };
    let announce_socket = bind_udp(
        SocketAddr::new(
            if listen.is_ipv6() {
                IpAddr::V6(Ipv6Addr::UNSPECIFIED)
            } else {
                listen.ip()
            },
            0,
        ),
        "--listen",
    )?;
    let announce_ip: Option<IpAddr> = match &config.announce_host {
        Some(h) => h.parse().ok(),
        None if listen.ip().is_unspecified() => None,
        None => Some(listen.ip()),
    };

    let started = Instant::now();
    // The content directory: uploads and API adds keep their data beneath it.
    std::fs::create_dir_all(dir.join("data"))
        .map_err(|e| format!("content directory {}: {e}", escape_path(&dir.join("data"))))?;
    expire_partial_uploads(
        &dir.join("data"),
        Duration::from_secs(config.upload_expiry_secs),
    );
    let (loaded, idle) = resume_all(&mut catalog)?;
    info!(
        torrents = loaded.len(),
        idle = idle.len(),
        ms = started.elapsed().as_millis(),
        data_dir = %escape_path(&dir),
        "catalog loaded"
    );

    let reactor_config = ReactorConfig {
        peer_id: new_peer_id(),
        peer_port: listen.port(),
        announce_ip,
        upload_slots: config.upload_slots,
        global_upload_slots: config.global_upload_slots,
        upload_rate_bytes_per_sec: config.max_upload_rate,
        torrent_upload_rate_bytes_per_sec: config.max_upload_rate_per_torrent,
        max_connections: config.max_connections,
        max_connections_per_ip: config.max_connections_per_ip,
        max_peers_per_torrent: config.max_peers_per_torrent,
        disk_threads: DEFAULT_DISK_THREADS,
        data_path: if config.data_path == "copy" {
            DataPath::Copy
        } else {
            DataPath::Sendfile
        },
        cache_bytes: config.cache_mib.saturating_mul(1024 * 1024),
        access_list: None,
        secret: random_secret(),
        allowed_hosts: config.allowed_hosts.clone(),
        content_root: Some(dir.join("data")),
        lockout: Duration::from_secs(config.lockout_secs),
        nostr_pubkeys: crate::reactor::blossom::grants(&config.nostr.pubkey)?,
    };
    let tracker = Tracker::with_secret(TrackerConfig::default(), Instant::now(), random_secret());
    let dht = if config.dht {
        let bootstrap = if config.dht_bootstrap.is_empty() {
            seednode_dht::DEFAULT_BOOTSTRAP_NODES
                .iter()
                .map(|s| (*s).to_owned())
                .collect()
        } else {
            config.dht_bootstrap.clone()
        };
        Some(new_dht(
            &bootstrap,
            // With the catalog: the node's state lives in one directory (systemd's
            // StateDirectory), wherever HOME points.
            Some(dir.join(DHT_STATE_FILE_NAME)),
            announce_ip,
            announce_ip.unwrap_or(listen.ip()),
        ))
    } else {
        None
    };
    let mut reactor = Reactor::new(
        listeners,
        udp,
        config.udp_tracker,
        dht,
        Some(announce_socket),
        tracker,
        reactor_config,
    )
    .map_err(|e| format!("starting the event loop: {e}"))?;
    reactor.set_summary_interval(Some(Duration::from_secs(config.summary_interval)));
    reactor.set_tracker_ca(tracker_ca);
    if config.utp {
        reactor.enable_utp(config.prefer_utp);
    }
    if config.nat {
        crate::nat::attach(
            &mut reactor,
            listen,
            Duration::from_secs(config.nat_lease_secs),
            config.announce_host.is_none(),
        );
    }

    let outbox = Outbox::new(reactor.waker());
    let worker = CatalogWorker::start(catalog, outbox.clone())
        .map_err(|e| format!("starting the catalog worker: {e}"))?;
    let rechecker = Rechecker::start(outbox, worker.sender())
        .map_err(|e| format!("starting the re-check thread: {e}"))?;
    reactor.attach_catalog(
        CatalogLink::new(
            worker,
            rechecker,
            Duration::from_secs(config.stats_flush_interval),
            Instant::now(),
            own_urls(&config, listen, http_addr),
        ),
        tokens,
    );
    reactor.reserve_torrents(loaded.len());
    let (notice_tx, notice_rx) = crate::events::webhook::sender::notice_channel();
    let mut sender_config = crate::events::webhook::sender::SenderConfig::new(
        dir.join(crate::daemon::CATALOG_FILE_NAME),
    );
    if let Some(path) = &config.webhook_ca {
        sender_config.extra_roots =
            crate::reactor::https::load_tracker_ca(path).map_err(|e| format!("webhook_ca: {e}"))?;
    }
    let sender = crate::events::webhook::sender::WebhookSender::start(
        sender_config,
        notice_tx,
        Some(reactor.waker()),
    )
    .map_err(|e| format!("starting the webhook sender: {e}"))?;
    reactor.attach_webhooks(sender, notice_rx);
    if let Some((publisher, notices)) = start_nostr(&config, &dir, listen, &reactor)? {
        reactor.attach_nostr(publisher, notices);
    }
    reactor.set_approvals(config.approval_policy()?);
    for t in loaded {
        let _ = reactor.seed_loaded(t);
    }
    reactor.set_idle(idle);
    println!("data-dir: {}", escape_path(&dir));
    println!("listening: {listen}");
    if let Some(h) = http_addr {
        println!("http: {h}");
    }
    if let Some(u) = upload_addr {
        println!("upload: {u}");
    }
    let _ = std::io::stdout().flush();
    notify(sd_notify::NotifyState::Ready);
    let result = reactor.run();
    notify(sd_notify::NotifyState::Stopping);
    reactor.close_catalog();
    result.map_err(|e| format!("event loop failed: {e}"))
}

/// Runs `seednode catalog …` on a stopped node's data directory.
///
/// # Errors
/// The failure, worded for the operator.
pub(crate) fn catalog(args: &CatalogArgs) -> Result<(), CliError> {
    let dir = data_dir(args.data.data_dir.as_deref())?;
    let mut catalog = open_catalog(&dir)?;
    match &args.command {
        CatalogCommand::Add { torrent, data } => catalog_add(&mut catalog, torrent, data),
        CatalogCommand::List => {
            let torrents = catalog.list_torrents().map_err(|e| e.to_string())?;
            for t in &torrents {
                print_summary(t);
            }
            Ok(())
        }
    }
}

fn print_summary(t: &TorrentSummary) {
    println!(
        "{}\t{}\t{}\t{}\t{}",
        t.id.0,
        t.state,
        t.swarm_hash(),
        t.stats.uploaded_bytes,
        escape_name(&t.name)
    );
}

/// `catalog add`: verifies the data, adds the torrent, records its files' mtimes (seen before
/// hashing), so `run` seeds it at once.
fn catalog_add(catalog: &mut Catalog, torrent: &Path, data: &Path) -> Result<(), CliError> {
    let meta = read_torrent_file(torrent)?;
    let mut bytes = Vec::new();
    std::fs::File::open(torrent)
        .and_then(|f| f.take(MAX_TORRENT_FILE_LEN + 1).read_to_end(&mut bytes))
        .map_err(|e| format!("{}: {e}", escape_path(torrent)))?;
    let data: PathBuf =
        std::fs::canonicalize(data).map_err(|e| format!("{}: {e}", escape_path(data)))?;
    let storage = open_storage(
        &data,
        &meta,
        seednode_storage::SymlinkPolicy::FollowWithinRoot,
    )?;
    let new = NewTorrent::from_metainfo(bytes, &meta, data.clone(), unix_now())
        .map_err(|e| e.to_string())?;
    let id = catalog.add_torrent(&new).map_err(|e| e.to_string())?;
    // Observed before hashing: a write during it changes the mtime, so `run` checks again.
    let files = catalog.files(id).map_err(|e| e.to_string())?;
    let observed = resume::observe(&data, &files);
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let have = verify_data(&meta, &storage, threads)?;
    let bad = have.iter().filter(|h| !**h).count();
    if bad > 0 {
        let _ = catalog.remove_torrent(id);
        return Err(format!(
            "{}: {bad} of {} pieces do not match {}; not added",
            escape_path(&data),
            have.len(),
            escape_path(torrent)
        ));
    }
    let checks: Vec<FileCheck> = files
        .iter()
        .zip(&observed)
        .filter_map(|(f, seen)| match seen {
            resume::OnDisk::File { mtime_ns, .. } => Some(FileCheck {
                index: f.index,
                mtime_ns: Some(*mtime_ns),
                sha256: None,
            }),
            _ => None,
        })
        .collect();
    catalog
        .record_file_checks(id, &checks)
        .map_err(|e| e.to_string())?;
    let summary = catalog.torrent(id).map_err(|e| e.to_string())?;
    print_summary(&summary);
    Ok(())
}
