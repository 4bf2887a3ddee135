//! Diagnosis: ranked root-cause hypotheses from the pattern of finding kinds, adjusted per
//! tenant by analysts' feedback.
//!
//! ## Formula
//! Every finding kind is evidence for a few causes with a weight `w(kind, cause)` (the table
//! in [`evidence_for`]; unmapped kinds point at `unknown`). With `s_k` the best score of kind
//! `k` in the incident:
//!
//! * `raw(c) = Σ_k w(k, c) · (0.5 + 0.5 · s_k)`, plus a prior of 0.05 for `unknown`;
//! * feedback: `share(c) = Σ_k n(k, c) / (N(k) + 1)`, where `n(k, c)` counts the tenant's
//!   analysts naming `c` as the root cause of an incident with kind `k`, and `N(k)` all their
//!   answers for `k` (the `+1` keeps one answer from being the last word);
//! * `score(c) = raw(c) + share(c)`, and `confidence(c) = score(c) / Σ score`.
//!
//! Hypotheses are ranked by confidence (ties by the order of [`Cause`]); the top five with
//! confidence ≥ 0.01 are kept, rounded to three decimals.

use crate::RespondError;
use antibody_core::{Hypothesis, TenantId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    PromptDrift,
    PromptInjection,
    ToolLoop,
    ToolInstability,
    MemoryCorruption,
    CostOverrun,
    CredentialAbuse,
    DataExfiltration,
    ResourceAbuse,
    BruteForce,
    WebAttack,
    Reconnaissance,
    ExternalCause,
    Unknown,
}

impl Cause {
    pub const ALL: [Cause; 14] = [
        Self::PromptDrift,
        Self::PromptInjection,
        Self::ToolLoop,
        Self::ToolInstability,
        Self::MemoryCorruption,
        Self::CostOverrun,
        Self::CredentialAbuse,
        Self::DataExfiltration,
        Self::ResourceAbuse,
        Self::BruteForce,
        Self::WebAttack,
        Self::Reconnaissance,
        Self::ExternalCause,
        Self::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::PromptDrift => "prompt_drift",
            Self::PromptInjection => "prompt_injection",
            Self::ToolLoop => "tool_loop",
            Self::ToolInstability => "tool_instability",
            Self::MemoryCorruption => "memory_corruption",
            Self::CostOverrun => "cost_overrun",
            Self::CredentialAbuse => "credential_abuse",
            Self::DataExfiltration => "data_exfiltration",
            Self::ResourceAbuse => "resource_abuse",
            Self::BruteForce => "brute_force",
            Self::WebAttack => "web_attack",
            Self::Reconnaissance => "reconnaissance",
            Self::ExternalCause => "external_cause",
            Self::Unknown => "unknown",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

const UNKNOWN_PRIOR: f64 = 0.05;
const MAX_HYPOTHESES: usize = 5;

/// The causes a finding kind points at, with weights (see the module docs).
pub fn evidence_for(kind: &str) -> &'static [(Cause, f64)] {
    use Cause::*;
    match kind {
        "prompt_change" => &[(PromptDrift, 0.8), (PromptInjection, 0.3)],
        "prompt_injection" | "jailbreak" => &[(PromptInjection, 1.0)],
        "tool_explosion" => &[
            (ToolLoop, 0.8),
            (PromptInjection, 0.2),
            (ResourceAbuse, 0.2),
        ],
        "retry_spike" => &[
            (ToolInstability, 0.7),
            (ToolLoop, 0.3),
            (ExternalCause, 0.3),
        ],
        "error_spike" => &[(ToolInstability, 0.6), (ExternalCause, 0.4)],
        "latency_spike" => &[
            (ExternalCause, 0.6),
            (ToolInstability, 0.4),
            (ResourceAbuse, 0.2),
        ],
        "token_spike" => &[
            (ToolLoop, 0.4),
            (MemoryCorruption, 0.4),
            (PromptInjection, 0.3),
            (CostOverrun, 0.3),
        ],
        "input_spike" => &[(MemoryCorruption, 0.6), (PromptInjection, 0.3)],
        "output_spike" => &[
            (MemoryCorruption, 0.3),
            (DataExfiltration, 0.3),
            (ToolLoop, 0.2),
        ],
        "cost_spike" => &[(CostOverrun, 0.9), (ResourceAbuse, 0.3)],
        "brute_force" => &[(BruteForce, 1.0), (CredentialAbuse, 0.4)],
        "credential_abuse" | "impossible_travel" => &[(CredentialAbuse, 1.0)],
        "sqli" | "xss" | "path_traversal" | "cmd_injection" => &[(WebAttack, 1.0)],
        "request_flood" => &[(ResourceAbuse, 0.6), (WebAttack, 0.5)],
        "port_scan" => &[(Reconnaissance, 1.0)],
        "exfiltration" => &[(DataExfiltration, 1.0)],
        // Threat types a model named (the agent-behaviour classifier's classes).
        "threat:credential_abuse" => &[(CredentialAbuse, 1.0)],
        "threat:privilege_escalation" => &[(CredentialAbuse, 0.9), (DataExfiltration, 0.2)],
        "threat:data_exfiltration" => &[(DataExfiltration, 1.0)],
        "threat:resource_abuse" => &[(ResourceAbuse, 1.0), (CostOverrun, 0.3)],
        "threat:prompt_injection" => &[(PromptInjection, 1.0)],
        "threat:behavioral_drift" => &[(PromptDrift, 0.7), (PromptInjection, 0.3)],
        _ => &[(Unknown, 0.5)],
    }
}

/// Analysts' root causes per `(tenant, finding kind)`. Bounded by the number of kinds a
/// tenant has seen times the 14 causes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FeedbackMemory {
    counts: BTreeMap<(TenantId, String, Cause), u32>,
    totals: BTreeMap<(TenantId, String), u32>,
}

