//! Enforcement state: what `block_ip`, `rate_limit` and `quarantine` have put in force, per
//! tenant. Firewalls and bouncers pull the blocklist (`GET /v1/blocklist`), SDKs and proxies
//! pull an entity's verdict (`GET /v1/entities/{entity}/verdict`). Every entry belongs to
//! the action that created it, so undoing the action removes exactly its entry and two
//! actions on the same target do not cancel each other.
//!
//! [`EnforcementState`] is plain data with explicit timestamps (no clock inside);
//! [`Enforcement`] is the cheap-to-clone, thread-safe handle the executors and the server
//! share.

use antibody_core::{TenantId, TimestampMs};
use antibody_respond::cidr::{target_ip, Cidr};
use antibody_respond::{Action, ActionKind, ActionStatus, Mode};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};

/// Entries one tenant may hold in each table; beyond it an apply fails instead of growing
/// memory without bound.
pub const MAX_ENTRIES_PER_TENANT: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnforcementError {
    #[error("`{0}` is not an IP address or CIDR block")]
    BadAddress(String),
    #[error("tenant {tenant} already holds {max} {table} entries")]
    Full {
        tenant: String,
        table: &'static str,
        max: usize,
    },
}

/// What the request path should do with an entity, strongest last.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerdictKind {
    Allow,
    Throttle,
    Block,
}

/// A throttle's allowance: `rate` requests per `per` (`second|minute|hour|day`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RateLimit {
    pub rate: f64,
    pub per: String,
}

/// The answer of `GET /v1/entities/{entity}/verdict`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub verdict: VerdictKind,
    /// When the verdict lapses (ms since the epoch); `None` for allow.
    pub until: Option<TimestampMs>,
    /// The allowance, for throttle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<RateLimit>,
}

impl Verdict {
    pub fn allow() -> Self {
        Self {
            verdict: VerdictKind::Allow,
            until: None,
            limit: None,
        }
    }
}

