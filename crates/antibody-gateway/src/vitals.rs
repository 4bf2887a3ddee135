//! One `llm` event per call (the contract's names): `metrics.{latency_ms, ttft_ms,
//! input_tokens, output_tokens, cached_tokens, reasoning_tokens, tool_calls, cost_usd}`
//! plus `tokens`, `retries` and `errors` (the vitals the default baselines and playbooks
//! read), and `attrs.{model, provider, agent, prompt_hash, stream}` plus `route` and
//! `status`.

use crate::usage::Observed;
use antibody_core::event::AttrValue;
use antibody_core::{Event, TenantId, TimestampMs};

/// What the gateway knows about a finished call.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CallRecord {
    pub tenant: Option<TenantId>,
    pub agent: String,
    pub ts: TimestampMs,
    pub route: &'static str,
    pub provider: String,
    /// The model asked for (the price table is read with it first).
    pub model: Option<String>,
    pub stream: bool,
    pub prompt_hash: Option<String>,
    /// The scanned prompt text (`[gateway] scan` not `off`).
    pub prompt: Option<String>,
    /// Scanning is on: the start of the answer (`observed.text`) goes in as `completion`.
    pub scanned: bool,
    pub latency_ms: f64,
    pub ttft_ms: Option<f64>,
    pub observed: Observed,
    pub cost_usd: Option<f64>,
    /// The upstream's status; 0 when none answered.
    pub status: u16,
    /// Upstream attempts after the first (fallbacks).
    pub retries: u32,
    /// Why the call failed, if it did (`upstream_5xx`, `client_disconnected`, …).
    pub error: Option<&'static str>,
}

impl CallRecord {
    pub fn to_event(&self) -> Event {
        let mut metrics = vec![("latency_ms".to_owned(), self.latency_ms)];
        if let Some(t) = self.ttft_ms {
            metrics.push(("ttft_ms".into(), t));
        }
        if let Some(u) = self.observed.usage {
            metrics.extend([
                ("input_tokens".into(), u.input as f64),
                ("output_tokens".into(), u.output as f64),
                ("cached_tokens".into(), u.cached as f64),
                ("reasoning_tokens".into(), u.reasoning as f64),
                ("tokens".into(), (u.input + u.output) as f64),
            ]);
        }
        metrics.push(("tool_calls".into(), self.observed.tool_calls as f64));
        if let Some(c) = self.cost_usd {
            metrics.push(("cost_usd".into(), c));
        }
        metrics.push(("retries".into(), f64::from(self.retries)));
        metrics.push(("errors".into(), f64::from(u8::from(self.error.is_some()))));
        let s = |v: &str| AttrValue::Str(v.to_owned());
        let mut attrs = vec![
            ("agent".to_owned(), s(&self.agent)),
            ("provider".into(), s(&self.provider)),
            ("route".into(), s(self.route)),
            ("stream".into(), AttrValue::Bool(self.stream)),
            ("status".into(), AttrValue::Num(f64::from(self.status))),
        ];
        if let Some(m) = self.model.as_deref().or(self.observed.model.as_deref()) {
            attrs.push(("model".into(), s(m)));
        }
        if let Some(h) = &self.prompt_hash {
            attrs.push(("prompt_hash".into(), s(h)));
        }
        if let Some(p) = &self.prompt {
            attrs.push(("prompt".into(), s(p)));
        }
        if self.scanned && !self.observed.text.is_empty() {
            attrs.push(("completion".into(), s(&self.observed.text)));
        }
        if let Some(e) = self.error {
            attrs.push(("error".into(), s(e)));
        }
        Event {
            tenant: self
                .tenant
                .clone()
                .unwrap_or_else(|| TenantId::new("default")),
            ts: self.ts,
            entity: self.agent.clone(),
            kind: "llm".into(),
            metrics,
            attrs,
            id: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::Usage;

    #[test]
    fn the_contract_names_are_used() {
        let r = CallRecord {
            tenant: Some(TenantId::new("t")),
            agent: "agent:a".into(),
            ts: 5,
            route: "chat.completions",
            provider: "openai".into(),
            model: Some("gpt-4o-mini".into()),
            stream: true,
            prompt_hash: Some("ab".into()),
            prompt: Some("hi".into()),
            scanned: true,
            latency_ms: 12.5,
            ttft_ms: Some(3.0),
            observed: Observed {
                usage: Some(Usage {
                    input: 10,
                    output: 5,
                    cached: 2,
                    reasoning: 1,
                }),
                tool_calls: 2,
                model: Some("gpt-4o-mini-2024".into()),
                text: "the answer".into(),
            },
            cost_usd: Some(0.25),
            status: 200,
            retries: 1,
            error: None,
        };
        let e = r.to_event();
        assert_eq!(
            (e.kind.as_str(), e.entity.as_str(), e.tenant.as_str()),
            ("llm", "agent:a", "t")
        );
        for (k, v) in [
            ("latency_ms", 12.5),
            ("ttft_ms", 3.0),
            ("input_tokens", 10.0),
            ("output_tokens", 5.0),
            ("cached_tokens", 2.0),
            ("reasoning_tokens", 1.0),
            ("tokens", 15.0),
            ("tool_calls", 2.0),
            ("cost_usd", 0.25),
            ("retries", 1.0),
            ("errors", 0.0),
        ] {
            assert_eq!(e.metric(k), Some(v), "{k}");
        }
        assert_eq!(e.attr_str("model"), Some("gpt-4o-mini"));
        assert_eq!(e.attr_str("provider"), Some("openai"));
        assert_eq!(e.attr_str("prompt_hash"), Some("ab"));
        assert_eq!(e.attr_str("prompt"), Some("hi"));
        assert_eq!(e.attr_str("completion"), Some("the answer"));
        assert_eq!(e.attr("stream"), Some(&AttrValue::Bool(true)));
        let failed = CallRecord {
            error: Some("upstream_timeout"),
            ..CallRecord::default()
        }
        .to_event();
        assert_eq!(failed.metric("errors"), Some(1.0));
        assert_eq!(
            failed.metric("input_tokens"),
            None,
            "no usage: no token counts"
        );
    }
}
