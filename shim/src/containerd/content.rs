//! containerd's content store: blobs by digest, with labels (the garbage collector follows the
//! `containerd.io/gc.ref.*` ones).
//!
//! A write is containerd's Write stream: Stat under a ref, Write chunks from offset 0 (which
//! truncates what an earlier writer of the same ref left), Commit with the expected digest and
//! size. A blob that already exists is success, as in containerd's own fetchers; its labels
//! are then set with Update, so a second registration can add references the first lacked.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use futures::StreamExt;

use super::{Client, Lease, Result, parse_digest, rpc};
use crate::digest::Digest;
use crate::proto::containerd::services::content::v1 as api;

/// Bytes per Write message; containerd accepts messages up to 16 MiB.
const CHUNK: usize = 1 << 20;
/// How often a write whose ref another writer holds is retried, 100 ms apart.
const LOCKED_RETRIES: u32 = 50;

/// What containerd knows about a blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    /// The blob's digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
}

/// Whether a write stored the blob or found it there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// The blob was written.
    Created,
    /// The blob was already in the store (its labels were updated).
    Existed,
}

fn info(call: &'static str, info: api::Info) -> Result<BlobInfo> {
    Ok(BlobInfo {
        digest: parse_digest(call, &info.digest)?,
        size: u64::try_from(info.size).unwrap_or(0),
        labels: info.labels.into_iter().collect(),
    })
}

/// The Write stream's messages for `bytes`: stat, chunks, commit with `labels`.
fn write_requests(
    reference: &str,
    digest: &Digest,
    bytes: &[u8],
    labels: &HashMap<String, String>,
) -> Vec<api::WriteContentRequest> {
    let total = i64::try_from(bytes.len()).unwrap_or(i64::MAX);
    let base = api::WriteContentRequest {
        r#ref: reference.to_owned(),
        total,
        expected: digest.to_string(),
        ..Default::default()
    };
    let mut requests = vec![api::WriteContentRequest {
        action: api::WriteAction::Stat.into(),
        ..base.clone()
    }];
    let mut offset = 0;
    for chunk in bytes.chunks(CHUNK) {
        requests.push(api::WriteContentRequest {
            action: api::WriteAction::Write.into(),
            offset,
            data: chunk.to_vec(),
            ..base.clone()
        });
        offset += i64::try_from(chunk.len()).unwrap_or(i64::MAX);
    }
    requests.push(api::WriteContentRequest {
        action: api::WriteAction::Commit.into(),
        offset,
        labels: labels.clone(),
        ..base
    });
    requests
}

/// Where a blob's bytes come from.
#[derive(Debug, Clone, Copy)]
enum Source<'a> {
    Bytes(&'a [u8]),
    File(&'a Path, u64),
}

/// The Write stream's messages for a blob read from `file` as it goes: stat, chunks of
/// [`CHUNK`] bytes, commit. A read error ends the stream early; containerd then refuses the
/// commit (wrong size), so nothing half-written is committed.
fn file_requests(
    reference: &str,
    digest: &Digest,
    file: tokio::fs::File,
    size: u64,
    labels: HashMap<String, String>,
) -> impl futures::Stream<Item = api::WriteContentRequest> + Send + 'static {
    let base = api::WriteContentRequest {
        r#ref: reference.to_owned(),
        total: i64::try_from(size).unwrap_or(i64::MAX),
        expected: digest.to_string(),
        ..Default::default()
    };
    let stat = api::WriteContentRequest {
        action: api::WriteAction::Stat.into(),
        ..base.clone()
    };
    let commit = api::WriteContentRequest {
        action: api::WriteAction::Commit.into(),
        offset: base.total,
        labels,
        ..base.clone()
    };
    let mut offset = 0i64;
    let chunks = tokio_util::io::ReaderStream::with_capacity(file, CHUNK)
        .take_while(|read| futures::future::ready(read.is_ok()))
        .filter_map(|read| futures::future::ready(read.ok()))
        .map(move |data| {
            let request = api::WriteContentRequest {
                action: api::WriteAction::Write.into(),
                offset,
                data: data.to_vec(),
                ..base.clone()
            };
            offset += i64::try_from(data.len()).unwrap_or(i64::MAX);
            request
        });
    futures::stream::once(futures::future::ready(stat))
        .chain(chunks)
        .chain(futures::stream::once(futures::future::ready(commit)))
}

impl Client {
    fn content(&self) -> api::content_client::ContentClient<tonic::transport::Channel> {
        api::content_client::ContentClient::new(self.channel.clone())
    }

    /// Stores `bytes` as the blob `digest` with `labels` (containerd verifies the digest and
    /// size). A blob already present is success; its labels are set to include `labels`.
    pub async fn write_blob(
        &self,
        lease: Option<&Lease>,
        digest: &Digest,
        bytes: &[u8],
        labels: &BTreeMap<String, String>,
    ) -> Result<Written> {
        self.write(lease, digest, Source::Bytes(bytes), labels)
            .await
    }

    /// As [`Client::write_blob`], streaming the blob from the file at `path` (`size` bytes)
    /// in chunks, for layer blobs too large to hold in memory.
    pub async fn write_blob_file(
        &self,
        lease: Option<&Lease>,
        digest: &Digest,
        path: &Path,
        size: u64,
        labels: &BTreeMap<String, String>,
    ) -> Result<Written> {
        self.write(lease, digest, Source::File(path, size), labels)
            .await
    }

