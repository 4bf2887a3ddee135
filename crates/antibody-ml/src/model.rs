//! The trained ensemble, its scoring and explanation API, and its on-disk form.
//!
//! [`Ensemble`] is pure and deterministic: [`Ensemble::score_batch`] maps feature rows
//! (row-major `f32`, as a [`FeatureSet`] extracts them) to [`Score`]s, and
//! [`Ensemble::explain`] adds per-feature attributions on demand. A detector wraps it.
//!
//! A model is a directory: `model.json`, a self-describing manifest (format version, feature
//! set with its schema hash, labels, training-data SHA-256, training configuration,
//! held-out metrics, the drift reference and, for a retrained model, its lineage),
//! `model.bin`, the trees and weights in postcard, and `sample.bin`, the stored training
//! sample (postcard), whose SHA-256s the manifest records. Loading refuses another format
//! version, a feature schema this build computes differently, or files that do not match
//! their hash. [`crate::bundle`] packs the same parts into one file for upload.

use crate::data::{Dataset, LabelSpec};
use crate::drift::DriftReference;
use crate::error::{MlError, Result};
use crate::features::FeatureSet;
use crate::fusion::Logistic;
use crate::gbt::{softmax_in_place, Gbt, GbtDef};
use crate::iforest::{IsoDef, IsolationForest};
use crate::retrain::Lineage;
use crate::sample::{TrainingSample, MAX_SAMPLE_ROWS};
use crate::seq::SequenceModel;
use crate::shap::{shap_cost, ShapScratch};
use crate::train::{CvReport, EvalReport, TrainConfig};
use crate::tree::{check_forest, Tree};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::Path;

pub const FORMAT: &str = "antibody-ml-model";
pub const FORMAT_VERSION: u32 = 2;
pub const MANIFEST_FILE: &str = "model.json";
pub const WEIGHTS_FILE: &str = "model.bin";
pub const SAMPLE_FILE: &str = "sample.bin";
/// Benign rows the drift reference needs to be fitted on them alone.
pub const MIN_REFERENCE_ROWS: usize = 100;
/// Threat-type classes a model may have (rarer types are merged into `other` in training).
pub const MAX_TYPES: usize = 64;
/// Fold members an ensemble may have.
pub const MAX_MEMBERS: usize = 16;
/// Most features a model may read (as for uploaded ONNX models): rows, attributions, drift
/// windows and sequence histories are as wide as this.
pub const MAX_FEATURES: usize = 4096;
/// `Score::threat_type` when there is no type classifier.
pub const NO_TYPE: u16 = u16::MAX;

// What a model may cost, checked on a model file's trees before any is compiled or tabulated
// (where a small file could claim gigabytes), beside `tree::MAX_TREES` (10,000 per forest),
// `tree::MAX_TREE_DEPTH` (16) and the sequence model's caps in `seq`. A model trained with
// the defaults (200 detector trees of depth 4, five members like it, 100 trees of depth 4
// per threat type, 100 isolation trees of depth ≤ 8) took ~55 k slots, ~10 k steps, ~63 k
// table values and ~6 k explaining work on the agent data with seven types; with every tree
// full and 64 types it could reach ~0.15 M slots, ~40 k steps, ~10 M values and ~40 k work.
// Times are from forged models at each cap on the 2-core build VM.

/// Compiled tree slots over all forests (bottom slots of the padded trees, ~12 bytes each
/// compiled: ~25 MB at the cap). Trees have fewer nodes than twice their slots, so this also
/// bounds the nodes and leaves everything else walks.
pub const MAX_COMPILED_SLOTS: usize = 1 << 21;
/// Tree steps to score one row through every forest (each tree's padded depth plus its
/// leaf). Steps that miss the cache cost up to ~4 ns: 0.15–0.3 ms a row at the cap (forests
/// of depth 5–10, every row scored in full), against ~16 µs for the defaults.
pub const MAX_ROW_STEPS: usize = 1 << 16;
/// Values in the boosters' TreeSHAP leaf tables (8 bytes each: 64 MB at the cap, built in
/// about 0.2 s). The defaults with every tree full and [`MAX_TYPES`] type classes need
/// ~7.8 M (1,024 a depth-4 tree), so any data `antibody train` takes with its defaults fits.
pub const MAX_SHAP_TABLE_VALUES: usize = 1 << 23;
/// Work of explaining one row: the detector's TreeSHAP plus the costliest type's (see
/// [`crate::shap::ShapCost::row_work`]): ~3 ns a unit, tables or walk, so ~0.2 ms a row at
/// the cap against ~17 µs for the defaults.
pub const MAX_EXPLAIN_WORK: usize = 1 << 16;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TypeClassifier {
    pub gbt: Gbt,
    pub classes: Vec<String>,
    /// The benign class (never reported as a threat type).
    pub negative: Option<u16>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "EnsembleDef")]
pub struct Ensemble {
    pub n_features: usize,
    pub iforest: IsolationForest,
    pub gbt: Gbt,
    /// Over `[gbt margin, isolation-forest score]`.
    pub fusion: Logistic,
    /// The cross-fitting fold boosters, each trained without one fold: their spread through
    /// the same fusion is the uncertainty.
    pub members: Vec<Gbt>,
    pub types: Option<TypeClassifier>,
    /// Over each entity's last events, when the training data named an entity column.
    pub sequence: Option<SequenceModel>,
    /// Fused probability at or above which a row is a threat.
    pub threshold: f64,
}

/// The ensemble's verdict on one row.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Score {
    /// Calibrated probability that the row is a threat (the fusion's output).
    pub probability: f32,
    /// Standard deviation of the fold members' fused probabilities.
    pub uncertainty: f32,
    /// Isolation-forest anomaly score (0–1, above ~0.6 is unusual).
    pub anomaly: f32,
    /// Boosted-tree log-odds.
    pub margin: f32,
    /// Most likely threat type (index into the classes), [`NO_TYPE`] without a classifier.
    pub threat_type: u16,
    /// Probability of that type given that the row is a threat.
    pub type_confidence: f32,
}

