//! Memory per tracked baseline: N entities × 4 metrics in one partition, then RSS.
//! `cargo run --release -p antibody-detect --example memory -- 1000000`

use antibody_core::{Event, TenantId};
use antibody_detect::{EngineConfig, Outputs, Partition};
use antibody_rules::RuleSet;
use std::sync::Arc;

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let mut p = Partition::new(
        Arc::new(EngineConfig::default()),
        Arc::new(RuleSet::default_pack()),
    );
    let tenant = TenantId::new("mem");
    let before = rss_bytes();
    let mut out = Outputs::default();
    let metrics = ["tokens", "latency_ms", "tool_calls", "cost_usd"];
    for i in 0..n {
        let ev = Event {
            tenant: tenant.clone(),
            ts: i as i64,
            entity: format!("agent:{i:08}"),
            kind: "vitals".into(),
            metrics: metrics.iter().map(|m| (m.to_string(), 1.0)).collect(),
            attrs: vec![],
            id: None,
        };
        p.on_event(i, &ev, &mut out);
        out.clear();
    }
    let after = rss_bytes();
    let baselines = n * metrics.len() as u64;
    println!(
        "entities={n} baselines={baselines} rss_before={:.1}MiB rss_after={:.1}MiB per_baseline={:.1}B per_entity={:.1}B",
        before as f64 / 1048576.0,
        after as f64 / 1048576.0,
        (after - before) as f64 / baselines as f64,
        (after - before) as f64 / n as f64
    );
    assert_eq!(p.entity_count() as u64, n);
}
