//! Differences between two trees, in words a person can act on.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::{Node, NodeKind, Tree};

/// The attribute of a path that differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    /// File type (file, dir, symlink, ...); nothing else is compared then.
    Kind,
    /// Size of a regular file.
    Size,
    /// SHA-256 of a regular file's content.
    Content,
    /// Permission bits including setuid, setgid and sticky (not compared for symlinks).
    Mode,
    /// Owner user id.
    Uid,
    /// Owner group id.
    Gid,
    /// Symlink target.
    Target,
    /// One extended attribute, by name.
    Xattr(String),
    /// Modification time (not compared for directories, whose mtime changes as they fill).
    Mtime,
    /// Device major and minor numbers.
    Device,
    /// The other paths that are hard links to the same inode.
    Hardlinks,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Field::Kind => f.write_str("type"),
            Field::Size => f.write_str("size"),
            Field::Content => f.write_str("content sha256"),
            Field::Mode => f.write_str("mode"),
            Field::Uid => f.write_str("uid"),
            Field::Gid => f.write_str("gid"),
            Field::Target => f.write_str("symlink target"),
            Field::Xattr(name) => write!(f, "xattr {name}"),
            Field::Mtime => f.write_str("mtime"),
            Field::Device => f.write_str("device"),
            Field::Hardlinks => f.write_str("hard links"),
        }
    }
}

/// One difference between a left and a right tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Difference {
    /// The path exists only on the left (what is below it is not listed again).
    OnlyLeft {
        /// The path.
        path: String,
        /// Its type on the left.
        kind: &'static str,
    },
    /// The path exists only on the right (what is below it is not listed again).
    OnlyRight {
        /// The path.
        path: String,
        /// Its type on the right.
        kind: &'static str,
    },
    /// The path exists on both sides with one attribute different.
    Changed {
        /// The path.
        path: String,
        /// The attribute.
        field: Field,
        /// Its value on the left, printed.
        left: String,
        /// Its value on the right, printed.
        right: String,
    },
}

impl Difference {
    /// The path concerned.
    pub fn path(&self) -> &str {
        match self {
            Difference::OnlyLeft { path, .. }
            | Difference::OnlyRight { path, .. }
            | Difference::Changed { path, .. } => path,
        }
    }
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Difference::OnlyLeft { path, kind } => write!(f, "{path}: {kind} only on the left"),
            Difference::OnlyRight { path, kind } => write!(f, "{path}: {kind} only on the right"),
            Difference::Changed {
                path,
                field,
                left,
                right,
            } => write!(f, "{path}: {field} differs: left {left}, right {right}"),
        }
    }
}

/// Xattrs the comparison ignores: overlayfs' own (`trusted.overlay.*`: opaque markers, redirects,
/// origins) and `security.*` (SELinux labels and capabilities the host may add on its own).
fn compared_xattr(name: &str) -> bool {
    !name.starts_with("trusted.overlay.") && !name.starts_with("security.")
}

impl Tree {
    /// Every difference between `self` (left) and `right`, in path order; empty when equal.
    pub fn diff(&self, right: &Tree) -> Vec<Difference> {
        let left_links = link_peers(self);
        let right_links = link_peers(right);
        let mut out = Vec::new();
        // A path missing on one side is reported once, not with everything below it.
        let mut skipped: Option<String> = None;
        let paths: BTreeSet<&String> = self.nodes.keys().chain(right.nodes.keys()).collect();
        for path in paths {
            if let Some(dir) = &skipped {
                if path.starts_with(dir.as_str()) && path.as_bytes().get(dir.len()) == Some(&b'/') {
                    continue;
                }
                skipped = None;
            }
            match (self.nodes.get(path), right.nodes.get(path)) {
                (Some(l), None) => {
                    out.push(Difference::OnlyLeft {
                        path: path.clone(),
                        kind: l.kind.name(),
                    });
                    skipped = Some(path.clone());
                }
                (None, Some(r)) => {
                    out.push(Difference::OnlyRight {
                        path: path.clone(),
                        kind: r.kind.name(),
                    });
                    skipped = Some(path.clone());
                }
                (Some(l), Some(r)) => {
                    let links = (
                        left_links.get(path.as_str()),
                        right_links.get(path.as_str()),
                    );
                    compare_nodes(path, l, r, links, &mut out);
                }
                (None, None) => {}
            }
        }
        out
    }
}

