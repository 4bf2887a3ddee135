//! Embedded storage on SQLite in WAL mode, one file `<data-dir>/antibody.db`: tenants,
//! hashed API keys, findings, incidents, the response engine's records, the model registry,
//! the notifications inbox and engine metadata.
//!
//! The store is synchronous (call it from `spawn_blocking`). Writes go through one writer
//! connection, each call one transaction; reads use a pool of read-only connections, so in
//! WAL mode they never wait on a write. Every query on tenant data takes the tenant and
//! filters by it: another tenant's id reads as "not found".

mod batch;
mod docs;
mod error;
mod findings;
mod incidents;
mod keys;
mod models;
mod notifications;
mod postmortems;
mod response;
mod schema;
mod store;
mod tenants;

#[cfg(test)]
mod conformance;

pub use docs::{doc_sha256, Doc, DocFormat, DocKind, DocVersion, NewDoc};
pub use error::StoreError;
pub use findings::{newest_first, FindingCursor, FindingQuery, DEFAULT_LIMIT, MAX_LIMIT};
pub use incidents::{IncidentQuery, IncidentResponse};
pub use keys::{expiry_after, KeyInfo, NewKey, Role, Rotated};
pub use models::{ModelFormat, ModelLabel, ModelRecord, ModelSlot, MAX_REVIEW_ITEMS};
pub use notifications::{Notification, NotificationKind, NotificationQuery};
pub use postmortems::{StoredPostmortem, MAX_POSTMORTEM_AUDIT};
pub use response::{ActionQuery, AuditQuery, ResponseBatch};
pub use schema::SCHEMA_VERSION;
pub use store::{Store, DB_FILE};
pub use tenants::{Tenant, DEFAULT_TENANT};

/// `bytes` random bytes from the OS, hex-encoded (ids and secrets).
fn random_hex(bytes: usize) -> Result<String, StoreError> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(StoreError::Random)?;
    Ok(hex::encode(buf))
}
