//! The entity list and heal-all. Listing logic lives in [`crate::entities`]; these
//! handlers parse, ask the response stage for its states, and shape the JSON.

use super::bad_query;
use super::respond::changed;
use crate::auth::Auth;
use crate::entities::{cursor, parse_cursor, Listing};
use crate::error::ApiError;
use crate::respond::{HumanCmd, ReadQuery, ReadReply};
use crate::state::AppState;
use antibody_core::clock::format_rfc3339;
use antibody_respond::LifecycleState;
use antibody_store::Role;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntityParams {
    state: Option<String>,
    kind: Option<String>,
    q: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

fn parse(p: EntityParams) -> Result<Listing, ApiError> {
    let state = match p.state.as_deref() {
        None => None,
        Some(s) => Some(LifecycleState::parse(s).ok_or_else(|| {
            let all: Vec<&str> = LifecycleState::ALL.iter().map(|s| s.as_str()).collect();
            ApiError::BadRequest(format!(
                "`state` must be one of {}, not `{s}`",
                all.join(", ")
            ))
        })?),
    };
    let limit = super::findings::parse_limit(p.limit.as_deref())?;
    let after = match p.cursor.as_deref() {
        None => None,
        Some(c) => Some(parse_cursor(c).ok_or_else(|| {
            ApiError::BadRequest("`cursor` is not a `next_cursor` from a previous page".into())
        })?),
    };
    Ok(Listing {
        kind: p.kind.filter(|k| !k.is_empty()),
        q: p.q.filter(|q| !q.is_empty()),
        state,
        after,
        limit,
        held: Default::default(),
    })
}

/// `GET /v1/entities`: a page of the tenant's entities with the responder's states, and
/// the count of each state (after `kind` and `q`, before `state`).
pub async fn list_entities(
    State(st): State<AppState>,
    auth: Auth,
    q: Result<Query<EntityParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    auth.require(Role::Analyst, "read entities")?;
    let Query(p) = q.map_err(bad_query)?;
    let mut listing = parse(p)?;
    let tenant = auth.0.tenant.clone();
    let stopped = |_| ApiError::Unavailable("the engine is not running".into());
    listing.held = match st
        .pipeline
        .read(ReadQuery::States {
            tenant: tenant.clone(),
        })
        .await
        .map_err(stopped)?
    {
        ReadReply::States(held) => held,
        _ => return Err(ApiError::Internal("unexpected reply".into())),
    };
    let page = st
        .pipeline
        .entities(&tenant, listing)
        .await
        .map_err(stopped)?;
    let next = page
        .more
        .then(|| page.rows.last().map(|r| cursor(&r.entity)))
        .flatten();
    let items: Vec<Value> = page
        .rows
        .iter()
        .map(|r| {
            json!({
                "entity": r.entity,
                "state": r.state,
                "last_seen": r.last_seen.map(format_rfc3339),
                "open_incident": r.open_incident,
            })
        })
        .collect();
    let counts: serde_json::Map<String, Value> = page
        .counts
        .iter()
        .map(|(s, n)| (s.as_str().to_owned(), json!(n)))
        .collect();
    Ok(Json(
        json!({"items": items, "counts": counts, "next_cursor": next}),
    ))
}

/// `POST /v1/entities/heal-all`: heal-now for every contained or exhausted entity.
pub async fn heal_all(State(st): State<AppState>, auth: Auth) -> Result<Json<Value>, ApiError> {
    auth.require(Role::Analyst, "heal entities")?;
    let c = changed(&st, &auth, HumanCmd::HealAll).await?;
    Ok(Json(json!({"items": c.actions, "entities": c.entities})))
}
