//! Read endpoints: findings, incidents, one entity. Every query is scoped to the caller's
//! tenant; another tenant's id is simply not found.

use super::{bad_path, bad_query};
use crate::auth::Auth;
use crate::error::ApiError;
use crate::pipeline::visible::merge_page;
use crate::pipeline::SubmitError;
use crate::state::AppState;
use antibody_core::clock::{format_rfc3339, parse_rfc3339};
use antibody_core::IncidentStatus;
use antibody_respond::LifecycleState;
use antibody_store::{FindingCursor, FindingQuery, IncidentQuery, Role, DEFAULT_LIMIT, MAX_LIMIT};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FindingParams {
    entity: Option<String>,
    kind: Option<String>,
    since: Option<String>,
    limit: Option<String>,
    before: Option<String>,
}

pub(super) fn parse_limit(limit: Option<&str>) -> Result<usize, ApiError> {
    match limit {
        None => Ok(DEFAULT_LIMIT),
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(ApiError::BadRequest(format!(
                "`limit` must be an integer from 1 to {MAX_LIMIT}"
            ))),
        },
    }
}

/// `since` as RFC 3339 or epoch milliseconds.
pub(super) fn parse_since(s: &str) -> Result<i64, ApiError> {
    s.parse::<i64>()
        .ok()
        .or_else(|| parse_rfc3339(s))
        .ok_or_else(|| {
            ApiError::BadRequest(
                "`since` must be RFC 3339 (2026-11-21T10:00:00Z) or epoch milliseconds".into(),
            )
        })
}

pub async fn list_findings(
    State(st): State<AppState>,
    auth: Auth,
    q: Result<Query<FindingParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    auth.require(Role::Analyst, "read findings")?;
    let Query(p) = q.map_err(bad_query)?;
    let query = FindingQuery {
        entity: p.entity,
        kind: p.kind,
        since_ms: p.since.as_deref().map(parse_since).transpose()?,
        limit: parse_limit(p.limit.as_deref())?,
        before: match p.before.as_deref() {
            None => None,
            Some(c) => Some(FindingCursor::parse(c).ok_or_else(|| {
                ApiError::BadRequest(
                    "`before` is not a cursor from a previous page's `next`".into(),
                )
            })?),
        },
    };
    let tenant = auth.0.tenant.clone();
    let limit = query.limit;
    // Uncommitted findings first, then the store: see `pipeline::visible`.
    let early = st.pipeline.visible.matching(&tenant, &query);
    let stored = st.db(move |s| s.list_findings(&tenant, &query)).await?;
    let items = merge_page(stored, early, limit);
    let next = (items.len() == limit)
        .then(|| items.last().map(|f| format!("{}:{}", f.ts, f.id)))
        .flatten();
    Ok(Json(json!({"items": items, "next": next})))
}

pub async fn get_finding(
    State(st): State<AppState>,
    auth: Auth,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    auth.require(Role::Analyst, "read findings")?;
    let Path(id) = id.map_err(bad_path)?;
    let tenant = auth.0.tenant.clone();
    let key = id.clone();
    let early = st.pipeline.visible.get(&tenant, &key);
    let f = match early {
        Some(f) => Some(f),
        None => st.db(move |s| s.get_finding(&tenant, &key)).await?,
    };
    let f = f.ok_or_else(|| ApiError::NotFound(format!("finding `{id}`")))?;
    Ok(Json(json!(f)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentParams {
    status: Option<String>,
    entity: Option<String>,
    limit: Option<String>,
}

pub async fn list_incidents(
    State(st): State<AppState>,
    auth: Auth,
    q: Result<Query<IncidentParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    auth.require(Role::Analyst, "read incidents")?;
    let Query(p) = q.map_err(bad_query)?;
    // `closed` is the old name of `resolved`, kept for older clients.
    let status = match p.status.as_deref() {
        None => None,
        Some(s) => Some(IncidentStatus::parse(s).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "`status` must be `open`, `acknowledged` or `resolved` (or `closed`), not `{s}`"
            ))
        })?),
    };
    let query = IncidentQuery {
        status,
        entity: p.entity,
        limit: parse_limit(p.limit.as_deref())?,
    };
    let tenant = auth.0.tenant.clone();
    st.pipeline.visible.settled(&tenant).await;
    let items = st.db(move |s| s.list_incidents(&tenant, &query)).await?;
    Ok(Json(json!({"items": items})))
}

pub async fn get_incident(
    State(st): State<AppState>,
    auth: Auth,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    auth.require(Role::Analyst, "read incidents")?;
    let Path(id) = id.map_err(bad_path)?;
    let tenant = auth.0.tenant.clone();
    let key = id.clone();
    // Findings shown before their commit name this incident already: see `pipeline::visible`.
    st.pipeline.visible.settled(&tenant).await;
    let (inc, response) = st
        .db(move |s| {
            Ok((
                s.get_incident(&tenant, &key)?,
                s.get_incident_response(&tenant, &key)?,
            ))
        })
        .await?;
    let inc = inc.ok_or_else(|| ApiError::NotFound(format!("incident `{id}`")))?;
    let mut body = json!(inc);
    // The responder's summary (template or investigator), once it assessed the incident.
    if let Some(summary) = response.and_then(|r| r.summary) {
        body["summary"] = json!(summary);
    }
    Ok(Json(body))
}

pub async fn get_entity(
    State(st): State<AppState>,
    auth: Auth,
    entity: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    auth.require(Role::Analyst, "read entities")?;
    let Path(entity) = entity.map_err(bad_path)?;
    let stopped = |_| ApiError::Unavailable("the engine is not running".into());
    let view = st
        .pipeline
        .entity(&auth.0.tenant, &entity)
        .await
        .map_err(|e| match e {
            SubmitError::Overloaded | SubmitError::Stopped => stopped(()),
        })?;
    // The response engine owns the lifecycle; detection knows the facts.
    let q = crate::respond::ReadQuery::State {
        tenant: auth.0.tenant.clone(),
        entity: entity.clone(),
    };
    let held = match st.pipeline.read(q).await.map_err(|_| stopped(()))? {
        crate::respond::ReadReply::State(s) => s,
        _ => return Err(ApiError::Internal("unexpected reply".into())),
    };
    let Some(v) = view else {
        // Detection forgot it (idle) but the responder still holds it: say so.
        if held == LifecycleState::Healthy {
            return Err(ApiError::NotFound(format!("entity `{entity}`")));
        }
        return Ok(Json(json!({
            "entity": entity, "state": held, "baselines": {}, "last_seen": null,
            "open_incident": null,
        })));
    };
    let baselines: serde_json::Map<String, Value> = v
        .baselines
        .iter()
        .map(|(m, b)| (m.clone(), json!({"mean": b.mean, "std": b.std, "n": b.n})))
        .collect();
    Ok(Json(json!({
        "entity": v.entity,
        "state": held.shown(v.learning),
        "baselines": baselines,
        "last_seen": format_rfc3339(v.last_seen),
        "open_incident": v.open_incident,
    })))
}
