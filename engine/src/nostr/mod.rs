//! Announcing torrents to Nostr relays (issue 14; docs/nostr.md).
//!
//! Every torrent the node adds is announced with the node's key ([`key`]): a NIP-94 file
//! metadata event (kind 1063) per file whose SHA-256 the catalog knows, and a NIP-35 torrent
//! event (kind 2003); a removed torrent gets a NIP-09 deletion (kind 5) naming them. The events
//! are built and signed here ([`announcement`], [`deletion`], [`auth_event`]) with the `nostr`
//! crate, on the publisher's thread ([`publisher`]), never on the event loop: the loop's
//! [`NostrSubscriber`] only hands the info-hash of an added or removed torrent to the publisher
//! through a bounded channel, without blocking.

pub(crate) mod key;
pub(crate) mod publisher;

use std::sync::Arc;
use std::sync::mpsc::{SyncSender, TrySendError};
use std::time::{Duration, Instant};

use nostr::prelude::{Event, EventBuilder, FinalizeEvent as _, Keys, Kind, Tag, Timestamp};

use crate::events::{Event as BusEvent, Subscriber, kind};

/// NIP-94 file metadata (a file, its hash, where to get it).
pub(crate) const KIND_FILE_METADATA: u16 = 1063;
/// NIP-35 torrent.
pub(crate) const KIND_TORRENT: u16 = 2003;
/// NIP-09 event deletion request.
pub(crate) const KIND_DELETION: u16 = 5;
/// NIP-42 client authentication.
pub(crate) const KIND_CLIENT_AUTH: u16 = 22242;

/// Most kind-1063 events per torrent: one per file would flood relays with a torrent of
/// thousands of files (a photo archive); past it, files are skipped with a log line (the
/// kind 2003 still lists them).
pub(crate) const MAX_FILE_EVENTS_PER_TORRENT: usize = 64;

/// Most `file` tags in a kind 2003: keeps the event far under
/// `seednode_storage::catalog::MAX_NOSTR_EVENT_LEN` and the 64-128 KiB most relays accept.
pub(crate) const MAX_FILE_TAGS: usize = 500;

/// Most `tracker` tags in a kind 2003 (and trackers in its magnets).
pub(crate) const MAX_TRACKER_TAGS: usize = 16;

/// Most configured `t` (topic) tags, and the longest one in bytes.
pub(crate) const MAX_TOPICS: usize = 16;
/// Longest `t` tag, bytes.
pub(crate) const MAX_TOPIC_LEN: usize = 64;

/// Most configured relays (each is a row per event in the queue and a session per turn).
pub(crate) const MAX_RELAYS: usize = 16;

/// Longest relay URL, bytes (the catalog's CHECK allows 2048).
pub(crate) const MAX_RELAY_URL_LEN: usize = 512;

/// Jobs (added or removed torrents) waiting for the publisher at most: past it a job is
/// dropped, counted and logged (the loop never waits).
pub(crate) const MAX_QUEUED_NOSTR_JOBS: usize = 1024;

/// The `[nostr]` settings the publisher uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NostrSettings {
    /// Relay URLs (`ws://` or `wss://`), at most [`MAX_RELAYS`].
    pub(crate) relays: Vec<String>,
    /// The node's public base URL (`http(s)://host[:port]`, no trailing `/`), for the `url`
    /// tags (`<base>/webseed/<info-hash>/<name>[/<path>]`); `None`: no `url` tag.
    pub(crate) public_url: Option<String>,
    /// `t` tags added to every kind 2003.
    pub(crate) topics: Vec<String>,
    /// How long an event is retried after it was queued.
    pub(crate) retry_period: Duration,
    /// Connect, read and write timeout of one relay operation; a relay's whole turn is
    /// bounded by [`publisher::SESSION_TIMEOUT_FACTOR`] times it.
    pub(crate) timeout: Duration,
}

