//! `seednode seed`: check paths, outputs and ports, then hash (or verify) each PATH, write or
//! reuse its .torrent, and serve everything from one event loop until SIGINT or SIGTERM.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use seednode_storage::{SafeRelPath, Storage, SymlinkPolicy};
use seednode_tracker::{Tracker, TrackerConfig};
use seednode_wire::InfoHash;
use seednode_wire::display::{escape_name, escape_path};
use seednode_wire::metainfo::Metainfo;
use seednode_wire::metainfo_v2::PieceMap;
use tracing::{info, warn};

use super::net::{
    bind, bind_udp, default_dht_state, new_dht, new_peer_id, primary_ip, random_secret,
};
use super::parse::Listen;
use super::torrent_file::{
    Plan, create_metainfo, create_options, magnet_of, open_storage, plan, read_torrent_file,
    trackers_of, verify_data, verify_for_reuse, write_atomically,
};
use super::{CliError, DEFAULT_SEED_PORT, SeedArgs};
use crate::limits::DEFAULT_DISK_THREADS;
use crate::reactor::{
    Have, ListenerKind, PieceCheck, Reactor, ReactorConfig, SeededTorrent, V2Torrent,
};

/// A torrent ready to seed: its metainfo, where its .torrent is, which pieces verified, its
/// data.
pub(crate) struct Prepared {
    pub(crate) meta: Metainfo,
    pub(crate) torrent_path: PathBuf,
    pub(crate) have: Vec<bool>,
    pub(crate) storage: Storage,
}

/// What one PATH will be seeded as, decided before any port is bound or byte hashed.
enum Source {
    /// `--torrent`: the given .torrent, its data found at `data`.
    Given {
        torrent: PathBuf,
        meta: Box<Metainfo>,
        data: PathBuf,
        storage: Storage,
    },
    /// A new or existing .torrent beside the data (or at `-o`).
    Planned { path: PathBuf, plan: Plan },
}

/// Finds the data of `meta` for `seed --torrent T PATH`: PATH itself (the torrent's own file or
/// directory), or PATH/<name> (the download directory that holds it, as other clients take).
/// Says which.
fn locate_data(
    path: &Path,
    meta: &Metainfo,
    symlinks: SymlinkPolicy,
) -> Result<(PathBuf, Storage), CliError> {
    let own = open_storage(path, meta, symlinks);
    let inside = SafeRelPath::new(std::slice::from_ref(&meta.info.name))
        .ok()
        .map(|rel| rel.under(path))
        .filter(|p| path.is_dir() && std::fs::symlink_metadata(p).is_ok());
    match (own, inside) {
        (Ok(storage), _) => {
            info!(data = %escape_path(path), "PATH is the torrent's own data");
            Ok((path.to_path_buf(), storage))
        }
        (Err(_), Some(inner)) => {
            let storage = open_storage(&inner, meta, symlinks).map_err(|e| {
                format!(
                    "{e} (looked in {} for {})",
                    escape_path(path),
                    escape_name(&meta.info.name)
                )
            })?;
            info!(data = %escape_path(&inner), "PATH is the directory that holds the torrent's data");
            Ok((inner, storage))
        }
        (Err(e), None) => Err(format!(
            "{e}; PATH must be the torrent's own {} or the directory that contains {}",
            if meta.info.multi_file {
                "directory"
            } else {
                "file"
            },
            escape_name(&meta.info.name)
        )),
    }
}

/// Checks every PATH, decides each one's torrent (reading a given or existing .torrent), and
/// checks outputs; nothing is hashed yet.
fn sources(args: &SeedArgs) -> Result<Vec<Source>, CliError> {
    let targs = &args.torrent_args;
    for path in &args.paths {
        std::fs::metadata(path).map_err(|e| format!("{}: {e}", escape_path(path)))?;
    }
    if let Some(t) = &args.torrent {
        let meta = read_torrent_file(t)?;
        let (data, storage) = locate_data(&args.paths[0], &meta, targs.symlinks.policy())?;
        return Ok(vec![Source::Given {
            torrent: t.clone(),
            meta: Box::new(meta),
            data,
            storage,
        }]);
    }
    args.paths
        .iter()
        .map(|path| {
            Ok(Source::Planned {
                path: path.clone(),
                plan: plan(targs, path)?,
            })
        })
        .collect()
}

