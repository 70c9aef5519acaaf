//! The kinds of failure the crate reports, shared by every module's `Error::kind()`.
//!
//! They are containerd's `errdefs` classes that a snapshotter returns; the gRPC service maps
//! them to status codes at the edge (`service/convert.rs`), and nothing else knows about gRPC.

/// What kind of failure an error is, independent of the module that raised it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// The snapshot (or its parent) does not exist.
    NotFound,
    /// A snapshot with that key or name already exists.
    AlreadyExists,
    /// The snapshot is in the wrong state for the operation (has children, is not active, ...).
    FailedPrecondition,
    /// The request itself is malformed (empty key, bad filter, oversized label, ...).
    InvalidArgument,
    /// The store failed underneath (disk, metadata database).
    Internal,
}
