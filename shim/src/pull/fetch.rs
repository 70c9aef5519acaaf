//! Fetch stage: one blob as an ordered stream of byte pieces.
//!
//! A blob larger than one chunk is fetched as concurrent HTTP Range requests, at most
//! `chunks_in_flight` at a time, and yielded strictly in order as the bytes arrive, so memory
//! stays at most `chunks_in_flight × chunk_size` per blob ([`ranged`]). The first request
//! probes: a `206` means the registry honours Range, and the remaining chunks go to the URL it
//! finally answered from (blob storage after a redirect, without our `Authorization`); a `200`
//! means Range is ignored and the blob is streamed in one response, resumed from the last byte
//! on failure.
//!
//! Failed requests are retried with exponential backoff; `429 Retry-After` is honoured. A
//! registry that sends more bytes than the descriptor declares, or a `Content-Range` that
//! disagrees with the request, is an error at once: a retry would not make it honest.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use http::{StatusCode, header};
use tokio::sync::Semaphore;

mod ranged;

use crate::digest::Digest;
use crate::registry::{self, Repository, display_url};

/// Fetch failures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The registry kept failing after every retry, or failed in a way retries cannot fix.
    #[error("blob {digest}: {source}")]
    Registry {
        /// The blob.
        digest: Digest,
        /// The last failure.
        source: registry::Error,
    },
    /// More bytes arrived than the descriptor declares.
    #[error("blob {digest}: registry sent more than the {limit} bytes the descriptor declares")]
    TooLarge {
        /// The blob.
        digest: Digest,
        /// The declared size.
        limit: u64,
    },
    /// The body ended early on every attempt.
    #[error("blob {digest}: body ended after {got} of {expected} bytes ({attempts} attempts)")]
    Truncated {
        /// The blob.
        digest: Digest,
        /// Bytes expected in this response.
        expected: u64,
        /// Bytes received.
        got: u64,
        /// How many times it was tried.
        attempts: u32,
    },
    /// A `Content-Range` or `Content-Length` contradicts the request or the descriptor.
    #[error("blob {digest}: registry answered {header} {value:?} but {expected} was expected")]
    Inconsistent {
        /// The blob.
        digest: Digest,
        /// Which header.
        header: &'static str,
        /// What it said.
        value: String,
        /// What it should have said.
        expected: String,
    },
}

impl Error {
    /// The kind of failure, for the API edges.
    pub fn kind(&self) -> crate::error::Kind {
        match self {
            Error::Registry { source, .. } => source.kind(),
            Error::Truncated { .. } => crate::error::Kind::Unavailable,
            Error::TooLarge { .. } | Error::Inconsistent { .. } => {
                crate::error::Kind::InvalidArgument
            }
        }
    }
}

/// `Result` with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How blobs are fetched.
#[derive(Debug, Clone)]
pub struct Options {
    /// Bytes per Range request. Default: 4 MiB.
    pub chunk_size: u64,
    /// Chunks of one blob that exist at once, requested or arrived but not yet read; times
    /// `chunk_size`, this bounds the blob's buffer memory. Default: 8.
    pub chunks_in_flight: usize,
    /// Attempts after the first for one request. Default: 5.
    pub retries: u32,
    /// First retry delay, doubled each attempt. Default: 200 ms.
    pub backoff: Duration,
    /// The longest `Retry-After` honoured; longer waits are capped. Default: 30 s.
    pub max_retry_after: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            chunk_size: 4 << 20,
            chunks_in_flight: 8,
            retries: 5,
            backoff: Duration::from_millis(200),
            max_retry_after: Duration::from_secs(30),
        }
    }
}

/// Splits `size` bytes into inclusive `(start, end)` ranges of at most `chunk` bytes.
pub fn plan_chunks(size: u64, chunk: u64) -> Vec<(u64, u64)> {
    let chunk = chunk.max(1);
    (0..size.div_ceil(chunk))
        .map(|i| (i * chunk, ((i + 1) * chunk).min(size) - 1))
        .collect()
}

/// Where the bytes are: the registry URL (authenticated), or blob storage after a redirect.
#[derive(Clone)]
struct Source {
    repo: Arc<Repository>,
    registry_url: reqwest::Url,
    url: reqwest::Url,
}

