//! End-to-end scenarios of the responder with explicit timestamps (a fake clock).

use antibody_core::{
    Explanation, Finding, Incident, IncidentStatus, Resolution, Severity, TenantId, TimestampMs,
};
use antibody_respond::enforce::{Budget, Change, Period, Rate};
use antibody_respond::{
    verify, Action, ActionKind, ActionStatus, Asset, AuditChain, BlockEntry, Decision, Enforcement,
    LifecycleState, Mode, PlaybookSet, PlaybookSource, RespondError, Responder, ResponderConfig,
    TenantView, UndoReason, Verdict, VerdictKind,
};
use serde_json::json;
use std::sync::Arc;

const T0: TimestampMs = 1_800_000_000_000;
const HOUR: i64 = 3_600_000;

fn t() -> TenantId {
    TenantId::new("acme")
}

struct Sim {
    r: Responder,
    log: Vec<Decision>,
    n: u64,
    /// The view as the response stage keeps it: updated from each step's decisions.
    enf: Enforcement,
}

impl Sim {
    fn new() -> Self {
        Self::with(
            ResponderConfig::default(),
            PlaybookSet::default_pack().unwrap(),
        )
    }

    /// Decisive spikes (σ ≥ 7) run without approval (threshold 8σ).
    fn lenient() -> Self {
        let mut cfg = ResponderConfig::default();
        cfg.policy.approval_sigma = 8.0;
        Self::with(cfg, PlaybookSet::default_pack().unwrap())
    }

    fn with(cfg: ResponderConfig, pbs: PlaybookSet) -> Self {
        Self {
            r: Responder::new(Arc::new(cfg), Arc::new(pbs)),
            log: Vec::new(),
            n: 0,
            enf: Enforcement::default(),
        }
    }

    fn keep(&mut self, ds: Vec<Decision>) -> Vec<Decision> {
        self.log.extend(ds.iter().cloned());
        let changes: Vec<_> = ds
            .iter()
            .filter_map(antibody_respond::enforce::change_of)
            .collect();
        self.enf.apply(&self.r, &changes);
        ds
    }

    /// The entity's verdict from the incrementally kept view, checked against a view built
    /// afresh from the responder's state.
    fn verdict(&self, entity: &str, now: TimestampMs) -> Verdict {
        let v = Verdict::clone(&self.enf.verdict(&t(), entity, now));
        assert_eq!(TenantView::build(&self.r, &t()).verdict(entity, now), v);
        v
    }

    fn blocklist(&self, now: TimestampMs) -> Vec<BlockEntry> {
        let b = self.enf.blocklist(&t(), now);
        assert_eq!(b, TenantView::build(&self.r, &t()).blocklist(now));
        b
    }

    /// One incident update carrying one finding.
    fn hit(&mut self, inc: &str, entity: &str, f: F, ts: TimestampMs) -> Vec<Decision> {
        self.n += 1;
        let finding = Finding {
            id: format!("f-{}", self.n),
            tenant: t(),
            ts,
            entity: entity.into(),
            kind: f.kind.into(),
            detector: f.detector.into(),
            severity: f.severity,
            score: f.score,
            explanation: Explanation::text("test"),
            evidence: f.evidence.as_object().cloned().unwrap_or_default(),
            incident: Some(inc.into()),
        };
        let incident = incident(inc, entity, &[f.kind], f.severity, ts, IncidentStatus::Open);
        let ds = self.r.on_incident(&incident, &[finding], ts);
        self.keep(ds)
    }

    fn close(&mut self, inc: &str, entity: &str, kind: &str, ts: TimestampMs) -> Vec<Decision> {
        let incident = incident(
            inc,
            entity,
            &[kind],
            Severity::Low,
            ts,
            IncidentStatus::Resolved,
        );
        let ds = self.r.on_incident(&incident, &[], ts);
        self.keep(ds)
    }

    fn keep_human(
        &mut self,
        f: impl FnOnce(&mut Responder) -> Result<Vec<Decision>, RespondError>,
    ) -> Vec<Decision> {
        let ds = f(&mut self.r).unwrap();
        self.keep(ds)
    }

    fn tick(&mut self, now: TimestampMs) -> Vec<Decision> {
        let ds = self.r.on_tick(now);
        self.keep(ds)
    }

    fn result(&mut self, id: &str, ok: bool, now: TimestampMs) -> Vec<Decision> {
        let ds = self.r.on_action_result(&t(), id, ok, "done", now).unwrap();
        self.keep(ds)
    }

    /// The server's answer for a kind with no control point attached.
    fn record(&mut self, id: &str, now: TimestampMs) -> Vec<Decision> {
        let why = "no agent control point is attached";
        let ds = self.r.on_action_recorded(&t(), id, why, now).unwrap();
        self.keep(ds)
    }

    /// The entity's event at log `offset` cost `usd`.
    fn spend(&mut self, entity: &str, usd: f64, offset: u64, ts: TimestampMs) {
        let changed = self.r.on_spend(&t(), entity, usd, offset, ts);
        let changes: Vec<_> = changed
            .into_iter()
            .map(|id| (t(), Change::Action(id)))
            .collect();
        self.enf.apply(&self.r, &changes);
    }

    fn samples(&mut self, entity: &str, n: u32, ok: bool, now: TimestampMs) -> Vec<Decision> {
        let mut all = Vec::new();
        for i in 0..n {
            all.extend(self.r.on_sample(&t(), entity, ok, now + i64::from(i)));
        }
        self.keep(all)
    }

    fn state(&self, entity: &str) -> LifecycleState {
        self.r.entity_state(&t(), entity)
    }
}

struct F {
    kind: &'static str,
    detector: &'static str,
    severity: Severity,
    score: f64,
    evidence: serde_json::Value,
}

fn brute_force(ip: &str) -> F {
    F {
        kind: "brute_force",
        detector: "rule:auth-brute-force",
        severity: Severity::High,
        score: 0.8,
        evidence: json!({"group_by": "src_ip", "group": ip, "count": 10}),
    }
}

fn spike(kind: &'static str, sigma: f64) -> F {
    F {
        kind,
        detector: "baseline",
        severity: if sigma >= 5.0 {
            Severity::High
        } else {
            Severity::Medium
        },
        score: 1.0 - (-sigma / 5.0).exp(),
        evidence: json!({"metric": "tokens", "sigma": sigma}),
    }
}

fn incident(
    id: &str,
    entity: &str,
    kinds: &[&str],
    severity: Severity,
    ts: TimestampMs,
    status: IncidentStatus,
) -> Incident {
    Incident {
        id: id.into(),
        tenant: t(),
        entity: entity.into(),
        status,
        opened: ts,
        updated: ts,
        risk: 0.0,
        severity,
        kinds: kinds.iter().map(|k| k.to_string()).collect(),
        finding_count: 1,
        max_score: 0.5,
        diagnosis: Vec::new(),
        findings: Vec::new(),
        actions: Vec::new(),
        timeline: Vec::new(),
        workflow: Default::default(),
    }
}

/// The engine's resolutions among `ds`, as (incident, resolution).
fn resolutions(ds: &[Decision]) -> Vec<(&str, Resolution)> {
    ds.iter()
        .filter_map(|d| match d {
            Decision::Resolved {
                incident,
                resolution,
                ..
            } => Some((incident.as_str(), *resolution)),
            _ => None,
        })
        .collect()
}

