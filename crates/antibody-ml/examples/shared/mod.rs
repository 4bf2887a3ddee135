//! What the examples share: the shared Optikal file, featurised as `antibody train` does.

use antibody_ml::data::{Dataset, LabelSpec, RawTable, DEFAULT_NEGATIVES};
use antibody_ml::features::{AgentBehavior, FeatureSet};
use antibody_ml::gen::{generate, GenConfig, Scenario};
use std::path::PathBuf;

/// The featurised file and how it was read.
// Each example is its own crate and reads only the fields it needs.
#[allow(dead_code)]
pub struct AgentData {
    pub ds: Dataset,
    pub set: FeatureSet,
    pub labels: LabelSpec,
    pub path: PathBuf,
    pub sha: String,
}

/// The file named by the first argument that is not a `--flag`, else `../shared/data`'s
/// Optikal file, as the `agent-behavior` feature set with `is_threat` / `threat_type` labels.
#[allow(dead_code)]
pub fn agent_behavior() -> Result<AgentData, Box<dyn std::error::Error>> {
    let path = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .map_or_else(
            || {
                PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                    .join("../../../shared/data/agent-behavior/optikal_training_data.csv")
            },
            PathBuf::from,
        );
    let (table, sha) = RawTable::read(&path, true)?;
    let set = FeatureSet::AgentBehavior(AgentBehavior::default());
    let labels = LabelSpec {
        label: "is_threat".into(),
        negatives: DEFAULT_NEGATIVES.iter().map(|s| s.to_string()).collect(),
        type_column: Some("threat_type".into()),
    };
    let ds = Dataset::from_table(&table, &set, Some(&labels))?;
    Ok(AgentData {
        ds,
        set,
        labels,
        path,
        sha,
    })
}

/// `antibody gen agent-behavior --rows N --seed S` featurised, without a CSV round trip:
/// types index `Scenario::ALL`, lines are 0.
// Each example is its own crate and uses only some of these.
#[allow(dead_code)]
pub fn generated(rows: usize, seed: u64) -> Dataset {
    let rows = generate(&GenConfig {
        rows,
        seed,
        ..GenConfig::default()
    });
    let set = AgentBehavior::default();
    let nf = FeatureSet::AgentBehavior(set.clone()).n_features();
    let mut ds = Dataset {
        n_features: nf,
        x: vec![0.0; rows.len() * nf],
        type_names: Scenario::ALL.iter().map(|s| s.name().to_string()).collect(),
        ..Dataset::default()
    };
    for (r, out) in rows.iter().zip(ds.x.chunks_exact_mut(nf)) {
        set.extract_raw(&r.raw, out);
        ds.y.push(u8::from(r.is_threat()));
        ds.types.push(r.label as u16);
        ds.lines.push(0);
    }
    ds
}
