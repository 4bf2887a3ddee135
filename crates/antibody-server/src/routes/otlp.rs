//! `POST /v1/otlp/v1/traces` and `/v1/otlp/v1/logs`: OTLP/HTTP exports (protobuf or JSON)
//! mapped by `antibody_formats::otlp`, through the same durable path as `/v1/events`, and
//! answered in the request's encoding once durable. An OTLP exporter's endpoint is the
//! server's base URL plus `/v1/otlp` (it appends `/v1/traces` and `/v1/logs` itself).

use super::events::{admit, commit, header_str, INLINE_PARSE_BYTES};
use crate::auth::Auth;
use crate::error::ApiError;
use crate::state::AppState;
use antibody_core::ingest::decode_body;
use antibody_formats::otlp::{self, Encoding, Mapped, Signal};
use antibody_store::Role;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

pub async fn traces(
    State(st): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    export(st, auth, headers, body, Signal::Traces).await
}

pub async fn logs(
    State(st): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    export(st, auth, headers, body, Signal::Logs).await
}

async fn export(
    st: AppState,
    auth: Auth,
    headers: HeaderMap,
    body: Body,
    signal: Signal,
) -> Result<Response, ApiError> {
    let arrived = Instant::now();
    auth.require(Role::Ingest, "send telemetry")?;
    let content_type = header_str(&headers, header::CONTENT_TYPE);
    let enc =
        Encoding::from_content_type(content_type.as_deref()).ok_or_else(|| ApiError::Invalid {
            code: "unsupported_media_type",
            message: format!(
                "OTLP bodies are `application/x-protobuf` or `application/json`, not `{}`",
                content_type.as_deref().unwrap_or("(none)")
            ),
        })?;
    let mut admitted = admit(&st, &auth)?;
    let limits = st.limits.clone();
    let raw = super::read_body(body, limits.max_body_bytes, st.body_timeout).await?;
    let encoding = header_str(&headers, header::CONTENT_ENCODING);
    let tenant = auth.0.tenant.clone();
    let now = st.clock.now_ms();
    let inline = encoding.is_none() && raw.len() <= INLINE_PARSE_BYTES;
    let work = move || -> Result<Mapped, ApiError> {
        let body = decode_body(&raw, encoding.as_deref(), &limits)?;
        let map = match signal {
            Signal::Traces => otlp::map_traces,
            Signal::Logs => otlp::map_logs,
        };
        map(&body, enc, &tenant, now, &limits).map_err(|e| ApiError::Invalid {
            code: e.code(),
            message: e.to_string(),
        })
    };
    let mapped = if inline {
        work()?
    } else {
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))??
    };
    st.metrics
        .otlp_items
        .fetch_add(mapped.received as u64, Relaxed);
    st.metrics
        .events_rejected
        .fetch_add(mapped.rejected as u64, Relaxed);
    let tenant = &auth.0.tenant;
    let mut events = mapped.events;
    if !mapped.tasks.is_empty() {
        let table = st.otlp_tasks.lock().map_err(|_| poisoned())?;
        events.extend(table.plan(tenant, &mapped.tasks, now, &st.limits).events);
    }
    if !events.is_empty() {
        commit(&st, &mut admitted, events, arrived).await?;
    }
    if !mapped.tasks.is_empty() {
        let mut table = st.otlp_tasks.lock().map_err(|_| poisoned())?;
        let dropped = table.apply(tenant, &mapped.tasks, now, &st.limits);
        if dropped > 0 {
            st.metrics
                .otlp_tasks_untracked
                .fetch_add(dropped as u64, Relaxed);
            tracing::warn!(
                dropped,
                "OTLP task table full: spans of new tasks are not grouped into vitals"
            );
        }
    }
    let body = otlp::response(enc, signal, mapped.rejected, mapped.first_error.as_deref());
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, enc.content_type())],
        body,
    )
        .into_response())
}

fn poisoned() -> ApiError {
    ApiError::Internal("the OTLP task table lock is poisoned".into())
}
