//! The command line: clap definitions of every subcommand, and the code that runs each.
//!
//! Every subcommand checks what it can before doing slow work: paths exist, the `.torrent` can
//! be written (or an existing one matches), ports can be bound; only then is data hashed. Each
//! error says which flag fixes it.

pub(crate) mod audit;
pub(crate) mod bench;
pub(crate) mod create;
pub(crate) mod device;
pub(crate) mod info;
pub(crate) mod net;
pub(crate) mod nostr;
pub(crate) mod parse;
pub(crate) mod push;
pub(crate) mod remote;
pub(crate) mod run;
pub(crate) mod seed;
pub(crate) mod servers;
pub(crate) mod token;
pub(crate) mod torrent_file;
pub(crate) mod webhook;

use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use seednode_storage::{SymlinkPolicy, TorrentVersion};

use crate::limits::{
    DEFAULT_CACHE_MIB, DEFAULT_GLOBAL_UPLOAD_SLOTS, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_CONNECTIONS_PER_IP, DEFAULT_MAX_PEERS_PER_TORRENT, DEFAULT_UPLOAD_SLOTS,
};
use crate::reactor::DataPath;
use parse::{Listen, parse_piece_length};

/// An error for the operator, already worded.
pub(crate) type CliError = String;

/// Port of `seed` (peers, the built-in tracker and the DHT), BitTorrent's customary first port.
pub(crate) const DEFAULT_SEED_PORT: u16 = 6881;
/// Port of `tracker`, opentracker's and most public trackers' customary one.
pub(crate) const DEFAULT_TRACKER_PORT: u16 = 6969;
/// Port of `dht`: not [`DEFAULT_SEED_PORT`], so that a standalone node and a seed run side by
/// side on one machine without a flag.
pub(crate) const DEFAULT_DHT_PORT: u16 = 6882;

/// `seednode --version`: the package version and the commit it was built from (`build.rs`).
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("SEEDNODE_COMMIT"),
    ")"
);

#[derive(Parser)]
#[command(
    name = "seednode",
    version = VERSION,
    about = "A headless BitTorrent seed node",
    long_about = "A headless BitTorrent seed node.\n\n\
        Quick start: `seednode seed FILE` hashes FILE, writes FILE.torrent beside it, prints the \
        info-hash and a magnet link, and seeds until Ctrl-C. Any BitTorrent client that opens \
        FILE.torrent finds the seed through the tracker built into seednode, on the same port.\n\n\
        Logging: set RUST_LOG (e.g. RUST_LOG=debug) to see more."
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once at start; boxing buys nothing
pub(crate) enum Command {
    /// Seed a file or directory: hash it (or verify it against --torrent), write its .torrent,
    /// print the info-hash and magnet link, and serve it until SIGINT/SIGTERM.
    Seed(SeedArgs),
    /// Create a .torrent for a file or directory without seeding it.
    Create(CreateArgs),
    /// Show what a .torrent holds: name, info-hashes, piece length, files, trackers, magnet.
    Info(InfoArgs),
    /// Run only the tracker (HTTP and UDP), for any torrent, like opentracker.
    Tracker(TrackerArgs),
    /// Run only a Mainline DHT node (BEP 5), e.g. as the bootstrap node of a private network.
    Dht(DhtNodeArgs),
    /// Run the long-lived node: seed every torrent of the data directory's catalog (fast
    /// resume: no hashing when files are unchanged), keep statistics across restarts, until
    /// SIGINT/SIGTERM.
    Run(RunArgs),
    /// Add a torrent to a running node: a .torrent whose data is in the node's content
    /// directory (`<data-dir>/data/<name>`, or --path), or a file or directory inside that
    /// directory (hashed here, like `create` with default options).
    Add(AddArgs),
    /// Push a file to a running node (UPLOAD_FILE, docs/upload.md): it is stored, hashed as it
    /// arrives, made a torrent and seeded; prints the info-hash and magnet. A dropped
    /// connection is resumed where the node stopped.
    Push(PushArgs),
    /// List a running node's torrents: a table, or --json.
    List(ListArgs),
    /// Remove a torrent from a running node (its data stays unless --delete-data).
    Remove(RemoveArgs),
    /// Pause a torrent on a running node: it stops seeding and stays in the catalog.
    Pause(TorrentRefArgs),
    /// Resume a paused torrent on a running node (its files are checked first).
    Resume(TorrentRefArgs),
    /// Manage API tokens in the data directory's catalog (works while the node runs).
    Token(TokenArgs),
    /// Manage OAuth2 clients (RFC 6749 client credentials): machines that get short-lived
    /// bearer tokens from `POST /oauth/token`. Works while the node runs.
    Client(ClientArgs),
    /// Manage webhook endpoints: signed POSTs (Standard Webhooks) of the node's events,
    /// delivered from a durable outbox (docs/webhooks.md). Works while the node runs.
    Webhook(WebhookArgs),
    /// The node's Nostr key (docs/nostr.md): torrents are announced to the `[nostr]` relays
    /// signed with it. Works while the node runs (the key is read at start).
    Nostr(NostrArgs),
    /// Manage device keys (Ed25519) that approve critical API writes (docs/approvals.md).
    /// Works while the node runs.
    Device(DeviceArgs),
    /// Approve a pending critical write: sign its challenge with a device key and send it.
    Approve(ApproveArgs),
    /// Show the audit log (authentications, torrents added, removed, paused): one line per
    /// event, or --json. Works while the node runs.
    Audit(AuditArgs),
    /// Work on the catalog of a stopped node (adding torrents by hand, for tests and imports).
    Catalog(CatalogArgs),
    /// Print a shell completion script (e.g. `seednode completions bash >
    /// /etc/bash_completion.d/seednode`).
    Completions(CompletionsArgs),
    /// Print the man page (roff), or write one per subcommand into --dir.
    Man(ManArgs),
    /// Measure: a sink leecher against any seeder, a load generator for any tracker, hashing
    /// throughput, and `bench self`, a health check of this node on loopback.
    Bench(bench::BenchArgs),
}

