//! Findings: append-only, idempotent by `(tenant, id)`, listed newest first with keyset
//! pagination. A review-only model finding is not stored while its model's review queue is
//! full (see `models::MAX_REVIEW_ITEMS`). The body is the finding's JSON; the filter columns sit beside it.

use crate::{Store, StoreError};
use antibody_core::{Finding, TenantId, TimestampMs};
use rusqlite::types::Value;
use rusqlite::{params_from_iter, Connection, OptionalExtension, Transaction};
use std::collections::HashMap;

/// Rows returned by one list call at most.
pub const MAX_LIMIT: usize = 1000;
/// Rows returned when the caller does not say.
pub const DEFAULT_LIMIT: usize = 100;

/// Filters for `list_findings`. All present filters must match.
#[derive(Clone, Debug, PartialEq)]
pub struct FindingQuery {
    pub entity: Option<String>,
    pub kind: Option<String>,
    /// Only findings with `ts >= since_ms`.
    pub since_ms: Option<TimestampMs>,
    /// Capped at `MAX_LIMIT`.
    pub limit: usize,
    /// Only findings strictly older (in list order) than this one: the next page.
    pub before: Option<FindingCursor>,
}

impl Default for FindingQuery {
    fn default() -> Self {
        Self {
            entity: None,
            kind: None,
            since_ms: None,
            limit: DEFAULT_LIMIT,
            before: None,
        }
    }
}

impl FindingQuery {
    /// Whether `f` (already known to be the tenant's) passes the filters, exactly as
    /// [`Store::list_findings`] applies them; for findings not yet stored.
    pub fn matches(&self, f: &Finding) -> bool {
        self.entity.as_ref().is_none_or(|e| *e == f.entity)
            && self.kind.as_ref().is_none_or(|k| *k == f.kind)
            && self.since_ms.is_none_or(|s| f.ts >= s)
            && self
                .before
                .as_ref()
                .is_none_or(|c| (f.ts, f.id.as_str()) < (c.ts, c.id.as_str()))
    }
}

/// The list order of [`Store::list_findings`]: newest first, then id descending (SQLite
/// compares text bytewise, as `str` does).
pub fn newest_first(a: &Finding, b: &Finding) -> std::cmp::Ordering {
    (b.ts, b.id.as_str()).cmp(&(a.ts, a.id.as_str()))
}

/// A position in the newest-first order: `(ts, id)` of the last finding of a page.
/// Its text form `<ts>:<id>` is what an API hands back as `before=`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FindingCursor {
    pub ts: TimestampMs,
    pub id: String,
}

impl FindingCursor {
    /// The cursor that continues a listing after `finding`.
    pub fn after(finding: &Finding) -> Self {
        Self {
            ts: finding.ts,
            id: finding.id.clone(),
        }
    }

    /// Parses `<ts>:<id>`; the id may itself contain `:`.
    pub fn parse(s: &str) -> Option<Self> {
        let (ts, id) = s.split_once(':')?;
        Some(Self {
            ts: ts.parse().ok()?,
            id: id.to_owned(),
        })
    }
}

impl std::fmt::Display for FindingCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.ts, self.id)
    }
}

impl Store {
    /// Inserts findings in one transaction, skipping ids the tenant already has (the engine
    /// re-emits the same deterministic ids when it replays its log). Returns how many were new.
    pub fn insert_findings(&self, findings: &[Finding]) -> Result<usize, StoreError> {
        self.write(|tx| insert_findings(tx, findings))
    }

    /// The tenant's findings matching `query`, newest first (`ts` desc, then `id` desc).
    pub fn list_findings(
        &self,
        tenant: &TenantId,
        query: &FindingQuery,
    ) -> Result<Vec<Finding>, StoreError> {
        let (sql, params) = list_sql(tenant, query);
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&sql)?;
            let mut rows = stmt.query(params_from_iter(params))?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(decode(tenant, row.get(0)?, body_text(row, 1)?)?);
            }
            Ok(out)
        })
    }

    pub fn get_finding(&self, tenant: &TenantId, id: &str) -> Result<Option<Finding>, StoreError> {
        self.read(|conn| get_finding(conn, tenant, id))
    }

    pub fn count_findings(&self, tenant: &TenantId) -> Result<u64, StoreError> {
        self.read(|conn| {
            let n: i64 = conn
                .prepare_cached("SELECT COUNT(*) FROM findings WHERE tenant = ?1")?
                .query_row([tenant.as_str()], |r| r.get(0))?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
    }
}

pub(crate) fn insert_findings(
    tx: &Transaction<'_>,
    findings: &[Finding],
) -> Result<usize, StoreError> {
    let mut stmt = tx.prepare_cached(
        "INSERT OR IGNORE INTO findings (tenant, id, ts, entity, kind, body)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    let mut inserted = 0;
    // Room left in each (tenant, model) review queue this batch touches.
    let mut room: HashMap<(&str, &str), usize> = HashMap::new();
    for f in findings {
        check_finite(f)?;
        let review = if crate::models::is_review_only(f) {
            let key = (f.tenant.as_str(), f.kind.as_str());
            let left = match room.get(&key) {
                Some(&left) => left,
                None => crate::models::review_room(tx, &f.tenant, &f.kind)?,
            };
            room.insert(key, left);
            if left == 0 {
                continue;
            }
            Some((key, left))
        } else {
            None
        };
        let body = serde_json::to_string(f).map_err(|source| StoreError::Encode {
            what: format!("finding {}", f.id),
            source,
        })?;
        let n = stmt.execute((f.tenant.as_str(), &f.id, f.ts, &f.entity, &f.kind, &body))?;
        if let Some((key, left)) = review {
            room.insert(key, left - n.min(1));
        }
        inserted += n;
    }
    Ok(inserted)
}

/// JSON has no NaN or infinity: serde would write `null` and the row could never be read
/// back, so such a finding is refused up front.
fn check_finite(f: &Finding) -> Result<(), StoreError> {
    let contributions_ok = f.explanation.contributions.values().all(|v| v.is_finite());
    if f.score.is_finite() && contributions_ok {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "finding {}: score and contributions must be finite",
            f.id
        )))
    }
}

