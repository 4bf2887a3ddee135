//! The response stage: one thread that owns the [`Responder`], fed by the sink (stored
//! findings and incidents, probation samples), ticks, people (approve, reject, heal, undo,
//! feedback, assets) and executors (results). Every decision is appended to the tenant's
//! audit chain, stored, published on `/v1/stream` and, for approved actions, carried out.
//!
//! One thread because decisions span entities (fleet correlation, per-tenant blast-radius
//! guard) and are rare next to events; the planner does well over 100k decisions/s.
//!
//! Durability: the responder is snapshotted to `snapshots/responder.snap` after every human
//! command and executor result, and with every engine checkpoint; incidents the engine
//! replays after a crash are folded in again (the responder is idempotent per incident
//! version), so pending approvals, active blocks and lifecycle states survive a restart. An
//! unreadable snapshot stops start-up (`load_responder`); decisions that cannot be stored
//! make the service not ready.
//!
//! Incident summaries and the optional LLM investigator: see [`investigate`]. The built-in
//! notifications inbox (notify with no channel configured, every escalation): see [`inbox`].
//! People's work on incidents, the engine's resolutions and post-mortems: see [`incidents`].
//!
//! Enforcement: after every apply that changed what is in force (an action of a kind the
//! view serves, a containment, a budget's spend), the stage rebuilds the touched tenants'
//! [`Enforcement`] views from the responder's state and swaps them in; HTTP handlers read
//! verdicts and the blocklist from there without a lock or a message to this thread.

mod execute;
mod inbox;
mod incidents;
mod investigate;

use crate::metrics::Metrics;
use crate::pipeline::{Health, StreamItem};
use crate::ServerError;
use antibody_core::{Clock, Finding, Incident, TenantId, TimestampMs};
use antibody_detect::Sample;
use antibody_respond::enforce::{change_of, Change};
use antibody_respond::{
    Action, ActionKind, ActionStatus, Asset, AuditChain, AuditEntry, Decision, Enforcement,
    LifecycleState, RespondError, Responder,
};
use antibody_store::{IncidentResponse, ResponseBatch, Store, StoreError};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, oneshot};

pub use execute::Executors;
pub use investigate::InvestigatorSetup;

/// Queued sink batches folded into one step at most.
const MAX_FOLD: usize = 256;

/// Decisions stored per transaction at most.
const PERSIST_CHUNK: usize = 32;

/// Incident views kept in memory at most; every view is stored, so dropping them all
/// costs only re-reads.
const MAX_VIEWS: usize = 100_000;

/// A person's request, with who asked (the key id) and for which tenant.
#[derive(Debug)]
pub struct Human {
    pub tenant: TenantId,
    pub actor: String,
    pub cmd: HumanCmd,
}

#[derive(Debug)]
pub enum HumanCmd {
    Approve {
        id: String,
    },
    Reject {
        id: String,
    },
    Undo {
        id: String,
    },
    ApproveAll,
    RejectAll,
    Heal {
        entity: String,
    },
    HealAll,
    /// Ack, assign, note, resolve or reopen an incident.
    Incident {
        id: String,
        op: antibody_respond::IncidentOp,
    },
    Feedback {
        kinds: Vec<String>,
        root_cause: String,
    },
    /// A change made elsewhere (the model registry, keys and tenants, tenant documents),
    /// appended to the audit chain; `data` holds its details (before/after, version, …).
    Record {
        kind: String,
        subject: String,
        detail: String,
        data: BTreeMap<String, String>,
    },
    PutAssets(Vec<Asset>),
}

#[derive(Debug)]
pub enum ReadQuery {
    State {
        tenant: TenantId,
        entity: String,
    },
    /// The tenant's entities the responder holds in a state other than healthy.
    States {
        tenant: TenantId,
    },
}

#[derive(Debug)]
pub enum ReadReply {
    State(LifecycleState),
    States(BTreeMap<String, LifecycleState>),
}

/// What a person's command changed: the actions, and the entities that changed state.
#[derive(Debug, Default)]
pub struct Changed {
    pub actions: Vec<Action>,
    pub entities: Vec<String>,
}

