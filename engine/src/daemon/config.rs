//! `seednode run --config FILE`: the TOML configuration of the long-lived node.
//!
//! Every key is optional; `contrib/seednode.toml` shows each one with its default and meaning.
//! An unknown key is an error that names it and its line (`deny_unknown_fields`), so a typo
//! never silently falls back to a default. Command-line flags override the file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::cli::CliError;
use crate::limits::{
    DEFAULT_CACHE_MIB, DEFAULT_GLOBAL_UPLOAD_SLOTS, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_CONNECTIONS_PER_IP, DEFAULT_MAX_PEERS_PER_TORRENT, DEFAULT_UPLOAD_SLOTS,
};

/// Largest configuration file read, bytes: a hand-written file is a few KiB.
pub(crate) const MAX_CONFIG_FILE_LEN: u64 = 1024 * 1024;

/// Default seconds between two flushes of the statistics to the catalog: a crash (or
/// `kill -9`) loses at most this much of them, nothing else.
pub(crate) const DEFAULT_STATS_FLUSH_INTERVAL: Duration = Duration::from_secs(10);

/// Shortest and longest statistics flush interval accepted, seconds: a flush is one small
/// transaction with an `fsync`, so once a second is the most worth paying for, and an hour the
/// most worth losing.
pub(crate) const STATS_FLUSH_INTERVAL_RANGE: std::ops::RangeInclusive<u64> = 1..=3600;

/// How long a partial upload is kept for a resume unless configured: a day.
pub(crate) const DEFAULT_UPLOAD_EXPIRY: Duration = Duration::from_secs(24 * 3600);

/// The configuration file, every key with its default (see `contrib/seednode.toml`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Config {
    /// The data directory (the catalog lives in it); `--data-dir` overrides it.
    pub(crate) data_dir: Option<PathBuf>,
    /// Address for peers and HTTP: `IP:PORT`, `:PORT`, `IP` or `PORT`.
    pub(crate) listen: String,
    /// A second, HTTP-only address (`IP:PORT` or `:PORT`); none by default.
    pub(crate) http: Option<String>,
    /// An address for raw uploads only (`UPLOAD_TORRENT`, docs/upload.md); none by default
    /// (uploads are accepted on `listen` anyway).
    pub(crate) upload: Option<String>,
    /// Whether the UDP tracker (BEP 15) answers on the listen port.
    pub(crate) udp_tracker: bool,
    /// Whether to join the Mainline DHT (BEP 5).
    pub(crate) dht: bool,
    /// Whether peers may connect over uTP (BEP 29) on the listen port (docs/utp.md).
    pub(crate) utp: bool,
    /// Dial peers over uTP first (TCP if that fails); otherwise TCP first, uTP second.
    pub(crate) prefer_utp: bool,
    /// Whether to ask the gateway for port mappings (UPnP IGD, NAT-PMP; docs/nat.md).
    pub(crate) nat: bool,
    /// Lease of the gateway's port mappings in seconds, renewed at half.
    pub(crate) nat_lease_secs: u64,
    /// DHT nodes to bootstrap from (`HOST:PORT`); empty: the well-known public routers.
    pub(crate) dht_bootstrap: Vec<String>,
    /// Host or IP clients should use to reach this node.
    pub(crate) announce_host: Option<String>,
    /// Host names (besides IP literals and `localhost`) the HTTP API answers to.
    pub(crate) allowed_hosts: Vec<String>,
    /// PEM file of extra CA certificates for https:// trackers.
    pub(crate) tracker_ca: Option<PathBuf>,
    /// PEM file of extra CA certificates trusted for https:// webhook endpoints, next to
    /// Mozilla's roots (a private receiver's CA).
    pub(crate) webhook_ca: Option<PathBuf>,
    /// Node-wide upload limit, bytes per second; 0 = unlimited.
    pub(crate) max_upload_rate: u64,
    /// Per-torrent upload limit, bytes per second; 0 = unlimited.
    pub(crate) max_upload_rate_per_torrent: u64,
    /// Peers of one torrent unchoked at once.
    pub(crate) upload_slots: usize,
    /// Peers unchoked at once over all torrents.
    pub(crate) global_upload_slots: usize,
    /// Most connections at once.
    pub(crate) max_connections: usize,
    /// Most connections at once from one IP address.
    pub(crate) max_connections_per_ip: usize,
    /// Most peers of one torrent at once.
    pub(crate) max_peers_per_torrent: usize,
    /// How block payloads reach the socket: `"sendfile"` or `"copy"`.
    pub(crate) data_path: String,
    /// MiB of whole pieces the `copy` data path keeps in memory.
    pub(crate) cache_mib: usize,
    /// Seconds between summary log lines; 0 turns them off.
    pub(crate) summary_interval: u64,
    /// Seconds between statistics flushes to the catalog.
    pub(crate) stats_flush_interval: u64,
    /// Seconds a partial upload (a dropped `UPLOAD_FILE`) is kept for `UPLOAD_RESUME`; older
    /// ones are removed at start.
    pub(crate) upload_expiry_secs: u64,
    /// Seconds an address stays locked out after more than 5 failed authentications within a
    /// minute (API, uploads).
    pub(crate) lockout_secs: u64,
    /// Webhook endpoints (`[[webhook]]` tables), registered at start when their URL is not
    /// yet in the catalog (with `seednode webhook add`'s checks); `seednode webhook remove`
    /// removes one for good only once it is gone from the file too.
    pub(crate) webhook: Vec<WebhookConfig>,
    /// Out-of-band approvals (`[approvals]`, docs/approvals.md): which API writes wait for a
    /// device's Ed25519 signature.
    pub(crate) approvals: ApprovalsConfig,
    /// The token the companion commands (`seednode add|list|remove|pause|resume`) present to
    /// the node's API; the node itself never reads it. Keep the file private if set.
    pub(crate) api_token: Option<String>,
    /// Announcing torrents to Nostr relays (`[nostr]`, docs/nostr.md); off while `relays` is
    /// empty.
    pub(crate) nostr: NostrConfig,
}

