//! HTTP/1.1 on the node's ports: request heads parsed with `httparse` (RFC 9112), bodies
//! delimited by `Content-Length` only, responses built as a head plus a body that is either
//! bytes in memory or a range of a file (sent with `sendfile`).
//!
//! Persistent connections are kept (HTTP/1.1's default) for at most
//! [`MAX_HTTP_REQUESTS_PER_CONNECTION`] requests; requests may be pipelined, and responses go out
//! in order. Everything is bounded: head bytes and fields, body bytes, requests per connection,
//! and the time to deliver a head (the connection's deadline).

use std::fs::File;
use std::sync::Arc;

use bytes::Bytes;

use crate::limits::{
    MAX_HTTP_BODY_LEN, MAX_HTTP_HEAD_LEN, MAX_HTTP_HEADERS, MAX_HTTP_REQUESTS_PER_CONNECTION,
};

/// Longest value kept of the headers the node reads (longer ones are refused with 431).
const MAX_HEADER_VALUE_LEN: usize = 8 * 1024;

/// A parsed request head, with the headers the node acts on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Request {
    /// `GET`, `HEAD`, `POST`, ...
    pub(crate) method: String,
    /// Path without the query, e.g. `/announce` (still percent-encoded).
    pub(crate) path: String,
    /// Raw query string after `?` (still percent-encoded), empty when absent.
    pub(crate) query: Vec<u8>,
    /// `Host`.
    pub(crate) host: Option<String>,
    /// `Authorization`.
    pub(crate) authorization: Option<String>,
    /// `Range`.
    pub(crate) range: Option<String>,
    /// `If-Range`.
    pub(crate) if_range: Option<String>,
    /// `Content-Type`.
    pub(crate) content_type: Option<String>,
    /// Body length from `Content-Length` (0 when absent). For `PUT /upload` (Blossom), whose
    /// body is streamed to disk rather than buffered, it stays 0 and the length is in
    /// [`Request::blob_length`].
    pub(crate) content_length: usize,
    /// `Content-Length` of a Blossom `PUT /upload`, up to [`seednode::blossom::MAX_BLOB_LEN`];
    /// `None` when absent (and for every other request).
    pub(crate) blob_length: Option<u64>,
    /// `X-SHA-256` (Blossom BUD-02, BUD-06).
    pub(crate) x_sha256: Option<String>,
    /// `X-Content-Length` (Blossom BUD-06).
    pub(crate) x_content_length: Option<String>,
    /// `X-Content-Type` (Blossom BUD-06).
    pub(crate) x_content_type: Option<String>,
    /// `Expect: 100-continue` (RFC 9110 §10.1.1): the client waits for `100 Continue` before
    /// sending the body (curl does for bodies over 1 MiB). Acted on by Blossom `PUT /upload`.
    pub(crate) expect_continue: bool,
    /// The client asked to close after this response (`Connection: close`, or HTTP/1.0 without
    /// `keep-alive`).
    pub(crate) close: bool,
    /// Bytes of the head, so the caller can drop them from its buffer.
    pub(crate) head_len: usize,
}

impl Request {
    /// Whether the method is `HEAD` (the response has no body).
    pub(crate) fn is_head(&self) -> bool {
        self.method == "HEAD"
    }
}

/// The outcome of looking at the bytes received so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Parsed {
    /// The head is not complete yet.
    Partial,
    /// A whole head (the body, if any, follows it in the buffer).
    Request(Box<Request>),
    /// A broken or oversized request: answer with this status and close.
    Reject(u16),
}

