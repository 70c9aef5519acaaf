//! The io_uring writer for regular files: each file is created as the `std::fs` writer creates it
//! (a synchronous `openat(O_CREAT | O_EXCL | O_NOFOLLOW)` under the verified parent fd, replacing
//! what the name held), its content is read into a buffer the batch owns, and the content writes
//! of many files go to the kernel in one submission. When the batch is reaped, each file gets its
//! owner, xattrs, mode and times through its fd (io_uring has no chown, chmod or utimens), and the
//! closes go back to the ring, reaped with the next batch.
//!
//! The names a layer creates therefore exist at the same moment as with the `std::fs` writer; only
//! content and metadata of the batch's files lag. The unpacker flushes the batch before any entry
//! that could observe them (every non-regular entry, and a regular file at a path the batch
//! already holds), before reporting any error, and at the end of the layer, so both writers leave
//! the same tree and fail with the same error.
//!
//! io_uring is probed once per process. Where it cannot be set up (containerd's and Docker's
//! default seccomp profiles block `io_uring_setup`, or `kernel.io_uring_disabled`), the layer is
//! written with `std::fs` and a debug log says why.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, IntoRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::OnceLock;

use io_uring::{IoUring, opcode, types};
use rustix::io::Errno;

use super::dirs::io_error;
use super::error::{Error, Op, Result};
use super::node::{self, Meta, Replaced, Target};

/// Submission queue entries: room for a full batch of writes (its closes were submitted with the
/// previous batch, so the queue is empty when a batch starts).
const RING_ENTRIES: u32 = 128;
/// Files per batch.
const BATCH_FILES: usize = 64;
/// Content bytes per batch: the writer's extra memory per layer.
const BATCH_BYTES: usize = 4 << 20;
/// Largest file written through the ring; larger ones are streamed by the `std::fs` writer.
const MAX_FILE: u64 = 1 << 20;
/// `user_data` of close requests; writes carry their index in the batch.
const CLOSE: u64 = u64::MAX;

/// Whether io_uring can be used in this process, with the operations this writer submits.
/// Probed once; the first call logs the outcome.
pub fn available() -> bool {
    static PROBED: OnceLock<bool> = OnceLock::new();
    *PROBED.get_or_init(|| match probe() {
        Ok(()) => {
            tracing::debug!("io_uring available: regular files are written through it");
            true
        }
        Err(error) => {
            tracing::debug!(%error, "io_uring unavailable, unpacking with std::fs");
            false
        }
    })
}

fn probe() -> io::Result<()> {
    let ring = IoUring::new(2)?;
    let mut probe = io_uring::Probe::new();
    ring.submitter().register_probe(&mut probe)?;
    for (name, code) in [
        ("write", opcode::Write::CODE),
        ("close", opcode::Close::CODE),
    ] {
        if !probe.is_supported(code) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("the kernel's io_uring lacks {name}"),
            ));
        }
    }
    Ok(())
}

/// A file created and read, waiting for its write.
struct Pending {
    fd: OwnedFd,
    content: Vec<u8>,
    meta: Meta,
    entry: PathBuf,
}

/// The batch of one layer's regular files and the ring it is written through.
pub(super) struct Writer {
    ring: IoUring,
    pending: Vec<Pending>,
    bytes: usize,
    /// Entries in `pending`: a second file at one of these paths flushes first.
    paths: HashSet<PathBuf>,
    /// Buffers of reaped batches, reused.
    spare: Vec<Vec<u8>>,
    /// Close requests submitted and not yet reaped.
    closing: usize,
    files: u64,
    batches: u64,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("pending", &self.pending.len())
            .field("closing", &self.closing)
            .finish_non_exhaustive()
    }
}

impl Writer {
    /// A writer with its own ring, or `None` (logged) when io_uring cannot be used.
    pub(super) fn new() -> Option<Self> {
        if !available() {
            return None;
        }
        match IoUring::new(RING_ENTRIES) {
            Ok(ring) => Some(Self {
                ring,
                pending: Vec::new(),
                bytes: 0,
                paths: HashSet::new(),
                spare: Vec::new(),
                closing: 0,
                files: 0,
                batches: 0,
            }),
            Err(error) => {
                tracing::debug!(%error, "io_uring ring not set up, unpacking this layer with std::fs");
                None
            }
        }
    }

    /// Whether a file of `size` bytes goes through the ring: empty files need no write, and
    /// large ones are streamed rather than held.
    pub(super) fn takes(size: u64) -> bool {
        size > 0 && size <= MAX_FILE
    }

    /// Creates the file, reads its `size` bytes of content and queues the write. Returns what the
    /// name held before.
    pub(super) fn file(
        &mut self,
        at: &Target<'_>,
        content: &mut impl Read,
        size: u64,
        meta: Meta,
    ) -> Result<Replaced> {
        let len = usize::try_from(size).unwrap_or(usize::MAX);
        if self.pending.len() == BATCH_FILES
            || self.bytes.saturating_add(len) > BATCH_BYTES
            || self.paths.contains(at.entry)
        {
            self.flush()?;
        }
        let (fd, replaced) = node::create_file(at)?;
        let mut buf = self.spare.pop().unwrap_or_default();
        buf.clear();
        buf.reserve_exact(len);
        content
            .by_ref()
            .take(size)
            .read_to_end(&mut buf)
            .map_err(|source| Error::ReadContent {
                path: at.entry.to_owned(),
                source,
            })?;
        if buf.len() != len {
            return Err(Error::Truncated {
                path: at.entry.to_owned(),
                expected: size,
                written: buf.len() as u64,
            });
        }
        self.bytes += len;
        self.paths.insert(at.entry.to_owned());
        self.pending.push(Pending {
            fd,
            content: buf,
            meta,
            entry: at.entry.to_owned(),
        });
        Ok(replaced)
    }

