//! BEP 52 merkle hash trees: one per file, SHA-256 over 16 KiB blocks.
//!
//! A file of `n` bytes has `ceil(n / 16 KiB)` blocks; the hash of each block (the last one may
//! be short) is a leaf. The leaf layer is padded to the next power of two with **zero hashes**
//! (32 zero bytes, not the hash of a zero block); every inner node is the SHA-256 of its two
//! children concatenated, and the root is the file's `pieces root` (BEP 52 §"File tree layout",
//! `pieces root`). A node whose leaves all lie past the end of the file is therefore a *pad hash*:
//! [`pad_hash`] of its height.
//!
//! Heights count up from the leaves (height 0). The *piece layer* is the layer at height
//! `log2(piece length / 16 KiB)`, where one node covers one piece; a torrent's `piece layers`
//! carry it, without the pad hashes past the end of the file, for every file longer than one
//! piece (BEP 52 §metainfo files). A file of at most one piece has no piece layer: its root is its
//! only piece hash, computed over `next_power_of_two(blocks)` leaves (see [`piece_leaves`]).
//!
//! [`MerkleTree`] keeps the layers of one file from some base height up to the root (the leaves,
//! the piece layer, or only the root) and answers BEP 52 `hash request`s with
//! [`MerkleTree::hashes`].
//!
//! Sizes: `u64` for byte lengths and block counts, `u32` for heights.

use sha2::{Digest as _, Sha256};

use crate::limits::{MAX_HASH_REQUEST_LENGTH, MAX_HASH_REQUEST_PIECES};
use crate::peer::hashes::HashRequest;

/// Bytes per merkle leaf block: 16 KiB (BEP 52 `pieces root`: "constructed from 16KiB blocks of
/// the file").
pub const BLOCK_LEN: u32 = 16 * 1024;

/// Length of a SHA-256 hash in bytes.
pub const HASH_LEN: usize = 32;

/// A pad (all-zero) leaf hash.
const ZERO: [u8; HASH_LEN] = [0; HASH_LEN];

/// The leaf hash of one block of at most [`BLOCK_LEN`] bytes: its SHA-256.
#[must_use]
pub fn block_hash(block: &[u8]) -> [u8; HASH_LEN] {
    Sha256::digest(block).into()
}

