//! A small CRI `runtime.v1.RuntimeService` client: the pod and container calls kubelet makes of
//! containerd, beside the ImageService client of [`super::Cri`], with the same errors.

use std::path::Path;

use hoist::proto::cri::v1 as api;
use hoist::proto::cri::v1::runtime_service_client::RuntimeServiceClient;
use tonic::transport::Channel;

pub use api::{
    ContainerConfig, ContainerState, ContainerStatus, PodSandboxState, PodSandboxStatus,
    VersionResponse,
};

use super::{Result, channel, failed};

/// A connection to a runtime's CRI socket. Cheap to clone; calls may run concurrently.
#[derive(Debug, Clone)]
pub struct Runtime {
    client: RuntimeServiceClient<Channel>,
}

impl Runtime {
    /// Connects to the CRI socket at `socket`.
    pub async fn connect(socket: &Path) -> Result<Runtime> {
        Ok(Runtime {
            client: RuntimeServiceClient::new(channel(socket).await?),
        })
    }

    /// `Version`: the runtime's name and version (what kubelet asks first).
    pub async fn version(&self) -> Result<VersionResponse> {
        let request = api::VersionRequest {
            version: "v1".to_owned(),
        };
        let response = self
            .client
            .clone()
            .version(request)
            .await
            .map_err(failed("Version"))?;
        Ok(response.into_inner())
    }

    /// `RunPodSandbox` with the default runtime handler: the new sandbox's ID.
    pub async fn run_pod_sandbox(&self, config: &api::PodSandboxConfig) -> Result<String> {
        let request = api::RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: String::new(),
        };
        let response = self
            .client
            .clone()
            .run_pod_sandbox(request)
            .await
            .map_err(failed("RunPodSandbox"))?;
        Ok(response.into_inner().pod_sandbox_id)
    }

    /// `PodSandboxStatus`.
    pub async fn pod_sandbox_status(&self, id: &str) -> Result<PodSandboxStatus> {
        let request = api::PodSandboxStatusRequest {
            pod_sandbox_id: id.to_owned(),
            verbose: false,
        };
        let response = self
            .client
            .clone()
            .pod_sandbox_status(request)
            .await
            .map_err(failed("PodSandboxStatus"))?;
        Ok(response.into_inner().status.unwrap_or_default())
    }

    /// `StopPodSandbox`: stops its containers and its sandbox container.
    pub async fn stop_pod_sandbox(&self, id: &str) -> Result<()> {
        let request = api::StopPodSandboxRequest {
            pod_sandbox_id: id.to_owned(),
        };
        self.client
            .clone()
            .stop_pod_sandbox(request)
            .await
            .map_err(failed("StopPodSandbox"))?;
        Ok(())
    }

    /// `RemovePodSandbox`: removes it and its containers.
    pub async fn remove_pod_sandbox(&self, id: &str) -> Result<()> {
        let request = api::RemovePodSandboxRequest {
            pod_sandbox_id: id.to_owned(),
        };
        self.client
            .clone()
            .remove_pod_sandbox(request)
            .await
            .map_err(failed("RemovePodSandbox"))?;
        Ok(())
    }

    /// `CreateContainer` in sandbox `pod` (created with `sandbox`): the container's ID.
    pub async fn create_container(
        &self,
        pod: &str,
        config: &ContainerConfig,
        sandbox: &api::PodSandboxConfig,
    ) -> Result<String> {
        let request = api::CreateContainerRequest {
            pod_sandbox_id: pod.to_owned(),
            config: Some(config.clone()),
            sandbox_config: Some(sandbox.clone()),
        };
        let response = self
            .client
            .clone()
            .create_container(request)
            .await
            .map_err(failed("CreateContainer"))?;
        Ok(response.into_inner().container_id)
    }

    /// `StartContainer`.
    pub async fn start_container(&self, id: &str) -> Result<()> {
        let request = api::StartContainerRequest {
            container_id: id.to_owned(),
        };
        self.client
            .clone()
            .start_container(request)
            .await
            .map_err(failed("StartContainer"))?;
        Ok(())
    }

    /// `ContainerStatus`.
    pub async fn container_status(&self, id: &str) -> Result<ContainerStatus> {
        let request = api::ContainerStatusRequest {
            container_id: id.to_owned(),
            verbose: false,
        };
        let response = self
            .client
            .clone()
            .container_status(request)
            .await
            .map_err(failed("ContainerStatus"))?;
        Ok(response.into_inner().status.unwrap_or_default())
    }
}