/// Per-feature attributions for one row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    pub score: Score,
    /// Expected boosted-tree margin over the training data (the SHAP base value).
    pub margin_base: f64,
    /// TreeSHAP values of the margin: `margin_base + Σ = margin`.
    pub margin_shap: Vec<f64>,
    /// Isolation-forest path attributions: `Σ = anomaly`.
    pub anomaly_contrib: Vec<f64>,
    /// TreeSHAP values of the predicted type's margin, when there is a type classifier.
    pub type_shap: Option<Vec<f64>>,
    /// Probability of each type class.
    pub type_probabilities: Vec<f32>,
}

impl Ensemble {
    /// Validates that every part reads rows of the same width, has the shape scoring and
    /// explaining index by, and costs no more than the caps above.
    pub fn validate(&self) -> Result<(), String> {
        self.parts().check().map(drop)
    }

    fn parts(&self) -> Parts<'_> {
        Parts {
            n_features: self.n_features,
            iforest: (self.iforest.n_features, &self.iforest.trees),
            gbt: Booster::new(self.gbt.n_features, &self.gbt.trees),
            members: self
                .members
                .iter()
                .map(|m| Booster::new(m.n_features, &m.trees))
                .collect(),
            fusion: &self.fusion,
            types: self.types.as_ref().map(|t| {
                (
                    Booster::new(t.gbt.n_features, &t.gbt.trees),
                    t.classes.len(),
                )
            }),
            sequence: self.sequence.as_ref(),
        }
    }

    /// Scores one row without allocating.
    pub fn score_row(&self, x: &[f32]) -> Score {
        let anomaly = self.iforest.score(x);
        let margin = self.gbt.margin(0, x);
        let probability = self.fusion.predict(&[margin as f64, anomaly as f64]) as f32;
        let mut member_p = [0f64; MAX_MEMBERS];
        let k = self.members.len().min(member_p.len());
        for (p, m) in member_p.iter_mut().zip(&self.members) {
            *p = self
                .fusion
                .predict(&[m.margin(0, x) as f64, anomaly as f64]);
        }
        let (threat_type, type_confidence) = match &self.types {
            Some(t) => {
                let mut probs = [0f32; MAX_TYPES];
                t.gbt.probabilities(x, &mut probs);
                pick_type(&probs[..t.classes.len()], t.negative)
            }
            None => (NO_TYPE, 0.0),
        };
        Score {
            probability,
            uncertainty: std_dev(&member_p[..k]) as f32,
            anomaly,
            margin,
            threat_type,
            type_confidence,
        }
    }

    /// Scores a batch: `rows` is row-major with `n_features` per row, one `Score` per row.
    pub fn score_batch(&self, rows: &[f32], out: &mut [Score]) {
        let n = out.len().min(rows.len() / self.n_features.max(1));
        let rows = &rows[..n * self.n_features];
        let mut anomaly = vec![0f32; n];
        let mut margin = vec![0f32; n];
        self.iforest.score_batch(rows, &mut anomaly);
        self.gbt.margins_batch(rows, &mut margin);
        let mut member_margins = vec![0f32; n * self.members.len()];
        for (m, chunk) in self
            .members
            .iter()
            .zip(member_margins.chunks_exact_mut(n.max(1)))
        {
            m.margins_batch(rows, chunk);
        }
        let mut type_probs = Vec::new();
        if let Some(t) = &self.types {
            type_probs = vec![0f32; n * t.classes.len()];
            t.gbt.margins_batch(rows, &mut type_probs);
        }
        let mut member_p = [0f64; MAX_MEMBERS];
        for (i, s) in out.iter_mut().take(n).enumerate() {
            let a = anomaly[i] as f64;
            let k = self.members.len().min(member_p.len());
            for (j, p) in member_p.iter_mut().enumerate().take(k) {
                *p = self.fusion.predict(&[member_margins[j * n + i] as f64, a]);
            }
            let (threat_type, type_confidence) = match &self.types {
                Some(t) => {
                    let k = t.classes.len();
                    let probs = &mut type_probs[i * k..(i + 1) * k];
                    softmax_in_place(probs);
                    pick_type(probs, t.negative)
                }
                None => (NO_TYPE, 0.0),
            };
            *s = Score {
                probability: self.fusion.predict(&[margin[i] as f64, a]) as f32,
                uncertainty: std_dev(&member_p[..k]) as f32,
                anomaly: anomaly[i],
                margin: margin[i],
                threat_type,
                type_confidence,
            };
        }
    }

    /// The sequence model's probability that the newest of `steps` (an entity's last
    /// feature rows, oldest first) is a threat, with each step's attention weight written to
    /// `attention`; `None` without a sequence model.
    pub fn score_window(&self, steps: &[&[f32]], attention: &mut [f64]) -> Option<f64> {
        Some(self.sequence.as_ref()?.predict(steps, attention))
    }

    /// The score plus TreeSHAP and isolation-path attributions for one row.
    pub fn explain(&self, x: &[f32], scratch: &mut ShapScratch) -> Explanation {
        let score = self.score_row(x);
        let mut margin_shap = vec![0.0; self.n_features];
        self.gbt.shap(0, x, &mut margin_shap, scratch);
        let margin_base = self.gbt.expected_margin(0);
        let mut anomaly_contrib = vec![0.0; self.n_features];
        self.iforest.attribute(x, &mut anomaly_contrib);
        let mut type_probabilities = Vec::new();
        let mut type_shap = None;
        if let Some(t) = &self.types {
            type_probabilities = vec![0f32; t.classes.len()];
            t.gbt.probabilities(x, &mut type_probabilities);
            if (score.threat_type as usize) < t.classes.len() {
                let mut phi = vec![0.0; self.n_features];
                t.gbt.shap(score.threat_type as usize, x, &mut phi, scratch);
                type_shap = Some(phi);
            }
        }
        Explanation {
            score,
            margin_base,
            margin_shap,
            anomaly_contrib,
            type_shap,
            type_probabilities,
        }
    }
}

