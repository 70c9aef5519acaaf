//! The `hoist` binary: `pull --json` prints one summary object, `mount` shows the image's
//! files, and bad input gives a clear error and a failing exit status.

use std::process::Command;

use crate::support::{Comp, Faults, FaultyRegistry, image, tar_of};

fn hoist(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hoist"))
        .args(args)
        .output()
        .unwrap()
}

#[tokio::test]
async fn pull_json_then_mount_needs_root() {
    let img = image(
        &[
            tar_of(&[("etc/os-release", b"ID=test\n")]),
            tar_of(&[("app", b"run")]),
        ],
        Comp::Gzip,
        false,
    );
    let registry = FaultyRegistry::start(img.clone(), Faults::default()).await;
    let root = tempfile::tempdir().unwrap();
    let reference = registry.reference().to_string();
    let root_arg = root.path().to_str().unwrap().to_owned();
    let host = registry.host();
    let args: Vec<String> = [
        "pull",
        "--root",
        &root_arg,
        "--insecure-registry",
        &host,
        "--json",
        &reference,
    ]
    .map(str::to_owned)
    .to_vec();
    // The registry runs on this test's runtime: run the binary off it.
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_hoist"))
            .args(&args)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["id"], img.config_digest.to_string());
    assert_eq!(summary["layers"], 2);
    assert_eq!(summary["fetched_layers"], 2);
    assert!(summary["seconds"].as_f64().unwrap() > 0.0);

    let target = tempfile::tempdir().unwrap();
    let target_arg = target.path().to_str().unwrap().to_owned();
    let out = hoist(&["mount", "--root", &root_arg, &reference, &target_arg]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let os_release = std::fs::read(target.path().join("etc/os-release"));
    let app = std::fs::read(target.path().join("app"));
    let _ = Command::new("umount").arg(target.path()).status();
    assert_eq!(os_release.unwrap(), b"ID=test\n");
    assert_eq!(app.unwrap(), b"run");
}

#[test]
fn bad_input_fails_with_a_clear_message() {
    let cases: [(&[&str], &str); 3] = [
        (
            &["pull", "--root", "/tmp/hoist-never", "Not/Valid"],
            "must be lowercase",
        ),
        (
            &[
                "pull",
                "--root",
                "/tmp/hoist-never",
                "--platform",
                "linux",
                "alpine",
            ],
            "pull.platform",
        ),
        (
            &["mount", "--root", "/tmp/hoist-never-root", "alpine", "/mnt"],
            "not found in the store",
        ),
    ];
    for (args, needle) in cases {
        let out = hoist(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
    let _ = std::fs::remove_dir_all("/tmp/hoist-never-root");
}

/// `kill -9` of `hoist pull` at a random moment of a pull leaves a consistent store, and the
/// same pull then succeeds with the right bytes.
#[tokio::test]
async fn kill_9_during_pull_then_pull_again_needs_root() {
    let big = crate::support::noise(6 << 20, 3);
    let img = image(
        &[
            tar_of(&[("a", b"a")]),
            tar_of(&[("big", &big)]),
            tar_of(&[("c", b"c")]),
        ],
        Comp::Gzip,
        false,
    );
    let registry = FaultyRegistry::start(img, Faults::default()).await;
    let root = tempfile::tempdir().unwrap();
    let pull_args: Vec<String> = [
        "pull",
        "--root",
        root.path().to_str().unwrap(),
        "--insecure-registry",
        &registry.host(),
        "--json",
        &registry.reference().to_string(),
    ]
    .map(str::to_owned)
    .to_vec();
    for delay_ms in [5u64, 40, 120] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_hoist"))
            .args(&pull_args)
            .spawn()
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(delay_ms)).await;
        let _ = child.kill();
        let _ = tokio::task::spawn_blocking(move || child.wait())
            .await
            .unwrap();
        let store = hoist_snapshotter::Store::open(root.path()).unwrap();
        assert_eq!(
            store.check().unwrap(),
            Vec::new(),
            "consistent after a kill at {delay_ms} ms"
        );
        let staged: Vec<_> = std::fs::read_dir(root.path().join("staging"))
            .unwrap()
            .collect();
        assert!(
            staged.is_empty(),
            "open() cleans what the killed pull staged: {staged:?}"
        );
        for info in store.list().unwrap() {
            assert!(
                store.get(&info.name).unwrap().is_some(),
                "every listed snapshot is whole"
            );
        }
    }
    let args = pull_args.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_hoist"))
            .args(&args)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let store = hoist_snapshotter::Store::open(root.path()).unwrap();
    assert_eq!(store.list().unwrap().len(), 3);
    let big_layer = store
        .list()
        .unwrap()
        .into_iter()
        .map(|info| store.get(&info.name).unwrap().unwrap().fs.join("big"))
        .find(|p| p.exists())
        .unwrap();
    assert_eq!(std::fs::read(big_layer).unwrap(), big);
}
