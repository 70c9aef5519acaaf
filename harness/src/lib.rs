//! hoist-harness: the parts Hoist's tests and benchmarks stand on.
//!
//! * [`image`]: describe an image entry by entry (or generate one from a seed) and write it as an
//!   OCI image layout, with OCI or Docker media types and gzip, zstd or no compression.
//! * [`skopeo`]: push such a layout to a registry without recompressing it.
//! * [`containerd`]: drive Debian's containerd through `ctr` (pull, mount), the baseline Hoist
//!   is compared with.
//! * [`tree`]: compare two directory trees, or a tree with the entries an image describes.
//!
//! The crate shells out to the real tools (`skopeo`, `ctr`) rather than re-implementing them: the
//! point is to check Hoist against what a node really runs.

pub mod containerd;
pub mod credentials;
pub mod image;
pub mod skopeo;
pub mod tree;

pub use credentials::Credentials;

/// What kind of failure an error is, for callers that map errors onto exit codes or statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A file, image or tool that should exist does not.
    NotFound,
    /// The caller asked for something that cannot be done (bad path, zstd with Docker types).
    InvalidArgument,
    /// The operating system refused (not root, read-only file system).
    PermissionDenied,
    /// A registry rejected the credentials.
    Unauthenticated,
    /// A tool or server failed or could not be reached.
    Unavailable,
    /// Everything else: a bug or an unexpected I/O failure.
    Internal,
}
