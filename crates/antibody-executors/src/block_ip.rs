//! The `block_ip` executor: puts the address on the tenant's blocklist (served to firewalls
//! and bouncers) until the action's TTL runs out, and optionally runs a firewall command
//! template — e.g. `nft add element inet filter blocklist { {target} }` with its `delete`
//! as the undo. The blocklist entry and the firewall rule stand or fall together: a failed
//! firewall command takes the entry back out, and a failed undo leaves both in place.

use crate::command::{run_argv, run_detached, show, vars};
use crate::common::{self, claim, is_dry_run};
use crate::drift::{Drift, DriftCheck};
use crate::enforcement::{expiry, normalize_address, Enforcement};
use crate::ledger::Ledger;
use crate::reply::Reply;
use crate::template::ArgvTemplate;
use antibody_core::Clock;
use antibody_respond::executor::{Completion, ExecOp, ExecRequest, ExecResult, Executor};
use antibody_respond::ActionKind;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// A firewall command to run beside the blocklist.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FirewallCommand {
    pub apply: ArgvTemplate,
    pub undo: Option<ArgvTemplate>,
    /// Exit code 0 means the rule is still in place.
    pub check: Option<ArgvTemplate>,
    pub timeout: Duration,
}

pub struct BlockIpExecutor {
    enforcement: Enforcement,
    clock: Arc<dyn Clock>,
    firewall: Option<Arc<FirewallCommand>>,
    ledger: Arc<Ledger>,
}

/// What one request will do.
struct Plan {
    address: String,
    expires_at: i64,
    argv: Option<Vec<String>>,
}

impl BlockIpExecutor {
    pub fn new(
        enforcement: Enforcement,
        clock: Arc<dyn Clock>,
        firewall: Option<FirewallCommand>,
    ) -> Self {
        Self {
            enforcement,
            clock,
            firewall: firewall.map(Arc::new),
            ledger: Arc::default(),
        }
    }

    fn plan(&self, request: &ExecRequest) -> Result<Plan, String> {
        let address = normalize_address(&request.action.target).map_err(|e| e.to_string())?;
        let template = self.firewall.as_ref().and_then(|f| match request.op {
            ExecOp::Apply => Some(&f.apply),
            ExecOp::Undo => f.undo.as_ref(),
        });
        let argv = template
            .map(|t| t.render(&vars(request, &address)))
            .transpose()
            .map_err(|e| format!("firewall command: {e}"))?;
        Ok(Plan {
            address,
            expires_at: expiry(self.clock.now_ms(), request.action.ttl),
            argv,
        })
    }

    fn dry_run(request: &ExecRequest, plan: &Plan) -> ExecResult {
        let mut details = BTreeMap::from([("target".to_owned(), plan.address.clone())]);
        if let Some(argv) = &plan.argv {
            details.insert("argv".into(), show(argv));
        }
        let would = match request.op {
            ExecOp::Apply => {
                details.insert("expires_at".into(), plan.expires_at.to_string());
                format!("block {} for {} s", plan.address, request.action.ttl)
            }
            ExecOp::Undo => format!("unblock {}", plan.address),
        };
        common::dry_run(&would, details)
    }
}

/// Adds the entry, then runs the firewall command; takes the entry back if it fails.
fn apply(
    enforcement: &Enforcement,
    request: &ExecRequest,
    plan: &Plan,
    timeout: Duration,
) -> ExecResult {
    let action = &request.action;
    let written = enforcement.write(|s| {
        s.block(
            &request.tenant,
            &action.id,
            &plan.address,
            plan.expires_at,
            &action.why.text,
        )
    });
    if let Err(e) = written {
        return ExecResult::failed(e.to_string());
    }
    let mut result = match &plan.argv {
        Some(argv) => run_argv(argv, timeout),
        None => ExecResult::ok(""),
    };
    if !result.ok {
        enforcement.remove(&request.tenant, &action.id);
        result.message = format!(
            "firewall command failed, {} not blocked: {}",
            plan.address, result.message
        );
        return result;
    }
    result.message = format!("blocked {} for {} s", plan.address, action.ttl);
    result.details.insert("target".into(), plan.address.clone());
    result
        .details
        .insert("expires_at".into(), plan.expires_at.to_string());
    result
}

