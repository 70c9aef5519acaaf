//! The tonic glue of `runtime.v1.ImageService`: reads each request, calls the service, and
//! writes the answer.
//!
//! * `ImageSpec.image` names the image; when it is empty, `image_ref` (cri-api 0.36: the
//!   image's ID, as kubelet records it for image volumes) does.
//! * `ImageSpec.runtime_handler` is accepted whatever it names: images are shared by every
//!   runtime handler, as in containerd's CRI with its default configuration (one snapshotter).
//! * `ImageSpec.user_specified_image` (the pod's own spelling of the image) is only logged.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use tonic::{Request, Response, Status};

use super::auth;
use super::catalog::Entry;
use super::service::{ImageService, internal, invalid};
use super::status;
use crate::proto::cri::v1 as cri;
use crate::reference::Reference;

/// Images per `StreamImagesResponse`: far below gRPC's 4 MiB message limit, which is why
/// kubelet streams (KEP-5825).
const STREAM_BATCH: usize = 100;

fn image_of(spec: Option<&cri::ImageSpec>) -> String {
    match spec {
        Some(s) if !s.image.is_empty() => s.image.clone(),
        Some(s) => s.image_ref.clone(),
        None => String::new(),
    }
}

impl ImageService {
    /// The images `filter` names (all of them without one), described.
    async fn images(&self, filter: Option<cri::ImageFilter>) -> Result<Vec<cri::Image>, Status> {
        let filter = filter
            .map(|f| image_of(f.image.as_ref()))
            .filter(|s| !s.is_empty());
        let catalog = self.inner.catalog()?;
        let entries: Vec<&Entry> = match &filter {
            Some(reference) => catalog.resolve(reference).into_iter().collect(),
            None => catalog.entries().collect(),
        };
        let pinned = self.inner.pinned(&catalog).await?;
        entries
            .into_iter()
            .map(|e| {
                self.inner
                    .describe(e, pinned.contains(&e.id))
                    .map(|(image, _)| image)
            })
            .collect()
    }
}

type ImageStream = Pin<Box<dyn Stream<Item = Result<cri::StreamImagesResponse, Status>> + Send>>;

#[tonic::async_trait]
impl cri::image_service_server::ImageService for ImageService {
    async fn list_images(
        &self,
        request: Request<cri::ListImagesRequest>,
    ) -> Result<Response<cri::ListImagesResponse>, Status> {
        let images = self.images(request.into_inner().filter).await?;
        Ok(Response::new(cri::ListImagesResponse { images }))
    }

    type StreamImagesStream = ImageStream;

    async fn stream_images(
        &self,
        request: Request<cri::StreamImagesRequest>,
    ) -> Result<Response<Self::StreamImagesStream>, Status> {
        let images = self.images(request.into_inner().filter).await?;
        let batches: Vec<_> = images
            .chunks(STREAM_BATCH)
            .map(|batch| {
                Ok(cri::StreamImagesResponse {
                    images: batch.to_vec(),
                })
            })
            .collect();
        Ok(Response::new(Box::pin(futures::stream::iter(batches))))
    }

    async fn image_status(
        &self,
        request: Request<cri::ImageStatusRequest>,
    ) -> Result<Response<cri::ImageStatusResponse>, Status> {
        let request = request.into_inner();
        let reference = image_of(request.image.as_ref());
        if reference.is_empty() {
            return Err(invalid("ImageStatus: no image given"));
        }
        let catalog = self.inner.catalog()?;
        let Some(entry) = catalog.resolve(&reference) else {
            return Ok(Response::new(cri::ImageStatusResponse::default()));
        };
        let pinned = self.inner.pinned(&catalog).await?.contains(&entry.id);
        let (image, config) = self.inner.describe(entry, pinned)?;
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
        let image = image_of(request.image.as_ref());
        if image.is_empty() {
            return Err(invalid("PullImage: no image given"));
        }
        if let Some(spec) = &request.image {
            tracing::debug!(%image, user_specified_image = %spec.user_specified_image, runtime_handler = %spec.runtime_handler, "PullImage");
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
        // The resolver is taken once: a config reload does not change a pull in flight.
        let resolver = connectors.get();
        // The tenant comes from the namespace kubelet sends, not from what the pod claims.
        let namespace = sandbox
            .metadata
            .as_ref()
            .map_or("", |m| m.namespace.as_str());
        let pod = resolver
            .tenants()
            .pod(namespace, &sandbox.annotations, &sandbox.labels)
            .map_err(invalid)?;
        let resolution = resolver
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
        let reference = image_of(request.into_inner().image.as_ref());
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
        // As containerd's CRI: the image filesystem alone; no container filesystem, which
        // kubelet reads as "containers write to the same filesystem".
        Ok(Response::new(cri::ImageFsInfoResponse {
            image_filesystems: vec![usage],
            container_filesystems: Vec::new(),
        }))
    }
}
