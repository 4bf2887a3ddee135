//! The export the OTLP benchmark and the callgrind driver (`examples/otlp_ir.rs`) both map:
//! 64 agent tasks of 8 spans (512 spans, the OpenTelemetry batch processor's default).

use antibody_formats::otlp::kv;
use antibody_formats::otlp::proto::{
    ExportTraceServiceRequest, Resource, ResourceSpans, ScopeSpans, Span, Value,
};

pub const T0: u64 = 1_780_000_000_000_000_000;
pub const NOW: i64 = 1_780_000_100_000;

fn task(n: u32) -> Vec<Span> {
    let mut trace = [0u8; 16];
    trace[..4].copy_from_slice(&n.to_be_bytes());
    trace[15] = 1;
    let span = |id: u8, parent: Option<u8>, attrs| Span {
        trace_id: trace.to_vec(),
        span_id: vec![id; 8],
        parent_span_id: parent.map(|p| vec![p; 8]).unwrap_or_default(),
        name: "span".into(),
        start_time_unix_nano: T0 + u64::from(id) * 1_000_000,
        end_time_unix_nano: T0 + u64::from(id) * 2_000_000,
        attributes: attrs,
        status: None,
    };
    let s = |v: &str| Value::String(v.into());
    let mut spans: Vec<Span> = (2..8)
        .map(|id| {
            if id % 3 == 0 {
                span(
                    id,
                    Some(1),
                    vec![
                        kv("gen_ai.operation.name", s("execute_tool")),
                        kv("gen_ai.tool.name", s("web_search")),
                    ],
                )
            } else {
                span(
                    id,
                    Some(1),
                    vec![
                        kv("gen_ai.operation.name", s("chat")),
                        kv("gen_ai.provider.name", s("openai")),
                        kv("gen_ai.request.model", s("gpt-4o-mini")),
                        kv("gen_ai.response.model", s("gpt-4o-mini-2024-07-18")),
                        kv("gen_ai.usage.input_tokens", Value::Int(812)),
                        kv("gen_ai.usage.output_tokens", Value::Int(96)),
                        kv("gen_ai.response.finish_reasons", s("stop")),
                        kv("server.address", s("api.openai.com")),
                    ],
                )
            }
        })
        .collect();
    spans.push(span(9, Some(1), vec![kv("http.method", s("GET"))]));
    spans.push(span(
        1,
        None,
        vec![
            kv("gen_ai.operation.name", s("invoke_agent")),
            kv("gen_ai.agent.id", s(&format!("agent-{}", n % 16))),
        ],
    ));
    spans
}

pub fn export() -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", Value::String("fleet".into()))],
            }),
            scope_spans: vec![ScopeSpans {
                spans: (0..64).flat_map(task).collect(),
            }],
        }],
    }
}
