//! Re-convergence after a heal, remembered: the detection partition's baselines of a healed
//! entity learn a new level until a time the server sets ([`Responder::reconverge`]). The
//! partition keeps that in its own checkpoint, which may be older than this snapshot, so
//! the server asks again at start for every entity still re-converging
//! ([`Responder::reconverging`]). Entries past their time are pruned.

use super::Responder;
use antibody_core::{TenantId, TimestampMs};

impl Responder {
    /// `entity` healed: its baselines re-converge until `until` (engine time).
    pub fn reconverge(&mut self, tenant: &TenantId, entity: &str, until: TimestampMs) {
        self.st
            .reconverge
            .insert((tenant.clone(), entity.to_owned()), until);
    }

    /// Healed entities whose re-convergence may still run (not yet pruned), with its end.
    pub fn reconverging(&self) -> impl Iterator<Item = (&TenantId, &str, TimestampMs)> + '_ {
        self.st
            .reconverge
            .iter()
            .map(|((t, e), until)| (t, e.as_str(), *until))
    }

    pub(super) fn reconverge_section(&self) -> Vec<(TenantId, String, TimestampMs)> {
        self.reconverging()
            .map(|(t, e, u)| (t.clone(), e.to_owned(), u))
            .collect()
    }

    pub(super) fn restore_reconverge(&mut self, items: Vec<(TenantId, String, TimestampMs)>) {
        self.st.reconverge = items.into_iter().map(|(t, e, u)| ((t, e), u)).collect();
    }
}

#[cfg(test)]
mod tests {
    use crate::config::ResponderConfig;
    use crate::playbook::PlaybookSet;
    use crate::responder::Responder;
    use antibody_core::TenantId;
    use std::sync::Arc;

    #[test]
    fn reconvergence_is_remembered_until_past_then_pruned() {
        let pbs = PlaybookSet::default_pack().unwrap();
        let mut r = Responder::new(Arc::new(ResponderConfig::default()), Arc::new(pbs));
        let t = TenantId::new("t");
        r.reconverge(&t, "agent:a", 100_000);
        r.reconverge(&t, "agent:b", 500_000);
        let all: Vec<_> = r.reconverging().map(|(_, e, u)| (e, u)).collect();
        assert_eq!(all, [("agent:a", 100_000), ("agent:b", 500_000)]);
        // Pruning runs once a minute of ticks has passed.
        r.on_tick(200_000);
        let left: Vec<_> = r.reconverging().map(|(_, e, u)| (e, u)).collect();
        assert_eq!(left, [("agent:b", 500_000)]);
    }
}
