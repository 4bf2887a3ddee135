//! The gateway's listener: every request goes to [`Gateway::handle`] (which sends
//! `/mcp/{name}` to the MCP proxy); this module only adapts axum to it.

use crate::proxy::{Call, Gateway};
use axum::extract::{ConnectInfo, Request, State};
use axum::response::Response;
use axum::Router;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

pub fn router(gw: Arc<Gateway>) -> Router {
    Router::new().fallback(forward).with_state(gw)
}

async fn forward(
    State(gw): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let call = Call {
        method: parts.method,
        path_and_query: parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned()),
        headers: parts.headers,
        peer: peer.ip(),
        body,
    };
    gw.handle(call).await
}

/// Serves until `shutdown` resolves. Sockets get `TCP_NODELAY`: streamed chunks leave at
/// once instead of waiting for the next.
pub async fn serve(
    gw: Arc<Gateway>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(
        listener,
        router(gw).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
