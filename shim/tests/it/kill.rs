//! `kill -9` of `hoist serve` at chosen moments of a pull, through its pause points
//! (`hoist::hooks`, debug builds): mid-fetch after some chunks, mid-unpack after some tar
//! entries, inside the store's commit between the rename into `snapshots/` and the metadata
//! transaction, and during registration in containerd. Each case first checks that the kill
//! left the half-done state it aims at, then restarts `hoist serve` on the same root, checks
//! that start-up recovered it (nothing staged, no orphan snapshot directory), pulls the same
//! image, and checks the store: every snapshot whole and recorded, every image record's
//! layers present, the right bytes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::crash::{Containerd, Serve, Setup, assert_consistent, pull};
use crate::reliability::{Outcome, record};
use crate::support::{Comp, Faults, FaultyRegistry, image, noise, tar_of};

/// Three layers; the first has many small files, so a pause after a few tar entries lands in
/// the middle of a layer whichever layer the unpackers reach first.
fn layered_image() -> crate::support::Image {
    let files: Vec<(String, Vec<u8>)> = (0..24)
        .map(|i| (format!("many/{i:02}"), noise(48 << 10, 100 + i)))
        .collect();
    let files: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect();
    image(
        &[
            tar_of(&files),
            tar_of(&[("b", &noise(3 << 20, 2))]),
            tar_of(&[("c", &noise(2 << 20, 3))]),
        ],
        Comp::Gzip,
        false,
    )
}

/// Entries of `dir` (none when it does not exist).
fn entries(dir: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(dir) {
        Ok(list) => list.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    }
}

