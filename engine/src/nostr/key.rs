//! The node's Nostr key: a secp256k1 secret (BIP-340) in `<data dir>/nostr.key`, as 64 hex
//! characters and a newline, file mode 0600. `seednode nostr key generate|show|import` manage
//! it; the node reads it at start when `[nostr] relays` is set.
//!
//! A key file that group or others may read is refused (whoever reads it can sign as the
//! node), with an error that says how to fix it; the secret is never printed or logged.

use std::fs;
use std::io::{Read as _, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use nostr::prelude::Keys;

/// The key file's name in the data directory.
pub(crate) const KEY_FILE_NAME: &str = "nostr.key";

/// Largest key file read, bytes: 64 hex characters or a 63-character `nsec1…` and a newline;
/// anything much longer is not a key file.
pub(crate) const MAX_KEY_FILE_LEN: u64 = 256;

/// Why the key could not be read or written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum KeyError {
    /// There is no key file.
    #[error("no Nostr key at {0}: create one with `seednode nostr key generate` (or `import`)")]
    Missing(String),
    /// The key file is readable or writable by group or others.
    #[error(
        "the Nostr key {path} has mode {mode:04o}: group and others must not have access; run `chmod 600 {path}`"
    )]
    Exposed {
        /// The file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// The key file's content is not a key.
    #[error("the Nostr key {0} is not a 64-hex-character or nsec secret key")]
    Malformed(String),
    /// A key file exists where a new one was to be written.
    #[error(
        "a Nostr key exists already at {0}; pass --force to replace it (its events then belong to the old key)"
    )]
    Exists(String),
    /// I/O.
    #[error("Nostr key {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
}

/// The key file of data directory `dir`.
pub(crate) fn key_path(dir: &Path) -> PathBuf {
    dir.join(KEY_FILE_NAME)
}

fn shown(path: &Path) -> String {
    seednode_wire::display::escape_path(path).into_owned()
}

/// Parses a secret key as given by an operator: `nsec1…` (NIP-19) or 64 hex characters.
///
/// # Errors
/// Anything else.
pub(crate) fn parse_secret(text: &str) -> Result<Keys, ()> {
    let text = text.trim();
    let looks_right = text.starts_with("nsec1")
        || (text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()));
    if !looks_right {
        return Err(());
    }
    Keys::parse(text).map_err(|_| ())
}

/// Reads the key of data directory `dir`, refusing a file group or others may access.
///
/// # Errors
/// [`KeyError`].
pub(crate) fn load(dir: &Path) -> Result<Keys, KeyError> {
    let path = key_path(dir);
    let io = |source| KeyError::Io {
        path: shown(&path),
        source,
    };
    let file = match fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(KeyError::Missing(shown(&path)));
        }
        Err(e) => return Err(io(e)),
    };
    let mode = file.metadata().map_err(io)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::Exposed {
            path: shown(&path),
            mode,
        });
    }
    let mut text = String::new();
    file.take(MAX_KEY_FILE_LEN + 1)
        .read_to_string(&mut text)
        .map_err(|_| KeyError::Malformed(shown(&path)))?;
    if text.len() as u64 > MAX_KEY_FILE_LEN {
        return Err(KeyError::Malformed(shown(&path)));
    }
    parse_secret(&text).map_err(|()| KeyError::Malformed(shown(&path)))
}

/// Writes `keys` as the key of data directory `dir` (mode 0600 from creation, written to a
/// temporary file, synced, then renamed); refuses to replace one unless `force`.
///
/// # Errors
/// [`KeyError::Exists`]; [`KeyError::Io`].
pub(crate) fn store(dir: &Path, keys: &Keys, force: bool) -> Result<PathBuf, KeyError> {
    let path = key_path(dir);
    if !force && path.exists() {
        return Err(KeyError::Exists(shown(&path)));
    }
    let tmp = dir.join(format!("{KEY_FILE_NAME}.tmp"));
    let io = |source| KeyError::Io {
        path: shown(&path),
        source,
    };
    let _ = fs::remove_file(&tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io)?;
    let written = f
        .write_all(format!("{}\n", keys.secret_key().to_secret_hex()).as_bytes())
        .and_then(|()| f.sync_all());
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(io(e));
    }
    fs::rename(&tmp, &path).map_err(io)?;
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_key_loads_and_an_exposed_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(load(dir.path()), Err(KeyError::Missing(_))));
        let keys = Keys::generate();
        let path = store(dir.path(), &keys, false).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(load(dir.path()).unwrap().public_key(), keys.public_key());
        assert!(matches!(
            store(dir.path(), &Keys::generate(), false),
            Err(KeyError::Exists(_))
        ));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = load(dir.path()).unwrap_err();
        assert!(err.to_string().contains("chmod 600"), "{err}");
        fs::write(&path, "not a key\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(load(dir.path()), Err(KeyError::Malformed(_))));
    }

    #[test]
    fn parses_nsec_and_hex_and_nothing_else() {
        // NIP-19's example key pair.
        let hex = "67dea2ed018072d675f5415ecfaed7d2597555e202d85b3d65ea4e58d2d92ffa";
        let nsec = "nsec1vl029mgpspedva04g90vltkh6fvh240zqtv9k0t9af8935ke9laqsnlfe5";
        let a = parse_secret(hex).unwrap();
        let b = parse_secret(nsec).unwrap();
        assert_eq!(a.public_key(), b.public_key());
        assert_eq!(
            a.public_key().to_hex(),
            "7e7e9c42a91bfef19fa929e5fda1b72e0ebc1a4c1141673e2794234d86addf4e"
        );
        assert!(
            parse_secret("npub10elfcs4fr0l0r8af98jlmgdh9c8tcxjvz9qkw038js35mp4dma8qzvjptg")
                .is_err()
        );
        assert!(parse_secret("zz").is_err());
    }
}
