//! A blob as concurrent Range requests, streamed in order as their bytes arrive.
//!
//! Each chunk is a task that sends the pieces of its response into a channel of its own; the
//! blob's stream reads the oldest chunk's channel, so the head of the blob flows on to the
//! decoder while later chunks are still arriving, and no chunk is gathered into one buffer.
//! At most `chunks_in_flight` chunks of a blob exist at once (arrived but unread ones count),
//! which bounds memory; the image's budget bounds the requests in flight across its blobs.
//!
//! The first chunk probes. As soon as its answer's status is known, a `206` starts the other
//! chunks, sent to the URL that answered (blob storage after a redirect, without our
//! `Authorization`), while the probe's body is still arriving; a `200` means Range is ignored
//! and the blob is streamed in that one response instead. A chunk that fails part-way is
//! resumed from the first byte it has not delivered.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use http::StatusCode;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinSet;

use super::{
    Error, Failure, Options, Result, Source, body_after, check_content_range, check_length,
    give_up, plan_chunks, status_failure, stream_whole,
};
use crate::digest::Digest;

/// What the probe learnt from the first status it got.
enum Answer {
    /// Range is honoured; the chunks go to this URL.
    Partial(reqwest::Url),
    /// Range is ignored: stream this response.
    Whole(reqwest::Response),
}

/// One blob, fetched as chunks: see the module header.
pub(super) fn fetch(
    source: Source,
    digest: Digest,
    size: u64,
    options: Options,
    budget: Arc<Semaphore>,
) -> BoxStream<'static, Result<Bytes>> {
    async_stream::try_stream! {
        let chunks = plan_chunks(size, options.chunk_size);
        // Dropping the stream (a cancelled pull, a failure) aborts every chunk task.
        let mut tasks = JoinSet::new();
        let chunk = Chunk { source: source.clone(), digest, size, options: options.clone(), budget: Arc::clone(&budget) };
        let (answered, answer) = oneshot::channel();
        let mut window = VecDeque::new();
        window.push_back(chunk.spawn(&mut tasks, chunks[0], Some(answered)));
        // Without a status worth acting on, the probe failed: its error is in its channel, and
        // no other chunk is asked for.
        let mut next = chunks.len();
        let source = match answer.await {
            Ok(Answer::Partial(url)) => {
                next = 1;
                Source { url, ..source }
            }
            Ok(Answer::Whole(response)) => {
                tasks.abort_all();
                let mut whole = stream_whole(source, digest, size, options, Some(response));
                while let Some(bytes) = whole.next().await {
                    yield bytes?;
                }
                return;
            }
            Err(_) => source,
        };
        let chunk = Chunk { source, ..chunk };
        while !window.is_empty() {
            while next < chunks.len() && window.len() < options.chunks_in_flight {
                window.push_back(chunk.spawn(&mut tasks, chunks[next], None));
                next += 1;
            }
            let head = window.front_mut().expect("the head was there before more were added");
            match head.rx.recv().await {
                Some(bytes) => {
                    let bytes = bytes?;
                    head.received += bytes.len() as u64;
                    yield bytes;
                }
                None => {
                    // A task that ended without sending its error was aborted or panicked.
                    if head.received != head.expected {
                        Err(Error::Truncated { digest, expected: head.expected, got: head.received, attempts: 1 })?;
                    }
                    window.pop_front();
                    // Forget finished tasks; a panic already showed as a short chunk.
                    while tasks.try_join_next().is_some() {}
                }
            }
        }
    }
    .boxed()
}

/// Where the next chunk task reads from, and what it must check.
#[derive(Clone)]
struct Chunk {
    source: Source,
    digest: Digest,
    size: u64,
    options: Options,
    budget: Arc<Semaphore>,
}

/// A chunk task's channel, read by the blob's stream.
struct Pending {
    rx: mpsc::UnboundedReceiver<Result<Bytes>>,
    expected: u64,
    received: u64,
}

impl Chunk {
    /// Starts the task for the inclusive `range`. Its channel holds at most the chunk's bytes.
    fn spawn(
        &self,
        tasks: &mut JoinSet<()>,
        range: (u64, u64),
        answered: Option<oneshot::Sender<Answer>>,
    ) -> Pending {
        let (tx, rx) = mpsc::unbounded_channel();
        let chunk = self.clone();
        tasks.spawn(async move {
            if let Err(e) = chunk.run(range, &tx, answered).await {
                let _ = tx.send(Err(e));
            }
        });
        Pending {
            rx,
            expected: range.1 - range.0 + 1,
            received: 0,
        }
    }

    /// Fetches `start..=end` into `tx`, retrying and resuming; as the probe, says through
    /// `answered` what the first status meant. A chunk has `retries` retries in all, progress
    /// or not, so a registry that cuts every answer short fails the pull instead of serving it
    /// a few bytes per request.
    async fn run(
        mut self,
        (start, end): (u64, u64),
        tx: &mpsc::UnboundedSender<Result<Bytes>>,
        mut answered: Option<oneshot::Sender<Answer>>,
    ) -> Result<()> {
        let _permit = Arc::clone(&self.budget)
            .acquire_owned()
            .await
            .expect("the budget semaphore is never closed");
        let (digest, size) = (self.digest, self.size);
        let want = end - start + 1;
        let mut got = 0u64;
        let mut attempt = 0;
        loop {
            let from = start + got;
            let failure = 'attempt: {
                let range = format!("bytes={from}-{end}");
                let response = match self.source.get(Some(range)).await {
                    Ok(r) => r,
                    Err(e) => break 'attempt Failure::Registry(e),
                };
                let skip = match response.status() {
                    StatusCode::OK if answered.is_some() => {
                        check_length(&response, digest, size)?;
                        if let Some(answered) = answered.take() {
                            let _ = answered.send(Answer::Whole(response));
                        }
                        return Ok(());
                    }
                    StatusCode::PARTIAL_CONTENT => {
                        check_content_range(&response, digest, size, from, end)?;
                        0
                    }
                    // Range honoured for the probe, ignored now: take our slice of the whole.
                    StatusCode::OK => from,
                    _ => break 'attempt status_failure(response).await,
                };
                if let Some(answered) = answered.take() {
                    let _ = answered.send(Answer::Partial(response.url().clone()));
                }
                let whole = response.status() == StatusCode::OK;
                let mut body = std::pin::pin!(body_after(response, skip));
                while let Some(next) = body.next().await {
                    let mut bytes = match next {
                        Ok(b) => b,
                        Err(failure) => break 'attempt failure,
                    };
                    let room = want - got;
                    if bytes.len() as u64 > room {
                        if !whole {
                            return Err(Error::TooLarge {
                                digest,
                                limit: size,
                            });
                        }
                        // A whole-body answer to a Range request: take our slice, drop the rest.
                        bytes.truncate(room as usize);
                    }
                    got += bytes.len() as u64;
                    if tx.send(Ok(bytes)).is_err() {
                        return Ok(()); // the blob's stream is gone
                    }
                    if got == want {
                        return Ok(());
                    }
                }
                Failure::Short { got }
            };
            let failure = give_up(failure, digest, want, attempt, &self.options)?;
            let delay = failure.delay(&self.options, attempt);
            tracing::debug!(%digest, from = start + got, attempt, ?delay, error = %failure, "retrying chunk");
            tokio::time::sleep(delay).await;
            // A pre-signed blob URL may have expired: ask the registry again.
            self.source.url = self.source.registry_url.clone();
            attempt += 1;
        }
    }
}
