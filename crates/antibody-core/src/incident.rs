//! Incidents: findings of one `(tenant, entity)` correlated within a time window, and the
//! work people (and the response engine) do on them: acknowledge, assign, note, resolve.
//!
//! Detection writes the incident's facts (findings, kinds, risk, its timeline) and closes
//! one that went quiet; everything in [`Workflow`] is written by the response stage only,
//! so a later detection update never overwrites what people set.

use crate::{Severity, TenantId, TimestampMs};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where an incident stands. `closed` (the name before people could work incidents) reads
/// as `resolved`.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum IncidentStatus {
    Open,
    Acknowledged,
    #[serde(alias = "closed")]
    Resolved,
}

impl IncidentStatus {
    pub const ALL: [IncidentStatus; 3] = [Self::Open, Self::Acknowledged, Self::Resolved];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Acknowledged => "acknowledged",
            Self::Resolved => "resolved",
        }
    }

    /// The status named `s`; `closed` is the old name of `resolved`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "closed" => Some(Self::Resolved),
            _ => Self::ALL.into_iter().find(|st| st.as_str() == s),
        }
    }
}

impl std::fmt::Display for IncidentStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a resolved incident ended.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// The entity passed probation after the response engine acted.
    Healed,
    /// Actions took effect and the incident went quiet (or a person says so).
    Mitigated,
    FalsePositive,
    /// The cause lies outside (a provider outage, a fleet-wide event).
    External,
    AcceptedRisk,
    /// Set by the engine only: no action took effect and the incident went quiet for a
    /// whole correlation window.
    Quiet,
}

impl Resolution {
    pub const ALL: [Resolution; 6] = [
        Self::Healed,
        Self::Mitigated,
        Self::FalsePositive,
        Self::External,
        Self::AcceptedRisk,
        Self::Quiet,
    ];

