//! The page and form handlers: thin. Each reads through [`Api`] (the JSON API's own
//! handlers), shapes a little for display ([`view`] functions, no web types) and renders.

use super::api::{query_string, All, Api, Doc, IncidentVerb, Verb};
use super::render::{error_page, page};
use super::session::{self, Sessions};
use super::view;
use super::{redirect, Ui, UiError};
use crate::error::ApiError;
use crate::state::AppState;
use antibody_store::Role;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use minijinja::context;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// Form bodies are a key, a note or a root cause.
const MAX_FORM: usize = 64 << 10;
/// The band drawn around each baseline: mean ± K·σ.
pub const BAND_K: f64 = 3.0;

type Page = Result<Response, UiError>;

/// Percent-encodes one path segment or query value.
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// What every page's frame needs: who is signed in, the CSRF token, the active tab.
fn frame(ui: &Ui, tab: &str) -> Value {
    let k = &ui.auth.0;
    json!({
        "csrf": ui.csrf,
        "tab": tab,
        "me": {"id": k.id, "role": k.role.as_str(), "tenant": k.tenant.as_str()},
    })
}

fn ok(name: &str, ctx: Value) -> Page {
    Ok(page(StatusCode::OK, name, ctx))
}

/// A form body's fields.
async fn form(body: Body) -> Result<HashMap<String, String>, UiError> {
    let bytes = crate::routes::read_body(body, MAX_FORM, crate::routes::SMALL_BODY_TIMEOUT).await?;
    serde_urlencoded::from_bytes(&bytes)
        .map_err(|e| UiError::Api(ApiError::BadRequest(format!("invalid form body: {e}"))))
}

/// Where a form asked to go back to: a dashboard page, never elsewhere.
fn back(f: &HashMap<String, String>, default: &str) -> String {
    match f.get("back") {
        Some(b) if b.starts_with("/ui/") && !b.contains("//") && !b.contains('\\') => b.clone(),
        _ => default.to_owned(),
    }
}

// ---- sign-in

fn signin_view(sessions: &Sessions, error: Option<&str>, status: StatusCode) -> Response {
    let token = match session::token() {
        Ok(t) => t,
        Err(e) => return UiError::Api(ApiError::Internal(e.to_string())).into_response(),
    };
    let mut r = page(
        status,
        "signin.html",
        context! { csrf => token, error, tab => "signin" },
    );
    if let Ok(v) = HeaderValue::from_str(&sessions.cookie(session::SIGNIN_COOKIE, &token)) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|h| session::cookie_value(h, name))
}

/// `GET /`: the sign-in page (the overview when already signed in).
pub async fn signin_page(
    State(st): State<AppState>,
    Extension(sessions): Extension<Arc<Sessions>>,
    headers: HeaderMap,
) -> Response {
    let live = cookie(&headers, session::COOKIE)
        .is_some_and(|sid| sessions.get(sid, st.clock.now_ms()).is_some());
    if live {
        return redirect("/ui/");
    }
    signin_view(&sessions, None, StatusCode::OK)
}

