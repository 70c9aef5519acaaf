//! The JSON documents of a layout: image config, manifest, `index.json`.
//!
//! Field order is fixed by the structs, so the same image always gives the same bytes and so the
//! same digests.

use std::path::Path;

use serde::Serialize;
use serde_json::{Value, json};

use super::{Descriptor, REF_NAME_ANNOTATION, WrittenLayer};
use crate::image::{Error, Image, MediaTypes, Result};

/// `created` of configs and history: the entries' default mtime, fixed for reproducibility.
const CREATED: &str = "2023-11-14T22:13:20Z";
const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";

#[derive(Serialize)]
struct ConfigJson<'a> {
    created: &'a str,
    architecture: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    variant: Option<&'a str>,
    os: &'a str,
    config: RuntimeJson<'a>,
    rootfs: RootFsJson<'a>,
    history: Vec<HistoryJson>,
}

/// The runtime fields, capitalised as in Docker's and OCI's config.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct RuntimeJson<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    env: &'a [String],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    entrypoint: &'a [String],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    cmd: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    working_dir: Option<&'a str>,
}

#[derive(Serialize)]
struct RootFsJson<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    diff_ids: Vec<&'a str>,
}

#[derive(Serialize)]
struct HistoryJson {
    created: &'static str,
    created_by: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ManifestJson<'a> {
    schema_version: u32,
    media_type: &'a str,
    config: &'a Descriptor,
    layers: Vec<Descriptor>,
}

fn to_vec(value: &impl Serialize) -> Vec<u8> {
    // Serialising these structs (strings, numbers, vectors) cannot fail.
    serde_json::to_vec(value).expect("layout JSON of plain structs serialises")
}

/// The image config blob.
pub(super) fn config(image: &Image, layers: &[WrittenLayer]) -> Vec<u8> {
    let runtime = &image.config;
    let config = ConfigJson {
        created: CREATED,
        architecture: &image.platform.architecture,
        variant: image.platform.variant.as_deref(),
        os: &image.platform.os,
        config: RuntimeJson {
            user: runtime.user.as_deref(),
            env: &runtime.env,
            entrypoint: &runtime.entrypoint,
            cmd: &runtime.cmd,
            working_dir: runtime.working_dir.as_deref(),
        },
        rootfs: RootFsJson {
            kind: "layers",
            diff_ids: layers.iter().map(|l| l.diff_id.as_str()).collect(),
        },
        history: (0..layers.len())
            .map(|index| HistoryJson {
                created: CREATED,
                created_by: format!("hoist-harness layer {index}"),
            })
            .collect(),
    };
    to_vec(&config)
}

/// The image manifest blob.
pub(super) fn manifest(
    media_types: MediaTypes,
    config: &Descriptor,
    layers: &[WrittenLayer],
) -> Vec<u8> {
    let manifest = ManifestJson {
        schema_version: 2,
        media_type: media_types.manifest(),
        config,
        layers: layers
            .iter()
            .map(|l| Descriptor {
                media_type: l.media_type.clone(),
                digest: l.digest.clone(),
                size: l.size,
            })
            .collect(),
    };
    to_vec(&manifest)
}

/// `index.json`: the existing index (if any) without `reference`, plus `manifest` as `reference`.
pub(super) fn index(
    existing: Option<&[u8]>,
    path: &Path,
    manifest: &Descriptor,
    reference: &str,
) -> Result<Vec<u8>> {
    let mut manifests = match existing {
        Some(bytes) => {
            #[derive(serde::Deserialize)]
            struct Index {
                manifests: Vec<Value>,
            }
            serde_json::from_slice::<Index>(bytes)
                .map_err(|source| Error::Index {
                    path: path.to_path_buf(),
                    source,
                })?
                .manifests
        }
        None => Vec::new(),
    };
    manifests.retain(|m| m["annotations"][REF_NAME_ANNOTATION].as_str() != Some(reference));
    manifests.push(json!({
        "mediaType": manifest.media_type,
        "digest": manifest.digest,
        "size": manifest.size,
        "annotations": { REF_NAME_ANNOTATION: reference },
    }));
    let index = json!({
        "schemaVersion": 2,
        "mediaType": INDEX_MEDIA_TYPE,
        "manifests": manifests,
    });
    Ok(to_vec(&index))
}
