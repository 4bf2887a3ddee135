//! Tables and datasets: a CSV file held compactly in memory ([`RawTable`]), turned by a
//! feature set and a [`LabelSpec`] into a row-major feature matrix with binary labels and
//! threat types ([`Dataset`]); seeded stratified splits and folds.

use crate::csv::{CsvReader, Record};
use crate::error::{MlError, Result};
use crate::features::{FeatureSet, MappedRecord};
use crate::rng::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;

/// Label values that mean "benign" unless `--negative` says otherwise.
pub const DEFAULT_NEGATIVES: [&str; 4] = ["0", "normal", "benign", "false"];

/// A whole CSV file: every field's text back to back, with offsets.
pub struct RawTable {
    pub header: Vec<String>,
    text: String,
    ends: Vec<usize>,
    /// Per row: offset of its first field in `text`, index of its first end, source line.
    rows: Vec<(usize, usize, u64)>,
}

impl RawTable {
    /// Reads a file; its SHA-256 comes back too (model files record the training data's hash).
    pub fn read(path: &Path, has_header: bool) -> Result<(Self, String)> {
        let bytes = std::fs::read(path).map_err(|e| MlError::io(path, e))?;
        let hash = hex::encode(Sha256::digest(&bytes));
        let table = RawTable::from_reader(BufReader::new(bytes.as_slice()), has_header)?;
        Ok((table, hash))
    }

    /// Without a header, columns are named `c1`, `c2`, … (1-based, as people count them).
    pub fn from_reader(reader: impl BufRead, has_header: bool) -> Result<Self> {
        let mut csv = CsvReader::new(reader);
        let mut table = RawTable {
            header: Vec::new(),
            text: String::new(),
            ends: Vec::new(),
            rows: Vec::new(),
        };
        let mut width = None;
        while let Some(rec) = csv.next_record()? {
            if width.is_none() {
                width = Some(rec.len());
                if has_header {
                    table.header = rec.iter().map(|f| f.trim().to_string()).collect();
                    continue;
                }
                table.header = (1..=rec.len()).map(|i| format!("c{i}")).collect();
            }
            if Some(rec.len()) != width {
                return Err(MlError::Csv {
                    line: rec.line,
                    message: format!(
                        "{} fields, but the {} has {}",
                        rec.len(),
                        if has_header { "header" } else { "first row" },
                        table.header.len()
                    ),
                });
            }
            table.push(rec);
        }
        Ok(table)
    }

    fn push(&mut self, rec: Record<'_>) {
        self.rows.push((self.text.len(), self.ends.len(), rec.line));
        for f in rec.iter() {
            self.text.push_str(f);
            self.ends.push(self.text.len());
        }
    }

    pub fn n_rows(&self) -> usize {
        self.rows.len()
    }

    pub fn row(&self, i: usize) -> Option<Record<'_>> {
        let &(start, first_end, line) = self.rows.get(i)?;
        let width = self.header.len();
        let ends = self.ends.get(first_end..first_end + width)?;
        Some(Record::from_parts(&self.text, start, ends, line))
    }

    pub fn column_index(&self, name: &str) -> Result<usize> {
        self.header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| MlError::MissingColumn {
                column: name.to_string(),
                available: self.header.join(", "),
            })
    }

    pub fn column_values(&self, col: usize) -> impl Iterator<Item = &str> + '_ {
        (0..self.n_rows()).filter_map(move |i| self.row(i).and_then(|r| r.get(col)))
    }
}

/// Which columns hold the labels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelSpec {
    /// The binary label: a row is a threat unless its value is one of `negatives`.
    pub label: String,
    pub negatives: Vec<String>,
    /// The threat type (multi-class target); the label column itself when absent.
    pub type_column: Option<String>,
}

impl LabelSpec {
    pub fn is_negative(&self, value: &str) -> bool {
        let v = value.trim();
        self.negatives.iter().any(|n| n.eq_ignore_ascii_case(v))
    }

    pub fn type_column(&self) -> &str {
        self.type_column.as_deref().unwrap_or(&self.label)
    }
}

