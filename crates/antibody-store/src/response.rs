//! The response engine's records: assets (what operators say about entities), actions (the
//! latest version of each, upserted by id) and the audit chain (append-only, one chain per
//! tenant; entries are stored as the responder hashed them, so `verify` can re-check them).

use crate::findings::{DEFAULT_LIMIT, MAX_LIMIT};
use crate::{Store, StoreError};
use antibody_core::TenantId;
use antibody_respond::{Action, ActionStatus, Asset, AuditEntry};
use rusqlite::types::Value;
use rusqlite::{params_from_iter, OptionalExtension};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Filters for `list_actions`.
#[derive(Clone, Debug, PartialEq)]
pub struct ActionQuery {
    pub status: Option<ActionStatus>,
    pub limit: usize,
}

impl Default for ActionQuery {
    fn default() -> Self {
        Self {
            status: None,
            limit: DEFAULT_LIMIT,
        }
    }
}

/// Filters for `list_audit`; entries come oldest first from `after` on.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct AuditQuery {
    /// Only entries with an index greater than this.
    pub after: Option<u64>,
    pub subject: Option<String>,
    pub actor: Option<String>,
    pub kind: Option<String>,
    pub limit: usize,
}

fn encode<T: Serialize>(what: &str, v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|source| StoreError::Encode {
        what: what.to_owned(),
        source,
    })
}

fn decode<T: DeserializeOwned>(what: &str, body: &str) -> Result<T, StoreError> {
    serde_json::from_str(body).map_err(|source| StoreError::Corrupt {
        what: what.to_owned(),
        source,
    })
}

impl Store {
    /// The responder's stored view of one incident (risk, diagnosis, actions, summary).
    pub fn get_incident_response(
        &self,
        tenant: &TenantId,
        incident: &str,
    ) -> Result<Option<crate::IncidentResponse>, StoreError> {
        self.read(|conn| {
            let body: Option<String> = conn
                .prepare_cached(
                    "SELECT body FROM incident_response WHERE tenant = ?1 AND incident = ?2",
                )?
                .query_row((tenant.as_str(), incident), |r| r.get(0))
                .optional()?;
            body.map(|b| decode("incident response", &b)).transpose()
        })
    }

