//! API keys: a role within one tenant, optionally expiring. Only a hash of a secret is
//! stored (SHA-256 for generated keys, salted Argon2id for chosen ones: see [`Stored`]);
//! the secret itself is handed out once, at creation.

use crate::{random_hex, Store, StoreError};
use antibody_core::{TenantId, TimestampMs};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSqlOutput, ValueRef};
use rusqlite::{OptionalExtension, Row, ToSql, Transaction};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// What a key may do inside its tenant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
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
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct KeyInfo {
    pub id: String,
    pub tenant: TenantId,
    pub role: Role,
    /// The first admin key; the only kind allowed to create tenants.
    pub bootstrap: bool,
    pub created_ms: TimestampMs,
    /// From then on the key no longer authenticates; `None`: never.
    pub expires_ms: Option<TimestampMs>,
    /// When it last authenticated, to the minute (`None`: never since this was recorded).
    pub last_used_ms: Option<TimestampMs>,
}

impl KeyInfo {
    pub fn is_expired(&self, now_ms: TimestampMs) -> bool {
        self.expires_ms.is_some_and(|at| at <= now_ms)
    }
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

/// What [`Store::rotate_key`] did: the new key, and the old one with its new expiry.
#[derive(Debug)]
pub struct Rotated {
    pub new: NewKey,
    pub old: KeyInfo,
}

const KEY_COLUMNS: &str = "id, tenant, role, bootstrap, created_ms, expires_ms, last_used_ms";

/// `last_used_ms` is written at most this often per key (it is a hint, not an audit).
const TOUCH_EVERY_MS: i64 = 60_000;

/// Secrets the slow path rejected, so a client repeating a wrong key costs one Argon2 check
/// per chosen key, not one per request. Forgotten whenever a chosen key is added.
#[derive(Default)]
pub(crate) struct ChosenGate {
    rejected: HashSet<[u8; 32]>,
}

const MAX_REJECTED: usize = 4096;

impl Store {
    /// Creates a key with a random secret `ab_<id part>_<48 hex>`, expiring at `expires_ms`.
    pub fn create_key(
        &self,
        tenant: &TenantId,
        role: Role,
        bootstrap: bool,
        now_ms: TimestampMs,
        expires_ms: Option<TimestampMs>,
    ) -> Result<NewKey, StoreError> {
        let (mut info, secret) = new_key(tenant, role, bootstrap, now_ms)?;
        info.expires_ms = expires_ms;
        self.write(|tx| insert_key(tx, &info, &Stored::generated(&secret)))?;
        Ok(NewKey { info, secret })
    }

    /// Registers a key whose secret the operator chose (`ANTIBODY_ADMIN_KEY`), stored as a
    /// salted Argon2id hash. Idempotent: the same secret for the same tenant, role and flag
    /// returns the existing key; the same secret with anything else is a `Conflict`.
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
        if looks_generated(secret) {
            return Err(StoreError::Invalid(
                "a chosen key cannot have the form of a generated one (ab_<12 hex>_<48 hex>)"
                    .to_owned(),
            ));
        }
        if let Some(existing) = self.authenticate(secret)? {
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
        let stored = Stored::chosen(secret)?;
        let info = KeyInfo {
            id: format!("k-{}", random_hex(6)?),
            tenant: tenant.clone(),
            role,
            bootstrap,
            created_ms: now_ms,
            expires_ms: None,
            last_used_ms: None,
        };
        self.write(|tx| insert_key(tx, &info, &stored))?;
        lock(&self.chosen_keys).rejected.clear();
        Ok(info)
    }

