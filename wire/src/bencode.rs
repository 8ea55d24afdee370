//! Bencode (BEP 3): a lenient, bounded, borrowing decoder, and a tiny canonical writer.
//!
//! # Decoding policy
//!
//! Exactly as lenient as libtorrent's `bdecode` for v1 .torrent files, and no more:
//!
//! - **Accepted:** dictionaries whose keys are unsorted or duplicated. The entries are kept in file
//!   order with the raw bytes of every value, so the info-hash is always the SHA-1 of the raw
//!   `info` bytes, never of a re-encoding. [`Dict::get`] returns the **first** occurrence of a
//!   duplicated key, as libtorrent's `bdecode_node::dict_find` does (a linear scan from the start).
//!   [`Dict::is_canonical`] tells whether the keys were sorted and unique, for callers that must be
//!   strict (v2 torrents, BEP 44 puts). Strict decoders (bendy's, for one) reject such dictionaries, which is
//!   why this crate has its own decode path.
//! - **Refused, with the byte position:** integers with leading zeros (`i03e`), negative zero
//!   (`i-0e`), no digits (`ie`, `i-e`) or outside `i64`; string lengths with leading zeros
//!   (`03:abc`) or longer than the remaining input (`9999999999:abc`); non-string dictionary
//!   keys; a key without a value; truncated input; and, in [`decode`], trailing bytes. (libtorrent
//!   accepts leading zeros and only reports them as "soft errors"; they never occur in a
//!   well-formed file and would make two encodings of one integer.)
//!
//! # Limits
//!
//! Nesting depth ([`MAX_BENCODE_DEPTH`]), token count ([`MAX_BENCODE_TOKENS`]) and integer digits
//! ([`MAX_INTEGER_DIGITS`]). The decoder is iterative (an explicit stack capped at the depth
//! limit), so hostile nesting cannot overflow the call stack. Strings borrow from the input: a
//! declared length is compared with the remaining input before it is used, and nothing is ever
//! allocated for it.
//!
//! # Encoding
//!
//! One writer for the whole workspace: [`put_bytes`], [`put_int`], [`put_uint`] append values
//! without allocating (the tracker and the DHT write replies at high rates with them), and
//! [`DictWriter`] writes a dictionary whose keys it checks to be in canonical order. Raw bytes
//! already encoded (an `info` dictionary spliced unchanged into a .torrent) are appended as
//! they are.

use crate::limits::{MAX_BENCODE_DEPTH, MAX_BENCODE_TOKENS, MAX_INTEGER_DIGITS};

/// A decoded bencode value borrowing from the input buffer (BEP 3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value<'a> {
    /// `i<digits>e`.
    Int(i64),
    /// `<len>:<bytes>`: a byte string, not necessarily UTF-8.
    Bytes(&'a [u8]),
    /// `l<values>e`.
    List(Vec<Self>),
    /// `d<key><value>...e`, entries in file order.
    Dict(Dict<'a>),
}

/// A decoded dictionary: its entries in file order, duplicates and unsorted keys included.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Dict<'a> {
    entries: Vec<DictEntry<'a>>,
}

/// One `key: value` entry of a [`Dict`], with the exact bytes of the value as they stand in the
/// input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DictEntry<'a> {
    /// The key's bytes (not necessarily UTF-8).
    pub key: &'a [u8],
    /// The decoded value.
    pub value: Value<'a>,
    /// The value's raw bencoding, a slice of the input (e.g. the exact `info` bytes).
    pub raw: &'a [u8],
}

