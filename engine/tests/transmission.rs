//! Transmission 3.00 (`transmission-cli`, the Raspberry Pi OS default) downloads from the node
//! on loopback (issue 15). Transmission refuses to dial 127/8 peers ("martian" addresses) and
//! tries uTP first when it dials; it does accept incoming TCP. It finds the node through the
//! node's own tracker, and the node, having seen its announce, dials it: that is what this test
//! proves, byte for byte.

mod common;

use std::fs;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::{ChildGuard, Deadline, Seeder, TEST_TIMEOUT, free_port, write_random_file};

#[test]
fn transmission_downloads_after_the_node_dials_it_back() {
    if Command::new("transmission-cli")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED: transmission-cli is not installed");
        return;
    }
    let deadline = Deadline::after(TEST_TIMEOUT);
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("for-transmission.bin");
    write_random_file(&file, 2_000_000, 61);
    let seeder = Seeder::start(&file, &["--no-dht".as_ref()], tmp.path(), deadline);

    // Transmission's settings: nothing leaves loopback; no DHT, LPD, PEX or port mapping.
    let config = tmp.path().join("transmission");
    fs::create_dir_all(&config).unwrap();
    let peer_port = free_port(Ipv4Addr::LOCALHOST);
    fs::write(
        config.join("settings.json"),
        format!(
            r#"{{"dht-enabled": false, "lpd-enabled": false, "pex-enabled": false,
"port-forwarding-enabled": false, "bind-address-ipv4": "127.0.0.1",
"bind-address-ipv6": "::1", "peer-port": {peer_port}, "rpc-enabled": false,
"message-level": 2}}"#
        ),
    )
    .unwrap();
    let dl = tmp.path().join("dl");
    fs::create_dir_all(&dl).unwrap();
    let log = tmp.path().join("transmission.log");
    let mut cmd = Command::new("transmission-cli");
    cmd.arg("-g")
        .arg(&config)
        .arg("-w")
        .arg(&dl)
        .arg("-p")
        .arg(peer_port.to_string())
        .arg("-M")
        .arg(&seeder.torrent)
        .stdout(fs::File::create(&log).unwrap())
        .stderr(Stdio::null());
    let mut child = ChildGuard::spawn("transmission-cli", &mut cmd);
    let want = fs::read(&file).unwrap();
    let got = dl.join("for-transmission.bin");
    let end = Instant::now()
        + deadline
            .remaining("transmission-cli")
            .min(Duration::from_secs(90));
    loop {
        // Transmission writes into the final name; it is complete when the bytes match.
        if fs::read(&got).is_ok_and(|b| b == want) {
            break;
        }
        if let Some(status) = child.wait_timeout(Duration::ZERO) {
            panic!(
                "transmission-cli exited with {status}\n{}\n{}",
                common::log_tail(&log),
                seeder.log()
            );
        }
        assert!(
            Instant::now() < end,
            "transmission-cli did not download the file\n{}\n{}",
            common::log_tail(&log),
            seeder.log()
        );
        thread::sleep(Duration::from_millis(200));
    }
    drop(child);
    assert!(
        seeder.log().contains("dialling") || seeder.log().contains("Transmission"),
        "{}",
        seeder.log()
    );
    seeder.stop();
}
