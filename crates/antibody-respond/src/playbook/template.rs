//! Target templates: `{{src_ip}}`, `{{entity}}`, `{{asset.container}}`, or literal text
//! around them. A variable with several values (three attacking addresses in one incident)
//! fans the step out into one action per value.

use crate::assess::EVIDENCE_VARS;
use crate::asset::Asset;
use std::collections::BTreeMap;

const ASSET_VARS: &[&str] = &[
    "asset.host",
    "asset.container",
    "asset.pid",
    "asset.owner",
    "asset.group",
];

#[derive(Clone, Debug, PartialEq)]
enum Part {
    Lit(String),
    Var(String),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

impl Template {
    /// Parses a template; unknown variables and unbalanced braces are errors.
    pub fn parse(source: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = source;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Lit(rest[..open].to_owned()));
            }
            let after = &rest[open + 2..];
            let close = after
                .find("}}")
                .ok_or_else(|| format!("unclosed `{{{{` in target `{source}`"))?;
            let name = after[..close].trim();
            if name != "entity" && !EVIDENCE_VARS.contains(&name) && !ASSET_VARS.contains(&name) {
                return Err(format!(
                    "unknown variable `{name}` in target (known: entity, {}, {})",
                    EVIDENCE_VARS.join(", "),
                    ASSET_VARS.join(", ")
                ));
            }
            parts.push(Part::Var(name.to_owned()));
            rest = &after[close + 2..];
        }
        if rest.contains("}}") {
            return Err(format!("stray `}}}}` in target `{source}`"));
        }
        if !rest.is_empty() {
            parts.push(Part::Lit(rest.to_owned()));
        }
        Ok(Self {
            source: source.to_owned(),
            parts,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Every rendering of the template; fans out over the first multi-valued variable.
    /// `Err` names the variable that has no value.
    pub fn render(
        &self,
        entity: &str,
        vars: &BTreeMap<String, Vec<String>>,
        asset: Option<&Asset>,
    ) -> Result<Vec<String>, String> {
        let mut values: Vec<Vec<String>> = Vec::with_capacity(self.parts.len());
        for part in &self.parts {
            values.push(match part {
                Part::Lit(s) => vec![s.clone()],
                Part::Var(name) => lookup(name, entity, vars, asset)
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| format!("no value for `{{{{{name}}}}}`"))?,
            });
        }
        let fan = values.iter().position(|v| v.len() > 1);
        let width = fan.map_or(1, |i| values[i].len());
        Ok((0..width)
            .map(|n| {
                values
                    .iter()
                    .enumerate()
                    .map(|(i, v)| if Some(i) == fan { &v[n] } else { &v[0] })
                    .map(String::as_str)
                    .collect::<String>()
            })
            .collect())
    }
}

fn lookup(
    name: &str,
    entity: &str,
    vars: &BTreeMap<String, Vec<String>>,
    asset: Option<&Asset>,
) -> Option<Vec<String>> {
    if name == "entity" {
        return Some(vec![entity.to_owned()]);
    }
    let Some(field) = name.strip_prefix("asset.") else {
        return vars.get(name).cloned();
    };
    let a = asset?;
    let v = match field {
        "host" => a.host.clone(),
        "container" => a.container.clone(),
        "pid" => a.pid.map(|p| p.to_string()),
        "owner" => Some(a.owner.clone()).filter(|o| !o.is_empty()),
        "group" => a.group.clone(),
        _ => None,
    };
    v.map(|v| vec![v])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn vars(pairs: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
            .collect()
    }

    #[test]
    fn renders_and_fans_out() {
        let t = Template::parse("{{src_ip}}").unwrap();
        let v = vars(&[("src_ip", &["1.1.1.1", "2.2.2.2"])]);
        assert_eq!(
            t.render("host:a", &v, None).unwrap(),
            ["1.1.1.1", "2.2.2.2"]
        );
        let t = Template::parse("user {{user}} on {{entity}}").unwrap();
        let v = vars(&[("user", &["root"])]);
        assert_eq!(
            t.render("host:a", &v, None).unwrap(),
            ["user root on host:a"]
        );
    }

    #[test]
    fn asset_fields() {
        let mut a = Asset::new("agent:a");
        a.pid = Some(42);
        let t = Template::parse("{{asset.pid}}").unwrap();
        assert_eq!(
            t.render("agent:a", &BTreeMap::new(), Some(&a)).unwrap(),
            ["42"]
        );
        assert!(t.render("agent:a", &BTreeMap::new(), None).is_err());
    }

    #[test]
    fn missing_and_unknown_variables() {
        let t = Template::parse("{{src_ip}}").unwrap();
        let err = t.render("host:a", &BTreeMap::new(), None).unwrap_err();
        assert!(err.contains("src_ip"), "{err}");
        assert!(Template::parse("{{nope}}")
            .unwrap_err()
            .contains("unknown variable"));
        assert!(Template::parse("{{entity").is_err());
        assert!(Template::parse("entity}}").is_err());
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in ".{0,40}") {
            if let Ok(t) = Template::parse(&s) {
                let _ = t.render("e", &BTreeMap::new(), None);
            }
        }
    }
}
