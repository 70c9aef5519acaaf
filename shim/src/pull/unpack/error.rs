//! Errors of the unpack stage. Every variant raised while handling an entry names that entry, so a
//! refused layer says which member was hostile or broken.

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::error::Kind;

/// Why an entry path, or a hardlink target, was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathProblem {
    /// It starts with `/`.
    Absolute,
    /// It has a `..` component.
    ParentComponent,
    /// It contains a NUL byte.
    Nul,
    /// It is longer than `PATH_MAX` (4096 bytes).
    TooLong,
    /// It names nothing (empty, or only `.` components).
    Empty,
}

impl fmt::Display for PathProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Absolute => "is absolute",
            Self::ParentComponent => "has a `..` component",
            Self::Nul => "contains a NUL byte",
            Self::TooLong => "is longer than 4096 bytes",
            Self::Empty => "names nothing",
        })
    }
}

/// What was found where a directory was needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// A symbolic link.
    Symlink,
    /// Anything else that is not a directory.
    NonDirectory,
}

impl fmt::Display for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Symlink => "a symlink",
            Self::NonDirectory => "not a directory",
        })
    }
}

/// The filesystem operation that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Creating a regular file.
    CreateFile,
    /// Writing a regular file's content.
    WriteFile,
    /// Creating a directory.
    CreateDirectory,
    /// Opening a directory.
    OpenDirectory,
    /// Creating a symbolic link.
    CreateSymlink,
    /// Creating a hard link.
    CreateHardlink,
    /// Creating a device, fifo or whiteout node.
    CreateNode,
    /// Looking at what already exists at a path.
    Stat,
    /// Removing what an entry replaces.
    Remove,
    /// Setting owner and group.
    Chown,
    /// Setting permission bits.
    Chmod,
    /// Setting access and modification times.
    SetTimes,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::CreateFile => "creating file",
            Self::WriteFile => "writing file",
            Self::CreateDirectory => "creating directory",
            Self::OpenDirectory => "opening directory",
            Self::CreateSymlink => "creating symlink",
            Self::CreateHardlink => "creating hardlink",
            Self::CreateNode => "creating node",
            Self::Stat => "inspecting existing file",
            Self::Remove => "removing replaced file",
            Self::Chown => "setting owner",
            Self::Chmod => "setting mode",
            Self::SetTimes => "setting times",
        })
    }
}

