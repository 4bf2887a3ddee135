//! `antibody.toml`: parsed raw, then merged under env vars and flags (file < env < CLI; clap
//! resolves env and flags) and validated into the server's configuration.

use antibody_detect::EngineConfig;
use antibody_server::ServerConfig;
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    /// Engine partitions (worker threads); default one per core.
    pub workers: Option<usize>,
    pub log_format: Option<String>,
    /// Run the fleet simulator (`--demo`).
    pub demo: Option<bool>,
    /// Seconds between re-checks that applied external actions still hold (default 60).
    pub drift_check_secs: Option<u64>,
    #[serde(default)]
    pub engine: EngineConfig,
    /// The response engine: policies, approvals, fleet correlation, blast-radius guard.
    #[serde(default)]
    pub respond: antibody_respond::ResponderConfig,
    /// Executors that reach outside: webhook, notify, command, signal.
    #[serde(default)]
    pub executors: antibody_executors::RawExecutorsConfig,
    /// The optional LLM investigator: incident summaries and proposals awaiting approval.
    #[serde(default)]
    pub investigator: antibody_executors::RawInvestigatorConfig,
    /// The model registry: upload limits and retraining from analysts' labels.
    #[serde(default)]
    pub models: antibody_server::models::ModelsConfig,
    #[serde(default)]
    pub limits: LimitsFile,
    #[serde(default)]
    pub log: LogFile,
    /// TLS of the API listener, and extra roots for outbound HTTPS.
    #[serde(default)]
    pub tls: TlsFile,
    /// Origins whose browsers may call the API.
    #[serde(default)]
    pub cors: CorsFile,
    /// The LLM gateway's own listener, providers, prices (and MCP servers, accepted ahead
    /// of the MCP proxy), with its listener's `[gateway.tls]` and `[gateway.limits]`.
    #[serde(default)]
    pub gateway: GatewayFile,
    /// The syslog listener (UDP and TCP): off unless `listen` (or `--syslog-listen`) is set.
    #[serde(default)]
    pub syslog: SyslogFile,
}

/// `[gateway]`: the gateway's own settings (`antibody_gateway`), and `tls` and `limits`,
/// which configure the listener the binary serves it on (`antibody_server::net`) and so
/// are split off here rather than known to the gateway crate.
#[derive(Debug, Default)]
pub struct GatewayFile {
    pub gateway: antibody_gateway::RawGatewayConfig,
    pub tls: TlsFile,
    pub limits: ListenerLimitsFile,
}

impl<'de> Deserialize<'de> for GatewayFile {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error;
        fn part<T: serde::de::DeserializeOwned + Default, E: Error>(
            table: &mut toml::Table,
            name: &str,
        ) -> std::result::Result<T, E> {
            match table.remove(name) {
                None => Ok(T::default()),
                Some(v) => v
                    .try_into()
                    .map_err(|e| E::custom(format!("[gateway.{name}]: {e}"))),
            }
        }
        let mut table = toml::Table::deserialize(d)?;
        let tls = part(&mut table, "tls")?;
        let limits = part(&mut table, "limits")?;
        let gateway = toml::Value::Table(table)
            .try_into()
            .map_err(D::Error::custom)?;
        Ok(Self {
            gateway,
            tls,
            limits,
        })
    }
}

/// `[syslog]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogFile {
    pub listen: Option<String>,
    /// The tenant every message belongs to (default `default`).
    pub tenant: Option<String>,
    #[serde(default)]
    pub tls: TlsFile,
    #[serde(default)]
    pub limits: ListenerLimitsFile,
}

