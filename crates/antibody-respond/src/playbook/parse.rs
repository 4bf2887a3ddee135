//! Reading playbook files: YAML text → validated [`Playbook`]s. Every problem is collected
//! (never thrown) and pinned to the most specific line found: the YAML parser's location for
//! syntax errors, otherwise the offending key inside the playbook or step.

use super::{AllowList, OnFailure, Playbook, PlaybookSource, Selector, Step, Template, Trigger};
use crate::action::{ActionKind, Mode, ParamValue, Params, TargetKind};
use crate::cidr::Cidr;
use crate::diagnose::Cause;
use crate::duration;
use crate::error::PlaybookError;
use serde_yaml_ng::{Mapping, Value};

const PLAYBOOK_KEYS: &[&str] = &[
    "id",
    "description",
    "trigger",
    "mode",
    "hits",
    "approvers",
    "allow",
    "steps",
];
const TRIGGER_KEYS: &[&str] = &["kinds", "diagnoses", "min_risk", "entities"];
const SELECTOR_KEYS: &[&str] = &["tags", "groups", "names"];
const ALLOW_KEYS: &[&str] = &["entities", "cidrs"];
const STEP_KEYS: &[&str] = &[
    "action",
    "target",
    "params",
    "ttl",
    "on_failure",
    "with_previous",
    "executor",
];
const MAX_STEPS: usize = 16;
const MAX_HITS: u64 = 1_000;
const MAX_APPROVERS: u64 = 5;
const MAX_ID_LEN: usize = 64;

/// Parses one source, appending every problem to `errors`; returns the valid playbooks.
pub(super) fn parse_source(src: &PlaybookSource, errors: &mut Vec<PlaybookError>) -> Vec<Playbook> {
    let value: Value = match serde_yaml_ng::from_str(&src.text) {
        Ok(v) => v,
        Err(e) => {
            errors.push(PlaybookError {
                file: src.name.clone(),
                line: e.location().map(|l| l.line()),
                reason: format!("invalid YAML: {e}"),
            });
            return Vec::new();
        }
    };
    let lines: Vec<&str> = src.text.lines().collect();
    let mut top = Ctx {
        file: &src.name,
        lines: &lines,
        range: (0, lines.len()),
        label: String::new(),
        errors,
        failed: false,
    };
    let Some((items, from)) = playbook_items(&mut top, &value) else {
        return Vec::new();
    };
    let starts = item_starts(&lines, from, lines.len());
    let mut out = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let id = item.get("id").and_then(Value::as_str);
        let range = if starts.len() == items.len() {
            (starts[i], starts.get(i + 1).copied().unwrap_or(lines.len()))
        } else {
            id.and_then(|id| find(&lines, 0, lines.len(), &format!("id: {id}")))
                .map_or((0, lines.len()), |l| (l, l + 1))
        };
        let mut ctx = Ctx {
            file: &src.name,
            lines: &lines,
            range,
            label: id.map_or_else(
                || format!("playbook #{}", i + 1),
                |id| format!("playbook `{id}`"),
            ),
            errors: top.errors,
            failed: false,
        };
        if let Some(id) = id {
            if seen.iter().any(|s| s == id) {
                ctx.err("id:", format!("duplicate id `{id}` in this file"));
            }
            seen.push(id.to_owned());
        }
        if let Some(pb) = parse_playbook(&mut ctx, item) {
            out.push(pb);
        }
        top.errors = ctx.errors;
    }
    out
}

struct Ctx<'a> {
    file: &'a str,
    lines: &'a [&'a str],
    /// Line indexes `[start, end)` of the thing being parsed.
    range: (usize, usize),
    label: String,
    errors: &'a mut Vec<PlaybookError>,
    failed: bool,
}

impl Ctx<'_> {
    /// Records a problem at the first line of the range containing `needle` (else its start).
    fn err(&mut self, needle: &str, reason: String) {
        let (from, to) = self.range;
        let line = find(self.lines, from, to, needle).or((from < to).then_some(from));
        let reason = if self.label.is_empty() {
            reason
        } else {
            format!("{}: {reason}", self.label)
        };
        self.errors.push(PlaybookError {
            file: self.file.to_owned(),
            line: line.map(|l| l + 1),
            reason,
        });
        self.failed = true;
    }

    fn check_keys(&mut self, map: &Mapping, known: &[&str], what: &str) {
        for key in map.keys() {
            let name = key.as_str().unwrap_or("?");
            if !known.contains(&name) {
                self.err(
                    &format!("{name}:"),
                    format!(
                        "unknown field `{name}` in {what} (known: {})",
                        known.join(", ")
                    ),
                );
            }
        }
    }
}

