//! The OTLP ingest hot path: decode an export of agent tasks (protobuf and JSON), map its
//! spans to events, and plan the tasks' vitals. 64 tasks of 8 spans (512 spans, the
//! OpenTelemetry batch processor's default batch size).

#[path = "data/otlp_export.rs"]
mod otlp_export;

use antibody_core::ingest::Limits;
use antibody_core::TenantId;
use antibody_formats::otlp::proto::{ExportTraceServiceRequest, Value};
use antibody_formats::otlp::{map_traces, Encoding, TaskTable};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use otlp_export::{export, NOW};
use prost::Message as _;

/// The server runs on mimalloc; measure with the allocator it will have.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
