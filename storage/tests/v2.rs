//! BEP 52 creation, storage and verification against libtorrent 2.0.8 (python3-libtorrent, run
//! through `tests/support/lt_v2.py`; INTEROP.md): v2-only and hybrid torrents created here load
//! in libtorrent with the same info-hashes, piece count and file layout (padding included), and
//! libtorrent finds every piece of our data good; libtorrent's torrents of the same files have
//! exactly our info-hashes. These tests fail, never skip, when python3-libtorrent is missing.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::write_file;
use seednode_storage::{
    CreateError, CreateOptions, Storage, StorageError, TorrentVersion, block_hashes_v2,
    create_info, create_torrent, verify, verify_v2,
};
use seednode_wire::merkle::{self, MerkleTree};
use seednode_wire::metainfo::Metainfo;
use seednode_wire::metainfo_v2::PieceMap;
use seednode_wire::peer::hashes::HashRequest;

const PYTHON: &str = "/usr/bin/python3";

/// A tree with files of one block, several pieces, none, a file next to a directory of the same
/// stem (`x.txt` and `x/`), and two files needing the same padding length.
const TREE: &[(&str, usize)] = &[
    ("a.bin", 50_000),
    ("b.bin", 16_384),
    ("empty", 0),
    ("sub/c.txt", 100),
    ("sub/d.bin", 200_000),
    ("sub/e.bin", 82_768),
    ("x.txt", 10),
    ("x/y", 20_000),
];

fn tree(dir: &Path) -> PathBuf {
    let root = dir.join("My Tree");
    for (i, (rel, len)) in TREE.iter().enumerate() {
        write_file(&root, rel, 500 + i as u64, *len);
    }
    root
}

fn single(dir: &Path) -> PathBuf {
    write_file(dir, "single.bin", 77, 70_000);
    dir.join("single.bin")
}

fn create(path: &Path, version: TorrentVersion, piece_length: u32) -> Metainfo {
    let opts = CreateOptions {
        version,
        piece_length: Some(piece_length),
        threads: 2,
        trackers: vec![vec!["http://127.0.0.1:1/announce".into()]],
        ..CreateOptions::default()
    };
    create_torrent(path, &opts, &|_| {}).unwrap()
}

/// A file row as libtorrent prints it: (path, size, offset, padding).
type FileRow = (String, u64, u64, bool);

/// Runs `lt_v2.py`; returns its `key value` lines and `file` rows.
fn lt(args: &[&str]) -> (Vec<(String, String)>, Vec<FileRow>) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/lt_v2.py");
    let out = Command::new(PYTHON)
        .arg(script)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {PYTHON} ({e}): install python3-libtorrent"));
    assert!(
        out.status.success(),
        "lt_v2.py {args:?} failed (is python3-libtorrent installed? INTEROP.md): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut keys = Vec::new();
    let mut files = Vec::new();
    for line in text.lines() {
        let cols: Vec<&str> = line.split('\t').collect();
        if cols[0] == "file" {
            files.push((
                cols[1].to_owned(),
                cols[2].parse().unwrap(),
                cols[3].parse().unwrap(),
                cols[4] == "1",
            ));
        } else {
            keys.push((cols[0].to_owned(), cols[1].to_owned()));
        }
    }
    (keys, files)
}

fn key<'a>(keys: &'a [(String, String)], name: &str) -> &'a str {
    keys.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {name} in {keys:?}"))
}

fn write_torrent(dir: &Path, name: &str, m: &Metainfo) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, m.to_bytes()).unwrap();
    path
}

/// Our piece-space layout as libtorrent prints it: (path, size, offset, padding).
fn our_layout(m: &Metainfo) -> Vec<FileRow> {
    let mut offset = 0;
    m.info
        .files
        .iter()
        .map(|f| {
            let path = if f.path.is_empty() {
                m.info.name.clone()
            } else {
                format!("{}/{}", m.info.name, f.path.join("/"))
            };
            let pad =
                matches!(f.path.as_slice(), [d, n] if d == ".pad" && *n == f.length.to_string());
            let row = (path, f.length, offset, pad);
            offset += f.length;
            row
        })
        .collect()
}

/// The inputs and piece lengths every interop test runs over.
fn cases(dir: &Path) -> Vec<(PathBuf, u32)> {
    let t = tree(dir);
    let s = single(dir);
    vec![(t.clone(), 16_384), (t, 65_536), (s, 16_384)]
}

