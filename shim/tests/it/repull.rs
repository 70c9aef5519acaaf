//! Pulling an image the node already has (KEP-2535: kubelet 1.35 pulls a present image again
//! when a pod brings other credentials, and trusts the answer): the registry is asked for the
//! reference's manifest with the pull's credentials every time, and nothing else that the node
//! stores is fetched again, through an index too.

use hoist::error::Kind;
use hoist::registry::{Credentials, Secret};

use crate::support::{Comp, Faults, FaultyRegistry, Node, indexed, options};

fn basic(password: &str) -> Credentials {
    Credentials::Basic {
        username: "user".into(),
        password: Secret::new(password),
    }
}

#[tokio::test]
async fn a_present_image_costs_one_manifest_request_and_needs_good_credentials() {
    let image = indexed(crate::faults::three_layers(Comp::Gzip));
    let platform_manifest = image.manifest_digest;
    let faults = Faults {
        basic_auth: true,
        ..Faults::default()
    };
    let registry = FaultyRegistry::start(image, faults).await;
    let mut opts = options(64 << 10);
    opts.platform = "linux/amd64".parse().unwrap();
    let node = Node::new(&registry.host(), opts);
    let reference = registry.reference();

    let first = node.pull(&reference, basic("secret")).await.unwrap();
    assert_eq!(
        registry.document_requests(),
        [
            "manifest v1".to_owned(),
            format!("manifest {platform_manifest}"),
            "config".to_owned()
        ]
    );
    let layers = registry.blob_requests();

    let again = node.pull(&reference, basic("secret")).await.unwrap();
    assert_eq!(again.id, first.id);
    assert_eq!(again.fetched_layers, 0);
    assert_eq!(
        registry.document_requests()[3..],
        ["manifest v1".to_owned()],
        "only the reference's manifest is asked for again"
    );
    assert_eq!(registry.blob_requests(), layers);

    // The answer is the registry's, not the store's: refused or missing credentials fail.
    for (what, credentials) in [
        ("wrong password", basic("not-the-secret")),
        ("anonymous", Credentials::Anonymous),
    ] {
        let err = node.pull(&reference, credentials).await.unwrap_err();
        assert_eq!(err.kind(), Kind::Unauthenticated, "{what}: {err}");
    }
    assert_eq!(registry.document_requests().len(), 4);
    assert!(
        node.puller
            .images()
            .get(&reference.to_string())
            .unwrap()
            .is_some()
    );
}
