//! Learned web-application profiles (positive security): per `(tenant, host, method, path
//! template)` what normal requests look like — the templates a host serves, each one's
//! parameter names (which are always there, which combinations occur), and per parameter
//! the shape of its values ([`param`]) — plus the media types and user-agent families seen.
//!
//! A template judges nothing until it has seen `learn_requests` requests, and a host judges
//! unseen paths only after as many; after that each request gets a score, the noisy-or of
//! the weights of every way it departs from the profile, and one at or above `threshold`
//! is a `web_anomaly` finding. Only requests below the threshold are learned, so anomalous
//! values never enter a profile (poisoning resistance, as in the baselines); an analyst's
//! "false positive" learns the request the finding describes. State is bounded: templates
//! per tenant (least recently used evicted), hosts per tenant, parameters per template,
//! values per parameter.
//!
//! Profiles live in each partition beside its entities, so each partition learns from the
//! requests routed to it; export merges every partition's profiles (they are counts and
//! sets, [`TenantProfiles::merge`]) and import gives each partition the whole profile.

pub mod param;
pub mod request;

use crate::webprof::param::{strength, thousands, Deviation, ParamProfile};
pub use crate::webprof::request::{Method, Request};
use antibody_core::{Detector, Event, Explanation, Finding, Severity, TenantId};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The finding kind, and the detector that reports it.
pub const KIND: &str = "web_anomaly";

/// Values kept in a finding's evidence (bytes); longer ones are cut there.
const EVIDENCE_VALUE: usize = 1024;
/// Media types and user-agent families remembered per template / host.
const MAX_LABELS: usize = 16;
/// Parameter names whose symbols a host remembers across its paths.
const MAX_HOST_PARAMS: usize = 1024;
/// Distinct parameter-name combinations enumerated per template.
const MAX_COMBOS: usize = 32;

/// What profiles do for a tenant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Learn normal requests and report anomalous ones.
    #[default]
    On,
    /// Learn every request, report nothing (a staging or first-week setting).
    LearnOnly,
    /// Neither learn nor judge.
    Off,
}

/// `[engine.web_profiles]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebProfilesConfig {
    /// Profiles run at all (`false` = every tenant `off`).
    pub enabled: bool,
    /// Requests a template (and a host, for unseen paths) learns from before it judges.
    pub learn_requests: u64,
    /// Score from which a request is a finding (and is not learned), in (0, 1].
    pub threshold: f64,
    /// The mode of tenants not listed in `tenants`.
    pub mode: Mode,
    /// Tenant name → mode.
    pub tenants: BTreeMap<String, Mode>,
    /// Templates one tenant keeps per partition; the least recently used goes first.
    pub max_templates_per_tenant: usize,
    pub max_hosts_per_tenant: usize,
    pub max_params_per_template: usize,
}

impl Default for WebProfilesConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            learn_requests: 200,
            threshold: 0.6,
            mode: Mode::On,
            tenants: BTreeMap::new(),
            max_templates_per_tenant: 5_000,
            max_hosts_per_tenant: 256,
            max_params_per_template: 64,
        }
    }
}

impl WebProfilesConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.learn_requests == 0 {
            return Err("engine.web_profiles.learn_requests must be positive".into());
        }
        if !(self.threshold > 0.0 && self.threshold <= 1.0) {
            return Err("engine.web_profiles.threshold must be in (0, 1]".into());
        }
        if self.max_templates_per_tenant == 0
            || self.max_hosts_per_tenant == 0
            || self.max_params_per_template == 0
        {
            return Err("engine.web_profiles caps must be positive".into());
        }
        Ok(())
    }

    pub fn mode_for(&self, tenant: &TenantId) -> Mode {
        if !self.enabled {
            return Mode::Off;
        }
        if self.tenants.is_empty() {
            return self.mode;
        }
        self.tenants
            .get(tenant.as_str())
            .copied()
            .unwrap_or(self.mode)
    }
}

/// One template of one host.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TemplateProfile {
    pub requests: u64,
    /// The tenant's request counter when last used (LRU).
    pub last_used: u64,
    pub params: Params,
    /// Parameters not profiled because the template had `max_params_per_template`.
    pub params_refused: u64,
    pub content_types: Vec<(String, u64)>,
    /// Parameter-name combinations (hash of the sorted names) while few; `None` once many.
    combos: Option<Vec<(u64, u64)>>,
}

