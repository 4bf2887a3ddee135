//! The detection engine: per-entity baselines, the rule detector, learned web-application
//! profiles, correlation of findings
//! into incidents, all partitioned by `(tenant, entity)`. Pure and deterministic: time comes
//! from events and ticks, never from the wall clock, and nothing here does I/O.

pub mod baseline;
pub mod config;
pub mod correlate;
pub mod engine;
pub mod kinds;
pub mod models;
pub mod partition;
pub mod rulebook;
pub mod webprof;

pub use config::EngineConfig;
pub use engine::{partition_of, Engine};
pub use models::{ModelBinding, ModelSet, ModelStats, Slot, Source};
pub use partition::{EntityFacts, EntityView, Outputs, Partition, Sample, SnapshotImage};
pub use rulebook::RuleBook;
pub use webprof::{TenantProfiles, WebProfilesConfig};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("engine snapshot is unreadable: {0}")]
    Snapshot(String),
}
