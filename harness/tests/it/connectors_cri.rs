//! Connectors through the CRI socket: `PullImage` resolves credentials from the sandbox's
//! namespace (its tenant), its annotations (and, when trusted, labels), kubelet's `AuthConfig`
//! and the config; errors come back with the gRPC code of their kind (PermissionDenied,
//! NotFound, Unauthenticated).

use std::sync::Arc;

use hoist::connectors::{Environment, Live};
use hoist::images::Images;
use hoist::pull::Puller;
use hoist::registry::Client;
use hoist_harness::cri::{Cri, PullContext, sandbox};
use hoist_snapshotter::Store;

use crate::connector_services as cs;
use crate::services;

struct Server {
    cri: Cri,
    live: Arc<Live>,
    _stop: tokio::sync::oneshot::Sender<()>,
    dir: tempfile::TempDir,
}

async fn serve(toml: &str, env: &[(&str, &str)], insecure: &str) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let config = hoist::config::Config::parse(toml).unwrap();
    let live = Arc::new(
        Live::new(
            &config.connector_settings(),
            Environment::new(env.iter().map(|(k, v)| (k.to_string(), v.to_string()))),
        )
        .unwrap(),
    );
    let client = Client::new(&hoist::registry::Options {
        insecure: vec![insecure.to_owned()],
        ..Default::default()
    })
    .unwrap();
    let root = dir.path().join("root");
    let puller = Puller::new(
        Arc::new(client),
        Arc::new(Store::open(&root).unwrap()),
        Images::open(&root).unwrap(),
        hoist::pull::Options::default(),
    );
    let service = hoist::cri::ImageService::new(
        Arc::new(puller),
        hoist::cri::Options {
            connectors: Some(Arc::clone(&live)),
            ..Default::default()
        },
    );
    let socket = dir.path().join("cri.sock");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let path = socket.clone();
    tokio::spawn(async move {
        hoist::cri::serve(service, &path, async {
            let _ = stopped.await;
        })
        .await
    });
    for _ in 0..100 {
        if socket.exists() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    Server {
        cri: Cri::connect(&socket).await.unwrap(),
        live,
        _stop: stop,
        dir,
    }
}

fn context(annotations: &[(&str, &str)], labels: &[(&str, &str)]) -> PullContext {
    PullContext {
        sandbox: Some(sandbox(annotations, labels)),
        ..PullContext::default()
    }
}

