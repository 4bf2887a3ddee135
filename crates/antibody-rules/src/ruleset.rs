//! The compiled rule set and its evaluation. A `RuleSet` is immutable and shared; all
//! mutable data (threshold windows, scratch buffers) lives in a `RuleState`, one per engine
//! partition, so evaluation needs no locks and allocates nothing for an event that matches
//! nothing.

use crate::error::{RuleError, RuleErrors};
use crate::explain;
use crate::normalize::{Decoded, Normalizer};
use crate::parse::{parse_source, DetectionSpec, RuleSource, RuleSpec};
use crate::selector::{attr_text, Selector};
use crate::signature::{FieldBuilder, FieldMatcher, Marks, SigMatch};
use crate::threshold::{Fired, RuleWindows, ThresholdRule};
use antibody_core::{Event, Severity};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// The default pack, embedded at build time.
const DEFAULT_PACK: &[(&str, &str)] = &[
    (
        "default/sqli.yml",
        include_str!("../rules/default/sqli.yml"),
    ),
    ("default/xss.yml", include_str!("../rules/default/xss.yml")),
    (
        "default/path_traversal.yml",
        include_str!("../rules/default/path_traversal.yml"),
    ),
    (
        "default/cmd_injection.yml",
        include_str!("../rules/default/cmd_injection.yml"),
    ),
    (
        "default/prompt_injection.yml",
        include_str!("../rules/default/prompt_injection.yml"),
    ),
    (
        "default/secret_leak.yml",
        include_str!("../rules/default/secret_leak.yml"),
    ),
    (
        "default/brute_force.yml",
        include_str!("../rules/default/brute_force.yml"),
    ),
    (
        "default/port_scan.yml",
        include_str!("../rules/default/port_scan.yml"),
    ),
    (
        "default/request_flood.yml",
        include_str!("../rules/default/request_flood.yml"),
    ),
];

/// The default pack's files, e.g. to show them to users or to compile them with others.
pub fn default_pack_sources() -> Vec<RuleSource> {
    DEFAULT_PACK
        .iter()
        .map(|(name, text)| RuleSource::new(*name, *text))
        .collect()
}

/// How a rule detects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Detection {
    Signature,
    Threshold,
}

/// What a rule is, for listings and findings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RuleInfo {
    #[schemars(with = "String")]
    pub id: Arc<str>,
    /// The finding kind it emits (`sqli`, `brute_force`, ...).
    #[schemars(with = "String")]
    pub kind: Arc<str>,
    pub severity: Severity,
    pub description: Option<String>,
    pub detection: Detection,
    /// The event kinds it reads.
    pub event_kinds: Vec<String>,
    pub file: String,
    pub line: Option<usize>,
}

/// One rule firing on one event.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RuleHit {
    pub rule_id: Arc<str>,
    pub kind: Arc<str>,
    pub severity: Severity,
    /// In [0, 1].
    pub score: f64,
    pub evidence: Map<String, Json>,
    pub explanation: String,
}

/// Mutable evaluation state for one partition: threshold windows (serialisable, so the
/// engine can snapshot it) and scratch buffers (not serialised).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RuleState {
    windows: Vec<RuleWindows>,
    #[serde(skip)]
    scratch: Scratch,
}

impl RuleState {
    /// Keys currently tracked across all threshold rules (for metrics).
    pub fn tracked_keys(&self) -> usize {
        self.windows.iter().map(RuleWindows::len).sum()
    }
}

#[derive(Clone, Debug, Default)]
struct Scratch {
    norm: Normalizer,
    text: String,
    key: String,
    epoch: u32,
    applicable: Vec<u32>,
    hit: Vec<u32>,
}

impl Scratch {
    fn next_epoch(&mut self) -> u32 {
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.applicable.fill(0);
            self.hit.fill(0);
            self.epoch = 1;
        }
        self.epoch
    }
}

#[derive(Debug)]
struct Rule {
    info: RuleInfo,
    selector: Selector,
    score: f64,
}

/// What to run for one event kind.
#[derive(Debug, Default)]
struct KindPlan {
    signature_rules: Vec<u32>,
    fields: Vec<u32>,
    thresholds: Vec<usize>,
}

/// A compiled, immutable set of rules.
#[derive(Debug)]
pub struct RuleSet {
    rules: Vec<Rule>,
    fields: Vec<FieldMatcher>,
    thresholds: Vec<ThresholdRule>,
    by_kind: HashMap<Box<str>, KindPlan>,
}

impl RuleSet {
    /// Parses and validates every source, then compiles. Returns every problem found.
    pub fn compile(sources: &[RuleSource]) -> Result<RuleSet, RuleErrors> {
        Self::compile_layered(sources, &[])
    }

