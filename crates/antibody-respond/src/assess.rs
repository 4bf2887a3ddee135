//! Assessment: what the responder knows about one incident (a [`Case`], accumulated over the
//! incident's updates) and its risk, confidence and blast radius.
//!
//! ## Formula
//! * Severity points `S`: info 1, low 3, medium 5, high 7, critical 9 (the worst finding).
//! * Confidence `C = 1 − Π_k (1 − s_k)` over the distinct finding kinds, `s_k` the kind's best
//!   score — independent detectors agreeing raise it (noisy-OR); capped at 0.99.
//! * Criticality factor `M = 0.6 + 0.2 · (criticality − 1)`: 0.6 for a 1, 1.0 for the
//!   default 3, 1.4 for a 5.
//! * Blast radius `B`: distinct entities involved — the incident's entity plus the distinct
//!   `src_ip`, `dst_ip`, `user` and `host` values in the evidence (capped at 64); the bonus
//!   is `0.5 · min(log2 B, 3)`.
//! * `risk = clamp(S · (0.5 + 0.5 · C) · M + 0.5 · min(log2 B, 3), 0, 10)`, one decimal.
//!
//! So a single critical finding with score 0.8 on a default asset scores 8.1; the same on a
//! criticality-5 asset scores 10; a low finding on a criticality-1 asset stays below 2.

use crate::asset::{Asset, DEFAULT_CRITICALITY};
use antibody_core::{Finding, Incident, Severity, TimestampMs};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Evidence keys that become template variables (`{{src_ip}}`) and count toward blast radius.
pub const EVIDENCE_VARS: &[&str] = &[
    "src_ip", "dst_ip", "user", "host", "service", "tool", "model",
];
const BLAST_VARS: &[&str] = &["src_ip", "dst_ip", "user", "host"];
/// Distinct values kept per variable and distinct blast-radius entities kept per case.
const MAX_VALUES: usize = 16;
const MAX_BLAST: usize = 64;

/// Per finding kind: best score, worst σ and how many findings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct KindStats {
    pub max_score: f64,
    pub max_sigma: f64,
    pub count: u64,
}

/// One incident as the responder sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Case {
    pub incident: String,
    pub entity: String,
    pub updated: TimestampMs,
    pub severity: Severity,
    pub finding_count: u64,
    pub kinds: BTreeMap<String, KindStats>,
    /// Template variables from evidence: name → distinct values in arrival order.
    pub vars: BTreeMap<String, Vec<String>>,
    pub blast: BTreeSet<String>,
    /// A rule or model finding was seen, or a σ beyond the skip threshold: no suspect window.
    pub max_sigma: f64,
    pub has_rule_finding: bool,
}

impl Case {
    pub fn new(incident: &Incident) -> Self {
        let mut blast = BTreeSet::new();
        blast.insert(incident.entity.clone());
        Self {
            incident: incident.id.clone(),
            entity: incident.entity.clone(),
            updated: incident.updated,
            severity: incident.severity,
            finding_count: 0,
            kinds: BTreeMap::new(),
            vars: BTreeMap::new(),
            blast,
            max_sigma: 0.0,
            has_rule_finding: false,
        }
    }

    /// Folds an incident update and its new findings into the case.
    pub fn absorb(&mut self, incident: &Incident, findings: &[Finding]) {
        self.updated = self.updated.max(incident.updated);
        self.severity = self.severity.max(incident.severity);
        self.finding_count = self.finding_count.max(incident.finding_count);
        for kind in &incident.kinds {
            if !self.kinds.contains_key(kind) {
                let stats = KindStats {
                    max_score: incident.max_score,
                    ..KindStats::default()
                };
                self.kinds.insert(kind.clone(), stats);
            }
        }
        for f in findings {
            self.add_finding(f);
        }
    }

    fn add_finding(&mut self, f: &Finding) {
        let sigma = f
            .evidence
            .get("sigma")
            .and_then(serde_json::Value::as_f64)
            .unwrap_or(0.0);
        let stats = self.kinds.entry(f.kind.clone()).or_default();
        stats.max_score = stats.max_score.max(f.score);
        stats.max_sigma = stats.max_sigma.max(sigma);
        stats.count += 1;
        self.max_sigma = self.max_sigma.max(sigma);
        if f.detector.is_rule() {
            self.has_rule_finding = true;
        }
        // Kept as a variable (`{model_threat}`), not a new field: the case is part of the
        // responder's snapshot, whose encoding has no room for added fields.
        if let Some(t) = model_threat(f) {
            self.add_var(MODEL_THREAT, format!("threat:{t}"));
        }
        for (key, value) in &f.evidence {
            let name = if key == "group" {
                match f.evidence.get("group_by").and_then(|v| v.as_str()) {
                    Some(n) => n,
                    None => continue,
                }
            } else {
                key.as_str()
            };
            let Some(name) = EVIDENCE_VARS.iter().find(|v| **v == name) else {
                continue;
            };
            let text = match value {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(n) => n.to_string(),
                _ => continue,
            };
            self.add_var(name, text);
        }
        if let Some(ip) = f.entity.strip_prefix("ip:") {
            self.add_var("src_ip", ip.to_owned());
        }
    }

