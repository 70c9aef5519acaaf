//! Resolver tests: one per precedence level, one per scope violation, and property tests that
//! the order holds and no connector outside the pod's chain is ever used.

use std::sync::Arc;

use proptest::prelude::*;

use super::*;
use crate::Reference;
use crate::error::Kind;
use crate::registry::{Credentials, Secret};

const CONFIG: &str = r#"
default_connector = "account.harnessImage"

[[connector]]
id = "harnessImage"
scope = "account"
type = "DockerRegistry"
registry = "https://index.docker.io/v1/"
auth = { username = "hub-bot", password = { env = "HUB_PASSWORD" } }

[[connector]]
id = "nexus"
scope = "org:acme"
type = "DockerRegistry"
registry = "nexus.acme.example:8443"
auth = { username = "acme", password = { env = "NEXUS_PASSWORD" } }

[[connector]]
id = "art"
scope = "project:acme/web"
type = "Artifactory"
registry = "acme.jfrog.io/docker-local"
auth = { username = "web", api_key = { env = "ART_KEY" } }

[[connector]]
id = "art"
scope = "project:acme/api"
type = "Artifactory"
registry = "acme.jfrog.io/docker-local"
auth = { username = "api", api_key = { env = "ART_KEY_API" } }

[[connector]]
id = "gcr"
scope = "account"
type = "Gcr"
registry = "europe-docker.pkg.dev"
auth = { json_key = { env = "GCR_KEY" } }

[[route]]
registry = "*.pkg.dev"
connector = "account.gcr"

[[route]]
registry = "nexus.acme.example:8443"
repository = "team/*"
connector = "org.nexus"
"#;

