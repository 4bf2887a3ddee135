//! The `signal` executor: sends SIGSTOP, SIGCONT, SIGTERM (or KILL, HUP, INT) to the pid the
//! entity's asset names. It refuses pid ≤ 1 and antibody's own pid. Undoing a SIGSTOP sends
//! SIGCONT; the other signals cannot be taken back. Drift: a process stopped by the action
//! must still be stopped (`T` in `/proc/<pid>/stat`), one continued must not be.

use crate::common::{self, claim, is_dry_run};
use crate::drift::{Drift, DriftCheck};
use crate::ledger::Ledger;
use crate::reply::Reply;
use antibody_respond::executor::{Completion, ExecOp, ExecRequest, ExecResult, Executor};
use antibody_respond::{ActionKind, ParamValue};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::collections::BTreeMap;

#[derive(Default)]
pub struct SignalExecutor {
    ledger: Ledger,
}

impl SignalExecutor {
    pub fn new() -> Self {
        Self::default()
    }
}

/// The pid to signal and the signal an op sends (`None`: nothing to undo).
fn plan(request: &ExecRequest) -> Result<(i32, Option<Signal>), String> {
    let pid = target_pid(request)?;
    let name = match request.action.params.get("signal") {
        Some(ParamValue::Str(s)) => s.as_str(),
        _ => return Err("the action needs a `signal` (TERM, KILL, STOP, CONT, HUP, INT)".into()),
    };
    let signal = parse_signal(name).ok_or_else(|| format!("unknown signal `{name}`"))?;
    let sent = match request.op {
        ExecOp::Apply => Some(signal),
        ExecOp::Undo if signal == Signal::SIGSTOP => Some(Signal::SIGCONT),
        ExecOp::Undo => None,
    };
    Ok((pid, sent))
}

fn target_pid(request: &ExecRequest) -> Result<i32, String> {
    let pid = request.asset.as_ref().and_then(|a| a.pid).ok_or_else(|| {
        format!(
            "no pid is known for {}; give its asset a pid",
            request.entity
        )
    })?;
    let pid = i32::try_from(pid).map_err(|_| format!("pid {pid} is out of range"))?;
    if pid <= 1 {
        return Err(format!("refusing to signal pid {pid}"));
    }
    if u32::try_from(pid).ok() == Some(std::process::id()) {
        return Err("refusing to signal antibody itself".into());
    }
    Ok(pid)
}

fn parse_signal(name: &str) -> Option<Signal> {
    Some(match name.trim_start_matches("SIG") {
        "STOP" => Signal::SIGSTOP,
        "CONT" => Signal::SIGCONT,
        "TERM" => Signal::SIGTERM,
        "KILL" => Signal::SIGKILL,
        "HUP" => Signal::SIGHUP,
        "INT" => Signal::SIGINT,
        _ => return None,
    })
}

impl Executor for SignalExecutor {
    fn name(&self) -> &str {
        "signal"
    }

    fn supports(&self, kind: ActionKind) -> bool {
        kind == ActionKind::Signal
    }

    fn execute(&self, request: ExecRequest, done: Completion) {
        let supported = self.supports(request.action.kind);
        let Some(reply) = common::unsupported(self.name(), supported, &request, Reply::new(done))
        else {
            return;
        };
        let (pid, signal) = match plan(&request) {
            Ok((pid, Some(signal))) => (pid, signal),
            Ok((_, None)) => {
                let why = "the signal cannot be taken back";
                return common::nothing_to_undo(&self.ledger, &request, reply, why);
            }
            Err(e) => return reply.send(ExecResult::failed(e)),
        };
        let what = format!("{} to pid {pid}", signal.as_str());
        let details = BTreeMap::from([
            ("pid".to_owned(), pid.to_string()),
            ("signal".to_owned(), signal.as_str().to_owned()),
        ]);
        if is_dry_run(&request) {
            return reply.send(common::dry_run(&format!("send {what}"), details));
        }
        let Some(reply) = claim(&self.ledger, &request, reply) else {
            return;
        };
        let result = match kill(Pid::from_raw(pid), signal) {
            Ok(()) => common::result(true, format!("sent {what}"), details),
            Err(e) => common::result(false, format!("cannot send {what}: {e}"), details),
        };
        common::finish(&self.ledger, &request, reply, result);
    }
}

