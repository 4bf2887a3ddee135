//! The post-mortem of a resolved incident: what happened, why, what it touched, what was
//! done and how long each part took, as JSON ([`Postmortem`]) and Markdown
//! ([`render_markdown`]). Pure: the response stage gathers the [`Sources`] (the incident as
//! shown, its findings, its actions, the audit records about them) and stores the result.
//!
//! ## Times
//! * `started`: the event time of the incident's first finding (`opened`).
//! * `detected`: when the response engine first assessed the incident (the earliest audit
//!   record of kind `assessment` about it) — wall clock, after ingest, detection and
//!   correlation.
//! * `responded`: when the first of its actions took effect (the earliest audit record of
//!   one of its actions with status `succeeded`).
//! * `resolved`: when it was resolved (`resolved_at`).
//!
//! **Time to detect** = `detected − started`; **time to respond** = `responded − detected`;
//! **time to recover** = `resolved − started`. Each is `null` when one of its ends is unknown
//! (no action took effect, say) and never negative: `started` comes from the sender's clock,
//! the others from the server's, so a sender running ahead is clamped to 0.

use crate::action::{Action, ActionStatus};
use crate::audit::AuditRecord;
use antibody_core::clock::format_rfc3339;
use antibody_core::{
    Explanation, Finding, Incident, IncidentStatus, Note, Resolution, Severity, TimestampMs,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Findings quoted as evidence at most (the incident counts them all).
pub const MAX_EVIDENCE: usize = 50;
/// Timeline moments kept at most (the earliest).
const MAX_MOMENTS: usize = 500;

/// What the generator reads.
pub struct Sources<'a> {
    /// The incident as the API shows it (people's work overlaid), resolved.
    pub incident: &'a Incident,
    /// Its findings (the first [`MAX_EVIDENCE`] are quoted).
    pub findings: &'a [Finding],
    pub actions: &'a [Action],
    /// Audit records about the incident, its actions and its entity, in any order.
    pub audit: &'a [AuditRecord],
    pub now: TimestampMs,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Postmortem {
    pub incident: String,
    pub entity: String,
    pub title: String,
    pub summary: String,
    #[serde(with = "antibody_core::clock::rfc3339")]
    #[schemars(with = "antibody_core::clock::Rfc3339")]
    pub generated: TimestampMs,
    pub resolution: Resolution,
    pub resolved_by: String,
    pub root_cause: RootCause,
    pub impact: Impact,
    pub times: Times,
    pub timeline: Vec<Moment>,
    pub evidence: Vec<EvidenceItem>,
    pub actions: Vec<ActionOutcome>,
    pub notes: Vec<Note>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CauseSource {
    /// A person named it when resolving.
    Analyst,
    /// The top hypothesis of the diagnosis.
    Diagnosis,
    Unknown,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RootCause {
    pub cause: String,
    pub source: CauseSource,
    /// The diagnosis' confidence, for a diagnosed cause.
    pub confidence: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Impact {
    /// The incident's entity and every other entity an action was aimed at.
    pub entities: Vec<String>,
    /// Targets of actions that are not entities (addresses, …).
    pub targets: Vec<String>,
    pub severity: Severity,
    pub risk: f64,
    pub kinds: Vec<String>,
    pub finding_count: u64,
    /// From the first finding to the last.
    pub anomaly_ms: i64,
    /// From the first finding to the resolution.
    pub duration_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Times {
    #[serde(with = "antibody_core::clock::rfc3339")]
    #[schemars(with = "antibody_core::clock::Rfc3339")]
    pub started: TimestampMs,
    pub detected: Option<String>,
    pub responded: Option<String>,
    #[serde(with = "antibody_core::clock::rfc3339")]
    #[schemars(with = "antibody_core::clock::Rfc3339")]
    pub resolved: TimestampMs,
    pub time_to_detect_ms: Option<i64>,
    pub time_to_respond_ms: Option<i64>,
    pub time_to_recover_ms: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Moment {
    #[serde(with = "antibody_core::clock::rfc3339")]
    #[schemars(with = "antibody_core::clock::Rfc3339")]
    pub ts: TimestampMs,
    /// Who: a key id, `engine`, or `null` for detection's own entries.
    pub actor: Option<String>,
    pub text: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EvidenceItem {
    pub finding: String,
    #[serde(with = "antibody_core::clock::rfc3339")]
    #[schemars(with = "antibody_core::clock::Rfc3339")]
    pub ts: TimestampMs,
    pub kind: String,
    pub severity: Severity,
    pub score: f64,
    pub explanation: Explanation,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ActionOutcome {
    pub id: String,
    pub kind: String,
    pub target: String,
    pub status: ActionStatus,
    /// It was applied at some point (succeeded, later expired or undone).
    pub took_effect: bool,
    pub result: Option<String>,
    pub playbook: String,
    pub why: String,
}

/// The post-mortem of a resolved incident; `None` while it is not resolved.
pub fn generate(src: &Sources<'_>) -> Option<Postmortem> {
    let inc = src.incident;
    let w = &inc.workflow;
    if inc.status != IncidentStatus::Resolved {
        return None;
    }
    let (resolution, resolved) = (w.resolution?, w.resolved_at?);
    let actions = outcomes(src.actions);
    let times = times(src, resolved);
    let impact = impact(inc, src.actions, resolved);
    let root_cause = root_cause(inc);
    let resolved_by = w.resolved_by.clone().unwrap_or_else(|| "engine".into());
    let summary = summary(inc, &actions, resolution, &resolved_by, &impact);
    Some(Postmortem {
        incident: inc.id.clone(),
        entity: inc.entity.clone(),
        title: format!("{} on {}", inc.kinds.join(", "), inc.entity),
        summary,
        generated: src.now,
        resolution,
        resolved_by,
        root_cause,
        impact,
        times,
        timeline: timeline(inc, src.audit),
        evidence: evidence(src.findings),
        actions,
        notes: w.notes.clone(),
    })
}

fn outcomes(actions: &[Action]) -> Vec<ActionOutcome> {
    let mut out: Vec<ActionOutcome> = actions
        .iter()
        .map(|a| ActionOutcome {
            id: a.id.clone(),
            kind: a.kind.to_string(),
            target: a.target.clone(),
            status: a.status,
            took_effect: took_effect(a),
            result: a.result.as_ref().map(|r| r.message.clone()),
            playbook: a.why.playbook.clone(),
            why: a.why.text.clone(),
        })
        .collect();
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

/// Applied at some point: it succeeded, or succeeded and later expired or was undone.
fn took_effect(a: &Action) -> bool {
    let applied = a.result.as_ref().is_some_and(|r| r.ok);
    match a.status {
        ActionStatus::Succeeded => true,
        ActionStatus::Expired | ActionStatus::Undone => applied,
        _ => false,
    }
}

fn times(src: &Sources<'_>, resolved: TimestampMs) -> Times {
    let inc = src.incident;
    let ids: BTreeSet<&str> = src.actions.iter().map(|a| a.id.as_str()).collect();
    let detected = src
        .audit
        .iter()
        .filter(|r| r.kind == "assessment" && r.subject == inc.id)
        .map(|r| r.ts)
        .min();
    let responded = src
        .audit
        .iter()
        .filter(|r| {
            ids.contains(r.subject.as_str())
                && r.data.get("status").is_some_and(|s| s == "succeeded")
        })
        .map(|r| r.ts)
        .min();
    let span =
        |from: Option<TimestampMs>, to: Option<TimestampMs>| Some(to?.saturating_sub(from?).max(0));
    Times {
        started: inc.opened,
        detected: detected.map(format_rfc3339),
        responded: responded.map(format_rfc3339),
        resolved,
        time_to_detect_ms: span(Some(inc.opened), detected),
        time_to_respond_ms: span(detected, responded),
        time_to_recover_ms: span(Some(inc.opened), Some(resolved)),
    }
}

fn impact(inc: &Incident, actions: &[Action], resolved: TimestampMs) -> Impact {
    let mut entities = BTreeSet::from([inc.entity.clone()]);
    let mut targets = BTreeSet::new();
    for a in actions {
        // Entity names carry a kind prefix (`agent:`, `host:`); addresses and CIDRs do not.
        let is_entity = a
            .target
            .split_once(':')
            .is_some_and(|(k, _)| !k.is_empty() && k.chars().all(|c| c.is_ascii_alphabetic()));
        if is_entity {
            entities.insert(a.target.clone());
        } else {
            targets.insert(a.target.clone());
        }
    }
    Impact {
        entities: entities.into_iter().collect(),
        targets: targets.into_iter().collect(),
        severity: inc.severity,
        risk: inc.risk,
        kinds: inc.kinds.clone(),
        finding_count: inc.finding_count,
        anomaly_ms: inc.updated.saturating_sub(inc.opened).max(0),
        duration_ms: resolved.saturating_sub(inc.opened).max(0),
    }
}

fn root_cause(inc: &Incident) -> RootCause {
    if let Some(c) = &inc.workflow.root_cause {
        return RootCause {
            cause: c.clone(),
            source: CauseSource::Analyst,
            confidence: None,
        };
    }
    match inc.diagnosis.first() {
        Some(h) => RootCause {
            cause: h.cause.clone(),
            source: CauseSource::Diagnosis,
            confidence: Some(h.confidence),
        },
        None => RootCause {
            cause: "unknown".into(),
            source: CauseSource::Unknown,
            confidence: None,
        },
    }
}

/// The incident's own timeline (detection and people) and what the audit says happened to
/// its entity and actions, in time order.
fn timeline(inc: &Incident, audit: &[AuditRecord]) -> Vec<Moment> {
    let mut moments: Vec<Moment> = inc
        .timeline
        .iter()
        .map(|e| Moment {
            ts: e.ts,
            actor: None,
            text: e.event.clone(),
        })
        .collect();
    // `incident` records are in the incident's timeline already; assessments are noise here.
    moments.extend(
        audit
            .iter()
            .filter(|r| !matches!(r.kind.as_str(), "incident" | "assessment"))
            .map(|r| Moment {
                ts: r.ts,
                actor: Some(r.actor.clone()),
                text: r.detail.clone(),
            }),
    );
    moments.sort_by_key(|m| m.ts);
    moments.truncate(MAX_MOMENTS);
    moments
}

fn evidence(findings: &[Finding]) -> Vec<EvidenceItem> {
    let mut items: Vec<EvidenceItem> = findings
        .iter()
        .map(|f| EvidenceItem {
            finding: f.id.clone(),
            ts: f.ts,
            kind: f.kind.clone(),
            severity: f.severity,
            score: f.score,
            explanation: f.explanation.clone(),
        })
        .collect();
    items.sort_by(|a, b| (a.ts, &a.finding).cmp(&(b.ts, &b.finding)));
    items.truncate(MAX_EVIDENCE);
    items
}

fn summary(
    inc: &Incident,
    actions: &[ActionOutcome],
    resolution: Resolution,
    resolved_by: &str,
    impact: &Impact,
) -> String {
    let effective = actions.iter().filter(|a| a.took_effect).count();
    format!(
        "{} on {} ({} severity, risk {:.1}, {} finding{}) from {}; resolved {} by {} after {}. \
         {} action{} proposed, {} took effect.",
        inc.kinds.join(", "),
        inc.entity,
        inc.severity,
        inc.risk,
        inc.finding_count,
        plural(inc.finding_count as usize),
        format_rfc3339(inc.opened),
        resolution,
        resolved_by,
        duration(impact.duration_ms),
        actions.len(),
        plural(actions.len()),
        effective,
    )
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// `1 h 2 min 3 s`, `450 ms`.
fn duration(ms: i64) -> String {
    if ms < 1_000 {
        return format!("{ms} ms");
    }
    let s = ms / 1_000;
    let (h, m, s) = (s / 3_600, s % 3_600 / 60, s % 60);
    let parts: Vec<String> = [(h, "h"), (m, "min"), (s, "s")]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, u)| format!("{n} {u}"))
        .collect();
    parts.join(" ")
}

fn opt_duration(ms: Option<i64>) -> String {
    ms.map_or_else(|| "n/a".into(), duration)
}

/// The post-mortem as Markdown, section by section.
pub fn render_markdown(pm: &Postmortem) -> String {
    let mut md = String::new();
    for section in [
        md_head(pm),
        md_root_cause(&pm.root_cause),
        md_impact(&pm.impact),
        md_times(&pm.times),
        md_actions(&pm.actions),
        md_evidence(&pm.evidence),
        md_timeline(&pm.timeline),
        md_notes(&pm.notes),
    ] {
        md.push_str(&section);
    }
    md
}

fn md_head(pm: &Postmortem) -> String {
    format!(
        "# Post-mortem: {}\n\nIncident `{}` · entity `{}` · resolved **{}** by `{}` · \
         generated {}\n\n{}\n\n",
        one_line(&pm.title),
        pm.incident,
        pm.entity,
        pm.resolution,
        pm.resolved_by,
        format_rfc3339(pm.generated),
        one_line(&pm.summary)
    )
}

fn md_root_cause(rc: &RootCause) -> String {
    let confidence = rc
        .confidence
        .map_or_else(String::new, |c| format!(", confidence {c:.2}"));
    let source = match rc.source {
        CauseSource::Analyst => "named by an analyst",
        CauseSource::Diagnosis => "top diagnosis",
        CauseSource::Unknown => "not established",
    };
    format!(
        "## Root cause\n\n{} ({source}{confidence})\n\n",
        one_line(&rc.cause)
    )
}

fn md_impact(i: &Impact) -> String {
    format!(
        "## Impact\n\n- Entities: {}\n- Other targets: {}\n- Severity {}, risk {:.1}; {} \
         finding(s) of {}\n- Anomalous for {}; {} from the first finding to the resolution\n\n",
        list(&i.entities),
        list(&i.targets),
        i.severity,
        i.risk,
        i.finding_count,
        list(&i.kinds),
        duration(i.anomaly_ms),
        duration(i.duration_ms)
    )
}

fn md_times(t: &Times) -> String {
    format!(
        "## Times\n\n| measure | value |\n|---|---|\n| started | {} |\n| detected | {} |\n\
         | responded | {} |\n| resolved | {} |\n| time to detect | {} |\n\
         | time to respond | {} |\n| time to recover | {} |\n\n",
        format_rfc3339(t.started),
        t.detected.as_deref().unwrap_or("n/a"),
        t.responded.as_deref().unwrap_or("n/a"),
        format_rfc3339(t.resolved),
        opt_duration(t.time_to_detect_ms),
        opt_duration(t.time_to_respond_ms),
        opt_duration(t.time_to_recover_ms)
    )
}

fn md_actions(actions: &[ActionOutcome]) -> String {
    let mut md = String::from("## Actions and outcomes\n\n");
    if actions.is_empty() {
        md.push_str("None.\n\n");
        return md;
    }
    md.push_str("| action | kind | target | status | took effect | result |\n");
    md.push_str("|---|---|---|---|---|---|\n");
    for a in actions {
        md.push_str(&format!(
            "| `{}` | {} | {} | {} | {} | {} |\n",
            a.id,
            a.kind,
            cell(&a.target),
            a.status,
            if a.took_effect { "yes" } else { "no" },
            cell(a.result.as_deref().unwrap_or(""))
        ));
    }
    md.push('\n');
    md
}

fn md_evidence(evidence: &[EvidenceItem]) -> String {
    let mut md = String::from("## Evidence\n\n");
    for e in evidence {
        md.push_str(&format!(
            "- {} `{}` {} ({}, score {:.2}): {}\n",
            format_rfc3339(e.ts),
            e.finding,
            e.kind,
            e.severity,
            e.score,
            one_line(&e.explanation.text)
        ));
    }
    md.push('\n');
    md
}

fn md_timeline(moments: &[Moment]) -> String {
    let mut md = String::from("## Timeline\n\n");
    for m in moments {
        let who = m
            .actor
            .as_deref()
            .map_or_else(String::new, |a| format!(" [{a}]"));
        md.push_str(&format!(
            "- {}{who} {}\n",
            format_rfc3339(m.ts),
            one_line(&m.text)
        ));
    }
    md
}

fn md_notes(notes: &[Note]) -> String {
    if notes.is_empty() {
        return String::new();
    }
    let mut md = String::from("\n## Notes\n\n");
    for n in notes {
        md.push_str(&format!(
            "- {} `{}`: {}\n",
            format_rfc3339(n.ts),
            n.actor,
            one_line(&n.text)
        ));
    }
    md
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

/// Text from findings and people on one line, so it cannot start a heading or a list.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// [`one_line`] that also cannot end a table cell.
fn cell(s: &str) -> String {
    one_line(s).replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::{ActionKind, ActionResult, Mode, Why};
    use antibody_core::{Hypothesis, TenantId, TimelineEntry, Workflow};
    use std::collections::BTreeMap;

    const T0: TimestampMs = 1_800_000_000_000;

    fn incident() -> Incident {
        Incident {
            id: "i-1".into(),
            tenant: TenantId::new("t"),
            entity: "agent:x".into(),
            status: IncidentStatus::Resolved,
            opened: T0,
            updated: T0 + 2_000,
            risk: 7.4,
            severity: Severity::High,
            kinds: vec!["token_spike".into()],
            finding_count: 3,
            max_score: 0.9,
            diagnosis: vec![Hypothesis {
                cause: "cost_overrun".into(),
                confidence: 0.7,
            }],
            findings: vec!["f-1".into()],
            actions: Vec::new(),
            timeline: vec![TimelineEntry {
                ts: T0,
                event: "incident opened".into(),
                finding: None,
            }],
            workflow: Workflow {
                resolution: Some(Resolution::Healed),
                resolved_by: Some("engine".into()),
                resolved_at: Some(T0 + 65_000),
                ..Workflow::default()
            },
        }
    }

    fn action(id: &str, target: &str, status: ActionStatus, ok: Option<bool>) -> Action {
        Action {
            id: id.into(),
            incident: "i-1".into(),
            kind: ActionKind::RateLimit,
            target: target.into(),
            params: Default::default(),
            mode: Mode::Auto,
            status,
            ttl: 3600,
            executor: "internal".into(),
            result: ok.map(|ok| ActionResult {
                ok,
                message: "applied | done".into(),
                ts: T0 + 30_000,
            }),
            why: Why {
                playbook: "token-explosion".into(),
                rule: "kinds".into(),
                text: "tokens spiked".into(),
                numbers: BTreeMap::new(),
            },
        }
    }

    fn record(ts: TimestampMs, kind: &str, subject: &str, status: Option<&str>) -> AuditRecord {
        AuditRecord {
            ts,
            tenant: "t".into(),
            actor: "engine".into(),
            kind: kind.into(),
            subject: subject.into(),
            detail: format!("{kind} {subject}"),
            data: status
                .map(|s| BTreeMap::from([("status".to_owned(), s.to_owned())]))
                .unwrap_or_default(),
        }
    }

    fn finding(id: &str, ts: TimestampMs) -> Finding {
        Finding {
            id: id.into(),
            tenant: TenantId::new("t"),
            ts,
            entity: "agent:x".into(),
            kind: "token_spike".into(),
            detector: "baseline".into(),
            severity: Severity::High,
            score: 0.9,
            explanation: Explanation::text(
                "tokens = 500000 is 40σ above the mean\n# not a heading",
            ),
            evidence: Default::default(),
            incident: Some("i-1".into()),
        }
    }

    fn sources<'a>(
        inc: &'a Incident,
        findings: &'a [Finding],
        actions: &'a [Action],
        audit: &'a [AuditRecord],
    ) -> Sources<'a> {
        Sources {
            incident: inc,
            findings,
            actions,
            audit,
            now: T0 + 70_000,
        }
    }

    #[test]
    fn times_follow_their_definitions() {
        let inc = incident();
        let actions = [
            action("a-1", "agent:x", ActionStatus::PendingApproval, None),
            action("a-2", "agent:x", ActionStatus::Expired, Some(true)),
        ];
        let audit = [
            record(T0 + 9_000, "assessment", "i-1", None),
            record(T0 + 5_000, "assessment", "i-1", None),
            record(T0 + 5_500, "assessment", "i-other", None),
            record(T0 + 20_000, "action", "a-2", Some("approved")),
            record(T0 + 31_000, "action", "a-2", Some("succeeded")),
            record(T0 + 29_000, "action", "a-elsewhere", Some("succeeded")),
        ];
        let pm = generate(&sources(&inc, &[], &actions, &audit)).unwrap();
        let t = &pm.times;
        assert_eq!(
            t.time_to_detect_ms,
            Some(5_000),
            "first assessment − opened"
        );
        assert_eq!(
            t.time_to_respond_ms,
            Some(26_000),
            "first success − detected"
        );
        assert_eq!(t.time_to_recover_ms, Some(65_000), "resolved − opened");
        assert_eq!(
            t.detected.as_deref(),
            Some(format_rfc3339(T0 + 5_000).as_str())
        );
        assert_eq!(pm.impact.duration_ms, 65_000);
        assert_eq!(pm.impact.anomaly_ms, 2_000);
        assert!(!pm.actions[0].took_effect && pm.actions[1].took_effect);
    }

    #[test]
    fn unknown_ends_are_null_and_skewed_clocks_clamp_to_zero() {
        let mut inc = incident();
        inc.opened = T0 + 10_000; // the sender's clock runs ahead of the server's
        let audit = [record(T0 + 5_000, "assessment", "i-1", None)];
        let pm = generate(&sources(&inc, &[], &[], &audit)).unwrap();
        assert_eq!(pm.times.time_to_detect_ms, Some(0));
        assert_eq!(pm.times.time_to_respond_ms, None, "nothing took effect");
        let pm = generate(&sources(&inc, &[], &[], &[])).unwrap();
        assert_eq!(pm.times.detected, None);
        assert_eq!(pm.times.time_to_detect_ms, None);
        assert_eq!(pm.times.time_to_recover_ms, Some(55_000));
    }

    #[test]
    fn only_a_resolved_incident_has_one() {
        let mut inc = incident();
        inc.status = IncidentStatus::Acknowledged;
        assert!(generate(&sources(&inc, &[], &[], &[])).is_none());
        let mut inc = incident();
        inc.workflow.resolved_at = None;
        assert!(generate(&sources(&inc, &[], &[], &[])).is_none());
    }

    #[test]
    fn root_cause_impact_and_evidence() {
        let mut inc = incident();
        let findings = [finding("f-2", T0 + 1_000), finding("f-1", T0)];
        let actions = [
            action("a-1", "203.0.113.9", ActionStatus::Succeeded, Some(true)),
            action("a-2", "host:gw", ActionStatus::Rejected, None),
        ];
        let pm = generate(&sources(&inc, &findings, &actions, &[])).unwrap();
        assert_eq!(pm.root_cause.source, CauseSource::Diagnosis);
        assert_eq!(pm.root_cause.cause, "cost_overrun");
        assert_eq!(pm.impact.entities, vec!["agent:x", "host:gw"]);
        assert_eq!(pm.impact.targets, vec!["203.0.113.9"]);
        let ids: Vec<&str> = pm.evidence.iter().map(|e| e.finding.as_str()).collect();
        assert_eq!(ids, vec!["f-1", "f-2"], "oldest first");
        assert!(
            pm.summary
                .contains("resolved healed by engine after 1 min 5 s"),
            "{}",
            pm.summary
        );
        assert!(
            pm.summary.contains("2 actions proposed, 1 took effect"),
            "{}",
            pm.summary
        );
        inc.workflow.root_cause = Some("a runaway retry loop".into());
        let pm = generate(&sources(&inc, &findings, &actions, &[])).unwrap();
        assert_eq!(pm.root_cause.source, CauseSource::Analyst);
        assert_eq!(pm.root_cause.confidence, None);
    }

    #[test]
    fn the_timeline_merges_the_incident_and_the_audit_in_time_order() {
        let inc = incident();
        let audit = [
            record(T0 + 3_000, "state", "agent:x", None),
            record(T0 + 1_000, "assessment", "i-1", None),
            record(T0 + 65_000, "incident", "i-1", None),
        ];
        let pm = generate(&sources(&inc, &[], &[], &audit)).unwrap();
        let texts: Vec<&str> = pm.timeline.iter().map(|m| m.text.as_str()).collect();
        assert_eq!(texts, vec!["incident opened", "state agent:x"]);
        assert_eq!(pm.timeline[1].actor.as_deref(), Some("engine"));
    }

    #[test]
    fn markdown_has_every_section_and_stays_well_formed() {
        let mut inc = incident();
        inc.workflow.notes.push(Note {
            ts: T0 + 40_000,
            actor: "k-1".into(),
            text: "paged the owner\n## injected".into(),
        });
        let findings = [finding("f-1", T0)];
        let actions = [action(
            "a-1",
            "agent:x",
            ActionStatus::Succeeded,
            Some(true),
        )];
        let pm = generate(&sources(&inc, &findings, &actions, &[])).unwrap();
        let md = render_markdown(&pm);
        for heading in [
            "# Post-mortem: token_spike on agent:x",
            "## Root cause",
            "## Impact",
            "## Times",
            "## Actions and outcomes",
            "## Evidence",
            "## Timeline",
            "## Notes",
        ] {
            assert!(md.lines().any(|l| l == heading), "{heading} missing:\n{md}");
        }
        assert!(md.contains("| time to recover | 1 min 5 s |"), "{md}");
        assert!(
            md.contains("applied \\| done"),
            "a pipe cannot split a cell:\n{md}"
        );
        assert!(!md
            .lines()
            .any(|l| l.starts_with("## injected") || l.starts_with("# not")));
        let json = serde_json::to_value(&pm).unwrap();
        assert_eq!(json["resolution"], "healed");
        assert_eq!(json["times"]["time_to_recover_ms"], 65_000);
        let back: Postmortem = serde_json::from_value(json).unwrap();
        assert_eq!(back, pm);
    }
}