    /// Compiles `top` over `base`: a rule of `top` replaces the `base` rule with the same id,
    /// others add (a tenant's own rules over the global set). Both layers are validated and
    /// every problem is returned, in source order.
    pub fn compile_layered(base: &[RuleSource], top: &[RuleSource]) -> Result<RuleSet, RuleErrors> {
        let mut errors = Vec::new();
        let mut specs = Vec::new();
        for src in base {
            specs.extend(parse_source(src, &mut errors));
        }
        let mut over = Vec::new();
        for src in top {
            over.extend(parse_source(src, &mut errors));
        }
        specs.retain(|s: &RuleSpec| !over.iter().any(|o: &RuleSpec| o.id == s.id));
        specs.extend(over);
        check_duplicates(&specs, &mut errors);
        if errors.is_empty() {
            return build(specs).map_err(RuleErrors);
        }
        let order = |file: &str| base.iter().chain(top).position(|s| s.name == file);
        errors.sort_by_key(|e| (order(&e.file), e.line));
        Err(RuleErrors(errors))
    }

    /// The embedded default pack.
    pub fn default_pack() -> RuleSet {
        // The pack ships with the binary and a unit test compiles it: failing here is a
        // build defect, not bad input.
        Self::compile(&default_pack_sources())
            .unwrap_or_else(|e| panic!("embedded default rule pack is invalid:\n{e}"))
    }

