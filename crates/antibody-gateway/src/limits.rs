//! Charging the tenant's gateway policy ([`GatewayPolicy`]) in the request path.
//!
//! A call is admitted only if it fits every level that applies (tenant, each team naming the
//! agent, the agent, the model): its model is allowed, it asks for no more output tokens
//! than allowed, and no level's window is used up. Only then is its request counted at
//! every level ([`Meter::admit`] returns a [`Ticket`]); a refused call is charged nowhere.
//! Tokens and dollars are known when the response ends: [`Meter::charge`] adds them at
//! once, before the response's last byte reaches the client, so the next call is judged
//! with them (no asynchronous lag).
//!
//! Windows are fixed and aligned: the minute (requests, tokens) and the UTC day (dollars),
//! by the injected clock. A throttle verdict (`rate` per `per`) is counted the same way per
//! entity ([`Meter::throttle`]). Counters live in memory: a restart starts the windows
//! afresh (the budget caps the response engine puts in force are kept by it and survive).

use crate::refusal::Refusal;
use antibody_core::{TenantId, TimestampMs};
use antibody_respond::enforce::Rate;
use antibody_respond::gateway_policy::{GatewayPolicy, Limits};
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::Mutex;

const MINUTE: i64 = 60_000;
const DAY: i64 = 86_400_000;
const SHARDS: usize = 16;
/// Entries a shard keeps before it forgets those whose windows are over.
const SHARD_SOFT_CAP: usize = 50_000;

/// One level a call is charged at.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Scope {
    Tenant,
    Team(String),
    Agent(String),
    Model(String),
    Throttle(String),
}

impl Scope {
    fn describe(&self) -> String {
        match self {
            Scope::Tenant => "the tenant".into(),
            Scope::Team(t) => format!("team `{t}`"),
            Scope::Agent(a) => format!("agent `{a}`"),
            Scope::Model(m) => format!("model `{m}`"),
            Scope::Throttle(e) => format!("`{e}`"),
        }
    }
}

type Key = (TenantId, Scope);

#[derive(Clone, Copy, Debug, Default)]
struct Counter {
    minute: i64,
    requests: u64,
    tokens: u64,
    day: i64,
    usd: f64,
}

impl Counter {
    fn roll(&mut self, now: TimestampMs, window: i64) {
        let minute = now.div_euclid(window);
        if minute != self.minute {
            self.minute = minute;
            self.requests = 0;
            self.tokens = 0;
        }
        let day = now.div_euclid(DAY);
        if day != self.day {
            self.day = day;
            self.usd = 0.0;
        }
    }
}

/// What an admitted call is charged to when it ends.
#[derive(Debug, Default)]
pub struct Ticket {
    keys: Vec<Key>,
}

/// The per-tenant counters of every level.
pub struct Meter {
    shards: Vec<Mutex<HashMap<Key, Counter, foldhash::fast::RandomState>>>,
    hasher: foldhash::fast::RandomState,
}

impl Default for Meter {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: foldhash::fast::RandomState::default(),
        }
    }
}

/// What a call asks for, as the policy judges it.
pub struct Ask<'a> {
    pub agent: &'a str,
    pub model: Option<&'a str>,
    pub max_tokens: Option<u64>,
}

impl Meter {
    fn with<R>(&self, key: &Key, f: impl FnOnce(&mut Counter) -> R) -> R {
        let shard = &self.shards[(self.hasher.hash_one(key) as usize) % SHARDS];
        let mut map = match shard.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        if map.len() >= SHARD_SOFT_CAP && !map.contains_key(key) {
            let today = map.values().map(|c| c.day).max().unwrap_or(0);
            map.retain(|_, c| c.day >= today && (c.requests > 0 || c.usd > 0.0));
        }
        f(map.entry(key.clone()).or_default())
    }

