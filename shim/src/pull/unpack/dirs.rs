//! Directories of the layer being written: the chain of open, verified directory fds that every
//! entry is created under, removal of replaced trees, and directory times applied at the end.
//!
//! Each directory on the chain was opened one component at a time with
//! `O_DIRECTORY | O_NOFOLLOW` from its parent's fd, so it is a real directory inside the layer,
//! and later operations through the fd cannot be redirected by a symlink. Tar order is depth
//! first, so consecutive entries share most of the chain and cost no lookups at all.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, Timestamps};
use rustix::io::Errno;

use super::error::{Error, Found, Op, Result};

/// Flags for opening a directory that must not be a symlink.
pub(super) const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// Mode of parents the layer does not list, as containerd's `mkparent` creates them.
const IMPLICIT_DIR_MODE: u32 = 0o755;

/// The root of the layer and the chain of open directories below it.
///
/// Invariant: when an entry is written, the chain is exactly that entry's parent directory and its
/// ancestors ([`DirStack::enter`] truncates everything deeper). An entry that replaces a directory
/// removes a child of the chain's last directory, which is never itself on the chain, so the cache
/// cannot hold a removed directory; a later entry below the replaced name re-opens it from its
/// parent and finds whatever replaced it.
#[derive(Debug)]
pub(super) struct DirStack {
    root: OwnedFd,
    chain: Vec<(OsString, OwnedFd)>,
}

/// A directory fd that is either on the chain or opened just for one operation.
#[derive(Debug)]
pub(super) enum DirRef<'a> {
    Chain(BorrowedFd<'a>),
    Owned(OwnedFd),
}

impl AsFd for DirRef<'_> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Self::Chain(fd) => *fd,
            Self::Owned(fd) => fd.as_fd(),
        }
    }
}

/// Why a walk to an existing directory stopped.
pub(super) enum WalkError {
    /// A component is missing.
    Missing,
    /// Any other failure, already naming the entry.
    Failed(Error),
}

impl DirStack {
    pub(super) fn new(root: OwnedFd) -> Self {
        Self {
            root,
            chain: Vec::new(),
        }
    }

    /// The directory the chain ends in (the layer root when it is empty).
    pub(super) fn top(&self) -> BorrowedFd<'_> {
        self.chain
            .last()
            .map_or(self.root.as_fd(), |(_, fd)| fd.as_fd())
    }

    /// Makes `dir` (a cleaned relative path) the end of the chain. When `create` is set, missing
    /// components are created 0755 and owned by this process (root), as containerd's `mkparent`
    /// does without parent layers. `entry` names the entry in errors.
    pub(super) fn enter(&mut self, dir: &Path, entry: &Path, create: bool) -> Result<()> {
        let mut depth = 0;
        for component in dir.components() {
            let name = component.as_os_str();
            if self.chain.get(depth).is_some_and(|(held, _)| held == name) {
                depth += 1;
                continue;
            }
            self.chain.truncate(depth);
            let fd = match open_dir(self.top(), name) {
                Ok(fd) => fd,
                Err(Errno::NOENT) if create => create_dir(self.top(), name)
                    .map_err(|source| io_error(entry, Op::CreateDirectory, source))?,
                Err(errno) => {
                    let parent = prefix(dir, depth + 1);
                    return Err(match errno {
                        Errno::NOENT => io_error(entry, Op::OpenDirectory, errno),
                        _ => not_directory(self.top(), name, errno, entry, parent),
                    });
                }
            };
            self.chain.push((name.to_owned(), fd));
            depth += 1;
        }
        self.chain.truncate(depth);
        Ok(())
    }

    /// Appends `fd`, a directory just created or opened as `name` in [`DirStack::top`].
    pub(super) fn push(&mut self, name: &OsStr, fd: OwnedFd) {
        self.chain.push((name.to_owned(), fd));
    }

    /// Opens the existing directory `dir` without creating anything or moving the chain, reusing
    /// the longest prefix of the chain.
    pub(super) fn open_existing(&self, dir: &Path, entry: &Path) -> Result<DirRef<'_>, WalkError> {
        let mut components = dir.components().peekable();
        let mut depth = 0;
        while let (Some(next), Some((held, _))) = (components.peek(), self.chain.get(depth)) {
            if next.as_os_str() != held {
                break;
            }
            components.next();
            depth += 1;
        }
        let shared = depth.checked_sub(1).and_then(|last| self.chain.get(last));
        let mut current = DirRef::Chain(shared.map_or(self.root.as_fd(), |(_, fd)| fd.as_fd()));
        for component in components {
            let name = component.as_os_str();
            depth += 1;
            current = match open_dir(current.as_fd(), name) {
                Ok(fd) => DirRef::Owned(fd),
                Err(Errno::NOENT) => return Err(WalkError::Missing),
                Err(errno) => {
                    let parent = prefix(dir, depth);
                    let error = not_directory(current.as_fd(), name, errno, entry, parent);
                    return Err(WalkError::Failed(error));
                }
            };
        }
        Ok(current)
    }
}

/// Opens child `name` of `parent` as a directory, refusing symlinks.
fn open_dir(parent: BorrowedFd<'_>, name: &OsStr) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat(parent, name, DIR_FLAGS, Mode::empty())
}

/// Creates a missing parent. The explicit chmod makes the mode independent of the umask.
fn create_dir(parent: BorrowedFd<'_>, name: &OsStr) -> rustix::io::Result<OwnedFd> {
    let mode = Mode::from_bits_retain(IMPLICIT_DIR_MODE);
    rustix::fs::mkdirat(parent, name, mode)?;
    let fd = open_dir(parent, name)?;
    rustix::fs::fchmod(&fd, mode)?;
    Ok(fd)
}