/// `[gateway.limits]` and `[syslog.limits]`: a listener's connection caps and timeouts; a
/// key not set keeps the value of `[limits]` (except the syslog listener's idle timeout,
/// an hour by default).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerLimitsFile {
    pub max_connections: Option<usize>,
    pub max_connections_per_ip: Option<usize>,
    pub header_timeout_ms: Option<u64>,
    pub idle_timeout_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFile {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub client_ca: Option<PathBuf>,
    pub ca_bundle: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsFile {
    #[serde(default)]
    pub allowed_origins: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    pub max_body_bytes: Option<usize>,
    pub max_line_bytes: Option<usize>,
    pub max_events: Option<usize>,
    pub max_fields: Option<usize>,
    pub max_depth: Option<usize>,
    pub max_queued_events: Option<u64>,
    pub max_connections: Option<usize>,
    pub max_connections_per_ip: Option<usize>,
    pub header_timeout_ms: Option<u64>,
    pub idle_timeout_ms: Option<u64>,
    pub body_timeout_ms: Option<u64>,
    pub max_ingest_bodies: Option<usize>,
    pub max_ingest_bodies_per_tenant: Option<usize>,
    pub max_ingest_bodies_per_key: Option<usize>,
    pub max_queued_events_per_tenant: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogFile {
    pub segment_mb: Option<u64>,
    pub retention_mb: Option<u64>,
    pub retention_hours: Option<u64>,
    pub checkpoint_secs: Option<u64>,
}

impl FileConfig {
    pub fn load(path: Option<&Path>) -> Result<FileConfig> {
        let Some(path) = path else {
            return Ok(FileConfig::default());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
    }
}

/// What the flags and env vars said (`None` = not given).
pub struct Overrides {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub workers: Option<usize>,
    pub admin_key: Option<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub tls_client_ca: Option<PathBuf>,
    pub tls_ca_bundle: Option<PathBuf>,
    /// `--gateway-listen` / `ANTIBODY_GATEWAY_LISTEN` over `[gateway] listen`.
    pub gateway_listen: Option<String>,
    /// `--syslog-listen` / `ANTIBODY_SYSLOG_LISTEN` over `[syslog] listen`.
    pub syslog_listen: Option<String>,
}

pub struct Resolved {
    pub listen: SocketAddr,
    pub server: ServerConfig,
    /// The gateway, when `[gateway]` names at least one provider.
    pub gateway: Option<GatewayListener>,
    /// The syslog listener, when an address is given.
    pub syslog: Option<antibody_server::syslog::SyslogConfig>,
}

/// The gateway and the listener it is served on.
pub struct GatewayListener {
    pub gateway: antibody_gateway::GatewayConfig,
    /// `[gateway.tls]`: HTTPS on the gateway's port; plain HTTP without.
    pub tls: Option<antibody_server::net::TlsFiles>,
    pub net: antibody_server::net::NetLimits,
}

pub fn resolve(file: FileConfig, o: Overrides) -> Result<Resolved> {
    let listen_text = o
        .listen
        .or(file.listen)
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let listen: SocketAddr = listen_text.parse().with_context(|| {
        format!("--listen `{listen_text}` is not an address such as 127.0.0.1:8080")
    })?;
    let data_dir = o
        .data_dir
        .or(file.data_dir)
        .unwrap_or_else(|| PathBuf::from("./antibody-data"));
    let mut cfg = ServerConfig::new(data_dir);
    cfg.admin_key = o.admin_key.filter(|k| !k.trim().is_empty());
    if let Some(k) = &cfg.admin_key {
        if k.len() < 16 {
            bail!("ANTIBODY_ADMIN_KEY must be at least 16 characters");
        }
    }
    if let Some(w) = o.workers.or(file.workers) {
        if !(1..=256).contains(&w) {
            bail!("workers must be between 1 and 256");
        }
        cfg.pipeline.partitions = w;
    }
    cfg.engine = file.engine;
    cfg.engine.validate().map_err(anyhow::Error::msg)?;
    file.respond
        .validate()
        .map_err(|e| anyhow::anyhow!("[respond]: {e}"))?;
    cfg.responder = file.respond;
    cfg.executors = file.executors;
    antibody_executors::InvestigatorConfig::try_from(file.investigator.clone())?;
    cfg.investigator = file.investigator;
    if file.models.max_file_bytes == 0 {
        bail!("[models] max_file_bytes must be positive");
    }
    cfg.models = file.models;
    if let Some(secs) = file.drift_check_secs {
        cfg.pipeline.drift_check_ticks = secs.max(1);
    }
    apply_limits(&mut cfg, &file.limits)?;
    cfg.tls = tls_files(
        &file.tls,
        TlsFile {
            cert: o.tls_cert,
            key: o.tls_key,
            client_ca: o.tls_client_ca,
            ca_bundle: None,
        },
    )?;
    cfg.outbound_ca = o.tls_ca_bundle.or(file.tls.ca_bundle);
    cfg.cors_origins = cors_origins(file.cors.allowed_origins)?;
    let log = &file.log;
    if let Some(mb) = log.segment_mb {
        cfg.pipeline.log.segment_bytes = mb.max(1) << 20;
    }
    if let Some(mb) = log.retention_mb {
        cfg.pipeline.log.max_total_bytes = Some(mb.max(1) << 20);
    }
    if let Some(h) = log.retention_hours {
        cfg.pipeline.log.max_age_ms = Some((h.max(1) * 3600 * 1000) as i64);
    }
    if let Some(s) = log.checkpoint_secs {
        cfg.pipeline.checkpoint_interval = Duration::from_secs(s.max(1));
    }
    let gateway = resolve_gateway(file.gateway.gateway, o.gateway_listen)?
        .map(|gateway| -> Result<GatewayListener> {
            let mut net = cfg.net.clone();
            listener_limits(&mut net, &file.gateway.limits, "gateway.limits")?;
            Ok(GatewayListener {
                gateway,
                tls: listener_tls(&file.gateway.tls, "gateway.tls")?,
                net,
            })
        })
        .transpose()?;
    if gateway.is_none() && file.gateway.tls.cert.is_some() {
        bail!("[gateway.tls] is set but the gateway does not run (it needs [[gateway.providers]])");
    }
    let syslog = resolve_syslog(file.syslog, o.syslog_listen, &cfg.net)?;
    Ok(Resolved {
        listen,
        server: cfg,
        gateway,
        syslog,
    })
}

/// `[syslog]` under `--syslog-listen`; off without an address.
fn resolve_syslog(
    file: SyslogFile,
    flag: Option<String>,
    api_net: &antibody_server::net::NetLimits,
) -> Result<Option<antibody_server::syslog::SyslogConfig>> {
    let Some(text) = flag.or(file.listen) else {
        if file.tenant.is_some() || file.tls.cert.is_some() {
            bail!("[syslog] needs `listen` (or --syslog-listen) to run");
        }
        return Ok(None);
    };
    let addr: SocketAddr = text.parse().with_context(|| {
        format!("--syslog-listen `{text}` is not an address such as 0.0.0.0:5514")
    })?;
    let mut cfg = antibody_server::syslog::SyslogConfig::new(addr);
    cfg.net = antibody_server::net::NetLimits {
        idle_timeout: cfg.net.idle_timeout,
        ..api_net.clone()
    };
    listener_limits(&mut cfg.net, &file.limits, "syslog.limits")?;
    // Whether the tenant exists is checked when the listener starts (the store is open then).
    if let Some(t) = file.tenant {
        cfg.tenant = antibody_core::TenantId::new(&t);
    }
    cfg.tls = listener_tls(&file.tls, "syslog.tls")?;
    Ok(Some(cfg))
}

/// A listener's own `[…limits]` over what it inherits.
fn listener_limits(
    net: &mut antibody_server::net::NetLimits,
    l: &ListenerLimitsFile,
    section: &str,
) -> Result<()> {
    apply_net(
        net,
        [l.max_connections, l.max_connections_per_ip],
        [l.header_timeout_ms, l.idle_timeout_ms],
        section,
    )
}

/// The connection caps and timeouts of one listener.
fn apply_net(
    net: &mut antibody_server::net::NetLimits,
    [max, per_ip]: [Option<usize>; 2],
    [header_ms, idle_ms]: [Option<u64>; 2],
    section: &str,
) -> Result<()> {
    for (slot, v, name) in [
        (&mut net.max_connections, max, "max_connections"),
        (
            &mut net.max_connections_per_ip,
            per_ip,
            "max_connections_per_ip",
        ),
    ] {
        match v {
            Some(0) => bail!("{section}.{name} must be positive"),
            Some(v) => *slot = v,
            None => {}
        }
    }
    for (slot, v, name) in [
        (&mut net.header_timeout, header_ms, "header_timeout_ms"),
        (&mut net.idle_timeout, idle_ms, "idle_timeout_ms"),
    ] {
        match v {
            Some(0) => bail!("{section}.{name} must be positive"),
            Some(v) => *slot = Duration::from_millis(v),
            None => {}
        }
    }
    Ok(())
}

/// A listener's own `[…tls]` (`cert`, `key`, `client_ca`): none is inherited from `[tls]`,
/// as each port may face other clients under another name.
fn listener_tls(f: &TlsFile, section: &str) -> Result<Option<antibody_server::net::TlsFiles>> {
    if f.ca_bundle.is_some() {
        bail!("[{section}] ca_bundle: extra roots for outbound HTTPS belong in [tls]");
    }
    match (&f.cert, &f.key) {
        (Some(cert), Some(key)) => Ok(Some(antibody_server::net::TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: f.client_ca.clone(),
        })),
        (None, None) if f.client_ca.is_none() => Ok(None),
        (None, None) => {
            bail!("[{section}] client_ca needs cert and key (the listener's own certificate)")
        }
        (Some(_), None) => bail!("[{section}] cert needs key (the certificate's private key)"),
        (None, Some(_)) => bail!("[{section}] key needs cert (the certificate it belongs to)"),
    }
}

/// `[gateway]` under the flag, validated with its keys resolved; off without providers.
fn resolve_gateway(
    mut raw: antibody_gateway::RawGatewayConfig,
    listen: Option<String>,
) -> Result<Option<antibody_gateway::GatewayConfig>> {
    if listen.is_some() {
        raw.listen = listen;
    }
    if !raw.enabled() {
        if raw.listen.is_some() {
            bail!("[gateway] needs at least one [[gateway.providers]] or [[gateway.mcp_servers]] to run");
        }
        return Ok(None);
    }
    raw.validate(&antibody_executors::EnvOrFile)
        .map(Some)
        .map_err(|errors| anyhow::anyhow!("invalid [gateway]:\n{}", errors.join("\n")))
}

fn apply_limits(cfg: &mut ServerConfig, l: &LimitsFile) -> Result<()> {
    let lim = &mut cfg.limits;
    let set = |slot: &mut usize, v: Option<usize>, name: &str| -> Result<()> {
        if let Some(v) = v {
            if v == 0 {
                bail!("limits.{name} must be positive");
            }
            *slot = v;
        }
        Ok(())
    };
    set(&mut lim.max_body_bytes, l.max_body_bytes, "max_body_bytes")?;
    set(&mut lim.max_line_bytes, l.max_line_bytes, "max_line_bytes")?;
    set(&mut lim.max_events, l.max_events, "max_events")?;
    set(&mut lim.max_fields, l.max_fields, "max_fields")?;
    set(&mut lim.max_depth, l.max_depth, "max_depth")?;
    if let Some(q) = l.max_queued_events {
        cfg.pipeline.max_queued_events = q.max(1);
    }
    apply_net(
        &mut cfg.net,
        [l.max_connections, l.max_connections_per_ip],
        [l.header_timeout_ms, l.idle_timeout_ms],
        "limits",
    )?;
    let ms = |v: Option<u64>, name: &str| -> Result<Option<Duration>> {
        match v {
            Some(0) => bail!("limits.{name} must be positive"),
            v => Ok(v.map(Duration::from_millis)),
        }
    };
    if let Some(d) = ms(l.body_timeout_ms, "body_timeout_ms")? {
        cfg.body_timeout = d;
    }
    set(
        &mut cfg.max_concurrent_ingest,
        l.max_ingest_bodies,
        "max_ingest_bodies",
    )?;
    let fair = &mut cfg.fair;
    set(
        &mut fair.bodies_per_tenant,
        l.max_ingest_bodies_per_tenant,
        "max_ingest_bodies_per_tenant",
    )?;
    set(
        &mut fair.bodies_per_key,
        l.max_ingest_bodies_per_key,
        "max_ingest_bodies_per_key",
    )?;
    // By default one tenant may fill half the queue: the other half stays for the rest.
    fair.events_per_tenant = match l.max_queued_events_per_tenant {
        Some(0) => bail!("limits.max_queued_events_per_tenant must be positive"),
        Some(n) => n,
        None => (cfg.pipeline.max_queued_events / 2).max(1),
    };
    Ok(())
}

/// `[tls]` under the flags: a certificate needs its key (and the reverse), and client
/// certificates need a certificate of the server's own.
fn tls_files(file: &TlsFile, flags: TlsFile) -> Result<Option<antibody_server::net::TlsFiles>> {
    let cert = flags.cert.or(file.cert.clone());
    let key = flags.key.or(file.key.clone());
    let client_ca = flags.client_ca.or(file.client_ca.clone());
    match (cert, key) {
        (Some(cert), Some(key)) => Ok(Some(antibody_server::net::TlsFiles {
            cert,
            key,
            client_ca,
        })),
        (None, None) if client_ca.is_none() => Ok(None),
        (None, None) => {
            bail!("--tls-client-ca needs --tls-cert and --tls-key (the server's own certificate)")
        }
        (Some(_), None) => bail!("--tls-cert needs --tls-key (the certificate's private key)"),
        (None, Some(_)) => bail!("--tls-key needs --tls-cert (the certificate it belongs to)"),
    }
}

/// Exact origins only (`https://host[:port]`): a wildcard would let any page use a key a
/// browser holds.
fn cors_origins(origins: Vec<String>) -> Result<Vec<String>> {
    for o in &origins {
        let rest = o
            .strip_prefix("https://")
            .or_else(|| o.strip_prefix("http://"));
        let ok = rest.is_some_and(|r| !r.is_empty() && !r.contains(['/', '*', ' ']));
        if !ok {
            bail!("[cors] allowed_origins: `{o}` is not an origin such as https://console.example.com (no path, no wildcard)");
        }
    }
    Ok(origins)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none() -> Overrides {
        Overrides {
            listen: None,
            data_dir: None,
            workers: None,
            admin_key: None,
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
            tls_ca_bundle: None,
            gateway_listen: None,
            syslog_listen: None,
        }
    }

    #[test]
    fn the_gateway_runs_with_providers_and_its_flag_wins() {
        let file: FileConfig = toml::from_str(
            "[gateway]\nlisten = \"127.0.0.1:4001\"\n[[gateway.providers]]\nname = \"local\"\nurl = \"http://127.0.0.1:11434\"\n[gateway.prices.\"m\"]\ninput_per_mtok = 1.0\noutput_per_mtok = 2.0\n",
        )
        .unwrap();
        let r = resolve(
            file,
            Overrides {
                gateway_listen: Some("127.0.0.1:4002".into()),
                ..none()
            },
        )
        .unwrap();
        assert_eq!(r.gateway.map(|g| g.gateway.listen.port()), Some(4002));
        assert!(resolve(FileConfig::default(), none())
            .unwrap()
            .gateway
            .is_none());
        let flag_only = Overrides {
            gateway_listen: Some("127.0.0.1:4002".into()),
            ..none()
        };
        assert!(
            resolve(FileConfig::default(), flag_only).is_err(),
            "nowhere to send calls"
        );
        let bad: FileConfig = toml::from_str(
            "[[gateway.providers]]\nname = \"x\"\nurl = \"http://h\"\napi_key = \"sk-oops\"\n",
        )
        .unwrap();
        let e = format!("{:#}", resolve(bad, none()).err().unwrap());
        assert!(
            e.contains("must be a reference") && !e.contains("sk-oops"),
            "{e}"
        );
    }

    #[test]
    fn tls_limits_and_cors_resolve_and_validate() {
        let file: FileConfig = toml::from_str(
            "[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\nca_bundle = \"ca.pem\"\n\
             [limits]\nmax_connections = 50\nmax_connections_per_ip = 5\nheader_timeout_ms = 300\n\
             idle_timeout_ms = 900\nbody_timeout_ms = 2000\nmax_queued_events = 1000\n\
             [cors]\nallowed_origins = [\"https://console.example.com\"]\n",
        )
        .unwrap();
        let r = resolve(
            file,
            Overrides {
                tls_client_ca: Some("clients.pem".into()),
                ..none()
            },
        )
        .unwrap();
        let tls = r.server.tls.unwrap();
        assert_eq!(tls.cert, PathBuf::from("c.pem"));
        assert_eq!(tls.client_ca, Some(PathBuf::from("clients.pem")));
        assert_eq!(r.server.outbound_ca, Some(PathBuf::from("ca.pem")));
        assert_eq!(r.server.net.max_connections_per_ip, 5);
        assert_eq!(r.server.net.header_timeout, Duration::from_millis(300));
        assert_eq!(r.server.net.idle_timeout, Duration::from_millis(900));
        assert_eq!(r.server.body_timeout, Duration::from_secs(2));
        assert_eq!(r.server.fair.events_per_tenant, 500);
        assert_eq!(r.server.cors_origins, ["https://console.example.com"]);
        let only_cert = Overrides {
            tls_cert: Some("c.pem".into()),
            ..none()
        };
        assert!(resolve(FileConfig::default(), only_cert).is_err());
        for bad in ["*", "https://x.com/app", "console.example.com"] {
            let file: FileConfig =
                toml::from_str(&format!("[cors]\nallowed_origins = [\"{bad}\"]\n")).unwrap();
            assert!(resolve(file, none()).is_err(), "{bad}");
        }
        let file: FileConfig = toml::from_str("[limits]\nidle_timeout_ms = 0\n").unwrap();
        assert!(resolve(file, none()).is_err());
    }

    #[test]
    fn listener_sections_inherit_limits_and_name_their_own_certificates() {
        let file: FileConfig = toml::from_str(
            "[limits]\nmax_connections = 50\nheader_timeout_ms = 300\n\
             [gateway]\nlisten = \"127.0.0.1:4001\"\n\
             [gateway.tls]\ncert = \"g.pem\"\nkey = \"gk.pem\"\nclient_ca = \"agents.pem\"\n\
             [gateway.limits]\nmax_connections_per_ip = 7\n\
             [[gateway.providers]]\nname = \"local\"\nurl = \"http://127.0.0.1:11434\"\n\
             [syslog]\nlisten = \"127.0.0.1:5514\"\ntenant = \"ops\"\n\
             [syslog.limits]\nmax_connections = 9\n",
        )
        .unwrap();
        let r = resolve(file, none()).unwrap();
        let gw = r.gateway.unwrap();
        let tls = gw.tls.unwrap();
        assert_eq!(tls.cert, PathBuf::from("g.pem"));
        assert_eq!(tls.client_ca, Some(PathBuf::from("agents.pem")));
        assert_eq!(
            (gw.net.max_connections, gw.net.max_connections_per_ip),
            (50, 7)
        );
        assert_eq!(gw.net.header_timeout, Duration::from_millis(300));
        assert!(
            r.server.tls.is_none(),
            "[gateway.tls] is the gateway's alone"
        );
        let sys = r.syslog.unwrap();
        assert_eq!(sys.listen.port(), 5514);
        assert_eq!(sys.tenant.as_str(), "ops");
        assert_eq!(sys.net.max_connections, 9);
        assert_eq!(sys.net.header_timeout, Duration::from_millis(300));
        assert_eq!(
            sys.net.idle_timeout,
            antibody_server::syslog::SyslogConfig::IDLE_TIMEOUT
        );
        assert!(sys.tls.is_none());
        let flag = Overrides {
            syslog_listen: Some("127.0.0.1:6514".into()),
            ..none()
        };
        let r = resolve(FileConfig::default(), flag).unwrap();
        assert_eq!(
            r.syslog.map(|s| s.tenant.as_str().to_owned()),
            Some("default".into())
        );
        for bad in [
            "[syslog]\ntenant = \"ops\"\n",
            "[syslog]\nlisten = \"nope\"\n",
            "[syslog]\nlisten = \"127.0.0.1:1\"\n[syslog.tls]\ncert = \"c.pem\"\n",
            "[syslog]\nlisten = \"127.0.0.1:1\"\n[syslog.tls]\ncert = \"c\"\nkey = \"k\"\nca_bundle = \"x\"\n",
            "[syslog]\nlisten = \"127.0.0.1:1\"\n[syslog.limits]\nidle_timeout_ms = 0\n",
            "[gateway.tls]\ncert = \"c\"\nkey = \"k\"\n",
        ] {
            let file: FileConfig = toml::from_str(bad).unwrap();
            assert!(resolve(file, none()).is_err(), "{bad}");
        }
        assert!(toml::from_str::<FileConfig>("[gateway.tls]\ncrt = \"x\"\n").is_err());
        assert!(toml::from_str::<FileConfig>("[gateway]\nlisen = \"x\"\n").is_err());
    }

    #[test]
    fn flags_override_the_file() {
        let file: FileConfig = toml::from_str(
            "listen = \"127.0.0.1:9000\"\nworkers = 3\n[engine.baseline]\nthreshold = 4.0\n",
        )
        .unwrap();
        let r = resolve(
            file,
            Overrides {
                listen: Some("127.0.0.1:9001".into()),
                ..none()
            },
        )
        .unwrap();
        assert_eq!(r.listen.port(), 9001);
        assert_eq!(r.server.pipeline.partitions, 3);
        assert_eq!(r.server.engine.baseline.threshold, 4.0);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        assert!(toml::from_str::<FileConfig>("listn = \"x\"").is_err());
        assert!(resolve(
            FileConfig::default(),
            Overrides {
                listen: Some("nope".into()),
                ..none()
            }
        )
        .is_err());
        let file: FileConfig = toml::from_str("[engine.baseline]\nalpha = 2.0\n").unwrap();
        assert!(resolve(file, none()).is_err());
    }

    /// Every TOML example in the README parses and validates: the docs cannot drift from
    /// the configuration they describe.
    #[test]
    fn readme_config_examples_are_valid() {
        let readme = include_str!("../../../README.md");
        let toml_text: String = readme
            .split("```toml")
            .skip(1)
            .filter_map(|block| block.split("```").next())
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            toml_text.contains("[engine.baseline]"),
            "README lost its config example"
        );
        let file: FileConfig =
            toml::from_str(&toml_text).unwrap_or_else(|e| panic!("README TOML: {e}"));
        let r = resolve(file, none()).unwrap();
        antibody_executors::ExecutorsConfig::try_from(r.server.executors).unwrap();
        let inv = antibody_executors::InvestigatorConfig::try_from(r.server.investigator).unwrap();
        assert!(
            inv.client.is_some(),
            "README shows a configured investigator"
        );
    }

    /// `antibody.example.toml` parses, and what it sets is exactly the default: the file
    /// documents every section without changing behaviour.
    #[test]
    fn the_example_config_parses_and_shows_the_defaults() {
        let text = include_str!("../../../antibody.example.toml");
        let file: FileConfig =
            toml::from_str(text).unwrap_or_else(|e| panic!("antibody.example.toml: {e}"));
        let example = resolve(file, none()).unwrap();
        let default = resolve(FileConfig::default(), none()).unwrap();
        assert_eq!(example.listen, default.listen);
        assert_eq!(
            format!("{:?}", example.server),
            format!("{:?}", default.server)
        );
        for section in [
            "[limits]",
            "[log]",
            "[engine]",
            "[engine.baseline]",
            "[respond]",
            "[respond.policy]",
            "[respond.fleet]",
            "[respond.guard]",
            "[executors.webhook]",
            "[executors.notify]",
            "[executors.notify.channels]",
            "[executors.command]",
            "[executors.signal]",
            "[executors.block_ip]",
            "[investigator]",
            "[models]",
            "# [tls]",
        ] {
            assert!(text.contains(section), "{section} missing from the example");
        }
    }

    #[test]
    fn investigator_section_is_validated() {
        let file: FileConfig = toml::from_str(
            "[investigator]\nbase_url = \"http://127.0.0.1:1/v1\"\napi_key = \"sk-live-inline\"\n",
        )
        .unwrap();
        let err = resolve(file, none()).err().map(|e| format!("{e:#}"));
        assert!(err.is_some_and(|e| e.contains("investigator.api_key")));
        let file: FileConfig = toml::from_str("[investigator]\nmin_risk = 4.0\n").unwrap();
        let r = resolve(file, none()).unwrap();
        assert_eq!(r.server.investigator.min_risk, 4.0);
        assert!(r.server.investigator.base_url.is_none());
    }
}
