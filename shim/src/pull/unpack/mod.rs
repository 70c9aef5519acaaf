//! Interim unpacker over `tar::Entry::unpack_in`, replaced by the overlayfs-aware unpacker.
#![allow(missing_docs)]
use std::path::Path;
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub allow_devices: bool,
}
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub entries: u64,
    pub files: u64,
    pub bytes: u64,
}
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}
impl Error {
    pub fn kind(&self) -> crate::error::Kind {
        crate::error::Kind::InvalidArgument
    }
}
pub type Result<T, E = Error> = std::result::Result<T, E>;
pub fn unpack<R: std::io::Read>(tar: R, dest: &Path, _options: &Options) -> Result<Stats> {
    let mut a = tar::Archive::new(tar);
    a.set_preserve_permissions(true);
    a.set_preserve_ownerships(true);
    a.set_unpack_xattrs(true);
    for e in a.entries()? {
        let mut e = e?;
        e.unpack_in(dest)?;
    }
    Ok(Stats::default())
}
