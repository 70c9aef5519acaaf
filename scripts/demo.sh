#!/usr/bin/env bash
# The main job, on a fresh machine: installs what is missing, builds Hoist, starts a local
# registry on 127.0.0.1, generates an image and pushes it with skopeo, then pulls it with
# `hoist pull` (progress bars and a summary), pulls it again (already in the store), mounts its
# root filesystem read-only and shows a little of it. Everything lives in a temporary directory
# that is removed at the end.
#
# Settings (environment): DEMO_SIZE (default 256MiB), DEMO_LAYERS (3), DEMO_MIX (small|large),
# DEMO_COMPRESSION (gzip|zstd|none).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

size=${DEMO_SIZE:-256MiB}
layers=${DEMO_LAYERS:-3}
mix=${DEMO_MIX:-small}
compression=${DEMO_COMPRESSION:-gzip}

hoist_install_deps
echo "== building hoist (release)"
cargo build --release --locked -p hoist -p hoist-harness

work=$(mktemp -d /tmp/hoist-demo.XXXXXX)
cleanup() {
    mountpoint -q "$work/rootfs" 2>/dev/null && umount "$work/rootfs"
    hoist_stop_services
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

hoist_start_registry "$work/registry"
bin=${CARGO_TARGET_DIR:-target}/release
image=$HOIST_TEST_REGISTRY/demo/app:latest

echo "== generating a $size image ($layers layers, $mix files, $compression)"
"$bin"/hoist-bench image --out "$work/layout" --size "$size" --layers "$layers" \
    --mix "$mix" --compression "$compression" >"$work/image.json"
echo "== pushing it to $image with skopeo"
skopeo copy --quiet --dest-tls-verify=false "oci:$work/layout:latest" "docker://$image"

echo "== hoist pull $image"
"$bin"/hoist pull --root "$work/root" --insecure-registry "$HOIST_TEST_REGISTRY" "$image"
echo "== hoist pull again (every layer is already in the store)"
"$bin"/hoist pull --root "$work/root" --insecure-registry "$HOIST_TEST_REGISTRY" "$image"

echo "== hoist mount $image $work/rootfs"
mkdir -p "$work/rootfs"
"$bin"/hoist mount --root "$work/root" "$image" "$work/rootfs"
echo "files: $(find "$work/rootfs" -type f | wc -l), size: $(du -sh "$work/rootfs" | cut -f1)"
find "$work/rootfs" -maxdepth 2 | sed "s|$work/rootfs||" | sort | head -n 12
umount "$work/rootfs"
