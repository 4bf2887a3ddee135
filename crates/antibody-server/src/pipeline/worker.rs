//! A partition worker: owns one engine partition and feeds its outputs to the sink.

use super::durable::Watermark;
use super::inflight::Inflight;
use super::sink::{SinkMsg, StreamItem};
use super::visible::Uncommitted;
use super::{Health, Work};
use crate::metrics::Metrics;
use antibody_core::Finding;
use antibody_detect::{Outputs, Partition, SnapshotImage};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::broadcast;

pub(crate) struct Worker {
    index: usize,
    partition: Partition,
    sink: SyncSender<SinkMsg>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    visible: Arc<Uncommitted>,
    stream: broadcast::Sender<StreamItem>,
    durable: Arc<Watermark>,
    inflight: Arc<Inflight>,
    encoder: mpsc::Sender<EncodeJob>,
}

/// What a worker is connected to besides its own queue.
pub(crate) struct Links {
    pub sink: SyncSender<SinkMsg>,
    /// This worker's event budget, shared with the committer.
    pub inflight: Arc<Inflight>,
    pub encoder: mpsc::Sender<EncodeJob>,
}

/// However the worker ends (stop or panic), the committer must not wait on its budget.
impl Drop for Worker {
    fn drop(&mut self) {
        self.inflight.close();
    }
}

/// Where a worker shows its findings before the sink stores them.
pub(crate) struct Showcase {
    pub visible: Arc<Uncommitted>,
    pub stream: broadcast::Sender<StreamItem>,
    /// Outputs of an event wait until it is durable (see `durable.rs`).
    pub durable: Arc<Watermark>,
}

impl Worker {
    pub(crate) fn new(
        index: usize,
        partition: Partition,
        links: Links,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
        showcase: Showcase,
    ) -> Self {
        Self {
            index,
            partition,
            sink: links.sink,
            metrics,
            health,
            visible: showcase.visible,
            stream: showcase.stream,
            durable: showcase.durable,
            inflight: links.inflight,
            encoder: links.encoder,
        }
    }

    fn to_sink(&self, msg: SinkMsg) {
        if self.sink.send(msg).is_err() {
            self.health.fail("the sink thread is gone");
        }
    }

    pub(crate) fn run(mut self, rx: Receiver<Work>) {
        let mut out = Outputs::default();
        while let Ok(work) = rx.recv() {
            match work {
                Work::Events { batch, received } => {
                    let started = Instant::now();
                    self.partition.on_events(&batch, &mut out);
                    self.inflight.release(batch.len());
                    self.partition.flush_incidents(&mut out);
                    self.metrics.detect_latency.observe(started.elapsed());
                    self.metrics
                        .events_processed
                        .fetch_add(batch.len() as u64, Relaxed);
                    let end = batch.last().map_or(0, |(off, _)| off + 1);
                    if !self.durable.wait_for(end) {
                        // Never acknowledged and never durable: derive nothing from them.
                        out.clear();
                        continue;
                    }
                    self.flush(&mut out, Some(received));
                }
                Work::Tick(now) => {
                    self.partition.on_tick(now, &mut out);
                    self.flush(&mut out, None);
                }
                Work::Query {
                    tenant,
                    entity,
                    reply,
                } => {
                    let _ = reply.send(self.partition.entity_view(&tenant, &entity));
                }
                Work::Checkpoint { next_offset } => self.checkpoint(next_offset),
                Work::Rules(rules) => self.partition.set_rules(rules),
                Work::Models(models) => self.partition.set_models(models),
                Work::ModelStats(reply) => {
                    let _ = reply.send(self.partition.model_stats());
                }
                Work::Watch { tenant, entity, on } => self.partition.watch(&tenant, &entity, on),
                Work::Reconverge {
                    tenant,
                    entity,
                    until,
                } => self.partition.reconverge(&tenant, &entity, until),
                Work::Seal {
                    tenant,
                    entity,
                    incident,
                    now,
                } => {
                    self.partition
                        .seal(&tenant, &entity, &incident, now, &mut out);
                    self.flush(&mut out, None);
                }
                Work::WebProfiles { tenant, cmd, reply } => {
                    let _ = reply.send(crate::webprof::apply(&mut self.partition, &tenant, &cmd));
                }
                Work::Entities {
                    tenant,
                    listing,
                    reply,
                } => {
                    let page = crate::entities::scan(self.partition.entities(&tenant), &listing);
                    let _ = reply.send(page);
                }
                Work::Settle(barrier) => self.to_sink(SinkMsg::Settle(barrier)),
                Work::Stop => break,
            }
        }
    }

