//! Connection deadlines: handshake, HTTP, idle peers and keep-alives, one heap entry per
//! connection.

use std::cmp::Reverse;
use std::time::Instant;

use bytes::Bytes;

use super::Reactor;
use super::conn::ConnState;
use super::metrics::CloseReason;
use crate::limits::{
    HTTP_IDLE_TIMEOUT, HTTP_SEND_STALL_TIMEOUT, HTTP_TIMEOUT, KEEPALIVE_INTERVAL, PEER_IDLE_TIMEOUT,
};

impl Reactor {
    pub(super) fn run_timers(&mut self, now: Instant) {
        while let Some(Reverse((at, key, generation))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(conn) = self.conns.get(key) else {
                continue;
            };
            if conn.generation != generation {
                continue;
            }
            let next = match &conn.state {
                ConnState::Sniffing | ConnState::Mse(_) | ConnState::Handshake { .. } => {
                    self.close(key, CloseReason::HandshakeTimeout);
                    continue;
                }
                ConnState::TrackerFetch { .. } => {
                    if now.duration_since(conn.accepted) >= HTTP_TIMEOUT {
                        self.close(key, CloseReason::HttpTimeout);
                        continue;
                    }
                    conn.accepted + HTTP_TIMEOUT
                }
                ConnState::Http { since, .. } | ConnState::HttpBody { since, .. } => {
                    // A response on its way: it must keep moving. Otherwise a request head (or
                    // body) must arrive within HTTP_TIMEOUT of its first byte being awaited
                    // (slowloris, SECURITY.md TH8), and an idle keep-alive connection lasts
                    // HTTP_IDLE_TIMEOUT.
                    let at = if !conn.out.is_empty() {
                        conn.last_progress + HTTP_SEND_STALL_TIMEOUT
                    } else if conn.rbuf.is_empty() && matches!(conn.state, ConnState::Http { .. }) {
                        *since + HTTP_IDLE_TIMEOUT
                    } else {
                        *since + HTTP_TIMEOUT
                    };
                    if now >= at {
                        self.close(key, CloseReason::HttpTimeout);
                        continue;
                    }
                    at
                }
                ConnState::Upload { since, owner, .. } => {
                    // The header (token) first, within its own deadline; the whole torrent of
                    // an authenticated upload within the longer one.
                    let limit = if owner.is_some() {
                        super::upload::UPLOAD_REQUEST_TIMEOUT
                    } else {
                        super::upload::UPLOAD_HEADER_TIMEOUT
                    };
                    let at = *since + limit;
                    if now >= at {
                        self.close(key, CloseReason::HttpTimeout);
                        continue;
                    }
                    at
                }
                ConnState::UploadWaiting { since, .. } => {
                    let at = *since + super::upload::UPLOAD_COMMIT_TIMEOUT;
                    if now >= at {
                        self.close(key, CloseReason::HttpTimeout);
                        continue;
                    }
                    at
                }
                ConnState::HttpWaiting { since, .. } => {
                    let at = *since + HTTP_SEND_STALL_TIMEOUT;
                    if now >= at {
                        self.close(key, CloseReason::HttpTimeout);
                        continue;
                    }
                    at
                }
                ConnState::Closing => {
                    let at = (conn.last_progress + HTTP_SEND_STALL_TIMEOUT)
                        .max(conn.accepted + HTTP_TIMEOUT);
                    if now >= at {
                        self.close(key, CloseReason::HttpTimeout);
                        continue;
                    }
                    at
                }
                ConnState::Peer { session, .. } => {
                    let idle_at = session.last_recv + PEER_IDLE_TIMEOUT;
                    if now >= idle_at {
                        self.close(key, CloseReason::IdleTimeout);
                        continue;
                    }
                    let keepalive_at = session.last_send + KEEPALIVE_INTERVAL;
                    if now >= keepalive_at {
                        self.queue(key, Bytes::from_static(&[0, 0, 0, 0]));
                        self.flush(key);
                        now + KEEPALIVE_INTERVAL
                    } else {
                        idle_at.min(keepalive_at)
                    }
                }
            };
            self.timers.push(Reverse((next, key, generation)));
        }
    }
}
