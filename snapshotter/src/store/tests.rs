//! Unit tests of the store: the engine's direct path, containerd's model, crash leftovers and
//! two stores on one root.

use std::collections::BTreeMap;
use std::fs;

use super::*;
use crate::error::Kind as ErrorKind;

fn store() -> (tempfile::TempDir, Store) {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    (tmp, store)
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Commits a layer through the engine's path with one file `name` holding `name`.
fn engine_layer(store: &Store, name: &str, parent: Option<&str>) -> Committed {
    let staged = store.stage().unwrap();
    fs::write(staged.fs().join(name.replace(':', "_")), name).unwrap();
    store.commit(staged, name, parent, 1).unwrap()
}

fn code(result: Result<impl std::fmt::Debug>) -> ErrorKind {
    result.unwrap_err().kind()
}

#[test]
fn engine_commit_makes_staged_visible_and_is_idempotent() {
    let (tmp, store) = store();
    let s = store.stage().unwrap();
    fs::write(s.fs().join("a"), b"x").unwrap();
    let c = store.commit(s, "sha256:aa", None, 1).unwrap();
    assert_eq!(fs::read(c.fs.join("a")).unwrap(), b"x");
    assert_eq!(
        c.fs,
        tmp.path().join("snapshots/1/fs"),
        "short numeric directory ids"
    );
    assert_eq!(
        c.info.labels.get(TARGET_LABEL).map(String::as_str),
        Some("sha256:aa")
    );

    let again = store.stage().unwrap();
    let again_dir = again.fs();
    let c2 = store.commit(again, "sha256:aa", None, 1).unwrap();
    assert_eq!(c, c2);
    assert!(
        !again_dir.exists(),
        "the duplicate staged copy is discarded"
    );
    assert_eq!(store.list().unwrap().len(), 1);
    assert_eq!(store.get("sha256:aa").unwrap(), Some(c));
    assert!(store.check().unwrap().is_empty());
}

#[test]
fn dropped_stage_leaves_nothing() {
    let (tmp, store) = store();
    let s = store.stage().unwrap();
    let dir = s.fs();
    fs::write(dir.join("a"), b"x").unwrap();
    drop(s);
    assert!(!dir.exists());
    assert!(store.list().unwrap().is_empty());
    assert_eq!(
        fs::read_dir(tmp.path().join("staging")).unwrap().count(),
        0,
        "staging empty"
    );
}

#[test]
fn engine_commit_needs_a_committed_parent() {
    let (_tmp, store) = store();
    let err = store.commit(store.stage().unwrap(), "sha256:bb", Some("sha256:aa"), 0);
    assert!(matches!(err, Err(Error::MissingParent { .. })), "{err:?}");
    store.prepare("active", None, BTreeMap::new()).unwrap();
    let err = store.commit(store.stage().unwrap(), "sha256:bb", Some("active"), 0);
    assert_eq!(code(err), ErrorKind::InvalidArgument);
    let err = store.commit(store.stage().unwrap(), "active", None, 0);
    assert_eq!(
        code(err),
        ErrorKind::AlreadyExists,
        "an active key is not a committed layer"
    );
    assert_eq!(store.get("active").unwrap(), None);
    assert_eq!(code(store.get("")), ErrorKind::InvalidArgument);
}

#[test]
fn prepare_view_commit_remove_follow_containerd() {
    let (tmp, store) = store();
    let fs_of = |id: u64| {
        tmp.path()
            .join(format!("snapshots/{id}/fs"))
            .display()
            .to_string()
    };

    // Active snapshot without parent: a rw bind of its own directory.
    let m = store.prepare("k1", None, BTreeMap::new()).unwrap();
    assert_eq!(
        (m[0].kind.as_str(), m[0].source.clone()),
        ("bind", fs_of(1))
    );
    assert_eq!(m[0].options, ["rw", "rbind"]);
    fs::write(tmp.path().join("snapshots/1/fs/base"), b"1").unwrap();
    store.commit_active("k1", "base", BTreeMap::new()).unwrap();
    assert_eq!(store.stat("base").unwrap().kind, Kind::Committed);
    assert_eq!(code(store.stat("k1")), ErrorKind::NotFound);

    // Active on a parent: overlay with upper, work and lower.
    let m = store.prepare("k2", Some("base"), BTreeMap::new()).unwrap();
    assert_eq!(m[0].kind, "overlay");
    assert!(m[0].options.contains(&format!("upperdir={}", fs_of(2))));
    assert!(m[0].options.contains(&format!("lowerdir={}", fs_of(1))));
    assert_eq!(store.mounts("k2").unwrap(), m);
    store.commit_active("k2", "top", BTreeMap::new()).unwrap();

    // Views: one layer is a ro bind of the parent, several an overlay of lowers only.
    let m = store.view("v1", Some("base"), BTreeMap::new()).unwrap();
    assert_eq!(
        (m[0].kind.as_str(), m[0].source.clone()),
        ("bind", fs_of(1))
    );
    assert_eq!(m[0].options, ["ro", "rbind"]);
    let m = store.view("v2", Some("top"), BTreeMap::new()).unwrap();
    let lower = format!("lowerdir={}:{}", fs_of(2), fs_of(1));
    assert_eq!(m[0].options.last(), Some(&lower));
    assert!(!m[0].options.iter().any(|o| o.starts_with("upperdir=")));

    // Errors.
    assert_eq!(
        code(store.prepare("k2b", Some("nope"), BTreeMap::new())),
        ErrorKind::NotFound
    );
    assert_eq!(
        code(store.prepare("v1", Some("base"), BTreeMap::new())),
        ErrorKind::AlreadyExists
    );
    assert_eq!(
        code(store.prepare("x", Some("v1"), BTreeMap::new())),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        code(store.prepare("", None, BTreeMap::new())),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        code(store.commit_active("v1", "n", BTreeMap::new())),
        ErrorKind::FailedPrecondition
    );
    assert_eq!(
        code(store.commit_active("gone", "n", BTreeMap::new())),
        ErrorKind::NotFound
    );
    assert_eq!(
        code(store.commit_active("v1", "top", BTreeMap::new())),
        ErrorKind::AlreadyExists
    );
    assert_eq!(code(store.mounts("top")), ErrorKind::FailedPrecondition);
    assert_eq!(
        code(store.remove("base")),
        ErrorKind::FailedPrecondition,
        "base has children"
    );
    assert_eq!(code(store.remove("nope")), ErrorKind::NotFound);

    // Remove from the top down; directories go with the records.
    for key in ["v2", "v1", "top", "base"] {
        store.remove(key).unwrap();
    }
    assert!(store.walk::<&str>(&[]).unwrap().is_empty());
    assert_eq!(
        fs::read_dir(tmp.path().join("snapshots")).unwrap().count(),
        0
    );
    assert!(store.check().unwrap().is_empty());
}

#[test]
fn labels_update_and_walk_filters() {
    let (_tmp, store) = store();
    store
        .prepare("a", None, labels(&[("x", "1"), ("empty", "")]))
        .unwrap();
    assert_eq!(
        store.stat("a").unwrap().labels,
        labels(&[("x", "1")]),
        "empty values are dropped"
    );
    store
        .commit_active("a", "A", labels(&[("c", "3")]))
        .unwrap();
    assert_eq!(
        store.stat("A").unwrap().labels,
        labels(&[("c", "3")]),
        "commit replaces labels"
    );
    store.view("v", Some("A"), BTreeMap::new()).unwrap();

    let before = store.stat("A").unwrap().updated;
    let info = store
        .update(
            "A",
            labels(&[("d", "4"), ("c", "ignored")]),
            &["labels.d".to_owned()],
        )
        .unwrap();
    assert_eq!(info.labels, labels(&[("c", "3"), ("d", "4")]));
    assert!(info.updated >= before);
    let info = store
        .update("A", BTreeMap::new(), &["labels.c".to_owned()])
        .unwrap();
    assert_eq!(
        info.labels,
        labels(&[("d", "4")]),
        "a named label absent from the request is removed"
    );
    let info = store.update("A", labels(&[("e", "5")]), &[]).unwrap();
    assert_eq!(
        info.labels,
        labels(&[("e", "5")]),
        "no field paths replaces all labels"
    );
    assert_eq!(
        code(store.update("A", BTreeMap::new(), &["parent".to_owned()])),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        code(store.update("nope", BTreeMap::new(), &[])),
        ErrorKind::NotFound
    );
    let huge = "v".repeat(4096);
    assert_eq!(
        code(store.update("A", labels(&[("k", &huge)]), &[])),
        ErrorKind::InvalidArgument
    );

    let names = |filters: &[&str]| -> Vec<String> {
        let mut n: Vec<_> = store
            .walk(filters)
            .unwrap()
            .into_iter()
            .map(|i| i.name)
            .collect();
        n.sort();
        n
    };
    assert_eq!(names(&[]), ["A", "v"]);
    assert_eq!(names(&["kind==committed"]), ["A"]);
    assert_eq!(names(&["parent==A"]), ["v"]);
    assert_eq!(names(&["labels.e==5"]), ["A"]);
    assert_eq!(names(&["labels.e"]), ["A"]);
    assert_eq!(names(&["kind==view", "name==A"]), ["A", "v"]);
    assert_eq!(names(&["name~=^[a-z]$"]), ["v"]);
    assert_eq!(code(store.walk(&["name=="])), ErrorKind::InvalidArgument);
}

#[test]
fn usage_is_measured_for_active_and_recorded_at_commit() {
    let (tmp, store) = store();
    store.prepare("a", None, BTreeMap::new()).unwrap();
    let empty = store.usage("a").unwrap();
    assert_eq!(empty.inodes, 1, "just the root directory");
    fs::write(tmp.path().join("snapshots/1/fs/f"), vec![7u8; 64 * 1024]).unwrap();
    let grown = store.usage("a").unwrap();
    assert_eq!(grown.inodes, 2);
    assert!(grown.size >= empty.size + 64 * 1024, "{grown:?}");
    store.commit_active("a", "A", BTreeMap::new()).unwrap();
    assert_eq!(store.usage("A").unwrap(), grown);
    store.view("v", Some("A"), BTreeMap::new()).unwrap();
    assert_eq!(store.usage("v").unwrap(), Usage::default());
    engine_layer(&store, "sha256:e", None);
    assert_eq!(
        store.usage("sha256:e").unwrap().inodes,
        2,
        "measured on first request"
    );
}

#[test]
fn engine_layers_are_pinned_until_containerd_adopts_them() {
    let (_tmp, store) = store();
    engine_layer(&store, "sha256:1", None);
    engine_layer(&store, "sha256:2", Some("sha256:1"));
    assert_eq!(
        code(store.release("sha256:2")),
        ErrorKind::FailedPrecondition
    );

    // A target on another parent is not this snapshot: containerd unpacks it itself.
    let target = labels(&[(TARGET_LABEL, "sha256:2")]);
    store.prepare("other", None, target.clone()).unwrap();
    store.remove("other").unwrap();
    // The same parent: containerd is told the target exists, and it is unpinned.
    let err = store
        .prepare("extract-1 sha256:2", Some("sha256:1"), target)
        .unwrap_err();
    assert!(matches!(err, Error::TargetExists { .. }), "{err:?}");
    assert_eq!(
        code(store.stat("extract-1 sha256:2")),
        ErrorKind::NotFound,
        "nothing created"
    );
    let found = store
        .walk(&["labels.\"containerd.io/snapshot.ref\"==sha256:2,parent==\"sha256:1\""])
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].kind, Kind::Committed);
    store.release("sha256:2").unwrap();
    assert_eq!(
        code(store.release("sha256:1")),
        ErrorKind::FailedPrecondition,
        "still pinned"
    );
    store.remove("sha256:1").unwrap();
    assert!(store.check().unwrap().is_empty());
}

