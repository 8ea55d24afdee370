//! SECURITY §0 rule 8 at every open: once a file's cached handle is gone, a directory or file
//! of the torrent swapped for a symbolic link to somewhere outside the torrent's root must fail
//! the next read (block read, `sendfile` handle, verification, v2 block hashes), never serve
//! the outside bytes.

mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use common::{multi_file_info, single_file_info, write_file};
use seednode_storage::limits::MAX_OPEN_FILES_PER_TORRENT;
use seednode_storage::{
    CreateOptions, Storage, StorageError, TorrentVersion, block_hashes_v2, create_torrent, verify,
    verify_v2,
};
use seednode_wire::limits::MAX_BLOCK_LEN;
use seednode_wire::merkle::LeafSpan;
use seednode_wire::metainfo_v2::PieceMap;

const BLOCK: u32 = MAX_BLOCK_LEN;

/// Bytes of the impostor files outside the root: easy to tell from the torrent's data.
const OUTSIDE_BYTE: u8 = 0x42;

/// Creates `dir/<name>` holding a file `file` of `len` bytes of [`OUTSIDE_BYTE`].
fn outside_dir(dir: &Path, name: &str, file: &str, len: usize) -> std::path::PathBuf {
    let outside = dir.join(name);
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join(file), vec![OUTSIDE_BYTE; len]).unwrap();
    outside
}

/// True for the error a read through a swapped-in link must give.
fn is_link_refusal(err: &StorageError) -> bool {
    matches!(err, StorageError::SymlinkInPath { .. })
}

/// Asserts that `result` failed because of a link (and so returned no outside bytes).
#[track_caller]
fn assert_refused<T: std::fmt::Debug>(result: Result<T, StorageError>, what: &str) {
    match result {
        Err(err) => assert!(is_link_refusal(&err), "{what}: wrong error {err}"),
        Ok(got) => panic!("{what}: succeeded through a link outside the root: {got:?}"),
    }
}

/// How many bytes of `buf` are [`OUTSIDE_BYTE`]: what a failed test read from outside.
fn outside_bytes(buf: &[u8]) -> String {
    let n = buf.iter().filter(|b| **b == OUTSIDE_BYTE).count();
    format!("{n} of {} bytes read are the outside file's", buf.len())
}

#[test]
fn directory_swapped_for_a_link_after_eviction_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("t");
    // "sub/f" first (file 0, torrent offset 0), then more files than the handle cache holds.
    let names: Vec<String> = std::iter::once("sub/f".to_owned())
        .chain((0..MAX_OPEN_FILES_PER_TORRENT + 6).map(|i| format!("g{i:03}")))
        .collect();
    let files: Vec<(&str, usize)> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), if i == 0 { 20_000 } else { 100 }))
        .collect();
    let (info, data) = multi_file_info(&root, &files, 16_384);
    let storage = Storage::open(&root, &info).unwrap();
    let mut buf = vec![0; BLOCK as usize];
    storage.read_block(0, 0, BLOCK, &mut buf).unwrap();
    assert_eq!(buf, data[..BLOCK as usize]);
    // Reading one byte of every other file evicts the handle of "sub/f" (least recently used).
    for index in 1..storage.file_count() {
        let segment = storage
            .segments(20_000 + (index as u64 - 1) * 100, 1)
            .unwrap();
        for s in segment {
            storage.file(s.file_index).unwrap();
        }
    }
    // "sub" becomes a link to a directory outside the root holding an "f" of the same length.
    fs::rename(root.join("sub"), dir.path().join("moved")).unwrap();
    let outside = outside_dir(dir.path(), "outside", "f", 20_000);
    symlink(&outside, root.join("sub")).unwrap();

    // The sendfile path (the engine's default): the segment's file handle.
    let segment = storage.block_segments(0, 0, BLOCK).unwrap().next().unwrap();
    assert_refused(
        storage.file(segment.file_index).map(drop),
        "file (sendfile)",
    );
    assert_refused(
        storage
            .read_block(0, 0, BLOCK, &mut buf)
            .map(|()| outside_bytes(&buf)),
        "read_block",
    );
    let mut piece = vec![0; 16_384];
    assert_refused(
        storage
            .read_piece(0, &mut piece)
            .map(|()| outside_bytes(&piece)),
        "read_piece",
    );
    assert_refused(verify(&storage, &info, 1, &|_| {}).map(drop), "verify");
    // The error names the link.
    let err = storage.file(0).unwrap_err();
    assert!(
        matches!(err, StorageError::SymlinkInPath { ref path } if path.ends_with("t/sub")),
        "{err}"
    );
}

