//! `Storage` on real files: block reads across file boundaries, request validation, the checks
//! at open, missing data (SECURITY S5), symbolic links (rule 8), padding files, the handle cache.

mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::sync::Arc;

use common::{multi_file_info, single_file_info};
use seednode_storage::limits::MAX_OPEN_FILES_PER_TORRENT;
use seednode_storage::{PathError, Segment, Storage, StorageError};
use seednode_wire::limits::MAX_BLOCK_LEN;
use seednode_wire::metainfo::FileEntry;

const BLOCK: u32 = MAX_BLOCK_LEN;

/// Reads every block of every piece, and every whole piece, and compares with `data`.
fn assert_reads_everything(storage: &Storage, data: &[u8]) {
    let piece_length = storage.piece_length() as usize;
    for piece in 0..storage.piece_count() {
        let piece_len = storage.piece_len(piece).unwrap();
        let start = piece as usize * piece_length;
        let mut whole = vec![0; piece_len as usize];
        storage.read_piece(piece, &mut whole).unwrap();
        assert_eq!(
            whole,
            data[start..start + piece_len as usize],
            "piece {piece}"
        );
        let mut begin = 0;
        while begin < piece_len {
            let length = BLOCK.min(piece_len - begin);
            let mut buf = vec![0xAA; length as usize];
            storage.read_block(piece, begin, length, &mut buf).unwrap();
            let at = start + begin as usize;
            assert_eq!(
                buf,
                data[at..at + length as usize],
                "piece {piece} begin {begin}"
            );
            begin += length;
        }
    }
}

#[test]
fn reads_blocks_of_a_single_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("file.bin");
    let (info, data) = single_file_info(&path, 5 * 65_536 + 12_345, 65_536);
    let storage = Storage::open(&path, &info).unwrap();
    assert_eq!(storage.piece_count(), 6);
    assert_eq!(storage.piece_len(5), Some(12_345));
    assert_eq!(storage.piece_len(6), None);
    assert_eq!(storage.total_length(), data.len() as u64);
    assert_eq!(storage.file_path(0), Some(path.as_path()));
    assert_reads_everything(&storage, &data);
}

#[test]
fn reads_blocks_spanning_files() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("t");
    let files = [
        ("a", 5_000),
        ("e1", 0),
        ("sub/b", 30_000),
        ("sub/e2", 0),
        ("c", 1),
        ("d", 40_000),
    ];
    let (info, data) = multi_file_info(&root, &files, 16_384);
    let storage = Storage::open(&root, &info).unwrap();
    assert_eq!(storage.file_count(), 6);
    assert_reads_everything(&storage, &data);
    // Unaligned small blocks straddling every boundary.
    for piece in 0..storage.piece_count() {
        let piece_len = storage.piece_len(piece).unwrap();
        for begin in (0..piece_len).step_by(4_999) {
            let length = 7_000.min(piece_len - begin);
            let mut buf = vec![0; length as usize];
            storage.read_block(piece, begin, length, &mut buf).unwrap();
            let at = piece as usize * 16_384 + begin as usize;
            assert_eq!(buf, data[at..at + length as usize]);
        }
    }
}

