#!/usr/bin/env bash
# with-services.sh: run a command beside the real parts the harness's integration tests need.
#
# Installs grpcio in a venv (HOIST_TEST_PYTHON) and starts (through scripts/lib.sh) a plain-HTTP
# registry, a registry with basic auth, moto as
# ECR and STS with a registry standing in for ECR's, and a containerd of its own, exports
# HOIST_TEST_* for them, runs the command, and stops everything on exit or interrupt. For
# development:
#
#   scripts/with-services.sh cargo test -p hoist-harness
#   HOIST_SERVICES_DIR=/tmp/hs scripts/with-services.sh sleep infinity &   # then: source /tmp/hs/env
#   HOIST_CONTAINERD=2 scripts/with-services.sh cargo test --workspace needs_containerd
#
# HOIST_CONTAINERD picks the containerd: 1 (the default) is Debian's 1.6 on PATH, 2 is Debian
# unstable's 2.1.9, fetched once into /var/cache/hoist (scripts/lib.sh hoist_install_containerd2),
# whose containerd, ctr and shim then come first on the command's PATH.
# The services' directory is removed afterwards unless HOIST_SERVICES_DIR names it.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$here/lib.sh"

if (($# == 0)); then
    echo "usage: $0 COMMAND [ARG]..." >&2
    exit 2
fi

hoist_install_deps
hoist_install_grpcio
if [[ -n ${HOIST_SERVICES_DIR:-} ]]; then
    services_dir=$HOIST_SERVICES_DIR
    mkdir -p "$services_dir"
    trap hoist_stop_services EXIT
else
    services_dir=$(mktemp -d /tmp/hoist-services.XXXXXX)
    trap 'hoist_stop_services; rm -rf "$services_dir"' EXIT
fi
trap 'exit 130' INT
trap 'exit 143' TERM

hoist_start_registry "$services_dir/registry"
hoist_start_registry "$services_dir/auth-registry" hoist:hoist-test-password
hoist_start_registry "$services_dir/tls-registry" "" tls
hoist_start_moto "$services_dir/moto"
hoist_start_ecr_registry "$services_dir/ecr-registry"
hoist_start_containerd "$services_dir/containerd" "${HOIST_CONTAINERD:-1}"
{
    export -p | grep ' HOIST_TEST_'
    echo "export PATH=${PATH@Q}"
} >"$services_dir/env"

"$@"
