//! Inference and explanation speed of the learned detectors on agent-behaviour rows.
//!
//! `cargo bench -p antibody-ml --bench ml -- --warm-up-time 1 --measurement-time 3`

use antibody_ml::data::Dataset;
use antibody_ml::drift::{DriftReference, DriftWindow};
use antibody_ml::features::{AgentBehavior, FEATURE_SET_NAMES};
use antibody_ml::gbt::{train_binary, GbtParams};
use antibody_ml::gen::{generate, GenConfig};
use antibody_ml::iforest::{IsoParams, IsolationForest};
use antibody_ml::model::Score;
use antibody_ml::seq::{windows, SeqParams, SequenceModel, MAX_WINDOW};
use antibody_ml::shap::{tree_shap, ShapScratch};
use antibody_ml::train::{fit, NoProgress, TrainConfig};
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};

const NF: usize = 18;

fn dataset(rows: usize, seed: u64) -> Dataset {
    let generated = generate(&GenConfig {
        rows,
        seed,
        ..GenConfig::default()
    });
    let set = AgentBehavior::default();
    let mut ds = Dataset {
        n_features: NF,
        x: vec![0.0; rows * NF],
        ..Dataset::default()
    };
    for (r, out) in generated.iter().zip(ds.x.chunks_exact_mut(NF)) {
        set.extract_raw(&r.raw, out);
        ds.y.push(u8::from(r.is_threat()));
        ds.types.push(r.label as u16);
        ds.lines.push(0);
    }
    ds.type_names = antibody_ml::gen::Scenario::ALL
        .iter()
        .map(|s| s.name().to_string())
        .collect();
    ds
}

fn bench(c: &mut Criterion) {
    assert_eq!(FEATURE_SET_NAMES[0], "agent-behavior");
    let train = dataset(8000, 1);
    let test = dataset(8192, 2);
    let iforest = IsolationForest::train(&train.x, NF, &IsoParams::default()).unwrap();
    let gbt = train_binary(&train.x, NF, &train.y, &GbtParams::default(), &mut |_| {}).unwrap();
    let n = test.n_rows();
    let mut out = vec![0f32; n];

    let mut g = c.benchmark_group("batch_8192_rows");
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("iforest_100_trees", |b| {
        b.iter(|| iforest.score_batch(black_box(&test.x), &mut out))
    });
    g.bench_function("gbt_200_trees", |b| {
        b.iter(|| gbt.margins_batch(black_box(&test.x), &mut out))
    });
    g.finish();

    let mut g = c.benchmark_group("single_row");
    let mut i = 0;
    let mut next_row = || {
        i = (i + 1) % n;
        test.row(i)
    };
    g.bench_function("iforest_100_trees", |b| {
        b.iter(|| iforest.score(black_box(next_row())))
    });
    g.bench_function("gbt_200_trees", |b| {
        b.iter(|| gbt.margin(0, black_box(next_row())))
    });
    let mut scratch = ShapScratch::default();
    let mut phi = vec![0.0; NF];
    g.bench_function("treeshap_gbt_200_trees", |b| {
        b.iter(|| {
            phi.fill(0.0);
            gbt.shap(0, black_box(next_row()), &mut phi, &mut scratch);
            black_box(&phi);
        })
    });
    g.bench_function("treeshap_walk_gbt_200_trees", |b| {
        b.iter(|| {
            phi.fill(0.0);
            let x = next_row();
            for t in &gbt.trees[0] {
                tree_shap(t, x, &mut phi, &mut scratch);
            }
            black_box(&phi);
        })
    });
    let mut contrib = vec![0.0; NF];
    g.bench_function("iforest_attribution", |b| {
        b.iter(|| iforest.attribute(black_box(next_row()), &mut contrib))
    });
    g.bench_function("extract_agent_features", |b| {
        let raw = generate(&GenConfig {
            rows: 1,
            seed: 3,
            ..GenConfig::default()
        })[0]
            .raw;
        let set = AgentBehavior::default();
        let mut f = [0f32; NF];
        b.iter(|| set.extract_raw(black_box(&raw), &mut f))
    });

    // Drift: a full window of 4,096 rows, so every observe also evicts the oldest row.
    let names: Vec<String> = (0..NF).map(|f| format!("f{f}")).collect();
    let reference = DriftReference::fit(&train.x, NF, &names);
    let mut window = DriftWindow::new(&reference, 4096);
    for row in test.x.chunks_exact(NF) {
        window.observe(row);
    }
    g.bench_function("drift_observe_18_features", |b| {
        b.iter(|| window.observe(black_box(next_row())))
    });
    g.bench_function("drift_psi_18_features", |b| {
        b.iter(|| black_box(window.psi()))
    });

    let ensemble = fit(&train, &TrainConfig::default(), &mut NoProgress).unwrap();
    g.bench_function("ensemble_score", |b| {
        b.iter(|| ensemble.score_row(black_box(next_row())))
    });
    g.bench_function("ensemble_explain", |b| {
        b.iter(|| ensemble.explain(black_box(next_row()), &mut scratch))
    });

    // The sequence model (GRU + attention, default size) on full 10-step windows of agents'
    // sessions, as the engine scores each event of a model with a sequence part.
    let sessions = generate(&GenConfig {
        rows: 2000,
        seed: 3,
        mixed: true,
        ..GenConfig::default()
    });
    let mut sx = vec![0f32; sessions.len() * NF];
    for (r, out) in sessions.iter().zip(sx.chunks_exact_mut(NF)) {
        AgentBehavior::default().extract_raw(&r.raw, out);
    }
    let entities: Vec<u32> = sessions.iter().map(|r| r.agent).collect();
    let sy: Vec<u8> = sessions.iter().map(|r| u8::from(r.is_threat())).collect();
    let wins = windows(&entities, 10);
    let params = SeqParams {
        epochs: 1,
        ..SeqParams::default()
    };
    let seq = SequenceModel::train(&sx, NF, &wins, &sy, &params, &mut |_| {}).unwrap();
    let full: Vec<Vec<&[f32]>> = wins
        .iter()
        .filter(|w| w.len() == 10)
        .map(|w| w.iter().map(|&r| &sx[r * NF..(r + 1) * NF]).collect())
        .collect();
    let mut k = 0;
    let mut attention = [0.0; MAX_WINDOW];
    g.bench_function("sequence_window_10_steps", |b| {
        b.iter(|| {
            k = (k + 1) % full.len();
            seq.predict(black_box(&full[k]), &mut attention)
        })
    });
    g.finish();

    let mut g = c.benchmark_group("batch_8192_rows");
    g.throughput(Throughput::Elements(n as u64));
    let mut scores = vec![Score::default(); n];
    g.bench_function("ensemble_score", |b| {
        b.iter(|| ensemble.score_batch(black_box(&test.x), &mut scores))
    });
    g.finish();

    let mut g = c.benchmark_group("training");
    g.sample_size(10);
    g.bench_function("gbt_200_trees_8000_rows", |b| {
        b.iter_batched(
            || (),
            |_| train_binary(&train.x, NF, &train.y, &GbtParams::default(), &mut |_| {}),
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
