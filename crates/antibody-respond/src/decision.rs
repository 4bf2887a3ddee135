//! What the responder tells the server to do or record. Each [`Decision`] is published
//! (`/v1/stream`), stored, carried out (actions, undos) and appended to the audit chain via
//! [`Decision::audit_record`].

use crate::action::{Action, ActionKind};
use crate::assess::Assessment;
use crate::audit::AuditRecord;
use crate::diagnose::Cause;
use crate::fleet::FleetIncident;
use crate::lifecycle::Transition;
use antibody_core::{Hypothesis, Resolution, TenantId, TimestampMs};
use serde::Serialize;
use std::collections::BTreeMap;

/// The actor of automatic decisions in audit records.
pub const ENGINE: &str = "engine";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UndoReason {
    /// The TTL ran out.
    Expired,
    /// A person asked (`POST /v1/actions/{id}/undo`).
    Manual,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Decision {
    /// An incident's risk, confidence, blast radius or diagnosis changed.
    Assessment {
        tenant: TenantId,
        incident: String,
        entity: String,
        assessment: Assessment,
        diagnosis: Vec<Hypothesis>,
    },
    /// An entity changed lifecycle state.
    Transition(Transition),
    /// An action was created or changed status; the server runs it when `approved`.
    Action {
        tenant: TenantId,
        entity: String,
        actor: String,
        action: Action,
    },
    /// An applied action must be undone.
    Undo {
        tenant: TenantId,
        entity: String,
        actor: String,
        reason: UndoReason,
        action: Action,
    },
    /// A human must look.
    Escalation {
        tenant: TenantId,
        entity: String,
        incident: String,
        reason: String,
    },
    /// A step was not turned into an action (allow-listed target, missing variable, …).
    Skipped {
        tenant: TenantId,
        entity: String,
        incident: String,
        playbook: String,
        kind: ActionKind,
        target: String,
        reason: String,
    },
    /// A fleet incident opened, grew or closed.
    Fleet(FleetIncident),
    /// The ladder of playbook `spent` is spent (`reason`); the next hypothesis of the
    /// diagnosis, `cause` at `confidence`, gets its playbook before people are called.
    Fallback {
        tenant: TenantId,
        entity: String,
        incident: String,
        spent: String,
        cause: Cause,
        confidence: f64,
        playbook: String,
        reason: String,
    },
    /// The engine resolved an incident: `healed` when its entity passed probation,
    /// `mitigated` or `quiet` when it went quiet with or without an action that worked.
    /// The response stage applies it unless a person decided already (see
    /// [`crate::workflow::IncidentWork::engine_resolve`]).
    Resolved {
        tenant: TenantId,
        incident: String,
        entity: String,
        resolution: Resolution,
        reason: String,
    },
}

impl Decision {
    pub fn tenant(&self) -> &TenantId {
        match self {
            Self::Assessment { tenant, .. }
            | Self::Action { tenant, .. }
            | Self::Undo { tenant, .. }
            | Self::Escalation { tenant, .. }
            | Self::Skipped { tenant, .. }
            | Self::Fallback { tenant, .. } => tenant,
            Self::Resolved { tenant, .. } => tenant,
            Self::Transition(t) => &t.tenant,
            Self::Fleet(f) => &f.tenant,
        }
    }

    /// The audit record of this decision, stamped `now`.
    pub fn audit_record(&self, now: TimestampMs) -> AuditRecord {
        let mut data = BTreeMap::new();
        let (actor, kind, subject, detail) = match self {
            Self::Assessment {
                incident,
                assessment: a,
                diagnosis,
                ..
            } => {
                data.insert("risk".into(), a.risk.to_string());
                data.insert("confidence".into(), a.confidence.to_string());
                data.insert("blast_radius".into(), a.blast_radius.to_string());
                let top = diagnosis.first().map_or("unknown", |h| h.cause.as_str());
                let detail = format!("risk {} ({} likely)", a.risk, top);
                (ENGINE, "assessment", incident.clone(), detail)
            }
            Self::Transition(t) => {
                data.insert("from".into(), t.from.to_string());
                data.insert("to".into(), t.to.to_string());
                let detail = format!("{} → {}: {}", t.from, t.to, t.reason);
                (t.actor.as_str(), "state", t.entity.clone(), detail)
            }
            Self::Action {
                actor,
                action,
                entity,
                ..
            } => {
                data.insert("status".into(), action.status.to_string());
                data.insert("kind".into(), action.kind.to_string());
                data.insert("target".into(), action.target.clone());
                data.insert("incident".into(), action.incident.clone());
                data.insert("entity".into(), entity.clone());
                // What the executor said it did (or why it could not): the record of the effect.
                if let Some(result) = &action.result {
                    data.insert("result".into(), result.message.clone());
                }
                let kind = if actor == ENGINE {
                    "action"
                } else {
                    "approval"
                };
                let detail = format!(
                    "{} {} {}: {}",
                    action.kind, action.target, action.status, action.why.text
                );
                (actor.as_str(), kind, action.id.clone(), detail)
            }
            Self::Undo {
                actor,
                reason,
                action,
                ..
            } => {
                data.insert("kind".into(), action.kind.to_string());
                data.insert("target".into(), action.target.clone());
                let detail = format!("undo {} {} ({reason:?})", action.kind, action.target);
                (actor.as_str(), "undo", action.id.clone(), detail)
            }
            Self::Escalation {
                entity,
                incident,
                reason,
                ..
            } => {
                data.insert("incident".into(), incident.clone());
                (ENGINE, "escalation", entity.clone(), reason.clone())
            }
            Self::Skipped {
                entity,
                incident,
                playbook,
                kind,
                target,
                reason,
                ..
            } => {
                data.insert("incident".into(), incident.clone());
                data.insert("playbook".into(), playbook.clone());
                let detail = format!("{kind} {target} skipped: {reason}");
                (ENGINE, "skip", entity.clone(), detail)
            }
            Self::Fleet(f) => {
                data.insert("entities".into(), f.entities.len().to_string());
                data.insert("group_size".into(), f.group_size.to_string());
                let detail = format!(
                    "{} on {}/{} of group `{}`{}",
                    f.kind,
                    f.entities.len(),
                    f.group_size,
                    f.group,
                    if f.closed { " (closed)" } else { "" }
                );
                (ENGINE, "fleet", f.id.clone(), detail)
            }
            Self::Fallback {
                entity,
                incident,
                spent,
                cause,
                confidence,
                playbook,
                reason,
                ..
            } => {
                data.insert("incident".into(), incident.clone());
                data.insert("spent".into(), spent.clone());
                data.insert("cause".into(), cause.as_str().to_owned());
                data.insert("confidence".into(), confidence.to_string());
                data.insert("playbook".into(), playbook.clone());
                let detail = format!(
                    "falling back to hypothesis `{}` (confidence {confidence}) → playbook \
                     `{playbook}`: the ladder of `{spent}` is spent ({reason})",
                    cause.as_str()
                );
                (ENGINE, "fallback", entity.clone(), detail)
            }
            Self::Resolved {
                incident,
                entity,
                resolution,
                reason,
                ..
            } => {
                data.insert("op".into(), "resolve".into());
                data.insert("resolution".into(), resolution.to_string());
                data.insert("entity".into(), entity.clone());
                let detail = format!("resolved ({resolution}): {reason}");
                (ENGINE, "incident", incident.clone(), detail)
            }
        };
        AuditRecord {
            ts: now,
            tenant: self.tenant().to_string(),
            actor: actor.to_owned(),
            kind: kind.to_owned(),
            subject,
            detail,
            data,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::LifecycleState;

    fn transition(actor: &str) -> Decision {
        Decision::Transition(Transition {
            tenant: TenantId::new("t"),
            entity: "agent:a".into(),
            from: LifecycleState::Quarantined,
            to: LifecycleState::Probation,
            reason: "heal-now".into(),
            ts: 5,
            actor: actor.into(),
        })
    }

    #[test]
    fn audit_records_carry_actor_kind_and_subject() {
        let r = transition("k-9").audit_record(42);
        assert_eq!(
            (r.ts, r.actor.as_str(), r.kind.as_str()),
            (42, "k-9", "state")
        );
        assert_eq!(r.subject, "agent:a");
        assert_eq!(r.tenant, "t");
        assert_eq!(r.data["to"], "probation");
        assert!(r.detail.contains("quarantined → probation"), "{}", r.detail);
        let esc = Decision::Escalation {
            tenant: TenantId::new("t"),
            entity: "host:h".into(),
            incident: "i-1".into(),
            reason: "ladder spent".into(),
        };
        let r = esc.audit_record(1);
        assert_eq!((r.actor.as_str(), r.kind.as_str()), (ENGINE, "escalation"));
    }

    #[test]
    fn an_actions_record_carries_its_result() {
        use crate::action::{ActionResult, ActionStatus, Mode, Params, Why};
        let mut action = Action {
            id: "a-1".into(),
            incident: "i-1".into(),
            kind: ActionKind::Notify,
            target: "host:h".into(),
            params: Params::new(),
            mode: Mode::Auto,
            status: ActionStatus::Executing,
            ttl: 60,
            executor: "notify".into(),
            result: None,
            why: Why {
                playbook: "p".into(),
                rule: "r".into(),
                text: "t".into(),
                numbers: BTreeMap::new(),
            },
        };
        let decision = |action: &Action| Decision::Action {
            tenant: TenantId::new("t"),
            entity: "host:h".into(),
            actor: ENGINE.into(),
            action: action.clone(),
        };
        assert!(!decision(&action)
            .audit_record(1)
            .data
            .contains_key("result"));
        action.status = ActionStatus::Succeeded;
        action.result = Some(ActionResult {
            ok: true,
            message: "delivered to the built-in inbox".into(),
            ts: 2,
        });
        let r = decision(&action).audit_record(2);
        assert_eq!(r.data["result"], "delivered to the built-in inbox");
    }

    #[test]
    fn json_is_tagged_by_type() {
        let v = serde_json::to_value(transition("engine")).unwrap();
        assert_eq!(v["type"], "transition");
        assert_eq!(v["to"], "probation");
        assert_eq!(v["tenant"], "t");
    }
}