/// A template's parameters, sorted by name, with each name's [`request::name_hash`] beside
/// it: a request's names are found by comparing hashes (one string comparison to confirm),
/// and the position found is handed from judging on to learning. Serialised as a map.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Params {
    items: Vec<(String, ParamProfile)>,
    hashes: Vec<u64>,
}

/// A request parameter the template does not profile (see [`resolve`]).
const UNKNOWN: u32 = u32::MAX;

impl Params {
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &ParamProfile)> {
        self.items.iter().map(|(n, p)| (n, p))
    }

    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.items.iter().map(|(n, _)| n)
    }

    fn find(&self, name: &str) -> Result<usize, usize> {
        self.items.binary_search_by(|(n, _)| n.as_str().cmp(name))
    }

    /// The position of `name`, whose hash is `hash`.
    fn position(&self, name: &str, hash: u64) -> Option<usize> {
        self.hashes
            .iter()
            .enumerate()
            .find(|&(i, &h)| h == hash && self.items[i].0 == name)
            .map(|(i, _)| i)
    }

    pub fn get(&self, name: &str) -> Option<&ParamProfile> {
        self.find(name).ok().map(|i| &self.items[i].1)
    }

    /// Bytes held on the heap (for memory accounting).
    fn heap_bytes(&self) -> usize {
        self.items.capacity() * std::mem::size_of::<(String, ParamProfile)>()
            + self.hashes.capacity() * std::mem::size_of::<u64>()
            + self
                .items
                .iter()
                .map(|(n, p)| n.capacity() + p.heap_bytes())
                .sum::<usize>()
    }

    fn insert(&mut self, at: usize, name: &str, p: ParamProfile) {
        self.hashes.insert(at, request::name_hash(name.as_bytes()));
        self.items.insert(at, (name.to_owned(), p));
    }

    /// The profile of `name`, created empty when there is none.
    fn entry(&mut self, name: &str) -> &mut ParamProfile {
        let i = match self.find(name) {
            Ok(i) => i,
            Err(i) => {
                self.insert(i, name, ParamProfile::default());
                i
            }
        };
        &mut self.items[i].1
    }
}

impl<'a> IntoIterator for &'a Params {
    type Item = (&'a String, &'a ParamProfile);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (String, ParamProfile)>,
        fn(&'a (String, ParamProfile)) -> (&'a String, &'a ParamProfile),
    >;
    fn into_iter(self) -> Self::IntoIter {
        self.items.iter().map(|(n, p)| (n, p))
    }
}

impl Serialize for Params {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for Params {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Through a map: sorted, names unique, whatever order the document lists them in.
        let map = BTreeMap::<String, ParamProfile>::deserialize(d)?;
        let hashes = map
            .keys()
            .map(|n| request::name_hash(n.as_bytes()))
            .collect();
        Ok(Self {
            items: map.into_iter().collect(),
            hashes,
        })
    }
}

/// Each parameter of `req` by its position in `t`'s parameters ([`UNKNOWN`]: none).
fn resolve(t: Option<&TemplateProfile>, req: &Request, found: &mut Vec<u32>) {
    found.clear();
    let names = req.params().zip(&req.name_hashes);
    found.extend(names.map(|((name, _), &hash)| {
        t.and_then(|t| t.params.position(name, hash))
            .map_or(UNKNOWN, |i| i as u32)
    }));
}

/// One host of one tenant.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HostProfile {
    pub requests: u64,
    pub user_agents: Vec<(String, u64)>,
    /// Per parameter name, the symbols its values use on any of the host's paths.
    #[serde(with = "pairs")]
    pub param_symbols: BTreeMap<String, [u64; 2]>,
    /// `(method, template)` → profile, shared with snapshot images (copy-on-write).
    #[serde(with = "pairs")]
    pub templates: BTreeMap<(Method, String), Arc<TemplateProfile>>,
}

/// A tenant's profiles in one partition; also the export/import document.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TenantProfiles {
    pub hosts: BTreeMap<String, HostProfile>,
    /// Requests seen, the LRU clock.
    pub clock: u64,
}

/// Maps with tuple keys as `[[key, value], …]` (JSON objects need string keys).
mod pairs {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::BTreeMap;

