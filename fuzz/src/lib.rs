//! Shared bodies of Hoist's fuzz targets (see `checks` and `hosts_toml`).

pub mod checks;
pub mod hosts_toml;
