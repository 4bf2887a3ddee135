//! The learned response policy: tabular Monte-Carlo Q over a small, readable context.
//!
//! * Context ([`Context`]): the leading diagnosis and whether its confidence is ≥ 0.5, σ in
//!   three bands (< 5, 5–20, ≥ 20), the share of the entity's group with an open incident
//!   (alone, some, half or more), criticality ≥ 4, attempts so far (0, 1, 2+), whether the
//!   last one failed, and time since detection (< 1 min, < 3 min, later).
//! * Arms ([`Arm`]): wait, ask a human, or an action kind with how its target relates to the
//!   incident (its entity, an address seen in it, other).
//! * Value: the mean cost-to-go (negated) observed after taking the arm in the context, over
//!   training episodes. The policy picks the best arm among the *permitted* ones; an arm seen
//!   fewer than [`MIN_VISITS`] times has no estimate, and when no permitted arm has one the
//!   policy does what the static ladder would (its first permitted step).
//!
//! File format (JSON): `{"format":"antibody-policy","version":1,"policy":"<id>",
//! "trained":{"episodes":N,"seed":S},"rows":[{"context":{..},"arm":"..","n":N,"value":V}]}`.

use crate::permit::{Aim, Candidate};
use antibody_respond::{ActionKind, Cause};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const FORMAT: &str = "antibody-policy";
pub const VERSION: u32 = 1;
/// Visits before an arm's value is trusted.
pub const MIN_VISITS: u32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("policy file is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("not a policy file: format `{0}`, expected `{FORMAT}`")]
    Format(String),
    #[error("policy file version {0} is not supported (this build reads {VERSION})")]
    Version(u32),
}

/// The raw features of a decision, as shown in its `why`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Features {
    pub cause: Cause,
    pub confidence: f64,
    pub sigma: f64,
    pub criticality: u8,
    pub group_share: f64,
    pub attempts: u32,
    pub last_failed: bool,
    pub since_detection_s: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Context {
    pub cause: Cause,
    pub confident: bool,
    pub sigma: u8,
    pub share: u8,
    pub critical: bool,
    pub attempts: u8,
    pub failed: bool,
    pub waited: u8,
}

impl Context {
    pub fn of(f: &Features) -> Self {
        let band = |x: f64, a: f64, b: f64| u8::from(x >= a) + u8::from(x >= b);
        Self {
            cause: f.cause,
            confident: f.confidence >= 0.5,
            sigma: band(f.sigma, 5.0, 20.0),
            share: if f.group_share <= 0.0 {
                0
            } else {
                1 + u8::from(f.group_share >= 0.5)
            },
            critical: f.criticality >= 4,
            attempts: f.attempts.min(2) as u8,
            failed: f.last_failed,
            waited: band(f.since_detection_s, 60.0, 180.0),
        }
    }
}

/// What the policy can pick.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Arm {
    Wait,
    Ask,
    Act(ActionKind, Aim),
}

impl Arm {
    pub fn of(c: &Candidate) -> Self {
        Arm::Act(c.kind, c.aim)
    }
    pub fn name(&self) -> String {
        match self {
            Arm::Wait => "wait".into(),
            Arm::Ask => "ask_human".into(),
            Arm::Act(k, a) => format!("{k}@{}", aim_str(*a)),
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "wait" => Some(Arm::Wait),
            "ask_human" => Some(Arm::Ask),
            _ => {
                let (k, a) = s.split_once('@')?;
                let aim = [Aim::Entity, Aim::Address, Aim::Other]
                    .into_iter()
                    .find(|x| aim_str(*x) == a)?;
                Some(Arm::Act(ActionKind::parse(k)?, aim))
            }
        }
    }
}

fn aim_str(a: Aim) -> &'static str {
    match a {
        Aim::Entity => "entity",
        Aim::Address => "address",
        Aim::Other => "other",
    }
}

impl Serialize for Arm {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.name())
    }
}

impl<'de> Deserialize<'de> for Arm {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Arm::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("unknown arm `{s}`")))
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stat {
    pub n: u32,
    /// Mean of minus the cost-to-go.
    pub value: f64,
}

