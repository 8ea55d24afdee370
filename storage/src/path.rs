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
    #[error("unsafe path component {component:?}: {reason}")]
    UnsafeComponent {
        /// The component, with control characters escaped (safe to log).
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
        component: component.escape_debug().to_string(),
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