/// `[nostr]` (docs/nostr.md).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct NostrConfig {
    /// Relay URLs (`ws://` or `wss://`); none: nothing is announced.
    pub(crate) relays: Vec<String>,
    /// The node's public base URL (`http(s)://host[:port]`) for the `url` tags; default:
    /// `http://<announce_host>:<listen port>` when `announce_host` is set, else no `url` tag.
    pub(crate) public_url: Option<String>,
    /// `t` (topic) tags of every NIP-35 torrent event.
    pub(crate) topics: Vec<String>,
    /// Seconds an event is retried after it was queued (at most a week).
    pub(crate) retry_period_secs: u64,
    /// Seconds of the connect, read and write timeouts with a relay (1 to 60).
    pub(crate) timeout_secs: u64,
    /// Public keys granted scopes, like tokens (`[[nostr.pubkey]]`: NIP-98 signed API
    /// requests and Blossom, `docs/blossom.md`, `docs/api.md`).
    pub(crate) pubkey: Vec<NostrPubkeyConfig>,
}

/// One `[[nostr.pubkey]]` entry.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub(crate) struct NostrPubkeyConfig {
    /// `npub1…` (NIP-19) or 64 hex digits.
    pub(crate) npub: String,
    /// Scopes, as tokens carry them: `read`, `metrics`, `upload`, `admin`.
    pub(crate) scopes: Vec<String>,
    /// Most torrents (blobs) this key may have in the catalog; absent for no cap.
    #[serde(default)]
    pub(crate) quota_torrents: Option<u64>,
    /// Most payload bytes over this key's torrents; absent for no cap.
    #[serde(default)]
    pub(crate) quota_bytes: Option<u64>,
}

impl Default for NostrConfig {
    fn default() -> Self {
        Self {
            relays: Vec::new(),
            public_url: None,
            topics: Vec::new(),
            retry_period_secs: crate::nostr::publisher::DEFAULT_NOSTR_RETRY_PERIOD.as_secs(),
            timeout_secs: crate::nostr::publisher::DEFAULT_NOSTR_TIMEOUT.as_secs(),
            pubkey: Vec::new(),
        }
    }
}

