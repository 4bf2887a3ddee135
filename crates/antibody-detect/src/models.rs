//! Models as detectors. A [`ModelBinding`] ties a model (anything behind
//! [`antibody_ml::serve::Scorer`]) to a tenant, an event kind and a field mapping; the
//! partition scores every event of that kind in batches and turns predictions into findings.
//!
//! - **Batching.** [`ModelRuntime::prescore`] extracts the features of a whole engine batch
//!   and scores each binding's rows in one call before the events are stepped; row scoring is
//!   a pure function of one event, so precomputing it changes no output and keeps the engine
//!   deterministic whatever the batch boundaries (sequence parts read the entity's history
//!   and are scored as the event is stepped, see below).
//! - **Findings.** An active binding reports a row at or above the model's threshold as a
//!   finding `model:<name>` whose evidence holds the score, threat type, uncertainty and
//!   features, and whose explanation holds the top contributions (signed shares of the total
//!   absolute attribution). Severity: `high` at p ≥ 0.95, `medium` at p ≥ 0.8, else `low`.
//! - **Review queue.** A prediction within `review_band` of the threshold, or with an
//!   uncertainty of at least [`UNCERTAIN`], is low-confidence: a reported one is marked
//!   `review`; an unreported one becomes an `info` finding marked `review` that joins no
//!   incident. At most [`REVIEW_PER_MINUTE`] per binding and partition per minute of event
//!   time, so a confused model cannot flood the queue. Each of the newest
//!   [`BUDGET_MINUTES`] minutes keeps its own count, so out-of-order timestamps cannot reset
//!   one and a single future-dated event takes only its own minute's budget; an event older
//!   than every kept minute draws on the oldest kept one.
//! - **Shadow.** A shadow binding is scored on the same events and never reports; its
//!   agreement with the active binding of the same name is counted.
//! - **Sequences.** A model with a sequence part ([`Scorer::sequence_len`]) also scores each
//!   entity's newest feature rows, oldest first. The rows live in the entity's state
//!   ([`History`]): snapshotted, copied on write and swept with the entity, so the verdict
//!   depends only on the entity's own events in log order, whatever the batch boundaries.
//!   A row is reported when the row model or the sequence part (probability ≥
//!   [`SEQUENCE_THRESHOLD`]) says threat; the finding's score is the higher of the two, and
//!   its evidence holds the sequence probability and each step's attention weight (which
//!   steps mattered). Review and uncertainty stay the row model's.

use antibody_core::{Detector, Event, Explanation, Finding, Severity, TenantId, TimestampMs};
use antibody_ml::drift::DriftWindow;
use antibody_ml::features::RawRow;
use antibody_ml::serve::{Prediction, Scorer};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// Uncertainty at which a prediction goes to the review queue whatever its score.
pub const UNCERTAIN: f32 = 0.1;
/// Review items per binding and partition per minute of event time at most.
pub const REVIEW_PER_MINUTE: u32 = 30;
/// Minutes of event time whose review counts a binding's budget keeps.
pub const BUDGET_MINUTES: usize = 64;
/// Bounds of a binding's drift window (rows per partition): below a few hundred rows PSI is
/// mostly noise (see `antibody_ml::drift`).
pub const MIN_DRIFT_WINDOW: usize = 200;
pub const MAX_DRIFT_WINDOW: usize = 100_000;
/// Probability at which a model's sequence part reports a row (the one `antibody eval` uses).
pub const SEQUENCE_THRESHOLD: f32 = antibody_ml::seq::THRESHOLD as f32;
/// Contributions shown in a finding's explanation.
const TOP_CONTRIBUTIONS: usize = 5;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Slot {
    Active,
    Shadow,
}

/// Where one model input comes from in an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Metric(String),
    Attr(String),
    /// Hour of day (UTC) of the event's timestamp.
    Hour,
    /// Day of week (UTC) of the event's timestamp, Monday = 0.
    Weekday,
}

impl Source {
    /// `metrics.<name>`, `attrs.<name>`, `ts.hour` or `ts.weekday`.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "ts.hour" => return Ok(Source::Hour),
            "ts.weekday" => return Ok(Source::Weekday),
            _ => {}
        }
        let named = |prefix: &str| {
            s.strip_prefix(prefix)
                .filter(|n| !n.is_empty())
                .map(str::to_owned)
        };
        if let Some(n) = named("metrics.") {
            return Ok(Source::Metric(n));
        }
        if let Some(n) = named("attrs.") {
            return Ok(Source::Attr(n));
        }
        Err(format!(
            "`{s}` is not a field: use `metrics.<name>`, `attrs.<name>`, `ts.hour` or `ts.weekday`"
        ))
    }

    /// Writes the field's text into `buf`; an absent field leaves it empty.
    fn read(&self, ev: &Event, buf: &mut String) {
        buf.clear();
        match self {
            Source::Metric(m) => {
                if let Some(v) = ev.metric(m) {
                    let _ = write!(buf, "{v}");
                }
            }
            Source::Attr(a) => {
                if let Some(v) = ev.attr(a) {
                    buf.push_str(&v.to_text());
                }
            }
            Source::Hour => {
                let _ = write!(buf, "{}", ev.ts.rem_euclid(86_400_000) / 3_600_000);
            }
            Source::Weekday => {
                // 1970-01-01 was a Thursday (3 with Monday = 0).
                let _ = write!(buf, "{}", (ev.ts.div_euclid(86_400_000) + 3).rem_euclid(7));
            }
        }
    }
}

/// A model bound to a tenant's events of one kind.
#[derive(Clone, Debug)]
pub struct ModelBinding {
    /// The registry id of this version.
    pub id: String,
    pub tenant: TenantId,
    pub name: String,
    pub version: u32,
    pub event_kind: String,
    pub slot: Slot,
    /// One per [`Scorer::input_columns`], in order.
    pub sources: Vec<Source>,
    pub scorer: Arc<dyn Scorer>,
    /// Distance from the threshold within which a prediction is low-confidence.
    pub review_band: f32,
    /// PSI at which a feature's drift is reported (`model_drift`).
    pub drift_psi: f64,
    /// Rows in each partition's drift window.
    pub drift_window: usize,
}

