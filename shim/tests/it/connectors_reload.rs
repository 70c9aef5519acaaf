//! `hoist serve` reloads its connectors on SIGHUP: a corrected connector is in use for the next
//! CRI pull, an invalid config is rejected with a log line naming SIGHUP while the old
//! connectors stay, and a pull in flight during a reload completes with the credentials it
//! started with.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hoist::proto::cri::v1 as cri;
use rustix::process::{Pid, Signal, kill_process};
use tonic::transport::Channel;

use crate::support::{Comp, Faults, FaultyRegistry, image, noise, tar_of};

type Cri = cri::image_service_client::ImageServiceClient<Channel>;

struct Serve {
    child: Child,
    log: PathBuf,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serve {
    fn hangup(&self) {
        let pid = Pid::from_raw(self.child.id() as i32).unwrap();
        kill_process(pid, Signal::HUP).unwrap();
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log has `count` lines containing every one of `needles`.
    async fn wait_for(&self, needles: &[&str], count: usize) {
        let started = Instant::now();
        loop {
            let log = self.log();
            let found = log
                .lines()
                .filter(|l| needles.iter().all(|n| l.contains(n)))
                .count();
            if found >= count {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "no log line with {needles:?}:\n{log}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The config: sockets under `root/run`, nothing registered in containerd, and the default
/// connector `account.reg` for `registry` logging in as `user`.
fn write_config(root: &Path, registry: &str, user: &str) -> PathBuf {
    let password = root.join("password");
    std::fs::write(&password, "secret\n").unwrap();
    let path = root.join("hoist.toml");
    let text = format!(
        "root = {root:?}\ninsecure_registries = [{registry:?}]\n\
         default_connector = \"account.reg\"\n\n[serve]\n\
         snapshots_socket = {snap:?}\ncri_socket = {cri:?}\nregister = false\n\n\
         [[connector]]\nid = \"reg\"\nscope = \"account\"\ntype = \"DockerRegistry\"\n\
         registry = {registry:?}\nauth = {{ username = {user:?}, password = {{ file = {password:?} }} }}\n",
        snap = root.join("run/snapshots.sock"),
        cri = root.join("run/cri.sock"),
    );
    std::fs::write(&path, text).unwrap();
    path
}

async fn start(root: &Path, config: &Path) -> (Serve, Cri) {
    let log = root.join("serve.log");
    let child = Command::new(env!("CARGO_BIN_EXE_hoist"))
        .args(["serve", "--config"])
        .arg(config)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let serve = Serve { child, log };
    let socket = root.join("run/cri.sock");
    let channel = crate::support::connect_unix(&socket, Duration::from_secs(20)).await;
    (serve, Cri::new(channel))
}

async fn pull(client: &mut Cri, reference: &str) -> Result<String, tonic::Status> {
    client
        .pull_image(cri::PullImageRequest {
            image: Some(cri::ImageSpec {
                image: reference.to_owned(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner().image_ref)
}

async fn remove(client: &mut Cri, reference: &str) {
    client
        .remove_image(cri::RemoveImageRequest {
            image: Some(cri::ImageSpec {
                image: reference.to_owned(),
                ..Default::default()
            }),
        })
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_connectors_rejects_invalid_config_and_keeps_pulls_in_flight() {
    let img = image(
        &[
            tar_of(&[("a", &noise(64 << 10, 1))]),
            tar_of(&[("b", b"b")]),
        ],
        Comp::Gzip,
        false,
    );
    let registry = FaultyRegistry::start(
        img,
        Faults {
            basic_auth: true,
            // The first blob answer pauses halfway: a pull stays in flight that long.
            stall: Some((Duration::from_millis(1500), 1)),
            ..Faults::default()
        },
    )
    .await;
    let host = registry.host();
    let reference = registry.reference().to_string();
    let root = tempfile::tempdir().unwrap();
    let config = write_config(root.path(), &host, "nobody");
    let (serve, mut client) = start(root.path(), &config).await;

    let refused = pull(&mut client, &reference).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused}");
    assert!(refused.message().contains("account.reg"), "{refused}");

    // The corrected connector is in use after SIGHUP (the file watcher may see the change
    // too; the log line says which reload it was).
    write_config(root.path(), &host, "user");
    serve.hangup();
    serve.wait_for(&["config reloaded", "SIGHUP"], 1).await;
    let started = Instant::now();
    let mut in_flight = client.clone();
    let slow = tokio::spawn({
        let reference = reference.clone();
        async move { pull(&mut in_flight, &reference).await }
    });

    // While that pull waits on the stalled blob, the connector is broken again and reloaded:
    // the pull keeps the credentials it started with.
    let waiting = Instant::now();
    while registry.blob_requests() == 0 {
        assert!(
            waiting.elapsed() < Duration::from_secs(20),
            "the pull never fetched a blob"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    write_config(root.path(), &host, "nobody");
    serve.hangup();
    serve.wait_for(&["config reloaded", "SIGHUP"], 2).await;
    slow.await.unwrap().unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "the pull was in flight during the reload"
    );
    remove(&mut client, &reference).await;
    let refused = pull(&mut client, &reference).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused}");

    // Fix it once more, then send an invalid config: rejected, and the good one stays.
    write_config(root.path(), &host, "user");
    serve.hangup();
    serve.wait_for(&["config reloaded", "SIGHUP"], 3).await;
    std::fs::write(
        &config,
        std::fs::read_to_string(&config)
            .unwrap()
            .replace("type = \"DockerRegistry\"", "type = \"NoSuchType\""),
    )
    .unwrap();
    serve.hangup();
    serve.wait_for(&["config rejected", "SIGHUP"], 1).await;
    let rejected = serve
        .log()
        .lines()
        .find(|l| l.contains("config rejected") && l.contains("SIGHUP"))
        .unwrap()
        .to_owned();
    assert!(rejected.contains("hoist.toml"), "{rejected}");
    let log = serve.log();
    assert!(
        log[log.find("config rejected").unwrap()..].contains("NoSuchType"),
        "the error says what is wrong:\n{log}"
    );
    pull(&mut client, &reference)
        .await
        .expect("the connectors in use before the invalid config still pull");
}
