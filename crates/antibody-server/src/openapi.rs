//! `/openapi.json`, generated from the route table in [`crate::routes::endpoints`]: each
//! entry names the types its handler reads (query, body) and writes (responses), and their
//! JSON Schemas are derived from those same types, so the document cannot drift from the
//! code. Error responses come from the entry's access and inputs, with the statuses of the
//! one code table ([`crate::error::CODES`]).

use crate::routes::{endpoints, Endpoint};
use schemars::generate::Contract;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::{json, Map, Value};

/// Builds the schema of one type in a generator (request or response side).
pub type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

/// A reference to `T`'s schema (inline for simple types).
pub fn schema_of<T: JsonSchema>(g: &mut SchemaGenerator) -> Schema {
    g.subschema_for::<T>()
}

/// `T`'s own schema, never a reference: query types, whose properties become parameters.
pub fn inline_of<T: JsonSchema>(g: &mut SchemaGenerator) -> Schema {
    T::json_schema(g)
}

/// Any bytes (protobuf, gzip): the schema of a binary body.
pub fn binary(_: &mut SchemaGenerator) -> Schema {
    schemars::json_schema!({"type": "string", "format": "binary"})
}

/// An OTLP/HTTP JSON export request (`Export{Trace,Logs}ServiceRequest` of
/// opentelemetry-proto, in its JSON mapping): a standard's message, read by the OTLP mapper.
pub fn otlp_json(_: &mut SchemaGenerator) -> Schema {
    schemars::json_schema!({"type": "object",
        "description": "an OTLP/HTTP JSON ExportTraceServiceRequest or ExportLogsServiceRequest"})
}

/// Text of any form (YAML, TOML, Markdown, NDJSON, Prometheus).
pub fn text(_: &mut SchemaGenerator) -> Schema {
    schemars::json_schema!({"type": "string"})
}

/// The media types the API reads and writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Media {
    Json,
    Ndjson,
    Protobuf,
    Yaml,
    Toml,
    Text,
    Markdown,
    Prometheus,
    EventStream,
}

impl Media {
    pub fn mime(self) -> &'static str {
        match self {
            Self::Json => "application/json",
            Self::Ndjson => "application/x-ndjson",
            Self::Protobuf => "application/x-protobuf",
            Self::Yaml => "application/yaml",
            Self::Toml => "application/toml",
            Self::Text => "text/plain",
            Self::Markdown => "text/markdown",
            Self::Prometheus => "text/plain; version=0.0.4",
            Self::EventStream => "text/event-stream",
        }
    }
}

/// A body in one media type.
#[derive(Clone, Copy)]
pub struct Content {
    pub media: Media,
    pub schema: SchemaFn,
}

/// A success response: its status and its bodies (none for 204).
#[derive(Clone)]
pub struct Reply {
    pub status: u16,
    pub content: Vec<Content>,
}

const OPENAPI: &str = "3.1.0";
/// Where the request side's definitions are put before they are merged with the response
/// side's (see [`merge_definitions`]).
const REQUEST_DEFS: &str = "/components/x-request-schemas";
const RESPONSE_DEFS: &str = "/components/schemas";

pub fn document() -> Value {
    let generator = |path: &'static str, contract: Contract| {
        schemars::generate::SchemaSettings::draft2020_12()
            .with(|s| {
                s.definitions_path = path.into();
                s.contract = contract;
                s.meta_schema = None;
            })
            .into_generator()
    };
    let mut req = generator(REQUEST_DEFS, Contract::Deserialize);
    let mut resp = generator(RESPONSE_DEFS, Contract::Serialize);
    let mut paths = Map::new();
    for ep in endpoints() {
        let op = operation(&ep, &mut req, &mut resp);
        let entry = paths.entry(ep.path.to_owned()).or_insert_with(|| json!({}));
        entry[ep.method.as_str()] = op;
    }
    let mut schemas = resp.take_definitions(true);
    schemas.insert("Error".into(), error_schema());
    let mut doc = json!({
        "openapi": OPENAPI,
        "info": {"title": "antibody", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Self-hosted detection and response. Errors are {\"error\": {\"code\", \"message\"}}; docs/API.md lists every code and its status."},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        }
    });
    let renames = merge_definitions(&mut schemas, req.take_definitions(true));
    doc["components"]["schemas"] = Value::Object(schemas);
    rewrite_refs(&mut doc, &renames);
    doc
}

