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
        sink: SyncSender<SinkMsg>,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
        showcase: Showcase,
        inflight: Arc<Inflight>,
    ) -> Self {
        Self {
            index,
            partition,
            sink,
            metrics,
            health,
            visible: showcase.visible,
            stream: showcase.stream,
            durable: showcase.durable,
            inflight,
        }
    }

    fn to_sink(&self, msg: SinkMsg) {
        if self.sink.send(msg).is_err() {
            self.health.fail("the sink thread is gone");
        }
    }

    pub(crate) fn run(mut self, rx: Receiver<Work>) {
        let encoder = self.start_encoder();
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
                Work::Checkpoint { next_offset } => self.checkpoint(next_offset, &encoder),
                Work::Rules(rules) => self.partition.set_rules(rules),
                Work::Models(models) => self.partition.set_models(models),
                Work::ModelStats(reply) => {
                    let _ = reply.send(self.partition.model_stats());
                }
                Work::Watch { tenant, entity, on } => self.partition.watch(&tenant, &entity, on),
                Work::Stop => break,
            }
        }
    }

    /// A thread that encodes this partition's checkpoint images and hands them to the sink:
    /// encoding takes milliseconds per megabyte, and this worker's events should not wait
    /// for it. Without it (the thread could not start) images are encoded here.
    fn start_encoder(&self) -> Option<mpsc::Sender<(u64, SnapshotImage)>> {
        let (tx, rx) = mpsc::channel::<(u64, SnapshotImage)>();
        let (sink, health, index) = (self.sink.clone(), self.health.clone(), self.index);
        let spawned = std::thread::Builder::new()
            .name(format!("antibody-snap-{index}"))
            .spawn(move || {
                for (next_offset, image) in rx {
                    send_part(&sink, &health, index, next_offset, &image);
                }
            });
        match spawned {
            Ok(_) => Some(tx),
            Err(e) => {
                tracing::warn!(partition = index, error = %e, "no snapshot encoder thread; encoding inline");
                None
            }
        }
    }

    fn checkpoint(&self, next_offset: u64, encoder: &Option<mpsc::Sender<(u64, SnapshotImage)>>) {
        let started = Instant::now();
        let image = self.partition.image();
        tracing::debug!(
            partition = self.index,
            took_ms = started.elapsed().as_secs_f64() * 1e3,
            "partition image taken"
        );
        let image = match encoder {
            Some(tx) => match tx.send((next_offset, image)) {
                Ok(()) => return,
                Err(mpsc::SendError((_, image))) => image,
            },
            None => image,
        };
        send_part(&self.sink, &self.health, self.index, next_offset, &image);
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
            self.metrics.count_finding(&f.kind);
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

/// Encodes a checkpoint image and hands it to the sink, which assembles the checkpoint.
fn send_part(
    sink: &SyncSender<SinkMsg>,
    health: &Health,
    partition: usize,
    next_offset: u64,
    image: &SnapshotImage,
) {
    let started = Instant::now();
    let bytes = image.encode().map_err(|e| e.to_string());
    tracing::debug!(
        partition,
        bytes = bytes.as_ref().map_or(0, Vec::len),
        took_ms = started.elapsed().as_secs_f64() * 1e3,
        "partition snapshot encoded"
    );
    let part = SinkMsg::SnapshotPart {
        partition,
        next_offset,
        bytes,
    };
    if sink.send(part).is_err() {
        health.fail("the sink thread is gone");
    }
}
