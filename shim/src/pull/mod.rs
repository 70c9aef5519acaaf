//! The pull orchestrator: the only place that knows the order of the stages, the limits, the
//! cancellation and the progress reporting.
//!
//! ```text
//! plan ─► per layer, in parallel:  fetch ─► verify blob ─► pipe ─► decode + diff ID ─► unpack (staging)
//!      ─► commit in chain order ─► record the image
//! ```
//! Layers whose chain ID is already committed are not fetched. On any failure the other
//! layers are cancelled and awaited, so that when [`Puller::pull`] returns an error nothing it
//! staged is left on disk and nothing unverified was committed.

pub mod decode;
pub mod fetch;
mod flight;
mod keep;
pub mod layer;
pub mod pipe;
pub mod plan;
pub mod register;
pub mod unpack;

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use hoist_snapshotter::{Staged, Store};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::digest::Digest;
use crate::images::{Images, Record};
use crate::platform::Platform;
use crate::reference::Reference;
use crate::registry::{Client, Credentials, Repository};
use flight::{Claim, Flights, Ticket, Waiter};
use plan::{Layer, Plan};

/// Pieces of a blob (as the HTTP client read them, up to ~400 KiB each) queued between its
/// fetch and its decoder. The chunks in flight already buffer the network side; a deeper pipe
/// only adds memory (at 64, a loopback pull's peak RSS rose by 57 MiB).
const PIPE_DEPTH: usize = 8;

/// Pull failures. Each names the image; layer failures name the layer's blob.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Resolving the manifest, the platform or the config failed.
    #[error("image {image}: {source}")]
    Plan {
        /// The image.
        image: String,
        /// Why (boxed: registry errors are large and this is the cold path).
        source: Box<plan::Error>,
    },
    /// Fetching a layer failed.
    #[error("image {image}: {source}")]
    Fetch {
        /// The image.
        image: String,
        /// Why (boxed to keep `Result` small).
        source: Box<fetch::Error>,
    },
    /// A layer failed verification or decompression.
    #[error("image {image}: {source}")]
    Decode {
        /// The image.
        image: String,
        /// Why (boxed to keep `Result` small).
        source: Box<decode::Error>,
    },
    /// A layer's tar could not be unpacked (including hostile entries).
    #[error("image {image}: layer {layer}: {source}")]
    Unpack {
        /// The image.
        image: String,
        /// The layer's blob.
        layer: Digest,
        /// Why.
        source: unpack::Error,
    },
    /// The snapshot store failed.
    #[error("image {image}: {source}")]
    Store {
        /// The image.
        image: String,
        /// Why.
        source: hoist_snapshotter::Error,
    },
    /// The image record store failed.
    #[error("image {image}: {source}")]
    Images {
        /// The image.
        image: String,
        /// Why.
        source: crate::images::Error,
    },
    /// The pull was cancelled.
    #[error("image {image}: pull cancelled")]
    Cancelled {
        /// The image.
        image: String,
    },
    /// A layer task died (a bug).
    #[error("image {image}: layer task failed: {detail}")]
    Task {
        /// The image.
        image: String,
        /// The panic or cancellation message.
        detail: String,
    },
}

impl Error {
    /// The kind of failure, for the API edges.
    pub fn kind(&self) -> crate::error::Kind {
        use crate::error::Kind;
        match self {
            Error::Plan { source, .. } => source.kind(),
            Error::Fetch { source, .. } => source.kind(),
            Error::Decode { source, .. } => source.kind(),
            Error::Unpack { source, .. } => source.kind(),
            Error::Store { .. } | Error::Images { .. } | Error::Task { .. } => Kind::Internal,
            Error::Cancelled { .. } => Kind::Unavailable,
        }
    }
}

