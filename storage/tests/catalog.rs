//! The catalog against real SQLite files in temporary directories: migrations, refusals, torrents,
//! tokens, statistics, fast resume, 1 000 torrents across a reopen, and `kill -9` during a burst
//! of adds (SECURITY S2, issue 11).

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use seednode_storage::catalog::resume::{self, OnDisk, Resume};
use seednode_storage::catalog::{
    APPLICATION_ID, Catalog, CatalogError, FileCheck, NewTorrent, SCHEMA_VERSION, Scopes, State,
    StatsBatch, TOKEN_SECRET_LEN, TokenError, TorrentId,
};
use seednode_wire::metainfo::{FileEntry, Info, Metainfo};
use seednode_wire::rng::Rng;

const PIECE: u32 = 16 * 1024;

/// A small v1 torrent determined by `seed`: `files` files named `f0`, `f1`, … (one file: a
/// single-file torrent named `name`), each `len` bytes, with made-up piece hashes. Returns the
/// parsed metainfo and its bytes.
fn torrent_with(name: &str, seed: u64, files: usize, len: u64) -> (Metainfo, Vec<u8>) {
    let entries: Vec<FileEntry> = if files == 1 {
        vec![FileEntry {
            path: vec![],
            length: len,
        }]
    } else {
        (0..files)
            .map(|i| FileEntry {
                path: vec![format!("f{i}")],
                length: len,
            })
            .collect()
    };
    let total: u64 = entries.iter().map(|f| f.length).sum();
    let mut rng = Rng::from_u64(seed);
    let pieces = (0..total.div_ceil(u64::from(PIECE)))
        .map(|_| {
            let mut h = [0u8; 20];
            rng.fill(&mut h);
            h
        })
        .collect();
    let info = Info {
        name: name.to_owned(),
        piece_length: PIECE,
        pieces,
        files: entries,
        multi_file: files != 1,
        private: false,
    };
    let meta = Metainfo::new(
        info,
        vec![vec!["http://tracker.invalid/announce".into()]],
        vec![],
    );
    let bytes = meta.to_bytes();
    (Metainfo::from_bytes(&bytes).unwrap(), bytes)
}

fn new_torrent(seed: u64) -> NewTorrent {
    let name = format!("torrent-{seed}");
    let (meta, bytes) = torrent_with(&name, seed, 2, 40_000);
    NewTorrent::from_metainfo(
        bytes,
        &meta,
        PathBuf::from(format!("/srv/seednode/{name}")),
        1_700_000_000 + i64::try_from(seed).unwrap(),
    )
    .unwrap()
}

fn db_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("catalog.sqlite")
}

fn raw(path: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).unwrap()
}

fn count(path: &Path, table: &str) -> i64 {
    raw(path)
        .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

#[test]
fn new_catalog_is_migrated_from_empty_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let catalog = Catalog::open(&path).unwrap();
    assert_eq!(catalog.schema_version().unwrap(), SCHEMA_VERSION);
    catalog.integrity_check().unwrap();
    drop(catalog);
    let conn = raw(&path);
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let app: i32 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .unwrap();
    assert_eq!(app, APPLICATION_ID);
    drop(conn);
    // Reopening changes nothing; an empty file is a new catalog.
    assert_eq!(
        Catalog::open(&path).unwrap().schema_version().unwrap(),
        SCHEMA_VERSION
    );
    let empty = dir.path().join("empty.sqlite");
    fs::write(&empty, b"").unwrap();
    Catalog::open(&empty).unwrap();
}

#[test]
fn schema_newer_than_the_binary_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    Catalog::open(&path).unwrap();
    let conn = raw(&path);
    conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    drop(conn);
    let before = fs::read(&path).unwrap();
    match Catalog::open(&path) {
        Err(CatalogError::SchemaTooNew { found, supported }) => {
            assert_eq!((found, supported), (SCHEMA_VERSION + 1, SCHEMA_VERSION));
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
    assert_eq!(fs::read(&path).unwrap(), before);
}

#[test]
fn a_file_that_is_not_a_catalog_is_refused_and_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.txt");
    let content = b"these are my notes, not a database\n".repeat(200);
    fs::write(&text, &content).unwrap();
    assert!(matches!(
        Catalog::open(&text),
        Err(CatalogError::NotACatalog { .. })
    ));
    assert_eq!(fs::read(&text).unwrap(), content);
    assert!(!dir.path().join("notes.txt-wal").exists());

    // Another application's SQLite database: refused too, byte for byte unchanged.
    let other = dir.path().join("other.sqlite");
    let conn = raw(&other);
    conn.execute_batch("CREATE TABLE mine (x INTEGER); INSERT INTO mine VALUES (1);")
        .unwrap();
    drop(conn);
    let before = fs::read(&other).unwrap();
    let err = Catalog::open(&other).unwrap_err();
    assert!(matches!(err, CatalogError::NotACatalog { .. }), "{err}");
    assert_eq!(fs::read(&other).unwrap(), before);
    // A directory, a FIFO (opening it would block) or a short file are not catalogs either.
    assert!(matches!(
        Catalog::open(dir.path()),
        Err(CatalogError::NotACatalog { .. })
    ));
    let fifo = dir.path().join("fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    assert!(matches!(
        Catalog::open(&fifo),
        Err(CatalogError::NotACatalog { .. })
    ));
    let short = dir.path().join("short");
    fs::write(&short, b"SQLite").unwrap();
    assert!(matches!(
        Catalog::open(&short),
        Err(CatalogError::NotACatalog { .. })
    ));
    assert_eq!(fs::read(&short).unwrap(), b"SQLite");
}