fn resolver() -> Resolver {
    let config = crate::config::Config::parse(CONFIG).unwrap();
    let env = Environment::new(
        [
            ("HUB_PASSWORD", "hub-secret-1"),
            ("NEXUS_PASSWORD", "nexus-secret-2"),
            ("ART_KEY", "art-secret-3"),
            ("ART_KEY_API", "art-secret-4"),
            ("GCR_KEY", "{\"type\":\"service_account\"}"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    Resolver::new(
        &config.connector_settings(),
        env,
        Default::default(),
        Default::default(),
    )
    .unwrap()
}

fn pod(org: Option<&str>, project: Option<&str>, connector: Option<&str>) -> PodContext {
    PodContext {
        org: org.map(Into::into),
        project: project.map(Into::into),
        connector: connector.map(Into::into),
    }
}

fn image(s: &str) -> Reference {
    s.parse().unwrap()
}

fn basic(user: &str, password: &str) -> Credentials {
    Credentials::Basic {
        username: user.into(),
        password: Secret::new(password),
    }
}

fn run<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn level_1_pod_annotation_wins_over_kubelet() {
    let r = resolver();
    let web = pod(Some("acme"), Some("web"), Some("art"));
    let kubelet = Some(basic("kubelet", "k"));
    let got = run(r.resolve(&image("acme.jfrog.io/docker-local/app:1"), &web, kubelet)).unwrap();
    assert_eq!(got.source, Source::Annotation);
    assert_eq!(got.credentials, basic("web", "art-secret-3"));
    assert_eq!(
        got.describe(),
        "connector project:acme/web.art (Artifactory)"
    );
}

#[test]
fn level_2_kubelet_credentials_win_over_routes_and_default() {
    let r = resolver();
    let got = run(r.resolve(
        &image("europe-docker.pkg.dev/p/app:1"),
        &pod(None, None, None),
        Some(basic("kubelet", "k")),
    ))
    .unwrap();
    assert_eq!(got.source, Source::Kubelet);
    assert_eq!(got.credentials, basic("kubelet", "k"));
}

#[test]
fn level_3_first_matching_route() {
    let r = resolver();
    let got = run(r.resolve(
        &image("europe-docker.pkg.dev/p/app:1"),
        &pod(None, None, None),
        None,
    ))
    .unwrap();
    assert_eq!(got.source, Source::Route(0));
    assert_eq!(
        got.credentials,
        basic("_json_key", "{\"type\":\"service_account\"}")
    );
    let acme = pod(Some("acme"), None, None);
    let got = run(r.resolve(&image("nexus.acme.example:8443/team/app:1"), &acme, None)).unwrap();
    assert_eq!(got.source, Source::Route(1));
    assert_eq!(got.credentials, basic("acme", "nexus-secret-2"));
    // Outside the route's repository pattern: no route, and the default is for Docker Hub.
    let got = run(r.resolve(&image("nexus.acme.example:8443/other/app:1"), &acme, None)).unwrap();
    assert_eq!(got.source, Source::Anonymous);
}

#[test]
fn level_4_default_connector_for_its_registry() {
    let r = resolver();
    let got = run(r.resolve(&image("alpine"), &pod(None, None, None), None)).unwrap();
    assert_eq!(got.source, Source::Default);
    assert_eq!(got.credentials, basic("hub-bot", "hub-secret-1"));
}

#[test]
fn level_5_anonymous() {
    let r = resolver();
    let got = run(r.resolve(&image("quay.io/x/y:1"), &pod(None, None, None), None)).unwrap();
    assert_eq!(got.source, Source::Anonymous);
    assert_eq!(got.credentials, Credentials::Anonymous);
    let anonymous_kubelet = run(r.resolve(
        &image("quay.io/x/y:1"),
        &pod(None, None, None),
        Some(Credentials::Anonymous),
    ))
    .unwrap();
    assert_eq!(anonymous_kubelet.source, Source::Anonymous);
}

#[test]
fn pod_connector_for_another_registry_does_not_leak_there() {
    let r = resolver();
    let web = pod(Some("acme"), Some("web"), Some("art"));
    let got = run(r.resolve(&image("alpine"), &web, None)).unwrap();
    assert_eq!(got.source, Source::Default, "a sidecar from Docker Hub");
    // Artifactory's repository-path form: another repository on the same host is not served.
    let got = run(r.resolve(&image("acme.jfrog.io/other/app:1"), &web, None)).unwrap();
    assert_eq!(got.source, Source::Anonymous);
}

#[test]
fn project_a_naming_project_b_connector_is_denied() {
    let r = resolver();
    // `art` exists in acme/web and acme/api; a pod in acme/shop names it.
    let shop = pod(Some("acme"), Some("shop"), Some("art"));
    let e = run(r.resolve(&image("acme.jfrog.io/docker-local/app:1"), &shop, None)).unwrap_err();
    assert_eq!(e.kind(), Kind::PermissionDenied, "{e}");
    // A pod of another org naming org.nexus of acme.
    let other = pod(Some("globex"), Some("web"), Some("org.nexus"));
    let e = run(r.resolve(&image("nexus.acme.example:8443/team/app:1"), &other, None)).unwrap_err();
    assert_eq!(e.kind(), Kind::PermissionDenied, "{e}");
    // No silent fallback, even with kubelet credentials at hand.
    let e = run(r.resolve(
        &image("nexus.acme.example:8443/team/app:1"),
        &other,
        Some(basic("k", "k")),
    ))
    .unwrap_err();
    assert_eq!(e.kind(), Kind::PermissionDenied);
    // A pod without project naming a project connector.
    let e = run(r.resolve(
        &image("alpine"),
        &pod(Some("acme"), None, Some("art")),
        None,
    ))
    .unwrap_err();
    assert_eq!(e.kind(), Kind::PermissionDenied);
    // A route to org.nexus used by a pod of another org is denied too.
    let e = run(r.resolve(
        &image("nexus.acme.example:8443/team/app:1"),
        &pod(Some("globex"), None, None),
        None,
    ))
    .unwrap_err();
    assert_eq!(e.kind(), Kind::PermissionDenied);
    let count = r.metrics().render();
    assert!(count.contains("outcome=\"permission_denied\""), "{count}");
}

#[test]
fn unknown_and_malformed_connectors() {
    let r = resolver();
    let e = run(r.resolve(
        &image("alpine"),
        &pod(None, None, Some("account.nope")),
        None,
    ))
    .unwrap_err();
    assert_eq!(e.kind(), Kind::NotFound, "{e}");
    let e = run(r.resolve(
        &image("alpine"),
        &pod(None, None, Some("account.a.b")),
        None,
    ))
    .unwrap_err();
    assert_eq!(e.kind(), Kind::InvalidArgument, "{e}");
}

#[test]
fn missing_secret_names_connector_and_source_not_value() {
    let config = crate::config::Config::parse(CONFIG).unwrap();
    let r = Resolver::new(
        &config.connector_settings(),
        Environment::default(),
        Default::default(),
        Default::default(),
    )
    .unwrap();
    let e = run(r.resolve(&image("alpine"), &pod(None, None, None), None)).unwrap_err();
    assert_eq!(e.kind(), Kind::Unavailable);
    let text = e.to_string();
    assert!(
        text.contains("account.harnessImage") && text.contains("HUB_PASSWORD"),
        "{text}"
    );
}

#[test]
fn secrets_from_files_lose_their_trailing_newline_and_never_print() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("password");
    std::fs::write(&path, "file-secret-5\n").unwrap();
    let text = format!(
        "[[connector]]\nid = \"hub\"\nscope = \"account\"\ntype = \"DockerRegistry\"\nregistry = \"docker.io\"\n\
         auth = {{ username = \"u\", password = {{ file = {:?} }} }}\ndefault_connector = \"account.hub\"\n",
        path
    );
    // `default_connector` after a table belongs to the table; put it first.
    let text = format!(
        "default_connector = \"account.hub\"\n{}",
        text.replace("default_connector = \"account.hub\"\n", "")
    );
    let config = crate::config::Config::parse(&text).unwrap();
    let r = Resolver::new(
        &config.connector_settings(),
        Environment::default(),
        Default::default(),
        Default::default(),
    )
    .unwrap();
    let got = run(r.resolve(&image("alpine"), &PodContext::default(), None)).unwrap();
    assert_eq!(got.credentials, basic("u", "file-secret-5"));
    let shown = format!("{got:?} {r:?}");
    assert!(!shown.contains("file-secret-5"), "{shown}");
}

#[test]
fn config_errors_are_reported() {
    let base = "[[connector]]\nid = \"x\"\nscope = \"account\"\nregistry = \"r.example\"\n";
    let cases = [
        (
            "type = \"DockerRegistry\"\nauth = { password = \"inline\" }",
            "inline secret",
        ),
        (
            "type = \"DockerRegistry\"\nauth = { username = \"u\" }",
            "user without password",
        ),
        (
            "type = \"Gcr\"\nauth = { username = \"u\" }",
            "key of another type",
        ),
        (
            "type = \"Aws\"\nauth = { access_key_id = { env = \"A\" }, secret_access_key = { env = \"B\" } }",
            "ECR without region",
        ),
        (
            "type = \"Aws\"\nauth = { region = \"us-east-1\" }",
            "ECR without credentials",
        ),
        ("type = \"Nexus\"", "unknown type"),
        ("type = \"DockerRegistry\"\nscope2 = \"x\"", "unknown key"),
    ];
    for (extra, what) in cases {
        assert!(
            crate::config::Config::parse(&format!("{base}{extra}\n")).is_err(),
            "{what}"
        );
    }
    let dup = format!("{base}type = \"DockerRegistry\"\n{base}type = \"Gcr\"\n");
    assert!(crate::config::Config::parse(&dup).is_err(), "duplicate");
    assert!(crate::config::Config::parse("default_connector = \"a.b.c\"").is_err());
    assert!(
        crate::config::Config::parse("[[route]]\nregistry = \"a/b\"\nconnector = \"x\"").is_err()
    );
    assert!(
        crate::config::Config::parse(&format!("{base}type = \"Aws\"\nregistry2 = 1\n")).is_err()
    );
}

/// A valid ECR connector parses when the AWS SDK is built in, and is refused by name otherwise:
/// an operator learns at start-up (or on reload), not at the first ECR pull.
#[test]
fn aws_connector_parses_only_with_the_aws_feature() {
    let ecr = "[[connector]]\nid = \"ecr\"\nscope = \"account\"\ntype = \"Aws\"\n\
               registry = \"123456789012.dkr.ecr.eu-west-1.amazonaws.com\"\n\
               auth = { role_arn = \"arn:aws:iam::123456789012:role/r\", web_identity_token_file = \"/t\" }\n";
    let parsed = crate::config::Config::parse(ecr);
    if super::aws::SUPPORTED {
        parsed.unwrap();
    } else {
        let error = parsed.unwrap_err().to_string();
        assert!(error.contains("connector ecr (Aws)"), "{error}");
        assert!(error.contains("built without the aws feature"), "{error}");
    }
}

#[test]
fn live_reload_keeps_old_resolver_on_error_and_pulls_keep_theirs() {
    let config = crate::config::Config::parse(CONFIG).unwrap();
    let live = Live::new(&config.connector_settings(), Environment::default()).unwrap();
    let in_flight = live.get();
    let mut bad = config.connector_settings();
    bad.default_connector = Some("a.b.c".into());
    assert!(live.reload(&bad).is_err());
    assert_eq!(live.get().connectors().len(), 5);
    live.reload(&Settings::default()).unwrap();
    assert_eq!(live.get().connectors().len(), 0);
    assert_eq!(
        in_flight.connectors().len(),
        5,
        "a pull keeps the resolver it started with"
    );
    assert!(Arc::ptr_eq(in_flight.metrics(), live.get().metrics()));
}

// Property tests: connectors named `c0`..`c2` in scopes over orgs {a, b} and projects
// {a/p, a/q, b/p}, all on one registry; random pods, annotations and kubelet credentials.

fn scopes() -> Vec<Scope> {
    [
        "account",
        "org:a",
        "org:b",
        "project:a/p",
        "project:a/q",
        "project:b/p",
    ]
    .iter()
    .map(|s| s.parse().unwrap())
    .collect()
}

fn arb_pod() -> impl Strategy<Value = PodContext> {
    let org = prop::option::of(prop::sample::select(vec!["a", "b"]));
    let project = prop::option::of(prop::sample::select(vec!["p", "q"]));
    let connector = prop::option::of(prop::sample::select(vec![
        "c0",
        "c1",
        "c2",
        "org.c0",
        "org.c1",
        "org.c2",
        "account.c0",
        "account.c1",
        "account.c2",
    ]));
    (org, project, connector).prop_map(|(org, project, connector)| PodContext {
        org: org.map(Into::into),
        project: org.and(project).map(Into::into),
        connector: connector.map(Into::into),
    })
}

fn arb_settings() -> impl Strategy<Value = Settings> {
    let defined = prop::collection::btree_set((0..3usize, 0..6usize), 0..10);
    let default = prop::option::of(prop::sample::select(vec!["account.c0", "org.c1", "c2"]));
    (defined, default).prop_map(|(defined, default)| Settings {
        connectors: defined
            .into_iter()
            .map(|(id, scope)| ConnectorConfig {
                id: format!("c{id}"),
                scope: scopes()[scope].to_string(),
                kind: Type::DockerRegistry,
                registry: "registry.example".into(),
                auth: Default::default(),
            })
            .collect(),
        routes: Vec::new(),
        default_connector: default.map(Into::into),
        ..Settings::default()
    })
}

proptest! {
    #[test]
    fn never_a_connector_outside_the_pods_chain_and_order_holds(
        settings in arb_settings(),
        pod in arb_pod(),
        kubelet in any::<bool>(),
    ) {
        let r = Resolver::new(&settings, Environment::default(), Default::default(), Default::default()).unwrap();
        let kubelet = kubelet.then(|| basic("k", "k"));
        let got = run(r.resolve(&image("registry.example/app:1"), &pod, kubelet.clone()));
        let named = pod.connector.as_ref().map(|c| c.parse::<ConnectorRef>().unwrap());
        let visible = |reference: &ConnectorRef| {
            pod.scope(reference.level).and_then(|scope| {
                settings.connectors.iter().find(|c| c.id == reference.id && c.scope == scope.to_string())
            })
        };
        match &got {
            Ok(res) => {
                if let Some(c) = &res.connector {
                    prop_assert!(pod.can_see(&c.scope), "{} for {:?}", c, pod);
                }
                // Level 1 decides whenever the pod names a connector; a named connector that
                // is not visible is an error, never a fallback.
                if let Some(n) = &named {
                    prop_assert_eq!(res.source, Source::Annotation);
                    prop_assert!(visible(n).is_some());
                } else if kubelet.is_some() {
                    prop_assert_eq!(res.source, Source::Kubelet);
                } else if let Some(d) = &settings.default_connector {
                    prop_assert_eq!(res.source, Source::Default);
                    prop_assert!(visible(&d.parse().unwrap()).is_some());
                } else {
                    prop_assert_eq!(res.source, Source::Anonymous);
                }
            }
            Err(e) => {
                prop_assert!(matches!(e.kind(), Kind::PermissionDenied | Kind::NotFound), "{}", e);
                let failing = named.or_else(|| if kubelet.is_none() { settings.default_connector.as_ref().map(|d| d.parse().unwrap()) } else { None });
                prop_assert!(failing.is_some_and(|f| visible(&f).is_none()));
            }
        }
    }
}

#[test]
fn watch_reloads_on_file_change_and_keeps_the_old_config_when_invalid() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "").unwrap();
        let live = Arc::new(Live::new(&Settings::default(), Environment::default()).unwrap());
        let stop = tokio_util::sync::CancellationToken::new();
        let watcher = tokio::spawn(Arc::clone(&live).watch(
            path.clone(),
            std::time::Duration::from_millis(20),
            stop.clone().cancelled_owned(),
        ));
        let wait_for = |n: usize| {
            let live = Arc::clone(&live);
            async move {
                for _ in 0..250 {
                    if live.get().connectors().len() == n {
                        return true;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                false
            }
        };
        // Let the watcher take the file's first fingerprint.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        std::fs::write(&path, CONFIG).unwrap();
        assert!(wait_for(5).await, "the new file is loaded");
        std::fs::write(&path, format!("{CONFIG}\n[[connector]]\nid = \"broken\"\n")).unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert_eq!(
            live.get().connectors().len(),
            5,
            "an invalid file is rejected"
        );
        std::fs::write(&path, "").unwrap();
        assert!(
            wait_for(0).await,
            "a valid file after an invalid one is loaded"
        );
        stop.cancel();
        watcher.await.unwrap();
    });
}
