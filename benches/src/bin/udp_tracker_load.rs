//! A BEP 15 (UDP tracker) load generator: many simulated peers over many info-hashes send
//! connect, announce and scrape requests to one tracker, with a fixed number of requests in
//! flight, for a fixed time; it prints responses per second and latency percentiles.
//!
//! ```text
//! cargo run --release -p seednode-benches --bin udp_tracker_load -- --server 127.0.0.1:PORT
//!     [--duration SECS] [--torrents M] [--peers N] [--in-flight K] [--sockets S]
//!     [--mix CONNECT:ANNOUNCE:SCRAPE] [--scrape-hashes H] [--numwant W]
//!     [--seeder-percent P] [--timeout-ms T] [--first-ip 127.0.0.X] [--seed SEED] [--fill]
//! ```
//!
//! # The model
//!
//! - `S` sockets, each bound to its own loopback address (`--first-ip` and the next `S - 1`), each
//!   `connect`ed to the server. A tracker stores a peer under its source IP and announced port, so
//!   peer `i` belongs to socket `i % S` and announces port `1024 + i / S`: `N` peers are `N`
//!   distinct addresses (hence `N <= S * 64512`).
//! - Peer `i` is in one torrent, drawn from a Zipf law over the `M` info-hashes (swarm sizes as
//!   real trackers see them, `seednode::bench::swarm`), and is a seeder (`left = 0`) with
//!   probability `P` %. Its peer ID is derived from `i`. Info-hashes are derived from `--seed`.
//! - `K` request slots; slot `j` sends on socket `j % S`. A free slot sends the next request at
//!   once, of a kind drawn by the `--mix` weights: a connect (its reply refreshes the socket's
//!   connection ID), an announce of a random peer of that socket (event none, `numwant = W`), or a
//!   scrape of `H` random info-hashes. Until a socket has a connection ID its slots send connects.
//! - With `--fill`, every peer instead announces exactly once, in order (after its socket's
//!   connect), and the run ends when all have been answered (or `--duration` passes): it fills a
//!   tracker with all `N` peers, so that memory is compared at the same population.
//! - A reply is matched by its transaction ID (slot index and a per-slot sequence number); its
//!   latency is the time since the request was sent. A request unanswered after `T` ms counts as
//!   lost and its slot sends anew. Error replies (action 3) count as errors, not as answers.
//!
//! The generator is `seednode::bench::tracker_udp`, the same code as `seednode bench tracker
//! --udp`; this binary keeps the harnesses' options and RESULT line. It is one thread that never
//! blocks: it drains every socket (non-blocking), refills the free slots, and checks timeouts,
//! in a loop, so it uses a whole core. Pin it to a core of its own (`taskset -c 1`). It stops after `--duration` seconds; every buffer and table is sized
//! from the options, which are bounded (see the `MAX_*` constants).
//!
//! # Output
//!
//! A human summary on stderr, and one line on stdout:
//!
//! ```text
//! RESULT secs=.. sent=.. responses=.. rps=.. connects=.. announces=.. scrapes=.. errors=..
//!     lost=.. p50_us=.. p90_us=.. p99_us=.. p999_us=.. max_us=.. peers_per_announce=..
//!     client_cpu_s=..
//! ```
//!
//! `responses` counts connect, announce and scrape replies (not errors), received within the run.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::ExitCode;
use std::time::Duration;

use seednode::bench::limits::{
    MAX_IN_FLIGHT, MAX_INFO_HASHES, MAX_SCRAPE_HASHES, MAX_UDP_SOCKETS, PORTS_PER_SOURCE,
};
use seednode::bench::swarm::Swarms;
use seednode::bench::tracker_udp::{self, TrackerReport, UdpConfig};
use seednode_benches::{cli_main, parse_whole};

/// Longest `--duration`.
const MAX_DURATION: Duration = Duration::from_secs(3600);

const USAGE: &str = "\
usage: udp_tracker_load --server IP:PORT [OPTIONS]

Sends BEP 15 connect/announce/scrape requests from many simulated peers to one UDP tracker with
a fixed number in flight, for a fixed time; prints a summary on stderr and a RESULT line on
stdout. (The same generator as `seednode bench tracker --udp`.)