    fn checkpoint(&self, next_offset: u64) {
        let started = Instant::now();
        let image = self.partition.image();
        tracing::debug!(
            partition = self.index,
            took_ms = started.elapsed().as_secs_f64() * 1e3,
            "partition image taken"
        );
        let job = EncodeJob {
            partition: self.index,
            next_offset,
            image,
        };
        if let Err(mpsc::SendError(job)) = self.encoder.send(job) {
            send_part(&self.sink, &self.health, &job);
        }
    }

    fn flush(&self, out: &mut Outputs, received: Option<Instant>) {
        if out.is_empty() {
            return;
        }
        let findings = Arc::new(std::mem::take(&mut out.findings));
        if !findings.is_empty() {
            self.show(&findings, received);
        }
        let incidents = std::mem::take(&mut out.incidents);
        let samples = std::mem::take(&mut out.samples);
        self.to_sink(SinkMsg::Outputs {
            findings,
            incidents,
            samples,
        });
    }

    /// Makes findings visible (API and stream) now; the sink stores them after (see
    /// `visible.rs` for why that is safe).
    fn show(&self, findings: &Arc<Vec<Finding>>, received: Option<Instant>) {
        self.visible.show(findings.clone());
        if let Some(at) = received {
            self.metrics.finding_visible_latency.observe(at.elapsed());
        }
        for f in findings.iter() {
            self.metrics.count_finding(&f.tenant, &f.kind);
        }
        if self.stream.receiver_count() == 0 {
            return;
        }
        for f in findings.iter() {
            if let Ok(data) = serde_json::to_string(f) {
                let _ = self.stream.send(StreamItem {
                    tenant: f.tenant.clone(),
                    event: "finding",
                    data: data.into(),
                });
            }
        }
    }
}

/// A partition's checkpoint image on its way to the encoder.
pub(crate) struct EncodeJob {
    partition: usize,
    next_offset: u64,
    image: SnapshotImage,
}

/// The encoder thread: encodes every partition's checkpoint images, one at a time, and hands
/// them to the sink. Encoding takes tens of milliseconds of CPU per checkpoint; one thread
/// for all partitions leaves the other cores to ingest and detection (two partitions
/// encoding at once on a 2-core machine stalled both for that long).
pub(crate) fn run_encoder(
    jobs: Receiver<EncodeJob>,
    sink: SyncSender<SinkMsg>,
    health: Arc<Health>,
) {
    for job in jobs {
        send_part(&sink, &health, &job);
    }
}

/// Encodes a checkpoint image and hands it to the sink, which assembles the checkpoint.
fn send_part(sink: &SyncSender<SinkMsg>, health: &Health, job: &EncodeJob) {
    let started = Instant::now();
    let bytes = job.image.encode().map_err(|e| e.to_string());
    tracing::debug!(
        partition = job.partition,
        bytes = bytes.as_ref().map_or(0, Vec::len),
        took_ms = started.elapsed().as_secs_f64() * 1e3,
        "partition snapshot encoded"
    );
    let part = SinkMsg::SnapshotPart {
        partition: job.partition,
        next_offset: job.next_offset,
        bytes,
    };
    if sink.send(part).is_err() {
        health.fail("the sink thread is gone");
    }
}