    pub fn serialize<K: Serialize, V: Serialize, S: Serializer>(
        m: &BTreeMap<K, V>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(m.iter())
    }

    pub fn deserialize<'de, K, V, D>(d: D) -> Result<BTreeMap<K, V>, D::Error>
    where
        K: Deserialize<'de> + Ord,
        V: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        Ok(Vec::<(K, V)>::deserialize(d)?.into_iter().collect())
    }
}

/// `(host, method, template)`.
pub type TemplateId = (String, Method, String);

/// One reason a request does not fit its profile. Judged without explanation (the weights
/// decide whether a request is reported), `param`, `expected` and `came` stay empty; a
/// reported request is judged again with them.
#[derive(Clone, Debug, PartialEq)]
pub struct Anomaly {
    /// The parameter, when the reason is about one.
    pub param: Option<String>,
    pub what: &'static str,
    pub weight: f64,
    pub expected: String,
    pub came: String,
}

/// A judged request at or above the threshold.
#[derive(Clone, Debug)]
pub struct Verdict {
    pub score: f64,
    pub anomalies: Vec<Anomaly>,
    pub request: Request,
}

impl TenantProfiles {
    pub fn template_count(&self) -> usize {
        self.hosts.values().map(|h| h.templates.len()).sum()
    }

    /// Adds what `other` learned: counts add, sets unite (exports of several partitions).
    pub fn merge(&mut self, other: &TenantProfiles) {
        self.clock = self.clock.max(other.clock);
        for (name, h) in &other.hosts {
            let mine = self.hosts.entry(name.clone()).or_default();
            mine.requests += h.requests;
            for (name, m) in &h.param_symbols {
                let slot = mine.param_symbols.entry(name.clone()).or_default();
                slot[0] |= m[0];
                slot[1] |= m[1];
            }
            for (ua, c) in &h.user_agents {
                count_label(&mut mine.user_agents, ua, *c);
            }
            for (key, t) in &h.templates {
                let slot = mine.templates.entry(key.clone()).or_default();
                Arc::make_mut(slot).merge(t);
            }
        }
    }

    /// Starts matching templates over: each learns afresh from its next requests (a host's
    /// templates all, when only `host` is given; then the host itself forgets its paths
    /// too, as does every host when no filter is given). Returns the templates reset.
    pub fn reset(
        &mut self,
        host: Option<&str>,
        method: Option<Method>,
        template: Option<&str>,
    ) -> Vec<TemplateId> {
        let whole_hosts = method.is_none() && template.is_none();
        let mut gone = Vec::new();
        for (name, h) in &mut self.hosts {
            if host.is_some_and(|x| x != name) {
                continue;
            }
            for ((m, t), p) in &mut h.templates {
                if method.is_none_or(|x| x == *m) && template.is_none_or(|x| x == t) {
                    *p = Arc::default();
                    gone.push((name.clone(), *m, t.clone()));
                }
            }
            if whole_hosts {
                h.templates.clear();
                h.param_symbols.clear();
                h.requests = 0;
            }
        }
        self.hosts
            .retain(|_, h| !h.templates.is_empty() || h.requests > 0);
        gone
    }

    /// Bytes this tenant's profiles take (approximate: structs and heap strings).
    pub fn memory_bytes(&self) -> usize {
        use std::mem::size_of;
        self.hosts
            .iter()
            .map(|(name, h)| {
                name.capacity()
                    + size_of::<HostProfile>()
                    + h.templates
                        .iter()
                        .map(|((_, t), p)| {
                            t.capacity()
                                + size_of::<(Method, String)>()
                                + size_of::<TemplateProfile>()
                                + p.params.heap_bytes()
                                + p.content_types
                                    .iter()
                                    .map(|(c, _)| size_of::<(String, u64)>() + c.capacity())
                                    .sum::<usize>()
                                + p.combos.as_ref().map_or(0, |c| c.capacity() * 16)
                        })
                        .sum::<usize>()
            })
            .sum()
    }
}

impl TemplateProfile {
    fn merge(&mut self, other: &TemplateProfile) {
        self.requests += other.requests;
        self.last_used = self.last_used.max(other.last_used);
        self.params_refused += other.params_refused;
        for (name, p) in &other.params {
            self.params.entry(name).merge(p);
        }
        for (ct, c) in &other.content_types {
            count_label(&mut self.content_types, ct, *c);
        }
        match (&mut self.combos, &other.combos) {
            (Some(mine), Some(theirs)) => {
                for (h, c) in theirs {
                    match mine.iter_mut().find(|(x, _)| x == h) {
                        Some((_, n)) => *n += c,
                        None => mine.push((*h, *c)),
                    }
                }
                if mine.len() > MAX_COMBOS {
                    self.combos = None;
                }
            }
            _ => self.combos = None,
        }
    }

