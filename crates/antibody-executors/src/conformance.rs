//! The conformance suite: one set of checks every executor passes, run against each of
//! them with loopback HTTP receivers, harmless commands (`mkdir`/`rmdir` in a temp dir,
//! `/bin/false`) and a child `sleep` process. Every call goes through `testkit::execute`,
//! which also asserts that the completion was called exactly once.

use crate::block_ip::{BlockIpExecutor, FirewallCommand};
use crate::command::{CommandConfig, CommandExecutor};
use crate::http::{Endpoint, RetryPolicy};
use crate::notify::{NotifyConfig, NotifyExecutor, NotifyFormat, UrlSource};
use crate::secret::{Secret, SecretError, SecretRef, SecretSource};
use crate::signal::{is_stopped, SignalExecutor};
use crate::template::ArgvTemplate;
use crate::testkit::{
    action, closed_port_url, execute, request, runtime, strs, FakeServer, Sleeper,
};
use crate::webhook::{WebhookConfig, WebhookExecutor};
use antibody_core::FakeClock;
use antibody_respond::executor::{ExecOp, ExecRequest, Executor};
use antibody_respond::{ActionKind, Asset, Mode, ParamValue, Params};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::runtime::Runtime;

/// One executor under test, with the means to observe what it did.
trait Subject {
    fn name(&self) -> &str;
    fn executor(&self) -> &dyn Executor;
    /// A valid request for action `id` that changes the world when applied.
    fn request(&self, id: &str, op: ExecOp) -> ExecRequest;
    /// A request whose apply fails.
    fn failing(&self, id: &str) -> ExecRequest;
    /// What this executor has put in force, as comparable text.
    fn world(&self) -> String;
    /// Whether undo restores the world as it was before the apply.
    fn reversible(&self) -> bool {
        true
    }
}

fn quick_policy() -> RetryPolicy {
    RetryPolicy {
        timeout: Duration::from_secs(2),
        retries: 0,
        backoff: Duration::from_millis(1),
    }
}

fn argv(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// `block_ip` with a "firewall" of `mkdir`/`rmdir` on marker dirs in a temp dir.
struct FirewallSubject {
    exec: BlockIpExecutor,
    dir: tempfile::TempDir,
}

impl FirewallSubject {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = format!("{}/{{target}}", dir.path().display());
        let firewall = FirewallCommand {
            apply: ArgvTemplate::parse(&argv(&["/bin/mkdir", &path]), &[]).unwrap(),
            undo: Some(ArgvTemplate::parse(&argv(&["/bin/rmdir", &path]), &[]).unwrap()),
            check: None,
            timeout: Duration::from_secs(10),
        };
        Self {
            exec: BlockIpExecutor::new(firewall),
            dir,
        }
    }
}

impl Subject for FirewallSubject {
    fn name(&self) -> &str {
        "block_ip"
    }
    fn executor(&self) -> &dyn Executor {
        &self.exec
    }
    fn request(&self, id: &str, op: ExecOp) -> ExecRequest {
        request(
            action(id, ActionKind::BlockIp, "10.0.0.7", Params::new()),
            op,
        )
    }
    fn failing(&self, id: &str) -> ExecRequest {
        request(
            action(id, ActionKind::BlockIp, "not-an-address", Params::new()),
            ExecOp::Apply,
        )
    }
    fn world(&self) -> String {
        listing(Some(&self.dir))
    }
}

fn listing(dir: Option<&tempfile::TempDir>) -> String {
    let Some(dir) = dir else {
        return String::new();
    };
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names.join(",")
}

/// Resolves `env:HOOK`.
struct TestSecrets;

impl SecretSource for TestSecrets {
    fn resolve(&self, reference: &SecretRef) -> Result<Secret, SecretError> {
        match reference {
            SecretRef::Env(v) if v == "HOOK" => Ok(Secret::new("k")),
            other => Err(SecretError::Unresolved {
                reference: other.to_string(),
                why: "unset".into(),
            }),
        }
    }
}

struct WebhookSubject {
    exec: WebhookExecutor,
    server: FakeServer,
}

impl WebhookSubject {
    fn new(rt: &Runtime) -> Self {
        let config = WebhookConfig {
            url: None,
            secret: Some(SecretRef::Env("HOOK".into())),
            policy: quick_policy(),
        };
        Self {
            exec: WebhookExecutor::new(
                config,
                rt.handle().clone(),
                crate::testkit::http_client(),
                Arc::new(TestSecrets),
                Arc::new(FakeClock::new(0)),
            ),
            server: FakeServer::start(rt),
        }
    }
}

