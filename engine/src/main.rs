//! `seednode`: a headless BitTorrent seed node.
//!
//! `seednode seed PATH` hashes a file or directory (or verifies it against `--torrent`), writes the
//! .torrent beside it, prints the info-hash and magnet link, and seeds it over the peer wire
//! (BEP 3) with a built-in HTTP tracker on the same port, until SIGINT or SIGTERM.

use seednode::{ban, choker, dial, limits, rate, session};

mod disk;
mod http;
mod outq;
mod progress;
mod reactor;
mod sniff;
mod udp_batch;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use clap::{Args, Parser, Subcommand};
use seednode_storage::{CreateOptions, Storage, TorrentVersion};
use seednode_tracker::access::AccessMode;
use seednode_tracker::{Tracker, TrackerConfig};
use seednode_wire::PeerId;
use seednode_wire::display::{escape_name, escape_path};
use seednode_wire::magnet::MagnetLink;
use seednode_wire::metainfo::Metainfo;
use tracing::{info, warn};

use crate::limits::{
    DEFAULT_CACHE_MIB, DEFAULT_DISK_THREADS, DEFAULT_GLOBAL_UPLOAD_SLOTS, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_CONNECTIONS_PER_IP, DEFAULT_MAX_PEERS_PER_TORRENT, DEFAULT_UPLOAD_SLOTS,
};
use crate::reactor::{
    DataPath, Have, ListenerKind, PieceCheck, Reactor, ReactorConfig, SeededTorrent, V2Torrent,
};
use seednode_wire::InfoHash;
use seednode_wire::metainfo_v2::PieceMap;

/// Largest .torrent file read from disk, bytes (SECURITY.md M9: 10 MB).
const MAX_TORRENT_FILE_LEN: u64 = 10 * 1000 * 1000;

/// Backlog of pending connections on each listener.
const LISTEN_BACKLOG: i32 = 1024;

#[derive(Parser)]
#[command(
    name = "seednode",
    version,
    about = "A headless BitTorrent seed node",
    long_about = "A headless BitTorrent seed node.\n\n\
        Quick start: `seednode seed FILE` hashes FILE, writes FILE.torrent beside it, prints the \
        info-hash and a magnet link, and seeds until Ctrl-C. Any BitTorrent client that opens \
        FILE.torrent finds the seed through the tracker built into seednode, on the same port.\n\n\
        Logging: set RUST_LOG (e.g. RUST_LOG=debug) to see more."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once at start; boxing buys nothing
enum Command {
    /// Seed a file or directory: hash it (or verify it against --torrent), write its .torrent,
    /// print the info-hash and magnet link, and serve it until SIGINT/SIGTERM.
    Seed(SeedArgs),
    /// Create a .torrent for a file or directory without seeding it.
    Create(CreateArgs),
    /// Run only the tracker (HTTP and UDP), for any torrent, like opentracker.
    Tracker(TrackerArgs),
    /// Run only a Mainline DHT node (BEP 5), e.g. as the bootstrap node of a private network.
    Dht(DhtNodeArgs),
}

/// Mainline DHT settings (BEP 5), shared by `seed` and `dht`.
#[derive(Args)]
struct DhtArgs {
    /// Do not join the Mainline DHT.
    #[arg(long)]
    no_dht: bool,
    /// A DHT node to bootstrap from, HOST:PORT (repeatable) [default: the well-known public
    /// routers, router.bittorrent.com:6881 and others]. `--dht-bootstrap none` uses none.
    #[arg(long = "dht-bootstrap", value_name = "HOST:PORT")]
    bootstrap: Vec<String>,
    /// Where the DHT routing table is kept between runs
    /// [default: $XDG_STATE_HOME/seednode/dht_nodes, or ~/.local/state/seednode/dht_nodes].
    #[arg(long = "dht-state", value_name = "FILE")]
    state: Option<PathBuf>,
}

#[derive(Args)]
struct DhtNodeArgs {
    /// UDP address of the node.
    #[arg(long, default_value = "0.0.0.0:6881", value_name = "ADDR")]
    listen: SocketAddr,
    /// A node to bootstrap from, HOST:PORT (repeatable) [default: none: a standalone node is
    /// usually the bootstrap node of a private network].
    #[arg(long, value_name = "HOST:PORT")]
    bootstrap: Vec<String>,
    /// Where the routing table is kept between runs.
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
}

