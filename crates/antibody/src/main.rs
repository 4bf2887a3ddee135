//! The `antibody` binary: command-line interface and the composition root.

mod admin_cli;
mod bench;
mod bench_respond;
mod bench_syslog;
mod config;
mod gateway;
mod layers_cli;
mod ml;
mod models_cli;
mod replay;
mod respond_replay;
mod sim_cli;
mod soak;

use antibody_core::SystemClock;
use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use std::io::IsTerminal;
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
    /// Send at a fixed rate for a long time against a running server, sampling its memory,
    /// descriptors, threads and latencies; fails unless they stay flat.
    Soak(soak::SoakArgs),
    /// Manage tenants directly in a data dir no server is using (audited).
    #[command(subcommand)]
    Tenants(TenantsCmd),
    /// Manage API keys directly in a data dir no server is using (audited).
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
    /// The incident-response simulator: train a learned response policy, evaluate it against the static ladders.
    Sim(sim_cli::SimArgs),
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
    /// Serve HTTPS with this PEM certificate chain (reloaded on change or SIGHUP).
    #[arg(long, env = "ANTIBODY_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "ANTIBODY_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// Require client certificates signed by these PEM CA certificates.
    #[arg(long, env = "ANTIBODY_TLS_CLIENT_CA")]
    tls_client_ca: Option<PathBuf>,
    /// Also trust these PEM CA certificates for outbound HTTPS (webhook, notify, investigator).
    #[arg(long, env = "ANTIBODY_TLS_CA_BUNDLE")]
    tls_ca_bundle: Option<PathBuf>,
    /// The LLM gateway's address (default 127.0.0.1:4000; runs when `[gateway]` names a
    /// provider).
    #[arg(long, env = "ANTIBODY_GATEWAY_LISTEN")]
    gateway_listen: Option<String>,
    /// Receive syslog on this address, UDP and TCP (octet-counted or newline-framed; TLS
    /// only with `[syslog.tls]`): sshd, PAM, su… lines become `auth` events of `[syslog] tenant`.
    #[arg(long, env = "ANTIBODY_SYSLOG_LISTEN")]
    syslog_listen: Option<String>,
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
        /// The key stops working after this long: `30d`, `12h`, `90m` (at most a year).
        #[arg(long)]
        expires_in: Option<String>,
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
        Command::Soak(args) => soak::run(args),
        Command::Train(args) => ml::train(args),
        Command::Eval(args) => ml::eval(args),
        Command::Explain(args) => ml::explain(args),
        Command::Gen(args) => ml::gen(args),
        Command::Models(args) => models_cli::run(args),
        Command::Playbooks(args) => layers_cli::run_docs("playbooks", args),
        Command::Rules(args) => layers_cli::run_docs("rules", args),
        Command::Policy(args) => layers_cli::run_policy(args),
        Command::Sim(args) => sim_cli::run(args),
        Command::Tenants(TenantsCmd::Create { name, dir }) => {
            admin_cli::create_tenant(&name, &dir.data_dir)
        }
        Command::Keys(KeysCmd::Create {
            tenant,
            role,
            expires_in,
            dir,
        }) => admin_cli::create_key(&tenant, &role, expires_in.as_deref(), &dir.data_dir),
    }
}

