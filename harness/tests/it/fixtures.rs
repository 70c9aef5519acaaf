//! Images used by several tests.

use hoist_harness::image::{Compression, Content, Entry, Image, Layer, MediaTypes, layout};
use hoist_harness::skopeo;

use crate::services;

/// Writes `image` as a layout and pushes it to the test registry as `hoist-it/NAME:v1`;
/// returns what was written and the pushed reference.
pub fn push(image: &Image, name: &str) -> (layout::Written, String) {
    let dir = tempfile::tempdir().unwrap();
    let written = layout::write(image, dir.path(), "it", &layout::Options::default()).unwrap();
    let repository = format!("{}/hoist-it/{name}", services::registry());
    let pushed = skopeo::push(
        &written,
        &repository,
        "v1",
        &[],
        &skopeo::Options::default(),
    )
    .unwrap();
    (written, pushed.references[0].clone())
}

/// Two layers with every entry kind, odd modes, owners, xattrs, long names, links, whiteouts and
/// an opaque directory, so one mount exercises everything an unpacker must get right.
pub fn every_kind(compression: Compression, media_types: MediaTypes) -> Image {
    let long_dir = format!("usr/share/{}", "deep-directory-name/".repeat(6))
        .trim_end_matches('/')
        .to_owned();
    let long_file = format!("{long_dir}/{}.txt", "a-file-with-a-long-name".repeat(3));
    let long_target = format!("/{}/target", "x".repeat(140));
    let lower = vec![
        Entry::dir("etc"),
        Entry::file("etc/hosts", "127.0.0.1 localhost\n").with_mtime(1_600_000_000),
        Entry::file("etc/empty", ""),
        Entry::dir("usr"),
        Entry::dir("usr/bin"),
        Entry::file("usr/bin/suid", "#!/bin/sh\necho suid\n").with_mode(0o4755),
        Entry::file("usr/bin/sgid", "sgid")
            .with_mode(0o2711)
            .with_owner(0, 50),
        Entry::hardlink("usr/bin/suid-again", "usr/bin/suid"),
        Entry::dir("usr/lib"),
        Entry::symlink("usr/lib/relative", "../bin/suid").with_mtime(1_500_000_000),
        Entry::symlink("usr/lib/long-target", long_target),
        Entry::symlink("usr/lib/dangling", "/nowhere"),
        Entry::dir("usr/share"),
        Entry::dir(long_dir.clone()),
        Entry::file(
            long_file.clone(),
            Content::Generated {
                seed: 11,
                size: 300 * 1024 + 7,
            },
        ),
        Entry::hardlink(
            format!("{long_dir}/{}", "hard-link-with-long-name-".repeat(5)),
            long_file,
        ),
        Entry::dir("tmp").with_mode(0o1777),
        Entry::dir("home"),
        Entry::dir("home/user")
            .with_mode(0o700)
            .with_owner(1000, 1000)
            .with_xattr("user.dir", "d"),
        Entry::file("home/user/notes", "private")
            .with_mode(0o600)
            .with_owner(1000, 1000)
            .with_xattr("user.note", "hello")
            .with_xattr("user.bin", vec![0u8, 159, 255]),
        Entry::dir("run"),
        Entry::fifo("run/pipe").with_mode(0o620),
        Entry::dir("dev"),
        Entry::char_device("dev/null2", 1, 3),
        Entry::char_device("dev/tty9", 4, 9)
            .with_mode(0o620)
            .with_owner(0, 5),
        Entry::dir("old"),
        Entry::file("old/file", "to be whited out"),
        Entry::dir("old/dir"),
        Entry::file("old/dir/inner", "gone with its directory"),
        Entry::dir("opq"),
        Entry::file("opq/lower", "hidden by the opaque marker"),
        Entry::dir("opq/sub"),
        Entry::file("opq/sub/x", "also hidden"),
        Entry::file("becomes-dir", "a file, then a directory"),
        Entry::symlink("relink", "first"),
    ];
    let upper = vec![
        Entry::dir("etc").with_mode(0o750),
        Entry::file("etc/hosts", "10.0.0.1 upper\n"),
        Entry::whiteout("old/file"),
        Entry::whiteout("old/dir"),
        Entry::opaque("opq"),
        Entry::file("opq/upper", "kept: same layer as the marker"),
        Entry::dir("becomes-dir"),
        Entry::file("becomes-dir/child", "child"),
        Entry::symlink("relink", "second"),
        Entry::file("new/implicit/parents", "parents made by the applier"),
    ];
    Image::new(vec![
        Layer::new(lower, compression),
        Layer::new(upper, compression),
    ])
    .with_media_types(media_types)
}
