//! Tenant layers: a tenant's own playbook set (the global playbooks with its own over them)
//! and its own response policy, set at run time by the server from what the tenant's admin
//! stored. Without them a tenant gets the global set and the configured `[respond]` policy.
//! Layers are configuration, not state: they are not snapshotted (the server sets them again
//! from its store at start, before any incident is replayed).

use super::Responder;
use crate::config::{ResponderConfig, TenantPolicy};
use crate::playbook::PlaybookSet;
use antibody_core::TenantId;
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Default)]
pub(super) struct Layers {
    playbooks: BTreeMap<TenantId, Arc<PlaybookSet>>,
    policies: BTreeMap<TenantId, Arc<TenantPolicy>>,
}

impl Layers {
    /// The policy in force for `tenant`: its own, else the configured one.
    pub(super) fn policy<'a>(
        &'a self,
        cfg: &'a ResponderConfig,
        tenant: &TenantId,
    ) -> &'a TenantPolicy {
        match self.policies.get(tenant) {
            Some(p) => p,
            None => cfg.policy(tenant.as_str()),
        }
    }
}

impl Responder {
    /// Gives `tenant` its own whole playbook set, or (`None`) puts it back on the global one.
    /// Running ladders whose playbook disappeared stop at their current rung.
    pub fn set_tenant_playbooks(&mut self, tenant: TenantId, set: Option<Arc<PlaybookSet>>) {
        match set {
            Some(s) => self.layers.playbooks.insert(tenant, s),
            None => self.layers.playbooks.remove(&tenant),
        };
    }

    /// Gives `tenant` its own policy (validated by the caller), or (`None`) puts it back on
    /// the configured one. It applies to the next decision, running ladders included.
    pub fn set_tenant_policy(&mut self, tenant: TenantId, policy: Option<Arc<TenantPolicy>>) {
        match policy {
            Some(p) => self.layers.policies.insert(tenant, p),
            None => self.layers.policies.remove(&tenant),
        };
    }

    /// The playbooks in force for `tenant`.
    pub fn playbooks_for(&self, tenant: &TenantId) -> &Arc<PlaybookSet> {
        self.layers.playbooks.get(tenant).unwrap_or(&self.playbooks)
    }

    /// The response policy in force for `tenant`.
    pub fn policy_for(&self, tenant: &TenantId) -> &TenantPolicy {
        self.layers.policy(&self.cfg, tenant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::Mode;
    use crate::playbook::PlaybookSource;

    #[test]
    fn tenant_layers_fall_back_to_the_global_set_and_the_configured_policy() {
        let global = Arc::new(PlaybookSet::default_pack().unwrap());
        let mut cfg = ResponderConfig::default();
        cfg.policy.approvers = 2;
        let mut r = Responder::new(Arc::new(cfg), global.clone());
        let (a, b) = (TenantId::new("a"), TenantId::new("b"));
        let mut sources = PlaybookSet::default_sources();
        sources.push(PlaybookSource::new(
            "tenant/bf.yml",
            "- id: brute-force\n  trigger: {kinds: [brute_force]}\n  mode: dry_run\n  steps:\n    - action: notify\n",
        ));
        let own = Arc::new(PlaybookSet::load(&sources).unwrap());
        r.set_tenant_playbooks(b.clone(), Some(own.clone()));
        let strict = TenantPolicy {
            mode: Some(Mode::Approval),
            ..TenantPolicy::default()
        };
        r.set_tenant_policy(b.clone(), Some(Arc::new(strict)));
        assert!(Arc::ptr_eq(r.playbooks_for(&a), &global));
        assert!(Arc::ptr_eq(r.playbooks_for(&b), &own));
        assert_eq!(r.policy_for(&a).approvers, 2);
        assert_eq!(r.policy_for(&b).mode, Some(Mode::Approval));
        r.set_tenant_playbooks(b.clone(), None);
        r.set_tenant_policy(b.clone(), None);
        assert!(Arc::ptr_eq(r.playbooks_for(&b), &global));
        assert_eq!(r.policy_for(&b).approvers, 2);
    }
}
