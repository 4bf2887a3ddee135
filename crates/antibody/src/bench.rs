//! `antibody bench`: a load generator for `POST /v1/events`.
//!
//! Events are generated from the seed and serialised into NDJSON bodies (gzipped with
//! `--gzip`) before the clock starts, so the measurement is the server's, not the
//! generator's. To bound memory, at most [`MAX_POOL_BYTES`] of distinct bodies are built;
//! a longer run sends them again in order. Each worker owns one keep-alive HTTP/1.1
//! connection and takes the next batch from a shared counter until all are sent. A 429 is
//! retried after its `Retry-After`; other failures are counted and the batch is dropped
//! (retrying could double-count events, as bench events carry no idempotency `id`).

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, HOST, RETRY_AFTER};
use hyper::{Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use serde_json::{json, Value};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Distinct pre-built bodies stop at this size; longer runs cycle through them.
const MAX_POOL_BYTES: usize = 256 << 20;
/// Longest wait honoured from a `Retry-After`, and the wait when the header is missing.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);
const DEFAULT_RETRY_AFTER: Duration = Duration::from_millis(500);

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Base URL of the antibody server (plain HTTP); events go to `<url>/v1/events`.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,

    /// API key with the `ingest` (or `admin`) role. Falls back to `ANTIBODY_ADMIN_KEY`,
    /// then to `<data-dir>/admin.key`.
    #[arg(long, env = "ANTIBODY_KEY", hide_env_values = true)]
    pub key: Option<String>,

    /// Data directory of a local server, to read `admin.key` from when no key is given.
    #[arg(long, env = "ANTIBODY_DATA_DIR", default_value = "./antibody-data")]
    pub data_dir: PathBuf,

    /// Total number of events to send.
    #[arg(long, default_value_t = 100_000)]
    pub events: u64,

    /// Events per request.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub batch: u32,

    /// Concurrent workers, each with its own keep-alive connection.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=4096))]
    pub concurrency: u16,

    /// Distinct entities the events are spread over.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub entities: u32,

    /// Gzip the bodies (`Content-Encoding: gzip`).
    #[arg(long)]
    pub gzip: bool,

    /// What the events look like: AI-agent `vitals`, web `http` requests, or a `mixed` fleet
    /// (vitals, http, auth and net).
    #[arg(long, value_enum, default_value_t = Mix::Mixed)]
    pub mix: Mix,

    /// Seed of the event generator: the same seed sends the same bodies.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// Print the summary as one JSON object on stdout instead of text.
    #[arg(long)]
    pub json: bool,

    /// Target rate in events per second (open loop: batch i is sent at i × batch / rate);
    /// 0 sends as fast as the server accepts. Use it to measure latency at a given load.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,

    /// `ingest`: throughput and latency of `POST /v1/events`. `blocklist`: each of `--events`
    /// incidents is an SSH brute force from a fresh address (at `--rate` incidents/s, default
    /// 167 = 10,000/min); measures request sent → address served by `GET /v1/blocklist`.
    /// `syslog`: `--events` sshd lines over `--concurrency` TCP connections to `--syslog`;
    /// measures lines written → processed by the engine.
    #[arg(long, value_enum, default_value_t = Scenario::Ingest)]
    pub scenario: Scenario,

    /// The syslog listener's address (`serve --syslog-listen`), for `--scenario syslog`.
    #[arg(long, default_value = "127.0.0.1:5514")]
    pub syslog: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    Ingest,
    Blocklist,
    Syslog,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mix {
    Vitals,
    Http,
    Mixed,
}

pub fn run(args: BenchArgs) -> Result<()> {
    if args.scenario == Scenario::Syslog {
        // Anonymous /metrics has the global counters: no key needed.
        let api = Target::parse(&args.url, String::new(), false)?;
        return crate::bench_syslog::SyslogBench {
            api: &api.addr,
            syslog: &args.syslog,
            lines: args.events,
            connections: args.concurrency,
            hosts: args.entities,
            json: args.json,
        }
        .run();
    }
    let key = resolve_key(args.key.as_deref(), &args.data_dir)?;
    if args.scenario == Scenario::Blocklist {
        let target = Target::parse(&args.url, key.clone(), false)?;
        return crate::bench_respond::run(&target.addr, &key, args.events, args.rate, args.json);
    }
    let target = Target::parse(&args.url, key, args.gzip)?;
    let bodies = build_bodies(&args, MAX_POOL_BYTES)?;
    let progress = progress_bar(args.events);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let addr = target.addr.clone();
    let before = ServerStats::scrape(&addr);
    let pace =
        (args.rate > 0).then(|| Duration::from_secs_f64(f64::from(args.batch) / args.rate as f64));
    let report = runtime.block_on(drive(
        Arc::new(target),
        Arc::new(bodies),
        args.concurrency,
        pace,
        &progress,
    ));
    progress.finish_and_clear();
    let mut summary = Summary::new(&args, &report);
    if let Some(before) = before {
        summary.server =
            ServerSide::measure(&addr, &before, summary.events_accepted, report.elapsed);
    }
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        summary.print_text();
    }
    if summary.events_accepted == 0 && args.events > 0 {
        bail!(
            "no event was accepted{}",
            report
                .first_error
                .map(|e| format!(" (first error: {e})"))
                .unwrap_or_default()
        );
    }
    Ok(())
}

