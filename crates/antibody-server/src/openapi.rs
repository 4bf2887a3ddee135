//! `/openapi.json`, generated from the route table in [`crate::routes::endpoints`].

use crate::routes::endpoints;
use serde_json::{json, Map, Value};

pub fn document() -> Value {
    let mut paths = Map::new();
    for ep in endpoints() {
        let mut op = json!({
            "summary": ep.summary,
            "operationId": operation_id(ep.method, ep.path),
            "responses": responses(ep.method, ep.role.is_some()),
        });
        let params: Vec<Value> = path_params(ep.path)
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        if !params.is_empty() {
            op["parameters"] = Value::Array(params);
        }
        if let Some(role) = ep.role {
            op["security"] = json!([{"bearer": []}]);
            op["x-required-role"] = json!(role);
        }
        let entry = paths.entry(ep.path.to_owned()).or_insert_with(|| json!({}));
        entry[ep.method] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "antibody", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Self-hosted detection and response. Errors are {\"error\": {\"code\", \"message\"}}."},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": {"type": "object", "required": ["error"], "properties": {"error": {
                "type": "object", "required": ["code", "message"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}}}
        }
    })
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

fn path_params(path: &str) -> impl Iterator<Item = &str> {
    path.split('/')
        .filter_map(|p| p.strip_prefix('{').and_then(|p| p.strip_suffix('}')))
}

fn responses(method: &str, authed: bool) -> Value {
    let err = json!({"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
    let ok = match method {
        "post" => "202/201 accepted or created",
        "delete" => "204 deleted",
        _ => "200 OK",
    };
    let mut r = json!({"2XX": {"description": ok}, "400": err.clone()});
    if authed {
        r["401"] = err.clone();
        r["403"] = err.clone();
        r["404"] = err.clone();
    }
    if method == "post" {
        r["413"] = err.clone();
        r["429"] = err;
    }
    r
}

#[cfg(test)]
mod tests {
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
}