impl DriftCheck for SignalExecutor {
    fn check(&self, request: &ExecRequest) -> Option<Drift> {
        if is_dry_run(request) {
            return None;
        }
        let Ok((pid, Some(signal))) = plan(&ExecRequest {
            op: ExecOp::Apply,
            ..request.clone()
        }) else {
            return None;
        };
        let want_stopped = match signal {
            Signal::SIGSTOP => true,
            Signal::SIGCONT => false,
            _ => return None,
        };
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| process_state(&stat));
        let message = match state {
            None | Some('Z' | 'X') => format!("process {pid} is gone"),
            Some(s) if is_stopped(s) == want_stopped => return None,
            Some(s) if want_stopped => format!("process {pid} is no longer stopped (state {s})"),
            Some(_) => format!("process {pid} is stopped again"),
        };
        Some(Drift::new(request, message))
    }
}

pub fn is_stopped(state: char) -> bool {
    matches!(state, 'T' | 't')
}

/// The state letter of a `/proc/<pid>/stat` line: `pid (comm) S …`. The command name may
/// hold spaces and parentheses, so the state follows the last `)`.
pub fn process_state(stat: &str) -> Option<char> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.trim_start().chars().next()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{action, execute, request, Sleeper};
    use antibody_respond::{Asset, Mode, Params};
    use proptest::prelude::*;

    fn req(id: &str, signal: &str, pid: Option<u32>, op: ExecOp) -> ExecRequest {
        let params = Params::from([("signal".to_owned(), ParamValue::Str(signal.into()))]);
        let mut r = request(action(id, ActionKind::Signal, "agent:x", params), op);
        r.asset = pid.map(|pid| Asset {
            pid: Some(pid),
            ..Asset::new("agent:x")
        });
        r
    }

    #[test]
    fn stop_then_continue_with_drift() {
        let child = Sleeper::start();
        let pid = child.0.id();
        let exec = SignalExecutor::new();
        let stop = req("a-1", "STOP", Some(pid), ExecOp::Apply);
        let r = execute(&exec, stop.clone());
        assert!(r.ok, "{r:?}");
        assert_eq!(r.message, format!("sent SIGSTOP to pid {pid}"));
        assert!(is_stopped(child.settled_state()));
        assert_eq!(exec.check(&stop), None);
        let r = execute(&exec, req("a-1", "STOP", Some(pid), ExecOp::Undo));
        assert_eq!(r.details["signal"], "SIGCONT");
        assert!(!is_stopped(child.settled_state()));
        let drift = exec.check(&stop).unwrap();
        assert!(
            drift.message.contains("no longer stopped"),
            "{}",
            drift.message
        );
    }

    #[test]
    fn refuses_unsafe_pids() {
        let exec = SignalExecutor::new();
        for (pid, want) in [
            (None, "no pid is known for agent:x"),
            (Some(1), "refusing to signal pid 1"),
            (
                Some(std::process::id()),
                "refusing to signal antibody itself",
            ),
            (Some(u32::MAX), "out of range"),
        ] {
            let r = execute(&exec, req("a-1", "TERM", pid, ExecOp::Apply));
            assert!(!r.ok);
            assert!(r.message.contains(want), "{}", r.message);
        }
    }

    #[test]
    fn term_cannot_be_undone_and_dry_run_sends_nothing() {
        let child = Sleeper::start();
        let pid = child.0.id();
        let exec = SignalExecutor::new();
        let r = execute(&exec, req("a-1", "TERM", Some(pid), ExecOp::Undo));
        assert_eq!(
            r.message,
            "nothing to undo: the signal cannot be taken back"
        );
        let mut dry = req("a-2", "KILL", Some(pid), ExecOp::Apply);
        dry.action.mode = Mode::DryRun;
        let r = execute(&exec, dry);
        assert_eq!(
            r.message,
            format!("dry run: would send SIGKILL to pid {pid}")
        );
        assert!(!matches!(child.state(), 'Z' | 'X'));
    }

    #[test]
    fn reads_the_state_after_the_last_paren() {
        assert_eq!(process_state("42 (sleep) S 1 42 42 0"), Some('S'));
        assert_eq!(process_state("42 (a) T (b)) T 1"), Some('T'));
        assert_eq!(process_state("42 (x) "), None);
        assert_eq!(process_state(""), None);
    }

    proptest! {
        #[test]
        fn state_parser_never_panics(s in ".{0,64}") {
            let _ = process_state(&s);
        }
    }
}
