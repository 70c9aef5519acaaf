//! The `runtime.v1.ImageService` implementation.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use super::catalog::{self, Catalog, Entry};
use super::{auth, status};
use crate::connectors::PodContext;
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
}

/// The CRI ImageService over one [`Puller`] (and its store and image records).
#[derive(Debug, Clone)]
pub struct ImageService {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    puller: Arc<Puller>,
    images: Images,
    options: Options,
    /// Serialises removals, so that two concurrent `RemoveImage` calls of one image both
    /// succeed: the second finds nothing left to remove.
    removing: tokio::sync::Mutex<()>,
    /// Per image ID: when the last registration that completed had started. Concurrent pulls
    /// of one image register it once: a pull that finished before a registration started is
    /// covered by it (that registration read the pull's records).
    registered: std::sync::Mutex<HashMap<Digest, Arc<tokio::sync::Mutex<Option<Instant>>>>>,
}

fn invalid(message: impl std::fmt::Display) -> Status {
    status(Kind::InvalidArgument, message)
}

fn internal(e: impl std::fmt::Display) -> Status {
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
        register::register_as(client, record, &blobs, &aliases, &self.options.register)
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

    fn catalog(&self) -> Result<Catalog, Status> {
        Catalog::load(&self.images).map_err(internal)
    }

    /// The CRI description of `entry`, and its parsed config.
    fn describe(&self, entry: &Entry) -> Result<(cri::Image, serde_json::Value), Status> {
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
        Ok((catalog::to_cri(entry, size, &config), json))
    }

    fn verbose_info(&self, entry: &Entry, config: serde_json::Value) -> HashMap<String, String> {
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

    async fn remove(&self, reference: &str) -> Result<(), Status> {
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

    fn fs_usage(&self) -> Result<cri::FilesystemUsage, Status> {
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

fn image_of(spec: Option<cri::ImageSpec>) -> String {
    spec.map(|s| s.image).unwrap_or_default()
}

#[tonic::async_trait]
impl cri::image_service_server::ImageService for ImageService {
    async fn list_images(
        &self,
        request: Request<cri::ListImagesRequest>,
    ) -> Result<Response<cri::ListImagesResponse>, Status> {
        let filter = request
            .into_inner()
            .filter
            .map(|f| image_of(f.image))
            .filter(|s| !s.is_empty());
        let catalog = self.inner.catalog()?;
        let entries: Vec<&Entry> = match &filter {
            Some(reference) => catalog.resolve(reference).into_iter().collect(),
            None => catalog.entries().collect(),
        };
        let images = entries
            .into_iter()
            .map(|e| self.inner.describe(e).map(|(image, _)| image))
            .collect::<Result<_, _>>()?;
        Ok(Response::new(cri::ListImagesResponse { images }))
    }

    async fn image_status(
        &self,
        request: Request<cri::ImageStatusRequest>,
    ) -> Result<Response<cri::ImageStatusResponse>, Status> {
        let request = request.into_inner();
        let reference = image_of(request.image);
        if reference.is_empty() {
            return Err(invalid("ImageStatus: no image given"));
        }
        let catalog = self.inner.catalog()?;
        let Some(entry) = catalog.resolve(&reference) else {
            return Ok(Response::new(cri::ImageStatusResponse::default()));
        };
        let (image, config) = self.inner.describe(entry)?;
        let info = match request.verbose {
            true => self.inner.verbose_info(entry, config),
            false => HashMap::new(),
        };
        Ok(Response::new(cri::ImageStatusResponse {
            image: Some(image),
            info,
        }))
    }

    async fn pull_image(
        &self,
        request: Request<cri::PullImageRequest>,
    ) -> Result<Response<cri::PullImageResponse>, Status> {
        let request = request.into_inner();
        let image = image_of(request.image);
        if image.is_empty() {
            return Err(invalid("PullImage: no image given"));
        }
        let reference: Reference = image
            .parse()
            .map_err(|e: crate::reference::Error| status(e.kind(), e))?;
        let credentials =
            auth::credentials(request.auth.as_ref(), reference.registry()).map_err(invalid)?;
        let Some(connectors) = &self.inner.options.connectors else {
            let id = self.pull(reference, credentials).await?;
            return Ok(Response::new(cri::PullImageResponse {
                image_ref: id.to_string(),
            }));
        };
        let sandbox = request.sandbox_config.unwrap_or_default();
        let pod =
            PodContext::from_metadata(&sandbox.annotations, &sandbox.labels).map_err(invalid)?;
        // The resolver is taken once: a config reload does not change a pull in flight.
        let resolution = connectors
            .get()
            .resolve(&reference, &pod, Some(credentials))
            .await
            .map_err(|e| status(e.kind(), e))?;
        let using = resolution.describe();
        let id = self
            .pull(reference, resolution.credentials)
            .await
            .map_err(|s| Status::new(s.code(), format!("{using}: {}", s.message())))?;
        Ok(Response::new(cri::PullImageResponse {
            image_ref: id.to_string(),
        }))
    }

    async fn remove_image(
        &self,
        request: Request<cri::RemoveImageRequest>,
    ) -> Result<Response<cri::RemoveImageResponse>, Status> {
        let reference = image_of(request.into_inner().image);
        if reference.is_empty() {
            return Err(invalid("RemoveImage: no image given"));
        }
        self.inner.remove(&reference).await?;
        Ok(Response::new(cri::RemoveImageResponse {}))
    }

    async fn image_fs_info(
        &self,
        _request: Request<cri::ImageFsInfoRequest>,
    ) -> Result<Response<cri::ImageFsInfoResponse>, Status> {
        let inner = Arc::clone(&self.inner);
        let usage = tokio::task::spawn_blocking(move || inner.fs_usage())
            .await
            .map_err(internal)??;
        Ok(Response::new(cri::ImageFsInfoResponse {
            image_filesystems: vec![usage],
            container_filesystems: Vec::new(),
        }))
    }
}
