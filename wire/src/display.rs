//! Names from disk or from a torrent, made safe to print on a terminal or in a log line.
//!
//! A file name is attacker-chosen bytes (a torrent's `name` and paths, BEP 3; a name found on
//! disk by `create`): an ESC sequence in one can recolour or rewrite the operator's terminal, a
//! newline can forge an output or log line, a bidirectional override can make `txt.exe` show as
//! `exe.txt` (SECURITY §3.3 M10: "stored verbatim, escaped on output"). [`escape_name`],
//! [`escape_bytes`] and [`escape_path`] are the one way such a name is shown; names are only
//! escaped for display, never changed where they are stored.
//!
//! Escapes, chosen so that the output decodes back to exactly one name:
//! - `\\` for a backslash (so every other `\` starts an escape);
//! - `\0`, `\t`, `\n`, `\r`, `\e` (ESC) for those controls;
//! - `\xNN` (two lowercase hex digits) for every other C0 control and DEL, and for each byte of
//!   invalid UTF-8 (those are `0x80..=0xFF`, so the two never collide);
//! - `\u{NNNN}` (lowercase hex) for C1 controls (U+0080–U+009F), the bidirectional controls
//!   (U+061C, U+200E–U+200F, U+202A–U+202E, U+2066–U+2069), zero-width and invisible format
//!   characters (U+200B–U+200D, U+2060–U+2064, U+FEFF), and the line and paragraph separators
//!   U+2028–U+2029 (some terminals and log viewers break lines at them).
//!
//! Everything else, including any other non-ASCII letter, is shown as it is.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::path::Path;

/// True when `c` is shown escaped by [`escape_name`] (see the module docs for the set).
#[must_use]
pub fn needs_escape(c: char) -> bool {
    matches!(
        c,
        '\\' | '\0'..='\x1f'
            | '\x7f'..='\u{9f}'
            | '\u{061C}'
            | '\u{200B}'..='\u{200F}'
            | '\u{2028}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{FEFF}'
    )
}

/// Appends the escape of `c` (one [`needs_escape`] is true for) to `out`.
fn push_escape(out: &mut String, c: char) {
    // Writing to a String cannot fail.
    let _ = match c {
        '\\' => out.write_str("\\\\"),
        '\0' => out.write_str("\\0"),
        '\t' => out.write_str("\\t"),
        '\n' => out.write_str("\\n"),
        '\r' => out.write_str("\\r"),
        '\x1b' => out.write_str("\\e"),
        '\0'..='\x1f' | '\x7f' => write!(out, "\\x{:02x}", u32::from(c)),
        _ => write!(out, "\\u{{{:x}}}", u32::from(c)),
    };
}

/// `name` with every character of [`needs_escape`] escaped (see the module docs); borrowed when
/// there is nothing to escape.
///
/// ```
/// use seednode_wire::display::escape_name;
/// assert_eq!(escape_name("plain.txt"), "plain.txt");
/// assert_eq!(escape_name("a\u{1b}[31mb\nc"), "a\\e[31mb\\nc");
/// assert_eq!(escape_name("txt.\u{202E}exe"), "txt.\\u{202e}exe");
/// ```
#[must_use]
pub fn escape_name(name: &str) -> Cow<'_, str> {
    let Some(first) = name.find(needs_escape) else {
        return Cow::Borrowed(name);
    };
    let mut out = String::with_capacity(name.len() + 8);
    out.push_str(&name[..first]);
    push_escaped(&mut out, &name[first..]);
    Cow::Owned(out)
}

/// Appends `s` to `out`, escaping what [`needs_escape`] names.
fn push_escaped(out: &mut String, s: &str) {
    for c in s.chars() {
        if needs_escape(c) {
            push_escape(out, c);
        } else {
            out.push(c);
        }
    }
}

/// `bytes` shown as [`escape_name`] shows a name, with each byte of invalid UTF-8 as `\xNN`;
/// borrowed when the bytes are UTF-8 with nothing to escape.
///
/// ```
/// use seednode_wire::display::escape_bytes;
/// assert_eq!(escape_bytes(b"ok"), "ok");
/// assert_eq!(escape_bytes(b"caf\xe9\n"), "caf\\xe9\\n");
/// ```
#[must_use]
pub fn escape_bytes(bytes: &[u8]) -> Cow<'_, str> {
    if let Ok(name) = std::str::from_utf8(bytes) {
        return escape_name(name);
    }
    let mut out = String::with_capacity(bytes.len() + 8);
    for chunk in bytes.utf8_chunks() {
        push_escaped(&mut out, chunk.valid());
        for byte in chunk.invalid() {
            let _ = write!(out, "\\x{byte:02x}");
        }
    }
    Cow::Owned(out)
}

