//! Bearer-key authentication and role checks. Keys are looked up by hash in the store and
//! cached briefly so the ingest hot path does not hit SQLite per request (nor Argon2 for a
//! chosen key); a lookup also records the key's last use.

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

/// The key in an `Authorization` value. The scheme is case-insensitive (RFC 9110 §11.1).
fn bearer_secret(value: &str) -> Option<&str> {
    let (scheme, secret) = value.trim_start().split_once(' ')?;
    let secret = secret.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !secret.is_empty() && secret.len() <= 256)
        .then_some(secret)
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

/// A key past its expiry is refused, saying so (a cached one too: expiry needs no store).
fn usable(info: KeyInfo, now: i64) -> Result<Auth, ApiError> {
    match info.expires_ms.filter(|_| info.is_expired(now)) {
        Some(at) => Err(ApiError::KeyExpired {
            id: info.id,
            at: antibody_core::clock::format_rfc3339(at),
        }),
        None => Ok(Auth(info)),
    }
}

/// The usable key behind `secret`, from the cache or the store: for every listener that
/// takes antibody keys (the API here, the gateway through the binary's wiring).
pub async fn authenticate(state: &AppState, secret: &str) -> Result<KeyInfo, ApiError> {
    let now = state.clock.now_ms();
    if let Some(info) = state.keys.get(secret) {
        return usable(info, now).map(|a| a.0);
    }
    let store = state.store.clone();
    let owned = secret.to_owned();
    let found = tokio::task::spawn_blocking(move || {
        let found = store.authenticate(&owned)?;
        if let Some(k) = found.as_ref().filter(|k| !k.is_expired(now)) {
            // A hint, not an audit: a store that cannot write (disk full) must not
            // refuse a valid key.
            if let Err(e) = store.touch_key(&k.id, now) {
                tracing::warn!(key = %k.id, error = %e, "could not record a key's last use");
            }
        }
        Ok::<_, antibody_store::StoreError>(found)
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))??;
    let info = found.ok_or(ApiError::UnknownKey)?;
    state.keys.put(secret, &info);
    usable(info, now).map(|a| a.0)
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
        let secret = bearer_secret(value).ok_or(ApiError::Unauthorized)?;
        authenticate(state, secret).await.map(Auth)
    }
}

#[cfg(test)]
mod tests {
    use super::bearer_secret;

    #[test]
    fn the_scheme_is_case_insensitive() {
        for v in [
            "Bearer k1",
            "bearer k1",
            "BEARER k1",
            "BeArEr   k1 ",
            " Bearer k1",
        ] {
            assert_eq!(bearer_secret(v), Some("k1"), "{v:?}");
        }
        for v in ["Basic k1", "Bearer", "Bearer ", "Bearerk1", "", "k1"] {
            assert_eq!(bearer_secret(v), None, "{v:?}");
        }
        assert_eq!(bearer_secret(&format!("Bearer {}", "x".repeat(257))), None);
    }

    proptest::proptest! {
        #[test]
        fn any_value_parses_without_panic(v in ".{0,300}") {
            let _ = bearer_secret(&v);
        }

        #[test]
        fn any_casing_of_the_scheme_finds_the_key(
            mask in proptest::collection::vec(proptest::bool::ANY, 6),
            key in "[A-Za-z0-9_]{1,64}",
        ) {
            let scheme: String = "bearer"
                .chars()
                .zip(mask)
                .map(|(c, up)| if up { c.to_ascii_uppercase() } else { c })
                .collect();
            let value = format!("{scheme} {key}");
            proptest::prop_assert_eq!(bearer_secret(&value), Some(key.as_str()));
        }
    }
}
