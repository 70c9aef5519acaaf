//! Pushing written layouts to a registry with `skopeo copy`, digests unchanged.
//!
//! The copy runs with `--preserve-digests`, so skopeo refuses rather than rewrite the manifest or
//! recompress a layer, and each push is checked afterwards: the manifest the registry serves
//! (`skopeo inspect --raw`) must hash to the digest [`crate::image::layout::write`] returned. The
//! same holds for Docker media types, which the OCI layout carries as a Docker schema 2 manifest.
//! `--insecure-policy` keeps the run independent of the host's `/etc/containers/policy.json`.

use std::path::PathBuf;
use std::process::{Command, Output};

use crate::image::{Digest, Written};
use crate::{Credentials, Kind};

/// Failures of a push or inspect.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// skopeo could not be started.
    #[error("running {program}: {source} (scripts/lib.sh hoist_install_deps installs skopeo)")]
    Spawn {
        /// The program run.
        program: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// skopeo ran and failed.
    #[error("skopeo {action} {reference} failed ({status}): {stderr}")]
    Failed {
        /// `copy` or `inspect`.
        action: &'static str,
        /// The image reference concerned (without credentials).
        reference: String,
        /// The exit status.
        status: String,
        /// What skopeo printed on stderr, trimmed.
        stderr: String,
    },
    /// The registry serves a different manifest from the one written.
    #[error("{reference}: registry serves manifest {pushed}, the layout wrote {written}")]
    DigestChanged {
        /// The pushed reference.
        reference: String,
        /// Digest of the manifest written to the layout.
        written: Digest,
        /// Digest of the manifest the registry returned.
        pushed: Digest,
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
            Error::Failed { stderr, .. }
                if stderr.contains("unauthorized")
                    || stderr.contains("authentication required") =>
            {
                Kind::Unauthenticated
            }
            Error::Failed { .. } => Kind::Unavailable,
            Error::DigestChanged { .. } => Kind::Internal,
        }
    }
}

/// Results of this module.
pub type Result<T> = std::result::Result<T, Error>;

/// How skopeo talks to the registry.
#[derive(Debug, Clone)]
pub struct Options {
    /// The skopeo binary; `skopeo` (from `PATH`) by default.
    pub program: PathBuf,
    /// Credentials for the registry; anonymous by default.
    pub credentials: Option<Credentials>,
    /// Require HTTPS with verified certificates; false by default, for the plain-HTTP registry
    /// on 127.0.0.1 that scripts/lib.sh starts.
    pub tls_verify: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            program: PathBuf::from("skopeo"),
            credentials: None,
            tls_verify: false,
        }
    }
}

/// Where an image went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// `HOST:PORT/REPO:TAG` for each tag pushed, the main tag first.
    pub references: Vec<String>,
    /// Digest of the manifest, the same under every tag.
    pub manifest_digest: Digest,
}

/// Pushes `image` to `repository` (`HOST:PORT/REPO`) as `tag` and each of `extra_tags`, then
/// checks that the registry serves the manifest that was written.
pub fn push(
    image: &Written,
    repository: &str,
    tag: &str,
    extra_tags: &[&str],
    options: &Options,
) -> Result<Pushed> {
    let source = image.skopeo_source();
    let mut references = Vec::new();
    for tag in std::iter::once(tag).chain(extra_tags.iter().copied()) {
        let reference = format!("{repository}:{tag}");
        let mut command = Command::new(&options.program);
        command.args([
            "copy",
            "--insecure-policy",
            "--preserve-digests",
            "--retry-times",
            "2",
        ]);
        command.arg(format!("--dest-tls-verify={}", options.tls_verify));
        if let Some(credentials) = &options.credentials {
            command.arg("--dest-creds").arg(credentials.joined());
        }
        command.arg(&source).arg(format!("docker://{reference}"));
        run(command, options, "copy", &reference)?;

        let raw = inspect_raw(&reference, options)?;
        let pushed = Digest::of(&raw);
        if pushed != image.manifest.digest {
            return Err(Error::DigestChanged {
                reference,
                written: image.manifest.digest.clone(),
                pushed,
            });
        }
        references.push(reference);
    }
    Ok(Pushed {
        references,
        manifest_digest: image.manifest.digest.clone(),
    })
}

/// The manifest bytes the registry serves for `reference` (`HOST:PORT/REPO:TAG`).
pub fn inspect_raw(reference: &str, options: &Options) -> Result<Vec<u8>> {
    let mut command = Command::new(&options.program);
    command.args(["inspect", "--raw", "--retry-times", "2"]);
    command.arg(format!("--tls-verify={}", options.tls_verify));
    if let Some(credentials) = &options.credentials {
        command.arg("--creds").arg(credentials.joined());
    }
    command.arg(format!("docker://{reference}"));
    Ok(run(command, options, "inspect", reference)?.stdout)
}

/// Runs skopeo; the error names the action and reference, never the arguments (credentials).
fn run(
    mut command: Command,
    options: &Options,
    action: &'static str,
    reference: &str,
) -> Result<Output> {
    let output = command.output().map_err(|source| Error::Spawn {
        program: options.program.clone(),
        source,
    })?;
    if !output.status.success() {
        return Err(Error::Failed {
            action,
            reference: reference.to_owned(),
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    Ok(output)
}