    /// Learns `req`, whose parameters are at `found` ([`resolve`]d against this template).
    fn learn(&mut self, req: &Request, found: &[u32], max_params: usize, clock: u64) {
        self.requests += 1;
        self.last_used = clock;
        if let Some(ct) = req.content_type() {
            count_label(&mut self.content_types, ct, 1);
        }
        // Known parameters by position first; then new names in request order (an insert
        // moves the positions after it, and a name sent twice finds its first insert).
        let params = || req.params().zip(&req.shapes).zip(found);
        for (((_, value), shape), &i) in params() {
            if let Some((_, p)) = self.params.items.get_mut(i as usize) {
                p.learn(value, shape);
            }
        }
        for (((name, value), shape), _) in params().filter(|(_, &i)| i == UNKNOWN) {
            match self.params.find(name) {
                Ok(i) => self.params.items[i].1.learn(value, shape),
                Err(i) if self.params.len() < max_params => {
                    let mut p = ParamProfile::default();
                    p.learn(value, shape);
                    self.params.insert(i, name, p);
                }
                Err(_) => self.params_refused += 1,
            }
        }
        if let Some(combos) = &mut self.combos {
            match combos.iter().position(|(h, _)| *h == req.combo) {
                Some(i) => combos[i].1 += 1,
                None if combos.len() < MAX_COMBOS => combos.push((req.combo, 1)),
                None => self.combos = None,
            }
        }
    }

    /// Every way `req` (its parameters at `found`) departs from this template; `present`
    /// is scratch space.
    #[allow(clippy::too_many_arguments)]
    fn judge(
        &self,
        host_symbols: &BTreeMap<String, [u64; 2]>,
        req: &Request,
        found: &[u32],
        present: &mut Vec<u64>,
        explain: bool,
        dev: &mut Vec<Deviation>,
        out: &mut Vec<Anomaly>,
    ) {
        let k = strength(self.requests);
        present.clear();
        present.resize(self.params.len().div_ceil(64), 0);
        let params = req.params().zip(&req.shapes).zip(found);
        for (((name, value), shape), &i) in params {
            match self.params.items.get(i as usize) {
                Some((_, p)) => {
                    present[i as usize / 64] |= 1 << (i % 64);
                    dev.clear();
                    // The host's other paths only matter for symbols new to this one.
                    let elsewhere = if shape.symbols & !p.symbol_mask() != 0 {
                        host_symbols
                            .get(name)
                            .map_or(0, |m| u128::from(m[0]) | u128::from(m[1]) << 64)
                    } else {
                        0
                    };
                    p.judge(value, shape, elsewhere, explain, dev);
                    for d in dev.drain(..) {
                        out.push(Anomaly {
                            param: explain.then(|| name.to_owned()),
                            what: d.what,
                            weight: d.weight,
                            expected: if explain { p.expected() } else { String::new() },
                            came: d.came,
                        });
                    }
                }
                // A template at its cap refused names it never profiled: not evidence.
                None if self.params_refused == 0 => out.push(Anomaly {
                    param: explain.then(|| name.to_owned()),
                    what: "unseen_param",
                    weight: 0.7 * k,
                    expected: text(explain, || format!("parameters {}", self.names())),
                    came: text(explain, || "a parameter never seen on this path".into()),
                }),
                None => {}
            }
        }
        let mut missing = 0;
        for (i, (name, p)) in self.params.items.iter().enumerate() {
            // Always present (allowing one in a thousand for merges and learned fixes).
            if p.n * 1000 >= self.requests * 999 && present[i / 64] & (1 << (i % 64)) == 0 {
                missing += 1;
                if missing <= 4 {
                    out.push(Anomaly {
                        param: explain.then(|| name.clone()),
                        what: "missing_param",
                        weight: 0.65 * k,
                        expected: text(explain, || {
                            format!("present in all {} requests", thousands(self.requests))
                        }),
                        came: text(explain, || "absent".into()),
                    });
                }
            }
        }
        if let Some(combos) = &self.combos {
            let all_known = found.iter().all(|&i| i != UNKNOWN);
            if all_known && missing == 0 && !combos.iter().any(|(h, _)| *h == req.combo) {
                out.push(Anomaly {
                    param: None,
                    what: "combination",
                    weight: 0.4 * k,
                    expected: text(explain, || {
                        format!("one of {} combinations of parameters", combos.len())
                    }),
                    came: text(explain, || "a combination never seen".into()),
                });
            }
        }
        if let Some(ct) = req.content_type() {
            if !self.content_types.iter().any(|(x, _)| x == ct) {
                out.push(Anomaly {
                    param: None,
                    what: "content_type",
                    weight: 0.4 * k,
                    expected: text(explain, || {
                        let known: Vec<&str> =
                            self.content_types.iter().map(|(x, _)| x.as_str()).collect();
                        if known.is_empty() {
                            "no body".into()
                        } else {
                            known.join(", ")
                        }
                    }),
                    came: text(explain, || ct.to_owned()),
                });
            }
        }
    }

