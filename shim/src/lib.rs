//! Hoist: fast, credential-aware container image pulls for Kubernetes nodes.
//!
//! The pull is a chain of one-way stages under [`pull`]: `plan` (manifest, platform, config,
//! chain IDs) → per layer `fetch` (parallel Range chunks) → `decode` (digest and diff ID
//! verification, gzip/zstd) → `unpack` (tar into an overlayfs layer directory) → commit into the
//! [`hoist_snapshotter`] store in chain order → a record in [`images`]. The orchestrator in
//! [`pull`] owns ordering, limits, cancellation and progress.

#![warn(missing_docs)]

pub mod config;
pub mod connectors;
pub mod containerd;
pub mod cri;
pub mod digest;
pub mod error;
pub mod images;
pub mod manifest;
pub mod mount;
pub mod platform;
pub mod progress;
pub mod proto;
pub mod pull;
pub mod reference;
pub mod registry;
pub mod workspace;

pub use digest::Digest;
pub use hoist_snapshotter::hooks;
pub use reference::Reference;