#[derive(Args)]
struct TrackerArgs {
    /// Address for the HTTP tracker (`/announce`, `/scrape`).
    #[arg(long, default_value = "0.0.0.0:6969", value_name = "ADDR")]
    http: SocketAddr,
    /// Address for the UDP tracker (BEP 15) [default: the --http address, over UDP].
    #[arg(long, value_name = "ADDR")]
    udp: Option<SocketAddr>,
    /// Serve only the info-hashes listed in FILE (40 hex digits a line; reloaded on SIGHUP).
    #[arg(long, value_name = "FILE", conflicts_with = "deny")]
    allow: Option<PathBuf>,
    /// Serve every info-hash except those listed in FILE (reloaded on SIGHUP).
    #[arg(long, value_name = "FILE")]
    deny: Option<PathBuf>,
    /// Most connections at once.
    #[arg(long, default_value_t = DEFAULT_MAX_CONNECTIONS, value_name = "N")]
    max_connections: usize,
}

#[derive(Args)]
struct SeedArgs {
    /// The files or directories to seed, one torrent each.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Seed an existing .torrent: PATH is verified against it instead of hashed anew. For a
    /// multi-file torrent PATH is the directory holding its files. Only with a single PATH.
    #[arg(long, value_name = "FILE")]
    torrent: Option<PathBuf>,
    /// Where to write the .torrent [default: PATH.torrent beside PATH].
    #[arg(short, long, value_name = "FILE", conflicts_with = "torrent")]
    output: Option<PathBuf>,
    /// Address for peers; the built-in tracker (HTTP) answers on the same port.
    #[arg(long, default_value = "0.0.0.0:6881", value_name = "ADDR")]
    listen: SocketAddr,
    /// Also serve HTTP (the tracker) on a port of its own.
    #[arg(long, value_name = "ADDR")]
    http: Option<SocketAddr>,
    /// Address for the UDP tracker (BEP 15) [default: the --listen address, over UDP].
    #[arg(long, value_name = "ADDR")]
    udp: Option<SocketAddr>,
    /// Run no UDP tracker (the UDP port still carries the DHT unless --no-dht).
    #[arg(long)]
    no_udp: bool,
    #[command(flatten)]
    dht: DhtArgs,
    #[command(flatten)]
    format: FormatArgs,
    /// Host or IP that clients should use to reach this node, put into the announce URL and
    /// given out by the tracker [default: the --listen IP; 127.0.0.1 if that is 0.0.0.0].
    #[arg(long, value_name = "HOST")]
    announce_host: Option<String>,
    /// Piece length in bytes for a new torrent (a power of two, 16 KiB to 16 MiB)
    /// [default: chosen for about 1000-2000 pieces].
    #[arg(long, value_name = "BYTES")]
    piece_length: Option<u32>,
    /// Extra tracker URL to list in a new torrent (repeatable; each is its own tier).
    #[arg(long = "tracker", value_name = "URL")]
    trackers: Vec<String>,
    /// PEM file of CA certificates to trust for https:// trackers, besides the built-in
    /// (Mozilla) roots: for a private tracker with a CA of its own. Certificates are always
    /// verified.
    #[arg(long, value_name = "FILE")]
    tracker_ca: Option<PathBuf>,
    /// Threads used to hash [default: all cores].
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Peers of one torrent unchoked at once (one of them rotates: the optimistic unchoke).
    #[arg(long, default_value_t = DEFAULT_UPLOAD_SLOTS, value_name = "N")]
    upload_slots: usize,
    /// Upload limit of the whole node in bytes per second (0 = unlimited).
    #[arg(long, default_value_t = 0, value_name = "BYTES_PER_SEC")]
    max_upload_rate: u64,
    /// Upload limit of each torrent in bytes per second (0 = unlimited).
    #[arg(long, default_value_t = 0, value_name = "BYTES_PER_SEC")]
    max_upload_rate_per_torrent: u64,
    /// How block payloads reach the socket: `sendfile` (no copy in user space) or `copy`
    /// (read on a disk thread, then write).
    #[arg(long, value_enum, default_value = "sendfile", value_name = "HOW")]
    data_path: DataPath,
    /// MiB of whole pieces kept in memory by `--data-path copy` (pieces read into it are checked
    /// against their hash first).
    #[arg(long, default_value_t = DEFAULT_CACHE_MIB, value_name = "MIB")]
    cache_mib: usize,
    /// Super-seeding (BEP 16): reveal one piece at a time to each peer, least common first, to
    /// spread a new torrent with the fewest bytes uploaded by this node.
    #[arg(long)]
    super_seed: bool,
    /// Peers unchoked at once over all torrents.
    #[arg(long, default_value_t = DEFAULT_GLOBAL_UPLOAD_SLOTS, value_name = "N")]
    global_upload_slots: usize,
    /// Most connections at once.
    #[arg(long, default_value_t = DEFAULT_MAX_CONNECTIONS, value_name = "N")]
    max_connections: usize,
    /// Most connections at once from one IP address.
    #[arg(long, default_value_t = DEFAULT_MAX_CONNECTIONS_PER_IP, value_name = "N")]
    max_connections_per_ip: usize,
    /// Most peers of one torrent at once.
    #[arg(long, default_value_t = DEFAULT_MAX_PEERS_PER_TORRENT, value_name = "N")]
    max_peers_per_torrent: usize,
}

