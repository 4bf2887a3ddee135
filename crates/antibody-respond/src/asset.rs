//! Assets: what an operator tells antibody about an entity — how much it matters
//! (criticality 1–5), who owns it, its tags and group, and where executors can reach it
//! (pid, container, host). Risk, blast radius, fleet correlation, playbook selectors and
//! executors read them.

use crate::RespondError;
use serde::{Deserialize, Serialize};

/// Criticality of an entity nobody described: the middle of the 1–5 scale.
pub const DEFAULT_CRITICALITY: u8 = 3;
const MAX_TEXT: usize = 256;
const MAX_TAGS: usize = 32;

/// The body of `PUT /v1/assets/{entity}` (with `entity` from the path). Plain fields and
/// `Option`s only, so it round-trips through postcard snapshots.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Asset {
    /// Taken from the path when absent.
    #[serde(default)]
    #[schemars(length(max = MAX_TEXT))]
    pub entity: String,
    #[schemars(range(min = 1, max = 5))]
    pub criticality: u8,
    #[serde(default)]
    #[schemars(length(max = MAX_TEXT))]
    pub owner: String,
    #[serde(default)]
    #[schemars(length(max = MAX_TAGS), inner(length(min = 1, max = MAX_TEXT)))]
    pub tags: Vec<String>,
    #[serde(default)]
    #[schemars(length(min = 1, max = MAX_TEXT))]
    pub group: Option<String>,
    #[serde(default)]
    pub pid: Option<u32>,
    #[serde(default)]
    #[schemars(length(min = 1, max = MAX_TEXT))]
    pub container: Option<String>,
    #[serde(default)]
    #[schemars(length(min = 1, max = MAX_TEXT))]
    pub host: Option<String>,
}

impl Asset {
    /// An asset with default criticality and nothing else known.
    pub fn new(entity: impl Into<String>) -> Self {
        Self {
            entity: entity.into(),
            criticality: DEFAULT_CRITICALITY,
            owner: String::new(),
            tags: Vec::new(),
            group: None,
            pid: None,
            container: None,
            host: None,
        }
    }

    /// Checks every field; the message lists every problem, separated by `; `.
    pub fn validate(&self) -> Result<(), RespondError> {
        let mut problems = Vec::new();
        if self.entity.is_empty() || self.entity.len() > MAX_TEXT {
            problems.push(format!("entity must be 1–{MAX_TEXT} characters"));
        }
        if !(1..=5).contains(&self.criticality) {
            problems.push(format!("criticality must be 1–5, got {}", self.criticality));
        }
        if self.owner.len() > MAX_TEXT {
            problems.push(format!("owner is longer than {MAX_TEXT} characters"));
        }
        if self.tags.len() > MAX_TAGS {
            problems.push(format!("at most {MAX_TAGS} tags"));
        }
        if self.tags.iter().any(|t| t.is_empty() || t.len() > MAX_TEXT) {
            problems.push(format!("tags must be 1–{MAX_TEXT} characters"));
        }
        for (name, value) in [
            ("group", &self.group),
            ("container", &self.container),
            ("host", &self.host),
        ] {
            if value
                .as_ref()
                .is_some_and(|v| v.is_empty() || v.len() > MAX_TEXT)
            {
                problems.push(format!("{name} must be 1–{MAX_TEXT} characters"));
            }
        }
        if self.pid == Some(0) {
            problems.push("pid must be positive".into());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(RespondError::InvalidAsset(problems.join("; ")))
        }
    }
}

/// Validates a bulk import; returns every failing row as `(index, error)`.
pub fn validate_bulk(assets: &[Asset]) -> Result<(), Vec<(usize, RespondError)>> {
    let errors: Vec<_> = assets
        .iter()
        .enumerate()
        .filter_map(|(i, a)| a.validate().err().map(|e| (i, e)))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_api_body_with_defaults() {
        let a: Asset = serde_json::from_str(
            r#"{"entity":"agent:a","criticality":5,"tags":["prod"],"group":"research","pid":42}"#,
        )
        .unwrap();
        assert_eq!(a.criticality, 5);
        assert_eq!(a.group.as_deref(), Some("research"));
        assert_eq!(a.owner, "");
        assert!(a.validate().is_ok());
        assert!(serde_json::from_str::<Asset>(r#"{"criticality":1,"bogus":1}"#).is_err());
    }

    #[test]
    fn reports_every_problem() {
        let mut a = Asset::new("");
        a.criticality = 9;
        a.pid = Some(0);
        a.group = Some(String::new());
        let RespondError::InvalidAsset(msg) = a.validate().unwrap_err() else {
            panic!("wrong variant");
        };
        for want in ["entity", "criticality must be 1–5, got 9", "pid", "group"] {
            assert!(msg.contains(want), "{msg}");
        }
    }

    #[test]
    fn bulk_lists_failing_rows() {
        let good = Asset::new("host:a");
        let mut bad = Asset::new("host:b");
        bad.criticality = 0;
        let errs = validate_bulk(&[good.clone(), bad, good]).unwrap_err();
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].0, 1);
    }

    #[test]
    fn postcard_round_trip() {
        let mut a = Asset::new("agent:x");
        a.container = Some("c1".into());
        let bytes = postcard::to_stdvec(&a).unwrap();
        assert_eq!(postcard::from_bytes::<Asset>(&bytes).unwrap(), a);
    }
}
