//! Carrying out approved actions, by the kind's [`EffectPoint`]:
//! * served by antibody's enforcement view (`block_ip`, `rate_limit`, `quarantine`,
//!   `isolate`, `revoke_tools`, `budget_cap`): in force the moment the action succeeds, and
//!   the result says where it is served. With `[executors.block_ip] argv`, `block_ip` first
//!   runs that firewall command, and its result decides.
//! * reaching outside (`notify`, `webhook`, `command`, `signal`): a configured [`Executor`];
//!   results come back to the stage as messages. With no notify channel configured,
//!   `notify` goes to the built-in inbox ([`super::inbox`]).
//! * needing a control point antibody does not have (`reset`: an agent control API): the
//!   action ends `recorded`, saying who must do it — never `succeeded`.

use super::RespondMsg;
use antibody_core::{TenantId, TimestampMs};
use antibody_respond::{
    Action, ActionKind, Asset, Decision, EffectPoint, ExecOp, ExecRequest, Executor, Responder,
};
use std::sync::mpsc::Sender;
use std::sync::Arc;

#[derive(Default, Clone)]
pub struct Executors {
    external: Vec<Arc<dyn Executor>>,
    /// Re-checks applied external actions (see [`Executors::drifted`]).
    registry: Option<Arc<antibody_executors::Registry>>,
    /// The optional LLM investigator (`[investigator]`).
    investigator: super::InvestigatorSetup,
    /// Where `notify` goes while no notify executor is configured.
    inbox: Option<Arc<super::inbox::Inbox>>,
}

/// Where an applied action of a kind the view serves can be read.
fn served_at(action: &Action) -> String {
    let verdict = |entity: &str| format!("/v1/entities/{entity}/verdict");
    match action.kind {
        ActionKind::BlockIp if action.target.contains('/') => "/v1/blocklist".to_owned(),
        ActionKind::BlockIp => {
            let entity = action.target.strip_prefix("ip:").unwrap_or(&action.target);
            format!("/v1/blocklist and {}", verdict(&format!("ip:{entity}")))
        }
        _ => verdict(&action.target),
    }
}

/// Why an action of a kind with no control point attached is only recorded.
fn unattached(action: &Action) -> String {
    format!(
        "recorded, not applied: no agent control point is attached; {} {} must be done by the agent's operator",
        action.kind, action.target
    )
}

impl Executors {
    /// Applied external actions whose effect no longer holds (a firewall rule someone
    /// deleted, a stopped process that was resumed): `(action id, what changed)`. Each is
    /// checked with the asset of the entity it was decided for, as it was carried out.
    pub(crate) fn drifted(
        &self,
        responder: &Responder,
        tenant: &TenantId,
    ) -> Vec<(String, String)> {
        let Some(registry) = &self.registry else {
            return Vec::new();
        };
        responder
            .applied_actions(tenant)
            .filter(|(_, a)| self.find(a.kind).is_some())
            .filter_map(|(entity, a)| {
                let request = ExecRequest {
                    tenant: tenant.clone(),
                    entity: entity.to_owned(),
                    op: ExecOp::Apply,
                    action: a.clone(),
                    asset: responder.asset(tenant, entity).cloned(),
                };
                registry
                    .check_drift(&request)
                    .map(|d| (a.id.clone(), d.message))
            })
            .collect()
    }

    /// The outward-facing executors configured under `[executors]`.
    pub fn from_config(
        raw: antibody_executors::RawExecutorsConfig,
        runtime: tokio::runtime::Handle,
        http: antibody_executors::HttpClient,
        clock: Arc<dyn antibody_core::Clock>,
    ) -> Result<Self, antibody_executors::ConfigError> {
        let config = antibody_executors::ExecutorsConfig::try_from(raw)?;
        let ctx = antibody_executors::Context {
            runtime,
            http,
            clock,
            secrets: Arc::new(antibody_executors::EnvOrFile),
        };
        let registry = antibody_executors::Registry::build(config, &ctx);
        let external: Vec<Arc<dyn Executor>> = registry
            .kinds()
            .into_iter()
            .filter_map(|k| registry.executor(k).ok())
            .collect();
        Ok(Self {
            external,
            registry: Some(Arc::new(registry)),
            investigator: super::InvestigatorSetup::default(),
            inbox: None,
        })
    }

    pub(crate) fn with_inbox(mut self, inbox: Arc<super::inbox::Inbox>) -> Self {
        self.inbox = Some(inbox);
        self
    }

