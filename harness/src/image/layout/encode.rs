//! The compressor between a layer's tar stream and its blob file.

use std::io::Write;

use super::Options;
use crate::image::Compression;

/// The compressor between the tar stream and the blob file.
pub(super) enum Encoder<W: Write> {
    Gzip(flate2::write::GzEncoder<W>),
    Zstd(zstd::Encoder<'static, W>),
    None(W),
}

impl<W: Write> Encoder<W> {
    pub(super) fn new(
        compression: Compression,
        inner: W,
        options: &Options,
    ) -> std::io::Result<Self> {
        Ok(match compression {
            Compression::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                inner,
                flate2::Compression::new(options.gzip_level),
            )),
            Compression::Zstd => Encoder::Zstd(zstd::Encoder::new(inner, options.zstd_level)?),
            Compression::None => Encoder::None(inner),
        })
    }

    /// Ends the compressed stream and returns the inner writer.
    pub(super) fn finish(self) -> std::io::Result<W> {
        match self {
            Encoder::Gzip(encoder) => encoder.finish(),
            Encoder::Zstd(encoder) => encoder.finish(),
            Encoder::None(inner) => Ok(inner),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Encoder::Gzip(encoder) => encoder.write(buf),
            Encoder::Zstd(encoder) => encoder.write(buf),
            Encoder::None(inner) => inner.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Encoder::Gzip(encoder) => encoder.flush(),
            Encoder::Zstd(encoder) => encoder.flush(),
            Encoder::None(inner) => inner.flush(),
        }
    }
}
