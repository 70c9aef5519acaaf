//! Scopes (`account`, `org:NAME`, `project:ORG/NAME`), connector references relative to a pod
//! (`account.X`, `org.X`, `X`), and the pod context they are resolved against.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

/// Pod annotation naming the connector for the pod's images (precedence level 1).
pub const ANNOTATION_CONNECTOR: &str = "hoist.dev/connector";
/// Pod annotation or label naming the pod's organisation (read only with `trust_pod_labels`).
pub const LABEL_ORG: &str = "hoist.dev/org";
/// Pod annotation or label naming the pod's project, `NAME` (within its org) or `ORG/NAME`
/// (read only with `trust_pod_labels`).
pub const LABEL_PROJECT: &str = "hoist.dev/project";

/// Why a scope, a connector reference or a pod's context is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Not `account`, `org:NAME` or `project:ORG/NAME`.
    #[error("scope {0:?}: expected account, org:NAME or project:ORG/NAME")]
    BadScope(String),
    /// Not `account.ID`, `org.ID` or `ID`.
    #[error("connector reference {0:?}: expected account.ID, org.ID or ID")]
    BadReference(String),
    /// The pod names a project in another organisation than its own.
    #[error("pod project {project:?} is not in the pod's organisation {org:?}")]
    ProjectOutsideOrg {
        /// The pod's project label.
        project: String,
        /// The pod's organisation label.
        org: String,
    },
}

/// Where a connector is defined: the whole account, one organisation, or one project.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Visible to every pod.
    Account,
    /// Visible to the pods of one organisation.
    Org(String),
    /// Visible to the pods of one project.
    Project {
        /// The project's organisation.
        org: String,
        /// The project.
        project: String,
    },
}

impl Scope {
    /// `account`, `org` or `project`, for metrics.
    pub fn level(&self) -> Level {
        match self {
            Scope::Account => Level::Account,
            Scope::Org(_) => Level::Org,
            Scope::Project { .. } => Level::Project,
        }
    }
}

/// A name component: non-empty, no `/`, `:`, `.` or whitespace (they separate the parts of a
/// scope or reference).
pub(super) fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl FromStr for Scope {
    type Err = Error;

    fn from_str(s: &str) -> Result<Scope, Error> {
        let bad = || Error::BadScope(s.to_owned());
        if s == "account" {
            return Ok(Scope::Account);
        }
        if let Some(org) = s.strip_prefix("org:") {
            return valid_name(org)
                .then(|| Scope::Org(org.to_owned()))
                .ok_or_else(bad);
        }
        if let Some(path) = s.strip_prefix("project:") {
            let (org, project) = path.split_once('/').ok_or_else(bad)?;
            return (valid_name(org) && valid_name(project))
                .then(|| Scope::Project {
                    org: org.to_owned(),
                    project: project.to_owned(),
                })
                .ok_or_else(bad);
        }
        Err(bad())
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Account => f.write_str("account"),
            Scope::Org(org) => write!(f, "org:{org}"),
            Scope::Project { org, project } => write!(f, "project:{org}/{project}"),
        }
    }
}

/// A scope level, without the names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Level {
    /// `account.X`.
    Account,
    /// `org.X`.
    Org,
    /// `X`.
    Project,
}

impl Level {
    /// `account`, `org` or `project`.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Account => "account",
            Level::Org => "org",
            Level::Project => "project",
        }
    }
}

/// A connector named relative to a pod: `account.X`, `org.X` (the pod's organisation) or `X`
/// (the pod's project), as in devcontainer.json's `identifier` and Harness's connector refs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConnectorRef {
    /// Which of the pod's scopes.
    pub level: Level,
    /// The connector's id within that scope.
    pub id: String,
}

impl FromStr for ConnectorRef {
    type Err = Error;

    fn from_str(s: &str) -> Result<ConnectorRef, Error> {
        let (level, id) = if let Some(id) = s.strip_prefix("account.") {
            (Level::Account, id)
        } else if let Some(id) = s.strip_prefix("org.") {
            (Level::Org, id)
        } else {
            (Level::Project, s)
        };
        if !valid_name(id) {
            return Err(Error::BadReference(s.to_owned()));
        }
        Ok(ConnectorRef {
            level,
            id: id.to_owned(),
        })
    }
}

impl fmt::Display for ConnectorRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.level {
            Level::Account => write!(f, "account.{}", self.id),
            Level::Org => write!(f, "org.{}", self.id),
            Level::Project => f.write_str(&self.id),
        }
    }
}

