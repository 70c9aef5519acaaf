//! The pod flow as kubelet drives it on a node: images through Hoist's CRI ImageService (`hoist
//! serve`), the pod and its container through containerd's RuntimeService, containerd's CRI
//! creating them from Hoist's snapshotter. Beside the containerd of `scripts/with-services.sh`,
//! which scripts/lib.sh starts with `HOIST_TEST_SANDBOX_IMAGE` as its sandbox image (pulled by
//! containerd itself over plain HTTP), `hoist` on `HOIST_TEST_SNAPSHOTS_SOCKET` as its CRI
//! snapshotter, its config at `HOIST_TEST_CONTAINERD_CONFIG` and its pid in `containerd.pid`
//! beside it. Root, the real containerd and runc (`..._needs_containerd`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use hoist::proto::cri::v1 as api;
use hoist_harness::cri::runtime::PodSandboxState;
use hoist_harness::cri::{PullContext, Runtime, pod};
use hoist_harness::image::layout;
use hoist_harness::programs::Program;
use hoist_harness::skopeo;
use hoist_snapshotter::Store;

use crate::cri_services::Served;
use crate::{fixtures, proxy, services};

/// What scripts/lib.sh exports for this test, besides the registry.
const VARS: [&str; 4] = [
    "HOIST_TEST_CONTAINERD_SOCKET",
    "HOIST_TEST_SNAPSHOTS_SOCKET",
    "HOIST_TEST_CONTAINERD_CONFIG",
    "HOIST_TEST_SANDBOX_IMAGE",
];

/// The workload's one line of output.
const LINE: &str = "hello from a pod";

/// Generous: two cores shared with other builds and tests.
const WAIT: Duration = Duration::from_secs(120);

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn missing() -> Vec<String> {
    let mut missing = proxy::missing();
    missing.extend(
        VARS.iter()
            .filter(|v| var(v).is_none())
            .map(|v| format!("{v} (scripts/with-services.sh)")),
    );
    missing
}

/// Writes `image` as a layout and pushes it as `reference` (`HOST:PORT/REPO:TAG`).
fn push_as(image: &hoist_harness::image::Image, dir: &Path, reference: &str) -> layout::Written {
    let written = layout::write(image, dir, "pod", &layout::Options::default()).unwrap();
    let (repository, tag) = reference.rsplit_once(':').unwrap();
    skopeo::push(&written, repository, tag, &[], &skopeo::Options::default()).unwrap();
    written
}

/// A pod sandbox that is stopped and removed on drop (a failed assertion included), so that no
/// shim or container outlives the test.
struct Pod {
    id: String,
    socket: PathBuf,
    removed: bool,
}

impl Pod {
    async fn run(runtime: &Runtime, socket: &Path, config: &api::PodSandboxConfig) -> Pod {
        let id = runtime.run_pod_sandbox(config).await.unwrap();
        Pod {
            id,
            socket: socket.to_owned(),
            removed: false,
        }
    }

    /// `StopPodSandbox`, then `RemovePodSandbox`, as kubelet does.
    async fn remove(&mut self, runtime: &Runtime) {
        runtime.stop_pod_sandbox(&self.id).await.unwrap();
        runtime.remove_pod_sandbox(&self.id).await.unwrap();
        self.removed = true;
    }
}

impl Drop for Pod {
    #[allow(clippy::print_stderr)] // a cleanup that fails says so
    fn drop(&mut self) {
        if self.removed {
            return;
        }
        // The test's runtime is the thread being unwound: a runtime and connection of its own.
        let (id, socket) = (self.id.clone(), self.socket.clone());
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let removal = async {
                    let runtime = Runtime::connect(&socket).await?;
                    let _ = runtime.stop_pod_sandbox(&id).await;
                    runtime.remove_pod_sandbox(&id).await
                };
                match tokio::time::timeout(WAIT, removal).await {
                    Ok(Ok(())) => None,
                    Ok(Err(e)) => Some(e.to_string()),
                    Err(_) => Some(format!("no answer within {WAIT:?}")),
                }
            })
        });
        if let Ok(Some(error)) = cleanup.join() {
            // Said, not raised: the test is failing already; the scripts stop what is left.
            eprintln!("pod {}: removing it after the failure: {error}", self.id);
        }
    }
}

/// Waits until containerd reaches Hoist's snapshotter: containerd dials its proxy snapshotters
/// with a backoff, so a `hoist serve` that starts after containerd, or again, is not at once in
/// use. The probe prepares and removes a snapshot in a namespace of its own (a walk would not
/// do: containerd answers it from its own metadata).
fn wait_snapshotter(served: &Served) {
    let key = format!("hoist-pod-probe-{}", std::process::id());
    let ctr = |args: &[&str]| {
        let mut all = vec!["snapshots", "--snapshotter", "hoist"];
        all.extend(args);
        proxy::ctr(&served.containerd, "hoist-pod-probe", &all)
    };
    let reached = || {
        let prepared = ctr(&["prepare", &key]).status.success();
        prepared && ctr(&["rm", &key]).status.success()
    };
    assert!(
        Served::eventually(WAIT, reached),
        "containerd never reached Hoist's snapshotter\n{}",
        served.log_tail("hoist")
    );
}

/// Names of the snapshots in Hoist's store, committed and active.
fn snapshots(root: &Path) -> Vec<String> {
    Store::open(root)
        .unwrap()
        .walk::<&str>(&[])
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect()
}

