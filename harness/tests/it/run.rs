//! Issue 3 end to end: an image pulled by Hoist's engine into the store that the running
//! `hoist-snapshotter` serves, recorded in containerd by the register stage, runs with
//! `ctr run --snapshotter hoist` with no download and no unpack by containerd; and issue 4's
//! garbage-collection contract: deleting the image records lets containerd's collector remove
//! the image's content and Hoist's snapshots. Root, the real containerd and the registry of
//! `scripts/with-services.sh` (`..._needs_containerd`).

use std::sync::Arc;

use hoist::containerd::{Client, MANAGED_LABEL};
use hoist::images::{Images, Record};
use hoist::pull::register::{self, Blobs, Registered};
use hoist::pull::{Options, Pulled, Puller, Silent};
use hoist::registry::Credentials;
use hoist_harness::image::{Compression, Entry, Image, Layer, layout};
use hoist_snapshotter::Store;

use crate::fixtures;
use crate::proxy::{self, Proxied};

/// containerd's CRI namespace, where kubelet's images live.
const NAMESPACE: &str = "k8s.io";

/// What the container prints.
pub const OUTPUT: &str = "hello from hoist: from layer three\n";

const PROGRAM: &str = r#"#include <stdio.h>
int main(void) {
    char buf[128] = {0};
    FILE *f = fopen("/etc/hoist-message", "r");
    if (!f) { puts("hello from hoist: no message"); return 1; }
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    printf("hello from hoist: %s\n", buf);
    return 0;
}
"#;

/// Three gzip layers: a static `/hello` that prints `/etc/hoist-message`, which the second
/// layer writes and the third overwrites (overlayfs must show the third).
pub fn hello_image(dir: &std::path::Path) -> Image {
    let source = dir.join("hello.c");
    let binary = dir.join("hello");
    std::fs::write(&source, PROGRAM).unwrap();
    let gcc = std::process::Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(&binary)
        .arg(&source)
        .output()
        .unwrap();
    assert!(
        gcc.status.success(),
        "gcc: {}",
        String::from_utf8_lossy(&gcc.stderr)
    );
    let program = std::fs::read(&binary).unwrap();
    let message = |text: &str| {
        Layer::new(
            vec![Entry::dir("etc"), Entry::file("etc/hoist-message", text)],
            Compression::Gzip,
        )
    };
    let mut image = Image::new(vec![
        Layer::new(
            vec![
                Entry::file("hello", program).with_mode(0o755),
                Entry::dir("etc"),
            ],
            Compression::Gzip,
        ),
        message("from layer two"),
        message("from layer three"),
    ]);
    image.config.cmd = vec!["/hello".to_owned()];
    image
}

/// A pulled and registered image beside a containerd that uses Hoist's snapshotter.
struct Registration {
    reference: String,
    written: layout::Written,
    pulled: Pulled,
    records: Vec<Record>,
    registered: Vec<Registered>,
    client: Client,
    proxied: Proxied,
    _tmp: tempfile::TempDir,
}

