# shellcheck shell=bash
# lib.sh: the real parts Hoist's scripts run against, started and stopped from bash.
#
# Sourced by scripts/test.sh, scripts/demo.sh and scripts/bench.sh. It owns:
#   hoist_install_deps             install containerd, docker-registry, skopeo, runc (and curl,
#                                  htpasswd) with apt-get, only when one of their commands is missing
#   hoist_start_registry DIR [U:P] Debian's docker-registry (CNCF distribution) on 127.0.0.1, a free
#                                  port, storage and config in DIR; exports HOIST_TEST_REGISTRY, or with
#                                  basic auth U:P, HOIST_TEST_AUTH_REGISTRY and HOIST_TEST_AUTH_REGISTRY_CREDS
#   hoist_install_containerd2      Debian unstable's containerd 2.1.9, downloaded (never installed) and
#                                  unpacked into HOIST_CONTAINERD2_DIR (/var/cache/hoist/containerd-2.1.9)
#   hoist_start_containerd DIR [1|2]
#                                  Debian's containerd 1.6 (1, the default) or that 2.1.9 (2, its usr/bin
#                                  then first on PATH) with root, state, socket and config under DIR,
#                                  the config made from deploy/containerd/config-v2.toml or config-v3.toml;
#                                  needs HOIST_TEST_REGISTRY. Exports HOIST_TEST_CONTAINERD_SOCKET,
#                                  HOIST_TEST_CONTAINERD_ROOT, HOIST_TEST_CONTAINERD_CONFIG,
#                                  HOIST_TEST_CONTAINERD_VERSION (1.6.20, 2.1.9), HOIST_TEST_CONTAINERD_CRI
#                                  (1 when the CRI plugin loaded, 0 when disabled) and
#                                  HOIST_TEST_SANDBOX_IMAGE (HOIST_TEST_REGISTRY/hoist/pause:3.10, the CRI's
#                                  sandbox image; DIR/certs.d lets the CRI pull from that registry); the
#                                  config names Hoist's proxy snapshotter `hoist` on
#                                  HOIST_TEST_SNAPSHOTS_SOCKET (served by `hoist serve`). A test may
#                                  restart containerd: `containerd --config $HOIST_TEST_CONTAINERD_CONFIG`,
#                                  its pid written to DIR/containerd.pid, where the stop reads it
#   hoist_start_moto DIR           moto_server (PyPI moto[server]) on 127.0.0.1 as the ECR and STS
#                                  endpoint; exports HOIST_TEST_MOTO_ENDPOINT (http://127.0.0.1:PORT)
#   hoist_start_ecr_registry DIR   docker-registry with basic auth whose user is AWS and whose
#                                  password is the token moto's GetAuthorizationToken gives account
#                                  123456789012; exports HOIST_TEST_ECR_REGISTRY
#   hoist_stop_services            stops everything started here, idempotent, meant for a trap
#   hoist_cleanup_on_exit          installs that trap for EXIT, INT and TERM
#
# Every server listens on 127.0.0.1 or a unix socket under its DIR only. Logs go to DIR/*.log,
# pids to DIR/*.pid. Servers run in a session of their own, so Ctrl-C reaches only the script and
# its trap stops things in order: containerd's tasks and containers (so no shim or runc state is
# left in /run/containerd), the servers, then any mount still below a service DIR (put
# `ctr images mount` targets there). Pass `--fifo-dir DIR/fifo` to `ctr run` too: ctr's default
# FIFO directory is /run/containerd/fifo.
#
# Usage:
#   source scripts/lib.sh
#   hoist_install_deps
#   hoist_cleanup_on_exit
#   dir=$(mktemp -d)
#   hoist_start_registry "$dir/registry"
#   hoist_start_containerd "$dir/containerd"      # or: hoist_start_containerd "$dir/containerd" 2

# Pids of the servers started here, stopped in reverse order.
HOIST_SERVICE_PIDS=(${HOIST_SERVICE_PIDS[@]+"${HOIST_SERVICE_PIDS[@]}"})
# Directories services were started in, for the unmount sweep.
HOIST_SERVICE_DIRS=(${HOIST_SERVICE_DIRS[@]+"${HOIST_SERVICE_DIRS[@]}"})
# containerd sockets started here: their shims outlive containerd and are stopped by address.
HOIST_SERVICE_SOCKETS=(${HOIST_SERVICE_SOCKETS[@]+"${HOIST_SERVICE_SOCKETS[@]}"})

hoist_log() {
    printf '[hoist] %s\n' "$*" >&2
}

