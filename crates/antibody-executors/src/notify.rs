//! The `notify` executor: tells people. Sends a Slack-compatible payload
//! (`{"text", "blocks"}`, accepted by Slack, Mattermost and Rocket.Chat incoming webhooks)
//! or a generic JSON object to the channel's URL, through the webhook sender. A URL may be
//! given by secret reference, since a chat webhook's path is itself a credential; results
//! only ever show its origin. A notification cannot be taken back, so undo does nothing.

use crate::common::{self, is_dry_run};
use crate::http::{Endpoint, HttpClient, RetryPolicy};
use crate::reply::Reply;
use crate::secret::{SecretRef, SecretSource};
use crate::webhook::{Outgoing, Poster};
use antibody_respond::executor::{Completion, ExecOp, ExecRequest, ExecResult, Executor};
use antibody_respond::{ActionKind, ParamValue};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::runtime::Handle;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotifyFormat {
    Slack,
    Json,
}

/// A URL, literal or by secret reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UrlSource {
    Url(Endpoint),
    Secret(SecretRef),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotifyConfig {
    /// Where notifications without a known `channel` go.
    pub url: Option<UrlSource>,
    /// Channel name (the action's `channel` parameter) → URL.
    pub channels: BTreeMap<String, UrlSource>,
    pub format: NotifyFormat,
    pub secret: Option<SecretRef>,
    pub policy: RetryPolicy,
}

pub struct NotifyExecutor {
    config: NotifyConfig,
    secrets: Arc<dyn SecretSource>,
    poster: Poster,
}

impl NotifyExecutor {
    pub fn new(
        config: NotifyConfig,
        runtime: Handle,
        client: HttpClient,
        secrets: Arc<dyn SecretSource>,
    ) -> Self {
        let poster = Poster::new(runtime, client, secrets.clone(), config.policy);
        Self {
            config,
            secrets,
            poster,
        }
    }

    fn endpoint(&self, channel: Option<&str>) -> Result<(Endpoint, String), String> {
        let source = channel
            .and_then(|c| self.config.channels.get(c))
            .or(self.config.url.as_ref())
            .ok_or_else(|| match channel {
                Some(c) => {
                    format!("no URL is configured for channel `{c}` and there is no default")
                }
                None => "no notification URL is configured".to_owned(),
            })?;
        match source {
            UrlSource::Url(endpoint) => Ok((endpoint.clone(), endpoint.origin())),
            UrlSource::Secret(reference) => {
                let secret = self.secrets.resolve(reference).map_err(|e| e.to_string())?;
                let url = std::str::from_utf8(secret.expose())
                    .map_err(|_| format!("{reference} does not hold a URL"))?;
                let endpoint = Endpoint::parse(url.trim())
                    .map_err(|e| format!("{reference} does not hold a usable URL: {e}"))?;
                let shown = format!("{} ({reference})", endpoint.origin());
                Ok((endpoint, shown))
            }
        }
    }

    fn outgoing(&self, request: &ExecRequest) -> Result<Outgoing, String> {
        let text_param = |name: &str| match request.action.params.get(name) {
            Some(ParamValue::Str(s)) => Some(s.as_str()),
            _ => None,
        };
        let channel = text_param("channel");
        let (endpoint, shown) = self.endpoint(channel)?;
        let text = text_param("message").map_or_else(|| default_text(request), str::to_owned);
        let payload = match self.config.format {
            NotifyFormat::Slack => slack(request, &text, channel),
            NotifyFormat::Json => generic(request, &text, channel),
        };
        Ok(Outgoing {
            endpoint,
            shown,
            body: serde_json::to_vec(&payload).map_err(|e| e.to_string())?,
            secret: self.config.secret.clone(),
        })
    }
}

fn default_text(request: &ExecRequest) -> String {
    let a = &request.action;
    format!("antibody: {} {} — {}", a.kind, a.target, a.why.text)
}

fn context_line(request: &ExecRequest) -> String {
    let a = &request.action;
    format!(
        "tenant `{}` · entity `{}` · incident `{}` · action `{}` · playbook `{}`",
        request.tenant, request.entity, a.incident, a.id, a.why.playbook
    )
}

fn slack(request: &ExecRequest, text: &str, channel: Option<&str>) -> Value {
    let mut payload = json!({
        "text": text,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": text}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": context_line(request)}]},
        ],
    });
    if let Some(channel) = channel {
        payload["channel"] = json!(channel);
    }
    payload
}