/// The API key for a client command: `--key`/`ANTIBODY_KEY`, else `ANTIBODY_ADMIN_KEY`, else
/// the local server's `<data-dir>/admin.key`.
pub(crate) fn resolve_key(key: Option<&str>, data_dir: &std::path::Path) -> Result<String> {
    if let Some(k) = key.filter(|k| !k.is_empty()) {
        return Ok(k.to_owned());
    }
    if let Ok(k) = std::env::var("ANTIBODY_ADMIN_KEY") {
        if !k.is_empty() {
            return Ok(k);
        }
    }
    let path = data_dir.join("admin.key");
    let key = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "no --key, ANTIBODY_KEY or ANTIBODY_ADMIN_KEY, and cannot read {}",
            path.display()
        )
    })?;
    Ok(key.trim().to_owned())
}

fn progress_bar(events: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::with_draw_target(Some(events), ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("{bar:40} {pos}/{len} events {per_sec} eta {eta}")
    {
        pb.set_style(style);
    }
    pb
}

/// Where and how requests go.
pub(crate) struct Target {
    /// `host:port` to connect to.
    pub(crate) addr: String,
    /// The `Host` header.
    authority: String,
    path: String,
    bearer: String,
    gzip: bool,
}

impl Target {
    pub(crate) fn parse(url: &str, key: String, gzip: bool) -> Result<Self> {
        let uri: Uri = url
            .parse()
            .with_context(|| format!("invalid --url {url:?}"))?;
        if uri.scheme_str() != Some("http") {
            bail!("--url must start with http:// (bench speaks plain HTTP/1.1)");
        }
        let authority = uri.authority().context("--url has no host")?;
        let port = authority.port_u16().unwrap_or(80);
        let host = authority.host();
        let base = uri.path().trim_end_matches('/');
        Ok(Self {
            addr: format!("{host}:{port}"),
            authority: authority.as_str().to_owned(),
            path: format!("{base}/v1/events"),
            bearer: format!("Bearer {key}"),
            gzip,
        })
    }

    fn request(&self, body: Bytes) -> Result<Request<Full<Bytes>>> {
        let mut req = Request::post(self.path.as_str())
            .header(HOST, self.authority.as_str())
            .header(AUTHORIZATION, self.bearer.as_str())
            .header(CONTENT_TYPE, "application/x-ndjson");
        if self.gzip {
            req = req.header(CONTENT_ENCODING, "gzip");
        }
        Ok(req.body(Full::new(body))?)
    }

    /// A `GET` of `path` (which starts with `/`) under the same base URL, with the key.
    pub(crate) fn get(&self, path: &str) -> Result<Request<Full<Bytes>>> {
        let base = self.path.strip_suffix("/v1/events").unwrap_or("");
        Ok(Request::get(format!("{base}{path}"))
            .header(HOST, self.authority.as_str())
            .header(AUTHORIZATION, self.bearer.as_str())
            .body(Full::new(Bytes::new()))?)
    }
}

/// The pre-built bodies: a pool of full batches, cycled when the run needs more than it
/// holds, and the short last batch when `--events` is not a multiple of `--batch`.
struct Bodies {
    pool: Vec<Bytes>,
    tail: Option<(Bytes, u64)>,
    full_batches: usize,
    batch: u64,
}

impl Bodies {
    /// Batch `i` of the run: its body and event count.
    fn get(&self, i: usize) -> Option<(Bytes, u64)> {
        if i < self.full_batches {
            let body = self.pool.get(i % self.pool.len().max(1))?;
            return Some((body.clone(), self.batch));
        }
        self.tail.clone().filter(|_| i == self.full_batches)
    }
}

fn build_bodies(args: &BenchArgs, max_pool_bytes: usize) -> Result<Bodies> {
    let batch = u64::from(args.batch);
    let full_batches = usize::try_from(args.events / batch).context("--events is too large")?;
    let mut gen = Generator::new(args.seed, args.entities, args.mix);
    let mut pool = Vec::new();
    let mut pool_bytes = 0usize;
    while pool.len() < full_batches && pool_bytes < max_pool_bytes {
        let body = body(&mut gen, batch, args.gzip)?;
        pool_bytes += body.len();
        pool.push(body);
    }
    let rest = args.events % batch;
    let tail = if rest > 0 {
        Some((body(&mut gen, rest, args.gzip)?, rest))
    } else {
        None
    };
    Ok(Bodies {
        pool,
        tail,
        full_batches,
        batch,
    })
}

/// One request body of `n` generated events.
pub(crate) fn body(gen: &mut Generator, n: u64, gzip_it: bool) -> Result<Bytes> {
    let mut body = Vec::with_capacity(usize::try_from(n).unwrap_or(0).saturating_mul(300));
    for _ in 0..n {
        gen.write_event(&mut body)?;
    }
    Ok(Bytes::from(if gzip_it { gzip(&body)? } else { body }))
}

fn gzip(body: &[u8]) -> Result<Vec<u8>> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(body)?;
    Ok(enc.finish()?)
}

