//! `hoist serve`'s CRI ImageService, driven over its socket as kubelet drives it, beside a
//! containerd that uses Hoist's snapshotter and whose own CRI must agree with Hoist. Root, the
//! real containerd and the registry of `scripts/with-services.sh` (`..._needs_containerd`).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hoist::images::Images;
use hoist_harness::cri::{Image, PullContext};
use hoist_harness::image::{Compression, Content, Entry, Image as Spec, Layer};
use hoist_harness::proxy::{Proxy, Shaping, Stats};
use hoist_snapshotter::Store;

use crate::cri_services::Served;
use crate::{fixtures, proxy, run, services};

fn tmp() -> tempfile::TempDir {
    // Short: containerd's socket path must fit in a sockaddr_un.
    tempfile::Builder::new()
        .prefix("hoist-cri")
        .tempdir_in("/tmp")
        .unwrap()
}

/// A one-layer image whose config says `USER user`.
fn small(user: &str, text: &str) -> Spec {
    let mut image = Spec::new(vec![Layer::new(
        vec![Entry::dir("etc"), Entry::file("etc/which", text)],
        Compression::Gzip,
    )]);
    image.config.user = Some(user.to_owned());
    image
}

/// `len` incompressible bytes from `seed`.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn tags_and_digests(image: &Image) -> (BTreeSet<String>, BTreeSet<String>) {
    (
        image.repo_tags.iter().cloned().collect(),
        image.repo_digests.iter().cloned().collect(),
    )
}

fn committed(root: &std::path::Path) -> Vec<String> {
    Store::open(root)
        .unwrap()
        .list()
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect()
}

