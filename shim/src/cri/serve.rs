//! Serving the CRI ImageService on a unix socket.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use crate::proto::cri::v1::image_service_server::ImageServiceServer;

use super::ImageService;

/// How long open connections may take to finish after shutdown is asked for (kubelet keeps
/// its connection open).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Serves `service` on `socket` (mode 0660) until `shutdown` completes.
pub async fn serve(
    service: ImageService,
    socket: &Path,
    shutdown: impl Future<Output = ()>,
) -> Result<(), hoist_snapshotter::service::Error> {
    let listener = hoist_snapshotter::service::bind(socket)?;
    tracing::info!(socket = %socket.display(), "serving the CRI ImageService");
    let incoming = futures::stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await.map(|(stream, _)| stream);
        Some((accepted, listener))
    });
    let (fired_tx, fired_rx) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        shutdown.await;
        let _ = fired_tx.send(());
    };
    let serving = tonic::transport::Server::builder()
        .add_service(ImageServiceServer::new(service).max_decoding_message_size(16 << 20))
        .serve_with_incoming_shutdown(incoming, shutdown);
    let grace_over = async move {
        match fired_rx.await {
            Ok(()) => tokio::time::sleep(SHUTDOWN_GRACE).await,
            Err(_) => std::future::pending().await,
        }
    };
    let served = tokio::select! {
        served = serving => served,
        () = grace_over => Ok(()),
    };
    if let Err(e) = std::fs::remove_file(socket)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(socket = %socket.display(), error = %e, "could not remove the socket");
    }
    served.map_err(|source| hoist_snapshotter::service::Error::Serve {
        path: socket.to_owned(),
        source,
    })
}
