//! [`Root`]: the directory a torrent's files are opened beneath, never through a symbolic link
//! (SECURITY §0 rule 8).
//!
//! The root is opened once, by path, when a torrent's storage is set up; that open follows
//! links, because the operator chose the path. Every later open of a file below it is relative
//! to that descriptor and follows none:
//! - `openat2(2)` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS` (Linux 5.6): the kernel refuses a
//!   link in any component, and any escape from the root, atomically;
//! - where `openat2` is unavailable (`ENOSYS` on older kernels, `EPERM` from seccomp filters
//!   written before it existed), a walk: each directory is opened with
//!   `openat(dirfd, component, O_PATH | O_NOFOLLOW)` and checked to be a directory, relative to
//!   the one before, and the file with `O_NOFOLLOW`.
//!
//! Either way a link swapped in anywhere below the root, at any time, fails the open (`ELOOP`,
//! reported as [`StorageError::SymlinkInPath`]); no byte outside the root is ever read.
//!
//! A root opened with [`SymlinkPolicy::FollowWithinRoot`] (the operator's choice, for trees
//! that link between their own files, as mktorrent follows them) drops `RESOLVE_NO_SYMLINKS`
//! and keeps `RESOLVE_BENEATH`: the kernel follows a link only while every step of its
//! resolution stays beneath the root, and refuses any that leaves it, and any absolute link,
//! with `EXDEV`, checked atomically at each open, so a link changed later to point outside is
//! refused too. "Never escapes the data directory" holds either way. Where `openat2` is
//! unavailable the walk keeps refusing every link: following one safely needs the kernel's
//! check. Files are
//! opened with `O_NONBLOCK` so that a FIFO put in a file's place cannot block the disk thread; the
//! flag is cleared once the descriptor is known to be a regular file.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::StorageError;
use crate::limits::MAX_OPEN_ATTEMPTS;

/// Set once `openat2` failed with `ENOSYS` or `EPERM`: every later open walks instead. Both ways
/// are equally strict; the walk costs one `openat` and one `fstat` per directory.
static OPENAT2_UNAVAILABLE: AtomicBool = AtomicBool::new(false);

/// Whether symbolic links below a torrent's root are followed, when creating a torrent and
/// when serving its files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SymlinkPolicy {
    /// No link below the root is followed (creation skips them, opens through one fail).
    #[default]
    Refuse,
    /// Links whose every resolution step stays beneath the root are followed (relative links
    /// only, `openat2` `RESOLVE_BENEATH`); others are skipped at creation and refused when
    /// opened. Needs Linux 5.6; elsewhere it is [`SymlinkPolicy::Refuse`].
    FollowWithinRoot,
}

/// A torrent's root directory, held open; every file of the torrent is opened beneath it.
#[derive(Debug)]
pub(crate) struct Root {
    /// `O_PATH | O_DIRECTORY` descriptor of the root.
    fd: OwnedFd,
    /// The root's path as given, for messages only (never opened again).
    path: PathBuf,
    /// Whether links beneath the root are followed.
    symlinks: SymlinkPolicy,
}

