//! Layer entries: what one tar header (plus data) of a layer describes.

use std::collections::BTreeMap;

use super::{Content, Error, Result};

/// The mtime entries get unless told otherwise (2023-11-14T22:13:20Z): fixed, so images are
/// reproducible, and well after the epoch, so no tool treats it as "unset".
pub const DEFAULT_MTIME: u64 = 1_700_000_000;

/// Ownership, permissions, time and extended attributes of an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// Permission bits including setuid (0o4000), setgid (0o2000) and sticky (0o1000).
    pub mode: u32,
    /// Owner user id.
    pub uid: u64,
    /// Owner group id.
    pub gid: u64,
    /// Modification time, seconds since the epoch.
    pub mtime: u64,
    /// Extended attributes, written as PAX `SCHILY.xattr.NAME` records.
    pub xattrs: BTreeMap<String, Vec<u8>>,
}

impl Meta {
    /// Root-owned, [`DEFAULT_MTIME`], no xattrs, with these permission bits.
    pub fn with_mode(mode: u32) -> Self {
        Self {
            mode,
            uid: 0,
            gid: 0,
            mtime: DEFAULT_MTIME,
            xattrs: BTreeMap::new(),
        }
    }
}

/// One entry of a layer, in the terms of the OCI image spec's layer changesets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A regular file.
    File {
        /// Path relative to the root, `/`-separated.
        path: String,
        /// What the file holds.
        content: Content,
        /// Owner, mode, mtime, xattrs.
        meta: Meta,
    },
    /// A directory.
    Dir {
        /// Path relative to the root.
        path: String,
        /// Owner, mode, mtime, xattrs.
        meta: Meta,
    },
    /// A symbolic link; its mode is always 0777 on Linux.
    Symlink {
        /// Path of the link.
        path: String,
        /// What the link points to, verbatim (relative or absolute).
        target: String,
        /// Owner and mtime (mode and xattrs do not apply to links).
        meta: Meta,
    },
    /// A hard link to a file written earlier in the same layer. Its tar header repeats the
    /// target's metadata, because appliers (containerd included) chown/chmod/utime the link
    /// path after linking, which changes the shared inode.
    Hardlink {
        /// Path of the new name.
        path: String,
        /// Path of the existing file.
        target: String,
    },
    /// Removes `path` of the lower layers: a `.wh.NAME` entry.
    Whiteout {
        /// The path to hide.
        path: String,
    },
    /// Hides everything lower layers have under `dir`: a `DIR/.wh..wh..opq` entry.
    Opaque {
        /// The directory whose lower contents disappear; empty for the root.
        dir: String,
    },
    /// A named pipe.
    Fifo {
        /// Path of the pipe.
        path: String,
        /// Owner, mode, mtime, xattrs.
        meta: Meta,
    },
    /// A character device node.
    CharDevice {
        /// Path of the node.
        path: String,
        /// Device major number.
        major: u32,
        /// Device minor number.
        minor: u32,
        /// Owner, mode, mtime, xattrs.
        meta: Meta,
    },
}

impl Entry {
    /// A 0644 root-owned file.
    pub fn file(path: impl Into<String>, content: impl Into<Content>) -> Self {
        Entry::File {
            path: path.into(),
            content: content.into(),
            meta: Meta::with_mode(0o644),
        }
    }

    /// A 0755 root-owned directory.
    pub fn dir(path: impl Into<String>) -> Self {
        Entry::Dir {
            path: path.into(),
            meta: Meta::with_mode(0o755),
        }
    }

    /// A symlink at `path` pointing to `target`.
    pub fn symlink(path: impl Into<String>, target: impl Into<String>) -> Self {
        Entry::Symlink {
            path: path.into(),
            target: target.into(),
            meta: Meta::with_mode(0o777),
        }
    }

    /// A hard link at `path` to the file `target` of the same layer.
    pub fn hardlink(path: impl Into<String>, target: impl Into<String>) -> Self {
        Entry::Hardlink {
            path: path.into(),
            target: target.into(),
        }
    }

    /// A whiteout hiding `path` of the lower layers.
    pub fn whiteout(path: impl Into<String>) -> Self {
        Entry::Whiteout { path: path.into() }
    }

    /// An opaque marker hiding what the lower layers have under `dir`.
    pub fn opaque(dir: impl Into<String>) -> Self {
        Entry::Opaque { dir: dir.into() }
    }

    /// A 0644 root-owned fifo.
    pub fn fifo(path: impl Into<String>) -> Self {
        Entry::Fifo {
            path: path.into(),
            meta: Meta::with_mode(0o644),
        }
    }

    /// A 0666 root-owned character device.
    pub fn char_device(path: impl Into<String>, major: u32, minor: u32) -> Self {
        Entry::CharDevice {
            path: path.into(),
            major,
            minor,
            meta: Meta::with_mode(0o666),
        }
    }

