//! Streaming ingest (`seednode_storage::ingest`): bytes arriving in chunks of any size give the
//! same torrent as `create_torrent` of the finished file (v1, v2, hybrid); a wrong sha256, a
//! taken name and an escaping name leave nothing behind and touch nothing; a checkpoint resumes
//! to the same result.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use proptest::prelude::*;
use seednode_storage::ingest::{self, PARTIAL_DIR};
use seednode_storage::{
    CreateOptions, Ingest, IngestError, NewUpload, TorrentVersion, create_torrent,
};
use seednode_wire::upload::{ErrorCode, UploadId};
use sha2::{Digest as _, Sha256};

const ID: UploadId = UploadId::from_bytes([7; 16]);

/// `Ingest::start` of `length` bytes named `name`, id `id`, owner `alice`.
fn start(
    dir: &Path,
    id: UploadId,
    name: &str,
    length: u64,
    sha256: Option<[u8; 32]>,
    opts: &CreateOptions,
) -> Result<Ingest, IngestError> {
    let upload = NewUpload {
        upload_id: id,
        name,
        length,
        sha256,
        owner: "alice",
    };
    Ingest::start(dir, &upload, opts)
}

fn opts(version: TorrentVersion, piece_length: Option<u32>) -> CreateOptions {
    CreateOptions {
        version,
        piece_length,
        trackers: vec![vec!["http://tracker.invalid/announce".into()]],
        creation_date: Some(1_700_000_000),
        comment: Some("c".into()),
        threads: 1,
        ..CreateOptions::default()
    }
}

/// Deterministic test bytes.
fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1] ^ seed)
        .collect()
}

/// Uploads `bytes` into `dir` in chunks of the sizes in `chunks` (cycled).
fn upload(
    dir: &Path,
    name: &str,
    bytes: &[u8],
    chunks: &[usize],
    opts: &CreateOptions,
) -> Result<ingest::Ingested, IngestError> {
    let mut up = start(dir, ID, name, bytes.len() as u64, None, opts)?;
    let mut pos = 0;
    for size in chunks.iter().cycle() {
        if pos == bytes.len() {
            break;
        }
        let end = (pos + size.max(&1)).min(bytes.len());
        up.write(&bytes[pos..end])?;
        pos = end;
    }
    up.finish()
}

