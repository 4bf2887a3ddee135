//! Reading rule files: YAML text → validated rule specs. Problems are collected, never
//! thrown, and each is pinned to the most specific line we can find: the YAML parser's own
//! location for syntax errors, otherwise the offending key or pattern inside the rule.

use crate::duration;
use crate::error::RuleError;
use antibody_core::Severity;
use regex::Regex;
use serde_yaml_ng::{Mapping, Value};
use std::fmt::Display;
use std::sync::Arc;

/// Compiled size limit of one regex; the per-field sets get a proportionally larger budget.
pub(crate) const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// Longest literal or regex source accepted.
pub(crate) const MAX_PATTERN_LEN: usize = 4096;
/// Largest `count` of a counting threshold (its window keeps at most this many timestamps).
pub(crate) const MAX_COUNT: u64 = 100_000;
/// Largest `count` of a distinct threshold (kept values are scanned linearly).
pub(crate) const MAX_DISTINCT_COUNT: u64 = 1_000;
pub(crate) const DEFAULT_MAX_KEYS: u64 = 100_000;
pub(crate) const MAX_KEYS_LIMIT: u64 = 1_000_000;

const RULE_KEYS: &[&str] = &[
    "id",
    "kind",
    "severity",
    "description",
    "score",
    "events",
    "signature",
    "threshold",
];
const EVENTS_KEYS: &[&str] = &["kinds", "where"];
const SIGNATURE_KEYS: &[&str] = &["fields", "literals", "regexes"];
const THRESHOLD_KEYS: &[&str] = &[
    "group_by", "count", "window", "distinct", "max_keys", "label",
];

/// One rule file (or any named text) to compile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleSource {
    pub name: String,
    pub text: String,
}

impl RuleSource {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            text: text.into(),
        }
    }
}

/// A rule that passed validation, ready to be compiled into matchers.
#[derive(Debug)]
pub(crate) struct RuleSpec {
    pub id: String,
    pub kind: String,
    pub severity: Severity,
    pub description: Option<String>,
    pub score: Option<f64>,
    pub selector: SelectorSpec,
    pub detection: DetectionSpec,
    pub file: String,
    pub line: Option<usize>,
}

#[derive(Debug)]
pub(crate) struct SelectorSpec {
    pub kinds: Vec<String>,
    /// `where` conditions: attribute → accepted values.
    pub conditions: Vec<(String, Vec<String>)>,
}

#[derive(Debug)]
pub(crate) enum DetectionSpec {
    Signature(SignatureSpec),
    Threshold(ThresholdSpec),
}

#[derive(Debug)]
pub(crate) struct SignatureSpec {
    pub fields: Vec<String>,
    /// Lowercased, because values are lowercased before matching.
    pub literals: Vec<String>,
    /// Each regex with its source as written (the compiled form may differ, see pattern.rs).
    pub regexes: Vec<(Arc<str>, Regex)>,
}

#[derive(Debug)]
pub(crate) struct ThresholdSpec {
    pub group_by: String,
    pub count: usize,
    pub window_ms: i64,
    pub distinct: Option<String>,
    pub max_keys: usize,
    pub label: Option<String>,
}

/// Parses one source, appending every problem to `errors`; returns the rules that are valid.
pub(crate) fn parse_source(src: &RuleSource, errors: &mut Vec<RuleError>) -> Vec<RuleSpec> {
    let value: Value = match serde_yaml_ng::from_str(&src.text) {
        Ok(v) => v,
        Err(e) => {
            errors.push(RuleError {
                file: src.name.clone(),
                line: e.location().map(|l| l.line()),
                reason: format!("invalid YAML: {e}"),
            });
            return Vec::new();
        }
    };
    let lines: Vec<&str> = src.text.lines().collect();
    let Some((items, first_line)) = rule_items(&value, &src.name, &lines, errors) else {
        return Vec::new();
    };
    let starts = item_starts(&lines, first_line);
    let mut specs = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let id = item.get("id").and_then(Value::as_str);
        let range = if starts.len() == items.len() {
            Some((starts[i], starts.get(i + 1).copied().unwrap_or(lines.len())))
        } else {
            id.and_then(|id| find_id_line(&lines, id))
                .map(|l| (l, l + 1))
        };
        let mut ctx = Ctx {
            file: &src.name,
            lines: &lines,
            range,
            label: match id {
                Some(id) => format!("rule `{id}`"),
                None => format!("rule #{}", i + 1),
            },
            errors,
            failed: false,
        };
        if let Some(spec) = parse_rule(&mut ctx, item) {
            specs.push(spec);
        }
    }
    specs
}