impl ModelBinding {
    /// Checks that the mapping covers exactly the model's inputs.
    pub fn validate(&self) -> Result<(), String> {
        let inputs = self.scorer.input_columns();
        if inputs.len() != self.sources.len() {
            return Err(format!(
                "the model reads {} inputs ({}) but the mapping gives {}",
                inputs.len(),
                inputs.join(", "),
                self.sources.len()
            ));
        }
        if !(0.0..=0.5).contains(&self.review_band) {
            return Err("`review_band` must be between 0 and 0.5".into());
        }
        if !(self.drift_psi > 0.0 && self.drift_psi.is_finite()) {
            return Err("`drift_psi` must be a positive number".into());
        }
        if !(MIN_DRIFT_WINDOW..=MAX_DRIFT_WINDOW).contains(&self.drift_window) {
            return Err(format!(
                "`drift_window` must be from {MIN_DRIFT_WINDOW} to {MAX_DRIFT_WINDOW} rows"
            ));
        }
        Ok(())
    }
}

/// Every tenant's bound models, indexed by tenant. Swapped whole, like rules.
#[derive(Debug, Default)]
pub struct ModelSet {
    bindings: Vec<ModelBinding>,
    by_tenant: HashMap<TenantId, Vec<usize>>,
    /// Whether any binding has a sequence part (and so reads entity histories).
    sequences: bool,
}

impl ModelSet {
    pub fn new(bindings: Vec<ModelBinding>) -> Self {
        let mut by_tenant: HashMap<TenantId, Vec<usize>> = HashMap::default();
        for (i, b) in bindings.iter().enumerate() {
            by_tenant.entry(b.tenant.clone()).or_default().push(i);
        }
        let sequences = bindings.iter().any(|b| b.scorer.sequence_len() > 0);
        Self {
            bindings,
            by_tenant,
            sequences,
        }
    }

    pub fn bindings(&self) -> &[ModelBinding] {
        &self.bindings
    }

    /// The bindings that score `ev`, in binding order.
    fn for_event<'s>(&'s self, ev: &'s Event) -> impl Iterator<Item = usize> + 's {
        self.by_tenant
            .get(&ev.tenant)
            .into_iter()
            .flatten()
            .copied()
            .filter(move |&b| self.bindings[b].event_kind == ev.kind)
    }
}

/// Counters of one binding in one partition; the server sums them over partitions.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ModelStats {
    pub scored: u64,
    pub reported: u64,
    pub review: u64,
    /// Events whose fields the model could not use (missing or not numeric).
    pub unusable: u64,
    /// Events a shadow binding and its active counterpart both scored.
    pub compared: u64,
    /// Of those, events on which both reported or both stayed silent.
    pub agreed: u64,
    /// `model_drift` findings raised.
    pub drift_alarms: u64,
    /// Rows in the drift window and PSI per feature (the largest over partitions once summed).
    pub drift_rows: u64,
    pub psi: BTreeMap<String, f64>,
}

impl ModelStats {
    pub fn add(&mut self, o: &ModelStats) {
        self.scored += o.scored;
        self.reported += o.reported;
        self.review += o.review;
        self.unusable += o.unusable;
        self.compared += o.compared;
        self.agreed += o.agreed;
        self.drift_alarms += o.drift_alarms;
        self.drift_rows += o.drift_rows;
        for (k, v) in &o.psi {
            let e = self.psi.entry(k.clone()).or_insert(0.0);
            *e = e.max(*v);
        }
    }
}

/// One prediction of the current batch: event position, binding, and its feature row.
#[derive(Clone, Copy)]
struct Scored {
    event: usize,
    binding: usize,
    row: usize,
    pred: Prediction,
    /// The sequence part's probability, and where its attention weights sit in
    /// `ModelRuntime::attention`; set while the event is stepped.
    seq: Option<f32>,
    attention: (usize, usize),
}

impl Scored {
    fn reports(&self, b: &ModelBinding) -> bool {
        self.pred.score >= b.scorer.threshold() || self.seq.is_some_and(|q| q >= SEQUENCE_THRESHOLD)
    }
}

/// An entity's newest feature rows for one binding with a sequence part, oldest first
/// (see the module docs). Kept in the entity's state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct History {
    /// The binding's registry id.
    binding: String,
    rows: Vec<f32>,
}

impl History {
    #[cfg(test)]
    pub(crate) fn binding(&self) -> &str {
        &self.binding
    }

    /// Appends `row`, keeping the newest `len` rows. Trims first, so a full history never
    /// outgrows `len` rows of capacity.
    fn push(&mut self, row: &[f32], len: usize) {
        let excess = (self.rows.len() + row.len()).saturating_sub(len * row.len());
        self.rows.drain(..excess.min(self.rows.len()));
        self.rows.extend_from_slice(row);
    }
}

impl History {
    /// Whether `set` still binds this history's model for `tenant`.
    pub(crate) fn is_bound(&self, set: &ModelSet, tenant: &TenantId) -> bool {
        set.bindings
            .iter()
            .any(|b| b.tenant == *tenant && b.id == self.binding)
    }
}

/// Where the current event's findings go and what they are numbered from.
pub(crate) struct EventOut<'a> {
    /// Position of the event in the prescored batch.
    pub index: usize,
    pub offset: u64,
    /// The event's next finding number (ids are `f-<offset>-<n>`).
    pub next_n: usize,
    pub out: &'a mut Vec<Finding>,
    pub review: &'a mut Vec<Finding>,
}

/// A partition's model state: the bound set, counters, review budgets and scratch buffers.
#[derive(Default)]
pub(crate) struct ModelRuntime {
    set: Arc<ModelSet>,
    stats: HashMap<Key, ModelStats>,
    /// Review items per minute of event time, the newest [`BUDGET_MINUTES`], per binding.
    budget: HashMap<Key, BTreeMap<i64, u32>>,
    fields: Vec<String>,
    /// Feature rows of the current batch, per binding.
    rows: Vec<Vec<f32>>,
    preds: Vec<Prediction>,
    scored: Vec<Scored>,
    /// Attention weights of the current event's sequence verdicts.
    attention: Vec<f64>,
    drift: HashMap<Key, Drift>,
}

