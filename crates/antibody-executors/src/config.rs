//! The `[executors]` table of `antibody.toml`. Parsed as [`RawExecutorsConfig`] (plain serde
//! types, unknown keys rejected), then validated into [`ExecutorsConfig`], which holds only
//! checked values: parsed URLs and argv templates, secret references, durations.
//!
//! ```toml
//! [executors.webhook]            # on by default; the action names its url
//! secret = "env:ANTIBODY_HOOK_SECRET"
//! timeout_ms = 5000
//! retries = 3
//! backoff_ms = 500
//!
//! [executors.notify]             # on when a url or a channel is given
//! url = "env:SLACK_WEBHOOK_URL"  # or "http://relay.local/hook"
//! format = "slack"               # or "json"
//! channels = { secops = "http://relay.local/secops" }
//!
//! [executors.command]            # off unless enabled: it runs programs
//! enabled = true
//! allow = ["nft"]                # bare names allowed besides absolute paths
//! timeout_ms = 10000
//!
//! [executors.signal]             # off unless enabled: it signals processes
//! enabled = true
//!
//! [executors.block_ip]           # optional: also push blocks to the host firewall
//! argv = ["nft", "add", "element", "inet", "filter", "blocklist", "{ {target} }"]
//! undo_argv = ["nft", "delete", "element", "inet", "filter", "blocklist", "{ {target} }"]
//! allow = ["nft"]
//! ```
//!
//! The blocklist and the other in-product effects (`rate_limit`, `quarantine`, …) need no
//! executor: antibody serves them itself. Secrets are only ever references (`env:VAR`, `file:PATH`); no value appears in `Debug` output.

use crate::block_ip::FirewallCommand;
use crate::command::CommandConfig;
use crate::http::{Endpoint, RetryPolicy};
use crate::notify::{NotifyConfig, NotifyFormat, UrlSource};
use crate::secret::SecretRef;
use crate::template::ArgvTemplate;
use crate::webhook::WebhookConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

const MAX_TIMEOUT_MS: u64 = 600_000;
const MAX_RETRIES: u32 = 10;
const MAX_BACKOFF_MS: u64 = 60_000;

