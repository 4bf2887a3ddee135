//! The responder's side of the investigator: the [`Brief`] of an incident (for the prompt,
//! the validator and the template summary) and turning validated proposals into actions
//! that wait for a person. Proposals never join the playbook's ladder: the plan runs as if
//! the investigator did not exist.

use super::plan::action_id;
use super::{ActionRecord, Approval, Responder};
use crate::action::{Action, ActionKind, ActionStatus, Mode, Why};
use crate::cidr::target_ip;
use crate::decision::{Decision, ENGINE};
use crate::investigate::{proposal_text, Brief, PlannedAction, Proposal, INVESTIGATOR};
use crate::playbook::OnFailure;
use antibody_core::{TenantId, TimestampMs};
use std::collections::BTreeMap;

impl Responder {
    /// What the responder knows about an incident it is tracking, with every action the
    /// playbook took for it (a scan of all actions: for questions, not for every update).
    pub fn brief(&self, tenant: &TenantId, incident: &str) -> Option<Brief> {
        let mut brief = self.brief_facts(tenant, incident)?;
        brief.plan = self
            .st
            .actions
            .values()
            .filter(|r| &r.tenant == tenant && r.action.incident == incident)
            .filter(|r| {
                r.action.id != proposal_id(tenant, incident, r.action.kind, &r.action.target)
            })
            .map(|r| PlannedAction {
                id: r.action.id.clone(),
                kind: r.action.kind,
                target: r.action.target.clone(),
                status: r.action.status,
            })
            .collect();
        Some(brief)
    }

    /// [`Responder::brief`] without the plan (empty): cheap enough for every update.
    pub fn brief_facts(&self, tenant: &TenantId, incident: &str) -> Option<Brief> {
        let rec = self.st.cases.get(&(tenant.clone(), incident.to_owned()))?;
        let case = &rec.case;
        let mut addresses: Vec<String> = Vec::new();
        let from_vars = ["src_ip", "dst_ip"]
            .iter()
            .filter_map(|v| case.vars.get(*v))
            .flatten();
        let from_entity = case.entity.strip_prefix("ip:").map(str::to_owned);
        for text in from_vars.cloned().chain(from_entity) {
            if let Some(ip) = target_ip(&text).map(|ip| ip.to_string()) {
                if !addresses.contains(&ip) {
                    addresses.push(ip);
                }
            }
        }
        let mut allow = self.policy_for(tenant).allow.clone();
        for pb in self.playbooks_for(tenant).playbooks() {
            allow.extend(&pb.allow);
        }
        Some(Brief {
            incident: incident.to_owned(),
            entity: case.entity.clone(),
            version: case.updated,
            closed: rec.closed,
            severity: case.severity,
            finding_count: case.finding_count,
            assessment: rec.assessment,
            diagnosis: rec.diagnosis.clone(),
            kinds: case.kinds.clone(),
            addresses,
            asset: self
                .st
                .assets
                .get(&(tenant.clone(), case.entity.clone()))
                .cloned(),
            playbook: rec.plan.as_ref().map(|p| p.playbook.clone()),
            plan: Vec::new(),
            allow,
        })
    }

    /// Turns validated proposals into actions in `pending_approval` (never automatic). A
    /// proposal whose action already exists (same incident, kind and target) is left alone,
    /// so an answer handled twice proposes once.
    pub fn propose(
        &mut self,
        tenant: &TenantId,
        incident: &str,
        model: &str,
        proposals: &[Proposal],
        now: TimestampMs,
    ) -> Vec<Decision> {
        let mut out = Vec::new();
        let Some(rec) = self.st.cases.get(&(tenant.clone(), incident.to_owned())) else {
            return out;
        };
        let (entity, assessment, cause) = (rec.case.entity.clone(), rec.assessment, rec.cause);
        let policy = self.policy_for(tenant).clone();
        for p in proposals {
            let id = proposal_id(tenant, incident, p.kind, &p.target);
            if self.st.actions.contains_key(&id) {
                continue;
            }
            let mut numbers = BTreeMap::new();
            numbers.insert("risk".to_owned(), assessment.risk);
            numbers.insert("confidence".to_owned(), assessment.confidence);
            numbers.insert("ttl_s".to_owned(), (p.ttl_ms / 1000) as f64);
            numbers.insert("step".to_owned(), p.step as f64);
            let reason = format!("proposed by the investigator (model `{model}`)");
            let action = Action {
                id: id.clone(),
                incident: incident.to_owned(),
                kind: p.kind,
                target: p.target.clone(),
                params: p.params.clone(),
                mode: Mode::Approval,
                status: ActionStatus::PendingApproval,
                ttl: u64::try_from(p.ttl_ms / 1000).unwrap_or(0),
                executor: p.kind.as_str().to_owned(),
                result: None,
                why: Why {
                    playbook: INVESTIGATOR.to_owned(),
                    rule: format!("model `{model}`; step {}", p.step),
                    text: proposal_text(model, p),
                    numbers,
                },
            };
            let record = ActionRecord {
                tenant: tenant.clone(),
                entity: entity.clone(),
                reversible: p.kind.is_reversible(&p.params),
                action,
                cause,
                on_failure: OnFailure::Escalate,
                created: now,
                expires: None,
                finished: None,
                approved_at: None,
                approval: Some(Approval {
                    required: policy.approvers,
                    approvers: Vec::new(),
                    expires: now.saturating_add(policy.approval_timeout_ms),
                    escalated: false,
                    reason,
                }),
            };
            self.st
                .by_target
                .entry((tenant.clone(), p.target.clone()))
                .or_default()
                .push(id.clone());
            self.st.actions.insert(id.clone(), record);
            out.extend(self.action_decision(&id, ENGINE));
        }
        out
    }
}

