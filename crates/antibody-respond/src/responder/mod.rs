//! The [`Responder`]: one state holder that turns incidents, ticks, action results, samples
//! and human answers into [`Decision`]s. Pure and deterministic: time comes in as `now`,
//! randomness from its own seeded generator, and every map is ordered. Its whole state
//! snapshots into a versioned file ([`Responder::snapshot`], format in [`snapshot`]).
//!
//! Fleet correlation needs every entity of a group in one responder: run one per tenant (or
//! one in all), not one per detection partition.
//!
//! ## One incident, step by step
//! 1. The incident's [`Case`] absorbs the update; risk and diagnosis are recomputed and an
//!    `Assessment` decision is emitted when they change.
//! 2. Fleet correlation may open a fleet incident; an incident whose every kind is covered by
//!    one is not acted on, and its entity returns to healthy.
//! 3. The entity becomes `suspected`. The ladder starts at once for a decisive incident (a
//!    rule hit, or σ ≥ `skip_sigma`), otherwise after `suspect_ticks` anomalous ticks.
//! 4. The first playbook whose trigger matches (and whose `hits` are reached) gives the
//!    ladder; immune memory orders its rungs ([`crate::memory`]). Each step of the current
//!    rung renders its target(s) and becomes an action — skipped when allow-listed, waiting
//!    for approval when the mode, the deviation, the risk or the blast-radius guard says so.
//! 5. Actions aimed at the entity itself drive its lifecycle (draining → quarantined for
//!    containment or severe incidents, healing otherwise, probation once they succeeded);
//!    actions aimed elsewhere (an attacker's address) are judged when the incident closes
//!    quietly. Failure moves to the next rung or escalates, per the step's `on_failure`.
//! 6. The incident ends resolved: `healed` when its entity passes probation (a
//!    [`Decision::Resolved`]; the server stops detection adding to it), else, once quiet for a
//!    window, `mitigated` when an action of its ladder took effect and `quiet` when none did.

mod fallback;
mod human;
mod plan;
mod propose;
mod reconverge;
mod resolve;
pub(crate) mod snapshot;
mod tenant;
mod tick;
mod view;

