//! Reading a directory tree from disk, without following symlinks.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::{Error, Node, NodeKind, Result, Tree};
use crate::image::Digest;

impl Tree {
    /// Reads every path below `root`: type, content hash, mode, owner, mtime, xattrs, device
    /// numbers and inode identity. Symlinks are read, never followed.
    pub fn scan(root: &Path) -> Result<Tree> {
        let mut tree = Tree::default();
        // (st_dev, st_ino) → identity number, so hard links share one.
        let mut inodes: HashMap<(u64, u64), u64> = HashMap::new();
        let mut pending: Vec<(PathBuf, String)> = vec![(root.to_path_buf(), String::new())];
        while let Some((dir, prefix)) = pending.pop() {
            let entries = fs::read_dir(&dir).map_err(|source| Error::Io {
                path: dir.clone(),
                source,
            })?;
            for entry in entries {
                let entry = entry.map_err(|source| Error::Io {
                    path: dir.clone(),
                    source,
                })?;
                let path = entry.path();
                let name = entry.file_name().to_string_lossy().into_owned();
                let relative = if prefix.is_empty() {
                    name
                } else {
                    format!("{prefix}/{name}")
                };
                let node = read_node(&path, &mut inodes)?;
                if node.kind == NodeKind::Dir {
                    pending.push((path, relative.clone()));
                }
                tree.nodes.insert(relative, node);
            }
        }
        Ok(tree)
    }
}

fn read_node(path: &Path, inodes: &mut HashMap<(u64, u64), u64>) -> Result<Node> {
    let io_error = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = fs::symlink_metadata(path).map_err(io_error)?;
    let file_type = meta.file_type();
    let device = || {
        let rdev = meta.rdev();
        (rustix::fs::major(rdev), rustix::fs::minor(rdev))
    };
    let kind = if file_type.is_dir() {
        NodeKind::Dir
    } else if file_type.is_file() {
        let file = File::open(path).map_err(io_error)?;
        let (sha256, size) = Digest::of_reader(file).map_err(io_error)?;
        NodeKind::File { size, sha256 }
    } else if file_type.is_symlink() {
        let target = fs::read_link(path).map_err(io_error)?;
        NodeKind::Symlink {
            target: target.to_string_lossy().into_owned(),
        }
    } else if file_type.is_fifo() {
        NodeKind::Fifo
    } else if file_type.is_char_device() {
        let (major, minor) = device();
        NodeKind::CharDevice { major, minor }
    } else if file_type.is_block_device() {
        let (major, minor) = device();
        NodeKind::BlockDevice { major, minor }
    } else {
        NodeKind::Socket
    };
    let next = inodes.len() as u64;
    let inode = *inodes.entry((meta.dev(), meta.ino())).or_insert(next);
    Ok(Node {
        kind,
        mode: meta.mode() & 0o7777,
        uid: u64::from(meta.uid()),
        gid: u64::from(meta.gid()),
        mtime: (meta.mtime(), meta.mtime_nsec() as u32),
        xattrs: read_xattrs(path).map_err(io_error)?,
        inode,
    })
}

