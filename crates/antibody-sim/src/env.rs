//! The gym-like environment: [`Env::reset`] draws a fleet and the hidden truth of a scenario
//! from a seed and warms the real detection engine up on normal traffic; [`Env::step`] applies
//! the agent's choices, advances the world one step of [`STEP_MS`], feeds that step's events
//! through the real [`Partition`], and returns what the engine saw, the step's cost and the
//! replies that arrived (executor results, analysts' answers).
//!
//! Observation: the engine's findings, incident updates and probation samples of the step
//! (exactly what `serve` would hand the responder). The ground truth is never observed.
//!
//! Reward: minus the step's cost, the sum of
//! * damage — while the cause acts: scenario rate × remaining intensity × criticality / 3;
//! * downtime — per entity out of service: 0.5 × criticality / 3; plus 0.5 per step the
//!   world has not recovered (so time to recover is paid for directly);
//! * collateral — per step of a side effect in force (1.5 for good users blocked behind the
//!   shared NAT, 0.3 for a healthy agent limited), plus 3 once for a task a reset lost and
//!   5 once per action aimed at something that was not the cause;
//! * analyst time — 6 per approval request, 12 per request for a human to investigate
//!   (minutes of a person, priced against minutes of damage).
//!
//! The episode ends once the world has recovered (cause gone, nothing healthy held out of
//! service or blocked) and ran [`MIN_STEPS`], or after [`HORIZON_STEPS`]. Time to recover
//! counts to the last time the world became healthy.

use crate::scenario::{self, Conditions, Effect, Member, Role, Scenario, Truth};
use antibody_core::rng::SplitMix64;
use antibody_core::{Finding, Incident, TenantId, TimestampMs};
use antibody_detect::{EngineConfig, Outputs, Partition, Sample};
use antibody_respond::ActionKind;
use antibody_rules::RuleSet;
use serde::Serialize;
use std::sync::Arc;

/// Simulated time per step.
pub const STEP_MS: i64 = 10_000;
/// Normal traffic before the scenario starts, so baselines are warm.
pub const WARMUP_STEPS: u32 = 18;
/// Steps after the scenario starts before the episode is cut off.
pub const HORIZON_STEPS: u32 = 120;
/// An analyst answers an approval request after this many steps (3 min).
pub const APPROVAL_STEPS: u32 = 18;
/// A human asked to investigate has fixed the cause after this many steps (5 min).
pub const HUMAN_FIX_STEPS: u32 = 30;
/// Every episode runs at least this long, so an arm can still err after an early recovery.
pub const MIN_STEPS: u32 = 30;
/// The provider outage lasts this many steps.
const OUTAGE_STEPS: u32 = 30;
/// An analyst's time: about five minutes to answer an approval, more to investigate.
const APPROVAL_COST: f64 = 6.0;
const COLLATERAL_ACTION_COST: f64 = 5.0;
const UNRECOVERED_COST: f64 = 0.5;
const ASK_COST: f64 = 12.0;
/// An analyst approves a right action this often, and a collateral one this often.
const APPROVE_RIGHT: f64 = 0.9;
const APPROVE_WRONG: f64 = 0.3;

pub const TENANT: &str = "sim";

/// What the agent does this step. `ticket`s are the agent's own ids for the replies.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "choice", rename_all = "snake_case")]
pub enum Choice {
    /// Ask an analyst to approve an action; the answer arrives as an [`Answer`].
    Request {
        ticket: u64,
        kind: ActionKind,
        target: String,
    },
    /// Execute an action; its result arrives as a [`Completion`].
    Act {
        ticket: u64,
        kind: ActionKind,
        target: String,
    },
    /// Ask a human to investigate and fix; counted as an approval asked.
    AskHuman,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Completion {
    pub ticket: u64,
    pub ok: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Answer {
    pub ticket: u64,
    pub approved: bool,
}

/// The cost of one step, by part.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Cost {
    pub damage: f64,
    pub downtime: f64,
    pub collateral: f64,
    pub analyst: f64,
}

impl Cost {
    pub fn total(&self) -> f64 {
        self.damage + self.downtime + self.collateral + self.analyst
    }
    fn add(&mut self, o: &Cost) {
        self.damage += o.damage;
        self.downtime += o.downtime;
        self.collateral += o.collateral;
        self.analyst += o.analyst;
    }
}

/// What the engine saw during a step.
#[derive(Debug, Default)]
pub struct Observation {
    pub now: TimestampMs,
    pub findings: Vec<Finding>,
    pub incidents: Vec<Incident>,
    pub samples: Vec<Sample>,
}

#[derive(Debug)]
pub struct Step {
    pub obs: Observation,
    pub reward: f64,
    pub cost: Cost,
    pub done: bool,
    pub completions: Vec<Completion>,
    pub answers: Vec<Answer>,
}

/// An episode's totals.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Outcome {
    pub scenario: Option<Scenario>,
    pub seed: u64,
    pub mttr_s: f64,
    pub damage: f64,
    pub cost: f64,
    /// Actions executed on targets that were not the cause.
    pub collateral: u32,
    /// Approval requests plus requests for a human.
    pub approvals: u32,
    pub actions: u32,
}