/// The parent of two nodes: SHA-256 of `left` followed by `right`.
#[must_use]
pub fn hash_pair(left: &[u8; HASH_LEN], right: &[u8; HASH_LEN]) -> [u8; HASH_LEN] {
    let mut h = Sha256::new();
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of a subtree of `2^height` zero leaves: zeros at height 0, then
/// `hash_pair(pad, pad)` for each height above. Costs `height` SHA-256 computations.
#[must_use]
pub fn pad_hash(height: u32) -> [u8; HASH_LEN] {
    let mut pad = ZERO;
    for _ in 0..height {
        pad = hash_pair(&pad, &pad);
    }
    pad
}

/// The pad hashes of heights `0..=max_height`.
fn pad_table(max_height: u32) -> Vec<[u8; HASH_LEN]> {
    let mut pads = Vec::with_capacity(max_height as usize + 1);
    let mut pad = ZERO;
    pads.push(pad);
    for _ in 0..max_height {
        pad = hash_pair(&pad, &pad);
        pads.push(pad);
    }
    pads
}

/// Number of 16 KiB blocks (leaves with data) of a file of `length` bytes.
#[must_use]
pub const fn block_count(length: u64) -> u64 {
    length.div_ceil(BLOCK_LEN as u64)
}

/// Height of the tree over `blocks` leaves: `log2` of the leaf count padded to a power of two
/// (0 for one block or none).
#[must_use]
pub const fn tree_height(blocks: u64) -> u32 {
    if blocks <= 1 {
        0
    } else {
        // `next_power_of_two` of a block count (at most 2^50 for any u64 byte length) never
        // overflows.
        blocks.next_power_of_two().ilog2()
    }
}

/// Leaves under one piece hash of a file of `file_length` bytes with pieces of `piece_length`
/// bytes: `piece_length / 16 KiB` for a file longer than one piece (the piece layer), else the
/// file's whole padded leaf count `next_power_of_two(blocks)` (its root). Feed this to
/// [`root_of_layer`] as the width of a piece's leaf hashes. `piece_length` must be a power of two
/// of at least [`BLOCK_LEN`].
#[must_use]
pub const fn piece_leaves(file_length: u64, piece_length: u32) -> u64 {
    let per_piece = (piece_length / BLOCK_LEN) as u64;
    if file_length > piece_length as u64 {
        per_piece
    } else {
        1 << tree_height(block_count(file_length))
    }
}

/// The root over `layer`, a run of nodes at height `height` starting at the left edge, padded
/// with [`pad_hash`]`(height)` to `width` nodes (a power of two; a smaller `width` is raised to
/// the next power of two that holds `layer`).
///
/// With `height` 0 and leaf hashes this is a file's `pieces root` (`width` = the padded leaf
/// count) or a piece hash (`width` from [`piece_leaves`]); with `height` = the piece layer's
/// height it turns a piece layer into the file's root.
#[must_use]
pub fn root_of_layer(layer: &[[u8; HASH_LEN]], height: u32, width: u64) -> [u8; HASH_LEN] {
    let len = layer.len() as u64;
    let width = width.max(len).max(1).next_power_of_two();
    let levels = width.ilog2();
    let pads = pad_table(height + levels);
    if layer.is_empty() {
        return pads[(height + levels) as usize];
    }
    let mut nodes = layer.to_vec();
    for level in 0..levels {
        let pad = &pads[(height + level) as usize];
        let parents = nodes.len().div_ceil(2);
        for i in 0..parents {
            let left = nodes[2 * i];
            let right = nodes.get(2 * i + 1).unwrap_or(pad);
            nodes[i] = hash_pair(&left, right);
        }
        nodes.truncate(parents);
    }
    nodes[0]
}

/// The root over the 16 KiB blocks of `data` (the last may be short), padded with zero leaves
/// to `width` leaves: a piece's v2 hash when `data` is the piece's file bytes and `width` comes
/// from [`piece_leaves`] (BEP 52).
#[must_use]
pub fn root_of_data(data: &[u8], width: u64) -> [u8; HASH_LEN] {
    let leaves: Vec<[u8; HASH_LEN]> = data.chunks(BLOCK_LEN as usize).map(block_hash).collect();
    root_of_layer(&leaves, 0, width)
}

/// The piece layer of a file from its leaf hashes: one root per `piece_length` bytes, each over
/// `piece_length / 16 KiB` leaves (zero-padded in the last piece), without pad hashes past the
/// end of the file (BEP 52 `piece layers`). Meaningful for files longer than one piece.
#[must_use]
pub fn piece_layer_of_leaves(leaves: &[[u8; HASH_LEN]], piece_length: u32) -> Vec<[u8; HASH_LEN]> {
    let per_piece = (piece_length / BLOCK_LEN).max(1) as usize;
    leaves
        .chunks(per_piece)
        .map(|piece| root_of_layer(piece, 0, per_piece as u64))
        .collect()
}

/// Why a [`MerkleTree`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MerkleError {
    /// The file has no data: an empty file has no tree and no `pieces root`.
    #[error("an empty file has no merkle tree")]
    EmptyFile,
    /// A layer has the wrong number of hashes for the file.
    #[error("layer at height {height} has {got} hashes, the file needs {expected}")]
    LayerLength {
        /// Height of the layer.
        height: u32,
        /// Hashes given.
        got: u64,
        /// `ceil(blocks / 2^height)`.
        expected: u64,
    },
    /// The layer's height is above the tree's root.
    #[error("layer height {height} above the root at {root_height}")]
    HeightAboveRoot {
        /// Height asked for.
        height: u32,
        /// Height of the root.
        root_height: u32,
    },
    /// A file longer than one piece without its piece layer.
    #[error("file of more than one piece without a piece layer")]
    MissingPieceLayer,
    /// The layer does not hash up to the file's `pieces root`.
    #[error("the hashes do not add up to the pieces root")]
    RootMismatch,
}

/// The blocks of one file whose leaf hashes [`MerkleTree::hashes`] needs to answer a request
/// below the tree's base layer: at most one piece (see [`MAX_HASH_REQUEST_PIECES`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeafSpan {
    /// Index of the first block in the file (block `i` is bytes `i * 16 KiB ..`).
    pub first_block: u64,
    /// Number of blocks with data (the last one may be short); at least 1.
    pub blocks: u64,
}

