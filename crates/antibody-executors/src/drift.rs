//! Enforcement drift: whether what an executor applied still holds in the world. The server
//! asks periodically for every applied action whose executor can tell, and reports drift
//! (an operator flushed the firewall, someone resumed a stopped process) as an event.

use antibody_respond::executor::ExecRequest;
use serde::Serialize;

/// What no longer holds, for one action.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Drift {
    pub action: String,
    /// One sentence for people.
    pub message: String,
}

impl Drift {
    pub fn new(request: &ExecRequest, message: impl Into<String>) -> Self {
        Self {
            action: request.action.id.clone(),
            message: message.into(),
        }
    }
}

/// Implemented by executors that can re-check an applied action. `check` may block briefly
/// (a check command runs under its timeout), so the server calls it off its async threads.
pub trait DriftCheck: Send + Sync {
    /// `Some` when the applied action `request` no longer holds; `None` when it does, or
    /// when there is nothing to check (dry runs, one-shot actions).
    fn check(&self, request: &ExecRequest) -> Option<Drift>;
}
