//! The register stage's input documents: read from Hoist's image store, checked against the
//! record's digests, parsed, and described as containerd descriptors.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{Error, Result};
use crate::containerd::Layer;
use crate::digest::Digest;
use crate::images::{Images, Record};
use crate::manifest::{self, Descriptor, Document};

/// The documents of one image, as Hoist's image store keeps them.
#[derive(Debug, Clone)]
pub struct Blobs {
    /// The platform manifest.
    pub manifest: Vec<u8>,
    /// The config.
    pub config: Vec<u8>,
    /// The index the reference resolved to, when it did and Hoist kept it.
    pub index: Option<Vec<u8>>,
    /// Compressed layer blobs Hoist kept (`pull.keep_layer_blobs`), by digest, to be written
    /// to containerd's content store.
    pub layers: BTreeMap<Digest, PathBuf>,
}

impl Blobs {
    /// Reads `record`'s documents from `images`. The index is optional: without it the image
    /// is registered with the platform manifest as its target.
    pub fn load(images: &Images, record: &Record) -> Result<Blobs> {
        let read = |digest: &Digest| -> Result<Option<Vec<u8>>> {
            images.blob(digest).map_err(|source| Error::Images {
                image: record.name.clone(),
                source,
            })
        };
        let required = |what: &'static str, digest: &Digest| -> Result<Vec<u8>> {
            read(digest)?.ok_or_else(|| Error::MissingBlob {
                image: record.name.clone(),
                what,
                digest: *digest,
            })
        };
        let manifest = required("manifest", &record.manifest)?;
        let mut layers = BTreeMap::new();
        if let Ok(Document::Manifest(parsed)) = manifest::parse(&manifest, None) {
            for layer in parsed.layers {
                let path = images.blob_file(&layer.digest);
                if path.is_file() {
                    layers.insert(layer.digest, path);
                }
            }
        }
        Ok(Blobs {
            manifest,
            layers,
            config: required("config", &record.config)?,
            index: if record.target == record.manifest {
                None
            } else {
                read(&record.target)?
            },
        })
    }
}

/// The `mediaType` a document declares, or the OCI type its shape implies.
fn media_type(bytes: &[u8], index: bool) -> String {
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(default, rename = "mediaType")]
        media_type: Option<String>,
    }
    serde_json::from_slice::<Probe>(bytes)
        .ok()
        .and_then(|p| p.media_type)
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| {
            if index {
                manifest::OCI_INDEX
            } else {
                manifest::OCI_MANIFEST
            }
            .to_owned()
        })
}

fn descriptor(media_type: String, digest: Digest, size: usize) -> Descriptor {
    Descriptor {
        media_type,
        digest,
        size: size as u64,
        platform: None,
        annotations: BTreeMap::new(),
    }
}

/// The checked documents of a registration.
#[derive(Debug)]
pub(super) struct Documents {
    pub(super) manifest: Descriptor,
    pub(super) parsed: manifest::Manifest,
    pub(super) index: Option<(Descriptor, manifest::Index)>,
    pub(super) layers: Vec<Layer>,
}

/// Checks `blobs` against `record` and parses them.
pub(super) fn documents(record: &Record, blobs: &Blobs) -> Result<Documents> {
    let image = || record.name.clone();
    let check = |what: &'static str, expected: Digest, bytes: &[u8]| {
        let actual = Digest::of(bytes);
        match actual == expected {
            true => Ok(()),
            false => Err(Error::Digest {
                image: image(),
                what,
                expected,
                actual,
            }),
        }
    };
    let parse = |bytes: &[u8]| {
        manifest::parse(bytes, None).map_err(|source| Error::Manifest {
            image: image(),
            source,
        })
    };
    check("manifest", record.manifest, &blobs.manifest)?;
    check("config", record.config, &blobs.config)?;
    let Document::Manifest(parsed) = parse(&blobs.manifest)? else {
        return Err(Error::WrongDocument {
            image: image(),
            digest: record.manifest,
            expected: "an image manifest",
        });
    };
    if parsed.layers.len() != record.chain_ids.len() {
        return Err(Error::LayerCount {
            image: image(),
            layers: parsed.layers.len(),
            chain_ids: record.chain_ids.len(),
        });
    }
    let index = match &blobs.index {
        Some(bytes) if record.target != record.manifest => {
            check("index", record.target, bytes)?;
            let Document::Index(index) = parse(bytes)? else {
                return Err(Error::WrongDocument {
                    image: image(),
                    digest: record.target,
                    expected: "an image index",
                });
            };
            let d = descriptor(media_type(bytes, true), record.target, bytes.len());
            Some((d, index))
        }
        _ => None,
    };
    let layers = parsed
        .layers
        .iter()
        .zip(&record.chain_ids)
        .map(|(l, chain_id)| Layer {
            chain_id: *chain_id,
            blob: l.digest,
        })
        .collect();
    Ok(Documents {
        manifest: descriptor(
            media_type(&blobs.manifest, false),
            record.manifest,
            blobs.manifest.len(),
        ),
        parsed,
        index,
        layers,
    })
}
