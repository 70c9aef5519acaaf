//! containerd's snapshotter operations on the store, with the semantics of containerd's
//! overlayfs snapshotter and its bbolt metadata (`snapshots/storage/bolt.go`):
//!
//! * keys and names share one namespace; a parent must be a committed snapshot;
//! * Commit turns an active snapshot into a committed one under a new name, keeping its
//!   directory, replacing its labels, and recording its disk usage;
//! * Remove is refused while other snapshots are built on the snapshot.
//!
//! Stat, Update and Walk are in `info.rs`.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::db::{Read, Record, Write};
use super::dirs::{disk_usage, remove_any};
use super::error::io_err;
use super::info::clean_labels;
use super::{Error, Kind, Result, Store, TARGET_LABEL, Usage, check_key, now};
use crate::mount::{self, Mount};

/// Which of the checks `commit_active` repeats inside its write transaction fail.
fn commit_source(
    named: Option<Record>,
    keyed: Option<Record>,
    key: &str,
    name: &str,
) -> Result<Record> {
    if named.is_some() {
        return Err(Error::AlreadyExists {
            key: name.to_owned(),
        });
    }
    let record = keyed.ok_or_else(|| Error::NotFound {
        key: key.to_owned(),
    })?;
    if record.kind != Kind::Active {
        return Err(Error::NotActive {
            key: key.to_owned(),
            kind: record.kind,
        });
    }
    Ok(record)
}

impl Store {
    /// The parent and its ancestors, nearest first, after checking that `parent` exists and
    /// is committed.
    pub(super) fn parent_chain(
        &self,
        tx: &Write,
        key: &str,
        parent: &str,
    ) -> Result<Vec<(String, Record)>> {
        match tx.get(parent)? {
            None => Err(Error::MissingParent {
                key: key.to_owned(),
                parent: parent.to_owned(),
            }),
            Some(p) if p.kind != Kind::Committed => Err(Error::ParentNotCommitted {
                key: key.to_owned(),
                parent: parent.to_owned(),
            }),
            Some(_) => tx.chain(parent),
        }
    }

    fn mounts_for(&self, kind: Kind, id: u64, chain: &[(String, Record)]) -> Vec<Mount> {
        let lowers: Vec<_> = chain.iter().map(|(_, r)| self.layout.fs(r.id)).collect();
        mount::build(&mount::Spec {
            active: kind == Kind::Active,
            upper: &self.layout.fs(id),
            work: &self.layout.work(id),
            lowers: &lowers,
            index_off: self.index_off,
        })
    }

    /// Creates the active snapshot `key` on `parent` and returns its mounts (containerd
    /// `Prepare`). With a [`TARGET_LABEL`] naming a snapshot already committed on the same
    /// parent, nothing is created and [`Error::TargetExists`] tells containerd to use it.
    pub fn prepare(
        &self,
        key: &str,
        parent: Option<&str>,
        labels: BTreeMap<String, String>,
    ) -> Result<Vec<Mount>> {
        self.create(Kind::Active, key, parent, labels)
    }

    /// Creates the read-only view `key` of `parent` and returns its mounts (containerd `View`).
    pub fn view(
        &self,
        key: &str,
        parent: Option<&str>,
        labels: BTreeMap<String, String>,
    ) -> Result<Vec<Mount>> {
        self.create(Kind::View, key, parent, labels)
    }

    fn create(
        &self,
        kind: Kind,
        key: &str,
        parent: Option<&str>,
        labels: BTreeMap<String, String>,
    ) -> Result<Vec<Mount>> {
        check_key(key)?;
        let labels = clean_labels(labels)?;
        let tmp = self.session.new_snapshot_dir(kind == Kind::Active)?;
        let result = self.create_from(kind, key, parent, labels, &tmp);
        if result.is_err()
            && let Err(e) = self.session.trash(&tmp)
        {
            tracing::warn!(error = %e, "could not remove an unused snapshot directory");
        }
        result
    }

