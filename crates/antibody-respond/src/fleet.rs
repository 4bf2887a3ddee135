//! Fleet correlation: when the same anomaly kind hits a large share of a group at once, the
//! cause is outside the entities (a slow upstream, a bad deploy), not N infections. One fleet
//! incident is opened, diagnosed `external_cause`, and nobody is quarantined for it.
//!
//! Rule: within `window_ms`, if at least `min_entities` distinct entities of a group *and*
//! at least `min_share` of the group's size report the same kind, a fleet incident opens.
//! Members that report the kind while it is open join it. It closes after a quiet window.

use crate::playbook::glob;
use antibody_core::{
    Hypothesis, Incident, IncidentStatus, Resolution, Severity, TenantId, TimelineEntry,
    TimestampMs, Workflow,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FleetConfig {
    pub window_ms: i64,
    pub min_share: f64,
    pub min_entities: u32,
    /// Finding kinds that can be a fleet-wide symptom (baseline anomalies, not attacks).
    pub kinds: Vec<String>,
}

impl Default for FleetConfig {
    fn default() -> Self {
        Self {
            window_ms: 120_000,
            min_share: 0.3,
            min_entities: 3,
            kinds: vec!["*_spike".into(), "tool_explosion".into(), "*_change".into()],
        }
    }
}

impl FleetConfig {
    pub fn eligible(&self, kind: &str) -> bool {
        self.kinds.iter().any(|p| glob(p, kind))
    }
}

/// A fleet-wide incident. [`FleetIncident::to_incident`] gives the API shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FleetIncident {
    pub id: String,
    pub tenant: TenantId,
    pub group: String,
    pub kind: String,
    pub entities: BTreeSet<String>,
    pub group_size: u32,
    pub opened: TimestampMs,
    pub updated: TimestampMs,
    pub closed: bool,
}

impl FleetIncident {
    pub fn share(&self) -> f64 {
        self.entities.len() as f64 / f64::from(self.group_size.max(1))
    }

    pub fn to_incident(&self) -> Incident {
        let text = format!(
            "{} on {} of {} entities of group `{}` at once: an external cause, not {} infections",
            self.kind,
            self.entities.len(),
            self.group_size,
            self.group,
            self.entities.len()
        );
        Incident {
            id: self.id.clone(),
            tenant: self.tenant.clone(),
            entity: format!("group:{}", self.group),
            status: if self.closed {
                IncidentStatus::Resolved
            } else {
                IncidentStatus::Open
            },
            opened: self.opened,
            updated: self.updated,
            risk: 5.0,
            severity: Severity::Medium,
            kinds: vec![self.kind.clone()],
            finding_count: self.entities.len() as u64,
            max_score: 0.0,
            diagnosis: vec![Hypothesis {
                cause: "external_cause".into(),
                confidence: (self.share().min(1.0) * 1000.0).round() / 1000.0,
            }],
            findings: Vec::new(),
            actions: Vec::new(),
            timeline: vec![TimelineEntry {
                ts: self.opened,
                event: text,
                finding: None,
            }],
            // A closed fleet incident went quiet; its cause was outside by definition.
            workflow: if self.closed {
                Workflow {
                    resolution: Some(Resolution::External),
                    resolved_by: Some(crate::decision::ENGINE.to_owned()),
                    resolved_at: Some(self.updated),
                    ..Workflow::default()
                }
            } else {
                Workflow::default()
            },
        }
    }
}

type Key = (TenantId, String, String);

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FleetState {
    /// (tenant, group, kind) → entity → last report.
    recent: BTreeMap<Key, BTreeMap<String, TimestampMs>>,
    open: BTreeMap<Key, FleetIncident>,
}

impl FleetState {
    /// Records that `entity` of `group` (of `group_size` members) reported `kind` at `ts`.
    /// Returns the fleet incident when this report opened or grew it.
    #[allow(clippy::too_many_arguments)]
    pub fn observe(
        &mut self,
        cfg: &FleetConfig,
        tenant: &TenantId,
        group: &str,
        group_size: u32,
        kind: &str,
        entity: &str,
        ts: TimestampMs,
    ) -> Option<FleetIncident> {
        let key = (tenant.clone(), group.to_owned(), kind.to_owned());
        if let Some(open) = self.open.get_mut(&key) {
            open.updated = open.updated.max(ts);
            return open
                .entities
                .insert(entity.to_owned())
                .then(|| open.clone());
        }
        let recent = self.recent.entry(key.clone()).or_default();
        recent.insert(entity.to_owned(), ts);
        recent.retain(|_, t| ts.saturating_sub(*t) <= cfg.window_ms);
        let n = recent.len() as u32;
        let share = f64::from(n) / f64::from(group_size.max(n).max(1));
        if n < cfg.min_entities || share < cfg.min_share {
            return None;
        }
        let first = recent.values().copied().min().unwrap_or(ts);
        let entities: BTreeSet<String> = recent.keys().cloned().collect();
        self.recent.remove(&key);
        let inc = FleetIncident {
            id: format!("fl-{}-{}-{first:x}", sanitize(group), sanitize(kind)),
            tenant: tenant.clone(),
            group: group.to_owned(),
            kind: kind.to_owned(),
            entities,
            group_size: group_size.max(n),
            opened: first,
            updated: ts,
            closed: false,
        };
        self.open.insert(key, inc.clone());
        Some(inc)
    }