pub use antibody_core::rng::SplitMix64;

/// Helpers the generator adds to the shared generator.
trait Pick {
    /// `base` ± `spread` (a fraction), rounded to an integer.
    fn around(&mut self, base: f64, spread: f64) -> f64;
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str;
}

impl Pick for SplitMix64 {
    fn around(&mut self, base: f64, spread: f64) -> f64 {
        (base * (1.0 + spread * (2.0 * self.unit() - 1.0))).round()
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

/// Deterministic synthetic events: each entity has a stable profile derived from its index,
/// with noise around it and rare anomalies (spikes, attack payloads, failed logins) so the
/// detectors have work to do.
pub struct Generator {
    rng: SplitMix64,
    entities: u32,
    mix: Mix,
}

const MODELS: [&str; 4] = [
    "gpt-4.1",
    "gpt-4.1-mini",
    "claude-sonnet-4",
    "llama-3.1-70b",
];
const PATHS: [&str; 6] = [
    "/",
    "/api/items",
    "/api/cart",
    "/login",
    "/search",
    "/static/app.js",
];
const AGENTS: [&str; 3] = [
    "Mozilla/5.0 (X11; Linux x86_64)",
    "curl/8.5.0",
    "python-requests/2.32",
];
const ATTACKS: [&str; 3] = [
    "q=1' OR '1'='1",
    "q=<script>alert(1)</script>",
    "file=../../../../etc/passwd",
];
const USERS: [&str; 4] = ["alice", "bob", "deploy", "root"];

impl Generator {
    pub fn new(seed: u64, entities: u32, mix: Mix) -> Self {
        Self {
            rng: SplitMix64::new(seed),
            entities: entities.max(1),
            mix,
        }
    }

    /// Appends one NDJSON line (with its newline) to `out`.
    pub fn write_event(&mut self, out: &mut Vec<u8>) -> Result<()> {
        let entity = self.rng.below(u64::from(self.entities));
        let kind = match self.mix {
            Mix::Vitals => 0,
            Mix::Http => 1,
            Mix::Mixed => self.rng.below(4),
        };
        let event = match kind {
            0 => self.vitals(entity),
            1 => self.http(entity),
            2 => self.auth(entity),
            _ => self.net(entity),
        };
        serde_json::to_writer(&mut *out, &event)?;
        out.push(b'\n');
        Ok(())
    }

    /// A rare anomaly: about one event in a thousand.
    fn anomalous(&mut self) -> bool {
        self.rng.below(1000) == 0
    }

    fn ip(&mut self, entity: u64) -> String {
        format!(
            "10.{}.{}.{}",
            (entity >> 16) & 0xff,
            (entity >> 8) & 0xff,
            entity & 0xff
        )
    }

    fn vitals(&mut self, entity: u64) -> Value {
        // Per-entity profile: some agents are chattier or slower than others.
        let base_tokens = 800.0 + (entity % 7) as f64 * 150.0;
        let spike = if self.anomalous() { 8.0 } else { 1.0 };
        let input = self.rng.around(base_tokens * 0.7 * spike, 0.1);
        let output = self.rng.around(base_tokens * 0.3, 0.15);
        let tool_calls = self.rng.below(4) as f64;
        json!({
            "entity": format!("agent:agent-{entity}"),
            "kind": "vitals",
            "metrics": {
                "latency_ms": self.rng.around(600.0 + (entity % 5) as f64 * 100.0, 0.2),
                "tokens": input + output,
                "input_tokens": input,
                "output_tokens": output,
                "tool_calls": tool_calls,
                "retries": if self.rng.below(50) == 0 { 1.0 } else { 0.0 },
                "errors": 0.0,
                "cost_usd": ((input + output) * 0.000_002 * 1e6).round() / 1e6,
            },
            "attrs": {
                "model": MODELS[(entity % MODELS.len() as u64) as usize],
                "prompt_hash": format!("{:016x}", entity.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
                "tools": "search,read_file",
            },
        })
    }

    fn http(&mut self, entity: u64) -> Value {
        let path = self.rng.pick(&PATHS);
        let query = if self.anomalous() {
            self.rng.pick(&ATTACKS)
        } else {
            "page=1"
        };
        let status = if self.rng.below(100) == 0 { 500 } else { 200 };
        let src = self.rng.below(4096);
        json!({
            "entity": format!("service:web-{entity}"),
            "kind": "http",
            "metrics": {
                "latency_ms": self.rng.around(40.0 + (entity % 3) as f64 * 20.0, 0.3),
                "bytes_out": self.rng.around(4000.0, 0.5),
            },
            "attrs": {
                "src_ip": self.ip(src),
                "method": if path == "/login" { "POST" } else { "GET" },
                "path": path,
                "query": query,
                "user_agent": self.rng.pick(&AGENTS),
                "status": status,
            },
        })
    }

    fn auth(&mut self, entity: u64) -> Value {
        let failure = self.rng.below(20) == 0 || self.anomalous();
        let src = self.rng.below(4096);
        json!({
            "entity": format!("host:srv-{entity}"),
            "kind": "auth",
            "attrs": {
                "src_ip": self.ip(src),
                "user": self.rng.pick(&USERS),
                "service": "ssh",
                "outcome": if failure { "failure" } else { "success" },
            },
        })
    }

    fn net(&mut self, entity: u64) -> Value {
        let exfil = if self.anomalous() { 200.0 } else { 1.0 };
        let dst = self.rng.below(1 << 16);
        let port = [443, 80, 5432, 6379][self.rng.below(4) as usize];
        json!({
            "entity": format!("host:srv-{entity}"),
            "kind": "net",
            "metrics": {
                "bytes_out": self.rng.around(20_000.0 * exfil, 0.4),
                "bytes_in": self.rng.around(80_000.0, 0.4),
                "packets": self.rng.around(120.0, 0.3),
            },
            "attrs": {
                "src_ip": self.ip(entity),
                "dst_ip": self.ip(dst),
                "dst_port": port,
                "proto": "TCP",
            },
        })
    }
}

/// What all workers saw.
#[derive(Debug, Default)]
pub(crate) struct Report {
    elapsed: Duration,
    pub(crate) events_sent: u64,
    pub(crate) events_accepted: u64,
    pub(crate) requests: u64,
    batches_ok: u64,
    pub(crate) throttled: u64,
    pub(crate) errors: u64,
    bytes_sent: u64,
    /// Latency of each 2xx request, in milliseconds.
    pub(crate) latencies_ms: Vec<f64>,
    pub(crate) first_error: Option<String>,
}

impl Report {
    fn merge(&mut self, other: Report) {
        self.events_sent += other.events_sent;
        self.events_accepted += other.events_accepted;
        self.requests += other.requests;
        self.batches_ok += other.batches_ok;
        self.throttled += other.throttled;
        self.errors += other.errors;
        self.bytes_sent += other.bytes_sent;
        self.latencies_ms.extend(other.latencies_ms);
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    pub(crate) fn error(&mut self, e: impl std::fmt::Display) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(e.to_string());
        }
    }
}

async fn drive(
    target: Arc<Target>,
    bodies: Arc<Bodies>,
    concurrency: u16,
    pace: Option<Duration>,
    progress: &ProgressBar,
) -> Report {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let pace = pace.map(|every| (tokio::time::Instant::from_std(started), every));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (target, bodies, next, progress) = (
            target.clone(),
            bodies.clone(),
            next.clone(),
            progress.clone(),
        );
        workers.spawn(async move { worker(&target, &bodies, &next, pace, &progress).await });
    }
    let mut report = Report::default();
    while let Some(done) = workers.join_next().await {
        match done {
            Ok(r) => report.merge(r),
            Err(e) => report.error(format!("worker failed: {e}")),
        }
    }
    report.elapsed = started.elapsed();
    report
}

/// One connection's loop: take a batch, send it (again after a 429), until none is left.
async fn worker(
    target: &Target,
    bodies: &Bodies,
    next: &AtomicUsize,
    pace: Option<(tokio::time::Instant, Duration)>,
    progress: &ProgressBar,
) -> Report {
    let mut report = Report::default();
    let mut conn: Option<Conn> = None;
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some((body, n)) = bodies.get(i) else {
            break;
        };
        if let Some((start, every)) = pace {
            tokio::time::sleep_until(start + every * i as u32).await;
        }
        loop {
            let c = match conn.take() {
                Some(c) => c,
                None => match Conn::open(&target.addr).await {
                    Ok(c) => c,
                    Err(e) => {
                        report.error(format!("connect {}: {e}", target.addr));
                        break;
                    }
                },
            };
            match send(target, c, body.clone(), n, &mut report).await {
                Sent::Done(c) => {
                    conn = c;
                    break;
                }
                Sent::Retry(c, wait) => {
                    conn = c;
                    tokio::time::sleep(wait).await;
                }
            }
        }
        progress.inc(n);
    }
    report
}

