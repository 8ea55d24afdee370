//! Blossom (BUD-01, BUD-02, BUD-06, BUD-11, BUD-12) request parsing and the pure rules of the
//! node's blob server: which paths are Blossom's, blob names and extensions, media types, and
//! the limits. The serving is in the event loop (`reactor/blossom.rs`); `docs/blossom.md`
//! describes the routes.
//!
//! A blob is a single-file torrent whose file's SHA-256 is recorded in the catalog; its file in
//! the data directory is named `<sha256 hex>.<ext>`, the extension standing for the media type
//! it was uploaded with ([`ext_for_type`], [`type_for_ext`]), so the type survives restarts
//! without a column of its own.

/// Largest blob `PUT /upload` accepts, in bytes: 4 GiB. Blossom blobs are media files; larger
/// content is better added as a torrent. The `Content-Length` is checked against it before a
/// byte of the body is read (413).
pub const MAX_BLOB_LEN: u64 = 4 * 1024 * 1024 * 1024;

/// Longest extension accepted after the hash in `/<sha256>.<ext>`: 16 characters, ASCII letters
/// and digits (`.webm`, `.torrent`); longer or other characters: 404.
pub const MAX_EXT_LEN: usize = 16;

/// Most blobs `GET /list/<pubkey>` returns in one answer: 1000 (BUD-12 allows paging with
/// `cursor` and `limit`; a larger `limit` is clamped).
pub const MAX_LIST_LEN: usize = 1000;

/// A Blossom route, from the method and the path (still percent-encoded; Blossom paths are
/// plain ASCII).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<'a> {
    /// `GET`/`HEAD /<sha256>[.ext]` (BUD-01).
    Blob {
        /// The blob's SHA-256.
        sha256: [u8; 32],
        /// The extension asked for, if any (ignored for the lookup, BUD-01).
        ext: Option<&'a str>,
    },
    /// `DELETE /<sha256>[.ext]` (BUD-02).
    Delete {
        /// The blob's SHA-256.
        sha256: [u8; 32],
    },
    /// `PUT /upload` (BUD-02).
    Upload,
    /// `HEAD /upload` (BUD-06 preflight).
    UploadCheck,
    /// `GET /list/<pubkey>` (BUD-12).
    List {
        /// The uploader's public key (64 hex digits).
        pubkey: [u8; 32],
    },
    /// `OPTIONS` on any Blossom path (CORS preflight, BUD-01).
    Preflight,
    /// A Blossom path with a method it does not take: 405 with these methods in `Allow`.
    NotAllowed(&'static str),
}

/// The Blossom route of `method` `path`, or `None` when the path is not Blossom's (other routes
/// of the front door then apply). Never panics, allocates nothing.
#[must_use]
pub fn route<'a>(method: &str, path: &'a str) -> Option<Route<'a>> {
    let rest = path.strip_prefix('/')?;
    if rest == "upload" {
        return Some(match method {
            "PUT" => Route::Upload,
            "HEAD" => Route::UploadCheck,
            "OPTIONS" => Route::Preflight,
            _ => Route::NotAllowed("PUT, HEAD, OPTIONS"),
        });
    }
    if let Some(key) = rest.strip_prefix("list/") {
        let pubkey = crate::nostr_auth::unhex::<32>(key)?;
        return Some(match method {
            "GET" | "HEAD" => Route::List { pubkey },
            "OPTIONS" => Route::Preflight,
            _ => Route::NotAllowed("GET, HEAD, OPTIONS"),
        });
    }
    let (sha256, ext) = blob_name(rest)?;
    Some(match method {
        "GET" | "HEAD" => Route::Blob { sha256, ext },
        "DELETE" => Route::Delete { sha256 },
        "OPTIONS" => Route::Preflight,
        _ => Route::NotAllowed("GET, HEAD, DELETE, OPTIONS"),
    })
}

/// `<64 hex digits>[.<ext>]` as the hash and the extension.
#[must_use]
pub fn blob_name(name: &str) -> Option<([u8; 32], Option<&str>)> {
    let (hash, ext) = match name.split_once('.') {
        Some((h, e)) => (h, Some(e)),
        None => (name, None),
    };
    let sha256 = crate::nostr_auth::unhex::<32>(hash)?;
    if let Some(e) = ext
        && (e.is_empty() || e.len() > MAX_EXT_LEN || !e.bytes().all(|b| b.is_ascii_alphanumeric()))
    {
        return None;
    }
    Some((sha256, ext))
}