#[test]
fn add_list_lookup_remove_cascades() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let mut catalog = Catalog::open(&path).unwrap();
    let a = new_torrent(1);
    let b = new_torrent(2);
    let id_a = catalog.add_torrent(&a).unwrap();
    let id_b = catalog.add_torrent(&b).unwrap();
    let list = catalog.list_torrents().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].id, id_a);
    assert_eq!(list[0].name, "torrent-1");
    assert_eq!(list[0].info_hash_v1, a.info_hash_v1);
    assert_eq!(list[0].info_hash_v2, None);
    assert_eq!(list[0].state, State::Seeding);
    assert_eq!(list[0].data_path, a.data_path);
    assert_eq!(list[0].added_at, a.added_at);
    assert_eq!(list[0].info_len as usize, a.info_len);
    assert_eq!(list[0].metainfo_len as usize, a.metainfo.len());
    assert_eq!(list[0].swarm_hash(), a.info_hash_v1.unwrap());
    let found = catalog
        .by_info_hash(&b.info_hash_v1.unwrap().0)
        .unwrap()
        .unwrap();
    assert_eq!(found.id, id_b);
    assert!(catalog.by_info_hash(&[7; 20]).unwrap().is_none());
    let files = catalog.files(id_a).unwrap();
    assert_eq!(files.len(), 2);
    assert_eq!((files[1].index, files[1].path.as_str()), (1, "f1"));
    assert_eq!(files[1].length, 40_000);
    assert_eq!(files[1].mtime_ns, None);

    catalog.remove_torrent(id_a).unwrap();
    assert!(matches!(
        catalog.remove_torrent(id_a),
        Err(CatalogError::NoSuchTorrent { .. })
    ));
    assert!(matches!(
        catalog.torrent(id_a),
        Err(CatalogError::NoSuchTorrent { .. })
    ));
    assert!(matches!(
        catalog.files(id_a),
        Err(CatalogError::NoSuchTorrent { .. })
    ));
    assert_eq!(count(&path, "torrents"), 1);
    assert_eq!(count(&path, "files"), 2);
    assert_eq!(count(&path, "stats"), 1);
    catalog.integrity_check().unwrap();
}

#[test]
fn duplicate_info_hash_is_exists_and_concurrent_adds_write_one_row() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let mut catalog = Catalog::open(&path).unwrap();
    let t = new_torrent(10);
    let id = catalog.add_torrent(&t).unwrap();
    let mut again = t.clone();
    again.data_path = PathBuf::from("/elsewhere");
    match catalog.add_torrent(&again) {
        Err(CatalogError::Exists { id: existing }) => assert_eq!(existing, id),
        other => panic!("expected Exists, got {other:?}"),
    }
    drop(catalog);

    // SECURITY U7: the same torrent added on two connections at once, ten times over.
    for seed in 100..110 {
        let barrier = Arc::new(Barrier::new(2));
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let (barrier, path) = (Arc::clone(&barrier), path.clone());
                std::thread::spawn(move || {
                    let mut catalog = Catalog::open(&path).unwrap();
                    let t = new_torrent(seed);
                    barrier.wait();
                    catalog.add_torrent(&t)
                })
            })
            .collect();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let ok: Vec<TorrentId> = results
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .copied()
            .collect();
        assert_eq!(ok.len(), 1, "{results:?}");
        assert!(
            results
                .iter()
                .any(|r| matches!(r, Err(CatalogError::Exists { id }) if *id == ok[0])),
            "{results:?}"
        );
    }
    assert_eq!(count(&path, "torrents"), 11);
}

#[test]
fn batch_of_adds_keeps_the_good_ones() {
    let dir = tempfile::tempdir().unwrap();
    let mut catalog = Catalog::open(&db_path(&dir)).unwrap();
    let mut bad = new_torrent(3);
    bad.name = "nul\0name".into();
    let batch = vec![
        new_torrent(1),
        new_torrent(2),
        new_torrent(1),
        bad,
        new_torrent(4),
    ];
    let results = catalog.add_torrents(&batch).unwrap();
    assert!(results[0].is_ok() && results[1].is_ok() && results[4].is_ok());
    assert!(matches!(results[2], Err(CatalogError::Exists { .. })));
    assert!(matches!(
        results[3],
        Err(CatalogError::Invalid { field: "name", .. })
    ));
    assert_eq!(catalog.list_torrents().unwrap().len(), 3);
}