#[tokio::test]
async fn image_service_calls_and_containerd_agree_needs_containerd() {
    let test = "image_service_calls_and_containerd_agree_needs_containerd";
    if proxy::skip_unless(test, &proxy::missing()) {
        return;
    }
    let tmp = tmp();
    let mut hello = run::hello_image(tmp.path());
    hello.config.user = Some("1002".to_owned());
    let layout_dir = tmp.path().join("layout");
    let hello_written =
        hoist_harness::image::layout::write(&hello, &layout_dir, "it", &Default::default())
            .unwrap();
    let repository = format!("{}/hoist-it/cri-hello", services::registry());
    let pushed = hoist_harness::skopeo::push(
        &hello_written,
        &repository,
        "v1",
        &["v2", "v3"],
        &hoist_harness::skopeo::Options::default(),
    )
    .unwrap();
    let [hello_ref, v2, v3] = [0, 1, 2].map(|i| pushed.references[i].clone());
    let (_, www_ref) = fixtures::push(&small("www-data", "b"), "cri-www");
    let (_, pair_ref) = fixtures::push(&small("1003:1004", "c"), "cri-pair");
    let served = Served::start(tmp.path(), &[services::registry()]);
    let hoist = served.hoist().await;
    let none = PullContext::default();

    // PullImage answers with the image ID, the config digest, by tag and by digest.
    let id = hello_written.config.digest.to_string();
    let digest_ref = format!("{repository}@{}", pushed.manifest_digest);
    for reference in [&hello_ref, &v2, &v3, &digest_ref] {
        assert_eq!(
            hoist.pull(reference, &none).await.unwrap(),
            id,
            "{reference}"
        );
    }
    let www_id = hoist.pull(&www_ref, &none).await.unwrap();
    let pair_id = hoist.pull(&pair_ref, &none).await.unwrap();

    // ImageStatus: the same answer by ID, short ID, each tag and the digest.
    let by_id = hoist.status(&id).await.unwrap().expect("by ID");
    let expected_tags: BTreeSet<String> = [&hello_ref, &v2, &v3].into_iter().cloned().collect();
    let (tags, digests) = tags_and_digests(&by_id);
    assert_eq!(tags, expected_tags);
    assert_eq!(digests, BTreeSet::from([digest_ref.clone()]));
    assert!(by_id.size > 0);
    assert_eq!(by_id.uid.as_ref().map(|u| u.value), Some(1002));
    assert_eq!(by_id.username, "");
    let short = id.strip_prefix("sha256:").unwrap()[..12].to_owned();
    for reference in [&short, &hello_ref, &v3, &digest_ref] {
        assert_eq!(
            hoist.status(reference).await.unwrap().as_ref(),
            Some(&by_id),
            "{reference}"
        );
    }
    let www = hoist.status(&www_ref).await.unwrap().unwrap();
    assert_eq!((www.uid, www.username.as_str()), (None, "www-data"));
    let pair = hoist.status(&pair_id).await.unwrap().unwrap();
    assert_eq!(pair.uid.map(|u| u.value), Some(1003));
    assert_eq!(
        hoist.status(&format!("{repository}:nope")).await.unwrap(),
        None,
        "an unknown image is an empty answer"
    );
    let verbose = hoist.status_verbose(&hello_ref, true).await.unwrap();
    let info: serde_json::Value = serde_json::from_str(&verbose.info["info"]).unwrap();
    assert_eq!(info["imageSpec"]["config"]["User"], "1002");
    assert_eq!(info["chainID"].as_str().map(str::len), Some(71));

    // ListImages, all and filtered.
    let all = hoist.list(None).await.unwrap();
    let ids: BTreeSet<&str> = all.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(
        ids,
        BTreeSet::from([id.as_str(), www_id.as_str(), pair_id.as_str()])
    );
    let filtered = hoist.list(Some(&v2)).await.unwrap();
    assert_eq!(filtered, vec![by_id.clone()]);
    assert!(hoist.list(Some("no-such-image")).await.unwrap().is_empty());

    // ImageFsInfo: the store's usage.
    let fs = hoist.fs_info().await.unwrap();
    assert_eq!(fs.len(), 1);
    assert!(fs[0].used_bytes.as_ref().unwrap().value > 0);
    assert!(fs[0].inodes_used.as_ref().unwrap().value >= 3);
    assert_eq!(
        fs[0].fs_id.as_ref().unwrap().mountpoint,
        served.root.display().to_string()
    );

    // containerd's own CRI sees the same image.
    let containerd = served.containerd_cri().await;
    let theirs = containerd
        .status(&hello_ref)
        .await
        .unwrap()
        .unwrap_or_else(|| {
            panic!(
                "containerd's CRI lacks it\n{}",
                served.log_tail("containerd")
            )
        });
    assert_eq!(theirs.id, id);
    assert_eq!(tags_and_digests(&theirs), tags_and_digests(&by_id));
    assert_eq!(theirs.uid.map(|u| u.value), Some(1002));

    // A container runs from Hoist's layers.
    let output = served.ctr_ok(&[
        "run",
        "--rm",
        "--snapshotter",
        "hoist",
        &hello_ref,
        "hoist-cri-it",
        "/hello",
    ]);
    assert_eq!(output, run::OUTPUT);

    // RemoveImage by one tag removes every name; again is fine; containerd collects the
    // layers from Hoist's store.
    let hello_chain: Vec<String> = {
        let images = Images::open(&served.root).unwrap();
        let record = images.get(&hello_ref).unwrap().unwrap();
        record.chain_ids.iter().map(ToString::to_string).collect()
    };
    hoist.remove(&v2).await.unwrap();
    for reference in [&id, &hello_ref, &v3, &digest_ref] {
        assert_eq!(hoist.status(reference).await.unwrap(), None, "{reference}");
    }
    hoist.remove(&hello_ref).await.unwrap();
    assert!(
        Served::eventually(Duration::from_secs(10), || {
            let now = committed(&served.root);
            !hello_chain.iter().any(|c| now.contains(c))
        }),
        "containerd's collector left Hoist's snapshots: {:?}\n{}",
        committed(&served.root),
        served.log_tail("hoist")
    );
    assert_eq!(containerd.status(&hello_ref).await.unwrap(), None);
    assert_eq!(containerd.status(&id).await.unwrap(), None);

    // Two concurrent removes of one image both succeed.
    let (a, b) = tokio::join!(hoist.remove(&www_id), hoist.remove(&www_ref));
    a.unwrap();
    b.unwrap();
    assert_eq!(hoist.status(&www_ref).await.unwrap(), None);
    let left = hoist.list(None).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].id, pair_id);
}

