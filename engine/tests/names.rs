//! Names from disk on the operator's terminal: `seednode create` never prints a file name raw
//! (an ESC sequence or a newline in a name must not recolour the terminal or forge an output
//! line; SECURITY §3.3 M10), and it warns about names other systems cannot store.

mod common;

use std::ffi::OsStr;
use std::fs::{self, File};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::{Command, ExitStatus};
use std::time::Duration;

use common::{ChildGuard, Deadline, seednode_bin, write_random_file};

/// Budget of one `seednode create` of a few KiB.
const CREATE_TIMEOUT: Duration = Duration::from_secs(30);

/// A name with an ANSI colour sequence and a newline in it.
const HOSTILE_NAME: &[u8] = b"red\x1b[31mname\nforged: line.bin";

/// Runs `seednode create ARGS` with stdout and stderr in files under `dir`; returns its status,
/// stdout and stderr.
fn run_create(dir: &Path, args: &[&OsStr]) -> (ExitStatus, Vec<u8>, Vec<u8>) {
    let deadline = Deadline::after(CREATE_TIMEOUT);
    let (out_path, err_path) = (dir.join("create.stdout"), dir.join("create.stderr"));
    let mut cmd = Command::new(seednode_bin());
    cmd.arg("create")
        .args(args)
        .stdout(File::create(&out_path).unwrap())
        .stderr(File::create(&err_path).unwrap());
    let mut child = ChildGuard::spawn("seednode create", &mut cmd);
    let status = child
        .wait_timeout(deadline.remaining("seednode create"))
        .expect("seednode create did not finish");
    (
        status,
        fs::read(&out_path).unwrap(),
        fs::read(&err_path).unwrap(),
    )
}

/// Asserts that `output` holds no raw control byte but line ends, and that every line is one of
/// the `expected` kinds (`<key>: ` prefixes).
#[track_caller]
fn assert_clean(output: &[u8], expected: &[&str]) {
    let text = String::from_utf8_lossy(output);
    assert!(
        !output
            .iter()
            .any(|b| (b.is_ascii_control() && *b != b'\n') || *b == 0x9b),
        "raw control bytes in the output: {text:?}"
    );
    for line in text.lines() {
        assert!(
            expected.iter().any(|key| line.starts_with(key)),
            "unexpected (broken?) line {line:?} in {text:?}"
        );
    }
}

#[test]
fn create_escapes_a_hostile_file_name() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join(OsStr::from_bytes(HOSTILE_NAME));
    write_random_file(&file, 40_000, 1);
    let out = tmp.path().join("out.torrent");
    // The name is refused (wire refuses control characters in names), in one escaped line.
    let (status, stdout, stderr) = run_create(
        tmp.path(),
        &[file.as_os_str(), "-o".as_ref(), out.as_os_str()],
    );
    assert!(!status.success());
    assert_clean(&stdout, &[]);
    assert_clean(&stderr, &["error: "]);
    let text = String::from_utf8(stderr).unwrap();
    assert_eq!(text.lines().count(), 1, "{text:?}");
    assert!(
        text.contains(r"red\e[31mname\nforged: line.bin"),
        "{text:?}"
    );

    // The same name as a directory holding the input: creation succeeds and prints the path of
    // the .torrent, escaped.
    let dir = tmp.path().join(OsStr::from_bytes(HOSTILE_NAME));
    fs::remove_file(&file).unwrap();
    let input = dir.join("data.bin");
    write_random_file(&input, 40_000, 2);
    let (status, stdout, stderr) = run_create(tmp.path(), &[input.as_os_str()]);
    assert!(status.success(), "{}", String::from_utf8_lossy(&stderr));
    assert_clean(&stdout, &["info-hash: ", "magnet: ", "torrent: "]);
    assert_clean(&stderr, &["hashing"]);
    let text = String::from_utf8(stdout).unwrap();
    assert_eq!(text.lines().count(), 3, "{text:?}");
    assert!(
        text.contains(r"red\e[31mname\nforged: line.bin/data.bin.torrent"),
        "{text:?}"
    );
    assert!(dir.join("data.bin.torrent").is_file());
}

#[test]
fn create_warns_about_names_windows_cannot_store() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("share");
    write_random_file(&root.join("nul.txt"), 20_000, 3);
    write_random_file(&root.join("fine.bin"), 20_000, 4);
    write_random_file(&root.join("sub/COM1.log"), 100, 5);
    let out = tmp.path().join("share.torrent");
    let (status, stdout, stderr) = run_create(
        tmp.path(),
        &[root.as_os_str(), "-o".as_ref(), out.as_os_str()],
    );
    let text = String::from_utf8(stderr).unwrap();
    // Still created, as mktorrent would.
    assert!(status.success(), "{text}");
    assert!(out.is_file());
    assert_clean(&stdout, &["info-hash: ", "magnet: ", "torrent: "]);
    let warnings: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("warning: ") && l.contains("not portable"))
        .collect();
    assert!(
        warnings.iter().any(|l| l.contains("share/nul.txt")),
        "{text}"
    );
    assert!(
        warnings.iter().any(|l| l.contains("share/sub/COM1.log")),
        "{text}"
    );
    assert!(!text.contains("fine.bin"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("warning: 2 names are not portable")),
        "{text}"
    );

    // A single file named nul.txt: the torrent's name itself.
    let single = tmp.path().join("nul.txt");
    write_random_file(&single, 20_000, 6);
    let (status, _, stderr) = run_create(tmp.path(), &[single.as_os_str()]);
    let text = String::from_utf8(stderr).unwrap();
    assert!(status.success(), "{text}");
    assert!(
        text.lines().any(|l| l.starts_with("warning: ")
            && l.contains("nul.txt")
            && l.contains("not portable")),
        "{text}"
    );
}
