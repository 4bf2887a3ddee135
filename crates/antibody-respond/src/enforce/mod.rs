//! The enforcement view: every in-product effect of the responder's applied actions, per
//! tenant, shaped for the enforcement points that ask "what do I do with this entity now?"
//! (`GET /v1/entities/{entity}/verdict`, `GET /v1/blocklist`, the gateway's request path).
//!
//! The [`Responder`] stays the one owner of the state. This module turns it into a
//! [`TenantView`] ([`TenantView::build`], [`TenantView::update`] for what a batch of
//! decisions changed), which the response stage publishes into an [`Enforcement`] after
//! every apply that changed enforcement. Readers never lock and never ask the response
//! thread: [`Enforcement::verdict`] loads the published views (one atomic pointer), hashes
//! the entity once and reads its shard's tags and positions (which stay in L2) and, if a tag
//! matches, one bucket line holding the key, the verdict's kind and how long it stays true
//! ([`table`]);
//! the entity's entries and full verdict are read only when the answer's details are
//! ([`Answer`] derefs to [`Verdict`]). A change rebuilds one tenant's view, and in it only
//! the shard of the entities it touched.
//!
//! ## Effects
//! | source | effect | verdict |
//! |---|---|---|
//! | `block_ip` (an address or a CIDR block) | on the blocklist | `block` for addresses in it |
//! | `quarantine`, `isolate`; an entity `draining` or `quarantined` | contained | `quarantine` |
//! | `rate_limit` (`rate` per `per`) | throttled | `throttle`, with `rate` |
//! | `revoke_tools` (`tools`; none named: `*`, every tool) | listed in `revoked_tools` | unchanged |
//! | `budget_cap` (`usd` per `period`) | `budget` | `throttle`, `block` once spent |
//!
//! Only `succeeded` actions count, each until its TTL (counted from its result); a contained
//! lifecycle state holds until the entity is released. Dry runs never succeed, so never count.
//! Entities that name an address (`ip:1.2.3.4`, `1.2.3.4`) share one entry with the blocks
//! of that address, and CIDR blocks cover every address inside them.
//!
//! ## Reading
//! Every lookup compares each entry's `until` with `now`, so an expired entry reads as absent
//! before the next publish. The strongest verdict wins (`quarantine`, then `block`,
//! `throttle`, `allow`), among equals the one that lasts longest (a lifecycle hold longest of
//! all); it gives `until` and `incident` (for `allow` with revoked tools only: the revocation
//! that lasts longest). `rate` is the tightest throttle in force, `revoked_tools` the sorted
//! union, `budget` the cap with the least left.
//!
//! ## Budgets
//! A `budget_cap` counts the `cost_usd` metric of its entity's events from the moment it
//! applied (the response stage asks the engine to sample capped entities, as it does for
//! probation). Spend is summed per window of `period` starting at that moment (no `period`:
//! one window, the cap's lifetime); each window starts from zero. While `spent_usd <
//! limit_usd` the verdict is at least `throttle`, with the budget; once `spent_usd ≥
//! limit_usd` it is `block` until the window ends (or the TTL, if sooner). An event is placed
//! by its own `ts`: one from before the cap, after its TTL or in a window already closed is
//! not counted. Each event counts once: a cap remembers the log offset it counted through,
//! so the replay after a crash adds nothing twice.

use crate::action::{Action, ActionKind, EffectPoint, ParamValue};
use crate::cidr::{target_ip, Cidr};
use crate::decision::Decision;
use crate::Responder;
use antibody_core::{TenantId, TimestampMs};
use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, OnceLock};
use table::{Facts, Table};

mod table;

/// Keys hash with foldhash: fast on short keys and seeded per process, so senders cannot
/// precompute colliding entity names.
type Hasher = foldhash::fast::RandomState;
type Map<K, V> = HashMap<K, V, Hasher>;

/// Shards per tenant view: a change copies one shard's map, not the tenant's.
const SHARDS: usize = 64;

/// What an enforcement point should do with an entity, weakest first.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum VerdictKind {
    Allow,
    Throttle,
    Block,
    Quarantine,
}

/// The time unit of a rate or a budget window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    Second,
    Minute,
    Hour,
    Day,
}

impl Period {
    /// The parameter words (`per`, `period`), in the order of [`Period::ALL`].
    pub const NAMES: &'static [&'static str] = &["second", "minute", "hour", "day"];
    pub const ALL: [Period; 4] = [Self::Second, Self::Minute, Self::Hour, Self::Day];

    pub fn parse(s: &str) -> Option<Self> {
        Self::NAMES
            .iter()
            .position(|n| *n == s)
            .map(|i| Self::ALL[i])
    }

    pub fn ms(self) -> i64 {
        match self {
            Self::Second => 1_000,
            Self::Minute => 60_000,
            Self::Hour => 3_600_000,
            Self::Day => 86_400_000,
        }
    }
}

/// A throttle's allowance: `rate` requests per `per`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Rate {
    pub rate: f64,
    pub per: Period,
}

/// A budget cap as it stands now.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Budget {
    pub limit_usd: f64,
    pub spent_usd: f64,
    pub remaining_usd: f64,
}

/// The answer for one entity: `{"verdict", "until", "incident", "rate", "revoked_tools",
/// "budget"}` (`until` in ms here; the API writes it as RFC 3339).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Verdict {
    pub verdict: VerdictKind,
    /// When the strongest effect lapses; `None` when nothing is in force or it holds until
    /// the entity is released.
    pub until: Option<TimestampMs>,
    /// The incident whose action put the strongest effect in force.
    pub incident: Option<Arc<str>>,
    pub rate: Option<Rate>,
    pub revoked_tools: Vec<Arc<str>>,
    pub budget: Option<Budget>,
}

impl Verdict {
    pub fn allow() -> Self {
        Self {
            verdict: VerdictKind::Allow,
            until: None,
            incident: None,
            rate: None,
            revoked_tools: Vec::new(),
            budget: None,
        }
    }
}

/// One line of the blocklist: an address or CIDR block, the block that lasts longest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BlockEntry {
    /// `1.2.3.4` or `10.0.0.0/24` (the network address of the block).
    pub target: Arc<str>,
    pub until: Option<TimestampMs>,
    pub action: Arc<str>,
    pub incident: Option<Arc<str>>,
}

/// Something whose enforcement may have changed.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Change {
    /// An action of a kind the view serves changed status.
    Action(String),
    /// An entity moved into or out of a contained lifecycle state.
    Entity(String),
}

/// What a decision changes in the view, if anything.
pub fn change_of(d: &Decision) -> Option<(TenantId, Change)> {
    match d {
        Decision::Action { tenant, action, .. } | Decision::Undo { tenant, action, .. }
            if action.kind.effect_point() == EffectPoint::View =>
        {
            Some((tenant.clone(), Change::Action(action.id.clone())))
        }
        Decision::Transition(t) if t.from.is_contained() != t.to.is_contained() => {
            Some((t.tenant.clone(), Change::Entity(t.entity.clone())))
        }
        _ => None,
    }
}

