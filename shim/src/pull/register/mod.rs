//! Register stage: records a pulled image in containerd, so that containerd (its CRI, `ctr`,
//! its garbage collector) sees it as its own pull would have left it.
//!
//! Under a lease, in this order: the config (labelled with the top layer's chain ID as
//! `containerd.io/gc.ref.snapshot.<snapshotter>`), the manifest (labelled with
//! `gc.ref.content.config` and `gc.ref.content.l.<i>` for the layer blobs containerd has),
//! the index when the reference named one (`gc.ref.content.m.<i>`), adoption of every layer
//! through containerd's snapshots API, then the image records with CRI's
//! `io.cri-containerd.image=managed`. The lease is deleted at the end, leaving the chain
//! record → index → manifest → config → snapshots for containerd's collector to follow.
//!
//! Layer blobs are written only when Hoist kept them (`keep_layer_blobs`); by default they are
//! not: the layers are already unpacked in Hoist's store.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tracing::Instrument;

use crate::containerd::{self, Adoption, Client, MANAGED_LABEL, PINNED_LABEL};
use crate::digest::Digest;
use crate::images::Record;
use crate::manifest::{self, Descriptor};

mod documents;

pub use documents::Blobs;
use documents::{Documents, documents};

/// Registration failures; each names the image.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// containerd refused or failed a call.
    #[error("image {image}: {source}")]
    Containerd {
        /// The image.
        image: String,
        /// Why.
        source: containerd::Error,
    },
    /// Hoist's own image store could not be read.
    #[error("image {image}: {source}")]
    Images {
        /// The image.
        image: String,
        /// Why.
        source: crate::images::Error,
    },
    /// A blob the record names is not in Hoist's image store.
    #[error("image {image}: {what} {digest} is not in the image store")]
    MissingBlob {
        /// The image.
        image: String,
        /// `manifest` or `config`.
        what: &'static str,
        /// The blob.
        digest: Digest,
    },
    /// The manifest or index bytes are not usable.
    #[error("image {image}: {source}")]
    Manifest {
        /// The image.
        image: String,
        /// Why.
        source: manifest::Error,
    },
    /// The bytes given for a blob do not hash to the record's digest.
    #[error("image {image}: {what} should be {expected} but hashes to {actual}")]
    Digest {
        /// The image.
        image: String,
        /// Which blob.
        what: &'static str,
        /// The record's digest.
        expected: Digest,
        /// The bytes' digest.
        actual: Digest,
    },
    /// The document recorded as the manifest is an index, or the target is not an index.
    #[error("image {image}: {digest} is not {expected}")]
    WrongDocument {
        /// The image.
        image: String,
        /// The document.
        digest: Digest,
        /// `an image manifest` or `an image index`.
        expected: &'static str,
    },
    /// The manifest's layers and the record's chain IDs disagree.
    #[error("image {image}: the manifest has {layers} layers but the record {chain_ids} chain IDs")]
    LayerCount {
        /// The image.
        image: String,
        /// Layers in the manifest.
        layers: usize,
        /// Chain IDs in the record.
        chain_ids: usize,
    },
}

impl Error {
    /// The kind of failure, for the API edges.
    pub fn kind(&self) -> crate::error::Kind {
        use crate::error::Kind;
        match self {
            Error::Containerd { source, .. } => source.kind(),
            Error::Images { source, .. } => source.kind(),
            Error::MissingBlob { .. } => Kind::NotFound,
            Error::Manifest { source, .. } => source.kind(),
            Error::Digest { .. } | Error::WrongDocument { .. } | Error::LayerCount { .. } => {
                Kind::InvalidArgument
            }
        }
    }
}

/// `Result` with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How images are registered.
#[derive(Debug, Clone)]
pub struct Options {
    /// The name containerd knows Hoist's snapshotter by (`[proxy_plugins.NAME]`). Default:
    /// `hoist`.
    pub snapshotter: String,
    /// How long containerd keeps the registration's lease if Hoist dies before deleting it.
    /// Default: 10 minutes.
    pub lease_expiry: Duration,
    /// Also record the image under its ID (`sha256:<config hex>`), as containerd's CRI does on
    /// every pull. Default: true.
    pub id_record: bool,
    /// Label the records [`PINNED_LABEL`], so that containerd's CRI too reports the image
    /// pinned (kubelet's image garbage collection never removes it). Default: false.
    pub pinned: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            snapshotter: "hoist".to_owned(),
            lease_expiry: Duration::from_secs(600),
            id_record: true,
            pinned: false,
        }
    }
}

/// What was registered.
#[derive(Debug, Clone)]
pub struct Registered {
    /// The image records created or updated.
    pub names: Vec<String>,
    /// Their target (the platform manifest when the index was not available).
    pub target: Descriptor,
    /// Layers adopted into containerd's metadata.
    pub adopted: usize,
    /// Layer blobs containerd already had, and that the manifest now references.
    pub layer_blobs: usize,
}

