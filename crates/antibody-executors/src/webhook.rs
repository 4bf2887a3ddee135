//! The `webhook` executor: POSTs the action as JSON to its `url` (or the configured one),
//! and to its `undo_url` to undo it, signed with HMAC-SHA256 when a secret is configured or
//! named by the action. Each request carries `Idempotency-Key: <action id>:<apply|undo>`, so
//! a receiver can drop the duplicates retries may cause. Also home of [`Poster`], the
//! sending half `notify` shares.

use crate::common::{self, claim, is_dry_run, op_word};
use crate::http::{sign, Delivered, Endpoint, HttpClient, RetryPolicy, SIGNATURE_HEADER};
use crate::ledger::Ledger;
use crate::reply::Reply;
use crate::secret::{SecretRef, SecretSource};
use antibody_core::Clock;
use antibody_respond::executor::{Completion, ExecOp, ExecRequest, ExecResult, Executor};
use antibody_respond::{ActionKind, ParamValue};
use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::runtime::Handle;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookConfig {
    /// Used when the action names no `url`.
    pub url: Option<Endpoint>,
    /// Used when the action names no `secret`.
    pub secret: Option<SecretRef>,
    pub policy: RetryPolicy,
}

/// One POST to make.
pub struct Outgoing {
    pub endpoint: Endpoint,
    /// The URL as results show it (the full URL, or only its origin when the path is a
    /// credential).
    pub shown: String,
    pub body: Vec<u8>,
    pub secret: Option<SecretRef>,
}

/// Sends [`Outgoing`] requests on the runtime and answers with the delivery's outcome.
pub struct Poster {
    runtime: Handle,
    client: HttpClient,
    secrets: Arc<dyn SecretSource>,
    policy: RetryPolicy,
    ledger: Arc<Ledger>,
}

impl Poster {
    pub fn new(
        runtime: Handle,
        client: HttpClient,
        secrets: Arc<dyn SecretSource>,
        policy: RetryPolicy,
    ) -> Self {
        Self {
            runtime,
            client,
            secrets,
            policy,
            ledger: Arc::default(),
        }
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    pub fn dry_run(out: &Outgoing) -> ExecResult {
        let mut details = BTreeMap::from([
            ("url".to_owned(), out.shown.clone()),
            (
                "body".to_owned(),
                String::from_utf8_lossy(&out.body).into_owned(),
            ),
        ]);
        if let Some(secret) = &out.secret {
            details.insert("signed_with".into(), secret.to_string());
        }
        common::dry_run(
            &format!("POST {} ({} bytes)", out.shown, out.body.len()),
            details,
        )
    }

    /// Claims the request, then delivers on the runtime; answers exactly once.
    pub fn send(&self, request: ExecRequest, reply: Reply, out: Outgoing) {
        let Some(reply) = claim(&self.ledger, &request, reply) else {
            return;
        };
        let headers = match self.headers(&request, &out) {
            Ok(headers) => headers,
            Err(e) => return common::finish(&self.ledger, &request, reply, ExecResult::failed(e)),
        };
        let (ledger, policy, client) = (self.ledger.clone(), self.policy, self.client.clone());
        self.runtime.spawn(async move {
            let delivered = client
                .post_json(&out.endpoint, Bytes::from(out.body), &headers, policy)
                .await;
            let result = describe(&request, &out.shown, &delivered);
            common::finish(&ledger, &request, reply, result);
        });
    }

    fn headers(
        &self,
        request: &ExecRequest,
        out: &Outgoing,
    ) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
        let value = |s: &str| {
            HeaderValue::from_str(s).map_err(|_| format!("`{s}` cannot be sent in a header"))
        };
        let id = &request.action.id;
        let mut headers = vec![
            (
                HeaderName::from_static("idempotency-key"),
                value(&format!("{id}:{}", op_word(request.op)))?,
            ),
            (HeaderName::from_static("x-antibody-action"), value(id)?),
        ];
        if let Some(reference) = &out.secret {
            let secret = self.secrets.resolve(reference).map_err(|e| e.to_string())?;
            headers.push((
                HeaderName::from_static(SIGNATURE_HEADER),
                value(&sign(secret.expose(), &out.body))?,
            ));
        }
        Ok(headers)
    }
}

