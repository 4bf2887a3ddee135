//! The blast-radius guard: caps how many actions run automatically per tenant and per
//! action kind within a minute. Over the cap, the next action waits for approval instead.

use crate::action::ActionKind;
use antibody_core::{TenantId, TimestampMs};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

const WINDOW_MS: i64 = 60_000;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct GuardConfig {
    pub per_tenant_per_minute: u32,
    pub per_kind_per_minute: u32,
}

impl Default for GuardConfig {
    fn default() -> Self {
        Self {
            per_tenant_per_minute: 30,
            per_kind_per_minute: 10,
        }
    }
}

/// Which cap an action would exceed, with the count that tripped it.
#[derive(Clone, Debug, PartialEq)]
pub struct GuardTrip {
    pub scope: &'static str,
    pub count: u32,
    pub cap: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BlastGuard {
    tenant: BTreeMap<TenantId, VecDeque<TimestampMs>>,
    kind: BTreeMap<(TenantId, ActionKind), VecDeque<TimestampMs>>,
}

impl BlastGuard {
    /// Would one more automatic `kind` action at `now` stay within the caps?
    pub fn check(
        &mut self,
        cfg: &GuardConfig,
        tenant: &TenantId,
        kind: ActionKind,
        now: TimestampMs,
    ) -> Result<(), GuardTrip> {
        let t = recent(self.tenant.get_mut(tenant), now);
        if t >= cfg.per_tenant_per_minute {
            return Err(GuardTrip {
                scope: "tenant",
                count: t,
                cap: cfg.per_tenant_per_minute,
            });
        }
        let k = recent(self.kind.get_mut(&(tenant.clone(), kind)), now);
        if k >= cfg.per_kind_per_minute {
            return Err(GuardTrip {
                scope: "kind",
                count: k,
                cap: cfg.per_kind_per_minute,
            });
        }
        Ok(())
    }

    /// Counts an action that runs automatically.
    pub fn record(&mut self, tenant: &TenantId, kind: ActionKind, now: TimestampMs) {
        self.tenant
            .entry(tenant.clone())
            .or_default()
            .push_back(now);
        self.kind
            .entry((tenant.clone(), kind))
            .or_default()
            .push_back(now);
    }

    /// Drops empty windows so idle tenants cost nothing.
    pub fn prune(&mut self, now: TimestampMs) {
        self.tenant.retain(|_, q| recent(Some(q), now) > 0);
        self.kind.retain(|_, q| recent(Some(q), now) > 0);
    }
}

/// Drops entries older than the window; returns how many remain.
fn recent(q: Option<&mut VecDeque<TimestampMs>>, now: TimestampMs) -> u32 {
    let Some(q) = q else {
        return 0;
    };
    let left = antibody_core::clock::expire_window(q, now, WINDOW_MS);
    u32::try_from(left).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_per_kind_then_per_tenant_and_recovers() {
        let cfg = GuardConfig {
            per_tenant_per_minute: 3,
            per_kind_per_minute: 2,
        };
        let t = TenantId::new("t");
        let mut g = BlastGuard::default();
        for i in 0..2 {
            assert!(g.check(&cfg, &t, ActionKind::BlockIp, i).is_ok());
            g.record(&t, ActionKind::BlockIp, i);
        }
        let trip = g.check(&cfg, &t, ActionKind::BlockIp, 10).unwrap_err();
        assert_eq!((trip.scope, trip.count, trip.cap), ("kind", 2, 2));
        assert!(g.check(&cfg, &t, ActionKind::Notify, 10).is_ok());
        g.record(&t, ActionKind::Notify, 10);
        assert_eq!(
            g.check(&cfg, &t, ActionKind::Reset, 11).unwrap_err().scope,
            "tenant"
        );
        assert!(g
            .check(&cfg, &TenantId::new("u"), ActionKind::Reset, 11)
            .is_ok());
        assert!(g.check(&cfg, &t, ActionKind::BlockIp, 60_010).is_ok());
        g.prune(120_000);
        assert_eq!(g, BlastGuard::default());
    }

    #[test]
    fn a_clock_stepped_back_holds_the_cap_for_one_window_only() {
        let cfg = GuardConfig::default();
        let t = TenantId::new("t");
        let mut g = BlastGuard::default();
        let now = 1_800_000_000_000;
        for _ in 0..cfg.per_kind_per_minute {
            g.record(&t, ActionKind::BlockIp, now);
        }
        // NTP steps the host clock back an hour.
        let back = now - 3_600_000;
        assert!(g.check(&cfg, &t, ActionKind::BlockIp, back).is_err());
        assert!(
            g.check(&cfg, &t, ActionKind::BlockIp, back + WINDOW_MS)
                .is_ok(),
            "automatic actions resume a minute later, not an hour and a minute"
        );
        g.prune(back + WINDOW_MS);
        assert_eq!(g, BlastGuard::default());
    }
}
