//! gRPC types and stubs generated at build time from the protos vendored under
//! `snapshotter/proto/`, by `protox` and `tonic-prost-build` (see `build.rs`).
//!
//! The protos are copied from the `vendor/` directory of the crates.io source package
//! `containerd-client` 0.9.0, which ships containerd `v2.1.1` (the
//! `github.com/containerd/containerd/api` module `v1.9.0`); details and checksums in
//! `snapshotter/proto/README.md`.
//!
//! The module tree mirrors the protobuf packages, so references across packages
//! (`containerd.types.Mount` from `containerd.services.snapshots.v1`) resolve:
//!
//! * [`containerd::services::snapshots::v1`] — the `Snapshots` service, server and client.
//! * [`containerd::types`] — containerd's shared message types (`Mount`).
//!
//! `google.protobuf` well-known types map to [`prost_types`].

/// containerd's gRPC API (`github.com/containerd/containerd/api`, containerd v2.1.1).
pub mod containerd {
    /// containerd services.
    pub mod services {
        /// Snapshotter service: `containerd.services.snapshots.v1`.
        pub mod snapshots {
            /// `containerd.services.snapshots.v1`.
            #[allow(
                clippy::all,
                clippy::pedantic,
                clippy::nursery,
                missing_docs,
                rustdoc::all
            )]
            pub mod v1 {
                tonic::include_proto!("containerd.services.snapshots.v1");
            }
        }
    }
    /// containerd's shared message types: `containerd.types`.
    #[allow(
        clippy::all,
        clippy::pedantic,
        clippy::nursery,
        missing_docs,
        rustdoc::all
    )]
    pub mod types {
        tonic::include_proto!("containerd.types");
    }
}
