//! Shared state of the HTTP handlers.

use crate::auth::KeyCache;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::pipeline::Pipeline;
use antibody_core::ingest::Limits;
use antibody_core::Clock;
use antibody_store::Store;
use std::sync::Arc;

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<Store>,
    pub pipeline: Arc<Pipeline>,
    pub metrics: Arc<Metrics>,
    pub clock: Arc<dyn Clock>,
    pub limits: Arc<Limits>,
    pub keys: Arc<KeyCache>,
    /// Flips to true when the server starts shutting down: long-lived responses (SSE) end.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// Ingest bodies being read or parsed at once; more → 429 before any byte is read.
    pub ingest_permits: Arc<tokio::sync::Semaphore>,
    /// Rules, playbooks and policies in force, global and per tenant.
    pub catalog: Arc<crate::layers::Catalog>,
    /// What each tenant and key holds of the ingest capacity.
    pub fair: Arc<crate::fair::Budgets>,
    pub body_timeout: std::time::Duration,
    pub models: Arc<crate::models::ModelsState>,
    /// Security headers, CORS.
    pub http: Arc<crate::net::policy::HttpPolicy>,
    /// OTLP spans of agent tasks that have not ended yet (`routes/otlp.rs`).
    pub otlp_tasks: Arc<std::sync::Mutex<antibody_formats::otlp::TaskTable>>,
}

impl AppState {
    /// Runs a blocking store call off the async workers.
    pub async fn db<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T, antibody_store::StoreError> + Send + 'static,
    {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?
            .map_err(ApiError::from)
    }
}
