//! The training pipeline and evaluation.
//!
//! Rows are split, stratified by type and seeded, into train and test (80/20 by default).
//! The train rows are cross-fitted: in each of k folds an isolation forest (benign rows only,
//! so it learns what normal looks like) and a booster are trained on the other folds and score
//! the held-out one, so every train row gets scores from detectors that never saw it. The
//! fusion is fitted on those out-of-fold scores (all train rows, not a small validation
//! share), the fold boosters stay as the ensemble members whose spread is the uncertainty,
//! and the final isolation forest, booster and type classifier are trained on all train rows.
//! The test rows are scored once, at the end, for the metrics the manifest records. Every
//! random choice derives from `TrainConfig::seed`.

use crate::data::Dataset;
use crate::error::{MlError, Result};
use crate::fusion::Logistic;
use crate::gbt::{train_binary, train_multiclass, GbtParams};
use crate::iforest::{IsoParams, IsolationForest};
use crate::metrics::{BinaryMetrics, TypeMetrics};
use crate::model::{
    Ensemble, Score, TypeClassifier, MAX_COMPILED_SLOTS, MAX_FEATURES, MAX_MEMBERS, MAX_ROW_STEPS,
    MAX_TYPES, NO_TYPE,
};
use crate::rng::Rng;
use crate::seq::{check_params, windows, SeqParams, SequenceModel};
use crate::tree::{ForestCost, MAX_TREES, MAX_TREE_DEPTH};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The class rarer types are merged into.
pub const OTHER_TYPE: &str = "other";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub seed: u64,
    pub test_fraction: f64,
    /// Cross-fitting folds (2–16): also the number of ensemble members.
    pub folds: usize,
    pub iforest: IsoParams,
    pub gbt: GbtParams,
    /// The threat-type classifier; `None` skips it.
    pub types: Option<GbtParams>,
    /// Types with fewer training rows are merged into `other`.
    pub min_type_rows: usize,
    /// L2 penalty of the fusion (on standardised inputs).
    pub fusion_l2: f64,
    /// The sequence model, trained when the data names each row's entity.
    pub sequence: Option<SeqParams>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            seed: 42,
            test_fraction: 0.2,
            folds: 5,
            iforest: IsoParams::default(),
            gbt: GbtParams::default(),
            types: Some(GbtParams {
                rounds: 100,
                max_depth: 4,
                ..GbtParams::default()
            }),
            min_type_rows: 20,
            fusion_l2: 1.0,
            sequence: Some(SeqParams::default()),
        }
    }
}

impl TrainConfig {
    pub fn validate(&self) -> Result<()> {
        if !(self.test_fraction > 0.0 && self.test_fraction < 0.9) {
            return Err(MlError::Config(
                "the test fraction must be above 0 and leave at least 10 % to train".into(),
            ));
        }
        if !(2..=MAX_MEMBERS).contains(&self.folds) {
            return Err(MlError::Config(format!(
                "cross-fitting needs 2 to {MAX_MEMBERS} folds"
            )));
        }
        let boosters = std::iter::once(&self.gbt).chain(&self.types);
        for p in boosters {
            if !(1..=MAX_TREES).contains(&p.rounds) || !(1..=12).contains(&p.max_depth) {
                return Err(MlError::Config(format!(
                    "boosting needs 1 to {MAX_TREES} rounds and a depth of 1–12"
                )));
            }
        }
        if self.iforest.trees > MAX_TREES {
            return Err(MlError::Config(format!(
                "the isolation forest may have at most {MAX_TREES} trees"
            )));
        }
        Ok(())
    }

