//! `[gateway]` in `antibody.toml`: parsed raw ([`RawGatewayConfig`]), then validated into
//! [`GatewayConfig`] with every upstream key resolved, so a missing key stops the start
//! instead of failing the first request. Keys are only ever references (`env:VAR`,
//! `file:PATH`); neither type prints a key.

use crate::cost::{Price, Prices};
use antibody_executors::http::Endpoint;
use antibody_executors::{Secret, SecretRef, SecretSource};
use hyper::header::{HeaderName, HeaderValue, AUTHORIZATION};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

/// The default listen address (the contract's).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:4000";

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawGatewayConfig {
    /// `127.0.0.1:4000` when absent.
    pub listen: Option<String>,
    pub providers: Vec<RawProvider>,
    /// Exact model id → price per million tokens.
    pub prices: BTreeMap<String, Price>,
    pub mcp_servers: Vec<RawMcpServer>,
    /// The largest request body read for inspection (default 16 MiB).
    pub max_body_bytes: Option<usize>,
    /// Prompt-injection scanning of what calls send.
    pub scan: ScanMode,
}

/// What the gateway does with the prompt text of a call (`[gateway] scan`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScanMode {
    /// Nothing: prompts stay out of events.
    Off,
    /// The newest 8 KiB go into the call's event as `attrs.prompt`, where the rule pack's
    /// prompt-injection rules find them like any other event's.
    #[default]
    Detect,
    /// As `detect`, and a call whose text the rules flag is refused (403 `prompt_injection`).
    Block,
}

