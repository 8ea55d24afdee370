//! NAT port mapping (issue 15, docs/nat.md) against a real gateway: miniupnpd, with UPnP IGD and
//! NAT-PMP (RFC 6886) on, runs in a network namespace of its own as the node's router.
//!
//! The layout, all made by the test and gone with it:
//! - the node's namespace (`unshare -n`, the re-executed test process): `lo`, and the LAN veth end
//!   `192.168.77.2/24` with a default route through the gateway;
//! - the gateway's namespace (`ip netns add`): the LAN end `192.168.77.1/24`, and a WAN veth whose
//!   address `11.11.11.7` is public-looking (miniupnpd refuses to map behind a private or reserved
//!   external address) but unrouted: nothing leaves these namespaces.
//!
//! miniupnpd's nftables backend adds its rules to chains the test creates; the mappings are read
//! from miniupnpd's lease file (one line per mapping: `PROTO:EXT_PORT:IADDR:IPORT:EXPIRY:DESC`, the
//! expiry in Unix seconds) and its nftables rules. Where a namespace cannot be made, the test says
//! `SKIPPED` and passes; missing programs are a failure with an install hint (`scripts/test`
//! installs them).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::{ChildGuard, Deadline, TEST_TIMEOUT, log_tail, seednode_bin, write_random_file};
use tempfile::TempDir;

/// Set in the re-executed test process that runs inside the namespace.
const INNER_ENV: &str = "SEEDNODE_TEST_IN_NETNS";

/// The node's LAN address, and its gateway's.
const NODE_LAN_IP: &str = "192.168.77.2";
const GATEWAY_LAN_IP: &str = "192.168.77.1";
/// The gateway's external address (public-looking, unrouted, inside the test's namespace only).
const EXTERNAL_IP: &str = "11.11.11.7";
/// The node's listen port (TCP and UDP).
const PORT: u16 = 6881;
/// Port of miniupnpd's HTTP (UPnP control) server.
const MINIUPNPD_HTTP_PORT: u16 = 5000;
/// The lease the node asks for: short, so a renewal (at half) happens within the test.
const LEASE_SECS: u64 = 4;
/// How often the test re-reads a file or endpoint it waits on.
const POLL: Duration = Duration::from_millis(100);

/// Runs `test` of this file inside a new network namespace; returns true in the inner process
/// (run the scenario), false in the outer one (the verdict is the inner run's exit status, or a
/// skip when namespaces are not allowed here).
fn in_netns(test: &str) -> bool {
    if std::env::var_os(INNER_ENV).is_some() {
        return true;
    }
    let probe = Command::new("unshare").args(["-n", "true"]).status();
    let probe_netns = Command::new("ip")
        .args(["netns", "list"])
        .stdout(Stdio::null())
        .status();
    if !probe.is_ok_and(|s| s.success()) || !probe_netns.is_ok_and(|s| s.success()) {
        eprintln!(
            "SKIPPED: {test}: cannot create network namespaces here (needs root, unshare, ip)"
        );
        return false;
    }
    let exe = std::env::current_exe().expect("test binary path");
    let status = Command::new("unshare")
        .arg("-n")
        .arg("--")
        .arg(exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(INNER_ENV, "1")
        .status()
        .expect("run the test inside unshare -n");
    assert!(status.success(), "{test} failed inside its namespace");
    false
}

fn run(program: &str, args: &[&str]) {
    let status = Command::new(program)
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    assert!(status.success(), "{program} {args:?} failed");
}

fn require(program: &str, package: &str) {
    let found = Command::new("sh")
        .args([
            "-c",
            &format!("command -v {program} || test -x /usr/sbin/{program}"),
        ])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "{program} is missing: apt-get install {package} (scripts/test installs it)"
    );
}

/// The gateway's namespace; deleted (with everything in it) on drop.
struct GatewayNs {
    name: String,
}

