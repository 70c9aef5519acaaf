//! A host-network pod and its containers as kubelet asks a runtime for them, for the pod-flow
//! test and `hoist-bench cri run`.

use std::path::Path;
use std::time::{Duration, Instant};

use hoist::proto::cri::v1 as api;

use super::runtime::{ContainerState, ContainerStatus, Runtime};
use super::{Error, Result};

/// A host-network pod's sandbox config, as kubelet sends it, with container logs under `logs`.
pub fn sandbox_config(name: &str, namespace: &str, logs: &Path) -> api::PodSandboxConfig {
    let namespaces = api::NamespaceOption {
        network: api::NamespaceMode::Node.into(),
        pid: api::NamespaceMode::Container.into(),
        ipc: api::NamespaceMode::Pod.into(),
        ..api::NamespaceOption::default()
    };
    api::PodSandboxConfig {
        metadata: Some(api::PodSandboxMetadata {
            name: name.to_owned(),
            uid: format!("{name}-{}", std::process::id()),
            namespace: namespace.to_owned(),
            attempt: 0,
        }),
        log_directory: logs.display().to_string(),
        linux: Some(api::LinuxPodSandboxConfig {
            security_context: Some(api::LinuxSandboxSecurityContext {
                namespace_options: Some(namespaces),
                ..api::LinuxSandboxSecurityContext::default()
            }),
            ..api::LinuxPodSandboxConfig::default()
        }),
        ..api::PodSandboxConfig::default()
    }
}

/// The container `name` kubelet creates in `pod` for the image with ID `id` that the pod spec
/// names `tag` (`user_specified_image`), running the image's entrypoint with `args`. Its log is
/// `NAME/0.log` below the pod's log directory.
pub fn container_config(
    name: &str,
    id: &str,
    tag: &str,
    args: &[String],
    pod: &api::PodSandboxConfig,
) -> api::ContainerConfig {
    let namespaces = pod
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref())
        .and_then(|s| s.namespace_options.clone());
    api::ContainerConfig {
        metadata: Some(api::ContainerMetadata {
            name: name.to_owned(),
            attempt: 0,
        }),
        image: Some(api::ImageSpec {
            image: id.to_owned(),
            user_specified_image: tag.to_owned(),
            ..api::ImageSpec::default()
        }),
        args: args.to_vec(),
        log_path: format!("{name}/0.log"),
        linux: Some(api::LinuxContainerConfig {
            security_context: Some(api::LinuxContainerSecurityContext {
                namespace_options: namespaces,
                ..api::LinuxContainerSecurityContext::default()
            }),
            ..api::LinuxContainerConfig::default()
        }),
        ..api::ContainerConfig::default()
    }
}

/// Polls `ContainerStatus` until the container has exited, for at most `within`.
pub async fn exited(runtime: &Runtime, id: &str, within: Duration) -> Result<ContainerStatus> {
    let started = Instant::now();
    loop {
        let status = runtime.container_status(id).await?;
        if status.state == i32::from(ContainerState::ContainerExited) {
            return Ok(status);
        }
        if started.elapsed() > within {
            return Err(Error::Call {
                call: "ContainerStatus",
                status: tonic::Status::deadline_exceeded(format!(
                    "container {id} still {:?} after {within:?}",
                    status.state()
                )),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The text of a CRI container log (`TIMESTAMP STREAM TAG TEXT` lines): each line's stream and
/// text.
pub fn log_lines(log: &str) -> Vec<(String, String)> {
    log.lines()
        .filter_map(|line| {
            let mut fields = line.splitn(4, ' ');
            let _timestamp = fields.next()?;
            let stream = fields.next()?;
            let _tag = fields.next()?;
            Some((stream.to_owned(), fields.next().unwrap_or("").to_owned()))
        })
        .collect()
}

/// What [`run_once`] saw.
#[derive(Debug, Clone)]
pub struct Ran {
    /// The container's exit code.
    pub exit_code: i32,
    /// Its log, as (stream, text) lines.
    pub log: Vec<(String, String)>,
}

/// Runs the image with ID `id` (named `tag` by the pod spec) once in a new host-network pod,
/// as kubelet would: RunPodSandbox, CreateContainer, StartContainer, then waits (at most
/// `within`) for it to exit, reads its log, and stops and removes the pod whatever happened.
pub async fn run_once(
    runtime: &Runtime,
    id: &str,
    tag: &str,
    args: &[String],
    logs: &Path,
    within: Duration,
) -> Result<Ran> {
    let pod = sandbox_config("hoist-run", "default", logs);
    let sandbox = runtime.run_pod_sandbox(&pod).await?;
    let ran = Box::pin(async {
        let config = container_config("run", id, tag, args, &pod);
        let container = runtime.create_container(&sandbox, &config, &pod).await?;
        runtime.start_container(&container).await?;
        let status = exited(runtime, &container, within).await?;
        let log = std::fs::read_to_string(logs.join(&config.log_path)).unwrap_or_default();
        Ok(Ran {
            exit_code: status.exit_code,
            log: log_lines(&log),
        })
    })
    .await;
    let stopped = runtime.stop_pod_sandbox(&sandbox).await;
    let removed = runtime.remove_pod_sandbox(&sandbox).await;
    let ran = ran?;
    stopped?;
    removed?;
    Ok(ran)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cri_log_lines() {
        let log = "2026-12-07T05:00:00.1Z stdout F hello from a pod\n\
                   2026-12-07T05:00:00.2Z stderr P partial\n";
        assert_eq!(
            log_lines(log),
            [
                ("stdout".to_owned(), "hello from a pod".to_owned()),
                ("stderr".to_owned(), "partial".to_owned())
            ]
        );
    }
}
