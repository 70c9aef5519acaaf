//! Compiles the vendored gRPC protos (see `proto/README.md`) with `protox`, a pure-Rust protobuf
//! compiler, and generates Rust code with `tonic-prost-build`. No `protoc` is needed.
//!
//! * CRI `runtime.v1` (kubelet → Hoist): server and client.
//! * containerd `content`, `images`, `leases` v1 (Hoist → containerd): client only.

use std::path::PathBuf;

/// Include root. Every file sits at its Go import path below it, and the containerd protos import
/// each other by that full path (`github.com/containerd/containerd/api/types/descriptor.proto`).
/// `google/protobuf/*.proto` are bundled with protox.
const PROTO_ROOT: &str = "proto";

const CRI: &[&str] = &["k8s.io/cri-api/pkg/apis/runtime/v1/api.proto"];
/// CRI messages whose derived `Debug` would print a secret; `src/proto.rs` implements `Debug` for
/// each. The containerd protos Hoist compiles carry no secrets.
const CRI_SECRETS: &[&str] = &[".runtime.v1.AuthConfig"];
const CONTAINERD: &[&str] = &[
    "github.com/containerd/containerd/api/services/content/v1/content.proto",
    "github.com/containerd/containerd/api/services/images/v1/images.proto",
    "github.com/containerd/containerd/api/services/leases/v1/leases.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let root = manifest_dir.join(PROTO_ROOT);
    println!("cargo:rerun-if-changed={}", root.display());

    let cri = protox::compile(CRI, [&root])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // `AuthConfig` carries kubelet's pull secrets (its fields marked `debug_redact` in the
        // proto); its `Debug` is written by hand in `src/proto.rs` so they never reach a log.
        .skip_debug(CRI_SECRETS)
        .compile_fds(cri)?;

    let containerd = protox::compile(CONTAINERD, [&root])?;
    tonic_prost_build::configure()
        .build_server(false)
        .build_client(true)
        .compile_fds(containerd)?;
    Ok(())
}
