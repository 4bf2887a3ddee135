//! Ingest parser throughput on a 1,000-line body of realistic agent-vitals and HTTP events.
//! Run: `cargo bench -p antibody-core --bench ingest -- --warm-up-time 1 --measurement-time 3`

use antibody_core::ingest::{parse_events, BodyFormat, Limits};
use antibody_core::TenantId;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;

const EVENTS: usize = 1_000;

fn vitals(i: usize) -> String {
    format!(
        r#"{{"ts":"2026-11-21T10:{:02}:{:02}.{:03}Z","entity":"agent:research-{}","kind":"vitals","metrics":{{"latency_ms":{},"tokens":{},"input_tokens":{},"output_tokens":{},"tool_calls":{},"retries":0,"errors":0,"cost_usd":{:.4}}},"attrs":{{"model":"gpt-4.1","prompt_hash":"9f2c{:04x}","tools":"search,browse,python","mcp_servers":"github"}}}}"#,
        (i / 60) % 60,
        i % 60,
        i % 1000,
        i % 16,
        400 + (i * 37) % 900,
        800 + (i * 53) % 2000,
        500 + (i * 31) % 1500,
        300 + (i * 17) % 500,
        i % 7,
        0.002 + (i % 100) as f64 * 0.0001,
        i % 4096,
    )
}

fn http(i: usize) -> String {
    format!(
        r#"{{"ts":{},"entity":"service:shop","kind":"http","metrics":{{"bytes_out":{},"latency_ms":{}.5}},"attrs":{{"src_ip":"10.0.{}.{}","method":"GET","path":"/api/v1/products/{}","query":"page={}&sort=price","user_agent":"Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0","host":"shop.example","status":200}},"id":"req-{i}"}}"#,
        1_795_255_200_000u64 + i as u64 * 25,
        1_000 + (i * 97) % 50_000,
        3 + i % 250,
        i % 256,
        (i * 7) % 256,
        i % 5000,
        i % 20,
    )
}

/// The smallest useful event, to check the per-event floor.
fn small(i: usize) -> String {
    format!(
        r#"{{"entity":"agent:a-{}","kind":"vitals","metrics":{{"tokens":{},"latency_ms":812}}}}"#,
        i % 16,
        1000 + i
    )
}

fn body(event: fn(usize) -> String) -> String {
    (0..EVENTS).map(event).collect::<Vec<_>>().join("\n")
}

fn realistic(i: usize) -> String {
    match i % 2 {
        0 => vitals(i),
        _ => http(i),
    }
}

fn bench(c: &mut Criterion) {
    let ndjson = body(realistic);
    let array = format!("[{}]", ndjson.replace('\n', ","));
    let small = body(small);
    let tenant = TenantId::new("bench");
    let limits = Limits::default();
    let mut group = c.benchmark_group("ingest");
    group.throughput(Throughput::Elements(EVENTS as u64));
    for (name, text, format) in [
        ("ndjson_1000", &ndjson, BodyFormat::Ndjson),
        ("json_array_1000", &array, BodyFormat::Json),
        ("ndjson_1000_small", &small, BodyFormat::Ndjson),
    ] {
        let parsed = parse_events(text.as_bytes(), format, &tenant, 0, &limits);
        assert!(parsed.is_ok_and(|b| b.events.len() == EVENTS && b.rejected.is_empty()));
        group.bench_function(name, |b| {
            b.iter(|| parse_events(black_box(text.as_bytes()), format, &tenant, 0, &limits))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
