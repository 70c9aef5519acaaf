//! The store on disk.
//!
//! ```text
//! ROOT/snapshots/<id>/fs          committed snapshot contents (an overlayfs lower directory)
//! ROOT/snapshots/<id>/info.json   name, parent, size
//! ROOT/staging/<n>/fs             a layer being written; never visible under snapshots/
//! ```
//!
//! A snapshot becomes visible only by `rename(staging/<n>, snapshots/<id>)`, which is atomic,
//! so a process killed at any moment leaves either no snapshot or a whole one; what it leaves
//! in `staging/` is removed by [`Store::open`]. The directory id is the name with `:` replaced,
//! because `:` separates overlayfs `lowerdir` entries.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Store failures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A filesystem operation on the store failed.
    #[error("snapshot store: {op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// On what.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The snapshot name has characters that cannot be a directory name.
    #[error("snapshot name {0:?} is invalid (allowed: A-Z a-z 0-9 . _ - :)")]
    InvalidName(String),
    /// The parent named at commit does not exist.
    #[error("snapshot {name}: parent {parent} does not exist")]
    MissingParent {
        /// The snapshot being committed.
        name: String,
        /// The missing parent.
        parent: String,
    },
    /// A stored metadata file is unreadable.
    #[error("snapshot {name}: corrupt metadata: {source}")]
    Corrupt {
        /// The snapshot.
        name: String,
        /// The parse error.
        source: serde_json::Error,
    },
}

/// `Result` with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Error + 'a {
    move |source| Error::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

/// Metadata kept beside each committed snapshot.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Info {
    /// The snapshot's name (for layers: the chain id).
    pub name: String,
    /// The snapshot below this one, if any.
    pub parent: Option<String>,
    /// Bytes of regular-file content in this snapshot alone.
    pub size: u64,
}

/// A committed snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// Its metadata.
    pub info: Info,
    /// Its contents directory (an overlayfs lower directory).
    pub fs: PathBuf,
}

/// The snapshot store rooted at one directory.
#[derive(Debug)]
pub struct Store {
    root: PathBuf,
    next: AtomicU64,
}