# hoist_install_deps: apt-get update + install only the packages whose command is missing.
hoist_install_deps() {
    local pair cmd pkg missing=()
    for pair in containerd:containerd ctr:containerd containerd-shim-runc-v2:containerd \
        docker-registry:docker-registry skopeo:skopeo runc:runc curl:curl htpasswd:apache2-utils \
        openssl:openssl; do
        cmd=${pair%%:*}
        pkg=${pair#*:}
        if ! command -v "$cmd" >/dev/null 2>&1 && [[ ! -x /usr/sbin/$cmd ]]; then
            [[ " ${missing[*]-} " == *" $pkg "* ]] || missing+=("$pkg")
        fi
    done
    if ! command -v moto_server >/dev/null 2>&1; then
        hoist_log "installing moto[server] with pip"
        python3 -m pip install -q 'moto[server]' || return 1
    fi
    if ((${#missing[@]} == 0)); then
        return 0
    fi
    if [[ $(id -u) -ne 0 ]]; then
        hoist_log "missing packages ${missing[*]}: run as root to install them"
        return 1
    fi
    hoist_log "installing ${missing[*]}"
    # Keep the packages' own services (a registry on :5000, a system containerd) from starting:
    # the scripts start their own, bound to 127.0.0.1 with their own state.
    local policy=/usr/sbin/policy-rc.d created_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 0755 "$policy" && created_policy=1
    fi
    local rc=0
    DEBIAN_FRONTEND=noninteractive apt-get update -q || rc=$?
    if ((rc == 0)); then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
            -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}" || rc=$?
    fi
    if ((created_policy)); then
        rm -f "$policy"
    fi
    return "$rc"
}

# _hoist_track PID DIR: remember a server for hoist_stop_services.
_hoist_track() {
    HOIST_SERVICE_PIDS+=("$1")
    if [[ " ${HOIST_SERVICE_DIRS[*]-} " != *" $2 "* ]]; then
        HOIST_SERVICE_DIRS+=("$2")
    fi
}

# _hoist_spawn LOG PIDFILE COMMAND...: start a server in a session of its own, so that Ctrl-C (a
# SIGINT to the script's process group) reaches the script, whose trap then stops the servers in
# order (containers before containerd), instead of killing them mid-flight. Sets HOIST_SPAWNED_PID.
_hoist_spawn() {
    local log=$1 pidfile=$2 i
    shift 2
    rm -f "$pidfile"
    # setsid forks only when started as a process group leader (interactive shells); the pid file
    # names the process that execs the server either way.
    # shellcheck disable=SC2016 # $$ and $@ are for the inner shell
    setsid bash -c 'echo $$ >"$0" && exec "$@"' "$pidfile" "$@" >>"$log" 2>&1 </dev/null &
    for i in $(seq 1 100); do
        [[ -s $pidfile ]] && break
        sleep 0.02
    done
    HOIST_SPAWNED_PID=$(cat "$pidfile" 2>/dev/null || echo "$!")
}

# _hoist_random_free_port: a TCP port nothing listens on now (the caller retries on a race).
_hoist_random_free_port() {
    local port
    while true; do
        port=$((20000 + RANDOM % 40000))
        if ! ss -Htln "sport = :$port" 2>/dev/null | grep -q .; then
            echo "$port"
            return 0
        fi
    done
}

# _hoist_make_certs DIR: a throwaway CA (DIR/ca.pem) and a server certificate for 127.0.0.1
# signed by it (DIR/cert.pem, DIR/key.pem).
_hoist_make_certs() {
    local dir=$1
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=hoist test CA" \
        -keyout "$dir/ca.key" -out "$dir/ca.pem" >/dev/null 2>&1 || return 1
    openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
        -keyout "$dir/key.pem" -out "$dir/cert.csr" >/dev/null 2>&1 || return 1
    printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$dir/ext.cnf"
    openssl x509 -req -in "$dir/cert.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
        -days 2 -extfile "$dir/ext.cnf" -out "$dir/cert.pem" >/dev/null 2>&1
}

# hoist_start_registry DIR [USER:PASSWORD] [tls]: docker-registry on 127.0.0.1:<free port>.
# With `tls` it serves HTTPS with a certificate from a CA made for it, and exports
# HOIST_TEST_TLS_REGISTRY and HOIST_TEST_TLS_CA (the CA's PEM file).
hoist_start_registry() {
    local dir=${1:?usage: hoist_start_registry DIR [USER:PASSWORD] [tls]} creds=${2:-} tls=${3:-}
    mkdir -p "$dir/storage" || return 1
    dir=$(cd "$dir" && pwd) || return 1
    local tls_config="" scheme=http curl_tls=()
    if [[ $tls == tls ]]; then
        _hoist_make_certs "$dir" || { hoist_log "could not make test certificates in $dir"; return 1; }
        tls_config=$'  tls:\n    certificate: '"$dir/cert.pem"$'\n    key: '"$dir/key.pem"
        scheme=https
        curl_tls=(--cacert "$dir/ca.pem")
    fi
    local auth=""
    if [[ -n $creds ]]; then
        if [[ $creds != *:* ]]; then
            hoist_log "registry credentials must be USER:PASSWORD"
            return 1
        fi
        htpasswd -Bbc "$dir/htpasswd" "${creds%%:*}" "${creds#*:}" 2>/dev/null || return 1
        auth=$'auth:\n  htpasswd:\n    realm: hoist\n    path: '"$dir/htpasswd"
    fi
    local attempt port pid code
    for attempt in 1 2 3 4 5 6 7 8 9 10; do
        port=$(_hoist_random_free_port)
        cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/storage
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: 127.0.0.1:$port
$tls_config
  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: false
$auth
EOF
        _hoist_spawn "$dir/registry.log" "$dir/registry.pid" docker-registry serve "$dir/config.yml"
        pid=$HOIST_SPAWNED_PID
        _hoist_track "$pid" "$dir"
        local i
        for i in $(seq 1 100); do
            if ! kill -0 "$pid" 2>/dev/null; then
                break
            fi
            code=$(curl -s "${curl_tls[@]}" -o /dev/null -w '%{http_code}' --max-time 2 "$scheme://127.0.0.1:$port/v2/" || true)
            if [[ $code == 200 || ($code == 401 && -n $creds) ]]; then
                if [[ $tls == tls ]]; then
                    export HOIST_TEST_TLS_REGISTRY=127.0.0.1:$port
                    export HOIST_TEST_TLS_CA=$dir/ca.pem
                elif [[ -n $creds ]]; then
                    export HOIST_TEST_AUTH_REGISTRY=127.0.0.1:$port
                    export HOIST_TEST_AUTH_REGISTRY_CREDS=$creds
                else
                    export HOIST_TEST_REGISTRY=127.0.0.1:$port
                fi
                hoist_log "registry on $scheme://127.0.0.1:$port (pid $pid, dir $dir${creds:+, basic auth})"
                return 0
            fi
            sleep 0.1
        done
        _hoist_stop_pid "$pid"
        if grep -q 'address already in use' "$dir/registry.log" 2>/dev/null; then
            hoist_log "registry port $port was taken, retrying (attempt $attempt)"
            : >"$dir/registry.log"
            continue
        fi
        hoist_log "registry did not answer on 127.0.0.1:$port; its log ($dir/registry.log):"
        tail -n 20 "$dir/registry.log" >&2
        return 1
    done
    hoist_log "registry: no free port after 10 attempts"
    return 1
}

# hoist_start_moto DIR: moto_server on 127.0.0.1:<free port>, log in DIR/moto.log.
hoist_start_moto() {
    local dir=${1:?usage: hoist_start_moto DIR}
    mkdir -p "$dir" || return 1
    dir=$(cd "$dir" && pwd) || return 1
    local attempt port pid i
    for attempt in 1 2 3 4 5; do
        port=$(_hoist_random_free_port)
        _hoist_spawn "$dir/moto.log" "$dir/moto.pid" moto_server -H 127.0.0.1 -p "$port"
        pid=$HOIST_SPAWNED_PID
        _hoist_track "$pid" "$dir"
        for i in $(seq 1 150); do
            if ! kill -0 "$pid" 2>/dev/null; then
                break
            fi
            if curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$port/moto-api/"; then
                export HOIST_TEST_MOTO_ENDPOINT=http://127.0.0.1:$port
                hoist_log "moto on http://127.0.0.1:$port (pid $pid, dir $dir)"
                return 0
            fi
            sleep 0.1
        done
        _hoist_stop_pid "$pid"
        hoist_log "moto did not answer on 127.0.0.1:$port (attempt $attempt); its log ($dir/moto.log):"
        tail -n 5 "$dir/moto.log" >&2
    done
    return 1
}

# hoist_start_ecr_registry DIR: a registry standing in for ECR's: basic auth, user AWS, password
# the one moto's GetAuthorizationToken decodes to for its default account.
hoist_start_ecr_registry() {
    local dir=${1:?usage: hoist_start_ecr_registry DIR}
    # hoist_start_registry exports HOIST_TEST_AUTH_REGISTRY*; keep the basic-auth registry's.
    local saved=${HOIST_TEST_AUTH_REGISTRY-} saved_creds=${HOIST_TEST_AUTH_REGISTRY_CREDS-}
    hoist_start_registry "$dir" "AWS:123456789012-auth-token" || return 1
    export HOIST_TEST_ECR_REGISTRY=$HOIST_TEST_AUTH_REGISTRY
    if [[ -n $saved ]]; then
        export HOIST_TEST_AUTH_REGISTRY=$saved HOIST_TEST_AUTH_REGISTRY_CREDS=$saved_creds
    else
        unset HOIST_TEST_AUTH_REGISTRY HOIST_TEST_AUTH_REGISTRY_CREDS
    fi
}

# The node configs an operator copies (the README's): the tests' configs are made from them.
HOIST_DEPLOY_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../deploy/containerd" 2>/dev/null && pwd)

# containerd 2.x beside Debian 12's 1.6: Debian unstable's package, whose binaries need only
# glibc >= 2.34. Downloaded through the Debian mirror this machine's apt already uses, with a
# sources list and apt state of its own (nothing on the system is upgraded), and unpacked with
# dpkg -x into HOIST_CONTAINERD2_DIR, where later runs find it.
HOIST_CONTAINERD2_PACKAGE=${HOIST_CONTAINERD2_PACKAGE:-2.1.9+ds1-5}
HOIST_CONTAINERD2_DIR=${HOIST_CONTAINERD2_DIR:-/var/cache/hoist/containerd-${HOIST_CONTAINERD2_PACKAGE%%+*}}

# _hoist_containerd_version BINARY: its version as `1.6.20` or `2.1.9` (Debian's suffixes and
# Go's `v` dropped), empty when it does not run.
_hoist_containerd_version() {
    "$1" --version 2>/dev/null | awk '{ v = $3; sub(/^v/, "", v); sub(/[~+-].*/, "", v); print v; exit }'
}

# hoist_install_containerd2: HOIST_CONTAINERD2_DIR/usr/bin/{containerd,ctr,containerd-shim-runc-v2}
# of version HOIST_CONTAINERD2_PACKAGE; does nothing when they are already there.
hoist_install_containerd2() {
    local dir=$HOIST_CONTAINERD2_DIR want=${HOIST_CONTAINERD2_PACKAGE%%+*} tool
    local ok=1
    for tool in containerd ctr containerd-shim-runc-v2; do
        [[ -x $dir/usr/bin/$tool ]] || ok=0
    done
    if ((ok)) && [[ $(_hoist_containerd_version "$dir/usr/bin/containerd") == "$want" ]]; then
        return 0
    fi
    if [[ $(id -u) -ne 0 ]]; then
        hoist_log "containerd $want is not in $dir: run as root to fetch it"
        return 1
    fi
    # The mirror of this release's own Debian source (`Release:` is the suite as the sources
    # name it, so bookworm-security and bookworm-updates do not match; --no-release-info reads
    # only the sources, so it works before any apt-get update).
    local codename mirror
    codename=$(. /etc/os-release && echo "${VERSION_CODENAME-}")
    # shellcheck disable=SC2016 # $(REPO_URI) is apt's format field
    mirror=$(apt-get indextargets --no-release-info --format '$(REPO_URI)' 'Created-By: Packages' \
        "Release: $codename" 2>/dev/null | head -n 1)
    if [[ -z $codename || -z $mirror ]]; then
        hoist_log "no Debian source for '${codename:-?}' in apt's sources: cannot fetch containerd $want"
        return 1
    fi
    local work rc=0
    work=$(mktemp -d /tmp/hoist-containerd2.XXXXXX) || return 1
    mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/deb"
    printf 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s unstable main\n' \
        "$mirror" >"$work/sources.list"
    local apt=(apt-get -q -o "Dir::Etc::SourceList=$work/sources.list" -o Dir::Etc::SourceParts=/dev/null
        -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache"
        -o Dir::State::status=/var/lib/dpkg/status)
    hoist_log "fetching containerd $HOIST_CONTAINERD2_PACKAGE from Debian unstable ($mirror) into $dir"
    "${apt[@]}" update >"$work/apt.log" 2>&1 || rc=$?
    if ((rc == 0)); then
        (cd "$work/deb" && "${apt[@]}" download "containerd=$HOIST_CONTAINERD2_PACKAGE") \
            >>"$work/apt.log" 2>&1 || rc=$?
    fi
    # Unpacked beside its final place, then renamed: a concurrent run finds nothing or all of it.
    local new=""
    if ((rc == 0)); then
        mkdir -p "${dir%/*}" && new=$(mktemp -d "$dir.new.XXXXXX") &&
            dpkg -x "$work"/deb/containerd_*.deb "$new" || rc=$?
    fi
    if ((rc != 0)); then
        hoist_log "fetching containerd $HOIST_CONTAINERD2_PACKAGE failed; apt's output:"
        tail -n 20 "$work/apt.log" >&2
        rm -rf "$work" ${new:+"$new"}
        return 1
    fi
    local got
    rm -rf "$work"
    got=$(_hoist_containerd_version "$new/usr/bin/containerd")
    if [[ $got != "$want" ]]; then
        hoist_log "the unpacked containerd says version '${got:-none}', not $want"
        rm -rf "$new"
        return 1
    fi
    rm -rf "$dir" && mv -T "$new" "$dir" || {
        rm -rf "$new"
        return 1
    }
    hoist_log "containerd $got in $dir/usr/bin"
}

# _hoist_write_containerd_config DIR CRI(0|1) MAJOR(1|2): DIR/config.toml made from the node
# config an operator copies (deploy/containerd/config-v2.toml for containerd 1.x, config-v3.toml
# for 2.x), so that the file the README shows is the one tested. Its paths and addresses become
# DIR's: the snapshotter `hoist` on DIR/hoist-snapshots.sock (serve it with `hoist serve
# --snapshots-socket`; containerd starts without that socket and connects when the snapshotter
# is first used), the sandbox image HOIST_TEST_REGISTRY/hoist/pause:3.10, and the CRI's hosts
# directory DIR/certs.d. The test's own keys (root, state, sockets, no TCP for the CRI's
# streams) are added, into the file's own table where it has one.
_hoist_write_containerd_config() {
    local dir=$1 cri=$2 major=$3
    local source=$HOIST_DEPLOY_DIR/config-v$((major + 1)).toml
    local disabled='"io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"'
    if ((major == 1)); then
        disabled+=', "io.containerd.snapshotter.v1.aufs"'
    else
        disabled+=', "io.containerd.snapshotter.v1.blockfile", "io.containerd.snapshotter.v1.erofs"'
    fi
    if ((cri == 0)); then
        disabled+=', "io.containerd.grpc.v1.cri"'
    fi
    local text pair from to
    text=$(<"$source") || return 1
    for pair in "/run/hoist/snapshots.sock|$dir/hoist-snapshots.sock" \
        "registry.k8s.io/pause:3.10|$HOIST_TEST_SANDBOX_IMAGE" \
        "/etc/containerd/certs.d|$dir/certs.d"; do
        from=${pair%%|*}
        to=${pair#*|}
        if [[ $text != *"\"$from\""* ]]; then
            hoist_log "$source no longer sets \"$from\": update _hoist_write_containerd_config"
            return 1
        fi
        text=${text//"\"$from\""/"\"$to\""}
    done
    cat >"$dir/config.test.toml" <<EOT
root = "$dir/root"
state = "$dir/state"
disabled_plugins = [$disabled]

[grpc]
  address = "$dir/containerd.sock"

[ttrpc]
  address = "$dir/containerd.sock.ttrpc"

[debug]
  address = ""
  level = "info"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "$dir/opt"

[plugins."io.containerd.grpc.v1.cri"]
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
EOT
    # Without CAP_SYS_RESOURCE (a container or sandbox as root), runc cannot lower a pod's
    # oom_score_adj to the -998 containerd asks for a sandbox, and RunPodSandbox fails with
    # "can't get final child's PID from pipe: EOF"; containerd then keeps its own score.
    if ! _hoist_has_cap 24; then
        if ((major == 1)); then
            printf '  restrict_oom_score_adj = true\n' >>"$dir/config.test.toml"
        else
            printf '\n[plugins."io.containerd.cri.v1.runtime"]\n  restrict_oom_score_adj = true\n' >>"$dir/config.test.toml"
        fi
    fi
    # Top-level keys go right after `version`, a table's keys right after its header when the
    # node config has that table, and the other tables at the end.
    {
        echo "# Written by scripts/lib.sh from $source, for Hoist's tests."
        printf '%s\n' "$text" | awk '
            NR == FNR {
                if ($0 == "") next
                if ($0 ~ /^\[/) { table = $0; order[++n] = table; next }
                if (table == "") top = top $0 "\n"; else body[table] = body[table] $0 "\n"
                next
            }
            { print }
            /^version *= *[0-9]+ *$/ { printf "%s", top; placed = 1 }
            ($0 in body) { printf "%s", body[$0]; done[$0] = 1 }
            END {
                if (!placed) exit 1
                for (i = 1; i <= n; i++) if (!(order[i] in done)) { print ""; print order[i]; printf "%s", body[order[i]] }
            }' "$dir/config.test.toml" -
    } >"$dir/config.toml" || {
        hoist_log "$source has no 'version = N' line before its tables"
        return 1
    }
    rm -f "$dir/config.test.toml"
}

# _hoist_has_cap BIT: whether this shell's effective capabilities hold capability BIT
# (linux/capability.h: 24 is CAP_SYS_RESOURCE).
_hoist_has_cap() {
    local eff
    eff=$(awk '$1 == "CapEff:" {print $2}' /proc/self/status 2>/dev/null) || return 1
    [[ -n $eff ]] && (((0x$eff >> $1) & 1))
}

# _hoist_cri_snapshotter CONFIG: the snapshotter containerd's CRI uses with CONFIG, as containerd
# itself reads it (`config dump`, after migrating an older config version).
_hoist_cri_snapshotter() {
    containerd --config "$1" config dump 2>/dev/null | awk '
        /^ *\[/ { table = $0; gsub(/[ "\047]/, "", table); next }
        (table == "[plugins.io.containerd.grpc.v1.cri.containerd]" || table == "[plugins.io.containerd.cri.v1.images]") && $1 == "snapshotter" {
            value = $3; gsub(/["\047]/, "", value); print value; exit
        }'
}

# _hoist_write_hosts DIR: DIR/certs.d/HOST:PORT/hosts.toml letting containerd's CRI pull from
# the plain-HTTP registry HOIST_TEST_REGISTRY.
_hoist_write_hosts() {
    local hosts=$1/certs.d/$HOIST_TEST_REGISTRY
    mkdir -p "$hosts" || return 1
    cat >"$hosts/hosts.toml" <<EOT
server = "http://$HOIST_TEST_REGISTRY"

[host."http://$HOIST_TEST_REGISTRY"]
  capabilities = ["pull", "resolve"]
EOT
}

# _hoist_containerd_up DIR PID: wait until `ctr version` answers (30 s).
_hoist_containerd_up() {
    local dir=$1 pid=$2 i
    for i in $(seq 1 300); do
        if ! kill -0 "$pid" 2>/dev/null; then
            return 1
        fi
        if ctr --address "$dir/containerd.sock" version >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# hoist_start_containerd DIR [MAJOR]: containerd with root, state and socket under DIR: with
# MAJOR 1 (the default) Debian's containerd on PATH (1.6 on Debian 12), with 2 the one
# hoist_install_containerd2 fetches, whose usr/bin is then put first on PATH (for containerd,
# which finds its shim there, and for the tests' `ctr`). Needs HOIST_TEST_REGISTRY (the sandbox
# image is pulled from it). Fails when containerd's CRI would not use the snapshotter `hoist`.
hoist_start_containerd() {
    local dir=${1:?usage: hoist_start_containerd DIR [1|2]} major=${2:-1}
    if [[ $major != 1 && $major != 2 ]]; then
        hoist_log "containerd major version '$major': 1 or 2"
        return 1
    fi
    if [[ -z ${HOIST_TEST_REGISTRY-} ]]; then
        hoist_log "start the plain-HTTP registry (hoist_start_registry) before containerd: its sandbox image is there"
        return 1
    fi
    mkdir -p "$dir" || return 1
    dir=$(cd "$dir" && pwd) || return 1
    local sock=$dir/containerd.sock
    # sun_path is 108 bytes, and containerd also listens on SOCKET.ttrpc.
    if ((${#sock} > 100)); then
        hoist_log "containerd socket path $sock is too long for a unix socket; use a shorter DIR"
        return 1
    fi
    if ((major == 2)); then
        hoist_install_containerd2 || return 1
        if [[ $PATH != "$HOIST_CONTAINERD2_DIR/usr/bin:"* ]]; then
            export PATH=$HOIST_CONTAINERD2_DIR/usr/bin:$PATH
        fi
    fi
    local version
    version=$(_hoist_containerd_version "$(command -v containerd)")
    if [[ $version != "$major".* ]]; then
        hoist_log "containerd on PATH is version '${version:-none}', not $major.x"
        return 1
    fi
    export HOIST_TEST_SANDBOX_IMAGE=$HOIST_TEST_REGISTRY/hoist/pause:3.10
    _hoist_write_hosts "$dir" || return 1
    local cri pid snapshotter
    for cri in 1 0; do
        _hoist_write_containerd_config "$dir" "$cri" "$major" || return 1
        snapshotter=$(_hoist_cri_snapshotter "$dir/config.toml")
        # containerd 1.x leaves a disabled CRI plugin's config out of the dump.
        if [[ $snapshotter != hoist && ! ($cri == 0 && -z $snapshotter) ]]; then
            hoist_log "containerd $version reads $dir/config.toml with CRI snapshotter '${snapshotter:-none}', not hoist (containerd config dump)"
            return 1
        fi
        _hoist_spawn "$dir/containerd.log" "$dir/containerd.pid" containerd --config "$dir/config.toml"
        pid=$HOIST_SPAWNED_PID
        # Stopped through its pid file, which a test that restarts containerd rewrites.
        _hoist_track "@$dir/containerd.pid" "$dir"
        HOIST_SERVICE_SOCKETS+=("$sock")
        if ! _hoist_containerd_up "$dir" "$pid"; then
            hoist_log "containerd did not answer on $sock; its log ($dir/containerd.log):"
            tail -n 20 "$dir/containerd.log" >&2
            _hoist_stop_pid "$pid"
            return 1
        fi
        if ((cri == 0)); then
            hoist_log "containerd CRI plugin disabled: it did not load (see $dir/containerd.log)"
            break
        fi
        local status
        status=$(ctr --address "$sock" plugins ls 2>/dev/null | awk '$1 == "io.containerd.grpc.v1" && $2 == "cri" {print $NF}')
        if [[ $status == ok ]]; then
            break
        fi
        hoist_log "containerd CRI plugin status '${status:-missing}', restarting containerd without it"
        _hoist_stop_pid "$pid"
    done
    export HOIST_TEST_CONTAINERD_SOCKET=$sock
    export HOIST_TEST_CONTAINERD_ROOT=$dir/root
    export HOIST_TEST_CONTAINERD_CRI=$cri
    export HOIST_TEST_CONTAINERD_CONFIG=$dir/config.toml
    export HOIST_TEST_CONTAINERD_VERSION=$version
    export HOIST_TEST_SNAPSHOTS_SOCKET=$dir/hoist-snapshots.sock
    hoist_log "containerd $version on $sock (pid $pid, root $dir/root, cri $cri)"
}

# _hoist_alive PID: running, not a zombie and not yet reaped. bash reaps exited children on its
# own (keeping the status for `wait`), so /proc/PID may vanish between any two checks: a PID whose
# stat cannot be read counts as gone.
_hoist_alive() {
    local state
    state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null || true)
    [[ -n $state && $state != Z ]]
}

# _hoist_stop_pid PID: TERM, up to 10 s, then KILL; reaps it when it is our child.
_hoist_stop_pid() {
    local pid=$1 i
    # Every command here tolerates failure: this runs from traps in `set -e` scripts, and
    # `wait` returns the child's 143 after a TERM.
    if ! kill -0 "$pid" 2>/dev/null; then
        wait "$pid" 2>/dev/null || true
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 100); do
        if ! _hoist_alive "$pid"; then
            break
        fi
        sleep 0.1
    done
    if _hoist_alive "$pid"; then
        hoist_log "pid $pid ignored SIGTERM for 10 s, killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    return 0
}

# _hoist_descendants PID: PID's children, grandchildren, ... (one per line).
_hoist_descendants() {
    local child
    for child in $(cat "/proc/$1/task/"*/children 2>/dev/null || true); do
        echo "$child"
        _hoist_descendants "$child"
    done
}

# _hoist_stop_shims SOCKET: the runc shims (and their containers) of the containerd on SOCKET.
# A shim deliberately outlives containerd; it carries the address it serves in its command line.
_hoist_stop_shims() {
    local sock=$1 cmdline pid p args
    for cmdline in /proc/[0-9]*/cmdline; do
        pid=${cmdline#/proc/}
        pid=${pid%/cmdline}
        args=$(tr '\0' ' ' 2>/dev/null <"$cmdline" || true)
        if [[ $args == *containerd-shim*" -address $sock "* ]]; then
            for p in $(_hoist_descendants "$pid") "$pid"; do
                kill -KILL "$p" 2>/dev/null || true
            done
        fi
    done
}

# _hoist_stop_containers SOCKET: kill and delete every task and container of every namespace, so
# runc's state (/run/containerd/runc/NS/ID) and the shims go away with them.
_hoist_stop_containers() {
    local sock=$1 ns id
    local ctr=(timeout 20 ctr --address "$sock")
    for ns in $("${ctr[@]}" namespaces ls -q 2>/dev/null || true); do
        for id in $("${ctr[@]}" -n "$ns" tasks ls -q 2>/dev/null || true); do
            "${ctr[@]}" -n "$ns" tasks kill -a -s SIGKILL "$id" >/dev/null 2>&1 || true
        done
        for id in $("${ctr[@]}" -n "$ns" tasks ls -q 2>/dev/null || true); do
            "${ctr[@]}" -n "$ns" tasks delete -f "$id" >/dev/null 2>&1 || true
        done
        for id in $("${ctr[@]}" -n "$ns" containers ls -q 2>/dev/null || true); do
            "${ctr[@]}" -n "$ns" containers delete "$id" >/dev/null 2>&1 || true
        done
    done
}

# _hoist_unmount_under DIR: unmount everything mounted at or below DIR, deepest first.
_hoist_unmount_under() {
    local dir=$1 target
    awk -v d="$dir" '{ t = $5; gsub(/\\040/, " ", t); if (t == d || index(t, d "/") == 1) print t }' \
        /proc/self/mountinfo 2>/dev/null | sort -r | while IFS= read -r target; do
        umount "$target" 2>/dev/null || umount -l "$target" 2>/dev/null || hoist_log "could not unmount $target"
    done
}

# _hoist_stop_tracked PID|@PIDFILE: stop a server by its pid, or by the pid its pid file names
# now (containerd's: a test may have restarted it). A pid file naming a process that is no
# longer containerd (gone, its pid reused) is left alone.
_hoist_stop_tracked() {
    local entry=$1 pid
    if [[ $entry != @* ]]; then
        _hoist_stop_pid "$entry"
        return 0
    fi
    pid=$(cat "${entry#@}" 2>/dev/null || true)
    if [[ $pid =~ ^[0-9]+$ ]] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q containerd; then
        _hoist_stop_pid "$pid"
    fi
    return 0
}

# hoist_stop_services: stop every server started here; safe to call twice and from a trap.
hoist_stop_services() {
    local i sock dir
    for sock in ${HOIST_SERVICE_SOCKETS[@]+"${HOIST_SERVICE_SOCKETS[@]}"}; do
        _hoist_stop_containers "$sock"
        # Whatever survived (containerd already gone, a wedged task) is killed outright.
        _hoist_stop_shims "$sock"
    done
    for ((i = ${#HOIST_SERVICE_PIDS[@]} - 1; i >= 0; i--)); do
        _hoist_stop_tracked "${HOIST_SERVICE_PIDS[$i]}"
    done
    for dir in ${HOIST_SERVICE_DIRS[@]+"${HOIST_SERVICE_DIRS[@]}"}; do
        _hoist_unmount_under "$dir"
        rm -f "$dir/registry.pid" "$dir/containerd.pid" "$dir/moto.pid" || true
    done
    HOIST_SERVICE_PIDS=()
    HOIST_SERVICE_SOCKETS=()
    HOIST_SERVICE_DIRS=()
    return 0
}

# hoist_cleanup_on_exit: stop the services when the script exits, fails or is interrupted.
hoist_cleanup_on_exit() {
    trap hoist_stop_services EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    trap 'exit 129' HUP
}

# hoist_install_grpcio: a Python venv (HOIST_VENV, default /var/cache/hoist/venv) with grpcio from
# PyPI, a real gRPC client of grpc-core's kind, for the tests of what clients send as HTTP/2
# :authority; exports HOIST_TEST_PYTHON, its interpreter. Created once, reused afterwards.
hoist_install_grpcio() {
    local venv=${HOIST_VENV:-/var/cache/hoist/venv}
    if ! "$venv/bin/python" -c 'import grpc' >/dev/null 2>&1; then
        hoist_log "installing grpcio in a venv at $venv"
        mkdir -p "$(dirname "$venv")" || return 1
        python3 -m venv "$venv" || return 1
        "$venv/bin/pip" install -q 'grpcio>=1.57,<2' || return 1
    fi
    export HOIST_TEST_PYTHON=$venv/bin/python
}
