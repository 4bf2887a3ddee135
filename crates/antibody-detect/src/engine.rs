//! The engine: entities hashed onto partitions. `serve` runs each partition on its own
//! worker; `replay`, tests and benches drive them all from one thread through [`Engine`].

use crate::config::EngineConfig;
use crate::partition::{EntityView, Outputs, Partition};
use antibody_core::{Event, TenantId, TimestampMs};
use antibody_rules::RuleSet;
use std::sync::Arc;

/// Stable partition of `(tenant, entity)`: FNV-1a, fixed across runs and Rust versions
/// (std's hasher promises neither), so snapshots stay valid after an upgrade.
pub fn partition_of(tenant: &TenantId, entity: &str, partitions: usize) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in tenant
        .as_str()
        .as_bytes()
        .iter()
        .chain(&[0xff])
        .chain(entity.as_bytes())
    {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % partitions.max(1) as u64) as usize
}

pub struct Engine {
    partitions: Vec<Partition>,
}

impl Engine {
    pub fn new(cfg: EngineConfig, rules: RuleSet, partitions: usize) -> Self {
        let (cfg, rules) = (Arc::new(cfg), Arc::new(rules));
        let partitions = (0..partitions.max(1))
            .map(|_| Partition::new(cfg.clone(), rules.clone()))
            .collect();
        Self { partitions }
    }

    pub fn on_event(&mut self, offset: u64, ev: &Event, out: &mut Outputs) {
        let p = partition_of(&ev.tenant, &ev.entity, self.partitions.len());
        self.partitions[p].on_event(offset, ev, out);
        self.partitions[p].flush_incidents(out);
    }

    pub fn on_tick(&mut self, now: TimestampMs, out: &mut Outputs) {
        for p in &mut self.partitions {
            p.on_tick(now, out);
        }
    }

    pub fn entity_view(&self, tenant: &TenantId, entity: &str) -> Option<EntityView> {
        let p = partition_of(tenant, entity, self.partitions.len());
        self.partitions[p].entity_view(tenant, entity)
    }

    /// Starts or stops sampling an entity for the response engine (see [`Partition::watch`]).
    pub fn watch(&mut self, tenant: &TenantId, entity: &str, on: bool) {
        let p = partition_of(tenant, entity, self.partitions.len());
        self.partitions[p].watch(tenant, entity, on);
    }

    pub fn entity_count(&self) -> usize {
        self.partitions.iter().map(Partition::entity_count).sum()
    }
}
