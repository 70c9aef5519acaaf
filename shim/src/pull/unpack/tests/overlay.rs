//! Property: stacks of unpacked layers, mounted read-only with overlayfs, show the tree a naive
//! in-memory application of the same layers gives. Needs root and overlayfs.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::Layer;
use crate::pull::unpack::{Options, unpack};

/// What one layer does to a path.
#[derive(Debug, Clone)]
enum Op {
    File(Vec<u8>),
    Dir,
    Delete,
    Opaque,
}

/// A node of one layer's own tree, after tar semantics within the layer.
#[derive(Debug, Clone, PartialEq)]
enum LayerNode {
    File(Vec<u8>),
    Dir { opaque: bool, listed: bool },
    Whiteout,
}

/// A node of the merged view.
#[derive(Debug, Clone, PartialEq)]
enum View {
    File(Vec<u8>),
    Dir,
}

fn descendants_of<V>(tree: &BTreeMap<PathBuf, V>, path: &Path) -> Vec<PathBuf> {
    tree.keys()
        .filter(|p| p.starts_with(path) && p.as_path() != path)
        .cloned()
        .collect()
}

/// The layer's own tree: every ancestor of a written path is a directory in the layer.
fn layer_tree(ops: &[(PathBuf, Op)]) -> BTreeMap<PathBuf, LayerNode> {
    let mut tree = BTreeMap::new();
    for (path, op) in ops {
        for ancestor in path
            .ancestors()
            .skip(1)
            .filter(|a| !a.as_os_str().is_empty())
        {
            if !matches!(tree.get(ancestor), Some(LayerNode::Dir { .. })) {
                let implicit = LayerNode::Dir {
                    opaque: false,
                    listed: false,
                };
                tree.insert(ancestor.to_owned(), implicit);
            }
        }
        let node = match (op, tree.get(path)) {
            (Op::File(content), _) => LayerNode::File(content.clone()),
            (Op::Delete, _) => LayerNode::Whiteout,
            (Op::Dir, Some(LayerNode::Dir { opaque, .. })) => LayerNode::Dir {
                opaque: *opaque,
                listed: true,
            },
            (Op::Dir, _) => LayerNode::Dir {
                opaque: false,
                listed: true,
            },
            (Op::Opaque, Some(LayerNode::Dir { listed, .. })) => LayerNode::Dir {
                opaque: true,
                listed: *listed,
            },
            (Op::Opaque, _) => LayerNode::Dir {
                opaque: true,
                listed: false,
            },
        };
        if !matches!(node, LayerNode::Dir { .. }) {
            for below in descendants_of(&tree, path) {
                tree.remove(&below);
            }
        }
        tree.insert(path.clone(), node);
    }
    tree
}

/// The tar entries of a layer tree, in the order given by `order` (a permutation seed): any
/// order yields the same layer, since no two entries touch the same path.
fn layer_tar(tree: &BTreeMap<PathBuf, LayerNode>, order: &[usize]) -> Vec<u8> {
    let mut entries = Vec::new();
    for (path, node) in tree {
        let name = path.to_str().expect("generated names are ASCII").to_owned();
        let sibling = |prefix: &str| {
            let parent = path.parent().map(Path::to_path_buf).unwrap_or_default();
            let file = path.file_name().map(|f| f.to_string_lossy().into_owned());
            parent.join(format!("{prefix}{}", file.unwrap_or_default()))
        };
        match node {
            LayerNode::File(content) => entries.push((name, Some(content.clone()))),
            LayerNode::Whiteout => {
                let whiteout = sibling(".wh.").to_string_lossy().into_owned();
                entries.push((whiteout, Some(Vec::new())));
            }
            LayerNode::Dir { opaque, listed } => {
                if *listed {
                    entries.push((name.clone(), None));
                }
                if *opaque {
                    entries.push((format!("{name}/.wh..wh..opq"), Some(Vec::new())));
                }
            }
        }
    }
    let mut layer = Layer::new();
    let mut keyed: Vec<_> = entries.into_iter().enumerate().collect();
    keyed.sort_by_key(|(i, _)| order.get(*i).copied().unwrap_or(*i));
    for (_, (name, content)) in keyed {
        match content {
            Some(content) => layer.file(&name, &content),
            None => layer.dir(&name),
        };
    }
    layer.bytes()
}

