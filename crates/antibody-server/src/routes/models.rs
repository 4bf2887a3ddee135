//! The model registry over HTTP: upload, list (with live counters, shadow agreement and
//! drift), promote, roll back, and the review queue of low-confidence model findings.

use super::bad_path;
use super::Items;
use crate::auth::Auth;
use crate::error::ApiError;
use crate::models::{self, BindingSpec, SlotChange};
use crate::state::AppState;
use antibody_core::Finding;
use antibody_detect::ModelStats;
use antibody_store::{ModelFormat, ModelRecord, ModelSlot, Role, DEFAULT_LIMIT, MAX_LIMIT};
use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use base64::Engine as _;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UploadReq {
    name: String,
    #[serde(default)]
    format: ModelFormat,
    /// The model file, base64.
    file: String,
    #[serde(flatten)]
    binding: BindingSpec,
    /// `active` or `shadow`; default: active for a new name, else shadow.
    slot: Option<ModelSlot>,
}

pub async fn upload(
    State(st): State<AppState>,
    auth: Auth,
    body: Body,
) -> Result<(StatusCode, Json<ModelRecord>), ApiError> {
    auth.require(Role::Admin, "upload models")?;
    let limit = st.models.cfg.max_file_bytes / 3 * 4 + (1 << 20);
    let req: UploadReq = super::json_body(body, limit).await?;
    models::validate_name(&req.name)?;
    let file = base64::engine::general_purpose::STANDARD
        .decode(req.file.as_bytes())
        .map_err(|e| ApiError::BadRequest(format!("`file` is not base64: {e}")))?;
    let slot = match req.slot {
        None | Some(ModelSlot::Active | ModelSlot::Shadow) => req.slot,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "`slot` must be `active` or `shadow`, not `{other}`"
            )))
        }
    };
    let tenant = auth.0.tenant.clone();
    let (format, spec, cfg) = (req.format, req.binding.clone(), st.models.cfg.clone());
    let bytes = file.clone();
    let loaded =
        tokio::task::spawn_blocking(move || models::load_file(format, &bytes, &spec, &cfg))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?
            .map_err(|e| ApiError::BadRequest(format!("the model cannot be served: {e}")))?;
    let _guard = st.models.lock.lock().await;
    let name = req.name.clone();
    let t = tenant.clone();
    let version = st.db(move |s| s.next_model_version(&t, &name)).await?;
    let rec = ModelRecord {
        id: models::version_id(&req.name, version),
        name: req.name.clone(),
        version,
        slot: ModelSlot::New,
        format: req.format,
        binding: serde_json::to_value(&req.binding)
            .map_err(|e| ApiError::Internal(e.to_string()))?,
        info: loaded.info,
        created_ms: st.clock.now_ms(),
        sha256: hex::encode(Sha256::digest(&file)),
        replaced: None,
    };
    // The mapping is checked against the model's inputs before anything is stored.
    let mut probe = rec.clone();
    probe.slot = ModelSlot::Shadow;
    models::binding(&tenant, &probe, loaded.scorer)
        .map_err(|e| ApiError::BadRequest(format!("the model cannot be bound: {e}")))?;
    let (t, r) = (tenant.clone(), rec.clone());
    st.db(move |s| s.insert_model(&t, &r, &file)).await?;
    let versions = versions_of(&st, &tenant, &rec.name).await?;
    let slot = slot.unwrap_or_else(|| {
        let has_active = versions.iter().any(|v| v.slot == ModelSlot::Active);
        if has_active {
            ModelSlot::Shadow
        } else {
            ModelSlot::Active
        }
    });
    let changed = models::plan(&versions, SlotChange::Enter { id: &rec.id, slot })?;
    apply(&st, &auth, "model_upload", &rec.id, changed).await?;
    let stored = get(&st, &tenant, &rec.id).await?;
    Ok((StatusCode::CREATED, Json(stored)))
}

async fn versions_of(
    st: &AppState,
    tenant: &antibody_core::TenantId,
    name: &str,
) -> Result<Vec<ModelRecord>, ApiError> {
    let (t, n) = (tenant.clone(), name.to_owned());
    let all = st.db(move |s| s.list_models(&t)).await?;
    Ok(all.into_iter().filter(|r| r.name == n).collect())
}

async fn get(
    st: &AppState,
    tenant: &antibody_core::TenantId,
    id: &str,
) -> Result<ModelRecord, ApiError> {
    let (t, i) = (tenant.clone(), id.to_owned());
    st.db(move |s| s.get_model(&t, &i))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("model `{id}`")))
}

/// Stores slot changes, hands the engine the new set, and audits the change.
pub(crate) async fn apply(
    st: &AppState,
    auth: &Auth,
    what: &str,
    subject: &str,
    changed: Vec<ModelRecord>,
) -> Result<(), ApiError> {
    let tenant = auth.0.tenant.clone();
    let c = changed.clone();
    st.db(move |s| s.set_model_slots(&tenant, &c)).await?;
    reload(st).await?;
    let detail = changed
        .iter()
        .map(|r| format!("{} → {}", r.id, r.slot))
        .collect::<Vec<_>>()
        .join(", ");
    crate::models::audit(st, &auth.0.tenant, &auth.0.id, what, subject, &detail).await;
    Ok(())
}