/// Runs the firewall undo, then removes the entry; a failed undo keeps the entry.
fn undo(
    enforcement: &Enforcement,
    request: &ExecRequest,
    plan: &Plan,
    timeout: Duration,
) -> ExecResult {
    let mut result = match &plan.argv {
        Some(argv) => run_argv(argv, timeout),
        None => ExecResult::ok(""),
    };
    if !result.ok {
        result.message = format!(
            "firewall undo failed, {} stays blocked: {}",
            plan.address, result.message
        );
        return result;
    }
    let removed = enforcement.remove(&request.tenant, &request.action.id);
    result.message = if removed {
        format!("unblocked {}", plan.address)
    } else {
        format!("{} was not on the blocklist", plan.address)
    };
    result.details.insert("target".into(), plan.address.clone());
    result
}

impl Executor for BlockIpExecutor {
    fn name(&self) -> &str {
        "block_ip"
    }

    fn supports(&self, kind: ActionKind) -> bool {
        kind == ActionKind::BlockIp
    }

    fn execute(&self, request: ExecRequest, done: Completion) {
        let supported = self.supports(request.action.kind);
        let Some(reply) = common::unsupported(self.name(), supported, &request, Reply::new(done))
        else {
            return;
        };
        let plan = match self.plan(&request) {
            Ok(plan) => plan,
            Err(e) => return reply.send(ExecResult::failed(e)),
        };
        if is_dry_run(&request) {
            return reply.send(Self::dry_run(&request, &plan));
        }
        let Some(reply) = claim(&self.ledger, &request, reply) else {
            return;
        };
        let enforcement = self.enforcement.clone();
        let timeout = self.firewall.as_ref().map_or(Duration::ZERO, |f| f.timeout);
        let work = move |request: &ExecRequest| match request.op {
            ExecOp::Apply => apply(&enforcement, request, &plan, timeout),
            ExecOp::Undo => undo(&enforcement, request, &plan, timeout),
        };
        if self.firewall.is_some() {
            run_detached(self.ledger.clone(), request, reply, work);
        } else {
            let result = work(&request);
            common::finish(&self.ledger, &request, reply, result);
        }
    }
}

