//! Out-of-band approvals (issue 13): the operator's device keys (Ed25519 public keys, RFC 8032)
//! and the approvals a critical API write waits for.
//!
//! The catalog only stores and reads; the engine makes the challenge, checks the signature and
//! runs the action. An approval leaves `pending` once, through [`Catalog::finish_approval`]'s
//! conditional update, so a replayed grant finds it `granted` and changes nothing.

use rusqlite::{OptionalExtension, params};

use super::{Catalog, CatalogError, check_text};

/// Length of an Ed25519 public key, bytes (RFC 8032 §5.1.5).
pub const DEVICE_KEY_LEN: usize = 32;

/// Longest device name, bytes: a label such as `pixel-7`, shown in `device list`.
pub const MAX_DEVICE_NAME_LEN: usize = 64;

/// Most device keys registered (revoked ones included): a handful of phones and laptops per
/// operator; past it `device add` is refused ([`CatalogError::TooManyDevices`]).
pub const MAX_DEVICES: usize = 64;

/// Most approvals pending at once: each holds a stored request (up to
/// [`MAX_APPROVAL_BODY_LEN`]); past it a critical write is refused (503) instead of queued, so
/// a flood of requests cannot fill the disk. Pending ones past their expiry do not count.
pub const MAX_PENDING_APPROVALS: usize = 256;

/// Decided (granted, refused, expired) approvals kept for `GET /api/v1/approvals/<id>`; older
/// ones are deleted, oldest first, when a new approval is created.
pub const MAX_FINISHED_APPROVALS: usize = 1000;

/// Largest request body an approval stores, bytes: a `.torrent` waiting for approval is held in
/// the catalog until decided, so this is smaller than the API's 10 MiB body limit
/// (`MAX_PENDING_APPROVALS` × this = 256 MiB at most, and far less in practice).
pub const MAX_APPROVAL_BODY_LEN: usize = 1024 * 1024;

/// Longest stored request path with its query, bytes (the HTTP head limit is 8 KiB per value).
pub const MAX_APPROVAL_PATH_LEN: usize = 8 * 1024;

/// Longest challenge, bytes: the canonical challenge is a few hundred bytes (docs/approvals.md).
pub const MAX_CHALLENGE_LEN: usize = 1024;

/// Longest action name or target, bytes (`data.delete`; an info-hash or a token id).
pub const MAX_APPROVAL_FIELD_LEN: usize = 256;

/// A registered device key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// Its catalog id.
    pub id: i64,
    /// Its name (unique).
    pub name: String,
    /// The Ed25519 public key (RFC 8032).
    pub public_key: [u8; DEVICE_KEY_LEN],
    /// When it was added, seconds since the Unix epoch.
    pub added_at: i64,
    /// When it was revoked, if it was.
    pub revoked_at: Option<i64>,
}

/// Where an approval stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApprovalState {
    /// Waiting for a device's signature.
    Pending,
    /// Signed; the action ran.
    Granted,
    /// Refused for good (reserved; refused attempts leave an approval pending).
    Refused,
    /// Its expiry passed before a valid signature came.
    Expired,
}

impl ApprovalState {
    /// The name stored and shown: `pending`, `granted`, `refused`, `expired`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Granted => "granted",
            Self::Refused => "refused",
            Self::Expired => "expired",
        }
    }

    fn from_name(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "granted" => Self::Granted,
            "refused" => Self::Refused,
            "expired" => Self::Expired,
            _ => return None,
        })
    }
}

/// An approval: what waits, bound to its challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    /// Its id (`apr_` and 32 hex digits).
    pub id: String,
    /// The action (`torrent.remove`, `data.delete`, …).
    pub action: String,
    /// What it acts on (an info-hash, a token id, …).
    pub target: String,
    /// Who asked (a token or client id); `None` for no token.
    pub actor: Option<String>,
    /// From where (an IP address, as text).
    pub source: Option<String>,
    /// The canonical challenge bytes a device signs (docs/approvals.md).
    pub challenge: Vec<u8>,
    /// The request to run once granted: method.
    pub method: String,
    /// Its path and query (`/api/v1/torrents/<ih>?delete_data=true`).
    pub path: String,
    /// Its body (bounded by [`MAX_APPROVAL_BODY_LEN`]).
    pub body: Vec<u8>,
    /// When asked, seconds since the Unix epoch.
    pub created_at: i64,
    /// When it stops being grantable, seconds since the Unix epoch.
    pub expires_at: i64,
    /// Where it stands.
    pub state: ApprovalState,
    /// The device that granted it.
    pub device: Option<String>,
    /// When it was decided.
    pub decided_at: Option<i64>,
}

