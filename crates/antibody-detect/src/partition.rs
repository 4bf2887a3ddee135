//! One partition of the engine: the state of every `(tenant, entity)` that hashes to it, and
//! the pure step function `(state, event | tick) → (state', findings, incident updates)`.
//!
//! Invariants: no I/O, no wall clock (time is the event's `ts` or the tick's `now`), and the
//! same inputs in the same order give byte-identical outputs. Finding and incident ids derive
//! from the event's log offset, so replaying a log tail after a crash re-emits the same ids
//! and the store's idempotent writes count nothing twice.

use crate::baseline::{score, MetricBaseline};
use crate::config::EngineConfig;
use crate::correlate::OpenIncident;
use crate::models::{EventOut, History, ModelRuntime, ModelSet, ModelStats, ReviewBudgets};
use crate::rulebook::RuleBook;
use crate::webprof::{self, Method, TemplateId, TenantProfiles, WebProfiles};
use antibody_core::{
    Detector, Event, Explanation, Finding, Incident, Severity, TenantId, TimestampMs,
};
use antibody_rules::{RuleHit, RuleSet, RuleState};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// Entity maps hash with foldhash: several times faster than SipHash on short keys and still
/// seeded per process, so senders cannot precompute colliding entity names.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

/// Engine time between two sweeps for idle entities.
const SWEEP_EVERY_MS: i64 = 60_000;

/// What the engine produced for one step.
#[derive(Debug, Default)]
pub struct Outputs {
    pub findings: Vec<Finding>,
    /// Incidents opened, updated or closed during the step (latest version of each).
    pub incidents: Vec<Incident>,
    /// One per event of a watched entity (see [`Partition::watch`]).
    pub samples: Vec<Sample>,
}

/// A fresh observation of a watched entity: did its event stay within the baselines, and
/// what did it cost? The response engine's probation counts the first, budget caps the
/// second.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub tenant: TenantId,
    pub entity: String,
    pub ts: TimestampMs,
    pub within_baseline: bool,
    /// The event's log offset: a replay after a crash repeats it, so spend counts once.
    pub offset: u64,
    /// The event's `cost_usd` metric.
    pub cost_usd: Option<f64>,
}

impl Outputs {
    pub fn clear(&mut self) {
        self.findings.clear();
        self.incidents.clear();
        self.samples.clear();
    }
    pub fn is_empty(&self) -> bool {
        self.findings.is_empty() && self.incidents.is_empty() && self.samples.is_empty()
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Tracked {
    attr: u16,
    value: String,
    streak: u32,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct EntityState {
    metrics: Vec<(u16, MetricBaseline)>,
    tracked: Vec<Tracked>,
    last_seen: TimestampMs,
    incident: Option<Box<OpenIncident>>,
    /// The response engine wants a [`Sample`] per event (probation).
    watched: bool,
    /// Newest feature rows per model with a sequence part. Written to snapshots after the
    /// entities (see [`SnapshotImage::encode`]), so older snapshots without it still load.
    #[serde(skip)]
    history: Vec<History>,
    /// Until this engine time the baselines re-converge after a heal (see
    /// [`Partition::reconverge`]); 0 when not. The snapshot's fourth section.
    #[serde(skip)]
    reconverge_until: TimestampMs,
}

/// A read-only view of one entity for the API. Its lifecycle state is the response
/// engine's; detection contributes the facts.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EntityView {
    pub entity: String,
    /// No baseline of the entity is warm yet (it has metrics, all still learning).
    pub learning: bool,
    pub baselines: BTreeMap<String, BaselineView>,
    pub last_seen: TimestampMs,
    pub open_incident: Option<String>,
}

/// What detection knows of one entity, for listing (see [`Partition::entities`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EntityFacts<'a> {
    pub entity: &'a str,
    pub learning: bool,
    pub last_seen: TimestampMs,
    pub open_incident: Option<&'a str>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BaselineView {
    pub mean: f64,
    pub std: f64,
    pub n: u32,
}

/// Metric names are interned per partition so each baseline carries a 2-byte id.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Interner {
    names: Vec<String>,
    #[serde(skip)]
    ids: HashMap<String, u16>,
}

impl Interner {
    /// The id of `name`; `None` once 65,535 distinct names exist (further metrics are ignored).
    fn intern(&mut self, name: &str) -> Option<u16> {
        if let Some(&id) = self.ids.get(name) {
            return Some(id);
        }
        let id = u16::try_from(self.names.len())
            .ok()
            .filter(|&i| i < u16::MAX)?;
        self.names.push(name.to_owned());
        self.ids.insert(name.to_owned(), id);
        Some(id)
    }
    fn name(&self, id: u16) -> &str {
        self.names.get(usize::from(id)).map_or("?", String::as_str)
    }
    fn rebuild(&mut self) {
        self.ids = self
            .names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i as u16))
            .collect();
    }
}

/// One partition's whole state, in the form written to a snapshot.
#[derive(Serialize, Deserialize)]
struct SnapshotV1 {
    metrics: Interner,
    attrs: Interner,
    tenants: Vec<(TenantId, Vec<(String, EntityState)>)>,
    open: Vec<(TenantId, String)>,
    rules: RuleState,
}

/// The snapshot's second section: `(tenant, entity, histories)` of every entity that has any.
type Histories<'a> = Vec<(&'a TenantId, &'a str, &'a [History])>;
type OwnedHistories = Vec<(TenantId, String, Vec<History>)>;
/// The fourth: `(tenant, entity, until)` of every entity re-converging.
type Reconverging<'a> = Vec<(&'a TenantId, &'a str, TimestampMs)>;
type OwnedReconverging = Vec<(TenantId, String, TimestampMs)>;

/// The snapshot's fourth section: the windows of tenants' own rule sets, by tenant.
type TenantRuleStates = Vec<(TenantId, RuleState)>;

/// The sixth: every tenant's web profiles, by tenant.
type WebSection = Vec<(TenantId, TenantProfiles)>;
/// The seventh: the web-profile modes tenants set through the API, by tenant.
type WebModes = Vec<(TenantId, webprof::Mode)>;

/// [`SnapshotV1`] borrowed from a live partition, for writing.
#[derive(Serialize)]
struct SnapshotRef<'a> {
    metrics: &'a Interner,
    attrs: &'a Interner,
    tenants: Vec<(&'a TenantId, Vec<(&'a str, &'a EntityState)>)>,
    open: Vec<(&'a TenantId, &'a str)>,
    rules: &'a RuleState,
}

/// One tenant's entities, shared with the live partition.
type SharedEntities = Vec<(Box<str>, Arc<EntityState>)>;

/// A checkpoint's view of a partition (see [`Partition::image`]).
pub struct SnapshotImage {
    metrics: Interner,
    attrs: Interner,
    tenants: Vec<(TenantId, SharedEntities)>,
    open: Vec<(TenantId, Box<str>)>,
    rules: RuleState,
    /// The models' review budgets: the snapshot's third section.
    budgets: ReviewBudgets,
    /// Tenants' own rule windows, in tenant order: the fourth section.
    tenant_rules: TenantRuleStates,
    /// Web profiles, in tenant order (templates shared copy-on-write): the sixth section.
    web: WebSection,
    /// Tenants' own web-profile modes: the seventh.
    web_modes: WebModes,
    hint: Arc<AtomicUsize>,
}

