//! Exact TreeSHAP (Lundberg, Erion & Lee 2018, "Consistent Individualized Feature
//! Attribution for Tree Ensembles", Algorithm 2): the Shapley values of a tree's output under
//! the path-dependent conditional expectation, in O(leaves · depth²) per tree.
//!
//! The walk keeps, for the current root-to-node path, each unique feature's "zero fraction"
//! (share of training cover that follows the path when the feature is unknown) and "one
//! fraction" (1 if the row follows it when known), plus the permutation weights of every
//! subset size; `extend` adds a feature, `unwind` removes one (a feature met again deeper).
//! Computed in f64. The tests check it against brute-force Shapley values.
//!
//! [`LeafTables`] is the fast path for explaining many rows (the idea of Yang 2021, "Fast
//! TreeSHAP", v2): TreeSHAP is a sum over leaves, and a leaf's share of feature `i`'s value
//! depends on the row only through which of the leaf's k path features the row satisfies.
//! So each leaf keeps a table of its contributions for all 2^k such masks, computed once from
//! the Shapley formula; explaining a row is then a mask and k additions per leaf. Trees whose
//! paths hold more than [`MAX_TABLE_FEATURES`] distinct features fall back to the walk.

use crate::tree::Tree;

#[derive(Debug, Clone, Copy, Default)]
struct PathElem {
    feature: usize,
    zero: f64,
    one: f64,
    weight: f64,
}

/// Reusable buffers, so explaining a row allocates nothing once they have grown.
#[derive(Debug, Default)]
pub struct ShapScratch {
    path: Vec<PathElem>,
}

/// The tree's expected output over its training cover (the SHAP base value).
pub fn expected_value(tree: &Tree) -> f64 {
    let Some(root) = tree.nodes.first() else {
        return 0.0;
    };
    if root.cover <= 0.0 {
        return 0.0;
    }
    tree.nodes
        .iter()
        .filter(|n| n.is_leaf())
        .map(|n| n.value * n.cover)
        .sum::<f64>()
        / root.cover
}

/// Adds the tree's SHAP values for row `x` into `phi` (`phi.len()` ≥ features used).
pub fn tree_shap(tree: &Tree, x: &[f32], phi: &mut [f64], scratch: &mut ShapScratch) {
    let depth = tree.depth();
    let need = (depth + 2) * (depth + 3) / 2;
    if scratch.path.len() < need {
        scratch.path.resize(need, PathElem::default());
    }
    if tree.nodes.is_empty() {
        return;
    }
    recurse(
        tree,
        x,
        phi,
        &mut scratch.path,
        Walk {
            node: 0,
            len: 0,
            zero: 1.0,
            one: 1.0,
            feature: usize::MAX,
        },
    );
}

/// One step of the walk: entering `node`, with `len` path elements so far, through a split
/// on `feature` that the unknown-feature mass follows with `zero` and the row with `one`.
#[derive(Clone, Copy)]
struct Walk {
    node: usize,
    len: usize,
    zero: f64,
    one: f64,
    feature: usize,
}

fn recurse(tree: &Tree, x: &[f32], phi: &mut [f64], buf: &mut [PathElem], w: Walk) {
    // This call's path lives after the parent's (`len` elements), so unwinding here leaves
    // the parent's copy intact.
    let (parent, rest) = buf.split_at_mut(w.len);
    let path = rest;
    path[..w.len].copy_from_slice(parent);
    extend(path, w.len, w.zero, w.one, w.feature);
    let mut len = w.len + 1;
    let node = &tree.nodes[w.node];

    if node.is_leaf() {
        for i in 1..len {
            let s = unwound_sum(path, len, i);
            let e = path[i];
            if let Some(p) = phi.get_mut(e.feature) {
                *p += s * (e.one - e.zero) * node.value;
            }
        }
        return;
    }

    let hot = node.next(x);
    let cold = if hot == node.left as usize {
        node.right as usize
    } else {
        node.left as usize
    };
    let f = node.feature as usize;
    let (mut zero, mut one) = (1.0, 1.0);
    if let Some(k) = (1..len).find(|&k| path[k].feature == f) {
        zero = path[k].zero;
        one = path[k].one;
        unwind(path, len, k);
        len -= 1;
    }
    let cover = node.cover;
    let frac = |c: usize| {
        if cover > 0.0 {
            tree.nodes[c].cover / cover
        } else {
            0.0
        }
    };
    let (next_buf, hot_frac, cold_frac) = (&mut *path, frac(hot), frac(cold));
    let child = |node, zero, one| Walk {
        node,
        len,
        zero,
        one,
        feature: f,
    };
    recurse(tree, x, phi, next_buf, child(hot, zero * hot_frac, one));
    recurse(tree, x, phi, next_buf, child(cold, zero * cold_frac, 0.0));
}

