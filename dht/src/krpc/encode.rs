//! Canonical KRPC encoding: every dictionary is written with its keys in sorted byte order, by
//! construction (the order of the `put_*` calls below), so no sorting happens at run time.

use super::{Body, ErrorBody, Message, Method, Query, Response, Want, compact};

pub(super) fn message(m: &Message<'_>, out: &mut Vec<u8>) {
    // Top-level keys in order: a, e, ip, q, r, ro, t, v, y.
    out.push(b'd');
    match &m.body {
        Body::Query(q) => {
            key(out, b"a");
            query_args(q, out);
        }
        Body::Error(e) => {
            key(out, b"e");
            error_list(e, out);
        }
        Body::Response(_) => {}
    }
    if let Some(ip) = m.ip {
        key(out, b"ip");
        let mut c = Vec::with_capacity(compact::PEER_V6_LEN);
        compact::put_peer(&mut c, ip);
        bytes(out, &c);
    }
    if let Body::Query(q) = &m.body {
        key(out, b"q");
        bytes(out, q.method.kind().name().as_bytes());
    }
    if let Body::Response(r) = &m.body {
        key(out, b"r");
        response(r, out);
    }
    if m.read_only {
        key(out, b"ro");
        int(out, 1);
    }
    key(out, b"t");
    bytes(out, m.transaction_id);
    if let Some(v) = m.version {
        key(out, b"v");
        bytes(out, v);
    }
    key(out, b"y");
    bytes(
        out,
        match m.body {
            Body::Query(_) => b"q",
            Body::Response(_) => b"r",
            Body::Error(_) => b"e",
        },
    );
    out.push(b'e');
}

fn query_args(q: &Query<'_>, out: &mut Vec<u8>) {
    // Argument keys in order: id, implied_port, info_hash, port, target, token, want.
    out.push(b'd');
    key(out, b"id");
    bytes(out, &q.id.0);
    match &q.method {
        Method::Ping => {}
        Method::FindNode { target, want: w } | Method::SampleInfohashes { target, want: w } => {
            key(out, b"target");
            bytes(out, &target.0);
            want(*w, out);
        }
        Method::GetPeers { info_hash, want: w } => {
            key(out, b"info_hash");
            bytes(out, &info_hash.0);
            want(*w, out);
        }
        Method::AnnouncePeer {
            info_hash,
            port,
            implied_port,
            token,
        } => {
            if *implied_port {
                key(out, b"implied_port");
                int(out, 1);
            }
            key(out, b"info_hash");
            bytes(out, &info_hash.0);
            key(out, b"port");
            int(out, i64::from(*port));
            key(out, b"token");
            bytes(out, token);
        }
    }
    out.push(b'e');
}

fn want(w: Option<Want>, out: &mut Vec<u8>) {
    let Some(w) = w else { return };
    key(out, b"want");
    out.push(b'l');
    if w.n4 {
        bytes(out, b"n4");
    }
    if w.n6 {
        bytes(out, b"n6");
    }
    out.push(b'e');
}

fn response(r: &Response<'_>, out: &mut Vec<u8>) {
    // Keys in order: id, interval, nodes, nodes6, num, samples, token, values.
    out.push(b'd');
    key(out, b"id");
    bytes(out, &r.id.0);
    if let Some(i) = r.interval {
        key(out, b"interval");
        int(out, i);
    }
    if let Some(n) = r.nodes {
        key(out, b"nodes");
        bytes(out, n);
    }
    if let Some(n) = r.nodes6 {
        key(out, b"nodes6");
        bytes(out, n);
    }
    if let Some(n) = r.num {
        key(out, b"num");
        int(out, n);
    }
    if let Some(s) = r.samples {
        key(out, b"samples");
        bytes(out, s);
    }
    if let Some(t) = r.token {
        key(out, b"token");
        bytes(out, t);
    }
    if let Some(values) = &r.values {
        key(out, b"values");
        out.push(b'l');
        for v in values {
            bytes(out, v);
        }
        out.push(b'e');
    }
    out.push(b'e');
}

fn error_list(e: &ErrorBody<'_>, out: &mut Vec<u8>) {
    out.push(b'l');
    int(out, e.code);
    bytes(out, e.message);
    out.push(b'e');
}

fn key(out: &mut Vec<u8>, k: &[u8]) {
    bytes(out, k);
}

/// `<len>:<bytes>` (BEP 3), with the workspace's one writer.
pub(crate) fn bytes(out: &mut Vec<u8>, b: &[u8]) {
    seednode_wire::bencode::put_bytes(out, b);
}

/// `i<digits>e` (BEP 3).
fn int(out: &mut Vec<u8>, v: i64) {
    seednode_wire::bencode::put_int(out, v);
}

/// Encoded length of a byte string of `len` bytes: its decimal length, `:`, the bytes.
pub(crate) const fn bytes_len(len: usize) -> usize {
    seednode_wire::bencode::encoded_bytes_len(len)
}
