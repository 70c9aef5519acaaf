//! Hoist's image records seen as CRI images: grouped by image ID (the config digest), with
//! their tags and digests, and looked up the way containerd's CRI looks images up.
//!
//! A CRI image reference is one of:
//! * an image ID, `sha256:<hex>`, the bare `<hex>`, or a unique prefix of the hex of at least
//!   [`MIN_ID_PREFIX`] characters (`crictl` prints 13);
//! * a reference, normalised as Docker does (`alpine` → `docker.io/library/alpine:latest`),
//!   by tag or by digest (`repo@sha256:…`; `repo:tag@sha256:…` means the digest).

use std::collections::BTreeMap;

use crate::digest::Digest;
use crate::images::{Images, Record};
use crate::manifest;
use crate::proto::cri::v1 as cri;
use crate::reference::Reference;

/// The shortest ID prefix accepted, as in `crictl images` (12 hex characters).
pub const MIN_ID_PREFIX: usize = 12;

/// One image: every record whose config is `id`.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The image ID: the config digest.
    pub id: Digest,
    /// The records (names) of the image, sorted by name.
    pub records: Vec<Record>,
}

impl Entry {
    /// Names with a tag (`docker.io/library/alpine:3.20`).
    pub fn repo_tags(&self) -> Vec<String> {
        self.records
            .iter()
            .filter(|r| !r.name.contains('@'))
            .map(|r| r.name.clone())
            .collect()
    }

    /// Names pinned to a digest (`docker.io/library/alpine@sha256:…`).
    pub fn repo_digests(&self) -> Vec<String> {
        self.records
            .iter()
            .filter(|r| r.name.contains('@'))
            .map(|r| r.name.clone())
            .collect()
    }

    /// Every name the image is known by.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.records.iter().map(|r| r.name.as_str())
    }

    /// The record to describe the image by (they share config, manifest and layers).
    pub fn record(&self) -> &Record {
        &self.records[0]
    }
}

/// All images, by ID.
#[derive(Debug, Default)]
pub struct Catalog {
    entries: BTreeMap<Digest, Entry>,
}

impl Catalog {
    /// Reads every record of `images`.
    pub fn load(images: &Images) -> crate::images::Result<Catalog> {
        let mut entries: BTreeMap<Digest, Entry> = BTreeMap::new();
        for record in images.list()? {
            entries
                .entry(record.config)
                .or_insert_with(|| Entry {
                    id: record.config,
                    records: Vec::new(),
                })
                .records
                .push(record);
        }
        Ok(Catalog { entries })
    }

    /// Every image, by ID.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values()
    }

    /// The image `reference` names (an ID, an ID prefix, a tag or a digest reference).
    pub fn resolve(&self, reference: &str) -> Option<&Entry> {
        let reference = reference.trim();
        if let Some(entry) = self.by_id(reference) {
            return Some(entry);
        }
        let parsed: Reference = reference.parse().ok()?;
        let name = match parsed.digest() {
            Some(d) => parsed.with_digest(d).to_string(),
            None => parsed.to_string(),
        };
        self.entries
            .values()
            .find(|e| e.records.iter().any(|r| r.name == name))
    }

    fn by_id(&self, reference: &str) -> Option<&Entry> {
        let hex = reference.strip_prefix("sha256:").unwrap_or(reference);
        let is_hex = hex.len() >= MIN_ID_PREFIX
            && hex.len() <= 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !is_hex {
            return None;
        }
        let mut found = self
            .entries
            .values()
            .filter(|e| e.id.hex().starts_with(hex));
        match (found.next(), found.next()) {
            (Some(e), None) => Some(e),
            _ => None, // none, or an ambiguous prefix
        }
    }
}