/// Why a `hash request` is answered with a `hash reject` (BEP 52 §peer messages). The first
/// variants mirror libtorrent's `validate_hash_request`; the rest are this seed's own bounds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashRequestError {
    /// `base layer` is at or above the root (a one-block file has no layer to ask for).
    #[error("base layer {base_layer} not below the root at height {height}")]
    BaseLayerOutOfRange {
        /// Requested base layer.
        base_layer: u32,
        /// Height of the file's tree.
        height: u32,
    },
    /// `length` is 0, not a power of two, or over [`MAX_HASH_REQUEST_LENGTH`].
    #[error("length {length} is not a power of two in 1..={max}")]
    BadLength {
        /// Requested length.
        length: u32,
        /// [`MAX_HASH_REQUEST_LENGTH`].
        max: u32,
    },
    /// `index` is not a multiple of `length` (BEP 52: "Index MUST be a multiple of length").
    #[error("index {index} is not a multiple of length {length}")]
    Misaligned {
        /// Requested index.
        index: u32,
        /// Requested length.
        length: u32,
    },
    /// `index + length` runs past the (padded) width of the base layer.
    #[error("hashes {index}..+{length} past the layer's {width} nodes")]
    IndexOutOfRange {
        /// Requested index.
        index: u32,
        /// Requested length.
        length: u32,
        /// Nodes in the padded base layer.
        width: u64,
    },
    /// `proof layers` reaches the root or beyond (libtorrent: `proof_layers < num_layers -
    /// base`).
    #[error("{proof_layers} proof layers, at most {max} here")]
    TooManyProofLayers {
        /// Requested proof layers.
        proof_layers: u32,
        /// Largest allowed for this base layer.
        max: u32,
    },
    /// The request is below the layer this tree keeps and covers more than
    /// [`MAX_HASH_REQUEST_PIECES`] piece of data.
    #[error("request spans more than {max} piece of data below the stored layer")]
    SpansPieces {
        /// [`MAX_HASH_REQUEST_PIECES`].
        max: u64,
    },
    /// The request is below the layer this tree keeps: call again with the leaf hashes of `span`
    /// (see [`MerkleTree::leaves_needed`]).
    #[error("needs the leaf hashes of blocks {}..+{}", span.first_block, span.blocks)]
    NeedLeaves {
        /// The blocks to hash.
        span: LeafSpan,
    },
    /// The leaf hashes given are not those of the span asked for.
    #[error("{got} leaf hashes given, {expected} needed")]
    LeafCount {
        /// Hashes given.
        got: usize,
        /// Hashes needed.
        expected: u64,
    },
    /// The leaf hashes given (from the data on disk) do not hash up to the tree: the data is
    /// corrupt, and no hash derived from it may be sent.
    #[error("the leaf hashes do not match the tree: data differs from the torrent")]
    LeavesMismatch,
}

/// The merkle tree of one file, from a base layer up to the root (BEP 52).
///
/// Built from the leaves ([`MerkleTree::from_leaves`]), from a piece layer or from the root alone
/// ([`MerkleTree::for_file`]). Only nodes that cover data are stored; pad hashes are computed.
/// Memory: about `2 × 32` bytes per node of the base layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MerkleTree {
    /// Blocks with data (at least 1).
    blocks: u64,
    /// Height of the root.
    height: u32,
    /// Height of `layers[0]`.
    base: u32,
    /// `layers[k]`: the nodes at height `base + k` that cover data, `ceil(blocks / 2^h)` of them;
    /// the last is the root.
    layers: Vec<Vec<[u8; HASH_LEN]>>,
    /// `pads[h]` = [`pad_hash`]`(h)` for `h` in `0..=height`.
    pads: Vec<[u8; HASH_LEN]>,
}

/// Nodes at height `h` that cover data, for `blocks` leaves.
const fn real_nodes(blocks: u64, h: u32) -> u64 {
    blocks.div_ceil(1 << h)
}

