//! A client for OCI distribution / Docker V2 registries: transport (TLS with system or custom
//! roots, plain HTTP only for registries configured as insecure), authentication, and a
//! per-repository [`Repository`] handle that the pull stages send requests through.

pub mod auth;
mod backoff;
pub mod mirror;
pub mod tls;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{HeaderValue, StatusCode, header};

pub use auth::{Challenge, Credentials, Secret};
use auth::{TokenCache, TokenResponse};

/// Registry client failures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request could not be sent or its body not read (connection refused or reset,
    /// timeout, TLS failure). The URL is printed without its query, which may hold a signature.
    #[error("{url}: {}{}", chain(source), stalled(source))]
    Transport {
        /// Where the request went.
        url: String,
        /// What failed.
        source: reqwest::Error,
    },
    /// The registry answered with an unexpected status.
    #[error("{url}: registry answered {status}{}", if detail.is_empty() { String::new() } else { format!(": {detail}") })]
    Status {
        /// Where the request went.
        url: String,
        /// The status code.
        status: StatusCode,
        /// The start of the error body, if any.
        detail: String,
    },
    /// The registry refused our credentials (or wants some and we have none).
    #[error(
        "registry {registry} refused access to {}: {detail}",
        access_target(repository)
    )]
    Unauthenticated {
        /// The registry host.
        registry: String,
        /// The repository; empty for a request to the registry's API root (a [`Repository::ping`]).
        repository: String,
        /// What the registry or token service said.
        detail: String,
    },
    /// The `Authorization` value made from the credentials (or from the token service's token)
    /// is not a valid HTTP header value: a control character such as a newline, or a byte
    /// outside visible ASCII. Sending it empty instead would turn a typo in a pull secret into
    /// a misleading "credentials were refused". The value itself is never shown.
    #[error(
        "registry {registry}: the credentials cannot be sent: the Authorization value holds a control character or non-ASCII byte"
    )]
    BadAuthorization {
        /// The registry host.
        registry: String,
    },
    /// The registry's authentication challenge is not usable.
    #[error("registry {registry}: {source}")]
    Challenge {
        /// The registry host.
        registry: String,
        /// Why.
        source: auth::ChallengeError,
    },
    /// A custom CA file could not be read or parsed.
    #[error("CA certificate {path}: {detail}")]
    Ca {
        /// The file.
        path: PathBuf,
        /// Why.
        detail: String,
    },
    /// A mirror or hosts.toml is not usable.
    #[error(transparent)]
    Mirror(#[from] mirror::Error),
    /// The HTTP client could not be built.
    #[error("building the HTTP client: {0}")]
    Build(reqwest::Error),
}

impl Error {
    /// The kind of failure, for the API edges.
    pub fn kind(&self) -> crate::error::Kind {
        use crate::error::Kind;
        match self {
            Error::Transport { .. } => Kind::Unavailable,
            Error::Status { status, .. } => match *status {
                StatusCode::NOT_FOUND => Kind::NotFound,
                StatusCode::FORBIDDEN => Kind::PermissionDenied,
                StatusCode::UNAUTHORIZED => Kind::Unauthenticated,
                s if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS => Kind::Unavailable,
                _ => Kind::InvalidArgument,
            },
            Error::Unauthenticated { .. } => Kind::Unauthenticated,
            Error::Challenge { .. } => Kind::Unauthenticated,
            Error::Ca { .. }
            | Error::Build(_)
            | Error::Mirror(_)
            | Error::BadAuthorization { .. } => Kind::InvalidArgument,
        }
    }

    /// Whether the same request may succeed if sent again.
    pub fn is_retryable(&self) -> bool {
        match self {
            // A redirect loop (or too many redirects) ends the same way every time.
            Error::Transport { source, .. } => !source.is_redirect(),
            Error::Status { status, .. } => {
                status.is_server_error()
                    || *status == StatusCode::TOO_MANY_REQUESTS
                    || *status == StatusCode::REQUEST_TIMEOUT
            }
            _ => false,
        }
    }
}

/// What [`Error::Unauthenticated`] names: the repository, or for a handle without one (the
/// check of `hoist connectors check`) the API root it requested.
fn access_target(repository: &str) -> &str {
    if repository.is_empty() {
        "its API root /v2/"
    } else {
        repository
    }
}

