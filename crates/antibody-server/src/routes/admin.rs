//! Tenants and keys (API.md "Admin"). Every creation and deletion is audited in the
//! acting key's tenant chain.

use super::bad_path;
use super::Items;
use crate::audit::{record, AuditNote};
use crate::auth::Auth;
use crate::error::ApiError;
use crate::state::AppState;
use antibody_core::TenantId;
use antibody_store::Role;
use antibody_store::{KeyInfo, Tenant};
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Admin bodies are tiny; anything larger is a mistake.
const MAX_ADMIN_BODY: usize = 64 * 1024;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    /// 1–64 characters of a–z, 0–9, `-` and `_`.
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^[a-z0-9_-]+$"))]
    name: String,
}

/// A new tenant and its first admin key (the secret is shown this once).
#[derive(Serialize, JsonSchema)]
pub struct CreatedTenant {
    pub id: TenantId,
    pub name: String,
    pub admin_key: String,
    pub admin_key_id: String,
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
) -> Result<(StatusCode, Json<CreatedTenant>), ApiError> {
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
    let note = crate::audit::tenant_created(&tenant, &key.info.id);
    record(&st.pipeline, &auth.0.tenant, &auth.0.id, note).await;
    Ok((
        StatusCode::CREATED,
        Json(CreatedTenant {
            id: tenant.id,
            name: tenant.name,
            admin_key: key.secret,
            admin_key_id: key.info.id,
        }),
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

pub async fn list_tenants(
    State(st): State<AppState>,
    auth: Auth,
) -> Result<Json<Items<Tenant>>, ApiError> {
    super::require_bootstrap(&auth, "manage tenants")?;
    let items = st.db(|s| s.list_tenants()).await?;
    Ok(Items::of(items))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKeyReq {
    #[schemars(with = "Role")]
    role: String,
    /// `30d`, `12h`, … (up to a year); absent: the key does not expire.
    #[serde(default)]
    expires_in: Option<String>,
}

#[derive(Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateReq {
    /// How long the old key keeps working (default 24 h).
    #[serde(default)]
    grace: Option<String>,
    /// The new key's lifetime; absent: it does not expire.
    #[serde(default)]
    expires_in: Option<String>,
}

const DEFAULT_GRACE: &str = "24h";

/// `now + text` as a timestamp, for `field`; `None` when absent.
fn expiry(field: &str, text: Option<&str>, now: i64) -> Result<Option<i64>, ApiError> {
    text.map(|t| {
        antibody_store::expiry_after(now, t).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "`{field}` must be a duration such as `30d`, `12h` or `90m` (at most a year); \
                 got `{t}`"
            ))
        })
    })
    .transpose()
}

/// A new key; `key` is its secret, shown this once.
#[derive(Serialize, JsonSchema)]
pub struct CreatedKey {
    pub id: String,
    pub key: String,
    pub role: Role,
    pub tenant: TenantId,
    pub expires_ms: Option<i64>,
    /// After a rotation: the key replaced, and when it stops working.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaces: Option<Replaced>,
}

#[derive(Serialize, JsonSchema)]
pub struct Replaced {
    pub id: String,
    pub expires_ms: Option<i64>,
}

impl From<antibody_store::NewKey> for CreatedKey {
    fn from(key: antibody_store::NewKey) -> Self {
        Self {
            id: key.info.id,
            key: key.secret,
            role: key.info.role,
            tenant: key.info.tenant,
            expires_ms: key.info.expires_ms,
            replaces: None,
        }
    }
}

pub async fn create_key(
    State(st): State<AppState>,
    auth: Auth,
    body: Body,
) -> Result<(StatusCode, Json<CreatedKey>), ApiError> {
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
    let expires = expiry("expires_in", req.expires_in.as_deref(), now)?;
    let key = st
        .db(move |s| {
            let key = s.create_key(&tenant, role, false, now, expires)?;
            s.make_durable()?;
            Ok(key)
        })
        .await?;
    record(
        &st.pipeline,
        &auth.0.tenant,
        &auth.0.id,
        crate::audit::key_created(&key.info),
    )
    .await;
    Ok((StatusCode::CREATED, Json(CreatedKey::from(key))))
}

