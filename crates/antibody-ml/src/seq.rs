//! The sequence model: a GRU over an entity's last events with additive attention, trained by
//! backpropagation through time with Adam; CPU inference exposes the attention weights as
//! "which steps mattered".
//!
//! A window is the last ≤ [`SeqParams::window`] rows of one entity, oldest first, labelled by
//! its newest row. Per step the standardised features (clipped to ±10 σ) go through a GRU
//! cell (`z = σ(W_z x + U_z h + b_z)`, `r = σ(W_r x + U_r h + b_r)`,
//! `n = tanh(W_n x + r ⊙ U_n h + b_n)`, `h' = (1 − z) ⊙ n + z ⊙ h`); attention scores every
//! hidden state (`e_t = v · tanh(W_a h_t + b_a)`, `α = softmax(e)`), and the output is
//! `σ(w_c · Σ α_t h_t + b)`: the attention-pooled context is the only way to the output, so
//! the weights say which steps it read. About 2,000 weights at the defaults.
//!
//! Written here rather than with a tensor crate (candle, burn, tch): the model is small, a
//! hand-written backward pass trains it in seconds on one core, a gradient check in the tests
//! guards it, and nothing heavy joins the build.

use crate::rng::Rng;
use serde::{Deserialize, Serialize};

/// The longest window a model may have.
pub const MAX_WINDOW: usize = 32;
/// The largest hidden state and attention sizes a model may have (training uses 16 each).
pub const MAX_HIDDEN: usize = 128;
pub const MAX_ATTENTION: usize = 128;
/// Multiply-adds one window may cost: `window × weights` (each weight is used about once per
/// step). The defaults cost ~20 k on the agent features (10 steps × 1,985 weights, 12–20 µs);
/// windows at this cap took 0.05–0.17 ms on the 2-core build VM (0.4–1.3 ns per multiply-add,
/// the most for one hidden unit over thousands of features). It leaves room for ~240
/// features at the training defaults.
pub const MAX_SEQUENCE_WORK: usize = 1 << 17;
/// Probability at which the sequence model calls the newest step of a window a threat.
pub const THRESHOLD: f64 = 0.5;
/// Standardised inputs are clipped to this many standard deviations.
const CLIP: f64 = 10.0;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeqParams {
    /// Steps per window (the last events of an entity).
    pub window: usize,
    pub hidden: usize,
    pub attention: usize,
    pub epochs: usize,
    pub batch: usize,
    pub learning_rate: f64,
    pub seed: u64,
}

impl Default for SeqParams {
    fn default() -> Self {
        SeqParams {
            window: 10,
            hidden: 16,
            attention: 16,
            epochs: 12,
            batch: 32,
            learning_rate: 0.01,
            seed: 1,
        }
    }
}

/// For every row, the rows of its window: the last ≤ `len` rows of the same entity up to and
/// including it, oldest first, in data order.
pub fn windows(entities: &[u32], len: usize) -> Vec<Vec<usize>> {
    let mut history: std::collections::HashMap<u32, Vec<usize>> = Default::default();
    entities
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let h = history.entry(*e).or_default();
            h.push(i);
            if h.len() > len {
                h.remove(0);
            }
            h.clone()
        })
        .collect()
}

/// Offsets of each parameter block in the flat weight vector. [`Layout::new`] checks that the
/// whole vector's length fits in `usize`; every offset and block end is at most that length,
/// so the offsets below cannot overflow.
#[derive(Debug, Clone, Copy)]
struct Layout {
    d: usize,
    h: usize,
    a: usize,
    len: usize,
}

impl Layout {
    /// `None` when the weight count, `3h(d + h + 1) + ah + 2a + h + 1`, overflows: sizes read
    /// from a model file must not wrap into a small count that passes the length check.
    fn new(d: usize, h: usize, a: usize) -> Option<Layout> {
        let gru = d
            .checked_add(h)?
            .checked_add(1)?
            .checked_mul(h)?
            .checked_mul(3)?;
        let attention = a.checked_mul(h)?.checked_add(a.checked_mul(2)?)?;
        let len = gru.checked_add(attention)?.checked_add(h)?.checked_add(1)?;
        Some(Layout { d, h, a, len })
    }

