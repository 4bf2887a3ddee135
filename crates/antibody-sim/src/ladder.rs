//! The static arm: today's behaviour. The real [`Responder`] with the tenant's playbooks
//! (first matching playbook, rungs in Thompson order) decides; the simulator plays the
//! executor (results after the kind's delay), the analyst (answers approvals) and the
//! human an escalation calls. Each action it runs is checked against [`crate::permit`].

use crate::env::{Choice, Env, Step};
use crate::learned::{joined, Run, Setup};
use crate::permit::{self, asset_of, Tracker};
use crate::scenario::Scenario;
use antibody_respond::guard::BlastGuard;
use antibody_respond::{ActionStatus, Decision, Responder, ResponderConfig};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

const ANALYST: &str = "sim-analyst";

#[derive(Default)]
struct Book {
    /// Ticket → action id, and back.
    tickets: BTreeMap<u64, String>,
    next: u64,
    submitted: BTreeSet<String>,
    requested: BTreeSet<String>,
    human_approved: BTreeSet<String>,
    escalated: BTreeSet<String>,
}

impl Book {
    fn ticket(&mut self, id: &str) -> u64 {
        self.next += 1;
        self.tickets.insert(self.next, id.to_owned());
        self.next
    }
}

pub fn episode(setup: &Setup, scenario: Scenario, seed: u64, log: bool) -> Run {
    let mut env = Env::new(setup.world.clone(), scenario);
    let mut obs = env.reset(seed);
    let cfg = ResponderConfig {
        seed,
        ..ResponderConfig::default()
    };
    let mut r = Responder::new(Arc::new(cfg), setup.playbooks.clone());
    let tenant = env.tenant().clone();
    for m in env.fleet() {
        // Fleet members are valid assets by construction; a refusal would only lose context.
        let _ = r.upsert_asset(&tenant, m.asset());
    }
    let mut tracker = Tracker::default();
    let mut book = Book::default();
    let mut run = Run::default();
    let mut carried: Vec<Decision> = Vec::new();
    for step in 0.. {
        let now = obs.now;
        let mut queue = std::mem::take(&mut carried);
        for inc in &obs.incidents {
            let j = joined(inc, &obs.findings);
            tracker.absorb(inc, &j, env.fleet());
            queue.extend(r.on_incident(inc, &j, now));
        }
        for s in &obs.samples {
            queue.extend(r.on_sample(&s.tenant, &s.entity, s.within_baseline, s.ts));
        }
        queue.extend(r.on_tick(now));
        let mut choices = Vec::new();
        while !queue.is_empty() {
            let mut next = Vec::new();
            for d in queue {
                next.extend(handle(
                    &mut r,
                    &mut env,
                    &tracker,
                    setup,
                    &mut book,
                    &mut run,
                    &mut choices,
                    d,
                    now,
                ));
            }
            queue = next;
        }
        let st = env.step(&choices);
        carried = replies(&mut r, &st, &mut book, &tenant);
        run.costs.push(st.cost.total());
        if log {
            run.log.push(serde_json::json!({
                "type": "step", "arm": "static", "scenario": scenario.as_str(), "seed": seed,
                "step": step, "choices": choices, "findings": st.obs.findings.len(),
                "cost": st.cost, "done": st.done,
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

/// Turns one decision into choices; returns what the responder decided in reply.
#[allow(clippy::too_many_arguments)]
fn handle(
    r: &mut Responder,
    env: &mut Env,
    tracker: &Tracker,
    setup: &Setup,
    book: &mut Book,
    run: &mut Run,
    choices: &mut Vec<Choice>,
    d: Decision,
    now: i64,
) -> Vec<Decision> {
    match d {
        Decision::Action { tenant, action, .. } => match action.status {
            ActionStatus::Approved if book.submitted.insert(action.id.clone()) => {
                let approved = book.human_approved.contains(&action.id);
                let allowed = tracker.open.get(&action.incident).is_some_and(|t| {
                    let asset = asset_of(env.fleet(), &t.case.entity);
                    // The guard is the responder's own business; a fresh one checks the rest.
                    let cands = permit::permitted(
                        &setup.playbooks,
                        &setup.policy,
                        &setup.guard,
                        &mut BlastGuard::default(),
                        &tenant,
                        t,
                        asset.as_ref(),
                        now,
                    );
                    permit::allows(&cands, action.kind, &action.target, approved)
                });
                if !allowed {
                    run.unsafe_actions += 1;
                }
                let ticket = book.ticket(&action.id);
                choices.push(Choice::Act {
                    ticket,
                    kind: action.kind,
                    target: action.target.clone(),
                });
                r.on_action_started(&tenant, &action.id, now)
                    .unwrap_or_default()
            }
            ActionStatus::PendingApproval if book.requested.insert(action.id.clone()) => {
                let ticket = book.ticket(&action.id);
                choices.push(Choice::Request {
                    ticket,
                    kind: action.kind,
                    target: action.target,
                });
                Vec::new()
            }
            _ => Vec::new(),
        },
        Decision::Escalation { incident, .. } => {
            if book.escalated.insert(incident) {
                choices.push(Choice::AskHuman);
            }
            Vec::new()
        }
        Decision::Transition(t) => {
            env.watch(&t.entity, r.wants_samples(&t.tenant, &t.entity));
            Vec::new()
        }
        _ => Vec::new(),
    }
}

/// Executor results and analysts' answers, reported to the responder.
fn replies(
    r: &mut Responder,
    st: &Step,
    book: &mut Book,
    tenant: &antibody_core::TenantId,
) -> Vec<Decision> {
    let now = st.obs.now;
    let mut out = Vec::new();
    for c in &st.completions {
        if let Some(id) = book.tickets.get(&c.ticket) {
            let msg = if c.ok {
                "simulated: applied"
            } else {
                "simulated: executor failed"
            };
            out.extend(
                r.on_action_result(tenant, id, c.ok, msg, now)
                    .unwrap_or_default(),
            );
        }
    }
    for a in &st.answers {
        let Some(id) = book.tickets.get(&a.ticket).cloned() else {
            continue;
        };
        let d = if a.approved {
            book.human_approved.insert(id.clone());
            r.approve(ANALYST, tenant, &id, now)
        } else {
            r.reject(ANALYST, tenant, &id, now)
        };
        out.extend(d.unwrap_or_default());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval;
    use crate::Policy;

    #[test]
    fn the_real_responder_acts_within_what_is_permitted() {
        let setup = Setup::new().unwrap();
        for s in [
            Scenario::ToolLoop,
            Scenario::BruteForce,
            Scenario::PromptInjection,
        ] {
            let run = episode(&setup, s, 4, false);
            assert!(run.outcome.actions > 0, "{s:?}: {:?}", run.outcome);
            assert_eq!(run.unsafe_actions, 0, "{s:?}");
        }
    }

    #[test]
    fn an_untrained_policy_takes_the_ladders_first_step_and_training_changes_choices() {
        let setup = Setup::new().unwrap();
        let fresh = Policy::new("fresh");
        let run = crate::learned::episode(&setup, Scenario::ToolLoop, 4, &fresh, None, true);
        assert!(run.outcome.actions > 0);
        assert_eq!(run.unsafe_actions, 0);
        assert!(!run.log.is_empty());
        let trained = eval::train(&setup, 20, 3, &[Scenario::ReleaseShift]);
        assert!(!trained.is_empty());
        assert_ne!(
            crate::learned::episode(&setup, Scenario::ReleaseShift, 4, &trained, None, false)
                .decisions
                .len(),
            0
        );
    }
}
