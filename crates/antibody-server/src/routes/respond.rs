//! The response API (API.md "Response"): assets, actions and approvals, healing, the
//! blocklist and verdicts for enforcement points, feedback, and the audit chain.

use super::Items;
use super::{bad_path, bad_query};
use crate::auth::Auth;
use crate::error::ApiError;
use crate::pipeline::SubmitError;
use crate::respond::{Human, HumanCmd};
use crate::state::AppState;
use antibody_core::clock::format_rfc3339;
use antibody_respond::enforce::{Budget, Rate};
use antibody_respond::{Action, ActionStatus, Asset, Verdict};
use antibody_respond::{AuditEntry, VerdictKind};
use antibody_store::{ActionQuery, AuditQuery, Role, DEFAULT_LIMIT, MAX_LIMIT};
use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

const MAX_BODY: usize = 4 << 20;

fn stopped(_: SubmitError) -> ApiError {
    ApiError::Unavailable("the response engine is not running".into())
}

async fn human(st: &AppState, auth: &Auth, cmd: HumanCmd) -> Result<Vec<Action>, ApiError> {
    Ok(changed(st, auth, cmd).await?.actions)
}

/// A person's command to the response stage; what it changed.
pub(super) async fn changed(
    st: &AppState,
    auth: &Auth,
    cmd: HumanCmd,
) -> Result<crate::respond::Changed, ApiError> {
    let h = Human {
        tenant: auth.0.tenant.clone(),
        actor: auth.0.id.clone(),
        cmd,
    };
    Ok(st.pipeline.human(h).await.map_err(stopped)??)
}

// ---- assets

pub async fn put_asset(
    State(st): State<AppState>,
    auth: Auth,
    entity: Result<Path<String>, PathRejection>,
    body: Body,
) -> Result<Json<Asset>, ApiError> {
    auth.require(Role::Admin, "describe assets")?;
    let Path(entity) = entity.map_err(bad_path)?;
    let mut asset: Asset = super::json_body(body, MAX_BODY).await?;
    if !asset.entity.is_empty() && asset.entity != entity {
        return Err(ApiError::BadRequest(
            "`entity` in the body differs from the path".into(),
        ));
    }
    asset.entity = entity;
    store_assets(&st, &auth, vec![asset.clone()]).await?;
    Ok(Json(asset))
}

/// How many assets a bulk import stored.
#[derive(Serialize, JsonSchema)]
pub struct StoredCount {
    pub stored: usize,
}

/// Bulk import: a JSON array of assets, all validated before any is stored.
pub async fn post_assets(
    State(st): State<AppState>,
    auth: Auth,
    body: Body,
) -> Result<Json<StoredCount>, ApiError> {
    auth.require(Role::Admin, "describe assets")?;
    let assets: Vec<Asset> = super::json_body(body, MAX_BODY).await?;
    if let Err(errors) = antibody_respond::asset::validate_bulk(&assets) {
        let msg: Vec<String> = errors
            .iter()
            .map(|(i, e)| format!("item {i}: {e}"))
            .collect();
        return Err(ApiError::Invalid {
            code: "invalid_asset",
            message: msg.join("; "),
        });
    }
    let n = assets.len();
    store_assets(&st, &auth, assets).await?;
    Ok(Json(StoredCount { stored: n }))
}

async fn store_assets(st: &AppState, auth: &Auth, assets: Vec<Asset>) -> Result<(), ApiError> {
    for a in &assets {
        a.validate()?;
    }
    let tenant = auth.0.tenant.clone();
    let now = st.clock.now_ms();
    let copy = assets.clone();
    st.db(move |s| s.put_assets(&tenant, &copy, now)).await?;
    human(st, auth, HumanCmd::PutAssets(assets)).await?;
    Ok(())
}

pub async fn list_assets(
    State(st): State<AppState>,
    auth: Auth,
) -> Result<Json<Items<Asset>>, ApiError> {
    auth.require(Role::Analyst, "read assets")?;
    let tenant = auth.0.tenant.clone();
    let items = st.db(move |s| s.list_assets(&tenant)).await?;
    Ok(Items::of(items))
}

// ---- actions

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionParams {
    #[schemars(with = "Option<ActionStatus>")]
    status: Option<String>,
    /// 1–1000 (default 100).
    #[schemars(range(min = 1, max = 1000))]
    limit: Option<usize>,
}

fn parse_status(s: &str) -> Result<ActionStatus, ApiError> {
    ActionStatus::parse(s).ok_or_else(|| {
        let all: Vec<&str> = ActionStatus::ALL.iter().map(|v| v.as_str()).collect();
        ApiError::BadRequest(format!("`status` must be one of {}", all.join(", ")))
    })
}

