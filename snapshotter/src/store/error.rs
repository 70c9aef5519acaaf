//! The store's one error type (re-exported as `store::Error`) and its kinds.

use std::io;
use std::path::{Path, PathBuf};

use super::Kind as SnapshotKind;
use crate::error::Kind;

/// Store failures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No snapshot has that key or name.
    #[error("snapshot {key:?} does not exist")]
    NotFound {
        /// The key or name asked for.
        key: String,
    },
    /// A snapshot with that key or name exists already.
    #[error("snapshot {key:?} already exists")]
    AlreadyExists {
        /// The key or name.
        key: String,
    },
    /// Prepare named a target (`containerd.io/snapshot.ref`) that the store already has
    /// committed on the same parent: containerd then adopts that snapshot instead of unpacking.
    #[error("snapshot {key:?}: target {target:?} already exists")]
    TargetExists {
        /// The key that was not created.
        key: String,
        /// The committed snapshot containerd should use.
        target: String,
    },
    /// The parent named for a new snapshot does not exist.
    #[error("snapshot {key:?}: parent {parent:?} does not exist")]
    MissingParent {
        /// The snapshot being created or committed.
        key: String,
        /// The missing parent.
        parent: String,
    },
    /// The parent named for a new snapshot is active or a view, not committed.
    #[error("snapshot {key:?}: parent {parent:?} is not a committed snapshot")]
    ParentNotCommitted {
        /// The snapshot being created.
        key: String,
        /// The parent.
        parent: String,
    },
    /// Commit of a snapshot that is not active.
    #[error("snapshot {key:?} is {kind}, only an active snapshot can be committed")]
    NotActive {
        /// The key.
        key: String,
        /// What it is instead.
        kind: SnapshotKind,
    },
    /// Mounts asked of a committed snapshot.
    #[error("snapshot {key:?} is committed; only active snapshots and views have mounts")]
    NotMountable {
        /// The name.
        key: String,
    },
    /// Remove of a snapshot other snapshots are built on.
    #[error("snapshot {key:?} has children and cannot be removed")]
    HasChildren {
        /// The key or name.
        key: String,
    },
    /// containerd asked to remove a layer Hoist committed that containerd has not adopted yet.
    #[error("snapshot {key:?} was committed by hoist and is not yet used by containerd")]
    Pinned {
        /// The name.
        key: String,
    },
    /// An empty key or name.
    #[error("a snapshot key or name must not be empty")]
    EmptyKey,
    /// A label over containerd's limit of 4096 bytes for key and value together.
    #[error("label {label:?}: key and value are {size} bytes, more than the 4096 allowed")]
    LabelTooLarge {
        /// The label key.
        label: String,
        /// Bytes of key and value.
        size: usize,
    },
    /// Update of a field other than labels.
    #[error("snapshot {key:?}: field {field:?} cannot be updated (only labels can)")]
    ImmutableField {
        /// The snapshot.
        key: String,
        /// The field path asked for.
        field: String,
    },
    /// The root has a `snapshots/` directory with contents but no metadata database.
    #[error("{path} has contents but the store has no metadata database: not opening it")]
    ForeignDirectory {
        /// The `snapshots/` directory.
        path: PathBuf,
    },
    /// A Walk filter did not parse.
    #[error(transparent)]
    Filter(#[from] crate::filter::Error),
    /// A filesystem operation on the store failed.
    #[error("snapshot store: {op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// On what.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The metadata database failed.
    #[error("snapshot store metadata: {op}: {source}")]
    Db {
        /// What was being done.
        op: &'static str,
        /// redb's error.
        source: Box<redb::Error>,
    },
    /// A metadata record does not decode.
    #[error("snapshot {key:?}: corrupt metadata record: {source}")]
    Corrupt {
        /// The key of the record.
        key: String,
        /// The decoder's complaint.
        source: serde_json::Error,
    },
}

impl Error {
    /// The kind of failure, for the API edge.
    pub fn kind(&self) -> Kind {
        match self {
            Error::NotFound { .. } | Error::MissingParent { .. } => Kind::NotFound,
            Error::AlreadyExists { .. } | Error::TargetExists { .. } => Kind::AlreadyExists,
            Error::NotActive { .. }
            | Error::NotMountable { .. }
            | Error::HasChildren { .. }
            | Error::Pinned { .. }
            | Error::ForeignDirectory { .. } => Kind::FailedPrecondition,
            Error::ParentNotCommitted { .. }
            | Error::EmptyKey
            | Error::LabelTooLarge { .. }
            | Error::ImmutableField { .. } => Kind::InvalidArgument,
            Error::Filter(e) => e.kind(),
            Error::Io { .. } | Error::Db { .. } | Error::Corrupt { .. } => Kind::Internal,
        }
    }
}

/// `Result` with the store's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Maps an `io::Error` on `path` into [`Error::Io`].
pub(crate) fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Error + 'a {
    move |source| Error::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

/// Maps any of redb's error types into [`Error::Db`].
pub(crate) fn db_err<E: Into<redb::Error>>(op: &'static str) -> impl FnOnce(E) -> Error {
    move |e| Error::Db {
        op,
        source: Box::new(e.into()),
    }
}