const GC_CONTENT: &str = "containerd.io/gc.ref.content";
const GC_SNAPSHOT: &str = "containerd.io/gc.ref.snapshot";

/// Records `record` in containerd through `client` (whose namespace is the one kubelet uses,
/// `k8s.io`). Idempotent: registering again updates the records and labels.
pub async fn register(
    client: &Client,
    record: &Record,
    blobs: &Blobs,
    options: &Options,
) -> Result<Registered> {
    register_as(client, record, blobs, &[], options).await
}

/// As [`register`], also creating image records named `aliases` (the other names of the same
/// image, such as its `repo@digest` beside its tag) in the same lease.
pub async fn register_as(
    client: &Client,
    record: &Record,
    blobs: &Blobs,
    aliases: &[String],
    options: &Options,
) -> Result<Registered> {
    let started = Instant::now();
    let span = tracing::info_span!("register", image = %record.name, digest = %record.target);
    async {
        let docs = documents(record, blobs)?;
        let fail = |source| Error::Containerd {
            image: record.name.clone(),
            source,
        };
        let lease = client
            .create_lease(options.lease_expiry)
            .await
            .map_err(fail)?;
        let result = write_all(client, &lease, record, blobs, &docs, aliases, options).await;
        // The lease goes either way: on failure what was written is garbage, and on success
        // the image record references it.
        if let Err(e) = client.delete_lease(lease).await {
            tracing::warn!(error = %e, "could not delete the registration lease; it expires");
        }
        let registered = result.map_err(fail)?;
        tracing::info!(
            names = registered.names.len(),
            adopted = registered.adopted,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "registered"
        );
        Ok(registered)
    }
    .instrument(span)
    .await
}

async fn write_all(
    client: &Client,
    lease: &containerd::Lease,
    record: &Record,
    blobs: &Blobs,
    docs: &Documents,
    aliases: &[String],
    options: &Options,
) -> containerd::Result<Registered> {
    let lease = Some(lease);
    let mut config_labels = BTreeMap::new();
    if let Some(top) = record.chain_ids.last() {
        config_labels.insert(
            format!("{GC_SNAPSHOT}.{}", options.snapshotter),
            top.to_string(),
        );
    }
    client
        .write_blob(lease, &record.config, &blobs.config, &config_labels)
        .await?;

    let mut manifest_labels =
        BTreeMap::from([(format!("{GC_CONTENT}.config"), record.config.to_string())]);
    let mut layer_blobs = 0;
    for (i, layer) in docs.parsed.layers.iter().enumerate() {
        let kept = match blobs.layers.get(&layer.digest) {
            Some(path) => {
                client
                    .write_blob_file(lease, &layer.digest, path, layer.size, &BTreeMap::new())
                    .await?;
                true
            }
            None => false,
        };
        if kept || client.blob(&layer.digest).await?.is_some() {
            manifest_labels.insert(format!("{GC_CONTENT}.l.{i}"), layer.digest.to_string());
            layer_blobs += 1;
        }
    }
    client
        .write_blob(lease, &record.manifest, &blobs.manifest, &manifest_labels)
        .await?;

    let target = match (&docs.index, &blobs.index) {
        (Some((descriptor, index)), Some(bytes)) => {
            let mut labels = BTreeMap::new();
            for (i, entry) in index.manifests.iter().enumerate() {
                let present =
                    entry.digest == record.manifest || client.blob(&entry.digest).await?.is_some();
                if present {
                    labels.insert(format!("{GC_CONTENT}.m.{i}"), entry.digest.to_string());
                }
            }
            client
                .write_blob(lease, &record.target, bytes, &labels)
                .await?;
            descriptor.clone()
        }
        _ => {
            if record.target != record.manifest {
                tracing::warn!(index = %record.target, "the index is not in the image store; registering the platform manifest as the target");
            }
            docs.manifest.clone()
        }
    };

    client
        .adopt(
            lease,
            &Adoption {
                snapshotter: &options.snapshotter,
                image: &record.name,
                manifest: record.manifest,
                layers: &docs.layers,
            },
        )
        .await?;

    crate::hooks::pause("register");
    let mut names = vec![record.name.clone()];
    names.extend(aliases.iter().filter(|a| **a != record.name).cloned());
    if options.id_record {
        names.push(record.config.to_string());
    }
    let mut labels = BTreeMap::from([(MANAGED_LABEL.0.to_owned(), MANAGED_LABEL.1.to_owned())]);
    if options.pinned {
        labels.insert(PINNED_LABEL.0.to_owned(), PINNED_LABEL.1.to_owned());
    }
    for name in &names {
        let image = containerd::Image {
            name: name.clone(),
            target: target.clone(),
            labels: labels.clone(),
        };
        client.put_image(lease, &image).await?;
    }
    Ok(Registered {
        names,
        target,
        adopted: docs.layers.len(),
        layer_blobs,
    })
}

#[cfg(test)]
mod tests;
