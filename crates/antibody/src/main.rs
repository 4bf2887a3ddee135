//! The `antibody` binary: command-line interface and the composition root.

mod bench;
mod bench_respond;
mod config;
mod gateway;
mod layers_cli;
mod ml;
mod models_cli;
mod replay;
mod respond_replay;

use antibody_core::{Clock, SystemClock, TenantId};
use antibody_store::{Role, Store};
use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::sync::Arc;

/// mimalloc: events are allocated on the HTTP threads and freed on the engine threads, a
/// pattern on which glibc's allocator spent a quarter of the server's CPU (perf, bench load).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "antibody",
    version,
    about = "Self-hosted detection and response for fleets of services and AI agents"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service: HTTP API, durable log, engine (embedded storage, nothing else needed).
    Serve(ServeArgs),
    /// Run detection offline over a file; findings and incidents as NDJSON on stdout.
    Replay(replay::ReplayArgs),
    /// Load-generate NDJSON events against a running server and report throughput and latency.
    Bench(bench::BenchArgs),
    /// Manage tenants directly in a data dir.
    #[command(subcommand)]
    Tenants(TenantsCmd),
    /// Manage API keys directly in a data dir.
    #[command(subcommand)]
    Keys(KeysCmd),
    /// Train a learned detector (isolation forest, boosted trees, fusion) on a labelled CSV.
    Train(ml::TrainArgs),
    /// Score a labelled CSV with a trained model and print its metrics.
    Eval(ml::EvalArgs),
    /// Explain a trained model's verdict on one CSV row, feature by feature.
    Explain(ml::ExplainArgs),
    /// Generate synthetic data (the seven agent-behaviour scenarios) as CSV.
    Gen(ml::GenArgs),
    /// The model registry of a running server: list, upload, promote, roll back, review queue.
    Models(models_cli::ModelsArgs),
    /// The key's tenant's playbooks on a running server: in force, get, put, versions, rollback.
    Playbooks(layers_cli::DocsArgs),
    /// The key's tenant's rules on a running server: in force, get, put, versions, rollback.
    Rules(layers_cli::DocsArgs),
    /// The key's tenant's response policy on a running server: get, put, versions, rollback.
    Policy(layers_cli::PolicyArgs),
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "ANTIBODY_LISTEN")]
    listen: Option<String>,
    /// Where the log, database and snapshots live.
    #[arg(long, env = "ANTIBODY_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Optional TOML configuration file (flags and env vars override it).
    #[arg(long, env = "ANTIBODY_CONFIG")]
    config: Option<PathBuf>,
    /// Engine worker threads (partitions); default one per core.
    #[arg(long, env = "ANTIBODY_WORKERS")]
    workers: Option<usize>,
    /// Also run the built-in fleet simulator: agents, a web server and an SSH host under tenant
    /// `default`, with an attack every 10 seconds (token explosion, SQL injection, SSH brute
    /// force, prompt injection).
    #[arg(
        long,
        env = "ANTIBODY_DEMO",
        num_args = 0..=1,
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    demo: Option<bool>,
    /// Log format: `human` or `json`.
    #[arg(long, env = "ANTIBODY_LOG_FORMAT", value_parser = ["human", "json"])]
    log_format: Option<String>,
    /// The LLM gateway's address (default 127.0.0.1:4000; runs when `[gateway]` names a
    /// provider).
    #[arg(long, env = "ANTIBODY_GATEWAY_LISTEN")]
    gateway_listen: Option<String>,
}

#[derive(Args)]
struct DataDirArg {
    /// The server's data dir.
    #[arg(long, env = "ANTIBODY_DATA_DIR", default_value = "./antibody-data")]
    data_dir: PathBuf,
}

#[derive(Subcommand)]
enum TenantsCmd {
    /// Create a tenant and print its id and first admin key.
    Create {
        /// Tenant name (a–z, 0–9, `-`, `_`).
        name: String,
        #[command(flatten)]
        dir: DataDirArg,
    },
}

#[derive(Subcommand)]
enum KeysCmd {
    /// Create a key and print it (shown once).
    Create {
        /// Tenant id (e.g. `default`).
        #[arg(long, default_value = "default")]
        tenant: String,
        /// ingest | analyst | admin
        #[arg(long, value_parser = ["ingest", "analyst", "admin"])]
        role: String,
        #[command(flatten)]
        dir: DataDirArg,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Replay(args) => replay::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Train(args) => ml::train(args),
        Command::Eval(args) => ml::eval(args),
        Command::Explain(args) => ml::explain(args),
        Command::Gen(args) => ml::gen(args),
        Command::Models(args) => models_cli::run(args),
        Command::Playbooks(args) => layers_cli::run_docs("playbooks", args),
        Command::Rules(args) => layers_cli::run_docs("rules", args),
        Command::Policy(args) => layers_cli::run_policy(args),
        Command::Tenants(TenantsCmd::Create { name, dir }) => {
            let store = open_store(&dir.data_dir)?;
            let now = SystemClock.now_ms();
            let valid = (1..=64).contains(&name.len())
                && name.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                });
            if !valid {
                anyhow::bail!("tenant name must be 1–64 characters of a–z, 0–9, `-` and `_`");
            }
            let (t, k) = store.create_tenant_with_admin(&name, now)?;
            println!(
                "{}",
                serde_json::json!({"id": t.id, "name": t.name, "admin_key": k.secret})
            );
            Ok(())
        }
        Command::Keys(KeysCmd::Create { tenant, role, dir }) => {
            let store = open_store(&dir.data_dir)?;
            let tenant = TenantId::new(&tenant);
            store
                .get_tenant(&tenant)?
                .with_context(|| format!("no tenant `{tenant}` in {}", dir.data_dir.display()))?;
            let role = Role::parse(&role).context("role must be ingest, analyst or admin")?;
            let k = store.create_key(&tenant, role, false, SystemClock.now_ms())?;
            println!(
                "{}",
                serde_json::json!({"id": k.info.id, "key": k.secret, "role": role.as_str(), "tenant": tenant})
            );
            Ok(())
        }
    }
}