options:
  --server IP:PORT        the tracker (IPv4)
  --duration SECS         how long to send [default: 10]
  --torrents M            distinct info-hashes [default: 50000]
  --peers N               distinct peers (N <= sockets * 64512) [default: 500000]
  --in-flight K           requests outstanding at any time [default: 128]
  --sockets S             client sockets, each on its own IP from --first-ip [default: 16]
  --first-ip 127.0.0.X    address of the first socket [default: 127.0.1.1]
  --mix C:A:S             weights of connect, announce, scrape requests [default: 10:80:10]
  --scrape-hashes H       info-hashes per scrape (1..=64) [default: 10]
  --numwant W             peers wanted per announce [default: 30]
  --seeder-percent P      share of peers that are seeders [default: 75]
  --timeout-ms T          a request unanswered this long is lost [default: 1000]
  --seed SEED             seed of the info-hashes and the request stream [default: 1]
  --fill                  announce every peer once, in order, then stop (fills the tracker)
  -h, --help              this text";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    cli_main("udp_tracker_load", USAGE, Options::parse(&args), |opts| {
        let report = run(&opts)?;
        eprint!("{}", human(&report, &opts));
        println!("{}", result_line(&report));
        Ok(())
    })
}

/// Command-line options: the library's configuration and the torrent count.
struct Options {
    config: UdpConfig,
    torrents: usize,
}

impl Options {
    fn parse(args: &[String]) -> Result<Option<Self>, String> {
        let mut o = UdpConfig {
            server: SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0),
            duration: Duration::from_secs(10),
            peers: 500_000,
            in_flight: 128,
            sockets: 16,
            first_source: Ipv4Addr::new(127, 0, 1, 1),
            mix: [10, 80, 10],
            scrape_hashes: 10,
            seed: 1,
            fill: false,
            numwant: 30,
            seeder_percent: 75,
            timeout: Duration::from_millis(1000),
        };
        let mut torrents: u64 = 50_000;
        let mut server = None;
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            if flag == "-h" || flag == "--help" {
                return Ok(None);
            }
            if flag == "--fill" {
                o.fill = true;
                continue;
            }
            let value = it
                .next()
                .ok_or_else(|| format!("{flag} needs a value"))?
                .as_str();
            let num = |v: &str| parse_whole(flag, v);
            match flag.as_str() {
                "--server" => {
                    server = Some(
                        value
                            .parse::<SocketAddrV4>()
                            .map_err(|_| format!("--server: not an IPv4 IP:PORT: {value:?}"))?,
                    );
                }
                "--duration" => o.duration = Duration::from_secs(num(value)?),
                "--torrents" => torrents = num(value)?,
                "--peers" => o.peers = num(value)?,
                "--in-flight" => o.in_flight = usize::try_from(num(value)?).unwrap_or(usize::MAX),
                "--sockets" => o.sockets = usize::try_from(num(value)?).unwrap_or(usize::MAX),
                "--first-ip" => {
                    o.first_source = value
                        .parse()
                        .map_err(|_| format!("--first-ip: not an IPv4 address: {value:?}"))?;
                }
                "--mix" => {
                    let parts: Vec<&str> = value.split(':').collect();
                    if parts.len() != 3 {
                        return Err(format!("--mix: expected C:A:S, got {value:?}"));
                    }
                    for (w, p) in o.mix.iter_mut().zip(parts) {
                        *w = u32::try_from(num(p)?).map_err(|_| "--mix: weight too large")?;
                    }
                }
                "--scrape-hashes" => {
                    o.scrape_hashes = usize::try_from(num(value)?).unwrap_or(usize::MAX);
                }
                "--numwant" => {
                    o.numwant = u32::try_from(num(value)?).map_err(|_| "--numwant: too large")?;
                }
                "--seeder-percent" => o.seeder_percent = num(value)?,
                "--timeout-ms" => o.timeout = Duration::from_millis(num(value)?),
                "--seed" => o.seed = num(value)?,
                _ => return Err(format!("unknown option {flag}")),
            }
        }
        o.server = server.ok_or("--server IP:PORT is required")?;
        if o.duration.is_zero() || o.duration > MAX_DURATION {
            return Err(format!("--duration must be 1..={}", MAX_DURATION.as_secs()));
        }
        if torrents == 0 || torrents > MAX_INFO_HASHES as u64 {
            return Err(format!("--torrents must be 1..={MAX_INFO_HASHES}"));
        }
        if o.sockets == 0 || o.sockets > MAX_UDP_SOCKETS {
            return Err(format!("--sockets must be 1..={MAX_UDP_SOCKETS}"));
        }
        let max_peers = o.sockets as u64 * PORTS_PER_SOURCE;
        if o.peers < o.sockets as u64 || o.peers > max_peers {
            return Err(format!(
                "--peers must be {}..={max_peers} with {} sockets",
                o.sockets, o.sockets
            ));
        }
        if o.in_flight == 0 || o.in_flight > MAX_IN_FLIGHT {
            return Err(format!("--in-flight must be 1..={MAX_IN_FLIGHT}"));
        }
        if o.mix.iter().all(|w| *w == 0) {
            return Err("--mix: at least one weight must be positive".into());
        }
        if o.scrape_hashes == 0 || o.scrape_hashes > MAX_SCRAPE_HASHES {
            return Err(format!("--scrape-hashes must be 1..={MAX_SCRAPE_HASHES}"));
        }
        if o.seeder_percent > 100 {
            return Err("--seeder-percent must be 0..=100".into());
        }
        if o.timeout.is_zero() {
            return Err("--timeout-ms must be positive".into());
        }
        let last = u32::from(o.first_source).checked_add(o.sockets as u32 - 1);
        if last.is_none_or(|l| Ipv4Addr::from(l).octets()[0] != o.first_source.octets()[0]) {
            return Err("--first-ip leaves no room for --sockets addresses".into());
        }
        Ok(Some(Self {
            config: o,
            torrents: usize::try_from(torrents).unwrap_or(usize::MAX),
        }))
    }
}

