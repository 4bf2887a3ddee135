//! The response engine: from an incident to decided, explained, auditable actions.
//!
//! Pure like `antibody-detect`: no I/O, no wall clock (time arrives as `now` in
//! milliseconds), no threads; randomness comes from a seeded generator the responder owns,
//! so the same inputs give the same decisions. The server feeds it incidents, ticks, action
//! results and human answers, and carries out the [`Decision`]s it returns.

pub mod action;
pub mod assess;
pub mod asset;
pub mod cidr;
pub mod diagnose;
pub mod duration;
pub mod error;
pub mod playbook;
pub mod rng;

pub use action::{Action, ActionKind, ActionResult, ActionStatus, Mode, ParamValue, Params, Why};
pub use asset::Asset;
pub use error::{PlaybookError, PlaybookErrors, RespondError};
pub use playbook::{Playbook, PlaybookSet, PlaybookSource};
