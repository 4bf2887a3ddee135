//! The learned fusion: an L2-regularised logistic regression over the detectors' held-out
//! scores (boosted-tree margin, isolation-forest score), fitted by Newton's method.
//!
//! Fitted on out-of-fold scores (rows the scoring detectors never trained on), it is Platt
//! scaling with more
//! than one input: its output is a calibrated probability (the metrics report Brier score and
//! expected calibration error to show it). Inputs are standardised first, so the fixed L2
//! penalty means the same for every input and keeps the weights finite when the rows are
//! separable, which they often are.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Logistic {
    pub mean: Vec<f64>,
    pub scale: Vec<f64>,
    pub weights: Vec<f64>,
    pub bias: f64,
}

const NEWTON_STEPS: usize = 50;

impl Logistic {
    /// Fits on `inputs` (row-major, `dim` per row) and 0/1 targets `y`.
    pub fn fit(inputs: &[f64], dim: usize, y: &[u8], l2: f64) -> Result<Self, String> {
        let n = y.len();
        if n == 0 || dim == 0 || inputs.len() != n * dim {
            return Err(format!(
                "fusion needs rows: {} inputs for {n} rows of {dim}",
                inputs.len()
            ));
        }
        let (mean, scale) = standardiser(inputs, dim);
        let z: Vec<f64> = inputs
            .chunks_exact(dim)
            .flat_map(|r| {
                (0..dim)
                    .map(|j| (r[j] - mean[j]) / scale[j])
                    .collect::<Vec<_>>()
            })
            .collect();
        // Parameters: weights then bias (the bias is not penalised).
        let p = dim + 1;
        let mut theta = vec![0.0; p];
        for _ in 0..NEWTON_STEPS {
            let mut grad = vec![0.0; p];
            let mut hess = vec![0.0; p * p];
            for (row, &t) in z.chunks_exact(dim).zip(y) {
                let eta = theta[dim] + row.iter().zip(&theta).map(|(a, b)| a * b).sum::<f64>();
                let q = crate::gbt::sigmoid(eta);
                let w = (q * (1.0 - q)).max(1e-12);
                let r = q - f64::from(t);
                for a in 0..p {
                    let xa = if a == dim { 1.0 } else { row[a] };
                    grad[a] += r * xa;
                    for b in 0..p {
                        let xb = if b == dim { 1.0 } else { row[b] };
                        hess[a * p + b] += w * xa * xb;
                    }
                }
            }
            for a in 0..dim {
                grad[a] += l2 * theta[a];
                hess[a * p + a] += l2;
            }
            let step = solve(&mut hess, &mut grad, p)?;
            let mut max_step: f64 = 0.0;
            for (t, s) in theta.iter_mut().zip(&step) {
                *t -= s;
                max_step = max_step.max(s.abs());
            }
            if max_step < 1e-10 {
                break;
            }
        }
        Ok(Logistic {
            mean,
            scale,
            bias: theta[dim],
            weights: theta[..dim].to_vec(),
        })
    }

    pub fn logit(&self, x: &[f64]) -> f64 {
        self.bias
            + x.iter()
                .zip(&self.weights)
                .zip(self.mean.iter().zip(&self.scale))
                .map(|((v, w), (m, s))| w * (v - m) / s)
                .sum::<f64>()
    }

    pub fn predict(&self, x: &[f64]) -> f64 {
        crate::gbt::sigmoid(self.logit(x))
    }

    pub fn dim(&self) -> usize {
        self.weights.len()
    }
}

fn standardiser(inputs: &[f64], dim: usize) -> (Vec<f64>, Vec<f64>) {
    let n = (inputs.len() / dim) as f64;
    let mut mean = vec![0.0; dim];
    for r in inputs.chunks_exact(dim) {
        for (m, v) in mean.iter_mut().zip(r) {
            *m += v / n;
        }
    }
    let mut var = vec![0.0; dim];
    for r in inputs.chunks_exact(dim) {
        for ((s, v), m) in var.iter_mut().zip(r).zip(&mean) {
            *s += (v - m).powi(2) / n;
        }
    }
    let scale = var
        .into_iter()
        .map(|v| if v > 1e-24 { v.sqrt() } else { 1.0 })
        .collect();
    (mean, scale)
}

/// Solves `a · x = b` (row-major `n × n`) by Gaussian elimination with partial pivoting.
fn solve(a: &mut [f64], b: &mut [f64], n: usize) -> Result<Vec<f64>, String> {
    for col in 0..n {
        let pivot = (col..n)
            .max_by(|&i, &j| a[i * n + col].abs().total_cmp(&a[j * n + col].abs()))
            .unwrap_or(col);
        if a[pivot * n + col].abs() < 1e-300 {
            return Err("singular system while fitting the fusion".into());
        }
        for k in 0..n {
            a.swap(col * n + k, pivot * n + k);
        }
        b.swap(col, pivot);
        for row in col + 1..n {
            let f = a[row * n + col] / a[col * n + col];
            for k in col..n {
                a[row * n + k] -= f * a[col * n + k];
            }
            b[row] -= f * b[col];
        }
    }
    let mut x = vec![0.0; n];
    for row in (0..n).rev() {
        let s: f64 = (row + 1..n).map(|k| a[row * n + k] * x[k]).sum();
        x[row] = (b[row] - s) / a[row * n + row];
    }
    Ok(x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    #[test]
    fn recovers_a_known_model_and_is_calibrated() {
        let mut rng = Rng::new(5);
        let (n, mut inputs, mut y) = (20_000, Vec::new(), Vec::new());
        for _ in 0..n {
            let a = rng.normal(0.0, 1.0);
            let b = rng.normal(3.0, 2.0);
            let p = crate::gbt::sigmoid(1.5 * a - 0.5 * (b - 3.0) + 0.25);
            inputs.extend([a, b]);
            y.push(u8::from(rng.bernoulli(p)));
        }
        let m = Logistic::fit(&inputs, 2, &y, 1e-6).unwrap();
        // Weights are on standardised inputs: b's sd is 2.
        assert!((m.weights[0] - 1.5).abs() < 0.1, "{m:?}");
        assert!((m.weights[1] / m.scale[1] + 0.5).abs() < 0.05, "{m:?}");
        let mean_p: f64 = inputs.chunks_exact(2).map(|r| m.predict(r)).sum::<f64>() / n as f64;
        let rate = y.iter().map(|&v| f64::from(v)).sum::<f64>() / n as f64;
        assert!((mean_p - rate).abs() < 0.01);
    }

    #[test]
    fn separable_data_keeps_finite_weights() {
        let inputs: Vec<f64> = (0..100).map(|i| i as f64).collect();
        let y: Vec<u8> = (0..100).map(|i| u8::from(i >= 50)).collect();
        let m = Logistic::fit(&inputs, 1, &y, 1.0).unwrap();
        assert!(m.weights[0].is_finite() && m.weights[0] > 0.0);
        assert!(m.predict(&[99.0]) > 0.9 && m.predict(&[0.0]) < 0.1);
    }

    #[test]
    fn rejects_shape_errors() {
        assert!(Logistic::fit(&[1.0, 2.0, 3.0], 2, &[1, 0], 1.0).is_err());
    }
}