/// Every problem found, one per line, each naming its key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid [executors] configuration:\n{}", .0.join("\n"))]
pub struct ConfigError(pub Vec<String>);

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawExecutorsConfig {
    pub webhook: RawWebhook,
    pub notify: RawNotify,
    pub command: RawCommand,
    pub signal: RawSignal,
    pub block_ip: RawBlockIp,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawWebhook {
    pub enabled: bool,
    pub url: Option<String>,
    pub secret: Option<String>,
    pub timeout_ms: u64,
    pub retries: u32,
    pub backoff_ms: u64,
}

impl Default for RawWebhook {
    fn default() -> Self {
        Self {
            enabled: true,
            url: None,
            secret: None,
            timeout_ms: 5_000,
            retries: 3,
            backoff_ms: 500,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawNotify {
    /// A URL or a secret reference holding one.
    pub url: Option<String>,
    pub channels: BTreeMap<String, String>,
    /// `slack` or `json`.
    pub format: String,
    pub secret: Option<String>,
    pub timeout_ms: u64,
    pub retries: u32,
    pub backoff_ms: u64,
}

impl Default for RawNotify {
    fn default() -> Self {
        Self {
            url: None,
            channels: BTreeMap::new(),
            format: "slack".into(),
            secret: None,
            timeout_ms: 5_000,
            retries: 3,
            backoff_ms: 500,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawCommand {
    pub enabled: bool,
    pub allow: Vec<String>,
    pub timeout_ms: u64,
}

impl Default for RawCommand {
    fn default() -> Self {
        Self {
            enabled: false,
            allow: Vec::new(),
            timeout_ms: 10_000,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawSignal {
    pub enabled: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawBlockIp {
    pub argv: Option<Vec<String>>,
    pub undo_argv: Option<Vec<String>>,
    pub check_argv: Option<Vec<String>>,
    pub allow: Vec<String>,
    pub timeout_ms: u64,
}

impl Default for RawBlockIp {
    fn default() -> Self {
        Self {
            argv: None,
            undo_argv: None,
            check_argv: None,
            allow: Vec::new(),
            timeout_ms: 10_000,
        }
    }
}

/// The validated configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecutorsConfig {
    pub webhook: Option<WebhookConfig>,
    pub notify: Option<NotifyConfig>,
    pub command: Option<CommandConfig>,
    pub signal: bool,
    pub firewall: Option<FirewallCommand>,
}

/// Collects problems while converting, each prefixed with its key.
struct Check(Vec<String>);

impl Check {
    fn take<T, E: std::fmt::Display>(&mut self, key: &str, r: Result<T, E>) -> Option<T> {
        r.map_err(|e| self.0.push(format!("executors.{key}: {e}")))
            .ok()
    }

    fn duration(&mut self, key: &str, ms: u64, max: u64, zero_ok: bool) -> Duration {
        if ms > max || (ms == 0 && !zero_ok) {
            let low = if zero_ok { 0 } else { 1 };
            self.0
                .push(format!("executors.{key}: must be {low}–{max} ms, got {ms}"));
        }
        Duration::from_millis(ms)
    }

    fn policy(
        &mut self,
        section: &str,
        timeout_ms: u64,
        retries: u32,
        backoff_ms: u64,
    ) -> RetryPolicy {
        if retries > MAX_RETRIES {
            self.0.push(format!(
                "executors.{section}.retries: at most {MAX_RETRIES}, got {retries}"
            ));
        }
        RetryPolicy {
            timeout: self.duration(
                &format!("{section}.timeout_ms"),
                timeout_ms,
                MAX_TIMEOUT_MS,
                false,
            ),
            retries,
            backoff: self.duration(
                &format!("{section}.backoff_ms"),
                backoff_ms,
                MAX_BACKOFF_MS,
                true,
            ),
        }
    }

    fn secret(&mut self, key: &str, text: Option<&String>) -> Option<SecretRef> {
        text.and_then(|t| self.take(key, SecretRef::parse(t)))
    }

    fn url_source(&mut self, key: &str, text: &str) -> Option<UrlSource> {
        if text.starts_with("env:") || text.starts_with("file:") {
            return self
                .take(key, SecretRef::parse(text))
                .map(UrlSource::Secret);
        }
        self.take(key, Endpoint::parse(text)).map(UrlSource::Url)
    }

    fn template(
        &mut self,
        key: &str,
        argv: Option<&Vec<String>>,
        allow: &[String],
    ) -> Option<ArgvTemplate> {
        argv.and_then(|a| self.take(key, ArgvTemplate::parse(a, allow)))
    }

    fn allow_list(&mut self, key: &str, allow: &[String]) {
        for name in allow {
            if name.is_empty() || name.contains('/') {
                self.0.push(format!(
                    "executors.{key}: `{name}` must be a bare program name"
                ));
            }
        }
    }
}

impl TryFrom<RawExecutorsConfig> for ExecutorsConfig {
    type Error = ConfigError;

    fn try_from(raw: RawExecutorsConfig) -> Result<Self, ConfigError> {
        let mut c = Check(Vec::new());
        let config = Self {
            webhook: webhook(&mut c, &raw.webhook),
            notify: notify(&mut c, &raw.notify),
            command: command(&mut c, &raw.command),
            signal: raw.signal.enabled,
            firewall: firewall(&mut c, &raw.block_ip),
        };
        if c.0.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError(c.0))
        }
    }
}

fn webhook(c: &mut Check, w: &RawWebhook) -> Option<WebhookConfig> {
    let config = WebhookConfig {
        url: w
            .url
            .as_ref()
            .and_then(|u| c.take("webhook.url", Endpoint::parse(u))),
        secret: c.secret("webhook.secret", w.secret.as_ref()),
        policy: c.policy("webhook", w.timeout_ms, w.retries, w.backoff_ms),
    };
    w.enabled.then_some(config)
}

fn notify(c: &mut Check, n: &RawNotify) -> Option<NotifyConfig> {
    let format = match n.format.as_str() {
        "slack" => NotifyFormat::Slack,
        "json" => NotifyFormat::Json,
        other => {
            c.0.push(format!(
                "executors.notify.format: `{other}` is not slack or json"
            ));
            NotifyFormat::Slack
        }
    };
    let channels = n
        .channels
        .iter()
        .filter_map(|(name, url)| {
            let source = c.url_source(&format!("notify.channels.{name}"), url)?;
            Some((name.clone(), source))
        })
        .collect::<BTreeMap<_, _>>();
    let config = NotifyConfig {
        url: n.url.as_ref().and_then(|u| c.url_source("notify.url", u)),
        channels,
        format,
        secret: c.secret("notify.secret", n.secret.as_ref()),
        policy: c.policy("notify", n.timeout_ms, n.retries, n.backoff_ms),
    };
    (config.url.is_some() || !config.channels.is_empty()).then_some(config)
}

fn command(c: &mut Check, raw: &RawCommand) -> Option<CommandConfig> {
    c.allow_list("command.allow", &raw.allow);
    let config = CommandConfig {
        allow: raw.allow.clone(),
        timeout: c.duration("command.timeout_ms", raw.timeout_ms, MAX_TIMEOUT_MS, false),
    };
    raw.enabled.then_some(config)
}

fn firewall(c: &mut Check, b: &RawBlockIp) -> Option<FirewallCommand> {
    c.allow_list("block_ip.allow", &b.allow);
    let timeout = c.duration("block_ip.timeout_ms", b.timeout_ms, MAX_TIMEOUT_MS, false);
    let undo = c.template("block_ip.undo_argv", b.undo_argv.as_ref(), &b.allow);
    let check = c.template("block_ip.check_argv", b.check_argv.as_ref(), &b.allow);
    let Some(apply) = c.template("block_ip.argv", b.argv.as_ref(), &b.allow) else {
        if b.argv.is_none() && (b.undo_argv.is_some() || b.check_argv.is_some()) {
            c.0.push("executors.block_ip: undo_argv and check_argv need an argv".into());
        }
        return None;
    };
    Some(FirewallCommand {
        apply,
        undo,
        check,
        timeout,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ExecutorsConfig, ConfigError> {
        let raw: RawExecutorsConfig = toml::from_str(text).unwrap();
        ExecutorsConfig::try_from(raw)
    }

    #[test]
    fn defaults_enable_only_the_safe_executors() {
        let c = ExecutorsConfig::try_from(RawExecutorsConfig::default()).unwrap();
        assert_eq!(parse("").unwrap(), c);
        let w = c.webhook.unwrap();
        assert_eq!(
            (w.policy.timeout, w.policy.retries),
            (Duration::from_secs(5), 3)
        );
        assert!(c.notify.is_none() && c.command.is_none() && !c.signal && c.firewall.is_none());
    }

    #[test]
    fn full_example_parses() {
        let c = parse(
            r#"
            [webhook]
            secret = "env:HOOK"
            retries = 5
            [notify]
            url = "env:SLACK_URL"
            format = "json"
            channels = { secops = "http://relay.local/secops" }
            [command]
            enabled = true
            allow = ["nft"]
            [signal]
            enabled = true
            [block_ip]
            argv = ["nft", "add", "element", "inet", "filter", "blocklist", "{ {target} }"]
            undo_argv = ["nft", "delete", "element", "inet", "filter", "blocklist", "{ {target} }"]
            allow = ["nft"]
            "#,
        )
        .unwrap();
        assert_eq!(
            c.webhook.unwrap().secret,
            Some(SecretRef::Env("HOOK".into()))
        );
        let n = c.notify.unwrap();
        assert_eq!(
            n.url,
            Some(UrlSource::Secret(SecretRef::Env("SLACK_URL".into())))
        );
        assert_eq!(n.format, NotifyFormat::Json);
        assert!(matches!(n.channels["secops"], UrlSource::Url(_)));
        assert_eq!(c.command.unwrap().allow, ["nft"]);
        assert!(c.signal);
        let fw = c.firewall.unwrap();
        assert_eq!(fw.apply.program(), "nft");
        assert!(fw.undo.is_some() && fw.check.is_none());
    }

    #[test]
    fn reports_every_problem_with_its_key() {
        let err = parse(
            r#"
            [webhook]
            url = "gopher://hooks.example.com/x"
            secret = "hunter2"
            timeout_ms = 0
            retries = 99
            [notify]
            url = "ftp://x"
            format = "xml"
            [command]
            allow = ["/usr/sbin/nft"]
            [block_ip]
            argv = ["nft", "{target}"]
            "#,
        )
        .unwrap_err();
        let want = [
            "executors.webhook.url: only http:// and https://",
            "executors.webhook.secret: `hunter2` is not a secret reference",
            "executors.webhook.timeout_ms: must be 1–600000 ms, got 0",
            "executors.webhook.retries: at most 10, got 99",
            "executors.notify.url: only http:// and https://",
            "executors.notify.format: `xml`",
            "executors.command.allow: `/usr/sbin/nft` must be a bare program name",
            "executors.block_ip.argv: program `nft` is neither",
        ];
        assert_eq!(err.0.len(), want.len(), "{err}");
        for w in want {
            assert!(err.0.iter().any(|p| p.starts_with(w)), "missing {w}: {err}");
        }
        assert!(toml::from_str::<RawExecutorsConfig>("[webhook]\nsecrett = 1").is_err());
    }

    #[test]
    fn debug_output_holds_no_secret_value_or_url_path() {
        let c = parse(
            r#"
            [notify]
            url = "http://relay.local/services/T0/B0/tokenvalue"
            secret = "env:NOTIFY_SECRET"
            "#,
        )
        .unwrap();
        let debug = format!("{c:?}");
        assert!(!debug.contains("tokenvalue"), "{debug}");
        assert!(
            debug.contains("NOTIFY_SECRET"),
            "references may show: {debug}"
        );
    }
}
