//! Correlation: findings of one `(tenant, entity)` within a window join one open incident.
//! An incident leaves the engine when it was quiet for a whole window ([`OpenIncident::close`],
//! resolved `quiet`; the response engine may call it `mitigated`) or when the response stage
//! resolved it ([`OpenIncident::seal`]); a later finding of the entity opens a new one.
//!
//! ## Risk (0–10)
//! `risk = base(max severity) + min(distinct kinds − 1, 2) + max score + min(log10(count), 1)`,
//! clamped to [0, 10] and rounded to one decimal, where base is info 0.5, low 2, medium 4,
//! high 6, critical 8. So one critical finding scores 8–9, and a high-severity incident
//! with three kinds of finding and a hundred findings reaches 9–10.

use antibody_core::{
    Finding, Incident, IncidentStatus, Resolution, Severity, TenantId, TimelineEntry, TimestampMs,
    Workflow,
};
use serde::{Deserialize, Serialize};

/// Incidents keep the ids of their first findings and the first timeline entries only; the
/// counters keep the totals. Bounds memory under a flood.
const MAX_FINDING_IDS: usize = 1000;
const MAX_TIMELINE: usize = 200;

pub fn risk(severity: Severity, distinct_kinds: usize, max_score: f64, count: u64) -> f64 {
    let base = match severity {
        Severity::Info => 0.5,
        Severity::Low => 2.0,
        Severity::Medium => 4.0,
        Severity::High => 6.0,
        Severity::Critical => 8.0,
    };
    let kinds = (distinct_kinds.saturating_sub(1)).min(2) as f64;
    let volume = (count.max(1) as f64).log10().min(1.0);
    let r = (base + kinds + max_score.clamp(0.0, 1.0) + volume).clamp(0.0, 10.0);
    (r * 10.0).round() / 10.0
}

/// The open incident of one entity, as the engine keeps it. A plain struct (no serde
/// attributes that skip fields) so it round-trips through the binary snapshot format.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OpenIncident {
    id: String,
    tenant: TenantId,
    entity: String,
    opened: TimestampMs,
    updated: TimestampMs,
    severity: Severity,
    kinds: Vec<String>,
    finding_count: u64,
    max_score: f64,
    findings: Vec<String>,
    timeline: Vec<(TimestampMs, String, Option<String>)>,
}

