//! The store's directories: where snapshots live, the per-process sessions new ones are built
//! under, the trash they are deleted through, and disk usage.
//!
//! ```text
//! ROOT/metadata.redb                 the metadata database (db.rs)
//! ROOT/snapshots/<id>/fs             a snapshot's contents: overlay upper dir, or lower dir once committed
//! ROOT/snapshots/<id>/work           overlay work dir (active snapshots)
//! ROOT/staging/<session>.<n>/fs      a snapshot being built; staging/ is empty when nothing is
//! ROOT/trash/<session>.<n>/          a directory being deleted
//! ROOT/sessions/<session>.lock       flock'ed by the open Store (process) that owns <session>
//! ROOT/sessions.lock                 serialises opening a session with sweeping dead ones
//! ```
//!
//! A directory enters `snapshots/` only by `rename` inside the write transaction that records
//! it, and leaves the same way (into the trash) after the transaction that forgets it, so the
//! directories under `snapshots/` differ from the metadata only by what a killed process was
//! between rename and commit; Cleanup removes those. Sessions are what make staging safe to
//! sweep while other processes (a `hoist pull` beside `hoist serve`) write into the same root:
//! an entry whose session lock can be taken belongs to a dead process.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use rustix::fs::{FlockOperation, flock};

use super::Usage;
use super::error::{Result, io_err};

/// Paths inside the store root.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    root: PathBuf,
}

impl Layout {
    pub(crate) fn new(root: PathBuf) -> Layout {
        Layout { root }
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn db(&self) -> PathBuf {
        self.root.join("metadata.redb")
    }

    pub(crate) fn snapshots(&self) -> PathBuf {
        self.root.join("snapshots")
    }

    pub(crate) fn snapshot(&self, id: u64) -> PathBuf {
        self.snapshots().join(id.to_string())
    }

    pub(crate) fn fs(&self, id: u64) -> PathBuf {
        self.snapshot(id).join("fs")
    }

    pub(crate) fn work(&self, id: u64) -> PathBuf {
        self.snapshot(id).join("work")
    }

    fn staging(&self) -> PathBuf {
        self.root.join("staging")
    }

    fn trash(&self) -> PathBuf {
        self.root.join("trash")
    }

    fn sessions(&self) -> PathBuf {
        self.root.join("sessions")
    }

    /// Creates the top-level directories.
    pub(crate) fn create(&self) -> Result<()> {
        for dir in [
            self.snapshots(),
            self.staging(),
            self.trash(),
            self.sessions(),
        ] {
            fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
        }
        Ok(())
    }

    /// Holds `sessions.lock` until the returned file is dropped.
    fn lock_sessions(&self) -> Result<File> {
        let path = self.root.join("sessions.lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err("open", &path))?;
        flock(&file, FlockOperation::LockExclusive).map_err(|e| io_err("lock", &path)(e.into()))?;
        Ok(file)
    }
}

/// This process's session: names its staging and trash entries, locked while the store is open.
#[derive(Debug)]
pub(crate) struct Session {
    layout: Layout,
    id: String,
    /// The open lock file holding the flock; closing it releases the session.
    lock: Option<File>,
    next: AtomicU64,
}

/// The session an entry of `staging/` or `trash/` (`<session>.<n>`) belongs to.
fn owner(entry: &str) -> &str {
    entry.rsplit_once('.').map_or(entry, |(session, _)| session)
}

impl Session {
    /// Creates and locks a fresh session.
    pub(crate) fn create(layout: &Layout) -> Result<Session> {
        let _guard = layout.lock_sessions()?;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let mut attempt = 0u32;
        let (id, lock) = loop {
            let id = format!("{}-{nanos}-{attempt}", std::process::id());
            let path = layout.sessions().join(format!("{id}.lock"));
            match File::options().write(true).create_new(true).open(&path) {
                Ok(file) => break (id, file),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => attempt += 1,
                Err(e) => return Err(io_err("create", &path)(e)),
            }
        };
        flock(&lock, FlockOperation::NonBlockingLockExclusive)
            .map_err(|e| io_err("lock", &layout.sessions().join(&id))(e.into()))?;
        Ok(Session {
            layout: layout.clone(),
            id,
            lock: Some(lock),
            next: AtomicU64::new(0),
        })
    }

    fn entry(&self) -> String {
        format!("{}.{}", self.id, self.next.fetch_add(1, Ordering::Relaxed))
    }

    /// A fresh path in `trash/` (not created).
    pub(crate) fn trash_path(&self) -> PathBuf {
        self.layout.trash().join(self.entry())
    }

    /// Creates a fresh snapshot directory in `staging/`: `fs`, and `work` if asked.
    pub(crate) fn new_snapshot_dir(&self, work: bool) -> Result<PathBuf> {
        let dir = self.layout.staging().join(self.entry());
        let fs_dir = dir.join("fs");
        fs::create_dir_all(&fs_dir).map_err(io_err("create", &fs_dir))?;
        if work {
            let work = dir.join("work");
            fs::create_dir(&work).map_err(io_err("create", &work))?;
        }
        Ok(dir)
    }

    /// Deletes `path`, first renaming it into the trash so that a concurrent sweep in another
    /// process never races the deletion. A path that is already gone is not an error.
    pub(crate) fn trash(&self, path: &Path) -> Result<()> {
        let trash = self.trash_path();
        match fs::rename(path, &trash) {
            Ok(()) => fs::remove_dir_all(&trash).map_err(io_err("remove", &trash)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("remove", path)(e)),
        }
    }

    /// Removes the sessions of processes that are gone, with their staging and trash entries.
    /// Returns how many entries were removed.
    pub(crate) fn sweep_dead(&self) -> Result<usize> {
        let mut doomed = Vec::new();
        {
            let _guard = self.layout.lock_sessions()?;
            let sessions = self.layout.sessions();
            let mut live = HashSet::from([self.id.clone()]);
            for entry in fs::read_dir(&sessions).map_err(io_err("list", &sessions))? {
                let path = entry.map_err(io_err("list", &sessions))?.path();
                let Some(id) = path.file_stem().and_then(|s| s.to_str()) else {
                    continue;
                };
                if id == self.id {
                    continue;
                }
                // A session whose lock we can take has no live owner.
                let alive = File::open(&path)
                    .is_ok_and(|f| flock(&f, FlockOperation::NonBlockingLockExclusive).is_err());
                if alive {
                    live.insert(id.to_owned());
                } else {
                    fs::remove_file(&path).map_err(io_err("remove", &path))?;
                }
            }
            for dir in [self.layout.staging(), self.layout.trash()] {
                for entry in fs::read_dir(&dir).map_err(io_err("list", &dir))? {
                    let entry = entry.map_err(io_err("list", &dir))?;
                    let name = entry.file_name();
                    if !live.contains(owner(&name.to_string_lossy())) {
                        let to = self.trash_path();
                        fs::rename(entry.path(), &to).map_err(io_err("rename", &entry.path()))?;
                        doomed.push(to);
                    }
                }
            }
        }
        for path in &doomed {
            remove_any(path)?;
        }
        Ok(doomed.len())
    }
}

/// Whether `dir` exists and has anything in it.
pub(crate) fn has_entries(dir: &Path) -> Result<bool> {
    match fs::read_dir(dir) {
        Ok(mut entries) => Ok(entries.next().is_some()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_err("list", dir)(e)),
    }
}

/// Removes a directory tree or a file.
pub(crate) fn remove_any(path: &Path) -> Result<()> {
    let gone = if path.is_dir() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    };
    gone.map_err(io_err("remove", path))
}

impl Drop for Session {
    fn drop(&mut self) {
        let prefix = format!("{}.", self.id);
        for dir in [self.layout.staging(), self.layout.trash()] {
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().starts_with(&prefix)
                    && let Err(e) = remove_any(&entry.path())
                {
                    tracing::warn!(error = %e, "could not remove a staging directory");
                }
            }
        }
        let lock = self.layout.sessions().join(format!("{}.lock", self.id));
        if let Err(e) = fs::remove_file(&lock) {
            tracing::warn!(path = %lock.display(), error = %e, "could not remove the session lock");
        }
        drop(self.lock.take());
    }
}

