//! The antibody service: the durable ingest pipeline and the HTTP API around the engine.
//! [`Server::open`] recovers state from the data dir; [`Server::serve`] runs until shutdown.

pub mod audit;
pub mod auth;
pub mod datadir;
pub mod demo;
mod durable_file;
pub mod entities;
pub mod error;
pub mod fair;
pub mod layers;
pub mod metrics;
pub mod models;
pub mod net;
pub mod openapi;
pub mod pipeline;
pub mod respond;
pub mod routes;
pub mod state;
pub mod syslog;
pub mod ui;
pub mod webprof;

use antibody_core::ingest::Limits;
use antibody_core::Clock;
use antibody_detect::EngineConfig;
use antibody_store::{Role, Store, DEFAULT_TENANT};
use axum::Router;
use pipeline::{Pipeline, PipelineConfig, PipelineParts};
use state::AppState;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("storage: {0}")]
    Store(#[from] antibody_store::StoreError),
    #[error("rules:\n{0}")]
    Rules(#[from] antibody_rules::RuleErrors),
    #[error("pipeline: {0}")]
    Pipeline(#[from] pipeline::PipelineError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error(transparent)]
    DataDir(#[from] datadir::DataDirError),
    #[error("playbooks:\n{0}")]
    Playbooks(#[from] antibody_respond::PlaybookErrors),
    #[error(
        "the responder snapshot {} is unreadable ({source}). It holds pending approvals, \
         active blocks and entity states: restore it from a backup, or move it aside to start \
         afresh without them",
        path.display()
    )]
    ResponderSnapshot {
        path: PathBuf,
        source: antibody_respond::RespondError,
    },
}

/// The default playbook pack plus `<dir>/*.yml` and `*.yaml`, in name order; a missing dir
/// is just the default pack. Every error of every file is reported at once.
pub fn load_playbooks(dir: &Path) -> Result<antibody_respond::PlaybookSet, ServerError> {
    let mut sources = antibody_respond::PlaybookSet::default_sources();
    for (path, text) in yaml_files(dir)? {
        sources.push(antibody_respond::PlaybookSource::new(
            path.display().to_string(),
            text,
        ));
    }
    Ok(antibody_respond::PlaybookSet::load(&sources)?)
}

/// `dir/*.yml` and `*.yaml` with their text, in name order; a missing dir has none.
pub fn yaml_files(dir: &Path) -> Result<Vec<(PathBuf, String)>, ServerError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(ServerError::Io {
                context: format!("reading {}", dir.display()),
                source,
            })
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yml" || x == "yaml"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).map_err(|source| ServerError::Io {
                context: format!("reading {}", path.display()),
                source,
            })?;
            Ok((path, text))
        })
        .collect()
}

/// How long open requests may run on after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How often the TLS files are checked for a new certificate.
const TLS_RELOAD_CHECK: Duration = Duration::from_secs(2);

#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub data_dir: PathBuf,
    /// Preset bootstrap admin key (`ANTIBODY_ADMIN_KEY`).
    pub admin_key: Option<String>,
    pub engine: EngineConfig,
    pub limits: Limits,
    pub pipeline: PipelineConfig,
    pub tick_interval: Duration,
    pub responder: antibody_respond::ResponderConfig,
    /// `[executors]`: webhook, notify, command, signal (internal kinds need nothing).
    pub executors: antibody_executors::RawExecutorsConfig,
    /// `[investigator]`: the optional LLM investigator (template summaries without it).
    pub investigator: antibody_executors::RawInvestigatorConfig,
    /// Ingest requests read and parsed at once; more get 429 before their body is read.
    pub max_concurrent_ingest: usize,
    /// What one tenant and one key may hold of the ingest capacity.
    pub fair: fair::Shares,
    /// Time allowed to receive one ingest body (`[limits] body_timeout_ms`).
    pub body_timeout: Duration,
    /// The API listener's connection caps and timeouts (`[limits]`).
    pub net: net::NetLimits,
    /// `[tls]`: the API listener's certificate; plain HTTP without.
    pub tls: Option<net::TlsFiles>,
    /// Roots trusted for outbound HTTPS on top of the system's (`[tls] ca_bundle`).
    pub outbound_ca: Option<PathBuf>,
    /// `[cors] allowed_origins`.
    pub cors_origins: Vec<String>,
    /// Run the built-in fleet simulator (`--demo`).
    pub demo: bool,
    /// `[models]`: the model registry's limits and retraining.
    pub models: models::ModelsConfig,
}

