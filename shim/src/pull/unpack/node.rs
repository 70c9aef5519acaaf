//! Writing one entry into its parent directory fd: the node itself (file, directory, link, device,
//! fifo, whiteout), replacing whatever the name held before, then owner, xattrs, mode and times,
//! in containerd's order (`createTarFile`): chown first since it clears setuid/setgid and file
//! capabilities, xattrs next, chmod after both.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, Uid, XattrFlags};
use rustix::io::Errno;

use super::dirs::{DIR_FLAGS, Times, io_error, remove_tree};
use super::error::{Error, Op, Result};

/// Owner, mode, times and xattrs of an entry, parsed from its header and PAX records.
#[derive(Debug)]
pub(super) struct Meta {
    pub(super) uid: Uid,
    pub(super) gid: Gid,
    /// Permission bits with setuid, setgid and sticky.
    pub(super) mode: Mode,
    pub(super) times: Times,
    /// `SCHILY.xattr.*` records: attribute name and value.
    pub(super) xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Where an entry goes: a name in an open parent directory.
#[derive(Debug, Clone, Copy)]
pub(super) struct Target<'a> {
    pub(super) parent: BorrowedFd<'a>,
    pub(super) name: &'a OsStr,
    /// The entry's cleaned path, for errors.
    pub(super) entry: &'a Path,
    /// The layer directory: `dest` joined with `entry` is the path for `lsetxattr` on nodes that
    /// cannot be opened (symlinks, devices, fifos). Every parent on that path is a directory this
    /// stage verified, and nothing else writes the layer while it unpacks.
    pub(super) dest: &'a Path,
}

/// What the name held before, when an entry replaced it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Replaced {
    Nothing,
    NonDirectory,
    Directory,
}