fn actions(ds: &[Decision]) -> Vec<&Action> {
    ds.iter()
        .filter_map(|d| match d {
            Decision::Action { action, .. } => Some(action),
            _ => None,
        })
        .collect()
}

fn states(ds: &[Decision], entity: &str) -> Vec<LifecycleState> {
    ds.iter()
        .filter_map(|d| match d {
            Decision::Transition(tr) if tr.entity == entity => Some(tr.to),
            _ => None,
        })
        .collect()
}

fn escalations(ds: &[Decision]) -> Vec<&str> {
    ds.iter()
        .filter_map(|d| match d {
            Decision::Escalation { reason, .. } => Some(reason.as_str()),
            _ => None,
        })
        .collect()
}

#[test]
fn ssh_brute_force_blocks_the_source_until_the_ttl_then_undoes() {
    let mut s = Sim::new();
    let ds = s.hit("i-1", "host:bastion", brute_force("203.0.113.9"), T0);
    let acts = actions(&ds);
    assert_eq!(acts.len(), 1, "{ds:#?}");
    let a = acts[0].clone();
    assert_eq!(a.kind, ActionKind::BlockIp);
    assert_eq!(a.target, "203.0.113.9");
    assert_eq!(a.status, ActionStatus::Approved);
    assert_eq!(a.ttl, 3600);
    assert_eq!(a.why.playbook, "brute-force");
    assert!(a.why.rule.contains("brute_force"), "{}", a.why.rule);
    assert_eq!(a.why.numbers["offence"], 1.0);
    assert!(ds.iter().any(|d| matches!(d, Decision::Assessment { .. })));
    assert_eq!(s.state("host:bastion"), LifecycleState::Suspected);

    s.result(&a.id, true, T0 + 1_000);
    let v = s.verdict("ip:203.0.113.9", T0 + 2_000);
    assert_eq!(v.verdict, VerdictKind::Block);
    assert_eq!(v.until, Some(T0 + 1_000 + HOUR));
    assert_eq!(&*s.blocklist(T0 + 2_000)[0].target, "203.0.113.9");

    assert!(s.tick(T0 + 1_000 + HOUR - 1).is_empty());
    let ds = s.tick(T0 + 1_000 + HOUR);
    let undo = ds.iter().find_map(|d| match d {
        Decision::Undo { reason, action, .. } => Some((*reason, action.clone())),
        _ => None,
    });
    let (reason, undone) = undo.expect("an undo decision");
    assert_eq!(reason, UndoReason::Expired);
    assert_eq!(undone.id, a.id);
    assert_eq!(
        s.r.action(&t(), &a.id).unwrap().status,
        ActionStatus::Expired
    );
    assert_eq!(
        s.verdict("ip:203.0.113.9", T0 + 2 * HOUR).verdict,
        VerdictKind::Allow
    );
    assert!(s.blocklist(T0 + 2 * HOUR).is_empty());

    s.close("i-1", "host:bastion", "brute_force", T0 + 2 * HOUR);
    assert_eq!(s.state("host:bastion"), LifecycleState::Healthy);
}

#[test]
fn repeated_updates_never_duplicate_an_action() {
    let mut s = Sim::new();
    s.hit("i-1", "host:bastion", brute_force("203.0.113.9"), T0);
    let again = s.hit("i-1", "host:bastion", brute_force("203.0.113.9"), T0 + 10);
    assert!(actions(&again).is_empty(), "{again:#?}");
    let more = s.hit("i-1", "host:bastion", brute_force("198.51.100.4"), T0 + 20);
    let acts = actions(&more);
    assert_eq!(acts.len(), 1);
    assert_eq!(acts[0].target, "198.51.100.4");
    assert_eq!(s.r.actions(&t(), None).count(), 2);
}

#[test]
fn token_explosion_rate_limits_then_probation_then_healthy() {
    let mut s = Sim::new();
    let e = "agent:writer";
    let ds = s.hit("i-1", e, spike("token_spike", 4.0), T0);
    assert!(actions(&ds).is_empty(), "waits in the suspect window");
    assert_eq!(s.state(e), LifecycleState::Suspected);
    let mut acts = Vec::new();
    for i in 0..3 {
        if i > 0 {
            s.hit("i-1", e, spike("token_spike", 4.0), T0 + i * 1_000);
        }
        let ds = s.tick(T0 + i * 1_000 + 500);
        acts.extend(actions(&ds).into_iter().cloned());
    }
    assert_eq!(acts.len(), 1, "acts after the third anomalous tick");
    let a = &acts[0];
    assert_eq!(a.kind, ActionKind::RateLimit);
    assert_eq!(a.target, e);
    assert_eq!(a.status, ActionStatus::Approved);
    assert_eq!(a.why.numbers["rung"], 1.0);
    assert_eq!(s.state(e), LifecycleState::Healing);

    s.result(&a.id, true, T0 + 5_000);
    assert_eq!(s.state(e), LifecycleState::Probation);
    assert!(s.r.wants_samples(&t(), e));
    s.samples(e, 4, true, T0 + 6_000);
    assert_eq!(s.state(e), LifecycleState::Probation);
    let ds = s.samples(e, 1, true, T0 + 7_000);
    assert_eq!(states(&ds, e), [LifecycleState::Healthy]);
    assert_eq!(resolutions(&ds), [("i-1", Resolution::Healed)]);
    assert!(resolutions(&s.log[..s.log.len() - ds.len()]).is_empty());
    assert_eq!(
        states(&s.log, e),
        [
            LifecycleState::Suspected,
            LifecycleState::Healing,
            LifecycleState::Probation,
            LifecycleState::Healthy
        ]
    );

    // The success is remembered: the next incident's why shows it.
    s.hit("i-2", "agent:other", spike("token_spike", 7.5), T0 + 60_000);
    let log = s.log.clone();
    let next = actions(&log)
        .into_iter()
        .find(|a| a.incident == "i-2")
        .unwrap()
        .clone();
    assert_eq!(next.why.numbers["successes"], 1.0);
    assert!(next.why.numbers.contains_key("thompson_sample"));
}

#[test]
fn probation_failure_climbs_the_ladder() {
    let mut s = Sim::lenient();
    let e = "agent:looper";
    s.hit("i-1", e, spike("token_spike", 7.5), T0);
    let first = actions(&s.log)[0].clone();
    assert_eq!(first.kind, ActionKind::RateLimit);
    s.result(&first.id, true, T0 + 1);
    assert_eq!(s.state(e), LifecycleState::Probation);
    let ds = s.samples(e, 1, false, T0 + 2);
    let next = actions(&ds);
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].kind, ActionKind::Quarantine);
    assert_eq!(next[0].why.numbers["rung"], 2.0);
    assert!(s.state(e).is_contained(), "{:?}", s.state(e));
    // The failed arm is skipped for this entity next time.
    let id = next[0].id.clone();
    s.result(&id, true, T0 + 3);
    s.r.heal_now("k-1", &t(), e, T0 + 4).unwrap();
    s.samples(e, 5, true, T0 + 5);
    assert_eq!(s.state(e), LifecycleState::Healthy);
    s.close("i-1", e, "token_spike", T0 + 10);
    let ds = s.hit("i-2", e, spike("token_spike", 7.5), T0 + 20);
    let skipped = ds.iter().any(|d| {
        matches!(d, Decision::Skipped { kind: ActionKind::RateLimit, reason, .. } if reason.contains("already failed"))
    });
    assert!(skipped, "{ds:#?}");
    assert_eq!(actions(&ds)[0].kind, ActionKind::Quarantine);
}

