#!/usr/bin/env bash
# The main job, on a fresh machine: installs what is missing, builds Hoist, starts a local
# registry on 127.0.0.1, generates an image and pushes it with skopeo, then:
#
# 1. without a node: pulls it with `hoist pull` (progress bars and a summary), pulls it again
#    (already in the store), mounts its root filesystem read-only and shows a little of it;
# 2. on a node: starts `hoist serve` and a containerd that uses Hoist as its proxy snapshotter,
#    pulls an image of the same shape through containerd's own CRI and another through Hoist's,
#    prints both times side by side, and starts a container from the Hoist-pulled image through
#    containerd's CRI, as kubelet would, showing its output.
#
# Everything lives in a temporary directory that is removed at the end.
#
# Settings (environment): DEMO_SIZE (default 256MiB), DEMO_LAYERS (3), DEMO_MIX (small|large),
# DEMO_COMPRESSION (gzip|zstd|none), DEMO_CONTAINERD (1: Debian's containerd 1.6, the default;
# 2: containerd 2.1.9 from Debian's unstable suite, fetched once into /var/cache/hoist).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

size=${DEMO_SIZE:-256MiB}
layers=${DEMO_LAYERS:-3}
mix=${DEMO_MIX:-small}
compression=${DEMO_COMPRESSION:-gzip}
containerd_major=${DEMO_CONTAINERD:-1}

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

# The node: `hoist serve` first, so that containerd finds its snapshotter at once (containerd
# dials a proxy snapshotter it could not reach with a backoff of up to a few seconds).
echo "== a node: hoist serve, and containerd $containerd_major.x with Hoist as its snapshotter"
node=$work/node
mkdir -p "$node/containerd"
_hoist_spawn "$node/serve.log" "$node/serve.pid" "$bin"/hoist serve --root "$node/root" \
    --cri-socket "$node/hoist-cri.sock" --snapshots-socket "$node/containerd/hoist-snapshots.sock" \
    --containerd-socket "$node/containerd/containerd.sock" --insecure-registry "$HOIST_TEST_REGISTRY"
serve_pid=$HOIST_SPAWNED_PID
_hoist_track "$serve_pid" "$node"
for _ in $(seq 1 300); do
    [[ -S $node/hoist-cri.sock && -S $node/containerd/hoist-snapshots.sock ]] && break
    if ! kill -0 "$serve_pid" 2>/dev/null; then
        tail -n 20 "$node/serve.log" >&2
        exit 1
    fi
    sleep 0.1
done
hoist_start_containerd "$node/containerd" "$containerd_major"
containerd_version=$(containerd --version | awk '{print $3}')

echo "== the sandbox image containerd starts pods with ($HOIST_TEST_SANDBOX_IMAGE)"
"$bin"/hoist-bench image --out "$work/pause" --layers 0 --program pause >/dev/null
skopeo copy --quiet --dest-tls-verify=false "oci:$work/pause:latest" "docker://$HOIST_TEST_SANDBOX_IMAGE"

# Two images of the same shape with other bytes, so that neither pull finds the other's layers,
# each with a small static `echo` on top to run.
for who in containerd hoist; do
    seed=2
    [[ $who == hoist ]] && seed=3
    "$bin"/hoist-bench image --out "$work/$who-layout" --seed "$seed" --size "$size" \
        --layers "$layers" --mix "$mix" --compression "$compression" --program echo >/dev/null
    skopeo copy --quiet --dest-tls-verify=false "oci:$work/$who-layout:latest" \
        "docker://$HOIST_TEST_REGISTRY/demo/node:$who"
done

echo "== CRI PullImage of a $size image ($layers layers), through each CRI ImageService"
read -r _ containerd_s < <("$bin"/hoist-bench cri pull --socket "$HOIST_TEST_CONTAINERD_SOCKET" \
    "$HOIST_TEST_REGISTRY/demo/node:containerd")
read -r id hoist_s < <("$bin"/hoist-bench cri pull --socket "$node/hoist-cri.sock" \
    "$HOIST_TEST_REGISTRY/demo/node:hoist")
printf '%-28s %8.2f s\n' "containerd $containerd_version CRI" "$containerd_s" \
    "hoist serve CRI" "$hoist_s"
awk -v c="$containerd_s" -v h="$hoist_s" 'BEGIN { printf "containerd / Hoist: %.1fx\n", c / h }'

echo "== a pod through containerd's CRI, its container from the image Hoist pulled"
"$bin"/hoist-bench cri run --socket "$HOIST_TEST_CONTAINERD_SOCKET" --id "$id" \
    --tag "$HOIST_TEST_REGISTRY/demo/node:hoist" --logs "$node/pods" \
    "hello from a container that containerd started from Hoist's snapshots"
