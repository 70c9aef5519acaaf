//! Hoist's snapshot store and containerd snapshotter.
//!
//! * [`store`]: containerd's snapshot model on overlayfs directories with transactional
//!   metadata. The pull engine writes layers into it directly ([`Store::stage`] then
//!   [`Store::commit`]); containerd reaches the same snapshots through [`service`].
//! * [`service`]: the `containerd.services.snapshots.v1.Snapshots` gRPC service on a unix
//!   socket ([`service::serve`]), for containerd's `[proxy_plugins]`.
//! * [`mount`]: the mounts handed to containerd, as its overlayfs snapshotter builds them.
//! * [`filter`]: containerd's filter language, for Walk.

#![warn(missing_docs)]

pub mod error;
pub mod filter;
pub mod hooks;
pub mod mount;
pub mod proto;
pub mod service;
pub mod store;

pub use mount::Mount;
pub use store::{Committed, Error, Info, Kind, Staged, Store, Usage};
