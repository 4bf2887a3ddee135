//! Retraining from analysts' labels: a new ensemble of the same kind, fitted on the parent
//! model's stored training sample plus the labelled rows, for the shadow slot.
//!
//! The labelled rows join the sample (their types join the sample's; a threat without a type
//! is `other`, a benign row without one takes the sample's benign type), and the whole is
//! split, stratified by type and seeded, into train and held-out test rows with the parent's
//! test fraction. In the training part each labelled row is repeated [`LABEL_WEIGHT`] times:
//! a label is an analyst's verdict on exactly the traffic the model now sees, worth more than
//! one more sample row, and repetition is how a weight reaches the booster, the isolation
//! forest and the fusion alike. Repetition happens after the split, so no copy of a held-out
//! label is trained on. (Inside the cross-fitting, copies of one label can fall in different
//! folds; with a few hundred labels against thousands of sample rows this only nudges the
//! fusion's trust in the booster on the labelled patterns.)
//!
//! A labelled row with a feature that is missing or not a finite number (a finding's
//! evidence shows such a value as `null`) is left out and counted in the lineage rather than
//! refusing the retrain: the label set only grows, so one such row would otherwise block
//! every later retrain of the model.
//!
//! The parent's `TrainConfig` is reused with the given seed, so the same parent, labels and
//! seed give the same model. The sequence model is carried over unchanged (labels are single
//! rows, not windows), and so is the drift reference: a few labels do not move training
//! deciles fitted on the whole original file.

use crate::data::Dataset;
use crate::error::{MlError, Result};
use crate::model::{Model, TrainingInfo};
use crate::sample::{TrainingSample, MAX_SAMPLE_ROWS};
use crate::train::{evaluate, fit, NoProgress, TrainConfig, OTHER_TYPE};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;

/// Copies of each labelled row in the training part.
pub const LABEL_WEIGHT: usize = 4;
/// Rows (sample plus labels) below which a retrain is refused.
pub const MIN_RETRAIN_ROWS: usize = 100;

/// One analyst-labelled row, as the model's feature set extracted it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelledRow {
    pub features: Vec<f32>,
    pub threat: bool,
    #[serde(default)]
    pub threat_type: Option<String>,
}

/// Where a retrained model came from, recorded in its manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lineage {
    /// The registry's id of the parent; `retrain` does not know it, its caller may set it.
    #[serde(default)]
    pub parent_version: Option<String>,
    /// SHA-256 of the parent's weights, which identifies it.
    pub parent_sha256: String,
    /// 1 for a retrain of a model trained from a file, one more for each retrain after.
    pub generation: u32,
    /// Labelled rows trained on (or held out); those left out are in `skipped_labels`.
    pub labels: u64,
    pub threat_labels: u64,
    /// Labelled rows left out for a missing or non-finite feature.
    #[serde(default)]
    pub skipped_labels: u64,
    pub label_weight: u64,
    pub seed: u64,
    /// Labelled rows that fell in the held-out split, and the share the new model got right.
    pub held_out_labels: u64,
    pub held_out_label_accuracy: Option<f64>,
}

fn refuse(message: impl Into<String>) -> MlError {
    MlError::Retrain(message.into())
}