impl Source {
    async fn get(&self, range: Option<String>) -> registry::Result<reqwest::Response> {
        let headers: Vec<_> = range.into_iter().map(|r| (header::RANGE, r)).collect();
        if self.repo.same_origin(&self.url) {
            self.repo.get(&self.url, &headers).await
        } else {
            let mut req = self.repo.client().http_for(&self.url).get(self.url.clone());
            for (k, v) in headers {
                req = req.header(k, v);
            }
            req.send().await.map_err(registry::transport(&self.url))
        }
    }
}

/// Fetches blob `digest` of `size` bytes from `repo`. `budget` bounds the chunks in flight
/// across all blobs of one pull.
pub fn fetch(
    repo: Arc<Repository>,
    digest: Digest,
    size: u64,
    options: Options,
    budget: Arc<Semaphore>,
) -> BoxStream<'static, Result<Bytes>> {
    let url = repo.url("blobs", &digest.to_string());
    let source = Source {
        repo,
        registry_url: url.clone(),
        url,
    };
    if size <= options.chunk_size || options.chunks_in_flight <= 1 {
        return stream_whole(source, digest, size, options, None).boxed();
    }
    ranged::fetch(source, digest, size, options, budget)
}

/// Streams the whole blob in one response, resuming with `Range: bytes=N-` after failures.
fn stream_whole(
    source: Source,
    digest: Digest,
    size: u64,
    options: Options,
    first: Option<reqwest::Response>,
) -> BoxStream<'static, Result<Bytes>> {
    async_stream::try_stream! {
        let mut offset = 0u64;
        let mut attempt = 0u32;
        let mut pending = first;
        loop {
            let failure = 'attempt: {
                let response = match pending.take() {
                    Some(r) => r,
                    None => match source.get((offset > 0).then(|| format!("bytes={offset}-"))).await {
                        Ok(r) => r,
                        Err(e) => break 'attempt Failure::Registry(e),
                    },
                };
                let skip = match response.status() {
                    StatusCode::OK => {
                        check_length(&response, digest, size)?;
                        offset
                    }
                    StatusCode::PARTIAL_CONTENT if offset > 0 => {
                        check_content_range(&response, digest, size, offset, size - 1)?;
                        0
                    }
                    _ => break 'attempt status_failure(response).await,
                };
                let mut body = std::pin::pin!(body_after(response, skip));
                while let Some(next) = body.next().await {
                    let bytes = match next {
                        Ok(b) => b,
                        Err(failure) => break 'attempt failure,
                    };
                    if offset + bytes.len() as u64 > size {
                        Err(Error::TooLarge { digest, limit: size })?;
                    }
                    offset += bytes.len() as u64;
                    attempt = 0;
                    yield bytes;
                }
                if offset == size {
                    return;
                }
                Failure::Short { got: offset }
            };
            let failure = give_up(failure, digest, size, attempt, &options)?;
            let delay = failure.delay(&options, attempt);
            tracing::debug!(%digest, offset, attempt, ?delay, error = %failure, "resuming blob");
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }
    .boxed()
}

/// The body of `response` without its first `skip` bytes and without empty pieces; a transport
/// error is the [`Failure`] another attempt may fix.
fn body_after(
    response: reqwest::Response,
    mut skip: u64,
) -> impl futures::Stream<Item = std::result::Result<Bytes, Failure>> {
    let url = display_url(response.url());
    response.bytes_stream().filter_map(move |next| {
        let piece = match next {
            Err(e) => Some(Err(Failure::Registry(registry::Error::Transport {
                url: url.clone(),
                source: e.without_url(),
            }))),
            Ok(mut bytes) => {
                let n = skip.min(bytes.len() as u64);
                let _ = bytes.split_to(n as usize);
                skip -= n;
                (!bytes.is_empty()).then_some(Ok(bytes))
            }
        };
        std::future::ready(piece)
    })
}

/// Why one attempt failed in a way that another attempt may fix.
#[derive(Debug)]
enum Failure {
    /// A transport error or an error status.
    Registry(registry::Error),
    /// `429`/`503` with `Retry-After`.
    RetryAfter(registry::Error, Duration),
    /// The body ended early.
    Short { got: u64 },
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Registry(e) | Failure::RetryAfter(e, _) => write!(f, "{e}"),
            Failure::Short { got } => write!(f, "body ended after {got} bytes"),
        }
    }
}

