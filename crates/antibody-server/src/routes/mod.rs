//! The HTTP routes. Handlers are thin: extract, check the role, call the store or the
//! pipeline, shape the JSON. Every route is listed once in [`endpoints`], which builds both
//! the router and `/openapi.json`, so the two cannot drift apart.

mod admin;
pub(crate) mod catalog;
pub(crate) mod entities;
mod events;
pub(crate) mod findings;
pub(crate) mod incidents;
pub(crate) mod models;
pub(crate) mod notifications;
mod ops;
mod otlp;
pub(crate) mod respond;
pub(crate) mod stream;
mod webprof;

pub(crate) use models::reload as reload_models;

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
            "post",
            "/v1/otlp/v1/traces",
            "OTLP/HTTP trace export (protobuf or JSON; gzip allowed): gen_ai.* spans become llm events, an agent's spans task vitals; answered once durable",
            Some("ingest"),
            post(otlp::traces),
        ),
        ep(
            "post",
            "/v1/otlp/v1/logs",
            "OTLP/HTTP log export (protobuf or JSON; gzip allowed): gen_ai.* records become llm events; answered once durable",
            Some("ingest"),
            post(otlp::logs),
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
            "List incidents, most recently updated first (filters: status open|acknowledged|resolved (closed = resolved), entity, limit)",
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
        ep("post", "/v1/incidents/{id}/ack", "Acknowledge an open incident (empty body)", Some("analyst"), post(incidents::ack)),
        ep("post", "/v1/incidents/{id}/assign", "Assign an incident: {\"to\"}", Some("analyst"), post(incidents::assign)),
        ep("post", "/v1/incidents/{id}/notes", "Add a note to an incident: {\"text\"}", Some("analyst"), post(incidents::note)),
        ep("post", "/v1/incidents/{id}/resolve", "Resolve an incident: {\"resolution\": healed|mitigated|false_positive|external|accepted_risk, \"root_cause\"?}; writes its post-mortem", Some("analyst"), post(incidents::resolve)),
        ep("post", "/v1/incidents/{id}/reopen", "Reopen a resolved incident (empty body)", Some("analyst"), post(incidents::reopen)),
        ep("get", "/v1/incidents/{id}/postmortem", "The post-mortem of a resolved incident (JSON; ?format=md for Markdown)", Some("analyst"), get(incidents::postmortem)),
        ep("get", "/v1/entities", "The tenant's entities with their lifecycle state, and counts per state (filters: state, kind, q, limit, cursor)", Some("analyst"), get(entities::list_entities)),
        ep("post", "/v1/entities/heal-all", "Heal every contained or exhausted entity of the tenant", Some("analyst"), post(entities::heal_all)),
        ep(
            "get",
            "/v1/entities/{entity}",
            "An entity's lifecycle state and baselines",
            Some("analyst"),
            get(findings::get_entity),
        ),
        ep("put", "/v1/assets/{entity}", "Describe an entity: criticality 1–5, owner, tags, group, pid / container / host", Some("admin"), axum::routing::put(respond::put_asset)),
        ep("post", "/v1/assets", "Bulk import of assets (a JSON array; all validated before any is stored)", Some("admin"), post(respond::post_assets)),
        ep("get", "/v1/assets", "The tenant's assets", Some("analyst"), get(respond::list_assets)),
        ep("get", "/v1/actions", "Actions, most recently changed first (filter: status, limit)", Some("analyst"), get(respond::list_actions)),
        ep("get", "/v1/actions/{id}", "One action", Some("analyst"), get(respond::get_action)),
        ep("post", "/v1/actions/{id}/approve", "Approve a pending action (counts toward its required approvers)", Some("analyst"), post(respond::approve)),
        ep("post", "/v1/actions/{id}/reject", "Reject a pending action", Some("analyst"), post(respond::reject)),
        ep("post", "/v1/actions/{id}/undo", "Undo an applied action now", Some("analyst"), post(respond::undo)),
        ep("post", "/v1/actions/approve-all", "Approve every pending action of the tenant", Some("analyst"), post(respond::approve_all)),
        ep("post", "/v1/actions/reject-all", "Reject every pending action of the tenant", Some("analyst"), post(respond::reject_all)),
        ep("post", "/v1/entities/{entity}/heal", "Heal a contained entity now (ends quarantine; probation follows)", Some("analyst"), post(respond::heal)),
        ep("get", "/v1/entities/{entity}/verdict", "Pull-based enforcement: allow, throttle, block or quarantine, until when, why (incident), the rate, revoked tools and budget", Some("any"), get(respond::verdict)),
        ep("get", "/v1/blocklist", "Blocked IPs and CIDRs: plain text, one per line; ?format=json with TTLs", Some("any"), get(respond::blocklist)),
        ep("post", "/v1/feedback", "Label a finding or incident; a root_cause re-ranks diagnoses for the tenant", Some("analyst"), post(respond::feedback)),
        ep("get", "/v1/web-profiles", "The learned web profiles: the tenant's mode and every template with its parameters (filters: host, method, template)", Some("analyst"), get(webprof::list)),
        ep("delete", "/v1/web-profiles", "Reset web profiles: matching templates learn afresh (filters: host, method, template; none: every profile of the tenant); audited", Some("admin"), delete(webprof::reset)),
        ep("get", "/v1/web-profiles/export", "The tenant's web profiles as one document, for import elsewhere", Some("admin"), get(webprof::export)),
        ep("post", "/v1/web-profiles/import", "Import an export document: its hosts' profiles replace the tenant's; audited", Some("admin"), post(webprof::import)),
        ep("get", "/v1/audit", "The tenant's audit chain, oldest first (filters: after, subject, actor, kind, limit; format=ndjson)", Some("analyst"), get(respond::audit)),
        ep("get", "/v1/rules", "The rules in force for the tenant, each with its `layer` (tenant or global); ?scope=global: the global rules", Some("analyst"), get(catalog::list_rules)),
        ep("get", "/v1/rules/{name}", "The tenant's rule document (newest version), else the global file of that name; ?scope=global: the global file", Some("analyst"), get(catalog::get_doc::<catalog::Rules>)),
        ep("put", "/v1/rules/{name}", "Store a new version of the tenant's rule document (YAML): validated over the global rules (every error, file:line), in force at once, audited. ?scope=global replaces <data-dir>/rules/<name>.yml (bootstrap admin)", Some("admin"), axum::routing::put(catalog::put_doc::<catalog::Rules>)),
        ep("get", "/v1/rules/{name}/versions", "Every stored version of the tenant's rule document: version, ts, actor, sha256, rollback_of", Some("analyst"), get(catalog::versions::<catalog::Rules>)),
        ep("get", "/v1/rules/{name}/versions/{version}", "One version's text with a line diff against the version before it (or ?diff=<version>)", Some("analyst"), get(catalog::version::<catalog::Rules>)),
        ep("post", "/v1/rules/{name}/rollback", "Store version {\"version\"} again as the newest: validated, in force at once, audited", Some("admin"), post(catalog::rollback::<catalog::Rules>)),
        ep("get", "/v1/playbooks", "The playbooks in force for the tenant in priority order, each with its `layer` (tenant or global); ?scope=global: the global playbooks", Some("analyst"), get(catalog::list_playbooks)),
        ep("get", "/v1/playbooks/{name}", "The tenant's playbook document (newest version), else the global file of that name; ?scope=global: the global file", Some("analyst"), get(catalog::get_doc::<catalog::Playbooks>)),
        ep("put", "/v1/playbooks/{name}", "Store a new version of the tenant's playbook document (YAML; a playbook id replaces the global one for this tenant): validated (every error, file:line), in force at once, audited. ?scope=global replaces <data-dir>/playbooks/<name>.yml (bootstrap admin)", Some("admin"), axum::routing::put(catalog::put_doc::<catalog::Playbooks>)),
        ep("get", "/v1/playbooks/{name}/versions", "Every stored version of the tenant's playbook document: version, ts, actor, sha256, rollback_of", Some("analyst"), get(catalog::versions::<catalog::Playbooks>)),
        ep("get", "/v1/playbooks/{name}/versions/{version}", "One version's text with a line diff against the version before it (or ?diff=<version>)", Some("analyst"), get(catalog::version::<catalog::Playbooks>)),
        ep("post", "/v1/playbooks/{name}/rollback", "Store version {\"version\"} again as the newest: validated, in force at once, audited", Some("admin"), post(catalog::rollback::<catalog::Playbooks>)),
        ep("get", "/v1/policy", "The tenant's response policy in force (its own document over the configured one) and its document", Some("analyst"), get(catalog::get_policy)),
        ep("put", "/v1/policy", "Store a new version of the tenant's response policy (TOML or JSON by Content-Type; keys left out keep the configured value): modes, approval thresholds, allow-list, blast-radius caps; validated, in force at once, audited", Some("admin"), axum::routing::put(catalog::put_policy)),
        ep("get", "/v1/policy/versions", "Every stored version of the tenant's policy document", Some("analyst"), get(catalog::policy_versions)),
        ep("get", "/v1/policy/versions/{version}", "One policy version's text with a line diff against the version before it (or ?diff=<version>)", Some("analyst"), get(catalog::policy_version)),
        ep("post", "/v1/policy/rollback", "Store policy version {\"version\"} again as the newest: validated, in force at once, audited", Some("admin"), post(catalog::rollback_policy)),
        ep("get", "/v1/audit/verify", "Re-hash the audit chain and report where it breaks", Some("analyst"), get(respond::audit_verify)),
        ep("get", "/v1/notifications", "The built-in inbox: notify actions while no channel is configured, escalations and actions awaiting approval; newest first (filters: incident, entity, kind, since, limit, before)", Some("analyst"), get(notifications::list)),
        ep(
            "get",
            "/v1/stream",
            "Server-sent events: finding, incident (also on ack, assign, note, resolve, reopen), action, state, escalation, notification",
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
            "delete",
            "/v1/tenants/{id}",
            "Delete a tenant and revoke its keys (bootstrap admin only; not `default`); its records stay",
            Some("admin"),
            delete(admin::delete_tenant),
        ),
        ep(
            "post",
            "/v1/keys",
            "Create a key in the caller's tenant, optionally expiring (`expires_in`)",
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
            "Delete a key of the caller's tenant (never its last working admin key; the bootstrap key only by itself)",
            Some("admin"),
            delete(admin::delete_key),
        ),
        ep(
            "post",
            "/v1/keys/{id}/rotate",
            "Replace a key without downtime: a new key with the same role, the old one working until the grace period ends",
            Some("admin"),
            post(admin::rotate_key),
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
            "Prometheus metrics; the per-model series (tenant and model labels) need a key: the bootstrap admin sees every tenant's, any other key its own tenant's",
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
        ep(
            "get",
            "/v1/models",
            "The tenant's model versions with their slot, metrics, live counters, shadow agreement and drift",
            Some("analyst"),
            get(models::list),
        ),
        ep(
            "post",
            "/v1/models",
            "Upload a model (an `antibody train` bundle or ONNX, base64) bound to an event kind and field mapping",
            Some("admin"),
            post(models::upload),
        ),
        ep(
            "post",
            "/v1/models/{id}/promote",
            "Make a version active (the active one is retired and remembered for rollback)",
            Some("admin"),
            post(models::promote),
        ),
        ep(
            "post",
            "/v1/models/{id}/rollback",
            "Retire the active version and reactivate the one it replaced",
            Some("admin"),
            post(models::rollback),
        ),
        ep(
            "get",
            "/v1/review-queue",
            "Low-confidence model findings awaiting a label (label them with POST /v1/feedback)",
            Some("analyst"),
            get(models::review_queue),
        ),
    ]
}