#[test]
fn info_dict_reads_back_the_exact_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let mut catalog = Catalog::open(&db_path(&dir)).unwrap();
    // About 1 300 pieces: an info dictionary of ~26 KiB, two BEP 9 metadata pieces.
    let (meta, bytes) = torrent_with("big", 5, 3, 7_000_000);
    let t = NewTorrent::from_metainfo(bytes.clone(), &meta, "/srv/big".into(), 0).unwrap();
    let id = catalog.add_torrent(&t).unwrap();
    assert_eq!(catalog.info_dict(id).unwrap(), meta.info_bytes.as_ref());
    assert_eq!(catalog.metainfo(id).unwrap(), bytes);
    let info = meta.info_bytes.as_ref();
    assert!(info.len() > 16 * 1024);
    assert_eq!(
        catalog.info_dict_slice(id, 0, 16 * 1024).unwrap(),
        &info[..16 * 1024]
    );
    let rest = info.len() - 16 * 1024;
    assert_eq!(
        catalog.info_dict_slice(id, 16 * 1024, rest).unwrap(),
        &info[16 * 1024..]
    );
    assert!(matches!(
        catalog.info_dict_slice(id, 16 * 1024, rest + 1),
        Err(CatalogError::Invalid { .. })
    ));
    assert!(matches!(
        catalog.info_dict_slice(id, usize::MAX, 1),
        Err(CatalogError::Invalid { .. })
    ));
    assert!(matches!(
        catalog.info_dict_slice(id, 0, 16 * 1024 + 1),
        Err(CatalogError::TooLong { .. })
    ));
    assert!(matches!(
        catalog.info_dict(TorrentId(999)),
        Err(CatalogError::NoSuchTorrent { .. })
    ));
}

#[test]
fn inputs_are_checked_and_hostile_names_stored_verbatim() {
    let dir = tempfile::tempdir().unwrap();
    let mut catalog = Catalog::open(&db_path(&dir)).unwrap();
    // SECURITY M10: bound parameters, stored verbatim.
    let name = "'; DROP TABLE torrents;--";
    let (meta, bytes) = torrent_with(name, 1, 1, 1000);
    let t = NewTorrent::from_metainfo(bytes, &meta, "/srv/$(reboot)".into(), 0).unwrap();
    let id = catalog.add_torrent(&t).unwrap();
    assert_eq!(catalog.torrent(id).unwrap().name, name);
    assert_eq!(catalog.files(id).unwrap()[0].path, "");

    let base = new_torrent(2);
    let mut wrong_hash = base.clone();
    wrong_hash.info_hash_v1 = Some(seednode_wire::InfoHash([1; 20]));
    let mut wrong_offset = base.clone();
    wrong_offset.info_offset += 1;
    let mut past_end = base.clone();
    past_end.info_len = usize::MAX;
    let mut empty_name = base.clone();
    empty_name.name.clear();
    let mut long_name = base.clone();
    long_name.name = "x".repeat(256);
    let mut nul_path = base.clone();
    nul_path.data_path = PathBuf::from("/srv/a\0b");
    let mut reason_for_seeding = base.clone();
    reason_for_seeding.state_reason = Some("why".into());
    let mut big = base.clone();
    big.metainfo.resize(11 * 1024 * 1024, b'x');
    for (what, t) in [
        ("wrong hash", wrong_hash),
        ("wrong offset", wrong_offset),
        ("past end", past_end),
        ("empty name", empty_name),
        ("long name", long_name),
        ("nul path", nul_path),
        ("reason", reason_for_seeding),
        ("big", big),
    ] {
        let r = catalog.add_torrent(&t);
        assert!(
            matches!(
                r,
                Err(CatalogError::Invalid { .. } | CatalogError::TooLong { .. })
            ),
            "{what}: {r:?}"
        );
    }
    assert_eq!(catalog.list_torrents().unwrap().len(), 1);

    // States and reasons.
    assert!(catalog.set_state(id, State::Error, None).is_err());
    assert!(catalog.set_state(id, State::Paused, Some("x")).is_err());
    let long = format!("{}é", "r".repeat(1023));
    catalog
        .set_state(id, State::MissingData, Some(&long))
        .unwrap();
    let s = catalog.torrent(id).unwrap();
    assert_eq!(s.state, State::MissingData);
    assert_eq!(s.state_reason.as_deref(), Some(&long[..1023]));
    catalog.set_state(id, State::Paused, None).unwrap();
    assert_eq!(catalog.torrent(id).unwrap().state_reason, None);
    assert!(matches!(
        catalog.set_state(TorrentId(42), State::Seeding, None),
        Err(CatalogError::NoSuchTorrent { .. })
    ));
}

#[test]
fn settings_round_trip_with_limits() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let mut catalog = Catalog::open(&path).unwrap();
    assert_eq!(catalog.get_setting("listen").unwrap(), None);
    catalog.set_setting("listen", "0.0.0.0:6881").unwrap();
    catalog.set_setting("listen", "[::]:6881").unwrap();
    assert!(catalog.set_setting("", "x").is_err());
    assert!(catalog.set_setting("k\0", "x").is_err());
    assert!(catalog.set_setting(&"k".repeat(129), "x").is_err());
    assert!(
        catalog
            .set_setting("k", &"v".repeat(64 * 1024 + 1))
            .is_err()
    );
    drop(catalog);
    let mut catalog = Catalog::open(&path).unwrap();
    assert_eq!(
        catalog.get_setting("listen").unwrap().as_deref(),
        Some("[::]:6881")
    );
    assert!(catalog.delete_setting("listen").unwrap());
    assert!(!catalog.delete_setting("listen").unwrap());
}

