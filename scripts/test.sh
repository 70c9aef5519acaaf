#!/usr/bin/env bash
# Everything the tests need, then all tests: installs the real parts (containerd, docker-registry,
# skopeo, runc) when missing, checks formatting and lints, then runs the whole test suite beside a
# plain registry, a registry with basic auth and a containerd of their own, started on 127.0.0.1
# in a temporary directory and stopped afterwards (scripts/with-services.sh), with Debian's
# containerd 1.6; then the containerd-facing tests (`..._needs_containerd`, but the benchmark's)
# again with containerd 2.1.9 (fetched once from Debian unstable into /var/cache/hoist); then
# runs each fuzz target for a bounded time (scripts/fuzz.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

hoist_install_deps

# A one-off build gains nothing from incremental data, which is most of a debug target's size.
if [[ -n "${CI:-}" ]]; then export CARGO_INCREMENTAL=0; fi

echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo clippy and unit tests of hoist without the aws feature (as the fuzz targets build it)"
cargo clippy -p hoist --no-default-features --all-targets --locked -- -D warnings
cargo test -p hoist --no-default-features --lib --locked
echo "== cargo test (with a registry and containerd)"
# Tests that need the services fail (rather than skip) when they are missing.
HOIST_TEST_REQUIRE_SERVICES=1 scripts/with-services.sh cargo test --workspace --locked
echo "== cargo test needs_containerd (with containerd 2.1.9)"
# hoist-bench's own test is left out: it measures containerd's overlayfs pull as a baseline, not
# Hoist through containerd, and is the longest of them (about a minute).
HOIST_CONTAINERD=2 HOIST_TEST_REQUIRE_SERVICES=1 scripts/with-services.sh \
    cargo test --workspace --locked needs_containerd -- --skip bench_run_measures_every_system
# Each fuzz target for a bounded time (nightly toolchain only; skipped with a message otherwise).
scripts/fuzz.sh
