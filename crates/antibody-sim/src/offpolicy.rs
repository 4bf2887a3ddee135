//! The check before a promote: a candidate policy's value estimated on decisions another
//! policy made (with known propensities), by inverse propensity scoring and doubly robust
//! estimation, and its agreement with what was done (the shadow view: choose, record, do
//! not act).
//!
//! Returns of decisions in one episode are correlated; the intervals treat decisions as
//! independent, so read them as a lower bound on the uncertainty.

use crate::eval::Interval;
use crate::policy::{Arm, Context, Policy, MIN_VISITS};
use serde::Serialize;
use std::collections::BTreeMap;

/// One recorded decision.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Logged {
    pub context: Context,
    /// The arms that were permitted, in the order offered.
    pub options: Vec<Arm>,
    pub taken: Arm,
    /// The probability the logging policy gave `taken`.
    pub propensity: f64,
    /// Minus the cost from the decision to the end of its episode.
    pub ret: f64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Estimate {
    pub decisions: usize,
    /// The logging policy's own value per decision (the mean observed return).
    pub logged: Interval,
    pub ips: Interval,
    pub doubly_robust: Interval,
    /// Share of decisions where the candidate picks what was done.
    pub agreement: f64,
}

/// Estimates `candidate`'s value per decision on `logged`.
pub fn estimate(candidate: &Policy, logged: &[Logged]) -> Estimate {
    // The reward model of the doubly robust estimator: the candidate's own estimates where it
    // has them, else the mean logged return of that arm in that context.
    let mut seen: BTreeMap<(Context, Arm), (f64, u32)> = BTreeMap::new();
    for l in logged {
        let e = seen.entry((l.context, l.taken)).or_default();
        e.0 += l.ret;
        e.1 += 1;
    }
    let q = |ctx: &Context, arm: Arm| {
        let s = candidate.stat(ctx, arm);
        if s.n >= MIN_VISITS {
            return s.value;
        }
        seen.get(&(*ctx, arm))
            .map_or(0.0, |(sum, n)| sum / f64::from(*n))
    };
    let (mut ips, mut dr, mut rets) = (Vec::new(), Vec::new(), Vec::new());
    let mut agree = 0usize;
    for l in logged {
        let (i, _) = candidate.pick(&l.context, &l.options);
        let pick = l.options.get(i).copied().unwrap_or(Arm::Wait);
        let hit = pick == l.taken;
        agree += usize::from(hit);
        let w = if hit {
            1.0 / l.propensity.max(1e-6)
        } else {
            0.0
        };
        ips.push(w * l.ret);
        dr.push(q(&l.context, pick) + w * (l.ret - q(&l.context, l.taken)));
        rets.push(l.ret);
    }
    Estimate {
        decisions: logged.len(),
        logged: Interval::of(&rets),
        ips: Interval::of(&ips),
        doubly_robust: Interval::of(&dr),
        agreement: if logged.is_empty() {
            0.0
        } else {
            agree as f64 / logged.len() as f64
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::permit::Aim;
    use antibody_respond::{ActionKind, Cause};

    fn ctx() -> Context {
        Context {
            cause: Cause::ToolLoop,
            confident: true,
            sigma: 2,
            share: 1,
            critical: false,
            attempts: 0,
            failed: false,
            waited: 0,
        }
    }

    #[test]
    fn a_candidate_that_agrees_with_a_uniform_logger_is_weighted_up() {
        let act = Arm::Act(ActionKind::RevokeTools, Aim::Entity);
        let options = vec![Arm::Wait, act];
        // A uniform logger: half wait (return -10), half act (return -2).
        let logged: Vec<Logged> = (0..100)
            .map(|i| {
                let taken = if i % 2 == 0 { Arm::Wait } else { act };
                Logged {
                    context: ctx(),
                    options: options.clone(),
                    taken,
                    propensity: 0.5,
                    ret: if taken == Arm::Wait { -10.0 } else { -2.0 },
                }
            })
            .collect();
        let mut p = Policy::new("c");
        for _ in 0..3 {
            p.update(ctx(), act, -2.0);
            p.update(ctx(), Arm::Wait, -10.0);
        }
        let e = estimate(&p, &logged);
        assert_eq!(e.agreement, 0.5);
        assert!((e.ips.mean + 2.0).abs() < 1e-9, "{e:?}");
        assert!((e.doubly_robust.mean + 2.0).abs() < 1e-9, "{e:?}");
        assert!((e.logged.mean + 6.0).abs() < 1e-9);
    }
}