/// Kinds a single feedback call can carry; an incident with more is credited on its first.
const MAX_FEEDBACK_KINDS: usize = 32;

impl FeedbackMemory {
    /// Records that an incident with `kinds` had `root_cause`; returns the parsed cause.
    pub fn record(
        &mut self,
        tenant: &TenantId,
        kinds: &[String],
        root_cause: &str,
    ) -> Result<Cause, RespondError> {
        let cause = Cause::parse(root_cause)
            .ok_or_else(|| RespondError::UnknownCause(root_cause.into()))?;
        for kind in kinds.iter().take(MAX_FEEDBACK_KINDS) {
            *self
                .counts
                .entry((tenant.clone(), kind.clone(), cause))
                .or_insert(0) += 1;
            *self
                .totals
                .entry((tenant.clone(), kind.clone()))
                .or_insert(0) += 1;
        }
        Ok(cause)
    }

    fn share(&self, tenant: &TenantId, kind: &str, cause: Cause) -> f64 {
        let key = (tenant.clone(), kind.to_owned());
        let Some(&total) = self.totals.get(&key) else {
            return 0.0;
        };
        let n = self
            .counts
            .get(&(key.0, key.1, cause))
            .copied()
            .unwrap_or(0);
        f64::from(n) / (f64::from(total) + 1.0)
    }

    fn knows(&self, tenant: &TenantId, kind: &str) -> bool {
        self.totals.contains_key(&(tenant.clone(), kind.to_owned()))
    }
}

