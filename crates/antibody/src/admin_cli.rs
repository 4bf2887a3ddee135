//! `antibody tenants create` and `antibody keys create`: changes made directly in a data dir
//! that no server is using (they hold its lock meanwhile), audited like the API's, with actor
//! `cli`.

use antibody_core::{Clock, SystemClock, TenantId};
use antibody_server::audit::{self, record_offline};
use antibody_server::datadir::{restrict_new_files, DataDirError, DataDirLock};
use antibody_store::{Role, Store};
use anyhow::{Context, Result};
use std::path::Path;

/// The actor these commands write into audit chains.
const ACTOR: &str = "cli";

fn open(data_dir: &Path, what: &str, api: &str) -> Result<(DataDirLock, Store)> {
    restrict_new_files();
    let lock = DataDirLock::acquire(data_dir, what).map_err(|e| match e {
        DataDirError::Locked { .. } => {
            anyhow::anyhow!("{e}\nWith the server running, use its API instead: {api}")
        }
        e => e.into(),
    })?;
    let store = Store::open(&data_dir.join(antibody_store::DB_FILE))
        .with_context(|| format!("opening the database in {}", data_dir.display()))?;
    Ok((lock, store))
}

pub fn create_tenant(name: &str, data_dir: &Path) -> Result<()> {
    let valid = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !valid {
        anyhow::bail!("tenant name must be 1–64 characters of a–z, 0–9, `-` and `_`");
    }
    let (_lock, store) = open(data_dir, "antibody tenants create", "POST /v1/tenants")?;
    let now = SystemClock.now_ms();
    let (t, k) = store.create_tenant_with_admin(name, now)?;
    // Recorded where the API records it: in the chain of the bootstrap admin's tenant.
    let default = TenantId::new(antibody_store::DEFAULT_TENANT);
    record_offline(
        &store,
        &default,
        ACTOR,
        audit::tenant_created(&t, &k.info.id),
        now,
    )?;
    record_offline(&store, &t.id, ACTOR, audit::key_created(&k.info), now)?;
    println!(
        "{}",
        serde_json::json!({"id": t.id, "name": t.name, "admin_key": k.secret, "admin_key_id": k.info.id})
    );
    Ok(())
}

pub fn create_key(
    tenant: &str,
    role: &str,
    expires_in: Option<&str>,
    data_dir: &Path,
) -> Result<()> {
    let role = Role::parse(role).context("role must be ingest, analyst or admin")?;
    let now = SystemClock.now_ms();
    let expires = expires_in
        .map(|t| {
            antibody_store::expiry_after(now, t).with_context(|| {
                format!(
                    "--expires-in must be a duration such as 30d, 12h or 90m (at most a \
                     year); got `{t}`"
                )
            })
        })
        .transpose()?;
    let (_lock, store) = open(data_dir, "antibody keys create", "POST /v1/keys")?;
    let tenant = TenantId::new(tenant);
    store
        .get_tenant(&tenant)?
        .with_context(|| format!("no tenant `{tenant}` in {}", data_dir.display()))?;
    let k = store.create_key(&tenant, role, false, now, expires)?;
    record_offline(&store, &tenant, ACTOR, audit::key_created(&k.info), now)?;
    println!(
        "{}",
        serde_json::json!({"id": k.info.id, "key": k.secret, "role": role.as_str(), "tenant": tenant, "expires_ms": k.info.expires_ms})
    );
    Ok(())
}
