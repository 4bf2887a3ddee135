//! Incidents: mutable, upserted whole by `(tenant, id)` as the correlator updates them,
//! listed most recently updated first. The response stage's record of each incident
//! (assessment, actions, people's work) lives apart in `incident_response`, so neither
//! writer overwrites the other; reads merge the two, and `incidents.status` holds the status
//! shown: the record's once it has one, detection's before.

use crate::findings::{DEFAULT_LIMIT, MAX_LIMIT};
use crate::{Store, StoreError};
use antibody_core::{Incident, IncidentStatus, TenantId};
use rusqlite::types::Value;
use rusqlite::{params_from_iter, OptionalExtension, Transaction};

/// Filters for `list_incidents`. All present filters must match.
#[derive(Clone, Debug, PartialEq)]
pub struct IncidentQuery {
    pub status: Option<IncidentStatus>,
    pub entity: Option<String>,
    /// Capped at `MAX_LIMIT`.
    pub limit: usize,
}

impl Default for IncidentQuery {
    fn default() -> Self {
        Self {
            status: None,
            entity: None,
            limit: DEFAULT_LIMIT,
        }
    }
}

impl Store {
    /// Inserts or replaces each incident, in one transaction.
    pub fn upsert_incidents(&self, incidents: &[Incident]) -> Result<(), StoreError> {
        self.write(|tx| upsert_incidents(tx, incidents))
    }

    /// The tenant's incidents matching `query`, most recently updated first.
    pub fn list_incidents(
        &self,
        tenant: &TenantId,
        query: &IncidentQuery,
    ) -> Result<Vec<Incident>, StoreError> {
        let mut sql = String::from(
            "SELECT i.body, r.body FROM incidents i LEFT JOIN incident_response r
             ON r.tenant = i.tenant AND r.incident = i.id WHERE i.tenant = ?",
        );
        let mut params = vec![Value::Text(tenant.as_str().to_owned())];
        if let Some(status) = query.status {
            sql.push_str(" AND i.status = ?");
            params.push(Value::Text(status.as_str().to_owned()));
        }
        if let Some(entity) = &query.entity {
            sql.push_str(" AND i.entity = ?");
            params.push(Value::Text(entity.clone()));
        }
        sql.push_str(" ORDER BY i.updated_ms DESC, i.id DESC LIMIT ?");
        params.push(Value::Integer(query.limit.min(MAX_LIMIT) as i64));
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&sql)?;
            let mut rows = stmt.query(params_from_iter(params))?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                let response: Option<String> = row.get(1)?;
                out.push(decode(
                    tenant,
                    crate::findings::body_text(row, 0)?,
                    response.as_deref(),
                )?);
            }
            Ok(out)
        })
    }

    pub fn get_incident(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Option<Incident>, StoreError> {
        self.read(|conn| {
            let row: Option<(String, Option<String>)> = conn
                .prepare_cached(
                    "SELECT i.body, r.body FROM incidents i LEFT JOIN incident_response r
                     ON r.tenant = i.tenant AND r.incident = i.id WHERE i.tenant = ?1 AND i.id = ?2",
                )?
                .query_row((tenant.as_str(), id), |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            row.map(|(b, r)| decode(tenant, &b, r.as_deref())).transpose()
        })
    }
}

pub(crate) fn upsert_incidents(
    tx: &Transaction<'_>,
    incidents: &[Incident],
) -> Result<(), StoreError> {
    // A status people (or the engine's resolutions) set wins over detection's.
    let mut stmt = tx.prepare_cached(
        "INSERT INTO incidents (tenant, id, entity, status, updated_ms, body)
         VALUES (?1, ?2, ?3, COALESCE((SELECT r.status FROM incident_response r
                                      WHERE r.tenant = ?1 AND r.incident = ?2), ?4), ?5, ?6)
         ON CONFLICT (tenant, id) DO UPDATE SET
             entity = excluded.entity, status = excluded.status,
             updated_ms = excluded.updated_ms, body = excluded.body",
    )?;
    for i in incidents {
        check_finite(i)?;
        let body = serde_json::to_string(i).map_err(|source| StoreError::Encode {
            what: format!("incident {}", i.id),
            source,
        })?;
        stmt.execute((
            i.tenant.as_str(),
            &i.id,
            &i.entity,
            i.status.as_str(),
            i.updated,
            &body,
        ))?;
    }
    Ok(())
}

/// JSON has no NaN or infinity (serde writes `null`, which would not read back).
fn check_finite(i: &Incident) -> Result<(), StoreError> {
    let diagnosis_ok = i.diagnosis.iter().all(|h| h.confidence.is_finite());
    if i.risk.is_finite() && i.max_score.is_finite() && diagnosis_ok {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "incident {}: risk, max_score and confidences must be finite",
            i.id
        )))
    }
}

