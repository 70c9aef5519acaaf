//! The servers a benchmark runs against, started by the runner in its work directory, the
//! same way scripts/lib.sh starts them for the tests: Debian's `docker-registry` on 127.0.0.1
//! and a containerd of its own (a fresh one, with a fresh root, for every containerd pull).
//! Each is stopped (TERM, then KILL after 10 s) when dropped.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::measure::wait_until;
use super::{Error, Result};

/// A running server process, stopped on drop.
#[derive(Debug)]
struct Server {
    child: Child,
}

impl Server {
    fn spawn(name: &'static str, mut command: Command, log: &Path) -> Result<Server> {
        let log = std::fs::File::create(log).map_err(|source| Error::Io {
            what: format!("{}", log.display()),
            source,
        })?;
        let err = log.try_clone().map_err(|source| Error::Io {
            what: "a log file".to_owned(),
            source,
        })?;
        // A process group of its own: a Ctrl-C to the runner does not kill it mid-pull; Drop
        // stops it in order.
        command
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .process_group(0);
        let child = command.spawn().map_err(|source| Error::Spawn {
            what: name.to_owned(),
            source,
        })?;
        Ok(Server { child })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: kill has no memory preconditions; the pid is our unreaped child.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let child = &mut self.child;
        if !wait_until(Duration::from_secs(10), || {
            matches!(child.try_wait(), Ok(Some(_)))
        }) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// docker-registry on 127.0.0.1, storage in its directory.
#[derive(Debug)]
pub struct Registry {
    addr: SocketAddr,
    _server: Server,
}

impl Registry {
    /// Starts a registry in `dir` (created).
    pub fn start(dir: &Path) -> Result<Registry> {
        create_dir(&dir.join("storage"))?;
        for _ in 0..5 {
            let port = free_port()?;
            let config = dir.join("config.yml");
            write(
                &config,
                &format!(
                    "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n\
                     storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                     http:\n  addr: 127.0.0.1:{port}\nhealth:\n  storagedriver:\n    enabled: false\n",
                    dir.join("storage").display()
                ),
            )?;
            let mut command = Command::new("docker-registry");
            command.arg("serve").arg(&config);
            let mut server = Server::spawn("docker-registry", command, &dir.join("registry.log"))?;
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            if wait_until(Duration::from_secs(10), || {
                answers(addr) || !server.running()
            }) && answers(addr)
            {
                return Ok(Registry {
                    addr,
                    _server: server,
                });
            }
        }
        Err(Error::Service {
            what: "docker-registry".to_owned(),
            detail: log_tail(&dir.join("registry.log")),
        })
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// containerd with its root, state, socket and config in one directory.
#[derive(Debug)]
pub struct Containerd {
    dir: PathBuf,
    server: Option<Server>,
}

impl Containerd {
    /// Starts containerd in `dir` (created; its path must be short: unix socket paths are
    /// limited to 108 bytes). Its CRI plugin is enabled, reaching `plain_http` (a registry
    /// host) over plain HTTP; Hoist's proxy snapshotter `hoist` is configured on
    /// `DIR/hoist-snapshots.sock`.
    pub fn start(dir: &Path, plain_http: Option<&str>) -> Result<Containerd> {
        create_dir(dir)?;
        let mirror = plain_http.map_or_else(String::new, |host| {
            format!(
                "\n[plugins.\"io.containerd.grpc.v1.cri\".registry.mirrors.\"{host}\"]\n  endpoint = [\"http://{host}\"]\n"
            )
        });
        let config = dir.join("config.toml");
        let d = dir.display();
        write(
            &config,
            &format!(
                r#"version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = "{d}/containerd.sock"

[ttrpc]
  address = "{d}/containerd.sock.ttrpc"

[debug]
  address = ""
  level = "warn"

[metrics]
  address = ""

[proxy_plugins.hoist]
  type = "snapshot"
  address = "{d}/hoist-snapshots.sock"

[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"

[plugins."io.containerd.grpc.v1.cri"]
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
{mirror}"#
            ),
        )?;
        let mut command = Command::new("containerd");
        command.arg("--config").arg(&config);
        let mut server = Server::spawn("containerd", command, &dir.join("containerd.log"))?;
        let socket = dir.join("containerd.sock");
        let up = wait_until(Duration::from_secs(30), || {
            !server.running()
                || Command::new("ctr")
                    .arg("--address")
                    .arg(&socket)
                    .arg("version")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
        });
        if !up || !server.running() {
            return Err(Error::Service {
                what: "containerd".to_owned(),
                detail: log_tail(&dir.join("containerd.log")),
            });
        }
        Ok(Containerd {
            dir: dir.to_owned(),
            server: Some(server),
        })
    }

    /// containerd's gRPC socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("containerd.sock")
    }

    /// The socket containerd expects Hoist's snapshotter on.
    pub fn snapshots_socket(&self) -> PathBuf {
        self.dir.join("hoist-snapshots.sock")
    }

    /// The daemon's pid.
    pub fn pid(&self) -> u32 {
        self.server.as_ref().map_or(0, Server::pid)
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        drop(self.server.take());
        unmount_under(&self.dir);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Unmounts everything at or below `dir`, deepest first.
pub fn unmount_under(dir: &Path) {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut targets: Vec<PathBuf> = info
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|t| PathBuf::from(t.replace("\\040", " ")))
        .filter(|t| t.starts_with(dir))
        .collect();
    targets.sort();
    for target in targets.iter().rev() {
        let _ = rustix::mount::unmount(target, rustix::mount::UnmountFlags::DETACH);
    }
}

/// Whether an HTTP server on `addr` answers `GET /v2/` with 200.
fn answers(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /v2/ HTTP/1.0\r\nHost: registry\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.ends_with(b" 200")
}

fn free_port() -> Result<u16> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|source| Error::Io {
            what: "finding a free port".to_owned(),
            source,
        })
}

fn log_tail(path: &Path) -> String {
    super::measure::tail(&std::fs::read_to_string(path).unwrap_or_default())
}

fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|source| Error::Io {
        what: format!("{}", dir.display()),
        source,
    })
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|source| Error::Io {
        what: format!("{}", path.display()),
        source,
    })
}
