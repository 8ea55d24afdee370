//! The messages a Nostr relay sends to a client (NIP-01 §"From relay to client", NIP-42), as
//! the node's publisher reads them: a pure parser over one WebSocket text message, with every
//! length bounded, no I/O and no clock.
//!
//! The publisher only ever sends `EVENT` and `AUTH`, never `REQ`, so the messages it waits for
//! are `OK`, `AUTH`, `NOTICE` and `CLOSED`; `EVENT`, `EOSE`, `COUNT` and unknown kinds are
//! recognised and ignored ([`RelayMessage::Ignored`]). Anything that is not a JSON array whose
//! first element is a string is an error (the relay is broken; the publisher counts it and
//! carries on reading, within its per-wait message bound).
//!
//! Leniency, decided on purpose (docs/nostr.md): `OK` with an empty event id is accepted (the
//! PyPI `nostr-relay` answers a refused write so); extra elements after the ones NIP-01 defines
//! are ignored; a `NOTICE` or `CLOSED` without its message reads as an empty one.

/// Largest relay message parsed, bytes. The messages the publisher waits for (`OK`, `AUTH`,
/// `NOTICE`, `CLOSED`) are under 1 KiB on every relay seen; 64 KiB leaves room for a verbose
/// relay. The WebSocket layer refuses a larger message before it is buffered whole.
pub const MAX_RELAY_MESSAGE_LEN: usize = 64 * 1024;

/// Longest human-readable text kept from a relay (`OK`/`NOTICE`/`CLOSED` message), bytes;
/// longer text is cut at a character boundary (it ends up in logs and `nostr.failed` events).
pub const MAX_RELAY_TEXT_LEN: usize = 256;

/// Longest NIP-42 challenge accepted, bytes: relays send 16-64 random characters; the
/// challenge is echoed in a signed event, so an unbounded one would be an amplification.
pub const MAX_AUTH_CHALLENGE_LEN: usize = 256;

/// Length of a hex event id (NIP-01: 32 bytes, lowercase hex).
pub const EVENT_ID_HEX_LEN: usize = 64;

/// Longest subscription id (NIP-01: at most 64 characters).
pub const MAX_SUBSCRIPTION_ID_LEN: usize = 64;

/// One message from a relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayMessage {
    /// `["OK", <event id>, <accepted>, <message>]` (NIP-01): the verdict on an `EVENT`.
    Ok {
        /// The event id, 64 hex characters, or empty (a relay quirk, see the module docs).
        event_id: String,
        /// Whether the relay stored the event.
        accepted: bool,
        /// The relay's reason, `prefix: text` (NIP-01), cut to [`MAX_RELAY_TEXT_LEN`].
        message: String,
    },
    /// `["AUTH", <challenge>]` (NIP-42): the relay wants a signed kind-22242 event.
    Auth {
        /// The challenge string, at most [`MAX_AUTH_CHALLENGE_LEN`] bytes.
        challenge: String,
    },
    /// `["NOTICE", <message>]` (NIP-01): human-readable, no protocol meaning.
    Notice {
        /// The text, cut to [`MAX_RELAY_TEXT_LEN`].
        message: String,
    },
    /// `["CLOSED", <subscription id>, <message>]` (NIP-01).
    Closed {
        /// The subscription id.
        subscription_id: String,
        /// The reason, cut to [`MAX_RELAY_TEXT_LEN`].
        message: String,
    },
    /// `EVENT`, `EOSE`, `COUNT` or a message kind this node does not know: nothing to do.
    Ignored,
}

impl RelayMessage {
    /// Whether this `OK` means the relay holds the event: accepted, or refused as a
    /// `duplicate:` (NIP-01 says a duplicate is `true`; some relays say `false`).
    #[must_use]
    pub fn is_stored(&self) -> bool {
        match self {
            Self::Ok {
                accepted, message, ..
            } => *accepted || message.starts_with("duplicate:"),
            _ => false,
        }
    }

    /// Whether this `OK` refuses the event for want of authentication (NIP-42
    /// `auth-required:`, or `restricted:` as relays answer before the `AUTH` was processed).
    #[must_use]
    pub fn wants_auth(&self) -> bool {
        match self {
            Self::Ok {
                accepted: false,
                message,
                ..
            } => message.starts_with("auth-required:") || message.starts_with("restricted:"),
            _ => false,
        }
    }
}

/// Why a relay message was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelayMessageError {
    /// The message is longer than [`MAX_RELAY_MESSAGE_LEN`].
    #[error("relay message of {len} bytes, over {limit}")]
    TooLong {
        /// Its length.
        len: usize,
        /// [`MAX_RELAY_MESSAGE_LEN`].
        limit: usize,
    },
    /// Not JSON (or nested deeper than `serde_json`'s recursion limit).
    #[error("relay message is not JSON")]
    NotJson,
    /// JSON, but not an array starting with a string.
    #[error("relay message is not an array starting with its kind")]
    NotAMessage,
    /// A field of a known message is missing or of the wrong type or length.
    #[error("relay {message} message: bad or missing {field}")]
    BadField {
        /// `OK`, `AUTH`, `CLOSED`.
        message: &'static str,
        /// The field.
        field: &'static str,
    },
}

