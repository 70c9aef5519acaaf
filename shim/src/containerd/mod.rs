//! A client of containerd's own gRPC API on its unix socket: the content store, image records,
//! leases, and the snapshots service (through which containerd adopts layers Hoist committed).
//!
//! Everything gRPC stays in this module: callers pass and get the engine's types ([`Digest`],
//! [`Descriptor`], bytes, label maps). Every call carries the `containerd-namespace` header;
//! work done under a [`Lease`] also carries `containerd-lease`, so containerd's garbage
//! collector keeps what it creates until the lease is deleted or expires.
//!
//! * [`lease`]: create and delete leases with a `containerd.io/gc.expire` label.
//! * [`content`]: write blobs (Write stream: stat, write, commit; "already exists" is success),
//!   read their info, set labels, list.
//! * [`images`]: create-or-update, get, list and delete image records.
//! * [`snapshots`]: adopt committed layers (Prepare with `containerd.io/snapshot.ref`).

pub mod content;
pub mod images;
pub mod lease;
pub mod snapshots;

use std::path::{Path, PathBuf};

use tonic::metadata::AsciiMetadataValue;
use tonic::transport::{Channel, Endpoint};

use crate::digest::Digest;
use crate::manifest::Descriptor;

pub use content::{BlobInfo, Written};
pub use images::{Image, MANAGED_LABEL, PINNED_LABEL};
pub use lease::Lease;
pub use snapshots::{Adoption, Layer, TARGET_LABEL};

/// containerd client failures. Each names the call and the object it was about.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The socket could not be reached.
    #[error("containerd at {socket}: {source}")]
    Connect {
        /// The socket.
        socket: PathBuf,
        /// Why.
        source: tonic::transport::Error,
    },
    /// A namespace or lease ID that cannot travel in a gRPC header.
    #[error("containerd: {what} {value:?} is not a valid header value")]
    Header {
        /// `namespace` or `lease`.
        what: &'static str,
        /// The value.
        value: String,
    },
    /// containerd answered a call with an error.
    #[error("containerd {call} {object}: {}: {}", .status.code(), .status.message())]
    Rpc {
        /// The call (`content.Write`, `images.Create`...).
        call: &'static str,
        /// What it was about (a digest, an image name, a lease ID).
        object: String,
        /// containerd's answer.
        status: tonic::Status,
    },
    /// containerd returned a digest Hoist cannot parse (not sha256).
    #[error("containerd {call}: digest {value:?}: {source}")]
    Digest {
        /// The call.
        call: &'static str,
        /// The digest as sent.
        value: String,
        /// Why it is not usable.
        source: crate::digest::Error,
    },
    /// containerd's answer lacks a part the protocol requires.
    #[error("containerd {call} {object}: the answer has no {missing}")]
    Incomplete {
        /// The call.
        call: &'static str,
        /// What it was about.
        object: String,
        /// The missing part.
        missing: &'static str,
    },
    /// A layer to adopt is not committed in the snapshotter: Prepare created a new snapshot
    /// instead of answering AlreadyExists (the new one is removed again).
    #[error("snapshotter {snapshotter}: layer {chain_id} is not committed, nothing to adopt")]
    NotAdopted {
        /// The snapshotter.
        snapshotter: String,
        /// The layer's chain ID.
        chain_id: Digest,
    },
}

impl Error {
    /// The kind of failure, for the API edges.
    pub fn kind(&self) -> crate::error::Kind {
        use crate::error::Kind;
        use tonic::Code;
        match self {
            Error::Connect { .. } => Kind::Unavailable,
            Error::Header { .. } => Kind::InvalidArgument,
            Error::Digest { .. } | Error::Incomplete { .. } => Kind::Internal,
            Error::NotAdopted { .. } => Kind::NotFound,
            Error::Rpc { status, .. } => match status.code() {
                Code::NotFound => Kind::NotFound,
                Code::InvalidArgument
                | Code::AlreadyExists
                | Code::FailedPrecondition
                | Code::OutOfRange => Kind::InvalidArgument,
                Code::PermissionDenied => Kind::PermissionDenied,
                Code::Unauthenticated => Kind::Unauthenticated,
                Code::Unavailable
                | Code::DeadlineExceeded
                | Code::ResourceExhausted
                | Code::Aborted
                | Code::Cancelled => Kind::Unavailable,
                _ => Kind::Internal,
            },
        }
    }

    /// Whether containerd answered NotFound.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Rpc { status, .. } if status.code() == tonic::Code::NotFound)
    }
}

/// `Result` with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A connection to containerd, bound to one namespace. Cheap to clone; calls may run
/// concurrently.
#[derive(Debug, Clone)]
pub struct Client {
    channel: Channel,
    namespace: String,
    namespace_header: AsciiMetadataValue,
}

fn header(what: &'static str, value: &str) -> Result<AsciiMetadataValue> {
    value.parse().map_err(|_| Error::Header {
        what,
        value: value.to_owned(),
    })
}

