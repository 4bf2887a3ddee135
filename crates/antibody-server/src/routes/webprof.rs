//! `/v1/web-profiles`: what the learned web profiles hold, reset, export and import. The
//! logic (merging partitions, the journal) lives in [`crate::webprof`].

use super::bad_query;
use crate::auth::Auth;
use crate::error::ApiError;
use crate::pipeline::WebError;
use crate::state::AppState;
use crate::webprof::{merge, mode, reset_templates, Document, WebChange, WebCmd};
use antibody_detect::webprof::{Method, Mode};
use antibody_detect::TenantProfiles;
use antibody_store::Role;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// An import document may hold many templates.
const MAX_IMPORT_BYTES: usize = 32 << 20;

fn web_error(e: WebError) -> ApiError {
    match e {
        WebError::Stopped => ApiError::Unavailable("the engine is not running".into()),
        WebError::Journal(e) => ApiError::Unavailable(format!(
            "the change is in force but could not be written ({e}); a restart before the next \
             engine checkpoint would undo it: send it again"
        )),
    }
}

async fn read(st: &AppState, auth: &Auth) -> Result<TenantProfiles, ApiError> {
    let replies = st
        .pipeline
        .web_profiles(&auth.0.tenant, WebCmd::Read)
        .await
        .map_err(web_error)?;
    Ok(merge(replies))
}

async fn read_mode(st: &AppState, auth: &Auth) -> Result<Mode, ApiError> {
    let replies = st
        .pipeline
        .web_profiles(&auth.0.tenant, WebCmd::ReadMode)
        .await
        .map_err(web_error)?;
    mode(&replies).ok_or_else(|| ApiError::Unavailable("the engine is not running".into()))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    host: Option<String>,
    /// An HTTP method (GET, POST, …).
    method: Option<String>,
    /// A path template such as `/users/{id}`.
    template: Option<String>,
}

/// The tenant's web profiles: its mode and every learned template.
#[derive(Serialize, JsonSchema)]
pub struct WebProfiles {
    /// `on`, `learn_only` or `off`: what profiles do for the tenant.
    #[schemars(schema_with = "mode_schema")]
    pub mode: Mode,
    /// Requests a template learns from before it scores.
    pub learn_requests: u64,
    /// Score from which a request is a finding.
    pub threshold: f64,
    pub items: Vec<TemplateView>,
}

#[derive(Serialize, JsonSchema)]
pub struct TemplateView {
    pub host: String,
    #[schemars(with = "String")]
    pub method: &'static str,
    pub template: String,
    pub requests: u64,
    /// Still learning (fewer than `learn_requests`).
    pub learning: bool,
    pub params: Vec<ParamView>,
    pub content_types: Vec<String>,
}

#[derive(Serialize, JsonSchema)]
pub struct ParamView {
    pub name: String,
    pub seen: u64,
    /// The value classes learned.
    pub expected: String,
}

/// One template reset: it learns afresh.
#[derive(Serialize, JsonSchema)]
pub struct ResetTemplate {
    pub host: String,
    #[schemars(with = "String")]
    pub method: &'static str,
    pub template: String,
}

#[derive(Serialize, JsonSchema)]
pub struct ResetDone {
    pub reset: Vec<ResetTemplate>,
}

#[derive(Serialize, JsonSchema)]
pub struct Imported {
    pub hosts: usize,
    pub templates: usize,
}

impl Filter {
    fn method(&self) -> Result<Option<Method>, ApiError> {
        match self.method.as_deref() {
            None => Ok(None),
            Some(m) if Method::parse(m) != Method::Other => Ok(Some(Method::parse(m))),
            Some(m) => Err(ApiError::BadRequest(format!(
                "`method` must be an HTTP method (GET, POST, …), not `{m}`"
            ))),
        }
    }
}

