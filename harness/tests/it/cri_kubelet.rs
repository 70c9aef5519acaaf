//! What kubelet 1.35 and 1.36 send and read, through `hoist serve`'s socket beside containerd:
//! the `ImageSpec` fields (`user_specified_image`, `runtime_handler`, `image_ref`),
//! `StreamImages`, `Image.pinned` (from `[serve] pinned_images` and containerd's
//! `io.cri-containerd.pinned` label), `ImageFsInfo` as containerd answers it, and a stalled
//! registry ended by `progress_timeout_secs` when the caller (kubelet) sets no deadline.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hoist::proto::cri::v1::ImageSpec;
use hoist_harness::cri::{Image, PullContext};
use hoist_harness::image::{Compression, Entry, Image as Spec, Layer};
use hoist_harness::proxy::{Fault, Proxy, Rule, Shaping};

use crate::cri_services::Served;
use crate::{fixtures, proxy, services};

pub(crate) fn tmp() -> tempfile::TempDir {
    // Short: containerd's socket path must fit in a sockaddr_un.
    tempfile::Builder::new()
        .prefix("hoist-k8s")
        .tempdir_in("/tmp")
        .unwrap()
}

fn one_layer(text: &str) -> Spec {
    Spec::new(vec![Layer::new(
        vec![Entry::dir("etc"), Entry::file("etc/which", text)],
        Compression::Gzip,
    )])
}

fn pinned(images: &[Image]) -> BTreeMap<String, bool> {
    images.iter().map(|i| (i.id.clone(), i.pinned)).collect()
}

/// The labels column of `ctr images ls` for the record `name`.
fn labels(served: &Served, name: &str) -> String {
    let listing = served.ctr_ok(&["images", "ls"]);
    listing
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("containerd has no record {name}:\n{listing}"))
        .to_owned()
}

