//! A checked connector: where it is visible, what registry it serves, and how its credentials
//! are obtained for one pull.

use std::fmt;

use super::aws;
use super::config::{AuthConfig, ConnectorConfig, Error as ConfigError, Type, parse_registry};
use super::metrics::Metrics;
use super::scope::Scope;
use super::secret::{self, Environment};
use crate::Reference;
use crate::registry::{Credentials, Secret};

/// A connector from the config, checked.
#[derive(Debug, Clone)]
pub struct Connector {
    /// Its id within its scope.
    pub id: String,
    /// Where it is defined.
    pub scope: Scope,
    /// Its type.
    pub kind: Type,
    /// The registry host it serves (`docker.io` for Docker Hub).
    pub host: String,
    /// The repository path prefix it serves (Artifactory's repository-path form), or empty.
    pub path: String,
    auth: AuthConfig,
}

/// Why a connector's credentials could not be obtained.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// A secret source could not be read.
    #[error(transparent)]
    Secret(#[from] secret::Error),
    /// ECR (or STS) failed.
    #[error(transparent)]
    Aws(#[from] aws::Error),
}

impl Connector {
    /// Checks one `[[connector]]` table.
    pub fn from_config(c: &ConnectorConfig) -> Result<Connector, ConfigError> {
        let scope: Scope = c.scope.parse().map_err(|source| ConfigError::Scope {
            connector: c.id.clone(),
            source,
        })?;
        // The id must be usable in a reference (`account.ID`).
        let _: super::scope::ConnectorRef = c.id.parse().map_err(|source| ConfigError::Scope {
            connector: c.id.clone(),
            source,
        })?;
        let (host, path) = parse_registry(&c.registry).ok_or_else(|| ConfigError::Registry {
            connector: c.id.clone(),
            registry: c.registry.clone(),
        })?;
        c.auth.check(c.kind).map_err(|problem| ConfigError::Auth {
            connector: c.id.clone(),
            kind: c.kind,
            problem,
        })?;
        if c.kind == Type::Aws && !aws::SUPPORTED {
            return Err(ConfigError::Auth {
                connector: c.id.clone(),
                kind: c.kind,
                problem: aws::UNSUPPORTED.into(),
            });
        }
        if c.kind == Type::Aws && c.auth.region.is_none() && aws::parse_ecr_host(&host).is_none() {
            return Err(ConfigError::Auth {
                connector: c.id.clone(),
                kind: c.kind,
                problem: format!(
                    "registry {host} is not ACCOUNT.dkr.ecr.REGION.amazonaws.com: set auth.region"
                ),
            });
        }
        Ok(Connector {
            id: c.id.clone(),
            scope,
            kind: c.kind,
            host,
            path,
            auth: c.auth.clone(),
        })
    }

    /// The registry as configured, without scheme: `HOST[/PATH]`.
    pub fn registry(&self) -> String {
        if self.path.is_empty() {
            self.host.clone()
        } else {
            format!("{}/{}", self.host, self.path)
        }
    }

    /// Whether `image` is on this connector's registry (and under its path prefix).
    pub fn serves(&self, image: &Reference) -> bool {
        image.registry() == self.host
            && (self.path.is_empty()
                || image
                    .repository()
                    .strip_prefix(self.path.as_str())
                    .is_some_and(|rest| rest.starts_with('/')))
    }

    /// The credentials to pull with, read or fetched now.
    pub async fn credentials(
        &self,
        env: &Environment,
        tokens: &aws::Tokens,
        metrics: &Metrics,
    ) -> Result<Credentials, CredentialsError> {
        let a = &self.auth;
        let basic = |username: &str, secret: Secret| Credentials::Basic {
            username: username.to_owned(),
            password: secret,
        };
        Ok(match self.kind {
            Type::DockerRegistry | Type::Artifactory => {
                if let Some(s) = &a.token {
                    Credentials::RegistryToken(secret::read(s, env)?)
                } else if let (Some(s), Type::DockerRegistry) = (&a.identity_token, self.kind) {
                    Credentials::IdentityToken(secret::read(s, env)?)
                } else if let Some(s) = a
                    .password
                    .as_ref()
                    .or(a.api_key.as_ref())
                    .or(a.identity_token.as_ref())
                {
                    basic(
                        a.username.as_deref().unwrap_or_default(),
                        secret::read(s, env)?,
                    )
                } else {
                    Credentials::Anonymous
                }
            }
            Type::Gcr => match &a.json_key {
                Some(s) => basic("_json_key", secret::read(s, env)?),
                None => Credentials::Anonymous,
            },
            Type::Aws => {
                tokens
                    .credentials(&self.to_string(), &self.host, a, env, metrics)
                    .await?
            }
        })
    }
}

/// `account.ID`, `org:ORG.ID` or `project:ORG/NAME.ID`: unambiguous in logs and metrics.
impl fmt::Display for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.scope, self.id)
    }
}
