//! A small CRI `runtime.v1.ImageService` client over a unix socket: the calls kubelet makes,
//! for Hoist's `hoist serve` and for containerd's own CRI alike; and [`Runtime`], the
//! RuntimeService calls kubelet makes of containerd to run a pod.

pub mod pod;
pub mod runtime;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hoist::proto::cri::v1 as api;
use hoist::proto::cri::v1::image_service_client::ImageServiceClient;
use tonic::transport::{Channel, Endpoint};

pub use api::{AuthConfig, Image, ImageStatusResponse, PodSandboxConfig};
pub use runtime::Runtime;

/// A failed CRI call, or no connection.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The socket could not be reached.
    #[error("CRI socket {socket}: {source}")]
    Connect {
        /// The socket.
        socket: PathBuf,
        /// Why.
        source: tonic::transport::Error,
    },
    /// The server answered with an error.
    #[error("CRI {call}: {status}")]
    Call {
        /// The RPC.
        call: &'static str,
        /// The status, with its code and message.
        status: tonic::Status,
    },
}

impl Error {
    /// The gRPC code of a failed call (`Unavailable` when there was no connection).
    pub fn code(&self) -> tonic::Code {
        match self {
            Error::Connect { .. } => tonic::Code::Unavailable,
            Error::Call { status, .. } => status.code(),
        }
    }
}

/// `Result` with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a pull carries besides the image: kubelet's credentials and the pod's sandbox config.
#[derive(Debug, Clone, Default)]
pub struct PullContext {
    /// Credentials from the pod's imagePullSecrets.
    pub auth: Option<AuthConfig>,
    /// The pod's sandbox config (labels and annotations).
    pub sandbox: Option<PodSandboxConfig>,
    /// The call's deadline, sent as `grpc-timeout`.
    pub timeout: Option<Duration>,
}

/// A connection to one CRI socket. Cheap to clone; calls may run concurrently.
#[derive(Debug, Clone)]
pub struct Cri {
    client: ImageServiceClient<Channel>,
}

fn spec(image: &str) -> Option<api::ImageSpec> {
    Some(api::ImageSpec {
        image: image.to_owned(),
        ..api::ImageSpec::default()
    })
}

fn failed(call: &'static str) -> impl FnOnce(tonic::Status) -> Error {
    move |status| Error::Call { call, status }
}

/// A channel to the unix socket `socket`.
async fn channel(socket: &Path) -> Result<Channel> {
    let connect_err = |source| Error::Connect {
        socket: socket.to_owned(),
        source,
    };
    Endpoint::from_shared(format!("unix://{}", socket.display()))
        .map_err(connect_err)?
        .connect()
        .await
        .map_err(connect_err)
}

impl Cri {
    /// Connects to the CRI socket at `socket`.
    pub async fn connect(socket: &Path) -> Result<Cri> {
        Ok(Cri {
            client: ImageServiceClient::new(channel(socket).await?)
                .max_decoding_message_size(64 << 20),
        })
    }

    /// `PullImage`: the image reference the server answers with (its image ID).
    pub async fn pull(&self, image: &str, context: &PullContext) -> Result<String> {
        let spec = api::ImageSpec {
            image: image.to_owned(),
            ..api::ImageSpec::default()
        };
        self.pull_spec(spec, context).await
    }

    /// `ImageStatus`: the image, or `None` when the server does not have it.
    pub async fn status(&self, image: &str) -> Result<Option<Image>> {
        Ok(self.status_verbose(image, false).await?.image)
    }

    /// `ImageStatus` with `verbose`: the whole answer, `info` included.
    pub async fn status_verbose(&self, image: &str, verbose: bool) -> Result<ImageStatusResponse> {
        self.status_request(spec(image), verbose).await
    }

