//! Executors: the code that carries out response actions in the world, behind the
//! [`antibody_respond::executor::Executor`] trait.
//!
//! * `block_ip` runs a firewall command when one is configured. The block itself, like
//!   `rate_limit`, `quarantine` and the other in-product effects, is served by antibody's
//!   enforcement view (`antibody_respond::enforce`), not by an executor.
//! * `webhook` and `notify` POST JSON (HMAC-signed, with timeout and retries) through the
//!   binary's one outbound [`HttpClient`] (HTTP or HTTPS).
//! * `command` runs an argv template, never a shell; `signal` signals the asset's pid.
//!
//! Every executor honours dry runs (reports what it would do, changes nothing), remembers
//! the action ids it applied so a repeated apply never runs twice, answers through the
//! completion exactly once and never panics on bad input. Executors that can tell whether
//! their effect still holds implement [`DriftCheck`]. [`Registry`] maps action kinds to the
//! executors the [`ExecutorsConfig`] enables.

pub mod block_ip;
pub mod command;
mod common;
pub mod config;
pub mod drift;
pub mod http;
pub mod investigator;
pub mod ledger;
pub mod notify;
pub mod registry;
mod reply;
pub mod runner;
pub mod secret;
pub mod signal;
pub mod template;
pub mod tls;
pub mod webhook;

#[cfg(test)]
mod conformance;
#[cfg(test)]
mod testkit;

pub use block_ip::{BlockIpExecutor, FirewallCommand};
pub use command::{CommandConfig, CommandExecutor};
pub use config::{ConfigError, ExecutorsConfig, RawExecutorsConfig};
pub use drift::{Drift, DriftCheck};
pub use http::HttpClient;
pub use investigator::{
    AskError, AskPolicy, Investigator, InvestigatorConfig, InvestigatorConfigError,
    RawInvestigatorConfig,
};
pub use notify::{NotifyConfig, NotifyExecutor, NotifyFormat, UrlSource};
pub use registry::{Context, Registry, RegistryError};
pub use secret::{EnvOrFile, Secret, SecretError, SecretRef, SecretSource};
pub use signal::SignalExecutor;
pub use webhook::{WebhookConfig, WebhookExecutor};
