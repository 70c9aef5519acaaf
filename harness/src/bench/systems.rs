//! The systems compared, each pulling one image into a cold store per measurement: Hoist's and
//! containerd's CRI (in [`super::cri_systems`]), `hoist
//! pull` (fresh `--root`), `ctr image pull` (a fresh containerd), `skopeo copy` to a
//! directory (fetch only), and the floor (local blobs, no network).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use super::measure::{self, Cost, Daemon};
use super::scenario::Mode;
use super::services::Containerd;
use super::sweep::Variant;
use super::{Error, Result};

/// containerd namespace of the benchmark's pulls.
const NAMESPACE: &str = "hoist-bench";

/// A system under test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum System {
    /// `hoist pull` with these settings.
    HoistPull(Variant),
    /// `hoist serve` with these settings, through its CRI socket.
    HoistCri(Variant),
    /// containerd's own CRI `PullImage`.
    ContainerdCri,
    /// `ctr image pull` into containerd's overlayfs snapshotter.
    CtrPull,
    /// `skopeo copy docker://… dir:…`: fetch and verify only, no unpack.
    Skopeo,
    /// Local blobs decoded, verified and unpacked with Hoist's stages; no network.
    Floor,
}

/// System names accepted by `--systems`.
pub const NAMES: &[&str] = &[
    "hoist-cri",
    "hoist-pull",
    "containerd-cri",
    "ctr-pull",
    "skopeo",
    "floor",
];

impl System {
    /// The name in reports: `hoist-pull`, `hoist-pull[chunk_size=1048576]`, `ctr-pull`, ...
    pub fn label(&self) -> String {
        match self {
            System::HoistCri(v) if v.settings.is_empty() => "hoist-cri".to_owned(),
            System::HoistCri(v) => format!("hoist-cri[{}]", v.label()),
            System::HoistPull(v) if v.settings.is_empty() => "hoist-pull".to_owned(),
            System::HoistPull(v) => format!("hoist-pull[{}]", v.label()),
            System::ContainerdCri => "containerd-cri".to_owned(),
            System::CtrPull => "ctr-pull".to_owned(),
            System::Skopeo => "skopeo".to_owned(),
            System::Floor => "floor".to_owned(),
        }
    }

    /// Whether this is Hoist (the reference of the ratios).
    pub fn is_hoist(&self) -> bool {
        matches!(self, System::HoistPull(_) | System::HoistCri(_))
    }

    /// Whether the system has a meaning in `mode` (skopeo and the floor keep no store, so a
    /// warm pull is not theirs; the floor has no registry to share).
    pub fn applies(&self, mode: Mode) -> bool {
        match self {
            System::HoistCri(_) | System::ContainerdCri | System::CtrPull => true,
            System::HoistPull(_) => true,
            System::Skopeo => mode != Mode::Warm,
            System::Floor => mode == Mode::Cold,
        }
    }
}

/// What a measurement needs to know.
#[derive(Debug)]
pub struct Target<'a> {
    /// `HOST:PORT/REPO:TAG` as the systems pull it (through the proxy when shaped).
    pub reference: &'a str,
    /// The registry host in the reference (plain HTTP).
    pub host: &'a str,
    /// The image's OCI layout on local disk (for the floor).
    pub layout: &'a Path,
    /// A fresh directory for this measurement, removed afterwards.
    pub scratch: &'a Path,
    /// The `hoist` binary.
    pub hoist: &'a Path,
    /// The `hoist-bench` binary (for the floor).
    pub bench: &'a Path,
    /// Mount a fresh tmpfs on `scratch` first.
    pub tmpfs: bool,
}

/// Measures one pull of `target` by `system` in `mode` on a cold store.
pub fn measure(system: &System, mode: Mode, target: &Target<'_>) -> Result<Cost> {
    std::fs::create_dir_all(target.scratch).map_err(|source| Error::Io {
        what: format!("{}", target.scratch.display()),
        source,
    })?;
    if target.tmpfs {
        rustix::mount::mount(
            "hoist-bench",
            target.scratch,
            "tmpfs",
            rustix::mount::MountFlags::empty(),
            Some(c"mode=0755"),
        )
        .map_err(|errno| Error::Io {
            what: format!("mounting a tmpfs on {}", target.scratch.display()),
            source: errno.into(),
        })?;
    }
    let result = match system {
        System::HoistCri(variant) => super::cri_systems::hoist_cri(variant, mode, target),
        System::HoistPull(variant) => hoist_pull(variant, mode, target),
        System::ContainerdCri => super::cri_systems::containerd_cri(mode, target),
        System::CtrPull => ctr_pull(mode, target),
        System::Skopeo => skopeo(mode, target),
        System::Floor => floor(target),
    };
    super::services::unmount_under(target.scratch);
    let _ = std::fs::remove_dir_all(target.scratch);
    result
}

