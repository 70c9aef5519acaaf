//! Choosing the credentials for one image pulled for one pod, in the order of issue 5:
//! the pod's `hoist.dev/connector` annotation → kubelet's credentials (imagePullSecrets) → the
//! first matching `[[route]]` → `default_connector` → anonymous. A connector is only ever
//! taken from the pod's own chain (account, its org, its project): naming one outside it is
//! `PermissionDenied`, never a silent fallback to another connector.

use std::sync::Arc;

use super::aws::Tokens;
use super::config::{Error as ConfigError, RouteConfig, route_ref};
use super::connector::Connector;
use super::metrics::{Labels, Metrics};
use super::scope::{ConnectorRef, PodContext};
use super::secret::Environment;
use super::tenant::Tenants;
use super::{Settings, scope};
use crate::Reference;
use crate::error::Kind;
use crate::registry::Credentials;

/// Why no credentials could be chosen for an image.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The pod's `hoist.dev/connector` annotation is malformed.
    #[error("pod annotation hoist.dev/connector: {0}")]
    BadAnnotation(scope::Error),
    /// The connector is not in the pod's chain.
    #[error("connector {connector} is not available to pods in {pod}: {reason}")]
    PermissionDenied {
        /// The connector as named.
        connector: String,
        /// The pod's scope.
        pod: String,
        /// Why.
        reason: &'static str,
    },
    /// No connector of that name anywhere.
    #[error("connector {connector} does not exist (pod in {pod})")]
    NotFound {
        /// The connector as named.
        connector: String,
        /// The pod's scope.
        pod: String,
    },
    /// The credential service refused the connector's credentials.
    #[error("connector {connector}: registry {registry}: credentials refused: {detail}")]
    Unauthenticated {
        /// The connector.
        connector: String,
        /// The registry.
        registry: String,
        /// What the service said (never a secret).
        detail: String,
    },
    /// The connector's credentials could not be read or fetched.
    #[error("connector {connector}: registry {registry}: {detail}")]
    Unavailable {
        /// The connector.
        connector: String,
        /// The registry.
        registry: String,
        /// Why (never a secret).
        detail: String,
    },
}

impl ResolveError {
    /// The kind of failure, for the API edges (gRPC code, exit status).
    pub fn kind(&self) -> Kind {
        match self {
            ResolveError::BadAnnotation(_) => Kind::InvalidArgument,
            ResolveError::PermissionDenied { .. } => Kind::PermissionDenied,
            ResolveError::NotFound { .. } => Kind::NotFound,
            ResolveError::Unauthenticated { .. } => Kind::Unauthenticated,
            ResolveError::Unavailable { .. } => Kind::Unavailable,
        }
    }

    fn outcome(&self) -> &'static str {
        match self.kind() {
            Kind::PermissionDenied => "permission_denied",
            Kind::NotFound => "not_found",
            Kind::Unauthenticated => "unauthenticated",
            Kind::InvalidArgument => "invalid",
            _ => "error",
        }
    }
}

/// Which precedence level decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// 1: the pod's `hoist.dev/connector` annotation.
    Annotation,
    /// 2: credentials kubelet sent with the request.
    Kubelet,
    /// 3: a `[[route]]`, by position.
    Route(usize),
    /// 4: `default_connector`.
    Default,
    /// 5: nothing applied.
    Anonymous,
}

impl Source {
    /// For logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Annotation => "annotation",
            Source::Kubelet => "kubelet",
            Source::Route(_) => "route",
            Source::Default => "default",
            Source::Anonymous => "anonymous",
        }
    }
}

/// The decision for one image.
#[derive(Debug, Clone)]
pub struct Resolution {
    /// What to pull with.
    pub credentials: Credentials,
    /// Which level decided.
    pub source: Source,
    /// The connector, for levels 1, 3 and 4.
    pub connector: Option<Arc<Connector>>,
}

impl Resolution {
    /// `connector account.hub (DockerRegistry)`, `kubelet credentials` or `anonymous`, for
    /// error messages.
    pub fn describe(&self) -> String {
        match (&self.connector, self.source) {
            (Some(c), _) => format!("connector {c} ({})", c.kind),
            (None, Source::Kubelet) => "kubelet credentials".into(),
            _ => "anonymous".into(),
        }
    }
}

#[derive(Debug, Clone)]
struct Route {
    registry: String,
    repository: Option<String>,
    connector: ConnectorRef,
}

