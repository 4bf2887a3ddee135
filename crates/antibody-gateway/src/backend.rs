//! What the gateway needs from the service around it, as a small trait so it depends on
//! no server internals: the composition root (the `antibody` binary) implements it over
//! the server's key store, tenant policies, enforcement view and durable pipeline, and
//! tests implement it in memory. The MCP proxy will use the same seam.

use antibody_core::{Event, TenantId, TimestampMs};
use antibody_respond::enforce::Answer;
use antibody_respond::GatewayPolicy;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a key was not accepted.
#[derive(Debug, PartialEq, Eq)]
pub enum KeyRefusal {
    /// No such key.
    Unknown,
    /// A real key whose role may not send events.
    Role,
    /// The key store could not answer.
    Unavailable(String),
}

/// Why events were not queued.
#[derive(Debug, PartialEq, Eq)]
pub enum SubmitRefusal {
    /// Back-pressure: try again shortly.
    Overloaded,
    /// The pipeline stopped or failed; the message says why.
    Stopped(String),
}

pub trait Backend: Send + Sync + 'static {
    /// The tenant of an antibody key that may send events (role `ingest` or above).
    fn tenant_of<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<TenantId, KeyRefusal>>;
    /// The tenant's gateway policy in force (its own document's section, else the
    /// configured one).
    fn policy(&self, tenant: &TenantId) -> Arc<GatewayPolicy>;
    /// The entity's verdict from the enforcement view (lock-free).
    fn verdict(&self, tenant: &TenantId, entity: &str, now: TimestampMs) -> Answer;
    /// Queues events on the durable path; resolves once they are durable.
    fn submit(&self, events: Vec<Event>) -> BoxFuture<'static, Result<(), SubmitRefusal>>;
    /// The service's clock, in ms.
    fn now_ms(&self) -> TimestampMs;
}
