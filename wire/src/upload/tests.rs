use proptest::prelude::*;

use super::*;

const TOKEN: &str =
    "sn_0123456789ab_cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd";
const TORRENT: &[u8] = b"d8:announce3:url4:infod6:lengthi5e4:name1:a12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaaee";

/// Decodes `input` fed in one piece.
fn decode_all(input: &[u8]) -> (Result<Option<Request>, UploadError>, BytesMut) {
    let mut buf = BytesMut::from(input);
    let result = Decoder::new().decode(&mut buf);
    (result, buf)
}

/// Decodes `input` fed `step` bytes at a time; returns the first answer that is not `Ok(None)`.
fn decode_stepwise(input: &[u8], step: usize) -> (Result<Option<Request>, UploadError>, BytesMut) {
    let mut decoder = Decoder::new();
    let mut buf = BytesMut::new();
    for chunk in input.chunks(step.max(1)) {
        buf.extend_from_slice(chunk);
        match decoder.decode(&mut buf) {
            Ok(None) => {}
            other => return (other, buf),
        }
    }
    (Ok(None), buf)
}

fn err(input: &[u8]) -> UploadError {
    decode_all(input).0.expect_err("refused")
}

#[test]
fn sniffs_each_opening() {
    assert_eq!(sniff(b""), Sniff::NeedMore);
    assert_eq!(sniff(b"UPLOAD_"), Sniff::NeedMore);
    assert_eq!(sniff(b"UPLOAD_TORRENT:"), Sniff::Is(Kind::Torrent));
    assert_eq!(sniff(b"UPLOAD_FILE x"), Sniff::Is(Kind::File));
    assert_eq!(sniff(b"UPLOAD_RESUME "), Sniff::Is(Kind::Resume));
    assert_eq!(sniff(b"UPLOAD_FILE:"), Sniff::No);
    assert_eq!(sniff(b"GET / HTTP/1.1"), Sniff::No);
    assert_eq!(sniff(b"\x13BitTorrent protocol"), Sniff::No);
}

#[test]
fn decodes_upload_torrent_vector() {
    let mut input = format!("UPLOAD_TORRENT:{TOKEN}:").into_bytes();
    input.extend_from_slice(TORRENT);
    let (result, rest) = decode_all(&input);
    let Ok(Some(Request::Torrent { token, torrent })) = result else {
        panic!("{result:?}");
    };
    assert_eq!(token.as_str(), TOKEN);
    assert_eq!(&torrent[..], TORRENT);
    assert!(rest.is_empty());
}

#[test]
fn torrent_end_found_byte_by_byte() {
    let mut input = format!("UPLOAD_TORRENT:{TOKEN}:").into_bytes();
    input.extend_from_slice(TORRENT);
    for step in [1, 2, 3, 7, 64] {
        let (result, _) = decode_stepwise(&input, step);
        assert!(
            matches!(&result, Ok(Some(Request::Torrent { torrent, .. })) if &torrent[..] == TORRENT),
            "step {step}: {result:?}"
        );
    }
    // One byte short: still waiting.
    let (result, _) = decode_stepwise(&input[..input.len() - 1], 1);
    assert_eq!(result, Ok(None));
}

#[test]
fn refuses_bytes_after_the_torrent() {
    let mut input = format!("UPLOAD_TORRENT:{TOKEN}:").into_bytes();
    input.extend_from_slice(TORRENT);
    input.push(b'\n');
    assert_eq!(err(&input), UploadError::TrailingBytes);
    // Arriving later, too.
    let mut decoder = Decoder::new();
    let mut buf = BytesMut::from(&input[..input.len() - 1]);
    assert!(matches!(decoder.decode(&mut buf), Ok(Some(_))));
    assert_eq!(decoder.decode(&mut buf), Ok(None));
    buf.extend_from_slice(b"x");
    assert_eq!(decoder.decode(&mut buf), Err(UploadError::TrailingBytes));
}