#[test]
fn segments_name_each_file_part_and_skip_empty_files() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("t");
    let files = [
        ("a", 5_000),
        ("e1", 0),
        ("b", 30_000),
        ("e2", 0),
        ("c", 1),
        ("d", 40_000),
    ];
    let (info, _) = multi_file_info(&root, &files, 16_384);
    let storage = Storage::open(&root, &info).unwrap();
    let seg = |file_index, file_offset, len| Segment {
        file_index,
        file_offset,
        len,
        padding: false,
    };
    let all: Vec<Segment> = storage.segments(4_000, 31_002).unwrap().collect();
    assert_eq!(
        all,
        [
            seg(0, 4_000, 1_000),
            seg(2, 0, 30_000),
            seg(4, 0, 1),
            seg(5, 0, 1)
        ]
    );
    // Piece 2 = bytes 32768..49152: the end of "b", all of "c", the start of "d".
    let block: Vec<Segment> = storage.block_segments(2, 0, BLOCK).unwrap().collect();
    assert_eq!(
        block,
        [seg(2, 27_768, 2_232), seg(4, 0, 1), seg(5, 0, 14_151)]
    );
    assert_eq!(storage.segments(0, 0).unwrap().count(), 0);
    assert!(matches!(
        storage.segments(75_000, 2).unwrap_err(),
        StorageError::RangeOutOfBounds {
            offset: 75_000,
            len: 2,
            total: 75_001
        }
    ));
    assert!(matches!(
        storage.segments(u64::MAX, 2).unwrap_err(),
        StorageError::RangeOutOfBounds { .. }
    ));
    // The handle behind a segment, for sendfile.
    assert_eq!(storage.file(5).unwrap().metadata().unwrap().len(), 40_000);
    assert!(matches!(
        storage.file(1).unwrap_err(),
        StorageError::NothingOnDisk { index: 1 }
    ));
    assert!(matches!(
        storage.file(6).unwrap_err(),
        StorageError::NoSuchFile { index: 6, count: 6 }
    ));
}

#[test]
fn rejects_bad_block_requests() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    let (info, _) = single_file_info(&path, 2 * 65_536 + 100, 65_536);
    let storage = Storage::open(&path, &info).unwrap();
    let mut buf = vec![0; BLOCK as usize + 1];
    let mut read = |piece, begin, length: u32| {
        storage
            .read_block(piece, begin, length, &mut buf[..length as usize])
            .unwrap_err()
    };
    assert!(matches!(
        read(3, 0, 1),
        StorageError::PieceOutOfRange { piece: 3, count: 3 }
    ));
    assert!(matches!(
        read(u32::MAX, 0, 1),
        StorageError::PieceOutOfRange { .. }
    ));
    assert!(matches!(
        read(0, 0, 0),
        StorageError::BadBlockLength {
            length: 0,
            max: BLOCK
        }
    ));
    assert!(matches!(
        read(0, 0, BLOCK + 1),
        StorageError::BadBlockLength { .. }
    ));
    assert!(matches!(
        read(0, 65_536 - 100, 101),
        StorageError::BlockOutOfPiece {
            piece: 0,
            begin: 65_436,
            length: 101,
            piece_len: 65_536
        }
    ));
    assert!(matches!(
        read(2, 1, 100),
        StorageError::BlockOutOfPiece { piece_len: 100, .. }
    ));
    assert!(matches!(
        read(0, u32::MAX, 16),
        StorageError::BlockOutOfPiece { .. }
    ));
    assert!(matches!(
        storage.read_block(0, 0, 100, &mut [0; 99]).unwrap_err(),
        StorageError::BufferLength {
            expected: 100,
            got: 99
        }
    ));
    assert!(matches!(
        storage.read_piece(0, &mut [0; 10]).unwrap_err(),
        StorageError::BufferLength {
            expected: 65_536,
            got: 10
        }
    ));
    assert!(matches!(
        storage.read_piece(9, &mut []).unwrap_err(),
        StorageError::PieceOutOfRange { piece: 9, count: 3 }
    ));
}

#[test]
fn open_fails_when_a_file_is_missing_short_or_long() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("t");
    let (info, _) = multi_file_info(&root, &[("a", 1_000), ("b/c", 2_000)], 16_384);
    fs::remove_file(root.join("b/c")).unwrap();
    let err = Storage::open(&root, &info).unwrap_err();
    assert!(
        matches!(err, StorageError::FileMissing { ref path } if path.ends_with("b/c")),
        "{err}"
    );
    fs::write(root.join("b/c"), [0; 1_999]).unwrap();
    let err = Storage::open(&root, &info).unwrap_err();
    assert!(matches!(
        err,
        StorageError::WrongLength {
            expected: 2_000,
            actual: 1_999,
            ..
        }
    ));
    fs::write(root.join("b/c"), [0; 2_001]).unwrap();
    let err = Storage::open(&root, &info).unwrap_err();
    assert!(matches!(
        err,
        StorageError::WrongLength {
            expected: 2_000,
            actual: 2_001,
            ..
        }
    ));
    fs::remove_file(root.join("b/c")).unwrap();
    fs::create_dir(root.join("b/c")).unwrap();
    let err = Storage::open(&root, &info).unwrap_err();
    assert!(matches!(err, StorageError::NotRegularFile { .. }), "{err}");
    let err = Storage::open(&dir.path().join("nope"), &info).unwrap_err();
    assert!(matches!(err, StorageError::FileMissing { .. }), "{err}");
    let err = Storage::open(&root.join("a"), &info).unwrap_err();
    assert!(matches!(err, StorageError::NotRegularFile { .. }), "{err}");
}