pub(crate) enum RespondMsg {
    Outputs {
        findings: Vec<Finding>,
        incidents: Vec<Incident>,
        samples: Vec<Sample>,
        /// When the sink had stored them (for the incident → action latency).
        stored: std::time::Instant,
    },
    Tick(TimestampMs),
    Human(Human, oneshot::Sender<Result<Changed, RespondError>>),
    Read(ReadQuery, oneshot::Sender<ReadReply>),
    Executed {
        tenant: TenantId,
        id: String,
        ok: bool,
        message: String,
    },
    /// The investigator answered (or failed) about an incident.
    Investigated(investigate::Answer),
    /// A barrier from the partitions through the sink (`Pipeline::settled`).
    Settle(std::sync::Arc<crate::pipeline::Settle>),
    Checkpoint,
    Playbooks(Arc<antibody_respond::PlaybookSet>),
    /// A tenant's own playbook set (`None`: back to the global one).
    TenantPlaybooks(TenantId, Option<Arc<antibody_respond::PlaybookSet>>),
    /// A tenant's own response policy (`None`: back to the configured one).
    TenantPolicy(TenantId, Option<Arc<antibody_respond::TenantPolicy>>),
    Stop,
}

/// What the stage asks of the engine partition that owns an entity.
pub(crate) enum EntityCmd {
    /// Start or stop sampling its events (probation, a budget cap).
    Sample(bool),
    /// It healed: its baselines re-converge to a new level until this engine time.
    Reconverge(TimestampMs),
}

/// Where the stage sends an [`EntityCmd`].
pub(crate) type Watch = Box<dyn Fn(&TenantId, &str, EntityCmd) + Send>;

/// Where the stage tells the engine that an incident of an entity was resolved, at `now`.
pub(crate) type Seal = Box<dyn Fn(&TenantId, &str, &str, TimestampMs) + Send>;

pub(crate) struct RespondStage {
    responder: Responder,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
    stream: broadcast::Sender<StreamItem>,
    chains: BTreeMap<TenantId, AuditChain>,
    views: BTreeMap<(TenantId, String), IncidentResponse>,
    snapshot_path: PathBuf,
    executors: Executors,
    watch: Watch,
    seal: Seal,
    /// Messages the stage sends itself (executor completions).
    own: std::sync::mpsc::Sender<RespondMsg>,
    /// When the incident updates being handled were stored, for the action latency metric.
    since: Option<std::time::Instant>,
    ticks: u64,
    /// Ticks between two drift checks of applied external actions.
    drift_every: u64,
    /// How long a healed entity's baselines re-converge.
    reconverge_ms: i64,
    investigator: InvestigatorSetup,
    asking: investigate::Asking,
    inbox: Arc<inbox::Inbox>,
    /// Marked failed when a decision cannot be stored (`/readyz` then says why).
    health: Arc<Health>,
    /// The published enforcement view (see the module doc).
    enforcement: Arc<Enforcement>,
}

pub(crate) struct StageParts {
    pub responder: Responder,
    pub store: Arc<Store>,
    pub metrics: Arc<Metrics>,
    pub clock: Arc<dyn Clock>,
    pub stream: broadcast::Sender<StreamItem>,
    pub snapshot_path: PathBuf,
    pub executors: Executors,
    pub watch: Watch,
    pub seal: Seal,
    pub own: std::sync::mpsc::Sender<RespondMsg>,
    pub drift_every: u64,
    pub reconverge_ms: i64,
    pub health: Arc<Health>,
    pub enforcement: Arc<Enforcement>,
}

