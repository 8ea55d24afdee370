//! Test helpers: a tiny HTTP/1.1 receiver on 127.0.0.1 that records what it gets and answers
//! from a script, and the Python interpreter used for the cross-checks with the reference
//! libraries (PyPI `standardwebhooks`, `PyNaCl`).

use std::collections::VecDeque;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One request the receiver got.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    /// Header names (lower case) and values.
    pub(crate) headers: Vec<(String, String)>,
    /// The body.
    pub(crate) body: Vec<u8>,
}

impl Received {
    /// The value of header `name` (lower case).
    pub(crate) fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map_or("", |(_, v)| v.as_str())
    }
}

/// How the receiver answers one request.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Reply {
    /// With this status.
    Status(u16),
    /// Not at all: the connection is held open this long, then closed.
    Hang(Duration),
    /// `302 Found` to this location.
    Redirect(&'static str),
}

/// A receiver running on 127.0.0.1; stops when dropped.
pub(crate) struct TestReceiver {
    pub(crate) addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    stop: Arc<AtomicBool>,
}

impl TestReceiver {
    /// Starts on an ephemeral port; answers from `script` in order, then 200.
    pub(crate) fn start(script: Vec<Reply>) -> Self {
        Self::start_on(TcpListener::bind("127.0.0.1:0").expect("bind"), script)
    }

    /// Starts on `listener`.
    pub(crate) fn start_on(listener: TcpListener, script: Vec<Reply>) -> Self {
        let addr = listener.local_addr().expect("addr");
        listener.set_nonblocking(true).expect("nonblocking");
        let received = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        let (r, s) = (Arc::clone(&received), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let (r, script) = (Arc::clone(&r), Arc::clone(&script));
                        std::thread::spawn(move || serve(conn, &r, &script));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Self {
            addr,
            received,
            stop,
        }
    }

    /// What was received so far.
    pub(crate) fn received(&self) -> Vec<Received> {
        self.received.lock().expect("lock").clone()
    }

    /// Waits until `n` requests were received (10 s at most); returns them.
    pub(crate) fn wait_for(&self, n: usize) -> Vec<Received> {
        wait_until(Duration::from_secs(10), || self.received().len() >= n);
        self.received()
    }
}

impl Drop for TestReceiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(conn: TcpStream, received: &Mutex<Vec<Received>>, script: &Mutex<VecDeque<Reply>>) {
    conn.set_nonblocking(false).expect("blocking");
    conn.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut reader = BufReader::new(conn.try_clone().expect("clone"));
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let mut headers = Vec::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).is_err() || line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some((n, v)) = line.trim_end().split_once(':') {
            headers.push((n.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    let len = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0; len.min(1 << 20)];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    received
        .lock()
        .expect("lock")
        .push(Received { headers, body });
    let reply = script
        .lock()
        .expect("lock")
        .pop_front()
        .unwrap_or(Reply::Status(200));
    let mut conn = conn;
    match reply {
        Reply::Status(status) => {
            let _ = write!(
                conn,
                "HTTP/1.1 {status} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
            );
        }
        Reply::Hang(d) => std::thread::sleep(d),
        Reply::Redirect(location) => {
            let _ = write!(
                conn,
                "HTTP/1.1 302 Found\r\nlocation: {location}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
        }
    }
}

/// Polls `cond` every 10 ms until it holds or `limit` passed; returns whether it held.
pub(crate) fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    cond()
}

/// The Python interpreter for the cross-checks: `$SEEDNODE_TEST_PYTHON`, else `python3` on
/// `PATH` (on the project machine that is pyenv's 3.11, where `pip install standardwebhooks
/// pynacl` put them; `/usr/bin/python3` has neither).
pub(crate) fn python() -> String {
    std::env::var("SEEDNODE_TEST_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Whether [`python`] can import `module`; prints why the caller skips when not.
pub(crate) fn python_has(module: &str, pip_name: &str) -> bool {
    let ok = Command::new(python())
        .args(["-c", &format!("import {module}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!(
            "SKIPPED: `{} -c 'import {module}'` failed; `pip install {pip_name}` for this check \
             (or set SEEDNODE_TEST_PYTHON)",
            python()
        );
    }
    ok
}

/// Runs `script` with [`python`], `stdin` on its standard input; returns its stdout, or panics
/// with its stderr when it fails.
pub(crate) fn run_python(script: &str, stdin: &[u8]) -> String {
    let mut child = Command::new(python())
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin)
        .expect("write");
    let out = child.wait_with_output().expect("python ran");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
