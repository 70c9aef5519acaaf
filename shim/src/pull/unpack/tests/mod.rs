//! Tests of the unpack stage, run as root (CI runs as root): entry types, replacement, hostile
//! layers, and overlayfs views against a naive model. This file holds the shared builders.

#![allow(clippy::unwrap_used)]

mod entries;
mod escape;
mod hostile;
mod overlay;
mod replace;
mod stream;
mod uring;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use tar::{EntryType, Header};

use super::{Error, Options, Result, Stats, unpack};

/// Default mtime of test entries.
const MTIME: u64 = 1_600_000_000;

/// Metadata of one test entry.
#[derive(Debug, Clone, Copy)]
struct Attrs {
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
}

impl Attrs {
    const FILE: Self = Self {
        mode: 0o644,
        uid: 0,
        gid: 0,
        mtime: MTIME,
    };
    const DIR: Self = Self {
        mode: 0o755,
        ..Self::FILE
    };
}

/// Builds layer tars with the `tar` crate, plus raw headers for names it refuses to write.
struct Layer(tar::Builder<Vec<u8>>);

impl Layer {
    fn new() -> Self {
        Self(tar::Builder::new(Vec::new()))
    }

    fn header(kind: EntryType, attrs: Attrs) -> Header {
        let mut header = Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(attrs.mode);
        header.set_uid(attrs.uid);
        header.set_gid(attrs.gid);
        header.set_mtime(attrs.mtime);
        header.set_size(0);
        header
    }

    fn file_with(&mut self, path: &str, content: &[u8], attrs: Attrs) -> &mut Self {
        let mut header = Self::header(EntryType::Regular, attrs);
        header.set_size(content.len() as u64);
        self.0.append_data(&mut header, path, content).unwrap();
        self
    }

    fn file(&mut self, path: &str, content: &[u8]) -> &mut Self {
        self.file_with(path, content, Attrs::FILE)
    }

    fn dir_with(&mut self, path: &str, attrs: Attrs) -> &mut Self {
        let mut header = Self::header(EntryType::Directory, attrs);
        self.0.append_data(&mut header, path, &[][..]).unwrap();
        self
    }

    fn dir(&mut self, path: &str) -> &mut Self {
        self.dir_with(path, Attrs::DIR)
    }

    fn link(&mut self, kind: EntryType, path: &str, target: &str, attrs: Attrs) -> &mut Self {
        let mut header = Self::header(kind, attrs);
        self.0.append_link(&mut header, path, target).unwrap();
        self
    }

    fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.link(EntryType::Symlink, path, target, Attrs::FILE)
    }

    fn hardlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.link(EntryType::Link, path, target, Attrs::FILE)
    }

    fn node(&mut self, kind: EntryType, path: &str, major: u32, minor: u32) -> &mut Self {
        let mut header = Self::header(kind, Attrs::FILE);
        header.set_device_major(major).unwrap();
        header.set_device_minor(minor).unwrap();
        self.0.append_data(&mut header, path, &[][..]).unwrap();
        self
    }

    /// An entry preceded by a PAX record set (long names, xattrs, times). `header_name` is
    /// what the ustar name field holds, which PAX `path` overrides.
    fn pax(
        &mut self,
        records: &[(&str, &[u8])],
        kind: EntryType,
        header_name: &str,
        content: &[u8],
    ) -> &mut Self {
        self.0
            .append_pax_extensions(records.iter().map(|(k, v)| (*k, *v)))
            .unwrap();
        let mut header = Self::header(kind, Attrs::FILE);
        header.set_size(content.len() as u64);
        header.set_path(header_name).unwrap();
        header.set_cksum();
        self.0.append(&header, content).unwrap();
        self
    }

    /// An entry whose name and link name are written byte for byte, bypassing the `tar` crate's
    /// own refusal of `..` and absolute names. Both must fit the 100-byte ustar fields.
    fn raw(&mut self, kind: EntryType, name: &[u8], link: &[u8], content: &[u8]) -> &mut Self {
        let mut header = Self::header(kind, Attrs::FILE);
        header.set_size(content.len() as u64);
        let old = header.as_old_mut();
        old.name[..name.len()].copy_from_slice(name);
        old.linkname[..link.len()].copy_from_slice(link);
        header.set_cksum();
        self.0.append(&header, content).unwrap();
        self
    }

    fn bytes(&mut self) -> Vec<u8> {
        let builder = std::mem::replace(&mut self.0, tar::Builder::new(Vec::new()));
        builder.into_inner().unwrap()
    }
}

