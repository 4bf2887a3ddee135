//! Responder configuration (the `[respond]` table of `antibody.toml`): the default tenant
//! policy, per-tenant overrides, fleet correlation, the blast-radius guard and the seed.

use crate::fleet::FleetConfig;
use crate::guard::GuardConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What happens to an approval nobody answered in time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnTimeout {
    /// Tell a human (once) and keep waiting.
    Escalate,
    /// Reject the action.
    Reject,
}

/// Per-tenant response policy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
        }
    }
}

impl TenantPolicy {
    pub fn validate(&self) -> Result<(), String> {
        let checks = [
            (self.approval_sigma > 0.0, "approval_sigma must be positive"),
            (
                (0.0..=10.0).contains(&self.approval_risk),
                "approval_risk must be 0–10",
            ),
            ((1..=5).contains(&self.approvers), "approvers must be 1–5"),
            (
                self.approval_timeout_ms > 0,
                "approval_timeout_ms must be positive",
            ),
            (self.skip_sigma > 0.0, "skip_sigma must be positive"),
            (self.drain_ms >= 0, "drain_ms must not be negative"),
            (
                self.probation_samples > 0,
                "probation_samples must be positive",
            ),
        ];
        match checks.iter().find(|(ok, _)| !ok) {
            Some((_, msg)) => Err((*msg).to_owned()),
            None => Ok(()),
        }
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
    fn parses_partial_json() {
        let c: ResponderConfig =
            serde_json::from_str(r#"{"seed":7,"policy":{"approval_sigma":4.0}}"#).unwrap();
        assert_eq!(c.seed, 7);
        assert_eq!(c.policy.approval_sigma, 4.0);
        assert_eq!(c.policy.suspect_ticks, 3);
        assert!(serde_json::from_str::<ResponderConfig>(r#"{"sead":7}"#).is_err());
    }
}