/// Builds and pushes the image, starts the snapshotter and containerd, pulls with the
/// engine into the snapshotter's store and registers every record; `None` means skip.
async fn pull_and_register(test: &str, name: &str) -> Option<Registration> {
    if proxy::skip_unless(test, &proxy::missing()) {
        return None;
    }
    let tmp = tempfile::Builder::new()
        .prefix("hoist-run")
        .tempdir_in("/tmp")
        .unwrap();
    let (written, reference) = fixtures::push(&hello_image(tmp.path()), name);
    let proxied = Proxied::start(tmp.path());

    // The engine writes into the store the running snapshotter serves (another process).
    let store = Arc::new(Store::open(&proxied.root).unwrap());
    let client = hoist::registry::Client::new(&hoist::registry::Options {
        insecure: vec![crate::services::registry()],
        ..Default::default()
    })
    .unwrap();
    let images = Images::open(&proxied.root).unwrap();
    let puller = Puller::new(Arc::new(client), store, images, Options::default());
    let pulled = puller
        .pull(
            &reference.parse().unwrap(),
            Credentials::Anonymous,
            Arc::new(Silent),
        )
        .await
        .unwrap();
    assert_eq!(pulled.fetched_layers, 3);

    let containerd = Client::connect(&proxied.containerd, NAMESPACE)
        .await
        .unwrap();
    let records = puller.images().list().unwrap();
    assert_eq!(
        records.len(),
        2,
        "a tag record and a digest record: {records:#?}"
    );
    let mut registered = Vec::new();
    for record in &records {
        let blobs = Blobs::load(puller.images(), record).unwrap();
        let options = register::Options::default();
        registered.push(
            register::register(&containerd, record, &blobs, &options)
                .await
                .unwrap(),
        );
        // Idempotent: a second registration updates what the first created.
        register::register(&containerd, record, &blobs, &options)
            .await
            .unwrap();
    }
    Some(Registration {
        reference,
        written,
        pulled,
        records,
        registered,
        client: containerd,
        proxied,
        _tmp: tmp,
    })
}

impl Registration {
    fn chain_ids(&self) -> Vec<String> {
        self.records[0]
            .chain_ids
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    /// Every snapshot in Hoist's store, as (name, kind, parent), sorted.
    fn snapshots(&self) -> Vec<(String, String, Option<String>)> {
        let store = Store::open(&self.proxied.root).unwrap();
        let mut all: Vec<_> = store
            .walk::<&str>(&[])
            .unwrap()
            .into_iter()
            .map(|i| (i.name, format!("{:?}", i.kind), i.parent))
            .collect();
        all.sort();
        all
    }

    /// Makes containerd's garbage collector run now: a `--sync` lease deletion collects.
    fn collect_garbage(&self) {
        self.proxied
            .ctr_ok(NAMESPACE, &["leases", "create", "--id", "gc-now"]);
        self.proxied
            .ctr_ok(NAMESPACE, &["leases", "delete", "--sync", "gc-now"]);
    }
}

#[tokio::test]
async fn registered_engine_pull_runs_without_download_or_unpack_needs_containerd() {
    let test = "registered_engine_pull_runs_without_download_or_unpack_needs_containerd";
    let Some(r) = pull_and_register(test, "run-hello").await else {
        return;
    };
    let chain_ids = r.chain_ids();

    // The image records, as containerd's CRI expects them.
    let tag = r
        .records
        .iter()
        .find(|rec| rec.name == r.reference)
        .unwrap();
    for name in [tag.name.clone(), format!("{}", tag.config)] {
        let image = r
            .client
            .image(&name)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("no {name}"));
        assert_eq!(image.target.digest, r.pulled.digest, "{name}");
        assert_eq!(
            image.target.media_type, r.written.manifest.media_type,
            "{name}"
        );
        assert_eq!(image.target.size, r.written.manifest.size, "{name}");
        assert_eq!(
            image.labels.get(MANAGED_LABEL.0).map(String::as_str),
            Some(MANAGED_LABEL.1)
        );
    }
    assert_eq!(r.registered[0].adopted, 3);
    assert_eq!(r.registered[0].layer_blobs, 0);

    // containerd's content: the manifest and the config with their GC references, no layer.
    let blobs = r.client.blobs().await.unwrap();
    let mut digests: Vec<String> = blobs.iter().map(|b| b.digest.to_string()).collect();
    digests.sort();
    let mut expected = vec![tag.manifest.to_string(), tag.config.to_string()];
    expected.sort();
    assert_eq!(
        digests, expected,
        "only the manifest and the config: {blobs:#?}"
    );
    let labels = |digest: &hoist::Digest| {
        blobs
            .iter()
            .find(|b| b.digest == *digest)
            .unwrap()
            .labels
            .clone()
    };
    assert_eq!(
        labels(&tag.config).get("containerd.io/gc.ref.snapshot.hoist"),
        chain_ids.last()
    );
    let manifest_labels = labels(&tag.manifest);
    assert_eq!(
        manifest_labels.get("containerd.io/gc.ref.content.config"),
        Some(&tag.config.to_string())
    );
    assert!(
        !manifest_labels
            .keys()
            .any(|k| k.starts_with("containerd.io/gc.ref.content.l.")),
        "no reference to layer blobs containerd does not have: {manifest_labels:?}"
    );

