//! The model registry and the labels analysts give model findings.
//!
//! Every version of a tenant's model is a row with its file; `slot` says what it does now:
//! `active` (reports findings), `shadow` (scored silently, compared with the active one) or
//! `retired`. At most one active and one shadow version per `(tenant, name)`: callers change
//! slots through [`Store::set_model_slots`], which applies a whole change in one transaction.

use crate::error::StoreError;
use crate::store::Store;
use antibody_core::{Finding, Severity, TenantId};
use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};

/// What a model version does now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ModelSlot {
    /// Registered, its slot not yet decided (the moment between insert and placement).
    New,
    /// Reports findings.
    Active,
    /// Scored on the same events without reporting, compared with the active one.
    Shadow,
    /// Kept for rollback and lineage; not served.
    Retired,
}

impl ModelSlot {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Active => "active",
            Self::Shadow => "shadow",
            Self::Retired => "retired",
        }
    }
}

impl std::fmt::Display for ModelSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a model file is encoded.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ModelFormat {
    /// A bundle from `antibody train` (retrainable).
    #[default]
    Ensemble,
    /// An uploaded ONNX graph (served with `--features onnx`, never retrained).
    Onnx,
}

impl ModelFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ensemble => "ensemble",
            Self::Onnx => "onnx",
        }
    }
}

