//! The finding kinds the engine emits, named in one place: baselines give each known metric
//! its kind ([`METRIC_KINDS`], [`OTHER_METRIC`] for any other), a tracked attr that changes
//! after a stable streak gives [`change_kind`], rules the kind each rule declares, models
//! [`model_kind`] and [`MODEL_DRIFT`], web profiles [`WEB_ANOMALY`]. [`emitted`] lists them for one configuration, so the
//! response engine's default playbooks can be checked against what detection really says.

use crate::EngineConfig;
use antibody_rules::RuleSet;
use std::collections::BTreeSet;

/// Built-in metric name → finding kind (API.md); `[engine] metric_kinds` adds to it.
pub const METRIC_KINDS: &[(&str, &str)] = &[
    ("tokens", "token_spike"),
    ("latency_ms", "latency_spike"),
    ("tool_calls", "tool_explosion"),
    ("retries", "retry_spike"),
    ("cost_usd", "cost_spike"),
    ("errors", "error_spike"),
    ("error_rate", "error_spike"),
    ("input_tokens", "input_spike"),
    ("output_tokens", "output_spike"),
];

/// The kind of a spike in a metric with no built-in meaning.
pub const OTHER_METRIC: &str = "metric_spike";

/// A model's inputs drifted from its training data.
pub const MODEL_DRIFT: &str = "model_drift";

/// A request that departs from its endpoint's learned profile (detector `profile`).
pub const WEB_ANOMALY: &str = crate::webprof::KIND;

/// The kind of a baseline spike in `metric`, before any configured mapping.
pub fn metric_kind(metric: &str) -> &'static str {
    METRIC_KINDS
        .iter()
        .find(|(m, _)| *m == metric)
        .map_or(OTHER_METRIC, |(_, k)| k)
}

/// The kind of a change in the tracked attr `attr` (`prompt_hash` → `prompt_change`).
pub fn change_kind(attr: &str) -> String {
    match attr {
        "prompt_hash" => "prompt_change".to_owned(),
        _ => format!("{attr}_change"),
    }
}

/// The kind of a finding reported by the model named `name`.
pub fn model_kind(name: &str) -> String {
    format!("model:{name}")
}

/// Every kind the engine can emit under `cfg` and `rules`. Model findings appear once, as
/// `model:*`, since their names come from the registry at run time.
pub fn emitted(cfg: &EngineConfig, rules: &RuleSet) -> BTreeSet<String> {
    let metrics = METRIC_KINDS.iter().map(|(_, k)| (*k).to_owned());
    let mapped = cfg.metric_kinds.values().cloned();
    let changes = cfg.tracked_attrs.iter().map(|a| change_kind(a));
    let rule_kinds = rules.rules().map(|r| r.kind.to_string());
    let profiles = cfg.web_profiles.enabled.then(|| WEB_ANOMALY.to_owned());
    metrics
        .chain([
            OTHER_METRIC.to_owned(),
            MODEL_DRIFT.to_owned(),
            model_kind("*"),
        ])
        .chain(mapped)
        .chain(changes)
        .chain(rule_kinds)
        .chain(profiles)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_map_to_their_kinds() {
        assert_eq!(metric_kind("tokens"), "token_spike");
        assert_eq!(metric_kind("error_rate"), "error_spike");
        assert_eq!(metric_kind("output_tokens"), "output_spike");
        assert_eq!(metric_kind("queue_depth"), OTHER_METRIC);
        assert_eq!(change_kind("prompt_hash"), "prompt_change");
        assert_eq!(change_kind("model"), "model_change");
    }

    #[test]
    fn the_default_engine_emits_baseline_rule_and_model_kinds() {
        let kinds = emitted(&EngineConfig::default(), &RuleSet::default_pack());
        for want in [
            "token_spike",
            "latency_spike",
            "metric_spike",
            "prompt_change",
            "sqli",
            "brute_force",
            "request_flood",
            "model:*",
            "model_drift",
            "web_anomaly",
        ] {
            assert!(kinds.contains(want), "{want} missing from {kinds:?}");
        }
        let mut cfg = EngineConfig::default();
        cfg.tracked_attrs.push("model".into());
        cfg.metric_kinds.insert("gpu".into(), "gpu_spike".into());
        let kinds = emitted(&cfg, &RuleSet::default_pack());
        assert!(kinds.contains("model_change") && kinds.contains("gpu_spike"));
    }
}
