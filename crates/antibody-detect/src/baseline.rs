//! Per `(tenant, entity, metric)` baselines: EWMA mean and variance with a warm-up, a
//! deviation test in σ, and the poisoning-resistance rule.
//!
//! ## The rule
//! * **Warm-up.** The first `warmup` samples (default 15) are learned with Welford's exact
//!   running mean/variance and never judged.
//! * **Fast baseline.** After warm-up, mean and variance follow an EWMA with weight `alpha`
//!   (default 0.05).
//! * **Anchor.** A second EWMA with weight `alpha / anchor_slowdown` (default 20× slower)
//!   starts from the warm-up figures. A slow ramp drags the fast baseline along with it, but
//!   not the anchor, so a ramp is judged against where the metric *used to be*.
//! * **Judging.** σ = |x − mean| / max(std, `rel_std_floor`·|mean|, 1e-9), computed against
//!   both baselines. σ ≥ `threshold` (default 3) against either is a finding; it is reported
//!   against the recent baseline when that one alone flags it, else against the anchor.
//! * **No poisoning.** A value judged anomalous is folded into neither baseline. A value
//!   anomalous only against the anchor is folded into neither either, so a +2 %/event ramp from
//!   a learned baseline is flagged once it leaves the anchor's band — long before 3× the mean.
//! * **Re-learning.** A genuine level shift would otherwise be flagged forever: after
//!   `relearn_after` consecutive anomalous samples (default 50) the metric restarts its
//!   warm-up from the new level. Every one of those samples was already reported, so an
//!   attacker cannot get a shift learned without first raising that many findings.
//! * **Re-convergence after a heal.** Once the response engine has healed an entity (its
//!   probation passed), the entity may legitimately settle at a new level. For
//!   `reconverge_ms` of engine time its baselines are observed with
//!   [`MetricBaseline::observe_reconverging`]: a value within `reconverge_band` σ (default
//!   20) of both baselines is learned, not reported, and both EWMAs (the anchor too) learn
//!   with weight `reconverge_alpha` (default 0.25), so a moderate new level is absorbed in a
//!   few samples instead of raising `relearn_after` findings and a new incident. A value
//!   beyond the band (a real attack) is reported and not learned, as ever. The price is a
//!   bounded window in which a shift of up to the band goes unreported.
//!
//! Severity bands by σ: [3, 4) low, [4, 5) medium, [5, 7) high, ≥ 7 critical (the bands move
//! with a custom threshold: low starts at the threshold). Score = 1 − e^(−σ/5).

use antibody_core::Severity;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BaselineConfig {
    pub warmup: u32,
    pub alpha: f64,
    pub anchor_slowdown: f64,
    pub threshold: f64,
    pub rel_std_floor: f64,
    pub relearn_after: u32,
    /// Engine time after a heal during which an entity's baselines re-converge (0: never).
    pub reconverge_ms: i64,
    /// EWMA weight of both baselines while re-converging.
    pub reconverge_alpha: f64,
    /// While re-converging, values within this many σ are learned rather than reported.
    pub reconverge_band: f64,
}

impl Default for BaselineConfig {
    fn default() -> Self {
        Self {
            warmup: 15,
            alpha: 0.05,
            anchor_slowdown: 20.0,
            threshold: 3.0,
            rel_std_floor: 0.05,
            relearn_after: 50,
            reconverge_ms: 600_000,
            reconverge_alpha: 0.25,
            reconverge_band: 20.0,
        }
    }
}

impl BaselineConfig {
    /// Checks ranges; returns a sentence naming the bad key.
    pub fn validate(&self) -> Result<(), String> {
        if self.warmup < 2 {
            return Err("baseline.warmup must be at least 2".into());
        }
        if !(self.alpha > 0.0 && self.alpha < 1.0) {
            return Err("baseline.alpha must be in (0, 1)".into());
        }
        if !(self.anchor_slowdown >= 1.0 && self.anchor_slowdown.is_finite()) {
            return Err("baseline.anchor_slowdown must be ≥ 1".into());
        }
        if !(self.threshold > 0.0 && self.threshold.is_finite()) {
            return Err("baseline.threshold must be a positive number of σ".into());
        }
        if !(0.0..1.0).contains(&self.rel_std_floor) {
            return Err("baseline.rel_std_floor must be in [0, 1)".into());
        }
        if self.reconverge_ms < 0 {
            return Err("baseline.reconverge_ms must be ≥ 0".into());
        }
        if !(self.reconverge_alpha > 0.0 && self.reconverge_alpha < 1.0) {
            return Err("baseline.reconverge_alpha must be in (0, 1)".into());
        }
        if !(self.reconverge_band >= self.threshold && self.reconverge_band.is_finite()) {
            return Err(
                "baseline.reconverge_band must be a number of σ ≥ baseline.threshold".into(),
            );
        }
        Ok(())
    }