    /// Refuses, before any training, a configuration whose ensemble could exceed the caps a
    /// loaded model must meet (see `model`), counting every tree at its depth limit and
    /// `n_types` type classes: boosted trees mostly reach it, and one deep tree pads its
    /// whole forest.
    pub fn check_cost(&self, n_types: usize) -> Result<()> {
        let forests = |trees: usize, depth: usize| ForestCost {
            slots: trees.saturating_mul(1 << depth.min(MAX_TREE_DEPTH)),
            steps: trees.saturating_mul(depth + 1),
        };
        // The isolation forest's height limit: ⌈log₂ ψ⌉ for ψ of at most 2^16 rows.
        let psi = self.iforest.sample_size.clamp(2, 1 << MAX_TREE_DEPTH);
        let mut cost = forests(
            self.iforest.trees.max(1),
            psi.next_power_of_two().trailing_zeros() as usize,
        );
        let boosters = (1 + self.folds).saturating_mul(self.gbt.rounds);
        cost = cost + forests(boosters, self.gbt.max_depth);
        if let Some(t) = &self.types {
            cost = cost + forests(n_types.saturating_mul(t.rounds), t.max_depth);
        }
        let advice = "use fewer rounds, shallower trees or fewer folds";
        if cost.slots > MAX_COMPILED_SLOTS {
            return Err(MlError::Config(format!(
                "this configuration can make {} compiled tree slots, above {MAX_COMPILED_SLOTS} \
                 (MAX_COMPILED_SLOTS), which loading refuses: {advice}",
                cost.slots
            )));
        }
        if cost.steps > MAX_ROW_STEPS {
            return Err(MlError::Config(format!(
                "this configuration can take {} tree steps to score a row, above \
                 {MAX_ROW_STEPS} (MAX_ROW_STEPS), which loading refuses: {advice}",
                cost.steps
            )));
        }
        Ok(())
    }
}

/// Training progress, reported by stage.
pub trait Progress {
    /// A stage starts with `steps` units of work.
    fn stage(&mut self, name: &str, steps: u64);
    /// One unit of the current stage is done.
    fn step(&mut self);
}

/// Reports nothing.
pub struct NoProgress;

impl Progress for NoProgress {
    fn stage(&mut self, _: &str, _: u64) {}
    fn step(&mut self) {}
}

/// Detection rate of one labelled type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TypeDetection {
    #[serde(rename = "type")]
    pub type_name: String,
    pub rows: u64,
    pub flagged: u64,
    pub rate: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    pub binary: BinaryMetrics,
    /// Threat-type classification on the threat rows (true type known to the model).
    pub types: Option<TypeMetrics>,
    /// Per labelled type: the share of rows flagged as threats.
    pub detection_by_type: Vec<TypeDetection>,
    /// Mean uncertainty on right and on wrong verdicts.
    pub uncertainty_correct: f64,
    pub uncertainty_wrong: f64,
    /// The sequence model on each row's window, when there is one and the data has entities.
    #[serde(default)]
    pub sequence: Option<BinaryMetrics>,
    /// Both parts as the engine serves them (a threat when either says so), with `sequence`.
    #[serde(default)]
    pub served: Option<BinaryMetrics>,
}

/// A trained ensemble with its split sizes and held-out report.
pub struct Trained {
    pub ensemble: Ensemble,
    pub train_rows: usize,
    pub test_rows: usize,
    pub report: EvalReport,
}

/// Splits, fits and evaluates on the held-out test rows.
pub fn train(ds: &Dataset, cfg: &TrainConfig, progress: &mut dyn Progress) -> Result<Trained> {
    cfg.validate()?;
    if !ds.has_labels() {
        return Err(MlError::Data("training needs labels".into()));
    }
    let seq_params = cfg.sequence.as_ref().filter(|_| !ds.entities.is_empty());
    if let Some(p) = seq_params {
        // Before the ensemble: a refusal should not wait for minutes of training.
        check_params(ds.n_features, p).map_err(|e| {
            MlError::Config(format!(
                "{e}; train without --entity, or on fewer features, for this data"
            ))
        })?;
    }
    let parts = ds.stratified_split(&[1.0 - cfg.test_fraction, cfg.test_fraction], cfg.seed);
    let (tr, te) = (ds.subset(&parts[0]), ds.subset(&parts[1]));
    let mut ensemble = fit(&tr, cfg, progress)?;
    if let Some(p) = seq_params {
        ensemble.sequence = Some(fit_sequence(ds, &parts[0], cfg.seed, p, progress)?);
    }
    progress.stage("evaluating", 1);
    // Windows from the whole file: a test row's history includes training rows.
    let seq = ensemble
        .sequence
        .as_ref()
        .map(|s| sequence_probs(s, ds, &parts[1]));
    let report = evaluate_rows(&ensemble, &te, seq.as_deref());
    progress.step();
    Ok(Trained {
        ensemble,
        train_rows: tr.n_rows(),
        test_rows: te.n_rows(),
        report,
    })
}

