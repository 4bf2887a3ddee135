//! Findings: what a detector says about one event (or a window of them).

use crate::{TenantId, TimestampMs};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 5] = [
        Self::Info,
        Self::Low,
        Self::Medium,
        Self::High,
        Self::Critical,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str().eq_ignore_ascii_case(s))
    }

    /// Weight used by the incident risk formula (info 0 … critical 4).
    pub fn rank(self) -> u8 {
        self as u8
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A finding kind such as `token_spike`, `sqli` or `rule:my-rule`.
pub type FindingKind = String;

/// The facts behind a finding (metric, value, mean, std, sigma; matched field and pattern; …).
pub type Evidence = serde_json::Map<String, serde_json::Value>;

/// A sentence a person can read, plus per-feature shares for model findings.
#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize)]
pub struct Explanation {
    pub text: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub contributions: BTreeMap<String, f64>,
}

impl Explanation {
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            contributions: BTreeMap::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub id: String,
    #[serde(skip_serializing, default = "crate::tenant::default_tenant")]
    pub tenant: TenantId,
    #[serde(with = "crate::clock::rfc3339")]
    pub ts: TimestampMs,
    pub entity: String,
    pub kind: FindingKind,
    pub detector: String,
    pub severity: Severity,
    pub score: f64,
    pub explanation: Explanation,
    pub evidence: Evidence,
    /// The incident this finding joined, once correlated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<String>,
}
