//! The Bayes floor of the shared Optikal file's held-out splits, beside what `antibody train`
//! reaches on them.
//!
//! Every row the default model gets wrong on these splits is a normal or behavioural-drift
//! row next to the drift label cut (f = 0.5). The oracle here knows what no model may: the
//! generator's exact law for those rows ([`DriftLaw`]: a normal row is drift factor 0, a drift
//! row has f uniform on the series' steps `i / 500`, threat once f > 0.5) and the Optikal mix
//! (10 parts normal, 1 part drift). Its verdict is the posterior
//! `P(f > 0.5 | row) = w_d Σ_{f > 0.5} p(row | f) / (w_n p(row | 0) + w_d Σ_f p(row | f))`
//! at 0.5: no classifier of these rows makes fewer errors in expectation. The other threat
//! rows are counted as right, so its error counts are a lower bound on the Bayes error.
//!
//! `--augment=N` also trains the same learner on each split's training rows plus N rows of
//! `antibody gen` (seed 11): the sample size a generic learner needs to reach the floor.
//! Generated rows carry the generator's knowledge too, so this is a measurement, not a way
//! to train.
//!
//! `--splits=PATH` writes each split's held-out source lines (`seed line,line,…`), for
//! cross-checks with other learners (`analysis/crosscheck.py`).
//!
//! `cargo run --release -p antibody-ml --example oracle [-- [FILE] --augment=80000 --splits=PATH]`

mod shared;

use antibody_ml::data::{Dataset, RawTable};
use antibody_ml::features::{AgentRaw, AGENT_INPUT_COLUMNS};
use antibody_ml::gen::DriftLaw;
use antibody_ml::model::Score;
use antibody_ml::train::{fit, NoProgress, TrainConfig};
use std::io::Write;

/// The drift series' length in the shared file: 8,000 rows / 16.
const STEPS: usize = 500;
const SEEDS: [u64; 8] = [42, 1, 2, 3, 4, 5, 6, 7];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let augment = flag("--augment=")
        .map(|n| {
            n.parse::<usize>()
                .map_err(|_| format!("--augment={n}: not a row count"))
        })
        .transpose()?;
    let mut splits = flag("--splits=").map(std::fs::File::create).transpose()?;
    let data = shared::agent_behavior()?;
    let ds = &data.ds;
    let (table, _) = RawTable::read(&data.path, true)?;
    let oracle = oracle_verdicts(&table, ds)?;
    let whole = (0..ds.n_rows())
        .filter(|&i| oracle[i].is_some_and(|p| (p >= 0.5) != (ds.y[i] == 1)))
        .count();
    println!(
        "oracle over the whole file: {whole} errors in {} rows",
        ds.n_rows()
    );
    let extra = augment.map(|n| shared::generated(n, 11));
    println!(
        "seed  test rows  allowed (errors / FP)  oracle (errors / FP)  model (errors / FP){}",
        if extra.is_some() {
            "  model + gen rows (errors / FP)"
        } else {
            ""
        }
    );
    for seed in SEEDS {
        let cfg = TrainConfig {
            seed,
            sequence: None,
            ..TrainConfig::default()
        };
        let parts = ds.stratified_split(&[1.0 - cfg.test_fraction, cfg.test_fraction], seed);
        let test = &parts[1];
        if let Some(out) = splits.as_mut() {
            let lines: Vec<String> = test.iter().map(|&i| ds.lines[i].to_string()).collect();
            writeln!(out, "{seed} {}", lines.join(","))?;
        }
        let benign = test.iter().filter(|&&i| ds.y[i] == 0).count();
        // The floors: accuracy ≥ 99.5 %, FPR ≤ 0.5 %.
        let allowed = (test.len() as f64 * 0.005 + 1e-9).floor() as usize;
        let allowed_fp = (benign as f64 * 0.005 + 1e-9).floor() as usize;
        let verdicts: Vec<bool> = test
            .iter()
            .map(|&i| oracle[i].map_or(ds.y[i] == 1, |p| p >= 0.5))
            .collect();
        let o = tally(ds, test, &verdicts);
        let m = tally(ds, test, &model_verdicts(ds, &parts[0], test, &cfg, None)?);
        let a = match &extra {
            Some(g) => {
                let (e, fp) = tally(
                    ds,
                    test,
                    &model_verdicts(ds, &parts[0], test, &cfg, Some(g))?,
                );
                format!("  {e:>2} / {fp}")
            }
            None => String::new(),
        };
        println!(
            "{seed:>4}  {:>9}  {allowed:>8} / {allowed_fp:<11}  {:>7} / {:<11}  {:>6} / {:<11}{a}",
            test.len(),
            o.0,
            o.1,
            m.0,
            m.1
        );
    }
    Ok(())
}