use crate::action::{Action, ActionKind, ActionStatus};
use crate::assess::{assess, Assessment, Case};
use crate::asset::Asset;
use crate::config::ResponderConfig;
use crate::decision::{Decision, ENGINE};
use crate::diagnose::{diagnose, Cause, FeedbackMemory};
use crate::enforce::Spend;
use crate::fleet::FleetState;
use crate::guard::BlastGuard;
use crate::lifecycle::{LifecycleState, Transition};
use crate::memory::{ImmuneMemory, RungOrder};
use crate::playbook::{OnFailure, PlaybookSet};
use crate::rng::SplitMix64;
use crate::RespondError;
use antibody_core::{
    Finding, Hypothesis, Incident, IncidentStatus, Resolution, TenantId, TimestampMs,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

type Key = (TenantId, String);

/// The lifecycle of one entity that is not simply healthy (healthy ones are not stored).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct EntityRecord {
    state: LifecycleState,
    since: TimestampMs,
    /// The incident whose ladder drives the entity.
    incident: Option<String>,
    /// An incident update arrived since the last tick.
    dirty: bool,
    anomalous_ticks: u32,
    drain_until: TimestampMs,
    good_samples: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum PlanState {
    Running,
    Done,
    Stopped,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Plan {
    playbook: String,
    rule: String,
    order: Vec<RungOrder>,
    /// Position in `order` of the running rung.
    pos: usize,
    /// Ids of the running rung's actions.
    actions: Vec<String>,
    /// The running rung acts on the entity itself (drives its lifecycle).
    directed: bool,
    /// Ids of step renderings that were skipped (allow-listed, …), reported once.
    skipped: Vec<String>,
    state: PlanState,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct CaseRecord {
    case: Case,
    assessment: Assessment,
    diagnosis: Vec<Hypothesis>,
    cause: Cause,
    closed: bool,
    fleet: Option<String>,
    plan: Option<Plan>,
    /// Snapshotted as a section of its own, so the state's encoding keeps its shape.
    #[serde(skip)]
    fallback: fallback::Fallback,
}

impl CaseRecord {
    fn running(&self) -> bool {
        self.plan
            .as_ref()
            .is_some_and(|p| p.state == PlanState::Running)
    }

    /// The hypothesis the ladder serves: the leading one, unless it is a fallback's.
    fn plan_cause(&self) -> Cause {
        self.fallback.cause.unwrap_or(self.cause)
    }
}

/// An approval in progress.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Approval {
    pub required: u8,
    /// Key ids of the people who approved so far.
    pub approvers: Vec<String>,
    pub expires: TimestampMs,
    pub escalated: bool,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct ActionRecord {
    tenant: TenantId,
    entity: String,
    action: Action,
    cause: Cause,
    on_failure: OnFailure,
    created: TimestampMs,
    /// When the applied action's TTL runs out.
    expires: Option<TimestampMs>,
    /// When it reached a terminal status (for retention).
    finished: Option<TimestampMs>,
    /// When it became `approved` (the executor's clock starts).
    approved_at: Option<TimestampMs>,
    approval: Option<Approval>,
    reversible: bool,
}

/// The whole state, as snapshotted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct State {
    rng: SplitMix64,
    assets: BTreeMap<Key, Asset>,
    groups: BTreeMap<Key, u32>,
    entities: BTreeMap<Key, EntityRecord>,
    cases: BTreeMap<Key, CaseRecord>,
    actions: BTreeMap<String, ActionRecord>,
    /// (tenant, target) → ids of actions aimed at it, for verdicts.
    by_target: BTreeMap<Key, Vec<String>>,
    /// (tenant, kind, target) → (offences so far, last one), for escalating TTLs.
    offences: BTreeMap<(TenantId, ActionKind, String), (u32, TimestampMs)>,
    memory: ImmuneMemory,
    feedback: FeedbackMemory,
    fleet: FleetState,
    guard: BlastGuard,
    last_prune: TimestampMs,
    /// Healed entities whose baselines re-converge until then ([`reconverge`]); a snapshot
    /// section of its own, so the state's encoding keeps its shape.
    #[serde(skip)]
    reconverge: BTreeMap<Key, TimestampMs>,
}

pub struct Responder {
    cfg: Arc<ResponderConfig>,
    /// The global playbooks; a tenant may have its own set ([`Responder::playbooks_for`]).
    playbooks: Arc<PlaybookSet>,
    layers: tenant::Layers,
    st: State,
    /// Budget caps' spend by action id ([`crate::enforce`]); a second snapshot section, so
    /// snapshots without it still restore.
    spend: BTreeMap<String, Spend>,
}

impl Responder {
    pub fn new(cfg: Arc<ResponderConfig>, playbooks: Arc<PlaybookSet>) -> Self {
        let st = State {
            rng: SplitMix64::new(cfg.seed),
            assets: BTreeMap::new(),
            groups: BTreeMap::new(),
            entities: BTreeMap::new(),
            cases: BTreeMap::new(),
            actions: BTreeMap::new(),
            by_target: BTreeMap::new(),
            offences: BTreeMap::new(),
            memory: ImmuneMemory::default(),
            feedback: FeedbackMemory::default(),
            fleet: FleetState::default(),
            guard: BlastGuard::default(),
            last_prune: 0,
            reconverge: BTreeMap::new(),
        };
        Self {
            cfg,
            playbooks,
            layers: tenant::Layers::default(),
            st,
            spend: BTreeMap::new(),
        }
    }

    /// Swaps the playbook set (after `PUT /v1/playbooks`); running ladders whose playbook
    /// disappeared stop at their current rung.
    pub fn set_playbooks(&mut self, playbooks: Arc<PlaybookSet>) {
        self.playbooks = playbooks;
    }

    pub fn upsert_asset(&mut self, tenant: &TenantId, asset: Asset) -> Result<(), RespondError> {
        asset.validate()?;
        let key = (tenant.clone(), asset.entity.clone());
        let old_group = self.st.assets.get(&key).and_then(|a| a.group.clone());
        self.regroup(tenant, old_group.as_deref(), asset.group.as_deref());
        self.st.assets.insert(key, asset);
        Ok(())
    }

    pub fn remove_asset(&mut self, tenant: &TenantId, entity: &str) -> Option<Asset> {
        let old = self
            .st
            .assets
            .remove(&(tenant.clone(), entity.to_owned()))?;
        self.regroup(tenant, old.group.as_deref(), None);
        Some(old)
    }

    fn regroup(&mut self, tenant: &TenantId, old: Option<&str>, new: Option<&str>) {
        if old == new {
            return;
        }
        if let Some(g) = old {
            let key = (tenant.clone(), g.to_owned());
            if let Some(n) = self.st.groups.get_mut(&key) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.st.groups.remove(&key);
                }
            }
        }
        if let Some(g) = new {
            *self
                .st
                .groups
                .entry((tenant.clone(), g.to_owned()))
                .or_insert(0) += 1;
        }
    }

    pub fn asset(&self, tenant: &TenantId, entity: &str) -> Option<&Asset> {
        self.st.assets.get(&(tenant.clone(), entity.to_owned()))
    }

    /// A tenant's assets in entity order.
    pub fn assets<'a>(&'a self, tenant: &'a TenantId) -> impl Iterator<Item = &'a Asset> + 'a {
        self.st
            .assets
            .range((tenant.clone(), String::new())..)
            .take_while(move |((t, _), _)| t == tenant)
            .map(|(_, a)| a)
    }

    /// An analyst named the root cause of an incident with these finding kinds.
    pub fn feedback(
        &mut self,
        tenant: &TenantId,
        kinds: &[String],
        root_cause: &str,
    ) -> Result<Cause, RespondError> {
        self.st.feedback.record(tenant, kinds, root_cause)
    }

    /// The tenant's entities that are not simply healthy, by name, with their state.
    pub fn entity_states<'a>(
        &'a self,
        tenant: &'a TenantId,
    ) -> impl Iterator<Item = (&'a str, LifecycleState)> + 'a {
        self.st
            .entities
            .range((tenant.clone(), String::new())..)
            .take_while(move |((t, _), _)| t == tenant)
            .map(|((_, e), r)| (e.as_str(), r.state))
    }

    pub fn entity_state(&self, tenant: &TenantId, entity: &str) -> LifecycleState {
        self.st
            .entities
            .get(&(tenant.clone(), entity.to_owned()))
            .map_or(LifecycleState::Healthy, |e| e.state)
    }

    pub fn action(&self, tenant: &TenantId, id: &str) -> Option<&Action> {
        self.st
            .actions
            .get(id)
            .filter(|r| &r.tenant == tenant)
            .map(|r| &r.action)
    }

    /// A tenant's remembered actions (ordered by id), optionally of one status.
    pub fn actions<'a>(
        &'a self,
        tenant: &'a TenantId,
        status: Option<ActionStatus>,
    ) -> impl Iterator<Item = &'a Action> + 'a {
        self.st
            .actions
            .values()
            .filter(move |r| &r.tenant == tenant && status.is_none_or(|s| r.action.status == s))
            .map(|r| &r.action)
    }

    /// A tenant's applied (`succeeded`) actions, each with the entity it was decided for
    /// (whose asset its executor was given).
    pub fn applied_actions<'a>(
        &'a self,
        tenant: &'a TenantId,
    ) -> impl Iterator<Item = (&'a str, &'a Action)> + 'a {
        self.st
            .actions
            .values()
            .filter(move |r| &r.tenant == tenant && r.action.status == ActionStatus::Succeeded)
            .map(|r| (r.entity.as_str(), &r.action))
    }

    /// The approval state of a pending action.
    pub fn approval(&self, tenant: &TenantId, id: &str) -> Option<&Approval> {
        self.st
            .actions
            .get(id)
            .filter(|r| &r.tenant == tenant)
            .and_then(|r| r.approval.as_ref())
    }

    /// Should the server feed this entity's events to [`Responder::on_sample`] (probation)
    /// and their cost to [`Responder::on_spend`] (a budget cap)?
    pub fn wants_samples(&self, tenant: &TenantId, entity: &str) -> bool {
        self.entity_state(tenant, entity) == LifecycleState::Probation
            || self.capped(tenant, entity)
    }

    /// Takes an incident update (or its closing) with the findings that joined it in this
    /// step, and decides.
    pub fn on_incident(
        &mut self,
        incident: &Incident,
        findings: &[Finding],
        now: TimestampMs,
    ) -> Vec<Decision> {
        let mut out = Vec::new();
        let key = (incident.tenant.clone(), incident.id.clone());
        if incident.status == IncidentStatus::Resolved {
            self.close_case(&key, incident, findings, now, &mut out);
            return out;
        }
        // A version already absorbed (the engine replays its log tail after a crash) is no
        // news: judged again, it would fail a probation on an anomaly already acted on.
        let seen = self.st.cases.get(&key).is_some_and(|r| {
            r.case.finding_count >= incident.finding_count && r.case.updated >= incident.updated
        });
        if seen {
            return out;
        }
        let Some(mut rec) = self.absorb(&key, incident, findings, &mut out) else {
            return out;
        };
        let ekey = (incident.tenant.clone(), incident.entity.clone());
        if self.fleet_covers(&ekey, &mut rec, findings, now, &mut out) {
            self.st.cases.insert(key, rec);
            return out;
        }
        self.st.cases.insert(key.clone(), rec);
        self.mark_anomalous(&ekey, &key, now, &mut out);
        let decisive = self.st.cases.get(&key).is_some_and(|r| {
            r.case.has_rule_finding
                || r.case.max_sigma >= self.layers.policy(&self.cfg, &key.0).skip_sigma
        });
        let planned = self.st.cases.get(&key).is_some_and(|r| r.plan.is_some());
        if planned {
            self.run_rung(&key, now, &mut out);
        } else if decisive {
            self.start_plan(&key, now, &mut out);
        }
        out
    }

    /// Folds the update into its case and emits a changed assessment.
    fn absorb(
        &mut self,
        key: &Key,
        incident: &Incident,
        findings: &[Finding],
        out: &mut Vec<Decision>,
    ) -> Option<CaseRecord> {
        let mut rec = match self.st.cases.remove(key) {
            Some(r) => r,
            None => CaseRecord {
                case: Case::new(incident),
                assessment: Assessment {
                    risk: -1.0,
                    confidence: 0.0,
                    blast_radius: 0,
                    criticality: 0,
                },
                diagnosis: Vec::new(),
                cause: Cause::Unknown,
                closed: false,
                fleet: None,
                plan: None,
                fallback: fallback::Fallback::default(),
            },
        };
        rec.case.absorb(incident, findings);
        let asset = self
            .st
            .assets
            .get(&(key.0.clone(), incident.entity.clone()));
        let assessment = assess(&rec.case, asset);
        let diagnosis = diagnose(rec.case.diagnosis_scores(), &key.0, &self.st.feedback);
        if assessment != rec.assessment || diagnosis != rec.diagnosis {
            rec.cause = diagnosis
                .first()
                .and_then(|h| Cause::parse(&h.cause))
                .unwrap_or(Cause::Unknown);
            out.push(Decision::Assessment {
                tenant: key.0.clone(),
                incident: key.1.clone(),
                entity: incident.entity.clone(),
                assessment,
                diagnosis: diagnosis.clone(),
            });
            rec.assessment = assessment;
            rec.diagnosis = diagnosis;
        }
        Some(rec)
    }

    /// Feeds fleet correlation; true when every kind of the case is covered by a fleet
    /// incident (then nothing is done for the entity itself).
    fn fleet_covers(
        &mut self,
        ekey: &Key,
        rec: &mut CaseRecord,
        findings: &[Finding],
        now: TimestampMs,
        out: &mut Vec<Decision>,
    ) -> bool {
        let Some(group) = self.st.assets.get(ekey).and_then(|a| a.group.clone()) else {
            return false;
        };
        let size = self
            .st
            .groups
            .get(&(ekey.0.clone(), group.clone()))
            .copied()
            .unwrap_or(1);
        let cfg = Arc::clone(&self.cfg);
        for f in findings.iter().filter(|f| cfg.fleet.eligible(&f.kind)) {
            let opened = self
                .st
                .fleet
                .observe(&cfg.fleet, &ekey.0, &group, size, &f.kind, &ekey.1, f.ts);
            if let Some(fi) = opened {
                for member in &fi.entities {
                    self.relieve(&(ekey.0.clone(), member.clone()), &fi.id, now, out);
                }
                out.push(Decision::Fleet(fi));
            }
        }
        let covering = rec
            .case
            .kinds
            .keys()
            .map(|k| {
                self.st
                    .fleet
                    .covering(&ekey.0, &group, k)
                    .map(|f| f.id.clone())
            })
            .collect::<Option<Vec<String>>>();
        rec.fleet = covering.and_then(|ids| ids.into_iter().next());
        rec.fleet.is_some() && !rec.running()
    }

    /// A fleet incident explains this entity's anomaly: stand down if nothing runs yet.
    fn relieve(&mut self, ekey: &Key, fleet_id: &str, now: TimestampMs, out: &mut Vec<Decision>) {
        let Some(e) = self.st.entities.get(ekey) else {
            return;
        };
        let running = e.incident.as_ref().is_some_and(|i| {
            self.st
                .cases
                .get(&(ekey.0.clone(), i.clone()))
                .is_some_and(CaseRecord::running)
        });
        if e.state == LifecycleState::Suspected && !running {
            let reason = format!("explained by fleet incident {fleet_id}");
            self.transition(ekey, LifecycleState::Healthy, reason, ENGINE, now, out);
        }
    }

    /// An incident update is an anomalous sample for the entity.
    fn mark_anomalous(&mut self, ekey: &Key, key: &Key, now: TimestampMs, out: &mut Vec<Decision>) {
        let state = self.entity_state(&ekey.0, &ekey.1);
        match state {
            LifecycleState::Healthy | LifecycleState::Initializing => {
                let reason = format!("incident {} opened", key.1);
                self.transition(ekey, LifecycleState::Suspected, reason, ENGINE, now, out);
            }
            LifecycleState::Probation => {
                let driving = self.driving_case(ekey).unwrap_or_else(|| key.clone());
                let reason = format!("anomaly during probation (incident {})", key.1);
                self.rung_failed(Some(&driving), ekey, None, reason, now, out);
            }
            _ => {}
        }
        let busy = self
            .driving_case(ekey)
            .and_then(|k| self.st.cases.get(&k))
            .is_some_and(CaseRecord::running);
        if let Some(e) = self.st.entities.get_mut(ekey) {
            e.dirty = true;
            if !busy {
                e.incident = Some(key.1.clone());
            }
        }
    }

    /// The case whose ladder drives the entity.
    fn driving_case(&self, ekey: &Key) -> Option<Key> {
        let e = self.st.entities.get(ekey)?;
        e.incident.as_ref().map(|i| (ekey.0.clone(), i.clone()))
    }

    fn close_case(
        &mut self,
        key: &Key,
        incident: &Incident,
        findings: &[Finding],
        now: TimestampMs,
        out: &mut Vec<Decision>,
    ) {
        let Some(mut rec) = self.st.cases.remove(key) else {
            return;
        };
        rec.case.absorb(incident, findings);
        rec.closed = true;
        let ekey = (key.0.clone(), incident.entity.clone());
        // A ladder aimed elsewhere (an attacker's address) worked if the incident went quiet.
        let mut judged = false;
        let mut directed = false;
        let outcome = rec
            .plan
            .as_ref()
            .filter(|p| p.state == PlanState::Running)
            .and_then(|p| self.rung_outcome(p));
        let cause = rec.plan_cause();
        let acted = matches!(outcome, Some(RungOutcome::Worked { .. }))
            || rec
                .plan
                .as_ref()
                .is_some_and(|p| p.state == PlanState::Done);
        if let Some(plan) = rec.plan.as_mut().filter(|p| p.state == PlanState::Running) {
            directed = plan.directed;
            match outcome {
                Some(RungOutcome::Worked { .. }) if !directed => {
                    let kind = plan.order[plan.pos].kind;
                    self.st
                        .memory
                        .record(&key.0, &ekey.1, cause, kind, true, now);
                    plan.state = PlanState::Done;
                    judged = true;
                }
                Some(RungOutcome::Nothing | RungOutcome::Recorded(_)) => {
                    plan.state = PlanState::Stopped
                }
                _ => {}
            }
        }
        let running = rec.running();
        let drives = self.driving_case(&ekey).is_none_or(|k| &k == key);
        if running {
            self.st.cases.insert(key.clone(), rec);
        }
        let quiet = !running || !directed;
        if (judged || drives)
            && quiet
            && self.entity_state(&ekey.0, &ekey.1) == LifecycleState::Suspected
        {
            let reason = format!("incident {} closed", key.1);
            self.transition(&ekey, LifecycleState::Healthy, reason, ENGINE, now, out);
        }
        let (resolution, reason) = if acted {
            (Resolution::Mitigated, "quiet after an action took effect")
        } else {
            (
                Resolution::Quiet,
                "quiet for a full window; no action took effect",
            )
        };
        out.push(Decision::Resolved {
            tenant: key.0.clone(),
            incident: key.1.clone(),
            entity: ekey.1,
            resolution,
            reason: reason.to_owned(),
        });
    }

    /// Moves an entity along the lifecycle if the guard allows; returns whether it moved.
    fn transition(
        &mut self,
        ekey: &Key,
        to: LifecycleState,
        reason: String,
        actor: &str,
        now: TimestampMs,
        out: &mut Vec<Decision>,
    ) -> bool {
        let drain_ms = self.layers.policy(&self.cfg, &ekey.0).drain_ms;
        let e = self
            .st
            .entities
            .entry(ekey.clone())
            .or_insert(EntityRecord {
                state: LifecycleState::Healthy,
                since: now,
                incident: None,
                dirty: false,
                anomalous_ticks: 0,
                drain_until: 0,
                good_samples: 0,
            });
        let from = e.state;
        if !from.can_go(to) {
            if from == LifecycleState::Healthy {
                self.st.entities.remove(ekey);
            }
            return false;
        }
        e.state = to;
        e.since = now;
        match to {
            LifecycleState::Suspected => e.anomalous_ticks = 0,
            LifecycleState::Draining => e.drain_until = now.saturating_add(drain_ms),
            LifecycleState::Probation => e.good_samples = 0,
            _ => {}
        }
        out.push(Decision::Transition(Transition {
            tenant: ekey.0.clone(),
            entity: ekey.1.clone(),
            from,
            to,
            reason,
            ts: now,
            actor: actor.to_owned(),
        }));
        if to == LifecycleState::Healthy {
            self.st.entities.remove(ekey);
        }
        true
    }

    fn action_decision(&self, id: &str, actor: &str) -> Option<Decision> {
        let r = self.st.actions.get(id)?;
        Some(Decision::Action {
            tenant: r.tenant.clone(),
            entity: r.entity.clone(),
            actor: actor.to_owned(),
            action: r.action.clone(),
        })
    }
}

