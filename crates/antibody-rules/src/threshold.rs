//! Threshold rules: sliding windows per key (tenant + group value). A counting rule keeps at
//! most `count` timestamps per key, a distinct rule at most `count` values; each rule tracks
//! at most `max_keys` keys and evicts the least recently seen when full. After firing, a key
//! stays quiet for one window (cooldown), so a flood yields a few findings, not millions.

use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// Evidence sample of distinct values: enough to act on, small enough to store.
const MAX_SAMPLE_VALUES: usize = 20;

#[derive(Debug)]
pub(crate) struct ThresholdRule {
    pub rule: u32,
    pub rule_id: Arc<str>,
    pub group_by: String,
    pub distinct: Option<String>,
    pub count: usize,
    pub window_ms: i64,
    pub max_keys: usize,
    /// What is counted, for explanations ("failed logins").
    pub label: String,
}

/// What a window reported when it crossed the threshold.
#[derive(Debug, PartialEq)]
pub(crate) struct Fired {
    pub count: usize,
    /// A sorted sample of the distinct values (distinct rules only).
    pub values: Vec<String>,
}

/// The windows of one rule, keyed by `tenant \x1f group`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct RuleWindows {
    pub rule_id: Arc<str>,
    /// Behind `Arc` so a checkpoint image can share the windows and the engine copies one
    /// only when it changes it while an image holds it (copy-on-write).
    keys: HashMap<Box<str>, Arc<KeyWindow>>,
}

/// Every field is always serialised: the engine snapshots with postcard, which is not
/// self-describing and cannot skip fields.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct KeyWindow {
    /// Newest event time seen for the key: the window's right edge.
    last_seen: i64,
    cooldown_until: i64,
    // No `skip_serializing_if`: engine snapshots use a non-self-describing binary format.
    times: VecDeque<i64>,
    values: Vec<(Box<str>, i64)>,
}

impl RuleWindows {
    pub(crate) fn new(rule_id: Arc<str>) -> Self {
        Self {
            rule_id,
            keys: HashMap::new(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    /// Records one selected event; `value` is the distinct attribute's text for distinct
    /// rules. Returns `Some` when the key crosses the threshold outside its cooldown.
    pub(crate) fn observe(
        &mut self,
        rule: &ThresholdRule,
        key: &str,
        value: Option<&str>,
        ts: i64,
    ) -> Option<Fired> {
        if !self.keys.contains_key(key) {
            if self.keys.len() >= rule.max_keys {
                self.evict(rule.max_keys);
            }
            let fresh = KeyWindow {
                last_seen: ts,
                cooldown_until: i64::MIN,
                times: VecDeque::new(),
                values: Vec::new(),
            };
            self.keys.insert(key.into(), Arc::new(fresh));
        }
        Arc::make_mut(self.keys.get_mut(key)?).record(rule, value, ts)
    }

    /// Drops keys whose window ended and whose cooldown is over.
    pub(crate) fn expire(&mut self, window_ms: i64, now_ms: i64) {
        let horizon = now_ms.saturating_sub(window_ms);
        self.keys
            .retain(|_, w| w.last_seen > horizon || w.cooldown_until > now_ms);
    }

    /// Evicts a tenth of the keys (at least one) in one pass, so a key spray costs amortised
    /// O(1) per new key instead of a scan per insert. They come from the tenant holding the
    /// most keys, least recently seen first: one tenant spraying source addresses must not
    /// push other tenants' windows out (that would blind their brute-force rules).
    fn evict(&mut self, max_keys: usize) {
        let Some(heaviest) = self.heaviest_tenant() else {
            return;
        };
        let mut seen: Vec<i64> = self
            .keys
            .iter()
            .filter(|(k, _)| tenant_of(k) == heaviest)
            .map(|(_, w)| w.last_seen)
            .collect();
        let n = (max_keys / 10).clamp(1, seen.len());
        let (_, cutoff, _) = seen.select_nth_unstable(n - 1);
        let cutoff = *cutoff;
        let below = seen.iter().filter(|&&t| t < cutoff).count();
        let mut ties = n - below;
        self.keys.retain(|k, w| {
            if tenant_of(k) != heaviest || w.last_seen > cutoff {
                true
            } else if w.last_seen < cutoff {
                false
            } else if ties > 0 {
                ties -= 1;
                false
            } else {
                true
            }
        });
    }

    fn heaviest_tenant(&self) -> Option<String> {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for k in self.keys.keys() {
            *counts.entry(tenant_of(k)).or_default() += 1;
        }
        counts
            .into_iter()
            .max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(a.0)))
            .map(|(t, _)| t.to_owned())
    }
}

/// The tenant part of a window key (`<tenant>\u{1f}<group>`, see `RuleSet::eval_threshold`).
fn tenant_of(key: &str) -> &str {
    key.split_once('\u{1f}').map_or("", |(t, _)| t)
}

impl KeyWindow {
    fn record(&mut self, rule: &ThresholdRule, value: Option<&str>, ts: i64) -> Option<Fired> {
        self.last_seen = self.last_seen.max(ts);
        let horizon = self.last_seen.saturating_sub(rule.window_ms);
        if ts <= horizon {
            return None; // arrived after its window closed
        }
        let n = match value {
            None => self.push_time(ts, horizon, rule.count),
            Some(v) => self.push_value(v, ts, horizon, rule.count),
        };
        if n < rule.count || self.last_seen < self.cooldown_until {
            return None;
        }
        self.cooldown_until = self.last_seen.saturating_add(rule.window_ms);
        Some(Fired {
            count: n,
            values: if value.is_some() {
                self.sample()
            } else {
                Vec::new()
            },
        })
    }

