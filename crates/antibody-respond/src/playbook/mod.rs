//! Playbooks: what to do about an incident. A playbook has a trigger (finding kinds or
//! diagnoses, a minimum risk, an entity selector), a mode, an ordered ladder of steps,
//! allow-lists, a hit count before acting and escalating TTLs for repeat offenders. The
//! format is documented in `PLAYBOOKS.md`; parsing and validation live in `parse.rs`.
//!
//! Selection: playbooks are tried in priority order — later sources first (so a data-dir
//! file overrides the default pack, and a playbook with the same id replaces the earlier
//! one), then file order — and the first whose trigger matches runs.

mod parse;
mod template;

pub use template::Template;

use crate::action::{ActionKind, Mode, Params};
use crate::asset::Asset;
use crate::cidr::{target_ip, Cidr};
use crate::diagnose::Cause;
use crate::error::PlaybookErrors;

/// One playbook file (or any named text) to load.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlaybookSource {
    pub name: String,
    pub text: String,
}

impl PlaybookSource {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            text: text.into(),
        }
    }
}

/// What happens when a step fails (the executor reports failure, or probation fails).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    /// Try the next rung of the ladder (escalate when there is none).
    Next,
    /// Hand the entity to a human now.
    Escalate,
    /// Give up quietly: the entity is left exhausted without an escalation.
    Stop,
}

impl OnFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Next => "next",
            Self::Escalate => "escalate",
            Self::Stop => "stop",
        }
    }
}

/// Which entities a playbook applies to; empty lists accept everything.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Selector {
    pub tags: Vec<String>,
    pub groups: Vec<String>,
    /// Entity name globs (`agent:prod-*`).
    pub names: Vec<String>,
}

impl Selector {
    pub fn accepts(&self, entity: &str, asset: Option<&Asset>) -> bool {
        let names = self.names.is_empty() || self.names.iter().any(|p| glob(p, entity));
        let tags = self.tags.is_empty()
            || asset.is_some_and(|a| a.tags.iter().any(|t| self.tags.contains(t)));
        let groups = self.groups.is_empty()
            || asset
                .and_then(|a| a.group.as_ref())
                .is_some_and(|g| self.groups.contains(g));
        names && tags && groups
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Trigger {
    /// Finding kind globs (`brute_force`, `rule:*`).
    pub kinds: Vec<String>,
    pub diagnoses: Vec<Cause>,
    pub min_risk: f64,
    pub entities: Selector,
}

/// Entities and addresses a playbook (or a tenant's policy) never acts on.
#[derive(
    Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(default, deny_unknown_fields)]
pub struct AllowList {
    /// Entity or target globs.
    pub entities: Vec<String>,
    pub cidrs: Vec<Cidr>,
}

impl AllowList {
    /// The allow-list entry that covers `target`, if any.
    pub fn covering(&self, target: &str) -> Option<String> {
        if let Some(p) = self.entities.iter().find(|p| glob(p, target)) {
            return Some(p.clone());
        }
        let ip = target_ip(target).or_else(|| {
            Cidr::parse(target).and_then(|_| target.split('/').next().and_then(target_ip))
        })?;
        self.cidrs
            .iter()
            .find(|c| c.contains(ip))
            .map(|c| c.to_string())
    }

