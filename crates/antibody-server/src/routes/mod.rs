//! The HTTP routes. Handlers are thin: extract, check the role, call the store or the
//! pipeline, shape the JSON. Every route is listed once in [`endpoints`], which builds both
//! the router and `/openapi.json`, so the two cannot drift apart.

mod admin;
pub(crate) mod catalog;
pub(crate) mod entities;
pub(crate) mod events;
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
use crate::openapi::{self, inline_of, schema_of, Content, Media, Reply, SchemaFn};
use crate::state::AppState;
use antibody_store::Role;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::routing::{delete, get, post, put, MethodRouter};
use schemars::JsonSchema;

/// An HTTP method of the route table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "get",
            Self::Post => "post",
            Self::Put => "put",
            Self::Delete => "delete",
        }
    }
}

/// Who may call an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// No key (a key, when sent, must still be valid: `/metrics`).
    Public,
    /// Any key of the tenant (enforcement points use ingest keys).
    AnyKey,
    /// A key whose role grants this one.
    Role(Role),
}

impl Access {
    /// `x-required-role` in the document; `None` for public routes.
    pub fn role_name(self) -> Option<&'static str> {
        match self {
            Self::Public => None,
            Self::AnyKey => Some("any"),
            Self::Role(r) => Some(r.as_str()),
        }
    }
}

/// A request header an operation reads, with the values it accepts.
pub struct Header {
    pub name: &'static str,
    pub description: &'static str,
    pub values: &'static [&'static str],
}

/// `Content-Encoding` of an ingest body.
const CONTENT_ENCODING: Header = Header {
    name: "Content-Encoding",
    description: "`gzip` for a gzip-compressed body",
    values: &["gzip", "identity"],
};

/// One documented operation: the route, and the types its handler reads and writes (their
/// schemas make `/openapi.json`).
pub struct Endpoint {
    pub method: Method,
    pub path: &'static str,
    pub summary: &'static str,
    pub access: Access,
    pub route: MethodRouter<AppState>,
    /// The query string's type (its fields are the parameters).
    pub query: Option<SchemaFn>,
    /// Path parameters that are not strings.
    pub path_types: Vec<(&'static str, SchemaFn)>,
    pub headers: Vec<Header>,
    /// The request body in each media type it may come in; empty: none.
    pub body: Vec<Content>,
    /// Whether a body must be sent (`false`: an empty body is fine).
    pub body_required: bool,
    /// Success responses.
    pub replies: Vec<Reply>,
    /// Error statuses the handler itself may answer, beyond those its access and inputs
    /// imply (see [`Endpoint::error_statuses`]).
    pub errors: Vec<u16>,
}

fn ep(
    method: Method,
    path: &'static str,
    summary: &'static str,
    access: Access,
    route: MethodRouter<AppState>,
) -> Endpoint {
    Endpoint {
        method,
        path,
        summary,
        access,
        route,
        query: None,
        path_types: Vec::new(),
        headers: Vec::new(),
        body: Vec::new(),
        body_required: false,
        replies: Vec::new(),
        errors: Vec::new(),
    }
}

impl Endpoint {
    fn query<Q: JsonSchema>(mut self) -> Self {
        self.query = Some(inline_of::<Q>);
        self
    }

    fn path_type<T: JsonSchema>(mut self, name: &'static str) -> Self {
        self.path_types.push((name, schema_of::<T>));
        self
    }

    fn header(mut self, h: Header) -> Self {
        self.headers.push(h);
        self
    }

    /// A JSON body that must be sent.
    fn json<B: JsonSchema>(self) -> Self {
        self.body(Media::Json, schema_of::<B>, true)
    }

    /// A body that may be left empty, or be `{}` (the handler reads [`Empty`]).
    fn empty_body(self) -> Self {
        self.body(Media::Json, schema_of::<Empty>, false)
    }

    fn body(mut self, media: Media, schema: SchemaFn, required: bool) -> Self {
        self.body.push(Content { media, schema });
        self.body_required = required;
        self
    }

    /// A JSON success response.
    fn ok<R: JsonSchema>(self, status: u16) -> Self {
        self.reply(status, Media::Json, schema_of::<R>)
    }