/// The list of rule values: the document itself, or its `rules:` key. Also returns the line
/// index from which list items start, for locating them.
fn rule_items<'v>(
    value: &'v Value,
    file: &str,
    lines: &[&str],
    errors: &mut Vec<RuleError>,
) -> Option<(&'v [Value], usize)> {
    let mut err = |line: Option<usize>, reason: String| {
        errors.push(RuleError {
            file: file.to_owned(),
            line,
            reason,
        });
    };
    match value {
        Value::Null => Some((&[], 0)),
        Value::Sequence(items) => Some((items, 0)),
        Value::Mapping(map) => {
            for key in map.keys() {
                let name = key.as_str().unwrap_or("?");
                if name != "rules" {
                    let line = find_line(lines, 0, lines.len(), &format!("{name}:"));
                    err(
                        line,
                        format!("unknown top-level field `{name}` (expected `rules`)"),
                    );
                }
            }
            let rules_line = find_line(lines, 0, lines.len(), "rules:");
            match map.get("rules") {
                Some(Value::Sequence(items)) => Some((items, rules_line.unwrap_or(1) - 1)),
                Some(Value::Null) => Some((&[], 0)),
                Some(_) => {
                    err(rules_line, "`rules` must be a list of rules".into());
                    None
                }
                None => {
                    err(None, "missing `rules: [...]`".into());
                    None
                }
            }
        }
        _ => {
            err(
                Some(1),
                "expected a list of rules or a mapping with `rules: [...]`".into(),
            );
            None
        }
    }
}

/// Line indexes where the top-level list items start: the least-indented `- ` lines at or
/// after `from`. Callers check the count against the parsed items before trusting it.
fn item_starts(lines: &[&str], from: usize) -> Vec<usize> {
    let dash = |l: &str| {
        let t = l.trim_start();
        (t == "-" || t.starts_with("- ")).then(|| l.len() - t.len())
    };
    let indents: Vec<(usize, usize)> = (from..lines.len())
        .filter_map(|i| dash(lines[i]).map(|ind| (i, ind)))
        .collect();
    let Some(min) = indents.iter().map(|&(_, ind)| ind).min() else {
        return Vec::new();
    };
    indents
        .into_iter()
        .filter(|&(_, ind)| ind == min)
        .map(|(i, _)| i)
        .collect()
}

/// 0-based index of the line declaring `id: <id>`.
fn find_id_line(lines: &[&str], id: &str) -> Option<usize> {
    lines.iter().position(|l| id_value(l) == Some(id))
}

fn id_value(line: &str) -> Option<&str> {
    let pos = line.find("id:")?;
    let before = line[..pos].trim_end();
    if !(before.is_empty() || before.ends_with(['-', '{', ','])) {
        return None;
    }
    let rest = line[pos + 3..].trim_start().trim_start_matches(['"', '\'']);
    let end = rest.find(|c: char| !is_id_char(c)).unwrap_or(rest.len());
    Some(&rest[..end])
}

/// 1-based line of the first line in `[start, end)` containing `needle`.
fn find_line(lines: &[&str], start: usize, end: usize, needle: &str) -> Option<usize> {
    (start..end.min(lines.len()))
        .find(|&i| lines[i].contains(needle))
        .map(|i| i + 1)
}

fn is_id_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-')
}

/// Error sink for one rule: knows the rule's lines, so errors point inside it.
struct Ctx<'a> {
    file: &'a str,
    lines: &'a [&'a str],
    range: Option<(usize, usize)>,
    label: String,
    errors: &'a mut Vec<RuleError>,
    failed: bool,
}

