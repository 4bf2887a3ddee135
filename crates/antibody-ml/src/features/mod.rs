//! Declarative feature sets: which raw columns a model reads and how it turns one raw row into
//! a fixed-width `f32` feature vector.
//!
//! A [`FeatureSet`] is data (serialised into every model manifest); its
//! [`schema_hash`](FeatureSet::schema_hash) covers the input columns, their encodings, the
//! output feature names and the version of the formulas, so a model refuses data or code that
//! would compute different features. Extraction writes into a caller's slice and allocates
//! nothing (only an error message allocates).

pub mod agent;
pub mod tabular;

pub use agent::{AgentBehavior, AgentRaw, AGENT_INPUT_COLUMNS};
pub use tabular::{CategoricalEncoding, ColumnKind, TabularColumn, TabularSpec};

use crate::csv::Record;
use crate::data::RawTable;
use crate::error::{MlError, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The names `--features` accepts.
pub const FEATURE_SET_NAMES: [&str; 2] = ["agent-behavior", "tabular"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "set", rename_all = "kebab-case")]
pub enum FeatureSet {
    AgentBehavior(AgentBehavior),
    Tabular(TabularSpec),
}

/// One raw row, seen as the feature set's input columns in order.
pub trait RawRow {
    fn field(&self, input: usize) -> &str;
}

impl RawRow for [&str] {
    fn field(&self, input: usize) -> &str {
        self.get(input).copied().unwrap_or("")
    }
}

/// A CSV record seen through a map from input column to record position.
pub struct MappedRecord<'a> {
    pub record: Record<'a>,
    pub positions: &'a [usize],
}

impl RawRow for MappedRecord<'_> {
    fn field(&self, input: usize) -> &str {
        self.positions
            .get(input)
            .and_then(|&p| self.record.get(p))
            .unwrap_or("")
    }
}

/// A field the feature set cannot use; `input` indexes [`FeatureSet::input_columns`].
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    pub input: usize,
    pub message: String,
}

impl FeatureSet {
    /// The named set for `table`: `agent-behavior` as defined, `tabular` fitted on every
    /// column not in `exclude` (labels, ids).
    pub fn for_table(name: &str, table: &RawTable, exclude: &[String]) -> Result<Self> {
        match name {
            "agent-behavior" => Ok(FeatureSet::AgentBehavior(AgentBehavior::default())),
            "tabular" => {
                let cols: Vec<usize> = (0..table.header.len())
                    .filter(|&i| !exclude.contains(&table.header[i]))
                    .collect();
                if cols.is_empty() {
                    return Err(MlError::Config("no feature columns left".into()));
                }
                let names: Vec<String> = cols.iter().map(|&i| table.header[i].clone()).collect();
                Ok(FeatureSet::Tabular(TabularSpec::fit(&names, |i| {
                    table.column_values(cols[i])
                })))
            }
            other => Err(MlError::Config(format!(
                "unknown feature set `{other}` (known: {})",
                FEATURE_SET_NAMES.join(", ")
            ))),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            FeatureSet::AgentBehavior(_) => "agent-behavior",
            FeatureSet::Tabular(_) => "tabular",
        }
    }

    /// The raw columns extraction reads, in the order [`RawRow::field`] is indexed.
    pub fn input_columns(&self) -> Vec<String> {
        match self {
            FeatureSet::AgentBehavior(_) => {
                AGENT_INPUT_COLUMNS.iter().map(|s| s.to_string()).collect()
            }
            FeatureSet::Tabular(t) => t.columns.iter().map(|c| c.name.clone()).collect(),
        }
    }

    pub fn feature_names(&self) -> Vec<String> {
        match self {
            FeatureSet::AgentBehavior(_) => {
                agent::FEATURE_NAMES.iter().map(|s| s.to_string()).collect()
            }
            FeatureSet::Tabular(t) => t.feature_names(),
        }
    }

    pub fn n_features(&self) -> usize {
        match self {
            FeatureSet::AgentBehavior(_) => agent::FEATURE_NAMES.len(),
            FeatureSet::Tabular(t) => t.n_features(),
        }
    }

