//! A full disk: the store root on a small tmpfs mounted by the test (needs root, as CI runs).
//! A pull that does not fit fails with a clear error naming the image and the layer, leaves
//! nothing half-written, and the same pull succeeds once space is freed.

use std::path::{Path, PathBuf};
use std::process::Command;

use hoist::registry::Credentials;

use crate::reliability::{Outcome, record};
use crate::support::{Comp, Faults, FaultyRegistry, Node, image, noise, options, tar_of};

/// A tmpfs of `size` mounted on a fresh directory, unmounted on drop (also when a test panics).
struct Tmpfs {
    _dir: tempfile::TempDir,
    mount: PathBuf,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let mount = dir.path().join("fs");
        std::fs::create_dir(&mount).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&mount)
            .status()
            .unwrap();
        assert!(status.success(), "mounting a tmpfs needs root");
        Tmpfs { _dir: dir, mount }
    }

    fn path(&self) -> &Path {
        &self.mount
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mount).status();
    }
}

#[tokio::test]
async fn full_disk_needs_root_gives_a_clean_error_and_recovers() {
    let fs = Tmpfs::mount("16m");
    let big = noise(6 << 20, 11);
    let img = image(
        &[tar_of(&[("etc/hello", b"hello")]), tar_of(&[("big", &big)])],
        Comp::None,
        false,
    );
    let registry = FaultyRegistry::start(img.clone(), Faults::default()).await;
    let root = tempfile::tempdir_in(fs.path()).unwrap();
    let node = Node::in_dir(root, options(1 << 20), {
        let mut o = hoist::registry::Options::default();
        o.insecure.push(registry.host());
        o
    });
    // Leave about 4 MiB free: the 6 MiB layer does not fit.
    let filler = fs.path().join("filler");
    std::fs::write(&filler, vec![1u8; 12 << 20]).unwrap();

    let err = node
        .pull(&registry.reference(), Credentials::Anonymous)
        .await
        .expect_err("the pull does not fit")
        .to_string();
    assert!(err.contains("test/app:v1"), "names the image: {err}");
    assert!(
        err.contains(&img.layers[1].to_string()),
        "names the layer: {err}"
    );
    assert!(err.contains("No space left on device"), "{err}");
    node.assert_clean(&img, &err);
    record(
        "full disk (ENOSPC)",
        Outcome::FailedCleanly,
        registry.blob_requests(),
        Some(&err),
    );

    std::fs::remove_file(&filler).unwrap();
    let pulled = node
        .pull(&registry.reference(), Credentials::Anonymous)
        .await
        .expect("the pull works once space is freed");
    assert_eq!(pulled.layers, 2);
    let snapshots = node.store.list().unwrap();
    assert_eq!(snapshots.len(), 2);
    let content = snapshots
        .iter()
        .map(|s| node.store.get(&s.name).unwrap().unwrap().fs.join("big"))
        .find(|p| p.exists())
        .expect("the big layer is committed");
    assert_eq!(std::fs::read(content).unwrap(), big, "the right bytes");
    drop(node);
}
