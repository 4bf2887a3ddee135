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
use antibody_respond::Action;
use antibody_respond::LifecycleState;
use antibody_store::Role;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EntityParams {
    #[schemars(with = "Option<LifecycleState>")]
    state: Option<String>,
    /// The entity kind (the part before `:`).
    kind: Option<String>,
    /// A substring of the entity.
    q: Option<String>,
    /// 1–1000 (default 100).
    #[schemars(with = "super::findings::LimitParam", range(min = 1, max = 1000))]
    limit: Option<String>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// A page of entities, and the count of each state.
#[derive(Serialize, JsonSchema)]
pub struct EntityPage {
    pub items: Vec<EntityRow>,
    pub counts: BTreeMap<LifecycleState, u64>,
    pub next_cursor: Option<String>,
}

#[derive(Serialize, JsonSchema)]
pub struct EntityRow {
    pub entity: String,
    pub state: LifecycleState,
    #[schemars(with = "Option<antibody_core::clock::Rfc3339>")]
    pub last_seen: Option<String>,
    pub open_incident: Option<String>,
}

/// What heal-all did: the actions, and the entities that changed state.
#[derive(Serialize, JsonSchema)]
pub struct Healed {
    pub items: Vec<Action>,
    pub entities: Vec<String>,
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
) -> Result<Json<EntityPage>, ApiError> {
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
    let items = page
        .rows
        .iter()
        .map(|r| EntityRow {
            entity: r.entity.clone(),
            state: r.state,
            last_seen: r.last_seen.map(format_rfc3339),
            open_incident: r.open_incident.clone(),
        })
        .collect();
    Ok(Json(EntityPage {
        items,
        counts: page.counts,
        next_cursor: next,
    }))
}

/// `POST /v1/entities/heal-all`: heal-now for every contained or exhausted entity.
pub async fn heal_all(
    State(st): State<AppState>,
    auth: Auth,
    body: axum::body::Body,
) -> Result<Json<Healed>, ApiError> {
    auth.require(Role::Analyst, "heal entities")?;
    super::empty_body(body).await?;
    let c = changed(&st, &auth, HumanCmd::HealAll).await?;
    Ok(Json(Healed {
        items: c.actions,
        entities: c.entities,
    }))
}
