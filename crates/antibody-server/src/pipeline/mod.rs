//! The ingest → log → engine → store pipeline, on plain threads:
//!
//! ```text
//! HTTP handlers ──try_send──► committer ──► partition workers ──► sink
//!   (parse)        bounded      (dedupe, append,   (Partition:     (SQLite batch,
//!                  → 429        one fsync, ack,     detect,         SSE fan-out,
//!                               route by entity)    correlate)      snapshots)
//! ```
//!
//! Invariants:
//! * An event is acknowledged only after the batch holding it is fsynced (group commit).
//! * Each partition sees its events in log order; finding and incident ids derive from log
//!   offsets, and store writes are idempotent, so replaying a tail after a crash counts nothing
//!   twice.
//! * A snapshot at offset X is written only after the sink has committed every output of the
//!   events below X; restart loads it and replays the log from X.

mod committer;
pub mod durable;
mod inflight;
mod sink;
mod snapshot;
pub mod visible;
mod worker;

use crate::metrics::Metrics;
use antibody_core::{Clock, Event, TenantId};
use antibody_detect::RuleBook;
use antibody_detect::{partition_of, EngineConfig, EntityView, ModelSet, ModelStats, Partition};
use antibody_log::{LogOptions, SegmentLog};
use antibody_store::Store;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, oneshot};

pub use sink::StreamItem;

#[derive(Clone, Debug)]
pub struct PipelineConfig {
    pub data_dir: PathBuf,
    pub partitions: usize,
    pub log: LogOptions,
    /// Events parsed by HTTP but not yet logged, across all requests; beyond it → 429.
    pub max_queued_events: u64,
    pub checkpoint_interval: Duration,
    pub checkpoint_every_events: u64,
    /// How long an idempotency `id` is remembered.
    pub dedupe_window_ms: i64,
    pub max_dedupe_ids: usize,
    /// Ticks (seconds) between two re-checks of applied external actions.
    pub drift_check_ticks: u64,
}

