//! Time and feedback from the world: ticks (suspect windows, drains, approval timeouts,
//! TTL expiry, pruning), executor results, and samples during probation.

use super::human::finish;
use super::{Key, PlanState, Responder, RungOutcome};
use crate::action::ActionStatus;
use crate::config::OnTimeout;
use crate::decision::{Decision, UndoReason, ENGINE};
use crate::lifecycle::LifecycleState;
use crate::playbook::OnFailure;
use crate::RespondError;
use antibody_core::{Resolution, TenantId, TimestampMs};

/// Housekeeping (retention, offence memory) runs at most this often.
const PRUNE_EVERY_MS: i64 = 60_000;
/// Repeat-offender counts are forgotten after this long without an offence.
const OFFENCE_MEMORY_MS: i64 = 30 * 86_400_000;

impl Responder {
    /// Advances time to `now`.
    pub fn on_tick(&mut self, now: TimestampMs) -> Vec<Decision> {
        let mut out = Vec::new();
        self.tick_entities(now, &mut out);
        self.tick_actions(now, &mut out);
        for fi in self.st.fleet.expire(&self.cfg.fleet, now) {
            out.push(Decision::Fleet(fi));
        }
        if antibody_core::clock::is_due(now, self.st.last_prune, PRUNE_EVERY_MS) {
            self.prune(now);
        }
        out
    }

    fn tick_entities(&mut self, now: TimestampMs, out: &mut Vec<Decision>) {
        let keys: Vec<Key> = self.st.entities.keys().cloned().collect();
        for ekey in keys {
            let policy = self.layers.policy(&self.cfg, &ekey.0);
            let (suspect_ticks, state) =
                (policy.suspect_ticks, self.entity_state(&ekey.0, &ekey.1));
            let Some(e) = self.st.entities.get_mut(&ekey) else {
                continue;
            };
            match state {
                LifecycleState::Suspected => {
                    if e.dirty {
                        e.anomalous_ticks = e.anomalous_ticks.saturating_add(1);
                        e.dirty = false;
                    }
                    if e.anomalous_ticks >= suspect_ticks {
                        if let Some(case) = self.driving_case(&ekey) {
                            self.start_plan(&case, now, out);
                        }
                    }
                }
                LifecycleState::Draining if now >= e.drain_until => {
                    let reason = "drain timeout elapsed".to_owned();
                    self.transition(&ekey, LifecycleState::Quarantined, reason, ENGINE, now, out);
                }
                _ => e.dirty = false,
            }
        }
    }

    fn tick_actions(&mut self, now: TimestampMs, out: &mut Vec<Decision>) {
        let exec_timeout = self.cfg.execution_timeout_ms;
        let due: Vec<String> = self
            .st
            .actions
            .values()
            .filter(|r| {
                let timed_out = r.action.status == ActionStatus::PendingApproval
                    && r.approval
                        .as_ref()
                        .is_some_and(|a| !a.escalated && now >= a.expires);
                let expired = r.action.status == ActionStatus::Succeeded
                    && r.expires.is_some_and(|t| now >= t);
                let hung = matches!(
                    r.action.status,
                    ActionStatus::Approved | ActionStatus::Executing
                ) && r
                    .approved_at
                    .is_some_and(|t| now.saturating_sub(t) >= exec_timeout);
                timed_out || expired || hung
            })
            .map(|r| r.action.id.clone())
            .collect();
        for id in due {
            let Some(r) = self.st.actions.get_mut(&id) else {
                continue;
            };
            if matches!(
                r.action.status,
                ActionStatus::Approved | ActionStatus::Executing
            ) {
                let message = format!("no result from the executor within {exec_timeout} ms");
                self.fail_action(&id, &message, now, out);
                continue;
            }
            if r.action.status == ActionStatus::Succeeded {
                let (ekey, contain) = (
                    (r.tenant.clone(), r.entity.clone()),
                    r.action.kind.is_containment(),
                );
                self.undo_one(ENGINE, &id, UndoReason::Expired, now, out);
                if contain {
                    self.release(&ekey, format!("{id} expired"), ENGINE, now, out);
                }
                continue;
            }
            let policy = self.layers.policy(&self.cfg, &r.tenant);
            match policy.on_approval_timeout {
                OnTimeout::Escalate => {
                    if let Some(a) = r.approval.as_mut() {
                        a.escalated = true;
                    }
                    out.push(Decision::Escalation {
                        tenant: r.tenant.clone(),
                        entity: r.entity.clone(),
                        incident: r.action.incident.clone(),
                        reason: format!("approval of {} {} timed out", r.action.kind, r.action.id),
                    });
                }
                OnTimeout::Reject => {
                    finish(
                        r,
                        ActionStatus::Rejected,
                        false,
                        "approval timed out".into(),
                        now,
                    );
                    out.extend(self.action_decision(&id, ENGINE));
                }
            }
        }
    }

