//! Delivers `llm` events to the durable pipeline off the request path. Calls hand their
//! event to a bounded queue; one task drains it in batches (one pipeline submission per
//! batch, so the gateway adds few commits at high request rates) and retries a batch the
//! pipeline refused for back-pressure with backoff. The queue is bounded: when it is full
//! the event is counted as dropped and a warning logged, never blocking a call.

use crate::backend::{Backend, SubmitRefusal};
use antibody_core::Event;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

const QUEUE: usize = 65_536;
const BATCH: usize = 1_024;

#[derive(Default)]
pub struct EmitStats {
    pub queued: AtomicU64,
    pub durable: AtomicU64,
    pub dropped: AtomicU64,
}

#[derive(Clone)]
pub struct Emitter {
    tx: mpsc::Sender<Event>,
    pub stats: Arc<EmitStats>,
}

impl Emitter {
    /// Starts the draining task on the current runtime.
    pub fn spawn(backend: Arc<dyn Backend>) -> Emitter {
        let (tx, rx) = mpsc::channel(QUEUE);
        let stats = Arc::new(EmitStats::default());
        tokio::spawn(drain(rx, backend, stats.clone()));
        Emitter { tx, stats }
    }

    pub fn emit(&self, event: Event) {
        match self.tx.try_send(event) {
            Ok(()) => {
                self.stats.queued.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                let n = self.stats.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if n.is_power_of_two() {
                    tracing::warn!(
                        dropped = n,
                        "gateway events dropped: the pipeline is not keeping up"
                    );
                }
            }
        }
    }
}

async fn drain(mut rx: mpsc::Receiver<Event>, backend: Arc<dyn Backend>, stats: Arc<EmitStats>) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let events = std::mem::take(&mut batch);
        let n = events.len() as u64;
        let mut delay = Duration::from_millis(5);
        loop {
            match backend.submit(events.clone()).await {
                Ok(()) => {
                    stats.durable.fetch_add(n, Ordering::Relaxed);
                    break;
                }
                Err(SubmitRefusal::Overloaded) => {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(1));
                }
                Err(SubmitRefusal::Stopped(why)) => {
                    stats.dropped.fetch_add(n, Ordering::Relaxed);
                    tracing::error!(events = n, %why, "gateway events not stored: the pipeline stopped");
                    break;
                }
            }
        }
    }
}
