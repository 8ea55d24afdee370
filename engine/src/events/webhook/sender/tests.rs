//! The sender against a real HTTP receiver on 127.0.0.1 (allowed by `allow_private`), and the
//! reference libraries in Python for the signature and the sealed box.

use std::net::TcpListener;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use crypto_box::SecretKey;
use crypto_box::aead::OsRng;
use seednode_storage::catalog::{NewWebhookEndpoint, OutboxState, WebhookEvent};

use super::*;
use crate::events::webhook::testutil::{Reply, TestReceiver, python_has, run_python, wait_until};

const SECRET_A: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn secret_b() -> String {
    format!("whsec_{}", STANDARD.encode([0x5au8; 32]))
}

struct Setup {
    _dir: tempfile::TempDir,
    path: PathBuf,
    catalog: Catalog,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("catalog.sqlite");
    let catalog = Catalog::open(&path).expect("catalog");
    Setup {
        _dir: dir,
        path,
        catalog,
    }
}

fn endpoint(url: String, secrets: Vec<String>, allow_private: bool) -> NewWebhookEndpoint {
    NewWebhookEndpoint {
        url,
        kinds: vec!["*".into()],
        secrets,
        recipient_key: None,
        allow_private,
        created_at: unix_ms() / 1000,
        label: "test".into(),
    }
}

fn event(n: u32) -> WebhookEvent {
    WebhookEvent {
        id: format!("msg_test{n}"),
        kind: "torrent.added".into(),
        body: format!(
            r#"{{"type":"torrent.added","timestamp":"2026-01-01T00:00:00Z","data":{{"n":{n}}}}}"#
        ),
        created_at: unix_ms() / 1000,
        exclude_endpoint: None,
    }
}

/// Short timeouts and backoff, so the tests take milliseconds.
fn fast(path: &std::path::Path) -> SenderConfig {
    SenderConfig {
        connect_timeout: Duration::from_millis(500),
        request_timeout: Duration::from_millis(500),
        backoff_base: Duration::from_millis(20),
        backoff_max: Duration::from_millis(100),
        idle_poll: Duration::from_millis(50),
        ..SenderConfig::new(path.to_path_buf())
    }
}

fn start(config: SenderConfig) -> (WebhookSender, Receiver<WebhookNotice>) {
    let (tx, rx) = notice_channel();
    let sender = WebhookSender::start(config, tx, None).expect("sender starts");
    (sender, rx)
}

fn row_state(path: &std::path::Path, id: i64) -> OutboxRow {
    Catalog::open(path)
        .expect("catalog")
        .webhook_row(id)
        .expect("read")
        .expect("row exists")
}

/// The id of the only outbox row of `event_id`.
fn row_id(c: &Catalog, endpoint: i64, event_id: &str) -> i64 {
    (1..1000)
        .find(|&id| {
            c.webhook_row(id)
                .ok()
                .flatten()
                .is_some_and(|r| r.endpoint_id == endpoint && r.event_id == event_id)
        })
        .expect("row")
}

#[test]
fn delivers_signed_with_every_secret_and_the_reference_library_verifies() {
    let mut s = setup();
    let rx_http = TestReceiver::start(vec![]);
    let url = format!("http://{}/hook", rx_http.addr);
    let ep = s
        .catalog
        .add_webhook_endpoint(&endpoint(url, vec![secret_b(), SECRET_A.into()], true))
        .expect("endpoint");
    s.catalog
        .enqueue_webhooks(&[event(1)], unix_ms())
        .expect("enqueue");
    let (sender, _notices) = start(fast(&s.path));
    let got = rx_http.wait_for(1);
    assert!(sender.stop(Duration::from_secs(5)), "stops promptly");
    assert_eq!(got.len(), 1);
    let req = &got[0];
    assert_eq!(req.header("webhook-id"), "msg_test1");
    assert_eq!(req.header("content-type"), "application/json");
    assert_eq!(req.body, event(1).body.as_bytes());
    let ts: i64 = req
        .header("webhook-timestamp")
        .parse()
        .expect("unix seconds");
    assert!((ts - unix_ms() / 1000).abs() < 60);
    let sig = req.header("webhook-signature");
    assert_eq!(sig.split(' ').count(), 2, "one signature per secret: {sig}");
    for secret in [secret_b(), SECRET_A.to_owned()] {
        let key = WebhookSecret::parse(&secret).expect("secret");
        assert!(key.verify("msg_test1", ts, &req.body, sig));
    }
    let row = row_state(&s.path, row_id(&s.catalog, ep, "msg_test1"));
    assert_eq!(row.state, OutboxState::Delivered);
    assert_eq!(row.attempts, 1);

    if !python_has("standardwebhooks", "standardwebhooks") {
        return;
    }
    let headers: serde_json::Map<String, serde_json::Value> = req
        .headers
        .iter()
        .filter(|(n, _)| n.starts_with("webhook-"))
        .map(|(n, v)| (n.clone(), v.clone().into()))
        .collect();
    let input = serde_json::json!({
        "secrets": [SECRET_A, secret_b()],
        "wrong": format!("whsec_{}", STANDARD.encode([1u8; 32])),
        "headers": headers,
        "body": String::from_utf8(req.body.clone()).expect("utf-8"),
    });
    let out = run_python(
        r#"
import json, sys
from standardwebhooks import Webhook, WebhookVerificationError
d = json.load(sys.stdin)
body = d["body"].encode()
for s in d["secrets"]:
    payload = Webhook(s).verify(body, d["headers"])
    assert payload["type"] == "torrent.added", payload
for bad in ([d["wrong"], body], [d["secrets"][0], body.replace(b'"n":1', b'"n":2')]):
    try:
        Webhook(bad[0]).verify(bad[1], d["headers"])
        raise SystemExit("verified what it must not")
    except WebhookVerificationError:
        pass
print("verified")
"#,
        input.to_string().as_bytes(),
    );
    assert_eq!(out.trim(), "verified");
}

