//! Serving the CRI ImageService on a unix socket, the same way as the snapshots service.

use std::future::Future;
use std::path::Path;

use crate::proto::cri::v1::image_service_server::ImageServiceServer;

use super::ImageService;

/// Serves `service` on `socket` (mode 0660) until `shutdown` completes.
pub async fn serve(
    service: ImageService,
    socket: &Path,
    shutdown: impl Future<Output = ()>,
) -> Result<(), hoist_snapshotter::service::Error> {
    let router = tonic::transport::Server::builder()
        .add_service(ImageServiceServer::new(service).max_decoding_message_size(16 << 20));
    tracing::info!(socket = %socket.display(), "serving the CRI ImageService");
    hoist_snapshotter::service::serve_router(router, socket, shutdown).await
}