impl Subject for WebhookSubject {
    fn name(&self) -> &str {
        "webhook"
    }
    fn executor(&self) -> &dyn Executor {
        &self.exec
    }
    fn request(&self, id: &str, op: ExecOp) -> ExecRequest {
        let params = Params::from([
            ("url".to_owned(), ParamValue::Str(self.server.url("/apply"))),
            (
                "undo_url".to_owned(),
                ParamValue::Str(self.server.url("/undo")),
            ),
        ]);
        request(action(id, ActionKind::Webhook, "ticket", params), op)
    }
    fn failing(&self, id: &str) -> ExecRequest {
        let params = Params::from([("url".to_owned(), ParamValue::Str(closed_port_url()))]);
        request(
            action(id, ActionKind::Webhook, "ticket", params),
            ExecOp::Apply,
        )
    }
    /// The receiver's view: how many times each action is applied (undo never below 0).
    fn world(&self) -> String {
        let mut applied: BTreeMap<String, u32> = BTreeMap::new();
        for r in self.server.requests() {
            let id = r.json()["action"]["id"].as_str().unwrap().to_owned();
            let n = applied.entry(id).or_default();
            match r.path.as_str() {
                "/apply" => *n += 1,
                _ => *n = n.saturating_sub(1),
            }
        }
        applied.retain(|_, n| *n > 0);
        format!("{applied:?}")
    }
}

struct NotifySubject {
    exec: NotifyExecutor,
    server: FakeServer,
}

impl NotifySubject {
    fn new(rt: &Runtime) -> Self {
        let server = FakeServer::start(rt);
        let config = NotifyConfig {
            url: Some(UrlSource::Url(
                Endpoint::parse(&server.url("/chat")).unwrap(),
            )),
            channels: BTreeMap::from([(
                "down".to_owned(),
                UrlSource::Url(Endpoint::parse(&closed_port_url()).unwrap()),
            )]),
            format: NotifyFormat::Slack,
            secret: None,
            policy: quick_policy(),
        };
        Self {
            exec: NotifyExecutor::new(
                config,
                rt.handle().clone(),
                crate::testkit::http_client(),
                Arc::new(TestSecrets),
            ),
            server,
        }
    }
}

impl Subject for NotifySubject {
    fn name(&self) -> &str {
        "notify"
    }
    fn executor(&self) -> &dyn Executor {
        &self.exec
    }
    fn request(&self, id: &str, op: ExecOp) -> ExecRequest {
        request(action(id, ActionKind::Notify, "ops", Params::new()), op)
    }
    fn failing(&self, id: &str) -> ExecRequest {
        let params = Params::from([("channel".to_owned(), ParamValue::Str("down".into()))]);
        request(action(id, ActionKind::Notify, "ops", params), ExecOp::Apply)
    }
    fn world(&self) -> String {
        format!("{} messages", self.server.requests().len())
    }
    fn reversible(&self) -> bool {
        false
    }
}

struct CommandSubject {
    exec: CommandExecutor,
    dir: tempfile::TempDir,
}

impl CommandSubject {
    fn new() -> Self {
        Self {
            exec: CommandExecutor::new(CommandConfig {
                allow: vec![],
                timeout: Duration::from_secs(10),
            }),
            dir: tempfile::tempdir().unwrap(),
        }
    }
}

impl Subject for CommandSubject {
    fn name(&self) -> &str {
        "command"
    }
    fn executor(&self) -> &dyn Executor {
        &self.exec
    }
    fn request(&self, id: &str, op: ExecOp) -> ExecRequest {
        let params = Params::from([
            ("argv".to_owned(), strs(&["/bin/mkdir", "{target}"])),
            ("undo_argv".to_owned(), strs(&["/bin/rmdir", "{target}"])),
        ]);
        let target = format!("{}/{id}", self.dir.path().display());
        request(action(id, ActionKind::Command, &target, params), op)
    }
    fn failing(&self, id: &str) -> ExecRequest {
        let params = Params::from([("argv".to_owned(), strs(&["/bin/false"]))]);
        request(action(id, ActionKind::Command, "x", params), ExecOp::Apply)
    }
    fn world(&self) -> String {
        listing(Some(&self.dir))
    }
}

struct SignalSubject {
    exec: SignalExecutor,
    child: Sleeper,
}

impl Subject for SignalSubject {
    fn name(&self) -> &str {
        "signal"
    }
    fn executor(&self) -> &dyn Executor {
        &self.exec
    }
    fn request(&self, id: &str, op: ExecOp) -> ExecRequest {
        let params = Params::from([("signal".to_owned(), ParamValue::Str("STOP".into()))]);
        let mut r = request(action(id, ActionKind::Signal, "agent:x", params), op);
        r.asset = Some(Asset {
            pid: Some(self.child.0.id()),
            ..Asset::new("agent:x")
        });
        r
    }
    fn failing(&self, id: &str) -> ExecRequest {
        let mut r = self.request(id, ExecOp::Apply);
        r.asset = Some(Asset {
            pid: Some(1),
            ..Asset::new("agent:x")
        });
        r
    }
    fn world(&self) -> String {
        format!("stopped={}", is_stopped(self.child.settled_state()))
    }
}

fn subjects(rt: &Runtime) -> Vec<Box<dyn Subject>> {
    vec![
        Box::new(FirewallSubject::new()),
        Box::new(WebhookSubject::new(rt)),
        Box::new(NotifySubject::new(rt)),
        Box::new(CommandSubject::new()),
        Box::new(SignalSubject {
            exec: SignalExecutor::new(),
            child: Sleeper::start(),
        }),
    ]
}