/// Fits every part on `tr`: cross-fitted fusion and members, then the final detectors.
/// The ensemble is checked against the caps on loading models: before training where the
/// configuration decides, after it where the trees do.
pub fn fit(tr: &Dataset, cfg: &TrainConfig, progress: &mut dyn Progress) -> Result<Ensemble> {
    let nf = tr.n_features;
    let both = tr.y.contains(&0) && tr.y.contains(&1);
    if !both || tr.n_rows() < 2 * cfg.folds {
        return Err(MlError::Data(
            "training needs benign and threat rows, at least two per fold".into(),
        ));
    }
    if nf > MAX_FEATURES {
        return Err(MlError::Config(format!(
            "{nf} features are more than a model may read ({MAX_FEATURES}, MAX_FEATURES)"
        )));
    }
    let n_types = match cfg.types {
        Some(_) => type_classes(tr, cfg.min_type_rows).0.len(),
        None => 0,
    };
    cfg.check_cost(n_types)?;
    let gbt_params = |stream: u64| GbtParams {
        seed: Rng::derive(cfg.seed, stream).next_u64(),
        ..cfg.gbt.clone()
    };
    let iso_params = |stream: u64| IsoParams {
        seed: Rng::derive(cfg.seed, stream).next_u64(),
        ..cfg.iforest.clone()
    };

    progress.stage("cross-fitting", (cfg.folds * cfg.gbt.rounds) as u64);
    let mut oof = vec![0f64; tr.n_rows() * 2];
    let mut members = Vec::with_capacity(cfg.folds);
    let fold_seed = Rng::derive(cfg.seed, 3).next_u64();
    for (f, (inner, held)) in tr.kfold(cfg.folds, fold_seed).into_iter().enumerate() {
        let part = tr.subset(&inner);
        let iforest = isolation_forest(&part, &iso_params(100 + f as u64))?;
        let gbt = train_binary(
            &part.x,
            nf,
            &part.y,
            &gbt_params(200 + f as u64),
            &mut |_| progress.step(),
        )
        .map_err(|e| MlError::Data(format!("boosted trees, fold {f}: {e}")))?;
        for &i in &held {
            let x = tr.row(i);
            oof[2 * i] = gbt.margin(0, x) as f64;
            oof[2 * i + 1] = iforest.score(x) as f64;
        }
        members.push(gbt);
    }
    let fusion = Logistic::fit(&oof, 2, &tr.y, cfg.fusion_l2)
        .map_err(|e| MlError::Data(format!("fusion: {e}")))?;

    progress.stage("isolation forest", 1);
    let iforest = isolation_forest(tr, &iso_params(1))?;
    progress.step();
    let params = gbt_params(2);
    progress.stage("boosted trees", params.rounds as u64);
    let gbt = train_binary(&tr.x, nf, &tr.y, &params, &mut |_| progress.step())
        .map_err(|e| MlError::Data(format!("boosted trees: {e}")))?;
    let types = match &cfg.types {
        Some(p) => fit_types(tr, cfg, p, progress)?,
        None => None,
    };
    let ensemble = Ensemble {
        n_features: nf,
        iforest,
        gbt,
        fusion,
        members,
        types,
        sequence: None,
        threshold: 0.5,
    };
    ensemble
        .validate()
        .map_err(|e| MlError::Config(format!("the trained model would not load: {e}")))?;
    Ok(ensemble)
}

