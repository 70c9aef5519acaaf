//! The snapshots gRPC API over a unix socket, checked against what containerd's overlayfs
//! snapshotter does for the same calls.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use hoist_snapshotter::proto::containerd::services::snapshots::v1 as api;
use hoist_snapshotter::store::TARGET_LABEL;
use tonic::Code;

use crate::common::{
    self, InProcess, commit, labels, prepare, remove, stat, view, walk, writable_dir,
};

fn no_labels() -> HashMap<String, String> {
    HashMap::new()
}

#[tokio::test]
async fn prepare_view_commit_remove_with_parent_chains() {
    let (server, mut c) = InProcess::start().await;
    let mode = fs::metadata(&server.socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o660, "socket mode");

    // Base layer: an active snapshot without parent is a read-write bind mount.
    let m = prepare(&mut c, "extract-1", "", no_labels()).await.unwrap();
    assert_eq!(
        (m[0].r#type.as_str(), m[0].options.clone()),
        ("bind", vec!["rw".into(), "rbind".into()])
    );
    fs::write(writable_dir(&m).join("one"), "1").unwrap();
    commit(&mut c, "extract-1", "layer-1", no_labels())
        .await
        .unwrap();

    // Second layer: overlay with upperdir, workdir and the base as lowerdir.
    let m = prepare(&mut c, "extract-2", "layer-1", no_labels())
        .await
        .unwrap();
    assert_eq!(m[0].r#type, "overlay");
    let opts = &m[0].options;
    for prefix in ["workdir=", "upperdir=", "lowerdir="] {
        assert_eq!(
            opts.iter().filter(|o| o.starts_with(prefix)).count(),
            1,
            "{prefix} in {opts:?}"
        );
    }
    fs::write(writable_dir(&m).join("two"), "2").unwrap();
    commit(&mut c, "extract-2", "layer-2", no_labels())
        .await
        .unwrap();

    let info = stat(&mut c, "layer-2").await.unwrap();
    assert_eq!(
        (info.name.as_str(), info.parent.as_str()),
        ("layer-2", "layer-1")
    );
    assert_eq!(info.kind, api::Kind::Committed as i32);
    assert!(info.created_at.is_some() && info.updated_at.is_some());
    assert_eq!(
        stat(&mut c, "extract-2").await.unwrap_err().code(),
        Code::NotFound,
        "the key is gone after commit"
    );

    // A container's rootfs on the chain, and views: one layer binds, two overlay.
    let m = prepare(&mut c, "container", "layer-2", no_labels())
        .await
        .unwrap();
    let lower = m[0]
        .options
        .iter()
        .find_map(|o| o.strip_prefix("lowerdir="))
        .unwrap();
    assert_eq!(lower.split(':').count(), 2);
    let v1 = view(&mut c, "view-1", "layer-1").await.unwrap();
    assert_eq!(
        (v1[0].r#type.as_str(), v1[0].options.clone()),
        ("bind", vec!["ro".into(), "rbind".into()])
    );
    assert!(
        Path::new(&v1[0].source).join("one").exists(),
        "the view binds the layer itself"
    );
    let v2 = view(&mut c, "view-2", "layer-2").await.unwrap();
    assert_eq!(v2[0].r#type, "overlay");
    assert!(!v2[0].options.iter().any(|o| o.starts_with("upperdir=")));
    let mounts = c
        .mounts(api::MountsRequest {
            snapshotter: String::new(),
            key: "view-2".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .mounts;
    assert_eq!(mounts, v2);

    // Remove: refused while children exist, then top-down.
    let err = remove(&mut c, "layer-1").await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    for key in ["container", "view-2", "view-1", "layer-2", "layer-1"] {
        remove(&mut c, key).await.unwrap();
    }
    assert!(walk(&mut c, &[]).await.unwrap().is_empty());
    assert_eq!(
        fs::read_dir(server.root.join("snapshots")).unwrap().count(),
        0
    );
    server.stop().await;
}

#[tokio::test]
async fn errors_carry_containerd_codes() {
    let (server, mut c) = InProcess::start().await;
    prepare(&mut c, "a", "", no_labels()).await.unwrap();
    commit(&mut c, "a", "A", no_labels()).await.unwrap();
    view(&mut c, "v", "A").await.unwrap();
    prepare(&mut c, "b", "A", no_labels()).await.unwrap();

    let cases: Vec<(&str, Result<(), tonic::Status>, Code)> = vec![
        (
            "prepare existing key",
            prepare(&mut c, "b", "A", no_labels()).await.map(drop),
            Code::AlreadyExists,
        ),
        (
            "prepare over a name",
            prepare(&mut c, "A", "", no_labels()).await.map(drop),
            Code::AlreadyExists,
        ),
        (
            "commit to an existing name",
            commit(&mut c, "b", "A", no_labels()).await,
            Code::AlreadyExists,
        ),
        (
            "prepare on a missing parent",
            prepare(&mut c, "c", "nope", no_labels()).await.map(drop),
            Code::NotFound,
        ),
        (
            "stat missing",
            stat(&mut c, "nope").await.map(drop),
            Code::NotFound,
        ),
        (
            "commit missing key",
            commit(&mut c, "nope", "N", no_labels()).await,
            Code::NotFound,
        ),
        (
            "remove missing",
            remove(&mut c, "nope").await,
            Code::NotFound,
        ),
        (
            "remove a parent",
            remove(&mut c, "A").await,
            Code::FailedPrecondition,
        ),
        (
            "commit a view",
            commit(&mut c, "v", "V", no_labels()).await,
            Code::FailedPrecondition,
        ),
        (
            "mounts of committed",
            c.mounts(api::MountsRequest {
                snapshotter: String::new(),
                key: "A".into(),
            })
            .await
            .map(drop),
            Code::FailedPrecondition,
        ),
        (
            "parent not committed",
            prepare(&mut c, "d", "b", no_labels()).await.map(drop),
            Code::InvalidArgument,
        ),
        (
            "empty key",
            prepare(&mut c, "", "", no_labels()).await.map(drop),
            Code::InvalidArgument,
        ),
        (
            "bad filter",
            walk(&mut c, &["kind=="]).await.map(drop),
            Code::InvalidArgument,
        ),
        (
            "oversized label",
            prepare(&mut c, "e", "", labels(&[("k", &"v".repeat(4096))]))
                .await
                .map(drop),
            Code::InvalidArgument,
        ),
    ];
    for (what, result, code) in cases {
        assert_eq!(result.unwrap_err().code(), code, "{what}");
    }
    server.stop().await;
}

#[tokio::test]
async fn labels_update_usage_walk_and_cleanup() {
    let (server, mut c) = InProcess::start().await;
    let m = prepare(
        &mut c,
        "a",
        "",
        labels(&[("containerd.io/snapshot/x", "1")]),
    )
    .await
    .unwrap();
    assert_eq!(
        stat(&mut c, "a").await.unwrap().labels,
        labels(&[("containerd.io/snapshot/x", "1")])
    );

    // Usage of an active snapshot follows its contents; commit records it.
    let usage = |c: &mut common::Client, key: &str| {
        let mut c = c.clone();
        let key = key.to_owned();
        async move {
            c.usage(api::UsageRequest {
                snapshotter: String::new(),
                key,
            })
            .await
            .map(|r| r.into_inner())
        }
    };
    let empty = usage(&mut c, "a").await.unwrap();
    fs::write(writable_dir(&m).join("f"), vec![0u8; 100_000]).unwrap();
    let grown = usage(&mut c, "a").await.unwrap();
    assert_eq!(grown.inodes, empty.inodes + 1);
    assert!(grown.size >= empty.size + 100_000, "{grown:?}");
    commit(&mut c, "a", "A", labels(&[("y", "2")]))
        .await
        .unwrap();
    assert_eq!(usage(&mut c, "A").await.unwrap(), grown);
    assert_eq!(
        stat(&mut c, "A").await.unwrap().labels,
        labels(&[("y", "2")]),
        "commit labels replace"
    );
    view(&mut c, "v", "A").await.unwrap();
    assert_eq!(usage(&mut c, "v").await.unwrap().size, 0);
    assert_eq!(
        usage(&mut c, "nope").await.unwrap_err().code(),
        Code::NotFound
    );

    // Update: a field mask of one label, none (all labels), and a refused field.
    let update = |c: &mut common::Client, labels: HashMap<String, String>, paths: &[&str]| {
        let mut c = c.clone();
        let paths = paths.iter().map(|p| (*p).to_owned()).collect();
        async move {
            c.update(api::UpdateSnapshotRequest {
                snapshotter: String::new(),
                info: Some(api::Info {
                    name: "A".into(),
                    labels,
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask { paths }),
            })
            .await
            .map(|r| r.into_inner().info.unwrap())
        }
    };
    let info = update(
        &mut c,
        labels(&[("z", "3"), ("y", "ignored")]),
        &["labels.z"],
    )
    .await
    .unwrap();
    assert_eq!(info.labels, labels(&[("y", "2"), ("z", "3")]));
    let info = update(&mut c, labels(&[("only", "1")]), &[]).await.unwrap();
    assert_eq!(info.labels, labels(&[("only", "1")]));
    assert_eq!(
        update(&mut c, no_labels(), &["kind"])
            .await
            .unwrap_err()
            .code(),
        Code::InvalidArgument
    );

    // Walk with containerd's filter syntax; results come back over a stream in batches.
    for i in 0..150 {
        view(&mut c, &format!("many-{i}"), "A").await.unwrap();
    }
    let names = |infos: Vec<api::Info>| {
        let mut n: Vec<String> = infos.into_iter().map(|i| i.name).collect();
        n.sort();
        n
    };
    assert_eq!(walk(&mut c, &[]).await.unwrap().len(), 152);
    assert_eq!(
        names(walk(&mut c, &["kind==committed"]).await.unwrap()),
        ["A"]
    );
    assert_eq!(
        names(walk(&mut c, &["labels.only==1", "name==v"]).await.unwrap()),
        ["A", "v"]
    );
    assert_eq!(
        walk(&mut c, &["parent==A,name~=^many-1[0-9]$"])
            .await
            .unwrap()
            .len(),
        10
    );

    // Cleanup removes directories no snapshot owns, and nothing else.
    let stray = server.root.join("snapshots/999");
    fs::create_dir_all(stray.join("fs")).unwrap();
    c.cleanup(api::CleanupRequest {
        snapshotter: String::new(),
    })
    .await
    .unwrap();
    assert!(!stray.exists());
    assert!(
        server.store.check().unwrap().is_empty(),
        "{:?}",
        server.store.check()
    );
    assert_eq!(walk(&mut c, &[]).await.unwrap().len(), 152);
    server.stop().await;
}

#[tokio::test]
async fn engine_layers_are_offered_to_containerd_as_targets() {
    let (server, mut c) = InProcess::start().await;
    // The engine's direct path, into the store being served.
    for (name, parent) in [("sha256:c1", None), ("sha256:c2", Some("sha256:c1"))] {
        let staged = server.store.stage().unwrap();
        fs::write(staged.fs().join("f"), name).unwrap();
        server.store.commit(staged, name, parent, 1).unwrap();
    }
    // containerd's garbage collector removes backend snapshots it does not know: refused.
    assert_eq!(
        remove(&mut c, "sha256:c2").await.unwrap_err().code(),
        Code::FailedPrecondition
    );

    // containerd's unpacker: Prepare with the target label, then the Walk it sends.
    let target = |t: &str| labels(&[(TARGET_LABEL, t)]);
    let err = prepare(
        &mut c,
        "test/1/extract-1 sha256:c1",
        "",
        target("sha256:c1"),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    let found = walk(
        &mut c,
        &[r#"labels."containerd.io/snapshot.ref"==sha256:c1,parent=="""#],
    )
    .await
    .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(
        (found[0].name.as_str(), found[0].kind),
        ("sha256:c1", api::Kind::Committed as i32)
    );
    let err = prepare(
        &mut c,
        "test/2/extract-2 sha256:c2",
        "sha256:c1",
        target("sha256:c2"),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    // A target on a parent the engine did not use is unpacked by containerd as usual.
    prepare(
        &mut c,
        "test/3/extract-3 sha256:c2",
        "",
        target("sha256:c2"),
    )
    .await
    .unwrap();

    // Adopted: containerd may now remove them (children first), as its collector does.
    remove(&mut c, "test/3/extract-3 sha256:c2").await.unwrap();
    remove(&mut c, "sha256:c2").await.unwrap();
    remove(&mut c, "sha256:c1").await.unwrap();
    assert!(server.store.list().unwrap().is_empty());
    server.stop().await;
}
