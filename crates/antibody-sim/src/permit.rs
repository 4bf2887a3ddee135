//! What may be done for an incident, decided before any policy chooses: every step of every
//! playbook whose trigger matches, rendered against the incident, minus allow-listed or
//! invalid targets, each marked when the approval gate ([`TenantPolicy::hold`]) or the
//! blast-radius guard holds it for a human. The learned policy only orders these (or waits,
//! or asks a human); [`allows`] checks an action against them right before it runs.
//!
//! [`Tracker`] keeps the responder's own view of each open incident (its `Case`, assessment
//! and diagnosis, by the responder's public formulas) for both arms.

use crate::scenario::Member;
use antibody_core::{Finding, Incident, IncidentStatus, TenantId, TimestampMs};
use antibody_respond::assess::{assess, Case};
use antibody_respond::diagnose::{diagnose, FeedbackMemory};
use antibody_respond::guard::{BlastGuard, GuardConfig};
use antibody_respond::{ActionKind, Assessment, Asset, Cause, PlaybookSet, TenantPolicy};
use serde::Serialize;
use std::collections::BTreeMap;

/// How an action's target relates to the incident (a policy feature).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Aim {
    /// The incident's entity.
    Entity,
    /// An address seen in the incident (`src_ip`).
    Address,
    Other,
}

/// One permitted action.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Candidate {
    pub kind: ActionKind,
    pub target: String,
    pub aim: Aim,
    pub playbook: String,
    /// Held for a human (approval gate or guard); the reason says which.
    pub approval: Option<String>,
}

/// Everything one arm knows of an open incident.
#[derive(Clone, Debug)]
pub struct Tracked {
    pub case: Case,
    pub assessment: Assessment,
    pub cause: Cause,
    pub cause_confidence: f64,
    pub opened: TimestampMs,
}

/// The open incidents of one episode, by id.
#[derive(Default)]
pub struct Tracker {
    pub open: BTreeMap<String, Tracked>,
    feedback: FeedbackMemory,
}

impl Tracker {
    /// Absorbs one incident update with the findings that joined it; a resolved incident is
    /// forgotten.
    pub fn absorb(&mut self, inc: &Incident, findings: &[Finding], assets: &[Member]) {
        if inc.status == IncidentStatus::Resolved {
            self.open.remove(&inc.id);
            return;
        }
        let asset = asset_of(assets, &inc.entity);
        let t = self.open.entry(inc.id.clone()).or_insert_with(|| Tracked {
            case: Case::new(inc),
            assessment: Assessment {
                risk: 0.0,
                confidence: 0.0,
                blast_radius: 0,
                criticality: 3,
            },
            cause: Cause::Unknown,
            cause_confidence: 0.0,
            opened: inc.opened,
        });
        t.case.absorb(inc, findings);
        t.assessment = assess(&t.case, asset.as_ref());
        let tenant = inc.tenant.clone();
        let dx = diagnose(t.case.diagnosis_scores(), &tenant, &self.feedback);
        if let Some(h) = dx.first() {
            t.cause = Cause::parse(&h.cause).unwrap_or(Cause::Unknown);
            t.cause_confidence = h.confidence;
        }
    }
}

pub fn asset_of(fleet: &[Member], entity: &str) -> Option<Asset> {
    fleet.iter().find(|m| m.entity == entity).map(Member::asset)
}

/// The permitted actions for an incident, in playbook priority then step order (the static
/// ladder's first rung comes first).
#[allow(clippy::too_many_arguments)]
pub fn permitted(
    pbs: &PlaybookSet,
    policy: &TenantPolicy,
    guard_cfg: &GuardConfig,
    guard: &mut BlastGuard,
    tenant: &TenantId,
    t: &Tracked,
    asset: Option<&Asset>,
    now: TimestampMs,
) -> Vec<Candidate> {
    let mut out: Vec<Candidate> = Vec::new();
    let entity = t.case.entity.as_str();
    for pb in pbs.playbooks() {
        let kinds = t.case.kinds.keys().map(String::as_str);
        if pb
            .matches(kinds, Some(t.cause), t.assessment.risk, entity, asset)
            .is_none()
        {
            continue;
        }
        for step in &pb.steps {
            let Ok(targets) = step.target.render(entity, &t.case.vars, asset) else {
                continue;
            };
            for target in targets {
                let refused = pb.allow.covering(&target).is_some()
                    || policy.allow.covering(&target).is_some()
                    || step.action.validate_target(&target).is_err();
                if refused
                    || out
                        .iter()
                        .any(|c| c.kind == step.action && c.target == target)
                {
                    continue;
                }
                let held = policy
                    .hold(
                        &pb.id,
                        pb.mode,
                        step.action,
                        t.case.max_sigma,
                        t.assessment.risk,
                    )
                    .map(|(_, why)| why)
                    .or_else(|| {
                        guard
                            .check(guard_cfg, tenant, step.action, now)
                            .err()
                            .map(|trip| {
                                format!("blast-radius guard: {} cap {}", trip.scope, trip.cap)
                            })
                    });
                let aim = if target == entity {
                    Aim::Entity
                } else if t
                    .case
                    .vars
                    .get("src_ip")
                    .is_some_and(|v| v.contains(&target))
                {
                    Aim::Address
                } else {
                    Aim::Other
                };
                out.push(Candidate {
                    kind: step.action,
                    target,
                    aim,
                    playbook: pb.id.clone(),
                    approval: held,
                });
            }
        }
    }
    out
}

/// May `kind` on `target` run now? Only a permitted action, and a held one only once a
/// human approved it.
pub fn allows(cands: &[Candidate], kind: ActionKind, target: &str, approved: bool) -> bool {
    cands
        .iter()
        .any(|c| c.kind == kind && c.target == target && (c.approval.is_none() || approved))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(kind: ActionKind, target: &str, approval: bool) -> Candidate {
        Candidate {
            kind,
            target: target.into(),
            aim: Aim::Entity,
            playbook: "p".into(),
            approval: approval.then(|| "held".into()),
        }
    }

    #[test]
    fn held_actions_need_an_approval_and_unknown_ones_never_run() {
        let c = [
            cand(ActionKind::Quarantine, "agent:a1", true),
            cand(ActionKind::RateLimit, "agent:a1", false),
        ];
        assert!(!allows(&c, ActionKind::Quarantine, "agent:a1", false));
        assert!(allows(&c, ActionKind::Quarantine, "agent:a1", true));
        assert!(allows(&c, ActionKind::RateLimit, "agent:a1", false));
        assert!(!allows(&c, ActionKind::Isolate, "agent:a1", true));
        assert!(!allows(&c, ActionKind::RateLimit, "agent:a2", true));
    }
}