/// The sequence model on the windows (from all of `ds`) that end at the `rows`.
fn fit_sequence(
    ds: &Dataset,
    rows: &[usize],
    seed: u64,
    params: &SeqParams,
    progress: &mut dyn Progress,
) -> Result<SequenceModel> {
    let all = windows(&ds.entities, params.window);
    let wins: Vec<Vec<usize>> = rows.iter().map(|&i| all[i].clone()).collect();
    let y: Vec<u8> = rows.iter().map(|&i| ds.y[i]).collect();
    let params = SeqParams {
        seed: Rng::derive(seed, 5).next_u64(),
        ..params.clone()
    };
    progress.stage("sequence model", params.epochs as u64);
    SequenceModel::train(&ds.x, ds.n_features, &wins, &y, &params, &mut |_| {
        progress.step()
    })
    .map_err(|e| MlError::Data(format!("sequence model: {e}")))
}

/// The sequence model's probability for the window (from all of `ds`) ending at each of `rows`.
fn sequence_probs(model: &SequenceModel, ds: &Dataset, rows: &[usize]) -> Vec<f64> {
    let all = windows(&ds.entities, model.window);
    let mut attention = vec![0.0; model.window];
    rows.iter()
        .map(|&i| {
            let steps: Vec<&[f32]> = all[i].iter().map(|&r| ds.row(r)).collect();
            model.predict(&steps, &mut attention)
        })
        .collect()
}

/// An isolation forest on the benign rows (all rows when fewer than two are benign).
fn isolation_forest(ds: &Dataset, params: &IsoParams) -> Result<IsolationForest> {
    let benign: Vec<usize> = (0..ds.n_rows()).filter(|&i| ds.y[i] == 0).collect();
    let rows = if benign.len() >= 2 {
        ds.subset(&benign).x
    } else {
        ds.x.clone()
    };
    IsolationForest::train(&rows, ds.n_features, params)
        .map_err(|e| MlError::Data(format!("isolation forest: {e}")))
}

/// Type classes of the training rows: frequent types kept, rare ones merged into `other`.
fn type_classes(tr: &Dataset, min_rows: usize) -> (Vec<String>, Vec<u16>) {
    let mut counts = vec![0usize; tr.type_names.len()];
    for &t in &tr.types {
        counts[t as usize] += 1;
    }
    let mut ranked: Vec<usize> = (0..counts.len()).filter(|&t| counts[t] > 0).collect();
    ranked.sort_by(|&a, &b| counts[b].cmp(&counts[a]).then(a.cmp(&b)));
    let keep: Vec<usize> = ranked
        .iter()
        .copied()
        .filter(|&t| counts[t] >= min_rows)
        .take(MAX_TYPES - 1)
        .collect();
    let mut classes: Vec<String> = keep.iter().map(|&t| tr.type_names[t].clone()).collect();
    classes.sort();
    let merged = keep.len() < ranked.len();
    if merged && !classes.iter().any(|c| c == OTHER_TYPE) {
        classes.push(OTHER_TYPE.into());
    }
    let class_of: Vec<u16> = (0..tr.type_names.len())
        .map(|t| {
            let name = &tr.type_names[t];
            let target = if keep.contains(&t) {
                name.as_str()
            } else {
                OTHER_TYPE
            };
            classes.iter().position(|c| c == target).unwrap_or(0) as u16
        })
        .collect();
    (classes, class_of)
}

fn fit_types(
    tr: &Dataset,
    cfg: &TrainConfig,
    params: &GbtParams,
    progress: &mut dyn Progress,
) -> Result<Option<TypeClassifier>> {
    let (classes, class_of) = type_classes(tr, cfg.min_type_rows);
    let targets: Vec<u16> = tr.types.iter().map(|&t| class_of[t as usize]).collect();
    // The benign class: the commonest class among benign rows.
    let mut benign = BTreeMap::new();
    for (&c, &y) in targets.iter().zip(&tr.y) {
        if y == 0 {
            *benign.entry(c).or_insert(0usize) += 1;
        }
    }
    let negative = benign
        .iter()
        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
        .map(|(&c, _)| c);
    let threat_classes = classes.len() - usize::from(negative.is_some());
    if threat_classes < 2 {
        return Ok(None);
    }
    let params = GbtParams {
        seed: Rng::derive(cfg.seed, 4).next_u64(),
        ..params.clone()
    };
    progress.stage("threat types", params.rounds as u64);
    let gbt = train_multiclass(
        &tr.x,
        tr.n_features,
        &targets,
        classes.len(),
        &params,
        &mut |_| progress.step(),
    )
    .map_err(|e| MlError::Data(format!("type classifier: {e}")))?;
    Ok(Some(TypeClassifier {
        gbt,
        classes,
        negative,
    }))
}

