//! `GET/PUT /v1/rules` and `/v1/playbooks`: read the sets in force, and replace one YAML
//! file of `<data-dir>/rules/` or `<data-dir>/playbooks/`. A new file is validated together
//! with everything else (every error reported, nothing written on error), written
//! atomically, and takes effect without a restart. Rules and playbooks are shared by every
//! tenant, so replacing them takes the bootstrap admin.

use super::bad_path;
use crate::auth::Auth;
use crate::error::ApiError;
use crate::state::AppState;
use antibody_respond::{PlaybookSet, PlaybookSource};
use antibody_rules::{RuleSet, RuleSource};
use antibody_store::Role;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::Json;
use serde_json::{json, Value};
use std::sync::Arc;

const MAX_FILE: usize = 1 << 20;

/// `name` becomes `<name>.yml`: letters, digits, `-` and `_` only, so it cannot leave the dir.
fn file_name(name: &str) -> Result<String, ApiError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(format!("{name}.yml"))
    } else {
        Err(ApiError::BadRequest(
            "the file name must be 1–64 characters of letters, digits, `-` and `_`".into(),
        ))
    }
}

fn invalid(errors: impl std::fmt::Display) -> ApiError {
    ApiError::Invalid {
        code: "invalid_yaml",
        status: 400,
        message: errors.to_string(),
    }
}

/// The files of `dir` with `name` replaced by (or extended with) `text`.
fn sources_with(
    dir: &std::path::Path,
    name: &str,
    text: &str,
) -> Result<Vec<(String, String)>, ApiError> {
    let mut out: Vec<(String, String)> = crate::yaml_files(dir)
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .into_iter()
        .filter(|(p, _)| p.file_name().and_then(|f| f.to_str()) != Some(name))
        .map(|(p, t)| (p.display().to_string(), t))
        .collect();
    out.push((dir.join(name).display().to_string(), text.to_owned()));
    Ok(out)
}

fn write_atomically(dir: &std::path::Path, name: &str, text: &str) -> Result<(), ApiError> {
    use std::io::Write;
    let io = |e: std::io::Error| ApiError::Internal(format!("writing {name}: {e}"));
    std::fs::create_dir_all(dir).map_err(io)?;
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = std::fs::File::create(&tmp).map_err(io)?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(io)?;
    std::fs::rename(&tmp, dir.join(name)).map_err(io)?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io)
}

pub async fn list_rules(State(st): State<AppState>, auth: Auth) -> Result<Json<Value>, ApiError> {
    auth.require(Role::Analyst, "read rules")?;
    let rules = st
        .catalog
        .rules
        .read()
        .map_err(|_| ApiError::Internal("rules lock".into()))?
        .clone();
    let items: Vec<_> = rules.rules().collect();
    Ok(Json(json!({"items": items})))
}

pub async fn put_rules(
    State(st): State<AppState>,
    auth: Auth,
    name: Result<Path<String>, PathRejection>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let compile = |files: Vec<(String, String)>| {
        let mut sources = antibody_rules::default_pack_sources();
        sources.extend(files.into_iter().map(|(n, t)| RuleSource::new(n, t)));
        RuleSet::compile(&sources).map(Arc::new).map_err(invalid)
    };
    let (file, rules, _guard) = replace(&st, &auth, name, body, "rules", compile).await?;
    let n = rules.len();
    *st.catalog
        .rules
        .write()
        .map_err(|_| ApiError::Internal("rules lock".into()))? = rules.clone();
    st.pipeline.set_rules(rules);
    tracing::info!(file, rules = n, "rules replaced");
    Ok(Json(json!({"file": file, "rules": n})))
}

pub async fn list_playbooks(
    State(st): State<AppState>,
    auth: Auth,
) -> Result<Json<Value>, ApiError> {
    auth.require(Role::Analyst, "read playbooks")?;
    let set = st
        .catalog
        .playbooks
        .read()
        .map_err(|_| ApiError::Internal("playbooks lock".into()))?
        .clone();
    let items: Vec<Value> = set
        .playbooks()
        .iter()
        .map(|p| {
            json!({
                "id": p.id, "description": p.description, "mode": p.mode.as_str(),
                "steps": p.steps.len(), "file": p.file, "line": p.line,
            })
        })
        .collect();
    Ok(Json(json!({"items": items})))
}

pub async fn put_playbooks(
    State(st): State<AppState>,
    auth: Auth,
    name: Result<Path<String>, PathRejection>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let compile = |files: Vec<(String, String)>| {
        let mut sources = PlaybookSet::default_sources();
        sources.extend(files.into_iter().map(|(n, t)| PlaybookSource::new(n, t)));
        PlaybookSet::load(&sources).map(Arc::new).map_err(invalid)
    };
    let (file, set, _guard) = replace(&st, &auth, name, body, "playbooks", compile).await?;
    let n = set.playbooks().len();
    *st.catalog
        .playbooks
        .write()
        .map_err(|_| ApiError::Internal("playbooks lock".into()))? = set.clone();
    st.pipeline.set_playbooks(set);
    tracing::info!(file, playbooks = n, "playbooks replaced");
    Ok(Json(json!({"file": file, "playbooks": n})))
}

/// The shared path of both PUTs: check the caller and the name, validate the new file with
/// every other file of `<data-dir>/<dir>/` (the default pack included by `compile`), and
/// write it only when the whole set compiles. Returns the file name and the new set; the
/// catalog's write lock is held until the caller has swapped the set in.
async fn replace<'a, T>(
    st: &'a AppState,
    auth: &Auth,
    name: Result<Path<String>, PathRejection>,
    body: Body,
    dir: &str,
    compile: impl FnOnce(Vec<(String, String)>) -> Result<T, ApiError>,
) -> Result<(String, T, tokio::sync::MutexGuard<'a, ()>), ApiError> {
    super::require_bootstrap(auth, "replace shared rules or playbooks")?;
    let Path(name) = name.map_err(bad_path)?;
    let file = file_name(&name)?;
    let text = super::text_body(body, MAX_FILE).await?;
    let guard = st.catalog.write.lock().await;
    let dir = st.catalog.data_dir.join(dir);
    let set = compile(sources_with(&dir, &file, &text)?)?;
    write_atomically(&dir, &file, &text)?;
    Ok((file, set, guard))
}