fn get_finding(
    conn: &Connection,
    tenant: &TenantId,
    id: &str,
) -> Result<Option<Finding>, StoreError> {
    let row = conn
        .prepare_cached("SELECT ts, body FROM findings WHERE tenant = ?1 AND id = ?2")?
        .query_row((tenant.as_str(), id), |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
        })
        .optional()?;
    row.map(|(ts, body)| decode(tenant, ts, &body)).transpose()
}

/// Builds the list query; each present filter adds a clause, so the planner can pick the
/// `(tenant, entity|kind, ts, id)` index that fits.
pub(crate) fn list_sql(tenant: &TenantId, q: &FindingQuery) -> (String, Vec<Value>) {
    let mut sql = String::from("SELECT ts, body FROM findings WHERE tenant = ?");
    let mut params = vec![Value::Text(tenant.as_str().to_owned())];
    if let Some(entity) = &q.entity {
        sql.push_str(" AND entity = ?");
        params.push(Value::Text(entity.clone()));
    }
    if let Some(kind) = &q.kind {
        sql.push_str(" AND kind = ?");
        params.push(Value::Text(kind.clone()));
    }
    if let Some(since) = q.since_ms {
        sql.push_str(" AND ts >= ?");
        params.push(Value::Integer(since));
    }
    if let Some(cursor) = &q.before {
        sql.push_str(" AND (ts, id) < (?, ?)");
        params.push(Value::Integer(cursor.ts));
        params.push(Value::Text(cursor.id.clone()));
    }
    sql.push_str(" ORDER BY ts DESC, id DESC LIMIT ?");
    params.push(Value::Integer(q.limit.min(MAX_LIMIT) as i64));
    (sql, params)
}

/// A JSON body column, borrowed from the row rather than copied.
pub(crate) fn body_text<'r>(row: &'r rusqlite::Row<'_>, idx: usize) -> rusqlite::Result<&'r str> {
    Ok(row.get_ref(idx)?.as_str()?)
}

/// The body omits the tenant (the core type skips it); the columns are authoritative.
pub(crate) fn decode(
    tenant: &TenantId,
    ts: TimestampMs,
    body: &str,
) -> Result<Finding, StoreError> {
    let mut f: Finding = serde_json::from_str(body).map_err(|source| StoreError::Corrupt {
        what: "finding".to_owned(),
        source,
    })?;
    f.tenant = tenant.clone();
    f.ts = ts;
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn cursor_text_round_trips(ts in any::<i64>(), id in ".*") {
            let cursor = FindingCursor { ts, id };
            prop_assert_eq!(FindingCursor::parse(&cursor.to_string()), Some(cursor));
        }

        #[test]
        fn cursor_parse_never_panics(s in ".*") {
            let _ = FindingCursor::parse(&s);
        }
    }

    #[test]
    fn malformed_cursors_are_rejected() {
        for s in [
            "",
            "12",
            "x:f-1",
            ":f-1",
            "1.5:f-1",
            "99999999999999999999:f",
        ] {
            assert_eq!(FindingCursor::parse(s), None, "{s}");
        }
        assert_eq!(
            FindingCursor::parse("-5:a:b"),
            Some(FindingCursor {
                ts: -5,
                id: "a:b".into()
            })
        );
    }

    proptest! {
        /// The in-memory filter and order agree with the SQL, so findings not yet stored
        /// can be merged into a listing without changing what a page holds.
        #[test]
        fn matches_and_order_agree_with_the_store(
            rows in prop::collection::vec((0i64..6, 0u8..3, 0u8..2, 0u32..40), 1..40),
            entity in prop::option::of(0u8..3),
            kind in prop::option::of(0u8..2),
            since in prop::option::of(0i64..6),
            before in prop::option::of((0i64..6, 0u32..40)),
            limit in 1usize..20,
        ) {
            let t = TenantId::new("t");
            let store = Store::open_in_memory().unwrap();
            let all: Vec<Finding> = rows
                .iter()
                .map(|&(ts, e, k, n)| {
                    let id = format!("f-{n:x}-{}", n % 3);
                    crate::conformance::finding(&t, &id, ts, &format!("e{e}"), &format!("k{k}"))
                })
                .collect();
            store.insert_findings(&all).unwrap();
            let q = FindingQuery {
                entity: entity.map(|e| format!("e{e}")),
                kind: kind.map(|k| format!("k{k}")),
                since_ms: since,
                limit,
                before: before.map(|(ts, n)| FindingCursor { ts, id: format!("f-{n:x}-{}", n % 3) }),
            };
            let mut want: Vec<Finding> = store.list_findings(&t, &FindingQuery { limit: MAX_LIMIT, ..FindingQuery::default() })
                .unwrap()
                .into_iter()
                .filter(|f| q.matches(f))
                .collect();
            want.sort_by(newest_first);
            want.truncate(limit);
            let got = store.list_findings(&t, &q).unwrap();
            let ids = |v: &[Finding]| v.iter().map(|f| f.id.clone()).collect::<Vec<_>>();
            prop_assert_eq!(ids(&got), ids(&want));
        }
    }
}
