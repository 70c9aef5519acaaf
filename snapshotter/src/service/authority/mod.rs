//! Serving gRPC clients that send a unix socket's path as the HTTP/2 `:authority`.
//!
//! gRPC clients on a unix socket put what they like in `:authority`: grpc-go before v1.64
//! (kubelet and crictl up to 1.30) and grpc-java send the socket path itself
//! (`/run/hoist/cri.sock`), grpc-core clients (Python `grpcio`, C++) may send it
//! percent-encoded. `h2`, under tonic, parses `:authority` as a URI authority and resets a
//! stream whose value is not one with `PROTOCOL_ERROR` before any handler runs (hyperium/h2
//! #442), so every call from such a client fails.
//!
//! [`Stream`] wraps each accepted connection and rewrites, in the bytes the client sends, an
//! `:authority` that is not a valid URI authority into one of the same length that is (see
//! [`block`]). Nothing else changes: the header blocks are rewritten in place, every other frame
//! and field passes through byte for byte, so `h2` still rejects a request that is malformed in
//! any other way. Keeping the length keeps the client's HPACK dynamic table and the server's in
//! step without re-encoding anything else. The service never reads `:authority` (a unix socket
//! has one peer), so the value it sees is of no consequence.
//!
//! The alternative of patching `h2` to accept such values (PR #487, open upstream) would mean a
//! fork of a dependency of tonic; a transport that fixes the value before `h2` reads it keeps
//! tonic and `h2` as published.

pub mod block;
mod frames;

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::server::Connected;

pub use frames::Filter;

/// How much the stream reads from the connection at a time.
const READ_CHUNK: usize = 16 * 1024;

/// A server-side connection whose client-to-server bytes pass through a [`Filter`].
#[derive(Debug)]
pub struct Stream<S> {
    inner: S,
    filter: Filter,
    /// Filtered bytes not yet read by the server, from `pos` on.
    out: Vec<u8>,
    pos: usize,
    scratch: Box<[u8]>,
    eof: bool,
}

impl<S> Stream<S> {
    /// Wraps an accepted connection.
    pub fn new(inner: S) -> Self {
        Stream {
            inner,
            filter: Filter::new(),
            out: Vec::new(),
            pos: 0,
            scratch: vec![0; READ_CHUNK].into_boxed_slice(),
            eof: false,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Stream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.pos < this.out.len() {
                let n = buf.remaining().min(this.out.len() - this.pos);
                buf.put_slice(&this.out[this.pos..this.pos + n]);
                this.pos += n;
                if this.pos == this.out.len() {
                    this.out.clear();
                    this.pos = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            let mut read = ReadBuf::new(&mut this.scratch);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read))?;
            let filled = read.filled();
            if filled.is_empty() {
                this.eof = true;
                this.filter.finish(&mut this.out);
            } else {
                this.filter.push(filled, &mut this.out);
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Stream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl<S: Connected> Connected for Stream<S> {
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}