/// The most likely non-benign class and its probability given a threat.
fn pick_type(probs: &[f32], negative: Option<u16>) -> (u16, f32) {
    let neg = negative.map(usize::from);
    let mut best = (NO_TYPE, -1.0f32);
    let mut threat_mass = 0.0f32;
    for (k, &p) in probs.iter().enumerate() {
        if Some(k) == neg {
            continue;
        }
        threat_mass += p;
        if p > best.1 {
            best = (k as u16, p);
        }
    }
    if best.0 == NO_TYPE {
        return (NO_TYPE, 0.0);
    }
    let conf = if threat_mass > 0.0 {
        best.1 / threat_mass
    } else {
        0.0
    };
    (best.0, conf)
}

fn std_dev(v: &[f64]) -> f64 {
    if v.len() < 2 {
        return 0.0;
    }
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
}

/// One booster's trees, per output, as the checks see them.
struct Booster<'a> {
    n_features: usize,
    outputs: &'a [Vec<Tree>],
}

impl<'a> Booster<'a> {
    fn new(n_features: usize, outputs: &'a [Vec<Tree>]) -> Self {
        Booster {
            n_features,
            outputs,
        }
    }
}

/// An ensemble's parts as the checks see them: a model file's, before anything is compiled,
/// or a built ensemble's.
struct Parts<'a> {
    n_features: usize,
    /// Feature count and trees.
    iforest: (usize, &'a [Tree]),
    gbt: Booster<'a>,
    members: Vec<Booster<'a>>,
    fusion: &'a Logistic,
    /// The classifier and its number of classes.
    types: Option<(Booster<'a>, usize)>,
    sequence: Option<&'a SequenceModel>,
}

impl Parts<'_> {
    fn check(&self) -> Result<ModelCost, String> {
        self.check_shapes()?;
        let cost = self.cost()?;
        cost.check()?;
        Ok(cost)
    }

    fn check_shapes(&self) -> Result<(), String> {
        let n = self.n_features;
        if !(1..=MAX_FEATURES).contains(&n) {
            return Err(format!(
                "the ensemble reads {n} features, not 1 to {MAX_FEATURES} (MAX_FEATURES)"
            ));
        }
        let widths = [self.iforest.0, self.gbt.n_features];
        if widths.iter().any(|&w| w != n) || self.members.iter().any(|m| m.n_features != n) {
            return Err("parts of the ensemble disagree on the feature count".into());
        }
        // Batches hold one margin per row for the detector and for each member.
        if self.gbt.outputs.len() != 1 || self.members.iter().any(|m| m.outputs.len() != 1) {
            return Err("the detector and its members must have one output each".into());
        }
        let fusion = self.fusion;
        if fusion.dim() != 2 || fusion.mean.len() != 2 || fusion.scale.len() != 2 {
            return Err("the fusion must read two inputs".into());
        }
        if self.members.len() > MAX_MEMBERS {
            return Err(format!(
                "{} members, above {MAX_MEMBERS} (MAX_MEMBERS)",
                self.members.len()
            ));
        }
        if let Some(s) = self.sequence {
            s.validate()?;
            if s.n_features != n {
                return Err("the sequence model reads another feature count".into());
            }
        }
        if let Some((t, classes)) = &self.types {
            // At least two: a single output would be read as binary, with two probabilities.
            if t.n_features != n
                || *classes != t.outputs.len()
                || !(2..=MAX_TYPES).contains(classes)
            {
                return Err(format!(
                    "the type classifier must have one output per class, 2 to {MAX_TYPES} \
                     (MAX_TYPES)"
                ));
            }
        }
        Ok(())
    }

    /// After [`Parts::check_shapes`] (at most 82 forests: isolation, detector, 16 members,
    /// 64 types); each forest is validated before its trees are walked.
    fn cost(&self) -> Result<ModelCost, String> {
        let types = self.types.as_ref().map(|(t, _)| t);
        let boosters = || std::iter::once(&self.gbt).chain(&self.members).chain(types);
        let (iforest_features, iforest) = self.iforest;
        let mut compiled = check_forest(iforest, iforest_features)?;
        for b in boosters() {
            for trees in b.outputs {
                compiled = compiled + check_forest(trees, b.n_features)?;
            }
        }
        // Per output: (table values, work of explaining a row).
        let shap = |trees: &[Tree]| {
            trees
                .iter()
                .map(shap_cost)
                .fold((0usize, 0usize), |acc, c| {
                    (
                        acc.0.saturating_add(c.table_values),
                        acc.1.saturating_add(c.row_work),
                    )
                })
        };
        let table_values = boosters()
            .flat_map(|b| b.outputs)
            .fold(0usize, |acc, trees| acc.saturating_add(shap(trees).0));
        let detector = self.gbt.outputs.first().map_or(0, |t| shap(t).1);
        let costliest_type = types
            .into_iter()
            .flat_map(|t| t.outputs)
            .map(|trees| shap(trees).1)
            .max()
            .unwrap_or(0);
        Ok(ModelCost {
            slots: compiled.slots,
            steps: compiled.steps,
            table_values,
            explain_work: detector.saturating_add(costliest_type),
        })
    }
}

/// What a model's trees cost, against the caps above.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct ModelCost {
    slots: usize,
    steps: usize,
    table_values: usize,
    explain_work: usize,
}

