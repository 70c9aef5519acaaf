//! The floor: the image's layer blobs read from local disk, with no network, through the same
//! stages a Hoist pull runs (blob digest on one thread, decode and diff ID on two more, and
//! unpack on a fourth, per layer), every layer at once over all cores. No pull can beat it on the same
//! machine; `hoist-bench floor` runs it as a process of its own so that it is measured like the
//! others.

use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, sync_channel};

use hoist::Digest;
use hoist::manifest::{Compression, layer_compression};
use hoist::pull::{decode, layer, unpack};

/// Size of the pieces read from the blob file (the chunk size of a pull hands over similar).
const PIECE: usize = 1 << 20;

/// Failures of the floor.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file of the layout could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The layout's index, manifest or config is not what the image writer produces.
    #[error("{path}: {why}")]
    Layout {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// A layer failed verification or decompression.
    #[error("{0}")]
    Decode(#[from] decode::Error),
    /// A layer could not be unpacked.
    #[error("layer {layer}: {source}")]
    Unpack {
        /// The blob.
        layer: Digest,
        /// Why.
        source: unpack::Error,
    },
}

/// One layer to decode.
#[derive(Debug, Clone)]
struct Layer {
    blob: Digest,
    size: u64,
    diff_id: Digest,
    compression: Compression,
}

/// Verifies, decodes and unpacks every layer of the first image in the OCI layout `layout`
/// into `dest/N` (created). Returns the uncompressed bytes.
pub fn run(layout: &Path, dest: &Path) -> Result<u64, Error> {
    let layers = read_layers(layout)?;
    let queue = Mutex::new(layers.into_iter().enumerate().collect::<Vec<_>>());
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let results: Vec<Result<u64, Error>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut total = 0;
                    loop {
                        let next = queue.lock().map(|mut q| q.pop()).unwrap_or(None);
                        let Some((index, layer)) = next else {
                            return Ok(total);
                        };
                        total += one_layer(layout, &layer, &dest.join(index.to_string()))?;
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("floor workers do not panic"))
            .collect()
    });
    results.into_iter().sum()
}

fn one_layer(layout: &Path, layer: &Layer, dest: &Path) -> Result<u64, Error> {
    std::fs::create_dir_all(dest).map_err(|source| Error::Io {
        path: dest.to_owned(),
        source,
    })?;
    let path = blob_path(layout, &layer.blob);
    let mut file = std::fs::File::open(&path).map_err(|source| Error::Io {
        path: path.clone(),
        source,
    })?;
    let (tx, rx) = sync_channel::<Vec<u8>>(4);
    let (blob, size) = (layer.blob, layer.size);
    // The blob digest on a thread of its own, as the fetch task computes it in a pull.
    let reader = std::thread::spawn(move || -> Result<(), Error> {
        let mut verifier = decode::BlobVerifier::new(blob, size);
        loop {
            let mut piece = vec![0u8; PIECE];
            let n = file.read(&mut piece).map_err(|source| Error::Io {
                path: path.clone(),
                source,
            })?;
            if n == 0 {
                break;
            }
            piece.truncate(n);
            verifier.update(&piece)?;
            if tx.send(piece).is_err() {
                break;
            }
        }
        verifier.finish()?;
        Ok(())
    });
    let source = BufReader::with_capacity(256 << 10, Pieces::new(rx));
    let blob = layer::Blob {
        digest: layer.blob,
        compression: layer.compression,
        diff_id: layer.diff_id,
        limit: None,
    };
    let size = match layer::decode_and_unpack(source, dest, blob, &unpack::Options::default()) {
        Ok(size) => size,
        Err(layer::Failure::Decode(e)) => return Err(e.into()),
        Err(layer::Failure::Unpack(source)) => {
            return Err(Error::Unpack {
                layer: layer.blob,
                source,
            });
        }
    };
    reader.join().expect("the blob reader does not panic")?;
    Ok(size)
}

/// The pieces the reader thread sends, as a byte stream.
struct Pieces {
    rx: Receiver<Vec<u8>>,
    current: Vec<u8>,
    at: usize,
}

impl Pieces {
    fn new(rx: Receiver<Vec<u8>>) -> Pieces {
        Pieces {
            rx,
            current: Vec::new(),
            at: 0,
        }
    }
}

impl Read for Pieces {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.current.len() {
            match self.rx.recv() {
                Ok(piece) => {
                    self.current = piece;
                    self.at = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.at);
        buf[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

fn blob_path(layout: &Path, digest: &Digest) -> PathBuf {
    let text = digest.to_string();
    let (algorithm, hex) = text.split_once(':').unwrap_or(("sha256", &text));
    layout.join("blobs").join(algorithm).join(hex)
}

fn read_json(path: &Path) -> Result<serde_json::Value, Error> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Layout {
        path: path.to_owned(),
        why: e.to_string(),
    })
}

/// The layers of the first manifest in the layout's index, with their diff IDs.
fn read_layers(layout: &Path) -> Result<Vec<Layer>, Error> {
    let index_path = layout.join("index.json");
    let index = read_json(&index_path)?;
    let bad = |path: &Path, why: &str| Error::Layout {
        path: path.to_owned(),
        why: why.to_owned(),
    };
    let digest = |value: &serde_json::Value, path: &Path| -> Result<Digest, Error> {
        value
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad(path, "a digest is missing or malformed"))
    };
    let manifest_digest = digest(&index["manifests"][0]["digest"], &index_path)?;
    let manifest_path = blob_path(layout, &manifest_digest);
    let manifest = read_json(&manifest_path)?;
    let config_path = blob_path(
        layout,
        &digest(&manifest["config"]["digest"], &manifest_path)?,
    );
    let config = read_json(&config_path)?;
    let descriptors = manifest["layers"]
        .as_array()
        .ok_or_else(|| bad(&manifest_path, "no layers"))?;
    let diff_ids = config["rootfs"]["diff_ids"]
        .as_array()
        .ok_or_else(|| bad(&config_path, "no rootfs.diff_ids"))?;
    if descriptors.len() != diff_ids.len() {
        return Err(bad(&config_path, "diff_ids and layers differ in number"));
    }
    descriptors
        .iter()
        .zip(diff_ids)
        .map(|(descriptor, diff_id)| {
            let media_type = descriptor["mediaType"].as_str().unwrap_or_default();
            Ok(Layer {
                blob: digest(&descriptor["digest"], &manifest_path)?,
                size: descriptor["size"]
                    .as_u64()
                    .ok_or_else(|| bad(&manifest_path, "a layer has no size"))?,
                diff_id: digest(diff_id, &config_path)?,
                compression: layer_compression(media_type)
                    .map_err(|e| bad(&manifest_path, &e.to_string()))?,
            })
        })
        .collect()
}