impl MerkleTree {
    /// A tree over the leaf hashes of a file, one per 16 KiB block.
    ///
    /// # Errors
    /// [`MerkleError::EmptyFile`] for no leaves.
    pub fn from_leaves(leaves: Vec<[u8; HASH_LEN]>) -> Result<Self, MerkleError> {
        let blocks = leaves.len() as u64;
        Self::from_layer(leaves, 0, blocks)
    }

    /// A tree of a file of `blocks` blocks from its nodes at height `base` (those that cover
    /// data, left to right): the leaves (0), the piece layer, or the root alone (the tree's
    /// height).
    ///
    /// # Errors
    /// [`MerkleError::EmptyFile`] for 0 blocks, [`MerkleError::HeightAboveRoot`],
    /// [`MerkleError::LayerLength`] unless the layer has `ceil(blocks / 2^base)` hashes.
    pub fn from_layer(
        layer: Vec<[u8; HASH_LEN]>,
        base: u32,
        blocks: u64,
    ) -> Result<Self, MerkleError> {
        if blocks == 0 {
            return Err(MerkleError::EmptyFile);
        }
        let height = tree_height(blocks);
        if base > height {
            return Err(MerkleError::HeightAboveRoot {
                height: base,
                root_height: height,
            });
        }
        let expected = real_nodes(blocks, base);
        if layer.len() as u64 != expected {
            return Err(MerkleError::LayerLength {
                height: base,
                got: layer.len() as u64,
                expected,
            });
        }
        let pads = pad_table(height);
        let mut layers = Vec::with_capacity((height - base) as usize + 1);
        layers.push(layer);
        for h in base..height {
            let below = &layers[layers.len() - 1];
            let pad = &pads[h as usize];
            let above: Vec<[u8; HASH_LEN]> = below
                .chunks(2)
                .map(|pair| hash_pair(&pair[0], pair.get(1).unwrap_or(pad)))
                .collect();
            layers.push(above);
        }
        Ok(Self {
            blocks,
            height,
            base,
            layers,
            pads,
        })
    }

    /// The tree of a file of `length` bytes in a torrent with pieces of `piece_length` bytes
    /// (a power of two, at least 16 KiB), checked against its `pieces root`: from `piece_layer`
    /// for a file longer than one piece, from the root alone otherwise (`piece_layer` is then
    /// ignored).
    ///
    /// # Errors
    /// [`MerkleError::EmptyFile`] for `length` 0; [`MerkleError::MissingPieceLayer`];
    /// [`MerkleError::LayerLength`] when the layer does not have `ceil(length / piece_length)`
    /// hashes; [`MerkleError::RootMismatch`] when it does not hash up to `pieces_root`.
    pub fn for_file(
        length: u64,
        piece_length: u32,
        pieces_root: [u8; HASH_LEN],
        piece_layer: Option<&[[u8; HASH_LEN]]>,
    ) -> Result<Self, MerkleError> {
        let blocks = block_count(length);
        if blocks == 0 {
            return Err(MerkleError::EmptyFile);
        }
        if length > u64::from(piece_length) {
            let layer = piece_layer.ok_or(MerkleError::MissingPieceLayer)?;
            let piece_height = (piece_length / BLOCK_LEN).max(1).ilog2();
            let tree = Self::from_layer(layer.to_vec(), piece_height, blocks)?;
            if tree.root() != pieces_root {
                return Err(MerkleError::RootMismatch);
            }
            Ok(tree)
        } else {
            Self::from_layer(vec![pieces_root], tree_height(blocks), blocks)
        }
    }

    /// The root hash (the file's `pieces root`).
    #[must_use]
    pub fn root(&self) -> [u8; HASH_LEN] {
        // from_layer always pushes at least one layer, and the top one has one node.
        self.layers
            .last()
            .and_then(|top| top.first())
            .copied()
            .unwrap_or(ZERO)
    }

    /// Height of the root above the leaves: `log2` of the padded leaf count.
    #[must_use]
    pub const fn height(&self) -> u32 {
        self.height
    }

    /// Height of the lowest layer this tree keeps (0 when built from the leaves).
    #[must_use]
    pub const fn base_height(&self) -> u32 {
        self.base
    }

    /// Blocks with data in the file.
    #[must_use]
    pub const fn blocks(&self) -> u64 {
        self.blocks
    }

