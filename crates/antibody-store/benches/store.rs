//! Store throughput and latency: `write_batch` of 1,000 findings per transaction,
//! `list_findings` with 100,000 rows present, and key authentication (what an uncached
//! request costs: a generated key's indexed SHA-256 lookup, a chosen key's Argon2id check).
//!
//! `cargo bench -p antibody-store --bench store -- --warm-up-time 1 --measurement-time 3`

use antibody_core::{Explanation, Finding, Severity, TenantId};
use antibody_store::{FindingCursor, FindingQuery, Role, Store, DB_FILE};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

const BATCH: u64 = 1_000;
const ROWS: u64 = 100_000;
const ENTITIES: u64 = 50;
const KINDS: [&str; 10] = [
    "token_spike",
    "latency_spike",
    "tool_explosion",
    "retry_spike",
    "cost_spike",
    "error_spike",
    "prompt_change",
    "brute_force",
    "sqli",
    "port_scan",
];

fn finding(tenant: &TenantId, n: u64) -> Finding {
    let mut evidence = serde_json::Map::new();
    evidence.insert("metric".into(), "tokens".into());
    evidence.insert("value".into(), (1500 + n % 700).into());
    evidence.insert("mean".into(), 812.5.into());
    evidence.insert("std".into(), 120.25.into());
    evidence.insert("sigma".into(), 5.7.into());
    Finding {
        id: format!("f-{n:016x}"),
        tenant: tenant.clone(),
        ts: 1_795_000_000_000 + n as i64 * 10,
        entity: format!("agent:research-{}", n % ENTITIES),
        kind: KINDS[(n % KINDS.len() as u64) as usize].to_owned(),
        detector: antibody_core::Detector::Baseline,
        severity: Severity::High,
        score: 0.87,
        explanation: Explanation::text("tokens 2,210 is 5.7σ above the mean of 812 for this agent"),
        evidence,
        incident: None,
    }
}

fn batch(tenant: &TenantId, first: u64) -> Vec<Finding> {
    (first..first + BATCH).map(|n| finding(tenant, n)).collect()
}

fn write_batch(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join(DB_FILE)).unwrap();
    let tenant = TenantId::new("default");
    let mut next = 0;
    let mut group = c.benchmark_group("store");
    group.throughput(Throughput::Elements(BATCH));
    group.bench_function("write_batch_1000_findings", |b| {
        b.iter_batched(
            || {
                next += BATCH;
                batch(&tenant, next)
            },
            |findings| store.write_batch(&findings, &[]).unwrap(),
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

fn list_findings(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join(DB_FILE)).unwrap();
    let tenant = TenantId::new("default");
    let other = TenantId::new("t-other");
    for first in (0..ROWS).step_by(BATCH as usize) {
        store.write_batch(&batch(&tenant, first), &[]).unwrap();
    }
    store.write_batch(&batch(&other, 0), &[]).unwrap();

    let mid = finding(&tenant, ROWS / 2);
    let queries = [
        ("newest_100", FindingQuery::default()),
        (
            "by_entity_100",
            FindingQuery {
                entity: Some(mid.entity.clone()),
                ..Default::default()
            },
        ),
        (
            "by_kind_100",
            FindingQuery {
                kind: Some(mid.kind.clone()),
                ..Default::default()
            },
        ),
        (
            "cursor_page_mid_100",
            FindingQuery {
                before: Some(FindingCursor::after(&mid)),
                ..Default::default()
            },
        ),
        (
            "newest_1000",
            FindingQuery {
                limit: 1000,
                ..Default::default()
            },
        ),
    ];
    let mut group = c.benchmark_group("store_list_100k");
    for (name, query) in &queries {
        group.bench_function(*name, |b| {
            b.iter(|| store.list_findings(&tenant, query).unwrap())
        });
    }
    group.bench_function("get_finding", |b| {
        b.iter(|| store.get_finding(&tenant, &mid.id).unwrap())
    });
    group.finish();
}

fn authenticate(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join(DB_FILE)).unwrap();
    let t = store.create_tenant("default", 1).unwrap();
    for _ in 0..1_000 {
        store
            .create_key(&t.id, Role::Ingest, false, 1, None)
            .unwrap();
    }
    let generated = store
        .create_key(&t.id, Role::Ingest, false, 1, None)
        .unwrap();
    let chosen = "an-operator-chosen-admin-key";
    store
        .insert_key_with_secret(&t.id, Role::Admin, true, chosen, 1)
        .unwrap();
    let mut group = c.benchmark_group("keys_1000");
    group.bench_function("authenticate_generated", |b| {
        b.iter(|| store.authenticate(&generated.secret).unwrap().unwrap())
    });
    group.bench_function("touch_key_within_the_minute", |b| {
        b.iter(|| store.touch_key(&generated.info.id, 2).unwrap())
    });
    group.bench_function("reject_unknown_repeated", |b| {
        b.iter(|| {
            assert!(store
                .authenticate("a-wrong-key-typed-twice")
                .unwrap()
                .is_none())
        })
    });
    group.sample_size(10);
    group.bench_function("authenticate_chosen_argon2id", |b| {
        b.iter(|| store.authenticate(chosen).unwrap().unwrap())
    });
    group.finish();
}

criterion_group!(benches, write_batch, list_findings, authenticate);
criterion_main!(benches);
