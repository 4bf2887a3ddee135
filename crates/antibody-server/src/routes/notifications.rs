//! `GET /v1/notifications`: the tenant's built-in inbox (see `respond::inbox`), newest
//! first, paged with `before` like findings.

use super::bad_query;
use super::findings::{parse_limit, parse_since};
use super::findings::{CursorParam, LimitParam, Page, SinceParam};
use crate::auth::Auth;
use crate::error::ApiError;
use crate::state::AppState;
use antibody_store::Notification;
use antibody_store::{FindingCursor, NotificationKind, NotificationQuery, Role};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use schemars::JsonSchema;
use serde::Deserialize;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NotificationParams {
    incident: Option<String>,
    entity: Option<String>,
    #[schemars(with = "Option<NotificationKind>")]
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

pub async fn list(
    State(st): State<AppState>,
    auth: Auth,
    q: Result<Query<NotificationParams>, QueryRejection>,
) -> Result<Json<Page<Notification>>, ApiError> {
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
    Ok(Json(Page { items, next }))
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