/// `Result` with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How pulls run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The platform chosen from multi-platform images. Default: this machine's.
    pub platform: Platform,
    /// How blobs are fetched (chunk size, chunks in flight per layer, retries).
    pub fetch: fetch::Options,
    /// Layers fetched and unpacked at once for one image. Default: 3.
    pub layers_in_parallel: usize,
    /// Layers fetched and unpacked at once by all the pulls of one [`Puller`]: the node-wide
    /// limit of `hoist serve`. Default: 6.
    pub layers_per_node: usize,
    /// Range requests in flight across all layers of one image. Default: 16. (Memory is
    /// bounded per layer, by [`fetch::Options::chunks_in_flight`] chunks.)
    pub chunks_per_image: usize,
    /// Largest uncompressed layer accepted, in bytes (decompression bombs). Default: none.
    pub max_layer_size: Option<u64>,
    /// Largest ratio of uncompressed to compressed layer size accepted (decompression bombs;
    /// see [`decode::limit`]). Default: none.
    pub max_layer_ratio: Option<u64>,
    /// Also keep each fetched layer's compressed blob in the image store, for registration to
    /// hand to containerd's content store. Default: false.
    pub keep_layer_blobs: bool,
    /// How layers are unpacked.
    pub unpack: unpack::Options,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            platform: Platform::host(),
            fetch: fetch::Options::default(),
            layers_in_parallel: 3,
            layers_per_node: 6,
            chunks_per_image: 16,
            max_layer_size: None,
            max_layer_ratio: None,
            keep_layer_blobs: false,
            unpack: unpack::Options::default(),
        }
    }
}

/// What the puller reports while it works.
#[derive(Debug)]
pub enum Event<'a> {
    /// The image is resolved; `present[i]` says layer `i` is already in the store.
    Planned {
        /// The plan.
        plan: &'a Plan,
        /// Which layers need no fetch.
        present: &'a [bool],
    },
    /// More bytes of layer `layer` arrived.
    Fetched {
        /// Index into the plan's layers.
        layer: usize,
        /// How many.
        bytes: u64,
    },
    /// Layer `layer` is committed.
    Committed {
        /// Index into the plan's layers.
        layer: usize,
    },
}

/// Receives [`Event`]s. Called from several tasks at once; must be cheap.
pub trait Observer: Send + Sync {
    /// One event.
    fn on(&self, event: Event<'_>);
}

/// An observer that ignores everything.
#[derive(Debug, Clone, Copy)]
pub struct Silent;

impl Observer for Silent {
    fn on(&self, _: Event<'_>) {}
}

/// The outcome of a pull.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Pulled {
    /// The image as asked for, normalised.
    pub image: String,
    /// The image ID (config digest).
    pub id: Digest,
    /// The digest the reference resolved to.
    pub digest: Digest,
    /// Layers in the image.
    pub layers: usize,
    /// Layers that had to be fetched.
    pub fetched_layers: usize,
    /// Compressed bytes fetched.
    pub fetched_bytes: u64,
    /// Uncompressed bytes unpacked.
    pub unpacked_bytes: u64,
    /// Wall time of the pull.
    pub seconds: f64,
}

/// Pulls images into a snapshot store. One puller serves every pull of a process: concurrent
/// pulls of the same layer share one fetch, and `layers_per_node` bounds them all.
#[derive(Debug)]
pub struct Puller {
    client: Arc<Client>,
    store: Arc<Store>,
    images: Images,
    options: Options,
    flights: Arc<Flights>,
    node_gate: Arc<Semaphore>,
}

/// One layer's place in a pull.
enum Slot {
    /// Already committed before the pull.
    Present,
    /// Fetched by this pull: the task, and the claim that other pulls wait on.
    Own(tokio::task::JoinHandle<Result<(Staged, u64)>>, Ticket),
    /// Fetched by another pull.
    Wait(Waiter),
}

impl Puller {
    /// A puller writing into `store` and `images`.
    pub fn new(client: Arc<Client>, store: Arc<Store>, images: Images, options: Options) -> Puller {
        let node_gate = Arc::new(Semaphore::new(options.layers_per_node.max(1)));
        Puller {
            client,
            store,
            images,
            options,
            flights: Arc::default(),
            node_gate,
        }
    }

    /// The store this puller commits into.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The registry client.
    pub fn client(&self) -> &Arc<Client> {
        &self.client
    }

    /// The pull settings.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// Layers being fetched right now, across every pull.
    pub fn layers_in_flight(&self) -> usize {
        self.flights.in_flight()
    }

