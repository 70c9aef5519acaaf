//! Comparing directory trees file by file, or a tree with what an image's layers describe.
//!
//! [`Tree::scan`] reads a mounted root filesystem (Hoist's overlay mount, `ctr images mount`'s);
//! [`Tree::from_layers`] computes the tree an image's layers should produce, applying whiteouts
//! and opaque directories as the OCI image spec (`layer.md`) says; [`Tree::diff`] lists every
//! difference in type, content, mode, owner, link target, xattrs, mtime, device numbers and hard
//! link identity. [`compare`] scans two directories and diffs them.

mod diff;
mod expect;
mod scan;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use diff::{Difference, Field};

use crate::Kind;
use crate::image::Digest;

/// Failures while reading a tree or building the expected one.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading a directory, file, link or xattr failed.
    #[error("{path}: {source}")]
    Io {
        /// What was being read.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// An entry of the image is not well-formed (a bad path).
    #[error("layer {layer}: {source}")]
    Entry {
        /// Index of the layer.
        layer: usize,
        /// What is wrong with the entry.
        source: crate::image::Error,
    },
    /// A hard link's target is not a non-directory of the tree at that point.
    #[error("layer {layer}: hard link {path:?} points to {target:?}, which is not a file there")]
    HardlinkTarget {
        /// Index of the layer.
        layer: usize,
        /// The link.
        path: String,
        /// Its target.
        target: String,
    },
}

impl Error {
    /// The kind of failure.
    pub fn kind(&self) -> Kind {
        match self {
            Error::Io { source, .. } => match source.kind() {
                std::io::ErrorKind::NotFound => Kind::NotFound,
                std::io::ErrorKind::PermissionDenied => Kind::PermissionDenied,
                _ => Kind::Internal,
            },
            Error::Entry { .. } | Error::HardlinkTarget { .. } => Kind::InvalidArgument,
        }
    }
}

/// Results of this module.
pub type Result<T> = std::result::Result<T, Error>;

/// The type of a node and what only that type has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeKind {
    /// A regular file: its size and the SHA-256 of its content.
    File {
        /// Bytes.
        size: u64,
        /// SHA-256 of the content.
        sha256: Digest,
    },
    /// A directory.
    Dir,
    /// A symbolic link and its target, verbatim.
    Symlink {
        /// The target.
        target: String,
    },
    /// A named pipe.
    Fifo,
    /// A character device.
    CharDevice {
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
    /// A block device.
    BlockDevice {
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
    /// A unix socket.
    Socket,
}

impl NodeKind {
    /// A short name of the type: `file`, `dir`, `symlink`, ...
    pub fn name(&self) -> &'static str {
        match self {
            NodeKind::File { .. } => "file",
            NodeKind::Dir => "dir",
            NodeKind::Symlink { .. } => "symlink",
            NodeKind::Fifo => "fifo",
            NodeKind::CharDevice { .. } => "char device",
            NodeKind::BlockDevice { .. } => "block device",
            NodeKind::Socket => "socket",
        }
    }
}

/// One path of a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Type and type-specific data.
    pub kind: NodeKind,
    /// Permission bits with setuid, setgid and sticky (`st_mode & 0o7777`).
    pub mode: u32,
    /// Owner user id.
    pub uid: u64,
    /// Owner group id.
    pub gid: u64,
    /// Modification time: seconds and nanoseconds since the epoch.
    pub mtime: (i64, u32),
    /// All extended attributes (the diff ignores `trusted.overlay.*` and `security.*`).
    pub xattrs: BTreeMap<String, Vec<u8>>,
    /// Inode identity within this tree: non-directories with the same value are hard links to
    /// one another. Only the partition it induces is compared, never the numbers.
    pub inode: u64,
}

/// A whole tree: every path below the root (the root itself is not included), `/`-separated
/// and relative, in sorted order. Non-UTF-8 names are read lossily.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tree {
    /// Nodes by path.
    pub nodes: BTreeMap<String, Node>,
}

/// Scans `left` and `right` and lists their differences; empty means equal.
pub fn compare(left: &Path, right: &Path) -> Result<Vec<Difference>> {
    let left = Tree::scan(left)?;
    let right = Tree::scan(right)?;
    Ok(left.diff(&right))
}
