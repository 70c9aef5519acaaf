//! The configuration of a containerd a test starts itself, made from the node config an operator
//! copies (`deploy/containerd/config-v2.toml` for containerd 1.x, `config-v3.toml` for 2.x, as
//! scripts/lib.sh makes its own), so that the file the README shows is the file tested against
//! whichever containerd is first on PATH. The node config's paths become the test's, and the
//! test's own keys (root, state, sockets, disabled plugins) are added.
//!
//! Shared by the harness's and the snapshotter's integration tests (the latter include this
//! file by path).

use std::path::Path;
use std::process::Command;

/// containerd 1.x's node config (config version 2).
const NODE_V2: &str = include_str!("../../../deploy/containerd/config-v2.toml");
/// containerd 2.x's node config (config version 3).
const NODE_V3: &str = include_str!("../../../deploy/containerd/config-v3.toml");

/// Where a test's containerd keeps its files and finds Hoist.
#[derive(Debug, Clone, Copy)]
pub struct Test<'a> {
    /// Root, state, opt and certs.d go under it.
    pub dir: &'a Path,
    /// containerd's gRPC socket (its ttrpc socket is beside it).
    pub socket: &'a Path,
    /// Hoist's snapshots socket, the proxy snapshotter `hoist`.
    pub snapshots: &'a Path,
    /// Whether containerd's CRI plugin is loaded.
    pub cri: bool,
}

/// The major version of the `containerd` first on PATH (`containerd --version` prints
/// `containerd <module> <version> ...`, as `1.6.20~ds1` or `2.1.9+unknown`).
pub fn major() -> u32 {
    let out = Command::new("containerd")
        .arg("--version")
        .output()
        .expect("containerd runs (scripts/lib.sh installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .nth(2)
        .and_then(|v| v.trim_start_matches('v').split('.').next())
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("no version in `containerd --version`: {text:?}"))
}

/// The node config a containerd of major version `major` needs, made into `test`'s.
pub fn config(test: Test<'_>, major: u32) -> String {
    let (node, version) = if major >= 2 {
        (NODE_V3, "version = 3\n")
    } else {
        (NODE_V2, "version = 2\n")
    };
    let d = test.dir.display();
    let replace = [
        (
            "\"/run/hoist/snapshots.sock\"",
            format!("\"{}\"", test.snapshots.display()),
        ),
        ("\"/etc/containerd/certs.d\"", format!("\"{d}/certs.d\"")),
    ];
    let mut disabled = vec![
        "io.containerd.snapshotter.v1.btrfs",
        "io.containerd.snapshotter.v1.zfs",
        "io.containerd.snapshotter.v1.devmapper",
    ];
    if major >= 2 {
        disabled.extend([
            "io.containerd.snapshotter.v1.blockfile",
            "io.containerd.snapshotter.v1.erofs",
        ]);
    } else {
        disabled.push("io.containerd.snapshotter.v1.aufs");
    }
    if !test.cri {
        disabled.push("io.containerd.grpc.v1.cri");
    }
    let disabled: Vec<String> = disabled.iter().map(|p| format!("\"{p}\"")).collect();
    assert!(node.contains(version), "the node config has no `{version}`");
    let mut text = node.replacen(
        version,
        &format!(
            "{version}root = \"{d}/root\"\nstate = \"{d}/state\"\ndisabled_plugins = [{}]\n",
            disabled.join(", ")
        ),
        1,
    );
    for (from, to) in &replace {
        assert!(text.contains(from), "the node config no longer sets {from}");
        text = text.replace(from, to);
    }
    // The CRI's streaming server on loopback only; into the node config's own table if it has
    // one (a TOML table is defined once).
    let cri_table = "[plugins.\"io.containerd.grpc.v1.cri\"]\n";
    let cri_keys = format!(
        "{cri_table}  disable_tcp_service = true\n  stream_server_address = \"127.0.0.1\"\n  \
         stream_server_port = \"0\"\n"
    );
    if text.contains(cri_table) {
        text = text.replacen(cri_table, &cri_keys, 1);
    } else {
        text.push_str(&format!("\n{cri_keys}"));
    }
    let socket = test.socket.display();
    text.push_str(&format!(
        "\n[grpc]\n  address = \"{socket}\"\n\n[ttrpc]\n  address = \"{socket}.ttrpc\"\n\n\
         [debug]\n  level = \"debug\"\n\n[metrics]\n  address = \"\"\n\n\
         [plugins.\"io.containerd.internal.v1.opt\"]\n  path = \"{d}/opt\"\n"
    ));
    text
}

/// The snapshotter containerd's CRI uses with the config file `config`, as the `containerd`
/// first on PATH reads it (`config dump`, after migrating an older config version); `None`
/// when the dump has no CRI snapshotter (1.x leaves a disabled CRI plugin's config out).
pub fn cri_snapshotter(config: &Path) -> Option<String> {
    let out = Command::new("containerd")
        .arg("--config")
        .arg(config)
        .args(["config", "dump"])
        .output()
        .expect("running containerd config dump");
    assert!(out.status.success(), "containerd config dump: {out:?}");
    let dump = String::from_utf8_lossy(&out.stdout);
    let mut table = String::new();
    for line in dump.lines().map(str::trim) {
        if line.starts_with('[') {
            table = line.replace(['"', '\''], "");
        } else if let Some(value) = line.strip_prefix("snapshotter = ")
            && (table == "[plugins.io.containerd.grpc.v1.cri.containerd]"
                || table == "[plugins.io.containerd.cri.v1.images]")
        {
            return Some(value.replace(['"', '\''], ""));
        }
    }
    None
}

#[test]
fn readme_shows_the_node_configs() {
    let readme = include_str!("../../../README.md");
    for (name, node) in [("config-v2.toml", NODE_V2), ("config-v3.toml", NODE_V3)] {
        assert!(
            readme.contains(&format!("```toml\n{node}```")),
            "README.md's containerd configuration does not show deploy/containerd/{name} as it is"
        );
    }
}
