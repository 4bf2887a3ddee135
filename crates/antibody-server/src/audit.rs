//! Changes made outside the response engine (tenant documents, keys, tenants) appended to
//! a tenant's audit chain. The response stage owns every chain, so records go through it
//! (`HumanCmd::Record`), in order with its own decisions.

use crate::pipeline::Pipeline;
use antibody_core::TenantId;
use std::collections::BTreeMap;

/// One change to record: what (`kind`), about what (`subject`), a sentence, and details.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditNote {
    pub kind: String,
    pub subject: String,
    pub detail: String,
    /// Before and after (sha256), versions, a short diff, ids: whatever the change has.
    pub data: BTreeMap<String, String>,
}

impl AuditNote {
    pub fn new(kind: &str, subject: &str, detail: String) -> Self {
        Self {
            kind: kind.to_owned(),
            subject: subject.to_owned(),
            detail,
            data: BTreeMap::new(),
        }
    }

    pub fn with(mut self, key: &str, value: impl Into<String>) -> Self {
        self.data.insert(key.to_owned(), value.into());
        self
    }
}

/// Appends `note` to `tenant`'s chain with `actor` (a key id). A stopped response stage is
/// logged, not fatal: the change itself stands.
pub async fn record(pipeline: &Pipeline, tenant: &TenantId, actor: &str, note: AuditNote) {
    let (kind, subject) = (note.kind.clone(), note.subject.clone());
    let h = crate::respond::Human {
        tenant: tenant.clone(),
        actor: actor.to_owned(),
        cmd: crate::respond::HumanCmd::Record {
            kind: note.kind,
            subject: note.subject,
            detail: note.detail,
            data: note.data,
        },
    };
    if !matches!(pipeline.human(h).await, Ok(Ok(_))) {
        tracing::error!(%tenant, kind, subject, "a change could not be audited");
    }
}