pub async fn rotate_key(
    State(st): State<AppState>,
    auth: Auth,
    id: Result<Path<String>, PathRejection>,
    body: Body,
) -> Result<(StatusCode, Json<CreatedKey>), ApiError> {
    auth.require(Role::Admin, "rotate keys")?;
    let Path(id) = id.map_err(bad_path)?;
    let req: RotateReq = super::json_body_or_default(body, MAX_ADMIN_BODY).await?;
    let now = st.clock.now_ms();
    let grace = expiry(
        "grace",
        Some(req.grace.as_deref().unwrap_or(DEFAULT_GRACE)),
        0,
    )?
    .unwrap_or(0);
    let expires = expiry("expires_in", req.expires_in.as_deref(), now)?;
    let (tenant, key) = (auth.0.tenant.clone(), id.clone());
    let target = st
        .db(move |s| Ok(s.list_keys(&tenant)?.into_iter().find(|k| k.id == key)))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("key `{id}`")))?;
    if target.bootstrap {
        super::require_bootstrap(&auth, "rotate the bootstrap admin key")?;
    }
    let (tenant, key) = (auth.0.tenant.clone(), id.clone());
    let rotated = st
        .db(move |s| {
            let r = s.rotate_key(&tenant, &key, now, grace, expires)?;
            s.make_durable()?;
            Ok(r)
        })
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("key `{id}` (or it has expired)")))?;
    st.keys.clear();
    let old_until = rotated
        .old
        .expires_ms
        .map(antibody_core::clock::format_rfc3339)
        .unwrap_or_default();
    let note = AuditNote::new(
        "key_rotate",
        &id,
        format!(
            "{} key {id} rotated to {}; {id} works until {old_until}",
            rotated.old.role, rotated.new.info.id
        ),
    )
    .with("role", rotated.old.role.as_str())
    .with("new_key", rotated.new.info.id.clone())
    .with("old_expires", old_until.clone());
    record(&st.pipeline, &auth.0.tenant, &auth.0.id, note).await;
    let mut out = CreatedKey::from(rotated.new);
    out.replaces = Some(Replaced {
        id,
        expires_ms: rotated.old.expires_ms,
    });
    Ok((StatusCode::CREATED, Json(out)))
}

pub async fn list_keys(
    State(st): State<AppState>,
    auth: Auth,
) -> Result<Json<Items<KeyInfo>>, ApiError> {
    auth.require(Role::Admin, "list keys")?;
    let tenant = auth.0.tenant.clone();
    let items = st.db(move |s| s.list_keys(&tenant)).await?;
    Ok(Items::of(items))
}

pub async fn delete_key(
    State(st): State<AppState>,
    auth: Auth,
    id: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    auth.require(Role::Admin, "delete keys")?;
    let Path(id) = id.map_err(bad_path)?;
    let (tenant, key) = (auth.0.tenant.clone(), id.clone());
    let target = st
        .db(move |s| Ok(s.list_keys(&tenant)?.into_iter().find(|k| k.id == key)))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("key `{id}`")))?;
    // The bootstrap key owns what every tenant shares: only it may give itself up.
    if target.bootstrap {
        super::require_bootstrap(&auth, "delete the bootstrap admin key")?;
    }
    let (tenant, key) = (auth.0.tenant.clone(), id.clone());
    let now = st.clock.now_ms();
    let deleted = st
        .db(move |s| {
            let deleted = s.delete_key(&tenant, &key, now)?;
            s.make_durable()?;
            Ok(deleted)
        })
        .await?;
    let Some(deleted) = deleted else {
        return Err(ApiError::NotFound(format!("key `{id}`")));
    };
    st.keys.clear();
    let role = deleted.role;
    let note = AuditNote::new("key_delete", &id, format!("{role} key {id} deleted"))
        .with("role", role.as_str());
    record(&st.pipeline, &auth.0.tenant, &auth.0.id, note).await;
    Ok(StatusCode::NO_CONTENT)
}