/// A temporary directory holding the layer `dest`, an empty sibling `canary` that nothing may
/// touch, and a sibling `outside` holding a file `secret` that no hardlink may reach.
struct Sandbox {
    tmp: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir(tmp.path().join("dest")).unwrap();
        fs::create_dir(tmp.path().join("canary")).unwrap();
        fs::create_dir(tmp.path().join("outside")).unwrap();
        fs::write(tmp.path().join("outside/secret"), b"secret").unwrap();
        Self { tmp }
    }

    fn dest(&self) -> PathBuf {
        self.tmp.path().join("dest")
    }

    fn canary(&self) -> PathBuf {
        self.tmp.path().join("canary")
    }

    fn outside(&self) -> PathBuf {
        self.tmp.path().join("outside")
    }

    fn at(&self, path: &str) -> PathBuf {
        self.dest().join(path)
    }

    /// Unpacks `tar` with both writers, the io_uring one first and then `std::fs` into a cleared
    /// `dest`, checks that they agree (the same error, or the same stats and the same tree) and
    /// returns the `std::fs` result, its tree left in `dest`. A `dest` that was not empty is not
    /// cleared: both runs must refuse it.
    fn unpack_with(&self, tar: &[u8], options: &Options) -> Result<Stats> {
        let was_empty = fs::read_dir(self.dest()).unwrap().next().is_none();
        let with = |io_uring| {
            unpack(
                tar,
                &self.dest(),
                &Options {
                    io_uring,
                    ..options.clone()
                },
            )
        };
        let ring = with(true);
        let ring_tree = ring.is_ok().then(|| tree(&self.dest()));
        if was_empty {
            fs::remove_dir_all(self.dest()).unwrap();
            fs::create_dir(self.dest()).unwrap();
        }
        let std = with(false);
        match (&ring, &std) {
            (Ok(ring), Ok(std)) => {
                assert_eq!(ring, std);
                assert_eq!(
                    ring_tree,
                    Some(tree(&self.dest())),
                    "io_uring vs std::fs tree"
                );
            }
            (Err(ring), Err(std)) => assert_eq!(ring.to_string(), std.to_string()),
            _ => panic!("the writers disagree: io_uring {ring:?}, std::fs {std:?}"),
        }
        std
    }

    fn unpack(&self, tar: &[u8]) -> Result<Stats> {
        self.unpack_with(tar, &Options::default())
    }

    /// Nothing outside `dest` changed: the sandbox holds exactly its three directories, the
    /// canary is empty and has no xattrs, and the secret has one link and its content.
    fn assert_contained(&self) {
        let mut top: Vec<_> = fs::read_dir(self.tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        top.sort();
        assert_eq!(top, ["canary", "dest", "outside"]);
        assert_eq!(fs::read_dir(self.canary()).unwrap().count(), 0);
        assert!(xattr_names(&self.canary()).is_empty());
        let mut outside: Vec<_> = fs::read_dir(self.outside()).unwrap().collect();
        assert_eq!(outside.len(), 1);
        let secret = outside.pop().unwrap().unwrap().path();
        assert_eq!(fs::read(&secret).unwrap(), b"secret");
        assert_eq!(fs::symlink_metadata(&secret).unwrap().nlink(), 1);
    }
}

