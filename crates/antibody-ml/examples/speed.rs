//! Best-of-N timings of the learned detectors on one core, for machines that other work
//! shares: the minimum over many short runs is the time without preemption, which criterion's
//! means on a busy machine are not.
//!
//! `cargo run --release -p antibody-ml --example speed`

mod shared;

use antibody_ml::features::AgentBehavior;
use antibody_ml::gen::{generate, GenConfig};
use antibody_ml::iforest::{IsoParams, IsolationForest};
use antibody_ml::model::Score;
use antibody_ml::seq::{windows, SeqParams, SequenceModel, MAX_WINDOW};
use antibody_ml::shap::ShapScratch;
use antibody_ml::train::{fit, NoProgress, TrainConfig};
use std::hint::black_box;
use std::time::Instant;

const NF: usize = 18;
const BATCH: usize = 1024;

/// Seconds of the fastest of `runs` runs.
fn best(runs: usize, mut f: impl FnMut()) -> f64 {
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::MAX, f64::min)
}

fn main() {
    let train = shared::generated(8000, 1);
    let test = shared::generated(BATCH, 2);
    let cfg = TrainConfig::default();
    let fit_once = || fit(&train, &cfg, &mut NoProgress);
    let train_s = best(3, || {
        black_box(fit_once().ok());
    });
    let Ok(ensemble) = fit_once() else {
        eprintln!("training failed");
        return;
    };
    let iforest = IsolationForest::train(&train.x, NF, &IsoParams::default())
        .unwrap_or_else(|_| ensemble.iforest.clone());
    let gbt = &ensemble.gbt;
    let mut out = vec![0f32; BATCH];
    let per_row = |s: f64| s / BATCH as f64 * 1e6;
    let each_row = |f: &mut dyn FnMut(&[f32])| {
        for x in test.x.chunks_exact(NF) {
            f(x);
        }
    };

    let t = best(300, || iforest.score_batch(black_box(&test.x), &mut out));
    println!(
        "isolation forest, 100 trees, batch:   {:>10.0} rows/s",
        BATCH as f64 / t
    );
    let t = best(300, || gbt.margins_batch(black_box(&test.x), &mut out));
    println!(
        "boosted trees, {} trees, batch:      {:>10.0} rows/s",
        gbt.trees[0].len(),
        BATCH as f64 / t
    );
    let t = best(100, || {
        each_row(&mut |x| {
            black_box(iforest.score(x));
        })
    });
    println!(
        "isolation forest, single row:         {:>10.2} µs",
        per_row(t)
    );
    let t = best(100, || {
        each_row(&mut |x| {
            black_box(gbt.margin(0, x));
        })
    });
    println!(
        "boosted trees, single row:            {:>10.2} µs",
        per_row(t)
    );
    let mut scratch = ShapScratch::default();
    let mut phi = vec![0.0; NF];
    let t = best(30, || {
        each_row(&mut |x| gbt.shap(0, x, &mut phi, &mut scratch))
    });
    println!(
        "TreeSHAP, boosted trees, single row:  {:>10.2} µs",
        per_row(t)
    );
    let t = best(30, || {
        each_row(&mut |x| {
            black_box(ensemble.explain(x, &mut scratch));
        })
    });
    println!(
        "whole ensemble + explanation, row:    {:>10.2} µs",
        per_row(t)
    );
    let mut scores = vec![Score::default(); BATCH];
    let t = best(100, || {
        ensemble.score_batch(black_box(&test.x), &mut scores)
    });
    println!(
        "whole ensemble, batch:                {:>10.0} rows/s",
        BATCH as f64 / t
    );
    println!("training the ensemble on 8,000 rows:  {train_s:>10.2} s");

    // The sequence model on per-agent sessions.
    let sessions = generate(&GenConfig {
        rows: 8000,
        seed: 3,
        mixed: true,
        ..GenConfig::default()
    });
    let set = AgentBehavior::default();
    let mut x = vec![0f32; sessions.len() * NF];
    for (r, out) in sessions.iter().zip(x.chunks_exact_mut(NF)) {
        set.extract_raw(&r.raw, out);
    }
    let entities: Vec<u32> = sessions.iter().map(|r| r.agent).collect();
    let y: Vec<u8> = sessions.iter().map(|r| u8::from(r.is_threat())).collect();
    let wins = windows(&entities, 10);
    let started = Instant::now();
    let Ok(seq) = SequenceModel::train(&x, NF, &wins, &y, &SeqParams::default(), &mut |_| {})
    else {
        eprintln!("sequence training failed");
        return;
    };
    let seq_train_s = started.elapsed().as_secs_f64();
    let mut attention = [0.0; MAX_WINDOW];
    let full: Vec<&Vec<usize>> = wins.iter().filter(|w| w.len() == 10).take(BATCH).collect();
    let t = best(30, || {
        for w in &full {
            let steps: Vec<&[f32]> = w.iter().map(|&r| &x[r * NF..(r + 1) * NF]).collect();
            black_box(seq.predict(&steps, &mut attention));
        }
    });
    println!(
        "sequence model, 10-step window + attention: {:>6.2} µs",
        t / full.len() as f64 * 1e6
    );
    println!("training the sequence model, 8,000 windows: {seq_train_s:>5.2} s");
    // What the engine does for a reported row of a model with a sequence part: the whole
    // ensemble with its explanation, then the GRU over the entity's last 10 rows.
    let t = best(10, || {
        for w in &full {
            let steps: Vec<&[f32]> = w.iter().map(|&r| &x[r * NF..(r + 1) * NF]).collect();
            if let Some(newest) = steps.last() {
                black_box(ensemble.explain(newest, &mut scratch));
            }
            black_box(seq.predict(&steps, &mut attention));
        }
    });
    println!(
        "whole ensemble + explanation + sequence window, row: {:>6.2} µs",
        t / full.len() as f64 * 1e6
    );
}
