//! Images written by the harness, pushed with skopeo, pulled and mounted by containerd: the
//! mounted tree must be exactly what the entries describe. Needs root and the real containerd.

use hoist_harness::image::{self, Compression, Generated, Image, MediaTypes, Mix, layout};
use hoist_harness::skopeo;
use hoist_harness::tree::Tree;

use crate::{fixtures, services};

/// Writes, pushes, pulls with ctr, mounts, and diffs the mount against the image's entries.
fn round_trip(image: &Image, repository: &str) {
    let layout_dir = tempfile::tempdir().unwrap();
    let written =
        layout::write(image, layout_dir.path(), "it", &layout::Options::default()).unwrap();
    let repository = format!("{}/hoist-it/{repository}", services::registry());
    let pushed = skopeo::push(
        &written,
        &repository,
        "v1",
        &[],
        &skopeo::Options::default(),
    )
    .unwrap();
    let reference = &pushed.references[0];

    let ctr = services::ctr();
    ctr.pull(reference, &services::plain_http()).unwrap();
    assert_eq!(
        ctr.image_digest(reference).unwrap().as_deref(),
        Some(written.manifest.digest.as_str()),
        "containerd records the manifest digest that was written"
    );
    let target = services::mount_dir();
    let mount = ctr.mount(reference, target.path()).unwrap();
    let actual = Tree::scan(mount.path()).unwrap();
    let expected = Tree::from_layers(&image.layers).unwrap();
    let differences: Vec<String> = expected
        .diff(&actual)
        .iter()
        .map(ToString::to_string)
        .collect();
    mount.unmount().unwrap();
    ctr.remove_image(reference).unwrap();
    assert!(
        differences.is_empty(),
        "{repository}: the containerd mount differs from the entries (left: entries, right: mount):\n{}",
        differences.join("\n")
    );
    assert!(actual.nodes.len() >= 5, "the mount holds the image");
}

#[test]
fn containerd_mounts_every_entry_kind_gzip_oci() {
    round_trip(
        &fixtures::every_kind(Compression::Gzip, MediaTypes::Oci),
        "every-kind-gzip-oci",
    );
}

#[test]
fn containerd_mounts_every_entry_kind_zstd_oci() {
    round_trip(
        &fixtures::every_kind(Compression::Zstd, MediaTypes::Oci),
        "every-kind-zstd-oci",
    );
}

#[test]
fn containerd_mounts_every_entry_kind_uncompressed_oci() {
    round_trip(
        &fixtures::every_kind(Compression::None, MediaTypes::Oci),
        "every-kind-none-oci",
    );
}

#[test]
fn containerd_mounts_every_entry_kind_gzip_docker() {
    round_trip(
        &fixtures::every_kind(Compression::Gzip, MediaTypes::Docker),
        "every-kind-gzip-docker",
    );
}

#[test]
fn containerd_mounts_every_entry_kind_uncompressed_docker() {
    round_trip(
        &fixtures::every_kind(Compression::None, MediaTypes::Docker),
        "every-kind-none-docker",
    );
}

#[test]
fn containerd_mounts_generated_small_files_image() {
    let image = Generated {
        seed: 5,
        total_size: 6 << 20,
        layers: 3,
        mix: Mix::SmallFiles,
        compression: Compression::Gzip,
    }
    .image();
    round_trip(&image, "generated-small");
}

#[test]
fn containerd_mounts_generated_large_files_image() {
    let image = Generated {
        seed: 6,
        total_size: 12 << 20,
        layers: 2,
        mix: Mix::LargeFiles,
        compression: Compression::Zstd,
    }
    .image()
    .with_media_types(image::MediaTypes::Oci);
    round_trip(&image, "generated-large");
}
