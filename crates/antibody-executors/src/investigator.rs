//! The investigator's client: one `POST {base_url}/chat/completions` to an OpenAI-compatible
//! endpoint (`model`, the two messages of [`Prompt`], `response_format: json_object`,
//! `temperature: 0`), `Authorization: Bearer <key>` when a key is configured, bounded by a
//! timeout and a reply size. One attempt, no retries: the playbook plan never waits for the
//! model, and a late answer is worth less than a prompt fallback to the template summary.
//! Plain `http://` only, like the other HTTP executors (no TLS stack in this build): reach a
//! hosted API through a local TLS-terminating relay.
//!
//! The `[investigator]` table of `antibody.toml` is parsed as [`RawInvestigatorConfig`] and
//! validated into [`InvestigatorConfig`]; without `base_url` no model is asked and incidents
//! get the deterministic template summary only.

use crate::http::{Endpoint, HttpClient};
use crate::secret::{SecretRef, SecretSource};
use antibody_respond::investigate::{Limits, Prompt};
use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue, AUTHORIZATION};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::runtime::Handle;

/// The key used when the config names none and this variable is set.
pub const DEFAULT_KEY_ENV: &str = "ANTIBODY_INVESTIGATOR_API_KEY";
/// Bytes of an error reply kept for the audit record.
const ERROR_SNIPPET: usize = 200;

/// Every problem found, one per line, each naming its key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid [investigator] configuration:\n{}", .0.join("\n"))]
pub struct InvestigatorConfigError(pub Vec<String>);

/// `[investigator]` as written.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawInvestigatorConfig {
    /// `http://host:port/v1`; unset → template summaries only.
    pub base_url: Option<String>,
    pub model: String,
    /// A secret reference (`env:VAR`, `file:PATH`), never the key itself.
    pub api_key: Option<String>,
    pub timeout_ms: u64,
    pub max_reply_bytes: usize,
    pub max_tokens: u32,
    /// Ask when an incident's risk first reaches this (0: every new incident).
    pub min_risk: f64,
    pub max_concurrent: usize,
    pub max_per_minute: u32,
    /// Incidents waiting for a free slot; more are not asked.
    pub max_queued: usize,
    pub max_steps: usize,
    pub max_ttl_secs: u64,
    pub max_summary_chars: usize,
    pub max_findings: usize,
}

impl Default for RawInvestigatorConfig {
    fn default() -> Self {
        Self {
            base_url: None,
            model: "gpt-4o-mini".into(),
            api_key: None,
            timeout_ms: 20_000,
            max_reply_bytes: 64 * 1024,
            max_tokens: 1_000,
            min_risk: 0.0,
            max_concurrent: 2,
            max_per_minute: 20,
            max_queued: 64,
            max_steps: 5,
            max_ttl_secs: 86_400,
            max_summary_chars: 2_000,
            max_findings: 10,
        }
    }
}

/// How to reach the model.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientConfig {
    pub endpoint: Endpoint,
    pub model: String,
    pub api_key: Option<SecretRef>,
    pub timeout: Duration,
    pub max_reply_bytes: usize,
    pub max_tokens: u32,
}

/// When the response stage asks, and how often.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AskPolicy {
    pub min_risk: f64,
    pub max_concurrent: usize,
    pub max_per_minute: u32,
    pub max_queued: usize,
}

/// `[investigator]`, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct InvestigatorConfig {
    /// `None` without `base_url`: template summaries only.
    pub client: Option<ClientConfig>,
    pub ask: AskPolicy,
    pub limits: Limits,
}

impl TryFrom<RawInvestigatorConfig> for InvestigatorConfig {
    type Error = InvestigatorConfigError;

