//! KRPC decoding on top of the wire crate's lenient, bounded bencode decoder.

use seednode_wire::InfoHash;
use seednode_wire::bencode::{self, Dict, Value};

use super::{
    Body, ErrorBody, KrpcError, Malformed, Message, Method, Query, Response, Want, compact,
};
use crate::id::NodeId;
use crate::limits::MAX_TRANSACTION_ID_LEN;

/// Decodes one KRPC datagram (BEP 5 §KRPC Protocol).
///
/// The caller checks the datagram's size first ([`crate::limits::MAX_DATAGRAM_LEN`]); the
/// decoder's own depth limit bounds the work in any case.
///
/// # Errors
/// [`Malformed`] with the [`KrpcError`] and, when they are known, the transaction id and whether
/// it was a query, so the caller can answer 203/204 or stay silent (see [`Malformed::reply`]).
pub fn decode(datagram: &[u8]) -> Result<Message<'_>, Malformed<'_>> {
    let fail = |transaction_id, is_query, error| Malformed {
        transaction_id,
        is_query,
        error,
    };
    let value = bencode::decode(datagram).map_err(|e| fail(None, false, e.into()))?;
    let Some(top) = value.as_dict() else {
        return Err(fail(None, false, KrpcError::NotADictionary));
    };
    let Some(t) = top.get(b"t").and_then(Value::as_bytes) else {
        return Err(fail(None, false, KrpcError::MissingTransactionId));
    };
    if t.is_empty() || t.len() > MAX_TRANSACTION_ID_LEN {
        let error = KrpcError::BadTransactionIdLength {
            len: t.len(),
            limit: MAX_TRANSACTION_ID_LEN,
        };
        return Err(fail(None, false, error));
    }
    let y = top.get(b"y").and_then(Value::as_bytes);
    let is_query = y == Some(b"q");
    let body = match y {
        Some(b"q") => query(top).map(Body::Query),
        Some(b"r") => response(top).map(Body::Response),
        Some(b"e") => error(top).map(Body::Error),
        _ => Err(KrpcError::UnknownMessageType),
    }
    .map_err(|e| fail(Some(t), is_query, e))?;
    Ok(Message {
        transaction_id: t,
        version: top.get(b"v").and_then(Value::as_bytes),
        read_only: top
            .get(b"ro")
            .and_then(Value::as_int)
            .is_some_and(|ro| ro != 0),
        ip: top
            .get(b"ip")
            .and_then(Value::as_bytes)
            .and_then(compact::peer),
        body,
    })
}

fn query<'a>(top: &Dict<'a>) -> Result<Query<'a>, KrpcError> {
    let method = match top.get(b"q") {
        None => return Err(KrpcError::MissingField { field: "q" }),
        Some(q) => q.as_bytes().ok_or(KrpcError::WrongType { field: "q" })?,
    };
    let a = match top.get(b"a") {
        None => return Err(KrpcError::MissingField { field: "a" }),
        Some(a) => a.as_dict().ok_or(KrpcError::WrongType { field: "a" })?,
    };
    let method = match method {
        b"ping" => Method::Ping,
        b"find_node" => Method::FindNode {
            target: NodeId(id20(a, "target")?),
            want: want(a),
        },
        b"get_peers" => Method::GetPeers {
            info_hash: InfoHash(id20(a, "info_hash")?),
            want: want(a),
        },
        b"announce_peer" => announce_peer(a)?,
        b"sample_infohashes" => Method::SampleInfohashes {
            target: NodeId(id20(a, "target")?),
            want: want(a),
        },
        _ => return Err(KrpcError::UnknownMethod),
    };
    // `id` last, so that an unknown method is reported as such (204) whatever its arguments.
    Ok(Query {
        id: NodeId(id20(a, "id")?),
        method,
    })
}

