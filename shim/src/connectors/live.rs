//! The resolver in use, swapped whole on config reload. A pull takes an `Arc` of the resolver
//! when it starts and keeps it, so a reload never changes the credentials of a pull in flight.

use std::sync::{Arc, RwLock};

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
            "connectors reloaded"
        );
        Ok(())
    }
}
