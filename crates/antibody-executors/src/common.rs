//! What every executor does the same way: refusing kinds it does not carry out, reporting a
//! dry run, and consulting its idempotency ledger before touching the world.

use crate::ledger::{Begin, Ledger};
use crate::reply::Reply;
use antibody_respond::executor::{ExecOp, ExecRequest, ExecResult};
use antibody_respond::Mode;
use std::collections::BTreeMap;

pub fn op_word(op: ExecOp) -> &'static str {
    match op {
        ExecOp::Apply => "apply",
        ExecOp::Undo => "undo",
    }
}

pub fn is_dry_run(request: &ExecRequest) -> bool {
    request.action.mode == Mode::DryRun
}

/// A dry run's report: ok, `dry run: would …`, the details of what would have been done.
pub fn dry_run(would: &str, details: BTreeMap<String, String>) -> ExecResult {
    let mut result = ExecResult::ok(format!("dry run: would {would}"));
    result.details = details;
    result.details.insert("dry_run".into(), "true".into());
    result
}

/// A result with details.
pub fn result(ok: bool, message: String, details: BTreeMap<String, String>) -> ExecResult {
    ExecResult {
        ok,
        message,
        details,
    }
}

/// Claims the request in the ledger; answers it directly (and returns `None`) when it was
/// already done or must be refused.
pub fn claim(ledger: &Ledger, request: &ExecRequest, reply: Reply) -> Option<Reply> {
    let id = &request.action.id;
    let op = op_word(request.op);
    match ledger.begin(id, request.op) {
        Begin::Proceed => Some(reply),
        Begin::AlreadyDone(why) => {
            let mut r = ExecResult::ok(format!("{op} of {id} skipped: {why}"));
            r.details.insert("idempotent".into(), "true".into());
            reply.send(r);
            None
        }
        Begin::Refuse(why) => {
            reply.send(ExecResult::failed(format!("{op} of {id} refused: {why}")));
            None
        }
    }
}

/// Records the outcome in the ledger and answers.
pub fn finish(ledger: &Ledger, request: &ExecRequest, reply: Reply, result: ExecResult) {
    ledger.finish(&request.action.id, request.op, result.ok);
    reply.send(result);
}

/// Answers a request for a kind this executor does not carry out; `None` if supported.
pub fn unsupported(
    name: &str,
    supported: bool,
    request: &ExecRequest,
    reply: Reply,
) -> Option<Reply> {
    if supported {
        return Some(reply);
    }
    reply.send(ExecResult::failed(format!(
        "executor {name} does not carry out {} actions",
        request.action.kind
    )));
    None
}

/// Answers an undo that has nothing to take back (a notification, a SIGTERM, a command
/// without `undo_argv`), recording it so the action cannot be applied again afterwards.
pub fn nothing_to_undo(ledger: &Ledger, request: &ExecRequest, reply: Reply, why: &str) {
    if is_dry_run(request) {
        return reply.send(dry_run(&format!("do nothing: {why}"), BTreeMap::new()));
    }
    if let Some(reply) = claim(ledger, request, reply) {
        let result = ExecResult::ok(format!("nothing to undo: {why}"));
        finish(ledger, request, reply, result);
    }
}