    /// Judges a call against every level of `policy`; on success counts its request at
    /// each level and returns what to charge when it ends.
    pub fn admit(
        &self,
        tenant: &TenantId,
        policy: &GatewayPolicy,
        ask: &Ask<'_>,
        now: TimestampMs,
    ) -> Result<Ticket, Refusal> {
        if policy.is_empty() {
            return Ok(Ticket::default());
        }
        let mut levels: Vec<(Scope, &Limits)> = vec![(Scope::Tenant, &policy.tenant)];
        for (name, team) in policy.teams_of(ask.agent) {
            levels.push((Scope::Team(name.to_owned()), &team.limits));
        }
        if let Some(l) = policy.agents.get(ask.agent) {
            levels.push((Scope::Agent(ask.agent.to_owned()), l));
        }
        if let Some((m, l)) = ask.model.and_then(|m| policy.models.get_key_value(m)) {
            levels.push((Scope::Model(m.clone()), l));
        }
        for (scope, limits) in &levels {
            check_static(scope, limits, ask)?;
        }
        // Checked and counted under one lock per level, so calls in flight at the same
        // time cannot all slip under a limit; a refusal further down takes the counts back.
        let mut keys: Vec<Key> = Vec::with_capacity(levels.len());
        for (scope, limits) in &levels {
            let key = (tenant.clone(), scope.clone());
            let fits = self.with(&key, |c| {
                check_window(scope, limits, c, now)?;
                c.requests += 1;
                Ok(())
            });
            if let Err(refusal) = fits {
                for k in &keys {
                    self.with(k, |c| c.requests = c.requests.saturating_sub(1));
                }
                return Err(refusal);
            }
            keys.push(key);
        }
        Ok(Ticket { keys })
    }

    /// Takes back an admitted call's request count (a later check refused it).
    pub fn refund(&self, ticket: &Ticket) {
        for key in &ticket.keys {
            self.with(key, |c| c.requests = c.requests.saturating_sub(1));
        }
    }

    /// Adds a finished call's tokens and dollars at every level it was admitted at.
    pub fn charge(&self, ticket: &Ticket, tokens: u64, usd: f64, now: TimestampMs) {
        let usd = if usd.is_finite() { usd.max(0.0) } else { 0.0 };
        for key in &ticket.keys {
            self.with(key, |c| {
                c.roll(now, MINUTE);
                c.tokens = c.tokens.saturating_add(tokens);
                c.usd += usd;
            });
        }
    }

    /// Counts one call of `entity` under a throttle verdict: refused once `rate` calls
    /// were let through in the current window.
    pub fn throttle(
        &self,
        tenant: &TenantId,
        entity: &str,
        rate: Rate,
        now: TimestampMs,
    ) -> Result<(), Refusal> {
        // Below one call per period: one call per (period / rate).
        let (window, allowed) = if rate.rate >= 1.0 {
            (rate.per.ms(), rate.rate.floor() as u64)
        } else if rate.rate > 0.0 {
            (((rate.per.ms() as f64) / rate.rate).ceil() as i64, 1)
        } else {
            (rate.per.ms(), 0)
        };
        let window = window.max(1);
        let key = (tenant.clone(), Scope::Throttle(entity.to_owned()));
        self.with(&key, |c| {
            c.roll(now, window);
            if c.requests >= allowed {
                let wait = window - now.rem_euclid(window);
                return Err(Refusal::new(
                    "agent_throttled",
                    format!(
                        "{entity} is throttled to {} requests per {}",
                        rate.rate,
                        period_name(rate)
                    ),
                )
                .retry_after(wait));
            }
            c.requests += 1;
            Ok(())
        })
    }
}

fn period_name(rate: Rate) -> &'static str {
    use antibody_respond::enforce::Period;
    match rate.per {
        Period::Second => "second",
        Period::Minute => "minute",
        Period::Hour => "hour",
        Period::Day => "day",
    }
}

