//! Tenants: the unit of isolation. Every other table is keyed by a tenant id.

use crate::{random_hex, Store, StoreError};
use antibody_core::{TenantId, TimestampMs};
use rusqlite::{OptionalExtension, Row};
use serde::Serialize;

/// The tenant created at first start; its name is also its id.
pub const DEFAULT_TENANT: &str = "default";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    pub created_ms: TimestampMs,
}

impl Store {
    /// Creates a tenant. The one named `default` gets the id `default`; others get
    /// `t-<12 hex>`. A name already in use is a `Conflict`.
    pub fn create_tenant(&self, name: &str, now_ms: TimestampMs) -> Result<Tenant, StoreError> {
        let id = tenant_id_for(name)?;
        self.write(|tx| insert_tenant(tx, name, &id, now_ms))?;
        Ok(Tenant {
            id: TenantId::new(&id),
            name: name.to_owned(),
            created_ms: now_ms,
        })
    }

    /// Creates a tenant and its first admin key in one transaction, so a crash cannot leave
    /// a tenant nobody can administer.
    pub fn create_tenant_with_admin(
        &self,
        name: &str,
        now_ms: TimestampMs,
    ) -> Result<(Tenant, crate::NewKey), StoreError> {
        let id = tenant_id_for(name)?;
        let tenant = TenantId::new(&id);
        let (info, secret) = crate::keys::new_key(&tenant, crate::Role::Admin, false, now_ms)?;
        self.write(|tx| {
            insert_tenant(tx, name, &id, now_ms)?;
            crate::keys::insert_key(tx, &info, &crate::keys::Stored::generated(&secret))
        })?;
        let t = Tenant {
            id: tenant,
            name: name.to_owned(),
            created_ms: now_ms,
        };
        Ok((t, crate::NewKey { info, secret }))
    }

    pub fn get_tenant(&self, id: &TenantId) -> Result<Option<Tenant>, StoreError> {
        self.read(|conn| {
            let tenant = conn
                .prepare_cached("SELECT id, name, created_ms FROM tenants WHERE id = ?1")?
                .query_row([id.as_str()], tenant_from_row)
                .optional()?;
            Ok(tenant)
        })
    }

    /// Deletes a tenant and every key of it, so nobody can act for it any more. Its stored
    /// records (findings, incidents, audit chain, documents) stay, for the record. `false`
    /// when there is no such tenant; the default tenant cannot be deleted.
    pub fn delete_tenant(&self, id: &TenantId) -> Result<bool, StoreError> {
        if id.as_str() == DEFAULT_TENANT {
            return Err(StoreError::Conflict(
                "the default tenant holds the bootstrap key and cannot be deleted".to_owned(),
            ));
        }
        self.write(|tx| {
            tx.prepare_cached("DELETE FROM api_keys WHERE tenant = ?1")?
                .execute([id.as_str()])?;
            let n = tx
                .prepare_cached("DELETE FROM tenants WHERE id = ?1")?
                .execute([id.as_str()])?;
            Ok(n > 0)
        })
    }

    /// All tenants, oldest first.
    pub fn list_tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, name, created_ms FROM tenants ORDER BY created_ms, id",
            )?;
            let rows = stmt.query_map([], tenant_from_row)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }
}

fn tenant_from_row(row: &Row<'_>) -> rusqlite::Result<Tenant> {
    Ok(Tenant {
        id: TenantId::new(&row.get::<_, String>(0)?),
        name: row.get(1)?,
        created_ms: row.get(2)?,
    })
}

fn tenant_id_for(name: &str) -> Result<String, StoreError> {
    Ok(if name == DEFAULT_TENANT {
        DEFAULT_TENANT.to_owned()
    } else {
        format!("t-{}", random_hex(6)?)
    })
}

fn insert_tenant(
    tx: &rusqlite::Transaction<'_>,
    name: &str,
    id: &str,
    now_ms: TimestampMs,
) -> Result<(), StoreError> {
    let taken = tx
        .prepare_cached("SELECT 1 FROM tenants WHERE name = ?1 OR id = ?2")?
        .exists((name, id))?;
    if taken {
        return Err(StoreError::Conflict(format!(
            "tenant {name:?} already exists"
        )));
    }
    tx.prepare_cached("INSERT INTO tenants (id, name, created_ms) VALUES (?1, ?2, ?3)")?
        .execute((id, name, now_ms))?;
    Ok(())
}
