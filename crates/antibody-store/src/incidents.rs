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
        let mut sql = String::from("SELECT body FROM incidents WHERE tenant = ?");
        let mut params = vec![Value::Text(tenant.as_str().to_owned())];
        if let Some(status) = query.status {
            sql.push_str(" AND status = ?");
            params.push(Value::Text(status.as_str().to_owned()));
        }
        if let Some(entity) = &query.entity {
            sql.push_str(" AND entity = ?");
            params.push(Value::Text(entity.clone()));
        }
        sql.push_str(" ORDER BY updated_ms DESC, id DESC LIMIT ?");
        params.push(Value::Integer(query.limit.min(MAX_LIMIT) as i64));
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&sql)?;
            let mut rows = stmt.query(params_from_iter(params))?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(decode(tenant, crate::findings::body_text(row, 0)?)?);
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
            let body: Option<String> = conn
                .prepare_cached("SELECT body FROM incidents WHERE tenant = ?1 AND id = ?2")?
                .query_row((tenant.as_str(), id), |r| r.get(0))
                .optional()?;
            body.map(|b| decode(tenant, &b)).transpose()
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

/// The body omits the tenant (the core type skips it); the column is authoritative.
fn decode(tenant: &TenantId, body: &str) -> Result<Incident, StoreError> {
    let mut i: Incident = serde_json::from_str(body).map_err(|source| StoreError::Corrupt {
        what: "incident".to_owned(),
        source,
    })?;
    i.tenant = tenant.clone();
    Ok(i)
}
