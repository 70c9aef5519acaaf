//! Each entry type with its metadata, long names, whiteouts and directory times.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

use tar::EntryType;

use super::{Attrs, Layer, MTIME, Sandbox, lstat, xattr};
use crate::pull::unpack::Stats;

#[test]
fn preserves_every_entry_type_with_owner_mode_and_mtime() {
    let setuid = Attrs {
        mode: 0o4755,
        uid: 1000,
        gid: 1001,
        mtime: 1_500_000_000,
    };
    let sticky_dir = Attrs {
        mode: 0o1777,
        uid: 5,
        gid: 6,
        mtime: 1_400_000_000,
    };
    let link_attrs = Attrs {
        mode: 0o777,
        uid: 7,
        gid: 8,
        mtime: 1_300_000_000,
    };
    let tar = Layer::new()
        .file_with("bin/su", b"#!setuid", setuid)
        .file_with(
            "bin/sgid",
            b"g",
            Attrs {
                mode: 0o2711,
                ..setuid
            },
        )
        .dir_with("tmp", sticky_dir)
        .file("tmp/inner", b"inner")
        .link(EntryType::Symlink, "tmp/link", "../bin/su", link_attrs)
        .link(EntryType::Link, "bin/su-again", "bin/su", setuid)
        .node(EntryType::Fifo, "run/pipe", 0, 0)
        .node(EntryType::Char, "dev/null", 1, 3)
        .node(EntryType::Block, "dev/loop0", 7, 0)
        .bytes();
    let sandbox = Sandbox::new();
    let stats = sandbox.unpack(&tar).unwrap();
    assert_eq!(
        stats,
        Stats {
            entries: 9,
            files: 3,
            bytes: 8 + 1 + 5,
        }
    );

    // (path, file type check, mode, uid, gid, mtime)
    type IsType = fn(&fs::FileType) -> bool;
    let cases: &[(&str, IsType, u32, u32, u32, i64)] = &[
        (
            "bin/su",
            fs::FileType::is_file,
            0o4755,
            1000,
            1001,
            1_500_000_000,
        ),
        (
            "bin/sgid",
            fs::FileType::is_file,
            0o2711,
            1000,
            1001,
            1_500_000_000,
        ),
        ("tmp", fs::FileType::is_dir, 0o1777, 5, 6, 1_400_000_000),
        (
            "tmp/inner",
            fs::FileType::is_file,
            0o644,
            0,
            0,
            MTIME as i64,
        ),
        (
            "tmp/link",
            fs::FileType::is_symlink,
            0o777,
            7,
            8,
            1_300_000_000,
        ),
        ("run/pipe", FileTypeExt::is_fifo, 0o644, 0, 0, MTIME as i64),
        (
            "dev/null",
            FileTypeExt::is_char_device,
            0o644,
            0,
            0,
            MTIME as i64,
        ),
        (
            "dev/loop0",
            FileTypeExt::is_block_device,
            0o644,
            0,
            0,
            MTIME as i64,
        ),
        // Parents the layer does not list: 0755, root, created now.
        ("run", fs::FileType::is_dir, 0o755, 0, 0, -1),
    ];
    for &(path, is_type, mode, uid, gid, mtime) in cases {
        let meta = lstat(&sandbox.at(path));
        assert!(is_type(&meta.file_type()), "{path}: {:?}", meta.file_type());
        assert_eq!(meta.mode() & 0o7777, mode, "{path} mode");
        assert_eq!((meta.uid(), meta.gid()), (uid, gid), "{path} owner");
        if mtime >= 0 {
            assert_eq!(meta.mtime(), mtime, "{path} mtime");
        }
    }
    assert_eq!(fs::read(sandbox.at("bin/su")).unwrap(), b"#!setuid");
    assert_eq!(fs::read(sandbox.at("tmp/inner")).unwrap(), b"inner");
    assert_eq!(
        fs::read_link(sandbox.at("tmp/link")).unwrap().to_str(),
        Some("../bin/su")
    );
    let su = lstat(&sandbox.at("bin/su"));
    assert_eq!(su.ino(), lstat(&sandbox.at("bin/su-again")).ino());
    assert_eq!(su.nlink(), 2);
    let dev = |path| lstat(&sandbox.at(path)).rdev();
    assert_eq!(dev("dev/null"), rustix::fs::makedev(1, 3));
    assert_eq!(dev("dev/loop0"), rustix::fs::makedev(7, 0));
}

