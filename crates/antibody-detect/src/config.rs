//! Engine configuration (the `[engine]` table of `antibody.toml`).

use crate::baseline::BaselineConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    pub baseline: BaselineConfig,
    /// Findings of one entity this close together join one incident (default 5 min).
    pub correlation_window_ms: i64,
    /// Metric name → finding kind, on top of the built-in mapping of API.md.
    pub metric_kinds: BTreeMap<String, String>,
    /// Categorical attrs whose change after a stable streak is a `prompt_change`-style finding.
    pub tracked_attrs: Vec<String>,
    /// Entities one tenant may have tracked in one partition; events of further new
    /// entities still go through the rules but get no baselines or incidents until room
    /// frees up. Bounds memory against a sender that invents entity names.
    pub max_entities_per_tenant: usize,
    /// Entities silent this long (and with no open incident) are forgotten (default 7 days).
    pub entity_idle_ms: i64,
    /// Distinct metric names one tenant may use in one partition; further names are ignored.
    pub max_metric_names_per_tenant: usize,
    /// Learned web-application profiles over `http` events (`[engine.web_profiles]`).
    pub web_profiles: crate::webprof::WebProfilesConfig,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            baseline: BaselineConfig::default(),
            correlation_window_ms: 300_000,
            metric_kinds: BTreeMap::new(),
            tracked_attrs: vec!["prompt_hash".into()],
            max_entities_per_tenant: 2_000_000,
            entity_idle_ms: 7 * 24 * 3600 * 1000,
            max_metric_names_per_tenant: 1000,
            web_profiles: crate::webprof::WebProfilesConfig::default(),
        }
    }
}

impl EngineConfig {
    pub fn validate(&self) -> Result<(), String> {
        self.baseline.validate()?;
        self.web_profiles.validate()?;
        if self.correlation_window_ms <= 0 {
            return Err("engine.correlation_window_ms must be positive".into());
        }
        if self.max_entities_per_tenant == 0 || self.max_metric_names_per_tenant == 0 {
            return Err("engine.max_entities_per_tenant and engine.max_metric_names_per_tenant must be positive".into());
        }
        if self.entity_idle_ms <= 0 {
            return Err("engine.entity_idle_ms must be positive".into());
        }
        if self.tracked_attrs.len() > 16 {
            return Err("engine.tracked_attrs holds at most 16 names".into());
        }
        Ok(())
    }

    pub fn kind_for_metric(&self, metric: &str) -> String {
        match self.metric_kinds.get(metric) {
            Some(k) => k.clone(),
            None => crate::kinds::metric_kind(metric).to_owned(),
        }
    }
}
