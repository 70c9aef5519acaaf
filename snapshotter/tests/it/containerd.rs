//! The real containerd (the one first on PATH: Debian's 1.6, or 2.1 under `HOIST_CONTAINERD=2
//! scripts/with-services.sh`) with Hoist as its proxy snapshotter `hoist`:
//!
//! * containerd's own pull unpacks through Hoist (Prepare, Apply into the mounts, Commit), and
//!   `ctr run --snapshotter hoist` starts a container whose output is checked;
//! * layers committed directly by the engine's path survive containerd's garbage collector,
//!   are adopted as existing targets through containerd's own snapshots API (the remote
//!   snapshotter protocol its unpacker speaks), and a container runs from them with nothing
//!   unpacked by containerd.
//!
//! ctr 1.6's `image pull` fetches every blob before unpacking, so these tests cannot show a
//! pull that skips the layer download; containerd's `client.Pull` unpacker (used by its CRI
//! plugin) asks Prepare with the target label first and fetches only what is missing.

use std::path::{Path, PathBuf};

use hoist_snapshotter::Store;
use hoist_snapshotter::store::TARGET_LABEL;

use crate::common::{Daemon, is_root, skip_unless};
use crate::image::{self, Image, OUTPUT};
use crate::services::{Services, missing_tools};

const TOOLS: &[&str] = &[
    "containerd",
    "ctr",
    "containerd-shim-runc-v2",
    "runc",
    "skopeo",
    "docker-registry",
    "gcc",
];

