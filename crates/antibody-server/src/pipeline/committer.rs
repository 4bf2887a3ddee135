//! The committer owns the durable log: it deduplicates idempotency ids, appends every queued
//! request in one batch, fsyncs once, acknowledges, and routes the events to the partitions.
//!
//! When a write or fsync fails (disk full, descriptors exhausted, a failing device) the log
//! discards the whole group, so a refused request leaves none of its events behind and a
//! retry duplicates nothing; the committer answers 503 and tries to bring the log back
//! (backing off up to `MAX_RETRY`) until the cause is gone, then `/readyz` is green again.

use super::durable::Watermark;
use super::inflight::Inflight;
use super::{CommitOutcome, Health, Ingest, IngestRequest, PipelineConfig, PipelineError, Work};
use crate::metrics::Metrics;
use antibody_core::{Clock, Event, TenantId};
use antibody_detect::partition_of;
use antibody_log::SegmentLog;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::atomic::{
    AtomicU64,
    Ordering::{Relaxed, Release},
};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Requests drained into one group commit at most (bounds commit latency under load).
const MAX_GROUP_EVENTS: usize = 64 * 1024;
const RETENTION_EVERY: Duration = Duration::from_secs(10);
/// Replay reads the log in batches of this many events.
const REPLAY_BATCH: usize = 4096;
/// First and longest pause between two attempts to bring a failed log back.
const FIRST_RETRY: Duration = Duration::from_millis(250);
const MAX_RETRY: Duration = Duration::from_secs(5);

/// Remembers idempotency ids for a window, bounded in count (oldest forgotten first).
/// Ids are kept as 128-bit keyed hashes of `(tenant, id)`: ~55 bytes each instead of two
/// heap strings. The keys are random per process (the set is rebuilt from the log at start),
/// so senders cannot aim for collisions.
struct Dedupe {
    seen: HashMap<u128, i64>,
    order: VecDeque<(i64, u128)>,
    hashers: (
        foldhash::quality::RandomState,
        foldhash::quality::RandomState,
    ),
    window_ms: i64,
    max: usize,
}

impl Dedupe {
    fn new(window_ms: i64, max: usize) -> Self {
        Self {
            seen: HashMap::new(),
            order: VecDeque::new(),
            hashers: Default::default(),
            window_ms,
            max,
        }
    }

    fn key(&self, tenant: &TenantId, id: &str) -> u128 {
        let a = self.hashers.0.hash_one((tenant.as_str(), id));
        let b = self.hashers.1.hash_one((tenant.as_str(), id));
        (u128::from(a) << 64) | u128::from(b)
    }

    /// Records `(tenant, id)` at `ts`; false when it was already seen within the window.
    fn insert(&mut self, tenant: &TenantId, id: &str, ts: i64) -> bool {
        let key = self.key(tenant, id);
        if let Some(&at) = self.seen.get(&key) {
            if ts - at <= self.window_ms {
                return false;
            }
        }
        self.seen.insert(key, ts);
        self.order.push_back((ts, key));
        self.evict(ts);
        true
    }

    fn forget(&mut self, tenant: &TenantId, id: &str) {
        let key = self.key(tenant, id);
        self.seen.remove(&key);
    }

    fn evict(&mut self, now: i64) {
        while let Some(&(at, key)) = self.order.front() {
            if self.order.len() <= self.max && now - at <= self.window_ms {
                break;
            }
            self.order.pop_front();
            if self.seen.get(&key) == Some(&at) {
                self.seen.remove(&key);
            }
        }
    }
}

/// The partition workers as the committer feeds them: a queue and an event budget each, and
/// the durable watermark they publish behind.
pub(crate) struct Partitions {
    pub queues: Vec<SyncSender<Work>>,
    pub budgets: Vec<Arc<Inflight>>,
    pub durable: Arc<Watermark>,
    /// Published [`Committer::dispatched`], for web-profile changes (`crate::webprof`).
    pub dispatched: Arc<AtomicU64>,
}

pub(crate) struct Committer {
    log: SegmentLog,
    workers: Vec<SyncSender<Work>>,
    budgets: Vec<Arc<Inflight>>,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
    dedupe: Dedupe,
    checkpoint: Arc<AtomicU64>,
    checkpoint_interval: Duration,
    checkpoint_every: u64,
    last_checkpoint: (Instant, u64),
    last_retention: Instant,
    encoded: Vec<u8>,
    bounds: Vec<(usize, usize)>,
    health: Arc<Health>,
    /// One past the last offset handed to the partitions. Checkpoints use this, never the
    /// log's own end: records a failed write left behind were never processed.
    dispatched: u64,
    /// Advanced after each fsync; workers publish outputs only below it.
    durable: Arc<Watermark>,
    /// While the log is failed: when to try it again, and the pause after that.
    retry: (Instant, Duration),
    published: Arc<AtomicU64>,
}