impl Ctx<'_> {
    fn line_of(&self, needle: &str) -> Option<usize> {
        let (start, end) = self.range?;
        let found = if needle.is_empty() {
            None
        } else {
            find_line(self.lines, start, end, needle)
        };
        Some(found.unwrap_or(start + 1))
    }

    /// Records an error located at the first line of the rule containing `needle`.
    fn error(&mut self, needle: &str, reason: impl Display) {
        self.failed = true;
        self.errors.push(RuleError {
            file: self.file.to_owned(),
            line: self.line_of(needle),
            reason: format!("{}: {reason}", self.label),
        });
    }

    fn check_keys(&mut self, map: &Mapping, allowed: &[&str], section: &str) {
        for key in map.keys() {
            match key.as_str() {
                Some(k) if allowed.contains(&k) => {}
                Some(k) => self.error(
                    &format!("{k}:"),
                    format!(
                        "unknown field `{section}{k}` (expected one of: {})",
                        allowed.join(", ")
                    ),
                ),
                None => self.error("", format!("field names in `{section}` must be strings")),
            }
        }
    }

    fn text(&mut self, map: &Mapping, key: &str, path: &str) -> Option<String> {
        let v = map.get(key)?;
        let text = scalar_text(v);
        if text.is_none() {
            self.error(&format!("{key}:"), format!("`{path}` must be a string"));
        }
        text
    }

    fn required_text(&mut self, map: &Mapping, key: &str, path: &str) -> Option<String> {
        if map.get(key).is_none() {
            self.error("", format!("missing `{path}`"));
            return None;
        }
        self.text(map, key, path)
    }

    /// A string or a list of strings (numbers and booleans are taken as their text).
    fn text_list(&mut self, map: &Mapping, key: &str, path: &str) -> Vec<String> {
        match map.get(key) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Sequence(items)) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    match scalar_text(item) {
                        Some(t) => out.push(t),
                        None => self.error(
                            &format!("{key}:"),
                            format!("`{path}` must list strings (quote values that contain `: `)"),
                        ),
                    }
                }
                out
            }
            Some(v) => match scalar_text(v) {
                Some(t) => vec![t],
                None => {
                    self.error(
                        &format!("{key}:"),
                        format!("`{path}` must be a string or a list"),
                    );
                    Vec::new()
                }
            },
        }
    }

    fn uint(&mut self, map: &Mapping, key: &str, path: &str, max: u64) -> Option<u64> {
        let v = map.get(key)?;
        match v.as_u64() {
            Some(n) if (1..=max).contains(&n) => Some(n),
            _ => {
                self.error(
                    &format!("{key}:"),
                    format!("`{path}` must be an integer from 1 to {max}"),
                );
                None
            }
        }
    }
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn parse_rule(ctx: &mut Ctx<'_>, item: &Value) -> Option<RuleSpec> {
    let Value::Mapping(map) = item else {
        ctx.error(
            "",
            "each rule must be a mapping (with `id`, `kind`, `severity`, `events`, ...)",
        );
        return None;
    };
    ctx.check_keys(map, RULE_KEYS, "");
    let id = ctx.required_text(map, "id", "id");
    if let Some(id) = &id {
        if id.is_empty() || id.len() > 128 || !id.chars().all(is_id_char) {
            ctx.error("id:", format!("bad id `{id}` (use 1-128 of a-z 0-9 _ . -)"));
        }
    }
    let kind = ctx.required_text(map, "kind", "kind");
    if let Some(kind) = &kind {
        if kind.is_empty() || !kind.chars().all(|c| is_id_char(c) || c == ':') {
            ctx.error("kind:", format!("bad kind `{kind}` (use a-z 0-9 _ . - :)"));
        }
    }
    let severity = ctx
        .required_text(map, "severity", "severity")
        .and_then(|s| {
            let parsed = Severity::parse(&s);
            if parsed.is_none() {
                ctx.error(
                    "severity:",
                    format!("bad severity `{s}` (expected info, low, medium, high or critical)"),
                );
            }
            parsed
        });
    let description = ctx.text(map, "description", "description");
    let score = parse_score(ctx, map);
    let selector = parse_events(ctx, map.get("events"));
    let detection = match (map.get("signature"), map.get("threshold")) {
        (Some(s), None) => parse_signature(ctx, s).map(DetectionSpec::Signature),
        (None, Some(t)) => parse_threshold(ctx, t).map(DetectionSpec::Threshold),
        (None, None) => {
            ctx.error(
                "",
                "missing `signature` or `threshold` (a rule needs exactly one)",
            );
            None
        }
        (Some(_), Some(_)) => {
            ctx.error(
                "threshold:",
                "has both `signature` and `threshold` (a rule needs exactly one)",
            );
            None
        }
    };
    if ctx.failed {
        return None;
    }
    Some(RuleSpec {
        id: id?,
        kind: kind?,
        severity: severity?,
        description,
        score,
        selector: selector?,
        detection: detection?,
        file: ctx.file.to_owned(),
        line: ctx.line_of(""),
    })
}

