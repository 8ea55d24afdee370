//! The HTTP/1.1 front door: request heads parsed with `httparse`, responses built whole.
//!
//! Only what the node serves is accepted: `GET` (and `HEAD`) with a bounded head. Every connection
//! carries one request and is closed after the response (`Connection: close`), which keeps the
//! per-connection state to a buffer and a deadline.

use bytes::Bytes;

use crate::limits::{MAX_HTTP_HEAD_LEN, MAX_HTTP_HEADERS};

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Request {
    /// `GET`, `HEAD`, ...
    pub(crate) method: String,
    /// Path without the query, e.g. `/announce`.
    pub(crate) path: String,
    /// Raw query string after `?` (still percent-encoded), empty when absent.
    pub(crate) query: Vec<u8>,
}

/// The outcome of looking at the bytes received so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Parsed {
    /// The head is not complete yet.
    Partial,
    /// A whole head.
    Request(Request),
    /// A broken or oversized request: answer with this status and close.
    Reject(u16),
}

/// Parses the request head in `buf` (RFC 9112 §2–3), bounded by [`MAX_HTTP_HEAD_LEN`] and
/// [`MAX_HTTP_HEADERS`].
pub(crate) fn parse(buf: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HTTP_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Partial) => {
            if buf.len() >= MAX_HTTP_HEAD_LEN {
                Parsed::Reject(431)
            } else {
                Parsed::Partial
            }
        }
        Ok(httparse::Status::Complete(_)) => {
            let (Some(method), Some(target)) = (req.method, req.path) else {
                return Parsed::Reject(400);
            };
            let (path, query) = match target.split_once('?') {
                Some((p, q)) => (p, q.as_bytes().to_vec()),
                None => (target, Vec::new()),
            };
            Parsed::Request(Request {
                method: method.to_owned(),
                path: path.to_owned(),
                query,
            })
        }
        Err(httparse::Error::TooManyHeaders) => Parsed::Reject(431),
        Err(_) => Parsed::Reject(400),
    }
}

/// Reason phrase for the statuses we send.
fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// A whole response with `Connection: close`. For `HEAD` pass `include_body = false`.
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

/// A plain-text error response.
pub(crate) fn error(status: u16) -> Bytes {
    let body = format!("{status} {}\n", reason(status));
    response(status, "text/plain; charset=utf-8", body.as_bytes(), true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_announce_request() {
        let p = parse(b"GET /announce?info_hash=%12&port=1 HTTP/1.1\r\nHost: x\r\n\r\n");
        let Parsed::Request(r) = p else {
            panic!("{p:?}")
        };
        assert_eq!((r.method.as_str(), r.path.as_str()), ("GET", "/announce"));
        assert_eq!(r.query, b"info_hash=%12&port=1");
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
    fn builds_close_delimited_response() {
        let r = response(200, "text/plain", b"d8:intervali1ee", true);
        let text = std::str::from_utf8(&r).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(text.contains("Content-Length: 15\r\n") && text.contains("Connection: close\r\n"));
        assert!(text.ends_with("\r\n\r\nd8:intervali1ee"));
        assert!(!response(200, "text/plain", b"abc", false).ends_with(b"abc"));
    }
}
