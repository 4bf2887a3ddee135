//! Playbooks, rules and the response policy (API.md "Tenant layers"), for the key's tenant:
//! what is in force (the tenant's own documents over the global layer), its documents, their
//! versions and diffs, changes and rollbacks. `?scope=global` addresses the global layer
//! instead: readable by any analyst, replaced only by the bootstrap admin (the files of
//! `<data-dir>/rules/` and `<data-dir>/playbooks/`). The work is in [`crate::layers`].

use super::{bad_path, bad_query};
use crate::auth::Auth;
use crate::error::ApiError;
use crate::layers::{self, Layer, LayerError, Put, Stored};
use crate::state::AppState;
use antibody_respond::{Mode, TenantPolicy};
use antibody_rules::RuleInfo;
use antibody_store::{Doc, DocVersion};
use antibody_store::{DocFormat, DocKind, Role};
use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::Json;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A document kind addressed by a route (`/v1/playbooks/…`, `/v1/rules/…`).
pub trait Kind: Send + Sync + 'static {
    const KIND: DocKind;
}

pub struct Playbooks;
impl Kind for Playbooks {
    const KIND: DocKind = DocKind::Playbooks;
}

pub struct Rules;
impl Kind for Rules {
    const KIND: DocKind = DocKind::Rules;
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    #[default]
    Tenant,
    Global,
}

#[derive(Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScopeQuery {
    #[serde(default)]
    scope: Scope,
}