fn init_tracing(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ANTIBODY_LOG")
        .unwrap_or_else(|_| "info".into());
    // Colour only for a person at a terminal: piped or collected logs get plain text.
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
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

/// A write past a file-size limit (`ulimit -f`) raises SIGXFSZ, which kills the process by
/// default; ignored, the write fails with EFBIG instead, and the log refuses the batch and
/// recovers like after a full disk.
fn ignore_file_size_signal() {
    #[cfg(target_os = "linux")]
    // SAFETY: installs SIG_IGN, no handler code runs; done before any thread starts.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
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
    ignore_file_size_signal();
    antibody_server::datadir::restrict_new_files();
    let overrides = config::Overrides {
        listen: args.listen,
        data_dir: args.data_dir,
        workers: args.workers,
        admin_key: std::env::var("ANTIBODY_ADMIN_KEY").ok(),
        tls_cert: args.tls_cert,
        tls_key: args.tls_key,
        tls_client_ca: args.tls_client_ca,
        tls_ca_bundle: args.tls_ca_bundle,
        gateway_listen: args.gateway_listen,
        syslog_listen: args.syslog_listen,
    };
    let mut resolved = config::resolve(file, overrides)?;
    resolved.server.demo = args.demo.or(demo_in_file).unwrap_or(false);
    fit_connections_to_descriptors(&mut resolved.server.net);
    if let Some(g) = &mut resolved.gateway {
        fit_connections_to_descriptors(&mut g.net);
    }
    if let Some(s) = &mut resolved.syslog {
        fit_connections_to_descriptors(&mut s.net);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let data_dir = resolved.server.data_dir.clone();
        let server = tokio::task::spawn_blocking(move || antibody_server::Server::open(resolved.server, Arc::new(SystemClock)))
            .await?
            .map_err(|e| match e {
                // Already names the data dir and the fix: said once.
                antibody_server::ServerError::DataDir(_) => anyhow::Error::new(e),
                e => anyhow::Error::new(e)
                    .context(format!("starting with data dir {}", data_dir.display())),
            })?;
        if let Some(key) = &server.new_admin_key {
            eprintln!("antibody: created tenant `default` and its admin key (shown once, also in {}/admin.key):\n{key}", data_dir.display());
        }
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stopped = {
            let stop_rx = stop_rx.clone();
            move || {
                let mut rx = stop_rx.clone();
                async move {
                    let _ = rx.wait_for(|s| *s).await;
                }
            }
        };
        // Every listener's certificate, for SIGHUP.
        let mut certificates: Vec<_> = server.tls().into_iter().collect();
        let gateway_task = match resolved.gateway {
            Some(gw) => {
                let http = server.http_client().clone();
                let (task, tls) =
                    start_gateway(gw, server.state().clone(), http, stop_rx.clone()).await?;
                certificates.extend(tls);
                Some(task)
            }
            None => None,
        };
        let syslog_task = match resolved.syslog {
            Some(cfg) => {
                let (task, tls) = start_syslog(cfg, server.state().clone(), stop_rx.clone()).await?;
                certificates.extend(tls);
                Some(task)
            }
            None => None,
        };
        let listener = tokio::net::TcpListener::bind(resolved.listen)
            .await
            .with_context(|| format!("cannot listen on {}; is another server running? pick another with --listen", resolved.listen))?;
        let addr = listener.local_addr()?;
        if !certificates.is_empty() {
            tokio::spawn(reload_on_sighup(certificates));
        }
        let scheme = if server.tls().is_some() { "https" } else { "http" };
        // A stable line scripts and tests wait for (the port may have been chosen by the OS).
        eprintln!("antibody: listening on {addr} ({scheme})");
        tracing::info!(%addr, data_dir = %data_dir.display(), "antibody is serving");
        tokio::spawn(async move {
            shutdown_signal().await;
            let _ = stop_tx.send(true);
        });
        server.serve(listener, stopped()).await?;
        for t in [gateway_task, syslog_task].into_iter().flatten() {
            t.abort();
        }
        tracing::info!("stopped cleanly");
        Ok(())
    })
}

/// SIGHUP reloads every listener's TLS certificate and key (the files are also watched for
/// changes).
async fn reload_on_sighup(certificates: Vec<Arc<antibody_server::net::TlsAcceptor>>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            return;
        };
        while hup.recv().await.is_some() {
            for tls in &certificates {
                if let Err(e) = tls.reload() {
                    tracing::error!(error = %e, "SIGHUP: the TLS files cannot be used; the previous certificate stays in force");
                }
            }
        }
    }
}

