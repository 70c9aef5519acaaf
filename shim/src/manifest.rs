//! The JSON documents a registry serves for an image: OCI image index and manifest, Docker
//! manifest list and schema 2 manifest, and the image config. They share one shape, so one
//! set of serde types reads both families; the media type decides which document it is.
//!
//! Everything here parses untrusted bytes: sizes are bounded by the caller, and every
//! failure is an error, never a panic.

use std::collections::BTreeMap;

use crate::digest::Digest;
use crate::platform::Platform;

/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Docker manifest list.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker schema 2 manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Every manifest type we accept, for the `Accept` header.
pub const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// Why a document could not be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Not valid JSON of the expected shape.
    #[error("{what} is malformed: {source}")]
    Json {
        /// Which document.
        what: &'static str,
        /// The parse error.
        source: serde_json::Error,
    },
    /// A media type we cannot pull (schema 1, encrypted layers, unknown types).
    #[error("unsupported media type {0:?}")]
    UnsupportedMediaType(String),
    /// The index has no manifest for the wanted platform.
    #[error("no manifest for platform {wanted} (the index offers: {offered})")]
    NoPlatform {
        /// What we looked for.
        wanted: Platform,
        /// What the index has.
        offered: String,
    },
    /// The config lists a different number of diff IDs than the manifest lists layers.
    #[error("image config has {diff_ids} diff IDs but the manifest has {layers} layers")]
    LayerCount {
        /// Diff IDs in the config.
        diff_ids: usize,
        /// Layers in the manifest.
        layers: usize,
    },
}

impl Error {
    /// The kind of failure, for the API edges.
    pub fn kind(&self) -> crate::error::Kind {
        match self {
            Error::NoPlatform { .. } => crate::error::Kind::NotFound,
            _ => crate::error::Kind::InvalidArgument,
        }
    }
}

/// `Result` with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// What the content is.
    #[serde(default)]
    pub media_type: String,
    /// Its digest.
    pub digest: Digest,
    /// Its exact size in bytes.
    pub size: u64,
    /// For index entries: the platform the manifest is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<PlatformJson>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// A platform as JSON documents spell it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct PlatformJson {
    /// Operating system.
    pub os: String,
    /// Architecture.
    pub architecture: String,
    /// Variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl PlatformJson {
    /// The normalised platform.
    pub fn platform(&self) -> Platform {
        Platform::new(&self.os, &self.architecture, self.variant.as_deref())
    }
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    #[serde(default)]
    schema_version: Option<u32>,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    layers: Option<serde::de::IgnoredAny>,
}

/// An image index or manifest list.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Index {
    /// One entry per platform (or attestation).
    pub manifests: Vec<Descriptor>,
}

/// An image manifest.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Manifest {
    /// The config blob.
    pub config: Descriptor,
    /// The layers, base first.
    pub layers: Vec<Descriptor>,
}

/// A manifest-endpoint document.
#[derive(Debug, Clone)]
pub enum Document {
    /// A multi-platform index.
    Index(Index),
    /// A single-platform manifest.
    Manifest(Manifest),
}

/// Parses a manifest-endpoint document. The `mediaType` field decides; without one, the
/// response's `Content-Type`; without that, the shape.
pub fn parse(bytes: &[u8], content_type: Option<&str>) -> Result<Document> {
    let probe: Probe = serde_json::from_slice(bytes).map_err(|source| Error::Json {
        what: "manifest",
        source,
    })?;
    if probe.schema_version == Some(1) {
        return Err(Error::UnsupportedMediaType(
            "application/vnd.docker.distribution.manifest.v1+json (schema 1)".into(),
        ));
    }
    let content_type = content_type.map(|c| c.split(';').next().unwrap_or(c).trim());
    let media_type = probe.media_type.as_deref().or(content_type);
    let is_index = match media_type {
        Some(OCI_INDEX | DOCKER_LIST) => true,
        Some(OCI_MANIFEST | DOCKER_MANIFEST) => false,
        _ if probe.manifests.is_some() && probe.layers.is_none() => true,
        _ if probe.layers.is_some() => false,
        Some(other) => return Err(Error::UnsupportedMediaType(other.to_owned())),
        None => return Err(Error::UnsupportedMediaType(String::new())),
    };
    let json = |source| Error::Json {
        what: if is_index {
            "image index"
        } else {
            "image manifest"
        },
        source,
    };
    if is_index {
        serde_json::from_slice(bytes)
            .map(Document::Index)
            .map_err(json)
    } else {
        serde_json::from_slice(bytes)
            .map(Document::Manifest)
            .map_err(json)
    }
}