/// Why bencode was refused. Every variant carries the byte offset (`pos`) in the input where the
/// problem was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// A byte that cannot start a value (not `i`, `l`, `d` or a digit) where a value is expected.
    #[error("byte at {pos} cannot start a bencode value")]
    Malformed {
        /// Byte offset.
        pos: usize,
    },
    /// The input ended inside a value.
    #[error("bencode ends early at byte {pos}")]
    UnexpectedEof {
        /// Byte offset (the input length).
        pos: usize,
    },
    /// Bytes follow the one complete value.
    #[error("trailing bytes after the bencode value, from byte {pos}")]
    TrailingBytes {
        /// Offset of the first trailing byte.
        pos: usize,
    },
    /// An `e` with no open list or dictionary.
    #[error("unmatched `e` at byte {pos}")]
    UnmatchedEnd {
        /// Byte offset.
        pos: usize,
    },
    /// A dictionary key that is not a byte string.
    #[error("dictionary key at byte {pos} is not a string")]
    NonStringKey {
        /// Byte offset.
        pos: usize,
    },
    /// A dictionary ended right after a key, with no value.
    #[error("dictionary key without a value, ended at byte {pos}")]
    MissingValue {
        /// Offset of the `e`.
        pos: usize,
    },
    /// Lists and dictionaries nested deeper than the limit.
    #[error("bencode nested deeper than {limit} levels at byte {pos}")]
    DepthExceeded {
        /// Offset of the list or dictionary that went over.
        pos: usize,
        /// [`MAX_BENCODE_DEPTH`].
        limit: usize,
    },
    /// More tokens than the limit.
    #[error("bencode has more than {limit} tokens, at byte {pos}")]
    TooManyTokens {
        /// Offset of the token that went over.
        pos: usize,
        /// [`MAX_BENCODE_TOKENS`].
        limit: usize,
    },
    /// `ie` or `i-e`: an integer without digits.
    #[error("integer without digits at byte {pos}")]
    EmptyInteger {
        /// Offset of the `i`.
        pos: usize,
    },
    /// A byte other than a digit (or a leading `-`) inside an integer.
    #[error("non-digit byte inside an integer at byte {pos}")]
    InvalidIntegerByte {
        /// Offset of the byte.
        pos: usize,
    },
    /// `i03e`: a leading zero.
    #[error("integer with a leading zero at byte {pos}")]
    IntegerLeadingZero {
        /// Offset of the `i`.
        pos: usize,
    },
    /// `i-0e`.
    #[error("negative zero integer at byte {pos}")]
    NegativeZero {
        /// Offset of the `i`.
        pos: usize,
    },
    /// An integer outside `i64` (or over [`MAX_INTEGER_DIGITS`] digits).
    #[error("integer out of the i64 range at byte {pos}")]
    IntegerOverflow {
        /// Offset of the `i`.
        pos: usize,
    },
    /// `03:abc`: a string length with a leading zero.
    #[error("string length with a leading zero at byte {pos}")]
    StringLengthLeadingZero {
        /// Offset of the length.
        pos: usize,
    },
    /// A string length that does not fit `u64`.
    #[error("string length out of range at byte {pos}")]
    StringLengthOverflow {
        /// Offset of the length.
        pos: usize,
    },
    /// A non-digit where the `:` after a string length should be.
    #[error("expected `:` after a string length at byte {pos}")]
    MissingColon {
        /// Offset of the unexpected byte.
        pos: usize,
    },
    /// A string longer than the input that is left (`9999999999:abc`); nothing was allocated.
    #[error("string of {len} bytes at byte {pos} but only {remaining} bytes remain")]
    StringPastEnd {
        /// Offset of the length.
        pos: usize,
        /// Declared length in bytes.
        len: u64,
        /// Bytes left after the `:`.
        remaining: usize,
    },
}

impl<'a> Value<'a> {
    /// The integer, if this is one.
    #[must_use]
    pub const fn as_int(&self) -> Option<i64> {
        match self {
            Self::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The byte string, if this is one.
    #[must_use]
    pub const fn as_bytes(&self) -> Option<&'a [u8]> {
        match self {
            Self::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The byte string as UTF-8, if this is a byte string holding valid UTF-8.
    #[must_use]
    pub fn as_str(&self) -> Option<&'a str> {
        self.as_bytes().and_then(|b| std::str::from_utf8(b).ok())
    }

    /// The list, if this is one.
    #[must_use]
    pub fn as_list(&self) -> Option<&[Self]> {
        match self {
            Self::List(l) => Some(l),
            _ => None,
        }
    }

    /// The dictionary, if this is one.
    #[must_use]
    pub const fn as_dict(&self) -> Option<&Dict<'a>> {
        match self {
            Self::Dict(d) => Some(d),
            _ => None,
        }
    }
}

impl<'a> Dict<'a> {
    /// The first entry whose key is `key` (libtorrent's `dict_find` behaviour for duplicates).
    #[must_use]
    pub fn get_entry(&self, key: &[u8]) -> Option<&DictEntry<'a>> {
        self.entries.iter().find(|e| e.key == key)
    }

