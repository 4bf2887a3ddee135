//! [`OnnxScorer`]: an uploaded model behind the engine's [`Scorer`] trait.

use crate::error::OnnxError;
use crate::graph::{Graph, BATCH_ROWS};
use crate::spec::{Limits, OnnxSpec, OutputKind};
use antibody_ml::features::{FieldError, RawRow};
use antibody_ml::model::NO_TYPE;
use antibody_ml::serve::{Prediction, Scorer};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Timed probe runs at most: the first run may pay for cold caches.
const PROBE_RUNS: usize = 3;

/// A custom ONNX model, loaded within its limits, scoring like a built-in model.
pub struct OnnxScorer {
    graph: Graph,
    spec: OnnxSpec,
    baseline: Vec<f32>,
    probe: Duration,
    errors: AtomicU64,
}

impl std::fmt::Debug for OnnxScorer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxScorer")
            .field("spec", &self.spec)
            .field("probe", &self.probe)
            .field("errors", &self.errors())
            .finish_non_exhaustive()
    }
}

impl OnnxScorer {
    /// Loads an uploaded model: size limit first (before parsing), then the spec, the graph
    /// checks, and a timed probe batch that must fit `limits.max_batch_ms`.
    pub fn load(bytes: &[u8], spec: OnnxSpec, limits: &Limits) -> Result<Self, OnnxError> {
        Self::load_timed(bytes, spec, limits, |run| {
            let start = Instant::now();
            run()?;
            Ok(start.elapsed())
        })
    }

    /// [`OnnxScorer::load`] with the probe's stopwatch injected (tests use a fake one).
    fn load_timed(
        bytes: &[u8],
        spec: OnnxSpec,
        limits: &Limits,
        mut time: impl FnMut(&mut dyn FnMut() -> Result<(), OnnxError>) -> Result<Duration, OnnxError>,
    ) -> Result<Self, OnnxError> {
        limits.validate()?;
        if bytes.len() > limits.max_bytes {
            return Err(OnnxError::TooLarge {
                size: bytes.len(),
                limit: limits.max_bytes,
            });
        }
        spec.validate()?;
        let graph = Graph::compile(bytes, &spec)?;
        let baseline = spec.baseline_row();
        let batch = baseline.repeat(BATCH_ROWS);
        let probe = probe(limits, || {
            time(&mut || {
                graph
                    .run(&batch)
                    .map(drop)
                    .map_err(|message| OnnxError::Probe {
                        rows: BATCH_ROWS,
                        message,
                    })
            })
        })?;
        tracing::debug!(features = spec.features.len(), ?probe, "onnx model loaded");
        Ok(Self {
            graph,
            spec,
            baseline,
            probe,
            errors: AtomicU64::new(0),
        })
    }

    pub fn spec(&self) -> &OnnxSpec {
        &self.spec
    }

    /// The fastest probe run at load, per [`BATCH_ROWS`]-row batch.
    pub fn probe_time(&self) -> Duration {
        self.probe
    }

    /// Rows scored 0 because inference failed or gave a non-finite value, since load.
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// Scores row-major `rows` in chunks of at most [`BATCH_ROWS`]; `None` where inference
    /// failed (counted in [`OnnxScorer::errors`]).
    fn scores(&self, rows: &[f32], out: &mut Vec<Option<f32>>) {
        let k = self.spec.features.len();
        out.clear();
        for chunk in rows.chunks(BATCH_ROWS * k) {
            let n = chunk.len() / k;
            match self.graph.run(chunk) {
                Ok(values) => out.extend(
                    values
                        .chunks(self.graph.width())
                        .map(|v| to_score(self.spec.output, v)),
                ),
                Err(message) => {
                    tracing::warn!(rows = n, %message, "onnx inference failed");
                    out.extend(std::iter::repeat_n(None, n));
                }
            }
        }
        let failed = out.iter().filter(|s| s.is_none()).count();
        if failed > 0 {
            self.errors.fetch_add(failed as u64, Ordering::Relaxed);
        }
    }
}

