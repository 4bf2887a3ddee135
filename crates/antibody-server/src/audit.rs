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

/// Appends `note` to `tenant`'s chain directly in the store, for a change made while no
/// server runs (the CLI, holding the data-dir lock, or the first start before the response
/// stage exists): the stage resumes every chain from the store when it starts.
pub fn record_offline(
    store: &antibody_store::Store,
    tenant: &TenantId,
    actor: &str,
    note: AuditNote,
    now_ms: i64,
) -> Result<(), antibody_store::StoreError> {
    let head = store
        .audit_heads()?
        .into_iter()
        .find(|h| h.record.tenant == tenant.as_str());
    let mut chain = head.as_ref().map_or_else(
        antibody_respond::AuditChain::new,
        antibody_respond::AuditChain::resume,
    );
    let entry = chain.append(antibody_respond::AuditRecord {
        ts: now_ms,
        tenant: tenant.as_str().to_owned(),
        actor: actor.to_owned(),
        kind: note.kind,
        subject: note.subject,
        detail: note.detail,
        data: note.data,
    });
    store.append_audit(&[entry])?;
    store.make_durable()
}

/// The audit note of a key's creation (by the API, the CLI or the first start).
pub fn key_created(key: &antibody_store::KeyInfo) -> AuditNote {
    let mut note = AuditNote::new(
        "key_create",
        &key.id,
        format!("{} key {} created", key.role, key.id),
    )
    .with("role", key.role.as_str());
    if let Some(at) = key.expires_ms {
        note = note.with("expires", antibody_core::clock::format_rfc3339(at));
    }
    if key.bootstrap {
        note = note.with("bootstrap", "true");
    }
    note
}

/// The audit note of a tenant's creation with its first admin key.
pub fn tenant_created(tenant: &antibody_store::Tenant, admin_key: &str) -> AuditNote {
    AuditNote::new(
        "tenant_create",
        tenant.id.as_str(),
        format!(
            "tenant `{}` created with admin key {admin_key}",
            tenant.name
        ),
    )
    .with("name", tenant.name.clone())
    .with("admin_key", admin_key)
}