    pub fn extend(&mut self, other: &AllowList) {
        self.entities.extend(other.entities.iter().cloned());
        self.cidrs.extend(other.cidrs.iter().copied());
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub action: ActionKind,
    pub target: Template,
    pub params: Params,
    /// TTLs for the first, second, third… offence of the same target; the last repeats.
    pub ttls_ms: Vec<i64>,
    pub on_failure: OnFailure,
    /// Runs together with the previous step (one rung), e.g. block an IP *and* notify.
    pub with_previous: bool,
    pub executor: Option<String>,
}

impl Step {
    /// The TTL for a target's `offence`-th action (0-based).
    pub fn ttl_ms(&self, offence: u32) -> i64 {
        let i = usize::try_from(offence).unwrap_or(usize::MAX);
        self.ttls_ms
            .get(i)
            .or(self.ttls_ms.last())
            .copied()
            .unwrap_or_else(|| self.action.default_ttl_ms())
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Playbook {
    pub id: String,
    pub description: String,
    pub trigger: Trigger,
    pub mode: Mode,
    /// Matching findings per target before the first action.
    pub hits: u32,
    /// Distinct approvers an approval needs.
    pub approvers: u8,
    pub allow: AllowList,
    pub steps: Vec<Step>,
    /// Rungs of the ladder: ranges of `steps` that run together.
    pub rungs: Vec<std::ops::Range<usize>>,
    pub file: String,
    pub line: Option<usize>,
}

impl Playbook {
    /// Why the trigger matches, or `None`. `top` is the leading diagnosis.
    pub fn matches<'a>(
        &self,
        mut kinds: impl Iterator<Item = &'a str>,
        top: Option<crate::diagnose::Cause>,
        risk: f64,
        entity: &str,
        asset: Option<&Asset>,
    ) -> Option<String> {
        let t = &self.trigger;
        if risk < t.min_risk || !t.entities.accepts(entity, asset) {
            return None;
        }
        if let Some(k) = kinds.find(|k| t.kinds.iter().any(|p| glob(p, k))) {
            return Some(format!("finding kind `{k}`, risk {risk} ≥ {}", t.min_risk));
        }
        let cause = top.filter(|c| t.diagnoses.contains(c))?;
        Some(format!(
            "diagnosis `{}`, risk {risk} ≥ {}",
            cause.as_str(),
            t.min_risk
        ))
    }
}

/// Validated playbooks in priority order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PlaybookSet {
    playbooks: Vec<Playbook>,
}

/// The built-in pack, lowest priority first: a later file wins when two triggers match (see
/// [`PlaybookSet::load`]). Catch-alls that only tell people come first, so a playbook for a
/// named cause (matched by diagnosis as well as by kind) outranks them; `token-explosion`
/// outranks `tool-loop`, whose diagnosis a token spike alone also points at.
const DEFAULT_PACK: &[(&str, &str)] = &[
    (
        "default/metric_spike.yml",
        include_str!("../../playbooks/default/metric_spike.yml"),
    ),
    (
        "default/web_anomaly.yml",
        include_str!("../../playbooks/default/web_anomaly.yml"),
    ),
    (
        "default/model_threat.yml",
        include_str!("../../playbooks/default/model_threat.yml"),
    ),
    (
        "default/model_drift.yml",
        include_str!("../../playbooks/default/model_drift.yml"),
    ),
    (
        "default/error_spike.yml",
        include_str!("../../playbooks/default/error_spike.yml"),
    ),
    (
        "default/latency_spike.yml",
        include_str!("../../playbooks/default/latency_spike.yml"),
    ),
    (
        "default/retry_storm.yml",
        include_str!("../../playbooks/default/retry_storm.yml"),
    ),
    (
        "default/prompt_change.yml",
        include_str!("../../playbooks/default/prompt_change.yml"),
    ),
    (
        "default/threat_intel.yml",
        include_str!("../../playbooks/default/threat_intel.yml"),
    ),
    (
        "default/request_flood.yml",
        include_str!("../../playbooks/default/request_flood.yml"),
    ),
    (
        "default/prompt_injection.yml",
        include_str!("../../playbooks/default/prompt_injection.yml"),
    ),
    (
        "default/secret_leak.yml",
        include_str!("../../playbooks/default/secret_leak.yml"),
    ),
    (
        "default/exfiltration.yml",
        include_str!("../../playbooks/default/exfiltration.yml"),
    ),
    (
        "default/brute_force.yml",
        include_str!("../../playbooks/default/brute_force.yml"),
    ),
    (
        "default/web_attack.yml",
        include_str!("../../playbooks/default/web_attack.yml"),
    ),
    (
        "default/port_scan.yml",
        include_str!("../../playbooks/default/port_scan.yml"),
    ),
    (
        "default/tool_loop.yml",
        include_str!("../../playbooks/default/tool_loop.yml"),
    ),
    (
        "default/cost_overrun.yml",
        include_str!("../../playbooks/default/cost_overrun.yml"),
    ),
    (
        "default/token_explosion.yml",
        include_str!("../../playbooks/default/token_explosion.yml"),
    ),
];

impl PlaybookSet {
    /// The built-in pack as sources, to put first in a call to [`PlaybookSet::load`].
    pub fn default_sources() -> Vec<PlaybookSource> {
        DEFAULT_PACK
            .iter()
            .map(|(name, text)| PlaybookSource::new(*name, *text))
            .collect()
    }

    /// Loads the default pack alone.
    pub fn default_pack() -> Result<Self, PlaybookErrors> {
        Self::load(&Self::default_sources())
    }

