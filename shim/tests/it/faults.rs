//! Pulls against the in-process faulty registry: each fault ends either in success after a
//! retry with the right bytes, or in a clear error with nothing left in the store.

mod mirror_lies;

use hoist::registry::{Credentials, Secret};

use crate::reliability::{Outcome, record};
use crate::support::{Comp, Faults, FaultyRegistry, Node, image, indexed, noise, options, tar_of};

/// Three layers, the middle one spanning several 64 KiB chunks.
pub(crate) fn three_layers(comp: Comp) -> crate::support::Image {
    let big = noise(300_000, 7);
    image(
        &[
            tar_of(&[("etc/hello", b"hello")]),
            tar_of(&[("big/blob", &big), ("big/other", b"x")]),
            tar_of(&[("top", b"top")]),
        ],
        comp,
        false,
    )
}

pub(crate) async fn pull_with(
    faults: Faults,
    comp: Comp,
) -> (
    FaultyRegistry,
    Node,
    hoist::pull::Result<hoist::pull::Pulled>,
) {
    let registry = FaultyRegistry::start(three_layers(comp), faults).await;
    let node = Node::new(&registry.host(), options(64 << 10));
    let result = node
        .pull(&registry.reference(), Credentials::Anonymous)
        .await;
    (registry, node, result)
}

pub(crate) fn assert_pulled(node: &Node, result: &hoist::pull::Result<hoist::pull::Pulled>) {
    let pulled = result.as_ref().expect("pull succeeds");
    assert_eq!(pulled.layers, 3);
    assert_eq!(node.store.list().unwrap().len(), 3);
    let big = node
        .store
        .list()
        .unwrap()
        .into_iter()
        .map(|info| {
            node.store
                .get(&info.name)
                .unwrap()
                .unwrap()
                .fs
                .join("big/blob")
        })
        .find(|p| p.exists())
        .expect("the big layer is committed");
    assert_eq!(
        std::fs::read(big).unwrap(),
        noise(300_000, 7),
        "the right bytes"
    );
}

#[tokio::test]
async fn pulls_every_compression_in_range_chunks() {
    for comp in [Comp::Gzip, Comp::Zstd, Comp::None] {
        let (registry, node, result) = pull_with(Faults::default(), comp).await;
        assert_pulled(&node, &result);
        assert!(
            registry.blob_requests() > 3,
            "{comp:?}: the big layer was fetched in chunks"
        );
    }
}

#[tokio::test]
async fn recovers_from_transient_faults() {
    let cases = [
        (
            "500 then success",
            Faults {
                server_errors: 2,
                ..Faults::default()
            },
        ),
        (
            "502 then success",
            Faults {
                server_errors: 2,
                error_status: Some(502),
                ..Faults::default()
            },
        ),
        (
            "503 then success",
            Faults {
                server_errors: 2,
                error_status: Some(503),
                ..Faults::default()
            },
        ),
        (
            "429 Retry-After then success",
            Faults {
                too_many: 1,
                ..Faults::default()
            },
        ),
        (
            "reset mid-chunk",
            Faults {
                reset_after: Some((1000, 2)),
                ..Faults::default()
            },
        ),
        (
            "range ignored",
            Faults {
                ignore_range: true,
                ..Faults::default()
            },
        ),
        (
            "range ignored, reset mid-stream",
            Faults {
                ignore_range: true,
                reset_after: Some((50_000, 1)),
                ..Faults::default()
            },
        ),
        (
            "no content-length",
            Faults {
                ignore_range: true,
                no_length: true,
                ..Faults::default()
            },
        ),
    ];
    for (name, faults) in cases {
        let (registry, node, result) = pull_with(faults, Comp::Gzip).await;
        assert!(result.is_ok(), "{name}: {:?}", result.err());
        assert_pulled(&node, &result);
        record(name, Outcome::Recovered, registry.blob_requests(), None);
    }
}

#[tokio::test]
async fn fails_cleanly_on_lies() {
    let cases = [
        (
            "wrong blob digest",
            Faults {
                corrupt: true,
                ..Faults::default()
            },
            "hashes to",
        ),
        (
            "blob larger than its descriptor",
            Faults {
                extra_bytes: 10,
                ..Faults::default()
            },
            "more than",
        ),
        (
            "blob larger than its descriptor, range ignored",
            Faults {
                extra_bytes: 10,
                ignore_range: true,
                ..Faults::default()
            },
            "more than",
        ),
        (
            "persistent 500",
            Faults {
                server_errors: 1000,
                ..Faults::default()
            },
            "500",
        ),
        (
            "persistent 502",
            Faults {
                server_errors: 1000,
                error_status: Some(502),
                ..Faults::default()
            },
            "502",
        ),
        (
            "persistent 503",
            Faults {
                server_errors: 1000,
                error_status: Some(503),
                ..Faults::default()
            },
            "503",
        ),
        (
            "Content-Length larger than the blob",
            Faults {
                ignore_range: true,
                lie_length: Some(100),
                ..Faults::default()
            },
            // The server cannot send the bytes it promised: the body always ends early.
            "blob sha256:",
        ),
        (
            "Content-Length smaller than the blob",
            Faults {
                ignore_range: true,
                lie_length: Some(-100),
                ..Faults::default()
            },
            "Content-Length",
        ),
        (
            "Content-Range other than requested",
            Faults {
                lie_range: true,
                ..Faults::default()
            },
            "Content-Range",
        ),
        (
            "truncated every time",
            Faults {
                reset_after: Some((100, 1000)),
                ..Faults::default()
            },
            "blob",
        ),
    ];
    for (name, faults, needle) in cases {
        let (registry, node, result) = pull_with(faults, Comp::Gzip).await;
        let err = result.expect_err(name).to_string();
        assert!(
            err.contains("test/app:v1"),
            "{name}: error names the image: {err}"
        );
        assert!(
            err.contains("sha256:"),
            "{name}: error names the layer: {err}"
        );
        assert!(err.contains(needle), "{name}: {err}");
        node.assert_clean(registry.image(), &err);
        record(
            name,
            Outcome::FailedCleanly,
            registry.blob_requests(),
            Some(&err),
        );
    }
}

