//! In-order reassembly of chunks that complete out of order, through the pull's own fetch:
//! `pull::fetch::fetch` runs `chunks_in_flight` Range requests at once against an HTTP server
//! on 127.0.0.1 and yields their bytes in blob order into the bounded hand-off
//! (`pull::pipe`) that a blocking reader thread drains, as the decode thread does.
//!
//! The server answers each Range request after yielding to the scheduler a number of times
//! given by a permutation of the chunks (no timers), so chunks complete in a shuffled order;
//! the same fetch with every answer immediate is the in-order case. 64 MiB in 1 MiB chunks,
//! 8 in flight.

use std::hint::black_box;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures::StreamExt;
use hoist::Digest;
use hoist::digest::Hasher;
use hoist::pull::{fetch, pipe};
use hoist::registry::{self, Credentials};
use tokio::sync::Semaphore;

const CHUNK: usize = 1 << 20;
const CHUNKS: usize = 64;
const IN_FLIGHT: usize = 8;

/// A permutation of 0..n from a fixed xorshift seed, spread over a window a little wider than
/// the chunks in flight: how many times the answer to each chunk yields before it is sent.
fn delays(n: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    for i in (1..n).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        order.swap(i, (x % (i as u64 + 1)) as usize);
    }
    order.iter().map(|d| d % (2 * IN_FLIGHT)).collect()
}

/// The blob and how long each of its chunks' answers waits.
struct Blob {
    bytes: Bytes,
    delays: Vec<usize>,
}

/// `GET /v2/bench/<shuffled|ordered>/blobs/<digest>` with `Range: bytes=A-B`.
async fn serve_range(
    State(blobs): State<Arc<[Blob; 2]>>,
    axum::extract::Path((name, _digest)): axum::extract::Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let blob = &blobs[usize::from(name == "ordered")];
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bytes="))
        .and_then(|v| v.split_once('-'))
        .and_then(|(a, b)| Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?)));
    let Some((start, end)) = range else {
        return (StatusCode::OK, blob.bytes.clone()).into_response();
    };
    for _ in 0..blob.delays[start / CHUNK] {
        tokio::task::yield_now().await;
    }
    let total = blob.bytes.len();
    (
        StatusCode::PARTIAL_CONTENT,
        [(
            header::CONTENT_RANGE,
            format!("bytes {start}-{end}/{total}"),
        )],
        blob.bytes.slice(start..=end),
    )
        .into_response()
}

/// Serves both blobs on 127.0.0.1; returns the address.
async fn start_server(blobs: Arc<[Blob; 2]>) -> SocketAddr {
    let app = axum::Router::new()
        .route(
            "/v2/bench/{name}/blobs/{digest}",
            axum::routing::get(serve_range),
        )
        .with_state(blobs);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let addr = listener.local_addr().expect("a bound address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// Fetch → pipe → a reader thread draining it; returns the bytes read, and their digest when
/// `check` (outside the measurement).
fn reassemble(
    runtime: &tokio::runtime::Runtime,
    repo: &Arc<registry::Repository>,
    digest: Digest,
    size: u64,
    check: bool,
) -> (u64, Option<Digest>) {
    let (tx, mut reader) = pipe::channel(8);
    let drain = std::thread::spawn(move || {
        let mut buf = vec![0u8; 256 << 10];
        let mut hasher = check.then(Hasher::new);
        let mut total = 0u64;
        loop {
            let n = reader.read(&mut buf).expect("the pipe ends with End");
            if n == 0 {
                return (total, hasher.map(Hasher::finish));
            }
            if let Some(hasher) = &mut hasher {
                hasher.update(&buf[..n]);
            }
            total += n as u64;
        }
    });
    runtime.block_on(async {
        let options = fetch::Options {
            chunk_size: CHUNK as u64,
            chunks_in_flight: IN_FLIGHT,
            ..fetch::Options::default()
        };
        let budget = Arc::new(Semaphore::new(2 * IN_FLIGHT));
        let mut stream = fetch::fetch(Arc::clone(repo), digest, size, options, budget);
        while let Some(bytes) = stream.next().await {
            let bytes = bytes.expect("the loopback server answers every chunk");
            tx.send(pipe::Message::Data(bytes))
                .await
                .expect("the reader runs");
        }
        tx.send(pipe::Message::End).await.expect("the reader runs");
    });
    drain.join().expect("the reader does not panic")
}

fn reassembly(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let bytes: Bytes = (0..CHUNKS * CHUNK)
        .map(|i| (i / 4096) as u8)
        .collect::<Vec<u8>>()
        .into();
    let digest = Digest::of(&bytes);
    let size = bytes.len() as u64;
    let blobs = Arc::new([
        Blob {
            bytes: bytes.clone(),
            delays: delays(CHUNKS),
        },
        Blob {
            bytes,
            delays: vec![0; CHUNKS],
        },
    ]);
    let addr = runtime.block_on(start_server(blobs));
    let host = addr.to_string();
    let client = Arc::new(
        registry::Client::new(&registry::Options {
            insecure: vec![host.clone()],
            ..registry::Options::default()
        })
        .expect("a registry client"),
    );
    let shuffled = Arc::new(client.repository(&host, "bench/shuffled", Credentials::Anonymous));
    let ordered = Arc::new(client.repository(&host, "bench/ordered", Credentials::Anonymous));
    for repo in [&shuffled, &ordered] {
        let (read, got) = reassemble(&runtime, repo, digest, size, true);
        assert_eq!((read, got), (size, Some(digest)), "the blob, in order");
    }

    let mut group = c.benchmark_group("reassembly");
    group.throughput(Throughput::Bytes(size));
    group.sample_size(20);
    group.bench_function("out_of_order", |b| {
        b.iter(|| black_box(reassemble(&runtime, &shuffled, digest, size, false)))
    });
    group.bench_function("in_order", |b| {
        b.iter(|| black_box(reassemble(&runtime, &ordered, digest, size, false)))
    });
    group.finish();
}

criterion_group!(benches, reassembly);
criterion_main!(benches);