/// Entries of `dir` besides the partial directory, and those inside it.
fn leftovers(dir: &Path) -> (Vec<String>, Vec<String>) {
    let names = |d: &Path| -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(d)
            .map(|it| {
                it.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    let top = names(dir)
        .into_iter()
        .filter(|n| n != PARTIAL_DIR)
        .collect();
    (top, names(&dir.join(PARTIAL_DIR)))
}

fn same_as_create(bytes: &[u8], chunks: &[usize], o: &CreateOptions) {
    let dir = tempfile::tempdir().unwrap();
    let done = upload(dir.path(), "file.bin", bytes, chunks, o).unwrap();
    let path = dir.path().join("file.bin");
    assert_eq!(fs::read(&path).unwrap(), bytes);
    let created = create_torrent(&path, o, &|_| ()).unwrap();
    assert_eq!(done.metainfo.info_hash, created.info_hash);
    assert_eq!(done.metainfo.info_hash_v2(), created.info_hash_v2());
    assert_eq!(done.metainfo.to_bytes(), created.to_bytes());
    assert_eq!(done.sha256, <[u8; 32]>::from(Sha256::digest(bytes)));
    assert_eq!(leftovers(dir.path()), (vec!["file.bin".to_owned()], vec![]));
}

#[test]
fn matches_create_for_every_version_and_odd_sizes() {
    for version in [
        TorrentVersion::V1,
        TorrentVersion::V2,
        TorrentVersion::Hybrid,
    ] {
        for len in [1, 16_383, 16_384, 16_385, 65_536, 100_001] {
            let bytes = data(len, 3);
            same_as_create(&bytes, &[1000, 7, 16_384, 3], &opts(version, Some(32_768)));
            same_as_create(&bytes, &[len], &opts(version, None));
        }
    }
}

#[test]
fn source_and_private_change_the_hash_as_create_does() {
    let bytes = data(40_000, 9);
    let mut o = opts(TorrentVersion::Hybrid, None);
    o.private = true;
    o.source = Some("TRK".into());
    same_as_create(&bytes, &[4096], &o);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn random_chunks_give_creations_info_hash(
        len in 1usize..150_000,
        seed in any::<u8>(),
        chunks in proptest::collection::vec(1usize..40_000, 1..8),
        version in prop_oneof![Just(TorrentVersion::V1), Just(TorrentVersion::V2), Just(TorrentVersion::Hybrid)],
        piece_length in prop_oneof![Just(None), Just(Some(16_384)), Just(Some(65_536))],
    ) {
        same_as_create(&data(len, seed), &chunks, &opts(version, piece_length));
    }
}

#[test]
fn wrong_sha256_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = data(50_000, 1);
    let mut up = start(
        dir.path(),
        ID,
        "f",
        50_000,
        Some([0; 32]),
        &opts(TorrentVersion::V1, None),
    )
    .unwrap();
    up.write(&bytes).unwrap();
    let err = up.finish().unwrap_err();
    assert!(matches!(err, IngestError::Sha256Mismatch), "{err:?}");
    assert_eq!(err.code(), ErrorCode::Malformed);
    assert_eq!(leftovers(dir.path()), (vec![], vec![]));

    // The right one is accepted.
    let good: [u8; 32] = Sha256::digest(&bytes).into();
    let mut up = start(
        dir.path(),
        ID,
        "f",
        50_000,
        Some(good),
        &opts(TorrentVersion::V1, None),
    )
    .unwrap();
    up.write(&bytes).unwrap();
    up.finish().unwrap();
}

#[test]
fn existing_name_refused_and_untouched() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("taken"), b"old").unwrap();
    let o = opts(TorrentVersion::V1, None);
    let err = start(dir.path(), ID, "taken", 5, None, &o).unwrap_err();
    assert!(matches!(err, IngestError::Exists));
    assert_eq!(err.code(), ErrorCode::Exists);

    // Taken while the upload ran (a link, even a dangling one, counts): refused at the rename.
    let mut up = start(dir.path(), ID, "late", 5, None, &o).unwrap();
    up.write(b"hello").unwrap();
    symlink("/nonexistent", dir.path().join("late")).unwrap();
    assert!(matches!(up.finish(), Err(IngestError::Exists)));
    assert_eq!(fs::read(dir.path().join("taken")).unwrap(), b"old");
    assert!(
        fs::symlink_metadata(dir.path().join("late"))
            .unwrap()
            .is_symlink()
    );
    assert_eq!(
        leftovers(dir.path()),
        (vec!["late".into(), "taken".into()], vec![])
    );
}

#[test]
fn escaping_names_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    fs::create_dir(&data_dir).unwrap();
    let o = opts(TorrentVersion::V1, None);
    for name in ["../escape", "a/b", "..", ".", "", "/etc/passwd", "x\0y"] {
        let err = start(&data_dir, ID, name, 5, None, &o).unwrap_err();
        assert!(matches!(err, IngestError::BadName(_)), "{name:?}: {err:?}");
        assert_eq!(err.code(), ErrorCode::Malformed);
    }
    assert_eq!(fs::read_dir(&data_dir).unwrap().count(), 0);
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);

    // A link planted as the partial directory is not followed.
    let outside = dir.path().join("outside");
    fs::create_dir(&outside).unwrap();
    symlink(&outside, data_dir.join(PARTIAL_DIR)).unwrap();
    let err = start(&data_dir, ID, "ok", 5, None, &o).unwrap_err();
    assert!(matches!(err, IngestError::Io { .. }), "{err:?}");
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
}

#[test]
fn overrun_and_early_finish_refused() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(TorrentVersion::V1, None);
    let mut up = start(dir.path(), ID, "f", 5, None, &o).unwrap();
    assert!(matches!(
        up.write(b"123456"),
        Err(IngestError::Overrun { .. })
    ));
    up.write(b"1234").unwrap();
    assert!(matches!(up.finish(), Err(IngestError::Incomplete { .. })));
    assert!(matches!(
        start(dir.path(), ID, "g", 0, None, &o),
        Err(IngestError::Empty)
    ));
    assert!(matches!(
        start(dir.path(), ID, "g", u64::MAX, None, &o),
        Err(IngestError::TooLarge { .. })
    ));
    // A file whose .torrent would exceed the limit is refused before any byte.
    let err = start(
        dir.path(),
        UploadId::from_bytes([8; 16]),
        "g",
        1 << 48,
        None,
        &opts(TorrentVersion::V1, Some(16_384)),
    )
    .unwrap_err();
    assert_eq!(err.code(), ErrorCode::TooLarge, "{err:?}");
}