fn generic(request: &ExecRequest, text: &str, channel: Option<&str>) -> Value {
    let a = &request.action;
    json!({
        "text": text,
        "channel": channel,
        "tenant": request.tenant,
        "entity": request.entity,
        "incident": a.incident,
        "action": a.id,
        "kind": a.kind,
        "target": a.target,
        "why": a.why,
    })
}

impl Executor for NotifyExecutor {
    fn name(&self) -> &str {
        "notify"
    }

    fn supports(&self, kind: ActionKind) -> bool {
        kind == ActionKind::Notify
    }

    fn execute(&self, request: ExecRequest, done: Completion) {
        let supported = self.supports(request.action.kind);
        let Some(reply) = common::unsupported(self.name(), supported, &request, Reply::new(done))
        else {
            return;
        };
        if request.op == ExecOp::Undo {
            let why = "a notification cannot be taken back";
            return common::nothing_to_undo(self.poster.ledger(), &request, reply, why);
        }
        let out = match self.outgoing(&request) {
            Ok(out) => out,
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
    use antibody_respond::Params;
    use std::time::Duration;

    /// `env:SLACK` holds the given URL.
    struct UrlSecret(String);

    impl SecretSource for UrlSecret {
        fn resolve(&self, reference: &SecretRef) -> Result<Secret, SecretError> {
            match reference {
                SecretRef::Env(v) if v == "SLACK" => Ok(Secret::new(self.0.clone())),
                other => Err(SecretError::Unresolved {
                    reference: other.to_string(),
                    why: "not set".into(),
                }),
            }
        }
    }

    fn config(url: Option<UrlSource>, format: NotifyFormat) -> NotifyConfig {
        NotifyConfig {
            url,
            channels: BTreeMap::new(),
            format,
            secret: None,
            policy: RetryPolicy {
                timeout: Duration::from_millis(500),
                retries: 1,
                backoff: Duration::from_millis(1),
            },
        }
    }

    fn req(params: Params) -> ExecRequest {
        request(
            action("a-1", ActionKind::Notify, "ops", params),
            ExecOp::Apply,
        )
    }

    #[test]
    fn slack_payload_through_a_secret_url_shows_only_the_origin() {
        let rt = runtime();
        let server = FakeServer::start(&rt);
        let secrets = Arc::new(UrlSecret(server.url("/services/T0/B0/token")));
        let cfg = config(
            Some(UrlSource::Secret(SecretRef::Env("SLACK".into()))),
            NotifyFormat::Slack,
        );
        let exec = NotifyExecutor::new(
            cfg,
            rt.handle().clone(),
            crate::testkit::http_client(),
            secrets,
        );
        let r = execute(&exec, req(Params::new()));
        assert!(r.ok, "{r:?}");
        assert!(
            !r.message.contains("token") && !r.details["url"].contains("token"),
            "{r:?}"
        );
        let got = server.requests()[0].clone();
        assert_eq!(got.path, "/services/T0/B0/token");
        let body = got.json();
        assert_eq!(
            body["text"],
            "antibody: notify ops — brute force from one address"
        );
        assert_eq!(body["blocks"][0]["text"]["type"], "mrkdwn");
        assert!(body["blocks"][1]["elements"][0]["text"]
            .as_str()
            .unwrap()
            .contains("incident `i-1`"));
    }

    #[test]
    fn channels_route_and_generic_json_carries_the_facts() {
        let rt = runtime();
        let server = FakeServer::start(&rt);
        let mut cfg = config(None, NotifyFormat::Json);
        cfg.channels.insert(
            "secops".into(),
            UrlSource::Url(Endpoint::parse(&server.url("/secops")).unwrap()),
        );
        let exec = NotifyExecutor::new(
            cfg,
            rt.handle().clone(),
            crate::testkit::http_client(),
            Arc::new(UrlSecret(String::new())),
        );
        let params = Params::from([
            ("channel".to_owned(), ParamValue::Str("secops".into())),
            ("message".to_owned(), ParamValue::Str("look".into())),
        ]);
        assert!(execute(&exec, req(params)).ok);
        let body = server.requests()[0].json();
        assert_eq!(
            (body["text"].as_str(), body["channel"].as_str()),
            (Some("look"), Some("secops"))
        );
        assert_eq!(body["kind"], "notify");
        let params = Params::from([("channel".to_owned(), ParamValue::Str("nope".into()))]);
        let r = execute(&exec, req(params));
        assert!(!r.ok);
        assert!(r.message.contains("channel `nope`"), "{}", r.message);
    }
}