/// Hashes or verifies one source; `trackers` go into a new torrent.
fn prepare(args: &SeedArgs, source: Source, trackers: &[String]) -> Result<Prepared, CliError> {
    let targs = &args.torrent_args;
    match source {
        Source::Given {
            torrent,
            meta,
            data,
            storage,
        } => {
            let have = verify_data(&meta, &storage, targs.threads())?;
            let good = have.iter().filter(|h| **h).count();
            if good == 0 {
                return Err(format!(
                    "{}: no piece matches {}; nothing to seed",
                    escape_path(&data),
                    escape_path(&torrent)
                ));
            }
            if good < have.len() {
                warn!(
                    good,
                    total = have.len(),
                    "some pieces fail verification; seeding the rest"
                );
            }
            Ok(Prepared {
                meta: *meta,
                torrent_path: torrent,
                have,
                storage,
            })
        }
        Source::Planned {
            path,
            plan: Plan::Reuse { out, meta },
        } => {
            let (storage, have) = verify_for_reuse(&path, &out, &meta, targs)?;
            info!(torrent = %escape_path(&out), "existing .torrent matches the data: reusing it as it is");
            Ok(Prepared {
                meta: *meta,
                torrent_path: out,
                have,
                storage,
            })
        }
        Source::Planned {
            path,
            plan: Plan::Create { out, survey },
        } => {
            let opts = create_options(targs, trackers);
            let meta = create_metainfo(&path, &opts, &survey)?;
            write_atomically(&out, &meta.to_bytes())?;
            let storage = open_storage(&path, &meta, targs.symlinks.policy())?;
            let have = vec![true; meta.info.pieces.len()];
            Ok(Prepared {
                meta,
                torrent_path: out,
                have,
                storage,
            })
        }
    }
}

/// The host put into announce URLs and the IP the tracker gives out for this node: the one
/// asked for, the listen IP, or (listening on every interface) the address of the interface
/// that reaches the internet, said once; offline, 127.0.0.1.
fn advertised(args: &SeedArgs, listen: SocketAddr) -> (String, Option<IpAddr>) {
    let host_of = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => format!("[{v6}]"),
        IpAddr::V4(v4) => v4.to_string(),
    };
    match (&args.announce_host, listen.ip()) {
        (Some(h), _) => match h.parse::<IpAddr>() {
            Ok(ip) => (host_of(ip), Some(ip)),
            Err(_) => (h.clone(), None),
        },
        // Every interface: the IPv4 address first (a tracker URL every client can reach), the
        // IPv6 one when the machine has no IPv4 route ([`other_family`] adds it to `x.pe`).
        (None, ip) if ip.is_unspecified() => {
            match primary_ip(false).or_else(|| ip.is_ipv6().then(|| primary_ip(true)).flatten()) {
                Some(primary) => {
                    info!(
                        "listening on every interface; announcing {primary}, the address of the \
                     interface that reaches the internet (--announce-host sets another)"
                    );
                    (host_of(primary), Some(primary))
                }
                None => {
                    warn!(
                        "listening on every interface, and no interface reaches the internet \
                     (offline?): announcing 127.0.0.1, reachable from this machine only \
                     (--announce-host sets another)"
                    );
                    (Ipv4Addr::LOCALHOST.to_string(), None)
                }
            }
        }
        (None, ip) => (host_of(ip), Some(ip)),
    }
}

/// The node's address in the other family than `advertised`, for `x.pe`: when it listens on
/// every interface of both (`[::]`) and was not told what to announce, the primary address of
/// the family `advertised` is not in (BEP 7: peers of both families).
fn other_family(args: &SeedArgs, listen: SocketAddr, advertised: Option<IpAddr>) -> Option<IpAddr> {
    if args.announce_host.is_some() || listen.ip() != IpAddr::from(std::net::Ipv6Addr::UNSPECIFIED)
    {
        return None;
    }
    let v6 = advertised.is_some_and(|ip| ip.is_ipv4());
    primary_ip(v6).filter(|ip| Some(*ip) != advertised)
}

