//! A containerd of the test's own with Hoist as its proxy snapshotter `hoist`: the
//! `hoist-snapshotter` binary on a socket, and Debian's containerd (CRI disabled) configured
//! with `[proxy_plugins.hoist]`, as in the snapshotter crate's `tests/it/services.rs` (kept
//! apart: that crate cannot depend on the harness). [`Proxied`] stops containerd, its shims
//! and their containers, then the snapshotter, and unmounts what is left under its directory.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};

/// Tools the containerd tests run.
pub const TOOLS: &[&str] = &[
    "containerd",
    "ctr",
    "containerd-shim-runc-v2",
    "runc",
    "skopeo",
    "gcc",
];

/// What is missing to run a containerd test: tools, root, the test registry.
pub fn missing() -> Vec<String> {
    let path = std::env::var("PATH").unwrap_or_default();
    let mut missing: Vec<String> = TOOLS
        .iter()
        .filter(|tool| {
            !path
                .split(':')
                .chain(["/usr/sbin", "/sbin"])
                .any(|dir| Path::new(dir).join(tool).is_file())
        })
        .map(|tool| (*tool).to_owned())
        .collect();
    if !rustix::process::geteuid().is_root() {
        missing.push("root".to_owned());
    }
    if std::env::var("HOIST_TEST_REGISTRY").map_or(true, |r| r.is_empty()) {
        missing.push("HOIST_TEST_REGISTRY (scripts/with-services.sh)".to_owned());
    }
    missing
}

/// Skips (returns `true`) or, with `HOIST_TEST_REQUIRE_SERVICES=1`, fails when `missing` is
/// not empty.
#[allow(clippy::print_stderr)]
pub fn skip_unless(test: &str, missing: &[String]) -> bool {
    if missing.is_empty() {
        return false;
    }
    let what = missing.join(", ");
    assert!(
        std::env::var("HOIST_TEST_REQUIRE_SERVICES").as_deref() != Ok("1"),
        "{test}: required but missing: {what}"
    );
    eprintln!(
        "skipping {test}: missing {what} (HOIST_TEST_REQUIRE_SERVICES=1 makes this a failure)"
    );
    true
}

/// The `hoist-snapshotter` binary of this build.
pub fn snapshotter_binary() -> PathBuf {
    workspace_binary("hoist-snapshotter", "hoist-snapshotter")
}

/// The binary `bin` of workspace package `package` in this build (`target/<profile>/`),
/// brought up to date once per test process: cargo does not build other packages' binaries
/// for `cargo test -p hoist-harness`, and a stale one would test old code. Without `CARGO`
/// (the test binary run by hand) an existing binary is used as it is.
pub fn workspace_binary(package: &str, bin: &str) -> PathBuf {
    static BUILT: std::sync::Mutex<Vec<(String, bool)>> = std::sync::Mutex::new(Vec::new());
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/it-<hash> → target/<profile>/<bin>
    let profile = exe.parent().and_then(Path::parent).unwrap();
    let binary = profile.join(bin);
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    let ok = match built.iter().find(|(b, _)| b == bin) {
        Some((_, ok)) => Some(*ok),
        None => std::env::var("CARGO").ok().map(|cargo| {
            let mut command = Command::new(cargo);
            command
                .args(["build", "-p", package, "--bin", bin])
                .current_dir(env!("CARGO_MANIFEST_DIR"));
            if profile.file_name().is_some_and(|p| p == "release") {
                command.arg("--release");
            }
            let ok = command.status().unwrap().success();
            built.push((bin.to_owned(), ok));
            ok
        }),
    };
    assert_ne!(ok, Some(false), "building {bin} failed");
    assert!(binary.is_file(), "no {}", binary.display());
    binary
}