fn parse_score(ctx: &mut Ctx<'_>, map: &Mapping) -> Option<f64> {
    let v = map.get("score")?;
    match v.as_f64() {
        Some(s) if (0.0..=1.0).contains(&s) => Some(s),
        _ => {
            ctx.error("score:", "`score` must be a number from 0 to 1");
            None
        }
    }
}

fn parse_events(ctx: &mut Ctx<'_>, v: Option<&Value>) -> Option<SelectorSpec> {
    let Some(v) = v else {
        ctx.error("", "missing `events` (e.g. `events: {kinds: [http]}`)");
        return None;
    };
    let Value::Mapping(map) = v else {
        ctx.error(
            "events:",
            "`events` must be a mapping with `kinds` and optional `where`",
        );
        return None;
    };
    ctx.check_keys(map, EVENTS_KEYS, "events.");
    let kinds = ctx.text_list(map, "kinds", "events.kinds");
    if kinds.is_empty() || kinds.iter().any(String::is_empty) {
        ctx.error(
            "events:",
            "`events.kinds` must list at least one event kind",
        );
    }
    let mut conditions = Vec::new();
    match map.get("where") {
        None | Some(Value::Null) => {}
        Some(Value::Mapping(conds)) => {
            for (key, value) in conds {
                let Some(attr) = key.as_str() else {
                    ctx.error("where:", "`events.where` keys must be attribute names");
                    continue;
                };
                let values = match value {
                    Value::Sequence(items) => items.iter().filter_map(scalar_text).collect(),
                    other => scalar_text(other).into_iter().collect::<Vec<_>>(),
                };
                if values.is_empty() {
                    ctx.error(
                        &format!("{attr}:"),
                        format!("`events.where.{attr}` needs a value"),
                    );
                }
                conditions.push((attr.to_owned(), values));
            }
        }
        Some(_) => ctx.error(
            "where:",
            "`events.where` must map attribute names to values",
        ),
    }
    Some(SelectorSpec { kinds, conditions })
}

fn parse_signature(ctx: &mut Ctx<'_>, v: &Value) -> Option<SignatureSpec> {
    let Value::Mapping(map) = v else {
        ctx.error(
            "signature:",
            "`signature` must be a mapping with `fields` and `literals`/`regexes`",
        );
        return None;
    };
    ctx.check_keys(map, SIGNATURE_KEYS, "signature.");
    let fields = ctx.text_list(map, "fields", "signature.fields");
    if fields.is_empty() || fields.iter().any(String::is_empty) {
        ctx.error(
            "fields:",
            "`signature.fields` must list at least one attribute name",
        );
    }
    let literals = ctx.text_list(map, "literals", "signature.literals");
    let sources = ctx.text_list(map, "regexes", "signature.regexes");
    if literals.is_empty() && sources.is_empty() {
        ctx.error(
            "signature:",
            "a signature needs at least one of `literals` or `regexes`",
        );
    }
    for lit in &literals {
        if lit.is_empty() || lit.len() > MAX_PATTERN_LEN {
            ctx.error(
                "literals:",
                format!("literals must be 1 to {MAX_PATTERN_LEN} bytes long"),
            );
        }
    }
    let literals = literals.iter().map(|l| l.to_lowercase()).collect();
    let regexes = sources
        .iter()
        .filter_map(|src| compile_regex(ctx, src))
        .collect();
    Some(SignatureSpec {
        fields,
        literals,
        regexes,
    })
}