    fn push_time(&mut self, ts: i64, horizon: i64, cap: usize) -> usize {
        while self.times.front().is_some_and(|&t| t <= horizon) {
            self.times.pop_front();
        }
        let pos = self.times.partition_point(|&t| t <= ts);
        self.times.insert(pos, ts);
        if self.times.len() > cap {
            self.times.pop_front();
        }
        self.times.len()
    }

    fn push_value(&mut self, v: &str, ts: i64, horizon: i64, cap: usize) -> usize {
        self.values.retain(|(_, t)| *t > horizon);
        if let Some(entry) = self.values.iter_mut().find(|(x, _)| &**x == v) {
            entry.1 = entry.1.max(ts);
        } else {
            self.values.push((v.into(), ts));
            if self.values.len() > cap {
                let oldest = (0..self.values.len())
                    .min_by_key(|&i| self.values[i].1)
                    .unwrap_or(0);
                self.values.remove(oldest);
            }
        }
        self.values.len()
    }

    /// Distinct values in natural order (numbers numerically), at most a sample's worth.
    fn sample(&self) -> Vec<String> {
        let mut vals: Vec<&str> = self.values.iter().map(|(v, _)| &**v).collect();
        vals.sort_by(|a, b| match (a.parse::<f64>(), b.parse::<f64>()) {
            (Ok(x), Ok(y)) => x.total_cmp(&y),
            _ => a.cmp(b),
        });
        vals.into_iter()
            .take(MAX_SAMPLE_VALUES)
            .map(str::to_owned)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(count: usize, window_ms: i64, distinct: bool, max_keys: usize) -> ThresholdRule {
        ThresholdRule {
            rule: 0,
            rule_id: Arc::from("r"),
            group_by: "src_ip".into(),
            distinct: distinct.then(|| "dst_port".into()),
            count,
            window_ms,
            max_keys,
            label: "events".into(),
        }
    }

    #[test]
    fn fires_at_count_within_window_then_cools_down() {
        let r = rule(3, 1_000, false, 10);
        let mut w = RuleWindows::new(r.rule_id.clone());
        assert_eq!(w.observe(&r, "k", None, 0), None);
        assert_eq!(w.observe(&r, "k", None, 500), None);
        assert_eq!(
            w.observe(&r, "k", None, 900),
            Some(Fired {
                count: 3,
                values: vec![]
            })
        );
        // Cooldown until 1900: the flood goes on but stays quiet.
        for ts in (950..1_900).step_by(50) {
            assert_eq!(w.observe(&r, "k", None, ts), None, "ts {ts}");
        }
        assert!(w.observe(&r, "k", None, 1_900).is_some());
    }

    #[test]
    fn old_events_leave_the_window() {
        let r = rule(3, 1_000, false, 10);
        let mut w = RuleWindows::new(r.rule_id.clone());
        assert_eq!(w.observe(&r, "k", None, 0), None);
        assert_eq!(w.observe(&r, "k", None, 600), None);
        assert_eq!(w.observe(&r, "k", None, 1_000), None); // event at 0 is out: (0, 1000]
        assert!(w.observe(&r, "k", None, 1_100).is_some());
        // Too late for the window: ignored.
        assert_eq!(w.observe(&r, "late", None, 5_000), None);
        assert_eq!(w.observe(&r, "late", None, 3_000), None);
    }

    #[test]
    fn keys_are_independent_and_bounded() {
        let r = rule(2, 1_000, false, 10);
        let mut w = RuleWindows::new(r.rule_id.clone());
        assert_eq!(w.observe(&r, "a", None, 0), None);
        assert_eq!(w.observe(&r, "b", None, 1), None);
        assert!(w.observe(&r, "a", None, 2).is_some());
        let k = &w.keys["a"];
        assert!(k.times.len() <= 2);
    }

    #[test]
    fn distinct_counts_values_not_events() {
        let r = rule(3, 10_000, true, 10);
        let mut w = RuleWindows::new(r.rule_id.clone());
        for (ts, port) in [(0, "22"), (1, "22"), (2, "80"), (3, "80")] {
            assert_eq!(w.observe(&r, "k", Some(port), ts), None);
        }
        let fired = w.observe(&r, "k", Some("443"), 4).unwrap();
        assert_eq!(
            fired,
            Fired {
                count: 3,
                values: vec!["22".into(), "80".into(), "443".into()]
            }
        );
        assert!(w.keys["k"].values.len() <= 3);
    }

    #[test]
    fn evicts_least_recently_seen_keys_when_full() {
        let r = rule(100, 1_000, false, 10);
        let mut w = RuleWindows::new(r.rule_id.clone());
        for i in 0..10 {
            w.observe(&r, &format!("k{i}"), None, i);
        }
        w.observe(&r, "k0", None, 100); // k0 is now the most recent
        w.observe(&r, "new", None, 101);
        assert_eq!(w.len(), 10);
        assert!(w.keys.contains_key("k0") && w.keys.contains_key("new"));
        assert!(!w.keys.contains_key("k1"), "k1 was the least recently seen");
    }

    #[test]
    fn a_tenant_spraying_keys_evicts_its_own_windows_only() {
        let r = rule(5, 60_000, false, 20);
        let mut w = RuleWindows::new(r.rule_id.clone());
        // Tenant a has a brute force in progress: 4 of 5 failures seen.
        for ts in 0..4 {
            w.observe(&r, "a\u{1f}203.0.113.9", None, ts);
        }
        // Tenant b sprays 100 fresh addresses, all more recent than a's window.
        for i in 0..100 {
            w.observe(&r, &format!("b\u{1f}10.0.0.{i}"), None, 10 + i);
        }
        assert!(w.len() <= 20);
        assert!(w.keys.contains_key("a\u{1f}203.0.113.9"));
        // a's window survived whole: the fifth failure still fires.
        assert!(w.observe(&r, "a\u{1f}203.0.113.9", None, 200).is_some());
    }

    #[test]
    fn expire_drops_finished_windows_but_keeps_cooldowns() {
        let r = rule(1, 1_000, false, 10);
        let mut w = RuleWindows::new(r.rule_id.clone());
        w.observe(&r, "quiet", None, 0);
        w.observe(&r, "recent", None, 1_500);
        w.expire(1_000, 1_600);
        assert_eq!(w.len(), 1);
        assert!(w.keys.contains_key("recent"));
        w.expire(1_000, 10_000);
        assert_eq!(w.len(), 0);
    }
}
