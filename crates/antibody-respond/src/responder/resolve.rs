//! A person resolves an incident: the responder stops working it.
//!
//! Every resolution rejects the incident's actions still waiting for a person (proposed or
//! pending approval) and stops its ladder. A resolution that says there was nothing to
//! contain — `false_positive`, `accepted_risk`, `external` — also lifts what the incident
//! put in force (its blocks, quarantines and throttles, undone as heal-now undoes) and
//! returns the entity to healthy when no other incident holds it. `healed` and `mitigated`
//! say the response worked: what it applied stays until its TTL, undo or heal-now.
//!
//! The lifecycle guard allows no contained (or healing, or exhausted) entity straight back
//! to healthy: such an entity passes through probation in the same instant. Both steps are
//! recorded with the person as actor and the resolution as reason, so the trail shows that
//! no samples were watched — the person's word stands in for them.

use super::human::finish;
use super::{in_force, Key, PlanState, Responder};
use crate::action::{ActionKind, ActionStatus};
use crate::decision::{Decision, UndoReason};
use crate::lifecycle::LifecycleState;
use antibody_core::{Resolution, TenantId, TimestampMs};

impl Responder {
    /// A person resolved `incident` with `resolution` (see the module docs).
    pub fn resolve_incident(
        &mut self,
        actor: &str,
        tenant: &TenantId,
        incident: &str,
        resolution: Resolution,
        now: TimestampMs,
    ) -> Vec<Decision> {
        let key = (tenant.clone(), incident.to_owned());
        let why = format!("incident {incident} resolved {resolution} by {actor}");
        let mut out = Vec::new();
        self.reject_waiting(&key, actor, &why, now, &mut out);
        if let Some(rec) = self.st.cases.get_mut(&key) {
            rec.closed = true;
            if let Some(p) = rec.plan.as_mut().filter(|p| p.state == PlanState::Running) {
                p.state = PlanState::Stopped;
            }
        }
        if !lifts(resolution) {
            return out;
        }
        let held = self.incident_actions(&key, |_| true);
        for id in held {
            let restricts = self
                .st
                .actions
                .get(&id)
                .is_some_and(|r| restricts(r.action.kind) && in_force(r, now));
            if restricts {
                self.undo_one(actor, &id, UndoReason::Manual, now, &mut out);
            }
        }
        if let Some(entity) = self.incident_entity(&key) {
            let ekey = (tenant.clone(), entity);
            self.stand_down(&ekey, &key, why, actor, now, &mut out);
        }
        out
    }

    /// Rejects the incident's actions still waiting for a person (proposed or pending):
    /// nobody should be asked about a case that is over.
    pub(super) fn reject_waiting(
        &mut self,
        key: &Key,
        actor: &str,
        why: &str,
        now: TimestampMs,
        out: &mut Vec<Decision>,
    ) {
        for id in self.incident_actions(key, |s| {
            matches!(s, ActionStatus::PendingApproval | ActionStatus::Proposed)
        }) {
            if let Some(r) = self.st.actions.get_mut(&id) {
                finish(r, ActionStatus::Rejected, false, why.to_owned(), now);
                out.extend(self.action_decision(&id, actor));
            }
        }
    }

    /// Ids of the incident's actions whose status passes `keep`, in id order.
    fn incident_actions(&self, key: &Key, keep: impl Fn(ActionStatus) -> bool) -> Vec<String> {
        self.st
            .actions
            .values()
            .filter(|r| r.tenant == key.0 && r.action.incident == key.1 && keep(r.action.status))
            .map(|r| r.action.id.clone())
            .collect()
    }

    /// The entity the incident is about, as the responder knows it.
    fn incident_entity(&self, key: &Key) -> Option<String> {
        if let Some(rec) = self.st.cases.get(key) {
            return Some(rec.case.entity.clone());
        }
        self.st
            .entities
            .iter()
            .find(|((t, _), e)| t == &key.0 && e.incident.as_deref() == Some(key.1.as_str()))
            .map(|((_, e), _)| e.clone())
    }

