//! The `runtime.v1.ImageService` implementation.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;
use tonic::Status;

use super::catalog::{self, Catalog, Entry};
use super::{pinned, status};
use crate::containerd;
use crate::digest::Digest;
use crate::error::Kind;
use crate::images::Images;
use crate::manifest;
use crate::proto::cri::v1 as cri;
use crate::pull::register::{self, Blobs};
use crate::pull::{Puller, Silent};
use crate::reference::Reference;
use crate::registry::Credentials;

/// Where pulled images are registered.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// containerd, in kubelet's namespace (`k8s.io`). `None`: images are not registered, and
    /// `RemoveImage` removes unused layers from Hoist's store itself.
    pub containerd: Option<containerd::Client>,
    /// How images are registered.
    pub register: register::Options,
    /// The connectors that choose each pull's credentials (kubelet's `AuthConfig` is their
    /// precedence level 2). `None`: the `AuthConfig` credentials alone.
    pub connectors: Option<Arc<crate::connectors::Live>>,
    /// `[serve] pinned_images`: images reported `pinned` and labelled so in containerd.
    pub pinned: Vec<Reference>,
}

/// The CRI ImageService over one [`Puller`] (and its store and image records).
#[derive(Debug, Clone)]
pub struct ImageService {
    pub(super) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(super) struct Inner {
    puller: Arc<Puller>,
    images: Images,
    pub(super) options: Options,
    /// Serialises removals, so that two concurrent `RemoveImage` calls of one image both
    /// succeed: the second finds nothing left to remove.
    removing: tokio::sync::Mutex<()>,
    /// Per image ID: when the last registration that completed had started. Concurrent pulls
    /// of one image register it once: a pull that finished before a registration started is
    /// covered by it (that registration read the pull's records).
    registered: std::sync::Mutex<HashMap<Digest, Arc<tokio::sync::Mutex<Option<Instant>>>>>,
}

pub(super) fn invalid(message: impl std::fmt::Display) -> Status {
    status(Kind::InvalidArgument, message)
}

pub(super) fn internal(e: impl std::fmt::Display) -> Status {
    status(Kind::Internal, e)
}

impl ImageService {
    /// A service pulling with `puller` and registering as `options` says.
    pub fn new(puller: Arc<Puller>, options: Options) -> ImageService {
        let images = puller.images().clone();
        ImageService {
            inner: Arc::new(Inner {
                puller,
                images,
                options,
                removing: tokio::sync::Mutex::new(()),
                registered: std::sync::Mutex::default(),
            }),
        }
    }

    /// Pulls `reference` with `credentials` and registers it; the image ID. Used by
    /// `PullImage` once the request is read.
    pub async fn pull(
        &self,
        reference: Reference,
        credentials: Credentials,
    ) -> Result<Digest, Status> {
        let cancel = CancellationToken::new();
        // When the caller goes away (cancel, deadline) this future is dropped: the pull task
        // sees the token, cleans up and ends.
        let _cancel_on_drop = cancel.clone().drop_guard();
        let inner = Arc::clone(&self.inner);
        tokio::spawn(async move { inner.pull(reference, credentials, cancel).await })
            .await
            .map_err(internal)?
    }
}

impl Inner {
    async fn pull(
        &self,
        reference: Reference,
        credentials: Credentials,
        cancel: CancellationToken,
    ) -> Result<Digest, Status> {
        let started = Instant::now();
        let pulled = self
            .puller
            .pull_until(&reference, credentials, Arc::new(Silent), cancel)
            .await
            .map_err(|e| {
                tracing::warn!(image = %reference, error = %e, "pull failed");
                status(e.kind(), e)
            })?;
        if let Some(client) = &self.options.containerd {
            let pulled_at = Instant::now();
            let slot = Arc::clone(
                self.registered
                    .lock()
                    .expect("never poisoned")
                    .entry(pulled.id)
                    .or_default(),
            );
            let mut last = slot.lock().await;
            if last.is_none_or(|started| started < pulled_at) {
                let registering = Instant::now();
                self.register(client, &reference, pulled.id).await?;
                *last = Some(registering);
            } else {
                tracing::debug!(image = %reference, "registered by a concurrent pull");
            }
        }
        tracing::info!(image = %reference, id = %pulled.id, fetched_layers = pulled.fetched_layers, elapsed_ms = started.elapsed().as_millis() as u64, "PullImage done");
        Ok(pulled.id)
    }

    /// Registers every name of image `id` in containerd.
    async fn register(
        &self,
        client: &containerd::Client,
        reference: &Reference,
        id: Digest,
    ) -> Result<(), Status> {
        let catalog = self.catalog()?;
        let entry = catalog
            .entries()
            .find(|e| e.id == id)
            .ok_or_else(|| internal(format!("image {reference}: no record after the pull")))?;
        let record = entry.record();
        let blobs = Blobs::load(&self.images, record).map_err(|e| status(e.kind(), e))?;
        let aliases: Vec<String> = entry.names().map(str::to_owned).collect();
        let options = register::Options {
            pinned: pinned::configured(&catalog, &self.options.pinned).contains(&id),
            ..self.options.register.clone()
        };
        register::register_as(client, record, &blobs, &aliases, &options)
            .await
            .map_err(|e| {
                tracing::warn!(image = %reference, error = %e, "registering in containerd failed");
                status(e.kind(), e)
            })?;
        // containerd has the kept layer blobs now; Hoist's copies are no longer needed.
        for digest in blobs.layers.keys() {
            if let Err(e) = self.images.remove_blob(digest) {
                tracing::warn!(layer = %digest, error = %e, "could not remove a kept layer blob");
            }
        }
        Ok(())
    }