/// For each non-directory with hard links, the other paths sharing its inode.
fn link_peers(tree: &Tree) -> BTreeMap<&str, Vec<&str>> {
    let mut groups: BTreeMap<u64, Vec<&str>> = BTreeMap::new();
    for (path, node) in &tree.nodes {
        if node.kind != NodeKind::Dir {
            groups.entry(node.inode).or_default().push(path);
        }
    }
    let mut peers = BTreeMap::new();
    for group in groups.values().filter(|g| g.len() > 1) {
        for path in group {
            peers.insert(*path, group.iter().copied().filter(|p| p != path).collect());
        }
    }
    peers
}

fn compare_nodes(
    path: &str,
    l: &Node,
    r: &Node,
    links: (Option<&Vec<&str>>, Option<&Vec<&str>>),
    out: &mut Vec<Difference>,
) {
    let mut changed = |field: Field, left: String, right: String| {
        out.push(Difference::Changed {
            path: path.to_owned(),
            field,
            left,
            right,
        });
    };
    if std::mem::discriminant(&l.kind) != std::mem::discriminant(&r.kind) {
        changed(Field::Kind, l.kind.name().into(), r.kind.name().into());
        return;
    }
    match (&l.kind, &r.kind) {
        (
            NodeKind::File {
                size: ls,
                sha256: lh,
            },
            NodeKind::File {
                size: rs,
                sha256: rh,
            },
        ) => {
            if ls != rs {
                changed(Field::Size, ls.to_string(), rs.to_string());
            } else if lh != rh {
                changed(Field::Content, lh.to_string(), rh.to_string());
            }
        }
        (NodeKind::Symlink { target: lt }, NodeKind::Symlink { target: rt }) if lt != rt => {
            changed(Field::Target, format!("{lt:?}"), format!("{rt:?}"));
        }
        (
            NodeKind::CharDevice {
                major: la,
                minor: li,
            }
            | NodeKind::BlockDevice {
                major: la,
                minor: li,
            },
            NodeKind::CharDevice {
                major: ra,
                minor: ri,
            }
            | NodeKind::BlockDevice {
                major: ra,
                minor: ri,
            },
        ) if (la, li) != (ra, ri) => {
            changed(Field::Device, format!("{la}:{li}"), format!("{ra}:{ri}"));
        }
        _ => {}
    }
    let is_symlink = matches!(l.kind, NodeKind::Symlink { .. });
    if !is_symlink && l.mode != r.mode {
        changed(
            Field::Mode,
            format!("{:04o}", l.mode),
            format!("{:04o}", r.mode),
        );
    }
    if l.uid != r.uid {
        changed(Field::Uid, l.uid.to_string(), r.uid.to_string());
    }
    if l.gid != r.gid {
        changed(Field::Gid, l.gid.to_string(), r.gid.to_string());
    }
    let names: BTreeSet<&String> = l.xattrs.keys().chain(r.xattrs.keys()).collect();
    for name in names.into_iter().filter(|n| compared_xattr(n)) {
        let (lv, rv) = (l.xattrs.get(name), r.xattrs.get(name));
        if lv != rv {
            changed(Field::Xattr(name.clone()), show_xattr(lv), show_xattr(rv));
        }
    }
    if l.kind != NodeKind::Dir && l.mtime != r.mtime {
        changed(Field::Mtime, show_time(l.mtime), show_time(r.mtime));
    }
    let (ll, rl) = links;
    if ll != rl {
        let show = |peers: Option<&Vec<&str>>| match peers {
            Some(peers) => format!("linked with {}", peers.join(", ")),
            None => "not linked".to_owned(),
        };
        changed(Field::Hardlinks, show(ll), show(rl));
    }
}

fn show_xattr(value: Option<&Vec<u8>>) -> String {
    match value {
        None => "unset".into(),
        Some(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) => format!("{text:?}"),
            Err(_) => format!("0x{}", hex::encode(bytes)),
        },
    }
}

fn show_time((secs, nanos): (i64, u32)) -> String {
    if nanos == 0 {
        secs.to_string()
    } else {
        format!("{secs}.{nanos:09}")
    }
}