    /// Returns the entity to healthy unless something other than incident `key` holds it:
    /// another incident drives it or is still open on it, or a containment of another
    /// incident is still in force.
    fn stand_down(
        &mut self,
        ekey: &Key,
        key: &Key,
        reason: String,
        actor: &str,
        now: TimestampMs,
        out: &mut Vec<Decision>,
    ) {
        let state = self.entity_state(&ekey.0, &ekey.1);
        if state == LifecycleState::Healthy {
            return;
        }
        let driven_elsewhere = self.driving_case(ekey).is_some_and(|k| &k != key);
        let open_elsewhere = self
            .st
            .cases
            .iter()
            .any(|(k, c)| k != key && k.0 == ekey.0 && c.case.entity == ekey.1 && !c.closed);
        let contained = self.st.actions.values().any(|r| {
            r.tenant == ekey.0
                && r.action.target == ekey.1
                && r.action.kind.is_containment()
                && in_force(r, now)
        });
        if driven_elsewhere || open_elsewhere || contained {
            return;
        }
        if !state.can_go(LifecycleState::Healthy) {
            let via = LifecycleState::Probation;
            if !self.transition(ekey, via, reason.clone(), actor, now, out) {
                return;
            }
        }
        self.transition(ekey, LifecycleState::Healthy, reason, actor, now, out);
    }
}

/// Resolutions that say the incident needed no containment.
fn lifts(resolution: Resolution) -> bool {
    matches!(
        resolution,
        Resolution::FalsePositive | Resolution::AcceptedRisk | Resolution::External
    )
}

