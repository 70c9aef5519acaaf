//! Integration tests of hoist-snapshotter, one binary:
//!
//! * `semantics`: the snapshots gRPC API over a unix socket, against the behaviour of
//!   containerd's overlayfs snapshotter;
//! * `mounts`: the returned mounts, mounted for real (`..._needs_root`);
//! * `crash`: SIGKILL of the `hoist-snapshotter` binary in the middle of commits;
//! * `containerd`: the real containerd (Debian's) using Hoist as a proxy snapshotter
//!   (`..._needs_containerd`, root only);
//! * `common`, `image`, `services`: the daemon under test, a tiny OCI image, and the real
//!   services (registry, containerd) with guards that stop them.
//!
//! Tests needing root or external tools skip with a message, unless
//! `HOIST_TEST_REQUIRE_SERVICES=1`, which turns a missing tool into a failure.

// Helpers outside #[test] functions panic on setup failures by design, and report skips.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod common;
mod containerd;
mod crash;
mod image;
mod mounts;
#[path = "../../../harness/tests/it/node_config.rs"]
mod node_config;
mod semantics;
mod services;
