//! Large deterministic images from a seed, for benchmarks.
//!
//! [`Generated::image`] only lays out entries (paths, sizes, seeds); the bytes are produced while
//! the layout is written, so a 2 GB image costs a few megabytes of entry descriptions.

use std::collections::BTreeSet;

use super::rng::{Rng, derive};
use super::{Compression, Config, Content, Entry, Error, Image, Layer, Result};

/// What kind of files fill the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mix {
    /// Many 1–64 KiB files in nested package directories, like a distribution's `/usr/share`.
    SmallFiles,
    /// A few large files per layer, like model weights.
    LargeFiles,
}

/// A reproducible random image: the same fields give the same bytes and digests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    /// Seed of everything: names, sizes, contents.
    pub seed: u64,
    /// Bytes of file content across all layers (uncompressed, before tar headers).
    pub total_size: u64,
    /// Number of layers; the content is split evenly between them.
    pub layers: usize,
    /// Small or large files.
    pub mix: Mix,
    /// Compression of every layer.
    pub compression: Compression,
}

/// Smallest and largest file of [`Mix::SmallFiles`].
const SMALL_MIN: u64 = 1024;
const SMALL_MAX: u64 = 64 * 1024;

/// Where small-file packages live, as in a Debian or Node image.
const TOPS: [&str; 6] = [
    "usr/share/doc",
    "usr/share/locale",
    "usr/lib/python3/dist-packages",
    "usr/share/man/man1",
    "usr/include",
    "opt/app/node_modules",
];
const PACKAGES: [&str; 8] = [
    "libfoo", "zlib", "openssl", "requests", "numpy", "lodash", "gettext", "ncurses",
];
const EXTENSIONS: [&str; 8] = ["txt", "py", "h", "js", "json", "mo", "gz", "so"];

impl Generated {
    /// The image: layers of entries with generated contents, a small runtime config.
    pub fn image(&self) -> Image {
        let layers = self.layers.max(1);
        let per_layer = self.total_size / layers as u64;
        let layers = (0..layers)
            .map(|index| {
                let budget = if index + 1 == layers {
                    self.total_size - per_layer * (layers as u64 - 1)
                } else {
                    per_layer
                };
                let seed = derive(self.seed, index as u64);
                let entries = match self.mix {
                    Mix::SmallFiles => small_files(seed, index, budget),
                    Mix::LargeFiles => large_files(self.seed, seed, index, budget),
                };
                Layer::new(entries, self.compression)
            })
            .collect();
        let mut image = Image::new(layers);
        image.config = Config {
            env: vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()],
            cmd: vec!["/bin/sh".into()],
            ..Config::default()
        };
        image
    }
}

/// Adds `Dir` entries for `path` and its parents not yet in `dirs`, parents first.
fn ensure_dirs(entries: &mut Vec<Entry>, dirs: &mut BTreeSet<String>, path: &str) {
    let mut end = 0;
    for part in path.split('/') {
        end += part.len();
        let dir = &path[..end];
        if dirs.insert(dir.to_owned()) {
            entries.push(Entry::dir(dir));
        }
        end += 1;
    }
}

fn small_files(seed: u64, layer: usize, budget: u64) -> Vec<Entry> {
    let mut rng = Rng::new(seed);
    let mut entries = Vec::new();
    let mut dirs = BTreeSet::new();
    let mut left = budget;
    let mut files: Vec<String> = Vec::new();
    let mut package = 0;
    while left > 0 {
        let top = TOPS[rng.range(0, TOPS.len() as u64 - 1) as usize];
        let name = PACKAGES[rng.range(0, PACKAGES.len() as u64 - 1) as usize];
        let mut dir = format!("{top}/{name}-{layer}.{package}");
        package += 1;
        for depth in 0..rng.range(0, 2) {
            dir.push_str(&format!("/sub{depth}"));
        }
        ensure_dirs(&mut entries, &mut dirs, &dir);
        for _ in 0..rng.range(5, 40) {
            if left == 0 {
                break;
            }
            // Log-uniform sizes between 1 and 64 KiB: as many 1–2 KiB files as 32–64 KiB ones.
            let shift = rng.range(10, 15);
            let size = rng
                .range(1 << shift, (2 << shift) - 1)
                .clamp(SMALL_MIN, SMALL_MAX)
                .min(left);
            left -= size;
            let ext = EXTENSIONS[rng.range(0, EXTENSIONS.len() as u64 - 1) as usize];
            let path = format!("{dir}/file{}.{ext}", files.len());
            let content = Content::Generated {
                seed: rng.next_u64(),
                size,
            };
            let mode = if ext == "so" { 0o755 } else { 0o644 };
            entries.push(Entry::file(path.clone(), content).with_mode(mode));
            // Now and then a symlink to the file, and a hard link to an earlier one.
            if rng.chance(2) {
                entries.push(Entry::symlink(
                    format!("{path}.link"),
                    format!("file{}.{ext}", files.len()),
                ));
            }
            if rng.chance(1) && !files.is_empty() {
                let target = files[rng.range(0, files.len() as u64 - 1) as usize].clone();
                entries.push(Entry::hardlink(
                    format!("{dir}/hard{}", files.len()),
                    target,
                ));
            }
            files.push(path);
        }
    }
    entries
}

