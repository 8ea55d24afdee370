//! BEP 52 against libtorrent 2.0: v2-only and hybrid torrents created by seednode are downloaded
//! by libtorrent and their payload matches; a v2 magnet link makes libtorrent fetch the metadata
//! and ask for merkle hashes, which seednode answers.

mod common;

use std::ffi::OsStr;
use std::path::Path;

use common::{Deadline, LtSource, Seeder, TEST_TIMEOUT};
use tempfile::TempDir;

fn seed_and_download(format: &str, magnet: bool, client_ip: [u8; 4]) {
    common::require_libtorrent();
    let deadline = Deadline::after(TEST_TIMEOUT);
    let tmp = TempDir::new().unwrap();
    // Not a multiple of 16 KiB, so the last piece and the merkle padding are exercised.
    let file = tmp.path().join(format!("{format}-payload.bin"));
    common::write_random_file(&file, 2 * 1024 * 1024 + 12_345, 21);
    let seeder = Seeder::start(&file, &[OsStr::new(format)], tmp.path(), deadline);
    assert!(
        seeder.magnet.contains("urn:btmh:1220"),
        "a v2 or hybrid magnet names the v2 info-hash: {}",
        seeder.magnet
    );
    let dl = tmp.path().join("dl");
    let source = if magnet {
        LtSource::Magnet(&seeder.magnet)
    } else {
        LtSource::Torrent(&seeder.torrent)
    };
    common::lt_download(source, &dl, client_ip.into(), &seeder, deadline);
    common::assert_same_file(&file, &dl.join(Path::new(file.file_name().unwrap())));
    seeder.stop();
}

#[test]
fn v2_only_torrent_downloads_with_libtorrent() {
    seed_and_download("--v2", false, [127, 0, 0, 51]);
}

#[test]
fn hybrid_torrent_downloads_with_libtorrent() {
    seed_and_download("--hybrid", false, [127, 0, 0, 52]);
}

#[test]
fn v2_magnet_downloads_with_hashes_from_seednode() {
    seed_and_download("--v2", true, [127, 0, 0, 53]);
}