/// Parses the request head at the start of `buf` (RFC 9112 §2–3, §6), bounded by
/// [`MAX_HTTP_HEAD_LEN`], [`MAX_HTTP_HEADERS`] and [`MAX_HTTP_BODY_LEN`]. A body delimited
/// otherwise than by `Content-Length` (`Transfer-Encoding`) is refused with 411; a
/// `Content-Length` over the limit with 413, before any of the body is read.
pub(crate) fn parse(buf: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HTTP_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Partial) => {
            return if buf.len() >= MAX_HTTP_HEAD_LEN {
                Parsed::Reject(431)
            } else {
                Parsed::Partial
            };
        }
        Ok(httparse::Status::Complete(n)) => n,
        Err(httparse::Error::TooManyHeaders) => return Parsed::Reject(431),
        Err(_) => return Parsed::Reject(400),
    };
    if head_len > MAX_HTTP_HEAD_LEN {
        return Parsed::Reject(431);
    }
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Parsed::Reject(400);
    };
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, q.as_bytes().to_vec()),
        None => (target, Vec::new()),
    };
    let mut out = Request {
        method: method.to_owned(),
        path: path.to_owned(),
        query,
        close: version == 0,
        head_len,
        ..Request::default()
    };
    let mut lengths = 0;
    for h in req.headers.iter() {
        if h.value.len() > MAX_HEADER_VALUE_LEN {
            return Parsed::Reject(431);
        }
        let Ok(value) = std::str::from_utf8(h.value) else {
            // Only the headers below are read, and none of them may carry non-UTF-8 bytes.
            if is_read_header(h.name) {
                return Parsed::Reject(400);
            }
            continue;
        };
        let value = value.trim();
        let slot = match h.name.to_ascii_lowercase().as_str() {
            "host" => &mut out.host,
            "authorization" => &mut out.authorization,
            "range" => &mut out.range,
            "if-range" => &mut out.if_range,
            "content-type" => &mut out.content_type,
            "x-sha-256" => &mut out.x_sha256,
            "x-content-length" => &mut out.x_content_length,
            "x-content-type" => &mut out.x_content_type,
            "content-length" => {
                lengths += 1;
                let Ok(n) = value.parse::<u64>() else {
                    return Parsed::Reject(400);
                };
                if out.method == "PUT" && out.path == "/upload" {
                    // Streamed to disk by the Blossom upload thread, never buffered.
                    if n > seednode::blossom::MAX_BLOB_LEN {
                        return Parsed::Reject(413);
                    }
                    out.blob_length = Some(n);
                    continue;
                }
                if n > MAX_HTTP_BODY_LEN as u64 {
                    return Parsed::Reject(413);
                }
                out.content_length = n as usize;
                continue;
            }
            "transfer-encoding" => return Parsed::Reject(411),
            "expect" => {
                out.expect_continue = value.eq_ignore_ascii_case("100-continue");
                continue;
            }
            "connection" => {
                let v = value.to_ascii_lowercase();
                if v.split(',').any(|t| t.trim() == "close") {
                    out.close = true;
                } else if v.split(',').any(|t| t.trim() == "keep-alive") {
                    out.close = false;
                }
                continue;
            }
            _ => continue,
        };
        if slot.is_some() {
            // One of each: two `Host` or `Authorization` headers are a smuggling attempt.
            return Parsed::Reject(400);
        }
        *slot = Some(value.to_owned());
    }
    if lengths > 1 {
        return Parsed::Reject(400);
    }
    Parsed::Request(Box::new(out))
}

fn is_read_header(name: &str) -> bool {
    [
        "host",
        "authorization",
        "range",
        "if-range",
        "content-type",
        "content-length",
        "connection",
        "x-sha-256",
        "x-content-length",
        "x-content-type",
    ]
    .iter()
    .any(|h| name.eq_ignore_ascii_case(h))
}

/// Reason phrase for the statuses the node sends.
pub(crate) fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        416 => "Range Not Satisfiable",
        421 => "Misdirected Request",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        507 => "Insufficient Storage",
        _ => "Error",
    }
}

/// What follows a response's head.
#[derive(Debug, Clone)]
pub(crate) enum Body {
    /// Bytes in memory.
    Bytes(Bytes),
    /// `len` bytes of `file` from `offset`, sent with `sendfile`.
    File {
        /// The open file.
        file: Arc<File>,
        /// First byte.
        offset: u64,
        /// Length in bytes.
        len: u64,
    },
}

impl Body {
    /// Length in bytes.
    pub(crate) fn len(&self) -> u64 {
        match self {
            Self::Bytes(b) => b.len() as u64,
            Self::File { len, .. } => *len,
        }
    }
}

/// A response: status, headers, body.
#[derive(Debug, Clone)]
pub(crate) struct Response {
    /// Status code.
    pub(crate) status: u16,
    /// `Content-Type`.
    pub(crate) content_type: &'static str,
    /// Headers beyond the standard ones (`Content-Length`, `Connection`, `Server`).
    pub(crate) headers: Vec<(&'static str, String)>,
    /// The body (left out on the wire for `HEAD`, its length still announced).
    pub(crate) body: Body,
    /// Close the connection after this response.
    pub(crate) close: bool,
}

impl Response {
    /// A response with a body in memory.
    pub(crate) fn new(status: u16, content_type: &'static str, body: impl Into<Bytes>) -> Self {
        Self {
            status,
            content_type,
            headers: Vec::new(),
            body: Body::Bytes(body.into()),
            close: false,
        }
    }

    /// A plain-text error, `<status> <reason>` and an optional detail line.
    pub(crate) fn error(status: u16, detail: &str) -> Self {
        let mut body = format!("{status} {}\n", reason(status));
        if !detail.is_empty() {
            body.push_str(detail);
            body.push('\n');
        }
        Self::new(status, "text/plain; charset=utf-8", body)
    }