#[test]
fn tokens_verify_expire_revoke_and_the_secret_is_never_stored() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let mut catalog = Catalog::open(&path).unwrap();
    let mut rng = Rng::from_u64(7);
    let mut secret = [0u8; TOKEN_SECRET_LEN];
    rng.fill(&mut secret);
    let now = 1_700_000_000;
    let t = catalog
        .create_token(
            Scopes::READ | Scopes::METRICS,
            None,
            "grafana",
            &secret,
            now,
        )
        .unwrap();
    assert!(!format!("{t:?}").contains(&t.token[4..]));
    assert!(t.token.starts_with(&format!("sn_{}_", t.id)));
    let info = catalog.verify_token(&t.token, now).unwrap();
    assert_eq!(info.id, t.id);
    assert!(info.scopes.contains(Scopes::READ) && !info.scopes.contains(Scopes::ADMIN));
    assert_eq!(info.label, "grafana");

    // Same id, another secret; unknown id; malformed.
    let mut forged = t.token.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == '0' { '1' } else { '0' });
    assert!(matches!(
        catalog.verify_token(&forged, now),
        Err(TokenError::Unknown)
    ));
    let other_id = t.token.replacen(&t.id, "000000000000", 1);
    assert!(matches!(
        catalog.verify_token(&other_id, now),
        Err(TokenError::Unknown)
    ));
    for bad in [
        "",
        "Bearer x",
        &t.token[..t.token.len() - 1],
        &t.token.to_uppercase(),
    ] {
        assert!(matches!(
            catalog.verify_token(bad, now),
            Err(TokenError::Malformed)
        ));
    }

    // Expiry: valid until expires_at, refused from then on.
    rng.fill(&mut secret);
    let e = catalog
        .create_token(Scopes::UPLOAD, Some(now + 60), "", &secret, now)
        .unwrap();
    assert!(catalog.verify_token(&e.token, now + 59).is_ok());
    assert!(matches!(
        catalog.verify_token(&e.token, now + 60),
        Err(TokenError::Expired)
    ));

    // Revocation, then deletion.
    catalog.revoke_token(&t.id, now + 1).unwrap();
    catalog.revoke_token(&t.id, now + 2).unwrap();
    assert!(matches!(
        catalog.verify_token(&t.token, now + 3),
        Err(TokenError::Revoked)
    ));
    let list = catalog.list_tokens().unwrap();
    assert_eq!(list.len(), 2);
    let revoked = list.iter().find(|i| i.id == t.id).unwrap();
    assert_eq!(revoked.revoked_at, Some(now + 1));
    assert!(matches!(
        catalog.revoke_token("nope", now),
        Err(CatalogError::NoSuchToken { .. })
    ));
    catalog.delete_token(&t.id).unwrap();
    assert!(matches!(
        catalog.verify_token(&t.token, now),
        Err(TokenError::Unknown)
    ));
    assert!(
        catalog
            .create_token(Scopes::empty(), None, "", &secret, now)
            .is_err()
    );

    // SECURITY A8: neither the token string nor the secret bytes are anywhere on disk.
    let secret_hex = e.token.rsplit('_').next().unwrap().to_owned();
    drop(catalog);
    for file in fs::read_dir(dir.path()).unwrap() {
        let bytes = fs::read(file.unwrap().path()).unwrap();
        assert!(!contains(&bytes, secret_hex.as_bytes()));
        assert!(!contains(&bytes, &secret));
        assert!(!contains(&bytes, e.token.as_bytes()));
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn stats_batches_add_up_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let mut catalog = Catalog::open(&path).unwrap();
    let a = catalog.add_torrent(&new_torrent(1)).unwrap();
    let b = catalog.add_torrent(&new_torrent(2)).unwrap();
    let mut batch = StatsBatch::new();
    batch.record(a, 1000, 1, 100);
    batch.record(a, 500, 2, 90);
    batch.record(b, u64::MAX, 1, 50);
    assert_eq!(batch.len(), 2);
    catalog.add_stats(&batch.take()).unwrap();
    assert!(batch.is_empty());
    batch.record(a, 1, 0, 200);
    batch.record(b, 5, 0, 60);
    batch.record(TorrentId(99), 5, 5, 60); // removed meanwhile: skipped
    catalog.add_stats(&batch.take()).unwrap();
    drop(catalog);
    let catalog = Catalog::open(&path).unwrap();
    let sa = catalog.torrent(a).unwrap().stats;
    assert_eq!(
        (sa.uploaded_bytes, sa.peers_served, sa.last_activity),
        (1501, 3, Some(200))
    );
    let sb = catalog.torrent(b).unwrap().stats;
    assert_eq!(sb.uploaded_bytes, i64::MAX as u64); // saturated, never wrapped or REAL
    assert_eq!(sb.last_activity, Some(60));
    catalog.integrity_check().unwrap();
}