impl PipelineConfig {
    pub fn new(data_dir: PathBuf) -> Self {
        Self {
            data_dir,
            partitions: std::thread::available_parallelism().map_or(2, |n| n.get()),
            // A week or 8 GiB of history by default, whichever is reached first; never past
            // the engine's last checkpoint.
            log: LogOptions {
                max_total_bytes: Some(8 << 30),
                max_age_ms: Some(7 * 24 * 3600 * 1000),
                ..LogOptions::default()
            },
            max_queued_events: 2_000_000,
            checkpoint_interval: Duration::from_secs(30),
            checkpoint_every_events: 5_000_000,
            dedupe_window_ms: 24 * 3600 * 1000,
            max_dedupe_ids: 2_000_000,
            drift_check_ticks: 60,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("the durable log failed: {0}")]
    Log(#[from] antibody_log::LogError),
    #[error("engine snapshot: {0}")]
    Snapshot(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("the pipeline has stopped")]
    Stopped,
    #[error(transparent)]
    WebJournal(#[from] crate::webprof::JournalError),
}

/// Why a web-profile command did not complete.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("the engine is not running")]
    Stopped,
    /// Applied in memory, but not written: a crash before the next checkpoint loses it.
    #[error(transparent)]
    Journal(#[from] crate::webprof::JournalError),
}

/// What the committer reports back for one request.
#[derive(Debug, Clone, Default)]
pub struct CommitOutcome {
    /// Events newly stored (a repeated idempotency id is not among them).
    pub accepted: usize,
    pub duplicates: usize,
}

pub(crate) struct IngestRequest {
    pub events: Vec<Event>,
    pub received: Instant,
    pub ack: oneshot::Sender<Result<CommitOutcome, String>>,
}

pub(crate) enum Ingest {
    Events(IngestRequest),
    /// Final checkpoint, then stop every thread.
    Stop,
}

/// A barrier through every partition, the sink and the response stage (in that order, as
/// outputs flow): it resolves once each has handled everything queued before it. After a
/// restart this is when the decisions re-derived from the replayed log are in force.
pub(crate) struct Settle {
    left: std::sync::atomic::AtomicUsize,
    done: std::sync::Mutex<Option<oneshot::Sender<()>>>,
}

impl Settle {
    /// One partition's barrier reached the end of the line.
    pub(crate) fn arrive(&self) {
        if self.left.fetch_sub(1, Ordering::AcqRel) == 1 {
            if let Some(tx) = self.done.lock().ok().and_then(|mut d| d.take()) {
                let _ = tx.send(());
            }
        }
    }
}

/// Messages waiting per partition worker (events are bounded separately, in events).
const WORKER_QUEUE: usize = 256;
/// Unprocessed events per partition worker: ~5 s at 50,000 events/s, ~100 MB at most.
const MAX_INFLIGHT_EVENTS: usize = 256 * 1024;

pub(crate) enum Work {
    Events {
        batch: Vec<(u64, Event)>,
        received: Instant,
    },
    Tick(i64),
    Query {
        tenant: TenantId,
        entity: String,
        reply: oneshot::Sender<Option<EntityView>>,
    },
    Checkpoint {
        next_offset: u64,
    },
    /// New rule sets, global and tenants' own (after `PUT /v1/rules/{name}`).
    Rules(RuleBook),
    /// A new set of bound models (after a registry change).
    Models(Arc<ModelSet>),
    ModelStats(oneshot::Sender<BTreeMap<(TenantId, String), ModelStats>>),
    /// Start or stop sampling an entity for the response engine's probation.
    Watch {
        tenant: TenantId,
        entity: String,
        on: bool,
    },
    /// The entity healed: its baselines re-converge until this engine time.
    Reconverge {
        tenant: TenantId,
        entity: String,
        until: antibody_core::TimestampMs,
    },
    /// The response stage resolved an incident: detection adds no more findings to it.
    Seal {
        tenant: TenantId,
        entity: String,
        incident: String,
        now: i64,
    },
    /// A read or a change of a tenant's web profiles (see `crate::webprof`).
    WebProfiles {
        tenant: TenantId,
        cmd: crate::webprof::WebCmd,
        reply: oneshot::Sender<crate::webprof::WebReply>,
    },
    /// One partition's part of an entity list page (see `crate::entities`).
    Entities {
        tenant: TenantId,
        listing: Arc<crate::entities::Listing>,
        reply: oneshot::Sender<crate::entities::Page>,
    },
    /// A barrier: handed on to the sink once everything queued before it is done.
    Settle(Arc<Settle>),
    Stop,
}

/// Readiness shared by the pipeline threads: a stage that finds another stage gone (a bug
/// killed its thread) marks the service not ready for good, so `/readyz` fails and
/// orchestration can restart it; the log replay then recovers every acknowledged event. A
/// log or a store that cannot be written is not ready only until it is back: the committer
/// and the sink retry until then.
#[derive(Debug)]
pub(crate) struct Health {
    ok: AtomicBool,
    /// The first failure, shown by `/readyz`.
    why: std::sync::OnceLock<String>,
    /// Why the log is down while the committer retries it; `None` when it is up.
    log_down: std::sync::Mutex<Option<String>>,
    /// Why the store is down while the sink retries its write; `None` when it is up.
    store_down: std::sync::Mutex<Option<String>>,
    /// Set by `Pipeline::shutdown`: a stage retrying forever gives up instead (the log
    /// replay after the restart redoes its work).
    stopping: AtomicBool,
}

fn lock_outage(m: &std::sync::Mutex<Option<String>>) -> std::sync::MutexGuard<'_, Option<String>> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Health {
    pub(crate) fn new() -> Self {
        Self {
            ok: AtomicBool::new(true),
            why: std::sync::OnceLock::new(),
            log_down: std::sync::Mutex::new(None),
            store_down: std::sync::Mutex::new(None),
            stopping: AtomicBool::new(false),
        }
    }

    pub(crate) fn is_ok(&self) -> bool {
        self.ok.load(Ordering::Relaxed) && self.outage().is_none()
    }

    pub(crate) fn fail(&self, why: &str) {
        let _ = self.why.set(why.to_owned());
        if self.ok.swap(false, Ordering::Relaxed) {
            tracing::error!(
                why,
                "pipeline degraded: /readyz now fails; restart the service"
            );
        }
    }

    /// The log's or the store's current outage, if any.
    fn outage(&self) -> Option<String> {
        lock_outage(&self.log_down)
            .clone()
            .or_else(|| lock_outage(&self.store_down).clone())
    }

    /// The log failed; the committer retries it (`/readyz` says why meanwhile).
    pub(crate) fn log_down(&self, why: String) {
        let mut down = lock_outage(&self.log_down);
        if down.is_none() {
            tracing::error!(
                why,
                "the durable log failed: ingest answers 503 until it is back; retrying"
            );
        }
        *down = Some(why);
    }

    pub(crate) fn log_up(&self) {
        if lock_outage(&self.log_down).take().is_some() {
            tracing::info!("the durable log is writable again: ready");
        }
    }

    /// A store write failed; the sink holds the outputs and retries (`/readyz` says why).
    pub(crate) fn store_down(&self, why: String) {
        *lock_outage(&self.store_down) = Some(why);
    }

    pub(crate) fn store_up(&self) {
        lock_outage(&self.store_down).take();
    }

    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }
}

#[derive(Debug)]
pub enum SubmitError {
    Overloaded,
    Stopped,
}

/// Handle to the running pipeline, shared by the HTTP handlers.
pub struct Pipeline {
    ingest: SyncSender<Ingest>,
    workers: Vec<SyncSender<Work>>,
    queued: Arc<AtomicU64>,
    max_queued: u64,
    ready: Arc<Health>,
    pub stream: broadcast::Sender<StreamItem>,
    threads: std::sync::Mutex<Vec<std::thread::JoinHandle<()>>>,
    respond: mpsc::Sender<crate::respond::RespondMsg>,
    respond_thread: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Findings shown before their store commit; read endpoints merge them in.
    pub visible: Arc<visible::Uncommitted>,
    /// What the response stage has in force: verdicts and blocklists, read without a lock.
    pub enforcement: Arc<antibody_respond::Enforcement>,
    /// Events the committer has handed to the partitions (the next offset).
    dispatched: Arc<AtomicU64>,
    /// The offset of the newest written engine checkpoint.
    checkpoint: Arc<AtomicU64>,
    /// Web-profile changes no written checkpoint holds yet.
    web_journal: Arc<crate::webprof::Journal>,
    /// `[engine.web_profiles]`, for what the API shows.
    pub web_profiles: antibody_detect::WebProfilesConfig,
}

pub struct PipelineParts {
    pub store: Arc<Store>,
    pub metrics: Arc<Metrics>,
    pub clock: Arc<dyn Clock>,
    pub engine: Arc<EngineConfig>,
    /// Bound before the log tail is replayed, like models: tenants' own rules included.
    pub rules: RuleBook,
    /// Bound before the log tail is replayed, so replayed events are scored as before.
    pub models: Arc<ModelSet>,
    pub responder: antibody_respond::Responder,
    pub executors: crate::respond::Executors,
}

impl Pipeline {
    /// Opens the log, restores the engine from the newest snapshot, replays the log tail,
    /// and starts the threads. Returns once recovery is complete.
    pub fn start(
        cfg: PipelineConfig,
        parts: PipelineParts,
    ) -> Result<Arc<Pipeline>, PipelineError> {
        std::fs::create_dir_all(&cfg.data_dir)?;
        let web_journal = Arc::new(crate::webprof::Journal::open(
            &cfg.data_dir.join("web_profiles.journal"),
        )?);
        let log = SegmentLog::open(&cfg.data_dir.join("log"), cfg.log)?;
        let snapshots = snapshot::SnapshotDir::new(cfg.data_dir.join("snapshots"))?;
        let restored = snapshots.load_latest(cfg.partitions)?;
        let (start_offset, partitions) = match restored {
            Some(s) => {
                if s.next_offset > log.next_offset() {
                    return Err(PipelineError::Snapshot(format!(
                        "the engine snapshot covers the log up to offset {} but the log ends at {}; \
                         the log lost acknowledged records — restore it from a backup, or move \
                         {}/snapshots away to rebuild state from what the log holds",
                        s.next_offset,
                        log.next_offset(),
                        cfg.data_dir.display()
                    )));
                }
                let restored: Result<Vec<Partition>, _> = s
                    .partitions
                    .iter()
                    .map(|b| Partition::restore(parts.engine.clone(), parts.rules.clone(), b))
                    .collect();
                match restored {
                    Ok(ps) => {
                        tracing::info!(offset = s.next_offset, "restored engine snapshot");
                        (s.next_offset, ps)
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "engine snapshot unreadable (older format?); rebuilding state from the log");
                        let n = cfg.partitions.max(1);
                        (
                            0,
                            (0..n)
                                .map(|_| Partition::new(parts.engine.clone(), parts.rules.clone()))
                                .collect(),
                        )
                    }
                }
            }
            None => {
                let n = cfg.partitions.max(1);
                (
                    0,
                    (0..n)
                        .map(|_| Partition::new(parts.engine.clone(), parts.rules.clone()))
                        .collect(),
                )
            }
        };
        let mut partitions = partitions;
        for p in &mut partitions {
            p.set_models(parts.models.clone());
        }
        parts
            .metrics
            .checkpoint_offset
            .store(start_offset, Ordering::Relaxed);
        let ready = Arc::new(Health::new());
        let (stream, _) = broadcast::channel(4096);
        let (sink_tx, sink_rx) = mpsc::sync_channel(256);
        let checkpoint = Arc::new(AtomicU64::new(start_offset));
        let mut threads = Vec::new();
        let n_workers = partitions.len();
        // Unbounded: the stage also sends itself executor results, and decisions are rare
        // next to events (a bounded channel here could deadlock the stage on itself).
        let (respond_tx, respond_rx) = mpsc::channel();
        let visible = Arc::new(visible::Uncommitted::default());
        let durable = Arc::new(durable::Watermark::starting_at(log.next_offset()));
        let sink = sink::Sink::new(sink::SinkParts {
            store: parts.store.clone(),
            metrics: parts.metrics.clone(),
            stream: stream.clone(),
            snapshots,
            partitions: n_workers,
            checkpoint: checkpoint.clone(),
            respond: Some(respond_tx.clone()),
            health: ready.clone(),
            visible: visible.clone(),
        });
        threads.push(spawn("antibody-sink", move || sink.run(sink_rx))?);
        let (encoder, jobs) = mpsc::channel();
        let (sink_for_encoder, health) = (sink_tx.clone(), ready.clone());
        threads.push(spawn("antibody-snapshot", move || {
            worker::run_encoder(jobs, sink_for_encoder, health)
        })?);
        let mut workers = Vec::new();
        let mut budgets = Vec::new();
        for (i, p) in partitions.into_iter().enumerate() {
            // Control messages are few; events are bounded by the budget (see `inflight.rs`).
            let (tx, rx) = mpsc::sync_channel(WORKER_QUEUE);
            let inflight = Arc::new(inflight::Inflight::new(MAX_INFLIGHT_EVENTS));
            budgets.push(inflight.clone());
            let w = worker::Worker::new(
                i,
                p,
                worker::Links {
                    sink: sink_tx.clone(),
                    inflight,
                    encoder: encoder.clone(),
                },
                parts.metrics.clone(),
                ready.clone(),
                worker::Showcase {
                    visible: visible.clone(),
                    stream: stream.clone(),
                    durable: durable.clone(),
                },
            );
            threads.push(spawn(&format!("antibody-part-{i}"), move || w.run(rx))?);
            workers.push(tx);
        }
        drop(sink_tx);
        let watchers = workers.clone();
        let watch: crate::respond::Watch = Box::new(move |tenant, entity, cmd| {
            let p = partition_of(tenant, entity, watchers.len());
            let (tenant, entity) = (tenant.clone(), entity.to_owned());
            let work = match cmd {
                crate::respond::EntityCmd::Sample(on) => Work::Watch { tenant, entity, on },
                crate::respond::EntityCmd::Reconverge(until) => Work::Reconverge {
                    tenant,
                    entity,
                    until,
                },
            };
            let _ = watchers[p].send(work);
        });
        // The engine's checkpoint may predate a probation or a budget cap: those entities are
        // sampled again, from the first event after the replay (replayed ones were judged, and
        // their spend counted, before the crash).
        let sampled: Vec<(TenantId, String)> = parts.responder.sampled_entities();
        // Likewise a heal: healed entities re-converge again, until the same time.
        let reconverging: Vec<(TenantId, String, i64)> = parts
            .responder
            .reconverging()
            .map(|(t, e, until)| (t.clone(), e.to_owned(), until))
            .collect();
        let sealers = workers.clone();
        let seal: crate::respond::Seal = Box::new(move |tenant, entity, incident, now| {
            let p = partition_of(tenant, entity, sealers.len());
            let work = Work::Seal {
                tenant: tenant.clone(),
                entity: entity.to_owned(),
                incident: incident.to_owned(),
                now,
            };
            let _ = sealers[p].send(work);
        });
        let enforcement = Arc::new(antibody_respond::Enforcement::default());
        let stage = crate::respond::RespondStage::new(crate::respond::StageParts {
            responder: parts.responder,
            store: parts.store.clone(),
            metrics: parts.metrics.clone(),
            clock: parts.clock.clone(),
            stream: stream.clone(),
            snapshot_path: cfg.data_dir.join("snapshots").join("responder.snap"),
            executors: parts.executors,
            watch,
            seal,
            own: respond_tx.clone(),
            drift_every: cfg.drift_check_ticks,
            reconverge_ms: parts.engine.baseline.reconverge_ms,
            health: ready.clone(),
            enforcement: enforcement.clone(),
        })
        .map_err(|e| PipelineError::Snapshot(format!("response stage: {e}")))?;
        let respond_thread = spawn("antibody-respond", move || stage.run(respond_rx))?;
        let dispatched = Arc::new(AtomicU64::new(start_offset));
        let checkpoint_written = checkpoint.clone();
        let mut committer = committer::Committer::new(
            log,
            &cfg,
            committer::Partitions {
                queues: workers.clone(),
                budgets,
                durable,
                dispatched: dispatched.clone(),
            },
            parts.metrics.clone(),
            parts.clock.clone(),
            checkpoint,
            ready.clone(),
        );
        // Web-profile changes the checkpoint does not hold, where they were made.
        let controls = web_journal
            .pending(start_offset)
            .into_iter()
            .map(|(offset, tenant, change)| {
                let cmd = crate::webprof::WebCmd::Change(Arc::new(change));
                let works = (0..workers.len())
                    .map(|_| Work::WebProfiles {
                        tenant: tenant.clone(),
                        cmd: cmd.clone(),
                        reply: oneshot::channel().0,
                    })
                    .collect();
                (offset, works)
            })
            .collect();
        committer.recover(start_offset, controls)?;
        for (tenant, entity) in sampled {
            let p = partition_of(&tenant, &entity, workers.len());
            let _ = workers[p].send(Work::Watch {
                tenant,
                entity,
                on: true,
            });
        }
        for (tenant, entity, until) in reconverging {
            let p = partition_of(&tenant, &entity, workers.len());
            let _ = workers[p].send(Work::Reconverge {
                tenant,
                entity,
                until,
            });
        }
        let (ingest_tx, ingest_rx) = mpsc::sync_channel(1024);
        let queued = Arc::new(AtomicU64::new(0));
        let q = queued.clone();
        threads.push(spawn("antibody-committer", move || {
            committer.run(ingest_rx, q)
        })?);
        Ok(Arc::new(Pipeline {
            ingest: ingest_tx,
            workers,
            queued,
            max_queued: cfg.max_queued_events,
            ready,
            stream,
            threads: std::sync::Mutex::new(threads),
            respond: respond_tx,
            respond_thread: std::sync::Mutex::new(Some(respond_thread)),
            visible,
            enforcement,
            dispatched,
            checkpoint: checkpoint_written,
            web_journal,
            web_profiles: parts.engine.web_profiles.clone(),
        }))
    }

