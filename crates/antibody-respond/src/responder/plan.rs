//! Planning: picking the playbook, ordering its ladder, turning the running rung's steps
//! into actions (status, TTL, approval, `why`), and the lifecycle that follows.

use super::{ActionRecord, Approval, CaseRecord, Key, Plan, PlanState, Responder};
use crate::action::{Action, ActionKind, ActionStatus, Mode, TargetKind, Why};
use crate::config::TenantPolicy;
use crate::decision::{Decision, ENGINE};
use crate::diagnose::Cause;
use crate::duration::format_ms;
use crate::lifecycle::LifecycleState;
use crate::playbook::{glob, Playbook};
use antibody_core::{TenantId, TimestampMs};
use std::collections::BTreeMap;
use std::sync::Arc;

/// How a step rendering turned out.
enum Made {
    Created(String),
    Skipped(String),
    Exists,
}

impl Responder {
    /// Starts the ladder of the case at `key` if a playbook matches and its hits are reached.
    pub(super) fn start_plan(&mut self, key: &Key, now: TimestampMs, out: &mut Vec<Decision>) {
        let Some(rec) = self.st.cases.get(key) else {
            return;
        };
        if rec.plan.is_some() || rec.fleet.is_some() {
            return;
        }
        let ekey = (key.0.clone(), rec.case.entity.clone());
        if self.entity_state(&ekey.0, &ekey.1) == LifecycleState::Exhausted {
            // A spent ladder waits for a human (heal-now), not for another ladder.
            return;
        }
        if let Some(d) = self.driving_case(&ekey) {
            if &d != key && self.st.cases.get(&d).is_some_and(CaseRecord::running) {
                return;
            }
        }
        let pbs = Arc::clone(self.playbooks_for(&key.0));
        let asset = self.st.assets.get(&ekey);
        // Kinds a fleet incident explains are not this entity's problem.
        let group = asset.and_then(|a| a.group.as_deref());
        let fleet = &self.st.fleet;
        let kinds = rec
            .case
            .kinds
            .keys()
            .map(String::as_str)
            .filter(|k| group.is_none_or(|g| fleet.covering(&key.0, g, k).is_none()));
        let Some((pb, rule)) = pbs.playbooks().iter().find_map(|pb| {
            pb.matches(
                kinds.clone(),
                Some(rec.cause),
                rec.assessment.risk,
                &ekey.1,
                asset,
            )
            .map(|rule| (pb, rule))
        }) else {
            return;
        };
        if hits(pb, rec) < u64::from(pb.hits) {
            return;
        }
        let (id, cause) = (pb.id.clone(), rec.cause);
        self.begin_plan(key, &id, rule, cause, now, out);
    }

    /// Starts the ladder of playbook `pb_id` for the case at `key`, serving the hypothesis
    /// `cause`; a ladder whose every rung already failed here falls back at once.
    pub(super) fn begin_plan(
        &mut self,
        key: &Key,
        pb_id: &str,
        rule: String,
        cause: Cause,
        now: TimestampMs,
        out: &mut Vec<Decision>,
    ) {
        let pbs = Arc::clone(self.playbooks_for(&key.0));
        let (Some(pb), Some(entity)) = (
            pbs.get(pb_id),
            self.st.cases.get(key).map(|r| r.case.entity.clone()),
        ) else {
            return;
        };
        let ekey = (key.0.clone(), entity);
        let rungs: Vec<(usize, ActionKind)> = pb
            .rungs
            .iter()
            .enumerate()
            .filter_map(|(i, r)| pb.steps.get(r.start).map(|s| (i, s.action)))
            .collect();
        let (order, skipped) =
            self.st
                .memory
                .order(&rungs, &key.0, &ekey.1, cause, &mut self.st.rng);
        for s in &skipped {
            out.push(Decision::Skipped {
                tenant: key.0.clone(),
                entity: ekey.1.clone(),
                incident: key.1.clone(),
                playbook: pb.id.clone(),
                kind: s.kind,
                target: String::new(),
                reason: format!(
                    "{} already failed for this entity and diagnosis `{}`",
                    s.kind,
                    cause.as_str()
                ),
            });
        }
        let empty = order.is_empty();
        let plan = Plan {
            playbook: pb.id.clone(),
            rule,
            order,
            pos: 0,
            actions: Vec::new(),
            directed: false,
            skipped: Vec::new(),
            state: if empty {
                PlanState::Stopped
            } else {
                PlanState::Running
            },
        };
        if let Some(rec) = self.st.cases.get_mut(key) {
            rec.plan = Some(plan);
        }
        if let Some(e) = self.st.entities.get_mut(&ekey) {
            e.incident = Some(key.1.clone());
        }
        if empty {
            let reason = format!(
                "playbook `{}`: every rung already failed for this entity",
                pb.id
            );
            if !self.fall_back(key, &reason, now, out) {
                let reason = self.all_spent(key, reason);
                self.exhaust(&ekey, &key.1, Some(reason), now, out);
            }
        } else {
            self.run_rung(key, now, out);
        }
    }