    /// Forgets finished actions past retention, stale offences, idle guard windows and
    /// cases with nothing left to do.
    fn prune(&mut self, now: TimestampMs) {
        self.st.last_prune = now;
        let retention = self.cfg.retention_ms;
        let old: Vec<String> = self
            .st
            .actions
            .values()
            .filter(|r| {
                r.finished
                    .is_some_and(|f| now.saturating_sub(f) > retention)
            })
            .map(|r| r.action.id.clone())
            .collect();
        for id in old {
            if let Some(r) = self.st.actions.remove(&id) {
                let key = (r.tenant, r.action.target);
                if let Some(ids) = self.st.by_target.get_mut(&key) {
                    ids.retain(|i| i != &id);
                    if ids.is_empty() {
                        self.st.by_target.remove(&key);
                    }
                }
            }
        }
        self.st
            .offences
            .retain(|_, (_, last)| now.saturating_sub(*last) <= OFFENCE_MEMORY_MS);
        self.st.guard.prune(now);
        self.st.reconverge.retain(|_, until| *until > now);
        self.st.cases.retain(|_, c| !c.closed || c.running());
        self.prune_spend();
    }

    /// The executor started an approved action.
    pub fn on_action_started(
        &mut self,
        tenant: &TenantId,
        id: &str,
        _now: TimestampMs,
    ) -> Result<Vec<Decision>, RespondError> {
        let r = self.record_mut(tenant, id)?;
        if r.action.status != ActionStatus::Approved {
            return Err(RespondError::WrongStatus {
                id: id.to_owned(),
                status: r.action.status.to_string(),
                expected: "only an approved action can start",
            });
        }
        r.action.status = ActionStatus::Executing;
        Ok(self.action_decision(id, ENGINE).into_iter().collect())
    }

    /// The executor's outcome. Success starts the TTL; failure escalates per the step's
    /// `on_failure`. A repeated report of a finished action is ignored.
    pub fn on_action_result(
        &mut self,
        tenant: &TenantId,
        id: &str,
        ok: bool,
        message: &str,
        now: TimestampMs,
    ) -> Result<Vec<Decision>, RespondError> {
        let r = self.record_mut(tenant, id)?;
        match r.action.status {
            ActionStatus::Approved | ActionStatus::Executing => {}
            s if r.action.result.is_some() && s != ActionStatus::Rejected => return Ok(Vec::new()),
            s => {
                return Err(RespondError::WrongStatus {
                    id: id.to_owned(),
                    status: s.to_string(),
                    expected: "only an approved or executing action has a result",
                })
            }
        }
        let mut out = Vec::new();
        let case = (r.tenant.clone(), r.action.incident.clone());
        if ok {
            r.action.status = ActionStatus::Succeeded;
            r.action.result = Some(crate::action::ActionResult {
                ok,
                message: message.to_owned(),
                ts: now,
            });
            let ttl_ms = i64::try_from(r.action.ttl)
                .unwrap_or(i64::MAX)
                .saturating_mul(1000);
            r.expires = Some(now.saturating_add(ttl_ms));
            out.extend(self.action_decision(id, ENGINE));
            self.rung_progress(&case, now, &mut out);
        } else {
            self.fail_action(id, message, now, &mut out);
        }
        Ok(out)
    }

    /// The action's effect needs a control point that is not attached
    /// ([`crate::action::EffectPoint::Unattached`]): it ends `recorded` with `message` (what
    /// people must do instead), never `succeeded`; the ladder treats it as not applied (see
    /// `RungOutcome::Recorded`).
    pub fn on_action_recorded(
        &mut self,
        tenant: &TenantId,
        id: &str,
        message: &str,
        now: TimestampMs,
    ) -> Result<Vec<Decision>, RespondError> {
        let r = self.record_mut(tenant, id)?;
        if !matches!(
            r.action.status,
            ActionStatus::Approved | ActionStatus::Executing
        ) {
            return Err(RespondError::WrongStatus {
                id: id.to_owned(),
                status: r.action.status.to_string(),
                expected: "only an approved or executing action can be recorded",
            });
        }
        let case = (r.tenant.clone(), r.action.incident.clone());
        finish(r, ActionStatus::Recorded, false, message.to_owned(), now);
        let mut out: Vec<Decision> = self.action_decision(id, ENGINE).into_iter().collect();
        self.rung_progress(&case, now, &mut out);
        Ok(out)
    }

