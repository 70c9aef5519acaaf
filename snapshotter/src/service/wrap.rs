//! The tonic glue: the generated `Snapshots` trait implemented over a [`Store`]. Each call runs
//! the (blocking: file system and database) store operation on tokio's blocking pool.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use futures::Stream;
use tonic::{Request, Response, Status};

use super::convert;
use crate::proto::containerd::services::snapshots::v1 as api;
use crate::store::{self, Store};

/// How many infos go in one `List` response message.
const LIST_BATCH: usize = 100;

/// The snapshots service over one store. Build a server with [`super::server`].
#[derive(Debug, Clone)]
pub struct Service {
    store: Arc<Store>,
}

impl Service {
    /// A service answering from `store`.
    pub fn new(store: Arc<Store>) -> Service {
        Service { store }
    }

    /// Runs `op` on the blocking pool, logging it with the key it is about.
    async fn run<T: Send + 'static>(
        &self,
        rpc: &'static str,
        key: String,
        op: impl FnOnce(&Store, &str) -> store::Result<T> + Send + 'static,
    ) -> Result<T, Status> {
        let store = Arc::clone(&self.store);
        let started = Instant::now();
        let outcome = tokio::task::spawn_blocking(move || {
            let result = op(&store, &key);
            (key, result)
        })
        .await
        .map_err(|e| Status::internal(format!("snapshots {rpc}: {e}")))?;
        let (key, result) = outcome;
        let elapsed_ms = started.elapsed().as_millis() as u64;
        match &result {
            Ok(_) => tracing::debug!(rpc, %key, elapsed_ms, "ok"),
            Err(e) => tracing::debug!(rpc, %key, elapsed_ms, error = %e, "failed"),
        }
        result.map_err(Status::from)
    }
}

type ListStream = Pin<Box<dyn Stream<Item = Result<api::ListSnapshotsResponse, Status>> + Send>>;

#[tonic::async_trait]
impl api::snapshots_server::Snapshots for Service {
    async fn prepare(
        &self,
        request: Request<api::PrepareSnapshotRequest>,
    ) -> Result<Response<api::PrepareSnapshotResponse>, Status> {
        let r = request.into_inner();
        let labels = convert::labels(r.labels);
        let mounts = self
            .run("prepare", r.key, move |s, key| {
                s.prepare(key, convert::parent(&r.parent), labels)
            })
            .await?;
        Ok(Response::new(api::PrepareSnapshotResponse {
            mounts: convert::mounts(mounts),
        }))
    }

    async fn view(
        &self,
        request: Request<api::ViewSnapshotRequest>,
    ) -> Result<Response<api::ViewSnapshotResponse>, Status> {
        let r = request.into_inner();
        let labels = convert::labels(r.labels);
        let mounts = self
            .run("view", r.key, move |s, key| {
                s.view(key, convert::parent(&r.parent), labels)
            })
            .await?;
        Ok(Response::new(api::ViewSnapshotResponse {
            mounts: convert::mounts(mounts),
        }))
    }

    async fn mounts(
        &self,
        request: Request<api::MountsRequest>,
    ) -> Result<Response<api::MountsResponse>, Status> {
        let r = request.into_inner();
        let mounts = self.run("mounts", r.key, |s, key| s.mounts(key)).await?;
        Ok(Response::new(api::MountsResponse {
            mounts: convert::mounts(mounts),
        }))
    }

    async fn commit(
        &self,
        request: Request<api::CommitSnapshotRequest>,
    ) -> Result<Response<()>, Status> {
        let r = request.into_inner();
        let labels = convert::labels(r.labels);
        self.run("commit", r.key, move |s, key| {
            s.commit_active(key, &r.name, labels)
        })
        .await?;
        Ok(Response::new(()))
    }

    async fn remove(
        &self,
        request: Request<api::RemoveSnapshotRequest>,
    ) -> Result<Response<()>, Status> {
        let r = request.into_inner();
        self.run("remove", r.key, |s, key| s.release(key)).await?;
        Ok(Response::new(()))
    }

    async fn stat(
        &self,
        request: Request<api::StatSnapshotRequest>,
    ) -> Result<Response<api::StatSnapshotResponse>, Status> {
        let r = request.into_inner();
        let info = self.run("stat", r.key, |s, key| s.stat(key)).await?;
        Ok(Response::new(api::StatSnapshotResponse {
            info: Some(convert::info(info)),
        }))
    }

    async fn update(
        &self,
        request: Request<api::UpdateSnapshotRequest>,
    ) -> Result<Response<api::UpdateSnapshotResponse>, Status> {
        let r = request.into_inner();
        let info = r
            .info
            .ok_or_else(|| Status::invalid_argument("update: the request has no snapshot info"))?;
        let paths = r.update_mask.map(|m| m.paths).unwrap_or_default();
        let labels = convert::labels(info.labels);
        let info = self
            .run("update", info.name, move |s, key| {
                s.update(key, labels, &paths)
            })
            .await?;
        Ok(Response::new(api::UpdateSnapshotResponse {
            info: Some(convert::info(info)),
        }))
    }

    type ListStream = ListStream;

    async fn list(
        &self,
        request: Request<api::ListSnapshotsRequest>,
    ) -> Result<Response<Self::ListStream>, Status> {
        let r = request.into_inner();
        let filters = r.filters;
        let infos = self
            .run("list", String::new(), move |s, _| s.walk(&filters))
            .await?;
        let mut batches = Vec::with_capacity(infos.len().div_ceil(LIST_BATCH));
        let mut infos = infos.into_iter().map(convert::info).peekable();
        while infos.peek().is_some() {
            let info = infos.by_ref().take(LIST_BATCH).collect();
            batches.push(Ok(api::ListSnapshotsResponse { info }));
        }
        Ok(Response::new(Box::pin(futures::stream::iter(batches))))
    }

    async fn usage(
        &self,
        request: Request<api::UsageRequest>,
    ) -> Result<Response<api::UsageResponse>, Status> {
        let r = request.into_inner();
        let usage = self.run("usage", r.key, |s, key| s.usage(key)).await?;
        Ok(Response::new(convert::usage(usage)))
    }

    async fn cleanup(
        &self,
        _request: Request<api::CleanupRequest>,
    ) -> Result<Response<()>, Status> {
        let removed = self
            .run("cleanup", String::new(), |s, _| s.cleanup())
            .await?;
        if removed > 0 {
            tracing::info!(removed, "cleanup removed unreferenced directories");
        }
        Ok(Response::new(()))
    }
}
