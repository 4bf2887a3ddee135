//! The sink: writes engine outputs to the store in batches, fans them out to `/v1/stream`,
//! and assembles partition snapshots into checkpoints once their outputs are stored.

use super::snapshot::SnapshotDir;
use crate::metrics::Metrics;
use crate::respond::RespondMsg;
use antibody_core::{Finding, Incident, TenantId};
use antibody_detect::Sample;
use antibody_store::Store;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

pub(crate) struct SinkParts {
    pub store: Arc<Store>,
    pub metrics: Arc<Metrics>,
    pub stream: broadcast::Sender<StreamItem>,
    pub snapshots: SnapshotDir,
    pub partitions: usize,
    pub checkpoint: Arc<AtomicU64>,
    pub respond: Option<std::sync::mpsc::Sender<RespondMsg>>,
    pub health: Arc<super::Health>,
    pub visible: Arc<super::visible::Uncommitted>,
}

pub(crate) enum SinkMsg {
    Outputs {
        /// Already shown by the worker (see `visible.rs`).
        findings: Arc<Vec<Finding>>,
        incidents: Vec<Incident>,
        samples: Vec<Sample>,
    },
    SnapshotPart {
        partition: usize,
        next_offset: u64,
        bytes: Result<Vec<u8>, String>,
    },
    /// A partition's barrier (`Pipeline::settled`): on to the response stage after the
    /// outputs before it.
    Settle(Arc<super::Settle>),
}

/// One item of the live stream, already serialised once for every subscriber.
#[derive(Clone, Debug)]
pub struct StreamItem {
    pub tenant: TenantId,
    pub event: &'static str,
    pub data: Arc<str>,
}

pub(crate) struct Sink {
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    stream: broadcast::Sender<StreamItem>,
    snapshots: SnapshotDir,
    partitions: usize,
    pending: BTreeMap<u64, Vec<Option<Vec<u8>>>>,
    checkpoint: Arc<AtomicU64>,
    respond: Option<std::sync::mpsc::Sender<RespondMsg>>,
    health: Arc<super::Health>,
    visible: Arc<super::visible::Uncommitted>,
    /// Set once outputs had to be dropped (a shutdown while the store was failing): no
    /// checkpoint may claim them after that, so a restart replays their events and produces
    /// them again.
    lost_outputs: bool,
    backoff: Backoff,
}

/// Waits between attempts at a failing store write: doubling from `first` up to `max`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

/// A failing store is retried for as long as it fails (outputs the engine has moved past
/// cannot be produced again without a restart); at most this long between attempts.
const STORE_BACKOFF: Backoff = Backoff {
    first: Duration::from_millis(10),
    max: Duration::from_secs(5),
};

/// Besides the first failure, a failing store is logged once per this many attempts (about
/// a minute apart once the backoff is at its maximum).
const LOG_EVERY_ATTEMPTS: u32 = 12;

/// Checkpoints being assembled at once.
const MAX_PENDING_CHECKPOINTS: usize = 2;

/// Messages drained into one store transaction at most.
const MAX_DRAIN: usize = 512;

/// The messages gathered for one commit.
#[derive(Default)]
struct Drained {
    messages: usize,
    shown: Vec<Arc<Vec<Finding>>>,
    /// One drain can carry many versions of many incidents; only the latest of each is
    /// written. `index` maps an incident id to its slot here.
    incidents: Vec<Incident>,
    index: HashMap<String, usize>,
    samples: Vec<Sample>,
    parts: Vec<(usize, u64, Result<Vec<u8>, String>)>,
    settles: Vec<Arc<super::Settle>>,
}

impl Drained {
    fn add(&mut self, m: SinkMsg) {
        self.messages += 1;
        match m {
            SinkMsg::Outputs {
                findings,
                incidents,
                samples,
            } => {
                if !findings.is_empty() {
                    self.shown.push(findings);
                }
                self.samples.extend(samples);
                for inc in incidents {
                    match self.index.get(&inc.id) {
                        Some(&slot) => self.incidents[slot] = inc,
                        None => {
                            self.index.insert(inc.id.clone(), self.incidents.len());
                            self.incidents.push(inc);
                        }
                    }
                }
            }
            SinkMsg::SnapshotPart {
                partition,
                next_offset,
                bytes,
            } => self.parts.push((partition, next_offset, bytes)),
            SinkMsg::Settle(s) => self.settles.push(s),
        }
    }