pub(crate) fn bad_query(e: QueryRejection) -> ApiError {
    ApiError::BadRequest(format!("invalid query string: {}", e.body_text()))
}

pub(crate) fn bad_path(e: PathRejection) -> ApiError {
    ApiError::BadRequest(format!("invalid path: {}", e.body_text()))
}

/// Reads the body under a size limit and a deadline: 413 only for size, 408 for a client
/// too slow to send, 400 for a broken body.
pub(crate) async fn read_body(
    body: axum::body::Body,
    limit: usize,
    timeout: std::time::Duration,
) -> Result<axum::body::Bytes, ApiError> {
    match tokio::time::timeout(timeout, axum::body::to_bytes(body, limit)).await {
        Err(_) => Err(ApiError::Invalid {
            code: "request_timeout",
            message: format!(
                "the request body did not arrive within {} s",
                timeout.as_secs()
            ),
        }),
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) => {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            Err(if too_large {
                ApiError::Invalid {
                    code: "payload_too_large",
                    message: format!(
                        "request body exceeds {limit} bytes; split it into smaller batches"
                    ),
                }
            } else {
                ApiError::BadRequest(format!("the request body could not be read: {e}"))
            })
        }
    }
}

/// Small request bodies (admin, response, configuration) get this long to arrive.
pub(crate) const SMALL_BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Reads a JSON body of at most `limit` bytes into `T`, in the API's error shape.
pub(crate) async fn json_body<T: serde::de::DeserializeOwned>(
    body: axum::body::Body,
    limit: usize,
) -> Result<T, ApiError> {
    let bytes = read_body(body, limit, SMALL_BODY_TIMEOUT).await?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))
}