impl ModelCost {
    fn check(&self) -> Result<(), String> {
        let caps = [
            (
                self.slots,
                MAX_COMPILED_SLOTS,
                "compiled tree slots",
                "MAX_COMPILED_SLOTS",
            ),
            (
                self.steps,
                MAX_ROW_STEPS,
                "tree steps to score a row",
                "MAX_ROW_STEPS",
            ),
            (
                self.table_values,
                MAX_SHAP_TABLE_VALUES,
                "TreeSHAP table values",
                "MAX_SHAP_TABLE_VALUES",
            ),
            (
                self.explain_work,
                MAX_EXPLAIN_WORK,
                "units of work to explain a row",
                "MAX_EXPLAIN_WORK",
            ),
        ];
        for (value, cap, what, name) in caps {
            if value > cap {
                return Err(format!(
                    "the model's trees need {value} {what}, above {cap} ({name})"
                ));
            }
        }
        Ok(())
    }
}

/// An ensemble as a model file stores it (the same encoding as [`Ensemble`]): decoding into
/// this first lets every shape and cost be checked before trees are compiled or tabulated,
/// with messages that survive (postcard drops those of a failed `try_from`).
#[derive(Serialize, Deserialize)]
struct EnsembleDef {
    n_features: usize,
    iforest: IsoDef,
    gbt: GbtDef,
    fusion: Logistic,
    members: Vec<GbtDef>,
    types: Option<TypesDef>,
    sequence: Option<SequenceModel>,
    threshold: f64,
}

impl EnsembleDef {
    fn parts(&self) -> Parts<'_> {
        Parts {
            n_features: self.n_features,
            iforest: (self.iforest.n_features, &self.iforest.trees),
            gbt: Booster::new(self.gbt.n_features, &self.gbt.trees),
            members: self
                .members
                .iter()
                .map(|m| Booster::new(m.n_features, &m.trees))
                .collect(),
            fusion: &self.fusion,
            types: self.types.as_ref().map(|t| {
                (
                    Booster::new(t.gbt.n_features, &t.gbt.trees),
                    t.classes.len(),
                )
            }),
            sequence: self.sequence.as_ref(),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct TypesDef {
    gbt: GbtDef,
    classes: Vec<String>,
    negative: Option<u16>,
}

impl TryFrom<EnsembleDef> for Ensemble {
    type Error = String;

    fn try_from(d: EnsembleDef) -> Result<Self, String> {
        d.parts().check()?;
        let types = match d.types {
            Some(t) => Some(TypeClassifier {
                gbt: Gbt::try_from(t.gbt)?,
                classes: t.classes,
                negative: t.negative,
            }),
            None => None,
        };
        Ok(Ensemble {
            n_features: d.n_features,
            iforest: IsolationForest::try_from(d.iforest)?,
            gbt: Gbt::try_from(d.gbt)?,
            fusion: d.fusion,
            members: d
                .members
                .into_iter()
                .map(Gbt::try_from)
                .collect::<Result<_, _>>()?,
            types,
            sequence: d.sequence,
            threshold: d.threshold,
        })
    }
}

/// Where the training data came from and how the rows were used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingInfo {
    pub data_file: String,
    pub data_sha256: String,
    pub rows: u64,
    pub train_rows: u64,
    pub test_rows: u64,
    pub config: TrainConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub format_version: u32,
    pub created_by: String,
    pub feature_set: FeatureSet,
    pub schema_hash: String,
    pub feature_names: Vec<String>,
    pub labels: LabelSpec,
    /// Whether the training CSV had a header row (headerless columns are `c1`, `c2`, …).
    pub has_header: bool,
    /// The column naming each row's entity, for the sequence model.
    #[serde(default)]
    pub entity_column: Option<String>,
    pub training: TrainingInfo,
    /// Held-out test metrics.
    pub metrics: EvalReport,
    /// k-fold cross-validation of the same configuration, when it was run.
    #[serde(default)]
    pub cross_validation: Option<CvReport>,
    pub weights_file: String,
    pub weights_sha256: String,
    /// The training distribution that live drift is measured against (absent in files
    /// written before drift existed).
    #[serde(default)]
    pub reference: Option<DriftReference>,
    /// The stored training sample retraining starts from (absent in older files).
    #[serde(default)]
    pub sample: Option<SampleFile>,
    /// Where a retrained model came from (absent for a model trained from a data file).
    #[serde(default)]
    pub lineage: Option<Lineage>,
}

/// The training sample's file beside the weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleFile {
    pub file: String,
    pub sha256: String,
    pub rows: u64,
}

/// A loaded or freshly trained model: manifest plus ensemble, and the training sample
/// when the model keeps one.
#[derive(Debug, Clone)]
pub struct Model {
    pub manifest: Manifest,
    pub ensemble: Ensemble,
    pub sample: Option<TrainingSample>,
}

#[derive(Deserialize)]
struct VersionProbe {
    format: Option<String>,
    format_version: Option<u32>,
}