impl Target<'_> {
    fn io(&self, op: Op) -> impl FnOnce(Errno) -> Error + '_ {
        move |errno| io_error(self.entry, op, errno)
    }

    /// Runs `create`; if the name is taken, removes what holds it (a whole tree for a directory:
    /// a later tar entry replaces an earlier one) and runs `create` once more.
    fn replacing<T>(
        &self,
        op: Op,
        mut create: impl FnMut() -> rustix::io::Result<T>,
    ) -> Result<(T, Replaced)> {
        match create() {
            Ok(made) => return Ok((made, Replaced::Nothing)),
            Err(Errno::EXIST) => {}
            Err(errno) => return Err(self.io(op)(errno)),
        }
        let replaced = self.remove()?;
        let made = create().map_err(self.io(op))?;
        Ok((made, replaced))
    }

    /// Removes what the name holds, never following a symlink.
    fn remove(&self) -> Result<Replaced> {
        let stat = rustix::fs::statat(self.parent, self.name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(self.io(Op::Stat))?;
        if FileType::from_raw_mode(stat.st_mode) == FileType::Directory {
            remove_tree(self.parent, self.name).map_err(self.io(Op::Remove))?;
            Ok(Replaced::Directory)
        } else {
            rustix::fs::unlinkat(self.parent, self.name, AtFlags::empty())
                .map_err(self.io(Op::Remove))?;
            Ok(Replaced::NonDirectory)
        }
    }

    fn chown(&self, meta: &Meta) -> Result<()> {
        rustix::fs::chownat(
            self.parent,
            self.name,
            Some(meta.uid),
            Some(meta.gid),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(self.io(Op::Chown))
    }

    fn set_times(&self, meta: &Meta) -> Result<()> {
        let times = meta.times.timestamps();
        rustix::fs::utimensat(self.parent, self.name, &times, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(self.io(Op::SetTimes))
    }

    /// Sets xattrs by path without following the final component; `regular` tells whether the
    /// node may hold `user.*` attributes at all.
    fn set_xattrs_by_path(&self, meta: &Meta, regular: bool) -> Result<()> {
        if meta.xattrs.is_empty() {
            return Ok(());
        }
        let full = self.dest.join(self.entry);
        set_xattrs(meta, self.entry, regular, |name, value| {
            rustix::fs::lsetxattr(&full, name, value, XattrFlags::empty())
        })
    }
}

/// Writes a regular file: one `openat(O_CREAT | O_EXCL | O_NOFOLLOW)`, the content, then
/// metadata through the fd. Returns the bytes written and what the name held before.
pub(super) fn file(
    at: &Target<'_>,
    content: &mut impl Read,
    size: u64,
    meta: &Meta,
    buf: &mut [u8],
) -> Result<(u64, Replaced)> {
    let (fd, replaced) = create_file(at)?;
    let mut file = File::from(fd);
    let written = if size == 0 {
        0
    } else {
        copy(content, &mut file, buf, at.entry)?
    };
    if written != size {
        return Err(Error::Truncated {
            path: at.entry.to_owned(),
            expected: size,
            written,
        });
    }
    set_fd_meta(file.as_fd(), meta, at.entry, true)?;
    Ok((written, replaced))
}

/// Creates a regular file owner-only with `openat(O_CREAT | O_EXCL | O_NOFOLLOW)`, replacing
/// what the name held. Both writers start a file here.
pub(super) fn create_file(at: &Target<'_>) -> Result<(OwnedFd, Replaced)> {
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let create_mode = Mode::from_bits_retain(0o600);
    at.replacing(Op::CreateFile, || {
        rustix::fs::openat(at.parent, at.name, flags, create_mode)
    })
}

/// Copies content through a buffer reused across the layer (larger than `io::copy`'s 8 KiB
/// stack buffer, and telling read failures from write failures).
fn copy(content: &mut impl Read, file: &mut File, buf: &mut [u8], entry: &Path) -> Result<u64> {
    let mut written = 0u64;
    loop {
        let n = match content.read(buf) {
            Ok(0) => return Ok(written),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(Error::ReadContent {
                    path: entry.to_owned(),
                    source,
                });
            }
        };
        let chunk = buf.get(..n).unwrap_or(buf);
        file.write_all(chunk).map_err(|source| Error::Io {
            path: entry.to_owned(),
            op: Op::WriteFile,
            source,
        })?;
        written += chunk.len() as u64;
    }
}

/// Creates a directory, or keeps an existing one and updates its metadata (tar semantics for a
/// directory over a directory). Returns its fd, to extend the chain with.
pub(super) fn directory(at: &Target<'_>, meta: &Meta) -> Result<(OwnedFd, Replaced)> {
    // Created owner-only; the chmod below sets the real mode whatever the umask.
    let mkdir = || rustix::fs::mkdirat(at.parent, at.name, Mode::from_bits_retain(0o700));
    let replaced = match mkdir() {
        Ok(()) => Replaced::Nothing,
        Err(Errno::EXIST) => {
            match rustix::fs::openat(at.parent, at.name, DIR_FLAGS, Mode::empty()) {
                Ok(fd) => {
                    set_fd_meta(fd.as_fd(), meta, at.entry, true)?;
                    return Ok((fd, Replaced::Nothing));
                }
                Err(Errno::NOTDIR | Errno::LOOP) => {
                    let replaced = at.remove()?;
                    mkdir().map_err(at.io(Op::CreateDirectory))?;
                    replaced
                }
                Err(errno) => return Err(at.io(Op::OpenDirectory)(errno)),
            }
        }
        Err(errno) => return Err(at.io(Op::CreateDirectory)(errno)),
    };
    let fd = rustix::fs::openat(at.parent, at.name, DIR_FLAGS, Mode::empty())
        .map_err(at.io(Op::OpenDirectory))?;
    set_fd_meta(fd.as_fd(), meta, at.entry, true)?;
    Ok((fd, replaced))
}

/// Creates a symlink. Its target is stored as given and never followed by this stage. Linux
/// symlinks have no mode of their own, so there is no chmod (containerd's `lchmod` skips them).
pub(super) fn symlink(at: &Target<'_>, target: &[u8], meta: &Meta) -> Result<Replaced> {
    let target = OsStr::from_bytes(target);
    let ((), replaced) = at.replacing(Op::CreateSymlink, || {
        rustix::fs::symlinkat(target, at.parent, at.name)
    })?;
    at.chown(meta)?;
    at.set_xattrs_by_path(meta, false)?;
    at.set_times(meta)?;
    Ok(replaced)
}

/// Creates a hardlink to `name` in `target_dir`, which must exist and not be a directory. Like
/// containerd, the link entry's own metadata is applied to the shared inode.
pub(super) fn hardlink(
    at: &Target<'_>,
    target_dir: BorrowedFd<'_>,
    target_name: &OsStr,
    target: &Path,
    meta: &Meta,
) -> Result<Replaced> {
    let missing = || Error::LinkTargetMissing {
        path: at.entry.to_owned(),
        target: target.to_owned(),
    };
    let stat = match rustix::fs::statat(target_dir, target_name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) => stat,
        Err(Errno::NOENT) => return Err(missing()),
        Err(errno) => return Err(at.io(Op::Stat)(errno)),
    };
    let file_type = FileType::from_raw_mode(stat.st_mode);
    if file_type == FileType::Directory {
        return Err(Error::LinkTargetDirectory {
            path: at.entry.to_owned(),
            target: target.to_owned(),
        });
    }
    // Flags 0: link the target itself even when it is a symlink, as tar means.
    let link = || {
        rustix::fs::linkat(
            target_dir,
            target_name,
            at.parent,
            at.name,
            AtFlags::empty(),
        )
    };
    let ((), replaced) = match at.replacing(Op::CreateHardlink, link) {
        // Replacing the name removed the target itself (a link to itself, or into the tree the
        // name held).
        Err(Error::Io { source, .. })
            if source.raw_os_error() == Some(Errno::NOENT.raw_os_error()) =>
        {
            return Err(missing());
        }
        other => other?,
    };
    at.chown(meta)?;
    at.set_xattrs_by_path(meta, file_type == FileType::RegularFile)?;
    if file_type != FileType::Symlink {
        rustix::fs::chmodat(at.parent, at.name, meta.mode, AtFlags::empty())
            .map_err(at.io(Op::Chmod))?;
    }
    at.set_times(meta)?;
    Ok(replaced)
}