    fn clear(&mut self) {
        self.messages = 0;
        self.shown.clear();
        self.incidents.clear();
        self.index.clear();
        self.samples.clear();
        self.parts.clear();
        self.settles.clear();
    }
}

impl Sink {
    pub(crate) fn new(p: SinkParts) -> Self {
        Self {
            store: p.store,
            metrics: p.metrics,
            stream: p.stream,
            snapshots: p.snapshots,
            partitions: p.partitions,
            pending: BTreeMap::new(),
            checkpoint: p.checkpoint,
            respond: p.respond,
            health: p.health,
            visible: p.visible,
            lost_outputs: false,
            backoff: STORE_BACKOFF,
        }
    }

    pub(crate) fn run(mut self, rx: Receiver<SinkMsg>) {
        let mut batch = Drained::default();
        // Group commit: whatever queued up while the last transaction ran goes into the next.
        while let Ok(first) = rx.recv() {
            batch.add(first);
            while batch.messages < MAX_DRAIN {
                match rx.try_recv() {
                    Ok(m) => batch.add(m),
                    Err(_) => break,
                }
            }
            self.commit(&mut batch);
        }
    }

    /// Stores one drained batch, then hands it on: stream, responder, checkpoints.
    fn commit(&mut self, b: &mut Drained) {
        // The workers showed these findings already (API and stream): see `visible.rs`.
        let mut findings: Vec<Finding> = b.shown.iter().flat_map(|f| f.iter().cloned()).collect();
        let started = Instant::now();
        self.write(&findings, &b.incidents);
        if !findings.is_empty() || !b.incidents.is_empty() {
            self.metrics.store_write_latency.observe(started.elapsed());
        }
        self.visible.committed(&b.shown);
        self.publish(&b.incidents);
        self.to_responder(&mut findings, &mut b.incidents, &mut b.samples);
        for s in b.settles.drain(..) {
            match &self.respond {
                Some(tx) => {
                    if let Err(e) = tx.send(RespondMsg::Settle(s)) {
                        if let RespondMsg::Settle(s) = e.0 {
                            s.arrive();
                        }
                    }
                }
                None => s.arrive(),
            }
        }
        for (p, off, bytes) in std::mem::take(&mut b.parts) {
            self.add_snapshot_part(p, off, bytes);
        }
        b.clear();
    }

    /// Writes one batch. A failing store (disk, lock, I/O) is retried with backoff until it
    /// takes the batch, with `/readyz` red meanwhile: the sink's queue fills and holds the
    /// partitions, and ingest answers 429/503 instead of acknowledging events whose outputs
    /// could not be kept. A batch the store refuses as invalid is written item by item so
    /// one bad record cannot hold back the rest.
    fn write(&mut self, findings: &[Finding], incidents: &[Incident]) {
        if findings.is_empty() && incidents.is_empty() {
            return;
        }
        let mut delay = self.backoff.first;
        let started = Instant::now();
        let mut attempts = 0u32;
        loop {
            match self.store.write_batch(findings, incidents) {
                Ok(()) => break,
                Err(e) if !e.is_about_the_record() => {
                    attempts += 1;
                    self.metrics.store_errors.fetch_add(1, Relaxed);
                    self.health
                        .store_down(format!("the store refuses writes ({e}); retrying"));
                    if attempts == 1 || attempts.is_multiple_of(LOG_EVERY_ATTEMPTS) {
                        tracing::error!(
                            error = %e,
                            attempts,
                            failing_for_s = started.elapsed().as_secs(),
                            held_findings = findings.len(),
                            held_incidents = incidents.len(),
                            retry_in_ms = delay.as_millis() as u64,
                            "store write failed: the outputs are held and retried until the store takes them; /readyz fails meanwhile"
                        );
                    }
                    if self.health.is_stopping() {
                        // No checkpoint will claim these outputs: the log replay after the
                        // restart produces them again.
                        tracing::error!(attempts, "shutting down while the store still fails; the next start replays these events");
                        self.lost_outputs = true;
                        return;
                    }
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(self.backoff.max);
                }
                Err(e) => {
                    tracing::error!(error = %e, "store refused a batch; writing it item by item");
                    self.write_each(findings, incidents);
                    break;
                }
            }
        }
        if attempts > 0 {
            self.health.store_up();
            tracing::info!(
                attempts,
                failed_for_s = started.elapsed().as_secs(),
                "the store is writable again: ready"
            );
        }
    }

