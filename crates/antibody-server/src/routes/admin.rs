//! Tenants and keys (API.md "Admin"). Every creation and deletion is audited in the
//! acting key's tenant chain.

use super::bad_path;
use crate::audit::{record, AuditNote};
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
    let note = AuditNote::new(
        "tenant_create",
        tenant.id.as_str(),
        format!(
            "tenant `{}` created with admin key {}",
            tenant.name, key.info.id
        ),
    )
    .with("name", tenant.name.clone())
    .with("admin_key", key.info.id.clone());
    record(&st.pipeline, &auth.0.tenant, &auth.0.id, note).await;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"id": tenant.id, "name": tenant.name, "admin_key": key.secret, "admin_key_id": key.info.id}),
        ),
    ))
}

/// Deletes a tenant and revokes its keys; its records stay (the audit chain above all).
pub async fn delete_tenant(
    State(st): State<AppState>,
    auth: Auth,
    id: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    super::require_bootstrap(&auth, "manage tenants")?;
    let Path(id) = id.map_err(bad_path)?;
    let tenant = antibody_core::TenantId::new(&id);
    let t = tenant.clone();
    let deleted = st
        .db(move |s| {
            let keys = s.list_keys(&t)?.len();
            let deleted = s.delete_tenant(&t)?;
            s.make_durable()?;
            Ok(deleted.then_some(keys))
        })
        .await?;
    let Some(keys) = deleted else {
        return Err(ApiError::NotFound(format!("tenant `{id}`")));
    };
    st.keys.clear();
    let note = AuditNote::new(
        "tenant_delete",
        &id,
        format!("tenant {id} deleted; {keys} keys revoked"),
    )
    .with("keys_revoked", keys.to_string());
    record(&st.pipeline, &auth.0.tenant, &auth.0.id, note).await;
    Ok(StatusCode::NO_CONTENT)
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
    let note = AuditNote::new(
        "key_create",
        &key.info.id,
        format!("{} key {} created", role.as_str(), key.info.id),
    )
    .with("role", role.as_str());
    record(&st.pipeline, &auth.0.tenant, &auth.0.id, note).await;
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
    // The role is read first, for the audit record.
    let deleted = st
        .db(move |s| {
            let role = s
                .list_keys(&tenant)?
                .into_iter()
                .find(|k| k.id == key)
                .map(|k| k.role);
            let deleted = s.delete_key(&tenant, &key)?;
            s.make_durable()?;
            Ok(role.filter(|_| deleted))
        })
        .await?;
    let Some(role) = deleted else {
        return Err(ApiError::NotFound(format!("key `{id}`")));
    };
    st.keys.clear();
    let note = AuditNote::new("key_delete", &id, format!("{role} key {id} deleted"))
        .with("role", role.as_str());
    record(&st.pipeline, &auth.0.tenant, &auth.0.id, note).await;
    Ok(StatusCode::NO_CONTENT)
}
