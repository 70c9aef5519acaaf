//! Integration tests of hoist-harness against the real parts: Debian's docker-registry, skopeo
//! and containerd (through ctr).
//!
//! They need the services scripts/lib.sh starts, named by environment variables:
//! `HOIST_TEST_REGISTRY`, `HOIST_TEST_AUTH_REGISTRY` (+ `_CREDS`), `HOIST_TEST_CONTAINERD_SOCKET`
//! and `HOIST_TEST_CONTAINERD_ROOT`. Without them the tests fail and say so; run them with
//! `scripts/with-services.sh cargo test -p hoist-harness` (as root: containerd mounts).

// Tests may unwrap (STYLE.md); the lint is for library code, and the helpers here are test code.
#![allow(clippy::unwrap_used)]

mod compare;
mod fixtures;
mod hoist;
mod pull;
mod push;
mod services;
mod tls;
