//! Hoist's own record of pulled images: which reference names which manifest, config and
//! chain of snapshots, plus the manifest and config blobs themselves.
//!
//! ```text
//! ROOT/images/<sha256 of name>.json   one record per image name (normalised reference)
//! ROOT/blobs/sha256/<hex>             manifests and configs
//! ```
//! Every file is written to a temporary name and renamed into place, so a killed process
//! leaves the old record or the new one, never half of one.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::digest::Digest;

/// Image record failures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing the record store failed.
    #[error("image store: {op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// On what.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A record is unreadable.
    #[error("image store: corrupt record {path}: {source}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Why.
        source: serde_json::Error,
    },
}

impl Error {
    /// The kind of failure, for the API edges.
    pub fn kind(&self) -> crate::error::Kind {
        crate::error::Kind::Internal
    }
}

/// `Result` with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One image name and what it points at.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Record {
    /// The normalised reference (`docker.io/library/alpine:3.20`, or `...@sha256:...`).
    pub name: String,
    /// The digest the name resolved to (an index's, for multi-platform images).
    pub target: Digest,
    /// The platform manifest.
    pub manifest: Digest,
    /// The config: the image ID.
    pub config: Digest,
    /// Chain IDs of the layers, base first; each names a committed snapshot.
    pub chain_ids: Vec<Digest>,
    /// Compressed size of all layers, in bytes.
    pub size: u64,
}

/// The record store under one root.
#[derive(Debug, Clone)]
pub struct Images {
    root: PathBuf,
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Error + 'a {
    move |source| Error::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

impl Images {
    /// Opens (creating if needed) the record store under `root`.
    pub fn open(root: &Path) -> Result<Images> {
        for dir in [root.join("images"), root.join("blobs/sha256")] {
            fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
        }
        Ok(Images {
            root: root.to_owned(),
        })
    }

    fn record_path(&self, name: &str) -> PathBuf {
        self.root
            .join("images")
            .join(format!("{}.json", Digest::of(name.as_bytes()).hex()))
    }

    /// Where the blob `digest` is (or would be) stored.
    pub fn blob_file(&self, digest: &Digest) -> PathBuf {
        self.blob_path(digest)
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(digest.hex())
    }

    /// Stores a blob (idempotent: content-addressed).
    pub fn put_blob(&self, digest: &Digest, bytes: &[u8]) -> Result<()> {
        let path = self.blob_path(digest);
        if path.exists() {
            return Ok(());
        }
        write_atomic(&path, bytes)
    }

    /// A stored blob.
    pub fn blob(&self, digest: &Digest) -> Result<Option<Vec<u8>>> {
        let path = self.blob_path(digest);
        match fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("read", &path)(e)),
        }
    }

    /// Records (or replaces) the record for `record.name`.
    pub fn put(&self, record: &Record) -> Result<()> {
        let json = serde_json::to_vec_pretty(record).expect("a Record always serialises");
        write_atomic(&self.record_path(&record.name), &json)
    }

    /// The record named `name` (a normalised reference).
    pub fn get(&self, name: &str) -> Result<Option<Record>> {
        let path = self.record_path(name);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("read", &path)(e)),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| Error::Corrupt { path, source })
    }

    /// Every record.
    pub fn list(&self) -> Result<Vec<Record>> {
        let dir = self.root.join("images");
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_err("list", &dir))? {
            let path = entry.map_err(io_err("list", &dir))?.path();
            if path.extension().is_some_and(|e| e == "json") {
                let bytes = fs::read(&path).map_err(io_err("read", &path))?;
                out.push(
                    serde_json::from_slice(&bytes)
                        .map_err(|source| Error::Corrupt { path, source })?,
                );
            }
        }
        out.sort_by(|a: &Record, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Removes the record named `name`; false when there was none.
    pub fn remove(&self, name: &str) -> Result<bool> {
        remove_file(&self.record_path(name))
    }

    /// Removes a blob; false when there was none.
    pub fn remove_blob(&self, digest: &Digest) -> Result<bool> {
        remove_file(&self.blob_path(digest))
    }

    /// A stored blob's size.
    pub fn blob_size(&self, digest: &Digest) -> Result<Option<u64>> {
        let path = self.blob_path(digest);
        match fs::metadata(&path) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("stat", &path)(e)),
        }
    }
}

fn remove_file(path: &Path) -> Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_err("remove", path)(e)),
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    // Unique per write: concurrent pulls of one image in one process write the same record.
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_extension(format!("tmp{}-{n}", std::process::id()));
    fs::write(&tmp, bytes).map_err(io_err("write", &tmp))?;
    fs::rename(&tmp, path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io_err("rename", path)(e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_replace() {
        let tmp = tempfile::tempdir().unwrap();
        let images = Images::open(tmp.path()).unwrap();
        let mut r = Record {
            name: "docker.io/library/a:latest".into(),
            target: Digest::of(b"t"),
            manifest: Digest::of(b"m"),
            config: Digest::of(b"c"),
            chain_ids: vec![Digest::of(b"l")],
            size: 3,
        };
        images.put(&r).unwrap();
        r.size = 4;
        images.put(&r).unwrap();
        assert_eq!(images.get(&r.name).unwrap(), Some(r.clone()));
        assert_eq!(images.list().unwrap(), vec![r.clone()]);
        assert_eq!(images.get("nope").unwrap(), None);
        images.put_blob(&Digest::of(b"x"), b"x").unwrap();
        assert_eq!(images.blob(&Digest::of(b"x")).unwrap(), Some(b"x".to_vec()));
        assert_eq!(images.blob_size(&Digest::of(b"x")).unwrap(), Some(1));
        assert!(images.remove(&r.name).unwrap());
        assert!(
            !images.remove(&r.name).unwrap(),
            "removing twice is not an error"
        );
        assert_eq!(images.get(&r.name).unwrap(), None);
        assert!(images.remove_blob(&Digest::of(b"x")).unwrap());
        assert_eq!(images.blob_size(&Digest::of(b"x")).unwrap(), None);
    }
}