/// Ranks causes for an incident whose kinds have the given best scores.
pub fn diagnose<'a>(
    kind_scores: impl Iterator<Item = (&'a str, f64)> + Clone,
    tenant: &TenantId,
    feedback: &FeedbackMemory,
) -> Vec<Hypothesis> {
    let mut score = [0.0f64; Cause::ALL.len()];
    score[Cause::Unknown as usize] = UNKNOWN_PRIOR;
    for (kind, s) in kind_scores.clone() {
        let strength = 0.5 + 0.5 * s.clamp(0.0, 1.0);
        for &(cause, w) in evidence_for(kind) {
            score[cause as usize] += w * strength;
        }
    }
    for (kind, _) in kind_scores {
        if feedback.knows(tenant, kind) {
            for cause in Cause::ALL {
                score[cause as usize] += feedback.share(tenant, kind, cause);
            }
        }
    }
    let total: f64 = score.iter().sum();
    let mut ranked: Vec<(Cause, f64)> = Cause::ALL
        .into_iter()
        .map(|c| (c, score[c as usize] / total))
        .filter(|(_, conf)| *conf >= 0.01)
        .collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked.truncate(MAX_HYPOTHESES);
    ranked
        .into_iter()
        .map(|(c, conf)| Hypothesis {
            cause: c.as_str().to_owned(),
            confidence: (conf * 1000.0).round() / 1000.0,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(kinds: &[(&str, f64)], fb: &FeedbackMemory) -> Vec<Hypothesis> {
        diagnose(kinds.iter().copied(), &TenantId::new("t"), fb)
    }

    #[test]
    fn single_kinds_point_at_their_cause() {
        let fb = FeedbackMemory::default();
        for (kind, want) in [
            ("brute_force", "brute_force"),
            ("sqli", "web_attack"),
            ("port_scan", "reconnaissance"),
            ("exfiltration", "data_exfiltration"),
            ("prompt_change", "prompt_drift"),
            ("tool_explosion", "tool_loop"),
            ("cost_spike", "cost_overrun"),
            ("latency_spike", "external_cause"),
            ("rule:custom", "unknown"),
        ] {
            assert_eq!(run(&[(kind, 0.8)], &fb)[0].cause, want, "{kind}");
        }
    }

    #[test]
    fn a_models_threat_type_outranks_its_unknown_kind() {
        let fb = FeedbackMemory::default();
        let h = run(
            &[("model:agents", 0.97), ("threat:data_exfiltration", 0.97)],
            &fb,
        );
        assert_eq!(h[0].cause, "data_exfiltration");
        let h = run(&[("model:agents", 0.97)], &fb);
        assert_eq!(h[0].cause, "unknown");
    }

    #[test]
    fn confidences_are_ranked_and_sum_to_at_most_one() {
        let h = run(
            &[("token_spike", 0.9), ("tool_explosion", 0.7)],
            &FeedbackMemory::default(),
        );
        assert_eq!(h[0].cause, "tool_loop");
        assert!(h.windows(2).all(|w| w[0].confidence >= w[1].confidence));
        let sum: f64 = h.iter().map(|x| x.confidence).sum();
        assert!(sum <= 1.0 + 1e-9 && sum > 0.5, "{sum}");
    }

    #[test]
    fn feedback_moves_the_ranking_for_that_tenant_only() {
        let mut fb = FeedbackMemory::default();
        let before = run(&[("token_spike", 0.8)], &fb);
        assert_ne!(before[0].cause, "cost_overrun");
        for _ in 0..3 {
            fb.record(&TenantId::new("t"), &["token_spike".into()], "cost_overrun")
                .unwrap();
        }
        let after = run(&[("token_spike", 0.8)], &fb);
        assert_eq!(after[0].cause, "cost_overrun", "{after:?}");
        let other = diagnose([("token_spike", 0.8)].into_iter(), &TenantId::new("u"), &fb);
        assert_eq!(other, before);
    }

    #[test]
    fn unknown_root_cause_is_an_error() {
        let mut fb = FeedbackMemory::default();
        let err = fb.record(&TenantId::new("t"), &[], "gremlins").unwrap_err();
        assert_eq!(err, RespondError::UnknownCause("gremlins".into()));
    }

    #[test]
    fn cause_names_round_trip() {
        for c in Cause::ALL {
            assert_eq!(Cause::parse(c.as_str()), Some(c));
        }
    }
}
