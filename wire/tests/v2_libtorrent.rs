//! BEP 52 against libtorrent 2.0.8: v2-only and hybrid torrents libtorrent created
//! (`tests/data/make_v2_fixtures.py`) load here with the info-hashes and piece layout libtorrent
//! reports; merkle roots, piece layers and v1 piece hashes recomputed from the same bytes match
//! libtorrent's; re-encoding gives libtorrent's exact `info` bytes.

use sha1::{Digest as _, Sha1};

use seednode_wire::merkle::{self, MerkleTree, block_hash, piece_layer_of_leaves};
use seednode_wire::metainfo::Metainfo;
use seednode_wire::metainfo_v2::{MetainfoV2, PieceMap};
use seednode_wire::peer::hashes::{HashRequest, proof_hash_count};

/// `len` pseudo-random bytes determined by `seed` (xorshift64*, as storage's tests and the
/// fixture script).
fn content(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The files of the `tree` fixture: (path below `tree`, length, seed).
const TREE: &[(&str, usize, u64)] = &[
    ("a.bin", 50000, 1),
    ("b.bin", 16384, 2),
    ("empty", 0, 0),
    ("sub/c.txt", 100, 3),
    ("sub/d.bin", 82768, 4),
    ("x.txt", 10, 5),
    ("x/y", 20000, 6),
];

/// The file layout libtorrent reports for `tree` in 32 KiB pieces, hybrid and v2 alike:
/// (path, size, offset, padding). Tree order puts `x/y` before `x.txt`.
const TREE_LAYOUT: &[(&str, u64, u64, bool)] = &[
    ("tree/a.bin", 50000, 0, false),
    ("tree/.pad/15536", 15536, 50000, true),
    ("tree/b.bin", 16384, 65536, false),
    ("tree/.pad/16384", 16384, 81920, true),
    ("tree/empty", 0, 98304, false),
    ("tree/sub/c.txt", 100, 98304, false),
    ("tree/.pad/32668", 32668, 98404, true),
    ("tree/sub/d.bin", 82768, 131072, false),
    ("tree/.pad/15536", 15536, 213840, true),
    ("tree/x/y", 20000, 229376, false),
    ("tree/.pad/12768", 12768, 249376, true),
    ("tree/x.txt", 10, 262144, false),
    ("tree/.pad/32758", 32758, 262154, true),
];

struct Fixture {
    bytes: &'static [u8],
    /// libtorrent's `info_hashes().v1` (None: v2-only).
    v1: Option<&'static str>,
    v2: &'static str,
    pieces: u32,
    layout: &'static [(&'static str, u64, u64, bool)],
}

const FIXTURES: &[Fixture] = &[
    Fixture {
        bytes: include_bytes!("data/lt_v2_multi.torrent"),
        v1: None,
        v2: "eaa14dcfaa42c8c1ee21dcc8eeb40ab2217bc1415787f6e255ed4902e16b3396",
        pieces: 9,
        layout: TREE_LAYOUT,
    },
    Fixture {
        bytes: include_bytes!("data/lt_hybrid_multi.torrent"),
        v1: Some("336116ebb4b3336de3eedd6a6e59a07add9ecd8f"),
        v2: "c77ee753dbdfc86277a67daecf155558e61b023ecc71918f22d874c1d7556bf1",
        pieces: 9,
        layout: TREE_LAYOUT,
    },
    Fixture {
        bytes: include_bytes!("data/lt_v2_single.torrent"),
        v1: None,
        v2: "8eded2b0fdea398882d636078476c0dc9a7235a3a50d53957a5417f99874b255",
        pieces: 5,
        layout: &[
            ("single.bin", 70000, 0, false),
            ("single.bin/.pad/11920", 11920, 70000, true),
        ],
    },
    Fixture {
        bytes: include_bytes!("data/lt_hybrid_single.torrent"),
        v1: Some("6a0e26d569c17ccc012c52c9714d90cafd25d9f4"),
        v2: "c3d6b0b14bbe1cb5a03d5c03a0cd84341ce76a6011a37d948ff75aaf8354f1c9",
        pieces: 5,
        layout: &[("single.bin", 70000, 0, false)],
    },
];

fn v2(m: &Metainfo) -> &MetainfoV2 {
    m.v2.as_ref().expect("a v2 torrent")
}

/// The data of file `path` (tree order path of the fixture).
fn file_data(m: &Metainfo, path: &[String]) -> Vec<u8> {
    if v2(m).info.multi_file {
        let joined = path.join("/");
        let (_, len, seed) = TREE.iter().find(|(p, ..)| *p == joined).unwrap();
        content(*seed, *len)
    } else {
        content(9, 70000)
    }
}

