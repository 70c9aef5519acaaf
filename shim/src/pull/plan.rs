//! Plan stage: from a reference to the list of layers to pull. Fetches the manifest (through
//! an index when the reference names one, choosing the platform), then the config, verifying
//! every document against its digest, and derives each layer's chain ID.

use futures::StreamExt;
use http::{StatusCode, header};

use crate::digest::Digest;
use crate::manifest::{self, Compression, Descriptor, Document};
use crate::platform::Platform;
use crate::reference::Reference;
use crate::registry::{self, Repository, display_url};

/// Largest manifest or index accepted (containerd uses the same bound).
pub const MAX_MANIFEST: u64 = 4 << 20;
/// Largest image config accepted.
pub const MAX_CONFIG: u64 = 16 << 20;

/// Planning failures. Messages leave out the image, which the orchestrator's error names.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Talking to the registry failed.
    #[error(transparent)]
    Registry(#[from] registry::Error),
    /// A document is not usable.
    #[error("{source}")]
    Manifest {
        /// The image.
        image: String,
        /// Why.
        source: manifest::Error,
    },
    /// A document does not hash to the digest that names it.
    #[error("{what} should be {expected} but hashes to {actual}")]
    Digest {
        /// The image.
        image: String,
        /// Which document.
        what: &'static str,
        /// Expected digest.
        expected: Digest,
        /// Actual digest.
        actual: Digest,
    },
    /// A document is larger than allowed or than its descriptor says.
    #[error("{what} is larger than {limit} bytes")]
    TooLarge {
        /// The image.
        image: String,
        /// Which document.
        what: &'static str,
        /// The limit.
        limit: u64,
    },
    /// The registry has no such image.
    #[error("not found ({url})")]
    NotFound {
        /// The image.
        image: String,
        /// What was asked for.
        url: String,
    },
}

impl Error {
    /// The kind of failure, for the API edges.
    pub fn kind(&self) -> crate::error::Kind {
        use crate::error::Kind;
        match self {
            Error::Registry(e) => e.kind(),
            Error::Manifest { source, .. } => source.kind(),
            Error::NotFound { .. } => Kind::NotFound,
            Error::Digest { .. } | Error::TooLarge { .. } => Kind::InvalidArgument,
        }
    }
}

/// `Result` with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One layer to pull.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// The compressed blob.
    pub blob: Digest,
    /// Its size.
    pub size: u64,
    /// How it is compressed.
    pub compression: Compression,
    /// The uncompressed tar's digest, from the config.
    pub diff_id: Digest,
    /// The chain ID naming the snapshot of this layer and all below it.
    pub chain_id: Digest,
}

/// Everything needed to pull and record one image.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The reference as asked for.
    pub reference: Reference,
    /// The digest the reference resolved to (the index's, for a multi-platform image).
    pub target: Digest,
    /// The index's bytes, when the reference resolved to an index.
    pub index_bytes: Option<Vec<u8>>,
    /// The platform manifest's digest.
    pub manifest: Digest,
    /// The platform manifest's bytes.
    pub manifest_bytes: Vec<u8>,
    /// The config's digest: the image ID.
    pub config: Digest,
    /// The config's bytes.
    pub config_bytes: Vec<u8>,
    /// The parsed config.
    pub image_config: manifest::Config,
    /// The layers, base first.
    pub layers: Vec<Layer>,
}

/// The OCI chain IDs for `diff_ids`: `ChainID(L0) = DiffID(L0)`,
/// `ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))`.
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for diff_id in diff_ids {
        let next = match out.last() {
            None => *diff_id,
            Some(parent) => Digest::of(format!("{parent} {diff_id}").as_bytes()),
        };
        out.push(next);
    }
    out
}

/// Documents already on the node, by digest: a platform manifest or config found there (and
/// hashing to its digest) is not fetched again. The reference's own manifest always is: that
/// request is the registry's answer to whether these credentials may pull the image
/// (KEP-2535, kubelet's re-check of a present image with a pod's own credentials).
pub trait Stored: Sync {
    /// The bytes stored under `digest`, if any (unverified).
    fn get(&self, digest: &Digest) -> Option<Vec<u8>>;
}

/// Nothing stored: every document is fetched.
#[derive(Debug, Clone, Copy, Default)]
pub struct Nothing;

impl Stored for Nothing {
    fn get(&self, _digest: &Digest) -> Option<Vec<u8>> {
        None
    }
}

/// The bytes of `digest` from `stored` when they hash to it.
fn verified(stored: &dyn Stored, digest: &Digest) -> Option<Vec<u8>> {
    stored.get(digest).filter(|b| Digest::of(b) == *digest)
}

