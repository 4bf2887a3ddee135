//! PSI of generated live traffic against references fitted on the shared Optikal file: why the
//! model's reference is fitted on benign rows, and what a real shift looks like.
//!
//! `cargo run --release -p antibody-ml --example drift [-- DATA.csv]`

mod shared;

use antibody_ml::drift::{DriftReference, DriftWindow};
use antibody_ml::features::AgentBehavior;
use antibody_ml::gen::{generate, GenConfig};

const WINDOW: usize = 4096;

/// Features of `rows` generated rows, keeping those `keep` accepts.
fn live(seed: u64, noise: bool, keep: impl Fn(bool) -> bool) -> Vec<f32> {
    let agent = AgentBehavior::default();
    let rows = generate(&GenConfig {
        rows: 3 * WINDOW,
        seed,
        noise,
        ..GenConfig::default()
    });
    let mut x = Vec::new();
    for r in rows.iter().filter(|r| keep(r.is_threat())).take(WINDOW) {
        let mut f = [0f32; 18];
        agent.extract_raw(&r.raw, &mut f);
        x.extend_from_slice(&f);
    }
    x
}

fn report(name: &str, reference: &DriftReference, x: &[f32]) {
    let mut w = DriftWindow::new(reference, WINDOW);
    for row in x.chunks_exact(18) {
        w.observe(row);
    }
    let psi = w.psi();
    let over = psi.iter().filter(|&&p| p >= 0.2).count();
    let (f, max) = w.max_psi();
    println!(
        "{name:<52} max {max:>6.3} ({:<22}) features ≥ 0.2: {over:>2}",
        reference.features[f].name
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let shared::AgentData { ds, set, .. } = shared::agent_behavior()?;
    let names = set.feature_names();
    let benign: Vec<usize> = (0..ds.n_rows()).filter(|&i| ds.y[i] == 0).collect();
    let all = DriftReference::fit(&ds.x, 18, &names);
    let normal = DriftReference::fit(&ds.subset(&benign).x, 18, &names);
    println!(
        "references: all {} rows / benign {} rows; windows of {WINDOW} generated rows",
        all.rows, normal.rows
    );
    let benign_live = live(7, false, |t| !t);
    let mixed_live = live(7, false, |_| true);
    let noisy_live = live(9, true, |t| !t);
    let attacks = live(7, false, |t| t);
    report("benign traffic vs benign reference", &normal, &benign_live);
    report("benign traffic vs all-rows reference", &all, &benign_live);
    report("training mix vs all-rows reference", &all, &mixed_live);
    report(
        "benign traffic with --noise vs benign reference",
        &normal,
        &noisy_live,
    );
    report("attacks only vs benign reference", &normal, &attacks);
    Ok(())
}
