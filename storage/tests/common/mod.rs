//! Helpers shared by the integration tests: deterministic file contents, a reference hasher, a
//! minimal bencode reader (independent of `wire`, so mktorrent's output is checked by an oracle
//! that does not share code with what it checks) and a mktorrent runner.

#![allow(dead_code, unreachable_pub)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha1::{Digest, Sha1};

/// mktorrent 1.1, from Debian's package (CI installs it; the tests fail without it).
pub const MKTORRENT: &str = "/usr/bin/mktorrent";

/// `len` pseudo-random bytes determined by `seed` (xorshift64*).
pub fn content(seed: u64, len: usize) -> Vec<u8> {
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

/// Writes `content(seed, len)` to `root/rel`, creating parent directories; returns the bytes.
pub fn write_file(root: &Path, rel: &str, seed: u64, len: usize) -> Vec<u8> {
    let path = root.join(rel);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    let data = content(seed, len);
    fs::write(&path, &data).unwrap();
    data
}

/// SHA-1 of every `piece_length` bytes of `data`: the reference the parallel hasher must match.
pub fn reference_pieces(data: &[u8], piece_length: usize) -> Vec<[u8; 20]> {
    data.chunks(piece_length)
        .map(|piece| Sha1::digest(piece).into())
        .collect()
}

/// SHA-1 of `bytes`.
pub fn sha1(bytes: &[u8]) -> [u8; 20] {
    Sha1::digest(bytes).into()
}

/// A bencoded value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Int(i64),
    Bytes(Vec<u8>),
    List(Vec<Self>),
    Dict(Vec<(Vec<u8>, Self)>),
}