impl Failure {
    fn delay(&self, options: &Options, attempt: u32) -> Duration {
        match self {
            Failure::RetryAfter(_, d) => (*d).min(options.max_retry_after),
            _ => options.backoff.saturating_mul(1 << attempt.min(10)),
        }
    }
}

/// Returns the failure back if another attempt is worth making, else the final error.
fn give_up(
    failure: Failure,
    digest: Digest,
    expected: u64,
    attempt: u32,
    options: &Options,
) -> Result<Failure> {
    let retryable = match &failure {
        Failure::Registry(e) => e.is_retryable(),
        Failure::RetryAfter(..) | Failure::Short { .. } => true,
    };
    if retryable && attempt < options.retries {
        return Ok(failure);
    }
    Err(match failure {
        Failure::Registry(source) | Failure::RetryAfter(source, _) => {
            Error::Registry { digest, source }
        }
        Failure::Short { got } => Error::Truncated {
            digest,
            expected,
            got,
            attempts: attempt + 1,
        },
    })
}

async fn status_failure(response: reqwest::Response) -> Failure {
    let status = response.status();
    let url = display_url(response.url());
    let retry_after = response
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    let detail = response
        .text()
        .await
        .map(|t| t.chars().take(200).collect::<String>())
        .unwrap_or_default();
    let e = registry::Error::Status {
        url,
        status,
        detail,
    };
    match retry_after {
        Some(d)
            if status == StatusCode::TOO_MANY_REQUESTS
                || status == StatusCode::SERVICE_UNAVAILABLE =>
        {
            Failure::RetryAfter(e, d)
        }
        _ => Failure::Registry(e),
    }
}

/// `Retry-After`: delay-seconds or an HTTP-date (RFC 9110 §10.2.3).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// A `200` must not declare a length other than the descriptor's.
fn check_length(response: &reqwest::Response, digest: Digest, size: u64) -> Result<()> {
    match response.content_length() {
        Some(len) if len > size => Err(Error::TooLarge {
            digest,
            limit: size,
        }),
        Some(len) if len != size => Err(Error::Inconsistent {
            digest,
            header: "Content-Length",
            value: len.to_string(),
            expected: size.to_string(),
        }),
        _ => Ok(()),
    }
}

/// A `206` must cover exactly the range asked for, of a blob of the declared size.
fn check_content_range(
    response: &reqwest::Response,
    digest: Digest,
    size: u64,
    start: u64,
    end: u64,
) -> Result<()> {
    let value = response
        .headers()
        .get(header::CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let ok = parse_content_range(value)
        .is_some_and(|(s, e, total)| s == start && e == end && total.is_none_or(|t| t == size));
    if ok {
        return Ok(());
    }
    Err(Error::Inconsistent {
        digest,
        header: "Content-Range",
        value: value.to_owned(),
        expected: format!("bytes {start}-{end}/{size}"),
    })
}

/// `bytes START-END/TOTAL` or `bytes START-END/*` (RFC 9110 §14.4).
pub fn parse_content_range(value: &str) -> Option<(u64, u64, Option<u64>)> {
    let rest = value.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (start, end) = range.split_once('-')?;
    let num = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    let (start, end) = (num(start)?, num(end)?);
    let total = if total == "*" {
        None
    } else {
        Some(num(total)?)
    };
    (start <= end && total.is_none_or(|t| end < t)).then_some((start, end, total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_content_range() {
        let cases = [
            ("bytes 0-9/100", Some((0, 9, Some(100)))),
            ("bytes 90-99/100", Some((90, 99, Some(100)))),
            ("bytes 0-9/*", Some((0, 9, None))),
            ("bytes 9-0/100", None),
            ("bytes 0-100/100", None),
            ("bytes -1-9/100", None),
            ("bits 0-9/100", None),
            ("bytes 0-9", None),
            ("bytes 0-+9/100", None),
            ("", None),
        ];
        for (input, want) in cases {
            assert_eq!(parse_content_range(input), want, "{input:?}");
        }
    }

    #[test]
    fn parses_retry_after() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    proptest! {
        #[test]
        fn chunks_cover_the_blob_exactly_once(size in 0u64..10_000, chunk in 1u64..3_000) {
            let chunks = plan_chunks(size, chunk);
            let mut next = 0;
            for (start, end) in &chunks {
                prop_assert_eq!(*start, next);
                prop_assert!(end >= start && end - start < chunk);
                next = end + 1;
            }
            prop_assert_eq!(next, size);
        }
    }
}
