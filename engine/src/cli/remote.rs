//! The companion commands: `seednode add|list|remove|pause|resume` talk to a running node over
//! its HTTP API (docs/api.md) with a bearer token (RFC 6750 §2.1).
//!
//! The node is `--node HOST:PORT` (or `SEEDNODE_NODE`), else the config file's `http` address,
//! else its `listen` address (an unspecified IP becomes loopback); the token is `--token T` (or
//! `SEEDNODE_TOKEN`), else the config file's `api_token`. Requests are blocking (ureq, plain
//! HTTP unless the node sits behind a TLS proxy: `--node https://…`), bounded in time and in
//! the size of what they read back.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use seednode_wire::display::{escape_name, escape_path};
use seednode_wire::metainfo::Metainfo;
use serde_json::Value;
use ureq::Agent;

use super::parse::Listen;
use super::torrent_file::{MAX_TORRENT_FILE_LEN, create_metainfo};
use super::{AddArgs, CliError, DEFAULT_SEED_PORT, ListArgs, NodeArgs, TorrentRefArgs};
use crate::daemon::config::Config;

/// How long one API request may take in all (connect, send, answer): a catalog commit on a
/// slow SD card takes well under a second; more means the node is stuck.
pub(crate) const API_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Largest API answer read, bytes: a list of 10,000 torrents is about 3 MiB of JSON.
pub(crate) const MAX_API_RESPONSE_LEN: u64 = 64 * 1024 * 1024;

/// Where the node is and what to present to it.
pub(crate) struct Node {
    /// `http://HOST:PORT` (no trailing slash).
    base: String,
    /// The bearer token, if any.
    token: Option<String>,
    agent: Agent,
}

impl Node {
    /// Resolves the node's address and token from the arguments, the environment (clap reads
    /// `SEEDNODE_NODE` / `SEEDNODE_TOKEN`) and the config file.
    pub(crate) fn from_args(args: &NodeArgs) -> Result<Self, CliError> {
        let config = match &args.config {
            Some(path) => Some(Config::load(path)?),
            None => None,
        };
        let base = match &args.node {
            Some(n) if n.starts_with("http://") || n.starts_with("https://") => {
                n.trim_end_matches('/').to_owned()
            }
            Some(n) => format!("http://{n}"),
            None => {
                let text = config.as_ref().map_or_else(
                    || format!("127.0.0.1:{DEFAULT_SEED_PORT}"),
                    |c| c.http.clone().unwrap_or_else(|| c.listen.clone()),
                );
                let listen: Listen = text
                    .parse()
                    .map_err(|e| format!("node address {text:?}: {e}"))?;
                let addr = Listen::resolve(Some(listen), None, DEFAULT_SEED_PORT)?;
                format!("http://{}", reachable(addr))
            }
        };
        let token = args
            .token
            .clone()
            .or_else(|| config.and_then(|c| c.api_token))
            .filter(|t| !t.is_empty());
        let agent: Agent = Agent::config_builder()
            .http_status_as_error(false)
            .proxy(None)
            .max_redirects(0)
            .timeout_global(Some(API_REQUEST_TIMEOUT))
            .user_agent(concat!("seednode/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Ok(Self { base, token, agent })
    }

    /// Sends `method path` (with `body` as `application/x-bittorrent` when given) and returns
    /// the status and the JSON answer.
    fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        content_type: &str,
    ) -> Result<(u16, Value), CliError> {
        let url = format!("{}{path}", self.base);
        let mut request = ureq::http::Request::builder()
            .method(method)
            .uri(&url)
            .header("Accept", "application/json");
        if let Some(token) = &self.token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        let result = match body {
            Some(b) => self.agent.run(
                request
                    .header("Content-Type", content_type)
                    .body(b.to_vec())
                    .map_err(|e| format!("{url}: {e}"))?,
            ),
            // A POST or DELETE without a body still says so (`Content-Length: 0`, which the
            // node requires of every POST: RFC 9112 §6.3).
            None if method != "GET" => self.agent.run(
                request
                    .header("Content-Length", "0")
                    .body(Vec::new())
                    .map_err(|e| format!("{url}: {e}"))?,
            ),
            None => self
                .agent
                .run(request.body(()).map_err(|e| format!("{url}: {e}"))?),
        };
        let mut response = result.map_err(|e| {
            format!(
                "no answer from the node at {}: {e} (is `seednode run` running there? \
                 --node HOST:PORT names it)",
                self.base
            )
        })?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .with_config()
            .limit(MAX_API_RESPONSE_LEN)
            .read_to_string()
            .map_err(|e| format!("{url}: reading the answer: {e}"))?;
        let value = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok((status, value))
    }

    /// [`Node::call`], with any status other than 2xx turned into the node's message.
    pub(crate) fn call_ok(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<Value, CliError> {
        let (status, value) = self.call(method, path, body, "application/x-bittorrent")?;
        Self::judge(status, value)
    }

    /// Sends `method path` with a JSON `body`, like [`Node::call_ok`].
    pub(crate) fn call_json_ok(
        &self,
        method: &str,
        path: &str,
        body: &str,
    ) -> Result<Value, CliError> {
        let (status, value) = self.call(method, path, Some(body.as_bytes()), "application/json")?;
        Self::judge(status, value)
    }

    /// A 2xx answer's JSON, or the node's refusal worded for the operator. A 202 with an
    /// `approval_id` is a write waiting for a device's signature (docs/approvals.md): not done.
    fn judge(status: u16, value: Value) -> Result<Value, CliError> {
        if status == 202
            && let Some(id) = value["approval_id"].as_str()
        {
            return Err(format!(
                "the node waits for a device's approval of this {}: approval {} (expires at                  {}); approve it with `seednode approve {} --key FILE --device NAME`",
                escape_name(value["action"].as_str().unwrap_or("write")),
                escape_name(id),
                value["expires_at"],
                escape_name(id),
            ));
        }
        if (200..300).contains(&status) {
            return Ok(value);
        }
        let code = value["error"].as_str().unwrap_or("");
        let message = value["message"].as_str().unwrap_or("");
        let hint = match status {
            401 => " (pass a token: --token T, SEEDNODE_TOKEN, or api_token in the config)",
            403 => " (the token lacks the scope: `seednode token create --scope admin`)",
            _ => "",
        };
        Err(format!(
            "the node answered {status} {}{}{}{hint}",
            escape_name(code),
            if message.is_empty() { "" } else { ": " },
            escape_name(message)
        ))
    }
}

/// The address to connect to for a listening address: an unspecified IP means this machine.
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), addr.port())
        }
        _ => addr,
    }
}

