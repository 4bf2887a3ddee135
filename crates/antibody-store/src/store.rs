//! The `Store` handle: one writer connection behind a mutex and a pool of read-only
//! connections, so that in WAL mode reads never queue behind a write transaction.

use crate::{schema, StoreError};
use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// The database file inside the data directory.
pub const DB_FILE: &str = "antibody.db";

/// Idle reader connections kept open; more are opened on demand and closed after use.
const MAX_IDLE_READERS: usize = 4;
/// How long a statement waits on a lock held by another connection (e.g. a checkpoint).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Distinct SQL texts per connection: the filter combinations of the list queries.
const STATEMENT_CACHE: usize = 64;

/// A synchronous, thread-safe handle on the database. Share it in an `Arc`; call it from
/// `spawn_blocking` in async code.
pub struct Store {
    writer: Mutex<Connection>,
    readers: Readers,
    /// Serialises slow (Argon2) key checks and remembers secrets they rejected.
    pub(crate) chosen_keys: Mutex<crate::keys::ChosenGate>,
}

enum Readers {
    /// File-backed: read-only connections on the same file, opened lazily.
    Pool {
        path: PathBuf,
        idle: Mutex<Vec<Connection>>,
    },
    /// In-memory: a private database is visible to one connection only, so reads share
    /// the writer.
    Writer,
}

impl Store {
    /// Opens (creating if needed) the database file at `path` and applies pending migrations.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let mut writer = Connection::open(path)?;
        configure_writer(&mut writer)?;
        let journal: String = writer.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !journal.eq_ignore_ascii_case("wal") {
            tracing::warn!(%journal, path = %path.display(), "store could not enable WAL mode");
        }
        schema::migrate(&mut writer)?;
        let readers = Readers::Pool {
            path: path.to_path_buf(),
            idle: Mutex::new(Vec::new()),
        };
        Ok(Store {
            writer: Mutex::new(writer),
            readers,
            chosen_keys: Mutex::default(),
        })
    }

    /// A private, empty in-memory database (tests, `replay`). Reads share the writer.
    pub fn open_in_memory() -> Result<Store, StoreError> {
        let mut writer = Connection::open_in_memory()?;
        configure_writer(&mut writer)?;
        schema::migrate(&mut writer)?;
        Ok(Store {
            writer: Mutex::new(writer),
            readers: Readers::Writer,
            chosen_keys: Mutex::default(),
        })
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        self.read(schema::user_version)
    }

    /// Runs `f` in one IMMEDIATE transaction on the writer; commits if it returns `Ok`.
    pub(crate) fn write<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.lock_writer();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    /// Runs `f` on a reader connection (autocommit: each statement sees the latest commit).
    pub(crate) fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        match &self.readers {
            Readers::Writer => f(&self.lock_writer()),
            Readers::Pool { path, idle } => {
                let pooled = lock(idle).pop();
                let conn = match pooled {
                    Some(conn) => conn,
                    None => open_reader(path)?,
                };
                let out = f(&conn);
                let mut idle = lock(idle);
                if idle.len() < MAX_IDLE_READERS {
                    idle.push(conn);
                }
                out
            }
        }
    }

    pub(crate) fn lock_writer(&self) -> MutexGuard<'_, Connection> {
        lock(&self.writer)
    }
}

/// A panic while holding a connection cannot leave it mid-transaction (the `Transaction`
/// guard rolls back on drop), so a poisoned lock is safe to keep using.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// WAL pages between automatic checkpoints (SQLite's default is 1,000). A checkpoint ends in
/// an fsync, and the disk's one write cache makes the log's group-commit fdatasync wait for
/// it: 4 MB checkpoints put ~10 ms stalls into ingest latency, 0.5 MB ones about 1 ms.
const WAL_AUTOCHECKPOINT_PAGES: i64 = 128;

fn configure_writer(conn: &mut Connection) -> Result<(), StoreError> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)?;
    Ok(())
}

fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::finding;
    use crate::{FindingQuery, SCHEMA_VERSION};
    use antibody_core::TenantId;
    use tempfile::TempDir;

    fn file_store() -> (TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join(DB_FILE)).unwrap();
        (dir, store)
    }

    mod file_backend {
        crate::conformance::store_suite!(super::file_store());
    }

    mod memory_backend {
        crate::conformance::store_suite!(((), crate::Store::open_in_memory().unwrap()));
    }

    #[test]
    fn file_store_is_in_wal_mode_with_foreign_keys() {
        let (_dir, s) = file_store();
        let conn = s.lock_writer();
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        let fk: i64 = conn
            .pragma_query_value(None, "foreign_keys", |r| r.get(0))
            .unwrap();
        let sync: i64 = conn
            .pragma_query_value(None, "synchronous", |r| r.get(0))
            .unwrap();
        assert_eq!((mode.as_str(), fk, sync), ("wal", 1, 1));
    }

    #[test]
    fn reopen_persists_and_migrations_are_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DB_FILE);
        let (tenant, key) = {
            let s = Store::open(&path).unwrap();
            let t = s.create_tenant("default", 1).unwrap();
            let key = s
                .create_key(&t.id, crate::Role::Admin, true, 1, None)
                .unwrap();
            s.insert_findings(&[finding(&t.id, "f-1", 5, "agent:x", "sqli")])
                .unwrap();
            s.set_meta("engine.offset", "9").unwrap();
            (t, key)
        };
        for _ in 0..2 {
            let s = Store::open(&path).unwrap();
            assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
            assert_eq!(s.get_tenant(&tenant.id).unwrap(), Some(tenant.clone()));
            assert_eq!(s.authenticate(&key.secret).unwrap(), Some(key.info.clone()));
            assert_eq!(s.count_findings(&tenant.id).unwrap(), 1);
            assert_eq!(s.get_meta("engine.offset").unwrap().as_deref(), Some("9"));
        }
    }

    #[test]
    fn refuses_a_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DB_FILE);
        {
            let conn = Connection::open(&path).unwrap();
            conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
                .unwrap();
        }
        let err = Store::open(&path).err().unwrap();
        assert!(matches!(err, StoreError::SchemaTooNew { .. }), "{err}");
    }

    #[test]
    fn reads_do_not_wait_for_an_open_write_transaction() {
        let (_dir, s) = file_store();
        let t = TenantId::new("default");
        s.insert_findings(&[finding(&t, "f-1", 1, "agent:x", "sqli")])
            .unwrap();
        s.write(|tx| {
            crate::findings::insert_findings(tx, &[finding(&t, "f-2", 2, "agent:x", "sqli")])?;
            // The writer is mid-transaction; a reader on another thread still gets the last
            // committed state instead of blocking.
            let seen = std::thread::scope(|scope| {
                scope
                    .spawn(|| s.list_findings(&t, &FindingQuery::default()))
                    .join()
                    .unwrap()
            })?;
            assert_eq!(seen.len(), 1);
            Ok(())
        })
        .unwrap();
        assert_eq!(s.count_findings(&t).unwrap(), 2);
    }

    #[test]
    fn list_queries_use_an_index_without_sorting() {
        let (_dir, s) = file_store();
        let t = TenantId::new("default");
        let queries = [
            FindingQuery::default(),
            FindingQuery {
                entity: Some("e".into()),
                ..Default::default()
            },
            FindingQuery {
                kind: Some("k".into()),
                ..Default::default()
            },
            FindingQuery {
                since_ms: Some(1),
                before: Some(crate::FindingCursor {
                    ts: 9,
                    id: "x".into(),
                }),
                ..Default::default()
            },
        ];
        for q in queries {
            let (sql, params) = crate::findings::list_sql(&t, &q);
            let plan: Vec<String> = s
                .read(|conn| {
                    let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
                    let rows = stmt.query_map(rusqlite::params_from_iter(params), |r| r.get(3))?;
                    Ok(rows.collect::<Result<_, _>>()?)
                })
                .unwrap();
            let plan = plan.join("; ");
            assert!(plan.contains("USING INDEX findings_"), "{q:?}: {plan}");
            assert!(!plan.contains("TEMP B-TREE"), "{q:?}: {plan}");
        }
    }
}