#[tokio::test]
async fn kubelet_fields_stream_images_and_pinned_images_needs_containerd() {
    let test = "kubelet_fields_stream_images_and_pinned_images_needs_containerd";
    if proxy::skip_unless(test, &proxy::missing()) {
        return;
    }
    let tmp = tmp();
    let (_, pause_ref) = fixtures::push(&one_layer("pause"), "k8s-pause");
    let (_, app_ref) = fixtures::push(&one_layer("app"), "k8s-app");
    let served = Served::start_with(
        tmp.path(),
        &[services::registry()],
        &format!("[serve]\npinned_images = [\"{pause_ref}\"]\n"),
    );
    let hoist = served.hoist().await;
    let none = PullContext::default();

    // PullImage with what kubelet 1.35 sends: any runtime handler is accepted, and one image
    // serves them all, as in containerd with one snapshotter.
    let spec = |image: &str, handler: &str| ImageSpec {
        image: image.to_owned(),
        user_specified_image: "k8s-app:v1".to_owned(),
        runtime_handler: handler.to_owned(),
        ..ImageSpec::default()
    };
    let app_id = hoist
        .pull_spec(spec(&app_ref, "kata"), &none)
        .await
        .unwrap();
    assert_eq!(
        hoist.pull_spec(spec(&app_ref, ""), &none).await.unwrap(),
        app_id
    );
    let pause_id = hoist.pull(&pause_ref, &none).await.unwrap();
    let by_handler = hoist.status_spec(spec(&app_ref, "runc")).await.unwrap();
    assert_eq!(by_handler.map(|i| i.id), Some(app_id.clone()));
    // ImageSpec.image_ref alone (cri-api 0.36, image volumes) names the image by its ID,
    // which is PullImage's image_ref and Image.id.
    let by_ref = ImageSpec {
        image_ref: app_id.clone(),
        ..ImageSpec::default()
    };
    let status = hoist
        .status_spec(by_ref)
        .await
        .unwrap()
        .expect("by image_ref");
    assert_eq!(status.id, app_id);

    // Pinned: the configured image, on every call that describes it, and in containerd.
    let listed = hoist.list(None).await.unwrap();
    let expected = BTreeMap::from([(pause_id.clone(), true), (app_id.clone(), false)]);
    assert_eq!(pinned(&listed), expected);
    assert!(hoist.status(&pause_ref).await.unwrap().unwrap().pinned);
    assert!(hoist.status(&pause_id).await.unwrap().unwrap().pinned);
    assert!(!hoist.status(&app_ref).await.unwrap().unwrap().pinned);
    for name in [&pause_ref, &pause_id] {
        let line = labels(&served, name);
        assert!(line.contains("io.cri-containerd.pinned=pinned"), "{line}");
    }
    let line = labels(&served, &app_ref);
    assert!(!line.contains("io.cri-containerd.pinned"), "{line}");

    // StreamImages: every image once, in non-empty messages, as ListImages describes them.
    let batches = hoist.stream(None).await.unwrap();
    assert!(batches.iter().all(|b| !b.is_empty()), "{batches:?}");
    let streamed: Vec<Image> = batches.into_iter().flatten().collect();
    let ids =
        |images: &[Image]| -> BTreeSet<String> { images.iter().map(|i| i.id.clone()).collect() };
    assert_eq!(streamed.len(), listed.len());
    assert_eq!(ids(&streamed), ids(&listed));
    assert_eq!(pinned(&streamed), expected);
    let filtered = hoist.stream(Some(&app_ref)).await.unwrap();
    assert_eq!(filtered.len(), 1);
    assert_eq!(ids(&filtered[0]), BTreeSet::from([app_id.clone()]));

    // An image containerd labels pinned (as containerd 1.7+ labels its sandbox image) is
    // pinned in Hoist's answers too, and pulling it again through Hoist keeps the label.
    served.ctr_ok(&[
        "images",
        "label",
        &app_ref,
        "io.cri-containerd.pinned=pinned",
    ]);
    assert!(hoist.status(&app_id).await.unwrap().unwrap().pinned);
    assert_eq!(hoist.pull(&app_ref, &none).await.unwrap(), app_id);
    let line = labels(&served, &app_ref);
    assert!(line.contains("io.cri-containerd.pinned=pinned"), "{line}");
    assert!(line.contains("io.cri-containerd.image=managed"), "{line}");
    assert!(hoist.list(None).await.unwrap().iter().all(|i| i.pinned));

    // ImageFsInfo as containerd answers it: one image filesystem, no container filesystem.
    let fs = hoist.fs_info_response().await.unwrap();
    assert_eq!(fs.image_filesystems.len(), 1);
    assert!(fs.container_filesystems.is_empty());
    let usage = &fs.image_filesystems[0];
    assert!(usage.timestamp > 0);
    assert!(usage.used_bytes.as_ref().unwrap().value > 0);
    assert_eq!(
        usage.fs_id.as_ref().unwrap().mountpoint,
        served.root.display().to_string()
    );
}

#[tokio::test]
async fn a_stalled_registry_ends_the_pull_at_the_progress_timeout_needs_containerd() {
    let test = "a_stalled_registry_ends_the_pull_at_the_progress_timeout_needs_containerd";
    if proxy::skip_unless(test, &proxy::missing()) {
        return;
    }
    let tmp = tmp();
    let (_, pushed) = fixtures::push(&one_layer("stalled"), "k8s-stall");
    let upstream: SocketAddr = services::registry().parse().unwrap();
    let proxy = Proxy::start(upstream, Shaping::default()).unwrap();
    // Every blob request: headers, then silence far longer than the test.
    proxy.inject(Rule::blobs(
        Fault::Stall {
            after_bytes: 0,
            duration: Duration::from_secs(600),
        },
        None,
    ));
    let reference = pushed.replacen(&services::registry(), &proxy.host(), 1);
    let served = Served::start_with(
        tmp.path(),
        &[proxy.host()],
        "[pull]\nprogress_timeout_secs = 2\nretries = 1\nbackoff_ms = 100\n",
    );
    let hoist = served.hoist().await;

    // kubelet sets no deadline on PullImage: the progress timeout alone ends it.
    let started = Instant::now();
    let err = hoist
        .pull(&reference, &PullContext::default())
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err}");
    let message = err.to_string();
    assert!(message.contains("k8s-stall"), "names the image: {message}");
    assert!(
        message.contains("progress_timeout_secs"),
        "says which setting ended it: {message}"
    );
    assert!(
        elapsed < Duration::from_secs(120),
        "ended by the 2 s progress timeout, not the 600 s stall: {elapsed:?}"
    );
    assert!(proxy.stats().logged().iter().any(|r| r.is_blob()));
    assert_eq!(hoist.status(&reference).await.unwrap(), None);
}
