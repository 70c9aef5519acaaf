//! The `[[connector]]`, `[[route]]` and `default_connector` keys of Hoist's config file, and
//! their checks. Secrets are named by source (`{ file = PATH }` or `{ env = NAME }`), never
//! written inline; they are read when a connector is used, so rotated Kubernetes Secrets apply.

use std::path::PathBuf;

use serde::Deserialize;

use super::scope::{ConnectorRef, Scope};

/// One `[[connector]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectorConfig {
    /// The connector's id within its scope (`[A-Za-z0-9_-]+`).
    pub id: String,
    /// `account`, `org:NAME` or `project:ORG/NAME`.
    pub scope: String,
    /// `DockerRegistry`, `Artifactory`, `Aws` or `Gcr`.
    #[serde(rename = "type")]
    pub kind: Type,
    /// The registry it serves: `HOST[:PORT]`, optionally with a repository path prefix
    /// (`HOST/REPO` for Artifactory's repository-path form) and a scheme, which is ignored.
    pub registry: String,
    /// How to authenticate. Default: anonymous.
    #[serde(default)]
    pub auth: AuthConfig,
}

/// Connector types, as in the source documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
pub enum Type {
    /// Any Docker V2 / OCI registry, Nexus included.
    DockerRegistry,
    /// JFrog Artifactory Docker repositories.
    Artifactory,
    /// Amazon ECR.
    Aws,
    /// Google Container Registry and Artifact Registry.
    Gcr,
}

impl Type {
    /// The name used in config files, devcontainer.json and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Type::DockerRegistry => "DockerRegistry",
            Type::Artifactory => "Artifactory",
            Type::Aws => "Aws",
            Type::Gcr => "Gcr",
        }
    }
}

impl std::fmt::Display for Type {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Type {
    type Err = ();
    fn from_str(s: &str) -> Result<Type, ()> {
        [
            Type::DockerRegistry,
            Type::Artifactory,
            Type::Aws,
            Type::Gcr,
        ]
        .into_iter()
        .find(|t| t.as_str() == s)
        .ok_or(())
    }
}

/// Where a secret comes from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum SecretSource {
    /// `{ file = "/var/run/secrets/…" }`: the file's content, without a trailing newline.
    #[serde(rename = "file")]
    File(PathBuf),
    /// `{ env = "NAME" }`: an environment variable of the `hoist` process.
    #[serde(rename = "env")]
    Env(String),
}

impl std::fmt::Display for SecretSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretSource::File(p) => write!(f, "file {}", p.display()),
            SecretSource::Env(n) => write!(f, "environment variable {n}"),
        }
    }
}

/// `[connector.auth]`. Which keys apply depends on the type; others are rejected.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// User name (DockerRegistry, Artifactory).
    pub username: Option<String>,
    /// Password or personal access token (DockerRegistry, Artifactory).
    pub password: Option<SecretSource>,
    /// A registry access token sent as `Bearer` (DockerRegistry).
    pub token: Option<SecretSource>,
    /// An OAuth2 refresh token (Docker's `identitytoken`) for DockerRegistry, or an
    /// Artifactory identity token (sent with `username`).
    pub identity_token: Option<SecretSource>,
    /// An Artifactory API key (sent with `username`).
    pub api_key: Option<SecretSource>,
    /// A Google service account JSON key (Gcr), sent as user `_json_key`.
    pub json_key: Option<SecretSource>,
    /// AWS region (Aws). Default: taken from the registry host
    /// `ACCOUNT.dkr.ecr.REGION.amazonaws.com`.
    pub region: Option<String>,
    /// AWS access key id (Aws, with `secret_access_key`).
    pub access_key_id: Option<SecretSource>,
    /// AWS secret access key (Aws).
    pub secret_access_key: Option<SecretSource>,
    /// Role assumed with `AssumeRoleWithWebIdentity` (Aws, with `web_identity_token_file`).
    pub role_arn: Option<String>,
    /// OIDC token file, re-read on every role assumption (projected service account tokens
    /// rotate) (Aws).
    pub web_identity_token_file: Option<PathBuf>,
    /// Session name for the assumed role (Aws). Default: `hoist`.
    pub session_name: Option<String>,
    /// Endpoint for the ECR and STS APIs instead of AWS's (Aws). Default: AWS's.
    pub endpoint_url: Option<String>,
    /// Least time between two `GetAuthorizationToken` calls for one registry, in seconds, even
    /// when the cached token claims to have expired (Aws). Default: 60.
    pub min_refresh_secs: Option<u64>,
}

/// One `[[route]]`: images whose registry (and repository) match use a connector.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Registry host (`HOST[:PORT]`), exactly, or `*.SUFFIX` for any subdomain.
    pub registry: String,
    /// Repository pattern: exact, or ending in `*` for a prefix. Default: every repository.
    pub repository: Option<String>,
    /// The connector, relative to the pod (`account.X`, `org.X`, `X`).
    pub connector: String,
}

