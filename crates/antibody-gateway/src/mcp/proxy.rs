//! One MCP exchange through the gateway, in order: the configured server, the tenant (the
//! antibody key), the agent, the POST's requests, the verdicts (quarantine, block, budget,
//! throttle, revoked tools), then the server. The answer streams back through `McpBody`
//! (`body.rs`), which reads each JSON-RPC answer as it passes (JSON or SSE), removes revoked
//! tools from a `tools/list` result and emits one `mcp` event per observed request.

use super::body::McpBody;
use super::message::{
    check_headers, error, read_post, refusal_data, Post, Revoked, Style, GATEWAY_REFUSED,
    HEADER_MISMATCH, INVALID_PARAMS, INVALID_REQUEST,
};
use super::record::{Base, Watch};
use crate::config::McpServer;
use crate::gate::{gate_of, revoked_tool, strongest, Gate};
use crate::identity::{fingerprint, identify};
use crate::proxy::{client_key, read_body, Call, Gateway};
use crate::refusal::Refusal;
use crate::upstream::{is_hop_by_hop, Sender};
use axum::body::Body;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{
    HeaderMap, HeaderName, HeaderValue, ACCEPT_ENCODING, ALLOW, CONTENT_LENGTH, CONTENT_TYPE, HOST,
    RETRY_AFTER,
};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::Value;
use std::sync::Arc;
use std::time::Instant;

/// Request headers the gateway consumes (identity, the antibody key) or sets itself.
const CONSUMED: &[&str] = &[
    "authorization",
    "x-agent-id",
    "x-antibody-key",
    "api-key",
    "host",
    "content-length",
    "accept-encoding",
];

/// The server a path names: `/mcp/{name}` (the name may be empty or wrong: answered 404).
pub fn server_of(path_and_query: &str) -> Option<&str> {
    let path = path_and_query.split('?').next().unwrap_or("");
    path.strip_prefix("/mcp/")
        .or_else(|| (path == "/mcp").then_some(""))
}

/// An answer the gateway gives itself, as JSON-RPC.
#[derive(Debug)]
pub struct Denial {
    status: u16,
    body: Value,
    retry_after_s: Option<u64>,
    allow: bool,
}

impl Denial {
    /// One error with a null id (the request's ids are unknown).
    fn plain(status: u16, code: i64, message: impl AsRef<str>) -> Self {
        Self {
            status,
            body: error(None, code, message.as_ref(), None),
            retry_after_s: None,
            allow: false,
        }
    }

    /// One error per request of the POST (a notification-only POST: one with a null id).
    fn per_request(
        status: u16,
        post: Option<&Post>,
        mut each: impl FnMut(usize, Option<&Value>) -> Value,
    ) -> Self {
        let body = match post {
            Some(p) if p.batch => {
                let errors: Vec<Value> = p
                    .requests
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| r.id.is_some())
                    .map(|(i, r)| each(i, r.id.as_ref()))
                    .collect();
                if errors.is_empty() {
                    each(0, None)
                } else {
                    Value::Array(errors)
                }
            }
            Some(p) => each(0, p.requests.first().and_then(|r| r.id.as_ref())),
            None => each(0, None),
        };
        Self {
            status,
            body,
            retry_after_s: None,
            allow: false,
        }
    }

    /// A refusal of the gateway's table (its status, `data.code`).
    fn refusal(r: &Refusal, post: Option<&Post>) -> Self {
        let mut d = Self::per_request(r.status(), post, |_, id| {
            error(id, GATEWAY_REFUSED, &r.message, Some(refusal_data(r.code)))
        });
        d.retry_after_s = r.retry_after_s;
        d
    }

    pub fn response(self) -> Response<Body> {
        let mut b = Response::builder()
            .status(StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST))
            .header(CONTENT_TYPE, "application/json");
        if let Some(s) = self.retry_after_s {
            b = b.header(RETRY_AFTER, s);
        }
        if self.allow {
            b = b.header(ALLOW, "GET, POST, DELETE");
        }
        let body = serde_json::to_vec(&self.body).unwrap_or_default();
        b.body(Body::from(body)).unwrap_or_default()
    }
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a [u8]> {
    h.get(name).map(HeaderValue::as_bytes)
}