impl NostrConfig {
    /// Checks the values a type cannot express.
    ///
    /// # Errors
    /// The first bad value, for the operator.
    pub(crate) fn check(&self, shown: &str) -> Result<(), CliError> {
        if self.relays.len() > crate::nostr::MAX_RELAYS {
            return Err(format!(
                "{shown}: [nostr] relays: at most {} relays",
                crate::nostr::MAX_RELAYS
            ));
        }
        for r in &self.relays {
            crate::nostr::check_relay_url(r).map_err(|e| format!("{shown}: [nostr] {e}"))?;
        }
        if let Some(u) = &self.public_url
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            return Err(format!(
                "{shown}: [nostr] public_url {u:?}: must start with http:// or https://"
            ));
        }
        if self.topics.len() > crate::nostr::MAX_TOPICS
            || self
                .topics
                .iter()
                .any(|t| t.is_empty() || t.len() > crate::nostr::MAX_TOPIC_LEN)
        {
            return Err(format!(
                "{shown}: [nostr] topics: at most {} of 1 to {} bytes each",
                crate::nostr::MAX_TOPICS,
                crate::nostr::MAX_TOPIC_LEN
            ));
        }
        if !(1..=crate::nostr::publisher::MAX_NOSTR_TIMEOUT.as_secs()).contains(&self.timeout_secs)
        {
            return Err(format!(
                "{shown}: [nostr] timeout_secs = {}: must be 1 to {}",
                self.timeout_secs,
                crate::nostr::publisher::MAX_NOSTR_TIMEOUT.as_secs()
            ));
        }
        Ok(())
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: None,
            // Every interface of both families (`[::]`, or `0.0.0.0` where IPv6 is off).
            listen: format!(":{}", crate::cli::DEFAULT_SEED_PORT),
            http: None,
            upload: None,
            udp_tracker: true,
            dht: true,
            utp: true,
            prefer_utp: false,
            nat: true,
            nat_lease_secs: crate::nat::DEFAULT_LEASE.as_secs(),
            dht_bootstrap: Vec::new(),
            announce_host: None,
            allowed_hosts: Vec::new(),
            tracker_ca: None,
            webhook_ca: None,
            max_upload_rate: 0,
            max_upload_rate_per_torrent: 0,
            upload_slots: DEFAULT_UPLOAD_SLOTS,
            global_upload_slots: DEFAULT_GLOBAL_UPLOAD_SLOTS,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_ip: DEFAULT_MAX_CONNECTIONS_PER_IP,
            max_peers_per_torrent: DEFAULT_MAX_PEERS_PER_TORRENT,
            data_path: "sendfile".to_owned(),
            cache_mib: DEFAULT_CACHE_MIB,
            summary_interval: crate::reactor::DEFAULT_SUMMARY_INTERVAL.as_secs(),
            stats_flush_interval: DEFAULT_STATS_FLUSH_INTERVAL.as_secs(),
            upload_expiry_secs: DEFAULT_UPLOAD_EXPIRY.as_secs(),
            lockout_secs: crate::events::lockout::DEFAULT_LOCKOUT.as_secs(),
            api_token: None,
            webhook: Vec::new(),
            nostr: NostrConfig::default(),
            approvals: ApprovalsConfig::default(),
        }
    }
}

/// The `[approvals]` table (docs/approvals.md).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ApprovalsConfig {
    /// Action names that wait for a device's signature (`torrent.remove`, `data.delete`,
    /// `token.create`, `client.create`, `webhook.add`, `torrent.add`, `torrent.pause`,
    /// `torrent.resume`, `device.add`, `device.revoke`).
    pub(crate) critical: Vec<String>,
    /// Every API write waits.
    pub(crate) all_writes: bool,
    /// Seconds a device has to sign (clamped to 10..=3600).
    pub(crate) expiry_secs: u64,
}

impl Default for ApprovalsConfig {
    fn default() -> Self {
        Self {
            critical: Vec::new(),
            all_writes: false,
            expiry_secs: crate::events::approvals::DEFAULT_EXPIRY_SECS,
        }
    }
}