/// Media types the node names blobs after, with their extension. The first extension of a type
/// is the one given to it; anything else is stored as `bin` and served as
/// `application/octet-stream`. Types a browser would run on the node's origin (HTML, SVG,
/// JavaScript) are deliberately absent: served as `application/octet-stream`.
const TYPES: &[(&str, &str)] = &[
    ("bin", "application/octet-stream"),
    ("txt", "text/plain"),
    ("json", "application/json"),
    ("pdf", "application/pdf"),
    ("zip", "application/zip"),
    ("gz", "application/gzip"),
    ("tar", "application/x-tar"),
    ("torrent", "application/x-bittorrent"),
    ("png", "image/png"),
    ("jpg", "image/jpeg"),
    ("jpeg", "image/jpeg"),
    ("gif", "image/gif"),
    ("webp", "image/webp"),
    ("avif", "image/avif"),
    ("mp4", "video/mp4"),
    ("webm", "video/webm"),
    ("mkv", "video/x-matroska"),
    ("mp3", "audio/mpeg"),
    ("ogg", "audio/ogg"),
    ("flac", "audio/flac"),
    ("wav", "audio/wav"),
];

/// The extension for a `Content-Type` (parameters ignored, case-insensitive): `bin` when the
/// type is absent or not in the node's table.
#[must_use]
pub fn ext_for_type(content_type: Option<&str>) -> &'static str {
    let Some(t) = content_type else {
        return "bin";
    };
    let t = t.split(';').next().unwrap_or("").trim();
    TYPES
        .iter()
        .find(|(_, m)| m.eq_ignore_ascii_case(t))
        .map_or("bin", |(e, _)| e)
}

/// The media type served for an extension: `application/octet-stream` when unknown.
#[must_use]
pub fn type_for_ext(ext: &str) -> &'static str {
    TYPES
        .iter()
        .find(|(e, _)| e.eq_ignore_ascii_case(ext))
        .map_or("application/octet-stream", |(_, m)| m)
}

/// The file name of a blob in the data directory: `<sha256 hex>.<ext>`.
#[must_use]
pub fn file_name(sha256: &[u8; 32], ext: &str) -> String {
    format!("{}.{ext}", crate::nostr_auth::hex(sha256))
}

/// The blob a torrent's name stands for, when it is a blob's file name (`<sha256>.<ext>`,
/// [`file_name`]): its hash and media type.
#[must_use]
pub fn from_file_name(name: &str) -> Option<([u8; 32], &'static str)> {
    let (sha256, ext) = blob_name(name)?;
    Some((sha256, type_for_ext(ext.unwrap_or("bin"))))
}

/// The CORS headers of every Blossom response (BUD-01: any origin, the methods and headers a
/// client uses, the headers it may read).
pub const CORS_HEADERS: &[(&str, &str)] = &[
    ("Access-Control-Allow-Origin", "*"),
    (
        "Access-Control-Allow-Headers",
        "Authorization, *, Content-Type, X-SHA-256, X-Content-Length, X-Content-Type",
    ),
    (
        "Access-Control-Allow-Methods",
        "GET, HEAD, PUT, DELETE, OPTIONS",
    ),
    (
        "Access-Control-Expose-Headers",
        "X-Reason, Content-Length, Content-Range",
    ),
    ("Access-Control-Max-Age", "86400"),
];

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "b1674191a88ec5cdd733e4240a81803105dc412d6c6708d53ab94fc248f4f553";

    #[test]
    fn routes() {
        let (hash, _) = blob_name(H).unwrap();
        assert_eq!(
            route("GET", &format!("/{H}.pdf")),
            Some(Route::Blob {
                sha256: hash,
                ext: Some("pdf")
            })
        );
        assert_eq!(
            route("DELETE", &format!("/{H}")),
            Some(Route::Delete { sha256: hash })
        );
        assert_eq!(route("PUT", "/upload"), Some(Route::Upload));
        assert_eq!(route("HEAD", "/upload"), Some(Route::UploadCheck));
        assert_eq!(
            route("GET", &format!("/list/{H}")),
            Some(Route::List { pubkey: hash })
        );
        assert_eq!(route("OPTIONS", &format!("/{H}")), Some(Route::Preflight));
        assert!(matches!(
            route("POST", &format!("/{H}")),
            Some(Route::NotAllowed(_))
        ));
        // Not Blossom's: the front door's other routes.
        assert_eq!(route("GET", "/"), None);
        assert_eq!(route("GET", "/api/v1/torrents"), None);
        assert_eq!(route("GET", &format!("/{}", &H[..63])), None);
        assert_eq!(route("GET", &format!("/{H}.")), None);
        assert_eq!(route("GET", &format!("/{H}.a/b")), None);
        assert_eq!(route("GET", &format!("/{H}.{}", "a".repeat(17))), None);
        assert_eq!(route("GET", "/list/zz"), None);
    }

    #[test]
    fn types_round_trip() {
        assert_eq!(ext_for_type(Some("image/PNG; q=1")), "png");
        assert_eq!(ext_for_type(Some("text/html")), "bin");
        assert_eq!(ext_for_type(None), "bin");
        assert_eq!(type_for_ext("png"), "image/png");
        assert_eq!(type_for_ext("html"), "application/octet-stream");
        let (hash, _) = blob_name(H).unwrap();
        let name = file_name(&hash, "mp4");
        assert_eq!(from_file_name(&name), Some((hash, "video/mp4")));
    }
}