/// `path` shown as [`escape_bytes`] shows its bytes (on Unix, a path is any bytes but NUL);
/// borrowed when there is nothing to escape. `/` is shown as it is.
#[must_use]
pub fn escape_path(path: &Path) -> Cow<'_, str> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        escape_bytes(path.as_os_str().as_bytes())
    }
    #[cfg(not(unix))]
    {
        match path.to_string_lossy() {
            Cow::Borrowed(name) => escape_name(name),
            Cow::Owned(name) => Cow::Owned(escape_name(&name).into_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_are_borrowed_unchanged() {
        for name in [
            "",
            "a.txt",
            "Ünïcödé ñ 日本語",
            "spaces and 'quotes' \"x\"",
            "a/b",
        ] {
            assert!(
                matches!(escape_name(name), Cow::Borrowed(n) if n == name),
                "{name}"
            );
            assert!(matches!(escape_bytes(name.as_bytes()), Cow::Borrowed(n) if n == name));
            assert!(matches!(escape_path(Path::new(name)), Cow::Borrowed(n) if n == name));
        }
    }

    #[test]
    fn escapes_controls_with_short_forms() {
        assert_eq!(escape_name("a\x1b[31mred\x1b[0m"), "a\\e[31mred\\e[0m");
        assert_eq!(escape_name("1\n2\r3\t4\0 5"), "1\\n2\\r3\\t4\\0 5");
        assert_eq!(
            escape_name("bell\x07 del\x7f us\x1f"),
            "bell\\x07 del\\x7f us\\x1f"
        );
        assert_eq!(escape_name("back\\slash"), "back\\\\slash");
    }

    #[test]
    fn escapes_c1_bidi_zero_width_and_line_separators() {
        assert_eq!(escape_name("nel\u{85}csi\u{9b}"), "nel\\u{85}csi\\u{9b}");
        assert_eq!(escape_name("txt.\u{202E}exe"), "txt.\\u{202e}exe");
        assert_eq!(
            escape_name("\u{200B}\u{200C}\u{200D}\u{200E}\u{200F}\u{061C}\u{2066}\u{2069}"),
            "\\u{200b}\\u{200c}\\u{200d}\\u{200e}\\u{200f}\\u{61c}\\u{2066}\\u{2069}"
        );
        assert_eq!(escape_name("\u{FEFF}bom\u{2060}"), "\\u{feff}bom\\u{2060}");
        assert_eq!(escape_name("l\u{2028}p\u{2029}"), "l\\u{2028}p\\u{2029}");
        // Neighbours of the escaped ranges are shown as they are.
        for c in [
            '\u{a0}', '\u{2010}', '\u{2030}', '\u{2065}', '\u{206A}', '\u{FEFE}',
        ] {
            assert!(!needs_escape(c), "{c:?}");
        }
    }

    #[test]
    fn invalid_utf8_bytes_are_hex() {
        assert_eq!(escape_bytes(b"\xff\xfe"), "\\xff\\xfe");
        assert_eq!(escape_bytes(b"ok\xc3"), "ok\\xc3");
        assert_eq!(escape_bytes(b"\xe9\x1b\\"), "\\xe9\\e\\\\");
        #[cfg(unix)]
        {
            use std::ffi::OsStr;
            use std::os::unix::ffi::OsStrExt;
            let path = Path::new(OsStr::from_bytes(b"/tmp/a\xff\n/b"));
            assert_eq!(escape_path(path), "/tmp/a\\xff\\n/b");
        }
    }

    #[test]
    fn output_never_holds_a_character_that_needs_escaping() {
        // Every char up to U+3000 and every single byte, alone and between letters.
        let chars = (0u32..0x3000).filter_map(char::from_u32);
        for c in chars {
            let name = format!("a{c}b");
            let shown = escape_name(&name);
            assert!(
                shown.chars().all(|s| s == '\\' || !needs_escape(s)),
                "{c:?} -> {shown:?}"
            );
            assert_eq!(shown == name, !needs_escape(c), "{c:?}");
        }
        for byte in 0u8..=255 {
            let name = [b'a', byte, b'b'];
            let shown = escape_bytes(&name);
            assert!(shown.chars().all(|s| s == '\\' || !needs_escape(s)));
            assert!(!shown.contains(['\n', '\x1b', '\r']));
        }
    }

    #[test]
    fn escapes_decode_back_to_one_name() {
        // `\\` then `e` is a backslash and an `e`; `\e` is ESC: distinct outputs.
        assert_ne!(escape_name("\\e"), escape_name("\x1b"));
        assert_ne!(escape_name("\\x07"), escape_name("\x07"));
        assert_ne!(escape_bytes(b"\\xff"), escape_bytes(b"\xff"));
    }
}
