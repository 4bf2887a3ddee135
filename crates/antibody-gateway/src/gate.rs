//! Verdicts of the enforcement view, applied to a call. A call is judged as every entity it
//! can be tied to — the agent it names, the agents its key and its address were seen as
//! (so dropping the header or changing the user agent or key dodges nothing once the agent
//! is known), and its address (`block_ip`) — and the strongest verdict wins.

use crate::refusal::Refusal;
use antibody_core::TimestampMs;
use antibody_respond::enforce::{Rate, Verdict, VerdictKind};
use std::sync::Arc;

/// What to do with a call after the verdicts.
#[derive(Debug, PartialEq)]
pub enum Gate {
    Pass,
    /// Let it through only within `rate` (counted per entity by the meter).
    Throttle {
        entity: String,
        rate: Rate,
    },
    Refuse(Refusal),
}

/// The gate of one entity's verdict.
pub fn gate_of(entity: &str, v: &Verdict, now: TimestampMs) -> Gate {
    let incident = |i: &Option<Arc<str>>| {
        i.as_deref()
            .map_or_else(String::new, |i| format!(" (incident {i})"))
    };
    match v.verdict {
        VerdictKind::Allow => Gate::Pass,
        VerdictKind::Quarantine => Gate::Refuse(Refusal::new(
            "agent_quarantined",
            format!("{entity} is quarantined{}", incident(&v.incident)),
        )),
        VerdictKind::Block => match v.budget {
            Some(b) if b.remaining_usd <= 0.0 => {
                let r = Refusal::new(
                    "budget_exceeded",
                    format!(
                        "{entity} spent its budget cap of ${} (${:.4}){}",
                        b.limit_usd,
                        b.spent_usd,
                        incident(&v.incident)
                    ),
                );
                Gate::Refuse(match v.until {
                    Some(until) => r.retry_after(until - now),
                    None => r,
                })
            }
            _ => Gate::Refuse(Refusal::new(
                "agent_blocked",
                format!("{entity} is blocked{}", incident(&v.incident)),
            )),
        },
        VerdictKind::Throttle => match v.rate {
            Some(rate) => Gate::Throttle {
                entity: entity.to_owned(),
                rate,
            },
            // A budget cap with money left: calls pass and their cost is counted.
            None => Gate::Pass,
        },
    }
}

/// A tool the call offers to the model that the verdict revoked (`*`: every tool), as a
/// refusal naming it.
pub fn revoked_tool(entity: &str, v: &Verdict, offered: &[String]) -> Option<Refusal> {
    if v.revoked_tools.is_empty() || offered.is_empty() {
        return None;
    }
    let all = v.revoked_tools.iter().any(|t| &**t == "*");
    let hit = offered
        .iter()
        .find(|o| all || v.revoked_tools.iter().any(|t| &**t == o.as_str()))?;
    let incident = v
        .incident
        .as_deref()
        .map_or_else(String::new, |i| format!(" (incident {i})"));
    Some(Refusal::new(
        "tool_revoked",
        format!("tool `{hit}` is revoked for {entity}{incident}"),
    ))
}

/// The strongest of several gates: the first refusal, else the tightest throttle, else pass.
pub fn strongest(gates: impl IntoIterator<Item = Gate>) -> Gate {
    let mut best = Gate::Pass;
    for g in gates {
        match &g {
            Gate::Refuse(_) => return g,
            Gate::Throttle { rate, .. } => {
                let tighter = match &best {
                    Gate::Throttle { rate: held, .. } => per_ms(*rate) < per_ms(*held),
                    _ => true,
                };
                if tighter {
                    best = g;
                }
            }
            Gate::Pass => {}
        }
    }
    best
}

/// Calls allowed per millisecond (smaller is tighter).
fn per_ms(r: Rate) -> f64 {
    r.rate / r.per.ms() as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use antibody_respond::enforce::{Budget, Period};

    fn v(kind: VerdictKind) -> Verdict {
        Verdict {
            verdict: kind,
            incident: Some(Arc::from("i-1")),
            ..Verdict::allow()
        }
    }

    #[test]
    fn each_verdict_becomes_its_refusal() {
        let Gate::Refuse(q) = gate_of("agent:a", &v(VerdictKind::Quarantine), 0) else {
            panic!()
        };
        assert_eq!((q.code, q.status()), ("agent_quarantined", 403));
        assert!(q.message.contains("incident i-1"));
        let spent = Verdict {
            budget: Some(Budget {
                limit_usd: 1.0,
                spent_usd: 1.2,
                remaining_usd: 0.0,
            }),
            until: Some(5_000),
            ..v(VerdictKind::Block)
        };
        let Gate::Refuse(b) = gate_of("agent:a", &spent, 1_000) else {
            panic!()
        };
        assert_eq!(
            (b.code, b.status(), b.retry_after_s),
            ("budget_exceeded", 429, Some(4))
        );
        let rate = Rate {
            rate: 5.0,
            per: Period::Minute,
        };
        let throttled = Verdict {
            rate: Some(rate),
            ..v(VerdictKind::Throttle)
        };
        assert_eq!(
            gate_of("agent:a", &throttled, 0),
            Gate::Throttle {
                entity: "agent:a".into(),
                rate
            }
        );
        assert_eq!(gate_of("agent:a", &v(VerdictKind::Throttle), 0), Gate::Pass);
        assert_eq!(gate_of("agent:a", &Verdict::allow(), 0), Gate::Pass);
    }

    #[test]
    fn offered_tools_that_were_revoked_are_refused() {
        let v = Verdict {
            revoked_tools: vec![Arc::from("shell")],
            ..v(VerdictKind::Allow)
        };
        let offered = |names: &[&str]| names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
        let r = revoked_tool("agent:a", &v, &offered(&["search", "shell"])).unwrap();
        assert_eq!((r.code, r.status()), ("tool_revoked", 403));
        assert!(r.message.contains("`shell`") && r.message.contains("i-1"));
        assert!(revoked_tool("agent:a", &v, &offered(&["search"])).is_none());
        let all = Verdict {
            revoked_tools: vec![Arc::from("*")],
            ..v.clone()
        };
        assert!(revoked_tool("agent:a", &all, &offered(&["search"])).is_some());
        assert!(
            revoked_tool("agent:a", &all, &[]).is_none(),
            "a call without tools passes"
        );
    }

    #[test]
    fn the_strongest_wins() {
        let slow = Rate {
            rate: 1.0,
            per: Period::Minute,
        };
        let fast = Rate {
            rate: 1.0,
            per: Period::Second,
        };
        let t = |e: &str, rate| Gate::Throttle {
            entity: e.into(),
            rate,
        };
        assert_eq!(
            strongest([t("a", fast), t("b", slow), Gate::Pass]),
            t("b", slow)
        );
        let refuse = Gate::Refuse(Refusal::new("agent_blocked", "x"));
        assert!(matches!(
            strongest([t("a", fast), refuse, Gate::Pass]),
            Gate::Refuse(_)
        ));
        assert_eq!(strongest([]), Gate::Pass);
    }
}