// ---- budgets (state the responder keeps and snapshots)

/// What a cap counted so far: the spend of its current window.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Spend {
    /// Index of the window the spend belongs to (0: the one starting when the cap applied).
    window: i64,
    spent_usd: f64,
    /// The log offset of the last event counted.
    through: Option<u64>,
}

/// A cap's terms, from its action.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct CapTerms {
    pub limit_usd: f64,
    pub start: TimestampMs,
    pub until: TimestampMs,
    pub period_ms: Option<i64>,
}

impl CapTerms {
    pub(crate) fn of(action: &Action, start: TimestampMs, until: TimestampMs) -> Option<Self> {
        let limit_usd = action.params.get("usd")?.as_f64()?;
        let period_ms = period(action, "period").map(Period::ms);
        Some(Self {
            limit_usd,
            start,
            until,
            period_ms,
        })
    }

    fn window_of(&self, ts: TimestampMs) -> i64 {
        self.period_ms
            .map_or(0, |p| ts.saturating_sub(self.start) / p)
    }

    fn window_end(&self, window: i64) -> Option<TimestampMs> {
        self.period_ms.map(|p| {
            self.start
                .saturating_add(window.saturating_add(1).saturating_mul(p))
        })
    }
}

impl Spend {
    /// Counts `usd` spent by the event at log `offset` with timestamp `ts`; returns whether
    /// anything changed (see the module doc for which events count).
    pub(crate) fn count(&mut self, cap: &CapTerms, usd: f64, offset: u64, ts: TimestampMs) -> bool {
        let fresh = self.through.is_none_or(|t| offset > t);
        let money = usd.is_finite() && usd > 0.0;
        if !fresh || !money || ts < cap.start || ts >= cap.until {
            return false;
        }
        self.through = Some(offset);
        let window = cap.window_of(ts);
        if window < self.window {
            return false;
        }
        if window > self.window {
            self.window = window;
            self.spent_usd = 0.0;
        }
        self.spent_usd += usd;
        true
    }
}

// ---- the view

/// Where an entry comes from: replacing a source's entry never touches another's.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Source {
    Action(Arc<str>),
    /// The contained lifecycle state of the entity of this name.
    Lifecycle(Arc<str>),
}

/// A cap as of the latest spend the view was built with.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Cap {
    limit_usd: f64,
    spent_usd: f64,
    /// When the window holding that spend ends; `None`: the cap's lifetime is one window.
    window_end: Option<TimestampMs>,
}

impl Cap {
    /// The budget at `now`: a window that ended has spent nothing yet.
    fn at(&self, now: TimestampMs) -> Budget {
        let spent = if self.window_end.is_some_and(|w| now >= w) {
            0.0
        } else {
            self.spent_usd
        };
        Budget {
            limit_usd: self.limit_usd,
            spent_usd: spent,
            remaining_usd: (self.limit_usd - spent).max(0.0),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Effect {
    Block,
    Quarantine,
    Throttle(Option<Rate>),
    Revoke(Arc<[Arc<str>]>),
    Budget(Cap),
}

#[derive(Clone, Debug, PartialEq)]
struct Entry {
    source: Source,
    effect: Effect,
    /// `None`: held until released.
    until: Option<TimestampMs>,
    incident: Option<Arc<str>>,
}

/// An address or a CIDR block, masked to its prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Net {
    v6: bool,
    bits: u128,
    len: u8,
}

impl Net {
    fn new(addr: IpAddr, len: u8) -> Self {
        let (v6, bits, max) = match addr {
            IpAddr::V4(a) => (false, u128::from(u32::from(a)), 32),
            IpAddr::V6(a) => (true, u128::from(a), 128),
        };
        let len = len.min(max);
        Self {
            v6,
            bits: bits & mask(max, len),
            len,
        }
    }

    /// `1.2.3.4`, `ip:1.2.3.4`, `[::1]` or `10.0.0.0/8`.
    fn parse(target: &str) -> Option<Self> {
        if let Some(ip) = target_ip(target) {
            return Some(Self::new(ip, u8::MAX));
        }
        Cidr::parse(target).map(|c| Self::new(c.addr(), c.prefix()))
    }

    fn max(&self) -> u8 {
        if self.v6 {
            128
        } else {
            32
        }
    }
}

impl std::fmt::Display for Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let addr = if self.v6 {
            IpAddr::V6(Ipv6Addr::from(self.bits))
        } else {
            IpAddr::V4(Ipv4Addr::from(u32::try_from(self.bits).unwrap_or(0)))
        };
        if self.len == self.max() {
            write!(f, "{addr}")
        } else {
            write!(f, "{addr}/{}", self.len)
        }
    }
}

/// The top `len` of `max` bits.
fn mask(max: u8, len: u8) -> u128 {
    if len == 0 {
        return 0;
    }
    let width = u128::MAX >> (128 - u32::from(max));
    (u128::MAX << (u32::from(max) - u32::from(len))) & width
}

/// Where a target's entries live.
enum Key {
    Name(Name),
    Net(Net),
}

impl Key {
    fn of(target: &str) -> Self {
        Net::parse(target).map_or_else(|| Self::Name(Name::new(target)), Self::Net)
    }
}

impl table::Key for Net {
    type Probe = Net;

    fn probe(&self) -> &Net {
        self
    }

    fn is(&self, probe: &Net) -> bool {
        self == probe
    }
}

/// Names up to this long are kept in the table's bucket: what fills its line.
const INLINE: usize = 46;

/// An entity name as a table key: a short one (most are) sits in the bucket, so a lookup
/// compares it without following a pointer to another cache line. Looked up by its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Name {
    Inline(u8, [u8; INLINE]),
    Heap(Box<[u8]>),
}

impl Name {
    fn new(name: &str) -> Self {
        let bytes = name.as_bytes();
        match u8::try_from(bytes.len()) {
            Ok(len) if bytes.len() <= INLINE => {
                let mut inline = [0; INLINE];
                inline[..bytes.len()].copy_from_slice(bytes);
                Self::Inline(len, inline)
            }
            _ => Self::Heap(bytes.into()),
        }
    }
}

impl table::Key for Name {
    type Probe = [u8];

    fn probe(&self) -> &[u8] {
        match self {
            Self::Inline(len, bytes) => &bytes[..usize::from(*len)],
            Self::Heap(bytes) => bytes,
        }
    }

    fn is(&self, probe: &[u8]) -> bool {
        match self {
            Self::Inline(len, bytes) => usize::from(*len) == probe.len() && same(bytes, probe),
            Self::Heap(bytes) => **bytes == *probe,
        }
    }
}