    fn add_var(&mut self, name: &str, value: String) {
        if BLAST_VARS.contains(&name) && self.blast.len() < MAX_BLAST {
            self.blast.insert(format!("{name}:{value}"));
        }
        let values = self.vars.entry(name.to_owned()).or_default();
        if values.len() < MAX_VALUES && !values.contains(&value) {
            values.push(value);
        }
    }

    /// `(kind, best score)` pairs.
    pub fn kind_scores(&self) -> impl Iterator<Item = (&str, f64)> + Clone {
        self.kinds.iter().map(|(k, s)| (k.as_str(), s.max_score))
    }

    /// What diagnosis weighs: the kinds, plus each threat type a model named
    /// (`threat:<type>`, at the best model score), since a finding kind `model:<name>` says
    /// nothing of the cause.
    pub fn diagnosis_scores(&self) -> impl Iterator<Item = (&str, f64)> + Clone {
        let model_score = self
            .kinds
            .iter()
            .filter(|(k, _)| k.starts_with("model:"))
            .map(|(_, s)| s.max_score)
            .fold(0.0, f64::max);
        let threats = self.vars.get(MODEL_THREAT).into_iter().flatten();
        self.kind_scores()
            .chain(threats.map(move |t| (t.as_str(), model_score)))
    }
}

/// Risk and its inputs, kept so `why` can show them.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Assessment {
    pub risk: f64,
    pub confidence: f64,
    pub blast_radius: u32,
    pub criticality: u8,
}

/// The template variable holding the threat types models named, as `threat:<type>`.
const MODEL_THREAT: &str = "model_threat";

/// The threat type a reported model finding names (`evidence.threat_type`).
fn model_threat(f: &Finding) -> Option<&str> {
    if !f.detector.is_model() || f.kind == "model_drift" {
        return None;
    }
    f.evidence.get("threat_type")?.as_str()
}

pub fn severity_points(s: Severity) -> f64 {
    match s {
        Severity::Info => 1.0,
        Severity::Low => 3.0,
        Severity::Medium => 5.0,
        Severity::High => 7.0,
        Severity::Critical => 9.0,
    }
}

/// Noisy-OR of the per-kind best scores, capped at 0.99.
pub fn confidence<'a>(scores: impl Iterator<Item = (&'a str, f64)>) -> f64 {
    let miss: f64 = scores.map(|(_, s)| 1.0 - s.clamp(0.0, 1.0)).product();
    (1.0 - miss).clamp(0.0, 0.99)
}

/// The risk formula of the module docs.
pub fn risk(severity: Severity, confidence: f64, criticality: u8, blast_radius: u32) -> f64 {
    let m = 0.6 + 0.2 * (f64::from(criticality.clamp(1, 5)) - 1.0);
    let blast = 0.5 * f64::from(blast_radius.max(1)).log2().min(3.0);
    let r = severity_points(severity) * (0.5 + 0.5 * confidence.clamp(0.0, 1.0)) * m + blast;
    (r.clamp(0.0, 10.0) * 10.0).round() / 10.0
}