    /// Creates the running rung's actions that do not exist yet (new targets fan out as the
    /// incident grows) and moves the entity along.
    pub(super) fn run_rung(&mut self, key: &Key, now: TimestampMs, out: &mut Vec<Decision>) {
        let Some(mut rec) = self.st.cases.remove(key) else {
            return;
        };
        let created = self.fill_rung(key, &mut rec, now, out);
        self.st.cases.insert(key.clone(), rec);
        if created > 0 {
            self.rung_lifecycle(key, now, out);
        }
    }

    fn fill_rung(
        &mut self,
        key: &Key,
        rec: &mut CaseRecord,
        now: TimestampMs,
        out: &mut Vec<Decision>,
    ) -> usize {
        let Some(plan) = rec.plan.as_ref().filter(|p| p.state == PlanState::Running) else {
            return 0;
        };
        let pbs = Arc::clone(self.playbooks_for(&key.0));
        let range = pbs.get(&plan.playbook).and_then(|pb| {
            plan.order
                .get(plan.pos)
                .and_then(|o| pb.rungs.get(o.rung))
                .map(|r| (pb, r.clone()))
        });
        let Some((pb, range)) = range else {
            if let Some(p) = rec.plan.as_mut() {
                p.state = PlanState::Stopped;
            }
            return 0;
        };
        let ekey = (key.0.clone(), rec.case.entity.clone());
        let asset = self.st.assets.get(&ekey).cloned();
        let mut made = Vec::new();
        let mut directed = false;
        for step_idx in range {
            let step = &pb.steps[step_idx];
            let targets = match step.target.render(&ekey.1, &rec.case.vars, asset.as_ref()) {
                Ok(t) => t,
                Err(reason) => {
                    let id = action_id(&key.0, &key.1, &pb.id, step_idx, step.target.source());
                    made.push((
                        id,
                        Some(skip(
                            key,
                            rec,
                            pb,
                            step.action,
                            step.target.source(),
                            reason,
                        )),
                    ));
                    continue;
                }
            };
            for target in targets.into_iter().take(self.cfg.max_targets_per_step) {
                directed |= step.action.target_kind() == TargetKind::Entity && target == ekey.1;
                match self.create_action(key, rec, pb, step_idx, target, now, out) {
                    Made::Created(id) => made.push((id, None)),
                    Made::Skipped(id) => made.push((id, None)),
                    Made::Exists => {}
                }
            }
        }
        let Some(plan) = rec.plan.as_mut() else {
            return 0;
        };
        plan.directed |= directed;
        let mut created = 0;
        for (id, skipped) in made {
            match skipped {
                Some(d) if !plan.skipped.contains(&id) => {
                    plan.skipped.push(id);
                    out.push(d);
                }
                Some(_) => {}
                None if self.st.actions.contains_key(&id) => {
                    if !plan.actions.contains(&id) {
                        plan.actions.push(id);
                        created += 1;
                    }
                }
                None => {
                    if !plan.skipped.contains(&id) {
                        plan.skipped.push(id);
                    }
                }
            }
        }
        if self
            .layers
            .policy(&self.cfg, &key.0)
            .mode_for(&pb.id, pb.mode)
            == Mode::DryRun
        {
            plan.state = PlanState::Done;
        }
        created
    }

