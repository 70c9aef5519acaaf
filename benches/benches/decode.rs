//! Decode + verify (blob digest, decompression, diff ID) against bare decompression of the
//! same bytes, for gzip and zstd; and SHA-256 throughput. The pipeline's overhead over bare
//! `flate2` is the cost of the two digests.

use std::hint::black_box;
use std::io::{Read, Write};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hoist::Digest;
use hoist::manifest::Compression;
use hoist::pull::decode::{BlobVerifier, Decoder};

/// A tar-like payload: text-ish runs and random runs, roughly 2.5:1 under gzip.
fn payload(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let words: Vec<&[u8]> = vec![
        b"usr/share/doc ",
        b"lib ",
        b"copyright ",
        b"license ",
        b"\0\0\0\0",
        b"changelog.gz ",
    ];
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if x.is_multiple_of(3) {
            for _ in 0..64 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                out.push(x as u8);
            }
        } else {
            out.extend_from_slice(words[(x % words.len() as u64) as usize]);
        }
    }
    out.truncate(len);
    out
}

fn decode_verify(c: &mut Criterion) {
    let plain = payload(32 << 20);
    let diff_id = Digest::of(&plain);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&plain).expect("in-memory write");
    let gzip = gz.finish().expect("in-memory gzip");
    let zst = zstd::encode_all(&plain[..], 3).expect("in-memory zstd");

    for (name, blob, compression) in [
        ("gzip", &gzip, Compression::Gzip),
        ("zstd", &zst, Compression::Zstd),
    ] {
        let mut group = c.benchmark_group(format!("decode/{name}"));
        group.throughput(Throughput::Bytes(plain.len() as u64));
        group.sample_size(10);
        group.bench_function("bare", |b| {
            b.iter(|| {
                let mut out = std::io::sink();
                match compression {
                    Compression::Gzip => std::io::copy(
                        &mut flate2::bufread::MultiGzDecoder::new(&blob[..]),
                        &mut out,
                    ),
                    _ => std::io::copy(
                        &mut zstd::stream::read::Decoder::with_buffer(&blob[..]).expect("zstd"),
                        &mut out,
                    ),
                }
                .expect("decodes")
            })
        });
        // The blocking stage as the pipeline runs it: decompress, diff ID (hashed on a helper
        // thread). The blob digest is computed on the fetch task as chunks arrive.
        group.bench_function("hoist_decode_diffid", |b| {
            b.iter(|| {
                let mut decoder =
                    Decoder::new(&blob[..], compression, Digest::of(b""), diff_id, None)
                        .expect("decoder");
                let mut buf = vec![0u8; 64 << 10];
                while decoder.read(&mut buf).expect("decodes") > 0 {}
                black_box(decoder.finish().expect("diff id"))
            })
        });
        // Both digests and the decode on one thread, for reference.
        group.bench_function("hoist_both_digests_one_thread", |b| {
            b.iter(|| {
                let mut verifier = BlobVerifier::new(Digest::of(blob), blob.len() as u64);
                for chunk in blob.chunks(1 << 20) {
                    verifier.update(chunk).expect("within size");
                }
                verifier.finish().expect("blob digest");
                let mut decoder =
                    Decoder::new(&blob[..], compression, Digest::of(b""), diff_id, None)
                        .expect("decoder");
                let mut buf = vec![0u8; 64 << 10];
                while decoder.read(&mut buf).expect("decodes") > 0 {}
                black_box(decoder.finish().expect("diff id"))
            })
        });
        group.finish();
    }
}

fn sha256(c: &mut Criterion) {
    let data = payload(64 << 20);
    let mut group = c.benchmark_group("sha256");
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.sample_size(10);
    group.bench_function("64MiB", |b| b.iter(|| black_box(Digest::of(&data))));
    group.finish();
}

criterion_group!(benches, decode_verify, sha256);
criterion_main!(benches);