/// Adds a feature with fractions (`zero`, `one`) to a path of `len` elements.
fn extend(path: &mut [PathElem], len: usize, zero: f64, one: f64, feature: usize) {
    path[len] = PathElem {
        feature,
        zero,
        one,
        weight: if len == 0 { 1.0 } else { 0.0 },
    };
    let l = len as f64;
    for i in (0..len).rev() {
        let wi = path[i].weight;
        path[i + 1].weight += one * wi * (i as f64 + 1.0) / (l + 1.0);
        path[i].weight = zero * wi * (l - i as f64) / (l + 1.0);
    }
}

/// Removes element `i` from a path of `len` elements, undoing its `extend`.
fn unwind(path: &mut [PathElem], len: usize, i: usize) {
    let l = (len - 1) as f64;
    let (one, zero) = (path[i].one, path[i].zero);
    let mut next = path[len - 1].weight;
    for j in (0..len - 1).rev() {
        let jf = j as f64;
        if one != 0.0 {
            let t = path[j].weight;
            path[j].weight = next * (l + 1.0) / ((jf + 1.0) * one);
            next = t - path[j].weight * zero * (l - jf) / (l + 1.0);
        } else {
            path[j].weight = path[j].weight * (l + 1.0) / (zero * (l - jf));
        }
    }
    for j in i..len - 1 {
        let (feature, zero, one) = (path[j + 1].feature, path[j + 1].zero, path[j + 1].one);
        path[j].feature = feature;
        path[j].zero = zero;
        path[j].one = one;
    }
}

/// The total weight the path would have with element `i` unwound, without changing it.
fn unwound_sum(path: &[PathElem], len: usize, i: usize) -> f64 {
    let l = (len - 1) as f64;
    let (one, zero) = (path[i].one, path[i].zero);
    let mut next = path[len - 1].weight;
    let mut total = 0.0;
    for j in (0..len - 1).rev() {
        let jf = j as f64;
        if one != 0.0 {
            let t = next * (l + 1.0) / ((jf + 1.0) * one);
            total += t;
            next = path[j].weight - t * zero * (l - jf) / (l + 1.0);
        } else if zero != 0.0 {
            total += path[j].weight * (l + 1.0) / (zero * (l - jf));
        }
    }
    total
}

/// Paths with more distinct features than this use the walk (tables grow as 2^k · k).
pub const MAX_TABLE_FEATURES: usize = 6;

/// Per-leaf Shapley tables of one tree, or `None` when it is too deep for them.
#[derive(Debug, Clone, Default)]
pub struct LeafTables {
    leaves: Vec<LeafTable>,
}

#[derive(Debug, Clone)]
struct LeafTable {
    /// The distinct features on the path, in first-seen order (bit j of a mask = features[j]).
    features: Vec<u32>,
    /// Every split on the path: (bit, feature, threshold, whether the path goes right).
    splits: Vec<(u8, u32, f32, bool)>,
    /// `table[mask * k + j]`: the leaf's contribution to `features[j]` for that mask.
    table: Vec<f64>,
}

