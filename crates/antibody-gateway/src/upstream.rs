//! Upstreams: which provider a call goes to (per-agent routes, the default, fallbacks),
//! the request sent to it (its own key, never the client's antibody key; hop-by-hop headers
//! dropped), and kept-alive connections to it over the binary's one outbound client
//! (`antibody_executors::HttpClient::connect`: HTTP or HTTPS). Only configured providers are ever reached: the
//! request path is appended to a configured base, never taken from the client.

use crate::config::{GatewayConfig, Provider, ProviderKind};
use crate::refusal::Refusal;
use antibody_executors::http::Endpoint;
use antibody_executors::HttpClient;
use antibody_respond::gateway_policy::pattern_matches;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_LENGTH, HOST};
use hyper::{Request, Response};
use std::sync::Mutex;
use std::time::Duration;

/// The providers a call tries, in order: the agent's route (else the default), then its
/// fallbacks (each provider once).
pub fn chain(cfg: &GatewayConfig, agent: &str) -> Vec<usize> {
    let first = cfg
        .providers
        .iter()
        .position(|p| p.agents.iter().any(|pat| pattern_matches(pat, agent)))
        .unwrap_or(cfg.default);
    let mut out = vec![first];
    let mut at = first;
    while let Some(next) = cfg.providers[at].fallback {
        if out.contains(&next) {
            break;
        }
        out.push(next);
        at = next;
    }
    out
}

/// Headers that belong to one connection (RFC 9110 §7.6.1) or that the gateway sets
/// itself: never forwarded in either direction.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Request headers the gateway consumes (identity, the antibody key) or replaces.
const CONSUMED: &[&str] = &[
    "x-agent-id",
    "x-antibody-key",
    "api-key",
    "host",
    "content-length",
];

pub fn is_hop_by_hop(name: &HeaderName, connection: Option<&HeaderValue>) -> bool {
    let n = name.as_str();
    HOP_BY_HOP.contains(&n)
        || connection
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(n)))
}