impl Value {
    pub fn get(&self, key: &str) -> Option<&Self> {
        match self {
            Self::Dict(entries) => entries
                .iter()
                .find(|(k, _)| k == key.as_bytes())
                .map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn int(&self) -> i64 {
        match self {
            Self::Int(i) => *i,
            other => panic!("expected an integer, got {other:?}"),
        }
    }

    pub fn bytes(&self) -> &[u8] {
        match self {
            Self::Bytes(b) => b,
            other => panic!("expected a string, got {other:?}"),
        }
    }

    pub fn str(&self) -> String {
        String::from_utf8(self.bytes().to_vec()).unwrap()
    }

    pub fn list(&self) -> &[Self] {
        match self {
            Self::List(l) => l,
            other => panic!("expected a list, got {other:?}"),
        }
    }
}

/// Decodes one value at `*pos` (trusted test input: panics on malformed bencode).
pub fn decode(buf: &[u8], pos: &mut usize) -> Value {
    let read_until = |pos: &mut usize, end: u8| {
        let start = *pos;
        while buf[*pos] != end {
            *pos += 1;
        }
        let text = std::str::from_utf8(&buf[start..*pos]).unwrap().to_owned();
        *pos += 1;
        text
    };
    match buf[*pos] {
        b'i' => {
            *pos += 1;
            Value::Int(read_until(pos, b'e').parse().unwrap())
        }
        b'l' => {
            *pos += 1;
            let mut items = Vec::new();
            while buf[*pos] != b'e' {
                items.push(decode(buf, pos));
            }
            *pos += 1;
            Value::List(items)
        }
        b'd' => {
            *pos += 1;
            let mut entries = Vec::new();
            while buf[*pos] != b'e' {
                let key = decode(buf, pos).bytes().to_vec();
                entries.push((key, decode(buf, pos)));
            }
            *pos += 1;
            Value::Dict(entries)
        }
        _ => {
            let len: usize = read_until(pos, b':').parse().unwrap();
            let bytes = buf[*pos..*pos + len].to_vec();
            *pos += len;
            Value::Bytes(bytes)
        }
    }
}

/// A .torrent read by [`decode`]: the top-level dictionary and the raw bytes of `info`.
pub struct Torrent {
    pub top: Value,
    pub info: Value,
    pub info_bytes: Vec<u8>,
}

impl Torrent {
    pub fn parse(buf: &[u8]) -> Self {
        assert_eq!(buf[0], b'd');
        let mut pos = 1;
        let mut info_bytes = None;
        while buf[pos] != b'e' {
            let key = decode(buf, &mut pos).bytes().to_vec();
            let start = pos;
            decode(buf, &mut pos);
            if key == b"info" {
                info_bytes = Some(buf[start..pos].to_vec());
            }
        }
        let top = decode(buf, &mut 0);
        let info_bytes = info_bytes.expect("no info dictionary");
        let info = decode(&info_bytes, &mut 0);
        Self {
            top,
            info,
            info_bytes,
        }
    }

    /// The 20-byte piece hashes.
    pub fn pieces(&self) -> Vec<[u8; 20]> {
        let bytes = self.info.get("pieces").unwrap().bytes();
        assert_eq!(bytes.len() % 20, 0);
        bytes
            .chunks_exact(20)
            .map(|c| c.try_into().unwrap())
            .collect()
    }

    /// (path components, length) of every file of a multi-file torrent, in order.
    pub fn files(&self) -> Vec<(Vec<String>, u64)> {
        self.info
            .get("files")
            .unwrap()
            .list()
            .iter()
            .map(|f| {
                let path = f
                    .get("path")
                    .unwrap()
                    .list()
                    .iter()
                    .map(Value::str)
                    .collect();
                (path, u64::try_from(f.get("length").unwrap().int()).unwrap())
            })
            .collect()
    }
}

/// Runs mktorrent on `target` with pieces of `2^log2_piece_len` bytes and returns the .torrent.
/// Panics (fails the test, never skips) when mktorrent is not installed.
pub fn mktorrent(target: &Path, log2_piece_len: u32, extra: &[&str], out_dir: &Path) -> Vec<u8> {
    assert!(
        Path::new(MKTORRENT).exists(),
        "{MKTORRENT} is missing: `apt-get install -y mktorrent` (INTEROP.md)"
    );
    let out: PathBuf = out_dir.join("mktorrent.torrent");
    let _ = fs::remove_file(&out);
    let output = Command::new(MKTORRENT)
        .arg("-l")
        .arg(log2_piece_len.to_string())
        .arg("-o")
        .arg(&out)
        .args(extra)
        .arg(target)
        .output()
        .expect("run mktorrent");
    assert!(
        output.status.success(),
        "mktorrent failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    fs::read(&out).unwrap()
}

/// Writes `files` (relative path, length) under `root` (a multi-file torrent's directory) and
/// returns a hand-built `Info` for them with reference piece hashes, plus all their bytes.
pub fn multi_file_info(
    root: &Path,
    files: &[(&str, usize)],
    piece_length: u32,
) -> (seednode_wire::metainfo::Info, Vec<u8>) {
    let mut all = Vec::new();
    let mut entries = Vec::new();
    for (i, (rel, len)) in files.iter().enumerate() {
        all.extend(write_file(root, rel, 1000 + i as u64, *len));
        entries.push(seednode_wire::metainfo::FileEntry {
            path: rel.split('/').map(str::to_owned).collect(),
            length: *len as u64,
        });
    }
    let info = seednode_wire::metainfo::Info {
        name: root.file_name().unwrap().to_str().unwrap().to_owned(),
        piece_length,
        pieces: reference_pieces(&all, piece_length as usize),
        files: entries,
        multi_file: true,
        private: false,
    };
    (info, all)
}

/// Writes one file at `path` and returns a hand-built single-file `Info` and its bytes.
pub fn single_file_info(
    path: &Path,
    len: usize,
    piece_length: u32,
) -> (seednode_wire::metainfo::Info, Vec<u8>) {
    let data = content(42, len);
    fs::write(path, &data).unwrap();
    let info = seednode_wire::metainfo::Info {
        name: path.file_name().unwrap().to_str().unwrap().to_owned(),
        piece_length,
        pieces: reference_pieces(&data, piece_length as usize),
        files: vec![seednode_wire::metainfo::FileEntry {
            path: Vec::new(),
            length: len as u64,
        }],
        multi_file: false,
        private: false,
    };
    (info, data)
}
