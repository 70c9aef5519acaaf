//! The services the tests run against, found through the environment scripts/lib.sh sets.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{PoisonError, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use hoist_harness::cri::Runtime;
use rustix::process::{Pid, Signal, kill_process};

use hoist_harness::Credentials;
use hoist_harness::containerd::{Ctr, PullOptions};

use crate::cri_services::Served;
use crate::proxy;

/// Namespace of everything the tests put in containerd.
pub const NAMESPACE: &str = "hoist-test";

/// How long a restart of the test containerd may take: stopping, starting, its CRI answering.
const RESTART: Duration = Duration::from_secs(120);

fn required(name: &str) -> String {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => value,
        _ => panic!(
            "{name} is not set: these tests need a real registry and containerd. Run them through \
             scripts/test.sh, or `scripts/with-services.sh cargo test -p hoist-harness` \
             (as root), which start the services with scripts/lib.sh and export HOIST_TEST_*"
        ),
    }
}

/// `HOST:PORT` of the plain-HTTP registry.
pub fn registry() -> String {
    required("HOIST_TEST_REGISTRY")
}

/// `HOST:PORT` and credentials of the registry with basic auth.
pub fn auth_registry() -> (String, Credentials) {
    let host = required("HOIST_TEST_AUTH_REGISTRY");
    let creds = required("HOIST_TEST_AUTH_REGISTRY_CREDS");
    let creds =
        Credentials::parse(&creds).expect("HOIST_TEST_AUTH_REGISTRY_CREDS is USER:PASSWORD");
    (host, creds)
}

/// Held shared by every test that uses the test containerd, and alone by
/// [`restart_containerd`], so that no test meets it down.
static CONTAINERD: RwLock<()> = RwLock::new(());

/// A ctr client of the test containerd, in [`NAMESPACE`]; containerd is not restarted while it
/// lives.
pub fn ctr() -> Shared<Ctr> {
    Shared {
        value: Ctr::new(required("HOIST_TEST_CONTAINERD_SOCKET"), NAMESPACE),
        _guard: CONTAINERD.read().unwrap_or_else(PoisonError::into_inner),
    }
}

/// A client of the test containerd, with the shared hold on it.
#[derive(Debug)]
pub struct Shared<T> {
    value: T,
    _guard: RwLockReadGuard<'static, ()>,
}

impl<T> std::ops::Deref for Shared<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.value
    }
}

/// Restarts the test containerd as scripts/lib.sh runs it: SIGTERM to the pid in
/// `containerd.pid` beside `config`, then `containerd --config CONFIG` in a session of its own,
/// its log appended to `containerd.log` there and its pid written back (the scripts stop that
/// pid); returns once its CRI on `socket` answers `Version`.
pub async fn restart_containerd(config: &Path, socket: &Path) -> Runtime {
    let dir = config.parent().unwrap();
    let pid_file = dir.join("containerd.pid");
    let log = dir.join("containerd.log");
    {
        // With the test containerd to itself: no `ctr` client is alive meanwhile.
        let _alone = CONTAINERD.write().unwrap_or_else(PoisonError::into_inner);
        let old: i32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        kill_process(Pid::from_raw(old).unwrap(), Signal::TERM).unwrap();
        assert!(
            Served::eventually(RESTART, || exited(old)),
            "containerd {old} still running {RESTART:?} after SIGTERM"
        );
        let append = || {
            std::fs::File::options()
                .create(true)
                .append(true)
                .open(&log)
                .unwrap()
        };
        // setsid execs containerd in place (the child leads no process group): its pid is the
        // child's.
        #[allow(clippy::zombie_processes)] // it outlives the test; the scripts stop it by pid
        let child = Command::new("setsid")
            .arg("containerd")
            .arg("--config")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(append())
            .stderr(append())
            .spawn()
            .unwrap();
        std::fs::write(&pid_file, format!("{}\n", child.id())).unwrap();
        proxy::wait_until("containerd", &log, RESTART, || {
            proxy::ctr(socket, NAMESPACE, &["version"]).status.success()
        });
    }
    let started = Instant::now();
    loop {
        if let Ok(runtime) = Runtime::connect(socket).await
            && runtime.version().await.is_ok()
        {
            return runtime;
        }
        assert!(
            started.elapsed() < RESTART,
            "containerd's CRI did not answer Version within {RESTART:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether `pid` has exited: gone, or a zombie its parent has yet to reap.
fn exited(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

/// A fresh directory for mount targets beside the containerd root, so that
/// `hoist_stop_services` unmounts whatever a crashed test leaves mounted.
pub fn mount_dir() -> tempfile::TempDir {
    let root = PathBuf::from(required("HOIST_TEST_CONTAINERD_ROOT"));
    let parent = root.parent().unwrap_or(Path::new("/tmp")).join("mnt");
    std::fs::create_dir_all(&parent).unwrap();
    tempfile::tempdir_in(parent).unwrap()
}

/// Pull options for the plain-HTTP registry.
pub fn plain_http() -> PullOptions {
    PullOptions {
        plain_http: true,
        credentials: None,
    }
}

/// `HOST:PORT` of the HTTPS registry and the PEM file of the CA that signed its certificate.
pub fn tls_registry() -> (String, PathBuf) {
    (
        required("HOIST_TEST_TLS_REGISTRY"),
        PathBuf::from(required("HOIST_TEST_TLS_CA")),
    )
}