    #[allow(clippy::too_many_arguments)]
    fn create_action(
        &mut self,
        key: &Key,
        rec: &CaseRecord,
        pb: &Playbook,
        step_idx: usize,
        target: String,
        now: TimestampMs,
        out: &mut Vec<Decision>,
    ) -> Made {
        let step = &pb.steps[step_idx];
        let id = action_id(&key.0, &key.1, &pb.id, step_idx, &target);
        let already_skipped = rec.plan.as_ref().is_some_and(|p| p.skipped.contains(&id));
        if self.st.actions.contains_key(&id) || already_skipped {
            return Made::Exists;
        }
        let policy = self.layers.policy(&self.cfg, &key.0).clone();
        let refusal = match (pb.allow.covering(&target), policy.allow.covering(&target)) {
            (Some(entry), _) => Some(format!("allow-listed by `{entry}` in playbook `{}`", pb.id)),
            (None, Some(entry)) => Some(format!("allow-listed by `{entry}` in the tenant policy")),
            (None, None) => step.action.validate_target(&target).err(),
        };
        if let Some(reason) = refusal {
            out.push(skip(key, rec, pb, step.action, &target, reason));
            return Made::Skipped(id);
        }
        let okey = (key.0.clone(), step.action, target.clone());
        let offence = self.st.offences.get(&okey).map_or(0, |o| o.0);
        let ttl_ms = step.ttl_ms(offence);
        let (status, reason) = self.decide_status(pb, step.action, rec, &policy, &key.0, now);
        if status != ActionStatus::DryRun {
            let o = self.st.offences.entry(okey).or_insert((0, now));
            *o = (o.0.saturating_add(1), now);
        }
        let approval = matches!(
            status,
            ActionStatus::PendingApproval | ActionStatus::Proposed
        )
        .then(|| Approval {
            required: pb.approvers.max(policy.approvers),
            approvers: Vec::new(),
            expires: now.saturating_add(policy.approval_timeout_ms),
            escalated: status == ActionStatus::Proposed,
            reason: reason.clone(),
        });
        let why = why(pb, step_idx, rec, offence, ttl_ms, &reason);
        let action = Action {
            id: id.clone(),
            incident: key.1.clone(),
            kind: step.action,
            target: target.clone(),
            params: step.params.clone(),
            mode: Mode::of_status(status),
            status,
            ttl: u64::try_from(ttl_ms / 1000).unwrap_or(0),
            executor: step
                .executor
                .clone()
                .unwrap_or_else(|| step.action.as_str().to_owned()),
            result: None,
            why,
        };
        let record = ActionRecord {
            tenant: key.0.clone(),
            entity: rec.case.entity.clone(),
            reversible: step.action.is_reversible(&step.params),
            action,
            cause: rec.plan_cause(),
            on_failure: step.on_failure,
            created: now,
            expires: None,
            finished: (status == ActionStatus::DryRun).then_some(now),
            approved_at: (status == ActionStatus::Approved).then_some(now),
            approval,
        };
        self.st
            .by_target
            .entry((key.0.clone(), target))
            .or_default()
            .push(id.clone());
        self.st.actions.insert(id.clone(), record);
        if let Some(d) = self.action_decision(&id, ENGINE) {
            out.push(d);
        }
        Made::Created(id)
    }

