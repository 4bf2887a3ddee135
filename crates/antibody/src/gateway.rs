//! Wires the LLM gateway to the server: keys from the server's key cache and store, the
//! tenant's gateway policy from the catalog, verdicts from the enforcement view, and
//! events into the same durable pipeline `POST /v1/events` uses (acknowledged after the
//! fsync).

use antibody_core::{Event, TenantId, TimestampMs};
use antibody_gateway::{Backend, BoxFuture, KeyRefusal, SubmitRefusal};
use antibody_respond::enforce::Answer;
use antibody_respond::GatewayPolicy;
use antibody_server::error::ApiError;
use antibody_server::pipeline::SubmitError;
use antibody_server::state::AppState;
use antibody_store::Role;
use std::sync::Arc;
use std::time::Instant;

pub struct ServerBackend(pub AppState);

impl Backend for ServerBackend {
    fn tenant_of<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<TenantId, KeyRefusal>> {
        Box::pin(async move {
            match antibody_server::auth::authenticate(&self.0, key).await {
                Ok(info) if info.role.allows(Role::Ingest) => Ok(info.tenant),
                Ok(_) => Err(KeyRefusal::Role),
                Err(
                    ApiError::Unauthorized | ApiError::UnknownKey | ApiError::KeyExpired { .. },
                ) => Err(KeyRefusal::Unknown),
                Err(e) => Err(KeyRefusal::Unavailable(e.to_string())),
            }
        })
    }

    fn policy(&self, tenant: &TenantId) -> Arc<GatewayPolicy> {
        self.0.catalog.gateway_policy(tenant)
    }

    fn verdict(&self, tenant: &TenantId, entity: &str, now: TimestampMs) -> Answer {
        self.0.pipeline.enforcement.verdict(tenant, entity, now)
    }

    fn submit(&self, events: Vec<Event>) -> BoxFuture<'static, Result<(), SubmitRefusal>> {
        let queued = self.0.pipeline.submit(events, Instant::now());
        Box::pin(async move {
            let rx = queued.map_err(|e| match e {
                SubmitError::Overloaded => SubmitRefusal::Overloaded,
                SubmitError::Stopped => {
                    SubmitRefusal::Stopped("the server is shutting down".into())
                }
            })?;
            match rx.await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(why)) => Err(SubmitRefusal::Stopped(why)),
                Err(_) => Err(SubmitRefusal::Stopped("the server is shutting down".into())),
            }
        })
    }

    fn now_ms(&self) -> TimestampMs {
        self.0.clock.now_ms()
    }
}