    /// The open fleet incident covering `kind` in `group`, if any.
    pub fn covering(&self, tenant: &TenantId, group: &str, kind: &str) -> Option<&FleetIncident> {
        self.open
            .get(&(tenant.clone(), group.to_owned(), kind.to_owned()))
    }

    /// Closes fleet incidents quiet for a whole window and forgets stale reports.
    pub fn expire(&mut self, cfg: &FleetConfig, now: TimestampMs) -> Vec<FleetIncident> {
        let mut closed = Vec::new();
        self.open.retain(|_, inc| {
            let quiet = now.saturating_sub(inc.updated) > cfg.window_ms;
            if quiet {
                let mut done = inc.clone();
                done.closed = true;
                done.updated = now;
                closed.push(done);
            }
            !quiet
        });
        self.recent.retain(|_, m| {
            m.retain(|_, t| now.saturating_sub(*t) <= cfg.window_ms);
            !m.is_empty()
        });
        closed
    }
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t() -> TenantId {
        TenantId::new("t")
    }

    #[test]
    fn opens_once_share_and_count_are_reached() {
        let cfg = FleetConfig::default();
        let mut f = FleetState::default();
        let mut opened = Vec::new();
        for i in 0..10 {
            let r = f.observe(
                &cfg,
                &t(),
                "research",
                20,
                "latency_spike",
                &format!("agent:{i}"),
                1_000 + i,
            );
            if let Some(inc) = r {
                opened.push((i, inc));
            }
        }
        // 6 of 20 is the first 30 %; every later member joins the same incident.
        assert_eq!(opened[0].0, 5);
        assert_eq!(opened[0].1.entities.len(), 6);
        assert!(opened.iter().all(|(_, inc)| inc.id == opened[0].1.id));
        assert_eq!(opened.last().unwrap().1.entities.len(), 10);
        let inc = f.covering(&t(), "research", "latency_spike").unwrap();
        assert_eq!(inc.to_incident().diagnosis[0].cause, "external_cause");
        assert!(f.covering(&t(), "research", "token_spike").is_none());
        assert!(f
            .covering(&TenantId::new("u"), "research", "latency_spike")
            .is_none());
    }

    #[test]
    fn small_groups_need_min_entities_and_old_reports_expire() {
        let cfg = FleetConfig::default();
        let mut f = FleetState::default();
        assert!(f
            .observe(&cfg, &t(), "g", 2, "token_spike", "a", 0)
            .is_none());
        assert!(f
            .observe(&cfg, &t(), "g", 2, "token_spike", "b", 0)
            .is_none());
        let mut f = FleetState::default();
        assert!(f
            .observe(&cfg, &t(), "g", 5, "token_spike", "a", 0)
            .is_none());
        assert!(f
            .observe(&cfg, &t(), "g", 5, "token_spike", "b", 0)
            .is_none());
        assert!(f
            .observe(&cfg, &t(), "g", 5, "token_spike", "c", cfg.window_ms + 1)
            .is_none());
        assert!(f
            .observe(&cfg, &t(), "g", 5, "token_spike", "d", cfg.window_ms + 2)
            .is_none());
        assert!(f
            .observe(&cfg, &t(), "g", 5, "token_spike", "e", cfg.window_ms + 3)
            .is_some());
    }

    #[test]
    fn quiet_fleet_incidents_close() {
        let cfg = FleetConfig::default();
        let mut f = FleetState::default();
        for e in ["a", "b", "c"] {
            f.observe(&cfg, &t(), "g", 3, "error_spike", e, 0);
        }
        assert!(f.expire(&cfg, cfg.window_ms).is_empty());
        let closed = f.expire(&cfg, cfg.window_ms + 1);
        assert_eq!(closed.len(), 1);
        assert!(closed[0].closed);
        assert!(f.covering(&t(), "g", "error_spike").is_none());
    }

    #[test]
    fn eligible_kinds() {
        let cfg = FleetConfig::default();
        assert!(cfg.eligible("latency_spike"));
        assert!(cfg.eligible("prompt_change"));
        assert!(!cfg.eligible("brute_force"));
    }
}