    /// The value of the first entry whose key is `key`; later duplicates are ignored, as in
    /// libtorrent.
    #[must_use]
    pub fn get(&self, key: &[u8]) -> Option<&Value<'a>> {
        self.get_entry(key).map(|e| &e.value)
    }

    /// The raw bencoding of the first value whose key is `key`, a slice of the input.
    #[must_use]
    pub fn get_raw(&self, key: &[u8]) -> Option<&'a [u8]> {
        self.get_entry(key).map(|e| e.raw)
    }

    /// All entries in file order.
    #[must_use]
    pub fn entries(&self) -> &[DictEntry<'a>] {
        &self.entries
    }

    /// Number of entries, duplicates included.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the dictionary has no entries.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// True when the keys are strictly increasing in raw byte order (sorted, no duplicates), as
    /// BEP 3 requires of an encoder; this decoder accepts dictionaries where this is false.
    #[must_use]
    pub fn is_canonical(&self) -> bool {
        self.entries.windows(2).all(|w| w[0].key < w[1].key)
    }
}

/// Decodes exactly one bencoded value that spans all of `bytes`.
///
/// # Errors
/// [`DecodeError`] with the byte position: malformed or truncated input, a limit exceeded, or
/// [`DecodeError::TrailingBytes`] when anything follows the value.
pub fn decode(bytes: &[u8]) -> Result<Value<'_>, DecodeError> {
    let (value, used) = decode_prefix(bytes)?;
    if used == bytes.len() {
        Ok(value)
    } else {
        Err(DecodeError::TrailingBytes { pos: used })
    }
}

/// Decodes the one bencoded value at the start of `bytes`, returning it with the number of bytes
/// it spans; what follows is not examined.
///
/// # Errors
/// [`DecodeError`] with the byte position: malformed or truncated input, or a limit exceeded.
pub fn decode_prefix(bytes: &[u8]) -> Result<(Value<'_>, usize), DecodeError> {
    Decoder {
        input: bytes,
        pos: 0,
    }
    .run()
}

/// A list or dictionary still open on the decoder's stack. Its `Vec` grows through
/// [`push_compact`], so a closed container holds at most 25 % spare capacity (small ones none).
enum Frame<'a> {
    List {
        start: usize,
        items: Vec<Value<'a>>,
    },
    Dict {
        start: usize,
        entries: Vec<DictEntry<'a>>,
        /// The key just read, waiting for its value.
        key: Option<&'a [u8]>,
    },
}

struct Decoder<'a> {
    input: &'a [u8],
    pos: usize,
}

impl<'a> Decoder<'a> {
    fn run(mut self) -> Result<(Value<'a>, usize), DecodeError> {
        let mut stack: Vec<Frame<'a>> = Vec::new();
        let mut tokens = 0usize;
        loop {
            let pos = self.pos;
            let Some(&byte) = self.input.get(pos) else {
                return Err(DecodeError::UnexpectedEof { pos });
            };
            tokens += 1;
            if tokens > MAX_BENCODE_TOKENS {
                return Err(DecodeError::TooManyTokens {
                    pos,
                    limit: MAX_BENCODE_TOKENS,
                });
            }
            let awaiting_key = matches!(stack.last(), Some(Frame::Dict { key: None, .. }));
            if awaiting_key && byte != b'e' && !byte.is_ascii_digit() {
                return Err(DecodeError::NonStringKey { pos });
            }
            let (start, value) = match byte {
                b'e' => {
                    self.pos += 1;
                    match stack.pop() {
                        None => return Err(DecodeError::UnmatchedEnd { pos }),
                        Some(Frame::Dict { key: Some(_), .. }) => {
                            return Err(DecodeError::MissingValue { pos });
                        }
                        Some(Frame::List { start, items }) => (start, Value::List(items)),
                        Some(Frame::Dict {
                            start,
                            entries,
                            key: None,
                        }) => (start, Value::Dict(Dict { entries })),
                    }
                }
                b'l' | b'd' => {
                    if stack.len() >= MAX_BENCODE_DEPTH {
                        return Err(DecodeError::DepthExceeded {
                            pos,
                            limit: MAX_BENCODE_DEPTH,
                        });
                    }
                    self.pos += 1;
                    stack.push(if byte == b'l' {
                        Frame::List {
                            start: pos,
                            items: Vec::new(),
                        }
                    } else {
                        Frame::Dict {
                            start: pos,
                            entries: Vec::new(),
                            key: None,
                        }
                    });
                    continue;
                }
                b'i' => (pos, Value::Int(self.integer()?)),
                b'0'..=b'9' => {
                    let s = self.string()?;
                    if awaiting_key {
                        if let Some(Frame::Dict { key, .. }) = stack.last_mut() {
                            *key = Some(s);
                        }
                        continue;
                    }
                    (pos, Value::Bytes(s))
                }
                _ => return Err(DecodeError::Malformed { pos }),
            };
            // A value is complete: hand it to its parent, or return it at the top level.
            let raw = &self.input[start..self.pos];
            match stack.last_mut() {
                None => return Ok((value, self.pos)),
                Some(Frame::List { items, .. }) => push_compact(items, value),
                Some(Frame::Dict { entries, key, .. }) => {
                    // A value inside a dict always follows its key (checked above).
                    let key = key.take().unwrap_or_default();
                    push_compact(entries, DictEntry { key, value, raw });
                }
            }
        }
    }

