//! Decode and verify stage: checks a blob's bytes against its descriptor as they pass, and
//! turns them into the layer's tar stream while hashing it for the config's diff ID.
//!
//! Both checks must pass before a layer is committed: [`BlobVerifier::finish`] on the
//! compressed side, [`Decoder::finish`] (which first drains whatever the tar reader left,
//! such as end-of-archive padding) on the uncompressed side.

use std::io::{self, BufRead, Read};

use crate::digest::{Digest, Hasher};
use crate::manifest::Compression;

/// Verification and decompression failures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The blob has more bytes than its descriptor declares.
    #[error("blob {digest}: more than the {limit} bytes the descriptor declares")]
    TooLarge {
        /// The blob.
        digest: Digest,
        /// The declared size.
        limit: u64,
    },
    /// The blob's size or digest differs from its descriptor.
    #[error("blob {expected}: content hashes to {actual} ({size} bytes)")]
    BlobDigest {
        /// What the descriptor says.
        expected: Digest,
        /// What arrived.
        actual: Digest,
        /// How many bytes arrived.
        size: u64,
    },
    /// The uncompressed layer does not match the config's diff ID.
    #[error(
        "layer {blob}: uncompressed content hashes to {actual}, but the image config says {expected}"
    )]
    DiffId {
        /// The compressed blob.
        blob: Digest,
        /// The config's diff ID.
        expected: Digest,
        /// What the content hashes to.
        actual: Digest,
    },
    /// The compressed stream is corrupt, or reading it failed.
    #[error("layer {blob}: decompressing: {source}")]
    Decompress {
        /// The compressed blob.
        blob: Digest,
        /// What failed.
        source: io::Error,
    },
    /// The layer decompresses to more than the configured limit (a decompression bomb).
    #[error("layer {blob}: decompresses to more than {limit} bytes")]
    Bomb {
        /// The compressed blob.
        blob: Digest,
        /// The limit.
        limit: u64,
    },
}

impl Error {
    /// The kind of failure, for the API edges.
    pub fn kind(&self) -> crate::error::Kind {
        // Every failure here is bad content from the registry.
        crate::error::Kind::InvalidArgument
    }
}

/// `Result` with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Uncompressed bytes any layer may have however small it is compressed, before a ratio
/// bound applies: an empty tar is 10 KiB of zeros that gzip makes 30 bytes.
pub const RATIO_FLOOR: u64 = 16 << 20;

