//! `.torrent` files on disk for `seed` and `create`: where they go, whether an existing one is
//! reused, refused or overwritten, and making a new one with a progress report.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use seednode_storage::{CreateOptions, SkippedLink, Storage, Survey, SymlinkPolicy};
use seednode_wire::display::{escape_name, escape_path};
use seednode_wire::magnet::MagnetLink;
use seednode_wire::metainfo::Metainfo;

use super::{CliError, TorrentArgs};
use crate::progress;

/// Largest .torrent file read from disk, bytes (SECURITY.md M9: 10 MB).
pub(crate) const MAX_TORRENT_FILE_LEN: u64 = 10 * 1000 * 1000;

/// Skipped symbolic links named one by one in the warning; the rest are only counted.
const SKIPPED_LINKS_NAMED: usize = 3;

/// `PATH.torrent` beside PATH (for a directory, `DIR.torrent` beside the directory).
pub(crate) fn default_torrent_path(path: &Path) -> Result<PathBuf, CliError> {
    let path = std::path::absolute(path).map_err(|e| format!("{}: {e}", escape_path(path)))?;
    let name = path
        .file_name()
        .ok_or_else(|| format!("{} has no file name", escape_path(&path)))?;
    let mut file = name.to_os_string();
    file.push(".torrent");
    Ok(path.with_file_name(file))
}

/// Where the new .torrent of `path` goes: `-o`, or beside `path`.
pub(crate) fn output_path(args: &TorrentArgs, path: &Path) -> Result<PathBuf, CliError> {
    match &args.output {
        Some(o) => Ok(o.clone()),
        None => default_torrent_path(path),
    }
}

/// The temporary file a .torrent is written to before its rename.
fn part_path(dest: &Path) -> PathBuf {
    let mut tmp = dest.as_os_str().to_os_string();
    tmp.push(".part");
    PathBuf::from(tmp)
}

/// Checks, before any hashing, that a file can be created where `dest` goes (by creating and
/// removing its temporary file).
///
/// # Errors
/// The reason, with the hint that `-o` writes elsewhere.
pub(crate) fn check_writable(dest: &Path) -> Result<(), CliError> {
    let tmp = part_path(dest);
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&tmp);
            Ok(())
        }
        // A leftover of a crashed run: it is replaced when the torrent is written.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(format!(
            "cannot write {}: {e}; choose where the .torrent goes with -o FILE",
            escape_path(dest)
        )),
    }
}

/// Writes `bytes` to `dest` through a temporary file and a rename, so a crash never leaves a
/// half-written .torrent.
pub(crate) fn write_atomically(dest: &Path, bytes: &[u8]) -> Result<(), CliError> {
    let tmp = part_path(dest);
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, dest)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!(
            "writing {}: {e}; choose where the .torrent goes with -o FILE",
            escape_path(dest)
        )
    })
}

/// Reads and parses a .torrent of at most [`MAX_TORRENT_FILE_LEN`] bytes.
pub(crate) fn read_torrent_file(path: &Path) -> Result<Metainfo, CliError> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", escape_path(path)))?;
    let mut bytes = Vec::new();
    file.take(MAX_TORRENT_FILE_LEN + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{}: {e}", escape_path(path)))?;
    if bytes.len() as u64 > MAX_TORRENT_FILE_LEN {
        return Err(format!(
            "{}: larger than {MAX_TORRENT_FILE_LEN} bytes, not a .torrent we load",
            escape_path(path)
        ));
    }
    Metainfo::from_bytes(&bytes).map_err(|e| format!("{}: {e}", escape_path(path)))
}

/// What to do about the .torrent of one PATH, decided before hashing.
pub(crate) enum Plan {
    /// Hash the data and write a new .torrent to `out`.
    Create {
        /// Where it goes.
        out: PathBuf,
        /// The input as listed (for the progress total).
        survey: Survey,
    },
    /// `out` already describes this data (same files and lengths, and every option given
    /// agrees): verify it and seed it, leaving the file as it is.
    Reuse {
        /// The existing .torrent.
        out: PathBuf,
        /// Its contents.
        meta: Box<Metainfo>,
    },
}

/// The error for an existing .torrent that is not for this data.
fn refuse_existing(out: &Path, why: &str) -> CliError {
    format!(
        "{} already exists and {why}; it is left as it is. Write the new torrent elsewhere with \
         -o FILE, or replace it with --force",
        escape_path(out)
    )
}

