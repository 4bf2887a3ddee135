//! What a tenant uploads next to the model file: the feature mapping and how to read the
//! output, plus the sandbox limits the operator sets.

use crate::error::OnnxError;
use serde::{Deserialize, Serialize};

/// Most features a custom model may read; a row wider than this is no tabular detector.
pub const MAX_FEATURES: usize = 4096;

/// How the model's output becomes a threat score in [0, 1].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputKind {
    /// `[N]` or `[N, 1]`, already a probability (clamped to [0, 1]).
    Probability,
    /// `[N]` or `[N, 1]`, log-odds: the score is its sigmoid.
    Logit,
    /// `[N, 2]` class probabilities (e.g. a softmax): the score is column 1, "threat".
    TwoClass,
}

/// The feature mapping and output reading of one custom model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnnxSpec {
    /// The model's input columns in order; a binding maps event fields onto them.
    pub features: Vec<String>,
    pub output: OutputKind,
    /// Score at or above which a row is reported.
    #[serde(default = "default_threshold")]
    pub threshold: f32,
    /// Reference row for occlusion contributions ("feature absent"); zeros when missing.
    #[serde(default)]
    pub baseline: Option<Vec<f32>>,
}

fn default_threshold() -> f32 {
    0.5
}

impl OnnxSpec {
    /// A spec with the default threshold and no baseline.
    pub fn new(features: Vec<String>, output: OutputKind) -> Self {
        Self {
            features,
            output,
            threshold: default_threshold(),
            baseline: None,
        }
    }

    /// Checks the spec on its own, before any model is looked at.
    pub fn validate(&self) -> Result<(), OnnxError> {
        let k = self.features.len();
        if k == 0 {
            return Err(spec_err(
                "`features` is empty: name at least one input column",
            ));
        }
        if k > MAX_FEATURES {
            return Err(spec_err(format!(
                "`features` has {k} names, more than the {MAX_FEATURES} allowed"
            )));
        }
        for (i, name) in self.features.iter().enumerate() {
            if name.trim().is_empty() {
                return Err(spec_err(format!("feature {i} has an empty name")));
            }
            if self.features[..i].contains(name) {
                return Err(spec_err(format!("feature `{name}` is listed twice")));
            }
        }
        if !(0.0..=1.0).contains(&self.threshold) {
            return Err(spec_err(format!(
                "`threshold` is {}, expected a number in [0, 1]",
                self.threshold
            )));
        }
        if let Some(b) = &self.baseline {
            if b.len() != k {
                return Err(spec_err(format!(
                    "`baseline` has {} values for {k} features",
                    b.len()
                )));
            }
            if let Some(i) = b.iter().position(|v| !v.is_finite()) {
                return Err(spec_err(format!(
                    "`baseline` value for `{}` is not a finite number",
                    self.features[i]
                )));
            }
        }
        Ok(())
    }

    /// The occlusion reference row: the baseline, or zeros.
    pub(crate) fn baseline_row(&self) -> Vec<f32> {
        self.baseline
            .clone()
            .unwrap_or_else(|| vec![0.0; self.features.len()])
    }
}

/// The sandbox around a custom model: how big its file may be and how long it may take.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest model file accepted, checked before parsing.
    pub max_bytes: usize,
    /// Longest a [`crate::BATCH_ROWS`]-row batch may take at load (the timing probe).
    pub max_batch_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bytes: 16 << 20,
            max_batch_ms: 50,
        }
    }
}

impl Limits {
    pub fn validate(&self) -> Result<(), OnnxError> {
        if self.max_bytes == 0 {
            return Err(spec_err("`max_bytes` must be positive"));
        }
        if self.max_batch_ms == 0 {
            return Err(spec_err("`max_batch_ms` must be positive"));
        }
        Ok(())
    }
}

fn spec_err(msg: impl Into<String>) -> OnnxError {
    OnnxError::Spec(msg.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_with_defaults() {
        let spec: OnnxSpec =
            serde_json::from_str(r#"{"features": ["a", "b"], "output": "two_class"}"#).unwrap();
        assert_eq!(
            spec,
            OnnxSpec::new(names(&["a", "b"]), OutputKind::TwoClass)
        );
        assert_eq!(spec.threshold, 0.5);
        spec.validate().unwrap();
        assert_eq!(spec.baseline_row(), [0.0, 0.0]);
        let limits: Limits = serde_json::from_str("{}").unwrap();
        assert_eq!(limits, Limits::default());
        assert_eq!(limits.max_bytes, 16 * 1024 * 1024);
    }

    #[test]
    fn unknown_fields_and_kinds_are_refused() {
        let err = serde_json::from_str::<OnnxSpec>(
            r#"{"features": ["a"], "output": "probability", "treshold": 0.2}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("treshold"), "{err}");
        let err = serde_json::from_str::<OnnxSpec>(r#"{"features": ["a"], "output": "softmax"}"#)
            .unwrap_err();
        assert!(err.to_string().contains("softmax"), "{err}");
    }

    #[test]
    fn validation_names_the_problem() {
        let ok = OnnxSpec::new(names(&["a", "b"]), OutputKind::Logit);
        let cases: Vec<(OnnxSpec, &str)> = vec![
            (OnnxSpec::new(vec![], OutputKind::Logit), "empty"),
            (
                OnnxSpec::new(names(&["a", " "]), OutputKind::Logit),
                "feature 1",
            ),
            (
                OnnxSpec::new(names(&["a", "a"]), OutputKind::Logit),
                "`a` is listed twice",
            ),
            (
                OnnxSpec {
                    threshold: 1.5,
                    ..ok.clone()
                },
                "threshold",
            ),
            (
                OnnxSpec {
                    threshold: f32::NAN,
                    ..ok.clone()
                },
                "threshold",
            ),
            (
                OnnxSpec {
                    baseline: Some(vec![1.0]),
                    ..ok.clone()
                },
                "1 values for 2 features",
            ),
            (
                OnnxSpec {
                    baseline: Some(vec![1.0, f32::INFINITY]),
                    ..ok.clone()
                },
                "`b` is not a finite",
            ),
            (
                OnnxSpec::new(
                    (0..=MAX_FEATURES).map(|i| i.to_string()).collect(),
                    OutputKind::Logit,
                ),
                "more than",
            ),
        ];
        for (spec, want) in cases {
            let err = spec.validate().unwrap_err().to_string();
            assert!(err.contains(want), "{err} lacks {want}");
        }
        ok.validate().unwrap();
        let bad = Limits {
            max_batch_ms: 0,
            ..Limits::default()
        };
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("max_batch_ms"));
    }
}