fn compile_regex(ctx: &mut Ctx<'_>, src: &str) -> Option<(Arc<str>, Regex)> {
    if src.len() > MAX_PATTERN_LEN {
        ctx.error(
            "regexes:",
            format!("regex longer than {MAX_PATTERN_LEN} bytes"),
        );
        return None;
    }
    match crate::pattern::compile(src, REGEX_SIZE_LIMIT) {
        Ok(re) if re.is_match("") => {
            ctx.error(
                needle_for(src),
                format!("regex `{src}` matches the empty string"),
            );
            None
        }
        Ok(re) => Some((Arc::from(src), re)),
        Err(e) => {
            ctx.error(
                needle_for(src),
                format!("bad regex `{src}`: {}", regex_reason(&e)),
            );
            None
        }
    }
}

/// A prefix of the pattern to find its line; YAML quoting may differ later on.
fn needle_for(src: &str) -> &str {
    let end = src.char_indices().nth(12).map_or(src.len(), |(i, _)| i);
    let prefix = &src[..end];
    if prefix.contains('\\') || prefix.contains('\'') || prefix.contains('"') {
        "regexes:"
    } else {
        prefix
    }
}

/// The one-line cause out of the regex crate's multi-line diagnostic.
fn regex_reason(e: &regex::Error) -> String {
    let text = e.to_string();
    text.lines()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .map(str::to_owned)
        .unwrap_or_else(|| text.split_whitespace().collect::<Vec<_>>().join(" "))
}