#[test]
fn refuses_bad_torrents() {
    let t = |body: &[u8]| {
        let mut input = b"UPLOAD_TORRENT:tok:".to_vec();
        input.extend_from_slice(body);
        decode_all(&input).0
    };
    assert_eq!(t(b"li1ee"), Err(UploadError::TorrentNotDictionary));
    assert_eq!(t(b"4:spam"), Err(UploadError::TorrentNotDictionary));
    assert!(matches!(t(b"di1ei2ee"), Err(UploadError::BadBencode(_))));
    assert!(matches!(t(b"d1:ae"), Err(UploadError::BadBencode(_))));
    assert!(matches!(t(b"d1:ai03ee"), Err(UploadError::BadBencode(_))));
    assert!(matches!(t(b"d1:ax"), Err(UploadError::BadBencode(_))));
    assert_eq!(
        t(b"d1:a99999999999:"),
        Err(UploadError::TorrentTooLarge {
            limit: MAX_UPLOAD_TORRENT_LEN
        })
    );
    assert_eq!(
        t(b"d1:a99999999999999999999999:"),
        Err(UploadError::TorrentTooLarge {
            limit: MAX_UPLOAD_TORRENT_LEN
        })
    );
    let deep = [b"d1:a".as_slice(), &[b'l'; 200]].concat();
    assert!(matches!(
        t(&deep),
        Err(UploadError::BadBencode(
            bencode::DecodeError::DepthExceeded { .. }
        ))
    ));
    // Incomplete is not an error.
    assert_eq!(t(b"d1:al"), Ok(None));
}

#[test]
fn torrent_that_never_ends_is_cut_at_its_limit() {
    let mut decoder = Decoder::new();
    let mut buf = BytesMut::from(&b"UPLOAD_TORRENT:tok:d1:al"[..]);
    assert_eq!(decoder.decode(&mut buf), Ok(None));
    let chunk = [b"1000:".as_slice(), &[b'a'; 1000]].concat().repeat(100);
    let mut result = Ok(None);
    for _ in 0..(MAX_UPLOAD_TORRENT_LEN / chunk.len() + 2) {
        buf.extend_from_slice(&chunk);
        result = decoder.decode(&mut buf);
        if result != Ok(None) {
            break;
        }
    }
    assert_eq!(
        result,
        Err(UploadError::TorrentTooLarge {
            limit: MAX_UPLOAD_TORRENT_LEN
        })
    );
    assert!(buf.len() <= MAX_UPLOAD_TORRENT_LEN + chunk.len());
}

#[test]
fn refuses_bad_tokens() {
    assert_eq!(err(b"UPLOAD_TORRENT::d"), UploadError::EmptyToken);
    assert_eq!(err(b"UPLOAD_TORRENT:a b:"), UploadError::BadToken);
    assert_eq!(err(b"UPLOAD_TORRENT:a\n"), UploadError::BadToken);
    assert_eq!(err(b"UPLOAD_TORRENT:==:d"), UploadError::BadToken);
    assert_eq!(err(b"UPLOAD_TORRENT:a=b:d"), UploadError::BadToken);
    assert!(matches!(
        decode_all(b"UPLOAD_TORRENT:abc=:de").0,
        Ok(Some(Request::Torrent { .. }))
    ));
    let long = [b"UPLOAD_TORRENT:".as_slice(), &[b'a'; 1 << 20]].concat();
    assert_eq!(
        err(&long),
        UploadError::TokenTooLong {
            limit: MAX_UPLOAD_TOKEN_LEN
        }
    );
    let exact = [
        b"UPLOAD_TORRENT:".as_slice(),
        &[b'a'; MAX_UPLOAD_TOKEN_LEN],
        b":de",
    ]
    .concat();
    assert!(matches!(decode_all(&exact).0, Ok(Some(_))));
    let over = [
        b"UPLOAD_TORRENT:".as_slice(),
        &[b'a'; MAX_UPLOAD_TOKEN_LEN + 1],
        b":de",
    ]
    .concat();
    assert!(matches!(
        decode_all(&over).0,
        Err(UploadError::TokenTooLong { .. })
    ));
    // Stepwise, the limit holds before the `:` arrives.
    let (result, buf) = decode_stepwise(&long, 1000);
    assert!(matches!(result, Err(UploadError::TokenTooLong { .. })));
    assert!(buf.len() < MAX_UPLOAD_TOKEN_LEN + 2000);
}