/// One keep-alive connection; the task driving it ends when it is dropped.
pub(crate) struct Conn {
    pub(crate) sender: SendRequest<Full<Bytes>>,
    driver: tokio::task::JoinHandle<()>,
}

impl Conn {
    pub(crate) async fn open(addr: &str) -> Result<Conn> {
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
        // The connection future does the socket I/O; it ends with an error only when the
        // connection breaks, which the next request on `sender` reports.
        let driver = tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Conn { sender, driver })
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

pub(crate) enum Sent {
    /// The batch is finished with (accepted, refused or lost); the connection if reusable.
    Done(Option<Conn>),
    /// Throttled: send the same batch again after the wait.
    Retry(Option<Conn>, Duration),
}

pub(crate) async fn send(
    target: &Target,
    mut conn: Conn,
    body: Bytes,
    events: u64,
    report: &mut Report,
) -> Sent {
    let len = body.len() as u64;
    let req = match target.request(body) {
        Ok(r) => r,
        Err(e) => {
            report.error(e);
            return Sent::Done(Some(conn));
        }
    };
    if let Err(e) = conn.sender.ready().await {
        report.error(format!("connection closed: {e}"));
        return Sent::Done(None);
    }
    let started = Instant::now();
    let resp = match conn.sender.send_request(req).await {
        Ok(r) => r,
        Err(e) => {
            report.error(format!("request failed: {e}"));
            return Sent::Done(None);
        }
    };
    let status = resp.status();
    let retry_after = retry_after(
        resp.headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok()),
    );
    let body = match resp.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            report.error(format!("reading the response failed: {e}"));
            return Sent::Done(None);
        }
    };
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    report.requests += 1;
    report.bytes_sent += len;
    if status == StatusCode::TOO_MANY_REQUESTS {
        report.throttled += 1;
        return Sent::Retry(Some(conn), retry_after);
    }
    report.events_sent += events;
    if !status.is_success() {
        report.error(format!(
            "HTTP {status}: {}",
            String::from_utf8_lossy(&body)
                .chars()
                .take(200)
                .collect::<String>()
        ));
        return Sent::Done(Some(conn));
    }
    match accepted_count(&body) {
        Some(accepted) => {
            report.events_accepted += accepted;
            report.batches_ok += 1;
            report.latencies_ms.push(latency_ms);
        }
        None => report.error("a 2xx response without an `accepted` count"),
    }
    Sent::Done(Some(conn))
}

