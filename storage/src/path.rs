//! [`SafeRelPath`]: the only way a path from torrent data becomes a filesystem path.
//!
//! `wire` already refuses unsafe paths in metainfo; this module checks again (defence in depth,
//! SECURITY §0 rule 8, table row M1/M5) so that a bug in a parser, or a caller building an
//! [`Info`](seednode_wire::metainfo::Info) by hand, can never make storage touch a file outside
//! its data root.
//!
//! The same component check vets names found on disk when a torrent is created, so every torrent
//! seednode creates has paths seednode accepts when loading.
//!
//! Rules, per component, in two layers:
//! 1. checked here, independently of any parser, because they are what keeps a joined path
//!    inside its root: not empty, not `.` or `..`, no `/`, `\` or NUL, at most
//!    [`MAX_COMPONENT_LEN`] bytes;
//! 2. then `wire`'s policy for names in metainfo
//!    ([`seednode_wire::metainfo::validate_component`]: no control, bidirectional-override or
//!    zero-width character, no Windows drive prefix such as `C:`), so creation accepts exactly
//!    the names loading accepts.
//!
//! Per path: 1..=[`MAX_PATH_COMPONENTS`] components (directories plus the file name), the same
//! bound as `wire`'s.

use std::fmt;
use std::path::{Path, PathBuf};

use seednode_wire::display::escape_name;

use crate::limits::{MAX_COMPONENT_LEN, MAX_PATH_COMPONENTS};

/// A relative path whose every component passed [`validate_component`]: it has no root, no `..`,
/// no `.`, and joining it to a directory stays inside that directory.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SafeRelPath(PathBuf);

/// Why a path or a path component was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The path has no components at all.
    #[error("path has no components")]
    NoComponents,
    /// The path has more than [`MAX_PATH_COMPONENTS`] components.
    #[error("path has {depth} components, limit {limit}")]
    TooDeep {
        /// Components in the path.
        depth: usize,
        /// Largest accepted number of components.
        limit: usize,
    },
    /// A component is longer than [`MAX_COMPONENT_LEN`] bytes.
    #[error("path component of {len} bytes, limit {limit}")]
    ComponentTooLong {
        /// Length of the component in bytes.
        len: usize,
        /// Largest accepted length in bytes.
        limit: usize,
    },
    /// A component is unsafe: empty, `.`, `..`, or holds a forbidden character.
    #[error("unsafe path component \"{component}\": {reason}")]
    UnsafeComponent {
        /// The component, escaped by [`escape_name`] (safe to print and log).
        component: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// Checks one path component (a file or directory name, or a torrent's `name`) against this
/// module's rules.
///
/// # Errors
/// [`PathError::ComponentTooLong`] over [`MAX_COMPONENT_LEN`] bytes;
/// [`PathError::UnsafeComponent`] for an empty name, `.`, `..`, a separator or NUL (checked
/// here), or a name `wire`'s policy refuses (its reason is passed on).
pub fn validate_component(component: &str) -> Result<(), PathError> {
    let unsafe_because = |reason| PathError::UnsafeComponent {
        component: escape_name(component).into_owned(),
        reason,
    };
    if component.len() > MAX_COMPONENT_LEN {
        return Err(PathError::ComponentTooLong {
            len: component.len(),
            limit: MAX_COMPONENT_LEN,
        });
    }
    match component {
        "" => return Err(unsafe_because("empty")),
        "." => return Err(unsafe_because("current directory")),
        ".." => return Err(unsafe_because("parent directory")),
        _ => {}
    }
    if component.contains(['/', '\\']) {
        return Err(unsafe_because("path separator"));
    }
    if component.contains('\0') {
        return Err(unsafe_because("NUL"));
    }
    seednode_wire::metainfo::validate_component(component).map_err(unsafe_because)
}

/// Names Windows reserves for devices, in any case, alone or before an extension (`nul.txt` is
/// NUL too): Microsoft, "Naming Files, Paths, and Namespaces" (the superscript digits included).
const WINDOWS_RESERVED_NAMES: [&str; 30] = [
    "CON",
    "PRN",
    "AUX",
    "NUL",
    "COM0",
    "COM1",
    "COM2",
    "COM3",
    "COM4",
    "COM5",
    "COM6",
    "COM7",
    "COM8",
    "COM9",
    "COM\u{b9}",
    "COM\u{b2}",
    "COM\u{b3}",
    "LPT0",
    "LPT1",
    "LPT2",
    "LPT3",
    "LPT4",
    "LPT5",
    "LPT6",
    "LPT7",
    "LPT8",
    "LPT9",
    "LPT\u{b9}",
    "LPT\u{b2}",
    "LPT\u{b3}",
];

/// Characters Windows (NTFS and FAT through the Win32 API) refuses in a name, besides controls.
const WINDOWS_FORBIDDEN_CHARS: [char; 9] = ['<', '>', ':', '"', '\\', '|', '?', '*', '/'];

/// Why another common system cannot store the file or directory name `component`, or `None`
/// when it is portable.
///
/// Checked: Windows reserved device names (`CON`, `PRN`, `AUX`, `NUL`, `COM0`-`COM9`,
/// `LPT0`-`LPT9`, case-insensitive, also with an extension or trailing spaces before it, e.g.
/// `nul.txt`, `COM1.log`, `aux .c`); a trailing dot or space (Windows strips it, so the name
/// changes); and the characters `<>:"\|?*` (and `/`). Such names are valid here and in torrents
/// (BEP 3 names are any UTF-8); a client on Windows fails to save them or renames them, so
/// `create` warns about them, as a courtesy, and still creates the torrent (as mktorrent does).
/// Control characters are refused outright by [`validate_component`], not reported here.
#[must_use]
pub fn portability_issue(component: &str) -> Option<&'static str> {
    if component.contains(WINDOWS_FORBIDDEN_CHARS) {
        return Some("holds a character Windows forbids in names (<>:\"\\|?*)");
    }
    if component.ends_with(['.', ' ']) {
        return Some("ends with a dot or a space, which Windows strips");
    }
    let stem = component
        .split_once('.')
        .map_or(component, |(stem, _)| stem)
        .trim_end_matches(' ');
    if WINDOWS_RESERVED_NAMES
        .iter()
        .any(|reserved| stem.eq_ignore_ascii_case(reserved))
    {
        return Some("is a device name Windows reserves");
    }
    None
}