impl Committer {
    pub(crate) fn new(
        log: SegmentLog,
        cfg: &PipelineConfig,
        partitions: Partitions,
        metrics: Arc<Metrics>,
        clock: Arc<dyn Clock>,
        checkpoint: Arc<AtomicU64>,
        health: Arc<Health>,
    ) -> Self {
        let start = checkpoint.load(Relaxed);
        Self {
            log,
            workers: partitions.queues,
            budgets: partitions.budgets,
            metrics,
            clock,
            dedupe: Dedupe::new(cfg.dedupe_window_ms, cfg.max_dedupe_ids),
            checkpoint,
            checkpoint_interval: cfg.checkpoint_interval,
            checkpoint_every: cfg.checkpoint_every_events,
            last_checkpoint: (Instant::now(), start),
            last_retention: Instant::now(),
            encoded: Vec::with_capacity(1 << 20),
            bounds: Vec::new(),
            health,
            dispatched: start,
            durable: partitions.durable,
            retry: (Instant::now(), FIRST_RETRY),
            published: partitions.dispatched,
        }
    }

    /// Rebuilds the idempotency set from the retained log and replays every event from
    /// `start` through the partitions, so the engine is where it was before the stop.
    /// Replays the log from `start` through the partitions. `controls` are messages for
    /// every partition (one per worker, in worker order) to send once the events before
    /// their offset are dispatched, in offset order: changes made while those events were
    /// live (see `crate::webprof`) land where they did.
    pub(crate) fn recover(
        &mut self,
        start: u64,
        controls: Vec<(u64, Vec<Work>)>,
    ) -> Result<(), PipelineError> {
        let mut controls: VecDeque<(u64, Vec<Work>)> = controls.into();
        let first = self.log.first_offset();
        if start < first {
            tracing::warn!(start, first, "the log no longer holds every event after the snapshot; replaying what is retained");
        }
        let now = self.clock.now_ms();
        let mut batch = Vec::with_capacity(REPLAY_BATCH);
        let mut replayed = 0u64;
        for rec in self.log.read_from(first)? {
            let (offset, ts, payload) = rec?;
            // An empty record fills an offset whose event was lost to a failed fsync.
            if payload.is_empty() {
                continue;
            }
            // Before the snapshot only ids inside the dedupe window matter: skip decoding the
            // rest (the frame's own timestamp says), which is most of a large retained log.
            if offset < start && now - ts > self.dedupe.window_ms {
                continue;
            }
            let ev = match Event::decode(&payload) {
                Ok(ev) => ev,
                Err(e) => {
                    tracing::error!(offset, error = %e, "skipping undecodable log record");
                    continue;
                }
            };
            if let Some(id) = &ev.id {
                if now - ts <= self.dedupe.window_ms {
                    self.dedupe.insert(&ev.tenant, id, ts);
                }
            }
            if offset >= start {
                if controls.front().is_some_and(|(at, _)| *at <= offset) {
                    self.dispatch(std::mem::take(&mut batch), Instant::now());
                    while controls.front().is_some_and(|(at, _)| *at <= offset) {
                        if let Some((_, works)) = controls.pop_front() {
                            self.send_all(works);
                        }
                    }
                }
                batch.push((offset, ev));
                replayed += 1;
                if batch.len() >= REPLAY_BATCH {
                    self.dispatch(std::mem::take(&mut batch), Instant::now());
                }
            }
        }
        self.dispatch(batch, Instant::now());
        for (_, works) in controls {
            self.send_all(works);
        }
        self.publish_log_metrics();
        if replayed > 0 {
            tracing::info!(
                replayed,
                from = start,
                "replayed the log tail through the engine"
            );
        }
        Ok(())
    }