#[derive(Args)]
struct CreateArgs {
    /// The file or directory to make a torrent of.
    path: PathBuf,
    /// Where to write the .torrent [default: PATH.torrent beside PATH].
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Piece length in bytes (a power of two, 16 KiB to 16 MiB) [default: chosen for about
    /// 1000-2000 pieces].
    #[arg(long, value_name = "BYTES")]
    piece_length: Option<u32>,
    /// Tracker URL (repeatable; each is its own tier, BEP 12).
    #[arg(long = "tracker", short = 't', value_name = "URL")]
    trackers: Vec<String>,
    /// Webseed URL for `url-list` (repeatable, BEP 19).
    #[arg(long = "webseed", value_name = "URL")]
    webseeds: Vec<String>,
    /// Mark the torrent private (BEP 27).
    #[arg(long)]
    private: bool,
    #[command(flatten)]
    format: FormatArgs,
    /// Threads used to hash [default: all cores].
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
}

/// Exit status after a panic anywhere in the process (Rust's own for a panicking `main`).
const PANIC_EXIT_CODE: i32 = 101;

/// Makes a panic on any thread end the whole process with one log line and
/// [`PANIC_EXIT_CODE`], so that a half-alive node (a dead disk or resolver thread behind a live
/// event loop) never lingers: systemd's `Restart=on-failure` starts a fresh one.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        let name = thread.name().unwrap_or("unnamed");
        let place = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        tracing::error!(
            thread = name,
            at = %place,
            message = %message.escape_debug(),
            "panic: exiting"
        );
        std::process::exit(PANIC_EXIT_CODE);
    }));
}

fn main() -> ExitCode {
    install_panic_hook();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Seed(args) => seed(&args),
        Command::Create(args) => create(&args).map(|_| ()),
        Command::Tracker(args) => tracker(&args),
        Command::Dht(args) => dht_node(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// An error for the operator, already worded.
type CliError = String;

fn threads(requested: Option<usize>) -> usize {
    requested
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
        .max(1)
}

/// `PATH.torrent` beside PATH (for a directory, `DIR.torrent` beside the directory).
fn default_torrent_path(path: &Path) -> Result<PathBuf, CliError> {
    let path = std::path::absolute(path).map_err(|e| format!("{}: {e}", escape_path(path)))?;
    let name = path
        .file_name()
        .ok_or_else(|| format!("{} has no file name", escape_path(&path)))?;
    let mut file = name.to_os_string();
    file.push(".torrent");
    Ok(path.with_file_name(file))
}

/// Writes `bytes` to `dest` through a temporary file and a rename, so a crash never leaves a
/// half-written .torrent.
fn write_atomically(dest: &Path, bytes: &[u8]) -> Result<(), CliError> {
    let mut tmp = dest.as_os_str().to_os_string();
    tmp.push(".part");
    let tmp = PathBuf::from(tmp);
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, dest)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("writing {}: {e}", escape_path(dest))
    })
}

/// Which BEP a new torrent follows.
#[derive(Args, Clone, Copy)]
struct FormatArgs {
    /// Create a v2-only torrent (BEP 52: SHA-256 merkle trees; libtorrent 2 and qBittorrent 4.4+
    /// can use it, older clients cannot).
    #[arg(long, conflicts_with = "hybrid")]
    v2: bool,
    /// Create a hybrid v1 + v2 torrent (BEP 52 with BEP 47 padding files): every client can use
    /// it, v2 clients verify with merkle trees.
    #[arg(long)]
    hybrid: bool,
}

impl FormatArgs {
    fn version(self) -> TorrentVersion {
        match (self.v2, self.hybrid) {
            (true, _) => TorrentVersion::V2,
            (_, true) => TorrentVersion::Hybrid,
            _ => TorrentVersion::V1,
        }
    }
}

