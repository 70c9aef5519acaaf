//! Keeping a layer's compressed blob while it is unpacked (`pull.keep_layer_blobs`), so that
//! registration can hand it to containerd's content store.
//!
//! The blob is copied from the bytes the decoder consumes into `<path>.partial-…`, and renamed
//! to `path` only when the whole blob went through and the layer was verified; otherwise the
//! partial file is removed. A failure to keep it never fails the layer: the layer is in the
//! store either way, and containerd then simply does not get the blob.

use std::fs::File;
use std::io::{self, BufRead, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A reader that copies what its consumer consumes into a file.
pub(super) struct Tee<R> {
    inner: R,
    file: Option<BufWriter<File>>,
    partial: PathBuf,
    written: u64,
    failed: bool,
}

impl<R: BufRead> Tee<R> {
    /// Copies `inner` into a partial file beside `path` (none when it cannot be created).
    pub(super) fn new(inner: R, path: &Path) -> Tee<R> {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let partial = path.with_extension(format!("partial-{}-{n}", std::process::id()));
        let file = match File::create(&partial) {
            Ok(f) => Some(BufWriter::with_capacity(1 << 20, f)),
            Err(e) => {
                tracing::warn!(path = %partial.display(), error = %e, "cannot keep the layer blob");
                None
            }
        };
        Tee {
            inner,
            file,
            partial,
            written: 0,
            failed: false,
        }
    }

    /// After the layer verified: reads what the consumer left, then renames the copy to `path`
    /// when it is `size` bytes long. Returns whether the blob was kept.
    pub(super) fn keep(mut self, path: &Path, size: u64) -> bool {
        let drained = io::copy(&mut self, &mut io::sink());
        let Some(file) = self.file.take() else {
            return false;
        };
        let flushed = file.into_inner().map_err(|e| e.into_error());
        let kept = drained.is_ok()
            && flushed.is_ok()
            && !self.failed
            && self.written == size
            && std::fs::rename(&self.partial, path).is_ok();
        if !kept {
            tracing::warn!(path = %path.display(), written = self.written, size, "the layer blob was not kept");
        }
        kept
    }
}

impl<R> Drop for Tee<R> {
    fn drop(&mut self) {
        // Kept blobs were renamed away; anything else here is a partial copy.
        let _ = std::fs::remove_file(&self.partial);
    }
}

impl<R: BufRead> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = {
            let available = self.fill_buf()?;
            let n = available.len().min(buf.len());
            buf[..n].copy_from_slice(&available[..n]);
            n
        };
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Tee<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, amount: usize) {
        if let Some(file) = &mut self.file
            && !self.failed
            && amount > 0
        {
            // The bytes being consumed are at the front of the buffer already filled.
            let copied = match self.inner.fill_buf() {
                Ok(buf) if buf.len() >= amount => file.write_all(&buf[..amount]),
                Ok(_) => Err(io::Error::other("consumed more than was buffered")),
                Err(e) => Err(e),
            };
            match copied {
                Ok(()) => self.written += amount as u64,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot keep the layer blob");
                    self.failed = true;
                }
            }
        }
        self.inner.consume(amount);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_exactly_what_went_through() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("blob");
        let data: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        let mut tee = Tee::new(io::BufReader::with_capacity(4096, &data[..]), &path);
        let mut first = vec![0; 1000];
        tee.read_exact(&mut first).unwrap();
        assert!(
            tee.keep(&path, data.len() as u64),
            "the rest is drained into the copy"
        );
        assert_eq!(std::fs::read(&path).unwrap(), data);
        assert_eq!(
            std::fs::read_dir(tmp.path()).unwrap().count(),
            1,
            "no partial file"
        );
    }

    #[test]
    fn a_wrong_size_or_a_dropped_tee_keeps_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("blob");
        let tee = Tee::new(&b"abc"[..], &path);
        assert!(!tee.keep(&path, 4));
        let mut tee = Tee::new(&b"abc"[..], &path);
        tee.read_exact(&mut [0; 2]).unwrap();
        drop(tee);
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
    }
}