/// All extended attributes of `path` itself (not of a symlink's target).
fn read_xattrs(path: &Path) -> std::io::Result<BTreeMap<String, Vec<u8>>> {
    let mut xattrs = BTreeMap::new();
    let names = match rustix::fs::llistxattr_query(path) {
        Ok(0) => return Ok(xattrs),
        Ok(len) => {
            let mut buf = vec![0u8; len];
            let len = rustix::fs::llistxattr(path, &mut buf[..])?;
            buf.truncate(len);
            buf
        }
        // File systems without xattrs (some tmpfs, proc) have none to compare.
        Err(rustix::io::Errno::NOTSUP) => return Ok(xattrs),
        Err(e) => return Err(e.into()),
    };
    for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let name = String::from_utf8_lossy(name).into_owned();
        let value = match rustix::fs::lgetxattr_query(path, name.as_str()) {
            Ok(0) => Vec::new(),
            Ok(len) => {
                let mut value = vec![0u8; len];
                let len = rustix::fs::lgetxattr(path, name.as_str(), &mut value[..])?;
                value.truncate(len);
                value
            }
            // Removed between list and get, or unreadable for us (some security.* names).
            Err(rustix::io::Errno::NODATA) => continue,
            Err(e) => return Err(e.into()),
        };
        xattrs.insert(name, value);
    }
    Ok(xattrs)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{PermissionsExt, symlink};

    use rustix::fs::{AtFlags, CWD, FileType, Mode, Timespec, Timestamps};

    use super::*;
    use crate::tree::{Difference, Field, compare};

    fn set_mtime(path: &Path, secs: i64) {
        let time = Timespec {
            tv_sec: secs,
            tv_nsec: 0,
        };
        let times = Timestamps {
            last_access: time,
            last_modification: time,
        };
        rustix::fs::utimensat(CWD, path, &times, AtFlags::SYMLINK_NOFOLLOW).unwrap();
    }

    /// A small tree with every node type; needs root for the device node and chown.
    fn populate(root: &Path) {
        fs::create_dir(root.join("d")).unwrap();
        fs::set_permissions(root.join("d"), fs::Permissions::from_mode(0o750)).unwrap();
        fs::write(root.join("d/f"), "content").unwrap();
        // chown clears setuid, so it goes first (as in containerd's applier).
        std::os::unix::fs::lchown(root.join("d/f"), Some(1000), Some(50)).unwrap();
        fs::set_permissions(root.join("d/f"), fs::Permissions::from_mode(0o4755)).unwrap();
        rustix::fs::lsetxattr(
            root.join("d/f"),
            "user.k",
            b"v",
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
        fs::hard_link(root.join("d/f"), root.join("d/h")).unwrap();
        fs::write(root.join("plain"), "plain").unwrap();
        symlink("d/f", root.join("l")).unwrap();
        rustix::fs::mknodat(
            CWD,
            root.join("p"),
            FileType::Fifo,
            Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        let dev = rustix::fs::makedev(1, 3);
        rustix::fs::mknodat(
            CWD,
            root.join("c"),
            FileType::CharacterDevice,
            Mode::from_raw_mode(0o666),
            dev,
        )
        .unwrap();
        for name in ["d/f", "plain", "l", "p", "c"] {
            set_mtime(&root.join(name), 1_700_000_000);
        }
    }

    fn fields(differences: &[Difference]) -> Vec<(String, String)> {
        differences
            .iter()
            .map(|d| match d {
                Difference::Changed { path, field, .. } => (path.clone(), field.to_string()),
                Difference::OnlyLeft { path, .. } => (path.clone(), "only left".into()),
                Difference::OnlyRight { path, .. } => (path.clone(), "only right".into()),
            })
            .collect()
    }

    #[test]
    fn scan_reads_every_node_type_needs_root() {
        let dir = tempfile::tempdir().unwrap();
        populate(dir.path());
        let tree = Tree::scan(dir.path()).unwrap();
        let f = &tree.nodes["d/f"];
        assert_eq!(
            (f.mode, f.uid, f.gid, f.mtime),
            (0o4755, 1000, 50, (1_700_000_000, 0))
        );
        assert_eq!(f.xattrs["user.k"], b"v");
        assert_eq!(f.inode, tree.nodes["d/h"].inode);
        assert_ne!(f.inode, tree.nodes["plain"].inode);
        assert_eq!(tree.nodes["d"].mode, 0o750);
        assert_eq!(
            tree.nodes["l"].kind,
            NodeKind::Symlink {
                target: "d/f".into()
            }
        );
        assert_eq!(tree.nodes["p"].kind, NodeKind::Fifo);
        assert_eq!(
            tree.nodes["c"].kind,
            NodeKind::CharDevice { major: 1, minor: 3 }
        );
    }

    #[test]
    fn each_planted_difference_is_reported_needs_root() {
        /// Name, how to change the right tree, the (path, field) differences expected.
        type Case = (&'static str, fn(&Path), Vec<(&'static str, &'static str)>);
        let cases: Vec<Case> = vec![
            ("nothing", |_| {}, vec![]),
            (
                "content",
                |r| fs::write(r.join("plain"), "PLAIN").unwrap(),
                vec![("plain", "content sha256"), ("plain", "mtime")],
            ),
            (
                "setuid bit",
                |r| fs::set_permissions(r.join("d/f"), fs::Permissions::from_mode(0o755)).unwrap(),
                vec![("d/f", "mode"), ("d/h", "mode")],
            ),
            (
                "owner",
                |r| std::os::unix::fs::lchown(r.join("l"), Some(7), None).unwrap(),
                vec![("l", "uid")],
            ),
            (
                "symlink target",
                |r| {
                    fs::remove_file(r.join("l")).unwrap();
                    symlink("d/h", r.join("l")).unwrap();
                    set_mtime(&r.join("l"), 1_700_000_000);
                },
                vec![("l", "symlink target")],
            ),
            (
                "xattr",
                |r| {
                    rustix::fs::lsetxattr(
                        r.join("d"),
                        "user.new",
                        b"1",
                        rustix::fs::XattrFlags::empty(),
                    )
                    .unwrap()
                },
                vec![("d", "xattr user.new")],
            ),
            (
                "ignored xattrs",
                |r| {
                    let flags = rustix::fs::XattrFlags::empty();
                    rustix::fs::lsetxattr(r.join("d"), "trusted.overlay.opaque", b"y", flags)
                        .unwrap();
                    rustix::fs::lsetxattr(r.join("plain"), "security.test", b"y", flags).unwrap();
                },
                vec![],
            ),
            (
                "broken hard link",
                |r| {
                    fs::remove_file(r.join("d/h")).unwrap();
                    fs::copy(r.join("d/f"), r.join("d/h")).unwrap();
                    std::os::unix::fs::lchown(r.join("d/h"), Some(1000), Some(50)).unwrap();
                    fs::set_permissions(r.join("d/h"), fs::Permissions::from_mode(0o4755)).unwrap();
                    rustix::fs::lsetxattr(
                        r.join("d/h"),
                        "user.k",
                        b"v",
                        rustix::fs::XattrFlags::empty(),
                    )
                    .unwrap();
                    set_mtime(&r.join("d/h"), 1_700_000_000);
                },
                vec![("d/f", "hard links"), ("d/h", "hard links")],
            ),
            (
                "device numbers",
                |r| {
                    fs::remove_file(r.join("c")).unwrap();
                    let dev = rustix::fs::makedev(1, 5);
                    rustix::fs::mknodat(
                        CWD,
                        r.join("c"),
                        FileType::CharacterDevice,
                        Mode::from_raw_mode(0o666),
                        dev,
                    )
                    .unwrap();
                    set_mtime(&r.join("c"), 1_700_000_000);
                },
                vec![("c", "device")],
            ),
            (
                "type",
                |r| {
                    fs::remove_file(r.join("p")).unwrap();
                    fs::create_dir(r.join("p")).unwrap();
                },
                vec![("p", "type")],
            ),
            (
                "added and removed directories",
                |r| {
                    fs::create_dir_all(r.join("new/deeper")).unwrap();
                    fs::remove_dir_all(r.join("d")).unwrap();
                },
                vec![("d", "only left"), ("new", "only right")],
            ),
        ];
        for (name, plant, want) in cases {
            let (left, right) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
            populate(left.path());
            populate(right.path());
            plant(right.path());
            let got = compare(left.path(), right.path()).unwrap();
            let want: Vec<(String, String)> = want
                .iter()
                .map(|(p, f)| (p.to_string(), f.to_string()))
                .collect();
            let printed: Vec<String> = got.iter().map(ToString::to_string).collect();
            assert_eq!(fields(&got), want, "case {name}: {printed:#?}");
        }
    }

    #[test]
    fn differences_read_well() {
        let difference = Difference::Changed {
            path: "usr/bin/su".into(),
            field: Field::Mode,
            left: "4755".into(),
            right: "0755".into(),
        };
        assert_eq!(
            difference.to_string(),
            "usr/bin/su: mode differs: left 4755, right 0755"
        );
    }
}