    /// The default pack plus `dir/*.yml` and `dir/*.yaml`, in file-name order. A missing
    /// directory means just the default pack.
    pub fn load_dir(dir: &Path) -> Result<RuleSet, RuleErrors> {
        let mut sources = default_pack_sources();
        sources.extend(read_dir_sources(dir)?);
        Self::compile(&sources)
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub fn rules(&self) -> impl Iterator<Item = &RuleInfo> {
        self.rules.iter().map(|r| &r.info)
    }

    /// A state with empty windows for this rule set.
    pub fn new_state(&self) -> RuleState {
        let mut state = RuleState::default();
        self.align(&mut state);
        state
    }

    /// Runs every rule selecting `ev.kind` and appends what fired to `out`.
    pub fn evaluate(&self, state: &mut RuleState, ev: &Event, out: &mut Vec<RuleHit>) {
        let Some(plan) = self.by_kind.get(ev.kind.as_str()) else {
            return;
        };
        self.align(state);
        if !plan.signature_rules.is_empty() {
            self.eval_signatures(plan, &mut state.scratch, ev, out);
        }
        for &t in &plan.thresholds {
            self.eval_threshold(t, &mut state.windows[t], &mut state.scratch, ev, out);
        }
    }

    /// Drops threshold windows that ended before `now_ms` (the engine's tick).
    pub fn expire(&self, state: &mut RuleState, now_ms: i64) {
        self.align(state);
        for (w, t) in state.windows.iter_mut().zip(&self.thresholds) {
            w.expire(t.window_ms, now_ms);
        }
    }

    /// Sizes the scratch buffers and lines the windows up with this set's threshold rules
    /// (by rule id), e.g. after a snapshot restore or a rule reload.
    fn align(&self, state: &mut RuleState) {
        let sc = &mut state.scratch;
        if sc.applicable.len() != self.rules.len() {
            sc.applicable = vec![0; self.rules.len()];
            sc.hit = vec![0; self.rules.len()];
            sc.epoch = 0;
        }
        let aligned = state.windows.len() == self.thresholds.len()
            && state
                .windows
                .iter()
                .zip(&self.thresholds)
                .all(|(w, t)| Arc::ptr_eq(&w.rule_id, &t.rule_id));
        if aligned {
            return;
        }
        let mut old: HashMap<Arc<str>, RuleWindows> = std::mem::take(&mut state.windows)
            .into_iter()
            .map(|w| (w.rule_id.clone(), w))
            .collect();
        state.windows = self
            .thresholds
            .iter()
            .map(|t| {
                let mut w = old
                    .remove(&*t.rule_id)
                    .unwrap_or_else(|| RuleWindows::new(t.rule_id.clone()));
                w.rule_id = t.rule_id.clone();
                w
            })
            .collect();
    }

    fn eval_signatures(
        &self,
        plan: &KindPlan,
        sc: &mut Scratch,
        ev: &Event,
        out: &mut Vec<RuleHit>,
    ) {
        let epoch = sc.next_epoch();
        let mut any = false;
        for &r in &plan.signature_rules {
            if self.rules[r as usize].selector.matches(ev, &mut sc.text) {
                sc.applicable[r as usize] = epoch;
                any = true;
            }
        }
        if !any {
            return;
        }
        let mut marks = Marks {
            applicable: &sc.applicable,
            hit: &mut sc.hit,
            epoch,
        };
        for &f in &plan.fields {
            let fm = &self.fields[f as usize];
            if !fm.wanted(&marks) {
                continue;
            }
            let Some(value) = ev.attr(&fm.field) else {
                continue;
            };
            let raw = attr_text(value, &mut sc.text);
            let (text, decoded) = sc.norm.normalize(raw);
            fm.scan(text, &mut marks, |m| {
                out.push(self.signature_hit(&fm.field, &m, text, decoded))
            });
        }
    }

    fn signature_hit(
        &self,
        field: &str,
        m: &SigMatch<'_>,
        text: &str,
        decoded: Decoded,
    ) -> RuleHit {
        let rule = &self.rules[m.rule as usize];
        let kind = explain::kind(&rule.info.kind);
        let explanation = if m.literal {
            format!(
                "{} matched {kind} pattern `{}`{}",
                explain::field(field),
                m.pattern,
                explain::decoded(decoded)
            )
        } else {
            let shown = explain::clip(&text[m.start..m.end], 60);
            format!(
                "{} matched a {kind} pattern on `{shown}`{}",
                explain::field(field),
                explain::decoded(decoded)
            )
        };
        let mut evidence = Map::new();
        evidence.insert("field".into(), field.into());
        evidence.insert("pattern".into(), m.pattern.into());
        evidence.insert(
            "excerpt".into(),
            explain::excerpt(text, m.start, m.end).into(),
        );
        hit(rule, evidence, explanation)
    }

    fn eval_threshold(
        &self,
        t: usize,
        windows: &mut RuleWindows,
        sc: &mut Scratch,
        ev: &Event,
        out: &mut Vec<RuleHit>,
    ) {
        let tr = &self.thresholds[t];
        let rule = &self.rules[tr.rule as usize];
        if !rule.selector.matches(ev, &mut sc.text) {
            return;
        }
        let Some(group) = ev.attr(&tr.group_by) else {
            return;
        };
        sc.key.clear();
        sc.key.push_str(ev.tenant.as_str());
        sc.key.push('\u{1f}');
        let group_start = sc.key.len();
        group.write_text(&mut sc.key);
        let value = match &tr.distinct {
            None => None,
            Some(attr) => match ev.attr(attr) {
                Some(v) => Some(attr_text(v, &mut sc.text)),
                None => return,
            },
        };
        if let Some(fired) = windows.observe(tr, &sc.key, value, ev.ts) {
            out.push(threshold_hit(rule, tr, &sc.key[group_start..], fired));
        }
    }
}

fn hit(rule: &Rule, evidence: Map<String, Json>, explanation: String) -> RuleHit {
    RuleHit {
        rule_id: rule.info.id.clone(),
        kind: rule.info.kind.clone(),
        severity: rule.info.severity,
        score: rule.score,
        evidence,
        explanation,
    }
}

fn threshold_hit(rule: &Rule, tr: &ThresholdRule, group: &str, fired: Fired) -> RuleHit {
    let whence = if tr.group_by == "ip" || tr.group_by.ends_with("_ip") {
        format!("from {group}")
    } else {
        format!("for {} {group}", tr.group_by)
    };
    let what = match &tr.distinct {
        Some(attr) => format!("distinct {attr} values in {}", tr.label),
        None => tr.label.clone(),
    };
    let explanation = format!(
        "{} {what} {whence} within {} (threshold {})",
        fired.count,
        crate::duration::describe(tr.window_ms),
        tr.count
    );
    let mut evidence = Map::new();
    evidence.insert("group_by".into(), tr.group_by.as_str().into());
    evidence.insert("group".into(), group.into());
    evidence.insert("count".into(), fired.count.into());
    evidence.insert("window_ms".into(), tr.window_ms.into());
    if let Some(attr) = &tr.distinct {
        evidence.insert("distinct".into(), attr.as_str().into());
        evidence.insert("values".into(), fired.values.into());
    }
    hit(rule, evidence, explanation)
}

/// Default score by severity, for rules that do not set one.
fn severity_score(s: Severity) -> f64 {
    match s {
        Severity::Info => 0.2,
        Severity::Low => 0.4,
        Severity::Medium => 0.6,
        Severity::High => 0.8,
        Severity::Critical => 0.95,
    }
}

fn check_duplicates(specs: &[RuleSpec], errors: &mut Vec<RuleError>) {
    let mut seen: HashMap<&str, &RuleSpec> = HashMap::new();
    for spec in specs {
        if let Some(first) = seen.get(spec.id.as_str()) {
            let at = match first.line {
                Some(l) => format!("{}:{l}", first.file),
                None => first.file.clone(),
            };
            errors.push(RuleError {
                file: spec.file.clone(),
                line: spec.line,
                reason: format!("rule `{}`: duplicate id (first defined at {at})", spec.id),
            });
        } else {
            seen.insert(&spec.id, spec);
        }
    }
}

fn read_dir_sources(dir: &Path) -> Result<Vec<RuleSource>, RuleErrors> {
    let io_err = |path: &Path, e: std::io::Error| {
        RuleErrors(vec![RuleError {
            file: path.display().to_string(),
            line: None,
            reason: e.to_string(),
        }])
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(dir, e)),
    };
    let mut paths = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| io_err(dir, e))?.path();
        let is_yaml = path.extension().is_some_and(|x| x == "yml" || x == "yaml");
        if is_yaml && path.is_file() {
            paths.push(path);
        }
    }
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).map_err(|e| io_err(&p, e))?;
            Ok(RuleSource::new(p.display().to_string(), text))
        })
        .collect()
}