    /// Runs `cmd` on the tenant's web profiles in every partition (in order with their
    /// events); a change is journaled before this returns (see `crate::webprof`).
    pub async fn web_profiles(
        &self,
        tenant: &TenantId,
        cmd: crate::webprof::WebCmd,
    ) -> Result<Vec<crate::webprof::WebReply>, WebError> {
        let mut waiting = Vec::with_capacity(self.workers.len());
        for w in &self.workers {
            let (reply, rx) = oneshot::channel();
            let work = Work::WebProfiles {
                tenant: tenant.clone(),
                cmd: cmd.clone(),
                reply,
            };
            let tx = w.clone();
            tokio::task::spawn_blocking(move || tx.send(work))
                .await
                .map_err(|_| WebError::Stopped)?
                .map_err(|_| WebError::Stopped)?;
            waiting.push(rx);
        }
        let mut replies = Vec::with_capacity(waiting.len());
        for rx in waiting {
            replies.push(rx.await.map_err(|_| WebError::Stopped)?);
        }
        if let crate::webprof::WebCmd::Change(change) = cmd {
            // Read after every partition applied it: see the module doc of `webprof`.
            let offset = self.dispatched.load(Ordering::Acquire);
            let checkpoint = self.checkpoint.load(Ordering::Acquire);
            let (journal, tenant) = (self.web_journal.clone(), tenant.clone());
            tokio::task::spawn_blocking(move || {
                journal.record(offset, &tenant, &change, checkpoint)
            })
            .await
            .map_err(|_| WebError::Stopped)??;
        }
        Ok(replies)
    }