fn announce_peer<'a>(a: &Dict<'a>) -> Result<Method<'a>, KrpcError> {
    let info_hash = InfoHash(id20(a, "info_hash")?);
    let token = required_bytes(a, "token")?;
    let implied_port = optional_int(a, "implied_port")?.is_some_and(|v| v != 0);
    let port = optional_int(a, "port")?;
    let port = match (port, implied_port) {
        (Some(p), _) if (1..=65_535).contains(&p) => u16::try_from(p).unwrap_or(0),
        // BEP 5: with implied_port the source port is used, `port` is ignored.
        (_, true) => 0,
        (Some(got), false) => return Err(KrpcError::PortOutOfRange { got }),
        (None, false) => return Err(KrpcError::MissingField { field: "port" }),
    };
    Ok(Method::AnnouncePeer {
        info_hash,
        port,
        implied_port,
        token,
    })
}

fn response<'a>(top: &Dict<'a>) -> Result<Response<'a>, KrpcError> {
    let r = match top.get(b"r") {
        None => return Err(KrpcError::MissingField { field: "r" }),
        Some(r) => r.as_dict().ok_or(KrpcError::WrongType { field: "r" })?,
    };
    let values = match r.get(b"values") {
        None => None,
        Some(v) => {
            let list = v
                .as_list()
                .ok_or(KrpcError::WrongType { field: "values" })?;
            let values = list
                .iter()
                .map(|p| p.as_bytes().ok_or(KrpcError::WrongType { field: "values" }))
                .collect::<Result<Vec<_>, _>>()?;
            Some(values)
        }
    };
    Ok(Response {
        id: NodeId(id20(r, "id")?),
        nodes: optional_bytes(r, "nodes")?,
        nodes6: optional_bytes(r, "nodes6")?,
        token: optional_bytes(r, "token")?,
        values,
        samples: optional_bytes(r, "samples")?,
        interval: optional_int(r, "interval")?,
        num: optional_int(r, "num")?,
    })
}

fn error<'a>(top: &Dict<'a>) -> Result<ErrorBody<'a>, KrpcError> {
    let e = match top.get(b"e") {
        None => return Err(KrpcError::MissingField { field: "e" }),
        Some(e) => e.as_list().ok_or(KrpcError::WrongType { field: "e" })?,
    };
    let code = e
        .first()
        .and_then(Value::as_int)
        .ok_or(KrpcError::WrongType { field: "e" })?;
    // A missing message is tolerated; a message of another type is not.
    let message = match e.get(1) {
        None => &[][..],
        Some(m) => m.as_bytes().ok_or(KrpcError::WrongType { field: "e" })?,
    };
    Ok(ErrorBody { code, message })
}

fn want(a: &Dict<'_>) -> Option<Want> {
    // Like libtorrent, a `want` that is not a list is ignored rather than refused.
    let list = a.get(b"want")?.as_list()?;
    let mut want = Want::default();
    for item in list {
        match item.as_bytes() {
            Some(b"n4") => want.n4 = true,
            Some(b"n6") => want.n6 = true,
            _ => {}
        }
    }
    Some(want)
}

fn required_bytes<'a>(d: &Dict<'a>, field: &'static str) -> Result<&'a [u8], KrpcError> {
    optional_bytes(d, field)?.ok_or(KrpcError::MissingField { field })
}

fn optional_bytes<'a>(d: &Dict<'a>, field: &'static str) -> Result<Option<&'a [u8]>, KrpcError> {
    match d.get(field.as_bytes()) {
        None => Ok(None),
        Some(v) => v.as_bytes().map(Some).ok_or(KrpcError::WrongType { field }),
    }
}

fn optional_int(d: &Dict<'_>, field: &'static str) -> Result<Option<i64>, KrpcError> {
    match d.get(field.as_bytes()) {
        None => Ok(None),
        Some(v) => v.as_int().map(Some).ok_or(KrpcError::WrongType { field }),
    }
}

fn id20(d: &Dict<'_>, field: &'static str) -> Result<[u8; 20], KrpcError> {
    let bytes = required_bytes(d, field)?;
    bytes.try_into().map_err(|_| KrpcError::WrongLength {
        field,
        got: bytes.len(),
        expected: 20,
    })
}