/// Where the running rung stands, once none of its actions is waiting or running.
enum RungOutcome {
    /// At least one action applied (the rest were rejected, undone or only recorded).
    Worked { contain: bool },
    /// Nothing was applied: every action was rejected or undone.
    Nothing,
    /// Nothing was applied and this action was only recorded: its effect needs a control
    /// point that is not attached. The rung did not help, so the ladder goes on as after a
    /// failure (next rung, or escalate to the people who must carry it out) — but immune
    /// memory counts no failure, because the action never ran.
    Recorded(String),
}

impl Responder {
    /// `None` while an action of the rung is still proposed, pending, approved or running.
    fn rung_outcome(&self, plan: &Plan) -> Option<RungOutcome> {
        let (mut worked, mut contain, mut recorded) = (false, false, None);
        for id in &plan.actions {
            let r = self.st.actions.get(id)?;
            match r.action.status {
                ActionStatus::Succeeded | ActionStatus::Expired => {
                    worked = true;
                    contain |= r.action.kind.is_containment();
                }
                ActionStatus::Recorded => recorded = recorded.or(Some(id)),
                ActionStatus::Rejected | ActionStatus::Undone => {}
                _ => return None,
            }
        }
        Some(match recorded {
            _ if worked => RungOutcome::Worked { contain },
            Some(id) => RungOutcome::Recorded(id.clone()),
            None => RungOutcome::Nothing,
        })
    }
}