    /// The nodes this tree keeps at height `h` that cover data (empty below the base height or
    /// above the root).
    #[must_use]
    pub fn layer(&self, h: u32) -> &[[u8; HASH_LEN]] {
        h.checked_sub(self.base)
            .and_then(|k| self.layers.get(k as usize))
            .map_or(&[], Vec::as_slice)
    }

    /// Node `index` at height `h`, a pad hash past the data; `None` below the base height, above
    /// the root or past the padded width of the layer.
    #[must_use]
    pub fn node(&self, h: u32, index: u64) -> Option<[u8; HASH_LEN]> {
        if h < self.base || h > self.height || index >= 1 << (self.height - h) {
            return None;
        }
        let layer = &self.layers[(h - self.base) as usize];
        Some(
            usize::try_from(index)
                .ok()
                .and_then(|i| layer.get(i))
                .copied()
                .unwrap_or(self.pads[h as usize]),
        )
    }

    /// Checks `req` against this file's tree (libtorrent's `validate_hash_request` plus BEP 52's
    /// alignment rule) and says which blocks' leaf hashes [`MerkleTree::hashes`] needs: `None`
    /// when the answer comes from the stored layers alone.
    ///
    /// # Errors
    /// The [`HashRequestError`] to answer with a `hash reject`.
    pub fn leaves_needed(&self, req: &HashRequest) -> Result<Option<LeafSpan>, HashRequestError> {
        let base = req.base_layer;
        if base >= self.height {
            return Err(HashRequestError::BaseLayerOutOfRange {
                base_layer: base,
                height: self.height,
            });
        }
        let length = req.length;
        if length == 0 || !length.is_power_of_two() || length > MAX_HASH_REQUEST_LENGTH {
            return Err(HashRequestError::BadLength {
                length,
                max: MAX_HASH_REQUEST_LENGTH,
            });
        }
        if !req.index.is_multiple_of(length) {
            return Err(HashRequestError::Misaligned {
                index: req.index,
                length,
            });
        }
        let width = 1u64 << (self.height - base);
        if u64::from(req.index) + u64::from(length) > width {
            return Err(HashRequestError::IndexOutOfRange {
                index: req.index,
                length,
                width,
            });
        }
        let max = self.height - base - 1;
        if req.proof_layers > max {
            return Err(HashRequestError::TooManyProofLayers {
                proof_layers: req.proof_layers,
                max,
            });
        }
        if base >= self.base {
            return Ok(None);
        }
        // Below the stored layers: everything lies under one stored node A, provided the
        // requested range does.
        if base + length.ilog2() > self.base {
            return Err(HashRequestError::SpansPieces {
                max: MAX_HASH_REQUEST_PIECES,
            });
        }
        let a = u64::from(req.index) >> (self.base - base);
        let first_block = a << self.base;
        if first_block >= self.blocks {
            // Entirely padding: pad hashes, no data.
            return Ok(None);
        }
        let blocks = (self.blocks - first_block).min(1 << self.base);
        Ok(Some(LeafSpan {
            first_block,
            blocks,
        }))
    }

