//! After a crash the server restores the responder's snapshot and the engine replays its log
//! tail, so the responder is fed again incident versions it already judged: they change
//! nothing. And the server learns which entities to sample again.

use antibody_core::{
    Explanation, Finding, Incident, IncidentStatus, Severity, TenantId, TimestampMs,
};
use antibody_respond::{Decision, LifecycleState, PlaybookSet, Responder, ResponderConfig};
use serde_json::json;
use std::sync::Arc;

const T0: TimestampMs = 1_800_000_000_000;
const E: &str = "agent:p";

fn t() -> TenantId {
    TenantId::new("acme")
}

/// Version `n` of incident `i-1`: `n` findings, the last at `ts`.
fn version(n: u64, ts: TimestampMs) -> (Incident, Finding) {
    let finding = Finding {
        id: format!("f-{n}"),
        tenant: t(),
        ts,
        entity: E.into(),
        kind: "token_spike".into(),
        detector: "baseline".into(),
        severity: Severity::High,
        score: 0.8,
        explanation: Explanation::text("replay"),
        evidence: json!({"metric": "tokens", "sigma": 7.5})
            .as_object()
            .cloned()
            .unwrap_or_default(),
        incident: Some("i-1".into()),
    };
    let incident = Incident {
        id: "i-1".into(),
        tenant: t(),
        entity: E.into(),
        status: IncidentStatus::Open,
        opened: T0,
        updated: ts,
        risk: 0.0,
        severity: Severity::High,
        kinds: vec!["token_spike".into()],
        finding_count: n,
        max_score: 0.8,
        diagnosis: Vec::new(),
        findings: Vec::new(),
        actions: Vec::new(),
        timeline: Vec::new(),
        workflow: Default::default(),
    };
    (incident, finding)
}

/// An entity on probation after its approved rate limit, and the incident version behind it.
fn on_probation() -> (Responder, Incident, Finding) {
    let mut r = Responder::new(
        Arc::new(ResponderConfig::default()),
        Arc::new(PlaybookSet::default_pack().unwrap()),
    );
    let (inc, f) = version(1, T0);
    let ds = r.on_incident(&inc, std::slice::from_ref(&f), T0);
    let id = ds
        .iter()
        .find_map(|d| match d {
            Decision::Action { action, .. } => Some(action.id.clone()),
            _ => None,
        })
        .expect("an action");
    r.approve("k-alice", &t(), &id, T0 + 1_000).unwrap();
    r.on_action_result(&t(), &id, true, "limited", T0 + 2_000)
        .unwrap();
    assert_eq!(r.entity_state(&t(), E), LifecycleState::Probation);
    (r, inc, f)
}

#[test]
fn a_replayed_incident_version_does_not_fail_a_probation() {
    let (mut r, inc, f) = on_probation();
    let ds = r.on_incident(&inc, &[f], T0 + 3_000);
    assert!(ds.is_empty(), "{ds:#?}");
    assert_eq!(r.entity_state(&t(), E), LifecycleState::Probation);
    // A newer version is news: the anomaly fails the probation.
    let (newer, f2) = version(2, T0 + 4_000);
    r.on_incident(&newer, &[f2], T0 + 4_000);
    assert_ne!(r.entity_state(&t(), E), LifecycleState::Probation);
}

#[test]
fn entities_on_probation_are_the_ones_to_sample() {
    let (mut r, _, _) = on_probation();
    let sampled = r.sampled_entities();
    assert_eq!(sampled, [(t(), E.to_owned())]);
    for i in 0..5 {
        r.on_sample(&t(), E, true, T0 + 3_000 + i);
    }
    assert_eq!(r.entity_state(&t(), E), LifecycleState::Healthy);
    assert!(r.sampled_entities().is_empty());
}