/// `Result` with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a timed-out transfer adds to its error: the one timeout on registry requests is the
/// progress timeout (reqwest's read timeout), and a pull has no other deadline unless its
/// caller sets one (kubelet sets none on `PullImage`).
const STALLED: &str = " (the registry sent nothing for longer than pull.progress_timeout_secs)";

/// [`STALLED`] for a read that timed out (not a connection attempt: that has its own timeout).
fn stalled(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() && !e.is_connect() {
        STALLED
    } else {
        ""
    }
}

/// An error and its causes, `: `-separated: reqwest's own message ("error sending request")
/// says nothing of the cause (connection refused, certificate not trusted).
fn chain(e: &reqwest::Error) -> String {
    let mut out = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

/// A URL fit for logs and errors: no query (pre-signed blob URLs carry signatures there) and
/// no user info.
pub fn display_url(url: &reqwest::Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.to_string()
}

pub(crate) fn transport(url: &reqwest::Url) -> impl FnOnce(reqwest::Error) -> Error + '_ {
    move |source| Error::Transport {
        url: display_url(url),
        source: source.without_url(),
    }
}

/// Transport settings shared by every registry.
#[derive(Debug, Clone)]
pub struct Options {
    /// Registry hosts (`host` or `host:port`) reached over plain HTTP without TLS.
    /// Default: none.
    pub insecure: Vec<String>,
    /// Extra PEM CA certificates trusted for every registry in addition to the system roots.
    /// Default: none.
    pub ca_files: Vec<PathBuf>,
    /// Time allowed to establish a connection. Default: 10 s.
    pub connect_timeout: Duration,
    /// A request fails when no bytes arrive for this long (a stalled registry). Default: 30 s.
    pub progress_timeout: Duration,
    /// Idle connections kept per host, which parallel Range requests reuse. Default: 64.
    pub pool_per_host: usize,
    /// Mirrors tried in order before each registry (key `HOST[:PORT]`, `docker.io` for Docker
    /// Hub, `*` for every registry). Default: none.
    pub mirrors: HashMap<String, Vec<mirror::Mirror>>,
    /// A containerd `certs.d`-style directory of `HOST/hosts.toml` files adding mirrors (after
    /// those in `mirrors`), and CA files and `skip_verify` for the hosts they are written for.
    /// Default: none.
    pub hosts_dir: Option<PathBuf>,
    /// How long a mirror that failed (no connection, or a 5xx) is skipped before it is tried
    /// again; each further failure doubles it. Default: 30 s.
    pub mirror_backoff: Duration,
    /// The longest a failed mirror is skipped. Default: 10 min.
    pub mirror_backoff_max: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            insecure: Vec::new(),
            ca_files: Vec::new(),
            connect_timeout: Duration::from_secs(10),
            progress_timeout: Duration::from_secs(30),
            pool_per_host: 64,
            mirrors: HashMap::new(),
            hosts_dir: None,
            mirror_backoff: Duration::from_secs(30),
            mirror_backoff_max: Duration::from_secs(600),
        }
    }
}

/// The registry client: one connection pool per TLS setting and one token cache for the whole
/// process.
#[derive(Debug)]
pub struct Client {
    clients: tls::Clients,
    insecure: Vec<String>,
    tokens: TokenCache,
    mirrors: HashMap<String, Vec<mirror::Mirror>>,
    mirror_backoff: backoff::Backoff,
}

impl Client {
    /// Builds the client. TLS certificates are verified unless a hosts.toml says
    /// `skip_verify` for the host in question.
    pub fn new(options: &Options) -> Result<Client> {
        let mut mirrors = options.mirrors.clone();
        let mut hosts: HashMap<String, tls::HostTls> = HashMap::new();
        let insecure = options.insecure.clone();
        if let Some(dir) = &options.hosts_dir {
            for (registry, from_dir) in mirror::read_hosts_dir(dir)? {
                let server = from_dir
                    .server
                    .clone()
                    .or_else(|| (registry != "*").then(|| base_url(&insecure, &registry)));
                if let Some(key) = server.as_ref().and_then(tls::authority) {
                    hosts.entry(key).or_default().merge(&from_dir.tls);
                }
                mirrors
                    .entry(registry)
                    .or_default()
                    .extend(from_dir.mirrors);
            }
        }
        for m in mirrors.values().flatten() {
            if let Some(key) = tls::authority(&m.base) {
                hosts.entry(key).or_default().merge(&m.tls);
            }
        }
        Ok(Client {
            clients: tls::Clients::new(options, &hosts)?,
            insecure,
            tokens: TokenCache::default(),
            mirrors,
            mirror_backoff: backoff::Backoff::new(
                options.mirror_backoff,
                options.mirror_backoff_max,
            ),
        })
    }

