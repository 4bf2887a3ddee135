//! A partition worker: owns one engine partition and feeds its outputs to the sink.

use super::sink::SinkMsg;
use super::{Health, Work};
use crate::metrics::Metrics;
use antibody_detect::{Outputs, Partition};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::Arc;
use std::time::Instant;

pub(crate) struct Worker {
    index: usize,
    partition: Partition,
    sink: SyncSender<SinkMsg>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
}

impl Worker {
    pub(crate) fn new(
        index: usize,
        partition: Partition,
        sink: SyncSender<SinkMsg>,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
    ) -> Self {
        Self {
            index,
            partition,
            sink,
            metrics,
            health,
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
                    for (offset, ev) in &batch {
                        self.partition.on_event(*offset, ev, &mut out);
                    }
                    self.partition.flush_incidents(&mut out);
                    self.metrics.detect_latency.observe(started.elapsed());
                    self.metrics
                        .events_processed
                        .fetch_add(batch.len() as u64, Relaxed);
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
                Work::Checkpoint { next_offset } => {
                    let bytes = self.partition.snapshot().map_err(|e| e.to_string());
                    self.to_sink(SinkMsg::SnapshotPart {
                        partition: self.index,
                        next_offset,
                        bytes,
                    });
                }
                Work::Rules(rules) => self.partition.set_rules(rules),
                Work::Watch { tenant, entity, on } => self.partition.watch(&tenant, &entity, on),
                Work::Stop => break,
            }
        }
    }

    fn flush(&self, out: &mut Outputs, received: Option<Instant>) {
        if out.is_empty() {
            return;
        }
        let findings = std::mem::take(&mut out.findings);
        let incidents = std::mem::take(&mut out.incidents);
        let samples = std::mem::take(&mut out.samples);
        self.to_sink(SinkMsg::Outputs {
            findings,
            incidents,
            samples,
            received,
        });
    }
}
