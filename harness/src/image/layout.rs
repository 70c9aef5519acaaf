//! Writing an [`Image`] as an OCI image layout (image-spec `image-layout.md`).
//!
//! ```text
//! DIR/oci-layout            {"imageLayoutVersion":"1.0.0"}
//! DIR/index.json            one manifest per reference, annotated org.opencontainers.image.ref.name
//! DIR/blobs/sha256/<hex>    layers, config, manifest
//! ```
//!
//! Docker media types go into the same layout (the index then points at a Docker schema 2
//! manifest, which containerd accepts), plus a view for skopeo: skopeo 1.9's `oci:` transport
//! skips index entries that are not OCI manifests ("no descriptor found for reference"), and
//! `--format v2s2` would make skopeo write its own manifest. So for Docker media types the image
//! is also laid out for skopeo's `dir:` transport,
//!
//! ```text
//! DIR/dir/REF/version        "Directory Transport Version: 1.1"
//! DIR/dir/REF/manifest.json  the manifest, byte for byte
//! DIR/dir/REF/<hex>          hard links to the config and layer blobs
//! ```
//!
//! which skopeo pushes unchanged. [`Written::skopeo_source`] names the right one.
//!
//! Layers are written in parallel, each streamed through tar → diffID hasher → compressor →
//! digest hasher → file, so memory stays at a few buffers per layer.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{Compression, Digest, Error, Image, MediaTypes, Result};

mod encode;
mod files;
mod json;
mod layers;

use files::{docker_dir, read_optional, write_blob, write_dir_transport, write_file};
use layers::write_layers;

/// Annotation of `index.json` entries naming the image (`oci:DIR:NAME` in skopeo).
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";

/// How [`write`] compresses and how many layers it writes at once.
#[derive(Debug, Clone)]
pub struct Options {
    /// gzip level, 0–9; 6 by default (gzip's own default, what `docker push` uses).
    pub gzip_level: u32,
    /// zstd level, 1–22; 3 by default (zstd's default).
    pub zstd_level: i32,
    /// Layers written at the same time; the number of CPUs by default.
    pub threads: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            gzip_level: 6,
            zstd_level: 3,
            threads: std::thread::available_parallelism().map_or(1, usize::from),
        }
    }
}

/// A content descriptor as the manifest and index carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the blob.
    pub media_type: String,
    /// Digest of the blob.
    pub digest: Digest,
    /// Size of the blob in bytes.
    pub size: u64,
}

/// One layer as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WrittenLayer {
    /// Media type in the manifest.
    pub media_type: String,
    /// Digest of the (compressed) blob.
    pub digest: Digest,
    /// Size of the blob in bytes.
    pub size: u64,
    /// Digest of the uncompressed tar stream (`rootfs.diff_ids`).
    pub diff_id: Digest,
    /// Size of the uncompressed tar stream in bytes.
    pub uncompressed_size: u64,
    /// Compression of the blob.
    pub compression: Compression,
}

/// Totals of one [`write`], for reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stats {
    /// Bytes of tar streams written (before compression), all layers.
    pub uncompressed_bytes: u64,
    /// Bytes of layer blobs written, all layers.
    pub compressed_bytes: u64,
    /// Wall time of the whole write, in milliseconds.
    pub elapsed_ms: u64,
    /// Uncompressed megabytes (10^6 bytes) per second of wall time.
    pub mb_per_s: f64,
}

/// What [`write`] wrote: everything needed to push, pull and check the image.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Written {
    /// The layout directory.
    pub dir: PathBuf,
    /// The `org.opencontainers.image.ref.name` of the image in `index.json`.
    pub reference: String,
    /// Media types used.
    pub media_types: MediaTypes,
    /// The manifest blob.
    pub manifest: Descriptor,
    /// The config blob.
    pub config: Descriptor,
    /// The layers, lowest first.
    pub layers: Vec<WrittenLayer>,
    /// Sizes and speed.
    pub stats: Stats,
}

impl Written {
    /// The skopeo source naming this image: `oci:DIR:REFERENCE` for OCI media types,
    /// `dir:DIR/dir/REFERENCE` for Docker ones.
    pub fn skopeo_source(&self) -> String {
        match self.media_types {
            MediaTypes::Oci => format!("oci:{}:{}", self.dir.display(), self.reference),
            MediaTypes::Docker => {
                format!("dir:{}", docker_dir(&self.dir, &self.reference).display())
            }
        }
    }
}