    /// Inserts or replaces assets in one transaction (the bulk import is one call).
    pub fn put_assets(
        &self,
        tenant: &TenantId,
        assets: &[Asset],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.write(|tx| {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO assets (tenant, entity, updated_ms, body) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (tenant, entity) DO UPDATE SET
                     updated_ms = excluded.updated_ms, body = excluded.body",
            )?;
            for a in assets {
                stmt.execute((tenant.as_str(), &a.entity, now_ms, encode("asset", a)?))?;
            }
            Ok(())
        })
    }

    pub fn get_asset(&self, tenant: &TenantId, entity: &str) -> Result<Option<Asset>, StoreError> {
        self.read(|conn| {
            let body: Option<String> = conn
                .prepare_cached("SELECT body FROM assets WHERE tenant = ?1 AND entity = ?2")?
                .query_row((tenant.as_str(), entity), |r| r.get(0))
                .optional()?;
            body.map(|b| decode("asset", &b)).transpose()
        })
    }

    /// Every asset of the tenant, by entity name.
    pub fn list_assets(&self, tenant: &TenantId) -> Result<Vec<Asset>, StoreError> {
        self.read(|conn| {
            let mut stmt =
                conn.prepare_cached("SELECT body FROM assets WHERE tenant = ?1 ORDER BY entity")?;
            let mut rows = stmt.query([tenant.as_str()])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(decode("asset", &row.get::<_, String>(0)?)?);
            }
            Ok(out)
        })
    }

    /// Every asset of every tenant (to seed the responder at start).
    pub fn all_assets(&self) -> Result<Vec<(TenantId, Asset)>, StoreError> {
        self.read(|conn| {
            let mut stmt =
                conn.prepare_cached("SELECT tenant, body FROM assets ORDER BY tenant, entity")?;
            let mut rows = stmt.query([])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                let tenant = TenantId::new(&row.get::<_, String>(0)?);
                out.push((tenant, decode("asset", &row.get::<_, String>(1)?)?));
            }
            Ok(out)
        })
    }

    /// Inserts or replaces the latest version of each action, in one transaction.
    pub fn upsert_actions(
        &self,
        tenant_actions: &[(TenantId, Action)],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.write(|tx| upsert_actions(tx, tenant_actions, now_ms))
    }

    pub fn get_action(&self, tenant: &TenantId, id: &str) -> Result<Option<Action>, StoreError> {
        self.read(|conn| {
            let body: Option<String> = conn
                .prepare_cached("SELECT body FROM actions WHERE tenant = ?1 AND id = ?2")?
                .query_row((tenant.as_str(), id), |r| r.get(0))
                .optional()?;
            body.map(|b| decode("action", &b)).transpose()
        })
    }

    /// The tenant's actions, most recently changed first.
    pub fn list_actions(
        &self,
        tenant: &TenantId,
        q: &ActionQuery,
    ) -> Result<Vec<Action>, StoreError> {
        let mut sql = String::from("SELECT body FROM actions WHERE tenant = ?");
        let mut params = vec![Value::Text(tenant.as_str().to_owned())];
        if let Some(status) = &q.status {
            sql.push_str(" AND status = ?");
            params.push(Value::Text(status.as_str().to_owned()));
        }
        sql.push_str(" ORDER BY updated_ms DESC, id DESC LIMIT ?");
        params.push(Value::Integer(q.limit.min(MAX_LIMIT) as i64));
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&sql)?;
            let mut rows = stmt.query(params_from_iter(params))?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(decode("action", &row.get::<_, String>(0)?)?);
            }
            Ok(out)
        })
    }

    /// Appends audit entries. The (tenant, index) key makes a replayed append a no-op and a
    /// conflicting one an error, never a silent overwrite.
    pub fn append_audit(&self, entries: &[AuditEntry]) -> Result<(), StoreError> {
        self.write(|tx| append_audit(tx, entries))
    }

    /// One batch of the response stage in one transaction: its audit entries, the actions
    /// they record, the incidents it updated and its view of each, all or none.
    pub fn write_response_batch(&self, b: &ResponseBatch<'_>) -> Result<(), StoreError> {
        self.write(|tx| {
            append_audit(tx, b.audit)?;
            upsert_actions(tx, b.actions, b.now_ms)?;
            crate::incidents::upsert_incidents(tx, b.incidents)?;
            crate::incidents::put_incident_responses(tx, b.views)
        })
    }

    /// The tenant's audit entries matching `q`, oldest first.
    pub fn list_audit(
        &self,
        tenant: &TenantId,
        q: &AuditQuery,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let mut sql = String::from("SELECT body FROM audit WHERE tenant = ?");
        let mut params = vec![Value::Text(tenant.as_str().to_owned())];
        if let Some(after) = q.after {
            sql.push_str(" AND idx > ?");
            params.push(Value::Integer(i64::try_from(after).unwrap_or(i64::MAX)));
        }
        for (col, v) in [
            ("subject", &q.subject),
            ("actor", &q.actor),
            ("kind", &q.kind),
        ] {
            if let Some(v) = v {
                sql.push_str(&format!(" AND {col} = ?"));
                params.push(Value::Text(v.clone()));
            }
        }
        sql.push_str(" ORDER BY idx LIMIT ?");
        params.push(Value::Integer(q.limit.clamp(1, 100_000) as i64));
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&sql)?;
            let mut rows = stmt.query(params_from_iter(params))?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(decode("audit entry", &row.get::<_, String>(0)?)?);
            }
            Ok(out)
        })
    }

    /// The newest audit entry of each tenant (to resume every chain at start).
    pub fn audit_heads(&self) -> Result<Vec<AuditEntry>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT body FROM audit a WHERE idx = (SELECT MAX(idx) FROM audit b WHERE b.tenant = a.tenant)
                 ORDER BY tenant",
            )?;
            let mut rows = stmt.query([])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(decode("audit entry", &row.get::<_, String>(0)?)?);
            }
            Ok(out)
        })
    }
}

/// What [`Store::write_response_batch`] writes.
pub struct ResponseBatch<'a> {
    pub audit: &'a [AuditEntry],
    pub actions: &'a [(TenantId, Action)],
    /// The actions' `updated_ms`.
    pub now_ms: i64,
    pub incidents: &'a [antibody_core::Incident],
    pub views: &'a [(TenantId, String, crate::IncidentResponse)],
}