/// Decides, without hashing, whether `path` gets a new .torrent or reuses the existing one at
/// its output path; checks that a new one can be written, and lists the input (warning about
/// skipped links).
///
/// # Errors
/// A missing or unusable input, an output that cannot be written, or an existing .torrent that
/// does not match (naming `-o` and `--force`).
pub(crate) fn plan(args: &TorrentArgs, path: &Path) -> Result<Plan, CliError> {
    let survey =
        seednode_storage::survey(path, args.symlinks.policy()).map_err(|e| e.to_string())?;
    let out = output_path(args, path)?;
    if !args.force && std::fs::symlink_metadata(&out).is_ok() {
        let meta = read_torrent_file(&out).map_err(|e| {
            refuse_existing(&out, &format!("is not a torrent seednode reads ({e})"))
        })?;
        if let Err(why) = matches_input(&meta, args, path) {
            return Err(refuse_existing(&out, &why));
        }
        return Ok(Plan::Reuse {
            out,
            meta: Box::new(meta),
        });
    }
    warn_skipped_links(&survey.skipped_links);
    check_writable(&out)?;
    Ok(Plan::Create { out, survey })
}

/// Whether the existing torrent `meta` can stand for `path` made with `args`: same name, files
/// and lengths on disk, and every option given on the command line agrees. The piece hashes are
/// checked later, when it is verified.
fn matches_input(meta: &Metainfo, args: &TorrentArgs, path: &Path) -> Result<(), String> {
    let name = match &args.name {
        Some(n) => n.clone(),
        None => std::path::absolute(path)
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_default(),
    };
    if meta.info.name != name {
        return Err(format!(
            "is for {:?}, not {:?}",
            escape_name(&meta.info.name),
            escape_name(&name)
        ));
    }
    Storage::open_with(path, &meta.info, args.symlinks.policy())
        .map_err(|e| format!("does not match the data ({e})"))?;
    let differs = |what: &str| Err(format!("differs from {what} given here"));
    if args
        .piece_length
        .is_some_and(|p| p != meta.info.piece_length)
    {
        return differs("--piece-length");
    }
    if args.private && !meta.info.private {
        return differs("--private");
    }
    let (has_v1, has_v2) = (meta.has_v1(), meta.v2.is_some());
    if (args.v2 && has_v1) || (args.hybrid && !(has_v1 && has_v2)) {
        return differs(if args.v2 { "--v2" } else { "--hybrid" });
    }
    let trackers: Vec<&String> = meta
        .announce
        .iter()
        .chain(meta.announce_list.iter().flatten())
        .collect();
    if !args.trackers.iter().all(|t| trackers.contains(&t)) {
        return differs("--tracker");
    }
    if !args.webseeds.iter().all(|w| meta.url_list.contains(w)) {
        return differs("--webseed");
    }
    if args.comment.is_some() && args.comment != meta.comment {
        return differs("--comment");
    }
    if args.source.is_some() && args.source != super::info::info_source(meta) {
        return differs("--source");
    }
    Ok(())
}

/// Warns once about symbolic links that were not followed: how many, and the first few.
pub(crate) fn warn_skipped_links(skipped: &[SkippedLink]) {
    let Some(first) = skipped.first() else { return };
    let named: Vec<String> = skipped
        .iter()
        .take(SKIPPED_LINKS_NAMED)
        .map(|s| format!("{} ({})", escape_path(&s.path), s.reason.as_str()))
        .collect();
    let more = skipped.len().saturating_sub(SKIPPED_LINKS_NAMED);
    let more = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    let hint = if first.reason == seednode_storage::SkipReason::NotFollowed
        && skipped.iter().all(|s| s.reason == first.reason)
    {
        "; --symlinks follow includes those that stay inside the directory"
    } else {
        ""
    };
    eprintln!(
        "warning: {} symbolic link{} not in the torrent: {}{more}{hint}",
        skipped.len(),
        if skipped.len() == 1 { "" } else { "s" },
        named.join(", ")
    );
}

/// The creation options of `args`, with `trackers` (each its own tier).
pub(crate) fn create_options(args: &TorrentArgs, trackers: &[String]) -> CreateOptions {
    CreateOptions {
        piece_length: args.piece_length,
        trackers: trackers.iter().map(|t| vec![t.clone()]).collect(),
        url_list: args.webseeds.clone(),
        private: args.private,
        threads: args.threads(),
        version: args.version(),
        name: args.name.clone(),
        comment: args.comment.clone(),
        source: args.source.clone(),
        symlinks: args.symlinks.policy(),
        ..CreateOptions::default()
    }
}

