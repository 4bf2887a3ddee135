//! Correlation: findings of one `(tenant, entity)` within a window join one open incident.
//!
//! ## Risk (0–10)
//! `risk = base(max severity) + min(distinct kinds − 1, 2) + max score + min(log10(count), 1)`,
//! clamped to [0, 10] and rounded to one decimal, where base is info 0.5, low 2, medium 4,
//! high 6, critical 8. So one critical finding scores 8–9, and a high-severity incident
//! with three kinds of finding and a hundred findings reaches 9–10.

use antibody_core::{Finding, Incident, IncidentStatus, Severity, TimelineEntry, TimestampMs};
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

/// The open incident of one entity, as the engine keeps it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OpenIncident(pub Incident);

impl OpenIncident {
    pub fn open(id: String, finding: &Finding) -> Self {
        let mut inc = Incident {
            id,
            tenant: finding.tenant.clone(),
            entity: finding.entity.clone(),
            status: IncidentStatus::Open,
            opened: finding.ts,
            updated: finding.ts,
            risk: 0.0,
            severity: finding.severity,
            kinds: Vec::new(),
            finding_count: 0,
            max_score: 0.0,
            diagnosis: Vec::new(),
            findings: Vec::new(),
            actions: Vec::new(),
            timeline: vec![TimelineEntry { ts: finding.ts, event: "incident opened".into(), finding: None }],
        };
        let mut me = Self(inc);
        me.add(finding);
        me
    }

    /// True when `ts` falls within `window_ms` of the incident's last finding.
    pub fn accepts(&self, ts: TimestampMs, window_ms: i64) -> bool {
        ts.saturating_sub(self.0.updated) <= window_ms
    }

    pub fn add(&mut self, f: &Finding) {
        let inc = &mut self.0;
        inc.updated = inc.updated.max(f.ts);
        inc.finding_count += 1;
        inc.severity = inc.severity.max(f.severity);
        inc.max_score = inc.max_score.max(f.score);
        let new_kind = !inc.kinds.iter().any(|k| *k == f.kind);
        if new_kind {
            inc.kinds.push(f.kind.clone());
        }
        if inc.findings.len() < MAX_FINDING_IDS {
            inc.findings.push(f.id.clone());
        }
        if new_kind && inc.timeline.len() < MAX_TIMELINE {
            let text = format!("{} ({}): {}", f.kind, f.severity, f.explanation.text);
            inc.timeline.push(TimelineEntry { ts: f.ts, event: text, finding: Some(f.id.clone()) });
        }
        inc.risk = risk(inc.severity, inc.kinds.len(), inc.max_score, inc.finding_count);
    }

    /// Closes the incident at `ts` (quiet for a whole window).
    pub fn close(mut self, ts: TimestampMs) -> Incident {
        self.0.status = IncidentStatus::Closed;
        if self.0.timeline.len() < MAX_TIMELINE + 1 {
            self.0.timeline.push(TimelineEntry { ts, event: "incident closed: quiet for a full window".into(), finding: None });
        }
        self.0
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
        let mut inc = OpenIncident::open("i-1".into(), &finding("f1", 0, "token_spike", Severity::Low, 0.4));
        inc.add(&finding("f2", 1000, "token_spike", Severity::Low, 0.5));
        inc.add(&finding("f3", 2000, "cost_spike", Severity::High, 0.7));
        let i = &inc.0;
        assert_eq!(i.finding_count, 3);
        assert_eq!(i.kinds, vec!["token_spike", "cost_spike"]);
        assert_eq!(i.severity, Severity::High);
        assert_eq!(i.updated, 2000);
        assert_eq!(i.risk, risk(Severity::High, 2, 0.7, 3));
        assert!(inc.accepts(2000 + 300_000, 300_000));
        assert!(!inc.accepts(2001 + 300_000, 300_000));
        let closed = inc.close(400_000);
        assert_eq!(closed.status, IncidentStatus::Closed);
    }
}