impl SnapshotImage {
    /// The snapshot bytes ([`SnapshotV1`]), entities in sorted order so equal states give
    /// equal bytes.
    pub fn encode(&self) -> Result<Vec<u8>, crate::EngineError> {
        let mut tenants: Vec<(&TenantId, Vec<(&str, &EntityState)>)> = self
            .tenants
            .iter()
            .map(|(t, m)| {
                let mut es: Vec<_> = m.iter().map(|(k, v)| (&**k, &**v)).collect();
                es.sort_unstable_by(|a, b| a.0.cmp(b.0));
                (t, es)
            })
            .collect();
        tenants.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let open: Vec<(&TenantId, &str)> = self.open.iter().map(|(t, e)| (t, &**e)).collect();
        let snap = SnapshotRef {
            metrics: &self.metrics,
            attrs: &self.attrs,
            tenants,
            open,
            rules: &self.rules,
        };
        // Sized by the previous snapshot: growing by doubling spent a third of the time copying.
        let hint = self.hint.load(Relaxed);
        let buf = Vec::with_capacity(hint + hint / 8);
        let bytes = postcard::to_extend(&snap, buf)
            .map_err(|e| crate::EngineError::Snapshot(e.to_string()))?;
        // Entity histories follow as a second section, review budgets as a third and
        // re-converging entities as a fourth, tenants' own rule windows as a fifth, web
        // profiles as a sixth, tenants' web-profile modes as a seventh: a snapshot
        // written before they existed simply ends early, and trailing empty sections are
        // left out.
        let histories: Histories<'_> = snap
            .tenants
            .iter()
            .flat_map(|(t, es)| {
                es.iter()
                    .filter(|(_, e)| !e.history.is_empty())
                    .map(move |(k, e)| (*t, *k, e.history.as_slice()))
            })
            .collect();
        let reconverging: Reconverging<'_> = snap
            .tenants
            .iter()
            .flat_map(|(t, es)| {
                es.iter()
                    .filter(|(_, e)| e.reconverge_until != 0)
                    .map(move |(k, e)| (*t, *k, e.reconverge_until))
            })
            .collect();
        let bad = |e: postcard::Error| crate::EngineError::Snapshot(e.to_string());
        let sections = [
            !histories.is_empty(),
            !self.budgets.is_empty(),
            !reconverging.is_empty(),
            !self.tenant_rules.is_empty(),
            !self.web.is_empty(),
            !self.web_modes.is_empty(),
        ];
        let count = sections.iter().rposition(|&s| s).map_or(0, |i| i + 1);
        let mut bytes = bytes;
        if count > 0 {
            bytes = postcard::to_extend(&histories, bytes).map_err(bad)?;
        }
        if count > 1 {
            bytes = postcard::to_extend(&self.budgets, bytes).map_err(bad)?;
        }
        if count > 2 {
            bytes = postcard::to_extend(&reconverging, bytes).map_err(bad)?;
        }
        if count > 3 {
            bytes = postcard::to_extend(&self.tenant_rules, bytes).map_err(bad)?;
        }
        if count > 4 {
            bytes = postcard::to_extend(&self.web, bytes).map_err(bad)?;
        }
        if count > 5 {
            bytes = postcard::to_extend(&self.web_modes, bytes).map_err(bad)?;
        }
        self.hint.store(bytes.len(), Relaxed);
        Ok(bytes)
    }
}

/// A tenant with rules of its own: its whole set and that set's windows.
struct TenantRules {
    set: Arc<RuleSet>,
    state: RuleState,
}

pub struct Partition {
    cfg: Arc<EngineConfig>,
    /// The global rule set, for every tenant without a set of its own.
    rules: Arc<RuleSet>,
    /// Entity states behind `Arc`: a checkpoint image shares them, and the partition copies
    /// one only when it changes it while an image still holds it (copy-on-write).
    tenants: HashMap<TenantId, HashMap<Box<str>, Arc<EntityState>>>,
    metrics: Interner,
    metric_kinds: Vec<String>,
    attrs: Interner,
    tracked_attr_ids: Vec<u16>,
    rule_state: RuleState,
    /// Tenants with rules of their own (see [`RuleBook`]); usually none.
    tenant_rules: HashMap<TenantId, TenantRules>,
    /// Entities with an open incident, in a stable order for ticks.
    open: BTreeSet<(TenantId, Box<str>)>,
    /// Entities whose incident changed since the last [`Partition::flush_incidents`].
    dirty: BTreeSet<(TenantId, Box<str>)>,
    entities_refused: u64,
    last_sweep: TimestampMs,
    /// Metric names each tenant has used here (bounded by `max_metric_names_per_tenant`).
    tenant_metrics: HashMap<TenantId, std::collections::HashSet<u16>>,
    hits: Vec<RuleHit>,
    models: ModelRuntime,
    /// Low-confidence model findings that join no incident (see [`crate::models`]).
    review: Vec<Finding>,
    /// Learned web-application profiles of the `http` events routed here.
    web: WebProfiles,
    /// The last snapshot's size, to size the next one's buffer.
    snapshot_hint: Arc<AtomicUsize>,
}

impl Partition {
    pub fn new(cfg: Arc<EngineConfig>, rules: impl Into<RuleBook>) -> Self {
        let book: RuleBook = rules.into();
        let rule_state = book.global().new_state();
        let mut p = Self {
            cfg,
            rules: book.global().clone(),
            tenant_rules: HashMap::default(),
            tenants: HashMap::default(),
            metrics: Interner::default(),
            metric_kinds: Vec::new(),
            attrs: Interner::default(),
            tracked_attr_ids: Vec::new(),
            rule_state,
            open: BTreeSet::new(),
            dirty: BTreeSet::new(),
            entities_refused: 0,
            last_sweep: 0,
            tenant_metrics: HashMap::default(),
            hits: Vec::new(),
            models: ModelRuntime::default(),
            review: Vec::new(),
            web: WebProfiles::default(),
            snapshot_hint: Arc::default(),
        };
        p.set_rules(book);
        p.index_config();
        p
    }

    fn index_config(&mut self) {
        let tracked: Vec<String> = self.cfg.tracked_attrs.clone();
        self.tracked_attr_ids = tracked
            .iter()
            .filter_map(|a| self.attrs.intern(a))
            .collect();
        self.metric_kinds = self
            .metrics
            .names
            .iter()
            .map(|m| self.cfg.kind_for_metric(m))
            .collect();
    }

    /// Swaps in new rule sets; threshold windows of rules that kept their id carry on, in
    /// the global set and in each tenant's own. A tenant that gets a set of its own starts
    /// with empty windows for it; one that loses its set drops them.
    pub fn set_rules(&mut self, rules: impl Into<RuleBook>) {
        let book: RuleBook = rules.into();
        self.rules = book.global().clone();
        self.tenant_rules.retain(|t, _| book.tenant(t).is_some());
        for (t, set) in book.tenants() {
            match self.tenant_rules.get_mut(t) {
                Some(own) => own.set = set.clone(),
                None => {
                    let own = TenantRules {
                        state: set.new_state(),
                        set: set.clone(),
                    };
                    self.tenant_rules.insert(t.clone(), own);
                }
            }
        }
    }

    /// Number of tracked entities.
    pub fn entity_count(&self) -> usize {
        self.tenants.values().map(HashMap::len).sum()
    }

    /// Swaps in a new set of bound models.
    pub fn set_models(&mut self, models: Arc<ModelSet>) {
        // Histories of models no longer bound would otherwise stay (and be snapshotted)
        // until their entity goes idle. Only entities that change are copied.
        for (tenant, entities) in &mut self.tenants {
            for state in entities.values_mut() {
                if state.history.iter().any(|h| !h.is_bound(&models, tenant)) {
                    Arc::make_mut(state)
                        .history
                        .retain(|h| h.is_bound(&models, tenant));
                }
            }
        }
        self.models.set(models);
    }

    /// Counters of every bound model in this partition, by tenant and binding id.
    pub fn model_stats(&self) -> BTreeMap<(TenantId, String), ModelStats> {
        self.models.stats()
    }

    /// Runs every detector on a batch of `(log offset, event)` in order; models score the
    /// whole batch at once first.
    pub fn on_events(&mut self, batch: &[(u64, Event)], out: &mut Outputs) {
        self.models.prescore(batch.iter().map(|(_, ev)| ev));
        for (i, (offset, ev)) in batch.iter().enumerate() {
            self.step(i, *offset, ev, out);
        }
    }

    /// Runs every detector on `ev` (the event at log `offset`) and correlates the findings.
    pub fn on_event(&mut self, offset: u64, ev: &Event, out: &mut Outputs) {
        self.models.prescore(std::iter::once(ev));
        self.step(0, offset, ev, out);
    }

