//! The engine in-process: parsed events → baselines + default rule pack + correlation, one
//! partition on one core. `cargo bench -p antibody-detect --bench engine`

use antibody_core::rng::SplitMix64;
use antibody_core::{AttrValue, Event, TenantId};
use antibody_detect::{EngineConfig, Outputs, Partition};
use antibody_rules::RuleSet;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::sync::Arc;

const EVENTS: usize = 100_000;
const ENTITIES: u64 = 10_000;

const QUERIES: [&str; 6] = [
    "q=shoes&page=2",
    "id=40184",
    "name=nuda+drudes",
    "sort=price&dir=asc",
    "c/ del ferrocarril, 152,",
    "lang=en-US",
];

/// 70 % agent vitals (4 metrics, 10,000 agents), 20 % benign HTTP, 10 % SSH auth.
fn events() -> Vec<Event> {
    let tenant = TenantId::new("bench");
    let mut rng = SplitMix64::new(42);
    (0..EVENTS)
        .map(|i| {
            let ts = 1_700_000_000_000 + i as i64;
            let r = rng.next_u64() % 10;
            let e = rng.next_u64() % ENTITIES;
            let (entity, kind, metrics, attrs) = if r < 7 {
                let m = vec![
                    ("tokens".to_string(), 1500.0 + 100.0 * rng.unit()),
                    ("latency_ms".to_string(), 800.0 + 50.0 * rng.unit()),
                    ("tool_calls".to_string(), 3.0),
                    ("cost_usd".to_string(), 0.02 + 0.001 * rng.unit()),
                ];
                (
                    format!("agent:{e}"),
                    "vitals",
                    m,
                    vec![("prompt_hash".to_string(), AttrValue::Str("p1".into()))],
                )
            } else if r < 9 {
                let q = QUERIES[(rng.next_u64() % QUERIES.len() as u64) as usize];
                let a = vec![
                    (
                        "src_ip".to_string(),
                        AttrValue::Str(format!("10.0.{}.{}", e % 200, e % 250)),
                    ),
                    ("method".to_string(), AttrValue::Str("GET".into())),
                    ("path".to_string(), AttrValue::Str("/search".into())),
                    ("query".to_string(), AttrValue::Str(q.into())),
                ];
                (
                    format!("host:web-{}", e % 20),
                    "http",
                    vec![("latency_ms".to_string(), 20.0 + rng.unit())],
                    a,
                )
            } else {
                let a = vec![
                    (
                        "src_ip".to_string(),
                        AttrValue::Str(format!("10.1.{}.{}", e % 200, e % 250)),
                    ),
                    ("user".to_string(), AttrValue::Str("deploy".into())),
                    ("service".to_string(), AttrValue::Str("ssh".into())),
                    (
                        "outcome".to_string(),
                        AttrValue::Str(
                            if rng.next_u64().is_multiple_of(4) {
                                "failure"
                            } else {
                                "success"
                            }
                            .into(),
                        ),
                    ),
                ];
                (format!("host:ssh-{}", e % 10), "auth", vec![], a)
            };
            Event {
                tenant: tenant.clone(),
                ts,
                entity,
                kind: kind.into(),
                metrics,
                attrs,
                id: None,
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let evs = events();
    let cfg = Arc::new(EngineConfig::default());
    let rules = Arc::new(RuleSet::default_pack());
    // Warm state: every entity past its warm-up, as in a long-running service.
    let mut warm = Partition::new(cfg.clone(), rules.clone());
    let mut out = Outputs::default();
    for _ in 0..3 {
        for (i, ev) in evs.iter().enumerate() {
            warm.on_event(i as u64, ev, &mut out);
            out.clear();
        }
    }
    let snapshot = warm.snapshot().expect("snapshot");
    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements(EVENTS as u64));
    g.sample_size(10);
    g.bench_function("mixed_100k_events_one_partition", |b| {
        b.iter_batched_ref(
            || Partition::restore(cfg.clone(), rules.clone(), &snapshot).expect("restore"),
            |p| {
                let mut out = Outputs::default();
                for (i, ev) in evs.iter().enumerate() {
                    p.on_event(i as u64, ev, &mut out);
                    out.clear();
                }
                p.flush_incidents(&mut out);
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