#[tokio::test]
async fn pod_flow_kubelet_drives_needs_containerd() {
    let test = "pod_flow_kubelet_drives_needs_containerd";
    if proxy::skip_unless(test, &missing()) {
        return;
    }
    let [socket, snapshots_socket, config, sandbox] = VARS.map(|v| var(v).unwrap());
    let (socket, config) = (PathBuf::from(socket), PathBuf::from(config));
    let tmp = tempfile::Builder::new()
        .prefix("hoist-pod")
        .tempdir_in("/tmp")
        .unwrap();
    let pause = push_as(
        &Program::Pause.image(tmp.path()).unwrap(),
        &tmp.path().join("pause-layout"),
        &sandbox,
    );
    let (echo, tag) = fixtures::push(&Program::Echo.image(tmp.path()).unwrap(), "pod-echo");
    // Hoist's store lives as long as containerd's metadata, as on a node: the sandbox image
    // that containerd unpacked into it stays for the next run beside the same services.
    let root = config.parent().unwrap().join("hoist-pod");
    let mut served = Served::attach(
        tmp.path(),
        &root,
        &[services::registry()],
        &socket,
        Path::new(&snapshots_socket),
    );
    wait_snapshotter(&served);
    let hoist = served.hoist().await;
    let runtime = Runtime::connect(&socket).await.unwrap();
    let version = runtime.version().await.unwrap();
    assert!(!version.runtime_version.is_empty(), "{version:?}");

    // 1. PullImage through Hoist.
    let id = hoist.pull(&tag, &PullContext::default()).await.unwrap();
    assert_eq!(id, echo.config.digest.to_string());
    let echo_chain: Vec<String> = hoist::images::Images::open(&served.root)
        .unwrap()
        .get(&tag)
        .unwrap()
        .unwrap()
        .chain_ids
        .iter()
        .map(ToString::to_string)
        .collect();

    // 2. RunPodSandbox, host network: containerd pulls the sandbox image into Hoist's store.
    let logs = tmp.path().join("logs");
    let pod_config = pod::sandbox_config("hoist-pod", "hoist-test", &logs);
    let mut pod = Pod::run(&runtime, &socket, &pod_config).await;
    let status = runtime.pod_sandbox_status(&pod.id).await.unwrap();
    assert_eq!(status.state(), PodSandboxState::SandboxReady);
    // One layer: its chain ID is its diff ID.
    let pause_chain = pause.layers[0].diff_id.to_string();
    let has_pause = |names: &[String]| names.iter().any(|n| n.ends_with(&pause_chain));
    assert!(
        has_pause(&snapshots(&served.root)),
        "the sandbox image {pause_chain} is not in Hoist's store: {:?}",
        snapshots(&served.root)
    );

    // 3. CreateContainer as kubelet calls it: the image by ID, the pod spec's name beside it.
    let container_config =
        pod::container_config("echo", &id, &tag, &[LINE.to_owned()], &pod_config);
    let container = runtime
        .create_container(&pod.id, &container_config, &pod_config)
        .await
        .unwrap();

    // 4. StartContainer; it exits 0, its line in its CRI log (`TIMESTAMP stdout F LINE`).
    runtime.start_container(&container).await.unwrap();
    let status = pod::exited(&runtime, &container, WAIT).await.unwrap();
    assert_eq!(status.exit_code, 0, "{status:?}");
    assert_eq!(
        status.image.as_ref().map(|i| i.image.as_str()),
        Some(tag.as_str())
    );
    let log = std::fs::read_to_string(logs.join(&container_config.log_path)).unwrap();
    assert!(
        pod::log_lines(&log).contains(&("stdout".to_owned(), LINE.to_owned())),
        "{log:?}"
    );

    // 5. containerd restarts, then Hoist: both still have the image, the pod still runs.
    let runtime = services::restart_containerd(&config, &socket).await;
    served.restart_hoist();
    wait_snapshotter(&served);
    let hoist = served.hoist().await;
    let containerd = served.containerd_cri().await;
    for (who, cri) in [("hoist", &hoist), ("containerd", &containerd)] {
        let listed = cri.list(None).await.unwrap();
        assert!(listed.iter().any(|i| i.id == id), "{who}: {listed:?}");
        let by_tag = cri.status(&tag).await.unwrap();
        assert_eq!(by_tag.map(|i| i.id), Some(id.clone()), "{who}");
    }
    let status = runtime.pod_sandbox_status(&pod.id).await.unwrap();
    assert_eq!(status.state(), PodSandboxState::SandboxReady);

    // 6. StopPodSandbox and RemovePodSandbox.
    pod.remove(&runtime).await;
    let gone = runtime.pod_sandbox_status(&pod.id).await.unwrap_err();
    assert_eq!(gone.code(), tonic::Code::NotFound, "{gone}");

    // 7. RemoveImage through Hoist: containerd's collector removes the image's snapshots from
    // Hoist's store, and keeps the sandbox image's.
    hoist.remove(&id).await.unwrap();
    assert!(
        Served::eventually(WAIT, || {
            let now = snapshots(&served.root);
            !echo_chain.iter().any(|c| now.contains(c)) && now.len() == 1
        }),
        "left in Hoist's store: {:?} (the image's: {echo_chain:?})\n{}",
        snapshots(&served.root),
        served.log_tail("hoist")
    );
    assert!(has_pause(&snapshots(&served.root)));
    assert_eq!(containerd.status(&id).await.unwrap(), None);
    assert!(containerd.status(&sandbox).await.unwrap().is_some());
}