/// Loads the responder from its snapshot, or, when there is none, starts one with the stored
/// assets. An unreadable snapshot stops start-up: starting afresh would silently drop the
/// pending approvals and active blocks it holds.
pub(crate) fn load_responder(
    path: &std::path::Path,
    cfg: Arc<antibody_respond::ResponderConfig>,
    playbooks: Arc<antibody_respond::PlaybookSet>,
    store: &Store,
) -> Result<Responder, ServerError> {
    match std::fs::read(path) {
        Ok(bytes) => {
            return Responder::restore(cfg, playbooks, &bytes).map_err(|source| {
                ServerError::ResponderSnapshot {
                    path: path.to_path_buf(),
                    source,
                }
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(ServerError::Io {
                context: format!("reading the responder snapshot {}", path.display()),
                source,
            })
        }
    }
    let mut r = Responder::new(cfg, playbooks);
    for (tenant, asset) in store.all_assets()? {
        if let Err(e) = r.upsert_asset(&tenant, asset) {
            tracing::warn!(error = %e, "skipping a stored asset the responder refuses");
        }
    }
    Ok(r)
}

impl RespondStage {
    pub(crate) fn new(p: StageParts) -> Result<Self, StoreError> {
        let mut chains = BTreeMap::new();
        for head in p.store.audit_heads()? {
            chains.insert(
                TenantId::new(&head.record.tenant),
                AuditChain::resume(&head),
            );
        }
        let investigator = p.executors.investigator();
        let inbox = Arc::new(inbox::Inbox::new(p.store.clone(), p.stream.clone()));
        // What the snapshot holds in force is served from the first request on (the
        // entities it samples are asked for again once the log replay is done: see
        // `pipeline::start`).
        p.enforcement.rebuild(&p.responder);
        Ok(Self {
            responder: p.responder,
            store: p.store,
            metrics: p.metrics,
            clock: p.clock,
            stream: p.stream,
            chains,
            views: BTreeMap::new(),
            snapshot_path: p.snapshot_path,
            executors: p.executors.with_inbox(inbox.clone()),
            watch: p.watch,
            seal: p.seal,
            own: p.own,
            since: None,
            ticks: 0,
            drift_every: p.drift_every.max(1),
            reconverge_ms: p.reconverge_ms,
            investigator,
            asking: investigate::Asking::default(),
            inbox,
            health: p.health,
            enforcement: p.enforcement,
        })
    }

    pub(crate) fn run(mut self, rx: Receiver<RespondMsg>) {
        self.recover_postmortems();
        let mut held: Option<RespondMsg> = None;
        loop {
            let msg = match held.take() {
                Some(m) => m,
                None => match rx.recv_timeout(Duration::from_secs(1)) {
                    Ok(m) => m,
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => break,
                },
            };
            let now = self.clock.now_ms();
            match msg {
                RespondMsg::Outputs {
                    mut findings,
                    incidents,
                    mut samples,
                    stored,
                } => {
                    // Under load the same incidents update many times over; fold every queued
                    // batch into one and judge each incident once, at its latest version.
                    let mut latest: BTreeMap<(TenantId, String), Incident> = BTreeMap::new();
                    let mut fold = |incs: Vec<Incident>| {
                        for i in incs {
                            latest.insert((i.tenant.clone(), i.id.clone()), i);
                        }
                    };
                    fold(incidents);
                    for _ in 0..MAX_FOLD {
                        match rx.try_recv() {
                            Ok(RespondMsg::Outputs {
                                findings: f,
                                incidents: i,
                                samples: smp,
                                ..
                            }) => {
                                findings.extend(f);
                                samples.extend(smp);
                                fold(i);
                            }
                            Ok(other) => {
                                held = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    let incidents: Vec<Incident> = latest.into_values().collect();
                    self.since = Some(stored);
                    self.on_outputs(&findings, &incidents, &samples, now);
                    self.since = None;
                }
                RespondMsg::Tick(t) => {
                    let d = self.responder.on_tick(t);
                    self.apply(d, t);
                    // The per-minute budget frees up with time alone.
                    self.pump(t);
                    self.ticks += 1;
                    if self.ticks.is_multiple_of(self.drift_every) {
                        self.check_drift(t);
                    }
                }
                RespondMsg::Human(h, reply) => {
                    let result = self.on_human(h, now);
                    self.snapshot();
                    let _ = reply.send(result);
                }
                RespondMsg::Read(q, reply) => {
                    let _ = reply.send(self.read(q));
                }
                RespondMsg::Executed {
                    tenant,
                    id,
                    ok,
                    message,
                } => {
                    match self
                        .responder
                        .on_action_result(&tenant, &id, ok, &message, now)
                    {
                        Ok(d) => self.apply(d, now),
                        Err(e) => {
                            tracing::warn!(action = %id, error = %e, "executor result for an unknown action")
                        }
                    }
                    self.snapshot();
                }
                RespondMsg::Investigated(answer) => self.on_answer(answer, now),
                RespondMsg::Checkpoint => self.snapshot(),
                RespondMsg::Playbooks(p) => self.responder.set_playbooks(p),
                RespondMsg::TenantPlaybooks(t, p) => self.responder.set_tenant_playbooks(t, p),
                RespondMsg::TenantPolicy(t, p) => self.responder.set_tenant_policy(t, p),
                RespondMsg::Settle(s) => s.arrive(),
                RespondMsg::Stop => break,
            }
        }
        self.snapshot();
    }

    /// All decisions of one sink batch are stored in one transaction: incident updates come
    /// in bursts, and a transaction per incident would make SQLite the bottleneck.
    fn on_outputs(
        &mut self,
        findings: &[Finding],
        incidents: &[Incident],
        samples: &[Sample],
        now: TimestampMs,
    ) {
        let sealed = self.reseal(incidents, now);
        let mut decisions = Vec::new();
        // An incident resolved here takes no more decisions, whatever still joins it.
        for inc in incidents.iter().filter(|i| !sealed.contains(&i.id)) {
            let joined: Vec<Finding> = findings
                .iter()
                .filter(|f| {
                    f.incident.as_deref() == Some(inc.id.as_str()) && f.tenant == inc.tenant
                })
                .cloned()
                .collect();
            decisions.extend(self.responder.on_incident(inc, &joined, now));
        }
        let mut spent = Vec::new();
        for s in samples {
            decisions.extend(self.responder.on_sample(
                &s.tenant,
                &s.entity,
                s.within_baseline,
                s.ts,
            ));
            if let Some(usd) = s.cost_usd {
                let caps = self
                    .responder
                    .on_spend(&s.tenant, &s.entity, usd, s.offset, s.ts);
                spent.extend(
                    caps.into_iter()
                        .map(|id| (s.tenant.clone(), Change::Action(id))),
                );
            }
        }
        self.enforcement.apply(&self.responder, &spent);
        self.apply(decisions, now);
    }

    fn on_human(&mut self, h: Human, now: TimestampMs) -> Result<Changed, RespondError> {
        let (t, who) = (&h.tenant, h.actor.as_str());
        let r = &mut self.responder;
        let decisions = match h.cmd {
            HumanCmd::Approve { id } => {
                self.approvable(t, &id)?;
                self.responder.approve(who, t, &id, now)?
            }
            HumanCmd::Reject { id } => r.reject(who, t, &id, now)?,
            HumanCmd::Undo { id } => r.undo(who, t, &id, now)?,
            HumanCmd::ApproveAll => {
                // As one approve each: an action of an incident a person resolved keeps waiting.
                let pending: Vec<String> = self
                    .responder
                    .actions(t, Some(ActionStatus::PendingApproval))
                    .map(|a| a.id.clone())
                    .collect();
                let skip: std::collections::BTreeSet<String> = pending
                    .into_iter()
                    .filter(|id| self.approvable(t, id).is_err())
                    .collect();
                self.responder.approve_all_but(who, t, &skip, now)
            }
            HumanCmd::RejectAll => r.reject_all(who, t, now),
            HumanCmd::Heal { entity } => r.heal_now(who, t, &entity, now)?,
            HumanCmd::HealAll => r.heal_all(who, t, now),
            HumanCmd::Incident { id, op } => {
                self.work_incident(t, who, &id, op, now)?;
                Vec::new()
            }
            HumanCmd::Record {
                kind,
                subject,
                detail,
                data,
            } => {
                let record = antibody_respond::AuditRecord {
                    ts: now,
                    tenant: t.to_string(),
                    actor: who.to_owned(),
                    kind,
                    subject,
                    detail,
                    data,
                };
                let entry = self.chains.entry(t.clone()).or_default().append(record);
                let _ = self.store_retrying(|s| s.append_audit(std::slice::from_ref(&entry)));
                Vec::new()
            }
            HumanCmd::Feedback { kinds, root_cause } => {
                self.feedback(t, who, &kinds, &root_cause, now)?;
                Vec::new()
            }
            HumanCmd::PutAssets(assets) => {
                for a in &assets {
                    a.validate()?;
                }
                for a in assets {
                    r.upsert_asset(t, a)?;
                }
                Vec::new()
            }
        };
        let mut changed = Changed::default();
        for d in &decisions {
            match d {
                Decision::Action { action, .. } | Decision::Undo { action, .. } => {
                    changed.actions.push(action.clone());
                }
                Decision::Transition(tr) if !changed.entities.contains(&tr.entity) => {
                    changed.entities.push(tr.entity.clone());
                }
                _ => {}
            }
        }
        self.apply(decisions, now);
        Ok(changed)
    }

    /// A named root cause re-ranks the tenant's diagnoses of incidents with these kinds
    /// (`POST /v1/feedback`, and resolving an incident with a diagnosis cause); audited.
    fn feedback(
        &mut self,
        t: &TenantId,
        who: &str,
        kinds: &[String],
        root_cause: &str,
        now: TimestampMs,
    ) -> Result<(), RespondError> {
        let cause = self.responder.feedback(t, kinds, root_cause)?;
        let mut data = BTreeMap::new();
        data.insert("root_cause".to_owned(), cause.as_str().to_owned());
        let record = antibody_respond::AuditRecord {
            ts: now,
            tenant: t.to_string(),
            actor: who.to_owned(),
            kind: "feedback".into(),
            subject: kinds.join(","),
            detail: format!("root cause named: {}", cause.as_str()),
            data,
        };
        let entry = self.chains.entry(t.clone()).or_default().append(record);
        let _ = self.store_retrying(|s| s.append_audit(std::slice::from_ref(&entry)));
        Ok(())
    }

    fn read(&self, q: ReadQuery) -> ReadReply {
        match q {
            ReadQuery::State { tenant, entity } => {
                ReadReply::State(self.responder.entity_state(&tenant, &entity))
            }
            ReadQuery::States { tenant } => ReadReply::States(
                self.responder
                    .entity_states(&tenant)
                    .map(|(e, s)| (e.to_owned(), s))
                    .collect(),
            ),
        }
    }

    /// Records, stores, publishes and carries out decisions, and whatever the executors'
    /// immediate results decide in turn; then swaps in the enforcement they changed.
    fn apply(&mut self, decisions: Vec<Decision>, now: TimestampMs) {
        let mut queue = decisions;
        let mut changes = Vec::new();
        while !queue.is_empty() {
            let mut batch = std::mem::take(&mut queue);
            // An engine resolution that changes nothing (a person decided) is not recorded.
            batch.retain(|d| self.admit(d, now));
            // Bounded transactions: the sink shares SQLite's single writer, and a long
            // response transaction would hold back findings becoming visible.
            for chunk in batch.chunks(PERSIST_CHUNK) {
                self.persist(chunk, now);
            }
            for d in &batch {
                self.publish(d);
                self.observe_applied(d);
                self.after_resolved(d, now);
                changes.extend(change_of(d));
                queue.extend(self.carry_out(d, now));
            }
        }
        self.enforcement.apply(&self.responder, &changes);
        self.pump(now);
    }

    /// Re-checks applied external actions; drift is audited and streamed for a person.
    fn check_drift(&mut self, now: TimestampMs) {
        let tenants: Vec<TenantId> = self.chains.keys().cloned().collect();
        for tenant in tenants {
            for (id, message) in self.executors.drifted(&self.responder, &tenant) {
                let record = antibody_respond::AuditRecord {
                    ts: now,
                    tenant: tenant.to_string(),
                    actor: antibody_respond::decision::ENGINE.into(),
                    kind: "drift".into(),
                    subject: id.clone(),
                    detail: message.clone(),
                    data: BTreeMap::new(),
                };
                let entry = self
                    .chains
                    .entry(tenant.clone())
                    .or_default()
                    .append(record);
                let _ = self.store_retrying(|s| s.append_audit(std::slice::from_ref(&entry)));
                let data = serde_json::json!({"action": id, "message": message}).to_string();
                let _ = self.stream.send(StreamItem {
                    tenant: tenant.clone(),
                    event: "drift",
                    data: data.into(),
                });
                tracing::warn!(action = %id, %message, "enforcement drift");
            }
        }
    }

    /// Incident update stored → action applied, for actions antibody enforces itself.
    fn observe_applied(&self, d: &Decision) {
        if let (Some(at), Decision::Action { action, .. }) = (self.since, d) {
            if action.status == ActionStatus::Succeeded {
                self.metrics.action_latency.observe(at.elapsed());
            }
        }
    }

    fn persist(&mut self, batch: &[Decision], now: TimestampMs) {
        let mut audit: Vec<AuditEntry> = Vec::with_capacity(batch.len());
        let mut actions: Vec<(TenantId, Action)> = Vec::new();
        let mut touched: Vec<(TenantId, String)> = Vec::new();
        // Fleet incidents are incidents like any other in the API (diagnosed external_cause).
        let mut fleet: Vec<Incident> = Vec::new();
        for d in batch {
            let tenant = d.tenant().clone();
            audit.push(
                self.chains
                    .entry(tenant.clone())
                    .or_default()
                    .append(d.audit_record(now)),
            );
            match d {
                Decision::Assessment {
                    incident,
                    assessment,
                    diagnosis,
                    ..
                } => {
                    let v = self.view(&tenant, incident);
                    v.risk = assessment.risk;
                    v.confidence = assessment.confidence;
                    v.blast_radius = assessment.blast_radius;
                    v.diagnosis = diagnosis.clone();
                    touched.push((tenant, incident.clone()));
                }
                Decision::Action { action, .. } | Decision::Undo { action, .. } => {
                    if action.kind == ActionKind::BudgetCap {
                        // A cap counts its entity's spend while it is applied.
                        let on = self.responder.wants_samples(&tenant, &action.target);
                        (self.watch)(&tenant, &action.target, EntityCmd::Sample(on));
                    }
                    actions.push((tenant.clone(), action.clone()));
                    let summary = serde_json::json!({
                        "id": action.id, "kind": action.kind, "target": action.target, "status": action.status
                    });
                    let v = self.view(&tenant, &action.incident);
                    match v.actions.iter_mut().find(|a| a["id"] == summary["id"]) {
                        Some(slot) => *slot = summary,
                        None => v.actions.push(summary),
                    }
                    touched.push((tenant, action.incident.clone()));
                }
                Decision::Transition(t) => {
                    let on = self.responder.wants_samples(&t.tenant, &t.entity);
                    (self.watch)(&t.tenant, &t.entity, EntityCmd::Sample(on));
                    if t.from == LifecycleState::Probation && t.to == LifecycleState::Healthy {
                        // Remembered too: the engine's checkpoint may predate the heal.
                        let until = t.ts.saturating_add(self.reconverge_ms);
                        self.responder.reconverge(&t.tenant, &t.entity, until);
                        (self.watch)(&t.tenant, &t.entity, EntityCmd::Reconverge(until));
                    }
                }
                Decision::Fleet(f) => fleet.push(f.to_incident()),
                // `admit` changed the view already.
                Decision::Resolved { incident, .. } => touched.push((tenant, incident.clone())),
                _ => {}
            }
        }
        touched.sort();
        touched.dedup();
        for key in &touched {
            self.refresh_summary(key);
        }
        let views: Vec<(TenantId, String, IncidentResponse)> = touched
            .into_iter()
            .filter_map(|k| self.views.get(&k).map(|v| (k.0, k.1, v.clone())))
            .collect();
        // One transaction: an action is never stored without the audit entry that records it.
        let batch = ResponseBatch {
            audit: &audit,
            actions: &actions,
            now_ms: now,
            incidents: &fleet,
            views: &views,
        };
        let _ = self.store_retrying(|s| s.write_response_batch(&batch));
        if self.views.len() > MAX_VIEWS {
            self.views.clear();
        }
    }

    /// The incident's response view: in memory, else as stored (after a restart, or once
    /// memory was trimmed), else a new one.
    fn view(&mut self, tenant: &TenantId, incident: &str) -> &mut IncidentResponse {
        self.view_or(tenant, incident, None)
    }

    /// [`Self::view`], a new one starting from `seed`'s risk, diagnosis and actions.
    fn view_or(
        &mut self,
        tenant: &TenantId,
        incident: &str,
        seed: Option<&Incident>,
    ) -> &mut IncidentResponse {
        use std::collections::btree_map::Entry;
        match self.views.entry((tenant.clone(), incident.to_owned())) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => {
                let stored = self
                    .store
                    .get_incident_response(tenant, incident)
                    .unwrap_or_else(|err| {
                        tracing::warn!(error = %err, incident, "reading an incident's response view failed");
                        None
                    });
                e.insert(stored.unwrap_or_else(|| IncidentResponse {
                    risk: seed.map_or(0.0, |i| i.risk),
                    confidence: 0.0,
                    blast_radius: 0,
                    diagnosis: seed.map(|i| i.diagnosis.clone()).unwrap_or_default(),
                    actions: seed.map(|i| i.actions.clone()).unwrap_or_default(),
                    summary: None,
                    work: Default::default(),
                }))
            }
        }
    }

    fn publish(&self, d: &Decision) {
        if self.stream.receiver_count() == 0 {
            return;
        }
        let (event, data) = match d {
            Decision::Action { action, .. } | Decision::Undo { action, .. } => {
                ("action", serde_json::to_string(action))
            }
            Decision::Transition(t) => ("state", serde_json::to_string(t)),
            Decision::Fleet(f) => ("incident", serde_json::to_string(&f.to_incident())),
            Decision::Escalation { .. } => ("escalation", serde_json::to_string(d)),
            // Resolutions are published with the incident as stored, once stored (see
            // `after_resolved`).
            Decision::Assessment { .. }
            | Decision::Skipped { .. }
            | Decision::Fallback { .. }
            | Decision::Resolved { .. } => return,
        };
        if let Ok(data) = data {
            let _ = self.stream.send(StreamItem {
                tenant: d.tenant().clone(),
                event,
                data: data.into(),
            });
        }
    }

    /// Runs approved actions and due undos, hands escalations and approval requests to the
    /// inbox; returns the
    /// decisions their immediate results cause.
    fn carry_out(&mut self, d: &Decision, now: TimestampMs) -> Vec<Decision> {
        match d {
            Decision::Action {
                tenant,
                entity,
                action,
                ..
            } if action.status == ActionStatus::Approved => {
                let asset = self.responder.asset(tenant, entity).cloned();
                self.executors.run(
                    &mut self.responder,
                    tenant,
                    entity,
                    action,
                    asset,
                    &self.own,
                    now,
                )
            }
            Decision::Action {
                tenant,
                entity,
                action,
                ..
            } if matches!(
                action.status,
                ActionStatus::PendingApproval | ActionStatus::Proposed
            ) =>
            {
                let severity = inbox::severity(&self.responder, tenant, &action.incident);
                let delivered = self
                    .inbox
                    .approval_needed(tenant, entity, action, severity, now);
                if let Err(e) = delivered {
                    self.metrics.store_errors.fetch_add(1, Relaxed);
                    tracing::error!(error = %e, action = %action.id, "an approval request did not reach the inbox");
                }
                Vec::new()
            }
            Decision::Undo {
                tenant,
                entity,
                action,
                ..
            } => {
                let asset = self.responder.asset(tenant, entity).cloned();
                self.executors.undo(tenant, entity, action, asset);
                Vec::new()
            }
            Decision::Escalation {
                tenant,
                entity,
                incident,
                reason,
            } => {
                let severity = inbox::severity(&self.responder, tenant, incident);
                let delivered = self
                    .inbox
                    .escalate(tenant, entity, incident, reason, severity, now);
                if let Err(e) = delivered {
                    self.metrics.store_errors.fetch_add(1, Relaxed);
                    tracing::error!(error = %e, incident, "an escalation did not reach the inbox");
                }
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    /// Store writes are retried: the decisions were already taken and cannot be re-derived.
    /// A write that still fails leaves the audit chain without records of decisions already
    /// carried out, so the service stops being ready (invariant 7) instead of going on; the
    /// error tells a caller that can still refuse (a person's request) not to go on.
    fn store_retrying(
        &self,
        f: impl Fn(&Store) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut delay = Duration::from_millis(10);
        let mut attempt = 1;
        loop {
            let e = match f(&self.store) {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            self.metrics.store_errors.fetch_add(1, Relaxed);
            if attempt == 10 {
                self.health.fail(&format!(
                    "storing response decisions and their audit records failed after retries ({e})"
                ));
                return Err(e);
            }
            tracing::error!(error = %e, "storing response decisions failed; retrying");
            std::thread::sleep(delay);
            delay = (delay * 2).min(Duration::from_secs(2));
            attempt += 1;
        }
    }

    fn snapshot(&self) {
        let bytes = match self.responder.snapshot() {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "responder snapshot failed");
                return;
            }
        };
        // The bytes carry their own header and checksum (`Responder::snapshot`).
        if let Err(e) = crate::durable_file::replace(&self.snapshot_path, &[&bytes]) {
            tracing::error!(error = %e, "writing the responder snapshot failed");
        }
    }
}