impl GatewayNs {
    /// Makes the gateway namespace and the LAN link to the node's (the current) namespace.
    fn create(with_wan: bool) -> Self {
        let name = format!("seednode-natgw-{}", std::process::id());
        run("ip", &["netns", "add", &name]);
        let ns = Self { name };
        let n = ns.name.as_str();
        run("ip", &["link", "set", "lo", "up"]);
        run(
            "ip",
            &[
                "link", "add", "natlan0", "type", "veth", "peer", "name", "natgw0",
            ],
        );
        run("ip", &["link", "set", "natgw0", "netns", n]);
        run(
            "ip",
            &[
                "addr",
                "add",
                &format!("{NODE_LAN_IP}/24"),
                "dev",
                "natlan0",
            ],
        );
        run("ip", &["link", "set", "natlan0", "up"]);
        run("ip", &["route", "add", "default", "via", GATEWAY_LAN_IP]);
        run("ip", &["-n", n, "link", "set", "lo", "up"]);
        run(
            "ip",
            &[
                "-n",
                n,
                "addr",
                "add",
                &format!("{GATEWAY_LAN_IP}/24"),
                "dev",
                "natgw0",
            ],
        );
        run("ip", &["-n", n, "link", "set", "natgw0", "up"]);
        if with_wan {
            run(
                "ip",
                &[
                    "-n", n, "link", "add", "wan0", "type", "veth", "peer", "name", "wan1",
                ],
            );
            run(
                "ip",
                &[
                    "-n",
                    n,
                    "addr",
                    "add",
                    &format!("{EXTERNAL_IP}/24"),
                    "dev",
                    "wan0",
                ],
            );
            run("ip", &["-n", n, "link", "set", "wan0", "up"]);
            run("ip", &["-n", n, "link", "set", "wan1", "up"]);
        }
        ns
    }

    fn exec(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]);
        cmd
    }
}

impl Drop for GatewayNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.name])
            .status();
    }
}

/// The chains miniupnpd's nftables backend fills (names set in its config below).
const NFT_RULESET: &str = "table inet filter {
  chain forward { type filter hook forward priority 0; policy accept; jump forwardUPnP; }
  chain forwardUPnP { }
  chain prerouting { type nat hook prerouting priority -100; policy accept; jump UPnP; }
  chain postrouting { type nat hook postrouting priority 100; policy accept; jump UPnPPost; }
  chain UPnP { }
  chain UPnPPost { }
}
";

/// miniupnpd's permission rules (`allow|deny EXT_PORTS LAN_NET INT_PORTS`, first match wins) that
/// let the LAN map any port above 1023.
const ALLOW_LAN: &str =
    "allow 1024-65535 192.168.77.0/24 1024-65535\ndeny 0-65535 0.0.0.0/0 0-65535\n";
/// Starts miniupnpd in `gw` with UPnP IGD and NAT-PMP on and the given permission rules; waits
/// until its HTTP server answers.
fn start_miniupnpd(
    gw: &GatewayNs,
    dir: &Path,
    permissions: &str,
    deadline: Deadline,
) -> (ChildGuard, PathBuf, PathBuf) {
    let rules = dir.join("rules.nft");
    std::fs::write(&rules, NFT_RULESET).unwrap();
    let status = gw
        .exec("nft")
        .arg("-f")
        .arg(&rules)
        .status()
        .expect("run nft");
    assert!(status.success(), "nft -f {} failed", rules.display());
    let leases = dir.join("upnp.leases");
    let conf = dir.join("miniupnpd.conf");
    std::fs::write(
        &conf,
        format!(
            "ext_ifname=wan0\nlistening_ip=natgw0\nport={MINIUPNPD_HTTP_PORT}\nenable_upnp=yes\n\
             enable_natpmp=yes\nsecure_mode=yes\nsystem_uptime=no\nlease_file={}\n\
             upnp_table_name=filter\nupnp_nat_table_name=filter\nupnp_forward_chain=forwardUPnP\n\
             upnp_nat_chain=UPnP\nupnp_nat_postrouting_chain=UPnPPost\n\
             uuid=3a1bd2c4-5e6f-4a7b-8c9d-0e1f2a3b4c5d\n{permissions}",
            leases.display()
        ),
    )
    .unwrap();
    let log = dir.join("miniupnpd.log");
    let mut cmd = gw.exec("miniupnpd");
    // A pid file of its own: miniupnpd refuses to start while the default one names a live
    // process (the other tests' gateways run at the same time).
    cmd.arg("-f")
        .arg(&conf)
        .arg("-P")
        .arg(dir.join("miniupnpd.pid"))
        .arg("-d")
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(dir.join("miniupnpd.stderr")).unwrap());
    let child = ChildGuard::spawn("miniupnpd", &mut cmd);
    let addr: SocketAddr = format!("{GATEWAY_LAN_IP}:{MINIUPNPD_HTTP_PORT}")
        .parse()
        .unwrap();
    while TcpStream::connect_timeout(&addr, POLL).is_err() {
        deadline.remaining("miniupnpd's HTTP server answering");
        thread::sleep(POLL);
    }
    (child, leases, log)
}

