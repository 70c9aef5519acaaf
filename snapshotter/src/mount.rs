//! The mounts a snapshot is used through, as containerd's overlayfs snapshotter returns them
//! (`snapshots/overlay/overlay.go`, `mounts()`):
//!
//! | snapshot                   | mount                                                        |
//! |----------------------------|--------------------------------------------------------------|
//! | active, no parent          | `bind` of its own `fs`, `rw,rbind`                           |
//! | view, no parent            | `bind` of its own (empty) `fs`, `ro,rbind`                   |
//! | view, one parent           | `bind` of the parent's `fs`, `ro,rbind`                      |
//! | view, several parents      | `overlay` with `lowerdir=` the parents' `fs`, nearest first  |
//! | active with parents        | `overlay` with `workdir=`, `upperdir=` and `lowerdir=`       |
//!
//! Overlay mounts start with `index=off` when the kernel has that parameter, as containerd's
//! do: with the index on, a lower directory shared by two overlay mounts is refused. Directory
//! names are the snapshots' numeric ids, so a 50-layer `lowerdir` stays around 2 KB, well under
//! the 4 KB page that limits mount data.

use std::path::Path;

/// One mount, as containerd's `containerd.types.Mount` (without a target: the caller picks it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The filesystem type: `bind` or `overlay`.
    pub kind: String,
    /// The source: a directory for `bind`, the word `overlay` for overlay.
    pub source: String,
    /// fstab-style options.
    pub options: Vec<String>,
}

/// Whether the running kernel's overlayfs knows the `index` parameter (and so `index=off`).
pub(crate) fn kernel_has_overlay_index() -> bool {
    Path::new("/sys/module/overlay/parameters/index").exists()
}

/// What [`build`] needs to know about one snapshot.
#[derive(Debug)]
pub(crate) struct Spec<'a> {
    /// `true` for an active snapshot (read-write), `false` for a view.
    pub active: bool,
    /// The snapshot's own `fs` directory.
    pub upper: &'a Path,
    /// Its `work` directory (active snapshots only).
    pub work: &'a Path,
    /// The parents' `fs` directories, nearest first.
    pub lowers: &'a [std::path::PathBuf],
    /// Prefix overlay options with `index=off`.
    pub index_off: bool,
}

fn bind(source: &Path, ro: bool) -> Mount {
    Mount {
        kind: "bind".to_owned(),
        source: source.display().to_string(),
        options: vec![if ro { "ro" } else { "rw" }.to_owned(), "rbind".to_owned()],
    }
}

/// The mounts for `spec`, following containerd's overlayfs snapshotter.
pub(crate) fn build(spec: &Spec<'_>) -> Vec<Mount> {
    match spec.lowers {
        [] => return vec![bind(spec.upper, !spec.active)],
        [only] if !spec.active => return vec![bind(only, true)],
        _ => {}
    }
    let mut options = Vec::with_capacity(4);
    if spec.index_off {
        options.push("index=off".to_owned());
    }
    if spec.active {
        options.push(format!("workdir={}", spec.work.display()));
        options.push(format!("upperdir={}", spec.upper.display()));
    }
    let lower: Vec<String> = spec
        .lowers
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    options.push(format!("lowerdir={}", lower.join(":")));
    vec![Mount {
        kind: "overlay".to_owned(),
        source: "overlay".to_owned(),
        options,
    }]
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn spec<'a>(active: bool, lowers: &'a [PathBuf]) -> Spec<'a> {
        Spec {
            active,
            upper: Path::new("/s/9/fs"),
            work: Path::new("/s/9/work"),
            lowers,
            index_off: true,
        }
    }

    #[test]
    fn follows_containerd_overlayfs() {
        let one = [PathBuf::from("/s/1/fs")];
        let two = [PathBuf::from("/s/2/fs"), PathBuf::from("/s/1/fs")];
        let cases: Vec<(Spec<'_>, &str, &str, Vec<&str>)> = vec![
            (spec(true, &[]), "bind", "/s/9/fs", vec!["rw", "rbind"]),
            (spec(false, &[]), "bind", "/s/9/fs", vec!["ro", "rbind"]),
            (spec(false, &one), "bind", "/s/1/fs", vec!["ro", "rbind"]),
            (
                spec(false, &two),
                "overlay",
                "overlay",
                vec!["index=off", "lowerdir=/s/2/fs:/s/1/fs"],
            ),
            (
                spec(true, &one),
                "overlay",
                "overlay",
                vec![
                    "index=off",
                    "workdir=/s/9/work",
                    "upperdir=/s/9/fs",
                    "lowerdir=/s/1/fs",
                ],
            ),
        ];
        for (spec, kind, source, options) in cases {
            let mounts = build(&spec);
            assert_eq!(mounts.len(), 1, "{spec:?}");
            assert_eq!(mounts[0].kind, kind, "{spec:?}");
            assert_eq!(mounts[0].source, source, "{spec:?}");
            assert_eq!(mounts[0].options, options, "{spec:?}");
        }
    }
}
