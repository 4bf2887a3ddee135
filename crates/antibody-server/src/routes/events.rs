//! `POST /v1/events`: parse, validate, queue for the durable log, answer after the fsync.

use crate::auth::Auth;
use crate::error::ApiError;
use crate::pipeline::SubmitError;
use crate::state::AppState;
use antibody_core::ingest::{decode_body, parse_events, BodyFormat};
use antibody_store::Role;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use serde_json::{json, Value};
use std::sync::atomic::Ordering::Relaxed;

/// Bodies above this size are parsed on the blocking pool so no async worker stalls.
const INLINE_PARSE_BYTES: usize = 256 * 1024;

pub async fn post_events(
    State(st): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    auth.require(Role::Ingest, "send events")?;
    let limits = st.limits.clone();
    let raw = axum::body::to_bytes(body, limits.max_body_bytes)
        .await
        .map_err(|_| ApiError::Invalid {
            code: "payload_too_large",
            status: 413,
            message: format!(
                "request body exceeds {} bytes; split it into smaller batches",
                limits.max_body_bytes
            ),
        })?;
    let encoding = header_str(&headers, header::CONTENT_ENCODING);
    let format =
        BodyFormat::from_content_type(header_str(&headers, header::CONTENT_TYPE).as_deref());
    let tenant = auth.0.tenant.clone();
    let now = st.clock.now_ms();
    let work = move || {
        let body = decode_body(&raw, encoding.as_deref(), &limits)?;
        let format = format.unwrap_or_else(|| BodyFormat::sniff(&body));
        parse_events(&body, format, &tenant, now, &limits)
    };
    let parsed = if raw_len_hint(&headers) > INLINE_PARSE_BYTES {
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))??
    } else {
        work()?
    };
    st.metrics
        .events_rejected
        .fetch_add(parsed.rejected.len() as u64, Relaxed);
    let rejected: Vec<Value> = parsed
        .rejected
        .iter()
        .map(|r| json!({"index": r.index, "error": r.error}))
        .collect();
    let rx = st.pipeline.submit(parsed.events).map_err(|e| match e {
        SubmitError::Overloaded => {
            st.metrics.requests_overloaded.fetch_add(1, Relaxed);
            ApiError::Overloaded { retry_after_s: 1 }
        }
        SubmitError::Stopped => ApiError::Unavailable("the server is shutting down".into()),
    })?;
    let outcome = rx
        .await
        .map_err(|_| ApiError::Unavailable("the server is shutting down".into()))?
        .map_err(ApiError::Unavailable)?;
    let body = json!({"accepted": outcome.accepted, "duplicates": outcome.duplicates, "rejected": rejected});
    Ok((StatusCode::ACCEPTED, Json(body)))
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn raw_len_hint(headers: &HeaderMap) -> usize {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(usize::MAX)
}