/// Scores every row of a labelled dataset.
pub fn evaluate(ensemble: &Ensemble, ds: &Dataset) -> EvalReport {
    let seq = ensemble
        .sequence
        .as_ref()
        .filter(|_| ds.entities.len() == ds.n_rows())
        .map(|s| sequence_probs(s, ds, &(0..ds.n_rows()).collect::<Vec<_>>()));
    evaluate_rows(ensemble, ds, seq.as_deref())
}

/// [`evaluate`], given the sequence model's probability for each row of `ds` when there is one.
fn evaluate_rows(ensemble: &Ensemble, ds: &Dataset, seq: Option<&[f64]>) -> EvalReport {
    let mut scores = vec![Score::default(); ds.n_rows()];
    ensemble.score_batch(&ds.x, &mut scores);
    let probs: Vec<f64> = scores.iter().map(|s| s.probability as f64).collect();
    let binary = BinaryMetrics::compute(&probs, &ds.y, ensemble.threshold);
    let flagged: Vec<bool> = probs.iter().map(|&p| p >= ensemble.threshold).collect();

    let (mut right, mut wrong) = ((0.0, 0u64), (0.0, 0u64));
    for ((s, &f), &y) in scores.iter().zip(&flagged).zip(&ds.y) {
        let acc = if f == (y == 1) {
            &mut right
        } else {
            &mut wrong
        };
        acc.0 += s.uncertainty as f64;
        acc.1 += 1;
    }
    let mean = |(sum, n): (f64, u64)| if n == 0 { 0.0 } else { sum / n as f64 };

    let detection_by_type = ds
        .type_names
        .iter()
        .enumerate()
        .filter_map(|(t, name)| {
            let rows: Vec<usize> = (0..ds.n_rows())
                .filter(|&i| ds.types[i] as usize == t)
                .collect();
            let hits = rows.iter().filter(|&&i| flagged[i]).count() as u64;
            (!rows.is_empty()).then(|| TypeDetection {
                type_name: name.clone(),
                rows: rows.len() as u64,
                flagged: hits,
                rate: hits as f64 / rows.len() as f64,
            })
        })
        .collect();

    let sequence = seq.map(|q| BinaryMetrics::compute(q, &ds.y, crate::seq::THRESHOLD));
    // What the engine reports for a model with both parts: a threat when the ensemble
    // reaches its threshold or the sequence part reaches its own. Each score is shifted so
    // both thresholds sit at 0.5, and the higher one decides (and ranks, for the AUCs).
    let served = seq.map(|q| {
        let either: Vec<f64> = probs
            .iter()
            .zip(q)
            .map(|(p, q)| 0.5 + (p - ensemble.threshold).max(q - crate::seq::THRESHOLD))
            .collect();
        BinaryMetrics::compute(&either, &ds.y, 0.5)
    });
    EvalReport {
        binary,
        types: type_metrics(ensemble, ds, &scores),
        detection_by_type,
        uncertainty_correct: mean(right),
        uncertainty_wrong: mean(wrong),
        sequence,
        served,
    }
}

/// Type accuracy over threat rows whose labelled type the model knows (or maps to `other`):
/// the predicted type is the likeliest non-benign class.
fn type_metrics(ensemble: &Ensemble, ds: &Dataset, scores: &[Score]) -> Option<TypeMetrics> {
    let t = ensemble.types.as_ref()?;
    let neg = t.negative.map(usize::from);
    let threat_classes: Vec<usize> = (0..t.classes.len()).filter(|&k| Some(k) != neg).collect();
    let names: Vec<String> = threat_classes
        .iter()
        .map(|&k| t.classes[k].clone())
        .collect();
    let position = |class: usize| threat_classes.iter().position(|&k| k == class);
    let other = t.classes.iter().position(|c| c == OTHER_TYPE);
    let (mut truth, mut predicted) = (Vec::new(), Vec::new());
    for (i, s) in scores.iter().enumerate() {
        if ds.y[i] != 1 || s.threat_type == NO_TYPE {
            continue;
        }
        let name = &ds.type_names[ds.types[i] as usize];
        let class = t.classes.iter().position(|c| c == name).or(other);
        if let (Some(a), Some(b)) = (class.and_then(position), position(s.threat_type as usize)) {
            truth.push(a as u16);
            predicted.push(b as u16);
        }
    }
    Some(TypeMetrics::compute(&truth, &predicted, &names))
}

