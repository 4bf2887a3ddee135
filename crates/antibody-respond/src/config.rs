//! Responder configuration (the `[respond]` table of `antibody.toml`): the default tenant
//! policy, per-tenant overrides, fleet correlation, the blast-radius guard and the seed.
//! A tenant's admin may also set its policy at run time (`PUT /v1/policy`); that document
//! is read over the configured policy and handed to [`crate::Responder::set_tenant_policy`].

use crate::action::{ActionKind, ActionStatus, Mode};
use crate::fleet::FleetConfig;
use crate::gateway_policy::GatewayPolicy;
use crate::guard::GuardConfig;
use crate::playbook::AllowList;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What happens to an approval nobody answered in time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnTimeout {
    /// Tell a human (once) and keep waiting.
    Escalate,
    /// Reject the action.
    Reject,
}

/// Per-tenant response policy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct TenantPolicy {
    /// An automatic action waits for approval when the incident's worst deviation reaches this.
    pub approval_sigma: f64,
    /// … or when its risk reaches this.
    pub approval_risk: f64,
    /// Distinct approvers an approval needs at least (a playbook may ask for more).
    pub approvers: u8,
    pub approval_timeout_ms: i64,
    pub on_approval_timeout: OnTimeout,
    /// Anomalous ticks an entity stays suspected before the ladder starts.
    pub suspect_ticks: u32,
    /// A baseline deviation this large skips the suspect window.
    pub skip_sigma: f64,
    /// Time in-flight work gets between containment and quarantine.
    pub drain_ms: i64,
    /// Fresh samples within baseline that end probation.
    pub probation_samples: u32,
    /// Forces one mode on every playbook (`approve` while a tenant onboards, say).
    pub mode: Option<Mode>,
    /// Forces a mode per playbook id; wins over `mode`.
    pub modes: BTreeMap<String, Mode>,
    /// Entities and addresses no playbook acts on, on top of each playbook's own list.
    pub allow: AllowList,
    /// Blast-radius caps for the tenant; `[respond.guard]` when absent.
    pub guard: Option<GuardConfig>,
    /// What the LLM gateway lets the tenant's agents spend (rates, tokens, budgets, models).
    pub gateway: std::sync::Arc<GatewayPolicy>,
}

impl Default for TenantPolicy {
    fn default() -> Self {
        Self {
            approval_sigma: 5.0,
            approval_risk: 9.0,
            approvers: 1,
            approval_timeout_ms: 3_600_000,
            on_approval_timeout: OnTimeout::Escalate,
            suspect_ticks: 3,
            skip_sigma: 7.0,
            drain_ms: 30_000,
            probation_samples: 5,
            mode: None,
            modes: BTreeMap::new(),
            allow: AllowList::default(),
            guard: None,
            gateway: Default::default(),
        }
    }
}

impl TenantPolicy {
    /// The first problem, for configuration errors.
    pub fn validate(&self) -> Result<(), String> {
        if let Some((_, msg)) = self.problems().into_iter().next() {
            return Err(msg.to_owned());
        }
        match self.gateway.problems().into_iter().next() {
            Some(msg) => Err(msg),
            None => Ok(()),
        }
    }

    /// Every problem, each with the field it is about.
    pub fn problems(&self) -> Vec<(&'static str, &'static str)> {
        let checks = [
            (
                self.approval_sigma > 0.0,
                "approval_sigma",
                "approval_sigma must be positive",
            ),
            (
                (0.0..=10.0).contains(&self.approval_risk),
                "approval_risk",
                "approval_risk must be 0–10",
            ),
            (
                (1..=5).contains(&self.approvers),
                "approvers",
                "approvers must be 1–5",
            ),
            (
                self.approval_timeout_ms > 0,
                "approval_timeout_ms",
                "approval_timeout_ms must be positive",
            ),
            (
                self.skip_sigma > 0.0,
                "skip_sigma",
                "skip_sigma must be positive",
            ),
            (
                self.drain_ms >= 0,
                "drain_ms",
                "drain_ms must not be negative",
            ),
            (
                self.probation_samples > 0,
                "probation_samples",
                "probation_samples must be positive",
            ),
            (
                self.allow.entities.iter().all(|e| !e.trim().is_empty()),
                "allow",
                "allow.entities must not hold an empty pattern",
            ),
        ];
        checks
            .iter()
            .filter(|(ok, _, _)| !ok)
            .map(|(_, field, msg)| (*field, *msg))
            .collect()
    }

    /// The mode a playbook's actions take for this tenant: the playbook's override here,
    /// else the tenant-wide one, else the playbook's own.
    pub fn mode_for(&self, playbook: &str, own: Mode) -> Mode {
        self.modes
            .get(playbook)
            .copied()
            .or(self.mode)
            .unwrap_or(own)
    }

