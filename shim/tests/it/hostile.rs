//! Hostile layers pulled end to end: every tar in the `unpack` fuzz seed corpus
//! (`fuzz/corpus/unpack/`) is served as a layer by the in-process registry. Each is either
//! rejected with a clear error naming the image, the layer and the reason, or (where
//! containerd's semantics are to apply rather than reject, as for duplicate entries) contained;
//! in both cases nothing is written outside the layer.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use hoist::registry::Credentials;

use crate::reliability::{Outcome, record};
use crate::support::{Comp, Faults, FaultyRegistry, Node, image, options};

enum Expect {
    /// Refused; the error says this.
    Rejected(&'static str),
    /// Applied as containerd applies it; this path holds these bytes (`None`: a directory).
    Contained(&'static str, Option<&'static [u8]>),
}

/// Every seed and what must happen to it.
const CASES: &[(&str, Expect)] = &[
    ("normal", Expect::Contained("etc/hello", Some(b"hello"))),
    ("absolute", Expect::Rejected("is absolute")),
    ("dotdot", Expect::Rejected("has a `..` component")),
    ("dotdot_deep", Expect::Rejected("has a `..` component")),
    ("symlink_then_write", Expect::Rejected("is a symlink")),
    ("symlink_relative_escape", Expect::Rejected("is a symlink")),
    (
        "hardlink_shadow",
        Expect::Rejected("\"/etc/shadow\" is absolute"),
    ),
    ("hardlink_dotdot", Expect::Rejected("has a `..` component")),
    ("device", Expect::Rejected("device nodes are not allowed")),
    ("long_path", Expect::Rejected("longer than 4096 bytes")),
    ("long_name_pax", Expect::Rejected("File name too long")),
    // A later entry replaces an earlier one at the same path, as in containerd.
    ("duplicates", Expect::Contained("dup/x", Some(b"x"))),
    ("whiteout_dotdot", Expect::Rejected("whiteout")),
    ("pax_overflow", Expect::Rejected("invalid pax records")),
    ("pax_length_lies", Expect::Rejected("layer tar unreadable")),
    ("truncated", Expect::Rejected("unreadable")),
];

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/unpack")
}

/// Files anywhere under `dir` whose name says a hostile layer put them there.
fn escaped(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        let kind = entry.file_type().unwrap();
        if name.starts_with("hoist-fuzz") || name == "escaped" {
            found.push(entry.path());
        }
        if kind.is_dir() {
            escaped(&entry.path(), found);
        }
    }
}

#[tokio::test]
async fn hostile_layers_are_rejected_or_contained_and_nothing_escapes() {
    let mut seeds: Vec<String> = std::fs::read_dir(corpus())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    seeds.sort();
    let mut listed: Vec<String> = CASES.iter().map(|(n, _)| (*n).to_owned()).collect();
    listed.sort();
    assert_eq!(seeds, listed, "every hostile seed has an expectation");

    let shadow_links = std::fs::metadata("/etc/shadow").map(|m| m.nlink()).ok();
    for (name, expect) in CASES {
        let tar = std::fs::read(corpus().join(name)).unwrap();
        let img = image(&[tar], Comp::Gzip, false);
        let layer = img.layers[0].to_string();
        let registry = FaultyRegistry::start(img, Faults::default()).await;
        let mut opts = options(64 << 10);
        opts.unpack.allow_devices = false;
        let node = Node::new(&registry.host(), opts);
        let result = node
            .pull(&registry.reference(), Credentials::Anonymous)
            .await;
        match expect {
            Expect::Rejected(needle) => {
                let err = result.expect_err(name).to_string();
                assert!(
                    err.contains("test/app:v1"),
                    "{name}: names the image: {err}"
                );
                assert!(err.contains(&layer), "{name}: names the layer: {err}");
                assert!(err.contains(needle), "{name}: {err}");
                node.assert_empty();
                let fault = format!("hostile layer: {name}");
                record(&fault, Outcome::FailedCleanly, 1, Some(&err));
            }
            Expect::Contained(path, content) => {
                assert!(result.is_ok(), "{name}: {:?}", result.err());
                let snapshots = node.store.list().unwrap();
                assert_eq!(snapshots.len(), 1, "{name}");
                let fs = node.store.get(&snapshots[0].name).unwrap().unwrap().fs;
                match content {
                    Some(bytes) => assert_eq!(&std::fs::read(fs.join(path)).unwrap(), bytes),
                    None => assert!(fs.join(path).is_dir(), "{name}"),
                }
            }
        }
        let mut found = Vec::new();
        escaped(node.dir.path(), &mut found);
        // The absolute and symlinked seeds aim at /tmp/hoist-fuzz-*.
        found.extend(
            std::fs::read_dir("/tmp")
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.to_string_lossy().starts_with("/tmp/hoist-fuzz")),
        );
        assert!(
            found.is_empty(),
            "{name}: written outside the layer: {found:?}"
        );
        let links = std::fs::metadata("/etc/shadow").map(|m| m.nlink()).ok();
        assert_eq!(links, shadow_links, "{name}: /etc/shadow gained a link");
    }
}
