//! The shared UDP socket: KRPC (BEP 5), BEP 15 tracker and uTP (BEP 29) datagrams, told apart by
//! their first byte.

use std::io;
use std::time::Instant;

use super::{MAX_DATAGRAMS_PER_WAKE, Reactor};

impl Reactor {
    /// Answers UDP tracker datagrams (BEP 15) until the socket is empty or the per-wake budget is
    /// used; returns true when datagrams may remain.
    pub(super) fn drain_udp(&mut self, now: Instant) -> bool {
        let me = self.udp_self_addr;
        let mut more = true;
        // Leechers that announced (dialled once the socket is drained).
        let mut announced = Vec::new();
        for _ in 0..MAX_DATAGRAMS_PER_WAKE {
            let Some(socket) = &self.udp else {
                return false;
            };
            // A dual-stack socket reports IPv4 senders as [::ffff:a.b.c.d]:p: every table
            // (DHT, uTP, tracker) keys them by their canonical form; replies to a plain IPv4
            // address leave a dual-stack socket as IPv4 (Linux `udpv6_sendmsg`).
            match socket
                .recv_from(&mut self.udp_rx)
                .map(|(n, src)| (n, seednode_wire::addr::canonical_addr(src)))
            {
                // KRPC messages are bencoded dictionaries (BEP 5); no BEP 15 packet starts so.
                Ok((n, src)) if n > 0 && self.udp_rx[0] == b'd' => {
                    let rx = std::mem::take(&mut self.udp_rx);
                    self.dht_datagram(now, src, &rx[..n]);
                    self.udp_rx = rx;
                    self.flush_dht(now);
                }
                // uTP (BEP 29): version 1, types 0-4 in the first byte; BEP 15 requests start
                // with 0x00 (connect) or a connection id whose top bit is set.
                Ok((n, src))
                    if self.utp.is_some() && seednode_utp::looks_like_utp(&self.udp_rx[..n]) =>
                {
                    let rx = std::mem::take(&mut self.udp_rx);
                    self.utp_datagram(now, src, &rx[..n]);
                    self.udp_rx = rx;
                }
                Ok((_, _)) if !self.udp_tracker => {}
                Ok((n, src)) => {
                    if self.tracker.handle_datagram(
                        now,
                        src,
                        me,
                        &self.udp_rx[..n],
                        &mut self.udp_tx,
                    ) {
                        // An announce answered as one (BEP 15: its connection id proved the
                        // source address) from a leecher: it may be worth dialling.
                        if self.udp_tx.get(..4) == Some(&1u32.to_be_bytes()[..])
                            && let Some(a) =
                                seednode_tracker::udp::packet::AnnounceRequest::new_checked(
                                    &self.udp_rx[..n],
                                )
                        {
                            // BEP 15 event 3 is `stopped`.
                            announced.push((
                                src.ip(),
                                a.port(),
                                a.info_hash(),
                                a.left(),
                                a.event() == 3,
                            ));
                        }
                        self.udp_out.push(src, &self.udp_tx);
                        if self.udp_out.is_full() {
                            let _ = self.udp_out.flush(socket);
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    more = false;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // ICMP errors from earlier sends surface here; they concern other datagrams.
                Err(_) => {}
            }
        }
        if let Some(socket) = &self.udp {
            // Replies that do not fit the socket buffer are dropped: clients retransmit (BEP 15).
            let _ = self.udp_out.flush(socket);
        }
        for (ip, port, info_hash, left, stopped) in announced {
            self.announced_here(now, ip, port, info_hash, left, stopped);
        }
        more
    }
}
