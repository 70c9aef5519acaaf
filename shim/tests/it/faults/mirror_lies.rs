//! A mirror that lies: it serves another image under the registry's tag (with that image's
//! own digest header, so the answer is consistent with itself). Configured in a hosts.toml
//! as `pull` only, it must never be asked for the tag: the registry says which image the tag
//! names, and the mirror still serves what it has of that image by digest. With `resolve` it
//! is trusted for tags, as in containerd, and is asked first.

use hoist::registry::Credentials;

use super::{assert_pulled, three_layers};
use crate::reliability::{Outcome, record};
use crate::support::{Comp, Faults, FaultyRegistry, Node, image, options, tar_of};

/// The registry serving [`three_layers`] as `test/app:v1`, a mirror serving another image
/// under that tag (and holding the registry's blobs too, as a pull-through cache would), a
/// node whose hosts.toml for the registry names the mirror with `capabilities`, and the
/// result of pulling the tag.
async fn pull_through(
    capabilities: &str,
) -> (
    FaultyRegistry,
    FaultyRegistry,
    Node,
    hoist::pull::Result<hoist::pull::Pulled>,
) {
    let registry = FaultyRegistry::start(three_layers(Comp::Gzip), Faults::default()).await;
    let mut other = image(
        &[tar_of(&[("etc/hello", b"not the registry's image")])],
        Comp::Gzip,
        false,
    );
    other.blobs.extend(registry.image().blobs.clone());
    let mirror = FaultyRegistry::start(other, Faults::default()).await;
    assert_ne!(
        mirror.image().manifest_digest,
        registry.image().manifest_digest
    );

    let hosts = tempfile::tempdir().unwrap();
    let dir = hosts.path().join(registry.host());
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("hosts.toml"),
        format!(
            "[host.\"http://{}\"]\n  capabilities = {capabilities}\n",
            mirror.host()
        ),
    )
    .unwrap();
    let node = Node::with_registry(
        &registry.host(),
        options(64 << 10),
        hoist::registry::Options {
            hosts_dir: Some(hosts.path().to_owned()),
            ..Default::default()
        },
    );
    let result = node
        .pull(&registry.reference(), Credentials::Anonymous)
        .await;
    (registry, mirror, node, result)
}

fn asked_for_the_tag(registry: &FaultyRegistry) -> bool {
    registry
        .document_requests()
        .iter()
        .any(|r| r == "manifest v1")
}

#[tokio::test]
async fn a_pull_only_mirror_is_not_asked_for_a_tag_and_cannot_substitute_an_image() {
    let (registry, mirror, node, result) = pull_through(r#"["pull"]"#).await;
    assert_pulled(&node, &result);
    let pulled = result.unwrap();
    assert_eq!(
        pulled.digest,
        registry.image().manifest_digest,
        "the registry's image, not the mirror's"
    );
    assert!(
        !asked_for_the_tag(&mirror),
        "the pull-only mirror was asked for the tag: {:?}",
        mirror.document_requests()
    );
    assert_eq!(registry.document_requests(), ["manifest v1"]);
    // The config and the layers, by digest, still come from the mirror (which counts the
    // registry's config among its blob requests: it is not its own image's).
    assert!(mirror.blob_requests() >= 4, "{:?}", mirror.events());
    assert_eq!(registry.blob_requests(), 0, "{:?}", registry.events());
    record(
        "pull-only mirror serves another image under the tag",
        Outcome::Recovered,
        mirror.blob_requests(),
        None,
    );
}

#[tokio::test]
async fn a_mirror_with_resolve_is_asked_for_the_tag_first() {
    let (registry, mirror, node, result) = pull_through(r#"["pull", "resolve"]"#).await;
    let pulled = result.expect("pull succeeds");
    assert_eq!(
        mirror.document_requests().first().map(String::as_str),
        Some("manifest v1")
    );
    assert!(!asked_for_the_tag(&registry));
    assert_eq!(
        pulled.digest,
        mirror.image().manifest_digest,
        "a host with resolve is trusted to say which image the tag names"
    );
    assert_eq!(pulled.layers, 1);
    assert_eq!(node.store.list().unwrap().len(), 1);
}