/// Kinds whose effect the request path enforces (blocks, throttles, revoked tools, caps):
/// what the enforcement view serves.
fn restricts(kind: ActionKind) -> bool {
    kind.effect_point() == crate::action::EffectPoint::View
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::Action;
    use crate::config::ResponderConfig;
    use crate::playbook::PlaybookSet;
    use antibody_core::{Finding, Incident, Severity};
    use std::sync::Arc;

    fn t() -> TenantId {
        TenantId::new("t")
    }

    fn responder(approval_sigma: f64) -> Responder {
        let mut cfg = ResponderConfig::default();
        cfg.policy.approval_sigma = approval_sigma;
        let pbs = PlaybookSet::default_pack().unwrap();
        Responder::new(Arc::new(cfg), Arc::new(pbs))
    }

    /// Incident `i-1` of `agent:a`: one decisive token spike of 7.5σ.
    fn spike(r: &mut Responder) -> Vec<Decision> {
        use crate::assess::tests::{finding, incident};
        let evidence = serde_json::json!({"metric": "tokens", "sigma": 7.5});
        let f = finding("agent:a", "token_spike", "baseline", 0.9, evidence);
        let inc: Incident = incident("agent:a", Severity::High, &["token_spike"]);
        r.on_incident(&inc, &[Finding { ts: 1_000, ..f }], 1_000)
    }

    fn actions(ds: &[Decision]) -> Vec<Action> {
        ds.iter()
            .filter_map(|d| match d {
                Decision::Action { action, .. } => Some(action.clone()),
                _ => None,
            })
            .collect()
    }

    fn path(ds: &[Decision]) -> Vec<(LifecycleState, LifecycleState, String)> {
        ds.iter()
            .filter_map(|d| match d {
                Decision::Transition(tr) => Some((tr.from, tr.to, tr.actor.clone())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_false_positive_rejects_pending_actions_and_lifts_containment() {
        // 7.5σ is past the approval threshold: the action waits, the entity drains.
        let mut r = responder(5.0);
        let pending = actions(&spike(&mut r));
        assert_eq!(pending.len(), 1, "{pending:?}");
        assert_eq!(pending[0].status, ActionStatus::PendingApproval);
        assert_eq!(r.entity_state(&t(), "agent:a"), LifecycleState::Draining);

        let ds = r.resolve_incident("k-1", &t(), "i-1", Resolution::FalsePositive, 2_000);
        let rejected = actions(&ds);
        assert_eq!(rejected.len(), 1);
        assert_eq!(rejected[0].status, ActionStatus::Rejected);
        let result = rejected[0].result.as_ref().unwrap();
        assert_eq!(
            result.message,
            "incident i-1 resolved false_positive by k-1"
        );
        assert!(ds
            .iter()
            .all(|d| !matches!(d, Decision::Action { actor, .. } if actor != "k-1")));
        // Draining may not go straight to healthy: through probation, both by the person.
        use LifecycleState::*;
        let k = "k-1".to_owned();
        assert_eq!(
            path(&ds),
            [(Draining, Probation, k.clone()), (Probation, Healthy, k)]
        );
        assert_eq!(r.entity_state(&t(), "agent:a"), Healthy);
        assert!(r.approve("k-2", &t(), &pending[0].id, 3_000).is_err());
    }

    #[test]
    fn a_false_positive_undoes_what_the_incident_put_in_force() {
        // Below the approval threshold the action runs at once.
        let mut r = responder(8.0);
        let applied = actions(&spike(&mut r));
        let id = applied[0].id.clone();
        r.on_action_result(&t(), &id, true, "ok", 1_500).unwrap();
        assert_eq!(r.entity_state(&t(), "agent:a"), LifecycleState::Probation);
        let ds = r.resolve_incident("k-1", &t(), "i-1", Resolution::AcceptedRisk, 2_000);
        assert_eq!(r.action(&t(), &id).unwrap().status, ActionStatus::Undone);
        assert!(ds
            .iter()
            .any(|d| matches!(d, Decision::Undo { actor, .. } if actor == "k-1")));
        assert_eq!(r.entity_state(&t(), "agent:a"), LifecycleState::Healthy);
    }

    #[test]
    fn healed_and_mitigated_keep_what_was_applied() {
        for resolution in [Resolution::Healed, Resolution::Mitigated] {
            let mut r = responder(5.0);
            let pending = actions(&spike(&mut r));
            let ds = r.resolve_incident("k-1", &t(), "i-1", resolution, 2_000);
            assert_eq!(actions(&ds)[0].status, ActionStatus::Rejected);
            assert!(path(&ds).is_empty(), "{resolution}: {ds:?}");
            assert_eq!(r.entity_state(&t(), "agent:a"), LifecycleState::Draining);
            assert_eq!(
                r.action(&t(), &pending[0].id).unwrap().status,
                ActionStatus::Rejected
            );
        }
        let mut r = responder(8.0);
        let id = actions(&spike(&mut r))[0].id.clone();
        r.on_action_result(&t(), &id, true, "ok", 1_500).unwrap();
        r.resolve_incident("k-1", &t(), "i-1", Resolution::Mitigated, 2_000);
        assert_eq!(r.action(&t(), &id).unwrap().status, ActionStatus::Succeeded);
        assert_eq!(r.entity_state(&t(), "agent:a"), LifecycleState::Probation);
    }

    #[test]
    fn a_stopped_ladder_starts_nothing_on_a_later_update() {
        let mut r = responder(5.0);
        spike(&mut r);
        r.resolve_incident("k-1", &t(), "i-1", Resolution::FalsePositive, 2_000);
        let mut later = crate::assess::tests::incident("agent:a", Severity::High, &["token_spike"]);
        later.finding_count = 2;
        later.updated = 2_500;
        let ds = r.on_incident(&later, &[], 2_500);
        assert!(actions(&ds).is_empty(), "{ds:?}");
    }

    #[test]
    fn another_incident_of_the_entity_keeps_it_held() {
        let mut r = responder(5.0);
        spike(&mut r);
        let mut other = crate::assess::tests::incident("agent:a", Severity::High, &["token_spike"]);
        other.id = "i-2".into();
        r.on_incident(&other, &[], 1_200);
        let ds = r.resolve_incident("k-1", &t(), "i-1", Resolution::FalsePositive, 2_000);
        assert!(path(&ds).is_empty(), "{ds:?}");
        assert_eq!(r.entity_state(&t(), "agent:a"), LifecycleState::Draining);
    }
}
