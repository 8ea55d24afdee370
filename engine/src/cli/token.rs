//! `seednode token create|list|revoke`: API tokens, straight on the data directory's catalog
//! (the node may be running: the catalog takes a second writer, and the running node picks the
//! change up within `TOKEN_RELOAD_INTERVAL`, or at once on SIGHUP).
//!
//! A token's secret is 32 bytes from `ring::rand::SystemRandom`; only its SHA-256 is stored, and
//! the token string is printed once, on stdout, alone on its line (everything else goes to
//! stderr), so `TOKEN=$(seednode token create --scope read)` works.

use std::io::Write as _;

use ring::rand::{SecureRandom as _, SystemRandom};
use seednode_storage::catalog::{Scopes, TOKEN_SECRET_LEN, TokenInfo};
use seednode_wire::display::escape_name;

use super::{CliError, ClientArgs, ClientCommand, TokenArgs, TokenCommand, TokenCreateArgs};
use crate::daemon::{data_dir, open_catalog, unix_now};

/// Runs `seednode token …`.
///
/// # Errors
/// The failure, worded for the operator.
pub(crate) fn token(args: &TokenArgs) -> Result<(), CliError> {
    let dir = data_dir(args.data_dir.as_deref())?;
    let mut catalog = open_catalog(&dir)?;
    let now = unix_now();
    match &args.command {
        TokenCommand::Create(create) => {
            let (scopes, expires_at) = create_params(create, now)?;
            let mut secret = [0u8; TOKEN_SECRET_LEN];
            SystemRandom::new()
                .fill(&mut secret)
                .map_err(|_| "the operating system's random generator failed".to_owned())?;
            let label = create.label.as_deref().unwrap_or("");
            let new = catalog
                .create_token(scopes, expires_at, label, &secret, now)
                .map_err(|e| e.to_string())?;
            set_quota(&mut catalog, &new.id, create.quota)?;
            println!("{}", new.token);
            let _ = std::io::stdout().flush();
            eprintln!(
                "token {} created with scope {scopes}{}; it is shown once, above: keep it now",
                new.id,
                expires_at.map_or(String::new(), |at| format!(
                    ", expiring at {at} (Unix time)"
                ))
            );
            Ok(())
        }
        TokenCommand::List { json } => {
            let tokens = catalog.list_tokens().map_err(|e| e.to_string())?;
            if *json {
                let list: Vec<_> = tokens.iter().map(|t| token_json(t, now)).collect();
                println!("{}", serde_json::Value::Array(list));
            } else {
                print_table(&tokens, now);
            }
            Ok(())
        }
        TokenCommand::Revoke { id } => {
            catalog
                .revoke_token(id, now)
                .map_err(|e| format!("{e} (see `seednode token list`)"))?;
            eprintln!("token {} revoked", escape_name(id));
            Ok(())
        }
    }
}

