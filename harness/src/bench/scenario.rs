//! The named scenarios of issue 6: an image shape, the link to the registry, and what is
//! measured (a cold pull, a repeat pull, or concurrent pulls).

use std::time::Duration;

use crate::image::{Compression, Generated, Mix};
use crate::proxy::Shaping;

use super::{Error, Result};

/// Every scenario name, in the order of the standard set.
pub const NAMES: &[&str] = &[
    "loopback-gzip",
    "s3like-gzip",
    "s3like-zstd",
    "many-layers",
    "warm",
    "fanout",
    "scale",
];

/// What a scenario measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One pull into an empty store.
    Cold,
    /// A second pull of an image the store already holds; only the second is timed.
    Warm,
    /// This many pulls of one image at once into one store, timed until the last ends.
    Fanout(usize),
}

/// One measured case: an image, a link and a mode. `scale` gives several.
#[derive(Debug, Clone)]
pub struct Case {
    /// `loopback-gzip`, or `scale@512MB` for one point of a sweep over sizes.
    pub name: String,
    /// The scenario it belongs to.
    pub scenario: &'static str,
    /// One line on what it is, for reports.
    pub description: String,
    /// The image.
    pub image: Generated,
    /// The link; pass-through for loopback.
    pub shaping: Shaping,
    /// What is timed.
    pub mode: Mode,
}

const MB: u64 = 1_000_000;

/// The cases of scenario `name`, with image sizes multiplied by `scale` (1.0 is the issue's).
pub fn cases(name: &str, scale: f64) -> Result<Vec<Case>> {
    let size = |bytes: u64| ((bytes as f64 * scale) as u64).max(64 * 1024);
    let s3 = Shaping {
        per_connection: Some(30 * MB),
        first_byte: Duration::from_millis(20),
        ..Shaping::default()
    };
    let generated = |total: u64, layers: usize, mix: Mix, compression: Compression| Generated {
        seed: 6,
        total_size: size(total),
        layers,
        mix,
        compression,
    };
    let case = |name: &str,
                scenario: &'static str,
                description: &str,
                image: Generated,
                shaping: Shaping,
                mode: Mode| Case {
        name: name.to_owned(),
        scenario,
        description: description.to_owned(),
        image,
        shaping,
        mode,
    };
    let small_gzip = |total| generated(total, 3, Mix::SmallFiles, Compression::Gzip);
    Ok(match name {
        "loopback-gzip" => vec![case(
            name,
            "loopback-gzip",
            "3 gzip layers of many small files (~500 MB compressed), loopback, no shaping",
            small_gzip(1200 * MB),
            Shaping::default(),
            Mode::Cold,
        )],
        "s3like-gzip" | "s3like-zstd" => {
            let (scenario, compression) = if name == "s3like-gzip" {
                ("s3like-gzip", Compression::Gzip)
            } else {
                ("s3like-zstd", Compression::Zstd)
            };
            vec![case(
                name,
                scenario,
                "1 layer of large files, 30 MB/s per connection, 20 ms to first byte",
                generated(1000 * MB, 1, Mix::LargeFiles, compression),
                s3.clone(),
                Mode::Cold,
            )]
        }
        "many-layers" => vec![case(
            name,
            "many-layers",
            "40 gzip layers of 4 MB, 20 ms to first byte",
            generated(40 * 4 * MB, 40, Mix::SmallFiles, Compression::Gzip),
            Shaping {
                first_byte: Duration::from_millis(20),
                ..Shaping::default()
            },
            Mode::Cold,
        )],
        "warm" => vec![case(
            name,
            "warm",
            "a repeat pull of an image already in the store (loopback)",
            small_gzip(100 * MB),
            Shaping::default(),
            Mode::Warm,
        )],
        "fanout" => vec![
            case(
                "fanout@1",
                "fanout",
                "a single pull of the fanout image, the measure of the fanout (loopback)",
                small_gzip(100 * MB),
                Shaping::default(),
                Mode::Cold,
            ),
            case(
                name,
                "fanout",
                "10 concurrent pulls of one image into one store (loopback)",
                small_gzip(100 * MB),
                Shaping::default(),
                Mode::Fanout(10),
            ),
        ],
        "scale" => [250, 500, 1000, 2000]
            .into_iter()
            .map(|mb| {
                let image = small_gzip(mb * MB);
                case(
                    &format!("scale@{}MB", image.total_size / MB),
                    "scale",
                    "the loopback-gzip shape at 0.25, 0.5, 1 and 2 GB",
                    image,
                    Shaping::default(),
                    Mode::Cold,
                )
            })
            .collect(),
        _ => {
            return Err(Error::UnknownScenario {
                name: name.to_owned(),
            });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_scenario_has_cases_and_unknown_ones_fail() {
        for name in NAMES {
            let cases = cases(name, 1.0).unwrap();
            assert!(!cases.is_empty(), "{name}");
            assert!(cases.iter().all(|c| c.scenario == *name));
        }
        assert_eq!(cases("scale", 1.0).unwrap().len(), 4);
        let fanout = cases("fanout", 1.0).unwrap();
        assert_eq!(fanout[0].mode, Mode::Cold);
        assert_eq!(fanout[1].mode, Mode::Fanout(10));
        assert_eq!(fanout[0].image.total_size, fanout[1].image.total_size);
        assert_eq!(
            cases("many-layers", 0.5).unwrap()[0].image.total_size,
            80 * MB
        );
        assert!(matches!(
            cases("nope", 1.0),
            Err(Error::UnknownScenario { .. })
        ));
    }
}
