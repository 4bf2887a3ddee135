//! The `command` executor: runs the action's `argv` template (and `undo_argv` to undo it)
//! as a child process — never through a shell — under a timeout, reporting the exit code
//! and the first 4 KiB of stdout and stderr. A program must be an absolute path or a name
//! on the configured allow-list. An optional `check_argv` template re-checks the effect:
//! exit code 0 means it still holds.

use crate::common::{self, claim, is_dry_run, op_word};
use crate::drift::{Drift, DriftCheck};
use crate::ledger::Ledger;
use crate::reply::Reply;
use crate::runner;
use crate::template::{ArgvTemplate, Vars};
use antibody_respond::executor::{Completion, ExecOp, ExecRequest, ExecResult, Executor};
use antibody_respond::{ActionKind, ParamValue};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandConfig {
    /// Program names (not paths) that may be used without an absolute path.
    pub allow: Vec<String>,
    pub timeout: Duration,
}

pub struct CommandExecutor {
    config: CommandConfig,
    ledger: Arc<Ledger>,
}

impl CommandExecutor {
    pub fn new(config: CommandConfig) -> Self {
        Self {
            config,
            ledger: Arc::default(),
        }
    }

    /// The rendered argv for `param` (`argv`, `undo_argv`, `check_argv`), `None` if absent.
    fn argv(&self, request: &ExecRequest, param: &str) -> Result<Option<Vec<String>>, String> {
        let items = match request.action.params.get(param) {
            None => return Ok(None),
            Some(ParamValue::List(items)) => items,
            Some(_) => return Err(format!("`{param}` must be a list of strings")),
        };
        ArgvTemplate::parse(items, &self.config.allow)
            .and_then(|t| t.render(&vars(request, &request.action.target)))
            .map(Some)
            .map_err(|e| format!("`{param}`: {e}"))
    }
}

/// Placeholder values for a request; `target` may be normalised by the caller.
pub fn vars<'a>(request: &'a ExecRequest, target: &'a str) -> Vars<'a> {
    Vars {
        target,
        entity: &request.entity,
        tenant: request.tenant.as_str(),
        action: &request.action.id,
        params: &request.action.params,
    }
}

/// `argv` as a JSON array, for results.
pub fn show(argv: &[String]) -> String {
    serde_json::to_string(argv).unwrap_or_default()
}

/// Runs `argv`; ok when it exits 0.
pub fn run_argv(argv: &[String], timeout: Duration) -> ExecResult {
    let program = argv.first().map_or("", String::as_str);
    let mut details = BTreeMap::from([("argv".to_owned(), show(argv))]);
    match runner::run(argv, timeout) {
        Ok(out) => {
            if let runner::Exit::Code(code) = out.exit {
                details.insert("exit_code".into(), code.to_string());
            }
            details.insert("stdout".into(), out.stdout.clone());
            details.insert("stderr".into(), out.stderr.clone());
            let message = format!("{program}: {}", out.describe(timeout));
            common::result(out.success(), message, details)
        }
        Err(e) => common::result(false, e.to_string(), details),
    }
}

/// Runs `work` on its own thread (child processes block), then records and answers.
pub fn run_detached(
    ledger: Arc<Ledger>,
    request: ExecRequest,
    reply: Reply,
    work: impl FnOnce(&ExecRequest) -> ExecResult + Send + 'static,
) {
    let id = request.action.id.clone();
    let op = request.op;
    let ledger_for_thread = ledger.clone();
    let spawned = std::thread::Builder::new()
        .name("antibody-exec".into())
        .spawn(move || {
            let result = work(&request);
            common::finish(&ledger_for_thread, &request, reply, result);
        });
    // On a failed spawn the closure, and with it the reply, is dropped: the reply reports
    // the failure; the ledger must forget the claim so a retry can run.
    if spawned.is_err() {
        ledger.finish(&id, op, false);
    }
}

impl Executor for CommandExecutor {
    fn name(&self) -> &str {
        "command"
    }

    fn supports(&self, kind: ActionKind) -> bool {
        kind == ActionKind::Command
    }

