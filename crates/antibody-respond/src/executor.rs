//! The seam to the world: the request an executor receives, the result it reports, and the
//! [`Executor`] trait the server's executors (webhook, command, signal, block_ip, rate_limit,
//! quarantine, notify…) implement. Completion is a callback, so a synchronous executor calls
//! it before returning and an asynchronous one calls it from its task: the trait works for
//! both without tying this crate to a runtime.

use crate::action::{Action, ActionKind};
use crate::asset::Asset;
use antibody_core::TenantId;
use std::collections::BTreeMap;

/// Apply the action, or undo it (on TTL expiry or `POST /v1/actions/{id}/undo`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExecOp {
    Apply,
    Undo,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ExecRequest {
    pub tenant: TenantId,
    /// The entity the incident is about (the action's target may differ, e.g. an IP).
    pub entity: String,
    pub op: ExecOp,
    pub action: Action,
    /// What executors may need to reach the entity: pid, container, host.
    pub asset: Option<Asset>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ExecResult {
    pub ok: bool,
    /// One sentence for the action's `result` and the audit log.
    pub message: String,
    /// Facts worth keeping (HTTP status, exit code, rule handle for the undo, …).
    pub details: BTreeMap<String, String>,
}

impl ExecResult {
    pub fn ok(message: impl Into<String>) -> Self {
        Self {
            ok: true,
            message: message.into(),
            details: BTreeMap::new(),
        }
    }

    pub fn failed(message: impl Into<String>) -> Self {
        Self {
            ok: false,
            message: message.into(),
            details: BTreeMap::new(),
        }
    }
}

/// Called exactly once with the outcome.
pub type Completion = Box<dyn FnOnce(ExecResult) + Send>;

/// Carries out actions of the kinds it supports. Implementations must be idempotent per
/// action id (a retried `Apply` of the same id must not apply twice) and must report
/// failures through the completion, never by panicking.
pub trait Executor: Send + Sync {
    /// A stable name, shown as the action's `executor`.
    fn name(&self) -> &str;
    fn supports(&self, kind: ActionKind) -> bool;
    fn execute(&self, request: ExecRequest, done: Completion);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::{ActionStatus, Mode, Params, Why};
    use std::sync::mpsc;

    /// A synchronous executor: completes before returning.
    struct Recorder;

    impl Executor for Recorder {
        fn name(&self) -> &str {
            "recorder"
        }
        fn supports(&self, kind: ActionKind) -> bool {
            kind == ActionKind::Notify
        }
        fn execute(&self, request: ExecRequest, done: Completion) {
            done(if self.supports(request.action.kind) {
                ExecResult::ok(format!("{:?} {}", request.op, request.action.target))
            } else {
                ExecResult::failed("unsupported")
            });
        }
    }

    fn action(kind: ActionKind) -> Action {
        Action {
            id: "a-1".into(),
            incident: "i-1".into(),
            kind,
            target: "ops".into(),
            params: Params::new(),
            mode: Mode::Auto,
            status: ActionStatus::Approved,
            ttl: 60,
            executor: "recorder".into(),
            result: None,
            why: Why {
                playbook: "p".into(),
                rule: "r".into(),
                text: "t".into(),
                numbers: BTreeMap::new(),
            },
        }
    }

    #[test]
    fn completion_carries_the_result() {
        let (tx, rx) = mpsc::channel();
        let exec: Box<dyn Executor> = Box::new(Recorder);
        for kind in [ActionKind::Notify, ActionKind::BlockIp] {
            let tx = tx.clone();
            let req = ExecRequest {
                tenant: TenantId::new("t"),
                entity: "agent:a".into(),
                op: ExecOp::Apply,
                action: action(kind),
                asset: None,
            };
            exec.execute(req, Box::new(move |r| tx.send(r).unwrap()));
        }
        assert_eq!(rx.recv().unwrap(), ExecResult::ok("Apply ops"));
        assert!(!rx.recv().unwrap().ok);
    }
}
