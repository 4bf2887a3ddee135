//! Incidents people work: ack, assign, notes, resolve, reopen (each a command to the
//! response stage, which owns the incident's work and the audit chain), and the post-mortem
//! of a resolved incident. Each answers with the incident as it now stands.

use super::respond::changed;
use super::{bad_path, bad_query};
use crate::auth::Auth;
use crate::error::ApiError;
use crate::respond::HumanCmd;
use crate::state::AppState;
use antibody_core::Incident;
use antibody_core::Resolution;
use antibody_respond::workflow::people_resolutions;
use antibody_respond::IncidentOp;
use antibody_store::Role;
use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use schemars::JsonSchema;
use serde::Deserialize;

/// Bodies here are a sentence or a note.
const MAX_BODY: usize = 64 << 10;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignReq {
    to: String,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteReq {
    text: String,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveReq {
    /// One a person may give (not `quiet`).
    #[schemars(with = "Resolution")]
    resolution: String,
    root_cause: Option<String>,
}

/// Sends `op` for the incident in the path and answers with the incident as stored.
async fn work(
    st: AppState,
    auth: Auth,
    id: Result<Path<String>, PathRejection>,
    op: IncidentOp,
) -> Result<Json<Incident>, ApiError> {
    let Path(id) = id.map_err(bad_path)?;
    let tenant = auth.0.tenant.clone();
    // A finding shown before its commit may name this incident: see `pipeline::visible`.
    st.pipeline.visible.settled(&tenant).await;
    let cmd = HumanCmd::Incident { id: id.clone(), op };
    changed(&st, &auth, cmd).await?;
    let key = id.clone();
    let inc = st.db(move |s| s.get_incident(&tenant, &key)).await?;
    let inc = inc.ok_or_else(|| ApiError::NotFound(format!("incident `{id}`")))?;
    Ok(Json(inc))
}

pub async fn ack(
    State(st): State<AppState>,
    auth: Auth,
    id: Result<Path<String>, PathRejection>,
    body: Body,
) -> Result<Json<Incident>, ApiError> {
    auth.require(Role::Analyst, "work incidents")?;
    super::empty_body(body).await?;
    work(st, auth, id, IncidentOp::Ack).await
}

pub async fn assign(
    State(st): State<AppState>,
    auth: Auth,
    id: Result<Path<String>, PathRejection>,
    body: Body,
) -> Result<Json<Incident>, ApiError> {
    auth.require(Role::Analyst, "work incidents")?;
    let req: AssignReq = super::json_body(body, MAX_BODY).await?;
    work(st, auth, id, IncidentOp::Assign { to: req.to }).await
}

pub async fn note(
    State(st): State<AppState>,
    auth: Auth,
    id: Result<Path<String>, PathRejection>,
    body: Body,
) -> Result<Json<Incident>, ApiError> {
    auth.require(Role::Analyst, "work incidents")?;
    let req: NoteReq = super::json_body(body, MAX_BODY).await?;
    work(st, auth, id, IncidentOp::Note { text: req.text }).await
}

pub async fn resolve(
    State(st): State<AppState>,
    auth: Auth,
    id: Result<Path<String>, PathRejection>,
    body: Body,
) -> Result<Json<Incident>, ApiError> {
    auth.require(Role::Analyst, "work incidents")?;
    let req: ResolveReq = super::json_body(body, MAX_BODY).await?;
    let resolution = Resolution::parse(&req.resolution)
        .filter(|r| Resolution::BY_PEOPLE.contains(r))
        .ok_or_else(|| ApiError::Invalid {
            code: "invalid_resolution",
            message: format!(
                "`resolution` must be one of {}, not `{}`",
                people_resolutions(),
                req.resolution
            ),
        })?;
    let op = IncidentOp::Resolve {
        resolution,
        root_cause: req.root_cause,
    };
    work(st, auth, id, op).await
}

pub async fn reopen(
    State(st): State<AppState>,
    auth: Auth,
    id: Result<Path<String>, PathRejection>,
    body: Body,
) -> Result<Json<Incident>, ApiError> {
    auth.require(Role::Analyst, "work incidents")?;
    super::empty_body(body).await?;
    work(st, auth, id, IncidentOp::Reopen).await
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PostmortemParams {
    /// `json` (default) or `md` (Markdown).
    #[schemars(with = "Option<TextOrJson>")]
    format: Option<String>,
}

/// The `format` values of the post-mortem.
#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)] // the handler reads the text; this lists its values
enum TextOrJson {
    Json,
    Md,
    Markdown,
}

/// `GET /v1/incidents/{id}/postmortem`: JSON, or Markdown with `?format=md`.
pub async fn postmortem(
    State(st): State<AppState>,
    auth: Auth,
    id: Result<Path<String>, PathRejection>,
    q: Result<Query<PostmortemParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    auth.require(Role::Analyst, "read incidents")?;
    let Path(id) = id.map_err(bad_path)?;
    let Query(p) = q.map_err(bad_query)?;
    let markdown = match p.format.as_deref() {
        None | Some("json") => false,
        Some("md" | "markdown") => true,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "`format` must be `json` or `md`, not `{other}`"
            )))
        }
    };
    let tenant = auth.0.tenant.clone();
    let key = id.clone();
    let (inc, pm) = st
        .db(move |s| {
            Ok((
                s.get_incident(&tenant, &key)?,
                s.get_postmortem(&tenant, &key)?,
            ))
        })
        .await?;
    let inc = inc.ok_or_else(|| ApiError::NotFound(format!("incident `{id}`")))?;
    let pm = pm.ok_or_else(|| {
        let resolved = inc.status == antibody_core::IncidentStatus::Resolved;
        let why = match inc.workflow.resolution {
            Some(Resolution::Quiet) if resolved => {
                "it closed quietly with nothing done: there is nothing to report".to_owned()
            }
            Some(r) if resolved => format!(
                "it was resolved `{r}` but its post-mortem was not stored; \
                 it is written again when the service next starts"
            ),
            _ => format!("it is {}; one is written when it is resolved", inc.status),
        };
        ApiError::NotFound(format!("a post-mortem of incident `{id}` ({why})"))
    })?;
    if markdown {
        let ct = [(header::CONTENT_TYPE, "text/markdown; charset=utf-8")];
        return Ok((ct, pm.markdown).into_response());
    }
    Ok(Json(pm.postmortem).into_response())
}
