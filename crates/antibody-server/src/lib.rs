//! The antibody service: the durable ingest pipeline and the HTTP API around the engine.
//! [`Server::open`] recovers state from the data dir; [`Server::serve`] runs until shutdown.

pub mod audit;
pub mod auth;
pub mod demo;
mod durable_file;
pub mod entities;
pub mod error;
pub mod layers;
pub mod metrics;
pub mod models;
pub mod openapi;
pub mod pipeline;
pub mod respond;
pub mod routes;
pub mod state;
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
    /// Time allowed to receive one request body.
    pub body_timeout: Duration,
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
            body_timeout: Duration::from_secs(30),
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
    /// The bootstrap admin key when this start created it (to print once).
    pub new_admin_key: Option<String>,
}

impl Server {
    /// Opens the data dir: store, bootstrap tenant and key, rules, then the pipeline
    /// (which restores the engine snapshot and replays the log tail before returning).
    pub fn open(cfg: ServerConfig, clock: Arc<dyn Clock>) -> Result<Server, ServerError> {
        cfg.engine.validate().map_err(ServerError::Config)?;
        std::fs::create_dir_all(&cfg.data_dir).map_err(|source| ServerError::Io {
            context: format!("creating data dir {}", cfg.data_dir.display()),
            source,
        })?;
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
        let executors =
            respond::Executors::from_config(cfg.executors.clone(), runtime.clone(), clock.clone())
                .map_err(|e| ServerError::Config(e.to_string()))?
                .with_investigator(cfg.investigator.clone(), runtime)
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
            body_timeout: cfg.body_timeout,
            models: Arc::new(models::ModelsState::new(cfg.models.clone())),
        };
        Ok(Server {
            stop: stop_tx,
            state,
            tick_interval: cfg.tick_interval,
            demo: cfg.demo,
            new_admin_key,
        })
    }

    pub fn router(&self) -> Router {
        router(self.state.clone())
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves HTTP until `shutdown` resolves, then drains the pipeline and writes a final
    /// checkpoint.
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
        let signal = async move {
            shutdown.await;
            // Ends the live streams, so graceful shutdown does not wait on them forever.
            let _ = stop.send(true);
        };
        let server = axum::serve(listener, app).with_graceful_shutdown(signal);
        // Requests in flight get a grace period; a client that never finishes does not
        // keep the pipeline from draining.
        let deadline = async move {
            let _ = stopping.wait_for(|s| *s).await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
            tracing::warn!("shutdown grace period over; closing remaining connections");
        };
        let result = tokio::select! {
            r = server => r,
            () = deadline => Ok(()),
        };
        tick_task.abort();
        if let Some(t) = demo_task {
            t.abort();
        }
        tokio::task::spawn_blocking(move || pipeline.shutdown())
            .await
            .map_err(std::io::Error::other)?;
        result
    }
}

pub fn router(state: AppState) -> Router {
    let mut r = Router::new();
    for ep in routes::endpoints() {
        r = r.route(ep.path, ep.route);
    }
    r.fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
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
/// written to `<data-dir>/admin.key` with mode 0600. Returns a newly generated key.
fn bootstrap(
    store: &Store,
    data_dir: &Path,
    preset: Option<&str>,
    now: i64,
) -> Result<Option<String>, ServerError> {
    let tenant = antibody_core::TenantId::new(DEFAULT_TENANT);
    if store.get_tenant(&tenant)?.is_none() {
        store.create_tenant(DEFAULT_TENANT, now)?;
    }
    let has_bootstrap = store.list_keys(&tenant)?.iter().any(|k| k.bootstrap);
    // A preset key is registered only while no bootstrap key exists: deleting a bootstrap
    // key must not be undone by the next restart, and rotating the variable must not leave
    // the old key valid. To rotate, delete the old key, then restart with the new value.
    if let Some(secret) = preset {
        if !has_bootstrap {
            store.insert_key_with_secret(&tenant, Role::Admin, true, secret, now)?;
        } else if store.authenticate(secret)?.is_none() {
            tracing::warn!(
                "ANTIBODY_ADMIN_KEY ignored: a bootstrap admin key already exists; delete it \
                 (DELETE /v1/keys/{{id}}) and restart to use the new one"
            );
        }
        return Ok(None);
    }
    if has_bootstrap {
        return Ok(None);
    }
    let key = store.create_key(&tenant, Role::Admin, true, now)?;
    write_secret(&data_dir.join("admin.key"), &key.secret)?;
    Ok(Some(key.secret))
}

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