/// Hashes `path` into a new torrent as `opts` say, with a progress report.
fn create_metainfo(path: &Path, opts: &CreateOptions) -> Result<Metainfo, CliError> {
    // A directory's size is only known once storage has walked it; its bar counts bytes only.
    let total = std::fs::metadata(path)
        .ok()
        .filter(std::fs::Metadata::is_file)
        .map(|m| m.len());
    let bar = progress::Progress::new("hashing", total);
    let meta = seednode_storage::create_torrent(path, opts, &|done| bar.set(done))
        .map_err(|e| e.to_string())?;
    bar.finish();
    warn_non_portable(&meta);
    Ok(meta)
}

/// Warns on stderr, one line per path and a count, about names of `meta` that Windows cannot
/// store; the torrent stays as it is (mktorrent does not check at all).
fn warn_non_portable(meta: &Metainfo) {
    let found = seednode_storage::non_portable_paths(&meta.info);
    for name in &found {
        let path = name.path.join("/");
        eprintln!(
            "warning: {}: not portable: {}",
            escape_name(&path),
            name.reason
        );
    }
    match found.len() {
        0 => {}
        1 => eprintln!("warning: 1 name is not portable to Windows; the torrent is created anyway"),
        n => eprintln!(
            "warning: {n} names are not portable to Windows; the torrent is created anyway"
        ),
    }
}

fn create(args: &CreateArgs) -> Result<PathBuf, CliError> {
    let opts = CreateOptions {
        piece_length: args.piece_length,
        trackers: args.trackers.iter().map(|t| vec![t.clone()]).collect(),
        url_list: args.webseeds.clone(),
        private: args.private,
        threads: threads(args.threads),
        version: args.format.version(),
        ..CreateOptions::default()
    };
    let meta = create_metainfo(&args.path, &opts)?;
    let out = match &args.output {
        Some(o) => o.clone(),
        None => default_torrent_path(&args.path)?,
    };
    write_atomically(&out, &meta.to_bytes())?;
    println!("info-hash: {}", meta.info_hash);
    println!("magnet: {}", magnet_of(&meta, None));
    println!("torrent: {}", escape_path(&out));
    Ok(out)
}

/// The torrent's magnet link (BEP 9; `urn:btmh:` too for v2 and hybrid, BEP 52), with its
/// trackers and, when given, this node as a direct peer (`x.pe`).
fn magnet_of(meta: &Metainfo, peer: Option<SocketAddr>) -> String {
    let mut link = MagnetLink::for_metainfo(meta);
    if let Some(a) = meta
        .announce
        .as_ref()
        .filter(|a| !link.trackers.contains(a))
    {
        link.trackers.insert(0, a.clone());
    }
    link.peers = peer.map(|p| p.to_string()).into_iter().collect();
    link.to_uri()
}

fn bind(addr: SocketAddr) -> Result<std::net::TcpListener, CliError> {
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
    bind().map_err(|e| format!("cannot listen on {addr}: {e}"))
}

fn read_torrent_file(path: &Path) -> Result<Metainfo, CliError> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", escape_path(path)))?;
    let mut bytes = Vec::new();
    file.take(MAX_TORRENT_FILE_LEN + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{}: {e}", escape_path(path)))?;
    if bytes.len() as u64 > MAX_TORRENT_FILE_LEN {
        return Err(format!(
            "{}: larger than {MAX_TORRENT_FILE_LEN} bytes, not a .torrent we load",
            escape_path(path)
        ));
    }
    Metainfo::from_bytes(&bytes).map_err(|e| format!("{}: {e}", escape_path(path)))
}

/// A fresh 32-byte secret for keyed MACs (UDP connection ids, tokens).
fn random_secret() -> [u8; 32] {
    use ring::rand::SecureRandom;
    let mut secret = [0u8; 32];
    if ring::rand::SystemRandom::new().fill(&mut secret).is_err() {
        // Without the OS RNG there is no safe secret; refusing to start beats a guessable one.
        eprintln!("error: the operating system's random number generator failed");
        std::process::exit(1);
    }
    secret
}

fn bind_udp(addr: SocketAddr) -> Result<std::net::UdpSocket, CliError> {
    std::net::UdpSocket::bind(addr).map_err(|e| format!("cannot listen on udp {addr}: {e}"))
}