pub async fn list_actions(
    State(st): State<AppState>,
    auth: Auth,
    q: Result<Query<ActionParams>, QueryRejection>,
) -> Result<Json<Items<Action>>, ApiError> {
    auth.require(Role::Analyst, "read actions")?;
    let Query(p) = q.map_err(bad_query)?;
    let status = p.status.as_deref().map(parse_status).transpose()?;
    let limit = p.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "`limit` must be from 1 to {MAX_LIMIT}"
        )));
    }
    let tenant = auth.0.tenant.clone();
    let query = ActionQuery { status, limit };
    let items = st.db(move |s| s.list_actions(&tenant, &query)).await?;
    Ok(Items::of(items))
}

pub async fn get_action(
    State(st): State<AppState>,
    auth: Auth,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Action>, ApiError> {
    auth.require(Role::Analyst, "read actions")?;
    let Path(id) = id.map_err(bad_path)?;
    let tenant = auth.0.tenant.clone();
    let key = id.clone();
    let a = st.db(move |s| s.get_action(&tenant, &key)).await?;
    Ok(Json(a.ok_or_else(|| {
        ApiError::NotFound(format!("action `{id}`"))
    })?))
}

async fn on_action(
    st: AppState,
    auth: Auth,
    id: Result<Path<String>, PathRejection>,
    body: Body,
    verb: &str,
) -> Result<Json<Items<Action>>, ApiError> {
    auth.require(Role::Analyst, "answer actions")?;
    let Path(id) = id.map_err(bad_path)?;
    super::empty_body(body).await?;
    let cmd = match verb {
        "approve" => HumanCmd::Approve { id },
        "reject" => HumanCmd::Reject { id },
        _ => HumanCmd::Undo { id },
    };
    Ok(Items::of(human(&st, &auth, cmd).await?))
}

pub async fn approve(
    State(st): State<AppState>,
    auth: Auth,
    id: Result<Path<String>, PathRejection>,
    body: Body,
) -> Result<Json<Items<Action>>, ApiError> {
    on_action(st, auth, id, body, "approve").await
}

pub async fn reject(
    State(st): State<AppState>,
    auth: Auth,
    id: Result<Path<String>, PathRejection>,
    body: Body,
) -> Result<Json<Items<Action>>, ApiError> {
    on_action(st, auth, id, body, "reject").await
}

pub async fn undo(
    State(st): State<AppState>,
    auth: Auth,
    id: Result<Path<String>, PathRejection>,
    body: Body,
) -> Result<Json<Items<Action>>, ApiError> {
    on_action(st, auth, id, body, "undo").await
}

pub async fn approve_all(
    State(st): State<AppState>,
    auth: Auth,
    body: Body,
) -> Result<Json<Items<Action>>, ApiError> {
    auth.require(Role::Analyst, "answer actions")?;
    super::empty_body(body).await?;
    Ok(Items::of(human(&st, &auth, HumanCmd::ApproveAll).await?))
}

pub async fn reject_all(
    State(st): State<AppState>,
    auth: Auth,
    body: Body,
) -> Result<Json<Items<Action>>, ApiError> {
    auth.require(Role::Analyst, "answer actions")?;
    super::empty_body(body).await?;
    Ok(Items::of(human(&st, &auth, HumanCmd::RejectAll).await?))
}

pub async fn heal(
    State(st): State<AppState>,
    auth: Auth,
    entity: Result<Path<String>, PathRejection>,
    body: Body,
) -> Result<Json<Items<Action>>, ApiError> {
    auth.require(Role::Analyst, "heal entities")?;
    let Path(entity) = entity.map_err(bad_path)?;
    super::empty_body(body).await?;
    Ok(Items::of(
        human(&st, &auth, HumanCmd::Heal { entity }).await?,
    ))
}

// ---- enforcement points: any key of the tenant (bouncers and SDKs use ingest keys)

/// A verdict as the API writes it (`until` as RFC 3339).
#[derive(Serialize, JsonSchema)]
pub struct VerdictBody {
    pub verdict: VerdictKind,
    #[schemars(with = "Option<antibody_core::clock::Rfc3339>")]
    pub until: Option<String>,
    #[schemars(with = "Option<String>")]
    pub incident: Option<std::sync::Arc<str>>,
    pub rate: Option<Rate>,
    #[schemars(with = "Vec<String>")]
    pub revoked_tools: Vec<std::sync::Arc<str>>,
    pub budget: Option<Budget>,
}

impl From<&Verdict> for VerdictBody {
    fn from(v: &Verdict) -> Self {
        Self {
            verdict: v.verdict,
            until: v.until.map(format_rfc3339),
            incident: v.incident.clone(),
            rate: v.rate,
            revoked_tools: v.revoked_tools.clone(),
            budget: v.budget,
        }
    }
}

/// `{"verdict", "until", "incident", "rate", "revoked_tools", "budget"}` from the published
/// enforcement view: no lock, no round trip to the response thread.
pub async fn verdict(
    State(st): State<AppState>,
    auth: Auth,
    entity: Result<Path<String>, PathRejection>,
) -> Result<Json<VerdictBody>, ApiError> {
    let Path(entity) = entity.map_err(bad_path)?;
    let now = st.clock.now_ms();
    let v = st
        .pipeline
        .enforcement
        .verdict(&auth.0.tenant, &entity, now);
    Ok(Json(VerdictBody::from(&*v)))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BlocklistParams {
    /// `text` (default: one target per line) or `json`.
    #[schemars(with = "Option<TextFormat>")]
    format: Option<String>,
}

/// The `format` values of the blocklist.
#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)] // the handler reads the text; this lists its values
enum TextFormat {
    Text,
    Json,
}

/// One blocked address or CIDR block (`?format=json`).
#[derive(Serialize, JsonSchema)]
pub struct BlockItem {
    #[schemars(with = "String")]
    pub target: std::sync::Arc<str>,
    #[schemars(with = "Option<antibody_core::clock::Rfc3339>")]
    pub until: Option<String>,
    /// Seconds left; none while it holds until released.
    pub ttl: Option<i64>,
    #[schemars(with = "String")]
    pub action: std::sync::Arc<str>,
    #[schemars(with = "Option<String>")]
    pub incident: Option<std::sync::Arc<str>>,
}

pub async fn blocklist(
    State(st): State<AppState>,
    auth: Auth,
    q: Result<Query<BlocklistParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(p) = q.map_err(bad_query)?;
    let json_wanted = match p.format.as_deref() {
        None | Some("text") => false,
        Some("json") => true,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "`format` must be `text` or `json`, not `{other}`"
            )))
        }
    };
    let now = st.clock.now_ms();
    let entries = st.pipeline.enforcement.blocklist(&auth.0.tenant, now);
    if json_wanted {
        let items: Vec<BlockItem> = entries
            .iter()
            .map(|e| BlockItem {
                target: e.target.clone(),
                until: e.until.map(format_rfc3339),
                ttl: e.until.map(|u| ((u - now).max(0) + 999) / 1000),
                action: e.action.clone(),
                incident: e.incident.clone(),
            })
            .collect();
        return Ok(Items::of(items).into_response());
    }
    let mut text = String::new();
    for e in &entries {
        text.push_str(&e.target);
        text.push('\n');
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response())
}