    fn create_from(
        &self,
        kind: Kind,
        key: &str,
        parent: Option<&str>,
        labels: BTreeMap<String, String>,
        tmp: &Path,
    ) -> Result<Vec<Mount>> {
        let tx = Write::begin(&self.db)?;
        if let Some(target) = labels.get(TARGET_LABEL)
            && let Some(mut found) = tx.get(target)?
            && found.kind == Kind::Committed
            && found.parent.as_deref() == parent
        {
            if found.pinned {
                // containerd records the target in its own metadata once it sees this answer.
                found.pinned = false;
                tx.put(target, &found)?;
                tx.commit()?;
            }
            return Err(Error::TargetExists {
                key: key.to_owned(),
                target: target.clone(),
            });
        }
        let chain = match parent {
            Some(parent) => self.parent_chain(&tx, key, parent)?,
            None => Vec::new(),
        };
        if tx.get(key)?.is_some() {
            return Err(Error::AlreadyExists {
                key: key.to_owned(),
            });
        }
        if let Some((_, nearest)) = chain.first() {
            // Like containerd: the new upper directory is owned as the parent's root is, so a
            // container whose image sets another owner on `/` sees it unchanged.
            let lower = self.layout.fs(nearest.id);
            let owner = fs::metadata(&lower).map_err(io_err("stat", &lower))?;
            let upper = tmp.join("fs");
            let mine = fs::metadata(&upper).map_err(io_err("stat", &upper))?;
            if (mine.uid(), mine.gid()) != (owner.uid(), owner.gid()) {
                std::os::unix::fs::chown(&upper, Some(owner.uid()), Some(owner.gid()))
                    .map_err(io_err("chown", &upper))?;
            }
        }
        let id = tx.allocate_id(|id| self.layout.snapshot(id).exists())?;
        let at = now();
        let record = Record {
            id,
            kind,
            parent: parent.map(str::to_owned),
            labels,
            created: at,
            updated: at,
            size: 0,
            usage: None,
            pinned: false,
        };
        tx.put(key, &record)?;
        if let Some(parent) = parent {
            tx.link(parent, key)?;
        }
        self.install(tx, tmp, id)?;
        Ok(self.mounts_for(kind, id, &chain))
    }

    /// The mounts of the active snapshot or view `key` (containerd `Mounts`).
    pub fn mounts(&self, key: &str) -> Result<Vec<Mount>> {
        let tx = Read::begin(&self.db)?;
        let record = tx.get(key)?.ok_or_else(|| Error::NotFound {
            key: key.to_owned(),
        })?;
        if record.kind == Kind::Committed {
            return Err(Error::NotMountable {
                key: key.to_owned(),
            });
        }
        let chain = match &record.parent {
            Some(parent) => tx.chain(parent)?,
            None => Vec::new(),
        };
        Ok(self.mounts_for(record.kind, record.id, &chain))
    }

    /// Commits the active snapshot `key` as `name`, with `labels` replacing its own (containerd
    /// `Commit`). Its directory stays where it is; its disk usage is recorded.
    pub fn commit_active(
        &self,
        key: &str,
        name: &str,
        labels: BTreeMap<String, String>,
    ) -> Result<()> {
        check_key(name)?;
        let labels = clean_labels(labels)?;
        let before = {
            let tx = Read::begin(&self.db)?;
            commit_source(tx.get(name)?, tx.get(key)?, key, name)?
        };
        // Walking the upper directory can take a while: do it outside the write transaction.
        let mut usage = disk_usage(&self.layout.fs(before.id))?;
        let tx = Write::begin(&self.db)?;
        let source = commit_source(tx.get(name)?, tx.get(key)?, key, name)?;
        if source.id != before.id {
            usage = disk_usage(&self.layout.fs(source.id))?;
        }
        let at = now();
        let record = Record {
            kind: Kind::Committed,
            labels,
            created: at,
            updated: at,
            size: usage.size,
            usage: Some(usage),
            pinned: false,
            ..source
        };
        tx.delete(key)?;
        tx.put(name, &record)?;
        if let Some(parent) = &record.parent {
            tx.unlink(parent, key)?;
            tx.link(parent, name)?;
        }
        tx.commit()
    }