fn infect(s: &mut Sim, e: &str) -> Action {
    for i in 0..3 {
        s.hit("i-9", e, spike("token_spike", 6.0), T0 + i * 1_000);
        s.tick(T0 + i * 1_000 + 500);
    }
    let acts = actions(&s.log);
    assert_eq!(acts.len(), 1, "{:#?}", s.log);
    acts[0].clone()
}

#[test]
fn five_sigma_infection_waits_for_approval_then_heals() {
    let mut s = Sim::new();
    let e = "agent:infected";
    let a = infect(&mut s, e);
    assert_eq!(a.status, ActionStatus::PendingApproval);
    // The playbook is `auto`; the action says what happens to it.
    assert_eq!(a.mode, Mode::Approval);
    assert!(a.why.text.contains("6.0σ ≥ the 5σ"), "{}", a.why.text);
    assert_eq!(s.state(e), LifecycleState::Draining);
    assert_eq!(s.verdict(e, T0 + 3_000).verdict, VerdictKind::Quarantine);
    s.tick(T0 + 40_000);
    assert_eq!(s.state(e), LifecycleState::Quarantined);

    let ds = s.r.approve("k-alice", &t(), &a.id, T0 + 50_000).unwrap();
    let approved = actions(&ds)[0];
    assert_eq!(approved.status, ActionStatus::Approved);
    let Decision::Action { actor, .. } = &ds[0] else {
        panic!()
    };
    assert_eq!(actor, "k-alice");
    assert_eq!(ds[0].audit_record(T0).kind, "approval");
    s.keep(ds);
    assert_eq!(s.state(e), LifecycleState::Healing);
    s.result(&a.id, true, T0 + 51_000);
    s.samples(e, 5, true, T0 + 52_000);
    assert_eq!(s.state(e), LifecycleState::Healthy);
    assert_eq!(
        states(&s.log, e),
        [
            LifecycleState::Suspected,
            LifecycleState::Draining,
            LifecycleState::Quarantined,
            LifecycleState::Healing,
            LifecycleState::Probation,
            LifecycleState::Healthy
        ]
    );
}

#[test]
fn rejected_infection_stays_quarantined_until_heal_now() {
    let mut s = Sim::new();
    let e = "agent:infected";
    let a = infect(&mut s, e);
    s.tick(T0 + 40_000);
    let ds = s.r.reject("k-alice", &t(), &a.id, T0 + 50_000).unwrap();
    assert_eq!(actions(&ds)[0].status, ActionStatus::Rejected);
    for i in 1..5 {
        s.tick(T0 + 50_000 + i * HOUR);
    }
    let ds = s.close("i-9", e, "token_spike", T0 + 5 * HOUR);
    assert_eq!(s.state(e), LifecycleState::Quarantined);
    assert_eq!(
        resolutions(&ds),
        [("i-9", Resolution::Quiet)],
        "nothing it proposed took effect"
    );
    assert!(matches!(
        s.r.heal_now("k-bob", &t(), "agent:fine", T0),
        Err(RespondError::NotHealable { .. })
    ));
    let ds = s.r.heal_now("k-bob", &t(), e, T0 + 6 * HOUR).unwrap();
    let tr = ds.iter().find_map(|d| match d {
        Decision::Transition(tr) => Some(tr.clone()),
        _ => None,
    });
    let tr = tr.unwrap();
    assert_eq!(
        (tr.from, tr.to, tr.actor.as_str()),
        (
            LifecycleState::Quarantined,
            LifecycleState::Probation,
            "k-bob"
        )
    );
    let ds = s.samples(e, 5, true, T0 + 7 * HOUR);
    assert_eq!(s.state(e), LifecycleState::Healthy);
    assert_eq!(resolutions(&ds), [("i-9", Resolution::Healed)]);
}

#[test]
fn heal_all_heals_every_contained_or_exhausted_entity() {
    let mut s = Sim::new();
    let a = infect(&mut s, "agent:one");
    s.r.reject("k-alice", &t(), &a.id, T0 + 5_000).unwrap();
    s.tick(T0 + 40_000);
    assert_eq!(s.state("agent:one"), LifecycleState::Quarantined);
    s.hit("i-5", "agent:two", spike("token_spike", 4.0), T0 + 41_000);
    assert_eq!(s.state("agent:two"), LifecycleState::Suspected);
    let other = TenantId::new("other");
    assert!(s.r.heal_all("k-bob", &other, T0 + 50_000).is_empty());
    let ds = s.r.heal_all("k-bob", &t(), T0 + 50_000);
    assert_eq!(states(&ds, "agent:one"), [LifecycleState::Probation]);
    assert!(
        states(&ds, "agent:two").is_empty(),
        "suspected is not healable"
    );
    assert!(
        s.r.heal_all("k-bob", &t(), T0 + 50_001).is_empty(),
        "nothing left"
    );
}

#[test]
fn approvals_need_distinct_approvers_and_time_out() {
    let mut cfg = ResponderConfig::default();
    cfg.policy.approvers = 2;
    let mut s = Sim::with(cfg, PlaybookSet::default_pack().unwrap());
    let a = infect(&mut s, "agent:x");
    let ds = s.r.approve("k-alice", &t(), &a.id, T0 + 5_000).unwrap();
    assert_eq!(actions(&ds)[0].status, ActionStatus::PendingApproval);
    assert_eq!(
        s.r.approve("k-alice", &t(), &a.id, T0 + 5_001)
            .unwrap_err()
            .code(),
        "duplicate_approver"
    );
    assert!(matches!(
        s.r.approve("k-eve", &TenantId::new("other"), &a.id, T0),
        Err(RespondError::ActionNotFound(_))
    ));
    // Nobody else answers: the timeout escalates once.
    let ds = s.tick(T0 + HOUR + 10_000);
    assert_eq!(escalations(&ds).len(), 1, "{ds:#?}");
    assert!(escalations(&s.tick(T0 + 2 * HOUR)).is_empty());
    let ds = s.r.approve("k-bob", &t(), &a.id, T0 + 2 * HOUR).unwrap();
    assert_eq!(actions(&ds)[0].status, ActionStatus::Approved);
    assert_eq!(
        s.r.approval(&t(), &a.id).unwrap().approvers,
        ["k-alice", "k-bob"]
    );
}

#[test]
fn approval_timeout_can_reject() {
    let mut cfg = ResponderConfig::default();
    cfg.policy.on_approval_timeout = antibody_respond::OnTimeout::Reject;
    let mut s = Sim::with(cfg, PlaybookSet::default_pack().unwrap());
    let a = infect(&mut s, "agent:x");
    let ds = s.tick(T0 + HOUR + 10_000);
    assert_eq!(actions(&ds)[0].status, ActionStatus::Rejected);
    assert_eq!(
        s.r.action(&t(), &a.id).unwrap().status,
        ActionStatus::Rejected
    );
}