    /// Parses `i<digits>e` at `self.pos`, advancing past the `e`.
    fn integer(&mut self) -> Result<i64, DecodeError> {
        let start = self.pos;
        let mut p = start + 1;
        let negative = self.input.get(p) == Some(&b'-');
        if negative {
            p += 1;
        }
        let first_digit = p;
        let mut value: i64 = 0;
        loop {
            let Some(&b) = self.input.get(p) else {
                return Err(DecodeError::UnexpectedEof {
                    pos: self.input.len(),
                });
            };
            if b == b'e' {
                break;
            }
            if !b.is_ascii_digit() {
                return Err(DecodeError::InvalidIntegerByte { pos: p });
            }
            if p > first_digit && self.input[first_digit] == b'0' {
                return Err(DecodeError::IntegerLeadingZero { pos: start });
            }
            if p - first_digit >= MAX_INTEGER_DIGITS {
                return Err(DecodeError::IntegerOverflow { pos: start });
            }
            let digit = i64::from(b - b'0');
            // Accumulate on the negative side so that i64::MIN is representable.
            value = value
                .checked_mul(10)
                .and_then(|v| {
                    if negative {
                        v.checked_sub(digit)
                    } else {
                        v.checked_add(digit)
                    }
                })
                .ok_or(DecodeError::IntegerOverflow { pos: start })?;
            p += 1;
        }
        if p == first_digit {
            return Err(DecodeError::EmptyInteger { pos: start });
        }
        if negative && value == 0 {
            return Err(DecodeError::NegativeZero { pos: start });
        }
        self.pos = p + 1;
        Ok(value)
    }

    /// Parses `<len>:<bytes>` at `self.pos`, advancing past the bytes.
    fn string(&mut self) -> Result<&'a [u8], DecodeError> {
        let start = self.pos;
        let mut p = start;
        let mut len: u64 = 0;
        loop {
            let Some(&b) = self.input.get(p) else {
                return Err(DecodeError::UnexpectedEof {
                    pos: self.input.len(),
                });
            };
            if b == b':' {
                break;
            }
            if !b.is_ascii_digit() {
                return Err(DecodeError::MissingColon { pos: p });
            }
            if p > start && self.input[start] == b'0' {
                return Err(DecodeError::StringLengthLeadingZero { pos: start });
            }
            len = len
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(b - b'0')))
                .ok_or(DecodeError::StringLengthOverflow { pos: start })?;
            p += 1;
        }
        let body = p + 1;
        let remaining = self.input.len() - body;
        let fits = usize::try_from(len).ok().filter(|&n| n <= remaining);
        let Some(n) = fits else {
            return Err(DecodeError::StringPastEnd {
                pos: start,
                len,
                remaining,
            });
        };
        self.pos = body + n;
        Ok(&self.input[body..body + n])
    }
}

/// Pushes with exact reservations growing by 1.25x: a decoded tree is mostly small containers,
/// which `Vec`'s doubling (minimum capacity 4) would bloat up to fourfold, and shrinking them
/// afterwards fragments the heap. Reallocation work stays linear (geometric growth).
fn push_compact<T>(v: &mut Vec<T>, item: T) {
    if v.len() == v.capacity() {
        v.reserve_exact(v.len() / 4 + 1);
    }
    v.push(item);
}

/// Appends a byte string, `<len>:<bytes>` (BEP 3), to `out`; never allocates beyond `out`.
pub fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_decimal(out, bytes.len() as u64);
    out.push(b':');
    out.extend_from_slice(bytes);
}