#[test]
fn file_swapped_for_a_link_after_eviction_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("t");
    let (info, data) = multi_file_info(&root, &[("a", 1_000), ("sub/b", 30_000)], 16_384);
    let storage = Storage::open(&root, &info).unwrap();
    let mut buf = vec![0; 1_000];
    storage.read_block(0, 1_000, 1_000, &mut buf).unwrap();
    assert_eq!(buf, data[1_000..2_000]);
    storage.close_files();
    fs::rename(root.join("sub/b"), dir.path().join("b")).unwrap();
    let outside = outside_dir(dir.path(), "outside", "b", 30_000);
    symlink(outside.join("b"), root.join("sub/b")).unwrap();
    assert_refused(
        storage
            .read_block(0, 1_000, 1_000, &mut buf)
            .map(|()| outside_bytes(&buf)),
        "read_block",
    );
    assert_refused(storage.file(1).map(drop), "file (sendfile)");
    assert_refused(verify(&storage, &info, 1, &|_| {}).map(drop), "verify");
}

#[test]
fn single_file_swapped_for_a_link_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("one.bin");
    let (info, data) = single_file_info(&path, 40_000, 16_384);
    let storage = Storage::open(&path, &info).unwrap();
    let mut buf = vec![0; BLOCK as usize];
    storage.read_block(1, 0, BLOCK, &mut buf).unwrap();
    assert_eq!(buf, data[16_384..16_384 + BLOCK as usize]);
    storage.close_files();
    fs::rename(&path, dir.path().join("moved")).unwrap();
    let outside = outside_dir(dir.path(), "outside", "one.bin", 40_000);
    symlink(outside.join("one.bin"), &path).unwrap();
    assert_refused(
        storage
            .read_block(1, 0, BLOCK, &mut buf)
            .map(|()| outside_bytes(&buf)),
        "read_block",
    );
    assert_refused(storage.file(0).map(drop), "file (sendfile)");
    assert_refused(verify(&storage, &info, 1, &|_| {}).map(drop), "verify");
}

#[test]
fn v2_block_hashes_and_verification_refuse_a_swapped_directory() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("t");
    write_file(&root, "sub/f", 7, 40_000);
    write_file(&root, "z", 8, 1_000);
    let opts = CreateOptions {
        version: TorrentVersion::V2,
        piece_length: Some(16_384),
        threads: 1,
        ..CreateOptions::default()
    };
    let meta = create_torrent(&root, &opts, &|_| {}).unwrap();
    let v2 = meta.v2.as_ref().unwrap();
    let map = PieceMap::new(&v2.info);
    let storage = Storage::open(&root, &meta.info).unwrap();
    let file = v2
        .info
        .files
        .iter()
        .position(|f| f.path == ["sub", "f"])
        .unwrap();
    let span = LeafSpan {
        first_block: 0,
        blocks: 1,
    };
    block_hashes_v2(&storage, &v2.info, &map, file, span).unwrap();
    storage.close_files();
    fs::rename(root.join("sub"), dir.path().join("moved")).unwrap();
    let outside = outside_dir(dir.path(), "outside", "f", 40_000);
    symlink(&outside, root.join("sub")).unwrap();
    assert_refused(
        block_hashes_v2(&storage, &v2.info, &map, file, span).map(drop),
        "block_hashes_v2",
    );
    assert_refused(verify_v2(&storage, v2, 1, &|_| {}).map(drop), "verify_v2");
}

#[test]
fn a_file_where_a_directory_should_be_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("t");
    let (info, _) = multi_file_info(&root, &[("sub/b", 1_000)], 16_384);
    let storage = Storage::open(&root, &info).unwrap();
    fs::remove_dir_all(root.join("sub")).unwrap();
    fs::write(root.join("sub"), b"x").unwrap();
    let err = storage.read_block(0, 0, 100, &mut [0; 100]).unwrap_err();
    assert!(
        matches!(err, StorageError::NotRegularFile { ref path } if path.ends_with("t/sub")),
        "{err}"
    );
}

#[test]
fn the_root_may_be_a_link_and_is_resolved_once() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real");
    let (info, data) = multi_file_info(&real, &[("a", 1_000), ("sub/b", 2_000)], 16_384);
    let alias = dir.path().join("alias");
    symlink(&real, &alias).unwrap();
    let storage = Storage::open(&alias, &info).unwrap();
    // Pointing the operator's link elsewhere later changes nothing: the root was opened once.
    let other = dir.path().join("other");
    multi_file_info(&other, &[("a", 1_000), ("sub/b", 2_000)], 16_384);
    fs::write(other.join("a"), vec![OUTSIDE_BYTE; 1_000]).unwrap();
    fs::remove_file(&alias).unwrap();
    symlink(&other, &alias).unwrap();
    let mut buf = vec![0; 3_000];
    storage.read_piece(0, &mut buf).unwrap();
    assert_eq!(buf, data);
}