    /// The raw HTTP client for hosts without TLS settings of their own, for requests that must
    /// not carry registry credentials.
    pub fn http(&self) -> &reqwest::Client {
        self.clients.default()
    }

    /// The raw HTTP client for requests to `url`'s host (its hosts.toml `ca` and
    /// `skip_verify`), for requests that must not carry registry credentials (blob storage
    /// after a cross-host redirect, a mirror's blob URL).
    pub fn http_for(&self, url: &reqwest::Url) -> &reqwest::Client {
        self.clients.for_url(url)
    }

    /// The base URL for `registry`: `https://host`, or `http://host` if it is configured as
    /// insecure. Docker Hub's API lives at `registry-1.docker.io`.
    pub fn base_url(&self, registry: &str) -> reqwest::Url {
        base_url(&self.insecure, registry)
    }

    /// A handle for one repository with one set of credentials.
    pub fn repository(
        self: &Arc<Self>,
        registry: &str,
        repository: &str,
        credentials: Credentials,
    ) -> Repository {
        Repository {
            client: Arc::clone(self),
            registry: registry.to_owned(),
            base: self.base_url(registry),
            repository: repository.to_owned(),
            credentials,
            authorization: Mutex::new(None),
        }
    }
}

fn base_url(insecure: &[String], registry: &str) -> reqwest::Url {
    let host = if registry == crate::reference::DEFAULT_REGISTRY {
        "registry-1.docker.io"
    } else {
        registry
    };
    let scheme = if insecure.iter().any(|h| h == registry) {
        "http"
    } else {
        "https"
    };
    reqwest::Url::parse(&format!("{scheme}://{host}/"))
        .expect("a validated registry host always forms a URL")
}

/// A repository on a registry, with the credentials to use for it. Requests sent through it
/// are authenticated; a 401 triggers the challenge flow once.
#[derive(Debug)]
pub struct Repository {
    client: Arc<Client>,
    registry: String,
    base: reqwest::Url,
    repository: String,
    credentials: Credentials,
    authorization: Mutex<Option<Secret>>,
}

impl Repository {
    /// The registry host.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The client this handle sends through.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// `BASE/v2/REPOSITORY/KIND/REFERENCE`.
    pub fn url(&self, kind: &str, reference: &str) -> reqwest::Url {
        self.base
            .join(&format!("v2/{}/{kind}/{reference}", self.repository))
            .expect("repository paths and references are validated before use")
    }

    /// Whether `url` is on this registry's host, so that credentials may be sent to it.
    pub fn same_origin(&self, url: &reqwest::Url) -> bool {
        url.scheme() == self.base.scheme()
            && url.host_str() == self.base.host_str()
            && url.port_or_known_default() == self.base.port_or_known_default()
    }

    fn current_authorization(&self) -> Option<Secret> {
        self.authorization
            .lock()
            .expect("authorization lock is never poisoned")
            .clone()
    }