#[test]
fn open_removes_what_a_killed_process_left() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let store = Store::open(tmp.path()).unwrap();
        engine_layer(&store, "sha256:kept", None);
        store.prepare("active", None, BTreeMap::new()).unwrap();
    }
    // A directory renamed into place whose transaction never committed, one whose removal was
    // not finished, and a dead process's staging session with a half-written layer.
    fs::create_dir_all(tmp.path().join("snapshots/3/fs")).unwrap();
    fs::create_dir_all(tmp.path().join("snapshots/new-x/fs")).unwrap();
    fs::write(tmp.path().join("sessions/99-1-0.lock"), b"").unwrap();
    fs::create_dir_all(tmp.path().join("staging/99-1-0.0/fs")).unwrap();
    fs::write(tmp.path().join("staging/99-1-0.0/fs/partial"), b"...").unwrap();

    let store = Store::open(tmp.path()).unwrap();
    assert!(store.check().unwrap().is_empty(), "{:?}", store.check());
    assert_eq!(fs::read_dir(tmp.path().join("staging")).unwrap().count(), 0);
    assert!(!tmp.path().join("snapshots/3").exists());
    assert_eq!(store.walk::<&str>(&[]).unwrap().len(), 2);
    // A leftover directory at the next id is skipped, not reused.
    fs::create_dir_all(tmp.path().join("snapshots/3/fs")).unwrap();
    store.prepare("next", None, BTreeMap::new()).unwrap();
    assert_eq!(
        store.mounts("next").unwrap()[0].source,
        tmp.path().join("snapshots/4/fs").display().to_string()
    );
    assert_eq!(store.cleanup().unwrap(), 1);
    assert!(store.check().unwrap().is_empty());
}