pub(crate) fn seed(args: &SeedArgs) -> Result<(), CliError> {
    let targs = &args.torrent_args;
    if args.paths.len() > 1 && (args.torrent.is_some() || targs.output.is_some()) {
        return Err("--torrent and -o take a single PATH".into());
    }
    // Paths and outputs first, then ports, and only then the slow part: hashing.
    let sources = sources(args)?;
    let tracker_ca = match &args.tracker_ca {
        Some(path) => crate::reactor::https::load_tracker_ca(path).map_err(|e| e.to_string())?,
        None => Vec::new(),
    };
    let listen = Listen::resolve(args.listen, args.port, DEFAULT_SEED_PORT)?;
    let listener = bind(listen, "--listen or -p")?;
    let listen = listener.local_addr().map_err(|e| e.to_string())?;
    let http_listener = match args.http {
        Some(h) => Some(bind(
            Listen::resolve(Some(h), None, 0).and_then(|a| {
                if a.port() == 0 {
                    Err("--http needs a port, e.g. --http :8080".to_owned())
                } else {
                    Ok(a)
                }
            })?,
            "--http",
        )?),
        None => None,
    };
    let http_addr = match &http_listener {
        Some(l) => Some(l.local_addr().map_err(|e| e.to_string())?),
        None => None,
    };
    let udp = if args.no_udp && args.dht.no_dht && args.no_utp {
        None
    } else {
        let addr = match args.udp {
            Some(u) => {
                SocketAddr::new(u.ip.unwrap_or(listen.ip()), u.port.unwrap_or(listen.port()))
            }
            None => listen,
        };
        Some(bind_udp(
            addr,
            if args.udp.is_some() {
                "--udp"
            } else {
                "--listen or -p"
            },
        )?)
    };
    // Announces to external trackers leave from a socket of their own (not the tracker's).
    let announce_socket = bind_udp(
        SocketAddr::new(
            if listen.is_ipv6() {
                IpAddr::from(std::net::Ipv6Addr::UNSPECIFIED)
            } else {
                listen.ip()
            },
            0,
        ),
        "--listen",
    )?;

    let (host, advertised_ip) = advertised(args, listen);
    // The DHT's external address is only one asked for (or listened on), never a guess.
    let explicit_ip: Option<IpAddr> = match &args.announce_host {
        Some(h) => h.parse().ok(),
        None if listen.ip().is_unspecified() => None,
        None => Some(listen.ip()),
    };
    let tracker_port = http_addr.map_or(listen.port(), |a| a.port());
    let announce_url = format!("http://{host}:{tracker_port}/announce");
    let udp_announce_url = match udp.as_ref().filter(|_| !args.no_udp) {
        Some(u) => {
            let port = u.local_addr().map_err(|e| e.to_string())?.port();
            Some(format!("udp://{host}:{port}/announce"))
        }
        None => None,
    };
    let mut trackers = vec![announce_url.clone()];
    trackers.extend(udp_announce_url.iter().cloned());
    trackers.extend(targs.trackers.iter().cloned());
    let self_addr = SocketAddr::new(
        advertised_ip.unwrap_or(Ipv4Addr::LOCALHOST.into()),
        listen.port(),
    );
    let self_addrs: Vec<SocketAddr> = std::iter::once(self_addr)
        .chain(
            other_family(args, listen, advertised_ip).map(|ip| SocketAddr::new(ip, listen.port())),
        )
        .collect();
    // Every tracker a torrent names, except this node's own (it knows about itself).
    let own = [Some(announce_url.as_str()), udp_announce_url.as_deref()];
    // One torrent at a time: its parsed metainfo is dropped before the next is made, so the heap
    // never holds them all (what would stay resident after start-up).
    let mut ready = Vec::with_capacity(sources.len());
    for source in sources {
        let p = prepare(args, source, &trackers)?;
        let meta = &p.meta;
        println!("info-hash: {}", meta.info_hash);
        println!("magnet: {}", magnet_of(meta, &self_addrs));
        println!("torrent: {}", escape_path(&p.torrent_path));
        let listed = trackers_of(meta);
        if !listed.iter().any(|t| own.contains(&Some(t.as_str()))) {
            info!(
                torrent = %escape_path(&p.torrent_path),
                "the torrent does not name this node's tracker ({announce_url}): clients find \
                 the seed through {}the DHT or the magnet link",
                if listed.is_empty() { "" } else { "its own trackers, " }
            );
        }
        let trackers_shown = if listed.is_empty() {
            "none".to_owned()
        } else {
            listed.join(" ")
        };
        info!(info_hash = %meta.info_hash, name = %escape_name(&meta.info.name), pieces = meta.info.pieces.len(),
              bytes = meta.info.total_length(), trackers = %trackers_shown, "seeding");
        ready.push(seeded_torrent(p, args.super_seed, &own));
    }
    println!("listening: {listen}");
    if let Some(h) = http_addr {
        println!("http: {h}");
    }
    let _ = std::io::stdout().flush();

    let mut listeners = vec![(listener, ListenerKind::Shared)];
    if let Some(l) = http_listener {
        listeners.push((l, ListenerKind::HttpOnly));
    }
    let config = ReactorConfig {
        peer_id: new_peer_id(),
        peer_port: listen.port(),
        announce_ip: advertised_ip,
        upload_slots: args.upload_slots,
        global_upload_slots: args.global_upload_slots,
        upload_rate_bytes_per_sec: args.max_upload_rate,
        torrent_upload_rate_bytes_per_sec: args.max_upload_rate_per_torrent,
        max_connections: args.max_connections,
        max_connections_per_ip: args.max_connections_per_ip,
        max_peers_per_torrent: args.max_peers_per_torrent,
        disk_threads: DEFAULT_DISK_THREADS,
        data_path: args.data_path,
        cache_bytes: args.cache_mib.saturating_mul(1024 * 1024),
        access_list: None,
        secret: random_secret(),
        allowed_hosts: Vec::new(),
        nostr_pubkeys: Vec::new(),
        content_root: None,
        lockout: crate::events::lockout::DEFAULT_LOCKOUT,
    };
    let tracker = Tracker::with_secret(TrackerConfig::default(), Instant::now(), random_secret());
    let dht = if args.dht.no_dht {
        None
    } else {
        let bootstrap = if args.dht.bootstrap.is_empty() {
            seednode_dht::DEFAULT_BOOTSTRAP_NODES
                .iter()
                .map(|s| (*s).to_owned())
                .collect()
        } else {
            args.dht.bootstrap.clone()
        };
        let state = args.dht.state.clone().or_else(default_dht_state);
        Some(new_dht(
            &bootstrap,
            state,
            explicit_ip,
            explicit_ip.unwrap_or(listen.ip()),
        ))
    };
    let mut reactor = Reactor::new(
        listeners,
        udp,
        !args.no_udp,
        dht,
        Some(announce_socket),
        tracker,
        config,
    )
    .map_err(|e| format!("starting the event loop: {e}"))?;
    reactor.set_summary_interval(Some(Duration::from_secs(args.summary_interval)));
    reactor.set_tracker_ca(tracker_ca);
    if !args.no_nat {
        crate::nat::attach(
            &mut reactor,
            listen,
            Duration::from_secs(args.nat_lease),
            args.announce_host.is_none(),
        );
    }
    if !args.no_utp {
        reactor.enable_utp(args.prefer_utp);
    }
    for (torrent, tiers) in ready {
        let info_hash = torrent.info_hash;
        reactor.add_torrent(torrent);
        if !tiers.is_empty() {
            reactor.announce_to(info_hash, &tiers);
        }
    }
    reactor.run().map_err(|e| format!("event loop failed: {e}"))
}

