//! The HTTP routes. Handlers are thin: extract, check the role, call the store or the
//! pipeline, shape the JSON. Every route is listed once in [`endpoints`], which builds both
//! the router and `/openapi.json`, so the two cannot drift apart.

mod admin;
mod events;
mod findings;
mod ops;
mod stream;

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::routing::{delete, get, post, MethodRouter};

/// One documented operation.
pub struct Endpoint {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    /// Role needed: `None` for public routes.
    pub role: Option<&'static str>,
    pub route: MethodRouter<AppState>,
}

pub fn endpoints() -> Vec<Endpoint> {
    let ep = |method, path, summary, role, route| Endpoint {
        method,
        path,
        summary,
        role,
        route,
    };
    vec![
        ep(
            "post",
            "/v1/events",
            "Send events (JSON object, array or NDJSON; gzip allowed)",
            Some("ingest"),
            post(events::post_events),
        ),
        ep(
            "get",
            "/v1/findings",
            "List findings, newest first (filters: entity, kind, since, limit, before)",
            Some("analyst"),
            get(findings::list_findings),
        ),
        ep(
            "get",
            "/v1/findings/{id}",
            "One finding",
            Some("analyst"),
            get(findings::get_finding),
        ),
        ep(
            "get",
            "/v1/incidents",
            "List incidents, most recently updated first (filters: status, entity, limit)",
            Some("analyst"),
            get(findings::list_incidents),
        ),
        ep(
            "get",
            "/v1/incidents/{id}",
            "One incident",
            Some("analyst"),
            get(findings::get_incident),
        ),
        ep(
            "get",
            "/v1/entities/{entity}",
            "An entity's lifecycle state and baselines",
            Some("analyst"),
            get(findings::get_entity),
        ),
        ep(
            "get",
            "/v1/stream",
            "Server-sent events: finding, incident",
            Some("analyst"),
            get(stream::stream),
        ),
        ep(
            "post",
            "/v1/tenants",
            "Create a tenant and its first admin key (bootstrap admin only)",
            Some("admin"),
            post(admin::create_tenant),
        ),
        ep(
            "get",
            "/v1/tenants",
            "List tenants (bootstrap admin only)",
            Some("admin"),
            get(admin::list_tenants),
        ),
        ep(
            "post",
            "/v1/keys",
            "Create a key in the caller's tenant",
            Some("admin"),
            post(admin::create_key),
        ),
        ep(
            "get",
            "/v1/keys",
            "List the keys of the caller's tenant (no secrets)",
            Some("admin"),
            get(admin::list_keys),
        ),
        ep(
            "delete",
            "/v1/keys/{id}",
            "Delete a key of the caller's tenant",
            Some("admin"),
            delete(admin::delete_key),
        ),
        ep("get", "/healthz", "Liveness", None, get(ops::healthz)),
        ep(
            "get",
            "/readyz",
            "Readiness: recovery done and the pipeline running",
            None,
            get(ops::readyz),
        ),
        ep(
            "get",
            "/metrics",
            "Prometheus metrics",
            None,
            get(ops::metrics),
        ),
        ep(
            "get",
            "/openapi.json",
            "This API description",
            None,
            get(ops::openapi),
        ),
    ]
}

pub(crate) fn bad_query(e: QueryRejection) -> ApiError {
    ApiError::BadRequest(format!("invalid query string: {}", e.body_text()))
}

pub(crate) fn bad_path(e: PathRejection) -> ApiError {
    ApiError::BadRequest(format!("invalid path: {}", e.body_text()))
}
