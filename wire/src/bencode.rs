//! Bencode (BEP 3). CONTRACT SKELETON: filled in by the wire work.

/// Why bencode was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Placeholder.
    #[error("malformed bencode at byte {pos}")]
    Malformed {
        /// Byte offset.
        pos: usize,
    },
}