/// Whether `probe` begins `bytes`, eight bytes at a time: names are short, and a call to
/// `memcmp` cost more than the compare (a lookup's one name compare is on its hot path).
fn same(bytes: &[u8; INLINE], probe: &[u8]) -> bool {
    let (mut a, mut b) = (bytes.as_slice(), probe);
    while let (Some((x, rest_a)), Some((y, rest_b))) =
        (a.split_first_chunk::<8>(), b.split_first_chunk::<8>())
    {
        if x != y {
            return false;
        }
        (a, b) = (rest_a, rest_b);
    }
    b.iter().zip(a).all(|(x, y)| x == y)
}

/// Everything held under one key, with the verdict it reads until something lapses: a
/// lookup then shares it rather than folding the entries again.
struct Slot {
    entries: Vec<Entry>,
    verdict: Verdict,
    /// The first moment an entry lapses or a budget window ends.
    fresh_until: TimestampMs,
}

impl Slot {
    fn new(entries: Vec<Entry>) -> Self {
        let mut acc = Acc::default();
        for e in &entries {
            // Before anything lapses, every entry holds as built.
            acc.add(e, TimestampMs::MIN);
        }
        let fresh_until = entries
            .iter()
            .flat_map(|e| {
                let window = match &e.effect {
                    Effect::Budget(cap) => cap.window_end,
                    _ => None,
                };
                [e.until, window]
            })
            .flatten()
            .min()
            .unwrap_or(TimestampMs::MAX);
        Self {
            verdict: acc.finish(),
            entries,
            fresh_until,
        }
    }
}

/// Keys to facts (the table), and the slots the facts point into. With 100 k entities the
/// slots (~0.5 KB an entity with their entries) stay out of the caches, so a lookup reads
/// them only for the details of a verdict.
#[derive(Clone)]
struct Shard<K> {
    table: Table<K>,
    slots: Vec<Option<Arc<Slot>>>,
    /// Slots emptied by a removal, reused before the vector grows.
    free: Vec<u32>,
}

impl<K> Default for Shard<K> {
    fn default() -> Self {
        Self {
            table: Table::default(),
            slots: Vec::new(),
            free: Vec::new(),
        }
    }
}

/// A shard seen from an [`Answer`], whatever its keys.
trait Slots: Send + Sync {
    fn at(&self, i: u32) -> Option<&Slot>;
}

impl<K: Send + Sync> Slots for Shard<K> {
    fn at(&self, i: u32) -> Option<&Slot> {
        self.slot(i)
    }
}

impl<K> Shard<K> {
    fn slot(&self, i: u32) -> Option<&Slot> {
        self.slots.get(i as usize)?.as_deref()
    }
}

impl<K: table::Key> Shard<K> {
    fn get(&self, h: u64, probe: &K::Probe) -> Option<&Slot> {
        self.table.get(h, probe).and_then(|f| self.slot(f.slot))
    }

    fn insert(&mut self, h: u64, key: K, slot: Slot, hasher: &Hasher) {
        let kind = slot.verdict.verdict;
        let fresh_until = slot.fresh_until;
        let slot = Some(Arc::new(slot));
        let i = match self.table.get(h, key.probe()) {
            Some(f) => f.slot,
            None => self.free.pop().unwrap_or_else(|| {
                self.slots.push(None);
                // A shard holds a tenant's keys over SHARDS: far below u32::MAX.
                u32::try_from(self.slots.len() - 1).unwrap_or(u32::MAX)
            }),
        };
        if let Some(s) = self.slots.get_mut(i as usize) {
            *s = slot;
        }
        let facts = Facts {
            slot: i,
            kind,
            fresh_until,
        };
        self.table.insert(h, key, facts, hasher);
    }

    fn remove(&mut self, h: u64, probe: &K::Probe, hasher: &Hasher) {
        if let Some(f) = self.table.remove(h, probe, hasher) {
            if let Some(s) = self.slots.get_mut(f.slot as usize) {
                *s = None;
                self.free.push(f.slot);
            }
        }
    }
}

/// A looked-up verdict: shared with the view while nothing under the key has lapsed, else
/// folded afresh. Derefs to [`Verdict`]; [`Answer::kind`] tells what to do without reading
/// the rest.
pub struct Answer(Held);

enum Held {
    Allow,
    Shared {
        shard: Arc<dyn Slots>,
        slot: u32,
        kind: VerdictKind,
    },
    Folded(Box<Verdict>),
}

impl Answer {
    /// What to do: the verdict's kind, read from the lookup itself.
    pub fn kind(&self) -> VerdictKind {
        match &self.0 {
            Held::Allow => VerdictKind::Allow,
            Held::Shared { kind, .. } => *kind,
            Held::Folded(v) => v.verdict,
        }
    }
}

static ALLOW: Verdict = Verdict {
    verdict: VerdictKind::Allow,
    until: None,
    incident: None,
    rate: None,
    revoked_tools: Vec::new(),
    budget: None,
};

impl std::ops::Deref for Answer {
    type Target = Verdict;

    fn deref(&self) -> &Verdict {
        match &self.0 {
            Held::Allow => &ALLOW,
            // The shard is immutable while shared (copied on write), so its slot is there.
            Held::Shared { shard, slot, .. } => shard.at(*slot).map_or(&ALLOW, |s| &s.verdict),
            Held::Folded(v) => v,
        }
    }
}

impl PartialEq<Verdict> for Answer {
    fn eq(&self, other: &Verdict) -> bool {
        **self == *other
    }
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        Verdict::fmt(self, f)
    }
}

/// Entries by key, in shards that are copied on write.
#[derive(Clone)]
struct Shards<K> {
    /// One hash per key: its low bits pick the shard, the rest its place in the shard.
    hasher: Hasher,
    shards: Vec<Arc<Shard<K>>>,
}

impl<K> Default for Shards<K> {
    fn default() -> Self {
        Self {
            hasher: Hasher::default(),
            shards: (0..SHARDS).map(|_| Arc::new(Shard::default())).collect(),
        }
    }
}