    /// The image records this puller writes.
    pub fn images(&self) -> &Images {
        &self.images
    }

    /// Pulls `reference` with `credentials`, reporting to `observer`.
    pub async fn pull(
        &self,
        reference: &Reference,
        credentials: Credentials,
        observer: Arc<dyn Observer>,
    ) -> Result<Pulled> {
        self.pull_until(reference, credentials, observer, CancellationToken::new())
            .await
    }

    /// As [`Puller::pull`], stopping with [`Error::Cancelled`] when `cancel` fires. Unlike
    /// dropping the future, this lets the pull clean up: the layers it committed and no image
    /// or other pull uses are removed again, so a cancelled pull leaves nothing behind.
    pub async fn pull_until(
        &self,
        reference: &Reference,
        credentials: Credentials,
        observer: Arc<dyn Observer>,
        cancel: CancellationToken,
    ) -> Result<Pulled> {
        let started = Instant::now();
        let image = reference.to_string();
        let span = tracing::info_span!("pull", %image);
        async {
            let repo = Arc::new(self.client.repository(reference.registry(), reference.repository(), credentials));
            let stored = StoredDocuments(&self.images);
            let planned = tokio::select! {
                planned = plan::plan(&repo, reference, &self.options.platform, &stored) => planned,
                () = cancel.cancelled() => return Err(Error::Cancelled { image: image.clone() }),
            };
            let plan = planned.map_err(|source| Error::Plan {
                image: image.clone(),
                source: Box::new(source),
            })?;
            let store_err = |source| Error::Store {
                image: image.clone(),
                source,
            };
            let chain_ids: Vec<Digest> = plan.layers.iter().map(|l| l.chain_id).collect();
            let (claims, _hold) = self
                .flights
                .claim(&chain_ids, |c| self.store.get(&c.to_string()).map(|s| s.is_some()))
                .map_err(store_err)?;
            let present: Vec<bool> = claims.iter().map(|c| matches!(c, Claim::Present)).collect();
            observer.on(Event::Planned {
                plan: &plan,
                present: &present,
            });
            let fetched = self.pull_layers(&image, &repo, &plan, claims, &observer, &cancel).await?;
            self.record(&plan).map_err(|source| Error::Images {
                image: image.clone(),
                source,
            })?;
            let pulled = Pulled {
                image: image.clone(),
                id: plan.config,
                digest: plan.target,
                layers: plan.layers.len(),
                fetched_layers: fetched.layers,
                fetched_bytes: fetched.bytes,
                unpacked_bytes: fetched.unpacked,
                seconds: started.elapsed().as_secs_f64(),
            };
            tracing::info!(id = %pulled.id, fetched_layers = pulled.fetched_layers, fetched_bytes = pulled.fetched_bytes, elapsed_ms = started.elapsed().as_millis() as u64, "pulled");
            Ok(pulled)
        }
        .instrument(span)
        .await
    }