/// Mean and standard deviation of a metric across folds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeanSd {
    pub mean: f64,
    pub sd: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CvReport {
    pub folds: usize,
    pub accuracy: MeanSd,
    pub precision: MeanSd,
    pub recall: MeanSd,
    pub f1: MeanSd,
    pub fpr: MeanSd,
    pub roc_auc: MeanSd,
    pub per_fold: Vec<BinaryMetrics>,
}

/// Stratified k-fold cross-validation of the binary detector (the type classifier is
/// skipped: folds report binary metrics only); each fold's training part is fitted as in
/// [`train`], cross-fitting included.
pub fn cross_validate(
    ds: &Dataset,
    cfg: &TrainConfig,
    k: usize,
    progress: &mut dyn Progress,
) -> Result<CvReport> {
    cfg.validate()?;
    if k < 2 || k > ds.n_rows() {
        return Err(MlError::Config(format!(
            "cross-validation needs 2 to {} folds",
            ds.n_rows()
        )));
    }
    let cfg = TrainConfig {
        types: None,
        sequence: None,
        ..cfg.clone()
    };
    let mut per_fold = Vec::with_capacity(k);
    for (f, (train_idx, test_idx)) in ds.kfold(k, cfg.seed).into_iter().enumerate() {
        let fold_cfg = TrainConfig {
            seed: Rng::derive(cfg.seed, 1000 + f as u64).next_u64(),
            ..cfg.clone()
        };
        let ensemble = fit(&ds.subset(&train_idx), &fold_cfg, progress)?;
        per_fold.push(evaluate(&ensemble, &ds.subset(&test_idx)).binary);
    }
    let stat = |get: fn(&BinaryMetrics) -> f64| {
        let v: Vec<f64> = per_fold.iter().map(get).collect();
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (v.len() - 1).max(1) as f64;
        MeanSd {
            mean,
            sd: var.sqrt(),
        }
    };
    Ok(CvReport {
        folds: k,
        accuracy: stat(|m| m.accuracy),
        precision: stat(|m| m.precision),
        recall: stat(|m| m.recall),
        f1: stat(|m| m.f1),
        fpr: stat(|m| m.fpr),
        roc_auc: stat(|m| m.roc_auc),
        per_fold,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::data::{LabelSpec, RawTable, DEFAULT_NEGATIVES};
    use crate::features::{AgentBehavior, FeatureSet};
    use crate::gen::{generate, write_csv, GenConfig};

    pub(crate) fn generated(rows: usize, seed: u64) -> Dataset {
        generated_with(rows, seed, false)
    }

    pub(crate) fn generated_with(rows: usize, seed: u64, mixed: bool) -> Dataset {
        let mut csv = Vec::new();
        let cfg = GenConfig {
            rows,
            seed,
            mixed,
            ..GenConfig::default()
        };
        write_csv(&generate(&cfg), &mut csv).unwrap();
        let table = RawTable::from_reader(csv.as_slice(), true).unwrap();
        let labels = LabelSpec {
            label: "is_threat".into(),
            negatives: DEFAULT_NEGATIVES.iter().map(|s| s.to_string()).collect(),
            type_column: Some("threat_type".into()),
        };
        let set = FeatureSet::AgentBehavior(AgentBehavior::default());
        let mut ds = Dataset::from_table(&table, &set, Some(&labels)).unwrap();
        if mixed {
            ds.set_entities(&table, "agent_id").unwrap();
        }
        ds
    }

    pub(crate) fn quick() -> TrainConfig {
        let small = GbtParams {
            rounds: 20,
            learning_rate: 0.2,
            max_depth: 3,
            ..GbtParams::default()
        };
        TrainConfig {
            iforest: IsoParams {
                trees: 20,
                ..IsoParams::default()
            },
            gbt: small.clone(),
            folds: 2,
            types: Some(small),
            sequence: Some(SeqParams {
                window: 6,
                hidden: 8,
                attention: 8,
                epochs: 3,
                ..SeqParams::default()
            }),
            ..TrainConfig::default()
        }
    }

    #[test]
    fn configurations_beyond_the_load_caps_are_refused_before_training() {
        let ds = generated(300, 21);
        let refused = |edit: &dyn Fn(&mut TrainConfig)| {
            let mut cfg = quick();
            edit(&mut cfg);
            match train(&ds, &cfg, &mut NoProgress) {
                Ok(_) => panic!("trained"),
                Err(e) => e.to_string(),
            }
        };
        // 3 × 10,000 detector trees of depth 3: 120 k steps.
        let e = refused(&|c| c.gbt.rounds = MAX_TREES);
        assert!(e.contains("MAX_ROW_STEPS"), "{e}");
        // 3 × 200 trees padded to depth 12: 2.5 M slots.
        let e = refused(&|c| {
            c.gbt.rounds = 200;
            c.gbt.max_depth = 12;
        });
        assert!(e.contains("MAX_COMPILED_SLOTS"), "{e}");
        let e = refused(&|c| c.gbt.rounds = MAX_TREES + 1);
        assert!(e.contains("rounds"), "{e}");
        let e = refused(&|c| c.types.as_mut().unwrap().max_depth = 13);
        assert!(e.contains("depth of 1–12"), "{e}");
        let e = refused(&|c| c.iforest.trees = MAX_TREES + 1);
        assert!(e.contains("isolation forest"), "{e}");
        // The defaults fit even with the most type classes a model may have.
        TrainConfig::default().check_cost(MAX_TYPES).unwrap();
    }

    #[test]
    fn a_sequence_part_too_wide_to_load_is_refused_before_training() {
        // 18 features repeated to 270: the default GRU's window then costs more than a
        // loaded model may, which must be said before the ensemble trains, not after.
        let narrow = generated_with(200, 4, true);
        let wide = 15 * narrow.n_features;
        let mut ds = Dataset {
            n_features: wide,
            x: narrow
                .x
                .chunks_exact(narrow.n_features)
                .flat_map(|row| row.repeat(15))
                .collect(),
            ..narrow.clone()
        };
        assert!(!ds.entities.is_empty());
        let mut stages = Vec::new();
        struct Stages<'a>(&'a mut Vec<String>);
        impl Progress for Stages<'_> {
            fn stage(&mut self, name: &str, _: u64) {
                self.0.push(name.to_string());
            }
            fn step(&mut self) {}
        }
        let cfg = TrainConfig {
            sequence: Some(SeqParams::default()),
            ..quick()
        };
        let err = train(&ds, &cfg, &mut Stages(&mut stages))
            .err()
            .expect("refused")
            .to_string();
        assert!(
            err.contains("MAX_SEQUENCE_WORK") && err.contains("--entity"),
            "{err}"
        );
        assert!(stages.is_empty(), "trained before refusing: {stages:?}");
        // Without entities the same rows train.
        ds.entities.clear();
        train(&ds, &quick(), &mut NoProgress).unwrap();
    }

    #[test]
    fn a_trained_model_that_would_not_load_is_refused() {
        // Within the configuration's worst case, but 300 deep trees (fitting random labels)
        // take more explaining work than a loaded model may.
        let mut ds = generated(600, 21);
        let mut rng = Rng::new(3);
        ds.y.iter_mut()
            .for_each(|y| *y = u8::from(rng.bernoulli(0.5)));
        let cfg = TrainConfig {
            gbt: GbtParams {
                rounds: 300,
                max_depth: 6,
                min_samples_leaf: 2,
                ..GbtParams::default()
            },
            types: None,
            sequence: None,
            ..quick()
        };
        let Err(e) = train(&ds, &cfg, &mut NoProgress) else {
            panic!("trained");
        };
        let e = e.to_string();
        assert!(
            e.contains("would not load") && e.contains("MAX_EXPLAIN_WORK"),
            "{e}"
        );
    }

    #[test]
    fn sequence_model_trains_on_sessions_and_survives_encoding() {
        let ds = generated_with(1200, 4, true);
        let t = train(&ds, &quick(), &mut NoProgress).unwrap();
        let s = t.report.sequence.as_ref().unwrap();
        assert!(s.accuracy > 0.95 && s.roc_auc > 0.97, "{s:?}");
        // Served, a row is a threat when either part says so: it catches what each catches.
        let served = t.report.served.as_ref().unwrap();
        assert!(served.recall >= s.recall.max(t.report.binary.recall) - 1e-12);
        assert!(served.fpr >= s.fpr.max(t.report.binary.fpr) - 1e-12);
        // Without entities there is no sequence model.
        assert!(train(&generated(600, 4), &quick(), &mut NoProgress)
            .unwrap()
            .ensemble
            .sequence
            .is_none());
        let bytes = postcard::to_stdvec(&t.ensemble).unwrap();
        let back: Ensemble = postcard::from_bytes(&bytes).unwrap();
        back.validate().unwrap();
        let steps: Vec<&[f32]> = (0..6).map(|i| ds.row(i)).collect();
        let (mut a, mut b) = ([0.0; 6], [0.0; 6]);
        assert_eq!(
            back.score_window(&steps, &mut a),
            t.ensemble.score_window(&steps, &mut b)
        );
        assert!((a.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    }

    #[test]
    fn trains_evaluates_and_is_deterministic() {
        let ds = generated(1600, 11);
        let a = train(&ds, &quick(), &mut NoProgress).unwrap();
        assert_eq!(a.train_rows + a.test_rows, 1600);
        let m = &a.report.binary;
        assert!(m.accuracy > 0.97 && m.roc_auc > 0.98, "{m:?}");
        let types = a.report.types.as_ref().unwrap();
        assert!(types.accuracy > 0.9, "{types:?}");
        assert_eq!(types.classes.len(), 6, "benign class excluded");
        let b = train(&ds, &quick(), &mut NoProgress).unwrap();
        assert_eq!(a.report, b.report);
        // Generalises to another seed of the generator.
        let other = evaluate(&a.ensemble, &generated(800, 99));
        assert!(other.binary.accuracy > 0.97, "{:?}", other.binary);
    }

    #[test]
    fn batch_and_row_scores_agree() {
        let ds = generated(800, 5);
        let t = train(&ds, &quick(), &mut NoProgress).unwrap();
        let mut batch = vec![Score::default(); ds.n_rows()];
        t.ensemble.score_batch(&ds.x, &mut batch);
        for (i, b) in batch.iter().enumerate().step_by(37) {
            let r = t.ensemble.score_row(ds.row(i));
            assert!((r.probability - b.probability).abs() < 1e-5);
            assert!((r.uncertainty - b.uncertainty).abs() < 1e-5);
            assert_eq!(r.threat_type, b.threat_type);
        }
    }

    #[test]
    fn cross_validation_reports_every_fold() {
        let ds = generated(800, 6);
        let cv = cross_validate(&ds, &quick(), 3, &mut NoProgress).unwrap();
        assert_eq!(cv.per_fold.len(), 3);
        assert!(cv.accuracy.mean > 0.95, "{cv:?}");
        let rows: u64 = cv.per_fold.iter().map(|m| m.rows).sum();
        assert_eq!(rows, 800);
    }

    #[test]
    fn rare_types_merge_into_other() {
        let ds = Dataset {
            n_features: 1,
            x: vec![0.0; 50],
            y: vec![0; 50],
            types: (0..50).map(|i| u16::from(i >= 45)).collect(),
            type_names: vec!["common".into(), "rare".into()],
            lines: (0..50).collect(),
            entities: vec![],
        };
        let (classes, class_of) = type_classes(&ds, 10);
        assert_eq!(classes, ["common", "other"]);
        assert_eq!(class_of, [0, 1]);
    }
}