impl DriftCheck for BlockIpExecutor {
    fn check(&self, request: &ExecRequest) -> Option<Drift> {
        if is_dry_run(request) {
            return None;
        }
        let now = self.clock.now_ms();
        if !self
            .enforcement
            .holds(&request.tenant, &request.action.id, now)
        {
            return Some(Drift::new(
                request,
                format!("{} is no longer on the blocklist", request.action.target),
            ));
        }
        let firewall = self.firewall.as_ref()?;
        let check = firewall.check.as_ref()?;
        let argv = match normalize_address(&request.action.target)
            .map_err(|e| e.to_string())
            .and_then(|a| check.render(&vars(request, &a)).map_err(|e| e.to_string()))
        {
            Ok(argv) => argv,
            Err(e) => return Some(Drift::new(request, format!("cannot check: {e}"))),
        };
        let result = run_argv(&argv, firewall.timeout);
        (!result.ok).then(|| {
            Drift::new(
                request,
                format!("firewall check failed: {}", result.message),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{action, execute, request};
    use antibody_core::{FakeClock, TenantId};
    use antibody_respond::Params;

    fn argv(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    fn firewall(apply: &[&str], undo: &[&str], check: &[&str]) -> FirewallCommand {
        FirewallCommand {
            apply: ArgvTemplate::parse(&argv(apply), &[]).unwrap(),
            undo: Some(ArgvTemplate::parse(&argv(undo), &[]).unwrap()),
            check: Some(ArgvTemplate::parse(&argv(check), &[]).unwrap()),
            timeout: Duration::from_secs(10),
        }
    }

    fn setup(fw: Option<FirewallCommand>) -> (BlockIpExecutor, Enforcement, Arc<FakeClock>) {
        let enforcement = Enforcement::default();
        let clock = Arc::new(FakeClock::new(1_000));
        let exec = BlockIpExecutor::new(enforcement.clone(), clock.clone(), fw);
        (exec, enforcement, clock)
    }

    fn req(id: &str, target: &str, op: ExecOp) -> ExecRequest {
        request(action(id, ActionKind::BlockIp, target, Params::new()), op)
    }

    #[test]
    fn blocks_until_the_ttl_and_unblocks() {
        let (exec, enf, clock) = setup(None);
        let tenant = TenantId::new("acme");
        let r = execute(&exec, req("a-1", "ip:10.0.0.1", ExecOp::Apply));
        assert!(r.ok, "{r:?}");
        assert_eq!(r.message, "blocked 10.0.0.1 for 60 s");
        assert_eq!(r.details["expires_at"], "61000");
        assert_eq!(enf.render_text(&tenant, 1_000), "10.0.0.1\n");
        assert_eq!(exec.check(&req("a-1", "10.0.0.1", ExecOp::Apply)), None);
        clock.set(61_000);
        assert!(exec.check(&req("a-1", "10.0.0.1", ExecOp::Apply)).is_some());
        let r = execute(&exec, req("a-1", "10.0.0.1", ExecOp::Undo));
        assert_eq!(r.message, "unblocked 10.0.0.1");
        assert!(enf.blocklist(&tenant, 0).is_empty());
    }

    #[test]
    fn refuses_non_addresses() {
        let (exec, enf, _) = setup(None);
        let r = execute(&exec, req("a-1", "agent:x", ExecOp::Apply));
        assert!(!r.ok);
        assert!(r.message.contains("not an IP address"), "{}", r.message);
        assert_eq!(enf.snapshot(), Default::default());
    }

    #[test]
    fn firewall_command_runs_with_the_address() {
        let fw = firewall(
            &["/bin/echo", "add", "{ {target} }"],
            &["/bin/echo", "delete", "{target}"],
            &["/bin/true"],
        );
        let (exec, enf, _) = setup(Some(fw));
        let r = execute(&exec, req("a-1", "192.168.1.0/24", ExecOp::Apply));
        assert!(r.ok, "{r:?}");
        assert_eq!(r.details["stdout"], "add { 192.168.1.0/24 }\n");
        assert_eq!(
            exec.check(&req("a-1", "192.168.1.0/24", ExecOp::Apply)),
            None
        );
        let r = execute(&exec, req("a-1", "192.168.1.0/24", ExecOp::Undo));
        assert_eq!(r.details["stdout"], "delete 192.168.1.0/24\n");
        assert!(enf.blocklist(&TenantId::new("acme"), 0).is_empty());
    }

    #[test]
    fn a_failing_firewall_leaves_no_half_state() {
        let fw = firewall(&["/bin/false"], &["/bin/false"], &["/bin/false"]);
        let (exec, enf, _) = setup(Some(fw));
        let r = execute(&exec, req("a-1", "10.0.0.1", ExecOp::Apply));
        assert!(!r.ok);
        assert!(
            r.message.starts_with("firewall command failed"),
            "{}",
            r.message
        );
        assert_eq!(enf.snapshot(), Default::default());

        let fw = firewall(&["/bin/true"], &["/bin/false"], &["/bin/false"]);
        let (exec, enf, _) = setup(Some(fw));
        assert!(execute(&exec, req("a-1", "10.0.0.1", ExecOp::Apply)).ok);
        let drift = exec.check(&req("a-1", "10.0.0.1", ExecOp::Apply)).unwrap();
        assert!(
            drift.message.starts_with("firewall check failed"),
            "{}",
            drift.message
        );
        let r = execute(&exec, req("a-1", "10.0.0.1", ExecOp::Undo));
        assert!(!r.ok);
        assert_eq!(enf.render_text(&TenantId::new("acme"), 1_000), "10.0.0.1\n");
    }
}
