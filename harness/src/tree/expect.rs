//! The tree an image's layers should produce once applied in order.
//!
//! Follows the OCI image spec's changeset rules (`layer.md`): entries add or replace paths
//! (a directory over a directory merges, anything else replaces, children included); a whiteout
//! removes a path of the *lower* layers and an opaque marker everything lower layers have below a
//! directory, never what the same layer adds; missing parents appear as 0755 root-owned
//! directories, as containerd's applier creates them.

use std::collections::BTreeMap;

use super::{Error, Node, NodeKind, Result, Tree};
use crate::image::{Content, Digest, Entry, Layer, Meta, clean_path};

/// Nodes with the index of the layer that last wrote them.
struct Builder {
    nodes: BTreeMap<String, (Node, usize)>,
    next_inode: u64,
}

impl Tree {
    /// The tree `layers` produce, applied bottom to top.
    pub fn from_layers(layers: &[Layer]) -> Result<Tree> {
        let mut builder = Builder {
            nodes: BTreeMap::new(),
            next_inode: 0,
        };
        for (index, layer) in layers.iter().enumerate() {
            for entry in &layer.entries {
                builder.apply(index, entry)?;
            }
        }
        Ok(Tree {
            nodes: builder
                .nodes
                .into_iter()
                .map(|(path, (node, _))| (path, node))
                .collect(),
        })
    }
}

impl Builder {
    fn apply(&mut self, layer: usize, entry: &Entry) -> Result<()> {
        let clean = |path: &str| clean_path(path).map_err(|source| Error::Entry { layer, source });
        match entry {
            Entry::Whiteout { path } => {
                let path = clean(path)?;
                let mut paths = self.below(&path);
                paths.push(path);
                self.remove_lower(layer, paths);
            }
            Entry::Opaque { dir } if dir.trim_matches('/').is_empty() => {
                let all = self.nodes.keys().cloned().collect();
                self.remove_lower(layer, all);
            }
            Entry::Opaque { dir } => {
                let below = self.below(&clean(dir)?);
                self.remove_lower(layer, below);
            }
            Entry::Hardlink { path, target } => {
                let (path, target) = (clean(path)?, clean(target)?);
                let node = match self.nodes.get(&target) {
                    Some((node, _)) if node.kind != NodeKind::Dir => node.clone(),
                    _ => {
                        return Err(Error::HardlinkTarget {
                            layer,
                            path,
                            target,
                        });
                    }
                };
                self.insert(layer, path, node);
            }
            Entry::File {
                path,
                content,
                meta,
            } => {
                let (sha256, size) = content_digest(content, path)?;
                let node = self.node(NodeKind::File { size, sha256 }, meta);
                self.insert(layer, clean(path)?, node);
            }
            Entry::Dir { path, meta } => {
                let node = self.node(NodeKind::Dir, meta);
                self.insert(layer, clean(path)?, node);
            }
            Entry::Symlink { path, target, meta } => {
                let kind = NodeKind::Symlink {
                    target: target.clone(),
                };
                let node = self.node(kind, meta);
                self.insert(layer, clean(path)?, node);
            }
            Entry::Fifo { path, meta } => {
                let node = self.node(NodeKind::Fifo, meta);
                self.insert(layer, clean(path)?, node);
            }
            Entry::CharDevice {
                path,
                major,
                minor,
                meta,
            } => {
                let kind = NodeKind::CharDevice {
                    major: *major,
                    minor: *minor,
                };
                let node = self.node(kind, meta);
                self.insert(layer, clean(path)?, node);
            }
        }
        Ok(())
    }

    /// A node of a fresh inode.
    fn node(&mut self, kind: NodeKind, meta: &Meta) -> Node {
        self.next_inode += 1;
        Node {
            mode: if matches!(kind, NodeKind::Symlink { .. }) {
                0o777
            } else {
                meta.mode & 0o7777
            },
            kind,
            uid: meta.uid,
            gid: meta.gid,
            mtime: (meta.mtime as i64, 0),
            xattrs: meta.xattrs.clone(),
            inode: self.next_inode,
        }
    }