/// What the resolver knows of the pod an image is pulled for: its tenant from the CRI sandbox
/// config's namespace (or, when trusted, its annotations and labels, annotations winning; see
/// [`super::Tenants`]), or from `hoist prefetch`'s `--org` and `--project`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodContext {
    /// The pod's organisation, if any.
    pub org: Option<String>,
    /// The pod's project within `org`, if any.
    pub project: Option<String>,
    /// The `hoist.dev/connector` annotation, unparsed (a bad value is an error at resolution).
    pub connector: Option<String>,
}

impl PodContext {
    /// Reads the pod's context from its sandbox annotations and labels. A project label of the
    /// form `ORG/NAME` also gives the organisation; it must agree with the org label if both
    /// are set.
    pub fn from_metadata(
        annotations: &HashMap<String, String>,
        labels: &HashMap<String, String>,
    ) -> Result<PodContext, Error> {
        let get = |key: &str| {
            annotations
                .get(key)
                .or_else(|| labels.get(key))
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let mut org = get(LABEL_ORG);
        let mut project = get(LABEL_PROJECT);
        if let Some(p) = project.clone()
            && let Some((o, name)) = p.split_once('/')
        {
            if let Some(existing) = &org
                && existing != o
            {
                return Err(Error::ProjectOutsideOrg {
                    project: p,
                    org: existing.clone(),
                });
            }
            org = Some(o.to_owned());
            project = Some(name.to_owned());
        }
        Ok(PodContext {
            org,
            project,
            connector: annotations.get(ANNOTATION_CONNECTOR).cloned(),
        })
    }

    /// The scope a reference at `level` means for this pod, or `None` when the pod has no
    /// such scope (no org, or no project).
    pub fn scope(&self, level: Level) -> Option<Scope> {
        match level {
            Level::Account => Some(Scope::Account),
            Level::Org => self.org.clone().map(Scope::Org),
            Level::Project => match (&self.org, &self.project) {
                (Some(org), Some(project)) => Some(Scope::Project {
                    org: org.clone(),
                    project: project.clone(),
                }),
                _ => None,
            },
        }
    }

    /// Whether a connector defined at `scope` is visible to this pod: its account, its own
    /// organisation, or its own project.
    pub fn can_see(&self, scope: &Scope) -> bool {
        self.scope(scope.level()).as_ref() == Some(scope)
    }

    /// The pod's chain, narrowest first, for logs.
    pub fn describe(&self) -> String {
        match (&self.org, &self.project) {
            (Some(o), Some(p)) => format!("project:{o}/{p}"),
            (Some(o), None) => format!("org:{o}"),
            _ => "account".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_round_trip_and_reject_garbage() {
        for s in ["account", "org:acme", "project:acme/web"] {
            assert_eq!(s.parse::<Scope>().unwrap().to_string(), s);
        }
        for s in [
            "",
            "org:",
            "org:a/b",
            "project:acme",
            "project:/x",
            "Account",
            "org:a.b",
        ] {
            assert!(s.parse::<Scope>().is_err(), "{s:?}");
        }
    }

    #[test]
    fn references_parse_by_prefix() {
        let cases = [
            ("account.hub", Level::Account, "hub"),
            ("org.hub", Level::Org, "hub"),
            ("hub", Level::Project, "hub"),
        ];
        for (s, level, id) in cases {
            let r: ConnectorRef = s.parse().unwrap();
            assert_eq!((r.level, r.id.as_str()), (level, id));
            assert_eq!(r.to_string(), s);
        }
        for s in ["", "account.", "org.a.b", "a/b", "account.x y"] {
            assert!(s.parse::<ConnectorRef>().is_err(), "{s:?}");
        }
    }

    #[test]
    fn pod_context_prefers_annotations_and_splits_org_project() {
        let ann = HashMap::from([
            (LABEL_PROJECT.to_owned(), "acme/web".to_owned()),
            (ANNOTATION_CONNECTOR.to_owned(), "org.hub".to_owned()),
        ]);
        let labels = HashMap::from([(LABEL_PROJECT.to_owned(), "other/x".to_owned())]);
        let pod = PodContext::from_metadata(&ann, &labels).unwrap();
        assert_eq!(pod.org.as_deref(), Some("acme"));
        assert_eq!(pod.project.as_deref(), Some("web"));
        assert_eq!(pod.connector.as_deref(), Some("org.hub"));
        assert!(pod.can_see(&Scope::Account));
        assert!(pod.can_see(&"org:acme".parse().unwrap()));
        assert!(pod.can_see(&"project:acme/web".parse().unwrap()));
        assert!(!pod.can_see(&"org:other".parse().unwrap()));
        assert!(!pod.can_see(&"project:acme/api".parse().unwrap()));

        let labels = HashMap::from([
            (LABEL_ORG.to_owned(), "acme".to_owned()),
            (LABEL_PROJECT.to_owned(), "other/web".to_owned()),
        ]);
        assert!(PodContext::from_metadata(&HashMap::new(), &labels).is_err());
    }
}