#[derive(Clone, Debug)]
enum Due {
    Effect {
        ticket: u64,
        target: String,
        role: Role,
        kind: ActionKind,
        ok: bool,
    },
    Answer(Answer),
    HumanFix,
}

#[derive(Clone, Debug)]
struct InForce {
    target: String,
    role: Role,
    kind: ActionKind,
    effect: Effect,
}

/// Built once, shared by every episode: compiled rules and the engine configuration.
#[derive(Clone)]
pub struct World {
    cfg: Arc<EngineConfig>,
    rules: Arc<RuleSet>,
}

impl Default for World {
    fn default() -> Self {
        let mut cfg = EngineConfig::default();
        // Agents report bytes sent; a spike of them is what exfiltration looks like here.
        cfg.metric_kinds
            .insert("bytes_out".into(), "exfiltration".into());
        Self {
            cfg: Arc::new(cfg),
            rules: Arc::new(RuleSet::default_pack()),
        }
    }
}

pub struct Env {
    world: World,
    scenario: Scenario,
    tenant: TenantId,
    rng: SplitMix64,
    partition: Partition,
    fleet: Vec<Member>,
    truth: Truth,
    now: TimestampMs,
    /// Steps since the scenario started.
    t: u32,
    due: Vec<(u32, Due)>,
    in_force: Vec<InForce>,
    active: bool,
    human_called: bool,
    /// The scenario began (warm-up is over).
    started: bool,
    recovered_at: Option<u32>,
    offset: u64,
    out: Outcome,
}

