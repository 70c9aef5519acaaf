//! Unit tests of the register stage's checks (the containerd side is tested against the real
//! containerd in the harness: `harness/tests/it/run.rs`).

use super::*;
use crate::containerd::Layer;
use crate::images::Images;

fn manifest_json(config: &[u8], layers: &[&[u8]], media_type: Option<&str>) -> Vec<u8> {
    let layers: Vec<serde_json::Value> = layers
        .iter()
        .map(|l| {
            serde_json::json!({
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": Digest::of(l).to_string(),
                "size": l.len(),
            })
        })
        .collect();
    let mut m = serde_json::json!({
        "schemaVersion": 2,
        "config": {
            "mediaType": manifest::OCI_CONFIG,
            "digest": Digest::of(config).to_string(),
            "size": config.len(),
        },
        "layers": layers,
    });
    if let Some(t) = media_type {
        m["mediaType"] = t.into();
    }
    serde_json::to_vec(&m).unwrap()
}

fn index_json(manifest: &[u8]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": manifest::OCI_MANIFEST,
            "digest": Digest::of(manifest).to_string(),
            "size": manifest.len(),
            "platform": {"os": "linux", "architecture": "amd64"},
        }],
    }))
    .unwrap()
}

/// A record and blobs for an image of two layers; with `index`, the target is an index.
fn image(index: bool) -> (Record, Blobs) {
    let config = br#"{"rootfs":{"type":"layers","diff_ids":[]}}"#.to_vec();
    let manifest = manifest_json(&config, &[b"l0", b"l1"], None);
    let index = index.then(|| index_json(&manifest));
    let record = Record {
        name: "r.example/a:1".into(),
        target: Digest::of(index.as_deref().unwrap_or(&manifest)),
        manifest: Digest::of(&manifest),
        config: Digest::of(&config),
        chain_ids: vec![Digest::of(b"c0"), Digest::of(b"c1")],
        size: 4,
    };
    let blobs = Blobs {
        manifest,
        config,
        index,
        layers: Default::default(),
    };
    (record, blobs)
}

#[test]
fn documents_describe_the_manifest_and_pair_layers_with_chain_ids() {
    let (record, blobs) = image(false);
    let docs = documents(&record, &blobs).unwrap();
    assert_eq!(docs.manifest.digest, record.manifest);
    assert_eq!(docs.manifest.size, blobs.manifest.len() as u64);
    // No mediaType field: the OCI type, as the shape says.
    assert_eq!(docs.manifest.media_type, manifest::OCI_MANIFEST);
    assert!(docs.index.is_none());
    let expected: Vec<Layer> = [(b"c0", b"l0"), (b"c1", b"l1")]
        .iter()
        .map(|(c, l)| Layer {
            chain_id: Digest::of(*c),
            blob: Digest::of(*l),
        })
        .collect();
    assert_eq!(docs.layers, expected);
}

#[test]
fn documents_keep_the_declared_media_type() {
    let (mut record, mut blobs) = image(false);
    blobs.manifest = manifest_json(
        &blobs.config,
        &[b"l0", b"l1"],
        Some(manifest::DOCKER_MANIFEST),
    );
    record.manifest = Digest::of(&blobs.manifest);
    record.target = record.manifest;
    let docs = documents(&record, &blobs).unwrap();
    assert_eq!(docs.manifest.media_type, manifest::DOCKER_MANIFEST);
}

#[test]
fn documents_describe_the_index_when_it_is_the_target() {
    let (record, blobs) = image(true);
    let docs = documents(&record, &blobs).unwrap();
    let (descriptor, index) = docs.index.unwrap();
    assert_eq!(descriptor.digest, record.target);
    assert_eq!(descriptor.media_type, manifest::OCI_INDEX);
    assert_eq!(index.manifests[0].digest, record.manifest);
}

#[test]
fn documents_without_the_index_fall_back_to_the_manifest() {
    let (record, mut blobs) = image(true);
    blobs.index = None;
    let docs = documents(&record, &blobs).unwrap();
    assert!(docs.index.is_none());
    assert_eq!(docs.manifest.digest, record.manifest);
}

#[test]
fn rejects_inconsistent_records() {
    type Spoil = fn(&mut Record, &mut Blobs);
    let cases: [(&str, Spoil); 5] = [
        ("manifest digest", |_, b| b.manifest.push(b' ')),
        ("config digest", |_, b| b.config.push(b' ')),
        ("index digest", |_, b| {
            if let Some(i) = &mut b.index {
                i.push(b' ');
            }
        }),
        ("layer count", |r, _| {
            r.chain_ids.pop().map(drop).unwrap_or(())
        }),
        ("manifest is an index", |r, b| {
            b.manifest = b.index.clone().unwrap();
            r.manifest = Digest::of(&b.manifest);
        }),
    ];
    for (name, spoil) in cases {
        let (mut record, mut blobs) = image(true);
        spoil(&mut record, &mut blobs);
        let err = documents(&record, &blobs).unwrap_err();
        let ok = match name {
            "manifest digest" => matches!(
                err,
                Error::Digest {
                    what: "manifest",
                    ..
                }
            ),
            "config digest" => matches!(err, Error::Digest { what: "config", .. }),
            "index digest" => matches!(err, Error::Digest { what: "index", .. }),
            "layer count" => matches!(
                err,
                Error::LayerCount {
                    layers: 2,
                    chain_ids: 1,
                    ..
                }
            ),
            _ => matches!(err, Error::WrongDocument { .. }),
        };
        assert!(ok, "{name}: {err}");
        assert_eq!(err.kind(), crate::error::Kind::InvalidArgument, "{name}");
    }
}

#[test]
fn loads_blobs_from_the_image_store() {
    let tmp = tempfile::tempdir().unwrap();
    let images = Images::open(tmp.path()).unwrap();
    let (record, blobs) = image(true);
    let missing = Blobs::load(&images, &record).unwrap_err();
    assert!(
        matches!(
            missing,
            Error::MissingBlob {
                what: "manifest",
                ..
            }
        ),
        "{missing}"
    );
    images.put_blob(&record.manifest, &blobs.manifest).unwrap();
    images.put_blob(&record.config, &blobs.config).unwrap();
    let loaded = Blobs::load(&images, &record).unwrap();
    assert_eq!(
        (loaded.manifest, loaded.config),
        (blobs.manifest.clone(), blobs.config.clone())
    );
    assert_eq!(loaded.index, None, "the engine does not keep the index yet");
    images
        .put_blob(&record.target, blobs.index.as_deref().unwrap())
        .unwrap();
    assert_eq!(Blobs::load(&images, &record).unwrap().index, blobs.index);
}
