//! Reading a secret from its source. The value is wrapped in [`Secret`] at once; errors name
//! the source (file path or variable name), never the value.

use std::collections::HashMap;
use std::path::PathBuf;

use super::config::SecretSource;
use crate::registry::Secret;

/// Why a secret could not be read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("secret file {path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The environment variable is not set.
    #[error("secret environment variable {0} is not set")]
    Env(String),
    /// The source is empty.
    #[error("secret {0} is empty")]
    Empty(String),
}

/// The environment variables secrets may be read from, captured once by the binary
/// (nothing below `main` reads the process environment).
#[derive(Clone, Default)]
pub struct Environment(HashMap<String, String>);

impl Environment {
    /// An environment with these variables.
    pub fn new(vars: impl IntoIterator<Item = (String, String)>) -> Environment {
        Environment(vars.into_iter().collect())
    }
}

impl std::fmt::Debug for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Environment({} variables, values redacted)",
            self.0.len()
        )
    }
}

/// Reads `source`: a file's content or a variable's value, without a trailing newline
/// (Kubernetes Secret files often end in one).
pub fn read(source: &SecretSource, env: &Environment) -> Result<Secret, Error> {
    let value = match source {
        SecretSource::File(path) => std::fs::read_to_string(path).map_err(|e| Error::File {
            path: path.clone(),
            source: e,
        })?,
        SecretSource::Env(name) => env
            .0
            .get(name)
            .cloned()
            .ok_or_else(|| Error::Env(name.clone()))?,
    };
    let value = value.trim_end_matches(['\n', '\r']).to_owned();
    if value.is_empty() {
        return Err(Error::Empty(source.to_string()));
    }
    Ok(Secret::new(value))
}
