//! A token issuer for a docker-registry in token-auth mode (distribution's `auth: token:` with
//! `realm`, `service`, `issuer` and `rootcertbundle`), as in the distribution token spec
//! (`docs/spec/auth/token.md`, `jwt.md`): `GET /token?service=…&scope=…` with Basic
//! credentials answers `{"token", "access_token", "expires_in"}`, a JWT signed ES256 with a
//! key whose self-signed certificate is the registry's root bundle. The certificate travels in
//! the token's `x5c` header, which distribution verifies against that bundle.
//!
//! It runs on a thread of its own with its own runtime (like [`crate::proxy`]), so that tests
//! can run skopeo, which blocks, while it serves; dropping the [`TokenIssuer`] stops it. It
//! grants every action asked for to the one user it knows, counts requests, records scopes,
//! and can rotate its key, after which a registry restarted with the new certificate refuses
//! the tokens issued before.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;

use crate::Kind;

/// Failures starting an issuer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listening socket could not be made.
    #[error("token issuer: listening on 127.0.0.1: {source}")]
    Listen {
        /// What the operating system said.
        source: std::io::Error,
    },
    /// Its runtime or thread could not be started.
    #[error("token issuer: starting its runtime: {source}")]
    Runtime {
        /// What failed.
        source: std::io::Error,
    },
    /// The signing key or its certificate could not be made.
    #[error("token issuer: making the signing key: {source}")]
    Key {
        /// What failed.
        source: rcgen::Error,
    },
    /// The signing key could not be loaded for signing.
    #[error("token issuer: loading the signing key: {source}")]
    Sign {
        /// What failed.
        source: jsonwebtoken::errors::Error,
    },
}

impl Error {
    /// The kind of failure.
    pub fn kind(&self) -> Kind {
        match self {
            Error::Listen { .. } | Error::Runtime { .. } => Kind::Unavailable,
            Error::Key { .. } | Error::Sign { .. } => Kind::Internal,
        }
    }
}

/// Results of this module.
pub type Result<T> = std::result::Result<T, Error>;

/// Who may get tokens, and what the tokens say.
#[derive(Clone)]
pub struct Options {
    /// The one user name accepted.
    pub username: String,
    /// Its password.
    pub password: String,
    /// The registry's `service` (the tokens' audience).
    pub service: String,
    /// The tokens' `iss`, the registry's `issuer`.
    pub issuer: String,
    /// How long tokens are good for (`exp`, and `expires_in` in the answer).
    pub lifetime: Duration,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("service", &self.service)
            .field("issuer", &self.issuer)
            .field("lifetime", &self.lifetime)
            .finish()
    }
}

/// What the issuer has done so far.
#[derive(Debug, Default)]
pub struct Stats {
    /// Token requests received.
    pub requests: AtomicU64,
    /// Requests refused for missing or wrong credentials.
    pub refused: AtomicU64,
    scopes: Mutex<Vec<String>>,
}

impl Stats {
    /// Every `scope` parameter received, in order.
    pub fn scopes(&self) -> Vec<String> {
        self.scopes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

/// The signing key, its certificate in PEM, and that certificate as an `x5c` entry.
struct Signer {
    key: jsonwebtoken::EncodingKey,
    certificate: String,
    x5c: String,
}

impl Signer {
    fn new() -> Result<Signer> {
        let certified = rcgen::generate_simple_self_signed(vec!["hoist-token-issuer".to_owned()])
            .map_err(|source| Error::Key { source })?;
        let key = jsonwebtoken::EncodingKey::from_ec_pem(
            certified.signing_key.serialize_pem().as_bytes(),
        )
        .map_err(|source| Error::Sign { source })?;
        Ok(Signer {
            key,
            certificate: certified.cert.pem(),
            x5c: base64::engine::general_purpose::STANDARD.encode(certified.cert.der()),
        })
    }
}

struct Shared {
    options: Options,
    signer: Mutex<Arc<Signer>>,
    issued: AtomicU64,
    stats: Stats,
}

impl Shared {
    fn signer(&self) -> Arc<Signer> {
        Arc::clone(
            &self
                .signer
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        )
    }
}

/// A running issuer. Dropping it stops it.
pub struct TokenIssuer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("addr", &self.addr)
            .field("options", &self.shared.options)
            .finish_non_exhaustive()
    }
}

