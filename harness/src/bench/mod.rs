//! `hoist-bench run`: the named scenarios of issue 6, each system measured on the same image in
//! the same run, alternating (A B A B), on a cold store each time.
//!
//! ```text
//! docker-registry (started here) ◄─ skopeo push ◄─ generated image (OCI layout)
//!        ▲
//!   shaping proxy (s3like, many-layers) ◄── hoist serve (CRI) │ hoist pull │ containerd CRI
//!                                           │ ctr pull │ skopeo copy
//!                                             floor: the same blobs from local disk
//! ```
//!
//! Every measurement gets a fresh directory: a new `--root` for Hoist, a new containerd with a
//! new root for `ctr`, a new destination for skopeo and the floor. Processes are measured with
//! `wait4` (their own CPU and peak RSS); containerd, which does the work of `ctr pull`, is read
//! from `/proc` around the pull and added.

mod cri_systems;
pub mod floor;
mod measure;
pub mod report;
pub mod scenario;
mod services;
pub mod sweep;
pub mod systems;
pub mod targets;

use std::path::{Path, PathBuf};

pub use measure::Cost;
pub use report::{CaseReport, Machine, Report, SystemResult};
pub use sweep::Setting;
pub use systems::System;

use crate::Kind;
use crate::image::layout;
use crate::proxy::Proxy;

