//! The response engine: from an incident to decided, explained, auditable actions.
//!
//! Pure like `antibody-detect`: no I/O, no wall clock (time arrives as `now` in
//! milliseconds), no threads; randomness comes from a seeded generator the responder owns,
//! so the same inputs give the same decisions. The server feeds it incidents, ticks, action
//! results and human answers, and carries out the [`Decision`]s it returns.
//!
//! ## Wiring (what the server does)
//! * Load playbooks with [`PlaybookSet::load`] (`PlaybookSet::default_sources()` first,
//!   then `<data-dir>/playbooks/*.yml`); errors come back all at once as `file:line: reason`.
//! * Keep one [`Responder`] per tenant (fleet correlation needs a whole group in one place);
//!   [`Responder::upsert_asset`] on `PUT /v1/assets/{entity}`.
//! * Call [`Responder::on_incident`] with every incident update and the findings that joined
//!   it, [`Responder::on_tick`] every second, [`Responder::on_sample`] for events of
//!   entities that [`Responder::wants_samples`], and the human calls (`approve`, `reject`,
//!   `approve_all`, `reject_all`, `heal_now`, `heal_all`, `undo`, `feedback`) from the routes.
//! * Keep people's work on incidents (ack, assign, notes, resolve, reopen) as an
//!   [`IncidentWork`] per incident beside detection's record, and apply the responder's
//!   `Decision::Resolved` to it; write a [`postmortem`] when an incident is resolved.
//! * For each decision: publish it (`/v1/stream`), append
//!   [`Decision::audit_record`] to an [`AuditChain`], run `approved` actions and undos with an
//!   [`Executor`] (by the kind's [`EffectPoint`]: kinds the view serves succeed at once,
//!   kinds with no control point end with [`Responder::on_action_recorded`]), and report back
//!   with [`Responder::on_action_started`] / [`Responder::on_action_result`].
//! * Feed the `cost_usd` of capped entities' events to [`Responder::on_spend`], and publish
//!   what the decisions changed into an [`Enforcement`] ([`enforce::change_of`]), which
//!   serves verdicts and the blocklist without a lock.
//! * Snapshot with [`Responder::snapshot`] / [`Responder::restore`]: a versioned file of
//!   sections with a checksum; older versions still restore, damage is a [`SnapshotError`].
//!
//! Formulas live in the module docs: risk in [`assess`], diagnosis in [`diagnose`], ladder
//! order in [`memory`], fleet correlation in [`fleet`], the lifecycle in [`lifecycle`]; the
//! playbook format in `PLAYBOOKS.md`.

pub mod action;
pub mod assess;
pub mod asset;
pub mod audit;
pub mod cidr;
pub mod config;
pub mod decision;
pub mod diagnose;
pub mod duration;
pub mod enforce;
pub mod error;
pub mod executor;
pub mod fleet;
pub mod gateway_policy;
pub mod guard;
pub mod investigate;
pub mod lifecycle;
pub mod memory;
pub mod playbook;
pub mod postmortem;
mod responder;
pub mod rng;
pub mod workflow;

pub use action::{
    Action, ActionKind, ActionResult, ActionStatus, EffectPoint, Mode, ParamValue, Params, Why,
};
pub use assess::Assessment;
pub use asset::Asset;
pub use audit::{verify, AuditChain, AuditEntry, AuditRecord, ChainBreak};
pub use config::{OnTimeout, ResponderConfig, TenantPolicy};
pub use decision::{Decision, UndoReason};
pub use diagnose::Cause;
pub use enforce::{BlockEntry, Enforcement, TenantView, Verdict, VerdictKind};
pub use error::{PlaybookError, PlaybookErrors, RespondError};
pub use executor::{Completion, ExecOp, ExecRequest, ExecResult, Executor};
pub use fleet::FleetIncident;
pub use gateway_policy::GatewayPolicy;
pub use lifecycle::{LifecycleState, Transition};
pub use playbook::{Playbook, PlaybookSet, PlaybookSource};
pub use responder::snapshot::{SnapshotError, SNAPSHOT_VERSION};
pub use responder::{Approval, Responder};
pub use workflow::{IncidentOp, IncidentWork};