#[test]
fn token_is_known_before_the_torrent() {
    let mut decoder = Decoder::new();
    let mut buf = BytesMut::from(&b"UPLOAD_TORRENT:abc"[..]);
    assert_eq!(decoder.decode(&mut buf), Ok(None));
    assert_eq!(decoder.pending_token(), None);
    buf.extend_from_slice(b":");
    assert_eq!(decoder.decode(&mut buf), Ok(None));
    assert_eq!(decoder.pending_token().map(Token::as_str), Some("abc"));
    assert!(buf.is_empty());
    buf.extend_from_slice(b"de");
    assert!(matches!(decoder.decode(&mut buf), Ok(Some(_))));
    assert_eq!(decoder.pending_token(), None);
}

#[test]
fn debug_hides_the_token() {
    let token = Token::new(TOKEN.as_bytes()).unwrap();
    assert!(!format!("{token:?}").contains("cdcd"));
}

#[test]
fn decodes_upload_file_vector() {
    let line = format!("UPLOAD_FILE {TOKEN} 1048576 my file.iso\nPAYLOAD");
    let (result, rest) = decode_all(line.as_bytes());
    assert_eq!(
        result,
        Ok(Some(Request::File(FileHeader {
            token: Token::new(TOKEN.as_bytes()).unwrap(),
            length: 1_048_576,
            name: FileName::new(b"my file.iso").unwrap(),
            sha256: None,
        })))
    );
    assert_eq!(&rest[..], b"PAYLOAD");
    // Decoding again leaves the payload alone.
}

#[test]
fn decodes_upload_file_with_sha256_and_crlf() {
    let hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    let line = format!("UPLOAD_FILE tok 5 a.bin sha256={hex}\r\n");
    let Ok(Some(Request::File(h))) = decode_all(line.as_bytes()).0 else {
        panic!()
    };
    assert_eq!(h.name.as_str(), "a.bin");
    assert_eq!(h.sha256.unwrap()[..4], [0xe3, 0xb0, 0xc4, 0x42]);
    assert_eq!(
        err(b"UPLOAD_FILE tok 5 a.bin sha256=e3b0\n"),
        UploadError::BadSha256
    );
}

#[test]
fn refuses_bad_file_headers() {
    let e = |line: &str| err(line.as_bytes());
    assert_eq!(e("UPLOAD_FILE tok 0 a\n"), UploadError::EmptyFile);
    assert_eq!(
        e("UPLOAD_FILE tok 05 a\n"),
        UploadError::BadNumber { field: "length" }
    );
    assert_eq!(
        e("UPLOAD_FILE tok -5 a\n"),
        UploadError::BadNumber { field: "length" }
    );
    assert_eq!(
        e("UPLOAD_FILE tok 18446744073709551616 a\n"),
        UploadError::FileTooLarge {
            limit: MAX_UPLOAD_FILE_LEN
        }
    );
    assert_eq!(
        e("UPLOAD_FILE tok 281474976710657 a\n"),
        UploadError::FileTooLarge {
            limit: MAX_UPLOAD_FILE_LEN
        }
    );
    assert!(matches!(
        e("UPLOAD_FILE tok 5\n"),
        UploadError::BadHeader { .. }
    ));
    for name in [
        "../x",
        "..",
        ".",
        "a/b",
        "a\\b",
        " a",
        "a ",
        "C:x",
        "a\u{202e}b",
    ] {
        let got = e(&format!("UPLOAD_FILE tok 5 {name}\n"));
        assert!(
            matches!(got, UploadError::BadName { .. }),
            "{name}: {got:?}"
        );
    }
    assert!(matches!(
        e("UPLOAD_FILE tok 5 a\0b\n"),
        UploadError::BadHeader { .. }
    ));
    assert!(matches!(
        e("UPLOAD_FILE tok 5 \n"),
        UploadError::BadName { .. }
    ));
    let long_name = "x".repeat(256);
    assert!(matches!(
        e(&format!("UPLOAD_FILE tok 5 {long_name}\n")),
        UploadError::BadName { .. }
    ));
    let endless = [b"UPLOAD_FILE tok 5 ".as_slice(), &[b'a'; 1 << 16]].concat();
    assert_eq!(
        err(&endless),
        UploadError::HeaderTooLong {
            limit: MAX_UPLOAD_HEADER_LEN
        }
    );
}

