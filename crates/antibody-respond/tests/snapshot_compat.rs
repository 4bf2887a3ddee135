//! Snapshots written by earlier builds still restore. Each `tests/fixtures/responder-vN.snap`
//! is a snapshot file exactly as a build writing format version N left it on disk, holding
//! the state [`scenario`] builds: a pending approval, an active block, an entity on
//! probation and an asset. Version 1 is the unversioned format (postcard bytes, then their
//! CRC-32, written by the server) from before snapshots had a header.
//!
//! A fixture is made once, by the ignored test [`write_fixture`] at the commit that
//! introduces its version (`cargo test -p antibody-respond --test snapshot_compat --
//! --ignored write_fixture`; version 1's was written before the header existed), and never
//! regenerated: it stands for bytes an older build left behind.

use antibody_core::{
    Explanation, Finding, Incident, IncidentStatus, Severity, TenantId, TimestampMs,
};
use antibody_respond::{
    ActionStatus, Asset, Decision, LifecycleState, PlaybookSet, Responder, ResponderConfig,
    SNAPSHOT_VERSION,
};
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;

const T0: TimestampMs = 1_800_000_000_000;
const HOUR: i64 = 3_600_000;
const ATTACKER: &str = "203.0.113.9";

fn t() -> TenantId {
    TenantId::new("acme")
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn responder() -> Responder {
    Responder::new(
        Arc::new(ResponderConfig::default()),
        Arc::new(PlaybookSet::default_pack().unwrap()),
    )
}

/// One incident update carrying one finding of `kind`.
fn hit(
    r: &mut Responder,
    inc: &str,
    entity: &str,
    kind: &str,
    sigma: f64,
    evidence: serde_json::Value,
    ts: TimestampMs,
) -> Vec<Decision> {
    let finding = Finding {
        id: format!("f-{inc}-{ts}"),
        tenant: t(),
        ts,
        entity: entity.into(),
        kind: kind.into(),
        detector: if kind == "brute_force" {
            "rule:auth-brute-force".into()
        } else {
            "baseline".into()
        },
        severity: Severity::High,
        score: 1.0 - (-sigma / 5.0).exp(),
        explanation: Explanation::text("fixture"),
        evidence: evidence.as_object().cloned().unwrap_or_default(),
        incident: Some(inc.into()),
    };
    let incident = Incident {
        id: inc.into(),
        tenant: t(),
        entity: entity.into(),
        status: IncidentStatus::Open,
        opened: ts,
        updated: ts,
        risk: 0.0,
        severity: Severity::High,
        kinds: vec![kind.into()],
        finding_count: 1,
        max_score: 0.5,
        diagnosis: Vec::new(),
        findings: Vec::new(),
        actions: Vec::new(),
        timeline: Vec::new(),
        workflow: Default::default(),
    };
    r.on_incident(&incident, &[finding], ts)
}

fn action_id(ds: &[Decision]) -> String {
    ds.iter()
        .find_map(|d| match d {
            Decision::Action { action, .. } => Some(action.id.clone()),
            _ => None,
        })
        .expect("an action")
}

/// The state every fixture holds, at `T0 + 5 s`.
fn scenario() -> Responder {
    let mut r = responder();
    let mut asset = Asset::new("agent:p");
    asset.owner = "team-writers".into();
    asset.group = Some("writers".into());
    r.upsert_asset(&t(), asset).unwrap();
    // An active block: a brute force's source, blocked for an hour.
    let evidence = json!({"group_by": "src_ip", "group": ATTACKER, "src_ip": ATTACKER});
    let ds = hit(
        &mut r,
        "i-1",
        "host:bastion",
        "brute_force",
        8.0,
        evidence,
        T0,
    );
    r.on_action_result(&t(), &action_id(&ds), true, "blocked", T0 + 1_000)
        .unwrap();
    // A pending approval: a 7.5σ spike is over the 5σ approval threshold.
    let spike = json!({"metric": "tokens", "sigma": 7.5});
    hit(
        &mut r,
        "i-2",
        "agent:x",
        "token_spike",
        7.5,
        spike.clone(),
        T0 + 2_000,
    );
    // Probation: the same, approved and applied.
    let ds = hit(
        &mut r,
        "i-3",
        "agent:p",
        "token_spike",
        7.5,
        spike,
        T0 + 3_000,
    );
    let id = action_id(&ds);
    r.approve("k-alice", &t(), &id, T0 + 4_000).unwrap();
    r.on_action_result(&t(), &id, true, "limited", T0 + 5_000)
        .unwrap();
    r
}

/// What every fixture must still hold once restored.
fn assert_scenario(r: &mut Responder) {
    let now = T0 + 6_000;
    let pending: Vec<_> = r
        .actions(&t(), Some(ActionStatus::PendingApproval))
        .cloned()
        .collect();
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(pending[0].target, "agent:x");
    let blocks = antibody_respond::TenantView::build(r, &t()).blocklist(now);
    assert_eq!(blocks.len(), 1, "{blocks:?}");
    assert_eq!(&*blocks[0].target, ATTACKER);
    assert_eq!(blocks[0].until, Some(T0 + 1_000 + HOUR));
    assert_eq!(r.entity_state(&t(), "agent:p"), LifecycleState::Probation);
    assert!(r.wants_samples(&t(), "agent:p"));
    assert_eq!(r.asset(&t(), "agent:p").unwrap().owner, "team-writers");
    // And the restored state goes on working: the approval, and the probation's samples.
    r.approve("k-bob", &t(), &pending[0].id, now).unwrap();
    for i in 0..5 {
        r.on_sample(&t(), "agent:p", true, now + i);
    }
    assert_eq!(r.entity_state(&t(), "agent:p"), LifecycleState::Healthy);
}

#[test]
fn the_scenario_holds_before_any_snapshot() {
    assert_scenario(&mut scenario());
}

fn restore_fixture(name: &str) -> Responder {
    let bytes = std::fs::read(fixture(name)).unwrap();
    Responder::restore(
        Arc::new(ResponderConfig::default()),
        Arc::new(PlaybookSet::default_pack().unwrap()),
        &bytes,
    )
    .unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn a_version_1_snapshot_restores_everything() {
    assert_scenario(&mut restore_fixture("responder-v1.snap"));
}

#[test]
fn a_version_2_snapshot_restores_everything() {
    assert_scenario(&mut restore_fixture("responder-v2.snap"));
}

#[test]
fn a_restored_snapshot_is_written_back_in_the_current_version() {
    let restored = restore_fixture("responder-v1.snap");
    let bytes = restored.snapshot().unwrap();
    assert_eq!(&bytes[6..8], SNAPSHOT_VERSION.to_le_bytes());
    // The state the fixture recorded, not today's scenario: default playbooks may change
    // between builds, what an old snapshot holds may not.
    let again = Responder::restore(
        Arc::new(ResponderConfig::default()),
        Arc::new(PlaybookSet::default_pack().unwrap()),
        &bytes,
    )
    .unwrap();
    assert_eq!(again.snapshot().unwrap(), bytes);
}

/// Writes the fixture of the running build's format version (see the module docs).
#[test]
#[ignore = "writes tests/fixtures/responder-v<current>.snap; run once per format version"]
fn write_fixture() {
    let path = fixture(&format!("responder-v{SNAPSHOT_VERSION}.snap"));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, scenario().snapshot().unwrap()).unwrap();
}
