//! `hoist serve` under process faults, through its CRI socket: `kill -9` at several moments
//! of a pull (while a layer request stalls, then while layers are fetched, unpacked and
//! committed) followed by a restart and the same pull; a pull and a remove of the same image
//! at once. Afterwards the store is consistent, and both sockets are 0660. `Serve` and the
//! store check are shared with the kills at pause points (`kill.rs`).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use hoist::proto::cri::v1 as cri;
use tonic::transport::Channel;

use crate::reliability::{Outcome, record};
use crate::support::{Comp, Faults, FaultyRegistry, image, noise, tar_of};

pub type Cri = cri::image_service_client::ImageServiceClient<Channel>;

/// A `hoist serve` on `root` with its sockets under `root/run` (the snapshots socket where
/// [`Setup::containerd`] says, when set). Killed with SIGKILL on drop.
pub struct Serve {
    child: Child,
    root: PathBuf,
}

/// What a test changes in how `hoist serve` starts.
#[derive(Debug, Default)]
pub struct Setup {
    /// `HOIST_TEST_PAUSE_AT` (`STAGE[:N]`, see `hoist::hooks`); the marker is [`Setup::marker`].
    pub pause_at: Option<String>,
    /// Register pulls in this containerd; otherwise nothing is registered.
    pub containerd: Option<Containerd>,
}

/// A containerd whose config names Hoist's proxy snapshotter `hoist` on `snapshots_socket`.
#[derive(Debug, Clone)]
pub struct Containerd {
    /// Its gRPC socket.
    pub socket: PathBuf,
    /// Where its `[proxy_plugins.hoist]` expects Hoist's snapshots socket.
    pub snapshots_socket: PathBuf,
    /// The namespace images are registered in.
    pub namespace: String,
}

impl Setup {
    /// The file `hoist serve` creates when it pauses.
    pub fn marker(root: &Path) -> PathBuf {
        root.join("paused")
    }
}

