//! `--set KEY=VALUE[,VALUE...]`: Hoist pull settings (the `[pull]` table of its config file),
//! each list of values swept, every combination run as its own variant of Hoist.

use super::{Error, Result};
use crate::image::parse_size;

/// One `KEY=VALUE` list from the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// A key of Hoist's `[pull]` table: `chunk_size`, `chunks_in_flight`, `chunks_per_image`,
    /// `layers_in_parallel`, ... (Hoist rejects keys it does not know).
    pub key: String,
    /// The values to try, as TOML literals.
    pub values: Vec<String>,
}

impl std::str::FromStr for Setting {
    type Err = Error;

    fn from_str(text: &str) -> Result<Setting> {
        let invalid = |why: &str| Error::InvalidSetting {
            text: text.to_owned(),
            why: why.to_owned(),
        };
        let (key, values) = text
            .split_once('=')
            .ok_or_else(|| invalid("expected KEY=VALUE"))?;
        let key = key.trim();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(invalid("the key is a [pull] setting such as chunk_size"));
        }
        let values = values
            .split(',')
            .map(|value| literal(key, value.trim()).ok_or_else(|| invalid("bad value")))
            .collect::<Result<Vec<_>>>()?;
        Ok(Setting {
            key: key.to_owned(),
            values,
        })
    }
}

/// A value as a TOML literal: sizes (`4MiB`) for keys ending in `size`, booleans, integers.
fn literal(key: &str, value: &str) -> Option<String> {
    if value.is_empty() {
        return None;
    }
    if key.ends_with("size") {
        return parse_size(value).ok().map(|n| n.to_string());
    }
    if value == "true" || value == "false" || value.parse::<i64>().is_ok() {
        return Some(value.to_owned());
    }
    None
}

/// One combination of settings: a variant of Hoist to measure.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Variant {
    /// `(key, TOML literal)` pairs, in command-line order.
    pub settings: Vec<(String, String)>,
}

impl Variant {
    /// `chunk_size=1048576,layers_in_parallel=4`; empty for Hoist's defaults.
    pub fn label(&self) -> String {
        self.settings
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Hoist's config file for this variant.
    pub fn config(&self) -> String {
        let mut text = String::from("[pull]\n");
        for (key, value) in &self.settings {
            text.push_str(&format!("{key} = {value}\n"));
        }
        text
    }
}

/// Every combination of the settings' values; one default variant when there are none.
pub fn variants(settings: &[Setting]) -> Vec<Variant> {
    let mut variants = vec![Variant::default()];
    for setting in settings {
        variants = variants
            .into_iter()
            .flat_map(|variant| {
                setting.values.iter().map(move |value| {
                    let mut next = variant.clone();
                    next.settings.push((setting.key.clone(), value.clone()));
                    next
                })
            })
            .collect();
    }
    variants
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_multiply_into_variants() {
        let settings: Vec<Setting> = ["chunk_size=1MiB,4MiB", "layers_in_parallel=2,3,4"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let variants = variants(&settings);
        assert_eq!(variants.len(), 6);
        assert_eq!(
            variants[0].label(),
            "chunk_size=1048576,layers_in_parallel=2"
        );
        assert_eq!(
            variants[5].config(),
            "[pull]\nchunk_size = 4194304\nlayers_in_parallel = 4\n"
        );
        assert_eq!(super::variants(&[]), vec![Variant::default()]);
        assert!("chunk_size".parse::<Setting>().is_err());
        assert!("chunk_size=lots".parse::<Setting>().is_err());
        assert!("bad key=1".parse::<Setting>().is_err());
    }
}