    /// `ev` is event `index` of the prescored batch.
    fn step(&mut self, index: usize, offset: u64, ev: &Event, out: &mut Outputs) {
        let first_finding = out.findings.len();
        if !self.admits(&ev.tenant, &ev.entity) {
            self.entities_refused += 1;
            self.evaluate_rules(offset, ev, first_finding, out);
            self.evaluate_profiles(offset, ev, first_finding, out);
            self.model_findings(index, offset, ev, first_finding, out);
            out.findings.append(&mut self.review);
            return;
        }
        let watched = self.detect_metrics(offset, ev, out);
        if watched {
            let within_baseline = out.findings[first_finding..]
                .iter()
                .all(|f| f.detector != Detector::Baseline);
            out.samples.push(Sample {
                tenant: ev.tenant.clone(),
                entity: ev.entity.clone(),
                ts: ev.ts,
                within_baseline,
                offset,
                cost_usd: ev
                    .metrics
                    .iter()
                    .find(|(m, _)| m == "cost_usd")
                    .map(|(_, v)| *v),
            });
        }
        self.evaluate_rules(offset, ev, first_finding, out);
        self.evaluate_profiles(offset, ev, first_finding, out);
        self.model_findings(index, offset, ev, first_finding, out);
        if out.findings.len() > first_finding {
            self.correlate(offset, ev, first_finding, out);
        }
        out.findings.append(&mut self.review);
    }

    fn model_findings(
        &mut self,
        index: usize,
        offset: u64,
        ev: &Event,
        first: usize,
        out: &mut Outputs,
    ) {
        // Only tracked entities keep histories; the lookup is skipped unless a sequence
        // model scores this event.
        let wants = self.models.wants_history(index) && self.admits(&ev.tenant, &ev.entity);
        let history = if wants {
            Some(&mut entity_mut(&mut self.tenants, &ev.tenant, &ev.entity).history)
        } else {
            None
        };
        let at = EventOut {
            index,
            offset,
            next_n: out.findings.len() - first,
            out: &mut out.findings,
            review: &mut self.review,
        };
        self.models.findings(ev, at, history);
    }

    fn evaluate_rules(&mut self, offset: u64, ev: &Event, first_finding: usize, out: &mut Outputs) {
        self.hits.clear();
        // One lookup per event, and none at all while no tenant has rules of its own.
        let own = if self.tenant_rules.is_empty() {
            None
        } else {
            self.tenant_rules.get_mut(&ev.tenant)
        };
        match own {
            Some(t) => t.set.evaluate(&mut t.state, ev, &mut self.hits),
            None => self
                .rules
                .evaluate(&mut self.rule_state, ev, &mut self.hits),
        }
        let hits = std::mem::take(&mut self.hits);
        for hit in &hits {
            let id = finding_id(offset, out.findings.len() - first_finding);
            out.findings.push(rule_finding(id, ev, hit));
        }
        self.hits = hits;
    }

    /// Judges and learns `http` requests against their endpoint's profile.
    fn evaluate_profiles(&mut self, offset: u64, ev: &Event, first: usize, out: &mut Outputs) {
        if ev.kind != "http" {
            return;
        }
        if let Some(v) = self.web.on_event(&self.cfg.web_profiles, ev) {
            let id = finding_id(offset, out.findings.len() - first);
            out.findings.push(webprof::finding(id, ev, &v));
        }
    }

    /// The tenant's web profiles in this partition (a copy: templates are shared).
    pub fn web_profiles(&self, tenant: &TenantId) -> Option<TenantProfiles> {
        self.web.tenant(tenant).cloned()
    }

    /// Replaces the tenant's profiles of the hosts `profiles` names.
    pub fn import_web_profiles(&mut self, tenant: &TenantId, profiles: &TenantProfiles) {
        self.web.import(&self.cfg.web_profiles, tenant, profiles);
    }

    /// Forgets the tenant's templates that match; returns how many.
    pub fn reset_web_profiles(
        &mut self,
        tenant: &TenantId,
        host: Option<&str>,
        method: Option<Method>,
        template: Option<&str>,
    ) -> Vec<TemplateId> {
        self.web.reset(tenant, host, method, template)
    }

    /// The tenant's web-profile mode in force here.
    pub fn web_mode(&self, tenant: &TenantId) -> webprof::Mode {
        self.web.mode(&self.cfg.web_profiles, tenant)
    }

    /// Sets the tenant's own web-profile mode (an ordered control, like a reset).
    pub fn set_web_mode(&mut self, tenant: &TenantId, mode: webprof::Mode) {
        self.web.set_mode(tenant, mode);
    }

    /// Learns the request of a `web_anomaly` finding a person marked false positive.
    pub fn learn_web_finding(&mut self, tenant: &TenantId, evidence: &Map<String, Value>) -> bool {
        self.web
            .learn_finding(&self.cfg.web_profiles, tenant, evidence)
    }

    /// Requests not profiled because their tenant had `max_hosts_per_tenant` hosts.
    pub fn web_hosts_refused(&self) -> u64 {
        self.web.hosts_refused
    }

    /// Whether the entity is tracked or there is room to track it.
    fn admits(&self, tenant: &TenantId, entity: &str) -> bool {
        match self.tenants.get(tenant) {
            Some(m) => m.len() < self.cfg.max_entities_per_tenant || m.contains_key(entity),
            None => true,
        }
    }

    /// Events whose entity could not be tracked (tenant at `max_entities_per_tenant`).
    pub fn entities_refused(&self) -> u64 {
        self.entities_refused
    }

    /// Forgets entities idle for `entity_idle_ms` with no open incident and no watch.
    fn forget_idle(&mut self, now: TimestampMs) {
        let horizon = now.saturating_sub(self.cfg.entity_idle_ms);
        for map in self.tenants.values_mut() {
            map.retain(|_, s| s.last_seen >= horizon || s.incident.is_some() || s.watched);
        }
        self.tenants.retain(|_, m| !m.is_empty());
    }

    /// Starts or stops sampling an entity for the response engine. Watching an entity the
    /// partition has not seen yet creates it, so its first event is sampled too.
    pub fn watch(&mut self, tenant: &TenantId, entity: &str, on: bool) {
        entity_mut(&mut self.tenants, tenant, entity).watched = on;
    }

    /// The response engine healed this entity: until engine time `until` its baselines
    /// re-converge, learning a moderate new level instead of reporting it (see
    /// [`crate::baseline`]). An entity the partition does not track is left alone.
    pub fn reconverge(&mut self, tenant: &TenantId, entity: &str, until: TimestampMs) {
        if let Some(state) = self.tenants.get_mut(tenant).and_then(|m| m.get_mut(entity)) {
            Arc::make_mut(state).reconverge_until = until;
        }
    }

    /// Baselines and tracked attributes; returns whether the entity is watched.
    fn detect_metrics(&mut self, offset: u64, ev: &Event, out: &mut Outputs) -> bool {
        let first = out.findings.len();
        let cfg = &self.cfg.baseline;
        let tracked_ids = &self.tracked_attr_ids;
        let attrs = &mut self.attrs;
        let metrics = &mut self.metrics;
        let kinds = &mut self.metric_kinds;
        let tenant_metrics = &mut self.tenant_metrics;
        let max_names = self.cfg.max_metric_names_per_tenant;
        let state = entity_mut(&mut self.tenants, &ev.tenant, &ev.entity);
        state.last_seen = state.last_seen.max(ev.ts);
        let reconverging = ev.ts < state.reconverge_until;
        if !reconverging {
            state.reconverge_until = 0;
        }
        for (name, value) in &ev.metrics {
            let Some(id) = metrics.intern(name) else {
                continue;
            };
            if usize::from(id) == kinds.len() {
                kinds.push(self.cfg.kind_for_metric(name));
            }
            let baseline = match state.metrics.iter_mut().find(|(m, _)| *m == id) {
                Some((_, b)) => b,
                None => {
                    // Checked only when a baseline is created, off the steady-state path: one
                    // tenant cannot exhaust the partition's shared name table for the others.
                    let used = tenant_metrics.entry(ev.tenant.clone()).or_default();
                    if !used.contains(&id) {
                        if used.len() >= max_names {
                            continue;
                        }
                        used.insert(id);
                    }
                    state.metrics.push((id, MetricBaseline::new()));
                    &mut state.metrics.last_mut().expect("just pushed").1
                }
            };
            let n = baseline.n();
            let deviation = if reconverging {
                baseline.observe_reconverging(*value, cfg)
            } else {
                baseline.observe(*value, cfg)
            };
            if let Some(dev) = deviation {
                let fid = finding_id(offset, out.findings.len() - first);
                out.findings.push(baseline_finding(
                    fid,
                    ev,
                    name,
                    &kinds[usize::from(id)],
                    n,
                    dev,
                    cfg.severity(dev.sigma),
                ));
            }
        }
        for &attr in tracked_ids {
            let Some(value) = ev.attr(attrs.name(attr)).map(|v| v.to_text()) else {
                continue;
            };
            let warmup = cfg.warmup;
            let slot = match state.tracked.iter_mut().find(|t| t.attr == attr) {
                Some(t) => t,
                None => {
                    state.tracked.push(Tracked {
                        attr,
                        value: value.clone().into_owned(),
                        streak: 0,
                    });
                    state.tracked.last_mut().expect("just pushed")
                }
            };
            if slot.value == value {
                slot.streak = slot.streak.saturating_add(1);
                continue;
            }
            if slot.streak >= warmup {
                let fid = finding_id(offset, out.findings.len() - first);
                out.findings.push(change_finding(
                    fid,
                    ev,
                    attrs.name(attr),
                    &slot.value,
                    &value,
                    slot.streak,
                ));
            }
            slot.value = value.into_owned();
            slot.streak = 1;
        }
        state.watched
    }

