//! The real `seednode` binary seeding to real clients on loopback: aria2c and python3-libtorrent
//! download what it seeds, and the bytes they write must equal the originals.
//!
//! Each test runs one `seednode seed` on 127.0.0.1:<free port> and one client on its own
//! 127.0.0.x, within [`TEST_TIMEOUT`]. aria2c finds the seed only through the built-in tracker
//! named in the .torrent; lt_download.py dials the seed directly and uses the tracker too.
//! Needs aria2c, mktorrent and python3-libtorrent (scripts/test installs them); a missing one
//! fails the test.

mod common;

use std::ffi::OsStr;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{
    Deadline, LtSource, Seeder, TEST_TIMEOUT, aria2c_download, assert_same_file, assert_same_path,
    assert_same_tree, libtorrent_info_hash, lt_download, mktorrent, require_aria2c,
    require_libtorrent, require_mktorrent, run_client, seednode_bin, write_random_file,
};
use tempfile::TempDir;

/// 24 MiB plus an odd tail, so the last piece is short for every power-of-two piece length.
const FILE_LEN: u64 = 24 * 1024 * 1024 + 12_345;

const FILE_NAME: &str = "random-24MiB.bin";

/// The multi-file fixture: odd sizes, an empty file, nested subdirectories, pieces that span files.
const TREE: &[(&str, u64)] = &[
    ("a.bin", 1_000_003),
    ("empty.txt", 0),
    ("notes.txt", 16_385),
    ("sub/b.dat", 77_777),
    ("sub/deeper/c.bin", 3_333_333),
    ("z", 1),
];

const TREE_NAME: &str = "tree";

/// Keeps every seeder here off the public Mainline DHT (no bootstrap traffic, no routing-table
/// file in $HOME): these tests find the seed only through its tracker or by dialling it.
const NO_DHT: &str = "--no-dht";

/// One client address per test, so no test sees another's peer.
const ARIA2C_FILE_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);
const LT_FILE_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 12);
const ARIA2C_DIR_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 13);
const LT_DIR_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 14);
const ARIA2C_MKTORRENT_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 15);
const ARIA2C_MAGNET_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 16);
const LT_MAGNET_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 17);

/// A temp dir holding `seed/<FILE_NAME>`, returned with the file's path.
fn file_fixture() -> (TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("create temp dir");
    let file = tmp.path().join("seed").join(FILE_NAME);
    write_random_file(&file, FILE_LEN, 1);
    (tmp, file)
}

/// A temp dir holding `seed/<TREE_NAME>/...`, returned with the directory's path.
fn tree_fixture() -> (TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("create temp dir");
    let root = tmp.path().join("seed").join(TREE_NAME);
    for (i, (rel, len)) in TREE.iter().enumerate() {
        write_random_file(&root.join(rel), *len, 100 + i as u64);
    }
    (tmp, root)
}

/// Starts `seednode seed PATH` with its default torrent location, and checks the torrent it wrote:
/// `PATH.torrent` beside PATH, loadable by libtorrent, with the info-hash it printed.
fn seed_with_default_torrent(tmp: &TempDir, path: &Path, deadline: Deadline) -> Seeder {
    let seeder = Seeder::start(path, &[OsStr::new(NO_DHT)], tmp.path(), deadline);
    let mut expected = path.as_os_str().to_owned();
    expected.push(".torrent");
    assert_same_path(&seeder.torrent, Path::new(&expected));
    assert_eq!(
        seeder.info_hash.to_ascii_lowercase(),
        libtorrent_info_hash(&seeder.torrent),
        "printed info-hash differs from libtorrent's reading of {}",
        seeder.torrent.display()
    );
    seeder
}

#[test]
fn seed_file_to_aria2c() {
    require_aria2c();
    require_libtorrent();
    let deadline = Deadline::after(TEST_TIMEOUT);
    let (tmp, file) = file_fixture();
    let seeder = seed_with_default_torrent(&tmp, &file, deadline);
    let dl = tmp.path().join("aria2c");
    aria2c_download(
        seeder.torrent.as_os_str(),
        &dl,
        ARIA2C_FILE_IP,
        &seeder,
        deadline,
    );
    assert_same_file(&file, &dl.join(FILE_NAME));
    seeder.stop();
}

#[test]
fn seed_file_to_libtorrent() {
    require_libtorrent();
    let deadline = Deadline::after(TEST_TIMEOUT);
    let (tmp, file) = file_fixture();
    let seeder = seed_with_default_torrent(&tmp, &file, deadline);
    let dl = tmp.path().join("libtorrent");
    lt_download(
        LtSource::Torrent(&seeder.torrent),
        &dl,
        LT_FILE_IP,
        &seeder,
        deadline,
    );
    assert_same_file(&file, &dl.join(FILE_NAME));
    seeder.stop();
}