    fn execute(&self, request: ExecRequest, done: Completion) {
        let supported = self.supports(request.action.kind);
        let Some(reply) = common::unsupported(self.name(), supported, &request, Reply::new(done))
        else {
            return;
        };
        let param = match request.op {
            ExecOp::Apply => "argv",
            ExecOp::Undo => "undo_argv",
        };
        let argv = match self.argv(&request, param) {
            Ok(Some(argv)) => argv,
            Ok(None) if request.op == ExecOp::Undo => {
                let why = "the action has no undo_argv";
                return common::nothing_to_undo(&self.ledger, &request, reply, why);
            }
            Ok(None) => return reply.send(ExecResult::failed("the action has no argv")),
            Err(e) => return reply.send(ExecResult::failed(e)),
        };
        if is_dry_run(&request) {
            let details = BTreeMap::from([("argv".to_owned(), show(&argv))]);
            return reply.send(common::dry_run(&format!("run {}", argv.join(" ")), details));
        }
        let Some(reply) = claim(&self.ledger, &request, reply) else {
            return;
        };
        let timeout = self.config.timeout;
        run_detached(self.ledger.clone(), request, reply, move |request| {
            let mut result = run_argv(&argv, timeout);
            result.message = format!("{}: {}", op_word(request.op), result.message);
            result
        });
    }
}

impl DriftCheck for CommandExecutor {
    fn check(&self, request: &ExecRequest) -> Option<Drift> {
        if is_dry_run(request) {
            return None;
        }
        match self.argv(request, "check_argv") {
            Ok(None) => None,
            Ok(Some(argv)) => {
                let result = run_argv(&argv, self.config.timeout);
                (!result.ok)
                    .then(|| Drift::new(request, format!("check failed: {}", result.message)))
            }
            Err(e) => Some(Drift::new(request, format!("cannot check: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{action, execute, request, strs};
    use antibody_respond::{Mode, Params};

    fn exec(allow: &[&str]) -> CommandExecutor {
        CommandExecutor::new(CommandConfig {
            allow: allow.iter().map(|s| (*s).to_owned()).collect(),
            timeout: Duration::from_secs(10),
        })
    }

    fn req(id: &str, argv: &[&str], op: ExecOp) -> ExecRequest {
        let params = Params::from([("argv".to_owned(), strs(argv))]);
        request(action(id, ActionKind::Command, "subject", params), op)
    }

    #[test]
    fn captures_exit_code_and_output() {
        let r = execute(
            &exec(&[]),
            req("a-1", &["/bin/echo", "{target}", "{entity}"], ExecOp::Apply),
        );
        assert!(r.ok, "{r:?}");
        assert_eq!(r.details["exit_code"], "0");
        assert_eq!(r.details["stdout"], "subject agent:x\n");
        assert_eq!(r.details["argv"], r#"["/bin/echo","subject","agent:x"]"#);
        let r = execute(&exec(&[]), req("a-2", &["/bin/false"], ExecOp::Apply));
        assert!(!r.ok);
        assert_eq!(r.message, "apply: /bin/false: exit code 1");
    }

    #[test]
    fn timeout_kills_and_fails() {
        let e = CommandExecutor::new(CommandConfig {
            allow: vec![],
            timeout: Duration::from_millis(50),
        });
        let r = execute(&e, req("a-1", &["/bin/sleep", "30"], ExecOp::Apply));
        assert!(!r.ok);
        assert!(r.message.contains("timed out after 50 ms"), "{}", r.message);
    }

    #[test]
    fn refuses_programs_off_the_allow_list() {
        let r = execute(&exec(&[]), req("a-1", &["true"], ExecOp::Apply));
        assert!(!r.ok);
        assert!(r.message.contains("allow-list"), "{}", r.message);
        // `true` resolves through PATH once allowed.
        assert!(execute(&exec(&["true"]), req("a-2", &["true"], ExecOp::Apply)).ok);
    }

    #[test]
    fn dry_run_reports_the_argv() {
        let mut r = req("a-1", &["/bin/false", "{target}"], ExecOp::Apply);
        r.action.mode = Mode::DryRun;
        let got = execute(&exec(&[]), r);
        assert!(got.ok);
        assert_eq!(got.message, "dry run: would run /bin/false subject");
        assert_eq!(got.details["argv"], r#"["/bin/false","subject"]"#);
    }

    #[test]
    fn check_argv_reports_drift() {
        let e = exec(&[]);
        let mut r = req("a-1", &["/bin/true"], ExecOp::Apply);
        assert_eq!(e.check(&r), None);
        r.action
            .params
            .insert("check_argv".into(), strs(&["/bin/true"]));
        assert_eq!(e.check(&r), None);
        r.action
            .params
            .insert("check_argv".into(), strs(&["/bin/false"]));
        let drift = e.check(&r).unwrap();
        assert_eq!(drift.action, "a-1");
        assert!(drift.message.contains("exit code 1"), "{}", drift.message);
        r.action.params.insert("check_argv".into(), strs(&["rm"]));
        assert!(e.check(&r).unwrap().message.starts_with("cannot check"));
    }
}
