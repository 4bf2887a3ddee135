//! `antibody sim`: train a response policy in the simulator and evaluate it against the
//! static ladders (see the `antibody-sim` crate).

use antibody_sim::eval::{self, Report};
use antibody_sim::learned::Setup;
use antibody_sim::{Policy, Scenario};
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use std::io::{BufWriter, Write};
use std::path::PathBuf;

#[derive(Args)]
pub struct SimArgs {
    #[command(subcommand)]
    cmd: SimCmd,
}

#[derive(Subcommand)]
enum SimCmd {
    /// Train a policy over seeded episodes of every scenario and write the policy file.
    Train {
        /// Episodes per scenario.
        #[arg(long, default_value_t = 1000)]
        episodes: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long)]
        out: PathBuf,
    },
    /// Static ladders versus the learned policy over seeded episodes, per scenario.
    Eval {
        /// Episodes per scenario.
        #[arg(long, default_value_t = 1000)]
        episodes: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Only this scenario.
        #[arg(long)]
        scenario: Option<String>,
        /// A policy file from `sim train`; without one a fresh policy is trained on seeds
        /// disjoint from the evaluation seeds.
        #[arg(long)]
        policy: Option<PathBuf>,
        /// Print one JSON object instead of the table.
        #[arg(long)]
        json: bool,
        /// Write every step of every episode (both arms) as JSON lines here.
        #[arg(long)]
        log: Option<PathBuf>,
    },
}

fn scenarios(name: Option<&str>) -> Result<Vec<Scenario>> {
    match name {
        None => Ok(Scenario::ALL.to_vec()),
        Some(n) => match Scenario::parse(n) {
            Some(s) => Ok(vec![s]),
            None => {
                let known: Vec<_> = Scenario::ALL.iter().map(|s| s.as_str()).collect();
                bail!("unknown scenario `{n}`; known: {}", known.join(", "))
            }
        },
    }
}

pub fn run(args: SimArgs) -> Result<()> {
    let setup = Setup::new().map_err(|e| anyhow::anyhow!("simulator playbooks: {e}"))?;
    match args.cmd {
        SimCmd::Train {
            episodes,
            seed,
            out,
        } => {
            let p = eval::train(&setup, episodes, seed, &Scenario::ALL);
            std::fs::write(&out, p.to_json()?)
                .with_context(|| format!("writing {}", out.display()))?;
            eprintln!(
                "sim: policy `{}` ({} entries) written to {}",
                p.id,
                p.len(),
                out.display()
            );
            Ok(())
        }
        SimCmd::Eval {
            episodes,
            seed,
            scenario,
            policy,
            json,
            log,
        } => {
            let which = scenarios(scenario.as_deref())?;
            let p = match policy {
                Some(path) => {
                    let text = std::fs::read_to_string(&path)
                        .with_context(|| format!("reading {}", path.display()))?;
                    Policy::from_json(&text).with_context(|| format!("{}", path.display()))?
                }
                None => eval::train(&setup, episodes, seed, &Scenario::ALL),
            };
            let report = evaluate(&setup, &p, episodes, seed, &which, log)?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                print!("{}", eval::table(&report));
            }
            Ok(())
        }
    }
}

fn evaluate(
    setup: &Setup,
    p: &Policy,
    episodes: u64,
    seed: u64,
    which: &[Scenario],
    log: Option<PathBuf>,
) -> Result<Report> {
    let Some(path) = log else {
        return Ok(eval::evaluate(setup, p, episodes, seed, which, None));
    };
    let file =
        std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    let mut w = BufWriter::new(file);
    let mut err = None;
    let mut sink = |v: &serde_json::Value| {
        if err.is_none() {
            if let Err(e) = serde_json::to_writer(&mut w, v)
                .map_err(std::io::Error::from)
                .and_then(|()| w.write_all(b"\n"))
            {
                err = Some(e);
            }
        }
    };
    let report = eval::evaluate(setup, p, episodes, seed, which, Some(&mut sink));
    if let Some(e) = err {
        return Err(e).with_context(|| format!("writing {}", path.display()));
    }
    w.flush()?;
    Ok(report)
}
