//! The blocking half of one layer: decode on one thread, untar on another.
//!
//! A layer's bytes pass three CPU-bound steps: decompression, the diff ID's SHA-256, and the
//! untar with its syscalls. Run on one thread, a single large layer is bound by their sum; here
//! the decoder thread decompresses into fixed-size blocks and shares each, without copying,
//! with the diff ID's hashing thread and with the calling thread, which untars them. A block's
//! buffer goes back to a small pool once both are done with it, so steady state allocates
//! nothing.
//!
//! The decoder always reads its input to the end, even after the tar's end-of-archive, so that
//! the diff ID covers every byte; it stops early only when the untar failed.

use std::io::{self, BufRead, Read};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

use crate::digest::{Digest, Hasher};
use crate::manifest::Compression;

use super::{decode, unpack};

/// Bytes per block handed from the decoder to the untar.
const BLOCK: usize = 256 << 10;

/// Blocks in flight between the two threads.
const DEPTH: usize = 4;

/// What a layer is, for its blocking half.
#[derive(Debug, Clone, Copy)]
pub struct Blob {
    /// The compressed blob's digest (for errors).
    pub digest: Digest,
    /// How it is compressed.
    pub compression: Compression,
    /// The config's diff ID, checked at the end.
    pub diff_id: Digest,
    /// The most bytes it may decompress to.
    pub limit: Option<u64>,
}

/// Why the blocking half of a layer failed.
#[derive(Debug)]
pub enum Failure {
    /// The stream did not decode, or did not match its diff ID.
    Decode(decode::Error),
    /// The tar could not be unpacked.
    Unpack(unpack::Error),
}

/// Decodes `source` (the blob's bytes, ending exactly where the blob ends) and unpacks the tar
/// into `dest`. Returns the uncompressed size once the diff ID is verified. On failure the
/// caller discards `dest`: it may hold part of the layer.
pub fn decode_and_unpack(
    source: impl BufRead + Send,
    dest: &Path,
    blob: Blob,
    options: &unpack::Options,
) -> Result<u64, Failure> {
    let (blocks, received) = sync_channel::<Message>(DEPTH);
    let (to_hash, hashed) = sync_channel::<Arc<Block>>(DEPTH);
    let pool = Pool::default();
    let abandoned = AtomicBool::new(false);
    let thread_failed = |source: io::Error| {
        Failure::Decode(decode::Error::Decompress {
            blob: blob.digest,
            source,
        })
    };
    std::thread::scope(|scope| {
        let hasher = std::thread::Builder::new()
            .name("hoist-diffid".into())
            .spawn_scoped(scope, move || {
                let mut hasher = Hasher::new();
                for block in hashed {
                    hasher.update(block.bytes());
                }
                hasher
            })
            .map_err(thread_failed)?;
        let decoder = std::thread::Builder::new()
            .name("hoist-decode".into())
            .spawn_scoped(scope, || {
                decode(source, blob, &pool, to_hash, blocks, &abandoned)
            })
            .map_err(thread_failed)?;
        let mut reader = Blocks {
            rx: received,
            current: None,
            at: 0,
            ended: false,
        };
        let unpacked = unpack::unpack(&mut reader, dest, options);
        if unpacked.is_err() {
            abandoned.store(true, Ordering::Relaxed);
        }
        // Dropping the receiver frees the decoder from waiting on this side.
        drop(reader);
        let panicked = || io::Error::other("a decoding thread panicked");
        let decoded = decoder.join().map_err(|_| thread_failed(panicked()))?;
        let hasher = hasher.join().map_err(|_| thread_failed(panicked()))?;
        let size = match (decoded, unpacked) {
            // A decode failure is the root cause of whatever the untar saw after it.
            (Err(e), _) => return Err(Failure::Decode(e)),
            (Ok(_), Err(e)) => return Err(Failure::Unpack(e)),
            (Ok(true), Ok(_)) => hasher.len(),
            (Ok(false), Ok(_)) => {
                unreachable!("the decoder stops early only after the untar failed")
            }
        };
        let actual = hasher.finish();
        if actual != blob.diff_id {
            return Err(Failure::Decode(decode::Error::DiffId {
                blob: blob.digest,
                expected: blob.diff_id,
                actual,
            }));
        }
        Ok(size)
    })
}

