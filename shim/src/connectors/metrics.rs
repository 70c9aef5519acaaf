//! Counters of connector decisions, by connector, scope, type, precedence level and outcome,
//! rendered in Prometheus' text format.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// One decision's labels.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Labels {
    /// `account.X`-style connector name, `kubelet` or `anonymous`.
    pub connector: String,
    /// The connector's scope (`account`, `org:NAME`, `project:ORG/NAME`) or `-`.
    pub scope: String,
    /// The connector's type or `-`.
    pub kind: String,
    /// `annotation`, `kubelet`, `route`, `default` or `anonymous`.
    pub source: &'static str,
    /// `ok`, `permission_denied`, `not_found`, `unauthenticated` or `error`.
    pub outcome: &'static str,
}

/// The counters.
#[derive(Debug, Default)]
pub struct Metrics {
    decisions: Mutex<BTreeMap<Labels, u64>>,
    token_fetches: Mutex<BTreeMap<String, u64>>,
}

impl Metrics {
    /// Counts one decision.
    pub fn record(&self, labels: Labels) {
        *self
            .decisions
            .lock()
            .expect("metrics lock is never poisoned")
            .entry(labels)
            .or_default() += 1;
    }

    /// Counts one registry token fetched from a cloud API (ECR's `GetAuthorizationToken`).
    pub fn record_token_fetch(&self, registry: &str) {
        *self
            .token_fetches
            .lock()
            .expect("metrics lock is never poisoned")
            .entry(registry.to_owned())
            .or_default() += 1;
    }

    /// How many decisions had exactly these labels.
    pub fn count(&self, labels: &Labels) -> u64 {
        self.decisions
            .lock()
            .expect("metrics lock is never poisoned")
            .get(labels)
            .copied()
            .unwrap_or(0)
    }

    /// How many tokens were fetched for `registry`.
    pub fn token_fetches(&self, registry: &str) -> u64 {
        self.token_fetches
            .lock()
            .expect("metrics lock is never poisoned")
            .get(registry)
            .copied()
            .unwrap_or(0)
    }

    /// Every counter in Prometheus' text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::from("# TYPE hoist_connector_decisions_total counter\n");
        for (l, n) in self
            .decisions
            .lock()
            .expect("metrics lock is never poisoned")
            .iter()
        {
            out.push_str(&format!(
                "hoist_connector_decisions_total{{connector=\"{}\",scope=\"{}\",type=\"{}\",source=\"{}\",outcome=\"{}\"}} {n}\n",
                l.connector, l.scope, l.kind, l.source, l.outcome
            ));
        }
        out.push_str("# TYPE hoist_registry_token_fetches_total counter\n");
        for (r, n) in self
            .token_fetches
            .lock()
            .expect("metrics lock is never poisoned")
            .iter()
        {
            out.push_str(&format!(
                "hoist_registry_token_fetches_total{{registry=\"{r}\"}} {n}\n"
            ));
        }
        out
    }
}
