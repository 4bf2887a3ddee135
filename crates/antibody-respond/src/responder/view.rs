//! What the enforcement view ([`crate::enforce`]) reads of the responder, and the budget
//! caps' spend the responder counts for it.

use super::{ActionRecord, Responder};
use crate::action::{ActionKind, ActionStatus, EffectPoint};
use crate::enforce::{Applied, CapTerms, Change};
use crate::lifecycle::LifecycleState;
use antibody_core::{TenantId, TimestampMs};
use std::collections::BTreeSet;

/// An applied action of a kind the view serves.
fn serves(r: &ActionRecord) -> bool {
    r.action.status == ActionStatus::Succeeded && r.action.kind.effect_point() == EffectPoint::View
}

impl Responder {
    /// The target of a tenant's action and, while it is applied, what the view needs of it.
    pub(crate) fn applied(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Option<(&str, Option<Applied<'_>>)> {
        let r = self.st.actions.get(id).filter(|r| &r.tenant == tenant)?;
        let applied = serves(r)
            .then(|| {
                Some(Applied {
                    action: &r.action,
                    applied_at: r.action.result.as_ref()?.ts,
                    until: r.expires?,
                    spend: self.spend.get(id),
                })
            })
            .flatten();
        Some((r.action.target.as_str(), applied))
    }

    /// `Some(incident driving it)` while the entity is contained (draining, quarantined).
    pub(crate) fn containment(&self, tenant: &TenantId, entity: &str) -> Option<Option<&str>> {
        let e = self.st.entities.get(&(tenant.clone(), entity.to_owned()))?;
        e.state.is_contained().then_some(e.incident.as_deref())
    }

    /// Everything of the tenant that may hold an effect in the view.
    pub(crate) fn enforcement_sources(&self, tenant: &TenantId) -> Vec<Change> {
        let from = (tenant.clone(), String::new());
        let actions = self
            .st
            .by_target
            .range(from.clone()..)
            .take_while(|((t, _), _)| t == tenant)
            .flat_map(|(_, ids)| ids)
            .filter(|id| self.st.actions.get(*id).is_some_and(serves))
            .map(|id| Change::Action(id.clone()));
        let entities = self
            .st
            .entities
            .range(from..)
            .take_while(|((t, _), _)| t == tenant)
            .filter(|(_, e)| e.state.is_contained())
            .map(|((_, entity), _)| Change::Entity(entity.clone()));
        actions.chain(entities).collect()
    }

    /// The tenants with anything in the view.
    pub(crate) fn enforcement_tenants(&self) -> BTreeSet<TenantId> {
        let actions = self
            .st
            .actions
            .values()
            .filter(|r| serves(r))
            .map(|r| &r.tenant);
        let entities = self
            .st
            .entities
            .iter()
            .filter(|(_, e)| e.state.is_contained())
            .map(|((t, _), _)| t);
        actions.chain(entities).cloned().collect()
    }

    /// Budget caps applied to the entity, with their terms.
    fn caps<'a>(
        &'a self,
        tenant: &TenantId,
        entity: &str,
    ) -> impl Iterator<Item = (&'a String, CapTerms)> + 'a {
        let ids = self.st.by_target.get(&(tenant.clone(), entity.to_owned()));
        ids.into_iter().flatten().filter_map(|id| {
            let r = self.st.actions.get(id)?;
            if r.action.kind != ActionKind::BudgetCap || r.action.status != ActionStatus::Succeeded
            {
                return None;
            }
            let start = r.action.result.as_ref()?.ts;
            Some((id, CapTerms::of(&r.action, start, r.expires?)?))
        })
    }

    /// A budget cap is applied to the entity: its events' cost must be counted.
    pub(crate) fn capped(&self, tenant: &TenantId, entity: &str) -> bool {
        self.caps(tenant, entity).next().is_some()
    }

    /// Money the entity spent: the `cost_usd` of its event at log `offset` with time `ts`,
    /// counted against its applied budget caps (see [`crate::enforce`] for the rule).
    /// Returns the caps whose spend changed.
    pub fn on_spend(
        &mut self,
        tenant: &TenantId,
        entity: &str,
        usd: f64,
        offset: u64,
        ts: TimestampMs,
    ) -> Vec<String> {
        let caps: Vec<(String, CapTerms)> = self
            .caps(tenant, entity)
            .map(|(id, terms)| (id.clone(), terms))
            .collect();
        caps.into_iter()
            .filter_map(|(id, terms)| {
                let spend = self.spend.entry(id.clone()).or_default();
                spend.count(&terms, usd, offset, ts).then_some(id)
            })
            .collect()
    }

    /// Every entity whose events the engine should sample (probation or a budget cap), so
    /// the server can ask for them again after a restart.
    pub fn sampled_entities(&self) -> Vec<(TenantId, String)> {
        let probation = self
            .st
            .entities
            .iter()
            .filter(|(_, e)| e.state == LifecycleState::Probation)
            .map(|(k, _)| k.clone());
        let capped = self
            .st
            .actions
            .values()
            .filter(|r| {
                r.action.kind == ActionKind::BudgetCap && r.action.status == ActionStatus::Succeeded
            })
            .map(|r| (r.tenant.clone(), r.action.target.clone()));
        let all: BTreeSet<(TenantId, String)> = probation.chain(capped).collect();
        all.into_iter().collect()
    }

    /// Forgets the spend of caps the responder no longer remembers.
    pub(super) fn prune_spend(&mut self) {
        let actions = &self.st.actions;
        self.spend.retain(|id, _| actions.contains_key(id));
    }
}

#[cfg(test)]
impl Responder {
    /// Puts `action` in the state as applied at `at` (its TTL counting from there), as an
    /// executor's success would, for the view's unit tests.
    pub(crate) fn applied_for_test(
        &mut self,
        tenant: &TenantId,
        mut action: crate::action::Action,
        at: TimestampMs,
    ) {
        action.status = ActionStatus::Succeeded;
        action.result = Some(crate::action::ActionResult {
            ok: true,
            message: String::new(),
            ts: at,
        });
        let ttl_ms = i64::try_from(action.ttl)
            .unwrap_or(i64::MAX)
            .saturating_mul(1000);
        let record = ActionRecord {
            tenant: tenant.clone(),
            entity: action.target.clone(),
            reversible: true,
            cause: crate::diagnose::Cause::Unknown,
            on_failure: crate::playbook::OnFailure::Next,
            created: at,
            expires: Some(at.saturating_add(ttl_ms)),
            finished: None,
            approved_at: Some(at),
            approval: None,
            action,
        };
        let key = (tenant.clone(), record.action.target.clone());
        self.st
            .by_target
            .entry(key)
            .or_default()
            .push(record.action.id.clone());
        self.st.actions.insert(record.action.id.clone(), record);
    }