#[test]
fn thousand_torrents_survive_reopen_with_stats() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let start = Instant::now();
    let mut catalog = Catalog::open(&path).unwrap();
    let torrents: Vec<NewTorrent> = (0..1000).map(new_torrent).collect();
    let ids: Vec<TorrentId> = catalog
        .add_torrents(&torrents)
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let mut batch = StatsBatch::new();
    for (i, id) in ids.iter().enumerate() {
        batch.record(*id, i as u64 * 10, 1, 1_000 + i as i64);
    }
    catalog.add_stats(&batch.take()).unwrap();
    drop(catalog);
    let catalog = Catalog::open(&path).unwrap();
    let list = catalog.list_torrents().unwrap();
    assert_eq!(list.len(), 1000);
    for (i, (summary, t)) in list.iter().zip(&torrents).enumerate() {
        assert_eq!(summary.id, ids[i]);
        assert_eq!(summary.info_hash_v1, t.info_hash_v1);
        assert_eq!(summary.name, t.name);
        assert_eq!(summary.stats.uploaded_bytes, i as u64 * 10);
        assert_eq!(summary.stats.peers_served, 1);
        assert_eq!(summary.stats.last_activity, Some(1_000 + i as i64));
    }
    catalog.integrity_check().unwrap();
    eprintln!(
        "1 000 torrents added, reopened and listed in {:?}",
        start.elapsed()
    );
}

#[test]
#[allow(clippy::single_range_in_vec_init)] // one range of pieces is the point
fn fast_resume_from_recorded_mtimes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    fs::create_dir(&data).unwrap();
    let (meta, bytes) = torrent_with("multi", 3, 3, 20_000); // 60 000 bytes, 4 pieces
    for i in 0..3 {
        fs::write(data.join(format!("f{i}")), vec![i as u8; 20_000]).unwrap();
    }
    let mut catalog = Catalog::open(&db_path(&dir)).unwrap();
    let t = NewTorrent::from_metainfo(bytes, &meta, data.clone(), 0).unwrap();
    let id = catalog.add_torrent(&t).unwrap();
    let pl = NonZeroU32::new(meta.info.piece_length).unwrap();

    // Never verified: every piece is checked.
    let files = catalog.files(id).unwrap();
    let seen = resume::observe(&data, &files);
    assert_eq!(
        resume::classify(&files, &seen, pl),
        Resume::Recheck { pieces: vec![0..4] }
    );
    // Verified: record the mtimes seen, resume at once.
    let checks: Vec<FileCheck> = seen
        .iter()
        .enumerate()
        .map(|(i, s)| match s {
            OnDisk::File { mtime_ns, .. } => FileCheck {
                index: i as u32,
                mtime_ns: Some(*mtime_ns),
                sha256: None,
            },
            other => panic!("{other:?}"),
        })
        .collect();
    catalog.record_file_checks(id, &checks).unwrap();
    let files = catalog.files(id).unwrap();
    assert_eq!(
        resume::classify(&files, &resume::observe(&data, &files), pl),
        Resume::Ready
    );
    // f1 (bytes 20 000..40 000: pieces 1 and 2) touched: only those are rechecked.
    let f1 = fs::File::options()
        .write(true)
        .open(data.join("f1"))
        .unwrap();
    f1.set_modified(std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000))
        .unwrap();
    drop(f1);
    assert_eq!(
        resume::classify(&files, &resume::observe(&data, &files), pl),
        Resume::Recheck { pieces: vec![1..3] }
    );
    // f2 truncated, then gone: missing data.
    fs::write(data.join("f2"), b"short").unwrap();
    assert!(matches!(
        resume::classify(&files, &resume::observe(&data, &files), pl),
        Resume::MissingData { file: 2, .. }
    ));
    fs::remove_file(data.join("f2")).unwrap();
    assert!(matches!(
        resume::classify(&files, &resume::observe(&data, &files), pl),
        Resume::MissingData { file: 2, .. }
    ));
    // A symbolic link in a file's place is not followed.
    std::os::unix::fs::symlink(data.join("f0"), data.join("f2")).unwrap();
    assert!(matches!(
        resume::observe(&data, &files)[2],
        OnDisk::Unusable { .. }
    ));
    assert!(matches!(
        catalog.record_file_checks(
            id,
            &[FileCheck {
                index: 9,
                mtime_ns: None,
                sha256: None
            }]
        ),
        Err(CatalogError::NoSuchFile { index: 9, .. })
    ));
}

/// Environment variable that turns [`crash_child`] into the child of [`crash_during_adds`]: the
/// catalog path.
const CRASH_DB: &str = "SEEDNODE_CATALOG_CRASH_DB";
/// The round number, so each round adds torrents of its own.
const CRASH_ROUND: &str = "SEEDNODE_CATALOG_CRASH_ROUND";
/// Adds per round (the issue's burst of 200).
const CRASH_ADDS: u64 = 200;