/// The wait a `Retry-After` asks for (delta-seconds form; an HTTP date or garbage gets the
/// default), capped.
fn retry_after(header: Option<&str>) -> Duration {
    match header.and_then(|h| h.trim().parse::<u64>().ok()) {
        Some(s) => Duration::from_secs(s).min(MAX_RETRY_AFTER),
        None => DEFAULT_RETRY_AFTER,
    }
}

fn accepted_count(body: &[u8]) -> Option<u64> {
    serde_json::from_slice::<Value>(body)
        .ok()?
        .get("accepted")?
        .as_u64()
}

/// The `p`th percentile (0–100) of sorted values, nearest-rank; 0 when empty.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p.clamp(0.0, 100.0) / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[derive(Debug, Serialize)]
struct Latency {
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
}

/// The result, as printed (`--json` prints exactly these fields).
#[derive(Debug, Serialize)]
struct Summary {
    events: u64,
    batch: u32,
    concurrency: u16,
    gzip: bool,
    events_sent: u64,
    events_accepted: u64,
    requests: u64,
    batches_ok: u64,
    throttled: u64,
    errors: u64,
    bytes_sent: u64,
    elapsed_s: f64,
    events_per_s: f64,
    requests_per_s: f64,
    latency_ms: Latency,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_error: Option<String>,
    /// What the server's `/metrics` say about the run (absent when unreachable).
    #[serde(skip_serializing_if = "Option::is_none")]
    server: Option<ServerSide>,
}

/// The server histograms a run reports: finding visibility and event durability.
const VISIBLE: usize = 0;
const DURABLE: usize = 1;
const SYNC: usize = 2;
const HISTOGRAMS: [&str; 3] = [
    "antibody_finding_visible_latency_seconds_bucket{le=\"",
    "antibody_ingest_durable_latency_seconds_bucket{le=\"",
    "antibody_log_sync_latency_seconds_bucket{le=\"",
];

