//! Hoist against containerd on the same images: `hoist pull` + `hoist mount` must produce,
//! file by file, the root filesystem that `ctr image pull` + `ctr image mount` produce into
//! containerd's overlayfs snapshotter, and what the image's entries describe. Needs root, the
//! real registry and the real containerd.

use std::sync::Arc;

use hoist::images::Images;
use hoist::pull::{Options, Puller, Silent};
use hoist::registry::{Client, Credentials};
use hoist_harness::image::{Compression, Entry, Generated, Image, Layer, MediaTypes, Mix};
use hoist_harness::tree::{self, Tree};
use hoist_snapshotter::Store;

use crate::{fixtures, services};

/// A mount that is undone on drop, so a failing assertion leaves nothing mounted.
struct Mounted(std::path::PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = rustix::mount::unmount(&self.0, rustix::mount::UnmountFlags::DETACH);
    }
}

fn differences(left: &std::path::Path, right: &std::path::Path) -> Vec<String> {
    tree::compare(left, right)
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// Pushes `image`, pulls it with Hoist and with containerd, mounts both, and compares.
async fn same_as_containerd(image: &Image, name: &str) {
    let (written, reference) = fixtures::push(image, &format!("hoist-vs-ctr-{name}"));

    let root = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(root.path()).unwrap());
    let client = Client::new(&hoist::registry::Options {
        insecure: vec![services::registry()],
        ..Default::default()
    })
    .unwrap();
    let puller = Puller::new(
        Arc::new(client),
        Arc::clone(&store),
        Images::open(root.path()).unwrap(),
        Options::default(),
    );
    let pulled = puller
        .pull(
            &reference.parse().unwrap(),
            Credentials::Anonymous,
            Arc::new(Silent),
        )
        .await
        .unwrap_or_else(|e| panic!("{name}: hoist pull: {e}"));
    assert_eq!(
        pulled.id.to_string(),
        written.config.digest.as_str(),
        "the image ID is the config digest"
    );
    assert_eq!(pulled.digest.to_string(), written.manifest.digest.as_str());
    assert_eq!(pulled.layers, image.layers.len());

    let hoist_target = services::mount_dir();
    hoist::mount::mount_image(&store, puller.images(), &reference, hoist_target.path()).unwrap();
    let _hoist_mount = Mounted(hoist_target.path().to_owned());

    let ctr = services::ctr();
    ctr.pull(&reference, &services::plain_http()).unwrap();
    let ctr_target = services::mount_dir();
    let ctr_mount = ctr.mount(&reference, ctr_target.path()).unwrap();

    let against_containerd = differences(ctr_mount.path(), hoist_target.path());
    let expected = Tree::from_layers(&image.layers).unwrap();
    let against_entries: Vec<String> = expected
        .diff(&Tree::scan(hoist_target.path()).unwrap())
        .iter()
        .map(ToString::to_string)
        .collect();
    ctr_mount.unmount().unwrap();
    ctr.remove_image(&reference).unwrap();
    assert!(
        against_containerd.is_empty(),
        "{name}: Hoist's root filesystem differs from containerd's (left: containerd, right: hoist):\n{}",
        against_containerd.join("\n")
    );
    assert!(
        against_entries.is_empty(),
        "{name}: Hoist's root filesystem differs from the image's entries:\n{}",
        against_entries.join("\n")
    );
}

/// [`fixtures::every_kind`] plus a hardlink across directories and an empty layer between.
fn every_kind_and_more(compression: Compression, media_types: MediaTypes) -> Image {
    let mut image = fixtures::every_kind(compression, media_types);
    image.layers[0]
        .entries
        .push(Entry::hardlink("etc/suid-elsewhere", "usr/bin/suid"));
    image.layers.insert(1, Layer::new(Vec::new(), compression));
    image
}

#[tokio::test]
async fn same_root_as_containerd_gzip_oci_needs_containerd() {
    same_as_containerd(
        &every_kind_and_more(Compression::Gzip, MediaTypes::Oci),
        "gzip-oci",
    )
    .await;
}

#[tokio::test]
async fn same_root_as_containerd_zstd_oci_needs_containerd() {
    same_as_containerd(
        &every_kind_and_more(Compression::Zstd, MediaTypes::Oci),
        "zstd-oci",
    )
    .await;
}

#[tokio::test]
async fn same_root_as_containerd_uncompressed_oci_needs_containerd() {
    same_as_containerd(
        &every_kind_and_more(Compression::None, MediaTypes::Oci),
        "none-oci",
    )
    .await;
}

#[tokio::test]
async fn same_root_as_containerd_gzip_docker_needs_containerd() {
    same_as_containerd(
        &every_kind_and_more(Compression::Gzip, MediaTypes::Docker),
        "gzip-docker",
    )
    .await;
}

#[tokio::test]
async fn same_root_as_containerd_uncompressed_docker_needs_containerd() {
    same_as_containerd(
        &every_kind_and_more(Compression::None, MediaTypes::Docker),
        "none-docker",
    )
    .await;
}

#[tokio::test]
async fn same_root_as_containerd_generated_small_files_needs_containerd() {
    let image = Generated {
        seed: 21,
        total_size: 8 << 20,
        layers: 3,
        mix: Mix::SmallFiles,
        compression: Compression::Gzip,
    }
    .image();
    same_as_containerd(&image, "generated-small").await;
}
