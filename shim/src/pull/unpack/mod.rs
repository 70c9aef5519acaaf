//! The unpack stage: one decompressed layer tar written into a fresh, empty directory in the form
//! overlayfs mounts as a lower layer, with the semantics of containerd's `archive.Apply` with
//! `OverlayConvertWhiteout`:
//!
//! * `.wh.NAME` becomes a 0/0 character device `NAME`; `.wh..wh..opq` sets
//!   `trusted.overlay.opaque=y` on its directory; other `.wh..wh.*` names are ignored.
//! * Owners, modes (setuid, setgid, sticky included), times, `SCHILY.xattr.*` records, hardlinks,
//!   symlinks, devices and fifos are kept; GNU and PAX long names are read by the `tar` crate.
//! * A later entry replaces an earlier one at the same path, except a directory over a directory,
//!   which only updates its metadata.
//!
//! Hostile layers fail as a whole with an error naming the entry. Nothing is written outside
//! `dest`: paths that are absolute or have `..` components are refused, every parent must be a
//! real directory (never a symlink), files are created with `O_CREAT | O_EXCL | O_NOFOLLOW`, and
//! hardlink targets must be clean paths to non-directories this layer already wrote. Unlike
//! containerd, which resolves symlinked parents inside the root, such entries are refused.
//!
//! Runs on a blocking thread, as root.

mod dirs;
mod error;
mod header;
mod node;
mod path;
mod uring;

#[cfg(test)]
mod tests;

use std::ffi::OsStr;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, Mode, OFlags};

pub use self::error::{Error, Found, Op, PathProblem, Result};
pub use self::uring::available as io_uring_available;

use self::dirs::{DirStack, DirTimes, WalkError};
use self::node::{Replaced, Target};
use self::path::Name;

/// Options for unpacking one layer.
#[derive(Debug, Clone)]
pub struct Options {
    /// Create character and block devices the layer lists, as containerd does when it runs as
    /// root; when off they fail the layer. Fifos and whiteouts are always created. Default: `true`.
    pub allow_devices: bool,
    /// Most tar entries (of any type) a layer may have; `None` for no limit. Default: `None`.
    pub max_entries: Option<u64>,
    /// Most regular-file content bytes a layer may write, counted from header sizes before
    /// writing; `None` for no limit. Bounds the disk a decompression bomb can fill before its
    /// diffID is checked. Default: `None`.
    pub max_bytes: Option<u64>,
    /// Write regular files through io_uring: content writes and closes of many files in one
    /// submission. Falls back to `std::fs` where io_uring cannot be set up (probed once, logged
    /// at debug). Both writers leave the same tree. Default: `false`.
    pub io_uring: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            allow_devices: true,
            max_entries: None,
            max_bytes: None,
            io_uring: false,
        }
    }
}

/// What one unpack wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Tar entries read, of every type (extension headers the `tar` crate folds into the next
    /// entry are not counted).
    pub entries: u64,
    /// Regular files created (hardlinks not counted).
    pub files: u64,
    /// Regular-file content bytes written.
    pub bytes: u64,
}

/// Size of the buffer file content is copied through.
const COPY_BUFFER: usize = 128 * 1024;

/// Unpacks the tar stream `tar` into `dest`, an existing empty directory, and returns what was
/// written. Reading stops at the tar's end-of-archive marker: trailing bytes are left in `tar`
/// for the caller to drain into its digests. On error `dest` holds a partial layer for the
/// caller to remove.
pub fn unpack<R: Read>(tar: R, dest: &Path, options: &Options) -> Result<Stats> {
    let destination = |source: std::io::Error| Error::Destination {
        path: dest.to_owned(),
        source,
    };
    // `dest` is the caller's path and may be reached through symlinks; only what is below it
    // is the layer's.
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let root =
        rustix::fs::open(dest, flags, Mode::empty()).map_err(|errno| destination(errno.into()))?;
    ensure_empty(&root, dest)?;
    let mut unpacker = Unpacker {
        dest,
        options,
        dirs: DirStack::new(root),
        dir_times: DirTimes::default(),
        stats: Stats::default(),
        buf: vec![0; COPY_BUFFER],
        ring: if options.io_uring {
            uring::Writer::new()
        } else {
            None
        },
    };
    let mut archive = tar::Archive::new(tar);
    let entries = archive
        .entries()
        .map_err(|source| Error::Archive { entries: 0, source })?;
    for entry in entries {
        let entry = entry.map_err(|source| Error::Archive {
            entries: unpacker.stats.entries,
            source,
        });
        let entry = unpacker.in_order(entry)?;
        unpacker.entry(entry)?;
        crate::hooks::pause("unpack");
    }
    if let Some(ring) = unpacker.ring.as_mut() {
        ring.finish()?;
    }
    let Unpacker {
        mut dirs,
        dir_times,
        stats,
        ..
    } = unpacker;
    dir_times.apply(&mut dirs)?;
    tracing::debug!(
        entries = stats.entries,
        files = stats.files,
        bytes = stats.bytes,
        "layer unpacked"
    );
    Ok(stats)
}