pub fn assess(case: &Case, asset: Option<&Asset>) -> Assessment {
    let criticality = asset.map_or(DEFAULT_CRITICALITY, |a| a.criticality);
    let confidence = confidence(case.kind_scores());
    let blast_radius = u32::try_from(case.blast.len()).unwrap_or(u32::MAX);
    Assessment {
        risk: risk(case.severity, confidence, criticality, blast_radius),
        confidence: (confidence * 1000.0).round() / 1000.0,
        blast_radius,
        criticality,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use antibody_core::{Explanation, IncidentStatus, TenantId};
    use serde_json::json;

    pub(crate) fn finding(
        entity: &str,
        kind: &str,
        detector: &str,
        score: f64,
        ev: serde_json::Value,
    ) -> Finding {
        Finding {
            id: format!("f-{kind}"),
            tenant: TenantId::new("t"),
            ts: 1_000,
            entity: entity.into(),
            kind: kind.into(),
            detector: detector.into(),
            severity: Severity::High,
            score,
            explanation: Explanation::text("x"),
            evidence: ev.as_object().cloned().unwrap_or_default(),
            incident: Some("i-1".into()),
        }
    }

    pub(crate) fn incident(entity: &str, sev: Severity, kinds: &[&str]) -> Incident {
        Incident {
            id: "i-1".into(),
            tenant: TenantId::new("t"),
            entity: entity.into(),
            status: IncidentStatus::Open,
            opened: 1_000,
            updated: 1_000,
            risk: 0.0,
            severity: sev,
            kinds: kinds.iter().map(|k| k.to_string()).collect(),
            finding_count: 1,
            max_score: 0.5,
            diagnosis: Vec::new(),
            findings: Vec::new(),
            actions: Vec::new(),
            timeline: Vec::new(),
            workflow: Default::default(),
        }
    }

    #[test]
    fn risk_formula_examples() {
        assert_eq!(risk(Severity::Critical, 0.8, 3, 1), 8.1);
        assert_eq!(risk(Severity::Critical, 0.8, 5, 1), 10.0);
        assert!(risk(Severity::Low, 0.5, 1, 1) < 2.0);
        assert_eq!(risk(Severity::High, 1.0, 3, 8), 8.5);
        assert_eq!(risk(Severity::High, 1.0, 3, 1000), 8.5);
        assert!(risk(Severity::Medium, 0.5, 3, 1) < risk(Severity::Medium, 0.5, 4, 1));
    }

    #[test]
    fn confidence_is_noisy_or() {
        assert_eq!(confidence([("a", 0.5)].into_iter()), 0.5);
        assert_eq!(confidence([("a", 0.5), ("b", 0.5)].into_iter()), 0.75);
        assert_eq!(confidence([("a", 1.0)].into_iter()), 0.99);
        assert_eq!(confidence(std::iter::empty()), 0.0);
    }

    #[test]
    fn model_threat_types_reach_diagnosis_but_not_kinds() {
        let inc = incident("agent-1", Severity::High, &["model:agents"]);
        let mut case = Case::new(&inc);
        let named = json!({"threat_type": "data_exfiltration"});
        let f = finding(
            "agent-1",
            "model:agents",
            "model:agents",
            0.97,
            named.clone(),
        );
        let drift = finding("model:agents", "model_drift", "model:agents", 0.6, named);
        let rule = finding(
            "agent-1",
            "sqli",
            "rule:sqli",
            0.9,
            json!({"threat_type": "x"}),
        );
        case.absorb(&inc, &[f, drift, rule]);
        let scores: Vec<(&str, f64)> = case.diagnosis_scores().collect();
        assert!(scores.contains(&("threat:data_exfiltration", 0.97)));
        assert_eq!(
            case.vars[MODEL_THREAT],
            ["threat:data_exfiltration"],
            "only model findings name a threat"
        );
        assert!(case.kind_scores().all(|(k, _)| !k.starts_with("threat:")));
    }

    #[test]
    fn case_collects_vars_sigma_and_blast_radius() {
        let inc = incident("host:web", Severity::High, &["brute_force"]);
        let mut case = Case::new(&inc);
        let f1 = finding(
            "host:web",
            "brute_force",
            "rule:auth-brute-force",
            0.8,
            json!({"group_by": "src_ip", "group": "203.0.113.9", "count": 10}),
        );
        let f2 = finding(
            "host:web",
            "token_spike",
            "baseline",
            0.7,
            json!({"sigma": 6.5, "user": "root"}),
        );
        case.absorb(&inc, &[f1, f2]);
        assert_eq!(case.vars["src_ip"], vec!["203.0.113.9"]);
        assert_eq!(case.vars["user"], vec!["root"]);
        assert_eq!(case.max_sigma, 6.5);
        assert!(case.has_rule_finding);
        assert_eq!(case.blast.len(), 3);
        let a = assess(&case, None);
        assert_eq!(a.blast_radius, 3);
        assert_eq!(a.criticality, 3);
        assert!((a.confidence - 0.94).abs() < 1e-9, "{a:?}");
    }

    #[test]
    fn ip_entities_are_their_own_source() {
        let inc = incident("ip:198.51.100.7", Severity::Medium, &["port_scan"]);
        let mut case = Case::new(&inc);
        case.absorb(
            &inc,
            &[finding(
                "ip:198.51.100.7",
                "port_scan",
                "rule:port-scan",
                0.6,
                json!({}),
            )],
        );
        assert_eq!(case.vars["src_ip"], vec!["198.51.100.7"]);
    }
}