    fn correlate(&mut self, offset: u64, ev: &Event, first: usize, out: &mut Outputs) {
        let window = self.cfg.correlation_window_ms;
        let state = entity_mut(&mut self.tenants, &ev.tenant, &ev.entity);
        for i in first..out.findings.len() {
            let f = &out.findings[i];
            match state.incident.as_deref_mut() {
                Some(inc) if inc.accepts(f.ts, window) => inc.add(f),
                _ => {
                    if let Some(old) = state.incident.take() {
                        out.incidents.push(old.close(f.ts));
                    }
                    let id = format!("i-{offset:x}-{}", i - first);
                    state.incident = Some(Box::new(OpenIncident::open(id, f)));
                }
            }
            if let Some(inc) = &state.incident {
                out.findings[i].incident = Some(inc.id().to_owned());
            }
        }
        if state.incident.is_some() {
            self.open
                .insert((ev.tenant.clone(), Box::from(ev.entity.as_str())));
            self.dirty
                .insert((ev.tenant.clone(), Box::from(ev.entity.as_str())));
        }
    }

    /// Emits the latest version of every incident updated since the last flush. Updates are
    /// materialised once per batch, not once per finding: an incident carries up to 1,000
    /// finding ids, and a hot entity can add a finding with every event.
    pub fn flush_incidents(&mut self, out: &mut Outputs) {
        for (tenant, entity) in std::mem::take(&mut self.dirty) {
            let inc = self
                .tenants
                .get(&tenant)
                .and_then(|m| m.get(&entity))
                .and_then(|s| s.incident.as_ref());
            if let Some(inc) = inc {
                out.incidents.push(inc.to_incident());
            }
        }
    }

    /// Advances time: closes incidents quiet for a whole window, expires rule windows.
    pub fn on_tick(&mut self, now: TimestampMs, out: &mut Outputs) {
        // Pending updates go out before any closing, or a stale "open" would follow it.
        self.flush_incidents(out);
        if antibody_core::clock::is_due(now, self.last_sweep, SWEEP_EVERY_MS) {
            self.last_sweep = now;
            self.forget_idle(now);
        }
        self.rules.expire(&mut self.rule_state, now);
        for t in self.tenant_rules.values_mut() {
            t.set.expire(&mut t.state, now);
        }
        let window = self.cfg.correlation_window_ms;
        let mut closed = Vec::new();
        for key in &self.open {
            let Some(state) = self
                .tenants
                .get_mut(&key.0)
                .and_then(|m| m.get_mut(&key.1))
                .map(Arc::make_mut)
            else {
                closed.push(key.clone());
                continue;
            };
            if state
                .incident
                .as_ref()
                .is_some_and(|i| !i.accepts(now, window))
            {
                if let Some(inc) = state.incident.take() {
                    out.incidents.push(inc.close(now));
                }
                closed.push(key.clone());
            }
        }
        for key in closed {
            self.open.remove(&key);
        }
    }

    pub fn entity_view(&self, tenant: &TenantId, entity: &str) -> Option<EntityView> {
        let state = self.tenants.get(tenant)?.get(entity)?;
        let cfg = &self.cfg.baseline;
        let baselines = state
            .metrics
            .iter()
            .map(|(id, b)| {
                (
                    self.metrics.name(*id).to_owned(),
                    BaselineView {
                        mean: b.mean(),
                        std: b.std(),
                        n: b.n(),
                    },
                )
            })
            .collect();
        Some(EntityView {
            entity: entity.to_owned(),
            learning: learning(state, cfg),
            baselines,
            last_seen: state.last_seen,
            open_incident: state.incident.as_ref().map(|i| i.id().to_owned()),
        })
    }

    /// Every entity of `tenant` in this partition, in no particular order.
    pub fn entities<'a>(&'a self, tenant: &TenantId) -> impl Iterator<Item = EntityFacts<'a>> + 'a {
        let cfg = &self.cfg.baseline;
        self.tenants
            .get(tenant)
            .into_iter()
            .flat_map(|m| m.iter())
            .map(move |(name, state)| EntityFacts {
                entity: name,
                learning: learning(state, cfg),
                last_seen: state.last_seen,
                open_incident: state.incident.as_ref().map(|i| i.id()),
            })
    }

    /// The response stage resolved incident `id` of the entity: it takes no more findings
    /// (the entity's next finding opens a new incident) and its last version goes out.
    pub fn seal(
        &mut self,
        tenant: &TenantId,
        entity: &str,
        id: &str,
        now: TimestampMs,
        out: &mut Outputs,
    ) {
        let open = self
            .tenants
            .get(tenant)
            .and_then(|m| m.get(entity))
            .and_then(|s| s.incident.as_ref())
            .is_some_and(|i| i.id() == id);
        if !open {
            return;
        }
        // Updates still pending go out first, or they would follow the sealed version.
        self.flush_incidents(out);
        if let Some(inc) = entity_mut(&mut self.tenants, tenant, entity)
            .incident
            .take()
        {
            out.incidents.push(inc.seal(now));
        }
        self.open.remove(&(tenant.clone(), Box::from(entity)));
    }

    /// Serialises the whole partition (entities in sorted order, so equal states give equal bytes).
    pub fn snapshot(&self) -> Result<Vec<u8>, crate::EngineError> {
        self.image().encode()
    }

    /// The partition's state frozen for a checkpoint, cheap to take: entity states are shared
    /// with the live partition (copy-on-write), the rest is copied. Encoding it (the slow
    /// part) can then run on another thread while this one keeps taking events.
    pub fn image(&self) -> SnapshotImage {
        SnapshotImage {
            metrics: self.metrics.clone(),
            attrs: self.attrs.clone(),
            tenants: self
                .tenants
                .iter()
                .map(|(t, m)| {
                    let es = m.iter().map(|(k, v)| (k.clone(), Arc::clone(v))).collect();
                    (t.clone(), es)
                })
                .collect(),
            open: self.open.iter().cloned().collect(),
            rules: self.rule_state.clone(),
            budgets: self.models.review_budgets(),
            tenant_rules: {
                let mut own: TenantRuleStates = self
                    .tenant_rules
                    .iter()
                    .map(|(t, r)| (t.clone(), r.state.clone()))
                    .collect();
                own.sort_unstable_by(|a, b| a.0.cmp(&b.0));
                own
            },
            web: self
                .web
                .to_section()
                .into_iter()
                .map(|(t, p)| (t.clone(), p.clone()))
                .collect(),
            web_modes: self.web.modes_section(),
            hint: Arc::clone(&self.snapshot_hint),
        }
    }

    /// The bindings of every entity history, sorted (for tests).
    #[cfg(test)]
    pub(crate) fn history_bindings(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .tenants
            .values()
            .flat_map(|m| m.values())
            .flat_map(|s| s.history.iter().map(|h| h.binding().to_owned()))
            .collect();
        ids.sort();
        ids
    }

    /// Rebuilds a partition from [`Partition::snapshot`] bytes. Windows of a tenant's own
    /// rules are kept only when `rules` still gives that tenant a set of its own.
    pub fn restore(
        cfg: Arc<EngineConfig>,
        rules: impl Into<RuleBook>,
        bytes: &[u8],
    ) -> Result<Self, crate::EngineError> {
        let bad = |e: postcard::Error| crate::EngineError::Snapshot(e.to_string());
        let (snap, rest): (SnapshotV1, &[u8]) = postcard::take_from_bytes(bytes).map_err(bad)?;
        let (histories, rest): (OwnedHistories, &[u8]) = if rest.is_empty() {
            (Vec::new(), rest)
        } else {
            postcard::take_from_bytes(rest).map_err(bad)?
        };
        let (budgets, rest): (ReviewBudgets, &[u8]) = if rest.is_empty() {
            (Vec::new(), rest)
        } else {
            postcard::take_from_bytes(rest).map_err(bad)?
        };
        let (reconverging, rest): (OwnedReconverging, &[u8]) = if rest.is_empty() {
            (Vec::new(), rest)
        } else {
            postcard::take_from_bytes(rest).map_err(bad)?
        };
        let (own, rest): (TenantRuleStates, &[u8]) = if rest.is_empty() {
            (Vec::new(), rest)
        } else {
            postcard::take_from_bytes(rest).map_err(bad)?
        };
        let (web, rest): (WebSection, &[u8]) = if rest.is_empty() {
            (Vec::new(), rest)
        } else {
            postcard::take_from_bytes(rest).map_err(bad)?
        };
        let web_modes: WebModes = if rest.is_empty() {
            Vec::new()
        } else {
            postcard::from_bytes(rest).map_err(bad)?
        };
        let mut p = Self::new(cfg, rules);
        for (t, state) in own {
            if let Some(r) = p.tenant_rules.get_mut(&t) {
                r.state = state;
            }
        }
        p.models.restore_review_budgets(budgets);
        p.web = WebProfiles::from_sections(web, web_modes);
        p.metrics = snap.metrics;
        p.metrics.rebuild();
        p.attrs = snap.attrs;
        p.attrs.rebuild();
        p.rule_state = snap.rules;
        p.tenants = snap
            .tenants
            .into_iter()
            .map(|(t, es)| {
                (
                    t,
                    es.into_iter()
                        .map(|(k, v)| (Box::from(k.as_str()), Arc::new(v)))
                        .collect(),
                )
            })
            .collect();
        p.open = snap
            .open
            .into_iter()
            .map(|(t, e)| (t, Box::from(e.as_str())))
            .collect();
        for (t, e, h) in histories {
            if let Some(state) = p.tenants.get_mut(&t).and_then(|m| m.get_mut(e.as_str())) {
                Arc::make_mut(state).history = h;
            }
        }
        for (t, e, until) in reconverging {
            p.reconverge(&t, &e, until);
        }
        p.index_config();
        Ok(p)
    }
}