    async fn write(
        &self,
        lease: Option<&Lease>,
        digest: &Digest,
        source: Source<'_>,
        labels: &BTreeMap<String, String>,
    ) -> Result<Written> {
        let labels: HashMap<String, String> = labels.clone().into_iter().collect();
        // One ref per digest, as containerd's fetchers use: two writers of one blob meet on
        // the ref's lock instead of both writing.
        let reference = format!("hoist-{digest}");
        let mut attempt = 0;
        loop {
            match self
                .write_once(lease, &reference, digest, source, &labels)
                .await
            {
                Ok(()) => return Ok(Written::Created),
                Err(status) if status.code() == tonic::Code::AlreadyExists => break,
                Err(status)
                    if status.code() == tonic::Code::Unavailable
                        && status.message().contains("locked")
                        && attempt < LOCKED_RETRIES =>
                {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(status) => return Err(rpc("content.Write", digest)(status)),
            }
        }
        if !labels.is_empty() {
            self.set_blob_labels(lease, digest, labels).await?;
        }
        Ok(Written::Existed)
    }

    async fn write_once(
        &self,
        lease: Option<&Lease>,
        reference: &str,
        digest: &Digest,
        source: Source<'_>,
        labels: &HashMap<String, String>,
    ) -> std::result::Result<(), tonic::Status> {
        let mut responses = match source {
            Source::Bytes(bytes) => {
                let requests = write_requests(reference, digest, bytes, labels);
                let request = self.request(futures::stream::iter(requests), lease);
                self.content().write(request).await?.into_inner()
            }
            Source::File(path, size) => {
                let file = tokio::fs::File::open(path)
                    .await
                    .map_err(|e| tonic::Status::not_found(format!("{}: {e}", path.display())))?;
                let requests = file_requests(reference, digest, file, size, labels.clone());
                let request = self.request(requests, lease);
                self.content().write(request).await?.into_inner()
            }
        };
        while responses.message().await?.is_some() {}
        Ok(())
    }

    /// Sets `labels` on the blob `digest`, leaving its other labels as they are.
    async fn set_blob_labels(
        &self,
        lease: Option<&Lease>,
        digest: &Digest,
        labels: HashMap<String, String>,
    ) -> Result<()> {
        let paths = labels.keys().map(|k| format!("labels.{k}")).collect();
        let request = self.request(
            api::UpdateRequest {
                info: Some(api::Info {
                    digest: digest.to_string(),
                    labels,
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask { paths }),
            },
            lease,
        );
        self.content()
            .update(request)
            .await
            .map_err(rpc("content.Update", digest))?;
        Ok(())
    }

    /// The blob `digest`, or `None` when containerd does not have it.
    pub async fn blob(&self, digest: &Digest) -> Result<Option<BlobInfo>> {
        let request = self.request(
            api::InfoRequest {
                digest: digest.to_string(),
            },
            None,
        );
        match self.content().info(request).await {
            Ok(response) => match response.into_inner().info {
                Some(i) => info("content.Info", i).map(Some),
                None => Err(super::Error::Incomplete {
                    call: "content.Info",
                    object: digest.to_string(),
                    missing: "info",
                }),
            },
            Err(status) if status.code() == tonic::Code::NotFound => Ok(None),
            Err(status) => Err(rpc("content.Info", digest)(status)),
        }
    }

    /// Every blob in the namespace.
    pub async fn blobs(&self) -> Result<Vec<BlobInfo>> {
        let request = self.request(api::ListContentRequest::default(), None);
        let mut stream = self
            .content()
            .list(request)
            .await
            .map_err(rpc("content.List", "*"))?
            .into_inner();
        let mut out = Vec::new();
        while let Some(batch) = stream.next().await {
            for i in batch.map_err(rpc("content.List", "*"))?.info {
                out.push(info("content.List", i)?);
            }
        }
        Ok(out)
    }

    /// Deletes the blob `digest`; a blob already gone is not an error.
    pub async fn delete_blob(&self, digest: &Digest) -> Result<()> {
        let request = self.request(
            api::DeleteContentRequest {
                digest: digest.to_string(),
            },
            None,
        );
        match self.content().delete(request).await {
            Ok(_) => Ok(()),
            Err(status) if status.code() == tonic::Code::NotFound => Ok(()),
            Err(status) => Err(rpc("content.Delete", digest)(status)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_stream_stats_writes_in_chunks_and_commits_with_labels() {
        let bytes = vec![7u8; CHUNK * 2 + 5];
        let digest = Digest::of(&bytes);
        let labels: HashMap<String, String> = [("k".to_owned(), "v".to_owned())].into();
        let requests = write_requests("r", &digest, &bytes, &labels);
        let actions: Vec<i32> = requests.iter().map(|r| r.action).collect();
        let (stat, write, commit) = (
            api::WriteAction::Stat as i32,
            api::WriteAction::Write as i32,
            api::WriteAction::Commit as i32,
        );
        assert_eq!(actions, [stat, write, write, write, commit]);
        let offsets: Vec<i64> = requests.iter().map(|r| r.offset).collect();
        let chunk = CHUNK as i64;
        assert_eq!(offsets, [0, 0, chunk, 2 * chunk, 2 * chunk + 5]);
        let written: Vec<u8> = requests.iter().flat_map(|r| r.data.clone()).collect();
        assert_eq!(written, bytes);
        for r in &requests {
            assert_eq!(r.r#ref, "r");
            assert_eq!(r.expected, digest.to_string());
            assert_eq!(r.total, bytes.len() as i64);
        }
        assert_eq!(requests.last().unwrap().labels, labels);
        assert!(requests[..4].iter().all(|r| r.labels.is_empty()));
    }

    #[test]
    fn empty_blob_is_stat_then_commit() {
        let digest = Digest::of(b"");
        let requests = write_requests("r", &digest, b"", &HashMap::new());
        assert_eq!(requests.len(), 2);
        assert_eq!(requests[1].action, api::WriteAction::Commit as i32);
        assert_eq!(requests[1].total, 0);
    }
}