/// The node under test: SIGTERM on request, killed and reaped on drop.
struct Node(std::process::Child);

impl Node {
    /// Sends SIGTERM and waits up to `timeout` for the exit; true if it exited.
    fn terminate(&mut self, timeout: Duration) -> bool {
        run("kill", &["-TERM", &self.0.id().to_string()]);
        let end = Instant::now() + timeout;
        loop {
            match self.0.try_wait() {
                Ok(Some(_)) => return true,
                Ok(None) if Instant::now() >= end => return false,
                Ok(None) => thread::sleep(POLL),
                Err(e) => panic!("waiting for seednode: {e}"),
            }
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// Starts `seednode seed` on every interface with NAT mapping on and a short lease.
fn start_node(dir: &Path) -> (Node, PathBuf, String) {
    let file = dir.join("payload.bin");
    write_random_file(&file, 200_000, 15);
    let log = dir.join("seednode.stderr");
    let out = dir.join("seednode.stdout");
    let mut cmd = Command::new(seednode_bin());
    cmd.arg("seed")
        .arg(&file)
        .args(["--listen", &format!(":{PORT}"), "--no-dht"])
        .args(["--nat-lease", &LEASE_SECS.to_string()])
        .env_remove("SEEDNODE_NO_NAT")
        .env("RUST_LOG", "info")
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&log).unwrap());
    let node = Node(cmd.stdin(Stdio::null()).spawn().expect("start seednode"));
    (node, log, out.display().to_string())
}

/// One HTTP/1.0 GET to the node over loopback; the body.
fn http_get(path: &str) -> Option<Vec<u8>> {
    let mut s = TcpStream::connect(("127.0.0.1", PORT)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let at = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    Some(raw[at + 4..].to_vec())
}

fn status_json() -> serde_json::Value {
    http_get("/api/v1/status")
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(serde_json::Value::Null)
}

/// The mapping entry of `status` for `method` and `protocol`.
fn mapping<'a>(
    status: &'a serde_json::Value,
    method: &str,
    protocol: &str,
) -> &'a serde_json::Value {
    status["nat"]["mappings"]
        .as_array()
        .and_then(|ms| {
            ms.iter()
                .find(|m| m["method"] == method && m["protocol"] == protocol)
        })
        .unwrap_or(&serde_json::Value::Null)
}

/// The expiry (Unix seconds) of the lease file's line for `proto` on [`PORT`], if any.
fn lease_expiry(leases: &Path, proto: &str) -> Option<u64> {
    let text = std::fs::read_to_string(leases).ok()?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 5
            && f[0] == proto
            && f[1] == PORT.to_string()
            && f[2] == NODE_LAN_IP
            && f[3] == PORT.to_string())
        .then(|| f[4].parse().ok())
        .flatten()
    })
}

/// Longest wait for one condition; past it the test fails with the node's status and log.
const WAIT_LIMIT: Duration = Duration::from_secs(60);