/// Playbook ids cannot hold a colon, so proposal ids never collide with a playbook's.
const ID_SPACE: &str = "investigator:";

/// One id per (incident, kind, target): the investigator proposes each at most once.
fn proposal_id(tenant: &TenantId, incident: &str, kind: ActionKind, target: &str) -> String {
    let slot = ActionKind::ALL.iter().position(|k| *k == kind).unwrap_or(0);
    action_id(tenant, incident, ID_SPACE, slot, target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assess::tests::{finding, incident};
    use crate::config::ResponderConfig;
    use crate::investigate::{parse_reply, review, Limits};
    use crate::playbook::PlaybookSet;
    use antibody_core::Severity;
    use serde_json::json;
    use std::sync::Arc;

    const ATTACKER: &str = "203.0.113.9";

    /// A responder that blocked an SSH brute force from `ATTACKER` on `host:web`.
    fn blocked() -> (Responder, TenantId) {
        let pbs = PlaybookSet::default_pack().unwrap();
        let mut r = Responder::new(Arc::new(ResponderConfig::default()), Arc::new(pbs));
        let inc = incident("host:web", Severity::High, &["brute_force"]);
        let f = finding(
            "host:web",
            "brute_force",
            "rule:auth-brute-force",
            0.8,
            json!({"group_by": "src_ip", "group": ATTACKER}),
        );
        let ds = r.on_incident(&inc, &[f], 1_000);
        assert!(ds.iter().any(|d| matches!(d, Decision::Action { .. })));
        (r, TenantId::new("t"))
    }

    #[test]
    fn brief_holds_the_case_plan_and_allow_lists() {
        let (r, t) = blocked();
        assert!(r.brief(&t, "i-404").is_none());
        assert!(r.brief(&TenantId::new("other"), "i-1").is_none());
        let b = r.brief(&t, "i-1").unwrap();
        assert_eq!(b.entity, "host:web");
        assert_eq!(b.addresses, vec![ATTACKER.to_owned()]);
        assert_eq!(b.playbook.as_deref(), Some("brute-force"));
        assert_eq!(b.plan.len(), 1);
        assert_eq!(
            (b.plan[0].kind, b.plan[0].target.as_str()),
            (ActionKind::BlockIp, ATTACKER)
        );
        assert!(b.allow.covering("127.0.0.1").is_some());
        assert!(b.assessment.risk > 0.0);
    }

    #[test]
    fn proposals_wait_for_approval_once_and_stay_out_of_the_plan() {
        let (mut r, t) = blocked();
        let b = r.brief(&t, "i-1").unwrap();
        let raw = parse_reply(
            r#"{"summary": "s", "steps": [
                {"action": "quarantine", "target": "host:web", "ttl_secs": 7200, "why": "contain"},
                {"action": "notify", "target": "host:web", "params": {"channel": "secops"}}]}"#,
        )
        .unwrap();
        let proposals = review(&b, raw, &Limits::default()).proposals;
        assert_eq!(proposals.len(), 2);
        let ds = r.propose(&t, "i-1", "m-1", &proposals, 2_000);
        let acts: Vec<&Action> = ds
            .iter()
            .filter_map(|d| match d {
                Decision::Action { action, .. } => Some(action),
                _ => None,
            })
            .collect();
        assert_eq!(acts.len(), 2);
        let q = acts[0];
        assert_eq!(
            (q.kind, q.status, q.mode),
            (
                ActionKind::Quarantine,
                ActionStatus::PendingApproval,
                Mode::Approval
            )
        );
        assert_eq!(q.ttl, 7200);
        assert_eq!(q.why.playbook, INVESTIGATOR);
        assert!(
            q.why.text.contains("model `m-1`") && q.why.text.contains("contain"),
            "{}",
            q.why.text
        );
        assert_eq!(r.approval(&t, &q.id).unwrap().required, 1);
        // Proposed once: the same answer again adds nothing.
        assert!(r.propose(&t, "i-1", "m-1", &proposals, 3_000).is_empty());
        // Not part of the playbook's plan, so the next brief does not show them as such.
        assert_eq!(r.brief(&t, "i-1").unwrap().plan.len(), 1);
        // Unknown incidents get nothing.
        assert!(r.propose(&t, "i-404", "m-1", &proposals, 3_000).is_empty());
        // A person approves: it runs like any approved action.
        let ds = r.approve("k-1", &t, &q.id, 4_000).unwrap();
        assert!(ds.iter().any(|d| matches!(d, Decision::Action { action, .. } if action.status == ActionStatus::Approved)));
    }
}
