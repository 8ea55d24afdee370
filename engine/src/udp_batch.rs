//! Replies to UDP datagrams sent in batches with `sendmmsg(2)`: one system call for up to
//! [`MAX_BATCH`] datagrams instead of one each (the UDP tracker answers every request it accepts).

use std::io;
use std::io::IoSlice;
use std::net::SocketAddr;
use std::os::fd::AsFd;

use rustix::net::{MMsgHdr, SendAncillaryBuffer, SendFlags, SocketAddrAny, sendmmsg};

/// Datagrams sent per `sendmmsg` at most (Linux caps a call at 1024; a few dozen already make
/// the per-call cost negligible).
pub(crate) const MAX_BATCH: usize = 64;

/// Queued datagrams; the buffers are kept and reused between batches.
#[derive(Debug, Default)]
pub(crate) struct UdpBatch {
    dsts: Vec<SocketAddr>,
    bufs: Vec<Vec<u8>>,
    len: usize,
}

impl UdpBatch {
    /// Whether [`MAX_BATCH`] datagrams are queued.
    pub(crate) fn is_full(&self) -> bool {
        self.len >= MAX_BATCH
    }

    /// Queues a copy of `payload` for `dst`.
    pub(crate) fn push(&mut self, dst: SocketAddr, payload: &[u8]) {
        if self.len == self.bufs.len() {
            self.bufs.push(Vec::with_capacity(payload.len()));
            self.dsts.push(dst);
        }
        self.dsts[self.len] = dst;
        let buf = &mut self.bufs[self.len];
        buf.clear();
        buf.extend_from_slice(payload);
        self.len += 1;
    }

    /// Sends everything queued. Datagrams the kernel does not take (a full socket buffer) are
    /// dropped: UDP senders retransmit (BEP 15, BEP 5).
    ///
    /// # Errors
    /// The error of the first datagram that failed for another reason than a full buffer.
    pub(crate) fn flush(&mut self, socket: impl AsFd) -> io::Result<()> {
        let mut first = 0;
        let result = loop {
            if first >= self.len {
                break Ok(());
            }
            let addrs: Vec<SocketAddrAny> = self.dsts[first..self.len]
                .iter()
                .map(|a| SocketAddrAny::from(*a))
                .collect();
            let iovs: Vec<[IoSlice<'_>; 1]> = self.bufs[first..self.len]
                .iter()
                .map(|b| [IoSlice::new(b)])
                .collect();
            let mut controls: Vec<SendAncillaryBuffer<'_, '_, '_>> = (first..self.len)
                .map(|_| SendAncillaryBuffer::default())
                .collect();
            let mut msgs: Vec<MMsgHdr<'_>> = addrs
                .iter()
                .zip(&iovs)
                .zip(controls.iter_mut())
                .map(|((addr, iov), control)| MMsgHdr::new_with_addr(addr, iov, control))
                .collect();
            match sendmmsg(socket.as_fd(), &mut msgs, SendFlags::empty()) {
                Ok(0) => break Ok(()),
                Ok(n) => first += n,
                Err(e) if e == rustix::io::Errno::INTR => {}
                Err(e) if e == rustix::io::Errno::AGAIN => break Ok(()),
                // The datagram at `first` is refused (e.g. an unreachable destination): skip it.
                Err(e) => {
                    first += 1;
                    if first >= self.len {
                        break Err(e.into());
                    }
                }
            }
        };
        self.len = 0;
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    #[test]
    fn sends_every_queued_datagram_to_its_destination() {
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let rx1 = UdpSocket::bind("127.0.0.1:0").unwrap();
        let rx2 = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut batch = UdpBatch::default();
        for i in 0..(MAX_BATCH as u8 + 5) {
            let dst = if i % 2 == 0 { &rx1 } else { &rx2 };
            batch.push(dst.local_addr().unwrap(), &[i; 10]);
            if batch.is_full() {
                batch.flush(&tx).unwrap();
            }
        }
        batch.flush(&tx).unwrap();
        let mut got = [0usize; 2];
        for (k, rx) in [&rx1, &rx2].into_iter().enumerate() {
            rx.set_read_timeout(Some(std::time::Duration::from_millis(200)))
                .unwrap();
            let mut buf = [0u8; 32];
            while let Ok((n, from)) = rx.recv_from(&mut buf) {
                assert_eq!(n, 10);
                assert_eq!(from, tx.local_addr().unwrap());
                assert_eq!(usize::from(buf[0]) % 2, k);
                got[k] += 1;
            }
        }
        assert_eq!(got[0] + got[1], MAX_BATCH + 5);
    }
}