#[test]
fn answered_500_twice_then_200_is_delivered_on_the_third_attempt() {
    let mut s = setup();
    let rx_http = TestReceiver::start(vec![Reply::Status(500), Reply::Status(503)]);
    let ep = s
        .catalog
        .add_webhook_endpoint(&endpoint(
            format!("http://{}/", rx_http.addr),
            vec![SECRET_A.into()],
            true,
        ))
        .expect("endpoint");
    s.catalog
        .enqueue_webhooks(&[event(1)], unix_ms())
        .expect("enqueue");
    let id = row_id(&s.catalog, ep, "msg_test1");
    let (sender, notices) = start(fast(&s.path));
    assert!(wait_until(Duration::from_secs(10), || row_state(
        &s.path, id
    )
    .state
        == OutboxState::Delivered));
    assert!(sender.stop(Duration::from_secs(5)));
    let got = rx_http.received();
    assert_eq!(got.len(), 3);
    assert!(
        got.iter().all(|r| r.header("webhook-id") == "msg_test1"),
        "stable id"
    );
    let row = row_state(&s.path, id);
    assert_eq!(row.attempts, 3);
    assert_eq!(row.last_error.as_deref(), Some("HTTP 503"));
    assert!(notices.try_recv().is_err(), "nothing failed");
}

#[test]
fn a_receiver_that_never_answers_times_out_and_is_retried() {
    let mut s = setup();
    let rx_http = TestReceiver::start(vec![Reply::Hang(Duration::from_secs(3))]);
    let ep = s
        .catalog
        .add_webhook_endpoint(&endpoint(
            format!("http://{}/", rx_http.addr),
            vec![SECRET_A.into()],
            true,
        ))
        .expect("endpoint");
    s.catalog
        .enqueue_webhooks(&[event(1)], unix_ms())
        .expect("enqueue");
    let id = row_id(&s.catalog, ep, "msg_test1");
    let started = std::time::Instant::now();
    let (sender, _notices) = start(fast(&s.path));
    assert!(wait_until(Duration::from_secs(10), || row_state(
        &s.path, id
    )
    .state
        == OutboxState::Delivered));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the hang was cut by the timeout"
    );
    assert!(sender.stop(Duration::from_secs(5)));
    let row = row_state(&s.path, id);
    assert_eq!(row.attempts, 2);
    assert!(
        row.last_error
            .as_deref()
            .is_some_and(|e| e.contains("timeout")),
        "{row:?}"
    );
}

#[test]
fn redirects_are_not_followed() {
    let mut s = setup();
    // Where the redirect points: a loopback service the node must not be bounced to.
    let inner = TestReceiver::start(vec![]);
    let location: &'static str = format!("http://{}/admin", inner.addr).leak();
    let rx_http = TestReceiver::start(vec![Reply::Redirect(location)]);
    let ep = s
        .catalog
        .add_webhook_endpoint(&endpoint(
            format!("http://{}/", rx_http.addr),
            vec![SECRET_A.into()],
            true,
        ))
        .expect("endpoint");
    s.catalog
        .enqueue_webhooks(&[event(1)], unix_ms())
        .expect("enqueue");
    let id = row_id(&s.catalog, ep, "msg_test1");
    let (sender, _notices) = start(fast(&s.path));
    assert!(wait_until(Duration::from_secs(10), || row_state(
        &s.path, id
    )
    .state
        == OutboxState::Delivered));
    assert!(sender.stop(Duration::from_secs(5)));
    assert!(inner.received().is_empty(), "the redirect was followed");
    let row = row_state(&s.path, id);
    assert_eq!(row.attempts, 2);
    assert_eq!(
        row.last_error.as_deref(),
        Some("HTTP 302: redirect not followed")
    );
}