/// Parses one relay message (a WebSocket text message).
///
/// # Errors
/// [`RelayMessageError`], named for what the relay got wrong.
pub fn parse_relay_message(text: &str) -> Result<RelayMessage, RelayMessageError> {
    if text.len() > MAX_RELAY_MESSAGE_LEN {
        return Err(RelayMessageError::TooLong {
            len: text.len(),
            limit: MAX_RELAY_MESSAGE_LEN,
        });
    }
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|_| RelayMessageError::NotJson)?;
    let serde_json::Value::Array(items) = value else {
        return Err(RelayMessageError::NotAMessage);
    };
    let Some(serde_json::Value::String(kind)) = items.first() else {
        return Err(RelayMessageError::NotAMessage);
    };
    let str_at = |i: usize| items.get(i).and_then(serde_json::Value::as_str);
    let bad = |message, field| RelayMessageError::BadField { message, field };
    match kind.as_str() {
        "OK" => {
            let event_id = str_at(1).ok_or(bad("OK", "event id"))?;
            if !(event_id.is_empty()
                || (event_id.len() == EVENT_ID_HEX_LEN
                    && event_id.bytes().all(|b| b.is_ascii_hexdigit())))
            {
                return Err(bad("OK", "event id"));
            }
            let accepted = items
                .get(2)
                .and_then(serde_json::Value::as_bool)
                .ok_or(bad("OK", "accepted"))?;
            Ok(RelayMessage::Ok {
                event_id: event_id.to_ascii_lowercase(),
                accepted,
                message: cut(str_at(3).unwrap_or(""), MAX_RELAY_TEXT_LEN).to_owned(),
            })
        }
        "AUTH" => {
            let challenge = str_at(1).ok_or(bad("AUTH", "challenge"))?;
            if challenge.is_empty() || challenge.len() > MAX_AUTH_CHALLENGE_LEN {
                return Err(bad("AUTH", "challenge"));
            }
            Ok(RelayMessage::Auth {
                challenge: challenge.to_owned(),
            })
        }
        "NOTICE" => Ok(RelayMessage::Notice {
            message: cut(str_at(1).unwrap_or(""), MAX_RELAY_TEXT_LEN).to_owned(),
        }),
        "CLOSED" => {
            let id = str_at(1).ok_or(bad("CLOSED", "subscription id"))?;
            if id.len() > MAX_SUBSCRIPTION_ID_LEN {
                return Err(bad("CLOSED", "subscription id"));
            }
            Ok(RelayMessage::Closed {
                subscription_id: id.to_owned(),
                message: cut(str_at(2).unwrap_or(""), MAX_RELAY_TEXT_LEN).to_owned(),
            })
        }
        _ => Ok(RelayMessage::Ignored),
    }
}

/// `["EVENT", <event>]` (NIP-01) for a signed event already serialised as JSON.
#[must_use]
pub fn event_message(event_json: &str) -> String {
    format!("[\"EVENT\",{event_json}]")
}

/// `["AUTH", <event>]` (NIP-42) for a signed kind-22242 event serialised as JSON.
#[must_use]
pub fn auth_message(event_json: &str) -> String {
    format!("[\"AUTH\",{event_json}]")
}

/// The body of the `nostr_relay_message` fuzz target (and its corpus replay on stable): parses
/// `data` as a relay message when it is UTF-8 and checks the parser's promises.
///
/// # Panics
/// When a promise is broken: a kept text or challenge over its limit, an `OK` id that is
/// neither empty nor 64 lowercase hex characters.
pub fn fuzz_relay_message(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse_relay_message(text) {
        Ok(RelayMessage::Ok {
            event_id, message, ..
        }) => {
            assert!(event_id.is_empty() || event_id.len() == EVENT_ID_HEX_LEN);
            assert!(!event_id.bytes().any(|b| b.is_ascii_uppercase()));
            assert!(message.len() <= MAX_RELAY_TEXT_LEN);
        }
        Ok(RelayMessage::Auth { challenge }) => {
            assert!(!challenge.is_empty() && challenge.len() <= MAX_AUTH_CHALLENGE_LEN);
        }
        Ok(RelayMessage::Notice { message }) => assert!(message.len() <= MAX_RELAY_TEXT_LEN),
        Ok(RelayMessage::Closed {
            subscription_id,
            message,
        }) => {
            assert!(subscription_id.len() <= MAX_SUBSCRIPTION_ID_LEN);
            assert!(message.len() <= MAX_RELAY_TEXT_LEN);
        }
        Ok(RelayMessage::Ignored) => {}
        Err(RelayMessageError::TooLong { len, .. }) => assert!(len > MAX_RELAY_MESSAGE_LEN),
        Err(_) => assert!(text.len() <= MAX_RELAY_MESSAGE_LEN),
    }
}

