//! One `mcp` event per observed request (the contract's names): `attrs.{server, method,
//! tool}` plus `agent`, `protocol`, `style`, `session` (a fingerprint), `status` and
//! `error`; `metrics.{latency_ms, arg_bytes, error}` plus `tools` / `tools_hidden` for a
//! `tools/list` answer.

use super::message::{Style, Watched};
use crate::proxy::ms;
use antibody_core::event::AttrValue;
use antibody_core::{Event, TenantId, TimestampMs};
use serde_json::Value;
use std::time::Instant;

#[derive(Clone, Debug, PartialEq)]
pub struct McpRecord {
    pub tenant: TenantId,
    pub agent: String,
    pub ts: TimestampMs,
    pub server: String,
    pub method: Watched,
    pub tool: Option<String>,
    pub arg_bytes: usize,
    pub protocol: Option<String>,
    pub style: Style,
    /// 16 hex of the SHA-256 of `Mcp-Session-Id`, never the id.
    pub session: Option<String>,
    /// The server's HTTP status; 0 when none answered.
    pub status: u16,
    pub latency_ms: f64,
    /// Why the request failed, if it did (`rpc_error`, `tool_error`, `tool_revoked`,
    /// `upstream_unavailable`, `client_disconnected`, …).
    pub error: Option<&'static str>,
    pub rpc_code: Option<i64>,
    pub tools: Option<usize>,
    pub hidden: usize,
}

impl McpRecord {
    pub fn to_event(&self) -> Event {
        let mut metrics = vec![
            ("latency_ms".to_owned(), self.latency_ms),
            ("error".into(), f64::from(u8::from(self.error.is_some()))),
        ];
        if self.method == Watched::ToolsCall {
            metrics.push(("arg_bytes".into(), self.arg_bytes as f64));
        }
        if let Some(n) = self.tools {
            metrics.push(("tools".into(), n as f64));
            metrics.push(("tools_hidden".into(), self.hidden as f64));
        }
        let s = |v: &str| AttrValue::Str(v.to_owned());
        let mut attrs = vec![
            ("server".to_owned(), s(&self.server)),
            ("method".into(), s(self.method.as_str())),
            ("agent".into(), s(&self.agent)),
            ("style".into(), s(self.style.as_str())),
            ("status".into(), AttrValue::Num(f64::from(self.status))),
        ];
        if let Some(t) = &self.tool {
            attrs.push(("tool".into(), s(t)));
        }
        if let Some(p) = &self.protocol {
            attrs.push(("protocol".into(), s(p)));
        }
        if let Some(id) = &self.session {
            attrs.push(("session".into(), s(id)));
        }
        if let Some(e) = self.error {
            attrs.push(("error".into(), s(e)));
        }
        if let Some(c) = self.rpc_code {
            attrs.push(("rpc_code".into(), AttrValue::Num(c as f64)));
        }
        Event {
            tenant: self.tenant.clone(),
            ts: self.ts,
            entity: self.agent.clone(),
            kind: "mcp".into(),
            metrics,
            attrs,
            id: None,
        }
    }
}

/// What every event of one exchange shares.
#[derive(Clone)]
pub(crate) struct Base {
    pub(crate) tenant: TenantId,
    pub(crate) agent: String,
    pub(crate) ts: TimestampMs,
    pub(crate) server: String,
    pub(crate) protocol: Option<String>,
    pub(crate) style: Style,
    pub(crate) session: Option<String>,
    pub(crate) status: u16,
    pub(crate) started: Instant,
}

/// An observed request waiting for its answer.
pub(crate) struct Watch {
    pub(crate) id: Value,
    pub(crate) method: Watched,
    pub(crate) tool: Option<String>,
    pub(crate) arg_bytes: usize,
}

impl Base {
    pub(crate) fn record(&self, w: &Watch, error: Option<&'static str>) -> McpRecord {
        McpRecord {
            tenant: self.tenant.clone(),
            agent: self.agent.clone(),
            ts: self.ts,
            server: self.server.clone(),
            method: w.method,
            tool: w.tool.clone(),
            arg_bytes: w.arg_bytes,
            protocol: self.protocol.clone(),
            style: self.style,
            session: self.session.clone(),
            status: self.status,
            latency_ms: ms(self.started.elapsed()),
            error,
            rpc_code: None,
            tools: None,
            hidden: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_contract_names_are_used() {
        let r = McpRecord {
            tenant: TenantId::new("t"),
            agent: "agent:a".into(),
            ts: 5,
            server: "tools".into(),
            method: Watched::ToolsCall,
            tool: Some("search".into()),
            arg_bytes: 42,
            protocol: Some("2025-11-25".into()),
            style: Style::Session,
            session: Some("00ff".into()),
            status: 200,
            latency_ms: 1.5,
            error: Some("tool_error"),
            rpc_code: None,
            tools: None,
            hidden: 0,
        };
        let e = r.to_event();
        assert_eq!(
            (e.kind.as_str(), e.entity.as_str(), e.tenant.as_str()),
            ("mcp", "agent:a", "t")
        );
        assert_eq!(e.metric("latency_ms"), Some(1.5));
        assert_eq!(e.metric("arg_bytes"), Some(42.0));
        assert_eq!(e.metric("error"), Some(1.0));
        for (k, v) in [
            ("server", "tools"),
            ("method", "tools/call"),
            ("tool", "search"),
            ("protocol", "2025-11-25"),
            ("style", "session"),
            ("error", "tool_error"),
        ] {
            assert_eq!(e.attr_str(k), Some(v), "{k}");
        }
        let list = McpRecord {
            method: Watched::ToolsList,
            tool: None,
            tools: Some(3),
            hidden: 1,
            error: None,
            ..r
        }
        .to_event();
        assert_eq!(list.metric("arg_bytes"), None);
        assert_eq!(
            (list.metric("tools"), list.metric("tools_hidden")),
            (Some(3.0), Some(1.0))
        );
        assert_eq!(list.metric("error"), Some(0.0));
    }
}
