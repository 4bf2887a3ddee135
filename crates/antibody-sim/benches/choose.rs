//! The learned policy's choice in the live path: features → context → best permitted arm,
//! with the explanation built. `cargo bench -p antibody-sim --bench choose`.

use antibody_respond::{ActionKind, Cause};
use antibody_sim::permit::{Aim, Candidate};
use antibody_sim::policy::{Arm, Context, Features, Policy};
use criterion::{black_box, criterion_group, criterion_main, Criterion};

fn bench(c: &mut Criterion) {
    let f = Features {
        cause: Cause::ToolLoop,
        confidence: 0.7,
        sigma: 30.0,
        criticality: 4,
        group_share: 0.25,
        attempts: 1,
        last_failed: false,
        since_detection_s: 40.0,
    };
    let cands: Vec<Candidate> = [
        ActionKind::RevokeTools,
        ActionKind::Notify,
        ActionKind::Quarantine,
        ActionKind::Reset,
    ]
    .into_iter()
    .map(|kind| Candidate {
        kind,
        target: "agent:a1".into(),
        aim: Aim::Entity,
        playbook: "p".into(),
        approval: None,
    })
    .collect();
    // A table of realistic size: every cause × σ band × attempts, all arms seen.
    let mut p = Policy::new("bench");
    for cause in Cause::ALL {
        for sigma in [1.0, 10.0, 30.0] {
            for attempts in 0..3 {
                let ctx = Context::of(&Features {
                    cause,
                    sigma,
                    attempts,
                    ..f
                });
                for (i, arm) in [
                    Arm::Wait,
                    Arm::Ask,
                    Arm::Act(ActionKind::RevokeTools, Aim::Entity),
                    Arm::Act(ActionKind::Quarantine, Aim::Entity),
                ]
                .into_iter()
                .enumerate()
                {
                    for _ in 0..5 {
                        p.update(ctx, arm, -(i as f64));
                    }
                }
            }
        }
    }
    c.bench_function("policy_choose", |b| {
        b.iter(|| black_box(p.choose(black_box(&f), black_box(&cands), true)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