/// Appends an integer, `i<digits>e` (BEP 3), to `out`.
pub fn put_int(out: &mut Vec<u8>, value: i64) {
    out.push(b'i');
    if value < 0 {
        out.push(b'-');
    }
    put_decimal(out, value.unsigned_abs());
    out.push(b'e');
}

/// Appends a non-negative integer, `i<digits>e` (BEP 3), to `out`.
pub fn put_uint(out: &mut Vec<u8>, value: u64) {
    out.push(b'i');
    put_decimal(out, value);
    out.push(b'e');
}

/// Appends the decimal digits of `value` (no sign, no leading zeros) to `out`, from a stack
/// buffer: the hot writers (tracker replies, KRPC) never allocate for a number.
pub fn put_decimal(out: &mut Vec<u8>, mut value: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// Bytes [`put_bytes`] appends for a string of `len` bytes: its decimal length, `:`, the bytes.
#[must_use]
pub const fn encoded_bytes_len(len: usize) -> usize {
    let mut digits = 1;
    let mut v = len / 10;
    while v > 0 {
        digits += 1;
        v /= 10;
    }
    digits + 1 + len
}

/// Writes one dictionary in BEP 3's canonical form: keys strictly increasing as raw byte
/// strings, each followed by its value (written with [`put_bytes`], [`put_int`], a nested
/// [`DictWriter`], a list, or raw bytes already encoded, such as an `info` dictionary spliced
/// unchanged into a .torrent).
///
/// ```
/// use seednode_wire::bencode::{DictWriter, put_bytes, put_int};
/// let mut out = Vec::new();
/// let mut d = DictWriter::new(&mut out);
/// put_int(d.key(b"length"), 3);
/// put_bytes(d.key(b"name"), b"a.txt");
/// d.finish();
/// assert_eq!(out, b"d6:lengthi3e4:name5:a.txte");
/// ```
pub struct DictWriter<'a> {
    out: &'a mut Vec<u8>,
    /// Where the previous key's bytes start and end in `out`, to check the order.
    last_key: Option<(usize, usize)>,
}

