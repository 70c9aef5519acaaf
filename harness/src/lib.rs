//! hoist-harness: the parts Hoist's tests and benchmarks stand on.
//!
//! * [`image`]: describe an image entry by entry (or generate one from a seed) and write it as an
//!   OCI image layout, with OCI or Docker media types and gzip, zstd or no compression.
//! * [`skopeo`]: push such a layout to a registry without recompressing it.
//! * [`bench`]: `hoist-bench run`, the named scenarios measured across Hoist, containerd, skopeo
//!   and the floor, with JSON, Markdown and SVG reports.
//! * [`containerd`]: drive Debian's containerd through `ctr` (pull, mount), the baseline Hoist
//!   is compared with.
//! * [`proxy`]: a shaping, fault-injecting HTTP proxy in front of a registry, to emulate remote
//!   registries (per-connection and link bandwidth caps, first-byte latency, faults on demand).
//! * [`cri`]: a CRI ImageService client, so that tests and benchmarks drive Hoist's CRI socket
//!   and containerd's own through exactly the same calls; and the RuntimeService calls that run
//!   a pod.
//! * [`programs`]: tiny static programs (a pause, an echo) built with gcc, and images of them.
//! * [`token_issuer`]: a JWT token issuer for a docker-registry in token-auth mode, counting
//!   requests and scopes.
//! * [`tree`]: compare two directory trees, or a tree with the entries an image describes.
//!
//! The crate shells out to the real tools (`skopeo`, `ctr`) rather than re-implementing them: the
//! point is to check Hoist against what a node really runs.

pub mod bench;
pub mod containerd;
pub mod credentials;
pub mod cri;
pub mod image;
pub mod programs;
pub mod proxy;
pub mod skopeo;
pub mod token_issuer;
pub mod tree;

pub use credentials::Credentials;

/// What kind of failure an error is: the same kinds as the library's errors.
pub use hoist::error::Kind;
