//! The loop's side of NAT port mapping (`crate::nat`): reads what the worker learnt when it wakes
//! the loop, puts the external address into announces, and reports the mappings on `/metrics` and
//! `GET /api/v1/status`.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use serde_json::json;
use tracing::info;

use super::Reactor;
use crate::nat::{NatHandle, NatStatus, State};

/// The NAT worker and what the loop took from it.
#[derive(Debug)]
pub(crate) struct NatLink {
    handle: NatHandle,
    /// Whether the external address replaces the announced one (no `--announce-host`).
    use_external: bool,
    /// The external address last put into announces.
    applied: Option<IpAddr>,
    /// The latest status read from the worker.
    status: NatStatus,
    /// When the removal at shutdown must be over.
    stop_deadline: Option<Instant>,
}

impl Reactor {
    /// Hands the loop a started NAT worker; `use_external`: announce the gateway's external
    /// address (the operator set no `--announce-host`).
    pub(crate) fn set_nat(&mut self, handle: NatHandle, use_external: bool) {
        let status = handle.status();
        self.nat = Some(NatLink {
            handle,
            use_external,
            applied: None,
            status,
            stop_deadline: None,
        });
    }

    /// Reads the worker's status (on every waker event) and applies a new external address.
    pub(super) fn on_nat(&mut self) {
        let Some(link) = &mut self.nat else { return };
        link.status = link.handle.status();
        let Some(ip) = link.status.external_ip else {
            return;
        };
        if !link.use_external || link.applied == Some(ip) {
            return;
        }
        link.applied = Some(ip);
        info!(external_ip = %ip, "announcing the NAT gateway's external address");
        self.config.announce_ip = Some(ip);
        self.udp_self_addr = Some(SocketAddr::new(ip, self.config.peer_port));
    }

    /// Starts removing the mappings (shutdown); [`Self::nat_wait`] waits for it.
    pub(super) fn nat_begin_stop(&mut self) {
        if let Some(link) = &mut self.nat {
            link.handle.begin_stop();
            link.stop_deadline = Some(Instant::now() + crate::nat::SHUTDOWN_TIMEOUT);
        }
    }

    /// Waits (bounded by [`crate::nat::SHUTDOWN_TIMEOUT`] from [`Self::nat_begin_stop`]) for the
    /// mappings to be removed.
    pub(super) fn nat_wait(&mut self) {
        if let Some(link) = &mut self.nat {
            let deadline = link
                .stop_deadline
                .unwrap_or_else(|| Instant::now() + crate::nat::SHUTDOWN_TIMEOUT);
            link.handle.wait(deadline);
        }
    }

    /// `seednode_nat_mapping{protocol,method,state}` (1 for the current state of each mapping)
    /// and `seednode_nat_renewals_total`.
    pub(super) fn nat_metrics(&self, out: &mut String) {
        let Some(link) = &self.nat else { return };
        let _ = writeln!(
            out,
            "# HELP seednode_nat_mapping NAT port mappings (UPnP IGD, NAT-PMP) by state: 1 for the current one.\n# TYPE seednode_nat_mapping gauge"
        );
        for m in &link.status.mappings {
            for state in State::ALL {
                let _ = writeln!(
                    out,
                    "seednode_nat_mapping{{protocol=\"{}\",method=\"{}\",state=\"{}\"}} {}",
                    m.protocol.as_str(),
                    m.method.as_str(),
                    state.as_str(),
                    u8::from(m.state == state)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP seednode_nat_grants_total Mappings granted by the gateway (first requests and renewals).\n# TYPE seednode_nat_grants_total counter"
        );
        for m in &link.status.mappings {
            let _ = writeln!(
                out,
                "seednode_nat_grants_total{{protocol=\"{}\",method=\"{}\"}} {}",
                m.protocol.as_str(),
                m.method.as_str(),
                m.grants
            );
        }
    }

    /// The `nat` object of `GET /api/v1/status`: `null` when mapping is off.
    pub(super) fn nat_json(&self) -> serde_json::Value {
        let Some(link) = &self.nat else {
            return serde_json::Value::Null;
        };
        let s = &link.status;
        json!({
            "external_ip": s.external_ip.map(|ip| ip.to_string()),
            "port": s.port,
            "mappings": s.mappings.iter().map(|m| json!({
                "method": m.method.as_str(),
                "protocol": m.protocol.as_str(),
                "state": m.state.as_str(),
                "external_port": m.external_port,
                "lease_secs": m.lease_secs,
                "grants": m.grants,
                "error": m.detail,
            })).collect::<Vec<_>>(),
        })
    }
}
