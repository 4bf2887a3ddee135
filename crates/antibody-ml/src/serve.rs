//! Serving: the one interface the engine scores any model through, whether it is a trained
//! [`Model`] (wrapped in [`ServedModel`]) or a model of another format (the `antibody-onnx`
//! crate implements [`Scorer`] for uploaded ONNX graphs).
//!
//! The engine maps event fields onto [`Scorer::input_columns`], calls [`Scorer::extract`]
//! into a reused row buffer, scores the rows of a batch at once, and asks for
//! [`Scorer::contributions`] only for the rows it reports.

use crate::features::{FieldError, RawRow};
use crate::model::{Model, NO_TYPE};
use crate::shap::ShapScratch;

/// A model's verdict on one row, in a form common to every model format.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Prediction {
    /// Probability (or a calibrated score) that the row is a threat, in [0, 1].
    pub score: f32,
    /// Spread of the model's own estimate, in [0, 1]; 0 when the model has no measure.
    pub uncertainty: f32,
    /// Most likely threat type, see [`Scorer::class_name`]; [`NO_TYPE`] when unknown.
    pub threat_type: u16,
    /// Probability of that type given a threat.
    pub type_confidence: f32,
}

/// A model the engine can run as a detector. Implementations are pure: the same rows give
/// the same predictions, and nothing reads the clock or does I/O.
pub trait Scorer: Send + Sync + std::fmt::Debug {
    /// The model format, e.g. `ensemble` or `onnx`.
    fn format(&self) -> &'static str;
    /// The raw inputs a binding maps event fields onto, in [`RawRow::field`] order.
    fn input_columns(&self) -> &[String];
    /// The names of the features [`Scorer::extract`] writes, in order.
    fn feature_names(&self) -> &[String];
    /// Writes one raw row's features into `out` (`out.len() == feature_names().len()`).
    fn extract(&self, row: &dyn RawRow, out: &mut [f32]) -> Result<(), FieldError>;
    /// The score at or above which a row is reported as a threat.
    fn threshold(&self) -> f32;
    /// Scores row-major `rows` (`feature_names().len()` per row), one prediction per row.
    fn score_batch(&self, rows: &[f32], out: &mut [Prediction]);
    /// Signed per-feature contributions to one row's score (`out.len()` = features).
    fn contributions(&self, row: &[f32], out: &mut [f64]);
    /// The name of threat type `t`, if the model classifies types.
    fn class_name(&self, t: u16) -> Option<&str> {
        let _ = t;
        None
    }
    /// The training distribution drift is measured against, if the model carries one.
    fn drift_reference(&self) -> Option<&crate::drift::DriftReference> {
        None
    }
    /// Rows of an entity's history the model's sequence part reads (its newest rows,
    /// oldest first); 0 when the model has none.
    fn sequence_len(&self) -> usize {
        0
    }
    /// The sequence part's probability that the newest of `steps` (feature rows, oldest
    /// first) is a threat, with each step's attention weight written to `attention`
    /// (`attention.len() >= steps.len()`); `None` when the model has no sequence part.
    fn score_sequence(&self, steps: &[&[f32]], attention: &mut [f64]) -> Option<f32> {
        let _ = (steps, attention);
        None
    }
}

/// Rows scored this far below the threshold skip the fold members and the type classifier.
pub const FULL_SCORE_BAND: f32 = 0.3;

/// A trained ensemble ready to serve, with its column lists computed once.
#[derive(Debug)]
pub struct ServedModel {
    model: Model,
    inputs: Vec<String>,
    features: Vec<String>,
}

impl ServedModel {
    pub fn new(model: Model) -> Self {
        let inputs = model.manifest.feature_set.input_columns();
        let features = model.manifest.feature_set.feature_names();
        Self {
            model,
            inputs,
            features,
        }
    }

    pub fn model(&self) -> &Model {
        &self.model
    }
}

