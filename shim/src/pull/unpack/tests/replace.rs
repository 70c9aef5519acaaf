//! A later entry replaces an earlier one at the same path (except a directory over a directory),
//! and the cache of verified directories never outlives a replaced directory.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

use tar::EntryType;

use super::{Attrs, Layer, Sandbox, lstat};
use crate::pull::unpack::{Error, Found};

/// Builds a layer from `sandbox` (so entries can point at its canary).
type Build = fn(&Sandbox) -> Vec<u8>;

/// A case name, its layer, and the check of `dest` after unpacking.
type Case = (&'static str, Build, fn(&Sandbox));

#[test]
fn later_entries_replace_earlier_ones() {
    let cases: &[Case] = &[
        (
            "file over file",
            |_| Layer::new().file("x", b"old").file("x", b"new").bytes(),
            |s| assert_eq!(fs::read(s.at("x")).unwrap(), b"new"),
        ),
        (
            "directory over file",
            |_| {
                Layer::new()
                    .file("x", b"old")
                    .dir("x")
                    .file("x/in", b"in")
                    .bytes()
            },
            |s| assert!(s.at("x/in").is_file()),
        ),
        (
            "file over directory tree",
            |_| {
                Layer::new()
                    .dir("x")
                    .dir("x/sub")
                    .file("x/sub/deep", b"deep")
                    .file("x", b"file")
                    .bytes()
            },
            |s| assert_eq!(fs::read(s.at("x")).unwrap(), b"file"),
        ),
        (
            "directory over directory keeps children",
            |_| {
                Layer::new()
                    .dir_with(
                        "x",
                        Attrs {
                            mode: 0o700,
                            ..Attrs::DIR
                        },
                    )
                    .file("x/kept", b"kept")
                    .dir_with(
                        "x",
                        Attrs {
                            mode: 0o750,
                            uid: 3,
                            ..Attrs::DIR
                        },
                    )
                    .bytes()
            },
            |s| {
                let x = lstat(&s.at("x"));
                assert_eq!((x.mode() & 0o7777, x.uid()), (0o750, 3));
                assert!(s.at("x/kept").is_file());
            },
        ),
        (
            "file over symlink to outside replaces the link",
            |s| {
                let outside = s.canary().join("x");
                Layer::new()
                    .symlink("x", outside.to_str().unwrap())
                    .file("x", b"inside")
                    .bytes()
            },
            |s| {
                assert!(lstat(&s.at("x")).file_type().is_file());
                assert_eq!(fs::read(s.at("x")).unwrap(), b"inside");
            },
        ),
        (
            "directory over symlink to outside replaces the link",
            |s| {
                Layer::new()
                    .symlink("x", s.canary().to_str().unwrap())
                    .dir("x")
                    .file("x/in", b"in")
                    .bytes()
            },
            |s| {
                assert!(lstat(&s.at("x")).file_type().is_dir());
                assert!(s.at("x/in").is_file());
            },
        ),
        (
            "symlink over file",
            |_| {
                Layer::new()
                    .file("x", b"old")
                    .symlink("x", "target")
                    .bytes()
            },
            |s| assert_eq!(fs::read_link(s.at("x")).unwrap().to_str(), Some("target")),
        ),
        (
            "hardlink over directory tree",
            |_| {
                Layer::new()
                    .file("t", b"t")
                    .dir("x")
                    .file("x/in", b"")
                    .hardlink("x", "t")
                    .bytes()
            },
            |s| assert_eq!(lstat(&s.at("x")).ino(), lstat(&s.at("t")).ino()),
        ),
        (
            "whiteout over file",
            |_| Layer::new().file("x", b"old").file(".wh.x", b"").bytes(),
            |s| assert!(lstat(&s.at("x")).file_type().is_char_device()),
        ),
        (
            "whiteout over directory tree",
            |_| {
                Layer::new()
                    .dir("x")
                    .file("x/in", b"")
                    .file(".wh.x", b"")
                    .bytes()
            },
            |s| assert!(lstat(&s.at("x")).file_type().is_char_device()),
        ),
        (
            "file over fifo",
            |_| {
                Layer::new()
                    .node(EntryType::Fifo, "x", 0, 0)
                    .file("x", b"file")
                    .bytes()
            },
            |s| assert_eq!(fs::read(s.at("x")).unwrap(), b"file"),
        ),
        (
            "hardlink to symlink links the symlink itself",
            |s| {
                Layer::new()
                    .symlink("s", s.canary().to_str().unwrap())
                    .hardlink("h", "s")
                    .bytes()
            },
            |s| {
                let h = lstat(&s.at("h"));
                assert!(h.file_type().is_symlink());
                assert_eq!(h.ino(), lstat(&s.at("s")).ino());
            },
        ),
    ];
    for (name, build, check) in cases {
        let sandbox = Sandbox::new();
        let tar = build(&sandbox);
        sandbox
            .unpack(&tar)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        check(&sandbox);
        sandbox.assert_contained();
    }
}

#[test]
fn replaced_directory_is_not_reused_from_the_cache() {
    let cases: &[(&str, Build, Found)] = &[
        (
            "directory replaced by a file",
            |_| {
                Layer::new()
                    .dir("a/b")
                    .file("a/b/f", b"")
                    .file("a", b"now a file")
                    .file("a/c", b"")
                    .bytes()
            },
            Found::NonDirectory,
        ),
        (
            "directory replaced by a symlink to outside",
            |s| {
                Layer::new()
                    .dir("a/b")
                    .file("a/b/f", b"")
                    .symlink("a", s.canary().to_str().unwrap())
                    .file("a/c", b"escaped")
                    .bytes()
            },
            Found::Symlink,
        ),
        (
            "deep directory replaced by a symlink, then written below",
            |s| {
                Layer::new()
                    .file("a/b/c/f", b"")
                    .symlink("a/b", s.canary().to_str().unwrap())
                    .file("a/b/c/g", b"escaped")
                    .bytes()
            },
            Found::Symlink,
        ),
    ];
    for (name, build, found) in cases {
        let sandbox = Sandbox::new();
        let error = sandbox.unpack(&build(&sandbox)).unwrap_err();
        assert!(
            matches!(&error, Error::ParentNotDirectory { found: f, .. } if f == found),
            "{name}: {error}"
        );
        sandbox.assert_contained();
    }
}