#[test]
fn approve_all_and_reject_all() {
    let mut s = Sim::new();
    for (i, e) in ["agent:a", "agent:b"].iter().enumerate() {
        s.hit(&format!("i-{i}"), e, spike("token_spike", 7.5), T0);
    }
    let pending =
        s.r.actions(&t(), Some(ActionStatus::PendingApproval))
            .count();
    assert_eq!(pending, 2);
    // The server leaves actions of resolved incidents waiting.
    let skip: std::collections::BTreeSet<String> =
        s.r.actions(&t(), Some(ActionStatus::PendingApproval))
            .filter(|a| a.incident == "i-0")
            .map(|a| a.id.clone())
            .collect();
    let ds = s.r.approve_all_but("k-alice", &t(), &skip, T0 + 1);
    assert_eq!(actions(&ds).len(), 1);
    assert!(actions(&ds).iter().all(|a| a.incident == "i-1"));
    let ds = s.r.approve_all("k-alice", &t(), T0 + 1);
    assert_eq!(actions(&ds).len(), 1);
    assert_eq!(s.r.actions(&t(), Some(ActionStatus::Approved)).count(), 2);
    s.hit("i-3", "agent:c", spike("token_spike", 7.5), T0 + 2);
    let ds = s.r.reject_all("k-alice", &t(), T0 + 3);
    assert_eq!(actions(&ds)[0].status, ActionStatus::Rejected);
}

fn fleet_config() -> (ResponderConfig, PlaybookSet) {
    let pb = PlaybookSource::new(
        "latency.yml",
        "- id: slow-agent\n  trigger: {kinds: [latency_spike]}\n  steps:\n    - action: quarantine\n",
    );
    let mut sources = PlaybookSet::default_sources();
    sources.push(pb);
    (
        ResponderConfig::default(),
        PlaybookSet::load(&sources).unwrap(),
    )
}

#[test]
fn latency_spike_across_a_group_is_one_external_cause_and_no_quarantine() {
    let (cfg, pbs) = fleet_config();
    let mut s = Sim::with(cfg, pbs);
    for i in 0..20 {
        let mut a = Asset::new(format!("agent:r{i}"));
        a.group = Some("research".into());
        s.r.upsert_asset(&t(), a).unwrap();
    }
    for round in 0..4 {
        for i in 0..10 {
            let ts = T0 + round * 1_000;
            s.hit(
                &format!("i-{i}"),
                &format!("agent:r{i}"),
                spike("latency_spike", 4.0),
                ts,
            );
        }
        s.tick(T0 + round * 1_000 + 500);
    }
    let quarantines = actions(&s.log)
        .iter()
        .filter(|a| a.kind == ActionKind::Quarantine)
        .count();
    assert_eq!(quarantines, 0, "{:#?}", s.log);
    let fleet: Vec<_> = s
        .log
        .iter()
        .filter_map(|d| match d {
            Decision::Fleet(f) => Some(f.clone()),
            _ => None,
        })
        .collect();
    let ids: std::collections::BTreeSet<_> = fleet.iter().map(|f| f.id.clone()).collect();
    assert_eq!(ids.len(), 1, "one fleet incident");
    let last = fleet.last().unwrap();
    assert_eq!(last.entities.len(), 10);
    assert_eq!(last.to_incident().diagnosis[0].cause, "external_cause");
    for i in 0..20 {
        assert_eq!(
            s.state(&format!("agent:r{i}")),
            LifecycleState::Healthy,
            "agent:r{i}"
        );
    }

    // The same anomaly on a lone agent is its own problem.
    for round in 0..3 {
        s.hit(
            "i-lone",
            "agent:lone",
            spike("latency_spike", 4.0),
            T0 + 10_000 + round * 1_000,
        );
        s.tick(T0 + 10_500 + round * 1_000);
    }
    let lone = actions(&s.log)
        .iter()
        .filter(|a| a.kind == ActionKind::Quarantine)
        .count();
    assert_eq!(lone, 1);
}

#[test]
fn a_failing_block_escalates() {
    let mut s = Sim::new();
    let ds = s.hit("i-1", "host:web", brute_force("192.0.2.77"), T0);
    let id = actions(&ds)[0].id.clone();
    let ds = s.result(&id, false, T0 + 1);
    assert_eq!(actions(&ds)[0].status, ActionStatus::Failed);
    let esc = escalations(&ds);
    assert_eq!(esc.len(), 1);
    assert!(esc[0].contains("failed"), "{esc:?}");
    assert_eq!(s.state("host:web"), LifecycleState::Exhausted);
    // A second report of the same outcome changes nothing.
    assert!(s
        .r
        .on_action_result(&t(), &id, false, "again", T0 + 2)
        .unwrap()
        .is_empty());
}

#[test]
fn a_failing_rung_moves_to_the_next() {
    let mut s = Sim::new();
    s.hit("i-1", "agent:a", spike("token_spike", 7.5), T0);
    let rate = actions(&s.log)[0].clone();
    s.r.approve("k-1", &t(), &rate.id, T0).unwrap();
    let ds = s.result(&rate.id, false, T0 + 1);
    let next = actions(&ds);
    assert_eq!(next.last().unwrap().kind, ActionKind::Quarantine);
    assert!(escalations(&ds).is_empty());
}

#[test]
fn allow_listed_addresses_are_never_blocked() {
    let mut s = Sim::new();
    let ds = s.hit("i-1", "host:bastion", brute_force("127.0.0.1"), T0);
    assert!(actions(&ds).is_empty());
    let skipped = ds.iter().find_map(|d| match d {
        Decision::Skipped { target, reason, .. } => Some((target.clone(), reason.clone())),
        _ => None,
    });
    let (target, reason) = skipped.expect("a skip decision");
    assert_eq!(target, "127.0.0.1");
    assert!(reason.contains("allow-listed by `127.0.0.0/8`"), "{reason}");
    let again = s.hit("i-1", "host:bastion", brute_force("127.0.0.1"), T0 + 1);
    assert!(
        again.iter().all(|d| !matches!(d, Decision::Skipped { .. })),
        "reported once"
    );
    assert!(s.blocklist(T0 + 2).is_empty());
}

#[test]
fn repeat_offenders_are_blocked_longer() {
    let mut s = Sim::new();
    let mut ttls = Vec::new();
    for n in 0..4 {
        let at = T0 + n * 2 * HOUR;
        let ds = s.hit(
            &format!("i-{n}"),
            "host:bastion",
            brute_force("198.51.100.66"),
            at,
        );
        let a = actions(&ds)[0].clone();
        ttls.push(a.ttl);
        s.result(&a.id, true, at + 1);
        s.close(
            &format!("i-{n}"),
            "host:bastion",
            "brute_force",
            at + 600_000,
        );
    }
    assert_eq!(ttls, [3_600, 14_400, 86_400, 86_400]);
}

#[test]
fn blast_radius_guard_sends_the_overflow_to_approval() {
    let mut s = Sim::new();
    let mut statuses = Vec::new();
    for i in 0..12 {
        let ds = s.hit(
            &format!("i-{i}"),
            &format!("host:h{i}"),
            brute_force(&format!("203.0.113.{i}")),
            T0 + i,
        );
        statuses.push(actions(&ds)[0].status);
    }
    assert!(statuses[..10].iter().all(|s| *s == ActionStatus::Approved));
    assert_eq!(statuses[10], ActionStatus::PendingApproval);
    let tenant = t();
    let a =
        s.r.actions(&tenant, Some(ActionStatus::PendingApproval))
            .next()
            .unwrap();
    assert!(a.why.text.contains("blast-radius guard"), "{}", a.why.text);
}

