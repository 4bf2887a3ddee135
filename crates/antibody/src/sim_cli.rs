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
    /// Before a promote: estimate a candidate policy's value on decisions recorded from the
    /// policy in force (IPS and doubly robust), and how often it agrees with them (shadow).
    Offpolicy {
        /// The candidate policy file.
        #[arg(long)]
        policy: PathBuf,
        /// The policy in force whose decisions are recorded; without one, an untrained
        /// policy (the static ladder's first step) is.
        #[arg(long)]
        behaviour: Option<PathBuf>,
        /// Episodes per scenario recorded.
        #[arg(long, default_value_t = 200)]
        episodes: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// The recorded policy's exploration rate (propensities follow from it).
        #[arg(long, default_value_t = 0.1)]
        epsilon: f64,
    },
}

fn read_policy(path: &PathBuf) -> Result<Policy> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Policy::from_json(&text).with_context(|| format!("{}", path.display()))
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
                Some(path) => read_policy(&path)?,
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
        SimCmd::Offpolicy {
            policy,
            behaviour,
            episodes,
            seed,
            epsilon,
        } => {
            if !(epsilon > 0.0 && epsilon <= 1.0) {
                bail!("--epsilon must be in (0, 1], got {epsilon}");
            }
            let candidate = read_policy(&policy)?;
            let live = match behaviour {
                Some(p) => read_policy(&p)?,
                None => Policy::new("ladder"),
            };
            let e = eval::offpolicy(
                &setup,
                &live,
                &candidate,
                episodes,
                seed,
                epsilon,
                &Scenario::ALL,
            );
            println!("{}", serde_json::to_string(&e)?);
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