/// Applies a layer tree to the view below it, as overlayfs resolves the stack.
fn apply(view: &mut BTreeMap<PathBuf, View>, tree: &BTreeMap<PathBuf, LayerNode>) {
    // Parents sort before their children, so an opaque directory clears the lower layers'
    // children before this layer's own are added.
    for (path, node) in tree {
        match node {
            LayerNode::Whiteout | LayerNode::File(_) => {
                for below in descendants_of(view, path) {
                    view.remove(&below);
                }
                view.remove(path);
                if let LayerNode::File(content) = node {
                    view.insert(path.clone(), View::File(content.clone()));
                }
            }
            LayerNode::Dir { opaque, .. } => {
                if *opaque {
                    for below in descendants_of(view, path) {
                        view.remove(&below);
                    }
                }
                view.insert(path.clone(), View::Dir);
            }
        }
    }
}

/// Reads the tree at `root`. Whiteouts (0/0 character devices) are skipped: overlayfs hides
/// them from lookups, and a single layer is read directly.
fn read_tree(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, View>) {
    for entry in fs::read_dir(root.join(dir)).unwrap() {
        let entry = entry.unwrap();
        let path = dir.join(entry.file_name());
        let meta = match fs::symlink_metadata(root.join(&path)) {
            Ok(meta) => meta,
            // overlayfs lists a directory that only one layer has straight from that layer,
            // whiteouts included, but looking one up finds nothing.
            Err(e)
                if e.kind() == io::ErrorKind::NotFound
                    && entry.file_type().unwrap().is_char_device() =>
            {
                continue;
            }
            Err(e) => panic!("{path:?}: {e}"),
        };
        let file_type = meta.file_type();
        if file_type.is_dir() {
            out.insert(path.clone(), View::Dir);
            read_tree(root, &path, out);
        } else if file_type.is_file() {
            out.insert(
                path.clone(),
                View::File(fs::read(root.join(&path)).unwrap()),
            );
        } else if file_type.is_char_device() && meta.rdev() == 0 {
            continue;
        } else {
            panic!("unexpected {file_type:?} at {path:?}");
        }
    }
}

/// A read-only overlay mount, unmounted on drop (also when an assertion fails).
struct Mount(PathBuf);

impl Mount {
    fn overlay(lower_top_first: &[PathBuf], target: &Path) -> Self {
        let lower: Vec<_> = lower_top_first
            .iter()
            .map(|p| p.to_str().unwrap())
            .collect();
        let data = CString::new(format!("lowerdir={}", lower.join(":"))).unwrap();
        rustix::mount::mount(
            "overlay",
            target,
            "overlay",
            rustix::mount::MountFlags::RDONLY,
            data.as_c_str(),
        )
        .unwrap_or_else(|e| panic!("mount overlay {data:?} on {target:?}: {e}"));
        Self(target.to_owned())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = rustix::mount::unmount(&self.0, rustix::mount::UnmountFlags::DETACH);
    }
}

fn op() -> impl Strategy<Value = (PathBuf, Op)> {
    let name = prop::sample::select(vec!["a", "b", "c"]);
    let path = prop::collection::vec(name, 1..=3).prop_map(|parts| parts.iter().collect());
    let op = prop_oneof![
        3 => prop::collection::vec(any::<u8>(), 0..6).prop_map(Op::File),
        2 => Just(Op::Dir),
        2 => Just(Op::Delete),
        1 => Just(Op::Opaque),
    ];
    (path, op)
}

/// One layer: its operations, and a permutation for the order of its tar entries.
type LayerOps = (Vec<(PathBuf, Op)>, Vec<usize>);

fn stack() -> impl Strategy<Value = Vec<LayerOps>> {
    let layer = (
        prop::collection::vec(op(), 1..6),
        Just((0..16).collect::<Vec<usize>>()).prop_shuffle(),
    );
    prop::collection::vec(layer, 1..=4)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn overlay_view_matches_naive_model_needs_root(layers in stack(), io_uring in any::<bool>()) {
        let tmp = tempfile::tempdir().unwrap();
        let mut model = BTreeMap::new();
        let mut dirs = Vec::new();
        for (i, (ops, order)) in layers.iter().enumerate() {
            let tree = layer_tree(ops);
            let dir = tmp.path().join(format!("layer{i}"));
            fs::create_dir(&dir).unwrap();
            let options = Options { io_uring, ..Options::default() };
            unpack(&layer_tar(&tree, order)[..], &dir, &options).unwrap();
            apply(&mut model, &tree);
            dirs.push(dir);
        }
        let mut seen = BTreeMap::new();
        if dirs.len() == 1 {
            read_tree(&dirs[0], Path::new(""), &mut seen);
        } else {
            let merged = tmp.path().join("merged");
            fs::create_dir(&merged).unwrap();
            dirs.reverse();
            let _mount = Mount::overlay(&dirs, &merged);
            read_tree(&merged, Path::new(""), &mut seen);
        }
        prop_assert_eq!(seen, model, "layers: {:?}", layers.iter().map(|(ops, _)| ops).collect::<Vec<_>>());
    }
}