/// The child of [`crash_during_adds`] (does nothing in a normal run): adds torrents one by one
/// and prints `ack <id>` for each, after its commit returned.
#[test]
fn crash_child() {
    let (Ok(db), Ok(round)) = (std::env::var(CRASH_DB), std::env::var(CRASH_ROUND)) else {
        return;
    };
    let round: u64 = round.parse().unwrap();
    let mut catalog = Catalog::open(Path::new(&db)).unwrap();
    let mut out = std::io::stdout().lock();
    for i in 0..CRASH_ADDS {
        let id = catalog.add_torrent(&new_torrent(round * 1000 + i)).unwrap();
        writeln!(out, "ack {} {}", id.0, round * 1000 + i).unwrap();
        out.flush().unwrap();
    }
}

/// SECURITY S2, issue 11: `kill -9` at a seeded random moment during a burst of 200 adds, 20
/// times; after each, the catalog opens, passes `integrity_check`, and every acknowledged add is
/// there. Every fifth round starts on a new file and kills during start-up (creation, migration).
#[test]
fn crash_during_adds() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = Rng::from_u64(0x5eed_c0de);
    let mut killed_mid_burst = 0;
    let mut killed_before_first_ack = 0;
    let mut acked_total = 0;
    // More rounds on demand: SEEDNODE_CATALOG_CRASH_ROUNDS=1000 cargo test … crash_during_adds.
    let rounds: u64 = std::env::var("SEEDNODE_CATALOG_CRASH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(20);
    for round in 0..rounds {
        let fresh = round % 5 == 0;
        let path = dir.path().join(format!("crash-{}.sqlite", round / 5));
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(CRASH_DB, &path)
            .env(CRASH_ROUND, round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix("ack ") {
                    let mut it = rest.split(' ');
                    let id: i64 = it.next().unwrap().parse().unwrap();
                    let seed: u64 = it.next().unwrap().parse().unwrap();
                    if tx.send((id, seed)).is_err() {
                        break;
                    }
                }
            }
        });
        let mut acked = Vec::new();
        if fresh {
            // Somewhere in process start, catalog creation or the first adds.
            std::thread::sleep(Duration::from_millis(rng.below(40) as u64));
        } else {
            // Somewhere in the burst: after the first ack, a random number of acks later.
            let wait_for = 1 + rng.below(CRASH_ADDS as usize - 20);
            while acked.len() < wait_for {
                match rx.recv_timeout(Duration::from_secs(20)) {
                    Ok(ack) => acked.push(ack),
                    Err(e) => panic!("round {round}: child gave no ack: {e}"),
                }
            }
            std::thread::sleep(Duration::from_micros(rng.below(3000) as u64));
        }
        let finished = child.try_wait().unwrap().is_some();
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        acked.extend(rx.try_iter());
        if !finished && acked.len() < CRASH_ADDS as usize {
            killed_mid_burst += 1;
        }
        acked_total += acked.len();
        if acked.is_empty() {
            killed_before_first_ack += 1;
        }

        let catalog = Catalog::open(&path)
            .unwrap_or_else(|e| panic!("round {round}: catalog does not open after kill: {e}"));
        catalog.integrity_check().unwrap();
        for (id, seed) in &acked {
            let summary = catalog
                .torrent(TorrentId(*id))
                .unwrap_or_else(|e| panic!("round {round}: acknowledged add {id} lost: {e}"));
            assert_eq!(summary.name, format!("torrent-{seed}"));
            assert_eq!(catalog.files(summary.id).unwrap().len(), 2);
        }
        // Every torrent is whole: files and a statistics row, never half an add.
        let conn = raw(&path);
        let (torrents, files, stats): (i64, i64, i64) = conn
            .query_row(
                "SELECT (SELECT count(*) FROM torrents), (SELECT count(*) FROM files),
                        (SELECT count(*) FROM stats)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!((files, stats), (2 * torrents, torrents), "round {round}");
        assert!(torrents as usize >= acked.len());
    }
    eprintln!(
        "crash test: {rounds} rounds, {killed_mid_burst} killed mid-burst ({killed_before_first_ack} \
         before the first ack), {acked_total} acknowledged adds all present"
    );
    assert!(
        killed_mid_burst >= 12,
        "only {killed_mid_burst} rounds killed mid-burst"
    );
}