    /// Writes the row's features into `out` (`out.len() == n_features()`).
    pub fn extract<R: RawRow + ?Sized>(
        &self,
        row: &R,
        out: &mut [f32],
    ) -> std::result::Result<(), FieldError> {
        match self {
            FeatureSet::AgentBehavior(a) => a.extract(row, out),
            FeatureSet::Tabular(t) => t.extract(row, out),
        }
    }

    /// SHA-256 (hex) of the canonical description: the set with its parameters and
    /// vocabularies, its formula version and its output feature names.
    pub fn schema_hash(&self) -> String {
        let mut h = Sha256::new();
        // Serialising our own enum of strings and numbers cannot fail.
        h.update(serde_json::to_vec(self).unwrap_or_default());
        h.update(b"\n");
        h.update(
            match self {
                FeatureSet::AgentBehavior(_) => agent::FORMULA_VERSION,
                FeatureSet::Tabular(_) => tabular::FORMULA_VERSION,
            }
            .to_le_bytes(),
        );
        for name in self.feature_names() {
            h.update(name.as_bytes());
            h.update(b"\n");
        }
        hex::encode(h.finalize())
    }
}

/// Parses a finite number, with the message errors carry.
pub(crate) fn parse_number(s: &str) -> std::result::Result<f64, String> {
    let t = s.trim();
    match t.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(_) => Err(format!("`{t}` is not a finite number")),
        Err(_) if t.is_empty() => Err("empty field, expected a number".into()),
        Err(_) => Err(format!("expected a number, found `{}`", truncate(t, 40))),
    }
}

/// `v` as a feature, saturated to the finite `f32` range. A number can be finite as `f64`
/// (1e39) and still overflow `f32`: an infinite feature is stored as `null` in a finding's
/// evidence and makes the row useless as a label, so it becomes `f32::MAX` instead, which
/// the trees route like the infinity. Values in range convert exactly as `as f32` does; NaN
/// (a missing value) stays NaN.
pub(crate) fn saturate(v: f64) -> f32 {
    v.clamp(f64::from(f32::MIN), f64::from(f32::MAX)) as f32
}

pub(crate) fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_hash_is_stable_and_sensitive() {
        let a = FeatureSet::AgentBehavior(AgentBehavior::default());
        assert_eq!(a.schema_hash(), a.clone().schema_hash());
        let b = FeatureSet::AgentBehavior(AgentBehavior {
            window_minutes: 5.0,
        });
        assert_ne!(a.schema_hash(), b.schema_hash());
        assert_eq!(a.schema_hash().len(), 64);
    }

    #[test]
    fn for_table_fits_tabular_and_rejects_unknown_sets() {
        let t = RawTable::from_reader("a,b,label\n1,x,0\n2,y,1\n".as_bytes(), true).unwrap();
        let set = FeatureSet::for_table("tabular", &t, &["label".to_string()]).unwrap();
        assert_eq!(set.feature_names(), ["a", "b=x", "b=y"]);
        let err = FeatureSet::for_table("nope", &t, &[]).unwrap_err();
        assert!(err.to_string().contains("agent-behavior, tabular"), "{err}");
    }

    #[test]
    fn parse_number_messages() {
        assert_eq!(parse_number(" 1.5 "), Ok(1.5));
        assert!(parse_number("").unwrap_err().contains("empty"));
        assert!(parse_number("abc").unwrap_err().contains("`abc`"));
        assert!(parse_number("NaN").unwrap_err().contains("finite"));
    }

    #[test]
    fn saturate_keeps_f32_values_and_caps_overflow() {
        for v in [0.0, -1.5, 1e-40, 3.4e38, f64::from(f32::MAX), 0.1] {
            assert_eq!(saturate(v).to_bits(), (v as f32).to_bits(), "{v}");
        }
        assert_eq!(saturate(1e39), f32::MAX);
        assert_eq!(saturate(-1e300), f32::MIN);
        assert_eq!(saturate(f64::INFINITY), f32::MAX);
        assert!(saturate(f64::NAN).is_nan());
    }
}