/// A tenant's own policy, set at run time: forced approval, its own allow-list and caps;
/// taking it away puts the tenant back on the configured policy at the next decision.
#[test]
fn a_tenant_policy_forces_approval_allow_lists_and_caps_until_taken_away() {
    let mut s = Sim::new();
    let policy: antibody_respond::TenantPolicy = serde_json::from_value(json!({
        "modes": {"brute-force": "approval"},
        "allow": {"cidrs": ["192.0.2.0/24"]},
    }))
    .unwrap();
    s.r.set_tenant_policy(t(), Some(Arc::new(policy)));
    let ds = s.hit("i-1", "host:a", brute_force("203.0.113.1"), T0);
    let a = actions(&ds)[0].clone();
    assert_eq!(a.status, ActionStatus::PendingApproval);
    assert_eq!(a.mode, antibody_respond::Mode::Approval);
    assert!(
        a.why.text.contains("the tenant policy sets mode approval"),
        "{}",
        a.why.text
    );
    let ds = s.hit("i-2", "host:b", brute_force("192.0.2.7"), T0 + 1);
    assert!(actions(&ds).is_empty());
    assert!(ds
        .iter()
        .any(|d| matches!(d, Decision::Skipped { reason, .. }
        if reason.contains("`192.0.2.0/24` in the tenant policy"))));

    let capped: antibody_respond::TenantPolicy =
        serde_json::from_value(json!({"guard": {"per_tenant_per_minute": 1}})).unwrap();
    s.r.set_tenant_policy(t(), Some(Arc::new(capped)));
    let first = actions(&s.hit("i-3", "host:c", brute_force("203.0.113.3"), T0 + 2))[0].status;
    let second = actions(&s.hit("i-4", "host:d", brute_force("203.0.113.4"), T0 + 3))[0].status;
    assert_eq!(
        (first, second),
        (ActionStatus::Approved, ActionStatus::PendingApproval)
    );

    s.r.set_tenant_policy(t(), None);
    let ds = s.hit("i-5", "host:e", brute_force("203.0.113.5"), T0 + 4);
    assert_eq!(actions(&ds)[0].status, ActionStatus::Approved);
}

#[test]
fn dry_run_and_notify_modes_never_execute() {
    let pb = PlaybookSource::new(
        "modes.yml",
        "- id: scan-dry\n  trigger: {kinds: [port_scan]}\n  mode: dry_run\n  steps: [{action: block_ip}]\n\
         - id: flood-notify\n  trigger: {kinds: [request_flood]}\n  mode: notify\n  steps: [{action: block_ip}]\n",
    );
    let mut sources = PlaybookSet::default_sources();
    sources.push(pb);
    let mut s = Sim::with(
        ResponderConfig::default(),
        PlaybookSet::load(&sources).unwrap(),
    );
    let scan = F {
        kind: "port_scan",
        detector: "rule:port-scan",
        severity: Severity::Medium,
        score: 0.6,
        evidence: json!({"group_by": "src_ip", "group": "192.0.2.5"}),
    };
    let ds = s.hit("i-1", "host:a", scan, T0);
    assert_eq!(actions(&ds)[0].status, ActionStatus::DryRun);
    let flood = F {
        kind: "request_flood",
        detector: "rule:request-flood",
        severity: Severity::Medium,
        score: 0.6,
        evidence: json!({"group_by": "src_ip", "group": "192.0.2.6"}),
    };
    let ds = s.hit("i-2", "host:b", flood, T0);
    let a = actions(&ds)[0].clone();
    assert_eq!(a.status, ActionStatus::Proposed);
    assert!(s.blocklist(T0).is_empty());
    let ds = s.r.approve("k-1", &t(), &a.id, T0 + 1).unwrap();
    assert_eq!(actions(&ds)[0].status, ActionStatus::Approved);
}

#[test]
fn manual_undo_of_a_quarantine_releases_the_entity() {
    let mut s = Sim::new();
    let f = F {
        kind: "prompt_injection",
        detector: "rule:prompt-injection",
        severity: Severity::High,
        score: 0.9,
        evidence: json!({}),
    };
    let ds = s.hit("i-1", "agent:p", f, T0);
    let q = actions(&ds)[0].clone();
    assert_eq!(
        (q.kind, q.status),
        (ActionKind::Quarantine, ActionStatus::PendingApproval)
    );
    assert_eq!(s.state("agent:p"), LifecycleState::Suspected);
    let ds = s.r.approve("k-1", &t(), &q.id, T0 + 1).unwrap();
    s.keep(ds);
    assert_eq!(s.state("agent:p"), LifecycleState::Draining);
    s.result(&q.id, true, T0 + 2);
    s.tick(T0 + 60_000);
    assert_eq!(s.state("agent:p"), LifecycleState::Quarantined);
    let ds = s.r.undo("k-1", &t(), &q.id, T0 + 70_000).unwrap();
    assert!(ds.iter().any(|d| matches!(
        d,
        Decision::Undo {
            reason: UndoReason::Manual,
            ..
        }
    )));
    assert_eq!(s.state("agent:p"), LifecycleState::Probation);
    assert_eq!(
        s.r.undo("k-1", &t(), &q.id, T0 + 70_001)
            .unwrap_err()
            .code(),
        "conflict"
    );
}

/// Runs a fixed mixed workload and returns every decision.
fn workload(seed: u64, snapshot_at: Option<usize>) -> Vec<Decision> {
    let mut cfg = ResponderConfig {
        seed,
        ..ResponderConfig::default()
    };
    cfg.policy.approval_sigma = 8.0;
    let pbs = PlaybookSet::default_pack().unwrap();
    let mut s = Sim::with(cfg.clone(), pbs.clone());
    for step in 0..12usize {
        if snapshot_at == Some(step) {
            let bytes = s.r.snapshot().unwrap();
            s.r = Responder::restore(Arc::new(cfg.clone()), Arc::new(pbs.clone()), &bytes).unwrap();
        }
        let at = T0 + step as i64 * 10 * 60_000;
        let e = format!("agent:w{}", step % 4);
        let inc = format!("i-{step}");
        let ds = s.hit(&inc, &e, spike("token_spike", 7.5), at);
        for a in actions(&ds) {
            let ok = step % 3 != 0;
            s.r.on_action_result(&t(), &a.id, ok, "x", at + 1).ok();
        }
        s.samples(&e, 5, step % 2 == 0, at + 2);
        s.close(&inc, &e, "token_spike", at + 400_000);
        s.tick(at + 500_000);
    }
    s.log
}

#[test]
fn same_seed_same_decisions_and_snapshots_do_not_change_them() {
    let a = workload(7, None);
    assert_eq!(a, workload(7, None));
    assert_eq!(a, workload(7, Some(6)));
    let samples = |log: &[Decision]| -> Vec<f64> {
        actions(log)
            .iter()
            .filter_map(|a| a.why.numbers.get("thompson_sample").copied())
            .collect()
    };
    assert!(!samples(&a).is_empty());
    assert_ne!(samples(&a), samples(&workload(8, None)));
}