/// One line of the blocklist, as the JSON form shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BlockEntry {
    /// An IP address (`1.2.3.4`) or CIDR block (`10.0.0.0/24`).
    pub target: String,
    pub expires_at: TimestampMs,
    /// Seconds until it expires, rounded up.
    pub ttl: i64,
    pub action: String,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct BlockRule {
    target: String,
    expires_at: TimestampMs,
    reason: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct VerdictRule {
    verdict: VerdictKind,
    until: TimestampMs,
    limit: Option<RateLimit>,
}

/// A verdict an action puts on an entity until a time.
#[derive(Clone, Debug, PartialEq)]
pub struct VerdictEntry {
    pub entity: String,
    pub verdict: VerdictKind,
    pub until: TimestampMs,
    pub limit: Option<RateLimit>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct TenantTables {
    /// action id → rule
    blocks: BTreeMap<String, BlockRule>,
    /// entity → action id → rule: a verdict query reads only its entity's rules.
    verdicts: BTreeMap<String, BTreeMap<String, VerdictRule>>,
    /// action id → the entity its verdict is on.
    verdict_owners: BTreeMap<String, String>,
}

impl TenantTables {
    fn is_empty(&self) -> bool {
        self.blocks.is_empty() && self.verdict_owners.is_empty()
    }

    fn verdict_rule(&self, action: &str) -> Option<&VerdictRule> {
        let entity = self.verdict_owners.get(action)?;
        self.verdicts.get(entity)?.get(action)
    }

    fn remove_verdict(&mut self, action: &str) -> bool {
        let Some(entity) = self.verdict_owners.remove(action) else {
            return false;
        };
        if let Some(rules) = self.verdicts.get_mut(&entity) {
            rules.remove(action);
            if rules.is_empty() {
                self.verdicts.remove(&entity);
            }
        }
        true
    }
}

/// Everything in force, per tenant. Pure data: every query takes `now`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EnforcementState {
    tenants: BTreeMap<TenantId, TenantTables>,
}

/// `1.2.3.4`, `ip:1.2.3.4`, `[::1]` → the bare address; `10.0.0.0/8` → itself.
pub fn normalize_address(target: &str) -> Result<String, EnforcementError> {
    if let Some(ip) = target_ip(target) {
        return Ok(ip.to_string());
    }
    Cidr::parse(target)
        .map(|c| c.to_string())
        .ok_or_else(|| EnforcementError::BadAddress(target.to_owned()))
}

impl EnforcementState {
    /// Blocks `target` for `action` until `expires_at`; re-applying the same action id
    /// replaces its entry.
    pub fn block(
        &mut self,
        tenant: &TenantId,
        action: &str,
        target: &str,
        expires_at: TimestampMs,
        reason: &str,
    ) -> Result<(), EnforcementError> {
        let target = normalize_address(target)?;
        let tables = self.tenants.entry(tenant.clone()).or_default();
        if tables.blocks.len() >= MAX_ENTRIES_PER_TENANT && !tables.blocks.contains_key(action) {
            return Err(full(tenant, "blocklist"));
        }
        tables.blocks.insert(
            action.to_owned(),
            BlockRule {
                target,
                expires_at,
                reason: reason.to_owned(),
            },
        );
        Ok(())
    }

    /// Puts a verdict on an entity for `action`.
    pub fn set_verdict(
        &mut self,
        tenant: &TenantId,
        action: &str,
        entry: VerdictEntry,
    ) -> Result<(), EnforcementError> {
        let tables = self.tenants.entry(tenant.clone()).or_default();
        let replacing = tables.remove_verdict(action);
        if !replacing && tables.verdict_owners.len() >= MAX_ENTRIES_PER_TENANT {
            return Err(full(tenant, "verdict"));
        }
        let rule = VerdictRule {
            verdict: entry.verdict,
            until: entry.until,
            limit: entry.limit,
        };
        tables
            .verdicts
            .entry(entry.entity.clone())
            .or_default()
            .insert(action.to_owned(), rule);
        tables
            .verdict_owners
            .insert(action.to_owned(), entry.entity);
        Ok(())
    }

    /// Removes whatever `action` put in force; returns whether there was anything.
    pub fn remove(&mut self, tenant: &TenantId, action: &str) -> bool {
        let Some(tables) = self.tenants.get_mut(tenant) else {
            return false;
        };
        let removed = tables.blocks.remove(action).is_some() | tables.remove_verdict(action);
        if tables.is_empty() {
            self.tenants.remove(tenant);
        }
        removed
    }

    /// Whether `action`'s entry is still in force at `now`.
    pub fn holds(&self, tenant: &TenantId, action: &str, now: TimestampMs) -> bool {
        self.tenants.get(tenant).is_some_and(|t| {
            t.blocks.get(action).is_some_and(|b| b.expires_at > now)
                || t.verdict_rule(action).is_some_and(|v| v.until > now)
        })
    }

    /// The tenant's unexpired blocks, one per target (the latest expiry wins), sorted by
    /// target.
    pub fn blocklist(&self, tenant: &TenantId, now: TimestampMs) -> Vec<BlockEntry> {
        let mut by_target: BTreeMap<&str, BlockEntry> = BTreeMap::new();
        let Some(tables) = self.tenants.get(tenant) else {
            return Vec::new();
        };
        for (action, rule) in tables.blocks.iter().filter(|(_, r)| r.expires_at > now) {
            let entry = BlockEntry {
                target: rule.target.clone(),
                expires_at: rule.expires_at,
                ttl: (rule.expires_at - now + 999) / 1000,
                action: action.clone(),
                reason: rule.reason.clone(),
            };
            match by_target.get(rule.target.as_str()) {
                Some(held) if held.expires_at >= entry.expires_at => {}
                _ => {
                    by_target.insert(&rule.target, entry);
                }
            }
        }
        by_target.into_values().collect()
    }

    /// The plain-text blocklist: one IP or CIDR per line, newline-terminated.
    pub fn render_text(&self, tenant: &TenantId, now: TimestampMs) -> String {
        self.blocklist(tenant, now)
            .into_iter()
            .map(|e| e.target + "\n")
            .collect()
    }

    /// The JSON blocklist: `{"entries": [{"target", "expires_at", "ttl", "action", "reason"}]}`.
    pub fn render_json(&self, tenant: &TenantId, now: TimestampMs) -> serde_json::Value {
        serde_json::json!({ "entries": self.blocklist(tenant, now) })
    }

    /// The strongest unexpired verdict on `entity`; among equals, the latest `until`.
    pub fn verdict(&self, tenant: &TenantId, entity: &str, now: TimestampMs) -> Verdict {
        let Some(rules) = self
            .tenants
            .get(tenant)
            .and_then(|t| t.verdicts.get(entity))
        else {
            return Verdict::allow();
        };
        rules
            .values()
            .filter(|v| v.until > now)
            .max_by_key(|v| (v.verdict, v.until))
            .map_or_else(Verdict::allow, |v| Verdict {
                verdict: v.verdict,
                until: Some(v.until),
                limit: v.limit.clone(),
            })
    }

    /// Drops expired entries (the server undoes expired actions; this keeps memory bounded
    /// if an undo never arrives).
    pub fn prune(&mut self, now: TimestampMs) {
        for tables in self.tenants.values_mut() {
            tables.blocks.retain(|_, b| b.expires_at > now);
            let expired: Vec<String> = tables
                .verdicts
                .values()
                .flat_map(|rules| rules.iter().filter(|(_, v)| v.until <= now))
                .map(|(action, _)| action.clone())
                .collect();
            for action in expired {
                tables.remove_verdict(&action);
            }
        }
        self.tenants.retain(|_, t| !t.is_empty());
    }

    /// Rebuilds the state from stored actions at start: every succeeded, non-dry-run
    /// `block_ip`, `rate_limit` or `quarantine` action whose TTL (counted from its result's
    /// time) has not run out at `now`. Returns how many entries it restored.
    pub fn restore<'a>(
        &mut self,
        actions: impl IntoIterator<Item = (&'a TenantId, &'a Action)>,
        now: TimestampMs,
    ) -> usize {
        let mut restored = 0;
        for (tenant, action) in actions {
            if action.status != ActionStatus::Succeeded || action.mode == Mode::DryRun {
                continue;
            }
            let Some(applied_at) = action.result.as_ref().map(|r| r.ts) else {
                continue;
            };
            let until = expiry(applied_at, action.ttl);
            if until <= now {
                continue;
            }
            if self.apply_action(tenant, action, until).unwrap_or(false) {
                restored += 1;
            }
        }
        restored
    }

    /// Puts `action` in force until `until`; `Ok(false)` for kinds that hold no state here.
    pub fn apply_action(
        &mut self,
        tenant: &TenantId,
        action: &Action,
        until: TimestampMs,
    ) -> Result<bool, EnforcementError> {
        match action.kind {
            ActionKind::BlockIp => {
                self.block(tenant, &action.id, &action.target, until, &action.why.text)?;
            }
            ActionKind::RateLimit | ActionKind::Quarantine => {
                self.set_verdict(tenant, &action.id, verdict_entry(action, until))?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// The verdict a `rate_limit` (throttle) or `quarantine` (block) action puts on its target.
pub fn verdict_entry(action: &Action, until: TimestampMs) -> VerdictEntry {
    let throttle = action.kind == ActionKind::RateLimit;
    VerdictEntry {
        entity: action.target.clone(),
        verdict: if throttle {
            VerdictKind::Throttle
        } else {
            VerdictKind::Block
        },
        until,
        limit: throttle.then(|| rate_limit(action)).flatten(),
    }
}

fn rate_limit(action: &Action) -> Option<RateLimit> {
    let rate = action.params.get("rate")?.as_f64()?;
    let per = match action.params.get("per") {
        Some(antibody_respond::ParamValue::Str(p)) => p.clone(),
        _ => "second".to_owned(),
    };
    Some(RateLimit { rate, per })
}

/// When an action applied at `applied_at` with a TTL of `ttl_s` seconds expires.
pub fn expiry(applied_at: TimestampMs, ttl_s: u64) -> TimestampMs {
    let ttl_ms = i64::try_from(ttl_s)
        .unwrap_or(i64::MAX)
        .saturating_mul(1000);
    applied_at.saturating_add(ttl_ms)
}

fn full(tenant: &TenantId, table: &'static str) -> EnforcementError {
    EnforcementError::Full {
        tenant: tenant.to_string(),
        table,
        max: MAX_ENTRIES_PER_TENANT,
    }
}

/// The shared handle: an [`EnforcementState`] behind a read-write lock.
#[derive(Clone, Debug, Default)]
pub struct Enforcement {
    inner: Arc<RwLock<EnforcementState>>,
}

impl Enforcement {
    pub fn new(state: EnforcementState) -> Self {
        Self {
            inner: Arc::new(RwLock::new(state)),
        }
    }

    /// Runs `f` on the state for reading. A poisoned lock still holds consistent data
    /// (every mutation is a single map operation), so it is used rather than propagated.
    pub fn read<T>(&self, f: impl FnOnce(&EnforcementState) -> T) -> T {
        f(&self.inner.read().unwrap_or_else(PoisonError::into_inner))
    }

    pub fn write<T>(&self, f: impl FnOnce(&mut EnforcementState) -> T) -> T {
        f(&mut self.inner.write().unwrap_or_else(PoisonError::into_inner))
    }

    /// A copy of the state, e.g. for a snapshot.
    pub fn snapshot(&self) -> EnforcementState {
        self.read(Clone::clone)
    }

    pub fn blocklist(&self, tenant: &TenantId, now: TimestampMs) -> Vec<BlockEntry> {
        self.read(|s| s.blocklist(tenant, now))
    }

    pub fn render_text(&self, tenant: &TenantId, now: TimestampMs) -> String {
        self.read(|s| s.render_text(tenant, now))
    }

    pub fn render_json(&self, tenant: &TenantId, now: TimestampMs) -> serde_json::Value {
        self.read(|s| s.render_json(tenant, now))
    }

    pub fn verdict(&self, tenant: &TenantId, entity: &str, now: TimestampMs) -> Verdict {
        self.read(|s| s.verdict(tenant, entity, now))
    }

    pub fn holds(&self, tenant: &TenantId, action: &str, now: TimestampMs) -> bool {
        self.read(|s| s.holds(tenant, action, now))
    }

    pub fn remove(&self, tenant: &TenantId, action: &str) -> bool {
        self.write(|s| s.remove(tenant, action))
    }

    pub fn prune(&self, now: TimestampMs) {
        self.write(|s| s.prune(now));
    }

    pub fn restore<'a>(
        &self,
        actions: impl IntoIterator<Item = (&'a TenantId, &'a Action)>,
        now: TimestampMs,
    ) -> usize {
        self.write(|s| s.restore(actions, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use antibody_respond::{ActionResult, ParamValue, Params, Why};

    fn t(name: &str) -> TenantId {
        TenantId::new(name)
    }

    fn action(id: &str, kind: ActionKind, target: &str) -> Action {
        Action {
            id: id.into(),
            incident: "i-1".into(),
            kind,
            target: target.into(),
            params: Params::new(),
            mode: Mode::Auto,
            status: ActionStatus::Succeeded,
            ttl: 60,
            executor: kind.as_str().into(),
            result: Some(ActionResult {
                ok: true,
                message: "ok".into(),
                ts: 1_000,
            }),
            why: Why {
                playbook: "p".into(),
                rule: "r".into(),
                text: "brute force".into(),
                numbers: BTreeMap::new(),
            },
        }
    }

    #[test]
    fn blocklist_excludes_expired_and_renders_both_forms() {
        let mut s = EnforcementState::default();
        s.block(&t("a"), "a-1", "ip:10.0.0.1", 5_000, "ssh")
            .unwrap();
        s.block(&t("a"), "a-2", "192.168.0.0/24", 2_000, "scan")
            .unwrap();
        assert_eq!(s.render_text(&t("a"), 1_000), "10.0.0.1\n192.168.0.0/24\n");
        assert_eq!(s.render_text(&t("a"), 2_000), "10.0.0.1\n");
        let json = s.render_json(&t("a"), 1_500);
        assert_eq!(json["entries"][0]["target"], "10.0.0.1");
        assert_eq!(json["entries"][0]["ttl"], 4);
        assert_eq!(json["entries"][0]["action"], "a-1");
        assert_eq!(json["entries"][1]["ttl"], 1);
        assert_eq!(s.render_text(&t("a"), 5_000), "");
        assert_eq!(
            s.block(&t("a"), "a-3", "agent:x", 9, ""),
            Err(EnforcementError::BadAddress("agent:x".into()))
        );
    }

    #[test]
    fn tenants_are_isolated() {
        let mut s = EnforcementState::default();
        s.block(&t("a"), "a-1", "1.2.3.4", 5_000, "").unwrap();
        assert!(s.blocklist(&t("b"), 0).is_empty());
        assert!(!s.remove(&t("b"), "a-1"));
        assert_eq!(s.blocklist(&t("a"), 0).len(), 1);
        let q = action("a-9", ActionKind::Quarantine, "agent:x");
        s.apply_action(&t("a"), &q, 5_000).unwrap();
        assert_eq!(s.verdict(&t("b"), "agent:x", 0), Verdict::allow());
        assert_eq!(s.verdict(&t("a"), "agent:x", 0).verdict, VerdictKind::Block);
    }

    #[test]
    fn one_target_two_actions_survives_one_undo() {
        let mut s = EnforcementState::default();
        s.block(&t("a"), "a-1", "1.2.3.4", 5_000, "first").unwrap();
        s.block(&t("a"), "a-2", "1.2.3.4", 9_000, "second").unwrap();
        let list = s.blocklist(&t("a"), 0);
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].action, "a-2");
        assert!(s.remove(&t("a"), "a-2"));
        assert_eq!(s.blocklist(&t("a"), 0)[0].action, "a-1");
        assert!(s.remove(&t("a"), "a-1"));
        assert!(!s.remove(&t("a"), "a-1"));
        assert_eq!(s, EnforcementState::default());
    }

    #[test]
    fn verdict_picks_the_strongest_unexpired() {
        let mut s = EnforcementState::default();
        let mut rl = action("a-1", ActionKind::RateLimit, "agent:x");
        rl.params.insert("rate".into(), ParamValue::Int(10));
        rl.params
            .insert("per".into(), ParamValue::Str("minute".into()));
        s.apply_action(&t("a"), &rl, 10_000).unwrap();
        s.apply_action(
            &t("a"),
            &action("a-2", ActionKind::Quarantine, "agent:x"),
            4_000,
        )
        .unwrap();
        assert_eq!(
            s.verdict(&t("a"), "agent:x", 1_000),
            Verdict {
                verdict: VerdictKind::Block,
                until: Some(4_000),
                limit: None
            }
        );
        let v = s.verdict(&t("a"), "agent:x", 4_000);
        assert_eq!(v.verdict, VerdictKind::Throttle);
        assert_eq!(
            v.limit,
            Some(RateLimit {
                rate: 10.0,
                per: "minute".into()
            })
        );
        assert_eq!(s.verdict(&t("a"), "agent:x", 10_000), Verdict::allow());
        assert_eq!(s.verdict(&t("a"), "agent:other", 1_000), Verdict::allow());
        assert!(s.holds(&t("a"), "a-1", 9_999));
        assert!(!s.holds(&t("a"), "a-1", 10_000));
        assert_eq!(
            serde_json::to_value(Verdict::allow()).unwrap(),
            serde_json::json!({"verdict": "allow", "until": null})
        );
    }

    #[test]
    fn restore_keeps_only_applied_unexpired_state() {
        let applied = action("a-1", ActionKind::BlockIp, "1.2.3.4");
        let mut failed = action("a-2", ActionKind::BlockIp, "5.6.7.8");
        failed.status = ActionStatus::Failed;
        let mut dry = action("a-3", ActionKind::Quarantine, "agent:x");
        dry.mode = Mode::DryRun;
        let mut old = action("a-4", ActionKind::Quarantine, "agent:y");
        old.ttl = 1;
        let quarantine = action("a-5", ActionKind::Quarantine, "agent:z");
        let notify = action("a-6", ActionKind::Notify, "ops");
        let tenant = t("a");
        let all = [&applied, &failed, &dry, &old, &quarantine, &notify];
        let e = Enforcement::default();
        assert_eq!(e.restore(all.iter().map(|a| (&tenant, *a)), 30_000), 2);
        assert_eq!(e.render_text(&tenant, 30_000), "1.2.3.4\n");
        assert_eq!(e.blocklist(&tenant, 30_000)[0].expires_at, 61_000);
        assert_eq!(
            e.verdict(&tenant, "agent:z", 30_000).verdict,
            VerdictKind::Block
        );
        assert_eq!(e.verdict(&tenant, "agent:y", 30_000), Verdict::allow());
    }

    #[test]
    fn prune_and_caps_bound_memory() {
        let mut s = EnforcementState::default();
        s.block(&t("a"), "a-1", "1.2.3.4", 5_000, "").unwrap();
        let q = action("a-2", ActionKind::Quarantine, "agent:x");
        s.apply_action(&t("a"), &q, 6_000).unwrap();
        s.apply_action(
            &t("a"),
            &action("a-3", ActionKind::Quarantine, "agent:y"),
            9_000,
        )
        .unwrap();
        s.prune(6_000);
        assert!(s.holds(&t("a"), "a-3", 6_000));
        s.prune(9_000);
        assert_eq!(s, EnforcementState::default());
        for i in 0..MAX_ENTRIES_PER_TENANT {
            s.block(&t("a"), &format!("a-{i}"), "1.2.3.4", 5_000, "")
                .unwrap();
        }
        assert!(matches!(
            s.block(&t("a"), "a-new", "1.2.3.4", 5_000, ""),
            Err(EnforcementError::Full { .. })
        ));
        s.block(&t("a"), "a-0", "1.2.3.5", 5_000, "").unwrap();
    }

    #[test]
    fn reapplying_an_action_moves_its_verdict() {
        let mut s = EnforcementState::default();
        s.apply_action(
            &t("a"),
            &action("a-1", ActionKind::Quarantine, "agent:x"),
            5_000,
        )
        .unwrap();
        s.apply_action(
            &t("a"),
            &action("a-1", ActionKind::Quarantine, "agent:y"),
            5_000,
        )
        .unwrap();
        assert_eq!(s.verdict(&t("a"), "agent:x", 0), Verdict::allow());
        assert_eq!(s.verdict(&t("a"), "agent:y", 0).verdict, VerdictKind::Block);
        assert!(s.remove(&t("a"), "a-1"));
        assert_eq!(s, EnforcementState::default());
    }

    #[test]
    fn serde_round_trip() {
        let mut s = EnforcementState::default();
        s.block(&t("a"), "a-1", "::1", 5_000, "x").unwrap();
        s.apply_action(
            &t("a"),
            &action("a-2", ActionKind::Quarantine, "agent:x"),
            5_000,
        )
        .unwrap();
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<EnforcementState>(&json).unwrap(), s);
    }
}
