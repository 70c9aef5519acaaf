//! .gitpod.yml's `image`: a string naming the workspace image, or `{ file: Dockerfile,
//! context: … }`, whose `FROM` lines name the images to prefetch (seeds/003: a private ECR
//! image directly or as a custom Dockerfile's base).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{Target, dockerfile};

/// Why a .gitpod.yml cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not YAML of the expected shape.
    #[error(".gitpod.yml: {0}")]
    Syntax(String),
    /// No `image` key.
    #[error(".gitpod.yml: no image (the default workspace image is not prefetched)")]
    NoImage,
    /// The Dockerfile's base images cannot be determined.
    #[error("{path}: {source}")]
    Dockerfile {
        /// The Dockerfile.
        path: PathBuf,
        /// Why.
        source: dockerfile::Error,
    },
    /// A name is not an image reference.
    #[error("image {image:?}: {source}")]
    BadImage {
        /// The value.
        image: String,
        /// Why.
        source: crate::reference::Error,
    },
}

#[derive(Debug, Deserialize)]
struct GitpodYml {
    image: Option<ImageField>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ImageField {
    Name(String),
    File {
        file: String,
        #[allow(dead_code)] // Accepted for the schema; the Dockerfile path alone matters here.
        context: Option<String>,
    },
}

/// Reads `.gitpod.yml` at `path`; a Dockerfile is resolved relative to its directory (the
/// repository root).
pub fn load(path: &Path) -> Result<Vec<Target>, Error> {
    let read = |p: &Path| {
        std::fs::read_to_string(p).map_err(|source| Error::Read {
            path: p.to_owned(),
            source,
        })
    };
    let text = read(path)?;
    let parsed: GitpodYml =
        serde_yaml_ng::from_str(&text).map_err(|e| Error::Syntax(e.to_string()))?;
    let names = match parsed.image.ok_or(Error::NoImage)? {
        ImageField::Name(name) => vec![name],
        ImageField::File { file, .. } => {
            let dockerfile = path.parent().unwrap_or(Path::new(".")).join(file);
            dockerfile::base_images(&read(&dockerfile)?).map_err(|source| Error::Dockerfile {
                path: dockerfile,
                source,
            })?
        }
    };
    names
        .into_iter()
        .map(|name| {
            Ok(Target {
                image: name.trim().parse().map_err(|source| Error::BadImage {
                    image: name.clone(),
                    source,
                })?,
                connector: None,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn image_string_and_dockerfile_from_the_gitpod_page() {
        let dir = tempfile::tempdir().unwrap();
        let direct = write(
            dir.path(),
            "direct.yml",
            "image: 123456789012.dkr.ecr.us-east-1.amazonaws.com/private-ubuntu:tag\ntasks:\n  - init: make\n",
        );
        let t = load(&direct).unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(
            t[0].image.registry(),
            "123456789012.dkr.ecr.us-east-1.amazonaws.com"
        );
        write(
            dir.path(),
            "Dockerfile",
            "FROM 123456789012.dkr.ecr.us-east-1.amazonaws.com/private-ubuntu:tag\nRUN true\n",
        );
        let file = write(dir.path(), ".gitpod.yml", "image:\n    file: Dockerfile\n");
        let t = load(&file).unwrap();
        assert_eq!(
            t[0].image.to_string(),
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/private-ubuntu:tag"
        );
    }

    #[test]
    fn broken_files_give_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            ("tasks: []\n", "no image"),
            ("image: [1, 2]\n", ".gitpod.yml:"),
            ("image:\n  file: Missing.Dockerfile\n", "Missing.Dockerfile"),
            ("image: 'Not A Ref'\n", "image \"Not A Ref\""),
            ("image: :\n  - x\n", ".gitpod.yml:"),
        ];
        for (text, want) in cases {
            let p = write(dir.path(), ".gitpod.yml", text);
            let e = load(&p).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
        assert!(load(&dir.path().join("absent.yml")).is_err());
    }
}