/// A model's encoded parts, as files and bundles hold them.
pub(crate) struct Encoded {
    pub manifest: Vec<u8>,
    pub weights: Vec<u8>,
    pub sample: Option<Vec<u8>>,
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Model {
    /// Assembles a model; the schema hash and feature names come from `feature_set`.
    pub fn new(
        feature_set: FeatureSet,
        labels: LabelSpec,
        has_header: bool,
        training: TrainingInfo,
        metrics: EvalReport,
        ensemble: Ensemble,
    ) -> Self {
        Model {
            manifest: Manifest {
                format: FORMAT.into(),
                format_version: FORMAT_VERSION,
                created_by: format!("antibody-ml {}", env!("CARGO_PKG_VERSION")),
                schema_hash: feature_set.schema_hash(),
                feature_names: feature_set.feature_names(),
                feature_set,
                labels,
                has_header,
                entity_column: None,
                training,
                metrics,
                cross_validation: None,
                weights_file: WEIGHTS_FILE.into(),
                weights_sha256: String::new(),
                reference: None,
                sample: None,
                lineage: None,
            },
            ensemble,
            sample: None,
        }
    }

    pub fn type_classes(&self) -> &[String] {
        self.ensemble
            .types
            .as_ref()
            .map_or(&[][..], |t| t.classes.as_slice())
    }

    /// Records the training data's drift reference and keeps a stratified sample of its
    /// labelled rows (at most [`MAX_SAMPLE_ROWS`], drawn with `seed`) for retraining.
    ///
    /// The reference is fitted on the benign rows when there are at least
    /// [`MIN_REFERENCE_ROWS`] of them: live traffic is overwhelmingly benign, and a reference
    /// with the training set's share of attacks (a third of the Optikal file) would report
    /// the class mix as drift on every threat-revealing feature.
    pub fn set_training_data(&mut self, ds: &Dataset, seed: u64) {
        let benign: Vec<usize> = (0..ds.n_rows())
            .filter(|&i| ds.y.get(i) == Some(&0))
            .collect();
        let names = &self.manifest.feature_names;
        let reference = if benign.len() >= MIN_REFERENCE_ROWS {
            let mut r = DriftReference::fit(&ds.subset(&benign).x, ds.n_features, names);
            r.benign_only = true;
            r
        } else {
            DriftReference::fit(&ds.x, ds.n_features, names)
        };
        self.manifest.reference = Some(reference);
        self.sample = TrainingSample::from_dataset(ds, MAX_SAMPLE_ROWS, seed);
    }

    /// Encodes the weights and sample and records their hashes in the manifest.
    pub(crate) fn encode(&mut self) -> Result<Encoded, String> {
        let weights =
            postcard::to_stdvec(&self.ensemble).map_err(|e| format!("cannot encode: {e}"))?;
        self.manifest.weights_file = WEIGHTS_FILE.into();
        self.manifest.weights_sha256 = sha256_hex(&weights);
        let sample = match &self.sample {
            Some(s) => {
                let bytes = postcard::to_stdvec(s).map_err(|e| format!("cannot encode: {e}"))?;
                self.manifest.sample = Some(SampleFile {
                    file: SAMPLE_FILE.into(),
                    sha256: sha256_hex(&bytes),
                    rows: s.n_rows() as u64,
                });
                Some(bytes)
            }
            None => {
                self.manifest.sample = None;
                None
            }
        };
        let manifest = serde_json::to_vec_pretty(&self.manifest)
            .map_err(|e| format!("cannot encode the manifest: {e}"))?;
        Ok(Encoded {
            manifest,
            weights,
            sample,
        })
    }

    /// Writes `model.bin`, `sample.bin` (when there is a sample) and `model.json` into
    /// `dir` (created if needed); the manifest last, so it never names missing files.
    pub fn save(&mut self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| MlError::io(dir, e))?;
        let enc = self.encode().map_err(|message| MlError::ModelFile {
            path: dir.to_path_buf(),
            message,
        })?;
        let write = |name: &str, bytes: &[u8]| {
            let path = dir.join(name);
            std::fs::write(&path, bytes).map_err(|e| MlError::io(&path, e))
        };
        write(WEIGHTS_FILE, &enc.weights)?;
        if let Some(sample) = &enc.sample {
            write(SAMPLE_FILE, sample)?;
        }
        write(MANIFEST_FILE, &enc.manifest)
    }

    /// Loads and checks a model directory.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(MANIFEST_FILE);
        let text = std::fs::read(&path).map_err(|e| MlError::io(&path, e))?;
        let manifest = parse_manifest(&text, &|message| MlError::ModelFile {
            path: path.clone(),
            message,
        })?;
        let read = |name: &str| {
            // The manifest names files inside the model directory, never paths elsewhere.
            let path = dir.join(Path::new(name).file_name().unwrap_or_default());
            let bytes = std::fs::read(&path).map_err(|e| MlError::io(&path, e))?;
            Ok::<_, MlError>((bytes, path))
        };
        let (weights, path) = read(&manifest.weights_file)?;
        let ensemble = decode_weights(&weights, &manifest)
            .map_err(|message| MlError::ModelFile { path, message })?;
        let sample = match &manifest.sample {
            Some(info) => {
                let (bytes, path) = read(&info.file)?;
                Some(
                    decode_sample(&bytes, info, &manifest)
                        .map_err(|message| MlError::ModelFile { path, message })?,
                )
            }
            None => None,
        };
        Ok(Model {
            manifest,
            ensemble,
            sample,
        })
    }
}

/// Checks a manifest's format, version and schema hash; `bad` wraps other refusals.
pub(crate) fn parse_manifest(text: &[u8], bad: &dyn Fn(String) -> MlError) -> Result<Manifest> {
    let probe: VersionProbe =
        serde_json::from_slice(text).map_err(|e| bad(format!("not a model manifest: {e}")))?;
    if probe.format.as_deref() != Some(FORMAT) {
        return Err(bad(format!("not an {FORMAT} manifest")));
    }
    let found = probe.format_version.unwrap_or(0);
    if found != FORMAT_VERSION {
        return Err(MlError::FormatVersion {
            found,
            supported: FORMAT_VERSION,
        });
    }
    let manifest: Manifest =
        serde_json::from_slice(text).map_err(|e| bad(format!("invalid manifest: {e}")))?;
    // Before hashing, which lists every feature's name.
    let n = manifest.feature_set.n_features();
    if !(1..=MAX_FEATURES).contains(&n) {
        return Err(bad(format!(
            "the feature set makes {n} features, not 1 to {MAX_FEATURES} (MAX_FEATURES)"
        )));
    }
    let computed = manifest.feature_set.schema_hash();
    if computed != manifest.schema_hash {
        return Err(MlError::SchemaMismatch {
            expected: manifest.schema_hash.clone(),
            found: computed,
            context: "this build's feature code".into(),
        });
    }
    if manifest
        .reference
        .as_ref()
        .is_some_and(|r| r.n_features() != n)
    {
        return Err(bad(format!(
            "the drift reference does not cover the {n} features"
        )));
    }
    Ok(manifest)
}