    pub(crate) fn run(mut self, rx: Receiver<Ingest>, queued: Arc<AtomicU64>) {
        let mut group: Vec<IngestRequest> = Vec::new();
        loop {
            let first = match rx.recv_timeout(Duration::from_millis(500)) {
                Ok(Ingest::Events(r)) => r,
                Ok(Ingest::Stop) | Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    self.housekeeping();
                    continue;
                }
            };
            let mut n = first.events.len();
            group.push(first);
            let mut stop = false;
            while n < MAX_GROUP_EVENTS {
                match rx.try_recv() {
                    Ok(Ingest::Events(r)) => {
                        n += r.events.len();
                        group.push(r);
                    }
                    Ok(Ingest::Stop) => {
                        stop = true;
                        break;
                    }
                    Err(_) => break,
                }
            }
            queued.fetch_sub(n as u64, Relaxed);
            self.metrics
                .queue_depth_events
                .store(queued.load(Relaxed), Relaxed);
            self.commit(&mut group);
            self.housekeeping();
            if stop {
                break;
            }
        }
        self.request_checkpoint();
        for w in &self.workers {
            let _ = w.send(Work::Stop);
        }
    }

    fn commit(&mut self, group: &mut Vec<IngestRequest>) {
        if self.log.is_poisoned() {
            self.bring_back_log();
            if self.log.is_poisoned() {
                return self.refuse(group, Vec::new());
            }
        }
        let now = self.clock.now_ms();
        self.encoded.clear();
        self.bounds.clear();
        let mut outcomes = Vec::with_capacity(group.len());
        let mut dup_ids: Vec<(TenantId, String)> = Vec::new();
        for req in group.iter_mut() {
            let mut outcome = CommitOutcome::default();
            req.events.retain(|ev| {
                if let Some(id) = &ev.id {
                    if !self.dedupe.insert(&ev.tenant, id, now) {
                        outcome.duplicates += 1;
                        return false;
                    }
                    dup_ids.push((ev.tenant.clone(), id.clone()));
                }
                true
            });
            for ev in &req.events {
                let start = self.encoded.len();
                ev.encode(&mut self.encoded);
                self.bounds.push((start, self.encoded.len()));
            }
            // A repeated id is accepted once: the contract counts it as a duplicate only.
            outcome.accepted = req.events.len();
            outcomes.push(outcome);
        }
        let started = Instant::now();
        let appended = {
            let records: Vec<&[u8]> = self
                .bounds
                .iter()
                .map(|&(a, b)| &self.encoded[a..b])
                .collect();
            self.log.append(now, &records)
        };
        let range = match appended {
            Ok(r) => r,
            Err(e) => return self.log_failed(group, dup_ids, &e),
        };
        // The engine runs on the batch while the log syncs; workers publish what they derive
        // only once the watermark passes it (see `durable.rs`).
        let mut offset = range.start;
        let mut batch = Vec::with_capacity(range.end.saturating_sub(range.start) as usize);
        let mut oldest = Instant::now();
        for req in group.iter_mut() {
            oldest = oldest.min(req.received);
            for ev in req.events.drain(..) {
                batch.push((offset, ev));
                offset += 1;
            }
        }
        self.dispatch(batch, oldest);
        let synced = self.log.sync();
        self.metrics.log_sync_latency.observe(started.elapsed());
        if let Err(e) = synced {
            self.durable.lose(range);
            return self.log_failed(group, dup_ids, &e);
        }
        self.durable.advance(range.end);
        let mut accepted = 0u64;
        let mut dups = 0u64;
        for (req, outcome) in group.drain(..).zip(outcomes) {
            accepted += outcome.accepted as u64;
            dups += outcome.duplicates as u64;
            self.metrics
                .ingest_durable_latency
                .observe(req.received.elapsed());
            let _ = req.ack.send(Ok(outcome));
        }
        self.metrics.events_accepted.fetch_add(accepted, Relaxed);
        self.metrics.events_duplicate.fetch_add(dups, Relaxed);
        self.publish_log_metrics();
    }

    /// The log could not take the group (and discarded all of it): say so on `/readyz`,
    /// refuse every request in it, and retry the log soon.
    fn log_failed(
        &mut self,
        group: &mut Vec<IngestRequest>,
        dup_ids: Vec<(TenantId, String)>,
        e: &antibody_log::LogError,
    ) {
        self.health.log_down(format!(
            "the durable log cannot be written ({e}); ingest resumes by itself once the \
             cause is gone (free disk space or file descriptors)"
        ));
        self.retry = (Instant::now() + FIRST_RETRY, FIRST_RETRY);
        self.refuse(group, dup_ids);
    }

    /// Answers 503 to every request of the group; none of its events was stored, so their
    /// ids may come again.
    fn refuse(&mut self, group: &mut Vec<IngestRequest>, dup_ids: Vec<(TenantId, String)>) {
        for (t, id) in dup_ids {
            self.dedupe.forget(&t, &id);
        }
        for req in group.drain(..) {
            let _ = req.ack.send(Err(
                "the durable log cannot be written right now and stored none of this \
                 request's events; retry later (GET /readyz says why)"
                    .to_owned(),
            ));
        }
    }

    /// Tries to make the failed log usable again, at most once per back-off pause. Offsets
    /// the engine already saw (events whose fsync failed after they were dispatched) are
    /// filled with empty records, so offsets stay those the engine and its ids count on.
    fn bring_back_log(&mut self) {
        let (at, pause) = self.retry;
        if Instant::now() < at {
            return;
        }
        let restored = self.log.recover().and_then(|()| {
            let gap = self.dispatched.saturating_sub(self.log.next_offset());
            if gap > 0 {
                let voids: Vec<&[u8]> = vec![&[]; gap as usize];
                self.log.append(self.clock.now_ms(), &voids)?;
                self.log.sync()?;
            }
            Ok(())
        });
        match restored {
            Ok(()) => {
                self.durable.advance(self.log.next_offset());
                self.health.log_up();
                self.publish_log_metrics();
            }
            Err(e) => {
                tracing::debug!(error = %e, "the durable log is still failing");
                let next = (pause * 2).min(MAX_RETRY);
                self.retry = (Instant::now() + pause, next);
            }
        }
    }

    /// Splits a batch by partition and hands each part to its worker (blocking once a worker
    /// holds its budget of events: a slow engine backs up into the ingest queue, which turns
    /// into 429s, never into unbounded memory).
    fn dispatch(&mut self, batch: Vec<(u64, Event)>, received: Instant) {
        if batch.is_empty() {
            return;
        }
        if let Some((last, _)) = batch.last() {
            self.dispatched = self.dispatched.max(last + 1);
            self.published.store(self.dispatched, Release);
        }
        let n = self.workers.len();
        let mut parts: Vec<Vec<(u64, Event)>> = (0..n)
            .map(|_| Vec::with_capacity(batch.len() / n + 1))
            .collect();
        for (off, ev) in batch {
            parts[partition_of(&ev.tenant, &ev.entity, n)].push((off, ev));
        }
        for ((w, budget), part) in self.workers.iter().zip(&self.budgets).zip(parts) {
            if part.is_empty() {
                continue;
            }
            budget.acquire(part.len());
            if w.send(Work::Events {
                batch: part,
                received,
            })
            .is_err()
            {
                self.health.fail("a partition worker is gone");
            }
        }
    }

    fn housekeeping(&mut self) {
        if self.log.is_poisoned() {
            self.bring_back_log();
        }
        let (at, off) = self.last_checkpoint;
        let next = self.dispatched;
        if next > off
            && (at.elapsed() >= self.checkpoint_interval || next - off >= self.checkpoint_every)
        {
            self.request_checkpoint();
        }
        if self.last_retention.elapsed() >= RETENTION_EVERY && !self.log.is_poisoned() {
            self.last_retention = Instant::now();
            let keep_from = self.checkpoint.load(Relaxed);
            match self.log.enforce_retention(self.clock.now_ms(), keep_from) {
                Ok(_) => self.publish_log_metrics(),
                Err(e) => tracing::warn!(error = %e, "log retention failed"),
            }
        }
    }

    fn request_checkpoint(&mut self) {
        if !self.health.is_ok() {
            return;
        }
        let next = self.dispatched;
        for w in &self.workers {
            let _ = w.send(Work::Checkpoint { next_offset: next });
        }
        self.last_checkpoint = (Instant::now(), next);
    }

    /// One message to each worker.
    fn send_all(&self, works: Vec<Work>) {
        for (w, work) in self.workers.iter().zip(works) {
            if w.send(work).is_err() {
                self.health.fail("a partition worker is gone");
            }
        }
    }

    fn publish_log_metrics(&self) {
        self.metrics
            .log_bytes
            .store(self.log.total_bytes(), Relaxed);
        self.metrics
            .log_next_offset
            .store(self.log.next_offset(), Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedupe_remembers_within_window_and_is_bounded() {
        let t = TenantId::new("a");
        let mut d = Dedupe::new(1000, 2);
        assert!(d.insert(&t, "x", 0));
        assert!(!d.insert(&t, "x", 500));
        assert!(
            d.insert(&TenantId::new("b"), "x", 500),
            "ids are per tenant"
        );
        assert!(d.insert(&t, "y", 600));
        // Bounded at two ids: the oldest ("x" of tenant a) is forgotten.
        assert!(d.insert(&t, "x", 700));
        assert!(d.insert(&t, "z", 2000));
        assert!(d.insert(&t, "y", 2001), "outside the window");
    }
}