    fn write_each(&self, findings: &[Finding], incidents: &[Incident]) {
        for f in findings {
            if let Err(e) = self.store.write_batch(std::slice::from_ref(f), &[]) {
                self.metrics.store_errors.fetch_add(1, Relaxed);
                tracing::error!(finding = %f.id, error = %e, "dropping a finding the store refuses");
            }
        }
        for i in incidents {
            if let Err(e) = self.store.write_batch(&[], std::slice::from_ref(i)) {
                self.metrics.store_errors.fetch_add(1, Relaxed);
                tracing::error!(incident = %i.id, error = %e, "dropping an incident the store refuses");
            }
        }
    }

    /// Hands stored incidents (with their findings) and probation samples to the response
    /// stage. Findings of no incident are not needed there.
    fn to_responder(
        &self,
        findings: &mut Vec<Finding>,
        incidents: &mut Vec<Incident>,
        samples: &mut Vec<Sample>,
    ) {
        let Some(tx) = &self.respond else {
            samples.clear();
            return;
        };
        if incidents.is_empty() && samples.is_empty() {
            return;
        }
        let msg = RespondMsg::Outputs {
            findings: std::mem::take(findings),
            incidents: std::mem::take(incidents),
            samples: std::mem::take(samples),
            stored: Instant::now(),
        };
        let _ = tx.send(msg);
    }

    fn publish(&self, incidents: &[Incident]) {
        if self.stream.receiver_count() == 0 {
            return;
        }
        for i in incidents {
            if let Ok(data) = serde_json::to_string(i) {
                let _ = self.stream.send(StreamItem {
                    tenant: i.tenant.clone(),
                    event: "incident",
                    data: data.into(),
                });
            }
        }
    }

