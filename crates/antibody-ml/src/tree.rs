//! Binary decision trees shared by the isolation forest and the boosted trees, and their
//! compiled form for fast inference.
//!
//! A [`Tree`] is the explicit node list that training builds, model files store and
//! TreeSHAP walks. A [`FlatForest`] is the same trees padded to complete binary trees of one
//! depth, stored as flat arrays: every tree is then evaluated with the same fixed number of
//! branch-free steps (`i = 2i + 1 + (x[f] > t)`), and a batch interleaves several rows per
//! tree so their independent steps overlap in the CPU. Padding nodes test feature 0 against
//! +∞ (always left) and the leaf value is copied to every bottom slot below it.
//!
//! Split convention everywhere: a row goes right iff `x[feature] > threshold`; NaN goes left.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub feature: u32,
    pub threshold: f32,
    /// Children; 0 marks a leaf (the root is never a child).
    pub left: u32,
    pub right: u32,
    /// The leaf's output (for internal nodes: unused by prediction).
    pub value: f64,
    /// Training rows that reached the node (TreeSHAP weights paths by it).
    pub cover: f64,
}

impl Node {
    pub fn leaf(value: f64, cover: f64) -> Self {
        Node {
            feature: 0,
            threshold: 0.0,
            left: 0,
            right: 0,
            value,
            cover,
        }
    }

    pub fn is_leaf(&self) -> bool {
        self.left == 0
    }

