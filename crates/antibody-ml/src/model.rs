//! The trained ensemble, its scoring and explanation API, and its on-disk form.
//!
//! [`Ensemble`] is pure and deterministic: [`Ensemble::score_batch`] maps feature rows
//! (row-major `f32`, as a [`FeatureSet`] extracts them) to [`Score`]s, and
//! [`Ensemble::explain`] adds per-feature attributions on demand. A detector wraps it.
//!
//! A model is a directory: `model.json`, a self-describing manifest (format version, feature
//! set with its schema hash, labels, training-data SHA-256, training configuration and
//! held-out metrics), and `model.bin`, the trees and weights in postcard, whose SHA-256 the
//! manifest records. Loading refuses another format version, a feature schema this build
//! computes differently, or weights that do not match their hash.

use crate::data::LabelSpec;
use crate::error::{MlError, Result};
use crate::features::FeatureSet;
use crate::fusion::Logistic;
use crate::gbt::{softmax_in_place, Gbt};
use crate::iforest::IsolationForest;
use crate::seq::SequenceModel;
use crate::shap::ShapScratch;
use crate::train::{CvReport, EvalReport, TrainConfig};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::Path;

pub const FORMAT: &str = "antibody-ml-model";
pub const FORMAT_VERSION: u32 = 2;
pub const MANIFEST_FILE: &str = "model.json";
pub const WEIGHTS_FILE: &str = "model.bin";
/// Threat-type classes a model may have (rarer types are merged into `other` in training).
pub const MAX_TYPES: usize = 64;
/// Fold members an ensemble may have.
pub const MAX_MEMBERS: usize = 16;
/// `Score::threat_type` when there is no type classifier.
pub const NO_TYPE: u16 = u16::MAX;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TypeClassifier {
    pub gbt: Gbt,
    pub classes: Vec<String>,
    /// The benign class (never reported as a threat type).
    pub negative: Option<u16>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
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
    /// Validates that every part reads rows of the same width.
    pub fn validate(&self) -> Result<(), String> {
        let n = self.n_features;
        let widths = [self.iforest.n_features, self.gbt.n_features];
        if widths.iter().any(|&w| w != n) || self.members.iter().any(|m| m.n_features != n) {
            return Err("parts of the ensemble disagree on the feature count".into());
        }
        if self.fusion.dim() != 2 || self.members.len() > MAX_MEMBERS {
            return Err("the fusion expects two inputs and at most 16 members".into());
        }
        if let Some(s) = &self.sequence {
            s.validate()?;
            if s.n_features != n {
                return Err("the sequence model reads another feature count".into());
            }
        }
        if let Some(t) = &self.types {
            if t.gbt.n_features != n
                || t.classes.len() != t.gbt.n_outputs()
                || t.classes.len() > MAX_TYPES
            {
                return Err("the type classifier does not match its classes".into());
            }
        }
        Ok(())
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
}

/// A loaded or freshly trained model: manifest plus ensemble.
#[derive(Debug, Clone)]
pub struct Model {
    pub manifest: Manifest,
    pub ensemble: Ensemble,
}

#[derive(Deserialize)]
struct VersionProbe {
    format: Option<String>,
    format_version: Option<u32>,
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
            },
            ensemble,
        }
    }

    pub fn type_classes(&self) -> &[String] {
        self.ensemble
            .types
            .as_ref()
            .map_or(&[][..], |t| t.classes.as_slice())
    }

    /// Writes `model.bin` and `model.json` into `dir` (created if needed).
    pub fn save(&mut self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| MlError::io(dir, e))?;
        let weights = postcard::to_stdvec(&self.ensemble).map_err(|e| MlError::ModelFile {
            path: dir.join(WEIGHTS_FILE),
            message: format!("cannot encode: {e}"),
        })?;
        self.manifest.weights_file = WEIGHTS_FILE.into();
        self.manifest.weights_sha256 = hex::encode(Sha256::digest(&weights));
        let path = dir.join(WEIGHTS_FILE);
        std::fs::write(&path, &weights).map_err(|e| MlError::io(&path, e))?;
        let json = serde_json::to_vec_pretty(&self.manifest).map_err(|e| MlError::ModelFile {
            path: dir.join(MANIFEST_FILE),
            message: format!("cannot encode: {e}"),
        })?;
        let path = dir.join(MANIFEST_FILE);
        std::fs::write(&path, json).map_err(|e| MlError::io(&path, e))
    }

    /// Loads and checks a model directory.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(MANIFEST_FILE);
        let text = std::fs::read(&path).map_err(|e| MlError::io(&path, e))?;
        let bad = |message: String| MlError::ModelFile {
            path: path.clone(),
            message,
        };
        let probe: VersionProbe =
            serde_json::from_slice(&text).map_err(|e| bad(format!("not a model manifest: {e}")))?;
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
            serde_json::from_slice(&text).map_err(|e| bad(format!("invalid manifest: {e}")))?;
        let computed = manifest.feature_set.schema_hash();
        if computed != manifest.schema_hash {
            return Err(MlError::SchemaMismatch {
                expected: manifest.schema_hash.clone(),
                found: computed,
                context: "this build's feature code".into(),
            });
        }
        let ensemble = read_weights(dir, &manifest)?;
        if ensemble.n_features != manifest.feature_set.n_features() {
            return Err(bad(format!(
                "the weights read {} features, the feature set makes {}",
                ensemble.n_features,
                manifest.feature_set.n_features()
            )));
        }
        Ok(Model { manifest, ensemble })
    }

    /// Refuses to serve rows of another schema (e.g. a detector configured for one).
    pub fn ensure_schema(&self, schema_hash: &str, context: &str) -> Result<()> {
        if self.manifest.schema_hash == schema_hash {
            return Ok(());
        }
        Err(MlError::SchemaMismatch {
            expected: self.manifest.schema_hash.clone(),
            found: schema_hash.into(),
            context: context.into(),
        })
    }
}

fn read_weights(dir: &Path, manifest: &Manifest) -> Result<Ensemble> {
    // The manifest names a file inside the model directory, never a path elsewhere.
    let name = Path::new(&manifest.weights_file)
        .file_name()
        .unwrap_or_default();
    let path = dir.join(name);
    let bytes = std::fs::read(&path).map_err(|e| MlError::io(&path, e))?;
    let bad = |message: String| MlError::ModelFile {
        path: path.clone(),
        message,
    };
    if hex::encode(Sha256::digest(&bytes)) != manifest.weights_sha256 {
        return Err(bad(
            "SHA-256 differs from the manifest's weights_sha256 (corrupt or replaced)".into(),
        ));
    }
    let ensemble: Ensemble =
        postcard::from_bytes(&bytes).map_err(|e| bad(format!("cannot decode: {e}")))?;
    ensemble.validate().map_err(bad)?;
    Ok(ensemble)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::DEFAULT_NEGATIVES;
    use crate::features::AgentBehavior;
    use crate::train::tests::{generated, quick};
    use crate::train::{train, NoProgress};

    fn trained() -> Model {
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
        assert!(back.ensure_schema(&m.manifest.schema_hash, "test").is_ok());
        let err = back
            .ensure_schema("abc", "the detector config")
            .unwrap_err();
        assert!(err.to_string().contains("the detector config"), "{err}");

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