/// [`json_body`], where an empty body means every field's default.
pub(crate) async fn json_body_or_default<T: serde::de::DeserializeOwned + Default>(
    body: axum::body::Body,
    limit: usize,
) -> Result<T, ApiError> {
    let bytes = read_body(body, limit, SMALL_BODY_TIMEOUT).await?;
    if bytes.trim_ascii().is_empty() {
        return Ok(T::default());
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))
}

/// Reads a UTF-8 text body of at most `limit` bytes.
pub(crate) async fn text_body(body: axum::body::Body, limit: usize) -> Result<String, ApiError> {
    let bytes = read_body(body, limit, SMALL_BODY_TIMEOUT).await?;
    String::from_utf8(bytes.to_vec())
        .map_err(|_| ApiError::BadRequest("the body must be UTF-8".into()))
}

/// Only the bootstrap admin may touch what every tenant shares (tenants, rules, playbooks).
pub(crate) fn require_bootstrap(
    auth: &crate::auth::Auth,
    action: &'static str,
) -> Result<(), ApiError> {
    if auth.0.role == antibody_store::Role::Admin && auth.0.bootstrap {
        Ok(())
    } else {
        Err(ApiError::Forbidden {
            have: auth.0.role.as_str(),
            need: "bootstrap admin",
            action,
        })
    }
}