/// Bindings are told apart by tenant and registry id (ids are per tenant).
type Key = (TenantId, String);
/// Per binding, review items per kept minute: a snapshot's third section.
pub(crate) type ReviewBudgets = Vec<(Key, BTreeMap<i64, u32>)>;

fn key(b: &ModelBinding) -> Key {
    (b.tenant.clone(), b.id.clone())
}

/// One binding's drift window in this partition.
struct Drift {
    window: DriftWindow,
    /// Rows observed since the last PSI check and since the last alarm.
    since_check: usize,
    since_alarm: usize,
}

/// A [`RawRow`] over the text of an event's mapped fields.
struct Fields<'a>(&'a [String]);

impl RawRow for Fields<'_> {
    fn field(&self, input: usize) -> &str {
        self.0.get(input).map_or("", String::as_str)
    }
}

impl ModelRuntime {
    pub(crate) fn set(&mut self, set: Arc<ModelSet>) {
        let live: std::collections::HashSet<Key> = set.bindings.iter().map(key).collect();
        self.stats.retain(|k, _| live.contains(k));
        self.budget.retain(|k, _| live.contains(k));
        self.drift.retain(|k, _| live.contains(k));
        self.set = set;
    }

    pub(crate) fn stats(&self) -> BTreeMap<Key, ModelStats> {
        let mut all: BTreeMap<Key, ModelStats> = self
            .stats
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (id, d) in &self.drift {
            let s = all.entry(id.clone()).or_default();
            s.drift_rows = d.window.len() as u64;
            let names = d.window.reference().features.iter().map(|f| f.name.clone());
            s.psi = names.zip(d.window.psi()).collect();
        }
        all
    }

    /// Extracts the features of every event of the batch a model is bound to, then scores
    /// each binding's rows in one call.
    pub(crate) fn prescore<'e>(&mut self, events: impl Iterator<Item = &'e Event>) {
        self.scored.clear();
        if self.set.bindings.is_empty() {
            return;
        }
        let set = self.set.clone();
        self.rows.resize_with(set.bindings.len(), Vec::new);
        self.rows.iter_mut().for_each(Vec::clear);
        for (i, ev) in events.enumerate() {
            for b in set.for_event(ev) {
                let binding = &set.bindings[b];
                let width = binding.scorer.feature_names().len();
                let row = self.rows[b].len() / width.max(1);
                if self.extract(b, binding, ev, width) {
                    self.scored.push(Scored {
                        event: i,
                        binding: b,
                        row,
                        pred: Prediction::default(),
                        seq: None,
                        attention: (0, 0),
                    });
                } else {
                    self.stats.entry(key(binding)).or_default().unusable += 1;
                }
            }
        }
        for (b, binding) in set.bindings.iter().enumerate() {
            let width = binding.scorer.feature_names().len().max(1);
            let n = self.rows[b].len() / width;
            if n == 0 {
                continue;
            }
            self.preds.clear();
            self.preds.resize(n, Prediction::default());
            binding.scorer.score_batch(&self.rows[b], &mut self.preds);
            for s in self.scored.iter_mut().filter(|s| s.binding == b) {
                s.pred = self.preds[s.row];
            }
        }
    }

    fn extract(&mut self, b: usize, binding: &ModelBinding, ev: &Event, width: usize) -> bool {
        let k = binding.sources.len();
        if self.fields.len() < k {
            self.fields.resize(k, String::new());
        }
        for (src, buf) in binding.sources.iter().zip(self.fields.iter_mut()) {
            src.read(ev, buf);
        }
        let rows = &mut self.rows[b];
        let start = rows.len();
        rows.resize(start + width, 0.0);
        let ok = binding
            .scorer
            .extract(&Fields(&self.fields[..k]), &mut rows[start..])
            .is_ok();
        if !ok {
            rows.truncate(start);
        }
        ok
    }

    /// Whether event `index` of the prescored batch needs its entity's histories.
    pub(crate) fn wants_history(&self, index: usize) -> bool {
        self.set.sequences && self.event_range(index).next().is_some()
    }

    fn event_range(&self, index: usize) -> std::ops::Range<usize> {
        let start = self.scored.partition_point(|s| s.event < index);
        let end = self.scored.partition_point(|s| s.event <= index);
        start..end
    }

    /// Findings of one event of the prescored batch: reported rows go to `at.out`,
    /// review-only rows to `at.review`. `history` is the entity's (`None` for an entity
    /// that is not tracked: its sequence parts stay silent).
    pub(crate) fn findings(
        &mut self,
        ev: &Event,
        at: EventOut<'_>,
        history: Option<&mut Vec<History>>,
    ) {
        let range = self.event_range(at.index);
        if range.is_empty() {
            return;
        }
        let set = self.set.clone();
        if let Some(h) = history {
            self.score_sequences(&set, range.clone(), h);
        }
        let mut n = at.next_n;
        for i in range.clone() {
            let s = self.scored[i];
            let binding = &set.bindings[s.binding];
            let reported = s.reports(binding);
            let threshold = binding.scorer.threshold();
            let unsure = (s.pred.score - threshold).abs() < binding.review_band
                || s.pred.uncertainty >= UNCERTAIN;
            if binding.slot == Slot::Shadow {
                self.stats.entry(key(binding)).or_default().scored += 1;
                self.compare(&set, s, range.clone(), reported);
                continue;
            }
            let width = binding.scorer.feature_names().len();
            let row = &self.rows[s.binding][s.row * width..(s.row + 1) * width];
            let alarm = observe_drift(&mut self.drift, binding, row, ev, at.offset, n);
            let k = key(binding);
            let review_item = unsure && self.take_review_budget(k.clone(), ev.ts);
            let stats = self.stats.entry(k).or_default();
            stats.scored += 1;
            stats.reported += u64::from(reported);
            stats.review += u64::from(review_item);
            if let Some(f) = alarm {
                n += 1;
                stats.drift_alarms += 1;
                at.review.push(f);
            }
            if !reported && !review_item {
                continue;
            }
            let id = format!("f-{:x}-{n}", at.offset);
            n += 1;
            let verdict = Verdict {
                pred: s.pred,
                row: &self.rows[s.binding][s.row * width..(s.row + 1) * width],
                sequence: s
                    .seq
                    .map(|q| (q, &self.attention[s.attention.0..s.attention.1])),
                reported,
                review: review_item,
            };
            let f = model_finding(id, ev, binding, &verdict);
            if reported {
                at.out.push(f);
            } else {
                at.review.push(f);
            }
        }
    }

    /// Appends each scored row of a binding with a sequence part to the entity's history
    /// and scores that history.
    fn score_sequences(
        &mut self,
        set: &ModelSet,
        range: std::ops::Range<usize>,
        history: &mut Vec<History>,
    ) {
        self.attention.clear();
        for i in range {
            let s = self.scored[i];
            let binding = &set.bindings[s.binding];
            let len = binding.scorer.sequence_len();
            if len == 0 {
                continue;
            }
            let width = binding.scorer.feature_names().len().max(1);
            let row = &self.rows[s.binding][s.row * width..(s.row + 1) * width];
            let h = match history.iter().position(|h| h.binding == binding.id) {
                Some(p) => &mut history[p],
                None => {
                    // Histories of unbound models were dropped by `Partition::set_models`.
                    history.push(History {
                        binding: binding.id.clone(),
                        rows: Vec::with_capacity(len * width),
                    });
                    history.last_mut().expect("pushed above")
                }
            };
            h.push(row, len);
            let steps: Vec<&[f32]> = h.rows.chunks_exact(width).collect();
            let start = self.attention.len();
            self.attention.resize(start + steps.len(), 0.0);
            let q = binding
                .scorer
                .score_sequence(&steps, &mut self.attention[start..]);
            self.scored[i].seq = q;
            self.scored[i].attention = (start, self.attention.len());
        }
    }

    /// Counts whether a shadow prediction agrees with the active binding of its name.
    /// `same_event` is the range of `scored` holding this event's predictions.
    fn compare(
        &mut self,
        set: &ModelSet,
        s: Scored,
        same_event: std::ops::Range<usize>,
        shadow_reports: bool,
    ) {
        let shadow = &set.bindings[s.binding];
        let active = self.scored[same_event].iter().find(|o| {
            let b = &set.bindings[o.binding];
            b.slot == Slot::Active && b.name == shadow.name && b.tenant == shadow.tenant
        });
        let Some(a) = active else { return };
        let active_reports = a.reports(&set.bindings[a.binding]);
        let stats = self.stats.entry(key(shadow)).or_default();
        stats.compared += 1;
        stats.agreed += u64::from(active_reports == shadow_reports);
    }

    /// Every binding's review counts, sorted, for a snapshot: restored, a replay decides
    /// review items exactly as the first run did.
    pub(crate) fn review_budgets(&self) -> ReviewBudgets {
        let mut all: ReviewBudgets = self
            .budget
            .iter()
            .map(|(k, m)| (k.clone(), m.clone()))
            .collect();
        all.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Restores [`ModelRuntime::review_budgets`]; `set_models` later drops unbound ones.
    /// A list longer than [`BUDGET_MINUTES`] (a corrupt snapshot) keeps its newest minutes.
    pub(crate) fn restore_review_budgets(&mut self, budgets: ReviewBudgets) {
        for (k, mut kept) in budgets {
            while kept.len() > BUDGET_MINUTES {
                kept.pop_first();
            }
            self.budget.insert(k, kept);
        }
    }

    /// Charges one review item to the event's minute: each kept minute has its own count,
    /// so neither alternating nor future-dated timestamps reset or exhaust another minute's.
    /// Once [`BUDGET_MINUTES`] are kept, an older minute cannot be reopened: its event draws
    /// on the oldest kept minute.
    fn take_review_budget(&mut self, k: Key, ts: TimestampMs) -> bool {
        let minutes = self.budget.entry(k).or_default();
        let mut minute = ts.div_euclid(60_000);
        if let Some((&oldest, _)) = minutes.first_key_value() {
            if minutes.len() >= BUDGET_MINUTES && minute < oldest {
                minute = oldest;
            }
        }
        let count = minutes.entry(minute).or_insert(0);
        if *count >= REVIEW_PER_MINUTE {
            return false;
        }
        *count += 1;
        if minutes.len() > BUDGET_MINUTES {
            minutes.pop_first();
        }
        true
    }
}