/// Mainline DHT settings (BEP 5) of `seed`.
#[derive(Args)]
pub(crate) struct DhtArgs {
    /// Do not join the Mainline DHT.
    #[arg(long)]
    pub(crate) no_dht: bool,
    /// A DHT node to bootstrap from, HOST:PORT (repeatable) [default: the well-known public
    /// routers, router.bittorrent.com:6881 and others]. `--dht-bootstrap none` uses none.
    #[arg(long = "dht-bootstrap", value_name = "HOST:PORT")]
    pub(crate) bootstrap: Vec<String>,
    /// Where the DHT routing table is kept between runs
    /// [default: $XDG_STATE_HOME/seednode/dht_nodes, or ~/.local/state/seednode/dht_nodes].
    #[arg(long = "dht-state", value_name = "FILE")]
    pub(crate) state: Option<PathBuf>,
}

#[derive(Args)]
pub(crate) struct DhtNodeArgs {
    /// UDP address of the node: IP:PORT, :PORT, IP or PORT [default: [::]:6882, IPv4 and IPv6].
    #[arg(long, value_name = "ADDR")]
    pub(crate) listen: Option<Listen>,
    /// UDP port of the node (the IP stays --listen's).
    #[arg(short, long, value_name = "PORT")]
    pub(crate) port: Option<u16>,
    /// A node to bootstrap from, HOST:PORT (repeatable) [default: none: a standalone node is
    /// usually the bootstrap node of a private network].
    #[arg(long, value_name = "HOST:PORT")]
    pub(crate) bootstrap: Vec<String>,
    /// Where the routing table is kept between runs.
    #[arg(long, value_name = "FILE")]
    pub(crate) state: Option<PathBuf>,
}

#[derive(Args)]
pub(crate) struct TrackerArgs {
    /// Address of the HTTP tracker (`/announce`, `/scrape`): IP:PORT, :PORT, IP or PORT
    /// [default: [::]:6969, IPv4 and IPv6].
    #[arg(long, visible_alias = "http", value_name = "ADDR")]
    pub(crate) listen: Option<Listen>,
    /// Port of the tracker (the IP stays --listen's).
    #[arg(short, long, value_name = "PORT")]
    pub(crate) port: Option<u16>,
    /// Address for the UDP tracker (BEP 15) [default: the --listen address, over UDP].
    #[arg(long, value_name = "ADDR")]
    pub(crate) udp: Option<Listen>,
    /// Serve only the info-hashes listed in FILE (40 hex digits a line; reloaded on SIGHUP).
    #[arg(long, value_name = "FILE", conflicts_with = "deny")]
    pub(crate) allow: Option<PathBuf>,
    /// Serve every info-hash except those listed in FILE (reloaded on SIGHUP).
    #[arg(long, value_name = "FILE")]
    pub(crate) deny: Option<PathBuf>,
    /// Most connections at once.
    #[arg(long, default_value_t = DEFAULT_MAX_CONNECTIONS, value_name = "N")]
    pub(crate) max_connections: usize,
}