/// The piece space as bytes: every file, padding as zeros.
fn piece_space(m: &Metainfo) -> Vec<u8> {
    let mut out = Vec::new();
    let files = &v2(m).info.files;
    for entry in &m.info.files {
        let real = files.iter().find(|f| {
            if v2(m).info.multi_file {
                f.path == entry.path
            } else {
                entry.path.is_empty()
            }
        });
        match real {
            Some(f) => out.extend(file_data(m, &f.path)),
            None => out.extend(vec![0; entry.length as usize]),
        }
    }
    out
}

#[test]
fn loads_libtorrent_v2_and_hybrid_with_its_info_hashes_and_layout() {
    for fx in FIXTURES {
        let m = Metainfo::from_bytes(fx.bytes).unwrap();
        let side = v2(&m);
        assert_eq!(side.info_hash.to_hex(), fx.v2);
        assert_eq!(m.info_hash_v2(), Some(side.info_hash));
        match fx.v1 {
            Some(v1) => {
                assert!(side.hybrid && m.has_v1());
                assert_eq!(m.info_hash.to_hex(), v1);
            }
            None => {
                assert!(!side.hybrid && !m.has_v1());
                assert_eq!(m.info_hash, side.info_hash.truncated());
                assert!(m.info.pieces.iter().all(|p| *p == [0; 20]), "placeholders");
            }
        }
        assert_eq!(m.info.piece_count(), fx.pieces);
        assert_eq!(side.info.piece_count(), fx.pieces);
        assert_eq!(PieceMap::new(&side.info).piece_count(), fx.pieces);
        let mut offset = 0;
        let ours: Vec<(String, u64, u64, bool)> = m
            .info
            .files
            .iter()
            .map(|f| {
                let path = if f.path.is_empty() {
                    m.info.name.clone()
                } else {
                    format!("{}/{}", m.info.name, f.path.join("/"))
                };
                let pad = f.path.first().is_some_and(|c| c == ".pad");
                let row = (path, f.length, offset, pad);
                offset += f.length;
                row
            })
            .collect();
        let theirs: Vec<(String, u64, u64, bool)> = fx
            .layout
            .iter()
            .map(|(p, len, off, pad)| ((*p).to_owned(), *len, *off, *pad))
            .collect();
        assert_eq!(ours, theirs);
    }
}

#[test]
fn merkle_roots_layers_and_v1_pieces_match_libtorrent() {
    for fx in FIXTURES {
        let m = Metainfo::from_bytes(fx.bytes).unwrap();
        let side = v2(&m);
        let pl = side.info.piece_length;
        for (i, f) in side.info.files.iter().enumerate() {
            let data = file_data(&m, &f.path);
            assert_eq!(data.len() as u64, f.length);
            if data.is_empty() {
                assert_eq!(f.pieces_root, None);
                continue;
            }
            let leaves: Vec<_> = data
                .chunks(merkle::BLOCK_LEN as usize)
                .map(block_hash)
                .collect();
            let tree = MerkleTree::from_leaves(leaves.clone()).unwrap();
            assert_eq!(Some(tree.root()), f.pieces_root, "{:?}", f.path);
            if f.length > u64::from(pl) {
                let layer = piece_layer_of_leaves(&leaves, pl);
                assert_eq!(side.piece_layers[i].as_ref(), Some(&layer), "{:?}", f.path);
            } else {
                assert_eq!(side.piece_layers[i], None);
            }
        }
        // Every piece verifies against its v2 hash, and (hybrid) its SHA-1 over the padded
        // stream matches libtorrent's `pieces`.
        let space = piece_space(&m);
        let map = PieceMap::new(&side.info);
        for piece in 0..map.piece_count() {
            let loc = map.locate(piece).unwrap();
            let start = piece as usize * pl as usize;
            let data = &space[start..start + loc.data_len as usize];
            assert_eq!(side.verify_piece(&loc, data), Some(true), "piece {piece}");
            let mut flipped = data.to_vec();
            flipped[0] ^= 1;
            assert_eq!(side.verify_piece(&loc, &flipped), Some(false));
            if side.hybrid {
                let len = m.info.piece_len(piece).unwrap() as usize;
                let sha1: [u8; 20] = Sha1::digest(&space[start..start + len]).into();
                assert_eq!(sha1, m.info.pieces[piece as usize], "v1 piece {piece}");
            }
        }
        assert_eq!(map.locate(map.piece_count()), None);
    }
}

