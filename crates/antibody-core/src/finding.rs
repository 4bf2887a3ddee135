//! Findings: what a detector says about one event (or a window of them).

use crate::{TenantId, TimestampMs};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
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

/// Which detector produced a finding. On the wire a string: `baseline`, `profile`,
/// `rule:<id>` or `model:<name>`; a name this build does not know is kept as written (`Other`), so findings
/// stored by a newer build still load.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Detector {
    /// Per-entity baselines and tracked attributes.
    Baseline,
    /// Learned web-application profiles (`web_anomaly`).
    Profile,
    /// A signature or threshold rule, by id.
    Rule(String),
    /// A served model, by name.
    Model(String),
    Other(String),
}

impl Detector {
    pub fn parse(s: &str) -> Self {
        if s == "baseline" {
            Self::Baseline
        } else if s == "profile" {
            Self::Profile
        } else if let Some(id) = s.strip_prefix("rule:") {
            Self::Rule(id.to_owned())
        } else if let Some(name) = s.strip_prefix("model:") {
            Self::Model(name.to_owned())
        } else {
            Self::Other(s.to_owned())
        }
    }

    pub fn is_rule(&self) -> bool {
        matches!(self, Self::Rule(_))
    }

    pub fn is_model(&self) -> bool {
        matches!(self, Self::Model(_))
    }
}

impl std::fmt::Display for Detector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Baseline => f.write_str("baseline"),
            Self::Profile => f.write_str("profile"),
            Self::Rule(id) => write!(f, "rule:{id}"),
            Self::Model(name) => write!(f, "model:{name}"),
            Self::Other(s) => f.write_str(s),
        }
    }
}

/// Compares with the wire form (`"rule:x"`), without allocating.
impl PartialEq<str> for Detector {
    fn eq(&self, other: &str) -> bool {
        match self {
            Self::Baseline => other == "baseline",
            Self::Profile => other == "profile",
            Self::Rule(id) => other.strip_prefix("rule:") == Some(id.as_str()),
            Self::Model(name) => other.strip_prefix("model:") == Some(name.as_str()),
            Self::Other(s) => other == s,
        }
    }
}

impl PartialEq<&str> for Detector {
    fn eq(&self, other: &&str) -> bool {
        self == *other
    }
}

impl From<&str> for Detector {
    fn from(s: &str) -> Self {
        Self::parse(s)
    }
}

impl From<String> for Detector {
    fn from(s: String) -> Self {
        Self::parse(&s)
    }
}

/// `baseline`, `profile`, `rule:<id>`, `model:<name>` or another detector's name.
impl JsonSchema for Detector {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Detector".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string", "minLength": 1})
    }
}

/// A string in every format (JSON and the binary snapshots alike), so the encoding is the
/// one the field had when it was a plain string.
impl Serialize for Detector {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Detector {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
        Ok(Self::parse(&s))
    }
}

/// A finding kind such as `token_spike`, `sqli` or `rule:my-rule`.
pub type FindingKind = String;

/// The facts behind a finding (metric, value, mean, std, sigma; matched field and pattern; …).
pub type Evidence = serde_json::Map<String, serde_json::Value>;

/// A sentence a person can read, plus per-feature shares for model findings.
#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
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

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Finding {
    pub id: String,
    #[serde(skip_serializing, default = "crate::tenant::default_tenant")]
    pub tenant: TenantId,
    #[serde(with = "crate::clock::rfc3339")]
    #[schemars(with = "crate::clock::Rfc3339")]
    pub ts: TimestampMs,
    pub entity: String,
    pub kind: FindingKind,
    pub detector: Detector,
    pub severity: Severity,
    pub score: f64,
    pub explanation: Explanation,
    pub evidence: Evidence,
    /// The incident this finding joined, once correlated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::Detector;

    #[test]
    fn detectors_round_trip_as_their_strings() {
        for (s, d) in [
            ("baseline", Detector::Baseline),
            ("profile", Detector::Profile),
            (
                "rule:ssh-brute-force",
                Detector::Rule("ssh-brute-force".into()),
            ),
            ("model:agents", Detector::Model("agents".into())),
            ("sigma", Detector::Other("sigma".into())),
        ] {
            assert_eq!(Detector::parse(s), d);
            assert!(d == s && d != "rule:other");
            assert_eq!(d.to_string(), s);
            let json = serde_json::to_string(&d).unwrap();
            assert_eq!(json, format!("\"{s}\""));
            assert_eq!(serde_json::from_str::<Detector>(&json).unwrap(), d);
            // The binary encoding is the plain string's, as before the enum.
            let bin = postcard::to_stdvec(&d).unwrap();
            assert_eq!(bin, postcard::to_stdvec(s).unwrap());
            assert_eq!(postcard::from_bytes::<Detector>(&bin).unwrap(), d);
        }
    }
}