/// Explains a failed directory open: a symlink or a non-directory is the layer's fault; anything
/// else is an I/O error.
fn not_directory(
    parent: BorrowedFd<'_>,
    name: &OsStr,
    errno: Errno,
    entry: &Path,
    at: PathBuf,
) -> Error {
    if !matches!(errno, Errno::NOTDIR | Errno::LOOP) {
        return io_error(entry, Op::OpenDirectory, errno);
    }
    let found = match rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) if FileType::from_raw_mode(stat.st_mode) == FileType::Symlink => Found::Symlink,
        _ => Found::NonDirectory,
    };
    Error::ParentNotDirectory {
        path: entry.to_owned(),
        parent: at,
        found,
    }
}

/// The first `n` components of `path`.
fn prefix(path: &Path, n: usize) -> PathBuf {
    path.components().take(n).collect()
}

pub(super) fn io_error(entry: &Path, op: Op, errno: Errno) -> Error {
    Error::Io {
        path: entry.to_owned(),
        op,
        source: errno.into(),
    }
}

/// Removes directory `name` in `parent` and everything below it, without following symlinks.
/// Recursion depth is bounded by [`super::path::MAX_PATH`].
pub(super) fn remove_tree(parent: BorrowedFd<'_>, name: &OsStr) -> rustix::io::Result<()> {
    let mut listing = Dir::new(open_dir(parent, name)?)?;
    let mut children = Vec::new();
    for child in listing.by_ref() {
        let child = child?;
        let child_name = child.file_name().to_bytes();
        if child_name != b"." && child_name != b".." {
            children.push((child_name.to_vec(), child.file_type()));
        }
    }
    let dir = listing.fd()?;
    for (child, file_type) in children {
        let child = OsStr::from_bytes(&child);
        let is_dir = match file_type {
            FileType::Directory => true,
            FileType::Unknown => {
                let stat = rustix::fs::statat(dir, child, AtFlags::SYMLINK_NOFOLLOW)?;
                FileType::from_raw_mode(stat.st_mode) == FileType::Directory
            }
            _ => false,
        };
        if is_dir {
            remove_tree(dir, child)?;
        } else {
            rustix::fs::unlinkat(dir, child, AtFlags::empty())?;
        }
    }
    rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR)
}

/// Access and modification times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Times {
    pub(super) atime: rustix::fs::Timespec,
    pub(super) mtime: rustix::fs::Timespec,
}

impl Times {
    pub(super) fn timestamps(&self) -> Timestamps {
        Timestamps {
            last_access: self.atime,
            last_modification: self.mtime,
        }
    }
}

/// Times of directory entries, applied after the whole layer is written: creating a child changes
/// its directory's mtime (containerd defers them the same way).
#[derive(Debug, Default)]
pub(super) struct DirTimes(BTreeMap<PathBuf, Times>);

impl DirTimes {
    pub(super) fn insert(&mut self, dir: PathBuf, times: Times) {
        self.0.insert(dir, times);
    }

    /// Forgets `dir` and every directory below it, after an entry replaced it.
    pub(super) fn forget_tree(&mut self, dir: &Path) {
        // `Path` orders component by component, so `dir`'s descendants follow it contiguously.
        let doomed: Vec<PathBuf> = self
            .0
            .range::<Path, _>((std::ops::Bound::Included(dir), std::ops::Bound::Unbounded))
            .map(|(path, _)| path)
            .take_while(|path| path.starts_with(dir))
            .cloned()
            .collect();
        for path in doomed {
            self.0.remove(&path);
        }
    }

    /// Sets the recorded times, walking the tree in order so each directory is opened once.
    pub(super) fn apply(self, dirs: &mut DirStack) -> Result<()> {
        for (dir, times) in self.0 {
            dirs.enter(&dir, &dir, false)?;
            rustix::fs::futimens(dirs.top(), &times.timestamps())
                .map_err(|errno| io_error(&dir, Op::SetTimes, errno))?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn times(sec: i64) -> Times {
        let t = rustix::fs::Timespec {
            tv_sec: sec,
            tv_nsec: 0,
        };
        Times { atime: t, mtime: t }
    }

    #[test]
    fn forget_tree_drops_only_the_replaced_directory_and_its_descendants() {
        let mut dirs = DirTimes::default();
        for path in ["a", "a/b", "a/b/c", "a/b0", "a/b.d", "a/c", "b"] {
            dirs.insert(PathBuf::from(path), times(1));
        }
        dirs.forget_tree(Path::new("a/b"));
        let left: Vec<_> = dirs.0.keys().map(|p| p.to_str().unwrap()).collect();
        assert_eq!(left, ["a", "a/b.d", "a/b0", "a/c", "b"]);
    }

    #[test]
    fn enter_reuses_the_chain_and_truncates_below_the_target() {
        let tmp = tempfile::tempdir().unwrap();
        let root = rustix::fs::open(tmp.path(), DIR_FLAGS, Mode::empty()).unwrap();
        let mut dirs = DirStack::new(root);
        let entry = Path::new("entry");
        dirs.enter(Path::new("a/b/c"), entry, true).unwrap();
        assert_eq!(dirs.chain.len(), 3);
        dirs.enter(Path::new("a/x"), entry, true).unwrap();
        let names: Vec<_> = dirs
            .chain
            .iter()
            .map(|(n, _)| n.to_str().unwrap())
            .collect();
        assert_eq!(names, ["a", "x"]);
        dirs.enter(Path::new(""), entry, true).unwrap();
        assert!(dirs.chain.is_empty());
        assert!(tmp.path().join("a/b/c").is_dir());
        assert!(tmp.path().join("a/x").is_dir());
    }
}