impl Scorer for ServedModel {
    fn format(&self) -> &'static str {
        "ensemble"
    }

    fn input_columns(&self) -> &[String] {
        &self.inputs
    }

    fn feature_names(&self) -> &[String] {
        &self.features
    }

    fn extract(&self, row: &dyn RawRow, out: &mut [f32]) -> Result<(), FieldError> {
        self.model.manifest.feature_set.extract(row, out)
    }

    fn threshold(&self) -> f32 {
        self.model.ensemble.threshold as f32
    }

    /// Two stages: the detector and the isolation forest score the whole batch; only rows
    /// the fused probability puts within [`FULL_SCORE_BAND`] of the threshold or above get
    /// the fold members (uncertainty) and the type classifier, about 85 % of the ensemble's
    /// trees. Far below the threshold the verdict cannot change, so those rows report
    /// uncertainty 0 and no type: most live traffic is benign, and this is its fast path.
    fn score_batch(&self, rows: &[f32], out: &mut [Prediction]) {
        let e = &self.model.ensemble;
        let width = e.n_features.max(1);
        let n = out.len().min(rows.len() / width);
        let mut anomaly = vec![0f32; n];
        let mut margin = vec![0f32; n];
        e.iforest.score_batch(&rows[..n * width], &mut anomaly);
        e.gbt.margins_batch(&rows[..n * width], &mut margin);
        let floor = self.threshold() - FULL_SCORE_BAND;
        for (i, p) in out.iter_mut().take(n).enumerate() {
            let score =
                e.fusion
                    .predict(&[f64::from(margin[i]), f64::from(anomaly[i])]) as f32;
            *p = if score >= floor {
                let s = e.score_row(&rows[i * width..(i + 1) * width]);
                Prediction {
                    score: s.probability,
                    uncertainty: s.uncertainty,
                    threat_type: s.threat_type,
                    type_confidence: s.type_confidence,
                }
            } else {
                Prediction {
                    score,
                    uncertainty: 0.0,
                    threat_type: NO_TYPE,
                    type_confidence: 0.0,
                }
            };
        }
    }

    /// TreeSHAP of the boosted trees' log-odds: the fused probability is monotone in it,
    /// so its attributions rank the features by how far they pushed the verdict.
    fn contributions(&self, row: &[f32], out: &mut [f64]) {
        out.fill(0.0);
        self.model
            .ensemble
            .gbt
            .shap(0, row, out, &mut ShapScratch::default());
    }

    fn class_name(&self, t: u16) -> Option<&str> {
        if t == NO_TYPE {
            return None;
        }
        self.model
            .type_classes()
            .get(usize::from(t))
            .map(String::as_str)
    }

    fn drift_reference(&self) -> Option<&crate::drift::DriftReference> {
        self.model.manifest.reference.as_ref()
    }

    fn sequence_len(&self) -> usize {
        self.model
            .ensemble
            .sequence
            .as_ref()
            .map_or(0, |s| s.window)
    }

    fn score_sequence(&self, steps: &[&[f32]], attention: &mut [f64]) -> Option<f32> {
        self.model
            .ensemble
            .score_window(steps, attention)
            .map(|p| p as f32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tests::trained;
    use crate::train::tests::generated;

    #[test]
    fn served_model_agrees_with_the_ensemble_and_explains_its_score() {
        let served = ServedModel::new(trained());
        let ds = generated(64, 5);
        let n = served.feature_names().len();
        let mut out = vec![Prediction::default(); ds.y.len()];
        served.score_batch(&ds.x, &mut out);
        let mut fast = 0;
        for (i, p) in out.iter().enumerate() {
            let row = &ds.x[i * n..(i + 1) * n];
            let s = served.model().ensemble.score_row(row);
            assert!((p.score - s.probability).abs() < 1e-5);
            if s.probability >= served.threshold() - FULL_SCORE_BAND {
                assert_eq!(p.threat_type, s.threat_type);
                assert_eq!(p.uncertainty, s.uncertainty);
            } else {
                fast += 1;
                assert_eq!((p.threat_type, p.uncertainty), (NO_TYPE, 0.0));
            }
            let mut phi = vec![0.0; n];
            served.contributions(row, &mut phi);
            let base = served.model().ensemble.gbt.expected_margin(0);
            let total: f64 = phi.iter().sum::<f64>() + base;
            assert!(
                (total - f64::from(s.margin)).abs() < 1e-3,
                "{total} vs {}",
                s.margin
            );
        }
        assert!(out.iter().any(|p| p.score >= served.threshold()));
        assert!(fast > 0, "benign rows take the fast path");
    }

    #[test]
    fn a_model_with_a_sequence_part_serves_it() {
        use crate::train::tests::{generated_with, quick};
        use crate::train::{train, NoProgress};
        let plain = ServedModel::new(trained());
        assert_eq!(plain.sequence_len(), 0);
        assert!(plain.score_sequence(&[], &mut []).is_none());
        let ds = generated_with(600, 4, true);
        let mut model = trained();
        model.ensemble = train(&ds, &quick(), &mut NoProgress).unwrap().ensemble;
        let served = ServedModel::new(model);
        assert_eq!(served.sequence_len(), 6);
        let steps: Vec<&[f32]> = (0..4).map(|i| ds.row(i)).collect();
        let (mut a, mut b) = ([0.0; 4], [0.0; 4]);
        let p = served.score_sequence(&steps, &mut a).unwrap();
        let q = served
            .model()
            .ensemble
            .score_window(&steps, &mut b)
            .unwrap();
        assert_eq!(f64::from(p), q as f32 as f64);
        assert_eq!(a, b);
    }

    struct Fields(&'static str);
    impl RawRow for Fields {
        fn field(&self, _: usize) -> &str {
            self.0
        }
    }

    #[test]
    fn extraction_reads_the_feature_sets_columns() {
        let served = ServedModel::new(trained());
        assert_eq!(served.input_columns().len(), 11);
        let mut out = vec![0f32; served.feature_names().len()];
        served.extract(&Fields("1"), &mut out).unwrap();
        assert!(out.iter().all(|v| v.is_finite()));
        assert!(served.extract(&Fields("x"), &mut out).is_err());
    }
}