    /// Adds a header.
    #[must_use]
    pub(crate) fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// The head, `\r\n\r\n` included.
    pub(crate) fn head(&self) -> Bytes {
        use std::fmt::Write as _;
        let mut out = String::with_capacity(256);
        let _ = write!(
            out,
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nServer: seednode/{}\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len(),
            env!("CARGO_PKG_VERSION"),
        );
        for (name, value) in &self.headers {
            // Values come from the node; a stray line break would split the response.
            let value: String = value.chars().filter(|c| !c.is_control()).collect();
            let _ = write!(out, "{name}: {value}\r\n");
        }
        out.push_str(if self.close {
            "Connection: close\r\n\r\n"
        } else {
            "Connection: keep-alive\r\n\r\n"
        });
        Bytes::from(out)
    }
}

/// Whether the connection may carry another request after `served` of them.
pub(crate) const fn may_keep_alive(served: usize) -> bool {
    served < MAX_HTTP_REQUESTS_PER_CONNECTION
}

/// A whole response with `Connection: close`, for the simple paths (tracker). For `HEAD` pass
/// `include_body = false`.
pub(crate) fn response(status: u16, content_type: &str, body: &[u8], include_body: bool) -> Bytes {
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\nServer: seednode/{}\r\n\r\n",
        reason(status),
        body.len(),
        env!("CARGO_PKG_VERSION"),
    )
    .into_bytes();
    if include_body {
        out.extend_from_slice(body);
    }
    Bytes::from(out)
}

/// A plain-text error response with `Connection: close`.
pub(crate) fn error(status: u16) -> Bytes {
    let body = format!("{status} {}\n", reason(status));
    response(status, "text/plain; charset=utf-8", body.as_bytes(), true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(bytes: &[u8]) -> Request {
        match parse(bytes) {
            Parsed::Request(r) => *r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parses_announce_request() {
        let r = req(b"GET /announce?info_hash=%12&port=1 HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!((r.method.as_str(), r.path.as_str()), ("GET", "/announce"));
        assert_eq!(r.query, b"info_hash=%12&port=1");
        assert_eq!(r.host.as_deref(), Some("x"));
        assert!(!r.close, "HTTP/1.1 keeps the connection by default");
        assert_eq!(r.head_len, 56);
    }

    #[test]
    fn reads_the_headers_the_node_acts_on() {
        let r = req(
            b"POST /api/v1/torrents HTTP/1.1\r\nHost: n:1\r\nAuthorization: Bearer t\r\n\
            Content-Length: 12\r\nContent-Type: application/x-bittorrent\r\nRange: bytes=0-1\r\n\
            If-Range: \"e\"\r\nConnection: close\r\n\r\n",
        );
        assert_eq!(r.authorization.as_deref(), Some("Bearer t"));
        assert_eq!(r.content_length, 12);
        assert_eq!(r.range.as_deref(), Some("bytes=0-1"));
        assert_eq!(r.if_range.as_deref(), Some("\"e\""));
        assert!(r.close);
        assert!(req(b"GET / HTTP/1.0\r\n\r\n").close);
        assert!(!req(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").close);
    }

    #[test]
    fn refuses_smuggling_and_oversized_bodies_before_reading_them() {
        let two_lengths = b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n";
        assert_eq!(parse(two_lengths), Parsed::Reject(400));
        let two_hosts = b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n";
        assert_eq!(parse(two_hosts), Parsed::Reject(400));
        let chunked = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(parse(chunked), Parsed::Reject(411));
        let huge = format!(
            "POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            MAX_HTTP_BODY_LEN + 1
        );
        assert_eq!(parse(huge.as_bytes()), Parsed::Reject(413));
        let bad = b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n";
        assert_eq!(parse(bad), Parsed::Reject(400));
        let len_2_64 = b"POST / HTTP/1.1\r\nContent-Length: 18446744073709551616\r\n\r\n";
        assert_eq!(parse(len_2_64), Parsed::Reject(400));
    }

    #[test]
    fn waits_for_whole_head_then_bounds_it() {
        assert_eq!(
            parse(b"GET /announce HTTP/1.1\r\nHost: x\r\n"),
            Parsed::Partial
        );
        let mut big = b"GET / HTTP/1.1\r\nX: ".to_vec();
        big.resize(MAX_HTTP_HEAD_LEN, b'a');
        assert_eq!(parse(&big), Parsed::Reject(431));
        let many = format!(
            "GET / HTTP/1.1\r\n{}\r\n",
            "A: b\r\n".repeat(MAX_HTTP_HEADERS + 1)
        );
        assert_eq!(parse(many.as_bytes()), Parsed::Reject(431));
        assert_eq!(parse(b"GET / HTTP/9\r\n\r\n"), Parsed::Reject(400));
    }

    #[test]
    fn builds_heads_with_the_body_length_and_no_injected_lines() {
        let r = Response::new(200, "text/plain", Bytes::from_static(b"abc"))
            .header("ETag", "\"x\"\r\nSet-Cookie: y");
        let head = String::from_utf8(r.head().to_vec()).unwrap();
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(head.contains("Content-Length: 3\r\n"));
        assert!(head.contains("ETag: \"x\"Set-Cookie: y\r\n"), "{head}");
        assert!(head.ends_with("Connection: keep-alive\r\n\r\n"));
    }

    #[test]
    fn builds_close_delimited_response() {
        let r = response(200, "text/plain", b"d8:intervali1ee", true);
        let text = std::str::from_utf8(&r).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(text.contains("Content-Length: 15\r\n") && text.contains("Connection: close\r\n"));
        assert!(text.ends_with("\r\n\r\nd8:intervali1ee"));
        assert!(!response(200, "text/plain", b"abc", false).ends_with(b"abc"));
    }
}
