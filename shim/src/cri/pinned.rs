//! Which images are pinned: kubelet's image garbage collection never removes an image whose
//! CRI `Image.pinned` is true. As in containerd's CRI, an image is pinned when any of its
//! records in containerd carries `io.cri-containerd.pinned=pinned` (containerd 1.7 and later
//! put it on the images of their own `pinned_images`, the sandbox image, and Hoist puts it on
//! those of `[serve] pinned_images` when it registers them), and Hoist also pins the images
//! its configuration names, which covers containerd 1.6 (no such label) and `register = false`.

use std::collections::HashSet;

use super::catalog::Catalog;
use crate::containerd::{self, PINNED_LABEL};
use crate::digest::Digest;
use crate::reference::Reference;

/// The IDs of the images of `catalog` that `pinned` (from the configuration) names.
pub fn configured(catalog: &Catalog, pinned: &[Reference]) -> HashSet<Digest> {
    pinned
        .iter()
        .filter_map(|reference| catalog.resolve(&reference.to_string()))
        .map(|entry| entry.id)
        .collect()
}

/// The IDs of the images of `catalog` with a record that containerd labels pinned: one
/// filtered listing of containerd's image records.
pub async fn labelled(
    client: &containerd::Client,
    catalog: &Catalog,
) -> containerd::Result<HashSet<Digest>> {
    let filter = format!("labels.\"{}\"=={}", PINNED_LABEL.0, PINNED_LABEL.1);
    let records = client.images(&[&filter]).await?;
    Ok(records
        .iter()
        .filter_map(|record| catalog.resolve(&record.name))
        .map(|entry| entry.id)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::{Images, Record};

    #[test]
    fn configured_references_pin_every_name_of_their_image() {
        let tmp = tempfile::tempdir().unwrap();
        let images = Images::open(tmp.path()).unwrap();
        let record = |name: &str, config: &[u8]| Record {
            name: name.into(),
            target: Digest::of(b"t"),
            manifest: Digest::of(b"m"),
            config: Digest::of(config),
            chain_ids: vec![Digest::of(b"l")],
            size: 1,
        };
        for r in [
            record("registry.k8s.io/pause:3.10", b"pause"),
            record("registry.k8s.io/pause:latest", b"pause"),
            record("docker.io/library/alpine:3.20", b"alpine"),
        ] {
            images.put(&r).unwrap();
        }
        let catalog = Catalog::load(&images).unwrap();
        let refs = |names: &[&str]| -> Vec<Reference> {
            names.iter().map(|n| n.parse().unwrap()).collect()
        };
        let pause = Digest::of(b"pause");
        assert_eq!(
            configured(&catalog, &refs(&["registry.k8s.io/pause:3.10"])),
            HashSet::from([pause])
        );
        // Normalised as Docker does; an image not on the node pins nothing.
        assert_eq!(
            configured(&catalog, &refs(&["alpine:3.20", "busybox"])),
            HashSet::from([Digest::of(b"alpine")])
        );
        assert!(configured(&catalog, &refs(&["registry.k8s.io/pause:3.9"])).is_empty());
        assert!(configured(&catalog, &[]).is_empty());
    }
}