    /// Removes the snapshot `key`, whatever its origin: Hoist's own removal of a layer.
    pub fn remove(&self, key: &str) -> Result<()> {
        self.remove_inner(key, false)
    }

    /// containerd's `Remove`: as [`Store::remove`], except that a layer the engine committed
    /// and containerd has not adopted yet is refused with [`Error::Pinned`]
    /// (FailedPrecondition, which containerd's garbage collector skips silently). Without the
    /// pin, containerd's collector, which removes every backend snapshot its own metadata does
    /// not reference, would delete layers `hoist pull` has just written.
    pub fn release(&self, key: &str) -> Result<()> {
        self.remove_inner(key, true)
    }

    fn remove_inner(&self, key: &str, respect_pin: bool) -> Result<()> {
        let tx = Write::begin(&self.db)?;
        let record = tx.get(key)?.ok_or_else(|| Error::NotFound {
            key: key.to_owned(),
        })?;
        if tx.has_children(key)? {
            return Err(Error::HasChildren {
                key: key.to_owned(),
            });
        }
        if respect_pin && record.pinned {
            return Err(Error::Pinned {
                key: key.to_owned(),
            });
        }
        tx.delete(key)?;
        if let Some(parent) = &record.parent {
            tx.unlink(parent, key)?;
        }
        tx.commit()?;
        // The snapshot is gone; a failure to delete its directory is left to Cleanup.
        if let Err(e) = self.session.trash(&self.layout.snapshot(record.id)) {
            tracing::warn!(%key, error = %e, "could not remove a snapshot directory; cleanup will");
        }
        Ok(())
    }

    /// Disk usage of `key` (containerd `Usage`): measured now for an active snapshot, recorded
    /// at commit for a committed one (measured once, then kept, for the engine's), zero for a
    /// view.
    pub fn usage(&self, key: &str) -> Result<Usage> {
        let record = Read::begin(&self.db)?
            .get(key)?
            .ok_or_else(|| Error::NotFound {
                key: key.to_owned(),
            })?;
        match (record.kind, record.usage) {
            (Kind::View, _) => Ok(Usage::default()),
            (Kind::Committed, Some(usage)) => Ok(usage),
            (Kind::Active, _) => disk_usage(&self.layout.fs(record.id)),
            (Kind::Committed, None) => {
                let usage = disk_usage(&self.layout.fs(record.id))?;
                let tx = Write::begin(&self.db)?;
                if let Some(mut current) = tx.get(key)?
                    && current.id == record.id
                {
                    current.usage = Some(usage);
                    tx.put(key, &current)?;
                    tx.commit()?;
                }
                Ok(usage)
            }
        }
    }

    /// Removes directories no metadata references: staging sessions of dead processes and
    /// snapshot directories a killed process renamed into place but never recorded, or whose
    /// removal it did not finish (containerd `Cleanup`). Returns how many were removed.
    pub fn cleanup(&self) -> Result<usize> {
        let mut removed = self.session.sweep_dead()?;
        let snapshots = self.layout.snapshots();
        let mut orphans = Vec::new();
        {
            // Holding the write lock: no process is between renaming a directory into
            // `snapshots/` and committing the record that names it.
            let tx = Write::begin(&self.db)?;
            let ids: HashSet<String> = tx.all()?.iter().map(|(_, r)| r.id.to_string()).collect();
            for entry in fs::read_dir(&snapshots).map_err(io_err("list", &snapshots))? {
                let entry = entry.map_err(io_err("list", &snapshots))?;
                if !ids.contains(entry.file_name().to_string_lossy().as_ref()) {
                    let trash = self.session.trash_path();
                    fs::rename(entry.path(), &trash).map_err(io_err("rename", &entry.path()))?;
                    orphans.push(trash);
                }
            }
        }
        for orphan in orphans {
            remove_any(&orphan)?;
            removed += 1;
        }
        Ok(removed)
    }
}
