//! Feature drift: the population stability index (PSI) of live rows against the training
//! distribution, per feature, over a rolling window of the last rows a model scored.
//!
//! [`DriftReference::fit`] cuts each feature at its training deciles. Equal cut points are
//! collapsed and a cut at the feature's maximum is dropped, so a flag gets two bins and a
//! feature with k distinct values at most k; bin `b` holds `(cuts[b-1], cuts[b]]`, the first
//! bin everything at or below the first cut (−∞ included) and the last everything above the
//! last cut (+∞ and NaN included, so a broken input shows up as drift instead of vanishing).
//!
//! [`DriftWindow`] keeps each recent row's bin per feature in a ring, so the oldest row
//! leaves exactly when a new one arrives, in O(features). Its [`DriftWindow::psi`] is, per
//! feature,
//!
//! ```text
//! PSI = Σ_b (a_b − e_b) · ln(a_b / e_b)
//! ```
//!
//! with `a_b` the window's and `e_b` the reference's share of rows in bin `b`. It is the
//! symmetrised Kullback–Leibler divergence of the two binned distributions: 0 when they are
//! equal, and by the usual reading < 0.1 stable, 0.1–0.2 a moderate shift, ≥ 0.2 a shift
//! worth acting on. Both shares are smoothed, `p_b = (n_b / n + ε) / (1 + B·ε)` with
//! [`EPSILON`] = 10⁻⁴ and `B` bins, so an empty bin has a finite logarithm; a bin whose
//! training share is 10 % and that a window never fills then adds 0.1 · ln(0.1 / 10⁻⁴) ≈ 0.69.
//!
//! A window of n rows drawn from the training distribution itself has an expected PSI of
//! about (B − 1)/n, so windows of at least a few hundred rows keep noise well under 0.2.

use serde::{Deserialize, Serialize};

/// Bins per feature before equal cuts collapse (deciles).
pub const BINS: usize = 10;
/// Smoothing of every bin share, see the module docs.
pub const EPSILON: f64 = 1e-4;
/// The largest window [`DriftWindow::new`] allocates (rows).
pub const MAX_WINDOW_ROWS: usize = 1_000_000;

/// One feature's bins and their training shares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureBins {
    pub name: String,
    /// Ascending, distinct, finite cut points (at most `BINS − 1`).
    pub cuts: Vec<f32>,
    /// Smoothed training share of each of the `cuts.len() + 1` bins.
    pub expected: Vec<f64>,
}

impl FeatureBins {
    pub fn n_bins(&self) -> usize {
        self.cuts.len() + 1
    }

    /// The bin of `v`: the number of cuts below it; NaN goes to the last bin.
    pub fn bin(&self, v: f32) -> usize {
        if v.is_nan() {
            return self.cuts.len();
        }
        // A branch-free count over at most nine cuts: a binary search's branches mispredict
        // on live values.
        self.cuts.iter().map(|&c| usize::from(c < v)).sum()
    }

    fn validate(&self) -> Result<(), String> {
        let sorted = self.cuts.windows(2).all(|w| w[0] < w[1]);
        let finite = self.cuts.iter().all(|c| c.is_finite());
        let shares_ok = self.expected.iter().all(|e| e.is_finite() && *e > 0.0);
        if !sorted || !finite || self.cuts.len() >= BINS {
            return Err(format!(
                "feature `{}`: cuts must be at most {} ascending finite numbers",
                self.name,
                BINS - 1
            ));
        }
        if self.expected.len() != self.n_bins() || !shares_ok {
            return Err(format!(
                "feature `{}`: needs one positive share per bin",
                self.name
            ));
        }
        Ok(())
    }
}

/// The training distribution of every feature, binned. Deserialisation validates it
/// (model files are input).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "UncheckedReference")]
pub struct DriftReference {
    pub features: Vec<FeatureBins>,
    /// Rows the reference was fitted on.
    pub rows: u64,
    /// Whether those were the benign training rows only (see `Model::set_training_data`).
    #[serde(default)]
    pub benign_only: bool,
}