#[derive(Serialize, Deserialize)]
struct Row {
    context: Context,
    arm: Arm,
    n: u32,
    value: f64,
}

#[derive(Serialize, Deserialize)]
struct File {
    format: String,
    version: u32,
    policy: String,
    trained: Trained,
    rows: Vec<Row>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Trained {
    pub episodes: u64,
    pub seed: u64,
}

/// One alternative as the `why` shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Alternative {
    pub arm: Arm,
    pub target: Option<String>,
    pub value: Option<f64>,
    pub n: u32,
}

/// Why the policy chose what it chose.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Why {
    pub policy: String,
    pub features: Features,
    pub context: Context,
    pub alternatives: Vec<Alternative>,
    /// Index into `alternatives`.
    pub chosen: usize,
    /// No permitted arm had an estimate: the ladder's first step (or wait) was taken.
    pub fallback: bool,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Policy {
    pub id: String,
    pub trained: Trained,
    table: BTreeMap<(Context, Arm), Stat>,
}

/// What the policy may pick from: wait, ask (when `ask` — nobody was asked yet), and each
/// permitted candidate.
pub fn options(cands: &[Candidate], ask: bool) -> Vec<(Arm, Option<&Candidate>)> {
    let mut v: Vec<(Arm, Option<&Candidate>)> = vec![(Arm::Wait, None)];
    if ask {
        v.push((Arm::Ask, None));
    }
    for c in cands {
        let arm = Arm::of(c);
        if !v.iter().any(|(a, _)| *a == arm) {
            v.push((arm, Some(c)));
        }
    }
    v
}