/// The reactor's view of a prepared torrent, and the external tracker tiers to announce it to
/// (BEP 12), with this node's own tracker URLs (`own`) left out.
pub(crate) fn seeded_torrent(
    prepared: Prepared,
    super_seed: bool,
    own: &[Option<&str>],
) -> (SeededTorrent, Vec<Vec<String>>) {
    let Prepared {
        meta,
        have,
        storage,
        ..
    } = prepared;
    let v2 = meta.v2.as_ref().map(|v2| {
        Arc::new(V2Torrent {
            meta: v2.clone(),
            map: PieceMap::new(&v2.info),
        })
    });
    // A hybrid is also known by its truncated v2 info-hash (BEP 52).
    let aliases: Vec<InfoHash> = meta
        .info_hash_v2()
        .map(|h| h.truncated())
        .filter(|h| *h != meta.info_hash)
        .into_iter()
        .collect();
    let mut tiers: Vec<Vec<String>> = if meta.announce_list.is_empty() {
        meta.announce.iter().map(|a| vec![a.clone()]).collect()
    } else {
        meta.announce_list.clone()
    };
    for tier in &mut tiers {
        tier.retain(|url| !own.contains(&Some(url.as_str())));
    }
    tiers.retain(|t| !t.is_empty());
    let torrent = SeededTorrent {
        info_hash: meta.info_hash,
        name: meta.info.name.clone().into_boxed_str(),
        storage: Arc::new(storage),
        piece_length: meta.info.piece_length,
        total_length: meta.info.total_length(),
        have: Have::from_flags(&have),
        info_bytes: meta.info_bytes.clone(),
        piece_check: piece_check(&meta, v2.as_ref()),
        v2,
        aliases,
        private: meta.info.private,
        super_seed,
    };
    (torrent, tiers)
}

/// How pieces read for sending are checked: SHA-1 for torrents with a v1 side, the merkle piece
/// layers for v2-only ones.
fn piece_check(meta: &Metainfo, v2: Option<&Arc<V2Torrent>>) -> PieceCheck {
    use sha1::Digest;
    match v2.filter(|_| !meta.has_v1()) {
        Some(v2) => {
            let v2 = Arc::clone(v2);
            // A v2 piece read from storage may end in padding (a file's last piece, BEP 52):
            // the hash covers the file bytes; the padding must be zeros.
            Arc::new(move |piece, data| {
                v2.map
                    .locate(piece)
                    .and_then(|loc| {
                        let (file_data, padding) =
                            data.split_at_checked(usize::try_from(loc.data_len).ok()?)?;
                        if padding.iter().any(|b| *b != 0) {
                            return Some(false);
                        }
                        v2.meta.verify_piece(&loc, file_data)
                    })
                    .unwrap_or(false)
            })
        }
        None => {
            // A view into the info dictionary's `pieces` string: no second copy of the hashes.
            let hashes = meta.piece_hashes();
            Arc::new(move |piece, data| {
                usize::try_from(piece)
                    .ok()
                    .and_then(|i| hashes.get(i.checked_mul(20)?..i.checked_mul(20)? + 20))
                    .is_some_and(|h| sha1::Sha1::digest(data)[..] == h[..])
            })
        }
    }
}
