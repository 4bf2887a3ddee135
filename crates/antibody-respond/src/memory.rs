//! Immune memory: the outcome of every `(tenant, diagnosis, action)` as judged by probation,
//! and the ladder order it implies.
//!
//! ## Policy
//! * Each arm `(tenant, diagnosis, action kind)` keeps a Beta posterior
//!   `Beta(1 + successes, 1 + failures)` across the tenant's fleet.
//! * A rung whose action already failed for *this* entity and diagnosis is skipped.
//! * The remaining rungs are ordered by Thompson sampling — one draw per arm from the
//!   responder's seeded generator, highest first — but only among rungs whose arm has been
//!   tried at least once; untried rungs keep the position the playbook author gave them. So
//!   a fresh tenant runs the ladder as written, and experience reorders what it has seen.

use crate::action::ActionKind;
use crate::diagnose::Cause;
use crate::rng::SplitMix64;
use antibody_core::{TenantId, TimestampMs};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Per-entity failures remembered (the oldest is forgotten first).
const MAX_FAILED: usize = 100_000;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Arm {
    pub successes: u32,
    pub failures: u32,
}

impl Arm {
    pub fn trials(&self) -> u32 {
        self.successes.saturating_add(self.failures)
    }
    /// Posterior mean of the success rate.
    pub fn mean(&self) -> f64 {
        (f64::from(self.successes) + 1.0) / (f64::from(self.trials()) + 2.0)
    }
}

type ArmKey = (TenantId, Cause, ActionKind);
type FailKey = (TenantId, String, Cause, ActionKind);

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ImmuneMemory {
    arms: BTreeMap<ArmKey, Arm>,
    failed: BTreeMap<FailKey, TimestampMs>,
}

/// One rung's place in the ordered ladder and the numbers behind it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RungOrder {
    /// Index into the playbook's rungs.
    pub rung: usize,
    pub kind: ActionKind,
    pub arm: Arm,
    /// The Thompson draw, for tried arms.
    pub sample: Option<f64>,
}

impl ImmuneMemory {
    pub fn record(
        &mut self,
        tenant: &TenantId,
        entity: &str,
        cause: Cause,
        kind: ActionKind,
        success: bool,
        now: TimestampMs,
    ) {
        let arm = self.arms.entry((tenant.clone(), cause, kind)).or_default();
        let key = (tenant.clone(), entity.to_owned(), cause, kind);
        if success {
            arm.successes = arm.successes.saturating_add(1);
            self.failed.remove(&key);
        } else {
            arm.failures = arm.failures.saturating_add(1);
            self.failed.insert(key, now);
            self.forget_oldest();
        }
    }

    fn forget_oldest(&mut self) {
        if self.failed.len() <= MAX_FAILED {
            return;
        }
        if let Some(oldest) = self
            .failed
            .iter()
            .min_by_key(|(_, ts)| **ts)
            .map(|(k, _)| k.clone())
        {
            self.failed.remove(&oldest);
        }
    }

    pub fn arm(&self, tenant: &TenantId, cause: Cause, kind: ActionKind) -> Arm {
        self.arms
            .get(&(tenant.clone(), cause, kind))
            .copied()
            .unwrap_or_default()
    }

    pub fn has_failed(
        &self,
        tenant: &TenantId,
        entity: &str,
        cause: Cause,
        kind: ActionKind,
    ) -> bool {
        self.failed
            .contains_key(&(tenant.clone(), entity.to_owned(), cause, kind))
    }

