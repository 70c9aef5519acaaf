//! In-order reassembly of chunks that complete out of order: the pull's fetch side runs
//! `chunks_in_flight` Range requests at once and yields their bytes in blob order
//! (`StreamExt::buffered`) into the bounded hand-off (`pull::pipe`) that the blocking decode
//! thread reads. Here the chunks complete in a shuffled order (each yields to the scheduler a
//! number of times given by a permutation, no timers), against the same chunks completing in
//! order. 64 MiB in 1 MiB chunks, 8 in flight, as Hoist's defaults are shaped.

use std::hint::black_box;
use std::io::Read;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures::StreamExt;
use hoist::pull::pipe::{self, Message};

const CHUNK: usize = 1 << 20;
const CHUNKS: usize = 64;
const IN_FLIGHT: usize = 8;

/// A permutation of 0..n from a fixed xorshift seed: how late each chunk completes.
fn delays(n: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    for i in (1..n).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        order.swap(i, (x % (i as u64 + 1)) as usize);
    }
    // Spread within a window a little wider than the chunks in flight.
    order.iter().map(|d| d % (2 * IN_FLIGHT)).collect()
}

/// Fetch side → pipe → a reader thread draining it; returns the bytes read.
fn reassemble(runtime: &tokio::runtime::Runtime, chunks: &[Bytes], delays: &[usize]) -> u64 {
    let (tx, mut reader) = pipe::channel(2);
    let drain = std::thread::spawn(move || {
        let mut buf = vec![0u8; 256 << 10];
        let mut total = 0u64;
        loop {
            let n = reader.read(&mut buf).expect("the pipe ends with End");
            if n == 0 {
                return total;
            }
            total += n as u64;
        }
    });
    runtime.block_on(async {
        let mut stream = futures::stream::iter(chunks.iter().cloned().zip(delays.iter().copied()))
            .map(|(bytes, delay)| async move {
                for _ in 0..delay {
                    tokio::task::yield_now().await;
                }
                bytes
            })
            .buffered(IN_FLIGHT);
        while let Some(bytes) = stream.next().await {
            tx.send(Message::Data(bytes))
                .await
                .expect("the reader runs");
        }
        tx.send(Message::End).await.expect("the reader runs");
    });
    drain.join().expect("the reader does not panic")
}

fn reassembly(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("a runtime");
    let chunks: Vec<Bytes> = (0..CHUNKS)
        .map(|i| Bytes::from(vec![i as u8; CHUNK]))
        .collect();
    let shuffled = delays(CHUNKS);
    let in_order = vec![0; CHUNKS];
    let mut group = c.benchmark_group("reassembly");
    group.throughput(Throughput::Bytes((CHUNK * CHUNKS) as u64));
    group.sample_size(20);
    group.bench_function("out_of_order", |b| {
        b.iter(|| black_box(reassemble(&runtime, &chunks, &shuffled)))
    });
    group.bench_function("in_order", |b| {
        b.iter(|| black_box(reassemble(&runtime, &chunks, &in_order)))
    });
    group.finish();
}

criterion_group!(benches, reassembly);
criterion_main!(benches);
