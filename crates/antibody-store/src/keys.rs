//! API keys: a role within one tenant. Only the SHA-256 of a secret is stored; the secret
//! itself is handed out once, at creation.

use crate::{random_hex, Store, StoreError};
use antibody_core::{TenantId, TimestampMs};
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSqlOutput, ValueRef};
use rusqlite::{OptionalExtension, Row, ToSql, Transaction};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What a key may do inside its tenant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Send events, nothing else.
    Ingest,
    /// Read, approve, give feedback. Cannot send events or manage keys.
    Analyst,
    /// Everything in its tenant, including keys.
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Self::Ingest, Self::Analyst, Self::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ingest => "ingest",
            Self::Analyst => "analyst",
            Self::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Whether a key with this role may perform an operation that requires `required`.
    /// Not a ladder: ingest and analyst are disjoint rights; only admin holds both.
    pub fn allows(self, required: Role) -> bool {
        self == Self::Admin || self == required
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ToSql for Role {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for Role {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let text = value.as_str()?;
        Role::parse(text)
            .ok_or_else(|| FromSqlError::Other(format!("unknown role {text:?}").into()))
    }
}

/// A stored key, without its secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeyInfo {
    pub id: String,
    pub tenant: TenantId,
    pub role: Role,
    /// The first admin key; the only kind allowed to create tenants.
    pub bootstrap: bool,
    pub created_ms: TimestampMs,
}

/// A freshly created key. `secret` exists nowhere else: show it once.
#[derive(Clone)]
pub struct NewKey {
    pub info: KeyInfo,
    pub secret: String,
}

impl std::fmt::Debug for NewKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewKey")
            .field("info", &self.info)
            .field("secret", &"<redacted>")
            .finish()
    }
}

const KEY_COLUMNS: &str = "id, tenant, role, bootstrap, created_ms";

impl Store {
    /// Creates a key with a random secret `ab_<id part>_<48 hex>`.
    pub fn create_key(
        &self,
        tenant: &TenantId,
        role: Role,
        bootstrap: bool,
        now_ms: TimestampMs,
    ) -> Result<NewKey, StoreError> {
        let (info, secret) = new_key(tenant, role, bootstrap, now_ms)?;
        self.write(|tx| insert_key(tx, &info, &hash_secret(&secret)))?;
        Ok(NewKey { info, secret })
    }

    /// Registers a key whose secret the operator chose (`ANTIBODY_ADMIN_KEY`). Idempotent:
    /// the same secret for the same tenant, role and flag returns the existing key; the
    /// same secret with anything else is a `Conflict`.
    pub fn insert_key_with_secret(
        &self,
        tenant: &TenantId,
        role: Role,
        bootstrap: bool,
        secret: &str,
        now_ms: TimestampMs,
    ) -> Result<KeyInfo, StoreError> {
        if secret.is_empty() {
            return Err(StoreError::Invalid(
                "a key secret cannot be empty".to_owned(),
            ));
        }
        let hash = hash_secret(secret);
        let id = format!("k-{}", random_hex(6)?);
        self.write(|tx| {
            if let Some(existing) = key_by_hash(tx, &hash)? {
                let same = existing.tenant == *tenant
                    && existing.role == role
                    && existing.bootstrap == bootstrap;
                return if same {
                    Ok(existing)
                } else {
                    Err(StoreError::Conflict(
                        "this secret is already registered with another tenant or role".to_owned(),
                    ))
                };
            }
            let info = KeyInfo {
                id,
                tenant: tenant.clone(),
                role,
                bootstrap,
                created_ms: now_ms,
            };
            insert_key(tx, &info, &hash)?;
            Ok(info)
        })
    }

    /// The key a bearer secret belongs to, if any. Looks up by hash, so no secret-dependent
    /// comparison ever runs on the secret itself.
    pub fn authenticate(&self, secret: &str) -> Result<Option<KeyInfo>, StoreError> {
        let hash = hash_secret(secret);
        self.read(|conn| key_by_hash(conn, &hash))
    }

    /// The tenant's keys, oldest first.
    pub fn list_keys(&self, tenant: &TenantId) -> Result<Vec<KeyInfo>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {KEY_COLUMNS} FROM api_keys WHERE tenant = ?1 ORDER BY created_ms, id"
            ))?;
            let rows = stmt.query_map([tenant.as_str()], key_from_row)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// Deletes a key of this tenant. `false` when there is no such key in this tenant
    /// (including when the id belongs to another tenant).
    pub fn delete_key(&self, tenant: &TenantId, key_id: &str) -> Result<bool, StoreError> {
        self.write(|tx| {
            let n = tx
                .prepare_cached("DELETE FROM api_keys WHERE tenant = ?1 AND id = ?2")?
                .execute((tenant.as_str(), key_id))?;
            Ok(n > 0)
        })
    }
}