/// Feeds an active binding's row to its drift window; a window that is full and whose
/// largest PSI reaches the binding's threshold raises a `model_drift` finding, at most once
/// per window of rows. PSI is checked every eighth of a window.
fn observe_drift(
    drift: &mut HashMap<Key, Drift>,
    b: &ModelBinding,
    row: &[f32],
    ev: &Event,
    offset: u64,
    n: usize,
) -> Option<Finding> {
    let reference = b.scorer.drift_reference()?;
    let d = drift.entry(key(b)).or_insert_with(|| Drift {
        window: DriftWindow::new(reference, b.drift_window),
        since_check: 0,
        since_alarm: usize::MAX,
    });
    d.window.observe(row);
    d.since_check += 1;
    d.since_alarm = d.since_alarm.saturating_add(1);
    let cap = d.window.capacity();
    if d.window.len() < cap || d.since_check < (cap / 8).max(1) || d.since_alarm < cap {
        return None;
    }
    d.since_check = 0;
    let psi = d.window.psi();
    let (worst, value) = d.window.max_psi();
    if value < b.drift_psi {
        return None;
    }
    d.since_alarm = 0;
    let names: Vec<&str> = reference.features.iter().map(|f| f.name.as_str()).collect();
    let feature = names.get(worst).copied().unwrap_or("?");
    let mut evidence = Map::new();
    evidence.insert("model".into(), json!(b.name));
    evidence.insert("model_id".into(), json!(b.id));
    evidence.insert("feature".into(), json!(feature));
    evidence.insert("psi".into(), json!(value));
    evidence.insert("threshold".into(), json!(b.drift_psi));
    evidence.insert("window_rows".into(), json!(cap));
    let all: Map<String, serde_json::Value> = names
        .iter()
        .zip(&psi)
        .map(|(n, v)| ((*n).to_owned(), json!(v)))
        .collect();
    evidence.insert("psi_by_feature".into(), all.into());
    let text = format!(
        "the inputs of model `{}` v{} drifted from its training data: PSI of {feature} is {value:.2} \
         over the last {cap} rows (threshold {:.2}); its scores may no longer be reliable",
        b.name, b.version, b.drift_psi
    );
    Some(Finding {
        id: format!("f-{offset:x}-{n}"),
        tenant: ev.tenant.clone(),
        ts: ev.ts,
        entity: format!("model:{}", b.name),
        kind: crate::kinds::MODEL_DRIFT.into(),
        detector: Detector::Model(b.name.clone()),
        severity: if value >= 2.0 * b.drift_psi {
            Severity::High
        } else {
            Severity::Medium
        },
        score: (value / (2.0 * b.drift_psi)).min(1.0),
        explanation: Explanation {
            text,
            contributions: names
                .iter()
                .zip(&psi)
                .filter(|(_, v)| **v >= b.drift_psi)
                .map(|(n, v)| ((*n).to_owned(), *v))
                .collect(),
        },
        evidence,
        incident: None,
    })
}