/// `GET /v1/web-profiles`: the tenant's mode and every learned template, with what each
/// knows (filters: host, method, template).
pub async fn list(
    State(st): State<AppState>,
    auth: Auth,
    q: Result<Query<Filter>, QueryRejection>,
) -> Result<Json<WebProfiles>, ApiError> {
    auth.require(Role::Analyst, "read web profiles")?;
    let Query(f) = q.map_err(bad_query)?;
    let method = f.method()?;
    let cfg = &st.pipeline.web_profiles;
    let profiles = read(&st, &auth).await?;
    let mode = read_mode(&st, &auth).await?;
    let mut items = Vec::new();
    for (host, h) in &profiles.hosts {
        if f.host.as_ref().is_some_and(|x| x != host) {
            continue;
        }
        for ((m, template), t) in &h.templates {
            if method.is_some_and(|x| x != *m) || f.template.as_ref().is_some_and(|x| x != template)
            {
                continue;
            }
            let params = t
                .params
                .iter()
                .map(|(name, p)| ParamView {
                    name: name.clone(),
                    seen: p.n,
                    expected: p.expected(),
                })
                .collect();
            let content_types = t.content_types.iter().map(|(c, _)| c.clone()).collect();
            items.push(TemplateView {
                host: host.clone(),
                method: m.as_str(),
                template: template.clone(),
                requests: t.requests,
                learning: t.requests < cfg.learn_requests,
                params,
                content_types,
            });
        }
    }
    Ok(Json(WebProfiles {
        mode,
        learn_requests: cfg.learn_requests,
        threshold: cfg.threshold,
        items,
    }))
}

/// `DELETE /v1/web-profiles`: matching templates learn afresh (a host's whole profile with
/// only `host`; every profile of the tenant without filters).
pub async fn reset(
    State(st): State<AppState>,
    auth: Auth,
    q: Result<Query<Filter>, QueryRejection>,
) -> Result<Json<ResetDone>, ApiError> {
    auth.require(Role::Admin, "reset web profiles")?;
    let Query(f) = q.map_err(bad_query)?;
    let change = WebChange::Reset {
        method: f.method()?,
        host: f.host,
        template: f.template,
    };
    let subject = serde_json::to_string(&change).unwrap_or_default();
    let replies = st
        .pipeline
        .web_profiles(&auth.0.tenant, WebCmd::Change(Arc::new(change)))
        .await
        .map_err(web_error)?;
    let reset: Vec<ResetTemplate> = reset_templates(replies)
        .into_iter()
        .map(|(host, m, template)| ResetTemplate {
            host,
            method: m.as_str(),
            template,
        })
        .collect();
    let detail = format!("{} web profile templates learn afresh", reset.len());
    crate::models::audit(
        &st,
        &auth.0.tenant,
        &auth.0.id,
        "web_profiles_reset",
        &subject,
        &detail,
    )
    .await;
    Ok(Json(ResetDone { reset }))
}

/// The schema of a web profile [`Mode`] (the detect crate stays free of schema types).
fn mode_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"type": "string", "enum": ["on", "learn_only", "off"]})
}

/// `PUT /v1/web-profiles/mode`'s body.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModeBody {
    #[schemars(schema_with = "mode_schema")]
    mode: Mode,
}

/// `GET /v1/web-profiles/mode`'s answer.
#[derive(Serialize, JsonSchema)]
pub struct ModeView {
    #[schemars(schema_with = "mode_schema")]
    mode: Mode,
    /// `[engine.web_profiles] enabled`: false means no mode applies.
    enabled: bool,
}

/// `PUT /v1/web-profiles/mode`'s answer.
#[derive(Serialize, JsonSchema)]
pub struct ModeChanged {
    #[schemars(schema_with = "mode_schema")]
    mode: Mode,
    #[schemars(schema_with = "mode_schema")]
    previous: Mode,
}