impl Root {
    /// Opens the directory `path` as a root, following links in `path` (the operator's choice).
    ///
    /// # Errors
    /// [`StorageError::FileMissing`], [`StorageError::NotRegularFile`] (not a directory), or
    /// [`StorageError::Io`].
    pub(crate) fn open_dir(path: &Path) -> Result<Self, StorageError> {
        let fd = rfs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|errno| match errno {
            Errno::NOENT => StorageError::FileMissing {
                path: path.to_path_buf(),
            },
            Errno::NOTDIR => StorageError::NotRegularFile {
                path: path.to_path_buf(),
            },
            _ => StorageError::Io {
                path: path.to_path_buf(),
                source: io::Error::from(errno),
            },
        })?;
        Ok(Self {
            fd,
            path: path.to_path_buf(),
            symlinks: SymlinkPolicy::Refuse,
        })
    }

    /// The root's descriptor (`O_PATH | O_DIRECTORY`), for `*at` calls beneath it.
    pub(crate) fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Whether links beneath the root are followed.
    pub(crate) const fn symlinks(&self) -> SymlinkPolicy {
        self.symlinks
    }

    /// The same root, following links beneath it as `symlinks` says.
    pub(crate) fn with_symlinks(mut self, symlinks: SymlinkPolicy) -> Self {
        self.symlinks = symlinks;
        self
    }

    /// Opens `rel` below the root with `O_PATH` (following links as the root's policy allows)
    /// and returns its type and size in bytes; used by creation to decide whether a link is
    /// followed, with the very check every later open makes.
    ///
    /// # Errors
    /// As [`open_beneath`].
    pub(crate) fn stat_beneath(&self, rel: &Path) -> Result<(FileType, u64), Errno> {
        let fd = open_beneath(
            self.fd.as_fd(),
            rel,
            OFlags::PATH | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            self.symlinks,
        )?;
        let stat = rfs::fstat(&fd)?;
        Ok((
            FileType::from_raw_mode(stat.st_mode),
            u64::try_from(stat.st_size).unwrap_or(0),
        ))
    }

    /// The root for the single file `path` and the file's name in it: `path`'s directory, and
    /// its last component. When `path` itself is a symbolic link (the operator's choice) it is
    /// resolved now, once: the root is then the target's directory, and a link put in the
    /// target's place later is refused like any other.
    ///
    /// # Errors
    /// [`StorageError::NotRegularFile`] for a path without a last component (`/`, `..`);
    /// the errors of [`Root::open_dir`] for its directory; [`StorageError::Io`] when the link
    /// cannot be resolved.
    pub(crate) fn for_file(path: &Path) -> Result<(Self, PathBuf), StorageError> {
        let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
        let resolved = if is_link {
            std::fs::canonicalize(path).map_err(|e| crate::files::open_error(path, e))?
        } else {
            path.to_path_buf()
        };
        let (Some(dir), Some(name)) = (resolved.parent(), resolved.file_name()) else {
            return Err(StorageError::NotRegularFile {
                path: path.to_path_buf(),
            });
        };
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        Ok((Self::open_dir(dir)?, PathBuf::from(name)))
    }

    /// Opens the regular file `rel` below the root, read-only, through no link; `shown` is the
    /// file's path for errors. Returns the file and its length in bytes.
    ///
    /// # Errors
    /// [`StorageError::FileMissing`]; [`StorageError::SymlinkInPath`] when a component is a link
    /// (named by the first such component); [`StorageError::NotRegularFile`] when a directory
    /// component is something else, or the file is not a regular file; [`StorageError::Io`].
    pub(crate) fn open_file(&self, rel: &Path, shown: &Path) -> Result<(File, u64), StorageError> {
        let flags =
            OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::NOCTTY | OFlags::NONBLOCK;
        let fd = open_beneath(self.fd.as_fd(), rel, flags, self.symlinks)
            .map_err(|e| self.error(rel, shown, e))?;
        let io_error = |errno: Errno| StorageError::Io {
            path: shown.to_path_buf(),
            source: io::Error::from(errno),
        };
        let stat = rfs::fstat(&fd).map_err(io_error)?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
            return Err(StorageError::NotRegularFile {
                path: shown.to_path_buf(),
            });
        }
        let status = rfs::fcntl_getfl(&fd).map_err(io_error)?;
        rfs::fcntl_setfl(&fd, status - OFlags::NONBLOCK).map_err(io_error)?;
        // st_size of a regular file is never negative.
        let length = u64::try_from(stat.st_size).unwrap_or(0);
        Ok((File::from(fd), length))
    }

    /// The directory `name` directly beneath the root, created (mode 0700) when missing, as a
    /// root of its own; `name` is one plain component and is not followed if it is a link.
    ///
    /// # Errors
    /// `EINVAL` for a name that is not one plain component; `ELOOP` or `ENOTDIR` when `name`
    /// is a link or not a directory; other `errno`s of `mkdirat`/`openat`.
    pub(crate) fn subdir(&self, name: &str) -> Result<Self, Errno> {
        let name = single_component(name)?;
        match rfs::mkdirat(&self.fd, name, Mode::from_raw_mode(0o700)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(errno) => return Err(errno),
        }
        let fd = openat_retrying(
            self.fd.as_fd(),
            name.as_os_str(),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        )?;
        if FileType::from_raw_mode(rfs::fstat(&fd)?.st_mode) != FileType::Directory {
            return Err(Errno::NOTDIR);
        }
        Ok(Self {
            fd,
            path: self.path.join(name),
            symlinks: SymlinkPolicy::Refuse,
        })
    }

    /// Creates the new regular file `name` directly beneath the root, write-only (the
    /// descriptor cannot read: an upload is hashed as it is written, never read back), mode
    /// 0600: `O_CREAT | O_EXCL | O_NOFOLLOW`, so an existing entry (a link included) is never
    /// opened.
    ///
    /// # Errors
    /// `EEXIST` when `name` exists; `EINVAL` for a name that is not one plain component; other
    /// `errno`s of `openat`.
    pub(crate) fn create_new(&self, name: &str) -> Result<File, Errno> {
        let name = single_component(name)?;
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        rfs::openat(&self.fd, name, flags, Mode::from_raw_mode(0o600)).map(File::from)
    }

    /// Opens the existing regular file `name` directly beneath the root write-only (as
    /// [`Root::create_new`]), following no link.
    ///
    /// # Errors
    /// `ENOENT`, `ELOOP` for a link, `EINVAL` for a name that is not one plain component or not
    /// a regular file; other `errno`s of `openat`.
    pub(crate) fn open_write(&self, name: &str) -> Result<File, Errno> {
        let name = single_component(name)?;
        let flags = OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
        let fd = rfs::openat(&self.fd, name, flags, Mode::empty())?;
        if FileType::from_raw_mode(rfs::fstat(&fd)?.st_mode) != FileType::RegularFile {
            return Err(Errno::INVAL);
        }
        let status = rfs::fcntl_getfl(&fd)?;
        rfs::fcntl_setfl(&fd, status - OFlags::NONBLOCK)?;
        Ok(File::from(fd))
    }

    /// Whether an entry `name` (of any type, a link included) exists directly beneath the
    /// root.
    pub(crate) fn contains(&self, name: &str) -> bool {
        single_component(name)
            .is_ok_and(|name| rfs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW).is_ok())
    }

    /// Renames `from` (directly beneath this root) to `to` directly beneath `dest`, never
    /// replacing an existing entry (`renameat2(RENAME_NOREPLACE)`; both on one file system).
    ///
    /// # Errors
    /// `EEXIST` when `to` exists; `EINVAL` for names that are not one plain component; other
    /// `errno`s of `renameat2`.
    pub(crate) fn rename_noreplace(&self, from: &str, dest: &Self, to: &str) -> Result<(), Errno> {
        let from = single_component(from)?;
        let to = single_component(to)?;
        rfs::renameat_with(&self.fd, from, &dest.fd, to, rfs::RenameFlags::NOREPLACE)
    }

    /// Renames `from` to `to`, both directly beneath the root, atomically replacing `to` (for
    /// this crate's own bookkeeping files only, never a torrent's data).
    ///
    /// # Errors
    /// `EINVAL` for names that are not one plain component; other `errno`s of `renameat`.
    pub(crate) fn rename_replace(&self, from: &str, to: &str) -> Result<(), Errno> {
        let from = single_component(from)?;
        let to = single_component(to)?;
        rfs::renameat(&self.fd, from, &self.fd, to)
    }

    /// The modification time of the entry `name` directly beneath the root (not following a
    /// link), or `None` when it is missing; a time before the epoch reads as the epoch.
    pub(crate) fn modified(&self, name: &str) -> Option<std::time::SystemTime> {
        let name = single_component(name).ok()?;
        let stat = rfs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW).ok()?;
        let secs = u64::try_from(stat.st_mtime).unwrap_or(0);
        let nanos = u32::try_from(stat.st_mtime_nsec)
            .unwrap_or(0)
            .min(999_999_999);
        std::time::SystemTime::UNIX_EPOCH.checked_add(std::time::Duration::new(secs, nanos))
    }

    /// Removes the file `name` directly beneath the root (a link itself, never its target).
    ///
    /// # Errors
    /// `ENOENT`, `EINVAL` for a name that is not one plain component, other `errno`s of
    /// `unlinkat`.
    pub(crate) fn remove_file(&self, name: &str) -> Result<(), Errno> {
        let name = single_component(name)?;
        rfs::unlinkat(&self.fd, name, AtFlags::empty())
    }

    /// `fsync`s the root directory itself, so that entries created, renamed or removed in it
    /// are durable (SECURITY §0 rule 12).
    ///
    /// # Errors
    /// The `errno` of `openat` or `fsync`.
    pub(crate) fn sync(&self) -> Result<(), Errno> {
        let dir = rfs::openat(
            &self.fd,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        rfs::fsync(&dir)
    }

    /// The names of the entries directly beneath the root (`.` and `..` left out), at most
    /// `limit` of them.
    ///
    /// # Errors
    /// The `errno` of `openat` or `getdents`.
    pub(crate) fn list(&self, limit: usize) -> Result<Vec<String>, Errno> {
        let dir = rfs::openat(
            &self.fd,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let mut names = Vec::new();
        for entry in rfs::Dir::new(dir)? {
            let entry = entry?;
            let Ok(name) = entry.file_name().to_str() else {
                continue;
            };
            if name != "." && name != ".." {
                names.push(name.to_owned());
            }
            if names.len() >= limit {
                break;
            }
        }
        Ok(names)
    }

    /// Names the error of opening `rel`: a link or a non-directory is named by the first
    /// component of `rel` that is one (found with `fstatat` below the root, for the message only).
    fn error(&self, rel: &Path, shown: &Path, errno: Errno) -> StorageError {
        match errno {
            Errno::NOENT => StorageError::FileMissing {
                path: shown.to_path_buf(),
            },
            Errno::LOOP | Errno::XDEV => StorageError::SymlinkInPath {
                path: self
                    .first_bad_component(rel)
                    .unwrap_or_else(|| shown.to_path_buf()),
            },
            Errno::NOTDIR => StorageError::NotRegularFile {
                path: self
                    .first_bad_component(rel)
                    .unwrap_or_else(|| shown.to_path_buf()),
            },
            _ => StorageError::Io {
                path: shown.to_path_buf(),
                source: io::Error::from(errno),
            },
        }
    }

    /// The path of the first component of `rel` that is a link, or a non-directory before the
    /// last component.
    fn first_bad_component(&self, rel: &Path) -> Option<PathBuf> {
        let components: Vec<&Path> = rel.ancestors().collect();
        // ancestors() runs from `rel` down to ""; walk it the other way, skipping "".
        for prefix in components.iter().rev().skip(1) {
            let stat = rfs::statat(self.fd.as_fd(), *prefix, AtFlags::SYMLINK_NOFOLLOW).ok()?;
            let file_type = FileType::from_raw_mode(stat.st_mode);
            let last = *prefix == rel;
            if file_type == FileType::Symlink || (!last && file_type != FileType::Directory) {
                return Some(self.path.join(prefix));
            }
        }
        None
    }
}

/// Opens `rel` below `dir` with `flags`, following no link and never leaving `dir`: `openat2`
/// with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`, or [`open_beneath_walk`] where the kernel lacks
/// it. `flags` must hold `O_NOFOLLOW` (the walk relies on it for the last component).
///
/// With [`SymlinkPolicy::FollowWithinRoot`], `O_NOFOLLOW` is dropped from `flags` and `openat2`
/// keeps only `RESOLVE_BENEATH`: links that stay beneath `dir` are followed (the walk still
/// refuses every link).
///
/// # Errors
/// The `errno` of the failed open: `ELOOP` for a link, `EXDEV` for an escape, `ENOTDIR`,
/// `ENOENT`, ...; `EAGAIN` when the kernel saw a rename race [`MAX_OPEN_ATTEMPTS`] times.
/// `EXDEV` also for a followed link that leaves `dir` or is absolute.
pub(crate) fn open_beneath(
    dir: BorrowedFd<'_>,
    rel: &Path,
    flags: OFlags,
    symlinks: SymlinkPolicy,
) -> Result<OwnedFd, Errno> {
    if !OPENAT2_UNAVAILABLE.load(Ordering::Relaxed) {
        let (resolve, flags) = match symlinks {
            SymlinkPolicy::Refuse => (ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS, flags),
            SymlinkPolicy::FollowWithinRoot => (ResolveFlags::BENEATH, flags - OFlags::NOFOLLOW),
        };
        let mut last = Errno::AGAIN;
        for _ in 0..MAX_OPEN_ATTEMPTS {
            match rfs::openat2(dir, rel, flags, Mode::empty(), resolve) {
                // EAGAIN: a concurrent rename made the kernel unsure; it asks for a retry.
                Err(errno @ (Errno::AGAIN | Errno::INTR)) => last = errno,
                Err(Errno::NOSYS | Errno::PERM) => {
                    OPENAT2_UNAVAILABLE.store(true, Ordering::Relaxed);
                    return open_beneath_walk(dir, rel, flags);
                }
                result => return result,
            }
        }
        return Err(last);
    }
    open_beneath_walk(dir, rel, flags)
}

/// [`open_beneath`] without `openat2`: opens each directory of `rel` with
/// `O_PATH | O_NOFOLLOW` relative to the one before and checks with `fstat` that it is a
/// directory (a link is `ELOOP`, anything else `ENOTDIR`), then the last component with `flags`
/// (which hold `O_NOFOLLOW`).
///
/// # Errors
/// `EXDEV` when `rel` has a component other than a plain name (`..`, `/`, `.`): it could leave
/// `dir`; `EINVAL` for an empty `rel`; otherwise as [`open_beneath`].
pub(crate) fn open_beneath_walk(
    dir: BorrowedFd<'_>,
    rel: &Path,
    flags: OFlags,
) -> Result<OwnedFd, Errno> {
    let mut names = Vec::new();
    for component in rel.components() {
        match component {
            Component::Normal(name) => names.push(name),
            _ => return Err(Errno::XDEV),
        }
    }
    let Some((file, dirs)) = names.split_last() else {
        return Err(Errno::INVAL);
    };
    let mut current: Option<OwnedFd> = None;
    for name in dirs {
        let at = current.as_ref().map_or(dir, AsFd::as_fd);
        let fd = openat_retrying(at, name, OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC)?;
        match FileType::from_raw_mode(rfs::fstat(&fd)?.st_mode) {
            FileType::Directory => current = Some(fd),
            FileType::Symlink => return Err(Errno::LOOP),
            _ => return Err(Errno::NOTDIR),
        }
    }
    let at = current.as_ref().map_or(dir, AsFd::as_fd);
    openat_retrying(at, file, flags | OFlags::NOFOLLOW)
}

/// `name` as a path of exactly one plain component (no `/`, not `.`, `..` or empty).
///
/// # Errors
/// `EINVAL` otherwise.
fn single_component(name: &str) -> Result<&Path, Errno> {
    let path = Path::new(name);
    let mut components = path.components();
    match (components.next(), components.next()) {
        (Some(Component::Normal(_)), None) if !name.contains('/') => Ok(path),
        _ => Err(Errno::INVAL),
    }
}

/// `openat`, retried on `EINTR` at most [`MAX_OPEN_ATTEMPTS`] times.
fn openat_retrying(
    dir: BorrowedFd<'_>,
    name: &std::ffi::OsStr,
    flags: OFlags,
) -> Result<OwnedFd, Errno> {
    let mut last = Errno::INTR;
    for _ in 0..MAX_OPEN_ATTEMPTS {
        match rfs::openat(dir, name, flags, Mode::empty()) {
            Err(Errno::INTR) => last = Errno::INTR,
            result => return result,
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::symlink;

    use super::*;

    const FLAGS: OFlags = OFlags::RDONLY
        .union(OFlags::CLOEXEC)
        .union(OFlags::NOFOLLOW)
        .union(OFlags::NONBLOCK);

    /// Both ways of opening, for the same checks.
    fn both(dir: &Path, rel: &str) -> [Result<OwnedFd, Errno>; 2] {
        let root = Root::open_dir(dir).unwrap();
        let rel = Path::new(rel);
        [
            rfs::openat2(
                root.fd.as_fd(),
                rel,
                FLAGS,
                Mode::empty(),
                ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
            ),
            open_beneath_walk(root.fd.as_fd(), rel, FLAGS),
        ]
    }

    /// A tree: `t/sub/f` (a file), `t/link-dir` -> `outside`, `t/sub/link-file` -> `outside/f`,
    /// `t/file-as-dir` (a file), and `outside/f`.
    fn tree() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("t");
        let outside = dir.path().join("outside");
        fs::create_dir_all(root.join("sub")).unwrap();
        fs::create_dir_all(&outside).unwrap();
        fs::write(root.join("sub/f"), b"inside").unwrap();
        fs::write(outside.join("f"), b"outside").unwrap();
        fs::write(root.join("file-as-dir"), b"x").unwrap();
        symlink(&outside, root.join("link-dir")).unwrap();
        symlink(outside.join("f"), root.join("sub/link-file")).unwrap();
        symlink("../outside", root.join("rel-link")).unwrap();
        (dir, root)
    }

    #[test]
    fn walk_and_openat2_agree() {
        let (_dir, root) = tree();
        for (rel, expected) in [
            ("sub/f", None),
            ("link-dir/f", Some(Errno::LOOP)),
            ("sub/link-file", Some(Errno::LOOP)),
            ("rel-link/f", Some(Errno::LOOP)),
            ("file-as-dir/f", Some(Errno::NOTDIR)),
            ("sub/missing", Some(Errno::NOENT)),
            ("missing/f", Some(Errno::NOENT)),
            ("../outside/f", Some(Errno::XDEV)),
        ] {
            for (way, result) in ["openat2", "walk"].into_iter().zip(both(&root, rel)) {
                match (result, expected) {
                    (Ok(_), None) => {}
                    (Err(got), Some(want)) => assert_eq!(got, want, "{way} {rel}"),
                    (got, want) => panic!("{way} {rel}: {got:?}, expected {want:?}"),
                }
            }
        }
    }

    #[test]
    fn walk_refuses_absolute_and_dot_paths() {
        let (_dir, root) = tree();
        let root = Root::open_dir(&root).unwrap();
        for rel in ["/etc/passwd", "./sub/f", "sub/../sub/f", ""] {
            assert!(
                open_beneath_walk(root.fd.as_fd(), Path::new(rel), FLAGS).is_err(),
                "{rel}"
            );
        }
    }

    #[test]
    fn errors_name_the_offending_component() {
        let (_dir, root_path) = tree();
        let root = Root::open_dir(&root_path).unwrap();
        let shown = root_path.join("link-dir/f");
        match root.open_file(Path::new("link-dir/f"), &shown) {
            Err(StorageError::SymlinkInPath { path }) => {
                assert_eq!(path, root_path.join("link-dir"))
            }
            other => panic!("{other:?}"),
        }
        match root.open_file(Path::new("file-as-dir/f"), &shown) {
            Err(StorageError::NotRegularFile { path }) => {
                assert_eq!(path, root_path.join("file-as-dir"));
            }
            other => panic!("{other:?}"),
        }
        match root.open_file(Path::new("sub"), &shown) {
            Err(StorageError::NotRegularFile { path }) => assert_eq!(path, shown),
            other => panic!("{other:?}"),
        }
        let (file, len) = root.open_file(Path::new("sub/f"), &shown).unwrap();
        assert_eq!(len, 6);
        // O_NONBLOCK was cleared.
        assert!(!rfs::fcntl_getfl(&file).unwrap().contains(OFlags::NONBLOCK));
    }

    #[test]
    fn a_fifo_in_a_files_place_does_not_block() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::open_dir(dir.path()).unwrap();
        let mode = Mode::RUSR | Mode::WUSR;
        rfs::mknodat(root.fd.as_fd(), "fifo", FileType::Fifo, mode, 0).unwrap();
        assert!(matches!(
            root.open_file(Path::new("fifo"), Path::new("fifo")),
            Err(StorageError::NotRegularFile { .. })
        ));
    }
}
