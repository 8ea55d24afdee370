//! `seednode tracker` and `seednode dht`: the tracker or a DHT node alone.

use std::io::Write;
use std::time::Instant;

use seednode_tracker::access::AccessMode;
use seednode_tracker::{Tracker, TrackerConfig};
use seednode_wire::InfoHash;
use tracing::info;

use super::net::{bind, bind_udp, new_dht, new_peer_id, random_secret};
use super::parse::Listen;
use super::{CliError, DEFAULT_DHT_PORT, DEFAULT_TRACKER_PORT, DhtNodeArgs, TrackerArgs};
use crate::limits::{
    DEFAULT_GLOBAL_UPLOAD_SLOTS, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_CONNECTIONS_PER_IP,
    DEFAULT_MAX_PEERS_PER_TORRENT, DEFAULT_UPLOAD_SLOTS,
};
use crate::reactor::{DataPath, ListenerKind, Reactor, ReactorConfig};

pub(crate) fn tracker(args: &TrackerArgs) -> Result<(), CliError> {
    let listen = Listen::resolve(args.listen, args.port, DEFAULT_TRACKER_PORT)?;
    let access_list = match (&args.allow, &args.deny) {
        (Some(f), _) => Some((AccessMode::Allow, f.clone())),
        (None, Some(f)) => Some((AccessMode::Deny, f.clone())),
        (None, None) => None,
    };
    if let Some((_, path)) = &access_list {
        // A list that cannot be read at start is an error, not an open tracker.
        std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let http = bind(listen, "--listen")?;
    let http_addr = http.local_addr().map_err(|e| e.to_string())?;
    let udp_addr = match args.udp {
        Some(u) => Listen::resolve(Some(u), None, http_addr.port())?,
        None => http_addr,
    };
    let udp = bind_udp(udp_addr, "--udp")?;
    let udp_addr = udp.local_addr().map_err(|e| e.to_string())?;
    println!("http: {http_addr}");
    println!("udp: {udp_addr}");
    let _ = std::io::stdout().flush();
    let config = ReactorConfig {
        peer_id: new_peer_id(),
        peer_port: http_addr.port(),
        announce_ip: None,
        upload_slots: DEFAULT_UPLOAD_SLOTS,
        global_upload_slots: DEFAULT_GLOBAL_UPLOAD_SLOTS,
        upload_rate_bytes_per_sec: 0,
        torrent_upload_rate_bytes_per_sec: 0,
        max_connections: args.max_connections,
        max_connections_per_ip: args.max_connections,
        max_peers_per_torrent: DEFAULT_MAX_PEERS_PER_TORRENT,
        disk_threads: 1,
        data_path: DataPath::Sendfile,
        cache_bytes: 0,
        access_list: access_list.clone(),
        secret: random_secret(),
        allowed_hosts: Vec::new(),
        nostr_pubkeys: Vec::new(),
        content_root: None,
        lockout: crate::events::lockout::DEFAULT_LOCKOUT,
    };
    let tracker_config = TrackerConfig {
        open: true,
        ..TrackerConfig::default()
    };
    let tracker = Tracker::with_secret(tracker_config, Instant::now(), random_secret());
    let mut reactor = Reactor::new(
        vec![(http, ListenerKind::HttpOnly)],
        Some(udp),
        true,
        None,
        None,
        tracker,
        config,
    )
    .map_err(|e| format!("starting the event loop: {e}"))?;
    if access_list.is_some() {
        reactor.reload_access_list();
    }
    info!(http = %http_addr, udp = %udp_addr, "tracker running");
    reactor.run().map_err(|e| format!("event loop failed: {e}"))
}

pub(crate) fn dht_node(args: &DhtNodeArgs) -> Result<(), CliError> {
    let listen = Listen::resolve(args.listen, args.port, DEFAULT_DHT_PORT)?;
    let udp = bind_udp(listen, "--listen")?;
    let addr = udp.local_addr().map_err(|e| e.to_string())?;
    let dht = new_dht(&args.bootstrap, args.state.clone(), None, listen.ip());
    println!("node-id: {}", InfoHash(dht.0.node_id().0));
    println!("dht: {addr}");
    let _ = std::io::stdout().flush();
    let config = ReactorConfig {
        peer_id: new_peer_id(),
        peer_port: addr.port(),
        announce_ip: None,
        upload_slots: DEFAULT_UPLOAD_SLOTS,
        global_upload_slots: DEFAULT_GLOBAL_UPLOAD_SLOTS,
        upload_rate_bytes_per_sec: 0,
        torrent_upload_rate_bytes_per_sec: 0,
        max_connections: DEFAULT_MAX_CONNECTIONS,
        max_connections_per_ip: DEFAULT_MAX_CONNECTIONS_PER_IP,
        max_peers_per_torrent: DEFAULT_MAX_PEERS_PER_TORRENT,
        disk_threads: 1,
        data_path: DataPath::Sendfile,
        cache_bytes: 0,
        access_list: None,
        secret: random_secret(),
        allowed_hosts: Vec::new(),
        nostr_pubkeys: Vec::new(),
        content_root: None,
        lockout: crate::events::lockout::DEFAULT_LOCKOUT,
    };
    let tracker = Tracker::new(TrackerConfig::default());
    let mut reactor = Reactor::new(
        Vec::new(),
        Some(udp),
        false,
        Some(dht),
        None,
        tracker,
        config,
    )
    .map_err(|e| format!("starting the event loop: {e}"))?;
    reactor.run().map_err(|e| format!("event loop failed: {e}"))
}