#[derive(Deserialize)]
struct UncheckedReference {
    features: Vec<FeatureBins>,
    rows: u64,
    #[serde(default)]
    benign_only: bool,
}

impl TryFrom<UncheckedReference> for DriftReference {
    type Error = String;
    fn try_from(u: UncheckedReference) -> Result<Self, String> {
        let r = DriftReference {
            features: u.features,
            rows: u.rows,
            benign_only: u.benign_only,
        };
        r.validate()?;
        Ok(r)
    }
}

/// Smoothed shares of `counts` over `total` rows (uniform when there are none).
fn shares(counts: impl ExactSizeIterator<Item = u64>, total: u64, out: &mut Vec<f64>) {
    let bins = counts.len() as f64;
    out.clear();
    for c in counts {
        let raw = if total == 0 {
            1.0 / bins
        } else {
            c as f64 / total as f64
        };
        out.push((raw + EPSILON) / (1.0 + bins * EPSILON));
    }
}

impl DriftReference {
    /// Fits the bins on row-major `x` (`n_features` per row; a trailing partial row is
    /// ignored). A feature without a name in `names` is called `f<index>`.
    pub fn fit(x: &[f32], n_features: usize, names: &[String]) -> DriftReference {
        let rows: Vec<&[f32]> = if n_features == 0 {
            Vec::new()
        } else {
            x.chunks_exact(n_features).collect()
        };
        let features = (0..n_features)
            .map(|f| {
                let name = names.get(f).cloned().unwrap_or_else(|| format!("f{f}"));
                fit_feature(name, rows.iter().map(|r| r[f]))
            })
            .collect();
        DriftReference {
            features,
            rows: rows.len() as u64,
            benign_only: false,
        }
    }

    pub fn n_features(&self) -> usize {
        self.features.len()
    }

    pub fn validate(&self) -> Result<(), String> {
        self.features.iter().try_for_each(FeatureBins::validate)
    }
}

fn fit_feature(name: String, values: impl Iterator<Item = f32> + Clone) -> FeatureBins {
    let mut finite: Vec<f32> = values.clone().filter(|v| v.is_finite()).collect();
    finite.sort_unstable_by(f32::total_cmp);
    let mut cuts: Vec<f32> = Vec::with_capacity(BINS - 1);
    if let Some(&max) = finite.last() {
        let n = finite.len();
        for k in 1..BINS {
            // The smallest value with at least k/BINS of the rows at or below it.
            let c = finite[(k * n).div_ceil(BINS).saturating_sub(1)];
            if c < max && cuts.last().is_none_or(|&last| c > last) {
                cuts.push(c);
            }
        }
    }
    let mut bins = FeatureBins {
        name,
        cuts,
        expected: Vec::new(),
    };
    let mut counts = vec![0u64; bins.n_bins()];
    let mut total = 0u64;
    for v in values {
        counts[bins.bin(v)] += 1;
        total += 1;
    }
    shares(counts.into_iter(), total, &mut bins.expected);
    bins
}

/// The last `capacity` rows' bins and per-bin counts, against a reference.
#[derive(Debug, Clone)]
pub struct DriftWindow {
    reference: DriftReference,
    capacity: usize,
    /// Bin per feature of each row in the window, row-major by ring slot.
    ring: Vec<u8>,
    /// The slot the next row overwrites once the ring is full.
    next: usize,
    /// Rows per bin, feature after feature (`offsets[f]..offsets[f + 1]`).
    counts: Vec<u32>,
    offsets: Vec<usize>,
}

impl DriftWindow {
    /// An empty window of `capacity_rows` rows (clamped to 1..=[`MAX_WINDOW_ROWS`]).
    pub fn new(reference: &DriftReference, capacity_rows: usize) -> DriftWindow {
        let mut offsets = Vec::with_capacity(reference.n_features() + 1);
        offsets.push(0);
        for f in &reference.features {
            offsets.push(offsets[offsets.len() - 1] + f.n_bins());
        }
        DriftWindow {
            reference: reference.clone(),
            capacity: capacity_rows.clamp(1, MAX_WINDOW_ROWS),
            ring: Vec::new(),
            next: 0,
            counts: vec![0; offsets[offsets.len() - 1]],
            offsets,
        }
    }

