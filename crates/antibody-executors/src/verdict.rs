//! The `rate_limit` and `quarantine` executors: they put a verdict on the entity (throttle
//! with the allowance, or block) until the action's TTL runs out. Enforcement is pull-based:
//! SDKs and proxies ask `GET /v1/entities/{entity}/verdict` before letting work through.

use crate::common::{self, claim, is_dry_run};
use crate::drift::{Drift, DriftCheck};
use crate::enforcement::{expiry, verdict_entry, Enforcement, VerdictEntry, VerdictKind};
use crate::ledger::Ledger;
use crate::reply::Reply;
use antibody_core::Clock;
use antibody_respond::executor::{Completion, ExecOp, ExecRequest, ExecResult, Executor};
use antibody_respond::ActionKind;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Which verdict an executor hands out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerdictAction {
    /// `rate_limit` → throttle.
    RateLimit,
    /// `quarantine` → block.
    Quarantine,
}

impl VerdictAction {
    fn kind(self) -> ActionKind {
        match self {
            Self::RateLimit => ActionKind::RateLimit,
            Self::Quarantine => ActionKind::Quarantine,
        }
    }
}

pub struct VerdictExecutor {
    action: VerdictAction,
    enforcement: Enforcement,
    clock: Arc<dyn Clock>,
    ledger: Ledger,
}

impl VerdictExecutor {
    pub fn new(action: VerdictAction, enforcement: Enforcement, clock: Arc<dyn Clock>) -> Self {
        Self {
            action,
            enforcement,
            clock,
            ledger: Ledger::default(),
        }
    }

    fn entry(&self, request: &ExecRequest) -> Result<VerdictEntry, String> {
        let action = &request.action;
        if action.target.is_empty() {
            return Err("empty target".into());
        }
        let entry = verdict_entry(action, expiry(self.clock.now_ms(), action.ttl));
        if entry.verdict == VerdictKind::Throttle && entry.limit.is_none() {
            return Err("rate_limit needs a numeric `rate`".into());
        }
        Ok(entry)
    }
}

/// `throttle agent:x to 10 per minute` or `quarantine agent:x` (a throttle always carries
/// its allowance, checked in `entry`).
fn describe(entry: &VerdictEntry) -> String {
    match &entry.limit {
        Some(l) => format!("throttle {} to {} per {}", entry.entity, l.rate, l.per),
        None => format!("quarantine {}", entry.entity),
    }
}

impl Executor for VerdictExecutor {
    fn name(&self) -> &str {
        self.action.kind().as_str()
    }

    fn supports(&self, kind: ActionKind) -> bool {
        kind == self.action.kind()
    }

    fn execute(&self, request: ExecRequest, done: Completion) {
        let supported = self.supports(request.action.kind);
        let Some(reply) = common::unsupported(self.name(), supported, &request, Reply::new(done))
        else {
            return;
        };
        let entry = match self.entry(&request) {
            Ok(entry) => entry,
            Err(e) => return reply.send(ExecResult::failed(e)),
        };
        let what = describe(&entry);
        if is_dry_run(&request) {
            let details = BTreeMap::from([
                ("entity".to_owned(), entry.entity.clone()),
                ("until".to_owned(), entry.until.to_string()),
            ]);
            let would = match request.op {
                ExecOp::Apply => format!("{what} for {} s", request.action.ttl),
                ExecOp::Undo => format!("lift: {what}"),
            };
            return reply.send(common::dry_run(&would, details));
        }
        let Some(reply) = claim(&self.ledger, &request, reply) else {
            return;
        };
        let (tenant, id) = (&request.tenant, &request.action.id);
        let result = match request.op {
            ExecOp::Apply => {
                let until = entry.until;
                match self.enforcement.write(|s| s.set_verdict(tenant, id, entry)) {
                    Ok(()) => {
                        let mut r = ExecResult::ok(format!("{what} for {} s", request.action.ttl));
                        r.details.insert("until".into(), until.to_string());
                        r
                    }
                    Err(e) => ExecResult::failed(e.to_string()),
                }
            }
            ExecOp::Undo if self.enforcement.remove(tenant, id) => {
                ExecResult::ok(format!("lifted: {what}"))
            }
            ExecOp::Undo => ExecResult::ok(format!("nothing in force for {id}")),
        };
        common::finish(&self.ledger, &request, reply, result);
    }
}

impl DriftCheck for VerdictExecutor {
    fn check(&self, request: &ExecRequest) -> Option<Drift> {
        if is_dry_run(request)
            || self
                .enforcement
                .holds(&request.tenant, &request.action.id, self.clock.now_ms())
        {
            return None;
        }
        Some(Drift::new(
            request,
            format!(
                "the {} verdict on {} is no longer in force",
                self.name(),
                request.action.target
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{action, execute, request};
    use antibody_core::{FakeClock, TenantId};
    use antibody_respond::{ParamValue, Params};

    #[test]
    fn rate_limit_throttles_with_the_allowance() {
        let enf = Enforcement::default();
        let exec = VerdictExecutor::new(
            VerdictAction::RateLimit,
            enf.clone(),
            Arc::new(FakeClock::new(0)),
        );
        let params = Params::from([
            ("rate".to_owned(), ParamValue::Int(10)),
            ("per".to_owned(), ParamValue::Str("minute".into())),
        ]);
        let req = request(
            action("a-1", ActionKind::RateLimit, "agent:x", params),
            ExecOp::Apply,
        );
        let r = execute(&exec, req.clone());
        assert_eq!(r.message, "throttle agent:x to 10 per minute for 60 s");
        let v = enf.verdict(&TenantId::new("acme"), "agent:x", 0);
        assert_eq!((v.verdict, v.until), (VerdictKind::Throttle, Some(60_000)));
        assert_eq!(exec.check(&req), None);
        enf.remove(&TenantId::new("acme"), "a-1");
        assert!(exec
            .check(&req)
            .unwrap()
            .message
            .contains("no longer in force"));
        let bad = request(
            action("a-2", ActionKind::RateLimit, "agent:x", Params::new()),
            ExecOp::Apply,
        );
        assert!(!execute(&exec, bad).ok);
    }

    #[test]
    fn quarantine_blocks_and_lifts() {
        let enf = Enforcement::default();
        let exec = VerdictExecutor::new(
            VerdictAction::Quarantine,
            enf.clone(),
            Arc::new(FakeClock::new(0)),
        );
        assert_eq!(exec.name(), "quarantine");
        let req = request(
            action("a-1", ActionKind::Quarantine, "agent:x", Params::new()),
            ExecOp::Apply,
        );
        assert!(execute(&exec, req.clone()).ok);
        assert_eq!(
            enf.verdict(&TenantId::new("acme"), "agent:x", 0).verdict,
            VerdictKind::Block
        );
        let undo = ExecRequest {
            op: ExecOp::Undo,
            ..req
        };
        assert_eq!(execute(&exec, undo).message, "lifted: quarantine agent:x");
        assert_eq!(
            enf.verdict(&TenantId::new("acme"), "agent:x", 0).verdict,
            VerdictKind::Allow
        );
        let other = request(
            action("a-2", ActionKind::BlockIp, "1.2.3.4", Params::new()),
            ExecOp::Apply,
        );
        assert!(!execute(&exec, other).ok);
    }
}