/// Maps one row of output to a score in [0, 1]; `None` for a non-finite value.
fn to_score(kind: OutputKind, v: &[f32]) -> Option<f32> {
    let x = match kind {
        OutputKind::Probability => *v.first()?,
        OutputKind::Logit => 1.0 / (1.0 + (-v.first()?).exp()),
        OutputKind::TwoClass => *v.get(1)?,
    };
    x.is_finite().then(|| x.clamp(0.0, 1.0))
}

/// Times the probe up to [`PROBE_RUNS`] times and accepts the first run within the limit;
/// gives up at once on a run over ten times the limit, so a hostile model costs little.
fn probe(
    limits: &Limits,
    mut timed_run: impl FnMut() -> Result<Duration, OnnxError>,
) -> Result<Duration, OnnxError> {
    let limit = Duration::from_millis(limits.max_batch_ms);
    let mut best = Duration::MAX;
    for _ in 0..PROBE_RUNS {
        let took = timed_run()?;
        best = best.min(took);
        if best <= limit || took > limit * 10 {
            break;
        }
    }
    if best <= limit {
        return Ok(best);
    }
    Err(OnnxError::TooSlow {
        took_ms: best.as_secs_f64() * 1e3,
        rows: BATCH_ROWS,
        limit_ms: limits.max_batch_ms,
    })
}

impl Scorer for OnnxScorer {
    fn format(&self) -> &'static str {
        "onnx"
    }

    fn input_columns(&self) -> &[String] {
        &self.spec.features
    }

    fn feature_names(&self) -> &[String] {
        &self.spec.features
    }

    fn extract(&self, row: &dyn RawRow, out: &mut [f32]) -> Result<(), FieldError> {
        for (i, slot) in out.iter_mut().enumerate().take(self.spec.features.len()) {
            *slot = parse_f32(row.field(i)).map_err(|why| FieldError {
                input: i,
                message: format!("{}: {why}", self.spec.features[i]),
            })?;
        }
        Ok(())
    }

    fn threshold(&self) -> f32 {
        self.spec.threshold
    }

    fn score_batch(&self, rows: &[f32], out: &mut [Prediction]) {
        let k = self.spec.features.len();
        let n = out.len().min(rows.len() / k);
        let mut scores = Vec::with_capacity(n);
        self.scores(&rows[..n * k], &mut scores);
        for (i, p) in out.iter_mut().enumerate() {
            *p = Prediction {
                score: scores.get(i).copied().flatten().unwrap_or(0.0),
                uncertainty: 0.0,
                threat_type: NO_TYPE,
                type_confidence: 0.0,
            };
        }
    }

    /// Occlusion: each feature's contribution is score(x) − score(x with that feature set
    /// to its baseline value). The k + 1 rows go through one batched inference (one per
    /// [`BATCH_ROWS`] rows for wider models, so the buffer stays bounded).
    fn contributions(&self, row: &[f32], out: &mut [f64]) {
        out.fill(0.0);
        let k = self.spec.features.len();
        let Some(x) = row.get(..k) else { return };
        let mut rows = Vec::with_capacity(BATCH_ROWS.min(k + 1) * k);
        let mut scores = Vec::with_capacity(k + 1);
        let mut chunk_scores = Vec::new();
        // Row 0 is x itself; row r > 0 occludes feature r − 1.
        for start in (0..=k).step_by(BATCH_ROWS) {
            rows.clear();
            for r in start..(k + 1).min(start + BATCH_ROWS) {
                rows.extend_from_slice(x);
                if let Some(i) = r.checked_sub(1) {
                    let at = rows.len() - k + i;
                    rows[at] = self.baseline[i];
                }
            }
            self.scores(&rows, &mut chunk_scores);
            scores.extend_from_slice(&chunk_scores);
        }
        let Some(Some(full)) = scores.first().copied() else {
            return;
        };
        for (o, s) in out.iter_mut().zip(&scores[1..]) {
            *o = s.map_or(0.0, |s| f64::from(full) - f64::from(s));
        }
    }
}