impl Catalog {
    /// Registers device `name` with Ed25519 public key `public_key` at `now`; returns its id.
    ///
    /// # Errors
    /// [`CatalogError::Invalid`] for an empty name or one used already, or a key already
    /// registered; [`CatalogError::TooLong`]; [`CatalogError::TooManyDevices`];
    /// [`CatalogError::DiskFull`]; [`CatalogError::Sqlite`].
    pub fn add_device(
        &mut self,
        name: &str,
        public_key: &[u8; DEVICE_KEY_LEN],
        now: i64,
    ) -> Result<i64, CatalogError> {
        check_text("device name", name, MAX_DEVICE_NAME_LEN)?;
        if name.is_empty() || name.chars().any(char::is_control) {
            return Err(CatalogError::Invalid {
                field: "device name",
                reason: "empty, or with a control character",
            });
        }
        let tx = self.write()?;
        let count: i64 = tx.query_row("SELECT count(*) FROM devices", [], |r| r.get(0))?;
        if usize::try_from(count).unwrap_or(usize::MAX) >= MAX_DEVICES {
            return Err(CatalogError::TooManyDevices { limit: MAX_DEVICES });
        }
        let taken: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM devices WHERE name = ?1 OR public_key = ?2)",
            params![name, &public_key[..]],
            |r| r.get(0),
        )?;
        if taken {
            return Err(CatalogError::Invalid {
                field: "device",
                reason: "a device with this name or key is registered already",
            });
        }
        tx.execute(
            "INSERT INTO devices (name, public_key, added_at) VALUES (?1, ?2, ?3)",
            params![name, &public_key[..], now],
        )?;
        let id = tx.last_insert_rowid();
        tx.commit()?;
        Ok(id)
    }

    /// Every device, revoked ones included, by id.
    ///
    /// # Errors
    /// [`CatalogError::Corrupt`] for a key of the wrong length; [`CatalogError::Sqlite`].
    pub fn list_devices(&self) -> Result<Vec<Device>, CatalogError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, name, public_key, added_at, revoked_at FROM devices ORDER BY id",
        )?;
        let rows = stmt.query_map([], device_row)?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row??);
        }
        Ok(out)
    }

    /// The device named `name` (or whose id is `name` in decimal).
    ///
    /// # Errors
    /// As [`Catalog::list_devices`].
    pub fn device(&self, name: &str) -> Result<Option<Device>, CatalogError> {
        let id = name.parse::<i64>().ok();
        let row = self
            .conn
            .prepare_cached(
                "SELECT id, name, public_key, added_at, revoked_at FROM devices
                 WHERE name = ?1 OR id = ?2 ORDER BY name = ?1 DESC LIMIT 1",
            )?
            .query_row(params![name, id], device_row)
            .optional()?;
        row.transpose()
    }

    /// Revokes device `name` (or id) at `now`: its signatures are refused from then on; the row
    /// stays for audits. Revoking a revoked device changes nothing.
    ///
    /// # Errors
    /// [`CatalogError::NoSuchDevice`]; [`CatalogError::DiskFull`]; [`CatalogError::Sqlite`].
    pub fn revoke_device(&mut self, name: &str, now: i64) -> Result<(), CatalogError> {
        let id = name.parse::<i64>().ok();
        let tx = self.write()?;
        let n = tx.execute(
            "UPDATE devices SET revoked_at = coalesce(revoked_at, ?3) WHERE name = ?1 OR id = ?2",
            params![name, id, now],
        )?;
        if n == 0 {
            return Err(CatalogError::NoSuchDevice {
                name: name.chars().take(MAX_DEVICE_NAME_LEN).collect(),
            });
        }
        tx.commit()?;
        Ok(())
    }

    /// Stores a new pending approval (its `state`, `device` and `decided_at` are ignored),
    /// pruning decided ones past [`MAX_FINISHED_APPROVALS`], in one transaction.
    ///
    /// # Errors
    /// [`CatalogError::TooLong`] / [`CatalogError::Invalid`] for a field out of bounds;
    /// [`CatalogError::TooManyApprovals`] when [`MAX_PENDING_APPROVALS`] unexpired ones wait;
    /// [`CatalogError::DiskFull`]; [`CatalogError::Sqlite`].
    pub fn create_approval(&mut self, a: &Approval, now: i64) -> Result<(), CatalogError> {
        self.create_approval_reported(a, now, &[], 0)
    }

    /// [`Catalog::create_approval`], queueing `events` (the `approval.requested` webhook
    /// rows, which carry the challenge to the operator's phone) in the same transaction, due
    /// at `now_ms`: a 202 answered is never an approval nobody hears of.
    ///
    /// # Errors
    /// As [`Catalog::create_approval`].
    pub fn create_approval_reported(
        &mut self,
        a: &Approval,
        now: i64,
        events: &[super::WebhookEvent],
        now_ms: i64,
    ) -> Result<(), CatalogError> {
        check_text("approval id", &a.id, 64)?;
        check_text("approval action", &a.action, MAX_APPROVAL_FIELD_LEN)?;
        check_text("approval target", &a.target, MAX_APPROVAL_FIELD_LEN)?;
        check_text("approval actor", a.actor.as_deref().unwrap_or(""), 64)?;
        check_text("approval source", a.source.as_deref().unwrap_or(""), 64)?;
        check_text("approval method", &a.method, 16)?;
        check_text("approval path", &a.path, MAX_APPROVAL_PATH_LEN)?;
        if a.challenge.len() > MAX_CHALLENGE_LEN {
            return Err(CatalogError::TooLong {
                field: "approval challenge",
                len: a.challenge.len(),
                limit: MAX_CHALLENGE_LEN,
            });
        }
        if a.body.len() > MAX_APPROVAL_BODY_LEN {
            return Err(CatalogError::TooLong {
                field: "approval body",
                len: a.body.len(),
                limit: MAX_APPROVAL_BODY_LEN,
            });
        }
        let tx = self.write()?;
        let pending: i64 = tx.query_row(
            "SELECT count(*) FROM approvals WHERE state = 'pending' AND expires_at > ?1",
            [now],
            |r| r.get(0),
        )?;
        if usize::try_from(pending).unwrap_or(usize::MAX) >= MAX_PENDING_APPROVALS {
            return Err(CatalogError::TooManyApprovals {
                limit: MAX_PENDING_APPROVALS,
            });
        }
        // Expired pending rows no longer need their stored request.
        tx.execute(
            "UPDATE approvals SET state = 'expired', decided_at = expires_at, body = x''
             WHERE state = 'pending' AND expires_at <= ?1",
            [now],
        )?;
        tx.execute(
            "DELETE FROM approvals WHERE state <> 'pending' AND rowid NOT IN (
                 SELECT rowid FROM approvals WHERE state <> 'pending'
                 ORDER BY created_at DESC, rowid DESC LIMIT ?1)",
            [i64::try_from(MAX_FINISHED_APPROVALS).unwrap_or(i64::MAX)],
        )?;
        tx.execute(
            "INSERT INTO approvals (id, action, target, actor, source, challenge, method, path,
                                    body, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                a.id,
                a.action,
                a.target,
                a.actor,
                a.source,
                a.challenge,
                a.method,
                a.path,
                a.body,
                a.created_at,
                a.expires_at
            ],
        )?;
        super::outbox::enqueue_in(&tx, events, now_ms)?;
        tx.commit()?;
        Ok(())
    }

    /// The approval `id`, if the catalog has it.
    ///
    /// # Errors
    /// [`CatalogError::Corrupt`] for an unknown state; [`CatalogError::Sqlite`].
    pub fn approval(&self, id: &str) -> Result<Option<Approval>, CatalogError> {
        let row = self
            .conn
            .prepare_cached(
                "SELECT a.id, a.action, a.target, a.actor, a.source, a.challenge, a.method,
                        a.path, a.body, a.created_at, a.expires_at, a.state, d.name, a.decided_at
                 FROM approvals a LEFT JOIN devices d ON d.id = a.device_id WHERE a.id = ?1",
            )?
            .query_row([id], |r| {
                let state: String = r.get(11)?;
                Ok(ApprovalState::from_name(&state).map(|state| Approval {
                    id: r.get(0).unwrap_or_default(),
                    action: r.get(1).unwrap_or_default(),
                    target: r.get(2).unwrap_or_default(),
                    actor: r.get(3).ok().flatten(),
                    source: r.get(4).ok().flatten(),
                    challenge: r.get(5).unwrap_or_default(),
                    method: r.get(6).unwrap_or_default(),
                    path: r.get(7).unwrap_or_default(),
                    body: r.get(8).unwrap_or_default(),
                    created_at: r.get(9).unwrap_or_default(),
                    expires_at: r.get(10).unwrap_or_default(),
                    state,
                    device: r.get(12).ok().flatten(),
                    decided_at: r.get(13).ok().flatten(),
                }))
            })
            .optional()?;
        match row {
            None => Ok(None),
            Some(Some(a)) => Ok(Some(a)),
            Some(None) => Err(CatalogError::Corrupt {
                what: "unknown approval state",
            }),
        }
    }

    /// Moves approval `id` from `pending` to `state` (decided by `device`, at `now`), dropping
    /// its stored body. Returns false when it was not pending (already used, or unknown): the
    /// caller must then not run the action. This is the replay guard.
    ///
    /// # Errors
    /// [`CatalogError::DiskFull`]; [`CatalogError::Sqlite`].
    pub fn finish_approval(
        &mut self,
        id: &str,
        state: ApprovalState,
        device: Option<i64>,
        now: i64,
    ) -> Result<bool, CatalogError> {
        let tx = self.write()?;
        let n = tx.execute(
            "UPDATE approvals SET state = ?2, device_id = ?3, decided_at = ?4, body = x''
             WHERE id = ?1 AND state = 'pending'",
            params![id, state.as_str(), device, now],
        )?;
        tx.commit()?;
        Ok(n == 1)
    }
}