/// One node of a tree as [`tree`] records it.
#[derive(Debug, PartialEq, Eq)]
struct Node {
    mode: u32,
    uid: u32,
    gid: u32,
    /// Access and modification times, `None` when the clock set them (parents the layer does not
    /// list are created now, so two runs differ).
    atime: Option<(i64, i64)>,
    mtime: Option<(i64, i64)>,
    size: u64,
    rdev: u64,
    nlink: u64,
    /// The first path (in walk order) of this node's inode: hardlinks name their group.
    inode: PathBuf,
    xattrs: Vec<(String, Option<Vec<u8>>)>,
    /// A symlink's target, or a regular file's content.
    data: Vec<u8>,
}

/// Everything below `root` (not `root` itself) that either writer sets: type and mode, owner,
/// times, size, device, hardlinks, xattrs, symlink targets and content. Every node is `lstat`ed
/// before any content is read, so reading cannot move an atime that is compared.
fn tree(root: &Path) -> std::collections::BTreeMap<PathBuf, Node> {
    let mut stats = Vec::new();
    let mut dirs = vec![root.to_owned()];
    while let Some(dir) = dirs.pop() {
        for child in fs::read_dir(&dir).unwrap() {
            let path = child.unwrap().path();
            let meta = lstat(&path);
            if meta.is_dir() {
                dirs.push(path.clone());
            }
            stats.push((path, meta));
        }
    }
    stats.sort_by(|a, b| a.0.cmp(&b.0));
    let mut inodes = std::collections::HashMap::new();
    stats
        .into_iter()
        .map(|(path, meta)| {
            let relative = path.strip_prefix(root).unwrap().to_owned();
            let inode = inodes
                .entry((meta.dev(), meta.ino()))
                .or_insert_with(|| relative.clone())
                .clone();
            let data = if meta.file_type().is_symlink() {
                fs::read_link(&path)
                    .unwrap()
                    .into_os_string()
                    .into_encoded_bytes()
            } else if meta.is_file() {
                fs::read(&path).unwrap()
            } else {
                Vec::new()
            };
            let mut xattrs: Vec<_> = xattr_names(&path)
                .into_iter()
                .map(|name| {
                    let value = xattr(&path, &name);
                    (name, value)
                })
                .collect();
            xattrs.sort();
            let node = Node {
                mode: meta.mode(),
                uid: meta.uid(),
                gid: meta.gid(),
                atime: layer_time(meta.atime(), meta.atime_nsec()),
                mtime: layer_time(meta.mtime(), meta.mtime_nsec()),
                size: meta.size(),
                rdev: meta.rdev(),
                nlink: meta.nlink(),
                inode,
                xattrs,
                data,
            };
            (relative, node)
        })
        .collect()
}

/// A time the layer set: any before the last day; later ones are the clock's.
fn layer_time(sec: i64, nsec: i64) -> Option<(i64, i64)> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    (sec < now as i64 - 86_400).then_some((sec, nsec))
}

/// Names of the extended attributes on `path` (not following a symlink).
fn xattr_names(path: &Path) -> Vec<String> {
    let mut buf = vec![0u8; 4096];
    let n = rustix::fs::llistxattr(path, &mut buf[..]).unwrap();
    buf[..n]
        .split(|&b| b == 0)
        .filter(|name| !name.is_empty())
        .map(|name| String::from_utf8_lossy(name).into_owned())
        .collect()
}

/// The value of xattr `name` on `path`, if set (not following a symlink).
fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 4096];
    match rustix::fs::lgetxattr(path, name, &mut buf[..]) {
        Ok(n) => Some(buf[..n].to_vec()),
        Err(rustix::io::Errno::NODATA) => None,
        Err(e) => panic!("getxattr {name} on {path:?}: {e}"),
    }
}

/// `path`'s metadata without following a symlink.
fn lstat(path: &Path) -> fs::Metadata {
    fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

/// Whether `error` names the entry `want`.
fn path_is(error: &Error, want: &str) -> bool {
    let path = match error {
        Error::InvalidPath { path, .. }
        | Error::InvalidLinkTarget { path, .. }
        | Error::InvalidWhiteout { path }
        | Error::ParentNotDirectory { path, .. }
        | Error::LinkTargetMissing { path, .. }
        | Error::LinkTargetDirectory { path, .. } => path,
        _ => return false,
    };
    path.to_str() == Some(want)
}
