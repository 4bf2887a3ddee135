//! Incidents: findings of one `(tenant, entity)` correlated within a time window.

use crate::{Severity, TenantId, TimestampMs};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IncidentStatus {
    Open,
    Closed,
}

impl IncidentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Closed => "closed",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hypothesis {
    pub cause: String,
    pub confidence: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TimelineEntry {
    #[serde(with = "crate::clock::rfc3339")]
    pub ts: TimestampMs,
    pub event: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finding: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    pub id: String,
    #[serde(skip_serializing, default = "crate::tenant::default_tenant")]
    pub tenant: TenantId,
    pub entity: String,
    pub status: IncidentStatus,
    #[serde(with = "crate::clock::rfc3339")]
    pub opened: TimestampMs,
    #[serde(with = "crate::clock::rfc3339")]
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
}
