//! Amazon ECR: registry credentials from `GetAuthorizationToken`, with access keys or a role
//! assumed through `AssumeRoleWithWebIdentity`. The token (`base64("AWS:" + password)`, valid
//! 12 hours) is cached per connector and registry and renewed before `expiresAt`, but never
//! fetched more often than `min_refresh_secs` apart: a clock skew or an endpoint answering
//! with an `expiresAt` in the past (as moto does) must not make every pull call the API.
//! The SDK calls need the `aws` cargo feature (default); without it, `Aws` connectors are
//! rejected when the config is checked.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

#[cfg(feature = "aws")]
use aws_config::BehaviorVersion;
#[cfg(feature = "aws")]
use aws_sdk_ecr::config::{Credentials as AwsCredentials, Region};
#[cfg(feature = "aws")]
use base64::Engine as _;
use regex::Regex;

use super::config::AuthConfig;
use super::metrics::Metrics;
use super::secret::{self, Environment};
use crate::registry::Credentials;
#[cfg(feature = "aws")]
use crate::registry::Secret;

/// Whether this build has the AWS SDK (the `aws` cargo feature), so `Aws` connectors work.
pub const SUPPORTED: bool = cfg!(feature = "aws");

/// How long before `expiresAt` a token is renewed.
const RENEW_BEFORE: Duration = Duration::from_secs(30 * 60);
/// Default least time between two token fetches for one registry.
pub const DEFAULT_MIN_REFRESH: Duration = Duration::from_secs(60);

/// Why ECR credentials could not be obtained.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A key or token secret could not be read.
    #[error(transparent)]
    Secret(#[from] secret::Error),
    /// The web identity token file could not be read.
    #[error("web identity token file {path}: {source}")]
    TokenFile {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// STS refused or failed `AssumeRoleWithWebIdentity`.
    #[error("AssumeRoleWithWebIdentity for {role}: {detail}")]
    AssumeRole {
        /// The role ARN.
        role: String,
        /// What STS said.
        detail: String,
    },
    /// ECR refused or failed `GetAuthorizationToken`.
    #[error("GetAuthorizationToken: {0}")]
    Token(String),
    /// The answer had no usable token.
    #[error("GetAuthorizationToken answered without a usable token")]
    NoToken,
    /// No region configured and none in the registry host.
    #[error("no auth.region and the registry {0} is not an ECR host")]
    NoRegion(String),
    /// This hoist was built without the `aws` cargo feature.
    #[error("{UNSUPPORTED}")]
    Unsupported,
}

/// Why an `Aws` connector cannot work in a build without the `aws` feature.
pub const UNSUPPORTED: &str =
    "hoist was built without the aws feature: Amazon ECR connectors are unavailable";

impl Error {
    /// Whether AWS refused the credentials (as opposed to being unreachable).
    pub fn is_refusal(&self) -> bool {
        match self {
            Error::AssumeRole { detail, .. } | Error::Token(detail) => {
                detail.contains("Unrecognized")
                    || detail.contains("AccessDenied")
                    || detail.contains("InvalidIdentityToken")
                    || detail.contains("Expired")
            }
            _ => false,
        }
    }
}

/// `ACCOUNT.dkr.ecr(-fips)?.REGION.amazonaws.com(.cn)?` → (account, region).
pub fn parse_ecr_host(host: &str) -> Option<(String, String)> {
    static RE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| {
        Regex::new(r"^([0-9]{12})\.dkr\.ecr(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$")
            .expect("a constant, valid regex")
    });
    let caps = re.captures(host)?;
    Some((caps[1].to_owned(), caps[2].to_owned()))
}

struct Cached {
    credentials: Credentials,
    expires_at: SystemTime,
    fetched: Instant,
}

/// ECR tokens by (connector, registry). Shared across config reloads.
#[derive(Default)]
pub struct Tokens {
    // A tokio mutex held across the fetch: concurrent pulls wait for one fetch instead of
    // each calling the API.
    cache: tokio::sync::Mutex<HashMap<(String, String), Cached>>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tokens(<redacted>)")
    }
}

impl Tokens {
    /// Credentials for `registry` through connector `key`, from the cache or a fresh token.
    pub async fn credentials(
        &self,
        key: &str,
        registry: &str,
        auth: &AuthConfig,
        env: &Environment,
        metrics: &Metrics,
    ) -> Result<Credentials, Error> {
        let mut cache = self.cache.lock().await;
        let cache_key = (key.to_owned(), registry.to_owned());
        let min_refresh = auth
            .min_refresh_secs
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_MIN_REFRESH);
        if let Some(c) = cache.get(&cache_key) {
            let fresh = SystemTime::now() + RENEW_BEFORE < c.expires_at;
            if fresh || c.fetched.elapsed() < min_refresh {
                return Ok(c.credentials.clone());
            }
        }
        let (credentials, expires_at) = fetch(registry, auth, env).await?;
        metrics.record_token_fetch(registry);
        tracing::info!(connector = key, registry, expires_at = ?expires_at, "fetched an ECR token");
        cache.insert(
            cache_key,
            Cached {
                credentials: credentials.clone(),
                expires_at,
                fetched: Instant::now(),
            },
        );
        Ok(credentials)
    }
}

