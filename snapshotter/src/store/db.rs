//! The metadata database: one record per snapshot key, a parent → children index and the next
//! directory id, in an embedded transactional store.
//!
//! # Why redb
//!
//! containerd keeps the same metadata in bbolt, an embedded copy-on-write B+tree with ACID
//! transactions. redb (4.6) is a Rust store of the same design: pure Rust (no C toolchain,
//! like the rest of the build), a copy-on-write B+tree whose commit switches a checksummed
//! header slot, so a process killed at any point reopens at the last committed transaction,
//! and serialised write transactions, which make "check the key, allocate an id, rename the
//! directory, insert the record" one atomic step. Considered and not taken: SQLite (rusqlite)
//! builds a C library and brings SQL for three tables; sled's stable line (0.34) dates from
//! 2021 and its 1.0 is still an alpha; an LSM store such as fjall is made for write volumes a
//! snapshotter never sees; JSON files beside each directory (the first version of this store)
//! have no transaction spanning several snapshots, so Commit (a key becomes a name and its
//! parent's child link moves) and Remove (refused while children exist) could not be made
//! atomic without writing a journal ourselves.
//!
//! The database is opened in redb's `MultiWriter` mode: `hoist pull` writes into the same store
//! that a running `hoist serve` or `hoist-snapshotter` serves, from another process, and redb
//! serialises their write transactions with byte-range locks (held per open file description,
//! so two `Store`s in one process also exclude each other). That mode is recent (redb 4.5); the
//! tests run two stores on one root in one process, and the engine's path from the test
//! process beside a running `hoist-snapshotter`.
//!
//! Records are JSON: a few hundred bytes each, readable with any redb dump, and easy to extend
//! with `#[serde(default)]` fields.

use std::collections::BTreeMap;
use std::path::Path;

use redb::{
    Database, MultimapTableDefinition, ReadableDatabase, ReadableMultimapTable, ReadableTable,
    TableDefinition,
};

use super::error::{Result, db_err};
use super::{Error, Kind, Usage};

/// key → JSON [`Record`].
const SNAPSHOTS: TableDefinition<&str, &[u8]> = TableDefinition::new("snapshots");
/// parent name → child keys (active, view and committed children alike).
const CHILDREN: MultimapTableDefinition<&str, &str> = MultimapTableDefinition::new("children");
/// Counters: `next_id`.
const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("counters");

/// What is stored for one snapshot.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Record {
    /// Directory id: the snapshot lives in `snapshots/<id>/`.
    pub id: u64,
    /// Active, view or committed.
    pub kind: Kind,
    /// The committed snapshot below, by name.
    pub parent: Option<String>,
    /// Labels; never holds an empty value (containerd drops those).
    pub labels: BTreeMap<String, String>,
    /// Creation time, nanoseconds since the Unix epoch.
    pub created: u64,
    /// Last update, nanoseconds since the Unix epoch.
    pub updated: u64,
    /// Bytes the committer reported (the engine's unpacked size), or the disk usage at commit.
    pub size: u64,
    /// Disk usage of a committed snapshot, once computed.
    #[serde(default)]
    pub usage: Option<Usage>,
    /// Committed by Hoist's engine and not yet adopted by containerd: containerd's Remove (its
    /// garbage collector, which removes every snapshot its own metadata does not reference) is
    /// refused until containerd has taken the snapshot as a pull target.
    #[serde(default)]
    pub pinned: bool,
}

/// Opens (creating if needed) the database at `path`.
pub(crate) fn open(path: &Path) -> Result<Database> {
    let db = redb::Builder::new()
        .set_concurrency_mode(redb::ConcurrencyMode::MultiWriter)
        .set_cache_size(16 << 20)
        .create(path)
        .map_err(db_err("open"))?;
    let tx = Write::begin(&db)?;
    tx.tx
        .open_table(SNAPSHOTS)
        .map_err(db_err("create table"))?;
    tx.tx
        .open_multimap_table(CHILDREN)
        .map_err(db_err("create table"))?;
    tx.tx.open_table(COUNTERS).map_err(db_err("create table"))?;
    tx.commit()?;
    Ok(db)
}

fn decode(key: &str, bytes: &[u8]) -> Result<Record> {
    serde_json::from_slice(bytes).map_err(|source| Error::Corrupt {
        key: key.to_owned(),
        source,
    })
}