/// Resolves `reference` on `repo` for `platform`, taking documents `stored` has.
pub async fn plan(
    repo: &Repository,
    reference: &Reference,
    platform: &Platform,
    stored: &dyn Stored,
) -> Result<Plan> {
    let image = reference.to_string();
    let (bytes, content_type, header_digest) = get_document(
        repo,
        &image,
        "manifests",
        &reference.manifest_reference(),
        MAX_MANIFEST,
    )
    .await?;
    let target = Digest::of(&bytes);
    let expected = reference.digest().or(header_digest);
    if let Some(expected) = expected {
        check(&image, "manifest", expected, target)?;
    }
    let parse = |bytes: &[u8], ct: Option<&str>| {
        manifest::parse(bytes, ct).map_err(|source| Error::Manifest {
            image: image.clone(),
            source,
        })
    };
    let mut index_bytes = None;
    let (manifest_digest, manifest_bytes, manifest) = match parse(&bytes, content_type.as_deref())?
    {
        Document::Manifest(m) => (target, bytes, m),
        Document::Index(index) => {
            let chosen = index.select(platform).map_err(|source| Error::Manifest {
                image: image.clone(),
                source,
            })?;
            let chosen = chosen.clone();
            let limit = chosen.size.min(MAX_MANIFEST);
            index_bytes = Some(bytes);
            let (bytes, ct) = match verified(stored, &chosen.digest) {
                Some(bytes) => (bytes, None),
                None => {
                    let (bytes, ct, _) =
                        get_document(repo, &image, "manifests", &chosen.digest.to_string(), limit)
                            .await?;
                    (bytes, ct)
                }
            };
            check(
                &image,
                "platform manifest",
                chosen.digest,
                Digest::of(&bytes),
            )?;
            match parse(&bytes, ct.as_deref().or(Some(chosen.media_type.as_str())))? {
                Document::Manifest(m) => (chosen.digest, bytes, m),
                Document::Index(_) => {
                    return Err(Error::Manifest {
                        image,
                        source: manifest::Error::UnsupportedMediaType("nested image index".into()),
                    });
                }
            }
        }
    };
    let config = manifest.config.clone();
    let config_bytes = match verified(stored, &config.digest) {
        Some(bytes) => bytes,
        None => get_blob(repo, &image, &config).await?,
    };
    let image_config = manifest::parse_config(&config_bytes).map_err(|source| Error::Manifest {
        image: image.clone(),
        source,
    })?;
    let diff_ids = &image_config.rootfs.diff_ids;
    if diff_ids.len() != manifest.layers.len() {
        return Err(Error::Manifest {
            image,
            source: manifest::Error::LayerCount {
                diff_ids: diff_ids.len(),
                layers: manifest.layers.len(),
            },
        });
    }
    let chains = chain_ids(diff_ids);
    let mut layers = Vec::with_capacity(manifest.layers.len());
    for ((descriptor, diff_id), chain_id) in manifest.layers.iter().zip(diff_ids).zip(chains) {
        let compression =
            manifest::layer_compression(&descriptor.media_type).map_err(|source| {
                Error::Manifest {
                    image: image.clone(),
                    source,
                }
            })?;
        layers.push(Layer {
            blob: descriptor.digest,
            size: descriptor.size,
            compression,
            diff_id: *diff_id,
            chain_id,
        });
    }
    Ok(Plan {
        reference: reference.clone(),
        target,
        index_bytes,
        manifest: manifest_digest,
        manifest_bytes,
        config: config.digest,
        config_bytes,
        image_config,
        layers,
    })
}

fn check(image: &str, what: &'static str, expected: Digest, actual: Digest) -> Result<()> {
    if expected == actual {
        return Ok(());
    }
    Err(Error::Digest {
        image: image.to_owned(),
        what,
        expected,
        actual,
    })
}

async fn get_blob(repo: &Repository, image: &str, d: &Descriptor) -> Result<Vec<u8>> {
    if d.size > MAX_CONFIG {
        return Err(Error::TooLarge {
            image: image.to_owned(),
            what: "image config",
            limit: MAX_CONFIG,
        });
    }
    let (bytes, _, _) = get_document(repo, image, "blobs", &d.digest.to_string(), d.size).await?;
    check(image, "image config", d.digest, Digest::of(&bytes))?;
    Ok(bytes)
}

/// GETs a document of at most `limit` bytes: (bytes, content type, Docker-Content-Digest).
async fn get_document(
    repo: &Repository,
    image: &str,
    kind: &str,
    reference: &str,
    limit: u64,
) -> Result<(Vec<u8>, Option<String>, Option<Digest>)> {
    let url = repo.url(kind, reference);
    let accept = [(header::ACCEPT, manifest::ACCEPT.to_owned())];
    let response = repo
        .get(&url, if kind == "manifests" { &accept } else { &[] })
        .await?;
    let status = response.status();
    if status == StatusCode::NOT_FOUND {
        return Err(Error::NotFound {
            image: image.to_owned(),
            url: display_url(&url),
        });
    }
    if !status.is_success() {
        let detail = response
            .text()
            .await
            .unwrap_or_default()
            .chars()
            .take(200)
            .collect();
        return Err(Error::Registry(registry::Error::Status {
            url: display_url(&url),
            status,
            detail,
        }));
    }
    let header = |name: header::HeaderName| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let content_type = header(header::CONTENT_TYPE);
    let header_digest = header(header::HeaderName::from_static("docker-content-digest"))
        .and_then(|d| d.parse().ok());
    let what = if kind == "manifests" {
        "manifest"
    } else {
        "image config"
    };
    if response.content_length().is_some_and(|n| n > limit) {
        return Err(Error::TooLarge {
            image: image.to_owned(),
            what,
            limit,
        });
    }
    let mut body = response.bytes_stream();
    let mut bytes = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(registry::transport(&url))?;
        if bytes.len() as u64 + chunk.len() as u64 > limit {
            return Err(Error::TooLarge {
                image: image.to_owned(),
                what,
                limit,
            });
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok((bytes, content_type, header_digest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_oci_definition() {
        let a = Digest::of(b"a");
        let b = Digest::of(b"b");
        let c = Digest::of(b"c");
        let ids = chain_ids(&[a, b, c]);
        assert_eq!(ids[0], a);
        let ab = Digest::of(format!("{a} {b}").as_bytes());
        assert_eq!(ids[1], ab);
        assert_eq!(ids[2], Digest::of(format!("{ab} {c}").as_bytes()));
        assert!(chain_ids(&[]).is_empty());
    }
}