impl ServerConfig {
    pub fn new(data_dir: PathBuf) -> Self {
        Self {
            pipeline: PipelineConfig::new(data_dir.clone()),
            data_dir,
            admin_key: None,
            engine: EngineConfig::default(),
            limits: Limits::default(),
            tick_interval: Duration::from_secs(1),
            responder: antibody_respond::ResponderConfig::default(),
            executors: antibody_executors::RawExecutorsConfig::default(),
            investigator: antibody_executors::RawInvestigatorConfig::default(),
            max_concurrent_ingest: 32,
            fair: fair::Shares {
                bodies_per_tenant: 16,
                bodies_per_key: 8,
                events_per_tenant: 1_000_000,
            },
            body_timeout: Duration::from_secs(10),
            net: net::NetLimits::default(),
            tls: None,
            outbound_ca: None,
            cors_origins: Vec::new(),
            demo: false,
            models: models::ModelsConfig::default(),
        }
    }
}

pub struct Server {
    state: AppState,
    stop: tokio::sync::watch::Sender<bool>,
    tick_interval: Duration,
    demo: bool,
    net: net::NetLimits,
    tls: Option<Arc<net::TlsAcceptor>>,
    http: antibody_executors::HttpClient,
    /// The bootstrap admin key when this start created it (to print once).
    pub new_admin_key: Option<String>,
    /// Released when the server is dropped, after the pipeline's final checkpoint.
    _lock: datadir::DataDirLock,
}