    /// Writes the batch: one submission of every write, then, in entry order, the rest of any
    /// short write, the metadata, and a close request. Fails with the first entry that failed.
    pub(super) fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.pending);
        self.bytes = 0;
        self.paths.clear();
        self.batches += 1;
        self.files += batch.len() as u64;
        let mut queued = 0;
        for (index, file) in batch.iter().enumerate() {
            let len =
                u32::try_from(file.content.len()).expect("files above MAX_FILE are not taken");
            let write =
                opcode::Write::new(types::Fd(file.fd.as_raw_fd()), file.content.as_ptr(), len)
                    .offset(0)
                    .build()
                    .user_data(index as u64);
            // The fd and the buffer belong to `batch`, which is dropped only after
            // `wait_writes` has reaped every write, or leaked when it could not. A write that
            // could not be queued keeps no result and is written synchronously below.
            if self.push(&write) {
                queued += 1;
            }
        }
        let mut results = vec![None; batch.len()];
        if let Err(source) = self.wait_writes(&mut results, queued) {
            let entry = batch
                .first()
                .map(|file| file.entry.clone())
                .unwrap_or_default();
            // The kernel may still use the buffers and fds: never free them.
            std::mem::forget(batch);
            return Err(Error::Io {
                path: entry,
                op: Op::WriteFile,
                source,
            });
        }
        let outcome = self.finish_files(batch, &results);
        // The closes go with the next submission; submitting now keeps fds from piling up.
        if self.closing > 0 {
            let _ = self.ring.submit();
        }
        outcome
    }

    /// Completes each reaped file in entry order and hands its fd to the ring to close.
    fn finish_files(&mut self, batch: Vec<Pending>, results: &[Option<i32>]) -> Result<()> {
        for (file, result) in batch.into_iter().zip(results) {
            let Pending {
                fd,
                content,
                meta,
                entry,
            } = file;
            let written = match *result {
                Some(n) if n >= 0 => n as usize,
                Some(n) => {
                    return Err(io_error(
                        &entry,
                        Op::WriteFile,
                        Errno::from_raw_os_error(-n),
                    ));
                }
                None => 0,
            };
            let fd = if written < content.len() {
                let file = File::from(fd);
                let rest = content.get(written..).unwrap_or_default();
                file.write_all_at(rest, written as u64)
                    .map_err(|source| Error::Io {
                        path: entry.clone(),
                        op: Op::WriteFile,
                        source,
                    })?;
                OwnedFd::from(file)
            } else {
                fd
            };
            node::set_fd_meta(fd.as_fd(), &meta, &entry, true)?;
            let close = opcode::Close::new(types::Fd(fd.as_raw_fd()))
                .build()
                .user_data(CLOSE);
            if self.push(&close) {
                // The ring closes it now.
                let _ = fd.into_raw_fd();
                self.closing += 1;
            }
            if self.spare.len() < BATCH_FILES {
                self.spare.push(content);
            }
        }
        Ok(())
    }

    /// Writes what is queued and waits until every close has been reaped. Logs what the writer did.
    pub(super) fn finish(&mut self) -> Result<()> {
        self.flush()?;
        while self.closing > 0 {
            match self.ring.submit_and_wait(self.closing) {
                Ok(_) => {}
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                // Close failures are ignored, as when a `File` is dropped.
                Err(_) => break,
            }
            self.reap(&mut []);
        }
        tracing::debug!(
            files = self.files,
            batches = self.batches,
            "regular files written through io_uring"
        );
        Ok(())
    }

    /// Queues `entry`, submitting what is queued when the queue is full. Returns whether it was
    /// queued; the caller then does the work itself.
    fn push(&mut self, entry: &io_uring::squeue::Entry) -> bool {
        for _ in 0..3 {
            // SAFETY: every entry pushed here points at an fd and buffer that outlive the
            // request (see `flush`); a close owns its fd.
            if unsafe { self.ring.submission().push(entry) }.is_ok() {
                return true;
            }
            if self.ring.submit().is_err() {
                self.reap(&mut []);
            }
        }
        false
    }

    /// Submits and waits until the `queued` writes have completed, their results in `results`.
    fn wait_writes(&mut self, results: &mut [Option<i32>], queued: usize) -> io::Result<()> {
        let mut left = queued;
        while left > 0 {
            match self.ring.submit_and_wait(left) {
                Ok(_) => {}
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                // The completion queue is full: reaping below makes room.
                Err(error) if error.raw_os_error() == Some(Errno::BUSY.raw_os_error()) => {}
                Err(error) => return Err(error),
            }
            left -= self.reap(results);
        }
        Ok(())
    }

    /// Takes every completion: closes are counted off, writes stored by index. Returns the
    /// number of writes reaped.
    fn reap(&mut self, results: &mut [Option<i32>]) -> usize {
        let mut writes = 0;
        for completion in self.ring.completion() {
            match completion.user_data() {
                CLOSE => self.closing = self.closing.saturating_sub(1),
                index => {
                    if let Some(slot) = usize::try_from(index).ok().and_then(|i| results.get_mut(i))
                    {
                        *slot = Some(completion.result());
                        writes += 1;
                    }
                }
            }
        }
        writes
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Queued, never submitted writes are dropped with their files; queued closes still go to
        // the kernel so their fds do not leak.
        if self.closing > 0 {
            let _ = self.ring.submit();
        }
    }
}