/// Who a container runs as by default, from the config's `USER`, as containerd's CRI reads
/// it: the part before `:`; a number is a uid, anything else a user name.
pub fn user(config: &manifest::Config) -> (Option<i64>, String) {
    let user = config
        .config
        .as_ref()
        .and_then(|c| c.user.as_deref())
        .unwrap_or_default();
    let name = user.split(':').next().unwrap_or_default();
    match name.parse::<i64>() {
        Ok(uid) => (Some(uid), String::new()),
        Err(_) => (None, name.to_owned()),
    }
}

/// The CRI description of `entry`. `size` is the stored size of the image (layers, manifest
/// and config), `config` its parsed config, `pinned` whether kubelet must never remove it.
pub fn to_cri(entry: &Entry, size: u64, config: &manifest::Config, pinned: bool) -> cri::Image {
    let (uid, username) = user(config);
    cri::Image {
        id: entry.id.to_string(),
        repo_tags: entry.repo_tags(),
        repo_digests: entry.repo_digests(),
        size,
        uid: uid.map(|value| cri::Int64Value { value }),
        username,
        spec: Some(cri::ImageSpec {
            image: entry.id.to_string(),
            ..cri::ImageSpec::default()
        }),
        pinned,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str, config: &[u8]) -> Record {
        Record {
            name: name.into(),
            target: Digest::of(b"target"),
            manifest: Digest::of(b"manifest"),
            config: Digest::of(config),
            chain_ids: vec![Digest::of(b"layer")],
            size: 10,
        }
    }

    fn catalog() -> Catalog {
        let tmp = tempfile::tempdir().unwrap();
        let images = Images::open(tmp.path()).unwrap();
        let digest_name = format!("docker.io/library/alpine@{}", Digest::of(b"target"));
        for r in [
            record("docker.io/library/alpine:3.20", b"a"),
            record("docker.io/library/alpine:latest", b"a"),
            record(&digest_name, b"a"),
            record("r.example:5000/team/app:1", b"b"),
        ] {
            images.put(&r).unwrap();
        }
        Catalog::load(&images).unwrap()
    }

    #[test]
    fn groups_names_by_image_id() {
        let c = catalog();
        assert_eq!(c.entries().count(), 2);
        let a = c.resolve("alpine:3.20").unwrap();
        assert_eq!(
            a.repo_tags(),
            [
                "docker.io/library/alpine:3.20",
                "docker.io/library/alpine:latest"
            ]
        );
        assert_eq!(a.repo_digests().len(), 1);
    }

    #[test]
    fn resolves_by_id_tag_and_digest_to_the_same_image() {
        let c = catalog();
        let id = Digest::of(b"a");
        let digest_ref = format!("alpine@{}", Digest::of(b"target"));
        let tag_and_digest = format!("alpine:whatever@{}", Digest::of(b"target"));
        for reference in [
            id.to_string(),
            id.hex().to_owned(),
            id.hex()[..12].to_owned(),
            "alpine".into(),
            "docker.io/library/alpine:latest".into(),
            "library/alpine:3.20".into(),
            digest_ref,
            tag_and_digest,
        ] {
            let found = c.resolve(&reference).map(|e| e.id);
            assert_eq!(found, Some(id), "{reference}");
        }
        for unknown in [
            "alpine:3.19",
            "busybox",
            &Digest::of(b"zzz").to_string(),
            &id.hex()[..6],
            "NOT A REF",
            "",
        ] {
            assert!(c.resolve(unknown).is_none(), "{unknown}");
        }
    }

    #[test]
    fn user_is_uid_or_name() {
        let config = |user: &str| manifest::Config {
            config: Some(manifest::RunConfig {
                user: Some(user.into()),
            }),
            ..manifest::Config::default()
        };
        assert_eq!(user(&config("1002")), (Some(1002), String::new()));
        assert_eq!(user(&config("www-data")), (None, "www-data".into()));
        assert_eq!(user(&config("1003:1004")), (Some(1003), String::new()));
        assert_eq!(user(&config("app:staff")), (None, "app".into()));
        assert_eq!(user(&config("")), (None, String::new()));
        assert_eq!(user(&manifest::Config::default()), (None, String::new()));
    }
}
