#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a bounded time (HOIST_FUZZ_SECONDS, default 20 s
# each) from its checked-in seed corpus. Needs the nightly toolchain; without it, says so and
# exits 0 (the stable suite still replays every corpus file: shim/tests/it/corpus.rs).
# Installs cargo-fuzz when missing. A crash, a broken invariant or a failed build exits non-zero;
# the crashing input is left in fuzz/artifacts/TARGET/ to be added to the corpus once fixed.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${HOIST_FUZZ_SECONDS:-20}"
if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    echo "== fuzz: SKIPPED: the nightly toolchain is not installed (rustup toolchain install nightly)"
    exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "== fuzz: installing cargo-fuzz"
    cargo +nightly install cargo-fuzz --locked
fi
# Keep fuzz builds beside the workspace's, so they are reused between runs.
target_dir="${CARGO_TARGET_DIR:-$PWD/target}/fuzz"
cd fuzz
echo "== fuzz: building targets"
cargo +nightly fuzz build -O --target-dir "$target_dir"
# Run the binaries that build made, not `cargo fuzz run`, which would go through cargo (and its
# freshness checks, or a rebuild if any flag differed) once per target.
host="$(rustc +nightly -vV | sed -n 's/^host: //p')"
bin_dir="$target_dir/$host/release"
failed=()
for target in $(cargo +nightly fuzz list); do
    echo "== fuzz: $target for ${seconds}s"
    # Work on a scratch copy: new inputs the fuzzer finds do not dirty the checked-in corpus.
    scratch="$(mktemp -d)"
    cp -r "corpus/$target/." "$scratch/"
    log="$scratch.log"
    mkdir -p "artifacts/$target"
    if "$bin_dir/$target" "$scratch" -artifact_prefix="artifacts/$target/" \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
        >"$log" 2>&1; then
        grep -E '^stat::number_of_executed_units|^#[0-9]+ *DONE' "$log" || true
    else
        tail -n 60 "$log" >&2
        failed+=("$target")
    fi
    rm -rf "$scratch" "$log"
done
if ((${#failed[@]})); then
    echo "== fuzz: FAILED: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
echo "== fuzz: every target ran ${seconds}s without a crash"