impl Policy {
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            ..Self::default()
        }
    }

    pub fn stat(&self, ctx: &Context, arm: Arm) -> Stat {
        self.table.get(&(*ctx, arm)).copied().unwrap_or_default()
    }

    /// Adds one observed return.
    pub fn update(&mut self, ctx: Context, arm: Arm, ret: f64) {
        let s = self.table.entry((ctx, arm)).or_default();
        s.n = s.n.saturating_add(1);
        s.value += (ret - s.value) / f64::from(s.n);
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Picks among wait, ask and the permitted candidates; returns the index into
    /// [`options`] and the explanation.
    pub fn choose(&self, f: &Features, cands: &[Candidate], ask: bool) -> Why {
        let ctx = Context::of(f);
        let opts = options(cands, ask);
        let alternatives: Vec<Alternative> = opts
            .iter()
            .map(|(arm, c)| {
                let s = self.stat(&ctx, *arm);
                Alternative {
                    arm: *arm,
                    target: c.map(|c| c.target.clone()),
                    value: (s.n >= MIN_VISITS).then_some(s.value),
                    n: s.n,
                }
            })
            .collect();
        let arms: Vec<Arm> = opts.iter().map(|(a, _)| *a).collect();
        let (chosen, fallback) = self.pick(&ctx, &arms);
        Why {
            policy: self.id.clone(),
            features: *f,
            context: ctx,
            alternatives,
            chosen,
            fallback,
        }
    }

    /// The greedy pick among `arms` (wait first, then ask when offered, then actions in
    /// ladder order): the best arm with an estimate, else the first action, else wait.
    /// Returns the index and whether it fell back.
    pub fn pick(&self, ctx: &Context, arms: &[Arm]) -> (usize, bool) {
        let best = arms
            .iter()
            .enumerate()
            .filter_map(|(i, a)| {
                let s = self.stat(ctx, *a);
                (s.n >= MIN_VISITS).then_some((i, s.value))
            })
            .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)));
        match best {
            Some((i, _)) => (i, false),
            None => (
                arms.iter()
                    .position(|a| matches!(a, Arm::Act(..)))
                    .unwrap_or(0),
                true,
            ),
        }
    }

    pub fn to_json(&self) -> Result<String, PolicyError> {
        let rows = self
            .table
            .iter()
            .map(|((context, arm), s)| Row {
                context: *context,
                arm: *arm,
                n: s.n,
                value: s.value,
            })
            .collect();
        let file = File {
            format: FORMAT.into(),
            version: VERSION,
            policy: self.id.clone(),
            trained: self.trained,
            rows,
        };
        Ok(serde_json::to_string_pretty(&file)?)
    }

    pub fn from_json(text: &str) -> Result<Self, PolicyError> {
        let file: File = serde_json::from_str(text)?;
        if file.format != FORMAT {
            return Err(PolicyError::Format(file.format));
        }
        if file.version != VERSION {
            return Err(PolicyError::Version(file.version));
        }
        let table = file
            .rows
            .into_iter()
            .map(|r| {
                (
                    (r.context, r.arm),
                    Stat {
                        n: r.n,
                        value: r.value,
                    },
                )
            })
            .collect();
        Ok(Self {
            id: file.policy,
            trained: file.trained,
            table,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn features() -> Features {
        Features {
            cause: Cause::ToolLoop,
            confidence: 0.7,
            sigma: 30.0,
            criticality: 3,
            group_share: 0.25,
            attempts: 0,
            last_failed: false,
            since_detection_s: 10.0,
        }
    }

    fn cand(kind: ActionKind, approval: bool) -> Candidate {
        Candidate {
            kind,
            target: "agent:a1".into(),
            aim: Aim::Entity,
            playbook: "p".into(),
            approval: approval.then(|| "held".into()),
        }
    }

    #[test]
    fn without_estimates_it_takes_the_ladders_first_step() {
        let p = Policy::new("v1");
        let c = [
            cand(ActionKind::RevokeTools, false),
            cand(ActionKind::Quarantine, true),
        ];
        let why = p.choose(&features(), &c, true);
        assert!(why.fallback);
        assert_eq!(
            why.alternatives[why.chosen].arm,
            Arm::Act(ActionKind::RevokeTools, Aim::Entity)
        );
        assert_eq!(
            p.choose(&features(), &[], true).chosen,
            0,
            "nothing permitted: wait"
        );
    }

    #[test]
    fn it_picks_the_best_permitted_arm_and_explains_every_alternative() {
        let mut p = Policy::new("v2");
        let ctx = Context::of(&features());
        for _ in 0..5 {
            p.update(ctx, Arm::Act(ActionKind::Quarantine, Aim::Entity), -10.0);
            p.update(ctx, Arm::Act(ActionKind::Reset, Aim::Entity), -2.0);
            p.update(ctx, Arm::Wait, -50.0);
        }
        let c = [
            cand(ActionKind::RevokeTools, false),
            cand(ActionKind::Quarantine, true),
        ];
        let why = p.choose(&features(), &c, true);
        // Reset is the best arm overall but not permitted here.
        assert_eq!(
            why.alternatives[why.chosen].arm,
            Arm::Act(ActionKind::Quarantine, Aim::Entity)
        );
        assert_eq!(why.alternatives.len(), 4);
        assert_eq!(why.policy, "v2");
        assert!(!why.fallback);
    }

    #[test]
    fn files_round_trip_and_foreign_files_are_refused() {
        let mut p = Policy::new("sim-1");
        p.update(Context::of(&features()), Arm::Ask, -3.5);
        p.trained = Trained {
            episodes: 9,
            seed: 4,
        };
        let back = Policy::from_json(&p.to_json().unwrap()).unwrap();
        assert_eq!(back, p);
        assert!(matches!(
            Policy::from_json(
                r#"{"format":"x","version":1,"policy":"a","trained":{"episodes":0,"seed":0},"rows":[]}"#
            ),
            Err(PolicyError::Format(_))
        ));
        assert!(Policy::from_json("{").is_err());
    }

    proptest! {
        #[test]
        fn arm_names_round_trip(k in 0usize..11, a in 0usize..3) {
            let arm = Arm::Act(ActionKind::ALL[k], [Aim::Entity, Aim::Address, Aim::Other][a]);
            prop_assert_eq!(Arm::parse(&arm.name()), Some(arm));
        }

        #[test]
        fn parsing_any_text_never_panics(s in ".{0,200}") {
            let _ = Policy::from_json(&s);
            let _ = Arm::parse(&s);
        }
    }
}