#[test]
fn libtorrent_loads_ours_with_the_same_hashes_and_layout() {
    let dir = tempfile::tempdir().unwrap();
    for (path, piece_length) in cases(dir.path()) {
        for version in [TorrentVersion::V2, TorrentVersion::Hybrid] {
            let m = create(&path, version, piece_length);
            let v2 = m.v2.as_ref().unwrap();
            let file = write_torrent(dir.path(), "ours.torrent", &m);
            let (keys, files) = lt(&["info", file.to_str().unwrap()]);
            let what = format!("{version:?} {} {piece_length}", path.display());
            assert_eq!(key(&keys, "v2"), v2.info_hash.to_hex(), "{what}");
            if version == TorrentVersion::Hybrid {
                assert!(v2.hybrid);
                assert_eq!(key(&keys, "v1"), m.info_hash.to_hex(), "{what}");
            } else {
                assert_eq!(key(&keys, "v1"), "none", "{what}");
                assert_eq!(m.info_hash, v2.info_hash.truncated());
            }
            assert_eq!(key(&keys, "piece_length"), piece_length.to_string());
            assert_eq!(
                key(&keys, "num_pieces"),
                m.info.piece_count().to_string(),
                "{what}"
            );
            let last = m.info.piece_len(m.info.piece_count() - 1).unwrap();
            assert_eq!(key(&keys, "last_piece_size"), last.to_string(), "{what}");
            assert_eq!(files, our_layout(&m), "{what}");
        }
    }
}

#[test]
fn libtorrent_verifies_our_data() {
    let dir = tempfile::tempdir().unwrap();
    for (path, piece_length) in cases(dir.path()) {
        for version in [TorrentVersion::V2, TorrentVersion::Hybrid] {
            let m = create(&path, version, piece_length);
            let file = write_torrent(dir.path(), "ours.torrent", &m);
            let save_path = path.parent().unwrap().to_str().unwrap();
            let (keys, _) = lt(&["check", file.to_str().unwrap(), save_path]);
            let what = format!("{version:?} {} {piece_length}: {keys:?}", path.display());
            assert_eq!(key(&keys, "checked"), "1", "{what}");
            assert_eq!(key(&keys, "have"), key(&keys, "num_pieces"), "{what}");
            assert_eq!(key(&keys, "seeding"), "1", "{what}");
        }
    }
}

#[test]
fn libtorrents_torrents_of_the_same_files_have_our_info_hashes() {
    let dir = tempfile::tempdir().unwrap();
    for (path, piece_length) in cases(dir.path()) {
        for (version, kind) in [
            (TorrentVersion::V2, "v2"),
            (TorrentVersion::Hybrid, "hybrid"),
        ] {
            let ours = create(&path, version, piece_length);
            let out = dir.path().join("theirs.torrent");
            lt(&[
                "create",
                path.to_str().unwrap(),
                &piece_length.to_string(),
                kind,
                out.to_str().unwrap(),
            ]);
            let theirs = Metainfo::from_bytes(&fs::read(&out).unwrap()).unwrap();
            let what = format!("{kind} {} {piece_length}", path.display());
            assert_eq!(theirs.info_bytes, ours.info_bytes, "{what}");
            assert_eq!(theirs.info_hash, ours.info_hash, "{what}");
            assert_eq!(theirs.v2, ours.v2, "{what}");
            assert_eq!(theirs.info, ours.info, "{what}");
        }
    }
}

#[test]
fn storage_serves_and_verifies_the_piece_space() {
    let dir = tempfile::tempdir().unwrap();
    for (path, piece_length) in cases(dir.path()) {
        for version in [TorrentVersion::V2, TorrentVersion::Hybrid] {
            let m = create(&path, version, piece_length);
            let v2 = m.v2.as_ref().unwrap();
            let what = format!("{version:?} {} {piece_length}", path.display());
            let storage = Storage::open(&path, &m.info).unwrap();
            assert_eq!(storage.piece_count(), m.info.piece_count());
            let good = verify_v2(&storage, v2, 2, &|_| {}).unwrap();
            assert!(good.iter().all(|&g| g), "{what}");
            let v1 = verify(&storage, &m.info, 2, &|_| {}).unwrap();
            if version == TorrentVersion::Hybrid {
                assert!(v1.iter().all(|&g| g), "{what}: v1 pieces");
            } else {
                assert!(v1.iter().all(|&g| !g), "{what}: placeholders never verify");
            }
            // Every piece reads back: file bytes, then zeros to the end of the piece.
            let map = PieceMap::new(&v2.info);
            for piece in 0..storage.piece_count() {
                let loc = map.locate(piece).unwrap();
                let len = storage.piece_len(piece).unwrap() as usize;
                let mut buf = vec![0xee; len];
                storage.read_piece(piece, &mut buf).unwrap();
                assert!(
                    buf[loc.data_len as usize..].iter().all(|&b| b == 0),
                    "{what}"
                );
                assert_eq!(
                    v2.verify_piece(&loc, &buf[..loc.data_len as usize]),
                    Some(true)
                );
            }
        }
    }
}