impl Server {
    /// Opens the data dir: store, bootstrap tenant and key, rules, then the pipeline
    /// (which restores the engine snapshot and replays the log tail before returning).
    pub fn open(cfg: ServerConfig, clock: Arc<dyn Clock>) -> Result<Server, ServerError> {
        cfg.engine.validate().map_err(ServerError::Config)?;
        let lock = datadir::DataDirLock::acquire(&cfg.data_dir, "antibody serve")?;
        let tightened = datadir::make_private(&cfg.data_dir).map_err(|source| ServerError::Io {
            context: format!("making {} private (0700/0600)", cfg.data_dir.display()),
            source,
        })?;
        if tightened > 0 {
            tracing::info!(tightened, data_dir = %cfg.data_dir.display(), "data dir made private: directories 0700, files 0600");
        }
        let store = Arc::new(Store::open(&cfg.data_dir.join(antibody_store::DB_FILE))?);
        let new_admin_key = bootstrap(
            &store,
            &cfg.data_dir,
            cfg.admin_key.as_deref(),
            clock.now_ms(),
        )?;
        cfg.responder.validate().map_err(ServerError::Config)?;
        let responder_cfg = Arc::new(cfg.responder.clone());
        let catalog = Arc::new(layers::Catalog::load(
            &cfg.data_dir,
            responder_cfg.clone(),
            &store,
        )?);
        let rules = catalog.rule_book();
        let playbooks = catalog.global_playbooks();
        let (own_playbooks, own_policies) = catalog.tenant_layers();
        tracing::info!(
            rules = rules.global().len(),
            playbooks = playbooks.playbooks().len(),
            tenant_rules = rules.tenants().count(),
            tenant_playbooks = own_playbooks.len(),
            tenant_policies = own_policies.len(),
            "rules, playbooks and tenant layers loaded"
        );
        std::fs::create_dir_all(cfg.data_dir.join("snapshots")).map_err(|source| {
            ServerError::Io {
                context: "creating the snapshots dir".into(),
                source,
            }
        })?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            ServerError::Config("the server must be opened inside a tokio runtime".into())
        })?;
        let tls = cfg
            .tls
            .clone()
            .map(net::TlsAcceptor::load)
            .transpose()
            .map_err(|e| ServerError::Config(format!("[tls]: {e}")))?;
        // The binary's one outbound HTTP client: every executor and the investigator share it.
        let http = antibody_executors::HttpClient::new(cfg.outbound_ca.as_deref())
            .map_err(|e| ServerError::Config(format!("[tls] ca_bundle: {e}")))?;
        let executors = respond::Executors::from_config(
            cfg.executors.clone(),
            runtime.clone(),
            http.clone(),
            clock.clone(),
        )
        .map_err(|e| ServerError::Config(e.to_string()))?
        .with_investigator(cfg.investigator.clone(), runtime, http.clone())
        .map_err(|e| ServerError::Config(e.to_string()))?;
        let mut responder = respond::load_responder(
            &cfg.data_dir.join("snapshots").join("responder.snap"),
            responder_cfg,
            playbooks,
            &store,
        )?;
        // Tenant layers are configuration, not responder state: set before any replay.
        for (t, set) in own_playbooks {
            responder.set_tenant_playbooks(t, Some(set));
        }
        for (t, policy) in own_policies {
            responder.set_tenant_policy(t, Some(policy));
        }
        let metrics = Arc::new(metrics::Metrics::default());
        let models = Arc::new(models::load_live(&store, &cfg.models)?);
        tracing::info!(models = models.bindings().len(), "models loaded");
        let parts = PipelineParts {
            models,
            store: store.clone(),
            metrics: metrics.clone(),
            clock: clock.clone(),
            engine: Arc::new(cfg.engine.clone()),
            rules,
            responder,
            executors,
        };
        let pipeline = Pipeline::start(cfg.pipeline.clone(), parts)?;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let state = AppState {
            store,
            pipeline,
            metrics,
            clock,
            limits: Arc::new(cfg.limits.clone()),
            keys: Arc::new(auth::KeyCache::default()),
            shutdown: stop_rx,
            catalog,
            ingest_permits: Arc::new(tokio::sync::Semaphore::new(
                cfg.max_concurrent_ingest.max(1),
            )),
            fair: fair::Budgets::new(cfg.fair),
            body_timeout: cfg.body_timeout,
            models: Arc::new(models::ModelsState::new(cfg.models.clone())),
            http: Arc::new(net::policy::HttpPolicy {
                cors_origins: cfg.cors_origins.clone(),
                tls: tls.is_some(),
            }),
            otlp_tasks: Arc::default(),
        };
        Ok(Server {
            stop: stop_tx,
            state,
            tick_interval: cfg.tick_interval,
            demo: cfg.demo,
            net: cfg.net.clone(),
            tls,
            http,
            new_admin_key,
            _lock: lock,
        })
    }

    pub fn router(&self) -> Router {
        router(self.state.clone())
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The API listener's TLS, for reloading on SIGHUP; `None` for plain HTTP.
    pub fn tls(&self) -> Option<Arc<net::TlsAcceptor>> {
        self.tls.clone()
    }

    /// The binary's one outbound HTTP client, for any other part that calls out.
    pub fn http_client(&self) -> &antibody_executors::HttpClient {
        &self.http
    }

    /// Serves HTTP (HTTPS with `[tls]`) until `shutdown` resolves, then drains the pipeline
    /// and writes a final checkpoint.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let pipeline = self.state.pipeline.clone();
        let clock = self.state.clock.clone();
        let ticker = pipeline.clone();
        let period = self.tick_interval;
        let tick_task = tokio::spawn(async move {
            let mut every = tokio::time::interval(period);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                every.tick().await;
                ticker.tick(clock.now_ms());
            }
        });
        let demo_task = self.demo.then(|| {
            tracing::info!("demo: simulating a fleet with an attack every 10 s (tenant `default`)");
            tokio::spawn(demo::run(
                self.state.pipeline.clone(),
                self.state.clock.clone(),
            ))
        });
        let app = self.router();
        let stop = self.stop;
        let mut stopping = stop.subscribe();
        // Checks the certificate files for changes (SIGHUP reloads at once).
        let tls_watch = self.tls.as_ref().map(|t| t.watch(TLS_RELOAD_CHECK));
        let server = net::serve(listener, app, self.net, self.tls, stop.subscribe());
        let signal = async move {
            shutdown.await;
            // Ends the live streams and starts the listener's graceful shutdown.
            let _ = stop.send(true);
            std::future::pending::<()>().await
        };
        // Requests in flight get a grace period; a client that never finishes does not
        // keep the pipeline from draining.
        let deadline = async move {
            let _ = stopping.wait_for(|s| *s).await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
            tracing::warn!("shutdown grace period over; closing remaining connections");
        };
        tokio::select! {
            () = server => {},
            () = signal => {},
            () = deadline => {},
        }
        tick_task.abort();
        if let Some(t) = tls_watch {
            t.abort();
        }
        if let Some(t) = demo_task {
            t.abort();
        }
        tokio::task::spawn_blocking(move || pipeline.shutdown())
            .await
            .map_err(std::io::Error::other)
    }
}

