//! Incidents: mutable, upserted whole by `(tenant, id)` as the correlator updates them,
//! listed most recently updated first.

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
    let mut stmt = tx.prepare_cached(
        "INSERT INTO incidents (tenant, id, entity, status, updated_ms, body)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
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
/// responder's view, when there is one, supplies risk, confidence, blast radius, diagnosis
/// and actions.
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
        "INSERT INTO incident_response (tenant, incident, body) VALUES (?1, ?2, ?3)
         ON CONFLICT (tenant, incident) DO UPDATE SET body = excluded.body",
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
        stmt.execute((tenant.as_str(), incident, &body))?;
    }
    Ok(())
}