    fn names(&self) -> String {
        let names: Vec<&str> = self.params.keys().take(8).map(String::as_str).collect();
        let more = self.params.len().saturating_sub(8);
        if more > 0 {
            format!("{} and {more} more", names.join(", "))
        } else if names.is_empty() {
            "none".into()
        } else {
            names.join(", ")
        }
    }
}

/// `f()` when explaining, else nothing (no allocation).
fn text(explain: bool, f: impl FnOnce() -> String) -> String {
    if explain {
        f()
    } else {
        String::new()
    }
}

fn count_label(labels: &mut Vec<(String, u64)>, label: &str, c: u64) {
    match labels.iter().position(|(x, _)| x == label) {
        Some(i) => labels[i].1 += c,
        None if labels.len() < MAX_LABELS => labels.push((label.to_owned(), c)),
        None => {}
    }
}

/// The noisy-or of independent pieces of evidence.
fn combine(anomalies: &[Anomaly]) -> f64 {
    1.0 - anomalies
        .iter()
        .map(|a| 1.0 - a.weight.clamp(0.0, 1.0))
        .product::<f64>()
}

/// Every tenant's profiles in one partition.
#[derive(Clone, Debug, Default)]
pub struct WebProfiles {
    tenants: BTreeMap<TenantId, TenantProfiles>,
    /// Modes tenants set through the API, over the configured ones (`[engine.web_profiles]`).
    modes: BTreeMap<TenantId, Mode>,
    /// Requests not profiled: their host was over `max_hosts_per_tenant`.
    pub hosts_refused: u64,
    /// The request being judged, refilled for each event (its buffers are reused), and
    /// the other buffers judging reuses.
    scratch: Request,
    work: Work,
}

/// Buffers reused from request to request.
#[derive(Clone, Debug, Default)]
struct Work {
    /// Each request parameter's position in its template ([`resolve`]).
    found: Vec<u32>,
    /// The template parameters the request holds (bits by position).
    present: Vec<u64>,
    deviations: Vec<Deviation>,
    anomalies: Vec<Anomaly>,
}

impl WebProfiles {
    /// Judges (mode `on`) and learns the request `ev`; a verdict when it is anomalous.
    pub fn on_event(&mut self, cfg: &WebProfilesConfig, ev: &Event) -> Option<Verdict> {
        let mode = self.mode(cfg, &ev.tenant);
        if mode == Mode::Off {
            return None;
        }
        let (req, work) = (&mut self.scratch, &mut self.work);
        if !req.read(ev) {
            return None;
        }
        let tp = match self.tenants.get_mut(&ev.tenant) {
            Some(tp) => tp,
            None => self.tenants.entry(ev.tenant.clone()).or_default(),
        };
        let host = tp.hosts.get(&req.host);
        if host.is_none() && tp.hosts.len() >= cfg.max_hosts_per_tenant {
            self.hosts_refused += 1;
            return None;
        }
        tp.clock += 1;
        // One lookup of the template serves finding the parameters and judging.
        let template = host.and_then(|h| h.templates.get(&req.key)).map(|t| &**t);
        resolve(template, req, &mut work.found);
        work.anomalies.clear();
        if mode == Mode::On {
            judge(host, template, cfg, req, work, false);
        }
        let score = combine(&work.anomalies);
        if score < cfg.threshold {
            learn(tp, cfg, req, &work.found);
            return None;
        }
        // Reported: judged again, this time with the words a person reads.
        work.anomalies.clear();
        judge(host, template, cfg, req, work, true);
        if let Some(h) = tp.hosts.get_mut(&req.host) {
            h.requests += 1;
        }
        Some(Verdict {
            score,
            anomalies: std::mem::take(&mut work.anomalies),
            request: req.clone(),
        })
    }