/// How symbolic links below a directory are treated when making its torrent.
#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Debug)]
pub(crate) enum Symlinks {
    /// Follow links that resolve inside the directory (as mktorrent does); skip, and count,
    /// the others.
    Follow,
    /// Skip every link (and count them).
    Skip,
}

impl Symlinks {
    pub(crate) const fn policy(self) -> SymlinkPolicy {
        match self {
            Self::Follow => SymlinkPolicy::FollowWithinRoot,
            Self::Skip => SymlinkPolicy::Refuse,
        }
    }
}

/// What goes into a new torrent: shared by `seed` and `create`, with mktorrent's short flags
/// where they do not clash (`-a`, `-c`, `-n`, `-s`, `-w`, `-o`).
#[derive(Args)]
pub(crate) struct TorrentArgs {
    /// Where to write the .torrent [default: PATH.torrent beside PATH].
    #[arg(short, long, value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,
    /// Overwrite an existing .torrent that does not match (without it, one that matches the
    /// data is reused, and one that does not is left alone with an error).
    #[arg(short, long)]
    pub(crate) force: bool,
    /// Piece length: bytes or with a unit (262144, 256K, 1M; a power of two, 16K to 16M)
    /// [default: chosen for about 1000-2000 pieces].
    #[arg(long, value_name = "SIZE", value_parser = parse_piece_length)]
    pub(crate) piece_length: Option<u32>,
    /// Tracker URL (repeatable; each is its own tier, BEP 12). `-a` as in mktorrent.
    #[arg(
        long = "tracker",
        short = 't',
        visible_short_alias = 'a',
        visible_alias = "announce",
        value_name = "URL"
    )]
    pub(crate) trackers: Vec<String>,
    /// Web seed URL for `url-list` (repeatable, BEP 19).
    #[arg(long = "webseed", short = 'w', value_name = "URL")]
    pub(crate) webseeds: Vec<String>,
    /// Mark the torrent private (BEP 27): peers come only from its trackers.
    #[arg(long)]
    pub(crate) private: bool,
    /// The torrent's `comment`.
    #[arg(short, long, value_name = "TEXT")]
    pub(crate) comment: Option<String>,
    /// `source` in the info dictionary, as private trackers require (it changes the
    /// info-hash).
    #[arg(short, long, value_name = "TEXT")]
    pub(crate) source: Option<String>,
    /// The torrent's name [default: the file or directory name].
    #[arg(short, long, value_name = "NAME")]
    pub(crate) name: Option<String>,
    /// Symbolic links below a directory: `follow` those that resolve inside it (as mktorrent
    /// does; seeding then reads through them, never outside the directory), or `skip` all.
    /// Skipped links are counted in a warning.
    #[arg(long, value_enum, default_value = "follow", value_name = "HOW")]
    pub(crate) symlinks: Symlinks,
    /// Create a v2-only torrent (BEP 52: SHA-256 merkle trees; libtorrent 2 and qBittorrent 4.4+
    /// can use it, older clients cannot).
    #[arg(long, conflicts_with = "hybrid")]
    pub(crate) v2: bool,
    /// Create a hybrid v1 + v2 torrent (BEP 52 with BEP 47 padding files): every client can use
    /// it, v2 clients verify with merkle trees.
    #[arg(long)]
    pub(crate) hybrid: bool,
    /// Threads used to hash [default: all cores].
    #[arg(long, value_name = "N")]
    pub(crate) threads: Option<usize>,
}

impl TorrentArgs {
    pub(crate) fn version(&self) -> TorrentVersion {
        match (self.v2, self.hybrid) {
            (true, _) => TorrentVersion::V2,
            (_, true) => TorrentVersion::Hybrid,
            _ => TorrentVersion::V1,
        }
    }

    pub(crate) fn threads(&self) -> usize {
        self.threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
            .max(1)
    }
}

