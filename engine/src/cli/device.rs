//! `seednode device add|list|revoke|keygen` (device keys in the data directory's catalog, like
//! `seednode token`) and `seednode approve ID --key FILE` (signs an approval's challenge with an
//! Ed25519 key and posts it to the running node). docs/approvals.md.
//!
//! Key file format: the 32-byte Ed25519 private key (the RFC 8032 §5.1.5 seed) as 64 hex
//! digits or standard base64, on one line; `device keygen FILE` writes one (mode 0600) and
//! prints its public key for `device add`.

use std::io::{Read as _, Write as _};
use std::path::Path;

use ring::rand::{SecureRandom as _, SystemRandom};
use seednode_wire::display::{escape_name, escape_path};

use super::{ApproveArgs, CliError, DeviceArgs, DeviceCommand};
use crate::daemon::{data_dir, open_catalog, unix_now};
use crate::events::approvals::{self as policy, SEED_LEN};

/// Largest key file read, bytes: a seed in hex or base64 with a newline is under 100 bytes.
const MAX_KEY_FILE_LEN: u64 = 1024;

/// Runs `seednode device …`.
///
/// # Errors
/// The failure, worded for the operator.
pub(crate) fn device(args: &DeviceArgs) -> Result<(), CliError> {
    if let DeviceCommand::Keygen { file } = &args.command {
        return keygen(file);
    }
    let dir = data_dir(args.data_dir.as_deref())?;
    let mut catalog = open_catalog(&dir)?;
    match &args.command {
        DeviceCommand::Keygen { .. } => Ok(()),
        DeviceCommand::Add { name, public_key } => {
            let key = policy::decode_fixed::<32>(public_key).ok_or_else(|| {
                "PUBKEY: a 32-byte Ed25519 public key in base64 or 64 hex digits".to_owned()
            })?;
            let id = catalog
                .add_device(name, &key, unix_now())
                .map_err(|e| e.to_string())?;
            eprintln!("device {} added (id {id})", escape_name(name));
            Ok(())
        }
        DeviceCommand::List { json } => {
            let devices = catalog.list_devices().map_err(|e| e.to_string())?;
            if *json {
                let list: Vec<_> = devices.iter().map(crate::reactor::device_json).collect();
                println!("{}", serde_json::Value::Array(list));
            } else if devices.is_empty() {
                eprintln!("no devices (add one with `seednode device add NAME PUBKEY`)");
            } else {
                println!("{:>4}  {:<8}  {:<44}  NAME", "ID", "STATUS", "PUBLIC KEY");
                for d in &devices {
                    println!(
                        "{:>4}  {:<8}  {:<44}  {}",
                        d.id,
                        if d.revoked_at.is_some() {
                            "revoked"
                        } else {
                            "active"
                        },
                        policy::b64(&d.public_key),
                        escape_name(&d.name)
                    );
                }
            }
            Ok(())
        }
        DeviceCommand::Revoke { name } => {
            catalog
                .revoke_device(name, unix_now())
                .map_err(|e| format!("{e} (see `seednode device list`)"))?;
            eprintln!("device {} revoked", escape_name(name));
            Ok(())
        }
    }
}

/// Writes a new Ed25519 private key to `file` (refusing to overwrite one) and prints its
/// public key.
fn keygen(file: &Path) -> Result<(), CliError> {
    let mut seed = [0u8; SEED_LEN];
    SystemRandom::new()
        .fill(&mut seed)
        .map_err(|_| "the operating system's random generator failed".to_owned())?;
    let (_, public) = policy::sign(&seed, b"")?;
    let shown = escape_path(file);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(file).map_err(|e| format!("{shown}: {e}"))?;
    writeln!(f, "{}", policy::hex(&seed))
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("{shown}: {e}"))?;
    println!("{}", policy::b64(&public));
    eprintln!(
        "private key written to {shown}; register the public key above with \
         `seednode device add NAME <key>`"
    );
    Ok(())
}

/// Reads an Ed25519 private key file (64 hex digits or base64 of 32 bytes).
fn read_key(file: &Path) -> Result<[u8; SEED_LEN], CliError> {
    let shown = escape_path(file);
    let mut text = String::new();
    std::fs::File::open(file)
        .and_then(|f| f.take(MAX_KEY_FILE_LEN).read_to_string(&mut text))
        .map_err(|e| format!("{shown}: {e}"))?;
    policy::decode_fixed::<SEED_LEN>(&text).ok_or_else(|| {
        format!("{shown}: not an Ed25519 private key (64 hex digits or base64 of 32 bytes)")
    })
}

/// Runs `seednode approve ID --key FILE [--device NAME]`: fetches the approval, shows what it
/// is, signs its challenge and posts the signature; prints the node's answer to the action.
///
/// # Errors
/// The failure, worded for the operator.
pub(crate) fn approve(args: &ApproveArgs) -> Result<(), CliError> {
    let seed = read_key(&args.key)?;
    if args.id.len() > 64
        || !args
            .id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(format!("{:?} is not an approval id", args.id));
    }
    let node = super::remote::Node::from_args(&args.node)?;
    let path = format!("/api/v1/approvals/{}", args.id);
    let approval = node.call_ok("GET", &path, None)?;
    let challenge = approval["challenge"]
        .as_str()
        .and_then(|c| policy::b64_decode(c, 2048))
        .ok_or("the node's answer has no challenge")?;
    let Some(fields) = policy::parse_challenge(&challenge) else {
        return Err("the node's challenge is not a seednode-approval-v1 challenge".into());
    };
    if fields.id != args.id {
        return Err("the node's challenge names another approval; not signing".into());
    }
    eprintln!(
        "approving {}: {} on {} (asked by {}, expires at {})",
        fields.id,
        escape_name(fields.action),
        escape_name(fields.target),
        escape_name(fields.actor),
        fields.expires_at
    );
    let (signature, _) = policy::sign(&seed, &challenge)?;
    let body = serde_json::json!({
        "device": args.device,
        "signature": policy::b64(&signature),
        "challenge": policy::b64(&challenge),
    });
    let value = node.call_json_ok("POST", &path, &body.to_string())?;
    println!("{value}");
    Ok(())
}