impl std::fmt::Display for ModelFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One registered model version (its file is stored beside it, see [`Store::model_file`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ModelRecord {
    pub id: String,
    pub name: String,
    pub version: u32,
    pub slot: ModelSlot,
    pub format: ModelFormat,
    /// How the model is bound to events (kind, field mapping, thresholds), as the API took it.
    pub binding: serde_json::Value,
    /// Metrics, lineage and format details, for people.
    pub info: serde_json::Value,
    pub created_ms: i64,
    pub sha256: String,
    /// The active version this one replaced when it was promoted (the rollback target).
    #[serde(default)]
    pub replaced: Option<String>,
}

/// An analyst's label on a model finding, with the features it was scored on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelLabel {
    pub finding: String,
    /// The model's name (labels carry over to its next versions).
    pub model: String,
    pub threat: bool,
    pub threat_type: Option<String>,
    /// Feature name → value, as the finding's evidence showed them.
    pub features: std::collections::BTreeMap<String, f64>,
    pub actor: String,
    pub ts: i64,
}

const RECORD_COLUMNS: &str = "body";

/// Unlabelled review-only findings (unreported, marked for review) kept per tenant and
/// model: one full page of the queue. The engine bounds them per minute; this bounds them
/// in all, for a model nobody labels. While a queue is full its model's new review-only
/// findings are not stored (each label makes room for one); reported findings always are.
pub const MAX_REVIEW_ITEMS: usize = crate::findings::MAX_LIMIT;

/// The SQL form of [`is_review_only`] over `f`, as the partial index `findings_review`
/// states it (schema migration 5).
const REVIEW_ONLY: &str = "json_extract(f.body, '$.evidence.review') = 1
    AND json_extract(f.body, '$.severity') = 'info'";

/// A model finding the engine emitted only for the review queue.
pub(crate) fn is_review_only(f: &Finding) -> bool {
    f.kind.starts_with("model:")
        && f.severity == Severity::Info
        && f.evidence.get("review") == Some(&serde_json::Value::Bool(true))
}

/// How many more review-only findings the queue of model finding kind `kind` takes.
pub(crate) fn review_room(
    conn: &rusqlite::Connection,
    tenant: &TenantId,
    kind: &str,
) -> Result<usize, StoreError> {
    let n: i64 = conn
        .prepare_cached(&format!(
            "SELECT COUNT(*) FROM findings f
             WHERE f.tenant = ?1 AND f.kind = ?2 AND {REVIEW_ONLY}
               AND NOT EXISTS (SELECT 1 FROM model_labels l
                               WHERE l.tenant = f.tenant AND l.finding = f.id)"
        ))?
        .query_row((tenant.as_str(), kind), |r| r.get(0))?;
    Ok(MAX_REVIEW_ITEMS.saturating_sub(usize::try_from(n).unwrap_or(usize::MAX)))
}

impl Store {
    /// The next free version number of `name` for the tenant.
    pub fn next_model_version(&self, tenant: &TenantId, name: &str) -> Result<u32, StoreError> {
        self.read(|conn| {
            let v: Option<i64> = conn
                .prepare_cached("SELECT MAX(version) FROM models WHERE tenant = ?1 AND name = ?2")?
                .query_row((tenant.as_str(), name), |r| r.get(0))?;
            Ok(u32::try_from(v.unwrap_or(0))
                .unwrap_or(u32::MAX)
                .saturating_add(1))
        })
    }

    /// Registers a version with its file. Fails on a duplicate id or `(name, version)`.
    pub fn insert_model(
        &self,
        tenant: &TenantId,
        rec: &ModelRecord,
        file: &[u8],
    ) -> Result<(), StoreError> {
        let body = serde_json::to_string(rec).map_err(|source| StoreError::Encode {
            what: "model record".into(),
            source,
        })?;
        self.write(|tx| {
            tx.prepare_cached(
                "INSERT INTO models (tenant, id, name, version, slot, body, file)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                tenant.as_str(),
                rec.id,
                rec.name,
                rec.version,
                rec.slot.as_str(),
                body,
                file
            ])?;
            Ok(())
        })
    }

    /// The tenant's versions, newest first.
    pub fn list_models(&self, tenant: &TenantId) -> Result<Vec<ModelRecord>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {RECORD_COLUMNS} FROM models WHERE tenant = ?1 ORDER BY name, version DESC"
            ))?;
            let rows = stmt.query_map([tenant.as_str()], |r| r.get::<_, String>(0))?;
            rows.map(|b| decode(&b?)).collect()
        })
    }

    pub fn get_model(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Option<ModelRecord>, StoreError> {
        self.read(|conn| {
            let body: Option<String> = conn
                .prepare_cached("SELECT body FROM models WHERE tenant = ?1 AND id = ?2")?
                .query_row((tenant.as_str(), id), |r| r.get(0))
                .optional()?;
            body.map(|b| decode(&b)).transpose()
        })
    }

    pub fn model_file(&self, tenant: &TenantId, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(|conn| {
            Ok(conn
                .prepare_cached("SELECT file FROM models WHERE tenant = ?1 AND id = ?2")?
                .query_row((tenant.as_str(), id), |r| r.get(0))
                .optional()?)
        })
    }

    /// Every tenant's active and shadow versions with their files: what the engine serves.
    pub fn live_models(&self) -> Result<Vec<(TenantId, ModelRecord, Vec<u8>)>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT tenant, body, file FROM models WHERE slot IN ('active', 'shadow')
                 ORDER BY tenant, name, version",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                ))
            })?;
            rows.map(|row| {
                let (t, body, file) = row?;
                Ok((TenantId::new(&t), decode(&body)?, file))
            })
            .collect()
        })
    }

    /// Rewrites the given records (slot and `replaced`) in one transaction.
    pub fn set_model_slots(
        &self,
        tenant: &TenantId,
        changes: &[ModelRecord],
    ) -> Result<(), StoreError> {
        let bodies = changes
            .iter()
            .map(|r| serde_json::to_string(r).map(|b| (r, b)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| StoreError::Encode {
                what: "model record".into(),
                source,
            })?;
        self.write(|tx| {
            let mut stmt = tx.prepare_cached(
                "UPDATE models SET slot = ?3, body = ?4 WHERE tenant = ?1 AND id = ?2",
            )?;
            for (r, body) in &bodies {
                if stmt.execute(params![tenant.as_str(), r.id, r.slot.as_str(), body])? == 0 {
                    return Err(StoreError::Invalid(format!("no model `{}`", r.id)));
                }
            }
            Ok(())
        })
    }

    /// Records (or replaces) the label of a model finding.
    pub fn put_model_label(&self, tenant: &TenantId, label: &ModelLabel) -> Result<(), StoreError> {
        let body = serde_json::to_string(label).map_err(|source| StoreError::Encode {
            what: "model label".into(),
            source,
        })?;
        self.write(|tx| {
            tx.prepare_cached(
                "INSERT INTO model_labels (tenant, finding, model, ts, body) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (tenant, finding) DO UPDATE SET ts = excluded.ts, body = excluded.body",
            )?
            .execute(params![tenant.as_str(), label.finding, label.model, label.ts, body])?;
            Ok(())
        })
    }

    /// Labels of the tenant's model `name` given at or after `since_ms`, oldest first.
    pub fn model_labels(
        &self,
        tenant: &TenantId,
        name: &str,
        since_ms: i64,
    ) -> Result<Vec<ModelLabel>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT body FROM model_labels WHERE tenant = ?1 AND model = ?2 AND ts >= ?3
                 ORDER BY ts, finding",
            )?;
            let rows = stmt.query_map(params![tenant.as_str(), name, since_ms], |r| {
                r.get::<_, String>(0)
            })?;
            rows.map(|b| {
                serde_json::from_str(&b?).map_err(|source| StoreError::Corrupt {
                    what: "model label".into(),
                    source,
                })
            })
            .collect()
        })
    }

    /// Model findings marked for review that nobody has labelled yet, newest first.
    pub fn review_queue(
        &self,
        tenant: &TenantId,
        limit: usize,
    ) -> Result<Vec<Finding>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT f.ts, f.body FROM findings f
                 WHERE f.tenant = ?1 AND f.kind LIKE 'model:%'
                   AND json_extract(f.body, '$.evidence.review') = 1
                   AND NOT EXISTS (SELECT 1 FROM model_labels l
                                   WHERE l.tenant = f.tenant AND l.finding = f.id)
                 ORDER BY f.ts DESC, f.id DESC LIMIT ?2",
            )?;
            let mut rows = stmt.query(params![tenant.as_str(), limit as i64])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                let ts: i64 = row.get(0)?;
                let body: String = row.get(1)?;
                out.push(crate::findings::decode(tenant, ts, &body)?);
            }
            Ok(out)
        })
    }
}

