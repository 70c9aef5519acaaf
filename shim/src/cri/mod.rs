//! The CRI `runtime.v1.ImageService` that kubelet calls through `--image-service-endpoint`.
//!
//! * `PullImage` runs the engine ([`crate::pull::Puller`]) with the request's credentials,
//!   then registers the image in containerd (content, image records with CRI's labels, layer
//!   adoption, under a lease), and answers with the image ID, the config digest. The pull runs
//!   in its own task: when the caller cancels or its deadline passes, the pull is cancelled and
//!   cleans up (no image record, no layer that nothing else uses) before the task ends.
//! * `ImageStatus`, `ListImages`, `StreamImages`: Hoist's image records, grouped by image ID
//!   ([`catalog`]), `pinned` as containerd's CRI says it ([`pinned`]).
//! * `RemoveImage`: every name of the image, in Hoist and in containerd (whose garbage
//!   collector then removes the content and asks Hoist's snapshotter to remove the layers).
//! * `ImageFsInfo`: the snapshot store's usage.
//!
//! The trait glue is in `api`; what the calls do is in `service`.
//!
//! Only this module knows tonic and the CRI types; errors below it carry an
//! [`crate::error::Kind`] that [`status`] maps to a gRPC code.

mod api;
pub mod auth;
pub mod catalog;
mod pinned;
mod serve;
mod service;

pub use serve::serve;
pub use service::{ImageService, Options};

use crate::error::Kind;

/// A gRPC status for an error of `kind`. The message is the error's display, which never
/// holds a secret.
pub fn status(kind: Kind, message: impl std::fmt::Display) -> tonic::Status {
    let code = match kind {
        Kind::NotFound => tonic::Code::NotFound,
        Kind::InvalidArgument => tonic::Code::InvalidArgument,
        Kind::PermissionDenied => tonic::Code::PermissionDenied,
        Kind::Unauthenticated => tonic::Code::Unauthenticated,
        Kind::Unavailable => tonic::Code::Unavailable,
        Kind::Internal => tonic::Code::Internal,
    };
    tonic::Status::new(code, message.to_string())
}
