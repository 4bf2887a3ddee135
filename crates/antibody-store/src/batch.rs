//! The engine sink's atomic write (findings + incidents + checkpoint in one transaction)
//! and the small key-value table holding engine metadata such as that checkpoint.

use crate::{findings, incidents, Store, StoreError};
use antibody_core::{Finding, Incident};
use rusqlite::{OptionalExtension, Transaction};

impl Store {
    /// Writes findings (idempotently) and incidents (upserted) in one transaction.
    pub fn write_batch(
        &self,
        findings: &[Finding],
        incidents: &[Incident],
    ) -> Result<(), StoreError> {
        self.write(|tx| write_outputs(tx, findings, incidents))
    }

    /// `write_batch` plus one meta entry in the same transaction, so a checkpoint (e.g. the
    /// log offset these outputs reflect) can never get ahead of, or lag, the outputs.
    pub fn write_batch_with_meta(
        &self,
        findings: &[Finding],
        incidents: &[Incident],
        (key, value): (&str, &str),
    ) -> Result<(), StoreError> {
        self.write(|tx| {
            write_outputs(tx, findings, incidents)?;
            set_meta(tx, key, value)
        })
    }

    pub fn get_meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.read(|conn| {
            let value = conn
                .prepare_cached("SELECT value FROM meta WHERE key = ?1")?
                .query_row([key], |r| r.get(0))
                .optional()?;
            Ok(value)
        })
    }

    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.write(|tx| set_meta(tx, key, value))
    }

    /// Makes every commit so far survive a power loss. Commits run with `synchronous =
    /// NORMAL` (safe against a process crash, not against power loss) for speed; one commit
    /// in FULL mode fsyncs the WAL and with it every frame before. The engine calls this
    /// before it writes a checkpoint that assumes those commits exist.
    pub fn make_durable(&self) -> Result<(), StoreError> {
        let mut conn = self.lock_writer();
        conn.pragma_update(None, "synchronous", "FULL")?;
        let result = (|| {
            let tx = conn.transaction()?;
            set_meta(&tx, "durable_at", "sync")?;
            tx.commit()?;
            Ok::<(), StoreError>(())
        })();
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        result
    }
}

fn write_outputs(tx: &Transaction<'_>, f: &[Finding], i: &[Incident]) -> Result<(), StoreError> {
    findings::insert_findings(tx, f)?;
    incidents::upsert_incidents(tx, i)
}

fn set_meta(tx: &Transaction<'_>, key: &str, value: &str) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )?
    .execute((key, value))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::Store;

    #[test]
    fn make_durable_commits_in_full_sync_mode() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("a.db")).unwrap();
        s.set_meta("k", "v").unwrap();
        s.make_durable().unwrap();
        assert_eq!(s.get_meta("k").unwrap().as_deref(), Some("v"));
        assert_eq!(s.get_meta("durable_at").unwrap().as_deref(), Some("sync"));
    }
}
