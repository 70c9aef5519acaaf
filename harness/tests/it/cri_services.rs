//! `hoist serve` beside a containerd of the test's own, as on a node: Hoist serves kubelet's
//! CRI ImageService and the `hoist` proxy snapshotter, and registers its pulls in that
//! containerd, whose own CRI plugin is enabled so the tests can ask it too.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use hoist_harness::cri::Cri;

use crate::node_config;
use crate::proxy::{self, wait_until, workspace_binary};

/// containerd's CRI namespace, where kubelet's images live.
pub const NAMESPACE: &str = "k8s.io";

/// `hoist serve` and containerd, with their files under one directory.
#[derive(Debug)]
pub struct Served {
    /// The directory (short: socket paths must fit in a `sockaddr_un`).
    pub dir: PathBuf,
    /// Hoist's store root.
    pub root: PathBuf,
    /// Hoist's CRI socket.
    pub cri: PathBuf,
    /// containerd's socket (its CRI is served there too).
    pub containerd: PathBuf,
    /// Hoist's snapshots socket, containerd's proxy snapshotter `hoist`.
    pub snapshots: PathBuf,
    hoist: Option<Child>,
    containerd_child: Option<Child>,
    /// Whether containerd is the test's own (else another's, which Drop leaves alone).
    own_containerd: bool,
    insecure: Vec<String>,
}

impl Served {
    /// Starts `hoist serve` (trusting `insecure` registries over plain HTTP), then containerd
    /// with its CRI plugin and Hoist as proxy snapshotter.
    pub fn start(dir: &Path, insecure: &[String]) -> Served {
        Served::start_with(dir, insecure, "")
    }

    /// [`Served::start`] with `config` as Hoist's configuration file.
    pub fn start_with(dir: &Path, insecure: &[String], config: &str) -> Served {
        let containerd_dir = dir.join("containerd");
        std::fs::create_dir_all(&containerd_dir).unwrap();
        let mut served = Served {
            dir: dir.to_owned(),
            root: dir.join("hoist"),
            cri: dir.join("cri.sock"),
            containerd: containerd_dir.join("containerd.sock"),
            snapshots: dir.join("hoist.sock"),
            hoist: None,
            containerd_child: None,
            own_containerd: true,
            insecure: insecure.to_vec(),
        };
        std::fs::write(dir.join("hoist.toml"), config).unwrap();
        served.start_hoist();
        let config = containerd_dir.join("config.toml");
        std::fs::write(
            &config,
            node_config::config(
                node_config::Test {
                    dir: &containerd_dir,
                    socket: &served.containerd,
                    snapshots: &served.snapshots(),
                    cri: true,
                },
                node_config::major(),
            ),
        )
        .unwrap();
        assert_eq!(
            node_config::cri_snapshotter(&config).as_deref(),
            Some("hoist"),
            "containerd's CRI would not use Hoist's snapshots"
        );
        let log = dir.join("containerd.log");
        served.containerd_child = Some(spawn(
            &log,
            Command::new("containerd").arg("--config").arg(&config),
        ));
        wait_until("containerd", &log, Duration::from_secs(30), || {
            served.ctr(&["version"]).status.success()
        });
        let plugins = served.ctr_ok(&["plugins", "ls"]);
        assert!(
            plugins.lines().any(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.len() >= 3
                    && f[0] == "io.containerd.grpc.v1"
                    && f[1] == "cri"
                    && f.last() == Some(&"ok")
            }),
            "containerd's CRI plugin did not load:\n{plugins}\n{}",
            served.log_tail("containerd")
        );
        served
    }

    fn snapshots(&self) -> PathBuf {
        self.snapshots.clone()
    }

    /// Starts `hoist serve` beside a running containerd on `containerd` whose proxy snapshotter
    /// `hoist` is at `snapshots`, with its store at `root` and its CRI socket under `dir`.
    pub fn attach(
        dir: &Path,
        root: &Path,
        insecure: &[String],
        containerd: &Path,
        snapshots: &Path,
    ) -> Served {
        let mut served = Served {
            dir: dir.to_owned(),
            root: root.to_owned(),
            cri: dir.join("cri.sock"),
            containerd: containerd.to_owned(),
            snapshots: snapshots.to_owned(),
            hoist: None,
            containerd_child: None,
            own_containerd: false,
            insecure: insecure.to_vec(),
        };
        std::fs::write(dir.join("hoist.toml"), "").unwrap();
        served.start_hoist();
        served
    }

    /// Stops `hoist serve` and starts it again on the same store and sockets.
    pub fn restart_hoist(&mut self) {
        proxy::stop_children(self.hoist.take());
        self.start_hoist();
    }

    /// Starts (or restarts) `hoist serve`.
    pub fn start_hoist(&mut self) {
        let log = self.dir.join("hoist.log");
        let config = self.dir.join("hoist.toml");
        let mut command = Command::new(workspace_binary("hoist", "hoist"));
        command
            .arg("serve")
            .arg("--root")
            .arg(&self.root)
            .arg("--cri-socket")
            .arg(&self.cri)
            .arg("--snapshots-socket")
            .arg(self.snapshots())
            .arg("--containerd-socket")
            .arg(&self.containerd)
            .args(["--namespace", NAMESPACE])
            // The test's config file, not the machine's.
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "hoist=debug,hoist_snapshotter=debug");
        for registry in &self.insecure {
            command.args(["--insecure-registry", registry]);
        }
        let _ = std::fs::remove_file(&self.cri);
        let _ = std::fs::remove_file(&self.snapshots);
        self.hoist = Some(spawn(&log, &mut command));
        wait_until("hoist serve", &log, Duration::from_secs(60), || {
            self.cri.exists() && self.snapshots().exists()
        });
    }

    /// A CRI client of Hoist.
    pub async fn hoist(&self) -> Cri {
        Cri::connect(&self.cri).await.unwrap()
    }

    /// A CRI client of containerd's own CRI plugin.
    pub async fn containerd_cri(&self) -> Cri {
        Cri::connect(&self.containerd).await.unwrap()
    }

    /// Runs `ctr --address <containerd> -n k8s.io <args>`.
    pub fn ctr(&self, args: &[&str]) -> Output {
        proxy::ctr(&self.containerd, NAMESPACE, args)
    }

    /// [`Served::ctr`], which must succeed; returns its stdout.
    pub fn ctr_ok(&self, args: &[&str]) -> String {
        proxy::ctr_ok(&self.dir, &self.containerd, NAMESPACE, args)
    }

    /// The last lines of `name`'s log (`containerd` or `hoist`).
    pub fn log_tail(&self, name: &str) -> String {
        proxy::log_tail(&self.dir, name)
    }

    /// Polls `done` for up to `timeout`; false when it never held.
    pub fn eventually(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
        let started = Instant::now();
        while started.elapsed() < timeout {
            if done() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        done()
    }
}

fn spawn(log: &Path, command: &mut Command) -> Child {
    command
        .stdin(Stdio::null())
        // Appended: a restart keeps the first run's log.
        .stdout(
            std::fs::File::options()
                .create(true)
                .append(true)
                .open(log)
                .unwrap(),
        )
        .stderr(std::fs::File::options().append(true).open(log).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {command:?}: {e}"))
}

impl Drop for Served {
    fn drop(&mut self) {
        // containerd first, then the snapshotter it was using.
        let children = [self.containerd_child.take(), self.hoist.take()];
        if self.own_containerd {
            proxy::stop_all(&self.containerd, children.into_iter().flatten(), &self.dir);
        } else {
            proxy::stop_children(children.into_iter().flatten());
        }
    }
}
