//! Moving a response body from one socket to another through a pipe with splice(2), so that
//! the bytes never pass through the proxy's memory.
//!
//! The proxy runs on the same cores as the systems it measures; every copy it makes is CPU
//! taken from them that a real remote registry would not take. Splicing leaves the kernel's
//! socket work, which a real network would also cost, and drops the two user-space copies.

use std::io;
use std::os::fd::OwnedFd;

use rustix::pipe::{PipeFlags, SpliceFlags};
use tokio::io::Interest;
use tokio::net::TcpStream;

/// Bytes the pipe is asked to hold; more than the largest piece moved at once.
const CAPACITY: usize = 1 << 20;

/// A pipe between two sockets. Each [`Pipe::fill`] is followed by a [`Pipe::drain`] of what
/// it moved, so the pipe is empty between pieces.
#[derive(Debug)]
pub struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
}

impl Pipe {
    pub fn new() -> io::Result<Pipe> {
        let (read, write) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?;
        // A larger pipe takes a piece in one call; the default (64 KiB of pages) also works.
        let _ = rustix::pipe::fcntl_setpipe_size(&write, CAPACITY);
        Ok(Pipe { read, write })
    }

    /// Moves at most `max` bytes from `from` into the pipe; `0` at the end of the stream.
    pub async fn fill(&self, from: &TcpStream, max: usize) -> io::Result<usize> {
        loop {
            from.readable().await?;
            let moved = from.try_io(Interest::READABLE, || {
                let flags = SpliceFlags::NONBLOCK | SpliceFlags::MOVE;
                Ok(rustix::pipe::splice(
                    from,
                    None,
                    &self.write,
                    None,
                    max,
                    flags,
                )?)
            });
            match moved {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return other,
            }
        }
    }

    /// Moves exactly `n` bytes, all that the pipe holds, to `to`.
    pub async fn drain(&self, to: &TcpStream, mut n: usize) -> io::Result<()> {
        while n > 0 {
            to.writable().await?;
            let moved = to.try_io(Interest::WRITABLE, || {
                let flags = SpliceFlags::NONBLOCK | SpliceFlags::MOVE;
                Ok(rustix::pipe::splice(&self.read, None, to, None, n, flags)?)
            });
            match moved {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(moved) => n -= moved,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
