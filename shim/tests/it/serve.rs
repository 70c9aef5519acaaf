//! `hoist serve`: the snapshot store that `hoist pull` fills is served to containerd on the
//! snapshots socket, with the engine's layers as committed snapshots named by chain ID.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant};

use hoist_snapshotter::proto::containerd::services::snapshots::v1 as api;

use crate::support::Daemon;

#[tokio::test]
async fn serves_pulled_layers_as_committed_snapshots() {
    let (node, record, _) = crate::support::pulled_two_layers().await;

    let socket = node.dir.path().join("run/snapshots.sock");
    let mut daemon = Daemon(
        Command::new(env!("CARGO_BIN_EXE_hoist"))
            .args(["serve", "--root"])
            .arg(node.dir.path())
            .arg("--snapshots-socket")
            .arg(&socket)
            .spawn()
            .unwrap(),
    );
    let channel = crate::support::connect_unix(&socket, Duration::from_secs(10)).await;
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660, "the snapshots socket is 0660");

    let mut client = api::snapshots_client::SnapshotsClient::new(channel);
    let top = record.chain_ids.last().unwrap().to_string();
    let stat = client
        .stat(api::StatSnapshotRequest {
            snapshotter: "hoist".into(),
            key: top.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .info
        .unwrap();
    assert_eq!(stat.name, top);
    assert_eq!(stat.kind, api::Kind::Committed as i32);
    assert_eq!(stat.parent, record.chain_ids[0].to_string());

    // SIGTERM stops the daemon and removes its socket, even while a client (containerd, in
    // real life) keeps its connection open.
    let asked = Instant::now();
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(daemon.0.id() as i32).unwrap(),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let status = tokio::task::spawn_blocking(move || daemon.0.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
    assert!(
        asked.elapsed() < Duration::from_secs(15),
        "stopped within the grace period"
    );
    assert!(!socket.exists());
    drop(client);
}

/// `hoist serve` with its CRI socket path taken by a regular file fails naming the CRI
/// ImageService and the path, and leaves the file alone. The error once said "snapshots
/// socket" whichever socket it was.
#[test]
fn a_regular_file_at_the_cri_socket_is_an_error_naming_the_cri_service() {
    let dir = tempfile::tempdir().unwrap();
    let cri = dir.path().join("cri.sock");
    std::fs::write(&cri, b"not a socket").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hoist"))
        .args(["serve", "--root"])
        .arg(dir.path().join("root"))
        .arg("--snapshots-socket")
        .arg(dir.path().join("run/snapshots.sock"))
        .arg("--cri-socket")
        .arg(&cri)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    // anyhow's report: the context, then "Caused by:" and the socket's error.
    let error = &stderr[stderr
        .find("Error:")
        .unwrap_or_else(|| panic!("no error in: {stderr}"))..];
    assert!(
        error.starts_with("Error: serving the CRI ImageService\n"),
        "{error}"
    );
    let cause = format!("socket {}: exists and is not a socket", cri.display());
    assert!(error.contains(&cause), "{error}");
    assert!(!error.contains("snapshots"), "{error}");
    assert_eq!(std::fs::read(&cri).unwrap(), b"not a socket");
}