/// Counters scraped from the server's Prometheus endpoint.
#[derive(Debug, Default)]
struct ServerStats {
    processed: f64,
    /// Per histogram of [`HISTOGRAMS`]: `le` bound (seconds) → cumulative count.
    buckets: [Vec<(f64, f64)>; 3],
}

impl ServerStats {
    fn scrape(addr: &str) -> Option<ServerStats> {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(addr).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(
            s,
            "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut text = String::new();
        s.read_to_string(&mut text).ok()?;
        let mut stats = ServerStats::default();
        for line in text.lines() {
            let Some((name, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            if name == "antibody_events_processed_total" {
                stats.processed = value;
                continue;
            }
            for (i, prefix) in HISTOGRAMS.iter().enumerate() {
                if let Some(le) = name.strip_prefix(prefix) {
                    let le = le.trim_end_matches("\"}");
                    let bound = if le == "+Inf" {
                        f64::INFINITY
                    } else {
                        le.parse().ok()?
                    };
                    stats.buckets[i].push((bound, value));
                }
            }
        }
        Some(stats)
    }

    /// The bucket bound (ms) holding the 99th percentile of what histogram `i` observed since
    /// `before`, and how many observations that was.
    fn p99_since(&self, before: &ServerStats, i: usize) -> (Option<f64>, f64) {
        let deltas: Vec<(f64, f64)> = self.buckets[i]
            .iter()
            .map(|&(le, n)| {
                let was = before.buckets[i]
                    .iter()
                    .find(|b| b.0 == le)
                    .map_or(0.0, |b| b.1);
                (le, n - was)
            })
            .collect();
        let total = deltas.last().map_or(0.0, |d| d.1);
        let p99 = (total > 0.0)
            .then(|| {
                deltas
                    .iter()
                    .find(|d| d.1 >= 0.99 * total)
                    .map(|d| d.0 * 1000.0)
            })
            .flatten();
        (p99, total)
    }
}

#[derive(Debug, Serialize)]
struct ServerSide {
    /// Accepted events divided by the time until the engine had processed them all.
    processed_per_s: f64,
    /// Upper bucket bound holding the 99th percentile of "request arrived → its events
    /// fsynced" during the run (histogram resolution), in milliseconds.
    durable_p99_ms: Option<f64>,
    /// The same for one group commit's append + fdatasync of the log.
    log_sync_p99_ms: Option<f64>,
    /// Upper bucket bound holding the 99th percentile of "request arrived → its findings
    /// queryable and streamed" during the run (histogram resolution), in milliseconds.
    finding_visible_p99_ms: Option<f64>,
    findings_batches: f64,
}

impl ServerSide {
    fn measure(
        addr: &str,
        before: &ServerStats,
        accepted: u64,
        sent_in: Duration,
    ) -> Option<ServerSide> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut after = ServerStats::scrape(addr)?;
        let mut done = sent_in;
        let start = Instant::now();
        while after.processed - before.processed < accepted as f64 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
            after = ServerStats::scrape(addr)?;
            done = sent_in + start.elapsed();
        }
        let (visible, findings_batches) = after.p99_since(before, VISIBLE);
        let (durable, _) = after.p99_since(before, DURABLE);
        let (sync, _) = after.p99_since(before, SYNC);
        Some(ServerSide {
            processed_per_s: accepted as f64 / done.as_secs_f64().max(1e-9),
            durable_p99_ms: durable,
            log_sync_p99_ms: sync,
            finding_visible_p99_ms: visible,
            findings_batches,
        })
    }
}

impl Summary {
    fn new(args: &BenchArgs, r: &Report) -> Self {
        let mut lat = r.latencies_ms.clone();
        lat.sort_by(f64::total_cmp);
        let secs = r.elapsed.as_secs_f64().max(1e-9);
        let round = |v: f64| (v * 1000.0).round() / 1000.0;
        Summary {
            events: args.events,
            batch: args.batch,
            concurrency: args.concurrency,
            gzip: args.gzip,
            events_sent: r.events_sent,
            events_accepted: r.events_accepted,
            requests: r.requests,
            batches_ok: r.batches_ok,
            throttled: r.throttled,
            errors: r.errors,
            bytes_sent: r.bytes_sent,
            elapsed_s: round(secs),
            events_per_s: round(r.events_accepted as f64 / secs),
            requests_per_s: round(r.requests as f64 / secs),
            latency_ms: Latency {
                p50: round(percentile(&lat, 50.0)),
                p90: round(percentile(&lat, 90.0)),
                p99: round(percentile(&lat, 99.0)),
                max: round(lat.last().copied().unwrap_or(0.0)),
            },
            first_error: r.first_error.clone(),
            server: None,
        }
    }

