//! Training and evaluation over seeded episodes. Evaluation seeds are even and training
//! seeds odd, so a policy trained here never sees an episode it is evaluated on.

use crate::learned::{self, Run, Setup};
use crate::policy::{Policy, Trained};
use crate::scenario::Scenario;
use crate::{ladder, Outcome};
use antibody_core::rng::SplitMix64;
use serde::Serialize;
use std::collections::BTreeMap;

/// Exploration at the start and the end of training (ε-greedy, linear in between).
const EPS_START: f64 = 0.3;
const EPS_END: f64 = 0.05;

fn mix(seed: u64, i: u64) -> u64 {
    SplitMix64::new(seed ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15)).next_u64()
}

/// The seed of evaluation episode `i` (even).
pub fn eval_seed(seed: u64, i: u64) -> u64 {
    mix(seed, i) << 1
}

/// The seed of training episode `i` (odd).
pub fn train_seed(seed: u64, i: u64) -> u64 {
    (mix(seed, i) << 1) | 1
}

/// Trains a fresh policy over `episodes` per scenario, scenarios interleaved.
pub fn train(setup: &Setup, episodes: u64, seed: u64, scenarios: &[Scenario]) -> Policy {
    let mut policy = Policy::new(format!("sim-s{seed}-n{episodes}"));
    policy.trained = Trained { episodes, seed };
    let mut rng = SplitMix64::new(seed ^ 0xe9);
    for i in 0..episodes {
        let eps = EPS_START + (EPS_END - EPS_START) * i as f64 / episodes.max(1) as f64;
        for &s in scenarios {
            let run = learned::episode(
                setup,
                s,
                train_seed(seed, i),
                &policy,
                Some((eps, &mut rng)),
                false,
            );
            run.credit(&mut policy);
        }
    }
    policy
}

/// Records `episodes` per scenario of `behaviour` acting ε-greedily (the live policy with
/// its exploration), then estimates `candidate` on those decisions.
pub fn offpolicy(
    setup: &Setup,
    behaviour: &Policy,
    candidate: &Policy,
    episodes: u64,
    seed: u64,
    epsilon: f64,
    scenarios: &[Scenario],
) -> crate::offpolicy::Estimate {
    let mut rng = SplitMix64::new(seed ^ 0x0ff);
    let mut logged = Vec::new();
    for i in 0..episodes {
        for &s in scenarios {
            let run = learned::episode(
                setup,
                s,
                eval_seed(seed, i),
                behaviour,
                Some((epsilon, &mut rng)),
                false,
            );
            logged.extend(run.logged());
        }
    }
    crate::offpolicy::estimate(candidate, &logged)
}

/// A mean with its 95 % confidence half-width.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Interval {
    pub mean: f64,
    pub ci95: f64,
}

impl Interval {
    pub fn of(xs: &[f64]) -> Self {
        let n = xs.len() as f64;
        if xs.is_empty() {
            return Self::default();
        }
        let mean = xs.iter().sum::<f64>() / n;
        let var = if xs.len() > 1 {
            xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
        } else {
            0.0
        };
        let r = |x: f64| (x * 1000.0).round() / 1000.0;
        Self {
            mean: r(mean),
            ci95: r(1.96 * (var / n).sqrt()),
        }
    }
}

/// An episode's outcome with its count of unsafe actions.
type Scored = (Outcome, u32);

/// The metrics of one arm (the issue's `M`).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Metrics {
    pub mttr_s: Interval,
    pub collateral: Interval,
    #[serde(rename = "unsafe")]
    pub unsafe_actions: u64,
    pub approvals: Interval,
    pub damage: Interval,
}

impl Metrics {
    fn of(runs: &[Scored]) -> Self {
        let f = |g: fn(&Outcome) -> f64| {
            Interval::of(&runs.iter().map(|(o, _)| g(o)).collect::<Vec<_>>())
        };
        Self {
            mttr_s: f(|o| o.mttr_s),
            collateral: f(|o| f64::from(o.collateral)),
            unsafe_actions: runs.iter().map(|(_, u)| u64::from(*u)).sum(),
            approvals: f(|o| f64::from(o.approvals)),
            damage: f(|o| o.damage),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Pair {
    #[serde(rename = "static")]
    pub static_: Metrics,
    pub learned: Metrics,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Report {
    pub episodes: u64,
    pub scenarios: BTreeMap<String, Pair>,
    pub overall: Pair,
}

/// Runs `episodes` seeded episodes per scenario with both arms; `log` receives each step's
/// JSON line when given.
pub fn evaluate(
    setup: &Setup,
    policy: &Policy,
    episodes: u64,
    seed: u64,
    scenarios: &[Scenario],
    mut log: Option<&mut dyn FnMut(&serde_json::Value)>,
) -> Report {
    let mut all: (Vec<Scored>, Vec<Scored>) = (Vec::new(), Vec::new());
    let mut report = Report {
        episodes,
        ..Report::default()
    };
    for &s in scenarios {
        let (mut st, mut le) = (Vec::new(), Vec::new());
        for i in 0..episodes {
            let es = eval_seed(seed, i);
            let want = log.is_some();
            let a = ladder::episode(setup, s, es, want);
            let b = learned::episode(setup, s, es, policy, None, want);
            if let Some(w) = log.as_mut() {
                a.log.iter().chain(&b.log).for_each(&mut **w);
            }
            let take = |r: Run| (r.outcome, r.unsafe_actions);
            st.push(take(a));
            le.push(take(b));
        }
        report.scenarios.insert(
            s.as_str().to_owned(),
            Pair {
                static_: Metrics::of(&st),
                learned: Metrics::of(&le),
            },
        );
        all.0.extend(st);
        all.1.extend(le);
    }
    report.overall = Pair {
        static_: Metrics::of(&all.0),
        learned: Metrics::of(&all.1),
    };
    report
}

/// The report as a fixed-width table.
pub fn table(r: &Report) -> String {
    let mut out = format!(
        "{:<18} {:>7} {:>17} {:>17} {:>13} {:>13} {:>15} {:>6}\n",
        "scenario", "arm", "mttr_s", "damage", "collateral", "approvals", "", "unsafe"
    );
    let rows = r
        .scenarios
        .iter()
        .map(|(k, p)| (k.as_str(), p))
        .chain(std::iter::once(("overall", &r.overall)));
    for (name, p) in rows {
        for (arm, m) in [("static", &p.static_), ("learned", &p.learned)] {
            let iv = |i: &Interval| format!("{:.2}±{:.2}", i.mean, i.ci95);
            out.push_str(&format!(
                "{:<18} {:>7} {:>17} {:>17} {:>13} {:>13} {:>15} {:>6}\n",
                name,
                arm,
                iv(&m.mttr_s),
                iv(&m.damage),
                iv(&m.collateral),
                iv(&m.approvals),
                "",
                m.unsafe_actions
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn training_and_evaluation_seeds_never_meet() {
        for i in 0..1000 {
            assert_eq!(eval_seed(7, i) & 1, 0);
            assert_eq!(train_seed(7, i) & 1, 1);
        }
    }

    #[test]
    fn intervals_are_mean_and_normal_half_width() {
        let i = Interval::of(&[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(i.mean, 2.5);
        assert!((i.ci95 - 1.96 * (1.666_666_f64 / 4.0).sqrt()).abs() < 1e-3);
        assert_eq!(Interval::of(&[]), Interval::default());
    }
}