/// The action has effect now (approved or applied, and not past its TTL).
fn in_force(r: &ActionRecord, now: TimestampMs) -> bool {
    matches!(
        r.action.status,
        ActionStatus::Approved | ActionStatus::Executing | ActionStatus::Succeeded
    ) && r.expires.is_none_or(|t| now < t)
}

#[cfg(test)]
mod tests {
    use super::plan::action_id;
    use super::*;

    fn responder() -> Responder {
        let pbs = PlaybookSet::default_pack().unwrap();
        Responder::new(Arc::new(ResponderConfig::default()), Arc::new(pbs))
    }

    #[test]
    fn action_ids_are_stable_and_distinct() {
        let t = TenantId::new("t");
        let a = action_id(&t, "i-1", "brute-force", 0, "1.2.3.4");
        assert_eq!(a, action_id(&t, "i-1", "brute-force", 0, "1.2.3.4"));
        assert_ne!(a, action_id(&t, "i-1", "brute-force", 0, "1.2.3.5"));
        assert_ne!(
            a,
            action_id(&TenantId::new("u"), "i-1", "brute-force", 0, "1.2.3.4")
        );
        // Field boundaries are part of the hash.
        assert_ne!(
            action_id(&t, "i-1", "ab", 0, "c"),
            action_id(&t, "i-1", "a", 0, "bc")
        );
        assert!(a.starts_with("a-") && a.len() == 18);
    }

