//! Bearer-key authentication and role checks. Keys are looked up by hash in the store and
//! cached briefly so the ingest hot path does not hit SQLite per request.

use crate::error::ApiError;
use crate::state::AppState;
use antibody_store::{KeyInfo, Role};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

const CACHE_TTL: Duration = Duration::from_secs(10);
const CACHE_MAX: usize = 10_000;

#[derive(Default)]
pub struct KeyCache {
    entries: RwLock<HashMap<String, (KeyInfo, Instant)>>,
}

impl KeyCache {
    fn get(&self, secret: &str) -> Option<KeyInfo> {
        let map = self.entries.read().ok()?;
        let (info, at) = map.get(secret)?;
        (at.elapsed() < CACHE_TTL).then(|| info.clone())
    }

    fn put(&self, secret: &str, info: &KeyInfo) {
        if let Ok(mut map) = self.entries.write() {
            if map.len() >= CACHE_MAX {
                map.clear();
            }
            map.insert(secret.to_owned(), (info.clone(), Instant::now()));
        }
    }

    /// Forgets every cached key (after a key is deleted).
    pub fn clear(&self) {
        if let Ok(mut map) = self.entries.write() {
            map.clear();
        }
    }
}

/// The authenticated caller.
#[derive(Clone, Debug)]
pub struct Auth(pub KeyInfo);

impl Auth {
    /// Fails with 403 unless the key's role grants `need`.
    pub fn require(&self, need: Role, action: &'static str) -> Result<(), ApiError> {
        if self.0.role.allows(need) {
            Ok(())
        } else {
            Err(ApiError::Forbidden {
                have: self.0.role.as_str(),
                need: need.as_str(),
                action,
            })
        }
    }
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or(ApiError::Unauthorized)?;
        let value = header.to_str().map_err(|_| ApiError::Unauthorized)?;
        let secret = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|s| !s.is_empty() && s.len() <= 256)
            .ok_or(ApiError::Unauthorized)?;
        authenticate(state, secret).await.map(Auth)
    }
}

/// The key behind `secret`, from the cache or the store: for every listener that takes
/// antibody keys (the API here, the gateway through the binary's wiring).
pub async fn authenticate(state: &AppState, secret: &str) -> Result<KeyInfo, ApiError> {
    if let Some(info) = state.keys.get(secret) {
        return Ok(info);
    }
    let store = state.store.clone();
    let owned = secret.to_owned();
    let found = tokio::task::spawn_blocking(move || store.authenticate(&owned))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))??;
    let info = found.ok_or(ApiError::Unauthorized)?;
    state.keys.put(secret, &info);
    Ok(info)
}