impl Gateway {
    pub(crate) async fn mcp(self: &Arc<Self>, server: &str, call: Call) -> Response<Body> {
        match self.mcp_run(server, call).await {
            Ok(r) => r,
            Err(d) => d.response(),
        }
    }

    async fn mcp_run(self: &Arc<Self>, server: &str, call: Call) -> Result<Response<Body>, Denial> {
        let started = Instant::now();
        let now = self.backend.now_ms();
        let si = self
            .cfg
            .mcp_servers
            .iter()
            .position(|m| m.name == server)
            .ok_or_else(|| {
                Denial::plain(
                    404,
                    INVALID_REQUEST,
                    format!("no MCP server `{server}` is configured at this gateway"),
                )
            })?;
        if !matches!(call.method, Method::POST | Method::GET | Method::DELETE) {
            let mut d = Denial::plain(
                405,
                INVALID_REQUEST,
                format!(
                    "the MCP proxy takes POST, GET and DELETE, not {}",
                    call.method
                ),
            );
            d.allow = true;
            return Err(d);
        }
        let key = client_key(&call.headers);
        let tenant = self
            .tenant(key.as_deref())
            .await
            .map_err(|r| Denial::refusal(&r, None))?;
        let id = identify(
            header(&call.headers, "x-agent-id"),
            key.as_deref(),
            call.peer,
            header(&call.headers, "user-agent"),
        )
        .map_err(|e| Denial::plain(400, INVALID_REQUEST, e.to_string()))?;
        let (post, body) = if call.method == Method::POST {
            let body = read_body(call.body, self.cfg.max_body_bytes)
                .await
                .map_err(|r| Denial::refusal(&r, None))?;
            let post = read_post(&body).map_err(|e| Denial::plain(400, e.code(), e.to_string()))?;
            check_headers(
                &post,
                header(&call.headers, "mcp-method"),
                header(&call.headers, "mcp-name"),
            )
            .map_err(|why| {
                Denial::per_request(400, Some(&post), |_, id| {
                    error(id, HEADER_MISMATCH, why, None)
                })
            })?;
            (Some(post), body)
        } else {
            (None, Bytes::new())
        };
        let post = post.as_ref();
        let verdicts = self.verdicts(&tenant, &id, key.as_deref(), call.peer, now);
        let calls_tool = post.is_some_and(|p| p.requests.iter().any(|r| r.tool().is_some()));
        match strongest(verdicts.iter().map(|(e, v)| gate_of(e, v, now))) {
            Gate::Refuse(r) => return Err(Denial::refusal(&r, post)),
            // A throttled agent's tool calls count against its rate, like its LLM calls.
            Gate::Throttle { entity, rate } if calls_tool => self
                .meter
                .throttle(&tenant, &entity, rate, now)
                .map_err(|r| Denial::refusal(&r, post))?,
            Gate::Throttle { .. } | Gate::Pass => {}
        }
        let mut revoked = Revoked::default();
        for (_, v) in &verdicts {
            revoked.add(&v.revoked_tools);
        }
        let stateless = header(&call.headers, "mcp-method").is_some()
            || post.is_some_and(|p| p.requests.iter().any(|r| r.stateless));
        let session_id = header(&call.headers, "mcp-session-id");
        let base = Base {
            tenant: tenant.clone(),
            agent: id.entity.clone(),
            ts: now,
            server: server.to_owned(),
            protocol: post
                .and_then(|p| p.requests.iter().find_map(|r| r.protocol.clone()))
                .or_else(|| {
                    header(&call.headers, "mcp-protocol-version")
                        .and_then(|v| std::str::from_utf8(v).ok())
                        .map(str::to_owned)
                }),
            style: if stateless {
                Style::Stateless
            } else {
                Style::Session
            },
            session: session_id.map(fingerprint),
            status: 0,
            started,
        };
        let watches: Vec<Watch> = post
            .map(|p| {
                p.requests
                    .iter()
                    .filter_map(|r| {
                        Some(Watch {
                            id: r.id.clone()?,
                            method: r.watched()?,
                            tool: r.tool().map(str::to_owned),
                            arg_bytes: r.arg_bytes,
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        if let Some(p) = post {
            self.refuse_revoked(p, &watches, &verdicts, &base, stateless)?;
        }
        let m = &self.cfg.mcp_servers[si];
        let sent = self
            .mcp_send(si, m, &call.method, &call.headers, body)
            .await;
        let (response, sender) = match sent {
            Ok(r) => r,
            Err(refusal) => {
                for w in &watches {
                    self.emitter
                        .emit(base.record(w, Some(refusal.code)).to_event());
                }
                return Err(Denial::refusal(&refusal, post));
            }
        };
        // A server-to-client stream (GET) is not tied to requests: any tool list on it is
        // filtered.
        let filter_any = call.method == Method::GET && !revoked.is_empty();
        Ok(McpBody::response(
            response,
            self.clone(),
            (sender, si),
            base,
            watches,
            revoked,
            filter_any,
        ))
    }

    /// A `tools/call` of a revoked tool never reaches the server: -32602 naming the tool
    /// (HTTP 200 in the session style, 400 in the stateless style, whose status table maps
    /// -32602 to 400). In a batch the other requests are not sent either (each gets an
    /// error saying why), so nothing half-runs.
    fn refuse_revoked(
        &self,
        post: &Post,
        watches: &[Watch],
        verdicts: &[(String, antibody_respond::enforce::Answer)],
        base: &Base,
        stateless: bool,
    ) -> Result<(), Denial> {
        let refused: Vec<Option<Refusal>> = post
            .requests
            .iter()
            .map(|r| {
                let tool = [r.tool()?.to_owned()];
                verdicts.iter().find_map(|(e, v)| revoked_tool(e, v, &tool))
            })
            .collect();
        if refused.iter().all(Option::is_none) {
            return Ok(());
        }
        for w in watches.iter().filter(|w| {
            w.tool.is_some()
                && post
                    .requests
                    .iter()
                    .zip(&refused)
                    .any(|(r, x)| x.is_some() && r.id.as_ref() == Some(&w.id))
        }) {
            self.emitter
                .emit(base.record(w, Some("tool_revoked")).to_event());
        }
        let status = if stateless { 400 } else { 200 };
        Err(Denial::per_request(
            status,
            Some(post),
            |i, id| match refused.get(i).and_then(Option::as_ref) {
                Some(r) => error(id, INVALID_PARAMS, &r.message, Some(refusal_data(r.code))),
                None => error(
                    id,
                    GATEWAY_REFUSED,
                    "not sent: the batch holds a call to a revoked tool",
                    Some(refusal_data("tool_revoked")),
                ),
            },
        ))
    }

    /// One attempt at the server: a connection, the request, the response head within the
    /// server's timeout.
    async fn mcp_send(
        &self,
        si: usize,
        m: &McpServer,
        method: &Method,
        client: &HeaderMap,
        body: Bytes,
    ) -> Result<(Response<Incoming>, Sender), Refusal> {
        let who = format!("MCP server `{}`", m.name);
        let mut request = Request::builder()
            .method(method.clone())
            .uri(m.endpoint.path())
            .body(Full::new(body.clone()))
            .map_err(|e| Refusal::new("upstream_unavailable", format!("{who}: {e}")))?;
        *request.headers_mut() =
            mcp_headers(m, client, (method == Method::POST).then_some(body.len()));
        self.mcp_pools[si]
            .exchange(&self.http, &m.endpoint, m.timeout, request, &who)
            .await
    }
}

/// The headers sent to the server: the client's end-to-end headers (`Mcp-Session-Id`,
/// `MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`, `Accept`, `Last-Event-ID`, …) minus
/// what the gateway consumes, with the server's own credentials. `identity` encoding, so
/// answers can be read.
pub fn mcp_headers(m: &McpServer, client: &HeaderMap, body_len: Option<usize>) -> HeaderMap {
    let connection = client.get(hyper::header::CONNECTION);
    let mut out = HeaderMap::with_capacity(client.len() + 4);
    for (name, value) in client {
        if is_hop_by_hop(name, connection) || CONSUMED.contains(&name.as_str()) {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    if let Ok(host) = HeaderValue::from_str(m.endpoint.authority()) {
        out.insert(HOST, host);
    }
    if let Some(n) = body_len {
        out.insert(CONTENT_LENGTH, HeaderValue::from(n));
    }
    out.insert(ACCEPT_ENCODING, HeaderValue::from_static("identity"));
    for (name, secret) in &m.credentials {
        if let Ok(mut v) = HeaderValue::from_bytes(secret.expose()) {
            v.set_sensitive(true);
            out.insert(HeaderName::clone(name), v);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RawGatewayConfig;
    use antibody_executors::{Secret, SecretError, SecretRef, SecretSource};

    struct Keys;
    impl SecretSource for Keys {
        fn resolve(&self, _: &SecretRef) -> Result<Secret, SecretError> {
            Ok(Secret::new("mcp-secret-1"))
        }
    }

    #[test]
    fn paths_name_servers() {
        assert_eq!(server_of("/mcp/tools"), Some("tools"));
        assert_eq!(server_of("/mcp/tools?x=1"), Some("tools"));
        assert_eq!(server_of("/mcp"), Some(""));
        assert_eq!(server_of("/mcp/a/b"), Some("a/b"), "answered 404 later");
        assert_eq!(server_of("/v1/chat/completions"), None);
        assert_eq!(server_of("/mcpx"), None);
    }

    #[test]
    fn the_client_key_stays_and_the_server_credentials_go() {
        let raw: RawGatewayConfig = toml::from_str(
            r#"
            [[mcp_servers]]
            name = "tools"
            url = "http://127.0.0.1:9000/mcp"
            api_key = "env:K"
            headers = { "x-tenant-token" = "file:/run/t" }
            "#,
        )
        .unwrap();
        let cfg = raw.validate(&Keys).unwrap();
        let m = &cfg.mcp_servers[0];
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("authorization", "Bearer ab_client"),
            ("x-agent-id", "a"),
            ("mcp-session-id", "s-1"),
            ("mcp-protocol-version", "2025-11-25"),
            ("accept", "application/json, text/event-stream"),
            ("accept-encoding", "gzip"),
            ("connection", "keep-alive"),
        ] {
            h.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        let out = mcp_headers(m, &h, Some(12));
        assert_eq!(out["authorization"], "Bearer mcp-secret-1");
        assert_eq!(out["x-tenant-token"], "mcp-secret-1");
        assert_eq!(out["mcp-session-id"], "s-1");
        assert_eq!(out["mcp-protocol-version"], "2025-11-25");
        assert_eq!(out["accept-encoding"], "identity");
        assert_eq!(out["host"], "127.0.0.1:9000");
        assert_eq!(out["content-length"], "12");
        assert!(out.get("x-agent-id").is_none() && out.get("connection").is_none());
        assert!(!format!("{cfg:?}").contains("mcp-secret"));
    }

    #[test]
    fn denials_answer_every_request_of_a_batch() {
        let post = read_post(
            br#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"jsonrpc":"2.0","method":"notifications/x"},{"jsonrpc":"2.0","id":"b","method":"ping"}]"#,
        )
        .unwrap();
        let r = Refusal::new("agent_quarantined", "agent:a is quarantined (incident i-1)");
        let d = Denial::refusal(&r, Some(&post));
        assert_eq!(d.status, 403);
        let ids: Vec<&Value> = d
            .body
            .as_array()
            .unwrap()
            .iter()
            .map(|e| &e["id"])
            .collect();
        assert_eq!(ids, [&Value::from(1), &Value::from("b")]);
        assert_eq!(d.body[0]["error"]["code"], GATEWAY_REFUSED);
        assert_eq!(d.body[0]["error"]["data"]["code"], "agent_quarantined");
        let none = Denial::refusal(&r, None);
        assert_eq!(none.body["id"], Value::Null);
    }
}