fn parse_threshold(ctx: &mut Ctx<'_>, v: &Value) -> Option<ThresholdSpec> {
    let Value::Mapping(map) = v else {
        ctx.error(
            "threshold:",
            "`threshold` must be a mapping with `group_by`, `count` and `window`",
        );
        return None;
    };
    ctx.check_keys(map, THRESHOLD_KEYS, "threshold.");
    let group_by = ctx.required_text(map, "group_by", "threshold.group_by");
    let distinct = ctx.text(map, "distinct", "threshold.distinct");
    let max = if distinct.is_some() {
        MAX_DISTINCT_COUNT
    } else {
        MAX_COUNT
    };
    if map.get("count").is_none() {
        ctx.error("", "missing `threshold.count`");
    }
    let count = ctx.uint(map, "count", "threshold.count", max);
    let window = ctx
        .required_text(map, "window", "threshold.window")
        .and_then(|w| {
            duration::parse_ms(&w)
                .map_err(|e| ctx.error("window:", e))
                .ok()
        });
    let max_keys = match map.get("max_keys") {
        None => Some(DEFAULT_MAX_KEYS),
        Some(_) => ctx.uint(map, "max_keys", "threshold.max_keys", MAX_KEYS_LIMIT),
    };
    let label = ctx.text(map, "label", "threshold.label");
    Some(ThresholdSpec {
        group_by: group_by?,
        count: usize::try_from(count?).ok()?,
        window_ms: window?,
        distinct,
        max_keys: usize::try_from(max_keys?).ok()?,
        label,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> (Vec<RuleSpec>, Vec<RuleError>) {
        let mut errors = Vec::new();
        let specs = parse_source(&RuleSource::new("t.yml", text), &mut errors);
        (specs, errors)
    }

    const GOOD: &str = "\
- id: sqli-basic
  kind: sqli
  severity: high
  events:
    kinds: [http]
  signature:
    fields: [query]
    literals: [UNION SELECT]
    regexes: ['or\\s+1=1']
- id: ssh-brute
  kind: brute_force
  severity: medium
  events: {kinds: auth, where: {outcome: failure, service: [ssh, web]}}
  threshold: {group_by: src_ip, count: 10, window: 60s}
";

    #[test]
    fn parses_both_rule_types() {
        let (specs, errors) = parse(GOOD);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(specs.len(), 2);
        let DetectionSpec::Signature(sig) = &specs[0].detection else {
            panic!("not a signature")
        };
        assert_eq!(sig.literals, vec!["union select"]);
        assert_eq!(specs[0].line, Some(1));
        assert_eq!(specs[1].line, Some(10));
        let DetectionSpec::Threshold(t) = &specs[1].detection else {
            panic!("not a threshold")
        };
        assert_eq!((t.count, t.window_ms, t.max_keys), (10, 60_000, 100_000));
        assert_eq!(
            specs[1].selector.conditions,
            vec![
                ("outcome".to_owned(), vec!["failure".to_owned()]),
                (
                    "service".to_owned(),
                    vec!["ssh".to_owned(), "web".to_owned()]
                )
            ]
        );
    }

    #[test]
    fn accepts_the_rules_mapping_form_and_empty_files() {
        let (specs, errors) = parse(&format!(
            "rules:\n  {}",
            GOOD.trim_end().replace('\n', "\n  ")
        ));
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(specs.len(), 2);
        assert_eq!(specs[1].line, Some(11));
        assert!(parse("").0.is_empty() && parse("").1.is_empty());
        assert!(parse("rules:\n").1.is_empty());
    }

    #[test]
    fn collects_every_error_with_its_line() {
        let text = "\
- id: Bad Id
  kind: sqli
  severity: urgent
  colour: red
  events: {kinds: [http]}
  signature:
    fields: [query]
    regexes: ['(unclosed']
- id: no-detection
  kind: x
  severity: low
  events: {kinds: [http]}
- id: bad-window
  kind: x
  severity: low
  events: {kinds: [auth]}
  threshold:
    group_by: src_ip
    count: 0
    window: 60
";
        let (specs, errors) = parse(text);
        assert!(specs.is_empty());
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            vec![
                "t.yml:4: rule `Bad Id`: unknown field `colour` (expected one of: id, kind, severity, description, score, events, signature, threshold)",
                "t.yml:1: rule `Bad Id`: bad id `Bad Id` (use 1-128 of a-z 0-9 _ . -)",
                "t.yml:3: rule `Bad Id`: bad severity `urgent` (expected info, low, medium, high or critical)",
                "t.yml:8: rule `Bad Id`: bad regex `(unclosed`: unclosed group",
                "t.yml:9: rule `no-detection`: missing `signature` or `threshold` (a rule needs exactly one)",
                "t.yml:19: rule `bad-window`: `threshold.count` must be an integer from 1 to 100000",
                "t.yml:20: rule `bad-window`: bad duration `60` (expected e.g. 500ms, 10s, 5m, 1h, 1d)",
            ]
        );
    }

    #[test]
    fn yaml_syntax_errors_carry_the_parser_line() {
        let (_, errors) = parse("- id: a\n  kind: [unclosed\n  severity: high\n");
        assert_eq!(errors.len(), 1);
        assert!(errors[0].line.is_some());
        assert!(
            errors[0].reason.starts_with("invalid YAML"),
            "{}",
            errors[0].reason
        );
    }

    #[test]
    fn rejects_wrong_shapes() {
        let (_, errors) = parse("42");
        assert_eq!(
            errors[0].reason,
            "expected a list of rules or a mapping with `rules: [...]`"
        );
        let (_, errors) = parse("rules: 3\nextra: 1\n");
        assert_eq!(errors.len(), 2);
        let (_, errors) = parse("- just a string\n");
        assert!(errors[0].reason.contains("must be a mapping"));
        let (_, errors) = parse(
            "- {id: a, kind: x, severity: low, events: {kinds: [http]}, signature: {fields: [q], regexes: ['x*']}}",
        );
        assert!(
            errors[0].reason.contains("matches the empty string"),
            "{errors:?}"
        );
        assert_eq!(errors[0].line, Some(1));
    }

    #[test]
    fn finds_rule_lines_by_id_when_items_cannot_be_counted() {
        let lines = vec!["rules: [", "  {id: first},", "  {id: 'second'}]"];
        assert_eq!(find_id_line(&lines, "second"), Some(2));
        assert_eq!(find_id_line(&lines, "third"), None);
        assert_eq!(id_value("  rule_id: x"), None);
    }
}
