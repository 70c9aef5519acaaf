//! The bounded hand-off between the async fetch side and the blocking decode/unpack side of
//! one layer: a channel of byte chunks read as a [`BufRead`], with an explicit end marker so
//! that the reader can tell a verified end of blob from an aborted fetch.

use std::io::{self, BufRead, Read};

use bytes::{Buf, Bytes};
use tokio::sync::mpsc;

/// What the fetch side sends.
#[derive(Debug)]
pub enum Message {
    /// The next bytes of the blob.
    Data(Bytes),
    /// The blob is complete and its digest verified.
    End,
}

/// The sending half.
pub type Sender = mpsc::Sender<Message>;

/// A channel holding at most `depth` chunks.
pub fn channel(depth: usize) -> (Sender, Reader) {
    let (tx, rx) = mpsc::channel(depth.max(1));
    (
        tx,
        Reader {
            rx,
            current: Bytes::new(),
            ended: false,
        },
    )
}

/// The receiving half, for a blocking thread.
#[derive(Debug)]
pub struct Reader {
    rx: mpsc::Receiver<Message>,
    current: Bytes,
    ended: bool,
}

impl BufRead for Reader {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.current.is_empty() && !self.ended {
            match self.rx.blocking_recv() {
                Some(Message::Data(bytes)) => self.current = bytes,
                Some(Message::End) => self.ended = true,
                None => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the blob fetch stopped before the end of the blob",
                    ));
                }
            }
        }
        Ok(&self.current)
    }

    fn consume(&mut self, amt: usize) {
        self.current.advance(amt);
    }
}

impl Read for Reader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        read_buffered(self, buf)
    }
}

/// `Read::read` for a reader whose bytes are already buffered: copies from `fill_buf`.
pub fn read_buffered(reader: &mut impl BufRead, buf: &mut [u8]) -> io::Result<usize> {
    let available = reader.fill_buf()?;
    let n = available.len().min(buf.len());
    buf[..n].copy_from_slice(&available[..n]);
    reader.consume(n);
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_in_order_until_end_marker() {
        let (tx, mut rx) = channel(2);
        let sender = std::thread::spawn(move || {
            for part in [&b"ab"[..], b"", b"cde"] {
                tx.blocking_send(Message::Data(Bytes::copy_from_slice(part)))
                    .unwrap();
            }
            tx.blocking_send(Message::End).unwrap();
        });
        let mut out = Vec::new();
        rx.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"abcde");
        sender.join().unwrap();
    }

    #[test]
    fn a_dropped_sender_without_end_is_an_error() {
        let (tx, mut rx) = channel(2);
        tx.blocking_send(Message::Data(Bytes::from_static(b"ab")))
            .unwrap();
        drop(tx);
        let mut out = Vec::new();
        let err = rx.read_to_end(&mut out).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(out, b"ab");
    }
}