fn open_store(data_dir: &std::path::Path) -> Result<Store> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    Store::open(&data_dir.join(antibody_store::DB_FILE))
        .with_context(|| format!("opening the database in {}", data_dir.display()))
}

fn init_tracing(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ANTIBODY_LOG")
        .unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Turns transparent huge pages off for this process. mimalloc asks for them, and the first
/// touch of each one zeroes 2 MiB at once: while a fresh server's tables grew, those faults
/// stalled single engine batches by 5–25 ms (finding-visible p99 on a fresh server 7.5–50 ms
/// with them, 1–2 ms without, and half the RSS; see BENCHMARKS.md). Latency-bound stores
/// such as Redis give the same advice.
fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    {
        let (on, unused): (libc::c_ulong, libc::c_ulong) = (1, 0);
        // SAFETY: PR_SET_THP_DISABLE takes integer arguments only (the kernel reads them as
        // unsigned longs, hence the types) and touches no memory.
        let rc = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, on, unused, unused, unused) };
        if rc != 0 {
            tracing::warn!(error = %std::io::Error::last_os_error(), "could not turn off transparent huge pages; latency may suffer while memory grows");
        }
    }
}

fn serve(args: ServeArgs) -> Result<()> {
    let file = config::FileConfig::load(args.config.as_deref())?;
    let demo_in_file = file.demo;
    let log_format = args
        .log_format
        .clone()
        .or(file.log_format.clone())
        .unwrap_or_else(|| "human".into());
    init_tracing(&log_format);
    disable_transparent_huge_pages();
    let overrides = config::Overrides {
        listen: args.listen,
        data_dir: args.data_dir,
        workers: args.workers,
        admin_key: std::env::var("ANTIBODY_ADMIN_KEY").ok(),
        gateway_listen: args.gateway_listen,
    };
    let mut resolved = config::resolve(file, overrides)?;
    resolved.server.demo = args.demo.or(demo_in_file).unwrap_or(false);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let data_dir = resolved.server.data_dir.clone();
        let server = tokio::task::spawn_blocking(move || antibody_server::Server::open(resolved.server, Arc::new(SystemClock)))
            .await?
            .with_context(|| format!("starting with data dir {}", data_dir.display()))?;
        if let Some(key) = &server.new_admin_key {
            eprintln!("antibody: created tenant `default` and its admin key (shown once, also in {}/admin.key):\n{key}", data_dir.display());
        }
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stopped = move || {
            let mut rx = stop_rx.clone();
            async move {
                let _ = rx.wait_for(|s| *s).await;
            }
        };
        let gateway_task = match resolved.gateway {
            Some(cfg) => Some(start_gateway(cfg, server.state().clone(), stopped()).await?),
            None => None,
        };
        let listener = tokio::net::TcpListener::bind(resolved.listen)
            .await
            .with_context(|| format!("cannot listen on {}; is another server running? pick another with --listen", resolved.listen))?;
        let addr = listener.local_addr()?;
        // A stable line scripts and tests wait for (the port may have been chosen by the OS).
        eprintln!("antibody: listening on {addr}");
        tracing::info!(%addr, data_dir = %data_dir.display(), "antibody is serving");
        tokio::spawn(async move {
            shutdown_signal().await;
            let _ = stop_tx.send(true);
        });
        server.serve(listener, stopped()).await?;
        if let Some(t) = gateway_task {
            t.abort();
        }
        tracing::info!("stopped cleanly");
        Ok(())
    })
}

/// Binds the gateway's listener and serves it on a task until `stop`. Its line comes before
/// the API's `listening on`, which scripts and tests wait for.
async fn start_gateway(
    cfg: antibody_gateway::GatewayConfig,
    state: antibody_server::state::AppState,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<tokio::task::JoinHandle<()>> {
    // After a crash the response stage re-derives from the replayed log what was in force;
    // until it has, the view would wave through an agent quarantined before the crash.
    let settled = state.pipeline.settled();
    tokio::time::timeout(std::time::Duration::from_secs(300), settled)
        .await
        .context("the replayed log took over 5 minutes to reach the response stage")?
        .context("the pipeline stopped before the replayed log reached the response stage")?;
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} for the gateway; pick another with --gateway-listen",
                cfg.listen
            )
        })?;
    let addr = listener.local_addr()?;
    eprintln!("antibody: gateway serving on {addr}");
    tracing::info!(%addr, providers = cfg.providers.len(), "the LLM gateway is serving");
    let gw = antibody_gateway::Gateway::new(
        cfg,
        Arc::new(gateway::ServerBackend(state.clone())),
        Some(state.catalog.rule_book().global().clone()),
    );
    Ok(tokio::spawn(async move {
        if let Err(e) = antibody_gateway::http::serve(gw, listener, stop).await {
            tracing::error!(error = %e, "the gateway listener failed");
        }
    }))
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