    pub fn severity(&self, sigma: f64) -> Severity {
        let over = sigma - self.threshold;
        if over >= 4.0 {
            Severity::Critical
        } else if over >= 2.0 {
            Severity::High
        } else if over >= 1.0 {
            Severity::Medium
        } else {
            Severity::Low
        }
    }
}

/// Score in [0, 1] for a deviation of `sigma`.
pub fn score(sigma: f64) -> f64 {
    1.0 - (-sigma / 5.0).exp()
}

/// One metric's learned state: 40 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricBaseline {
    mean: f64,
    var: f64,
    anchor_mean: f64,
    anchor_var: f64,
    n: u32,
    anomalous_run: u32,
}

/// What judging one value found.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Deviation {
    pub value: f64,
    pub mean: f64,
    pub std: f64,
    pub sigma: f64,
    /// Which baseline gave the larger σ: the slow anchor (a drift) or the fast one.
    pub against_anchor: bool,
}

impl Default for MetricBaseline {
    fn default() -> Self {
        Self::new()
    }
}

impl MetricBaseline {
    pub const fn new() -> Self {
        Self {
            mean: 0.0,
            var: 0.0,
            anchor_mean: 0.0,
            anchor_var: 0.0,
            n: 0,
            anomalous_run: 0,
        }
    }

    pub fn mean(&self) -> f64 {
        self.mean
    }
    pub fn std(&self) -> f64 {
        self.var.max(0.0).sqrt()
    }
    pub fn n(&self) -> u32 {
        self.n
    }
    pub fn is_warm(&self, cfg: &BaselineConfig) -> bool {
        self.n >= cfg.warmup
    }

    /// Observes `x`: returns the deviation when it is anomalous, and learns it otherwise.
    pub fn observe(&mut self, x: f64, cfg: &BaselineConfig) -> Option<Deviation> {
        let anchor_alpha = cfg.alpha / cfg.anchor_slowdown;
        self.judge(x, cfg, cfg.threshold, (cfg.alpha, anchor_alpha))
    }

    /// [`MetricBaseline::observe`] while the entity re-converges after a heal (module docs):
    /// values within `reconverge_band` σ are learned, fast.
    pub fn observe_reconverging(&mut self, x: f64, cfg: &BaselineConfig) -> Option<Deviation> {
        let alpha = cfg.reconverge_alpha;
        self.judge(
            x,
            cfg,
            cfg.reconverge_band.max(cfg.threshold),
            (alpha, alpha),
        )
    }

    /// Reports `x` at `limit` σ or more against either baseline; learns it otherwise, with
    /// the EWMA weights `(fast, anchor)`.
    fn judge(
        &mut self,
        x: f64,
        cfg: &BaselineConfig,
        limit: f64,
        alphas: (f64, f64),
    ) -> Option<Deviation> {
        // Beyond ±1e150 squares overflow to ∞ and a single value would blind the baseline
        // for good; such a value is not a measurement.
        if !x.is_finite() || x.abs() > 1e150 {
            return None;
        }
        if self.n < cfg.warmup {
            self.learn_warmup(x, cfg);
            return None;
        }
        let fast = deviation(x, self.mean, self.var, cfg);
        let anchor = deviation(x, self.anchor_mean, self.anchor_var, cfg);
        // Report against the recent baseline when it alone is enough; the anchor speaks only
        // when the recent baseline has drifted along with a slow ramp.
        let (worst, against_anchor) = if fast.sigma < limit && anchor.sigma > fast.sigma {
            (anchor, true)
        } else {
            (fast, false)
        };
        if worst.sigma >= limit {
            self.anomalous_run += 1;
            if self.anomalous_run >= cfg.relearn_after {
                *self = Self::new();
            }
            return Some(Deviation {
                against_anchor,
                ..worst
            });
        }
        self.anomalous_run = 0;
        self.learn(x, alphas);
        None
    }