// ---- feedback

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedbackReq {
    /// The finding labelled (or name an `incident`).
    finding: Option<String>,
    incident: Option<String>,
    label: Label,
    /// A diagnosis cause (`brute_force`, …): re-ranks diagnoses for the tenant.
    root_cause: Option<String>,
}

/// A person's verdict on a finding or incident.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Label {
    TruePositive,
    FalsePositive,
}

/// What a label did.
#[derive(Serialize, JsonSchema)]
pub struct FeedbackDone {
    pub label: Label,
    /// The finding kinds the label covers.
    pub kinds: Vec<String>,
    pub root_cause: Option<String>,
    /// The model of a model finding retrains with it.
    pub retraining: bool,
    /// A web profile learned the request a false positive flagged.
    pub learned: bool,
}

pub async fn feedback(
    State(st): State<AppState>,
    auth: Auth,
    body: Body,
) -> Result<(StatusCode, Json<FeedbackDone>), ApiError> {
    auth.require(Role::Analyst, "give feedback")?;
    let req: FeedbackReq = super::json_body(body, MAX_BODY).await?;
    let tenant = auth.0.tenant.clone();
    let (finding, incident) = (req.finding.clone(), req.incident.clone());
    // The finding may have been shown before its commit: see `pipeline::visible`.
    st.pipeline.visible.settled(&tenant).await;
    let (kinds, model_finding) = st
        .db(move |s| {
            if let Some(id) = incident {
                return Ok((s.get_incident(&tenant, &id)?.map(|i| i.kinds), None));
            }
            match finding {
                Some(id) => {
                    let f = s.get_finding(&tenant, &id)?;
                    Ok((f.as_ref().map(|f| vec![f.kind.clone()]), f))
                }
                None => Ok((None, None)),
            }
        })
        .await?;
    if req.finding.is_none() && req.incident.is_none() {
        return Err(ApiError::BadRequest(
            "name a `finding` or an `incident`".into(),
        ));
    }
    let kinds = kinds.ok_or_else(|| ApiError::NotFound("the finding or incident".into()))?;
    // A label on a model finding also feeds that model's retraining (active learning).
    let mut retraining = false;
    if let Some(f) = model_finding
        .as_ref()
        .filter(|f| f.kind.starts_with("model:"))
    {
        let threat = req.label == Label::TruePositive;
        let threat_type = req.root_cause.clone().filter(|_| threat);
        retraining =
            crate::models::on_label(&st, &auth.0.tenant, &auth.0.id, f, threat, threat_type)
                .await?;
    }
    // A false positive of a web profile teaches the profile the request it flagged.
    let mut learned = false;
    if let Some(f) = &model_finding {
        if f.detector == antibody_core::Detector::Profile && req.label == Label::FalsePositive {
            super::webprof::learn_false_positive(&st, &auth, f).await?;
            learned = true;
        }
    }
    if let Some(root_cause) = req.root_cause.clone() {
        human(
            &st,
            &auth,
            HumanCmd::Feedback {
                kinds: kinds.clone(),
                root_cause,
            },
        )
        .await?;
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(FeedbackDone {
            label: req.label,
            kinds,
            root_cause: req.root_cause,
            retraining,
            learned,
        }),
    ))
}

