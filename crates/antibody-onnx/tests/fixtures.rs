//! The committed fixture models (see `fixtures/make_fixtures.py` for their weights).

use antibody_ml::features::RawRow;
use antibody_ml::model::NO_TYPE;
use antibody_ml::serve::{Prediction, Scorer};
use antibody_onnx::{Limits, OnnxError, OnnxScorer, OnnxSpec, OutputKind, BATCH_ROWS};
use proptest::prelude::*;

const LOGREG_W: [f64; 3] = [0.5, -3.0, 0.25];
const LOGREG_B: f64 = -0.1;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn spec(features: &[&str], output: OutputKind) -> OnnxSpec {
    OnnxSpec::new(features.iter().map(|s| s.to_string()).collect(), output)
}

/// Default size limit, but a time limit no machine misses: these tests are about scores, and
/// a loaded CI machine running a debug build must not fail them (the probe's verdicts are
/// tested with a fake stopwatch in `scorer.rs`).
fn limits() -> Limits {
    Limits {
        max_batch_ms: 60_000,
        ..Limits::default()
    }
}

fn load(name: &str, spec: OnnxSpec) -> Result<OnnxScorer, OnnxError> {
    OnnxScorer::load(&fixture(name), spec, &limits())
}

fn logreg() -> OnnxScorer {
    load(
        "logreg.onnx",
        spec(&["a", "b", "c"], OutputKind::Probability),
    )
    .unwrap()
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

fn logreg_by_hand(x: &[f32]) -> f64 {
    let z: f64 = x.iter().zip(LOGREG_W).map(|(&x, w)| f64::from(x) * w).sum();
    sigmoid(z + LOGREG_B)
}

fn score_all(s: &dyn Scorer, rows: &[f32]) -> Vec<f32> {
    let mut out = vec![Prediction::default(); rows.len() / s.feature_names().len()];
    s.score_batch(rows, &mut out);
    out.iter().map(|p| p.score).collect()
}

/// Deterministic rows in [-3, 3].
fn rows(n: usize, k: usize) -> Vec<f32> {
    (0..n * k)
        .map(|i| ((i * 7919 % 601) as f32 / 100.0) - 3.0)
        .collect()
}

#[test]
fn logistic_regression_scores_match_a_hand_computation() {
    let s = logreg();
    assert_eq!(s.format(), "onnx");
    assert_eq!(s.input_columns(), ["a", "b", "c"]);
    assert_eq!(s.feature_names(), s.input_columns());
    assert_eq!(s.threshold(), 0.5);
    let x = [1.0f32, 2.0, 4.0];
    let mut out = [Prediction::default()];
    s.score_batch(&x, &mut out);
    // z = 0.5·1 − 3·2 + 0.25·4 − 0.1 = −4.6
    let want = 1.0 / (1.0 + 4.6f64.exp());
    assert!(
        (f64::from(out[0].score) - want).abs() < 1e-6,
        "{out:?} vs {want}"
    );
    assert_eq!(out[0].uncertainty, 0.0);
    assert_eq!(out[0].threat_type, NO_TYPE);
    assert_eq!(s.errors(), 0);
    assert!(s.probe_time() > std::time::Duration::ZERO);
}

#[test]
fn batches_longer_than_one_chunk_score_every_row() {
    let s = logreg();
    let n = BATCH_ROWS * 2 + 17;
    let x = rows(n, 3);
    let got = score_all(&s, &x);
    assert_eq!(got.len(), n);
    for (i, g) in got.iter().enumerate() {
        let want = logreg_by_hand(&x[i * 3..i * 3 + 3]);
        assert!(
            (f64::from(*g) - want).abs() < 1e-5,
            "row {i}: {g} vs {want}"
        );
    }
    assert!(got.iter().any(|&g| g >= s.threshold()));
    assert!(got.iter().any(|&g| g < s.threshold()));
}

#[test]
fn logit_output_is_squashed_to_the_same_probabilities() {
    let p = logreg();
    let l = load(
        "logreg_logit.onnx",
        spec(&["a", "b", "c"], OutputKind::Logit),
    )
    .unwrap();
    let x = rows(100, 3);
    for (a, b) in score_all(&p, &x).iter().zip(score_all(&l, &x)) {
        assert!((a - b).abs() < 1e-6, "{a} vs {b}");
    }
}

#[test]
fn occlusion_contributions_rank_the_heavy_feature_first() {
    let s = logreg();
    let x = [1.0f32, 2.0, 4.0];
    let mut phi = [0.0f64; 3];
    s.contributions(&x, &mut phi);
    let full = logreg_by_hand(&x);
    for (i, got) in phi.iter().enumerate() {
        let mut occluded = x;
        occluded[i] = 0.0;
        let want = full - logreg_by_hand(&occluded);
        assert!((got - want).abs() < 1e-5, "feature {i}: {got} vs {want}");
    }
    let top = (0..3)
        .max_by(|&a, &b| phi[a].abs().total_cmp(&phi[b].abs()))
        .unwrap();
    assert_eq!(top, 1, "{phi:?}");
    assert!(phi[1] < 0.0, "a large b pushes the score down: {phi:?}");
}

#[test]
fn contributions_of_a_model_wider_than_a_batch_cover_every_feature() {
    const K: usize = 300;
    let w = |i: usize| f64::from((i % 7) as i32 - 3) * 0.01;
    let names: Vec<String> = (0..K).map(|i| format!("f{i}")).collect();
    let s = OnnxScorer::load(
        &fixture("wide.onnx"),
        OnnxSpec::new(names, OutputKind::Probability),
        &limits(),
    )
    .unwrap();
    let x: Vec<f32> = (0..K).map(|i| (i % 11) as f32 - 5.0).collect();
    let z: f64 = (0..K).map(|i| w(i) * f64::from(x[i])).sum();
    let mut phi = vec![0.0f64; K];
    s.contributions(&x, &mut phi);
    for (i, got) in phi.iter().enumerate() {
        let want = sigmoid(z) - sigmoid(z - w(i) * f64::from(x[i]));
        assert!((got - want).abs() < 1e-5, "feature {i}: {got} vs {want}");
    }
    assert!(phi[K - 1] != 0.0, "the last feature is in the second batch");
    assert_eq!(s.errors(), 0);
}

#[test]
fn contributions_are_measured_against_the_baseline() {
    let mut sp = spec(&["a", "b", "c"], OutputKind::Probability);
    sp.baseline = Some(vec![1.0, 2.0, 4.0]);
    let s = load("logreg.onnx", sp).unwrap();
    let mut phi = [9.0f64; 3];
    s.contributions(&[1.0, 2.0, 4.0], &mut phi);
    assert_eq!(phi, [0.0; 3]);
    s.contributions(&[1.0, 0.0, 4.0], &mut phi);
    let want = logreg_by_hand(&[1.0, 0.0, 4.0]) - logreg_by_hand(&[1.0, 2.0, 4.0]);
    assert!((phi[1] - want).abs() < 1e-5, "{phi:?} vs {want}");
    assert_eq!([phi[0], phi[2]], [0.0, 0.0]);
}

#[test]
fn two_class_softmax_scores_the_threat_column_even_if_declared_for_one_row() {
    // Declared input [1, 2]; it runs batched all the same.
    let s = load("two_class.onnx", spec(&["x", "y"], OutputKind::TwoClass)).unwrap();
    let x = rows(BATCH_ROWS + 3, 2);
    let got = score_all(&s, &x);
    for (i, g) in got.iter().enumerate() {
        let (a, b) = (f64::from(x[2 * i]), f64::from(x[2 * i + 1]));
        // softmax column 1 of [a − 2b, −a + 2b + 0.5] = sigmoid(−2a + 4b + 0.5)
        let want = sigmoid(-2.0 * a + 4.0 * b + 0.5);
        assert!(
            (f64::from(*g) - want).abs() < 1e-5,
            "row {i}: {g} vs {want}"
        );
    }
}

#[test]
fn wrong_input_rank_or_width_is_refused_naming_the_shape() {
    let err = load(
        "wrong_rank.onnx",
        spec(&["a", "b", "c"], OutputKind::Probability),
    )
    .unwrap_err();
    assert!(matches!(err, OnnxError::InputShape { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "model input f32 [N, 3, 1] does not fit the spec: one f32 input of shape [N, 3] or [1, 3]"
    );
    let err = load(
        "logreg.onnx",
        spec(&["a", "b", "c", "d"], OutputKind::Probability),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "model input f32 [N, 3] does not fit the spec: one f32 input of shape [N, 4] or [1, 4]"
    );
    let err = load("int_input.onnx", spec(&["a"], OutputKind::Probability)).unwrap_err();
    assert!(err.to_string().contains("input i64 [N, 1]"), "{err}");
}

#[test]
fn an_output_that_does_not_fit_the_kind_is_refused() {
    let err = load("logreg.onnx", spec(&["a", "b", "c"], OutputKind::TwoClass)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "model output f32 [N, 1] does not fit the spec: an f32 output of shape [N, 2]"
    );
    let err = load("two_class.onnx", spec(&["x", "y"], OutputKind::Logit)).unwrap_err();
    assert!(err.to_string().contains("f32 [N, 2]"), "{err}");
}

#[test]
fn random_operators_are_refused() {
    let err = load("random_noise.onnx", spec(&["a"], OutputKind::Probability)).unwrap_err();
    assert!(
        matches!(&err, OnnxError::ForbiddenOp { op, .. } if op == "RandomNormalLike"),
        "{err:?}"
    );
    assert!(err.to_string().contains("deterministic"), "{err}");
}

#[test]
fn garbage_truncated_and_oversized_files_are_clear_errors() {
    let err = load_bytes(b"this is not an onnx model").unwrap_err();
    assert!(matches!(err, OnnxError::Parse(_)), "{err:?}");
    assert!(
        err.to_string().starts_with("cannot read the ONNX model"),
        "{err}"
    );
    let bytes = fixture("logreg.onnx");
    for cut in 1..bytes.len() {
        // Every prefix fails cleanly or (if protobuf happens to end there) loads a model
        // that still has to pass every check; none panics.
        let _ = load_bytes(&bytes[..cut]);
    }
    let err = load_bytes(&bytes[..bytes.len() / 2]).unwrap_err();
    assert!(matches!(err, OnnxError::Parse(_)), "{err:?}");
    let err = load_bytes(&[]).unwrap_err();
    assert!(matches!(err, OnnxError::Parse(_)), "{err:?}");

    let limits = Limits {
        max_bytes: 10,
        ..Limits::default()
    };
    // Refused by size before parsing: garbage reports its size, not a parse error.
    let err = OnnxScorer::load(&[0xff; 11], spec(&["a"], OutputKind::Logit), &limits).unwrap_err();
    assert_eq!(
        err.to_string(),
        "model is 11 bytes, over the limit of 10 bytes"
    );
}

fn load_bytes(bytes: &[u8]) -> Result<OnnxScorer, OnnxError> {
    OnnxScorer::load(
        bytes,
        spec(&["a", "b", "c"], OutputKind::Probability),
        &limits(),
    )
}

#[test]
fn non_finite_outputs_score_zero_and_are_counted() {
    let s = load("sqrt.onnx", spec(&["v"], OutputKind::Probability)).unwrap();
    assert_eq!(score_all(&s, &[-1.0, 0.25, -4.0]), [0.0, 0.5, 0.0]);
    assert_eq!(s.errors(), 2);
}

#[test]
fn a_failing_inference_scores_zero_and_is_counted_never_panics() {
    let s = load("gather.onnx", spec(&["i"], OutputKind::Probability)).unwrap();
    assert_eq!(score_all(&s, &[0.0, 2.0]), [0.1, 0.9]);
    assert_eq!(s.errors(), 0);
    // Index 7 is outside the 3-entry table: the whole inference fails.
    assert_eq!(score_all(&s, &[2.0, 7.0, 1.0]), [0.0, 0.0, 0.0]);
    assert_eq!(s.errors(), 3);
    let mut phi = [5.0];
    s.contributions(&[7.0], &mut phi);
    assert_eq!(phi, [0.0]);
}

struct Fields(Vec<&'static str>);

impl RawRow for Fields {
    fn field(&self, input: usize) -> &str {
        self.0.get(input).copied().unwrap_or("")
    }
}

#[test]
fn extraction_parses_each_field_as_a_finite_f32() {
    let s = logreg();
    let mut out = [0f32; 3];
    s.extract(&Fields(vec!["1", " -2.5 ", "3e2"]), &mut out)
        .unwrap();
    assert_eq!(out, [1.0, -2.5, 300.0]);
    let err = s
        .extract(&Fields(vec!["1", "two", "3"]), &mut out)
        .unwrap_err();
    assert_eq!(err.input, 1);
    assert_eq!(err.message, "b: expected a number, found `two`");
    let err = s
        .extract(&Fields(vec!["1", "2", "inf"]), &mut out)
        .unwrap_err();
    assert_eq!(err.input, 2);
    assert!(err.message.contains("not a finite"), "{}", err.message);
    let err = s.extract(&Fields(vec!["1"]), &mut out).unwrap_err();
    assert_eq!(
        (err.input, err.message.as_str()),
        (1, "b: empty field, expected a number")
    );
}

#[test]
fn serves_through_the_trait_object_from_several_threads() {
    let s: std::sync::Arc<dyn Scorer> = std::sync::Arc::new(logreg());
    let x = rows(300, 3);
    let want = score_all(&*s, &x);
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| assert_eq!(score_all(&*s, &x), want));
        }
    });
}

#[test]
fn a_short_rows_buffer_leaves_the_missing_rows_at_zero() {
    let s = logreg();
    let mut out = [Prediction {
        score: 9.0,
        ..Prediction::default()
    }; 2];
    s.score_batch(&[1.0, 2.0, 4.0], &mut out);
    assert!(out[0].score > 0.0 && out[0].score < 0.1);
    assert_eq!(out[1].score, 0.0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = load_bytes(&bytes);
    }

    #[test]
    fn mutated_models_never_panic(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6)
    ) {
        let mut bytes = fixture("two_class.onnx");
        for (at, v) in flips {
            let i = at.index(bytes.len());
            bytes[i] = v;
        }
        if let Ok(s) = OnnxScorer::load(&bytes, spec(&["x", "y"], OutputKind::TwoClass), &limits()) {
            let got = score_all(&s, &rows(4, 2));
            prop_assert!(got.iter().all(|g| (0.0..=1.0).contains(g)));
        }
    }
}