    /// Fetches and unpacks the layers this pull owns in parallel, waits for those other pulls
    /// own, and commits in chain order.
    async fn pull_layers(
        &self,
        image: &str,
        repo: &Arc<Repository>,
        plan: &Plan,
        claims: Vec<Claim>,
        observer: &Arc<dyn Observer>,
        caller: &CancellationToken,
    ) -> Result<Fetched> {
        let cancel = caller.child_token();
        // Dropping the pull cancels its layer tasks too (they clean up their staging).
        let _guard = cancel.clone().drop_guard();
        let image_gate = Arc::new(Semaphore::new(self.options.layers_in_parallel.max(1)));
        let budget = Arc::new(Semaphore::new(self.options.chunks_per_image.max(1)));
        let job = |index: usize| LayerJob {
            image: image.to_owned(),
            index,
            layer: plan.layers[index].clone(),
            repo: Arc::clone(repo),
            store: Arc::clone(&self.store),
            options: self.options.clone(),
            budget: Arc::clone(&budget),
            observer: Arc::clone(observer),
            cancel: cancel.clone(),
            keep: self
                .options
                .keep_layer_blobs
                .then(|| self.images.blob_file(&plan.layers[index].blob)),
        };
        let spawn = |index: usize| {
            let job = job(index);
            let gates = (Arc::clone(&image_gate), Arc::clone(&self.node_gate));
            tokio::spawn(async move {
                let _image = gates.0.acquire_owned().await.expect("never closed");
                let _node = gates.1.acquire_owned().await.expect("never closed");
                job.run().await
            })
        };
        let slots: Vec<Slot> = claims
            .into_iter()
            .enumerate()
            .map(|(index, claim)| match claim {
                Claim::Present => Slot::Present,
                Claim::Owner(ticket) => Slot::Own(spawn(index), ticket),
                Claim::Wait(waiter) => Slot::Wait(waiter),
            })
            .collect();
        let mut fetched = Fetched::default();
        let mut committed = Vec::new();
        let mut failure = None;
        for (index, slot) in slots.into_iter().enumerate() {
            let outcome = match slot {
                Slot::Present => continue,
                Slot::Own(task, ticket) => {
                    let staged = join(image, task.await);
                    if failure.is_some() {
                        continue; // only waiting for the cancelled layers to clean up
                    }
                    staged.and_then(|s| self.commit(image, plan, index, s, ticket))
                }
                Slot::Wait(_) if failure.is_some() => continue,
                Slot::Wait(waiter) => tokio::select! {
                    taken = self.take_over(image, plan, index, waiter, &spawn) => taken,
                    () = cancel.cancelled() => Err(Error::Cancelled { image: image.to_owned() }),
                },
            };
            match outcome {
                Ok(Some(size)) => {
                    committed.push(plan.layers[index].chain_id);
                    fetched.layers += 1;
                    fetched.bytes += plan.layers[index].size;
                    fetched.unpacked += size;
                    observer.on(Event::Committed { layer: index });
                }
                Ok(None) => observer.on(Event::Committed { layer: index }),
                Err(e) => {
                    cancel.cancel();
                    failure = Some(e);
                }
            }
        }
        match failure {
            Some(e) => {
                self.remove_unused_layers(&committed);
                Err(e)
            }
            None => Ok(fetched),
        }
    }

    /// Removes the layers `chain_ids` from the store, top first, unless an image record
    /// references them or a pull is using them: after a failed pull (the layers it committed),
    /// and after an image is removed when containerd does not collect its layers. Layers that
    /// cannot be removed are kept and logged.
    pub fn remove_unused_layers(&self, chain_ids: &[Digest]) {
        if chain_ids.is_empty() {
            return;
        }
        let referenced: std::collections::HashSet<Digest> = match self.images.list() {
            Ok(records) => records.into_iter().flat_map(|r| r.chain_ids).collect(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the image records; keeping the layers");
                return;
            }
        };
        for chain_id in chain_ids.iter().rev().filter(|c| !referenced.contains(c)) {
            let name = chain_id.to_string();
            match self
                .flights
                .discard_unused(chain_id, || self.store.remove(&name))
            {
                Some(Ok(())) => tracing::debug!(%chain_id, "removed an unused layer"),
                Some(Err(e)) => tracing::debug!(%chain_id, error = %e, "kept a layer"),
                None => tracing::debug!(%chain_id, "kept a layer: a pull is using it"),
            }
        }
    }

    /// Waits for the pull that owns layer `index`; if it fails, claims the layer again and,
    /// when this pull becomes the owner, fetches it. `Some(size)` when this pull committed it.
    async fn take_over(
        &self,
        image: &str,
        plan: &Plan,
        index: usize,
        mut waiter: Waiter,
        spawn: &impl Fn(usize) -> tokio::task::JoinHandle<Result<(Staged, u64)>>,
    ) -> Result<Option<u64>> {
        let chain_id = plan.layers[index].chain_id;
        loop {
            if waiter.committed().await {
                return Ok(None);
            }
            tracing::debug!(%chain_id, "the pull fetching this layer failed; claiming it");
            let claim = self
                .flights
                .reclaim(chain_id, |c| {
                    self.store.get(&c.to_string()).map(|s| s.is_some())
                })
                .map_err(|source| Error::Store {
                    image: image.to_owned(),
                    source,
                })?;
            match claim {
                Claim::Present => return Ok(None),
                Claim::Wait(next) => waiter = next,
                Claim::Owner(ticket) => {
                    let staged = join(image, spawn(index).await)?;
                    return self.commit(image, plan, index, staged, ticket);
                }
            }
        }
    }

