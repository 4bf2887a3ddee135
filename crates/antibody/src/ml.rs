//! `antibody train | eval | explain | gen`: the learned detectors from the command line.
//!
//! `train` reads a CSV, builds the feature set, holds out test rows, fits the ensemble with a
//! cross-fitted fusion (progress bars on stderr), prints the held-out metrics and writes the
//! model directory. `eval` scores a labelled CSV with a saved model; `explain` shows one row's
//! verdict and per-feature attributions; `gen` writes synthetic agent-behaviour data.

use antibody_ml::data::{Dataset, LabelSpec, RawTable, DEFAULT_NEGATIVES};
use antibody_ml::features::{FeatureSet, FEATURE_SET_NAMES};
use antibody_ml::gen::{generate, write_csv, GenConfig};
use antibody_ml::metrics::ClassReport;
use antibody_ml::model::{Explanation, Model, TrainingInfo};
use antibody_ml::seq::windows;
use antibody_ml::shap::ShapScratch;
use antibody_ml::train::{self, CvReport, EvalReport, Progress, TrainConfig};
use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(clap::Args)]
pub struct TrainArgs {
    /// Training data: a CSV file (header row unless --no-header).
    #[arg(long)]
    pub data: PathBuf,
    /// Feature set: `agent-behavior` (18 features from the 11 Optikal columns) or `tabular`
    /// (every column but the labels and --ignore'd ones; numbers as is, text one-hot/ordinal).
    #[arg(long, value_parser = FEATURE_SET_NAMES)]
    pub features: String,
    /// Label column: a row is benign when its value is one of --negative, a threat otherwise.
    /// Headerless files name their columns c1, c2, ….
    #[arg(long)]
    pub label: String,
    /// Column holding the threat type, for the type classifier. Default: `threat_type` with
    /// agent-behavior when the data has it, else the label column.
    #[arg(long)]
    pub type_label: Option<String>,
    /// A label value meaning benign (repeatable). Default: 0, normal, benign, false.
    #[arg(long = "negative", value_name = "VALUE")]
    pub negatives: Vec<String>,
    /// A column to leave out of `tabular` features (repeatable), e.g. an id or a score that
    /// is not a feature.
    #[arg(long = "ignore", value_name = "COLUMN")]
    pub ignore: Vec<String>,
    /// The CSV has no header row.
    #[arg(long)]
    pub no_header: bool,
    /// Column naming each row's entity (e.g. `agent_id`): also trains the sequence model
    /// (GRU with attention) over each entity's last 10 rows, in file order.
    #[arg(long, value_name = "COLUMN")]
    pub entity: Option<String>,
    /// Training epochs of the sequence model (with --entity).
    #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub sequence_epochs: u32,
    /// Model directory to write (created; model.json, model.bin and sample.bin are replaced).
    #[arg(long)]
    pub out: PathBuf,
    /// Also write the model as one bundle file, the form `POST`ed to upload it.
    #[arg(long, value_name = "FILE")]
    pub bundle: Option<PathBuf>,
    /// Seed of the split, the subsamples and every tree: same data + seed = same model.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Boosting rounds of the detector (trees).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub trees: u32,
    /// Maximum depth of the boosted trees.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=12))]
    pub depth: u32,
    /// Share of rows held out for the test metrics.
    #[arg(long, default_value_t = 0.2)]
    pub test_fraction: f64,
    /// Cross-fitting folds: the fusion is fitted on out-of-fold scores, and the fold
    /// boosters are the members whose spread is the uncertainty.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(2..=16))]
    pub folds: u32,
    /// Also run stratified k-fold cross-validation (binary metrics) and record it.
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u32).range(2..=50))]
    pub cv: Option<u32>,
    /// Print the metrics as JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct EvalArgs {
    /// Model directory written by `antibody train`.
    #[arg(long)]
    pub model: PathBuf,
    /// Labelled CSV to score, with the model's input and label columns.
    #[arg(long)]
    pub data: PathBuf,
    /// The CSV has no header row (default: as the training data).
    #[arg(long)]
    pub no_header: bool,
    /// Print the metrics as JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct ExplainArgs {
    /// Model directory written by `antibody train`.
    #[arg(long)]
    pub model: PathBuf,
    /// CSV holding the row.
    #[arg(long)]
    pub data: PathBuf,
    /// Which data row, counting from 1 (a header line is not a row).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub row: u64,
    /// The CSV has no header row (default: as the training data).
    #[arg(long)]
    pub no_header: bool,
    /// Features to list, by attribution size.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
    /// Print the explanation as JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct GenArgs {
    /// Which data: the seven agent-behaviour scenarios (Optikal schema).
    #[arg(value_parser = ["agent-behavior"])]
    pub kind: String,
    /// Rows to write.
    #[arg(long, default_value_t = 8000)]
    pub rows: usize,
    /// Seed: the same seed writes the same file.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Add measurement jitter, benign bursts and low-and-slow attacks.
    #[arg(long)]
    pub noise: bool,
    /// Per-agent sessions in time order, about half turning from normal to an attack.
    #[arg(long)]
    pub mixed: bool,
    /// Output file (default: stdout).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn train(args: TrainArgs) -> Result<()> {
    let started = Instant::now();
    let (table, data_sha256) = RawTable::read(&args.data, !args.no_header)
        .with_context(|| format!("reading {}", args.data.display()))?;
    let labels = label_spec(&args, &table);
    let mut exclude = args.ignore.clone();
    exclude.push(labels.label.clone());
    exclude.extend(labels.type_column.clone());
    exclude.extend(args.entity.clone());
    let set = FeatureSet::for_table(&args.features, &table, &exclude)?;
    let mut ds = Dataset::from_table(&table, &set, Some(&labels))
        .with_context(|| format!("extracting features from {}", args.data.display()))?;
    if let Some(col) = &args.entity {
        ds.set_entities(&table, col)?;
    }
    let cfg = train_config(&args);
    let mut bars = Bars::new();

    let cv = match args.cv {
        Some(k) => Some(train::cross_validate(&ds, &cfg, k as usize, &mut bars)?),
        None => None,
    };
    let trained = train::train(&ds, &cfg, &mut bars)?;
    bars.done();

    let info = TrainingInfo {
        data_file: args.data.display().to_string(),
        data_sha256,
        rows: ds.n_rows() as u64,
        train_rows: trained.train_rows as u64,
        test_rows: trained.test_rows as u64,
        config: cfg,
    };
    let mut model = Model::new(
        set,
        labels,
        !args.no_header,
        info,
        trained.report,
        trained.ensemble,
    );
    model.manifest.cross_validation = cv;
    model.manifest.entity_column = args.entity.clone();
    // The drift reference and the sample retraining starts from, drawn from every row.
    model.set_training_data(&ds, args.seed);
    model
        .save(&args.out)
        .with_context(|| format!("writing the model to {}", args.out.display()))?;
    if let Some(path) = &args.bundle {
        std::fs::write(path, model.to_bundle())
            .with_context(|| format!("writing the bundle {}", path.display()))?;
    }

    let out = &mut io::stdout().lock();
    if args.json {
        let m = &model.manifest;
        let v = serde_json::json!({
            "model": args.out,
            "bundle": args.bundle,
            "test": m.metrics,
            "cross_validation": m.cross_validation,
            "sample_rows": m.sample.as_ref().map(|s| s.rows),
            "drift_reference_rows": m.reference.as_ref().map(|r| r.rows),
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
    } else {
        let m = &model.manifest;
        writeln!(
            out,
            "trained on {} rows of {} ({} train, {}-fold cross-fitted / {} test), {} features, in {:.1} s",
            m.training.rows,
            args.data.display(),
            m.training.train_rows,
            m.training.config.folds,
            m.training.test_rows,
            m.feature_names.len(),
            started.elapsed().as_secs_f64()
        )?;
        writeln!(out, "\nheld-out test split:")?;
        print_report(out, &m.metrics)?;
        if let Some(cv) = &m.cross_validation {
            print_cv(out, cv)?;
        }
        if let (Some(r), Some(s)) = (&m.reference, &m.sample) {
            let population = if r.benign_only { "benign rows" } else { "rows" };
            writeln!(
                out,
                "\ndrift reference: deciles of {} {population}; training sample kept for retraining: {} rows",
                r.rows, s.rows
            )?;
        }
        writeln!(out, "\nmodel written to {}", args.out.display())?;
        if let Some(path) = &args.bundle {
            writeln!(out, "bundle written to {}", path.display())?;
        }
    }
    Ok(())
}

fn label_spec(args: &TrainArgs, table: &RawTable) -> LabelSpec {
    let negatives = if args.negatives.is_empty() {
        DEFAULT_NEGATIVES.iter().map(|s| s.to_string()).collect()
    } else {
        args.negatives.clone()
    };
    let type_column = args.type_label.clone().or_else(|| {
        let optikal =
            args.features == "agent-behavior" && table.column_index("threat_type").is_ok();
        optikal.then(|| "threat_type".to_string())
    });
    LabelSpec {
        label: args.label.clone(),
        negatives,
        type_column,
    }
}

fn train_config(args: &TrainArgs) -> TrainConfig {
    let mut cfg = TrainConfig {
        seed: args.seed,
        test_fraction: args.test_fraction,
        folds: args.folds as usize,
        ..TrainConfig::default()
    };
    cfg.gbt.rounds = args.trees as usize;
    cfg.gbt.max_depth = args.depth as usize;
    if let Some(seq) = &mut cfg.sequence {
        seq.epochs = args.sequence_epochs as usize;
    }
    cfg
}

pub fn eval(args: EvalArgs) -> Result<()> {
    let model = load_model(&args.model)?;
    let table = load_table(&model, &args.data, args.no_header)?;
    let ds = dataset(&model, &table, &args.data, true)?;
    let started = Instant::now();
    let report = train::evaluate(&model.ensemble, &ds);
    let secs = started.elapsed().as_secs_f64();
    let out = &mut io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
        return Ok(());
    }
    writeln!(
        out,
        "{} rows of {} scored in {:.1} ms ({:.0} rows/s)",
        ds.n_rows(),
        args.data.display(),
        secs * 1e3,
        ds.n_rows() as f64 / secs.max(1e-9)
    )?;
    print_report(out, &report)?;
    Ok(())
}