/// The playbook list (the document itself or its `playbooks:` key) and the line index
/// from which its items start.
fn playbook_items<'v>(ctx: &mut Ctx<'_>, value: &'v Value) -> Option<(&'v [Value], usize)> {
    match value {
        Value::Null => Some((&[], 0)),
        Value::Sequence(items) => Some((items, 0)),
        Value::Mapping(map) => {
            ctx.check_keys(map, &["playbooks"], "the file");
            let at = find(ctx.lines, 0, ctx.lines.len(), "playbooks:").map_or(0, |l| l + 1);
            match map.get("playbooks") {
                Some(Value::Sequence(items)) => Some((items, at)),
                Some(Value::Null) => Some((&[], 0)),
                Some(_) => {
                    ctx.err("playbooks:", "`playbooks` must be a list".into());
                    None
                }
                None => {
                    ctx.err("", "missing `playbooks: [...]`".into());
                    None
                }
            }
        }
        _ => {
            ctx.err(
                "",
                "expected a list of playbooks or `playbooks: [...]`".into(),
            );
            None
        }
    }
}

fn parse_playbook(ctx: &mut Ctx<'_>, item: &Value) -> Option<Playbook> {
    let Some(map) = item.as_mapping() else {
        ctx.err("", "a playbook must be a mapping".into());
        return None;
    };
    ctx.check_keys(map, PLAYBOOK_KEYS, "a playbook");
    let id = parse_id(ctx, map.get("id"));
    let description = match map.get("description") {
        None => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => {
            ctx.err("description:", "`description` must be a string".into());
            String::new()
        }
    };
    let trigger = match map.get("trigger") {
        Some(v) => parse_trigger(ctx, v),
        None => {
            ctx.err("", "missing `trigger`".into());
            None
        }
    };
    let mode = match map.get("mode") {
        None => Mode::Auto,
        Some(v) => match v.as_str().and_then(Mode::parse) {
            Some(m) => m,
            None => {
                ctx.err(
                    "mode:",
                    "`mode` must be auto, approval (or approve), notify or dry_run".into(),
                );
                Mode::Auto
            }
        },
    };
    let hits = count(ctx, map.get("hits"), "hits", MAX_HITS);
    let approvers = count(ctx, map.get("approvers"), "approvers", MAX_APPROVERS);
    let allow = map
        .get("allow")
        .map(|v| parse_allow(ctx, v))
        .unwrap_or_default();
    let steps = parse_steps(ctx, map.get("steps"));
    let rungs = rungs(&steps);
    let (id, trigger) = (id?, trigger?);
    if ctx.failed {
        return None;
    }
    Some(Playbook {
        id,
        description,
        trigger,
        mode,
        hits: u32::try_from(hits).ok()?,
        approvers: u8::try_from(approvers).ok()?,
        allow,
        steps,
        rungs,
        file: ctx.file.to_owned(),
        line: Some(ctx.range.0 + 1),
    })
}

fn parse_id(ctx: &mut Ctx<'_>, v: Option<&Value>) -> Option<String> {
    let Some(v) = v else {
        ctx.err("", "missing `id`".into());
        return None;
    };
    let id = v.as_str().unwrap_or_default();
    let valid = !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if valid {
        Some(id.to_owned())
    } else {
        ctx.err(
            "id:",
            format!("`id` must be 1–{MAX_ID_LEN} characters of a-z, 0-9, - and _"),
        );
        None
    }
}

fn count(ctx: &mut Ctx<'_>, v: Option<&Value>, key: &str, max: u64) -> u64 {
    match v {
        None => 1,
        Some(v) => match v.as_u64().filter(|n| (1..=max).contains(n)) {
            Some(n) => n,
            None => {
                ctx.err(
                    &format!("{key}:"),
                    format!("`{key}` must be a whole number from 1 to {max}"),
                );
                1
            }
        },
    }
}

