//! The mounts the service returns, mounted for real (root only): a view shows the merged
//! layers read-only, an active snapshot writes into its own upper directory.

use std::fs;
use std::path::Path;

use crate::common::{self, InProcess, commit, prepare, skip_unless, view, writable_dir};

#[tokio::test]
async fn view_mounts_show_the_merged_layers_needs_root() {
    if skip_unless(
        "view_mounts_show_the_merged_layers_needs_root",
        &root_missing(),
    ) {
        return;
    }
    let (server, mut c) = InProcess::start().await;
    let mut parent = String::new();
    for (i, (file, content)) in [("a", "1"), ("b", "2"), ("a", "3")].into_iter().enumerate() {
        let key = format!("k{i}");
        let m = prepare(&mut c, &key, &parent, Default::default())
            .await
            .unwrap();
        fs::write(writable_dir(&m).join(file), content).unwrap();
        parent = format!("layer-{i}");
        commit(&mut c, &key, &parent, Default::default())
            .await
            .unwrap();
    }
    let target = tempfile::tempdir().unwrap();
    let m = view(&mut c, "merged", &parent).await.unwrap();
    mount(&m[0], target.path());
    let read = |f: &str| fs::read_to_string(target.path().join(f)).unwrap();
    let merged = (read("a"), read("b"));
    let write = fs::write(target.path().join("c"), "x");
    rustix::mount::unmount(target.path(), rustix::mount::UnmountFlags::DETACH).unwrap();
    assert_eq!(merged, ("3".to_owned(), "2".to_owned()), "upper layers win");
    assert!(write.is_err(), "a view is read-only");

    // An active snapshot on the same chain writes into its own upper directory only.
    let m = prepare(&mut c, "rw", &parent, Default::default())
        .await
        .unwrap();
    mount(&m[0], target.path());
    let write = fs::write(target.path().join("c"), "x");
    rustix::mount::unmount(target.path(), rustix::mount::UnmountFlags::DETACH).unwrap();
    write.unwrap();
    assert_eq!(fs::read_to_string(writable_dir(&m).join("c")).unwrap(), "x");
    server.stop().await;
}

fn root_missing() -> Vec<String> {
    if common::is_root() {
        Vec::new()
    } else {
        vec!["root (to mount)".to_owned()]
    }
}

/// Mounts one containerd mount on `target`, as containerd's `mount.All` would.
fn mount(m: &hoist_snapshotter::proto::containerd::types::Mount, target: &Path) {
    use rustix::mount::{MountFlags, mount, mount_bind_recursive, mount_remount};
    if m.r#type == "bind" {
        mount_bind_recursive(m.source.as_str(), target).unwrap();
        if m.options.iter().any(|o| o == "ro") {
            mount_remount(target, MountFlags::BIND | MountFlags::RDONLY, "").unwrap();
        }
        return;
    }
    let data = std::ffi::CString::new(m.options.join(",")).unwrap();
    let flags = if m.options.iter().any(|o| o.starts_with("upperdir=")) {
        MountFlags::empty()
    } else {
        MountFlags::RDONLY
    };
    mount("overlay", target, "overlay", flags, data.as_c_str()).unwrap();
}
