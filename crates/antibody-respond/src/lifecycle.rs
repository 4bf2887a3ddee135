//! The entity lifecycle: eight states and the transitions the responder may take between
//! them. Every transition becomes a [`Transition`] record (an event on `/v1/stream` and an
//! audit entry once the server publishes it).
//!
//! ```text
//! initializing ─┬─► healthy ◄──────────────────────────────┐ (M good samples)
//!               └─► suspected ─► draining ─► quarantined    │
//!                      │            │           │           │
//!                      └──────┬─────┴───────────┴─► healing ─► probation
//!                             │                       ▲  │        │
//!                             └──► exhausted ◄────────┴──┴────────┘
//! ```
//! * **suspected**: an incident is open; containment waits `suspect_ticks` anomalous ticks,
//!   unless a finding is decisive (a rule hit, or σ ≥ `skip_sigma`).
//! * **draining**: contained; in-flight work has `drain_ms` to finish, then **quarantined**.
//! * **healing**: an action of the ladder is running.
//! * **probation**: the actions worked; M fresh samples within baseline → **healthy**, an
//!   anomalous one → the next rung (**healing** or **draining**), or **exhausted** when the
//!   ladder is spent and a human must look. Heal-now takes a contained or exhausted entity
//!   to probation.

use antibody_core::{TenantId, TimestampMs};
use serde::{Deserialize, Serialize};

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
#[serde(rename_all = "lowercase")]
pub enum LifecycleState {
    Initializing,
    Healthy,
    Suspected,
    Draining,
    Quarantined,
    Healing,
    Probation,
    Exhausted,
}

impl LifecycleState {
    pub const ALL: [LifecycleState; 8] = [
        Self::Initializing,
        Self::Healthy,
        Self::Suspected,
        Self::Draining,
        Self::Quarantined,
        Self::Healing,
        Self::Probation,
        Self::Exhausted,
    ];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Initializing => "initializing",
            Self::Healthy => "healthy",
            Self::Suspected => "suspected",
            Self::Draining => "draining",
            Self::Quarantined => "quarantined",
            Self::Healing => "healing",
            Self::Probation => "probation",
            Self::Exhausted => "exhausted",
        }
    }

    /// The state the API shows for an entity the responder holds in `self`: an entity it
    /// deems healthy whose baselines are all still `learning` reads `initializing`.
    pub fn shown(self, learning: bool) -> Self {
        if self == Self::Healthy && learning {
            Self::Initializing
        } else {
            self
        }
    }

    /// Taken out of service: the request path should block it.
    pub fn is_contained(self) -> bool {
        matches!(self, Self::Draining | Self::Quarantined)
    }

    /// The guard of the state machine: may `self` move to `to`?
    pub fn can_go(self, to: Self) -> bool {
        use LifecycleState::*;
        match self {
            Initializing | Healthy => matches!(to, Healthy | Suspected) && to != self,
            Suspected => matches!(to, Healthy | Draining | Healing | Probation | Exhausted),
            Draining => matches!(to, Quarantined | Healing | Probation | Exhausted),
            Quarantined => matches!(to, Healing | Probation | Exhausted),
            Healing => matches!(to, Probation | Draining | Exhausted),
            Probation => matches!(to, Healthy | Healing | Draining | Exhausted),
            Exhausted => matches!(to, Probation | Healing),
        }
    }
}

impl std::fmt::Display for LifecycleState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One state change of one entity.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    pub tenant: TenantId,
    pub entity: String,
    pub from: LifecycleState,
    pub to: LifecycleState,
    pub reason: String,
    pub ts: TimestampMs,
    /// The key id of the person who caused it, or `engine`.
    pub actor: String,
}

#[cfg(test)]
mod tests {
    use super::LifecycleState::*;
    use super::*;
    const ALL: [LifecycleState; 8] = LifecycleState::ALL;

    #[test]
    fn the_documented_paths_are_allowed() {
        let paths = [
            [
                Healthy,
                Suspected,
                Draining,
                Quarantined,
                Healing,
                Probation,
                Healthy,
            ]
            .as_slice(),
            &[
                Initializing,
                Suspected,
                Healing,
                Probation,
                Healing,
                Exhausted,
                Probation,
                Healthy,
            ],
            &[Healthy, Suspected, Healthy],
            &[Quarantined, Probation, Draining, Quarantined],
        ];
        for path in paths {
            for w in path.windows(2) {
                assert!(w[0].can_go(w[1]), "{} → {}", w[0], w[1]);
            }
        }
    }

    #[test]
    fn shortcuts_are_refused() {
        for (from, to) in [
            (Healthy, Quarantined),
            (Healthy, Healing),
            (Suspected, Quarantined),
            (Quarantined, Healthy),
            (Exhausted, Healthy),
            (Healing, Healthy),
            (Draining, Healthy),
        ] {
            assert!(!from.can_go(to), "{from} → {to}");
        }
        for s in ALL {
            assert!(!s.can_go(s), "{s} → itself");
            assert!(!s.can_go(Initializing), "{s} → initializing");
        }
    }

    #[test]
    fn only_a_healthy_entity_still_learning_shows_initializing() {
        assert_eq!(Healthy.shown(true), Initializing);
        assert_eq!(Healthy.shown(false), Healthy);
        for s in ALL.into_iter().filter(|s| *s != Healthy) {
            assert_eq!(s.shown(true), s, "{s}");
        }
    }

    #[test]
    fn every_state_can_reach_healthy() {
        for start in ALL {
            let mut seen = vec![start];
            let mut i = 0;
            while i < seen.len() {
                for to in ALL {
                    if seen[i].can_go(to) && !seen.contains(&to) {
                        seen.push(to);
                    }
                }
                i += 1;
            }
            assert!(seen.contains(&Healthy), "{start} cannot heal");
        }
    }
}
