//! The response stage's side of the optional investigator (see
//! `antibody_respond::investigate` for the safety model).
//!
//! * Every incident the responder assesses gets a deterministic template summary on its
//!   response view (`GET /v1/incidents/{id}` → `summary`).
//! * With `[investigator] base_url` set, an incident is asked about once, when its risk
//!   first reaches `min_risk` (0: as soon as it is new). The question waits in a bounded
//!   queue for one of `max_concurrent` slots and the `max_per_minute` budget; it runs off
//!   this thread (findings are read and the prompt built on a blocking thread, the HTTP
//!   exchange on the runtime) and the answer comes back as a message. The playbook plan has
//!   already run by then: it never waits for the model.
//! * The answer is validated; surviving steps become actions pending approval
//!   ([`Responder::propose`]); the outcome and every dropped item are audited, stored on
//!   the view and streamed (`summary` events).
//!
//! "Once" survives restarts: the view (with the investigation's status) is stored, and a
//! question that was still pending when the process died is asked again.

use super::RespondStage;
use crate::pipeline::StreamItem;
use antibody_core::{TenantId, TimestampMs};
use antibody_executors::{AskError, AskPolicy, Investigator};
use antibody_respond::investigate::{
    self, Brief, Investigation, InvestigationStatus, Limits, PlannedAction, Summary, SummarySource,
};
use antibody_respond::{ActionKind, ActionStatus, AuditRecord, Decision};
use antibody_store::{FindingQuery, IncidentResponse, Store};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

/// The audit actor of investigator records.
const ACTOR: &str = "investigator";
/// Rate-limit window.
const MINUTE_MS: TimestampMs = 60_000;
/// Findings read to pick the incident's own (the store lists by entity).
const FINDINGS_SCAN: usize = 200;

type Key = (TenantId, String);

/// The investigator's configuration and bookkeeping, owned by the stage.
#[derive(Clone)]
pub struct InvestigatorSetup {
    pub(crate) client: Option<Arc<Investigator>>,
    pub(crate) policy: AskPolicy,
    pub(crate) limits: Limits,
}

impl Default for InvestigatorSetup {
    fn default() -> Self {
        let raw = antibody_executors::RawInvestigatorConfig::default();
        Self {
            client: None,
            policy: AskPolicy {
                min_risk: raw.min_risk,
                max_concurrent: raw.max_concurrent,
                max_per_minute: raw.max_per_minute,
                max_queued: raw.max_queued,
            },
            limits: Limits::default(),
        }
    }
}

/// Questions waiting, running and recently started.
#[derive(Default)]
pub(crate) struct Asking {
    queue: VecDeque<Key>,
    /// Queued or running in this process.
    open: BTreeSet<Key>,
    running: usize,
    /// Start times within the last minute.
    started: VecDeque<TimestampMs>,
}

impl Asking {
    /// Whether a slot and the per-minute budget allow another question now.
    fn can_start(&mut self, p: &AskPolicy, now: TimestampMs) -> bool {
        antibody_core::clock::expire_window(&mut self.started, now, MINUTE_MS);
        self.running < p.max_concurrent && self.started.len() < p.max_per_minute as usize
    }
}

/// The stage's answer message.
pub(crate) struct Answer {
    pub tenant: TenantId,
    pub incident: String,
    pub answer: Result<String, AskError>,
}

impl RespondStage {
    /// Refreshes the template summary of a view (an investigator's summary stays as it is)
    /// and queues a question when the incident qualifies.
    pub(super) fn refresh_summary(&mut self, key: &Key) {
        let Some(mut brief) = self.responder.brief_facts(&key.0, &key.1) else {
            return;
        };
        let client = self.investigator.client.clone();
        let policy = self.investigator.policy;
        let open = self.asking.open.contains(key);
        let queue_full = self.asking.queue.len() >= policy.max_queued;
        let v = self.view(&key.0, &key.1);
        let previous = v.summary.take();
        let inv = previous.as_ref().and_then(|s| s.investigator.clone());
        brief.plan = planned(v, inv.as_ref());
        if let Some(s) = previous.filter(|s| s.source == SummarySource::Investigator) {
            v.summary = Some(s);
            return;
        }
        // Never asked; asked by a process that died before the answer; or skipped while
        // the queue was full.
        let due = inv.as_ref().is_none_or(|i| match i.status {
            InvestigationStatus::Pending => !open,
            InvestigationStatus::Skipped => true,
            _ => false,
        });
        let ask = client
            .as_ref()
            .filter(|_| due && !open && !brief.closed && brief.assessment.risk >= policy.min_risk);
        let inv = match ask {
            Some(c) if queue_full => Some(note(
                c,
                InvestigationStatus::Skipped,
                format!(
                    "not asked: {} incidents were already waiting",
                    policy.max_queued
                ),
            )),
            Some(c) => Some(note(c, InvestigationStatus::Pending, "queued".into())),
            None => inv,
        };
        v.summary = Some(Summary {
            source: SummarySource::Template,
            text: investigate::template(&brief),
            version: brief.version,
            investigator: inv,
        });
        if ask.is_some() && !queue_full {
            self.asking.open.insert(key.clone());
            self.asking.queue.push_back(key.clone());
        }
    }

