//! The io_uring writer where it differs from the `std::fs` one: batches that fill up, files too
//! large for a batch between batched ones, a path written twice in one batch, and entries that
//! depend on batched files. [`Sandbox::unpack`] runs both writers and compares their trees; these
//! layers make the batch boundaries happen.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

use tar::EntryType;

use super::{Attrs, Layer, Sandbox, lstat, xattr};
use crate::pull::unpack::{Error, Options, io_uring_available, unpack};

#[test]
fn io_uring_is_available_here_needs_io_uring() {
    // Without it every comparison of the two writers compares `std::fs` with itself.
    assert!(io_uring_available(), "io_uring is blocked on this machine");
}

#[test]
fn batches_fill_and_flush_around_dependent_entries() {
    let mut layer = Layer::new();
    for i in 0..150 {
        let attrs = Attrs {
            mode: 0o4755,
            uid: 1000 + i,
            gid: 2000,
            mtime: 1_500_000_000 + i,
        };
        let content = vec![i as u8; 100 + i as usize * 37];
        layer.file_with(&format!("d{}/f{i}", i % 7), &content, attrs);
    }
    // Large: three fill a batch's bytes, one is streamed past the ring.
    for i in 0..3 {
        layer.file(&format!("big/b{i}"), &vec![b'b'; 900 * 1024 + i]);
    }
    layer.file("big/streamed", &vec![b's'; 3 << 20]);
    layer
        .file("twice", b"first")
        .file("twice", b"second, longer")
        .file("linked", b"link me")
        .hardlink("link", "linked")
        .file("d0/after-link", b"x")
        .file("replaced-by-dir", b"gone")
        .dir("replaced-by-dir")
        .file("replaced-by-dir/in", b"in")
        .file("empty", b"")
        .pax(
            &[("SCHILY.xattr.user.origin", b"layer")],
            EntryType::Regular,
            "xattr",
            b"with an xattr",
        )
        .file("wh-target", b"hidden")
        .file(".wh.wh-target", b"");
    let sandbox = Sandbox::new();
    let stats = sandbox.unpack(&layer.bytes()).unwrap();
    assert_eq!(stats.files, 150 + 4 + 9);
    let f = lstat(&sandbox.at("d3/f10"));
    assert_eq!(
        (f.mode() & 0o7777, f.uid(), f.mtime()),
        (0o4755, 1010, 1_500_000_010)
    );
    assert_eq!(fs::read(sandbox.at("twice")).unwrap(), b"second, longer");
    assert_eq!(
        lstat(&sandbox.at("link")).ino(),
        lstat(&sandbox.at("linked")).ino()
    );
    assert_eq!(fs::read(sandbox.at("big/streamed")).unwrap().len(), 3 << 20);
    assert!(lstat(&sandbox.at("replaced-by-dir")).is_dir());
    assert!(lstat(&sandbox.at("wh-target")).file_type().is_char_device());
    assert_eq!(
        xattr(&sandbox.at("xattr"), "user.origin").as_deref(),
        Some(&b"layer"[..])
    );
}

#[test]
fn an_error_after_batched_files_leaves_them_written() {
    // The second file's content is cut short: the first, batched, must still be complete when
    // the error comes back, as with `std::fs`.
    let tar = Layer::new()
        .file("first", b"complete")
        .file("big", &[7; 4096])
        .bytes();
    let cut = &tar[..512 + 512 + 512 + 1000];
    let sandbox = Sandbox::new();
    let options = Options {
        io_uring: true,
        ..Options::default()
    };
    let error = unpack(cut, &sandbox.dest(), &options).unwrap_err();
    assert!(matches!(error, Error::Truncated { .. }), "{error}");
    assert_eq!(fs::read(sandbox.at("first")).unwrap(), b"complete");
    assert_eq!(lstat(&sandbox.at("first")).mtime(), super::MTIME as i64);
}
