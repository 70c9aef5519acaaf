//! Adoption of committed layers: containerd learns about a snapshot only through its own
//! snapshots API, so for each layer Hoist committed it is asked what its unpacker asks a
//! remote snapshotter: Prepare under a unique key with the chain ID as target
//! ([`TARGET_LABEL`]). The snapshotter answers AlreadyExists, and containerd records the
//! committed snapshot under the chain ID in its metadata (and under the lease, if any).
//!
//! The `cri.*` labels are those containerd's CRI adds for remote snapshotters
//! (`pkg/snapshotters/annotations.go`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use hoist_snapshotter::proto::containerd::services::snapshots::v1 as api;

use super::{Client, Error, Lease, Result, rpc};
use crate::digest::Digest;

/// The label naming the committed snapshot a Prepare may resolve to.
pub const TARGET_LABEL: &str = "containerd.io/snapshot.ref";
/// The image reference, for remote snapshotters.
pub const IMAGE_REF_LABEL: &str = "containerd.io/snapshot/cri.image-ref";
/// The manifest digest, for remote snapshotters.
pub const MANIFEST_DIGEST_LABEL: &str = "containerd.io/snapshot/cri.manifest-digest";
/// The layer's (compressed) blob digest, for remote snapshotters.
pub const LAYER_DIGEST_LABEL: &str = "containerd.io/snapshot/cri.layer-digest";

/// One layer to adopt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layer {
    /// The chain ID: the committed snapshot's name.
    pub chain_id: Digest,
    /// The layer's blob.
    pub blob: Digest,
}

/// The layers of one image, base first, to adopt into containerd's metadata.
#[derive(Debug, Clone)]
pub struct Adoption<'a> {
    /// The proxy snapshotter's name in containerd (`hoist`).
    pub snapshotter: &'a str,
    /// The image reference.
    pub image: &'a str,
    /// The platform manifest.
    pub manifest: Digest,
    /// The layers, base first.
    pub layers: &'a [Layer],
}

/// A Prepare key no other client uses: containerd's unpacker uses `extract-<time>-<random>
/// <chain id>`.
fn key(index: usize, chain_id: &Digest) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "hoist-adopt-{nanos}-{}-{n}-{index} {chain_id}",
        std::process::id()
    )
}

/// The Prepare request for layer `index` of `adoption`.
fn prepare_request(adoption: &Adoption<'_>, index: usize) -> api::PrepareSnapshotRequest {
    let layer = &adoption.layers[index];
    let labels: HashMap<String, String> = [
        (TARGET_LABEL, layer.chain_id.to_string()),
        (IMAGE_REF_LABEL, adoption.image.to_owned()),
        (MANIFEST_DIGEST_LABEL, adoption.manifest.to_string()),
        (LAYER_DIGEST_LABEL, layer.blob.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    api::PrepareSnapshotRequest {
        snapshotter: adoption.snapshotter.to_owned(),
        key: key(index, &layer.chain_id),
        parent: index
            .checked_sub(1)
            .map(|p| adoption.layers[p].chain_id.to_string())
            .unwrap_or_default(),
        labels,
    }
}

impl Client {
    /// Makes containerd record each committed layer of `adoption`, in chain order. Fails with
    /// [`Error::NotAdopted`] for a layer the snapshotter does not have committed on the
    /// expected parent (the snapshot Prepare created instead is removed).
    pub async fn adopt(&self, lease: Option<&Lease>, adoption: &Adoption<'_>) -> Result<()> {
        let mut snapshots = api::snapshots_client::SnapshotsClient::new(self.channel.clone());
        for (index, layer) in adoption.layers.iter().enumerate() {
            let prepare = prepare_request(adoption, index);
            let key = prepare.key.clone();
            match snapshots.prepare(self.request(prepare, lease)).await {
                Err(status) if status.code() == tonic::Code::AlreadyExists => continue,
                Err(status) => return Err(rpc("snapshots.Prepare", layer.chain_id)(status)),
                Ok(_) => {}
            }
            let remove = api::RemoveSnapshotRequest {
                snapshotter: adoption.snapshotter.to_owned(),
                key: key.clone(),
            };
            if let Err(status) = snapshots.remove(self.request(remove, lease)).await {
                tracing::warn!(%key, error = %status.message(), "could not remove an unwanted snapshot");
            }
            return Err(Error::NotAdopted {
                snapshotter: adoption.snapshotter.to_owned(),
                chain_id: layer.chain_id,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepares_on_the_previous_chain_id_with_the_target_labels() {
        let layers: Vec<Layer> = (0u8..3)
            .map(|i| Layer {
                chain_id: Digest::of(&[b'c', i]),
                blob: Digest::of(&[b'b', i]),
            })
            .collect();
        let adoption = Adoption {
            snapshotter: "hoist",
            image: "r.example/a:1",
            manifest: Digest::of(b"m"),
            layers: &layers,
        };
        let requests: Vec<_> = (0..3).map(|i| prepare_request(&adoption, i)).collect();
        assert_eq!(requests[0].parent, "");
        assert_eq!(requests[2].parent, layers[1].chain_id.to_string());
        for (r, layer) in requests.iter().zip(&layers) {
            assert_eq!(r.snapshotter, "hoist");
            assert!(
                r.key.ends_with(&format!(" {}", layer.chain_id)),
                "{}",
                r.key
            );
            assert_eq!(r.labels[TARGET_LABEL], layer.chain_id.to_string());
            assert_eq!(r.labels[LAYER_DIGEST_LABEL], layer.blob.to_string());
            assert_eq!(r.labels[IMAGE_REF_LABEL], "r.example/a:1");
        }
        assert_ne!(requests[0].key, prepare_request(&adoption, 0).key);
    }
}
