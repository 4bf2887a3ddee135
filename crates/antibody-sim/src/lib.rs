//! Decision learning: an incident-response simulator over the real engines, the static
//! ladders and a learned policy driving it, and their evaluation.
//!
//! * [`env`] — the gym-like environment (`reset(seed)`, `step(choices)`): a fleet with
//!   criticality and groups, scenarios with a hidden cause ([`scenario`]), events through
//!   the real detection [`antibody_detect::Partition`], the action catalogue's effects,
//!   delays, failure rates and side effects, and per-step costs.
//! * [`ladder`] — today's behaviour: the real [`antibody_respond::Responder`] with its
//!   playbooks and Thompson-ordered ladders decides, the simulator executes.
//! * [`permit`] — what may be done for an incident: the matching playbooks' steps, with
//!   allow-lists, the approval gate and the blast-radius guard applied *before* any choice.
//! * [`policy`] — the learned policy: a tabular Monte-Carlo Q over a small context, which
//!   only orders permitted choices (or waits, or asks a human), and explains each choice.
//! * [`eval`] — seeded episodes per scenario, both arms, means with 95 % intervals.
//! * [`offpolicy`] — a candidate's value on recorded decisions (IPS, doubly robust) and its
//!   agreement with them, before a promote.
//!
//! Pure and deterministic: no I/O, no clock, randomness from seeds.

pub mod env;
pub mod eval;
pub mod ladder;
pub mod learned;
pub mod offpolicy;
pub mod permit;
pub mod policy;
pub mod scenario;

pub use env::{Choice, Env, Observation, Outcome, Step, World};
pub use policy::{Policy, PolicyError};
pub use scenario::Scenario;
