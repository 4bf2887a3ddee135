//! The tamper-evident audit chain. Every decision, action, approval (with the actor's key id)
//! and state change becomes an [`AuditRecord`]; [`AuditChain::append`] links each one to the
//! previous by SHA-256, and [`verify`] finds the first record that no longer fits.
//!
//! Hash of entry `i` = SHA-256(`prev` (32 bytes) ‖ `i` (u64 LE) ‖ canonical(record)), where
//! the canonical form writes every field in declaration order as a u64 LE length followed
//! by its UTF-8 bytes (numbers as 8 LE bytes; map entries in key order). It depends on no
//! serialiser's settings, so it stays stable across versions. Entry 0's `prev` is 64 zeros.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AuditRecord {
    pub ts: i64,
    pub tenant: String,
    /// The key id of the person, or `engine` for automatic decisions.
    pub actor: String,
    /// `action`, `approval`, `state`, `escalation`, `skip`, `fleet`, `assessment`, `undo`,
    /// `feedback`, `incident` (ack, assign, note, resolve, reopen: `data.op`).
    pub kind: String,
    /// What it is about: an action id, an entity, an incident.
    pub subject: String,
    pub detail: String,
    pub data: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AuditEntry {
    pub index: u64,
    /// Hex SHA-256 of the previous entry.
    pub prev: String,
    /// Hex SHA-256 of this entry.
    pub hash: String,
    pub record: AuditRecord,
}

/// The head of a chain: the next index and the last hash. Snapshot-safe.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditChain {
    next: u64,
    last: String,
}

impl Default for AuditChain {
    fn default() -> Self {
        Self::new()
    }
}

impl AuditChain {
    pub fn new() -> Self {
        Self {
            next: 0,
            last: GENESIS.to_owned(),
        }
    }

    /// Continues a chain whose newest stored entry is `last`.
    pub fn resume(last: &AuditEntry) -> Self {
        Self {
            next: last.index + 1,
            last: last.hash.clone(),
        }
    }

    pub fn append(&mut self, record: AuditRecord) -> AuditEntry {
        let hash = entry_hash(&self.last, self.next, &record);
        let entry = AuditEntry {
            index: self.next,
            prev: std::mem::replace(&mut self.last, hash.clone()),
            hash,
            record,
        };
        self.next += 1;
        entry
    }

    pub fn len(&self) -> u64 {
        self.next
    }

    pub fn is_empty(&self) -> bool {
        self.next == 0
    }
}

/// Where and why a chain stops verifying.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("audit chain broken at index {index}: {reason}")]
pub struct ChainBreak {
    pub index: u64,
    pub reason: String,
}

/// Checks consecutive entries. A slice starting at index 0 must start from the genesis hash;
/// a slice starting later is checked from its first entry's `prev`.
pub fn verify(entries: &[AuditEntry]) -> Result<(), ChainBreak> {
    let Some(first) = entries.first() else {
        return Ok(());
    };
    let mut prev = if first.index == 0 {
        GENESIS.to_owned()
    } else {
        first.prev.clone()
    };
    for (pos, e) in entries.iter().enumerate() {
        let index = first.index.saturating_add(pos as u64);
        let brk = |reason: String| ChainBreak { index, reason };
        if e.index != index {
            return Err(brk(format!("entry claims index {}", e.index)));
        }
        if e.prev != prev {
            return Err(brk("previous hash does not match the entry before".into()));
        }
        if entry_hash(&prev, index, &e.record) != e.hash {
            return Err(brk("record does not match its hash (edited?)".into()));
        }
        prev = e.hash.clone();
    }
    Ok(())
}

fn entry_hash(prev: &str, index: u64, r: &AuditRecord) -> String {
    let mut h = Sha256::new();
    let mut prev_bytes = [0u8; 32];
    if hex::decode_to_slice(prev, &mut prev_bytes).is_err() {
        // A malformed prev cannot collide with a real one: hash its text instead.
        field(&mut h, prev.as_bytes());
    }
    h.update(prev_bytes);
    h.update(index.to_le_bytes());
    h.update(r.ts.to_le_bytes());
    for text in [&r.tenant, &r.actor, &r.kind, &r.subject, &r.detail] {
        field(&mut h, text.as_bytes());
    }
    h.update((r.data.len() as u64).to_le_bytes());
    for (k, v) in &r.data {
        field(&mut h, k.as_bytes());
        field(&mut h, v.as_bytes());
    }
    hex::encode(h.finalize())
}

fn field(h: &mut Sha256, bytes: &[u8]) {
    h.update((bytes.len() as u64).to_le_bytes());
    h.update(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(i: i64) -> AuditRecord {
        AuditRecord {
            ts: 1_000 + i,
            tenant: "t".into(),
            actor: if i % 2 == 0 {
                "engine".into()
            } else {
                "k-7".into()
            },
            kind: "action".into(),
            subject: format!("a-{i}"),
            detail: "block_ip 203.0.113.9 approved".into(),
            data: BTreeMap::from([("status".into(), "approved".into())]),
        }
    }

    fn chain(n: i64) -> Vec<AuditEntry> {
        let mut c = AuditChain::new();
        (0..n).map(|i| c.append(record(i))).collect()
    }

    #[test]
    fn appended_entries_verify() {
        let entries = chain(10);
        assert_eq!(entries[0].prev, GENESIS);
        assert_eq!(entries[3].prev, entries[2].hash);
        assert_eq!(verify(&entries), Ok(()));
        assert_eq!(verify(&entries[4..]), Ok(()));
        assert_eq!(verify(&[]), Ok(()));
    }

    #[test]
    fn an_edited_record_is_found_by_index() {
        let mut entries = chain(10);
        entries[6].record.actor = "someone-else".into();
        let err = verify(&entries).unwrap_err();
        assert_eq!(err.index, 6);
        assert!(err.reason.contains("edited"), "{err}");
    }

    #[test]
    fn edits_to_data_or_ts_are_found() {
        let mut entries = chain(5);
        entries[2]
            .record
            .data
            .insert("status".into(), "rejected".into());
        assert_eq!(verify(&entries).unwrap_err().index, 2);
        let mut entries = chain(5);
        entries[4].record.ts += 1;
        assert_eq!(verify(&entries).unwrap_err().index, 4);
    }

    #[test]
    fn removed_or_reordered_entries_are_found() {
        let mut entries = chain(6);
        entries.remove(3);
        assert_eq!(verify(&entries).unwrap_err().index, 3);
        let mut entries = chain(6);
        entries.swap(1, 2);
        assert_eq!(verify(&entries).unwrap_err().index, 1);
    }

    #[test]
    fn a_rehashed_edit_still_breaks_the_link() {
        let mut entries = chain(5);
        entries[1].record.detail = "forged".into();
        entries[1].hash = entry_hash(&entries[1].prev, 1, &entries[1].record);
        let err = verify(&entries).unwrap_err();
        assert_eq!(err.index, 2);
    }

    #[test]
    fn resume_continues_the_chain() {
        let mut entries = chain(3);
        let mut c = AuditChain::resume(entries.last().unwrap());
        entries.push(c.append(record(3)));
        assert_eq!(c.len(), 4);
        assert_eq!(verify(&entries), Ok(()));
    }

    #[test]
    fn field_boundaries_matter() {
        let mut a = record(0);
        let mut b = record(0);
        a.tenant = "ab".into();
        a.actor = "c".into();
        b.tenant = "a".into();
        b.actor = "bc".into();
        assert_ne!(entry_hash(GENESIS, 0, &a), entry_hash(GENESIS, 0, &b));
    }
}
