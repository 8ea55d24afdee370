//! Message Stream Encryption against libtorrent forced to use it: an RC4-only peer gets the
//! whole stream encrypted (the copy data path), a plaintext-only MSE peer gets plain blocks after
//! the encrypted handshake (sendfile); both downloads match byte for byte.

mod common;

use common::{Deadline, LtSource, Seeder, TEST_TIMEOUT};
use tempfile::TempDir;

fn download_with_forced_mse(encryption: &str, client_ip: [u8; 4]) {
    common::require_libtorrent();
    let deadline = Deadline::after(TEST_TIMEOUT);
    let tmp = TempDir::new().unwrap();
    let file = tmp.path().join(format!("mse-{encryption}.bin"));
    common::write_random_file(&file, 5 * 1024 * 1024 + 99, 41);
    let seeder = Seeder::start(&file, &[], tmp.path(), deadline);
    let dl = tmp.path().join("dl");
    common::lt_download_with(
        LtSource::Torrent(&seeder.torrent),
        &dl,
        client_ip.into(),
        &seeder,
        deadline,
        &["--encryption", encryption],
    );
    common::assert_same_file(&file, &dl.join(file.file_name().unwrap()));
    seeder.stop();
}

#[test]
fn libtorrent_forced_to_rc4_downloads() {
    download_with_forced_mse("rc4", [127, 0, 0, 81]);
}

#[test]
fn libtorrent_forced_to_mse_plaintext_downloads() {
    download_with_forced_mse("plaintext", [127, 0, 0, 82]);
}
