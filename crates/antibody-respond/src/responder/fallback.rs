//! Fallback diagnosis: when the leading hypothesis's ladder is spent, the next hypotheses of
//! the diagnosis get their own playbooks, in rank order, before people are called. (The
//! leading hypothesis counts too when the ladder that ran was chosen by finding kind and its
//! cause names another playbook.)
//!
//! A hypothesis's playbook is the first whose trigger names its cause (`diagnoses`), whose
//! risk and entity filters accept the case and whose `hits` are reached. A hypothesis
//! without one, or whose playbook this case already ran, is skipped; so no playbook runs
//! twice for a case and the search ends. Only when every hypothesis is spent does the entity
//! become exhausted and the escalation go out. Each fallback is a [`Decision::Fallback`] in
//! the audit chain, and the playbooks a case ran are part of its snapshot (a section of
//! their own: see [`super::snapshot`]).

use super::plan::hits;
use super::{Key, Responder};
use crate::decision::Decision;
use crate::diagnose::Cause;
use antibody_core::TimestampMs;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// What a case's ladders have been through.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct Fallback {
    /// Playbooks whose ladders this case spent, in the order they ran.
    pub(super) tried: Vec<String>,
    /// The hypothesis the running ladder serves, when it is a fallback.
    pub(super) cause: Option<Cause>,
}

/// The snapshot section: every case with a fallback history.
pub(super) type Section = Vec<(Key, Fallback)>;

/// The next hypothesis to try and its playbook.
struct Next {
    cause: Cause,
    confidence: f64,
    playbook: String,
    rule: String,
}

impl Responder {
    /// The running ladder of the case at `key` is spent (`reason` says how). Starts the next
    /// hypothesis's playbook and returns true, or returns false when none is left.
    pub(super) fn fall_back(
        &mut self,
        key: &Key,
        reason: &str,
        now: TimestampMs,
        out: &mut Vec<Decision>,
    ) -> bool {
        let Some(rec) = self.st.cases.get_mut(key) else {
            return false;
        };
        let Some(spent) = rec.plan.as_ref().map(|p| p.playbook.clone()) else {
            return false;
        };
        if !rec.fallback.tried.contains(&spent) {
            rec.fallback.tried.push(spent.clone());
        }
        let Some(next) = self.next_hypothesis(key) else {
            return false;
        };
        let Some(rec) = self.st.cases.get_mut(key) else {
            return false;
        };
        rec.fallback.cause = Some(next.cause);
        rec.plan = None;
        out.push(Decision::Fallback {
            tenant: key.0.clone(),
            entity: rec.case.entity.clone(),
            incident: key.1.clone(),
            spent,
            cause: next.cause,
            confidence: next.confidence,
            playbook: next.playbook.clone(),
            reason: reason.to_owned(),
        });
        self.begin_plan(key, &next.playbook, next.rule, next.cause, now, out);
        true
    }

    /// The highest-ranked hypothesis whose playbook this case has not run.
    fn next_hypothesis(&self, key: &Key) -> Option<Next> {
        let rec = self.st.cases.get(key)?;
        let asset = self
            .st
            .assets
            .get(&(key.0.clone(), rec.case.entity.clone()));
        let pbs = Arc::clone(self.playbooks_for(&key.0));
        rec.diagnosis.iter().find_map(|h| {
            let cause = Cause::parse(&h.cause)?;
            let (pb, rule) = pbs.playbooks().iter().find_map(|pb| {
                pb.matches(
                    std::iter::empty(),
                    Some(cause),
                    rec.assessment.risk,
                    &rec.case.entity,
                    asset,
                )
                .map(|rule| (pb, rule))
            })?;
            let fresh = !rec.fallback.tried.contains(&pb.id);
            (fresh && hits(pb, rec) >= u64::from(pb.hits)).then(|| Next {
                cause,
                confidence: h.confidence,
                playbook: pb.id.clone(),
                rule,
            })
        })
    }