/// `seednode add PATH|FILE.torrent|MAGNET`.
///
/// # Errors
/// The failure, worded for the operator.
pub(crate) fn add(args: &AddArgs) -> Result<(), CliError> {
    let node = Node::from_args(&args.node)?;
    let what = args.what.as_str();
    if what.starts_with("magnet:") {
        return Err(
            "a magnet link names a torrent the node would have to download first; seednode \
             only seeds: add the torrent's .torrent file (with its data under the node's \
             content directory), or the data itself"
                .into(),
        );
    }
    let path = Path::new(what);
    let is_torrent = path.extension().is_some_and(|e| e == "torrent") && path.is_file();
    let (bytes, rel) = if is_torrent {
        let bytes = read_bounded(path)?;
        let meta =
            Metainfo::from_bytes(&bytes).map_err(|e| format!("{}: {e}", escape_path(path)))?;
        let rel = match &args.path {
            Some(rel) => rel.clone(),
            None => meta.info.name.clone(),
        };
        (bytes, rel)
    } else {
        let content = content_dir(args)?;
        let rel = relative_to(path, &content)?;
        let survey = seednode_storage::survey(path, seednode_storage::SymlinkPolicy::Refuse)
            .map_err(|e| e.to_string())?;
        let opts = seednode_storage::CreateOptions {
            threads: seednode_storage::default_threads(),
            ..seednode_storage::CreateOptions::default()
        };
        let meta = create_metainfo(path, &opts, &survey)?;
        (meta.to_bytes(), rel)
    };
    let mut query = String::new();
    seednode_wire::percent::encode(rel.as_bytes(), &mut query);
    let value = node.call_ok(
        "POST",
        &format!("/api/v1/torrents?path={query}"),
        Some(&bytes),
    )?;
    let ih = value["info_hash"].as_str().unwrap_or("");
    if args.json {
        println!("{value}");
    } else if value["seeding"].as_bool() == Some(true) {
        println!("added {ih}: seeding");
    } else {
        println!("added {ih}: not seeding yet");
    }
    Ok(())
}

/// The node's content directory for `add PATH`: `--content-dir`, else `<data-dir>/data` of
/// `--data-dir`, the config's `data_dir`, or the default data directory.
fn content_dir(args: &AddArgs) -> Result<PathBuf, CliError> {
    if let Some(dir) = &args.content_dir {
        return Ok(dir.clone());
    }
    let from_config = match &args.node.config {
        Some(path) => Config::load(path)?.data_dir,
        None => None,
    };
    let dir = crate::daemon::data_dir(args.data_dir.as_deref().or(from_config.as_deref()))?;
    Ok(dir.join("data"))
}

