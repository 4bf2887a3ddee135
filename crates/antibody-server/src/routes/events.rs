//! `POST /v1/events`: parse, validate, queue for the durable log, answer after the fsync.

use crate::auth::Auth;
use crate::error::ApiError;
use crate::pipeline::{CommitOutcome, SubmitError};
use crate::state::AppState;
use antibody_core::ingest::Rejected;
use antibody_core::ingest::{decode_body, parse_events, BodyFormat};
use antibody_core::Event;
use antibody_store::Role;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use schemars::JsonSchema;
use serde::Serialize;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;
use tokio::sync::OwnedSemaphorePermit;

const QUEUE_FULL: &str = "the ingest queue is full";

/// Bodies above this size are parsed on the blocking pool so no async worker stalls.
pub(super) const INLINE_PARSE_BYTES: usize = 256 * 1024;

/// What `POST /v1/events` stored: new events, repeated idempotency ids, and the items it
/// could not read (the rest are stored).
#[derive(Serialize, JsonSchema)]
pub struct Ingested {
    pub accepted: usize,
    pub duplicates: usize,
    pub rejected: Vec<Rejected>,
}

/// A JSON body of `POST /v1/events`: one event or an array of them.
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)] // read by the ingest parser, not serde: this names its two shapes
pub enum EventsIn {
    One(antibody_core::ingest::EventItem),
    Many(Vec<antibody_core::ingest::EventItem>),
}

pub async fn post_events(
    State(st): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Ingested>), ApiError> {
    // Latency metrics ("event → durable", "event → finding visible") count from here.
    let arrived = Instant::now();
    auth.require(Role::Ingest, "send events")?;
    let mut admitted = admit(&st, &auth)?;
    let limits = st.limits.clone();
    let raw = super::read_body(body, limits.max_body_bytes, st.body_timeout).await?;
    let encoding = header_str(&headers, header::CONTENT_ENCODING);
    let format =
        BodyFormat::from_content_type(header_str(&headers, header::CONTENT_TYPE).as_deref());
    let tenant = auth.0.tenant.clone();
    let now = st.clock.now_ms();
    // A compressed body's size says nothing about the parse cost: decode those off the
    // async workers too.
    let inline = encoding.is_none() && raw.len() <= INLINE_PARSE_BYTES;
    let work = move || {
        let body = decode_body(&raw, encoding.as_deref(), &limits)?;
        let format = format.unwrap_or_else(|| BodyFormat::sniff(&body));
        parse_events(&body, format, &tenant, now, &limits)
    };
    let parsed = if inline {
        work()?
    } else {
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))??
    };
    st.metrics
        .events_rejected
        .fetch_add(parsed.rejected.len() as u64, Relaxed);
    let outcome = commit(&st, &mut admitted, parsed.events, arrived).await?;
    let body = Ingested {
        accepted: outcome.accepted,
        duplicates: outcome.duplicates,
        rejected: parsed.rejected,
    };
    Ok((StatusCode::ACCEPTED, Json(body)))
}

/// An admitted ingest request: its tenant's and key's share, and one of the body slots
/// every tenant shares, held for the rest of the request.
pub(crate) struct Admitted {
    pub(crate) share: crate::fair::Permit,
    _slot: OwnedSemaphorePermit,
}

/// Refuses before reading a byte when the queue is full or too many bodies are in flight:
/// the limits bound memory only if nothing is spent before they are checked. The tenant's
/// and the key's shares come first, so one tenant's slow or heavy senders are refused
/// before they can take the slots every tenant shares.
pub(super) fn admit(st: &AppState, auth: &Auth) -> Result<Admitted, ApiError> {
    try_admit(st, &auth.0.tenant, &auth.0.id).map_err(|why| overloaded(st, why))
}

/// [`admit`] for any ingest source (`key` names the sender in the per-key share: a key
/// id, or a listener's own name); the error says which limit is reached.
pub(crate) fn try_admit(
    st: &AppState,
    tenant: &antibody_core::TenantId,
    key: &str,
) -> Result<Admitted, &'static str> {
    if st.pipeline.is_full() {
        return Err(QUEUE_FULL);
    }
    let share = st.fair.admit(tenant, key).map_err(|over| over.message())?;
    let slot = st
        .ingest_permits
        .clone()
        .try_acquire_owned()
        .map_err(|_| "the server is reading as many ingest bodies as it may")?;
    Ok(Admitted { share, _slot: slot })
}

/// Hands events to the durable log, within the tenant's share of queued events, and waits
/// until they are fsynced: the caller may acknowledge them once this returns.
pub(super) async fn commit(
    st: &AppState,
    admitted: &mut Admitted,
    events: Vec<Event>,
    arrived: Instant,
) -> Result<CommitOutcome, ApiError> {
    admitted
        .share
        .reserve_events(events.len() as u64)
        .map_err(|over| overloaded(st, over.message()))?;
    let rx = st.pipeline.submit(events, arrived).map_err(|e| match e {
        SubmitError::Overloaded => overloaded(st, QUEUE_FULL),
        SubmitError::Stopped => ApiError::Unavailable("the server is shutting down".into()),
    })?;
    rx.await
        .map_err(|_| ApiError::Unavailable("the server is shutting down".into()))?
        .map_err(ApiError::Unavailable)
}

fn overloaded(st: &AppState, why: &'static str) -> ApiError {
    st.metrics.requests_overloaded.fetch_add(1, Relaxed);
    ApiError::Overloaded {
        why,
        retry_after_s: 1,
    }
}

pub(super) fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}