/// The headers sent upstream: the client's end-to-end headers minus what the gateway
/// consumes, with the provider's own key (or, passthrough, the client's `Authorization`).
pub fn upstream_headers(p: &Provider, client: &HeaderMap, body_len: usize) -> HeaderMap {
    let connection = client.get(hyper::header::CONNECTION);
    let mut out = HeaderMap::with_capacity(client.len() + 2);
    for (name, value) in client {
        let n = name.as_str();
        if is_hop_by_hop(name, connection) || CONSUMED.contains(&n) {
            continue;
        }
        if name == AUTHORIZATION && !p.passthrough {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    if let Ok(host) = HeaderValue::from_str(p.endpoint.authority()) {
        out.insert(HOST, host);
    }
    out.insert(CONTENT_LENGTH, HeaderValue::from(body_len));
    if let Some(key) = &p.key {
        let value = match p.kind {
            ProviderKind::Openai => {
                let mut v = b"Bearer ".to_vec();
                v.extend_from_slice(key.expose());
                HeaderValue::from_bytes(&v)
            }
            ProviderKind::Azure => HeaderValue::from_bytes(key.expose()),
        };
        if let Ok(mut v) = value {
            v.set_sensitive(true);
            let name = match p.kind {
                ProviderKind::Openai => AUTHORIZATION,
                ProviderKind::Azure => HeaderName::from_static("api-key"),
            };
            out.insert(name, v);
        }
    }
    out
}

/// The upstream path: the provider's base, then the client's `/v1/...` with its query
/// (Azure's `api-version` included).
pub fn upstream_path(p: &Provider, path_and_query: &str) -> String {
    format!("{}{}", p.base_path, path_and_query)
}

pub type Sender = SendRequest<Full<Bytes>>;

/// The head of the answer relayed to the client: the upstream's status and end-to-end
/// headers, without `Content-Length` when the gateway rewrites the body on its way.
pub fn relayed_head(
    parts: &hyper::http::response::Parts,
    rewrites_body: bool,
) -> hyper::http::response::Builder {
    let connection = parts.headers.get(hyper::header::CONNECTION);
    let mut builder = Response::builder().status(parts.status);
    if let Some(h) = builder.headers_mut() {
        for (name, value) in &parts.headers {
            if is_hop_by_hop(name, connection) || (rewrites_body && name == CONTENT_LENGTH) {
                continue;
            }
            h.append(name.clone(), value.clone());
        }
    }
    builder
}

/// Idle kept-alive connections of one upstream (a provider or an MCP server).
#[derive(Default)]
pub struct Pool {
    idle: Mutex<Vec<Sender>>,
}

/// Idle connections kept per upstream.
const MAX_IDLE: usize = 256;

impl Pool {
    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<Sender>> {
        match self.idle.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// A ready connection: an idle one, else a new one.
    pub async fn checkout(&self, http: &HttpClient, endpoint: &Endpoint) -> Result<Sender, String> {
        loop {
            let Some(s) = self.idle().pop() else {
                break;
            };
            if s.is_ready() {
                return Ok(s);
            }
        }
        http.connect(endpoint).await
    }

    /// One exchange on a pooled connection: the request sent and the response head read
    /// within `timeout`. `who` names the upstream in refusals ("provider `openai`").
    pub async fn exchange(
        &self,
        http: &HttpClient,
        endpoint: &Endpoint,
        timeout: Duration,
        request: Request<Full<Bytes>>,
        who: &str,
    ) -> Result<(Response<Incoming>, Sender), Refusal> {
        let unavailable =
            |why: String| Refusal::new("upstream_unavailable", format!("{who}: {why}"));
        let attempt = async {
            let mut sender = self.checkout(http, endpoint).await.map_err(unavailable)?;
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| unavailable(e.to_string()))?;
            Ok::<_, Refusal>((response, sender))
        };
        tokio::time::timeout(timeout, attempt)
            .await
            .unwrap_or_else(|_| {
                Err(Refusal::new(
                    "upstream_timeout",
                    format!("{who} did not answer within {} ms", timeout.as_millis()),
                ))
            })
    }

    /// Gives back a connection whose response was read to the end.
    pub fn checkin(&self, s: Sender) {
        if s.is_ready() {
            let mut idle = self.idle();
            if idle.len() < MAX_IDLE {
                idle.push(s);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RawGatewayConfig;
    use antibody_executors::{Secret, SecretError, SecretRef, SecretSource};

    struct Keys;
    impl SecretSource for Keys {
        fn resolve(&self, _: &SecretRef) -> Result<Secret, SecretError> {
            Ok(Secret::new("sk-upstream"))
        }
    }

    fn cfg() -> GatewayConfig {
        let raw: RawGatewayConfig = toml::from_str(
            r#"
            [[providers]]
            name = "main"
            url = "http://127.0.0.1:1/base/"
            api_key = "env:K"
            default = true
            fallback = "backup"
            [[providers]]
            name = "backup"
            url = "http://127.0.0.1:2"
            kind = "azure"
            api_key = "env:K"
            fallback = "main"
            [[providers]]
            name = "cheap"
            url = "http://127.0.0.1:3"
            passthrough = true
            agents = ["agent:cheap-*"]
            "#,
        )
        .unwrap();
        raw.validate(&Keys).unwrap()
    }

    #[test]
    fn routes_and_fallbacks_visit_each_provider_once() {
        let c = cfg();
        assert_eq!(chain(&c, "agent:x"), [0, 1]);
        assert_eq!(chain(&c, "agent:cheap-1"), [2]);
        assert_eq!(
            upstream_path(&c.providers[0], "/v1/chat/completions?api-version=1"),
            "/base/v1/chat/completions?api-version=1"
        );
    }

    #[test]
    fn the_client_key_never_goes_upstream_unless_passthrough() {
        let c = cfg();
        let mut h = HeaderMap::new();
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_static("Bearer ab_client_key"),
        );
        h.insert("x-agent-id", HeaderValue::from_static("a"));
        h.insert(
            "connection",
            HeaderValue::from_static("keep-alive, x-private"),
        );
        h.insert("x-private", HeaderValue::from_static("1"));
        h.insert("openai-organization", HeaderValue::from_static("org"));
        h.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        let out = upstream_headers(&c.providers[0], &h, 7);
        assert_eq!(out[AUTHORIZATION], "Bearer sk-upstream");
        assert_eq!(out[CONTENT_LENGTH], "7");
        assert_eq!(out[HOST], "127.0.0.1:1");
        assert_eq!(out["openai-organization"], "org");
        for gone in ["x-agent-id", "connection", "x-private", "transfer-encoding"] {
            assert!(out.get(gone).is_none(), "{gone}");
        }
        let azure = upstream_headers(&c.providers[1], &h, 0);
        assert_eq!(azure["api-key"], "sk-upstream");
        assert!(azure.get(AUTHORIZATION).is_none());
        let pass = upstream_headers(&c.providers[2], &h, 0);
        assert_eq!(pass[AUTHORIZATION], "Bearer ab_client_key");
    }
}
