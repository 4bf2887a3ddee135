//! The training sample a model file carries so it can be retrained from analysts' labels
//! without the original data file: a bounded, stratified subset of the labelled rows.

use crate::data::Dataset;
use serde::{Deserialize, Serialize};

/// Rows a model keeps: enough for the ensemble to relearn the scenarios, small enough for a
/// model file (5,000 × 18 features is 360 kB).
pub const MAX_SAMPLE_ROWS: usize = 5_000;

/// Labelled feature rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingSample {
    pub n_features: usize,
    /// Row-major, `rows × n_features`.
    pub x: Vec<f32>,
    /// 1 = threat.
    pub y: Vec<u8>,
    /// Per row, an index into `type_names`.
    pub types: Vec<u16>,
    /// The labelled types of the training data, sorted.
    pub type_names: Vec<String>,
}

impl TrainingSample {
    /// Up to `max_rows` rows of a labelled dataset, stratified by type and drawn with `seed`;
    /// `None` when the dataset has no labels.
    pub fn from_dataset(ds: &Dataset, max_rows: usize, seed: u64) -> Option<TrainingSample> {
        if !ds.has_labels() {
            return None;
        }
        let picked = ds.subset(&ds.stratified_sample(max_rows, seed));
        Some(TrainingSample {
            n_features: picked.n_features,
            x: picked.x,
            y: picked.y,
            types: picked.types,
            type_names: picked.type_names,
        })
    }

    pub fn n_rows(&self) -> usize {
        self.y.len()
    }

    /// The rows as a dataset (no entities, so no sequence windows).
    pub fn to_dataset(&self) -> Dataset {
        Dataset {
            n_features: self.n_features,
            x: self.x.clone(),
            y: self.y.clone(),
            types: self.types.clone(),
            type_names: self.type_names.clone(),
            lines: (1..=self.n_rows() as u64).collect(),
            entities: Vec::new(),
        }
    }

    /// Checks the shapes a model file could have broken.
    pub fn validate(&self, n_features: usize) -> Result<(), String> {
        let rows = self.n_rows();
        if self.n_features != n_features {
            return Err(format!(
                "the training sample has {} features, the model {n_features}",
                self.n_features
            ));
        }
        if rows > MAX_SAMPLE_ROWS {
            return Err(format!(
                "the training sample has {rows} rows, above {MAX_SAMPLE_ROWS} (MAX_SAMPLE_ROWS)"
            ));
        }
        let shapes = rows.checked_mul(n_features) == Some(self.x.len())
            && self.types.len() == rows
            && self.y.iter().all(|&y| y <= 1)
            && self
                .types
                .iter()
                .all(|&t| usize::from(t) < self.type_names.len());
        if !shapes {
            return Err("the training sample's rows, labels and types disagree".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::tests::generated;

    #[test]
    fn bounded_stratified_and_valid() {
        let ds = generated(900, 2);
        let s = TrainingSample::from_dataset(&ds, 300, 1).unwrap();
        assert_eq!(s.n_rows(), 300);
        s.validate(ds.n_features).unwrap();
        assert!(s.validate(3).is_err());
        let share = |y: &[u8]| y.iter().filter(|&&v| v == 1).count() as f64 / y.len() as f64;
        assert!((share(&s.y) - share(&ds.y)).abs() < 0.01);
        let back = s.to_dataset();
        assert_eq!((back.n_rows(), back.lines.len()), (300, 300));
        assert_eq!(s, TrainingSample::from_dataset(&ds, 300, 1).unwrap());
        let mut broken = s.clone();
        broken.types[0] = 999;
        assert!(broken.validate(ds.n_features).is_err());
        // Retraining on a model file's sample costs what its rows cost.
        let big = generated(MAX_SAMPLE_ROWS + 1, 3);
        let all = TrainingSample::from_dataset(&big, MAX_SAMPLE_ROWS + 1, 1).unwrap();
        let e = all.validate(big.n_features).unwrap_err();
        assert!(e.contains("MAX_SAMPLE_ROWS"), "{e}");
        let unlabelled = Dataset {
            y: vec![],
            types: vec![],
            ..ds
        };
        assert!(TrainingSample::from_dataset(&unlabelled, 300, 1).is_none());
    }
}
