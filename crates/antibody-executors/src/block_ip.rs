//! The `block_ip` executor: pushes a block to the host firewall by command template — e.g.
//! `nft add element inet filter blocklist { {target} }` with its `delete` as the undo and an
//! optional check for drift. It exists only when `[executors.block_ip] argv` is configured;
//! the block itself is served by antibody's enforcement view (`/v1/blocklist`,
//! `antibody_respond::enforce`) once the action succeeds, so a failed firewall command
//! fails the action and nothing is served.

use crate::command::{run_argv, run_detached, show, vars};
use crate::common::{self, claim, is_dry_run};
use crate::drift::{Drift, DriftCheck};
use crate::ledger::Ledger;
use crate::reply::Reply;
use crate::template::ArgvTemplate;
use antibody_respond::cidr::{target_ip, Cidr};
use antibody_respond::executor::{Completion, ExecOp, ExecRequest, ExecResult, Executor};
use antibody_respond::ActionKind;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// The host firewall's commands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FirewallCommand {
    pub apply: ArgvTemplate,
    pub undo: Option<ArgvTemplate>,
    /// Exit code 0 means the rule is still in place.
    pub check: Option<ArgvTemplate>,
    pub timeout: Duration,
}

pub struct BlockIpExecutor {
    firewall: Arc<FirewallCommand>,
    ledger: Arc<Ledger>,
}

/// `1.2.3.4`, `ip:1.2.3.4`, `[::1]` → the bare address; `10.0.0.0/8` → itself.
fn normalize_address(target: &str) -> Result<String, String> {
    if let Some(ip) = target_ip(target) {
        return Ok(ip.to_string());
    }
    Cidr::parse(target)
        .map(|c| c.to_string())
        .ok_or_else(|| format!("`{target}` is not an IP address or CIDR block"))
}

/// What one request will run: the address and the argv (`None`: no undo configured).
struct Plan {
    address: String,
    argv: Option<Vec<String>>,
}

impl BlockIpExecutor {
    pub fn new(firewall: FirewallCommand) -> Self {
        Self {
            firewall: Arc::new(firewall),
            ledger: Arc::default(),
        }
    }

    fn plan(&self, request: &ExecRequest) -> Result<Plan, String> {
        let address = normalize_address(&request.action.target)?;
        let template = match request.op {
            ExecOp::Apply => Some(&self.firewall.apply),
            ExecOp::Undo => self.firewall.undo.as_ref(),
        };
        let argv = template
            .map(|t| t.render(&vars(request, &address)))
            .transpose()
            .map_err(|e| format!("firewall command: {e}"))?;
        Ok(Plan { address, argv })
    }

    fn dry_run(request: &ExecRequest, plan: &Plan) -> ExecResult {
        let mut details = BTreeMap::from([("target".to_owned(), plan.address.clone())]);
        if let Some(argv) = &plan.argv {
            details.insert("argv".into(), show(argv));
        }
        let would = match request.op {
            ExecOp::Apply => format!("block {} at the firewall", plan.address),
            ExecOp::Undo => format!("unblock {} at the firewall", plan.address),
        };
        common::dry_run(&would, details)
    }
}

/// Runs the op's firewall command; an undo without a configured `undo_argv` has nothing to
/// run.
fn run(request: &ExecRequest, plan: &Plan, timeout: Duration) -> ExecResult {
    let Some(argv) = &plan.argv else {
        return ExecResult::ok(format!(
            "no firewall undo is configured; {} stays blocked at the firewall",
            plan.address
        ));
    };
    let mut result = run_argv(argv, timeout);
    let what = match (request.op, result.ok) {
        (ExecOp::Apply, true) => format!("blocked {} at the firewall", plan.address),
        (ExecOp::Apply, false) => format!("firewall command failed, {} not blocked", plan.address),
        (ExecOp::Undo, true) => format!("unblocked {} at the firewall", plan.address),
        (ExecOp::Undo, false) => format!("firewall undo failed, {} stays blocked", plan.address),
    };
    result.message = if result.ok || result.message.is_empty() {
        what
    } else {
        format!("{what}: {}", result.message)
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
        let timeout = self.firewall.timeout;
        run_detached(self.ledger.clone(), request, reply, move |request| {
            run(request, &plan, timeout)
        });
    }
}

impl DriftCheck for BlockIpExecutor {
    fn check(&self, request: &ExecRequest) -> Option<Drift> {
        if is_dry_run(request) {
            return None;
        }
        let check = self.firewall.check.as_ref()?;
        let argv = match normalize_address(&request.action.target)
            .and_then(|a| check.render(&vars(request, &a)).map_err(|e| e.to_string()))
        {
            Ok(argv) => argv,
            Err(e) => return Some(Drift::new(request, format!("cannot check: {e}"))),
        };
        let result = run_argv(&argv, self.firewall.timeout);
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

    fn req(id: &str, target: &str, op: ExecOp) -> ExecRequest {
        request(action(id, ActionKind::BlockIp, target, Params::new()), op)
    }

    #[test]
    fn firewall_command_runs_with_the_address() {
        let fw = firewall(
            &["/bin/echo", "add", "{ {target} }"],
            &["/bin/echo", "delete", "{target}"],
            &["/bin/true"],
        );
        let exec = BlockIpExecutor::new(fw);
        let r = execute(&exec, req("a-1", "192.168.1.0/24", ExecOp::Apply));
        assert!(r.ok, "{r:?}");
        assert_eq!(r.message, "blocked 192.168.1.0/24 at the firewall");
        assert_eq!(r.details["stdout"], "add { 192.168.1.0/24 }\n");
        assert_eq!(
            exec.check(&req("a-1", "192.168.1.0/24", ExecOp::Apply)),
            None
        );
        let r = execute(&exec, req("a-1", "192.168.1.0/24", ExecOp::Undo));
        assert_eq!(r.details["stdout"], "delete 192.168.1.0/24\n");
    }

    #[test]
    fn refuses_non_addresses() {
        let exec = BlockIpExecutor::new(firewall(&["/bin/true"], &["/bin/true"], &["/bin/true"]));
        let r = execute(&exec, req("a-1", "agent:x", ExecOp::Apply));
        assert!(!r.ok);
        assert!(r.message.contains("not an IP address"), "{}", r.message);
    }

    #[test]
    fn failures_and_drift_are_reported() {
        let exec =
            BlockIpExecutor::new(firewall(&["/bin/false"], &["/bin/false"], &["/bin/false"]));
        let r = execute(&exec, req("a-1", "ip:10.0.0.1", ExecOp::Apply));
        assert!(!r.ok);
        assert!(
            r.message
                .starts_with("firewall command failed, 10.0.0.1 not blocked"),
            "{}",
            r.message
        );
        let exec = BlockIpExecutor::new(firewall(&["/bin/true"], &["/bin/false"], &["/bin/false"]));
        assert!(execute(&exec, req("a-1", "10.0.0.1", ExecOp::Apply)).ok);
        let drift = exec.check(&req("a-1", "10.0.0.1", ExecOp::Apply)).unwrap();
        assert!(
            drift.message.starts_with("firewall check failed"),
            "{}",
            drift.message
        );
        let r = execute(&exec, req("a-1", "10.0.0.1", ExecOp::Undo));
        assert!(!r.ok);
        assert!(r.message.contains("stays blocked"), "{}", r.message);
    }
}
