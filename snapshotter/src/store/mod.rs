//! The snapshot store: containerd's snapshot model (active, view and committed snapshots with
//! keys, names, parents and labels) on overlayfs directories, with its metadata in an embedded
//! transactional database.
//!
//! Two kinds of client share it:
//!
//! * Hoist's pull engine writes layers directly: [`Store::stage`] gives a directory to unpack
//!   into, [`Store::commit`] turns it into a committed snapshot named by the layer's chain ID,
//!   and an existing name counts as success. Those snapshots carry the label
//!   `containerd.io/snapshot.ref = <name>` and are *pinned* until containerd adopts them.
//! * containerd, through the snapshots gRPC service: [`Store::prepare`], [`Store::view`],
//!   [`Store::commit_active`], [`Store::release`] and the rest, with the semantics of
//!   containerd's own overlayfs snapshotter. When containerd prepares a layer whose target
//!   (`containerd.io/snapshot.ref`) the engine has already committed on the same parent, the
//!   store answers AlreadyExists, as a remote snapshotter does, and containerd uses the
//!   engine's snapshot without fetching or unpacking the layer.
//!
//! Crash safety: a snapshot directory enters `snapshots/` only by a rename inside the write
//! transaction that records it (see `dirs.rs`), so after a `kill -9` at any point the metadata
//! names only whole snapshots; [`Store::open`] then removes whatever was left half-way.

mod check;
mod db;
mod dirs;
mod error;
mod info;
mod model;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use check::Problem;
use db::{Read, Record, Write};
use dirs::{Layout, Session};
use error::io_err;
pub use error::{Error, Result};

/// The label containerd's unpacker puts on a layer's snapshot: the chain ID it will be
/// committed as. A remote snapshotter that already has that snapshot answers Prepare with
/// AlreadyExists.
pub const TARGET_LABEL: &str = "containerd.io/snapshot.ref";

/// What a snapshot is (containerd's `snapshots.Kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Kind {
    /// Read-write, being built or used by a container; can be committed.
    Active,
    /// Read-only view of a committed snapshot.
    View,
    /// Immutable; other snapshots can be built on it.
    Committed,
}

impl Kind {
    /// The word containerd's filters use: `active`, `view`, `committed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Active => "active",
            Kind::View => "view",
            Kind::Committed => "committed",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Space a snapshot takes on disk (containerd's `snapshots.Usage`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Usage {
    /// Bytes allocated (512-byte blocks).
    pub size: u64,
    /// Inodes, hard links counted once.
    pub inodes: u64,
}

/// A snapshot's metadata (containerd's `snapshots.Info`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    /// Its key (active, view) or name (committed; for layers, the chain ID).
    pub name: String,
    /// The committed snapshot below it, if any.
    pub parent: Option<String>,
    /// Active, view or committed.
    pub kind: Kind,
    /// Labels (never with empty values).
    pub labels: BTreeMap<String, String>,
    /// When it was created (for committed snapshots: committed).
    pub created: SystemTime,
    /// When its labels last changed.
    pub updated: SystemTime,
    /// Bytes of content in this snapshot alone, as the engine reported at commit; the disk
    /// usage for snapshots committed through containerd; 0 for active snapshots and views.
    pub size: u64,
}

/// A committed snapshot and its contents directory.
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
    layout: Layout,
    db: redb::Database,
    session: Session,
    index_off: bool,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn time(nanos: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(nanos)
}

fn check_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(Error::EmptyKey);
    }
    Ok(())
}

fn info(name: &str, record: &Record) -> Info {
    Info {
        name: name.to_owned(),
        parent: record.parent.clone(),
        kind: record.kind,
        labels: record.labels.clone(),
        created: time(record.created),
        updated: time(record.updated),
        size: record.size,
    }
}

impl Store {
    /// Opens (creating if needed) the store at `root` and cleans up what killed processes left:
    /// staging directories and snapshot directories no metadata references.
    pub fn open(root: impl Into<PathBuf>) -> Result<Store> {
        let layout = Layout::new(root.into());
        let fresh = !layout.db().exists();
        if fresh && dirs::has_entries(&layout.snapshots())? {
            // Cleanup would delete every one of them as unreferenced: not a store of ours (or
            // one from before the metadata database), so leave it alone.
            return Err(Error::ForeignDirectory {
                path: layout.snapshots(),
            });
        }
        layout.create()?;
        let session = Session::create(&layout)?;
        let db = db::open(&layout.db())?;
        let store = Store {
            layout,
            db,
            session,
            index_off: crate::mount::kernel_has_overlay_index(),
        };
        let removed = store.cleanup()?;
        if removed > 0 {
            tracing::info!(removed, root = %store.root().display(), "removed leftovers of an interrupted run");
        }
        Ok(store)
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        self.layout.root()
    }