    /// The key a bearer secret belongs to, if any (expired or not: the caller judges, and
    /// can say so). A generated key is found by its SHA-256 in one indexed lookup, so no
    /// secret-dependent comparison runs on the secret itself; any other secret is checked
    /// against the chosen keys' Argon2 hashes, one check at a time in the whole process.
    pub fn authenticate(&self, secret: &str) -> Result<Option<KeyInfo>, StoreError> {
        let hash = hash_secret(secret);
        if let Some(key) = self.read(|conn| key_by_hash(conn, &hash))? {
            if !looks_generated(secret) {
                // Stored by an older build as a fast hash: move it to a slow one now.
                // The key is valid either way: a failed re-hash is tried again next time.
                match Stored::chosen(secret)
                    .and_then(|stored| self.write(|tx| set_secret(tx, &key.id, &stored)))
                {
                    Ok(()) => tracing::info!(key = %key.id, "re-hashed a chosen key with Argon2id"),
                    Err(e) => {
                        tracing::warn!(key = %key.id, error = %e, "could not re-hash a chosen key")
                    }
                }
            }
            return Ok(Some(key));
        }
        if looks_generated(secret) || secret.is_empty() {
            return Ok(None);
        }
        let mut gate = lock(&self.chosen_keys);
        if gate.rejected.contains(&hash) {
            return Ok(None);
        }
        let candidates = self.read(chosen_keys)?;
        let found = candidates
            .into_iter()
            .find(|(_, phc)| verify_chosen(secret, phc))
            .map(|(key, _)| key);
        if found.is_none() {
            if gate.rejected.len() >= MAX_REJECTED {
                gate.rejected.clear();
            }
            gate.rejected.insert(hash);
        }
        Ok(found)
    }

    /// Records that `key_id` authenticated at `now_ms` (at most once a minute per key).
    pub fn touch_key(&self, key_id: &str, now_ms: TimestampMs) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.prepare_cached(
                "UPDATE api_keys SET last_used_ms = ?2
                 WHERE id = ?1 AND (last_used_ms IS NULL OR last_used_ms <= ?2 - ?3)",
            )?
            .execute((key_id, now_ms, TOUCH_EVERY_MS))?;
            Ok(())
        })
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

    /// Deletes a key of this tenant and returns it; `None` when there is no such key in
    /// this tenant (including when the id belongs to another tenant). The tenant's last
    /// admin key that still works is a `Conflict`: nobody could manage the tenant after it.
    pub fn delete_key(
        &self,
        tenant: &TenantId,
        key_id: &str,
        now_ms: TimestampMs,
    ) -> Result<Option<KeyInfo>, StoreError> {
        self.write(|tx| {
            let Some(key) = key_in(tx, tenant, key_id)? else {
                return Ok(None);
            };
            if key.role == Role::Admin && !key.is_expired(now_ms) {
                let others: i64 = tx
                    .prepare_cached(
                        "SELECT COUNT(*) FROM api_keys WHERE tenant = ?1 AND role = 'admin'
                         AND id != ?2 AND (expires_ms IS NULL OR expires_ms > ?3)",
                    )?
                    .query_row((tenant.as_str(), key_id, now_ms), |r| r.get(0))?;
                if others == 0 {
                    return Err(StoreError::Conflict(format!(
                        "{key_id} is the last admin key of tenant `{tenant}`: nobody could \
                         manage the tenant without it; create another admin key first \
                         (POST /v1/keys), or replace this one with POST /v1/keys/{key_id}/rotate"
                    )));
                }
            }
            tx.prepare_cached("DELETE FROM api_keys WHERE tenant = ?1 AND id = ?2")?
                .execute((tenant.as_str(), key_id))?;
            Ok(Some(key))
        })
    }

    /// Rotation without downtime: a new key with the same tenant, role and bootstrap flag
    /// (expiring at `expires_ms`), while the old one keeps working until `now + grace_ms`
    /// (or its own earlier expiry), so clients can switch over in that window. `None` when
    /// there is no such live key in this tenant.
    pub fn rotate_key(
        &self,
        tenant: &TenantId,
        key_id: &str,
        now_ms: TimestampMs,
        grace_ms: i64,
        expires_ms: Option<TimestampMs>,
    ) -> Result<Option<Rotated>, StoreError> {
        self.write(|tx| {
            let Some(mut old) = key_in(tx, tenant, key_id)? else {
                return Ok(None);
            };
            if old.is_expired(now_ms) {
                return Ok(None);
            }
            let (mut info, secret) = new_key(tenant, old.role, old.bootstrap, now_ms)?;
            info.expires_ms = expires_ms;
            insert_key(tx, &info, &Stored::generated(&secret))?;
            let until = now_ms.saturating_add(grace_ms.max(0));
            old.expires_ms = Some(old.expires_ms.map_or(until, |at| at.min(until)));
            tx.prepare_cached("UPDATE api_keys SET expires_ms = ?2 WHERE id = ?1")?
                .execute((key_id, old.expires_ms))?;
            Ok(Some(Rotated {
                new: NewKey { info, secret },
                old,
            }))
        })
    }
}

