//! The gateway's routes: every request goes to [`Gateway::handle`] (which sends
//! `/mcp/{name}` to the MCP proxy); this module only adapts axum to it. The binary serves the
//! router on the listener every HTTP port of antibody shares (`antibody_server::net::serve`:
//! TLS, connection caps, timeouts, `TCP_NODELAY` so streamed chunks leave at once), which
//! hands the peer's address in as `ConnectInfo`.

use crate::proxy::{Call, Gateway};
use axum::extract::{ConnectInfo, Request, State};
use axum::response::Response;
use axum::Router;
use std::net::SocketAddr;
use std::sync::Arc;

pub fn router(gw: Arc<Gateway>) -> Router {
    if !gw.cfg.mcp_servers.is_empty() {
        let names: Vec<&str> = gw.cfg.mcp_servers.iter().map(|m| m.name.as_str()).collect();
        tracing::warn!(servers = ?names, "[[gateway.mcp_servers]] configured, but MCP is not yet proxied: /mcp/{{name}} answers 404");
    }
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