impl<K: table::Key + Send + Sync + 'static> Shards<K> {
    /// The key's hash and its shard.
    fn locate(&self, probe: &K::Probe) -> (u64, &Arc<Shard<K>>) {
        let h = self.hasher.hash_one(probe);
        // The low bits of a foldhash are well mixed; SHARDS is a power of two.
        (h, &self.shards[(h as usize) & (SHARDS - 1)])
    }

    fn contains(&self, probe: &K::Probe) -> bool {
        let (h, shard) = self.locate(probe);
        shard.table.get(h, probe).is_some()
    }

    /// The answer under `probe` at `now`, if anything is held there.
    fn answer(&self, probe: &K::Probe, now: TimestampMs) -> Option<Answer> {
        let (h, shard) = self.locate(probe);
        let facts = shard.table.get(h, probe)?;
        if now < facts.fresh_until {
            let held = Held::Shared {
                shard: shard.clone(),
                slot: facts.slot,
                kind: facts.kind,
            };
            return Some(Answer(held));
        }
        let mut acc = Acc::default();
        let slot = shard.slot(facts.slot)?;
        slot.entries.iter().for_each(|e| acc.add(e, now));
        Some(folded(acc))
    }

    fn get(&self, probe: &K::Probe) -> Option<&Slot> {
        let (h, shard) = self.locate(probe);
        shard.get(h, probe)
    }

    /// Replaces `source`'s entry under `key`; returns (key existed, key exists).
    fn put(&mut self, key: K, source: &Source, entry: Option<Entry>) -> (bool, bool) {
        let h = self.hasher.hash_one(key.probe());
        let i = (h as usize) & (SHARDS - 1);
        let held = self.shards[i].get(h, key.probe());
        let had = held.is_some();
        if !held.is_some_and(|s| s.entries.iter().any(|e| &e.source == source)) && entry.is_none() {
            return (had, had);
        }
        let mut entries: Vec<Entry> = held
            .map(|s| {
                s.entries
                    .iter()
                    .filter(|e| &e.source != source)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        entries.extend(entry);
        let shard = Arc::make_mut(&mut self.shards[i]);
        if entries.is_empty() {
            shard.remove(h, key.probe(), &self.hasher);
            return (had, false);
        }
        shard.insert(h, key, Slot::new(entries), &self.hasher);
        (had, true)
    }

    fn iter(&self) -> impl Iterator<Item = (&K, &Vec<Entry>)> {
        self.shards.iter().flat_map(|s| {
            s.table
                .iter()
                .filter_map(|(k, f)| Some((k, &s.slot(f.slot)?.entries)))
        })
    }
}

/// One tenant's effects, ready for lookups. Cheap to clone (shards are shared).
#[derive(Clone, Default)]
pub struct TenantView {
    names: Shards<Name>,
    nets: Shards<Net>,
    /// (v6, prefix length) of the nets held, with how many: an address lookup tries each.
    prefixes: Vec<(bool, u8, usize)>,
    keys: usize,
    /// Every net's longest block in address order, made by the first blocklist read of this
    /// version of the view: firewalls poll, and the list only changes with a publish.
    blocks: OnceLock<Vec<BlockEntry>>,
}

impl TenantView {
    /// The view of everything in force for `tenant` in the responder's state.
    pub fn build(r: &Responder, tenant: &TenantId) -> Self {
        let mut view = Self::default();
        view.update(r, tenant, &r.enforcement_sources(tenant));
        view
    }

    /// Re-reads the entries of what changed from the responder's state.
    pub fn update(&mut self, r: &Responder, tenant: &TenantId, changes: &[Change]) {
        self.blocks = OnceLock::new();
        for change in changes {
            match change {
                Change::Action(id) => {
                    let Some((target, applied)) = r.applied(tenant, id) else {
                        continue;
                    };
                    let source = Source::Action(Arc::from(id.as_str()));
                    let entry = applied.and_then(|a| entry_of(&source, &a));
                    self.put(Key::of(target), &source, entry);
                }
                Change::Entity(entity) => {
                    let source = Source::Lifecycle(Arc::from(entity.as_str()));
                    let entry = r.containment(tenant, entity).map(|incident| Entry {
                        source: source.clone(),
                        effect: Effect::Quarantine,
                        until: None,
                        incident: incident.map(Arc::from),
                    });
                    self.put(Key::of(entity), &source, entry);
                }
            }
        }
    }

    fn put(&mut self, key: Key, source: &Source, entry: Option<Entry>) {
        let (had, has) = match key {
            Key::Name(name) => self.names.put(name, source, entry),
            Key::Net(net) => {
                let (had, has) = self.nets.put(net, source, entry);
                self.count_prefix(net, i64::from(has) - i64::from(had));
                (had, has)
            }
        };
        self.keys = (self.keys + usize::from(has)).saturating_sub(usize::from(had));
    }

    fn count_prefix(&mut self, net: Net, delta: i64) {
        let at = self
            .prefixes
            .iter()
            .position(|p| (p.0, p.1) == (net.v6, net.len));
        match (at, delta) {
            (Some(i), 1) => self.prefixes[i].2 += 1,
            (Some(i), -1) => {
                self.prefixes[i].2 -= 1;
                if self.prefixes[i].2 == 0 {
                    self.prefixes.remove(i);
                }
            }
            (None, 1) => self.prefixes.push((net.v6, net.len, 1)),
            _ => {}
        }
    }

    /// Nothing is held (the tenant's view can be dropped).
    pub fn is_empty(&self) -> bool {
        self.keys == 0
    }

    /// What to do with `entity` at `now`.
    pub fn verdict(&self, entity: &str, now: TimestampMs) -> Answer {
        let allow = || Answer(Held::Allow);
        let Some(ip) = target_ip(entity) else {
            return self
                .names
                .answer(entity.as_bytes(), now)
                .unwrap_or_else(allow);
        };
        let v6 = ip.is_ipv6();
        let mut held = self
            .prefixes
            .iter()
            .filter(|p| p.0 == v6)
            .map(|&(_, len, _)| Net::new(ip, len))
            .filter(|net| self.nets.contains(net));
        let Some(first) = held.next() else {
            return allow();
        };
        let Some(second) = held.next() else {
            return self.nets.answer(&first, now).unwrap_or_else(allow);
        };
        // Blocks that overlap: their entries fold together.
        let mut acc = Acc::default();
        for net in [first, second].into_iter().chain(held) {
            if let Some(slot) = self.nets.get(&net) {
                slot.entries.iter().for_each(|e| acc.add(e, now));
            }
        }
        folded(acc)
    }

    /// The addresses and blocks blocked at `now`, one line per target (the block that lasts
    /// longest), in address order.
    pub fn blocklist(&self, now: TimestampMs) -> Vec<BlockEntry> {
        self.blocks
            .get_or_init(|| self.longest_blocks())
            .iter()
            .filter(|b| b.until.is_none_or(|u| now < u))
            .cloned()
            .collect()
    }

    fn longest_blocks(&self) -> Vec<BlockEntry> {
        let mut out: Vec<(Net, BlockEntry)> = self
            .nets
            .iter()
            .filter_map(|(net, entries)| {
                // If the longest block has lapsed, so have the others.
                let block = entries
                    .iter()
                    .filter(|e| e.effect == Effect::Block)
                    .max_by_key(|e| lasting(e.until))?;
                let Source::Action(action) = &block.source else {
                    return None;
                };
                let entry = BlockEntry {
                    target: Arc::from(net.to_string()),
                    until: block.until,
                    action: action.clone(),
                    incident: block.incident.clone(),
                };
                Some((*net, entry))
            })
            .collect();
        out.sort_by_key(|(net, _)| *net);
        out.into_iter().map(|(_, e)| e).collect()
    }
}

/// A folded verdict; `allow` without anything attached needs no allocation.
fn folded(acc: Acc<'_>) -> Answer {
    match acc.finish() {
        v if v == ALLOW => Answer(Held::Allow),
        v => Answer(Held::Folded(Box::new(v))),
    }
}

fn in_force(e: &Entry, now: TimestampMs) -> bool {
    e.until.is_none_or(|u| now < u)
}

/// Order of lasting: a hold without end lasts longest.
fn lasting(until: Option<TimestampMs>) -> TimestampMs {
    until.unwrap_or(TimestampMs::MAX)
}

/// The strongest effect so far: its verdict, until and incident.
type Best<'a> = (VerdictKind, Option<TimestampMs>, Option<&'a Arc<str>>);