#[test]
fn seed_directory_to_aria2c() {
    require_aria2c();
    require_libtorrent();
    let deadline = Deadline::after(TEST_TIMEOUT);
    let (tmp, root) = tree_fixture();
    let seeder = seed_with_default_torrent(&tmp, &root, deadline);
    let dl = tmp.path().join("aria2c");
    aria2c_download(
        seeder.torrent.as_os_str(),
        &dl,
        ARIA2C_DIR_IP,
        &seeder,
        deadline,
    );
    assert_same_tree(&root, &dl.join(TREE_NAME));
    seeder.stop();
}

#[test]
fn seed_directory_to_libtorrent() {
    require_libtorrent();
    let deadline = Deadline::after(TEST_TIMEOUT);
    let (tmp, root) = tree_fixture();
    let seeder = seed_with_default_torrent(&tmp, &root, deadline);
    let dl = tmp.path().join("libtorrent");
    lt_download(
        LtSource::Torrent(&seeder.torrent),
        &dl,
        LT_DIR_IP,
        &seeder,
        deadline,
    );
    assert_same_tree(&root, &dl.join(TREE_NAME));
    seeder.stop();
}

/// A torrent from another creator: seednode verifies FILE against it, prints its info-hash, and
/// serves it through the built-in tracker at the announce URL mktorrent wrote.
#[test]
fn seed_mktorrent_torrent_to_aria2c() {
    require_aria2c();
    require_mktorrent();
    require_libtorrent();
    let deadline = Deadline::after(TEST_TIMEOUT);
    let (tmp, file) = file_fixture();
    // The seeder's port must be known before the torrent is made.
    let port = common::free_port(common::SEEDER_IP);
    let torrent = tmp.path().join("mktorrent.torrent");
    mktorrent(
        &file,
        &torrent,
        &format!("http://{}:{port}/announce", common::SEEDER_IP),
        18,
    );
    let seeder = Seeder::start_on(
        port,
        &file,
        &[
            OsStr::new(NO_DHT),
            OsStr::new("--torrent"),
            torrent.as_os_str(),
        ],
        tmp.path(),
        deadline,
    );
    assert_same_path(&seeder.torrent, &torrent);
    assert_eq!(
        seeder.info_hash.to_ascii_lowercase(),
        libtorrent_info_hash(&torrent),
        "seednode printed an info-hash other than the mktorrent torrent's"
    );
    let dl = tmp.path().join("aria2c");
    aria2c_download(
        torrent.as_os_str(),
        &dl,
        ARIA2C_MKTORRENT_IP,
        &seeder,
        deadline,
    );
    assert_same_file(&file, &dl.join(FILE_NAME));
    seeder.stop();
}

/// The magnet link alone: metadata comes from the seed (BEP 9), the peer from the tracker (`tr=`).
#[test]
fn seed_file_to_aria2c_by_magnet() {
    require_aria2c();
    let deadline = Deadline::after(TEST_TIMEOUT);
    let (tmp, file) = file_fixture();
    let seeder = Seeder::start(&file, &[OsStr::new(NO_DHT)], tmp.path(), deadline);
    let dl = tmp.path().join("aria2c");
    aria2c_download(
        OsStr::new(&seeder.magnet),
        &dl,
        ARIA2C_MAGNET_IP,
        &seeder,
        deadline,
    );
    assert_same_file(&file, &dl.join(FILE_NAME));
    seeder.stop();
}

#[test]
fn seed_file_to_libtorrent_by_magnet() {
    require_libtorrent();
    let deadline = Deadline::after(TEST_TIMEOUT);
    let (tmp, file) = file_fixture();
    let seeder = Seeder::start(&file, &[OsStr::new(NO_DHT)], tmp.path(), deadline);
    let dl = tmp.path().join("libtorrent");
    lt_download(
        LtSource::Magnet(&seeder.magnet),
        &dl,
        LT_MAGNET_IP,
        &seeder,
        deadline,
    );
    assert_same_file(&file, &dl.join(FILE_NAME));
    seeder.stop();
}

/// For one file with the same name and piece length, `seednode create` and mktorrent must write
/// the same info dict, hence the same info-hash (INTEROP.md).
#[test]
fn create_matches_mktorrent_info_hash() {
    require_mktorrent();
    require_libtorrent();
    let deadline = Deadline::after(TEST_TIMEOUT);
    let (tmp, file) = file_fixture();
    let announce = "http://127.0.0.1:6969/announce";
    let ours = tmp.path().join("seednode.torrent");
    let mut cmd = Command::new(seednode_bin());
    cmd.arg("create").arg(&file).arg("-o").arg(&ours).args([
        "--piece-length",
        "262144",
        "--tracker",
        announce,
    ]);
    run_client(
        "seednode create",
        &mut cmd,
        &tmp.path().join("create.log"),
        None,
        deadline,
    );
    let theirs = tmp.path().join("mktorrent.torrent");
    mktorrent(&file, &theirs, announce, 18);
    assert_eq!(
        libtorrent_info_hash(&ours),
        libtorrent_info_hash(&theirs),
        "seednode create and mktorrent disagree on the info-hash of one file"
    );
}
