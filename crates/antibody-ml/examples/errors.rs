//! The held-out rows of the shared Optikal file that `antibody train` (default config, seed
//! 42) gets wrong, each with its source line: what the errors behind RESULTS.md's seed-42
//! figures are.
//!
//! `cargo run --release -p antibody-ml --example errors [FILE]`

mod shared;

use antibody_ml::model::Score;
use antibody_ml::train::{fit, NoProgress, TrainConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let data = shared::agent_behavior()?;
    let ds = &data.ds;
    let cfg = TrainConfig::default();
    // The split `train` makes: the same fractions and seed.
    let parts = ds.stratified_split(&[1.0 - cfg.test_fraction, cfg.test_fraction], cfg.seed);
    let (train, test) = (ds.subset(&parts[0]), ds.subset(&parts[1]));
    let ensemble = fit(&train, &cfg, &mut NoProgress)?;
    let mut scores = vec![Score::default(); test.n_rows()];
    ensemble.score_batch(&test.x, &mut scores);
    let text = std::fs::read_to_string(&data.path)?;
    let lines: Vec<&str> = text.lines().collect();
    println!("{}", lines.first().copied().unwrap_or_default());
    let mut wrong = 0;
    for (k, &row) in parts[1].iter().enumerate() {
        let p = scores[k].probability;
        if (p >= ensemble.threshold as f32) != (test.y[k] == 1) {
            wrong += 1;
            // `lines` numbers file lines from 1, the header included.
            let line = (ds.lines[row] as usize)
                .checked_sub(1)
                .and_then(|i| lines.get(i))
                .copied()
                .unwrap_or("?");
            println!("{line}   ← p = {p:.3}");
        }
    }
    println!("{wrong} of {} held-out rows wrong", test.n_rows());
    Ok(())
}
