//! The gateway's per-call work without I/O: inspecting a request (with usage injection),
//! identity, the policy meter, reading a streamed response's usage chunk by chunk, and the
//! MCP proxy's reading of a `tools/call` and of a `tools/list` answer it filters.
//! `cargo bench -p antibody-gateway --bench gateway`

use antibody_core::TenantId;
use antibody_gateway::identity::identify;
use antibody_gateway::limits::{Ask, Meter};
use antibody_gateway::mcp::message::{read_post, read_reply, Revoked};
use antibody_gateway::request::{inspect, Route};
use antibody_gateway::usage::SseScanner;
use antibody_respond::GatewayPolicy;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

const REQUEST: &[u8] = br#"{"model":"gpt-4o-mini","stream":true,"max_tokens":256,"messages":[{"role":"system","content":"You are a careful research assistant. Cite sources."},{"role":"user","content":"Summarise the attached report in five bullet points, each under twenty words, and list open questions."}]}"#;

fn stream(chunks: usize) -> Vec<u8> {
    let mut s = String::new();
    for i in 0..chunks {
        s.push_str(&format!("data: {{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"tok{i} \"}},\"finish_reason\":null}}]}}\n\n"));
    }
    s.push_str("data: {\"id\":\"chatcmpl-1\",\"choices\":[],\"usage\":{\"prompt_tokens\":40,\"completion_tokens\":200}}\n\ndata: [DONE]\n\n");
    s.into_bytes()
}

fn benches(c: &mut Criterion) {
    c.bench_function("inspect_and_inject", |b| {
        b.iter(|| inspect(Route::ChatCompletions, black_box(REQUEST)))
    });
    let ip = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    c.bench_function("identify_header", |b| {
        b.iter(|| identify(Some(black_box(b"research-7")), Some("ab_key"), ip, None))
    });
    c.bench_function("identify_key_fingerprint", |b| {
        b.iter(|| {
            identify(
                None,
                Some(black_box("ab_0123456789abcdef0123456789")),
                ip,
                None,
            )
        })
    });
    let policy: GatewayPolicy = serde_json::from_str(
        r#"{"tenant":{"requests_per_minute":100000000,"tokens_per_minute":1000000000000},"teams":{"r":{"agents":["agent:research-*"],"limits":{"requests_per_minute":100000000}}},"agents":{"agent:research-7":{"models":["gpt-4o-mini"],"max_tokens":4096}}}"#,
    )
    .unwrap_or_default();
    let meter = Meter::default();
    let tenant = TenantId::new("t");
    let mut now = 1_800_000_000_000i64;
    c.bench_function("meter_admit_and_charge", |b| {
        b.iter(|| {
            now += 1;
            let ask = Ask {
                agent: "agent:research-7",
                model: Some("gpt-4o-mini"),
                max_tokens: Some(256),
            };
            if let Ok(t) = meter.admit(&tenant, &policy, &ask, now) {
                meter.charge(&t, 240, 0.0001, now);
            }
        })
    });
    let body = stream(200);
    let mut group = c.benchmark_group("sse_scan_200_chunks");
    group.throughput(Throughput::Bytes(body.len() as u64));
    for strip in [false, true] {
        group.bench_function(if strip { "strip" } else { "pass" }, |b| {
            b.iter(|| {
                let mut s = SseScanner::new(strip);
                let mut out = Vec::with_capacity(body.len());
                for chunk in body.chunks(180) {
                    s.push(chunk, &mut out);
                }
                s.finish(&mut out);
                black_box((out.len(), s.observed.usage))
            })
        });
    }
    group.finish();
    c.bench_function("mcp_read_tools_call", |b| {
        b.iter(|| read_post(black_box(MCP_CALL)))
    });
    let mut revoked = Revoked::default();
    revoked.add(&[std::sync::Arc::from("shell")]);
    let list = mcp_list(50);
    c.bench_function("mcp_filter_tools_list_50", |b| {
        b.iter(|| {
            let mut v: serde_json::Value = serde_json::from_slice(black_box(&list)).unwrap();
            let r = read_reply(&mut v, &revoked);
            black_box((serde_json::to_vec(&v).map(|o| o.len()), r.hidden))
        })
    });
}

const MCP_CALL: &[u8] = br#"{"jsonrpc":"2.0","id":17,"method":"tools/call","params":{"name":"search","arguments":{"query":"quarterly report","limit":5}}}"#;

/// A `tools/list` answer of `n` tools, `shell` among them.
fn mcp_list(n: usize) -> Vec<u8> {
    let tools: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            let name = if i == n / 2 { "shell".to_owned() } else { format!("tool_{i}") };
            serde_json::json!({"name": name, "description": "Does one thing well, with a sentence about it.",
                "inputSchema": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}})
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({"jsonrpc": "2.0", "id": 2, "result": {"tools": tools}}))
        .unwrap()
}

criterion_group!(gateway, benches);
criterion_main!(gateway);
