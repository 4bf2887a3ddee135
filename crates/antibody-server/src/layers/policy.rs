//! A tenant's response policy document (`PUT /v1/policy`), TOML or JSON, read over the
//! configured policy (`[respond.policy]`, or `[respond.tenants.<t>]`): every key the
//! document sets replaces that configured value, every other key keeps it. Problems are
//! all reported at once as `tenant/policy.<toml|json>:<line>: reason`.

use antibody_respond::{PlaybookSet, TenantPolicy};
use antibody_store::DocFormat;
use serde_json::{Map, Value};

/// The name policy problems are reported under.
pub fn file_name(format: DocFormat) -> String {
    format!("tenant/policy.{}", format.as_str())
}

/// Reads `text` over `base`. With `playbooks`, every id under `modes` must name one of them
/// (checked when a person stores a document, not when a stored one is loaded again: a
/// playbook may go away later, and then its override simply does nothing).
pub fn parse(
    text: &str,
    format: DocFormat,
    base: &TenantPolicy,
    playbooks: Option<&PlaybookSet>,
) -> Result<TenantPolicy, Vec<String>> {
    let file = file_name(format);
    let show = |errors: Vec<(Option<usize>, String)>| -> Vec<String> {
        let mut errors = errors;
        errors.sort_by_key(|e| e.0);
        errors
            .into_iter()
            .map(|(line, reason)| match line {
                Some(l) => format!("{file}:{l}: {reason}"),
                None => format!("{file}: {reason}"),
            })
            .collect()
    };
    let at = |key: &str, reason: &str| (line_of(text, key), reason.to_owned());
    let doc = read(text, format).map_err(|e| show(vec![e]))?;
    let Ok(Value::Object(mut merged)) = serde_json::to_value(base) else {
        return Err(show(vec![(
            None,
            "the configured policy cannot be read".into(),
        )]));
    };
    let mut errors = Vec::new();
    for (key, value) in doc {
        if !merged.contains_key(&key) {
            let known: Vec<&str> = merged.keys().map(String::as_str).collect();
            errors.push(at(
                &key,
                &format!("unknown key `{key}` (known: {})", known.join(", ")),
            ));
            continue;
        }
        // Each key alone over the base, so every wrong one is reported, not just the first.
        let mut trial = merged.clone();
        trial.insert(key.clone(), value.clone());
        match serde_json::from_value::<TenantPolicy>(Value::Object(trial)) {
            Ok(_) => {
                merged.insert(key, value);
            }
            Err(e) => errors.push(at(&key, &format!("`{key}`: {e}"))),
        }
    }
    let policy: TenantPolicy = serde_json::from_value(Value::Object(merged))
        .map_err(|e| show(vec![(None, e.to_string())]))?;
    for (field, reason) in policy.problems() {
        errors.push(at(field, reason));
    }
    for reason in policy.gateway.problems() {
        errors.push(at("gateway", &reason));
    }
    if let Some(set) = playbooks {
        for id in policy.modes.keys().filter(|id| set.get(id).is_none()) {
            errors.push(at(
                id,
                &format!("modes: no playbook `{id}` is in force for this tenant"),
            ));
        }
    }
    if errors.is_empty() {
        Ok(policy)
    } else {
        Err(show(errors))
    }
}

/// The document's top-level table; a syntax error with its line when known.
fn read(text: &str, format: DocFormat) -> Result<Map<String, Value>, (Option<usize>, String)> {
    if text.trim().is_empty() {
        return Ok(Map::new());
    }
    let value = match format {
        DocFormat::Toml => {
            let table: toml::Table = toml::from_str(text).map_err(|e| {
                let line = e.span().map(|s| line_at(text, s.start));
                (line, format!("invalid TOML: {}", e.message()))
            })?;
            serde_json::to_value(table).map_err(|e| (None, e.to_string()))?
        }
        DocFormat::Json | DocFormat::Yaml => serde_json::from_str(text)
            .map_err(|e| (Some(e.line()), format!("invalid JSON: {e}")))?,
    };
    match value {
        Value::Object(map) => Ok(map),
        _ => Err((
            Some(1),
            "the policy must be a table (TOML) or an object (JSON)".into(),
        )),
    }
}

fn line_at(text: &str, byte: usize) -> usize {
    text.get(..byte).map_or(1, |t| t.matches('\n').count() + 1)
}