#[derive(Args)]
pub(crate) struct SeedArgs {
    /// The files or directories to seed, one torrent each.
    #[arg(required = true, value_name = "PATH")]
    pub(crate) paths: Vec<PathBuf>,
    /// Seed an existing .torrent: PATH is verified against it instead of hashed anew. PATH is
    /// the torrent's own file or directory, or the download directory that contains it. Only
    /// with a single PATH.
    #[arg(long, value_name = "FILE", conflicts_with = "output")]
    pub(crate) torrent: Option<PathBuf>,
    /// PEM file of CA certificates to trust for https:// trackers, besides the built-in
    /// (Mozilla) roots: for a private tracker with a CA of its own. Certificates are always
    /// verified.
    #[arg(long, value_name = "FILE")]
    pub(crate) tracker_ca: Option<PathBuf>,
    /// Address for peers: IP:PORT, :PORT, IP or PORT [default: [::]:6881, IPv4 and IPv6]; the built-in
    /// tracker (HTTP) answers on the same port.
    #[arg(long, value_name = "ADDR")]
    pub(crate) listen: Option<Listen>,
    /// Port for peers and the tracker (the IP stays --listen's).
    #[arg(short, long, value_name = "PORT")]
    pub(crate) port: Option<u16>,
    /// Also serve HTTP (the tracker) on a port of its own: IP:PORT or :PORT.
    #[arg(long, value_name = "ADDR")]
    pub(crate) http: Option<Listen>,
    /// Address for the UDP tracker (BEP 15) [default: the --listen address, over UDP].
    #[arg(long, value_name = "ADDR")]
    pub(crate) udp: Option<Listen>,
    /// Run no UDP tracker (the UDP port still carries the DHT unless --no-dht, and uTP unless
    /// --no-utp).
    #[arg(long)]
    pub(crate) no_udp: bool,
    /// Accept no uTP (BEP 29) peer connections on the UDP port; peers then need TCP.
    #[arg(long)]
    pub(crate) no_utp: bool,
    /// Dial peers (learnt from trackers, PEX, the DHT) over uTP first, TCP if that fails
    /// [default: TCP first, uTP if that fails].
    #[arg(long, conflicts_with = "no_utp")]
    pub(crate) prefer_utp: bool,
    /// Ask the gateway for no port mapping (UPnP IGD, NAT-PMP; docs/nat.md).
    #[arg(long, env = "SEEDNODE_NO_NAT", value_parser = clap::builder::BoolishValueParser::new())]
    pub(crate) no_nat: bool,
    /// Lease of the gateway's port mappings in seconds, renewed at half (docs/nat.md).
    #[arg(long, value_name = "SECS", default_value_t = crate::nat::DEFAULT_LEASE.as_secs())]
    pub(crate) nat_lease: u64,
    #[command(flatten)]
    pub(crate) dht: DhtArgs,
    #[command(flatten)]
    pub(crate) torrent_args: TorrentArgs,
    /// Host or IP that clients should use to reach this node, put into the announce URL and
    /// given out by the tracker [default: the --listen IP; when listening on every interface,
    /// the address of the interface that reaches the internet].
    #[arg(long, value_name = "HOST")]
    pub(crate) announce_host: Option<String>,
    /// Peers of one torrent unchoked at once (one of them rotates: the optimistic unchoke).
    #[arg(long, default_value_t = DEFAULT_UPLOAD_SLOTS, value_name = "N")]
    pub(crate) upload_slots: usize,
    /// Upload limit of the whole node in bytes per second (0 = unlimited; units as 10M).
    #[arg(long, default_value = "0", value_name = "BYTES_PER_SEC", value_parser = parse::parse_size)]
    pub(crate) max_upload_rate: u64,
    /// Upload limit of each torrent in bytes per second (0 = unlimited; units as 10M).
    #[arg(long, default_value = "0", value_name = "BYTES_PER_SEC", value_parser = parse::parse_size)]
    pub(crate) max_upload_rate_per_torrent: u64,
    /// How block payloads reach the socket: `sendfile` (no copy in user space) or `copy`
    /// (read on a disk thread, then write).
    #[arg(long, value_enum, default_value = "sendfile", value_name = "HOW")]
    pub(crate) data_path: DataPath,
    /// MiB of whole pieces kept in memory by `--data-path copy` (pieces read into it are checked
    /// against their hash first).
    #[arg(long, default_value_t = DEFAULT_CACHE_MIB, value_name = "MIB")]
    pub(crate) cache_mib: usize,
    /// Super-seeding (BEP 16): reveal one piece at a time to each peer, least common first, to
    /// spread a new torrent with the fewest bytes uploaded by this node.
    #[arg(long)]
    pub(crate) super_seed: bool,
    /// Peers unchoked at once over all torrents.
    #[arg(long, default_value_t = DEFAULT_GLOBAL_UPLOAD_SLOTS, value_name = "N")]
    pub(crate) global_upload_slots: usize,
    /// Most connections at once.
    #[arg(long, default_value_t = DEFAULT_MAX_CONNECTIONS, value_name = "N")]
    pub(crate) max_connections: usize,
    /// Most connections at once from one IP address.
    #[arg(long, default_value_t = DEFAULT_MAX_CONNECTIONS_PER_IP, value_name = "N")]
    pub(crate) max_connections_per_ip: usize,
    /// Most peers of one torrent at once.
    #[arg(long, default_value_t = DEFAULT_MAX_PEERS_PER_TORRENT, value_name = "N")]
    pub(crate) max_peers_per_torrent: usize,
    /// Seconds between the summary lines (peers, upload rate, total uploaded) logged while
    /// anything is happening; 0 turns them off.
    #[arg(long, default_value_t = crate::reactor::DEFAULT_SUMMARY_INTERVAL.as_secs(), value_name = "SECS")]
    pub(crate) summary_interval: u64,
}