impl Client {
    /// Connects to containerd's socket (`/run/containerd/containerd.sock`) and works in
    /// `namespace` (`k8s.io` for what kubelet sees).
    pub async fn connect(socket: &Path, namespace: &str) -> Result<Client> {
        let connect_err = |source| Error::Connect {
            socket: socket.to_owned(),
            source,
        };
        let channel = Endpoint::from_shared(format!("unix://{}", socket.display()))
            .map_err(connect_err)?
            .connect()
            .await
            .map_err(connect_err)?;
        Client::new(channel, namespace)
    }

    /// As [`Client::connect`], but connecting on first use (and reconnecting after containerd
    /// restarts), so that `hoist serve` can start before containerd does.
    pub fn connect_lazy(socket: &Path, namespace: &str) -> Result<Client> {
        let channel = Endpoint::from_shared(format!("unix://{}", socket.display()))
            .map_err(|source| Error::Connect {
                socket: socket.to_owned(),
                source,
            })?
            .connect_lazy();
        Client::new(channel, namespace)
    }

    /// A client over an existing channel.
    fn new(channel: Channel, namespace: &str) -> Result<Client> {
        Ok(Client {
            channel,
            namespace: namespace.to_owned(),
            namespace_header: header("namespace", namespace)?,
        })
    }

    /// The same connection, working in another namespace.
    pub fn in_namespace(&self, namespace: &str) -> Result<Client> {
        Client::new(self.channel.clone(), namespace)
    }

    /// The namespace calls work in.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// `message` with the namespace header and, under a lease, the lease header.
    fn request<T>(&self, message: T, lease: Option<&Lease>) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        let metadata = request.metadata_mut();
        metadata.insert("containerd-namespace", self.namespace_header.clone());
        if let Some(lease) = lease {
            metadata.insert("containerd-lease", lease.header().clone());
        }
        request
    }
}

/// An error for `call` on `object` from containerd's answer.
fn rpc(call: &'static str, object: impl ToString) -> impl FnOnce(tonic::Status) -> Error {
    move |status| Error::Rpc {
        call,
        object: object.to_string(),
        status,
    }
}

/// Parses a digest containerd sent.
fn parse_digest(call: &'static str, value: &str) -> Result<Digest> {
    value.parse().map_err(|source| Error::Digest {
        call,
        value: value.to_owned(),
        source,
    })
}

/// The engine's descriptor as containerd's.
fn to_proto(d: &Descriptor) -> crate::proto::containerd::types::Descriptor {
    crate::proto::containerd::types::Descriptor {
        media_type: d.media_type.clone(),
        digest: d.digest.to_string(),
        size: i64::try_from(d.size).unwrap_or(i64::MAX),
        annotations: d.annotations.clone().into_iter().collect(),
    }
}

/// containerd's descriptor as the engine's.
fn from_proto(
    call: &'static str,
    d: crate::proto::containerd::types::Descriptor,
) -> Result<Descriptor> {
    Ok(Descriptor {
        media_type: d.media_type,
        digest: parse_digest(call, &d.digest)?,
        size: u64::try_from(d.size).unwrap_or(0),
        platform: None,
        annotations: d.annotations.into_iter().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Kind;

    #[test]
    fn status_codes_map_to_kinds() {
        let cases = [
            (tonic::Code::NotFound, Kind::NotFound),
            (tonic::Code::AlreadyExists, Kind::InvalidArgument),
            (tonic::Code::FailedPrecondition, Kind::InvalidArgument),
            (tonic::Code::Unavailable, Kind::Unavailable),
            (tonic::Code::PermissionDenied, Kind::PermissionDenied),
            (tonic::Code::Internal, Kind::Internal),
            (tonic::Code::Unknown, Kind::Internal),
        ];
        for (code, kind) in cases {
            let e = Error::Rpc {
                call: "images.Get",
                object: "x".into(),
                status: tonic::Status::new(code, "m"),
            };
            assert_eq!(e.kind(), kind, "{code:?}");
            assert_eq!(e.is_not_found(), code == tonic::Code::NotFound);
        }
    }

    #[test]
    fn descriptors_round_trip_through_the_proto() {
        let d = Descriptor {
            media_type: crate::manifest::OCI_MANIFEST.into(),
            digest: Digest::of(b"m"),
            size: 42,
            platform: None,
            annotations: [("a".to_owned(), "b".to_owned())].into(),
        };
        assert_eq!(from_proto("t", to_proto(&d)).unwrap(), d);
        let mut bad = to_proto(&d);
        bad.digest = "md5:abc".into();
        assert!(matches!(
            from_proto("t", bad),
            Err(Error::Digest { call: "t", .. })
        ));
    }

    #[test]
    fn namespaces_must_be_header_values() {
        assert!(header("namespace", "k8s.io").is_ok());
        assert!(matches!(
            header("namespace", "bad\nname"),
            Err(Error::Header {
                what: "namespace",
                ..
            })
        ));
    }
}
