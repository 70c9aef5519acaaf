//! Tests of the unpack stage, run as root (CI runs as root): entry types, replacement, hostile
//! layers, and overlayfs views against a naive model. This file holds the shared builders.

#![allow(clippy::unwrap_used)]

mod entries;
mod escape;
mod hostile;
mod overlay;
mod replace;
mod stream;

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

    fn unpack_with(&self, tar: &[u8], options: &Options) -> Result<Stats> {
        unpack(tar, &self.dest(), options)
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
