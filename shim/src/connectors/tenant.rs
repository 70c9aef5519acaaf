//! Tenants: which organisation and project a pod belongs to, taken from what kubelet sends and
//! the operator controls, the pod's namespace (`PodSandboxConfig.metadata.namespace`), mapped
//! by `[[tenant]]` tables. The pod's own `hoist.dev/org` and `hoist.dev/project` labels and
//! annotations, which the pod's author writes, choose the tenant only when the operator sets
//! `trust_pod_labels = true` (and enforces them with an admission policy, README "Connectors").

use std::collections::HashMap;

use serde::Deserialize;

use super::config::Error;
use super::scope::{self, ANNOTATION_CONNECTOR, PodContext, valid_name};

/// One `[[tenant]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// The Kubernetes namespace: exact (`team-a`), or a prefix ending in `*` (`team-a-*`; `*`
    /// alone is every namespace).
    pub namespace: String,
    /// The organisation of the pods in it.
    pub org: String,
    /// Their project within `org`. Default: none (org scope only).
    pub project: Option<String>,
}

/// A checked `[[tenant]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Tenant {
    /// The namespace, or the prefix when `prefix` is set.
    namespace: String,
    prefix: bool,
    org: String,
    project: Option<String>,
}

impl Tenant {
    fn matches(&self, namespace: &str) -> bool {
        match self.prefix {
            true => namespace.starts_with(&self.namespace),
            false => namespace == self.namespace,
        }
    }

    /// Exact beats any prefix; a longer prefix beats a shorter one.
    fn specificity(&self) -> (bool, usize) {
        (!self.prefix, self.namespace.len())
    }
}

/// The namespace → tenant map and whether pod labels may override it.
#[derive(Debug, Clone, Default)]
pub struct Tenants {
    tenants: Vec<Tenant>,
    trust_pod_labels: bool,
}

impl Tenants {
    /// Checks the `[[tenant]]` tables: namespace patterns are Kubernetes namespace names
    /// (`[a-z0-9-]`) with an optional trailing `*`, each written once; org and project are
    /// scope names.
    pub fn new(configs: &[TenantConfig], trust_pod_labels: bool) -> Result<Tenants, Error> {
        let mut tenants: Vec<Tenant> = Vec::new();
        for (index, c) in configs.iter().enumerate() {
            let problem = |problem: String| Error::Tenant { index, problem };
            let (namespace, prefix) = match c.namespace.strip_suffix('*') {
                Some(p) => (p, true),
                None => (c.namespace.as_str(), false),
            };
            let namespace_ok = namespace
                .chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-');
            if !namespace_ok || (namespace.is_empty() && !prefix) {
                return Err(problem(format!(
                    "namespace {:?}: expected a namespace name, or a prefix ending in *",
                    c.namespace
                )));
            }
            if !valid_name(&c.org) {
                return Err(problem(format!("org {:?}: expected [A-Za-z0-9_-]+", c.org)));
            }
            if let Some(p) = &c.project
                && !valid_name(p)
            {
                return Err(problem(format!("project {p:?}: expected [A-Za-z0-9_-]+")));
            }
            let tenant = Tenant {
                namespace: namespace.to_owned(),
                prefix,
                org: c.org.clone(),
                project: c.project.clone(),
            };
            if tenants
                .iter()
                .any(|t| (&t.namespace, t.prefix) == (&tenant.namespace, tenant.prefix))
            {
                return Err(problem(format!(
                    "namespace {:?} is mapped twice",
                    c.namespace
                )));
            }
            tenants.push(tenant);
        }
        Ok(Tenants {
            tenants,
            trust_pod_labels,
        })
    }

    /// The org and project of `namespace`: the most specific `[[tenant]]` matching it (the
    /// exact one, else the longest prefix), or none (account scope only).
    pub fn of_namespace(&self, namespace: &str) -> (Option<String>, Option<String>) {
        self.tenants
            .iter()
            .filter(|t| t.matches(namespace))
            .max_by_key(|t| t.specificity())
            .map_or((None, None), |t| (Some(t.org.clone()), t.project.clone()))
    }