    fn add_snapshot_part(
        &mut self,
        partition: usize,
        next_offset: u64,
        bytes: Result<Vec<u8>, String>,
    ) {
        let bytes = match bytes {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(partition, error = %e, "partition snapshot failed; checkpoint skipped");
                self.pending.remove(&next_offset);
                return;
            }
        };
        if self.lost_outputs {
            return;
        }
        // A dead partition would leave checkpoints incomplete forever; keep only the newest few.
        while self.pending.len() >= MAX_PENDING_CHECKPOINTS
            && !self.pending.contains_key(&next_offset)
        {
            self.pending.pop_first();
        }
        let slots = self
            .pending
            .entry(next_offset)
            .or_insert_with(|| vec![None; self.partitions]);
        if let Some(slot) = slots.get_mut(partition) {
            *slot = Some(bytes);
        }
        if !slots.iter().all(Option::is_some) {
            return;
        }
        // The checkpoint claims every output below it is stored: make those commits
        // power-loss safe first, or leave the checkpoint for the next round.
        match self.store.make_durable() {
            Ok(()) => {}
            Err(e) => {
                tracing::error!(error = %e, "store could not be made durable; checkpoint skipped");
                self.pending.remove(&next_offset);
                return;
            }
        }
        let Some(slots) = self.pending.remove(&next_offset) else {
            return;
        };
        let parts: Vec<Vec<u8>> = slots.into_iter().flatten().collect();
        match self.snapshots.write(next_offset, &parts) {
            Ok(()) => {
                self.checkpoint.store(next_offset, Relaxed);
                if let Some(tx) = &self.respond {
                    let _ = tx.send(RespondMsg::Checkpoint);
                }
                self.metrics.checkpoint_offset.store(next_offset, Relaxed);
                // Older incomplete checkpoints can never complete now.
                self.pending.retain(|&off, _| off > next_offset);
            }
            Err(e) => tracing::error!(error = %e, "writing the engine snapshot failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use antibody_core::IncidentStatus;

    fn incident(id: &str, finding_count: u64) -> Incident {
        Incident {
            id: id.into(),
            tenant: TenantId::new("t"),
            entity: "e".into(),
            status: IncidentStatus::Open,
            opened: 1_000,
            updated: 1_000 + finding_count as i64,
            risk: 1.0,
            severity: antibody_core::Severity::Low,
            kinds: vec!["token_spike".into()],
            finding_count,
            max_score: 0.5,
            diagnosis: Vec::new(),
            findings: Vec::new(),
            actions: Vec::new(),
            timeline: Vec::new(),
            workflow: Default::default(),
        }
    }

    fn outputs(incidents: Vec<Incident>) -> SinkMsg {
        SinkMsg::Outputs {
            findings: Arc::new(Vec::new()),
            incidents,
            samples: Vec::new(),
        }
    }

    fn sink(dir: &std::path::Path) -> Sink {
        let (stream, _) = broadcast::channel(16);
        let mut sink = Sink::new(SinkParts {
            store: Arc::new(Store::open(&dir.join("antibody.db")).unwrap()),
            metrics: Arc::default(),
            stream,
            snapshots: SnapshotDir::new(dir.join("snapshots")).unwrap(),
            partitions: 1,
            checkpoint: Arc::default(),
            respond: None,
            health: Arc::new(super::super::Health::new()),
            visible: Arc::default(),
        });
        sink.backoff = Backoff {
            first: Duration::from_millis(1),
            max: Duration::from_millis(2),
        };
        sink
    }

    /// Fails every incident write of the database at `db` until the trigger is dropped: a
    /// runtime error of SQLite's (SQLITE_ERROR, as I/O or a damaged database give), not a
    /// constraint on the record, set up from another connection.
    fn break_incident_writes(db: &std::path::Path) -> rusqlite::Connection {
        let c = rusqlite::Connection::open(db).unwrap();
        // The sink's attempts hold the write lock for moments; wait for them.
        c.busy_timeout(Duration::from_secs(5)).unwrap();
        c.execute_batch(
            "CREATE TRIGGER broken BEFORE INSERT ON incidents BEGIN SELECT abs(-9223372036854775807 - 1); END;",
        )
        .unwrap();
        c
    }

    #[test]
    fn a_failing_store_is_retried_until_it_takes_the_outputs() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = sink(dir.path());
        let (store, health, metrics) = (
            sink.store.clone(),
            sink.health.clone(),
            sink.metrics.clone(),
        );
        let breaker = break_incident_writes(&dir.path().join("antibody.db"));
        // Far more attempts than the 25 after which the sink used to drop the outputs.
        let fixer = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(20);
            while metrics.store_errors.load(Relaxed) < 100 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            assert!(
                metrics.store_errors.load(Relaxed) >= 100,
                "the write did not fail"
            );
            let red = !health.is_ok();
            let why = health.outage();
            breaker.execute_batch("DROP TRIGGER broken").unwrap();
            (red, why)
        });
        sink.write(&[], &[incident("i-1", 1)]);
        let (red, why) = fixer.join().unwrap();
        assert!(red, "/readyz must fail while the store does");
        assert!(why.is_some_and(|w| w.contains("integer overflow")));
        let t = TenantId::new("t");
        assert!(
            store.get_incident(&t, "i-1").unwrap().is_some(),
            "the held incident was written"
        );
        assert!(
            sink.health.is_ok(),
            "ready again once the store takes writes"
        );
        assert!(!sink.lost_outputs);
    }

    #[test]
    fn a_shutdown_while_the_store_fails_leaves_the_outputs_to_the_replay() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = sink(dir.path());
        let _breaker = break_incident_writes(&dir.path().join("antibody.db"));
        sink.health.stopping.store(true, Relaxed);
        sink.write(&[], &[incident("i-1", 1)]);
        assert!(
            sink.lost_outputs,
            "no later checkpoint may claim the unwritten outputs"
        );
    }

    #[test]
    fn a_gathered_batch_writes_only_the_latest_version_of_each_incident() {
        let mut d = Drained::default();
        d.add(outputs(vec![incident("i-1", 1), incident("i-2", 1)]));
        d.add(outputs(vec![incident("i-1", 2)]));
        d.add(SinkMsg::SnapshotPart {
            partition: 0,
            next_offset: 7,
            bytes: Ok(vec![1]),
        });
        d.add(outputs(vec![incident("i-1", 3)]));
        assert_eq!(d.messages, 4);
        let counts: Vec<_> = d
            .incidents
            .iter()
            .map(|i| (i.id.as_str(), i.finding_count))
            .collect();
        // First-seen order, latest version.
        assert_eq!(counts, [("i-1", 3), ("i-2", 1)]);
        assert_eq!(d.parts.len(), 1);
        // Empty finding batches are not tracked as shown.
        assert!(d.shown.is_empty());
        d.clear();
        d.add(outputs(vec![incident("i-2", 5)]));
        assert_eq!(d.messages, 1);
        assert_eq!(d.incidents.len(), 1);
        assert_eq!(d.incidents[0].finding_count, 5);
    }
}