    /// Marks an applied action undone, as a person's undo would.
    pub(crate) fn undone_for_test(&mut self, id: &str) {
        if let Some(r) = self.st.actions.get_mut(id) {
            r.action.status = ActionStatus::Undone;
        }
    }

    /// Puts the entity in `state`, driven by `incident`.
    pub(crate) fn state_for_test(
        &mut self,
        tenant: &TenantId,
        entity: &str,
        state: LifecycleState,
        incident: &str,
    ) {
        self.st.entities.insert(
            (tenant.clone(), entity.to_owned()),
            super::EntityRecord {
                state,
                since: 0,
                incident: Some(incident.to_owned()),
                dirty: false,
                anomalous_ticks: 0,
                drain_until: 0,
                good_samples: 0,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::action::{Action, ActionKind, ActionStatus, Mode, Why};
    use crate::config::ResponderConfig;
    use crate::enforce::{TenantView, VerdictKind};
    use crate::lifecycle::LifecycleState;
    use crate::playbook::PlaybookSet;
    use crate::Responder;
    use antibody_core::TenantId;
    use std::sync::Arc;

    fn cap(id: &str, target: &str) -> Action {
        Action {
            id: id.into(),
            incident: "i-1".into(),
            kind: ActionKind::BudgetCap,
            target: target.into(),
            params: serde_json::from_str(r#"{"usd":2}"#).unwrap(),
            mode: Mode::Auto,
            status: ActionStatus::Approved,
            ttl: 3_600,
            executor: "budget_cap".into(),
            result: None,
            why: Why {
                playbook: "p".into(),
                rule: "r".into(),
                text: "t".into(),
                numbers: Default::default(),
            },
        }
    }

    #[test]
    fn spend_survives_a_snapshot_and_older_snapshots_still_restore() {
        let (cfg, pbs) = (
            Arc::new(ResponderConfig::default()),
            Arc::new(PlaybookSet::default()),
        );
        let mut r = Responder::new(cfg.clone(), pbs.clone());
        let t = TenantId::new("acme");
        r.applied_for_test(&t, cap("a-1", "agent:x"), 1_000);
        assert_eq!(r.on_spend(&t, "agent:x", 2.5, 7, 2_000), ["a-1"]);
        let back = Responder::restore(cfg.clone(), pbs.clone(), &r.snapshot().unwrap()).unwrap();
        let v = TenantView::build(&back, &t).verdict("agent:x", 3_000);
        assert_eq!(v.verdict, VerdictKind::Block);
        assert_eq!(v.budget.unwrap().spent_usd, 2.5);
        // The replayed event is not counted again after the restore.
        let mut back = back;
        assert!(back.on_spend(&t, "agent:x", 2.5, 7, 2_000).is_empty());
        // A snapshot from before budgets (version 1): the state alone, and its checksum.
        let state = postcard::to_stdvec(&r.st).unwrap();
        let old = [state.as_slice(), &crc32fast::hash(&state).to_le_bytes()].concat();
        let back = Responder::restore(cfg, pbs, &old).unwrap();
        assert!(back.spend.is_empty() && back.st == r.st);
    }

    #[test]
    fn probation_and_caps_are_the_entities_to_sample() {
        let mut r = Responder::new(
            Arc::new(ResponderConfig::default()),
            Arc::new(PlaybookSet::default()),
        );
        let t = TenantId::new("acme");
        r.applied_for_test(&t, cap("a-1", "agent:x"), 1_000);
        r.state_for_test(&t, "agent:p", LifecycleState::Probation, "i-2");
        r.state_for_test(&t, "agent:q", LifecycleState::Healing, "i-3");
        let want = [
            (t.clone(), "agent:p".to_owned()),
            (t.clone(), "agent:x".to_owned()),
        ];
        assert_eq!(r.sampled_entities(), want);
        assert!(r.wants_samples(&t, "agent:x") && !r.wants_samples(&t, "agent:q"));
    }
}
