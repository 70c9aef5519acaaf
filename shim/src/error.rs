//! Error kinds shared by every module's `Error`, so that the API edges (CLI exit codes, gRPC
//! status codes) can map any failure without knowing the module it came from.

/// What kind of failure an error is, independent of the module that raised it.
///
/// Mirrors containerd's errdefs: the CRI service maps these to gRPC codes, and nothing below
/// the API edge knows about gRPC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The object (image, blob, manifest, snapshot) does not exist.
    NotFound,
    /// The request or the data sent to us is malformed or inconsistent.
    InvalidArgument,
    /// The caller is not allowed to do this (for example a connector outside its scope).
    PermissionDenied,
    /// Credentials are missing or were refused.
    Unauthenticated,
    /// A remote or local resource is temporarily unavailable; retrying may help.
    Unavailable,
    /// A bug or an unexpected local failure (I/O, disk full).
    Internal,
}