/// Hashes `path` into a new torrent as `opts` say, with a progress report over the surveyed
/// total (on a terminal a bar, otherwise a line every tenth).
pub(crate) fn create_metainfo(
    path: &Path,
    opts: &CreateOptions,
    survey: &Survey,
) -> Result<Metainfo, CliError> {
    let bar = progress::Progress::new("hashing", Some(survey.total_length));
    let meta = seednode_storage::create_torrent(path, opts, &|done| bar.set(done))
        .map_err(|e| e.to_string())?;
    bar.finish();
    warn_non_portable(&meta);
    Ok(meta)
}

/// Verifies `path` against `meta`, with a progress report; returns which pieces are good.
pub(crate) fn verify_data(
    meta: &Metainfo,
    storage: &Storage,
    threads: usize,
) -> Result<Vec<bool>, CliError> {
    let bar = progress::Progress::new("verifying", Some(meta.info.total_length()));
    let progress = |d| bar.set(d);
    // A v2-only torrent has no SHA-1 piece hashes: its merkle trees are checked instead.
    let have = match meta.v2.as_ref().filter(|_| !meta.has_v1()) {
        Some(v2) => seednode_storage::verify_v2(storage, v2, threads, &progress),
        None => seednode_storage::verify(storage, &meta.info, threads, &progress),
    }
    .map_err(|e| e.to_string())?;
    bar.finish();
    Ok(have)
}

/// An existing .torrent `out` for `path` (its name, files and flags already agree): opens the
/// data and verifies every piece, so it is reused only when all match; returns the storage and
/// the (all good) pieces.
///
/// # Errors
/// The data cannot be opened or read, or a piece differs: the file is left as it is, and the
/// message names `-o` and `--force`.
pub(crate) fn verify_for_reuse(
    path: &Path,
    out: &Path,
    meta: &Metainfo,
    targs: &TorrentArgs,
) -> Result<(Storage, Vec<bool>), CliError> {
    let storage = open_storage(path, meta, targs.symlinks.policy())?;
    let have = verify_data(meta, &storage, targs.threads())?;
    let bad = have.iter().filter(|h| !**h).count();
    if bad > 0 {
        return Err(format!(
            "{} already exists and does not match the data ({bad} of {} pieces differ); \
             it is left as it is. Write the new torrent elsewhere with -o FILE, or \
             replace it with --force",
            escape_path(out),
            have.len()
        ));
    }
    Ok((storage, have))
}

/// Opens `path` as the data of `meta`, following links as `symlinks` says.
pub(crate) fn open_storage(
    path: &Path,
    meta: &Metainfo,
    symlinks: SymlinkPolicy,
) -> Result<Storage, CliError> {
    Storage::open_with(path, &meta.info, symlinks).map_err(|e| e.to_string())
}

/// Warns on stderr, one line per path and a count, about names of `meta` that Windows cannot
/// store; the torrent stays as it is (mktorrent does not check at all).
fn warn_non_portable(meta: &Metainfo) {
    let found = seednode_storage::non_portable_paths(&meta.info);
    for name in &found {
        let path = name.path.join("/");
        eprintln!(
            "warning: {}: not portable: {}",
            escape_name(&path),
            name.reason
        );
    }
    match found.len() {
        0 => {}
        1 => eprintln!("warning: 1 name is not portable to Windows; the torrent is created anyway"),
        n => eprintln!(
            "warning: {n} names are not portable to Windows; the torrent is created anyway"
        ),
    }
}

/// The torrent's magnet link (BEP 9; `urn:btmh:` too for v2 and hybrid, BEP 52), with its
/// trackers and this node's addresses as direct peers (`x.pe`, one per address family it is
/// reachable on).
pub(crate) fn magnet_of(meta: &Metainfo, peers: &[SocketAddr]) -> String {
    let mut link = MagnetLink::for_metainfo(meta);
    if let Some(a) = meta
        .announce
        .as_ref()
        .filter(|a| !link.trackers.contains(a))
    {
        link.trackers.insert(0, a.clone());
    }
    link.peers = peers.iter().map(ToString::to_string).collect();
    link.to_uri()
}

/// Every tracker URL `meta` names, `announce` first, without repeats.
pub(crate) fn trackers_of(meta: &Metainfo) -> Vec<String> {
    let mut all: Vec<String> = Vec::new();
    for url in meta
        .announce
        .iter()
        .chain(meta.announce_list.iter().flatten())
    {
        if !all.contains(url) {
            all.push(url.clone());
        }
    }
    all
}