/// Turns validated specs into matchers and the per-kind plan.
fn build(specs: Vec<RuleSpec>) -> Result<RuleSet, Vec<RuleError>> {
    let mut rules = Vec::with_capacity(specs.len());
    let mut builders: Vec<(String, FieldBuilder)> = Vec::new();
    let mut thresholds = Vec::new();
    let mut by_kind: HashMap<Box<str>, KindPlan> = HashMap::new();
    for (i, spec) in specs.into_iter().enumerate() {
        let idx = u32::try_from(i).map_err(|_| too_many_rules())?;
        let info = RuleInfo {
            id: Arc::from(spec.id.as_str()),
            kind: Arc::from(spec.kind.as_str()),
            severity: spec.severity,
            description: spec.description,
            detection: match spec.detection {
                DetectionSpec::Signature(_) => Detection::Signature,
                DetectionSpec::Threshold(_) => Detection::Threshold,
            },
            event_kinds: spec.selector.kinds.clone(),
            file: spec.file,
            line: spec.line,
        };
        let selector = Selector::new(spec.selector.conditions);
        let plans: Vec<&str> = spec.selector.kinds.iter().map(String::as_str).collect();
        match spec.detection {
            DetectionSpec::Signature(sig) => {
                for field in sig.fields {
                    let f = field_index(&mut builders, &field);
                    let b = &mut builders[f].1;
                    b.rules.push(idx);
                    b.literals
                        .extend(sig.literals.iter().map(|l| (idx, l.clone())));
                    b.regexes.extend(
                        sig.regexes
                            .iter()
                            .map(|(src, r)| (idx, src.clone(), r.clone())),
                    );
                    for kind in &plans {
                        push_unique(
                            &mut by_kind.entry((*kind).into()).or_default().fields,
                            f as u32,
                        );
                    }
                }
                for kind in &plans {
                    push_unique(
                        &mut by_kind.entry((*kind).into()).or_default().signature_rules,
                        idx,
                    );
                }
            }
            DetectionSpec::Threshold(t) => {
                let label = t
                    .label
                    .unwrap_or_else(|| default_label(&spec.selector.kinds, &selector));
                for kind in &plans {
                    push_unique(
                        &mut by_kind.entry((*kind).into()).or_default().thresholds,
                        thresholds.len(),
                    );
                }
                thresholds.push(ThresholdRule {
                    rule: idx,
                    rule_id: info.id.clone(),
                    group_by: t.group_by,
                    distinct: t.distinct,
                    count: t.count,
                    window_ms: t.window_ms,
                    max_keys: t.max_keys,
                    label,
                });
            }
        }
        let score = spec.score.unwrap_or_else(|| severity_score(spec.severity));
        rules.push(Rule {
            info,
            selector,
            score,
        });
    }
    let mut errors = Vec::new();
    let mut fields = Vec::with_capacity(builders.len());
    for (name, b) in builders {
        match b.build(name) {
            Ok(fm) => fields.push(fm),
            Err(reason) => errors.push(RuleError {
                file: "<rule set>".into(),
                line: None,
                reason,
            }),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(RuleSet {
        rules,
        fields,
        thresholds,
        by_kind,
    })
}

fn too_many_rules() -> Vec<RuleError> {
    vec![RuleError {
        file: "<rule set>".into(),
        line: None,
        reason: "too many rules".into(),
    }]
}

fn field_index(builders: &mut Vec<(String, FieldBuilder)>, field: &str) -> usize {
    if let Some(i) = builders.iter().position(|(name, _)| name == field) {
        return i;
    }
    builders.push((field.to_owned(), FieldBuilder::default()));
    builders.len() - 1
}

fn push_unique<T: PartialEq>(v: &mut Vec<T>, x: T) {
    if !v.contains(&x) {
        v.push(x);
    }
}

/// "auth events with outcome=failure" when a rule names nothing better.
fn default_label(kinds: &[String], selector: &Selector) -> String {
    let conds = selector.describe();
    if conds.is_empty() {
        format!("{} events", kinds.join("/"))
    } else {
        format!("{} events with {conds}", kinds.join("/"))
    }
}