    /// Sends `GET url` to this registry's mirrors in order, without credentials (they are
    /// the upstream's); the first success answers. `None` when none did. A mirror without
    /// `resolve` is sent manifests and blobs by digest only, never a tag.
    async fn get_from_mirrors(
        &self,
        url: &reqwest::Url,
        headers: &[(header::HeaderName, String)],
    ) -> Option<reqwest::Response> {
        let mirrors = self
            .client
            .mirrors
            .get(&self.registry)
            .or_else(|| self.client.mirrors.get("*"))?;
        for m in mirrors.iter().filter(|m| m.may_serve(url)) {
            let Some(mirror_url) = m.rewrite(url) else {
                continue;
            };
            let key = format!("{}|{}", self.registry, m.base);
            if !self.client.mirror_backoff.available(&key, Instant::now()) {
                continue;
            }
            let mut req = self.client.http_for(&mirror_url).get(mirror_url.clone());
            for (k, v) in headers {
                req = req.header(k, v);
            }
            for (k, v) in &m.headers {
                req = req.header(k, v);
            }
            let error = match req.send().await {
                Ok(r) if !r.status().is_server_error() => {
                    if self.client.mirror_backoff.succeeded(&key) {
                        tracing::info!(mirror = %display_url(&m.base), registry = %self.registry, "mirror answers again; using it");
                    }
                    if r.status().is_success() {
                        tracing::debug!(mirror = %display_url(&m.base), url = %display_url(&mirror_url), "served by mirror");
                        return Some(r);
                    }
                    tracing::debug!(mirror = %display_url(&m.base), status = %r.status(), "mirror could not serve; trying the next");
                    continue;
                }
                Ok(r) => format!("answered {}", r.status()),
                Err(e) => chain(&e),
            };
            match self.client.mirror_backoff.failed(&key, Instant::now()) {
                backoff::Failed::Paused(pause) => tracing::warn!(
                    mirror = %display_url(&m.base),
                    registry = %self.registry,
                    error = %error,
                    "mirror failed; skipping it for {}s",
                    pause.as_secs()
                ),
                backoff::Failed::Extended(pause) => tracing::debug!(
                    mirror = %display_url(&m.base),
                    error = %error,
                    "mirror failed again; skipping it for {}s",
                    pause.as_secs()
                ),
                backoff::Failed::AlreadyPaused => {
                    tracing::debug!(mirror = %display_url(&m.base), error = %error, "mirror unreachable");
                }
            }
        }
        None
    }

    /// Sends `GET url` with `headers`, through the registry's mirrors first, then to the
    /// registry, authenticating as needed. Non-success statuses other than 401 are returned as
    /// responses for the caller to interpret.
    pub async fn get(
        &self,
        url: &reqwest::Url,
        headers: &[(header::HeaderName, String)],
    ) -> Result<reqwest::Response> {
        if self.same_origin(url)
            && let Some(response) = self.get_from_mirrors(url, headers).await
        {
            return Ok(response);
        }
        let send = |auth: Option<HeaderValue>| {
            let mut req = self.client.http_for(url).get(url.clone());
            for (k, v) in headers {
                req = req.header(k, v);
            }
            if let Some(auth) = auth {
                req = req.header(header::AUTHORIZATION, auth);
            }
            req.send()
        };
        let sent = self.current_authorization();
        let value = sent.as_ref().map(|a| self.header_value(a)).transpose()?;
        let response = send(value).await.map_err(transport(url))?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        let challenge = response
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let Some(challenge) = challenge else {
            return Err(self.unauthenticated("401 without a WWW-Authenticate challenge"));
        };
        let challenge = Challenge::parse(&challenge).map_err(|source| Error::Challenge {
            registry: self.registry.clone(),
            source,
        })?;
        // A token from the cache may have been revoked or expired early at the registry: on a
        // 401 it is replaced once by a new one. A 401 to a token just fetched is final.
        let mut refused = sent;
        for _ in 0..3 {
            let (auth, fresh) = self.authorize(&challenge, refused.as_ref()).await?;
            // Checked before it is kept, so a value that cannot be sent is never reused.
            let value = self.header_value(&auth)?;
            *self
                .authorization
                .lock()
                .expect("authorization lock is never poisoned") = Some(auth.clone());
            let response = send(Some(value)).await.map_err(transport(url))?;
            if response.status() != StatusCode::UNAUTHORIZED {
                return Ok(response);
            }
            if fresh {
                break;
            }
            tracing::debug!(registry = %self.registry, "cached token refused; fetching a new one");
            refused = Some(auth);
        }
        Err(self.unauthenticated("credentials were refused"))
    }

    /// `GET /v2/` with this handle's credentials, through the challenge flow (a token without
    /// a repository scope when the handle has no repository): a connectivity and credentials
    /// check.
    pub async fn ping(&self) -> Result<()> {
        let url = self
            .base
            .join("v2/")
            .expect("a base URL always takes a relative path");
        let response = self.get(&url, &[]).await?;
        if response.status().is_success() {
            return Ok(());
        }
        Err(Error::Status {
            url: display_url(&url),
            status: response.status(),
            detail: String::new(),
        })
    }

    /// `auth` as a sensitive header value (kept out of HTTP/2 header compression tables and
    /// `Debug`), or [`Error::BadAuthorization`].
    fn header_value(&self, auth: &Secret) -> Result<HeaderValue> {
        let mut value =
            HeaderValue::from_str(auth.expose()).map_err(|_| Error::BadAuthorization {
                registry: self.registry.clone(),
            })?;
        value.set_sensitive(true);
        Ok(value)
    }

