//! Mounting a pulled image's merged root filesystem read-only, for inspection and tests:
//! overlayfs with the image's layers as lower directories (top layer first), or a read-only
//! bind mount when the image has a single layer.

use std::path::{Path, PathBuf};

use hoist_snapshotter::Store;
use rustix::mount::{MountFlags, mount, mount_bind, mount_remount};

use crate::images::{Images, Record};
use crate::reference::Reference;

/// Mount failures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No pulled image has that name or ID.
    #[error("image {0}: not found in the store (pull it first)")]
    NotFound(String),
    /// A layer of the image is missing from the snapshot store.
    #[error("image {image}: layer snapshot {chain_id} is missing")]
    MissingLayer {
        /// The image.
        image: String,
        /// The missing snapshot.
        chain_id: String,
    },
    /// Looking up the image failed.
    #[error(transparent)]
    Images(#[from] crate::images::Error),
    /// Looking up a snapshot failed.
    #[error(transparent)]
    Store(#[from] hoist_snapshotter::Error),
    /// The mount system call failed.
    #[error("mounting image {image} on {target}: {source}")]
    Mount {
        /// The image.
        image: String,
        /// The mount point.
        target: PathBuf,
        /// Why.
        source: rustix::io::Errno,
    },
}

impl Error {
    /// The kind of failure, for the API edges.
    pub fn kind(&self) -> crate::error::Kind {
        match self {
            Error::NotFound(_) | Error::MissingLayer { .. } => crate::error::Kind::NotFound,
            _ => crate::error::Kind::Internal,
        }
    }
}

/// Finds the record for `image`: a reference (normalised as Docker does) or an image ID.
pub fn find(images: &Images, image: &str) -> Result<Record, Error> {
    if image.starts_with("sha256:")
        && let Some(r) = images
            .list()?
            .into_iter()
            .find(|r| r.config.to_string() == image)
    {
        return Ok(r);
    }
    if let Ok(reference) = image.parse::<Reference>()
        && let Some(r) = images.get(&reference.to_string())?
    {
        return Ok(r);
    }
    Err(Error::NotFound(image.to_owned()))
}

/// The layer directories of `record`, top layer first.
pub fn lower_dirs(store: &Store, record: &Record) -> Result<Vec<PathBuf>, Error> {
    let mut dirs = Vec::with_capacity(record.chain_ids.len());
    for chain_id in record.chain_ids.iter().rev() {
        let snapshot = store
            .get(&chain_id.to_string())?
            .ok_or_else(|| Error::MissingLayer {
                image: record.name.clone(),
                chain_id: chain_id.to_string(),
            })?;
        dirs.push(snapshot.fs);
    }
    Ok(dirs)
}

/// Mounts `image`'s merged root filesystem read-only on `target`.
pub fn mount_image(
    store: &Store,
    images: &Images,
    image: &str,
    target: &Path,
) -> Result<Record, Error> {
    let record = find(images, image)?;
    let dirs = lower_dirs(store, &record)?;
    let failed = |source| Error::Mount {
        image: record.name.clone(),
        target: target.to_owned(),
        source,
    };
    match dirs.as_slice() {
        [] => {
            // An image with no layers has an empty root: bind an empty directory.
            let empty = store.root().join("empty");
            std::fs::create_dir_all(&empty).map_err(|e| {
                failed(rustix::io::Errno::from_io_error(&e).unwrap_or(rustix::io::Errno::IO))
            })?;
            mount_bind(&empty, target).map_err(failed)?;
            mount_remount(target, MountFlags::BIND | MountFlags::RDONLY, "").map_err(failed)?;
        }
        [only] => {
            mount_bind(only, target).map_err(failed)?;
            mount_remount(target, MountFlags::BIND | MountFlags::RDONLY, "").map_err(failed)?;
        }
        many => {
            let lower: Vec<String> = many.iter().map(|d| d.display().to_string()).collect();
            let data = std::ffi::CString::new(format!("lowerdir={}", lower.join(":")))
                .map_err(|_| failed(rustix::io::Errno::INVAL))?;
            mount(
                "overlay",
                target,
                "overlay",
                MountFlags::RDONLY,
                data.as_c_str(),
            )
            .map_err(failed)?;
        }
    }
    Ok(record)
}