fn parse_trigger(ctx: &mut Ctx<'_>, v: &Value) -> Option<Trigger> {
    let Some(map) = v.as_mapping() else {
        ctx.err("trigger:", "`trigger` must be a mapping".into());
        return None;
    };
    ctx.check_keys(map, TRIGGER_KEYS, "`trigger`");
    let kinds = strings(ctx, map.get("kinds"), "kinds");
    let mut diagnoses = Vec::new();
    for name in strings(ctx, map.get("diagnoses"), "diagnoses") {
        match Cause::parse(&name) {
            Some(c) => diagnoses.push(c),
            None => {
                let known: Vec<&str> = Cause::ALL.iter().map(|c| c.as_str()).collect();
                ctx.err(
                    &name,
                    format!("unknown diagnosis `{name}` (known: {})", known.join(", ")),
                );
            }
        }
    }
    if kinds.is_empty() && diagnoses.is_empty() && !ctx.failed {
        ctx.err("trigger:", "`trigger` needs `kinds` or `diagnoses`".into());
    }
    let min_risk = match map.get("min_risk") {
        None => 0.0,
        Some(v) => match v.as_f64().filter(|r| (0.0..=10.0).contains(r)) {
            Some(r) => r,
            None => {
                ctx.err(
                    "min_risk:",
                    "`min_risk` must be a number from 0 to 10".into(),
                );
                0.0
            }
        },
    };
    let entities = match map.get("entities") {
        None => Selector::default(),
        Some(Value::Mapping(sel)) => {
            ctx.check_keys(sel, SELECTOR_KEYS, "`entities`");
            Selector {
                tags: strings(ctx, sel.get("tags"), "tags"),
                groups: strings(ctx, sel.get("groups"), "groups"),
                names: strings(ctx, sel.get("names"), "names"),
            }
        }
        Some(_) => {
            ctx.err(
                "entities:",
                "`entities` must be a mapping (tags, groups, names)".into(),
            );
            Selector::default()
        }
    };
    Some(Trigger {
        kinds,
        diagnoses,
        min_risk,
        entities,
    })
}

fn parse_allow(ctx: &mut Ctx<'_>, v: &Value) -> AllowList {
    let Some(map) = v.as_mapping() else {
        ctx.err(
            "allow:",
            "`allow` must be a mapping (entities, cidrs)".into(),
        );
        return AllowList::default();
    };
    ctx.check_keys(map, ALLOW_KEYS, "`allow`");
    let entities = strings(ctx, map.get("entities"), "entities");
    let mut cidrs = Vec::new();
    for text in strings(ctx, map.get("cidrs"), "cidrs") {
        match Cidr::parse(&text) {
            Some(c) => cidrs.push(c),
            None => ctx.err(
                &text,
                format!("`{text}` is not an IP address or CIDR block"),
            ),
        }
    }
    AllowList { entities, cidrs }
}

fn parse_steps(ctx: &mut Ctx<'_>, v: Option<&Value>) -> Vec<Step> {
    let items = match v {
        Some(Value::Sequence(items)) if !items.is_empty() && items.len() <= MAX_STEPS => items,
        Some(_) => {
            ctx.err(
                "steps:",
                format!("`steps` must be a list of 1 to {MAX_STEPS} steps"),
            );
            return Vec::new();
        }
        None => {
            ctx.err("", "missing `steps`".into());
            return Vec::new();
        }
    };
    let ranges = step_ranges(ctx, items.len());
    let mut steps = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let saved = (ctx.range, std::mem::take(&mut ctx.label));
        ctx.range = ranges.get(i).copied().unwrap_or(saved.0);
        ctx.label = format!("{} step {}", saved.1, i + 1);
        if let Some(step) = parse_step(ctx, item, i) {
            steps.push(step);
        }
        (ctx.range, ctx.label) = saved;
    }
    steps
}

/// Line ranges of the steps, or an empty list when the layout cannot be matched.
fn step_ranges(ctx: &Ctx<'_>, n: usize) -> Vec<(usize, usize)> {
    let (from, to) = ctx.range;
    let Some(at) = find(ctx.lines, from, to, "steps:") else {
        return Vec::new();
    };
    let key_indent = indent(ctx.lines[at]);
    let end = (at + 1..to)
        .find(|&i| {
            let l = ctx.lines[i];
            let t = l.trim_start();
            !t.is_empty()
                && !t.starts_with('#')
                && (indent(l) < key_indent || (indent(l) == key_indent && !t.starts_with('-')))
        })
        .unwrap_or(to);
    let starts = item_starts(ctx.lines, at + 1, end);
    if starts.len() != n {
        return Vec::new();
    }
    starts
        .iter()
        .enumerate()
        .map(|(i, &s)| (s, starts.get(i + 1).copied().unwrap_or(end)))
        .collect()
}