#[test]
fn applies_pax_xattrs_times_and_owners() {
    let tar = Layer::new()
        .pax(
            &[
                ("SCHILY.xattr.user.origin", b"layer"),
                ("SCHILY.xattr.security.capability", b"\x01\x00\x00\x02\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"),
                ("SCHILY.xattr.trusted.overlay.redirect", b"/elsewhere"),
                ("mtime", b"1700000000.123456789"),
                ("uid", b"3000000"),
                ("gid", b"4000000"),
            ],
            EntryType::Regular,
            "ping",
            b"ping",
        )
        .bytes();
    let sandbox = Sandbox::new();
    sandbox.unpack(&tar).unwrap();
    let path = sandbox.at("ping");
    let meta = lstat(&path);
    assert_eq!((meta.uid(), meta.gid()), (3_000_000, 4_000_000));
    assert_eq!(
        (meta.mtime(), meta.mtime_nsec()),
        (1_700_000_000, 123_456_789)
    );
    assert_eq!(xattr(&path, "user.origin").as_deref(), Some(&b"layer"[..]));
    // The capability was set after chown, which would have cleared it.
    assert!(xattr(&path, "security.capability").is_some());
    // Admin attributes are not taken from layers (containerd's `setxattr`).
    assert_eq!(xattr(&path, "trusted.overlay.redirect"), None);
}

#[test]
fn reads_gnu_and_pax_long_names_and_link_names() {
    // Directories of 40-byte names (each component within NAME_MAX) and a final file name.
    let long = |tag: &str, len: usize| -> String {
        let mut path = format!("{tag}/");
        while path.len() < len {
            path.push_str("segment-of-forty-characters-for-names-x/");
        }
        path.push('f');
        path
    };
    let (gnu_101, gnu_300) = (long("gnu", 101), long("gnu", 300));
    let (pax_101, pax_300) = (long("pax", 101), long("pax", 300));
    let tar = Layer::new()
        .file(&gnu_101, b"gnu 101")
        .file(&gnu_300, b"gnu 300")
        .pax(
            &[("path", pax_101.as_bytes())],
            EntryType::Regular,
            "short",
            b"pax 101",
        )
        .pax(
            &[("path", pax_300.as_bytes())],
            EntryType::Regular,
            "short",
            b"pax 300",
        )
        .symlink("gnu-symlink", &gnu_300)
        .hardlink("gnu-hardlink", &gnu_300)
        .pax(
            &[("linkpath", pax_300.as_bytes())],
            EntryType::Symlink,
            "pax-symlink",
            b"",
        )
        .pax(
            &[("linkpath", pax_300.as_bytes())],
            EntryType::Link,
            "pax-hardlink",
            b"",
        )
        .bytes();
    let sandbox = Sandbox::new();
    sandbox.unpack(&tar).unwrap();
    for (path, content) in [
        (&gnu_101, "gnu 101"),
        (&gnu_300, "gnu 300"),
        (&pax_101, "pax 101"),
        (&pax_300, "pax 300"),
    ] {
        assert!(path.len() > 100);
        assert!(path.len() > 255 || path.len() < 200);
        assert_eq!(fs::read_to_string(sandbox.at(path)).unwrap(), content);
    }
    assert!(!sandbox.at("short").exists());
    assert_eq!(
        fs::read_link(sandbox.at("gnu-symlink")).unwrap().to_str(),
        Some(&*gnu_300)
    );
    assert_eq!(
        fs::read_link(sandbox.at("pax-symlink")).unwrap().to_str(),
        Some(&*pax_300)
    );
    assert_eq!(
        lstat(&sandbox.at("gnu-hardlink")).ino(),
        lstat(&sandbox.at(&gnu_300)).ino()
    );
    assert_eq!(
        lstat(&sandbox.at("pax-hardlink")).ino(),
        lstat(&sandbox.at(&pax_300)).ino()
    );
}