#[test]
fn every_decision_chains_into_a_verifiable_audit_log() {
    let log = workload(1, None);
    let mut chain = AuditChain::new();
    let mut entries: Vec<_> = log
        .iter()
        .enumerate()
        .map(|(i, d)| chain.append(d.audit_record(T0 + i as i64)))
        .collect();
    assert!(entries.len() > 20);
    assert_eq!(verify(&entries), Ok(()));
    entries[17].record.detail.push_str(" (edited)");
    let brk = verify(&entries).unwrap_err();
    assert_eq!(brk.index, 17);
}

#[test]
fn feedback_changes_the_diagnosis_for_the_tenant() {
    let mut s = Sim::new();
    s.r.feedback(&t(), &["token_spike".into()], "cost_overrun")
        .unwrap();
    s.r.feedback(&t(), &["token_spike".into()], "cost_overrun")
        .unwrap();
    let ds = s.hit("i-1", "agent:a", spike("token_spike", 4.0), T0);
    let diag = ds.iter().find_map(|d| match d {
        Decision::Assessment { diagnosis, .. } => Some(diagnosis.clone()),
        _ => None,
    });
    assert_eq!(diag.unwrap()[0].cause, "cost_overrun");
    assert!(s.r.feedback(&t(), &[], "gremlins").is_err());
}

#[test]
fn assets_feed_risk_and_validation() {
    let mut s = Sim::new();
    let mut crown = Asset::new("host:db");
    crown.criticality = 5;
    s.r.upsert_asset(&t(), crown).unwrap();
    let mut bad = Asset::new("host:x");
    bad.criticality = 7;
    assert_eq!(
        s.r.upsert_asset(&t(), bad).unwrap_err().code(),
        "invalid_asset"
    );
    let risk_of = |ds: &[Decision]| {
        ds.iter()
            .find_map(|d| match d {
                Decision::Assessment { assessment, .. } => Some(assessment.risk),
                _ => None,
            })
            .unwrap()
    };
    let db = s.hit("i-1", "host:db", spike("error_spike", 4.0), T0);
    let other = s.hit("i-2", "host:web", spike("error_spike", 4.0), T0);
    assert!(risk_of(&db) > risk_of(&other));
    assert_eq!(s.r.assets(&t()).count(), 1);
    assert!(s.r.remove_asset(&t(), "host:db").is_some());
}

#[test]
fn hits_delay_the_first_action() {
    let pb = PlaybookSource::new(
        "patient.yml",
        "- id: patient\n  trigger: {kinds: [brute_force]}\n  hits: 3\n  steps: [{action: block_ip, ttl: 10m}]\n",
    );
    let mut sources = PlaybookSet::default_sources();
    sources.push(pb);
    let mut s = Sim::with(
        ResponderConfig::default(),
        PlaybookSet::load(&sources).unwrap(),
    );
    for n in 0..2 {
        let ds = s.hit("i-1", "host:a", brute_force("192.0.2.9"), T0 + n);
        assert!(actions(&ds).is_empty(), "hit {n}");
    }
    let ds = s.hit("i-1", "host:a", brute_force("192.0.2.9"), T0 + 2);
    let a = actions(&ds)[0].clone();
    assert_eq!((a.why.playbook.as_str(), a.ttl), ("patient", 600));
}

#[test]
fn throttle_verdict_for_a_rate_limited_agent() {
    let mut s = Sim::lenient();
    s.hit("i-1", "agent:t", spike("token_spike", 7.5), T0);
    let a = actions(&s.log)[0].clone();
    s.result(&a.id, true, T0 + 1);
    let v = s.verdict("agent:t", T0 + 2);
    assert_eq!(
        (v.verdict, v.until),
        (VerdictKind::Throttle, Some(T0 + 1 + HOUR))
    );
    let per = Period::Minute;
    assert_eq!(v.rate, Some(Rate { rate: 10.0, per }));
    assert_eq!(v.incident.as_deref(), Some("i-1"));
}

/// `reset` needs an agent control point antibody does not have: it ends `recorded`, the
/// entity is not put on probation as if healed, and the ladder climbs to quarantine — with
/// no failure held against reset in immune memory, since it never ran.
#[test]
fn a_recorded_reset_climbs_the_ladder_instead_of_probation() {
    // The default token-explosion ladder without reset, as it was before it dropped the rung.
    let mut sources = PlaybookSet::default_sources();
    sources.push(PlaybookSource::new(
        "tokens.yml",
        "- id: token-explosion\n  trigger: {kinds: [token_spike]}\n  steps:\n    \
         - {action: rate_limit, ttl: 1h, params: {rate: 10, per: minute}}\n    \
         - {action: reset, params: {memory: true}}\n    \
         - {action: quarantine, ttl: 24h, on_failure: escalate}\n",
    ));
    let mut cfg = ResponderConfig::default();
    cfg.policy.approval_sigma = 8.0;
    let mut s = Sim::with(cfg, PlaybookSet::load(&sources).unwrap());
    let e = "agent:looper";
    s.hit("i-1", e, spike("token_spike", 7.5), T0);
    let rate = actions(&s.log)[0].clone();
    s.result(&rate.id, true, T0 + 1);
    let ds = s.samples(e, 1, false, T0 + 2);
    let reset = actions(&ds)[0].clone();
    assert_eq!(
        (reset.kind, reset.status),
        (ActionKind::Reset, ActionStatus::Approved)
    );
    let ds = s.record(&reset.id, T0 + 3);
    let acts = actions(&ds);
    assert_eq!(acts[0].status, ActionStatus::Recorded);
    assert!(!acts[0].result.as_ref().unwrap().ok);
    assert_eq!(acts[1].kind, ActionKind::Quarantine);
    assert_eq!(states(&ds, e), [LifecycleState::Draining]);
    assert!(escalations(&ds).is_empty(), "the ladder goes on");
    assert!(s
        .r
        .on_action_recorded(&t(), &reset.id, "again", T0 + 4)
        .is_err());

    // Contained, then released by a person; the next incident skips the rate limit that
    // failed, but not the reset that never ran.
    s.result(&acts[1].id, true, T0 + 5);
    s.keep_human(|r| r.heal_now("k-1", &t(), e, T0 + 6));
    s.samples(e, 5, true, T0 + 7);
    assert_eq!(s.state(e), LifecycleState::Healthy);
    s.close("i-1", e, "token_spike", T0 + 20);
    let ds = s.hit("i-2", e, spike("token_spike", 7.5), T0 + 30);
    let skipped: Vec<ActionKind> = ds
        .iter()
        .filter_map(|d| match d {
            Decision::Skipped { kind, .. } => Some(*kind),
            _ => None,
        })
        .collect();
    assert_eq!(skipped, [ActionKind::RateLimit]);
    assert_eq!(actions(&ds)[0].kind, ActionKind::Reset);
}