/// `POST /ui/signin`: `key` (an analyst or admin key) and the double-submitted `csrf`.
pub async fn signin(
    State(st): State<AppState>,
    Extension(sessions): Extension<Arc<Sessions>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let f = match form(body).await {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    let fresh = match (cookie(&headers, session::SIGNIN_COOKIE), f.get("csrf")) {
        (Some(c), Some(t)) => session::same_token(c, t),
        _ => false,
    };
    if !fresh {
        let msg = "The sign-in form expired (or cookies are off); please try again.";
        return signin_view(&sessions, Some(msg), StatusCode::FORBIDDEN);
    }
    let secret = f
        .get("key")
        .map(|k| k.trim())
        .unwrap_or_default()
        .to_owned();
    if secret.is_empty() {
        let msg = "Enter an API key.";
        return signin_view(&sessions, Some(msg), StatusCode::BAD_REQUEST);
    }
    let info = match crate::auth::authenticate(&st, &secret).await {
        Ok(info) => info,
        Err(e) => {
            let status = crate::error::status_of(e.code());
            return signin_view(&sessions, Some(&e.to_string()), status);
        }
    };
    if !info.role.allows(Role::Analyst) {
        let msg = format!(
            "This key's role ({}) cannot use the dashboard; sign in with an analyst or admin key.",
            info.role.as_str()
        );
        return signin_view(&sessions, Some(&msg), StatusCode::FORBIDDEN);
    }
    // A fresh id at every sign-in (no fixation); the session it replaces ends.
    if let Some(old) = cookie(&headers, session::COOKIE) {
        sessions.end(old);
    }
    let (sid, _) = match sessions.start(secret, st.clock.now_ms()) {
        Ok(s) => s,
        Err(e) => return UiError::Api(ApiError::Internal(e.to_string())).into_response(),
    };
    tracing::info!(key = %info.id, tenant = %info.tenant, "dashboard sign-in");
    let mut r = redirect("/ui/");
    for c in [
        sessions.cookie(session::COOKIE, &sid),
        sessions.clear_cookie(session::SIGNIN_COOKIE),
    ] {
        if let Ok(v) = HeaderValue::from_str(&c) {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    r
}

/// `POST /ui/signout`
pub async fn signout(ui: Ui, body: Body) -> Page {
    let f = form(body).await?;
    ui.check(f.get("csrf").map(String::as_str))?;
    ui.sessions.end(&ui.sid);
    let mut r = redirect("/");
    if let Ok(v) = HeaderValue::from_str(&ui.sessions.clear_cookie(session::COOKIE)) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(r)
}

pub async fn to_overview() -> Response {
    redirect("/ui/")
}

// ---- overview

/// `GET /ui/`: open incidents by severity, pending approvals, recent actions, and the
/// detect / respond / recover times of the latest resolved incidents.
pub async fn overview(State(st): State<AppState>, ui: Ui) -> Page {
    let api = ui.api(&st);
    let mut open = items(api.incidents("status=open&limit=1000").await?);
    open.extend(items(
        api.incidents("status=acknowledged&limit=1000").await?,
    ));
    let pending = items(api.actions("status=pending_approval&limit=1000").await?);
    let recent = items(api.actions("limit=1000").await?);
    let resolved = items(api.incidents("status=resolved&limit=10").await?);
    let mut pms = Vec::new();
    for i in &resolved {
        if let Some(id) = i["id"].as_str() {
            // An incident resolved before post-mortems existed has none: skip it.
            if let Ok(pm) = api.postmortem(id).await {
                pms.push(pm);
            }
        }
    }
    let view = view::overview(&open, &pending, &recent, &pms, st.clock.now_ms());
    let mut ctx = frame(&ui, "overview");
    ctx["v"] = view;
    ok("overview.html", ctx)
}

fn items(v: Value) -> Vec<Value> {
    match v {
        Value::Object(mut m) => match m.remove("items") {
            Some(Value::Array(a)) => a,
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

// ---- fleet

/// `GET /ui/fleet?state=&kind=&q=&cursor=`: the query is `GET /v1/entities`'s own.
pub async fn fleet(State(st): State<AppState>, ui: Ui, RawQuery(q): RawQuery) -> Page {
    let api = ui.api(&st);
    // Empty filter fields of the form mean "any".
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(q.as_deref().unwrap_or("")).unwrap_or_default();
    let kept: Vec<(&str, &str)> = pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut qs = query_string(&kept);
    if !kept.iter().any(|(k, _)| *k == "limit") {
        qs.push_str(if qs.is_empty() {
            "limit=100"
        } else {
            "&limit=100"
        });
    }
    let page = api.entities(&qs).await?;
    let get = |k: &str| {
        kept.iter()
            .find(|(n, _)| *n == k)
            .map_or("", |(_, v)| *v)
            .to_owned()
    };
    let filters = json!({"state": get("state"), "kind": get("kind"), "q": get("q")});
    let next = page["next_cursor"].as_str().map(|c| {
        let mut p: Vec<(&str, &str)> = kept
            .iter()
            .filter(|(k, _)| *k != "cursor")
            .copied()
            .collect();
        p.push(("cursor", c));
        format!("/ui/fleet?{}", query_string(&p))
    });
    let mut ctx = frame(&ui, "fleet");
    ctx["page"] = page;
    ctx["filters"] = filters;
    ctx["next"] = json!(next);
    ctx["states"] = json!(antibody_respond::LifecycleState::ALL
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>());
    ctx["paged"] = json!(!get("cursor").is_empty());
    ok("fleet.html", ctx)
}

// ---- entity

/// `GET /ui/entities/{entity}`: state, verdict, baselines charted against the findings'
/// observations, findings, incidents, the lifecycle's audit trail.
pub async fn entity(State(st): State<AppState>, ui: Ui, Path(entity): Path<String>) -> Page {
    let api = ui.api(&st);
    let e = api.entity(&entity).await?;
    let verdict = api.verdict(&entity).await?;
    let fq = query_string(&[("entity", &entity), ("limit", "200")]);
    let findings = items(api.findings(&fq).await?);
    let iq = query_string(&[("entity", &entity), ("limit", "50")]);
    let incidents = items(api.incidents(&iq).await?);
    let aq = query_string(&[("subject", &entity), ("limit", "1000")]);
    let trail = items(api.audit(&aq).await?);
    let mut ctx = frame(&ui, "fleet");
    // This page lists findings: each new one re-renders it.
    ctx["live_on"] = json!("finding incident action state escalation notification lagged");
    ctx["charts"] = view::charts(&e, &findings);
    ctx["e"] = e;
    ctx["verdict"] = verdict;
    ctx["findings"] = json!(findings.iter().take(50).collect::<Vec<_>>());
    ctx["incidents"] = json!(incidents);
    ctx["trail"] = json!(trail.iter().rev().take(100).collect::<Vec<_>>());
    ctx["k"] = json!(BAND_K);
    ok("entity.html", ctx)
}

/// `POST /ui/entities/{entity}/heal`: Heal now.
pub async fn heal(
    State(st): State<AppState>,
    ui: Ui,
    Path(entity): Path<String>,
    body: Body,
) -> Page {
    let f = form(body).await?;
    ui.check(f.get("csrf").map(String::as_str))?;
    ui.api(&st).heal(&entity).await?;
    Ok(redirect(&back(
        &f,
        &format!("/ui/entities/{}", enc(&entity)),
    )))
}

// ---- incidents

/// `GET /ui/incidents?status=`: the API's incident list.
pub async fn incidents(State(st): State<AppState>, ui: Ui, RawQuery(q): RawQuery) -> Page {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(q.as_deref().unwrap_or("")).unwrap_or_default();
    let status = pairs
        .iter()
        .find(|(k, _)| k == "status")
        .map_or("", |(_, v)| v.as_str())
        .to_owned();
    let qs = if status.is_empty() {
        "limit=200".to_owned()
    } else {
        query_string(&[("status", &status), ("limit", "200")])
    };
    let list = ui.api(&st).incidents(&qs).await?;
    let mut ctx = frame(&ui, "incidents");
    ctx["items"] = json!(items(list));
    ctx["status"] = json!(status);
    ok("incidents.html", ctx)
}

/// `GET /ui/incidents/{id}`: risk, diagnosis, findings with their contributions, the plan
/// with each action's why, timeline, audit, the post-mortem once resolved.
pub async fn incident(State(st): State<AppState>, ui: Ui, Path(id): Path<String>) -> Page {
    let api = ui.api(&st);
    let mut inc = api.incident(&id).await?;
    // The incident carries its actions as planned; each one's status now is the action's.
    let mut actions = Vec::new();
    for a in inc["actions"].as_array().into_iter().flatten() {
        match a["id"].as_str() {
            Some(aid) => actions.push(api.action(aid).await.unwrap_or_else(|_| a.clone())),
            None => actions.push(a.clone()),
        }
    }
    for h in inc["diagnosis"].as_array_mut().into_iter().flatten() {
        let c = h["confidence"].as_f64().unwrap_or(0.0);
        h["svg"] = json!(super::charts::bar(c));
    }
    let mut findings = Vec::new();
    for fid in inc["findings"].as_array().into_iter().flatten().take(50) {
        if let Some(fid) = fid.as_str() {
            match api.finding(fid).await {
                Ok(f) => findings.push(view::finding(f)),
                Err(ApiError::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    // The incident's audit: entries about it and about each of its actions.
    let mut trail = Vec::new();
    let subjects = std::iter::once(id.clone()).chain(
        actions
            .iter()
            .filter_map(|a| a["id"].as_str().map(str::to_owned)),
    );
    for subject in subjects {
        let aq = query_string(&[("subject", &subject), ("limit", "1000")]);
        trail.extend(items(api.audit(&aq).await?));
    }
    trail.sort_by_key(|e| e["index"].as_u64());
    let resolved = inc["status"] == "resolved";
    let pm = if resolved {
        api.postmortem(&id).await.ok()
    } else {
        None
    };
    let mut ctx = frame(&ui, "incidents");
    ctx["i"] = inc;
    ctx["actions"] = json!(actions);
    ctx["findings"] = json!(findings);
    ctx["trail"] = json!(trail);
    ctx["pm"] = json!(pm);
    ctx["resolutions"] = json!(antibody_core::Resolution::BY_PEOPLE
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>());
    ok("incident.html", ctx)
}

/// `POST /ui/incidents/{id}/{ack|assign|notes|resolve|reopen|feedback}`
pub async fn work_incident(
    State(st): State<AppState>,
    ui: Ui,
    Path((id, verb)): Path<(String, String)>,
    body: Body,
) -> Page {
    let f = form(body).await?;
    ui.check(f.get("csrf").map(String::as_str))?;
    let api = ui.api(&st);
    let field = |k: &str| f.get(k).map(|s| s.trim().to_owned()).unwrap_or_default();
    if verb == "feedback" {
        let mut b = json!({"incident": id, "label": field("label")});
        if !field("root_cause").is_empty() {
            b["root_cause"] = json!(field("root_cause"));
        }
        api.feedback(&b).await?;
    } else {
        let op = IncidentVerb::parse(&verb)
            .ok_or_else(|| ApiError::NotFound(format!("route `/ui/incidents/{id}/{verb}`")))?;
        let b = match op {
            IncidentVerb::Ack | IncidentVerb::Reopen => json!({}),
            IncidentVerb::Assign => json!({"to": field("to")}),
            IncidentVerb::Note => json!({"text": field("text")}),
            IncidentVerb::Resolve if field("root_cause").is_empty() => {
                json!({"resolution": field("resolution")})
            }
            IncidentVerb::Resolve => {
                json!({"resolution": field("resolution"), "root_cause": field("root_cause")})
            }
        };
        api.work_incident(&id, op, &b).await?;
    }
    Ok(redirect(&back(&f, &format!("/ui/incidents/{}", enc(&id)))))
}

/// `POST /ui/actions/{id}/{approve|reject|undo}`
pub async fn answer_action(
    State(st): State<AppState>,
    ui: Ui,
    Path((id, verb)): Path<(String, String)>,
    body: Body,
) -> Page {
    let f = form(body).await?;
    ui.check(f.get("csrf").map(String::as_str))?;
    let verb = Verb::parse(&verb)
        .ok_or_else(|| ApiError::NotFound(format!("route `/ui/actions/{id}/{verb}`")))?;
    ui.api(&st).answer_action(&id, verb).await?;
    Ok(redirect(&back(&f, "/ui/approvals")))
}

// ---- approvals

/// `GET /ui/approvals`: every action waiting for a person, newest first.
pub async fn approvals(State(st): State<AppState>, ui: Ui) -> Page {
    let api = ui.api(&st);
    let pending = items(api.actions("status=pending_approval&limit=1000").await?);
    // Heal now ends these states (`POST /v1/entities/heal-all` heals every one of them).
    let mut healable = Vec::new();
    for state in ["draining", "quarantined", "exhausted"] {
        healable.extend(items(
            api.entities(&format!("state={state}&limit=100")).await?,
        ));
    }
    let mut ctx = frame(&ui, "approvals");
    ctx["pending"] = json!(pending);
    ctx["healable"] = json!(healable);
    ok("approvals.html", ctx)
}

/// `POST /ui/approvals/{approve-all|reject-all|heal-all}`
pub async fn answer_all(
    State(st): State<AppState>,
    ui: Ui,
    Path(verb): Path<String>,
    body: Body,
) -> Page {
    let f = form(body).await?;
    ui.check(f.get("csrf").map(String::as_str))?;
    let what = All::parse(&verb)
        .ok_or_else(|| ApiError::NotFound(format!("route `/ui/approvals/{verb}`")))?;
    ui.api(&st).answer_all(what).await?;
    Ok(redirect("/ui/approvals"))
}

// ---- audit, notifications

/// `GET /ui/audit?after=&verify=1`: the chain, a page at a time, and its verification.
pub async fn audit(State(st): State<AppState>, ui: Ui, RawQuery(q): RawQuery) -> Page {
    let api = ui.api(&st);
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(q.as_deref().unwrap_or("")).unwrap_or_default();
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let after = get("after").filter(|a| a.parse::<u64>().is_ok());
    let mut qs = vec![("limit", "100")];
    if let Some(a) = after {
        qs.push(("after", a));
    }
    let page = api.audit(&query_string(&qs)).await?;
    let verified = if get("verify") == Some("1") {
        Some(api.audit_verify().await?)
    } else {
        None
    };
    let mut ctx = frame(&ui, "audit");
    ctx["next"] = page["next_after"].clone();
    ctx["items"] = json!(items(page));
    ctx["verified"] = json!(verified);
    ok("audit.html", ctx)
}

/// `GET /ui/notifications?before=`: the built-in inbox.
pub async fn notifications(State(st): State<AppState>, ui: Ui, RawQuery(q): RawQuery) -> Page {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(q.as_deref().unwrap_or("")).unwrap_or_default();
    let before = pairs
        .iter()
        .find(|(k, _)| k == "before")
        .map(|(_, v)| v.as_str());
    let mut qs = vec![("limit", "100")];
    if let Some(b) = before {
        qs.push(("before", b));
    }
    let page = ui.api(&st).notifications(&query_string(&qs)).await?;
    let mut ctx = frame(&ui, "notifications");
    ctx["next"] = page["next"].clone();
    ctx["items"] = json!(items(page));
    ok("notifications.html", ctx)
}

// ---- response: rules, playbooks, policy

/// `GET /ui/response`: the rules, playbooks and policy in force, with their layers.
pub async fn response(State(st): State<AppState>, ui: Ui) -> Page {
    let api = ui.api(&st);
    let mut ctx = frame(&ui, "response");
    ctx["rules"] = json!(view::with_doc_names(items(api.in_force(Doc::Rules).await?)));
    ctx["playbooks"] = json!(view::with_doc_names(items(
        api.in_force(Doc::Playbooks).await?
    )));
    ctx["policy"] = api.in_force(Doc::Policy).await?;
    ok("response.html", ctx)
}

/// The editor's `doc` and `name` (the policy has one document).
fn doc_of(f: &HashMap<String, String>) -> Result<(Doc, String), UiError> {
    let doc = f
        .get("doc")
        .and_then(|d| Doc::parse(d))
        .ok_or_else(|| ApiError::BadRequest("`doc` must be rules, playbooks or policy".into()))?;
    let name = match doc {
        Doc::Policy => crate::layers::POLICY.to_owned(),
        _ => f
            .get("name")
            .map(|n| n.trim().to_owned())
            .unwrap_or_default(),
    };
    if name.is_empty() {
        return Err(ApiError::BadRequest("name the document".into()).into());
    }
    Ok((doc, name))
}

/// The editor's page: `text` as shown (stored, or as submitted with its `errors`).
async fn editor(
    api: &Api<'_>,
    ui: &Ui,
    doc: Doc,
    name: &str,
    text: Option<String>,
    errors: Option<String>,
) -> Page {
    let stored = match doc {
        Doc::Policy => api.in_force(Doc::Policy).await?["document"].clone(),
        _ => match api.doc(doc, name).await {
            Ok(v) => v,
            Err(ApiError::NotFound(_)) => Value::Null,
            Err(e) => return Err(e.into()),
        },
    };
    let versions = match api.versions(doc, name).await {
        Ok(v) => items(v),
        Err(ApiError::NotFound(_)) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    let status = if errors.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let text = text.unwrap_or_else(|| stored["text"].as_str().unwrap_or_default().to_owned());
    let mut ctx = frame(ui, "response");
    // A document being edited is not re-rendered under the person's hands.
    ctx["editing"] = json!(true);
    ctx["doc"] = json!(doc.as_str());
    ctx["name"] = json!(name);
    ctx["stored"] = stored;
    ctx["text"] = json!(text);
    ctx["errors"] = json!(errors.map(|e| e.lines().map(str::to_owned).collect::<Vec<_>>()));
    ctx["versions"] = json!(versions.into_iter().rev().collect::<Vec<_>>());
    Ok(page(status, "doc.html", ctx))
}

/// `GET /ui/response/edit?doc=&name=`: a tenant document, its versions, the editor.
pub async fn edit_doc(State(st): State<AppState>, ui: Ui, RawQuery(q): RawQuery) -> Page {
    let f: HashMap<String, String> =
        serde_urlencoded::from_str(q.as_deref().unwrap_or("")).unwrap_or_default();
    let (doc, name) = doc_of(&f)?;
    let api = ui.api(&st);
    editor(&api, &ui, doc, &name, None, None).await
}

fn edit_url(doc: Doc, name: &str) -> String {
    format!(
        "/ui/response/edit?{}",
        query_string(&[("doc", doc.as_str()), ("name", name)])
    )
}

/// `POST /ui/response/edit`: stores a new version; its validation errors are shown in the
/// editor beside the text as sent.
pub async fn save_doc(State(st): State<AppState>, ui: Ui, body: Body) -> Page {
    let f = form(body).await?;
    ui.check(f.get("csrf").map(String::as_str))?;
    let (doc, name) = doc_of(&f)?;
    let text = f
        .get("text")
        .cloned()
        .unwrap_or_default()
        .replace("\r\n", "\n");
    let api = ui.api(&st);
    match api.put_doc(doc, &name, text.clone()).await {
        Ok(_) => Ok(redirect(&edit_url(doc, &name))),
        Err(e @ (ApiError::Invalid { .. } | ApiError::BadRequest(_)))
            if crate::error::status_of(e.code()) == StatusCode::BAD_REQUEST =>
        {
            editor(&api, &ui, doc, &name, Some(text), Some(e.to_string())).await
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /ui/response/rollback`: stores `version` again as the newest.
pub async fn rollback_doc(State(st): State<AppState>, ui: Ui, body: Body) -> Page {
    let f = form(body).await?;
    ui.check(f.get("csrf").map(String::as_str))?;
    let (doc, name) = doc_of(&f)?;
    let version = f
        .get("version")
        .and_then(|v| v.parse::<u32>().ok())
        .ok_or_else(|| ApiError::BadRequest("`version` must be a version number".into()))?;
    ui.api(&st).rollback(doc, &name, version).await?;
    Ok(redirect(&edit_url(doc, &name)))
}

// ---- models

/// `GET /ui/models`: versions, slots, live counters, shadow agreement, drift.
pub async fn models(State(st): State<AppState>, ui: Ui) -> Page {
    let list = ui.api(&st).models().await?;
    let mut ctx = frame(&ui, "models");
    ctx["items"] = json!(items(list));
    ok("models.html", ctx)
}

/// `POST /ui/models/{id}/{promote|rollback}`
pub async fn change_model(
    State(st): State<AppState>,
    ui: Ui,
    Path((id, verb)): Path<(String, String)>,
    body: Body,
) -> Page {
    let f = form(body).await?;
    ui.check(f.get("csrf").map(String::as_str))?;
    let promote = match verb.as_str() {
        "promote" => true,
        "rollback" => false,
        _ => return Err(ApiError::NotFound(format!("route `/ui/models/{id}/{verb}`")).into()),
    };
    ui.api(&st).change_model(&id, promote).await?;
    Ok(redirect("/ui/models"))
}

// ---- live stream, errors

/// `GET /ui/stream`: `GET /v1/stream` for the signed-in session (cookie instead of a
/// bearer key, which a browser's EventSource cannot send).
pub async fn stream(State(st): State<AppState>, ui: Ui) -> Response {
    match crate::routes::stream::stream(State(st), ui.auth).await {
        Ok(sse) => {
            let mut r = sse.into_response();
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Err(e) => UiError::Api(e).into_response(),
    }
}

pub fn not_found_page() -> Response {
    error_page(
        StatusCode::NOT_FOUND,
        "not_found",
        "There is no such dashboard page.",
    )
}

pub async fn not_found() -> Response {
    not_found_page()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_stays_in_the_dashboard() {
        let f = |b: &str| HashMap::from([("back".to_owned(), b.to_owned())]);
        assert_eq!(
            back(&f("/ui/fleet?state=quarantined"), "/d"),
            "/ui/fleet?state=quarantined"
        );
        for evil in [
            "https://evil.example/",
            "//evil.example",
            "/ui//evil",
            "/\\evil",
            "/v1/x",
        ] {
            assert_eq!(back(&f(evil), "/d"), "/d", "{evil}");
        }
        assert_eq!(back(&HashMap::new(), "/d"), "/d");
    }

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(enc("agent:x"), "agent:x");
        assert_eq!(enc("a b/<c>"), "a%20b%2F%3Cc%3E");
        assert_eq!(enc("é"), "%C3%A9");
    }
}