    fn try_from(raw: RawInvestigatorConfig) -> Result<Self, Self::Error> {
        let mut problems = Vec::new();
        let mut check = |ok: bool, msg: &str| {
            if !ok {
                problems.push(format!("investigator.{msg}"));
            }
        };
        check(
            !raw.model.trim().is_empty() && raw.model.len() <= 128,
            "model must be 1–128 characters",
        );
        check(
            (100..=600_000).contains(&raw.timeout_ms),
            "timeout_ms must be 100–600000",
        );
        check(
            (1024..=16 << 20).contains(&raw.max_reply_bytes),
            "max_reply_bytes must be 1024–16777216",
        );
        check(
            (16..=32_000).contains(&raw.max_tokens),
            "max_tokens must be 16–32000",
        );
        check(
            (0.0..=10.0).contains(&raw.min_risk),
            "min_risk must be 0–10",
        );
        check(
            (1..=64).contains(&raw.max_concurrent),
            "max_concurrent must be 1–64",
        );
        check(
            (1..=10_000).contains(&raw.max_per_minute),
            "max_per_minute must be 1–10000",
        );
        check(raw.max_queued <= 10_000, "max_queued must be at most 10000");
        check((1..=20).contains(&raw.max_steps), "max_steps must be 1–20");
        check(
            (60..=30 * 86_400).contains(&raw.max_ttl_secs),
            "max_ttl_secs must be 60–2592000",
        );
        check(
            (100..=20_000).contains(&raw.max_summary_chars),
            "max_summary_chars must be 100–20000",
        );
        check(
            (1..=100).contains(&raw.max_findings),
            "max_findings must be 1–100",
        );
        let api_key = match raw.api_key.as_deref().map(SecretRef::parse).transpose() {
            Ok(k) => k,
            Err(e) => {
                problems.push(format!("investigator.api_key: {e}"));
                None
            }
        };
        let endpoint = match raw.base_url.as_deref().map(chat_endpoint).transpose() {
            Ok(e) => e,
            Err(e) => {
                problems.push(format!("investigator.base_url: {e}"));
                None
            }
        };
        if !problems.is_empty() {
            return Err(InvestigatorConfigError(problems));
        }
        Ok(Self {
            client: endpoint.map(|endpoint| ClientConfig {
                endpoint,
                model: raw.model.trim().to_owned(),
                api_key,
                timeout: Duration::from_millis(raw.timeout_ms),
                max_reply_bytes: raw.max_reply_bytes,
                max_tokens: raw.max_tokens,
            }),
            ask: AskPolicy {
                min_risk: raw.min_risk,
                max_concurrent: raw.max_concurrent,
                max_per_minute: raw.max_per_minute,
                max_queued: raw.max_queued,
            },
            limits: Limits {
                max_steps: raw.max_steps,
                max_ttl_ms: i64::try_from(raw.max_ttl_secs * 1000).unwrap_or(i64::MAX),
                max_summary_chars: raw.max_summary_chars,
                max_findings: raw.max_findings,
            },
        })
    }
}

/// `{base_url}/chat/completions`.
fn chat_endpoint(base: &str) -> Result<Endpoint, crate::http::UrlError> {
    let base = base.trim().trim_end_matches('/');
    Endpoint::parse(&format!("{base}/chat/completions"))
}

/// Why no usable answer came back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AskError {
    #[error("no answer within {0} ms")]
    Timeout(u128),
    #[error("{0}")]
    Transport(String),
    #[error("HTTP {status} from the endpoint: {snippet}")]
    Status { status: u16, snippet: String },
    #[error("the reply is larger than {0} bytes or could not be read")]
    TooLarge(usize),
    #[error("the reply is not a chat completion: {0}")]
    NotCompletion(String),
    #[error("the reply was cut off at the token limit")]
    Truncated,
    #[error("cannot resolve the API key: {0}")]
    Secret(String),
}

/// The client. Cheap to share (`Arc`); each question runs on the runtime.
pub struct Investigator {
    cfg: ClientConfig,
    http: HttpClient,
    secrets: Arc<dyn SecretSource>,
    runtime: Handle,
}

impl Investigator {
    pub fn new(
        cfg: ClientConfig,
        http: HttpClient,
        secrets: Arc<dyn SecretSource>,
        runtime: Handle,
    ) -> Self {
        Self {
            cfg,
            http,
            secrets,
            runtime,
        }
    }

    pub fn model(&self) -> &str {
        &self.cfg.model
    }

    /// Off the caller's thread: `prepare` (which may block, e.g. reading the store) builds
    /// the prompt on a blocking thread, the question goes out on the runtime, and `done`
    /// gets the model's message content or why there is none. `done` runs exactly once.
    pub fn ask_then(
        self: &Arc<Self>,
        prepare: impl FnOnce() -> Prompt + Send + 'static,
        done: impl FnOnce(Result<String, AskError>) + Send + 'static,
    ) {
        let me = Arc::clone(self);
        self.runtime.spawn(async move {
            let answer = match tokio::task::spawn_blocking(prepare).await {
                Ok(prompt) => me.ask(&prompt).await,
                Err(e) => Err(AskError::Transport(format!(
                    "preparing the prompt failed: {e}"
                ))),
            };
            done(answer);
        });
    }

    /// Asks once, within the timeout.
    pub async fn ask(&self, prompt: &Prompt) -> Result<String, AskError> {
        let headers = self.headers()?;
        let body = Bytes::from(self.request_body(prompt));
        let limit = self.cfg.max_reply_bytes;
        let exchanged = tokio::time::timeout(
            self.cfg.timeout,
            self.http
                .exchange(&self.cfg.endpoint, body, &headers, limit),
        )
        .await
        .map_err(|_| AskError::Timeout(self.cfg.timeout.as_millis()))?;
        let (status, reply) = exchanged.map_err(AskError::Transport)?;
        let reply = reply.ok_or(AskError::TooLarge(limit))?;
        if !(200..300).contains(&status) {
            return Err(AskError::Status {
                status,
                snippet: printable(&reply[..reply.len().min(ERROR_SNIPPET)]),
            });
        }
        message_content(&reply)
    }

