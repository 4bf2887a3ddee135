//! The built-in `tabular` feature set: any CSV of numeric and categorical columns.
//!
//! Fitted on the training table: a column whose every non-empty value is a finite number is
//! numeric (an empty field becomes NaN, which the trees route consistently); any other column
//! is categorical. Categorical levels are ranked by training frequency (ties by name), the
//! first [`MAX_LEVELS`] kept. Columns with at most [`ONE_HOT_MAX`] levels are one-hot encoded
//! (`name=level`, an unseen level is all zeros); wider ones are ordinal (the level's rank,
//! unseen = number of levels), which trees split as well as one-hot at a fraction of the width.

use super::{parse_number, saturate, truncate, FieldError, RawRow};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

pub const FORMULA_VERSION: u32 = 1;
pub const ONE_HOT_MAX: usize = 16;
pub const MAX_LEVELS: usize = 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TabularColumn {
    pub name: String,
    pub kind: ColumnKind,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ColumnKind {
    Numeric,
    Categorical {
        levels: Vec<String>,
        encoding: CategoricalEncoding,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CategoricalEncoding {
    OneHot,
    Ordinal,
}

/// The fitted spec plus, per column, a level → index map for allocation-free lookups.
/// Deserialising checks the level counts fitting keeps to (model manifests are input).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "SpecDef", into = "SpecDef")]
pub struct TabularSpec {
    pub columns: Vec<TabularColumn>,
    lookups: Vec<HashMap<String, u32>>,
}

#[derive(Serialize, Deserialize)]
struct SpecDef {
    columns: Vec<TabularColumn>,
}

impl TryFrom<SpecDef> for TabularSpec {
    type Error = String;

    /// A one-hot column names a feature per level, each repeating the column's name: more
    /// levels than fitting one-hot encodes would let a small manifest ask for huge names.
    fn try_from(d: SpecDef) -> Result<Self, String> {
        for c in &d.columns {
            if let ColumnKind::Categorical { levels, encoding } = &c.kind {
                let max = match encoding {
                    CategoricalEncoding::OneHot => ONE_HOT_MAX,
                    CategoricalEncoding::Ordinal => MAX_LEVELS,
                };
                if levels.len() > max {
                    return Err(format!(
                        "column `{}`: {} levels, above {max} for its encoding",
                        truncate(&c.name, 40),
                        levels.len()
                    ));
                }
            }
        }
        Ok(TabularSpec::new(d.columns))
    }
}

impl From<TabularSpec> for SpecDef {
    fn from(s: TabularSpec) -> Self {
        SpecDef { columns: s.columns }
    }
}

impl PartialEq for TabularSpec {
    fn eq(&self, other: &Self) -> bool {
        self.columns == other.columns
    }
}

impl TabularSpec {
    pub fn new(columns: Vec<TabularColumn>) -> Self {
        let lookups = columns
            .iter()
            .map(|c| match &c.kind {
                ColumnKind::Numeric => HashMap::new(),
                ColumnKind::Categorical { levels, .. } => levels
                    .iter()
                    .enumerate()
                    .map(|(i, l)| (l.clone(), i as u32))
                    .collect(),
            })
            .collect();
        TabularSpec { columns, lookups }
    }

    /// Fits kinds and vocabularies: `values(i)` yields every training value of column `i`.
    pub fn fit<'a, I>(names: &[String], mut values: impl FnMut(usize) -> I) -> Self
    where
        I: Iterator<Item = &'a str>,
    {
        let columns = names
            .iter()
            .enumerate()
            .map(|(i, name)| TabularColumn {
                name: name.clone(),
                kind: fit_kind(values(i)),
            })
            .collect();
        TabularSpec::new(columns)
    }

    pub fn feature_names(&self) -> Vec<String> {
        let mut names = Vec::with_capacity(self.n_features());
        for c in &self.columns {
            match &c.kind {
                ColumnKind::Categorical {
                    levels,
                    encoding: CategoricalEncoding::OneHot,
                } => names.extend(levels.iter().map(|l| format!("{}={l}", c.name))),
                _ => names.push(c.name.clone()),
            }
        }
        names
    }

    pub fn n_features(&self) -> usize {
        self.columns.iter().map(width).sum()
    }

    pub fn extract<R: RawRow + ?Sized>(&self, row: &R, out: &mut [f32]) -> Result<(), FieldError> {
        let mut at = 0;
        for (i, (c, lookup)) in self.columns.iter().zip(&self.lookups).enumerate() {
            let raw = row.field(i);
            let Some(slots) = out.get_mut(at..at + width(c)) else {
                return Err(FieldError {
                    input: i,
                    message: "output slice shorter than the feature count".into(),
                });
            };
            at += slots.len();
            match &c.kind {
                ColumnKind::Numeric if raw.trim().is_empty() => slots[0] = f32::NAN,
                ColumnKind::Numeric => {
                    slots[0] = saturate(
                        parse_number(raw).map_err(|message| FieldError { input: i, message })?,
                    );
                }
                ColumnKind::Categorical { levels, encoding } => {
                    let code = lookup.get(raw.trim()).copied();
                    match encoding {
                        CategoricalEncoding::OneHot => {
                            slots.fill(0.0);
                            if let Some(k) = code {
                                slots[k as usize] = 1.0;
                            }
                        }
                        CategoricalEncoding::Ordinal => {
                            slots[0] = code.unwrap_or(levels.len() as u32) as f32;
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

fn width(c: &TabularColumn) -> usize {
    match &c.kind {
        ColumnKind::Categorical {
            levels,
            encoding: CategoricalEncoding::OneHot,
        } => levels.len(),
        _ => 1,
    }
}

fn fit_kind<'a>(values: impl Iterator<Item = &'a str>) -> ColumnKind {
    let mut counts: HashMap<&str, u64> = HashMap::new();
    let mut numeric = true;
    for v in values {
        let v = v.trim();
        if v.is_empty() {
            continue;
        }
        numeric &= parse_number(v).is_ok();
        *counts.entry(v).or_default() += 1;
    }
    if numeric {
        return ColumnKind::Numeric;
    }
    let mut ranked: Vec<(&str, u64)> = counts.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    ranked.truncate(MAX_LEVELS);
    let encoding = if ranked.len() <= ONE_HOT_MAX {
        CategoricalEncoding::OneHot
    } else {
        CategoricalEncoding::Ordinal
    };
    ColumnKind::Categorical {
        levels: ranked.into_iter().map(|(l, _)| l.to_string()).collect(),
        encoding,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn spec() -> TabularSpec {
        let names = vec!["n".to_string(), "proto".to_string(), "svc".to_string()];
        let protos = ["tcp", "udp", "tcp", "icmp"];
        let svcs: Vec<String> = (0..40).map(|i| format!("s{}", i % 20)).collect();
        TabularSpec::fit(&names, |i| -> Box<dyn Iterator<Item = &str>> {
            match i {
                0 => Box::new(["1", "2.5", ""].into_iter()),
                1 => Box::new(protos.into_iter()),
                _ => Box::new(svcs.iter().map(String::as_str)),
            }
        })
    }

    #[test]
    fn fits_kinds_and_encodings() {
        let s = spec();
        assert_eq!(s.columns[0].kind, ColumnKind::Numeric);
        assert_eq!(
            s.feature_names()[..4],
            ["n", "proto=tcp", "proto=icmp", "proto=udp"]
        );
        assert!(matches!(
            s.columns[2].kind,
            ColumnKind::Categorical {
                encoding: CategoricalEncoding::Ordinal,
                ..
            }
        ));
        assert_eq!(s.n_features(), 5);
    }

    #[test]
    fn extracts_one_hot_ordinal_unseen_and_missing() {
        let s = spec();
        let mut out = [9f32; 5];
        s.extract(["3", "udp", "s0"].as_slice(), &mut out).unwrap();
        assert_eq!(out, [3.0, 0.0, 0.0, 1.0, 0.0]);
        s.extract(["", "gre", "new"].as_slice(), &mut out).unwrap();
        assert!(out[0].is_nan());
        assert_eq!(out[1..], [0.0, 0.0, 0.0, 20.0]);
        let err = s
            .extract(["x", "tcp", "s1"].as_slice(), &mut out)
            .unwrap_err();
        assert_eq!(err.input, 0);
    }

    #[test]
    fn numbers_beyond_f32_saturate_to_finite_features() {
        let s = spec();
        let mut out = [0f32; 5];
        s.extract(["1e39", "udp", "s0"].as_slice(), &mut out)
            .unwrap();
        assert_eq!(out[0], f32::MAX);
        s.extract(["-1e300", "udp", "s0"].as_slice(), &mut out)
            .unwrap();
        assert_eq!(out[0], f32::MIN);
    }

    #[test]
    fn serde_round_trip_rebuilds_lookups() {
        let s = spec();
        let back: TabularSpec = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
        let mut out = [0f32; 5];
        back.extract(["1", "icmp", "s3"].as_slice(), &mut out)
            .unwrap();
        assert_eq!(out[2], 1.0);
    }

    #[test]
    fn specs_with_more_levels_than_fitting_keeps_are_refused() {
        let spec = |n: usize, encoding: &str| {
            let levels: Vec<String> = (0..n).map(|i| format!("l{i}")).collect();
            serde_json::json!({"columns": [{"name": "c", "kind": {
                "type": "categorical", "levels": levels, "encoding": encoding}}]})
        };
        let read = |v| serde_json::from_value::<TabularSpec>(v);
        assert_eq!(
            read(spec(ONE_HOT_MAX, "one-hot")).unwrap().n_features(),
            ONE_HOT_MAX
        );
        let e = read(spec(ONE_HOT_MAX + 1, "one-hot"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("17 levels"), "{e}");
        assert!(read(spec(MAX_LEVELS, "ordinal")).is_ok());
        assert!(read(spec(MAX_LEVELS + 1, "ordinal")).is_err());
    }

    proptest! {
        #[test]
        fn extract_never_panics(a in "\\PC{0,12}", b in "\\PC{0,12}", c in "\\PC{0,12}") {
            let s = spec();
            let mut out = [0f32; 5];
            let _ = s.extract([a.as_str(), b.as_str(), c.as_str()].as_slice(), &mut out);
        }
    }
}
