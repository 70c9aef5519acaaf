//! Hoist's snapshot store: one directory per layer snapshot on the same filesystem, laid out so
//! that overlayfs can stack them, with atomic commits and crash clean-up.
//!
//! The pull engine writes into it directly ([`Store::stage`] then [`Store::commit`]); the
//! containerd snapshots service is built on the same store.

#![warn(missing_docs)]

pub mod proto;
pub mod store;

pub use store::{Committed, Error, Staged, Store};
