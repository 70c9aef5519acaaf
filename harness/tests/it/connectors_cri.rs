//! Connectors through the CRI socket: `PullImage` resolves credentials from the sandbox's
//! annotations and labels, kubelet's `AuthConfig` and the config; errors come back with the
//! gRPC code of their kind (PermissionDenied, NotFound, Unauthenticated).

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
    _dir: tempfile::TempDir,
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
        _dir: dir,
    }
}

fn context(annotations: &[(&str, &str)], labels: &[(&str, &str)]) -> PullContext {
    PullContext {
        sandbox: Some(sandbox(annotations, labels)),
        ..PullContext::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_image_resolves_connectors_and_maps_errors_to_codes_needs_registry() {
    let (host, creds) = services::auth_registry();
    let joined = format!("{}:{}", creds.username, creds.password);
    let image = cs::push(&host, "cri/app", Some(&joined), "through the CRI socket");
    let toml = format!(
        "[[connector]]\nid = \"reg\"\nscope = \"project:acme/web\"\ntype = \"DockerRegistry\"\n\
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
    server.live.reload(&Default::default()).unwrap();
    let e = cri.pull(&image, &web).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound, "{e}");
    let metrics = server.live.get().metrics().render();
    assert!(metrics.contains("connector=\"project:acme/web.reg\",scope=\"project:acme/web\",type=\"DockerRegistry\",source=\"annotation\",outcome=\"ok\"} 1"), "{metrics}");
}