/// Trains a new model of `base`'s kind on its sample plus `labelled`; see the module docs.
pub fn retrain(base: &Model, labelled: &[LabelledRow], seed: u64) -> Result<Model> {
    let sample = base.sample.as_ref().ok_or_else(|| {
        refuse("the model carries no training sample (written before samples were stored); train it again from its data")
    })?;
    let labelled = usable_labels(labelled, base.ensemble.n_features)?;
    let skipped = labelled.skipped;
    let labelled = labelled.rows.as_slice();
    let ds = combine(sample, labelled);
    if ds.n_rows() < MIN_RETRAIN_ROWS {
        return Err(refuse(format!(
            "{} rows (sample and labels) are too few; at least {MIN_RETRAIN_ROWS} are needed",
            ds.n_rows()
        )));
    }
    let cfg = TrainConfig {
        seed,
        ..base.manifest.training.config.clone()
    };
    cfg.validate()?;
    let first_label = sample.n_rows();
    let parts = ds.stratified_split(&[1.0 - cfg.test_fraction, cfg.test_fraction], seed);
    let mut train_rows = parts[0].clone();
    for &i in parts[0].iter().filter(|&&i| i >= first_label) {
        train_rows.extend(std::iter::repeat_n(i, LABEL_WEIGHT - 1));
    }
    let (tr, te) = (ds.subset(&train_rows), ds.subset(&parts[1]));
    let threats = tr.y.iter().filter(|&&y| y == 1).count();
    let benign = tr.n_rows() - threats;
    if threats < cfg.folds || benign < cfg.folds {
        return Err(refuse(format!(
            "the training part holds {benign} benign and {threats} threat rows; each needs at least {}",
            cfg.folds
        )));
    }
    let mut ensemble = fit(&tr, &cfg, &mut NoProgress)?;
    ensemble.sequence = base.ensemble.sequence.clone();
    ensemble.threshold = base.ensemble.threshold;
    let metrics = evaluate(&ensemble, &te);

    let held: Vec<usize> = (0..te.n_rows())
        .filter(|&j| parts[1][j] >= first_label)
        .collect();
    let right = held
        .iter()
        .filter(|&&j| {
            let p = ensemble.score_row(te.row(j)).probability as f64;
            (p >= ensemble.threshold) == (te.y[j] == 1)
        })
        .count();
    let parent_sha256 = parent_sha256(base)?;
    let lineage = Lineage {
        parent_version: None,
        generation: base
            .manifest
            .lineage
            .as_ref()
            .map_or(1, |l| l.generation + 1),
        labels: labelled.len() as u64,
        threat_labels: labelled.iter().filter(|l| l.threat).count() as u64,
        skipped_labels: skipped as u64,
        label_weight: LABEL_WEIGHT as u64,
        seed,
        held_out_labels: held.len() as u64,
        held_out_label_accuracy: (!held.is_empty()).then(|| right as f64 / held.len() as f64),
        parent_sha256,
    };
    let m = &base.manifest;
    let info = TrainingInfo {
        data_file: format!(
            "retrain of {} with {} labels",
            &lineage.parent_sha256[..12.min(lineage.parent_sha256.len())],
            labelled.len()
        ),
        data_sha256: dataset_sha256(&ds),
        rows: ds.n_rows() as u64,
        train_rows: tr.n_rows() as u64,
        test_rows: te.n_rows() as u64,
        config: cfg,
    };
    let mut model = Model::new(
        m.feature_set.clone(),
        m.labels.clone(),
        m.has_header,
        info,
        metrics,
        ensemble,
    );
    model.manifest.entity_column = m.entity_column.clone();
    model.manifest.reference = m.reference.clone();
    model.manifest.lineage = Some(lineage);
    model.sample = TrainingSample::from_dataset(&ds, MAX_SAMPLE_ROWS, seed);
    Ok(model)
}

/// The labelled rows a retrain can use, and how many were left out.
struct Usable {
    rows: Vec<LabelledRow>,
    skipped: usize,
}

/// Refuses rows of the wrong width (the caller built them wrongly); leaves out, and counts,
/// rows with a missing or non-finite feature (see the module docs).
fn usable_labels(labelled: &[LabelledRow], n_features: usize) -> Result<Usable> {
    if labelled.is_empty() {
        return Err(refuse("no labelled rows"));
    }
    for (i, row) in labelled.iter().enumerate() {
        if row.features.len() != n_features {
            return Err(refuse(format!(
                "labelled row {i} has {} features, the model reads {n_features}",
                row.features.len()
            )));
        }
    }
    let rows: Vec<LabelledRow> = labelled
        .iter()
        .filter(|row| row.features.iter().all(|v| v.is_finite()))
        .cloned()
        .collect();
    let skipped = labelled.len() - rows.len();
    if rows.is_empty() {
        return Err(refuse(format!(
            "none of the {skipped} labelled rows is usable: each has a feature that is missing or not a finite number"
        )));
    }
    Ok(Usable { rows, skipped })
}