/// One `[[webhook]]` entry (docs/webhooks.md).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub(crate) struct WebhookConfig {
    /// Where events are POSTed.
    pub(crate) url: String,
    /// Which events: `*`, kinds, or prefixes ending in `.`.
    #[serde(default = "all_kinds")]
    pub(crate) kinds: Vec<String>,
    /// Signing secrets (`whsec_<base64>`), newest first; several during a rotation.
    pub(crate) secrets: Vec<String>,
    /// The receiver's X25519 public key (hex or base64) for sealed-box bodies.
    #[serde(default)]
    pub(crate) recipient_key: Option<String>,
    /// Allow loopback and private-network targets.
    #[serde(default)]
    pub(crate) allow_private: bool,
}

fn all_kinds() -> Vec<String> {
    vec!["*".to_owned()]
}

impl Config {
    /// Parses a configuration from TOML text; `shown` names the file in errors.
    ///
    /// # Errors
    /// TOML syntax, a wrong type, or an unknown key: `toml`'s message names the key and shows
    /// its line.
    pub(crate) fn parse(text: &str, shown: &str) -> Result<Self, CliError> {
        let config: Self = toml::from_str(text).map_err(|e| format!("{shown}: {e}"))?;
        config.check(shown)?;
        Ok(config)
    }

    /// Reads and parses the file at `path` (at most [`MAX_CONFIG_FILE_LEN`] bytes).
    ///
    /// # Errors
    /// The file cannot be read, is too large, or does not parse ([`Config::parse`]).
    pub(crate) fn load(path: &Path) -> Result<Self, CliError> {
        use std::io::Read as _;
        let shown = seednode_wire::display::escape_path(path).into_owned();
        let file = std::fs::File::open(path).map_err(|e| format!("{shown}: {e}"))?;
        let mut text = String::new();
        file.take(MAX_CONFIG_FILE_LEN + 1)
            .read_to_string(&mut text)
            .map_err(|e| format!("{shown}: {e}"))?;
        if text.len() as u64 > MAX_CONFIG_FILE_LEN {
            return Err(format!(
                "{shown}: larger than {MAX_CONFIG_FILE_LEN} bytes, not a configuration file"
            ));
        }
        Self::parse(&text, &shown)
    }

    /// Checks values a type cannot express.
    fn check(&self, shown: &str) -> Result<(), CliError> {
        self.nostr.check(shown)?;
        if !STATS_FLUSH_INTERVAL_RANGE.contains(&self.stats_flush_interval) {
            return Err(format!(
                "{shown}: stats_flush_interval = {}: must be {} to {} seconds",
                self.stats_flush_interval,
                STATS_FLUSH_INTERVAL_RANGE.start(),
                STATS_FLUSH_INTERVAL_RANGE.end()
            ));
        }
        if !matches!(self.data_path.as_str(), "sendfile" | "copy") {
            return Err(format!(
                "{shown}: data_path = {:?}: expected \"sendfile\" or \"copy\"",
                self.data_path
            ));
        }
        self.approval_policy()
            .map_err(|e| format!("{shown}: {e}"))?;
        Ok(())
    }