pub fn explain(args: ExplainArgs) -> Result<()> {
    let model = load_model(&args.model)?;
    let table = load_table(&model, &args.data, args.no_header)?;
    // Labels are shown when the data has them, not required.
    let has_labels = table.column_index(&model.manifest.labels.label).is_ok();
    let ds = dataset(&model, &table, &args.data, has_labels)?;
    let Some(i) = usize::try_from(args.row - 1)
        .ok()
        .filter(|&i| i < ds.n_rows())
    else {
        bail!("--row {} is past the {} data rows", args.row, ds.n_rows());
    };
    let e = model
        .ensemble
        .explain(ds.row(i), &mut ShapScratch::default());
    let mut order: Vec<usize> = (0..e.margin_shap.len()).collect();
    order.sort_by(|&a, &b| {
        let weight = |k: usize| e.margin_shap[k].abs();
        weight(b).total_cmp(&weight(a)).then(a.cmp(&b))
    });
    order.truncate(args.top);
    let view = RowView {
        model: &model,
        ds: &ds,
        row: i,
        e: &e,
        order: &order,
        window: sequence_window(&model, &ds, i),
    };
    let out = &mut io::stdout().lock();
    if args.json {
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&view.json(args.row))?
        )?;
        Ok(())
    } else {
        view.text(out, args.row)
    }
}

