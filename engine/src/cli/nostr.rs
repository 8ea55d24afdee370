//! `seednode nostr key generate|show|import`: the node's Nostr key, in the data directory
//! (`nostr.key`, mode 0600; docs/nostr.md). Works while the node runs (it reads the key at
//! start). The secret is never printed: `show` prints the public key as `npub…` (NIP-19) and
//! hex.

use std::io::{BufRead as _, Write as _};

use nostr::nips::nip19::ToBech32 as _;
use nostr::prelude::Keys;

use super::{CliError, NostrArgs, NostrCommand, NostrKeyCommand};
use crate::daemon::data_dir;
use crate::nostr::key;

/// Runs `seednode nostr …`.
///
/// # Errors
/// The failure, worded for the operator.
pub(crate) fn nostr(args: &NostrArgs) -> Result<(), CliError> {
    let dir = data_dir(args.data_dir.as_deref())?;
    match &args.command {
        NostrCommand::Key { command } => match command {
            NostrKeyCommand::Generate { force } => {
                ensure_dir(&dir)?;
                let keys = Keys::generate();
                let path = key::store(&dir, &keys, *force).map_err(|e| e.to_string())?;
                eprintln!(
                    "Nostr key written to {}",
                    seednode_wire::display::escape_path(&path)
                );
                print_public(&keys)
            }
            NostrKeyCommand::Show => print_public(&key::load(&dir).map_err(|e| e.to_string())?),
            NostrKeyCommand::Import { secret, force } => {
                let text = match secret.as_deref() {
                    Some(s) if s != "-" => s.to_owned(),
                    _ => read_secret_line()?,
                };
                let keys = key::parse_secret(&text).map_err(|()| {
                    "not a secret key: expected nsec1… (NIP-19) or 64 hex characters".to_owned()
                })?;
                ensure_dir(&dir)?;
                let path = key::store(&dir, &keys, *force).map_err(|e| e.to_string())?;
                eprintln!(
                    "Nostr key imported to {}",
                    seednode_wire::display::escape_path(&path)
                );
                print_public(&keys)
            }
        },
    }
}

/// Creates the data directory (mode 0700) when missing.
fn ensure_dir(dir: &std::path::Path) -> Result<(), CliError> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| {
            format!(
                "data directory {}: {e}",
                seednode_wire::display::escape_path(dir)
            )
        })
}

/// One line from stdin, at most [`key::MAX_KEY_FILE_LEN`] bytes.
fn read_secret_line() -> Result<String, CliError> {
    use std::io::Read as _;
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .take(key::MAX_KEY_FILE_LEN)
        .read_line(&mut line)
        .map_err(|e| format!("reading the secret key from stdin: {e}"))?;
    Ok(line)
}

/// Prints `npub: …` and `hex: …` on stdout.
fn print_public(keys: &Keys) -> Result<(), CliError> {
    let pk = keys.public_key();
    let npub = pk.to_bech32().map_err(|e| e.to_string())?;
    println!("npub: {npub}");
    println!("hex: {}", pk.to_hex());
    let _ = std::io::stdout().flush();
    Ok(())
}
