//! containerd's own pull and mount, driven through `ctr`: the baseline Hoist is checked against.
//!
//! `ctr images pull` fetches, unpacks into the default snapshotter (overlayfs) and registers the
//! image. `ctr images mount REF TARGET` unpacks if needed, then creates a snapshot *keyed by the
//! target path* (a read-only view unless `--rw`), under a 24-hour lease named after the target,
//! and mounts it there; `ctr images unmount --rm TARGET` unmounts and removes that snapshot. So
//! targets must be absolute, and one target holds one mount at a time.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::{Credentials, Kind};

/// Failures of a `ctr` command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// ctr could not be started.
    #[error("running {program}: {source} (scripts/lib.sh hoist_install_deps installs containerd)")]
    Spawn {
        /// The program run.
        program: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// ctr ran and failed.
    #[error("ctr {action} {subject} failed ({status}): {stderr}")]
    Failed {
        /// `pull`, `mount`, `unmount`, `rm`.
        action: &'static str,
        /// The image reference or mount target.
        subject: String,
        /// The exit status.
        status: String,
        /// What ctr printed on stderr, trimmed.
        stderr: String,
    },
    /// A mount target is not an absolute path (ctr keys the snapshot by it).
    #[error("mount target {target} must be an absolute path")]
    RelativeTarget {
        /// The target given.
        target: PathBuf,
    },
}

impl Error {
    /// The kind of failure.
    pub fn kind(&self) -> Kind {
        match self {
            Error::Spawn { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                Kind::NotFound
            }
            Error::Spawn { .. } => Kind::Unavailable,
            Error::Failed { stderr, .. } if stderr.contains("not found") => Kind::NotFound,
            Error::Failed { stderr, .. } if stderr.contains("401 Unauthorized") => {
                Kind::Unauthenticated
            }
            Error::Failed { .. } => Kind::Unavailable,
            Error::RelativeTarget { .. } => Kind::InvalidArgument,
        }
    }
}

/// Results of this module.
pub type Result<T> = std::result::Result<T, Error>;

/// How `ctr images pull` reaches the registry.
#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// Use plain HTTP (`--plain-http`), as for the registry scripts/lib.sh starts; false by
    /// default.
    pub plain_http: bool,
    /// Registry credentials (`--user`); anonymous by default.
    pub credentials: Option<Credentials>,
}

/// One containerd, one namespace.
#[derive(Debug, Clone)]
pub struct Ctr {
    /// The ctr binary; `ctr` by default.
    pub program: PathBuf,
    /// containerd's socket (`--address`).
    pub address: PathBuf,
    /// The namespace (`-n`), such as `hoist-test`.
    pub namespace: String,
}

impl Ctr {
    /// A client of the containerd on `address`, in `namespace`.
    pub fn new(address: impl Into<PathBuf>, namespace: impl Into<String>) -> Self {
        Self {
            program: PathBuf::from("ctr"),
            address: address.into(),
            namespace: namespace.into(),
        }
    }

    /// `ctr images pull`: fetch, unpack (default platform, default snapshotter) and register.
    pub fn pull(&self, reference: &str, options: &PullOptions) -> Result<()> {
        let mut command = self.command(["images", "pull"]);
        if options.plain_http {
            command.arg("--plain-http");
        }
        if let Some(credentials) = &options.credentials {
            command.arg("--user").arg(credentials.joined());
        }
        command.arg(reference);
        self.run(command, "pull", reference).map(drop)
    }

    /// `ctr images mount`: a read-only view of the unpacked image mounted at `target` (an
    /// existing, absolute directory). Unmounted and removed when the [`Mount`] is dropped.
    pub fn mount(&self, reference: &str, target: &Path) -> Result<Mount<'_>> {
        self.mount_with(reference, target, false)
    }

    /// Like [`Ctr::mount`] but writable (`--rw`): the snapshot is an active one on top of the
    /// image, so changes do not reach the image.
    pub fn mount_rw(&self, reference: &str, target: &Path) -> Result<Mount<'_>> {
        self.mount_with(reference, target, true)
    }

    fn mount_with(&self, reference: &str, target: &Path, rw: bool) -> Result<Mount<'_>> {
        if !target.is_absolute() {
            return Err(Error::RelativeTarget {
                target: target.to_path_buf(),
            });
        }
        let mut command = self.command(["images", "mount"]);
        if rw {
            command.arg("--rw");
        }
        command.arg(reference).arg(target);
        self.run(command, "mount", reference)?;
        Ok(Mount {
            ctr: self,
            target: target.to_path_buf(),
            mounted: true,
        })
    }

    /// The manifest (or index) digest containerd records for `reference`; `None` if it has no
    /// such image. Parsed from `ctr images ls` (columns REF, TYPE, DIGEST, ...).
    pub fn image_digest(&self, reference: &str) -> Result<Option<String>> {
        let output = self.run(self.command(["images", "ls"]), "images ls", reference)?;
        let listing = String::from_utf8_lossy(&output.stdout);
        Ok(listing.lines().skip(1).find_map(|line| {
            let mut columns = line.split_whitespace();
            let name = columns.next()?;
            let digest = columns.nth(1)?;
            (name == reference).then(|| digest.to_owned())
        }))
    }

    /// `ctr images rm --sync`: forget the image and let containerd collect its content.
    pub fn remove_image(&self, reference: &str) -> Result<()> {
        let mut command = self.command(["images", "rm", "--sync"]);
        command.arg(reference);
        self.run(command, "rm", reference).map(drop)
    }

    /// `ctr images unmount --rm TARGET`.
    fn unmount(&self, target: &Path) -> Result<()> {
        let mut command = self.command(["images", "unmount", "--rm"]);
        command.arg(target);
        self.run(command, "unmount", &target.display().to_string())
            .map(drop)
    }

    fn command<const N: usize>(&self, args: [&str; N]) -> Command {
        let mut command = Command::new(&self.program);
        command
            .arg("--address")
            .arg(&self.address)
            .arg("--namespace")
            .arg(&self.namespace)
            .args(args);
        command
    }

    /// Runs ctr; the error names the action and subject, never the arguments (credentials).
    fn run(&self, mut command: Command, action: &'static str, subject: &str) -> Result<Output> {
        let output = command.output().map_err(|source| Error::Spawn {
            program: self.program.clone(),
            source,
        })?;
        if !output.status.success() {
            return Err(Error::Failed {
                action,
                subject: subject.to_owned(),
                status: output.status.to_string(),
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            });
        }
        Ok(output)
    }
}

/// An image mounted by `ctr images mount`; unmounted (and its snapshot removed) on
/// [`Mount::unmount`] or, ignoring errors, on drop.
#[derive(Debug)]
pub struct Mount<'a> {
    ctr: &'a Ctr,
    target: PathBuf,
    mounted: bool,
}

impl Mount<'_> {
    /// Where the image is mounted.
    pub fn path(&self) -> &Path {
        &self.target
    }

    /// Unmounts and removes the snapshot, reporting failure.
    pub fn unmount(mut self) -> Result<()> {
        self.mounted = false;
        self.ctr.unmount(&self.target)
    }
}

impl Drop for Mount<'_> {
    fn drop(&mut self) {
        if self.mounted {
            // Best effort: a failure here leaves a mount that hoist_stop_services sweeps up.
            let _ = self.ctr.unmount(&self.target);
        }
    }
}