impl Serve {
    fn config(root: &Path, registry: &str, setup: &Setup) -> PathBuf {
        let path = root.join("hoist.toml");
        let registration = match &setup.containerd {
            None => format!(
                "snapshots_socket = {:?}\nregister = false\n",
                root.join("run/snapshots.sock")
            ),
            Some(c) => format!(
                "snapshots_socket = {:?}\ncontainerd_socket = {:?}\nnamespace = {:?}\n",
                c.snapshots_socket, c.socket, c.namespace
            ),
        };
        let text = format!(
            "root = {root:?}\ninsecure_registries = [{registry:?}]\n\n[serve]\n\
             cri_socket = {cri:?}\n{registration}",
            cri = root.join("run/cri.sock"),
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    pub async fn start(root: &Path, registry: &str) -> (Serve, Cri) {
        Serve::start_with(root, registry, &Setup::default()).await
    }

    pub async fn start_with(root: &Path, registry: &str, setup: &Setup) -> (Serve, Cri) {
        let config = Serve::config(root, registry, setup);
        let mut command = Command::new(env!("CARGO_BIN_EXE_hoist"));
        command.args(["serve", "--config"]).arg(&config);
        if let Some(at) = &setup.pause_at {
            command
                .env("HOIST_TEST_PAUSE_AT", at)
                .env("HOIST_TEST_PAUSE_MARKER", Setup::marker(root));
        }
        let child = command.spawn().unwrap();
        let serve = Serve {
            child,
            root: root.to_owned(),
        };
        let socket = root.join("run/cri.sock");
        let channel = crate::support::connect_unix(&socket, Duration::from_secs(20)).await;
        (serve, Cri::new(channel))
    }

    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn socket_modes(&self) -> Vec<u32> {
        ["run/cri.sock", "run/snapshots.sock"]
            .iter()
            .map(|s| {
                std::fs::metadata(self.root.join(s))
                    .unwrap()
                    .permissions()
                    .mode()
                    & 0o777
            })
            .collect()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn spec(reference: &str) -> Option<cri::ImageSpec> {
    Some(cri::ImageSpec {
        image: reference.to_owned(),
        ..Default::default()
    })
}

pub async fn pull(client: &mut Cri, reference: &str) -> Result<String, tonic::Status> {
    client
        .pull_image(cri::PullImageRequest {
            image: spec(reference),
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner().image_ref)
}

/// The store under `root` is consistent: nothing staged, every snapshot whole and committed
/// ones chained; and when `image` is recorded, every layer of it is present.
pub fn assert_consistent(root: &Path, image: Option<&str>, when: &str) {
    let store = hoist_snapshotter::Store::open(root).unwrap();
    assert_eq!(store.check().unwrap(), Vec::new(), "{when}");
    let staged: Vec<_> = std::fs::read_dir(root.join("staging")).unwrap().collect();
    assert!(staged.is_empty(), "{when}: staging left: {staged:?}");
    let images = hoist::images::Images::open(root).unwrap();
    for record in images.list().unwrap() {
        if image.is_some_and(|i| record.name.starts_with(i)) || image.is_none() {
            for chain in &record.chain_ids {
                assert!(
                    store.get(&chain.to_string()).unwrap().is_some(),
                    "{when}: {} lacks layer {chain}",
                    record.name
                );
            }
        }
    }
}

fn three_big_layers() -> crate::support::Image {
    image(
        &[
            tar_of(&[("a", &noise(2 << 20, 1))]),
            tar_of(&[("b", &noise(3 << 20, 2))]),
            tar_of(&[("c", &noise(2 << 20, 3))]),
        ],
        Comp::None,
        false,
    )
}

#[tokio::test]
async fn kill_9_of_serve_mid_pull_then_restart_and_pull_needs_root() {
    let root = tempfile::tempdir().unwrap();
    // The first layer request stalls for 5 s: the first kill lands mid-fetch for certain;
    // the later ones at moments spread over fetch, unpack and commit.
    let faults = Faults {
        stall: Some((Duration::from_secs(5), 1)),
        ..Faults::default()
    };
    let registry = FaultyRegistry::start(three_big_layers(), faults).await;
    let reference = registry.reference().to_string();
    for delay_ms in [300u64, 20, 120, 400, 900] {
        let (serve, client) = Serve::start(root.path(), &registry.host()).await;
        assert_eq!(
            serve.socket_modes(),
            [0o660, 0o660],
            "both sockets are 0660"
        );
        let mut client = client;
        let reference = reference.clone();
        let pulling = tokio::spawn(async move { pull(&mut client, &reference).await });
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        serve.kill();
        let _ = pulling.await.unwrap();
        assert_consistent(root.path(), None, &format!("after a kill at {delay_ms} ms"));
    }
    let (serve, mut client) = Serve::start(root.path(), &registry.host()).await;
    let image_ref = pull(&mut client, &reference).await.unwrap();
    assert_eq!(image_ref, registry.image().config_digest.to_string());
    let status = client
        .image_status(cri::ImageStatusRequest {
            image: spec(&reference),
            verbose: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        status.image.is_some(),
        "the image is there after the restarts"
    );
    serve.kill();
    assert_consistent(root.path(), Some(&reference), "after the final pull");
    let store = hoist_snapshotter::Store::open(root.path()).unwrap();
    let content = store
        .list()
        .unwrap()
        .into_iter()
        .map(|i| store.get(&i.name).unwrap().unwrap().fs.join("b"))
        .find(|p| p.exists())
        .expect("the middle layer is committed");
    assert_eq!(
        std::fs::read(content).unwrap(),
        noise(3 << 20, 2),
        "the right bytes"
    );
    let fault = "kill -9 of hoist serve mid-pull (5 moments), restart, pull again";
    record(fault, Outcome::Recovered, registry.blob_requests(), None);
}

#[tokio::test]
async fn concurrent_pull_and_remove_of_one_image_leave_a_consistent_store() {
    let root = tempfile::tempdir().unwrap();
    let registry = FaultyRegistry::start(three_big_layers(), Faults::default()).await;
    let reference = registry.reference().to_string();
    let (serve, client) = Serve::start(root.path(), &registry.host()).await;
    for round in 0..3 {
        let (mut a, mut b) = (client.clone(), client.clone());
        let (r1, r2) = (reference.clone(), reference.clone());
        let pulled = tokio::spawn(async move { pull(&mut a, &r1).await });
        tokio::time::sleep(Duration::from_millis(30 * round)).await;
        let removed = tokio::spawn(async move {
            b.remove_image(cri::RemoveImageRequest { image: spec(&r2) })
                .await
        });
        let pulled = pulled.await.unwrap();
        let removed = removed.await.unwrap();
        assert!(
            pulled.is_ok(),
            "round {round}: the pull succeeds: {pulled:?}"
        );
        assert!(
            removed.is_ok(),
            "round {round}: removing is idempotent: {removed:?}"
        );
        let mut c = client.clone();
        let listed = c
            .list_images(cri::ListImagesRequest::default())
            .await
            .unwrap()
            .into_inner()
            .images;
        // Whichever came last wins; in between, the image is whole or absent, never half.
        assert!(listed.len() <= 1, "round {round}: {listed:?}");
        let mut c = client.clone();
        pull(&mut c, &reference).await.unwrap();
        let fault = "concurrent pull and remove of one image, then pull again";
        record(fault, Outcome::Recovered, registry.blob_requests(), None);
    }
    serve.kill();
    assert_consistent(
        root.path(),
        Some(&reference),
        "after concurrent pull and remove",
    );
}