fn decode(body: &str) -> Result<ModelRecord, StoreError> {
    serde_json::from_str(body).map_err(|source| StoreError::Corrupt {
        what: "model record".into(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::finding;

    fn record(id: &str, name: &str, version: u32, slot: ModelSlot) -> ModelRecord {
        ModelRecord {
            id: id.into(),
            name: name.into(),
            version,
            slot,
            format: ModelFormat::Ensemble,
            binding: serde_json::json!({"kind": "vitals"}),
            info: serde_json::json!({}),
            created_ms: 1,
            sha256: "00".into(),
            replaced: None,
        }
    }

    #[test]
    fn registry_versions_slots_and_isolation() {
        let s = Store::open_in_memory().unwrap();
        let (t, u) = (TenantId::new("t"), TenantId::new("u"));
        assert_eq!(s.next_model_version(&t, "m").unwrap(), 1);
        s.insert_model(&t, &record("m-1", "m", 1, ModelSlot::Active), b"one")
            .unwrap();
        s.insert_model(&t, &record("m-2", "m", 2, ModelSlot::Shadow), b"two")
            .unwrap();
        assert!(s
            .insert_model(&t, &record("m-x", "m", 2, ModelSlot::Shadow), b"")
            .is_err());
        assert_eq!(s.next_model_version(&t, "m").unwrap(), 3);
        assert_eq!(s.list_models(&t).unwrap().len(), 2);
        assert!(s.list_models(&u).unwrap().is_empty());
        assert_eq!(s.get_model(&u, "m-1").unwrap(), None);
        assert_eq!(
            s.model_file(&t, "m-2").unwrap().as_deref(),
            Some(&b"two"[..])
        );
        let mut promote = vec![
            record("m-1", "m", 1, ModelSlot::Retired),
            record("m-2", "m", 2, ModelSlot::Active),
        ];
        promote[1].replaced = Some("m-1".into());
        s.set_model_slots(&t, &promote).unwrap();
        let live = s.live_models().unwrap();
        assert_eq!(live.len(), 1);
        assert_eq!(live[0].1.replaced.as_deref(), Some("m-1"));
        assert!(
            s.set_model_slots(&u, &promote).is_err(),
            "another tenant's ids are unknown"
        );
    }

    #[test]
    fn review_queue_lists_unlabelled_review_findings() {
        let s = Store::open_in_memory().unwrap();
        let t = TenantId::new("t");
        let mut a = finding(&t, "f-1-0", 10, "e", "model:m");
        a.evidence.insert("review".into(), true.into());
        let mut b = finding(&t, "f-2-0", 20, "e", "model:m");
        b.evidence.insert("review".into(), true.into());
        let mut c = finding(&t, "f-3-0", 30, "e", "model:m");
        c.evidence.insert("review".into(), false.into());
        let d = finding(&t, "f-4-0", 40, "e", "token_spike");
        s.insert_findings(&[a, b, c, d]).unwrap();
        let ids = |v: Vec<Finding>| v.into_iter().map(|f| f.id).collect::<Vec<_>>();
        assert_eq!(ids(s.review_queue(&t, 10).unwrap()), ["f-2-0", "f-1-0"]);
        let label = ModelLabel {
            finding: "f-2-0".into(),
            model: "m".into(),
            threat: true,
            threat_type: None,
            features: [("a".to_owned(), 1.0)].into(),
            actor: "k1".into(),
            ts: 100,
        };
        s.put_model_label(&t, &label).unwrap();
        assert_eq!(ids(s.review_queue(&t, 10).unwrap()), ["f-1-0"]);
        assert_eq!(s.model_labels(&t, "m", 0).unwrap(), vec![label]);
        assert!(s.model_labels(&t, "m", 101).unwrap().is_empty());
        assert!(s.review_queue(&TenantId::new("u"), 10).unwrap().is_empty());
    }

    #[test]
    fn a_review_queue_nobody_labels_stops_growing() {
        let s = Store::open_in_memory().unwrap();
        let t = TenantId::new("t");
        let review = |id: &str, ts: i64, kind: &str, severity: Severity| {
            let mut f = finding(&t, id, ts, "e", kind);
            f.severity = severity;
            f.evidence.insert("review".into(), true.into());
            f
        };
        let batch = |from: usize, to: usize| -> Vec<Finding> {
            (from..to)
                .map(|i| review(&format!("f-{i:x}-0"), i as i64, "model:m", Severity::Info))
                .collect()
        };
        let queued = |kind: &str| {
            s.review_queue(&t, 10 * MAX_REVIEW_ITEMS)
                .unwrap()
                .into_iter()
                .filter(|f| f.kind == kind && f.severity == Severity::Info)
                .count()
        };
        assert_eq!(s.insert_findings(&batch(0, 10)).unwrap(), 10);
        // A replayed batch counts each finding once.
        assert_eq!(s.insert_findings(&batch(0, 10)).unwrap(), 0);
        let n = MAX_REVIEW_ITEMS + 5;
        assert_eq!(
            s.insert_findings(&batch(10, n)).unwrap(),
            MAX_REVIEW_ITEMS - 10
        );
        assert_eq!(queued("model:m"), MAX_REVIEW_ITEMS);
        // Full: the next one is dropped; reported findings and other models are not bounded.
        let more = [
            review("g-1", 9_000, "model:m", Severity::Info),
            review("g-2", 9_000, "model:m", Severity::Medium),
            review("g-3", 9_000, "model:n", Severity::Info),
        ];
        assert_eq!(s.insert_findings(&more).unwrap(), 2);
        assert_eq!(queued("model:m"), MAX_REVIEW_ITEMS);
        assert_eq!(queued("model:n"), 1);
        // A label makes room for one more.
        let label = ModelLabel {
            finding: "f-0-0".into(),
            model: "m".into(),
            threat: false,
            threat_type: None,
            features: Default::default(),
            actor: "k1".into(),
            ts: 100,
        };
        s.put_model_label(&t, &label).unwrap();
        assert_eq!(s.insert_findings(&more[..1]).unwrap(), 1);
        assert_eq!(s.insert_findings(&batch(n, n + 1)).unwrap(), 0);
        assert_eq!(queued("model:m"), MAX_REVIEW_ITEMS);
    }

    #[test]
    fn the_review_bound_reads_its_partial_index() {
        let s = Store::open_in_memory().unwrap();
        let plan: Vec<String> = s
            .read(|conn| {
                let sql = format!(
                    "EXPLAIN QUERY PLAN SELECT COUNT(*) FROM findings f
                     WHERE f.tenant = 't' AND f.kind = 'model:m' AND {REVIEW_ONLY}"
                );
                let mut stmt = conn.prepare(&sql)?;
                let rows = stmt.query_map([], |r| r.get::<_, String>(3))?;
                Ok(rows.collect::<Result<Vec<_>, _>>()?)
            })
            .unwrap();
        assert!(
            plan.iter().any(|p| p.contains("findings_review")),
            "{plan:?}"
        );
    }
}