#[test]
fn zero_length_files_need_nothing_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("t");
    let (info, data) = multi_file_info(&root, &[("e", 0), ("a", 20_000), ("d/e", 0)], 16_384);
    fs::remove_file(root.join("e")).unwrap();
    fs::remove_dir_all(root.join("d")).unwrap();
    let storage = Storage::open(&root, &info).unwrap();
    assert_reads_everything(&storage, &data);
}

#[test]
fn file_truncated_or_deleted_after_open_is_an_error_never_zeros() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("t");
    let (info, _) = multi_file_info(&root, &[("a", 20_000), ("b", 20_000)], 16_384);
    let storage = Storage::open(&root, &info).unwrap();
    let mut buf = vec![0; BLOCK as usize];
    storage.read_block(0, 0, BLOCK, &mut buf).unwrap(); // caches the handle of "a"
    fs::OpenOptions::new()
        .write(true)
        .open(root.join("a"))
        .unwrap()
        .set_len(100)
        .unwrap();
    let err = storage.read_block(0, 0, BLOCK, &mut buf).unwrap_err();
    assert!(
        matches!(err, StorageError::Truncated { offset: 100, expected: 20_000, ref path } if path.ends_with("a")),
        "{err}"
    );
    // "b" was never opened: deleting it fails its first read.
    fs::remove_file(root.join("b")).unwrap();
    let err = storage.read_block(2, 0, 100, &mut buf[..100]).unwrap_err();
    assert!(
        matches!(err, StorageError::FileMissing { ref path } if path.ends_with("b")),
        "{err}"
    );
}

#[test]
fn refuses_symlinks_below_the_data_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("t");
    let (info, _) = multi_file_info(&root, &[("a", 1_000), ("sub/b", 1_000)], 16_384);
    // A file replaced by a link to an identical file outside the root.
    fs::rename(root.join("a"), dir.path().join("outside")).unwrap();
    symlink(dir.path().join("outside"), root.join("a")).unwrap();
    let err = Storage::open(&root, &info).unwrap_err();
    assert!(
        matches!(err, StorageError::SymlinkInPath { ref path } if path.ends_with("t/a")),
        "{err}"
    );
    fs::remove_file(root.join("a")).unwrap();
    fs::rename(dir.path().join("outside"), root.join("a")).unwrap();
    // A directory replaced by a link to an identical directory outside the root.
    fs::rename(root.join("sub"), dir.path().join("elsewhere")).unwrap();
    symlink(dir.path().join("elsewhere"), root.join("sub")).unwrap();
    let err = Storage::open(&root, &info).unwrap_err();
    assert!(
        matches!(err, StorageError::SymlinkInPath { ref path } if path.ends_with("t/sub")),
        "{err}"
    );
    fs::remove_file(root.join("sub")).unwrap();
    fs::rename(dir.path().join("elsewhere"), root.join("sub")).unwrap();
    // A link swapped in after open is refused when the file is first opened (O_NOFOLLOW).
    let storage = Storage::open(&root, &info).unwrap();
    fs::rename(root.join("a"), dir.path().join("outside")).unwrap();
    symlink(dir.path().join("outside"), root.join("a")).unwrap();
    let err = storage.read_block(0, 0, 100, &mut [0; 100]).unwrap_err();
    assert!(matches!(err, StorageError::SymlinkInPath { .. }), "{err}");
}