pub(crate) fn hash_secret(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

pub(crate) fn insert_key(
    tx: &Transaction<'_>,
    info: &KeyInfo,
    hash: &[u8; 32],
) -> Result<(), StoreError> {
    let tenant_exists = tx
        .prepare_cached("SELECT 1 FROM tenants WHERE id = ?1")?
        .exists([info.tenant.as_str()])?;
    if !tenant_exists {
        return Err(StoreError::UnknownTenant(info.tenant.to_string()));
    }
    tx.prepare_cached(
        "INSERT INTO api_keys (id, tenant, role, bootstrap, secret_sha256, created_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute((
        &info.id,
        info.tenant.as_str(),
        info.role,
        info.bootstrap,
        &hash[..],
        info.created_ms,
    ))?;
    Ok(())
}

fn key_by_hash(
    conn: &rusqlite::Connection,
    hash: &[u8; 32],
) -> Result<Option<KeyInfo>, StoreError> {
    let key = conn
        .prepare_cached(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE secret_sha256 = ?1"
        ))?
        .query_row([&hash[..]], key_from_row)
        .optional()?;
    Ok(key)
}

fn key_from_row(row: &Row<'_>) -> rusqlite::Result<KeyInfo> {
    Ok(KeyInfo {
        id: row.get(0)?,
        tenant: TenantId::new(&row.get::<_, String>(1)?),
        role: row.get(2)?,
        bootstrap: row.get(3)?,
        created_ms: row.get(4)?,
    })
}

/// A fresh key id and secret `ab_<id part>_<48 hex>`.
pub(crate) fn new_key(
    tenant: &TenantId,
    role: Role,
    bootstrap: bool,
    now_ms: TimestampMs,
) -> Result<(KeyInfo, String), StoreError> {
    let id_part = random_hex(6)?;
    let secret = format!("ab_{id_part}_{}", random_hex(24)?);
    let info = KeyInfo {
        id: format!("k-{id_part}"),
        tenant: tenant.clone(),
        role,
        bootstrap,
        created_ms: now_ms,
    };
    Ok((info, secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_hash_of_a_secret_is_stored() {
        let store = Store::open_in_memory().unwrap();
        let t = store.create_tenant("default", 1).unwrap();
        let key = store.create_key(&t.id, Role::Admin, true, 1).unwrap();
        let preset = "my-preset-admin-secret";
        store
            .insert_key_with_secret(&t.id, Role::Admin, false, preset, 1)
            .unwrap();

        let stored: Vec<Vec<u8>> = store
            .read(|conn| {
                let mut stmt = conn.prepare("SELECT * FROM api_keys")?;
                let columns = stmt.column_count();
                let mut rows = stmt.query([])?;
                let mut cells = Vec::new();
                while let Some(row) = rows.next()? {
                    for i in 0..columns {
                        cells.push(match row.get_ref(i)? {
                            ValueRef::Text(b) | ValueRef::Blob(b) => b.to_vec(),
                            other => format!("{other:?}").into_bytes(),
                        });
                    }
                }
                Ok(cells)
            })
            .unwrap();
        for secret in [key.secret.as_str(), preset] {
            let hash = hash_secret(secret);
            assert!(
                stored.iter().any(|cell| cell[..] == hash[..]),
                "hash stored"
            );
            let leaked = stored.iter().any(|cell| {
                cell.windows(secret.len()).any(|w| w == secret.as_bytes())
                    || cell
                        .windows(hex::encode(secret).len())
                        .any(|w| w == hex::encode(secret).as_bytes())
            });
            assert!(!leaked, "secret {secret} found in the keys table");
        }
    }

    #[test]
    fn new_key_debug_hides_the_secret() {
        let store = Store::open_in_memory().unwrap();
        let t = store.create_tenant("default", 1).unwrap();
        let key = store.create_key(&t.id, Role::Ingest, false, 1).unwrap();
        assert!(!format!("{key:?}").contains(&key.secret));
    }

    #[test]
    fn roles_parse_and_allow() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
            assert!(role.allows(role));
            assert!(Role::Admin.allows(role));
        }
        assert_eq!(Role::parse("Admin"), None);
        assert!(!Role::Ingest.allows(Role::Analyst));
        assert!(!Role::Analyst.allows(Role::Ingest));
        assert!(!Role::Analyst.allows(Role::Admin));
        assert!(!Role::Ingest.allows(Role::Admin));
        assert_eq!(
            serde_json::to_string(&Role::Analyst).unwrap(),
            "\"analyst\""
        );
    }

    #[test]
    fn unknown_role_in_a_row_is_an_error_not_a_guess() {
        let store = Store::open_in_memory().unwrap();
        let t = store.create_tenant("default", 1).unwrap();
        let key = store.create_key(&t.id, Role::Ingest, false, 1).unwrap();
        store
            .write(|tx| Ok(tx.execute("UPDATE api_keys SET role = 'root'", [])?))
            .unwrap();
        assert!(store.authenticate(&key.secret).is_err());
    }
}