fn device_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<Device, CatalogError>> {
    let key: Vec<u8> = r.get(2)?;
    let Ok(public_key) = <[u8; DEVICE_KEY_LEN]>::try_from(key.as_slice()) else {
        return Ok(Err(CatalogError::Corrupt {
            what: "device key length",
        }));
    };
    Ok(Ok(Device {
        id: r.get(0)?,
        name: r.get(1)?,
        public_key,
        added_at: r.get(3)?,
        revoked_at: r.get(4)?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn approval(id: &str, now: i64) -> Approval {
        Approval {
            id: id.to_owned(),
            action: "torrent.remove".into(),
            target: "ab".repeat(20),
            actor: Some("0123456789ab".into()),
            source: Some("127.0.0.1".into()),
            challenge: b"seednode-approval-v1\n".to_vec(),
            method: "DELETE".into(),
            path: "/api/v1/torrents/x".into(),
            body: Vec::new(),
            created_at: now,
            expires_at: now + 120,
            state: ApprovalState::Pending,
            device: None,
            decided_at: None,
        }
    }

    #[test]
    fn device_lifecycle_and_single_use_approvals() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Catalog::open(&dir.path().join("catalog.sqlite")).unwrap();
        let id = c.add_device("phone", &[7; 32], 10).unwrap();
        assert!(c.add_device("phone", &[8; 32], 10).is_err(), "name reused");
        assert!(c.add_device("other", &[7; 32], 10).is_err(), "key reused");
        assert_eq!(c.device("phone").unwrap().unwrap().id, id);
        assert_eq!(c.device(&id.to_string()).unwrap().unwrap().name, "phone");
        c.revoke_device("phone", 11).unwrap();
        assert_eq!(c.list_devices().unwrap()[0].revoked_at, Some(11));
        assert!(matches!(
            c.revoke_device("nope", 11),
            Err(CatalogError::NoSuchDevice { .. })
        ));

        c.create_approval(&approval("apr_1", 100), 100).unwrap();
        let got = c.approval("apr_1").unwrap().unwrap();
        assert_eq!(got.state, ApprovalState::Pending);
        assert!(
            c.finish_approval("apr_1", ApprovalState::Granted, Some(id), 101)
                .unwrap()
        );
        assert!(
            !c.finish_approval("apr_1", ApprovalState::Granted, Some(id), 102)
                .unwrap(),
            "a second grant is a replay"
        );
        let got = c.approval("apr_1").unwrap().unwrap();
        assert_eq!(got.state, ApprovalState::Granted);
        assert_eq!(got.device.as_deref(), Some("phone"));
    }

    #[test]
    fn pending_approvals_are_bounded_and_expired_ones_do_not_count() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Catalog::open(&dir.path().join("catalog.sqlite")).unwrap();
        for i in 0..MAX_PENDING_APPROVALS {
            c.create_approval(&approval(&format!("apr_{i}"), 100), 100)
                .unwrap();
        }
        assert!(matches!(
            c.create_approval(&approval("apr_x", 100), 100),
            Err(CatalogError::TooManyApprovals { .. })
        ));
        // Past their expiry they no longer count, and are marked expired.
        c.create_approval(&approval("apr_y", 300), 300).unwrap();
        assert_eq!(
            c.approval("apr_0").unwrap().unwrap().state,
            ApprovalState::Expired
        );
        let mut big = approval("apr_z", 300);
        big.body = vec![0; MAX_APPROVAL_BODY_LEN + 1];
        assert!(matches!(
            c.create_approval(&big, 300),
            Err(CatalogError::TooLong { .. })
        ));
    }
}