    /// The resolutions a person may give (`quiet` describes what the engine saw).
    pub const BY_PEOPLE: [Resolution; 5] = [
        Self::Healed,
        Self::Mitigated,
        Self::FalsePositive,
        Self::External,
        Self::AcceptedRisk,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Healed => "healed",
            Self::Mitigated => "mitigated",
            Self::FalsePositive => "false_positive",
            Self::External => "external",
            Self::AcceptedRisk => "accepted_risk",
            Self::Quiet => "quiet",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl std::fmt::Display for Resolution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One note a person left on an incident.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Note {
    #[serde(with = "crate::clock::rfc3339")]
    #[schemars(with = "crate::clock::Rfc3339")]
    pub ts: TimestampMs,
    /// The key id of the author.
    pub actor: String,
    pub text: String,
}

/// What people and the response engine set on an incident. Always present in the JSON
/// (`null` / `[]` when unset) so clients see one shape.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct Workflow {
    pub assignee: Option<String>,
    pub acknowledged_by: Option<String>,
    #[serde(with = "opt_rfc3339")]
    #[schemars(with = "Option<crate::clock::Rfc3339>")]
    pub acknowledged_at: Option<TimestampMs>,
    pub resolution: Option<Resolution>,
    /// A diagnosis cause (`brute_force`, …) or a person's free text.
    pub root_cause: Option<String>,
    /// A key id, or `engine`.
    pub resolved_by: Option<String>,
    #[serde(with = "opt_rfc3339")]
    #[schemars(with = "Option<crate::clock::Rfc3339>")]
    pub resolved_at: Option<TimestampMs>,
    pub notes: Vec<Note>,
}

/// [`crate::clock::rfc3339`] for optional timestamps.
mod opt_rfc3339 {
    use crate::TimestampMs;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ts: &Option<TimestampMs>, s: S) -> Result<S::Ok, S::Error> {
        match ts {
            Some(t) => crate::clock::rfc3339::serialize(t, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<TimestampMs>, D::Error> {
        #[derive(Deserialize)]
        struct Wrap(#[serde(with = "crate::clock::rfc3339")] TimestampMs);
        Ok(Option::<Wrap>::deserialize(d)?.map(|w| w.0))
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Hypothesis {
    pub cause: String,
    pub confidence: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TimelineEntry {
    #[serde(with = "crate::clock::rfc3339")]
    #[schemars(with = "crate::clock::Rfc3339")]
    pub ts: TimestampMs,
    pub event: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finding: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Incident {
    pub id: String,
    #[serde(skip_serializing, default = "crate::tenant::default_tenant")]
    pub tenant: TenantId,
    pub entity: String,
    pub status: IncidentStatus,
    #[serde(with = "crate::clock::rfc3339")]
    #[schemars(with = "crate::clock::Rfc3339")]
    pub opened: TimestampMs,
    #[serde(with = "crate::clock::rfc3339")]
    #[schemars(with = "crate::clock::Rfc3339")]
    pub updated: TimestampMs,
    /// 0–10; see `antibody_detect::correlate::risk` for the formula.
    pub risk: f64,
    pub severity: Severity,
    pub kinds: Vec<String>,
    pub finding_count: u64,
    pub max_score: f64,
    pub diagnosis: Vec<Hypothesis>,
    /// Ids of the findings (the first 1,000; `finding_count` has the total).
    pub findings: Vec<String>,
    pub actions: Vec<serde_json::Value>,
    pub timeline: Vec<TimelineEntry>,
    #[serde(flatten)]
    pub workflow: Workflow,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An incident body as stored before incidents could be worked by people.
    const OLD_BODY: &str = r#"{"id":"i-1","entity":"agent:a","status":"closed",
        "opened":"2026-11-21T10:00:00Z","updated":"2026-11-21T10:01:00Z","risk":4.5,
        "severity":"medium","kinds":["token_spike"],"finding_count":2,"max_score":0.5,
        "diagnosis":[],"findings":["f-1-0"],"actions":[],"timeline":[]}"#;

    #[test]
    fn an_old_closed_body_loads_as_resolved_with_no_workflow() {
        let i: Incident = serde_json::from_str(OLD_BODY).unwrap();
        assert_eq!(i.status, IncidentStatus::Resolved);
        assert_eq!(i.workflow, Workflow::default());
    }

    #[test]
    fn workflow_fields_are_always_in_the_json_and_round_trip() {
        let mut i: Incident = serde_json::from_str(OLD_BODY).unwrap();
        let v = serde_json::to_value(&i).unwrap();
        assert_eq!(v["status"], "resolved");
        for field in ["assignee", "acknowledged_by", "resolution", "root_cause"] {
            assert!(v[field].is_null(), "{field} in {v}");
        }
        assert_eq!(v["notes"], serde_json::json!([]));
        i.workflow = Workflow {
            assignee: Some("k-2".into()),
            acknowledged_by: Some("k-1".into()),
            acknowledged_at: Some(1_000),
            resolution: Some(Resolution::FalsePositive),
            root_cause: Some("a load test".into()),
            resolved_by: Some("k-1".into()),
            resolved_at: Some(2_000),
            notes: vec![Note {
                ts: 1_500,
                actor: "k-1".into(),
                text: "looked".into(),
            }],
        };
        let v = serde_json::to_value(&i).unwrap();
        assert_eq!(v["resolution"], "false_positive");
        assert_eq!(v["acknowledged_at"], "1970-01-01T00:00:01.000Z");
        assert_eq!(v["notes"][0]["actor"], "k-1");
        let back: Incident = serde_json::from_value(v).unwrap();
        assert_eq!(back.workflow, i.workflow);
    }

    #[test]
    fn names_parse_and_closed_is_an_alias() {
        for s in IncidentStatus::ALL {
            assert_eq!(IncidentStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(
            IncidentStatus::parse("closed"),
            Some(IncidentStatus::Resolved)
        );
        for r in Resolution::ALL {
            assert_eq!(Resolution::parse(r.as_str()), Some(r));
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
        }
        assert!(!Resolution::BY_PEOPLE.contains(&Resolution::Quiet));
        assert_eq!(Resolution::parse("fixed"), None);
    }
}