/// A feature matrix with labels.
#[derive(Debug, Clone, Default)]
pub struct Dataset {
    pub n_features: usize,
    /// Row-major, `n_rows × n_features`.
    pub x: Vec<f32>,
    /// 1 = threat; empty when the data had no labels.
    pub y: Vec<u8>,
    /// Per row, an index into `type_names`; empty when the data had no labels.
    pub types: Vec<u16>,
    /// Distinct type values, sorted.
    pub type_names: Vec<String>,
    /// Source line of each row.
    pub lines: Vec<u64>,
    /// Per row, the entity it belongs to (for sequence windows); empty when not given.
    pub entities: Vec<u32>,
}

impl Dataset {
    /// Reads each row's entity from `column`, numbering entities in order of appearance.
    pub fn set_entities(&mut self, table: &RawTable, column: &str) -> Result<()> {
        let col = table.column_index(column)?;
        let mut ids: std::collections::HashMap<&str, u32> = std::collections::HashMap::new();
        self.entities = table
            .column_values(col)
            .map(|v| {
                let next = ids.len() as u32;
                *ids.entry(v.trim()).or_insert(next)
            })
            .collect();
        Ok(())
    }

    /// Extracts every row of `table`; `labels` adds `y` and `types`.
    pub fn from_table(
        table: &RawTable,
        set: &FeatureSet,
        labels: Option<&LabelSpec>,
    ) -> Result<Self> {
        let inputs = set.input_columns();
        let positions = inputs
            .iter()
            .map(|c| table.column_index(c))
            .collect::<Result<Vec<_>>>()?;
        let n_features = set.n_features();
        let n = table.n_rows();
        let mut ds = Dataset {
            n_features,
            x: vec![0.0; n * n_features],
            lines: Vec::with_capacity(n),
            ..Dataset::default()
        };
        for (i, out) in ds.x.chunks_exact_mut(n_features.max(1)).enumerate().take(n) {
            let Some(record) = table.row(i) else { break };
            let row = MappedRecord {
                record,
                positions: &positions,
            };
            set.extract(&row, out).map_err(|e| MlError::Field {
                line: record.line,
                column: inputs.get(e.input).cloned().unwrap_or_default(),
                message: e.message,
            })?;
            ds.lines.push(record.line);
        }
        if let Some(spec) = labels {
            ds.add_labels(table, spec)?;
        }
        Ok(ds)
    }

    fn add_labels(&mut self, table: &RawTable, spec: &LabelSpec) -> Result<()> {
        let label_col = table.column_index(&spec.label)?;
        let type_col = table.column_index(spec.type_column())?;
        let mut names: BTreeMap<String, u16> = BTreeMap::new();
        for v in table.column_values(type_col) {
            names.entry(v.trim().to_string()).or_default();
        }
        if names.len() > u16::MAX as usize {
            return Err(MlError::Data(format!(
                "column `{}` has more than {} distinct values",
                spec.type_column(),
                u16::MAX
            )));
        }
        for (i, v) in names.values_mut().enumerate() {
            *v = i as u16;
        }
        for i in 0..table.n_rows() {
            let Some(r) = table.row(i) else { break };
            let label = r.get(label_col).unwrap_or("");
            self.y.push(u8::from(!spec.is_negative(label)));
            let t = r.get(type_col).unwrap_or("").trim();
            self.types.push(names.get(t).copied().unwrap_or(0));
        }
        self.type_names = names.into_keys().collect();
        Ok(())
    }

    pub fn n_rows(&self) -> usize {
        self.x
            .len()
            .checked_div(self.n_features)
            .unwrap_or(self.lines.len())
    }

    pub fn row(&self, i: usize) -> &[f32] {
        &self.x[i * self.n_features..(i + 1) * self.n_features]
    }

    pub fn has_labels(&self) -> bool {
        !self.y.is_empty()
    }

    /// The rows at `idx`, in that order.
    pub fn subset(&self, idx: &[usize]) -> Dataset {
        let mut out = Dataset {
            n_features: self.n_features,
            x: Vec::with_capacity(idx.len() * self.n_features),
            type_names: self.type_names.clone(),
            ..Dataset::default()
        };
        for &i in idx {
            out.x.extend_from_slice(self.row(i));
            out.lines.push(self.lines[i]);
            if let Some(&e) = self.entities.get(i) {
                out.entities.push(e);
            }
            if self.has_labels() {
                out.y.push(self.y[i]);
                out.types.push(self.types[i]);
            }
        }
        out
    }