/// How a provider wants its key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    /// `Authorization: Bearer <key>`: OpenAI, vLLM, Ollama, any compatible server.
    #[default]
    Openai,
    /// `api-key: <key>`: Azure OpenAI (base `https://<resource>.openai.azure.com/openai`).
    Azure,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawProvider {
    pub name: String,
    /// Base URL; `/v1/...` paths are appended.
    pub url: String,
    /// `env:VAR` or `file:PATH`; absent for servers that need none.
    pub api_key: Option<String>,
    pub default: bool,
    /// Forward the client's own `Authorization` instead of a configured key (the client
    /// then names its antibody key in `X-Antibody-Key`).
    pub passthrough: bool,
    pub kind: ProviderKind,
    /// Agents (`agent:…`, a trailing `*` matches any rest) routed here before the default.
    pub agents: Vec<String>,
    /// The provider tried next when this one answers 5xx or times out.
    pub fallback: Option<String>,
    /// Time allowed until the response head arrives (default 300 s).
    pub timeout_ms: Option<u64>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawMcpServer {
    pub name: String,
    /// The server's Streamable HTTP endpoint (`http(s)://host:port/mcp`).
    pub url: String,
    /// `env:VAR` or `file:PATH`, sent as `Authorization: Bearer <key>`.
    pub api_key: Option<String>,
    /// More headers the server needs (`X-Api-Key = "env:TOOLS_KEY"`): every value a
    /// reference, never the value itself.
    pub headers: BTreeMap<String, String>,
    /// Time allowed until the response head arrives (default 300 s).
    pub timeout_ms: Option<u64>,
}

/// A validated provider.
pub struct Provider {
    pub name: String,
    pub endpoint: Endpoint,
    /// The URL's path without a trailing `/`, put before the request's `/v1/...`.
    pub base_path: String,
    pub key: Option<Secret>,
    pub kind: ProviderKind,
    pub passthrough: bool,
    pub agents: Vec<String>,
    /// Index of the fallback provider.
    pub fallback: Option<usize>,
    pub timeout: Duration,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("name", &self.name)
            .field("endpoint", &self.endpoint)
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

/// A validated MCP server, reached at `/mcp/{name}` on the gateway's listener.
pub struct McpServer {
    pub name: String,
    pub endpoint: Endpoint,
    /// Headers carrying the server's credentials, resolved at start (`api_key` as
    /// `Authorization: Bearer`, then `headers`).
    pub credentials: Vec<(HeaderName, Secret)>,
    pub timeout: Duration,
}

impl std::fmt::Debug for McpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.credentials.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("McpServer")
            .field("name", &self.name)
            .field("endpoint", &self.endpoint)
            .field("credentials", &names)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
pub struct GatewayConfig {
    pub listen: SocketAddr,
    pub providers: Vec<Provider>,
    /// Index of the provider an agent with no route of its own uses (0, and no provider,
    /// for an MCP-only gateway).
    pub default: usize,
    pub prices: Prices,
    pub mcp_servers: Vec<McpServer>,
    pub max_body_bytes: usize,
    pub scan: ScanMode,
}

impl RawGatewayConfig {
    /// Whether the gateway should run: it has somewhere to send requests (a provider or
    /// an MCP server).
    pub fn enabled(&self) -> bool {
        !self.providers.is_empty() || !self.mcp_servers.is_empty()
    }

    /// Validates everything and resolves the keys; every problem at once.
    pub fn validate(&self, secrets: &dyn SecretSource) -> Result<GatewayConfig, Vec<String>> {
        let mut errors = Vec::new();
        let listen_text = self.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
        let listen = listen_text.parse().unwrap_or_else(|_| {
            errors.push(format!(
                "[gateway] listen `{listen_text}` is not an address such as {DEFAULT_LISTEN}"
            ));
            SocketAddr::from(([127, 0, 0, 1], 4000))
        });
        let names: Vec<&str> = self.providers.iter().map(|p| p.name.as_str()).collect();
        let mut providers = Vec::new();
        for (i, raw) in self.providers.iter().enumerate() {
            if names[..i].contains(&raw.name.as_str()) {
                errors.push(format!(
                    "[[gateway.providers]] `{}` is named twice",
                    raw.name
                ));
            }
            if let Some(p) = provider(raw, &names, secrets, &mut errors) {
                providers.push(p);
            }
        }
        let defaults: Vec<usize> = (0..self.providers.len())
            .filter(|&i| self.providers[i].default)
            .collect();
        let default = match (defaults.as_slice(), self.providers.len()) {
            ([one], _) => *one,
            ([], 1) => 0,
            ([], 0) => {
                if self.mcp_servers.is_empty() {
                    errors.push(
                        "[gateway] needs at least one [[gateway.providers]] or [[gateway.mcp_servers]]"
                            .into(),
                    );
                }
                0
            }
            ([], _) => {
                errors.push("[gateway] several providers and none has `default = true`".into());
                0
            }
            _ => {
                errors.push("[gateway] only one provider may have `default = true`".into());
                0
            }
        };
        for (model, price) in &self.prices {
            if let Some(why) = price.problem() {
                errors.push(format!("[gateway.prices.\"{model}\"]: {why}"));
            }
        }
        let mut mcp_servers = Vec::new();
        for (i, raw) in self.mcp_servers.iter().enumerate() {
            if self.mcp_servers[..i].iter().any(|m| m.name == raw.name) {
                errors.push(format!(
                    "[[gateway.mcp_servers]] `{}` is named twice",
                    raw.name
                ));
            }
            if let Some(m) = mcp_server(raw, secrets, &mut errors) {
                mcp_servers.push(m);
            }
        }
        let max_body_bytes = self.max_body_bytes.unwrap_or(16 << 20);
        if max_body_bytes == 0 {
            errors.push("[gateway] max_body_bytes must be positive".into());
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(GatewayConfig {
            listen,
            providers,
            default,
            prices: Prices::new(self.prices.clone()),
            mcp_servers,
            max_body_bytes,
            scan: self.scan,
        })
    }
}

fn provider(
    raw: &RawProvider,
    names: &[&str],
    secrets: &dyn SecretSource,
    errors: &mut Vec<String>,
) -> Option<Provider> {
    let at = format!("[[gateway.providers]] `{}`", raw.name);
    let before = errors.len();
    if !valid_name(&raw.name) {
        errors.push(format!("{at}: name must be 1–64 of a–z, 0–9, `-`, `_`"));
    }
    let endpoint = Endpoint::parse(&raw.url)
        .map_err(|e| errors.push(format!("{at}: url: {e}")))
        .ok();
    if endpoint.as_ref().is_some_and(|e| e.path().contains('?')) {
        errors.push(format!("{at}: url must not carry a query"));
    }
    let key = match (&raw.api_key, raw.passthrough) {
        (Some(_), true) => {
            errors.push(format!(
                "{at}: a passthrough provider forwards the client's key; remove api_key"
            ));
            None
        }
        (Some(text), false) => resolve(&at, "api_key", text, secrets, errors),
        (None, _) => None,
    };
    let fallback = raw.fallback.as_deref().and_then(|f| {
        let found = names.iter().position(|n| *n == f);
        if found.is_none() {
            errors.push(format!("{at}: fallback `{f}` names no provider"));
        } else if f == raw.name {
            errors.push(format!("{at}: a provider cannot be its own fallback"));
        }
        found
    });
    if raw.agents.iter().any(|p| p.trim().is_empty()) {
        errors.push(format!("{at}: agents must not hold an empty pattern"));
    }
    if raw.timeout_ms == Some(0) {
        errors.push(format!("{at}: timeout_ms must be positive"));
    }
    let endpoint = endpoint?;
    if errors.len() > before {
        return None;
    }
    Some(Provider {
        name: raw.name.clone(),
        base_path: endpoint.path().trim_end_matches('/').to_owned(),
        endpoint,
        key,
        kind: raw.kind,
        passthrough: raw.passthrough,
        agents: raw.agents.clone(),
        fallback,
        timeout: Duration::from_millis(raw.timeout_ms.unwrap_or(300_000)),
    })
}

/// A key reference resolved, or an error naming the reference. Not the parser's message:
/// it would echo a key pasted in by mistake.
fn resolve(
    at: &str,
    field: &str,
    text: &str,
    secrets: &dyn SecretSource,
    errors: &mut Vec<String>,
) -> Option<Secret> {
    match SecretRef::parse(text) {
        Ok(r) => secrets
            .resolve(&r)
            .map_err(|e| errors.push(format!("{at}: {field}: {e}")))
            .ok(),
        Err(_) => {
            errors.push(format!(
                "{at}: {field} must be a reference (`env:VAR` or `file:PATH`), not a key"
            ));
            None
        }
    }
}

fn mcp_server(
    raw: &RawMcpServer,
    secrets: &dyn SecretSource,
    errors: &mut Vec<String>,
) -> Option<McpServer> {
    let at = format!("[[gateway.mcp_servers]] `{}`", raw.name);
    let before = errors.len();
    if !valid_name(&raw.name) {
        errors.push(format!("{at}: name must be 1–64 of a–z, 0–9, `-`, `_`"));
    }
    let endpoint = Endpoint::parse(&raw.url)
        .map_err(|e| errors.push(format!("{at}: url: {e}")))
        .ok();
    let mut credentials = Vec::new();
    if let Some(text) = &raw.api_key {
        if let Some(key) = resolve(&at, "api_key", text, secrets, errors) {
            let mut bearer = b"Bearer ".to_vec();
            bearer.extend_from_slice(key.expose());
            credentials.push((AUTHORIZATION, Secret::new(bearer)));
        }
    }
    for (name, text) in &raw.headers {
        let field = format!("headers.{name}");
        match HeaderName::from_bytes(name.as_bytes()) {
            Ok(h) if h == AUTHORIZATION && raw.api_key.is_some() => errors.push(format!(
                "{at}: {field}: set either api_key or an Authorization header"
            )),
            Ok(h) => {
                if let Some(v) = resolve(&at, &field, text, secrets, errors) {
                    if HeaderValue::from_bytes(v.expose()).is_err() {
                        errors.push(format!("{at}: {field}: the value is not a valid header"));
                    }
                    credentials.push((h, v));
                }
            }
            Err(_) => errors.push(format!("{at}: `{name}` is not a header name")),
        }
    }
    if raw.timeout_ms == Some(0) {
        errors.push(format!("{at}: timeout_ms must be positive"));
    }
    let endpoint = endpoint?;
    if errors.len() > before {
        return None;
    }
    Some(McpServer {
        name: raw.name.clone(),
        endpoint,
        credentials,
        timeout: Duration::from_millis(raw.timeout_ms.unwrap_or(300_000)),
    })
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use antibody_executors::SecretError;

    struct Keys;
    impl SecretSource for Keys {
        fn resolve(&self, r: &SecretRef) -> Result<Secret, SecretError> {
            match r {
                SecretRef::Env(v) if v == "OPENAI_API_KEY" => Ok(Secret::new("sk-live-123")),
                _ => Err(SecretError::Unresolved {
                    reference: r.to_string(),
                    why: "not set".into(),
                }),
            }
        }
    }

    fn parse(text: &str) -> RawGatewayConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn the_documented_example_validates() {
        let raw = parse(
            r#"
            listen = "127.0.0.1:4000"
            [[providers]]
            name = "openai"
            url = "http://127.0.0.1:9999"
            api_key = "env:OPENAI_API_KEY"
            default = true
            [[providers]]
            name = "local"
            url = "http://127.0.0.1:11434/"
            agents = ["agent:cheap-*"]
            fallback = "openai"
            [prices."gpt-4o-mini"]
            input_per_mtok = 0.15
            output_per_mtok = 0.60
            cached_input_per_mtok = 0.075
            [[mcp_servers]]
            name = "tools"
            url = "http://127.0.0.1:9000/mcp"
            "#,
        );
        let cfg = raw.validate(&Keys).unwrap();
        assert_eq!(cfg.default, 0);
        assert_eq!(cfg.providers[1].base_path, "");
        assert_eq!(cfg.providers[1].fallback, Some(0));
        assert_eq!(
            cfg.providers[0].key.as_ref().unwrap().expose(),
            b"sk-live-123"
        );
        assert!(
            !format!("{cfg:?}").contains("sk-live"),
            "Debug never shows a key"
        );
        assert_eq!(cfg.mcp_servers[0].name, "tools");
    }

    #[test]
    fn every_problem_is_reported_and_no_key_value_appears() {
        let raw = parse(
            r#"
            listen = "nowhere"
            [[providers]]
            name = "a"
            url = "ftp://x"
            api_key = "sk-plain-text"
            fallback = "zzz"
            [[providers]]
            name = "a"
            url = "http://x"
            api_key = "env:MISSING"
            [prices.m]
            input_per_mtok = -1.0
            output_per_mtok = 1.0
            "#,
        );
        let errors = raw.validate(&Keys).unwrap_err();
        let all = errors.join("\n");
        for want in [
            "listen `nowhere`",
            "named twice",
            "url:",
            "must be a reference",
            "fallback `zzz`",
            "env:MISSING",
            "none has `default = true`",
            "prices",
        ] {
            assert!(all.contains(want), "missing {want}: {all}");
        }
        assert!(
            !all.contains("sk-plain-text"),
            "a key is never echoed: {all}"
        );
    }

    #[test]
    fn a_single_provider_is_the_default_and_no_provider_means_off() {
        let raw = parse("[[providers]]\nname = \"x\"\nurl = \"http://127.0.0.1:1\"\n");
        assert!(raw.enabled());
        assert_eq!(raw.validate(&Keys).unwrap().default, 0);
        assert!(!RawGatewayConfig::default().enabled());
    }
}