/// When a key given a lifetime of `text` (`30d`, `12h`, `90m`, at most a year) at `now_ms`
/// expires; `None` for anything else. One reading for the API and the CLI.
pub fn expiry_after(now_ms: TimestampMs, text: &str) -> Option<TimestampMs> {
    antibody_respond::duration::parse_ms(text).map(|ms| now_ms.saturating_add(ms))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How a secret is kept.
///
/// Generated keys carry 192 random bits: no dictionary or brute force reaches them, so a
/// fast SHA-256 stays safe, and it lets every request find its key with one indexed lookup
/// (a slow hash per uncached request would cost the ingest path tens of milliseconds).
/// A secret a person chose may be guessable from a stolen database, so it gets Argon2id
/// with a random salt, and random bytes take the unique SHA-256 column's place.
pub(crate) struct Stored {
    sha256: [u8; 32],
    phc: Option<String>,
}

impl Stored {
    pub(crate) fn generated(secret: &str) -> Self {
        Self {
            sha256: hash_secret(secret),
            phc: None,
        }
    }

    fn chosen(secret: &str) -> Result<Self, StoreError> {
        let mut salt = [0u8; 16];
        let mut filler = [0u8; 32];
        getrandom::fill(&mut salt).map_err(StoreError::Random)?;
        getrandom::fill(&mut filler).map_err(StoreError::Random)?;
        let salt = SaltString::encode_b64(&salt)
            .map_err(|e| StoreError::Invalid(format!("key salt: {e}")))?;
        let phc = Argon2::default()
            .hash_password(secret.as_bytes(), &salt)
            .map_err(|e| StoreError::Invalid(format!("hashing a key: {e}")))?
            .to_string();
        Ok(Self {
            sha256: filler,
            phc: Some(phc),
        })
    }
}

fn verify_chosen(secret: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(secret.as_bytes(), &parsed)
            .is_ok()
    })
}

/// Whether `secret` has the form [`new_key`] gives: `ab_<12 hex>_<48 hex>`.
fn looks_generated(secret: &str) -> bool {
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    secret
        .strip_prefix("ab_")
        .and_then(|rest| rest.split_once('_'))
        .is_some_and(|(id, random)| hex(id, 12) && hex(random, 48))
}

pub(crate) fn hash_secret(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

pub(crate) fn insert_key(
    tx: &Transaction<'_>,
    info: &KeyInfo,
    stored: &Stored,
) -> Result<(), StoreError> {
    let tenant_exists = tx
        .prepare_cached("SELECT 1 FROM tenants WHERE id = ?1")?
        .exists([info.tenant.as_str()])?;
    if !tenant_exists {
        return Err(StoreError::UnknownTenant(info.tenant.to_string()));
    }
    tx.prepare_cached(
        "INSERT INTO api_keys (id, tenant, role, bootstrap, secret_sha256, created_ms,
                               expires_ms, secret_phc)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute((
        &info.id,
        info.tenant.as_str(),
        info.role,
        info.bootstrap,
        &stored.sha256[..],
        info.created_ms,
        info.expires_ms,
        &stored.phc,
    ))?;
    Ok(())
}

fn set_secret(tx: &Transaction<'_>, key_id: &str, stored: &Stored) -> Result<(), StoreError> {
    tx.prepare_cached("UPDATE api_keys SET secret_sha256 = ?2, secret_phc = ?3 WHERE id = ?1")?
        .execute((key_id, &stored.sha256[..], &stored.phc))?;
    Ok(())
}

fn key_by_hash(
    conn: &rusqlite::Connection,
    hash: &[u8; 32],
) -> Result<Option<KeyInfo>, StoreError> {
    let key = conn
        .prepare_cached(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE secret_sha256 = ?1 AND secret_phc IS NULL"
        ))?
        .query_row([&hash[..]], key_from_row)
        .optional()?;
    Ok(key)
}

fn key_in(
    conn: &rusqlite::Connection,
    tenant: &TenantId,
    key_id: &str,
) -> Result<Option<KeyInfo>, StoreError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE tenant = ?1 AND id = ?2"
        ))?
        .query_row((tenant.as_str(), key_id), key_from_row)
        .optional()?)
}

