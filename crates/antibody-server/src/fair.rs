//! Fair ingest: what one tenant (and one key) may hold of the server's ingest capacity at
//! once — request bodies being read or parsed, and events parsed but not yet durable — so
//! one tenant's slow senders or floods are refused (429) while the others go on.

use antibody_core::TenantId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// Per-tenant and per-key shares of the ingest capacity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shares {
    /// Bodies one tenant may have in flight (read, parsed or waiting for the log).
    pub bodies_per_tenant: usize,
    /// Bodies one key may have in flight.
    pub bodies_per_key: usize,
    /// Events one tenant may have parsed but not yet durable.
    pub events_per_tenant: u64,
}

/// Which share a request would overrun.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Over {
    TenantBodies,
    KeyBodies,
    TenantEvents,
}

impl Over {
    pub fn message(self) -> &'static str {
        match self {
            Self::TenantBodies => "this tenant has as many ingest requests in flight as it may",
            Self::KeyBodies => "this key has as many ingest requests in flight as it may",
            Self::TenantEvents => "this tenant has as many events waiting for the log as it may",
        }
    }
}

#[derive(Default)]
struct Held {
    tenant_bodies: HashMap<TenantId, usize>,
    key_bodies: HashMap<String, usize>,
    tenant_events: HashMap<TenantId, u64>,
}

pub struct Budgets {
    shares: Shares,
    held: Mutex<Held>,
}

impl Budgets {
    pub fn new(shares: Shares) -> Arc<Self> {
        Arc::new(Self {
            shares,
            held: Mutex::default(),
        })
    }

    /// One more body in flight for `tenant` and `key`, held until the permit drops.
    pub fn admit(self: &Arc<Self>, tenant: &TenantId, key: &str) -> Result<Permit, Over> {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let t = held.tenant_bodies.get(tenant).copied().unwrap_or(0);
        if t >= self.shares.bodies_per_tenant {
            return Err(Over::TenantBodies);
        }
        let k = held.key_bodies.get(key).copied().unwrap_or(0);
        if k >= self.shares.bodies_per_key {
            return Err(Over::KeyBodies);
        }
        held.tenant_bodies.insert(tenant.clone(), t + 1);
        held.key_bodies.insert(key.to_owned(), k + 1);
        Ok(Permit {
            budgets: self.clone(),
            tenant: tenant.clone(),
            key: key.to_owned(),
            events: 0,
        })
    }
}

/// A body in flight; its events, once reserved, count until it drops (after the log's ack).
pub struct Permit {
    budgets: Arc<Budgets>,
    tenant: TenantId,
    key: String,
    events: u64,
}

impl Permit {
    /// Reserves `n` events of the tenant's share. A single batch larger than the whole
    /// share is let through when the tenant holds none, so no valid request is refused
    /// forever.
    pub fn reserve_events(&mut self, n: u64) -> Result<(), Over> {
        let b = &self.budgets;
        let mut held = b.held.lock().unwrap_or_else(PoisonError::into_inner);
        let now = held.tenant_events.get(&self.tenant).copied().unwrap_or(0);
        if now > 0 && now + n > b.shares.events_per_tenant {
            return Err(Over::TenantEvents);
        }
        held.tenant_events.insert(self.tenant.clone(), now + n);
        self.events += n;
        Ok(())
    }
}

fn release<K: std::hash::Hash + Eq, V: Copy + PartialOrd + std::ops::Sub<Output = V> + Default>(
    map: &mut HashMap<K, V>,
    key: &K,
    by: V,
) {
    if let Some(v) = map.get_mut(key) {
        if *v > by {
            *v = *v - by;
        } else {
            map.remove(key);
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut held = self
            .budgets
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        release(&mut held.tenant_bodies, &self.tenant, 1);
        release(&mut held.key_bodies, &self.key, 1);
        if self.events > 0 {
            release(&mut held.tenant_events, &self.tenant, self.events);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budgets() -> Arc<Budgets> {
        Budgets::new(Shares {
            bodies_per_tenant: 3,
            bodies_per_key: 2,
            events_per_tenant: 100,
        })
    }

    #[test]
    fn one_tenants_bodies_never_take_anothers_share() {
        let b = budgets();
        let (a, other) = (TenantId::new("a"), TenantId::new("b"));
        let k1 = b.admit(&a, "k1").unwrap();
        let _k1b = b.admit(&a, "k1").unwrap();
        assert_eq!(b.admit(&a, "k1").err(), Some(Over::KeyBodies));
        let _k2 = b.admit(&a, "k2").unwrap();
        assert_eq!(b.admit(&a, "k3").err(), Some(Over::TenantBodies));
        // The other tenant is untouched by all of it.
        assert!(b.admit(&other, "k9").is_ok());
        drop(k1);
        assert!(b.admit(&a, "k3").is_ok());
    }

    #[test]
    fn events_are_held_until_the_permit_drops() {
        let b = budgets();
        let a = TenantId::new("a");
        let mut p1 = b.admit(&a, "k").unwrap();
        p1.reserve_events(80).unwrap();
        let mut p2 = b.admit(&a, "k").unwrap();
        assert_eq!(p2.reserve_events(30), Err(Over::TenantEvents));
        p2.reserve_events(20).unwrap();
        drop(p1);
        let mut p3 = b.admit(&a, "k").unwrap();
        p3.reserve_events(80).unwrap();
        drop((p2, p3));
        // An oversized batch still passes alone.
        let mut big = b.admit(&a, "k").unwrap();
        big.reserve_events(1_000).unwrap();
        drop(big);
        let held = b.held.lock().unwrap();
        assert!(held.tenant_bodies.is_empty() && held.key_bodies.is_empty());
        assert!(held.tenant_events.is_empty());
    }
}
