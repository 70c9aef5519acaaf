//! Compiles the vendored containerd snapshots protos (see `proto/README.md`) with `protox`, a
//! pure-Rust protobuf compiler, and generates the gRPC server and client with `tonic-prost-build`.
//! No `protoc` is needed.

use std::path::PathBuf;

/// Include root. Every file sits at its Go import path below it, and the containerd protos import
/// each other by that full path (`github.com/containerd/containerd/api/types/mount.proto`).
/// `google/protobuf/*.proto` are bundled with protox.
const PROTO_ROOT: &str = "proto";

const SNAPSHOTS: &[&str] =
    &["github.com/containerd/containerd/api/services/snapshots/v1/snapshots.proto"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let root = manifest_dir.join(PROTO_ROOT);
    println!("cargo:rerun-if-changed={}", root.display());

    let fds = protox::compile(SNAPSHOTS, [&root])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}