fn get_in(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> Result<Option<Record>> {
    match table.get(key).map_err(db_err("read"))? {
        Some(guard) => decode(key, guard.value()).map(Some),
        None => Ok(None),
    }
}

/// The committed snapshots from `parent` down to the base layer, nearest first.
fn chain_in(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    parent: &str,
) -> Result<Vec<(String, Record)>> {
    let mut chain = Vec::new();
    let mut next = Some(parent.to_owned());
    while let Some(name) = next {
        let record = get_in(table, &name)?.ok_or_else(|| Error::NotFound { key: name.clone() })?;
        next = record.parent.clone();
        chain.push((name, record));
    }
    Ok(chain)
}

fn all_in(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<Vec<(String, Record)>> {
    let mut out = Vec::new();
    for entry in table.iter().map_err(db_err("scan"))? {
        let (key, value) = entry.map_err(db_err("scan"))?;
        out.push((key.value().to_owned(), decode(key.value(), value.value())?));
    }
    Ok(out)
}

/// A read transaction: a consistent snapshot of the metadata.
pub(crate) struct Read {
    tx: redb::ReadTransaction,
}

impl Read {
    pub(crate) fn begin(db: &Database) -> Result<Read> {
        Ok(Read {
            tx: db.begin_read().map_err(db_err("begin read"))?,
        })
    }

    fn table(&self) -> Result<redb::ReadOnlyTable<&'static str, &'static [u8]>> {
        self.tx.open_table(SNAPSHOTS).map_err(db_err("open table"))
    }

    pub(crate) fn get(&self, key: &str) -> Result<Option<Record>> {
        get_in(&self.table()?, key)
    }

    pub(crate) fn chain(&self, parent: &str) -> Result<Vec<(String, Record)>> {
        chain_in(&self.table()?, parent)
    }

    pub(crate) fn all(&self) -> Result<Vec<(String, Record)>> {
        all_in(&self.table()?)
    }

    /// Every (parent, child) link of the children index.
    pub(crate) fn links(&self) -> Result<Vec<(String, String)>> {
        let table = self
            .tx
            .open_multimap_table(CHILDREN)
            .map_err(db_err("open table"))?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(db_err("scan"))? {
            let (parent, children) = entry.map_err(db_err("scan"))?;
            for child in children {
                let child = child.map_err(db_err("scan"))?;
                out.push((parent.value().to_owned(), child.value().to_owned()));
            }
        }
        Ok(out)
    }
}

/// A write transaction. Dropping it without [`Write::commit`] aborts it.
pub(crate) struct Write {
    tx: redb::WriteTransaction,
}

impl Write {
    pub(crate) fn begin(db: &Database) -> Result<Write> {
        Ok(Write {
            tx: db.begin_write().map_err(db_err("begin write"))?,
        })
    }

    fn table(&self) -> Result<redb::Table<'_, &'static str, &'static [u8]>> {
        self.tx.open_table(SNAPSHOTS).map_err(db_err("open table"))
    }

    fn children(&self) -> Result<redb::MultimapTable<'_, &'static str, &'static str>> {
        self.tx
            .open_multimap_table(CHILDREN)
            .map_err(db_err("open table"))
    }

    pub(crate) fn get(&self, key: &str) -> Result<Option<Record>> {
        get_in(&self.table()?, key)
    }

    pub(crate) fn chain(&self, parent: &str) -> Result<Vec<(String, Record)>> {
        chain_in(&self.table()?, parent)
    }

    pub(crate) fn all(&self) -> Result<Vec<(String, Record)>> {
        all_in(&self.table()?)
    }

    pub(crate) fn put(&self, key: &str, record: &Record) -> Result<()> {
        let bytes = serde_json::to_vec(record).expect("a Record always serialises");
        self.table()?
            .insert(key, bytes.as_slice())
            .map_err(db_err("write"))?;
        Ok(())
    }

    pub(crate) fn delete(&self, key: &str) -> Result<()> {
        self.table()?.remove(key).map_err(db_err("delete"))?;
        Ok(())
    }

    pub(crate) fn has_children(&self, key: &str) -> Result<bool> {
        let children = self.children()?;
        let mut values = children.get(key).map_err(db_err("read"))?;
        Ok(values.next().is_some())
    }

    pub(crate) fn link(&self, parent: &str, child: &str) -> Result<()> {
        self.children()?
            .insert(parent, child)
            .map_err(db_err("write"))?;
        Ok(())
    }

    pub(crate) fn unlink(&self, parent: &str, child: &str) -> Result<()> {
        self.children()?
            .remove(parent, child)
            .map_err(db_err("delete"))?;
        Ok(())
    }

    /// The next directory id (from 1), skipping any for which `taken(id)` holds: a directory a
    /// killed process renamed into place before its transaction committed.
    pub(crate) fn allocate_id(&self, taken: impl Fn(u64) -> bool) -> Result<u64> {
        let mut counters = self.tx.open_table(COUNTERS).map_err(db_err("open table"))?;
        let mut id = counters
            .get("next_id")
            .map_err(db_err("read"))?
            .map_or(1, |g| g.value());
        while taken(id) {
            id += 1;
        }
        counters
            .insert("next_id", id + 1)
            .map_err(db_err("write"))?;
        Ok(id)
    }

    pub(crate) fn commit(self) -> Result<()> {
        self.tx.commit().map_err(db_err("commit"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: u64, parent: Option<&str>) -> Record {
        Record {
            id,
            kind: Kind::Committed,
            parent: parent.map(str::to_owned),
            labels: BTreeMap::new(),
            created: 1,
            updated: 1,
            size: 0,
            usage: None,
            pinned: false,
        }
    }

    #[test]
    fn aborted_write_leaves_nothing_and_ids_skip_taken_directories() {
        let tmp = tempfile::tempdir().unwrap();
        let db = open(&tmp.path().join("m.redb")).unwrap();
        {
            let w = Write::begin(&db).unwrap();
            w.put("a", &record(1, None)).unwrap();
            // dropped: aborted
        }
        assert_eq!(Read::begin(&db).unwrap().get("a").unwrap(), None);

        let w = Write::begin(&db).unwrap();
        assert_eq!(w.allocate_id(|id| id < 3).unwrap(), 3);
        assert_eq!(w.allocate_id(|_| false).unwrap(), 4);
        w.put("a", &record(3, None)).unwrap();
        w.put("b", &record(4, Some("a"))).unwrap();
        w.link("a", "b").unwrap();
        assert!(w.has_children("a").unwrap());
        w.commit().unwrap();

        let r = Read::begin(&db).unwrap();
        let chain: Vec<u64> = r.chain("b").unwrap().iter().map(|(_, r)| r.id).collect();
        assert_eq!(chain, [4, 3]);
        assert_eq!(r.links().unwrap(), [("a".to_owned(), "b".to_owned())]);
    }
}
