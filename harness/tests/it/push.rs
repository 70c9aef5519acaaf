//! skopeo pushes: digests unchanged, extra tags, credentials.

use hoist_harness::Kind;
use hoist_harness::image::{Compression, MediaTypes, layout};
use hoist_harness::skopeo;

use crate::{fixtures, services};

#[test]
fn registry_serves_the_written_digests_under_every_tag() {
    for (compression, media_types) in [
        (Compression::Gzip, MediaTypes::Oci),
        (Compression::Zstd, MediaTypes::Oci),
        (Compression::Gzip, MediaTypes::Docker),
    ] {
        let image = fixtures::every_kind(compression, media_types);
        let dir = tempfile::tempdir().unwrap();
        let written = layout::write(&image, dir.path(), "it", &layout::Options::default()).unwrap();
        let repository = format!(
            "{}/hoist-it/tags-{compression:?}-{media_types:?}",
            services::registry()
        )
        .to_lowercase();
        let options = skopeo::Options::default();
        let pushed =
            skopeo::push(&written, &repository, "v1", &["extra", "latest"], &options).unwrap();
        assert_eq!(pushed.references.len(), 3);
        for reference in &pushed.references {
            let raw = skopeo::inspect_raw(reference, &options).unwrap();
            let manifest: serde_json::Value = serde_json::from_slice(&raw).unwrap();
            assert_eq!(manifest["mediaType"], media_types.manifest(), "{reference}");
            assert_eq!(manifest["config"]["digest"], written.config.digest.as_str());
            let layers: Vec<&str> = manifest["layers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l["digest"].as_str().unwrap())
                .collect();
            let want: Vec<&str> = written.layers.iter().map(|l| l.digest.as_str()).collect();
            assert_eq!(
                layers, want,
                "{reference}: layer blobs were not recompressed"
            );
        }
    }
}

#[test]
fn push_with_credentials_and_without() {
    let (host, credentials) = services::auth_registry();
    let image = fixtures::every_kind(Compression::Gzip, MediaTypes::Oci);
    let dir = tempfile::tempdir().unwrap();
    let written = layout::write(&image, dir.path(), "it", &layout::Options::default()).unwrap();
    let repository = format!("{host}/hoist-it/private");

    let anonymous = skopeo::push(
        &written,
        &repository,
        "v1",
        &[],
        &skopeo::Options::default(),
    )
    .unwrap_err();
    assert_eq!(anonymous.kind(), Kind::Unauthenticated, "{anonymous}");

    let options = skopeo::Options {
        credentials: Some(credentials.clone()),
        ..skopeo::Options::default()
    };
    let pushed = skopeo::push(&written, &repository, "v1", &[], &options).unwrap();
    assert_eq!(pushed.manifest_digest, written.manifest.digest);

    let ctr = services::ctr();
    let mut pull = services::plain_http();
    pull.credentials = Some(credentials.clone());
    ctr.pull(&pushed.references[0], &pull).unwrap();
    ctr.remove_image(&pushed.references[0]).unwrap();

    let wrong = skopeo::Options {
        credentials: Some(hoist_harness::Credentials::new(
            credentials.username.clone(),
            "wrong",
        )),
        ..skopeo::Options::default()
    };
    let error = skopeo::push(&written, &repository, "v2", &[], &wrong).unwrap_err();
    assert_eq!(error.kind(), Kind::Unauthenticated, "{error}");
    assert!(
        !error.to_string().contains(&credentials.password),
        "errors never show the password"
    );
}