fn run(o: &Options) -> Result<TrackerReport, String> {
    let swarms = Swarms::generated(o.torrents, o.config.seed);
    let report = tracker_udp::run(&o.config, &swarms, &mut |_| {})?;
    if report.responses() == 0 {
        return Err(format!(
            "no response from {} in {:.1} s ({} requests sent, {} errors)",
            o.config.server, report.secs, report.sent, report.error_responses
        ));
    }
    Ok(report)
}

fn us(ms: f64) -> u64 {
    (ms * 1000.0).round() as u64
}

/// The RESULT line the harnesses parse (udp_tracker_compare).
fn result_line(r: &TrackerReport) -> String {
    let mut s = format!(
        "RESULT secs={:.3} sent={} responses={} rps={:.1} connects={} announces={} scrapes={} \
         errors={} lost={} stray={} p50_us={} p90_us={} p99_us={} p999_us={} max_us={} \
         peers_per_announce={:.2}",
        r.secs,
        r.sent,
        r.responses(),
        r.responses_per_s,
        r.connects,
        r.announces,
        r.scrapes,
        r.error_responses,
        r.timeouts,
        r.malformed,
        us(r.latency_p50_ms),
        us(r.latency_p90_ms),
        us(r.latency_p99_ms),
        r.latency_p999_us,
        r.latency_max_us,
        r.peers_per_announce,
    );
    if let Some(cpu) = r.generator_cpu_secs {
        s.push_str(&format!(" client_cpu_s={cpu:.3}"));
    }
    s
}

fn human(r: &TrackerReport, o: &Options) -> String {
    let c = &o.config;
    format!(
        "udp_tracker_load: {server}, {secs:.1} s, {k} in flight on {s} sockets, \
         {n} peers over {m} torrents, mix c:a:s {mc}:{ma}:{ms}\n\
         \x20 responses {resp} ({rps:.0}/s): connect {conn}, announce {ann} \
         ({ppa:.1} peers each), scrape {scr}; errors {err}, lost {lost}, stray {stray}\n\
         \x20 latency us: p50 {p50} p90 {p90} p99 {p99} p99.9 {p999} max {max}\n\
         \x20 generator CPU-s {cpu}\n",
        server = c.server,
        secs = r.secs,
        k = c.in_flight,
        s = c.sockets,
        n = c.peers,
        m = o.torrents,
        mc = c.mix[0],
        ma = c.mix[1],
        ms = c.mix[2],
        resp = r.responses(),
        rps = r.responses_per_s,
        conn = r.connects,
        ann = r.announces,
        ppa = r.peers_per_announce,
        scr = r.scrapes,
        err = r.error_responses,
        lost = r.timeouts,
        stray = r.malformed,
        p50 = us(r.latency_p50_ms),
        p90 = us(r.latency_p90_ms),
        p99 = us(r.latency_p99_ms),
        p999 = r.latency_p999_us,
        max = r.latency_max_us,
        cpu = r
            .generator_cpu_secs
            .map_or_else(|| "unknown".to_string(), |c| format!("{c:.2}")),
    )
}