    /// The playbooks the case's ladders spent, for an escalation's reason.
    pub(super) fn spent_playbooks(&self, key: &Key) -> Vec<String> {
        self.st
            .cases
            .get(key)
            .map(|r| r.fallback.tried.clone())
            .unwrap_or_default()
    }

    /// The snapshot section (cases in key order).
    pub(super) fn fallback_section(&self) -> Section {
        self.st
            .cases
            .iter()
            .filter(|(_, r)| r.fallback != Fallback::default())
            .map(|(k, r)| (k.clone(), r.fallback.clone()))
            .collect()
    }

    /// Puts a restored section back on its cases (cases since gone are ignored).
    pub(super) fn restore_fallbacks(&mut self, section: Section) {
        for (key, fallback) in section {
            if let Some(rec) = self.st.cases.get_mut(&key) {
                rec.fallback = fallback;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::{Action, ActionKind};
    use crate::config::ResponderConfig;
    use crate::lifecycle::LifecycleState;
    use crate::playbook::{PlaybookSet, PlaybookSource};
    use antibody_core::{Explanation, Finding, Incident, IncidentStatus, Severity, TenantId};

    const T0: TimestampMs = 1_800_000_000_000;
    const E: &str = "agent:a";

    /// `tool_explosion` is diagnosed tool_loop, then prompt_injection, then resource_abuse;
    /// the first and the third share a playbook.
    const PLAYBOOKS: &str = "
- id: loop-first
  trigger:
    kinds: [tool_explosion]
    diagnoses: [tool_loop, resource_abuse]
  mode: auto
  steps:
    - action: revoke_tools
      ttl: 1h
      on_failure: escalate
- id: injection
  trigger:
    diagnoses: [prompt_injection]
  mode: auto
  steps:
    - action: reset
      on_failure: escalate
";

    fn t() -> TenantId {
        TenantId::new("t")
    }

    fn responder() -> Responder {
        let pbs = PlaybookSet::load(&[PlaybookSource::new("test.yml", PLAYBOOKS)]).unwrap();
        let mut cfg = ResponderConfig::default();
        // Automatic, so the ladders run without people.
        cfg.policy.approval_sigma = 50.0;
        cfg.policy.approval_risk = 10.0;
        Responder::new(Arc::new(cfg), Arc::new(pbs))
    }

    /// A decisive (8σ) tool explosion on `E`.
    fn explode(r: &mut Responder, now: TimestampMs) -> Vec<Decision> {
        let finding = Finding {
            id: "f-1".into(),
            tenant: t(),
            ts: now,
            entity: E.into(),
            kind: "tool_explosion".into(),
            detector: "baseline".into(),
            severity: Severity::High,
            score: 0.8,
            explanation: Explanation::text("test"),
            evidence: serde_json::json!({"metric": "tool_calls", "sigma": 8.0})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            incident: Some("i-1".into()),
        };
        let incident = Incident {
            id: "i-1".into(),
            tenant: t(),
            entity: E.into(),
            status: IncidentStatus::Open,
            opened: now,
            updated: now,
            risk: 0.0,
            severity: Severity::High,
            kinds: vec!["tool_explosion".into()],
            finding_count: 1,
            max_score: 0.8,
            diagnosis: Vec::new(),
            findings: Vec::new(),
            actions: Vec::new(),
            timeline: Vec::new(),
            workflow: Default::default(),
        };
        r.on_incident(&incident, &[finding], now)
    }

    fn actions(ds: &[Decision]) -> Vec<&Action> {
        ds.iter()
            .filter_map(|d| match d {
                Decision::Action { action, .. } => Some(action),
                _ => None,
            })
            .collect()
    }

    fn fallbacks(ds: &[Decision]) -> Vec<(Cause, &str, &str)> {
        ds.iter()
            .filter_map(|d| match d {
                Decision::Fallback {
                    cause,
                    playbook,
                    spent,
                    ..
                } => Some((*cause, playbook.as_str(), spent.as_str())),
                _ => None,
            })
            .collect()
    }

    fn escalations(ds: &[Decision]) -> Vec<&str> {
        ds.iter()
            .filter_map(|d| match d {
                Decision::Escalation { reason, .. } => Some(reason.as_str()),
                _ => None,
            })
            .collect()
    }

    /// The explosion's first ladder, failed by its executor.
    fn first_ladder_fails(r: &mut Responder) -> Vec<Decision> {
        let ds = explode(r, T0);
        let first = actions(&ds);
        assert_eq!(first.len(), 1, "{ds:#?}");
        assert_eq!(first[0].kind, ActionKind::RevokeTools);
        assert_eq!(first[0].why.playbook, "loop-first");
        let id = first[0].id.clone();
        r.on_action_result(&t(), &id, false, "tools still there", T0 + 1_000)
            .unwrap()
    }

    #[test]
    fn a_spent_ladder_falls_back_to_the_next_hypothesis() {
        let mut r = responder();
        let ds = first_ladder_fails(&mut r);
        assert_eq!(
            fallbacks(&ds),
            [(Cause::PromptInjection, "injection", "loop-first")]
        );
        assert!(escalations(&ds).is_empty(), "{ds:#?}");
        let next = actions(&ds)
            .into_iter()
            .find(|a| a.why.playbook == "injection")
            .expect("the fallback's action");
        assert_eq!(next.kind, ActionKind::Reset);
        assert!(
            next.why.text.contains("prompt_injection"),
            "the ladder serves the fallback's hypothesis: {}",
            next.why.text
        );
        assert_ne!(r.entity_state(&t(), E), LifecycleState::Exhausted);
        let audit = ds
            .iter()
            .find(|d| matches!(d, Decision::Fallback { .. }))
            .unwrap()
            .audit_record(T0);
        assert_eq!(audit.kind, "fallback");
        assert!(
            audit
                .detail
                .starts_with("falling back to hypothesis `prompt_injection` (confidence 0."),
            "{}",
            audit.detail
        );
        assert!(
            audit.detail.contains("→ playbook `injection`"),
            "{}",
            audit.detail
        );
    }

    #[test]
    fn exhausts_only_when_every_hypothesis_is_spent_and_never_loops_back() {
        let mut r = responder();
        let ds = first_ladder_fails(&mut r);
        let id = actions(&ds)[1].id.clone();
        let ds = r
            .on_action_result(&t(), &id, false, "still looping", T0 + 2_000)
            .unwrap();
        // resource_abuse's playbook is loop-first, already spent: no loop back to it.
        assert!(fallbacks(&ds).is_empty(), "{ds:#?}");
        assert!(actions(&ds).iter().all(|a| a.id == id), "{ds:#?}");
        assert_eq!(r.entity_state(&t(), E), LifecycleState::Exhausted);
        let reasons = escalations(&ds);
        assert_eq!(reasons.len(), 1, "{ds:#?}");
        assert!(
            reasons[0].contains("every hypothesis's playbook is spent (loop-first, injection)"),
            "{}",
            reasons[0]
        );
        assert_eq!(r.actions(&t(), None).count(), 2);
        // A later update of the same incident starts nothing new either.
        let mut later = explode(&mut r, T0 + 3_000);
        later.retain(|d| !matches!(d, Decision::Assessment { .. }));
        assert!(actions(&later).is_empty(), "{later:#?}");
    }

    #[test]
    fn the_tried_playbooks_survive_a_snapshot() {
        let mut r = responder();
        let ds = first_ladder_fails(&mut r);
        let id = actions(&ds)[1].id.clone();
        let bytes = r.snapshot().unwrap();
        let mut back =
            Responder::restore(Arc::clone(&r.cfg), Arc::clone(&r.playbooks), &bytes).unwrap();
        assert_eq!(back.st, r.st);
        assert_eq!(
            back.fallback_section()[0].1.tried,
            ["loop-first".to_owned()]
        );
        let ds = back
            .on_action_result(&t(), &id, false, "still looping", T0 + 2_000)
            .unwrap();
        assert!(fallbacks(&ds).is_empty(), "{ds:#?}");
        assert_eq!(back.entity_state(&t(), E), LifecycleState::Exhausted);
    }
}