    /// Adds the `[investigator]` section: its limits always, its client when `base_url` is
    /// set. The API key is resolved per question, like executor secrets.
    pub fn with_investigator(
        mut self,
        raw: antibody_executors::RawInvestigatorConfig,
        runtime: tokio::runtime::Handle,
        http: antibody_executors::HttpClient,
    ) -> Result<Self, antibody_executors::InvestigatorConfigError> {
        let cfg = antibody_executors::InvestigatorConfig::try_from(raw)?;
        let client = cfg.client.map(|c| {
            tracing::info!(endpoint = ?c.endpoint, model = %c.model, "investigator configured");
            Arc::new(antibody_executors::Investigator::new(
                c,
                http.clone(),
                Arc::new(antibody_executors::EnvOrFile),
                runtime,
            ))
        });
        self.investigator = super::InvestigatorSetup {
            client,
            policy: cfg.ask,
            limits: cfg.limits,
        };
        Ok(self)
    }

    pub(crate) fn investigator(&self) -> super::InvestigatorSetup {
        self.investigator.clone()
    }

    fn find(&self, kind: ActionKind) -> Option<&Arc<dyn Executor>> {
        self.external.iter().find(|e| e.supports(kind))
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn run(
        &self,
        responder: &mut Responder,
        tenant: &TenantId,
        entity: &str,
        action: &Action,
        asset: Option<Asset>,
        own: &Sender<RespondMsg>,
        now: TimestampMs,
    ) -> Vec<Decision> {
        let mut out = match responder.on_action_started(tenant, &action.id, now) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(action = %action.id, error = %e, "cannot start action");
                return Vec::new();
            }
        };
        let point = action.kind.effect_point();
        if point == EffectPoint::View && self.find(action.kind).is_none() {
            let msg = format!(
                "{} {} in force; served at {}",
                action.kind,
                action.target,
                served_at(action)
            );
            out.extend(
                responder
                    .on_action_result(tenant, &action.id, true, &msg, now)
                    .unwrap_or_default(),
            );
            return out;
        }
        if point == EffectPoint::Unattached && self.find(action.kind).is_none() {
            let msg = unattached(action);
            out.extend(
                responder
                    .on_action_recorded(tenant, &action.id, &msg, now)
                    .unwrap_or_default(),
            );
            return out;
        }
        let Some(exec) = self.find(action.kind) else {
            let (ok, msg) = match (&self.inbox, action.kind) {
                (Some(inbox), ActionKind::Notify) => {
                    let severity = super::inbox::severity(responder, tenant, &action.incident);
                    inbox.notify(tenant, entity, action, severity, now)
                }
                _ => (
                    false,
                    format!(
                        "no `{}` executor is configured; add it under [executors] in antibody.toml",
                        action.kind
                    ),
                ),
            };
            out.extend(
                responder
                    .on_action_result(tenant, &action.id, ok, &msg, now)
                    .unwrap_or_default(),
            );
            return out;
        };
        let request = ExecRequest {
            tenant: tenant.clone(),
            entity: entity.to_owned(),
            op: ExecOp::Apply,
            action: action.clone(),
            asset,
        };
        let (own, tenant, id) = (own.clone(), tenant.clone(), action.id.clone());
        exec.execute(
            request,
            Box::new(move |r| {
                let _ = own.send(RespondMsg::Executed {
                    tenant,
                    id,
                    ok: r.ok,
                    message: r.message,
                });
            }),
        );
        out
    }

    /// Undoes an external action that left state behind; what the view serves lapses with
    /// the responder's record.
    pub(crate) fn undo(
        &self,
        tenant: &TenantId,
        entity: &str,
        action: &Action,
        asset: Option<Asset>,
    ) {
        if !action.kind.is_reversible(&action.params) {
            return;
        }
        let Some(exec) = self.find(action.kind) else {
            return;
        };
        let id = action.id.clone();
        let request = ExecRequest {
            tenant: tenant.clone(),
            entity: entity.to_owned(),
            op: ExecOp::Undo,
            action: action.clone(),
            asset,
        };
        exec.execute(
            request,
            Box::new(move |r| {
                if r.ok {
                    tracing::info!(action = %id, "undone: {}", r.message);
                } else {
                    tracing::error!(action = %id, "undo failed: {}", r.message);
                }
            }),
        );
    }
}
