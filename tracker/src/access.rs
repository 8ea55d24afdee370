//! Access lists: which info-hashes the tracker serves, as opentracker's `access.whitelist` /
//! `access.blacklist` files (40 hex digits per line, `#` starts a comment). Torrents this node
//! hosts are always allowed, whatever the list says.

use std::collections::HashSet;

use seednode_wire::InfoHash;

use crate::limits::MAX_ACCESS_LIST_ENTRIES;

/// How a list is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessMode {
    /// Only listed info-hashes (and hosted ones) are tracked.
    Allow,
    /// Every info-hash except the listed ones is tracked (hosted ones always are).
    Deny,
}

/// A parsed access list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessList {
    mode: AccessMode,
    info_hashes: HashSet<InfoHash>,
}

/// Why an access list was refused; the previous list (if any) should stay in force.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessListError {
    /// A line that is neither blank, a comment, nor 40 hex digits (optionally followed by a
    /// comment).
    #[error("access list line {line} is not a 40-hex-digit info-hash")]
    BadLine {
        /// 1-based line number.
        line: usize,
    },
    /// More entries than the limit.
    #[error("access list has more than {limit} entries")]
    TooManyEntries {
        /// [`MAX_ACCESS_LIST_ENTRIES`].
        limit: usize,
    },
}

impl AccessList {
    /// Parses list text: one info-hash per line as 40 hex digits (either case); everything from
    /// `#` to the end of the line is a comment; blank lines and surrounding whitespace (`\r`
    /// included) are ignored. Duplicates are harmless.
    ///
    /// # Errors
    /// [`AccessListError::BadLine`] naming the first bad line;
    /// [`AccessListError::TooManyEntries`] past [`MAX_ACCESS_LIST_ENTRIES`] distinct entries.
    pub fn parse(mode: AccessMode, text: &str) -> Result<Self, AccessListError> {
        let mut info_hashes = HashSet::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let ih = (line.len() == 40)
                .then(|| InfoHash::from_text(line).ok())
                .flatten()
                .ok_or(AccessListError::BadLine { line: i + 1 })?;
            info_hashes.insert(ih);
            if info_hashes.len() > MAX_ACCESS_LIST_ENTRIES {
                return Err(AccessListError::TooManyEntries {
                    limit: MAX_ACCESS_LIST_ENTRIES,
                });
            }
        }
        Ok(Self { mode, info_hashes })
    }

    /// A list from info-hashes already in hand.
    ///
    /// # Errors
    /// [`AccessListError::TooManyEntries`] past [`MAX_ACCESS_LIST_ENTRIES`] distinct entries.
    pub fn from_info_hashes(
        mode: AccessMode,
        info_hashes: impl IntoIterator<Item = InfoHash>,
    ) -> Result<Self, AccessListError> {
        let mut set = HashSet::new();
        for ih in info_hashes {
            set.insert(ih);
            if set.len() > MAX_ACCESS_LIST_ENTRIES {
                return Err(AccessListError::TooManyEntries {
                    limit: MAX_ACCESS_LIST_ENTRIES,
                });
            }
        }
        Ok(Self {
            mode,
            info_hashes: set,
        })
    }

    /// Whether the list lets `info_hash` be tracked (hosted torrents are checked by the caller).
    #[must_use]
    pub fn allows(&self, info_hash: &InfoHash) -> bool {
        match self.mode {
            AccessMode::Allow => self.info_hashes.contains(info_hash),
            AccessMode::Deny => !self.info_hashes.contains(info_hash),
        }
    }

    /// The list's mode.
    #[must_use]
    pub const fn mode(&self) -> AccessMode {
        self.mode
    }

    /// Number of distinct info-hashes listed.
    #[must_use]
    pub fn len(&self) -> usize {
        self.info_hashes.len()
    }

    /// True when no info-hash is listed.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.info_hashes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "0123456789abcdef0123456789abcdef01234567";

    #[test]
    fn parses_opentracker_style_text() {
        let text = format!(
            "# seeds\n\n{A}\r\n  {}  # upper case\n{A}\n",
            "ABCDEF0123456789ABCDEF0123456789ABCDEF01"
        );
        let list = AccessList::parse(AccessMode::Allow, &text).unwrap();
        assert_eq!(list.len(), 2);
        assert!(list.allows(&InfoHash::from_text(A).unwrap()));
        assert!(!list.allows(&InfoHash([0; 20])));
        let deny = AccessList::parse(AccessMode::Deny, &text).unwrap();
        assert!(!deny.allows(&InfoHash::from_text(A).unwrap()));
        assert!(deny.allows(&InfoHash([0; 20])));
    }

    #[test]
    fn names_the_bad_line() {
        for bad in [
            "zz23456789abcdef0123456789abcdef01234567",
            "0123",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ] {
            let text = format!("{A}\n# ok\n{bad}\n");
            assert_eq!(
                AccessList::parse(AccessMode::Allow, &text),
                Err(AccessListError::BadLine { line: 3 })
            );
        }
    }
}
