//! containerd's snapshots gRPC service (`containerd.services.snapshots.v1.Snapshots`) over a
//! unix socket, for containerd's `[proxy_plugins]`:
//!
//! ```toml
//! [proxy_plugins.hoist]
//!   type = "snapshot"
//!   address = "/run/hoist/snapshots.sock"
//! ```
//!
//! [`serve`] is the entry point (`hoist serve` and `hoist-snapshotter` call it); [`server`] gives
//! the bare tonic service for a caller that runs its own server. The tonic glue lives in
//! private `wrap.rs` and `convert.rs`; the store knows nothing of gRPC.

pub mod authority;
mod convert;
mod wrap;

use std::future::Future;
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::UnixListener;

use crate::error::Kind;
use crate::proto::containerd::services::snapshots::v1::snapshots_server::SnapshotsServer;
use crate::store::Store;
pub use wrap::Service;

/// Failures of the service as a whole (a single request's failure is a gRPC status instead).
/// The messages name the socket by its path only: [`bind`] and [`serve_router`] serve every
/// gRPC socket of `hoist serve`, the CRI ImageService's as well as the snapshots service's.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The socket could not be set up.
    #[error("socket {path}: {op}: {source}")]
    Socket {
        /// What was being done.
        op: &'static str,
        /// The socket path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Something other than a socket is in the way at the socket path.
    #[error("socket {path}: exists and is not a socket")]
    NotASocket {
        /// The socket path.
        path: PathBuf,
    },
    /// The gRPC server failed.
    #[error("gRPC server on {path}: {source}")]
    Serve {
        /// The socket path.
        path: PathBuf,
        /// tonic's error.
        source: tonic::transport::Error,
    },
}

impl Error {
    /// The kind of failure.
    pub fn kind(&self) -> Kind {
        match self {
            Error::NotASocket { .. } => Kind::InvalidArgument,
            Error::Socket { .. } | Error::Serve { .. } => Kind::Internal,
        }
    }
}

/// `Result` with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The snapshots service for `store`, to add to a tonic server.
pub fn server(store: Arc<Store>) -> SnapshotsServer<Service> {
    SnapshotsServer::new(Service::new(store))
}

/// How long open connections may take to finish after shutdown is asked for. containerd
/// keeps its connection to a proxy snapshotter open for as long as it runs, so without a
/// bound a graceful stop would wait for containerd to exit.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Binds `socket` (mode 0660, replacing a stale socket file) and serves the snapshots service
/// from `store` until `shutdown` completes and open requests finish (at most
/// [`SHUTDOWN_GRACE`]); then removes the socket file.
pub async fn serve(
    store: Arc<Store>,
    socket: &Path,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let router = tonic::transport::Server::builder().add_service(server(Arc::clone(&store)));
    tracing::info!(socket = %socket.display(), root = %store.root().display(), "serving containerd snapshots");
    serve_router(router, socket, shutdown).await
}

/// Serves `router` on a unix socket at `socket` (see [`bind`]) until `shutdown` completes and
/// open requests finish (at most [`SHUTDOWN_GRACE`]: containerd and kubelet keep their
/// connections open); then removes the socket file. Every gRPC socket of `hoist serve` is
/// served this way, each connection through [`authority::Stream`] so that clients that send
/// the socket's path as `:authority` are served too.
pub async fn serve_router(
    router: tonic::transport::server::Router,
    socket: &Path,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let listener = bind(socket)?;
    let incoming = futures::stream::unfold(listener, |listener| async move {
        let accepted = listener
            .accept()
            .await
            .map(|(stream, _)| authority::Stream::new(stream));
        Some((accepted, listener))
    });
    let (fired_tx, fired_rx) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        shutdown.await;
        let _ = fired_tx.send(());
    };
    let serving = router.serve_with_incoming_shutdown(incoming, shutdown);
    let grace_over = async move {
        match fired_rx.await {
            Ok(()) => tokio::time::sleep(SHUTDOWN_GRACE).await,
            Err(_) => std::future::pending().await,
        }
    };
    let served = tokio::select! {
        served = serving => served,
        () = grace_over => {
            tracing::warn!(socket = %socket.display(), "connections still open after the shutdown grace; stopping");
            Ok(())
        }
    };
    if let Err(e) = std::fs::remove_file(socket)
        && e.kind() != io::ErrorKind::NotFound
    {
        tracing::warn!(socket = %socket.display(), error = %e, "could not remove the socket");
    }
    served.map_err(|source| Error::Serve {
        path: socket.to_owned(),
        source,
    })
}

/// Completes on SIGTERM or SIGINT: the daemons' signal to stop serving.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        (Err(e), _) | (_, Err(e)) => {
            tracing::warn!(error = %e, "no signal handler; stop with SIGKILL");
            std::future::pending::<()>().await;
        }
    }
    tracing::info!("shutting down");
}

/// Binds a unix socket at `socket` with mode 0660, creating its directory and replacing a stale
/// socket (never another kind of file). Shared with the other gRPC services of `hoist serve`.
pub fn bind(socket: &Path) -> Result<UnixListener> {
    let failed = |op| {
        move |source| Error::Socket {
            op,
            path: socket.to_owned(),
            source,
        }
    };
    if let Some(dir) = socket.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(failed("create directory"))?;
    }
    match std::fs::symlink_metadata(socket) {
        Ok(meta) if meta.file_type().is_socket() => {
            std::fs::remove_file(socket).map_err(failed("remove stale socket"))?;
        }
        Ok(_) => {
            return Err(Error::NotASocket {
                path: socket.to_owned(),
            });
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(failed("stat")(e)),
    }
    let listener = UnixListener::bind(socket).map_err(failed("bind"))?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o660))
        .map_err(failed("chmod"))?;
    Ok(listener)
}
