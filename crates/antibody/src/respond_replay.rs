//! `replay --respond` and `--playbooks DIR`: the response engine over a replayed history,
//! with a dry-run executor (actions succeed on paper and touch nothing). With a candidate
//! playbook set, a second responder runs beside the current one and the actions that would
//! appear or disappear are printed: the what-if before a rollout.

use antibody_core::TimestampMs;
use antibody_detect::{Engine, Outputs};
use antibody_respond::{
    Action, ActionStatus, Decision, EffectPoint, PlaybookSet, Responder, ResponderConfig,
};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::Arc;

pub struct Responders {
    current: Responder,
    candidate: Option<Responder>,
    /// The latest version of every action each responder took, by id.
    current_actions: BTreeMap<String, Action>,
    candidate_actions: BTreeMap<String, Action>,
}

#[derive(Serialize)]
struct WhatIf<'a> {
    #[serde(rename = "type")]
    ty: &'static str,
    change: &'static str,
    action: &'a Action,
}

impl Responders {
    pub fn new(current: PlaybookSet, candidate: Option<PlaybookSet>) -> Self {
        let cfg = Arc::new(ResponderConfig::default());
        Self {
            current: Responder::new(cfg.clone(), Arc::new(current)),
            candidate: candidate.map(|p| Responder::new(cfg, Arc::new(p))),
            current_actions: BTreeMap::new(),
            candidate_actions: BTreeMap::new(),
        }
    }

    /// Feeds the engine's outputs of one step (incidents with their findings, samples).
    pub fn outputs<W: Write>(
        &mut self,
        o: &Outputs,
        now: TimestampMs,
        engine: &mut Engine,
        out: &mut W,
    ) -> io::Result<()> {
        let feed = |r: &mut Responder| {
            let mut decisions = Vec::new();
            for inc in &o.incidents {
                let joined: Vec<_> = o
                    .findings
                    .iter()
                    .filter(|f| f.incident.as_deref() == Some(inc.id.as_str()))
                    .cloned()
                    .collect();
                decisions.extend(r.on_incident(inc, &joined, now));
            }
            for s in &o.samples {
                decisions.extend(r.on_sample(&s.tenant, &s.entity, s.within_baseline, s.ts));
            }
            decisions
        };
        let decisions = feed(&mut self.current);
        emit(
            &mut self.current,
            decisions,
            now,
            engine,
            &mut self.current_actions,
            Some(out),
        )?;
        if let Some(c) = &mut self.candidate {
            let decisions = feed(c);
            emit(
                c,
                decisions,
                now,
                engine,
                &mut self.candidate_actions,
                None::<&mut W>,
            )?;
        }
        Ok(())
    }

    pub fn tick<W: Write>(
        &mut self,
        now: TimestampMs,
        engine: &mut Engine,
        out: &mut W,
    ) -> io::Result<()> {
        let d = self.current.on_tick(now);
        emit(
            &mut self.current,
            d,
            now,
            engine,
            &mut self.current_actions,
            Some(out),
        )?;
        if let Some(c) = &mut self.candidate {
            let d = c.on_tick(now);
            emit(
                c,
                d,
                now,
                engine,
                &mut self.candidate_actions,
                None::<&mut W>,
            )?;
        }
        Ok(())
    }

    /// Prints the what-if comparison (with a candidate set) and a summary on stderr.
    pub fn finish<W: Write>(&mut self, out: &mut W) -> io::Result<()> {
        let Some(_) = &self.candidate else {
            eprintln!(
                "respond: {} actions decided (dry run)",
                self.current_actions.len()
            );
            return Ok(());
        };
        let key = |a: &Action| (a.incident.clone(), a.kind.to_string(), a.target.clone());
        let before: BTreeMap<_, &Action> =
            self.current_actions.values().map(|a| (key(a), a)).collect();
        let after: BTreeMap<_, &Action> = self
            .candidate_actions
            .values()
            .map(|a| (key(a), a))
            .collect();
        let (mut added, mut removed, mut changed) = (0, 0, 0);
        for (k, a) in &after {
            match before.get(k) {
                None => {
                    added += 1;
                    line(out, "added", a)?;
                }
                Some(b) if b.status != a.status || b.ttl != a.ttl || b.mode != a.mode => {
                    changed += 1;
                    line(out, "changed", a)?;
                }
                Some(_) => {}
            }
        }
        for (k, b) in &before {
            if !after.contains_key(k) {
                removed += 1;
                line(out, "removed", b)?;
            }
        }
        eprintln!(
            "what-if: {} actions now, {} with the new playbooks: {added} added, {removed} removed, {changed} changed",
            self.current_actions.len(),
            self.candidate_actions.len()
        );
        Ok(())
    }
}

fn line<W: Write>(out: &mut W, change: &'static str, action: &Action) -> io::Result<()> {
    serde_json::to_writer(
        &mut *out,
        &WhatIf {
            ty: "what_if",
            change,
            action,
        },
    )?;
    out.write_all(b"\n")
}

/// Records decisions, prints them when `out` is given, and carries out approved actions on
/// paper (started, then succeeded), feeding what that decides back in.
fn emit<W: Write>(
    r: &mut Responder,
    decisions: Vec<Decision>,
    now: TimestampMs,
    engine: &mut Engine,
    actions: &mut BTreeMap<String, Action>,
    mut out: Option<&mut W>,
) -> io::Result<()> {
    let mut queue = decisions;
    while !queue.is_empty() {
        let mut next = Vec::new();
        for d in queue {
            if let Some(o) = out.as_deref_mut() {
                serde_json::to_writer(
                    &mut *o,
                    &Tagged {
                        ty: "decision",
                        decision: &d,
                    },
                )?;
                o.write_all(b"\n")?;
            }
            match &d {
                Decision::Action { tenant, action, .. } => {
                    actions.insert(action.id.clone(), action.clone());
                    if action.status == ActionStatus::Approved {
                        next.extend(
                            r.on_action_started(tenant, &action.id, now)
                                .unwrap_or_default(),
                        );
                        // As `serve` would: a kind with no control point is only recorded.
                        let done = if action.kind.effect_point() == EffectPoint::Unattached {
                            let msg = "dry run: no agent control point is attached; recorded";
                            r.on_action_recorded(tenant, &action.id, msg, now)
                        } else {
                            let msg = "dry run: nothing was changed";
                            r.on_action_result(tenant, &action.id, true, msg, now)
                        };
                        next.extend(done.unwrap_or_default());
                    }
                }
                Decision::Undo { action, .. } => {
                    actions.insert(action.id.clone(), action.clone());
                }
                Decision::Transition(t) => {
                    engine.watch(&t.tenant, &t.entity, r.wants_samples(&t.tenant, &t.entity));
                }
                _ => {}
            }
        }
        queue = next;
    }
    Ok(())
}

/// `{"type":"decision","decision":{...}}`: the decision keeps its own `type` tag inside.
#[derive(Serialize)]
struct Tagged<'a> {
    #[serde(rename = "type")]
    ty: &'static str,
    decision: &'a Decision,
}