    /// Marks an action failed and follows its step's `on_failure` (or escalates when it is
    /// no longer part of a running ladder).
    fn fail_action(&mut self, id: &str, message: &str, now: TimestampMs, out: &mut Vec<Decision>) {
        let Some(r) = self.st.actions.get_mut(id) else {
            return;
        };
        let case = (r.tenant.clone(), r.action.incident.clone());
        let ekey = (r.tenant.clone(), r.entity.clone());
        let (kind, on_failure) = (r.action.kind, r.on_failure);
        finish(r, ActionStatus::Failed, false, message.to_owned(), now);
        out.extend(self.action_decision(id, ENGINE));
        let in_rung = self
            .st
            .cases
            .get(&case)
            .and_then(|c| c.plan.as_ref())
            .is_some_and(|p| p.state == PlanState::Running && p.actions.iter().any(|a| a == id));
        let reason = format!("{kind} {id} failed: {message}");
        if in_rung {
            self.rung_failed(Some(&case), &ekey, Some(on_failure), reason, now, out);
        } else {
            out.push(Decision::Escalation {
                tenant: ekey.0,
                entity: ekey.1,
                incident: case.1,
                reason,
            });
        }
    }

    /// All of the running rung's actions finished. When something applied, entity-directed
    /// rungs go on probation (containment holds until its TTL or heal-now) and others wait
    /// for the incident to close; when actions were only recorded, the ladder goes on.
    fn rung_progress(&mut self, case: &Key, now: TimestampMs, out: &mut Vec<Decision>) {
        let Some(rec) = self.st.cases.get(case) else {
            return;
        };
        let Some(plan) = rec.plan.as_ref().filter(|p| p.state == PlanState::Running) else {
            return;
        };
        let contain = match self.rung_outcome(plan) {
            Some(RungOutcome::Worked { contain }) => contain,
            Some(RungOutcome::Recorded(id)) => {
                let ekey = (case.0.clone(), rec.case.entity.clone());
                self.rung_unapplied(case, &ekey, &id, now, out);
                return;
            }
            _ => return,
        };
        let ekey = (case.0.clone(), rec.case.entity.clone());
        if plan.directed {
            if !contain {
                let n = self.layers.policy(&self.cfg, &case.0).probation_samples;
                let reason = format!(
                    "{} succeeded; watching {n} samples",
                    plan.order[plan.pos].kind
                );
                self.transition(&ekey, LifecycleState::Probation, reason, ENGINE, now, out);
            }
        } else if rec.closed {
            let (cause, kind) = (rec.plan_cause(), plan.order[plan.pos].kind);
            self.st
                .memory
                .record(&case.0, &ekey.1, cause, kind, true, now);
            self.st.cases.remove(case);
        }
    }

    /// A sample of an entity on probation: within baseline counts toward healthy (and the
    /// incident that drove it is resolved `healed`), outside fails the running rung.
    pub fn on_sample(
        &mut self,
        tenant: &TenantId,
        entity: &str,
        within_baseline: bool,
        now: TimestampMs,
    ) -> Vec<Decision> {
        let mut out = Vec::new();
        let ekey = (tenant.clone(), entity.to_owned());
        let needed = self.layers.policy(&self.cfg, tenant).probation_samples;
        let case = self.driving_case(&ekey);
        let Some(e) = self
            .st
            .entities
            .get_mut(&ekey)
            .filter(|e| e.state == LifecycleState::Probation)
        else {
            return out;
        };
        if !within_baseline {
            let reason = "sample outside baseline during probation".to_owned();
            self.rung_failed(case.as_ref(), &ekey, None, reason, now, &mut out);
            return out;
        }
        e.good_samples = e.good_samples.saturating_add(1);
        if e.good_samples < needed {
            return out;
        }
        if let Some(case) = &case {
            self.judge_success(case, now);
        }
        let reason = format!("{needed} samples within baseline");
        let healed = self.transition(
            &ekey,
            LifecycleState::Healthy,
            reason.clone(),
            ENGINE,
            now,
            &mut out,
        );
        // The incident that drove the entity is over: healed, not merely quiet. What still
        // waited for a person's approval is moot (a quiet close leaves it waiting: going
        // quiet is no proof).
        if let Some((tenant, incident)) = case.filter(|_| healed) {
            let key = (tenant.clone(), incident.clone());
            let why = format!("incident {incident} resolved healed: {entity} passed probation");
            self.reject_waiting(&key, ENGINE, &why, now, &mut out);
            out.push(Decision::Resolved {
                tenant,
                incident,
                entity: entity.to_owned(),
                resolution: Resolution::Healed,
                reason: format!("{entity} passed probation: {reason}"),
            });
        }
        out
    }