#[cfg(not(feature = "aws"))]
async fn fetch(
    _registry: &str,
    _auth: &AuthConfig,
    _env: &Environment,
) -> Result<(Credentials, SystemTime), Error> {
    // Connector::from_config rejects Aws connectors in this build; kept as a typed refusal.
    Err(Error::Unsupported)
}

#[cfg(feature = "aws")]
async fn fetch(
    registry: &str,
    auth: &AuthConfig,
    env: &Environment,
) -> Result<(Credentials, SystemTime), Error> {
    let host = registry.split('/').next().unwrap_or(registry);
    let region = match (&auth.region, parse_ecr_host(host)) {
        (Some(r), _) => r.clone(),
        (None, Some((_, r))) => r,
        (None, None) => return Err(Error::NoRegion(registry.to_owned())),
    };
    let base = |loader: aws_config::ConfigLoader| {
        let loader = loader.region(Region::new(region.clone()));
        match &auth.endpoint_url {
            Some(url) => loader.endpoint_url(url),
            None => loader,
        }
    };
    let keys = match (&auth.access_key_id, &auth.secret_access_key) {
        (Some(id), Some(secret_key)) => {
            let id = secret::read(id, env)?;
            let secret_key = secret::read(secret_key, env)?;
            AwsCredentials::new(id.expose(), secret_key.expose(), None, None, "hoist-config")
        }
        _ => assume_role(auth, base(aws_config::defaults(BehaviorVersion::latest()))).await?,
    };
    let sdk = base(aws_config::defaults(BehaviorVersion::latest()))
        .credentials_provider(keys)
        .load()
        .await;
    let ecr = aws_sdk_ecr::Client::new(&sdk);
    let out = ecr
        .get_authorization_token()
        .send()
        .await
        .map_err(|e| Error::Token(aws_sdk_ecr::error::DisplayErrorContext(e).to_string()))?;
    let data = out.authorization_data().first().ok_or(Error::NoToken)?;
    let encoded = data.authorization_token().ok_or(Error::NoToken)?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or(Error::NoToken)?;
    let (username, password) = decoded.split_once(':').ok_or(Error::NoToken)?;
    let expires_at = data
        .expires_at()
        .and_then(|t| SystemTime::try_from(*t).ok())
        .unwrap_or(SystemTime::UNIX_EPOCH);
    Ok((
        Credentials::Basic {
            username: username.to_owned(),
            password: Secret::new(password),
        },
        expires_at,
    ))
}

/// `AssumeRoleWithWebIdentity` with the current content of the token file (projected service
/// account tokens rotate, so it is read on every call).
#[cfg(feature = "aws")]
async fn assume_role(
    auth: &AuthConfig,
    loader: aws_config::ConfigLoader,
) -> Result<AwsCredentials, Error> {
    let (Some(role), Some(path)) = (&auth.role_arn, &auth.web_identity_token_file) else {
        return Err(Error::AssumeRole {
            role: String::new(),
            detail: "no role_arn and web_identity_token_file".into(),
        });
    };
    let token = std::fs::read_to_string(path).map_err(|source| Error::TokenFile {
        path: path.clone(),
        source,
    })?;
    let sdk = loader.no_credentials().load().await;
    let sts = aws_sdk_sts::Client::new(&sdk);
    let out = sts
        .assume_role_with_web_identity()
        .role_arn(role)
        .role_session_name(auth.session_name.as_deref().unwrap_or("hoist"))
        .web_identity_token(token.trim())
        .send()
        .await
        .map_err(|e| Error::AssumeRole {
            role: role.clone(),
            detail: aws_sdk_sts::error::DisplayErrorContext(e).to_string(),
        })?;
    let c = out.credentials().ok_or_else(|| Error::AssumeRole {
        role: role.clone(),
        detail: "answer without credentials".into(),
    })?;
    let expiry = SystemTime::try_from(*c.expiration()).ok();
    Ok(AwsCredentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_owned()),
        expiry,
        "hoist-web-identity",
    ))
}

/// Shared handle.
pub type SharedTokens = Arc<Tokens>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecr_hosts() {
        let cases = [
            (
                "123456789012.dkr.ecr.us-east-1.amazonaws.com",
                Some(("123456789012", "us-east-1")),
            ),
            (
                "123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com",
                Some(("123456789012", "us-gov-west-1")),
            ),
            (
                "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn",
                Some(("123456789012", "cn-north-1")),
            ),
            ("12345.dkr.ecr.us-east-1.amazonaws.com", None),
            ("123456789012.dkr.ecr.us-east-1.amazonaws.com.evil.io", None),
            ("public.ecr.aws", None),
        ];
        for (host, want) in cases {
            let got = parse_ecr_host(host);
            assert_eq!(
                got.as_ref().map(|(a, r)| (a.as_str(), r.as_str())),
                want,
                "{host}"
            );
        }
    }
}