pub fn router(state: AppState) -> Router {
    let mut r = Router::new();
    for ep in routes::endpoints() {
        r = r.route(ep.path, ep.route);
    }
    let policy = state.http.clone();
    // The operator dashboard: `/` (sign-in) and `/ui/`; HTML, not part of the JSON API.
    r = r.merge(ui::routes(policy.tls));
    r.fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(
            policy,
            net::policy::apply,
        ))
}

async fn not_found(uri: axum::http::Uri) -> error::ApiError {
    error::ApiError::NotFound(format!("route `{}`", uri.path()))
}

async fn method_not_allowed() -> error::ApiError {
    error::ApiError::Invalid {
        code: "method_not_allowed",
        message: "this route does not accept that method".into(),
    }
}

/// First start: tenant `default` and a bootstrap admin key (the preset one when given),
/// written to `<data-dir>/admin.key` with mode 0600, both audited. Returns a newly
/// generated key.
fn bootstrap(
    store: &Store,
    data_dir: &Path,
    preset: Option<&str>,
    now: i64,
) -> Result<Option<String>, ServerError> {
    let tenant = antibody_core::TenantId::new(DEFAULT_TENANT);
    if store.get_tenant(&tenant)?.is_none() {
        let t = store.create_tenant(DEFAULT_TENANT, now)?;
        let note = audit::AuditNote::new(
            "tenant_create",
            t.id.as_str(),
            "tenant `default` created at first start".into(),
        )
        .with("name", t.name);
        audit::record_offline(store, &tenant, FIRST_START, note, now)?;
    }
    let has_bootstrap = store
        .list_keys(&tenant)?
        .iter()
        .any(|k| k.bootstrap && !k.is_expired(now));
    // A preset key is registered only while no working bootstrap key exists: deleting or
    // rotating one must not be undone by the next restart. To replace it, rotate it
    // (POST /v1/keys/{id}/rotate); once it has expired the preset applies again.
    let key = match preset {
        Some(secret) if !has_bootstrap => {
            store.insert_key_with_secret(&tenant, Role::Admin, true, secret, now)?
        }
        Some(secret) => {
            match store.authenticate(secret)? {
                None => tracing::warn!(
                    "ANTIBODY_ADMIN_KEY ignored: a bootstrap admin key already exists; to \
                     replace it, rotate it (POST /v1/keys/{{id}}/rotate)"
                ),
                Some(k) if k.is_expired(now) => tracing::warn!(
                    key = %k.id,
                    "ANTIBODY_ADMIN_KEY names a key that has expired (rotated away); unset it \
                     and use the key that replaced it"
                ),
                Some(_) => {}
            }
            return Ok(None);
        }
        None if has_bootstrap => return Ok(None),
        None => {
            let key = store.create_key(&tenant, Role::Admin, true, now, None)?;
            write_secret(&data_dir.join("admin.key"), &key.secret)?;
            audit::record_offline(
                store,
                &tenant,
                FIRST_START,
                audit::key_created(&key.info),
                now,
            )?;
            return Ok(Some(key.secret));
        }
    };
    if key.created_ms == now {
        audit::record_offline(store, &tenant, FIRST_START, audit::key_created(&key), now)?;
    }
    Ok(None)
}

/// The actor of what the server does on its own at start.
const FIRST_START: &str = "antibody-serve";

fn write_secret(path: &Path, secret: &str) -> Result<(), ServerError> {
    use std::io::Write;
    let io = |source| ServerError::Io {
        context: format!("writing {}", path.display()),
        source,
    };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path).map_err(io)?;
    f.write_all(secret.as_bytes())
        .and_then(|()| f.write_all(b"\n"))
        .and_then(|()| f.sync_all())
        .map_err(io)
}
