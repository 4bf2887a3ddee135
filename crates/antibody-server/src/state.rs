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
    pub catalog: Arc<Catalog>,
    pub body_timeout: std::time::Duration,
    pub models: Arc<crate::models::ModelsState>,
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

/// The rule and playbook sets in force, and the lock that serialises their replacement.
pub struct Catalog {
    pub data_dir: std::path::PathBuf,
    pub rules: std::sync::RwLock<Arc<antibody_rules::RuleSet>>,
    pub playbooks: std::sync::RwLock<Arc<antibody_respond::PlaybookSet>>,
    pub write: tokio::sync::Mutex<()>,
}

impl Catalog {
    pub fn new(
        data_dir: std::path::PathBuf,
        rules: Arc<antibody_rules::RuleSet>,
        playbooks: Arc<antibody_respond::PlaybookSet>,
    ) -> Self {
        Self {
            data_dir,
            rules: std::sync::RwLock::new(rules),
            playbooks: std::sync::RwLock::new(playbooks),
            write: tokio::sync::Mutex::new(()),
        }
    }
}