/// Every key with a chosen secret, with its PHC string.
fn chosen_keys(conn: &rusqlite::Connection) -> Result<Vec<(KeyInfo, String)>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {KEY_COLUMNS}, secret_phc FROM api_keys WHERE secret_phc IS NOT NULL"
    ))?;
    let rows = stmt.query_map([], |row| Ok((key_from_row(row)?, row.get(7)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn key_from_row(row: &Row<'_>) -> rusqlite::Result<KeyInfo> {
    Ok(KeyInfo {
        id: row.get(0)?,
        tenant: TenantId::new(&row.get::<_, String>(1)?),
        role: row.get(2)?,
        bootstrap: row.get(3)?,
        created_ms: row.get(4)?,
        expires_ms: row.get(5)?,
        last_used_ms: row.get(6)?,
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
        expires_ms: None,
        last_used_ms: None,
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
        let key = store.create_key(&t.id, Role::Admin, true, 1, None).unwrap();
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
        let fast = |secret: &str| {
            let hash = hash_secret(secret);
            stored.iter().any(|cell| cell[..] == hash[..])
        };
        assert!(fast(&key.secret), "a generated key keeps its SHA-256");
        // A chosen secret is guessable from a fast hash: only a salted Argon2id one is kept.
        assert!(!fast(preset), "no fast hash of a chosen secret");
        let phc: Vec<&Vec<u8>> = stored
            .iter()
            .filter(|c| c.starts_with(b"$argon2id$"))
            .collect();
        assert_eq!(phc.len(), 1, "one Argon2id hash, the chosen key's");
        for secret in [key.secret.as_str(), preset] {
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
    fn chosen_keys_authenticate_by_argon2_and_salts_differ() {
        let store = Store::open_in_memory().unwrap();
        let t = store.create_tenant("default", 1).unwrap();
        let a = store
            .insert_key_with_secret(&t.id, Role::Admin, true, "correct horse battery", 1)
            .unwrap();
        let b = store
            .insert_key_with_secret(&t.id, Role::Analyst, false, "correct horse staple", 1)
            .unwrap();
        assert_eq!(
            store.authenticate("correct horse battery").unwrap(),
            Some(a)
        );
        assert_eq!(store.authenticate("correct horse staple").unwrap(), Some(b));
        assert_eq!(store.authenticate("correct horse").unwrap(), None);
        // Asked again, a rejected secret is answered from memory; a new chosen key clears it.
        assert_eq!(store.authenticate("correct horse").unwrap(), None);
        let c = store
            .insert_key_with_secret(&t.id, Role::Ingest, false, "correct horse", 1)
            .unwrap();
        assert_eq!(store.authenticate("correct horse").unwrap(), Some(c));
        let salts: HashSet<String> = store
            .read(chosen_keys)
            .unwrap()
            .into_iter()
            .map(|(_, phc)| phc.split('$').nth(4).unwrap_or("").to_owned())
            .collect();
        assert_eq!(salts.len(), 3, "every chosen key has its own salt");
        let generated_form = format!("ab_{}_{}", "0".repeat(12), "a".repeat(48));
        assert!(store
            .insert_key_with_secret(&t.id, Role::Ingest, false, &generated_form, 1)
            .is_err());
    }

    #[test]
    fn a_chosen_key_an_older_build_hashed_fast_is_rehashed_at_first_use() {
        let store = Store::open_in_memory().unwrap();
        let t = store.create_tenant("default", 1).unwrap();
        let secret = "operator-chose-this-1";
        let (info, _) = new_key(&t.id, Role::Admin, true, 1).unwrap();
        store
            .write(|tx| insert_key(tx, &info, &Stored::generated(secret)))
            .unwrap();
        assert_eq!(store.authenticate(secret).unwrap(), Some(info.clone()));
        let (sha, phc): (Vec<u8>, Option<String>) = store
            .read(|c| {
                Ok(
                    c.query_row("SELECT secret_sha256, secret_phc FROM api_keys", [], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })?,
                )
            })
            .unwrap();
        assert_ne!(sha, hash_secret(secret).to_vec());
        assert!(phc.is_some_and(|p| p.starts_with("$argon2id$")));
        assert_eq!(store.authenticate(secret).unwrap(), Some(info));
    }

    #[test]
    fn new_key_debug_hides_the_secret() {
        let store = Store::open_in_memory().unwrap();
        let t = store.create_tenant("default", 1).unwrap();
        let key = store
            .create_key(&t.id, Role::Ingest, false, 1, None)
            .unwrap();
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
        let key = store
            .create_key(&t.id, Role::Ingest, false, 1, None)
            .unwrap();
        store
            .write(|tx| Ok(tx.execute("UPDATE api_keys SET role = 'root'", [])?))
            .unwrap();
        assert!(store.authenticate(&key.secret).is_err());
    }
}
