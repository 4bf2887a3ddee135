//! Planner throughput: decisions per second of `Responder::on_incident` for fresh incidents
//! (assessment, diagnosis, playbook choice, ladder order, action creation with `why`).
//!
//! cargo bench -p antibody-respond --bench planner -- --warm-up-time 1 --measurement-time 3

use antibody_core::{Explanation, Finding, Incident, IncidentStatus, Severity, TenantId};
use antibody_respond::{Decision, PlaybookSet, Responder, ResponderConfig};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use serde_json::json;
use std::hint::black_box;
use std::sync::Arc;

/// The server runs on mimalloc; measure with the allocator it will have.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BATCH: usize = 1_000;
const T0: i64 = 1_800_000_000_000;

fn case(
    i: usize,
    kind: &str,
    detector: &str,
    evidence: serde_json::Value,
) -> (Incident, Vec<Finding>) {
    let entity = format!("agent:bench-{i}");
    let finding = Finding {
        id: format!("f-{i:x}-0"),
        tenant: TenantId::new("bench"),
        ts: T0 + i as i64,
        entity: entity.clone(),
        kind: kind.into(),
        detector: detector.into(),
        severity: Severity::High,
        score: 0.8,
        explanation: Explanation::text("bench"),
        evidence: evidence.as_object().cloned().unwrap_or_default(),
        incident: Some(format!("i-{i:x}-0")),
    };
    let incident = Incident {
        id: format!("i-{i:x}-0"),
        tenant: TenantId::new("bench"),
        entity,
        status: IncidentStatus::Open,
        opened: T0 + i as i64,
        updated: T0 + i as i64,
        risk: 0.0,
        severity: Severity::High,
        kinds: vec![kind.into()],
        finding_count: 1,
        max_score: 0.8,
        diagnosis: Vec::new(),
        findings: Vec::new(),
        actions: Vec::new(),
        timeline: Vec::new(),
        workflow: Default::default(),
    };
    (incident, vec![finding])
}

fn responder(cfg: &Arc<ResponderConfig>, pbs: &Arc<PlaybookSet>) -> Responder {
    Responder::new(Arc::clone(cfg), Arc::clone(pbs))
}

fn run(r: &mut Responder, cases: &[(Incident, Vec<Finding>)]) -> usize {
    cases
        .iter()
        .map(|(inc, fs)| r.on_incident(inc, fs, inc.updated).len())
        .sum()
}

fn bench(c: &mut Criterion) {
    let mut cfg = ResponderConfig::default();
    cfg.policy.approval_sigma = 8.0;
    cfg.guard.per_tenant_per_minute = u32::MAX;
    cfg.guard.per_kind_per_minute = u32::MAX;
    let cfg = Arc::new(cfg);
    let pbs = Arc::new(PlaybookSet::default_pack().expect("default pack"));

    let brute: Vec<_> = (0..BATCH)
        .map(|i| {
            let ip = format!("198.51.{}.{}", i / 256, i % 256);
            case(
                i,
                "brute_force",
                "rule:auth-brute-force",
                json!({"group_by": "src_ip", "group": ip}),
            )
        })
        .collect();
    let tokens: Vec<_> = (0..BATCH)
        .map(|i| {
            case(
                i,
                "token_spike",
                "baseline",
                json!({"metric": "tokens", "sigma": 7.5}),
            )
        })
        .collect();

    // A responder whose immune memory has seen outcomes, so every plan draws from Beta arms.
    let mut seasoned = responder(&cfg, &pbs);
    for (inc, fs) in &tokens[..50] {
        for d in seasoned.on_incident(inc, fs, inc.updated) {
            if let Decision::Action { action, .. } = d {
                let ok = inc.id.len() % 2 == 0;
                let _ =
                    seasoned.on_action_result(&inc.tenant, &action.id, ok, "seed", inc.updated + 1);
            }
        }
    }
    let seasoned_bytes = seasoned.snapshot().expect("snapshot");

    let mut g = c.benchmark_group("planner");
    for (name, cases) in [("brute_force", &brute), ("token_ladder", &tokens)] {
        let decisions = run(&mut responder(&cfg, &pbs), cases);
        g.throughput(Throughput::Elements(decisions as u64));
        g.bench_function(format!("{name}_{BATCH}_incidents"), |b| {
            b.iter_batched(
                || responder(&cfg, &pbs),
                // The state is returned so dropping it is not timed: a server keeps it.
                |mut r| {
                    let n = run(&mut r, cases);
                    black_box((r, n))
                },
                BatchSize::LargeInput,
            )
        });
    }
    let fresh: Vec<_> = (BATCH..2 * BATCH)
        .map(|i| {
            case(
                i,
                "token_spike",
                "baseline",
                json!({"metric": "tokens", "sigma": 7.5}),
            )
        })
        .collect();
    let restore = || {
        Responder::restore(Arc::clone(&cfg), Arc::clone(&pbs), &seasoned_bytes).expect("restore")
    };
    let decisions = run(&mut restore(), &fresh);
    g.throughput(Throughput::Elements(decisions as u64));
    g.bench_function(format!("thompson_ladder_{BATCH}_incidents"), |b| {
        b.iter_batched(
            restore,
            |mut r| black_box(run(&mut r, &fresh)),
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