/// The entity has metrics and none of their baselines is warm yet.
fn learning(state: &EntityState, cfg: &crate::baseline::BaselineConfig) -> bool {
    !state.metrics.is_empty() && !state.metrics.iter().any(|(_, b)| b.is_warm(cfg))
}

fn entity_mut<'a>(
    tenants: &'a mut HashMap<TenantId, HashMap<Box<str>, Arc<EntityState>>>,
    tenant: &TenantId,
    entity: &str,
) -> &'a mut EntityState {
    // Look up before inserting so the hot path (a known entity) allocates nothing.
    if !tenants.contains_key(tenant) {
        tenants.insert(tenant.clone(), HashMap::default());
    }
    let map = tenants.get_mut(tenant).expect("inserted above");
    if !map.contains_key(entity) {
        map.insert(Box::from(entity), Arc::default());
    }
    Arc::make_mut(map.get_mut(entity).expect("inserted above"))
}

fn finding_id(offset: u64, index: usize) -> String {
    format!("f-{offset:x}-{index}")
}

fn finding(
    id: String,
    ev: &Event,
    kind: &str,
    detector: Detector,
    sev: Severity,
    score: f64,
) -> Finding {
    Finding {
        id,
        tenant: ev.tenant.clone(),
        ts: ev.ts,
        entity: ev.entity.clone(),
        kind: kind.to_owned(),
        detector,
        severity: sev,
        score,
        explanation: Explanation::default(),
        evidence: Map::new(),
        incident: None,
    }
}

fn baseline_finding(
    id: String,
    ev: &Event,
    metric: &str,
    kind: &str,
    n: u32,
    dev: crate::baseline::Deviation,
    sev: Severity,
) -> Finding {
    let mut f = finding(id, ev, kind, Detector::Baseline, sev, score(dev.sigma));
    let dir = if dev.value >= dev.mean {
        "above"
    } else {
        "below"
    };
    let which = if dev.against_anchor {
        "long-term baseline"
    } else {
        "baseline"
    };
    f.explanation = Explanation::text(format!(
        "{metric} = {} is {:.1}σ {dir} this entity's {which} (mean {}, std {}, {n} samples)",
        fmt_num(dev.value),
        dev.sigma,
        fmt_num(dev.mean),
        fmt_num(dev.std)
    ));
    f.explanation.contributions.insert(metric.to_owned(), 1.0);
    let e = &mut f.evidence;
    e.insert("metric".into(), json!(metric));
    e.insert("value".into(), json!(dev.value));
    e.insert("mean".into(), json!(round4(dev.mean)));
    e.insert("std".into(), json!(round4(dev.std)));
    e.insert("sigma".into(), json!(round4(dev.sigma)));
    e.insert(
        "baseline".into(),
        json!(if dev.against_anchor {
            "anchor"
        } else {
            "recent"
        }),
    );
    e.insert("n".into(), json!(n));
    f
}

fn change_finding(
    id: String,
    ev: &Event,
    attr: &str,
    old: &str,
    new: &str,
    streak: u32,
) -> Finding {
    let kind = crate::kinds::change_kind(attr);
    let mut f = finding(id, ev, &kind, Detector::Baseline, Severity::Medium, 0.5);
    f.explanation = Explanation::text(format!(
        "{attr} changed from `{old}` to `{new}` after {streak} events with the same value"
    ));
    let e = &mut f.evidence;
    e.insert("attr".into(), json!(attr));
    e.insert("previous".into(), json!(old));
    e.insert("value".into(), json!(new));
    e.insert("streak".into(), json!(streak));
    f
}

fn rule_finding(id: String, ev: &Event, hit: &RuleHit) -> Finding {
    let mut f = finding(
        id,
        ev,
        &hit.kind,
        Detector::Rule(hit.rule_id.to_string()),
        hit.severity,
        hit.score,
    );
    f.explanation = Explanation::text(hit.explanation.clone());
    f.evidence = hit.evidence.clone();
    f.evidence
        .insert("rule".into(), Value::String(hit.rule_id.to_string()));
    // Who did it: response playbooks act on these (block the source address, …).
    for attr in CONTEXT_ATTRS {
        if let Some(v) = ev.attr(attr) {
            f.evidence
                .entry(attr.to_string())
                .or_insert_with(|| json!(v.to_text()));
        }
    }
    f
}

/// Event attributes copied into every rule finding's evidence.
const CONTEXT_ATTRS: [&str; 3] = ["src_ip", "user", "dst_ip"];

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

