//! Hostile layers: each fails with an error naming the entry, and nothing outside `dest` changes.

use tar::EntryType;

use super::{Layer, Sandbox, path_is};
use crate::error::Kind;
use crate::pull::unpack::{Error, Found, PathProblem};

type Build = fn(&Sandbox) -> Vec<u8>;
type Expect = fn(&Error) -> bool;

#[test]
fn hostile_layers_fail_and_write_nothing_outside() {
    let cases: &[(&str, Build, Expect)] = &[
        (
            "parent component",
            |_| {
                Layer::new()
                    .raw(EntryType::Regular, b"../x", b"", b"x")
                    .bytes()
            },
            |e| {
                matches!(
                    e,
                    Error::InvalidPath {
                        problem: PathProblem::ParentComponent,
                        ..
                    }
                )
            },
        ),
        (
            "parent components after a name",
            |_| {
                Layer::new()
                    .raw(EntryType::Regular, b"a/../../x", b"", b"x")
                    .bytes()
            },
            |e| {
                path_is(e, "a/../../x")
                    && matches!(
                        e,
                        Error::InvalidPath {
                            problem: PathProblem::ParentComponent,
                            ..
                        }
                    )
            },
        ),
        (
            "parent components reaching the canary",
            |_| {
                Layer::new()
                    .raw(EntryType::Regular, b"a/../../canary/x", b"", b"x")
                    .bytes()
            },
            |e| {
                matches!(
                    e,
                    Error::InvalidPath {
                        problem: PathProblem::ParentComponent,
                        ..
                    }
                )
            },
        ),
        (
            "absolute path",
            |_| {
                Layer::new()
                    .raw(EntryType::Regular, b"/etc/x", b"", b"x")
                    .bytes()
            },
            |e| {
                path_is(e, "/etc/x")
                    && matches!(
                        e,
                        Error::InvalidPath {
                            problem: PathProblem::Absolute,
                            ..
                        }
                    )
            },
        ),
        (
            "absolute path into the canary",
            |s| {
                let path = s.canary().join("x");
                let path = path.to_str().unwrap().as_bytes().to_vec();
                Layer::new()
                    .raw(EntryType::Regular, &path, b"", b"x")
                    .bytes()
            },
            |e| {
                matches!(
                    e,
                    Error::InvalidPath {
                        problem: PathProblem::Absolute,
                        ..
                    }
                )
            },
        ),
        (
            "absolute pax path",
            |s| {
                let path = s.canary().join("x").into_os_string().into_string().unwrap();
                Layer::new()
                    .pax(&[("path", path.as_bytes())], EntryType::Regular, "x", b"x")
                    .bytes()
            },
            |e| {
                matches!(
                    e,
                    Error::InvalidPath {
                        problem: PathProblem::Absolute,
                        ..
                    }
                )
            },
        ),
        (
            "write through a symlink to an absolute path outside",
            |s| {
                Layer::new()
                    .symlink("a", s.canary().to_str().unwrap())
                    .file("a/b", b"escaped")
                    .bytes()
            },
            |e| {
                path_is(e, "a/b")
                    && matches!(
                        e,
                        Error::ParentNotDirectory {
                            found: Found::Symlink,
                            ..
                        }
                    )
            },
        ),
        (
            "write through a symlink to ..",
            |_| {
                Layer::new()
                    .symlink("up", "..")
                    .file("up/canary/x", b"escaped")
                    .bytes()
            },
            |e| {
                path_is(e, "up/canary/x")
                    && matches!(
                        e,
                        Error::ParentNotDirectory {
                            found: Found::Symlink,
                            ..
                        }
                    )
            },
        ),
        (
            "directory through a symlink to ..",
            |_| {
                Layer::new()
                    .symlink("up", "..")
                    .dir("up/canary/sub")
                    .bytes()
            },
            |e| {
                matches!(
                    e,
                    Error::ParentNotDirectory {
                        found: Found::Symlink,
                        ..
                    }
                )
            },
        ),
        (
            "symlink created through a symlink",
            |_| {
                Layer::new()
                    .symlink("up", "..")
                    .symlink("up/canary/l", "/")
                    .bytes()
            },
            |e| {
                matches!(
                    e,
                    Error::ParentNotDirectory {
                        found: Found::Symlink,
                        ..
                    }
                )
            },
        ),
        (
            "write under a regular file",
            |_| Layer::new().file("f", b"").file("f/x", b"").bytes(),
            |e| {
                matches!(
                    e,
                    Error::ParentNotDirectory {
                        found: Found::NonDirectory,
                        ..
                    }
                )
            },
        ),
        (
            "hardlink to an absolute path",
            |_| Layer::new().hardlink("shadow", "/etc/shadow").bytes(),
            |e| {
                path_is(e, "shadow")
                    && matches!(
                        e,
                        Error::InvalidLinkTarget {
                            problem: PathProblem::Absolute,
                            ..
                        }
                    )
            },
        ),
        (
            "hardlink to ..",
            |_| Layer::new().hardlink("h", "../outside/secret").bytes(),
            |e| {
                matches!(
                    e,
                    Error::InvalidLinkTarget {
                        problem: PathProblem::ParentComponent,
                        ..
                    }
                )
            },
        ),
        (
            "hardlink to ../x",
            |_| Layer::new().hardlink("h", "../x").bytes(),
            |e| {
                matches!(
                    e,
                    Error::InvalidLinkTarget {
                        problem: PathProblem::ParentComponent,
                        ..
                    }
                )
            },
        ),
        (
            "hardlink through a symlinked parent",
            |s| {
                Layer::new()
                    .symlink("s", s.outside().to_str().unwrap())
                    .hardlink("h", "s/secret")
                    .bytes()
            },
            |e| {
                path_is(e, "h")
                    && matches!(
                        e,
                        Error::ParentNotDirectory {
                            found: Found::Symlink,
                            ..
                        }
                    )
            },
        ),
        (
            "hardlink to a directory",
            |_| Layer::new().dir("d").hardlink("h", "d").bytes(),
            |e| matches!(e, Error::LinkTargetDirectory { .. }),
        ),
        (
            "hardlink to the layer root",
            |_| Layer::new().hardlink("h", "./").bytes(),
            |e| {
                matches!(
                    e,
                    Error::InvalidLinkTarget {
                        problem: PathProblem::Empty,
                        ..
                    }
                )
            },
        ),
        (
            "hardlink to a file not in the layer",
            |_| Layer::new().hardlink("h", "etc/passwd").bytes(),
            |e| path_is(e, "h") && matches!(e, Error::LinkTargetMissing { .. }),
        ),
        (
            "hardlink to itself",
            |_| Layer::new().file("h", b"").hardlink("h", "h").bytes(),
            |e| matches!(e, Error::LinkTargetMissing { .. }),
        ),
        (
            "whiteout of the parent directory",
            |_| Layer::new().file("d/.wh...", b"").bytes(),
            |e| path_is(e, "d/.wh...") && matches!(e, Error::InvalidWhiteout { .. }),
        ),
        (
            "whiteout of the directory itself",
            |_| Layer::new().file(".wh..", b"").bytes(),
            |e| matches!(e, Error::InvalidWhiteout { .. }),
        ),
        (
            "whiteout of nothing",
            |_| Layer::new().file("d/.wh.", b"").bytes(),
            |e| matches!(e, Error::InvalidWhiteout { .. }),
        ),
        (
            "whiteout through a symlink",
            |s| {
                Layer::new()
                    .symlink("s", s.canary().to_str().unwrap())
                    .file("s/.wh.x", b"")
                    .bytes()
            },
            |e| {
                matches!(
                    e,
                    Error::ParentNotDirectory {
                        found: Found::Symlink,
                        ..
                    }
                )
            },
        ),
        (
            "opaque marker through a symlink",
            |s| {
                Layer::new()
                    .symlink("s", s.canary().to_str().unwrap())
                    .file("s/.wh..wh..opq", b"")
                    .bytes()
            },
            |e| {
                matches!(
                    e,
                    Error::ParentNotDirectory {
                        found: Found::Symlink,
                        ..
                    }
                )
            },
        ),
        (
            "name component longer than NAME_MAX",
            |_| Layer::new().file(&"n".repeat(256), b"").bytes(),
            |e| {
                matches!(
                    e,
                    Error::Io {
                        op: crate::pull::unpack::Op::CreateFile,
                        ..
                    }
                )
            },
        ),
        (
            "volume label entry",
            |_| {
                Layer::new()
                    .raw(EntryType::new(b'V'), b"label", b"", b"")
                    .bytes()
            },
            |e| {
                matches!(
                    e,
                    Error::UnsupportedType {
                        type_flag: b'V',
                        ..
                    }
                )
            },
        ),
        (
            "uid meaning unchanged to chown",
            |_| {
                let mut layer = Layer::new();
                let mut header = Layer::header(EntryType::Regular, super::Attrs::FILE);
                header.set_uid(u64::from(u32::MAX));
                layer.0.append_data(&mut header, "f", &[][..]).unwrap();
                layer.bytes()
            },
            |e| matches!(e, Error::OutOfRange { field: "uid", .. }),
        ),
    ];
    for (name, build, expected) in cases {
        let sandbox = Sandbox::new();
        let error = sandbox.unpack(&build(&sandbox)).expect_err(name);
        assert!(expected(&error), "{name}: unexpected {error}");
        assert_eq!(error.kind(), Kind::InvalidArgument, "{name}: {error}");
        sandbox.assert_contained();
    }
}
