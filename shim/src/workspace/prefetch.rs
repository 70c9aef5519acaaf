//! Pulls a workspace file's images with the credentials the connectors give: the file's own
//! connector (checked for type and registry) as the pod's explicit connector, otherwise the
//! routes and the default connector.

use std::sync::Arc;

use super::Target;
use crate::connectors::{self, PodContext, ResolveError, Resolver, Type};
use crate::pull::{Observer, Pulled, Puller};

/// Why a prefetch failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file's connector is not usable.
    #[error(transparent)]
    Connector(#[from] ResolveError),
    /// The file declares another type than the connector has.
    #[error("connector {connector} is {actual}, the workspace file says {declared}")]
    WrongType {
        /// The connector.
        connector: String,
        /// The type in the file.
        declared: Type,
        /// The connector's type.
        actual: Type,
    },
    /// The connector does not serve the image's registry.
    #[error("connector {connector} serves {serves}, not image {image}")]
    WrongRegistry {
        /// The connector.
        connector: String,
        /// Its registry.
        serves: String,
        /// The image.
        image: String,
    },
    /// The pull failed.
    #[error(transparent)]
    Pull(#[from] connectors::pull::Error),
}

impl Error {
    /// The kind of failure.
    pub fn kind(&self) -> crate::error::Kind {
        match self {
            Error::Connector(e) => e.kind(),
            Error::WrongType { .. } | Error::WrongRegistry { .. } => {
                crate::error::Kind::InvalidArgument
            }
            Error::Pull(e) => e.kind(),
        }
    }
}

/// Pulls every target in order, for a workspace in `pod`'s org and project.
pub async fn prefetch(
    resolver: &Resolver,
    puller: &Puller,
    targets: &[Target],
    pod: &PodContext,
    observer: Arc<dyn Observer>,
) -> Result<Vec<Pulled>, Error> {
    let mut pulled = Vec::with_capacity(targets.len());
    for target in targets {
        let mut pod = pod.clone();
        if let Some(wc) = &target.connector {
            let c = resolver.lookup(&wc.reference, &pod)?;
            if c.kind != wc.kind {
                return Err(Error::WrongType {
                    connector: c.to_string(),
                    declared: wc.kind,
                    actual: c.kind,
                });
            }
            if !c.serves(&target.image) {
                return Err(Error::WrongRegistry {
                    connector: c.to_string(),
                    serves: c.registry(),
                    image: target.image.to_string(),
                });
            }
            pod.connector = Some(wc.reference.to_string());
        }
        pulled.push(
            connectors::pull::pull(
                resolver,
                puller,
                &target.image,
                &pod,
                None,
                Arc::clone(&observer),
            )
            .await?,
        );
    }
    Ok(pulled)
}