    fn unauthenticated(&self, detail: &str) -> Error {
        Error::Unauthenticated {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            detail: detail.to_owned(),
        }
    }

    /// The `Authorization` value answering `challenge`, and whether it is new rather than a
    /// cached token. A cached token equal to `refused`, the one the registry just answered 401
    /// to (expired early, revoked, its key rotated), is not reused: a new one is fetched.
    async fn authorize(
        &self,
        challenge: &Challenge,
        refused: Option<&Secret>,
    ) -> Result<(Secret, bool)> {
        use base64::Engine as _;
        match (challenge, &self.credentials) {
            (Challenge::Basic, Credentials::Basic { username, password }) => {
                let raw = format!("{username}:{}", password.expose());
                Ok((
                    Secret::new(format!(
                        "Basic {}",
                        base64::engine::general_purpose::STANDARD.encode(raw)
                    )),
                    true,
                ))
            }
            (Challenge::Basic, _) => {
                Err(self.unauthenticated("registry asks for a user name and password"))
            }
            (Challenge::Bearer { .. }, Credentials::RegistryToken(token)) => {
                Ok((Secret::new(format!("Bearer {}", token.expose())), true))
            }
            (
                Challenge::Bearer {
                    realm,
                    service,
                    scope,
                },
                credentials,
            ) => {
                let scope = scope.clone().or_else(|| {
                    (!self.repository.is_empty())
                        .then(|| format!("repository:{}:pull", self.repository))
                });
                let cache_key = format!(
                    "{}|{}",
                    scope.as_deref().unwrap_or_default(),
                    credential_identity(credentials)
                );
                if let Some(token) = self.client.tokens.get(&self.registry, &cache_key) {
                    let auth = Secret::new(format!("Bearer {}", token.expose()));
                    if Some(&auth) != refused {
                        return Ok((auth, false));
                    }
                }
                let (token, lifetime) = self
                    .fetch_token(realm, service.as_deref(), scope.as_deref())
                    .await?;
                self.client
                    .tokens
                    .put(&self.registry, &cache_key, token.clone(), lifetime);
                Ok((Secret::new(format!("Bearer {}", token.expose())), true))
            }
        }
    }

    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: Option<&str>,
    ) -> Result<(Secret, Duration)> {
        let url = reqwest::Url::parse(realm).map_err(|_| Error::Challenge {
            registry: self.registry.clone(),
            source: auth::ChallengeError::Malformed(realm.to_owned()),
        })?;
        let mut params: Vec<(&str, &str)> = scope.map(|s| ("scope", s)).into_iter().collect();
        if let Some(service) = service {
            params.push(("service", service));
        }
        let request = match &self.credentials {
            // Docker's identity token is an OAuth2 refresh token (token spec, oauth.md).
            Credentials::IdentityToken(refresh) => {
                params.extend([
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh.expose()),
                    ("client_id", "hoist"),
                ]);
                self.client.http_for(&url).post(url.clone()).form(&params)
            }
            Credentials::Basic { username, password } => self
                .client
                .http_for(&url)
                .get(url.clone())
                .query(&params)
                .basic_auth(username, Some(password.expose())),
            _ => self.client.http_for(&url).get(url.clone()).query(&params),
        };
        let response = request.send().await.map_err(transport(&url))?;
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(self.unauthenticated(&format!(
                "token service {} answered {status}",
                display_url(&url)
            )));
        }
        if !status.is_success() {
            return Err(Error::Status {
                url: display_url(&url),
                status,
                detail: String::new(),
            });
        }
        let body: TokenResponse = response.json().await.map_err(transport(&url))?;
        body.into_token()
            .ok_or_else(|| self.unauthenticated("token service answered without a token"))
    }
}

/// Which credentials a cached token belongs to, without the secret: tokens obtained with
/// different credentials must not be shared.
fn credential_identity(c: &Credentials) -> String {
    use sha2::Digest as _;
    match c {
        Credentials::Anonymous => "anonymous".into(),
        Credentials::Basic { username, password } => {
            let h = sha2::Sha256::digest(format!("{username}\0{}", password.expose()));
            format!("basic:{username}:{}", hex::encode(&h[..8]))
        }
        Credentials::IdentityToken(t) | Credentials::RegistryToken(t) => {
            let h = sha2::Sha256::digest(t.expose());
            format!("token:{}", hex::encode(&h[..8]))
        }
    }
}