#[test]
fn rows_of_an_endpoint_arrive_in_order_despite_retries() {
    let mut s = setup();
    let rx_http = TestReceiver::start(vec![
        Reply::Status(500),
        Reply::Status(200),
        Reply::Status(500),
    ]);
    s.catalog
        .add_webhook_endpoint(&endpoint(
            format!("http://{}/", rx_http.addr),
            vec![SECRET_A.into()],
            true,
        ))
        .expect("endpoint");
    let events: Vec<_> = (1..=4).map(event).collect();
    s.catalog
        .enqueue_webhooks(&events, unix_ms())
        .expect("enqueue");
    let (sender, _notices) = start(fast(&s.path));
    let got = rx_http.wait_for(6);
    assert!(sender.stop(Duration::from_secs(5)));
    let ids: Vec<_> = got
        .iter()
        .map(|r| r.header("webhook-id").to_owned())
        .collect();
    assert_eq!(
        ids,
        [
            "msg_test1",
            "msg_test1",
            "msg_test2",
            "msg_test2",
            "msg_test3",
            "msg_test4"
        ]
    );
}

#[test]
fn loopback_without_allow_private_is_refused_at_delivery_and_reported() {
    let mut s = setup();
    let rx_http = TestReceiver::start(vec![]);
    // Registered behind the checks' back (the catalog does not resolve): the sender checks again.
    let ep = s
        .catalog
        .add_webhook_endpoint(&endpoint(
            format!("https://{}/", rx_http.addr),
            vec![SECRET_A.into()],
            false,
        ))
        .expect("endpoint");
    let ep6 = s
        .catalog
        .add_webhook_endpoint(&endpoint(
            format!("https://[::ffff:127.0.0.1]:{}/", rx_http.addr.port()),
            vec![SECRET_A.into()],
            false,
        ))
        .expect("endpoint");
    s.catalog
        .enqueue_webhooks(&[event(1)], unix_ms())
        .expect("enqueue");
    let (sender, notices) = start(fast(&s.path));
    let mut got = Vec::new();
    assert!(wait_until(Duration::from_secs(10), || {
        got.extend(notices.try_iter());
        got.len() >= 2
    }));
    assert!(sender.stop(Duration::from_secs(5)));
    assert!(
        rx_http.received().is_empty(),
        "nothing reached the receiver"
    );
    for (notice, endpoint) in got.iter().zip([ep, ep6]) {
        let WebhookNotice::Failed {
            endpoint_id,
            event_id,
            attempts,
            error,
            ..
        } = notice
        else {
            panic!("{notice:?}");
        };
        assert_eq!(
            (*endpoint_id, event_id.as_str(), *attempts),
            (endpoint, "msg_test1", 1)
        );
        assert!(error.contains("loopback"), "{error}");
        let e = notice.to_event(5).expect("an event");
        assert_eq!(e.kind, WEBHOOK_FAILED);
        assert_eq!(e.details["endpoint_id"], endpoint);
    }
    let row = row_state(&s.path, row_id(&s.catalog, ep, "msg_test1"));
    assert_eq!(row.state, OutboxState::Failed);
}

#[test]
fn a_row_past_its_retry_period_fails_and_the_next_one_goes() {
    let mut s = setup();
    let rx_http = TestReceiver::start(vec![Reply::Status(500)]);
    let ep = s
        .catalog
        .add_webhook_endpoint(&endpoint(
            format!("http://{}/", rx_http.addr),
            vec![SECRET_A.into()],
            true,
        ))
        .expect("endpoint");
    let mut old = event(1);
    old.created_at -= 3600;
    s.catalog
        .enqueue_webhooks(&[old, event(2)], unix_ms())
        .expect("enqueue");
    let config = SenderConfig {
        retry_period: Duration::from_secs(60),
        ..fast(&s.path)
    };
    let (sender, notices) = start(config);
    let got = rx_http.wait_for(2);
    assert!(sender.stop(Duration::from_secs(5)));
    assert_eq!(got.len(), 2);
    let notice = notices.try_recv().expect("a failure notice");
    assert!(
        matches!(&notice, WebhookNotice::Failed { event_id, error, .. } if event_id == "msg_test1" && error == "HTTP 500"),
        "{notice:?}"
    );
    assert_eq!(
        row_state(&s.path, row_id(&s.catalog, ep, "msg_test2")).state,
        OutboxState::Delivered
    );
}