/// The value of `--name=value`, when given.
fn flag(prefix: &str) -> Option<String> {
    std::env::args().find_map(|a| a.strip_prefix(prefix).map(str::to_owned))
}

/// Per row: the oracle's threat probability, or `None` for rows of the other threat types.
fn oracle_verdicts(
    table: &RawTable,
    ds: &Dataset,
) -> Result<Vec<Option<f64>>, Box<dyn std::error::Error>> {
    let cols = AGENT_INPUT_COLUMNS
        .iter()
        .map(|c| table.column_index(c))
        .collect::<Result<Vec<_>, _>>()?;
    let laws: Vec<DriftLaw> = (0..STEPS)
        .map(|i| DriftLaw::at(i as f64 / STEPS as f64))
        .collect();
    let normal = DriftLaw::at(0.0);
    let (w_normal, w_drift) = (10.0 / 16.0, 1.0 / 16.0 / STEPS as f64);
    let mut out = Vec::with_capacity(ds.n_rows());
    for i in 0..ds.n_rows() {
        let kind = &ds.type_names[ds.types[i] as usize];
        if kind != "normal" && kind != "behavioral_drift" {
            out.push(None);
            continue;
        }
        let record = table.row(i).ok_or("a row went missing")?;
        let mut v = [0.0; 11];
        for (slot, &c) in v.iter_mut().zip(&cols) {
            *slot = record.get(c).unwrap_or("").trim().parse()?;
        }
        let raw = AgentRaw::from_array(v);
        let ll: Vec<f64> = laws.iter().map(|l| l.log_density(&raw)).collect();
        let l0 = normal.log_density(&raw);
        let top = ll.iter().copied().fold(l0, f64::max);
        let (mut benign, mut threat) = (w_normal * (l0 - top).exp(), 0.0);
        for (k, l) in ll.iter().enumerate() {
            let w = w_drift * (l - top).exp();
            if k * 2 > STEPS {
                threat += w;
            } else {
                benign += w;
            }
        }
        out.push(Some(threat / (threat + benign)));
    }
    Ok(out)
}

/// The default ensemble fitted on `train` (plus `extra` rows) and thresholded on `test`.
fn model_verdicts(
    ds: &Dataset,
    train: &[usize],
    test: &[usize],
    cfg: &TrainConfig,
    extra: Option<&Dataset>,
) -> Result<Vec<bool>, Box<dyn std::error::Error>> {
    let mut tr = ds.subset(train);
    if let Some(g) = extra {
        append(&mut tr, g)?;
    }
    let te = ds.subset(test);
    let ensemble = fit(&tr, cfg, &mut NoProgress)?;
    let mut scores = vec![Score::default(); te.n_rows()];
    ensemble.score_batch(&te.x, &mut scores);
    Ok(scores
        .iter()
        .map(|s| f64::from(s.probability) >= ensemble.threshold)
        .collect())
}

/// Appends `g`'s rows to `tr`, mapping its types onto `tr`'s names.
fn append(tr: &mut Dataset, g: &Dataset) -> Result<(), Box<dyn std::error::Error>> {
    tr.x.extend_from_slice(&g.x);
    tr.y.extend_from_slice(&g.y);
    tr.lines.extend_from_slice(&g.lines);
    for &t in &g.types {
        let name = &g.type_names[t as usize];
        let mapped = tr
            .type_names
            .iter()
            .position(|n| n == name)
            .ok_or_else(|| format!("generated type {name} is not in the file"))?;
        tr.types.push(mapped as u16);
    }
    Ok(())
}

/// (errors, false positives) of `verdicts` on the `rows`.
fn tally(ds: &Dataset, rows: &[usize], verdicts: &[bool]) -> (usize, usize) {
    rows.iter().zip(verdicts).fold((0, 0), |(e, fp), (&i, &v)| {
        let threat = ds.y[i] == 1;
        (e + usize::from(v != threat), fp + usize::from(v && !threat))
    })
}