#[test]
fn v2_verification_finds_a_flipped_byte() {
    let dir = tempfile::tempdir().unwrap();
    let root = tree(dir.path());
    let m = create(&root, TorrentVersion::V2, 16_384);
    let v2 = m.v2.as_ref().unwrap();
    let map = PieceMap::new(&v2.info);
    let d = v2
        .info
        .files
        .iter()
        .position(|f| f.path == ["sub", "d.bin"])
        .unwrap();
    let file = root.join("sub/d.bin");
    let mut data = fs::read(&file).unwrap();
    data[40_000] ^= 1; // in piece 2 of d.bin (16 KiB pieces)
    fs::write(&file, &data).unwrap();
    let storage = Storage::open(&root, &m.info).unwrap();
    let good = verify_v2(&storage, v2, 1, &|_| {}).unwrap();
    let bad_piece = map.file_pieces(d).start + 2;
    for (piece, ok) in good.iter().enumerate() {
        assert_eq!(*ok, piece as u32 != bad_piece, "piece {piece}");
    }
    // Without its piece layer, the whole file is checked against its root.
    let mut no_layers = v2.clone();
    no_layers.piece_layers[d] = None;
    let good = verify_v2(&storage, &no_layers, 1, &|_| {}).unwrap();
    for piece in map.file_pieces(d) {
        assert!(!good[piece as usize]);
    }
    assert!(good[map.file_pieces(0).start as usize]);
    // A truncated file is an error, never bad pieces (SECURITY S5).
    fs::write(&file, &data[..1000]).unwrap();
    assert!(matches!(
        verify_v2(&storage, v2, 1, &|_| {}),
        Err(StorageError::WrongLength { .. } | StorageError::Truncated { .. })
    ));
}

#[test]
fn hash_requests_below_the_piece_layer_are_answered_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let root = tree(dir.path());
    let m = create(&root, TorrentVersion::Hybrid, 65_536);
    let v2 = m.v2.as_ref().unwrap();
    let map = PieceMap::new(&v2.info);
    let storage = Storage::open(&root, &m.info).unwrap();
    for (file, f) in v2.info.files.iter().enumerate() {
        let Some(pieces_root) = f.pieces_root else {
            continue;
        };
        let tree = v2.merkle_tree(file).unwrap();
        let data = fs::read(root.join(f.path.join("/"))).unwrap();
        let leaves: Vec<_> = data.chunks(16_384).map(merkle::block_hash).collect();
        let full = MerkleTree::from_leaves(leaves).unwrap();
        if tree.height() == 0 {
            continue; // one block: nothing to ask for
        }
        // The leaf hashes of each piece, with a proof up to the root (libtorrent's request
        // after a failed piece).
        let per_piece = 1u32 << tree.base_height().min(tree.height());
        for index in (0..1u32 << tree.height()).step_by(per_piece as usize) {
            let length = per_piece.min(1 << tree.height());
            let req = HashRequest {
                pieces_root,
                base_layer: 0,
                index,
                length,
                proof_layers: tree.height() - 1,
            };
            let answer = match tree.leaves_needed(&req).unwrap() {
                None => tree.hashes(&req, None).unwrap(),
                Some(span) => {
                    let leaves = block_hashes_v2(&storage, &v2.info, &map, file, span).unwrap();
                    tree.hashes(&req, Some(&leaves)).unwrap()
                }
            };
            assert_eq!(answer, full.hashes(&req, None).unwrap(), "{:?}", f.path);
        }
    }
    // Spans past the file or longer than a piece are refused.
    let d = v2
        .info
        .files
        .iter()
        .position(|f| f.length == 200_000)
        .unwrap();
    let span = |first_block, blocks| merkle::LeafSpan {
        first_block,
        blocks,
    };
    for bad in [span(0, 0), span(0, 5), span(12, 2), span(u64::MAX, 2)] {
        assert!(matches!(
            block_hashes_v2(&storage, &v2.info, &map, d, bad),
            Err(StorageError::RangeOutOfBounds { .. })
        ));
    }
    assert!(matches!(
        block_hashes_v2(&storage, &v2.info, &map, 99, span(0, 1)),
        Err(StorageError::NoSuchFile { .. })
    ));
}