fn parse_step(ctx: &mut Ctx<'_>, v: &Value, index: usize) -> Option<Step> {
    let Some(map) = v.as_mapping() else {
        ctx.err("", "a step must be a mapping".into());
        return None;
    };
    ctx.check_keys(map, STEP_KEYS, "a step");
    let action = match map.get("action").map(|a| (a.as_str(), a)) {
        Some((Some(name), _)) => match ActionKind::parse(name) {
            Some(k) => Some(k),
            None => {
                let known: Vec<&str> = ActionKind::ALL.iter().map(|k| k.as_str()).collect();
                ctx.err(
                    "action:",
                    format!("unknown action `{name}` (known: {})", known.join(", ")),
                );
                None
            }
        },
        Some((None, _)) => {
            ctx.err("action:", "`action` must be a string".into());
            None
        }
        None => {
            ctx.err("", "missing `action`".into());
            None
        }
    };
    let params = parse_params(ctx, map.get("params"));
    let ttls_ms = parse_ttls(ctx, map.get("ttl"));
    let on_failure = match map.get("on_failure").map(Value::as_str) {
        None => OnFailure::Next,
        Some(Some("next")) => OnFailure::Next,
        Some(Some("escalate")) => OnFailure::Escalate,
        Some(Some("stop")) => OnFailure::Stop,
        Some(_) => {
            ctx.err(
                "on_failure:",
                "`on_failure` must be next, escalate or stop".into(),
            );
            OnFailure::Next
        }
    };
    let with_previous = match map.get("with_previous") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            ctx.err(
                "with_previous:",
                "`with_previous` must be true or false".into(),
            );
            false
        }
    };
    if with_previous && index == 0 {
        ctx.err(
            "with_previous:",
            "the first step cannot run `with_previous`".into(),
        );
    }
    let executor = match map.get("executor") {
        None => None,
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(_) => {
            ctx.err("executor:", "`executor` must be a non-empty string".into());
            None
        }
    };
    let action = action?;
    if let Err(problems) = action.validate_params(&params) {
        for p in problems {
            ctx.err("params:", p);
        }
    }
    let target = parse_target(ctx, map.get("target"), action)?;
    Some(Step {
        action,
        target,
        params,
        ttls_ms,
        on_failure,
        with_previous,
        executor,
    })
}

fn parse_target(ctx: &mut Ctx<'_>, v: Option<&Value>, action: ActionKind) -> Option<Template> {
    let source = match v {
        None if action.target_kind() == TargetKind::Address => "{{src_ip}}",
        None => "{{entity}}",
        Some(Value::String(s)) if !s.is_empty() => s.as_str(),
        Some(_) => {
            ctx.err("target:", "`target` must be a non-empty string".into());
            return None;
        }
    };
    let template = match Template::parse(source) {
        Ok(t) => t,
        Err(e) => {
            ctx.err("target:", e);
            return None;
        }
    };
    if !source.contains("{{") {
        if let Err(e) = action.validate_target(source) {
            ctx.err("target:", e);
            return None;
        }
    }
    Some(template)
}

fn parse_params(ctx: &mut Ctx<'_>, v: Option<&Value>) -> Params {
    let mut params = Params::new();
    let map = match v {
        None => return params,
        Some(Value::Mapping(m)) => m,
        Some(_) => {
            ctx.err("params:", "`params` must be a mapping".into());
            return params;
        }
    };
    for (k, v) in map {
        let Some(name) = k.as_str() else {
            ctx.err("params:", "parameter names must be strings".into());
            continue;
        };
        match param_value(v) {
            Some(p) => {
                params.insert(name.to_owned(), p);
            }
            None => ctx.err(
                &format!("{name}:"),
                format!("parameter `{name}` must be a string, number, boolean or list of strings"),
            ),
        }
    }
    params
}

fn param_value(v: &Value) -> Option<ParamValue> {
    Some(match v {
        Value::String(s) => ParamValue::Str(s.clone()),
        Value::Bool(b) => ParamValue::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => ParamValue::Int(i),
            None => ParamValue::Float(n.as_f64()?),
        },
        Value::Sequence(items) => ParamValue::List(
            items
                .iter()
                .map(|i| i.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()?,
        ),
        _ => return None,
    })
}

