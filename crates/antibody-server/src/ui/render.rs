//! Templates and the headers of every page. Auto-escaping is on for every template
//! whatever its name: a value from an event (an entity name, a rule's text, a finding's
//! explanation) is always text, never markup. Only SVG drawn by [`super::charts`] is
//! marked safe.

use super::assets;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use minijinja::{AutoEscape, Environment};
use serde::Serialize;
use std::sync::LazyLock;

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("signin.html", include_str!("templates/signin.html")),
    ("error.html", include_str!("templates/error.html")),
    ("overview.html", include_str!("templates/overview.html")),
    ("fleet.html", include_str!("templates/fleet.html")),
    ("entity.html", include_str!("templates/entity.html")),
    ("incidents.html", include_str!("templates/incidents.html")),
    ("incident.html", include_str!("templates/incident.html")),
    ("approvals.html", include_str!("templates/approvals.html")),
    ("audit.html", include_str!("templates/audit.html")),
    (
        "notifications.html",
        include_str!("templates/notifications.html"),
    ),
    ("macros.html", include_str!("templates/macros.html")),
    ("response.html", include_str!("templates/response.html")),
    ("doc.html", include_str!("templates/doc.html")),
    ("models.html", include_str!("templates/models.html")),
];

static ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| AutoEscape::Html);
    env.add_global("js", assets::url("app.js"));
    env.add_global("css", assets::url("app.css"));
    env.add_global("icon", assets::url("icon.svg"));
    env.add_filter("short", |v: f64| super::charts::short(v));
    // Any value (a missing one is empty) percent-encoded: a link never fails to render.
    env.add_filter("enc", |v: minijinja::Value| {
        if v.is_none() || v.is_undefined() {
            String::new()
        } else {
            super::pages::enc(&v.to_string())
        }
    });
    env.add_filter("time", |ms: i64| antibody_core::clock::format_rfc3339(ms));
    for (name, src) in TEMPLATES {
        if let Err(e) = env.add_template(name, src) {
            // The templates are part of the binary: a broken one is a build-time bug,
            // caught by the tests that render every page.
            tracing::error!(template = name, error = %e, "dashboard template does not parse");
        }
    }
    env
});

/// Renders template `name` with `ctx` as a page: HTML, the dashboard's CSP, never cached
/// (pages hold the tenant's data).
pub fn page(status: StatusCode, name: &str, ctx: impl Serialize) -> Response {
    let html = ENV.get_template(name).and_then(|t| t.render(ctx));
    match html {
        Ok(html) => html_response(status, html),
        Err(e) => {
            tracing::error!(template = name, error = %e, "dashboard page failed to render");
            html_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "<!doctype html><title>antibody</title><p>This page failed to render; the server log says why.</p>".into(),
            )
        }
    }
}

fn html_response(status: StatusCode, html: String) -> Response {
    let mut r = (status, html).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(super::CSP),
    );
    r
}

/// An error as a page: the API's code and message, a way back.
pub fn error_page(status: StatusCode, code: &str, message: &str) -> Response {
    page(
        status,
        "error.html",
        minijinja::context! { status => status.as_u16(), code, message },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses() {
        for (name, _) in TEMPLATES {
            assert!(ENV.get_template(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn values_are_escaped() {
        let r = ENV
            .get_template("error.html")
            .unwrap()
            .render(minijinja::context! {
                status => 400, code => "x", message => "<script>alert(1)</script>"
            })
            .unwrap();
        assert!(!r.contains("<script>alert"), "{r}");
        assert!(
            r.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
            "{r}"
        );
    }
}