    /// The status a new action starts in, and why.
    #[allow(clippy::too_many_arguments)]
    fn decide_status(
        &mut self,
        pb: &Playbook,
        kind: ActionKind,
        rec: &CaseRecord,
        policy: &TenantPolicy,
        tenant: &TenantId,
        now: TimestampMs,
    ) -> (ActionStatus, String) {
        if let Some(held) = policy.hold(
            &pb.id,
            pb.mode,
            kind,
            rec.case.max_sigma,
            rec.assessment.risk,
        ) {
            return held;
        }
        match self.st.guard.check(
            policy.guard.as_ref().unwrap_or(&self.cfg.guard),
            tenant,
            kind,
            now,
        ) {
            Ok(()) => {
                self.st.guard.record(tenant, kind, now);
                (ActionStatus::Approved, "automatic within policy".into())
            }
            Err(trip) => (
                ActionStatus::PendingApproval,
                format!(
                    "blast-radius guard: {} automatic actions per {} in the last minute (cap {})",
                    trip.count, trip.scope, trip.cap
                ),
            ),
        }
    }

    /// After new actions: contain (drain) for containment or severe incidents, heal otherwise.
    fn rung_lifecycle(&mut self, key: &Key, now: TimestampMs, out: &mut Vec<Decision>) {
        let Some(rec) = self.st.cases.get(key) else {
            return;
        };
        let Some(plan) = rec.plan.as_ref().filter(|p| p.directed) else {
            return;
        };
        let policy = self.layers.policy(&self.cfg, &key.0);
        let severe = rec.case.max_sigma >= policy.approval_sigma
            || rec.assessment.risk >= policy.approval_risk;
        let statuses: Vec<(ActionKind, ActionStatus)> = plan
            .actions
            .iter()
            .filter_map(|id| self.st.actions.get(id))
            .map(|r| (r.action.kind, r.action.status))
            .collect();
        let approved = |k: &(ActionKind, ActionStatus)| k.1 == ActionStatus::Approved;
        let contain = severe || statuses.iter().any(|k| approved(k) && k.0.is_containment());
        let any_approved = statuses.iter().any(approved);
        let any_live = statuses
            .iter()
            .any(|k| matches!(k.1, ActionStatus::Approved | ActionStatus::PendingApproval));
        let ekey = (key.0.clone(), rec.case.entity.clone());
        let why = format!("playbook `{}`, incident {}", plan.playbook, key.1);
        let state = self.entity_state(&ekey.0, &ekey.1);
        if contain && any_live && !state.is_contained() {
            self.transition(
                &ekey,
                LifecycleState::Draining,
                format!("containing ({why})"),
                ENGINE,
                now,
                out,
            );
        } else if any_approved && !contain {
            self.transition(
                &ekey,
                LifecycleState::Healing,
                format!("healing ({why})"),
                ENGINE,
                now,
                out,
            );
        }
    }

    /// An escalation's reason, naming the playbooks of every hypothesis tried when there
    /// were fallbacks.
    pub(super) fn all_spent(&self, key: &Key, reason: String) -> String {
        match self.spent_playbooks(key).as_slice() {
            [] | [_] => reason,
            tried => format!(
                "{reason}; every hypothesis's playbook is spent ({})",
                tried.join(", ")
            ),
        }
    }

    /// The ladder is spent or a step said escalate: the entity waits for a human.
    pub(super) fn exhaust(
        &mut self,
        ekey: &Key,
        incident: &str,
        escalation: Option<String>,
        now: TimestampMs,
        out: &mut Vec<Decision>,
    ) {
        let reason = escalation
            .clone()
            .unwrap_or_else(|| "ladder stopped".into());
        self.transition(ekey, LifecycleState::Exhausted, reason, ENGINE, now, out);
        if let Some(reason) = escalation {
            out.push(Decision::Escalation {
                tenant: ekey.0.clone(),
                entity: ekey.1.clone(),
                incident: incident.to_owned(),
                reason,
            });
        }
    }
}