#[test]
fn resume_after_interruption_gives_the_same_torrent() {
    for version in [
        TorrentVersion::V1,
        TorrentVersion::V2,
        TorrentVersion::Hybrid,
    ] {
        for cut in [0usize, 1, 16_384, 20_000, 32_768, 99_999, 100_000] {
            let bytes = data(100_000, 5);
            let o = opts(version, Some(32_768));
            let dir = tempfile::tempdir().unwrap();
            let mut up = start(dir.path(), ID, "r.bin", 100_000, None, &o).unwrap();
            up.write(&bytes[..cut]).unwrap();
            let checkpoint = up.checkpoint().unwrap();
            // Bytes written after the checkpoint, then the connection drops.
            if cut < 100_000 {
                up.write(&bytes[cut..cut + 1]).unwrap();
            }
            drop(up);
            let partial = ingest::partial_uploads(dir.path()).unwrap();
            assert_eq!(
                partial.iter().map(|p| p.upload_id).collect::<Vec<_>>(),
                vec![ID]
            );
            assert!(!partial[0].resumable);
            let mut up = Ingest::resume(dir.path(), &checkpoint, &o).unwrap();
            assert_eq!(up.offset(), cut as u64);
            for chunk in bytes[cut..].chunks(7_777) {
                up.write(chunk).unwrap();
            }
            let done = up.finish().unwrap();
            let created = create_torrent(&dir.path().join("r.bin"), &o, &|_| ()).unwrap();
            assert_eq!(
                done.metainfo.to_bytes(),
                created.to_bytes(),
                "{version:?} {cut}"
            );
            assert!(ingest::partial_uploads(dir.path()).unwrap().is_empty());
        }
    }
}

#[test]
fn bad_checkpoints_refused() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(TorrentVersion::Hybrid, None);
    let mut up = start(dir.path(), ID, "c", 70_000, None, &o).unwrap();
    up.write(&data(30_000, 1)).unwrap();
    let checkpoint = up.checkpoint().unwrap();
    for len in 0..checkpoint.len() {
        assert!(Ingest::resume(dir.path(), &checkpoint[..len], &o).is_err());
    }
    let mut longer = checkpoint.clone();
    longer.push(0);
    assert!(Ingest::resume(dir.path(), &longer, &o).is_err());
    assert!(matches!(
        Ingest::resume(dir.path(), &checkpoint, &opts(TorrentVersion::V1, None)),
        Err(IngestError::BadCheckpoint { .. })
    ));
    up.abort().unwrap();
    assert!(matches!(
        Ingest::resume(dir.path(), &checkpoint, &o),
        Err(IngestError::NotFound)
    ));
    assert!(!ingest::discard(dir.path(), ID).unwrap());
}

#[test]
fn saved_checkpoint_resumes_after_restart() {
    let bytes = data(200_000, 11);
    let o = opts(TorrentVersion::Hybrid, Some(65_536));
    let dir = tempfile::tempdir().unwrap();
    let mut up = start(dir.path(), ID, "s.bin", 200_000, None, &o).unwrap();
    up.write(&bytes[..70_001]).unwrap();
    up.save_checkpoint().unwrap();
    up.write(&bytes[70_001..90_000]).unwrap();
    drop(up);
    let partial = ingest::partial_uploads(dir.path()).unwrap();
    assert_eq!(partial.len(), 1);
    assert!(partial[0].resumable);
    assert!(matches!(
        Ingest::resume_saved(dir.path(), UploadId::from_bytes([1; 16]), &o),
        Err(IngestError::NotFound)
    ));
    let mut up = Ingest::resume_saved(dir.path(), ID, &o).unwrap();
    assert_eq!(up.offset(), 70_001);
    assert_eq!(up.owner(), "alice");
    assert_eq!(up.name(), "s.bin");
    up.write(&bytes[70_001..]).unwrap();
    let done = up.finish().unwrap();
    let created = create_torrent(&dir.path().join("s.bin"), &o, &|_| ()).unwrap();
    assert_eq!(done.metainfo.to_bytes(), created.to_bytes());
    assert_eq!(leftovers(dir.path()), (vec!["s.bin".to_owned()], vec![]));
}

#[test]
fn discard_removes_every_trace() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(TorrentVersion::V1, None);
    let mut up = start(dir.path(), ID, "d", 10, None, &o).unwrap();
    up.write(b"12345").unwrap();
    up.save_checkpoint().unwrap();
    drop(up);
    assert!(ingest::discard(dir.path(), ID).unwrap());
    assert!(ingest::partial_uploads(dir.path()).unwrap().is_empty());
    assert_eq!(leftovers(dir.path()), (vec![], vec![]));
}
