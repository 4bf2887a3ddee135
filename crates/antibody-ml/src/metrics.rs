//! Evaluation: binary detection metrics (accuracy, precision, recall, F1, FPR, ROC-AUC,
//! PR-AUC, calibration, confusion matrix), per-class reports, and threat-type metrics.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BinaryMetrics {
    pub rows: u64,
    pub threshold: f64,
    pub accuracy: f64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// False-positive rate: benign rows flagged / benign rows.
    pub fpr: f64,
    pub roc_auc: f64,
    /// Average precision (the step-wise area under the precision-recall curve).
    pub pr_auc: f64,
    /// Mean squared error of the probabilities.
    pub brier: f64,
    /// Expected calibration error over 10 equal-width probability bins.
    pub ece: f64,
    /// `[[true negatives, false positives], [false negatives, true positives]]`.
    pub confusion: [[u64; 2]; 2],
    /// Per class (`benign`, `threat`).
    pub per_class: Vec<ClassReport>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassReport {
    pub class: String,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: u64,
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

fn f1(p: f64, r: f64) -> f64 {
    if p + r == 0.0 {
        0.0
    } else {
        2.0 * p * r / (p + r)
    }
}

impl BinaryMetrics {
    /// `probs[i]` is the predicted probability that row `i` is a threat; `y[i]` is 0/1.
    pub fn compute(probs: &[f64], y: &[u8], threshold: f64) -> Self {
        let mut c = [[0u64; 2]; 2];
        for (&p, &t) in probs.iter().zip(y) {
            c[usize::from(t == 1)][usize::from(p >= threshold)] += 1;
        }
        let [[tn, fp], [fn_, tp]] = c;
        let precision = ratio(tp, tp + fp);
        let recall = ratio(tp, tp + fn_);
        let class = |name: &str, p: f64, r: f64, support| ClassReport {
            class: name.into(),
            precision: p,
            recall: r,
            f1: f1(p, r),
            support,
        };
        let (neg_p, neg_r) = (ratio(tn, tn + fn_), ratio(tn, tn + fp));
        BinaryMetrics {
            rows: probs.len() as u64,
            threshold,
            accuracy: ratio(tp + tn, tp + tn + fp + fn_),
            precision,
            recall,
            f1: f1(precision, recall),
            fpr: ratio(fp, fp + tn),
            roc_auc: roc_auc(probs, y),
            pr_auc: average_precision(probs, y),
            brier: probs
                .iter()
                .zip(y)
                .map(|(p, &t)| (p - f64::from(t)).powi(2))
                .sum::<f64>()
                / probs.len().max(1) as f64,
            ece: expected_calibration_error(probs, y, 10),
            confusion: c,
            per_class: vec![
                class("benign", neg_p, neg_r, tn + fp),
                class("threat", precision, recall, tp + fn_),
            ],
        }
    }
}

/// Indices sorted by descending score (ties in index order, for determinism).
fn by_score_desc(scores: &[f64]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    idx
}

/// Area under the ROC curve, ties counted half (the Mann–Whitney statistic).
pub fn roc_auc(scores: &[f64], y: &[u8]) -> f64 {
    let idx = by_score_desc(scores);
    let pos = y.iter().filter(|&&t| t == 1).count() as f64;
    let neg = y.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return 0.0;
    }
    // For each negative, count positives scored above it (+½ per tie).
    let mut area = 0.0;
    let mut pos_above = 0.0;
    let mut i = 0;
    while i < idx.len() {
        let s = scores[idx[i]];
        let mut j = i;
        let (mut p_tie, mut n_tie) = (0.0, 0.0);
        while j < idx.len() && scores[idx[j]] == s {
            if y[idx[j]] == 1 {
                p_tie += 1.0;
            } else {
                n_tie += 1.0;
            }
            j += 1;
        }
        area += n_tie * (pos_above + p_tie / 2.0);
        pos_above += p_tie;
        i = j;
    }
    area / (pos * neg)
}

/// Average precision: Σ over thresholds of (recall step) × precision.
pub fn average_precision(scores: &[f64], y: &[u8]) -> f64 {
    let idx = by_score_desc(scores);
    let pos = y.iter().filter(|&&t| t == 1).count() as f64;
    if pos == 0.0 {
        return 0.0;
    }
    let (mut tp, mut seen, mut ap) = (0.0, 0.0, 0.0);
    let mut i = 0;
    while i < idx.len() {
        let s = scores[idx[i]];
        let mut new_tp = 0.0;
        while i < idx.len() && scores[idx[i]] == s {
            new_tp += f64::from(y[idx[i]] == 1);
            seen += 1.0;
            i += 1;
        }
        tp += new_tp;
        ap += (new_tp / pos) * (tp / seen);
    }
    ap
}

