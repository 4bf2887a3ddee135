//! Domain types and the engine's seams. Every other antibody crate depends on this one and
//! this one depends on none of them: events, findings, incidents, tenants, severities, the
//! injected clock and the ingest parser that turns request bodies into events.

pub mod clock;
pub mod event;
pub mod finding;
pub mod incident;
pub mod ingest;
pub mod rng;
pub mod tenant;

pub use clock::{Clock, FakeClock, SystemClock, TimestampMs};
pub use event::{AttrValue, Event};
pub use finding::{Detector, Evidence, Explanation, Finding, FindingKind, Severity};
pub use incident::{
    Hypothesis, Incident, IncidentStatus, Note, Resolution, TimelineEntry, Workflow,
};
pub use tenant::TenantId;