impl Env {
    pub fn new(world: World, scenario: Scenario) -> Self {
        let mut rng = SplitMix64::new(0);
        let truth = scenario::truth(scenario, &mut rng);
        Self {
            partition: Partition::new(world.cfg.clone(), world.rules.clone()),
            world,
            scenario,
            tenant: TenantId::new(TENANT),
            rng,
            fleet: Vec::new(),
            truth,
            now: 0,
            t: 0,
            due: Vec::new(),
            in_force: Vec::new(),
            active: false,
            human_called: false,
            started: false,
            recovered_at: None,
            offset: 0,
            out: Outcome::default(),
        }
    }

    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }
    pub fn fleet(&self) -> &[Member] {
        &self.fleet
    }
    pub fn scenario(&self) -> Scenario {
        self.scenario
    }
    /// The hidden truth, for the episode log and tests; an agent must not read it.
    pub fn truth(&self) -> &Truth {
        &self.truth
    }

    /// Starts an episode: draws the fleet and the truth from `seed`, runs the warm-up, and
    /// returns the first step's observation (the scenario starts with it).
    pub fn reset(&mut self, seed: u64) -> Observation {
        self.rng = SplitMix64::new(seed ^ 0x51_u64.wrapping_mul(self.scenario as u64 + 1));
        self.fleet = scenario::fleet(&mut self.rng);
        self.truth = scenario::truth(self.scenario, &mut self.rng);
        self.partition = Partition::new(self.world.cfg.clone(), self.world.rules.clone());
        self.now = 1_700_000_000_000;
        self.t = 0;
        self.due.clear();
        self.in_force.clear();
        self.active = false;
        self.human_called = false;
        self.started = false;
        self.recovered_at = None;
        self.offset = 0;
        self.out = Outcome {
            scenario: Some(self.scenario),
            seed,
            ..Outcome::default()
        };
        for _ in 0..WARMUP_STEPS {
            self.advance();
        }
        self.active = !self.scenario.benign() || self.scenario == Scenario::ProviderOutage;
        self.started = true;
        self.advance()
    }

    /// Applies `choices`, advances one step, and reports.
    pub fn step(&mut self, choices: &[Choice]) -> Step {
        let mut cost = Cost::default();
        for c in choices {
            self.choose(c, &mut cost);
        }
        self.t += 1;
        let (completions, answers) = self.settle(&mut cost);
        if self.scenario == Scenario::ProviderOutage && self.t >= OUTAGE_STEPS {
            self.active = false;
        }
        let obs = self.advance();
        self.running_costs(&mut cost);
        if !self.recovered() {
            cost.downtime += UNRECOVERED_COST;
        }
        // Recovery counts from the last time the world became healthy: a wrong action
        // after an early recovery undoes it.
        if !self.recovered() {
            self.recovered_at = None;
        } else if self.recovered_at.is_none() {
            self.recovered_at = Some(self.t);
        }
        let done = (self.recovered_at.is_some() && self.t >= MIN_STEPS) || self.t >= HORIZON_STEPS;
        self.out.damage += cost.damage;
        self.out.cost += cost.total();
        self.out.mttr_s = f64::from(self.recovered_at.unwrap_or(self.t)) * STEP_MS as f64 / 1e3;
        Step {
            obs,
            reward: -cost.total(),
            cost,
            done,
            completions,
            answers,
        }
    }

    pub fn outcome(&self) -> &Outcome {
        &self.out
    }

    fn choose(&mut self, c: &Choice, cost: &mut Cost) {
        match c {
            Choice::AskHuman => {
                self.out.approvals += 1;
                cost.analyst += ASK_COST;
                if !self.human_called {
                    self.human_called = true;
                    self.due.push((self.t + HUMAN_FIX_STEPS, Due::HumanFix));
                }
            }
            Choice::Request {
                ticket,
                kind: _,
                target,
            } => {
                self.out.approvals += 1;
                cost.analyst += APPROVAL_COST;
                let p = if self.truth.role(target).collateral() {
                    APPROVE_WRONG
                } else {
                    APPROVE_RIGHT
                };
                let approved = self.rng.unit() < p;
                let a = Answer {
                    ticket: *ticket,
                    approved,
                };
                self.due.push((self.t + APPROVAL_STEPS, Due::Answer(a)));
            }
            Choice::Act {
                ticket,
                kind,
                target,
            } => {
                let role = self.truth.role(target);
                self.out.actions += 1;
                if *kind != ActionKind::Notify && role.collateral() {
                    self.out.collateral += 1;
                    cost.collateral += COLLATERAL_ACTION_COST;
                }
                let ok = self.rng.unit() >= scenario::failure_rate(*kind);
                let due = Due::Effect {
                    ticket: *ticket,
                    target: target.clone(),
                    role,
                    kind: *kind,
                    ok,
                };
                self.due.push((self.t + scenario::delay_steps(*kind), due));
            }
        }
    }

    /// Carries out what fell due; returns the replies.
    fn settle(&mut self, cost: &mut Cost) -> (Vec<Completion>, Vec<Answer>) {
        let (mut completions, mut answers) = (Vec::new(), Vec::new());
        let (now_due, later): (Vec<_>, Vec<_>) =
            self.due.drain(..).partition(|(at, _)| *at <= self.t);
        self.due = later;
        for (_, d) in now_due {
            match d {
                Due::Answer(a) => answers.push(a),
                Due::HumanFix => {
                    // A human removes the cause and lifts what held healthy entities back.
                    self.active = self.active && self.scenario == Scenario::ProviderOutage;
                    self.in_force.retain(|f| !f.role.collateral());
                }
                Due::Effect {
                    ticket,
                    target,
                    role,
                    kind,
                    ok,
                } => {
                    completions.push(Completion { ticket, ok });
                    if ok {
                        self.apply(target, role, kind, cost);
                    }
                }
            }
        }
        (completions, answers)
    }

    fn apply(&mut self, target: String, role: Role, kind: ActionKind, cost: &mut Cost) {
        let effect = scenario::effect(self.scenario, kind, role);
        cost.collateral += effect.once;
        if self.active && effect.cure > 0.0 && self.rng.unit() < effect.cure {
            self.active = false;
        }
        if effect.contains || effect.mitigate < 1.0 || effect.collateral_per_step > 0.0 {
            // One of a kind per target: a repeat replaces the earlier one.
            self.in_force
                .retain(|f| !(f.target == target && f.kind == kind));
            self.in_force.push(InForce {
                target,
                role,
                kind,
                effect,
            });
        }
    }

    fn conditions(&self) -> Conditions {
        let intensity = self
            .in_force
            .iter()
            .map(|f| f.effect.mitigate)
            .product::<f64>();
        let attack = self.active && !self.scenario.benign();
        Conditions {
            active: attack,
            intensity: if attack { intensity } else { 0.0 },
            outage: self.active && self.scenario == Scenario::ProviderOutage,
            shifted: self.started && self.scenario == Scenario::ReleaseShift,
            out_of_service: self
                .in_force
                .iter()
                .filter(|f| f.effect.contains)
                .map(|f| f.target.clone())
                .collect(),
            blocked: self
                .in_force
                .iter()
                .filter(|f| f.kind == ActionKind::BlockIp)
                .map(|f| f.target.clone())
                .collect(),
        }
    }

    /// Emits one step of events into the engine and ticks it.
    fn advance(&mut self) -> Observation {
        let cond = self.conditions();
        let evs = scenario::events(
            &self.tenant,
            &self.fleet,
            &self.truth,
            &cond,
            self.now,
            &mut self.rng,
        );
        let mut out = Outputs::default();
        for ev in &evs {
            self.offset += 1;
            self.partition.on_event(self.offset, ev, &mut out);
        }
        self.partition.flush_incidents(&mut out);
        self.now += STEP_MS;
        self.partition.on_tick(self.now, &mut out);
        Observation {
            now: self.now,
            findings: std::mem::take(&mut out.findings),
            incidents: std::mem::take(&mut out.incidents),
            samples: std::mem::take(&mut out.samples),
        }
    }

    /// Starts or stops probation samples for an entity (the responder's wish).
    pub fn watch(&mut self, entity: &str, on: bool) {
        self.partition.watch(&self.tenant, entity, on);
    }

    fn crit(&self, entity: &str) -> f64 {
        let c = self
            .fleet
            .iter()
            .find(|m| m.entity == entity)
            .map_or(3, |m| m.criticality);
        f64::from(c) / 3.0
    }

    fn running_costs(&self, cost: &mut Cost) {
        let cond = self.conditions();
        if cond.active {
            let rate = self.scenario.damage_rate();
            cost.damage += rate * cond.intensity * self.crit(&self.truth.entity);
        }
        let mut c = Cost::default();
        for f in &self.in_force {
            if f.effect.contains {
                c.downtime += 0.5 * self.crit(&f.target);
            }
            c.collateral += f.effect.collateral_per_step;
        }
        cost.add(&c);
    }

    /// Cause gone and nothing healthy held back.
    fn recovered(&self) -> bool {
        !self.active
            && !self.in_force.iter().any(|f| {
                f.role.collateral() && (f.effect.contains || f.effect.collateral_per_step > 0.0)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_waiting(s: Scenario, seed: u64) -> (Vec<String>, Outcome) {
        let mut env = Env::new(World::default(), s);
        let mut kinds = Vec::new();
        let obs = env.reset(seed);
        kinds.extend(obs.findings.iter().map(|f| f.kind.to_string()));
        loop {
            let st = env.step(&[]);
            kinds.extend(st.obs.findings.iter().map(|f| f.kind.to_string()));
            if st.done {
                break;
            }
        }
        (kinds, env.outcome().clone())
    }

    #[test]
    fn each_attack_is_seen_by_the_real_engine() {
        for (s, want) in [
            (Scenario::BruteForce, "brute_force"),
            (Scenario::BruteForceNat, "brute_force"),
            (Scenario::WebScan, "sqli"),
            (Scenario::TokenExplosion, "token_spike"),
            (Scenario::ToolLoop, "tool_explosion"),
            (Scenario::PromptInjection, "prompt_injection"),
            (Scenario::Exfiltration, "exfiltration"),
            (Scenario::ProviderOutage, "latency_spike"),
            (Scenario::ReleaseShift, "token_spike"),
        ] {
            let (kinds, _) = run_waiting(s, 7);
            assert!(kinds.iter().any(|k| k == want), "{s:?}: {kinds:?}");
        }
    }

    #[test]
    fn episodes_are_deterministic_per_seed() {
        let a = run_waiting(Scenario::TokenExplosion, 11);
        let b = run_waiting(Scenario::TokenExplosion, 11);
        assert_eq!(a, b);
    }

    #[test]
    fn an_unanswered_attack_runs_to_the_horizon_and_a_benign_one_recovers() {
        let (_, o) = run_waiting(Scenario::Exfiltration, 1);
        assert_eq!(o.mttr_s, f64::from(HORIZON_STEPS) * 10.0);
        assert!(o.damage > 0.0);
        let (_, o) = run_waiting(Scenario::ReleaseShift, 1);
        assert_eq!(o.mttr_s, 10.0);
        assert_eq!(o.damage, 0.0);
    }

    #[test]
    fn blocking_the_attacker_cures_and_acting_on_a_bystander_is_collateral() {
        let mut env = Env::new(World::default(), Scenario::BruteForce);
        env.reset(5);
        let ip = env.truth().attacker.clone().unwrap();
        let act = |ticket, kind, target: &str| Choice::Act {
            ticket,
            kind,
            target: target.to_owned(),
        };
        let mut replies = env
            .step(&[act(1, ActionKind::Reset, "agent:a0")])
            .completions;
        let mut st = env.step(&[act(2, ActionKind::BlockIp, &ip)]);
        replies.extend(st.completions.clone());
        while !st.done {
            st = env.step(&[]);
            replies.extend(st.completions.clone());
        }
        assert_eq!(env.outcome().collateral, 1);
        assert_eq!(replies.len(), 2);
        assert!(env.outcome().mttr_s < 100.0 || replies.iter().any(|c| !c.ok));
    }
}
