//! Deleting a torrent's data (`seednode remove --delete-data`, `DELETE /api/v1/torrents/<ih>?
//! delete_data=true`): only the torrent's own files, only beneath the node's content directory,
//! through no symbolic link.
//!
//! Every unlink is an `unlinkat` on a directory opened beneath the content directory with the
//! same confinement as every other open ([`crate::root`]: `openat2` `RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS`, or the `O_NOFOLLOW` walk). A link in place of a file is removed as a
//! link (never followed); a link in place of a directory stops the deletion of what lies behind
//! it. Directories the torrent's files leave empty are removed, deepest first; a directory that
//! holds anything else stays.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{self as rfs, AtFlags, OFlags};
use rustix::io::Errno;

use crate::catalog::FileRecord;
use crate::path::SafeRelPath;
use crate::root::{Root, SymlinkPolicy, open_beneath};

/// What [`delete_torrent_data`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteReport {
    /// Files removed.
    pub files_removed: u64,
    /// Files that were already gone.
    pub files_missing: u64,
    /// Directories removed because the torrent's files left them empty.
    pub dirs_removed: u64,
}

/// Why data was not deleted.
#[derive(Debug, thiserror::Error)]
pub enum DeleteError {
    /// The torrent's data path is not strictly beneath the content directory: the node deletes
    /// only what it stores itself (data an operator seeds from elsewhere stays).
    #[error("{data_path} is not inside the node's content directory {content_root}")]
    OutsideContentRoot {
        /// The torrent's data path.
        data_path: PathBuf,
        /// The content directory.
        content_root: PathBuf,
    },
    /// A recorded file path is not a safe relative path (a corrupt or hostile row).
    #[error("file path {path:?} refused: {reason}")]
    BadPath {
        /// The recorded path.
        path: String,
        /// Why.
        reason: String,
    },
    /// A file could not be removed (named), for example a link in place of a directory, or
    /// permissions. Files removed before it stay removed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

/// Deletes the files of a torrent whose data is at `data_path` (a file for a single-file
/// torrent, whose only record has an empty path; a directory otherwise), which must lie
/// strictly beneath `content_root` (checked on the components, no `..` allowed), then the
/// directories its files leave empty, up to and including the torrent's own directory.
/// Padding files (BEP 47) have nothing on disk and are skipped.
///
/// # Errors
/// [`DeleteError::OutsideContentRoot`]; [`DeleteError::BadPath`]; [`DeleteError::Io`] for the
/// first file that could not be removed (deletion stops there).
pub fn delete_torrent_data(
    content_root: &Path,
    data_path: &Path,
    files: &[FileRecord],
) -> Result<DeleteReport, DeleteError> {
    let outside = || DeleteError::OutsideContentRoot {
        data_path: data_path.to_path_buf(),
        content_root: content_root.to_path_buf(),
    };
    let rel_root = data_path
        .strip_prefix(content_root)
        .map_err(|_| outside())?;
    let mut root_components = Vec::new();
    for c in rel_root.components() {
        match c {
            Component::Normal(name) => root_components.push(name.to_string_lossy().into_owned()),
            _ => return Err(outside()),
        }
    }
    if root_components.is_empty() {
        return Err(outside());
    }
    let root = Root::open_dir(content_root).map_err(|e| DeleteError::Io {
        path: content_root.to_path_buf(),
        source: io::Error::other(e.to_string()),
    })?;
    let single = files.first().is_some_and(|f| f.path.is_empty());
    // Every path below is relative to the content directory.
    let mut targets: Vec<Vec<String>> = Vec::new();
    if single {
        targets.push(root_components.clone());
    } else {
        for file in files.iter().filter(|f| !f.padding) {
            let components: Vec<&str> = file.path.split('/').collect();
            SafeRelPath::new(&components).map_err(|e| DeleteError::BadPath {
                path: file.path.clone(),
                reason: e.to_string(),
            })?;
            let mut full = root_components.clone();
            full.extend(components.iter().map(|c| (*c).to_owned()));
            targets.push(full);
        }
    }
    let mut report = DeleteReport::default();
    let mut dirs: Vec<Vec<String>> = Vec::new();
    for target in &targets {
        let Some((name, parent)) = target.split_last() else {
            continue;
        };
        let shown = content_root.join(target.join("/"));
        let dir = match open_dir_beneath(&root, parent) {
            Ok(d) => d,
            Err(Errno::NOENT) => {
                report.files_missing += 1;
                continue;
            }
            Err(errno) => {
                return Err(DeleteError::Io {
                    path: shown,
                    source: io::Error::from(errno),
                });
            }
        };
        match rfs::unlinkat(dir.as_fd(), name.as_str(), AtFlags::empty()) {
            Ok(()) => report.files_removed += 1,
            Err(Errno::NOENT) => report.files_missing += 1,
            Err(errno) => {
                return Err(DeleteError::Io {
                    path: shown,
                    source: io::Error::from(errno),
                });
            }
        }
        // Every directory from the torrent's own down to the file's parent may now be empty.
        for depth in root_components.len()..=parent.len() {
            let d = parent[..depth].to_vec();
            if !dirs.contains(&d) {
                dirs.push(d);
            }
        }
    }
    if !single {
        // Deepest first, so a parent is tried after its children.
        dirs.sort_by_key(|d| std::cmp::Reverse(d.len()));
        for d in &dirs {
            let Some((name, parent)) = d.split_last() else {
                continue;
            };
            let Ok(at) = open_dir_beneath(&root, parent) else {
                continue;
            };
            // ENOTEMPTY (something else lives there), ENOENT, ENOTDIR: it stays; nothing to do.
            if rfs::unlinkat(at.as_fd(), name.as_str(), AtFlags::REMOVEDIR).is_ok() {
                report.dirs_removed += 1;
            }
        }
    }
    Ok(report)
}

/// Opens the directory `components` (relative to the root; empty = the root itself) beneath
/// `root`, through no link.
fn open_dir_beneath(root: &Root, components: &[String]) -> Result<OwnedFd, Errno> {
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    if components.is_empty() {
        return rustix::io::fcntl_dupfd_cloexec(root.as_fd(), 0);
    }
    let rel: PathBuf = components.iter().collect();
    open_beneath(root.as_fd(), &rel, flags, SymlinkPolicy::Refuse)
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::symlink;

    use super::*;

    fn record(index: u32, path: &str, padding: bool) -> FileRecord {
        FileRecord {
            index,
            path: path.into(),
            length: 1,
            padding,
            mtime_ns: None,
            sha256: None,
        }
    }

    #[test]
    fn removes_the_files_and_the_directories_they_leave_empty() {
        let tmp = tempfile::tempdir().unwrap();
        let content = tmp.path().join("data");
        let t = content.join("album");
        fs::create_dir_all(t.join("cd1/extra")).unwrap();
        fs::write(t.join("cd1/a.flac"), b"a").unwrap();
        fs::write(t.join("cd1/extra/b.txt"), b"b").unwrap();
        fs::write(t.join("cover.jpg"), b"c").unwrap();
        let files = [
            record(0, "cd1/a.flac", false),
            record(1, ".pad/1", true),
            record(2, "cd1/extra/b.txt", false),
            record(3, "cover.jpg", false),
            record(4, "gone.txt", false),
        ];
        let report = delete_torrent_data(&content, &t, &files).unwrap();
        assert_eq!(report.files_removed, 3);
        assert_eq!(report.files_missing, 1);
        assert_eq!(report.dirs_removed, 3, "extra, cd1, album");
        assert!(!t.exists());
        assert!(content.exists(), "the content directory itself stays");
    }

    #[test]
    fn keeps_directories_that_hold_other_files() {
        let tmp = tempfile::tempdir().unwrap();
        let content = tmp.path().join("data");
        let t = content.join("album");
        fs::create_dir_all(t.join("cd1")).unwrap();
        fs::write(t.join("cd1/a.flac"), b"a").unwrap();
        fs::write(t.join("cd1/notes.txt"), b"mine").unwrap();
        let report = delete_torrent_data(&content, &t, &[record(0, "cd1/a.flac", false)]).unwrap();
        assert_eq!(report.files_removed, 1);
        assert_eq!(report.dirs_removed, 0);
        assert_eq!(fs::read(t.join("cd1/notes.txt")).unwrap(), b"mine");
    }

    #[test]
    fn a_single_file_torrent_removes_its_file_only() {
        let tmp = tempfile::tempdir().unwrap();
        let content = tmp.path().join("data");
        fs::create_dir_all(&content).unwrap();
        fs::write(content.join("f.iso"), b"x").unwrap();
        fs::write(content.join("other"), b"y").unwrap();
        let report =
            delete_torrent_data(&content, &content.join("f.iso"), &[record(0, "", false)]).unwrap();
        assert_eq!(report.files_removed, 1);
        assert!(!content.join("f.iso").exists());
        assert!(content.join("other").exists());
    }

    #[test]
    fn never_leaves_the_content_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let content = tmp.path().join("data");
        let outside = tmp.path().join("precious");
        fs::create_dir_all(&content).unwrap();
        fs::create_dir_all(&outside).unwrap();
        fs::write(outside.join("keep"), b"k").unwrap();
        // A data path outside, or the content directory itself, or with `..`.
        for bad in [
            outside.clone(),
            content.clone(),
            content.join("../precious"),
        ] {
            let err = delete_torrent_data(&content, &bad, &[record(0, "keep", false)]).unwrap_err();
            assert!(
                matches!(err, DeleteError::OutsideContentRoot { .. }),
                "{bad:?}"
            );
        }
        // A hostile file path.
        fs::create_dir_all(content.join("t")).unwrap();
        let err = delete_torrent_data(
            &content,
            &content.join("t"),
            &[record(0, "../../precious/keep", false)],
        )
        .unwrap_err();
        assert!(matches!(err, DeleteError::BadPath { .. }));
        // A link in place of the torrent's directory: nothing behind it is touched.
        symlink(&outside, content.join("linked")).unwrap();
        let r = delete_torrent_data(
            &content,
            &content.join("linked"),
            &[record(0, "keep", false)],
        );
        assert!(r.is_err(), "{r:?}");
        // A link in place of a single file is removed as a link.
        symlink(outside.join("keep"), content.join("f")).unwrap();
        let report =
            delete_torrent_data(&content, &content.join("f"), &[record(0, "", false)]).unwrap();
        assert_eq!(report.files_removed, 1);
        assert!(!content.join("f").exists());
        assert_eq!(fs::read(outside.join("keep")).unwrap(), b"k");
    }
}
