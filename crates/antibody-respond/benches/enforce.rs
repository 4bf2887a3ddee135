//! Enforcement view lookups: `Enforcement::verdict` on a tenant with 100 k entities under
//! effects (each throttled with a tool revoked) and 10 k blocked addresses — what every
//! `GET /v1/entities/{e}/verdict` pays, and later every request through the gateway.
//!
//! cargo bench -p antibody-respond --bench enforce -- --warm-up-time 1 --measurement-time 3

use antibody_core::{Explanation, Finding, Incident, IncidentStatus, Severity, TenantId};
use antibody_respond::{
    Decision, Enforcement, PlaybookSet, PlaybookSource, Responder, ResponderConfig, VerdictKind,
};
use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::json;
use std::hint::black_box;
use std::sync::Arc;

/// The server runs on mimalloc; measure with the allocator it will have.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ENTITIES: usize = 100_000;
const ADDRESSES: usize = 10_000;
const T0: i64 = 1_800_000_000_000;

const PLAYBOOK: &str = "\
- id: bench-throttle
  trigger: {kinds: [bench_spike]}
  mode: auto
  steps:
    - action: rate_limit
      params: {rate: 10, per: minute}
    - action: revoke_tools
      with_previous: true
      params: {tools: [shell]}
";

fn incident(
    i: usize,
    entity: &str,
    kind: &str,
    evidence: serde_json::Value,
) -> (Incident, Finding) {
    let tenant = TenantId::new("bench");
    let ts = T0 + i as i64;
    let finding = Finding {
        id: format!("f-{i:x}-0"),
        tenant: tenant.clone(),
        ts,
        entity: entity.into(),
        kind: kind.into(),
        detector: "rule:bench".into(),
        severity: Severity::High,
        score: 0.8,
        explanation: Explanation::text("bench"),
        evidence: evidence.as_object().cloned().unwrap_or_default(),
        incident: Some(format!("i-{i:x}-0")),
    };
    let incident = Incident {
        id: format!("i-{i:x}-0"),
        tenant,
        entity: entity.into(),
        status: IncidentStatus::Open,
        opened: ts,
        updated: ts,
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
    (incident, finding)
}

/// A responder with every entity's actions applied, as the server would have it.
fn responder() -> Responder {
    let mut cfg = ResponderConfig::default();
    cfg.guard.per_tenant_per_minute = u32::MAX;
    cfg.guard.per_kind_per_minute = u32::MAX;
    let mut sources = PlaybookSet::default_sources();
    sources.push(PlaybookSource::new("bench.yml", PLAYBOOK));
    let pbs = PlaybookSet::load(&sources).expect("playbooks");
    let mut r = Responder::new(Arc::new(cfg), Arc::new(pbs));
    let agents =
        (0..ENTITIES).map(|i| incident(i, &format!("agent:bench-{i}"), "bench_spike", json!({})));
    let attackers = (0..ADDRESSES).map(|i| {
        let ip = format!("198.51.{}.{}", i / 256, i % 256);
        let evidence = json!({"group_by": "src_ip", "group": ip});
        // One host per attacker: an entity's running ladder would absorb the next incident.
        incident(
            ENTITIES + i,
            &format!("host:ssh-{i}"),
            "brute_force",
            evidence,
        )
    });
    for (inc, f) in agents.chain(attackers) {
        for d in r.on_incident(&inc, &[f], inc.updated) {
            if let Decision::Action { tenant, action, .. } = d {
                let _ = r.on_action_result(&tenant, &action.id, true, "bench", inc.updated);
            }
        }
    }
    r
}

fn bench(c: &mut Criterion) {
    let r = responder();
    let enf = Enforcement::default();
    enf.rebuild(&r);
    let tenant = TenantId::new("bench");
    let now = T0 + 600_000;
    let agents: Vec<String> = (0..ENTITIES).map(|i| format!("agent:bench-{i}")).collect();
    let strangers: Vec<String> = (0..ENTITIES).map(|i| format!("agent:other-{i}")).collect();
    let addresses: Vec<String> = (0..ADDRESSES)
        .map(|i| format!("ip:198.51.{}.{}", i / 256, i % 256))
        .collect();
    // The setup is what it claims: every agent throttled, every address blocked.
    assert!(agents
        .iter()
        .all(|e| enf.verdict(&tenant, e, now).verdict == VerdictKind::Throttle));
    assert!(addresses
        .iter()
        .all(|e| enf.verdict(&tenant, e, now).verdict == VerdictKind::Block));
    assert_eq!(enf.blocklist(&tenant, now).len(), ADDRESSES);
    assert_eq!(agent_name(&mut [0; 32], 90_210), agents[90_210]);

    let mut g = c.benchmark_group("enforce");
    for (name, entities) in [
        ("verdict_throttled_agent_of_100k", &agents),
        ("verdict_unknown_agent", &strangers),
        ("verdict_blocked_address_of_10k", &addresses),
    ] {
        let mut i = 0;
        g.bench_function(name, |b| {
            b.iter(|| {
                // A stride through the entities, so lookups do not stay in one cache line.
                i = (i + 7_919) % entities.len();
                black_box(enf.verdict(&tenant, &entities[i], now).kind())
            })
        });
    }
    // One agent asked again and again: its slot stays in cache.
    g.bench_function("verdict_same_throttled_agent", |b| {
        b.iter(|| black_box(enf.verdict(&tenant, &agents[42], now).kind()))
    });
    // The gateway's case: the entity's name was just read from the request (in cache), the
    // view's entry for it is cold. The name is written into a stack buffer each time.
    let mut i = 0;
    g.bench_function("verdict_throttled_agent_of_100k_name_in_cache", |b| {
        let mut buf = [0u8; 32];
        b.iter(|| {
            i = (i + 7_919) % ENTITIES;
            let name = agent_name(&mut buf, i);
            black_box(enf.verdict(&tenant, name, now).kind())
        })
    });
    // The same, each lookup's name chosen by the answer before it: lookups cannot overlap
    // in the core, so this is the latency of one, where the loops above tell the cost of
    // many in a row (a core overlaps the cache misses of independent lookups).
    let mut i = 0;
    g.bench_function(
        "verdict_throttled_agent_of_100k_name_in_cache_chained",
        |b| {
            let mut buf = [0u8; 32];
            b.iter(|| {
                let name = agent_name(&mut buf, i);
                let kind = enf.verdict(&tenant, name, now).kind();
                // Throttle (1) for every agent: the stride stays 7,919, a prime, so all are read.
                i = (i + 7_918 + kind as usize) % ENTITIES;
                kind
            })
        },
    );
    // What the verdict route and the gateway's refusals read: the lookup, then the details.
    let mut i = 0;
    g.bench_function("verdict_details_throttled_agent_of_100k", |b| {
        b.iter(|| {
            i = (i + 7_919) % agents.len();
            let answer = enf.verdict(&tenant, &agents[i], now);
            black_box((answer.kind(), answer.rate, answer.revoked_tools.len()))
        })
    });
    g.finish();
}

/// `agent:bench-{i}` written into `buf`, without touching the heap.
fn agent_name(buf: &mut [u8; 32], mut i: usize) -> &str {
    const PREFIX: &[u8] = b"agent:bench-";
    buf[..PREFIX.len()].copy_from_slice(PREFIX);
    let mut digits = [0u8; 20];
    let mut n = 0;
    loop {
        digits[n] = b'0' + (i % 10) as u8;
        n += 1;
        i /= 10;
        if i == 0 {
            break;
        }
    }
    for (k, d) in digits[..n].iter().rev().enumerate() {
        buf[PREFIX.len() + k] = *d;
    }
    std::str::from_utf8(&buf[..PREFIX.len() + n]).unwrap_or("")
}

criterion_group!(benches, bench);
criterion_main!(benches);
