//! gRPC types and stubs generated at build time from the protos vendored under `shim/proto/`, by
//! `protox` and `tonic-prost-build` (see `build.rs`).
//!
//! The protos are copied from crates.io source packages (details and checksums in
//! `shim/proto/README.md`):
//!
//! * CRI `runtime.v1`: `proto/v1.proto` of `k8s-cri` 0.11.0, which is kubernetes/cri-api
//!   `v0.32.x` (Kubernetes 1.32) with the gogoproto import and options removed.
//! * containerd `content`, `images`, `leases` v1 and `types`: `vendor/` of `containerd-client`
//!   0.9.0, which is containerd `v2.1.1` (the `github.com/containerd/containerd/api` module
//!   `v1.9.0`).
//!
//! The module tree mirrors the protobuf packages, so references across packages
//! (`containerd.types.Descriptor` from `containerd.services.images.v1`) resolve:
//!
//! * [`cri::v1`] — Kubernetes CRI `runtime.v1`: `ImageService` and `RuntimeService`, server and
//!   client. This is the Kubernetes 1.32 API: `ImageService` has `ListImages`, `ImageStatus`,
//!   `PullImage`, `RemoveImage` and `ImageFsInfo`. RPCs added later are absent
//!   (`RuntimeService.UpdatePodSandboxResources` from 1.33; `ImageService.StreamImages` and the
//!   other `Stream*` list RPCs from 1.36), so a newer kubelet that calls one gets `Unimplemented`.
//! * [`containerd::services`] — containerd `content`, `images` and `leases` v1 clients.
//! * [`containerd::types`] — containerd's shared message types (`Descriptor`).
//!
//! `google.protobuf` well-known types map to [`prost_types`].

/// Kubernetes Container Runtime Interface.
pub mod cri {
    /// CRI `runtime.v1` (kubernetes/cri-api `pkg/apis/runtime/v1/api.proto`, Kubernetes 1.32).
    #[allow(
        clippy::all,
        clippy::pedantic,
        clippy::nursery,
        missing_docs,
        rustdoc::all
    )]
    pub mod v1 {
        tonic::include_proto!("runtime.v1");
    }

    /// Redacted by hand (`build.rs` skips the derived `Debug`): the proto marks `password`,
    /// `auth`, `identity_token` and `registry_token` `debug_redact`, and a `PullImageRequest`
    /// logged at debug level must not carry a pod's pull secret. An empty field shows as `""`
    /// so a log still tells which kind of credential kubelet sent.
    impl std::fmt::Debug for v1::AuthConfig {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            fn redact(value: &str) -> &'static str {
                if value.is_empty() { "" } else { "<redacted>" }
            }
            f.debug_struct("AuthConfig")
                .field("username", &self.username)
                .field("password", &redact(&self.password))
                .field("auth", &redact(&self.auth))
                .field("server_address", &self.server_address)
                .field("identity_token", &redact(&self.identity_token))
                .field("registry_token", &redact(&self.registry_token))
                .finish()
        }
    }
}

/// containerd's gRPC API (`github.com/containerd/containerd/api`, containerd v2.1.1).
pub mod containerd {
    /// containerd services Hoist calls as a client.
    pub mod services {
        /// Content store: `containerd.services.content.v1`.
        pub mod content {
            /// `containerd.services.content.v1`.
            #[allow(
                clippy::all,
                clippy::pedantic,
                clippy::nursery,
                missing_docs,
                rustdoc::all
            )]
            pub mod v1 {
                tonic::include_proto!("containerd.services.content.v1");
            }
        }
        /// Image records: `containerd.services.images.v1`.
        pub mod images {
            /// `containerd.services.images.v1`.
            #[allow(
                clippy::all,
                clippy::pedantic,
                clippy::nursery,
                missing_docs,
                rustdoc::all
            )]
            pub mod v1 {
                tonic::include_proto!("containerd.services.images.v1");
            }
        }
        /// Leases that protect content from garbage collection: `containerd.services.leases.v1`.
        pub mod leases {
            /// `containerd.services.leases.v1`.
            #[allow(
                clippy::all,
                clippy::pedantic,
                clippy::nursery,
                missing_docs,
                rustdoc::all
            )]
            pub mod v1 {
                tonic::include_proto!("containerd.services.leases.v1");
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

#[cfg(test)]
mod tests {
    use super::cri::v1::{AuthConfig, PullImageRequest};

    #[test]
    fn auth_config_debug_redacts_secrets() {
        let auth = AuthConfig {
            username: "alice".into(),
            password: "s3cret-password".into(),
            auth: "s3cret-auth".into(),
            server_address: "registry.example".into(),
            identity_token: "s3cret-identity".into(),
            registry_token: "s3cret-registry".into(),
        };
        let request = PullImageRequest {
            auth: Some(auth.clone()),
            ..PullImageRequest::default()
        };
        for shown in [
            format!("{auth:?}"),
            format!("{request:?}"),
            format!("{auth:#?}"),
        ] {
            assert!(!shown.contains("s3cret"), "secret in {shown}");
            assert!(shown.contains("<redacted>"), "{shown}");
            assert!(
                shown.contains("alice") && shown.contains("registry.example"),
                "{shown}"
            );
        }
    }
}