fn for_each(check: fn(&dyn Subject)) {
    let rt = runtime();
    for s in subjects(&rt) {
        check(s.as_ref());
    }
}

fn dry(mut r: ExecRequest) -> ExecRequest {
    r.action.mode = Mode::DryRun;
    r
}

#[test]
fn apply_then_undo() {
    for_each(|s| {
        let before = s.world();
        let r = execute(s.executor(), s.request("c-1", ExecOp::Apply));
        assert!(r.ok, "{}: apply: {r:?}", s.name());
        let applied = s.world();
        assert_ne!(applied, before, "{}: apply changed nothing", s.name());
        let r = execute(s.executor(), s.request("c-1", ExecOp::Undo));
        assert!(r.ok, "{}: undo: {r:?}", s.name());
        let want = if s.reversible() { &before } else { &applied };
        assert_eq!(&s.world(), want, "{}: after undo", s.name());
    });
}

#[test]
fn dry_run_changes_nothing() {
    for_each(|s| {
        let before = s.world();
        let r = execute(s.executor(), dry(s.request("c-1", ExecOp::Apply)));
        assert!(r.ok, "{}: {r:?}", s.name());
        assert!(
            r.message.starts_with("dry run: would "),
            "{}: {}",
            s.name(),
            r.message
        );
        assert!(
            !r.details.is_empty(),
            "{}: a dry run shows what it would do",
            s.name()
        );
        assert!(
            execute(s.executor(), dry(s.request("c-1", ExecOp::Undo))).ok,
            "{}",
            s.name()
        );
        assert_eq!(s.world(), before, "{}", s.name());
        // A dry run claims nothing: the real apply still runs afterwards.
        assert!(
            execute(s.executor(), s.request("c-1", ExecOp::Apply)).ok,
            "{}",
            s.name()
        );
        assert_ne!(s.world(), before, "{}", s.name());
    });
}

#[test]
fn repeated_apply_is_idempotent() {
    for_each(|s| {
        assert!(
            execute(s.executor(), s.request("c-1", ExecOp::Apply)).ok,
            "{}",
            s.name()
        );
        let once = s.world();
        let r = execute(s.executor(), s.request("c-1", ExecOp::Apply));
        assert!(r.ok, "{}: {r:?}", s.name());
        assert_eq!(
            r.details.get("idempotent").map(String::as_str),
            Some("true"),
            "{}",
            s.name()
        );
        assert_eq!(s.world(), once, "{}: applied twice", s.name());
        assert!(
            execute(s.executor(), s.request("c-1", ExecOp::Undo)).ok,
            "{}",
            s.name()
        );
        let undone = s.world();
        assert!(
            execute(s.executor(), s.request("c-1", ExecOp::Undo)).ok,
            "{}",
            s.name()
        );
        assert!(
            !execute(s.executor(), s.request("c-1", ExecOp::Apply)).ok,
            "{}: re-applied an undone action",
            s.name()
        );
        assert_eq!(s.world(), undone, "{}", s.name());
    });
}

#[test]
fn concurrent_duplicates_apply_once() {
    for_each(|s| {
        let before = s.world();
        let (exec, req) = (s.executor(), s.request("c-1", ExecOp::Apply));
        let results: Vec<bool> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..6)
                .map(|_| {
                    let req = req.clone();
                    scope.spawn(move || execute(exec, req).ok)
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(results.iter().all(|ok| *ok), "{}: {results:?}", s.name());
        let once = s.world();
        assert_ne!(once, before, "{}", s.name());
        assert!(
            execute(s.executor(), s.request("c-1", ExecOp::Undo)).ok,
            "{}",
            s.name()
        );
        // One apply and one undo: a reversible world is back where it started.
        if s.reversible() {
            assert_eq!(s.world(), before, "{}: {once}", s.name());
        }
    });
}

#[test]
fn failures_come_through_the_completion() {
    for_each(|s| {
        let before = s.world();
        let r = execute(s.executor(), s.failing("c-1"));
        assert!(!r.ok, "{}: {r:?}", s.name());
        assert!(!r.message.is_empty(), "{}", s.name());
        assert_eq!(
            s.world(),
            before,
            "{}: a failure left state behind",
            s.name()
        );
        let mut other = s.request("c-2", ExecOp::Apply);
        other.action.kind = if other.action.kind == ActionKind::Reset {
            ActionKind::Notify
        } else {
            ActionKind::Reset
        };
        assert!(
            !execute(s.executor(), other).ok,
            "{}: ran an unsupported kind",
            s.name()
        );
    });
}

#[test]
fn undo_of_something_never_applied_is_clean() {
    for_each(|s| {
        let before = s.world();
        // Either outcome is fine (e.g. `rmdir` of a missing dir fails); a panic or a
        // changed world is not.
        let _ = execute(s.executor(), s.request("never", ExecOp::Undo));
        assert_eq!(s.world(), before, "{}", s.name());
    });
}