fn expected_calibration_error(probs: &[f64], y: &[u8], bins: usize) -> f64 {
    let mut sum_p = vec![0.0; bins];
    let mut sum_y = vec![0.0; bins];
    let mut count = vec![0.0; bins];
    for (&p, &t) in probs.iter().zip(y) {
        let b = ((p * bins as f64) as usize).min(bins - 1);
        sum_p[b] += p;
        sum_y[b] += f64::from(t);
        count[b] += 1.0;
    }
    let n = probs.len().max(1) as f64;
    (0..bins)
        .map(|b| (sum_p[b] - sum_y[b]).abs() / n)
        .sum::<f64>()
}

/// Multi-class metrics over named classes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TypeMetrics {
    pub rows: u64,
    pub accuracy: f64,
    pub classes: Vec<String>,
    /// `confusion[true][predicted]`.
    pub confusion: Vec<Vec<u64>>,
    pub per_class: Vec<ClassReport>,
}

impl TypeMetrics {
    pub fn compute(truth: &[u16], predicted: &[u16], classes: &[String]) -> Self {
        let k = classes.len();
        let mut confusion = vec![vec![0u64; k]; k];
        for (&t, &p) in truth.iter().zip(predicted) {
            if (t as usize) < k && (p as usize) < k {
                confusion[t as usize][p as usize] += 1;
            }
        }
        let correct: u64 = (0..k).map(|i| confusion[i][i]).sum();
        let total: u64 = confusion.iter().flatten().sum();
        let per_class = (0..k)
            .map(|i| {
                let support: u64 = confusion[i].iter().sum();
                let predicted: u64 = confusion.iter().map(|r| r[i]).sum();
                let (p, r) = (
                    ratio(confusion[i][i], predicted),
                    ratio(confusion[i][i], support),
                );
                ClassReport {
                    class: classes[i].clone(),
                    precision: p,
                    recall: r,
                    f1: f1(p, r),
                    support,
                }
            })
            .collect();
        TypeMetrics {
            rows: total,
            accuracy: ratio(correct, total),
            classes: classes.to_vec(),
            confusion,
            per_class,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_counts_and_rates() {
        let probs = [0.9, 0.8, 0.3, 0.6, 0.1, 0.2];
        let y = [1, 1, 1, 0, 0, 0];
        let m = BinaryMetrics::compute(&probs, &y, 0.5);
        assert_eq!(m.confusion, [[2, 1], [1, 2]]);
        assert!((m.accuracy - 4.0 / 6.0).abs() < 1e-12);
        assert!((m.precision - 2.0 / 3.0).abs() < 1e-12);
        assert!((m.fpr - 1.0 / 3.0).abs() < 1e-12);
        // Pairs (pos, neg) ordered right: 8 of 9.
        assert!((m.roc_auc - 8.0 / 9.0).abs() < 1e-12);
        // Ranks: 1(+) 2(+) 3(−) 4(+): AP = (1 + 1 + 3/4) / 3.
        assert!((m.pr_auc - (1.0 + 1.0 + 0.75) / 3.0).abs() < 1e-12);
        assert_eq!(m.per_class[1].support, 3);
    }

    #[test]
    fn ties_count_half_and_perfect_is_one() {
        assert!((roc_auc(&[0.5, 0.5], &[1, 0]) - 0.5).abs() < 1e-12);
        assert_eq!(roc_auc(&[0.9, 0.1], &[1, 0]), 1.0);
        assert_eq!(average_precision(&[0.9, 0.1], &[1, 0]), 1.0);
    }

    #[test]
    fn type_report() {
        let classes = vec!["a".to_string(), "b".to_string()];
        let m = TypeMetrics::compute(&[0, 0, 1, 1], &[0, 1, 1, 1], &classes);
        assert_eq!(m.confusion, vec![vec![1, 1], vec![0, 2]]);
        assert!((m.accuracy - 0.75).abs() < 1e-12);
        assert!((m.per_class[1].precision - 2.0 / 3.0).abs() < 1e-12);
    }
}
