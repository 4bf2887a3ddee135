//! Isolation forest (Liu, Ting & Zhou 2008) with per-feature, path-based attributions.
//!
//! Each tree isolates a seeded subsample of ψ rows with random splits (a random feature
//! that varies in the node, a threshold uniform between its minimum and maximum there), up to
//! depth ⌈log₂ ψ⌉. A row's path length in a tree is its depth plus `c(size)` of the leaf it
//! lands in (the expected path length of an unbuilt subtree); the anomaly score is
//! `2^(−mean path / c(ψ))`, near 1 for isolated rows and under 0.5 for ordinary ones.
//!
//! Attribution: each split on the row's path is credited with the isolation it achieved,
//! `log₂(rows in the node / rows in the child the row went to)` bits of the training
//! subsample, to the feature it split on; each tree's credits are weighted by that tree's own
//! `2^(−path / c(ψ))` (short, anomalous paths weigh more) and the total is scaled to add up to
//! the score. A split that cuts the row off from most of its node gets most of the credit; one
//! that keeps it with the crowd gets almost none.
//!
//! Written here: no maintained Rust crate exposes the paths needed for attribution.

use crate::rng::Rng;
use crate::tree::{check_forest, FlatForest, Node, Tree};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IsoParams {
    pub trees: usize,
    pub sample_size: usize,
    pub seed: u64,
}

impl Default for IsoParams {
    fn default() -> Self {
        IsoParams {
            trees: 100,
            sample_size: 256,
            seed: 1,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "IsoDef", into = "IsoDef")]
pub struct IsolationForest {
    pub n_features: usize,
    /// ψ actually used (≤ the training rows).
    pub sample_size: usize,
    pub trees: Vec<Tree>,
    flat: FlatForest,
    /// Per tree, per node: the isolation bits of reaching it from its parent.
    bits: Vec<Vec<f64>>,
}

/// The stored form; the ensemble checks a model file's trees in this form before compiling.
#[derive(Serialize, Deserialize)]
pub(crate) struct IsoDef {
    pub(crate) n_features: usize,
    pub(crate) sample_size: usize,
    pub(crate) trees: Vec<Tree>,
}

impl TryFrom<IsoDef> for IsolationForest {
    type Error = String;
    fn try_from(d: IsoDef) -> Result<Self, String> {
        IsolationForest::new(d.n_features, d.sample_size, d.trees)
    }
}

impl From<IsolationForest> for IsoDef {
    fn from(f: IsolationForest) -> Self {
        IsoDef {
            n_features: f.n_features,
            sample_size: f.sample_size,
            trees: f.trees,
        }
    }
}

/// Average path length of an unsuccessful BST search among `n` points: the normaliser.
pub fn c(n: f64) -> f64 {
    if n <= 1.0 {
        return 0.0;
    }
    if n <= 2.0 {
        return 1.0;
    }
    const EULER: f64 = 0.577_215_664_901_532_9;
    2.0 * ((n - 1.0).ln() + EULER) - 2.0 * (n - 1.0) / n
}

impl IsolationForest {
    pub fn new(n_features: usize, sample_size: usize, trees: Vec<Tree>) -> Result<Self, String> {
        if trees.is_empty() || sample_size == 0 {
            return Err("an isolation forest needs trees and a sample size".into());
        }
        check_forest(&trees, n_features)?;
        let flat = FlatForest::compile(&trees);
        let bits = trees.iter().map(isolation_bits).collect();
        Ok(IsolationForest {
            n_features,
            sample_size,
            trees,
            flat,
            bits,
        })
    }