fn error_schema() -> Value {
    let codes: Vec<&str> = crate::error::CODES.iter().map(|(c, _)| *c).collect();
    json!({"type": "object", "required": ["error"], "properties": {"error": {
        "type": "object", "required": ["code", "message"],
        "properties": {"code": {"type": "string", "enum": codes}, "message": {"type": "string"}}}}})
}

fn operation(ep: &Endpoint, req: &mut SchemaGenerator, resp: &mut SchemaGenerator) -> Value {
    let mut op = json!({
        "summary": ep.summary,
        "operationId": operation_id(ep.method.as_str(), ep.path),
        "responses": responses(ep, resp),
    });
    let mut params = Vec::new();
    for name in path_params(ep.path) {
        let schema = ep.path_schema(name, req);
        params.push(json!({"name": name, "in": "path", "required": true, "schema": schema}));
    }
    if let Some(query) = ep.query {
        params.extend(query_params(query(req)));
    }
    params.extend(ep.headers.iter().map(|h| {
        json!({"name": h.name, "in": "header", "required": false,
               "description": h.description, "schema": {"type": "string", "enum": h.values}})
    }));
    if !params.is_empty() {
        op["parameters"] = Value::Array(params);
    }
    if !ep.body.is_empty() {
        let content: Map<String, Value> = ep
            .body
            .iter()
            .map(|c| {
                (
                    c.media.mime().to_owned(),
                    json!({"schema": (c.schema)(req)}),
                )
            })
            .collect();
        op["requestBody"] = json!({"required": ep.body_required, "content": content});
    }
    if let Some(role) = ep.access.role_name() {
        op["security"] = json!([{"bearer": []}]);
        op["x-required-role"] = json!(role);
    }
    op
}

/// A query type's properties, one parameter each. `null` is how an absent option reads
/// in the type's schema; a query string has no null, so it is dropped.
fn query_params(schema: Schema) -> Vec<Value> {
    let v = schema.to_value();
    let required: Vec<&str> = v["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let Some(props) = v["properties"].as_object() else {
        return Vec::new();
    };
    props
        .iter()
        .map(|(name, s)| {
            let mut p = json!({"name": name, "in": "query", "required": required.contains(&name.as_str()),
                               "schema": without_null(s.clone())});
            if let Some(d) = s.get("description") {
                p["description"] = d.clone();
            }
            p
        })
        .collect()
}

fn without_null(mut s: Value) -> Value {
    if let Some(types) = s.get_mut("type").and_then(Value::as_array_mut) {
        types.retain(|t| t != "null");
        if types.len() == 1 {
            s["type"] = types[0].clone();
        }
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(alts) = s.get_mut(key).and_then(Value::as_array_mut) {
            alts.retain(|a| a.get("type").and_then(Value::as_str) != Some("null"));
            if alts.len() == 1 {
                let only = alts[0].clone();
                if let Some(obj) = s.as_object_mut() {
                    obj.remove(key);
                    if let Some(o) = only.as_object() {
                        obj.extend(o.clone());
                    }
                }
            }
        }
    }
    s
}