fn describe(request: &ExecRequest, shown: &str, d: &Delivered) -> ExecResult {
    let plural = if d.attempts == 1 { "" } else { "s" };
    let message = format!(
        "{}: POST {shown}: {} after {} attempt{plural}",
        op_word(request.op),
        d.last,
        d.attempts
    );
    let mut details = BTreeMap::from([
        ("url".to_owned(), shown.to_owned()),
        ("attempts".to_owned(), d.attempts.to_string()),
    ]);
    if let Some(status) = d.status {
        details.insert("http_status".into(), status.to_string());
    }
    if !d.response.is_empty() {
        details.insert("response".into(), d.response.clone());
    }
    common::result(d.ok, message, details)
}

pub struct WebhookExecutor {
    config: WebhookConfig,
    clock: Arc<dyn Clock>,
    poster: Poster,
}

impl WebhookExecutor {
    pub fn new(
        config: WebhookConfig,
        runtime: Handle,
        client: HttpClient,
        secrets: Arc<dyn SecretSource>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let poster = Poster::new(runtime, client, secrets, config.policy);
        Self {
            config,
            clock,
            poster,
        }
    }

    /// The POST an op makes; `None` when an undo has no `undo_url`.
    fn outgoing(&self, request: &ExecRequest) -> Result<Option<Outgoing>, String> {
        let params = &request.action.params;
        let param = |name: &str| match params.get(name) {
            None => Ok(None),
            Some(ParamValue::Str(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(format!("`{name}` must be a string")),
        };
        let endpoint = match (request.op, param("url")?, param("undo_url")?) {
            (ExecOp::Apply, Some(url), _) | (ExecOp::Undo, _, Some(url)) => {
                Endpoint::parse(url).map_err(|e| e.to_string())?
            }
            (ExecOp::Apply, None, _) => self
                .config
                .url
                .clone()
                .ok_or("the action has no `url` and no default is configured")?,
            (ExecOp::Undo, _, None) => return Ok(None),
        };
        let secret = match param("secret")? {
            Some(s) => Some(SecretRef::parse(s).map_err(|e| e.to_string())?),
            None => self.config.secret.clone(),
        };
        let body = serde_json::json!({
            "type": format!("action.{}", op_word(request.op)),
            "tenant": request.tenant,
            "entity": request.entity,
            "ts": self.clock.now_ms(),
            "action": request.action,
        });
        Ok(Some(Outgoing {
            shown: endpoint.url(),
            endpoint,
            body: serde_json::to_vec(&body).map_err(|e| e.to_string())?,
            secret,
        }))
    }
}

impl Executor for WebhookExecutor {
    fn name(&self) -> &str {
        "webhook"
    }

    fn supports(&self, kind: ActionKind) -> bool {
        kind == ActionKind::Webhook
    }

    fn execute(&self, request: ExecRequest, done: Completion) {
        let supported = self.supports(request.action.kind);
        let Some(reply) = common::unsupported(self.name(), supported, &request, Reply::new(done))
        else {
            return;
        };
        let out = match self.outgoing(&request) {
            Ok(Some(out)) => out,
            Ok(None) => {
                let why = "the action has no undo_url";
                return common::nothing_to_undo(self.poster.ledger(), &request, reply, why);
            }
            Err(e) => return reply.send(ExecResult::failed(e)),
        };
        if is_dry_run(&request) {
            return reply.send(Poster::dry_run(&out));
        }
        self.poster.send(request, reply, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::{Secret, SecretError};
    use crate::testkit::{action, execute, request, runtime, FakeServer};
    use antibody_core::FakeClock;
    use antibody_respond::{Mode, Params};
    use std::time::Duration;

    /// Resolves `env:HOOK` only.
    pub struct OneSecret;

    impl SecretSource for OneSecret {
        fn resolve(&self, reference: &SecretRef) -> Result<Secret, SecretError> {
            match reference {
                SecretRef::Env(v) if v == "HOOK" => Ok(Secret::new("s3cret")),
                other => Err(SecretError::Unresolved {
                    reference: other.to_string(),
                    why: "not set".into(),
                }),
            }
        }
    }

    fn exec(rt: &tokio::runtime::Runtime, retries: u32) -> WebhookExecutor {
        let config = WebhookConfig {
            url: None,
            secret: Some(SecretRef::Env("HOOK".into())),
            policy: RetryPolicy {
                timeout: Duration::from_millis(500),
                retries,
                backoff: Duration::from_millis(1),
            },
        };
        WebhookExecutor::new(
            config,
            rt.handle().clone(),
            crate::testkit::http_client(),
            Arc::new(OneSecret),
            Arc::new(FakeClock::new(7)),
        )
    }

    fn req(server: &FakeServer, op: ExecOp) -> ExecRequest {
        let params = Params::from([
            ("url".to_owned(), ParamValue::Str(server.url("/apply"))),
            ("undo_url".to_owned(), ParamValue::Str(server.url("/undo"))),
        ]);
        request(action("a-1", ActionKind::Webhook, "ticket", params), op)
    }

    #[test]
    fn posts_signed_json_with_an_idempotency_key() {
        let rt = runtime();
        let server = FakeServer::start(&rt);
        let r = execute(&exec(&rt, 0), req(&server, ExecOp::Apply));
        assert!(r.ok, "{r:?}");
        assert_eq!(r.details["http_status"], "200");
        let got = &server.requests()[0];
        assert_eq!(got.path, "/apply");
        assert_eq!(got.header("idempotency-key"), Some("a-1:apply"));
        assert_eq!(
            got.header(SIGNATURE_HEADER),
            Some(sign(b"s3cret", &got.body).as_str())
        );
        let body = got.json();
        assert_eq!(body["type"], "action.apply");
        assert_eq!(
            (body["tenant"].as_str(), body["ts"].as_i64()),
            (Some("acme"), Some(7))
        );
        assert_eq!(body["action"]["id"], "a-1");
    }

    #[test]
    fn failing_receiver_retries_then_fails_for_escalation() {
        let rt = runtime();
        let server = FakeServer::start(&rt);
        server.fail_next(10, 503);
        let r = execute(&exec(&rt, 2), req(&server, ExecOp::Apply));
        assert!(!r.ok);
        assert_eq!(r.details["attempts"], "3");
        assert_eq!(r.details["http_status"], "503");
        assert!(
            r.message.ends_with("HTTP 503 after 3 attempts"),
            "{}",
            r.message
        );
        // A failed apply may be retried later, and then succeeds.
        server.fail_next(0, 200);
        assert!(execute(&exec(&rt, 2), req(&server, ExecOp::Apply)).ok);
    }

    #[test]
    fn unresolvable_secret_fails_without_sending() {
        let rt = runtime();
        let server = FakeServer::start(&rt);
        let mut r = req(&server, ExecOp::Apply);
        r.action
            .params
            .insert("secret".into(), ParamValue::Str("env:OTHER".into()));
        let got = execute(&exec(&rt, 0), r);
        assert!(!got.ok);
        assert!(got.message.contains("env:OTHER"), "{}", got.message);
        assert!(server.requests().is_empty());
    }

    #[test]
    fn dry_run_shows_url_and_body() {
        let rt = runtime();
        let server = FakeServer::start(&rt);
        let mut r = req(&server, ExecOp::Apply);
        r.action.mode = Mode::DryRun;
        let got = execute(&exec(&rt, 0), r);
        assert!(got.ok);
        assert!(
            got.message
                .starts_with("dry run: would POST http://127.0.0.1:"),
            "{}",
            got.message
        );
        assert_eq!(got.details["signed_with"], "env:HOOK");
        assert!(got.details["body"].contains("\"action.apply\""));
        assert!(server.requests().is_empty());
    }

    #[test]
    fn undo_without_undo_url_has_nothing_to_do() {
        let rt = runtime();
        let server = FakeServer::start(&rt);
        let mut r = req(&server, ExecOp::Undo);
        r.action.params.remove("undo_url");
        let got = execute(&exec(&rt, 0), r);
        assert_eq!(got.message, "nothing to undo: the action has no undo_url");
        assert!(server.requests().is_empty());
    }
}