/// Model allow-list and output tokens: no counter needed.
fn check_static(scope: &Scope, l: &Limits, ask: &Ask<'_>) -> Result<(), Refusal> {
    if let Some(allowed) = &l.models {
        let ok = ask.model.is_some_and(|m| allowed.iter().any(|a| a == m));
        if !ok {
            return Err(Refusal::new(
                "model_not_allowed",
                format!(
                    "model `{}` is not allowed for {} (allowed: {})",
                    ask.model.unwrap_or(""),
                    scope.describe(),
                    allowed.join(", ")
                ),
            ));
        }
    }
    if let (Some(cap), Some(asked)) = (l.max_tokens, ask.max_tokens) {
        if asked > cap {
            return Err(Refusal::new(
                "max_tokens_exceeded",
                format!(
                    "the request asks for {asked} output tokens; {} allows {cap}",
                    scope.describe()
                ),
            ));
        }
    }
    Ok(())
}

fn check_window(
    scope: &Scope,
    l: &Limits,
    c: &mut Counter,
    now: TimestampMs,
) -> Result<(), Refusal> {
    c.roll(now, MINUTE);
    let to_minute = MINUTE - now.rem_euclid(MINUTE);
    if let Some(rpm) = l.requests_per_minute {
        if c.requests >= rpm {
            return Err(Refusal::new(
                "rate_limit_exceeded",
                format!(
                    "{} is limited to {rpm} requests per minute",
                    scope.describe()
                ),
            )
            .retry_after(to_minute));
        }
    }
    if let Some(tpm) = l.tokens_per_minute {
        if c.tokens >= tpm {
            return Err(Refusal::new(
                "tokens_limit_exceeded",
                format!("{} is limited to {tpm} tokens per minute", scope.describe()),
            )
            .retry_after(to_minute));
        }
    }
    if let Some(usd) = l.usd_per_day {
        if c.usd >= usd {
            return Err(Refusal::new(
                "budget_exceeded",
                format!(
                    "{} spent its budget of ${usd} for today (${:.4})",
                    scope.describe(),
                    c.usd
                ),
            )
            .retry_after(DAY - now.rem_euclid(DAY)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use antibody_respond::enforce::Period;
    use proptest::prelude::*;

    fn policy(text: &str) -> GatewayPolicy {
        toml::from_str(text).unwrap()
    }

    fn ask<'a>(agent: &'a str, model: &'a str) -> Ask<'a> {
        Ask {
            agent,
            model: Some(model),
            max_tokens: None,
        }
    }

    const T0: i64 = 1_800_000_000_000 - 1_800_000_000_000 % DAY;

    #[test]
    fn requests_per_minute_hierarchically_and_refusals_are_not_charged() {
        let p = policy(
            "[tenant]\nrequests_per_minute = 3\n[teams.r]\nagents = [\"agent:r-*\"]\n[teams.r.limits]\nrequests_per_minute = 2\n",
        );
        let m = Meter::default();
        let t = TenantId::new("t");
        assert!(m.admit(&t, &p, &ask("agent:r-1", "m"), T0).is_ok());
        assert!(m.admit(&t, &p, &ask("agent:r-2", "m"), T0).is_ok());
        let e = m
            .admit(&t, &p, &ask("agent:r-1", "m"), T0 + 10)
            .unwrap_err();
        assert_eq!(e.code, "rate_limit_exceeded");
        assert!(e.message.contains("team `r`"), "{}", e.message);
        assert_eq!(e.retry_after_s, Some(60));
        // The refused call was not charged to the tenant: one more fits there, and a refund
        // gives one back.
        let t2 = m.admit(&t, &p, &ask("agent:y", "m"), T0 + 15).unwrap();
        m.refund(&t2);
        assert!(m.admit(&t, &p, &ask("agent:x", "m"), T0 + 20).is_ok());
        assert_eq!(
            m.admit(&t, &p, &ask("agent:x", "m"), T0 + 30)
                .unwrap_err()
                .code,
            "rate_limit_exceeded"
        );
        assert!(
            m.admit(&t, &p, &ask("agent:r-1", "m"), T0 + MINUTE).is_ok(),
            "a new minute"
        );
        assert!(
            m.admit(&TenantId::new("u"), &p, &ask("agent:x", "m"), T0)
                .is_ok(),
            "per tenant"
        );
    }

    #[test]
    fn tokens_dollars_models_and_max_tokens() {
        let p = policy(
            "[tenant]\ntokens_per_minute = 100\n[agents.\"agent:a\"]\nmodels = [\"small\"]\nmax_tokens = 50\n[models.big]\nusd_per_day = 1.0\n",
        );
        let m = Meter::default();
        let t = TenantId::new("t");
        let e = m.admit(&t, &p, &ask("agent:a", "big"), T0).unwrap_err();
        assert_eq!(e.code, "model_not_allowed");
        let over = Ask {
            max_tokens: Some(51),
            ..ask("agent:a", "small")
        };
        assert_eq!(
            m.admit(&t, &p, &over, T0).unwrap_err().code,
            "max_tokens_exceeded"
        );
        let ticket = m.admit(&t, &p, &ask("agent:b", "big"), T0).unwrap();
        m.charge(&ticket, 100, 1.5, T0 + 5);
        assert_eq!(
            m.admit(&t, &p, &ask("agent:b", "big"), T0 + 6)
                .unwrap_err()
                .code,
            "tokens_limit_exceeded"
        );
        let e = m
            .admit(&t, &p, &ask("agent:b", "big"), T0 + MINUTE)
            .unwrap_err();
        assert_eq!(e.code, "budget_exceeded");
        assert_eq!(e.retry_after_s, Some((DAY - MINUTE) as u64 / 1000));
        assert!(m
            .admit(&t, &p, &ask("agent:b", "other"), T0 + MINUTE)
            .is_ok());
        assert!(
            m.admit(&t, &p, &ask("agent:b", "big"), T0 + DAY).is_ok(),
            "a new day"
        );
    }

    #[test]
    fn throttle_lets_rate_calls_through_per_window() {
        let m = Meter::default();
        let t = TenantId::new("t");
        let rate = Rate {
            rate: 2.0,
            per: Period::Second,
        };
        assert!(m.throttle(&t, "agent:a", rate, T0).is_ok());
        assert!(m.throttle(&t, "agent:a", rate, T0 + 1).is_ok());
        let e = m.throttle(&t, "agent:a", rate, T0 + 2).unwrap_err();
        assert_eq!((e.code, e.retry_after_s), ("agent_throttled", Some(1)));
        assert!(e.message.contains("2 requests per second"), "{}", e.message);
        assert!(m.throttle(&t, "agent:a", rate, T0 + 1000).is_ok());
        let slow = Rate {
            rate: 0.5,
            per: Period::Second,
        };
        assert!(m.throttle(&t, "agent:b", slow, T0).is_ok());
        assert!(m.throttle(&t, "agent:b", slow, T0 + 1500).is_err());
        assert!(m.throttle(&t, "agent:b", slow, T0 + 2000).is_ok());
    }

    proptest! {
        /// Within one minute exactly `rpm` calls pass, whatever the agents.
        #[test]
        fn exactly_rpm_pass(rpm in 1u64..20, agents in proptest::collection::vec(0u8..4, 1..60)) {
            let p = policy(&format!("[tenant]\nrequests_per_minute = {rpm}\n"));
            let m = Meter::default();
            let t = TenantId::new("t");
            let passed = agents.iter().enumerate().filter(|(i, a)| {
                let name = format!("agent:{a}");
                m.admit(&t, &p, &ask(&name, "m"), T0 + *i as i64).is_ok()
            }).count() as u64;
            prop_assert_eq!(passed, rpm.min(agents.len() as u64));
        }
    }
}
