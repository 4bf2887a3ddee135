//! `GET /v1/notifications`: the tenant's built-in inbox (see `respond::inbox`), newest
//! first, paged with `before` like findings.

use super::bad_query;
use super::findings::{parse_limit, parse_since};
use crate::auth::Auth;
use crate::error::ApiError;
use crate::state::AppState;
use antibody_store::{FindingCursor, NotificationKind, NotificationQuery, Role};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationParams {
    incident: Option<String>,
    entity: Option<String>,
    kind: Option<String>,
    since: Option<String>,
    limit: Option<String>,
    before: Option<String>,
}

pub async fn list(
    State(st): State<AppState>,
    auth: Auth,
    q: Result<Query<NotificationParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    auth.require(Role::Analyst, "read notifications")?;
    let Query(p) = q.map_err(bad_query)?;
    let query = NotificationQuery {
        incident: p.incident,
        entity: p.entity,
        kind: p.kind.as_deref().map(parse_kind).transpose()?,
        since_ms: p.since.as_deref().map(parse_since).transpose()?,
        limit: parse_limit(p.limit.as_deref())?,
        before: p.before.as_deref().map(parse_cursor).transpose()?,
    };
    let tenant = auth.0.tenant.clone();
    let limit = query.limit;
    let items = st
        .db(move |s| s.list_notifications(&tenant, &query))
        .await?;
    let next = (items.len() == limit)
        .then(|| items.last().map(|n| format!("{}:{}", n.ts, n.id)))
        .flatten();
    Ok(Json(json!({"items": items, "next": next})))
}

fn parse_kind(s: &str) -> Result<NotificationKind, ApiError> {
    NotificationKind::parse(s).ok_or_else(|| {
        let kinds: Vec<String> = NotificationKind::ALL
            .iter()
            .map(|k| format!("`{}`", k.as_str()))
            .collect();
        ApiError::BadRequest(format!("`kind` must be one of {}", kinds.join(", ")))
    })
}

fn parse_cursor(s: &str) -> Result<FindingCursor, ApiError> {
    FindingCursor::parse(s).ok_or_else(|| {
        ApiError::BadRequest("`before` is not a cursor from a previous page's `next`".into())
    })
}
