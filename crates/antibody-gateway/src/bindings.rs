//! Which agents a key and an address were seen as. A call that does not name its agent is
//! judged as every agent that named itself before with the same key or from the same
//! address, so an identified agent cannot shed a verdict by dropping its `X-Agent-Id`,
//! changing its user agent or (from the same address) its key. Bounded: a few agents per
//! key or address, a capped number of keys and addresses.

use antibody_core::TenantId;
use std::collections::HashMap;
use std::sync::Mutex;

const PER_KEY: usize = 32;
const MAX_KEYS: usize = 100_000;

type Seen = HashMap<(TenantId, String), Vec<String>, foldhash::fast::RandomState>;

#[derive(Default)]
pub struct Bindings {
    seen: Mutex<Seen>,
}

impl Bindings {
    fn map(&self) -> std::sync::MutexGuard<'_, Seen> {
        match self.seen.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        }
    }

    /// Remembers that `agent` called with each of `handles` (a key fingerprint, an address).
    pub fn bind(&self, tenant: &TenantId, handles: &[&str], agent: &str) {
        let mut map = self.map();
        for h in handles {
            if let Some(agents) = map.get(&(tenant.clone(), (*h).to_owned())) {
                if agents.iter().any(|a| a == agent) {
                    continue;
                }
            }
            if map.len() >= MAX_KEYS {
                map.clear();
            }
            let agents = map.entry((tenant.clone(), (*h).to_owned())).or_default();
            if agents.len() >= PER_KEY {
                agents.remove(0);
            }
            agents.push(agent.to_owned());
        }
    }

    /// The agents seen with any of `handles`.
    pub fn agents(&self, tenant: &TenantId, handles: &[&str]) -> Vec<String> {
        let map = self.map();
        let mut out: Vec<String> = Vec::new();
        for h in handles {
            if let Some(agents) = map.get(&(tenant.clone(), (*h).to_owned())) {
                for a in agents {
                    if !out.contains(a) {
                        out.push(a.clone());
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agents_are_found_by_key_or_address_within_a_tenant() {
        let b = Bindings::default();
        let t = TenantId::new("t");
        b.bind(&t, &["key:1", "ip:10.0.0.1"], "agent:a");
        b.bind(&t, &["key:1", "ip:10.0.0.1"], "agent:a");
        b.bind(&t, &["key:2", "ip:10.0.0.1"], "agent:b");
        assert_eq!(b.agents(&t, &["key:1"]), ["agent:a"]);
        assert_eq!(
            b.agents(&t, &["key:9", "ip:10.0.0.1"]),
            ["agent:a", "agent:b"]
        );
        assert!(b.agents(&TenantId::new("u"), &["key:1"]).is_empty());
        for i in 0..40 {
            b.bind(&t, &["key:3"], &format!("agent:{i}"));
        }
        assert_eq!(b.agents(&t, &["key:3"]).len(), PER_KEY);
    }
}