    fn w(&self, gate: usize) -> usize {
        gate * self.h * self.d
    }
    fn u(&self, gate: usize) -> usize {
        3 * self.h * self.d + gate * self.h * self.h
    }
    fn b(&self, gate: usize) -> usize {
        3 * self.h * (self.d + self.h) + gate * self.h
    }
    fn wa(&self) -> usize {
        3 * self.h * (self.d + self.h + 1)
    }
    fn ba(&self) -> usize {
        self.wa() + self.a * self.h
    }
    fn v(&self) -> usize {
        self.ba() + self.a
    }
    fn wc(&self) -> usize {
        self.v() + self.a
    }
    fn bo(&self) -> usize {
        self.wc() + self.h
    }
}

/// Checks sizes against the caps and returns their layout.
fn checked_layout(d: usize, h: usize, a: usize, window: usize) -> Result<Layout, String> {
    if !(1..=MAX_WINDOW).contains(&window) {
        return Err(format!(
            "the sequence model's window of {window} steps is outside 1 to {MAX_WINDOW} (MAX_WINDOW)"
        ));
    }
    if d == 0 || h == 0 || a == 0 {
        return Err("the sequence model needs features, a hidden state and attention".into());
    }
    if h > MAX_HIDDEN {
        return Err(format!(
            "the sequence model's hidden size {h} is above {MAX_HIDDEN} (MAX_HIDDEN)"
        ));
    }
    if a > MAX_ATTENTION {
        return Err(format!(
            "the sequence model's attention size {a} is above {MAX_ATTENTION} (MAX_ATTENTION)"
        ));
    }
    let layout =
        Layout::new(d, h, a).ok_or("the sequence model's weight count overflows (forged sizes)")?;
    let work = layout.len.saturating_mul(window);
    if work > MAX_SEQUENCE_WORK {
        return Err(format!(
            "the sequence model costs {work} multiply-adds per window ({} weights × {window} \
             steps), above {MAX_SEQUENCE_WORK} (MAX_SEQUENCE_WORK)",
            layout.len
        ));
    }
    Ok(layout)
}

const Z: usize = 0;
const R: usize = 1;
const N: usize = 2;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SequenceModel {
    pub n_features: usize,
    pub hidden: usize,
    pub attention: usize,
    pub window: usize,
    mean: Vec<f64>,
    scale: Vec<f64>,
    weights: Vec<f64>,
}

/// Per-step values the backward pass needs.
#[derive(Debug, Clone, Default)]
struct Step {
    x: Vec<f64>,
    h_prev: Vec<f64>,
    z: Vec<f64>,
    r: Vec<f64>,
    n: Vec<f64>,
    /// `U_n h_prev`.
    q: Vec<f64>,
    h: Vec<f64>,
    /// `tanh(W_a h + b_a)`.
    u: Vec<f64>,
}

/// Everything a forward pass computed.
#[derive(Debug, Clone, Default)]
struct Forward {
    steps: Vec<Step>,
    alpha: Vec<f64>,
    context: Vec<f64>,
    logit: f64,
}

