//! `hoist-bench run` end to end on tiny images: it starts its own registry and containerds,
//! pushes, measures every system on a loopback and a shaped scenario, and writes the three
//! reports. Sizes are scaled down so that CI proves the runner works in seconds; the numbers
//! themselves are not checked beyond being measured. Root and the real tools
//! (`..._needs_containerd`).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::proxy;

/// The `hoist` and `hoist-bench` binaries of this build, brought up to date just before use
/// (cargo builds only this package's binaries for its tests, and a target directory shared
/// between checkouts may hold another checkout's build).
fn binaries() -> (PathBuf, PathBuf) {
    let bench = PathBuf::from(env!("CARGO_BIN_EXE_hoist-bench"));
    let profile = bench.parent().unwrap();
    if let Ok(cargo) = std::env::var("CARGO") {
        let mut command = Command::new(cargo);
        command
            .args(["build", "-p", "hoist", "--bin", "hoist"])
            .args(["-p", "hoist-harness", "--bin", "hoist-bench"])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if profile.file_name().is_some_and(|p| p == "release") {
            command.arg("--release");
        }
        assert!(command.status().unwrap().success(), "building hoist failed");
    }
    (profile.join("hoist"), bench)
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn bench_run_measures_every_system_and_writes_reports_needs_containerd() {
    if proxy::skip_unless(
        "bench_run_measures_every_system_and_writes_reports_needs_containerd",
        &proxy::missing(),
    ) {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let work = tempfile::Builder::new()
        .prefix("hb.")
        .tempdir_in("/tmp")
        .unwrap();
    let (json, markdown, svg) = (
        out.path().join("report.json"),
        out.path().join("report.md"),
        out.path().join("plot.svg"),
    );
    let (hoist, bench) = binaries();
    let output = Command::new(bench)
        .args(["run", "loopback-gzip", "s3like-zstd", "--runs", "1"])
        .args(["--scale", "0.002", "--set", "chunk_size=1MiB"])
        .arg("--hoist")
        .arg(hoist)
        .arg("--work-dir")
        .arg(work.path())
        .arg("--json")
        .arg(&json)
        .arg("--markdown")
        .arg(&markdown)
        .arg("--svg")
        .arg(&svg)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "hoist-bench run failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report = read_json(&json);
    assert_eq!(
        report["machine"]["cores"].as_u64().map(|n| n > 0),
        Some(true)
    );
    let cases = report["scenarios"].as_array().unwrap();
    let names: Vec<&str> = cases.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["loopback-gzip", "s3like-zstd"]);
    for case in cases {
        let systems: Vec<&str> = case["systems"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["system"].as_str().unwrap())
            .collect();
        assert_eq!(
            systems,
            [
                "hoist-cri[chunk_size=1048576]",
                "hoist-pull[chunk_size=1048576]",
                "containerd-cri",
                "ctr-pull",
                "skopeo",
                "floor"
            ],
            "{}",
            case["name"]
        );
        for system in case["systems"].as_array().unwrap() {
            for key in ["median_s", "min_s", "max_s", "cpu_s", "peak_rss_mib"] {
                assert!(system[key].as_f64().unwrap() > 0.0, "{key}: {system}");
            }
            assert!(system["ratio_to_hoist"].as_f64().unwrap() > 0.0);
        }
        assert_eq!(case["systems"][0]["ratio_to_hoist"].as_f64(), Some(1.0));
        assert!(case["compressed_bytes"].as_u64().unwrap() > 0);
    }
    let table = std::fs::read_to_string(&markdown).unwrap();
    assert!(table.contains("| ctr-pull |"), "{table}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        table,
        "the table is also printed"
    );
    let plot = std::fs::read_to_string(&svg).unwrap();
    assert!(plot.starts_with("<svg") && plot.contains("floor"), "{plot}");
}