fn severity(p: f32, reported: bool, unsure: bool) -> Severity {
    match () {
        _ if !reported => Severity::Info,
        _ if p >= 0.95 && !unsure => Severity::High,
        _ if p >= 0.8 => Severity::Medium,
        _ => Severity::Low,
    }
}

/// What a binding concluded on one row.
struct Verdict<'a> {
    pred: Prediction,
    row: &'a [f32],
    /// The sequence part's probability and attention weights (oldest step first).
    sequence: Option<(f32, &'a [f64])>,
    reported: bool,
    review: bool,
}

fn model_finding(id: String, ev: &Event, b: &ModelBinding, v: &Verdict<'_>) -> Finding {
    let (p, row, reported, review) = (&v.pred, v.row, v.reported, v.review);
    let names = b.scorer.feature_names();
    let mut phi = vec![0.0; names.len()];
    b.scorer.contributions(row, &mut phi);
    let total: f64 = phi.iter().map(|v| v.abs()).sum();
    let mut order: Vec<usize> = (0..phi.len()).collect();
    order.sort_by(|&x, &y| phi[y].abs().total_cmp(&phi[x].abs()).then(x.cmp(&y)));
    let top: Vec<usize> = order
        .into_iter()
        .take(TOP_CONTRIBUTIONS)
        .filter(|&i| phi[i] != 0.0)
        .collect();
    let share = |i: usize| if total > 0.0 { phi[i] / total } else { 0.0 };
    let threat = b.scorer.class_name(p.threat_type);
    let kind = crate::kinds::model_kind(&b.name);
    let mut text = format!(
        "model `{}` v{} scores {:.3} (threshold {:.3})",
        b.name,
        b.version,
        p.score,
        b.scorer.threshold()
    );
    if let Some(t) = threat {
        let _ = write!(
            text,
            ", most likely {t} ({:.0} %)",
            p.type_confidence * 100.0
        );
    }
    if !top.is_empty() {
        text.push_str("; driven by ");
        let parts: Vec<String> = top
            .iter()
            .map(|&i| format!("{} ({:+.0} %)", names[i], share(i) * 100.0))
            .collect();
        text.push_str(&parts.join(", "));
    }
    if let Some((q, attention)) = v.sequence {
        let _ = write!(
            text,
            "; over the entity's last {} events its sequence model gives {q:.3}",
            attention.len()
        );
        if let Some((step, w)) = attention
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(&a.0)))
        {
            let back = attention.len() - 1 - step;
            let which = match back {
                0 => "this event".to_owned(),
                1 => "the event before".to_owned(),
                k => format!("the event {k} before"),
            };
            let _ = write!(
                text,
                ", paying most attention to {which} ({:.0} %)",
                w * 100.0
            );
        }
    }
    if review {
        text.push_str("; low confidence, queued for review");
    }
    let score = v.sequence.map_or(p.score, |(q, _)| q.max(p.score));
    let mut evidence = Map::new();
    evidence.insert("model".into(), json!(b.name));
    evidence.insert("model_id".into(), json!(b.id));
    evidence.insert("version".into(), json!(b.version));
    evidence.insert("score".into(), json!(p.score));
    evidence.insert("threshold".into(), json!(b.scorer.threshold()));
    evidence.insert("uncertainty".into(), json!(p.uncertainty));
    evidence.insert("threat_type".into(), json!(threat));
    evidence.insert("type_confidence".into(), json!(p.type_confidence));
    evidence.insert("review".into(), json!(review));
    let features: Map<String, serde_json::Value> = names
        .iter()
        .zip(row)
        .map(|(n, v)| (n.clone(), json!(v)))
        .collect();
    evidence.insert("features".into(), features.into());
    if let Some((q, attention)) = v.sequence {
        evidence.insert(
            "sequence".into(),
            json!({ "score": q, "threshold": SEQUENCE_THRESHOLD, "attention": attention }),
        );
    }
    Finding {
        id,
        tenant: ev.tenant.clone(),
        ts: ev.ts,
        entity: ev.entity.clone(),
        kind: kind.clone(),
        detector: Detector::Model(b.name.clone()),
        severity: severity(score, reported, review),
        score: f64::from(score.clamp(0.0, 1.0)),
        explanation: Explanation {
            text,
            contributions: top.iter().map(|&i| (names[i].clone(), share(i))).collect(),
        },
        evidence,
        incident: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EngineConfig, Outputs, Partition};
    use antibody_ml::drift::DriftReference;
    use antibody_ml::features::FieldError;
    use antibody_rules::RuleSet;

    /// A test double: score = x₀ / 100 clamped, contributions = (x₀, −x₁).
    #[derive(Debug)]
    struct Linear {
        names: Vec<String>,
        reference: Option<DriftReference>,
        /// With a sequence part over this many rows: p = mean load / 100, attention ∝ load.
        sequence: usize,
    }

    impl Scorer for Linear {
        fn format(&self) -> &'static str {
            "test"
        }
        fn input_columns(&self) -> &[String] {
            &self.names
        }
        fn feature_names(&self) -> &[String] {
            &self.names
        }
        fn extract(&self, row: &dyn RawRow, out: &mut [f32]) -> Result<(), FieldError> {
            for (i, o) in out.iter_mut().enumerate() {
                *o = row.field(i).parse().map_err(|_| FieldError {
                    input: i,
                    message: "not a number".into(),
                })?;
            }
            Ok(())
        }
        fn threshold(&self) -> f32 {
            0.5
        }
        fn score_batch(&self, rows: &[f32], out: &mut [Prediction]) {
            for (p, r) in out.iter_mut().zip(rows.chunks_exact(2)) {
                p.score = (r[0] / 100.0).clamp(0.0, 1.0);
            }
        }
        fn contributions(&self, row: &[f32], out: &mut [f64]) {
            out[0] = f64::from(row[0]);
            out[1] = -f64::from(row[1]);
        }
        fn drift_reference(&self) -> Option<&DriftReference> {
            self.reference.as_ref()
        }
        fn sequence_len(&self) -> usize {
            self.sequence
        }
        fn score_sequence(&self, steps: &[&[f32]], attention: &mut [f64]) -> Option<f32> {
            if self.sequence == 0 {
                return None;
            }
            let total: f32 = steps.iter().map(|r| r[0]).sum();
            for (a, r) in attention.iter_mut().zip(steps) {
                *a = f64::from(r[0] / total);
            }
            Some((total / steps.len() as f32 / 100.0).clamp(0.0, 1.0))
        }
    }

    fn linear() -> Arc<Linear> {
        Arc::new(Linear {
            names: vec!["load".into(), "hour".into()],
            reference: None,
            sequence: 0,
        })
    }

    fn binding(id: &str, slot: Slot) -> ModelBinding {
        ModelBinding {
            id: id.into(),
            tenant: TenantId::new("t"),
            name: "agents".into(),
            version: 1,
            event_kind: "vitals".into(),
            slot,
            sources: vec![
                Source::parse("metrics.load").unwrap(),
                Source::parse("ts.hour").unwrap(),
            ],
            scorer: linear(),
            review_band: 0.1,
            drift_psi: 0.2,
            drift_window: 200,
        }
    }

    fn event(i: usize, load: Option<f64>, kind: &str) -> (u64, Event) {
        let ev = Event {
            tenant: TenantId::new("t"),
            ts: 1_800_000_000_000 + i as i64 * 1000,
            entity: format!("agent-{}", i % 3),
            kind: kind.into(),
            metrics: load.map(|v| vec![("load".into(), v)]).unwrap_or_default(),
            attrs: Vec::new(),
            id: None,
        };
        (i as u64, ev)
    }

    fn partition(bindings: Vec<ModelBinding>) -> Partition {
        let mut p = Partition::new(
            Arc::new(EngineConfig::default()),
            Arc::new(RuleSet::compile(&[]).expect("no rules compile")),
        );
        p.set_models(Arc::new(ModelSet::new(bindings)));
        p
    }

    fn batch() -> Vec<(u64, Event)> {
        let loads = [10.0, 90.0, 55.0, 20.0, 99.0, 45.0];
        let mut b: Vec<_> = loads
            .iter()
            .enumerate()
            .map(|(i, &l)| event(i, Some(l), "vitals"))
            .collect();
        b.push(event(6, None, "vitals"));
        b.push(event(7, Some(99.0), "http"));
        b
    }

    #[test]
    fn active_model_reports_explains_and_queues_low_confidence() {
        let mut p = partition(vec![binding("m1", Slot::Active)]);
        let mut out = Outputs::default();
        p.on_events(&batch(), &mut out);
        let model: Vec<&Finding> = out
            .findings
            .iter()
            .filter(|f| f.detector == "model:agents")
            .collect();
        // 90, 55 and 99 reach 0.5; 55 and 45 are within 0.1 of it (review).
        let scores: Vec<f64> = model.iter().map(|f| f.score).collect();
        assert_eq!(model.len(), 4, "{scores:?}");
        let review: Vec<&&Finding> = model
            .iter()
            .filter(|f| f.evidence["review"] == true)
            .collect();
        assert_eq!(review.len(), 2);
        let info = model.iter().find(|f| f.severity == Severity::Info).unwrap();
        assert!(
            info.incident.is_none(),
            "review-only findings join no incident"
        );
        let high = model
            .iter()
            .find(|f| (f.score - 0.99).abs() < 1e-6)
            .unwrap();
        assert_eq!(high.severity, Severity::High);
        assert!(high.incident.is_some());
        assert!(high.explanation.text.contains("driven by load"));
        assert!(high.explanation.contributions["load"] > 0.0);
        assert!(high.explanation.contributions["hour"] < 0.0);
        let stats = &p.model_stats()[&(TenantId::new("t"), "m1".to_owned())];
        assert_eq!(
            (stats.scored, stats.reported, stats.review, stats.unusable),
            (6, 3, 2, 1)
        );
    }

    #[test]
    fn shadow_models_never_report_and_count_agreement() {
        let mut shadow = binding("m2", Slot::Shadow);
        shadow.version = 2;
        let mut p = partition(vec![binding("m1", Slot::Active), shadow]);
        let mut out = Outputs::default();
        p.on_events(&batch(), &mut out);
        assert!(out
            .findings
            .iter()
            .all(|f| f.evidence.get("model_id") != Some(&json!("m2"))));
        let s = &p.model_stats()[&(TenantId::new("t"), "m2".to_owned())];
        assert_eq!((s.compared, s.agreed, s.reported), (6, 6, 0));
    }

    #[test]
    fn a_shadow_added_later_is_scored_and_compared() {
        let mut p = partition(vec![binding("m1", Slot::Active)]);
        let mut out = Outputs::default();
        p.on_events(&batch(), &mut out);
        let mut shadow = binding("m2", Slot::Shadow);
        shadow.version = 2;
        p.set_models(Arc::new(ModelSet::new(vec![
            binding("m1", Slot::Active),
            shadow,
        ])));
        p.on_events(&batch(), &mut out);
        let s = &p.model_stats()[&(TenantId::new("t"), "m2".to_owned())];
        assert_eq!((s.scored, s.compared), (6, 6));
    }

    #[test]
    fn batch_boundaries_do_not_change_outputs() {
        let events = batch();
        let mut whole = partition(vec![binding("m1", Slot::Active)]);
        let mut a = Outputs::default();
        whole.on_events(&events, &mut a);
        let mut split = partition(vec![binding("m1", Slot::Active)]);
        let mut b = Outputs::default();
        for (off, ev) in &events {
            split.on_event(*off, ev, &mut b);
        }
        let ids = |o: &Outputs| {
            o.findings
                .iter()
                .map(|f| (f.id.clone(), f.incident.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&a), ids(&b));
    }

    #[test]
    fn review_budget_is_bounded_per_minute() {
        let mut p = partition(vec![binding("m1", Slot::Active)]);
        let mut out = Outputs::default();
        let events: Vec<_> = (0..100).map(|i| event(i, Some(45.0), "vitals")).collect();
        let mut same_minute = events.clone();
        for (_, ev) in &mut same_minute {
            ev.ts = 1_800_000_000_000;
        }
        p.on_events(&same_minute, &mut out);
        assert_eq!(out.findings.len(), REVIEW_PER_MINUTE as usize);
    }

    #[test]
    fn out_of_order_and_future_timestamps_cannot_reset_or_exhaust_the_review_budget() {
        let mut p = partition(vec![binding("m1", Slot::Active)]);
        let at = |m: i64, i: usize| {
            let (off, mut ev) = event(i, Some(45.0), "vitals");
            ev.ts = 1_800_000_000_000 + m * 60_000 + i as i64;
            (off, ev)
        };
        let reviews = |p: &mut Partition, events: &[(u64, Event)]| {
            let mut out = Outputs::default();
            p.on_events(events, &mut out);
            out.findings.len()
        };
        // Alternating between two minutes: each keeps its own count, neither resets.
        let events: Vec<_> = (0..200).map(|i| at(1 - (i % 2) as i64, i)).collect();
        assert_eq!(reviews(&mut p, &events), 2 * REVIEW_PER_MINUTE as usize);
        assert_eq!(reviews(&mut p, &[at(0, 200)]), 0);
        // A day-ahead event takes its own minute's budget, not the present one's.
        assert_eq!(reviews(&mut p, &[at(24 * 60, 201)]), 1);
        let now: Vec<_> = (300..400).map(|i| at(2, i)).collect();
        assert_eq!(reviews(&mut p, &now), REVIEW_PER_MINUTE as usize);
        // Once BUDGET_MINUTES are kept, older minutes cannot be reopened.
        for m in 3..3 + BUDGET_MINUTES as i64 {
            reviews(&mut p, &[at(m, 400 + m as usize)]);
        }
        // They draw on the oldest kept minute, which already holds one item.
        let old: Vec<_> = (500..600).map(|i| at(0, i)).collect();
        assert_eq!(reviews(&mut p, &old), REVIEW_PER_MINUTE as usize - 1);
    }

    #[test]
    fn sources_parse_and_read_time_fields() {
        assert!(Source::parse("metrics.").is_err());
        assert!(Source::parse("body").is_err());
        assert_eq!(
            Source::parse("attrs.user").unwrap(),
            Source::Attr("user".into())
        );
        let (_, mut ev) = event(0, None, "vitals");
        ev.ts = 1_795_000_000_000; // 2026-11-18T11:06:40Z, a Wednesday
        let mut buf = String::new();
        Source::Hour.read(&ev, &mut buf);
        assert_eq!(buf, "11");
        Source::Weekday.read(&ev, &mut buf);
        assert_eq!(buf, "2");
    }

    #[test]
    fn a_mapping_of_the_wrong_width_is_refused() {
        let mut b = binding("m1", Slot::Active);
        b.sources.pop();
        assert!(b.validate().unwrap_err().contains("2 inputs"));
    }

    #[test]
    fn drifted_inputs_raise_one_model_drift_finding_per_window() {
        // Trained on loads 0..40 at any hour; live traffic moves to loads around 30..40 only.
        let train: Vec<f32> = (0..1000)
            .flat_map(|i| [(i % 40) as f32, (i % 24) as f32])
            .collect();
        let names = vec!["load".to_owned(), "hour".to_owned()];
        let reference = DriftReference::fit(&train, 2, &names);
        let mut b = binding("m1", Slot::Active);
        b.scorer = Arc::new(Linear {
            names,
            reference: Some(reference),
            sequence: 0,
        });
        let mut p = partition(vec![b]);
        let mut out = Outputs::default();
        let hourly = |i: usize, load: f64| {
            let (off, mut ev) = event(i, Some(load), "vitals");
            ev.ts = 1_800_000_000_000 + i as i64 * 3_600_000;
            (off, ev)
        };
        let same: Vec<_> = (0..400).map(|i| hourly(i, (i % 40) as f64)).collect();
        p.on_events(&same, &mut out);
        assert!(out.findings.iter().all(|f| f.kind != "model_drift"));
        let shifted = |r: std::ops::Range<usize>| -> Vec<_> {
            r.map(|i| hourly(i, 30.0 + (i % 10) as f64)).collect()
        };
        p.on_events(&shifted(400..550), &mut out);
        let alarms = |o: &Outputs| {
            o.findings
                .iter()
                .filter(|f| f.kind == "model_drift")
                .count()
        };
        assert_eq!(alarms(&out), 1);
        p.on_events(&shifted(550..800), &mut out);
        assert_eq!(alarms(&out), 2, "at most one alarm per window of rows");
        let drift: Vec<&Finding> = out
            .findings
            .iter()
            .filter(|f| f.kind == "model_drift")
            .collect();
        assert_eq!(drift[0].evidence["feature"], "load");
        assert_eq!(drift[0].entity, "model:agents");
        assert!(drift[0].incident.is_none());
        let stats = &p.model_stats()[&(TenantId::new("t"), "m1".to_owned())];
        assert_eq!(stats.drift_alarms, 2);
        assert!(
            stats.psi["load"] >= 0.2 && stats.psi["hour"] < 0.2,
            "{:?}",
            stats.psi
        );
    }

    fn sequence_binding(len: usize) -> ModelBinding {
        let mut b = binding("s1", Slot::Active);
        b.scorer = Arc::new(Linear {
            names: vec!["load".into(), "hour".into()],
            reference: None,
            sequence: len,
        });
        b
    }

    /// Loads of one entity (`agent-0`), one event each, in order.
    fn session(loads: &[f64]) -> Vec<(u64, Event)> {
        loads
            .iter()
            .enumerate()
            .map(|(i, &l)| event(i * 3, Some(l), "vitals"))
            .collect()
    }

    fn model_findings(out: &Outputs) -> Vec<&Finding> {
        out.findings
            .iter()
            .filter(|f| f.detector == "model:agents")
            .collect()
    }

    #[test]
    fn a_sequence_part_reports_from_the_entitys_history_and_says_which_steps_mattered() {
        let mut p = partition(vec![sequence_binding(3)]);
        let mut out = Outputs::default();
        // Row scores 0.1, 0.8, 0.9, 0.3; the last row alone is benign, but the window of the
        // last three (80, 90, 30) averages 0.667.
        p.on_events(&session(&[10.0, 80.0, 90.0, 30.0]), &mut out);
        let found = model_findings(&out);
        assert_eq!(found.len(), 3, "{found:?}");
        let last = found.last().unwrap();
        assert_eq!(last.ts, event(9, None, "vitals").1.ts);
        assert!((last.score - 200.0 / 300.0).abs() < 1e-6, "{}", last.score);
        assert!((last.evidence["score"].as_f64().unwrap() - 0.3).abs() < 1e-6);
        let attention: Vec<f64> = last.evidence["sequence"]["attention"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(attention.len(), 3);
        assert!((attention[1] - 0.45).abs() < 1e-6, "{attention:?}");
        assert!(
            last.explanation
                .text
                .contains("paying most attention to the event before (45 %)"),
            "{}",
            last.explanation.text
        );
        // The first event's window is itself: 0.1 — nothing reported.
        assert!(found.iter().all(|f| f.ts != event(0, None, "vitals").1.ts));
    }

    #[test]
    fn sequence_verdicts_ignore_batch_boundaries_and_survive_a_snapshot() {
        let loads = [10.0, 80.0, 90.0, 30.0, 20.0, 95.0, 5.0, 40.0];
        let events = session(&loads);
        let mut whole = partition(vec![sequence_binding(3)]);
        let mut expected = Outputs::default();
        whole.on_events(&events, &mut expected);

        let mut first = partition(vec![sequence_binding(3)]);
        let mut got = Outputs::default();
        for e in &events[..3] {
            first.on_events(std::slice::from_ref(e), &mut got);
        }
        let bytes = first.snapshot().unwrap();
        let mut restored = Partition::restore(
            Arc::new(EngineConfig::default()),
            Arc::new(RuleSet::compile(&[]).unwrap()),
            &bytes,
        )
        .unwrap();
        restored.set_models(Arc::new(ModelSet::new(vec![sequence_binding(3)])));
        restored.on_events(&events[3..], &mut got);
        assert_eq!(model_findings(&got), model_findings(&expected));
        assert!(model_findings(&expected)
            .iter()
            .any(|f| f.evidence["sequence"]["score"].as_f64() > Some(0.5)
                && f.evidence["score"].as_f64() < Some(0.5)));
        // The same partition without its histories forgets the first three events.
        let mut forgetful = partition(vec![sequence_binding(3)]);
        let mut other = Outputs::default();
        forgetful.on_events(&events[3..], &mut other);
        assert_ne!(model_findings(&other), model_findings(&expected)[1..]);
    }

    #[test]
    fn the_review_budget_survives_a_snapshot() {
        let same_minute = |range: std::ops::Range<usize>| -> Vec<_> {
            range
                .map(|i| {
                    let (off, mut ev) = event(i, Some(45.0), "vitals");
                    ev.ts = 1_800_000_000_000 + i as i64;
                    (off, ev)
                })
                .collect()
        };
        let mut p = partition(vec![binding("m1", Slot::Active)]);
        let mut out = Outputs::default();
        p.on_events(&same_minute(0..20), &mut out);
        assert_eq!(out.findings.len(), 20);
        let bytes = p.snapshot().unwrap();
        let mut restored = Partition::restore(
            Arc::new(EngineConfig::default()),
            Arc::new(RuleSet::compile(&[]).unwrap()),
            &bytes,
        )
        .unwrap();
        restored.set_models(Arc::new(ModelSet::new(vec![binding("m1", Slot::Active)])));
        assert_eq!(restored.snapshot().unwrap(), bytes, "restore is lossless");
        let mut after = Outputs::default();
        restored.on_events(&same_minute(20..100), &mut after);
        // What the minute had left, as an uninterrupted run would: not a fresh budget.
        assert_eq!(after.findings.len(), REVIEW_PER_MINUTE as usize - 20);
    }

    #[test]
    fn a_full_history_keeps_its_capacity() {
        let mut h = History {
            binding: "s1".into(),
            rows: Vec::with_capacity(6),
        };
        for i in 0..25 {
            h.push(&[i as f32, 0.0], 3);
            assert!(h.rows.capacity() <= 6, "{}", h.rows.capacity());
        }
        assert_eq!(h.rows, [22.0, 0.0, 23.0, 0.0, 24.0, 0.0]);
        // A copy (copy-on-write, restore) is exact-size and must not grow either.
        let mut copy = h.clone();
        copy.push(&[25.0, 0.0], 3);
        assert!(copy.rows.capacity() <= 6);
        assert_eq!(copy.rows, [23.0, 0.0, 24.0, 0.0, 25.0, 0.0]);
    }

    #[test]
    fn histories_of_an_unbound_model_are_dropped() {
        let mut p = partition(vec![sequence_binding(3)]);
        let mut out = Outputs::default();
        p.on_events(&session(&[60.0, 70.0]), &mut out);
        let mut next = sequence_binding(3);
        next.id = "s2".into();
        p.set_models(Arc::new(ModelSet::new(vec![next])));
        p.on_events(&session(&[10.0]), &mut out);
        let bytes = p.snapshot().unwrap();
        let restored = Partition::restore(
            Arc::new(EngineConfig::default()),
            Arc::new(RuleSet::compile(&[]).unwrap()),
            &bytes,
        )
        .unwrap();
        assert_eq!(restored.history_bindings(), ["s2"]);
        // Unbinding the last sequence model drops the histories without another event.
        p.set_models(Arc::new(ModelSet::new(vec![binding("m1", Slot::Active)])));
        assert!(p.history_bindings().is_empty());
    }
}
