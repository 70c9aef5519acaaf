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