#[derive(Args)]
pub(crate) struct CreateArgs {
    /// The file or directory to make a torrent of.
    pub(crate) path: PathBuf,
    #[command(flatten)]
    pub(crate) torrent_args: TorrentArgs,
}

#[derive(Args)]
pub(crate) struct InfoArgs {
    /// The .torrent file.
    pub(crate) torrent: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Args)]
pub(crate) struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub(crate) shell: clap_complete::Shell,
}

#[derive(Args)]
pub(crate) struct ManArgs {
    /// Write seednode.1 and seednode-SUBCOMMAND.1 into this directory instead of printing
    /// seednode.1.
    #[arg(long, value_name = "DIR")]
    pub(crate) dir: Option<PathBuf>,
}

/// `--data-dir`, shared by the commands that use the catalog.
#[derive(Args)]
pub(crate) struct DataDirArgs {
    /// The node's data directory, holding catalog.sqlite [default: $STATE_DIRECTORY under
    /// systemd, else $XDG_DATA_HOME/seednode, else ~/.local/share/seednode].
    #[arg(long, value_name = "DIR", global = true)]
    pub(crate) data_dir: Option<PathBuf>,
}

/// How the companion commands reach a running node.
#[derive(Args)]
pub(crate) struct NodeArgs {
    /// The node's HTTP address, HOST:PORT or an http(s):// URL [default: the config file's
    /// `http`, else its `listen`, else 127.0.0.1:6881].
    #[arg(long, value_name = "HOST:PORT", env = "SEEDNODE_NODE")]
    pub(crate) node: Option<String>,
    /// Bearer token for the API [default: the config file's `api_token`].
    #[arg(
        long,
        value_name = "TOKEN",
        env = "SEEDNODE_TOKEN",
        hide_env_values = true
    )]
    pub(crate) token: Option<String>,
    /// The node's TOML configuration (for its address and `api_token`).
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
}

#[derive(Args)]
pub(crate) struct AddArgs {
    /// A .torrent file, a file or directory inside the node's content directory, or a magnet
    /// link (refused: the node only seeds).
    pub(crate) what: String,
    /// For a .torrent: where its data is, relative to the node's content directory
    /// [default: the torrent's name].
    #[arg(long, value_name = "REL")]
    pub(crate) path: Option<String>,
    /// For a data path: the node's content directory [default: <data-dir>/data].
    #[arg(long, value_name = "DIR")]
    pub(crate) content_dir: Option<PathBuf>,
    /// For a data path: the node's data directory (its content directory is `data` in it).
    #[arg(long, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// Print the node's JSON answer.
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) node: NodeArgs,
}

#[derive(Args)]
pub(crate) struct PushArgs {
    /// The file.
    pub(crate) file: PathBuf,
    /// Its name on the node (one path component) [default: the file's name].
    #[arg(long, value_name = "NAME")]
    pub(crate) name: Option<String>,
    /// Hash the file first and have the node check it (reads the file twice here).
    #[arg(long)]
    pub(crate) sha256: bool,
    /// --node is the node's upload address here, HOST:PORT [default: the config's `upload`,
    /// else 127.0.0.1:6881].
    #[command(flatten)]
    pub(crate) node: NodeArgs,
}

#[derive(Args)]
pub(crate) struct ListArgs {
    /// Print the node's JSON instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) node: NodeArgs,
}

#[derive(Args)]
pub(crate) struct TorrentRefArgs {
    /// The torrent's info-hash (40 hex digits).
    #[arg(value_name = "INFOHASH")]
    pub(crate) info_hash: String,
    /// Print the node's JSON answer.
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) node: NodeArgs,
}

#[derive(Args)]
pub(crate) struct RemoveArgs {
    #[command(flatten)]
    pub(crate) torrent: TorrentRefArgs,
    /// Also delete the torrent's files (only inside the node's content directory).
    #[arg(long)]
    pub(crate) delete_data: bool,
}

