#!/usr/bin/env bash
# bench.sh: the standard benchmark set with one command. Installs what it needs (containerd,
# docker-registry, skopeo, runc) when missing, builds hoist and hoist-bench in release mode, and
# runs every named scenario of `hoist-bench run`, which starts its own registry and a fresh
# containerd per measurement under a temporary directory on 127.0.0.1. Run as root.
#
#   scripts/bench.sh                       # all scenarios, 3 runs each
#   scripts/bench.sh --runs 2 --scale 0.25 # smaller images, fewer runs
#   scripts/bench.sh --set chunk_size=1MiB,4MiB,8MiB   # sweep a Hoist setting
#
# Reports go to $HOIST_BENCH_OUT (default target/bench): report.json, report.md, report.svg.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

hoist_install_deps
out=${HOIST_BENCH_OUT:-target/bench}
mkdir -p "$out"
cargo build --release --locked -p hoist --bin hoist -p hoist-harness --bin hoist-bench
bin=${CARGO_TARGET_DIR:-target}/release
"$bin/hoist-bench" run loopback-gzip s3like-gzip s3like-zstd many-layers warm fanout scale \
    --hoist "$bin/hoist" --json "$out/report.json" --markdown "$out/report.md" \
    --svg "$out/report.svg" --tmpfs "$@"
