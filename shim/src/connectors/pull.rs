//! A pull with resolved credentials: resolve, then pull through the engine, with errors that
//! name the connector (and the registry, through the engine's error) but never a secret.

use std::sync::Arc;

use super::resolve::{ResolveError, Resolver};
use super::scope::PodContext;
use crate::Reference;
use crate::pull::{self, Observer, Pulled, Puller};
use crate::registry::Credentials;

/// Why a pull with connectors failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No credentials could be chosen.
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    /// The pull failed with the chosen credentials.
    #[error("{using}: {source}")]
    Pull {
        /// `connector account.hub (DockerRegistry)`, `kubelet credentials` or `anonymous`.
        using: String,
        /// What failed.
        source: Box<pull::Error>,
    },
}

impl Error {
    /// The kind of failure, for the API edges.
    pub fn kind(&self) -> crate::error::Kind {
        match self {
            Error::Resolve(e) => e.kind(),
            Error::Pull { source, .. } => source.kind(),
        }
    }
}

/// Resolves the credentials for `image` and `pod` (with kubelet's, if any) and pulls.
pub async fn pull(
    resolver: &Resolver,
    puller: &Puller,
    image: &Reference,
    pod: &PodContext,
    kubelet: Option<Credentials>,
    observer: Arc<dyn Observer>,
) -> Result<Pulled, Error> {
    let resolution = resolver.resolve(image, pod, kubelet).await?;
    puller
        .pull(image, resolution.credentials.clone(), observer)
        .await
        .map_err(|source| Error::Pull {
            using: resolution.describe(),
            source: Box::new(source),
        })
}