impl TokenIssuer {
    /// Makes a signing key and its certificate, and serves on 127.0.0.1 (a free port).
    pub fn start(options: Options) -> Result<TokenIssuer> {
        let signer = Signer::new()?;
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .map_err(|source| Error::Listen { source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| Error::Listen { source })?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("hoist-token-issuer")
            .enable_all()
            .build()
            .map_err(|source| Error::Runtime { source })?;
        let shared = Arc::new(Shared {
            options,
            signer: Mutex::new(Arc::new(signer)),
            issued: AtomicU64::new(0),
            stats: Stats::default(),
        });
        let app = axum::Router::new()
            .route("/token", axum::routing::get(token))
            .with_state(Arc::clone(&shared));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("hoist-token-issuer".to_owned())
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        return;
                    };
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(async {
                            let _ = stopped.await;
                        })
                        .await;
                });
                runtime.shutdown_timeout(Duration::from_millis(200));
            })
            .map_err(|source| Error::Runtime { source })?;
        Ok(TokenIssuer {
            addr,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The token endpoint, the registry's `realm`.
    pub fn realm(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    /// The PEM certificate of the signing key, the registry's `rootcertbundle`.
    pub fn certificate_pem(&self) -> String {
        self.shared.signer().certificate.clone()
    }

    /// Signs from now on with a new key (and certificate): a registry that trusts only the new
    /// certificate refuses the tokens issued before, as after a key rotation or a revocation.
    pub fn rotate_key(&self) -> Result<()> {
        let signer = Signer::new()?;
        *self
            .shared
            .signer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(signer);
        Ok(())
    }

    /// What it has done so far.
    pub fn stats(&self) -> &Stats {
        &self.shared.stats
    }

    /// Token requests so far.
    pub fn requests(&self) -> u64 {
        self.shared.stats.requests.load(Ordering::Relaxed)
    }
}

impl Drop for TokenIssuer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[derive(serde::Serialize)]
struct Access {
    #[serde(rename = "type")]
    kind: String,
    name: String,
    actions: Vec<String>,
}

#[derive(serde::Serialize)]
struct Claims {
    iss: String,
    sub: String,
    aud: String,
    exp: u64,
    nbf: u64,
    iat: u64,
    jti: String,
    access: Vec<Access>,
}

/// `TYPE:NAME:ACTION[,ACTION]` (the name may hold `:` only in a registry-qualified form,
/// which this issuer does not see).
fn parse_scope(scope: &str) -> Option<Access> {
    let (kind, rest) = scope.split_once(':')?;
    let (name, actions) = rest.rsplit_once(':')?;
    Some(Access {
        kind: kind.to_owned(),
        name: name.to_owned(),
        actions: actions.split(',').map(str::to_owned).collect(),
    })
}

fn authorized(options: &Options, headers: &HeaderMap) -> bool {
    let Some(basic) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
    else {
        return false;
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(basic.trim()) else {
        return false;
    };
    decoded == format!("{}:{}", options.username, options.password).as_bytes()
}

async fn token(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    let stats = &shared.stats;
    stats.requests.fetch_add(1, Ordering::Relaxed);
    let options = &shared.options;
    if !authorized(options, &headers) {
        stats.refused.fetch_add(1, Ordering::Relaxed);
        return (StatusCode::UNAUTHORIZED, "credentials required").into_response();
    }
    let mut access = Vec::new();
    for (k, v) in &params {
        if k == "scope" {
            stats
                .scopes
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .push(v.clone());
            access.extend(parse_scope(v));
        }
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (iat, exp) = (now, now + options.lifetime.as_secs());
    let serial = shared.issued.fetch_add(1, Ordering::Relaxed);
    let claims = Claims {
        iss: options.issuer.clone(),
        sub: options.username.clone(),
        aud: options.service.clone(),
        exp,
        nbf: iat,
        iat,
        jti: format!("{now}-{serial}"),
        access,
    };
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    let signer = shared.signer();
    header.x5c = Some(vec![signer.x5c.clone()]);
    let Ok(jwt) = jsonwebtoken::encode(&header, &claims, &signer.key) else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "signing failed").into_response();
    };
    axum::Json(serde_json::json!({
        "token": jwt,
        "access_token": jwt,
        "expires_in": options.lifetime.as_secs(),
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_name_type_repository_and_actions() {
        let a = parse_scope("repository:tok/app:pull,push").unwrap();
        assert_eq!(
            (a.kind.as_str(), a.name.as_str()),
            ("repository", "tok/app")
        );
        assert_eq!(a.actions, ["pull", "push"]);
        assert!(parse_scope("nonsense").is_none());
    }
}
