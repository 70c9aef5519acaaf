//! Layer compression and the two families of media types (OCI, Docker schema 2).

use super::{Error, Result};

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// gzip (RFC 1952), the default of every registry and runtime.
    Gzip,
    /// zstd frames; OCI media types only.
    Zstd,
    /// A plain tar stream.
    None,
}

/// Which media types the manifest, config and layers carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaTypes {
    /// `application/vnd.oci.image.*` (OCI image spec 1.0).
    Oci,
    /// `application/vnd.docker.*` (Docker image manifest v2, schema 2).
    Docker,
}

impl MediaTypes {
    /// Media type of the image manifest.
    pub fn manifest(self) -> &'static str {
        match self {
            MediaTypes::Oci => "application/vnd.oci.image.manifest.v1+json",
            MediaTypes::Docker => "application/vnd.docker.distribution.manifest.v2+json",
        }
    }

    /// Media type of the image config.
    pub fn config(self) -> &'static str {
        match self {
            MediaTypes::Oci => "application/vnd.oci.image.config.v1+json",
            MediaTypes::Docker => "application/vnd.docker.container.image.v1+json",
        }
    }

    /// Media type of layer `index` compressed with `compression`; Docker has no zstd type.
    pub fn layer(self, compression: Compression, index: usize) -> Result<&'static str> {
        Ok(match (self, compression) {
            (MediaTypes::Oci, Compression::Gzip) => "application/vnd.oci.image.layer.v1.tar+gzip",
            (MediaTypes::Oci, Compression::Zstd) => "application/vnd.oci.image.layer.v1.tar+zstd",
            (MediaTypes::Oci, Compression::None) => "application/vnd.oci.image.layer.v1.tar",
            (MediaTypes::Docker, Compression::Gzip) => {
                "application/vnd.docker.image.rootfs.diff.tar.gzip"
            }
            (MediaTypes::Docker, Compression::None) => {
                "application/vnd.docker.image.rootfs.diff.tar"
            }
            (MediaTypes::Docker, Compression::Zstd) => {
                return Err(Error::ZstdWithDocker { layer: index });
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_refuses_zstd() {
        assert!(matches!(
            MediaTypes::Docker.layer(Compression::Zstd, 2),
            Err(Error::ZstdWithDocker { layer: 2 })
        ));
        assert!(MediaTypes::Oci.layer(Compression::Zstd, 0).is_ok());
    }
}