    /// The child a row goes to.
    pub fn next(&self, x: &[f32]) -> usize {
        let v = x.get(self.feature as usize).copied().unwrap_or(f32::NAN);
        if v > self.threshold {
            self.right as usize
        } else {
            self.left as usize
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tree {
    /// Node 0 is the root.
    pub nodes: Vec<Node>,
}

impl Tree {
    /// The leaf node a row reaches.
    pub fn leaf_of(&self, x: &[f32]) -> usize {
        let mut i = 0;
        while let Some(n) = self.nodes.get(i) {
            if n.is_leaf() {
                return i;
            }
            i = n.next(x);
        }
        0
    }

    pub fn predict(&self, x: &[f32]) -> f64 {
        self.nodes.get(self.leaf_of(x)).map_or(0.0, |n| n.value)
    }

    /// Edges on the longest root-to-leaf path (children come after their parent, which
    /// `validate` checks, so one forward pass sees every parent first).
    pub fn depth(&self) -> usize {
        let mut depth = vec![0usize; self.nodes.len()];
        let mut max = 0;
        for (i, n) in self.nodes.iter().enumerate() {
            if n.is_leaf() {
                continue;
            }
            let child_depth = depth[i] + 1;
            for c in [n.left as usize, n.right as usize] {
                if let Some(d) = depth.get_mut(c) {
                    *d = child_depth;
                    max = max.max(child_depth);
                }
            }
        }
        max
    }

    /// Checks the structure a model file could have broken: children in range and after
    /// their parent (so walks terminate), every node but the root the child of exactly one
    /// node, features within `n_features`, depth at most [`MAX_TREE_DEPTH`] (compiled trees
    /// take `2^depth` slots).
    ///
    /// One parent each: a node shared by a shallow and a deep parent would make [`Tree::depth`]
    /// count the shallow path only, hiding the real depth from the cap and from TreeSHAP's
    /// buffers, and shared subtrees multiply the paths that compiling and explaining walk.
    pub fn validate(&self, n_features: usize) -> Result<(), String> {
        if self.nodes.is_empty() {
            return Err("empty tree".into());
        }
        let mut parents = vec![0u8; self.nodes.len()];
        for (i, n) in self.nodes.iter().enumerate() {
            if n.is_leaf() {
                continue;
            }
            let ok = |c: u32| (c as usize) > i && (c as usize) < self.nodes.len();
            if !ok(n.left) || !ok(n.right) {
                return Err(format!("node {i} has a child out of order or range"));
            }
            if n.feature as usize >= n_features {
                return Err(format!(
                    "node {i} splits on feature {} of {n_features}",
                    n.feature
                ));
            }
            for c in [n.left, n.right] {
                let p = &mut parents[c as usize];
                *p = p.saturating_add(1);
            }
        }
        if let Some((c, &p)) = parents.iter().enumerate().skip(1).find(|(_, &p)| p != 1) {
            return Err(format!(
                "node {c} is the child of {p} nodes (a tree's nodes have one parent each)"
            ));
        }
        if self.depth() > MAX_TREE_DEPTH {
            return Err(format!("a tree is deeper than {MAX_TREE_DEPTH} levels"));
        }
        Ok(())
    }
}

/// The deepest tree a model may hold.
pub const MAX_TREE_DEPTH: usize = 16;

/// Compiled slots a forest may take per real node, above a small floor: compiling pads every
/// tree to the deepest one's depth, and a model file (an upload) of a few tiny trees and one
/// deep one must not claim gigabytes. Trained forests stay far below it (at most ~31).
const SLOTS_PER_NODE: usize = 64;
const FREE_SLOTS: usize = 1 << 20;

/// Refuses validated trees whose compiled form would be out of proportion to them.
pub fn check_compiled_size(trees: &[Tree]) -> Result<(), String> {
    let depth = trees
        .iter()
        .map(Tree::depth)
        .max()
        .unwrap_or(0)
        .min(MAX_TREE_DEPTH);
    let slots = trees.len().saturating_mul(1usize << depth);
    let nodes: usize = trees.iter().map(|t| t.nodes.len()).sum();
    if slots > FREE_SLOTS.max(SLOTS_PER_NODE.saturating_mul(nodes)) {
        return Err(format!(
            "{} trees padded to depth {depth} would take {slots} slots for {nodes} nodes",
            trees.len()
        ));
    }
    Ok(())
}

/// Trees one forest (the isolation forest, one output of a booster) may hold: as many as
/// `antibody train --trees` allows.
pub const MAX_TREES: usize = 10_000;

/// What a forest costs compiled, from [`check_forest`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ForestCost {
    /// Bottom slots of the padded complete trees: the compiled form holds twice as many
    /// slots of 12 bytes, and a (validated) tree has fewer nodes than twice its slots.
    pub slots: usize,
    /// Steps to score one row: each tree's padded depth plus reading its leaf.
    pub steps: usize,
}

impl std::ops::Add for ForestCost {
    type Output = ForestCost;
    fn add(self, o: ForestCost) -> ForestCost {
        ForestCost {
            slots: self.slots.saturating_add(o.slots),
            steps: self.steps.saturating_add(o.steps),
        }
    }
}

/// Validates `trees` as one forest over `n_features` (each tree, their number, their
/// compiled size) and returns what it costs compiled.
pub fn check_forest(trees: &[Tree], n_features: usize) -> Result<ForestCost, String> {
    if trees.len() > MAX_TREES {
        return Err(format!(
            "a forest of {} trees is above {MAX_TREES} (MAX_TREES)",
            trees.len()
        ));
    }
    for t in trees {
        t.validate(n_features)?;
    }
    check_compiled_size(trees)?;
    let depth = trees.iter().map(Tree::depth).max().unwrap_or(0);
    Ok(ForestCost {
        slots: trees.len().saturating_mul(1 << depth),
        steps: trees.len().saturating_mul(depth + 1),
    })
}

/// Trees compiled to complete binary trees of a common depth, in flat arrays.
#[derive(Debug, Clone, Default)]
pub struct FlatForest {
    depth: u32,
    n_trees: usize,
    /// Internal nodes, tree after tree, each tree's in heap order.
    splits: Vec<Split>,
    leaf: Vec<f32>,
}

/// Feature and threshold side by side: one load per step.
#[derive(Debug, Clone, Copy)]
struct Split {
    threshold: f32,
    feature: u32,
}

const PASS: Split = Split {
    threshold: f32::INFINITY,
    feature: 0,
};

/// Rows evaluated together per tree in a batch: enough independent dependency chains to
/// hide the latency of each step's loads.
const LANES: usize = 8;

impl FlatForest {
    /// `trees` must have been validated against the row width.
    pub fn compile(trees: &[Tree]) -> Self {
        let depth = trees.iter().map(Tree::depth).max().unwrap_or(0) as u32;
        let internal = (1usize << depth) - 1;
        let leaves = 1usize << depth;
        let mut f = FlatForest {
            depth,
            n_trees: trees.len(),
            splits: vec![PASS; internal * trees.len()],
            leaf: vec![0.0; leaves * trees.len()],
        };
        for (t, tree) in trees.iter().enumerate() {
            f.fill(tree, t, 0, 0, 0);
        }
        f
    }

    /// Copies `tree`'s node `node` to complete-tree slot `slot` at `level`.
    fn fill(&mut self, tree: &Tree, t: usize, node: usize, slot: usize, level: u32) {
        let Some(n) = tree.nodes.get(node) else {
            return;
        };
        if level == self.depth {
            self.leaf[(t << self.depth) + slot - ((1 << self.depth) - 1)] = n.value as f32;
            return;
        }
        let base = t * ((1 << self.depth) - 1);
        if n.is_leaf() {
            // Pass-through: threshold +∞ sends every row left, down to the leftmost slot.
            self.fill(tree, t, node, 2 * slot + 1, level + 1);
            return;
        }
        self.splits[base + slot] = Split {
            threshold: n.threshold,
            feature: n.feature,
        };
        self.fill(tree, t, n.left as usize, 2 * slot + 1, level + 1);
        self.fill(tree, t, n.right as usize, 2 * slot + 2, level + 1);
    }

    pub fn n_trees(&self) -> usize {
        self.n_trees
    }

    /// The leaf value of tree `t` for row `x`.
    #[inline]
    fn eval(&self, t: usize, x: &[f32]) -> f32 {
        let internal = (1usize << self.depth) - 1;
        let splits = &self.splits[t * internal..(t + 1) * internal];
        let mut i = 0usize;
        for _ in 0..self.depth {
            let s = splits[i];
            let v = x.get(s.feature as usize).copied().unwrap_or(f32::NAN);
            i = 2 * i + 1 + usize::from(v > s.threshold);
        }
        self.leaf[(t << self.depth) + i - internal]
    }

    /// Sum of the trees' leaf values for one row.
    pub fn sum(&self, x: &[f32]) -> f32 {
        (0..self.n_trees).map(|t| self.eval(t, x)).sum()
    }

    /// Adds each row's sum of leaf values into `out` (`rows` row-major, `width` per row).
    pub fn add_sums(&self, rows: &[f32], width: usize, out: &mut [f32]) {
        if width == 0 {
            return;
        }
        let internal = (1usize << self.depth) - 1;
        let mut chunks = rows.chunks_exact(width * LANES);
        let mut outs = out.chunks_exact_mut(LANES);
        for (block, acc) in (&mut chunks).zip(&mut outs) {
            let lanes: [&[f32]; LANES] =
                std::array::from_fn(|lane| &block[lane * width..(lane + 1) * width]);
            for t in 0..self.n_trees {
                let splits = &self.splits[t * internal..(t + 1) * internal];
                let mut idx = [0usize; LANES];
                for _ in 0..self.depth {
                    for (row, i) in lanes.iter().zip(idx.iter_mut()) {
                        let s = splits[*i];
                        let v = row.get(s.feature as usize).copied().unwrap_or(f32::NAN);
                        *i = 2 * *i + 1 + usize::from(v > s.threshold);
                    }
                }
                let leaves = &self.leaf[t << self.depth..(t + 1) << self.depth];
                for (a, i) in acc.iter_mut().zip(idx) {
                    *a += leaves[i - internal];
                }
            }
        }
        for (x, o) in chunks
            .remainder()
            .chunks_exact(width)
            .zip(outs.into_remainder())
        {
            *o += self.sum(x);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::rng::Rng;

    /// A left chain splitting on features 0, 1, …, depth − 1, each split with a leaf on its
    /// right and covers that add up. Children follow their parent: node 2d + 1 is a leaf,
    /// 2d + 2 the next split.
    pub(crate) fn chain(depth: usize) -> Tree {
        let mut nodes = Vec::new();
        for d in 0..depth {
            nodes.push(Node {
                feature: d as u32,
                threshold: 0.0,
                left: (2 * d + 2) as u32,
                right: (2 * d + 1) as u32,
                value: 0.0,
                cover: (depth + 1 - d) as f64,
            });
            nodes.push(Node::leaf(d as f64, 1.0));
        }
        nodes.push(Node::leaf(-1.0, 1.0));
        Tree { nodes }
    }

    /// A random tree over `n_features` with consistent covers; features may repeat on a path.
    pub(crate) fn random_tree(rng: &mut Rng, n_features: usize, max_depth: usize) -> Tree {
        fn grow(rng: &mut Rng, t: &mut Tree, i: usize, nf: usize, depth: usize, cover: f64) {
            if depth == 0 || cover < 2.0 || rng.bernoulli(0.2) {
                t.nodes[i] = Node::leaf(rng.normal(0.0, 1.0), cover);
                return;
            }
            let left_cover = (cover * rng.uniform(0.1, 0.9))
                .round()
                .clamp(1.0, cover - 1.0);
            let l = t.nodes.len();
            t.nodes.push(Node::leaf(0.0, 0.0));
            t.nodes.push(Node::leaf(0.0, 0.0));
            t.nodes[i] = Node {
                feature: rng.index(nf) as u32,
                threshold: rng.normal(0.0, 1.0) as f32,
                left: l as u32,
                right: l as u32 + 1,
                value: 0.0,
                cover,
            };
            grow(rng, t, l, nf, depth - 1, left_cover);
            grow(rng, t, l + 1, nf, depth - 1, cover - left_cover);
        }
        let mut t = Tree {
            nodes: vec![Node::leaf(0.0, 0.0)],
        };
        grow(rng, &mut t, 0, n_features, max_depth, 1000.0);
        t
    }

    #[test]
    fn flat_forest_matches_node_walks() {
        let mut rng = Rng::new(11);
        let trees: Vec<Tree> = (0..20).map(|_| random_tree(&mut rng, 4, 6)).collect();
        for t in &trees {
            t.validate(4).unwrap();
        }
        let flat = FlatForest::compile(&trees);
        let rows: Vec<f32> = (0..4 * 37)
            .map(|i| {
                if i % 23 == 0 {
                    f32::NAN
                } else {
                    rng.normal(0.0, 1.0) as f32
                }
            })
            .collect();
        let mut batch = vec![0f32; 37];
        flat.add_sums(&rows, 4, &mut batch);
        for (r, x) in rows.chunks_exact(4).enumerate() {
            let want: f64 = trees.iter().map(|t| t.predict(x)).sum();
            assert!((flat.sum(x) as f64 - want).abs() < 1e-4, "row {r}");
            assert!((batch[r] as f64 - want).abs() < 1e-4, "batch row {r}");
        }
    }

    #[test]
    fn lopsided_forests_are_refused_before_compiling() {
        // One path of depth 16 among many one-node trees.
        let mut deep = Tree {
            nodes: vec![Node::leaf(0.0, 1.0)],
        };
        for level in 0..16u32 {
            let n = deep.nodes.len() as u32;
            let last = deep.nodes.len() - 1;
            deep.nodes[last] = Node {
                feature: 0,
                threshold: level as f32,
                left: n,
                right: n + 1,
                value: 0.0,
                cover: 1.0,
            };
            deep.nodes.push(Node::leaf(0.0, 1.0));
            deep.nodes.push(Node::leaf(0.0, 1.0));
        }
        deep.validate(1).unwrap();
        assert_eq!(deep.depth(), 16);
        let mut trees = vec![deep];
        assert!(check_compiled_size(&trees).is_ok());
        trees.extend((0..100).map(|_| Tree {
            nodes: vec![Node::leaf(0.0, 1.0)],
        }));
        assert!(check_compiled_size(&trees).is_err());
    }

    #[test]
    fn forests_report_their_compiled_cost_and_are_capped_in_trees() {
        let mut rng = Rng::new(3);
        let trees: Vec<Tree> = (0..30).map(|_| random_tree(&mut rng, 4, 5)).collect();
        let depth = trees.iter().map(Tree::depth).max().unwrap();
        let cost = check_forest(&trees, 4).unwrap();
        assert_eq!(cost.slots, 30 << depth);
        assert_eq!(cost.steps, 30 * (depth + 1));
        assert_eq!((cost + cost).steps, 60 * (depth + 1));
        assert!(check_forest(&trees, 2).is_err(), "features beyond the row");
        let stumps = vec![
            Tree {
                nodes: vec![Node::leaf(1.0, 1.0)]
            };
            MAX_TREES + 1
        ];
        assert!(check_forest(&stumps, 1).unwrap_err().contains("MAX_TREES"));
        assert!(check_forest(&stumps[1..], 1).is_ok());
    }

    #[test]
    fn validate_rejects_broken_trees() {
        let mut t = Tree {
            nodes: vec![Node {
                left: 1,
                right: 2,
                ..Node::leaf(0.0, 1.0)
            }],
        };
        assert!(t.validate(1).is_err());
        t.nodes.push(Node::leaf(1.0, 1.0));
        t.nodes.push(Node::leaf(2.0, 1.0));
        assert!(t.validate(1).is_ok());
        t.nodes[0].feature = 3;
        assert!(t.validate(1).is_err());
        // A chain deeper than the limit.
        let mut chain = Vec::new();
        for d in 0..=MAX_TREE_DEPTH {
            chain.push(Node {
                left: (2 * d + 1) as u32,
                right: (2 * d + 2) as u32,
                ..Node::leaf(0.0, 1.0)
            });
            chain.push(Node::leaf(0.0, 1.0));
        }
        chain.push(Node::leaf(0.0, 1.0));
        let chain = Tree { nodes: chain };
        assert_eq!(chain.depth(), MAX_TREE_DEPTH + 1);
        assert!(chain.validate(1).unwrap_err().contains("deeper"));
    }

    fn split(left: u32, right: u32) -> Node {
        Node {
            left,
            right,
            ..Node::leaf(0.0, 1.0)
        }
    }

    #[test]
    fn validate_rejects_shared_and_orphaned_nodes() {
        let leaf = Node::leaf(0.0, 1.0);
        // Node 3 under both 1 and 2.
        let shared = Tree {
            nodes: vec![split(1, 2), split(3, 4), split(3, 5), leaf, leaf, leaf],
        };
        assert!(shared.validate(1).unwrap_err().contains("node 3"));
        let same = Tree {
            nodes: vec![split(1, 1), leaf],
        };
        assert!(same.validate(1).unwrap_err().contains("child of 2"));
        let orphan = Tree {
            nodes: vec![split(1, 2), leaf, leaf, leaf],
        };
        assert!(orphan.validate(1).unwrap_err().contains("child of 0"));
    }
}