/// A finite f32, with the reason it is not one.
fn parse_f32(field: &str) -> Result<f32, String> {
    let t = field.trim();
    match t.parse::<f32>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(_) => Err(format!("`{t}` is not a finite 32-bit number")),
        Err(_) if t.is_empty() => Err("empty field, expected a number".into()),
        Err(_) => Err(format!("expected a number, found `{}`", clip(t, 40))),
    }
}

fn clip(s: &str, max: usize) -> &str {
    s.char_indices().nth(max).map_or(s, |(i, _)| &s[..i])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    /// Runs `probe` against scripted timings; returns its verdict and how many runs it made.
    fn probe_with(limit_ms: u64, times: &[u64]) -> (Result<Duration, OnnxError>, usize) {
        let limits = Limits {
            max_batch_ms: limit_ms,
            ..Limits::default()
        };
        let mut calls = 0;
        let verdict = probe(&limits, || {
            calls += 1;
            Ok(ms(times[calls - 1]))
        });
        (verdict, calls)
    }

    #[test]
    fn probe_accepts_the_first_run_within_the_limit() {
        let (v, calls) = probe_with(50, &[10]);
        assert_eq!(v.unwrap(), ms(10));
        assert_eq!(calls, 1);
        // A cold first run is forgiven when a later one fits.
        let (v, calls) = probe_with(50, &[80, 40]);
        assert_eq!(v.unwrap(), ms(40));
        assert_eq!(calls, 2);
    }

    #[test]
    fn probe_refuses_a_slow_model_and_names_the_time() {
        let (v, calls) = probe_with(50, &[70, 60, 55]);
        assert_eq!(calls, 3);
        let err = v.unwrap_err();
        assert!(matches!(
            err,
            OnnxError::TooSlow {
                rows: BATCH_ROWS,
                limit_ms: 50,
                ..
            }
        ));
        assert_eq!(
            err.to_string(),
            "model takes 55.0 ms per 256-row batch, over the limit of 50 ms"
        );
        // Far over the limit: no second try.
        let (v, calls) = probe_with(50, &[501]);
        assert!(v.is_err());
        assert_eq!(calls, 1);
    }

    #[test]
    fn probe_passes_inference_errors_through() {
        let err = probe(&Limits::default(), || {
            Err(OnnxError::Probe {
                rows: 1,
                message: "boom".into(),
            })
        })
        .unwrap_err();
        assert!(err.to_string().contains("boom"));
    }

    #[test]
    fn outputs_map_to_scores() {
        assert_eq!(to_score(OutputKind::Probability, &[0.25]), Some(0.25));
        assert_eq!(to_score(OutputKind::Probability, &[1.5]), Some(1.0));
        assert_eq!(to_score(OutputKind::Probability, &[f32::NAN]), None);
        assert_eq!(to_score(OutputKind::Logit, &[0.0]), Some(0.5));
        assert!(to_score(OutputKind::Logit, &[100.0]).unwrap() > 0.999);
        assert_eq!(to_score(OutputKind::Logit, &[-1000.0]), Some(0.0));
        assert_eq!(to_score(OutputKind::Logit, &[f32::INFINITY]), Some(1.0));
        assert_eq!(to_score(OutputKind::Logit, &[f32::NAN]), None);
        assert_eq!(to_score(OutputKind::TwoClass, &[0.3, 0.7]), Some(0.7));
        assert_eq!(to_score(OutputKind::TwoClass, &[0.3]), None);
    }

    #[test]
    fn fields_parse_as_finite_f32() {
        assert_eq!(parse_f32(" 1.5 "), Ok(1.5));
        assert_eq!(parse_f32("-2e3"), Ok(-2000.0));
        assert!(parse_f32("1e39").unwrap_err().contains("not a finite"));
        assert!(parse_f32("NaN").unwrap_err().contains("not a finite"));
        assert!(parse_f32("").unwrap_err().contains("empty"));
        let long = "x".repeat(100);
        let err = parse_f32(&long).unwrap_err();
        assert!(err.contains("found `xxxx"), "{err}");
        assert!(err.len() < 80, "{err}");
    }
}
