//! Verification on real files: good data, flipped bytes, truncation, thread counts.

mod common;

use std::fs;
use std::os::unix::fs::FileExt;
use std::sync::Mutex;

use common::{multi_file_info, single_file_info};
use seednode_storage::{Storage, StorageError, verify};

fn no_progress(_: u64) {}

/// Flips one bit of the byte at `offset` in `path`.
fn flip_byte(path: &std::path::Path, offset: u64) {
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut byte = [0];
    file.read_exact_at(&mut byte, offset).unwrap();
    byte[0] ^= 0x01;
    file.write_all_at(&byte, offset).unwrap();
}

#[test]
fn intact_data_verifies_with_any_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    let (info, _) = single_file_info(&path, 40 * 1024 * 1024 + 1, 1 << 20);
    let storage = Storage::open(&path, &info).unwrap();
    for threads in [0, 1, 2, 5] {
        assert_eq!(
            verify(&storage, &info, threads, &no_progress).unwrap(),
            vec![true; 41]
        );
    }
}

#[test]
fn flipped_byte_fails_only_its_piece() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("t");
    let files = [("a", 10_000), ("b", 0), ("c/d", 50_000), ("e", 7)];
    let (info, _) = multi_file_info(&root, &files, 16_384);
    let storage = Storage::open(&root, &info).unwrap();
    assert_eq!(
        verify(&storage, &info, 2, &no_progress).unwrap(),
        vec![true; 4]
    );
    // Torrent byte 10_000 + 30_000 = 40_000 lies in piece 2 (32768..49152).
    flip_byte(&root.join("c/d"), 30_000);
    for threads in [1, 2] {
        let good = verify(&storage, &info, threads, &no_progress).unwrap();
        assert_eq!(good, [true, true, false, true], "threads = {threads}");
    }
    // The very last byte of the torrent: the short last piece.
    flip_byte(&root.join("e"), 6);
    let good = verify(&storage, &info, 2, &no_progress).unwrap();
    assert_eq!(good, [true, true, false, false]);
}

#[test]
fn truncated_file_is_an_error_not_bad_pieces() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    let (info, _) = single_file_info(&path, 100_000, 16_384);
    let storage = Storage::open(&path, &info).unwrap();
    // Truncated before its first use: the lazy open sees the wrong length.
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(50_000)
        .unwrap();
    let err = verify(&storage, &info, 1, &no_progress).unwrap_err();
    assert!(matches!(
        err,
        StorageError::WrongLength {
            expected: 100_000,
            actual: 50_000,
            ..
        }
    ));
    // Truncated while its handle is cached: the read hits end of file.
    fs::write(&path, common::content(42, 100_000)).unwrap();
    let storage = Storage::open(&path, &info).unwrap();
    assert_eq!(
        verify(&storage, &info, 1, &no_progress).unwrap(),
        vec![true; 7]
    );
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(50_000)
        .unwrap();
    let err = verify(&storage, &info, 1, &no_progress).unwrap_err();
    assert!(
        matches!(
            err,
            StorageError::Truncated {
                offset: 50_000,
                expected: 100_000,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn progress_reaches_total_length() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    let len = 48 * 1024 * 1024 + 3;
    let (info, _) = single_file_info(&path, len, 1 << 18);
    let storage = Storage::open(&path, &info).unwrap();
    let seen = Mutex::new(Vec::new());
    verify(&storage, &info, 2, &|hashed| {
        seen.lock().unwrap().push(hashed)
    })
    .unwrap();
    let seen = seen.into_inner().unwrap();
    assert!(seen.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(seen.last().copied(), Some(len as u64));
}

#[test]
fn rejects_info_of_another_torrent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    let (info, _) = single_file_info(&path, 100_000, 16_384);
    let storage = Storage::open(&path, &info).unwrap();
    let mut other = info.clone();
    other.piece_length = 32_768;
    assert!(matches!(
        verify(&storage, &other, 1, &no_progress).unwrap_err(),
        StorageError::InfoMismatch {
            what: "piece length"
        }
    ));
    let mut other = info.clone();
    other.pieces.pop();
    assert!(matches!(
        verify(&storage, &other, 1, &no_progress).unwrap_err(),
        StorageError::InfoMismatch {
            what: "piece count"
        }
    ));
    let mut other = info;
    other.files[0].length = 99_999;
    assert!(matches!(
        verify(&storage, &other, 1, &no_progress).unwrap_err(),
        StorageError::InfoMismatch {
            what: "file lengths"
        }
    ));
}