/// What explaining with one (validated) tree costs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShapCost {
    /// Whether [`LeafTables::build`] tabulates it (else TreeSHAP walks it).
    pub tables: bool,
    /// Values its leaf tables hold: `2^k · k` per leaf of `k` distinct path features.
    pub table_values: usize,
    /// Work of explaining one row: per leaf, its path's splits and features with tables,
    /// or `(path + 1)²` for the walk's extend and unwind steps.
    pub row_work: usize,
}

/// [`ShapCost`] of a validated tree (one parent per node, so one path per leaf).
pub fn shap_cost(tree: &Tree) -> ShapCost {
    let mut leaves = Vec::new();
    leaf_paths(tree, 0, &mut Vec::new(), &mut leaves);
    let tables = leaves.iter().all(|&(_, k)| k <= MAX_TABLE_FEATURES);
    let sum = |f: &dyn Fn(usize, usize) -> usize| {
        leaves
            .iter()
            .fold(0usize, |acc, &(p, k)| acc.saturating_add(f(p, k)))
    };
    if tables {
        ShapCost {
            tables,
            table_values: sum(&|_, k| (1 << k) * k),
            row_work: sum(&|p, k| p + k),
        }
    } else {
        ShapCost {
            tables,
            table_values: 0,
            row_work: sum(&|p, _| (p + 1) * (p + 1)),
        }
    }
}

/// Each leaf's path length and distinct features (counted up to one past the table limit).
fn leaf_paths(tree: &Tree, node: usize, path: &mut Vec<u32>, out: &mut Vec<(usize, usize)>) {
    let Some(n) = tree.nodes.get(node) else {
        return;
    };
    if n.is_leaf() {
        let mut distinct: Vec<u32> = Vec::with_capacity(MAX_TABLE_FEATURES + 1);
        for &f in path.iter() {
            if !distinct.contains(&f) && distinct.len() <= MAX_TABLE_FEATURES {
                distinct.push(f);
            }
        }
        out.push((path.len(), distinct.len()));
        return;
    }
    path.push(n.feature);
    leaf_paths(tree, n.left as usize, path, out);
    leaf_paths(tree, n.right as usize, path, out);
    path.pop();
}

impl LeafTables {
    /// Builds the tables, or `None` if some path has too many distinct features.
    pub fn build(tree: &Tree) -> Option<Self> {
        // Decided before building: a tree that ends up walked allocates no tables.
        if !shap_cost(tree).tables {
            return None;
        }
        let mut leaves = Vec::new();
        let mut path = Vec::new();
        collect(tree, 0, &mut path, &mut leaves)?;
        Some(LeafTables { leaves })
    }

    /// Adds the tree's SHAP values for row `x` into `phi`.
    pub fn add(&self, x: &[f32], phi: &mut [f64]) {
        for leaf in &self.leaves {
            let k = leaf.features.len();
            let mut mask = (1usize << k) - 1;
            for &(bit, f, threshold, right) in &leaf.splits {
                let v = x.get(f as usize).copied().unwrap_or(f32::NAN);
                if (v > threshold) != right {
                    mask &= !(1 << bit);
                }
            }
            let row = &leaf.table[mask * k..(mask + 1) * k];
            for (&f, c) in leaf.features.iter().zip(row) {
                if let Some(p) = phi.get_mut(f as usize) {
                    *p += c;
                }
            }
        }
    }
}

/// One split on the current path: node, feature, threshold, went right.
type Step = (usize, u32, f32, bool);

fn collect(tree: &Tree, node: usize, path: &mut Vec<Step>, out: &mut Vec<LeafTable>) -> Option<()> {
    let n = tree.nodes.get(node)?;
    if n.is_leaf() {
        out.push(leaf_table(tree, path, n.value)?);
        return Some(());
    }
    for (child, right) in [(n.left as usize, false), (n.right as usize, true)] {
        path.push((node, n.feature, n.threshold, right));
        collect(tree, child, path, out)?;
        path.pop();
    }
    Some(())
}

