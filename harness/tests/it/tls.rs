//! Registry TLS against the real docker-registry serving HTTPS with a certificate from a CA
//! made for the test: verified by default, trusted only through `ca_files`, and never
//! downgraded to plain HTTP unless the registry is configured as insecure.

use std::sync::Arc;

use hoist::images::Images;
use hoist::pull::{Options, Puller, Silent};
use hoist::registry::{Client, Credentials};
use hoist_harness::image::{Compression, Entry, Image, Layer, layout};
use hoist_harness::skopeo;
use hoist_snapshotter::Store;

use crate::services;

async fn pull(registry: hoist::registry::Options, reference: &str) -> Result<(), String> {
    let root = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(root.path()).unwrap());
    let client = Client::new(&registry).map_err(|e| e.to_string())?;
    let puller = Puller::new(
        Arc::new(client),
        store,
        Images::open(root.path()).unwrap(),
        Options::default(),
    );
    puller
        .pull(
            &reference.parse().unwrap(),
            Credentials::Anonymous,
            Arc::new(Silent),
        )
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn tls_is_verified_and_a_custom_ca_is_trusted_needs_registry() {
    let (host, ca) = services::tls_registry();
    let image = Image::new(vec![Layer::new(
        vec![Entry::file("hello", "tls")],
        Compression::Gzip,
    )]);
    let dir = tempfile::tempdir().unwrap();
    let written = layout::write(&image, dir.path(), "it", &layout::Options::default()).unwrap();
    let pushed = skopeo::push(
        &written,
        &format!("{host}/tls/app"),
        "v1",
        &[],
        &skopeo::Options::default(),
    )
    .unwrap();
    let reference = &pushed.references[0];

    let untrusted = pull(hoist::registry::Options::default(), reference)
        .await
        .unwrap_err();
    assert!(
        untrusted.to_lowercase().contains("certificate"),
        "{untrusted}"
    );

    let plain = hoist::registry::Options {
        insecure: vec![host.clone()],
        ..Default::default()
    };
    assert!(
        pull(plain, reference).await.is_err(),
        "plain HTTP to an HTTPS registry must fail"
    );

    let trusted = hoist::registry::Options {
        ca_files: vec![ca],
        ..Default::default()
    };
    pull(trusted, reference).await.unwrap();
}

/// A TCP forwarder on 127.0.0.1 to `target`: the same server, and so the same certificate,
/// under another `host:port` name.
async fn forward(target: String) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let target = target.clone();
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    addr
}

/// A hosts.toml `ca` is trusted for the host it is written for, not for every registry: the
/// same CA-signed server under another name stays untrusted. Both of containerd's forms: the
/// top-level `ca` for `server`, and a `[host."…"]` entry naming the registry itself.
#[tokio::test]
async fn hosts_toml_ca_applies_to_its_host_only_needs_registry() {
    let (host_a, ca) = services::tls_registry();
    let image = Image::new(vec![Layer::new(
        vec![Entry::file("hello", "per-host ca")],
        Compression::Gzip,
    )]);
    let dir = tempfile::tempdir().unwrap();
    let written = layout::write(&image, dir.path(), "it", &layout::Options::default()).unwrap();
    skopeo::push(
        &written,
        &format!("{host_a}/tls/per-host"),
        "v1",
        &[],
        &skopeo::Options::default(),
    )
    .unwrap();
    let host_b = forward(host_a.clone()).await;
    let forms = [
        format!("server = \"https://{host_a}\"\nca = {ca:?}\n"),
        format!(
            "server = \"https://{host_a}\"\n[host.\"https://{host_a}\"]\n  \
             capabilities = [\"pull\", \"resolve\"]\n  ca = {ca:?}\n"
        ),
    ];
    for hosts_toml in forms {
        let certs = tempfile::tempdir().unwrap();
        std::fs::create_dir(certs.path().join(&host_a)).unwrap();
        std::fs::write(certs.path().join(&host_a).join("hosts.toml"), &hosts_toml).unwrap();
        let options = || hoist::registry::Options {
            hosts_dir: Some(certs.path().to_owned()),
            ..Default::default()
        };
        pull(options(), &format!("{host_a}/tls/per-host:v1"))
            .await
            .unwrap_or_else(|e| panic!("host A with its own CA: {e}\n{hosts_toml}"));
        let other = pull(options(), &format!("{host_b}/tls/per-host:v1"))
            .await
            .expect_err("host B must not be trusted through host A's CA");
        assert!(
            other.to_lowercase().contains("certificate"),
            "{other}\n{hosts_toml}"
        );
    }
}