impl Route {
    fn matches(&self, image: &Reference) -> bool {
        let registry = match self.registry.strip_prefix("*.") {
            Some(suffix) => image
                .registry()
                .strip_suffix(suffix)
                .is_some_and(|head| head.ends_with('.') && head.len() > 1),
            None => image.registry() == self.registry,
        };
        registry
            && match &self.repository {
                None => true,
                Some(p) => match p.strip_suffix('*') {
                    Some(prefix) => image.repository().starts_with(prefix),
                    None => image.repository() == p,
                },
            }
    }
}

/// Resolves credentials per image. Immutable: a config reload builds a new one (sharing the
/// metrics and the ECR token cache).
#[derive(Debug)]
pub struct Resolver {
    connectors: Vec<Arc<Connector>>,
    routes: Vec<Route>,
    default: Option<ConnectorRef>,
    tenants: Tenants,
    env: Environment,
    metrics: Arc<Metrics>,
    tokens: Arc<Tokens>,
}

impl Resolver {
    /// Checks `settings` and builds a resolver.
    pub fn new(
        settings: &Settings,
        env: Environment,
        metrics: Arc<Metrics>,
        tokens: Arc<Tokens>,
    ) -> Result<Resolver, ConfigError> {
        let mut connectors: Vec<Arc<Connector>> = Vec::new();
        for c in &settings.connectors {
            let c = Connector::from_config(c)?;
            if connectors
                .iter()
                .any(|o| o.id == c.id && o.scope == c.scope)
            {
                return Err(ConfigError::Duplicate {
                    id: c.id,
                    scope: c.scope,
                });
            }
            connectors.push(Arc::new(c));
        }
        let routes = settings
            .routes
            .iter()
            .enumerate()
            .map(|(i, r)| check_route(i, r))
            .collect::<Result<Vec<_>, _>>()?;
        let default = settings
            .default_connector
            .as_deref()
            .map(|d| {
                d.parse().map_err(|source| ConfigError::Scope {
                    connector: "default_connector".into(),
                    source,
                })
            })
            .transpose()?;
        let tenants = Tenants::new(&settings.tenants, settings.trust_pod_labels)?;
        Ok(Resolver {
            connectors,
            routes,
            default,
            tenants,
            env,
            metrics,
            tokens,
        })
    }

    /// The tenants: which org and project a pod's namespace (or, when trusted, its labels)
    /// gives it.
    pub fn tenants(&self) -> &Tenants {
        &self.tenants
    }

    /// Every connector, in config order.
    pub fn connectors(&self) -> &[Arc<Connector>] {
        &self.connectors
    }

    /// The decision counters.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The ECR token cache, to hand to the next resolver on reload.
    pub fn tokens(&self) -> &Arc<Tokens> {
        &self.tokens
    }

    /// `connector`'s credentials, read or fetched now (for `hoist connectors check`).
    pub async fn credentials(&self, connector: &Connector) -> Result<Credentials, ResolveError> {
        connector
            .credentials(&self.env, &self.tokens, &self.metrics)
            .await
            .map_err(|e| credentials_error(connector, e))
    }

    /// The connector `reference` names for `pod`, within the pod's chain only.
    pub fn lookup(
        &self,
        reference: &ConnectorRef,
        pod: &PodContext,
    ) -> Result<Arc<Connector>, ResolveError> {
        let denied = |reason| ResolveError::PermissionDenied {
            connector: reference.to_string(),
            pod: pod.describe(),
            reason,
        };
        let Some(scope) = pod.scope(reference.level) else {
            return Err(denied(match reference.level {
                scope::Level::Org => "the pod's tenant has no organisation",
                _ => "the pod's tenant has no project",
            }));
        };
        if let Some(c) = self
            .connectors
            .iter()
            .find(|c| c.scope == scope && c.id == reference.id)
        {
            // By construction; kept as a guard so no future change can hand out another
            // scope's connector.
            return if pod.can_see(&c.scope) {
                Ok(Arc::clone(c))
            } else {
                Err(denied("outside the pod's scope"))
            };
        }
        if self.connectors.iter().any(|c| c.id == reference.id) {
            Err(denied("it is defined only in other scopes"))
        } else {
            Err(ResolveError::NotFound {
                connector: reference.to_string(),
                pod: pod.describe(),
            })
        }
    }

