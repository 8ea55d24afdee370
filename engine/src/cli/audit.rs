//! `seednode audit`: the audit log of the data directory's catalog (works while the node runs:
//! SQLite readers never wait for its writer).

use seednode_wire::display::escape_name;

use super::{AuditArgs, CliError};
use crate::daemon::{data_dir, open_catalog, unix_now};

/// Runs `seednode audit`.
///
/// # Errors
/// The failure, worded for the operator.
pub(crate) fn audit(args: &AuditArgs) -> Result<(), CliError> {
    let since = match &args.since {
        None => 0,
        Some(text) => parse_since(text, unix_now())?,
    };
    let dir = data_dir(args.data_dir.as_deref())?;
    let catalog = open_catalog(&dir)?;
    let rows = catalog
        .audit(since, args.kind.as_deref(), args.limit)
        .map_err(|e| e.to_string())?;
    if args.json {
        let list: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "id": r.id,
                    "at": r.at,
                    "kind": r.kind,
                    "actor": r.actor,
                    "source": r.source,
                    "details": serde_json::from_str::<serde_json::Value>(&r.details)
                        .unwrap_or(serde_json::Value::Null),
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(list));
        return Ok(());
    }
    for r in &rows {
        println!(
            "{}\t{}\t{}\t{}\t{}",
            httpdate::fmt_http_date(
                std::time::UNIX_EPOCH
                    + std::time::Duration::from_secs(u64::try_from(r.at).unwrap_or(0))
            ),
            r.kind,
            escape_name(r.actor.as_deref().unwrap_or("-")),
            r.source.as_deref().unwrap_or("-"),
            escape_name(&r.details),
        );
    }
    Ok(())
}

/// `--since`: Unix seconds, or a time ago (`90s`, `15m`, `2h`, `7d`).
fn parse_since(text: &str, now: i64) -> Result<i64, CliError> {
    let bad = || format!("--since {text:?}: Unix seconds, or a time ago such as 15m, 2h, 7d");
    if let Ok(at) = text.parse::<i64>() {
        return Ok(at);
    }
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let n: i64 = number.parse().map_err(|_| bad())?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    Ok(now.saturating_sub(n.saturating_mul(secs)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_unix_seconds_or_a_time_ago() {
        assert_eq!(parse_since("1700000000", 0).unwrap(), 1_700_000_000);
        assert_eq!(parse_since("15m", 10_000).unwrap(), 10_000 - 900);
        assert_eq!(parse_since("2d", 1_000_000).unwrap(), 1_000_000 - 172_800);
        assert!(parse_since("soon", 0).is_err());
        assert!(parse_since("5w", 0).is_err());
    }
}