/// Writes `image` into the OCI layout `dir` (created if missing) under `reference`, replacing an
/// image of the same reference in `index.json` and keeping the others.
pub fn write(image: &Image, dir: &Path, reference: &str, options: &Options) -> Result<Written> {
    let started = Instant::now();
    let media_types: Vec<&'static str> = image
        .layers
        .iter()
        .enumerate()
        .map(|(index, layer)| image.media_types.layer(layer.compression, index))
        .collect::<Result<_>>()?;
    let blobs = dir.join("blobs").join("sha256");
    fs::create_dir_all(&blobs).map_err(|source| Error::Io {
        path: blobs.clone(),
        source,
    })?;

    let layers = write_layers(&image.layers, &media_types, &blobs, options)?;

    let config = json::config(image, &layers);
    let config = write_blob(&blobs, image.media_types.config(), &config)?;
    let manifest_bytes = json::manifest(image.media_types, &config, &layers);
    let manifest = write_blob(&blobs, image.media_types.manifest(), &manifest_bytes)?;
    write_file(
        &dir.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    let index_path = dir.join("index.json");
    let index = json::index(
        read_optional(&index_path)?.as_deref(),
        &index_path,
        &manifest,
        reference,
    )?;
    write_file(&index_path, &index)?;
    if image.media_types == MediaTypes::Docker {
        write_dir_transport(
            &docker_dir(dir, reference),
            &blobs,
            &manifest_bytes,
            &config,
            &layers,
        )?;
    }

    let elapsed = started.elapsed();
    let stats = stats(&layers, elapsed);
    Ok(Written {
        dir: dir.to_path_buf(),
        reference: reference.to_owned(),
        media_types: image.media_types,
        manifest,
        config,
        layers,
        stats,
    })
}

fn stats(layers: &[WrittenLayer], elapsed: Duration) -> Stats {
    let uncompressed_bytes = layers.iter().map(|l| l.uncompressed_size).sum::<u64>();
    Stats {
        uncompressed_bytes,
        compressed_bytes: layers.iter().map(|l| l.size).sum(),
        elapsed_ms: elapsed.as_millis() as u64,
        mb_per_s: uncompressed_bytes as f64 / 1e6 / elapsed.as_secs_f64().max(1e-9),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;
    use crate::image::{Entry, Layer};

    fn image(compression: Compression, media_types: MediaTypes) -> Image {
        let layer = Layer::new(
            vec![
                Entry::dir("etc"),
                Entry::file("etc/hosts", "127.0.0.1 localhost\n"),
            ],
            compression,
        );
        Image::new(vec![layer.clone(), layer]).with_media_types(media_types)
    }

    fn index(dir: &Path) -> serde_json::Value {
        serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap()
    }

    #[test]
    fn blobs_match_their_digests_and_diff_ids() {
        let dir = tempfile::tempdir().unwrap();
        for compression in [Compression::Gzip, Compression::Zstd, Compression::None] {
            let written = write(
                &image(compression, MediaTypes::Oci),
                dir.path(),
                "r",
                &Options::default(),
            )
            .unwrap();
            let blobs = dir.path().join("blobs/sha256");
            for descriptor in [&written.manifest, &written.config] {
                let bytes = fs::read(blobs.join(descriptor.digest.hex())).unwrap();
                assert_eq!(Digest::of(&bytes), descriptor.digest);
                assert_eq!(bytes.len() as u64, descriptor.size);
            }
            for layer in &written.layers {
                let blob = fs::read(blobs.join(layer.digest.hex())).unwrap();
                assert_eq!(Digest::of(&blob), layer.digest);
                let mut tar = Vec::new();
                match compression {
                    Compression::Gzip => {
                        flate2::read::GzDecoder::new(blob.as_slice()).read_to_end(&mut tar)
                    }
                    Compression::Zstd => zstd::Decoder::new(blob.as_slice())
                        .unwrap()
                        .read_to_end(&mut tar),
                    Compression::None => blob.as_slice().read_to_end(&mut tar),
                }
                .unwrap();
                assert_eq!(Digest::of(&tar), layer.diff_id);
                assert_eq!(tar.len() as u64, layer.uncompressed_size);
            }
        }
    }

    #[test]
    fn index_keeps_other_references_and_replaces_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let options = Options::default();
        write(
            &image(Compression::Gzip, MediaTypes::Oci),
            dir.path(),
            "a",
            &options,
        )
        .unwrap();
        write(
            &image(Compression::Zstd, MediaTypes::Oci),
            dir.path(),
            "b",
            &options,
        )
        .unwrap();
        let again = write(
            &image(Compression::None, MediaTypes::Oci),
            dir.path(),
            "a",
            &options,
        )
        .unwrap();
        let index = index(dir.path());
        let manifests = index["manifests"].as_array().unwrap();
        let names: Vec<&str> = manifests
            .iter()
            .map(|m| m["annotations"][REF_NAME_ANNOTATION].as_str().unwrap())
            .collect();
        assert_eq!(names, ["b", "a"]);
        assert_eq!(manifests[1]["digest"], again.manifest.digest.as_str());
        assert_eq!(
            again.skopeo_source(),
            format!("oci:{}:a", dir.path().display())
        );
    }
}