/// Buffers of [`BLOCK`] bytes for reuse.
#[derive(Debug, Default, Clone)]
struct Pool(Arc<Mutex<Vec<Vec<u8>>>>);

impl Pool {
    fn take(&self) -> Vec<u8> {
        let reused = self.0.lock().ok().and_then(|mut buffers| buffers.pop());
        reused.unwrap_or_else(|| vec![0; BLOCK])
    }
}

/// Decoded bytes, shared by the untar and the diff ID's hashing thread; the last of them to
/// let go returns the buffer to the pool.
#[derive(Debug)]
struct Block {
    buf: Vec<u8>,
    len: usize,
    pool: Pool,
}

impl Block {
    fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        if let Ok(mut buffers) = self.pool.0.lock()
            && buffers.len() < 2 * DEPTH + 2
        {
            buffers.push(buf);
        }
    }
}

/// What the decoder hands the untar.
enum Message {
    Data(Arc<Block>),
    /// Every byte was decoded.
    End,
}

/// The decoder thread: fills blocks until the stream ends, handing each to the diff ID's
/// hasher and to the untar. Returns `false` when it stopped because the untar failed.
fn decode(
    source: impl BufRead + Send,
    blob: Blob,
    pool: &Pool,
    to_hash: SyncSender<Arc<Block>>,
    blocks: SyncSender<Message>,
    abandoned: &AtomicBool,
) -> decode::Result<bool> {
    let failed = |source| decode::Error::Decompress {
        blob: blob.digest,
        source,
    };
    let mut reader = decode::decompressor(source, blob.compression, blob.digest)?;
    let mut total: u64 = 0;
    let mut untarring = true;
    loop {
        if abandoned.load(Ordering::Relaxed) {
            return Ok(false);
        }
        let mut buf = pool.take();
        let len = fill(&mut reader, &mut buf).map_err(failed)?;
        if len == 0 {
            break;
        }
        total += len as u64;
        if let Some(limit) = blob.limit
            && total > limit
        {
            return Err(decode::Error::Bomb {
                blob: blob.digest,
                limit,
            });
        }
        let block = Arc::new(Block {
            buf,
            len,
            pool: pool.clone(),
        });
        if to_hash.send(Arc::clone(&block)).is_err() {
            return Err(failed(io::Error::other("the diff ID hasher stopped")));
        }
        // Once the untar has stopped reading, the rest is only hashed.
        untarring = untarring && blocks.send(Message::Data(block)).is_ok();
    }
    let _ = blocks.send(Message::End);
    Ok(true)
}

/// Reads into `block` until it is full or the stream ends; returns how much was filled.
fn fill(reader: &mut impl Read, block: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < block.len() {
        match reader.read(&mut block[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// The untar's side: the decoder's blocks as one byte stream.
struct Blocks {
    rx: Receiver<Message>,
    current: Option<Arc<Block>>,
    at: usize,
    ended: bool,
}

impl Blocks {
    fn remaining(&self) -> &[u8] {
        self.current
            .as_ref()
            .map_or(&[], |block| &block.bytes()[self.at..])
    }
}

impl BufRead for Blocks {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.remaining().is_empty() && !self.ended {
            match self.rx.recv() {
                Ok(Message::Data(block)) => {
                    self.current = Some(block);
                    self.at = 0;
                }
                Ok(Message::End) => {
                    self.current = None;
                    self.ended = true;
                }
                // The decoder stopped without reaching the end: its error is the one to report.
                Err(_) => return Err(io::Error::other("decoding the layer failed")),
            }
        }
        Ok(self.remaining())
    }

    fn consume(&mut self, amount: usize) {
        self.at = (self.at + amount).min(self.current.as_ref().map_or(0, |b| b.len));
    }
}

impl Read for Blocks {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        super::pipe::read_buffered(self, buf)
    }
}
