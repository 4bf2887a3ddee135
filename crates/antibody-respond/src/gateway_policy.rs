//! The `gateway` section of a tenant's policy document (`PUT /v1/policy`): what the LLM
//! gateway lets a tenant's agents spend. Plain data and its validation; the gateway charges
//! it in the request path (`antibody-gateway::limits`).
//!
//! Limits nest: the tenant as a whole, each team (a tag naming agents by pattern), each
//! agent, and each model across the tenant. A request must fit every level that applies to
//! it; it is charged at every level only when it fits them all.
//!
//! ```toml
//! [gateway.tenant]
//! requests_per_minute = 600
//! usd_per_day = 50.0
//! [gateway.teams.research]
//! agents = ["agent:research-*"]
//! [gateway.teams.research.limits]
//! tokens_per_minute = 200000
//! [gateway.agents."agent:research-7"]
//! models = ["gpt-4o-mini"]
//! max_tokens = 2048
//! [gateway.models."gpt-4o"]
//! usd_per_day = 10.0
//! ```

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The limits of one level. Every field is optional: an absent one does not limit.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    pub requests_per_minute: Option<u64>,
    /// Input plus output tokens per minute.
    pub tokens_per_minute: Option<u64>,
    /// US dollars per UTC day, at the gateway's price table.
    pub usd_per_day: Option<f64>,
    /// Model ids this level may call (exact ids); absent: any configured model.
    pub models: Option<Vec<String>>,
    /// The most output tokens one request may ask for (`max_tokens`,
    /// `max_completion_tokens`, `max_output_tokens`).
    pub max_tokens: Option<u64>,
}

/// A team: agents named by pattern (`agent:research-*`: a trailing `*` matches any rest) and
/// the limits they share.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Team {
    pub agents: Vec<String>,
    pub limits: Limits,
}

/// The `gateway` section.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayPolicy {
    pub tenant: Limits,
    pub teams: BTreeMap<String, Team>,
    /// Agent entity (`agent:…`) → its own limits.
    pub agents: BTreeMap<String, Limits>,
    /// Model id → limits on the tenant's use of that model.
    pub models: BTreeMap<String, Limits>,
}

impl GatewayPolicy {
    /// Whether no level limits anything (the gateway skips the meter then).
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// The teams whose patterns name `agent`, in name order.
    pub fn teams_of<'a>(&'a self, agent: &'a str) -> impl Iterator<Item = (&'a str, &'a Team)> {
        self.teams
            .iter()
            .filter(move |(_, t)| t.agents.iter().any(|p| pattern_matches(p, agent)))
            .map(|(name, t)| (name.as_str(), t))
    }

    /// Every problem, as a sentence naming where it is.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.tenant.check("gateway.tenant", &mut out);
        for (name, team) in &self.teams {
            let at = format!("gateway.teams.{name}");
            if team.agents.is_empty() || team.agents.iter().any(|p| p.trim().is_empty()) {
                out.push(format!(
                    "{at}.agents must name at least one non-empty pattern"
                ));
            }
            team.limits.check(&format!("{at}.limits"), &mut out);
        }
        for (agent, limits) in &self.agents {
            if agent.trim().is_empty() {
                out.push("gateway.agents: an agent name must not be empty".into());
            }
            limits.check(&format!("gateway.agents.{agent}"), &mut out);
        }
        for (model, limits) in &self.models {
            if limits.models.is_some() {
                out.push(format!(
                    "gateway.models.{model}.models: a model's limits cannot list models"
                ));
            }
            limits.check(&format!("gateway.models.{model}"), &mut out);
        }
        out
    }
}

impl Limits {
    fn check(&self, at: &str, out: &mut Vec<String>) {
        let zero = |v: Option<u64>| v == Some(0);
        if zero(self.requests_per_minute) {
            out.push(format!("{at}.requests_per_minute must be positive"));
        }
        if zero(self.tokens_per_minute) {
            out.push(format!("{at}.tokens_per_minute must be positive"));
        }
        if zero(self.max_tokens) {
            out.push(format!("{at}.max_tokens must be positive"));
        }
        if self.usd_per_day.is_some_and(|u| !u.is_finite() || u <= 0.0) {
            out.push(format!("{at}.usd_per_day must be a positive number"));
        }
        if let Some(models) = &self.models {
            if models.iter().any(|m| m.trim().is_empty()) {
                out.push(format!("{at}.models must not hold an empty model id"));
            }
        }
    }
}

/// `pattern` names `name`: equal, or a prefix ending in `*`.
pub fn pattern_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_shape_and_finds_teams() {
        let text = r#"
            [tenant]
            requests_per_minute = 600
            usd_per_day = 50.0
            [teams.research]
            agents = ["agent:research-*"]
            [teams.research.limits]
            tokens_per_minute = 200000
            [agents."agent:research-7"]
            models = ["gpt-4o-mini"]
            max_tokens = 2048
            [models."gpt-4o"]
            usd_per_day = 10.0
        "#;
        let p: GatewayPolicy = toml::from_str(text).unwrap();
        assert!(p.problems().is_empty(), "{:?}", p.problems());
        assert_eq!(p.tenant.requests_per_minute, Some(600));
        let teams: Vec<&str> = p.teams_of("agent:research-7").map(|(n, _)| n).collect();
        assert_eq!(teams, ["research"]);
        assert_eq!(p.teams_of("agent:ops-1").count(), 0);
        assert!(!p.is_empty());
        assert!(GatewayPolicy::default().is_empty());
    }

    #[test]
    fn every_problem_is_named() {
        let text = r#"
            [tenant]
            requests_per_minute = 0
            usd_per_day = -1.0
            [teams.empty]
            agents = []
            [models."gpt-4o"]
            models = ["x"]
            max_tokens = 0
        "#;
        let p: GatewayPolicy = toml::from_str(text).unwrap();
        let problems = p.problems();
        assert_eq!(problems.len(), 5, "{problems:#?}");
        assert!(problems[0].starts_with("gateway.tenant.requests_per_minute"));
        assert!(problems
            .iter()
            .any(|e| e.contains("gateway.teams.empty.agents")));
        assert!(toml::from_str::<GatewayPolicy>("[tenant]\nrpm = 3\n").is_err());
    }

    #[test]
    fn patterns_match_exactly_or_by_prefix() {
        assert!(pattern_matches("agent:a", "agent:a"));
        assert!(!pattern_matches("agent:a", "agent:ab"));
        assert!(pattern_matches("agent:a*", "agent:ab"));
        assert!(pattern_matches("*", "anything"));
    }
}