    pub(super) fn catalog(&self) -> Result<Catalog, Status> {
        Catalog::load(&self.images).map_err(internal)
    }

    /// The IDs of the pinned images of `catalog`: those `[serve] pinned_images` names, and
    /// those whose records containerd labels pinned.
    pub(super) async fn pinned(&self, catalog: &Catalog) -> Result<HashSet<Digest>, Status> {
        let mut ids = pinned::configured(catalog, &self.options.pinned);
        if let Some(client) = &self.options.containerd {
            let labelled = pinned::labelled(client, catalog)
                .await
                .map_err(|e| status(e.kind(), e))?;
            ids.extend(labelled);
        }
        Ok(ids)
    }

    /// The CRI description of `entry`, and its parsed config.
    pub(super) fn describe(
        &self,
        entry: &Entry,
        pinned: bool,
    ) -> Result<(cri::Image, serde_json::Value), Status> {
        let record = entry.record();
        let bytes = self
            .images
            .blob(&record.config)
            .map_err(internal)?
            .ok_or_else(|| {
                internal(format!(
                    "image {}: config {} is missing",
                    record.name, record.config
                ))
            })?;
        let config = manifest::parse_config(&bytes).map_err(internal)?;
        let manifest_size = self
            .images
            .blob_size(&record.manifest)
            .map_err(internal)?
            .unwrap_or(0);
        let size = record.size + manifest_size + bytes.len() as u64;
        let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        Ok((catalog::to_cri(entry, size, &config, pinned), json))
    }

    pub(super) fn verbose_info(
        &self,
        entry: &Entry,
        config: serde_json::Value,
    ) -> HashMap<String, String> {
        let record = entry.record();
        let info = serde_json::json!({
            "id": entry.id.to_string(),
            "names": entry.names().collect::<Vec<_>>(),
            "target": record.target.to_string(),
            "manifest": record.manifest.to_string(),
            "chainID": record.chain_ids.last().map(ToString::to_string),
            "chainIDs": record.chain_ids.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "snapshotter": self.options.register.snapshotter,
            "registered": self.options.containerd.is_some(),
            "imageSpec": config,
        });
        HashMap::from([("info".to_owned(), info.to_string())])
    }

    pub(super) async fn remove(&self, reference: &str) -> Result<(), Status> {
        let _serial = self.removing.lock().await;
        let catalog = self.catalog()?;
        let Some(entry) = catalog.resolve(reference) else {
            tracing::debug!(%reference, "RemoveImage: no such image");
            return Ok(());
        };
        // containerd first: if it fails, nothing is removed and a retry finds the image.
        if let Some(client) = &self.options.containerd {
            let mut names: Vec<String> = entry.names().map(str::to_owned).collect();
            names.push(entry.id.to_string());
            let last = names.len() - 1;
            for (i, name) in names.iter().enumerate() {
                // The last deletion waits for containerd's garbage collection, which removes
                // the content and the layers' snapshots (through Hoist's snapshotter).
                client
                    .delete_image(name, i == last)
                    .await
                    .map_err(|e| status(e.kind(), e))?;
            }
        }
        for name in entry.names() {
            self.images.remove(name).map_err(internal)?;
        }
        self.registered
            .lock()
            .expect("never poisoned")
            .remove(&entry.id);
        let remaining = self.catalog()?;
        let used: HashSet<Digest> = remaining
            .entries()
            .flat_map(|e| e.records.iter())
            .flat_map(|r| [r.target, r.manifest, r.config])
            .collect();
        let record = entry.record();
        for blob in [record.target, record.manifest, record.config] {
            if !used.contains(&blob) {
                self.images.remove_blob(&blob).map_err(internal)?;
            }
        }
        if self.options.containerd.is_none() {
            self.puller.remove_unused_layers(&record.chain_ids);
        }
        tracing::info!(%reference, id = %entry.id, "RemoveImage done");
        Ok(())
    }

    /// The store's usage, answered as containerd's CRI answers for its snapshotter.
    pub(super) fn fs_usage(&self) -> Result<cri::FilesystemUsage, Status> {
        let store = self.puller.store();
        let (mut bytes, mut inodes) = (0, 0);
        for info in store.list().map_err(internal)? {
            match store.usage(&info.name) {
                Ok(usage) => {
                    bytes += usage.size;
                    inodes += usage.inodes;
                }
                // Removed since the listing.
                Err(hoist_snapshotter::Error::NotFound { .. }) => {}
                Err(e) => return Err(internal(e)),
            }
        }
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i64);
        Ok(cri::FilesystemUsage {
            timestamp,
            fs_id: Some(cri::FilesystemIdentifier {
                mountpoint: store.root().display().to_string(),
            }),
            used_bytes: Some(cri::UInt64Value { value: bytes }),
            inodes_used: Some(cri::UInt64Value { value: inodes }),
        })
    }
}