    fn reply(mut self, status: u16, media: Media, schema: SchemaFn) -> Self {
        let content = Content { media, schema };
        match self.replies.iter_mut().find(|r| r.status == status) {
            Some(r) => r.content.push(content),
            None => self.replies.push(Reply {
                status,
                content: vec![content],
            }),
        }
        self
    }

    fn no_content(mut self) -> Self {
        self.replies.push(Reply {
            status: 204,
            content: Vec::new(),
        });
        self
    }

    fn errors(mut self, statuses: &[u16]) -> Self {
        self.errors.extend_from_slice(statuses);
        self
    }

    /// The schema of path parameter `name` (a string unless typed).
    pub fn path_schema(&self, name: &str, g: &mut schemars::SchemaGenerator) -> serde_json::Value {
        match self.path_types.iter().find(|(n, _)| *n == name) {
            Some((_, f)) => f(g).to_value(),
            None => serde_json::json!({"type": "string"}),
        }
    }

    /// Every error status the operation may answer with: 400 for a malformed path, query
    /// or body; 401/403 for the key; 404 for an unknown path id; 408/413 while reading a
    /// body; 414 for an overlong query string; 503 when the store or the engine cannot
    /// answer (every keyed call reads the store); and the handler's own.
    pub fn error_statuses(&self) -> std::collections::BTreeSet<u16> {
        let has_path = openapi::path_params(self.path).next().is_some();
        let mut out: std::collections::BTreeSet<u16> = self.errors.iter().copied().collect();
        if has_path || self.query.is_some() || !self.body.is_empty() {
            out.insert(400);
        }
        if self.access != Access::Public {
            out.extend([401, 503]);
        }
        if matches!(self.access, Access::Role(_)) {
            out.insert(403);
        }
        if has_path {
            out.insert(404);
        }
        if !self.body.is_empty() {
            out.extend([408, 413]);
        }
        if self.query.is_some() {
            out.insert(414);
        }
        out
    }
}

/// The body of a call that takes none: nothing, or `{}`.
#[derive(serde::Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

/// A list answer: `{"items": [...]}`.
#[derive(serde::Serialize, JsonSchema)]
#[schemars(rename = "{T}Items")]
pub struct Items<T> {
    pub items: Vec<T>,
}

impl<T> Items<T> {
    pub fn of(items: Vec<T>) -> axum::Json<Self> {
        axum::Json(Self { items })
    }
}

pub fn endpoints() -> Vec<Endpoint> {
    use Access::{AnyKey, Public};
    use Method::{Delete, Get, Post, Put};
    let (ingest, analyst, admin) = (
        Access::Role(Role::Ingest),
        Access::Role(Role::Analyst),
        Access::Role(Role::Admin),
    );
    vec![
        ep(
            Post,
            "/v1/events",
            "Send events (JSON object, array or NDJSON; gzip allowed)",
            ingest,
            post(events::post_events),
        )
        .json::<events::EventsIn>()
            .body(Media::Ndjson, openapi::text, true)
            .header(CONTENT_ENCODING)
            .ok::<events::Ingested>(202)
            .errors(&[415, 429]),
        ep(
            Post,
            "/v1/otlp/v1/traces",
            "OTLP/HTTP trace export (protobuf or JSON; gzip allowed): gen_ai.* spans become llm events, an agent's spans task vitals; answered once durable",
            ingest,
            post(otlp::traces),
        )
        .body(Media::Protobuf, openapi::binary, true)
            .body(Media::Json, openapi::otlp_json, true)
            .header(CONTENT_ENCODING)
            .reply(200, Media::Protobuf, openapi::binary)
            .ok::<antibody_formats::otlp::ExportResponseJson>(200)
            .errors(&[415, 429]),
        ep(
            Post,
            "/v1/otlp/v1/logs",
            "OTLP/HTTP log export (protobuf or JSON; gzip allowed): gen_ai.* records become llm events; answered once durable",
            ingest,
            post(otlp::logs),
        )
        .body(Media::Protobuf, openapi::binary, true)
            .body(Media::Json, openapi::otlp_json, true)
            .header(CONTENT_ENCODING)
            .reply(200, Media::Protobuf, openapi::binary)
            .ok::<antibody_formats::otlp::ExportResponseJson>(200)
            .errors(&[415, 429]),
        ep(
            Get,
            "/v1/findings",
            "List findings, newest first (filters: entity, kind, since, limit, before)",
            analyst,
            get(findings::list_findings),
        )
        .query::<findings::FindingParams>()
            .ok::<findings::Page<antibody_core::Finding>>(200),
        ep(
            Get,
            "/v1/findings/{id}",
            "One finding",
            analyst,
            get(findings::get_finding),
        )
        .ok::<antibody_core::Finding>(200),
        ep(
            Get,
            "/v1/incidents",
            "List incidents, most recently updated first (filters: status open|acknowledged|resolved (closed = resolved), entity, limit)",
            analyst,
            get(findings::list_incidents),
        )
        .query::<findings::IncidentParams>()
            .ok::<Items<antibody_core::Incident>>(200),
        ep(
            Get,
            "/v1/incidents/{id}",
            "One incident",
            analyst,
            get(findings::get_incident),
        )
        .ok::<findings::IncidentView>(200),
        ep(
            Post,
            "/v1/incidents/{id}/ack",
            "Acknowledge an open incident (empty body)",
            analyst,
            post(incidents::ack),
        )
        .empty_body()
            .ok::<antibody_core::Incident>(200)
            .errors(&[409]),
        ep(
            Post,
            "/v1/incidents/{id}/assign",
            "Assign an incident: {\"to\"}",
            analyst,
            post(incidents::assign),
        )
        .json::<incidents::AssignReq>()
            .ok::<antibody_core::Incident>(200)
            .errors(&[409]),
        ep(
            Post,
            "/v1/incidents/{id}/notes",
            "Add a note to an incident: {\"text\"}",
            analyst,
            post(incidents::note),
        )
        .json::<incidents::NoteReq>()
            .ok::<antibody_core::Incident>(200)
            .errors(&[409]),
        ep(
            Post,
            "/v1/incidents/{id}/resolve",
            "Resolve an incident: {\"resolution\": healed|mitigated|false_positive|external|accepted_risk, \"root_cause\"?}; writes its post-mortem",
            analyst,
            post(incidents::resolve),
        )
        .json::<incidents::ResolveReq>()
            .ok::<antibody_core::Incident>(200)
            .errors(&[409]),
        ep(
            Post,
            "/v1/incidents/{id}/reopen",
            "Reopen a resolved incident (empty body)",
            analyst,
            post(incidents::reopen),
        )
        .empty_body()
            .ok::<antibody_core::Incident>(200)
            .errors(&[409]),
        ep(
            Get,
            "/v1/incidents/{id}/postmortem",
            "The post-mortem of a resolved incident (JSON; ?format=md for Markdown)",
            analyst,
            get(incidents::postmortem),
        )
        .query::<incidents::PostmortemParams>()
            .ok::<antibody_respond::postmortem::Postmortem>(200)
            .reply(200, Media::Markdown, openapi::text),
        ep(
            Get,
            "/v1/entities",
            "The tenant's entities with their lifecycle state, and counts per state (filters: state, kind, q, limit, cursor)",
            analyst,
            get(entities::list_entities),
        )
        .query::<entities::EntityParams>()
            .ok::<entities::EntityPage>(200),
        ep(
            Post,
            "/v1/entities/heal-all",
            "Heal every contained or exhausted entity of the tenant",
            analyst,
            post(entities::heal_all),
        )
        .empty_body()
            .ok::<entities::Healed>(200)
            .errors(&[409]),
        ep(
            Get,
            "/v1/entities/{entity}",
            "An entity's lifecycle state and baselines",
            analyst,
            get(findings::get_entity),
        )
        .ok::<findings::EntityView>(200),
        ep(
            Put,
            "/v1/assets/{entity}",
            "Describe an entity: criticality 1–5, owner, tags, group, pid / container / host",
            admin,
            put(respond::put_asset),
        )
        .json::<antibody_respond::Asset>()
            .ok::<antibody_respond::Asset>(200),
        ep(
            Post,
            "/v1/assets",
            "Bulk import of assets (a JSON array; all validated before any is stored)",
            admin,
            post(respond::post_assets),
        )
        .json::<Vec<antibody_respond::Asset>>()
            .ok::<respond::StoredCount>(200),
        ep(
            Get,
            "/v1/assets",
            "The tenant's assets",
            analyst,
            get(respond::list_assets),
        )
        .ok::<Items<antibody_respond::Asset>>(200),
        ep(
            Get,
            "/v1/actions",
            "Actions, most recently changed first (filter: status, limit)",
            analyst,
            get(respond::list_actions),
        )
        .query::<respond::ActionParams>()
            .ok::<Items<antibody_respond::Action>>(200),
        ep(
            Get,
            "/v1/actions/{id}",
            "One action",
            analyst,
            get(respond::get_action),
        )
        .ok::<antibody_respond::Action>(200),
        ep(
            Post,
            "/v1/actions/{id}/approve",
            "Approve a pending action (counts toward its required approvers)",
            analyst,
            post(respond::approve),
        )
        .empty_body()
            .ok::<Items<antibody_respond::Action>>(200)
            .errors(&[409]),
        ep(
            Post,
            "/v1/actions/{id}/reject",
            "Reject a pending action",
            analyst,
            post(respond::reject),
        )
        .empty_body()
            .ok::<Items<antibody_respond::Action>>(200)
            .errors(&[409]),
        ep(
            Post,
            "/v1/actions/{id}/undo",
            "Undo an applied action now",
            analyst,
            post(respond::undo),
        )
        .empty_body()
            .ok::<Items<antibody_respond::Action>>(200)
            .errors(&[409]),
        ep(
            Post,
            "/v1/actions/approve-all",
            "Approve every pending action of the tenant",
            analyst,
            post(respond::approve_all),
        )
        .empty_body()
            .ok::<Items<antibody_respond::Action>>(200)
            .errors(&[409]),
        ep(
            Post,
            "/v1/actions/reject-all",
            "Reject every pending action of the tenant",
            analyst,
            post(respond::reject_all),
        )
        .empty_body()
            .ok::<Items<antibody_respond::Action>>(200)
            .errors(&[409]),
        ep(
            Post,
            "/v1/entities/{entity}/heal",
            "Heal a contained entity now (ends quarantine; probation follows)",
            analyst,
            post(respond::heal),
        )
        .empty_body()
            .ok::<Items<antibody_respond::Action>>(200)
            .errors(&[409]),
        ep(
            Get,
            "/v1/entities/{entity}/verdict",
            "Pull-based enforcement: allow, throttle, block or quarantine, until when, why (incident), the rate, revoked tools and budget",
            AnyKey,
            get(respond::verdict),
        )
        .ok::<respond::VerdictBody>(200),
        ep(
            Get,
            "/v1/blocklist",
            "Blocked IPs and CIDRs: plain text, one per line; ?format=json with TTLs",
            AnyKey,
            get(respond::blocklist),
        )
        .query::<respond::BlocklistParams>()
            .reply(200, Media::Text, openapi::text)
            .ok::<Items<respond::BlockItem>>(200),
        ep(
            Post,
            "/v1/feedback",
            "Label a finding or incident; a root_cause re-ranks diagnoses for the tenant",
            analyst,
            post(respond::feedback),
        )
        .json::<respond::FeedbackReq>()
            .ok::<respond::FeedbackDone>(202)
            .errors(&[404, 409]),
        ep(
            Get,
            "/v1/web-profiles",
            "The learned web profiles: the tenant's mode and every template with its parameters (filters: host, method, template)",
            analyst,
            get(webprof::list),
        )
        .query::<webprof::Filter>()
            .ok::<webprof::WebProfiles>(200),
        ep(
            Delete,
            "/v1/web-profiles",
            "Reset web profiles: matching templates learn afresh (filters: host, method, template; none: every profile of the tenant); audited",
            admin,
            delete(webprof::reset),
        )
        .query::<webprof::Filter>()
            .ok::<webprof::ResetDone>(200),
        ep(
            Get,
            "/v1/web-profiles/mode",
            "The tenant's web profile mode in force: on, learn_only (learn, report nothing) or off",
            analyst,
            get(webprof::get_mode),
        )
        .ok::<webprof::ModeView>(200),
        ep(
            Put,
            "/v1/web-profiles/mode",
            "Set the tenant's web profile mode {\"mode\": \"on\"|\"learn_only\"|\"off\"} over the configured one: in order with its events, survives restarts; audited",
            admin,
            axum::routing::put(webprof::put_mode),
        )
        .json::<webprof::ModeBody>()
        .ok::<webprof::ModeChanged>(200)
        .errors(&[409]),
        ep(
            Get,
            "/v1/web-profiles/export",
            "The tenant's web profiles as one document, for import elsewhere",
            admin,
            get(webprof::export),
        )
        .ok::<crate::webprof::Document>(200),
        ep(
            Post,
            "/v1/web-profiles/import",
            "Import an export document: its hosts' profiles replace the tenant's; audited",
            admin,
            post(webprof::import),
        )
        .json::<crate::webprof::Document>()
            .ok::<webprof::Imported>(200),
        ep(
            Get,
            "/v1/audit",
            "The tenant's audit chain, oldest first (filters: after, subject, actor, kind, limit; format=ndjson)",
            analyst,
            get(respond::audit),
        )
        .query::<respond::AuditParams>()
            .ok::<respond::AuditPage>(200)
            .reply(200, Media::Ndjson, openapi::text),
        ep(
            Get,
            "/v1/rules",
            "The rules in force for the tenant, each with its `layer` (tenant or global); ?scope=global: the global rules",
            analyst,
            get(catalog::list_rules),
        )
        .query::<catalog::ScopeQuery>()
            .ok::<Items<catalog::RuleInForce>>(200),
        ep(
            Get,
            "/v1/rules/{name}",
            "The tenant's rule document (newest version), else the global file of that name; ?scope=global: the global file",
            analyst,
            get(catalog::get_doc::<catalog::Rules>),
        )
        .path_type::<crate::layers::DocName>("name")
        .query::<catalog::ScopeQuery>()
            .ok::<crate::layers::DocView>(200),
        ep(
            Put,
            "/v1/rules/{name}",
            "Store a new version of the tenant's rule document (YAML): validated over the global rules (every error, file:line), in force at once, audited. ?scope=global replaces <data-dir>/rules/<name>.yml (bootstrap admin)",
            admin,
            put(catalog::put_doc::<catalog::Rules>),
        )
        .path_type::<crate::layers::DocName>("name")
        .query::<catalog::ScopeQuery>()
            .body(Media::Yaml, openapi::text, true)
            .body(Media::Text, openapi::text, true)
            .ok::<catalog::StoredDoc>(200),
        ep(
            Get,
            "/v1/rules/{name}/versions",
            "Every stored version of the tenant's rule document: version, ts, actor, sha256, rollback_of",
            analyst,
            get(catalog::versions::<catalog::Rules>),
        )
        .path_type::<crate::layers::DocName>("name")
        .ok::<catalog::Versions>(200),
        ep(
            Get,
            "/v1/rules/{name}/versions/{version}",
            "One version's text with a line diff against the version before it (or ?diff=<version>)",
            analyst,
            get(catalog::version::<catalog::Rules>),
        )
        .path_type::<crate::layers::DocName>("name")
        .path_type::<u32>("version")
            .query::<catalog::DiffQuery>()
            .ok::<catalog::VersionView>(200),
        ep(
            Post,
            "/v1/rules/{name}/rollback",
            "Store version {\"version\"} again as the newest: validated, in force at once, audited",
            admin,
            post(catalog::rollback::<catalog::Rules>),
        )
        .path_type::<crate::layers::DocName>("name")
        .json::<catalog::RollbackReq>()
            .ok::<catalog::StoredDoc>(200),
        ep(
            Get,
            "/v1/playbooks",
            "The playbooks in force for the tenant in priority order, each with its `layer` (tenant or global); ?scope=global: the global playbooks",
            analyst,
            get(catalog::list_playbooks),
        )
        .query::<catalog::ScopeQuery>()
            .ok::<Items<catalog::PlaybookInForce>>(200),
        ep(
            Get,
            "/v1/playbooks/{name}",
            "The tenant's playbook document (newest version), else the global file of that name; ?scope=global: the global file",
            analyst,
            get(catalog::get_doc::<catalog::Playbooks>),
        )
        .path_type::<crate::layers::DocName>("name")
        .query::<catalog::ScopeQuery>()
            .ok::<crate::layers::DocView>(200),
        ep(
            Put,
            "/v1/playbooks/{name}",
            "Store a new version of the tenant's playbook document (YAML; a playbook id replaces the global one for this tenant): validated (every error, file:line), in force at once, audited. ?scope=global replaces <data-dir>/playbooks/<name>.yml (bootstrap admin)",
            admin,
            put(catalog::put_doc::<catalog::Playbooks>),
        )
        .path_type::<crate::layers::DocName>("name")
        .query::<catalog::ScopeQuery>()
            .body(Media::Yaml, openapi::text, true)
            .body(Media::Text, openapi::text, true)
            .ok::<catalog::StoredDoc>(200),
        ep(
            Get,
            "/v1/playbooks/{name}/versions",
            "Every stored version of the tenant's playbook document: version, ts, actor, sha256, rollback_of",
            analyst,
            get(catalog::versions::<catalog::Playbooks>),
        )
        .path_type::<crate::layers::DocName>("name")
        .ok::<catalog::Versions>(200),
        ep(
            Get,
            "/v1/playbooks/{name}/versions/{version}",
            "One version's text with a line diff against the version before it (or ?diff=<version>)",
            analyst,
            get(catalog::version::<catalog::Playbooks>),
        )
        .path_type::<crate::layers::DocName>("name")
        .path_type::<u32>("version")
            .query::<catalog::DiffQuery>()
            .ok::<catalog::VersionView>(200),
        ep(
            Post,
            "/v1/playbooks/{name}/rollback",
            "Store version {\"version\"} again as the newest: validated, in force at once, audited",
            admin,
            post(catalog::rollback::<catalog::Playbooks>),
        )
        .path_type::<crate::layers::DocName>("name")
        .json::<catalog::RollbackReq>()
            .ok::<catalog::StoredDoc>(200),
        ep(
            Get,
            "/v1/policy",
            "The tenant's response policy in force (its own document over the configured one) and its document",
            analyst,
            get(catalog::get_policy),
        )
        .ok::<catalog::PolicyView>(200),
        ep(
            Put,
            "/v1/policy",
            "Store a new version of the tenant's response policy (TOML or JSON by Content-Type; keys left out keep the configured value): modes, approval thresholds, allow-list, blast-radius caps; validated, in force at once, audited",
            admin,
            put(catalog::put_policy),
        )
        .body(Media::Toml, openapi::text, true)
            .json::<antibody_respond::TenantPolicy>()
            .ok::<catalog::StoredDoc>(200)
            .errors(&[415]),
        ep(
            Get,
            "/v1/policy/versions",
            "Every stored version of the tenant's policy document",
            analyst,
            get(catalog::policy_versions),
        )
        .ok::<catalog::Versions>(200)
            .errors(&[404]),
        ep(
            Get,
            "/v1/policy/versions/{version}",
            "One policy version's text with a line diff against the version before it (or ?diff=<version>)",
            analyst,
            get(catalog::policy_version),
        )
        .path_type::<u32>("version")
            .query::<catalog::DiffQuery>()
            .ok::<catalog::VersionView>(200),
        ep(
            Post,
            "/v1/policy/rollback",
            "Store policy version {\"version\"} again as the newest: validated, in force at once, audited",
            admin,
            post(catalog::rollback_policy),
        )
        .json::<catalog::RollbackReq>()
            .ok::<catalog::StoredDoc>(200)
            .errors(&[404]),
        ep(
            Get,
            "/v1/audit/verify",
            "Re-hash the audit chain and report where it breaks",
            analyst,
            get(respond::audit_verify),
        )
        .ok::<respond::ChainCheck>(200),
        ep(
            Get,
            "/v1/notifications",
            "The built-in inbox: notify actions while no channel is configured, escalations and actions awaiting approval; newest first (filters: incident, entity, kind, since, limit, before)",
            analyst,
            get(notifications::list),
        )
        .query::<notifications::NotificationParams>()
            .ok::<findings::Page<antibody_store::Notification>>(200),
        ep(
            Get,
            "/v1/stream",
            "Server-sent events: finding, incident (also on ack, assign, note, resolve, reopen), action, state, escalation, notification",
            analyst,
            get(stream::stream),
        )
        .reply(200, Media::EventStream, openapi::text),
        ep(
            Post,
            "/v1/tenants",
            "Create a tenant and its first admin key (bootstrap admin only)",
            admin,
            post(admin::create_tenant),
        )
        .json::<admin::NewTenant>()
            .ok::<admin::CreatedTenant>(201)
            .errors(&[409]),
        ep(
            Get,
            "/v1/tenants",
            "List tenants (bootstrap admin only)",
            admin,
            get(admin::list_tenants),
        )
        .ok::<Items<antibody_store::Tenant>>(200),
        ep(
            Delete,
            "/v1/tenants/{id}",
            "Delete a tenant and revoke its keys (bootstrap admin only; not `default`); its records stay",
            admin,
            delete(admin::delete_tenant),
        )
        .no_content()
            .errors(&[409]),
        ep(
            Post,
            "/v1/keys",
            "Create a key in the caller's tenant, optionally expiring (`expires_in`)",
            admin,
            post(admin::create_key),
        )
        .json::<admin::NewKeyReq>()
            .ok::<admin::CreatedKey>(201),
        ep(
            Get,
            "/v1/keys",
            "List the keys of the caller's tenant (no secrets)",
            admin,
            get(admin::list_keys),
        )
        .ok::<Items<antibody_store::KeyInfo>>(200),
        ep(
            Delete,
            "/v1/keys/{id}",
            "Delete a key of the caller's tenant (never its last working admin key; the bootstrap key only by itself)",
            admin,
            delete(admin::delete_key),
        )
        .no_content()
            .errors(&[409]),
        ep(
            Post,
            "/v1/keys/{id}/rotate",
            "Replace a key without downtime: a new key with the same role, the old one working until the grace period ends",
            admin,
            post(admin::rotate_key),
        )
        .body(Media::Json, schema_of::<admin::RotateReq>, false)
            .ok::<admin::CreatedKey>(201),
        ep(
            Get,
            "/healthz",
            "Liveness",
            Public,
            get(ops::healthz),
        )
        .ok::<ops::Health>(200),
        ep(
            Get,
            "/readyz",
            "Readiness: recovery done and the pipeline running",
            Public,
            get(ops::readyz),
        )
        .ok::<ops::Ready>(200)
            .errors(&[503]),
        ep(
            Get,
            "/metrics",
            "Prometheus metrics; the per-model series (tenant and model labels) need a key: the bootstrap admin sees every tenant's, any other key its own tenant's",
            Public,
            get(ops::metrics),
        )
        .reply(200, Media::Prometheus, openapi::text)
            .errors(&[401, 503]),
        ep(
            Get,
            "/openapi.json",
            "This API description",
            Public,
            get(ops::openapi),
        )
        .ok::<serde_json::Value>(200),
        ep(
            Get,
            "/v1/models",
            "The tenant's model versions with their slot, metrics, live counters, shadow agreement and drift",
            analyst,
            get(models::list),
        )
        .ok::<Items<models::ModelView>>(200),
        ep(
            Post,
            "/v1/models",
            "Upload a model (an `antibody train` bundle or ONNX, base64) bound to an event kind and field mapping",
            admin,
            post(models::upload),
        )
        .json::<models::UploadReq>()
            .ok::<antibody_store::ModelRecord>(201)
            .errors(&[409]),
        ep(
            Post,
            "/v1/models/{id}/promote",
            "Make a version active (the active one is retired and remembered for rollback)",
            admin,
            post(models::promote),
        )
        .empty_body()
            .ok::<models::SlotsChanged>(200)
            .errors(&[409]),
        ep(
            Post,
            "/v1/models/{id}/rollback",
            "Retire the active version and reactivate the one it replaced",
            admin,
            post(models::rollback),
        )
        .empty_body()
            .ok::<models::SlotsChanged>(200)
            .errors(&[409]),
        ep(
            Get,
            "/v1/review-queue",
            "Low-confidence model findings awaiting a label (label them with POST /v1/feedback)",
            analyst,
            get(models::review_queue),
        )
        .query::<models::ReviewParams>()
            .ok::<Items<antibody_core::Finding>>(200),
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

/// Reads the body of a call that takes none: nothing, or `{}` ([`Empty`]).
pub(crate) async fn empty_body(body: axum::body::Body) -> Result<(), ApiError> {
    let bytes = read_body(body, 64 << 10, SMALL_BODY_TIMEOUT).await?;
    if bytes.trim_ascii().is_empty() {
        return Ok(());
    }
    serde_json::from_slice::<Empty>(&bytes)
        .map(|_| ())
        .map_err(|_| ApiError::BadRequest("this call takes no body (or `{}`)".into()))
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
