//! The learned arm: per open incident and step, the policy picks wait, ask a human, or one
//! permitted action ([`crate::permit`]); held actions go to an analyst first. In training it
//! explores (ε-greedy) and every decision is credited with the cost that followed it.

use crate::env::{Choice, Env, Outcome, Step, World};
use crate::offpolicy::Logged;
use crate::permit::{self, asset_of, Candidate, Tracker};
use crate::policy::{options, Arm, Context, Features, Policy};
use crate::scenario::{Member, Scenario};
use antibody_core::rng::SplitMix64;
use antibody_core::{Finding, Incident, TimestampMs};
use antibody_respond::guard::{BlastGuard, GuardConfig};
use antibody_respond::{PlaybookErrors, PlaybookSet, PlaybookSource, TenantPolicy};
use std::collections::BTreeMap;
use std::sync::Arc;

/// What both arms share: the world, the tenant's playbooks (default pack plus the
/// simulator's alternatives, which rank below it) and its policy.
#[derive(Clone)]
pub struct Setup {
    pub world: World,
    pub playbooks: Arc<PlaybookSet>,
    pub policy: TenantPolicy,
    pub guard: GuardConfig,
}

impl Setup {
    pub fn new() -> Result<Self, PlaybookErrors> {
        let mut sources = vec![PlaybookSource::new(
            "sim/sim.yml",
            include_str!("../playbooks/sim.yml"),
        )];
        sources.extend(PlaybookSet::default_sources());
        Ok(Self {
            world: World::default(),
            playbooks: Arc::new(PlaybookSet::load(&sources)?),
            policy: TenantPolicy::default(),
            guard: GuardConfig::default(),
        })
    }
}

/// One episode's result for either arm.
#[derive(Debug, Default)]
pub struct Run {
    pub outcome: Outcome,
    /// Actions that ran although not permitted (must stay 0).
    pub unsafe_actions: u32,
    /// Each decision: context, arms offered, arm taken, its probability, step.
    pub decisions: Vec<Decided>,
    /// Cost of each step.
    pub costs: Vec<f64>,
    /// JSON lines, when asked for.
    pub log: Vec<serde_json::Value>,
}

#[derive(Clone, Debug)]
pub struct Decided {
    pub context: Context,
    pub options: Vec<Arm>,
    pub taken: Arm,
    pub propensity: f64,
    pub step: usize,
}

impl Run {
    /// The decisions with their returns: minus the cost from the step to the end.
    pub fn logged(&self) -> Vec<Logged> {
        let mut to_go = vec![0.0; self.costs.len() + 1];
        for i in (0..self.costs.len()).rev() {
            to_go[i] = to_go[i + 1] + self.costs[i];
        }
        self.decisions
            .iter()
            .map(|d| Logged {
                context: d.context,
                options: d.options.clone(),
                taken: d.taken,
                propensity: d.propensity,
                ret: -to_go[d.step.min(self.costs.len())],
            })
            .collect()
    }

    /// Credits each decision with its return.
    pub fn credit(&self, policy: &mut Policy) {
        for l in self.logged() {
            policy.update(l.context, l.taken, l.ret);
        }
    }
}

#[derive(Default)]
struct IncState {
    attempts: u32,
    last_failed: bool,
    pending: Option<Pending>,
    /// Actions that ran or were refused here: not offered again.
    done: Vec<(antibody_respond::ActionKind, String)>,
}

enum Pending {
    Approval(u64, Candidate),
    Running(u64),
    Human,
}

/// Joins each incident update with the findings of the step that joined it.
pub(crate) fn joined(inc: &Incident, findings: &[Finding]) -> Vec<Finding> {
    findings
        .iter()
        .filter(|f| f.incident.as_deref() == Some(inc.id.as_str()))
        .cloned()
        .collect()
}

/// Share of the entity's group with an open incident.
fn group_share(fleet: &[Member], tracker: &Tracker, entity: &str) -> f64 {
    let Some(group) = fleet
        .iter()
        .find(|m| m.entity == entity)
        .and_then(|m| m.group.as_deref())
    else {
        return 0.0;
    };
    let members: Vec<&str> = fleet
        .iter()
        .filter(|m| m.group.as_deref() == Some(group))
        .map(|m| m.entity.as_str())
        .collect();
    let hit = members
        .iter()
        .filter(|e| tracker.open.values().any(|t| t.case.entity == **e))
        .count();
    hit as f64 / members.len().max(1) as f64
}

/// The features of a decision on incident `t`.
pub fn features(
    t: &permit::Tracked,
    share: f64,
    attempts: u32,
    last_failed: bool,
    now: TimestampMs,
) -> Features {
    Features {
        cause: t.cause,
        confidence: t.cause_confidence,
        sigma: t.case.max_sigma,
        criticality: t.assessment.criticality,
        group_share: share,
        attempts,
        last_failed,
        since_detection_s: (now - t.opened).max(0) as f64 / 1e3,
    }
}