    fn print_text(&self) {
        let l = &self.latency_ms;
        println!(
            "sent {} events in {} requests ({} batches accepted; batch size {}, concurrency {}{})",
            self.events_sent,
            self.requests,
            self.batches_ok,
            self.batch,
            self.concurrency,
            if self.gzip { ", gzip" } else { "" }
        );
        println!(
            "accepted {} events in {:.3} s",
            self.events_accepted, self.elapsed_s
        );
        println!(
            "throughput: {:.0} events/s, {:.1} requests/s",
            self.events_per_s, self.requests_per_s
        );
        println!(
            "batch latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
            l.p50, l.p90, l.p99, l.max
        );
        println!(
            "errors: {}, throttled (429): {}",
            self.errors, self.throttled
        );
        if let Some(sv) = &self.server {
            println!(
                "server: processed {:.0} events/s (accepted and through the engine)",
                sv.processed_per_s
            );
            if let (Some(p99), Some(sync)) = (sv.durable_p99_ms, sv.log_sync_p99_ms) {
                println!(
                    "server: events durable p99 ≤ {p99} ms (log append + fdatasync p99 ≤ {sync} ms)"
                );
            }
            if let Some(p99) = sv.finding_visible_p99_ms {
                println!(
                    "server: finding visible p99 ≤ {p99} ms over {} finding batches",
                    sv.findings_batches
                );
            }
        }
        if let Some(e) = &self.first_error {
            println!("first error: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use antibody_core::ingest::{parse_events, BodyFormat, Limits};
    use antibody_core::TenantId;

    fn generate(seed: u64, mix: Mix, n: usize) -> Vec<u8> {
        let mut g = Generator::new(seed, 50, mix);
        let mut out = Vec::new();
        for _ in 0..n {
            g.write_event(&mut out).unwrap();
        }
        out
    }

    #[test]
    fn generator_is_deterministic_per_seed() {
        assert_eq!(generate(7, Mix::Mixed, 500), generate(7, Mix::Mixed, 500));
        assert_ne!(generate(7, Mix::Mixed, 500), generate(8, Mix::Mixed, 500));
    }

    #[test]
    fn generated_events_pass_the_ingest_parser() {
        for mix in [Mix::Vitals, Mix::Http, Mix::Mixed] {
            let body = generate(3, mix, 2000);
            let batch = parse_events(
                &body,
                BodyFormat::Ndjson,
                &TenantId::new("t"),
                0,
                &Limits::default(),
            )
            .unwrap();
            assert!(
                batch.rejected.is_empty(),
                "{mix:?}: {:?}",
                batch.rejected.first()
            );
            assert_eq!(batch.events.len(), 2000);
        }
    }

    #[test]
    fn mixes_select_kinds_and_spread_entities() {
        let body = generate(1, Mix::Mixed, 4000);
        let batch = parse_events(
            &body,
            BodyFormat::Ndjson,
            &TenantId::new("t"),
            0,
            &Limits::default(),
        )
        .unwrap();
        let kinds: std::collections::BTreeSet<_> =
            batch.events.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(
            kinds.into_iter().collect::<Vec<_>>(),
            ["auth", "http", "net", "vitals"]
        );
        let entities: std::collections::HashSet<_> =
            batch.events.iter().map(|e| e.entity.as_str()).collect();
        assert!(entities.len() > 100, "{}", entities.len());
        let body = generate(1, Mix::Vitals, 100);
        let batch = parse_events(
            &body,
            BodyFormat::Ndjson,
            &TenantId::new("t"),
            0,
            &Limits::default(),
        )
        .unwrap();
        assert!(batch.events.iter().all(|e| e.kind == "vitals"));
    }

    #[test]
    fn percentile_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 90.0), 90.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert_eq!(percentile(&[5.0], 99.0), 5.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 50.0), 2.0);
    }

    fn bench_args(events: u64, batch: u32) -> BenchArgs {
        BenchArgs {
            url: "http://x".into(),
            key: None,
            data_dir: PathBuf::from("."),
            events,
            batch,
            concurrency: 1,
            entities: 10,
            gzip: false,
            mix: Mix::Http,
            seed: 1,
            json: false,
            rate: 0,
            scenario: Scenario::Ingest,
            syslog: String::new(),
        }
    }

    #[test]
    fn bodies_cover_exactly_the_requested_events() {
        let b = build_bodies(&bench_args(2500, 1000), MAX_POOL_BYTES).unwrap();
        let counts: Vec<u64> = (0..5).filter_map(|i| b.get(i)).map(|(_, n)| n).collect();
        assert_eq!(counts, [1000, 1000, 500]);
        let (body, _) = b.get(2).unwrap();
        assert_eq!(body.iter().filter(|&&c| c == b'\n').count(), 500);
    }

