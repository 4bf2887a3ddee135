//! The sink: writes engine outputs to the store in batches, fans them out to `/v1/stream`,
//! and assembles partition snapshots into checkpoints once their outputs are stored.

use super::snapshot::SnapshotDir;
use crate::metrics::Metrics;
use crate::respond::RespondMsg;
use antibody_core::{Finding, Incident, TenantId};
use antibody_detect::Sample;
use antibody_store::{Store, StoreError};
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
    /// Set once outputs had to be dropped: no checkpoint may claim them after that, so a
    /// restart replays their events and produces them again.
    lost_outputs: bool,
}

/// Checkpoints being assembled at once.
const MAX_PENDING_CHECKPOINTS: usize = 2;

/// Attempts at one store write before the sink gives up on it (~20 s with backoff).
const STORE_RETRIES: usize = 25;

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

    /// Writes one batch. A transient failure (disk, lock) is retried with backoff rather than
    /// dropping outputs the engine cannot produce again; a batch the store refuses as invalid
    /// is written item by item so one bad record cannot hold back the rest.
    fn write(&mut self, findings: &[Finding], incidents: &[Incident]) {
        if findings.is_empty() && incidents.is_empty() {
            return;
        }
        let mut delay = Duration::from_millis(10);
        for _ in 0..STORE_RETRIES {
            match self.store.write_batch(findings, incidents) {
                Ok(()) => return,
                Err(StoreError::Sqlite(e)) => {
                    self.metrics.store_errors.fetch_add(1, Relaxed);
                    tracing::error!(error = %e, retry_in_ms = delay.as_millis() as u64, "store write failed");
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_secs(1));
                }
                Err(e) => {
                    tracing::error!(error = %e, "store refused a batch; writing it item by item");
                    self.write_each(findings, incidents);
                    return;
                }
            }
        }
        // The store has been failing for ~20 s: stop claiming health, and keep every later
        // checkpoint from covering the dropped outputs (a restart regenerates them).
        self.lost_outputs = true;
        self.health
            .fail("the store keeps failing; outputs were dropped");
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