#[test]
fn decodes_upload_resume_vector() {
    let line = b"UPLOAD_RESUME tok 000102030405060708090a0b0c0d0e0f 32768\nrest";
    let (result, rest) = decode_all(line);
    assert_eq!(
        result,
        Ok(Some(Request::Resume(ResumeHeader {
            token: Token::new(b"tok").unwrap(),
            upload_id: UploadId::from_bytes(core::array::from_fn(|i| i as u8)),
            offset: 32768,
        })))
    );
    assert_eq!(&rest[..], b"rest");
    assert_eq!(err(b"UPLOAD_RESUME tok 0001 5\n"), UploadError::BadUploadId);
    assert_eq!(
        err(b"UPLOAD_RESUME tok 000102030405060708090a0b0c0d0e0f 5 6\n"),
        UploadError::BadNumber { field: "offset" }
    );
}

#[test]
fn reply_vectors() {
    let enc = |r: &Reply| {
        let mut out = Vec::new();
        r.encode(&mut out);
        String::from_utf8(out).unwrap()
    };
    let ih = InfoHash([0xab; 20]);
    assert_eq!(
        enc(&Reply::Ok {
            info_hash: ih,
            magnet: format!("magnet:?xt=urn:btih:{}&dn=a", ih.to_hex()),
        }),
        format!("OK {0} magnet:?xt=urn:btih:{0}&dn=a\n", "ab".repeat(20))
    );
    assert_eq!(
        enc(&Reply::Err {
            code: ErrorCode::Auth,
            reason: "bad token\r\nX-Injected: 1".into()
        }),
        "ERR auth bad token  X-Injected: 1\n"
    );
    assert_eq!(
        enc(&Reply::Err {
            code: ErrorCode::TooLarge,
            reason: String::new()
        }),
        "ERR too_large\n"
    );
    assert_eq!(
        enc(&Reply::Upload {
            upload_id: UploadId::from_bytes([0xff; 16]),
            offset: 0
        }),
        format!("UPLOAD {} 0\n", "ff".repeat(16))
    );
    let codes: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    assert_eq!(
        codes,
        [
            "auth",
            "scope",
            "quota",
            "too_large",
            "malformed",
            "exists",
            "busy",
            "internal"
        ]
    );
}

#[test]
fn long_replies_fit_the_limit() {
    let mut out = Vec::new();
    Reply::Err {
        code: ErrorCode::Internal,
        reason: "é".repeat(2000),
    }
    .encode(&mut out);
    assert!(out.len() <= MAX_UPLOAD_REPLY_LEN);
    assert!(std::str::from_utf8(&out).is_ok());
    assert_eq!(out.last(), Some(&b'\n'));

    out.clear();
    let ih = InfoHash([1; 20]);
    let magnet = format!(
        "magnet:?xt=urn:btih:{}&dn={}&tr=x",
        ih.to_hex(),
        "n".repeat(2000)
    );
    Reply::Ok {
        info_hash: ih,
        magnet,
    }
    .encode(&mut out);
    assert!(out.len() <= MAX_UPLOAD_REPLY_LEN);
    let line = String::from_utf8(out).unwrap();
    assert_eq!(
        line,
        format!("OK {0} magnet:?xt=urn:btih:{0}\n", ih.to_hex())
    );
}

#[test]
fn short_input_sweep_never_panics() {
    let mut inputs: Vec<Vec<u8>> = Vec::new();
    let mut t = format!("UPLOAD_TORRENT:{TOKEN}:").into_bytes();
    t.extend_from_slice(TORRENT);
    inputs.push(t);
    inputs.push(b"UPLOAD_FILE tok 5 a.bin sha256=e3b0\n".to_vec());
    inputs.push(b"UPLOAD_RESUME tok 000102030405060708090a0b0c0d0e0f 32768\n".to_vec());
    for input in inputs {
        for len in 0..=input.len() {
            let _ = decode_all(&input[..len]);
            let _ = Reply::parse(&input[..len]);
        }
    }
}

fn token_strategy() -> impl Strategy<Value = Token> {
    "[A-Za-z0-9._~+/-]{1,64}={0,2}".prop_map(|s| Token::new(s.as_bytes()).unwrap())
}

fn name_strategy() -> impl Strategy<Value = FileName> {
    "[a-zA-Z0-9_][a-zA-Z0-9 ._é-]{0,40}[a-zA-Z0-9_]"
        .prop_filter_map("valid name", |s| FileName::new(s.as_bytes()).ok())
}