fn parse_ttls(ctx: &mut Ctx<'_>, v: Option<&Value>) -> Vec<i64> {
    let items: Vec<&Value> = match v {
        None => return Vec::new(),
        Some(Value::Sequence(items)) if !items.is_empty() => items.iter().collect(),
        Some(Value::Sequence(_)) => {
            ctx.err("ttl:", "`ttl` must not be an empty list".into());
            return Vec::new();
        }
        Some(v) => vec![v],
    };
    let mut ttls = Vec::new();
    for item in items {
        let parsed = match item {
            Value::String(s) => duration::parse_ms(s),
            Value::Number(n) => n.as_i64().and_then(|s| duration::parse_ms(&s.to_string())),
            _ => None,
        };
        match parsed {
            Some(ms) => ttls.push(ms),
            None => ctx.err(
                "ttl:",
                format!(
                    "invalid TTL `{}` (e.g. 90s, 15m, 4h, 7d; at most 366d)",
                    describe(item)
                ),
            ),
        }
    }
    if ttls.windows(2).any(|w| w[1] < w[0]) {
        ctx.err("ttl:", "TTLs for repeat offenders must not decrease".into());
    }
    ttls
}

fn describe(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => serde_yaml_ng::to_string(other)
            .map(|s| s.trim().to_owned())
            .unwrap_or_default(),
    }
}

fn strings(ctx: &mut Ctx<'_>, v: Option<&Value>, key: &str) -> Vec<String> {
    match v {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Sequence(items)) => {
            let out: Option<Vec<String>> = items
                .iter()
                .map(|i| i.as_str().map(str::to_owned))
                .collect();
            out.unwrap_or_else(|| {
                ctx.err(
                    &format!("{key}:"),
                    format!("`{key}` must be a list of strings"),
                );
                Vec::new()
            })
        }
        Some(_) => {
            ctx.err(
                &format!("{key}:"),
                format!("`{key}` must be a list of strings"),
            );
            Vec::new()
        }
    }
}