/// The sequence model's verdict on the window ending at row `i`: probability and, per step
/// (oldest first), source line and attention weight.
fn sequence_window(model: &Model, ds: &Dataset, i: usize) -> Option<(f64, Vec<(u64, f64)>)> {
    let seq = model.ensemble.sequence.as_ref()?;
    if ds.entities.len() != ds.n_rows() {
        return None;
    }
    let window = windows(&ds.entities[..=i], seq.window).pop()?;
    let steps: Vec<&[f32]> = window.iter().map(|&r| ds.row(r)).collect();
    let mut attention = vec![0.0; steps.len()];
    let p = model.ensemble.score_window(&steps, &mut attention)?;
    let lines = window.iter().map(|&r| ds.lines[r]);
    Some((p, lines.zip(attention).collect()))
}

/// One explained row, ready to print.
struct RowView<'a> {
    model: &'a Model,
    ds: &'a Dataset,
    row: usize,
    e: &'a Explanation,
    /// Features to list, largest attribution first.
    order: &'a [usize],
    window: Option<(f64, Vec<(u64, f64)>)>,
}

impl RowView<'_> {
    fn is_threat(&self) -> bool {
        self.e.score.probability as f64 >= self.model.ensemble.threshold
    }

    fn type_name(&self) -> Option<&String> {
        self.model
            .type_classes()
            .get(self.e.score.threat_type as usize)
    }

    fn truth(&self) -> Option<(bool, &str)> {
        let ds = self.ds;
        ds.has_labels().then(|| {
            let t = ds.types[self.row] as usize;
            (ds.y[self.row] == 1, ds.type_names[t].as_str())
        })
    }

    fn json(&self, row_number: u64) -> serde_json::Value {
        let (names, e, x) = (
            &self.model.manifest.feature_names,
            self.e,
            self.ds.row(self.row),
        );
        let features: Vec<_> = self
            .order
            .iter()
            .map(|&k| {
                serde_json::json!({
                    "feature": names[k],
                    "value": x[k],
                    "shap": e.margin_shap[k],
                    "anomaly": e.anomaly_contrib[k],
                    "type_shap": e.type_shap.as_ref().map(|t| t[k]),
                })
            })
            .collect();
        let classes = self.model.type_classes();
        serde_json::json!({
            "row": row_number,
            "line": self.ds.lines[self.row],
            "threat": self.is_threat(),
            "score": e.score,
            "threat_type": self.type_name(),
            "margin_base": e.margin_base,
            "type_probabilities": classes.iter().zip(&e.type_probabilities).collect::<Vec<_>>(),
            "features": features,
            "sequence": self.window.as_ref().map(|(p, steps)| serde_json::json!({
                "probability": p,
                "steps": steps.iter().map(|(line, a)| serde_json::json!({"line": line, "attention": a})).collect::<Vec<_>>(),
            })),
            "label": self.truth().map(|(t, name)| serde_json::json!({"threat": t, "type": name})),
        })
    }

    fn text(&self, out: &mut impl Write, row_number: u64) -> Result<()> {
        let (e, s) = (self.e, &self.e.score);
        let verdict = if self.is_threat() { "THREAT" } else { "benign" };
        writeln!(
            out,
            "row {row_number} (line {}): {verdict}  p = {:.4} ± {:.4}  anomaly {:.3}  margin {:+.3}",
            self.ds.lines[self.row], s.probability, s.uncertainty, s.anomaly, s.margin
        )?;
        // A type is only a finding's detail: benign verdicts do not get one.
        if let Some(t) = self.type_name().filter(|_| self.is_threat()) {
            writeln!(
                out,
                "likeliest threat type: {t} ({:.1} % of the threat mass)",
                s.type_confidence * 100.0
            )?;
        }
        if let Some((threat, name)) = self.truth() {
            let label = if threat { "threat" } else { "benign" };
            writeln!(out, "label in the data: {label} ({name})")?;
        }
        writeln!(
            out,
            "\nboosted-tree margin = base {:+.3} + contributions (TreeSHAP); anomaly = Σ path attributions",
            e.margin_base
        )?;
        writeln!(
            out,
            "  {:<28} {:>12} {:>10} {:>9}",
            "feature", "value", "shap", "anomaly"
        )?;
        let (names, x) = (&self.model.manifest.feature_names, self.ds.row(self.row));
        for &k in self.order {
            writeln!(
                out,
                "  {:<28} {:>12.4} {:>+10.4} {:>9.4}",
                names[k], x[k], e.margin_shap[k], e.anomaly_contrib[k]
            )?;
        }
        if let Some((p, steps)) = &self.window {
            writeln!(
                out,
                "\nsequence model over the entity's last {} rows: p = {p:.4}; attention (which steps mattered):",
                steps.len()
            )?;
            for (line, a) in steps {
                let bar = "#".repeat((a * 40.0).round() as usize);
                writeln!(out, "  line {line:>8}  {a:>6.3}  {bar}")?;
            }
        }
        Ok(())
    }
}