    /// The status an action of `kind` from playbook `playbook` (own mode `own`) starts in
    /// when something other than the blast-radius guard holds it back, and why; `None` when
    /// it may run automatically (the guard decides last). Shared by the responder and the
    /// simulator's learned policy, so both are held back by exactly the same rules.
    pub fn hold(
        &self,
        playbook: &str,
        own: Mode,
        kind: ActionKind,
        max_sigma: f64,
        risk: f64,
    ) -> Option<(ActionStatus, String)> {
        let mode = self.mode_for(playbook, own);
        // A mode the tenant's policy forced says so in the reason shown with the action.
        let forced = if mode == own {
            String::new()
        } else {
            format!(
                " (the tenant policy sets mode {} for `{playbook}`)",
                mode.as_str()
            )
        };
        // The σ and risk thresholds hold back automatic enforcement; telling people is what a
        // person would be waiting on, so a notify step is not held by them.
        let enforces = kind != ActionKind::Notify;
        Some(match mode {
            Mode::DryRun => (
                ActionStatus::DryRun,
                format!("dry run: recorded, never executed{forced}"),
            ),
            Mode::Notify => (
                ActionStatus::Proposed,
                format!("mode notify: proposed to people, not run{forced}"),
            ),
            Mode::Approval if forced.is_empty() => (
                ActionStatus::PendingApproval,
                format!("playbook `{playbook}` requires approval"),
            ),
            Mode::Approval => (
                ActionStatus::PendingApproval,
                format!("approval required{forced}"),
            ),
            Mode::Auto if enforces && max_sigma >= self.approval_sigma => (
                ActionStatus::PendingApproval,
                format!(
                    "deviation {max_sigma:.1}σ ≥ the {}σ approval threshold",
                    self.approval_sigma
                ),
            ),
            Mode::Auto if enforces && risk >= self.approval_risk => (
                ActionStatus::PendingApproval,
                format!(
                    "risk {risk} ≥ the {} approval threshold",
                    self.approval_risk
                ),
            ),
            Mode::Auto => return None,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResponderConfig {
    /// Seed of the responder's generator (Thompson sampling).
    pub seed: u64,
    pub policy: TenantPolicy,
    /// Tenant id → policy replacing the default.
    pub tenants: BTreeMap<String, TenantPolicy>,
    pub fleet: FleetConfig,
    pub guard: GuardConfig,
    /// Finished actions are forgotten this long after they finished (they live on in the store).
    pub retention_ms: i64,
    /// Actions one step may fan out into (one per attacking address, …).
    pub max_targets_per_step: usize,
    /// An approved action without a result after this long has failed.
    pub execution_timeout_ms: i64,
}

impl Default for ResponderConfig {
    fn default() -> Self {
        Self {
            seed: 0x5EED,
            policy: TenantPolicy::default(),
            tenants: BTreeMap::new(),
            fleet: FleetConfig::default(),
            guard: GuardConfig::default(),
            retention_ms: 86_400_000,
            max_targets_per_step: 16,
            execution_timeout_ms: 600_000,
        }
    }
}

impl ResponderConfig {
    pub fn validate(&self) -> Result<(), String> {
        self.policy
            .validate()
            .map_err(|e| format!("respond.policy.{e}"))?;
        for (t, p) in &self.tenants {
            p.validate()
                .map_err(|e| format!("respond.tenants.{t}.{e}"))?;
        }
        let f = &self.fleet;
        if f.window_ms <= 0 || !(0.0..=1.0).contains(&f.min_share) || f.min_entities == 0 {
            return Err("respond.fleet: window_ms > 0, min_share 0–1, min_entities ≥ 1".into());
        }
        if self.retention_ms <= 0
            || self.max_targets_per_step == 0
            || self.execution_timeout_ms <= 0
        {
            return Err(
                "respond: retention_ms, max_targets_per_step and execution_timeout_ms must be positive"
                    .into(),
            );
        }
        Ok(())
    }

    pub fn policy(&self, tenant: &str) -> &TenantPolicy {
        self.tenants.get(tenant).unwrap_or(&self.policy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_bad_values_are_named() {
        assert_eq!(ResponderConfig::default().validate(), Ok(()));
        let mut c = ResponderConfig::default();
        c.tenants.insert(
            "acme".into(),
            TenantPolicy {
                approvers: 0,
                ..TenantPolicy::default()
            },
        );
        assert_eq!(
            c.validate().unwrap_err(),
            "respond.tenants.acme.approvers must be 1–5"
        );
        assert_eq!(c.policy("acme").approvers, 0);
        assert_eq!(c.policy("other").approvers, 1);
    }

    #[test]
    fn every_problem_is_listed_with_its_field() {
        let p = TenantPolicy {
            approvers: 9,
            drain_ms: -1,
            ..TenantPolicy::default()
        };
        assert_eq!(
            p.problems(),
            vec![
                ("approvers", "approvers must be 1–5"),
                ("drain_ms", "drain_ms must not be negative")
            ]
        );
        assert!(TenantPolicy::default().problems().is_empty());
    }

    #[test]
    fn modes_override_per_playbook_then_for_all() {
        let mut p: TenantPolicy = serde_json::from_str(
            r#"{"mode":"approval","modes":{"port-scan":"dry_run"},"allow":{"cidrs":["10.0.0.0/8"]}}"#,
        )
        .unwrap();
        assert_eq!(p.mode_for("brute-force", Mode::Auto), Mode::Approval);
        assert_eq!(p.mode_for("port-scan", Mode::Auto), Mode::DryRun);
        assert!(p.allow.covering("10.1.2.3").is_some());
        p.mode = None;
        assert_eq!(p.mode_for("brute-force", Mode::Auto), Mode::Auto);
        assert!(serde_json::from_str::<TenantPolicy>(r#"{"allow":{"cidrs":["nope"]}}"#).is_err());
    }

    #[test]
    fn parses_partial_json() {
        let c: ResponderConfig =
            serde_json::from_str(r#"{"seed":7,"policy":{"approval_sigma":4.0}}"#).unwrap();
        assert_eq!(c.seed, 7);
        assert_eq!(c.policy.approval_sigma, 4.0);
        assert_eq!(c.policy.suspect_ticks, 3);
        assert!(serde_json::from_str::<ResponderConfig>(r#"{"sead":7}"#).is_err());
    }
}
