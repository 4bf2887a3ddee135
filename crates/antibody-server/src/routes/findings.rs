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
use antibody_core::{Finding, Incident};
use antibody_respond::LifecycleState;
use antibody_store::{FindingCursor, FindingQuery, IncidentQuery, Role, DEFAULT_LIMIT, MAX_LIMIT};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::Json;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `limit` as documented: the handlers read it as text to answer a clear error.
pub(super) type LimitParam = Option<u32>;

/// `since` as [`parse_since`] reads it: RFC 3339 or epoch milliseconds.
pub(super) struct SinceParam;

impl JsonSchema for SinceParam {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Since".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"anyOf": [
            {"type": "string", "format": "date-time"},
            {"type": "string", "pattern": "^-?[0-9]{1,18}$"},
        ]})
    }
}

/// A `before` cursor as `FindingCursor::parse` reads it: the `next` of a page, `<ts>:<id>`.
pub(super) struct CursorParam;

impl JsonSchema for CursorParam {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Cursor".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string", "pattern": "^-?[0-9]{1,18}:"})
    }
}

/// A page, newest first; `next` is the `before` of the next page (none: the last).
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "{T}Page")]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FindingParams {
    entity: Option<String>,
    kind: Option<String>,
    /// RFC 3339 or epoch milliseconds.
    #[schemars(with = "Option<SinceParam>")]
    since: Option<String>,
    /// 1–1000 (default 100).
    #[schemars(with = "LimitParam", range(min = 1, max = 1000))]
    limit: Option<String>,
    /// The `next` of the previous page.
    #[schemars(with = "Option<CursorParam>")]
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
) -> Result<Json<Page<Finding>>, ApiError> {
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
    Ok(Json(Page { items, next }))
}

pub async fn get_finding(
    State(st): State<AppState>,
    auth: Auth,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Finding>, ApiError> {
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
    Ok(Json(f))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IncidentParams {
    /// `open`, `acknowledged` or `resolved` (`closed`: the old name of `resolved`).
    #[schemars(with = "Option<IncidentStatus>")]
    status: Option<String>,
    entity: Option<String>,
    /// 1–1000 (default 100).
    #[schemars(with = "LimitParam", range(min = 1, max = 1000))]
    limit: Option<String>,
}

/// An incident, with the responder's summary once it assessed it.
#[derive(Serialize, JsonSchema)]
pub struct IncidentView {
    #[serde(flatten)]
    pub incident: Incident,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<antibody_respond::investigate::Summary>,
}

/// An entity: its lifecycle state and what detection learned of it.
#[derive(Serialize, JsonSchema)]
pub struct EntityView {
    pub entity: String,
    pub state: LifecycleState,
    pub baselines: BTreeMap<String, Baseline>,
    #[schemars(with = "Option<antibody_core::clock::Rfc3339>")]
    pub last_seen: Option<String>,
    pub open_incident: Option<String>,
}

#[derive(Serialize, JsonSchema)]
pub struct Baseline {
    pub mean: f64,
    pub std: f64,
    pub n: u32,
}

pub async fn list_incidents(
    State(st): State<AppState>,
    auth: Auth,
    q: Result<Query<IncidentParams>, QueryRejection>,
) -> Result<Json<super::Items<Incident>>, ApiError> {
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
    Ok(super::Items::of(items))
}

pub async fn get_incident(
    State(st): State<AppState>,
    auth: Auth,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<IncidentView>, ApiError> {
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
    // The responder's summary (template or investigator), once it assessed the incident.
    Ok(Json(IncidentView {
        incident: inc,
        summary: response.and_then(|r| r.summary),
    }))
}

pub async fn get_entity(
    State(st): State<AppState>,
    auth: Auth,
    entity: Result<Path<String>, PathRejection>,
) -> Result<Json<EntityView>, ApiError> {
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
        return Ok(Json(EntityView {
            entity,
            state: held,
            baselines: BTreeMap::new(),
            last_seen: None,
            open_incident: None,
        }));
    };
    let baselines = v
        .baselines
        .iter()
        .map(|(m, b)| {
            let b = Baseline {
                mean: b.mean,
                std: b.std,
                n: b.n,
            };
            (m.clone(), b)
        })
        .collect();
    Ok(Json(EntityView {
        entity: v.entity,
        state: held.shown(v.learning),
        baselines,
        last_seen: Some(format_rfc3339(v.last_seen)),
        open_incident: v.open_incident,
    }))
}