// ---- audit

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    /// The `next_after` of the previous page.
    after: Option<u64>,
    subject: Option<String>,
    actor: Option<String>,
    kind: Option<String>,
    /// 1–100000 (default 100; 100000 for NDJSON).
    #[schemars(range(min = 1, max = 100_000))]
    limit: Option<usize>,
    /// `json` (default) or `ndjson` (one entry per line).
    #[schemars(with = "Option<AuditFormat>")]
    format: Option<String>,
}

/// The `format` values of the audit chain.
#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)] // the handler reads the text; this lists its values
enum AuditFormat {
    Json,
    Ndjson,
}

/// A page of the audit chain, oldest first.
#[derive(Serialize, JsonSchema)]
pub struct AuditPage {
    pub items: Vec<AuditEntry>,
    /// The `after` of the next page (none when this one is empty).
    pub next_after: Option<u64>,
}

/// The result of re-hashing the chain.
#[derive(Serialize, JsonSchema)]
pub struct ChainCheck {
    pub ok: bool,
    /// Entries checked.
    pub entries: u64,
    /// The first entry that does not fit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broken_at: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

pub async fn audit(
    State(st): State<AppState>,
    auth: Auth,
    q: Result<Query<AuditParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    auth.require(Role::Analyst, "read the audit log")?;
    let Query(p) = q.map_err(bad_query)?;
    let ndjson = match p.format.as_deref() {
        None | Some("json") => false,
        Some("ndjson") => true,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "`format` must be `json` or `ndjson`, not `{other}`"
            )))
        }
    };
    let limit = p
        .limit
        .unwrap_or(if ndjson { 100_000 } else { DEFAULT_LIMIT });
    if limit == 0 || limit > 100_000 {
        return Err(ApiError::BadRequest(
            "`limit` must be from 1 to 100000".into(),
        ));
    }
    let tenant = auth.0.tenant.clone();
    let query = AuditQuery {
        after: p.after,
        subject: p.subject,
        actor: p.actor,
        kind: p.kind,
        limit,
    };
    let entries = st.db(move |s| s.list_audit(&tenant, &query)).await?;
    if ndjson {
        let mut out = String::new();
        for e in &entries {
            out.push_str(&serde_json::to_string(e).map_err(|e| ApiError::Internal(e.to_string()))?);
            out.push('\n');
        }
        return Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], out).into_response());
    }
    let next = entries.last().map(|e| e.index);
    Ok(Json(AuditPage {
        items: entries,
        next_after: next,
    })
    .into_response())
}

/// Re-hashes the tenant's whole chain and reports the first entry that does not fit.
pub async fn audit_verify(
    State(st): State<AppState>,
    auth: Auth,
) -> Result<Json<ChainCheck>, ApiError> {
    auth.require(Role::Analyst, "verify the audit log")?;
    let tenant = auth.0.tenant.clone();
    let result = st
        .db(move |s| {
            let mut after = None;
            let mut checked = 0u64;
            let mut chain: Vec<antibody_respond::AuditEntry> = Vec::new();
            loop {
                let q = AuditQuery {
                    after,
                    limit: 50_000,
                    ..Default::default()
                };
                let page = s.list_audit(&tenant, &q)?;
                if page.is_empty() {
                    break;
                }
                after = page.last().map(|e| e.index);
                checked += page.len() as u64;
                chain.extend(page);
            }
            Ok((checked, antibody_respond::verify(&chain)))
        })
        .await?;
    Ok(Json(match result {
        (entries, Ok(())) => ChainCheck {
            ok: true,
            entries,
            broken_at: None,
            reason: None,
        },
        (entries, Err(b)) => ChainCheck {
            ok: false,
            entries,
            broken_at: Some(b.index),
            reason: Some(b.reason),
        },
    }))
}