    #[test]
    fn group_sizes_follow_assets() {
        let mut r = responder();
        let t = TenantId::new("t");
        for e in ["a", "b"] {
            let mut asset = Asset::new(e);
            asset.group = Some("g".into());
            r.upsert_asset(&t, asset).unwrap();
        }
        let key = (t.clone(), "g".to_owned());
        assert_eq!(r.st.groups[&key], 2);
        r.upsert_asset(&t, Asset::new("a")).unwrap();
        assert_eq!(r.st.groups[&key], 1);
        r.remove_asset(&t, "b");
        assert!(!r.st.groups.contains_key(&key));
    }

    /// An update of incident `i-1` of `agent:a` carrying one decisive token spike.
    fn spike(ts: TimestampMs) -> (Incident, Finding) {
        use crate::assess::tests::{finding, incident};
        let evidence = serde_json::json!({"metric": "tokens", "sigma": 7.5});
        let f = finding("agent:a", "token_spike", "baseline", 0.9, evidence);
        let inc = incident("agent:a", antibody_core::Severity::High, &["token_spike"]);
        (inc, Finding { ts, ..f })
    }

    #[test]
    fn passing_probation_resolves_the_driving_incident_healed() {
        let mut cfg = ResponderConfig::default();
        cfg.policy.approval_sigma = 8.0;
        let pbs = PlaybookSet::default_pack().unwrap();
        let mut r = Responder::new(Arc::new(cfg), Arc::new(pbs));
        let t = TenantId::new("t");
        let (inc, f) = spike(1_000);
        let ds = r.on_incident(&inc, &[f], 1_000);
        let id = ds
            .iter()
            .find_map(|d| match d {
                Decision::Action { action, .. } => Some(action.id.clone()),
                _ => None,
            })
            .unwrap();
        r.on_action_result(&t, &id, true, "ok", 2_000).unwrap();
        assert_eq!(r.entity_state(&t, "agent:a"), LifecycleState::Probation);
        // A late proposal still waits for a person when the entity heals: it is moot then.
        let proposal = crate::investigate::Proposal {
            step: 1,
            kind: crate::action::ActionKind::Quarantine,
            target: "agent:a".into(),
            params: Default::default(),
            ttl_ms: 3_600_000,
            why: String::new(),
        };
        let asked = r.propose(&t, "i-1", "m", &[proposal], 2_500);
        let waiting = asked
            .iter()
            .find_map(|d| match d {
                Decision::Action { action, .. } => Some(action.id.clone()),
                _ => None,
            })
            .unwrap();
        assert_eq!(
            r.action(&t, &waiting).unwrap().status,
            ActionStatus::PendingApproval
        );
        let resolved = |ds: &[Decision]| {
            ds.iter()
                .filter(|d| matches!(d, Decision::Resolved { .. }))
                .cloned()
                .collect::<Vec<_>>()
        };
        for i in 0..4 {
            assert!(resolved(&r.on_sample(&t, "agent:a", true, 3_000 + i)).is_empty());
        }
        let ds = r.on_sample(&t, "agent:a", true, 3_004);
        assert_eq!(r.entity_state(&t, "agent:a"), LifecycleState::Healthy);
        assert_eq!(
            resolved(&ds),
            vec![Decision::Resolved {
                tenant: t.clone(),
                incident: "i-1".into(),
                entity: "agent:a".into(),
                resolution: Resolution::Healed,
                reason: "agent:a passed probation: 5 samples within baseline".into(),
            }]
        );
        assert_eq!(resolved(&ds)[0].audit_record(9).kind, "incident");
        assert_eq!(
            r.action(&t, &waiting).unwrap().status,
            ActionStatus::Rejected
        );
        // The sealed incident's last version then closes the case as done, not again healed.
        let closed = Incident {
            status: IncidentStatus::Resolved,
            ..inc
        };
        let ds = r.on_incident(&closed, &[], 5_000);
        assert!(matches!(
            resolved(&ds)[..],
            [Decision::Resolved {
                resolution: Resolution::Mitigated,
                ..
            }]
        ));
    }

    #[test]
    fn unknown_entities_are_healthy_and_allowed() {
        let r = responder();
        let t = TenantId::new("t");
        assert_eq!(r.entity_state(&t, "agent:x"), LifecycleState::Healthy);
        assert!(!r.wants_samples(&t, "agent:x"));
        assert!(r.enforcement_sources(&t).is_empty());
    }
}
