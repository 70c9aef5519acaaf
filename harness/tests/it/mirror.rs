//! Mirrors: the real docker-registry in proxy (pull-through cache) mode in front of the test
//! registry. The pull goes through the mirror first (its cache fills); with the mirror
//! stopped, the pull falls back to the upstream, and the dead mirror is skipped for a while
//! rather than tried before every blob.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use hoist::images::Images;
use hoist::pull::{Options, Puller, Silent};
use hoist::registry::mirror::Mirror;
use hoist::registry::{Client, Credentials};
use hoist_harness::image::{Compression, Entry, Image, Layer, layout};
use hoist_harness::proxy::{Proxy as HarnessProxy, Shaping, Stats};
use hoist_harness::skopeo;
use hoist_snapshotter::Store;

use crate::connector_services as cs;
use crate::services;

struct Proxy {
    child: Child,
    addr: String,
    storage: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_proxy(upstream: &str) -> Proxy {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let storage = dir.path().join("storage");
    let config = dir.path().join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
             http:\n  addr: 127.0.0.1:{port}\nproxy:\n  remoteurl: http://{upstream}\n",
            storage.display()
        ),
    )
    .unwrap();
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("docker-registry is installed (scripts/lib.sh hoist_install_deps)");
    let addr = format!("127.0.0.1:{port}");
    for _ in 0..200 {
        if std::net::TcpStream::connect(&addr).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    Proxy {
        child,
        addr,
        storage,
        _dir: dir,
    }
}

fn client(upstream: &str, mirror: &str) -> Arc<Client> {
    Arc::new(
        Client::new(&hoist::registry::Options {
            insecure: vec![upstream.to_owned()],
            mirrors: HashMap::from([(
                upstream.to_owned(),
                vec![Mirror::new(&format!("http://{mirror}")).unwrap()],
            )]),
            ..Default::default()
        })
        .unwrap(),
    )
}

async fn pull(upstream: &str, mirror: &str, image: &str) -> Result<(), String> {
    pull_with(client(upstream, mirror), image).await
}

async fn pull_with(client: Arc<Client>, image: &str) -> Result<(), String> {
    let root = tempfile::tempdir().unwrap();
    let puller = Puller::new(
        client,
        Arc::new(Store::open(root.path()).unwrap()),
        Images::open(root.path()).unwrap(),
        Options::default(),
    );
    puller
        .pull(
            &image.parse().unwrap(),
            Credentials::Anonymous,
            Arc::new(Silent),
        )
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn mirror_first_then_upstream_when_the_mirror_is_down_needs_registry() {
    let upstream = services::registry();
    let image = cs::push(
        &upstream,
        "mirror/app",
        None,
        "served through a pull-through cache",
    );
    let mut proxy = start_proxy(&upstream);
    let cached = proxy
        .storage
        .join("docker/registry/v2/repositories/mirror/app");
    assert!(!cached.exists());
    pull(&upstream, &proxy.addr, &image).await.unwrap();
    assert!(
        cached.exists(),
        "the pull went through the mirror, whose cache now holds the image"
    );

    proxy.child.kill().unwrap();
    proxy.child.wait().unwrap();
    pull(&upstream, &proxy.addr, &image).await.unwrap();
}

/// Pushes an image of `layers` one-file layers to `host/repository:v1`.
fn push_layers(host: &str, repository: &str, layers: usize) -> String {
    let image = Image::new(
        (0..layers)
            .map(|i| {
                Layer::new(
                    vec![Entry::file(
                        format!("f{i}"),
                        format!("{repository} layer {i}").into_bytes(),
                    )],
                    Compression::Gzip,
                )
            })
            .collect(),
    );
    let dir = tempfile::tempdir().unwrap();
    let written = layout::write(&image, dir.path(), "it", &layout::Options::default()).unwrap();
    skopeo::push(
        &written,
        &format!("{host}/{repository}"),
        "v1",
        &[],
        &skopeo::Options::default(),
    )
    .unwrap()
    .references[0]
        .clone()
}

/// With the mirror stopped, a pull of a four-layer image tries it once or twice (requests in
/// flight together), not before each manifest and blob, and the next pull within the pause does
/// not try it at all. The harness proxy in front of the mirror counts the attempts.
#[tokio::test]
async fn a_failed_mirror_is_skipped_for_a_while_not_tried_per_blob_needs_registry() {
    let upstream = services::registry();
    let mirror = start_proxy(&upstream);
    let counter = HarnessProxy::start(mirror.addr.parse().unwrap(), Shaping::default()).unwrap();
    let requests = || Stats::get(&counter.stats().requests);
    let client = client(&upstream, &counter.host());

    let first = push_layers(&upstream, "mirror/backoff-a", 4);
    pull_with(Arc::clone(&client), &first).await.unwrap();
    let served = requests();
    assert!(
        served >= 6,
        "the live mirror served the manifest, the config and 4 layers: {served} requests"
    );

    drop(mirror);
    let second = push_layers(&upstream, "mirror/backoff-b", 4);
    pull_with(Arc::clone(&client), &second).await.unwrap();
    let tried = requests() - served;
    assert!(
        (1..=2).contains(&tried),
        "the dead mirror was tried {tried} times during a pull of 4 layers"
    );

    pull_with(Arc::clone(&client), &second).await.unwrap();
    assert_eq!(
        requests() - served - tried,
        0,
        "within its pause the dead mirror is not tried"
    );
}