/// Consecutive steps marked `with_previous` join the rung before them.
fn rungs(steps: &[Step]) -> Vec<std::ops::Range<usize>> {
    let mut out: Vec<std::ops::Range<usize>> = Vec::new();
    for (i, s) in steps.iter().enumerate() {
        match out.last_mut() {
            Some(r) if s.with_previous => r.end = i + 1,
            _ => out.push(i..i + 1),
        }
    }
    out
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

fn find(lines: &[&str], from: usize, to: usize, needle: &str) -> Option<usize> {
    (from..to.min(lines.len())).find(|&i| {
        let t = lines[i].trim_start();
        !t.starts_with('#') && lines[i].contains(needle)
    })
}

/// Line indexes in `[from, to)` where the least-indented list items start.
fn item_starts(lines: &[&str], from: usize, to: usize) -> Vec<usize> {
    let items: Vec<usize> = (from..to.min(lines.len()))
        .filter(|&i| {
            let t = lines[i].trim_start();
            t == "-" || t.starts_with("- ")
        })
        .collect();
    let Some(min) = items.iter().map(|&i| indent(lines[i])).min() else {
        return Vec::new();
    };
    items
        .into_iter()
        .filter(|&i| indent(lines[i]) == min)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn load(text: &str) -> (Vec<Playbook>, Vec<PlaybookError>) {
        let mut errors = Vec::new();
        let pbs = parse_source(&PlaybookSource::new("test.yml", text), &mut errors);
        (pbs, errors)
    }

    const GOOD: &str = "\
- id: ssh
  description: block brute force
  trigger:
    kinds: [brute_force]
    diagnoses: [credential_abuse]
    min_risk: 3
    entities: {groups: [edge]}
  mode: auto
  hits: 2
  allow:
    cidrs: [10.0.0.0/8]
    entities: [\"ip:192.0.2.1\"]
  steps:
    - action: block_ip
      ttl: [1h, 4h, 24h]
      params: {scope: ssh}
      on_failure: escalate
    - action: notify
      with_previous: true
      params: {channel: ops}
";

    #[test]
    fn parses_a_full_playbook() {
        let (pbs, errors) = load(GOOD);
        assert!(errors.is_empty(), "{errors:?}");
        let pb = &pbs[0];
        assert_eq!(pb.id, "ssh");
        assert_eq!(pb.hits, 2);
        assert_eq!(pb.trigger.diagnoses, vec![Cause::CredentialAbuse]);
        assert_eq!(pb.trigger.entities.groups, vec!["edge"]);
        assert_eq!(pb.steps[0].target.source(), "{{src_ip}}");
        assert_eq!(pb.steps[0].on_failure, OnFailure::Escalate);
        assert_eq!(pb.steps[1].target.source(), "{{entity}}");
        assert_eq!(pb.rungs, vec![0..2]);
        assert_eq!(pb.allow.cidrs.len(), 1);
        assert_eq!(pb.line, Some(1));
    }

    #[test]
    fn mapping_form_is_accepted() {
        let (pbs, errors) = load(
            "playbooks:\n  - id: a\n    trigger: {kinds: [x]}\n    steps: [{action: notify}]\n",
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(pbs.len(), 1);
    }

    #[test]
    fn reports_every_error_with_its_line() {
        let text = "\
- id: first
  trigger:
    kinds: [brute_force]
  mode: yolo
  steps:
    - action: block_ip
      ttl: [4h, 1h]
    - action: nuke
- id: Second!
  trigger:
    diagnoses: [gremlins]
    min_risk: 11
  colour: red
  steps:
    - action: rate_limit
      params: {per: fortnight}
      target: \"{{nope}}\"
    - action: block_ip
      target: not-an-ip
      on_failure: panic
      with_previous: maybe
";
        let (pbs, errors) = load(text);
        assert!(pbs.is_empty());
        let got: Vec<(Option<usize>, &str)> =
            errors.iter().map(|e| (e.line, e.reason.as_str())).collect();
        let expect: &[(usize, &str)] = &[
            (4, "`mode` must be"),
            (7, "must not decrease"),
            (8, "unknown action `nuke`"),
            (9, "`id` must be"),
            (11, "unknown diagnosis `gremlins`"),
            (12, "`min_risk` must be"),
            (13, "unknown field `colour`"),
            (16, "needs parameter `rate`"),
            (16, "`fortnight` is not one of"),
            (17, "unknown variable `nope`"),
            (19, "not an IP address"),
            (20, "`on_failure` must be"),
            (21, "`with_previous` must be"),
        ];
        for (line, text) in expect {
            assert!(
                got.iter()
                    .any(|(l, r)| *l == Some(*line) && r.contains(text)),
                "missing {line}: {text} in {got:#?}"
            );
        }
        assert!(errors.iter().all(|e| e.file == "test.yml"));
        assert!(
            errors[0].reason.starts_with("playbook `first`"),
            "{}",
            errors[0].reason
        );
    }

    #[test]
    fn missing_parts() {
        let (_, errors) = load("- id: a\n- trigger: {kinds: [x]}\n  steps: []\n- 5\n");
        let reasons: Vec<&str> = errors.iter().map(|e| e.reason.as_str()).collect();
        assert!(
            reasons.iter().any(|r| r.contains("missing `trigger`")),
            "{reasons:?}"
        );
        assert!(
            reasons.iter().any(|r| r.contains("missing `steps`")),
            "{reasons:?}"
        );
        assert!(
            reasons.iter().any(|r| r.contains("missing `id`")),
            "{reasons:?}"
        );
        assert!(
            reasons.iter().any(|r| r.contains("`steps` must be a list")),
            "{reasons:?}"
        );
        assert!(
            reasons.iter().any(|r| r.contains("must be a mapping")),
            "{reasons:?}"
        );
    }

    #[test]
    fn yaml_syntax_error_has_a_line() {
        let (_, errors) = load("- id: a\n  trigger: [\n");
        assert_eq!(errors.len(), 1);
        assert!(errors[0].line.is_some());
        assert!(errors[0].reason.starts_with("invalid YAML"));
    }

    #[test]
    fn duplicate_ids_in_one_file() {
        let one = "- id: a\n  trigger: {kinds: [x]}\n  steps: [{action: notify}]\n";
        let (_, errors) = load(&format!("{one}{one}"));
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].line, Some(4));
        assert!(errors[0].reason.contains("duplicate id"));
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_text(s in ".{0,200}") {
            let _ = load(&s);
        }

        #[test]
        fn never_panics_on_mutated_playbooks(cut in 0usize..600, insert in "[ -~\n]{0,12}") {
            let mut text = GOOD.to_owned();
            let at = cut.min(text.len());
            text.insert_str(at, &insert);
            let _ = load(&text);
        }
    }
}