    pub fn tenant(&self, tenant: &TenantId) -> Option<&TenantProfiles> {
        self.tenants.get(tenant)
    }

    /// The tenant's mode: its own when it set one, else the configured one; `off` for every
    /// tenant while profiles are disabled in the configuration.
    pub fn mode(&self, cfg: &WebProfilesConfig, tenant: &TenantId) -> Mode {
        if !cfg.enabled {
            return Mode::Off;
        }
        // No map lookup on the hot path while no tenant set a mode.
        if self.modes.is_empty() {
            return cfg.mode_for(tenant);
        }
        self.modes
            .get(tenant)
            .copied()
            .unwrap_or_else(|| cfg.mode_for(tenant))
    }

    /// Sets the tenant's own mode (what it learned stays, whatever the mode).
    pub fn set_mode(&mut self, tenant: &TenantId, mode: Mode) {
        self.modes.insert(tenant.clone(), mode);
    }

    /// Tenants' own modes, in tenant order (the snapshot section after the profiles).
    pub fn modes_section(&self) -> Vec<(TenantId, Mode)> {
        self.modes.iter().map(|(t, m)| (t.clone(), *m)).collect()
    }

    /// Replaces the hosts `profiles` names with its profiles.
    pub fn import(
        &mut self,
        cfg: &WebProfilesConfig,
        tenant: &TenantId,
        profiles: &TenantProfiles,
    ) {
        let tp = self.tenants.entry(tenant.clone()).or_default();
        tp.clock = tp.clock.max(profiles.clock);
        for (name, h) in &profiles.hosts {
            tp.hosts.insert(name.clone(), h.clone());
        }
        evict(tp, cfg.max_templates_per_tenant);
    }

    pub fn reset(
        &mut self,
        tenant: &TenantId,
        host: Option<&str>,
        method: Option<Method>,
        template: Option<&str>,
    ) -> Vec<TemplateId> {
        let Some(tp) = self.tenants.get_mut(tenant) else {
            return Vec::new();
        };
        let gone = tp.reset(host, method, template);
        if tp.hosts.is_empty() {
            self.tenants.remove(tenant);
        }
        gone
    }

    /// A person said the finding with this evidence was a false positive: its request is
    /// learned as normal (path, method, parameters, media type, user agent).
    pub fn learn_finding(
        &mut self,
        cfg: &WebProfilesConfig,
        tenant: &TenantId,
        evidence: &Map<String, Value>,
    ) -> bool {
        let Some(req) = request_from_evidence(evidence) else {
            return false;
        };
        let tp = self.tenants.entry(tenant.clone()).or_default();
        tp.clock += 1;
        let template = tp
            .hosts
            .get(&req.host)
            .and_then(|h| h.templates.get(&req.key));
        let mut found = Vec::new();
        resolve(template.map(|t| &**t), &req, &mut found);
        learn(tp, cfg, &req, &found);
        true
    }

    /// Every tenant's profiles, in tenant order (the snapshot section).
    pub fn to_section(&self) -> Vec<(&TenantId, &TenantProfiles)> {
        self.tenants.iter().collect()
    }

    pub fn from_sections(
        section: Vec<(TenantId, TenantProfiles)>,
        modes: Vec<(TenantId, Mode)>,
    ) -> Self {
        Self {
            tenants: section.into_iter().collect(),
            modes: modes.into_iter().collect(),
            ..Self::default()
        }
    }

    pub fn is_empty(&self) -> bool {
        self.tenants.is_empty() && self.modes.is_empty()
    }
}