    fn committed(&self, name: &str, record: &Record) -> Committed {
        Committed {
            info: info(name, record),
            fs: self.layout.fs(record.id),
        }
    }

    /// The committed snapshot `name`, if it exists (an active snapshot or view under that key
    /// is not returned).
    pub fn get(&self, name: &str) -> Result<Option<Committed>> {
        check_key(name)?;
        let record = Read::begin(&self.db)?.get(name)?;
        Ok(record
            .filter(|r| r.kind == Kind::Committed)
            .map(|r| self.committed(name, &r)))
    }

    /// A fresh, empty directory to write a layer into. Dropping the [`Staged`] without
    /// committing it removes the directory.
    pub fn stage(&self) -> Result<Staged> {
        let dir = self.session.new_snapshot_dir(false)?;
        Ok(Staged { dir: Some(dir) })
    }

    /// Makes `staged` the committed snapshot `name` on top of the committed snapshot `parent`.
    ///
    /// Committing a name that is already committed is success: the staged copy is discarded
    /// and the existing snapshot returned, so concurrent pulls of one layer are idempotent. The
    /// new snapshot is labelled `containerd.io/snapshot.ref = name` and pinned (see
    /// [`Store::release`]).
    pub fn commit(
        &self,
        mut staged: Staged,
        name: &str,
        parent: Option<&str>,
        size: u64,
    ) -> Result<Committed> {
        check_key(name)?;
        let tx = Write::begin(&self.db)?;
        if let Some(existing) = tx.get(name)? {
            if existing.kind == Kind::Committed {
                return Ok(self.committed(name, &existing));
            }
            return Err(Error::AlreadyExists {
                key: name.to_owned(),
            });
        }
        if let Some(parent) = parent {
            self.parent_chain(&tx, name, parent)?;
        }
        let id = tx.allocate_id(|id| self.layout.snapshot(id).exists())?;
        let at = now();
        let record = Record {
            id,
            kind: Kind::Committed,
            parent: parent.map(str::to_owned),
            labels: BTreeMap::from([(TARGET_LABEL.to_owned(), name.to_owned())]),
            created: at,
            updated: at,
            size,
            usage: None,
            pinned: true,
        };
        tx.put(name, &record)?;
        if let Some(parent) = parent {
            tx.link(parent, name)?;
        }
        let dir = staged
            .dir
            .as_deref()
            .expect("a Staged holds its directory until commit or drop");
        self.install(tx, dir, id)?;
        staged.dir = None;
        Ok(self.committed(name, &record))
    }

    /// All committed snapshots, by name.
    pub fn list(&self) -> Result<Vec<Info>> {
        let mut out: Vec<Info> = Read::begin(&self.db)?
            .all()?
            .iter()
            .filter(|(_, r)| r.kind == Kind::Committed)
            .map(|(name, r)| info(name, r))
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Moves the snapshot directory `from` to `snapshots/<id>` and commits `tx`, which records
    /// it. If the commit fails, the directory goes back to `from`.
    fn install(&self, tx: Write, from: &Path, id: u64) -> Result<()> {
        let to = self.layout.snapshot(id);
        fs::rename(from, &to).map_err(io_err("rename", &to))?;
        crate::hooks::pause("commit");
        if let Err(e) = tx.commit() {
            if let Err(back) = fs::rename(&to, from) {
                tracing::warn!(path = %to.display(), error = %back, "could not move back an uncommitted snapshot; cleanup will remove it");
            }
            return Err(e);
        }
        Ok(())
    }
}

/// A layer being written by the engine. Removed on drop unless committed.
#[derive(Debug)]
pub struct Staged {
    dir: Option<PathBuf>,
}

impl Staged {
    /// The directory to write the layer's contents into.
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
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %dir.display(), error = %e, "could not remove staged snapshot");
        }
    }
}

#[cfg(test)]
mod tests;