/// Waits (bounded by `deadline` and [`WAIT_LIMIT`]) until `f` holds.
fn wait_until(deadline: Deadline, what: &str, mut f: impl FnMut() -> bool) {
    let limit = Instant::now() + WAIT_LIMIT;
    while !f() {
        deadline.remaining(what);
        assert!(
            Instant::now() < limit,
            "gave up waiting for {what}; status: {}",
            status_json()
        );
        thread::sleep(POLL);
    }
}

/// Percent-encodes every byte (for `info_hash` in an announce query).
fn percent(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("%{b:02X}")).collect()
}

fn info_hash_of(stdout: &str) -> Option<Vec<u8>> {
    let text = std::fs::read_to_string(stdout).ok()?;
    let hex = text.lines().find_map(|l| l.strip_prefix("info-hash: "))?;
    (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

#[test]
fn node_maps_its_ports_at_a_miniupnpd_gateway_renews_them_and_removes_them_on_sigterm() {
    if !in_netns(
        "node_maps_its_ports_at_a_miniupnpd_gateway_renews_them_and_removes_them_on_sigterm",
    ) {
        return;
    }
    require("miniupnpd", "miniupnpd miniupnpd-nftables");
    require("nft", "nftables");
    let deadline = Deadline::after(TEST_TIMEOUT);
    let tmp = TempDir::new().unwrap();
    let gw = GatewayNs::create(true);
    let (_miniupnpd, leases, gw_log) = start_miniupnpd(&gw, tmp.path(), ALLOW_LAN, deadline);
    let (mut node, node_log, node_out) = start_node(tmp.path());
    let context = |what: &str| {
        format!(
            "{what}\n--- seednode log\n{}\n--- miniupnpd log\n{}\n--- leases\n{}",
            log_tail(&node_log),
            log_tail(&gw_log),
            std::fs::read_to_string(&leases).unwrap_or_default()
        )
    };

    // Mapped: both ports appear in the gateway's lease file and its nftables rules.
    wait_until(deadline, "the mappings in miniupnpd's lease file", || {
        lease_expiry(&leases, "TCP").is_some() && lease_expiry(&leases, "UDP").is_some()
    });
    let rules = gw
        .exec("nft")
        .args(["list", "chain", "inet", "filter", "UPnP"])
        .output()
        .unwrap();
    let rules = String::from_utf8_lossy(&rules.stdout).into_owned();
    let dnat = format!("dport {PORT} dnat ip to {NODE_LAN_IP}:{PORT}");
    assert_eq!(rules.matches(&dnat).count(), 2, "{}", context(&rules));

    // Both methods report mapped, with the external address, in the status API and /metrics.
    wait_until(deadline, "all four mappings reported as mapped", || {
        let s = status_json();
        ["upnp", "natpmp"].iter().all(|m| {
            ["tcp", "udp"]
                .iter()
                .all(|p| mapping(&s, m, p)["state"] == "mapped")
        })
    });
    let status = status_json();
    assert_eq!(status["nat"]["external_ip"], EXTERNAL_IP, "{status}");
    assert_eq!(
        mapping(&status, "upnp", "tcp")["external_port"],
        PORT,
        "{status}"
    );
    let metrics = String::from_utf8(http_get("/metrics").unwrap()).unwrap();
    for method in ["upnp", "natpmp"] {
        for protocol in ["tcp", "udp"] {
            let line = format!(
                "seednode_nat_mapping{{protocol=\"{protocol}\",method=\"{method}\",state=\"mapped\"}} 1"
            );
            assert!(metrics.contains(&line), "{line} missing:\n{metrics}");
        }
    }
    let log = std::fs::read_to_string(&node_log).unwrap();
    assert!(
        log.contains("NAT port mapped"),
        "{}",
        context("no mapping logged")
    );

    // The external address is what the built-in tracker lists for this node (compact peers,
    // BEP 23).
    let info_hash = info_hash_of(&node_out).expect("info-hash on stdout");
    let me: Vec<u8> = EXTERNAL_IP
        .split('.')
        .map(|o| o.parse::<u8>().unwrap())
        .chain(PORT.to_be_bytes())
        .collect();
    let query = format!(
        "/announce?info_hash={}&peer_id=-TT0001-natnatnatnat&port=7000&uploaded=0&downloaded=0&left=1&compact=1",
        percent(&info_hash)
    );
    let reply = http_get(&query).unwrap_or_default();
    assert!(
        reply.windows(me.len()).any(|w| w == me.as_slice()),
        "{}",
        context(&format!(
            "tracker reply lacks {EXTERNAL_IP}:{PORT}: {}",
            String::from_utf8_lossy(&reply)
        ))
    );
    // Renewed: the lease's expiry moves on (renewals come at half the lease), and the node
    // counts more than one grant per mapping.
    let first = lease_expiry(&leases, "TCP").unwrap();
    wait_until(deadline, "a renewal of the TCP lease", || {
        lease_expiry(&leases, "TCP").is_some_and(|e| e >= first + LEASE_SECS / 2)
    });
    wait_until(deadline, "a second grant of every mapping", || {
        let s = status_json();
        s["nat"]["mappings"]
            .as_array()
            .is_some_and(|ms| ms.len() == 4 && ms.iter().all(|m| m["grants"].as_u64() >= Some(2)))
    });

    // Removed on SIGTERM, within the node's exit bound.
    let exited = node.terminate(
        deadline
            .remaining("seednode's exit")
            .min(Duration::from_secs(10)),
    );
    assert!(exited, "{}", context("seednode did not exit on SIGTERM"));
    assert!(
        lease_expiry(&leases, "TCP").is_none() && lease_expiry(&leases, "UDP").is_none(),
        "{}",
        context("mappings left in the lease file after SIGTERM")
    );
    let rules = gw
        .exec("nft")
        .args(["list", "chain", "inet", "filter", "UPnP"])
        .output()
        .unwrap();
    let rules = String::from_utf8_lossy(&rules.stdout).into_owned();
    assert!(!rules.contains(&dnat), "{}", context(&rules));
    let log = std::fs::read_to_string(&node_log).unwrap();
    assert!(
        log.contains("NAT port mapping removed"),
        "{}",
        context("no removal logged")
    );
}

#[test]
fn with_no_gateway_the_node_starts_says_so_and_serves() {
    if !in_netns("with_no_gateway_the_node_starts_says_so_and_serves") {
        return;
    }
    let deadline = Deadline::after(TEST_TIMEOUT);
    let tmp = TempDir::new().unwrap();
    // A LAN whose router runs nothing: no UPnP, no NAT-PMP.
    let _gw = GatewayNs::create(false);
    let (mut node, node_log, _) = start_node(tmp.path());
    wait_until(deadline, "the node's HTTP answering", || {
        http_get("/healthz").is_some()
    });
    wait_until(deadline, "every mapping reported as no_gateway", || {
        let s = status_json();
        s["nat"]["mappings"]
            .as_array()
            .is_some_and(|ms| ms.len() == 4 && ms.iter().all(|m| m["state"] == "no_gateway"))
    });
    let log = std::fs::read_to_string(&node_log).unwrap();
    assert!(
        log.contains("no gateway answered"),
        "no 'no gateway' line:\n{}",
        log_tail(&node_log)
    );
    // Still serving: the HTTP front door and the peer port answer.
    assert!(http_get("/healthz").is_some(), "{}", log_tail(&node_log));
    let metrics = String::from_utf8(http_get("/metrics").unwrap()).unwrap();
    assert!(
        metrics.contains(
            "seednode_nat_mapping{protocol=\"tcp\",method=\"upnp\",state=\"no_gateway\"} 1"
        ),
        "{metrics}"
    );
    assert!(
        node.terminate(
            deadline
                .remaining("seednode's exit")
                .min(Duration::from_secs(10))
        ),
        "seednode did not exit on SIGTERM\n{}",
        log_tail(&node_log)
    );
}