/// Every way `req` departs from its host's profile and its template's (`template`, when the
/// host has one for it), into `work.anomalies` (described for people when `explain`).
fn judge(
    host: Option<&HostProfile>,
    template: Option<&TemplateProfile>,
    cfg: &WebProfilesConfig,
    req: &Request,
    work: &mut Work,
    explain: bool,
) {
    let out = &mut work.anomalies;
    let Some(host) = host else {
        return;
    };
    let method = req.method();
    match template {
        Some(t) if t.requests >= cfg.learn_requests => t.judge(
            &host.param_symbols,
            req,
            &work.found,
            &mut work.present,
            explain,
            &mut work.deviations,
            out,
        ),
        Some(_) => {}
        None if host.requests >= cfg.learn_requests => {
            let k = strength(host.requests);
            let other = host.templates.keys().find(|(_, t)| t == req.template());
            let (what, weight, expected) = match other {
                Some((m, _)) => (
                    "unseen_method",
                    0.65,
                    text(explain, || {
                        format!("{} (not {})", m.as_str(), method.as_str())
                    }),
                ),
                None => (
                    "unseen_path",
                    0.75,
                    text(explain, || {
                        format!("one of {} paths of this host", host.templates.len())
                    }),
                ),
            };
            out.push(Anomaly {
                param: None,
                what,
                weight: weight * k,
                expected,
                came: text(explain, || {
                    format!("{} {}", method.as_str(), req.template())
                }),
            });
        }
        None => {}
    }
    if host.requests >= cfg.learn_requests {
        if let Some(ua) = req.ua_family() {
            if !host.user_agents.iter().any(|(x, _)| x == ua) {
                out.push(Anomaly {
                    param: None,
                    what: "user_agent",
                    weight: 0.3 * strength(host.requests),
                    expected: text(explain, || {
                        let known: Vec<&str> =
                            host.user_agents.iter().map(|(x, _)| x.as_str()).collect();
                        known.join(", ")
                    }),
                    came: text(explain, || ua.to_owned()),
                });
            }
        }
    }
}

/// Learns `req`, its parameters at `found` in its template ([`resolve`]).
fn learn(tp: &mut TenantProfiles, cfg: &WebProfilesConfig, req: &Request, found: &[u32]) {
    let clock = tp.clock;
    // Look up before inserting: the hot path (a known host and template) allocates nothing.
    let host = match tp.hosts.get_mut(&req.host) {
        Some(host) => host,
        None => tp.hosts.entry(req.host.clone()).or_default(),
    };
    host.requests += 1;
    if let Some(ua) = req.ua_family() {
        count_label(&mut host.user_agents, ua, 1);
    }
    let HostProfile {
        param_symbols,
        templates,
        ..
    } = host;
    let new = match templates.get_mut(&req.key) {
        Some(t) => {
            learn_symbols(param_symbols, Some(t), req, found);
            Arc::make_mut(t).learn(req, found, cfg.max_params_per_template, clock);
            false
        }
        None => {
            learn_symbols(param_symbols, None, req, found);
            let mut t = TemplateProfile::default();
            t.learn(req, found, cfg.max_params_per_template, clock);
            templates.insert(req.key.clone(), Arc::new(t));
            true
        }
    };
    if new {
        evict(tp, cfg.max_templates_per_tenant);
    }
}

/// Adds the symbols of `req`'s values to the host's per-name sets.
fn learn_symbols(
    param_symbols: &mut BTreeMap<String, [u64; 2]>,
    template: Option<&TemplateProfile>,
    req: &Request,
    found: &[u32],
) {
    for (((name, _), shape), &i) in req.params().zip(&req.shapes).zip(found) {
        let symbols = shape.symbols;
        // The host holds every symbol its templates' parameters of that name learned: one
        // this template's parameter knows already needs no lookup.
        let known = template
            .and_then(|t| t.params.items.get(i as usize))
            .map_or(0, |(_, p)| p.symbol_mask());
        if symbols & !known == 0 {
            continue;
        }
        let room = param_symbols.len() < MAX_HOST_PARAMS;
        match param_symbols.get_mut(name) {
            Some(m) => {
                m[0] |= symbols as u64;
                m[1] |= (symbols >> 64) as u64;
            }
            None if room => {
                let m = [symbols as u64, (symbols >> 64) as u64];
                param_symbols.insert(name.to_owned(), m);
            }
            None => {}
        }
    }
}