impl Index {
    /// The manifest for `platform`: the first entry that matches, preferring an exact variant.
    pub fn select(&self, platform: &Platform) -> Result<&Descriptor> {
        let candidates = || {
            self.manifests.iter().filter(|d| {
                matches!(d.media_type.as_str(), OCI_MANIFEST | DOCKER_MANIFEST | "")
                    && d.platform
                        .as_ref()
                        .is_some_and(|p| platform.matches(&p.platform()))
            })
        };
        candidates()
            .find(|d| d.platform.as_ref().map(|p| p.platform()).as_ref() == Some(platform))
            .or_else(|| candidates().next())
            .ok_or_else(|| Error::NoPlatform {
                wanted: platform.clone(),
                offered: self
                    .manifests
                    .iter()
                    .filter_map(|d| d.platform.as_ref().map(|p| p.platform().to_string()))
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip (possibly several members).
    Gzip,
    /// zstd (possibly several frames).
    Zstd,
}

/// The compression a layer media type implies.
pub fn layer_compression(media_type: &str) -> Result<Compression> {
    match media_type {
        "application/vnd.oci.image.layer.v1.tar"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar"
        | "application/vnd.docker.image.rootfs.diff.tar" => Ok(Compression::None),
        "application/vnd.oci.image.layer.v1.tar+gzip"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
        | "application/vnd.docker.image.rootfs.diff.tar.gzip"
        | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => Ok(Compression::Gzip),
        "application/vnd.oci.image.layer.v1.tar+zstd"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd" => Ok(Compression::Zstd),
        other => Err(Error::UnsupportedMediaType(other.to_owned())),
    }
}

/// The parts of an image config that pulling and the CRI need.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct Config {
    /// Operating system.
    #[serde(default)]
    pub os: String,
    /// Architecture.
    #[serde(default)]
    pub architecture: String,
    /// The layers' uncompressed digests, base first.
    pub rootfs: RootFs,
    /// Defaults for containers run from the image.
    #[serde(default)]
    pub config: Option<RunConfig>,
}

/// `rootfs` in an image config.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct RootFs {
    /// Always `layers`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// The diff IDs: SHA-256 of each uncompressed layer tar.
    #[serde(default)]
    pub diff_ids: Vec<Digest>,
}

/// `config` in an image config.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RunConfig {
    /// `USER`: `name`, `uid`, `uid:gid` or `name:group`.
    #[serde(default)]
    pub user: Option<String>,
}

/// Parses an image config.
pub fn parse_config(bytes: &[u8]) -> Result<Config> {
    serde_json::from_slice(bytes).map_err(|source| Error::Json {
        what: "image config",
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    fn index(entries: &[(&str, &str)]) -> String {
        let m: Vec<String> = entries
            .iter()
            .map(|(d, p)| {
                let parts: Vec<&str> = p.split('/').collect();
                let variant = parts.get(2).map(|v| format!(r#","variant":"{v}""#)).unwrap_or_default();
                format!(
                    r#"{{"mediaType":"{OCI_MANIFEST}","digest":"{d}","size":10,"platform":{{"os":"{}","architecture":"{}"{variant}}}}}"#,
                    parts[0], parts[1]
                )
            })
            .collect();
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{}]}}"#,
            m.join(",")
        )
    }

    #[test]
    fn selects_platform_from_index() {
        let doc = index(&[(D1, "linux/arm/v7"), (D2, "linux/amd64")]);
        let Document::Index(ix) = parse(doc.as_bytes(), None).unwrap() else {
            panic!("expected an index")
        };
        let want = "linux/amd64".parse().unwrap();
        assert_eq!(ix.select(&want).unwrap().digest.to_string(), D2);
        let err = ix.select(&"linux/s390x".parse().unwrap()).unwrap_err();
        assert!(
            err.to_string().contains("linux/arm/v7, linux/amd64"),
            "{err}"
        );
    }

    #[test]
    fn detects_document_kind() {
        let manifest = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"{DOCKER_CONFIG}","digest":"{D1}","size":1}},"layers":[]}}"#
        );
        assert!(matches!(
            parse(manifest.as_bytes(), Some(DOCKER_MANIFEST)),
            Ok(Document::Manifest(_))
        ));
        assert!(matches!(
            parse(manifest.as_bytes(), None),
            Ok(Document::Manifest(_))
        ));
        let schema1 = br#"{"schemaVersion":1,"name":"x","fsLayers":[]}"#;
        assert!(matches!(
            parse(schema1, None),
            Err(Error::UnsupportedMediaType(_))
        ));
        assert!(matches!(parse(b"{", None), Err(Error::Json { .. })));
        assert!(parse(b"[]", None).is_err());
        let bad_digest =
            r#"{"schemaVersion":2,"config":{"digest":"sha256:zz","size":1},"layers":[]}"#;
        assert!(matches!(
            parse(bad_digest.as_bytes(), None),
            Err(Error::Json { .. })
        ));
    }

    #[test]
    fn maps_layer_media_types() {
        assert_eq!(
            layer_compression("application/vnd.oci.image.layer.v1.tar+zstd").unwrap(),
            Compression::Zstd
        );
        assert_eq!(
            layer_compression("application/vnd.docker.image.rootfs.diff.tar.gzip").unwrap(),
            Compression::Gzip
        );
        assert!(
            layer_compression("application/vnd.oci.image.layer.v1.tar+gzip+encrypted").is_err()
        );
    }
}