/// A path of a torrent that another common system cannot store; from [`non_portable_paths`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NonPortable {
    /// The path, from the torrent's `name` down: `[name]` for the name itself (or a single
    /// file), `[name, dir, .., file]` for a file of a multi-file torrent. Unescaped: show it
    /// with [`seednode_wire::display::escape_name`].
    pub path: Vec<String>,
    /// What is wrong with its first non-portable component ([`portability_issue`]).
    pub reason: &'static str,
}

/// Every path of `info` (its `name`, then each file's path) with a component
/// [`portability_issue`] reports, in `info`'s order; a file is reported once, for its first such
/// component, and files below a non-portable `name` are not reported again. At most one entry per
/// file plus one, so bounded by `wire`'s
/// [`MAX_FILES`](seednode_wire::limits::MAX_FILES).
#[must_use]
pub fn non_portable_paths(info: &seednode_wire::metainfo::Info) -> Vec<NonPortable> {
    if let Some(reason) = portability_issue(&info.name) {
        return vec![NonPortable {
            path: vec![info.name.clone()],
            reason,
        }];
    }
    if !info.multi_file {
        return Vec::new();
    }
    info.files
        .iter()
        .filter_map(|file| {
            let reason = file.path.iter().find_map(|c| portability_issue(c))?;
            let path = std::iter::once(info.name.clone())
                .chain(file.path.iter().cloned())
                .collect();
            Some(NonPortable { path, reason })
        })
        .collect()
}

impl SafeRelPath {
    /// Validates `components` (outermost first) and joins them into a relative path.
    ///
    /// # Errors
    /// [`PathError::NoComponents`] for an empty list, [`PathError::TooDeep`] over
    /// [`MAX_PATH_COMPONENTS`] components, and any error of [`validate_component`].
    pub fn new<S: AsRef<str>>(components: &[S]) -> Result<Self, PathError> {
        if components.is_empty() {
            return Err(PathError::NoComponents);
        }
        if components.len() > MAX_PATH_COMPONENTS {
            return Err(PathError::TooDeep {
                depth: components.len(),
                limit: MAX_PATH_COMPONENTS,
            });
        }
        let mut path = PathBuf::new();
        for component in components {
            let component = component.as_ref();
            validate_component(component)?;
            path.push(component);
        }
        Ok(Self(path))
    }

    /// The relative path.
    #[must_use]
    pub fn as_path(&self) -> &Path {
        &self.0
    }

    /// `root` joined with this path: a path inside `root` (never `root` itself or outside it).
    #[must_use]
    pub fn under(&self, root: &Path) -> PathBuf {
        root.join(&self.0)
    }
}

