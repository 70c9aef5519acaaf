//! The real parts for the containerd tests: Debian's `docker-registry` on 127.0.0.1 and
//! Debian's `containerd` with its own root, state and socket, configured with Hoist as the
//! proxy snapshotter `hoist`. [`Services`] stops all of them on drop (containerd's shims and
//! their containers too) and unmounts whatever is left mounted under its directory.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};

/// Commands the containerd tests run; returns the ones not found.
pub fn missing_tools(tools: &[&str]) -> Vec<String> {
    let path = std::env::var("PATH").unwrap_or_default();
    tools
        .iter()
        .filter(|tool| {
            !path
                .split(':')
                .chain(["/usr/sbin", "/sbin"])
                .any(|dir| Path::new(dir).join(tool).is_file())
        })
        .map(|tool| (*tool).to_owned())
        .collect()
}

/// Started servers, stopped in reverse order on drop.
#[derive(Debug)]
pub struct Services {
    dir: PathBuf,
    children: Vec<(&'static str, Child)>,
    containerd: Option<PathBuf>,
}

fn wait_until(what: &str, log: &Path, timeout: Duration, mut ready: impl FnMut() -> bool) {
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

fn http_status(addr: &str, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.split_whitespace().nth(1).map(str::to_owned)
}

impl Services {
    /// Services with their files under `dir`.
    pub fn new(dir: &Path) -> Services {
        Services {
            dir: dir.to_owned(),
            children: Vec::new(),
            containerd: None,
        }
    }

    fn spawn(&mut self, name: &'static str, command: &mut Command) -> PathBuf {
        let log = self.dir.join(format!("{name}.log"));
        let child = command
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        self.children.push((name, child));
        log
    }

    /// Starts `docker-registry` on a free port of 127.0.0.1; returns `127.0.0.1:PORT`.
    pub fn start_registry(&mut self) -> String {
        let storage = self.dir.join("registry");
        std::fs::create_dir_all(&storage).unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let config = self.dir.join("registry.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  \
                 filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
                storage.display()
            ),
        )
        .unwrap();
        let log = self.spawn(
            "registry",
            Command::new("docker-registry").arg("serve").arg(&config),
        );
        wait_until("docker-registry", &log, Duration::from_secs(20), || {
            http_status(&addr, "/v2/").as_deref() == Some("200")
        });
        addr
    }

    /// Starts containerd (CRI plugin disabled) with `[proxy_plugins.hoist]` at `snapshots`;
    /// returns its socket.
    pub fn start_containerd(&mut self, snapshots: &Path) -> PathBuf {
        let dir = self.dir.join("containerd");
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("containerd.sock");
        let config = dir.join("config.toml");
        let test = crate::node_config::Test {
            dir: &dir,
            socket: &socket,
            snapshots,
            cri: false,
        };
        std::fs::write(
            &config,
            crate::node_config::config(test, crate::node_config::major()),
        )
        .unwrap();
        // The node config as this containerd reads it (2.x migrates a version 2 file, and shows
        // its CRI images config with the CRI plugin disabled; 1.x then shows none).
        let cri = crate::node_config::cri_snapshotter(&config);
        assert!(matches!(cri.as_deref(), None | Some("hoist")), "{cri:?}");
        let log = self.spawn(
            "containerd",
            Command::new("containerd").arg("--config").arg(&config),
        );
        self.containerd = Some(socket.clone());
        wait_until("containerd", &log, Duration::from_secs(30), || {
            self.ctr("default", &["version"]).status.success()
        });
        socket
    }

    /// Runs `ctr --address <containerd> -n <namespace> <args>`.
    pub fn ctr(&self, namespace: &str, args: &[&str]) -> Output {
        let socket = self.containerd.as_ref().expect("containerd is started");
        Command::new("ctr")
            .arg("--address")
            .arg(socket)
            .args(["-n", namespace])
            .args(args)
            .output()
            .expect("running ctr")
    }

    /// The containerd log so far, for failure messages.
    pub fn containerd_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default()
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

fn kill(pid: u32) {
    if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
        let _ = kill_process(pid, Signal::KILL);
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
            all.into_iter().rev().chain([pid]).for_each(kill);
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

impl Drop for Services {
    fn drop(&mut self) {
        if let Some(socket) = &self.containerd {
            stop_shims(socket);
        }
        while let Some((_, mut child)) = self.children.pop() {
            if let Some(pid) = i32::try_from(child.id()).ok().and_then(Pid::from_raw) {
                let _ = kill_process(pid, Signal::TERM);
            }
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
        unmount_under(&self.dir);
    }
}