/// Checks a relay URL: `ws://` or `wss://`, a host, at most [`MAX_RELAY_URL_LEN`] bytes.
///
/// # Errors
/// What is wrong, for the operator.
pub(crate) fn check_relay_url(url: &str) -> Result<(), String> {
    if url.len() > MAX_RELAY_URL_LEN {
        return Err(format!("relay URL over {MAX_RELAY_URL_LEN} bytes"));
    }
    let rest = url
        .strip_prefix("ws://")
        .or_else(|| url.strip_prefix("wss://"))
        .ok_or_else(|| format!("relay {url:?}: must start with ws:// or wss://"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("relay {url:?}: no host, or a space in it"));
    }
    Ok(())
}

/// What the publisher knows of a torrent to announce it (from the catalog).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TorrentFacts {
    /// Hex of the swarm info-hash (the catalog's key for the queue rows, `i` tags).
    pub(crate) swarm_hex: String,
    /// Hex of the v1 (SHA-1) info-hash; `None` for a v2-only torrent.
    pub(crate) v1_hex: Option<String>,
    /// The torrent's name.
    pub(crate) name: String,
    /// Its files in order, padding files left out.
    pub(crate) files: Vec<FileFacts>,
    /// Its trackers, every tier in order.
    pub(crate) trackers: Vec<String>,
    /// Its magnet link (`magnet:?xt=urn:btih:…`).
    pub(crate) magnet: String,
}

/// One file of a [`TorrentFacts`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileFacts {
    /// Path below the torrent's name, components joined by `/`; empty for a single-file
    /// torrent.
    pub(crate) path: String,
    /// Length in bytes.
    pub(crate) length: u64,
    /// SHA-256 of the file, when the catalog has it.
    pub(crate) sha256: Option<[u8; 32]>,
}

impl FileFacts {
    /// The file's display name: its path's last component, or the torrent's name.
    fn file_name<'a>(&'a self, torrent: &'a str) -> &'a str {
        self.path
            .rsplit('/')
            .next()
            .filter(|s| !s.is_empty())
            .unwrap_or(torrent)
    }

    /// Its path as a `file` tag shows it: `name/path` (or the name for a single file).
    fn full_path(&self, torrent: &str) -> String {
        if self.path.is_empty() {
            torrent.to_owned()
        } else {
            format!("{torrent}/{}", self.path)
        }
    }
}

/// The signed events announcing one torrent.
#[derive(Debug)]
pub(crate) struct Announcement {
    /// The kind-1063 events, then the kind 2003.
    pub(crate) events: Vec<Event>,
    /// Files without a kind 1063 (no SHA-256 in the catalog, or past
    /// [`MAX_FILE_EVENTS_PER_TORRENT`]), for the log.
    pub(crate) skipped: Vec<String>,
}

/// Why an event could not be built.
#[derive(Debug, thiserror::Error)]
#[error("signing a Nostr event: {0}")]
pub(crate) struct SignError(String);

fn sign(builder: EventBuilder, keys: &Keys, created_at: u64) -> Result<Event, SignError> {
    builder
        .custom_created_at(Timestamp::from(created_at))
        .finalize(keys)
        .map_err(|e| SignError(e.to_string()))
}

fn tag(values: &[&str]) -> Tag {
    let (kind, rest) = values.split_first().unwrap_or((&"", &[]));
    Tag::custom(*kind, rest.iter().copied())
}

/// The webseed URL of a file (BEP 19 layout of this node's `/webseed/` route), every path
/// segment percent-encoded.
fn webseed_url(base: &str, facts: &TorrentFacts, file: &FileFacts) -> String {
    let mut url = format!("{base}/webseed/{}/", facts.swarm_hex);
    seednode_wire::percent::encode(facts.name.as_bytes(), &mut url);
    for segment in file.path.split('/').filter(|s| !s.is_empty()) {
        url.push('/');
        seednode_wire::percent::encode(segment.as_bytes(), &mut url);
    }
    url
}

