//! The services the tests run against, found through the environment scripts/lib.sh sets.

use std::path::{Path, PathBuf};

use hoist_harness::Credentials;
use hoist_harness::containerd::{Ctr, PullOptions};

/// Namespace of everything the tests put in containerd.
pub const NAMESPACE: &str = "hoist-test";

fn required(name: &str) -> String {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => value,
        _ => panic!(
            "{name} is not set: these tests need a real registry and containerd. Run them through \
             scripts/test.sh, or `scripts/with-services.sh cargo test -p hoist-harness` \
             (as root), which start the services with scripts/lib.sh and export HOIST_TEST_*"
        ),
    }
}

/// `HOST:PORT` of the plain-HTTP registry.
pub fn registry() -> String {
    required("HOIST_TEST_REGISTRY")
}

/// `HOST:PORT` and credentials of the registry with basic auth.
pub fn auth_registry() -> (String, Credentials) {
    let host = required("HOIST_TEST_AUTH_REGISTRY");
    let creds = required("HOIST_TEST_AUTH_REGISTRY_CREDS");
    let creds =
        Credentials::parse(&creds).expect("HOIST_TEST_AUTH_REGISTRY_CREDS is USER:PASSWORD");
    (host, creds)
}

/// A ctr client of the test containerd, in [`NAMESPACE`].
pub fn ctr() -> Ctr {
    Ctr::new(required("HOIST_TEST_CONTAINERD_SOCKET"), NAMESPACE)
}

/// A fresh directory for mount targets beside the containerd root, so that
/// `hoist_stop_services` unmounts whatever a crashed test leaves mounted.
pub fn mount_dir() -> tempfile::TempDir {
    let root = PathBuf::from(required("HOIST_TEST_CONTAINERD_ROOT"));
    let parent = root.parent().unwrap_or(Path::new("/tmp")).join("mnt");
    std::fs::create_dir_all(&parent).unwrap();
    tempfile::tempdir_in(parent).unwrap()
}

/// Pull options for the plain-HTTP registry.
pub fn plain_http() -> PullOptions {
    PullOptions {
        plain_http: true,
        credentials: None,
    }
}

/// `HOST:PORT` of the HTTPS registry and the PEM file of the CA that signed its certificate.
pub fn tls_registry() -> (String, PathBuf) {
    (
        required("HOIST_TEST_TLS_REGISTRY"),
        PathBuf::from(required("HOIST_TEST_TLS_CA")),
    )
}
