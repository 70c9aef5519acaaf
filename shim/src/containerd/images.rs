//! containerd's image records: a name, the descriptor of the manifest or index it resolved
//! to, and labels. containerd's CRI lists the records labelled [`MANAGED_LABEL`].

use std::collections::BTreeMap;

use super::{Client, Error, Lease, Result, from_proto, rpc, to_proto};
use crate::manifest::Descriptor;
use crate::proto::containerd::services::images::v1 as api;

/// The label containerd's CRI puts on the image records it manages (`io.cri-containerd.image`).
pub const MANAGED_LABEL: (&str, &str) = ("io.cri-containerd.image", "managed");

/// The label containerd's CRI (1.7 and later) puts on the records of the images its
/// kubelet must never garbage-collect: those of its `pinned_images` (the sandbox image).
pub const PINNED_LABEL: (&str, &str) = ("io.cri-containerd.pinned", "pinned");

/// An image record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// The name: a normalised reference, or `sha256:<config hex>` for CRI's image-ID record.
    pub name: String,
    /// What the name resolved to: a manifest or an index.
    pub target: Descriptor,
    /// Labels.
    pub labels: BTreeMap<String, String>,
}

fn to_api(image: &Image) -> api::Image {
    api::Image {
        name: image.name.clone(),
        labels: image.labels.clone().into_iter().collect(),
        target: Some(to_proto(&image.target)),
        // containerd sets both times itself.
        created_at: None,
        updated_at: None,
    }
}

fn from_api(call: &'static str, image: api::Image) -> Result<Image> {
    let target = image.target.ok_or_else(|| Error::Incomplete {
        call,
        object: image.name.clone(),
        missing: "target",
    })?;
    Ok(Image {
        target: from_proto(call, target)?,
        labels: image.labels.into_iter().collect(),
        name: image.name,
    })
}

impl Client {
    fn images_api(&self) -> api::images_client::ImagesClient<tonic::transport::Channel> {
        api::images_client::ImagesClient::new(self.channel.clone())
    }

    /// Creates the record, or sets the target and `image`'s labels on an existing one of that
    /// name. Other labels of an existing record stay, as containerd's CRI keeps them when it
    /// pulls again (its `io.cri-containerd.pinned`, among them).
    pub async fn put_image(&self, lease: Option<&Lease>, image: &Image) -> Result<()> {
        let create = self.request(
            api::CreateImageRequest {
                image: Some(to_api(image)),
                source_date_epoch: None,
            },
            lease,
        );
        match self.images_api().create(create).await {
            Ok(_) => return Ok(()),
            Err(status) if status.code() == tonic::Code::AlreadyExists => {}
            Err(status) => return Err(rpc("images.Create", &image.name)(status)),
        }
        let paths = std::iter::once("target".to_owned())
            .chain(image.labels.keys().map(|k| format!("labels.{k}")))
            .collect();
        let update = self.request(
            api::UpdateImageRequest {
                image: Some(to_api(image)),
                update_mask: Some(prost_types::FieldMask { paths }),
                source_date_epoch: None,
            },
            lease,
        );
        self.images_api()
            .update(update)
            .await
            .map_err(rpc("images.Update", &image.name))?;
        Ok(())
    }

    /// The record named `name`, or `None`.
    pub async fn image(&self, name: &str) -> Result<Option<Image>> {
        let request = self.request(
            api::GetImageRequest {
                name: name.to_owned(),
            },
            None,
        );
        match self.images_api().get(request).await {
            Ok(response) => response
                .into_inner()
                .image
                .map(|i| from_api("images.Get", i))
                .transpose(),
            Err(status) if status.code() == tonic::Code::NotFound => Ok(None),
            Err(status) => Err(rpc("images.Get", name)(status)),
        }
    }

    /// The records matching containerd `filters` (all of them when empty), e.g.
    /// `labels."io.cri-containerd.image"==managed`.
    pub async fn images(&self, filters: &[&str]) -> Result<Vec<Image>> {
        let request = self.request(
            api::ListImagesRequest {
                filters: filters.iter().map(|f| (*f).to_owned()).collect(),
            },
            None,
        );
        let images = self
            .images_api()
            .list(request)
            .await
            .map_err(rpc("images.List", filters.join(",")))?
            .into_inner()
            .images;
        images
            .into_iter()
            .map(|i| from_api("images.List", i))
            .collect()
    }

    /// Deletes the record `name`; `sync` waits for containerd's garbage collection. Returns
    /// whether it existed.
    pub async fn delete_image(&self, name: &str, sync: bool) -> Result<bool> {
        let request = self.request(
            api::DeleteImageRequest {
                name: name.to_owned(),
                sync,
                target: None,
            },
            None,
        );
        match self.images_api().delete(request).await {
            Ok(_) => Ok(true),
            Err(status) if status.code() == tonic::Code::NotFound => Ok(false),
            Err(status) => Err(rpc("images.Delete", name)(status)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;

    #[test]
    fn records_convert_both_ways_and_need_a_target() {
        let image = Image {
            name: "docker.io/library/a:1".into(),
            target: Descriptor {
                media_type: crate::manifest::OCI_INDEX.into(),
                digest: Digest::of(b"i"),
                size: 9,
                platform: None,
                annotations: BTreeMap::new(),
            },
            labels: [(MANAGED_LABEL.0.to_owned(), MANAGED_LABEL.1.to_owned())].into(),
        };
        assert_eq!(from_api("t", to_api(&image)).unwrap(), image);
        let mut headless = to_api(&image);
        headless.target = None;
        assert!(matches!(
            from_api("t", headless),
            Err(Error::Incomplete {
                missing: "target",
                ..
            })
        ));
    }
}