impl Store {
    /// Opens (creating if needed) the store at `root`, removing whatever a killed process left
    /// in `staging/`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Store> {
        let root = root.into();
        let staging = root.join("staging");
        if staging.exists() {
            fs::remove_dir_all(&staging).map_err(io_err("clean", &staging))?;
        }
        for dir in [root.join("snapshots"), staging] {
            fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
        }
        Ok(Store {
            root,
            next: AtomicU64::new(0),
        })
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn dir(&self, name: &str) -> Result<PathBuf> {
        let valid = !name.is_empty()
            && name.len() <= 200
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':'))
            && !name.starts_with('.');
        if !valid {
            return Err(Error::InvalidName(name.to_owned()));
        }
        Ok(self.root.join("snapshots").join(name.replace(':', "-")))
    }

    /// The committed snapshot `name`, if it exists.
    pub fn get(&self, name: &str) -> Result<Option<Committed>> {
        let dir = self.dir(name)?;
        let info_path = dir.join("info.json");
        let bytes = match fs::read(&info_path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("read", &info_path)(e)),
        };
        let info = serde_json::from_slice(&bytes).map_err(|source| Error::Corrupt {
            name: name.to_owned(),
            source,
        })?;
        Ok(Some(Committed {
            info,
            fs: dir.join("fs"),
        }))
    }

    /// A fresh, empty directory to write a snapshot into. Dropping the [`Staged`] without
    /// committing it removes the directory.
    pub fn stage(&self) -> Result<Staged> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let dir = self
            .root
            .join("staging")
            .join(format!("{}-{n}", std::process::id()));
        let fs_dir = dir.join("fs");
        fs::create_dir_all(&fs_dir).map_err(io_err("create", &fs_dir))?;
        Ok(Staged { dir: Some(dir) })
    }

    /// Makes `staged` visible as the committed snapshot `name` on top of `parent`.
    ///
    /// Committing a name that already exists is success: the staged copy is discarded and the
    /// existing snapshot returned, so concurrent pulls of the same layer are idempotent.
    pub fn commit(
        &self,
        mut staged: Staged,
        name: &str,
        parent: Option<&str>,
        size: u64,
    ) -> Result<Committed> {
        let target = self.dir(name)?;
        if let Some(parent) = parent
            && self.get(parent)?.is_none()
        {
            return Err(Error::MissingParent {
                name: name.to_owned(),
                parent: parent.to_owned(),
            });
        }
        if let Some(existing) = self.get(name)? {
            return Ok(existing);
        }
        let dir = staged
            .dir
            .take()
            .expect("a Staged holds its directory until commit or drop");
        let info = Info {
            name: name.to_owned(),
            parent: parent.map(str::to_owned),
            size,
        };
        let info_path = dir.join("info.json");
        let json = serde_json::to_vec(&info).expect("Info always serialises");
        fs::write(&info_path, json).map_err(io_err("write", &info_path))?;
        match fs::rename(&dir, &target) {
            Ok(()) => {}
            // Another pull committed the same layer between our check and the rename.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::DirectoryNotEmpty | io::ErrorKind::AlreadyExists
                ) =>
            {
                let _ = fs::remove_dir_all(&dir);
            }
            Err(e) => {
                let _ = fs::remove_dir_all(&dir);
                return Err(io_err("commit", &target)(e));
            }
        }
        Ok(Committed {
            info,
            fs: target.join("fs"),
        })
    }

    /// Removes the committed snapshot `name`; removing a missing one is success.
    pub fn remove(&self, name: &str) -> Result<()> {
        let dir = self.dir(name)?;
        // Rename first so that a crash mid-delete leaves garbage in staging/, not a half
        // snapshot that still looks committed.
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let trash = self
            .root
            .join("staging")
            .join(format!("rm-{}-{n}", std::process::id()));
        match fs::rename(&dir, &trash) {
            Ok(()) => fs::remove_dir_all(&trash).map_err(io_err("remove", &trash)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("remove", &dir)(e)),
        }
    }

    /// All committed snapshots.
    pub fn list(&self) -> Result<Vec<Info>> {
        let dir = self.root.join("snapshots");
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_err("list", &dir))? {
            let entry = entry.map_err(io_err("list", &dir))?;
            let info_path = entry.path().join("info.json");
            if let Ok(bytes) = fs::read(&info_path)
                && let Ok(info) = serde_json::from_slice::<Info>(&bytes)
            {
                out.push(info);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}

/// A snapshot being written. Removed on drop unless committed.
#[derive(Debug)]
pub struct Staged {
    dir: Option<PathBuf>,
}

impl Staged {
    /// The directory to write the snapshot's contents into.
    pub fn fs(&self) -> PathBuf {
        self.dir
            .as_ref()
            .expect("a Staged holds its directory until commit or drop")
            .join("fs")
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take()
            && let Err(e) = fs::remove_dir_all(&dir)
        {
            tracing::warn!(path = %dir.display(), error = %e, "could not remove staged snapshot");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_makes_staged_visible_and_is_idempotent() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let s = store.stage().unwrap();
        fs::write(s.fs().join("a"), b"x").unwrap();
        let c = store.commit(s, "sha256:aa", None, 1).unwrap();
        assert_eq!(fs::read(c.fs.join("a")).unwrap(), b"x");
        let again = store.stage().unwrap();
        let c2 = store.commit(again, "sha256:aa", None, 1).unwrap();
        assert_eq!(c, c2);
        assert_eq!(fs::read_dir(tmp.path().join("staging")).unwrap().count(), 0);
        assert_eq!(store.list().unwrap().len(), 1);
    }

    #[test]
    fn dropped_stage_leaves_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let s = store.stage().unwrap();
        fs::write(s.fs().join("a"), b"x").unwrap();
        drop(s);
        assert_eq!(fs::read_dir(tmp.path().join("staging")).unwrap().count(), 0);
        assert!(store.list().unwrap().is_empty());
    }

    #[test]
    fn open_cleans_leftovers_of_a_killed_process() {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir_all(tmp.path().join("staging/123-0/fs")).unwrap();
        let store = Store::open(tmp.path()).unwrap();
        assert_eq!(fs::read_dir(tmp.path().join("staging")).unwrap().count(), 0);
        assert!(store.list().unwrap().is_empty());
    }

    #[test]
    fn rejects_missing_parent_and_bad_names() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let err = store.commit(store.stage().unwrap(), "sha256:bb", Some("sha256:aa"), 0);
        assert!(matches!(err, Err(Error::MissingParent { .. })));
        for bad in ["", "../x", "a/b", ".hidden"] {
            assert!(
                matches!(store.get(bad), Err(Error::InvalidName(_))),
                "{bad}"
            );
        }
        store.remove("sha256:cc").unwrap();
    }
}