    #[test]
    fn a_full_pool_is_cycled() {
        let b = build_bodies(&bench_args(3000, 100), 1).unwrap();
        assert_eq!(b.pool.len(), 1);
        let sent: u64 = (0..40).filter_map(|i| b.get(i)).map(|(_, n)| n).sum();
        assert_eq!(sent, 3000);
    }

    #[test]
    fn gzip_bodies_decompress_to_ndjson() {
        let plain = generate(1, Mix::Vitals, 10);
        let mut out = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::GzDecoder::new(&gzip(&plain).unwrap()[..]),
            &mut out,
        )
        .unwrap();
        assert_eq!(out, plain);
    }

    #[test]
    fn target_from_url() {
        let t = Target::parse("http://127.0.0.1:9000/base/", "k".into(), false).unwrap();
        assert_eq!(
            (t.addr.as_str(), t.path.as_str(), t.bearer.as_str()),
            ("127.0.0.1:9000", "/base/v1/events", "Bearer k")
        );
        assert_eq!(
            Target::parse("http://localhost", "k".into(), false)
                .unwrap()
                .addr,
            "localhost:80"
        );
        assert!(Target::parse("https://x", "k".into(), false).is_err());
        assert!(Target::parse("not a url", "k".into(), false).is_err());
    }

    #[test]
    fn retry_after_header() {
        assert_eq!(retry_after(Some("2")), Duration::from_secs(2));
        assert_eq!(retry_after(Some("99999")), MAX_RETRY_AFTER);
        assert_eq!(
            retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")),
            DEFAULT_RETRY_AFTER
        );
        assert_eq!(retry_after(None), DEFAULT_RETRY_AFTER);
    }

    #[test]
    fn accepted_count_from_response() {
        assert_eq!(
            accepted_count(br#"{"accepted": 998, "rejected": []}"#),
            Some(998)
        );
        assert_eq!(accepted_count(b"oops"), None);
    }

    /// Serves one connection: answers each request with the next canned response and
    /// returns the request heads it saw.
    async fn fake_server(responses: Vec<String>) -> (String, tokio::task::JoinHandle<Vec<String>>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let (mut buf, mut heads) = (Vec::new(), Vec::new());
            for response in responses {
                let head_end = loop {
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                    let mut chunk = [0u8; 8192];
                    let n = sock.read(&mut chunk).await.unwrap();
                    assert!(n > 0, "client closed early");
                    buf.extend_from_slice(&chunk[..n]);
                };
                let head = String::from_utf8(buf[..head_end].to_vec())
                    .unwrap()
                    .to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .map_or(0, |v| v.trim().parse().unwrap());
                while buf.len() < head_end + len {
                    let mut chunk = [0u8; 8192];
                    let n = sock.read(&mut chunk).await.unwrap();
                    buf.extend_from_slice(&chunk[..n]);
                }
                buf.drain(..head_end + len);
                heads.push(head);
                sock.write_all(response.as_bytes()).await.unwrap();
            }
            heads
        });
        (addr, server)
    }

    fn accepted(n: u64) -> String {
        let body = format!(r#"{{"accepted":{n},"rejected":[]}}"#);
        format!("HTTP/1.1 202 Accepted\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}", body.len())
    }

    #[tokio::test]
    async fn retries_after_429_and_counts_what_was_accepted() {
        let throttled =
            "HTTP/1.1 429 Too Many Requests\r\nretry-after: 0\r\ncontent-length: 0\r\n\r\n"
                .to_owned();
        let (addr, server) = fake_server(vec![throttled, accepted(10), accepted(9)]).await;
        let target = Target::parse(&format!("http://{addr}"), "k-123".into(), false).unwrap();
        let bodies = build_bodies(&bench_args(20, 10), MAX_POOL_BYTES).unwrap();
        let report = drive(
            Arc::new(target),
            Arc::new(bodies),
            1,
            None,
            &ProgressBar::hidden(),
        )
        .await;
        assert_eq!(
            (
                report.requests,
                report.throttled,
                report.batches_ok,
                report.errors
            ),
            (3, 1, 2, 0)
        );
        assert_eq!((report.events_sent, report.events_accepted), (20, 19));
        assert_eq!(report.latencies_ms.len(), 2);
        let heads = server.await.unwrap();
        assert!(
            heads
                .iter()
                .all(|h| h.starts_with("post /v1/events http/1.1")),
            "{heads:?}"
        );
        assert!(heads
            .iter()
            .all(|h| h.contains("authorization: bearer k-123")));
        assert!(heads
            .iter()
            .all(|h| h.contains("content-type: application/x-ndjson")));
    }
}
