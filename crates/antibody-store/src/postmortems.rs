//! Post-mortems of resolved incidents (JSON and the Markdown rendered from it at the same
//! time, so a report reads the same later whatever the renderer becomes), and the reads
//! that gather what one is written from: the incident's findings, actions and audit trail.

use crate::{Store, StoreError};
use antibody_core::{Finding, TenantId, TimestampMs};
use antibody_respond::postmortem::Postmortem;
use antibody_respond::{Action, AuditEntry, AuditRecord};
use rusqlite::types::Value;
use rusqlite::{params_from_iter, OptionalExtension};

/// Audit records one post-mortem reads at most.
pub const MAX_POSTMORTEM_AUDIT: usize = 2_000;

/// A stored post-mortem.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredPostmortem {
    pub postmortem: Postmortem,
    pub markdown: String,
}

impl Store {
    /// Stores (or replaces) the post-mortem of an incident.
    pub fn put_postmortem(
        &self,
        tenant: &TenantId,
        pm: &Postmortem,
        markdown: &str,
    ) -> Result<(), StoreError> {
        let body = serde_json::to_string(pm).map_err(|source| StoreError::Encode {
            what: format!("post-mortem {}", pm.incident),
            source,
        })?;
        self.write(|tx| {
            tx.prepare_cached(
                "INSERT INTO postmortems (tenant, incident, generated_ms, body, markdown)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (tenant, incident) DO UPDATE SET generated_ms = excluded.generated_ms,
                     body = excluded.body, markdown = excluded.markdown",
            )?
            .execute((
                tenant.as_str(),
                &pm.incident,
                pm.generated,
                &body,
                markdown,
            ))?;
            Ok(())
        })
    }

    pub fn get_postmortem(
        &self,
        tenant: &TenantId,
        incident: &str,
    ) -> Result<Option<StoredPostmortem>, StoreError> {
        self.read(|conn| {
            let row: Option<(String, String)> = conn
                .prepare_cached(
                    "SELECT body, markdown FROM postmortems WHERE tenant = ?1 AND incident = ?2",
                )?
                .query_row((tenant.as_str(), incident), |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            row.map(|(body, markdown)| {
                let postmortem =
                    serde_json::from_str(&body).map_err(|source| StoreError::Corrupt {
                        what: "post-mortem".to_owned(),
                        source,
                    })?;
                Ok(StoredPostmortem {
                    postmortem,
                    markdown,
                })
            })
            .transpose()
        })
    }

    /// Forgets a post-mortem (its incident was reopened).
    pub fn delete_postmortem(&self, tenant: &TenantId, incident: &str) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.prepare_cached("DELETE FROM postmortems WHERE tenant = ?1 AND incident = ?2")?
                .execute((tenant.as_str(), incident))?;
            Ok(())
        })
    }

    /// Incidents resolved in the response stage's record (by a person, or `healed` or
    /// `mitigated` by the engine) that have no post-mortem: a crash or a failed write came
    /// between the resolution and the report. At most `limit`, oldest first.
    pub fn resolved_without_postmortem(
        &self,
        limit: usize,
    ) -> Result<Vec<(TenantId, String)>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT r.tenant, r.incident FROM incident_response r
                 WHERE r.status = 'resolved'
                   AND json_extract(r.body, '$.work.workflow.resolution') NOT IN ('quiet')
                   AND NOT EXISTS (SELECT 1 FROM postmortems p
                                   WHERE p.tenant = r.tenant AND p.incident = r.incident)
                 ORDER BY json_extract(r.body, '$.work.workflow.resolved_at'), r.tenant, r.incident
                 LIMIT ?1",
            )?;
            let rows = stmt.query_map([limit], |r| {
                Ok((TenantId::new(&r.get::<_, String>(0)?), r.get(1)?))
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    /// The tenant's findings with these ids (those that exist), in no particular order.
    pub fn findings_by_id(
        &self,
        tenant: &TenantId,
        ids: &[String],
    ) -> Result<Vec<Finding>, StoreError> {
        let mut out = Vec::with_capacity(ids.len());
        self.read(|conn| {
            let mut stmt =
                conn.prepare_cached("SELECT ts, body FROM findings WHERE tenant = ?1 AND id = ?2")?;
            for id in ids {
                let row: Option<(i64, String)> = stmt
                    .query_row((tenant.as_str(), id), |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?;
                if let Some((ts, body)) = row {
                    out.push(crate::findings::decode(tenant, ts, &body)?);
                }
            }
            Ok(out)
        })
    }

    /// Every stored action of one incident, by id.
    pub fn incident_actions(
        &self,
        tenant: &TenantId,
        incident: &str,
    ) -> Result<Vec<Action>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT body FROM actions WHERE tenant = ?1 AND incident = ?2 ORDER BY id",
            )?;
            let mut rows = stmt.query((tenant.as_str(), incident))?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(decode("action", crate::findings::body_text(row, 0)?)?);
            }
            Ok(out)
        })
    }

    /// Audit records about any of `subjects` from `since` on, oldest first, at most
    /// [`MAX_POSTMORTEM_AUDIT`].
    pub fn audit_about(
        &self,
        tenant: &TenantId,
        subjects: &[String],
        since: TimestampMs,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        if subjects.is_empty() {
            return Ok(Vec::new());
        }
        let marks = vec!["?"; subjects.len()].join(",");
        let sql = format!(
            "SELECT body FROM audit WHERE tenant = ? AND subject IN ({marks}) AND ts >= ?
             ORDER BY idx LIMIT {MAX_POSTMORTEM_AUDIT}"
        );
        let mut params = vec![Value::Text(tenant.as_str().to_owned())];
        params.extend(subjects.iter().map(|s| Value::Text(s.clone())));
        params.push(Value::Integer(since));
        self.read(|conn| {
            let mut stmt = conn.prepare(&sql)?;
            let mut rows = stmt.query(params_from_iter(params))?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                let e: AuditEntry = decode("audit entry", crate::findings::body_text(row, 0)?)?;
                out.push(e.record);
            }
            Ok(out)
        })
    }
}