/// Creates a character or block device or a fifo.
pub(super) fn special(
    at: &Target<'_>,
    file_type: FileType,
    dev: rustix::fs::Dev,
    meta: &Meta,
) -> Result<Replaced> {
    let ((), replaced) = at.replacing(Op::CreateNode, || {
        rustix::fs::mknodat(at.parent, at.name, file_type, meta.mode, dev)
    })?;
    at.chown(meta)?;
    at.set_xattrs_by_path(meta, false)?;
    // mknod's mode went through the umask, and chown may have cleared setuid/setgid. The node was
    // just created by this stage, so the final component is not a symlink to follow.
    rustix::fs::chmodat(at.parent, at.name, meta.mode, AtFlags::empty())
        .map_err(at.io(Op::Chmod))?;
    at.set_times(meta)?;
    Ok(replaced)
}

/// Writes an overlayfs whiteout: a 0/0 character device owned like the `.wh.` entry
/// (containerd's `OverlayConvertWhiteout`).
pub(super) fn whiteout(at: &Target<'_>, uid: Uid, gid: Gid) -> Result<Replaced> {
    let ((), replaced) = at.replacing(Op::CreateNode, || {
        let dev = rustix::fs::makedev(0, 0);
        rustix::fs::mknodat(
            at.parent,
            at.name,
            FileType::CharacterDevice,
            Mode::empty(),
            dev,
        )
    })?;
    rustix::fs::chownat(
        at.parent,
        at.name,
        Some(uid),
        Some(gid),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(at.io(Op::Chown))?;
    Ok(replaced)
}

/// Marks directory `dir` opaque for overlayfs.
pub(super) fn opaque(dir: BorrowedFd<'_>, entry: &Path) -> Result<()> {
    rustix::fs::fsetxattr(dir, "trusted.overlay.opaque", b"y", XattrFlags::empty()).map_err(
        |errno| Error::Xattr {
            path: entry.to_owned(),
            name: "trusted.overlay.opaque".to_owned(),
            source: errno.into(),
        },
    )
}

/// Owner, xattrs, mode and times through an open fd (regular files and directories).
pub(super) fn set_fd_meta(
    fd: BorrowedFd<'_>,
    meta: &Meta,
    entry: &Path,
    regular: bool,
) -> Result<()> {
    let io = |op| move |errno| io_error(entry, op, errno);
    rustix::fs::fchown(fd, Some(meta.uid), Some(meta.gid)).map_err(io(Op::Chown))?;
    set_xattrs(meta, entry, regular, |name, value| {
        rustix::fs::fsetxattr(fd, name, value, XattrFlags::empty())
    })?;
    rustix::fs::fchmod(fd, meta.mode).map_err(io(Op::Chmod))?;
    rustix::fs::futimens(fd, &meta.times.timestamps()).map_err(io(Op::SetTimes))
}

/// Applies the entry's xattrs with `set`, skipping what containerd skips: `trusted.*` (admin
/// attributes, which would also let a layer forge overlayfs metadata), attributes the filesystem
/// does not support, and `user.*` on nodes that cannot hold them.
fn set_xattrs(
    meta: &Meta,
    entry: &Path,
    regular: bool,
    mut set: impl FnMut(&[u8], &[u8]) -> rustix::io::Result<()>,
) -> Result<()> {
    for (name, value) in &meta.xattrs {
        let shown = || String::from_utf8_lossy(name).into_owned();
        if name.starts_with(b"trusted.") {
            tracing::debug!(entry = ?entry, xattr = %shown(), "ignored trusted xattr from layer");
            continue;
        }
        match set(name, value) {
            Ok(()) => {}
            Err(Errno::NOTSUP) => {
                tracing::warn!(entry = ?entry, xattr = %shown(), "xattr not supported here, ignored");
            }
            Err(Errno::PERM) if !regular && name.starts_with(b"user.") => {
                tracing::warn!(entry = ?entry, xattr = %shown(), "user xattr on special file, ignored");
            }
            Err(errno) => {
                return Err(Error::Xattr {
                    path: entry.to_owned(),
                    name: shown(),
                    source: errno.into(),
                });
            }
        }
    }
    Ok(())
}