    /// Commits layer `index` on its parent and releases its waiters.
    fn commit(
        &self,
        image: &str,
        plan: &Plan,
        index: usize,
        (staged, size): (Staged, u64),
        ticket: Ticket,
    ) -> Result<Option<u64>> {
        let layer = &plan.layers[index];
        let parent = index
            .checked_sub(1)
            .map(|p| plan.layers[p].chain_id.to_string());
        let started = Instant::now();
        self.store
            .commit(staged, &layer.chain_id.to_string(), parent.as_deref(), size)
            .map_err(|source| Error::Store {
                image: image.to_owned(),
                source,
            })?;
        ticket.committed();
        tracing::debug!(layer = %layer.blob, chain_id = %layer.chain_id, elapsed_ms = started.elapsed().as_millis() as u64, "committed");
        Ok(Some(size))
    }

    fn record(&self, plan: &Plan) -> crate::images::Result<()> {
        if let Some(index) = &plan.index_bytes {
            self.images.put_blob(&plan.target, index)?;
        }
        self.images.put_blob(&plan.manifest, &plan.manifest_bytes)?;
        self.images.put_blob(&plan.config, &plan.config_bytes)?;
        let size = plan.layers.iter().map(|l| l.size).sum();
        let record = |name: String| Record {
            name,
            target: plan.target,
            manifest: plan.manifest,
            config: plan.config,
            chain_ids: plan.layers.iter().map(|l| l.chain_id).collect(),
            size,
        };
        if plan.reference.tag().is_some() {
            let mut tagged = plan.reference.clone();
            if tagged.digest().is_some() {
                // `name:tag@digest` records the tag without the pin, as containerd does.
                tagged = format!("{}:{}", tagged.name(), tagged.tag().unwrap_or_default())
                    .parse()
                    .expect("a parsed reference re-parses without its digest");
            }
            self.images.put(&record(tagged.to_string()))?;
        }
        self.images
            .put(&record(plan.reference.with_digest(plan.target).to_string()))
    }
}

/// The documents of earlier pulls (`Images`' blobs), for the plan stage. A blob that cannot be
/// read counts as absent: the plan then fetches it.
struct StoredDocuments<'a>(&'a Images);

impl plan::Stored for StoredDocuments<'_> {
    fn get(&self, digest: &Digest) -> Option<Vec<u8>> {
        self.0.blob(digest).ok().flatten()
    }
}

/// What one pull fetched itself (layers other pulls fetched for it are not counted).
#[derive(Debug, Default)]
struct Fetched {
    layers: usize,
    bytes: u64,
    unpacked: u64,
}

/// A layer task's outcome, with a panic turned into an error.
fn join(
    image: &str,
    joined: std::result::Result<Result<(Staged, u64)>, tokio::task::JoinError>,
) -> Result<(Staged, u64)> {
    joined.unwrap_or_else(|e| {
        Err(Error::Task {
            image: image.to_owned(),
            detail: e.to_string(),
        })
    })
}

/// Everything one layer task needs.
struct LayerJob {
    image: String,
    index: usize,
    layer: Layer,
    repo: Arc<Repository>,
    store: Arc<Store>,
    options: Options,
    budget: Arc<Semaphore>,
    observer: Arc<dyn Observer>,
    cancel: CancellationToken,
    /// Where to keep the compressed blob, when it is kept.
    keep: Option<std::path::PathBuf>,
}

impl LayerJob {
    /// Fetch → verify → decode → unpack into a staged snapshot; returns it with its size.
    async fn run(self) -> Result<(Staged, u64)> {
        let span = tracing::info_span!("layer", digest = %self.layer.blob, size = self.layer.size);
        let started = Instant::now();
        let result = self.fetch_and_unpack().instrument(span.clone()).await;
        span.in_scope(|| match &result {
            Ok((_, size)) => tracing::debug!(
                unpacked = size,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "layer ready"
            ),
            Err(e) => tracing::debug!(error = %e, "layer failed"),
        });
        result
    }