/// A registry proxy with `shaping` in front of the test registry.
fn proxied(shaping: Shaping) -> Proxy {
    let upstream: SocketAddr = services::registry().parse().unwrap();
    Proxy::start(upstream, shaping).unwrap()
}

#[tokio::test]
async fn ten_concurrent_pulls_fetch_each_layer_once_needs_containerd() {
    let test = "ten_concurrent_pulls_fetch_each_layer_once_needs_containerd";
    if proxy::skip_unless(test, &proxy::missing()) {
        return;
    }
    let tmp = tmp();
    let layer = |seed: u64| {
        Layer::new(
            vec![Entry::file(
                format!("data-{seed}"),
                Content::from(noise(seed, 300_000)),
            )],
            Compression::Gzip,
        )
    };
    let image = Spec::new(vec![layer(1), layer(2), layer(3)]);
    let (written, pushed) = fixtures::push(&image, "cri-fanout");
    // 64 KiB chunks: every layer is several Range requests, which the proxy counts.
    const CHUNK: u64 = 64 << 10;
    let chunks: u64 = written.layers.iter().map(|l| l.size.div_ceil(CHUNK)).sum();
    // Requests wait 300 ms before going upstream, so that the pulls overlap.
    let proxy = proxied(Shaping {
        first_byte: Duration::from_millis(300),
        ..Shaping::default()
    });
    let reference = pushed.replacen(&services::registry(), &proxy.host(), 1);
    let served = Served::start_with(
        tmp.path(),
        &[proxy.host()],
        &format!("[pull]\nchunk_size = {CHUNK}\n"),
    );
    let hoist = Arc::new(served.hoist().await);
    let pulls: Vec<_> = (0..10)
        .map(|_| {
            let hoist = Arc::clone(&hoist);
            let reference = reference.clone();
            tokio::spawn(async move { hoist.pull(&reference, &PullContext::default()).await })
        })
        .collect();
    let mut ids = BTreeSet::new();
    for pull in pulls {
        ids.insert(pull.await.unwrap().unwrap());
    }
    assert_eq!(ids.len(), 1, "one image: {ids:?}");
    let stats = proxy.stats();
    let ranged = Stats::get(&stats.range_requests);
    assert_eq!(
        ranged,
        chunks,
        "each chunk of each layer fetched once; {} requests in all",
        Stats::get(&stats.requests)
    );
    assert_eq!(committed(&served.root).len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_pull_leaves_no_record_and_no_layer_needs_containerd() {
    let test = "a_cancelled_pull_leaves_no_record_and_no_layer_needs_containerd";
    if proxy::skip_unless(test, &proxy::missing()) {
        return;
    }
    let tmp = tmp();
    // A tiny first layer that commits at once, and a large incompressible one that a slow
    // link takes minutes to deliver.
    let image = Spec::new(vec![
        Layer::new(vec![Entry::file("small", "s")], Compression::Gzip),
        Layer::new(
            vec![Entry::file("big", Content::from(noise(7, 4_000_000)))],
            Compression::Gzip,
        ),
    ]);
    let (_, pushed) = fixtures::push(&image, "cri-cancel");
    let proxy = proxied(Shaping {
        link: Some(64 << 10),
        ..Shaping::default()
    });
    let reference = pushed.replacen(&services::registry(), &proxy.host(), 1);
    let served = Served::start(tmp.path(), &[proxy.host()]);
    let hoist = served.hoist().await;

    // The caller's deadline: the pull stops, and cleans up.
    let deadline = PullContext {
        timeout: Some(Duration::from_secs(3)),
        ..PullContext::default()
    };
    let err = hoist.pull(&reference, &deadline).await.unwrap_err();
    assert!(
        matches!(
            err.code(),
            tonic::Code::DeadlineExceeded | tonic::Code::Cancelled
        ),
        "{err}"
    );
    let clean = || {
        committed(&served.root).is_empty()
            && Images::open(&served.root)
                .unwrap()
                .list()
                .unwrap()
                .is_empty()
    };
    assert!(
        Served::eventually(Duration::from_secs(15), clean),
        "after the deadline: snapshots {:?}\n{}",
        committed(&served.root),
        served.log_tail("hoist")
    );

    // A caller that goes away mid-pull, once the first layer is committed.
    let pulling = {
        let hoist = hoist.clone();
        let reference = reference.clone();
        tokio::spawn(async move { hoist.pull(&reference, &PullContext::default()).await })
    };
    assert!(
        Served::eventually(Duration::from_secs(30), || committed(&served.root).len()
            == 1),
        "the first layer was never committed\n{}",
        served.log_tail("hoist")
    );
    pulling.abort();
    assert!(
        Served::eventually(Duration::from_secs(15), clean),
        "after the cancel: snapshots {:?}\n{}",
        committed(&served.root),
        served.log_tail("hoist")
    );
    assert_eq!(hoist.status(&reference).await.unwrap(), None);
    let entries = |sub: &str| -> Vec<std::path::PathBuf> {
        std::fs::read_dir(served.root.join(sub))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default()
    };
    assert!(
        Served::eventually(Duration::from_secs(10), || {
            ["staging", "snapshots", "images"]
                .iter()
                .all(|s| entries(s).is_empty())
        }),
        "left behind: {:?} {:?} {:?}",
        entries("staging"),
        entries("snapshots"),
        entries("images")
    );
    let images = served.ctr_ok(&["images", "ls", "-q"]);
    assert!(!images.contains("cri-cancel"), "{images}");
}

#[tokio::test]
async fn kept_layer_blobs_are_written_to_containerd_needs_containerd() {
    let test = "kept_layer_blobs_are_written_to_containerd_needs_containerd";
    if proxy::skip_unless(test, &proxy::missing()) {
        return;
    }
    let tmp = tmp();
    let image = Spec::new(vec![
        Layer::new(
            vec![Entry::file("a", Content::from(noise(3, 3_000_000)))],
            Compression::Gzip,
        ),
        Layer::new(vec![Entry::file("b", "b")], Compression::Zstd),
    ]);
    let (written, reference) = fixtures::push(&image, "cri-keep");
    let served = Served::start_with(
        tmp.path(),
        &[services::registry()],
        "[serve]\nkeep_layer_blobs = true\n",
    );
    let hoist = served.hoist().await;
    hoist
        .pull(&reference, &PullContext::default())
        .await
        .unwrap();
    let content = served.ctr_ok(&["content", "ls"]);
    for layer in &written.layers {
        let digest = layer.digest.to_string();
        assert!(content.contains(&digest), "{digest} not in:\n{content}");
        let kept = served
            .root
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"));
        assert!(
            !kept.exists(),
            "Hoist's copy is removed once containerd has it"
        );
    }
    // The manifest references them, so containerd's collector keeps them with the image.
    let manifest = served.ctr_ok(&["content", "ls"]);
    let line = manifest
        .lines()
        .find(|l| l.starts_with(&written.manifest.digest.to_string()))
        .unwrap();
    assert!(line.contains("containerd.io/gc.ref.content.l.0"), "{line}");
    assert!(line.contains("containerd.io/gc.ref.content.l.1"), "{line}");
}
