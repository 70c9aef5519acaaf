//! A consistency check of the whole store, for tests and diagnostics: every record's directory
//! exists, parents exist and are committed, the children index matches the records, no two
//! records share a directory, and no directory under `snapshots/` lacks a record.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::path::PathBuf;

use super::db::Read;
use super::error::io_err;
use super::{Kind, Result, Store};

/// One inconsistency found by [`Store::check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A record whose directory is missing.
    MissingDirectory {
        /// The snapshot.
        key: String,
        /// Its directory id.
        id: u64,
    },
    /// A record whose parent does not exist.
    MissingParent {
        /// The snapshot.
        key: String,
        /// Its parent.
        parent: String,
    },
    /// A record whose parent is not committed.
    ParentNotCommitted {
        /// The snapshot.
        key: String,
        /// Its parent.
        parent: String,
    },
    /// The children index and the records disagree about a parent → child link.
    ChildLink {
        /// The parent.
        parent: String,
        /// The child.
        child: String,
        /// `true`: the record has the parent but the index lacks the link; `false`: the index
        /// has a link no record backs.
        missing: bool,
    },
    /// Two records name the same directory.
    SharedDirectory {
        /// The directory id.
        id: u64,
        /// The two keys.
        keys: (String, String),
    },
    /// A directory under `snapshots/` that no record names (Cleanup removes these).
    Unreferenced {
        /// The directory.
        path: PathBuf,
    },
}

impl Store {
    /// Checks the metadata against itself and the directories; an empty list means consistent.
    /// Meant for a store no other process is writing to at the same time.
    pub fn check(&self) -> Result<Vec<Problem>> {
        let tx = Read::begin(&self.db)?;
        let records: HashMap<String, _> = tx.all()?.into_iter().collect();
        let links: BTreeSet<(String, String)> = tx.links()?.into_iter().collect();
        let mut problems = Vec::new();
        let mut ids: HashMap<u64, &str> = HashMap::new();
        let mut expected = BTreeSet::new();
        for (key, record) in &records {
            if !self.layout.fs(record.id).is_dir() {
                problems.push(Problem::MissingDirectory {
                    key: key.clone(),
                    id: record.id,
                });
            }
            if let Some(other) = ids.insert(record.id, key) {
                problems.push(Problem::SharedDirectory {
                    id: record.id,
                    keys: (other.to_owned(), key.clone()),
                });
            }
            let Some(parent) = &record.parent else {
                continue;
            };
            match records.get(parent) {
                None => problems.push(Problem::MissingParent {
                    key: key.clone(),
                    parent: parent.clone(),
                }),
                Some(p) if p.kind != Kind::Committed => {
                    problems.push(Problem::ParentNotCommitted {
                        key: key.clone(),
                        parent: parent.clone(),
                    })
                }
                Some(_) => {}
            }
            expected.insert((parent.clone(), key.clone()));
        }
        for (parent, child) in expected.symmetric_difference(&links) {
            problems.push(Problem::ChildLink {
                parent: parent.clone(),
                child: child.clone(),
                missing: !links.contains(&(parent.clone(), child.clone())),
            });
        }
        let snapshots = self.layout.snapshots();
        for entry in fs::read_dir(&snapshots).map_err(io_err("list", &snapshots))? {
            let entry = entry.map_err(io_err("list", &snapshots))?;
            let known = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u64>().ok())
                .is_some_and(|id| ids.contains_key(&id));
            if !known {
                problems.push(Problem::Unreferenced { path: entry.path() });
            }
        }
        Ok(problems)
    }
}
