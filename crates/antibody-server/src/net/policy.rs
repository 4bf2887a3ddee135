//! What every response carries whatever the route: security headers, `no-store` when the
//! request carried a key, CORS (closed unless the origin is on the allow-list) and the URI
//! length limit.

use crate::error::ApiError;
use axum::extract::{Request, State};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// Request targets (path and query) longer than this get 414.
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// `[cors]` and what the listener is.
#[derive(Clone, Debug, Default)]
pub struct HttpPolicy {
    /// Origins (`https://console.example.com`) whose browsers may call the API; none by
    /// default. `*` is refused at configuration: keys are bearer secrets.
    pub cors_origins: Vec<String>,
    /// The listener speaks TLS: browsers are told to keep to HTTPS (HSTS).
    pub tls: bool,
}

impl HttpPolicy {
    fn allows(&self, origin: &HeaderValue) -> bool {
        origin
            .to_str()
            .is_ok_and(|o| self.cors_origins.iter().any(|a| a == o))
    }
}

/// The middleware (`axum::middleware::from_fn_with_state`).
pub async fn apply(State(policy): State<Arc<HttpPolicy>>, req: Request, next: Next) -> Response {
    let target = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if target > MAX_URI_BYTES {
        let e = ApiError::Invalid {
            code: "uri_too_long",
            message: format!(
                "the request target is {target} bytes; at most {MAX_URI_BYTES} are accepted"
            ),
        };
        return finish(e.into_response(), &policy, None, false);
    }
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .filter(|o| policy.allows(o))
        .cloned();
    let keyed = req.headers().contains_key(header::AUTHORIZATION);
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if preflight {
        let resp = match &origin {
            Some(_) => preflight_ok(),
            None => ApiError::Invalid {
                code: "origin_not_allowed",
                message:
                    "this origin is not on the server's CORS allow-list ([cors] allowed_origins)"
                        .into(),
            }
            .into_response(),
        };
        return finish(resp, &policy, origin, false);
    }
    let resp = next.run(req).await;
    finish(resp, &policy, origin, keyed)
}

fn preflight_ok() -> Response {
    let mut resp = StatusCode::NO_CONTENT.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, PUT, DELETE"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("authorization, content-type, content-encoding"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    resp
}

fn finish(
    mut resp: Response,
    policy: &HttpPolicy,
    origin: Option<HeaderValue>,
    keyed: bool,
) -> Response {
    let h = resp.headers_mut();
    security_headers(h, policy.tls);
    if keyed {
        // Answers to a key are that key's tenant's data: no cache may keep them.
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    h.append(header::VARY, HeaderValue::from_static("origin"));
    if let Some(origin) = origin {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("retry-after"),
        );
    }
    resp
}

fn security_headers(h: &mut HeaderMap, tls: bool) {
    let set = |h: &mut HeaderMap, name, value| {
        h.insert(name, HeaderValue::from_static(value));
    };
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::REFERRER_POLICY, "no-referrer");
    // JSON and text only: nothing here may run script or be framed. The dashboard's pages
    // set their own (still no inline script: `ui::CSP`).
    h.entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(
            "default-src 'none'; frame-ancestors 'none'",
        ));
    if tls {
        set(h, header::STRICT_TRANSPORT_SECURITY, "max-age=31536000");
    }
}