/// The caller promises a fresh directory; the safety argument (no symlink this stage did not
/// create) rests on it, so it is checked.
fn ensure_empty(root: &OwnedFd, dest: &Path) -> Result<()> {
    let listing = rustix::fs::Dir::read_from(root).map_err(|errno| Error::Destination {
        path: dest.to_owned(),
        source: errno.into(),
    })?;
    for entry in listing {
        let entry = entry.map_err(|errno| Error::Destination {
            path: dest.to_owned(),
            source: errno.into(),
        })?;
        if !matches!(entry.file_name().to_bytes(), b"." | b"..") {
            return Err(Error::DestinationNotEmpty {
                path: dest.to_owned(),
            });
        }
    }
    Ok(())
}

struct Unpacker<'a> {
    dest: &'a Path,
    options: &'a Options,
    dirs: DirStack,
    dir_times: DirTimes,
    stats: Stats,
    buf: Vec<u8>,
    /// The io_uring writer's batch of regular files, when it is on.
    ring: Option<uring::Writer>,
}

impl Unpacker<'_> {
    fn entry<R: Read>(&mut self, entry: tar::Entry<'_, R>) -> Result<()> {
        let result = self.write_entry(entry);
        self.in_order(result)
    }

    /// Before an error is reported, the files batched ahead of it are written, so a failure among
    /// them is reported first, as the `std::fs` writer would have.
    fn in_order<T>(&mut self, result: Result<T>) -> Result<T> {
        if let (Err(_), Some(ring)) = (&result, self.ring.as_mut()) {
            ring.flush()?;
        }
        result
    }

    /// Writes the batched files before an entry that may depend on them (links to them, nodes
    /// replacing them, directories).
    fn barrier(&mut self) -> Result<()> {
        self.ring.as_mut().map_or(Ok(()), uring::Writer::flush)
    }

    fn write_entry<R: Read>(&mut self, mut entry: tar::Entry<'_, R>) -> Result<()> {
        self.stats.entries += 1;
        if let Some(limit) = self.options.max_entries
            && self.stats.entries > limit
        {
            return Err(Error::TooManyEntries { limit });
        }
        let raw = entry.path_bytes();
        let path = path::clean(&raw).map_err(|problem| Error::InvalidPath {
            path: PathBuf::from(OsStr::from_bytes(&raw)),
            problem,
        })?;
        let trailing_slash = raw.ends_with(b"/");
        drop(raw);
        let type_flag = entry.header().entry_type().as_byte();
        if type_flag == b'g' {
            tracing::debug!(entry = ?path, "pax global header ignored");
            return Ok(());
        }
        if !matches!(type_flag, b'0' | b'\0' | b'7' | b'S') {
            self.barrier()?;
        }
        let (Some(name), Some(parent)) = (path.file_name(), path.parent()) else {
            // The layer root itself ("./"): ignored like containerd ("resolved to root").
            return Ok(());
        };
        match path::classify(name) {
            Name::Plain => {}
            Name::Meta => {
                tracing::debug!(entry = ?path, "whiteout metadata ignored");
                return Ok(());
            }
            Name::InvalidWhiteout => return Err(Error::InvalidWhiteout { path }),
            Name::Opaque => {
                self.barrier()?;
                self.dirs.enter(parent, &path, true)?;
                return node::opaque(self.dirs.top(), &path);
            }
            Name::Whiteout(hidden) => {
                let (uid, gid) = header::owner(entry.header(), &path)?;
                self.barrier()?;
                self.dirs.enter(parent, &path, true)?;
                let at = self.target(hidden, &path);
                let replaced = node::whiteout(&at, uid, gid)?;
                self.forget_if_directory(replaced, &parent.join(hidden));
                return Ok(());
            }
        }
        let meta = header::meta(&mut entry, &path)?;
        let replaced = match type_flag {
            // Go's reader (and so containerd) takes an old-style '\0' entry with a trailing
            // slash for a directory.
            b'5' => return self.directory(parent, name, &path, &meta),
            b'\0' if trailing_slash => return self.directory(parent, name, &path, &meta),
            // Regular, contiguous ('7', a regular file to every reader since V7) and GNU sparse
            // (the tar crate fills the holes).
            b'0' | b'\0' | b'7' | b'S' => {
                let size = entry.size();
                if let Some(limit) = self.options.max_bytes
                    && self.stats.bytes.saturating_add(size) > limit
                {
                    return Err(Error::TooLarge { path, limit });
                }
                self.dirs.enter(parent, &path, true)?;
                let at = Target {
                    parent: self.dirs.top(),
                    name,
                    entry: &path,
                    dest: self.dest,
                };
                let (written, replaced) = match self.ring.as_mut() {
                    Some(ring) if uring::Writer::takes(size) => {
                        (size, ring.file(&at, &mut entry, size, meta)?)
                    }
                    _ => node::file(&at, &mut entry, size, &meta, &mut self.buf)?,
                };
                self.stats.files += 1;
                self.stats.bytes += written;
                replaced
            }
            b'2' => {
                let target = link_target(&entry, &path)?;
                self.dirs.enter(parent, &path, true)?;
                node::symlink(&self.target(name, &path), &target, &meta)?
            }
            b'1' => self.hardlink(&entry, parent, name, &path, &meta)?,
            b'3' | b'4' | b'6' => {
                let file_type = match type_flag {
                    b'3' => FileType::CharacterDevice,
                    b'4' => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                let dev = if file_type == FileType::Fifo {
                    rustix::fs::makedev(0, 0)
                } else if self.options.allow_devices {
                    header::device(entry.header(), &path)?
                } else {
                    return Err(Error::DeviceNotAllowed { path });
                };
                self.dirs.enter(parent, &path, true)?;
                node::special(&self.target(name, &path), file_type, dev, &meta)?
            }
            _ => return Err(Error::UnsupportedType { path, type_flag }),
        };
        self.forget_if_directory(replaced, &path);
        Ok(())
    }

    fn target<'t>(&'t self, name: &'t OsStr, entry: &'t Path) -> Target<'t> {
        Target {
            parent: self.dirs.top(),
            name,
            entry,
            dest: self.dest,
        }
    }

    fn directory(
        &mut self,
        parent: &Path,
        name: &OsStr,
        path: &Path,
        meta: &node::Meta,
    ) -> Result<()> {
        self.barrier()?;
        self.dirs.enter(parent, path, true)?;
        let (fd, replaced) = node::directory(&self.target(name, path), meta)?;
        self.forget_if_directory(replaced, path);
        self.dirs.push(name, fd);
        self.dir_times.insert(path.to_owned(), meta.times);
        Ok(())
    }

    fn hardlink<R: Read>(
        &mut self,
        entry: &tar::Entry<'_, R>,
        parent: &Path,
        name: &OsStr,
        path: &Path,
        meta: &node::Meta,
    ) -> Result<Replaced> {
        let raw = link_target(entry, path)?;
        let invalid = |problem| Error::InvalidLinkTarget {
            path: path.to_owned(),
            target: PathBuf::from(OsStr::from_bytes(&raw)),
            problem,
        };
        let target = path::clean(&raw).map_err(invalid)?;
        let (Some(target_name), Some(target_parent)) = (target.file_name(), target.parent()) else {
            return Err(invalid(PathProblem::Empty));
        };
        self.dirs.enter(parent, path, true)?;
        let target_dir = match self.dirs.open_existing(target_parent, path) {
            Ok(dir) => dir,
            Err(WalkError::Missing) => {
                return Err(Error::LinkTargetMissing {
                    path: path.to_owned(),
                    target,
                });
            }
            Err(WalkError::Failed(error)) => return Err(error),
        };
        let at = self.target(name, path);
        node::hardlink(&at, target_dir.as_fd(), target_name, &target, meta)
    }

    fn forget_if_directory(&mut self, replaced: Replaced, path: &Path) {
        if replaced == Replaced::Directory {
            self.dir_times.forget_tree(path);
        }
    }
}

/// The link target of a symlink or hardlink entry; an empty one names nothing.
fn link_target<R: Read>(entry: &tar::Entry<'_, R>, path: &Path) -> Result<Vec<u8>> {
    match entry.link_name_bytes() {
        Some(target) if !target.is_empty() => Ok(target.into_owned()),
        _ => Err(Error::InvalidLinkTarget {
            path: path.to_owned(),
            target: PathBuf::new(),
            problem: PathProblem::Empty,
        }),
    }
}