/// The first line where `key` is set (`key =`, `"key":`, `[key]`, `[key.`), 1-based.
fn line_of(text: &str, key: &str) -> Option<usize> {
    let quoted = format!("\"{key}\"");
    text.lines()
        .position(|line| {
            let t = line.trim_start();
            let after = |rest: &str, stops: &[char]| rest.trim_start().starts_with(stops);
            let bare = t
                .strip_prefix(key)
                .or_else(|| t.strip_prefix(&quoted))
                .is_some_and(|rest| after(rest, &['=', '.']));
            let header = t
                .strip_prefix('[')
                .and_then(|r| r.trim_start().strip_prefix(key))
                .is_some_and(|rest| after(rest, &[']', '.']));
            let json = line
                .find(&quoted)
                .is_some_and(|i| after(&line[i + quoted.len()..], &[':']));
            bare || header || json
        })
        .map(|i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use antibody_respond::Mode;

    fn base() -> TenantPolicy {
        TenantPolicy {
            approvers: 2,
            ..TenantPolicy::default()
        }
    }

    #[test]
    fn toml_and_json_set_keys_over_the_configured_policy() {
        let pbs = PlaybookSet::default_pack().unwrap();
        let toml = "mode = \"approval\"\napproval_risk = 7.5\n[modes]\nport-scan = \"dry_run\"\n[guard]\nper_tenant_per_minute = 3\n";
        let p = parse(toml, DocFormat::Toml, &base(), Some(&pbs)).unwrap();
        assert_eq!(p.mode, Some(Mode::Approval));
        assert_eq!(p.modes["port-scan"], Mode::DryRun);
        assert_eq!(p.approval_risk, 7.5);
        assert_eq!(p.approvers, 2, "kept from the configured policy");
        assert_eq!(p.guard.unwrap().per_tenant_per_minute, 3);
        let json = r#"{"allow": {"entities": ["agent:canary-*"], "cidrs": ["10.0.0.0/8"]}}"#;
        let p = parse(json, DocFormat::Json, &base(), None).unwrap();
        assert!(p.allow.covering("10.9.9.9").is_some());
        assert_eq!(parse("", DocFormat::Toml, &base(), None).unwrap(), base());
    }

    #[test]
    fn every_problem_is_listed_with_its_line() {
        let pbs = PlaybookSet::default_pack().unwrap();
        let toml = "approvers = 9\nmode = \"yolo\"\ncolour = \"red\"\n[modes]\nno-such = \"auto\"\n[allow]\ncidrs = [\"10.0.0.0/33\"]\n";
        let errors = parse(toml, DocFormat::Toml, &base(), Some(&pbs)).unwrap_err();
        let lines: Vec<&str> = errors
            .iter()
            .map(|e| e.split(": ").next().unwrap_or(""))
            .collect();
        assert_eq!(
            lines,
            [
                "tenant/policy.toml:1",
                "tenant/policy.toml:2",
                "tenant/policy.toml:3",
                "tenant/policy.toml:5",
                "tenant/policy.toml:6"
            ],
            "{errors:#?}"
        );
        assert!(errors[0].contains("approvers must be 1–5"), "{errors:#?}");
        assert!(errors[2].contains("unknown key `colour`"), "{errors:#?}");
        assert!(errors[3].contains("no playbook `no-such`"), "{errors:#?}");
        assert!(errors[4].contains("10.0.0.0/33"), "{errors:#?}");
    }

    #[test]
    fn syntax_errors_name_their_line() {
        let e = parse(
            "mode = \"auto\"\napprovers = \n",
            DocFormat::Toml,
            &base(),
            None,
        )
        .unwrap_err();
        assert_eq!(e.len(), 1);
        assert!(
            e[0].starts_with("tenant/policy.toml:2: invalid TOML"),
            "{e:?}"
        );
        let e = parse("{\n \"mode\": \"auto\",\n}", DocFormat::Json, &base(), None).unwrap_err();
        assert!(
            e[0].starts_with("tenant/policy.json:3: invalid JSON"),
            "{e:?}"
        );
        let e = parse("[1]", DocFormat::Json, &base(), None).unwrap_err();
        assert!(e[0].contains("must be a table"), "{e:?}");
    }
}