/// Raises the open-file limit to its hard maximum and keeps the connection cap below it, with
/// room for the log, the database and outbound calls: with every descriptor taken by
/// sockets the log cannot open a segment.
fn fit_connections_to_descriptors(net: &mut antibody_server::net::NetLimits) {
    const RESERVED: usize = 256;
    #[cfg(target_os = "linux")]
    {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit/setrlimit read and write the one struct passed.
        let available = unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
                return;
            }
            if lim.rlim_cur < lim.rlim_max {
                let raised = libc::rlimit {
                    rlim_cur: lim.rlim_max,
                    rlim_max: lim.rlim_max,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                    lim.rlim_cur = lim.rlim_max;
                }
            }
            usize::try_from(lim.rlim_cur).unwrap_or(usize::MAX)
        };
        let room = available.saturating_sub(RESERVED).max(1);
        if net.max_connections > room {
            tracing::warn!(
                configured = net.max_connections,
                allowed = room,
                "limits.max_connections is above what the open-file limit leaves room for; lowered"
            );
            net.max_connections = room;
        }
    }
}

/// How often a listener's TLS files are checked for a new certificate.
const TLS_RELOAD_CHECK: std::time::Duration = std::time::Duration::from_secs(2);

/// Binds the gateway's listener and serves it on a task until `stop`, on the listener the
/// API uses (`net::serve`: TLS, connection caps, timeouts). Its line comes before the API's
/// `listening on`, which scripts and tests wait for. Returns the task and the certificate.
async fn start_gateway(
    gw: config::GatewayListener,
    state: antibody_server::state::AppState,
    http: antibody_executors::HttpClient,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(
    tokio::task::JoinHandle<()>,
    Option<Arc<antibody_server::net::TlsAcceptor>>,
)> {
    let config::GatewayListener {
        gateway: cfg,
        tls,
        net,
    } = gw;
    let tls = tls
        .map(antibody_server::net::TlsAcceptor::load)
        .transpose()
        .context("[gateway.tls]")?;
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
    // The line stays the address alone: scripts and tests read it.
    eprintln!("antibody: gateway serving on {addr}");
    tracing::info!(%addr, providers = cfg.providers.len(), mcp_servers = cfg.mcp_servers.len(), tls = tls.is_some(), "the LLM gateway is serving");
    let gw = antibody_gateway::Gateway::new(
        cfg,
        Arc::new(gateway::ServerBackend(state.clone())),
        Some(state.catalog.rule_book().global().clone()),
        http,
    );
    let app = antibody_gateway::http::router(gw);
    let watch = tls.as_ref().map(|t| t.watch(TLS_RELOAD_CHECK));
    let serving = tls.clone();
    let task = tokio::spawn(async move {
        antibody_server::net::serve(listener, app, net, serving, stop).await;
        if let Some(w) = watch {
            w.abort();
        }
    });
    Ok((task, tls))
}

/// Binds the syslog listener (UDP and TCP) and serves it on a task until `stop`; its line
/// comes before the API's `listening on`.
async fn start_syslog(
    cfg: antibody_server::syslog::SyslogConfig,
    state: antibody_server::state::AppState,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(
    tokio::task::JoinHandle<()>,
    Option<Arc<antibody_server::net::TlsAcceptor>>,
)> {
    let tenant = cfg.tenant.clone();
    let listener = antibody_server::syslog::SyslogListener::bind(cfg).await?;
    listener.check_tenant(&state)?;
    let addr = listener.local_addr()?;
    let tls = listener.tls();
    let transports = if tls.is_some() { "tcp+tls" } else { "udp, tcp" };
    // Not "listening on": scripts and tests take that line for the API's address.
    eprintln!("antibody: syslog receiving on {addr} ({transports})");
    tracing::info!(%addr, tenant = tenant.as_str(), "the syslog listener is serving");
    let watch = tls.as_ref().map(|t| t.watch(TLS_RELOAD_CHECK));
    let task = tokio::spawn(async move {
        listener.serve(state, stop).await;
        if let Some(w) = watch {
            w.abort();
        }
    });
    Ok((task, tls))
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