impl<'a> DictWriter<'a> {
    /// Starts a dictionary (`d`) at the end of `out`.
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        out.push(b'd');
        Self {
            out,
            last_key: None,
        }
    }

    /// Writes `key` and returns the buffer for its value, which must be written before the
    /// next key.
    ///
    /// # Panics
    /// When `key` does not sort strictly after the previous key: keys are chosen by the
    /// programmer (literals in canonical order), so this is a bug, never input.
    pub fn key(&mut self, key: &[u8]) -> &mut Vec<u8> {
        if let Some((start, end)) = self.last_key {
            assert!(
                &self.out[start..end] < key,
                "bencode dictionary keys out of canonical order"
            );
        }
        put_decimal(self.out, key.len() as u64);
        self.out.push(b':');
        let start = self.out.len();
        self.out.extend_from_slice(key);
        self.last_key = Some((start, self.out.len()));
        self.out
    }

    /// Ends the dictionary (`e`).
    pub fn finish(self) {
        self.out.push(b'e');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_matches_bep3_vectors_and_round_trips() {
        let mut out = Vec::new();
        put_int(&mut out, i64::MIN);
        put_int(&mut out, i64::MAX);
        put_int(&mut out, 0);
        put_uint(&mut out, u64::MAX);
        put_bytes(&mut out, b"");
        put_bytes(&mut out, b"spam");
        assert_eq!(
            out,
            b"i-9223372036854775808ei9223372036854775807ei0ei18446744073709551615e0:4:spam"
        );
        for len in [0, 9, 10, 99, 100, 12345] {
            let mut o = Vec::new();
            put_bytes(&mut o, &vec![b'x'; len]);
            assert_eq!(o.len(), encoded_bytes_len(len));
        }
        let mut out = Vec::new();
        let mut d = DictWriter::new(&mut out);
        let inner = d.key(b"a");
        let mut nested = DictWriter::new(inner);
        put_int(nested.key(b"x"), -1);
        nested.finish();
        d.key(b"b").extend_from_slice(b"le");
        put_bytes(d.key(b"ba"), b"");
        d.finish();
        assert_eq!(out, b"d1:ad1:xi-1ee1:ble2:ba0:e");
        assert_eq!(decode(&out).map(|_| ()), Ok(()));
    }

    #[test]
    #[should_panic(expected = "canonical order")]
    fn writer_refuses_keys_out_of_order() {
        let mut out = Vec::new();
        let mut d = DictWriter::new(&mut out);
        put_int(d.key(b"name"), 1);
        put_int(d.key(b"length"), 1);
    }

    fn err(input: &[u8]) -> DecodeError {
        decode(input).unwrap_err()
    }

    #[test]
    fn bep3_string_vector() {
        assert_eq!(decode(b"4:spam").unwrap(), Value::Bytes(b"spam"));
        assert_eq!(decode(b"0:").unwrap(), Value::Bytes(b""));
    }

    #[test]
    fn bep3_integer_vectors() {
        assert_eq!(decode(b"i3e").unwrap(), Value::Int(3));
        assert_eq!(decode(b"i-3e").unwrap(), Value::Int(-3));
        assert_eq!(decode(b"i0e").unwrap(), Value::Int(0));
    }

    #[test]
    fn bep3_list_vector() {
        let v = decode(b"l4:spam4:eggse").unwrap();
        assert_eq!(
            v,
            Value::List(vec![Value::Bytes(b"spam"), Value::Bytes(b"eggs")])
        );
    }

    #[test]
    fn bep3_dict_vector() {
        let input = b"d3:cow3:moo4:spam4:eggse";
        let v = decode(input).unwrap();
        let d = v.as_dict().unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(d.get(b"cow"), Some(&Value::Bytes(b"moo")));
        assert_eq!(d.get(b"spam").and_then(Value::as_str), Some("eggs"));
        assert_eq!(d.get_raw(b"spam"), Some(&b"4:eggs"[..]));
        assert!(d.is_canonical());
        assert_eq!(d.get(b"missing"), None);
    }

    #[test]
    fn i64_extremes() {
        assert_eq!(
            decode(b"i9223372036854775807e").unwrap(),
            Value::Int(i64::MAX)
        );
        assert_eq!(
            decode(b"i-9223372036854775808e").unwrap(),
            Value::Int(i64::MIN)
        );
        assert!(matches!(
            err(b"i9223372036854775808e"),
            DecodeError::IntegerOverflow { pos: 0 }
        ));
        assert!(matches!(
            err(b"i-9223372036854775809e"),
            DecodeError::IntegerOverflow { pos: 0 }
        ));
    }

    #[test]
    fn raw_spans_cover_nested_values() {
        let input = b"d1:ad1:bli1ei2eee1:c0:e";
        let v = decode(input).unwrap();
        let d = v.as_dict().unwrap();
        assert_eq!(d.get_raw(b"a"), Some(&b"d1:bli1ei2eee"[..]));
        assert_eq!(d.get_raw(b"c"), Some(&b"0:"[..]));
        let inner = d.get(b"a").and_then(Value::as_dict).unwrap();
        assert_eq!(inner.get_raw(b"b"), Some(&b"li1ei2ee"[..]));
    }

    #[test]
    fn accepts_unsorted_keys_like_libtorrent() {
        let v = decode(b"d4:spam4:eggs3:cow3:mooe").unwrap();
        let d = v.as_dict().unwrap();
        assert!(!d.is_canonical());
        assert_eq!(d.entries()[0].key, b"spam");
        assert_eq!(d.get(b"cow"), Some(&Value::Bytes(b"moo")));
    }

    #[test]
    fn duplicate_keys_accepted_first_wins() {
        let v = decode(b"d1:ai1e1:ai2ee").unwrap();
        let d = v.as_dict().unwrap();
        assert_eq!(d.len(), 2);
        assert!(!d.is_canonical());
        assert_eq!(d.get(b"a"), Some(&Value::Int(1)));
    }

    #[test]
    fn m8_depth_bomb_rejected() {
        let bomb = vec![b'l'; 100_000];
        assert_eq!(
            err(&bomb),
            DecodeError::DepthExceeded {
                pos: 100,
                limit: MAX_BENCODE_DEPTH
            }
        );
        // Exactly at the limit is fine.
        let mut ok = vec![b'l'; MAX_BENCODE_DEPTH];
        ok.extend(vec![b'e'; MAX_BENCODE_DEPTH]);
        assert!(decode(&ok).is_ok());
        let mut dicts = b"d1:a".repeat(MAX_BENCODE_DEPTH + 1);
        dicts.extend(b"i1e");
        assert!(matches!(err(&dicts), DecodeError::DepthExceeded { .. }));
    }

    #[test]
    fn m8_long_integer_rejected_early() {
        let mut input = b"i".to_vec();
        input.extend(vec![b'1'; 10_000]);
        input.push(b'e');
        assert_eq!(err(&input), DecodeError::IntegerOverflow { pos: 0 });
    }

    #[test]
    fn m8_non_canonical_integers_rejected() {
        assert_eq!(err(b"i-0e"), DecodeError::NegativeZero { pos: 0 });
        assert_eq!(err(b"i03e"), DecodeError::IntegerLeadingZero { pos: 0 });
        assert_eq!(err(b"i-03e"), DecodeError::IntegerLeadingZero { pos: 0 });
        assert_eq!(err(b"i00e"), DecodeError::IntegerLeadingZero { pos: 0 });
        assert_eq!(err(b"ie"), DecodeError::EmptyInteger { pos: 0 });
        assert_eq!(err(b"i-e"), DecodeError::EmptyInteger { pos: 0 });
        assert_eq!(err(b"i1x"), DecodeError::InvalidIntegerByte { pos: 2 });
        assert_eq!(err(b"i+1e"), DecodeError::InvalidIntegerByte { pos: 1 });
        assert_eq!(err(b"i12"), DecodeError::UnexpectedEof { pos: 3 });
    }

    #[test]
    fn m8_string_length_leading_zero_rejected() {
        assert_eq!(
            err(b"03:abc"),
            DecodeError::StringLengthLeadingZero { pos: 0 }
        );
        assert_eq!(
            err(b"l00:e"),
            DecodeError::StringLengthLeadingZero { pos: 1 }
        );
    }

    #[test]
    fn m8_string_past_end_rejected_without_allocating() {
        assert_eq!(
            err(b"9999999999:abc"),
            DecodeError::StringPastEnd {
                pos: 0,
                len: 9_999_999_999,
                remaining: 3
            }
        );
        assert_eq!(
            err(b"99999999999999999999999:"),
            DecodeError::StringLengthOverflow { pos: 0 }
        );
        assert_eq!(
            err(b"4:abc"),
            DecodeError::StringPastEnd {
                pos: 0,
                len: 4,
                remaining: 3
            }
        );
    }

    #[test]
    fn structural_errors_carry_positions() {
        assert_eq!(err(b""), DecodeError::UnexpectedEof { pos: 0 });
        assert_eq!(err(b"x"), DecodeError::Malformed { pos: 0 });
        assert_eq!(err(b"e"), DecodeError::UnmatchedEnd { pos: 0 });
        assert_eq!(err(b"i1ei2e"), DecodeError::TrailingBytes { pos: 3 });
        assert_eq!(err(b"di1ei2ee"), DecodeError::NonStringKey { pos: 1 });
        assert_eq!(err(b"d1:ae"), DecodeError::MissingValue { pos: 4 });
        assert_eq!(err(b"l4:spam"), DecodeError::UnexpectedEof { pos: 7 });
        assert_eq!(err(b"4spam"), DecodeError::MissingColon { pos: 1 });
        assert_eq!(err(b"4"), DecodeError::UnexpectedEof { pos: 1 });
    }

    #[test]
    fn decode_prefix_reports_consumed() {
        let (v, used) = decode_prefix(b"i42eXYZ").unwrap();
        assert_eq!((v, used), (Value::Int(42), 4));
    }

    #[test]
    fn token_limit_enforced() {
        // `l` + N * `0:` + `e`: N + 2 tokens.
        let n = MAX_BENCODE_TOKENS - 1;
        let mut input = Vec::with_capacity(2 * n + 2);
        input.push(b'l');
        for _ in 0..n {
            input.extend_from_slice(b"0:");
        }
        input.push(b'e');
        assert!(
            matches!(err(&input), DecodeError::TooManyTokens { pos, .. } if pos == input.len() - 1)
        );
        input.truncate(input.len() - 3);
        input.push(b'e');
        assert!(decode(&input).is_ok());
    }

    #[test]
    fn short_input_sweep_never_panics() {
        let input = b"d3:cowli1ei-22e4:spamd0:i0eee1:xle3:zzz9:abcdefghie";
        assert!(decode(input).is_ok());
        for n in 0..input.len() {
            assert!(decode(&input[..n]).is_err());
        }
    }

    #[test]
    fn writer_matches_decoder() {
        let mut out = Vec::new();
        put_bytes(&mut out, b"spam");
        put_int(&mut out, -42);
        assert_eq!(out, b"4:spami-42e");
    }
}
