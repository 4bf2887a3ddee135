//! Operational endpoints: liveness, readiness, metrics, the OpenAPI document.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};
use std::sync::atomic::Ordering::Relaxed;

pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

pub async fn readyz(State(st): State<AppState>) -> Result<Json<Value>, ApiError> {
    if !st.pipeline.is_ready() {
        return Err(ApiError::Unavailable(
            "not ready: recovering or shutting down".into(),
        ));
    }
    Ok(Json(
        json!({"status": "ready", "queued_events": st.pipeline.queued_events()}),
    ))
}

pub async fn metrics(State(st): State<AppState>) -> impl IntoResponse {
    st.metrics
        .queue_depth_events
        .store(st.pipeline.queued_events(), Relaxed);
    let mut text = st.metrics.render();
    if let Ok(stats) = st.pipeline.model_stats().await {
        crate::metrics::render_models(&mut text, &stats);
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}

pub async fn openapi() -> Json<Value> {
    Json(crate::openapi::document())
}