/// Runs one episode with `policy`; explores with probability `explore.0` when given.
pub fn episode(
    setup: &Setup,
    scenario: Scenario,
    seed: u64,
    policy: &Policy,
    mut explore: Option<(f64, &mut SplitMix64)>,
    log: bool,
) -> Run {
    let mut env = Env::new(setup.world.clone(), scenario);
    let mut obs = env.reset(seed);
    let mut tracker = Tracker::default();
    let mut guard = BlastGuard::default();
    let mut states: BTreeMap<String, IncState> = BTreeMap::new();
    let mut run = Run::default();
    let mut approved: Vec<(String, Candidate)> = Vec::new();
    let mut ticket = 0u64;
    // One human investigates the whole episode; asking twice buys nothing.
    let mut asked = false;
    for step in 0.. {
        for inc in &obs.incidents {
            tracker.absorb(inc, &joined(inc, &obs.findings), env.fleet());
        }
        let mut choices = Vec::new();
        let mut whys = Vec::new();
        let now = obs.now;
        // Actions an analyst approved run now, if still permitted.
        for (id, c) in std::mem::take(&mut approved) {
            let (Some(t), Some(s)) = (tracker.open.get(&id), states.get_mut(&id)) else {
                continue;
            };
            let asset = asset_of(env.fleet(), &t.case.entity);
            let cands = permitted(setup, &mut guard, &env, t, asset.as_ref(), now);
            if !permit::allows(&cands, c.kind, &c.target, true) {
                s.pending = None;
                continue;
            }
            ticket += 1;
            s.pending = Some(Pending::Running(ticket));
            choices.push(act(ticket, &c));
        }
        for (id, t) in &tracker.open {
            let s = states.entry(id.clone()).or_default();
            if s.pending.is_some() {
                continue;
            }
            let asset = asset_of(env.fleet(), &t.case.entity);
            let mut cands = permitted(setup, &mut guard, &env, t, asset.as_ref(), now);
            cands.retain(|c| !s.done.iter().any(|(k, tg)| *k == c.kind && *tg == c.target));
            let share = group_share(env.fleet(), &tracker, &t.case.entity);
            let f = features(t, share, s.attempts, s.last_failed, now);
            let why = policy.choose(&f, &cands, !asked);
            let opts = options(&cands, !asked);
            let mut pick = why.chosen;
            let mut propensity = 1.0;
            if let Some((eps, rng)) = explore.as_mut() {
                if rng.unit() < *eps {
                    pick = rng.below(opts.len() as u64) as usize;
                }
                let greedy = if pick == why.chosen { 1.0 - *eps } else { 0.0 };
                propensity = *eps / opts.len() as f64 + greedy;
            }
            let (arm, cand) = opts[pick];
            run.decisions.push(Decided {
                context: why.context,
                options: opts.iter().map(|(a, _)| *a).collect(),
                taken: arm,
                propensity,
                step,
            });
            match (arm, cand) {
                (Arm::Ask, _) => {
                    asked = true;
                    s.pending = Some(Pending::Human);
                    choices.push(Choice::AskHuman);
                }
                (Arm::Act(..), Some(c)) if c.approval.is_some() => {
                    ticket += 1;
                    s.pending = Some(Pending::Approval(ticket, c.clone()));
                    s.done.push((c.kind, c.target.clone()));
                    choices.push(Choice::Request {
                        ticket,
                        kind: c.kind,
                        target: c.target.clone(),
                    });
                }
                (Arm::Act(..), Some(c)) => {
                    if !permit::allows(&cands, c.kind, &c.target, false) {
                        run.unsafe_actions += 1;
                    }
                    guard.record(env.tenant(), c.kind, now);
                    s.done.push((c.kind, c.target.clone()));
                    ticket += 1;
                    s.pending = Some(Pending::Running(ticket));
                    choices.push(act(ticket, c));
                }
                _ => {}
            }
            if log {
                whys.push((id.clone(), why));
            }
        }
        let st = env.step(&choices);
        settle(&st, &mut states, &mut approved);
        run.costs.push(st.cost.total());
        if log {
            run.log.push(serde_json::json!({
                "type": "step", "arm": "learned", "scenario": scenario.as_str(), "seed": seed,
                "step": step, "choices": choices, "why": whys.iter().map(|(i, w)| serde_json::json!({"incident": i, "why": w})).collect::<Vec<_>>(),
                "findings": st.obs.findings.len(), "cost": st.cost, "done": st.done,
            }));
        }
        if st.done {
            break;
        }
        obs = st.obs;
    }
    run.outcome = env.outcome().clone();
    run
}

fn act(ticket: u64, c: &Candidate) -> Choice {
    Choice::Act {
        ticket,
        kind: c.kind,
        target: c.target.clone(),
    }
}

fn permitted(
    setup: &Setup,
    guard: &mut BlastGuard,
    env: &Env,
    t: &permit::Tracked,
    asset: Option<&antibody_respond::Asset>,
    now: TimestampMs,
) -> Vec<Candidate> {
    permit::permitted(
        &setup.playbooks,
        &setup.policy,
        &setup.guard,
        guard,
        env.tenant(),
        t,
        asset,
        now,
    )
}

/// Applies executor results and analysts' answers to the incidents waiting on them.
fn settle(
    st: &Step,
    states: &mut BTreeMap<String, IncState>,
    approved: &mut Vec<(String, Candidate)>,
) {
    for (id, s) in states.iter_mut() {
        match &s.pending {
            Some(Pending::Running(t)) => {
                if let Some(c) = st.completions.iter().find(|c| c.ticket == *t) {
                    s.attempts += 1;
                    s.last_failed = !c.ok;
                    s.pending = None;
                }
            }
            Some(Pending::Approval(t, cand)) => {
                if let Some(a) = st.answers.iter().find(|a| a.ticket == *t) {
                    if a.approved {
                        approved.push((id.clone(), cand.clone()));
                    } else {
                        s.attempts += 1;
                        s.last_failed = true;
                        s.pending = None;
                    }
                }
            }
            Some(Pending::Human) | None => {}
        }
    }
}
