//! Faults that must hit a bound: a stalled body (progress timeout), decompression bombs (size
//! and ratio), malformed and huge manifests, a redirect loop. Each ends in success with the
//! right bytes or a clear error naming the image (and the layer, for layer faults) with
//! nothing left in the store.

use std::time::Duration;

use hoist::registry::Credentials;

use crate::faults::{assert_pulled, three_layers};
use crate::reliability::{Outcome, record};
use crate::support::{Comp, Faults, FaultyRegistry, Node, image, options, tar_of};

/// A node whose requests fail after one second without a byte.
fn impatient(registry: &FaultyRegistry, retries: u32) -> Node {
    let mut opts = options(64 << 10);
    opts.fetch.retries = retries;
    let registry_options = hoist::registry::Options {
        progress_timeout: Duration::from_secs(1),
        ..Default::default()
    };
    Node::with_registry(&registry.host(), opts, registry_options)
}

/// Asserts a clean failure naming the image (and a layer when `layer`), and records it.
fn assert_failed_cleanly(
    name: &str,
    node: &Node,
    registry: &FaultyRegistry,
    result: hoist::pull::Result<hoist::pull::Pulled>,
    needle: &str,
    layer: bool,
) {
    let err = result.expect_err(name).to_string();
    assert!(
        err.contains("test/app:v1"),
        "{name}: names the image: {err}"
    );
    assert!(
        !layer || err.contains("sha256:"),
        "{name}: names the layer: {err}"
    );
    assert!(err.contains(needle), "{name}: {err}");
    if layer {
        node.assert_clean(registry.image(), &err);
    } else {
        node.assert_empty();
    }
    record(
        name,
        Outcome::FailedCleanly,
        registry.blob_requests(),
        Some(&err),
    );
}

#[tokio::test]
async fn a_stall_past_the_progress_timeout_is_retried() {
    let faults = Faults {
        stall: Some((Duration::from_secs(3), 1)),
        ..Faults::default()
    };
    let registry = FaultyRegistry::start(three_layers(Comp::Gzip), faults).await;
    let node = impatient(&registry, 3);
    let result = node
        .pull(&registry.reference(), Credentials::Anonymous)
        .await;
    assert_pulled(&node, &result);
    let name = "stall past the progress timeout, once";
    record(name, Outcome::Recovered, registry.blob_requests(), None);
}

#[tokio::test]
async fn a_registry_that_always_stalls_fails_cleanly() {
    let faults = Faults {
        stall: Some((Duration::from_secs(3), usize::MAX)),
        ..Faults::default()
    };
    let registry = FaultyRegistry::start(three_layers(Comp::Gzip), faults).await;
    let node = impatient(&registry, 1);
    let result = node
        .pull(&registry.reference(), Credentials::Anonymous)
        .await;
    let name = "stall past the progress timeout, always";
    assert_failed_cleanly(name, &node, &registry, result, "blob", true);
}

/// One layer holding `size` zero bytes in one file: it compresses to almost nothing.
fn bomb(size: usize, comp: Comp) -> crate::support::Image {
    let zeros = vec![0u8; size];
    image(&[tar_of(&[("zeros", &zeros)])], comp, false)
}

#[tokio::test]
async fn decompression_bombs_stop_at_the_configured_bounds() {
    // A 40 MiB layer that zstd makes a few KiB: past a 100:1 ratio (and its 16 MiB floor).
    let registry = FaultyRegistry::start(bomb(40 << 20, Comp::Zstd), Faults::default()).await;
    let mut opts = options(64 << 10);
    opts.max_layer_ratio = Some(100);
    let node = Node::new(&registry.host(), opts);
    let result = node
        .pull(&registry.reference(), Credentials::Anonymous)
        .await;
    let name = "decompression bomb past max_layer_ratio";
    assert_failed_cleanly(
        name,
        &node,
        &registry,
        result,
        "decompresses to more than",
        true,
    );

    // A 2 MiB gzip layer against a 1 MiB max_layer_size.
    let registry = FaultyRegistry::start(bomb(2 << 20, Comp::Gzip), Faults::default()).await;
    let mut opts = options(64 << 10);
    opts.max_layer_size = Some(1 << 20);
    let node = Node::new(&registry.host(), opts);
    let result = node
        .pull(&registry.reference(), Credentials::Anonymous)
        .await;
    let name = "decompression bomb past max_layer_size";
    assert_failed_cleanly(
        name,
        &node,
        &registry,
        result,
        "more than 1048576 bytes",
        true,
    );

    // The same bounds let an ordinary image through.
    let registry = FaultyRegistry::start(three_layers(Comp::Gzip), Faults::default()).await;
    let mut opts = options(64 << 10);
    opts.max_layer_ratio = Some(100);
    opts.max_layer_size = Some(1 << 20);
    let node = Node::new(&registry.host(), opts);
    let result = node
        .pull(&registry.reference(), Credentials::Anonymous)
        .await;
    assert_pulled(&node, &result);
}

#[tokio::test]
async fn malformed_and_huge_manifests_fail_cleanly() {
    let cases: [(&str, Vec<u8>, &str); 3] = [
        ("malformed manifest", b"{\"schemaVersion\": 2, \"layers\": [".to_vec(), "malformed"),
        (
            "manifest of the wrong shape",
            br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":{}}"#
                .to_vec(),
            "malformed",
        ),
        ("huge manifest (5 MiB)", vec![b' '; 5 << 20], "larger than"),
    ];
    for (name, body, needle) in cases {
        let faults = Faults {
            manifest_body: Some(body),
            ..Faults::default()
        };
        let registry = FaultyRegistry::start(three_layers(Comp::Gzip), faults).await;
        let node = Node::new(&registry.host(), options(64 << 10));
        let result = node
            .pull(&registry.reference(), Credentials::Anonymous)
            .await;
        assert_failed_cleanly(name, &node, &registry, result, needle, false);
        assert_eq!(registry.blob_requests(), 0, "{name}: no layer was fetched");
    }
}

#[tokio::test]
async fn a_redirect_loop_fails_cleanly() {
    let faults = Faults {
        redirect_loop: true,
        ..Faults::default()
    };
    let registry = FaultyRegistry::start(three_layers(Comp::Gzip), faults).await;
    let node = Node::new(&registry.host(), options(64 << 10));
    let result = node
        .pull(&registry.reference(), Credentials::Anonymous)
        .await;
    assert_failed_cleanly("redirect loop", &node, &registry, result, "redirect", true);
    // Not retried: at most one redirect chain (reqwest follows 10) per layer.
    let requests = registry.blob_requests();
    assert!(requests <= 3 * 11, "{requests} blob requests");
}
