//! The small files of a layout (blobs of JSON, `index.json`, `oci-layout`) and the `dir:`
//! transport view of Docker-typed images.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::{Descriptor, WrittenLayer};
use crate::image::{Digest, Error, Result};

/// Where the `dir:` transport view of a Docker-typed image lives.
pub(super) fn docker_dir(dir: &Path, reference: &str) -> PathBuf {
    dir.join("dir").join(reference)
}

/// Lays the image out for skopeo's `dir:` transport in `target`, linking the blobs.
pub(super) fn write_dir_transport(
    target: &Path,
    blobs: &Path,
    manifest: &[u8],
    config: &Descriptor,
    layers: &[WrittenLayer],
) -> Result<()> {
    let io_error = |path: &Path, source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    // Start afresh: an earlier image of the same reference may have had other blobs.
    match fs::remove_dir_all(target) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io_error(target, e)),
        _ => {}
    }
    fs::create_dir_all(target).map_err(|e| io_error(target, e))?;
    write_file(
        &target.join("version"),
        b"Directory Transport Version: 1.1\n",
    )?;
    write_file(&target.join("manifest.json"), manifest)?;
    let digests = std::iter::once(&config.digest).chain(layers.iter().map(|l| &l.digest));
    for digest in digests {
        let (from, to) = (blobs.join(digest.hex()), target.join(digest.hex()));
        if fs::hard_link(&from, &to).is_err() {
            fs::copy(&from, &to).map_err(|e| io_error(&to, e))?;
        }
    }
    Ok(())
}

/// Writes a small blob (config, manifest) under its digest.
pub(super) fn write_blob(blobs: &Path, media_type: &str, bytes: &[u8]) -> Result<Descriptor> {
    let digest = Digest::of(bytes);
    write_file(&blobs.join(digest.hex()), bytes)?;
    Ok(Descriptor {
        media_type: media_type.to_owned(),
        digest,
        size: bytes.len() as u64,
    })
}

pub(super) fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = File::create(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    file.write_all(bytes).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

pub(super) fn read_optional(path: &Path) -> Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use crate::image::layout::{Options, write};
    use crate::image::{Compression, Digest, Entry, Error, Image, Layer, MediaTypes};

    fn image(compression: Compression) -> Image {
        let layer = Layer::new(
            vec![
                Entry::dir("etc"),
                Entry::file("etc/hosts", "::1 localhost\n"),
            ],
            compression,
        );
        Image::new(vec![layer]).with_media_types(MediaTypes::Docker)
    }

    #[test]
    fn docker_media_types_get_a_dir_transport_view() {
        let dir = tempfile::tempdir().unwrap();
        let written = write(
            &image(Compression::Gzip),
            dir.path(),
            "d",
            &Options::default(),
        )
        .unwrap();
        let view = dir.path().join("dir/d");
        let manifest = fs::read(view.join("manifest.json")).unwrap();
        assert_eq!(Digest::of(&manifest), written.manifest.digest);
        let manifest: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
        assert_eq!(manifest["mediaType"], MediaTypes::Docker.manifest());
        assert_eq!(
            manifest["layers"][0]["mediaType"],
            "application/vnd.docker.image.rootfs.diff.tar.gzip"
        );
        assert!(view.join(written.config.digest.hex()).is_file());
        assert!(view.join(written.layers[0].digest.hex()).is_file());
        assert_eq!(written.skopeo_source(), format!("dir:{}", view.display()));

        let zstd = write(
            &image(Compression::Zstd),
            dir.path(),
            "z",
            &Options::default(),
        );
        assert!(matches!(zstd, Err(Error::ZstdWithDocker { layer: 0 })));
    }
}
