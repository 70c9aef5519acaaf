//! Entry names: cleaning a tar path into a relative path that cannot leave the layer, and telling
//! overlay whiteouts (OCI image spec, "Whiteouts") from ordinary names.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

use super::error::PathProblem;

/// Longest entry path accepted, in bytes: `PATH_MAX`. containerd's path-based apply cannot create
/// anything longer either, and it bounds the depth of the tree (and so the directory fds held).
pub(super) const MAX_PATH: usize = 4096;

/// Cleans a tar path: `.` and empty components dropped; absolute paths, `..` components and NUL
/// bytes refused. The result is relative with no trailing slash, and empty for the layer root.
pub(super) fn clean(raw: &[u8]) -> Result<PathBuf, PathProblem> {
    if raw.len() > MAX_PATH {
        return Err(PathProblem::TooLong);
    }
    if raw.contains(&0) {
        return Err(PathProblem::Nul);
    }
    if raw.first() == Some(&b'/') {
        return Err(PathProblem::Absolute);
    }
    let mut out = Vec::with_capacity(raw.len());
    for component in raw.split(|&b| b == b'/') {
        match component {
            b"" | b"." => {}
            b".." => return Err(PathProblem::ParentComponent),
            name => {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(name);
            }
        }
    }
    Ok(PathBuf::from(OsString::from_vec(out)))
}

/// What an entry's final name means under overlayfs.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Name<'a> {
    /// An ordinary file name.
    Plain,
    /// `.wh..wh..opq`: the parent directory hides everything below it in lower layers.
    Opaque,
    /// `.wh..wh.*` other than the opaque marker: AUFS metadata, ignored (as moby does).
    Meta,
    /// `.wh.NAME`: `NAME` is deleted from lower layers.
    Whiteout(&'a OsStr),
    /// `.wh.`, `.wh..` or `.wh...`: a whiteout of nothing, or of the directory itself or its
    /// parent; refused like containerd's `validateWhiteout`.
    InvalidWhiteout,
}

const WHITEOUT: &[u8] = b".wh.";
const META: &[u8] = b".wh..wh.";
const OPAQUE: &[u8] = b".wh..wh..opq";

/// Classifies a final path component (never containing `/`).
pub(super) fn classify(name: &OsStr) -> Name<'_> {
    let bytes = name.as_bytes();
    if bytes == OPAQUE {
        return Name::Opaque;
    }
    if bytes.starts_with(META) {
        return Name::Meta;
    }
    match bytes.strip_prefix(WHITEOUT) {
        None => Name::Plain,
        Some(b"" | b"." | b"..") => Name::InvalidWhiteout,
        Some(target) => Name::Whiteout(OsStr::from_bytes(target)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::path::{Component, Path};

    #[test]
    fn clean_accepts_relative_paths_and_drops_dots() {
        let cases: &[(&[u8], &str)] = &[
            (b"a", "a"),
            (b"a/b/c", "a/b/c"),
            (b"./a/b/", "a/b"),
            (b"a//b/./c/.", "a/b/c"),
            (b".", ""),
            (b"./", ""),
            (b"", ""),
            (b"...", "..."),
            (b"a/..b/c..", "a/..b/c.."),
        ];
        for (raw, want) in cases {
            assert_eq!(clean(raw), Ok(PathBuf::from(want)), "{raw:?}");
        }
    }

    #[test]
    fn clean_refuses_escaping_paths() {
        let long = vec![b'a'; MAX_PATH + 1];
        let cases: &[(&[u8], PathProblem)] = &[
            (b"/etc/x", PathProblem::Absolute),
            (b"//x", PathProblem::Absolute),
            (b"/", PathProblem::Absolute),
            (b"..", PathProblem::ParentComponent),
            (b"../x", PathProblem::ParentComponent),
            (b"a/../../x", PathProblem::ParentComponent),
            (b"a/./../b", PathProblem::ParentComponent),
            (b"a/b/..", PathProblem::ParentComponent),
            (b"a\0b", PathProblem::Nul),
            (&long, PathProblem::TooLong),
        ];
        for (raw, want) in cases {
            assert_eq!(clean(raw), Err(*want), "{raw:?}");
        }
    }

    #[test]
    fn classify_tells_whiteouts_from_names() {
        let cases: &[(&str, Name<'_>)] = &[
            ("file", Name::Plain),
            (".whx", Name::Plain),
            ("a.wh.b", Name::Plain),
            (".wh.file", Name::Whiteout(OsStr::new("file"))),
            (".wh..hidden", Name::Whiteout(OsStr::new(".hidden"))),
            (".wh....", Name::Whiteout(OsStr::new("..."))),
            (".wh..wh..opq", Name::Opaque),
            (".wh..wh.plnk", Name::Meta),
            (".wh..wh..opqx", Name::Meta),
            (".wh.", Name::InvalidWhiteout),
            (".wh..", Name::InvalidWhiteout),
            (".wh...", Name::InvalidWhiteout),
        ];
        for (name, want) in cases {
            assert_eq!(&classify(OsStr::new(name)), want, "{name}");
        }
    }

    proptest! {
        #[test]
        fn cleaned_paths_are_relative_normal_components(
            parts in prop::collection::vec(
                prop_oneof![
                    Just("".to_string()),
                    Just(".".to_string()),
                    Just("..".to_string()),
                    "[a-z.]{1,4}",
                ],
                0..8,
            ),
            leading_slash in any::<bool>(),
        ) {
            let mut raw = parts.join("/");
            if leading_slash {
                raw.insert(0, '/');
            }
            match clean(raw.as_bytes()) {
                Ok(path) => {
                    prop_assert!(!raw.starts_with('/'));
                    prop_assert!(path.components().all(|c| matches!(c, Component::Normal(_))));
                    // Cleaning is idempotent and keeps the named components in order.
                    prop_assert_eq!(clean(path.as_os_str().as_bytes()), Ok(path.clone()));
                    let named: Vec<&str> =
                        parts.iter().map(String::as_str).filter(|p| !p.is_empty() && *p != ".").collect();
                    prop_assert_eq!(path, named.iter().collect::<PathBuf>());
                }
                Err(PathProblem::Absolute) => prop_assert!(raw.starts_with('/')),
                Err(PathProblem::ParentComponent) => {
                    prop_assert!(parts.iter().any(|p| p == ".."));
                    prop_assert!(!Path::new(&raw).is_absolute());
                }
                Err(other) => prop_assert!(false, "unexpected {other:?}"),
            }
        }
    }
}