    /// The path the entry creates or removes (for [`Entry::Opaque`], the directory).
    pub fn path(&self) -> &str {
        match self {
            Entry::File { path, .. }
            | Entry::Dir { path, .. }
            | Entry::Symlink { path, .. }
            | Entry::Hardlink { path, .. }
            | Entry::Whiteout { path }
            | Entry::Fifo { path, .. }
            | Entry::CharDevice { path, .. } => path,
            Entry::Opaque { dir } => dir,
        }
    }

    /// The entry's own metadata; `None` for links to other entries and for whiteouts.
    pub fn meta(&self) -> Option<&Meta> {
        match self {
            Entry::File { meta, .. }
            | Entry::Dir { meta, .. }
            | Entry::Symlink { meta, .. }
            | Entry::Fifo { meta, .. }
            | Entry::CharDevice { meta, .. } => Some(meta),
            Entry::Hardlink { .. } | Entry::Whiteout { .. } | Entry::Opaque { .. } => None,
        }
    }

    fn meta_mut(&mut self) -> Option<&mut Meta> {
        match self {
            Entry::File { meta, .. }
            | Entry::Dir { meta, .. }
            | Entry::Symlink { meta, .. }
            | Entry::Fifo { meta, .. }
            | Entry::CharDevice { meta, .. } => Some(meta),
            Entry::Hardlink { .. } | Entry::Whiteout { .. } | Entry::Opaque { .. } => None,
        }
    }

    /// Sets the permission bits (no effect on entries without metadata).
    pub fn with_mode(mut self, mode: u32) -> Self {
        if let Some(meta) = self.meta_mut() {
            meta.mode = mode;
        }
        self
    }

    /// Sets the owner (no effect on entries without metadata).
    pub fn with_owner(mut self, uid: u64, gid: u64) -> Self {
        if let Some(meta) = self.meta_mut() {
            meta.uid = uid;
            meta.gid = gid;
        }
        self
    }

    /// Sets the mtime in seconds (no effect on entries without metadata).
    pub fn with_mtime(mut self, mtime: u64) -> Self {
        if let Some(meta) = self.meta_mut() {
            meta.mtime = mtime;
        }
        self
    }

    /// Adds an extended attribute (no effect on entries without metadata).
    pub fn with_xattr(mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        if let Some(meta) = self.meta_mut() {
            meta.xattrs.insert(name.into(), value.into());
        }
        self
    }

    /// The name of the entry's tar header: its clean path, `DIR/.wh.NAME` for a whiteout,
    /// `DIR/.wh..wh..opq` for an opaque marker.
    pub fn tar_name(&self) -> Result<String> {
        match self {
            Entry::Whiteout { path } => {
                let path = clean_path(path)?;
                Ok(match path.rsplit_once('/') {
                    Some((dir, name)) => format!("{dir}/.wh.{name}"),
                    None => format!(".wh.{path}"),
                })
            }
            Entry::Opaque { dir } if dir.trim_matches('/').is_empty() => Ok(".wh..wh..opq".into()),
            Entry::Opaque { dir } => Ok(format!("{}/.wh..wh..opq", clean_path(dir)?)),
            other => clean_path(other.path()),
        }
    }
}

/// `path` as a clean relative path: no leading `/` or `./`, no empty or `.` components, no
/// trailing `/`. Fails on `..` components and on paths that name the root.
pub fn clean_path(path: &str) -> Result<String> {
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                return Err(Error::InvalidPath {
                    path: path.to_owned(),
                });
            }
            part => parts.push(part),
        }
    }
    if parts.is_empty() {
        return Err(Error::InvalidPath {
            path: path.to_owned(),
        });
    }
    Ok(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_path_normalises_and_rejects() {
        let cases = [
            ("usr/bin", Some("usr/bin")),
            ("/usr//bin/", Some("usr/bin")),
            ("./etc/./hosts", Some("etc/hosts")),
            ("a/../b", None),
            ("/", None),
            ("", None),
        ];
        for (input, want) in cases {
            assert_eq!(clean_path(input).ok().as_deref(), want, "{input:?}");
        }
    }

    #[test]
    fn tar_names_of_whiteouts() {
        assert_eq!(
            Entry::whiteout("etc/passwd").tar_name().unwrap(),
            "etc/.wh.passwd"
        );
        assert_eq!(Entry::whiteout("/top").tar_name().unwrap(), ".wh.top");
        assert_eq!(
            Entry::opaque("var/cache/").tar_name().unwrap(),
            "var/cache/.wh..wh..opq"
        );
        assert_eq!(Entry::opaque("").tar_name().unwrap(), ".wh..wh..opq");
    }

    #[test]
    fn modifiers_skip_entries_without_meta() {
        let link = Entry::hardlink("a", "b").with_mode(0o600);
        assert_eq!(link, Entry::hardlink("a", "b"));
        let file = Entry::file("f", "x")
            .with_mode(0o4755)
            .with_owner(1, 2)
            .with_xattr("user.k", "v");
        let meta = file.meta().unwrap();
        assert_eq!((meta.mode, meta.uid, meta.gid), (0o4755, 1, 2));
        assert_eq!(meta.xattrs["user.k"], b"v");
    }
}