#[test]
fn v2_and_hybrid_torrents_are_found_by_either_swarm_hash() {
    use seednode_storage::{CreateOptions, TorrentVersion, create_torrent};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    fs::create_dir(&data).unwrap();
    fs::write(data.join("a"), vec![1u8; 70_000]).unwrap();
    fs::write(data.join("b"), vec![2u8; 5_000]).unwrap();
    let mut catalog = Catalog::open(&db_path(&dir)).unwrap();
    for version in [TorrentVersion::V2, TorrentVersion::Hybrid] {
        let opts = CreateOptions {
            version,
            piece_length: Some(PIECE),
            threads: 1,
            name: Some(format!("{version:?}")),
            ..CreateOptions::default()
        };
        let meta = create_torrent(&data, &opts, &|_| {}).unwrap();
        let bytes = meta.to_bytes();
        let meta = Metainfo::from_bytes(&bytes).unwrap();
        let t = NewTorrent::from_metainfo(bytes, &meta, data.clone(), 0).unwrap();
        let v2 = t.info_hash_v2.unwrap();
        assert_eq!(t.info_hash_v1.is_some(), version == TorrentVersion::Hybrid);
        let id = catalog.add_torrent(&t).unwrap();
        assert_eq!(catalog.info_dict(id).unwrap(), meta.info_bytes.as_ref());
        let by_v2 = catalog.by_info_hash_v2(&v2.0).unwrap().unwrap();
        assert_eq!(by_v2.id, id);
        assert_eq!(by_v2.swarm_hash(), meta.info_hash);
        let by_swarm = catalog.by_info_hash(&v2.truncated().0).unwrap().unwrap();
        assert_eq!(by_swarm.id, id);
        if let Some(v1) = t.info_hash_v1 {
            assert_eq!(catalog.by_info_hash(&v1.0).unwrap().unwrap().id, id);
        }
        // BEP 47 padding after `a` (70 000 bytes is not a multiple of 16 KiB): nothing on disk,
        // and resume only needs the real files.
        let files = catalog.files(id).unwrap();
        assert!(files.iter().any(|f| f.padding), "{files:?}");
        let seen = resume::observe(&data, &files);
        assert!(
            files
                .iter()
                .zip(&seen)
                .all(|(f, s)| f.padding == (*s == OnDisk::Nothing))
        );
        let pl = NonZeroU32::new(meta.info.piece_length).unwrap();
        assert!(matches!(
            resume::classify(&files, &seen, pl),
            Resume::Recheck { .. }
        ));
    }
    assert!(matches!(
        catalog.add_torrent(&{
            let opts = CreateOptions {
                version: TorrentVersion::V2,
                piece_length: Some(PIECE),
                threads: 1,
                name: Some("V2".into()),
                ..CreateOptions::default()
            };
            let meta = create_torrent(&data, &opts, &|_| {}).unwrap();
            NewTorrent::from_metainfo(meta.to_bytes(), &meta, "/x".into(), 0).unwrap()
        }),
        Err(CatalogError::Exists { .. })
    ));
}

#[test]
fn full_disk_rolls_back_and_the_retry_works() {
    // SECURITY S4 through `max_page_count`: SQLITE_FULL exactly as a full disk reports it.
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let mut catalog = Catalog::open(&path).unwrap();
    catalog.add_torrent(&new_torrent(1)).unwrap();
    let cap = catalog.set_size_limit(0).unwrap(); // the current size
    assert!(cap > 0);
    // A large torrent (about 1 MiB of piece hashes) cannot fit.
    let (meta, bytes) = torrent_with("large", 2, 4, 250_000_000);
    let large = NewTorrent::from_metainfo(bytes, &meta, "/srv/large".into(), 0).unwrap();
    let r = catalog.add_torrent(&large);
    assert!(matches!(r, Err(CatalogError::DiskFull)), "{r:?}");
    assert!(matches!(
        catalog.add_torrents(std::slice::from_ref(&large)),
        Err(CatalogError::DiskFull)
    ));
    // Reads go on; nothing half-applied.
    assert_eq!(catalog.list_torrents().unwrap().len(), 1);
    catalog.integrity_check().unwrap();
    assert_eq!(count(&path, "files"), 2);
    // Space returns: the same add succeeds.
    catalog.set_size_limit(1 << 40).unwrap();
    let id = catalog.add_torrent(&large).unwrap();
    assert_eq!(catalog.info_dict(id).unwrap(), meta.info_bytes.as_ref());
    catalog.checkpoint().unwrap();
}

/// The in-memory verifiers the engine keeps agree with `verify_token` on every outcome.
#[test]
fn token_verifiers_agree_with_verify_token() {
    let dir = tempfile::tempdir().unwrap();
    let mut catalog = Catalog::open(&db_path(&dir)).unwrap();
    let mut rng = Rng::from_u64(11);
    let now = 1_700_000_000;
    let mut tokens = Vec::new();
    for (scopes, expires_at) in [
        (Scopes::ADMIN, None),
        (Scopes::READ | Scopes::METRICS, Some(now + 10)),
        (Scopes::UPLOAD, None),
    ] {
        let mut secret = [0u8; TOKEN_SECRET_LEN];
        rng.fill(&mut secret);
        tokens.push(
            catalog
                .create_token(scopes, expires_at, "t", &secret, now)
                .unwrap(),
        );
    }
    catalog.revoke_token(&tokens[2].id, now).unwrap();
    let verifiers = catalog.token_verifiers().unwrap();
    assert_eq!(verifiers.len(), 3);
    assert!(!format!("{verifiers:?}").contains("hash"));
    let in_memory = |presented: &str, at: i64| {
        let (id, hash) = seednode_storage::catalog::presented_token(presented)?;
        match verifiers.iter().find(|v| v.id == id) {
            Some(v) => v.check(&hash, at),
            None => Err(TokenError::Unknown),
        }
    };
    let mut forged = tokens[0].token.clone();
    forged.pop();
    forged.push('x');
    let presented = [
        tokens[0].token.clone(),
        tokens[1].token.clone(),
        tokens[2].token.clone(),
        forged,
        tokens[0].token.replacen(&tokens[0].id, "000000000000", 1),
        String::from("sn_"),
    ];
    for p in &presented {
        for at in [now, now + 10] {
            let a = catalog.verify_token(p, at).map(|info| info.scopes);
            let b = in_memory(p, at);
            assert_eq!(format!("{a:?}"), format!("{b:?}"), "{p} at {at}");
        }
    }
}

