//! Shared bodies of Hoist's fuzz targets (see `checks`).

pub mod checks;