    /// Validates every source and returns every problem at once. Later sources take
    /// priority; a playbook id repeated in a later source replaces the earlier one.
    pub fn load(sources: &[PlaybookSource]) -> Result<Self, PlaybookErrors> {
        let mut errors = Vec::new();
        let mut playbooks: Vec<Playbook> = Vec::new();
        for src in sources.iter().rev() {
            for pb in parse::parse_source(src, &mut errors) {
                if !playbooks.iter().any(|p| p.id == pb.id) {
                    playbooks.push(pb);
                }
            }
        }
        if errors.is_empty() {
            Ok(Self { playbooks })
        } else {
            Err(PlaybookErrors(errors))
        }
    }

    pub fn playbooks(&self) -> &[Playbook] {
        &self.playbooks
    }

    pub fn get(&self, id: &str) -> Option<&Playbook> {
        self.playbooks.iter().find(|p| p.id == id)
    }
}

/// `*` matches any run of characters; everything else matches itself.
pub fn glob(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let Some(first) = parts.next() else {
        return text.is_empty();
    };
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("rule:*", "rule:x"));
        assert!(glob("brute_force", "brute_force"));
        assert!(!glob("brute_force", "brute_forcex"));
        assert!(glob("agent:*-prod-*", "agent:a-prod-7"));
        assert!(!glob("agent:*-prod-*", "agent:a-dev-7"));
        assert!(glob("*", ""));
        assert!(glob("a*a", "aa"));
        assert!(!glob("a*a", "a"));
    }

    #[test]
    fn default_pack_loads_and_covers_the_issue() {
        let set = PlaybookSet::default_pack().unwrap_or_else(|e| panic!("{e}"));
        let ids: Vec<&str> = set.playbooks().iter().map(|p| p.id.as_str()).collect();
        for want in [
            "brute-force",
            "web-attack",
            "token-explosion",
            "tool-loop",
            "prompt-injection",
            "exfiltration",
            "port-scan",
            "cost-overrun",
        ] {
            assert!(ids.contains(&want), "{ids:?}");
        }
        let tokens = set.get("token-explosion").unwrap();
        let ladder: Vec<ActionKind> = tokens.steps.iter().map(|s| s.action).collect();
        assert_eq!(ladder, [ActionKind::RateLimit, ActionKind::Quarantine]);
        assert_eq!(set.get("prompt-injection").unwrap().mode, Mode::Approval);
        assert_eq!(set.get("exfiltration").unwrap().mode, Mode::Approval);
        let web = set.get("web-attack").unwrap();
        assert_eq!(web.rungs, vec![0..2]);
        let bf = set.get("brute-force").unwrap();
        assert_eq!(bf.steps[0].ttls_ms, vec![3_600_000, 14_400_000, 86_400_000]);
    }

    #[test]
    fn later_sources_override_and_go_first() {
        let mut sources = PlaybookSet::default_sources();
        sources.push(PlaybookSource::new(
            "mine.yml",
            "- id: port-scan\n  trigger: {kinds: [port_scan]}\n  mode: dry_run\n  steps:\n    - action: notify\n",
        ));
        let set = PlaybookSet::load(&sources).unwrap();
        assert_eq!(set.playbooks()[0].id, "port-scan");
        assert_eq!(set.get("port-scan").unwrap().mode, Mode::DryRun);
        assert_eq!(
            set.playbooks()
                .iter()
                .filter(|p| p.id == "port-scan")
                .count(),
            1
        );
    }

    #[test]
    fn allow_list_covers_entities_and_cidrs() {
        let allow = AllowList {
            entities: vec!["agent:canary-*".into()],
            cidrs: vec![Cidr::parse("10.0.0.0/8").unwrap()],
        };
        assert!(allow.covering("agent:canary-1").is_some());
        assert!(allow.covering("10.1.2.3").is_some());
        assert!(allow.covering("ip:10.1.2.3").is_some());
        assert!(allow.covering("10.1.0.0/16").is_some());
        assert!(allow.covering("192.0.2.1").is_none());
        assert!(allow.covering("agent:prod").is_none());
    }

    #[test]
    fn selector_by_tag_group_and_name() {
        let mut asset = Asset::new("agent:a");
        asset.tags = vec!["prod".into()];
        asset.group = Some("research".into());
        let s = Selector {
            tags: vec!["prod".into()],
            groups: vec!["research".into()],
            names: vec!["agent:*".into()],
        };
        assert!(s.accepts("agent:a", Some(&asset)));
        assert!(!s.accepts("agent:a", None));
        assert!(!s.accepts("host:a", Some(&asset)));
        assert!(Selector::default().accepts("anything", None));
    }
}
