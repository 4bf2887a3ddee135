//! The rule sets in force: the global set, and for each tenant with rules of its own that
//! tenant's whole set (the global rules with its own over them, compiled by the server with
//! [`antibody_rules::RuleSet::compile_layered`]). Swapped whole, like models; a partition
//! picks one set per event with a single lookup, and none when no tenant has rules.

use antibody_core::TenantId;
use antibody_rules::RuleSet;
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Clone, Debug)]
pub struct RuleBook {
    global: Arc<RuleSet>,
    tenants: BTreeMap<TenantId, Arc<RuleSet>>,
}

impl RuleBook {
    pub fn new(global: Arc<RuleSet>) -> Self {
        Self {
            global,
            tenants: BTreeMap::new(),
        }
    }

    /// Gives `tenant` its own whole set (or takes it away: back to the global set).
    pub fn set_tenant(&mut self, tenant: TenantId, set: Option<Arc<RuleSet>>) {
        match set {
            Some(s) => self.tenants.insert(tenant, s),
            None => self.tenants.remove(&tenant),
        };
    }

    pub fn global(&self) -> &Arc<RuleSet> {
        &self.global
    }

    /// The tenant's own set, if it has one.
    pub fn tenant(&self, tenant: &TenantId) -> Option<&Arc<RuleSet>> {
        self.tenants.get(tenant)
    }

    /// The set in force for `tenant`.
    pub fn for_tenant(&self, tenant: &TenantId) -> &Arc<RuleSet> {
        self.tenant(tenant).unwrap_or(&self.global)
    }

    /// Tenants with a set of their own, in id order.
    pub fn tenants(&self) -> impl Iterator<Item = (&TenantId, &Arc<RuleSet>)> {
        self.tenants.iter()
    }
}

impl From<Arc<RuleSet>> for RuleBook {
    fn from(global: Arc<RuleSet>) -> Self {
        Self::new(global)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants_fall_back_to_the_global_set() {
        let global = Arc::new(RuleSet::compile(&[]).unwrap());
        let own = Arc::new(RuleSet::default_pack());
        let (a, b) = (TenantId::new("a"), TenantId::new("b"));
        let mut book = RuleBook::from(global.clone());
        book.set_tenant(b.clone(), Some(own.clone()));
        assert!(Arc::ptr_eq(book.for_tenant(&a), &global));
        assert!(Arc::ptr_eq(book.for_tenant(&b), &own));
        book.set_tenant(b.clone(), None);
        assert!(Arc::ptr_eq(book.for_tenant(&b), &global));
        assert_eq!(book.tenants().count(), 0);
    }
}