#[test]
fn two_stores_on_one_root_share_metadata_and_keep_each_others_staging() {
    let tmp = tempfile::tempdir().unwrap();
    let serving = Store::open(tmp.path()).unwrap();
    let pulling = Store::open(tmp.path()).unwrap();
    let staged = pulling.stage().unwrap();
    fs::write(staged.fs().join("layer"), b"data").unwrap();
    // containerd's Cleanup on the serving side must not touch the puller's work in progress.
    serving.prepare("k", None, BTreeMap::new()).unwrap();
    assert_eq!(serving.cleanup().unwrap(), 0);
    assert!(staged.fs().join("layer").exists());
    let layer = pulling.commit(staged, "sha256:p", None, 4).unwrap();
    let seen = serving.get("sha256:p").unwrap().unwrap();
    assert_eq!(seen.fs, layer.fs);
    assert_eq!(pulling.stat("k").unwrap().kind, Kind::Active);
    assert_ne!(
        serving.mounts("k").unwrap()[0].source,
        layer.fs.display().to_string()
    );
    drop(pulling);
    assert!(serving.check().unwrap().is_empty());
}

#[test]
fn refuses_a_snapshots_directory_without_metadata() {
    let tmp = tempfile::tempdir().unwrap();
    // The layout before the metadata database: snapshots/<name>/info.json.
    fs::create_dir_all(tmp.path().join("snapshots/sha256-aa/fs")).unwrap();
    fs::write(tmp.path().join("snapshots/sha256-aa/info.json"), b"{}").unwrap();
    let err = Store::open(tmp.path()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition, "{err}");
    assert!(
        tmp.path().join("snapshots/sha256-aa/info.json").exists(),
        "nothing deleted"
    );
}