/// Failures of a benchmark run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory could not be read or written.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A program could not be started.
    #[error("running {what}: {source}")]
    Spawn {
        /// The program.
        what: String,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A measured program failed.
    #[error("{what} failed ({status}): {stderr}")]
    Failed {
        /// The program.
        what: String,
        /// How it ended.
        status: String,
        /// The end of its stderr.
        stderr: String,
    },
    /// A server did not come up.
    #[error("{what} did not start: {detail}")]
    Service {
        /// The server.
        what: String,
        /// The end of its log.
        detail: String,
    },
    /// No scenario has this name.
    #[error("unknown scenario {name:?}; known: {}", scenario::NAMES.join(", "))]
    UnknownScenario {
        /// The name given.
        name: String,
    },
    /// No system has this name.
    #[error("unknown system {name:?}; known: {}", systems::NAMES.join(", "))]
    UnknownSystem {
        /// The name given.
        name: String,
    },
    /// A `--set` argument is malformed.
    #[error("--set {text:?}: {why}")]
    InvalidSetting {
        /// The argument.
        text: String,
        /// What is wrong.
        why: String,
    },
    /// Writing the image failed.
    #[error("writing the image: {0}")]
    Image(#[from] crate::image::Error),
    /// Pushing the image failed.
    #[error("pushing the image: {0}")]
    Push(#[from] crate::skopeo::Error),
    /// The shaping proxy did not start.
    #[error(transparent)]
    Proxy(#[from] crate::proxy::Error),
}

impl Error {
    /// The kind of failure.
    pub fn kind(&self) -> Kind {
        match self {
            Error::UnknownScenario { .. }
            | Error::UnknownSystem { .. }
            | Error::InvalidSetting { .. } => Kind::InvalidArgument,
            Error::Image(e) => e.kind(),
            Error::Push(e) => e.kind(),
            Error::Proxy(e) => e.kind(),
            Error::Spawn { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                Kind::NotFound
            }
            Error::Io { .. } => Kind::Internal,
            Error::Spawn { .. } | Error::Failed { .. } | Error::Service { .. } => Kind::Unavailable,
        }
    }
}

/// Results of this module.
pub type Result<T> = std::result::Result<T, Error>;

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Scenario names (see [`scenario::NAMES`]).
    pub scenarios: Vec<String>,
    /// Measurements per system and case.
    pub runs: usize,
    /// Image sizes relative to the issue's.
    pub scale: f64,
    /// Hoist settings to sweep.
    pub settings: Vec<Setting>,
    /// Systems to measure by name ([`systems::NAMES`]); empty for all.
    pub systems: Vec<String>,
    /// Work directory (registry storage, layouts, stores); keep its path short, containerd's
    /// socket lives below it.
    pub work_dir: PathBuf,
    /// The `hoist` binary.
    pub hoist: PathBuf,
    /// The `hoist-bench` binary (runs the floor).
    pub bench: PathBuf,
    /// Mount a fresh tmpfs for each measurement's stores.
    pub tmpfs: bool,
}

/// Runs every case of `options.scenarios`; `log` hears one line per step.
pub fn run(options: &Options, log: &mut dyn FnMut(&str)) -> Result<Report> {
    let mut cases = Vec::new();
    for name in &options.scenarios {
        cases.extend(scenario::cases(name, options.scale)?);
    }
    for name in &options.systems {
        if !systems::NAMES.contains(&name.as_str()) {
            return Err(Error::UnknownSystem { name: name.clone() });
        }
    }
    let variants = sweep::variants(&options.settings);
    let mut all: Vec<System> = variants.iter().cloned().map(System::HoistCri).collect();
    all.extend(variants.into_iter().map(System::HoistPull));
    all.extend([
        System::ContainerdCri,
        System::CtrPull,
        System::Skopeo,
        System::Floor,
    ]);
    let wanted = |system: &System| {
        let label = system.label();
        options.systems.is_empty()
            || options
                .systems
                .iter()
                .any(|n| label == *n || label.starts_with(&format!("{n}[")))
    };
    let chosen: Vec<System> = all.into_iter().filter(wanted).collect();

    let machine = Machine::here();
    let registry = services::Registry::start(&options.work_dir.join("registry"))?;
    log(&format!("registry on {}", registry.addr()));
    let mut reports = Vec::new();
    for case in &cases {
        reports.push(run_case(case, &chosen, &registry, options, log)?);
    }
    Ok(Report {
        targets: targets::check(&reports),
        machine,
        stores: if options.tmpfs { "tmpfs" } else { "disk" }.to_owned(),
        runs: options.runs,
        scale: options.scale,
        scenarios: reports,
    })
}

fn run_case(
    case: &scenario::Case,
    chosen: &[System],
    registry: &services::Registry,
    options: &Options,
    log: &mut dyn FnMut(&str),
) -> Result<CaseReport> {
    let layout_dir = options.work_dir.join("layouts").join(&case.name);
    let image = case.image.image();
    log(&format!(
        "{}: writing a {} MB image ({} layers)",
        case.name,
        case.image.total_size / 1_000_000,
        case.image.layers
    ));
    let written = layout::write(&image, &layout_dir, "bench", &layout::Options::default())?;
    // Repository names are lowercase: `scale@250MB` is pushed as `bench/scale-250mb`.
    let path = case.name.replace('@', "-").to_lowercase();
    let repository = format!("{}/bench/{path}", registry.addr());
    crate::skopeo::push(
        &written,
        &repository,
        "v1",
        &[],
        &crate::skopeo::Options::default(),
    )?;
    let proxy = if case.shaping.is_passthrough() {
        None
    } else {
        Some(Proxy::start(registry.addr(), case.shaping.clone())?)
    };
    let host = proxy
        .as_ref()
        .map_or_else(|| registry.addr().to_string(), Proxy::host);
    let reference = format!("{host}/bench/{path}:v1");
    let systems: Vec<&System> = chosen.iter().filter(|s| s.applies(case.mode)).collect();
    let mut costs: Vec<Vec<Cost>> = vec![Vec::new(); systems.len()];
    for run in 0..options.runs {
        for (i, system) in systems.iter().enumerate() {
            let scratch = options.work_dir.join("s");
            let target = systems::Target {
                reference: &reference,
                host: &host,
                layout: &layout_dir,
                scratch: &scratch,
                hoist: &options.hoist,
                bench: &options.bench,
                tmpfs: options.tmpfs,
            };
            let cost = systems::measure(system, case.mode, &target)?;
            log(&format!(
                "{} run {}: {} {:.3} s, {:.0} MiB, {:.2} CPU s",
                case.name,
                run + 1,
                system.label(),
                cost.wall_s,
                cost.peak_rss_mib,
                cost.cpu_s
            ));
            costs[i].push(cost);
        }
    }
    drop(proxy);
    let _ = std::fs::remove_dir_all(&layout_dir);
    let mut report = CaseReport {
        name: case.name.clone(),
        scenario: case.scenario.to_owned(),
        description: case.description.clone(),
        content_bytes: case.image.total_size,
        compressed_bytes: written.layers.iter().map(|l| l.size).sum(),
        layers: written.layers.len(),
        reference: None,
        best_hoist: None,
        systems: systems
            .iter()
            .zip(costs)
            .map(|(s, runs)| SystemResult::new(s.label(), runs))
            .collect(),
    };
    let reference = systems.iter().find(|s| s.is_hoist()).map(|s| s.label());
    report.conclude(reference);
    Ok(report)
}

/// Writes `text` to `path`.
pub fn write_file(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|source| Error::Io {
        what: format!("{}", path.display()),
        source,
    })
}
