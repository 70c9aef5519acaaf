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