/// `s` cut to at most `max` bytes at a character boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "b1a649ebe8b435ec71d3784793f3bbf4b93e64e17568a741aecd4c7ddeafce30";

    #[test]
    fn nip01_ok_vectors() {
        // NIP-01 §"OK messages" examples.
        let accepted = parse_relay_message(&format!(r#"["OK", "{ID}", true, ""]"#)).unwrap();
        assert!(accepted.is_stored());
        let dup = parse_relay_message(&format!(
            r#"["OK", "{ID}", true, "duplicate: already have this event"]"#
        ))
        .unwrap();
        assert!(dup.is_stored());
        let blocked = parse_relay_message(&format!(
            r#"["OK", "{ID}", false, "blocked: you are banned from posting here"]"#
        ))
        .unwrap();
        assert!(!blocked.is_stored() && !blocked.wants_auth());
        assert_eq!(
            blocked,
            RelayMessage::Ok {
                event_id: ID.into(),
                accepted: false,
                message: "blocked: you are banned from posting here".into()
            }
        );
    }

    #[test]
    fn duplicate_refusal_counts_as_stored_and_empty_id_is_tolerated() {
        // The PyPI nostr-relay's answers (tests/support/nostr/README.md).
        let m = parse_relay_message(&format!(r#"["OK","{ID}",false,"duplicate: exists"]"#));
        assert!(m.unwrap().is_stored());
        let m = parse_relay_message(r#"["OK","",false,"restricted: not allowed"]"#).unwrap();
        assert!(m.wants_auth());
        let m = parse_relay_message(&format!(r#"["OK","{ID}",false,"auth-required: x"]"#));
        assert!(m.unwrap().wants_auth());
    }

    #[test]
    fn nip42_auth_and_nip01_notice_closed() {
        assert_eq!(
            parse_relay_message(r#"["AUTH", "challengestringhere"]"#),
            Ok(RelayMessage::Auth {
                challenge: "challengestringhere".into()
            })
        );
        assert_eq!(
            parse_relay_message(r#"["NOTICE", "hello"]"#),
            Ok(RelayMessage::Notice {
                message: "hello".into()
            })
        );
        assert_eq!(
            parse_relay_message(r#"["CLOSED", "sub1", "auth-required: do it"]"#),
            Ok(RelayMessage::Closed {
                subscription_id: "sub1".into(),
                message: "auth-required: do it".into()
            })
        );
        assert_eq!(
            parse_relay_message(r#"["EOSE", "sub1"]"#),
            Ok(RelayMessage::Ignored)
        );
        assert_eq!(
            parse_relay_message(r#"["EVENT", "sub1", {}]"#),
            Ok(RelayMessage::Ignored)
        );
    }

    #[test]
    fn rejects_what_a_broken_relay_sends() {
        use RelayMessageError::*;
        assert_eq!(parse_relay_message("garbage"), Err(NotJson));
        assert_eq!(parse_relay_message("{}"), Err(NotAMessage));
        assert_eq!(parse_relay_message("[]"), Err(NotAMessage));
        assert_eq!(parse_relay_message("[1]"), Err(NotAMessage));
        assert!(matches!(
            parse_relay_message(r#"["OK","zz",true,""]"#),
            Err(BadField { .. })
        ));
        assert!(matches!(
            parse_relay_message(&format!(r#"["OK","{ID}","yes",""]"#)),
            Err(BadField { .. })
        ));
        assert!(matches!(
            parse_relay_message(r#"["AUTH",""]"#),
            Err(BadField { .. })
        ));
        let long = format!(r#"["AUTH","{}"]"#, "a".repeat(MAX_AUTH_CHALLENGE_LEN + 1));
        assert!(matches!(parse_relay_message(&long), Err(BadField { .. })));
        let huge = format!(r#"["NOTICE","{}"]"#, "a".repeat(MAX_RELAY_MESSAGE_LEN));
        assert!(matches!(parse_relay_message(&huge), Err(TooLong { .. })));
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(parse_relay_message(&deep), Err(NotJson));
    }

    #[test]
    fn long_text_is_cut_at_a_char_boundary() {
        let text = "é".repeat(MAX_RELAY_TEXT_LEN);
        let Ok(RelayMessage::Notice { message }) =
            parse_relay_message(&format!(r#"["NOTICE","{text}"]"#))
        else {
            panic!("a notice")
        };
        assert!(message.len() <= MAX_RELAY_TEXT_LEN && text.starts_with(&message));
    }

    #[test]
    fn short_inputs_never_panic() {
        let alphabet = br#"[]",OKAUTHNOTICECLOSED tf0{}\"#;
        for len in 0..=4 {
            let mut idx = vec![0usize; len];
            loop {
                let bytes: Vec<u8> = idx.iter().map(|&i| alphabet[i]).collect();
                if let Ok(s) = std::str::from_utf8(&bytes) {
                    let _ = parse_relay_message(s);
                }
                let mut k = 0;
                while k < len {
                    idx[k] += 1;
                    if idx[k] < alphabet.len() {
                        break;
                    }
                    idx[k] = 0;
                    k += 1;
                }
                if k == len {
                    break;
                }
            }
        }
    }

    #[test]
    fn client_messages_wrap_the_event() {
        assert_eq!(event_message("{}"), r#"["EVENT",{}]"#);
        assert_eq!(auth_message("{}"), r#"["AUTH",{}]"#);
    }
}