    /// The JSON body of the request.
    pub fn request_body(&self, prompt: &Prompt) -> Vec<u8> {
        json!({
            "model": self.cfg.model,
            "messages": [
                {"role": "system", "content": prompt.system},
                {"role": "user", "content": prompt.user},
            ],
            "response_format": {"type": "json_object"},
            "temperature": 0,
            "max_tokens": self.cfg.max_tokens,
            "stream": false,
        })
        .to_string()
        .into_bytes()
    }

    fn headers(&self) -> Result<Vec<(HeaderName, HeaderValue)>, AskError> {
        let key = match &self.cfg.api_key {
            Some(r) => Some(
                self.secrets
                    .resolve(r)
                    .map_err(|e| AskError::Secret(e.to_string()))?,
            ),
            // Local servers need no key; a key in the default variable is used if present.
            None => self
                .secrets
                .resolve(&SecretRef::Env(DEFAULT_KEY_ENV.into()))
                .ok(),
        };
        let Some(key) = key else {
            return Ok(Vec::new());
        };
        let mut value = b"Bearer ".to_vec();
        value.extend_from_slice(key.expose());
        let mut value = HeaderValue::from_bytes(&value)
            .map_err(|_| AskError::Secret("the API key cannot be sent in a header".into()))?;
        value.set_sensitive(true);
        Ok(vec![(AUTHORIZATION, value)])
    }
}

/// `choices[0].message.content` of a chat completion.
pub fn message_content(body: &[u8]) -> Result<String, AskError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| AskError::NotCompletion(format!("not JSON ({e})")))?;
    let choice = v
        .get("choices")
        .and_then(|c| c.get(0))
        .ok_or_else(|| AskError::NotCompletion("no `choices[0]`".into()))?;
    if choice.get("finish_reason").and_then(Value::as_str) == Some("length") {
        return Err(AskError::Truncated);
    }
    let message = choice.get("message");
    match message
        .and_then(|m| m.get("content"))
        .and_then(Value::as_str)
    {
        Some(text) => Ok(text.to_owned()),
        None => {
            let refusal = message
                .and_then(|m| m.get("refusal"))
                .and_then(Value::as_str)
                .map(|r| format!("the model refused: {}", printable(r.as_bytes())));
            Err(AskError::NotCompletion(refusal.unwrap_or_else(|| {
                "no `choices[0].message.content` string".into()
            })))
        }
    }
}