    fn learn_warmup(&mut self, x: f64, cfg: &BaselineConfig) {
        // Welford: exact mean and population variance over the warm-up samples.
        self.n += 1;
        let d = x - self.mean;
        self.mean += d / f64::from(self.n);
        let m2 = self.var * f64::from(self.n - 1) + d * (x - self.mean);
        self.var = m2 / f64::from(self.n);
        if self.n == cfg.warmup {
            self.anchor_mean = self.mean;
            self.anchor_var = self.var;
        }
        self.reset_if_overflowed();
    }

    fn learn(&mut self, x: f64, (alpha, anchor_alpha): (f64, f64)) {
        self.n = self.n.saturating_add(1);
        ewma(&mut self.mean, &mut self.var, x, alpha);
        ewma(&mut self.anchor_mean, &mut self.anchor_var, x, anchor_alpha);
        self.reset_if_overflowed();
    }

    /// A variance that overflowed would make every σ zero: start over instead.
    fn reset_if_overflowed(&mut self) {
        if !(self.var.is_finite() && self.anchor_var.is_finite() && self.mean.is_finite()) {
            *self = Self::new();
        }
    }
}

fn ewma(mean: &mut f64, var: &mut f64, x: f64, alpha: f64) {
    let d = x - *mean;
    let incr = alpha * d;
    *mean += incr;
    *var = (1.0 - alpha) * (*var + d * incr);
}