/// Starts a pull through a `hoist serve` armed at `pause_at`, waits until it pauses there, and
/// kills it with SIGKILL.
async fn pull_until_paused_then_kill(
    root: &Path,
    registry: &FaultyRegistry,
    pause_at: &str,
    containerd: Option<Containerd>,
) {
    let setup = Setup {
        pause_at: Some(pause_at.to_owned()),
        containerd,
    };
    let (serve, mut client) = Serve::start_with(root, &registry.host(), &setup).await;
    let reference = registry.reference().to_string();
    let pulling = tokio::spawn(async move { pull_retrying(&mut client, &reference).await });
    let marker = Setup::marker(root);
    let started = Instant::now();
    while !marker.exists() {
        if pulling.is_finished() {
            let ended = pulling.await;
            panic!("{pause_at}: the pull ended without reaching the pause point: {ended:?}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{pause_at}: not reached in 60 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), stage(pause_at));
    serve.kill();
    let killed = pulling.await.unwrap();
    assert!(killed.is_err(), "{pause_at}: the killed pull failed");
    std::fs::remove_file(&marker).unwrap();
}

fn stage(pause_at: &str) -> &str {
    pause_at.split(':').next().unwrap()
}

/// Restarts `hoist serve` without a pause point, checks that start-up left nothing staged (and
/// whatever `after_restart` checks), pulls the image again and checks the store.
async fn restart_and_pull(
    root: &Path,
    registry: &FaultyRegistry,
    pause_at: &str,
    containerd: Option<Containerd>,
    after_restart: impl FnOnce(&Path),
) {
    let setup = Setup {
        pause_at: None,
        containerd,
    };
    let (serve, mut client) = Serve::start_with(root, &registry.host(), &setup).await;
    let staged = entries(&root.join("staging"));
    assert!(
        staged.is_empty(),
        "{pause_at}: staging after restart: {staged:?}"
    );
    after_restart(root);
    let reference = registry.reference().to_string();
    let image_ref = pull_retrying(&mut client, &reference)
        .await
        .unwrap_or_else(|e| panic!("{pause_at}: the pull after the restart failed: {e}"));
    assert_eq!(image_ref, registry.image().config_digest.to_string());
    serve.kill();
    let when = format!("after a kill at {pause_at}, a restart and a pull");
    assert_consistent(root, Some(&reference), &when);
    let store = hoist_snapshotter::Store::open(root).unwrap();
    let layers = store.list().unwrap();
    assert_eq!(layers.len(), 3, "{when}: {layers:?}");
    let file = |name: &str| {
        layers
            .iter()
            .map(|i| store.get(&i.name).unwrap().unwrap().fs.join(name))
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("{when}: no layer has {name}"))
    };
    assert_eq!(
        std::fs::read(file("b")).unwrap(),
        noise(3 << 20, 2),
        "{when}"
    );
    assert_eq!(
        std::fs::read(file("many/23")).unwrap(),
        noise(48 << 10, 123),
        "{when}"
    );
}

/// A pull through the CRI socket. containerd reconnects to a restarted proxy snapshotter (a
/// `hoist serve` on the socket its config names) with a backoff, so registration may be
/// refused as unavailable for a moment; that alone is retried, for up to 30 s.
async fn pull_retrying(
    client: &mut crate::crash::Cri,
    reference: &str,
) -> Result<String, tonic::Status> {
    let started = Instant::now();
    loop {
        match pull(client, reference).await {
            Err(e)
                if e.code() == tonic::Code::Unavailable
                    && started.elapsed() < Duration::from_secs(30) =>
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            done => return done,
        }
    }
}

fn recorded(pause_at: &str, registry: &FaultyRegistry) {
    let fault = format!("kill -9 of hoist serve paused at {pause_at}, restart, pull again");
    record(&fault, Outcome::Recovered, registry.blob_requests(), None);
}

#[tokio::test]
async fn kill_9_mid_fetch_after_some_chunks_then_restart_and_pull() {
    let root = tempfile::tempdir().unwrap();
    let registry = FaultyRegistry::start(layered_image(), Faults::default()).await;
    pull_until_paused_then_kill(root.path(), &registry, "fetch:3", None).await;
    let staged = entries(&root.path().join("staging"));
    assert!(!staged.is_empty(), "the kill left layers staged");
    restart_and_pull(root.path(), &registry, "fetch:3", None, |_| ()).await;
    recorded("fetch (3rd chunk)", &registry);
}

#[tokio::test]
async fn kill_9_mid_unpack_after_some_entries_then_restart_and_pull() {
    let root = tempfile::tempdir().unwrap();
    let registry = FaultyRegistry::start(layered_image(), Faults::default()).await;
    pull_until_paused_then_kill(root.path(), &registry, "unpack:5", None).await;
    // Some of the first layer's files were written, not all of them.
    let written: Vec<PathBuf> = entries(&root.path().join("staging"))
        .iter()
        .flat_map(|session| entries(&session.join("fs/many")))
        .collect();
    assert!(
        !written.is_empty() && written.len() < 24,
        "a layer half unpacked: {written:?}"
    );
    restart_and_pull(root.path(), &registry, "unpack:5", None, |_| ()).await;
    recorded("unpack (5th tar entry)", &registry);
}

#[tokio::test]
async fn kill_9_between_rename_and_metadata_commit_then_restart_and_pull() {
    let root = tempfile::tempdir().unwrap();
    let registry = FaultyRegistry::start(layered_image(), Faults::default()).await;
    pull_until_paused_then_kill(root.path(), &registry, "commit", None).await;
    // The first layer's directory is in snapshots/, but no transaction recorded it.
    let orphans = entries(&root.path().join("snapshots"));
    assert_eq!(orphans.len(), 1, "{orphans:?}");
    restart_and_pull(root.path(), &registry, "commit", None, |root| {
        let left = entries(&root.join("snapshots"));
        assert!(left.is_empty(), "start-up removed the orphan: {left:?}");
    })
    .await;
    recorded("commit (after the rename)", &registry);
}

/// The containerd `scripts/with-services.sh` started, or `None` (then the test skips, or fails
/// with `HOIST_TEST_REQUIRE_SERVICES=1`).
#[allow(clippy::print_stderr)] // a skipped test says so
fn services_containerd(test: &str) -> Option<Containerd> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    match (
        var("HOIST_TEST_CONTAINERD_SOCKET"),
        var("HOIST_TEST_SNAPSHOTS_SOCKET"),
    ) {
        (Some(socket), Some(snapshots)) => Some(Containerd {
            socket: socket.into(),
            snapshots_socket: snapshots.into(),
            namespace: format!("hoist-kill-{}", std::process::id()),
        }),
        _ => {
            let missing = "a containerd (run through scripts/with-services.sh)";
            assert!(
                std::env::var("HOIST_TEST_REQUIRE_SERVICES").as_deref() != Ok("1"),
                "{test}: missing {missing}"
            );
            eprintln!(
                "skipping {test}: missing {missing} (HOIST_TEST_REQUIRE_SERVICES=1 makes this a failure)"
            );
            None
        }
    }
}

/// Image names containerd has in `c.namespace`.
fn containerd_images(c: &Containerd) -> Vec<String> {
    let out = Command::new("ctr")
        .arg("--address")
        .arg(&c.socket)
        .args(["-n", &c.namespace, "images", "ls", "-q"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn kill_9_during_registration_then_restart_and_pull_needs_containerd() {
    let test = "kill_9_during_registration_then_restart_and_pull_needs_containerd";
    let Some(containerd) = services_containerd(test) else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let registry = FaultyRegistry::start(layered_image(), Faults::default()).await;
    let reference = registry.reference().to_string();
    let at = "register";
    pull_until_paused_then_kill(root.path(), &registry, at, Some(containerd.clone())).await;
    // Layers adopted under the registration's lease, but no image record yet.
    assert_eq!(containerd_images(&containerd), Vec::<String>::new());
    restart_and_pull(root.path(), &registry, at, Some(containerd.clone()), |_| ()).await;
    let names = containerd_images(&containerd);
    assert!(names.contains(&reference), "{names:?}");
    recorded("registration (layers adopted, no image record)", &registry);
}
