//! The response engine: from an incident to decided, explained, auditable actions.
//!
//! Pure like `antibody-detect`: no I/O, no wall clock (time arrives as `now` in
//! milliseconds), no threads; randomness comes from a seeded generator the responder owns,
//! so the same inputs give the same decisions. The server feeds it incidents, ticks, action
//! results and human answers, and carries out the [`Decision`]s it returns.

pub mod action;
pub mod assess;
pub mod asset;
pub mod audit;
pub mod cidr;
pub mod config;
pub mod decision;
pub mod diagnose;
pub mod duration;
pub mod error;
pub mod executor;
pub mod fleet;
pub mod guard;
pub mod lifecycle;
pub mod memory;
pub mod playbook;
mod responder;
pub mod rng;

pub use action::{Action, ActionKind, ActionResult, ActionStatus, Mode, ParamValue, Params, Why};
pub use assess::Assessment;
pub use asset::Asset;
pub use audit::{verify, AuditChain, AuditEntry, AuditRecord, ChainBreak};
pub use config::{OnTimeout, ResponderConfig, TenantPolicy};
pub use decision::{Decision, UndoReason};
pub use diagnose::Cause;
pub use error::{PlaybookError, PlaybookErrors, RespondError};
pub use executor::{Completion, ExecOp, ExecRequest, ExecResult, Executor};
pub use fleet::FleetIncident;
pub use lifecycle::{LifecycleState, Transition};
pub use playbook::{Playbook, PlaybookSet, PlaybookSource};
pub use responder::{Approval, BlockEntry, Responder, Verdict, VerdictKind};