pub fn gen(args: GenArgs) -> Result<()> {
    let rows = generate(&GenConfig {
        rows: args.rows,
        seed: args.seed,
        noise: args.noise,
        mixed: args.mixed,
    });
    match &args.out {
        Some(path) => {
            let file = std::fs::File::create(path)
                .with_context(|| format!("creating {}", path.display()))?;
            let mut w = BufWriter::new(file);
            write_csv(&rows, &mut w)?;
            w.flush()?;
        }
        None => {
            let mut w = BufWriter::new(io::stdout().lock());
            write_csv(&rows, &mut w)?;
            w.flush()?;
        }
    }
    Ok(())
}

fn load_model(dir: &Path) -> Result<Model> {
    Model::load(dir).with_context(|| format!("loading the model in {}", dir.display()))
}

fn load_table(model: &Model, path: &Path, no_header: bool) -> Result<RawTable> {
    let has_header = model.manifest.has_header && !no_header;
    Ok(RawTable::read(path, has_header)
        .with_context(|| format!("reading {}", path.display()))?
        .0)
}

/// The table's rows through the model's feature set, with labels if asked and entities
/// when the model has a sequence model and the table its entity column.
fn dataset(model: &Model, table: &RawTable, path: &Path, labels: bool) -> Result<Dataset> {
    let labels = labels.then_some(&model.manifest.labels);
    let mut ds =
        Dataset::from_table(table, &model.manifest.feature_set, labels).with_context(|| {
            format!(
                "{} does not fit the model's schema ({} feature set)",
                path.display(),
                model.manifest.feature_set.name()
            )
        })?;
    if let Some(col) = &model.manifest.entity_column {
        if table.column_index(col).is_ok() {
            ds.set_entities(table, col)?;
        }
    }
    Ok(ds)
}

