//! Operational endpoints: liveness, readiness, metrics, the OpenAPI document.

use crate::auth::Auth;
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::IntoResponse;
use axum::Json;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;
use std::sync::atomic::Ordering::Relaxed;

/// `{"status": "ok"}` while the process serves.
#[derive(Serialize, JsonSchema)]
pub struct Health {
    #[schemars(with = "String")]
    pub status: &'static str,
}

/// Ready: recovery done, the pipeline running, and what waits in its queue.
#[derive(Serialize, JsonSchema)]
pub struct Ready {
    #[schemars(with = "String")]
    pub status: &'static str,
    pub queued_events: u64,
}

pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

pub async fn readyz(State(st): State<AppState>) -> Result<Json<Ready>, ApiError> {
    if !st.pipeline.is_ready() {
        let why = st
            .pipeline
            .failure()
            .unwrap_or_else(|| "recovering or shutting down".to_owned());
        return Err(ApiError::Unavailable(format!("not ready: {why}")));
    }
    Ok(Json(Ready {
        status: "ready",
        queued_events: st.pipeline.queued_events(),
    }))
}

/// Prometheus text. The service-wide series are open to any scraper; the per-tenant series
/// (findings by kind, models) name tenants, their rules and models, so they are shown only
/// to a key that may see them: the bootstrap
/// admin sees every tenant's, any other key its own tenant's, an anonymous scrape none
/// (API.md: another tenant's objects are never revealed). A key that does not authenticate
/// is refused rather than silently served less.
pub async fn metrics(
    State(st): State<AppState>,
    headers: HeaderMap,
    auth: Result<Auth, ApiError>,
) -> Result<impl IntoResponse, ApiError> {
    let caller = match auth {
        Ok(a) => Some(a.0),
        Err(e) if headers.contains_key(header::AUTHORIZATION) => return Err(e),
        Err(_) => None,
    };
    st.metrics
        .queue_depth_events
        .store(st.pipeline.queued_events(), Relaxed);
    let mut text = st.metrics.render();
    if let Some(key) = caller {
        st.metrics
            .render_findings(&mut text, |t| key.bootstrap || *t == key.tenant);
        if let Ok(mut stats) = st.pipeline.model_stats().await {
            if !key.bootstrap {
                stats.retain(|(tenant, _), _| *tenant == key.tenant);
            }
            crate::metrics::render_models(&mut text, &stats);
        }
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text))
}

pub async fn openapi() -> Json<Value> {
    Json(crate::openapi::document())
}