/// Runs `seednode client …`.
///
/// # Errors
/// The failure, worded for the operator.
pub(crate) fn client(args: &ClientArgs) -> Result<(), CliError> {
    let dir = data_dir(args.data_dir.as_deref())?;
    let mut catalog = open_catalog(&dir)?;
    let now = unix_now();
    match &args.command {
        ClientCommand::Create {
            scope,
            label,
            quota,
        } => {
            let scopes = Scopes::parse(scope).ok_or_else(|| {
                format!(
                    "--scope {}: expected a comma-separated list of upload, read, metrics, admin",
                    escape_name(scope)
                )
            })?;
            let mut secret = [0u8; TOKEN_SECRET_LEN];
            SystemRandom::new()
                .fill(&mut secret)
                .map_err(|_| "the operating system's random generator failed".to_owned())?;
            let new = catalog
                .create_client(scopes, label.as_deref().unwrap_or(""), &secret, now)
                .map_err(|e| e.to_string())?;
            set_quota(&mut catalog, &new.id, *quota)?;
            let client_secret = new.token.rsplit('_').next().unwrap_or_default();
            println!("client_id={}", new.id);
            println!("client_secret={client_secret}");
            let _ = std::io::stdout().flush();
            eprintln!(
                "client {} created with scope {scopes}; the secret is shown once, above. Get a \
                 token with: curl -u ID:SECRET -d grant_type=client_credentials \
                 http://NODE/oauth/token",
                new.id
            );
            Ok(())
        }
        ClientCommand::List { json } => {
            let clients = catalog.list_clients().map_err(|e| e.to_string())?;
            if *json {
                let list: Vec<_> = clients.iter().map(|t| token_json(t, now)).collect();
                println!("{}", serde_json::Value::Array(list));
            } else if clients.is_empty() {
                eprintln!("no clients (create one with `seednode client create --scope upload`)");
            } else {
                print_table(&clients, now);
            }
            Ok(())
        }
        ClientCommand::Revoke { id } => {
            catalog
                .revoke_token(id, now)
                .map_err(|e| format!("{e} (see `seednode client list`)"))?;
            eprintln!("client {} revoked", escape_name(id));
            Ok(())
        }
    }
}

/// Records `quota` for token or client `id` when any cap is given.
fn set_quota(
    catalog: &mut seednode_storage::Catalog,
    id: &str,
    quota: super::QuotaArgs,
) -> Result<(), CliError> {
    if quota.quota_torrents.is_none() && quota.quota_bytes.is_none() {
        return Ok(());
    }
    catalog
        .set_quota(id, quota.quota_torrents, quota.quota_bytes)
        .map_err(|e| e.to_string())
}

/// The scopes and expiry (seconds since the Unix epoch) of `token create`.
fn create_params(args: &TokenCreateArgs, now: i64) -> Result<(Scopes, Option<i64>), CliError> {
    let scopes = Scopes::parse(&args.scope).ok_or_else(|| {
        format!(
            "--scope {}: expected a comma-separated list of admin, upload, read, metrics",
            escape_name(&args.scope)
        )
    })?;
    let expires_at = match args.expires_in {
        None => None,
        Some(0) => return Err("--expires-in must be at least 1 second".into()),
        Some(secs) => Some(
            i64::try_from(secs)
                .ok()
                .and_then(|s| now.checked_add(s))
                .ok_or_else(|| format!("--expires-in {secs}: too far in the future"))?,
        ),
    };
    Ok((scopes, expires_at))
}

/// `active`, `revoked` or `expired` at `now`.
fn status(t: &TokenInfo, now: i64) -> &'static str {
    if t.revoked_at.is_some() {
        "revoked"
    } else if t.expires_at.is_some_and(|at| now >= at) {
        "expired"
    } else {
        "active"
    }
}

fn token_json(t: &TokenInfo, now: i64) -> serde_json::Value {
    serde_json::json!({
        "id": t.id,
        "scopes": t.scopes.to_string().split(',').collect::<Vec<_>>(),
        "status": status(t, now),
        "created_at": t.created_at,
        "expires_at": t.expires_at,
        "revoked_at": t.revoked_at,
        "label": t.label,
    })
}

fn print_table(tokens: &[TokenInfo], now: i64) {
    if tokens.is_empty() {
        eprintln!("no tokens (create one with `seednode token create --scope admin`)");
        return;
    }
    println!(
        "{:<12}  {:<8}  {:<26}  {:>10}  {:>10}  LABEL",
        "ID", "STATUS", "SCOPES", "CREATED", "EXPIRES"
    );
    for t in tokens {
        println!(
            "{:<12}  {:<8}  {:<26}  {:>10}  {:>10}  {}",
            t.id,
            status(t, now),
            t.scopes.to_string(),
            t.created_at,
            t.expires_at
                .map_or_else(|| "never".to_owned(), |at| at.to_string()),
            escape_name(&t.label)
        );
    }
}