    /// Puts `node` at `path`: merges directory over directory, otherwise replaces the path and
    /// everything below it; creates missing parents.
    fn insert(&mut self, layer: usize, path: String, node: Node) {
        let mut end = 0;
        while let Some(slash) = path[end..].find('/') {
            let parent = &path[..end + slash];
            let is_dir = matches!(self.nodes.get(parent), Some((n, _)) if n.kind == NodeKind::Dir);
            if !is_dir {
                self.remove_tree(parent);
                let implicit = self.node(NodeKind::Dir, &Meta::with_mode(0o755));
                self.nodes.insert(parent.to_owned(), (implicit, layer));
            }
            end += slash + 1;
        }
        let merge = node.kind == NodeKind::Dir
            && matches!(self.nodes.get(&path), Some((n, _)) if n.kind == NodeKind::Dir);
        if !merge {
            self.remove_tree(&path);
        }
        self.nodes.insert(path, (node, layer));
    }

    /// Removes `path` and everything below it.
    fn remove_tree(&mut self, path: &str) {
        for p in self.below(path) {
            self.nodes.remove(&p);
        }
        self.nodes.remove(path);
    }

    /// The paths strictly below `dir`: in sorted order they are the contiguous run of keys
    /// starting with `dir/`, so this costs a range scan, not a pass over the whole tree.
    fn below(&self, dir: &str) -> Vec<String> {
        let prefix = format!("{dir}/");
        self.nodes
            .range(prefix.clone()..)
            .take_while(|(p, _)| p.starts_with(&prefix))
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// Removes those of `paths` that layers below `layer` wrote.
    fn remove_lower(&mut self, layer: usize, paths: Vec<String>) {
        for path in paths {
            if matches!(self.nodes.get(&path), Some((_, from)) if *from < layer) {
                self.nodes.remove(&path);
            }
        }
    }
}

fn content_digest(content: &Content, path: &str) -> Result<(Digest, u64)> {
    Digest::of_reader(content.reader()).map_err(|source| Error::Io {
        path: path.into(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::Compression;

    fn paths(tree: &Tree) -> Vec<&str> {
        tree.nodes.keys().map(String::as_str).collect()
    }

    #[test]
    fn whiteouts_and_opaque_hide_only_lower_layers() {
        let lower = Layer::new(
            vec![
                Entry::dir("a"),
                Entry::file("a/x", "1"),
                Entry::file("a/y", "2"),
                Entry::dir("b"),
                Entry::file("b/old", "3"),
                Entry::file("top", "4"),
            ],
            Compression::None,
        );
        let upper = Layer::new(
            vec![
                Entry::whiteout("a/x"),
                Entry::file("b/new", "5"),
                Entry::opaque("b"),
                Entry::whiteout("top"),
                Entry::file("c/implicit", "6"),
            ],
            Compression::None,
        );
        let tree = Tree::from_layers(&[lower, upper]).unwrap();
        assert_eq!(paths(&tree), ["a", "a/y", "b", "b/new", "c", "c/implicit"]);
        assert_eq!(tree.nodes["c"].mode, 0o755);
    }

    #[test]
    fn hardlinks_share_an_inode_and_replacing_a_dir_drops_its_children() {
        let lower = Layer::new(
            vec![
                Entry::dir("d"),
                Entry::file("d/f", "x"),
                Entry::file("f", "y"),
                Entry::hardlink("g", "f"),
            ],
            Compression::None,
        );
        let upper = Layer::new(vec![Entry::file("d", "now a file")], Compression::None);
        let tree = Tree::from_layers(&[lower, upper]).unwrap();
        assert_eq!(paths(&tree), ["d", "f", "g"]);
        assert_eq!(tree.nodes["f"].inode, tree.nodes["g"].inode);
        assert!(matches!(
            tree.nodes["d"].kind,
            NodeKind::File { size: 10, .. }
        ));
    }

    #[test]
    fn hardlink_to_missing_target_fails() {
        let layer = Layer::new(vec![Entry::hardlink("a", "nope")], Compression::None);
        assert!(matches!(
            Tree::from_layers(&[layer]),
            Err(Error::HardlinkTarget { .. })
        ));
    }
}
