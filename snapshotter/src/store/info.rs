//! Reading and labelling snapshots' metadata: Stat, Update and Walk, with containerd's label
//! rules (`labels.Validate`: key and value at most 4096 bytes together; an empty value is no
//! label) and its Update semantics (`snapshots/storage/bolt.go` `UpdateInfo`): only labels
//! change, by `labels` or `labels.<key>` field paths, and no field path means all labels.

use std::collections::BTreeMap;

use super::db::{Read, Record, Write};
use super::{Error, Info, Result, Store, info, now};
use crate::filter::{Fields, Filter};

/// containerd's limit on a label's key and value together (`labels.Validate`).
const MAX_LABEL: usize = 4096;

/// Validates labels and drops empty values, which containerd treats as absent.
pub(super) fn clean_labels(labels: BTreeMap<String, String>) -> Result<BTreeMap<String, String>> {
    labels
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| {
            let size = k.len() + v.len();
            if size > MAX_LABEL {
                return Err(Error::LabelTooLarge { label: k, size });
            }
            Ok((k, v))
        })
        .collect()
}

impl Fields for Info {
    fn field(&self, path: &[String]) -> Option<&str> {
        match path.first()?.as_str() {
            "kind" => Some(self.kind.as_str()),
            "name" => Some(&self.name),
            "parent" => Some(self.parent.as_deref().unwrap_or("")),
            "labels" if !self.labels.is_empty() => {
                self.labels.get(&path[1..].join(".")).map(String::as_str)
            }
            _ => None,
        }
    }
}

impl Store {
    /// The snapshot `key`'s metadata (containerd `Stat`).
    pub fn stat(&self, key: &str) -> Result<Info> {
        let record = Read::begin(&self.db)?
            .get(key)?
            .ok_or_else(|| Error::NotFound {
                key: key.to_owned(),
            })?;
        Ok(info(key, &record))
    }

    /// Updates the labels of `key` (containerd `Update`): with no field paths all labels are
    /// replaced by `labels`; `labels` does the same; `labels.<k>` sets or (absent or empty in
    /// `labels`) removes one label. Any other field path is refused.
    pub fn update(
        &self,
        key: &str,
        labels: BTreeMap<String, String>,
        fieldpaths: &[String],
    ) -> Result<Info> {
        let tx = Write::begin(&self.db)?;
        let record = tx.get(key)?.ok_or_else(|| Error::NotFound {
            key: key.to_owned(),
        })?;
        if fieldpaths.is_empty() {
            return self.write_labels(tx, key, record, labels);
        }
        let mut updated = record.labels.clone();
        for path in fieldpaths {
            if let Some(label) = path.strip_prefix("labels.") {
                match labels.get(label) {
                    Some(v) => updated.insert(label.to_owned(), v.clone()),
                    None => updated.remove(label),
                };
            } else if path == "labels" {
                updated.clone_from(&labels);
            } else {
                return Err(Error::ImmutableField {
                    key: key.to_owned(),
                    field: path.clone(),
                });
            }
        }
        self.write_labels(tx, key, record, updated)
    }

    fn write_labels(
        &self,
        tx: Write,
        key: &str,
        mut record: Record,
        labels: BTreeMap<String, String>,
    ) -> Result<Info> {
        record.labels = clean_labels(labels)?;
        record.updated = now();
        tx.put(key, &record)?;
        tx.commit()?;
        Ok(info(key, &record))
    }

    /// Every snapshot matching any of `filters` (containerd `Walk`; none matches all).
    pub fn walk<S: AsRef<str>>(&self, filters: &[S]) -> Result<Vec<Info>> {
        let filter = Filter::parse_all(filters)?;
        Ok(Read::begin(&self.db)?
            .all()?
            .iter()
            .map(|(name, r)| info(name, r))
            .filter(|i| filter.matches(i))
            .collect())
    }
}