/// The most bytes a layer blob of `compressed` bytes may decompress to: `max_size`, and at
/// most `max_ratio` times the blob (but never less than [`RATIO_FLOOR`]). `None` is no limit.
pub fn limit(max_size: Option<u64>, max_ratio: Option<u64>, compressed: u64) -> Option<u64> {
    let by_ratio = max_ratio.map(|r| r.saturating_mul(compressed).max(RATIO_FLOOR));
    match (max_size, by_ratio) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Hashes a blob's bytes as they pass and checks them against the descriptor.
#[derive(Debug)]
pub struct BlobVerifier {
    digest: Digest,
    size: u64,
    hasher: Hasher,
}

impl BlobVerifier {
    /// A verifier for the blob `digest` of `size` bytes.
    pub fn new(digest: Digest, size: u64) -> BlobVerifier {
        BlobVerifier {
            digest,
            size,
            hasher: Hasher::new(),
        }
    }

    /// Feeds the next bytes; fails as soon as there are more than declared.
    pub fn update(&mut self, bytes: &[u8]) -> Result<()> {
        if self.hasher.len() + bytes.len() as u64 > self.size {
            return Err(Error::TooLarge {
                digest: self.digest,
                limit: self.size,
            });
        }
        self.hasher.update(bytes);
        Ok(())
    }

    /// Checks size and digest once every byte has passed.
    pub fn finish(self) -> Result<()> {
        let size = self.hasher.len();
        let actual = self.hasher.finish();
        if size != self.size || actual != self.digest {
            return Err(Error::BlobDigest {
                expected: self.digest,
                actual,
                size,
            });
        }
        Ok(())
    }
}

/// Hashes on its own thread, so that the diff ID costs the decoding thread only a copy.
/// A single layer is bound by one core (decompress + untar); SHA-256 of the output would
/// otherwise add a quarter to it. Falls back to hashing inline if no thread can be had.
enum BackgroundHasher {
    Thread {
        tx: std::sync::mpsc::SyncSender<Vec<u8>>,
        thread: std::thread::JoinHandle<Hasher>,
        batch: Vec<u8>,
        len: u64,
    },
    Inline(Hasher),
}

/// Bytes handed to the hashing thread at a time.
const HASH_BATCH: usize = 128 << 10;

impl BackgroundHasher {
    fn new() -> BackgroundHasher {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(4);
        let spawned = std::thread::Builder::new()
            .name("hoist-diffid".into())
            .spawn(move || {
                let mut hasher = Hasher::new();
                for batch in rx {
                    hasher.update(&batch);
                }
                hasher
            });
        match spawned {
            Ok(thread) => BackgroundHasher::Thread {
                tx,
                thread,
                batch: Vec::with_capacity(HASH_BATCH),
                len: 0,
            },
            Err(_) => BackgroundHasher::Inline(Hasher::new()),
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        match self {
            BackgroundHasher::Thread { tx, batch, len, .. } => {
                *len += bytes.len() as u64;
                batch.extend_from_slice(bytes);
                if batch.len() >= HASH_BATCH {
                    let full = std::mem::replace(batch, Vec::with_capacity(HASH_BATCH));
                    // The thread runs until `tx` is dropped, so this cannot fail.
                    let _ = tx.send(full);
                }
            }
            BackgroundHasher::Inline(hasher) => hasher.update(bytes),
        }
    }

    fn len(&self) -> u64 {
        match self {
            BackgroundHasher::Thread { len, .. } => *len,
            BackgroundHasher::Inline(hasher) => hasher.len(),
        }
    }

    fn finish(self) -> Digest {
        match self {
            BackgroundHasher::Thread {
                tx, thread, batch, ..
            } => {
                let _ = tx.send(batch);
                drop(tx);
                thread
                    .join()
                    .expect("the hashing thread does not panic")
                    .finish()
            }
            BackgroundHasher::Inline(hasher) => hasher.finish(),
        }
    }
}

/// A reader of `source` decompressed as `compression`; reads fail with the stream's own error.
pub fn decompressor<'a>(
    source: impl BufRead + Send + 'a,
    compression: Compression,
    blob: Digest,
) -> Result<Box<dyn Read + Send + 'a>> {
    Ok(match compression {
        Compression::None => Box::new(source),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(source)),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::with_buffer(source)
                .map_err(|source| Error::Decompress { blob, source })?,
        ),
    })
}

/// Decompresses a layer blob and hashes the result for the diff ID.
pub struct Decoder<'a> {
    inner: Box<dyn Read + Send + 'a>,
    blob: Digest,
    diff_id: Digest,
    hasher: BackgroundHasher,
    limit: Option<u64>,
    failed: Option<(io::ErrorKind, String)>,
}

impl std::fmt::Debug for Decoder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("blob", &self.blob)
            .field("diff_id", &self.diff_id)
            .field("read", &self.hasher.len())
            .finish_non_exhaustive()
    }
}

impl<'a> Decoder<'a> {
    /// A decoder of `compression` over `source`, which must end exactly where the blob ends.
    /// `limit` caps the uncompressed size.
    pub fn new(
        source: impl BufRead + Send + 'a,
        compression: Compression,
        blob: Digest,
        diff_id: Digest,
        limit: Option<u64>,
    ) -> Result<Decoder<'a>> {
        Ok(Decoder {
            inner: decompressor(source, compression, blob)?,
            blob,
            diff_id,
            hasher: BackgroundHasher::new(),
            limit,
            failed: None,
        })
    }

    /// Reads what is left, then checks the diff ID. Returns the uncompressed size.
    pub fn finish(mut self) -> Result<u64> {
        io::copy(&mut self, &mut io::sink()).map_err(|source| self.read_error(source))?;
        let size = self.hasher.len();
        let actual = self.hasher.finish();
        if actual != self.diff_id {
            return Err(Error::DiffId {
                blob: self.blob,
                expected: self.diff_id,
                actual,
            });
        }
        Ok(size)
    }

    /// The error this decoder's reads failed with, if any: the cause to report when a reader
    /// above it (the tar reader) fails with only an `io::Error`.
    pub fn failure(&self) -> Option<Error> {
        let (kind, message) = self.failed.as_ref()?;
        Some(self.read_error(io::Error::new(*kind, message.clone())))
    }

    /// The typed error behind an I/O error this decoder returned.
    pub fn read_error(&self, source: io::Error) -> Error {
        match self.limit {
            Some(limit) if self.hasher.len() > limit => Error::Bomb {
                blob: self.blob,
                limit,
            },
            _ => Error::Decompress {
                blob: self.blob,
                source,
            },
        }
    }
}