/// The sample's rows, then the labelled rows, over the union of their type names (sorted).
fn combine(sample: &TrainingSample, labelled: &[LabelledRow]) -> Dataset {
    let benign_type = commonest_benign_type(sample);
    let label_type = |l: &LabelledRow| match (&l.threat_type, l.threat) {
        (Some(t), _) => t.trim().to_string(),
        (None, true) => OTHER_TYPE.to_string(),
        (None, false) => benign_type.clone(),
    };
    let names: BTreeSet<String> = sample
        .type_names
        .iter()
        .cloned()
        .chain(labelled.iter().map(label_type))
        .collect();
    let names: Vec<String> = names.into_iter().collect();
    let index = |name: &str| {
        names
            .binary_search_by(|n| n.as_str().cmp(name))
            .unwrap_or(0) as u16
    };
    let mut ds = sample.to_dataset();
    ds.types = sample
        .types
        .iter()
        .map(|&t| index(&sample.type_names[usize::from(t)]))
        .collect();
    for l in labelled {
        ds.x.extend_from_slice(&l.features);
        ds.y.push(u8::from(l.threat));
        ds.types.push(index(&label_type(l)));
    }
    ds.lines = (1..=ds.y.len() as u64).collect();
    ds.type_names = names;
    ds
}

/// The type most of the sample's benign rows carry (`benign` when it has none).
fn commonest_benign_type(sample: &TrainingSample) -> String {
    let mut counts = vec![0usize; sample.type_names.len()];
    for (&t, &y) in sample.types.iter().zip(&sample.y) {
        if y == 0 {
            counts[usize::from(t)] += 1;
        }
    }
    let best = (0..counts.len())
        .filter(|&t| counts[t] > 0)
        .max_by(|&a, &b| counts[a].cmp(&counts[b]).then(b.cmp(&a)));
    best.map_or_else(|| "benign".into(), |t| sample.type_names[t].clone())
}

fn parent_sha256(base: &Model) -> Result<String> {
    if !base.manifest.weights_sha256.is_empty() {
        return Ok(base.manifest.weights_sha256.clone());
    }
    let bytes = postcard::to_stdvec(&base.ensemble)
        .map_err(|e| refuse(format!("cannot encode the parent: {e}")))?;
    Ok(hex::encode(Sha256::digest(bytes)))
}