    /// Starts queued questions while slots and the per-minute budget allow.
    pub(super) fn pump(&mut self, now: TimestampMs) {
        let Some(client) = self.investigator.client.clone() else {
            return;
        };
        while self.asking.can_start(&self.investigator.policy, now) {
            let Some(key) = self.asking.queue.pop_front() else {
                return;
            };
            let Some(brief) = self.responder.brief(&key.0, &key.1) else {
                self.asking.open.remove(&key);
                let why = "the incident is no longer tracked".to_owned();
                self.conclude(&key, InvestigationStatus::Failed, why, None, now);
                continue;
            };
            self.asking.running += 1;
            self.asking.started.push_back(now);
            let (store, limits, own) = (
                self.store.clone(),
                self.investigator.limits,
                self.own.clone(),
            );
            let (tenant, incident) = key;
            let done_tenant = tenant.clone();
            let done_incident = incident.clone();
            client.ask_then(
                move || {
                    let findings = incident_findings(&store, &tenant, &brief, limits.max_findings);
                    investigate::prompt(&brief, &findings, &limits)
                },
                move |answer| {
                    let _ = own.send(super::RespondMsg::Investigated(Answer {
                        tenant: done_tenant,
                        incident: done_incident,
                        answer,
                    }));
                },
            );
        }
    }

    /// The model answered (or failed): validate, propose, record.
    pub(super) fn on_answer(&mut self, a: Answer, now: TimestampMs) {
        self.asking.running = self.asking.running.saturating_sub(1);
        let key = (a.tenant.clone(), a.incident.clone());
        self.asking.open.remove(&key);
        let model = self.model();
        let reviewed = a
            .answer
            .map_err(|e| e.to_string())
            .and_then(|content| investigate::parse_reply(&content).map_err(|e| e.to_string()))
            .and_then(|raw| {
                let brief = self
                    .responder
                    .brief(&a.tenant, &a.incident)
                    .ok_or_else(|| "the incident is no longer tracked".to_owned())?;
                Ok(investigate::review(&brief, raw, &self.investigator.limits))
            });
        let review = match reviewed {
            Ok(r) => r,
            Err(why) => {
                let why = format!("{why}; the template summary stands");
                self.conclude(&key, InvestigationStatus::Failed, why, None, now);
                self.pump(now);
                return;
            }
        };
        let decisions =
            self.responder
                .propose(&a.tenant, &a.incident, &model, &review.proposals, now);
        let ids: Vec<String> = decisions
            .iter()
            .filter_map(|d| match d {
                Decision::Action { action, .. } => Some(action.id.clone()),
                _ => None,
            })
            .collect();
        let (status, detail) = match &review.distrust {
            Some(why) => (
                InvestigationStatus::Distrusted,
                format!("reply distrusted, nothing of it is used: {why}"),
            ),
            None => (
                InvestigationStatus::Answered,
                format!(
                    "{} proposal(s) pending approval, {} item(s) dropped",
                    ids.len(),
                    review.dropped.len()
                ),
            ),
        };
        let dropped: Vec<String> = review.dropped.iter().map(ToString::to_string).collect();
        let outcome = Outcome {
            summary: review.summary,
            proposals: ids,
            dropped,
        };
        self.conclude(&key, status, detail, Some(outcome), now);
        if !decisions.is_empty() {
            self.apply(decisions, now);
            self.snapshot();
        }
        self.pump(now);
    }

    /// Records how a question ended: the view's summary, the audit chain, the stream.
    fn conclude(
        &mut self,
        key: &Key,
        status: InvestigationStatus,
        detail: String,
        outcome: Option<Outcome>,
        now: TimestampMs,
    ) {
        let model = self.model();
        let outcome = outcome.unwrap_or_default();
        let mut records = vec![audit(key, &model, status, &detail, now)];
        for d in &outcome.dropped {
            let mut r = audit(key, &model, status, d, now);
            r.kind = "investigator_drop".into();
            records.push(r);
        }
        let inv = Investigation {
            status,
            model,
            detail,
            proposals: outcome.proposals,
            dropped: outcome.dropped,
        };
        let facts = self.responder.brief_facts(&key.0, &key.1);
        let v = self.view(&key.0, &key.1);
        let mut summary = v.summary.take().unwrap_or_else(|| Summary {
            source: SummarySource::Template,
            text: facts
                .as_ref()
                .map(investigate::template)
                .unwrap_or_default(),
            version: facts.as_ref().map_or(0, |b| b.version),
            investigator: None,
        });
        if let Some(text) = outcome.summary {
            summary.source = SummarySource::Investigator;
            summary.text = text;
        }
        summary.investigator = Some(inv);
        v.summary = Some(summary.clone());
        let view = (key.0.clone(), key.1.clone(), v.clone());
        let chain = self.chains.entry(key.0.clone()).or_default();
        let entries: Vec<_> = records.into_iter().map(|r| chain.append(r)).collect();
        let _ = self.store_retrying(|s| {
            s.append_audit(&entries)?;
            s.put_incident_responses(std::slice::from_ref(&view))
        });
        let data = serde_json::json!({"incident": key.1, "summary": summary}).to_string();
        let _ = self.stream.send(StreamItem {
            tenant: key.0.clone(),
            event: "summary",
            data: data.into(),
        });
    }