pub fn wait_until(what: &str, log: &Path, timeout: Duration, mut ready: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ready() {
        assert!(
            started.elapsed() < timeout,
            "{what} not ready after {timeout:?}; its log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The snapshotter and containerd, with their files under one directory.
#[derive(Debug)]
pub struct Proxied {
    /// The directory (short: containerd's socket path must fit in a `sockaddr_un`).
    pub dir: PathBuf,
    /// Hoist's store root, served by the snapshotter.
    pub root: PathBuf,
    /// containerd's socket.
    pub containerd: PathBuf,
    children: Vec<Child>,
}

impl Proxied {
    /// Starts `hoist-snapshotter --root DIR/hoist --socket DIR/hoist.sock`, then containerd.
    pub fn start(dir: &Path) -> Proxied {
        let root = dir.join("hoist");
        let snapshots = dir.join("hoist.sock");
        let containerd_dir = dir.join("containerd");
        std::fs::create_dir_all(&containerd_dir).unwrap();
        let mut proxied = Proxied {
            dir: dir.to_owned(),
            root: root.clone(),
            containerd: containerd_dir.join("containerd.sock"),
            children: Vec::new(),
        };
        let log = proxied.spawn(
            "hoist",
            Command::new(snapshotter_binary())
                .arg("--root")
                .arg(&root)
                .arg("--socket")
                .arg(&snapshots)
                .env("RUST_LOG", "hoist_snapshotter=debug"),
        );
        wait_until("hoist-snapshotter", &log, Duration::from_secs(20), || {
            snapshots.exists()
        });
        let config = containerd_dir.join("config.toml");
        std::fs::write(
            &config,
            crate::node_config::config(
                crate::node_config::Test {
                    dir: &containerd_dir,
                    socket: &proxied.containerd,
                    snapshots: &snapshots,
                    cri: false,
                },
                crate::node_config::major(),
            ),
        )
        .unwrap();
        let log = proxied.spawn(
            "containerd",
            Command::new("containerd").arg("--config").arg(&config),
        );
        wait_until("containerd", &log, Duration::from_secs(30), || {
            proxied.ctr("default", &["version"]).status.success()
        });
        proxied
    }

    fn spawn(&mut self, name: &str, command: &mut Command) -> PathBuf {
        let log = self.dir.join(format!("{name}.log"));
        let child = command
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        self.children.push(child);
        log
    }

    /// Runs `ctr --address <containerd> -n <namespace> <args>`.
    pub fn ctr(&self, namespace: &str, args: &[&str]) -> Output {
        ctr(&self.containerd, namespace, args)
    }

    /// [`Proxied::ctr`], which must succeed; returns its stdout.
    pub fn ctr_ok(&self, namespace: &str, args: &[&str]) -> String {
        ctr_ok(&self.dir, &self.containerd, namespace, args)
    }
}

/// Runs `ctr --address <containerd> -n <namespace> <args>`.
pub fn ctr(containerd: &Path, namespace: &str, args: &[&str]) -> Output {
    Command::new("ctr")
        .arg("--address")
        .arg(containerd)
        .args(["-n", namespace])
        .args(args)
        .output()
        .expect("running ctr")
}

/// [`ctr`], which must succeed; returns its stdout. On failure the message carries the tails
/// of the `containerd` and `hoist` logs under `dir`.
pub fn ctr_ok(dir: &Path, containerd: &Path, namespace: &str, args: &[&str]) -> String {
    let out = ctr(containerd, namespace, args);
    assert!(
        out.status.success(),
        "ctr {args:?}: {}\n--- containerd log (tail) ---\n{}\n--- hoist log (tail) ---\n{}",
        String::from_utf8_lossy(&out.stderr),
        log_tail(dir, "containerd"),
        log_tail(dir, "hoist"),
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The last lines of `dir/<name>.log`.
pub fn log_tail(dir: &Path, name: &str) -> String {
    let log = std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

/// Stops `children` in order: TERM, up to 10 s, then KILL.
pub fn stop_children(children: impl IntoIterator<Item = Child>) {
    for mut child in children {
        kill(child.id(), Signal::TERM);
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Stops what a test started under `dir` beside the containerd on `containerd`: its shims and
/// their containers, then `children` in order (TERM, up to 10 s, then KILL), then unmounts
/// whatever is left mounted under `dir`.
pub fn stop_all(containerd: &Path, children: impl IntoIterator<Item = Child>, dir: &Path) {
    stop_shims(containerd);
    stop_children(children);
    unmount_under(dir);
}

fn kill(pid: u32, signal: Signal) {
    if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
        let _ = kill_process(pid, signal);
    }
}

fn descendants(pid: u32, out: &mut Vec<u32>) {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return;
    };
    for task in tasks.flatten() {
        let children = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        for child in children.split_whitespace().filter_map(|c| c.parse().ok()) {
            out.push(child);
            descendants(child, out);
        }
    }
}

/// The runc shims of the containerd on `socket` (they outlive containerd by design), with
/// their containers.
fn stop_shims(socket: &Path) {
    let needle = format!("-address {} ", socket.display());
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in procs.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains("containerd-shim") && cmdline.contains(&needle) {
            let mut all = Vec::new();
            descendants(pid, &mut all);
            for p in all.into_iter().rev().chain([pid]) {
                kill(p, Signal::KILL);
            }
        }
    }
}

fn unmount_under(dir: &Path) {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut targets: Vec<String> = mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|t| t.replace("\\040", " "))
        .filter(|t| Path::new(t).starts_with(dir))
        .collect();
    targets.sort_by_key(|t| std::cmp::Reverse(t.len()));
    for target in targets {
        let _ = rustix::mount::unmount(target.as_str(), rustix::mount::UnmountFlags::DETACH);
    }
}

impl Drop for Proxied {
    fn drop(&mut self) {
        // containerd (started last) first, then the snapshotter it was using.
        let children: Vec<Child> = self.children.drain(..).rev().collect();
        stop_all(&self.containerd, children, &self.dir);
    }
}