#[test]
fn a_restart_delivers_what_a_down_receiver_missed_with_the_same_id() {
    let mut s = setup();
    // A port with nothing listening: connections are refused.
    let port = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let ep = s
        .catalog
        .add_webhook_endpoint(&endpoint(
            format!("http://127.0.0.1:{port}/"),
            vec![SECRET_A.into()],
            true,
        ))
        .expect("endpoint");
    s.catalog
        .enqueue_webhooks(&[event(1), event(2)], unix_ms())
        .expect("enqueue");
    let id = row_id(&s.catalog, ep, "msg_test1");
    let (sender, _notices) = start(fast(&s.path));
    assert!(wait_until(Duration::from_secs(10), || row_state(
        &s.path, id
    )
    .attempts
        >= 2));
    assert!(sender.stop(Duration::from_secs(5)));
    assert_eq!(row_state(&s.path, id).state, OutboxState::Pending);
    // The receiver comes up; a new sender (a restarted node) resumes.
    let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) else {
        eprintln!("SKIPPED: port {port} was taken meanwhile");
        return;
    };
    let rx_http = TestReceiver::start_on(listener, vec![]);
    let (sender, _notices) = start(fast(&s.path));
    let got = rx_http.wait_for(2);
    assert!(sender.stop(Duration::from_secs(5)));
    let ids: Vec<_> = got
        .iter()
        .map(|r| r.header("webhook-id").to_owned())
        .collect();
    assert_eq!(ids, ["msg_test1", "msg_test2"]);
}

#[test]
fn sealed_bodies_are_signed_as_sent_and_open_with_pynacl() {
    let mut s = setup();
    let rx_http = TestReceiver::start(vec![]);
    let sk = SecretKey::generate(&mut OsRng);
    let mut e = endpoint(
        format!("http://{}/", rx_http.addr),
        vec![SECRET_A.into()],
        true,
    );
    e.recipient_key = Some(sk.public_key().to_bytes());
    s.catalog.add_webhook_endpoint(&e).expect("endpoint");
    s.catalog
        .enqueue_webhooks(&[event(7)], unix_ms())
        .expect("enqueue");
    let (sender, _notices) = start(fast(&s.path));
    let got = rx_http.wait_for(1);
    assert!(sender.stop(Duration::from_secs(5)));
    let req = &got[0];
    let ts: i64 = req.header("webhook-timestamp").parse().expect("ts");
    let key = WebhookSecret::parse(SECRET_A).expect("secret");
    assert!(
        key.verify("msg_test7", ts, &req.body, req.header("webhook-signature")),
        "the signature covers the ciphertext"
    );
    let wrapper: serde_json::Value = serde_json::from_slice(&req.body).expect("json");
    let sealed = STANDARD
        .decode(wrapper["sealed"].as_str().expect("sealed"))
        .expect("b64");
    assert_eq!(sk.unseal(&sealed).expect("opens"), event(7).body.as_bytes());

    if !python_has("nacl", "pynacl") {
        return;
    }
    let input = serde_json::json!({
        "sk": STANDARD.encode(sk.to_bytes()),
        "body": String::from_utf8(req.body.clone()).expect("utf-8"),
    });
    let out = run_python(
        r#"
import base64, json, sys
from nacl.public import PrivateKey, SealedBox
d = json.load(sys.stdin)
sealed = base64.b64decode(json.loads(d["body"])["sealed"])
sys.stdout.write(SealedBox(PrivateKey(base64.b64decode(d["sk"]))).decrypt(sealed).decode())
"#,
        input.to_string().as_bytes(),
    );
    assert_eq!(out, event(7).body);
}

#[test]
fn stop_is_prompt_when_idle() {
    let s = setup();
    let config = SenderConfig {
        idle_poll: Duration::from_secs(60),
        ..fast(&s.path)
    };
    let (sender, _notices) = start(config);
    sender.wake();
    assert!(sender.is_running());
    let t = std::time::Instant::now();
    assert!(sender.stop(Duration::from_secs(5)));
    assert!(t.elapsed() < Duration::from_secs(1));
}

#[test]
fn backoff_doubles_caps_and_jitters() {
    let rng = SystemRandom::new();
    let base = Duration::from_secs(5);
    let max = Duration::from_secs(3600);
    for (attempts, full) in [(1, 5), (2, 10), (3, 20), (10, 2560), (11, 3600), (40, 3600)] {
        let d = backoff(attempts, base, max, &rng);
        let full = Duration::from_secs(full);
        assert!(d >= full / 2 && d <= full, "attempt {attempts}: {d:?}");
    }
}
