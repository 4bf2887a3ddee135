//! What people do: approve, reject (one or all), heal now (one or all), undo. Every call names the
//! actor's key id, which lands in the decisions and so in the audit chain.

use super::{in_force, ActionRecord, Key, PlanState, Responder};
use crate::action::{ActionResult, ActionStatus};
use crate::decision::{Decision, UndoReason};
use crate::lifecycle::LifecycleState;
use crate::RespondError;
use antibody_core::{TenantId, TimestampMs};

impl Responder {
    pub(super) fn record_mut(
        &mut self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<&mut ActionRecord, RespondError> {
        self.st
            .actions
            .get_mut(id)
            .filter(|r| &r.tenant == tenant)
            .ok_or_else(|| RespondError::ActionNotFound(id.to_owned()))
    }

    /// One approval of a pending (or proposed) action; it runs once enough distinct people
    /// approved.
    pub fn approve(
        &mut self,
        actor: &str,
        tenant: &TenantId,
        id: &str,
        now: TimestampMs,
    ) -> Result<Vec<Decision>, RespondError> {
        let r = self.record_mut(tenant, id)?;
        let status = r.action.status;
        if !matches!(
            status,
            ActionStatus::PendingApproval | ActionStatus::Proposed
        ) {
            return Err(wrong(
                id,
                status,
                "only a pending or proposed action can be approved",
            ));
        }
        let approval = r.approval.get_or_insert_with(|| super::Approval {
            required: 1,
            approvers: Vec::new(),
            expires: now,
            escalated: true,
            reason: String::new(),
        });
        if approval.approvers.iter().any(|a| a == actor) {
            return Err(RespondError::DuplicateApprover {
                id: id.to_owned(),
                actor: actor.to_owned(),
            });
        }
        approval.approvers.push(actor.to_owned());
        let done = approval.approvers.len() >= usize::from(approval.required);
        if done {
            r.action.status = ActionStatus::Approved;
            r.approved_at = Some(now);
        }
        let mut out: Vec<Decision> = self.action_decision(id, actor).into_iter().collect();
        if done {
            self.after_approval(id, actor, now, &mut out);
        }
        Ok(out)
    }

    /// An approved action aimed at the entity moves it: containment drains it, anything
    /// else heals it.
    fn after_approval(&mut self, id: &str, actor: &str, now: TimestampMs, out: &mut Vec<Decision>) {
        let Some(r) = self.st.actions.get(id) else {
            return;
        };
        if r.action.target != r.entity {
            return;
        }
        let ekey = (r.tenant.clone(), r.entity.clone());
        let reason = format!("{} {} approved", r.action.kind, r.action.id);
        let state = self.entity_state(&ekey.0, &ekey.1);
        if r.action.kind.is_containment() {
            if !state.is_contained() {
                self.transition(&ekey, LifecycleState::Draining, reason, actor, now, out);
            }
        } else {
            self.transition(&ekey, LifecycleState::Healing, reason, actor, now, out);
        }
    }

    /// Rejects a pending (or proposed) action. A contained entity stays contained until
    /// heal-now.
    pub fn reject(
        &mut self,
        actor: &str,
        tenant: &TenantId,
        id: &str,
        now: TimestampMs,
    ) -> Result<Vec<Decision>, RespondError> {
        let r = self.record_mut(tenant, id)?;
        let status = r.action.status;
        if !matches!(
            status,
            ActionStatus::PendingApproval | ActionStatus::Proposed
        ) {
            return Err(wrong(
                id,
                status,
                "only a pending or proposed action can be rejected",
            ));
        }
        let case = (r.tenant.clone(), r.action.incident.clone());
        finish(
            r,
            ActionStatus::Rejected,
            false,
            format!("rejected by {actor}"),
            now,
        );
        let mut out: Vec<Decision> = self.action_decision(id, actor).into_iter().collect();
        self.stop_if_idle(&case);
        out.shrink_to_fit();
        Ok(out)
    }

    /// A ladder whose running rung has nothing left to wait for stops.
    fn stop_if_idle(&mut self, case: &Key) {
        let Some(plan) = self.st.cases.get(case).and_then(|c| c.plan.as_ref()) else {
            return;
        };
        let live = plan.actions.iter().any(|id| {
            self.st.actions.get(id).is_some_and(|r| {
                matches!(
                    r.action.status,
                    ActionStatus::PendingApproval
                        | ActionStatus::Proposed
                        | ActionStatus::Approved
                        | ActionStatus::Executing
                        | ActionStatus::Succeeded
                )
            })
        });
        if !live {
            if let Some(p) = self.st.cases.get_mut(case).and_then(|c| c.plan.as_mut()) {
                p.state = PlanState::Stopped;
            }
        }
    }

    fn pending(&self, tenant: &TenantId, entity: Option<&str>) -> Vec<String> {
        self.st
            .actions
            .values()
            .filter(|r| {
                &r.tenant == tenant
                    && entity.is_none_or(|e| r.entity == e)
                    && r.action.status == ActionStatus::PendingApproval
            })
            .map(|r| r.action.id.clone())
            .collect()
    }

    /// Approves every pending action of the tenant (those this actor already approved are
    /// left as they are).
    pub fn approve_all(
        &mut self,
        actor: &str,
        tenant: &TenantId,
        now: TimestampMs,
    ) -> Vec<Decision> {
        self.approve_all_but(actor, tenant, &std::collections::BTreeSet::new(), now)
    }

    /// [`Responder::approve_all`], leaving the actions in `skip` waiting (the server skips
    /// those of incidents a person resolved: see `RespondStage::approvable`).
    pub fn approve_all_but(
        &mut self,
        actor: &str,
        tenant: &TenantId,
        skip: &std::collections::BTreeSet<String>,
        now: TimestampMs,
    ) -> Vec<Decision> {
        let mut out = Vec::new();
        for id in self.pending(tenant, None) {
            if skip.contains(&id) {
                continue;
            }
            if let Ok(d) = self.approve(actor, tenant, &id, now) {
                out.extend(d);
            }
        }
        out
    }

    pub fn reject_all(
        &mut self,
        actor: &str,
        tenant: &TenantId,
        now: TimestampMs,
    ) -> Vec<Decision> {
        let mut out = Vec::new();
        for id in self.pending(tenant, None) {
            if let Ok(d) = self.reject(actor, tenant, &id, now) {
                out.extend(d);
            }
        }
        out
    }

    /// A person vouches for a contained or exhausted entity: its pending actions are
    /// rejected, its containment lifted, and it goes on probation.
    pub fn heal_now(
        &mut self,
        actor: &str,
        tenant: &TenantId,
        entity: &str,
        now: TimestampMs,
    ) -> Result<Vec<Decision>, RespondError> {
        let state = self.entity_state(tenant, entity);
        if !matches!(
            state,
            LifecycleState::Draining | LifecycleState::Quarantined | LifecycleState::Exhausted
        ) {
            return Err(RespondError::NotHealable {
                entity: entity.to_owned(),
                state: state.to_string(),
            });
        }
        let mut out = Vec::new();
        for id in self.pending(tenant, Some(entity)) {
            if let Ok(r) = self.record_mut(tenant, &id) {
                finish(
                    r,
                    ActionStatus::Rejected,
                    false,
                    format!("superseded by heal-now from {actor}"),
                    now,
                );
                out.extend(self.action_decision(&id, actor));
            }
        }
        let held: Vec<String> = self
            .st
            .actions
            .values()
            .filter(|r| {
                &r.tenant == tenant
                    && r.action.target == entity
                    && r.action.kind.is_containment()
                    && in_force(r, now)
            })
            .map(|r| r.action.id.clone())
            .collect();
        for id in held {
            self.undo_one(actor, &id, UndoReason::Manual, now, &mut out);
        }
        let ekey = (tenant.clone(), entity.to_owned());
        if let Some(case) = self.driving_case(&ekey) {
            if let Some(p) = self.st.cases.get_mut(&case).and_then(|c| c.plan.as_mut()) {
                if p.state == PlanState::Running {
                    p.state = PlanState::Stopped;
                }
            }
        }
        let reason = format!("heal-now by {actor}");
        self.transition(
            &ekey,
            LifecycleState::Probation,
            reason,
            actor,
            now,
            &mut out,
        );
        Ok(out)
    }

    /// Heal-now for every contained or exhausted entity of the tenant, in name order.
    pub fn heal_all(&mut self, actor: &str, tenant: &TenantId, now: TimestampMs) -> Vec<Decision> {
        let healable: Vec<String> = self
            .entity_states(tenant)
            .filter(|(_, s)| s.is_contained() || *s == LifecycleState::Exhausted)
            .map(|(e, _)| e.to_owned())
            .collect();
        let mut out = Vec::new();
        for entity in healable {
            if let Ok(d) = self.heal_now(actor, tenant, &entity, now) {
                out.extend(d);
            }
        }
        out
    }

    /// Undoes an approved or applied action (`POST /v1/actions/{id}/undo`).
    pub fn undo(
        &mut self,
        actor: &str,
        tenant: &TenantId,
        id: &str,
        now: TimestampMs,
    ) -> Result<Vec<Decision>, RespondError> {
        let r = self.record_mut(tenant, id)?;
        let status = r.action.status;
        if !matches!(
            status,
            ActionStatus::Approved | ActionStatus::Executing | ActionStatus::Succeeded
        ) {
            return Err(wrong(
                id,
                status,
                "only an approved or applied action can be undone",
            ));
        }
        let mut out = Vec::new();
        self.undo_one(actor, id, UndoReason::Manual, now, &mut out);
        let Some(r) = self.st.actions.get(id) else {
            return Ok(out);
        };
        if r.action.kind.is_containment() && r.action.target == r.entity {
            let ekey = (r.tenant.clone(), r.entity.clone());
            self.release(
                &ekey,
                format!("{} undone by {actor}", r.action.id),
                actor,
                now,
                &mut out,
            );
        }
        Ok(out)
    }

    /// Marks an action undone (or expired) and asks for its undo when it left anything behind.
    pub(super) fn undo_one(
        &mut self,
        actor: &str,
        id: &str,
        reason: UndoReason,
        now: TimestampMs,
        out: &mut Vec<Decision>,
    ) {
        let Some(r) = self.st.actions.get_mut(id) else {
            return;
        };
        let applied = matches!(
            r.action.status,
            ActionStatus::Executing | ActionStatus::Succeeded
        );
        // The executor's result stays; the status says what happened since.
        r.action.status = match reason {
            UndoReason::Expired => ActionStatus::Expired,
            UndoReason::Manual => ActionStatus::Undone,
        };
        r.finished = Some(now);
        out.extend(self.action_decision(id, actor));
        let Some(r) = self.st.actions.get(id) else {
            return;
        };
        if applied && r.reversible {
            out.push(Decision::Undo {
                tenant: r.tenant.clone(),
                entity: r.entity.clone(),
                actor: actor.to_owned(),
                reason,
                action: r.action.clone(),
            });
        }
    }

    /// Containment lifted: a contained entity with no containment left in force goes on
    /// probation.
    pub(super) fn release(
        &mut self,
        ekey: &Key,
        reason: String,
        actor: &str,
        now: TimestampMs,
        out: &mut Vec<Decision>,
    ) {
        if !self.entity_state(&ekey.0, &ekey.1).is_contained() {
            return;
        }
        let still = self.st.actions.values().any(|r| {
            r.tenant == ekey.0
                && r.action.target == ekey.1
                && r.action.kind.is_containment()
                && in_force(r, now)
        });
        if !still {
            self.transition(ekey, LifecycleState::Probation, reason, actor, now, out);
        }
    }
}

fn wrong(id: &str, status: ActionStatus, expected: &'static str) -> RespondError {
    RespondError::WrongStatus {
        id: id.to_owned(),
        status: status.to_string(),
        expected,
    }
}

/// Puts an action in a terminal status with a result.
pub(super) fn finish(
    r: &mut ActionRecord,
    status: ActionStatus,
    ok: bool,
    message: String,
    now: TimestampMs,
) {
    r.action.status = status;
    r.action.result = Some(ActionResult {
        ok,
        message,
        ts: now,
    });
    r.finished = Some(now);
}
