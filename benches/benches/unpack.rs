//! Unpacking a small-file tar (2,000 files of 1–16 KiB in 40 directories, like `/usr/share`)
//! with Hoist's unpack stage, which writes through `std::fs`-level syscalls (openat relative to
//! the layer root, no path re-resolution), against the `tar` crate's own `Archive::unpack` as a
//! reference. Each iteration unpacks into a fresh empty directory made outside the timing.
//! There is no io_uring writer in the engine yet, so only the `std::fs` one is measured.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use hoist::pull::unpack;

const FILES: usize = 2_000;

/// The tar stream, in memory, and its file content bytes.
fn small_file_tar() -> (Vec<u8>, u64) {
    let mut builder = tar::Builder::new(Vec::new());
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut content = 0u64;
    for d in 0..40 {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(0o755);
        header.set_size(0);
        builder
            .append_data(
                &mut header,
                format!("usr/share/doc/pkg{d}/"),
                std::io::empty(),
            )
            .expect("in-memory tar");
    }
    for i in 0..FILES {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let size = 1024 + (x % (15 * 1024)) as usize;
        let data: Vec<u8> = (0..size).map(|j| (j as u64 ^ x) as u8).collect();
        let mut header = tar::Header::new_ustar();
        header.set_mode(0o644);
        header.set_size(size as u64);
        builder
            .append_data(
                &mut header,
                format!("usr/share/doc/pkg{}/file-{i}.txt", i % 40),
                &data[..],
            )
            .expect("in-memory tar");
        content += size as u64;
    }
    (builder.into_inner().expect("in-memory tar"), content)
}

fn unpack_small_files(c: &mut Criterion) {
    let (tar, content) = small_file_tar();
    let scratch = tempfile::tempdir().expect("temporary directory");
    let fresh = || tempfile::tempdir_in(scratch.path()).expect("temporary directory");
    let mut group = c.benchmark_group("unpack/small-files");
    group.throughput(Throughput::Bytes(content));
    group.sample_size(10);
    group.bench_function("hoist_std_fs", |b| {
        b.iter_batched(
            fresh,
            |dir| {
                let stats = unpack::unpack(&tar[..], dir.path(), &unpack::Options::default())
                    .expect("unpacks");
                black_box(stats);
                dir
            },
            BatchSize::PerIteration,
        )
    });
    group.bench_function("tar_crate_unpack", |b| {
        b.iter_batched(
            fresh,
            |dir| {
                tar::Archive::new(&tar[..])
                    .unpack(dir.path())
                    .expect("unpacks");
                dir
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, unpack_small_files);
criterion_main!(benches);