/// SHA-256 of the rows, labels and type names a retrain used.
fn dataset_sha256(ds: &Dataset) -> String {
    let mut h = Sha256::new();
    for v in &ds.x {
        h.update(v.to_le_bytes());
    }
    h.update(&ds.y);
    for t in &ds.types {
        h.update(t.to_le_bytes());
    }
    for name in &ds.type_names {
        h.update(name.as_bytes());
        h.update(b"\n");
    }
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tests::{trained, trained_with_data};
    use crate::train::tests::generated;

    /// Benign rows of another seed, turned into a pattern the base model was never shown.
    fn novel(rows: usize, seed: u64) -> Vec<Vec<f32>> {
        let ds = generated(rows * 3, seed);
        (0..ds.n_rows())
            .filter(|&i| ds.y[i] == 0)
            .take(rows)
            .map(|i| {
                let mut x = ds.row(i).to_vec();
                x[14] = 0.0; // response_time_s
                x[15] = 0.0; // response_time_log
                x[9] = 1.0; // success_rate
                x
            })
            .collect()
    }

    fn flagged(m: &Model, rows: &[Vec<f32>]) -> f64 {
        let hits = rows
            .iter()
            .filter(|x| m.ensemble.score_row(x).probability as f64 >= m.ensemble.threshold)
            .count();
        hits as f64 / rows.len() as f64
    }

    fn labels(rows: &[Vec<f32>]) -> Vec<LabelledRow> {
        rows.iter()
            .map(|x| LabelledRow {
                features: x.clone(),
                threat: true,
                threat_type: Some("replay".into()),
            })
            .collect()
    }

    #[test]
    fn labels_teach_a_missed_pattern() {
        let base = trained_with_data();
        let (taught, unseen) = (novel(60, 31), novel(200, 32));
        let before = flagged(&base, &unseen);
        assert!(before < 0.1, "the base model already flags {before}");
        let new = retrain(&base, &labels(&taught), 5).unwrap();
        let after = flagged(&new, &unseen);
        assert!(after > 0.9, "flagged {after} after retraining");
        // Ordinary traffic keeps its verdicts.
        let m = &evaluate(&new.ensemble, &generated(800, 33)).binary;
        assert!(m.accuracy > 0.95 && m.fpr < 0.05, "{m:?}");
        let replay = new
            .type_classes()
            .iter()
            .position(|c| c == "replay")
            .unwrap();
        let typed = unseen
            .iter()
            .filter(|x| usize::from(new.ensemble.score_row(x).threat_type) == replay)
            .count();
        assert!(typed > 180, "{typed} of 200 typed as replay");

        let lineage = new.manifest.lineage.as_ref().unwrap();
        assert_eq!((lineage.labels, lineage.threat_labels), (60, 60));
        assert_eq!(lineage.generation, 1);
        assert_eq!(lineage.parent_sha256.len(), 64);
        assert!(lineage.held_out_labels > 0);
        assert_eq!(new.manifest.reference, base.manifest.reference);
        assert_eq!(new.manifest.training.config.seed, 5);
        assert!(new.manifest.training.data_file.starts_with("retrain of "));
        let sample = new.sample.as_ref().unwrap();
        assert_eq!(sample.n_rows(), 660);
        assert!(sample.type_names.contains(&"replay".to_string()));

        // Deterministic for a seed; a retrain of a retrain is the next generation.
        let again = retrain(&base, &labels(&taught), 5).unwrap();
        assert_eq!(again.manifest, new.manifest);
        let next = retrain(&new, &labels(&taught[..10]), 6).unwrap();
        assert_eq!(next.manifest.lineage.unwrap().generation, 2);
    }

    #[test]
    fn clear_refusals() {
        let base = trained_with_data();
        let row = |n: usize| LabelledRow {
            features: vec![0.5; n],
            threat: false,
            threat_type: None,
        };
        let err = |r: Result<Model>| r.unwrap_err().to_string();
        assert!(err(retrain(&trained(), &[row(18)], 1)).contains("no training sample"));
        assert!(err(retrain(&base, &[], 1)).contains("no labelled rows"));
        assert!(err(retrain(&base, &[row(18), row(3)], 1)).contains("row 1 has 3 features"));
        let mut nan = row(18);
        nan.features[4] = f32::NAN;
        assert!(err(retrain(&base, &[nan], 1)).contains("none of the 1 labelled rows"));

        let mut small = trained_with_data();
        let s = small.sample.as_mut().unwrap();
        s.x.truncate(50 * 18);
        s.y.truncate(50);
        s.types.truncate(50);
        assert!(err(retrain(&small, &[row(18)], 1)).contains("too few"));

        let mut benign_only = trained_with_data();
        let s = benign_only.sample.as_mut().unwrap();
        s.y.iter_mut().for_each(|y| *y = 0);
        assert!(err(retrain(&benign_only, &[row(18)], 1)).contains("0 threat rows"));
    }

    #[test]
    fn a_label_with_a_missing_or_infinite_feature_is_skipped_not_fatal() {
        let base = trained_with_data();
        let taught = novel(20, 31);
        let mut rows = labels(&taught);
        let clean = retrain(&base, &rows, 5).unwrap();
        // What an infinite feature and a missing one look like once stored as a label.
        let mut inf = rows[0].clone();
        inf.features[0] = f32::INFINITY;
        let mut missing = rows[1].clone();
        missing.features[3] = f32::NAN;
        rows.insert(3, inf);
        rows.push(missing);
        let new = retrain(&base, &rows, 5).unwrap();
        let lineage = new.manifest.lineage.as_ref().unwrap();
        assert_eq!((lineage.labels, lineage.skipped_labels), (20, 2));
        // Left out entirely: the same model as from the clean rows.
        let weights = |m: &Model| postcard::to_stdvec(&m.ensemble).unwrap();
        assert_eq!(weights(&new), weights(&clean));
        assert_eq!(clean.manifest.lineage.unwrap().skipped_labels, 0);
    }

    #[test]
    fn unlabelled_types_take_other_or_the_benign_type() {
        let sample = trained_with_data().sample.unwrap();
        let rows = [true, false].map(|threat| LabelledRow {
            features: vec![0.0; 18],
            threat,
            threat_type: None,
        });
        let ds = combine(&sample, &rows);
        let n = ds.n_rows();
        assert_eq!(ds.type_names[usize::from(ds.types[n - 2])], OTHER_TYPE);
        assert_eq!(ds.type_names[usize::from(ds.types[n - 1])], "normal");
        assert!(ds.type_names.windows(2).all(|w| w[0] < w[1]));
        // The sample's rows keep their type names through the re-indexing.
        for i in 0..sample.n_rows() {
            let before = &sample.type_names[usize::from(sample.types[i])];
            assert_eq!(&ds.type_names[usize::from(ds.types[i])], before);
        }
    }
}