/// A pull for a pod in Kubernetes namespace `namespace`, as kubelet sends it.
fn in_namespace(
    namespace: &str,
    annotations: &[(&str, &str)],
    labels: &[(&str, &str)],
) -> PullContext {
    let mut config = sandbox(annotations, labels);
    config.metadata = Some(hoist::proto::cri::v1::PodSandboxMetadata {
        name: "app".into(),
        uid: format!("app-{namespace}"),
        namespace: namespace.into(),
        attempt: 0,
    });
    PullContext {
        sandbox: Some(config),
        ..PullContext::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_image_resolves_connectors_and_maps_errors_to_codes_needs_registry() {
    let (host, creds) = services::auth_registry();
    let joined = format!("{}:{}", creds.username, creds.password);
    let image = cs::push(&host, "cri/app", Some(&joined), "through the CRI socket");
    // Org and project from the pods' labels: the operator trusts them here.
    let toml = format!(
        "trust_pod_labels = true\n\
         [[connector]]\nid = \"reg\"\nscope = \"project:acme/web\"\ntype = \"DockerRegistry\"\n\
         registry = \"{host}\"\nauth = {{ username = \"{}\", password = {{ env = \"REG_PASSWORD\" }} }}\n",
        creds.username
    );
    let server = serve(&toml, &[("REG_PASSWORD", creds.password.as_str())], &host).await;
    let cri = &server.cri;

    // Level 1: the pod's annotation, in its own project (org and project from labels).
    let web = context(
        &[("hoist.dev/connector", "reg")],
        &[("hoist.dev/org", "acme"), ("hoist.dev/project", "web")],
    );
    let id = cri.pull(&image, &web).await.unwrap();
    assert!(id.starts_with("sha256:"), "{id}");

    // Project api naming web's connector: PermissionDenied, no fallback.
    let api = context(
        &[
            ("hoist.dev/connector", "reg"),
            ("hoist.dev/project", "acme/api"),
        ],
        &[],
    );
    let e = cri.pull(&image, &api).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e}");

    // A connector that exists nowhere.
    let e = cri
        .pull(
            &image,
            &context(&[("hoist.dev/connector", "account.nope")], &[]),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound, "{e}");

    // No connector and no AuthConfig: anonymous, which the registry refuses.
    let e = cri.pull(&image, &context(&[], &[])).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e}");

    // Level 2: kubelet's AuthConfig.
    let kubelet = PullContext {
        auth: Some(hoist::proto::cri::v1::AuthConfig {
            username: creds.username.clone(),
            password: creds.password.clone(),
            ..Default::default()
        }),
        ..context(&[], &[])
    };
    cri.pull(&image, &kubelet).await.unwrap();

    // A reload that removes the connector applies to the next pull.
    let no_connectors = hoist::connectors::Settings {
        trust_pod_labels: true,
        ..Default::default()
    };
    server.live.reload(&no_connectors).unwrap();
    let e = cri.pull(&image, &web).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound, "{e}");
    let metrics = server.live.get().metrics().render();
    assert!(metrics.contains("connector=\"project:acme/web.reg\",scope=\"project:acme/web\",type=\"DockerRegistry\",source=\"annotation\",outcome=\"ok\"} 1"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_image_takes_the_tenant_from_the_namespace_not_the_pods_labels_needs_registry() {
    let (host, creds) = services::auth_registry();
    let joined = format!("{}:{}", creds.username, creds.password);
    let image = cs::push(&host, "cri/tenant", Some(&joined), "tenant by namespace");
    let tenants = "[[tenant]]\nnamespace = \"team-a\"\norg = \"acme\"\nproject = \"alpha\"\n\
                   [[tenant]]\nnamespace = \"team-b*\"\norg = \"acme\"\nproject = \"beta\"\n";
    let connector = format!(
        "[[connector]]\nid = \"reg\"\nscope = \"project:acme/beta\"\ntype = \"DockerRegistry\"\n\
         registry = \"{host}\"\nauth = {{ username = \"{}\", password = {{ env = \"REG_PASSWORD\" }} }}\n",
        creds.username
    );
    let toml = format!("{tenants}{connector}");
    let server = serve(&toml, &[("REG_PASSWORD", creds.password.as_str())], &host).await;
    let cri = &server.cri;
    let claims_beta = [("hoist.dev/org", "acme"), ("hoist.dev/project", "beta")];
    let names_reg = [("hoist.dev/connector", "reg")];

    // In alpha's namespace, labels and annotations claiming beta are ignored: beta's
    // connector is denied, with no fallback.
    let forged = in_namespace("team-a", &names_reg, &claims_beta);
    let e = cri.pull(&image, &forged).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e}");
    assert!(e.to_string().contains("project:acme/alpha"), "{e}");
    let mut annotated = names_reg.to_vec();
    annotated.extend(claims_beta);
    let e = cri
        .pull(&image, &in_namespace("team-a", &annotated, &[]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e}");

    // A namespace with no [[tenant]] has account scope only.
    let e = cri
        .pull(&image, &in_namespace("default", &names_reg, &claims_beta))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e}");
    assert!(e.to_string().contains("in account"), "{e}");

    // In beta's namespaces (exact prefix match and below it), the same connector is granted.
    for namespace in ["team-b", "team-b-dev"] {
        let id = cri
            .pull(&image, &in_namespace(namespace, &names_reg, &[]))
            .await
            .unwrap();
        assert!(id.starts_with("sha256:"), "{id}");
    }

    // The operator turns on trust_pod_labels (a reload, as on SIGHUP): now the labels decide.
    let trusted =
        hoist::config::Config::parse(&format!("trust_pod_labels = true\n{toml}")).unwrap();
    server.live.reload(&trusted.connector_settings()).unwrap();
    cri.pull(&image, &forged).await.unwrap();

    // A reload from the file (what SIGHUP runs) that maps team-a to beta applies to the next
    // pull, without trusting labels.
    let file = server.dir.path().join("hoist.toml");
    std::fs::write(
        &file,
        toml.replacen("project = \"alpha\"", "project = \"beta\"", 1),
    )
    .unwrap();
    server.live.reload_from(&file, "SIGHUP").unwrap();
    cri.pull(&image, &in_namespace("team-a", &names_reg, &[]))
        .await
        .unwrap();
    let e = cri
        .pull(&image, &in_namespace("team-c", &names_reg, &claims_beta))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e}");
}