/// An unpack failure. Paths are entry paths inside the layer, cleaned of `.` components.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The destination directory could not be opened or listed.
    #[error("layer destination {path:?}: {source}")]
    Destination {
        /// The destination as given.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The destination directory already has entries.
    #[error("layer destination {path:?} is not empty")]
    DestinationNotEmpty {
        /// The destination as given.
        path: PathBuf,
    },
    /// The tar stream is malformed, or the reader under it failed.
    #[error("layer tar unreadable after {entries} entries: {source}")]
    Archive {
        /// Entries read before the failure.
        entries: u64,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The layer has more entries than `Options::max_entries`.
    #[error("layer tar has more than {limit} entries")]
    TooManyEntries {
        /// The limit.
        limit: u64,
    },
    /// Regular files would exceed `Options::max_bytes`.
    #[error("entry {path:?}: layer content exceeds the {limit}-byte limit")]
    TooLarge {
        /// The entry that would cross the limit.
        path: PathBuf,
        /// The limit, in bytes.
        limit: u64,
    },
    /// The entry path is absolute, climbs with `..`, or is otherwise unusable.
    #[error("entry {path:?}: path {problem}")]
    InvalidPath {
        /// The entry path as the tar gives it.
        path: PathBuf,
        /// What is wrong with it.
        problem: PathProblem,
    },
    /// A hardlink or symlink target is unusable.
    #[error("entry {path:?}: link target {target:?} {problem}")]
    InvalidLinkTarget {
        /// The entry path.
        path: PathBuf,
        /// The target as the tar gives it.
        target: PathBuf,
        /// What is wrong with it.
        problem: PathProblem,
    },
    /// A `.wh.` whiteout whose name is empty, `.` or `..`.
    #[error("entry {path:?}: whiteout names no file in its directory")]
    InvalidWhiteout {
        /// The entry path.
        path: PathBuf,
    },
    /// A parent of the entry (or of its hardlink target) exists and is not a real directory.
    #[error("entry {path:?}: parent {parent:?} is {found}")]
    ParentNotDirectory {
        /// The entry path.
        path: PathBuf,
        /// The parent (of the entry or of its hardlink target) that is not a directory.
        parent: PathBuf,
        /// What is there instead.
        found: Found,
    },
    /// A hardlink's target (or one of its parents) was not written earlier in this layer.
    #[error("entry {path:?}: hardlink target {target:?} does not exist in this layer")]
    LinkTargetMissing {
        /// The entry path.
        path: PathBuf,
        /// The cleaned target.
        target: PathBuf,
    },
    /// A hardlink's target is a directory.
    #[error("entry {path:?}: hardlink target {target:?} is a directory")]
    LinkTargetDirectory {
        /// The entry path.
        path: PathBuf,
        /// The cleaned target.
        target: PathBuf,
    },
    /// A character or block device while `Options::allow_devices` is off.
    #[error("entry {path:?}: device nodes are not allowed")]
    DeviceNotAllowed {
        /// The entry path.
        path: PathBuf,
    },
    /// A tar entry type this stage does not write (GNU volume labels, multi-volume parts, …).
    #[error("entry {path:?}: unsupported tar entry type {type_flag:#04x}")]
    UnsupportedType {
        /// The entry path.
        path: PathBuf,
        /// The tar type flag byte.
        type_flag: u8,
    },
    /// A header field could not be parsed.
    #[error("entry {path:?}: invalid {field} in header: {source}")]
    InvalidHeader {
        /// The entry path.
        path: PathBuf,
        /// The header field.
        field: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A header field parsed but is out of the range the kernel accepts.
    #[error("entry {path:?}: {field} {value} out of range")]
    OutOfRange {
        /// The entry path.
        path: PathBuf,
        /// The header field.
        field: &'static str,
        /// Its value.
        value: u64,
    },
    /// The content ended before the size the header declares.
    #[error("entry {path:?}: content ended after {written} of {expected} bytes")]
    Truncated {
        /// The entry path.
        path: PathBuf,
        /// The size the header declares.
        expected: u64,
        /// The bytes the stream held.
        written: u64,
    },
    /// Reading the entry's content failed (the tar stream or the reader under it).
    #[error("entry {path:?}: reading content: {source}")]
    ReadContent {
        /// The entry path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A filesystem operation for the entry failed.
    #[error("entry {path:?}: {op}: {source}")]
    Io {
        /// The entry path.
        path: PathBuf,
        /// The operation that failed.
        op: Op,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Reading the stream after the end-of-archive marker failed. [`unpack`](super::unpack)
    /// stops at the marker; this is for the caller, which drains the rest into its digests.
    #[error("layer tar unreadable after its end-of-archive marker: {source}")]
    Trailing {
        /// The reader's error.
        #[from]
        source: io::Error,
    },
    /// Setting a named extended attribute failed.
    #[error("entry {path:?}: setting xattr {name:?}: {source}")]
    Xattr {
        /// The entry path.
        path: PathBuf,
        /// The attribute name (lossy UTF-8).
        name: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// The stage's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// What kind of failure this is. A failing reader surfaces through [`Error::Archive`] or
    /// [`Error::ReadContent`] with its own `io::Error`; the orchestrator, which owns the reader,
    /// knows better than this stage whether that was the network or the data.
    pub fn kind(&self) -> Kind {
        match self {
            Self::Destination { source, .. } => match source.kind() {
                io::ErrorKind::NotFound => Kind::NotFound,
                io::ErrorKind::PermissionDenied => Kind::PermissionDenied,
                _ => Kind::Internal,
            },
            Self::DestinationNotEmpty { .. } => Kind::Internal,
            Self::Archive { source, .. }
            | Self::ReadContent { source, .. }
            | Self::Trailing { source } => stream_kind(source),
            Self::DeviceNotAllowed { .. } => Kind::PermissionDenied,
            Self::Io { source, .. } | Self::Xattr { source, .. } => fs_kind(source),
            Self::TooManyEntries { .. }
            | Self::TooLarge { .. }
            | Self::InvalidPath { .. }
            | Self::InvalidLinkTarget { .. }
            | Self::InvalidWhiteout { .. }
            | Self::ParentNotDirectory { .. }
            | Self::LinkTargetMissing { .. }
            | Self::LinkTargetDirectory { .. }
            | Self::UnsupportedType { .. }
            | Self::InvalidHeader { .. }
            | Self::OutOfRange { .. }
            | Self::Truncated { .. } => Kind::InvalidArgument,
        }
    }
}

/// The tar crate reports malformed archives as `Other`; decoders report bad data as
/// `InvalidData` and short streams as `UnexpectedEof`. Anything else came from below.
fn stream_kind(source: &io::Error) -> Kind {
    match source.kind() {
        io::ErrorKind::Other
        | io::ErrorKind::InvalidData
        | io::ErrorKind::InvalidInput
        | io::ErrorKind::UnexpectedEof => Kind::InvalidArgument,
        _ => Kind::Unavailable,
    }
}

/// Errors the layer itself provokes (a name component over 255 bytes, an oversized xattr) are
/// invalid input; a full disk or fd table is worth retrying later.
fn fs_kind(source: &io::Error) -> Kind {
    use rustix::io::Errno;
    let Some(errno) = source.raw_os_error().map(Errno::from_raw_os_error) else {
        return Kind::Internal;
    };
    match errno {
        Errno::NOSPC | Errno::DQUOT | Errno::MFILE | Errno::NFILE | Errno::NOMEM => {
            Kind::Unavailable
        }
        Errno::PERM | Errno::ACCESS | Errno::ROFS => Kind::PermissionDenied,
        Errno::NAMETOOLONG | Errno::INVAL | Errno::TOOBIG | Errno::RANGE | Errno::MLINK => {
            Kind::InvalidArgument
        }
        _ => Kind::Internal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::io::Errno;

    #[test]
    fn kinds_tell_the_layer_from_the_node_and_the_network() {
        let io = |errno: Errno| Error::Io {
            path: PathBuf::from("f"),
            op: Op::CreateFile,
            source: errno.into(),
        };
        let archive = |kind: io::ErrorKind| Error::Archive {
            entries: 1,
            source: io::Error::from(kind),
        };
        let cases = [
            (io(Errno::NOSPC), Kind::Unavailable),
            (io(Errno::MFILE), Kind::Unavailable),
            (io(Errno::ACCESS), Kind::PermissionDenied),
            (io(Errno::NAMETOOLONG), Kind::InvalidArgument),
            (io(Errno::IO), Kind::Internal),
            (archive(io::ErrorKind::Other), Kind::InvalidArgument),
            (archive(io::ErrorKind::UnexpectedEof), Kind::InvalidArgument),
            (archive(io::ErrorKind::ConnectionReset), Kind::Unavailable),
            (archive(io::ErrorKind::TimedOut), Kind::Unavailable),
            // What the orchestrator's drain after the end-of-archive marker maps through.
            (
                Error::from(io::Error::from(io::ErrorKind::ConnectionReset)),
                Kind::Unavailable,
            ),
        ];
        for (error, kind) in cases {
            assert_eq!(error.kind(), kind, "{error}");
        }
    }
}