/// A ladder whose only rung can just be recorded ends exhausted with an escalation to the
/// people who must carry it out.
#[test]
fn a_reset_only_ladder_escalates_and_never_heals_on_paper() {
    let pb = PlaybookSource::new(
        "reset.yml",
        "- id: reset-only\n  trigger: {kinds: [tool_explosion]}\n  mode: auto\n  steps: [{action: reset}]\n",
    );
    let mut cfg = ResponderConfig::default();
    cfg.policy.approval_sigma = 8.0;
    let mut s = Sim::with(cfg, PlaybookSet::load(&[pb]).unwrap());
    let e = "agent:tools";
    s.hit("i-1", e, spike("tool_explosion", 7.5), T0);
    let reset = actions(&s.log)[0].clone();
    assert_eq!(reset.status, ActionStatus::Approved);
    assert_eq!(s.state(e), LifecycleState::Healing);
    let ds = s.record(&reset.id, T0 + 1);
    assert_eq!(states(&ds, e), [LifecycleState::Exhausted]);
    let esc = escalations(&ds);
    assert_eq!(esc.len(), 1, "{ds:#?}");
    assert!(esc[0].contains("was recorded, not applied"), "{}", esc[0]);
    assert!(!s.r.wants_samples(&t(), e));
    assert_eq!(s.verdict(e, T0 + 2), Verdict::allow());
}

/// The default cost-overrun playbook caps the agent's spend: throttled with the budget while
/// money is left, blocked once it is spent, until the day's window ends.
#[test]
fn a_budget_cap_throttles_then_blocks_until_the_window_ends() {
    let mut s = Sim::lenient();
    let e = "agent:spender";
    s.hit("i-1", e, spike("cost_spike", 7.5), T0);
    let cap = actions(&s.log)
        .into_iter()
        .find(|a| a.kind == ActionKind::BudgetCap)
        .unwrap()
        .clone();
    assert!(!s.r.wants_samples(&t(), e), "approved, not applied yet");
    s.result(&cap.id, true, T0 + 1);
    assert!(s.r.wants_samples(&t(), e), "the cap's spend is counted");
    let v = s.verdict(e, T0 + 2);
    assert_eq!(v.verdict, VerdictKind::Throttle);
    let full = Budget {
        limit_usd: 10.0,
        spent_usd: 0.0,
        remaining_usd: 10.0,
    };
    assert_eq!(v.budget, Some(full));
    s.spend(e, 3.5, 100, T0 + 10);
    assert_eq!(s.verdict(e, T0 + 11).budget.unwrap().remaining_usd, 6.5);
    s.spend(e, 6.5, 101, T0 + 12);
    let v = s.verdict(e, T0 + 13);
    assert_eq!(
        (v.verdict, v.until),
        (VerdictKind::Block, Some(T0 + 1 + 24 * HOUR))
    );
    assert_eq!(v.incident.as_deref(), Some("i-1"));
}

#[test]
fn playbook_errors_name_every_file_and_line() {
    let sources = [
        PlaybookSource::new(
            "a.yml",
            "- id: a\n  trigger: {kinds: [x]}\n  steps:\n    - action: explode\n",
        ),
        PlaybookSource::new(
            "b.yml",
            "- id: b\n  trigger: {kinds: [x]}\n  mode: sometimes\n  steps: [{action: notify}]\n",
        ),
        PlaybookSource::new("c.yml", "not: [valid"),
    ];
    let errs = PlaybookSet::load(&sources).unwrap_err();
    let lines: Vec<String> = errs.to_string().lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert!(lines
        .iter()
        .any(|l| l.starts_with("a.yml:4: ") && l.contains("unknown action `explode`")));
    assert!(lines
        .iter()
        .any(|l| l.starts_with("b.yml:3: ") && l.contains("`mode` must be")));
    assert!(lines
        .iter()
        .any(|l| l.starts_with("c.yml:") && l.contains("invalid YAML")));
}

#[test]
fn a_non_fleet_kind_on_a_fleet_covered_incident_is_still_handled() {
    let (cfg, pbs) = fleet_config();
    let mut s = Sim::with(cfg, pbs);
    for i in 0..3 {
        let mut a = Asset::new(format!("agent:g{i}"));
        a.group = Some("g".into());
        s.r.upsert_asset(&t(), a).unwrap();
    }
    for i in 0..3 {
        s.hit(
            &format!("i-{i}"),
            &format!("agent:g{i}"),
            spike("latency_spike", 4.0),
            T0,
        );
    }
    assert_eq!(s.state("agent:g0"), LifecycleState::Healthy);
    let f = F {
        kind: "prompt_injection",
        detector: "rule:prompt-injection",
        severity: Severity::High,
        score: 0.9,
        evidence: json!({}),
    };
    let ds = s.hit("i-0", "agent:g0", f, T0 + 1);
    assert_eq!(actions(&ds)[0].kind, ActionKind::Quarantine);
    assert_eq!(s.state("agent:g0"), LifecycleState::Suspected);
}

fn sqli(ip: &str) -> F {
    F {
        kind: "sqli",
        detector: "rule:sqli-union",
        severity: Severity::High,
        score: 0.9,
        evidence: json!({"field": "query", "src_ip": ip}),
    }
}

#[test]
fn web_attack_blocks_and_notifies_and_a_quiet_close_counts_as_success() {
    let mut s = Sim::new();
    let ds = s.hit("i-1", "service:shop", sqli("203.0.113.50"), T0);
    let acts: Vec<Action> = actions(&ds).into_iter().cloned().collect();
    let kinds: Vec<ActionKind> = acts.iter().map(|a| a.kind).collect();
    assert_eq!(kinds, [ActionKind::BlockIp, ActionKind::Notify]);
    assert_eq!(acts[1].target, "service:shop");
    s.result(&acts[0].id, true, T0 + 1);
    // The notification is started and delivered like any other action.
    let notify = &acts[1].id;
    s.r.on_action_started(&t(), notify, T0 + 1).unwrap();
    s.result(notify, true, T0 + 2);
    let ds = s.close("i-1", "service:shop", "sqli", T0 + 400_000);
    assert_eq!(s.state("service:shop"), LifecycleState::Healthy);
    assert_eq!(resolutions(&ds), [("i-1", Resolution::Mitigated)]);
    let ds = s.hit("i-2", "service:shop", sqli("203.0.113.51"), T0 + HOUR);
    let block = actions(&ds)[0].clone();
    assert_eq!(block.why.numbers["successes"], 1.0, "{:#?}", block.why);
}

#[test]
fn an_executor_that_never_answers_fails_the_step() {
    let mut s = Sim::new();
    let ds = s.hit("i-1", "host:web", brute_force("192.0.2.78"), T0);
    let id = actions(&ds)[0].id.clone();
    assert!(escalations(&s.tick(T0 + 599_999)).is_empty());
    let ds = s.tick(T0 + 600_000);
    assert_eq!(actions(&ds)[0].status, ActionStatus::Failed);
    assert!(escalations(&ds)[0].contains("no result from the executor"));
    assert_eq!(s.r.action(&t(), &id).unwrap().status, ActionStatus::Failed);
}

// ---- the default pack on a stock install

/// What a stock install carries out with no `[executors]` configured: the kinds antibody
/// enforces itself, and `notify` through the built-in inbox. Not `reset` (recorded for the
/// agent's SDK, not enforced), nor `webhook`, `command`, `signal` (need configuration).
const STOCK: [ActionKind; 7] = [
    ActionKind::BlockIp,
    ActionKind::RateLimit,
    ActionKind::Quarantine,
    ActionKind::Isolate,
    ActionKind::RevokeTools,
    ActionKind::BudgetCap,
    ActionKind::Notify,
];