    /// Resolves once the response stage has absorbed everything the partitions had queued
    /// when it was called: at start, the replayed log tail, so the enforcement view holds
    /// again what it held before a crash. Enforcement points wait for it before serving.
    pub fn settled(&self) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        let settle = Arc::new(Settle {
            left: std::sync::atomic::AtomicUsize::new(self.workers.len()),
            done: std::sync::Mutex::new(Some(tx)),
        });
        for w in &self.workers {
            if w.send(Work::Settle(settle.clone())).is_err() {
                // A partition is gone: the pipeline is failing and /readyz says so.
                settle.arrive();
            }
        }
        rx
    }

    /// Queues parsed events for the durable log; the receiver resolves after the fsync.
    /// `received` is when the request arrived: latency metrics count from there.
    pub fn submit(
        &self,
        events: Vec<Event>,
        received: Instant,
    ) -> Result<oneshot::Receiver<Result<CommitOutcome, String>>, SubmitError> {
        self.try_submit(events, received).map_err(|(e, _)| e)
    }

    /// [`submit`](Self::submit) that hands the events back when refused, for a sender
    /// that waits and retries rather than answering an error (the syslog listener).
    #[allow(clippy::type_complexity)]
    pub fn try_submit(
        &self,
        events: Vec<Event>,
        received: Instant,
    ) -> Result<oneshot::Receiver<Result<CommitOutcome, String>>, (SubmitError, Vec<Event>)> {
        let n = events.len() as u64;
        let prev = self.queued.fetch_add(n, Ordering::AcqRel);
        if prev + n > self.max_queued && prev > 0 {
            self.queued.fetch_sub(n, Ordering::AcqRel);
            return Err((SubmitError::Overloaded, events));
        }
        let (ack, rx) = oneshot::channel();
        let req = IngestRequest {
            events,
            received,
            ack,
        };
        match self.ingest.try_send(Ingest::Events(req)) {
            Ok(()) => Ok(rx),
            Err(e) => {
                self.queued.fetch_sub(n, Ordering::AcqRel);
                let (why, req) = match e {
                    TrySendError::Full(r) => (SubmitError::Overloaded, r),
                    TrySendError::Disconnected(r) => (SubmitError::Stopped, r),
                };
                // What was sent comes back: always the events just wrapped above.
                let events = match req {
                    Ingest::Events(r) => r.events,
                    Ingest::Stop => Vec::new(),
                };
                Err((why, events))
            }
        }
    }

    /// Hands new rule sets to every partition (in order with their other work).
    pub fn set_rules(&self, rules: RuleBook) {
        for w in &self.workers {
            let _ = w.send(Work::Rules(rules.clone()));
        }
    }

    /// Hands a new set of bound models to every partition (in order with their other work).
    pub fn set_models(&self, models: Arc<ModelSet>) {
        for w in &self.workers {
            let _ = w.send(Work::Models(models.clone()));
        }
    }

    /// Every bound model's counters, summed over the partitions, by tenant and binding id.
    pub async fn model_stats(
        &self,
    ) -> Result<BTreeMap<(TenantId, String), ModelStats>, SubmitError> {
        let mut total: BTreeMap<(TenantId, String), ModelStats> = BTreeMap::new();
        for w in &self.workers {
            let (reply, rx) = oneshot::channel();
            let tx = w.clone();
            tokio::task::spawn_blocking(move || tx.send(Work::ModelStats(reply)))
                .await
                .map_err(|_| SubmitError::Stopped)?
                .map_err(|_| SubmitError::Stopped)?;
            for (id, s) in rx.await.map_err(|_| SubmitError::Stopped)? {
                total.entry(id).or_default().add(&s);
            }
        }
        Ok(total)
    }

    /// Hands a new playbook set to the response engine.
    pub fn set_playbooks(&self, playbooks: Arc<antibody_respond::PlaybookSet>) {
        let _ = self
            .respond
            .send(crate::respond::RespondMsg::Playbooks(playbooks));
    }

    /// Gives a tenant its own playbook set (or takes it away) in the response engine.
    pub fn set_tenant_playbooks(
        &self,
        tenant: TenantId,
        set: Option<Arc<antibody_respond::PlaybookSet>>,
    ) {
        let msg = crate::respond::RespondMsg::TenantPlaybooks(tenant, set);
        let _ = self.respond.send(msg);
    }

    /// Gives a tenant its own response policy (or takes it away) in the response engine.
    pub fn set_tenant_policy(
        &self,
        tenant: TenantId,
        policy: Option<Arc<antibody_respond::TenantPolicy>>,
    ) {
        let msg = crate::respond::RespondMsg::TenantPolicy(tenant, policy);
        let _ = self.respond.send(msg);
    }

    /// True when the ingest queue is at its limit (new requests get 429 unread).
    pub fn is_full(&self) -> bool {
        self.queued.load(Ordering::Relaxed) >= self.max_queued
    }

    pub fn queued_events(&self) -> u64 {
        self.queued.load(Ordering::Relaxed)
    }

    /// Asks the entity's partition for its view (waits behind queued work of that partition).
    pub async fn entity(
        &self,
        tenant: &TenantId,
        entity: &str,
    ) -> Result<Option<EntityView>, SubmitError> {
        let p = partition_of(tenant, entity, self.workers.len());
        let (reply, rx) = oneshot::channel();
        let work = Work::Query {
            tenant: tenant.clone(),
            entity: entity.to_owned(),
            reply,
        };
        let tx = self.workers[p].clone();
        tokio::task::spawn_blocking(move || tx.send(work))
            .await
            .map_err(|_| SubmitError::Stopped)?
            .map_err(|_| SubmitError::Stopped)?;
        rx.await.map_err(|_| SubmitError::Stopped)
    }

    /// One page of the tenant's entities: every partition scans its own (in order with its
    /// other work), the responder's states overlaid (see `crate::entities`).
    pub async fn entities(
        &self,
        tenant: &TenantId,
        listing: crate::entities::Listing,
    ) -> Result<crate::entities::Page, SubmitError> {
        let listing = Arc::new(listing);
        let mut waiting = Vec::with_capacity(self.workers.len());
        for w in &self.workers {
            let (reply, rx) = oneshot::channel();
            let work = Work::Entities {
                tenant: tenant.clone(),
                listing: listing.clone(),
                reply,
            };
            let tx = w.clone();
            tokio::task::spawn_blocking(move || tx.send(work))
                .await
                .map_err(|_| SubmitError::Stopped)?
                .map_err(|_| SubmitError::Stopped)?;
            waiting.push(rx);
        }
        let mut parts = Vec::with_capacity(waiting.len());
        for rx in waiting {
            parts.push(rx.await.map_err(|_| SubmitError::Stopped)?);
        }
        Ok(crate::entities::merge(&listing, parts))
    }

    /// Sends a clock tick to every partition (closes quiet incidents, expires windows).
    pub fn tick(&self, now: i64) {
        for w in &self.workers {
            let _ = w.try_send(Work::Tick(now));
        }
        let _ = self.respond.send(crate::respond::RespondMsg::Tick(now));
    }

    /// A person's command to the response engine; resolves with the actions it changed.
    pub async fn human(
        &self,
        h: crate::respond::Human,
    ) -> Result<Result<crate::respond::Changed, antibody_respond::RespondError>, SubmitError> {
        let (reply, rx) = oneshot::channel();
        self.respond
            .send(crate::respond::RespondMsg::Human(h, reply))
            .map_err(|_| SubmitError::Stopped)?;
        rx.await.map_err(|_| SubmitError::Stopped)
    }

    /// A read of the response engine's live state (an entity's lifecycle).
    pub async fn read(
        &self,
        q: crate::respond::ReadQuery,
    ) -> Result<crate::respond::ReadReply, SubmitError> {
        let (reply, rx) = oneshot::channel();
        self.respond
            .send(crate::respond::RespondMsg::Read(q, reply))
            .map_err(|_| SubmitError::Stopped)?;
        rx.await.map_err(|_| SubmitError::Stopped)
    }

    pub fn is_ready(&self) -> bool {
        self.ready.is_ok()
    }

    /// Why the service is not ready, when a stage or the log failed (rather than recovery
    /// or shutdown).
    pub fn failure(&self) -> Option<String> {
        self.ready
            .why
            .get()
            .cloned()
            .or_else(|| self.ready.outage())
    }

    /// Stops accepting events, drains every queue, writes a final snapshot and joins the threads.
    pub fn shutdown(&self) {
        self.ready.ok.store(false, Ordering::Relaxed);
        self.ready.stopping.store(true, Ordering::Relaxed);
        let threads = match self.threads.lock() {
            Ok(mut t) => std::mem::take(&mut *t),
            Err(_) => Vec::new(),
        };
        if threads.is_empty() {
            return;
        }
        if self.ingest.send(Ingest::Stop).is_err() {
            // The committer is gone: stop the workers ourselves or joining them would hang.
            for w in &self.workers {
                let _ = w.send(Work::Stop);
            }
        }
        for t in threads {
            let _ = t.join();
        }
        let _ = self.respond.send(crate::respond::RespondMsg::Stop);
        let respond = self.respond_thread.lock().ok().and_then(|mut t| t.take());
        if let Some(t) = respond {
            let _ = t.join();
        }
    }
}

fn spawn(
    name: &str,
    f: impl FnOnce() + Send + 'static,
) -> Result<std::thread::JoinHandle<()>, PipelineError> {
    Ok(std::thread::Builder::new().name(name.to_owned()).spawn(f)?)
}