    /// Chooses the credentials for `image` pulled for `pod`; `kubelet` holds the credentials
    /// from the CRI request's `AuthConfig`, if any. Logs and counts the decision.
    pub async fn resolve(
        &self,
        image: &Reference,
        pod: &PodContext,
        kubelet: Option<Credentials>,
    ) -> Result<Resolution, ResolveError> {
        let kubelet = kubelet.filter(|k| *k != Credentials::Anonymous);
        let (source, connector) = match self.decide(image, pod, kubelet.is_some()) {
            Ok(d) => d,
            Err(e) => {
                self.record(image, pod, None, None, e.outcome(), Some(&e));
                return Err(e);
            }
        };
        let credentials = match (&connector, source) {
            (Some(c), _) => match c.credentials(&self.env, &self.tokens, &self.metrics).await {
                Ok(creds) => creds,
                Err(e) => {
                    let e = credentials_error(c, e);
                    self.record(image, pod, Some(c), Some(source), e.outcome(), Some(&e));
                    return Err(e);
                }
            },
            (None, Source::Kubelet) => kubelet.unwrap_or_default(),
            (None, _) => Credentials::Anonymous,
        };
        self.record(image, pod, connector.as_ref(), Some(source), "ok", None);
        Ok(Resolution {
            credentials,
            source,
            connector,
        })
    }

    fn decide(
        &self,
        image: &Reference,
        pod: &PodContext,
        has_kubelet: bool,
    ) -> Result<(Source, Option<Arc<Connector>>), ResolveError> {
        if let Some(raw) = &pod.connector {
            let reference: ConnectorRef = raw.parse().map_err(ResolveError::BadAnnotation)?;
            let c = self.lookup(&reference, pod)?;
            if c.serves(image) {
                return Ok((Source::Annotation, Some(c)));
            }
            // The pod's connector is for another registry (a sidecar from Docker Hub, say):
            // its credentials must not go there; the other levels decide.
            tracing::debug!(image = %image, connector = %c, "pod connector does not serve this registry");
        }
        if has_kubelet {
            return Ok((Source::Kubelet, None));
        }
        if let Some((i, route)) = self
            .routes
            .iter()
            .enumerate()
            .find(|(_, r)| r.matches(image))
        {
            return Ok((Source::Route(i), Some(self.lookup(&route.connector, pod)?)));
        }
        if let Some(d) = &self.default {
            let c = self.lookup(d, pod)?;
            if c.serves(image) {
                return Ok((Source::Default, Some(c)));
            }
        }
        Ok((Source::Anonymous, None))
    }

    fn record(
        &self,
        image: &Reference,
        pod: &PodContext,
        connector: Option<&Arc<Connector>>,
        source: Option<Source>,
        outcome: &'static str,
        error: Option<&ResolveError>,
    ) {
        let source = source.map_or("-", Source::as_str);
        let labels = Labels {
            connector: match connector {
                Some(c) => c.to_string(),
                None if source == "kubelet" || source == "anonymous" => source.to_owned(),
                None => pod.connector.clone().unwrap_or_else(|| "-".into()),
            },
            scope: connector.map_or("-".into(), |c| c.scope.to_string()),
            kind: connector.map_or("-".into(), |c| c.kind.to_string()),
            source,
            outcome,
        };
        match error {
            None => tracing::info!(
                image = %image, pod = %pod.describe(), connector = %labels.connector,
                scope = %labels.scope, r#type = %labels.kind, source, "credentials chosen"
            ),
            Some(e) => tracing::warn!(
                image = %image, pod = %pod.describe(), outcome, error = %e, "no credentials"
            ),
        }
        self.metrics.record(labels);
    }
}

fn credentials_error(c: &Connector, e: super::connector::CredentialsError) -> ResolveError {
    let refused = matches!(&e, super::connector::CredentialsError::Aws(a) if a.is_refusal());
    let (connector, registry, detail) = (c.to_string(), c.registry(), e.to_string());
    if refused {
        ResolveError::Unauthenticated {
            connector,
            registry,
            detail,
        }
    } else {
        ResolveError::Unavailable {
            connector,
            registry,
            detail,
        }
    }
}

fn check_route(index: usize, r: &RouteConfig) -> Result<Route, ConfigError> {
    let bad = |problem: &str| ConfigError::Route {
        index,
        problem: problem.to_owned(),
    };
    let host = r.registry.strip_prefix("*.").unwrap_or(&r.registry);
    if host.is_empty() || host.contains('/') || host.contains('*') {
        return Err(bad("registry must be HOST[:PORT] or *.SUFFIX"));
    }
    if let Some(p) = &r.repository
        && (p.is_empty() || p.trim_end_matches('*').contains('*'))
    {
        return Err(bad("repository must be a path, optionally ending in *"));
    }
    Ok(Route {
        registry: r.registry.clone(),
        repository: r.repository.clone(),
        connector: route_ref(index, &r.connector)?,
    })
}
