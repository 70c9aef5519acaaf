//! Writing layer blobs: each layer streamed through tar, the diffID hasher, the compressor and
//! the digest hasher into a temporary file, then renamed to its digest. Several layers at once.

use std::fs;
use std::io::{BufWriter, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use super::encode::Encoder;
use super::{Options, WrittenLayer};
use crate::image::archive::write_tar;
use crate::image::digest::HashingWriter;
use crate::image::{Error, Layer, Result};

/// Writes all layers, `options.threads` at a time, in the order of `layers`; `media_types` has
/// one entry per layer.
pub(super) fn write_layers(
    layers: &[Layer],
    media_types: &[&str],
    blobs: &Path,
    options: &Options,
) -> Result<Vec<WrittenLayer>> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<WrittenLayer>>>> =
        Mutex::new((0..layers.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..options.threads.clamp(1, layers.len().max(1)) {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(layer) = layers.get(index) else {
                        break;
                    };
                    let media_type = media_types.get(index).copied().unwrap_or_default();
                    let result = write_layer(layer, index, media_type, blobs, options);
                    let failed = result.is_err();
                    if let Ok(mut results) = results.lock() {
                        results[index] = Some(result);
                    }
                    if failed {
                        // Let the other workers stop too: skip the remaining layers.
                        next.store(layers.len(), Ordering::Relaxed);
                    }
                }
            });
        }
    });
    // A worker that panicked has already re-raised its panic at the end of the scope.
    let results = results.into_inner().unwrap_or_else(PoisonError::into_inner);
    // Indices are handed out in order, so every layer before a failed one has a result and the
    // first error in order is the real one.
    results
        .into_iter()
        .enumerate()
        .map(|(layer, result)| result.unwrap_or(Err(Error::WriterPanicked { layer })))
        .collect()
}

/// Streams one layer to a temporary file in `blobs`, then renames it to its digest.
fn write_layer(
    layer: &Layer,
    index: usize,
    media_type: &str,
    blobs: &Path,
    options: &Options,
) -> Result<WrittenLayer> {
    let io_error = |source| Error::Io {
        path: blobs.to_path_buf(),
        source,
    };
    let temp = tempfile::Builder::new()
        .prefix(".layer-")
        .tempfile_in(blobs)
        .map_err(io_error)?;
    let file = BufWriter::with_capacity(1 << 20, temp.as_file());
    let compressed = HashingWriter::new(file);
    let encoder = Encoder::new(layer.compression, compressed, options).map_err(io_error)?;
    let uncompressed = HashingWriter::new(encoder);
    let uncompressed = write_tar(&layer.entries, uncompressed, index)?;
    let (encoder, diff_id, uncompressed_size) = uncompressed.finish();
    let compressed = encoder.finish().map_err(io_error)?;
    let (mut file, digest, size) = compressed.finish();
    file.flush().map_err(io_error)?;
    drop(file);
    let path = blobs.join(digest.hex());
    temp.persist(&path).map_err(|e| Error::Io {
        path: path.clone(),
        source: e.error,
    })?;
    // Temporary files are 0600; blobs are for everyone to read, like the small ones.
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).map_err(|source| Error::Io {
        path: path.clone(),
        source,
    })?;
    Ok(WrittenLayer {
        media_type: media_type.to_owned(),
        digest,
        size,
        diff_id,
        uncompressed_size,
        compression: layer.compression,
    })
}
