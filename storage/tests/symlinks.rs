//! Symbolic links below a torrent's input directory ([`SymlinkPolicy`]): followed when they
//! resolve beneath it (as mktorrent lists them, under the link's own path), skipped and reported
//! otherwise; and a torrent made by following them is served through the same links, never
//! outside the directory.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use seednode_storage::{
    CreateOptions, SkipReason, Storage, StorageError, SymlinkPolicy, create_torrent, survey, verify,
};

fn no_progress(_: u64) {}

/// `t/` with `real/a` (3 bytes), `real/sub/b` (5 bytes), and links: `file-link` -> `real/a`,
/// `dir-link` -> `real/sub`, `up` -> `..` of `real` (a loop), `out` -> `../outside/x`,
/// `abs` -> the absolute path of `real/a`, `broken` -> `nowhere`.
fn tree(dir: &Path) -> std::path::PathBuf {
    let root = dir.join("t");
    fs::create_dir_all(root.join("real/sub")).unwrap();
    fs::create_dir_all(dir.join("outside")).unwrap();
    fs::write(root.join("real/a"), b"aaa").unwrap();
    fs::write(root.join("real/sub/b"), b"bbbbb").unwrap();
    fs::write(dir.join("outside/x"), b"secret").unwrap();
    symlink("real/a", root.join("file-link")).unwrap();
    symlink("real/sub", root.join("dir-link")).unwrap();
    symlink("..", root.join("real/up")).unwrap();
    symlink("../outside/x", root.join("out")).unwrap();
    symlink(root.join("real/a"), root.join("abs")).unwrap();
    symlink("nowhere", root.join("broken")).unwrap();
    root
}

fn paths(meta: &seednode_wire::metainfo::Metainfo) -> Vec<String> {
    meta.info.files.iter().map(|f| f.path.join("/")).collect()
}

#[test]
fn follows_links_within_the_root_and_reports_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let root = tree(dir.path());
    let opts = CreateOptions {
        symlinks: SymlinkPolicy::FollowWithinRoot,
        threads: 1,
        ..CreateOptions::default()
    };
    let meta = create_torrent(&root, &opts, &no_progress).unwrap();
    assert_eq!(
        paths(&meta),
        ["dir-link/b", "file-link", "real/a", "real/sub/b"]
    );
    let found = survey(&root, SymlinkPolicy::FollowWithinRoot).unwrap();
    assert_eq!(found.files, 4);
    assert_eq!(found.total_length, 3 + 5 + 3 + 5);
    let mut skipped: Vec<(String, SkipReason)> = found
        .skipped_links
        .iter()
        .map(|s| {
            let rel = s.path.strip_prefix(&root).unwrap();
            (rel.display().to_string(), s.reason)
        })
        .collect();
    skipped.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        skipped,
        [
            ("abs".to_owned(), SkipReason::LeavesRoot),
            ("broken".to_owned(), SkipReason::Broken),
            ("out".to_owned(), SkipReason::LeavesRoot),
            ("real/up".to_owned(), SkipReason::Loop),
        ]
    );

    // Served through the same links, and verified.
    let storage = Storage::open_with(&root, &meta.info, SymlinkPolicy::FollowWithinRoot).unwrap();
    let have = verify(&storage, &meta.info, 1, &no_progress).unwrap();
    assert!(have.iter().all(|h| *h));
    // Without following, the same torrent does not open: the links are refused.
    assert!(matches!(
        Storage::open(&root, &meta.info),
        Err(StorageError::SymlinkInPath { .. })
    ));
}

#[test]
fn skip_policy_lists_no_link_and_reports_each() {
    let dir = tempfile::tempdir().unwrap();
    let root = tree(dir.path());
    let opts = CreateOptions {
        threads: 1,
        ..CreateOptions::default()
    };
    let meta = create_torrent(&root, &opts, &no_progress).unwrap();
    assert_eq!(paths(&meta), ["real/a", "real/sub/b"]);
    let found = survey(&root, SymlinkPolicy::Refuse).unwrap();
    assert_eq!(found.skipped_links.len(), 6);
    assert!(
        found
            .skipped_links
            .iter()
            .all(|s| s.reason == SkipReason::NotFollowed)
    );
}

#[test]
fn a_followed_link_changed_to_point_outside_is_refused_when_served() {
    let dir = tempfile::tempdir().unwrap();
    let root = tree(dir.path());
    let opts = CreateOptions {
        symlinks: SymlinkPolicy::FollowWithinRoot,
        threads: 1,
        ..CreateOptions::default()
    };
    let meta = create_torrent(&root, &opts, &no_progress).unwrap();
    fs::remove_file(root.join("file-link")).unwrap();
    // Same length as real/a's 3 bytes would not matter: the open itself is refused.
    symlink("../outside/x", root.join("file-link")).unwrap();
    let err = Storage::open_with(&root, &meta.info, SymlinkPolicy::FollowWithinRoot).unwrap_err();
    assert!(matches!(err, StorageError::SymlinkInPath { .. }), "{err:?}");
}

#[test]
fn source_changes_the_info_hash_and_is_in_the_info_dictionary() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f");
    fs::write(&file, vec![7u8; 40_000]).unwrap();
    let plain = create_torrent(&file, &CreateOptions::default(), &no_progress).unwrap();
    for version in [
        seednode_storage::TorrentVersion::V1,
        seednode_storage::TorrentVersion::Hybrid,
    ] {
        let opts = CreateOptions {
            source: Some("TRK".to_owned()),
            version,
            ..CreateOptions::default()
        };
        let with = create_torrent(&file, &opts, &no_progress).unwrap();
        assert_ne!(with.info_hash, plain.info_hash);
        assert!(
            with.info_bytes.ends_with(b"6:source3:TRKe"),
            "{:?}",
            String::from_utf8_lossy(&with.info_bytes)
        );
        assert_eq!(with.info.pieces, plain.info.pieces);
    }
}