/// Folds the entries of one entity into its verdict.
#[derive(Default)]
struct Acc<'a> {
    best: Option<Best<'a>>,
    rate: Option<Rate>,
    tools: Vec<Arc<str>>,
    budget: Option<Budget>,
}

impl<'a> Acc<'a> {
    fn add(&mut self, e: &'a Entry, now: TimestampMs) {
        if !in_force(e, now) {
            return;
        }
        let (verdict, until) = match &e.effect {
            Effect::Block => (VerdictKind::Block, e.until),
            Effect::Quarantine => (VerdictKind::Quarantine, e.until),
            Effect::Throttle(rate) => {
                if let Some(r) = rate {
                    if self.rate.is_none_or(|old| per_ms(r) < per_ms(&old)) {
                        self.rate = Some(*r);
                    }
                }
                (VerdictKind::Throttle, e.until)
            }
            Effect::Revoke(tools) => {
                self.tools.extend(tools.iter().cloned());
                (VerdictKind::Allow, e.until)
            }
            Effect::Budget(cap) => {
                let b = cap.at(now);
                if self
                    .budget
                    .is_none_or(|old| b.remaining_usd < old.remaining_usd)
                {
                    self.budget = Some(b);
                }
                if b.spent_usd >= b.limit_usd {
                    let end = cap
                        .window_end
                        .map_or(e.until, |w| Some(w.min(lasting(e.until))));
                    (VerdictKind::Block, end)
                } else {
                    (VerdictKind::Throttle, e.until)
                }
            }
        };
        let stronger = self
            .best
            .is_none_or(|(v, u, _)| (verdict, lasting(until)) > (v, lasting(u)));
        if stronger {
            self.best = Some((verdict, until, e.incident.as_ref()));
        }
    }

    fn finish(mut self) -> Verdict {
        let Some((verdict, until, incident)) = self.best else {
            return Verdict::allow();
        };
        self.tools.sort_unstable();
        self.tools.dedup();
        Verdict {
            verdict,
            until,
            incident: incident.cloned(),
            rate: self.rate,
            revoked_tools: self.tools,
            budget: self.budget,
        }
    }
}

fn per_ms(r: &Rate) -> f64 {
    r.rate / r.per.ms() as f64
}

fn period(action: &Action, name: &str) -> Option<Period> {
    match action.params.get(name) {
        Some(ParamValue::Str(p)) => Period::parse(p),
        _ => None,
    }
}

/// What the view needs of an applied action (see `Responder::applied`).
pub(crate) struct Applied<'a> {
    pub action: &'a Action,
    /// When its result arrived: its TTL and a cap's windows count from here.
    pub applied_at: TimestampMs,
    pub until: TimestampMs,
    pub spend: Option<&'a Spend>,
}

/// The entry an applied action of a kind the view serves puts on its target.
fn entry_of(source: &Source, a: &Applied<'_>) -> Option<Entry> {
    let action = a.action;
    let effect = match action.kind {
        ActionKind::BlockIp => Effect::Block,
        ActionKind::Quarantine | ActionKind::Isolate => Effect::Quarantine,
        ActionKind::RateLimit => Effect::Throttle(action.params.get("rate").and_then(|r| {
            let rate = r.as_f64().filter(|x| x.is_finite() && *x > 0.0)?;
            let per = period(action, "per").unwrap_or(Period::Second);
            Some(Rate { rate, per })
        })),
        ActionKind::RevokeTools => Effect::Revoke(match action.params.get("tools") {
            Some(ParamValue::List(tools)) if !tools.is_empty() => {
                tools.iter().map(|t| Arc::from(t.as_str())).collect()
            }
            _ => Arc::from([Arc::from("*")]),
        }),
        ActionKind::BudgetCap => {
            let terms = CapTerms::of(action, a.applied_at, a.until)?;
            let spend = a.spend.cloned().unwrap_or_default();
            Effect::Budget(Cap {
                limit_usd: terms.limit_usd,
                spent_usd: spend.spent_usd,
                window_end: terms.window_end(spend.window),
            })
        }
        _ => return None,
    };
    Some(Entry {
        source: source.clone(),
        effect,
        until: Some(a.until),
        incident: Some(Arc::from(action.incident.as_str())),
    })
}

// ---- publishing

/// The published views of every tenant. One writer (the response stage) swaps a tenant's
/// view in whole; any number of readers look up without a lock.
#[derive(Default)]
pub struct Enforcement {
    tenants: ArcSwap<Map<TenantId, Arc<TenantView>>>,
}

impl Enforcement {
    /// What to do with `entity` of `tenant` at `now`.
    pub fn verdict(&self, tenant: &TenantId, entity: &str, now: TimestampMs) -> Answer {
        self.tenants
            .load()
            .get(tenant)
            .map_or(Answer(Held::Allow), |v| v.verdict(entity, now))
    }

    /// The tenant's blocklist at `now`.
    pub fn blocklist(&self, tenant: &TenantId, now: TimestampMs) -> Vec<BlockEntry> {
        self.tenant(tenant)
            .map_or_else(Vec::new, |v| v.blocklist(now))
    }

    /// The tenant's published view.
    pub fn tenant(&self, tenant: &TenantId) -> Option<Arc<TenantView>> {
        self.tenants.load().get(tenant).cloned()
    }

    /// Publishes new views of some tenants at once; an empty view removes its tenant.
    pub fn publish(&self, views: impl IntoIterator<Item = (TenantId, TenantView)>) {
        let mut next = Map::clone(&self.tenants.load());
        for (tenant, view) in views {
            if view.is_empty() {
                next.remove(&tenant);
            } else {
                next.insert(tenant, Arc::new(view));
            }
        }
        self.tenants.store(Arc::new(next));
    }

    /// Rebuilds the views of the tenants that `changes` touch from the responder's state.
    pub fn apply(&self, r: &Responder, changes: &[(TenantId, Change)]) {
        let mut by_tenant: std::collections::BTreeMap<&TenantId, Vec<Change>> =
            std::collections::BTreeMap::new();
        for (tenant, change) in changes {
            by_tenant.entry(tenant).or_default().push(change.clone());
        }
        let views: Vec<(TenantId, TenantView)> = by_tenant
            .into_iter()
            .map(|(tenant, mut changes)| {
                // Each change re-reads the current state: one read per source is enough.
                changes.sort_unstable();
                changes.dedup();
                let mut view = self
                    .tenant(tenant)
                    .map_or_else(TenantView::default, |v| TenantView::clone(&v));
                view.update(r, tenant, &changes);
                (tenant.clone(), view)
            })
            .collect();
        if !views.is_empty() {
            self.publish(views);
        }
    }

