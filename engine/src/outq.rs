//! A connection's send queue: bytes in memory and ranges of files, written with `writev` and
//! `sendfile(2)` so that block payloads never pass through user space.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, IoSlice, Write};
use std::os::fd::AsFd;
use std::sync::Arc;

use bytes::Bytes;
use rustix::io::Errno;
use rustix::net::{SendAncillaryBuffer, SendFlags};

/// Most buffers handed to one `writev`.
const MAX_IOVECS: usize = 64;

/// Most bytes of a file range read into memory at once by [`OutQueue::write_with`]: one block.
const COPY_CHUNK_LEN: usize = 16 * 1024;

/// One queued piece of output.
#[derive(Debug)]
enum Chunk {
    /// Bytes in memory (messages, headers).
    Mem(Bytes),
    /// `len` bytes of `file` from `offset`, sent with `sendfile`.
    File {
        file: Arc<File>,
        offset: u64,
        len: usize,
    },
}

/// How a write attempt ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Written {
    /// The queue is empty.
    Drained,
    /// The socket is full; wait for writability.
    WouldBlock,
}

/// Why writing failed: the connection must be closed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WriteError {
    /// The socket failed.
    #[error("write error: {0}")]
    Socket(io::Error),
    /// A file ended before the range promised to the peer: the file was truncated after it was
    /// opened (SECURITY.md S5). The peer has a header for bytes that will never come.
    #[error("file shorter than expected while sending")]
    FileShrank,
    /// Reading the file failed.
    #[error("sendfile error: {0}")]
    File(io::Error),
}

/// The send queue of one connection.
#[derive(Debug, Default)]
pub(crate) struct OutQueue {
    chunks: VecDeque<Chunk>,
    bytes: usize,
}

impl OutQueue {
    /// Bytes waiting to be written.
    pub(crate) fn len(&self) -> usize {
        self.bytes
    }

    /// Whether nothing waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// Queues bytes.
    pub(crate) fn push_bytes(&mut self, bytes: Bytes) {
        if !bytes.is_empty() {
            self.bytes += bytes.len();
            self.chunks.push_back(Chunk::Mem(bytes));
        }
    }

    /// Queues `len` bytes of `file` starting at `offset`.
    pub(crate) fn push_file(&mut self, file: Arc<File>, offset: u64, len: usize) {
        if len > 0 {
            self.bytes += len;
            self.chunks.push_back(Chunk::File { file, offset, len });
        }
    }

