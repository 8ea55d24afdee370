//! `seednode push FILE`: streams a file to a running node with `UPLOAD_FILE` (docs/upload.md)
//! and, when the connection drops, continues it with `UPLOAD_RESUME` from the offset the node
//! says it has. The node hashes the bytes as they arrive; this side only reads the file (twice
//! with `--sha256`: once to hash it, once to send it).

use std::fs::File;
use std::io::{BufRead as _, BufReader, Read as _, Seek as _, SeekFrom, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use seednode_wire::display::{escape_name, escape_path};
use seednode_wire::upload::{Reply, UploadId};
use sha2::Digest as _;

use super::{CliError, PushArgs};
use crate::daemon::config::Config;

/// Attempts at one upload (the first and the resumes) before giving up.
pub(crate) const MAX_PUSH_ATTEMPTS: u32 = 5;

/// Bytes read from the file per write to the socket.
const PUSH_CHUNK_LEN: usize = 256 * 1024;

/// How long to wait for a reply line (the final `OK` comes after the node's fsync and commit).
const REPLY_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs `seednode push`.
///
/// # Errors
/// The failure, worded for the operator.
pub(crate) fn push(args: &PushArgs) -> Result<(), CliError> {
    let config = match &args.node.config {
        Some(path) => Some(Config::load(path)?),
        None => None,
    };
    let node = match &args.node.node {
        Some(n) => n
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned(),
        None => config
            .as_ref()
            .and_then(|c| c.upload.clone())
            .unwrap_or_else(|| format!("127.0.0.1:{}", super::DEFAULT_SEED_PORT)),
    };
    let token = args
        .node
        .token
        .clone()
        .or_else(|| config.and_then(|c| c.api_token))
        .ok_or("a token is needed: --token T, SEEDNODE_TOKEN, or api_token in the config")?;
    let path = &args.file;
    let name = match &args.name {
        Some(n) => n.clone(),
        None => path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| format!("{}: not a file name", escape_path(path)))?,
    };
    let length = std::fs::metadata(path)
        .map_err(|e| format!("{}: {e}", escape_path(path)))?
        .len();
    let sha256 = if args.sha256 {
        Some(file_sha256(path)?)
    } else {
        None
    };
    let bar = crate::progress::Progress::new("pushing", Some(length));
    let mut upload: Option<UploadId> = None;
    let mut last_error = String::new();
    for attempt in 1..=MAX_PUSH_ATTEMPTS {
        match try_push(
            &node,
            &token,
            path,
            &name,
            length,
            sha256.as_deref(),
            &mut upload,
            &bar,
        ) {
            Ok(Reply::Ok { info_hash, magnet }) => {
                bar.finish();
                println!("info-hash: {}", info_hash.to_hex());
                println!("magnet: {magnet}");
                return Ok(());
            }
            Ok(Reply::Err { code, reason }) => {
                bar.finish();
                return Err(format!(
                    "the node refused: {} {}",
                    code.as_str(),
                    escape_name(&reason)
                ));
            }
            Ok(Reply::Upload { .. }) => last_error = "unexpected reply".into(),
            Err(e) => last_error = e,
        }
        if upload.is_none() {
            break; // nothing to resume
        }
        eprintln!("attempt {attempt}: {last_error}; resuming");
        std::thread::sleep(Duration::from_millis(500 * u64::from(attempt)));
    }
    bar.finish();
    Err(format!("push failed: {last_error}"))
}

/// One connection: `UPLOAD_FILE` (or `UPLOAD_RESUME` when `upload` is known), then the bytes
/// from the offset the node names, then its verdict. Sets `upload` from the node's first line.
#[allow(clippy::too_many_arguments, reason = "one call site, all plain values")]
fn try_push(
    node: &str,
    token: &str,
    path: &Path,
    name: &str,
    length: u64,
    sha256: Option<&str>,
    upload: &mut Option<UploadId>,
    bar: &crate::progress::Progress,
) -> Result<Reply, String> {
    let mut stream = TcpStream::connect(node).map_err(|e| format!("connecting to {node}: {e}"))?;
    stream
        .set_read_timeout(Some(REPLY_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let header = match upload {
        Some(id) => format!("UPLOAD_RESUME {token} {id} 0\n"),
        None => match sha256 {
            Some(h) => format!("UPLOAD_FILE {token} {length} {name} sha256={h}\n"),
            None => format!("UPLOAD_FILE {token} {length} {name}\n"),
        },
    };
    stream
        .write_all(header.as_bytes())
        .map_err(|e| format!("sending the header: {e}"))?;
    let mut reader = BufReader::new(stream.try_clone().map_err(|e| e.to_string())?);
    let first = read_reply(&mut reader)?;
    let (id, offset) = match first {
        Reply::Upload { upload_id, offset } => (upload_id, offset),
        other => return Ok(other),
    };
    *upload = Some(id);
    let mut file = File::open(path).map_err(|e| format!("{}: {e}", escape_path(path)))?;
    file.seek(SeekFrom::Start(offset))
        .map_err(|e| format!("{}: {e}", escape_path(path)))?;
    let mut buf = vec![0u8; PUSH_CHUNK_LEN];
    let mut sent = offset;
    while sent < length {
        let want = usize::try_from(length - sent).map_or(buf.len(), |r| r.min(buf.len()));
        let n = file
            .read(&mut buf[..want])
            .map_err(|e| format!("{}: {e}", escape_path(path)))?;
        if n == 0 {
            return Err(format!("{} shrank while being pushed", escape_path(path)));
        }
        stream
            .write_all(&buf[..n])
            .map_err(|e| format!("sending at byte {sent}: {e}"))?;
        sent += n as u64;
        bar.set(sent);
    }
    read_reply(&mut reader)
}

/// Reads one reply line (at most 1,024 bytes, as the protocol says).
fn read_reply(reader: &mut BufReader<TcpStream>) -> Result<Reply, String> {
    let mut line = Vec::new();
    let n = reader
        .by_ref()
        .take(seednode_wire::limits::MAX_UPLOAD_REPLY_LEN as u64)
        .read_until(b'\n', &mut line)
        .map_err(|e| format!("reading the node's reply: {e}"))?;
    if n == 0 {
        return Err("the node closed the connection".into());
    }
    match Reply::parse(&line) {
        Ok(Some((reply, _))) => Ok(reply),
        _ => Err(format!(
            "the node's reply is not one this client understands: {}",
            escape_name(&String::from_utf8_lossy(&line))
        )),
    }
}

/// The file's SHA-256 in lowercase hex.
fn file_sha256(path: &Path) -> Result<String, CliError> {
    let mut file = File::open(path).map_err(|e| format!("{}: {e}", escape_path(path)))?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; PUSH_CHUNK_LEN];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| format!("{}: {e}", escape_path(path)))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}