    /// Stratification key: the type when known, else the binary label, else nothing.
    fn strata(&self) -> Vec<u16> {
        if !self.types.is_empty() {
            self.types.clone()
        } else {
            vec![0; self.n_rows()]
        }
    }

    /// Splits rows into parts of the given fractions (summing to 1), each stratum shuffled
    /// with `seed` and cut proportionally, so every part keeps the class mix.
    pub fn stratified_split(&self, fractions: &[f64], seed: u64) -> Vec<Vec<usize>> {
        let mut parts = vec![Vec::new(); fractions.len()];
        for (k, mut members) in group(&self.strata()).into_iter().enumerate() {
            Rng::derive(seed, k as u64).shuffle(&mut members);
            let n = members.len() as f64;
            let mut start = 0usize;
            let mut acc = 0.0;
            for (p, f) in fractions.iter().enumerate() {
                acc += f;
                let end = if p + 1 == fractions.len() {
                    members.len()
                } else {
                    ((acc * n).round() as usize).min(members.len())
                };
                parts[p].extend_from_slice(&members[start..end.max(start)]);
                start = end.max(start);
            }
        }
        for p in &mut parts {
            p.sort_unstable();
        }
        parts
    }

    /// At most `max_rows` row indices (ascending), stratified: each stratum gets its share
    /// of `max_rows` rounded down, the rows left over go to the strata with the largest
    /// remainders, and each stratum's rows are drawn with `seed`. All rows when they fit.
    pub fn stratified_sample(&self, max_rows: usize, seed: u64) -> Vec<usize> {
        let n = self.n_rows();
        if n <= max_rows {
            return (0..n).collect();
        }
        let groups = group(&self.strata());
        let mut quota: Vec<usize> = groups.iter().map(|g| g.len() * max_rows / n).collect();
        let mut by_remainder: Vec<usize> = (0..groups.len()).collect();
        by_remainder.sort_by_key(|&k| (std::cmp::Reverse(groups[k].len() * max_rows % n), k));
        let left = max_rows - quota.iter().sum::<usize>();
        for &k in by_remainder.iter().take(left) {
            quota[k] += 1;
        }
        let mut picked = Vec::with_capacity(max_rows);
        for (k, (mut members, q)) in groups.into_iter().zip(quota).enumerate() {
            Rng::derive(seed, k as u64).shuffle(&mut members);
            picked.extend_from_slice(&members[..q.min(members.len())]);
        }
        picked.sort_unstable();
        picked
    }

    /// `k` stratified folds: each is (train rows, test rows).
    pub fn kfold(&self, k: usize, seed: u64) -> Vec<(Vec<usize>, Vec<usize>)> {
        let k = k.max(2);
        let mut fold_of = vec![0usize; self.n_rows()];
        for (s, mut members) in group(&self.strata()).into_iter().enumerate() {
            Rng::derive(seed, s as u64).shuffle(&mut members);
            for (j, &i) in members.iter().enumerate() {
                fold_of[i] = j % k;
            }
        }
        (0..k)
            .map(|f| {
                let (test, train): (Vec<usize>, Vec<usize>) =
                    (0..self.n_rows()).partition(|&i| fold_of[i] == f);
                (train, test)
            })
            .collect()
    }
}

