//! HTTP requests on the shared port (tracker announce and scrape, metrics).

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;

use super::Reactor;
use crate::http;

impl Reactor {
    pub(super) fn serve_http(&mut self, key: usize, now: Instant, req: &http::Request) -> Bytes {
        let head = req.method == "HEAD";
        if req.method != "GET" && !head {
            return http::error(405);
        }
        let Some(conn) = self.conns.get(key) else {
            return http::error(503);
        };
        match req.path.as_str() {
            "/scrape" => {
                let body = self.tracker.http_scrape(now, &req.query);
                http::response(200, "text/plain", &body, !head)
            }
            "/metrics" => {
                let body = self.metrics();
                http::response(200, "text/plain; version=0.0.4", body.as_bytes(), !head)
            }
            "/announce" => {
                let ip = self.config.announce_ip.unwrap_or_else(|| conn.local.ip());
                let me = SocketAddr::new(ip, self.config.peer_port);
                let body = self
                    .tracker
                    .http_announce(now, conn.remote, Some(me), &req.query);
                http::response(200, "text/plain", &body, !head)
            }
            _ => http::error(404),
        }
    }
}