/// Small bencoded dictionaries (nested values, keys in any order).
fn torrent_strategy() -> impl Strategy<Value = Vec<u8>> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(|i| format!("i{i}e").into_bytes()),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(|s| {
            let mut out = format!("{}:", s.len()).into_bytes();
            out.extend_from_slice(&s);
            out
        }),
    ];
    let value = leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(|items| {
                let mut out = vec![b'l'];
                items.iter().for_each(|i| out.extend_from_slice(i));
                out.push(b'e');
                out
            }),
            proptest::collection::vec(("[a-z]{0,6}", inner), 0..6).prop_map(dict),
        ]
    });
    proptest::collection::vec(("[a-z]{0,6}", value), 0..6).prop_map(dict)
}

fn dict(entries: Vec<(String, Vec<u8>)>) -> Vec<u8> {
    let mut out = vec![b'd'];
    for (k, v) in entries {
        out.extend_from_slice(format!("{}:{k}", k.len()).as_bytes());
        out.extend_from_slice(&v);
    }
    out.push(b'e');
    out
}

fn request_strategy() -> impl Strategy<Value = Request> {
    prop_oneof![
        (token_strategy(), torrent_strategy()).prop_map(|(token, t)| Request::Torrent {
            token,
            torrent: Bytes::from(t)
        }),
        (
            token_strategy(),
            1..=MAX_UPLOAD_FILE_LEN,
            name_strategy(),
            proptest::option::of(any::<[u8; 32]>())
        )
            .prop_map(|(token, length, name, sha256)| Request::File(FileHeader {
                token,
                length,
                name,
                sha256
            })),
        (token_strategy(), any::<[u8; 16]>(), 0..=MAX_UPLOAD_FILE_LEN).prop_map(
            |(token, id, offset)| Request::Resume(ResumeHeader {
                token,
                upload_id: UploadId::from_bytes(id),
                offset
            })
        ),
    ]
}

fn reply_strategy() -> impl Strategy<Value = Reply> {
    prop_oneof![
        (any::<[u8; 16]>(), any::<u64>()).prop_map(|(id, offset)| Reply::Upload {
            upload_id: UploadId::from_bytes(id),
            offset
        }),
        (
            any::<[u8; 20]>(),
            "magnet:\\?xt=urn:btih:[0-9a-f]{40}(&dn=[a-z%0-9]{0,30})?"
        )
            .prop_map(|(ih, magnet)| Reply::Ok {
                info_hash: InfoHash(ih),
                magnet
            }),
        (0..ErrorCode::ALL.len(), "[ -~]{0,100}").prop_map(|(i, reason)| Reply::Err {
            code: ErrorCode::ALL[i],
            reason: reason.trim().to_owned()
        }),
    ]
}

proptest! {
    #[test]
    fn request_round_trips_in_any_chunking(req in request_strategy(), step in 1usize..50) {
        let mut wire = Vec::new();
        req.encode(&mut wire);
        wire.extend_from_slice(b"PAYLOAD");
        let is_torrent = matches!(req, Request::Torrent { .. });
        let input = if is_torrent { &wire[..wire.len() - 7] } else { &wire[..] };
        let (result, rest) = decode_stepwise(input, step);
        prop_assert_eq!(result, Ok(Some(req)));
        if !is_torrent {
            // Whatever arrived after the header stays for the payload.
            prop_assert!(b"PAYLOAD".starts_with(&rest[..]));
        }
    }

    #[test]
    fn reply_round_trips(reply in reply_strategy()) {
        let mut out = Vec::new();
        reply.encode(&mut out);
        prop_assert!(out.len() <= MAX_UPLOAD_REPLY_LEN);
        let parsed = Reply::parse(&out).unwrap().unwrap();
        prop_assert_eq!(parsed, (reply, out.len()));
    }

    #[test]
    fn scanner_agrees_with_decode_prefix(torrent in torrent_strategy(), tail in proptest::collection::vec(any::<u8>(), 0..8)) {
        let mut data = torrent.clone();
        data.extend_from_slice(&tail);
        let mut scanner = Scanner::default();
        let found = scanner.scan(&data).unwrap();
        let (_, used) = bencode::decode_prefix(&data).unwrap();
        prop_assert_eq!(found, Some(used));
        prop_assert_eq!(used, torrent.len());
    }
}