/// Why the connector configuration is invalid.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A scope or reference is malformed.
    #[error("connector {connector}: {source}")]
    Scope {
        /// The connector (or route) it belongs to.
        connector: String,
        /// Why.
        source: super::scope::Error,
    },
    /// Two connectors with one id in one scope.
    #[error("connector {id} is defined twice in scope {scope}")]
    Duplicate {
        /// The id.
        id: String,
        /// The scope.
        scope: Scope,
    },
    /// A key that does not apply to the connector's type, or a missing one.
    #[error("connector {connector} ({kind}): {problem}")]
    Auth {
        /// The connector.
        connector: String,
        /// Its type.
        kind: Type,
        /// What is wrong.
        problem: String,
    },
    /// The registry is not `[scheme://]HOST[:PORT][/PATH]`.
    #[error("connector {connector}: registry {registry:?} is not HOST[:PORT][/PATH]")]
    Registry {
        /// The connector.
        connector: String,
        /// The value.
        registry: String,
    },
    /// A `[[tenant]]` table is malformed or repeats a namespace.
    #[error("tenant {index}: {problem}")]
    Tenant {
        /// The tenant's position, from 0.
        index: usize,
        /// What is wrong.
        problem: String,
    },
    /// A route pattern is malformed.
    #[error("route {index}: {problem}")]
    Route {
        /// The route's position, from 0.
        index: usize,
        /// What is wrong.
        problem: String,
    },
}

impl AuthConfig {
    /// The keys that are set, by name.
    fn set_keys(&self) -> Vec<&'static str> {
        let mut keys = Vec::new();
        let mut add = |set: bool, name| {
            if set {
                keys.push(name);
            }
        };
        add(self.username.is_some(), "username");
        add(self.password.is_some(), "password");
        add(self.token.is_some(), "token");
        add(self.identity_token.is_some(), "identity_token");
        add(self.api_key.is_some(), "api_key");
        add(self.json_key.is_some(), "json_key");
        add(self.region.is_some(), "region");
        add(self.access_key_id.is_some(), "access_key_id");
        add(self.secret_access_key.is_some(), "secret_access_key");
        add(self.role_arn.is_some(), "role_arn");
        add(
            self.web_identity_token_file.is_some(),
            "web_identity_token_file",
        );
        add(self.session_name.is_some(), "session_name");
        add(self.endpoint_url.is_some(), "endpoint_url");
        add(self.min_refresh_secs.is_some(), "min_refresh_secs");
        keys
    }

    /// Checks that the keys set fit `kind` and form one complete way to authenticate.
    pub(crate) fn check(&self, kind: Type) -> Result<(), String> {
        let allowed: &[&str] = match kind {
            Type::DockerRegistry => &["username", "password", "token", "identity_token"],
            Type::Artifactory => &["username", "password", "api_key", "identity_token"],
            Type::Gcr => &["json_key"],
            Type::Aws => &[
                "region",
                "access_key_id",
                "secret_access_key",
                "role_arn",
                "web_identity_token_file",
                "session_name",
                "endpoint_url",
                "min_refresh_secs",
            ],
        };
        if let Some(k) = self.set_keys().into_iter().find(|k| !allowed.contains(k)) {
            return Err(format!("auth.{k} does not apply to this type"));
        }
        let secrets = [
            &self.password,
            &self.token,
            &self.identity_token,
            &self.api_key,
        ]
        .iter()
        .filter(|s| s.is_some())
        .count();
        if secrets > 1 {
            return Err("set only one of auth.password, token, identity_token, api_key".into());
        }
        match kind {
            Type::DockerRegistry => {
                if self.password.is_some() != self.username.is_some() {
                    return Err("auth.username and auth.password go together".into());
                }
            }
            Type::Artifactory => {
                if secrets == 1 && self.username.is_none() {
                    return Err(
                        "auth.username is required with a password, api_key or identity_token"
                            .into(),
                    );
                }
            }
            Type::Gcr => {}
            Type::Aws => {
                let keys = (
                    self.access_key_id.is_some(),
                    self.secret_access_key.is_some(),
                );
                let role = (
                    self.role_arn.is_some(),
                    self.web_identity_token_file.is_some(),
                );
                if keys.0 != keys.1 {
                    return Err("auth.access_key_id and auth.secret_access_key go together".into());
                }
                if role.0 != role.1 {
                    return Err("auth.role_arn and auth.web_identity_token_file go together".into());
                }
                if !keys.0 && !role.0 {
                    return Err(
                        "set access keys or a role_arn with a web_identity_token_file".into(),
                    );
                }
                if self.min_refresh_secs == Some(0) {
                    return Err("auth.min_refresh_secs must be at least 1".into());
                }
            }
        }
        Ok(())
    }
}

/// Parses a connector's `registry` into host and repository path prefix (no slashes at the
/// ends). Docker Hub's aliases become `docker.io`.
pub(crate) fn parse_registry(value: &str) -> Option<(String, String)> {
    let rest = value
        .strip_prefix("https://")
        .or_else(|| value.strip_prefix("http://"))
        .unwrap_or(value);
    let rest = rest.trim_end_matches('/');
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    if !host_ok {
        return None;
    }
    let host = match host {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => "docker.io",
        h => h,
    };
    // Docker Hub's classic `https://index.docker.io/v1/` is the registry itself.
    let path = if host == "docker.io" && path == "v1" {
        ""
    } else {
        path
    };
    if path.split('/').any(|c| c.is_empty()) && !path.is_empty() {
        return None;
    }
    Some((host.to_ascii_lowercase(), path.to_owned()))
}

/// Parses a reference with a check that names the route.
pub(crate) fn route_ref(index: usize, value: &str) -> Result<ConnectorRef, Error> {
    value
        .parse()
        .map_err(|e: super::scope::Error| Error::Route {
            index,
            problem: e.to_string(),
        })
}