    /// Answers a BEP 52 `hash request`: the `length` hashes of the base layer from `index`, then
    /// the proof ("uncle") hashes from the lowest to the one closest to the root.
    ///
    /// The proof holds the sibling of every ancestor of the requested range's subtree root `R`
    /// (at height `base + log2(length)`), from `R` itself up to height `base + proof layers`:
    /// `max(0, proof_layers - log2(length) + 1)` hashes, the count libtorrent 2.0.8 checks a
    /// `hashes` message against (see [`crate::peer::hashes::proof_hash_count`]). Proof layers
    /// below `R` are omitted, since the base hashes give them (BEP 52: "the first log2(length)-1
    /// proof layers are omitted").
    ///
    /// When [`MerkleTree::leaves_needed`] names a span, `leaves` must hold the leaf hashes of
    /// exactly those blocks (hashes of the file's data, 16 KiB each, the last maybe short); they
    /// are checked against the stored layer before anything derived from them is returned.
    ///
    /// # Errors
    /// The [`HashRequestError`] to answer with a `hash reject`: a request this tree cannot serve,
    /// [`HashRequestError::NeedLeaves`] without `leaves`, [`HashRequestError::LeafCount`] or
    /// [`HashRequestError::LeavesMismatch`] for wrong leaves.
    pub fn hashes(
        &self,
        req: &HashRequest,
        leaves: Option<&[[u8; HASH_LEN]]>,
    ) -> Result<Vec<[u8; HASH_LEN]>, HashRequestError> {
        let span = self.leaves_needed(req)?;
        let local = match (span, leaves) {
            (None, _) => None,
            (Some(span), None) => return Err(HashRequestError::NeedLeaves { span }),
            (Some(span), Some(leaves)) => Some(self.local_subtree(span, leaves)?),
        };
        let get = |h: u32, index: u64| -> [u8; HASH_LEN] {
            if h >= self.base {
                return self.node(h, index).unwrap_or(ZERO);
            }
            // Below the base: inside the stored node's subtree the local layers cover.
            match &local {
                Some((first, layers)) => {
                    let offset = index - (first >> h);
                    usize::try_from(offset)
                        .ok()
                        .and_then(|i| layers[h as usize].get(i))
                        .copied()
                        .unwrap_or(self.pads[h as usize])
                }
                None => self.pads[h as usize],
            }
        };
        let base = req.base_layer;
        let index = u64::from(req.index);
        let length = u64::from(req.length);
        let mut out = Vec::with_capacity(req.length as usize + req.proof_layers as usize + 1);
        for i in index..index + length {
            out.push(get(base, i));
        }
        for j in req.length.ilog2()..=req.proof_layers {
            let ancestor = index >> j;
            out.push(get(base + j, ancestor ^ 1));
        }
        Ok(out)
    }