fn pct(v: f64) -> String {
    format!("{:.2} %", v * 100.0)
}

fn print_report(out: &mut impl Write, r: &EvalReport) -> io::Result<()> {
    let b = &r.binary;
    writeln!(
        out,
        "  rows {}  accuracy {}  precision {}  recall {}  F1 {}  FPR {}",
        b.rows,
        pct(b.accuracy),
        pct(b.precision),
        pct(b.recall),
        pct(b.f1),
        pct(b.fpr)
    )?;
    writeln!(
        out,
        "  ROC-AUC {:.5}  PR-AUC {:.5}  Brier {:.5}  ECE {:.5}  (threshold {})",
        b.roc_auc, b.pr_auc, b.brier, b.ece, b.threshold
    )?;
    let [[tn, fp], [fn_, tp]] = b.confusion;
    writeln!(out, "  confusion      predicted benign  predicted threat")?;
    writeln!(out, "    benign       {tn:>16}  {fp:>16}")?;
    writeln!(out, "    threat       {fn_:>16}  {tp:>16}")?;
    print_classes(out, &b.per_class)?;
    writeln!(out, "  flagged by labelled type:")?;
    for d in &r.detection_by_type {
        writeln!(
            out,
            "    {:<24} {:>6} of {:>6}  {}",
            d.type_name,
            d.flagged,
            d.rows,
            pct(d.rate)
        )?;
    }
    if let Some(t) = &r.types {
        writeln!(
            out,
            "  threat type on threat rows: accuracy {} over {} rows",
            pct(t.accuracy),
            t.rows
        )?;
        print_classes(out, &t.per_class)?;
    }
    if let Some(q) = &r.sequence {
        writeln!(
            out,
            "  sequence model (each row's window): accuracy {}  precision {}  recall {}  FPR {}  ROC-AUC {:.5}",
            pct(q.accuracy),
            pct(q.precision),
            pct(q.recall),
            pct(q.fpr),
            q.roc_auc
        )?;
    }
    if let Some(q) = &r.served {
        writeln!(
            out,
            "  served (a threat when either part says so): accuracy {}  precision {}  recall {}  FPR {}",
            pct(q.accuracy),
            pct(q.precision),
            pct(q.recall),
            pct(q.fpr)
        )?;
    }
    writeln!(
        out,
        "  uncertainty (sd of the fold members): {:.4} on right verdicts, {:.4} on wrong ones",
        r.uncertainty_correct, r.uncertainty_wrong
    )
}

fn print_classes(out: &mut impl Write, classes: &[ClassReport]) -> io::Result<()> {
    writeln!(
        out,
        "    {:<24} {:>9} {:>9} {:>9} {:>8}",
        "class", "precision", "recall", "F1", "support"
    )?;
    for c in classes {
        writeln!(
            out,
            "    {:<24} {:>9.4} {:>9.4} {:>9.4} {:>8}",
            c.class, c.precision, c.recall, c.f1, c.support
        )?;
    }
    Ok(())
}

fn print_cv(out: &mut impl Write, cv: &CvReport) -> io::Result<()> {
    writeln!(out, "\n{}-fold cross-validation (mean ± sd):", cv.folds)?;
    let line = |name: &str, m: &train::MeanSd| format!("{name} {} ± {}", pct(m.mean), pct(m.sd));
    writeln!(
        out,
        "  {}  {}  {}",
        line("accuracy", &cv.accuracy),
        line("F1", &cv.f1),
        line("FPR", &cv.fpr)
    )?;
    writeln!(
        out,
        "  {}  {}  ROC-AUC {:.5} ± {:.5}",
        line("precision", &cv.precision),
        line("recall", &cv.recall),
        cv.roc_auc.mean,
        cv.roc_auc.sd
    )
}