fn decode<T: serde::de::DeserializeOwned>(what: &str, body: &str) -> Result<T, StoreError> {
    serde_json::from_str(body).map_err(|source| StoreError::Corrupt {
        what: what.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use antibody_core::{Incident, IncidentStatus, Resolution, Workflow};
    use antibody_respond::postmortem::{generate, render_markdown, Sources};
    use antibody_respond::AuditChain;
    use std::collections::BTreeMap;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("p.db")).unwrap();
        (dir, s)
    }

    fn resolved(t: &TenantId) -> Incident {
        let mut i = crate::conformance::incident(t, "i-1", "agent:x", IncidentStatus::Resolved, 9);
        i.workflow = Workflow {
            resolution: Some(Resolution::Healed),
            resolved_at: Some(10),
            ..Workflow::default()
        };
        i
    }

    #[test]
    fn postmortems_are_stored_replaced_deleted_and_isolated() {
        let (_d, s) = store();
        let (a, b) = (TenantId::new("a"), TenantId::new("b"));
        let inc = resolved(&a);
        let src = Sources {
            incident: &inc,
            findings: &[],
            actions: &[],
            audit: &[],
            now: 11,
        };
        let pm = generate(&src).unwrap();
        s.put_postmortem(&a, &pm, &render_markdown(&pm)).unwrap();
        let got = s.get_postmortem(&a, "i-1").unwrap().unwrap();
        assert_eq!(got.postmortem, pm);
        assert!(got.markdown.starts_with("# Post-mortem"));
        assert_eq!(s.get_postmortem(&b, "i-1").unwrap(), None);
        let again = Postmortem {
            generated: 12,
            ..pm.clone()
        };
        s.put_postmortem(&a, &again, "# v2").unwrap();
        assert_eq!(
            s.get_postmortem(&a, "i-1").unwrap().unwrap().markdown,
            "# v2"
        );
        s.delete_postmortem(&b, "i-1").unwrap();
        assert!(
            s.get_postmortem(&a, "i-1").unwrap().is_some(),
            "b cannot delete a's"
        );
        s.delete_postmortem(&a, "i-1").unwrap();
        assert_eq!(s.get_postmortem(&a, "i-1").unwrap(), None);
    }

    #[test]
    fn resolved_incidents_without_a_postmortem_are_found() {
        use antibody_respond::{IncidentOp, IncidentWork};
        let (_d, s) = store();
        let (a, b) = (TenantId::new("a"), TenantId::new("b"));
        let work = |op: Option<IncidentOp>, engine: Option<Resolution>, at: i64| {
            let mut w = IncidentWork::default();
            if let Some(op) = op {
                w.apply("i", &op, IncidentStatus::Open, "k-1", at).unwrap();
            }
            if let Some(r) = engine {
                w.engine_resolve(r, "why", at);
            }
            crate::IncidentResponse {
                risk: 0.0,
                confidence: 0.0,
                blast_radius: 0,
                diagnosis: Vec::new(),
                actions: Vec::new(),
                summary: None,
                work: w,
            }
        };
        let resolve = |r| IncidentOp::Resolve {
            resolution: r,
            root_cause: None,
        };
        let rows = [
            (
                a.clone(),
                "i-fp",
                work(Some(resolve(Resolution::FalsePositive)), None, 3),
            ),
            (
                a.clone(),
                "i-healed",
                work(None, Some(Resolution::Healed), 2),
            ),
            (
                a.clone(),
                "i-reported",
                work(Some(resolve(Resolution::External)), None, 1),
            ),
            (a.clone(), "i-open", work(Some(IncidentOp::Ack), None, 1)),
            (
                b.clone(),
                "i-b",
                work(Some(resolve(Resolution::Mitigated)), None, 4),
            ),
        ];
        let rows: Vec<_> = rows
            .into_iter()
            .map(|(t, id, w)| (t, id.to_owned(), w))
            .collect();
        s.put_incident_responses(&rows).unwrap();
        let inc = resolved(&a);
        let src = Sources {
            incident: &inc,
            findings: &[],
            actions: &[],
            audit: &[],
            now: 11,
        };
        let pm = Postmortem {
            incident: "i-reported".into(),
            ..generate(&src).unwrap()
        };
        s.put_postmortem(&a, &pm, "# md").unwrap();
        let got = s.resolved_without_postmortem(10).unwrap();
        let want = [(&a, "i-healed"), (&a, "i-fp"), (&b, "i-b")];
        let got: Vec<(&TenantId, &str)> = got.iter().map(|(t, i)| (t, i.as_str())).collect();
        assert_eq!(got, want);
        assert_eq!(s.resolved_without_postmortem(1).unwrap().len(), 1);
    }

    #[test]
    fn the_sources_of_a_postmortem_are_read_by_incident() {
        let (_d, s) = store();
        let (a, b) = (TenantId::new("a"), TenantId::new("b"));
        let f = crate::conformance::finding(&a, "f-1", 5, "agent:x", "token_spike");
        s.insert_findings(std::slice::from_ref(&f)).unwrap();
        let got = s
            .findings_by_id(&a, &["f-1".into(), "f-missing".into()])
            .unwrap();
        assert_eq!(
            got.iter().map(|f| f.id.as_str()).collect::<Vec<_>>(),
            ["f-1"]
        );
        assert!(s.findings_by_id(&b, &["f-1".into()]).unwrap().is_empty());

        let mut chain = AuditChain::new();
        let record = |ts: i64, subject: &str| antibody_respond::AuditRecord {
            ts,
            tenant: "a".into(),
            actor: "engine".into(),
            kind: "state".into(),
            subject: subject.into(),
            detail: subject.into(),
            data: BTreeMap::new(),
        };
        let entries: Vec<AuditEntry> = [(1, "agent:x"), (5, "i-1"), (6, "agent:y"), (7, "agent:x")]
            .iter()
            .map(|(ts, subj)| chain.append(record(*ts, subj)))
            .collect();
        s.append_audit(&entries).unwrap();
        let subjects = ["i-1".to_owned(), "agent:x".to_owned()];
        let about = s.audit_about(&a, &subjects, 2).unwrap();
        let seen: Vec<(i64, &str)> = about.iter().map(|r| (r.ts, r.subject.as_str())).collect();
        assert_eq!(seen, [(5, "i-1"), (7, "agent:x")]);
        assert!(s.audit_about(&b, &subjects, 0).unwrap().is_empty());
        assert!(s.audit_about(&a, &[], 0).unwrap().is_empty());

        let action = |id: &str, incident: &str| -> Action {
            serde_json::from_value(serde_json::json!({
                "id": id, "incident": incident, "kind": "rate_limit", "target": "agent:x",
                "params": {}, "mode": "auto", "status": "succeeded", "ttl": 60,
                "executor": "internal", "result": null,
                "why": {"playbook": "p", "rule": "r", "text": "t", "numbers": {}}
            }))
            .unwrap()
        };
        let acts = [
            (a.clone(), action("a-2", "i-1")),
            (a.clone(), action("a-1", "i-1")),
            (a.clone(), action("a-3", "i-2")),
            (b.clone(), action("a-4", "i-1")),
        ];
        s.upsert_actions(&acts, 1).unwrap();
        let ids: Vec<String> = s
            .incident_actions(&a, "i-1")
            .unwrap()
            .into_iter()
            .map(|x| x.id)
            .collect();
        assert_eq!(ids, ["a-1", "a-2"]);
    }
}
