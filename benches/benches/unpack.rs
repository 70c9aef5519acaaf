//! Unpacking a tar with Hoist's unpack stage and each of its writers, against the `tar` crate's
//! own `Archive::unpack` as a reference, on two shapes:
//!
//! * `small-files`: 2,000 files of 1–16 KiB in 40 directories, like `/usr/share`;
//! * `large-files`: 200 files of 256 KiB in 10 directories.
//!
//! `hoist_std_fs` writes each file with `openat` (relative to its verified parent fd), `write`,
//! `fchown`, `fchmod`, `futimens` and `close`; `hoist_io_uring` creates and sets metadata the same
//! way but submits the content writes and closes of a batch of files at once. Each iteration
//! unpacks into a fresh empty directory made outside the timing.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use hoist::pull::unpack;

/// A tar of `files` files spread over `dirs` directories, sizes from `size(random)`, in memory,
/// and its file content bytes.
fn tar_of(files: usize, dirs: usize, size: impl Fn(u64) -> usize) -> (Vec<u8>, u64) {
    let mut builder = tar::Builder::new(Vec::new());
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut content = 0u64;
    for d in 0..dirs {
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
    for i in 0..files {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let size = size(x);
        let data: Vec<u8> = (0..size).map(|j| (j as u64 ^ x) as u8).collect();
        let mut header = tar::Header::new_ustar();
        header.set_mode(0o644);
        header.set_size(size as u64);
        builder
            .append_data(
                &mut header,
                format!("usr/share/doc/pkg{}/file-{i}.txt", i % dirs),
                &data[..],
            )
            .expect("in-memory tar");
        content += size as u64;
    }
    (builder.into_inner().expect("in-memory tar"), content)
}

fn unpack_shape(c: &mut Criterion, name: &str, (tar, content): (Vec<u8>, u64)) {
    assert!(
        unpack::io_uring_available(),
        "io_uring is blocked here: hoist_io_uring would measure std::fs"
    );
    let scratch = tempfile::tempdir().expect("temporary directory");
    let fresh = || tempfile::tempdir_in(scratch.path()).expect("temporary directory");
    let mut group = c.benchmark_group(format!("unpack/{name}"));
    group.throughput(Throughput::Bytes(content));
    group.sample_size(10);
    for (writer, io_uring) in [("hoist_std_fs", false), ("hoist_io_uring", true)] {
        let options = unpack::Options {
            io_uring,
            ..unpack::Options::default()
        };
        group.bench_function(writer, |b| {
            b.iter_batched(
                fresh,
                |dir| {
                    let stats = unpack::unpack(&tar[..], dir.path(), &options).expect("unpacks");
                    black_box(stats);
                    dir
                },
                BatchSize::PerIteration,
            )
        });
    }
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

fn unpack_small_files(c: &mut Criterion) {
    let tar = tar_of(2_000, 40, |x| 1024 + (x % (15 * 1024)) as usize);
    unpack_shape(c, "small-files", tar);
}

fn unpack_large_files(c: &mut Criterion) {
    let tar = tar_of(200, 10, |_| 256 * 1024);
    unpack_shape(c, "large-files", tar);
}

criterion_group!(benches, unpack_small_files, unpack_large_files);
criterion_main!(benches);