fn responses(ep: &Endpoint, g: &mut SchemaGenerator) -> Value {
    let mut out = Map::new();
    for r in &ep.replies {
        let mut resp = json!({"description": status_text(r.status)});
        if !r.content.is_empty() {
            let content: Map<String, Value> = r
                .content
                .iter()
                .map(|c| (c.media.mime().to_owned(), json!({"schema": (c.schema)(g)})))
                .collect();
            resp["content"] = Value::Object(content);
        }
        out.insert(r.status.to_string(), resp);
    }
    for status in ep.error_statuses() {
        out.insert(
            status.to_string(),
            json!({"description": status_text(status),
                   "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}),
        );
    }
    Value::Object(out)
}

fn status_text(status: u16) -> String {
    let reason = axum::http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let codes: Vec<&str> = crate::error::CODES
        .iter()
        .filter(|(_, s)| *s == status)
        .map(|(c, _)| *c)
        .collect();
    if codes.is_empty() || status < 400 {
        reason.to_owned()
    } else {
        format!("{reason}: {}", codes.join(", "))
    }
}

/// Puts the request side's definitions beside the response side's: one shared name when a
/// type reads as it writes, `<Name>Input` when the two differ. Returns the final name of
/// each request-side definition.
fn merge_definitions(
    schemas: &mut Map<String, Value>,
    request: Map<String, Value>,
) -> Vec<(String, String)> {
    let mut renames = Vec::new();
    for (name, schema) in &request {
        let target = match schemas.get(name) {
            Some(same) if *same == *schema => name.clone(),
            Some(_) => format!("{name}Input"),
            None => name.clone(),
        };
        renames.push((name.clone(), target));
    }
    for ((_, target), (_, schema)) in renames.iter().zip(request) {
        schemas.entry(target.clone()).or_insert(schema);
    }
    renames
}

fn rewrite_refs(v: &mut Value, renames: &[(String, String)]) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get_mut("$ref") {
                if let Some(name) = r.strip_prefix(&format!("#{REQUEST_DEFS}/")) {
                    let target = renames
                        .iter()
                        .find(|(from, _)| from == name)
                        .map_or(name, |(_, to)| to.as_str());
                    *r = format!("#{RESPONSE_DEFS}/{target}");
                }
            }
            m.values_mut().for_each(|x| rewrite_refs(x, renames));
        }
        Value::Array(a) => a.iter_mut().for_each(|x| rewrite_refs(x, renames)),
        _ => {}
    }
}

fn operation_id(method: &str, path: &str) -> String {
    let mut id = method.to_owned();
    for part in path.split('/').filter(|p| !p.is_empty() && *p != "v1") {
        id.push('_');
        id.extend(
            part.chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_'),
        );
    }
    id
}

pub(crate) fn path_params(path: &str) -> impl Iterator<Item = &str> {
    path.split('/')
        .filter_map(|p| p.strip_prefix('{').and_then(|p| p.strip_suffix('}')))
}

#[cfg(test)]
mod tests {
    use serde_json::Value;
    use std::collections::BTreeSet;

    /// The project's contract, `docs/API.md`, lists every route in its "Endpoints" table.
    const API_MD: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/API.md"));

    /// `(METHOD, path)` of every row of the form "| `GET` | `/v1/x` | …".
    fn documented() -> BTreeSet<(String, String)> {
        API_MD
            .lines()
            .filter_map(|l| {
                let mut cells = l.strip_prefix('|')?.split('|').map(str::trim);
                let method = cells.next()?.strip_prefix('`')?.strip_suffix('`')?;
                let path = cells.next()?.strip_prefix('`')?.strip_suffix('`')?;
                let known = ["GET", "POST", "PUT", "DELETE"].contains(&method);
                (known && path.starts_with('/')).then(|| (method.to_owned(), path.to_owned()))
            })
            .collect()
    }

    fn served() -> BTreeSet<(String, String)> {
        let doc = super::document();
        let mut out = BTreeSet::new();
        for (path, ops) in doc["paths"].as_object().into_iter().flatten() {
            for method in ops.as_object().into_iter().flatten().map(|(m, _)| m) {
                out.insert((method.to_uppercase(), path.clone()));
            }
        }
        out
    }

    #[test]
    fn every_documented_route_is_served_and_every_served_route_is_documented() {
        let (doc, served) = (documented(), served());
        assert!(
            doc.len() > 30,
            "the Endpoints table of docs/API.md was not found"
        );
        let missing: Vec<_> = doc.difference(&served).collect();
        assert!(
            missing.is_empty(),
            "in docs/API.md but not in /openapi.json: {missing:?}"
        );
        let undocumented: Vec<_> = served.difference(&doc).collect();
        assert!(
            undocumented.is_empty(),
            "served but not in docs/API.md: {undocumented:?}"
        );
    }