/// `GET /v1/web-profiles/mode`: the tenant's mode in force.
pub async fn get_mode(State(st): State<AppState>, auth: Auth) -> Result<Json<ModeView>, ApiError> {
    auth.require(Role::Analyst, "read the web profile mode")?;
    let mode = read_mode(&st, &auth).await?;
    Ok(Json(ModeView {
        mode,
        enabled: st.pipeline.web_profiles.enabled,
    }))
}

/// `PUT /v1/web-profiles/mode`: `on`, `learn_only` (learn, report nothing) or `off` (neither)
/// for the tenant, over the configured mode; in order with its events, audited.
pub async fn put_mode(
    State(st): State<AppState>,
    auth: Auth,
    body: Body,
) -> Result<Json<ModeChanged>, ApiError> {
    auth.require(Role::Admin, "change the web profile mode")?;
    let ModeBody { mode } = super::json_body(body, 1 << 10).await?;
    if !st.pipeline.web_profiles.enabled {
        return Err(ApiError::Conflict(
            "web profiles are disabled in the configuration ([engine.web_profiles] enabled = \
             false): no tenant mode applies"
                .into(),
        ));
    }
    let before = read_mode(&st, &auth).await?;
    st.pipeline
        .web_profiles(
            &auth.0.tenant,
            WebCmd::Change(Arc::new(WebChange::Mode { mode })),
        )
        .await
        .map_err(web_error)?;
    let name = |m: Mode| {
        serde_json::to_value(m)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
    };
    let detail = format!(
        "web profile mode {} → {}",
        name(before).unwrap_or_default(),
        name(mode).unwrap_or_default()
    );
    crate::models::audit(
        &st,
        &auth.0.tenant,
        &auth.0.id,
        "web_profiles_mode",
        "web-profiles",
        &detail,
    )
    .await;
    Ok(Json(ModeChanged {
        mode,
        previous: before,
    }))
}

/// `GET /v1/web-profiles/export`: the tenant's profiles as one document for import elsewhere.
pub async fn export(State(st): State<AppState>, auth: Auth) -> Result<Json<Document>, ApiError> {
    auth.require(Role::Admin, "export web profiles")?;
    Ok(Json(Document::new(read(&st, &auth).await?)))
}

/// `POST /v1/web-profiles/import`: an export document; its hosts replace the tenant's.
pub async fn import(
    State(st): State<AppState>,
    auth: Auth,
    body: Body,
) -> Result<Json<Imported>, ApiError> {
    auth.require(Role::Admin, "import web profiles")?;
    let doc: Document = super::json_body(body, MAX_IMPORT_BYTES).await?;
    let profiles = doc.into_profiles().map_err(ApiError::BadRequest)?;
    let (hosts, templates) = (profiles.hosts.len(), profiles.template_count());
    let change = WebChange::Import { profiles };
    st.pipeline
        .web_profiles(&auth.0.tenant, WebCmd::Change(Arc::new(change)))
        .await
        .map_err(web_error)?;
    let detail = format!("imported {templates} web profile templates of {hosts} hosts");
    crate::models::audit(
        &st,
        &auth.0.tenant,
        &auth.0.id,
        "web_profiles_import",
        "web-profiles",
        &detail,
    )
    .await;
    Ok(Json(Imported { hosts, templates }))
}

/// A `web_anomaly` finding labelled false positive: every partition learns its request.
pub async fn learn_false_positive(
    st: &AppState,
    auth: &Auth,
    finding: &antibody_core::Finding,
) -> Result<(), ApiError> {
    let change = WebChange::LearnFinding {
        evidence: finding.evidence.clone(),
    };
    st.pipeline
        .web_profiles(&auth.0.tenant, WebCmd::Change(Arc::new(change)))
        .await
        .map_err(web_error)?;
    let detail = "a false positive's request is learned as normal".to_owned();
    crate::models::audit(
        st,
        &auth.0.tenant,
        &auth.0.id,
        "web_profiles_learn",
        &finding.id,
        &detail,
    )
    .await;
    Ok(())
}