    /// The context of a pod in `namespace` with these sandbox annotations and labels. The
    /// tenant is the namespace's; with `trust_pod_labels`, a pod that sets `hoist.dev/org` or
    /// `hoist.dev/project` chooses its own instead. The connector annotation is read either way.
    pub fn pod(
        &self,
        namespace: &str,
        annotations: &HashMap<String, String>,
        labels: &HashMap<String, String>,
    ) -> Result<PodContext, scope::Error> {
        let claimed = [scope::LABEL_ORG, scope::LABEL_PROJECT]
            .iter()
            .any(|k| annotations.contains_key(*k) || labels.contains_key(*k));
        if claimed {
            if self.trust_pod_labels {
                return PodContext::from_metadata(annotations, labels);
            }
            tracing::debug!(
                namespace,
                "pod's hoist.dev/org and hoist.dev/project ignored: trust_pod_labels is off"
            );
        }
        let (org, project) = self.of_namespace(namespace);
        Ok(PodContext {
            org,
            project,
            connector: annotations.get(ANNOTATION_CONNECTOR).cloned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(namespace: &str, org: &str, project: Option<&str>) -> TenantConfig {
        TenantConfig {
            namespace: namespace.into(),
            org: org.into(),
            project: project.map(Into::into),
        }
    }

    fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn tenants(trust: bool) -> Tenants {
        Tenants::new(
            &[
                tenant("*", "shared", None),
                tenant("team-*", "acme", None),
                tenant("team-a*", "acme", Some("alpha")),
                tenant("team-b", "acme", Some("beta")),
            ],
            trust,
        )
        .unwrap()
    }

    #[test]
    fn most_specific_namespace_wins_in_any_order() {
        let cases = [
            ("team-b", (Some("acme"), Some("beta"))),
            ("team-a", (Some("acme"), Some("alpha"))),
            ("team-a-dev", (Some("acme"), Some("alpha"))),
            ("team-bx", (Some("acme"), None)),
            ("kube-system", (Some("shared"), None)),
        ];
        let forward = tenants(false);
        let mut configs = vec![
            tenant("team-b", "acme", Some("beta")),
            tenant("team-a*", "acme", Some("alpha")),
            tenant("team-*", "acme", None),
            tenant("*", "shared", None),
        ];
        let backward = Tenants::new(&configs, false).unwrap();
        for (namespace, (org, project)) in cases {
            for t in [&forward, &backward] {
                let (o, p) = t.of_namespace(namespace);
                assert_eq!((o.as_deref(), p.as_deref()), (org, project), "{namespace}");
            }
        }
        configs.pop();
        let unmapped = Tenants::new(&configs, false).unwrap();
        assert_eq!(unmapped.of_namespace("default"), (None, None));
    }

    #[test]
    fn pod_labels_choose_the_tenant_only_when_trusted() {
        let labels = map(&[("hoist.dev/org", "acme"), ("hoist.dev/project", "beta")]);
        let annotations = map(&[("hoist.dev/connector", "reg")]);
        let pod = tenants(false).pod("team-a", &annotations, &labels).unwrap();
        assert_eq!(pod.describe(), "project:acme/alpha");
        assert_eq!(pod.connector.as_deref(), Some("reg"));
        let pod = tenants(true).pod("team-a", &annotations, &labels).unwrap();
        assert_eq!(pod.describe(), "project:acme/beta");
        // Trusted, but the pod claims nothing: its namespace's tenant.
        let pod = tenants(true)
            .pod("team-a", &annotations, &map(&[]))
            .unwrap();
        assert_eq!(pod.describe(), "project:acme/alpha");
        // Untrusted labels are not even parsed: a malformed claim is no error.
        let bad = map(&[("hoist.dev/org", "x"), ("hoist.dev/project", "y/z")]);
        assert!(tenants(false).pod("team-b", &annotations, &bad).is_ok());
        assert!(tenants(true).pod("team-b", &annotations, &bad).is_err());
    }

    #[test]
    fn rejects_bad_and_duplicate_tenants() {
        for bad in [
            tenant("", "acme", None),
            tenant("Team-A", "acme", None),
            tenant("a*b", "acme", None),
            tenant("team-a", "ac/me", None),
            tenant("team-a", "acme", Some("acme/alpha")),
        ] {
            let e = Tenants::new(std::slice::from_ref(&bad), false).expect_err("invalid");
            assert!(matches!(e, Error::Tenant { index: 0, .. }), "{bad:?}: {e}");
        }
        let twice = [tenant("team-a", "acme", None), tenant("team-a", "x", None)];
        let e = Tenants::new(&twice, false).expect_err("duplicate");
        assert!(e.to_string().contains("mapped twice"), "{e}");
        // A prefix and the exact name are different patterns.
        let both = [tenant("team-a", "acme", None), tenant("team-a*", "x", None)];
        assert!(Tenants::new(&both, false).is_ok());
    }
}
