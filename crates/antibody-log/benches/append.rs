//! Append throughput: 1,000-record batches of 200-byte payloads, with and without one `sync`
//! per batch (the group-commit unit).

use std::time::{Duration, Instant};

use antibody_log::{LogOptions, SegmentLog};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const BATCH: usize = 1_000;
const PAYLOAD: usize = 200;

/// Times `iters` batches into a fresh log, which is deleted afterwards so disk use stays bounded.
fn run(iters: u64, batch: &[&[u8]], sync: bool) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let mut log = SegmentLog::open(dir.path(), LogOptions::default()).unwrap();
    let start = Instant::now();
    for i in 0..iters {
        log.append(i as i64, batch).unwrap();
        if sync {
            log.sync().unwrap();
        }
    }
    start.elapsed()
}

fn append(c: &mut Criterion) {
    let payload = vec![0xA5u8; PAYLOAD];
    let batch: Vec<&[u8]> = vec![payload.as_slice(); BATCH];
    let mut group = c.benchmark_group("append_1000x200B");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("no_sync", |b| {
        b.iter_custom(|iters| run(iters, &batch, false))
    });
    group.bench_function("sync_per_batch", |b| {
        b.iter_custom(|iters| run(iters, &batch, true))
    });
    group.finish();
}

criterion_group!(benches, append);
criterion_main!(benches);