    /// The approval policy of the `[approvals]` table.
    ///
    /// # Errors
    /// An unknown action name.
    pub(crate) fn approval_policy(&self) -> Result<crate::events::approvals::Policy, String> {
        crate::events::approvals::Policy::new(
            &self.approvals.critical,
            self.approvals.all_writes,
            self.approvals.expiry_secs,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_tables_parse_and_unknown_keys_in_them_are_errors() {
        let c = Config::parse(
            "[[webhook]]\nurl = \"https://h.example/x\"\nsecrets = [\"whsec_AAAA\"]\n",
            "f",
        )
        .unwrap();
        assert_eq!(c.webhook.len(), 1);
        assert_eq!(c.webhook[0].kinds, ["*"]);
        let e =
            Config::parse("[[webhook]]\nurl = \"x\"\nsecrets = []\nsecert = 1\n", "f").unwrap_err();
        assert!(e.contains("secert"), "{e}");
    }

    #[test]
    fn the_example_file_parses_to_the_defaults() {
        let example = include_str!("../../../contrib/seednode.toml");
        // Every key of the example is commented out: the defaults.
        assert_eq!(
            Config::parse(example, "example").unwrap(),
            Config::default()
        );
        // Uncommented, every example line is a valid key with its default value.
        let uncommented: String = example
            .lines()
            .filter_map(|l| {
                let setting = l.strip_prefix("# ")?;
                let (key, _) = setting.split_once(" = ")?;
                key.bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_')
                    .then_some(setting)
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let parsed = Config::parse(&uncommented, "uncommented").unwrap();
        assert_eq!(
            Config {
                data_dir: None,
                http: None,
                upload: None,
                announce_host: None,
                tracker_ca: None,
                webhook_ca: None,
                api_token: None,
                webhook: Vec::new(),
                ..parsed
            },
            Config::default()
        );
    }

    #[test]
    fn nostr_pubkeys_parse_into_grants() {
        let c = Config::parse(
            "[[nostr.pubkey]]\nnpub = \"npub180cvv07tjdrrgpa0j7j7tmnyl2yr6yr7l8j4s3evf6u64th6gkwsyjh6w6\"\n\
             scopes = [\"read\", \"upload\"]\nquota_bytes = 10\n",
            "f",
        )
        .unwrap();
        let grants = crate::reactor::blossom::grants(&c.nostr.pubkey).unwrap();
        assert_eq!(grants.len(), 1);
        assert_eq!(
            seednode::nostr_auth::hex(&grants[0].pubkey),
            "3bf0c63fcb93463407af97a5e5ee64fa883d107ef9e558472c4eb9aaaefa459d"
        );
        assert_eq!(grants[0].max_bytes, Some(10));
        let bad = Config::parse(
            "[[nostr.pubkey]]\nnpub = \"npub1x\"\nscopes = [\"read\"]\n",
            "f",
        )
        .unwrap();
        assert!(crate::reactor::blossom::grants(&bad.nostr.pubkey).is_err());
        let scope = Config::parse(
            "[[nostr.pubkey]]\nnpub = \"3bf0c63fcb93463407af97a5e5ee64fa883d107ef9e558472c4eb9aaaefa459d\"\nscopes = [\"root\"]\n",
            "f",
        )
        .unwrap();
        assert!(crate::reactor::blossom::grants(&scope.nostr.pubkey).is_err());
    }

    #[test]
    fn an_unknown_key_is_named_with_its_line() {
        let e = Config::parse("listen = \":7000\"\nmax_conections = 5\n", "f.toml").unwrap_err();
        assert!(e.contains("max_conections"), "{e}");
        assert!(e.contains("line 2") || e.contains("2 |"), "{e}");
    }

    #[test]
    fn nostr_table_parses_and_is_checked() {
        let c = Config::parse(
            "[nostr]\nrelays = [\"ws://127.0.0.1:7777\"]\ntopics = [\"linux\"]\ntimeout_secs = 2\n",
            "f",
        )
        .unwrap();
        assert_eq!(c.nostr.relays, ["ws://127.0.0.1:7777"]);
        assert_eq!(c.nostr.timeout_secs, 2);
        assert_eq!(
            c.nostr.retry_period_secs,
            NostrConfig::default().retry_period_secs
        );
        assert!(Config::parse("[nostr]\nrelays = [\"http://x\"]\n", "f").is_err());
        assert!(Config::parse("[nostr]\ntimeout_secs = 0\n", "f").is_err());
        assert!(Config::parse("[nostr]\npublic_url = \"ftp://x\"\n", "f").is_err());
        assert!(Config::parse("[nostr]\nrelay = []\n", "f").is_err());
    }

    #[test]
    fn values_are_checked() {
        assert!(Config::parse("stats_flush_interval = 0", "f").is_err());
        assert!(Config::parse("data_path = \"mmap\"", "f").is_err());
        assert!(Config::parse("max_connections = -1", "f").is_err());
        let c = Config::parse("listen = \":7000\"\ndht = false", "f").unwrap();
        assert_eq!(c.listen, ":7000");
        assert!(!c.dht);
    }
}