    pub fn reference(&self) -> &DriftReference {
        &self.reference
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Rows in the window.
    pub fn len(&self) -> usize {
        self.ring
            .len()
            .checked_div(self.reference.n_features())
            .unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Rows per bin of feature `f` (empty for an unknown feature).
    pub fn counts(&self, f: usize) -> &[u32] {
        match (self.offsets.get(f), self.offsets.get(f + 1)) {
            (Some(&a), Some(&b)) => &self.counts[a..b],
            _ => &[],
        }
    }

    /// Adds one row, evicting the oldest when the window is full. Features missing from a
    /// short row count as NaN (the last bin), so a mis-mapped input shows up as drift;
    /// extra values are ignored.
    pub fn observe(&mut self, row: &[f32]) {
        let nf = self.reference.n_features();
        if nf == 0 {
            return;
        }
        let full = self.len() == self.capacity;
        let slot = if full {
            let s = self.next;
            self.next = (s + 1) % self.capacity;
            s
        } else {
            self.ring.resize(self.ring.len() + nf, 0);
            self.len() - 1
        };
        let cells = &mut self.ring[slot * nf..(slot + 1) * nf];
        let features = self.reference.features.iter().zip(&self.offsets);
        for (f, ((bins, &base), cell)) in features.zip(cells).enumerate() {
            if full {
                self.counts[base + usize::from(*cell)] -= 1;
            }
            let b = bins.bin(row.get(f).copied().unwrap_or(f32::NAN));
            // At most BINS (< 256) bins, checked when the reference was built or read.
            *cell = b as u8;
            self.counts[base + b] += 1;
        }
    }

    /// PSI per feature (module docs); all zeros while the window is empty.
    pub fn psi(&self) -> Vec<f64> {
        let n = self.len() as u64;
        let mut actual = Vec::with_capacity(BINS);
        self.reference
            .features
            .iter()
            .enumerate()
            .map(|(f, bins)| {
                if n == 0 {
                    return 0.0;
                }
                shares(self.counts(f).iter().map(|&c| u64::from(c)), n, &mut actual);
                actual
                    .iter()
                    .zip(&bins.expected)
                    .map(|(a, e)| (a - e) * (a / e).ln())
                    .sum()
            })
            .collect()
    }

    /// The feature with the largest PSI and that PSI (`(0, 0.0)` without features).
    pub fn max_psi(&self) -> (usize, f64) {
        self.psi().into_iter().enumerate().fold(
            (0, 0.0),
            |best, (f, v)| if v > best.1 { (f, v) } else { best },
        )
    }
}

/// The serialised form: the reference, the capacity, the ring and where it wraps; the counts
/// are rebuilt from the ring on load.
#[derive(Serialize)]
struct WindowRef<'a> {
    reference: &'a DriftReference,
    capacity: usize,
    ring: &'a [u8],
    next: usize,
}

#[derive(Deserialize)]
struct WindowState {
    reference: DriftReference,
    capacity: usize,
    ring: Vec<u8>,
    next: usize,
}

impl Serialize for DriftWindow {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        WindowRef {
            reference: &self.reference,
            capacity: self.capacity,
            ring: &self.ring,
            next: self.next,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for DriftWindow {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let state = WindowState::deserialize(d)?;
        DriftWindow::restore(state).map_err(serde::de::Error::custom)
    }
}

impl DriftWindow {
    /// Rebuilds a window from a snapshot, refusing one whose parts disagree.
    fn restore(s: WindowState) -> Result<DriftWindow, String> {
        let mut w = DriftWindow::new(&s.reference, s.capacity);
        let nf = s.reference.n_features();
        let rows = s.ring.len().checked_div(nf).unwrap_or(0);
        let full = rows == w.capacity;
        let shape_ok = s.capacity == w.capacity
            && s.ring.len() == rows * nf
            && rows <= w.capacity
            && (s.next == 0 || (full && s.next < w.capacity));
        if !shape_ok {
            return Err("drift window: ring, capacity and position disagree".into());
        }
        for row in s.ring.chunks_exact(nf.max(1)) {
            for (f, &b) in row.iter().enumerate() {
                if usize::from(b) >= s.reference.features[f].n_bins() {
                    return Err("drift window: a bin index is out of range".into());
                }
                w.counts[w.offsets[f] + usize::from(b)] += 1;
            }
        }
        w.ring = s.ring;
        w.next = s.next;
        Ok(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use proptest::prelude::*;

    /// `rows` rows of three features: a standard normal, a 0/1 flag (30 % ones) and a
    /// uniform integer 0–3.
    fn data(rows: usize, seed: u64) -> Vec<f32> {
        let mut rng = Rng::new(seed);
        let mut x = Vec::with_capacity(rows * 3);
        for _ in 0..rows {
            // Box–Muller.
            let (u, v) = (rng.f64().max(1e-12), rng.f64());
            x.push(((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32);
            x.push(f32::from(u8::from(rng.bernoulli(0.3))));
            x.push(rng.index(4) as f32);
        }
        x
    }

    fn names() -> Vec<String> {
        vec!["normal".into(), "flag".into(), "small".into()]
    }

    fn fed(reference: &DriftReference, capacity: usize, x: &[f32]) -> DriftWindow {
        let mut w = DriftWindow::new(reference, capacity);
        for row in x.chunks_exact(reference.n_features()) {
            w.observe(row);
        }
        w
    }

    #[test]
    fn deciles_for_continuous_features_and_fewer_bins_for_discrete_ones() {
        let r = DriftReference::fit(&data(5000, 1), 3, &names());
        assert_eq!(r.rows, 5000);
        assert_eq!(r.features[0].n_bins(), BINS);
        for e in &r.features[0].expected {
            assert!((e - 0.1).abs() < 0.002, "{e}");
        }
        // A flag: one cut at 0, two bins. Four values: three cuts, four bins.
        assert_eq!(r.features[1].cuts, [0.0]);
        assert!((r.features[1].expected[1] - 0.3).abs() < 0.03);
        assert_eq!(r.features[2].cuts, [0.0, 1.0, 2.0]);
        let total: f64 = r.features[2].expected.iter().sum();
        assert!((total - 1.0).abs() < 1e-12);
        assert_eq!(r.features[2].name, "small");
        // Out of range values land in the end bins.
        assert_eq!(r.features[0].bin(-100.0), 0);
        assert_eq!(r.features[0].bin(100.0), BINS - 1);
    }

    #[test]
    fn training_data_itself_has_no_drift() {
        let x = data(4000, 2);
        let r = DriftReference::fit(&x, 3, &names());
        let w = fed(&r, 4000, &x);
        assert_eq!(w.len(), 4000);
        assert!(w.psi().iter().all(|&p| p.abs() < 1e-12), "{:?}", w.psi());
        // Fresh rows of the same distribution: noise only, about (B − 1) / n.
        let w = fed(&r, 2000, &data(2000, 3));
        assert!(w.psi().iter().all(|&p| p < 0.03), "{:?}", w.psi());
    }

    #[test]
    fn a_two_sigma_shift_is_flagged_on_that_feature_only() {
        let r = DriftReference::fit(&data(5000, 4), 3, &names());
        let mut live = data(2000, 5);
        for row in live.chunks_exact_mut(3) {
            row[0] += 2.0;
        }
        let w = fed(&r, 2000, &live);
        let psi = w.psi();
        assert!(psi[0] >= 0.2, "{psi:?}");
        assert!(psi[1] < 0.05 && psi[2] < 0.05, "{psi:?}");
        assert_eq!(w.max_psi(), (0, psi[0]));
    }

    #[test]
    fn non_finite_and_short_rows_count_in_an_end_bin() {
        let r = DriftReference::fit(&data(1000, 6), 3, &names());
        let mut w = DriftWindow::new(&r, 10);
        w.observe(&[f32::NAN, f32::INFINITY, f32::NEG_INFINITY]);
        w.observe(&[f32::NEG_INFINITY]);
        w.observe(&[]);
        assert_eq!(w.len(), 3);
        assert_eq!(w.counts(0)[BINS - 1], 2);
        assert_eq!(w.counts(0)[0], 1);
        assert_eq!(w.counts(1), [0, 3]);
        assert_eq!(w.counts(2)[0], 1);
        assert!(w.psi().iter().all(|p| p.is_finite() && *p > 0.0));
        assert!(w.counts(7).is_empty());
        // A reference fitted on nothing but NaN has one bin and never drifts.
        let r = DriftReference::fit(&[f32::NAN; 4], 2, &[]);
        assert_eq!(r.features[1].name, "f1");
        let w = fed(&r, 5, &[1.0, 2.0, f32::NAN, 0.0]);
        assert_eq!(w.psi(), [0.0, 0.0]);
    }

    #[test]
    fn empty_references_and_windows_are_harmless() {
        let r = DriftReference::fit(&[], 0, &[]);
        let mut w = DriftWindow::new(&r, 0);
        w.observe(&[1.0]);
        assert_eq!((w.len(), w.capacity(), w.max_psi()), (0, 1, (0, 0.0)));
        let r = DriftReference::fit(&data(100, 1), 3, &names());
        assert_eq!(DriftWindow::new(&r, 50).psi(), [0.0; 3]);
    }

    #[test]
    fn corrupt_snapshots_are_refused() {
        let r = DriftReference::fit(&data(500, 7), 3, &names());
        let w = fed(&r, 4, &data(6, 8));
        let good = serde_json::to_value(&w).unwrap();
        let edits: [fn(&mut serde_json::Value); 5] = [
            |v| v["ring"][0] = 200.into(),
            |v| v["next"] = 9.into(),
            |v| v["capacity"] = 5.into(),
            |v| v["reference"]["features"][0]["cuts"][0] = 99.0.into(),
            |v| v["reference"]["features"][1]["expected"] = serde_json::json!([1.0]),
        ];
        for edit in edits {
            let mut v = good.clone();
            edit(&mut v);
            assert!(serde_json::from_value::<DriftWindow>(v).is_err());
        }
    }

    proptest! {
        #[test]
        fn the_window_holds_exactly_the_last_rows(
            capacity in 1usize..40,
            n in 0usize..120,
            seed in 0u64..1000,
        ) {
            let r = DriftReference::fit(&data(300, 9), 3, &names());
            let live = data(n, seed);
            let rolled = fed(&r, capacity, &live);
            let keep = n.min(capacity);
            let fresh = fed(&r, capacity, &live[(n - keep) * 3..]);
            prop_assert_eq!(rolled.len(), keep);
            for f in 0..3 {
                prop_assert_eq!(rolled.counts(f), fresh.counts(f));
            }
            prop_assert_eq!(rolled.psi(), fresh.psi());
            // A snapshot restores the same window, which then rolls on identically.
            let bytes = postcard::to_stdvec(&rolled).unwrap();
            let mut back: DriftWindow = postcard::from_bytes(&bytes).unwrap();
            let mut rolled = rolled;
            for row in data(7, seed + 1).chunks_exact(3) {
                rolled.observe(row);
                back.observe(row);
            }
            prop_assert_eq!(rolled.psi(), back.psi());
        }

        #[test]
        fn any_values_are_binned_without_panicking(
            train in proptest::collection::vec(any::<f32>(), 0..60),
            live in proptest::collection::vec(any::<f32>(), 0..60),
        ) {
            let r = DriftReference::fit(&train, 2, &[]);
            prop_assert!(r.validate().is_ok());
            let w = fed(&r, 8, &live);
            prop_assert!(w.psi().iter().all(|p| p.is_finite() && *p >= -1e-12));
        }
    }
}