/// Each finding kind detection emits (plus `threat_intel`, a kind to come) → the default
/// playbook that answers it.
const ANSWERS: &[(&str, &str)] = &[
    ("token_spike", "token-explosion"),
    ("input_spike", "token-explosion"),
    ("output_spike", "token-explosion"),
    ("tool_explosion", "tool-loop"),
    ("cost_spike", "cost-overrun"),
    ("latency_spike", "latency-spike"),
    ("retry_spike", "retry-storm"),
    ("error_spike", "error-spike"),
    ("metric_spike", "metric-spike"),
    ("prompt_change", "prompt-change"),
    ("tool_version_change", "prompt-change"),
    ("sqli", "web-attack"),
    ("xss", "web-attack"),
    ("path_traversal", "web-attack"),
    ("cmd_injection", "web-attack"),
    ("prompt_injection", "prompt-injection"),
    ("secret_leak", "secret-leak"),
    ("jailbreak", "prompt-injection"),
    ("brute_force", "brute-force"),
    ("port_scan", "port-scan"),
    ("request_flood", "request-flood"),
    ("exfiltration", "exfiltration"),
    ("model:agents", "model-threat"),
    ("model_drift", "model-drift"),
    ("threat_intel", "threat-intel"),
    ("web_anomaly", "web-anomaly"),
];

/// A finding of `kind` as its detector would report it, with an attacking address in the
/// evidence (IP-blocking playbooks target it; the others ignore it).
fn finding_of(kind: &'static str) -> F {
    let detector = if kind.starts_with("model:") {
        kind
    } else if kind.ends_with("_spike") || kind.ends_with("_change") || kind == "tool_explosion" {
        "baseline"
    } else {
        "rule:default"
    };
    F {
        kind,
        detector,
        severity: Severity::Medium,
        score: 0.7,
        evidence: json!({"src_ip": "198.51.100.7", "sigma": 3.5}),
    }
}

/// One incident fed a finding from `f` every second until its suspect window is over (at
/// once for a rule hit); the actions taken, in order.
fn sustained(s: &mut Sim, entity: &str, f: impl Fn() -> F) -> Vec<Action> {
    for i in 0..3 {
        s.hit("i-1", entity, f(), T0 + i * 1_000);
        s.tick(T0 + i * 1_000 + 500);
    }
    actions(&s.log).into_iter().cloned().collect()
}

#[test]
fn every_default_step_runs_on_a_stock_install() {
    let set = PlaybookSet::default_pack().unwrap();
    assert!(set.playbooks().len() >= 15, "{}", set.playbooks().len());
    for pb in set.playbooks() {
        for step in &pb.steps {
            assert!(
                STOCK.contains(&step.action) && step.executor.is_none(),
                "playbook `{}` needs a `{}` executor a stock install lacks",
                pb.id,
                step.executor.as_deref().unwrap_or(step.action.as_str())
            );
        }
    }
}

#[test]
fn every_kind_detection_emits_is_answered_by_a_default_playbook() {
    use antibody_respond::playbook::glob;
    let emitted = antibody_detect::kinds::emitted(
        &antibody_detect::EngineConfig::default(),
        &antibody_rules::RuleSet::default_pack(),
    );
    let set = PlaybookSet::default_pack().unwrap();
    for kind in &emitted {
        let Some((example, _)) = ANSWERS.iter().find(|(k, _)| glob(kind, k)) else {
            panic!("`{kind}` is emitted but has no expected playbook in ANSWERS");
        };
        let matched = set.playbooks().iter().find_map(|pb| {
            pb.matches(std::iter::once(*example), None, 5.0, "agent:a", None)
                .map(|_| pb.id.as_str())
        });
        assert!(matched.is_some(), "no default playbook answers `{kind}`");
    }
}

#[test]
fn each_finding_kind_gets_its_playbooks_first_rung_of_stock_actions() {
    let set = PlaybookSet::default_pack().unwrap();
    for &(kind, want) in ANSWERS {
        let mut s = Sim::new();
        let acts = sustained(&mut s, "agent:a", || finding_of(kind));
        let pb = set.get(want).unwrap();
        let rung: Vec<ActionKind> = pb.steps[pb.rungs[0].clone()]
            .iter()
            .map(|s| s.action)
            .collect();
        let got: Vec<ActionKind> = acts.iter().map(|a| a.kind).collect();
        assert_eq!(got, rung, "{kind}: {:#?}", s.log);
        for a in &acts {
            assert_eq!(a.why.playbook, want, "{kind}");
            assert!(STOCK.contains(&a.kind), "{kind}: {}", a.kind);
            assert_ne!(a.status, ActionStatus::Failed, "{kind}");
        }
        // Every approved action succeeds (as the stock executors report) without escalating.
        for a in acts.iter().filter(|a| a.status == ActionStatus::Approved) {
            s.r.on_action_started(&t(), &a.id, T0 + 5_000).unwrap();
            let ds = s.result(&a.id, true, T0 + 5_001);
            assert!(escalations(&ds).is_empty(), "{kind}: {ds:#?}");
        }
        assert!(escalations(&s.log).is_empty(), "{kind}: {:#?}", s.log);
    }
}

#[test]
fn a_latency_spike_is_told_to_people_never_contained() {
    let mut s = Sim::new();
    let e = "agent:slow";
    let ds = s.hit("i-1", e, spike("latency_spike", 9.0), T0);
    let acts: Vec<Action> = actions(&ds).into_iter().cloned().collect();
    assert_eq!(acts.len(), 1);
    assert_eq!(acts[0].kind, ActionKind::Notify);
    // Far past the 5σ approval threshold, yet telling people waits for nobody.
    assert_eq!(acts[0].status, ActionStatus::Approved);
    s.r.on_action_started(&t(), &acts[0].id, T0 + 1).unwrap();
    s.result(&acts[0].id, true, T0 + 2);
    s.close("i-1", e, "latency_spike", T0 + 400_000);
    assert_eq!(
        states(&s.log, e),
        [LifecycleState::Suspected, LifecycleState::Healthy]
    );
}

#[test]
fn a_severe_cost_spike_waits_for_approval_but_its_notification_goes_out() {
    let mut s = Sim::new();
    let ds = s.hit("i-1", "agent:spender", spike("cost_spike", 8.0), T0);
    let status: Vec<(ActionKind, ActionStatus)> =
        actions(&ds).iter().map(|a| (a.kind, a.status)).collect();
    assert_eq!(
        status,
        [
            (ActionKind::BudgetCap, ActionStatus::PendingApproval),
            (ActionKind::Notify, ActionStatus::Approved),
        ]
    );
}

#[test]
fn a_model_that_names_a_cause_runs_that_causes_playbook() {
    let mut s = Sim::new();
    let f = F {
        kind: "model:agents",
        detector: "model:agents",
        severity: Severity::High,
        score: 0.97,
        evidence: json!({"threat_type": "data_exfiltration"}),
    };
    let acts = sustained(&mut s, "agent:leaky", || F {
        evidence: f.evidence.clone(),
        ..f
    });
    assert_eq!(acts[0].why.playbook, "exfiltration");
    assert_eq!(acts[0].kind, ActionKind::Isolate);
}