fn deviation(x: f64, mean: f64, var: f64, cfg: &BaselineConfig) -> Deviation {
    let std = var.max(0.0).sqrt();
    let floor = std.max(cfg.rel_std_floor * mean.abs()).max(1e-9);
    Deviation {
        value: x,
        mean,
        std,
        sigma: (x - mean).abs() / floor,
        against_anchor: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic wobble of ±5 % around `base` (no RNG needed).
    fn noisy(base: f64, i: u32) -> f64 {
        base * (1.0 + 0.05 * ((f64::from(i) * 1.7).sin()))
    }

    fn learned(cfg: &BaselineConfig, base: f64, samples: u32) -> MetricBaseline {
        let mut b = MetricBaseline::new();
        for i in 0..samples {
            assert_eq!(
                b.observe(noisy(base, i), cfg),
                None,
                "sample {i} of normal noise flagged"
            );
        }
        b
    }

    #[test]
    fn warmup_never_flags_and_learns_exact_mean() {
        let cfg = BaselineConfig::default();
        let mut b = MetricBaseline::new();
        for x in [10.0, 1000.0, 10.0, 1000.0] {
            assert!(b.observe(x, &cfg).is_none());
        }
        assert_eq!(b.mean(), 505.0);
        assert!(!b.is_warm(&cfg));
    }

    #[test]
    fn spike_is_flagged_with_rising_severity() {
        let cfg = BaselineConfig::default();
        let mut b = learned(&cfg, 1000.0, 100);
        let std = b.std();
        let d = b
            .observe(b.mean() + 10.0 * std.max(50.0), &cfg)
            .expect("10σ spike");
        assert!(d.sigma >= 9.0, "{d:?}");
        assert_eq!(cfg.severity(d.sigma), Severity::Critical);
        assert_eq!(cfg.severity(3.2), Severity::Low);
        assert_eq!(cfg.severity(4.5), Severity::Medium);
        assert_eq!(cfg.severity(5.0), Severity::High);
    }

    #[test]
    fn anomalies_are_not_learned() {
        let cfg = BaselineConfig::default();
        let mut b = learned(&cfg, 100.0, 50);
        let before = b;
        for _ in 0..10 {
            assert!(b.observe(10_000.0, &cfg).is_some());
        }
        assert_eq!(b.mean(), before.mean());
        assert_eq!(b.std(), before.std());
    }

    /// Poisoning resistance: a +2 % per event ramp from a learned baseline must be flagged
    /// before the value reaches 3× the learned mean.
    #[test]
    fn slow_ramp_is_flagged_before_three_times_the_mean() {
        let cfg = BaselineConfig::default();
        let mut b = learned(&cfg, 1000.0, 200);
        let learned_mean = b.mean();
        let mut x = learned_mean;
        let mut flagged_at = None;
        while x < 3.0 * learned_mean {
            x *= 1.02;
            if b.observe(x, &cfg).is_some() {
                flagged_at = Some(x);
                break;
            }
        }
        let at = flagged_at.expect("ramp never flagged");
        assert!(
            at < 1.5 * learned_mean,
            "flagged only at {:.2}× the mean",
            at / learned_mean
        );
    }

    #[test]
    fn sustained_shift_is_relearned_after_being_reported() {
        let cfg = BaselineConfig::default();
        let mut b = learned(&cfg, 100.0, 50);
        let mut flagged = 0;
        for i in 0..200 {
            if b.observe(noisy(500.0, i), &cfg).is_some() {
                flagged += 1;
            }
        }
        assert_eq!(flagged, cfg.relearn_after);
        assert!(
            (b.mean() - 500.0).abs() < 30.0,
            "relearned mean {}",
            b.mean()
        );
    }

    /// After a heal, a legitimate new level (+50 %) is absorbed within a few samples, where
    /// the steady rule reports every sample until `relearn_after`; a spike far beyond the new
    /// level is still reported, and not learned, while re-converging.
    #[test]
    fn reconvergence_absorbs_a_level_shift_but_not_an_attack() {
        let cfg = BaselineConfig::default();
        let shift = |b: &mut MetricBaseline, reconverging: bool| -> Vec<u32> {
            (0..100)
                .filter(|&i| {
                    let x = noisy(1500.0, i);
                    let d = if reconverging {
                        b.observe_reconverging(x, &cfg)
                    } else {
                        b.observe(x, &cfg)
                    };
                    d.is_some()
                })
                .collect()
        };
        let mut steady = learned(&cfg, 1000.0, 100);
        let flagged = shift(&mut steady, false);
        assert_eq!(flagged, (0..cfg.relearn_after).collect::<Vec<_>>());

        let mut healed = learned(&cfg, 1000.0, 100);
        let flagged = shift(&mut healed, true);
        assert!(flagged.is_empty(), "flagged samples {flagged:?}");
        assert!((healed.mean() - 1500.0).abs() < 50.0, "{}", healed.mean());

        let before = healed;
        let d = healed
            .observe_reconverging(50_000.0, &cfg)
            .expect("an attack is reported while re-converging");
        assert!(d.sigma >= cfg.reconverge_band, "{d:?}");
        assert_eq!(healed.mean(), before.mean(), "and not learned");
        // The window over, the new level holds under the steady rule, anchor included.
        for i in 0..200 {
            assert_eq!(healed.observe(noisy(1500.0, i), &cfg), None, "sample {i}");
        }
    }

    #[test]
    fn reconvergence_settings_are_checked() {
        let bad = |f: fn(&mut BaselineConfig)| {
            let mut cfg = BaselineConfig::default();
            f(&mut cfg);
            cfg.validate().unwrap_err()
        };
        assert!(bad(|c| c.reconverge_ms = -1).contains("reconverge_ms"));
        assert!(bad(|c| c.reconverge_alpha = 1.0).contains("reconverge_alpha"));
        assert!(bad(|c| c.reconverge_band = 2.0).contains("reconverge_band"));
        assert!(BaselineConfig::default().validate().is_ok());
    }

    #[test]
    fn constant_metric_uses_relative_floor() {
        let cfg = BaselineConfig::default();
        let mut b = MetricBaseline::new();
        for _ in 0..20 {
            assert!(b.observe(3.0, &cfg).is_none());
        }
        // 3 → 4 tool calls is 6.7σ against a 5 % floor: high, not infinite.
        let d = b.observe(4.0, &cfg).unwrap();
        assert!((d.sigma - 6.67).abs() < 0.01, "{d:?}");
    }

    #[test]
    fn non_finite_values_are_ignored() {
        let cfg = BaselineConfig::default();
        let mut b = learned(&cfg, 10.0, 20);
        assert!(b.observe(f64::NAN, &cfg).is_none());
        assert!(b.mean().is_finite());
    }

    #[test]
    fn baseline_is_small() {
        assert!(std::mem::size_of::<MetricBaseline>() <= 40);
    }

    #[test]
    fn huge_values_cannot_blind_a_baseline() {
        let cfg = BaselineConfig::default();
        let mut b = MetricBaseline::new();
        assert!(b.observe(1e300, &cfg).is_none());
        for x in [1e149, -1e149, 1e149] {
            b.observe(x, &cfg);
        }
        let mut b = learned(&cfg, 100.0, 30);
        assert!(b.observe(1e300, &cfg).is_none(), "ignored, not learned");
        assert!(b.observe(10_000.0, &cfg).is_some(), "still sees spikes");
        assert!(b.std().is_finite());
    }
}