/// The body omits the tenant (the core type skips it); the column is authoritative. The
/// responder's view, when there is one, supplies risk, diagnosis, actions and people's work.
fn decode(tenant: &TenantId, body: &str, response: Option<&str>) -> Result<Incident, StoreError> {
    let mut i: Incident = serde_json::from_str(body).map_err(|source| StoreError::Corrupt {
        what: "incident".to_owned(),
        source,
    })?;
    i.tenant = tenant.clone();
    if let Some(r) = response {
        let r: IncidentResponse =
            serde_json::from_str(r).map_err(|source| StoreError::Corrupt {
                what: "incident response".to_owned(),
                source,
            })?;
        i.risk = r.risk;
        i.diagnosis = r.diagnosis;
        i.actions = r.actions;
        r.work.overlay(&mut i);
    }
    Ok(i)
}

/// What the responder adds to an incident.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct IncidentResponse {
    pub risk: f64,
    pub confidence: f64,
    pub blast_radius: u32,
    pub diagnosis: Vec<antibody_core::Hypothesis>,
    /// Short views of the incident's actions: `{id, kind, target, status}`.
    pub actions: Vec<serde_json::Value>,
    /// The template or investigator summary (`GET /v1/incidents/{id}` shows it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<antibody_respond::investigate::Summary>,
    /// People's work on the incident and the engine's resolutions.
    #[serde(default)]
    pub work: antibody_respond::IncidentWork,
}

impl Store {
    /// Writes the responder's view of incidents (replacing earlier versions).
    pub fn put_incident_responses(
        &self,
        items: &[(TenantId, String, IncidentResponse)],
    ) -> Result<(), StoreError> {
        self.write(|tx| put_incident_responses(tx, items))
    }
}