    async fn fetch_and_unpack(self) -> Result<(Staged, u64)> {
        let image = self.image.clone();
        let staged = self.store.stage().map_err(|source| Error::Store {
            image: image.clone(),
            source,
        })?;
        let (tx, reader) = pipe::channel(PIPE_DEPTH);
        let layer = self.layer.clone();
        let unpack_options = self.options.unpack.clone();
        let limit = decode::limit(
            self.options.max_layer_size,
            self.options.max_layer_ratio,
            self.layer.size,
        );
        let keep = self.keep.clone();
        let unpacker = tokio::task::spawn_blocking(move || match keep {
            None => unpack_layer(reader, staged, &layer, limit, &unpack_options),
            Some(path) => {
                let mut tee = keep::Tee::new(reader, &path);
                let unpacked = unpack_layer(&mut tee, staged, &layer, limit, &unpack_options);
                if unpacked.is_ok() {
                    tee.keep(&path, layer.size);
                }
                unpacked
            }
        });
        let driven = self.drive(tx).await;
        let unpacked = unpacker.await.map_err(|e| Error::Task {
            image: image.clone(),
            detail: e.to_string(),
        })?;
        // A fetch failure is the root cause of whatever the unpacker saw after it.
        driven?;
        unpacked.map_err(|e| layer_error(e, &image, self.layer.blob))
    }

    /// Feeds the blob into the pipe, verifying it as it passes.
    async fn drive(&self, tx: pipe::Sender) -> Result<()> {
        let image = &self.image;
        let mut verifier = decode::BlobVerifier::new(self.layer.blob, self.layer.size);
        let mut stream = fetch::fetch(
            Arc::clone(&self.repo),
            self.layer.blob,
            self.layer.size,
            self.options.fetch.clone(),
            Arc::clone(&self.budget),
        );
        loop {
            let next = tokio::select! {
                next = stream.next() => next,
                () = self.cancel.cancelled() => return Err(Error::Cancelled { image: image.clone() }),
            };
            let Some(bytes) = next else { break };
            let bytes = bytes.map_err(|source| Error::Fetch {
                image: image.clone(),
                source: Box::new(source),
            })?;
            verifier.update(&bytes).map_err(|source| Error::Decode {
                image: image.clone(),
                source: Box::new(source),
            })?;
            self.observer.on(Event::Fetched {
                layer: self.index,
                bytes: bytes.len() as u64,
            });
            if tx.send(pipe::Message::Data(bytes)).await.is_err() {
                return Ok(()); // the unpacker stopped; its error is the one to report
            }
            crate::hooks::pause("fetch");
        }
        verifier.finish().map_err(|source| Error::Decode {
            image: image.clone(),
            source: Box::new(source),
        })?;
        let _ = tx.send(pipe::Message::End).await;
        Ok(())
    }
}

/// Attaches the image name to a failure of the blocking half.
fn layer_error(failure: layer::Failure, image: &str, layer: Digest) -> Error {
    match failure {
        layer::Failure::Decode(source) => Error::Decode {
            image: image.to_owned(),
            source: Box::new(source),
        },
        layer::Failure::Unpack(source) => Error::Unpack {
            image: image.to_owned(),
            layer,
            source,
        },
    }
}

/// The blocking half: decode, unpack, verify the diff ID. The staged directory is dropped
/// (removed) here on failure, after the last write into it.
fn unpack_layer(
    reader: impl std::io::BufRead + Send,
    staged: Staged,
    layer: &Layer,
    limit: Option<u64>,
    options: &unpack::Options,
) -> std::result::Result<(Staged, u64), layer::Failure> {
    let blob = layer::Blob {
        digest: layer.blob,
        compression: layer.compression,
        diff_id: layer.diff_id,
        limit,
    };
    let size = layer::decode_and_unpack(reader, &staged.fs(), blob, options)?;
    Ok((staged, size))
}
