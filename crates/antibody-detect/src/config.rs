//! Engine configuration (the `[engine]` table of `antibody.toml`).

use crate::baseline::{default_kind_for_metric, BaselineConfig};
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
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            baseline: BaselineConfig::default(),
            correlation_window_ms: 300_000,
            metric_kinds: BTreeMap::new(),
            tracked_attrs: vec!["prompt_hash".into()],
        }
    }
}

impl EngineConfig {
    pub fn validate(&self) -> Result<(), String> {
        self.baseline.validate()?;
        if self.correlation_window_ms <= 0 {
            return Err("engine.correlation_window_ms must be positive".into());
        }
        if self.tracked_attrs.len() > 16 {
            return Err("engine.tracked_attrs holds at most 16 names".into());
        }
        Ok(())
    }

    pub fn kind_for_metric(&self, metric: &str) -> String {
        match self.metric_kinds.get(metric) {
            Some(k) => k.clone(),
            None => default_kind_for_metric(metric).to_owned(),
        }
    }
}