/// Row indices grouped by stratum, strata in ascending order.
fn group(strata: &[u16]) -> Vec<Vec<usize>> {
    let mut groups: BTreeMap<u16, Vec<usize>> = BTreeMap::new();
    for (i, &s) in strata.iter().enumerate() {
        groups.entry(s).or_default().push(i);
    }
    groups.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::AgentBehavior;

    const CSV: &str = "cpu_usage_percent,memory_usage_mb,network_calls_count,file_operations_count,api_calls_count,error_count,hour_of_day,day_of_week,query_diversity,response_time_ms,success_rate,is_threat,threat_type\n\
        30,512,20,5,50,1,12,2,0.7,100,0.97,0,normal\n\
        90,2048,100,20,1000,20,3,1,0.2,500,0.6,1,resource_abuse\n\
        70,1024,200,50,500,10,4,6,0.2,500,0.7,1,credential_abuse\n";

    fn labels() -> LabelSpec {
        LabelSpec {
            label: "is_threat".into(),
            negatives: DEFAULT_NEGATIVES.iter().map(|s| s.to_string()).collect(),
            type_column: Some("threat_type".into()),
        }
    }

    #[test]
    fn loads_features_labels_and_types() {
        let t = RawTable::from_reader(CSV.as_bytes(), true).unwrap();
        let set = FeatureSet::AgentBehavior(AgentBehavior::default());
        let ds = Dataset::from_table(&t, &set, Some(&labels())).unwrap();
        assert_eq!((ds.n_rows(), ds.n_features), (3, 18));
        assert_eq!(ds.y, [0, 1, 1]);
        assert_eq!(
            ds.type_names,
            ["credential_abuse", "normal", "resource_abuse"]
        );
        assert_eq!(ds.types, [1, 2, 0]);
        assert_eq!(ds.lines, [2, 3, 4]);
        assert_eq!(ds.row(1)[0], 1000.0);
    }

    #[test]
    fn errors_name_line_and_column() {
        let bad = CSV.replace("90,2048", "90,lots");
        let t = RawTable::from_reader(bad.as_bytes(), true).unwrap();
        let set = FeatureSet::AgentBehavior(AgentBehavior::default());
        let err = Dataset::from_table(&t, &set, None).unwrap_err().to_string();
        assert!(
            err.contains("line 3") && err.contains("memory_usage_mb"),
            "{err}"
        );
        let short = RawTable::from_reader("a,b\n1\n".as_bytes(), true);
        assert!(matches!(short, Err(MlError::Csv { line: 2, .. })));
        let t = RawTable::from_reader("a,b\n1,2\n".as_bytes(), true).unwrap();
        let err = Dataset::from_table(&t, &set, None).unwrap_err().to_string();
        assert!(
            err.contains("cpu_usage_percent") && err.contains("a, b"),
            "{err}"
        );
    }

    #[test]
    fn headerless_columns_are_numbered() {
        let t = RawTable::from_reader("1,x\n2,y\n".as_bytes(), false).unwrap();
        assert_eq!(t.header, ["c1", "c2"]);
        assert_eq!(t.n_rows(), 2);
        assert_eq!(t.column_values(1).collect::<Vec<_>>(), ["x", "y"]);
    }

    #[test]
    fn splits_are_stratified_disjoint_and_seeded() {
        let ds = Dataset {
            n_features: 1,
            x: (0..100).map(|i| i as f32).collect(),
            y: (0..100).map(|i| u8::from(i % 4 == 0)).collect(),
            types: (0..100).map(|i| u16::from(i % 4 == 0)).collect(),
            type_names: vec!["a".into(), "b".into()],
            lines: (0..100).collect(),
            entities: vec![],
        };
        let parts = ds.stratified_split(&[0.8, 0.2], 7);
        assert_eq!(parts[0].len() + parts[1].len(), 100);
        assert_eq!(parts[1].iter().filter(|&&i| ds.y[i] == 1).count(), 5);
        assert_eq!(parts, ds.stratified_split(&[0.8, 0.2], 7));
        assert_ne!(parts, ds.stratified_split(&[0.8, 0.2], 8));
        let sample = ds.stratified_sample(40, 3);
        assert_eq!(sample.len(), 40);
        assert_eq!(sample.iter().filter(|&&i| ds.y[i] == 1).count(), 10);
        assert!(sample.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(sample, ds.stratified_sample(40, 3));
        assert_eq!(ds.stratified_sample(500, 3).len(), 100);
        let folds = ds.kfold(5, 1);
        let mut seen: Vec<usize> = folds.iter().flat_map(|f| f.1.clone()).collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..100).collect::<Vec<_>>());
        assert!(folds
            .iter()
            .all(|(tr, te)| tr.len() == 80 && te.len() == 20));
    }
}