/// Reply bytes fit for a log line: lossy UTF-8 without control characters, clipped.
fn printable(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .take(ERROR_SNIPPET)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::{Secret, SecretError};
    use crate::testkit::{runtime, FakeServer};

    struct Keys;

    impl SecretSource for Keys {
        fn resolve(&self, r: &SecretRef) -> Result<Secret, SecretError> {
            match r {
                SecretRef::Env(v) if v == "TEST_KEY" => Ok(Secret::new("sk-test")),
                other => Err(SecretError::Unresolved {
                    reference: other.to_string(),
                    why: "not set".into(),
                }),
            }
        }
    }

    fn raw(base: &str) -> RawInvestigatorConfig {
        RawInvestigatorConfig {
            base_url: Some(base.into()),
            api_key: Some("env:TEST_KEY".into()),
            timeout_ms: 2_000,
            ..RawInvestigatorConfig::default()
        }
    }

    fn client(cfg: RawInvestigatorConfig, rt: &tokio::runtime::Runtime) -> Arc<Investigator> {
        let cfg = InvestigatorConfig::try_from(cfg).unwrap();
        Arc::new(Investigator::new(
            cfg.client.unwrap(),
            crate::testkit::http_client(),
            Arc::new(Keys),
            rt.handle().clone(),
        ))
    }

    fn prompt() -> Prompt {
        Prompt {
            system: "sys".into(),
            user: "usr".into(),
        }
    }

    fn completion(content: &str) -> String {
        json!({"id": "c-1", "object": "chat.completion", "model": "m",
               "choices": [{"index": 0, "finish_reason": "stop",
                            "message": {"role": "assistant", "content": content}}]})
        .to_string()
    }

    #[test]
    fn config_defaults_validation_and_endpoint() {
        let none = InvestigatorConfig::try_from(RawInvestigatorConfig::default()).unwrap();
        assert!(none.client.is_none());
        assert_eq!(none.limits, Limits::default());
        let c = InvestigatorConfig::try_from(raw("http://127.0.0.1:9/v1/")).unwrap();
        let client = c.client.unwrap();
        assert_eq!(
            client.endpoint.url(),
            "http://127.0.0.1:9/v1/chat/completions"
        );
        assert_eq!(client.api_key, Some(SecretRef::Env("TEST_KEY".into())));
        let bad = RawInvestigatorConfig {
            base_url: Some("gopher://api.example.com/v1".into()),
            api_key: Some("sk-inline-key".into()),
            timeout_ms: 0,
            max_steps: 0,
            min_risk: 11.0,
            ..RawInvestigatorConfig::default()
        };
        let errs = InvestigatorConfig::try_from(bad).unwrap_err().0;
        assert_eq!(errs.len(), 5, "{errs:?}");
        for want in ["base_url", "api_key", "timeout_ms", "max_steps", "min_risk"] {
            assert!(errs.iter().any(|e| e.contains(want)), "{want}: {errs:?}");
        }
        assert!(toml::from_str::<RawInvestigatorConfig>("modle = \"x\"").is_err());
    }

    #[test]
    fn asks_with_model_key_and_json_mode() {
        let rt = runtime();
        let fake = FakeServer::start(&rt);
        fake.reply_next(200, completion("{\"summary\": \"ok\"}"));
        let c = client(raw(&fake.url("/v1")), &rt);
        let got = rt.block_on(c.ask(&prompt())).unwrap();
        assert_eq!(got, "{\"summary\": \"ok\"}");
        let seen = fake.requests();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].path, "/v1/chat/completions");
        assert_eq!(seen[0].header("authorization"), Some("Bearer sk-test"));
        let body: Value = serde_json::from_slice(&seen[0].body).unwrap();
        assert_eq!(body["model"], "gpt-4o-mini");
        assert_eq!(body["response_format"]["type"], "json_object");
        assert_eq!(body["messages"][0]["role"], "system");
        assert_eq!(body["messages"][1]["content"], "usr");
    }

    #[test]
    fn failures_are_errors_not_panics() {
        let rt = runtime();
        let fake = FakeServer::start(&rt);
        fake.reply_next(401, "{\"error\": \"bad key\u{7}\"}");
        fake.reply_next(200, "<html>not json</html>");
        fake.reply_next(200, "x".repeat(4096));
        let c = client(raw(&fake.url("/v1")), &rt);
        let err = rt.block_on(c.ask(&prompt())).unwrap_err();
        assert!(matches!(err, AskError::Status { status: 401, .. }), "{err}");
        assert!(err.to_string().contains("bad key"), "{err}");
        assert!(matches!(
            rt.block_on(c.ask(&prompt())),
            Err(AskError::NotCompletion(_))
        ));
        let small = client(
            RawInvestigatorConfig {
                max_reply_bytes: 1024,
                ..raw(&fake.url("/v1"))
            },
            &rt,
        );
        assert_eq!(
            rt.block_on(small.ask(&prompt())),
            Err(AskError::TooLarge(1024))
        );
        let closed = client(
            raw(&format!("{}/v1", crate::testkit::closed_port_url())),
            &rt,
        );
        assert!(matches!(
            rt.block_on(closed.ask(&prompt())),
            Err(AskError::Transport(_))
        ));
        let nokey = client(
            RawInvestigatorConfig {
                api_key: Some("env:MISSING".into()),
                ..raw(&fake.url("/v1"))
            },
            &rt,
        );
        assert!(matches!(
            rt.block_on(nokey.ask(&prompt())),
            Err(AskError::Secret(_))
        ));
    }

    #[test]
    fn a_silent_server_times_out() {
        let rt = runtime();
        let fake = FakeServer::start(&rt);
        fake.hang_next(1);
        let c = client(
            RawInvestigatorConfig {
                timeout_ms: 100,
                ..raw(&fake.url("/v1"))
            },
            &rt,
        );
        let (tx, rx) = std::sync::mpsc::channel();
        c.ask_then(prompt, move |r| {
            let _ = tx.send(r);
        });
        let got = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(got, Err(AskError::Timeout(100)));
    }

    #[test]
    fn completion_shapes() {
        assert_eq!(message_content(completion("hi").as_bytes()).unwrap(), "hi");
        let cut =
            json!({"choices": [{"finish_reason": "length", "message": {"content": "{\"su"}}]});
        assert_eq!(
            message_content(cut.to_string().as_bytes()),
            Err(AskError::Truncated)
        );
        let refused = json!({"choices": [{"message": {"content": null, "refusal": "no"}}]});
        let err = message_content(refused.to_string().as_bytes()).unwrap_err();
        assert!(err.to_string().contains("refused: no"), "{err}");
        for bad in ["{}", "[]", "{\"choices\": []}", "{\"choices\": [{}]}"] {
            assert!(message_content(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