fn large_files(image_seed: u64, seed: u64, layer: usize, budget: u64) -> Vec<Entry> {
    let mut rng = Rng::new(seed);
    let dir = format!("opt/models/model-{image_seed}");
    let mut entries = Vec::new();
    ensure_dirs(&mut entries, &mut BTreeSet::new(), &dir);
    let config_size = budget.min(1024);
    entries.push(Entry::file(
        format!("{dir}/config-{layer}.json"),
        Content::Generated {
            seed: rng.next_u64(),
            size: config_size,
        },
    ));
    let mut left = budget - config_size;
    let shards = rng.range(1, 3);
    for shard in 0..shards {
        let size = if shard + 1 == shards {
            left
        } else {
            // Between half and one and a half of an even share.
            let share = left / (shards - shard);
            rng.range(share / 2, share + share / 2).min(left)
        };
        left -= size;
        entries.push(Entry::file(
            format!("{dir}/shard-{layer:02}-{shard:02}.safetensors"),
            Content::Generated {
                seed: rng.next_u64(),
                size,
            },
        ));
    }
    entries
}

/// Parses a size: a number with an optional unit, binary (`KiB`, `MiB`, `GiB`, or just `K`,
/// `M`, `G`) or decimal (`KB`, `MB`, `GB`), case-insensitive; `B` or nothing for bytes.
pub fn parse_size(text: &str) -> Result<u64> {
    let invalid = || Error::InvalidSize {
        text: text.to_owned(),
    };
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let number: f64 = number.parse().map_err(|_| invalid())?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        _ => return Err(invalid()),
    };
    let bytes = number * multiplier as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(invalid());
    }
    Ok(bytes.round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content_size(image: &Image) -> u64 {
        image
            .layers
            .iter()
            .flat_map(|l| &l.entries)
            .map(|e| match e {
                Entry::File { content, .. } => content.len(),
                _ => 0,
            })
            .sum()
    }

    #[test]
    fn same_seed_same_image_and_sizes_add_up() {
        for mix in [Mix::SmallFiles, Mix::LargeFiles] {
            let spec = Generated {
                seed: 42,
                total_size: 3 << 20,
                layers: 3,
                mix,
                compression: Compression::Gzip,
            };
            let a = spec.image();
            assert_eq!(a, spec.image());
            assert_ne!(
                a,
                Generated {
                    seed: 43,
                    ..spec.clone()
                }
                .image()
            );
            assert_eq!(a.layers.len(), 3);
            assert_eq!(content_size(&a), 3 << 20, "{mix:?}");
        }
    }

    #[test]
    fn small_files_stay_in_range() {
        let image = Generated {
            seed: 1,
            total_size: 8 << 20,
            layers: 2,
            mix: Mix::SmallFiles,
            compression: Compression::Zstd,
        }
        .image();
        let sizes: Vec<u64> = image
            .layers
            .iter()
            .flat_map(|l| &l.entries)
            .filter_map(|e| match e {
                Entry::File { content, .. } => Some(content.len()),
                _ => None,
            })
            .collect();
        assert!(sizes.len() > 100);
        // Only a layer's last file may be cut short by the budget.
        assert!(sizes.iter().filter(|s| **s < SMALL_MIN).count() <= 2);
        assert!(sizes.iter().all(|s| *s <= SMALL_MAX));
    }

    #[test]
    fn parse_size_units() {
        let cases = [
            ("64MiB", Some(64 << 20)),
            ("1GiB", Some(1 << 30)),
            ("500MB", Some(500_000_000)),
            ("2g", Some(2 << 30)),
            ("1.5KiB", Some(1536)),
            ("123", Some(123)),
            ("12 kb", Some(12_000)),
            ("MiB", None),
            ("5 parsecs", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_size(text).ok(), want, "{text}");
        }
    }
}