    /// Orders `rungs` (index, primary action kind) per the module's policy; returns the
    /// order and the rungs skipped because they already failed for this entity.
    pub fn order(
        &self,
        rungs: &[(usize, ActionKind)],
        tenant: &TenantId,
        entity: &str,
        cause: Cause,
        rng: &mut SplitMix64,
    ) -> (Vec<RungOrder>, Vec<RungOrder>) {
        let mut kept = Vec::with_capacity(rungs.len());
        let mut skipped = Vec::new();
        for &(rung, kind) in rungs {
            let arm = self.arm(tenant, cause, kind);
            let sample = (arm.trials() > 0).then(|| {
                rng.beta(
                    1.0 + f64::from(arm.successes),
                    1.0 + f64::from(arm.failures),
                )
            });
            let r = RungOrder {
                rung,
                kind,
                arm,
                sample,
            };
            if self.has_failed(tenant, entity, cause, kind) {
                skipped.push(r);
            } else {
                kept.push(r);
            }
        }
        let slots: Vec<usize> = (0..kept.len())
            .filter(|&i| kept[i].sample.is_some())
            .collect();
        let mut tried: Vec<RungOrder> = slots.iter().map(|&i| kept[i].clone()).collect();
        tried.sort_by(|a, b| {
            let (sa, sb) = (a.sample.unwrap_or(0.0), b.sample.unwrap_or(0.0));
            sb.total_cmp(&sa).then(a.rung.cmp(&b.rung))
        });
        for (slot, r) in slots.into_iter().zip(tried) {
            kept[slot] = r;
        }
        (kept, skipped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LADDER: [(usize, ActionKind); 3] = [
        (0, ActionKind::RateLimit),
        (1, ActionKind::Reset),
        (2, ActionKind::Quarantine),
    ];

    fn t() -> TenantId {
        TenantId::new("t")
    }

    fn kinds(order: &[RungOrder]) -> Vec<ActionKind> {
        order.iter().map(|r| r.kind).collect()
    }

    #[test]
    fn untried_ladder_keeps_the_authors_order() {
        let m = ImmuneMemory::default();
        let (order, skipped) = m.order(
            &LADDER,
            &t(),
            "agent:a",
            Cause::ToolLoop,
            &mut SplitMix64::new(1),
        );
        assert_eq!(kinds(&order), LADDER.map(|(_, k)| k));
        assert!(skipped.is_empty());
        assert!(order.iter().all(|r| r.sample.is_none()));
    }

    #[test]
    fn successful_arms_move_up_among_tried_ones() {
        let mut m = ImmuneMemory::default();
        for i in 0..20 {
            m.record(
                &t(),
                &format!("agent:{i}"),
                Cause::ToolLoop,
                ActionKind::RateLimit,
                false,
                i,
            );
            m.record(
                &t(),
                &format!("agent:{i}"),
                Cause::ToolLoop,
                ActionKind::Quarantine,
                true,
                i,
            );
        }
        let (order, _) = m.order(
            &LADDER,
            &t(),
            "agent:new",
            Cause::ToolLoop,
            &mut SplitMix64::new(3),
        );
        // reset is untried and keeps its slot; the two tried arms swap.
        assert_eq!(
            kinds(&order),
            [
                ActionKind::Quarantine,
                ActionKind::Reset,
                ActionKind::RateLimit
            ]
        );
        assert_eq!(
            order[0].arm,
            Arm {
                successes: 20,
                failures: 0
            }
        );
        assert!(order[0].sample.unwrap() > order[2].sample.unwrap());
    }

    #[test]
    fn failures_for_this_entity_are_skipped_and_success_clears_them() {
        let mut m = ImmuneMemory::default();
        m.record(
            &t(),
            "agent:a",
            Cause::ToolLoop,
            ActionKind::RateLimit,
            false,
            1,
        );
        let (order, skipped) = m.order(
            &LADDER,
            &t(),
            "agent:a",
            Cause::ToolLoop,
            &mut SplitMix64::new(1),
        );
        assert_eq!(kinds(&order), [ActionKind::Reset, ActionKind::Quarantine]);
        assert_eq!(kinds(&skipped), [ActionKind::RateLimit]);
        let (other, _) = m.order(
            &LADDER,
            &t(),
            "agent:b",
            Cause::ToolLoop,
            &mut SplitMix64::new(1),
        );
        assert_eq!(other.len(), 3);
        m.record(
            &t(),
            "agent:a",
            Cause::ToolLoop,
            ActionKind::RateLimit,
            true,
            2,
        );
        assert!(!m.has_failed(&t(), "agent:a", Cause::ToolLoop, ActionKind::RateLimit));
        assert_eq!(
            m.arm(&t(), Cause::ToolLoop, ActionKind::RateLimit),
            Arm {
                successes: 1,
                failures: 1
            }
        );
    }

    #[test]
    fn same_seed_same_order() {
        let mut m = ImmuneMemory::default();
        for (k, s) in [
            (ActionKind::RateLimit, true),
            (ActionKind::Reset, true),
            (ActionKind::Quarantine, false),
        ] {
            m.record(&t(), "x", Cause::CostOverrun, k, s, 0);
        }
        let run = |seed| {
            let (o, _) = m.order(
                &LADDER,
                &t(),
                "y",
                Cause::CostOverrun,
                &mut SplitMix64::new(seed),
            );
            o
        };
        assert_eq!(run(9), run(9));
    }
}