    /// Writes until the queue is empty or the socket would block.
    ///
    /// # Errors
    /// [`WriteError`]; the caller closes the connection.
    pub(crate) fn write_to<S: Write + AsFd>(
        &mut self,
        socket: &mut S,
    ) -> Result<Written, WriteError> {
        loop {
            let step = match self.chunks.front() {
                None => return Ok(Written::Drained),
                Some(Chunk::File { .. }) => self.send_file(socket),
                Some(Chunk::Mem(_)) => self.write_mem(socket),
            };
            match step {
                Ok(()) => {}
                Err(WriteError::Socket(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Ok(Written::WouldBlock);
                }
                Err(WriteError::Socket(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Hands queued bytes, in order, to `write` (a uTP connection's send buffer), which returns
    /// how many it took; stops when it takes fewer than offered. File ranges are read into
    /// memory first (at most [`COPY_CHUNK_LEN`] at a time; only HTTP queues them, and uTP
    /// carries peer wire only, whose blocks come from the disk threads as bytes).
    ///
    /// # Errors
    /// [`WriteError::FileShrank`] or [`WriteError::File`] for a file range that cannot be read.
    pub(crate) fn write_with(
        &mut self,
        mut write: impl FnMut(&[u8]) -> usize,
    ) -> Result<Written, WriteError> {
        use std::os::unix::fs::FileExt;
        let mut copy = Vec::new();
        loop {
            match self.chunks.front_mut() {
                None => return Ok(Written::Drained),
                Some(Chunk::Mem(b)) => {
                    let n = write(b);
                    self.bytes -= n;
                    if n == b.len() {
                        self.chunks.pop_front();
                    } else {
                        let _ = b.split_to(n);
                        return Ok(Written::WouldBlock);
                    }
                }
                Some(Chunk::File { file, offset, len }) => {
                    copy.resize((*len).min(COPY_CHUNK_LEN), 0);
                    let got = file.read_at(&mut copy, *offset).map_err(WriteError::File)?;
                    if got == 0 {
                        return Err(WriteError::FileShrank);
                    }
                    let n = write(&copy[..got]);
                    *offset += n as u64;
                    *len -= n;
                    self.bytes -= n;
                    if *len == 0 {
                        self.chunks.pop_front();
                    } else if n < got {
                        return Ok(Written::WouldBlock);
                    }
                }
            }
        }
    }

    /// One `sendfile` of the file range at the front of the queue.
    fn send_file<S: AsFd>(&mut self, socket: &S) -> Result<(), WriteError> {
        let Some(Chunk::File { file, offset, len }) = self.chunks.front_mut() else {
            return Ok(());
        };
        match rustix::fs::sendfile(socket.as_fd(), file.as_fd(), Some(offset), *len) {
            Ok(0) => Err(WriteError::FileShrank),
            Ok(n) => {
                *len -= n;
                self.bytes -= n;
                if *len == 0 {
                    self.chunks.pop_front();
                }
                Ok(())
            }
            // These come from the socket; any other error is the file's.
            Err(e @ (Errno::AGAIN | Errno::INTR | Errno::PIPE | Errno::CONNRESET)) => {
                Err(WriteError::Socket(e.into()))
            }
            Err(e) => Err(WriteError::File(e.into())),
        }
    }

    /// One `sendmsg` of the in-memory chunks at the front of the queue. When a file range
    /// follows them (a `piece` header before its block), `MSG_MORE` keeps the header in the
    /// socket until the block joins it, so the two leave in one TCP segment instead of a 13-byte
    /// segment per block (the sockets run with Nagle off).
    fn write_mem<S: Write + AsFd>(&mut self, socket: &mut S) -> Result<(), WriteError> {
        let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
        let mut count = 0;
        for (slot, chunk) in slices.iter_mut().zip(&self.chunks) {
            let Chunk::Mem(b) = chunk else { break };
            *slot = IoSlice::new(b);
            count += 1;
        }
        let flags = if matches!(self.chunks.get(count), Some(Chunk::File { .. })) {
            SendFlags::MORE | SendFlags::NOSIGNAL
        } else {
            SendFlags::NOSIGNAL
        };
        let sent = rustix::net::sendmsg(
            socket.as_fd(),
            &slices[..count],
            &mut SendAncillaryBuffer::default(),
            flags,
        )
        .map_err(io::Error::from);
        let mut n = match sent {
            Ok(0) => {
                return Err(WriteError::Socket(io::ErrorKind::WriteZero.into()));
            }
            Ok(n) => n,
            Err(e) => return Err(WriteError::Socket(e)),
        };
        self.bytes -= n;
        while n > 0 {
            let Some(Chunk::Mem(front)) = self.chunks.front_mut() else {
                break;
            };
            if n >= front.len() {
                n -= front.len();
                self.chunks.pop_front();
            } else {
                let _ = front.split_to(n);
                n = 0;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::{TcpListener, TcpStream};

    fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (b, _) = l.accept().unwrap();
        (a, b)
    }

    #[test]
    fn interleaves_memory_and_file_ranges_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data");
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let file = Arc::new(File::open(&path).unwrap());
        let mut q = OutQueue::default();
        q.push_bytes(Bytes::from_static(b"head"));
        q.push_file(Arc::clone(&file), 10, 50_000);
        q.push_bytes(Bytes::from_static(b"mid"));
        q.push_file(file, 99_990, 10);
        assert_eq!(q.len(), 4 + 50_000 + 3 + 10);
        let (mut tx, mut rx) = pair();
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            rx.read_to_end(&mut got).unwrap();
            got
        });
        assert_eq!(q.write_to(&mut tx).unwrap(), Written::Drained);
        assert_eq!(q.len(), 0);
        drop(tx);
        let got = reader.join().unwrap();
        let want = [
            b"head".as_slice(),
            &data[10..50_010],
            b"mid",
            &data[99_990..],
        ]
        .concat();
        assert_eq!(got, want);
    }

    #[test]
    fn truncated_file_is_an_error_not_zeros() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data");
        std::fs::write(&path, [7u8; 1000]).unwrap();
        let file = Arc::new(File::open(&path).unwrap());
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(10)
            .unwrap();
        let mut q = OutQueue::default();
        q.push_file(file, 0, 1000);
        let (mut tx, _rx) = pair();
        assert!(matches!(q.write_to(&mut tx), Err(WriteError::FileShrank)));
    }
}