fn leaf_table(tree: &Tree, path: &[Step], value: f64) -> Option<LeafTable> {
    let mut features: Vec<u32> = Vec::new();
    let mut zero: Vec<f64> = Vec::new();
    let mut splits = Vec::with_capacity(path.len());
    for &(node, f, threshold, right) in path {
        let n = &tree.nodes[node];
        let child = if right { n.right } else { n.left } as usize;
        let ratio = if n.cover > 0.0 {
            tree.nodes[child].cover / n.cover
        } else {
            0.0
        };
        let bit = match features.iter().position(|&g| g == f) {
            Some(b) => {
                zero[b] *= ratio;
                b
            }
            None => {
                features.push(f);
                zero.push(ratio);
                features.len() - 1
            }
        };
        splits.push((bit as u8, f, threshold, right));
    }
    let k = features.len();
    if k > MAX_TABLE_FEATURES {
        return None;
    }
    Some(LeafTable {
        table: shapley_table(&zero, value),
        features,
        splits,
    })
}

/// For every mask of satisfied features, each feature's Shapley value in the leaf's game
/// `g(S) = v · Π_{j∈S} o_j · Π_{j∉S} z_j` (o_j = 1 iff bit j of the mask is set):
/// `φ_i = Σ_{S ⊆ mask∖{i}} |S|!(k−|S|−1)!/k! · v (o_i − z_i) Π_{j∉S∪{i}} z_j`.
fn shapley_table(zero: &[f64], value: f64) -> Vec<f64> {
    let k = zero.len();
    let full = (1usize << k) - 1;
    let fact = |n: usize| (1..=n).map(|i| i as f64).product::<f64>();
    let weight: Vec<f64> = (0..k)
        .map(|s| fact(s) * fact(k - s - 1) / fact(k))
        .collect();
    // Product of the zero fractions over each subset.
    let zprod: Vec<f64> = (0..=full)
        .map(|t| {
            (0..k)
                .filter(|j| t & (1 << j) != 0)
                .map(|j| zero[j])
                .product()
        })
        .collect();
    let mut table = vec![0.0; (full + 1) * k];
    for mask in 0..=full {
        for i in 0..k {
            let one = if mask & (1 << i) != 0 { 1.0 } else { 0.0 };
            let others = mask & !(1 << i);
            let mut sum = 0.0;
            let mut s = others;
            // Every subset of `others`, including the empty one.
            loop {
                sum += weight[s.count_ones() as usize] * zprod[full & !s & !(1 << i)];
                if s == 0 {
                    break;
                }
                s = (s - 1) & others;
            }
            table[mask * k + i] = value * (one - zero[i]) * sum;
        }
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use crate::tree::tests::random_tree;

    /// E[f(x) | x_S] as TreeSHAP defines it: follow x on features in S, else average the
    /// children by cover (Algorithm 1 of the paper).
    fn cond_expectation(tree: &Tree, x: &[f32], s: u32, node: usize) -> f64 {
        let n = &tree.nodes[node];
        if n.is_leaf() {
            return n.value;
        }
        if s & (1 << n.feature) != 0 {
            return cond_expectation(tree, x, s, n.next(x));
        }
        let (l, r) = (n.left as usize, n.right as usize);
        (tree.nodes[l].cover * cond_expectation(tree, x, s, l)
            + tree.nodes[r].cover * cond_expectation(tree, x, s, r))
            / n.cover
    }

    fn factorial(n: usize) -> f64 {
        (1..=n).map(|i| i as f64).product()
    }

    fn brute_force(tree: &Tree, x: &[f32], m: usize) -> Vec<f64> {
        let mut phi = vec![0.0; m];
        for (i, p) in phi.iter_mut().enumerate() {
            for s in 0u32..(1 << m) {
                if s & (1 << i) != 0 {
                    continue;
                }
                let k = s.count_ones() as usize;
                let w = factorial(k) * factorial(m - k - 1) / factorial(m);
                *p += w
                    * (cond_expectation(tree, x, s | (1 << i), 0)
                        - cond_expectation(tree, x, s, 0));
            }
        }
        phi
    }

    #[test]
    fn matches_brute_force_shapley_values() {
        let mut rng = Rng::new(2024);
        let mut scratch = ShapScratch::default();
        for case in 0..300 {
            let m = 1 + case % 5;
            let tree = random_tree(&mut rng, m, 1 + case % 7);
            let x: Vec<f32> = (0..m).map(|_| rng.normal(0.0, 1.0) as f32).collect();
            let mut phi = vec![0.0; m];
            tree_shap(&tree, &x, &mut phi, &mut scratch);
            let want = brute_force(&tree, &x, m);
            for (a, b) in phi.iter().zip(&want) {
                assert!((a - b).abs() < 1e-9, "case {case}: {phi:?} vs {want:?}");
            }
            if let Some(tables) = LeafTables::build(&tree) {
                let mut fast = vec![0.0; m];
                tables.add(&x, &mut fast);
                for (a, b) in fast.iter().zip(&want) {
                    assert!(
                        (a - b).abs() < 1e-9,
                        "tables, case {case}: {fast:?} vs {want:?}"
                    );
                }
            }
            // Local accuracy: base value + contributions = the prediction.
            let total = expected_value(&tree) + phi.iter().sum::<f64>();
            assert!((total - tree.predict(&x)).abs() < 1e-9, "case {case}");
        }
    }

    #[test]
    fn costs_count_what_the_tables_hold_and_what_the_walk_does() {
        let mut rng = Rng::new(7);
        let (mut tabulated, mut walked) = (0, 0);
        for case in 0..200 {
            let tree = random_tree(&mut rng, 1 + case % 9, 1 + case % 9);
            let cost = shap_cost(&tree);
            match LeafTables::build(&tree) {
                Some(t) => {
                    tabulated += 1;
                    assert!(cost.tables);
                    let values: usize = t.leaves.iter().map(|l| l.table.len()).sum();
                    let work: usize = t
                        .leaves
                        .iter()
                        .map(|l| l.splits.len() + l.features.len())
                        .sum();
                    assert_eq!((cost.table_values, cost.row_work), (values, work));
                }
                None => {
                    walked += 1;
                    assert!(!cost.tables && cost.table_values == 0 && cost.row_work > 0);
                }
            }
        }
        assert!(tabulated > 0 && walked > 0);
    }

    #[test]
    fn tables_refuse_paths_with_too_many_features() {
        use crate::tree::tests::chain;
        assert!(chain(MAX_TABLE_FEATURES + 1).validate(12).is_ok());
        assert!(LeafTables::build(&chain(MAX_TABLE_FEATURES + 1)).is_none());
        let t = chain(MAX_TABLE_FEATURES);
        let tables = LeafTables::build(&t).unwrap();
        let x = [-1.0f32; 12];
        let (mut fast, mut walk) = (vec![0.0; 12], vec![0.0; 12]);
        tables.add(&x, &mut fast);
        tree_shap(&t, &x, &mut walk, &mut ShapScratch::default());
        assert!(fast.iter().zip(&walk).all(|(a, b)| (a - b).abs() < 1e-12));
    }

    #[test]
    fn repeated_feature_on_a_path_is_unwound() {
        use crate::tree::Node;
        // x0 > 0 → (x0 > 1 → 3 | 2) | 1 ; covers 10 = 6 + 4, 4 = 1 + 3.
        let tree = Tree {
            nodes: vec![
                Node {
                    feature: 0,
                    threshold: 0.0,
                    left: 1,
                    right: 2,
                    value: 0.0,
                    cover: 10.0,
                },
                Node::leaf(1.0, 6.0),
                Node {
                    feature: 0,
                    threshold: 1.0,
                    left: 3,
                    right: 4,
                    value: 0.0,
                    cover: 4.0,
                },
                Node::leaf(2.0, 1.0),
                Node::leaf(3.0, 3.0),
            ],
        };
        let mut phi = [0.0];
        tree_shap(&tree, &[5.0], &mut phi, &mut ShapScratch::default());
        // One feature: its value is f(x) − E[f] = 3 − (6 + 2 + 9) / 10.
        assert!((phi[0] - (3.0 - 1.7)).abs() < 1e-12, "{phi:?}");
    }
}