#[test]
fn an_owner_past_its_quota_adds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut catalog = Catalog::open(&db_path(&dir)).unwrap();
    let owned = |seed, max_torrents, max_bytes| {
        let mut t = new_torrent(seed);
        t.owner = Some(seednode_storage::catalog::Owner {
            id: "0123456789ab".into(),
            max_torrents,
            max_bytes,
        });
        t
    };
    // Two torrents allowed: the third is refused, in a batch as alone.
    let results = catalog
        .add_torrents(&[
            owned(1, Some(2), None),
            owned(2, Some(2), None),
            owned(3, Some(2), None),
        ])
        .unwrap();
    assert!(results[0].is_ok() && results[1].is_ok());
    assert!(matches!(
        results[2],
        Err(CatalogError::QuotaExceeded {
            what: "torrents",
            limit: 2
        })
    ));
    // Bytes: each test torrent holds 80,000 bytes (2 files of 40,000).
    let r = catalog
        .add_torrents(&[owned(4, None, Some(200_000))])
        .unwrap();
    assert!(
        matches!(r[0], Err(CatalogError::QuotaExceeded { what: "bytes", .. })),
        "{r:?}"
    );
    // Another owner, or none, is not affected.
    assert!(catalog.add_torrents(&[new_torrent(5)]).unwrap()[0].is_ok());
    assert_eq!(catalog.list_torrents().unwrap().len(), 3);
}

#[test]
fn lookup_finds_content_by_every_identity() {
    use seednode_storage::catalog::MatchedBy;
    use seednode_storage::{CreateOptions, TorrentVersion, create_torrent};
    use sha2::{Digest as _, Sha256};

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("content");
    fs::create_dir(&data).unwrap();
    let a: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
    let b: Vec<u8> = (0..5_000u32).map(|i| (i % 13) as u8).collect();
    fs::write(data.join("a.bin"), &a).unwrap();
    fs::write(data.join("b.bin"), &b).unwrap();
    let opts = CreateOptions {
        version: TorrentVersion::Hybrid,
        ..CreateOptions::default()
    };
    let meta = create_torrent(&data, &opts, &|_| {}).unwrap();
    let bytes = meta.to_bytes();
    let meta = Metainfo::from_bytes(&bytes).unwrap();
    let mut catalog = Catalog::open(&db_path(&dir)).unwrap();
    let torrent = NewTorrent::from_metainfo(bytes, &meta, data.clone(), 1_700_000_000).unwrap();
    let v2 = meta.v2.as_ref().unwrap();
    let root_a = v2.info.files.iter().find(|f| f.path == ["a.bin"]).unwrap();
    let root_a = root_a.pieces_root.unwrap();
    let id = catalog.add_torrent(&torrent).unwrap();
    // The hybrid's v1 view has a padding file after a.bin: b.bin's index is whatever the
    // torrent says, found by path.
    let files = catalog.files(id).unwrap();
    let index_of = |name: &str| files.iter().find(|f| f.path == name).unwrap().index;
    let sha_a: [u8; 32] = Sha256::digest(&a).into();
    catalog
        .record_file_checks(
            id,
            &[FileCheck {
                index: index_of("a.bin"),
                mtime_ns: Some(1),
                sha256: Some(sha_a),
            }],
        )
        .unwrap();

    let v1 = meta.info_hash.0;
    let found = catalog.lookup(&v1).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].matched_by, MatchedBy::InfoHashV1);
    assert_eq!(found[0].torrent.id, id);
    assert!(found[0].file.is_none());

    let v2_hash = meta.info_hash_v2().unwrap().0;
    let found = catalog.lookup(&v2_hash).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].matched_by, MatchedBy::InfoHashV2);
    let found = catalog.lookup(&v2_hash[..20]).unwrap();
    assert_eq!(found[0].matched_by, MatchedBy::SwarmHashV2);

    let found = catalog.lookup(&sha_a).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].matched_by, MatchedBy::Sha256);
    let file = found[0].file.as_ref().unwrap();
    assert_eq!((file.path.as_str(), file.length), ("a.bin", 70_000));
    assert_eq!(file.pieces_root, Some(root_a));

    let found = catalog.lookup(&root_a).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].matched_by, MatchedBy::PiecesRoot);
    assert_eq!(found[0].file.as_ref().unwrap().sha256, Some(sha_a));

    // b.bin's SHA-256 was never recorded, but b.bin fits in one 16 KiB block, so its BEP 52
    // root is the SHA-256 of its bytes: found by root, not by SHA-256.
    let sha_b: [u8; 32] = Sha256::digest(&b).into();
    let found = catalog.lookup(&sha_b).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].matched_by, MatchedBy::PiecesRoot);
    assert_eq!(found[0].file.as_ref().unwrap().sha256, None);
    assert!(catalog.lookup(&[7u8; 20]).unwrap().is_empty());
    assert!(matches!(
        catalog.lookup(&[0u8; 5]),
        Err(CatalogError::Invalid { .. })
    ));
}