    /// The layers from the leaves up to (not including) the base height over `span`, checked
    /// against the stored node above it. Returns the span's first block and the layers.
    #[allow(clippy::type_complexity)] // private; (first block, layers by height)
    fn local_subtree(
        &self,
        span: LeafSpan,
        leaves: &[[u8; HASH_LEN]],
    ) -> Result<(u64, Vec<Vec<[u8; HASH_LEN]>>), HashRequestError> {
        if leaves.len() as u64 != span.blocks {
            return Err(HashRequestError::LeafCount {
                got: leaves.len(),
                expected: span.blocks,
            });
        }
        let mut layers = Vec::with_capacity(self.base as usize + 1);
        layers.push(leaves.to_vec());
        for h in 0..self.base {
            let pad = &self.pads[h as usize];
            let above = layers[h as usize]
                .chunks(2)
                .map(|pair: &[[u8; HASH_LEN]]| hash_pair(&pair[0], pair.get(1).unwrap_or(pad)))
                .collect();
            layers.push(above);
        }
        let top = layers[self.base as usize].first().copied();
        if top != self.node(self.base, span.first_block >> self.base) {
            return Err(HashRequestError::LeavesMismatch);
        }
        layers.truncate(self.base as usize);
        Ok((span.first_block, layers))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(n: u8) -> [u8; HASH_LEN] {
        [n; HASH_LEN]
    }

    fn req(base_layer: u32, index: u32, length: u32, proof_layers: u32) -> HashRequest {
        HashRequest {
            pieces_root: [0; 32],
            base_layer,
            index,
            length,
            proof_layers,
        }
    }

    /// Rebuilds the root from a `hashes` answer, independently of `MerkleTree`.
    fn root_from_answer(req: &HashRequest, answer: &[[u8; HASH_LEN]]) -> [u8; HASH_LEN] {
        let (base_hashes, proof) = answer.split_at(req.length as usize);
        let mut node = root_of_layer(base_hashes, req.base_layer, u64::from(req.length));
        let mut index = u64::from(req.index) >> req.length.ilog2();
        for uncle in proof {
            node = if index.is_multiple_of(2) {
                hash_pair(&node, uncle)
            } else {
                hash_pair(uncle, &node)
            };
            index /= 2;
        }
        node
    }

    #[test]
    fn bep52_pad_hashes_are_zero_leaves_hashed_up() {
        assert_eq!(pad_hash(0), [0; 32]);
        assert_eq!(pad_hash(1), hash_pair(&[0; 32], &[0; 32]));
        assert_eq!(pad_hash(2), hash_pair(&pad_hash(1), &pad_hash(1)));
        assert_eq!(pad_table(3)[3], pad_hash(3));
    }

    #[test]
    fn heights_and_piece_leaves() {
        assert_eq!(block_count(0), 0);
        assert_eq!(block_count(1), 1);
        assert_eq!(block_count(16384), 1);
        assert_eq!(block_count(16385), 2);
        assert_eq!(tree_height(1), 0);
        assert_eq!(tree_height(2), 1);
        assert_eq!(tree_height(3), 2);
        assert_eq!(tree_height(4), 2);
        assert_eq!(tree_height(5), 3);
        // 50 000 bytes in 32 KiB pieces: 2 pieces of 2 leaves each.
        assert_eq!(piece_leaves(50_000, 32_768), 2);
        // 40 000 bytes in a 64 KiB piece: 3 blocks, padded to 4 leaves.
        assert_eq!(piece_leaves(40_000, 65_536), 4);
        assert_eq!(piece_leaves(100, 65_536), 1);
    }

    #[test]
    fn root_of_layer_pads_with_zero_leaves() {
        let leaves = [h(1), h(2), h(3)];
        let want = hash_pair(&hash_pair(&h(1), &h(2)), &hash_pair(&h(3), &[0; 32]));
        assert_eq!(root_of_layer(&leaves, 0, 4), want);
        assert_eq!(root_of_layer(&leaves, 0, 0), want, "width raised to fit");
        let wide = hash_pair(&want, &pad_hash(2));
        assert_eq!(root_of_layer(&leaves, 0, 8), wide);
        assert_eq!(root_of_layer(&[h(7)], 0, 1), h(7));
        assert_eq!(root_of_layer(&[], 3, 4), pad_hash(5));
    }

    #[test]
    fn piece_layer_and_tree_agree() {
        let leaves: Vec<_> = (1..=11).map(h).collect();
        // Pieces of 4 blocks (64 KiB): 3 pieces, the last with 3 blocks.
        let layer = piece_layer_of_leaves(&leaves, 65_536);
        assert_eq!(layer.len(), 3);
        assert_eq!(layer[2], root_of_layer(&leaves[8..], 0, 4));
        let full = MerkleTree::from_leaves(leaves.clone()).unwrap();
        assert_eq!(full.height(), 4);
        assert_eq!(full.layer(2), layer.as_slice());
        let from_layer = MerkleTree::for_file(11 * 16_384, 65_536, full.root(), Some(&layer));
        assert_eq!(from_layer.unwrap().root(), full.root());
        assert_eq!(root_of_layer(&layer, 2, 4), full.root());
        let mut bad = layer.clone();
        bad[1][0] ^= 1;
        assert_eq!(
            MerkleTree::for_file(11 * 16_384, 65_536, full.root(), Some(&bad)),
            Err(MerkleError::RootMismatch)
        );
        assert_eq!(
            MerkleTree::for_file(11 * 16_384, 65_536, full.root(), Some(&layer[..2])),
            Err(MerkleError::LayerLength {
                height: 2,
                got: 2,
                expected: 3
            })
        );
        assert_eq!(
            MerkleTree::for_file(11 * 16_384, 65_536, full.root(), None),
            Err(MerkleError::MissingPieceLayer)
        );
        assert_eq!(
            MerkleTree::from_layer(vec![], 0, 0),
            Err(MerkleError::EmptyFile)
        );
    }

    #[test]
    fn hashes_match_full_tree_and_prove_the_root() {
        let leaves: Vec<_> = (1..=11).map(h).collect();
        let full = MerkleTree::from_leaves(leaves.clone()).unwrap();
        let layer = piece_layer_of_leaves(&leaves, 65_536);
        let partial = MerkleTree::for_file(11 * 16_384, 65_536, full.root(), Some(&layer)).unwrap();
        for base in 0..full.height() {
            for lg in 0..=(full.height() - base) {
                let length = 1u32 << lg;
                for index in (0..(1u32 << (full.height() - base))).step_by(length as usize) {
                    for proof_layers in 0..(full.height() - base) {
                        let r = req(base, index, length, proof_layers);
                        let answer = full.hashes(&r, None).unwrap();
                        let uncles = (proof_layers + 1).saturating_sub(lg);
                        assert_eq!(answer.len() as u32, length + uncles);
                        if proof_layers + 1 == full.height() - base && lg <= proof_layers + 1 {
                            assert_eq!(root_from_answer(&r, &answer), full.root(), "{r:?}");
                        }
                        // The same answer from the piece layer, with leaves when needed.
                        let from_partial = match partial.leaves_needed(&r) {
                            Ok(None) => partial.hashes(&r, None).unwrap(),
                            Ok(Some(span)) => {
                                let first = span.first_block as usize;
                                let blocks = &leaves[first..first + span.blocks as usize];
                                assert_eq!(
                                    partial.hashes(&r, None),
                                    Err(HashRequestError::NeedLeaves { span })
                                );
                                partial.hashes(&r, Some(blocks)).unwrap()
                            }
                            Err(HashRequestError::SpansPieces { .. }) => {
                                assert!(base < 2 && base + lg > 2);
                                continue;
                            }
                            Err(e) => panic!("{r:?}: {e}"),
                        };
                        assert_eq!(from_partial, answer, "{r:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn hash_requests_validated_like_libtorrent() {
        let full = MerkleTree::from_leaves((1..=11).map(h).collect()).unwrap();
        let err = |r: HashRequest| full.hashes(&r, None).unwrap_err();
        assert!(matches!(
            err(req(4, 0, 1, 0)),
            HashRequestError::BaseLayerOutOfRange { .. }
        ));
        assert!(matches!(
            err(req(0, 0, 3, 0)),
            HashRequestError::BadLength { .. }
        ));
        assert!(matches!(
            err(req(0, 0, 0, 0)),
            HashRequestError::BadLength { .. }
        ));
        assert!(matches!(
            err(req(0, 2, 4, 0)),
            HashRequestError::Misaligned { .. }
        ));
        assert!(matches!(
            err(req(0, 16, 2, 0)),
            HashRequestError::IndexOutOfRange { .. }
        ));
        assert!(matches!(
            err(req(0, u32::MAX - 1, 2, 0)),
            HashRequestError::IndexOutOfRange { .. }
        ));
        assert!(matches!(
            err(req(1, 0, 2, 3)),
            HashRequestError::TooManyProofLayers { max: 2, .. }
        ));
        let one_block = MerkleTree::from_leaves(vec![h(1)]).unwrap();
        assert!(matches!(
            one_block.hashes(&req(0, 0, 1, 0), None),
            Err(HashRequestError::BaseLayerOutOfRange { .. })
        ));
    }

    #[test]
    fn corrupt_leaves_are_never_served() {
        let leaves: Vec<_> = (1..=11).map(h).collect();
        let full = MerkleTree::from_leaves(leaves.clone()).unwrap();
        let layer = piece_layer_of_leaves(&leaves, 65_536);
        let partial = MerkleTree::for_file(11 * 16_384, 65_536, full.root(), Some(&layer)).unwrap();
        let r = req(0, 4, 4, 3);
        let mut bad = leaves[4..8].to_vec();
        bad[2][5] ^= 1;
        assert_eq!(
            partial.hashes(&r, Some(&bad)),
            Err(HashRequestError::LeavesMismatch)
        );
        assert_eq!(
            partial.hashes(&r, Some(&leaves[4..7])),
            Err(HashRequestError::LeafCount {
                got: 3,
                expected: 4
            })
        );
        // The last piece has 3 blocks; a request in its padding needs no data.
        let pad = req(0, 14, 2, 1);
        assert_eq!(partial.leaves_needed(&pad), Ok(None));
        assert_eq!(
            partial.hashes(&pad, None),
            full.hashes(&pad, None),
            "pad leaves"
        );
    }

    #[test]
    fn small_file_tree_from_root_needs_its_leaves() {
        // 3 blocks in a 64 KiB piece: only the root is known.
        let leaves = vec![h(1), h(2), h(3)];
        let full = MerkleTree::from_leaves(leaves.clone()).unwrap();
        let small = MerkleTree::for_file(40_000, 65_536, full.root(), None).unwrap();
        assert_eq!(small.base_height(), 2);
        let r = req(0, 0, 2, 1);
        assert_eq!(
            small.leaves_needed(&r),
            Ok(Some(LeafSpan {
                first_block: 0,
                blocks: 3
            }))
        );
        assert_eq!(
            small.hashes(&r, Some(&leaves)).unwrap(),
            full.hashes(&r, None).unwrap()
        );
    }
}