    /// Trains on `rows` (row-major, `n_features` wide).
    pub fn train(rows: &[f32], n_features: usize, params: &IsoParams) -> Result<Self, String> {
        let n = rows.len() / n_features.max(1);
        if n < 2 {
            return Err("an isolation forest needs at least two rows".into());
        }
        // Height limit ⌈log₂ ψ⌉ stays within the deepest tree a model may hold.
        let psi = params
            .sample_size
            .clamp(2, n)
            .min(1 << crate::tree::MAX_TREE_DEPTH);
        let limit = (psi as f64).log2().ceil() as usize;
        let trees = (0..params.trees.max(1))
            .map(|t| {
                let mut rng = Rng::derive(params.seed, t as u64);
                let mut idx: Vec<usize> = (0..n).collect();
                // Partial Fisher–Yates: the first ψ entries are a uniform sample.
                for i in 0..psi {
                    let j = i + rng.index(n - i);
                    idx.swap(i, j);
                }
                idx.truncate(psi);
                let mut tree = Tree {
                    nodes: vec![Node::leaf(0.0, psi as f64)],
                };
                let mut b = Builder {
                    rows,
                    nf: n_features,
                    rng,
                    limit,
                };
                b.build(&mut tree, 0, &mut idx, 0);
                tree
            })
            .collect();
        IsolationForest::new(n_features, psi, trees)
    }

    fn normaliser(&self) -> f64 {
        c(self.sample_size as f64)
    }

    /// Anomaly score in (0, 1].
    pub fn score(&self, x: &[f32]) -> f32 {
        let mean = self.flat.sum(x) as f64 / self.trees.len() as f64;
        2f64.powf(-mean / self.normaliser()) as f32
    }

    /// Scores for a batch (`out.len()` rows).
    pub fn score_batch(&self, rows: &[f32], out: &mut [f32]) {
        out.fill(0.0);
        self.flat.add_sums(rows, self.n_features, out);
        let k = -1.0 / (self.trees.len() as f64 * self.normaliser());
        for v in out.iter_mut() {
            *v = 2f64.powf(*v as f64 * k) as f32;
        }
    }

    /// Per-feature contributions (module docs) into `out`; they add up to the score.
    pub fn attribute(&self, x: &[f32], out: &mut [f64]) -> f32 {
        out.fill(0.0);
        let norm = self.normaliser();
        let mut total = 0.0;
        let mut path_len = 0.0;
        for (tree, bits) in self.trees.iter().zip(&self.bits) {
            let leaf = tree.leaf_of(x);
            let h = tree.nodes[leaf].value;
            path_len += h;
            let weight = 2f64.powf(-h / norm);
            let mut i = 0;
            while !tree.nodes[i].is_leaf() {
                let node = &tree.nodes[i];
                let next = node.next(x);
                let credit = weight * bits[next];
                if let Some(o) = out.get_mut(node.feature as usize) {
                    *o += credit;
                }
                total += credit;
                i = next;
            }
        }
        let score = 2f64.powf(-path_len / self.trees.len() as f64 / norm) as f32;
        if total > 0.0 {
            for o in out.iter_mut() {
                *o *= score as f64 / total;
            }
        }
        score
    }
}

/// `log₂(parent cover / node cover)` for every node (0 at the root).
fn isolation_bits(tree: &Tree) -> Vec<f64> {
    let mut bits = vec![0.0; tree.nodes.len()];
    for n in tree.nodes.iter().filter(|n| !n.is_leaf()) {
        for c in [n.left as usize, n.right as usize] {
            bits[c] = (n.cover / tree.nodes[c].cover.max(1.0)).log2();
        }
    }
    bits
}

struct Builder<'a> {
    rows: &'a [f32],
    nf: usize,
    rng: Rng,
    limit: usize,
}