/// A registry holding the test image, a Hoist store root, and (once started) the snapshotter
/// and containerd. Fields drop in order: containerd and the registry, then the snapshotter.
struct Env {
    services: Services,
    daemon: Option<Daemon>,
    image: Image,
    reference: String,
    root: PathBuf,
    socket: PathBuf,
    dir: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Env {
    /// Builds and pushes the image, or returns `None` (skip) when the real parts are missing.
    fn new(test: &str) -> Option<Env> {
        let mut missing = missing_tools(TOOLS);
        if !is_root() {
            missing.push("root".to_owned());
        }
        if skip_unless(test, &missing) {
            return None;
        }
        // Short: containerd's socket path must fit in a sockaddr_un.
        let tmp = tempfile::Builder::new()
            .prefix("hoist-it")
            .tempdir_in("/tmp")
            .unwrap();
        let dir = tmp.path().to_owned();
        let mut services = Services::new(&dir);
        let image = image::build(&dir);
        let registry = services.start_registry();
        let reference = image::push(&image, &registry);
        Some(Env {
            services,
            daemon: None,
            image,
            reference,
            root: dir.join("hoist"),
            socket: dir.join("hoist.sock"),
            dir,
            _tmp: tmp,
        })
    }

    fn start(&mut self) {
        self.daemon = Some(Daemon::start(
            &self.root,
            &self.socket,
            &self.dir.join("hoist.log"),
        ));
        self.services.start_containerd(&self.socket);
    }

    fn ctr_ok(&self, namespace: &str, args: &[&str]) -> String {
        let out = self.services.ctr(namespace, args);
        assert!(
            out.status.success(),
            "ctr {args:?}: {}\n--- containerd log (tail) ---\n{}\n--- hoist log (tail) ---\n{}",
            String::from_utf8_lossy(&out.stderr),
            tail(&self.services.containerd_log()),
            tail(&std::fs::read_to_string(self.dir.join("hoist.log")).unwrap_or_default()),
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn pull(&self, namespace: &str) {
        self.ctr_ok(
            namespace,
            &[
                "image",
                "pull",
                "--plain-http",
                "--snapshotter",
                "hoist",
                &self.reference,
            ],
        );
    }

    fn run(&self, namespace: &str, id: &str) -> String {
        self.ctr_ok(
            namespace,
            &["run", "--rm", "--snapshotter", "hoist", &self.reference, id],
        )
    }
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// The committed snapshots in the store at `root` (opened beside the running daemon).
fn committed(root: &Path) -> Vec<hoist_snapshotter::Info> {
    Store::open(root)
        .unwrap()
        .walk(&["kind==committed"])
        .unwrap()
}

#[test]
fn ctr_pull_and_run_through_hoist_needs_containerd() {
    let Some(mut env) = Env::new("ctr_pull_and_run_through_hoist_needs_containerd") else {
        return;
    };
    env.start();
    env.pull("test");

    // containerd unpacked into Hoist: one committed snapshot per layer, under the names its
    // metadata gives them (`test/<n>/<chain id>`).
    let layers = committed(&env.root);
    assert_eq!(layers.len(), 3, "{layers:#?}");
    for chain_id in &env.image.chain_ids {
        assert!(
            layers
                .iter()
                .any(|i| i.name.starts_with("test/") && i.name.ends_with(chain_id.as_str())),
            "no snapshot for {chain_id} in {layers:#?}"
        );
    }
    let listed = env.ctr_ok("test", &["snapshots", "--snapshotter", "hoist", "ls"]);
    for chain_id in &env.image.chain_ids {
        assert!(
            listed.contains(chain_id.as_str()),
            "{chain_id} not in:\n{listed}"
        );
    }

    assert_eq!(env.run("test", "hoist-it-run"), OUTPUT);
}

/// What containerd's unpacker does for a layer whose snapshot may already exist (and what
/// Hoist's image registration will do): Prepare through containerd's snapshots service with
/// the chain ID as target. Returns the status code containerd answered for each layer.
async fn adopt(containerd: &Path, namespace: &str, chain_ids: &[String]) -> Vec<tonic::Code> {
    use hoist_snapshotter::proto::containerd::services::snapshots::v1::PrepareSnapshotRequest;
    let mut client = crate::common::connect(containerd).await;
    let mut codes = Vec::new();
    for (i, chain_id) in chain_ids.iter().enumerate() {
        let mut request = tonic::Request::new(PrepareSnapshotRequest {
            snapshotter: "hoist".into(),
            key: format!("extract-{i} {chain_id}"),
            parent: i
                .checked_sub(1)
                .map(|p| chain_ids[p].clone())
                .unwrap_or_default(),
            labels: [(TARGET_LABEL.to_owned(), chain_id.clone())].into(),
        });
        request
            .metadata_mut()
            .insert("containerd-namespace", namespace.parse().unwrap());
        codes.push(match client.prepare(request).await {
            Ok(_) => tonic::Code::Ok,
            Err(status) => status.code(),
        });
    }
    codes
}

#[test]
fn engine_layers_are_adopted_not_unpacked_needs_containerd() {
    let Some(mut env) = Env::new("engine_layers_are_adopted_not_unpacked_needs_containerd") else {
        return;
    };
    // The engine's direct path, from this process beside the daemon: stage, unpack, commit.
    let store = Store::open(&env.root).unwrap();
    for (i, (tar, chain_id)) in env
        .image
        .layers
        .iter()
        .zip(&env.image.chain_ids)
        .enumerate()
    {
        let staged = store.stage().unwrap();
        tar::Archive::new(tar.as_slice())
            .unpack(staged.fs())
            .unwrap();
        let parent = i.checked_sub(1).map(|p| env.image.chain_ids[p].as_str());
        store
            .commit(staged, chain_id, parent, tar.len() as u64)
            .unwrap();
    }
    env.start();

    // containerd's garbage collector removes every backend snapshot its metadata does not
    // know. Make it run over `hoist` (a removed snapshot marks it dirty; a --sync lease
    // deletion collects at once): the scratch snapshot goes, the engine's layers stay.
    env.ctr_ok(
        "gc",
        &["snapshots", "--snapshotter", "hoist", "prepare", "scratch"],
    );
    env.ctr_ok(
        "gc",
        &["snapshots", "--snapshotter", "hoist", "rm", "scratch"],
    );
    env.ctr_ok("gc", &["leases", "create", "--id", "gc-now"]);
    env.ctr_ok("gc", &["leases", "delete", "--sync", "gc-now"]);
    let names = |store: &Store| -> Vec<String> {
        let mut n: Vec<String> = store
            .walk::<&str>(&[])
            .unwrap()
            .into_iter()
            .map(|i| i.name)
            .collect();
        n.sort();
        n
    };
    let mut engine: Vec<String> = env.image.chain_ids.clone();
    engine.sort();
    assert_eq!(
        names(&store),
        engine,
        "the collector ran: scratch is gone, the engine's layers are kept"
    );
    let log = std::fs::read_to_string(env.dir.join("hoist.log")).unwrap();
    let refused: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(r#"rpc="remove""#) && l.contains("failed"))
        .collect();
    assert_eq!(
        refused.len(),
        3,
        "one refused Remove per engine layer:\n{}",
        refused.join("\n")
    );

    // Adoption: containerd finds each target in Hoist and records it in its own metadata.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let containerd = env.dir.join("containerd/containerd.sock");
    let codes = runtime.block_on(adopt(&containerd, "engine", &env.image.chain_ids));
    assert_eq!(codes, [tonic::Code::AlreadyExists; 3]);
    let listed = env.ctr_ok("engine", &["snapshots", "--snapshotter", "hoist", "ls"]);
    for chain_id in &env.image.chain_ids {
        assert!(
            listed.contains(chain_id.as_str()),
            "{chain_id} not in:\n{listed}"
        );
    }

    // ctr's pull (it fetches all blobs, then unpacks) finds every layer present: no unpack.
    env.pull("engine");
    assert_eq!(names(&store), engine, "containerd unpacked nothing itself");
    assert_eq!(env.run("engine", "hoist-it-engine"), OUTPUT);
}