fn hoist_pull(variant: &Variant, mode: Mode, target: &Target<'_>) -> Result<Cost> {
    let config = target.scratch.join("hoist.toml");
    write(&config, &variant.config())?;
    let command = |root: &Path| {
        let mut command = Command::new(target.hoist);
        command
            .arg("pull")
            .arg("--config")
            .arg(&config)
            .arg("--root")
            .arg(root)
            .arg("--insecure-registry")
            .arg(target.host)
            .arg("--json")
            .arg(target.reference);
        command
    };
    let root = target.scratch.join("root");
    match mode {
        Mode::Cold => Ok(measure::run("hoist pull", command(&root))?.0),
        Mode::Warm => {
            measure::run("hoist pull", command(&root))?;
            Ok(measure::run("hoist pull", command(&root))?.0)
        }
        // One store per process: `hoist pull` opens its store exclusively; concurrent pulls of
        // one image share a store only inside `hoist serve`.
        Mode::Fanout(n) => concurrently(
            (0..n)
                .map(|i| command(&target.scratch.join(format!("root-{i}"))))
                .collect(),
            "hoist pull",
        ),
    }
}

fn ctr_pull(mode: Mode, target: &Target<'_>) -> Result<Cost> {
    let containerd = Containerd::start(&target.scratch.join("c"), None)?;
    let command = || {
        let mut command = Command::new("ctr");
        command
            .arg("--address")
            .arg(containerd.socket())
            .arg("--namespace")
            .arg(NAMESPACE)
            .args(["images", "pull", "--plain-http"])
            .arg(target.reference);
        command
    };
    if mode == Mode::Warm {
        measure::run("ctr images pull", command())?;
    }
    let daemon = Daemon::start(containerd.pid());
    let cost = match mode {
        Mode::Cold | Mode::Warm => measure::run("ctr images pull", command())?.0,
        Mode::Fanout(n) => concurrently((0..n).map(|_| command()).collect(), "ctr images pull")?,
    };
    Ok(cost.plus(daemon.finish()))
}

fn skopeo(mode: Mode, target: &Target<'_>) -> Result<Cost> {
    let command = |dest: PathBuf| {
        let mut command = Command::new("skopeo");
        command
            .args(["copy", "--insecure-policy", "--src-tls-verify=false"])
            .arg(format!("docker://{}", target.reference))
            .arg(format!("dir:{}", dest.display()));
        command
    };
    match mode {
        Mode::Fanout(n) => concurrently(
            (0..n)
                .map(|i| command(target.scratch.join(format!("copy-{i}"))))
                .collect(),
            "skopeo copy",
        ),
        _ => Ok(measure::run("skopeo copy", command(target.scratch.join("copy")))?.0),
    }
}

fn floor(target: &Target<'_>) -> Result<Cost> {
    let mut command = Command::new(target.bench);
    command
        .arg("floor")
        .arg("--layout")
        .arg(target.layout)
        .arg("--out")
        .arg(target.scratch.join("layers"));
    Ok(measure::run("hoist-bench floor", command)?.0)
}

/// Runs `commands` at once; wall time until the last ends, resources summed.
fn concurrently(commands: Vec<Command>, what: &str) -> Result<Cost> {
    let started = Instant::now();
    let results: Vec<Result<Cost>> = std::thread::scope(|scope| {
        let handles: Vec<_> = commands
            .into_iter()
            .map(|command| scope.spawn(move || measure::run(what, command).map(|(c, _)| c)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("measuring threads do not panic"))
            .collect()
    });
    let mut total = Cost {
        wall_s: started.elapsed().as_secs_f64(),
        ..Cost::default()
    };
    for cost in results {
        let cost = cost?;
        total.peak_rss_mib += cost.peak_rss_mib;
        total.cpu_s += cost.cpu_s;
    }
    Ok(total)
}

fn write(path: &Path, text: &str) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|source| Error::Io {
            what: format!("{}", parent.display()),
            source,
        })?;
    }
    std::fs::write(path, text).map_err(|source| Error::Io {
        what: format!("{}", path.display()),
        source,
    })
}