/// One progress bar per training stage on stderr (hidden when stderr is not a terminal).
struct Bars {
    visible: bool,
    bar: Option<ProgressBar>,
}

impl Bars {
    fn new() -> Self {
        Bars {
            visible: io::stderr().is_terminal(),
            bar: None,
        }
    }

    fn done(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish();
        }
    }
}

impl Progress for Bars {
    fn stage(&mut self, name: &str, steps: u64) {
        self.done();
        if !self.visible {
            return;
        }
        let bar = ProgressBar::with_draw_target(Some(steps), ProgressDrawTarget::stderr());
        if let Ok(style) =
            ProgressStyle::with_template("{prefix:>18} {bar:40} {pos}/{len} {elapsed_precise}")
        {
            bar.set_style(style);
        }
        bar.set_prefix(name.to_string());
        self.bar = Some(bar);
    }

    fn step(&mut self) {
        if let Some(b) = &self.bar {
            b.inc(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn train_args(data: &Path, out: &Path) -> TrainArgs {
        TrainArgs {
            data: data.to_path_buf(),
            features: "agent-behavior".into(),
            label: "is_threat".into(),
            type_label: None,
            negatives: vec![],
            ignore: vec![],
            no_header: false,
            entity: Some("agent_id".into()),
            sequence_epochs: 1,
            out: out.to_path_buf(),
            bundle: None,
            seed: 1,
            trees: 20,
            depth: 3,
            test_fraction: 0.2,
            folds: 3,
            cv: None,
            json: true,
        }
    }

    #[test]
    fn gen_train_eval_explain_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("gen.csv");
        let model_dir = dir.path().join("model");
        gen(GenArgs {
            kind: "agent-behavior".into(),
            rows: 1200,
            seed: 3,
            noise: false,
            mixed: true,
            out: Some(data.clone()),
        })
        .unwrap();
        let bundle = dir.path().join("model.bundle");
        train(TrainArgs {
            bundle: Some(bundle.clone()),
            ..train_args(&data, &model_dir)
        })
        .unwrap();
        let model = Model::load(&model_dir).unwrap();
        assert_eq!(model.sample.as_ref().map(|s| s.n_rows()), Some(1200));
        assert!(model.manifest.reference.as_ref().unwrap().benign_only);
        let bundled = Model::from_bundle(&std::fs::read(&bundle).unwrap()).unwrap();
        assert_eq!(bundled.manifest, model.manifest);
        // The type column was picked up without --type-label.
        assert_eq!(
            model.manifest.labels.type_column.as_deref(),
            Some("threat_type")
        );
        assert!(model.ensemble.sequence.is_some());
        assert!(model.manifest.metrics.sequence.is_some());
        assert!(model.manifest.metrics.binary.accuracy > 0.95);
        eval(EvalArgs {
            model: model_dir.clone(),
            data: data.clone(),
            no_header: false,
            json: false,
        })
        .unwrap();
        let explain_args = |row| ExplainArgs {
            model: model_dir.clone(),
            data: data.clone(),
            row,
            no_header: false,
            top: 5,
            json: false,
        };
        explain(explain_args(1)).unwrap();
        let err = explain(explain_args(5000)).unwrap_err();
        assert!(err.to_string().contains("past the 1200 data rows"), "{err}");
    }

    #[test]
    fn data_of_another_schema_is_refused_with_the_missing_column() {
        let dir = tempfile::tempdir().unwrap();
        let tabular = dir.path().join("t.csv");
        let mut rows = String::from("size,proto,label\n");
        for i in 0..400 {
            let proto = ["tcp", "udp"][i % 2];
            rows.push_str(&format!("{},{proto},{}\n", i % 50, u8::from(i % 50 > 40)));
        }
        std::fs::write(&tabular, rows).unwrap();
        let model_dir = dir.path().join("m");
        let args = TrainArgs {
            features: "tabular".into(),
            label: "label".into(),
            entity: None,
            ..train_args(&tabular, &model_dir)
        };
        train(args).unwrap();
        let other = dir.path().join("o.csv");
        std::fs::write(&other, "size,label\n1,0\n").unwrap();
        let err = eval(EvalArgs {
            model: model_dir,
            data: other,
            no_header: false,
            json: true,
        })
        .unwrap_err();
        assert!(format!("{err:#}").contains("no column `proto`"), "{err:#}");
    }
}