/// Drops least recently used templates until the tenant is within `max`.
fn evict(tp: &mut TenantProfiles, max: usize) {
    while tp.template_count() > max {
        let oldest = tp
            .hosts
            .iter()
            .flat_map(|(h, p)| p.templates.iter().map(move |(k, t)| (t.last_used, h, k)))
            .min_by_key(|(used, _, _)| *used)
            .map(|(_, h, k)| (h.clone(), k.clone()));
        let Some((h, k)) = oldest else {
            return;
        };
        if let Some(host) = tp.hosts.get_mut(&h) {
            host.templates.remove(&k);
        }
    }
}

/// The finding for a verdict (`id` from the event's offset, as every finding's).
pub fn finding(id: String, ev: &Event, v: &Verdict) -> Finding {
    let severity = if v.score >= 0.9 {
        Severity::High
    } else if v.score >= 0.75 {
        Severity::Medium
    } else {
        Severity::Low
    };
    let req = &v.request;
    let method = req.method().as_str();
    let mut ranked: Vec<&Anomaly> = v.anomalies.iter().collect();
    ranked.sort_by(|a, b| b.weight.total_cmp(&a.weight));
    let lines: Vec<String> = ranked
        .iter()
        .take(3)
        .map(|a| match &a.param {
            Some(p) => format!("parameter `{p}` expected {}; came {}", a.expected, a.came),
            None => format!(
                "{} expected {}; came {}",
                a.what.replace('_', " "),
                a.expected,
                a.came
            ),
        })
        .collect();
    let text = format!(
        "{method} {} on {} departs from its learned profile (score {:.2}): {}",
        req.path,
        if req.host.is_empty() {
            "(no host)"
        } else {
            &req.host
        },
        v.score,
        lines.join("; ")
    );
    let mut explanation = Explanation::text(text);
    let total: f64 = v
        .anomalies
        .iter()
        .map(|a| a.weight)
        .sum::<f64>()
        .max(f64::MIN_POSITIVE);
    for a in &v.anomalies {
        let key = a.param.clone().unwrap_or_else(|| a.what.to_owned());
        *explanation.contributions.entry(key).or_insert(0.0) += round4(a.weight / total);
    }
    let mut evidence = Map::new();
    evidence.insert("host".into(), json!(req.host));
    evidence.insert("method".into(), json!(method));
    evidence.insert("path".into(), json!(req.path));
    evidence.insert("template".into(), json!(req.template()));
    evidence.insert("score".into(), json!(round4(v.score)));
    let anomalies: Vec<Value> = ranked
        .iter()
        .map(|a| {
            json!({"param": a.param, "what": a.what, "weight": round4(a.weight),
                   "expected": a.expected, "came": a.came})
        })
        .collect();
    evidence.insert("anomalies".into(), Value::Array(anomalies));
    let params: Vec<Value> = req
        .params()
        .map(|(n, val)| {
            let text = String::from_utf8_lossy(val);
            json!([n, request::cut_str(&text, EVIDENCE_VALUE)])
        })
        .collect();
    evidence.insert(
        "request".into(),
        json!({"params": params, "content_type": req.content_type(), "user_agent": req.ua_family()}),
    );
    for attr in ["src_ip", "user", "user_agent"] {
        if let Some(v) = ev.attr(attr) {
            evidence
                .entry(attr.to_owned())
                .or_insert_with(|| json!(v.to_text()));
        }
    }
    Finding {
        id,
        tenant: ev.tenant.clone(),
        ts: ev.ts,
        entity: ev.entity.clone(),
        kind: KIND.to_owned(),
        detector: Detector::Profile,
        severity,
        score: round4(v.score),
        explanation,
        evidence,
        incident: None,
    }
}

/// The request a finding's evidence describes (see [`finding`]).
fn request_from_evidence(e: &Map<String, Value>) -> Option<Request> {
    let s = |k: &str| e.get(k).and_then(Value::as_str);
    let r = e.get("request")?;
    let params = r
        .get("params")?
        .as_array()?
        .iter()
        .filter_map(|p| Some((p.get(0)?.as_str()?, p.get(1)?.as_str()?.as_bytes())))
        .take(request::MAX_PARAMS);
    let key = (Method::parse(s("method")?), s("template")?.to_owned());
    Some(Request::from_parts(
        s("host")?,
        key,
        s("path").unwrap_or_default(),
        params,
        r.get("content_type").and_then(Value::as_str),
        r.get("user_agent").and_then(Value::as_str),
    ))
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

#[cfg(test)]
mod tests;