#[test]
fn v1_stays_the_default_and_create_info_refuses_v2() {
    let dir = tempfile::tempdir().unwrap();
    let path = single(dir.path());
    assert_eq!(CreateOptions::default().version, TorrentVersion::V1);
    let m = create_torrent(&path, &CreateOptions::default(), &|_| {}).unwrap();
    assert!(m.v2.is_none());
    let opts = CreateOptions {
        version: TorrentVersion::Hybrid,
        ..CreateOptions::default()
    };
    assert!(matches!(
        create_info(&path, &opts, &|_| {}),
        Err(CreateError::NotV1 {
            version: TorrentVersion::Hybrid
        })
    ));
}

#[test]
fn v2_only_directory_of_one_file_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("one");
    write_file(&root, "f", 1, 100);
    let opts = |version| CreateOptions {
        version,
        ..CreateOptions::default()
    };
    assert!(matches!(
        create_torrent(&root, &opts(TorrentVersion::V2), &|_| {}),
        Err(CreateError::SingleFileDirectory { .. })
    ));
    // A hybrid keeps the directory (its v1 `files` list makes it multi-file).
    let m = create_torrent(&root, &opts(TorrentVersion::Hybrid), &|_| {}).unwrap();
    assert!(m.info.multi_file && m.v2.as_ref().unwrap().info.multi_file);
    // So does a v2 torrent of a directory whose one file is deeper.
    write_file(&dir.path().join("deep"), "sub/f", 1, 100);
    let m = create_torrent(&dir.path().join("deep"), &opts(TorrentVersion::V2), &|_| {}).unwrap();
    assert!(m.info.multi_file);
}

#[test]
fn single_file_v2_serves_a_full_last_piece() {
    let dir = tempfile::tempdir().unwrap();
    let path = single(dir.path());
    let m = create(&path, TorrentVersion::V2, 16_384);
    assert!(!m.info.multi_file);
    assert_eq!(m.info.name, "single.bin");
    assert_eq!(m.info.files.len(), 2, "the file and its tail padding");
    let storage = Storage::open(&path, &m.info).unwrap();
    assert_eq!(storage.piece_len(4), Some(16_384));
    let mut block = vec![0xee; 16_384];
    storage.read_block(4, 0, 16_384, &mut block).unwrap();
    let data = fs::read(&path).unwrap();
    assert_eq!(&block[..70_000 - 65_536], &data[65_536..]);
    assert!(block[70_000 - 65_536..].iter().all(|&b| b == 0));
    // The hybrid of the same file has no padding: its last piece is short (as libtorrent's).
    let h = create(&path, TorrentVersion::Hybrid, 16_384);
    assert_eq!(h.info.files.len(), 1);
    assert_eq!(h.info.piece_len(4), Some(70_000 - 65_536));
}

#[test]
fn hashing_threads_do_not_change_the_torrent() {
    // 40 MiB in two files: enough for two hashing threads (one per 16 MiB).
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("big");
    write_file(&root, "a", 5, 24 * 1024 * 1024 + 1);
    write_file(&root, "b", 6, 16 * 1024 * 1024 - 7);
    for version in [TorrentVersion::V2, TorrentVersion::Hybrid] {
        let make = |threads| {
            let opts = CreateOptions {
                version,
                threads,
                piece_length: Some(256 * 1024),
                ..CreateOptions::default()
            };
            create_torrent(&root, &opts, &|_| {}).unwrap()
        };
        let (one, four) = (make(1), make(4));
        assert_eq!(one.info_bytes, four.info_bytes);
        assert_eq!(one.v2, four.v2);
        let storage = Storage::open(&root, &four.info).unwrap();
        let good = verify_v2(&storage, four.v2.as_ref().unwrap(), 4, &|_| {}).unwrap();
        assert!(good.iter().all(|&g| g));
    }
}
