//! The operator dashboard, served by the binary at `/` (sign-in) and `/ui/` (the pages).
//!
//! Server-rendered HTML ([`render`], templates beside this file, every value HTML-escaped)
//! with SVG charts drawn here ([`charts`]) and one small script of ours (`static/app.js`)
//! for live updates over `/ui/stream`. Every page's data comes from the JSON API's own
//! handlers ([`api`]), called with the session's key: what a page shows, a script could
//! fetch. Forms post to `/ui/...`, check the session's CSRF token, call the same handlers
//! and redirect back (no script needed to act).

mod api;
mod assets;
pub mod charts;
mod pages;
mod render;
pub mod session;
mod view;

use crate::auth::Auth;
use crate::error::{status_of, ApiError};
use crate::state::AppState;
use antibody_store::Role;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use session::Sessions;
use std::sync::Arc;

/// The dashboard's routes; `secure`: the listener speaks TLS (cookies get `Secure`).
pub fn routes(secure: bool) -> Router<AppState> {
    Router::new()
        .route("/", get(pages::signin_page))
        .route("/ui/signin", post(pages::signin))
        .route("/ui/signout", post(pages::signout))
        .route("/ui", get(pages::to_overview))
        .route("/ui/", get(pages::overview))
        .route("/ui/fleet", get(pages::fleet))
        .route("/ui/entities/{entity}", get(pages::entity))
        .route("/ui/entities/{entity}/heal", post(pages::heal))
        .route("/ui/incidents", get(pages::incidents))
        .route("/ui/incidents/{id}", get(pages::incident))
        .route("/ui/incidents/{id}/{verb}", post(pages::work_incident))
        .route("/ui/actions/{id}/{verb}", post(pages::answer_action))
        .route("/ui/approvals", get(pages::approvals))
        .route("/ui/approvals/{verb}", post(pages::answer_all))
        .route("/ui/response", get(pages::response))
        .route(
            "/ui/response/edit",
            get(pages::edit_doc).post(pages::save_doc),
        )
        .route("/ui/response/rollback", post(pages::rollback_doc))
        .route("/ui/models", get(pages::models))
        .route("/ui/models/{id}/{verb}", post(pages::change_model))
        .route("/ui/audit", get(pages::audit))
        .route("/ui/notifications", get(pages::notifications))
        .route("/ui/stream", get(pages::stream))
        .route("/ui/static/{file}", get(assets::serve))
        .route("/ui/{*rest}", get(pages::not_found))
        .layer(Extension(Arc::new(Sessions::new(secure))))
}

/// The Content-Security-Policy of every page: our own script and stylesheet only (no
/// inline script or style), forms post only here, nothing may frame a page.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; \
    frame-ancestors 'none'";

/// A signed-in person: their key (re-authenticated on every request) and the session's
/// CSRF token.
pub struct Ui {
    pub auth: Auth,
    pub csrf: String,
    pub sid: String,
    pub sessions: Arc<Sessions>,
}

/// Why a page could not be shown.
#[derive(Debug)]
pub enum UiError {
    /// No live session: back to the sign-in page.
    SignIn,
    /// The API refused or failed: an HTML page with the API's message and status.
    Api(ApiError),
    /// A form without the session's CSRF token.
    Csrf,
}

impl From<ApiError> for UiError {
    fn from(e: ApiError) -> Self {
        Self::Api(e)
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        match self {
            Self::SignIn => redirect("/"),
            Self::Csrf => render::error_page(
                StatusCode::FORBIDDEN,
                "csrf",
                "This form has expired or did not come from this dashboard. Reload the page and try again.",
            ),
            Self::Api(e) => {
                let code = e.code();
                render::error_page(status_of(code), code, &e.to_string())
            }
        }
    }
}

/// 303 to `to` (after a form post, or to the sign-in page).
pub fn redirect(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn sessions(parts: &Parts) -> Result<Arc<Sessions>, UiError> {
    parts
        .extensions
        .get::<Arc<Sessions>>()
        .cloned()
        .ok_or_else(|| UiError::Api(ApiError::Internal("dashboard sessions missing".into())))
}

impl FromRequestParts<AppState> for Ui {
    type Rejection = UiError;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, UiError> {
        let sessions = sessions(parts)?;
        let sid = parts
            .headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|h| session::cookie_value(h, session::COOKIE))
            .ok_or(UiError::SignIn)?
            .to_owned();
        let s = sessions
            .get(&sid, st.clock.now_ms())
            .ok_or(UiError::SignIn)?;
        // A key deleted, rotated away or expired since sign-in ends the session.
        let info = match crate::auth::authenticate(st, &s.secret).await {
            Ok(info) => info,
            Err(ApiError::Unavailable(m)) => return Err(ApiError::Unavailable(m).into()),
            Err(_) => {
                sessions.end(&sid);
                return Err(UiError::SignIn);
            }
        };
        let auth = Auth(info);
        auth.require(Role::Analyst, "use the dashboard")?;
        Ok(Ui {
            auth,
            csrf: s.csrf,
            sid,
            sessions,
        })
    }
}

impl Ui {
    /// The JSON API's handlers, called as this person.
    pub fn api<'a>(&'a self, st: &'a AppState) -> api::Api<'a> {
        api::Api {
            st,
            auth: &self.auth,
        }
    }

    /// Refuses a form whose `csrf` field is not this session's token.
    pub fn check(&self, form_csrf: Option<&str>) -> Result<(), UiError> {
        match form_csrf {
            Some(t) if session::same_token(t, &self.csrf) => Ok(()),
            _ => Err(UiError::Csrf),
        }
    }
}