fn upsert_actions(
    tx: &rusqlite::Transaction<'_>,
    tenant_actions: &[(TenantId, Action)],
    now_ms: i64,
) -> Result<(), StoreError> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO actions (tenant, id, incident, status, updated_ms, body)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (tenant, id) DO UPDATE SET
             status = excluded.status, updated_ms = excluded.updated_ms, body = excluded.body",
    )?;
    for (tenant, a) in tenant_actions {
        let body = encode("action", a)?;
        stmt.execute((
            tenant.as_str(),
            &a.id,
            &a.incident,
            a.status.as_str(),
            now_ms,
            body,
        ))?;
    }
    Ok(())
}

fn append_audit(tx: &rusqlite::Transaction<'_>, entries: &[AuditEntry]) -> Result<(), StoreError> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO audit (tenant, idx, ts, actor, kind, subject, body)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (tenant, idx) DO NOTHING",
    )?;
    for e in entries {
        let r = &e.record;
        let idx = i64::try_from(e.index)
            .map_err(|_| StoreError::Invalid("audit index overflows".into()))?;
        stmt.execute((
            &r.tenant,
            idx,
            r.ts,
            &r.actor,
            &r.kind,
            &r.subject,
            encode("audit entry", e)?,
        ))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use antibody_respond::{AuditChain, AuditRecord};
    use std::collections::BTreeMap;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("r.db")).unwrap();
        (dir, s)
    }

    fn record(tenant: &str, i: u64) -> AuditRecord {
        AuditRecord {
            ts: i as i64,
            tenant: tenant.into(),
            actor: "engine".into(),
            kind: "state".into(),
            subject: format!("agent:{}", i % 2),
            detail: format!("step {i}"),
            data: BTreeMap::new(),
        }
    }

    #[test]
    fn assets_round_trip_and_are_isolated() {
        let (_d, s) = store();
        let (a, b) = (TenantId::new("a"), TenantId::new("b"));
        let mut web = Asset::new("host:web-1");
        web.criticality = 5;
        web.tags = vec!["prod".into()];
        s.put_assets(&a, &[web.clone(), Asset::new("host:db-1")], 1)
            .unwrap();
        assert_eq!(s.get_asset(&a, "host:web-1").unwrap(), Some(web.clone()));
        assert_eq!(s.get_asset(&b, "host:web-1").unwrap(), None);
        assert_eq!(s.list_assets(&a).unwrap().len(), 2);
        web.criticality = 1;
        s.put_assets(&a, &[web.clone()], 2).unwrap();
        assert_eq!(
            s.get_asset(&a, "host:web-1").unwrap().unwrap().criticality,
            1
        );
        assert_eq!(s.all_assets().unwrap().len(), 2);
    }

    #[test]
    fn audit_chain_is_stored_in_order_and_replays_are_no_ops() {
        let (_d, s) = store();
        let mut chain = AuditChain::new();
        let entries: Vec<AuditEntry> = (0..5).map(|i| chain.append(record("a", i))).collect();
        s.append_audit(&entries).unwrap();
        s.append_audit(&entries[3..]).unwrap();
        let all = s
            .list_audit(
                &TenantId::new("a"),
                &AuditQuery {
                    limit: 100,
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(all, entries);
        antibody_respond::verify(&all).unwrap();
        let q = AuditQuery {
            after: Some(1),
            subject: Some("agent:1".into()),
            limit: 10,
            ..Default::default()
        };
        let some = s.list_audit(&TenantId::new("a"), &q).unwrap();
        assert_eq!(some.iter().map(|e| e.index).collect::<Vec<_>>(), vec![3]);
        assert!(s
            .list_audit(
                &TenantId::new("b"),
                &AuditQuery {
                    limit: 10,
                    ..Default::default()
                }
            )
            .unwrap()
            .is_empty());
        assert_eq!(s.audit_heads().unwrap(), vec![entries[4].clone()]);
    }

    #[test]
    fn incident_reads_merge_the_responders_view() {
        use antibody_core::{Hypothesis, Incident, IncidentStatus, Severity};
        let (_d, s) = store();
        let t = TenantId::new("a");
        let inc = Incident {
            id: "i-1".into(),
            tenant: t.clone(),
            entity: "agent:x".into(),
            status: IncidentStatus::Open,
            opened: 1,
            updated: 2,
            risk: 3.0,
            severity: Severity::High,
            kinds: vec!["token_spike".into()],
            finding_count: 1,
            max_score: 0.5,
            diagnosis: vec![],
            findings: vec!["f-1".into()],
            actions: vec![],
            timeline: vec![],
            workflow: Default::default(),
        };
        s.upsert_incidents(std::slice::from_ref(&inc)).unwrap();
        let view = crate::IncidentResponse {
            risk: 7.5,
            confidence: 0.8,
            blast_radius: 1,
            diagnosis: vec![Hypothesis {
                cause: "cost_overrun".into(),
                confidence: 0.8,
            }],
            actions: vec![serde_json::json!({"id": "a-1", "kind": "rate_limit"})],
            summary: None,
            work: Default::default(),
        };
        s.put_incident_responses(&[(t.clone(), "i-1".into(), view)])
            .unwrap();
        // A later engine update keeps the responder's view.
        s.upsert_incidents(&[Incident {
            finding_count: 2,
            ..inc
        }])
        .unwrap();
        let got = s.get_incident(&t, "i-1").unwrap().unwrap();
        assert_eq!((got.risk, got.finding_count), (7.5, 2));
        assert_eq!(got.diagnosis[0].cause, "cost_overrun");
        assert_eq!(got.actions.len(), 1);
        let listed = s
            .list_incidents(&t, &crate::IncidentQuery::default())
            .unwrap();
        assert_eq!(listed[0].risk, 7.5);
    }

    #[test]
    fn a_response_batch_is_stored_whole_or_not_at_all() {
        let (_d, s) = store();
        let t = TenantId::new("a");
        let mut chain = AuditChain::new();
        let audit: Vec<AuditEntry> = (0..3).map(|i| chain.append(record("a", i))).collect();
        let view = |risk: f64| {
            vec![(
                t.clone(),
                "i-1".to_owned(),
                crate::IncidentResponse {
                    risk,
                    confidence: 0.5,
                    blast_radius: 1,
                    diagnosis: vec![],
                    actions: vec![],
                    summary: None,
                    work: Default::default(),
                },
            )]
        };
        let all = AuditQuery {
            limit: 10,
            ..Default::default()
        };
        // A view the store refuses (NaN risk) takes the audit entries down with it.
        let bad = view(f64::NAN);
        let batch = ResponseBatch {
            audit: &audit,
            actions: &[],
            now_ms: 5,
            incidents: &[],
            views: &bad,
        };
        assert!(s.write_response_batch(&batch).is_err());
        assert!(s.list_audit(&t, &all).unwrap().is_empty());
        let good = view(4.0);
        s.write_response_batch(&ResponseBatch {
            views: &good,
            ..batch
        })
        .unwrap();
        assert_eq!(s.list_audit(&t, &all).unwrap(), audit);
        assert_eq!(
            s.get_incident_response(&t, "i-1").unwrap().unwrap().risk,
            4.0
        );
    }

    #[test]
    fn incident_response_keeps_its_summary() {
        use antibody_respond::investigate::{Summary, SummarySource};
        let (_d, s) = store();
        let t = TenantId::new("a");
        assert_eq!(s.get_incident_response(&t, "i-1").unwrap(), None);
        let view = crate::IncidentResponse {
            risk: 1.0,
            confidence: 0.5,
            blast_radius: 1,
            diagnosis: vec![],
            actions: vec![],
            summary: Some(Summary {
                source: SummarySource::Template,
                text: "Incident i-1 …".into(),
                version: 7,
                investigator: None,
            }),
            work: Default::default(),
        };
        s.put_incident_responses(&[(t.clone(), "i-1".into(), view.clone())])
            .unwrap();
        assert_eq!(s.get_incident_response(&t, "i-1").unwrap(), Some(view));
        assert_eq!(
            s.get_incident_response(&TenantId::new("b"), "i-1").unwrap(),
            None
        );
    }
}