impl OpenIncident {
    pub fn open(id: String, finding: &Finding) -> Self {
        let mut me = Self {
            id,
            tenant: finding.tenant.clone(),
            entity: finding.entity.clone(),
            opened: finding.ts,
            updated: finding.ts,
            severity: finding.severity,
            kinds: Vec::new(),
            finding_count: 0,
            max_score: 0.0,
            findings: Vec::new(),
            timeline: vec![(finding.ts, "incident opened".into(), None)],
        };
        me.add(finding);
        me
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// True when `ts` falls within `window_ms` of the incident's last finding.
    pub fn accepts(&self, ts: TimestampMs, window_ms: i64) -> bool {
        ts.saturating_sub(self.updated) <= window_ms
    }

    pub fn add(&mut self, f: &Finding) {
        self.updated = self.updated.max(f.ts);
        self.finding_count += 1;
        self.severity = self.severity.max(f.severity);
        self.max_score = self.max_score.max(f.score);
        let new_kind = !self.kinds.contains(&f.kind);
        if new_kind {
            self.kinds.push(f.kind.clone());
        }
        if self.findings.len() < MAX_FINDING_IDS {
            self.findings.push(f.id.clone());
        }
        if new_kind && self.timeline.len() < MAX_TIMELINE {
            let text = format!("{} ({}): {}", f.kind, f.severity, f.explanation.text);
            self.timeline.push((f.ts, text, Some(f.id.clone())));
        }
    }

    /// The incident as the API shows it.
    pub fn to_incident(&self) -> Incident {
        self.build(
            IncidentStatus::Open,
            self.timeline.clone(),
            Workflow::default(),
        )
    }

    /// Closes the incident at `ts` (quiet for a whole window): resolved `quiet` by the
    /// engine, as far as detection can tell.
    pub fn close(self, ts: TimestampMs) -> Incident {
        let mut timeline = self.timeline.clone();
        timeline.push((ts, "incident closed: quiet for a full window".into(), None));
        let workflow = Workflow {
            resolution: Some(Resolution::Quiet),
            resolved_by: Some("engine".into()),
            resolved_at: Some(ts),
            ..Workflow::default()
        };
        self.build(IncidentStatus::Resolved, timeline, workflow)
    }

    /// Takes the incident out of correlation at `ts` because the response stage resolved it
    /// (its resolution lives in the stage's record, not here).
    pub fn seal(self, ts: TimestampMs) -> Incident {
        let mut timeline = self.timeline.clone();
        timeline.push((ts, "incident closed to new findings: resolved".into(), None));
        self.build(IncidentStatus::Resolved, timeline, Workflow::default())
    }

    fn build(
        &self,
        status: IncidentStatus,
        timeline: Vec<(TimestampMs, String, Option<String>)>,
        workflow: Workflow,
    ) -> Incident {
        Incident {
            id: self.id.clone(),
            tenant: self.tenant.clone(),
            entity: self.entity.clone(),
            status,
            opened: self.opened,
            updated: self.updated,
            risk: risk(
                self.severity,
                self.kinds.len(),
                self.max_score,
                self.finding_count,
            ),
            severity: self.severity,
            kinds: self.kinds.clone(),
            finding_count: self.finding_count,
            max_score: self.max_score,
            diagnosis: Vec::new(),
            findings: self.findings.clone(),
            actions: Vec::new(),
            timeline: timeline
                .into_iter()
                .map(|(ts, event, finding)| TimelineEntry { ts, event, finding })
                .collect(),
            workflow,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use antibody_core::{Explanation, TenantId};

    fn finding(id: &str, ts: i64, kind: &str, sev: Severity, score: f64) -> Finding {
        Finding {
            id: id.into(),
            tenant: TenantId::new("t"),
            ts,
            entity: "agent:a".into(),
            kind: kind.into(),
            detector: "baseline".into(),
            severity: sev,
            score,
            explanation: Explanation::text("x"),
            evidence: Default::default(),
            incident: None,
        }
    }

    #[test]
    fn risk_formula_bands() {
        assert_eq!(risk(Severity::Critical, 1, 0.9, 1), 8.9);
        assert_eq!(risk(Severity::Low, 1, 0.45, 1), 2.5);
        assert_eq!(risk(Severity::High, 3, 0.8, 100), 9.8);
        assert_eq!(risk(Severity::Critical, 5, 1.0, 1_000_000), 10.0);
    }

    #[test]
    fn incident_accumulates_kinds_and_counts() {
        let mut inc = OpenIncident::open(
            "i-1".into(),
            &finding("f1", 0, "token_spike", Severity::Low, 0.4),
        );
        inc.add(&finding("f2", 1000, "token_spike", Severity::Low, 0.5));
        inc.add(&finding("f3", 2000, "cost_spike", Severity::High, 0.7));
        let i = inc.to_incident();
        assert_eq!(i.finding_count, 3);
        assert_eq!(i.kinds, vec!["token_spike", "cost_spike"]);
        assert_eq!(i.severity, Severity::High);
        assert_eq!(i.updated, 2000);
        assert_eq!(i.risk, risk(Severity::High, 2, 0.7, 3));
        assert!(inc.accepts(2000 + 300_000, 300_000));
        assert!(!inc.accepts(2001 + 300_000, 300_000));
        let closed = inc.clone().close(400_000);
        assert_eq!(closed.status, IncidentStatus::Resolved);
        assert_eq!(closed.workflow.resolution, Some(Resolution::Quiet));
        let sealed = inc.seal(10_000);
        assert_eq!(sealed.status, IncidentStatus::Resolved);
        assert_eq!(
            sealed.workflow.resolution, None,
            "the stage's record says how"
        );
        assert!(sealed
            .timeline
            .last()
            .unwrap()
            .event
            .contains("closed to new findings"));
    }
}
