//! `tree::compare` on two real overlay mounts of one image: equal, then each planted difference
//! found. Needs root and the real containerd.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use hoist_harness::image::{Compression, MediaTypes};
use hoist_harness::tree::{self, Difference, Field};

use crate::{fixtures, services};

#[test]
fn compare_two_containerd_mounts_finds_planted_differences() {
    let image = fixtures::every_kind(Compression::Gzip, MediaTypes::Oci);
    let (_written, reference) = fixtures::push(&image, "compare");
    let reference = &reference;
    let ctr = services::ctr();
    ctr.pull(reference, &services::plain_http()).unwrap();

    let (left_dir, right_dir) = (services::mount_dir(), services::mount_dir());
    let left = ctr.mount(reference, left_dir.path()).unwrap();
    let right = ctr.mount_rw(reference, right_dir.path()).unwrap();
    let equal = tree::compare(left.path(), right.path()).unwrap();
    assert!(
        equal.is_empty(),
        "two mounts of one image differ: {equal:#?}"
    );

    // Plant one difference of each kind in the writable mount.
    let r = right.path();
    fs::set_permissions(r.join("usr/bin/sgid"), fs::Permissions::from_mode(0o711)).unwrap();
    fs::write(r.join("etc/empty"), "no longer empty").unwrap();
    rustix::fs::lsetxattr(
        r.join("home/user/notes"),
        "user.note",
        b"changed",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    fs::remove_file(r.join("usr/bin/suid-again")).unwrap();
    fs::copy(r.join("usr/bin/suid"), r.join("usr/bin/suid-again")).unwrap();
    fs::remove_file(r.join("run/pipe")).unwrap();
    fs::write(r.join("planted"), "extra").unwrap();

    let found = tree::compare(left.path(), right.path()).unwrap();
    let summary: Vec<(&str, Option<&Field>)> = found
        .iter()
        .map(|d| match d {
            Difference::Changed { path, field, .. } => (path.as_str(), Some(field)),
            other => (other.path(), None),
        })
        .collect();
    let printed: Vec<String> = found.iter().map(ToString::to_string).collect();
    for want in [
        ("usr/bin/sgid", Some(&Field::Mode)),
        ("etc/empty", Some(&Field::Size)),
        ("home/user/notes", Some(&Field::Xattr("user.note".into()))),
        ("usr/bin/suid", Some(&Field::Hardlinks)),
        ("usr/bin/suid-again", Some(&Field::Hardlinks)),
        ("run/pipe", None),
        ("planted", None),
    ] {
        assert!(
            summary.contains(&want),
            "{want:?} not reported in {printed:#?}"
        );
    }
    assert!(
        found
            .iter()
            .any(|d| matches!(d, Difference::OnlyLeft { path, .. } if path == "run/pipe")),
        "{printed:#?}"
    );
    assert!(
        found
            .iter()
            .any(|d| matches!(d, Difference::OnlyRight { path, .. } if path == "planted")),
        "{printed:#?}"
    );

    left.unmount().unwrap();
    right.unmount().unwrap();
    ctr.remove_image(reference).unwrap();
}