pub(crate) fn put_incident_responses(
    tx: &Transaction<'_>,
    items: &[(TenantId, String, IncidentResponse)],
) -> Result<(), StoreError> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO incident_response (tenant, incident, body, status) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (tenant, incident) DO UPDATE SET
             body = excluded.body, status = excluded.status",
    )?;
    let mut shown = tx.prepare_cached(
        "UPDATE incidents SET status = ?3 WHERE tenant = ?1 AND id = ?2 AND status != ?3",
    )?;
    for (tenant, incident, r) in items {
        if !(r.risk.is_finite() && r.confidence.is_finite()) {
            return Err(StoreError::Invalid(format!(
                "incident {incident}: risk and confidence must be finite"
            )));
        }
        let body = serde_json::to_string(r).map_err(|source| StoreError::Encode {
            what: format!("incident response {incident}"),
            source,
        })?;
        let status = r.work.status.map(|s| s.as_str());
        stmt.execute((tenant.as_str(), incident, &body, status))?;
        if let Some(status) = status {
            shown.execute((tenant.as_str(), incident, status))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use antibody_core::Resolution;
    use antibody_respond::{IncidentOp, IncidentWork};

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("i.db")).unwrap();
        (dir, s)
    }

    fn incident(t: &TenantId, id: &str, status: IncidentStatus, updated: i64) -> Incident {
        crate::conformance::incident(t, id, "agent:x", status, updated)
    }

    fn response(work: IncidentWork) -> IncidentResponse {
        IncidentResponse {
            risk: 6.0,
            confidence: 0.5,
            blast_radius: 1,
            diagnosis: vec![],
            actions: vec![],
            summary: None,
            work,
        }
    }

    fn by_status(s: &Store, t: &TenantId, status: IncidentStatus) -> Vec<String> {
        let q = IncidentQuery {
            status: Some(status),
            ..IncidentQuery::default()
        };
        let items = s.list_incidents(t, &q).unwrap();
        items.into_iter().map(|i| i.id).collect()
    }

    #[test]
    fn a_later_detection_update_never_overwrites_peoples_work() {
        let (_d, s) = store();
        let t = TenantId::new("a");
        s.upsert_incidents(&[incident(&t, "i-1", IncidentStatus::Open, 10)])
            .unwrap();
        let mut work = IncidentWork::default();
        work.apply("i-1", &IncidentOp::Ack, IncidentStatus::Open, "k-1", 20)
            .unwrap();
        let assign = IncidentOp::Assign { to: "bob".into() };
        work.apply("i-1", &assign, IncidentStatus::Open, "k-1", 21)
            .unwrap();
        s.put_incident_responses(&[(t.clone(), "i-1".into(), response(work))])
            .unwrap();
        assert_eq!(by_status(&s, &t, IncidentStatus::Acknowledged), ["i-1"]);
        // Detection keeps updating the incident, then closes it quietly.
        s.upsert_incidents(&[incident(&t, "i-1", IncidentStatus::Open, 30)])
            .unwrap();
        s.upsert_incidents(&[incident(&t, "i-1", IncidentStatus::Resolved, 40)])
            .unwrap();
        let got = s.get_incident(&t, "i-1").unwrap().unwrap();
        assert_eq!(got.status, IncidentStatus::Acknowledged);
        assert_eq!(got.updated, 40, "detection's facts move on");
        assert_eq!(got.workflow.assignee.as_deref(), Some("bob"));
        assert_eq!(got.workflow.acknowledged_by.as_deref(), Some("k-1"));
        assert!(got
            .timeline
            .iter()
            .any(|e| e.event == "acknowledged by k-1"));
        assert_eq!(by_status(&s, &t, IncidentStatus::Acknowledged), ["i-1"]);
        assert!(by_status(&s, &t, IncidentStatus::Resolved).is_empty());
    }

    #[test]
    fn an_untouched_incident_shows_detections_status_and_resolution() {
        let (_d, s) = store();
        let t = TenantId::new("a");
        let mut closed = incident(&t, "i-1", IncidentStatus::Resolved, 10);
        closed.workflow.resolution = Some(Resolution::Quiet);
        s.upsert_incidents(&[closed, incident(&t, "i-2", IncidentStatus::Open, 5)])
            .unwrap();
        assert_eq!(by_status(&s, &t, IncidentStatus::Resolved), ["i-1"]);
        assert_eq!(by_status(&s, &t, IncidentStatus::Open), ["i-2"]);
        // The engine resolving it (healed) is a status of its own, over detection's open.
        let mut work = IncidentWork::default();
        assert!(work.engine_resolve(Resolution::Healed, "probation passed", 20));
        s.put_incident_responses(&[(t.clone(), "i-2".into(), response(work))])
            .unwrap();
        assert_eq!(by_status(&s, &t, IncidentStatus::Resolved), ["i-1", "i-2"]);
        let got = s.get_incident(&t, "i-2").unwrap().unwrap();
        assert_eq!(got.workflow.resolution, Some(Resolution::Healed));
        // Another tenant's incident of the same id is untouched.
        let b = TenantId::new("b");
        s.upsert_incidents(&[incident(&b, "i-2", IncidentStatus::Open, 5)])
            .unwrap();
        assert_eq!(by_status(&s, &b, IncidentStatus::Open), ["i-2"]);
    }

    #[test]
    fn a_database_with_closed_incidents_migrates_to_resolved() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        let old_body = r#"{"id":"i-1","entity":"agent:a","status":"closed","opened":0,
            "updated":5,"risk":4.5,"severity":"medium","kinds":[],"finding_count":1,
            "max_score":0.5,"diagnosis":[],"findings":[],"actions":[],"timeline":[]}"#;
        {
            let conn = rusqlite::Connection::open(&path).unwrap();
            for sql in &crate::schema::MIGRATIONS[..5] {
                conn.execute_batch(sql).unwrap();
            }
            conn.pragma_update(None, "user_version", 5).unwrap();
            conn.execute(
                "INSERT INTO incidents (tenant, id, entity, status, updated_ms, body)
                 VALUES ('a', 'i-1', 'agent:a', 'closed', 5, ?1)",
                [old_body],
            )
            .unwrap();
        }
        let s = Store::open(&path).unwrap();
        let t = TenantId::new("a");
        assert_eq!(by_status(&s, &t, IncidentStatus::Resolved), ["i-1"]);
        let got = s.get_incident(&t, "i-1").unwrap().unwrap();
        assert_eq!(got.status, IncidentStatus::Resolved);
    }
}
