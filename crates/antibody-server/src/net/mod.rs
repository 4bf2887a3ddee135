//! The listener: accepts TCP (optionally TLS), caps connections in all and per address,
//! closes connections whose request head is too slow or that sit idle, answers every
//! protocol error in the API's JSON shape and lingers on close so a client still sending
//! reads its answer. Any HTTP listener of the binary runs [`serve`] (the API; the gateway,
//! whose router the composition root hands in). Handlers find the peer's address as
//! `ConnectInfo<SocketAddr>`, as under `axum::serve`.

pub(crate) mod caps;
mod conn;
pub mod policy;
pub mod tls;

pub use tls::{TlsAcceptor, TlsFiles};

use axum::Router;
use caps::{ConnCaps, ConnPermit, Refusal};
use conn::{ConnState, Watched};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Request heads (request line and headers) larger than this get 431.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// `[limits]` of a listener's connections.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetLimits {
    /// Connections open at once; more are answered 503 and closed.
    pub max_connections: usize,
    /// Connections open at once from one address; more are answered 429 and closed.
    pub max_connections_per_ip: usize,
    /// A request head must arrive whole this long after its first byte (and a TLS
    /// handshake finish this long after the connection opens).
    pub header_timeout: Duration,
    /// A connection with no request in flight and no traffic this long is closed.
    pub idle_timeout: Duration,
}

impl Default for NetLimits {
    fn default() -> Self {
        Self {
            max_connections: 1000,
            max_connections_per_ip: 100,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// Serves `app` on `listener` until `stop` turns true; then stops accepting, lets each
/// connection finish its request (graceful) and returns when all are closed.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: NetLimits,
    tls: Option<Arc<TlsAcceptor>>,
    stop: watch::Receiver<bool>,
) {
    let caps = ConnCaps::new(limits.max_connections, limits.max_connections_per_ip);
    let shared = Arc::new(Shared { app, limits, tls });
    let mut conns = tokio::task::JoinSet::new();
    let mut stopping = stop.clone();
    loop {
        tokio::select! {
            () = stopped(&mut stopping) => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => match caps.try_acquire(peer.ip()) {
                    Ok(permit) => {
                        conns.spawn(connection(stream, peer, shared.clone(), permit, stop.clone()));
                    }
                    Err(refusal) => refuse(stream, peer, refusal, shared.tls.is_some()),
                },
                Err(e) => {
                    // Out of descriptors (EMFILE) and the like: wait for some to close
                    // rather than spin.
                    tracing::warn!(error = %e, open = caps.open(), "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    while conns.join_next().await.is_some() {}
}

/// Resolves once `stop` turns true (or its sender is gone). Unlike `wait_for` it holds no
/// borrow of the value, so a `select!` around it may await in its other arms and still be
/// spawned.
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

struct Shared {
    app: Router,
    limits: NetLimits,
    tls: Option<Arc<TlsAcceptor>>,
}

/// Answers a connection over a cap and closes it. Plain HTTP gets the API's JSON error
/// (best effort: one non-blocking write); a TLS connection is closed unanswered, as a
/// handshake would cost what the cap protects.
fn refuse(stream: TcpStream, peer: SocketAddr, refusal: Refusal, tls: bool) {
    tracing::debug!(%peer, ?refusal, "connection refused");
    if !tls {
        let (code, message) = refusal.code();
        let _ = stream.try_write(&json_response(code, message));
    }
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    _permit: ConnPermit,
    stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let state = ConnState::new();
    let Some(tls) = &shared.tls else {
        return http(
            Watched::new(stream, state.clone()),
            state,
            peer,
            &shared,
            stop,
        )
        .await;
    };
    // The handshake counts as reading the head: a client that opens TLS and stalls is a
    // slow loris too.
    match tokio::time::timeout(shared.limits.header_timeout, tls.accept(stream)).await {
        Ok(Ok(stream)) => {
            http(
                Watched::new(stream, state.clone()),
                state,
                peer,
                &shared,
                stop,
            )
            .await;
        }
        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
    }
}

async fn http<IO>(
    io: Watched<IO>,
    state: Arc<ConnState>,
    peer: SocketAddr,
    shared: &Shared,
    mut stop: watch::Receiver<bool>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = {
        let app = hyper_util::service::TowerToHyperService::new(shared.app.clone());
        let state = state.clone();
        hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            // In flight from the parsed head until its response body is dropped.
            let guard = state.begin();
            let answer = hyper::service::Service::call(&app, req);
            async move {
                let resp = answer.await?;
                Ok::<_, std::convert::Infallible>(resp.map(move |body| {
                    axum::body::Body::new(body.map_frame(move |frame| {
                        let _in_flight = &guard;
                        frame
                    }))
                }))
            }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    // The header deadline is ours (it starts at a head's first byte, not while idle).
    builder
        .header_read_timeout(None)
        .max_header_size(MAX_HEAD_BYTES);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let mut draining = false;
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            _ = stop.wait_for(|s| *s), if !draining => {
                state.stop();
                conn.as_mut().graceful_shutdown();
                draining = true;
            }
            why = state.expired(&shared.limits) => {
                tracing::debug!(?why, "closing connection");
                return;
            }
        }
    }
}

/// A whole HTTP/1.1 response carrying the API's error shape, for answers written below the
/// router (refused connections, protocol errors). The status comes from the one table.
pub(crate) fn json_response(code: &str, message: &str) -> Vec<u8> {
    let status = crate::error::status_of(code);
    let body = serde_json::json!({"error": {"code": code, "message": message}}).to_string();
    format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\nx-content-type-options: nosniff\r\ncache-control: no-store\r\n\r\n{body}",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    )
    .into_bytes()
}
