//! Integration tests of hoist-harness against the real parts: Debian's docker-registry, skopeo
//! and containerd (through ctr).
//!
//! They need the services scripts/lib.sh starts, named by environment variables:
//! `HOIST_TEST_REGISTRY`, `HOIST_TEST_AUTH_REGISTRY` (+ `_CREDS`), `HOIST_TEST_CONTAINERD_SOCKET`
//! and `HOIST_TEST_CONTAINERD_ROOT`. Without them the tests fail and say so; run them with
//! `scripts/with-services.sh cargo test -p hoist-harness` (as root: containerd mounts).
//!
//! `run` starts its own containerd with Hoist's `hoist-snapshotter` as proxy snapshotter
//! (`proxy`), pulls with the engine and registers in containerd; its `..._needs_containerd`
//! tests skip when root or a tool is missing, unless `HOIST_TEST_REQUIRE_SERVICES=1`.

// Tests may unwrap (STYLE.md); the lint is for library code, and the helpers here are test code.
#![allow(clippy::unwrap_used)]

mod bench;
mod compare;
mod connector_services;
mod connectors_basic;
mod connectors_cri;
mod cri;
mod cri_kubelet;
mod cri_recheck;
mod cri_services;
mod ecr;
mod fixtures;
mod hoist;
mod mirror;
mod node_config;
mod pod;
mod proxy;
mod pull;
mod push;
mod run;
mod services;
mod shaping;
mod tls;
mod token_auth;
