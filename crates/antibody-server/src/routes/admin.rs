//! Tenants and keys (API.md "Admin").

use super::bad_path;
use crate::auth::Auth;
use crate::error::ApiError;
use crate::state::AppState;
use antibody_store::Role;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

/// Admin bodies are tiny; anything larger is a mistake.
const MAX_ADMIN_BODY: usize = 64 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTenant {
    name: String,
}

fn valid_tenant_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

pub async fn create_tenant(
    State(st): State<AppState>,
    auth: Auth,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    super::require_bootstrap(&auth, "manage tenants")?;
    let req: NewTenant = super::json_body(body, MAX_ADMIN_BODY).await?;
    if !valid_tenant_name(&req.name) {
        return Err(ApiError::BadRequest(
            "`name` must be 1–64 characters of a–z, 0–9, `-` and `_`".into(),
        ));
    }
    let now = st.clock.now_ms();
    let (tenant, key) = st
        .db(move |s| {
            let created = s.create_tenant_with_admin(&req.name, now)?;
            s.make_durable()?;
            Ok(created)
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"id": tenant.id, "name": tenant.name, "admin_key": key.secret, "admin_key_id": key.info.id}),
        ),
    ))
}

pub async fn list_tenants(State(st): State<AppState>, auth: Auth) -> Result<Json<Value>, ApiError> {
    super::require_bootstrap(&auth, "manage tenants")?;
    let items = st.db(|s| s.list_tenants()).await?;
    Ok(Json(json!({"items": items})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKeyReq {
    role: String,
}

pub async fn create_key(
    State(st): State<AppState>,
    auth: Auth,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    auth.require(Role::Admin, "create keys")?;
    let req: NewKeyReq = super::json_body(body, MAX_ADMIN_BODY).await?;
    let role = Role::parse(&req.role).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "`role` must be one of ingest, analyst, admin; got `{}`",
            req.role
        ))
    })?;
    let tenant = auth.0.tenant.clone();
    let now = st.clock.now_ms();
    let key = st
        .db(move |s| {
            let key = s.create_key(&tenant, role, false, now)?;
            s.make_durable()?;
            Ok(key)
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"id": key.info.id, "key": key.secret, "role": role.as_str(), "tenant": key.info.tenant}),
        ),
    ))
}

pub async fn list_keys(State(st): State<AppState>, auth: Auth) -> Result<Json<Value>, ApiError> {
    auth.require(Role::Admin, "list keys")?;
    let tenant = auth.0.tenant.clone();
    let items = st.db(move |s| s.list_keys(&tenant)).await?;
    Ok(Json(json!({"items": items})))
}

pub async fn delete_key(
    State(st): State<AppState>,
    auth: Auth,
    id: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    auth.require(Role::Admin, "delete keys")?;
    let Path(id) = id.map_err(bad_path)?;
    let tenant = auth.0.tenant.clone();
    let key = id.clone();
    let deleted = st
        .db(move |s| {
            let deleted = s.delete_key(&tenant, &key)?;
            s.make_durable()?;
            Ok(deleted)
        })
        .await?;
    if !deleted {
        return Err(ApiError::NotFound(format!("key `{id}`")));
    }
    st.keys.clear();
    Ok(StatusCode::NO_CONTENT)
}
