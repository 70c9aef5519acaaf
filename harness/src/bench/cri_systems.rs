//! The two CRI systems, driven as kubelet drives them, through [`crate::cri::Cri`]:
//! `hoist serve`'s CRI socket (Hoist registering in a fresh containerd) and containerd's own CRI
//! `PullImage` into its overlayfs snapshotter. Both daemons are fresh per measurement; their CPU
//! and peak RSS come from `/proc` (only `hoist serve`'s for Hoist: registering in containerd is
//! a few small gRPC calls).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::measure::{Cost, Daemon, wait_until};
use super::scenario::Mode;
use super::services::Containerd;
use super::sweep::Variant;
use super::systems::Target;
use super::{Error, Result};
use crate::cri::{Cri, PullContext};

/// containerd's CRI namespace, where kubelet's images live.
const NAMESPACE: &str = "k8s.io";

/// `hoist serve` on a fresh root, registering into a fresh containerd.
pub fn hoist_cri(variant: &Variant, mode: Mode, target: &Target<'_>) -> Result<Cost> {
    let containerd = Containerd::start(&target.scratch.join("c"), None)?;
    let config = target.scratch.join("hoist.toml");
    std::fs::write(&config, variant.config()).map_err(|source| Error::Io {
        what: format!("{}", config.display()),
        source,
    })?;
    let socket = target.scratch.join("cri.sock");
    let log = target.scratch.join("hoist-serve.log");
    let mut command = Command::new(target.hoist);
    command
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .arg("--root")
        .arg(target.scratch.join("root"))
        .arg("--cri-socket")
        .arg(&socket)
        .arg("--snapshots-socket")
        .arg(containerd.snapshots_socket())
        .arg("--containerd-socket")
        .arg(containerd.socket())
        .args(["--namespace", NAMESPACE])
        .arg("--insecure-registry")
        .arg(target.host);
    let serve = Serve::spawn(command, &log)?;
    if !wait_until(Duration::from_secs(30), || socket.exists()) {
        return Err(Error::Service {
            what: "hoist serve".to_owned(),
            detail: super::measure::tail(&std::fs::read_to_string(&log).unwrap_or_default()),
        });
    }
    let cost = pull(&socket, mode, target.reference, serve.pid())?;
    drop(serve);
    drop(containerd);
    Ok(cost)
}

/// containerd's own CRI `PullImage`, in a fresh containerd told to reach the registry over
/// plain HTTP.
pub fn containerd_cri(mode: Mode, target: &Target<'_>) -> Result<Cost> {
    let containerd = Containerd::start(&target.scratch.join("c"), Some(target.host))?;
    pull(
        &containerd.socket(),
        mode,
        target.reference,
        containerd.pid(),
    )
}

/// Pulls through the CRI socket as `mode` says, accounting `daemon`.
fn pull(socket: &Path, mode: Mode, reference: &str, daemon: u32) -> Result<Cost> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|source| Error::Io {
            what: "a runtime for the CRI client".to_owned(),
            source,
        })?;
    runtime.block_on(async {
        let cri = Cri::connect(socket).await.map_err(cri_error)?;
        let context = PullContext::default();
        if mode == Mode::Warm {
            cri.pull(reference, &context).await.map_err(cri_error)?;
        }
        let accounting = Daemon::start(daemon);
        let started = Instant::now();
        match mode {
            Mode::Cold | Mode::Warm => {
                cri.pull(reference, &context).await.map_err(cri_error)?;
            }
            Mode::Fanout(n) => {
                let mut pulls = tokio::task::JoinSet::new();
                for _ in 0..n {
                    let (cri, context) = (cri.clone(), context.clone());
                    let reference = reference.to_owned();
                    pulls.spawn(async move { cri.pull(&reference, &context).await });
                }
                while let Some(joined) = pulls.join_next().await {
                    let result = joined.map_err(|e| Error::Failed {
                        what: "CRI PullImage".to_owned(),
                        status: "task failed".to_owned(),
                        stderr: e.to_string(),
                    })?;
                    result.map_err(cri_error)?;
                }
            }
        }
        let wall_s = started.elapsed().as_secs_f64();
        Ok(Cost {
            wall_s,
            ..Cost::default()
        }
        .plus(accounting.finish()))
    })
}

fn cri_error(error: crate::cri::Error) -> Error {
    Error::Failed {
        what: "CRI PullImage".to_owned(),
        status: format!("{:?}", error.code()),
        stderr: error.to_string(),
    }
}

/// `hoist serve`, stopped with SIGTERM (then SIGKILL) when dropped.
struct Serve(Child);

impl Serve {
    fn spawn(mut command: Command, log: &Path) -> Result<Serve> {
        let file = std::fs::File::create(log).map_err(|source| Error::Io {
            what: format!("{}", log.display()),
            source,
        })?;
        let err = file.try_clone().map_err(|source| Error::Io {
            what: format!("{}", log.display()),
            source,
        })?;
        command.stdin(Stdio::null()).stdout(file).stderr(err);
        command.spawn().map(Serve).map_err(|source| Error::Spawn {
            what: "hoist serve".to_owned(),
            source,
        })
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.0.id()) {
            // SAFETY: kill has no memory preconditions; the pid is our unreaped child.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let child = &mut self.0;
        if !wait_until(Duration::from_secs(10), || {
            matches!(child.try_wait(), Ok(Some(_)))
        }) {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}
