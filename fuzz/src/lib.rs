//! Shared bodies of Hoist's fuzz targets (see `checks`, `hosts_toml` and `http2`).

pub mod checks;
pub mod hosts_toml;
pub mod http2;
