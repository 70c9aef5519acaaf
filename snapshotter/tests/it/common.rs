//! The snapshotter under test: the `hoist-snapshotter` binary, or the library's `serve` on a
//! socket in-process, and a gRPC client for either.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hoist_snapshotter::Store;
use hoist_snapshotter::proto::containerd::services::snapshots::v1 as api;
use tokio::sync::oneshot;
use tonic::transport::Channel;

/// A gRPC client of the snapshots service.
pub type Client = api::snapshots_client::SnapshotsClient<Channel>;

/// Connects to the service on `socket`, retrying for up to 10 s while it starts.
pub async fn connect(socket: &Path) -> Client {
    let started = Instant::now();
    loop {
        let endpoint =
            tonic::transport::Endpoint::from_shared(format!("unix://{}", socket.display()))
                .unwrap();
        match endpoint.connect().await {
            Ok(channel) => return Client::new(channel),
            Err(e) if started.elapsed() < Duration::from_secs(10) => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("connecting to {}: {e}", socket.display()),
        }
    }
}

/// The `hoist-snapshotter` binary serving `root` on `socket`; killed (SIGKILL) on drop.
#[derive(Debug)]
pub struct Daemon {
    pub child: Child,
}

impl Daemon {
    /// Starts the binary and waits until its socket exists. `log` receives its stderr.
    pub fn start(root: &Path, socket: &Path, log: &Path) -> Daemon {
        let _ = std::fs::remove_file(socket);
        let child = Command::new(env!("CARGO_BIN_EXE_hoist-snapshotter"))
            .arg("--root")
            .arg(root)
            .arg("--socket")
            .arg(socket)
            .env("RUST_LOG", "hoist_snapshotter=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .expect("starting hoist-snapshotter");
        let daemon = Daemon { child };
        let started = Instant::now();
        while !socket.exists() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "hoist-snapshotter did not create {} in 20 s: {}",
                socket.display(),
                std::fs::read_to_string(log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        daemon
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The library's `serve` on a socket in this process, over a store the test can also use.
pub struct InProcess {
    pub store: Arc<Store>,
    pub socket: PathBuf,
    pub root: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    _tmp: tempfile::TempDir,
}

impl InProcess {
    /// A fresh store in a temp dir, served on `<tmp>/snapshots.sock`.
    pub async fn start() -> (InProcess, Client) {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let socket = tmp.path().join("snapshots.sock");
        let store = Arc::new(Store::open(&root).unwrap());
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn({
            let store = Arc::clone(&store);
            let socket = socket.clone();
            async move {
                hoist_snapshotter::service::serve(store, &socket, async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
            }
        });
        let client = connect(&socket).await;
        let server = InProcess {
            store,
            socket,
            root,
            stop: Some(stop),
            task: Some(task),
            _tmp: tmp,
        };
        (server, client)
    }

    /// Stops the server and waits for it (the socket file is removed).
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }
}

/// Labels from pairs.
pub fn labels(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// `Prepare` with labels.
pub async fn prepare(
    c: &mut Client,
    key: &str,
    parent: &str,
    labels: HashMap<String, String>,
) -> Result<Vec<hoist_snapshotter::proto::containerd::types::Mount>, tonic::Status> {
    c.prepare(api::PrepareSnapshotRequest {
        snapshotter: "hoist".into(),
        key: key.into(),
        parent: parent.into(),
        labels,
    })
    .await
    .map(|r| r.into_inner().mounts)
}

/// `View` without labels.
pub async fn view(
    c: &mut Client,
    key: &str,
    parent: &str,
) -> Result<Vec<hoist_snapshotter::proto::containerd::types::Mount>, tonic::Status> {
    c.view(api::ViewSnapshotRequest {
        snapshotter: "hoist".into(),
        key: key.into(),
        parent: parent.into(),
        labels: HashMap::new(),
    })
    .await
    .map(|r| r.into_inner().mounts)
}

/// `Commit` with labels.
pub async fn commit(
    c: &mut Client,
    key: &str,
    name: &str,
    labels: HashMap<String, String>,
) -> Result<(), tonic::Status> {
    c.commit(api::CommitSnapshotRequest {
        snapshotter: "hoist".into(),
        name: name.into(),
        key: key.into(),
        labels,
    })
    .await
    .map(|_| ())
}

/// `Remove`.
pub async fn remove(c: &mut Client, key: &str) -> Result<(), tonic::Status> {
    c.remove(api::RemoveSnapshotRequest {
        snapshotter: "hoist".into(),
        key: key.into(),
    })
    .await
    .map(|_| ())
}

/// `Stat`.
pub async fn stat(c: &mut Client, key: &str) -> Result<api::Info, tonic::Status> {
    c.stat(api::StatSnapshotRequest {
        snapshotter: "hoist".into(),
        key: key.into(),
    })
    .await
    .map(|r| r.into_inner().info.expect("stat returns an info"))
}

/// `List` (Walk) with filters, all batches collected.
pub async fn walk(c: &mut Client, filters: &[&str]) -> Result<Vec<api::Info>, tonic::Status> {
    let mut stream = c
        .list(api::ListSnapshotsRequest {
            snapshotter: "hoist".into(),
            filters: filters.iter().map(|f| (*f).to_owned()).collect(),
        })
        .await?
        .into_inner();
    let mut out = Vec::new();
    while let Some(batch) = stream.message().await? {
        out.extend(batch.info);
    }
    Ok(out)
}

/// The directory a mount list writes into: the bind source or the overlay `upperdir`.
pub fn writable_dir(mounts: &[hoist_snapshotter::proto::containerd::types::Mount]) -> PathBuf {
    let m = &mounts[0];
    match m.r#type.as_str() {
        "bind" => PathBuf::from(&m.source),
        _ => m
            .options
            .iter()
            .find_map(|o| o.strip_prefix("upperdir="))
            .map(PathBuf::from)
            .expect("an active overlay mount has an upperdir"),
    }
}

/// Skips (returns `true`) or, with `HOIST_TEST_REQUIRE_SERVICES=1`, fails when `missing` is
/// non-empty.
pub fn skip_unless(test: &str, missing: &[String]) -> bool {
    if missing.is_empty() {
        return false;
    }
    let what = missing.join(", ");
    if std::env::var("HOIST_TEST_REQUIRE_SERVICES").as_deref() == Ok("1") {
        panic!("{test}: required but missing: {what}");
    }
    eprintln!(
        "skipping {test}: missing {what} (HOIST_TEST_REQUIRE_SERVICES=1 makes this a failure)"
    );
    true
}

/// Whether the tests run as root (needed to mount, and to run containerd).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}