/// tanh through one `exp`: libm's `tanh` goes through `expm1` and its own range
/// reduction and took about a fifth of a window's time. Absolute error ≤ 1e-15; training
/// and serving share it, so `eval` reports exactly what the engine computes.
fn tanh(x: f64) -> f64 {
    // Beyond |x| = 20, tanh is ±1 to double precision (and exp(2x) could overflow).
    let x = x.clamp(-20.0, 20.0);
    1.0 - 2.0 / ((2.0 * x).exp() + 1.0)
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// `out = M · x` for a row-major `rows × x.len()` block `m`.
fn matvec(m: &[f64], x: &[f64], out: &mut [f64]) {
    for (o, row) in out.iter_mut().zip(m.chunks_exact(x.len())) {
        *o = row.iter().zip(x).map(|(a, b)| a * b).sum();
    }
}

/// `x += Mᵀ · g` for a row-major `g.len() × x.len()` block `m`.
fn matvec_t_add(m: &[f64], g: &[f64], x: &mut [f64]) {
    for (gi, row) in g.iter().zip(m.chunks_exact(x.len())) {
        for (xj, mij) in x.iter_mut().zip(row) {
            *xj += gi * mij;
        }
    }
}

/// `M += g · xᵀ`.
fn outer_add(m: &mut [f64], g: &[f64], x: &[f64]) {
    for (gi, row) in g.iter().zip(m.chunks_exact_mut(x.len())) {
        for (mij, xj) in row.iter_mut().zip(x) {
            *mij += gi * xj;
        }
    }
}

/// Refuses, before any training, sequence settings whose model over `n_features` inputs
/// could not be loaded (the same caps as [`SequenceModel::validate`]).
pub fn check_params(n_features: usize, params: &SeqParams) -> Result<(), String> {
    checked_layout(
        n_features,
        params.hidden.max(1),
        params.attention.max(1),
        params.window,
    )
    .map(drop)
}

impl SequenceModel {
    /// The layout, when the stored weights and standardiser fit the sizes (always, once
    /// [`SequenceModel::validate`] passed; the size fields are public).
    fn layout(&self) -> Option<Layout> {
        let d = self.n_features;
        Layout::new(d, self.hidden, self.attention).filter(|l| {
            l.len == self.weights.len() && self.mean.len() == d && self.scale.len() == d
        })
    }

    /// Checks sizes read from a model file against the caps and the stored weights.
    pub fn validate(&self) -> Result<(), String> {
        checked_layout(self.n_features, self.hidden, self.attention, self.window)?;
        if self.layout().is_none() {
            return Err("the sequence model's weights do not match its sizes".into());
        }
        Ok(())
    }

    /// Trains on `windows` (row indices into `rows`, oldest first) labelled `y`.
    pub fn train(
        rows: &[f32],
        n_features: usize,
        windows: &[Vec<usize>],
        y: &[u8],
        params: &SeqParams,
        progress: &mut dyn FnMut(usize),
    ) -> Result<Self, String> {
        if windows.is_empty() || windows.len() != y.len() || n_features == 0 {
            return Err("the sequence model needs labelled windows".into());
        }
        let layout = checked_layout(
            n_features,
            params.hidden.max(1),
            params.attention.max(1),
            params.window,
        )?;
        let (mean, scale) = standardiser(rows, n_features);
        let mut rng = Rng::new(params.seed);
        let k = 1.0 / (layout.h as f64).sqrt();
        let weights = (0..layout.len).map(|_| rng.uniform(-k, k)).collect();
        let mut model = SequenceModel {
            n_features,
            hidden: layout.h,
            attention: layout.a,
            window: params.window,
            mean,
            scale,
            weights,
        };
        let mut adam = Adam::new(layout.len, params.learning_rate);
        let mut order: Vec<usize> = (0..windows.len()).collect();
        let mut grad = vec![0.0; layout.len];
        let mut fwd = Forward::default();
        for epoch in 0..params.epochs {
            rng.shuffle(&mut order);
            for batch in order.chunks(params.batch.max(1)) {
                grad.fill(0.0);
                for &w in batch {
                    let steps = model.inputs(rows, &windows[w]);
                    model.forward(&layout, &steps, &mut fwd);
                    let g = (sigmoid(fwd.logit) - f64::from(y[w])) / batch.len() as f64;
                    model.backward(&layout, &fwd, g, &mut grad);
                }
                adam.step(&mut model.weights, &grad);
            }
            progress(epoch + 1);
        }
        Ok(model)
    }

    /// Standardised, clipped inputs of a window's rows.
    fn inputs(&self, rows: &[f32], window: &[usize]) -> Vec<Vec<f64>> {
        let d = self.n_features;
        let start = window.len().saturating_sub(self.window);
        window[start..]
            .iter()
            .map(|&r| self.standardise(&rows[r * d..(r + 1) * d]))
            .collect()
    }

    /// Exactly `n_features` values whatever `x`'s length: a missing feature reads as NaN,
    /// which becomes the mean (0), so the products below always see their shapes.
    fn standardise(&self, x: &[f32]) -> Vec<f64> {
        self.mean
            .iter()
            .zip(&self.scale)
            .enumerate()
            .map(|(j, (m, s))| {
                let v = x.get(j).map_or(f64::NAN, |&v| f64::from(v));
                let z = (v - m) / s;
                if z.is_nan() {
                    0.0
                } else {
                    z.clamp(-CLIP, CLIP)
                }
            })
            .collect()
    }

    /// The probability that the window's newest step is a threat, and each step's attention
    /// weight (oldest first) in `attention`, which must hold at least as many slots as steps.
    /// A model whose weights do not fit its sizes (see [`SequenceModel::validate`]) says 0.
    pub fn predict(&self, steps: &[&[f32]], attention: &mut [f64]) -> f64 {
        let start = steps.len().saturating_sub(self.window);
        let xs: Vec<Vec<f64>> = steps[start..].iter().map(|x| self.standardise(x)).collect();
        let Some(layout) = self.layout().filter(|_| !xs.is_empty()) else {
            return 0.0;
        };
        let mut fwd = Forward::default();
        self.forward(&layout, &xs, &mut fwd);
        attention.fill(0.0);
        for (a, w) in attention.iter_mut().skip(start).zip(&fwd.alpha) {
            *a = *w;
        }
        sigmoid(fwd.logit)
    }

    /// `l` must be this model's layout.
    fn forward(&self, l: &Layout, xs: &[Vec<f64>], f: &mut Forward) {
        let w = &self.weights;
        let (h, a) = (l.h, l.a);
        f.steps.clear();
        let mut h_prev = vec![0.0; h];
        let mut tmp = vec![0.0; h];
        for x in xs {
            let mut s = Step {
                x: x.clone(),
                h_prev: h_prev.clone(),
                ..Step::default()
            };
            let gate = |g: usize, tmp: &mut Vec<f64>| -> Vec<f64> {
                let mut out = vec![0.0; h];
                matvec(&w[l.w(g)..l.w(g) + h * l.d], x, &mut out);
                // The candidate gate's recurrent term is added after the reset gate (`q`
                // below), so it is not computed here.
                if g != N {
                    matvec(&w[l.u(g)..l.u(g) + h * h], &h_prev, tmp);
                }
                for ((o, t), b) in out.iter_mut().zip(tmp.iter()).zip(&w[l.b(g)..l.b(g) + h]) {
                    *o += if g == N { 0.0 } else { *t } + b;
                }
                out
            };
            s.z = gate(Z, &mut tmp).into_iter().map(sigmoid).collect();
            s.r = gate(R, &mut tmp).into_iter().map(sigmoid).collect();
            let pre_n = gate(N, &mut tmp);
            s.q = vec![0.0; h];
            matvec(&w[l.u(N)..l.u(N) + h * h], &h_prev, &mut s.q);
            s.n = pre_n
                .iter()
                .zip(s.r.iter().zip(&s.q))
                .map(|(p, (r, q))| tanh(p + r * q))
                .collect();
            s.h = (0..h)
                .map(|i| (1.0 - s.z[i]) * s.n[i] + s.z[i] * h_prev[i])
                .collect();
            s.u = vec![0.0; a];
            matvec(&w[l.wa()..l.wa() + a * h], &s.h, &mut s.u);
            for (u, b) in s.u.iter_mut().zip(&w[l.ba()..l.ba() + a]) {
                *u = tanh(*u + b);
            }
            h_prev.clone_from(&s.h);
            f.steps.push(s);
        }
        let v = &w[l.v()..l.v() + a];
        let scores: Vec<f64> = f
            .steps
            .iter()
            .map(|s| s.u.iter().zip(v).map(|(u, v)| u * v).sum())
            .collect();
        let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let exp: Vec<f64> = scores.iter().map(|e| (e - max).exp()).collect();
        let total: f64 = exp.iter().sum();
        f.alpha = exp.iter().map(|e| e / total).collect();
        f.context = vec![0.0; h];
        for (s, al) in f.steps.iter().zip(&f.alpha) {
            for (c, hv) in f.context.iter_mut().zip(&s.h) {
                *c += al * hv;
            }
        }
        f.logit = w[l.bo()]
            + f.context
                .iter()
                .zip(&w[l.wc()..l.wc() + h])
                .map(|(c, w)| c * w)
                .sum::<f64>();
    }

    /// Adds `∂(loss)/∂weights` into `grad`, given `g = ∂loss/∂logit`.
    fn backward(&self, l: &Layout, f: &Forward, g: f64, grad: &mut [f64]) {
        let w = &self.weights;
        let (h, a, t_len) = (l.h, l.a, f.steps.len());
        grad[l.bo()] += g;
        outer_add(&mut grad[l.wc()..l.wc() + h], &[g], &f.context);
        let dcontext: Vec<f64> = w[l.wc()..l.wc() + h].iter().map(|v| g * v).collect();

        // Attention: gradients reaching each hidden state directly.
        let mut dh_direct: Vec<Vec<f64>> = vec![vec![0.0; h]; t_len];
        let dalpha: Vec<f64> = f
            .steps
            .iter()
            .map(|s| s.h.iter().zip(&dcontext).map(|(a, b)| a * b).sum())
            .collect();
        let mean_dalpha: f64 = f.alpha.iter().zip(&dalpha).map(|(a, d)| a * d).sum();
        for (t, s) in f.steps.iter().enumerate() {
            for (d, c) in dh_direct[t].iter_mut().zip(&dcontext) {
                *d += f.alpha[t] * c;
            }
            let de = f.alpha[t] * (dalpha[t] - mean_dalpha);
            let v = &w[l.v()..l.v() + a];
            let da: Vec<f64> =
                s.u.iter()
                    .zip(v)
                    .map(|(u, v)| de * v * (1.0 - u * u))
                    .collect();
            outer_add(&mut grad[l.v()..l.v() + a], &[de], &s.u);
            outer_add(&mut grad[l.wa()..l.wa() + a * h], &da, &s.h);
            for (gb, d) in grad[l.ba()..l.ba() + a].iter_mut().zip(&da) {
                *gb += d;
            }
            matvec_t_add(&w[l.wa()..l.wa() + a * h], &da, &mut dh_direct[t]);
        }

        // Through time.
        let mut dh_next = vec![0.0; h];
        for (t, s) in f.steps.iter().enumerate().rev() {
            let dh: Vec<f64> = dh_direct[t]
                .iter()
                .zip(&dh_next)
                .map(|(a, b)| a + b)
                .collect();
            let mut dh_prev: Vec<f64> = dh.iter().zip(&s.z).map(|(d, z)| d * z).collect();
            let dan: Vec<f64> = (0..h)
                .map(|i| dh[i] * (1.0 - s.z[i]) * (1.0 - s.n[i] * s.n[i]))
                .collect();
            let daz: Vec<f64> = (0..h)
                .map(|i| dh[i] * (s.h_prev[i] - s.n[i]) * s.z[i] * (1.0 - s.z[i]))
                .collect();
            let dar: Vec<f64> = (0..h)
                .map(|i| dan[i] * s.q[i] * s.r[i] * (1.0 - s.r[i]))
                .collect();
            let dq: Vec<f64> = dan.iter().zip(&s.r).map(|(d, r)| d * r).collect();
            for (gate, dpre, rec) in [(Z, &daz, &daz), (R, &dar, &dar), (N, &dan, &dq)] {
                outer_add(&mut grad[l.w(gate)..l.w(gate) + h * l.d], dpre, &s.x);
                outer_add(&mut grad[l.u(gate)..l.u(gate) + h * h], rec, &s.h_prev);
                for (gb, d) in grad[l.b(gate)..l.b(gate) + h].iter_mut().zip(dpre.iter()) {
                    *gb += d;
                }
                matvec_t_add(&w[l.u(gate)..l.u(gate) + h * h], rec, &mut dh_prev);
            }
            dh_next = dh_prev;
        }
    }
}

fn standardiser(rows: &[f32], d: usize) -> (Vec<f64>, Vec<f64>) {
    let n = (rows.len() / d).max(1) as f64;
    let mut mean = vec![0.0; d];
    let mut count = vec![0.0f64; d];
    for r in rows.chunks_exact(d) {
        for ((m, c), &v) in mean.iter_mut().zip(count.iter_mut()).zip(r) {
            if !v.is_nan() {
                *m += v as f64;
                *c += 1.0;
            }
        }
    }
    for (m, c) in mean.iter_mut().zip(&count) {
        *m /= c.max(1.0);
    }
    let mut var = vec![0.0; d];
    for r in rows.chunks_exact(d) {
        for ((s, &v), m) in var.iter_mut().zip(r).zip(&mean) {
            if !v.is_nan() {
                *s += (v as f64 - m).powi(2) / n;
            }
        }
    }
    let scale = var
        .into_iter()
        .map(|v| if v > 1e-12 { v.sqrt() } else { 1.0 })
        .collect();
    (mean, scale)
}

/// Adam (Kingma & Ba) with the usual β₁ = 0.9, β₂ = 0.999.
struct Adam {
    m: Vec<f64>,
    v: Vec<f64>,
    t: i32,
    lr: f64,
}

impl Adam {
    fn new(n: usize, lr: f64) -> Self {
        Adam {
            m: vec![0.0; n],
            v: vec![0.0; n],
            t: 0,
            lr,
        }
    }

    fn step(&mut self, w: &mut [f64], g: &[f64]) {
        const B1: f64 = 0.9;
        const B2: f64 = 0.999;
        self.t += 1;
        let c1 = 1.0 - B1.powi(self.t);
        let c2 = 1.0 - B2.powi(self.t);
        for i in 0..w.len() {
            self.m[i] = B1 * self.m[i] + (1.0 - B1) * g[i];
            self.v[i] = B2 * self.v[i] + (1.0 - B2) * g[i] * g[i];
            w[i] -= self.lr * (self.m[i] / c1) / ((self.v[i] / c2).sqrt() + 1e-8);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn tiny(rng: &mut Rng) -> SequenceModel {
        let l = Layout::new(3, 4, 3).unwrap();
        SequenceModel {
            n_features: 3,
            hidden: 4,
            attention: 3,
            window: 5,
            mean: vec![0.0; 3],
            scale: vec![1.0; 3],
            weights: (0..l.len).map(|_| rng.uniform(-0.8, 0.8)).collect(),
        }
    }

    /// A model of the given sizes with zero weights, `weights` of them when given (else as
    /// many as the sizes need).
    fn sized(d: usize, h: usize, a: usize, window: usize, weights: Option<usize>) -> SequenceModel {
        let len = weights.or(Layout::new(d, h, a).map(|l| l.len)).unwrap();
        SequenceModel {
            n_features: d,
            hidden: h,
            attention: a,
            window,
            mean: vec![0.0; d],
            scale: vec![1.0; d],
            weights: vec![0.0; len],
        }
    }

    /// The review's proof of concept: hidden 2³² and this attention size make the unchecked
    /// weight count wrap to 101, which passed `validate`; scoring one window then asked for
    /// 34 GB and aborted the server.
    pub(crate) fn forged_overflowing() -> SequenceModel {
        sized(18, 1 << 32, 9_223_371_804_926_541_874, 10, Some(101))
    }

    #[test]
    fn forged_sizes_whose_weight_count_wraps_are_refused() {
        let m = forged_overflowing();
        assert!(Layout::new(18, m.hidden, m.attention).is_none());
        assert!(m.layout().is_none());
        assert!(m.validate().is_err());
        // Refused by the arithmetic alone, below every cap on the sizes.
        assert!(Layout::new(usize::MAX / 2, 2, 1).is_none());
        assert!(Layout::new(3, 4, usize::MAX / 4).is_none());
        // An unvalidated model with forged sizes scores 0 instead of allocating.
        let row = [0.5f32; 18];
        assert_eq!(m.predict(&[&row[..]], &mut [0.0]), 0.0);
    }

    #[test]
    fn sizes_above_the_caps_are_refused_by_name() {
        let err = |m: SequenceModel| m.validate().unwrap_err();
        sized(18, 16, 16, 10, None).validate().unwrap();
        sized(18, MAX_HIDDEN, 8, 2, None).validate().unwrap();
        assert!(err(sized(18, MAX_HIDDEN + 1, 16, 10, None)).contains("MAX_HIDDEN"));
        assert!(err(sized(18, 16, MAX_ATTENTION + 1, 10, None)).contains("MAX_ATTENTION"));
        assert!(err(sized(18, 16, 16, MAX_WINDOW + 1, None)).contains("MAX_WINDOW"));
        assert!(err(sized(18, 16, 16, 0, None)).contains("MAX_WINDOW"));
        // Each size within its cap, their product not: 2,000 features × 32 steps.
        assert!(err(sized(2000, 16, 16, 32, None)).contains("MAX_SEQUENCE_WORK"));
        assert!(err(sized(0, 16, 16, 10, None)).contains("needs features"));
        assert!(err(sized(18, 16, 16, 10, Some(5))).contains("do not match"));
    }

    #[test]
    fn rows_of_another_width_score_without_panicking() {
        let m = sized(3, 4, 3, 5, None);
        let mut att = [0.0; 4];
        let (short, long, empty) = ([1.0f32], [1.0f32; 9], [0f32; 0]);
        for steps in [vec![&short[..], &long[..]], vec![&empty[..]], vec![]] {
            let p = m.predict(&steps, &mut att);
            assert!((0.0..=1.0).contains(&p), "{p}");
        }
    }

    #[test]
    fn training_refuses_sizes_above_the_caps() {
        let rows = [0.0f32, 1.0, 2.0, 3.0];
        let params = SeqParams {
            hidden: MAX_HIDDEN + 1,
            ..SeqParams::default()
        };
        let err =
            SequenceModel::train(&rows, 1, &[vec![0], vec![1]], &[0, 1], &params, &mut |_| {})
                .unwrap_err();
        assert!(err.contains("MAX_HIDDEN"), "{err}");
    }

    #[test]
    fn gradients_match_finite_differences() {
        let mut rng = Rng::new(4);
        let mut m = tiny(&mut rng);
        let xs: Vec<Vec<f64>> = (0..5)
            .map(|_| (0..3).map(|_| rng.normal(0.0, 1.0)).collect())
            .collect();
        let l = m.layout().unwrap();
        let loss = |m: &SequenceModel| {
            let mut f = Forward::default();
            m.forward(&l, &xs, &mut f);
            // Binary cross-entropy with label 1.
            -sigmoid(f.logit).ln()
        };
        let mut f = Forward::default();
        m.forward(&l, &xs, &mut f);
        let mut grad = vec![0.0; m.weights.len()];
        m.backward(&l, &f, sigmoid(f.logit) - 1.0, &mut grad);
        let eps = 1e-6;
        for (i, &analytic) in grad.iter().enumerate() {
            let w0 = m.weights[i];
            m.weights[i] = w0 + eps;
            let up = loss(&m);
            m.weights[i] = w0 - eps;
            let down = loss(&m);
            m.weights[i] = w0;
            let numeric = (up - down) / (2.0 * eps);
            assert!(
                (numeric - analytic).abs() < 1e-6 * (1.0 + numeric.abs()),
                "weight {i}: numeric {numeric} vs analytic {analytic}"
            );
        }
    }

    #[test]
    fn windows_follow_each_entity() {
        let w = windows(&[1, 2, 1, 1, 2, 1], 3);
        assert_eq!(w[0], [0]);
        assert_eq!(w[4], [1, 4]);
        assert_eq!(w[5], [2, 3, 5]);
    }

    /// Threat when a spike appeared two steps before the newest one: only attention to that
    /// step (and the recurrence) can tell.
    #[test]
    fn learns_a_temporal_pattern_and_attends_to_it() {
        let mut rng = Rng::new(8);
        let (n, len) = (1200, 6);
        let mut rows = Vec::new();
        let mut wins = Vec::new();
        let mut y = Vec::new();
        for k in 0..n {
            let threat = k % 2 == 0;
            let start = rows.len() / 2;
            for t in 0..len {
                let spike = threat && t == len - 3;
                rows.push(if spike {
                    4.0
                } else {
                    rng.normal(0.0, 1.0) as f32
                });
                rows.push(rng.normal(0.0, 1.0) as f32);
            }
            wins.push((start..start + len).collect::<Vec<_>>());
            y.push(u8::from(threat));
        }
        let params = SeqParams {
            window: len,
            hidden: 8,
            attention: 8,
            epochs: 6,
            ..SeqParams::default()
        };
        let m = SequenceModel::train(&rows, 2, &wins[..1000], &y[..1000], &params, &mut |_| {})
            .unwrap();
        let mut correct = 0;
        let mut att = [0.0; MAX_WINDOW];
        let mut spike_attention = 0.0;
        for (w, &label) in wins[1000..].iter().zip(&y[1000..]) {
            let steps: Vec<&[f32]> = w.iter().map(|&r| &rows[r * 2..r * 2 + 2]).collect();
            let p = m.predict(&steps, &mut att);
            correct += usize::from((p >= 0.5) == (label == 1));
            if label == 1 {
                spike_attention += att[len - 3..len].iter().sum::<f64>();
            }
            assert!((att[..len].iter().sum::<f64>() - 1.0).abs() < 1e-9);
        }
        assert!(correct >= 190, "{correct}/200");
        // The spike and the states after it hold the evidence; uniform attention would give
        // them half of the weight.
        assert!(spike_attention / 100.0 > 0.7, "{}", spike_attention / 100.0);
    }
}