/// Reloads every served version and swaps the engine's model set.
pub(crate) async fn reload(st: &AppState) -> Result<(), ApiError> {
    let cfg = st.models.cfg.clone();
    let set = st.db(move |s| models::load_live(s, &cfg)).await?;
    tracing::info!(bindings = set.bindings().len(), "serving models");
    st.pipeline.set_models(std::sync::Arc::new(set));
    Ok(())
}

/// A model version with what the engine counted since it was served.
#[derive(Serialize, JsonSchema)]
pub struct ModelView {
    #[serde(flatten)]
    pub record: ModelRecord,
    /// None while the version is not served.
    pub live: Option<LiveCounters>,
}

/// Live counters of a served version.
#[derive(Serialize, JsonSchema)]
pub struct LiveCounters {
    pub scored: u64,
    pub reported: u64,
    pub review: u64,
    pub unusable: u64,
    pub shadow_compared: u64,
    /// Share of compared events where the shadow agreed with the active version.
    pub shadow_agreement: Option<f64>,
    pub drift: Drift,
}

#[derive(Serialize, JsonSchema)]
pub struct Drift {
    pub alarms: u64,
    pub window_rows: u64,
    /// Population stability index per feature over the window.
    pub psi: std::collections::BTreeMap<String, f64>,
}

/// The versions whose slot a promotion or rollback changed.
#[derive(Serialize, JsonSchema)]
pub struct SlotsChanged {
    pub changed: Vec<ModelRecord>,
}

pub async fn list(
    State(st): State<AppState>,
    auth: Auth,
) -> Result<Json<Items<ModelView>>, ApiError> {
    auth.require(Role::Analyst, "read models")?;
    let tenant = auth.0.tenant.clone();
    let t = tenant.clone();
    let records = st.db(move |s| s.list_models(&t)).await?;
    let stats = st
        .pipeline
        .model_stats()
        .await
        .map_err(|_| ApiError::Unavailable("the engine is not running".into()))?;
    let items = records
        .into_iter()
        .map(|record| {
            let live = stats.get(&(tenant.clone(), record.id.clone())).map(live);
            ModelView { record, live }
        })
        .collect();
    Ok(Items::of(items))
}

fn live(s: &ModelStats) -> LiveCounters {
    let agreement = (s.compared > 0).then(|| s.agreed as f64 / s.compared as f64);
    LiveCounters {
        scored: s.scored,
        reported: s.reported,
        review: s.review,
        unusable: s.unusable,
        shadow_compared: s.compared,
        shadow_agreement: agreement,
        drift: Drift {
            alarms: s.drift_alarms,
            window_rows: s.drift_rows,
            psi: s.psi.clone(),
        },
    }
}

pub async fn promote(
    State(st): State<AppState>,
    auth: Auth,
    id: Result<Path<String>, PathRejection>,
    body: Body,
) -> Result<Json<SlotsChanged>, ApiError> {
    super::empty_body(body).await?;
    change(st, auth, id, "model_promote", |id| SlotChange::Promote {
        id,
    })
    .await
}

pub async fn rollback(
    State(st): State<AppState>,
    auth: Auth,
    id: Result<Path<String>, PathRejection>,
    body: Body,
) -> Result<Json<SlotsChanged>, ApiError> {
    super::empty_body(body).await?;
    change(st, auth, id, "model_rollback", |id| SlotChange::Rollback {
        id,
    })
    .await
}

async fn change(
    st: AppState,
    auth: Auth,
    id: Result<Path<String>, PathRejection>,
    what: &str,
    op: impl for<'a> Fn(&'a str) -> SlotChange<'a>,
) -> Result<Json<SlotsChanged>, ApiError> {
    auth.require(Role::Admin, "change which model is served")?;
    let Path(id) = id.map_err(bad_path)?;
    let _guard = st.models.lock.lock().await;
    let rec = get(&st, &auth.0.tenant, &id).await?;
    let versions = versions_of(&st, &auth.0.tenant, &rec.name).await?;
    let changed = models::plan(&versions, op(&id))?;
    apply(&st, &auth, what, &id, changed.clone()).await?;
    Ok(Json(SlotsChanged { changed }))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewParams {
    /// 1–1000 (default 100).
    #[schemars(range(min = 1, max = 1000))]
    limit: Option<usize>,
}

pub async fn review_queue(
    State(st): State<AppState>,
    auth: Auth,
    q: Result<Query<ReviewParams>, QueryRejection>,
) -> Result<Json<Items<Finding>>, ApiError> {
    auth.require(Role::Analyst, "read the review queue")?;
    let Query(p) = q.map_err(super::bad_query)?;
    let limit = p.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "`limit` must be from 1 to {MAX_LIMIT}"
        )));
    }
    let tenant = auth.0.tenant.clone();
    let items = st.db(move |s| s.review_queue(&tenant, limit)).await?;
    Ok(Items::of(items))
}