fn fmt_num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use antibody_core::AttrValue;

    fn rules() -> Arc<RuleSet> {
        static RULES: std::sync::OnceLock<Arc<RuleSet>> = std::sync::OnceLock::new();
        RULES
            .get_or_init(|| Arc::new(RuleSet::default_pack()))
            .clone()
    }

    fn restore(bytes: &[u8]) -> Result<Partition, crate::EngineError> {
        Partition::restore(Arc::new(EngineConfig::default()), rules(), bytes)
    }

    fn part() -> Partition {
        Partition::new(Arc::new(EngineConfig::default()), rules())
    }

    fn vitals(entity: &str, ts: i64, tokens: f64, prompt: &str) -> Event {
        Event {
            tenant: TenantId::new("t1"),
            ts,
            entity: entity.into(),
            kind: "vitals".into(),
            metrics: vec![("tokens".into(), tokens), ("latency_ms".into(), 800.0)],
            attrs: vec![("prompt_hash".into(), AttrValue::Str(prompt.into()))],
            id: None,
        }
    }

    fn auth_failure(ts: i64, ip: &str) -> Event {
        Event {
            tenant: TenantId::new("t1"),
            ts,
            entity: "host:ssh-1".into(),
            kind: "auth".into(),
            metrics: vec![],
            attrs: vec![
                ("src_ip".into(), AttrValue::Str(ip.into())),
                ("outcome".into(), AttrValue::Str("failure".into())),
                ("service".into(), AttrValue::Str("ssh".into())),
            ],
            id: None,
        }
    }

    /// A small mixed history: an agent that learns, spikes and changes prompt; an SSH brute force.
    fn history() -> Vec<Event> {
        let mut evs = Vec::new();
        for i in 0..30 {
            evs.push(vitals(
                "agent:a",
                i * 1000,
                1000.0 + (i % 3) as f64 * 10.0,
                "p1",
            ));
        }
        evs.push(vitals("agent:a", 30_000, 90_000.0, "p1"));
        evs.push(vitals("agent:a", 31_000, 1010.0, "p2"));
        for i in 0..15 {
            evs.push(auth_failure(40_000 + i * 500, "198.51.100.7"));
        }
        evs
    }

    fn run(p: &mut Partition, evs: &[Event], from: u64) -> Outputs {
        let mut out = Outputs::default();
        for (i, ev) in evs.iter().enumerate() {
            p.on_event(from + i as u64, ev, &mut out);
        }
        p.flush_incidents(&mut out);
        out
    }

    fn kinds(out: &Outputs) -> Vec<String> {
        out.findings.iter().map(|f| f.kind.clone()).collect()
    }

    #[test]
    fn detects_spike_prompt_change_and_brute_force_in_one_incident_per_entity() {
        let mut p = part();
        let out = run(&mut p, &history(), 0);
        assert_eq!(
            kinds(&out),
            vec!["token_spike", "prompt_change", "brute_force"]
        );
        let spike = &out.findings[0];
        assert_eq!(spike.id, "f-1e-0");
        assert_eq!(spike.evidence["metric"], "tokens");
        assert!(
            spike.explanation.text.contains("tokens = 90000"),
            "{}",
            spike.explanation.text
        );
        // The spike and the prompt change share the agent's incident; the brute force has its own.
        assert_eq!(out.findings[0].incident, out.findings[1].incident);
        assert_ne!(out.findings[0].incident, out.findings[2].incident);
        assert_eq!(out.incidents.len(), 2);
        let agent = p.entity_view(&TenantId::new("t1"), "agent:a").unwrap();
        assert!(agent.open_incident.is_some());
        assert_eq!(
            agent.baselines["tokens"].n,
            30 + 1,
            "the spike itself is not learned"
        );
    }

    #[test]
    fn same_input_same_output() {
        let a = run(&mut part(), &history(), 0);
        let b = run(&mut part(), &history(), 0);
        let json = |o: &Outputs| serde_json::to_string(&(&o.findings, &o.incidents)).unwrap();
        assert_eq!(json(&a), json(&b));
    }

    #[test]
    fn snapshot_restore_then_tail_equals_uninterrupted_run() {
        let evs = history();
        let (head, tail) = evs.split_at(20);
        let mut whole = part();
        let mut expected = run(&mut whole, head, 0);
        expected.clear();
        let expected = run(&mut whole, tail, 20);

        let mut first = part();
        run(&mut first, head, 0);
        let bytes = first.snapshot().unwrap();
        let mut restored = restore(&bytes).unwrap();
        assert_eq!(restored.snapshot().unwrap(), bytes, "restore is lossless");
        let got = run(&mut restored, tail, 20);
        let json = |o: &Outputs| serde_json::to_string(&(&o.findings, &o.incidents)).unwrap();
        assert_eq!(json(&got), json(&expected));
    }

    #[test]
    fn an_image_keeps_the_state_it_was_taken_at_while_the_partition_moves_on() {
        let evs = history();
        let (head, tail) = evs.split_at(20);
        let failures: Vec<Event> = (0..6)
            .map(|i| auth_failure(i * 100, "203.0.113.7"))
            .collect();
        let mut p = part();
        run(&mut p, head, 0);
        run(&mut p, &failures[..3], 100);
        let at_image = p.snapshot().unwrap();
        let image = p.image();
        run(&mut p, tail, 200);
        // The same address's rule window changes too.
        run(&mut p, &failures[3..], 300);
        assert_eq!(
            image.encode().unwrap(),
            at_image,
            "copy-on-write kept the image"
        );
        assert_ne!(
            p.snapshot().unwrap(),
            at_image,
            "the partition itself moved on"
        );
    }

    #[test]
    fn snapshot_mid_window_keeps_threshold_state() {
        let evs: Vec<Event> = (0..12)
            .map(|i| auth_failure(i * 100, "203.0.113.1"))
            .collect();
        let mut p = part();
        run(&mut p, &evs[..6], 0);
        let mut r = restore(&p.snapshot().unwrap()).unwrap();
        let out = run(&mut r, &evs[6..], 6);
        assert_eq!(
            kinds(&out),
            vec!["brute_force"],
            "the window survived the snapshot"
        );
    }

    /// Tenant `t2` counts failed logins to 3 with a rule of its own; `t1` keeps the pack's 10.
    fn book_with_own_rules_for_t2() -> RuleBook {
        let own = antibody_rules::RuleSource::new(
            "tenant/strict.yml",
            "- id: auth-brute-force\n  kind: brute_force\n  severity: high\n  events: {kinds: [auth], where: {outcome: failure}}\n  threshold: {group_by: src_ip, count: 3, window: 2m}\n",
        );
        let set = RuleSet::compile_layered(&antibody_rules::default_pack_sources(), &[own])
            .unwrap_or_else(|e| panic!("{e}"));
        let mut book = RuleBook::from(rules());
        book.set_tenant(TenantId::new("t2"), Some(Arc::new(set)));
        book
    }

    fn failures_of(tenant: &str, n: i64, ip: &str) -> Vec<Event> {
        (0..n)
            .map(|i| Event {
                tenant: TenantId::new(tenant),
                ..auth_failure(i * 100, ip)
            })
            .collect()
    }

    #[test]
    fn a_tenants_own_rules_apply_to_its_events_only_and_survive_a_snapshot() {
        let cfg = Arc::new(EngineConfig::default());
        let mut p = Partition::new(cfg.clone(), book_with_own_rules_for_t2());
        let out = run(&mut p, &failures_of("t1", 5, "203.0.113.1"), 0);
        assert!(out.findings.is_empty(), "t1 still needs 10");
        let out = run(&mut p, &failures_of("t2", 3, "203.0.113.1"), 10);
        assert_eq!(kinds(&out), vec!["brute_force"]);

        // Mid-window for t2: its own windows are the snapshot's fourth section.
        let mut q = Partition::new(cfg.clone(), book_with_own_rules_for_t2());
        run(&mut q, &failures_of("t2", 2, "198.51.100.9"), 0);
        let bytes = q.snapshot().unwrap();
        let mut r = Partition::restore(cfg.clone(), book_with_own_rules_for_t2(), &bytes).unwrap();
        assert_eq!(r.snapshot().unwrap(), bytes, "restore is lossless");
        let out = run(&mut r, &failures_of("t2", 1, "198.51.100.9"), 2);
        assert_eq!(kinds(&out), vec!["brute_force"], "the window survived");

        // Without its own set any more, t2 is back on the global rules.
        r.set_rules(RuleBook::from(rules()));
        let out = run(&mut r, &failures_of("t2", 3, "192.0.2.1"), 3);
        assert!(out.findings.is_empty());
        assert_eq!(
            restore(&r.snapshot().unwrap()).unwrap().tenant_rules.len(),
            0
        );
    }

    /// The state behind `tests/fixtures/partition-v5.snap`: entities with baselines and an
    /// open incident, global and tenant rule windows mid-count, a re-converging entity.
    fn v5_state() -> Partition {
        let cfg = Arc::new(EngineConfig::default());
        let mut p = Partition::new(cfg, book_with_own_rules_for_t2());
        run(&mut p, &history()[..32], 0);
        run(&mut p, &failures_of("t1", 4, "203.0.113.1"), 40);
        run(&mut p, &failures_of("t2", 2, "198.51.100.9"), 50);
        p.reconverge(&TenantId::new("t1"), "agent:a", 900_000);
        p
    }

    /// Writes the fixture (run once, with the code that wrote five sections).
    #[test]
    #[ignore]
    fn write_v5_fixture() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/partition-v5.snap"
        );
        std::fs::write(path, v5_state().snapshot().unwrap()).unwrap();
    }

    /// A snapshot written before web profiles (five sections) still restores, to the same
    /// state: re-encoding gives the same bytes, and the tenant's rule window carries on.
    #[test]
    fn a_five_section_snapshot_restores_without_profiles() {
        let bytes = include_bytes!("../tests/fixtures/partition-v5.snap");
        let cfg = Arc::new(EngineConfig::default());
        let mut r = Partition::restore(cfg, book_with_own_rules_for_t2(), bytes).unwrap();
        assert!(r.web.is_empty());
        assert_eq!(r.snapshot().unwrap(), bytes.to_vec(), "restore is lossless");
        assert_eq!(r.snapshot().unwrap(), v5_state().snapshot().unwrap());
        let out = run(&mut r, &failures_of("t2", 1, "198.51.100.9"), 60);
        assert_eq!(kinds(&out), vec!["brute_force"], "the window survived");
    }

    fn request(ts: i64, query: &str) -> Event {
        let attrs = [
            ("method", "GET"),
            ("path", "/shop/item.jsp"),
            ("query", query),
            ("host", "shop.example"),
            ("src_ip", "198.51.100.4"),
        ];
        Event {
            tenant: TenantId::new("t1"),
            ts,
            entity: "ip:198.51.100.4".into(),
            kind: "http".into(),
            metrics: vec![],
            attrs: attrs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), AttrValue::Str((*v).to_owned())))
                .collect(),
            id: None,
        }
    }

    fn normal_requests(n: i64) -> Vec<Event> {
        (0..n)
            .map(|i| request(i * 10, &format!("id={}&q=red+wine", i % 9 + 1)))
            .collect()
    }

    /// Profiles learn in the partition, survive a snapshot (the sixth section), and a
    /// request both the rules and the profile flag is one incident with both findings.
    #[test]
    fn web_profiles_judge_after_learning_and_survive_a_snapshot() {
        let mut p = part();
        let learn = p.cfg.web_profiles.learn_requests as i64;
        assert!(run(&mut p, &normal_requests(learn), 0).findings.is_empty());
        let bytes = p.snapshot().unwrap();
        let mut r = restore(&bytes).unwrap();
        assert_eq!(r.snapshot().unwrap(), bytes, "restore is lossless");
        let attack = request(
            1_000_000,
            "id=1%27+union+select+password+from+users--&q=red",
        );
        let out = run(&mut r, std::slice::from_ref(&attack), 10_000);
        let got: Vec<(String, String)> = out
            .findings
            .iter()
            .map(|f| (f.kind.clone(), f.detector.to_string()))
            .collect();
        assert_eq!(
            got,
            [
                ("sqli".to_owned(), "rule:sqli".to_owned()),
                ("web_anomaly".to_owned(), "profile".to_owned())
            ]
        );
        assert_eq!(out.findings[0].incident, out.findings[1].incident);
        assert_eq!(out.incidents.len(), 1);
        // Same input, same output, and the uninterrupted partition agrees.
        let whole = run(&mut p, &[attack], 10_000);
        let json = |o: &Outputs| serde_json::to_string(&(&o.findings, &o.incidents)).unwrap();
        assert_eq!(json(&whole), json(&out));
        // A false positive is learned.
        let t = TenantId::new("t1");
        assert!(r.learn_web_finding(&t, &out.findings[1].evidence));
        assert_eq!(r.web_profiles(&t).unwrap().template_count(), 1);
        assert_eq!(r.reset_web_profiles(&t, None, None, None).len(), 1);
        assert!(r.web_profiles(&t).is_none());
    }

    /// A tenant's own mode: `learn_only` learns without findings, `off` learns nothing,
    /// another tenant keeps the configured mode, and the mode survives a snapshot (the
    /// seventh section).
    #[test]
    fn a_tenants_web_mode_applies_to_it_alone_and_survives_a_snapshot() {
        use webprof::Mode;
        let mut p = part();
        let (t1, t2) = (TenantId::new("t1"), TenantId::new("t2"));
        let learn = p.cfg.web_profiles.learn_requests as i64;
        let of = |t: &str, evs: Vec<Event>| -> Vec<Event> {
            evs.into_iter()
                .map(|mut e| {
                    e.tenant = TenantId::new(t);
                    e
                })
                .collect()
        };
        run(&mut p, &normal_requests(learn), 0);
        run(&mut p, &of("t2", normal_requests(learn)), 0);
        p.set_web_mode(&t1, Mode::LearnOnly);
        let bytes = p.snapshot().unwrap();
        let mut r = restore(&bytes).unwrap();
        assert_eq!(
            (r.web_mode(&t1), r.web_mode(&t2)),
            (Mode::LearnOnly, Mode::On)
        );
        let attack = request(1_000_000, "id=<b>x</b>&q=red");
        let anomalies = |o: &Outputs| {
            o.findings
                .iter()
                .filter(|f| f.kind == "web_anomaly")
                .count()
        };
        let out = run(&mut r, std::slice::from_ref(&attack), 10_000);
        assert_eq!(anomalies(&out), 0, "learn_only reports nothing");
        let learned = |p: &Partition, t: &TenantId| {
            let tp = p.web_profiles(t).unwrap();
            tp.hosts
                .values()
                .flat_map(|h| h.templates.values())
                .map(|t| t.requests)
                .sum::<u64>()
        };
        assert_eq!(learned(&r, &t1), learn as u64 + 1, "and learns the request");
        let out = run(&mut r, &of("t2", vec![attack.clone()]), 10_000);
        assert_eq!(anomalies(&out), 1, "t2 is still on");
        r.set_web_mode(&t2, Mode::Off);
        run(&mut r, &of("t2", normal_requests(5)), 20_000);
        assert_eq!(learned(&r, &t2), learn as u64, "off learns nothing");
        let again = restore(&r.snapshot().unwrap()).unwrap();
        assert_eq!(
            (again.web_mode(&t1), again.web_mode(&t2)),
            (Mode::LearnOnly, Mode::Off)
        );
    }

    #[test]
    fn quiet_incidents_close_on_tick_as_quiet_resolutions() {
        let mut p = part();
        run(&mut p, &history()[..32], 0);
        let t = TenantId::new("t1");
        let mut out = Outputs::default();
        p.on_tick(31_000 + 299_000, &mut out);
        assert!(out.incidents.is_empty(), "still within the window");
        p.on_tick(31_000 + 300_001, &mut out);
        assert_eq!(out.incidents.len(), 1);
        assert_eq!(
            out.incidents[0].status,
            antibody_core::IncidentStatus::Resolved
        );
        assert_eq!(
            out.incidents[0].workflow.resolution,
            Some(antibody_core::Resolution::Quiet)
        );
        assert_eq!(p.entity_view(&t, "agent:a").unwrap().open_incident, None);
    }

    #[test]
    fn a_sealed_incident_takes_no_more_findings() {
        let mut p = part();
        let t = TenantId::new("t1");
        let out = run(&mut p, &history()[..31], 0);
        let id = out.incidents[0].id.clone();
        let mut out = Outputs::default();
        p.seal(&t, "agent:a", "i-other", 40_000, &mut out);
        assert!(
            out.incidents.is_empty(),
            "only the named incident is sealed"
        );
        p.seal(&t, "agent:a", &id, 40_000, &mut out);
        assert_eq!(out.incidents.len(), 1);
        assert_eq!(out.incidents[0].id, id);
        assert_eq!(
            out.incidents[0].status,
            antibody_core::IncidentStatus::Resolved
        );
        assert_eq!(p.entity_view(&t, "agent:a").unwrap().open_incident, None);
        // The next anomaly, well within the old window, opens a new incident.
        let out = run(&mut p, &[vitals("agent:a", 41_000, 90_000.0, "p1")], 100);
        let next = out.findings[0].incident.clone().unwrap();
        assert_ne!(next, id);
        let mut ticked = Outputs::default();
        p.on_tick(41_500, &mut ticked);
        assert!(
            ticked.incidents.is_empty(),
            "the sealed one never closes again"
        );
    }

    #[test]
    fn entities_lists_a_tenants_facts() {
        let mut p = part();
        run(&mut p, &history()[..31], 0);
        run(&mut p, &[vitals("agent:new", 0, 5.0, "p")], 40);
        let mut facts: Vec<EntityFacts<'_>> = p.entities(&TenantId::new("t1")).collect();
        facts.sort_by_key(|f| f.entity);
        let names: Vec<&str> = facts.iter().map(|f| f.entity).collect();
        assert_eq!(names, vec!["agent:a", "agent:new"]);
        assert!(!facts[0].learning && facts[0].open_incident.is_some());
        assert!(facts[1].learning && facts[1].open_incident.is_none());
        assert_eq!(p.entities(&TenantId::new("other")).count(), 0);
    }

    #[test]
    fn new_entity_is_initializing_until_warm() {
        let mut p = part();
        run(&mut p, &[vitals("agent:new", 0, 5.0, "p")], 0);
        let v = p.entity_view(&TenantId::new("t1"), "agent:new").unwrap();
        assert!(v.learning);
        assert!(
            p.entity_view(&TenantId::new("other"), "agent:new")
                .is_none(),
            "tenants are isolated"
        );
    }

    #[test]
    fn corrupt_snapshot_is_an_error_not_a_panic() {
        let bytes = part().snapshot().unwrap();
        for cut in 0..bytes.len() {
            let _ = restore(&bytes[..cut]);
        }
        assert!(restore(&[0xff; 7]).is_err());
    }

    proptest::proptest! {
        /// Whatever follows the entities (the history section, or garbage) restores or
        /// errors, never panics.
        #[test]
        fn any_bytes_after_the_entities_never_panic(tail in proptest::collection::vec(0u8..=255, 0..64)) {
            let mut p = part();
            run(&mut p, &history()[..30], 0);
            let mut bytes = p.snapshot().unwrap();
            bytes.extend_from_slice(&tail);
            let _ = restore(&bytes);
        }
    }

    /// `n` events of agent:a from `ts` on, one a second, tokens ±1 % around `level`.
    fn level(level: f64, ts: i64, n: i64) -> Vec<Event> {
        (0..n)
            .map(|i| {
                vitals(
                    "agent:a",
                    ts + i * 1000,
                    level + (i % 3) as f64 * 10.0,
                    "p1",
                )
            })
            .collect()
    }

    fn token_findings(out: &Outputs) -> usize {
        out.findings
            .iter()
            .filter(|f| f.kind == "token_spike")
            .count()
    }

    /// A healed entity settles at +50 %: re-converging, it stops being reported within a few
    /// samples (here: none), where the steady rule reports `relearn_after` samples in a row;
    /// the window survives a snapshot and ends at its engine time; an attack is still seen.
    #[test]
    fn a_healed_entity_reconverges_to_a_new_level() {
        let t = TenantId::new("t1");
        let cfg = EngineConfig::default();
        let relearn = cfg.baseline.relearn_after as usize;
        let mut steady = part();
        run(&mut steady, &level(1000.0, 0, 30), 0);
        let out = run(&mut steady, &level(1500.0, 30_000, 80), 30);
        assert_eq!(token_findings(&out), relearn);

        let mut healed = part();
        run(&mut healed, &level(1000.0, 0, 30), 0);
        healed.reconverge(&t, "agent:a", 30_000 + 600_000);
        let bytes = healed.snapshot().unwrap();
        let mut healed = restore(&bytes).unwrap();
        assert_eq!(healed.snapshot().unwrap(), bytes, "restore is lossless");
        let out = run(&mut healed, &level(1500.0, 30_000, 80), 30);
        assert_eq!(token_findings(&out), 0, "{:?}", kinds(&out));
        let attack = run(&mut healed, &level(90_000.0, 110_000, 1), 110);
        assert_eq!(token_findings(&attack), 1, "an attack is still reported");
        // Past the window the steady rule is back, and the new level holds under it.
        let later = run(&mut healed, &level(1500.0, 700_000, 60), 111);
        assert_eq!(token_findings(&later), 0);
        assert_eq!(healed.image().tenants[0].1[0].1.reconverge_until, 0);
    }

    #[test]
    fn reconverging_an_unknown_entity_creates_nothing() {
        let mut p = part();
        p.reconverge(&TenantId::new("t1"), "agent:ghost", 10);
        assert_eq!(p.entity_count(), 0);
    }

    #[test]
    fn watched_entities_yield_samples() {
        let mut p = part();
        let t = TenantId::new("t1");
        run(&mut p, &history()[..30], 0);
        let out = run(&mut p, &[vitals("agent:a", 30_000, 1000.0, "p1")], 30);
        assert!(out.samples.is_empty(), "not watched yet");
        p.watch(&t, "agent:a", true);
        let mut costly = vitals("agent:a", 32_500, 1005.0, "p1");
        costly.metrics.push(("cost_usd".into(), 0.25));
        let out = run(
            &mut p,
            &[
                vitals("agent:a", 31_000, 1010.0, "p1"),
                vitals("agent:a", 32_000, 90_000.0, "p1"),
                costly,
            ],
            31,
        );
        let within: Vec<bool> = out.samples.iter().map(|s| s.within_baseline).collect();
        assert_eq!(within, vec![true, false, true]);
        let seen: Vec<(u64, Option<f64>)> =
            out.samples.iter().map(|s| (s.offset, s.cost_usd)).collect();
        assert_eq!(seen, [(31, None), (32, None), (33, Some(0.25))]);
        p.watch(&t, "agent:a", false);
        assert!(run(&mut p, &[vitals("agent:a", 33_000, 1000.0, "p1")], 34)
            .samples
            .is_empty());
    }

    #[test]
    fn entities_are_capped_per_tenant_and_idle_ones_forgotten() {
        let cfg = EngineConfig {
            max_entities_per_tenant: 2,
            entity_idle_ms: 1_000,
            ..EngineConfig::default()
        };
        let mut p = Partition::new(Arc::new(cfg), rules());
        let t = TenantId::new("t1");
        run(
            &mut p,
            &[
                vitals("agent:1", 0, 1.0, "p"),
                vitals("agent:2", 0, 1.0, "p"),
                vitals("agent:3", 0, 1.0, "p"),
            ],
            0,
        );
        assert_eq!(p.entity_count(), 2);
        assert_eq!(p.entities_refused(), 1);
        assert!(p.entity_view(&t, "agent:3").is_none());
        let mut other = vitals("agent:3", 0, 1.0, "p");
        other.tenant = TenantId::new("t2");
        run(&mut p, &[other], 3);
        assert_eq!(p.entity_count(), 3, "the cap is per tenant");
        run(&mut p, &[vitals("agent:1", 120_000, 1.0, "p")], 4);
        p.on_tick(120_500, &mut Outputs::default());
        assert!(
            p.entity_view(&t, "agent:2").is_none(),
            "idle entity forgotten"
        );
        assert!(p.entity_view(&t, "agent:1").is_some());
    }

    #[test]
    fn idle_entities_are_still_forgotten_after_the_clock_steps_back() {
        let cfg = EngineConfig {
            entity_idle_ms: 1_000,
            ..EngineConfig::default()
        };
        let mut p = Partition::new(Arc::new(cfg), rules());
        let t = TenantId::new("t1");
        let real = 1_800_000_000_000;
        // The host clock ran a year ahead for a while (a bad RTC, then NTP stepped it back).
        p.on_tick(real + 365 * 86_400_000, &mut Outputs::default());
        run(&mut p, &[vitals("agent:1", real, 1.0, "p")], 0);
        p.on_tick(real + 120_000, &mut Outputs::default());
        assert!(
            p.entity_view(&t, "agent:1").is_none(),
            "the sweep runs on the stepped-back clock, not a year later"
        );
    }
}
