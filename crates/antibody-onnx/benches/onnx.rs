//! Custom-model serving speed on the logistic-regression fixture: rows/s batched, µs per
//! single row, and one occlusion explanation.

use antibody_ml::serve::{Prediction, Scorer};
use antibody_onnx::{Limits, OnnxScorer, OnnxSpec, OutputKind};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;

fn scorer() -> OnnxScorer {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/logreg.onnx");
    let bytes = std::fs::read(path).expect("fixture");
    let spec = OnnxSpec::new(
        vec!["a".into(), "b".into(), "c".into()],
        OutputKind::Probability,
    );
    OnnxScorer::load(&bytes, spec, &Limits::default()).expect("load")
}

fn bench(c: &mut Criterion) {
    let s = scorer();
    let n = 4096;
    let rows: Vec<f32> = (0..n * 3).map(|i| (i % 97) as f32 / 10.0 - 4.0).collect();
    let mut out = vec![Prediction::default(); n];
    let mut g = c.benchmark_group("onnx_logreg");
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("batch_4096_rows", |b| {
        b.iter(|| s.score_batch(black_box(&rows), &mut out))
    });
    g.throughput(Throughput::Elements(1));
    let mut one = [Prediction::default()];
    g.bench_function("single_row", |b| {
        b.iter(|| s.score_batch(black_box(&rows[..3]), &mut one))
    });
    let mut phi = [0.0f64; 3];
    g.bench_function("contributions_single_row", |b| {
        b.iter(|| s.contributions(black_box(&rows[..3]), &mut phi))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