#[tokio::test]
async fn rejects_a_layer_whose_diff_id_lies() {
    let lying = image(
        &[tar_of(&[("a", b"a")]), tar_of(&[("b", b"b")])],
        Comp::Gzip,
        true,
    );
    let registry = FaultyRegistry::start(lying, Faults::default()).await;
    let node = Node::new(&registry.host(), options(64 << 10));
    let err = node
        .pull(&registry.reference(), Credentials::Anonymous)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("image config says"), "{err}");
    node.assert_empty();
    record(
        "wrong diff ID",
        Outcome::FailedCleanly,
        registry.blob_requests(),
        Some(&err.to_string()),
    );
}

#[tokio::test]
async fn redirect_to_blob_storage_drops_authorization() {
    let faults = Faults {
        redirect: true,
        basic_auth: true,
        ..Faults::default()
    };
    let registry = FaultyRegistry::start(three_layers(Comp::Gzip), faults).await;
    let node = Node::new(&registry.host(), options(64 << 10));
    let anonymous = node
        .pull(&registry.reference(), Credentials::Anonymous)
        .await;
    assert!(
        anonymous
            .unwrap_err()
            .to_string()
            .contains("user name and password")
    );
    let credentials = Credentials::Basic {
        username: "user".into(),
        password: Secret::new("secret"),
    };
    let result = node.pull(&registry.reference(), credentials).await;
    assert_pulled(&node, &result);
    let seen = registry.storage_authorization();
    assert!(seen.len() > 3, "chunks went to blob storage: {seen:?}");
    assert!(
        seen.iter().all(Option::is_none),
        "Authorization leaked to blob storage: {seen:?}"
    );
}

#[tokio::test]
async fn repeat_pull_fetches_nothing() {
    let (registry, node, result) = pull_with(Faults::default(), Comp::Zstd).await;
    assert_pulled(&node, &result);
    let before = registry.blob_requests();
    let again = node
        .pull(&registry.reference(), Credentials::Anonymous)
        .await
        .unwrap();
    assert_eq!(again.fetched_layers, 0);
    assert_eq!(
        registry.blob_requests(),
        before,
        "no layer blob was requested again"
    );
}

#[tokio::test]
async fn bearer_token_flow_fetches_one_token_for_the_repository() {
    let faults = Faults {
        bearer_auth: true,
        ..Faults::default()
    };
    let registry = FaultyRegistry::start(three_layers(Comp::Gzip), faults).await;
    let node = Node::new(&registry.host(), options(64 << 10));
    let wrong = Credentials::Basic {
        username: "user".into(),
        password: Secret::new("wrong-password"),
    };
    let err = node
        .pull(&registry.reference(), wrong)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("refused access") && !err.contains("wrong-password"),
        "{err}"
    );
    node.assert_empty();
    let credentials = Credentials::Basic {
        username: "user".into(),
        password: Secret::new("secret"),
    };
    let result = node.pull(&registry.reference(), credentials).await;
    assert_pulled(&node, &result);
    let tokens = registry.token_requests();
    // One refused request with the wrong password, then one token reused for every request.
    assert_eq!(tokens.len(), 2, "{tokens:?}");
    assert!(registry.blob_requests() > 3);
}

#[tokio::test]
async fn picks_the_platform_from_an_index_and_keeps_the_index() {
    let img = indexed(three_layers(Comp::Gzip));
    let (index_digest, manifest_digest) = (img.index.as_ref().unwrap().1, img.manifest_digest);
    let registry = FaultyRegistry::start(img, Faults::default()).await;
    let mut opts = options(64 << 10);
    opts.platform = "linux/amd64".parse().unwrap();
    let node = Node::new(&registry.host(), opts);
    let pulled = node
        .pull(&registry.reference(), Credentials::Anonymous)
        .await
        .unwrap();
    assert_eq!(
        pulled.digest, index_digest,
        "the reference resolved to the index"
    );
    let images = node.puller.images();
    let record = images
        .get(&registry.reference().to_string())
        .unwrap()
        .unwrap();
    assert_eq!(record.target, index_digest);
    assert_eq!(record.manifest, manifest_digest);
    assert!(
        images.blob(&index_digest).unwrap().is_some(),
        "the index is kept for registration"
    );

    let mut arm = options(64 << 10);
    arm.platform = "linux/arm64".parse().unwrap();
    let other = Node::new(&registry.host(), arm);
    let err = other
        .pull(&registry.reference(), Credentials::Anonymous)
        .await
        .unwrap_err();
    // The registry answers the unknown arm64 digest with the index, which is larger than the
    // descriptor says: the pull stops there.
    assert!(err.to_string().contains("larger than 10 bytes"), "{err}");
    other.assert_empty();
}