#[test]
fn the_data_path_itself_may_be_a_symlink() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real");
    let (info, data) = single_file_info(&real, 30_000, 16_384);
    symlink(&real, dir.path().join("alias")).unwrap();
    assert_reads_everything(
        &Storage::open(&dir.path().join("alias"), &info).unwrap(),
        &data,
    );
    let root = dir.path().join("t");
    let (info, data) = multi_file_info(&root, &[("a", 1_000)], 16_384);
    symlink(&root, dir.path().join("t-alias")).unwrap();
    assert_reads_everything(
        &Storage::open(&dir.path().join("t-alias"), &info).unwrap(),
        &data,
    );
}

#[test]
fn rejects_unsafe_paths_in_info() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("t");
    let (mut info, _) = multi_file_info(&root, &[("a", 1_000)], 16_384);
    for bad in [&["..", "a"][..], &["/etc/passwd"], &["x", "."], &[]] {
        info.files[0].path = bad.iter().map(|c| (*c).to_owned()).collect();
        let err = Storage::open(&root, &info).unwrap_err();
        assert!(
            matches!(
                err,
                StorageError::UnsafePath(
                    PathError::UnsafeComponent { .. } | PathError::NoComponents
                )
            ),
            "{bad:?}: {err}"
        );
    }
}

#[test]
fn rejects_inconsistent_geometry() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    let (mut info, _) = single_file_info(&path, 40_000, 16_384);
    info.pieces.pop();
    let err = Storage::open(&path, &info).unwrap_err();
    assert!(matches!(
        err,
        StorageError::BadGeometry {
            pieces: 2,
            total_length: 40_000,
            ..
        }
    ));
    info.pieces.push([0; 20]);
    info.piece_length = 0;
    assert!(matches!(
        Storage::open(&path, &info).unwrap_err(),
        StorageError::BadGeometry { .. }
    ));
    info.piece_length = 16_384;
    info.files[0].path = vec!["f".into()];
    info.files.push(FileEntry {
        path: vec!["x".into()],
        length: u64::MAX,
    });
    info.multi_file = true;
    assert!(matches!(
        Storage::open(&path, &info).unwrap_err(),
        StorageError::LengthOverflow
    ));
}

#[test]
fn padding_files_read_as_zeros() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("t");
    // libtorrent-style: "a" padded to the piece boundary by ".pad/11384".
    let (mut info, mut data) = multi_file_info(&root, &[("a", 5_000), ("b", 20_000)], 16_384);
    info.files.insert(
        1,
        FileEntry {
            path: vec![".pad".into(), "11384".into()],
            length: 11_384,
        },
    );
    data.splice(5_000..5_000, [0; 11_384]);
    info.pieces = common::reference_pieces(&data, 16_384);
    let storage = Storage::open(&root, &info).unwrap();
    assert!(!root.join(".pad").exists());
    assert_reads_everything(&storage, &data);
    let segments: Vec<Segment> = storage.block_segments(0, 4_000, 2_000).unwrap().collect();
    assert!(!segments[0].padding && segments[1].padding);
    assert!(matches!(
        storage.file(1).unwrap_err(),
        StorageError::NothingOnDisk { index: 1 }
    ));
    // A ".pad" path whose name is not its length is an ordinary file, and must exist.
    info.files[1].path[1] = "pad".into();
    assert!(matches!(
        Storage::open(&root, &info).unwrap_err(),
        StorageError::FileMissing { .. }
    ));
}

#[test]
fn more_files_than_the_handle_cache_read_correctly_from_many_threads() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("t");
    let names: Vec<String> = (0..MAX_OPEN_FILES_PER_TORRENT * 2 + 7)
        .map(|i| format!("f{i:03}"))
        .collect();
    let files: Vec<(&str, usize)> = names.iter().map(|n| (n.as_str(), 3_001)).collect();
    let (info, data) = multi_file_info(&root, &files, 16_384);
    let storage = Arc::new(Storage::open(&root, &info).unwrap());
    std::thread::scope(|s| {
        for _ in 0..3 {
            let storage = Arc::clone(&storage);
            let data = &data;
            s.spawn(move || {
                for _ in 0..2 {
                    assert_reads_everything(&storage, data);
                }
            });
        }
    });
}

#[test]
fn storage_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Storage>();
    assert_send_sync::<StorageError>();
}