fn skip(
    key: &Key,
    rec: &CaseRecord,
    pb: &Playbook,
    kind: ActionKind,
    target: &str,
    reason: String,
) -> Decision {
    Decision::Skipped {
        tenant: key.0.clone(),
        entity: rec.case.entity.clone(),
        incident: key.1.clone(),
        playbook: pb.id.clone(),
        kind,
        target: target.to_owned(),
        reason,
    }
}

/// Findings that match the trigger's kinds (or all findings for a diagnosis match).
pub(super) fn hits(pb: &Playbook, rec: &CaseRecord) -> u64 {
    let by_kind: u64 = rec
        .case
        .kinds
        .iter()
        .filter(|(k, _)| pb.trigger.kinds.iter().any(|p| glob(p, k)))
        .map(|(_, s)| s.count.max(1))
        .sum();
    if by_kind > 0 {
        by_kind
    } else {
        rec.case.finding_count.max(1)
    }
}

/// Deterministic action id: FNV-1a over tenant, incident, playbook, step and target, so a
/// replayed or repeated decision yields the same id and never runs twice.
pub(super) fn action_id(
    tenant: &TenantId,
    incident: &str,
    playbook: &str,
    step: usize,
    target: &str,
) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let step = step.to_string();
    for part in [tenant.as_str(), incident, playbook, &step, target] {
        for b in part.bytes().chain(std::iter::once(0xff)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("a-{h:016x}")
}

fn why(
    pb: &Playbook,
    step_idx: usize,
    rec: &CaseRecord,
    offence: u32,
    ttl_ms: i64,
    reason: &str,
) -> Why {
    let step = &pb.steps[step_idx];
    let mut numbers = BTreeMap::new();
    let a = &rec.assessment;
    numbers.insert("risk".to_owned(), a.risk);
    numbers.insert("confidence".to_owned(), a.confidence);
    numbers.insert("blast_radius".to_owned(), f64::from(a.blast_radius));
    numbers.insert("criticality".to_owned(), f64::from(a.criticality));
    numbers.insert("sigma".to_owned(), rec.case.max_sigma);
    numbers.insert("offence".to_owned(), f64::from(offence) + 1.0);
    numbers.insert("ttl_s".to_owned(), (ttl_ms / 1000) as f64);
    let mut place = String::new();
    let mut rule = String::new();
    if let Some(plan) = &rec.plan {
        rule.clone_from(&plan.rule);
        if let Some(o) = plan.order.get(plan.pos) {
            numbers.insert("rung".to_owned(), (plan.pos + 1) as f64);
            numbers.insert("rungs".to_owned(), plan.order.len() as f64);
            numbers.insert("playbook_rung".to_owned(), (o.rung + 1) as f64);
            numbers.insert("successes".to_owned(), f64::from(o.arm.successes));
            numbers.insert("failures".to_owned(), f64::from(o.arm.failures));
            let drawn = match o.sample {
                Some(s) => {
                    numbers.insert("thompson_sample".to_owned(), s);
                    format!(
                        "Thompson draw {s:.3} from Beta({}, {})",
                        o.arm.successes + 1,
                        o.arm.failures + 1
                    )
                }
                None => "untried here, kept in the playbook's order".to_owned(),
            };
            place = format!(
                "rung {}/{} (playbook rung {}; {} worked {}× and failed {}× for `{}`; {drawn})",
                plan.pos + 1,
                plan.order.len(),
                o.rung + 1,
                o.kind,
                o.arm.successes,
                o.arm.failures,
                rec.plan_cause().as_str()
            );
        }
    }
    let text = format!(
        "playbook `{}`: {} for {}, {place}; {reason}",
        pb.id,
        step.action,
        format_ms(ttl_ms)
    );
    Why {
        playbook: pb.id.clone(),
        rule: format!("{rule}; step {} ({})", step_idx + 1, step.action),
        text,
        numbers,
    }
}