    fn model(&self) -> String {
        self.investigator
            .client
            .as_ref()
            .map_or_else(String::new, |c| c.model().to_owned())
    }
}

/// What a validated answer leaves behind.
#[derive(Default)]
struct Outcome {
    summary: Option<String>,
    proposals: Vec<String>,
    dropped: Vec<String>,
}

fn note(c: &Arc<Investigator>, status: InvestigationStatus, detail: String) -> Investigation {
    Investigation {
        status,
        model: c.model().to_owned(),
        detail,
        proposals: Vec::new(),
        dropped: Vec::new(),
    }
}

fn audit(
    key: &Key,
    model: &str,
    status: InvestigationStatus,
    detail: &str,
    now: TimestampMs,
) -> AuditRecord {
    let mut data = BTreeMap::new();
    data.insert("model".to_owned(), model.to_owned());
    data.insert("incident".to_owned(), key.1.clone());
    let status = serde_json::to_value(status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    data.insert("status".to_owned(), status);
    AuditRecord {
        ts: now,
        tenant: key.0.to_string(),
        actor: ACTOR.to_owned(),
        kind: "investigator".to_owned(),
        subject: key.1.clone(),
        detail: detail.to_owned(),
        data,
    }
}

/// The playbook's actions as the view lists them (the investigator's proposals left out).
fn planned(v: &IncidentResponse, inv: Option<&Investigation>) -> Vec<PlannedAction> {
    let proposed = |id: &str| inv.is_some_and(|i| i.proposals.iter().any(|p| p == id));
    v.actions
        .iter()
        .filter_map(|a| {
            let id = a["id"].as_str()?;
            let kind = ActionKind::parse(a["kind"].as_str()?)?;
            let status: ActionStatus = serde_json::from_value(a["status"].clone()).ok()?;
            (!proposed(id)).then(|| PlannedAction {
                id: id.to_owned(),
                kind,
                target: a["target"].as_str().unwrap_or_default().to_owned(),
                status,
            })
        })
        .collect()
}

/// The incident's findings, newest first (a blocking store read, off the stage thread).
fn incident_findings(
    store: &Store,
    tenant: &TenantId,
    brief: &Brief,
    max: usize,
) -> Vec<antibody_core::Finding> {
    let query = FindingQuery {
        entity: Some(brief.entity.clone()),
        limit: FINDINGS_SCAN,
        ..FindingQuery::default()
    };
    match store.list_findings(tenant, &query) {
        Ok(found) => found
            .into_iter()
            .filter(|f| f.incident.as_deref() == Some(brief.incident.as_str()))
            .take(max)
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, incident = %brief.incident, "reading findings for the investigator failed");
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_window_and_slots() {
        let p = AskPolicy {
            min_risk: 0.0,
            max_concurrent: 2,
            max_per_minute: 3,
            max_queued: 8,
        };
        let mut a = Asking::default();
        assert!(a.can_start(&p, 0));
        a.running = 2;
        assert!(!a.can_start(&p, 0), "slots full");
        a.running = 0;
        a.started.extend([0, 10, 20]);
        assert!(!a.can_start(&p, 59_999), "three in the last minute");
        assert!(a.can_start(&p, 60_000), "the first left the window");
        assert_eq!(a.started.len(), 2);
    }

    #[test]
    fn planned_skips_proposals_and_bad_rows() {
        let v = IncidentResponse {
            risk: 1.0,
            confidence: 0.5,
            blast_radius: 1,
            diagnosis: vec![],
            actions: vec![
                serde_json::json!({"id": "a-1", "kind": "block_ip", "target": "1.2.3.4", "status": "succeeded"}),
                serde_json::json!({"id": "a-2", "kind": "quarantine", "target": "host:x", "status": "pending_approval"}),
                serde_json::json!({"id": "a-3", "kind": "nuke", "target": "x", "status": "approved"}),
            ],
            summary: None,
            work: Default::default(),
        };
        let inv = Investigation {
            status: InvestigationStatus::Answered,
            model: "m".into(),
            detail: String::new(),
            proposals: vec!["a-2".into()],
            dropped: vec![],
        };
        let plan = planned(&v, Some(&inv));
        assert_eq!(plan.len(), 1);
        assert_eq!(
            (plan[0].kind, plan[0].status),
            (ActionKind::BlockIp, ActionStatus::Succeeded)
        );
        assert_eq!(planned(&v, None).len(), 2);
    }
}