/// Checks the weights against the manifest's hash and feature set, then decodes them.
pub(crate) fn decode_weights(bytes: &[u8], manifest: &Manifest) -> Result<Ensemble, String> {
    if sha256_hex(bytes) != manifest.weights_sha256 {
        return Err(
            "SHA-256 differs from the manifest's weights_sha256 (corrupt or replaced)".into(),
        );
    }
    // Decoded as stored and checked before it is compiled; see `EnsembleDef`.
    let stored: EnsembleDef =
        postcard::from_bytes(bytes).map_err(|e| format!("cannot decode: {e}"))?;
    let ensemble = Ensemble::try_from(stored)?;
    let n = manifest.feature_set.n_features();
    if ensemble.n_features != n {
        return Err(format!(
            "the weights read {} features, the feature set makes {n}",
            ensemble.n_features
        ));
    }
    Ok(ensemble)
}

/// Checks the sample against its recorded hash and the model's features, then decodes it.
pub(crate) fn decode_sample(
    bytes: &[u8],
    info: &SampleFile,
    manifest: &Manifest,
) -> Result<TrainingSample, String> {
    if sha256_hex(bytes) != info.sha256 {
        return Err(
            "SHA-256 differs from the manifest's sample sha256 (corrupt or replaced)".into(),
        );
    }
    let sample: TrainingSample =
        postcard::from_bytes(bytes).map_err(|e| format!("cannot decode the sample: {e}"))?;
    sample.validate(manifest.feature_set.n_features())?;
    Ok(sample)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::data::DEFAULT_NEGATIVES;
    use crate::features::AgentBehavior;
    use crate::train::tests::{generated, quick};
    use crate::train::{train, NoProgress};
    use crate::tree::tests::chain;
    use crate::tree::{Node, MAX_TREES};

    /// A small trained model, trained once per test run and cloned.
    pub(crate) fn trained() -> Model {
        static MODEL: std::sync::OnceLock<Model> = std::sync::OnceLock::new();
        MODEL.get_or_init(train_small).clone()
    }

    fn train_small() -> Model {
        let ds = generated(600, 21);
        let t = train(&ds, &quick(), &mut NoProgress).unwrap();
        let info = TrainingInfo {
            data_file: "gen.csv".into(),
            data_sha256: "00".repeat(32),
            rows: 600,
            train_rows: t.train_rows as u64,
            test_rows: t.test_rows as u64,
            config: quick(),
        };
        let labels = LabelSpec {
            label: "is_threat".into(),
            negatives: DEFAULT_NEGATIVES.iter().map(|s| s.to_string()).collect(),
            type_column: Some("threat_type".into()),
        };
        Model::new(
            FeatureSet::AgentBehavior(AgentBehavior::default()),
            labels,
            true,
            info,
            t.report,
            t.ensemble,
        )
    }

    /// [`trained`] with its drift reference and training sample.
    pub(crate) fn trained_with_data() -> Model {
        let mut m = trained();
        m.set_training_data(&generated(600, 21), 21);
        m
    }

    /// A small tabular model (3 features), for feature-count mismatches.
    pub(crate) fn trained_tabular() -> Model {
        let mut csv = String::from("size,proto,label\n");
        for i in 0..200 {
            let proto = ["tcp", "udp"][i % 2];
            csv.push_str(&format!("{},{proto},{}\n", i % 50, u8::from(i % 50 > 40)));
        }
        let table = crate::data::RawTable::from_reader(csv.as_bytes(), true).unwrap();
        let set = FeatureSet::for_table("tabular", &table, &["label".into()]).unwrap();
        let labels = LabelSpec {
            label: "label".into(),
            negatives: DEFAULT_NEGATIVES.iter().map(|s| s.to_string()).collect(),
            type_column: None,
        };
        let ds = Dataset::from_table(&table, &set, Some(&labels)).unwrap();
        let cfg = TrainConfig {
            types: None,
            sequence: None,
            ..quick()
        };
        let t = train(&ds, &cfg, &mut NoProgress).unwrap();
        let info = TrainingInfo {
            data_file: "t.csv".into(),
            data_sha256: "00".repeat(32),
            rows: 200,
            train_rows: t.train_rows as u64,
            test_rows: t.test_rows as u64,
            config: cfg,
        };
        let mut m = Model::new(set, labels, true, info, t.report, t.ensemble);
        m.set_training_data(&ds, 1);
        m
    }

    #[test]
    fn training_data_adds_a_benign_reference_and_a_bounded_sample() {
        let ds = generated(600, 21);
        let m = trained_with_data();
        let r = m.manifest.reference.as_ref().unwrap();
        assert!(r.benign_only);
        assert_eq!(r.rows, ds.y.iter().filter(|&&y| y == 0).count() as u64);
        assert_eq!(r.n_features(), 18);
        assert_eq!(r.features[0].name, "api_calls_per_min");
        let sample = m.sample.as_ref().unwrap();
        assert_eq!(sample.n_rows(), 600);
        let mut big = generated(600, 21);
        let x = big.x.clone();
        for _ in 0..9 {
            big.x.extend_from_slice(&x);
            big.y.extend_from_within(..600);
            big.types.extend_from_within(..600);
            big.lines.extend_from_within(..600);
        }
        let mut m = trained();
        m.set_training_data(&big, 1);
        assert_eq!(m.sample.unwrap().n_rows(), MAX_SAMPLE_ROWS);
        // Too few benign rows: the reference covers every row.
        let mut few = generated(600, 21);
        few.y.iter_mut().for_each(|y| *y = 1);
        let mut m = trained();
        m.set_training_data(&few, 1);
        assert!(!m.manifest.reference.unwrap().benign_only);
    }

    #[test]
    fn sample_and_reference_survive_a_directory_and_older_files_still_load() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = trained_with_data();
        m.save(dir.path()).unwrap();
        let back = Model::load(dir.path()).unwrap();
        assert_eq!(back.manifest, m.manifest);
        assert_eq!(back.sample, m.sample);
        assert_eq!(back.manifest.sample.as_ref().unwrap().rows, 600);

        let sample = dir.path().join(SAMPLE_FILE);
        let mut bytes = std::fs::read(&sample).unwrap();
        bytes[3] ^= 0xff;
        std::fs::write(&sample, bytes).unwrap();
        let err = Model::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("sample") && err.contains("SHA-256"), "{err}");

        // A manifest from before drift and samples: no such keys at all.
        edit_manifest(dir.path(), |v| {
            let o = v.as_object_mut().unwrap();
            for key in ["reference", "sample", "lineage"] {
                o.remove(key);
            }
        });
        let old = Model::load(dir.path()).unwrap();
        assert!(old.manifest.reference.is_none() && old.sample.is_none());

        edit_manifest(dir.path(), |v| {
            v["reference"] = serde_json::to_value(&m.manifest.reference).unwrap();
            v["reference"]["features"].as_array_mut().unwrap().pop();
        });
        let err = Model::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("drift reference"), "{err}");
    }

    fn edit_manifest(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
        let path = dir.join(MANIFEST_FILE);
        let mut v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        edit(&mut v);
        std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
    }

    #[test]
    fn save_load_round_trip_and_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = trained();
        m.save(dir.path()).unwrap();
        let back = Model::load(dir.path()).unwrap();
        assert_eq!(back.manifest, m.manifest);
        let ds = generated(50, 3);
        for i in 0..ds.n_rows() {
            assert_eq!(
                back.ensemble.score_row(ds.row(i)),
                m.ensemble.score_row(ds.row(i))
            );
        }
        edit_manifest(dir.path(), |v| v["format_version"] = 99.into());
        let err = Model::load(dir.path()).unwrap_err();
        assert!(
            matches!(err, MlError::FormatVersion { found: 99, .. }),
            "{err}"
        );

        edit_manifest(dir.path(), |v| {
            v["format_version"] = FORMAT_VERSION.into();
            v["feature_set"]["window_minutes"] = 5.0.into();
        });
        let err = Model::load(dir.path()).unwrap_err();
        assert!(matches!(err, MlError::SchemaMismatch { .. }), "{err}");

        m.save(dir.path()).unwrap();
        let bin = dir.path().join(WEIGHTS_FILE);
        let mut bytes = std::fs::read(&bin).unwrap();
        bytes[10] ^= 0xff;
        std::fs::write(&bin, bytes).unwrap();
        let err = Model::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("SHA-256"), "{err}");
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_manifests_are_refused_without_panicking(text in "\\PC{0,300}") {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join(MANIFEST_FILE), &text).unwrap();
            proptest::prop_assert!(Model::load(dir.path()).is_err());
        }
    }

    #[test]
    fn parts_that_scoring_would_index_out_of_bounds_are_refused() {
        let e = trained().ensemble;
        let types = e.types.clone().unwrap();
        e.validate().unwrap();
        let refused = |edit: &dyn Fn(&mut Ensemble)| {
            let mut bad = e.clone();
            edit(&mut bad);
            bad.validate().unwrap_err()
        };
        // Scoring a batch with a multi-class detector or member wrote past its margins.
        assert!(refused(&|b| b.gbt = types.gbt.clone()).contains("one output"));
        assert!(refused(&|b| b.members[1] = types.gbt.clone()).contains("one output"));
        // A one-class type classifier was read as binary: explaining wrote two probabilities.
        let e1 = refused(&|b| {
            let t = b.types.as_mut().unwrap();
            t.gbt = e.gbt.clone();
            t.classes.truncate(1);
        });
        assert!(e1.contains("MAX_TYPES"), "{e1}");
        assert!(refused(&|b| {
            b.fusion.mean.pop();
        })
        .contains("fusion"));
        assert!(refused(&|b| b.n_features = MAX_FEATURES + 1).contains("MAX_FEATURES"));
        assert!(refused(&|b| b.members = vec![e.gbt.clone(); 17]).contains("MAX_MEMBERS"));
    }

    /// A complete tree of `depth` levels in heap order, level `l` splitting on `l % features`.
    fn complete(depth: usize, features: usize) -> Tree {
        let internal = (1usize << depth) - 1;
        let nodes = (0..2 * internal + 1)
            .map(|i| {
                if i >= internal {
                    return Node::leaf(1.0, 1.0);
                }
                let level = (i + 1).ilog2() as usize;
                Node {
                    feature: (level % features) as u32,
                    threshold: 0.0,
                    left: (2 * i + 1) as u32,
                    right: (2 * i + 2) as u32,
                    value: 0.0,
                    cover: 1.0,
                }
            })
            .collect();
        Tree { nodes }
    }

    /// The trained ensemble's checks and costs with its detector and members replaced.
    fn cost_with(detector: &[Vec<Tree>], members: &[&[Vec<Tree>]]) -> Result<ModelCost, String> {
        let e = trained().ensemble;
        let mut parts = e.parts();
        parts.gbt = Booster::new(e.n_features, detector);
        parts.members = members
            .iter()
            .map(|m| Booster::new(e.n_features, m))
            .collect();
        parts.check()
    }

    #[test]
    fn trees_above_each_cost_cap_are_refused_by_name() {
        let err = |d: &[Vec<Tree>], m: &[&[Vec<Tree>]]| cost_with(d, m).unwrap_err();
        let trained_detector = trained().ensemble.gbt.trees;
        assert!(cost_with(&trained_detector, &[]).is_ok());
        // Four forests of 10,000 one-split trees: 80 k steps in 80 k slots.
        let stumps = vec![vec![complete(1, 1); MAX_TREES]];
        let e = err(&stumps, &[&stumps[..]; 3]);
        assert!(e.contains("MAX_ROW_STEPS"), "{e}");
        // One chain pads 29 single leaves to depth 15 in each of three forests: 2.9 M slots.
        let mut padded = vec![
            Tree {
                nodes: vec![Node::leaf(0.0, 1.0)]
            };
            29
        ];
        padded.push(chain(15));
        let padded = vec![padded];
        let e = err(&padded, &[&padded, &padded]);
        assert!(e.contains("MAX_COMPILED_SLOTS"), "{e}");
        // Full depth-6 trees over six features tabulate 64 leaves × 2⁶ × 6 values each.
        let full = vec![vec![complete(6, 6); 180]];
        let e = err(&trained_detector, &[&full, &full]);
        assert!(e.contains("MAX_SHAP_TABLE_VALUES"), "{e}");
        // Chains over seven features are walked: 267 units each.
        let chains = vec![vec![chain(7); 250]];
        assert_eq!(shap_cost(&chains[0][0]).row_work, 267);
        let e = err(&chains, &[]);
        assert!(e.contains("MAX_EXPLAIN_WORK"), "{e}");
        let e = err(&trained_detector, &[&trained_detector[..]; 17]);
        assert!(e.contains("MAX_MEMBERS"), "{e}");
    }

    /// The trained ensemble in its stored form, to forge model files from.
    fn stored() -> EnsembleDef {
        let e = trained().ensemble;
        EnsembleDef {
            n_features: e.n_features,
            iforest: e.iforest.into(),
            gbt: e.gbt.into(),
            fusion: e.fusion,
            members: e.members.into_iter().map(Into::into).collect(),
            types: e.types.map(|t| TypesDef {
                gbt: t.gbt.into(),
                classes: t.classes,
                negative: t.negative,
            }),
            sequence: e.sequence,
            threshold: e.threshold,
        }
    }

    /// Decodes a stored ensemble as model files are read.
    fn decode(def: &EnsembleDef) -> Result<Ensemble, String> {
        let bytes = postcard::to_stdvec(def).unwrap();
        let mut manifest = trained().manifest;
        manifest.weights_sha256 = sha256_hex(&bytes);
        decode_weights(&bytes, &manifest)
    }

    #[test]
    fn the_stored_form_is_the_ensembles_encoding() {
        let e = trained().ensemble;
        assert_eq!(
            postcard::to_stdvec(&stored()).unwrap(),
            postcard::to_stdvec(&e).unwrap()
        );
        let back = decode(&stored()).unwrap();
        let x = generated(5, 1);
        assert_eq!(back.score_row(x.row(0)), e.score_row(x.row(0)));
    }

    #[test]
    fn a_file_claiming_gigabytes_of_compiled_trees_is_refused_before_compiling() {
        // Per type output, 15 leaves padded to depth 16 by one chain: 1 M slots, which one
        // forest alone may take. 64 such outputs would compile to ~770 MB.
        let mut padded = vec![
            Tree {
                nodes: vec![Node::leaf(0.0, 1.0)]
            };
            15
        ];
        padded.push(chain(16));
        let mut def = stored();
        def.types = Some(TypesDef {
            gbt: GbtDef {
                n_features: def.n_features,
                base: vec![0.0; MAX_TYPES],
                trees: vec![padded; MAX_TYPES],
            },
            classes: (0..MAX_TYPES).map(|k| format!("t{k}")).collect(),
            negative: None,
        });
        let e = decode(&def).unwrap_err();
        assert!(e.contains("MAX_COMPILED_SLOTS"), "{e}");
        // Decoding through serde directly checks the same (without the message).
        let bytes = postcard::to_stdvec(&def).unwrap();
        assert!(postcard::from_bytes::<Ensemble>(&bytes).is_err());
    }

    #[test]
    fn default_training_stays_far_below_every_cap() {
        let ds = generated(800, 5);
        let e =
            crate::train::fit(&ds, &TrainConfig::default(), &mut crate::train::NoProgress).unwrap();
        let c = e.parts().check().unwrap();
        assert!(e.types.as_ref().unwrap().classes.len() >= 6);
        assert!(c.slots < MAX_COMPILED_SLOTS / 4, "{c:?}");
        assert!(c.steps < MAX_ROW_STEPS / 4, "{c:?}");
        assert!(c.table_values < MAX_SHAP_TABLE_VALUES / 4, "{c:?}");
        assert!(c.explain_work < MAX_EXPLAIN_WORK / 4, "{c:?}");
    }

    #[test]
    fn the_defaults_fit_the_explaining_caps_with_every_tree_full_and_every_type_class() {
        // A complete tree of the default depth whose every path splits on distinct features:
        // the most a tree of that depth can cost TreeSHAP.
        let depth = TrainConfig::default().gbt.max_depth;
        let full = crate::shap::shap_cost(&complete(depth, depth));
        assert_eq!(full.table_values, 1024);
        let cfg = TrainConfig::default();
        let types = cfg.types.as_ref().unwrap();
        let trees = (1 + cfg.folds) * cfg.gbt.rounds + MAX_TYPES * types.rounds;
        assert!(trees * full.table_values <= MAX_SHAP_TABLE_VALUES);
        assert!((cfg.gbt.rounds + types.rounds) * full.row_work <= MAX_EXPLAIN_WORK);
    }

    #[test]
    fn explanations_add_up() {
        let m = trained();
        let ds = generated(40, 8);
        let mut scratch = ShapScratch::default();
        for i in 0..ds.n_rows() {
            let e = m.ensemble.explain(ds.row(i), &mut scratch);
            let total = e.margin_base + e.margin_shap.iter().sum::<f64>();
            assert!((total - e.score.margin as f64).abs() < 1e-3, "row {i}");
            let anomaly: f64 = e.anomaly_contrib.iter().sum();
            assert!((anomaly - e.score.anomaly as f64).abs() < 1e-4);
            assert_eq!(e.type_probabilities.len(), m.type_classes().len());
        }
    }
}