#[derive(Args)]
pub(crate) struct ClientArgs {
    /// The node's data directory [default: as for `run`].
    #[arg(long, value_name = "DIR", global = true)]
    pub(crate) data_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub(crate) command: ClientCommand,
}

#[derive(Subcommand)]
pub(crate) enum ClientCommand {
    /// Create a client; prints `client_id` and `client_secret` once (only the secret's SHA-256
    /// is kept).
    Create {
        /// Scopes its access tokens may carry, comma-separated: upload, read, metrics, admin.
        #[arg(long, value_name = "SCOPES")]
        scope: String,
        /// A label to recognise it by in `client list`.
        #[arg(long, value_name = "TEXT")]
        label: Option<String>,
        #[command(flatten)]
        quota: QuotaArgs,
    },
    /// List every client (never their secrets).
    List {
        /// Print one JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a client: its secret and every access token issued to it stop working.
    Revoke {
        /// The client's id.
        id: String,
    },
}

#[derive(Args)]
pub(crate) struct WebhookArgs {
    /// The node's data directory [default: as for `run`].
    #[arg(long, value_name = "DIR", global = true)]
    pub(crate) data_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub(crate) command: WebhookCommand,
}

#[derive(Subcommand)]
pub(crate) enum WebhookCommand {
    /// Register an endpoint; prints its id (and a generated secret, once).
    Add {
        /// Where events are POSTed: https://…, or http:// to a LAN receiver with
        /// --allow-private.
        url: String,
        /// Which events, comma-separated: `*`, kinds (upload.completed) or prefixes ending in
        /// a dot (auth.).
        #[arg(long, default_value = "*", value_name = "KINDS")]
        kinds: String,
        /// The signing secret (`whsec_<base64>`) [default: a new random one, printed once].
        #[arg(long, value_name = "SECRET")]
        secret: Option<String>,
        /// The receiver's X25519 public key (hex or base64): bodies are sent as sealed boxes.
        #[arg(long, value_name = "KEY")]
        recipient_key: Option<String>,
        /// Allow loopback and private-network targets (a LAN receiver).
        #[arg(long)]
        allow_private: bool,
        /// A label to recognise it by.
        #[arg(long, value_name = "TEXT")]
        label: Option<String>,
    },
    /// List endpoints with their pending and failed deliveries.
    List {
        /// Print one JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Remove an endpoint and its queued deliveries.
    Remove {
        /// The endpoint's id.
        id: i64,
    },
    /// Queue a `webhook.test` event for one endpoint.
    Test {
        /// The endpoint's id.
        id: i64,
    },
}

#[derive(Args)]
pub(crate) struct NostrArgs {
    /// The node's data directory [default: as for `run`].
    #[arg(long, value_name = "DIR", global = true)]
    pub(crate) data_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub(crate) command: NostrCommand,
}

#[derive(Subcommand)]
pub(crate) enum NostrCommand {
    /// Manage the node's key (`nostr.key` in the data directory, mode 0600).
    Key {
        #[command(subcommand)]
        command: NostrKeyCommand,
    },
}

#[derive(Subcommand)]
pub(crate) enum NostrKeyCommand {
    /// Create a new random key; prints its public key (npub and hex).
    Generate {
        /// Replace an existing key (events signed with the old one can no longer be deleted
        /// by the node).
        #[arg(long)]
        force: bool,
    },
    /// Print the public key (npub and hex); never the secret.
    Show,
    /// Store a secret key given as nsec1… (NIP-19) or 64 hex characters; read from stdin when
    /// absent or `-` (an argument is visible to other users in the process list).
    Import {
        /// The secret key, or `-` for stdin.
        secret: Option<String>,
        /// Replace an existing key.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Args)]
pub(crate) struct DeviceArgs {
    /// The node's data directory [default: as for `run`].
    #[arg(long, value_name = "DIR", global = true)]
    pub(crate) data_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub(crate) command: DeviceCommand,
}

#[derive(Subcommand)]
pub(crate) enum DeviceCommand {
    /// Register a device's Ed25519 public key (base64 or 64 hex digits).
    Add {
        /// A name for it (unique), as `approve --device` and the grant's `device` give it.
        name: String,
        /// The public key (32 bytes, RFC 8032), base64 or hex.
        public_key: String,
    },
    /// List devices (never a private key: the node has none).
    List {
        /// Print one JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a device by name or id: its signatures are refused from then on.
    Revoke {
        /// The device's name or id.
        name: String,
    },
    /// Make a new Ed25519 key: writes the private key to FILE (0600, 64 hex digits) and
    /// prints the public key for `device add`.
    Keygen {
        /// Where to write the private key (must not exist).
        file: PathBuf,
    },
}

#[derive(Args)]
pub(crate) struct ApproveArgs {
    /// The approval id (`apr_…`, from the 202 answer or the `approval.requested` event).
    pub(crate) id: String,
    /// The device's private key file (64 hex digits or base64 of the 32-byte Ed25519 seed).
    #[arg(long, value_name = "FILE")]
    pub(crate) key: PathBuf,
    /// The device's name as registered with `seednode device add`.
    #[arg(long, value_name = "NAME")]
    pub(crate) device: String,
    #[command(flatten)]
    pub(crate) node: NodeArgs,
}

#[derive(Args)]
pub(crate) struct AuditArgs {
    /// The node's data directory [default: as for `run`].
    #[arg(long, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// Only events at or after this time: Unix seconds, or a time ago (15m, 2h, 7d).
    #[arg(long, value_name = "WHEN")]
    pub(crate) since: Option<String>,
    /// Only events of this kind (auth.oauth.failed), or of this prefix ending in a dot (auth.).
    #[arg(long, value_name = "KIND")]
    pub(crate) kind: Option<String>,
    /// The newest N events at most.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub(crate) limit: usize,
    /// One JSON array instead of lines.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Args)]
pub(crate) struct TokenArgs {
    /// The node's data directory, holding catalog.sqlite [default: $STATE_DIRECTORY under
    /// systemd, else $XDG_DATA_HOME/seednode, else ~/.local/share/seednode].
    #[arg(long, value_name = "DIR", global = true)]
    pub(crate) data_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub(crate) command: TokenCommand,
}

#[derive(Subcommand)]
pub(crate) enum TokenCommand {
    /// Create a token and print it once on stdout (only its SHA-256 is kept).
    Create(TokenCreateArgs),
    /// List every token (never their secrets): id, status, scopes, times, label.
    List {
        /// Print one JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by its id (the 12 hex digits after `sn_`); the row stays for audits.
    Revoke {
        /// The token's id.
        id: String,
    },
}

#[derive(Args)]
pub(crate) struct TokenCreateArgs {
    /// What the token allows, comma-separated: admin (everything), upload, read, metrics.
    #[arg(long, value_name = "SCOPES")]
    pub(crate) scope: String,
    /// Seconds until the token stops working [default: never].
    #[arg(long, value_name = "SECS")]
    pub(crate) expires_in: Option<u64>,
    /// A label to recognise the token by in `token list`.
    #[arg(long, value_name = "TEXT")]
    pub(crate) label: Option<String>,
    #[command(flatten)]
    pub(crate) quota: QuotaArgs,
}

/// Caps on what a token or client may add (checked at every add, `ERR quota` / 403).
#[derive(Args, Clone, Copy)]
pub(crate) struct QuotaArgs {
    /// Most torrents it may add and keep [default: no cap].
    #[arg(long, value_name = "N")]
    pub(crate) quota_torrents: Option<u64>,
    /// Most payload bytes over the torrents it added, units as 10G [default: no cap].
    #[arg(long, value_name = "BYTES", value_parser = parse::parse_size)]
    pub(crate) quota_bytes: Option<u64>,
}

#[derive(Args)]
pub(crate) struct CatalogArgs {
    #[command(flatten)]
    pub(crate) data: DataDirArgs,
    #[command(subcommand)]
    pub(crate) command: CatalogCommand,
}

#[derive(Subcommand)]
pub(crate) enum CatalogCommand {
    /// Add a .torrent whose data is at DATA to a stopped node's catalog, verifying the data
    /// first (its file times are recorded, so `run` seeds it without hashing). The running
    /// node adds torrents through its API instead.
    Add {
        /// The .torrent file.
        torrent: PathBuf,
        /// The torrent's own file (single-file) or directory (multi-file).
        data: PathBuf,
    },
    /// List the torrents of the catalog: id, state, info-hash, uploaded bytes, name.
    List,
}

#[derive(Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    pub(crate) data: DataDirArgs,
    /// TOML configuration file (see contrib/seednode.toml); flags override it. An unknown key
    /// is an error.
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Address for peers and HTTP (tracker, metrics, API): IP:PORT, :PORT, IP or PORT
    /// [config `listen`; default [::]:6881, IPv4 and IPv6].
    #[arg(long, value_name = "ADDR")]
    pub(crate) listen: Option<Listen>,
    /// Also serve HTTP on a port of its own: IP:PORT or :PORT [config `http`].
    #[arg(long, value_name = "ADDR")]
    pub(crate) http: Option<Listen>,
    /// Also accept raw uploads (UPLOAD_TORRENT, docs/upload.md) on a port of their own:
    /// IP:PORT or :PORT [config `upload`]; they are accepted on --listen anyway.
    #[arg(long, value_name = "ADDR")]
    pub(crate) upload: Option<Listen>,
    /// Run no UDP tracker [config `udp_tracker = false`].
    #[arg(long)]
    pub(crate) no_udp: bool,
    /// Do not join the Mainline DHT [config `dht = false`].
    #[arg(long)]
    pub(crate) no_dht: bool,
    /// Ask the gateway for no port mapping (docs/nat.md) [config `nat = false`].
    #[arg(long, env = "SEEDNODE_NO_NAT", value_parser = clap::builder::BoolishValueParser::new())]
    pub(crate) no_nat: bool,
    /// Host or IP clients should use to reach this node [config `announce_host`].
    #[arg(long, value_name = "HOST")]
    pub(crate) announce_host: Option<String>,
    /// Node-wide upload limit in bytes per second, 0 = unlimited (units as 10M)
    /// [config `max_upload_rate`].
    #[arg(long, value_name = "BYTES_PER_SEC", value_parser = parse::parse_size)]
    pub(crate) max_upload_rate: Option<u64>,
    /// Most connections at once [config `max_connections`].
    #[arg(long, value_name = "N")]
    pub(crate) max_connections: Option<usize>,
    /// Seconds between statistics flushes to the catalog [config `stats_flush_interval`].
    #[arg(long, value_name = "SECS")]
    pub(crate) stats_flush_interval: Option<u64>,
    /// Announce torrents to this Nostr relay (ws:// or wss://; repeat for several; replaces
    /// the config's list) [config `[nostr] relays`].
    #[arg(long = "nostr-relay", value_name = "URL")]
    pub(crate) nostr_relays: Vec<String>,
    /// The node's public base URL for the `url` tags of Nostr announcements
    /// (http://host:port) [config `[nostr] public_url`].
    #[arg(long, value_name = "URL")]
    pub(crate) nostr_public_url: Option<String>,
}

/// Runs the parsed command line.
///
/// # Errors
/// The failure, worded for the operator.
pub(crate) fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Seed(args) => seed::seed(&args),
        Command::Create(args) => create::create(&args).map(|_| ()),
        Command::Info(args) => info::info(&args),
        Command::Tracker(args) => servers::tracker(&args),
        Command::Dht(args) => servers::dht_node(&args),
        Command::Run(args) => run::run(&args),
        Command::Add(args) => remote::add(&args),
        Command::List(args) => remote::list(&args),
        Command::Push(args) => push::push(&args),
        Command::Remove(args) => remote::remove(&args.torrent, args.delete_data),
        Command::Pause(args) => remote::set_state(&args, "pause"),
        Command::Resume(args) => remote::set_state(&args, "resume"),
        Command::Token(args) => token::token(&args),
        Command::Audit(args) => audit::audit(&args),
        Command::Client(args) => token::client(&args),
        Command::Webhook(args) => webhook::webhook(&args),
        Command::Nostr(args) => nostr::nostr(&args),
        Command::Device(args) => device::device(&args),
        Command::Approve(args) => device::approve(&args),
        Command::Catalog(args) => run::catalog(&args),
        Command::Completions(args) => {
            clap_complete::generate(
                args.shell,
                &mut Cli::command(),
                "seednode",
                &mut std::io::stdout(),
            );
            Ok(())
        }
        Command::Man(args) => man(&args),
        Command::Bench(args) => bench::bench(&args),
    }
}

/// Renders the man pages from the clap definitions (clap_mangen).
fn man(args: &ManArgs) -> Result<(), CliError> {
    let cmd = Cli::command();
    let Some(dir) = &args.dir else {
        return clap_mangen::Man::new(cmd)
            .render(&mut std::io::stdout())
            .map_err(|e| format!("writing the man page: {e}"));
    };
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let write = |name: String, page: clap::Command| -> Result<(), CliError> {
        let path = dir.join(format!("{name}.1"));
        let mut out = Vec::new();
        clap_mangen::Man::new(page)
            .title(name.clone())
            .render(&mut out)
            .and_then(|()| std::fs::write(&path, out))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        println!("{}", path.display());
        Ok(())
    };
    for sub in cmd.get_subcommands() {
        write(format!("seednode-{}", sub.get_name()), sub.clone())?;
    }
    write("seednode".to_owned(), cmd)
}