    /// Publishes every tenant's view of the responder's state (at start).
    pub fn rebuild(&self, r: &Responder) {
        let views = r.enforcement_tenants().into_iter().map(|t| {
            let view = TenantView::build(r, &t);
            (t, view)
        });
        self.publish(views);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::{ActionStatus, Mode, Params, Why};
    use crate::config::ResponderConfig;
    use crate::lifecycle::LifecycleState;
    use crate::playbook::PlaybookSet;

    const T0: TimestampMs = 1_800_000_000_000;
    const MIN: i64 = 60_000;

    fn t() -> TenantId {
        TenantId::new("acme")
    }

    fn responder() -> Responder {
        Responder::new(
            Arc::new(ResponderConfig::default()),
            Arc::new(PlaybookSet::default()),
        )
    }

    fn params(json: &str) -> Params {
        serde_json::from_str(json).unwrap()
    }

    /// An action of `kind` on `target` from incident `incident`, lasting `ttl_s`.
    fn action(id: &str, kind: ActionKind, target: &str, p: &str, ttl_s: u64) -> Action {
        Action {
            id: id.into(),
            incident: format!("i-{id}"),
            kind,
            target: target.into(),
            params: params(p),
            mode: Mode::Auto,
            status: ActionStatus::Approved,
            ttl: ttl_s,
            executor: kind.as_str().into(),
            result: None,
            why: Why {
                playbook: "p".into(),
                rule: "r".into(),
                text: "t".into(),
                numbers: Default::default(),
            },
        }
    }

    fn view(r: &Responder) -> TenantView {
        TenantView::build(r, &t())
    }

    #[test]
    fn entries_expire_at_their_until_without_a_rebuild() {
        let mut r = responder();
        r.applied_for_test(
            &t(),
            action("a-1", ActionKind::BlockIp, "203.0.113.9", "{}", 60),
            T0,
        );
        let v = view(&r);
        for entity in ["ip:203.0.113.9", "203.0.113.9"] {
            let got = v.verdict(entity, T0 + 59_999);
            assert_eq!(got.verdict, VerdictKind::Block, "{entity}");
            assert_eq!(got.until, Some(T0 + MIN));
            assert_eq!(got.incident.as_deref(), Some("i-a-1"));
        }
        assert_eq!(&*v.blocklist(T0)[0].target, "203.0.113.9");
        assert_eq!(v.verdict("ip:203.0.113.9", T0 + MIN), Verdict::allow());
        assert!(v.blocklist(T0 + MIN).is_empty());
        assert_eq!(v.verdict("ip:203.0.113.10", T0), Verdict::allow());
    }

    #[test]
    fn the_strongest_verdict_wins_and_the_rest_is_still_told() {
        let mut r = responder();
        let e = "agent:x";
        let steps = [
            (
                "a-1",
                ActionKind::RateLimit,
                r#"{"rate":10,"per":"minute"}"#,
                3_600,
            ),
            (
                "a-2",
                ActionKind::RateLimit,
                r#"{"rate":1,"per":"second"}"#,
                600,
            ),
            (
                "a-3",
                ActionKind::RevokeTools,
                r#"{"tools":["shell","browser"]}"#,
                7_200,
            ),
            ("a-4", ActionKind::RevokeTools, r#"{"tools":["shell"]}"#, 60),
        ];
        for (id, kind, p, ttl) in steps {
            r.applied_for_test(&t(), action(id, kind, e, p, ttl), T0);
        }
        let v = view(&r).verdict(e, T0 + 1);
        assert_eq!(v.verdict, VerdictKind::Throttle);
        // The throttle lasting longest names the incident; the tightest rate is told.
        assert_eq!(
            (v.until, v.incident.as_deref()),
            (Some(T0 + 3_600_000), Some("i-a-1"))
        );
        let per = Period::Minute;
        assert_eq!(v.rate, Some(Rate { rate: 10.0, per }));
        let tools: Vec<&str> = v.revoked_tools.iter().map(|s| &**s).collect();
        assert_eq!(tools, ["browser", "shell"]);

        r.applied_for_test(&t(), action("a-5", ActionKind::Quarantine, e, "{}", 60), T0);
        let v = view(&r).verdict(e, T0 + 1);
        assert_eq!(
            (v.verdict, v.until),
            (VerdictKind::Quarantine, Some(T0 + MIN))
        );
        assert_eq!(v.incident.as_deref(), Some("i-a-5"));
        assert!(v.rate.is_some() && v.revoked_tools.len() == 2, "{v:?}");
        // After the quarantine and the short throttle: the hour-long one again.
        let v = view(&r).verdict(e, T0 + 20 * MIN);
        assert_eq!(
            (v.verdict, v.incident.as_deref()),
            (VerdictKind::Throttle, Some("i-a-1"))
        );
        // Only a revocation left: allow, with the tools.
        let v = view(&r).verdict(e, T0 + 90 * MIN);
        assert_eq!(
            (v.verdict, v.until),
            (VerdictKind::Allow, Some(T0 + 120 * MIN))
        );
        assert_eq!(v.revoked_tools, [Arc::from("browser"), Arc::from("shell")]);
    }

    #[test]
    fn a_contained_entity_is_quarantined_until_released() {
        let mut r = responder();
        r.state_for_test(&t(), "agent:x", LifecycleState::Draining, "i-9");
        r.applied_for_test(
            &t(),
            action("a-1", ActionKind::RateLimit, "agent:x", r#"{"rate":5}"#, 60),
            T0,
        );
        let v = view(&r).verdict("agent:x", T0 + 100 * MIN);
        assert_eq!((v.verdict, v.until), (VerdictKind::Quarantine, None));
        assert_eq!(v.incident.as_deref(), Some("i-9"));
        r.state_for_test(&t(), "agent:x", LifecycleState::Probation, "i-9");
        let mut v = view(&r);
        assert_eq!(v.verdict("agent:x", T0).verdict, VerdictKind::Throttle);
        // Incrementally: the entity's change takes the hold out.
        r.state_for_test(&t(), "agent:x", LifecycleState::Quarantined, "i-9");
        v.update(&r, &t(), &[Change::Entity("agent:x".into())]);
        assert_eq!(v.verdict("agent:x", T0).verdict, VerdictKind::Quarantine);
        r.state_for_test(&t(), "agent:x", LifecycleState::Healing, "i-9");
        v.update(&r, &t(), &[Change::Entity("agent:x".into())]);
        assert_eq!(v.verdict("agent:x", T0).verdict, VerdictKind::Throttle);
    }

    #[test]
    fn cidr_blocks_cover_their_addresses_and_undo_removes_exactly_one_entry() {
        let mut r = responder();
        r.applied_for_test(
            &t(),
            action("a-1", ActionKind::BlockIp, "10.0.0.0/24", "{}", 600),
            T0,
        );
        r.applied_for_test(
            &t(),
            action("a-2", ActionKind::BlockIp, "ip:10.0.0.7", "{}", 60),
            T0,
        );
        r.applied_for_test(
            &t(),
            action("a-3", ActionKind::BlockIp, "10.0.0.7", "{}", 120),
            T0,
        );
        r.applied_for_test(
            &t(),
            action("a-4", ActionKind::BlockIp, "2001:db8::/32", "{}", 60),
            T0,
        );
        let mut v = view(&r);
        let listed: Vec<(String, Option<TimestampMs>)> = v
            .blocklist(T0)
            .into_iter()
            .map(|b| (b.target.to_string(), b.until))
            .collect();
        assert_eq!(
            listed,
            [
                ("10.0.0.0/24".to_owned(), Some(T0 + 10 * MIN)),
                ("10.0.0.7".to_owned(), Some(T0 + 2 * MIN)),
                ("2001:db8::/32".to_owned(), Some(T0 + MIN)),
            ]
        );
        assert_eq!(v.verdict("ip:10.0.0.200", T0).verdict, VerdictKind::Block);
        assert_eq!(v.verdict("ip:10.0.1.1", T0), Verdict::allow());
        assert_eq!(v.verdict("[2001:db8::1]", T0).verdict, VerdictKind::Block);
        // The /24 lasts longest: it names the incident of 10.0.0.7's verdict.
        assert_eq!(v.verdict("10.0.0.7", T0).incident.as_deref(), Some("i-a-1"));
        r.undone_for_test("a-3");
        v.update(&r, &t(), &[Change::Action("a-3".into())]);
        assert_eq!(v.blocklist(T0)[1].until, Some(T0 + MIN), "a-2 still holds");
        for id in ["a-1", "a-2", "a-4"] {
            r.undone_for_test(id);
            v.update(&r, &t(), &[Change::Action(id.into())]);
        }
        assert!(v.is_empty() && v.prefixes.is_empty());
    }

    #[test]
    fn slots_freed_by_removals_are_reused_and_published_copies_never_change() {
        let mut r = responder();
        let agents: Vec<String> = (0..200).map(|i| format!("agent:{i}")).collect();
        for (i, e) in agents.iter().enumerate() {
            let id = format!("a-{i}");
            r.applied_for_test(&t(), action(&id, ActionKind::Quarantine, e, "{}", 60), T0);
        }
        let mut v = view(&r);
        let before = v.clone();
        let held = before.verdict("agent:7", T0);
        // Every other agent released, then as many new ones held: freed slots are reused.
        for i in (0..200).step_by(2) {
            let id = format!("a-{i}");
            r.undone_for_test(&id);
            v.update(&r, &t(), &[Change::Action(id)]);
        }
        let slots: usize = v.names.shards.iter().map(|s| s.slots.len()).sum();
        for i in 0..100 {
            let (id, e) = (format!("b-{i}"), format!("agent:new-{i}"));
            let p = r#"{"rate":2}"#;
            r.applied_for_test(&t(), action(&id, ActionKind::RateLimit, &e, p, 60), T0);
            v.update(&r, &t(), &[Change::Action(id)]);
        }
        // Keys land in other shards than the freed slots, but those they share are reused,
        // and no shard keeps a slot no key points to.
        let grown = v.names.shards.iter().map(|s| s.slots.len()).sum::<usize>() - slots;
        assert!(grown < 100, "{grown} new slots for 100 keys");
        for s in &v.names.shards {
            let used = s.slots.iter().filter(|x| x.is_some()).count();
            assert_eq!((used, s.slots.len() - s.free.len()), (s.table.len(), used));
        }
        for (i, e) in agents.iter().enumerate() {
            let want = [VerdictKind::Allow, VerdictKind::Quarantine][i % 2];
            assert_eq!(v.verdict(e, T0).kind(), want, "{e}");
            assert_eq!(v.verdict(e, T0).verdict, want, "{e}");
            assert_eq!(before.verdict(e, T0).kind(), VerdictKind::Quarantine, "{e}");
        }
        for i in 0..100 {
            let a = v.verdict(&format!("agent:new-{i}"), T0);
            assert_eq!(
                (a.kind(), a.rate.map(|r| r.rate)),
                (VerdictKind::Throttle, Some(2.0))
            );
        }
        // An answer taken before the changes still reads what it read.
        assert_eq!(
            (held.kind(), held.incident.as_deref()),
            (VerdictKind::Quarantine, Some("i-a-7"))
        );
    }

    #[test]
    fn tenants_are_isolated() {
        let mut r = responder();
        let other = TenantId::new("other");
        r.applied_for_test(
            &t(),
            action("a-1", ActionKind::Quarantine, "agent:x", "{}", 60),
            T0,
        );
        r.applied_for_test(
            &other,
            action("a-2", ActionKind::BlockIp, "192.0.2.1", "{}", 60),
            T0,
        );
        let enf = Enforcement::default();
        enf.rebuild(&r);
        assert_eq!(
            enf.verdict(&t(), "agent:x", T0).verdict,
            VerdictKind::Quarantine
        );
        assert_eq!(enf.verdict(&other, "agent:x", T0), Verdict::allow());
        assert!(enf.blocklist(&t(), T0).is_empty());
        assert_eq!(enf.blocklist(&other, T0).len(), 1);
        // A change of one tenant leaves the other's view as it was.
        let before = enf.tenant(&other).unwrap();
        r.undone_for_test("a-1");
        enf.apply(&r, &[(t(), Change::Action("a-1".into()))]);
        assert!(enf.tenant(&t()).is_none(), "an empty view is dropped");
        assert!(Arc::ptr_eq(&before, &enf.tenant(&other).unwrap()));
        // An action id of another tenant changes nothing.
        enf.apply(&r, &[(t(), Change::Action("a-2".into()))]);
        assert_eq!(enf.blocklist(&other, T0).len(), 1);
        assert!(enf.tenant(&t()).is_none());
    }

    #[test]
    fn a_budget_counts_per_window_then_blocks_until_the_window_ends() {
        let mut r = responder();
        let e = "agent:spender";
        let cap = action(
            "a-1",
            ActionKind::BudgetCap,
            e,
            r#"{"usd":10,"period":"minute"}"#,
            3_600,
        );
        r.applied_for_test(&t(), cap, T0);
        let mut v = view(&r);
        let budget = |v: &TenantView, now| v.verdict(e, now).budget.unwrap();
        assert_eq!(v.verdict(e, T0).verdict, VerdictKind::Throttle);
        assert_eq!(budget(&v, T0).remaining_usd, 10.0);
        assert!(r.capped(&t(), e));
        let spend = |r: &mut Responder, v: &mut TenantView, usd, offset, ts| {
            let ids = r.on_spend(&t(), e, usd, offset, ts);
            v.update(
                r,
                &t(),
                &ids.into_iter().map(Change::Action).collect::<Vec<_>>(),
            );
        };
        spend(&mut r, &mut v, 4.0, 1, T0 - 1); // before the cap: not counted
        spend(&mut r, &mut v, 4.0, 2, T0 + 1_000);
        spend(&mut r, &mut v, 4.0, 2, T0 + 1_000); // the same event again (a replay): not counted
        let want = Budget {
            limit_usd: 10.0,
            spent_usd: 4.0,
            remaining_usd: 6.0,
        };
        assert_eq!(budget(&v, T0 + 2_000), want);
        spend(&mut r, &mut v, 7.0, 3, T0 + 30_000);
        let got = v.verdict(e, T0 + 31_000);
        assert_eq!(
            (got.verdict, got.until),
            (VerdictKind::Block, Some(T0 + MIN))
        );
        assert_eq!(got.budget.unwrap().remaining_usd, 0.0);
        // The next window starts from zero, even before the view hears of new spend.
        let got = v.verdict(e, T0 + MIN);
        assert_eq!(got.verdict, VerdictKind::Throttle);
        assert_eq!(got.budget.unwrap().spent_usd, 0.0);
        spend(&mut r, &mut v, 2.5, 4, T0 + MIN + 5);
        spend(&mut r, &mut v, 9.0, 5, T0 + 50_000); // late, in the closed window: not counted
        assert_eq!(budget(&v, T0 + MIN + 10).spent_usd, 2.5);
        // Past the TTL the cap is gone, and so is the watch.
        assert_eq!(v.verdict(e, T0 + 60 * MIN), Verdict::allow());
        r.undone_for_test("a-1");
        assert!(!r.capped(&t(), e));
    }

    #[test]
    fn a_budget_without_a_period_counts_over_its_lifetime() {
        let mut r = responder();
        let e = "agent:spender";
        r.applied_for_test(
            &t(),
            action("a-1", ActionKind::BudgetCap, e, r#"{"usd":1}"#, 600),
            T0,
        );
        assert_eq!(r.on_spend(&t(), e, 0.6, 1, T0 + 1), ["a-1"]);
        assert_eq!(r.on_spend(&t(), e, 0.6, 2, T0 + 5 * MIN), ["a-1"]);
        assert!(
            r.on_spend(&t(), e, 0.6, 3, T0 + 10 * MIN).is_empty(),
            "after the TTL"
        );
        assert!(r.on_spend(&t(), e, f64::NAN, 4, T0 + 1).is_empty());
        let v = view(&r).verdict(e, T0 + 6 * MIN);
        assert_eq!(
            (v.verdict, v.until),
            (VerdictKind::Block, Some(T0 + 10 * MIN))
        );
        assert!((v.budget.unwrap().spent_usd - 1.2).abs() < 1e-9);
    }

    #[test]
    fn a_shared_verdict_equals_a_fresh_fold_at_every_moment() {
        let mut r = responder();
        let e = "agent:x";
        let steps = [
            ("a-1", ActionKind::RateLimit, r#"{"rate":3}"#, 120),
            ("a-2", ActionKind::Quarantine, "{}", 60),
            ("a-3", ActionKind::RevokeTools, "{}", 300),
            (
                "a-4",
                ActionKind::BudgetCap,
                r#"{"usd":1,"period":"minute"}"#,
                240,
            ),
        ];
        for (id, kind, p, ttl) in steps {
            r.applied_for_test(&t(), action(id, kind, e, p, ttl), T0);
        }
        r.on_spend(&t(), e, 2.0, 1, T0 + 1);
        let v = view(&r);
        let slot = v.names.get(e.as_bytes()).unwrap();
        for minute in 0..6 {
            for delta in [-1, 0, 1] {
                let now = T0 + minute * MIN + delta;
                let mut acc = Acc::default();
                slot.entries.iter().for_each(|x| acc.add(x, now));
                let (answer, want) = (v.verdict(e, now), acc.finish());
                assert_eq!(answer.kind(), want.verdict, "at {minute} min {delta:+} ms");
                assert_eq!(answer, want, "at {minute} min {delta:+} ms");
            }
        }
        assert_eq!(slot.fresh_until, T0 + MIN);
    }

    #[test]
    fn a_name_or_a_net_and_its_facts_fill_one_cache_line() {
        assert_eq!(table::bucket_bytes::<Name>(), 64);
        assert_eq!(table::bucket_bytes::<Net>(), 64);
        let name = "n".repeat(INLINE);
        assert!(matches!(Name::new(&name), Name::Inline(..)));
        assert!(matches!(Name::new(&format!("{name}!")), Name::Heap(..)));
    }

    #[test]
    fn a_name_is_only_itself_at_every_length() {
        use table::Key;
        for len in 1..=INLINE + 9 {
            let name: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            let key = Name::new(std::str::from_utf8(&name).unwrap());
            assert!(key.is(&name), "{len}");
            for at in [0, len / 2, len - 1] {
                let mut other = name.clone();
                other[at] = b'!';
                assert!(!key.is(&other), "{len}, byte {at}");
            }
            assert!(!key.is(&name[..len - 1]) && !key.is(&[name.as_slice(), b"a"].concat()));
        }
    }

    #[test]
    fn short_and_long_names_are_found() {
        let mut r = responder();
        let long = format!("agent:{}", "x".repeat(INLINE));
        for (i, e) in ["agent:a", "agent:b", long.as_str()]
            .into_iter()
            .enumerate()
        {
            let id = format!("a-{i}");
            r.applied_for_test(&t(), action(&id, ActionKind::Quarantine, e, "{}", 60), T0);
        }
        let v = view(&r);
        for e in ["agent:a", "agent:b", long.as_str()] {
            assert_eq!(v.verdict(e, T0).verdict, VerdictKind::Quarantine, "{e}");
        }
        assert_eq!(v.verdict(&long[..long.len() - 1], T0), Verdict::allow());
        assert_eq!(v.verdict("agent:", T0), Verdict::allow());
    }

    #[test]
    fn periods_and_decisions() {
        for (p, name) in Period::ALL.iter().zip(Period::NAMES) {
            assert_eq!(Period::parse(name), Some(*p));
            assert_eq!(serde_json::to_value(p).unwrap(), *name);
        }
        let a = action("a-1", ActionKind::Reset, "agent:x", "{}", 60);
        let d = Decision::Action {
            tenant: t(),
            entity: "agent:x".into(),
            actor: "engine".into(),
            action: a.clone(),
        };
        assert_eq!(change_of(&d), None, "reset is not served by the view");
        let d = Decision::Action {
            tenant: t(),
            entity: "agent:x".into(),
            actor: "engine".into(),
            action: Action {
                kind: ActionKind::RevokeTools,
                ..a
            },
        };
        assert_eq!(change_of(&d), Some((t(), Change::Action("a-1".into()))));
        let json = serde_json::to_value(Verdict::allow()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"verdict": "allow", "until": null, "incident": null, "rate": null, "revoked_tools": [], "budget": null})
        );
    }
}