impl Read for Decoder<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = match self.inner.read(buf) {
            Ok(n) => n,
            Err(e) => {
                self.failed = Some((e.kind(), e.to_string()));
                return Err(e);
            }
        };
        self.hasher.update(&buf[..n]);
        if let Some(limit) = self.limit
            && self.hasher.len() > limit
        {
            let message = format!("layer decompresses to more than {limit} bytes");
            self.failed = Some((io::ErrorKind::InvalidData, message.clone()));
            return Err(io::Error::new(io::ErrorKind::InvalidData, message));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(parts: &[&[u8]]) -> Vec<u8> {
        // One gzip member per part: multi-member streams must decode as their concatenation.
        let mut out = Vec::new();
        for part in parts {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(part).unwrap();
            out.extend(e.finish().unwrap());
        }
        out
    }

    fn decode(
        blob: &[u8],
        compression: Compression,
        diff_id: Digest,
        limit: Option<u64>,
    ) -> Result<Vec<u8>> {
        let mut d = Decoder::new(blob, compression, Digest::of(blob), diff_id, limit)?;
        let mut out = Vec::new();
        d.read_to_end(&mut out).map_err(|e| d.read_error(e))?;
        d.finish()?;
        Ok(out)
    }

    #[test]
    fn limit_is_the_tighter_bound_with_a_floor_under_the_ratio() {
        let mib = 1 << 20;
        assert_eq!(limit(None, None, 10), None);
        assert_eq!(limit(Some(5), None, 10), Some(5));
        // 100 × 1 KiB is under the floor: small layers always fit.
        assert_eq!(limit(None, Some(100), 1024), Some(RATIO_FLOOR));
        assert_eq!(limit(None, Some(100), mib), Some(100 * mib));
        assert_eq!(limit(Some(mib), Some(100), mib), Some(mib));
        assert_eq!(limit(None, Some(u64::MAX), 2), Some(u64::MAX));
    }

    #[test]
    fn decodes_every_compression_and_checks_diff_id() {
        let plain = b"hello layer".repeat(100);
        let cases: Vec<(Compression, Vec<u8>)> = vec![
            (Compression::None, plain.clone()),
            (Compression::Gzip, gzip(&[&plain[..500], &plain[500..]])),
            (Compression::Zstd, zstd::encode_all(&plain[..], 3).unwrap()),
        ];
        for (compression, blob) in cases {
            assert_eq!(
                decode(&blob, compression, Digest::of(&plain), None).unwrap(),
                plain,
                "{compression:?}"
            );
            let wrong = decode(&blob, compression, Digest::of(b"other"), None);
            assert!(
                matches!(wrong, Err(Error::DiffId { .. })),
                "{compression:?}"
            );
        }
    }

    #[test]
    fn rejects_corrupt_stream_and_bombs() {
        let plain = vec![0u8; 1 << 20];
        let mut blob = gzip(&[&plain]);
        let bomb = decode(&blob, Compression::Gzip, Digest::of(&plain), Some(1000));
        assert!(
            matches!(bomb, Err(Error::Bomb { limit: 1000, .. })),
            "{bomb:?}"
        );
        let mid = blob.len() / 2;
        blob[mid] ^= 0xff;
        blob.truncate(blob.len() - 4);
        let corrupt = decode(&blob, Compression::Gzip, Digest::of(&plain), None);
        assert!(
            matches!(corrupt, Err(Error::Decompress { .. })),
            "{corrupt:?}"
        );
    }

    #[test]
    fn blob_verifier_checks_size_and_digest() {
        let data = b"0123456789";
        let mut ok = BlobVerifier::new(Digest::of(data), 10);
        ok.update(&data[..4]).unwrap();
        ok.update(&data[4..]).unwrap();
        ok.finish().unwrap();
        let mut big = BlobVerifier::new(Digest::of(data), 9);
        assert!(matches!(
            big.update(data),
            Err(Error::TooLarge { limit: 9, .. })
        ));
        let mut wrong = BlobVerifier::new(Digest::of(b"x"), 10);
        wrong.update(data).unwrap();
        assert!(matches!(wrong.finish(), Err(Error::BlobDigest { .. })));
        let mut short = BlobVerifier::new(Digest::of(data), 11);
        short.update(data).unwrap();
        assert!(matches!(
            short.finish(),
            Err(Error::BlobDigest { size: 10, .. })
        ));
    }
}