#[test]
fn converts_whiteouts_to_overlay_form() {
    let owned = Attrs {
        uid: 5,
        gid: 6,
        ..Attrs::FILE
    };
    let tar = Layer::new()
        .file(".wh.gone", b"")
        .file_with("etc/.wh.passwd", b"", owned)
        .dir("opaque")
        .file("opaque/.wh..wh..opq", b"")
        .file("opaque/kept", b"kept")
        // An opaque marker before (without) its directory entry creates the directory.
        .file("implicit/deeper/.wh..wh..opq", b"")
        .file(".wh..wh.plnk", b"")
        .file(".wh..wh.aufs", b"")
        .bytes();
    let sandbox = Sandbox::new();
    sandbox.unpack(&tar).unwrap();
    for (path, uid) in [("gone", 0), ("etc/passwd", 5)] {
        let meta = lstat(&sandbox.at(path));
        assert!(meta.file_type().is_char_device(), "{path}");
        assert_eq!(meta.rdev(), 0, "{path}");
        assert_eq!(meta.mode() & 0o7777, 0, "{path}");
        assert_eq!(meta.uid(), uid, "{path}");
    }
    for dir in ["opaque", "implicit/deeper"] {
        assert_eq!(
            xattr(&sandbox.at(dir), "trusted.overlay.opaque").as_deref(),
            Some(&b"y"[..])
        );
    }
    assert_eq!(
        xattr(&sandbox.at("implicit"), "trusted.overlay.opaque"),
        None
    );
    assert_eq!(fs::read(sandbox.at("opaque/kept")).unwrap(), b"kept");
    let mut names: Vec<_> = fs::read_dir(sandbox.dest())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["etc", "gone", "implicit", "opaque"]);
}

#[test]
fn sets_directory_times_after_their_children_are_written() {
    let old = Attrs {
        mtime: 1_000_000_000,
        ..Attrs::DIR
    };
    let tar = Layer::new()
        .dir_with("a", old)
        .dir_with("a/b", old)
        .file("a/b/c", b"c")
        .file("a/d", b"d")
        // Listed again with other metadata: the last entry wins, children are kept.
        .dir_with(
            "a",
            Attrs {
                mode: 0o700,
                uid: 9,
                mtime: 1_100_000_000,
                ..old
            },
        )
        .bytes();
    let sandbox = Sandbox::new();
    sandbox.unpack(&tar).unwrap();
    let a = lstat(&sandbox.at("a"));
    assert_eq!(
        (a.mtime(), a.mode() & 0o7777, a.uid()),
        (1_100_000_000, 0o700, 9)
    );
    assert_eq!(lstat(&sandbox.at("a/b")).mtime(), 1_000_000_000);
    assert!(sandbox.at("a/b/c").is_file());
}

#[test]
fn ignores_the_root_entry_and_pax_global_headers() {
    let mut layer = Layer::new();
    layer.dir_with(
        "./",
        Attrs {
            mode: 0o700,
            uid: 42,
            ..Attrs::DIR
        },
    );
    let mut global = tar::Header::new_ustar();
    global.set_entry_type(EntryType::XGlobalHeader);
    let record = b"22 comment=git-archive\n";
    global.set_size(record.len() as u64);
    global.set_path("pax_global_header").unwrap();
    global.set_cksum();
    layer.0.append(&global, &record[..]).unwrap();
    layer.file("./f", b"f");
    let sandbox = Sandbox::new();
    let before = lstat(&sandbox.dest());
    let stats = sandbox.unpack(&layer.bytes()).unwrap();
    assert_eq!(stats.entries, 3);
    let after = lstat(&sandbox.dest());
    assert_eq!((after.mode(), after.uid()), (before.mode(), before.uid()));
    assert!(!sandbox.at("pax_global_header").exists());
    assert!(sandbox.at("f").is_file());
}