impl ScopeQuery {
    fn layer(&self) -> Layer {
        match self.scope {
            Scope::Tenant => Layer::Tenant,
            Scope::Global => Layer::Global,
        }
    }
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DiffQuery {
    /// The version to compare with (default: the one before).
    diff: Option<u32>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackReq {
    version: u32,
}

fn api(e: LayerError) -> ApiError {
    match e {
        LayerError::Invalid { code, errors } => ApiError::Invalid {
            code,
            message: errors,
        },
        LayerError::BadRequest(m) => ApiError::BadRequest(m),
        LayerError::NotFound(m) => ApiError::NotFound(m),
        LayerError::Store(e) => ApiError::from(e),
        LayerError::Io(m) => ApiError::Internal(m),
    }
}

/// Runs a catalog call (store and compile work) off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, LayerError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(api)
}

/// A stored change: the tenant's new version, or the global file replaced.
#[derive(Serialize, JsonSchema)]
pub struct StoredDoc {
    pub name: String,
    /// Rules or playbooks in force for the tenant (or globally) now.
    pub in_force: usize,
    pub layer: Layer,
    #[serde(flatten)]
    pub version: Option<DocVersion>,
    /// The global file replaced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

/// Appends the change to the caller's tenant chain and shapes the answer.
async fn stored(st: &AppState, auth: &Auth, s: Stored, in_force: usize) -> Json<StoredDoc> {
    let out = StoredDoc {
        layer: if s.version.is_some() {
            Layer::Tenant
        } else {
            Layer::Global
        },
        file: s.version.is_none().then(|| format!("{}.yml", s.name)),
        name: s.name,
        in_force,
        version: s.version,
    };
    crate::audit::record(&st.pipeline, &auth.0.tenant, &auth.0.id, s.note).await;
    Json(out)
}

/// A rule in force, and the layer it comes from.
#[derive(Serialize, JsonSchema)]
pub struct RuleInForce {
    #[serde(flatten)]
    pub rule: RuleInfo,
    pub layer: Layer,
}

/// A playbook in force, in priority order.
#[derive(Serialize, JsonSchema)]
pub struct PlaybookInForce {
    pub id: String,
    pub description: String,
    pub mode: Mode,
    /// How many steps its ladder has.
    pub steps: usize,
    pub file: String,
    pub line: Option<usize>,
    pub layer: Layer,
}

/// Every stored version of a document, oldest first.
#[derive(Serialize, JsonSchema)]
pub struct Versions {
    pub name: String,
    pub items: Vec<DocVersion>,
}

/// One version's text, and its line diff against `against`.
#[derive(Serialize, JsonSchema)]
pub struct VersionView {
    #[serde(flatten)]
    pub doc: Doc,
    pub against: Option<u32>,
    pub diff: Vec<String>,
}

/// The response policy in force, where it comes from, and the tenant's document.
#[derive(Serialize, JsonSchema)]
pub struct PolicyView {
    pub layer: Layer,
    pub policy: TenantPolicy,
    pub document: Option<Doc>,
}

fn in_force(st: &AppState, auth: &Auth, kind: DocKind, layer: Layer) -> usize {
    match kind {
        DocKind::Rules => st.catalog.rules_in_force(&auth.0.tenant, layer).len(),
        _ => st
            .catalog
            .playbooks_in_force(&auth.0.tenant, layer)
            .playbooks()
            .len(),
    }
}

pub async fn list_rules(
    State(st): State<AppState>,
    auth: Auth,
    q: Result<Query<ScopeQuery>, QueryRejection>,
) -> Result<Json<super::Items<RuleInForce>>, ApiError> {
    auth.require(Role::Analyst, "read rules")?;
    let Query(q) = q.map_err(bad_query)?;
    let items = st
        .catalog
        .rules_in_force(&auth.0.tenant, q.layer())
        .into_iter()
        .map(|(rule, layer)| RuleInForce { rule, layer })
        .collect();
    Ok(super::Items::of(items))
}

pub async fn list_playbooks(
    State(st): State<AppState>,
    auth: Auth,
    q: Result<Query<ScopeQuery>, QueryRejection>,
) -> Result<Json<super::Items<PlaybookInForce>>, ApiError> {
    auth.require(Role::Analyst, "read playbooks")?;
    let Query(q) = q.map_err(bad_query)?;
    let set = st.catalog.playbooks_in_force(&auth.0.tenant, q.layer());
    let items = set
        .playbooks()
        .iter()
        .map(|p| PlaybookInForce {
            id: p.id.clone(),
            description: p.description.clone(),
            mode: p.mode,
            steps: p.steps.len(),
            file: p.file.clone(),
            line: p.line,
            layer: layers::layer_of(&p.file),
        })
        .collect();
    Ok(super::Items::of(items))
}

pub async fn get_doc<K: Kind>(
    State(st): State<AppState>,
    auth: Auth,
    name: Result<Path<String>, PathRejection>,
    q: Result<Query<ScopeQuery>, QueryRejection>,
) -> Result<Json<layers::DocView>, ApiError> {
    auth.require(Role::Analyst, "read playbooks, rules and policy")?;
    let Path(name) = name.map_err(bad_path)?;
    let Query(q) = q.map_err(bad_query)?;
    let (cat, store, tenant) = (st.catalog.clone(), st.store.clone(), auth.0.tenant.clone());
    let view = blocking(move || cat.doc(&store, &tenant, K::KIND, &name, q.layer())).await?;
    Ok(Json(view))
}

pub async fn put_doc<K: Kind>(
    State(st): State<AppState>,
    auth: Auth,
    name: Result<Path<String>, PathRejection>,
    q: Result<Query<ScopeQuery>, QueryRejection>,
    body: Body,
) -> Result<Json<StoredDoc>, ApiError> {
    auth.require(Role::Admin, "change playbooks, rules and policy")?;
    let Path(name) = name.map_err(bad_path)?;
    let Query(q) = q.map_err(bad_query)?;
    if q.scope == Scope::Global {
        super::require_bootstrap(&auth, "replace global rules or playbooks")?;
    }
    let text = super::text_body(body, layers::MAX_DOC).await?;
    put_text(&st, &auth, K::KIND, name, DocFormat::Yaml, text, q.layer()).await
}

async fn put_text(
    st: &AppState,
    auth: &Auth,
    kind: DocKind,
    name: String,
    format: DocFormat,
    text: String,
    layer: Layer,
) -> Result<Json<StoredDoc>, ApiError> {
    let (cat, store, pipeline) = (st.catalog.clone(), st.store.clone(), st.pipeline.clone());
    let (tenant, actor, now) = (auth.0.tenant.clone(), auth.0.id.clone(), st.clock.now_ms());
    let s = blocking(move || match layer {
        Layer::Global => cat.put_global(&store, &*pipeline, kind, &name, &text),
        Layer::Tenant => {
            let p = Put {
                tenant: &tenant,
                actor: &actor,
                kind,
                name: &name,
                format,
                text: &text,
                now,
            };
            cat.put(&store, &*pipeline, p)
        }
    })
    .await?;
    tracing::info!(tenant = %auth.0.tenant, kind = kind.as_str(), name = s.name, ?layer, "document replaced");
    Ok(stored(st, auth, s, in_force(st, auth, kind, layer)).await)
}

pub async fn versions<K: Kind>(
    State(st): State<AppState>,
    auth: Auth,
    name: Result<Path<String>, PathRejection>,
) -> Result<Json<Versions>, ApiError> {
    let Path(name) = name.map_err(bad_path)?;
    list_versions(&st, &auth, K::KIND, name).await
}

async fn list_versions(
    st: &AppState,
    auth: &Auth,
    kind: DocKind,
    name: String,
) -> Result<Json<Versions>, ApiError> {
    auth.require(Role::Analyst, "read playbooks, rules and policy")?;
    let (cat, store, tenant) = (st.catalog.clone(), st.store.clone(), auth.0.tenant.clone());
    let n = name.clone();
    let items = blocking(move || cat.versions(&store, &tenant, kind, &n)).await?;
    Ok(Json(Versions { name, items }))
}

pub async fn version<K: Kind>(
    State(st): State<AppState>,
    auth: Auth,
    path: Result<Path<(String, u32)>, PathRejection>,
    q: Result<Query<DiffQuery>, QueryRejection>,
) -> Result<Json<VersionView>, ApiError> {
    let Path((name, v)) = path.map_err(bad_path)?;
    show_version(&st, &auth, K::KIND, name, v, q).await
}

async fn show_version(
    st: &AppState,
    auth: &Auth,
    kind: DocKind,
    name: String,
    v: u32,
    q: Result<Query<DiffQuery>, QueryRejection>,
) -> Result<Json<VersionView>, ApiError> {
    auth.require(Role::Analyst, "read playbooks, rules and policy")?;
    let Query(q) = q.map_err(bad_query)?;
    let (cat, store, tenant) = (st.catalog.clone(), st.store.clone(), auth.0.tenant.clone());
    let (doc, against, diff) =
        blocking(move || cat.version(&store, &tenant, kind, &name, v, q.diff)).await?;
    Ok(Json(VersionView { doc, against, diff }))
}

pub async fn rollback<K: Kind>(
    State(st): State<AppState>,
    auth: Auth,
    name: Result<Path<String>, PathRejection>,
    body: Body,
) -> Result<Json<StoredDoc>, ApiError> {
    let Path(name) = name.map_err(bad_path)?;
    roll_back(&st, &auth, K::KIND, name, body).await
}

async fn roll_back(
    st: &AppState,
    auth: &Auth,
    kind: DocKind,
    name: String,
    body: Body,
) -> Result<Json<StoredDoc>, ApiError> {
    auth.require(Role::Admin, "change playbooks, rules and policy")?;
    let req: RollbackReq = super::json_body(body, 1024).await?;
    let (cat, store, pipeline) = (st.catalog.clone(), st.store.clone(), st.pipeline.clone());
    let (tenant, actor, now) = (auth.0.tenant.clone(), auth.0.id.clone(), st.clock.now_ms());
    let s = blocking(move || {
        cat.rollback(
            &store,
            &*pipeline,
            &tenant,
            &actor,
            kind,
            &name,
            req.version,
            now,
        )
    })
    .await?;
    Ok(stored(st, auth, s, in_force(st, auth, kind, Layer::Tenant)).await)
}

pub async fn get_policy(
    State(st): State<AppState>,
    auth: Auth,
) -> Result<Json<PolicyView>, ApiError> {
    auth.require(Role::Analyst, "read the response policy")?;
    let (policy, layer) = st.catalog.policy_in_force(&auth.0.tenant);
    let tenant = auth.0.tenant.clone();
    let doc = st
        .db(move |s| s.doc(&tenant, DocKind::Policy, layers::POLICY, None))
        .await?;
    Ok(Json(PolicyView {
        layer,
        policy,
        document: doc,
    }))
}

pub async fn put_policy(
    State(st): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<StoredDoc>, ApiError> {
    auth.require(Role::Admin, "change the response policy")?;
    let format = policy_format(&headers)?;
    let text = super::text_body(body, layers::MAX_DOC).await?;
    let name = layers::POLICY.to_owned();
    put_text(
        &st,
        &auth,
        DocKind::Policy,
        name,
        format,
        text,
        Layer::Tenant,
    )
    .await
}

pub async fn policy_versions(
    State(st): State<AppState>,
    auth: Auth,
) -> Result<Json<Versions>, ApiError> {
    list_versions(&st, &auth, DocKind::Policy, layers::POLICY.to_owned()).await
}

pub async fn policy_version(
    State(st): State<AppState>,
    auth: Auth,
    v: Result<Path<u32>, PathRejection>,
    q: Result<Query<DiffQuery>, QueryRejection>,
) -> Result<Json<VersionView>, ApiError> {
    let Path(v) = v.map_err(bad_path)?;
    show_version(&st, &auth, DocKind::Policy, layers::POLICY.to_owned(), v, q).await
}

pub async fn rollback_policy(
    State(st): State<AppState>,
    auth: Auth,
    body: Body,
) -> Result<Json<StoredDoc>, ApiError> {
    roll_back(&st, &auth, DocKind::Policy, layers::POLICY.to_owned(), body).await
}

/// TOML or JSON, by `Content-Type`.
fn policy_format(headers: &HeaderMap) -> Result<DocFormat, ApiError> {
    let ct = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let essence = ct.split(';').next().unwrap_or("").trim();
    if essence.ends_with("toml") {
        Ok(DocFormat::Toml)
    } else if essence.ends_with("json") {
        Ok(DocFormat::Json)
    } else {
        Err(ApiError::Invalid {
            code: "unsupported_media_type",
            message: format!(
                "send the policy as `Content-Type: application/toml` or `application/json`, not `{ct}`"
            ),
        })
    }
}
