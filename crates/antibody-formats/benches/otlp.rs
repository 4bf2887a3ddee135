//! The OTLP ingest hot path: decode an export of agent tasks (protobuf and JSON), map its
//! spans to events, and plan the tasks' vitals. 64 tasks of 8 spans (512 spans, the
//! OpenTelemetry batch processor's default batch size).

use antibody_core::ingest::Limits;
use antibody_core::TenantId;
use antibody_formats::otlp::proto::{
    ExportTraceServiceRequest, Resource, ResourceSpans, ScopeSpans, Span, Value,
};
use antibody_formats::otlp::{kv, map_traces, Encoding, TaskTable};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use prost::Message as _;

/// The server runs on mimalloc; measure with the allocator it will have.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const T0: u64 = 1_780_000_000_000_000_000;
const NOW: i64 = 1_780_000_100_000;

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

fn export() -> ExportTraceServiceRequest {
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

fn bench(c: &mut Criterion) {
    let req = export();
    let pb = req.encode_to_vec();
    let tenant = TenantId::new("bench");
    let limits = Limits::default();
    let mut g = c.benchmark_group("otlp");
    g.throughput(Throughput::Elements(512));
    g.bench_function("traces_protobuf_512_spans", |b| {
        b.iter(|| map_traces(&pb, Encoding::Protobuf, &tenant, NOW, &limits).unwrap())
    });
    let mapped = map_traces(&pb, Encoding::Protobuf, &tenant, NOW, &limits).unwrap();
    let json = otlp_json(&pb);
    g.bench_function("traces_json_512_spans", |b| {
        b.iter(|| map_traces(&json, Encoding::Json, &tenant, NOW, &limits).unwrap())
    });
    let table = TaskTable::new();
    g.bench_function("task_plan_512_spans", |b| {
        b.iter(|| table.plan(&tenant, &mapped.tasks, NOW, &limits))
    });
    g.finish();
}

/// The same export in OTLP/JSON, written from the decoded spans.
fn otlp_json(pb: &[u8]) -> Vec<u8> {
    use serde_json::{json, Value as J};
    let req = ExportTraceServiceRequest::decode(pb).unwrap();
    let kvs = |kvs: &[antibody_formats::otlp::proto::KeyValue]| -> J {
        kvs.iter()
            .map(|kv| {
                let v = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                    Some(Value::String(s)) => json!({"stringValue": s}),
                    Some(Value::Int(i)) => json!({"intValue": i.to_string()}),
                    _ => json!({}),
                };
                json!({"key": kv.key, "value": v})
            })
            .collect()
    };
    let spans: Vec<J> = req.resource_spans[0].scope_spans[0]
        .spans
        .iter()
        .map(|s| {
            json!({"traceId": hex::encode(&s.trace_id), "spanId": hex::encode(&s.span_id),
                "parentSpanId": hex::encode(&s.parent_span_id), "name": s.name, "kind": 3,
                "startTimeUnixNano": s.start_time_unix_nano.to_string(),
                "endTimeUnixNano": s.end_time_unix_nano.to_string(),
                "attributes": kvs(&s.attributes)})
        })
        .collect();
    serde_json::to_vec(&json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "fleet"}}]},
        "scopeSpans": [{"scope": {"name": "bench"}, "spans": spans}]}]}))
    .unwrap()
}

criterion_group!(benches, bench);
criterion_main!(benches);
