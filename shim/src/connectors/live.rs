//! The resolver in use, swapped whole on config reload. A pull takes an `Arc` of the resolver
//! when it starts and keeps it, so a reload never changes the credentials of a pull in flight.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use super::resolve::Resolver;
use super::secret::Environment;
use super::{Settings, config};

/// The current resolver.
#[derive(Debug)]
pub struct Live {
    current: RwLock<Arc<Resolver>>,
    env: Environment,
}

impl Live {
    /// Starts with `settings`.
    pub fn new(settings: &Settings, env: Environment) -> Result<Live, config::Error> {
        let resolver = Resolver::new(
            settings,
            env.clone(),
            Default::default(),
            Default::default(),
        )?;
        Ok(Live {
            current: RwLock::new(Arc::new(resolver)),
            env,
        })
    }

    /// The resolver to use for one pull.
    pub fn get(&self) -> Arc<Resolver> {
        Arc::clone(
            &self
                .current
                .read()
                .expect("resolver lock is never poisoned"),
        )
    }

    /// Replaces the resolver with one built from `settings`, keeping the metrics and the ECR
    /// token cache. An invalid config is rejected and the old resolver stays.
    pub fn reload(&self, settings: &Settings) -> Result<(), config::Error> {
        let old = self.get();
        let new = Resolver::new(
            settings,
            self.env.clone(),
            Arc::clone(old.metrics()),
            Arc::clone(old.tokens()),
        )?;
        *self
            .current
            .write()
            .expect("resolver lock is never poisoned") = Arc::new(new);
        tracing::info!(
            connectors = settings.connectors.len(),
            routes = settings.routes.len(),
            tenants = settings.tenants.len(),
            "connectors reloaded"
        );
        Ok(())
    }
}

impl Live {
    /// Reloads the connector keys from the config file at `path`; `why` is logged. An
    /// invalid file is rejected, logged, and the old resolver stays.
    pub fn reload_from(&self, path: &Path, why: &str) -> Result<(), crate::config::Error> {
        let result = crate::config::Config::load(Some(path))
            .and_then(|c| Ok(self.reload(&c.connector_settings())?));
        match &result {
            Ok(()) => tracing::info!(path = %path.display(), why, "config reloaded"),
            Err(e) => tracing::error!(
                path = %path.display(), why, error = %e,
                "config rejected; the connectors in use stay"
            ),
        }
        result
    }

    /// Reloads on SIGHUP and whenever the content of `path` changes (checked every
    /// `interval`), until `stop` completes.
    pub async fn watch(
        self: Arc<Self>,
        path: PathBuf,
        interval: Duration,
        stop: impl Future<Output = ()>,
    ) {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangup = match signal(SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "no SIGHUP handler; reloading on file change only");
                None
            }
        };
        let mut last = fingerprint(&path);
        let mut tick = tokio::time::interval(interval);
        tokio::pin!(stop);
        loop {
            let why = tokio::select! {
                () = &mut stop => return,
                Some(()) = async {
                    match &mut hangup {
                        Some(h) => h.recv().await,
                        None => std::future::pending().await,
                    }
                } => "SIGHUP",
                _ = tick.tick() => "file changed",
            };
            let now = fingerprint(&path);
            if why == "file changed" && now == last {
                continue;
            }
            last = now;
            let _ = self.reload_from(&path, why);
        }
    }
}

/// A digest of the file's content, or `None` when it cannot be read.
fn fingerprint(path: &Path) -> Option<Vec<u8>> {
    use sha2::Digest as _;
    std::fs::read(path)
        .ok()
        .map(|b| sha2::Sha256::digest(b).to_vec())
}