fn tracker(args: &TrackerArgs) -> Result<(), CliError> {
    let http = bind(args.http)?;
    let http_addr = http.local_addr().map_err(|e| e.to_string())?;
    let udp = bind_udp(args.udp.unwrap_or(http_addr))?;
    let udp_addr = udp.local_addr().map_err(|e| e.to_string())?;
    let access_list = match (&args.allow, &args.deny) {
        (Some(f), _) => Some((AccessMode::Allow, f.clone())),
        (None, Some(f)) => Some((AccessMode::Deny, f.clone())),
        (None, None) => None,
    };
    println!("http: {http_addr}");
    println!("udp: {udp_addr}");
    let _ = std::io::stdout().flush();
    let config = ReactorConfig {
        peer_id: new_peer_id(),
        peer_port: http_addr.port(),
        announce_ip: None,
        upload_slots: DEFAULT_UPLOAD_SLOTS,
        global_upload_slots: DEFAULT_GLOBAL_UPLOAD_SLOTS,
        upload_rate_bytes_per_sec: 0,
        torrent_upload_rate_bytes_per_sec: 0,
        max_connections: args.max_connections,
        max_connections_per_ip: args.max_connections,
        max_peers_per_torrent: DEFAULT_MAX_PEERS_PER_TORRENT,
        disk_threads: 1,
        data_path: DataPath::Sendfile,
        cache_bytes: 0,
        access_list: access_list.clone(),
        secret: random_secret(),
    };
    let tracker_config = TrackerConfig {
        open: true,
        ..TrackerConfig::default()
    };
    let tracker = Tracker::with_secret(tracker_config, Instant::now(), random_secret());
    let mut reactor = Reactor::new(
        vec![(http, ListenerKind::HttpOnly)],
        Some(udp),
        true,
        None,
        None,
        tracker,
        config,
    )
    .map_err(|e| format!("starting the event loop: {e}"))?;
    if let Some((_, path)) = &access_list {
        // A list that cannot be read at start is an error, not an open tracker.
        std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
        reactor.reload_access_list();
    }
    info!(http = %http_addr, udp = %udp_addr, "tracker running");
    reactor.run().map_err(|e| format!("event loop failed: {e}"))
}

/// `$XDG_STATE_HOME/seednode/dht_nodes` or `~/.local/state/seednode/dht_nodes`.
fn default_dht_state() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))?;
    Some(base.join("seednode").join("dht_nodes"))
}