/// `path` relative to `content`, as `a/b` (both made absolute and free of `.`/`..` first).
fn relative_to(path: &Path, content: &Path) -> Result<String, CliError> {
    let abs = std::fs::canonicalize(path).map_err(|e| format!("{}: {e}", escape_path(path)))?;
    let root = std::fs::canonicalize(content).map_err(|e| {
        format!(
            "the node's content directory {}: {e} (add data by putting it there first)",
            escape_path(content)
        )
    })?;
    let rel = abs.strip_prefix(&root).map_err(|_| {
        format!(
            "{} is not inside the node's content directory {}: the node seeds only what it \
             stores; copy the data there first (or pass --content-dir)",
            escape_path(path),
            escape_path(&root)
        )
    })?;
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.is_empty() {
        return Err(
            "the content directory itself cannot be a torrent's data: name a file or \
                    a directory inside it"
                .into(),
        );
    }
    Ok(parts.join("/"))
}

/// Reads a .torrent of at most [`MAX_TORRENT_FILE_LEN`] bytes.
fn read_bounded(path: &Path) -> Result<Vec<u8>, CliError> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", escape_path(path)))?;
    let mut bytes = Vec::new();
    file.take(MAX_TORRENT_FILE_LEN + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{}: {e}", escape_path(path)))?;
    if bytes.len() as u64 > MAX_TORRENT_FILE_LEN {
        return Err(format!(
            "{}: larger than {MAX_TORRENT_FILE_LEN} bytes, not a .torrent the node takes",
            escape_path(path)
        ));
    }
    Ok(bytes)
}

/// `seednode list [--json]`.
///
/// # Errors
/// The failure, worded for the operator.
pub(crate) fn list(args: &ListArgs) -> Result<(), CliError> {
    let node = Node::from_args(&args.node)?;
    let value = node.call_ok("GET", "/api/v1/torrents", None)?;
    if args.json {
        println!("{value}");
        return Ok(());
    }
    let empty = Vec::new();
    let torrents = value["torrents"].as_array().unwrap_or(&empty);
    println!(
        "{:<40}  {:>10}  {:<12}  {:>5}  {:>10}  NAME",
        "INFO-HASH", "SIZE", "STATE", "PEERS", "UPLOADED"
    );
    for t in torrents {
        println!(
            "{:<40}  {:>10}  {:<12}  {:>5}  {:>10}  {}",
            t["info_hash"].as_str().unwrap_or(""),
            crate::front_door::human_bytes(t["size_bytes"].as_u64().unwrap_or(0)),
            t["state"].as_str().unwrap_or(""),
            t["peers"].as_u64().unwrap_or(0),
            crate::front_door::human_bytes(t["uploaded_bytes"].as_u64().unwrap_or(0)),
            escape_name(t["name"].as_str().unwrap_or("")),
        );
    }
    Ok(())
}

/// `seednode remove INFOHASH [--delete-data]`.
///
/// # Errors
/// The failure, worded for the operator.
pub(crate) fn remove(args: &TorrentRefArgs, delete_data: bool) -> Result<(), CliError> {
    let node = Node::from_args(&args.node)?;
    let ih = checked_hash(&args.info_hash)?;
    let query = if delete_data { "?delete_data=true" } else { "" };
    let value = node.call_ok("DELETE", &format!("/api/v1/torrents/{ih}{query}"), None)?;
    if args.json {
        println!("{value}");
        return Ok(());
    }
    println!("removed {ih}");
    match &value["data_deleted"] {
        Value::Null => {}
        Value::Object(d) if d.contains_key("error") => {
            return Err(format!(
                "removed {ih} from the node, but its data was not deleted: {}",
                escape_name(d["error"].as_str().unwrap_or(""))
            ));
        }
        d => println!(
            "data deleted: {} files, {} already gone, {} directories",
            d["files_removed"], d["files_missing"], d["dirs_removed"]
        ),
    }
    Ok(())
}

/// `seednode pause|resume INFOHASH` (`action` is `pause` or `resume`).
///
/// # Errors
/// The failure, worded for the operator.
pub(crate) fn set_state(args: &TorrentRefArgs, action: &str) -> Result<(), CliError> {
    let node = Node::from_args(&args.node)?;
    let ih = checked_hash(&args.info_hash)?;
    let value = node.call_ok("POST", &format!("/api/v1/torrents/{ih}/{action}"), None)?;
    if args.json {
        println!("{value}");
    } else {
        println!("{ih}: {}", value["state"].as_str().unwrap_or("?"));
    }
    Ok(())
}

/// A 40-hex-digit info-hash, lower-cased.
fn checked_hash(text: &str) -> Result<String, CliError> {
    seednode_wire::InfoHash::from_text(text)
        .map(|h| h.to_hex())
        .map_err(|_| format!("{text:?} is not an info-hash (40 hex digits)"))
}
