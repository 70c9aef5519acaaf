//! Images as the harness describes them, and the OCI image layouts written from them.
//!
//! An [`Image`] is a list of [`Layer`]s, each a list of [`Entry`]s (files, directories, links,
//! whiteouts, devices), plus the runtime [`Config`]. [`layout::write`] turns it into an OCI image
//! layout directory, streaming each layer through tar, the compressor and two SHA-256 hashers, so
//! multi-gigabyte images never sit in memory. [`Generated`] makes large deterministic images from a
//! seed.

mod archive;
mod content;
mod digest;
mod entry;
mod generate;
pub mod layout;
mod media;
mod rng;

use std::path::PathBuf;

pub use content::{Content, ContentReader};
pub use digest::Digest;
pub use entry::{DEFAULT_MTIME, Entry, Meta, clean_path};
pub use generate::{Generated, Mix, parse_size};
pub use layout::{Descriptor, Options, Written, WrittenLayer};
pub use media::{Compression, MediaTypes};

use crate::Kind;

/// Failures while describing or writing an image.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a file of the layout failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// Writing a layer's tar stream (through the compressor) failed.
    #[error("layer {layer}: writing entry {entry}: {source}")]
    Layer {
        /// Index of the layer in the image, from 0.
        layer: usize,
        /// Path of the entry being written.
        entry: String,
        /// What failed.
        source: std::io::Error,
    },
    /// An entry's path is empty, or leaves the root through `..`.
    #[error("entry path {path:?} is not a clean relative path")]
    InvalidPath {
        /// The path as given.
        path: String,
    },
    /// A hard link names a target that no earlier entry of its layer created.
    #[error("hard link {path:?}: target {target:?} is not a file earlier in the same layer")]
    HardlinkTarget {
        /// The link.
        path: String,
        /// What it points to.
        target: String,
    },
    /// Docker's schema 2 media types have no zstd layer type.
    #[error("docker media types have no zstd layer type (layer {layer})")]
    ZstdWithDocker {
        /// Index of the layer.
        layer: usize,
    },
    /// A size such as `64MiB` could not be parsed.
    #[error(
        "size {text:?}: expected a number with an optional unit (B, KiB, MiB, GiB, KB, MB, GB)"
    )]
    InvalidSize {
        /// The text as given.
        text: String,
    },
    /// An existing `index.json` could not be read as an OCI index.
    #[error("{path}: not an OCI image index: {source}")]
    Index {
        /// The index file.
        path: PathBuf,
        /// Why it did not parse.
        source: serde_json::Error,
    },
    /// A layer-writing thread stopped without a result.
    #[error("layer {layer}: writer stopped without a result")]
    WriterPanicked {
        /// Index of the layer.
        layer: usize,
    },
}

impl Error {
    /// The kind of failure, for exit codes and statuses.
    pub fn kind(&self) -> Kind {
        match self {
            Error::Io { source, .. } | Error::Layer { source, .. } => match source.kind() {
                std::io::ErrorKind::NotFound => Kind::NotFound,
                std::io::ErrorKind::PermissionDenied => Kind::PermissionDenied,
                _ => Kind::Internal,
            },
            Error::InvalidPath { .. }
            | Error::HardlinkTarget { .. }
            | Error::ZstdWithDocker { .. }
            | Error::InvalidSize { .. }
            | Error::Index { .. } => Kind::InvalidArgument,
            Error::WriterPanicked { .. } => Kind::Internal,
        }
    }
}

/// Results of this module.
pub type Result<T> = std::result::Result<T, Error>;

/// A whole image: layers bottom to top, runtime configuration, platform and media types.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    /// The layers, lowest first (the order of `rootfs.diff_ids`).
    pub layers: Vec<Layer>,
    /// What the container runs: user, environment, command.
    pub config: Config,
    /// The platform the config declares; linux/amd64 by default.
    pub platform: Platform,
    /// OCI or Docker schema 2 media types for the manifest, config and layers.
    pub media_types: MediaTypes,
}

impl Image {
    /// An image of these layers with the default config, linux/amd64 and OCI media types.
    pub fn new(layers: Vec<Layer>) -> Self {
        Self {
            layers,
            config: Config::default(),
            platform: Platform::default(),
            media_types: MediaTypes::Oci,
        }
    }

    /// The same image with other media types.
    pub fn with_media_types(mut self, media_types: MediaTypes) -> Self {
        self.media_types = media_types;
        self
    }
}

/// One layer: its entries in tar order and how the blob is compressed.
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    /// Entries in the order they are written to the tar stream.
    pub entries: Vec<Entry>,
    /// Compression of the layer blob.
    pub compression: Compression,
}

impl Layer {
    /// A layer of these entries with this compression.
    pub fn new(entries: Vec<Entry>, compression: Compression) -> Self {
        Self {
            entries,
            compression,
        }
    }
}

/// The runtime part of the image config (`config` in the OCI image config JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    /// `User`: user (and group) the process runs as; unset by default.
    pub user: Option<String>,
    /// `Env`: `NAME=value` pairs; empty by default.
    pub env: Vec<String>,
    /// `Entrypoint`; unset when empty.
    pub entrypoint: Vec<String>,
    /// `Cmd`; unset when empty.
    pub cmd: Vec<String>,
    /// `WorkingDir`; unset by default.
    pub working_dir: Option<String>,
}

/// The platform an image config declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    /// `os`, `linux` by default.
    pub os: String,
    /// `architecture`, `amd64` by default.
    pub architecture: String,
    /// `variant`, such as `v8` for arm64; unset by default.
    pub variant: Option<String>,
}

impl Default for Platform {
    fn default() -> Self {
        Self {
            os: "linux".to_owned(),
            architecture: "amd64".to_owned(),
            variant: None,
        }
    }
}