/// How long start-up waits for bootstrap host names to resolve (there may be no DNS at all).
const BOOTSTRAP_RESOLVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// Resolves `HOST:PORT` bootstrap names on threads of their own, waiting at most
/// [`BOOTSTRAP_RESOLVE_TIMEOUT`]; names that fail or are late are skipped with a warning.
fn resolve_bootstrap(names: &[String]) -> Vec<SocketAddr> {
    use std::net::ToSocketAddrs;
    let (tx, rx) = std::sync::mpsc::channel();
    for name in names.iter().filter(|n| n.as_str() != "none") {
        let (tx, name) = (tx.clone(), name.clone());
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
    while let Ok((name, addrs)) =
        rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
    {
        if addrs.is_empty() {
            warn!(node = %name, "DHT bootstrap node did not resolve");
        }
        out.extend(addrs);
    }
    out
}

/// A DHT node bootstrapping from `bootstrap`, with the routing table of the last run from
/// `state` (and the node ID it had then). `local_ip` is the address its socket is bound to or
/// reached at: internal addresses (loopback, LAN) are used only when it is one of them.
fn new_dht(
    bootstrap: &[String],
    state: Option<PathBuf>,
    external_ip: Option<IpAddr>,
    local_ip: IpAddr,
) -> Result<(seednode_dht::Dht, Option<PathBuf>), CliError> {
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
    Ok((dht, state))
}

fn dht_node(args: &DhtNodeArgs) -> Result<(), CliError> {
    let udp = bind_udp(args.listen)?;
    let addr = udp.local_addr().map_err(|e| e.to_string())?;
    let dht = new_dht(&args.bootstrap, args.state.clone(), None, args.listen.ip())?;
    println!("node-id: {}", InfoHash(dht.0.node_id().0));
    println!("dht: {addr}");
    let _ = std::io::stdout().flush();
    let config = ReactorConfig {
        peer_id: new_peer_id(),
        peer_port: addr.port(),
        announce_ip: None,
        upload_slots: DEFAULT_UPLOAD_SLOTS,
        global_upload_slots: DEFAULT_GLOBAL_UPLOAD_SLOTS,
        upload_rate_bytes_per_sec: 0,
        torrent_upload_rate_bytes_per_sec: 0,
        max_connections: DEFAULT_MAX_CONNECTIONS,
        max_connections_per_ip: DEFAULT_MAX_CONNECTIONS_PER_IP,
        max_peers_per_torrent: DEFAULT_MAX_PEERS_PER_TORRENT,
        disk_threads: 1,
        data_path: DataPath::Sendfile,
        cache_bytes: 0,
        access_list: None,
        secret: random_secret(),
    };
    let tracker = Tracker::new(TrackerConfig::default());
    let mut reactor = Reactor::new(
        Vec::new(),
        Some(udp),
        false,
        Some(dht),
        None,
        tracker,
        config,
    )
    .map_err(|e| format!("starting the event loop: {e}"))?;
    reactor.run().map_err(|e| format!("event loop failed: {e}"))
}

fn new_peer_id() -> PeerId {
    use ring::rand::SecureRandom;
    let mut id = [0u8; 20];
    id[..8].copy_from_slice(b"-SN0100-");
    // Without randomness the ID is still valid, just predictable.
    let _ = ring::rand::SystemRandom::new().fill(&mut id[8..]);
    PeerId(id)
}

/// The reactor's view of a prepared torrent, and the external tracker tiers to announce it to
/// (BEP 12), with this node's own tracker URLs (`own`) left out.
fn seeded_torrent(
    prepared: Prepared,
    super_seed: bool,
    own: &[Option<&str>],
) -> (SeededTorrent, Vec<Vec<String>>) {
    let Prepared {
        meta,
        have,
        storage,
        ..
    } = prepared;
    let v2 = meta.v2.as_ref().map(|v2| {
        Arc::new(V2Torrent {
            meta: v2.clone(),
            map: PieceMap::new(&v2.info),
        })
    });
    // A hybrid is also known by its truncated v2 info-hash (BEP 52).
    let aliases: Vec<InfoHash> = meta
        .info_hash_v2()
        .map(|h| h.truncated())
        .filter(|h| *h != meta.info_hash)
        .into_iter()
        .collect();
    let mut tiers: Vec<Vec<String>> = if meta.announce_list.is_empty() {
        meta.announce.iter().map(|a| vec![a.clone()]).collect()
    } else {
        meta.announce_list.clone()
    };
    for tier in &mut tiers {
        tier.retain(|url| !own.contains(&Some(url.as_str())));
    }
    tiers.retain(|t| !t.is_empty());
    let torrent = SeededTorrent {
        info_hash: meta.info_hash,
        storage: Arc::new(storage),
        piece_length: meta.info.piece_length,
        total_length: meta.info.total_length(),
        have: Have::from_flags(&have),
        info_bytes: meta.info_bytes.clone(),
        piece_check: piece_check(&meta, v2.as_ref()),
        v2,
        aliases,
        private: meta.info.private,
        super_seed,
    };
    (torrent, tiers)
}

/// How pieces read for sending are checked: SHA-1 for torrents with a v1 side, the merkle piece
/// layers for v2-only ones.
fn piece_check(meta: &Metainfo, v2: Option<&Arc<V2Torrent>>) -> PieceCheck {
    use sha1::Digest;
    match v2.filter(|_| !meta.has_v1()) {
        Some(v2) => {
            let v2 = Arc::clone(v2);
            // A v2 piece read from storage may end in padding (a file's last piece, BEP 52):
            // the hash covers the file bytes; the padding must be zeros.
            Arc::new(move |piece, data| {
                v2.map
                    .locate(piece)
                    .and_then(|loc| {
                        let (file_data, padding) =
                            data.split_at_checked(usize::try_from(loc.data_len).ok()?)?;
                        if padding.iter().any(|b| *b != 0) {
                            return Some(false);
                        }
                        v2.meta.verify_piece(&loc, file_data)
                    })
                    .unwrap_or(false)
            })
        }
        None => {
            // A view into the info dictionary's `pieces` string: no second copy of the hashes.
            let hashes = meta.piece_hashes();
            Arc::new(move |piece, data| {
                usize::try_from(piece)
                    .ok()
                    .and_then(|i| hashes.get(i.checked_mul(20)?..i.checked_mul(20)? + 20))
                    .is_some_and(|h| sha1::Sha1::digest(data)[..] == h[..])
            })
        }
    }
}

/// A torrent ready to seed: its metainfo, where its .torrent is, which pieces verified, its
/// data.
struct Prepared {
    meta: Metainfo,
    torrent_path: PathBuf,
    have: Vec<bool>,
    storage: Storage,
}

/// Hashes `path` into a new torrent announcing to `trackers` (written beside it, or to `-o`), or
/// verifies it against `--torrent`.
fn prepare_torrent(
    args: &SeedArgs,
    path: &Path,
    trackers: &[String],
) -> Result<Prepared, CliError> {
    if let Some(t) = &args.torrent {
        let meta = read_torrent_file(t)?;
        let storage = Storage::open(path, &meta.info).map_err(|e| e.to_string())?;
        let bar = progress::Progress::new("verifying", Some(meta.info.total_length()));
        let progress = |d| bar.set(d);
        // A v2-only torrent has no SHA-1 piece hashes: its merkle trees are checked instead.
        let have = match meta.v2.as_ref().filter(|_| !meta.has_v1()) {
            Some(v2) => seednode_storage::verify_v2(&storage, v2, threads(args.threads), &progress),
            None => {
                seednode_storage::verify(&storage, &meta.info, threads(args.threads), &progress)
            }
        }
        .map_err(|e| e.to_string())?;
        bar.finish();
        let good = have.iter().filter(|h| **h).count();
        if good == 0 {
            return Err(format!(
                "{}: no piece matches {}; nothing to seed",
                escape_path(path),
                escape_path(t)
            ));
        }
        if good < have.len() {
            warn!(
                good,
                total = have.len(),
                "some pieces fail verification; seeding the rest"
            );
        }
        return Ok(Prepared {
            meta,
            torrent_path: t.clone(),
            have,
            storage,
        });
    }
    let opts = CreateOptions {
        piece_length: args.piece_length,
        trackers: trackers.iter().map(|t| vec![t.clone()]).collect(),
        threads: threads(args.threads),
        version: args.format.version(),
        ..CreateOptions::default()
    };
    let meta = create_metainfo(path, &opts)?;
    let out = match &args.output {
        Some(o) => o.clone(),
        None => default_torrent_path(path)?,
    };
    write_atomically(&out, &meta.to_bytes())?;
    let storage = Storage::open(path, &meta.info).map_err(|e| e.to_string())?;
    let have = vec![true; meta.info.pieces.len()];
    Ok(Prepared {
        meta,
        torrent_path: out,
        have,
        storage,
    })
}

fn seed(args: &SeedArgs) -> Result<(), CliError> {
    let tracker_ca = match &args.tracker_ca {
        Some(path) => reactor::https::load_tracker_ca(path).map_err(|e| e.to_string())?,
        None => Vec::new(),
    };
    let listener = bind(args.listen)?;
    let listen = listener.local_addr().map_err(|e| e.to_string())?;
    let http_listener = args.http.map(bind).transpose()?;
    let http_addr = match &http_listener {
        Some(l) => Some(l.local_addr().map_err(|e| e.to_string())?),
        None => None,
    };
    let announce_ip: Option<IpAddr> = match &args.announce_host {
        Some(h) => h.parse().ok(),
        None if listen.ip().is_unspecified() => None,
        None => Some(listen.ip()),
    };
    let host = match (&args.announce_host, listen.ip()) {
        (Some(h), _) => h.clone(),
        (None, ip) if ip.is_unspecified() => {
            warn!(
                "listening on every interface; the announce URL says 127.0.0.1. Pass \
                 --announce-host so that other machines can reach this node"
            );
            Ipv4Addr::LOCALHOST.to_string()
        }
        (None, IpAddr::V6(v6)) => format!("[{v6}]"),
        (None, ip) => ip.to_string(),
    };
    let tracker_port = http_addr.map_or(listen.port(), |a| a.port());
    let announce_url = format!("http://{host}:{tracker_port}/announce");
    let udp = if args.no_udp && args.dht.no_dht {
        None
    } else {
        Some(bind_udp(args.udp.unwrap_or(listen))?)
    };
    let udp_announce_url = match udp.as_ref().filter(|_| !args.no_udp) {
        Some(u) => {
            let port = u.local_addr().map_err(|e| e.to_string())?.port();
            Some(format!("udp://{host}:{port}/announce"))
        }
        None => None,
    };

    if args.paths.len() > 1 && (args.torrent.is_some() || args.output.is_some()) {
        return Err("--torrent and -o take a single PATH".into());
    }
    let mut trackers = vec![announce_url.clone()];
    trackers.extend(udp_announce_url.iter().cloned());
    trackers.extend(args.trackers.iter().cloned());
    let self_addr = SocketAddr::new(
        announce_ip.unwrap_or(Ipv4Addr::LOCALHOST.into()),
        listen.port(),
    );
    // Every tracker a torrent names, except this node's own (it knows about itself).
    let own = [Some(announce_url.as_str()), udp_announce_url.as_deref()];
    // One torrent at a time: its parsed metainfo is dropped before the next is made, so the heap
    // never holds them all (what would stay resident after start-up).
    let mut ready = Vec::with_capacity(args.paths.len());
    for path in &args.paths {
        let p = prepare_torrent(args, path, &trackers)?;
        let meta = &p.meta;
        println!("info-hash: {}", meta.info_hash);
        println!("magnet: {}", magnet_of(meta, Some(self_addr)));
        println!("torrent: {}", escape_path(&p.torrent_path));
        info!(info_hash = %meta.info_hash, name = %escape_name(&meta.info.name), pieces = meta.info.pieces.len(),
              bytes = meta.info.total_length(), announce = %announce_url, "seeding");
        ready.push(seeded_torrent(p, args.super_seed, &own));
    }
    println!("listening: {listen}");
    if let Some(h) = http_addr {
        println!("http: {h}");
    }
    let _ = std::io::stdout().flush();

    let mut listeners = vec![(listener, ListenerKind::Shared)];
    if let Some(l) = http_listener {
        listeners.push((l, ListenerKind::HttpOnly));
    }
    let config = ReactorConfig {
        peer_id: new_peer_id(),
        peer_port: listen.port(),
        announce_ip,
        upload_slots: args.upload_slots,
        global_upload_slots: args.global_upload_slots,
        upload_rate_bytes_per_sec: args.max_upload_rate,
        torrent_upload_rate_bytes_per_sec: args.max_upload_rate_per_torrent,
        max_connections: args.max_connections,
        max_connections_per_ip: args.max_connections_per_ip,
        max_peers_per_torrent: args.max_peers_per_torrent,
        disk_threads: DEFAULT_DISK_THREADS,
        data_path: args.data_path,
        cache_bytes: args.cache_mib.saturating_mul(1024 * 1024),
        access_list: None,
        secret: random_secret(),
    };
    let tracker = Tracker::with_secret(TrackerConfig::default(), Instant::now(), random_secret());
    // Announces to external trackers leave from a socket of their own (not the tracker's).
    let announce_socket = bind_udp(SocketAddr::new(
        if listen.is_ipv6() {
            IpAddr::from(std::net::Ipv6Addr::UNSPECIFIED)
        } else {
            listen.ip()
        },
        0,
    ))?;
    let dht = if args.dht.no_dht {
        None
    } else {
        let bootstrap = if args.dht.bootstrap.is_empty() {
            seednode_dht::DEFAULT_BOOTSTRAP_NODES
                .iter()
                .map(|s| (*s).to_owned())
                .collect()
        } else {
            args.dht.bootstrap.clone()
        };
        let state = args.dht.state.clone().or_else(default_dht_state);
        Some(new_dht(
            &bootstrap,
            state,
            announce_ip,
            announce_ip.unwrap_or(listen.ip()),
        )?)
    };
    let mut reactor = Reactor::new(
        listeners,
        udp,
        !args.no_udp,
        dht,
        Some(announce_socket),
        tracker,
        config,
    )
    .map_err(|e| format!("starting the event loop: {e}"))?;
    reactor.set_tracker_ca(tracker_ca);
    for (torrent, tiers) in ready {
        let info_hash = torrent.info_hash;
        reactor.add_torrent(torrent);
        if !tiers.is_empty() {
            reactor.announce_to(info_hash, &tiers);
        }
    }
    reactor.run().map_err(|e| format!("event loop failed: {e}"))
}

#[cfg(test)]
mod panic_tests {
    use super::*;

    /// Set in the child run of [`a_panic_on_any_thread_ends_the_process`].
    const CHILD_ENV: &str = "SEEDNODE_TEST_PANIC_CHILD";

    #[test]
    fn a_panic_on_any_thread_ends_the_process() {
        if std::env::var_os(CHILD_ENV).is_some() {
            install_panic_hook();
            let worker = std::thread::Builder::new()
                .name("disk-0".into())
                .spawn(|| panic!("worker gave up"))
                .expect("spawn");
            let _ = worker.join();
            // Never reached: the hook ended the process.
            std::thread::sleep(std::time::Duration::from_secs(30));
            return;
        }
        let exe = std::env::current_exe().expect("test binary");
        let out = std::process::Command::new(exe)
            .args([
                "panic_tests::a_panic_on_any_thread_ends_the_process",
                "--exact",
                "--nocapture",
            ])
            .env(CHILD_ENV, "1")
            .output()
            .expect("run child");
        assert_eq!(out.status.code(), Some(PANIC_EXIT_CODE), "{out:?}");
    }
}