    /// Every `$ref` in `v`.
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r.clone());
                }
                m.values().for_each(|x| refs(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
            _ => {}
        }
    }

    /// The document describes every operation whole: a success response with a schema for
    /// each body (204 has none), a request body for every POST and PUT, error responses in
    /// the `Error` shape, and no reference to a schema it does not define. A route added
    /// without its types fails here.
    #[test]
    fn every_operation_has_its_bodies_parameters_and_responses() {
        let doc = super::document();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        let mut all_refs = Vec::new();
        refs(&doc, &mut all_refs);
        for r in &all_refs {
            let name = r
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("a reference outside components/schemas: {r}"));
            assert!(schemas.contains_key(name), "{r} is not defined");
        }
        let mut problems = Vec::new();
        for (path, ops) in doc["paths"].as_object().unwrap() {
            for (method, op) in ops.as_object().unwrap() {
                let at = format!("{} {path}", method.to_uppercase());
                let responses = op["responses"].as_object().unwrap();
                let ok: Vec<_> = responses.keys().filter(|s| s.starts_with('2')).collect();
                if ok.is_empty() {
                    problems.push(format!("{at}: no success response"));
                }
                for (status, r) in responses {
                    if status == "204" {
                        continue;
                    }
                    let content = r["content"].as_object();
                    if content.is_none_or(|c| c.values().any(|m| m.get("schema").is_none())) {
                        problems.push(format!("{at}: response {status} without a schema"));
                    }
                    if status.starts_with('4') || status.starts_with('5') {
                        let schema = &r["content"]["application/json"]["schema"]["$ref"];
                        if schema != "#/components/schemas/Error" {
                            problems.push(format!("{at}: {status} is not an Error"));
                        }
                    }
                }
                if (method == "post" || method == "put") && op.get("requestBody").is_none() {
                    problems.push(format!("{at}: no requestBody"));
                }
                if op.get("security").is_some() {
                    // Any key of the tenant may call an `any` route: no role to refuse.
                    let any_key = op["x-required-role"] == "any";
                    let needed: &[&str] = if any_key { &["401"] } else { &["401", "403"] };
                    for s in needed.iter().filter(|s| !responses.contains_key(**s)) {
                        problems.push(format!("{at}: needs a key but documents no {s}"));
                    }
                }
                let params = op["parameters"].as_array().cloned().unwrap_or_default();
                for name in super::path_params(path) {
                    let found = params
                        .iter()
                        .any(|p| p["name"] == name && p["in"] == "path");
                    if !found {
                        problems.push(format!("{at}: path parameter {name} missing"));
                    }
                }
                if params.iter().any(|p| p["schema"].is_null()) {
                    problems.push(format!("{at}: a parameter without a schema"));
                }
            }
        }
        assert!(problems.is_empty(), "{problems:#?}");
    }

    /// The query parameters listed are exactly the fields the handlers' query types read
    /// (they refuse unknown fields, so a missing one would be a documented request the
    /// handler refuses).
    #[test]
    fn query_parameters_are_the_fields_of_the_handlers_query_types() {
        let doc = super::document();
        let names = |path: &str, method: &str| -> BTreeSet<String> {
            doc["paths"][path][method]["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "query")
                .map(|p| p["name"].as_str().unwrap().to_owned())
                .collect()
        };
        let set = |xs: &[&str]| xs.iter().map(|x| x.to_string()).collect::<BTreeSet<_>>();
        assert_eq!(
            names("/v1/findings", "get"),
            set(&["entity", "kind", "since", "limit", "before"])
        );
        assert_eq!(
            names("/v1/audit", "get"),
            set(&["after", "subject", "actor", "kind", "limit", "format"])
        );
        assert_eq!(names("/v1/rules/{name}", "put"), set(&["scope"]));
        assert_eq!(names("/v1/blocklist", "get"), set(&["format"]));
        assert!(names("/v1/events", "post").is_empty());
        // Every operation whose handler takes a query says so.
        for ep in crate::routes::endpoints() {
            if let Some(q) = ep.query {
                let mut g = schemars::SchemaGenerator::default();
                let schema = q(&mut g).to_value();
                let fields: BTreeSet<String> = schema["properties"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, _)| k.clone())
                    .collect();
                assert!(!fields.is_empty(), "{}: an empty query type", ep.path);
                assert_eq!(names(ep.path, ep.method.as_str()), fields, "{}", ep.path);
            }
        }
    }
}