    // The GC labels keep the adopted snapshots through a collection.
    r.collect_garbage();
    let listed = r
        .proxied
        .ctr_ok(NAMESPACE, &["snapshots", "--snapshotter", "hoist", "ls"]);
    for chain_id in &chain_ids {
        assert!(
            listed.contains(chain_id.as_str()),
            "{chain_id} not in:\n{listed}"
        );
    }
    let engine: Vec<_> = {
        let mut e: Vec<_> = r.records[0]
            .chain_ids
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let parent = i.checked_sub(1).map(|p| chain_ids[p].clone());
                (c.to_string(), "Committed".to_owned(), parent)
            })
            .collect();
        e.sort();
        e
    };
    assert_eq!(
        r.snapshots(),
        engine,
        "only the engine's layers, none unpacked by containerd"
    );

    // The container runs from the engine's layers; ctr's run unpacks only what is missing,
    // and it could not: containerd has no layer blob.
    let output = r.proxied.ctr_ok(
        NAMESPACE,
        &[
            "run",
            "--snapshotter",
            "hoist",
            &r.reference,
            "hoist-run-it",
            "/hello",
        ],
    );
    assert_eq!(output, OUTPUT);
    let mut with_container = r.snapshots();
    let active: Vec<_> = with_container
        .iter()
        .filter(|(_, kind, _)| kind == "Active")
        .cloned()
        .collect();
    assert_eq!(
        active.len(),
        1,
        "the container's snapshot: {with_container:#?}"
    );
    assert!(active[0].0.ends_with("/hoist-run-it"), "{active:?}");
    assert_eq!(active[0].2.as_ref(), chain_ids.last(), "on the top layer");
    with_container.retain(|(_, kind, _)| kind != "Active");
    assert_eq!(with_container, engine);
    // containerd removes a backend snapshot when it collects, not on `containers rm`.
    r.proxied
        .ctr_ok(NAMESPACE, &["containers", "rm", "hoist-run-it"]);
    r.collect_garbage();
    assert_eq!(
        r.snapshots(),
        engine,
        "the container's snapshot is gone, the image's kept"
    );
    let content = r.proxied.ctr_ok(NAMESPACE, &["content", "ls", "-q"]);
    for layer in &r.written.layers {
        assert!(
            !content.contains(&layer.digest.to_string()),
            "layer {} fetched",
            layer.digest
        );
    }
}

#[tokio::test]
async fn removed_image_is_collected_from_hoist_needs_containerd() {
    let test = "removed_image_is_collected_from_hoist_needs_containerd";
    let Some(r) = pull_and_register(test, "run-collect").await else {
        return;
    };
    assert_eq!(r.snapshots().len(), 3);
    let mut names: Vec<String> = r.registered.iter().flat_map(|g| g.names.clone()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 3, "tag, digest and ID records: {names:?}");
    for (i, name) in names.iter().enumerate() {
        let last = i + 1 == names.len();
        assert!(r.client.delete_image(name, last).await.unwrap(), "{name}");
        if !last {
            r.collect_garbage();
            assert_eq!(
                r.snapshots().len(),
                3,
                "still referenced after deleting {name}"
            );
        }
    }
    assert!(r.client.images(&[]).await.unwrap().is_empty());
    assert!(
        r.client.blobs().await.unwrap().is_empty(),
        "manifest and config collected"
    );
    assert_eq!(
        r.snapshots(),
        [],
        "containerd's collector removed Hoist's snapshots"
    );
    assert!(
        !r.client.delete_image(&names[0], false).await.unwrap(),
        "already gone"
    );
}