    /// Probation passed: the running rung's arm gets a success and the ladder is done.
    fn judge_success(&mut self, case: &Key, now: TimestampMs) {
        let Some(rec) = self.st.cases.get_mut(case) else {
            return;
        };
        let Some(plan) = rec.plan.as_mut().filter(|p| p.state == PlanState::Running) else {
            return;
        };
        plan.state = PlanState::Done;
        let kind = plan.order[plan.pos].kind;
        self.st
            .memory
            .record(&case.0, &rec.case.entity, rec.plan_cause(), kind, true, now);
        if rec.closed {
            self.st.cases.remove(case);
        }
    }

    /// The running rung's action `id` was only recorded and nothing else applied: the
    /// ladder follows the step's `on_failure`, without a failure in immune memory.
    fn rung_unapplied(
        &mut self,
        case: &Key,
        ekey: &Key,
        id: &str,
        now: TimestampMs,
        out: &mut Vec<Decision>,
    ) {
        let Some(r) = self.st.actions.get(id) else {
            return;
        };
        let why = r
            .action
            .result
            .as_ref()
            .map_or("", |res| res.message.as_str());
        let reason = format!("{} {id} was recorded, not applied: {why}", r.action.kind);
        let on_failure = Some(r.on_failure);
        self.rung_ended(
            Some(case),
            ekey,
            on_failure,
            Ended::Unapplied(reason),
            now,
            out,
        );
    }

    /// The running rung did not work. Records the failure, then follows `on_failure` (the
    /// rung's first step's, unless the failing step's own is given).
    pub(super) fn rung_failed(
        &mut self,
        case: Option<&Key>,
        ekey: &Key,
        on_failure: Option<OnFailure>,
        reason: String,
        now: TimestampMs,
        out: &mut Vec<Decision>,
    ) {
        self.rung_ended(case, ekey, on_failure, Ended::Failed(reason), now, out);
    }

    /// Follows `on_failure` after a rung that did not help.
    fn rung_ended(
        &mut self,
        case: Option<&Key>,
        ekey: &Key,
        on_failure: Option<OnFailure>,
        ended: Ended,
        now: TimestampMs,
        out: &mut Vec<Decision>,
    ) {
        let (reason, judged) = match ended {
            Ended::Failed(reason) => (reason, true),
            Ended::Unapplied(reason) => (reason, false),
        };
        let incident = case.map_or_else(String::new, |c| c.1.clone());
        let rec = case.and_then(|c| self.st.cases.remove(c).map(|r| (c.clone(), r)));
        let (key, mut rec) = match rec {
            Some((key, rec)) if rec.running() => (key, rec),
            other => {
                if let Some((key, rec)) = other {
                    self.st.cases.insert(key, rec);
                }
                self.exhaust(ekey, &incident, Some(reason), now, out);
                return;
            }
        };
        let cause = rec.plan_cause();
        let Some(plan) = rec.plan.as_mut() else {
            self.st.cases.insert(key, rec);
            return;
        };
        let current = plan.order[plan.pos].clone();
        if judged {
            self.st
                .memory
                .record(&ekey.0, &ekey.1, cause, current.kind, false, now);
        }
        let playbook_rule = self
            .playbooks
            .get(&plan.playbook)
            .and_then(|pb| {
                pb.rungs
                    .get(current.rung)
                    .and_then(|r| pb.steps.get(r.start))
            })
            .map(|s| s.on_failure);
        let rule = on_failure.or(playbook_rule).unwrap_or(OnFailure::Escalate);
        let next = rule == OnFailure::Next && plan.pos + 1 < plan.order.len();
        if next {
            plan.pos += 1;
            plan.actions.clear();
            plan.directed = false;
            self.st.cases.insert(key.clone(), rec);
            self.run_rung(&key, now, out);
            return;
        }
        plan.state = PlanState::Stopped;
        // No rung left (and no `stop`): the ladder is spent, the next hypothesis may help.
        let spent = rule != OnFailure::Stop && plan.pos + 1 >= plan.order.len();
        self.st.cases.insert(key.clone(), rec);
        if spent && self.fall_back(&key, &reason, now, out) {
            return;
        }
        let escalation = match rule {
            OnFailure::Stop => None,
            OnFailure::Escalate => Some(reason),
            OnFailure::Next => Some(format!("{reason}; the ladder is spent")),
        };
        let escalation = escalation.map(|r| if spent { self.all_spent(&key, r) } else { r });
        self.exhaust(ekey, &incident, escalation, now, out);
    }
}

/// How a rung that did not help ended.
enum Ended {
    /// It ran and did not work (a failed action, an anomaly on probation).
    Failed(String),
    /// Nothing in it was applied (its action could only be recorded).
    Unapplied(String),
}