    async fn status_request(
        &self,
        image: Option<api::ImageSpec>,
        verbose: bool,
    ) -> Result<ImageStatusResponse> {
        let request = api::ImageStatusRequest { image, verbose };
        let response = self
            .client
            .clone()
            .image_status(request)
            .await
            .map_err(failed("ImageStatus"))?;
        Ok(response.into_inner())
    }

    /// `ListImages`, all of them or those matching `filter` (an image reference or ID).
    pub async fn list(&self, filter: Option<&str>) -> Result<Vec<Image>> {
        let request = api::ListImagesRequest {
            filter: filter.map(|f| api::ImageFilter { image: spec(f) }),
        };
        let response = self
            .client
            .clone()
            .list_images(request)
            .await
            .map_err(failed("ListImages"))?;
        Ok(response.into_inner().images)
    }

    /// `RemoveImage`.
    pub async fn remove(&self, image: &str) -> Result<()> {
        let request = api::RemoveImageRequest { image: spec(image) };
        self.client
            .clone()
            .remove_image(request)
            .await
            .map_err(failed("RemoveImage"))?;
        Ok(())
    }

    /// `ImageFsInfo`: the image filesystems' usage.
    pub async fn fs_info(&self) -> Result<Vec<api::FilesystemUsage>> {
        let response = self
            .client
            .clone()
            .image_fs_info(api::ImageFsInfoRequest {})
            .await
            .map_err(failed("ImageFsInfo"))?;
        Ok(response.into_inner().image_filesystems)
    }
}

/// A sandbox config carrying `annotations` and `labels`, as kubelet sends a pod's.
pub fn sandbox(annotations: &[(&str, &str)], labels: &[(&str, &str)]) -> PodSandboxConfig {
    let map = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    PodSandboxConfig {
        annotations: map(annotations),
        labels: map(labels),
        ..PodSandboxConfig::default()
    }
}

/// The calls and fields kubelet 1.35 and 1.36 add: a whole `ImageSpec` (with
/// `user_specified_image`, `runtime_handler`, `image_ref`), `StreamImages`, and the whole
/// `ImageFsInfo` answer.
impl Cri {
    /// `PullImage` of `spec` as given: the image reference the server answers with.
    pub async fn pull_spec(&self, spec: api::ImageSpec, context: &PullContext) -> Result<String> {
        let mut request = tonic::Request::new(api::PullImageRequest {
            image: Some(spec),
            auth: context.auth.clone(),
            sandbox_config: context.sandbox.clone(),
        });
        if let Some(timeout) = context.timeout {
            request.set_timeout(timeout);
        }
        let response = self
            .client
            .clone()
            .pull_image(request)
            .await
            .map_err(failed("PullImage"))?;
        Ok(response.into_inner().image_ref)
    }

    /// `ImageStatus` of `spec` as given.
    pub async fn status_spec(&self, spec: api::ImageSpec) -> Result<Option<Image>> {
        Ok(self.status_request(Some(spec), false).await?.image)
    }

    /// `StreamImages`, all of them or those matching `filter`: each message's images, in
    /// order, once the server has closed the stream.
    pub async fn stream(&self, filter: Option<&str>) -> Result<Vec<Vec<Image>>> {
        let request = api::StreamImagesRequest {
            filter: filter.map(|f| api::ImageFilter { image: spec(f) }),
        };
        let mut stream = self
            .client
            .clone()
            .stream_images(request)
            .await
            .map_err(failed("StreamImages"))?
            .into_inner();
        let mut batches = Vec::new();
        while let Some(message) = stream.message().await.map_err(failed("StreamImages"))? {
            batches.push(message.images);
        }
        Ok(batches)
    }

    /// `ImageFsInfo`, the whole answer (image and container filesystems).
    pub async fn fs_info_response(&self) -> Result<api::ImageFsInfoResponse> {
        let response = self
            .client
            .clone()
            .image_fs_info(api::ImageFsInfoRequest {})
            .await
            .map_err(failed("ImageFsInfo"))?;
        Ok(response.into_inner())
    }
}