#[test]
fn reencoding_gives_libtorrents_info_bytes() {
    for fx in FIXTURES {
        let m = Metainfo::from_bytes(fx.bytes).unwrap();
        let side = v2(&m).clone();
        let v1_pieces = side.hybrid.then(|| m.info.pieces.clone());
        let again = Metainfo::new_v2(
            side.info.clone(),
            side.piece_layers.clone(),
            v1_pieces,
            m.info.private,
            vec![vec!["http://t.example/announce".into()]],
            vec![],
        )
        .unwrap();
        assert_eq!(again.info_bytes, m.info_bytes, "{}", fx.v2);
        assert_eq!(again.info_hash, m.info_hash);
        assert_eq!(again.v2, m.v2);
        assert_eq!(again.info, m.info);
        let reparsed = Metainfo::from_bytes(&again.to_bytes()).unwrap();
        assert_eq!(reparsed, again);
        assert_eq!(Metainfo::from_bytes(&m.to_bytes()).unwrap().v2, m.v2);
    }
}

#[test]
fn hash_requests_from_piece_layers_prove_the_root() {
    let m = Metainfo::from_bytes(FIXTURES[0].bytes).unwrap();
    let side = v2(&m);
    // sub/d.bin: 82 768 bytes, 6 blocks (height 3), 3 pieces of 2 blocks (piece layer height 1).
    let file = side
        .info
        .files
        .iter()
        .position(|f| f.path == ["sub", "d.bin"])
        .unwrap();
    let root = side.info.files[file].pieces_root.unwrap();
    assert_eq!(side.file_by_root(&root), Some(file));
    let tree = side.merkle_tree(file).unwrap();
    assert_eq!((tree.height(), tree.base_height()), (3, 1));
    let data = content(4, 82768);
    let leaves: Vec<_> = data.chunks(16384).map(block_hash).collect();
    let full = MerkleTree::from_leaves(leaves.clone()).unwrap();
    let req = |base_layer, index, length, proof_layers| HashRequest {
        pieces_root: root,
        base_layer,
        index,
        length,
        proof_layers,
    };
    // The piece layer with proofs to the root: what a magnet leecher asks a seed for.
    let r = req(1, 0, 4, 1);
    let answer = tree.hashes(&r, None).unwrap();
    assert_eq!(answer, full.hashes(&r, None).unwrap());
    assert_eq!(answer.len() as u64, 4 + proof_hash_count(4, 1));
    assert_eq!(&answer[..3], side.piece_layers[file].as_deref().unwrap());
    assert_eq!(answer[3], merkle::pad_hash(1));
    // Leaf hashes of piece 2 with a proof to the root: read from "disk".
    let r = req(0, 4, 2, 2);
    let span = tree.leaves_needed(&r).unwrap().unwrap();
    assert_eq!((span.first_block, span.blocks), (4, 2));
    let answer = tree.hashes(&r, Some(&leaves[4..6])).unwrap();
    assert_eq!(answer, full.hashes(&r, None).unwrap());
    assert_eq!(answer.len(), 2 + 2);
    // Rebuild the root from the answer.
    let mut node = merkle::hash_pair(&answer[0], &answer[1]);
    node = merkle::hash_pair(&node, &answer[2]);
    node = merkle::hash_pair(&answer[3], &node);
    assert_eq!(node, root);
}

#[test]
fn bad_v2_corpus_seeds_fail_for_their_reason() {
    use seednode_wire::metainfo::MetainfoError;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/wire_metainfo");
    let load = |name: &str| Metainfo::from_bytes(&std::fs::read(dir.join(name)).unwrap());
    assert_eq!(
        load("bad_v2_meta_version_3.torrent"),
        Err(MetainfoError::UnsupportedMetaVersion { got: 3 })
    );
    assert!(matches!(
        load("bad_v2_piece_length.torrent"),
        Err(MetainfoError::OutOfRange {
            field: "info.piece length",
            ..
        })
    ));
    assert!(matches!(
        load("bad_v2_piece_layer.torrent"),
        Err(MetainfoError::BadPieceLayer { .. })
    ));
    assert_eq!(
        load("bad_v2_unsorted_keys.torrent"),
        Err(MetainfoError::NotCanonical)
    );
    assert!(matches!(
        load("bad_hybrid_length_mismatch.torrent"),
        Err(MetainfoError::HybridMismatch { .. })
    ));
}