impl fmt::Debug for SafeRelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SafeRelPath({:?})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Component;

    use super::*;

    fn reason(components: &[&str]) -> &'static str {
        match SafeRelPath::new(components) {
            Err(PathError::UnsafeComponent { reason, .. }) => reason,
            other => panic!("expected UnsafeComponent for {components:?}, got {other:?}"),
        }
    }

    #[test]
    fn rejects_security_m1_paths() {
        // SECURITY §3.3 M1, every row.
        assert_eq!(reason(&["..", "etc", "passwd"]), "parent directory");
        assert_eq!(reason(&["a", "..", "..", "x"]), "parent directory");
        assert_eq!(reason(&["/etc/x"]), "path separator");
        assert_eq!(reason(&["C:\\x"]), "path separator");
        assert_eq!(reason(&["\\\\srv\\s"]), "path separator");
        assert_eq!(reason(&["a/b"]), "path separator");
        assert_eq!(reason(&["."]), "current directory");
        assert_eq!(reason(&[""]), "empty");
        assert_eq!(SafeRelPath::new::<&str>(&[]), Err(PathError::NoComponents));
    }

    #[test]
    fn rejects_nul_and_what_wire_refuses() {
        assert_eq!(reason(&["a\0b"]), "NUL");
        // wire's policy, with wire's reasons.
        for name in [
            "a\nb",
            "a\u{7f}",
            "a\u{85}",
            "txt.\u{202E}exe",
            "a\u{200B}",
            "\u{FEFF}a",
            "C:x",
        ] {
            let got = reason(&[name]);
            assert_eq!(
                Err(got),
                seednode_wire::metainfo::validate_component(name),
                "{name:?}"
            );
        }
    }

    #[test]
    fn rejects_security_m5_depth_and_length() {
        // SECURITY §3.3 M5: depth 10 000 and a 10 KB component.
        let deep = vec!["d"; 10_000];
        assert_eq!(
            SafeRelPath::new(&deep),
            Err(PathError::TooDeep {
                depth: 10_000,
                limit: MAX_PATH_COMPONENTS
            })
        );
        let long = "x".repeat(10_000);
        assert_eq!(
            SafeRelPath::new(&[long]),
            Err(PathError::ComponentTooLong {
                len: 10_000,
                limit: MAX_COMPONENT_LEN
            })
        );
        let deepest = vec!["d"; MAX_PATH_COMPONENTS];
        assert!(SafeRelPath::new(&deepest).is_ok());
        let deeper = vec!["d"; MAX_PATH_COMPONENTS + 1];
        assert!(matches!(
            SafeRelPath::new(&deeper),
            Err(PathError::TooDeep { .. })
        ));
        assert!(SafeRelPath::new(&["x".repeat(MAX_COMPONENT_LEN)]).is_ok());
    }

    #[test]
    fn windows_reserved_names_are_not_portable() {
        for name in [
            "CON",
            "con",
            "Prn",
            "aux",
            "NUL",
            "nul.txt",
            "NUL.tar.gz",
            "COM1",
            "com9",
            "COM1.log",
            "LPT1",
            "lpt9.doc",
            "aux .c",
            "COM\u{b9}",
            "lpt\u{b3}.x",
        ] {
            assert_eq!(
                portability_issue(name),
                Some("is a device name Windows reserves"),
                "{name}"
            );
        }
        for name in [
            "CONSOLE",
            "nul_",
            "xnul",
            "COM10",
            "LPT",
            "com",
            "a.nul",
            "auxiliary.txt",
        ] {
            assert_eq!(portability_issue(name), None, "{name}");
        }
    }

    #[test]
    fn trailing_dots_spaces_and_forbidden_characters_are_not_portable() {
        for name in ["a.", "a ", "...", "b. "] {
            assert_eq!(
                portability_issue(name),
                Some("ends with a dot or a space, which Windows strips"),
                "{name}"
            );
        }
        for name in ["a<b", "a>b", "ab:c", "say \"hi\"", "a|b", "why?", "*.txt"] {
            assert!(
                portability_issue(name).is_some_and(|r| r.contains("forbids")),
                "{name}"
            );
        }
        for name in [
            ".hidden",
            "a.b.c",
            " leading space",
            "ü ñ",
            "a-b_c (1)",
            "a..b",
        ] {
            assert_eq!(portability_issue(name), None, "{name}");
        }
    }

    #[test]
    fn lists_non_portable_paths_of_a_torrent() {
        use seednode_wire::metainfo::{FileEntry, Info};
        let entry = |path: &[&str]| FileEntry {
            path: path.iter().map(|c| (*c).to_owned()).collect(),
            length: 1,
        };
        let mut info = Info {
            name: "t".into(),
            piece_length: 16_384,
            pieces: vec![[0; 20]],
            files: vec![
                entry(&["ok"]),
                entry(&["nul.txt"]),
                entry(&["CON", "x"]),
                entry(&["d", "a:b", "AUX"]),
            ],
            multi_file: true,
            private: false,
        };
        let found = non_portable_paths(&info);
        let paths: Vec<String> = found.iter().map(|n| n.path.join("/")).collect();
        assert_eq!(paths, ["t/nul.txt", "t/CON/x", "t/d/a:b/AUX"]);
        assert!(found[2].reason.contains("forbids"));
        info.name = "prn".into();
        assert_eq!(non_portable_paths(&info).len(), 1);
        info.name = "single".into();
        info.multi_file = false;
        assert!(non_portable_paths(&info).is_empty());
    }

    #[test]
    fn accepts_ordinary_names_and_stays_under_root() {
        let path = SafeRelPath::new(&[".hidden", "ü ñ", "CON", "ab:c", "a..b", "...", "file.txt"])
            .unwrap();
        assert!(path.as_path().is_relative());
        assert!(
            path.as_path()
                .components()
                .all(|c| matches!(c, Component::Normal(_)))
        );
        let root = Path::new("/data/torrent");
        let full = path.under(root);
        assert!(full.starts_with(root));
        assert_ne!(full, root);
        assert_eq!(full.components().count(), root.components().count() + 7);
    }
}