/// Disk usage of the tree at `root`, as containerd's `fs.DiskUsage`: 512-byte blocks actually
/// allocated and inodes, each hard-linked inode counted once, the root included.
pub(crate) fn disk_usage(root: &Path) -> Result<Usage> {
    let mut seen = HashSet::new();
    let mut usage = Usage::default();
    let mut stack = vec![root.to_owned()];
    while let Some(path) = stack.pop() {
        let meta = fs::symlink_metadata(&path).map_err(io_err("stat", &path))?;
        if seen.insert((meta.dev(), meta.ino())) {
            usage.inodes += 1;
            usage.size += meta.blocks() * 512;
        }
        if meta.is_dir() {
            for entry in fs::read_dir(&path).map_err(io_err("list", &path))? {
                stack.push(entry.map_err(io_err("list", &path))?.path());
            }
        }
    }
    Ok(usage)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweeps_only_sessions_whose_owner_is_gone() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::new(tmp.path().to_owned());
        layout.create().unwrap();
        let mine = Session::create(&layout).unwrap();
        let live = Session::create(&layout).unwrap();
        let live_dir = live.new_snapshot_dir(true).unwrap();
        // What a killed process leaves: an unlocked session file, its staged layer and trash,
        // and an entry of a session whose lock file is gone altogether.
        fs::write(tmp.path().join("sessions/1-2-0.lock"), b"").unwrap();
        fs::create_dir_all(tmp.path().join("staging/1-2-0.0/fs")).unwrap();
        fs::create_dir_all(tmp.path().join("trash/1-2-0.1/x")).unwrap();
        fs::create_dir_all(tmp.path().join("staging/3-4-0.0/fs")).unwrap();

        assert_eq!(mine.sweep_dead().unwrap(), 3);
        assert!(!tmp.path().join("sessions/1-2-0.lock").exists());
        assert!(
            live_dir.join("work").exists(),
            "a live session's work is kept"
        );
        drop(live);
        assert!(
            !live_dir.exists(),
            "a closed session removes its own entries"
        );
        drop(mine);
        for dir in ["staging", "trash", "sessions"] {
            assert_eq!(
                fs::read_dir(tmp.path().join(dir)).unwrap().count(),
                0,
                "{dir}"
            );
        }
    }

    #[test]
    fn disk_usage_counts_hard_links_once() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("a"), vec![1u8; 10_000]).unwrap();
        fs::hard_link(tmp.path().join("a"), tmp.path().join("b")).unwrap();
        fs::create_dir(tmp.path().join("d")).unwrap();
        let usage = disk_usage(tmp.path()).unwrap();
        assert_eq!(usage.inodes, 3, "root, a (= b), d");
        assert!(usage.size >= 10_000, "{usage:?}");
    }
}
