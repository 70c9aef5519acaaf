//! Mirrors: the real docker-registry in proxy (pull-through cache) mode in front of the test
//! registry. The pull goes through the mirror first (its cache fills); with the mirror
//! stopped, the pull falls back to the upstream.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use hoist::images::Images;
use hoist::pull::{Options, Puller, Silent};
use hoist::registry::mirror::Mirror;
use hoist::registry::{Client, Credentials};
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

async fn pull(upstream: &str, mirror: &str, image: &str) -> Result<(), String> {
    let root = tempfile::tempdir().unwrap();
    let client = Client::new(&hoist::registry::Options {
        insecure: vec![upstream.to_owned()],
        mirrors: HashMap::from([(
            upstream.to_owned(),
            vec![Mirror::new(&format!("http://{mirror}")).unwrap()],
        )]),
        ..Default::default()
    })
    .map_err(|e| e.to_string())?;
    let puller = Puller::new(
        Arc::new(client),
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
