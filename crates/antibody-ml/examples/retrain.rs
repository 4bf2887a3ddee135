//! Retraining from labels at the size the issue budgets: a model trained on the shared
//! Optikal file keeps a 5,000-row sample, and 3,000 labelled rows (from `gen --seed 7`, with
//! their true labels) make 8,000. Also times the model bundle both ways.
//!
//! `cargo run --release -p antibody-ml --example retrain [-- DATA.csv]`

mod shared;

use antibody_ml::data::Dataset;
use antibody_ml::features::AgentBehavior;
use antibody_ml::gen::{generate, GenConfig, Scenario};
use antibody_ml::model::{Model, TrainingInfo};
use antibody_ml::retrain::{retrain, LabelledRow};
use antibody_ml::train::{evaluate, train, NoProgress, TrainConfig};
use std::time::Instant;

const LABELS: usize = 3_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let shared::AgentData {
        ds,
        set,
        labels,
        path,
        sha,
    } = shared::agent_behavior()?;
    let cfg = TrainConfig::default();

    let started = Instant::now();
    let t = train(&ds, &cfg, &mut NoProgress)?;
    let train_s = started.elapsed().as_secs_f64();
    let info = TrainingInfo {
        data_file: path.display().to_string(),
        data_sha256: sha,
        rows: ds.n_rows() as u64,
        train_rows: t.train_rows as u64,
        test_rows: t.test_rows as u64,
        config: cfg.clone(),
    };
    let mut base = Model::new(set, labels, true, info, t.report, t.ensemble);
    base.set_training_data(&ds, cfg.seed);

    let fresh = generate(&GenConfig {
        rows: LABELS,
        seed: 7,
        ..GenConfig::default()
    });
    let agent = AgentBehavior::default();
    let labelled: Vec<LabelledRow> = fresh
        .iter()
        .map(|r| {
            let mut features = vec![0f32; 18];
            agent.extract_raw(&r.raw, &mut features);
            LabelledRow {
                features,
                threat: r.is_threat(),
                threat_type: Some(r.label.name().to_string()),
            }
        })
        .collect();

    let started = Instant::now();
    let mut new = retrain(&base, &labelled, 1)?;
    let retrain_s = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let bundle = new.to_bundle();
    let to_s = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let back = Model::from_bundle(&bundle)?;
    let from_s = started.elapsed().as_secs_f64();

    let sample_rows = base.sample.as_ref().map_or(0, |s| s.n_rows());
    let m = &new.manifest;
    let held = &m.metrics.binary;
    let lineage = m.lineage.as_ref().ok_or("no lineage")?;
    println!(
        "base model: {} rows of {}, trained in {train_s:.2} s, sample {sample_rows} rows",
        ds.n_rows(),
        path.display()
    );
    println!(
        "retrain: {sample_rows} sample + {LABELS} labelled rows = {} rows ({} training rows with labels weighted ×{}) in {retrain_s:.2} s",
        m.training.rows, m.training.train_rows, lineage.label_weight
    );
    println!(
        "  held-out: accuracy {:.2} %  recall {:.2} %  FPR {:.2} %  ({} rows, {} labels, label accuracy {:.2} %)",
        held.accuracy * 100.0,
        held.recall * 100.0,
        held.fpr * 100.0,
        held.rows,
        lineage.held_out_labels,
        lineage.held_out_label_accuracy.unwrap_or(0.0) * 100.0
    );
    let other = generate(&GenConfig {
        rows: 8000,
        seed: 8,
        ..GenConfig::default()
    });
    let mut eval = Dataset {
        n_features: 18,
        x: vec![0.0; other.len() * 18],
        type_names: Scenario::ALL.iter().map(|s| s.name().to_string()).collect(),
        ..Dataset::default()
    };
    for (r, out) in other.iter().zip(eval.x.chunks_exact_mut(18)) {
        agent.extract_raw(&r.raw, out);
        eval.y.push(u8::from(r.is_threat()));
        eval.types.push(r.label as u16);
        eval.lines.push(0);
    }
    let before = evaluate(&base.ensemble, &eval).binary;
    let after = evaluate(&back.ensemble, &eval).binary;
    println!(
        "  gen --seed 8 (8,000 rows): accuracy {:.2} % before, {:.2} % after",
        before.accuracy * 100.0,
        after.accuracy * 100.0
    );
    println!(
        "bundle: {} bytes, written in {:.1} ms, read and checked in {:.1} ms",
        bundle.len(),
        to_s * 1e3,
        from_s * 1e3
    );
    Ok(())
}
