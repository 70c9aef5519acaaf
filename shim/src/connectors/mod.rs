//! Connectors: named registry credentials with a type (`DockerRegistry`, `Artifactory`, `Aws`,
//! `Gcr`) and a scope (`account`, `org:NAME`, `project:ORG/NAME`), and the [`Resolver`] that
//! chooses, per image and pod, which credentials a pull uses (issue 5, DESIGN.md
//! "Connectors"). [`Tenants`] maps a pod's namespace to its org and project. [`Live`] holds
//! the current resolver and swaps it on config reload.

pub mod aws;
pub mod check;
pub mod config;
mod connector;
mod live;
pub mod metrics;
pub mod pull;
mod resolve;
pub mod scope;
pub mod secret;
mod tenant;

use serde::Deserialize;

pub use config::{ConnectorConfig, RouteConfig, SecretSource, Type};
pub use connector::{Connector, CredentialsError};
pub use live::Live;
pub use metrics::Metrics;
pub use resolve::{Resolution, ResolveError, Resolver, Source};
pub use scope::{ConnectorRef, PodContext, Scope};
pub use secret::Environment;
pub use tenant::{TenantConfig, Tenants};

#[cfg(test)]
mod tests;

/// The connector keys of the config file, as written.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Settings {
    /// `[[connector]]` tables.
    pub connectors: Vec<ConnectorConfig>,
    /// `[[route]]` tables, first match wins.
    pub routes: Vec<RouteConfig>,
    /// `default_connector = "account.X"`.
    pub default_connector: Option<String>,
    /// `[[tenant]]` tables: namespace → org and project.
    #[serde(default)]
    pub tenants: Vec<TenantConfig>,
    /// `trust_pod_labels`: pods' `hoist.dev/org` and `hoist.dev/project` choose their tenant.
    #[serde(default)]
    pub trust_pod_labels: bool,
}

impl Settings {
    /// Checks everything that can be checked without reading secrets.
    pub fn check(&self) -> Result<(), config::Error> {
        Resolver::new(
            self,
            Environment::default(),
            Default::default(),
            Default::default(),
        )
        .map(|_| ())
    }
}
