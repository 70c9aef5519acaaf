//! Replays every checked-in fuzz corpus file through the same checks the fuzz targets run
//! (`fuzz/src/checks.rs`, `hosts_toml.rs` and `http2.rs` are compiled into this test too), so an
//! input that once broke an invariant keeps being checked on the stable toolchain.

use std::path::{Path, PathBuf};

#[path = "../../../fuzz/src/checks.rs"]
mod checks;
#[path = "../../../fuzz/src/hosts_toml.rs"]
mod hosts_toml;
#[path = "../../../fuzz/src/http2.rs"]
mod http2;

type Check = fn(&[u8]);

/// Each fuzz target (by its name under `fuzz/fuzz_targets/`) and the check it runs.
const TARGETS: &[(&str, Check)] = &[
    ("reference", checks::reference),
    ("content_range", checks::content_range),
    ("manifest", checks::manifest),
    ("image_config", checks::config),
    ("www_authenticate", checks::www_authenticate),
    ("unpack", checks::unpack),
    ("decode", checks::decode),
    ("connector_config", checks::connector_config),
    ("devcontainer", checks::devcontainer),
    ("dockerfile", checks::dockerfile),
    ("gitpod", checks::gitpod),
    ("hosts_toml", hosts_toml::hosts_toml),
    ("http2_authority", http2::http2_authority),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn every_fuzz_target_has_a_replayed_seed_corpus() {
    let targets: Vec<String> = names(&fuzz_dir().join("fuzz_targets"))
        .into_iter()
        .map(|n| n.trim_end_matches(".rs").to_owned())
        .collect();
    let mut known: Vec<String> = TARGETS.iter().map(|(n, _)| (*n).to_owned()).collect();
    known.sort();
    assert_eq!(targets, known, "fuzz targets and replayed checks differ");
    assert_eq!(
        names(&fuzz_dir().join("corpus")),
        known,
        "a corpus per target"
    );
}

#[test]
fn corpora_replay_without_breaking_an_invariant() {
    let mut failures = Vec::new();
    let mut replayed = 0;
    for (target, check) in TARGETS {
        let dir = fuzz_dir().join("corpus").join(target);
        let files = names(&dir);
        assert!(!files.is_empty(), "{target}: the seed corpus is empty");
        for file in files {
            let path = dir.join(&file);
            let data = std::fs::read(&path).unwrap();
            if std::panic::catch_unwind(|| check(&data)).is_err() {
                failures.push(path.display().to_string());
            }
            replayed += 1;
        }
    }
    assert!(failures.is_empty(), "invariants broken by: {failures:#?}");
    assert!(replayed >= TARGETS.len());
}
