//! The registry: which executor carries out which action kind, built from the validated
//! configuration, plus the drift checks of the executors that have one.

use crate::block_ip::BlockIpExecutor;
use crate::command::CommandExecutor;
use crate::config::ExecutorsConfig;
use crate::drift::{Drift, DriftCheck};
use crate::notify::NotifyExecutor;
use crate::secret::SecretSource;
use crate::signal::SignalExecutor;
use crate::webhook::WebhookExecutor;
use antibody_core::Clock;
use antibody_respond::executor::{ExecRequest, Executor};
use antibody_respond::ActionKind;
use std::sync::Arc;
use tokio::runtime::Handle;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("no executor is configured for {kind} actions (configured: {})", list(.available))]
    NoExecutor {
        kind: ActionKind,
        available: Vec<ActionKind>,
    },
}

fn list(kinds: &[ActionKind]) -> String {
    if kinds.is_empty() {
        return "none".into();
    }
    kinds
        .iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// What the executors share with the server.
#[derive(Clone)]
pub struct Context {
    /// Where HTTP deliveries run.
    pub runtime: Handle,
    /// The binary's one outbound HTTP client.
    pub http: crate::http::HttpClient,
    pub clock: Arc<dyn Clock>,
    pub secrets: Arc<dyn SecretSource>,
}

struct Entry {
    executor: Arc<dyn Executor>,
    drift: Option<Arc<dyn DriftCheck>>,
}

#[derive(Default)]
pub struct Registry {
    entries: Vec<Entry>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every executor the configuration enables. Kinds antibody serves itself (`block_ip`,
    /// `rate_limit`, `quarantine`, …: `antibody_respond::enforce`) have none, except
    /// `block_ip` when a firewall command is configured.
    pub fn build(config: ExecutorsConfig, ctx: &Context) -> Self {
        let mut r = Self::new();
        let clock = &ctx.clock;
        if let Some(firewall) = config.firewall {
            r.add_checked(Arc::new(BlockIpExecutor::new(firewall)));
        }
        if let Some(webhook) = config.webhook {
            let e = WebhookExecutor::new(
                webhook,
                ctx.runtime.clone(),
                ctx.http.clone(),
                ctx.secrets.clone(),
                clock.clone(),
            );
            r.add(Arc::new(e), None);
        }
        if let Some(notify) = config.notify {
            let e = NotifyExecutor::new(
                notify,
                ctx.runtime.clone(),
                ctx.http.clone(),
                ctx.secrets.clone(),
            );
            r.add(Arc::new(e), None);
        }
        if let Some(command) = config.command {
            r.add_checked(Arc::new(CommandExecutor::new(command)));
        }
        if config.signal {
            r.add_checked(Arc::new(SignalExecutor::new()));
        }
        r
    }

    /// Adds an executor; an earlier one supporting the same kind keeps precedence.
    pub fn add(&mut self, executor: Arc<dyn Executor>, drift: Option<Arc<dyn DriftCheck>>) {
        self.entries.push(Entry { executor, drift });
    }

    fn add_checked<T: Executor + DriftCheck + 'static>(&mut self, executor: Arc<T>) {
        self.add(executor.clone(), Some(executor));
    }

    /// The executor for `kind`, or an error listing the kinds that have one.
    pub fn executor(&self, kind: ActionKind) -> Result<Arc<dyn Executor>, RegistryError> {
        self.entry(kind)
            .map(|e| e.executor.clone())
            .ok_or_else(|| RegistryError::NoExecutor {
                kind,
                available: self.kinds(),
            })
    }

    /// The kinds some executor carries out, in catalogue order.
    pub fn kinds(&self) -> Vec<ActionKind> {
        ActionKind::ALL
            .into_iter()
            .filter(|k| self.entry(*k).is_some())
            .collect()
    }

    /// Re-checks an applied action; `None` when it holds or its executor cannot tell.
    pub fn check_drift(&self, request: &ExecRequest) -> Option<Drift> {
        self.entry(request.action.kind)?
            .drift
            .as_ref()?
            .check(request)
    }

    fn entry(&self, kind: ActionKind) -> Option<&Entry> {
        self.entries.iter().find(|e| e.executor.supports(kind))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{RawBlockIp, RawExecutorsConfig, RawSignal};
    use crate::secret::{Secret, SecretError, SecretRef};
    use crate::testkit::{action, request, runtime, Sleeper};
    use antibody_core::FakeClock;
    use antibody_respond::executor::ExecOp;
    use antibody_respond::{Asset, ParamValue, Params};

    struct NoSecrets;

    impl SecretSource for NoSecrets {
        fn resolve(&self, reference: &SecretRef) -> Result<Secret, SecretError> {
            Err(SecretError::Unresolved {
                reference: reference.to_string(),
                why: "none".into(),
            })
        }
    }

    fn context(rt: &tokio::runtime::Runtime) -> Context {
        Context {
            http: crate::testkit::http_client(),
            runtime: rt.handle().clone(),
            clock: Arc::new(FakeClock::new(0)),
            secrets: Arc::new(NoSecrets),
        }
    }

    #[test]
    fn default_config_routes_the_safe_kinds_and_names_the_rest() {
        let rt = runtime();
        let ctx = context(&rt);
        let raw = RawExecutorsConfig::default();
        let r = Registry::build(ExecutorsConfig::try_from(raw).unwrap(), &ctx);
        assert_eq!(r.kinds(), [ActionKind::Webhook]);
        assert_eq!(r.executor(ActionKind::Webhook).unwrap().name(), "webhook");
        let err = r.executor(ActionKind::Signal).err().unwrap();
        assert_eq!(
            err.to_string(),
            "no executor is configured for signal actions (configured: webhook)"
        );
        assert_eq!(
            RegistryError::NoExecutor {
                kind: ActionKind::Reset,
                available: vec![]
            }
            .to_string(),
            "no executor is configured for reset actions (configured: none)"
        );
    }

    #[test]
    fn drift_goes_to_the_kinds_checker() {
        let rt = runtime();
        let ctx = context(&rt);
        let raw = RawExecutorsConfig {
            signal: RawSignal { enabled: true },
            block_ip: RawBlockIp {
                argv: Some(vec!["/bin/true".into()]),
                check_argv: Some(vec!["/bin/false".into()]),
                ..RawBlockIp::default()
            },
            ..RawExecutorsConfig::default()
        };
        let r = Registry::build(ExecutorsConfig::try_from(raw).unwrap(), &ctx);
        assert_eq!(
            r.kinds(),
            [ActionKind::BlockIp, ActionKind::Webhook, ActionKind::Signal]
        );
        let block = request(
            action("a-1", ActionKind::BlockIp, "1.2.3.4", Params::new()),
            ExecOp::Apply,
        );
        let drift = r.check_drift(&block).unwrap();
        assert!(
            drift.message.starts_with("firewall check failed"),
            "{drift:?}"
        );
        // A running process the action should have stopped: the signal executor tells.
        let child = Sleeper::start();
        let params = Params::from([("signal".to_owned(), ParamValue::Str("STOP".into()))]);
        let mut stop = request(
            action("a-2", ActionKind::Signal, "agent:x", params),
            ExecOp::Apply,
        );
        stop.asset = Some(Asset {
            pid: Some(child.0.id()),
            ..Asset::new("agent:x")
        });
        let drift = r.check_drift(&stop).unwrap();
        assert!(drift.message.contains("no longer stopped"), "{drift:?}");
        let webhook = request(
            action("a-3", ActionKind::Webhook, "x", Params::new()),
            ExecOp::Apply,
        );
        assert_eq!(r.check_drift(&webhook), None, "webhook has no drift check");
    }
}