impl Builder<'_> {
    fn value(&self, row: usize, f: usize) -> f32 {
        self.rows[row * self.nf + f]
    }

    fn build(&mut self, tree: &mut Tree, node: usize, idx: &mut [usize], depth: usize) {
        let leaf = Node::leaf(depth as f64 + c(idx.len() as f64), idx.len() as f64);
        if depth >= self.limit || idx.len() <= 1 {
            tree.nodes[node] = leaf;
            return;
        }
        let Some((f, threshold)) = self.pick_split(idx) else {
            tree.nodes[node] = leaf;
            return;
        };
        let mut mid = 0;
        for k in 0..idx.len() {
            // Left unless `x > threshold` (NaN too): the same test as `Node::next`.
            let right = self.value(idx[k], f) > threshold;
            if !right {
                idx.swap(k, mid);
                mid += 1;
            }
        }
        let (l, r) = (tree.nodes.len(), tree.nodes.len() + 1);
        tree.nodes.push(Node::leaf(0.0, 0.0));
        tree.nodes.push(Node::leaf(0.0, 0.0));
        tree.nodes[node] = Node {
            feature: f as u32,
            threshold,
            left: l as u32,
            right: r as u32,
            value: 0.0,
            cover: idx.len() as f64,
        };
        let (left, right) = idx.split_at_mut(mid);
        self.build(tree, l, left, depth + 1);
        self.build(tree, r, right, depth + 1);
    }

    /// A random feature among those that vary in the node, and a threshold inside its range.
    fn pick_split(&mut self, idx: &[usize]) -> Option<(usize, f32)> {
        let mut varying: Vec<(usize, f32, f32)> = Vec::new();
        for f in 0..self.nf {
            let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
            for &i in idx {
                let v = self.value(i, f);
                if !v.is_nan() {
                    lo = lo.min(v);
                    hi = hi.max(v);
                }
            }
            if lo < hi {
                varying.push((f, lo, hi));
            }
        }
        if varying.is_empty() {
            return None;
        }
        let (f, lo, hi) = varying[self.rng.index(varying.len())];
        let t = self.rng.uniform(lo as f64, hi as f64) as f32;
        // Rounding to f32 may reach `hi`, which would send every row left.
        Some((f, if t < hi { t } else { lo }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(n: usize, rng: &mut Rng) -> Vec<f32> {
        (0..n * 3).map(|_| rng.normal(0.0, 1.0) as f32).collect()
    }

    #[test]
    fn outliers_score_higher_and_attribution_finds_the_feature() {
        let mut rng = Rng::new(9);
        let rows = cluster(2000, &mut rng);
        let f = IsolationForest::train(&rows, 3, &IsoParams::default()).unwrap();
        let inlier = [0.1f32, -0.2, 0.0];
        let outlier = [0.0f32, 9.0, 0.1];
        assert!(f.score(&inlier) < 0.5, "{}", f.score(&inlier));
        assert!(f.score(&[7.0, 7.0, -7.0]) > 0.7);
        assert!(f.score(&outlier) > f.score(&inlier) + 0.1);
        let mut contrib = [0.0; 3];
        let s = f.attribute(&outlier, &mut contrib);
        assert!((contrib.iter().sum::<f64>() - s as f64).abs() < 1e-5);
        assert!(contrib[1] > contrib[0] + contrib[2], "{contrib:?}");
        let mut batch = [0f32; 2];
        f.score_batch(&[inlier, outlier].concat(), &mut batch);
        assert!((batch[0] - f.score(&inlier)).abs() < 1e-5);
        assert!((batch[1] - f.score(&outlier)).abs() < 1e-5);
    }

    #[test]
    fn seeded_and_round_trips() {
        let mut rng = Rng::new(1);
        let rows = cluster(300, &mut rng);
        let p = IsoParams {
            trees: 10,
            ..IsoParams::default()
        };
        let a = IsolationForest::train(&rows, 3, &p).unwrap();
        let b = IsolationForest::train(&rows, 3, &p).unwrap();
        assert_eq!(a.trees, b.trees);
        let back: IsolationForest =
            serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
        assert_eq!(back.score(&rows[..3]), a.score(&rows[..3]));
    }

    #[test]
    fn normaliser_values() {
        assert_eq!(c(1.0), 0.0);
        assert_eq!(c(2.0), 1.0);
        assert!((c(256.0) - 10.2448).abs() < 1e-3);
    }
}