/// The MIME type of a file name (NIP-94 `m`), from its extension; `application/octet-stream`
/// when unknown.
pub(crate) fn mime_type(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("txt" | "md" | "log") => "text/plain",
        Some("html" | "htm") => "text/html",
        Some("json") => "application/json",
        Some("pdf") => "application/pdf",
        Some("zip") => "application/zip",
        Some("gz" | "tgz") => "application/gzip",
        Some("tar") => "application/x-tar",
        Some("xz") => "application/x-xz",
        Some("zst") => "application/zstd",
        Some("iso") => "application/x-iso9660-image",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("png") => "image/png",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        Some("svg") => "image/svg+xml",
        Some("mp3") => "audio/mpeg",
        Some("ogg" | "oga") => "audio/ogg",
        Some("flac") => "audio/flac",
        Some("wav") => "audio/wav",
        Some("mp4" | "m4v") => "video/mp4",
        Some("webm") => "video/webm",
        Some("mkv") => "video/x-matroska",
        Some("epub") => "application/epub+zip",
        _ => "application/octet-stream",
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Builds and signs the announcement of a torrent at `created_at` (seconds since the Unix
/// epoch):
/// - per file with a SHA-256 (at most [`MAX_FILE_EVENTS_PER_TORRENT`]), a NIP-94 kind 1063:
///   content = the file name; tags `url` (when a public URL is set), `m`, `x` (the file's
///   SHA-256), `size`, `i` (the swarm info-hash), `magnet`, `name`;
/// - a NIP-35 kind 2003: content = the torrent's name; tags `title`, `x` (the v1 info-hash;
///   the swarm hash for a v2-only torrent), a `file` tag per file (`path`, size in bytes; at
///   most [`MAX_FILE_TAGS`]), `tracker` per tracker (at most [`MAX_TRACKER_TAGS`]), `t` per
///   configured topic.
///
/// # Errors
/// [`SignError`] (the `nostr` crate refused to sign).
pub(crate) fn announcement(
    facts: &TorrentFacts,
    settings: &NostrSettings,
    keys: &Keys,
    created_at: u64,
) -> Result<Announcement, SignError> {
    let mut events = Vec::new();
    let mut skipped = Vec::new();
    for file in &facts.files {
        let shown = file.full_path(&facts.name);
        let Some(sha) = file.sha256 else {
            skipped.push(format!("{shown}: no SHA-256 in the catalog"));
            continue;
        };
        if events.len() >= MAX_FILE_EVENTS_PER_TORRENT {
            skipped.push(format!(
                "{shown}: over {MAX_FILE_EVENTS_PER_TORRENT} file events"
            ));
            continue;
        }
        let name = file.file_name(&facts.name);
        let size = file.length.to_string();
        let sha = hex(&sha);
        let url = settings
            .public_url
            .as_deref()
            .map(|base| webseed_url(base, facts, file));
        let mut builder = EventBuilder::new(Kind::from(KIND_FILE_METADATA), name);
        if let Some(url) = &url {
            builder = builder.tag(tag(&["url", url]));
        }
        builder = builder.tags([
            tag(&["m", mime_type(name)]),
            tag(&["x", &sha]),
            tag(&["size", &size]),
            tag(&["i", &facts.swarm_hex]),
            tag(&["magnet", &facts.magnet]),
            tag(&["name", name]),
        ]);
        events.push(sign(builder, keys, created_at)?);
    }
    let x = facts.v1_hex.as_deref().unwrap_or(&facts.swarm_hex);
    let mut builder = EventBuilder::new(Kind::from(KIND_TORRENT), facts.name.as_str())
        .tag(tag(&["title", &facts.name]))
        .tag(tag(&["x", x]));
    for file in facts.files.iter().take(MAX_FILE_TAGS) {
        builder = builder.tag(tag(&[
            "file",
            &file.full_path(&facts.name),
            &file.length.to_string(),
        ]));
    }
    for tracker in facts.trackers.iter().take(MAX_TRACKER_TAGS) {
        builder = builder.tag(tag(&["tracker", tracker]));
    }
    for t in settings.topics.iter().take(MAX_TOPICS) {
        builder = builder.tag(tag(&["t", t]));
    }
    events.push(sign(builder, keys, created_at)?);
    Ok(Announcement { events, skipped })
}

/// A NIP-09 deletion request (kind 5) for `events` (`(id hex, kind)`): an `e` tag per id, a
/// `k` tag per kind, a short content saying why.
///
/// # Errors
/// [`SignError`].
pub(crate) fn deletion(
    events: &[(String, u16)],
    keys: &Keys,
    created_at: u64,
) -> Result<Event, SignError> {
    let mut builder = EventBuilder::new(
        Kind::from(KIND_DELETION),
        "torrent removed from the seed node",
    );
    let mut kinds: Vec<u16> = Vec::new();
    for (id, kind) in events {
        builder = builder.tag(tag(&["e", id]));
        if !kinds.contains(kind) {
            kinds.push(*kind);
        }
    }
    for k in kinds {
        builder = builder.tag(tag(&["k", &k.to_string()]));
    }
    sign(builder, keys, created_at)
}

/// The NIP-42 answer to a relay's challenge: kind 22242 with `relay` and `challenge` tags.
///
/// # Errors
/// [`SignError`].
pub(crate) fn auth_event(
    relay: &str,
    challenge: &str,
    keys: &Keys,
    created_at: u64,
) -> Result<Event, SignError> {
    let builder = EventBuilder::new(Kind::from(KIND_CLIENT_AUTH), "")
        .tag(tag(&["relay", relay]))
        .tag(tag(&["challenge", challenge]));
    sign(builder, keys, created_at)
}

/// Work for the publisher, from the bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Job {
    /// Announce the torrent with this swarm info-hash (hex), unless it was announced already.
    Announce(String),
    /// The torrent was removed: cancel what is pending and publish its deletion.
    Remove(String),
}

/// The bus subscriber: turns `torrent.added` (when seeding), `upload.completed` and
/// `torrent.removed` into [`Job`]s for the publisher, never blocking.
pub(crate) struct NostrSubscriber {
    jobs: SyncSender<Job>,
    wake: Arc<publisher::Control>,
    stats: Arc<publisher::NostrStats>,
}

impl NostrSubscriber {
    /// A subscriber feeding `jobs` and waking the publisher through `wake`.
    pub(crate) fn new(
        jobs: SyncSender<Job>,
        wake: Arc<publisher::Control>,
        stats: Arc<publisher::NostrStats>,
    ) -> Self {
        Self { jobs, wake, stats }
    }
}

/// The info-hash (40 lowercase hex characters) in an event's details.
fn info_hash_of(event: &BusEvent) -> Option<String> {
    let ih = event.details.get("info_hash")?.as_str()?;
    (ih.len() == 40 && ih.bytes().all(|b| b.is_ascii_hexdigit())).then(|| ih.to_ascii_lowercase())
}

impl Subscriber for NostrSubscriber {
    fn notify(&mut self, _now: Instant, event: &BusEvent) -> Option<BusEvent> {
        let job = match event.kind {
            // A torrent added without its data (an upload in progress, `add` of a torrent
            // whose files are elsewhere) is announced when its upload completes; one whose
            // data the node is still reading, once verified (its files' SHA-256, the `x` of
            // each kind 1063, are in the catalog then).
            kind::TORRENT_ADDED
                if event.details.get("seeding") == Some(&serde_json::Value::Bool(true))
                    && event.details.get("verifying") != Some(&serde_json::Value::Bool(true)) =>
            {
                Job::Announce(info_hash_of(event)?)
            }
            kind::UPLOAD_COMPLETED | kind::TORRENT_VERIFIED => Job::Announce(info_hash_of(event)?),
            kind::TORRENT_REMOVED => Job::Remove(info_hash_of(event)?),
            _ => return None,
        };
        match self.jobs.try_send(job) {
            Ok(()) => self.wake.kick(),
            Err(TrySendError::Full(job)) => {
                let dropped = self
                    .stats
                    .jobs_dropped
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::warn!(
                    ?job,
                    dropped = dropped + 1,
                    "Nostr publisher busy: job dropped (an announcement is made good at the next start, a deletion is not)"
                );
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> NostrSettings {
        NostrSettings {
            relays: vec!["ws://127.0.0.1:1".into()],
            public_url: Some("http://node.example:6881".into()),
            topics: vec!["linux".into()],
            retry_period: Duration::from_secs(60),
            timeout: Duration::from_secs(5),
        }
    }

    fn facts() -> TorrentFacts {
        TorrentFacts {
            swarm_hex: "ab".repeat(20),
            v1_hex: Some("ab".repeat(20)),
            name: "my dir".into(),
            files: vec![
                FileFacts {
                    path: "a b.txt".into(),
                    length: 3,
                    sha256: Some([1; 32]),
                },
                FileFacts {
                    path: "sub/c.bin".into(),
                    length: 5,
                    sha256: None,
                },
            ],
            trackers: vec!["http://t.example/announce".into()],
            magnet: "magnet:?xt=urn:btih:abab".into(),
        }
    }

    fn tag_values<'a>(e: &'a Event, name: &str) -> Vec<Vec<&'a str>> {
        e.tags
            .iter()
            .filter(|t| t.kind() == name)
            .map(|t| t.as_slice()[1..].iter().map(String::as_str).collect())
            .collect()
    }

    #[test]
    fn nip94_and_nip35_tags() {
        let keys = Keys::generate();
        let a = announcement(&facts(), &settings(), &keys, 1_700_000_000).unwrap();
        assert_eq!(
            a.events.len(),
            2,
            "one 1063 (one file lacks its SHA-256), one 2003"
        );
        assert_eq!(a.skipped.len(), 1);
        let f = &a.events[0];
        f.verify().unwrap();
        assert_eq!(f.kind.as_u16(), KIND_FILE_METADATA);
        assert_eq!(f.created_at.as_secs(), 1_700_000_000);
        assert_eq!(
            tag_values(f, "url"),
            [[format!(
                "http://node.example:6881/webseed/{}/my%20dir/a%20b.txt",
                "ab".repeat(20)
            )
            .as_str()]]
        );
        assert_eq!(tag_values(f, "x"), [[hex(&[1; 32]).as_str()]]);
        assert_eq!(tag_values(f, "size"), [["3"]]);
        assert_eq!(tag_values(f, "m"), [["text/plain"]]);
        assert_eq!(tag_values(f, "i"), [["ab".repeat(20).as_str()]]);
        let t = &a.events[1];
        t.verify().unwrap();
        assert_eq!(t.kind.as_u16(), KIND_TORRENT);
        assert_eq!(
            tag_values(t, "file"),
            [["my dir/a b.txt", "3"], ["my dir/sub/c.bin", "5"]]
        );
        assert_eq!(tag_values(t, "tracker"), [["http://t.example/announce"]]);
        assert_eq!(tag_values(t, "t"), [["linux"]]);
        let d = deletion(
            &[
                (f.id.to_hex(), KIND_FILE_METADATA),
                (t.id.to_hex(), KIND_TORRENT),
            ],
            &keys,
            1_700_000_001,
        )
        .unwrap();
        d.verify().unwrap();
        assert_eq!(tag_values(&d, "e").len(), 2);
        assert_eq!(tag_values(&d, "k"), [["1063"], ["2003"]]);
        let auth = auth_event("ws://r.example", "chal", &keys, 1).unwrap();
        assert_eq!(tag_values(&auth, "challenge"), [["chal"]]);
        assert_eq!(auth.kind.as_u16(), KIND_CLIENT_AUTH);
    }

    #[test]
    fn file_events_are_bounded() {
        let mut f = facts();
        f.files = (0..MAX_FILE_EVENTS_PER_TORRENT + 3)
            .map(|i| FileFacts {
                path: format!("f{i}"),
                length: 1,
                sha256: Some([2; 32]),
            })
            .collect();
        let a = announcement(&f, &settings(), &Keys::generate(), 1).unwrap();
        assert_eq!(a.events.len(), MAX_FILE_EVENTS_PER_TORRENT + 1);
        assert_eq!(a.skipped.len(), 3);
    }

    #[test]
    fn relay_urls_are_checked() {
        assert!(check_relay_url("ws://127.0.0.1:7777").is_ok());
        assert!(check_relay_url("wss://relay.example/path").is_ok());
        assert!(check_relay_url("http://relay.example").is_err());
        assert!(check_relay_url("ws:///x").is_err());
        assert!(check_relay_url("ws://a b").is_err());
    }
}
