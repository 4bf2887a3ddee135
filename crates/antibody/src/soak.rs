//! `antibody soak`: a long run at a fixed rate against a running server, checking that it
//! stays flat.
//!
//! Ingest goes out open loop (batch `i` at `i × batch / rate`, mixed fleet like `bench`) while
//! a poller reads the endpoints people and enforcement points read (findings, incidents,
//! blocklist, a verdict). Every `--sample-every` the server process is sampled from `/proc`
//! (RSS, descriptors, threads), with its data dir's size and the machine's load, and the
//! latencies of the window are summarised. After the run the samples past the warm-up are
//! cut into thirds and compared ([`judge`]): growth from the first third to the last beyond
//! the bounds, any failed request, or a rate the server did not keep up with fails the run.

use crate::bench::{
    body, percentile, resolve_key, send, Conn, Generator, Mix, Report, Sent, Target,
};
use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http_body_util::BodyExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Distinct pre-built bodies stop at this size; the run cycles through them.
const MAX_POOL_BYTES: usize = 64 << 20;

#[derive(clap::Args)]
pub struct SoakArgs {
    /// Base URL of the antibody server (plain HTTP).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,

    /// API key with the `admin` role (ingest and reads). Falls back to `ANTIBODY_ADMIN_KEY`,
    /// then to `<data-dir>/admin.key`.
    #[arg(long, env = "ANTIBODY_KEY", hide_env_values = true)]
    pub key: Option<String>,

    /// The server's data directory: its size is sampled, and the server's process id is read
    /// from its lock file when `--pid` is not given.
    #[arg(long, env = "ANTIBODY_DATA_DIR", default_value = "./antibody-data")]
    pub data_dir: PathBuf,

    /// Process id of the server (default: the one named in `<data-dir>/antibody.lock`).
    #[arg(long)]
    pub pid: Option<u32>,

    /// How long to send: `90s`, `10m`, `1h`.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub duration: Duration,

    /// Events per second, sent open loop (a slow server is caught up on, not waited for).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub rate: u64,

    /// Events per request.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub batch: u32,

    /// Concurrent ingest connections.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub concurrency: u16,

    /// Distinct entities the events are spread over.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub entities: u32,

    /// What the events look like (as for `bench`).
    #[arg(long, value_enum, default_value_t = Mix::Mixed)]
    pub mix: Mix,

    /// Seed of the event generator.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// Time between two samples of the server.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub sample_every: Duration,

    /// Time between two rounds of reads (each round reads every read endpoint once).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub poll_every: Duration,

    /// Samples before this are not judged (tables and caches fill first). Default: a tenth
    /// of `--duration`.
    #[arg(long, value_parser = parse_duration)]
    pub warmup: Option<Duration>,

    /// Write the time series and the summary here as JSON.
    #[arg(long)]
    pub report: Option<PathBuf>,

    /// Write the time series here as CSV, one row per sample.
    #[arg(long)]
    pub csv: Option<PathBuf>,

    /// Print the summary as one JSON object on stdout instead of text.
    #[arg(long)]
    pub json: bool,

    /// RSS may grow from the first third to the last by this percentage of the first…
    #[arg(long, default_value_t = 10.0)]
    pub max_rss_growth_pct: f64,

    /// …or by this many MiB, whichever is larger (medians of each third).
    #[arg(long, default_value_t = 32.0)]
    pub max_rss_growth_mib: f64,

    /// Open descriptors: the last third's highest may exceed the first third's lowest by this.
    #[arg(long, default_value_t = 16)]
    pub max_fd_growth: u64,

    /// Threads: the same rule as for descriptors.
    #[arg(long, default_value_t = 32)]
    pub max_thread_growth: u64,

    /// p99 latency (ingest, and reads) of the last third may be this many times the first's…
    #[arg(long, default_value_t = 3.0)]
    pub max_p99_ratio: f64,

    /// …plus this many milliseconds (so a 1 ms p99 becoming 3.5 ms is not a failure).
    #[arg(long, default_value_t = 25.0)]
    pub p99_slack_ms: f64,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    antibody_respond::duration::parse_ms(text)
        .and_then(|ms| u64::try_from(ms).ok())
        .map(Duration::from_millis)
        .ok_or_else(|| format!("{text:?} is not a duration such as 500ms, 90s, 10m or 1h"))
}

/// One sample of the server and of the window since the sample before.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Sample {
    /// Seconds since the run started.
    pub t_s: f64,
    pub rss_kib: u64,
    /// The anonymous part of the RSS (heap), without file pages.
    pub rss_anon_kib: u64,
    pub fds: u64,
    pub threads: u64,
    pub data_dir_bytes: u64,
    /// The machine's 1-minute load average (other processes share it).
    pub load1: f64,
    pub events_accepted: u64,
    pub ingest_requests: u64,
    pub ingest_p50_ms: f64,
    pub ingest_p99_ms: f64,
    pub read_requests: u64,
    pub read_p99_ms: f64,
    pub errors: u64,
    pub throttled: u64,
    /// Raw latencies of the window, pooled per third when judging; not written out.
    #[serde(skip)]
    pub ingest_ms: Vec<f64>,
    #[serde(skip)]
    pub read_ms: Vec<f64>,
}

/// What the server process looks like from `/proc`.
#[derive(Clone, Copy, Debug, Default)]
struct ProcStats {
    rss_kib: u64,
    rss_anon_kib: u64,
    threads: u64,
    fds: u64,
}

fn proc_stats(pid: u32) -> Result<ProcStats> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("the server (pid {pid}) is gone"))?;
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .with_context(|| format!("cannot list the descriptors of pid {pid}"))?
        .count() as u64;
    Ok(ProcStats {
        rss_kib: field("VmRSS:"),
        rss_anon_kib: field("RssAnon:"),
        threads: field("Threads:"),
        fds,
    })
}

/// Apparent size of everything under `dir`; files deleted during the walk are skipped.
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            Ok(_) => e.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
}

fn load1() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// The server's pid as its data dir's lock file names it (`pid 1234, ...`).
fn pid_from_lock(data_dir: &Path) -> Result<u32> {
    let path = data_dir.join("antibody.lock");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("no --pid and cannot read {}", path.display()))?;
    text.trim()
        .strip_prefix("pid ")
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("{} names no process id: {text:?}", path.display()))
}

/// What the ingest workers and the poller saw since the last sample.
#[derive(Default)]
struct Window {
    ingest_ms: Vec<f64>,
    read_ms: Vec<f64>,
    accepted: u64,
    ingest_requests: u64,
    read_requests: u64,
    errors: u64,
    throttled: u64,
    first_error: Option<String>,
}

impl Window {
    fn error(&mut self, e: String) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(e);
        }
    }
}

type Shared = Arc<Mutex<Window>>;

fn with_window(w: &Shared, f: impl FnOnce(&mut Window)) {
    // A poisoned lock only means another task panicked mid-update; the counts are still usable.
    let mut g = w.lock().unwrap_or_else(|p| p.into_inner());
    f(&mut g);
}

pub fn run(args: SoakArgs) -> Result<()> {
    let key = resolve_key(args.key.as_deref(), &args.data_dir)?;
    let pid = match args.pid {
        Some(p) => p,
        None => pid_from_lock(&args.data_dir)?,
    };
    proc_stats(pid)?;
    let target = Arc::new(Target::parse(&args.url, key, false)?);
    let pool = Arc::new(build_pool(&args)?);
    let warmup = args.warmup.unwrap_or(args.duration / 10);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let progress = progress_bar(args.duration);
    let (samples, first_error) = runtime.block_on(drive(&args, target, pool, pid, &progress))?;
    progress.finish_and_clear();
    let verdict = judge(&samples, warmup, &Bounds::from(&args));
    let summary = Summary::new(&args, pid, warmup, &samples, verdict, first_error);
    if let Some(path) = &args.report {
        let doc = serde_json::json!({ "summary": &summary, "samples": &samples });
        std::fs::write(path, serde_json::to_vec_pretty(&doc)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.csv {
        std::fs::write(path, csv(&samples))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        summary.print_text();
    }
    if !summary.verdict.flat {
        bail!("not flat: {}", summary.verdict.failures.join("; "));
    }
    Ok(())
}

fn build_pool(args: &SoakArgs) -> Result<Vec<Bytes>> {
    let batches = (args.duration.as_secs_f64() * args.rate as f64 / f64::from(args.batch)).ceil();
    let mut gen = Generator::new(args.seed, args.entities, args.mix);
    let mut pool = Vec::new();
    let mut bytes = 0usize;
    while (pool.len() as f64) < batches.max(1.0) && bytes < MAX_POOL_BYTES {
        let b = body(&mut gen, u64::from(args.batch), false)?;
        bytes += b.len();
        pool.push(b);
    }
    Ok(pool)
}

fn progress_bar(duration: Duration) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::with_draw_target(Some(duration.as_secs()), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{bar:30} {pos}/{len} s  {msg}") {
        pb.set_style(style);
    }
    pb
}

async fn drive(
    args: &SoakArgs,
    target: Arc<Target>,
    pool: Arc<Vec<Bytes>>,
    pid: u32,
    progress: &ProgressBar,
) -> Result<(Vec<Sample>, Option<String>)> {
    let window: Shared = Arc::default();
    let started = tokio::time::Instant::now();
    let end = started + args.duration;
    let every = Duration::from_secs_f64(f64::from(args.batch) / args.rate as f64);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..args.concurrency {
        let (target, pool, window, next) =
            (target.clone(), pool.clone(), window.clone(), next.clone());
        let batch = u64::from(args.batch);
        tasks.spawn(async move {
            ingest(&target, &pool, batch, &next, (started, every, end), &window).await
        });
    }
    let reads = read_paths(args.mix);
    {
        let (target, window, poll) = (target.clone(), window.clone(), args.poll_every);
        tasks.spawn(async move { poll_reads(&target, &reads, poll, end, &window).await });
    }
    let mut samples = Vec::new();
    let mut first_error = None;
    let mut tick = tokio::time::interval_at(started + args.sample_every, args.sample_every);
    let data_dir = args.data_dir.clone();
    loop {
        let now = tick.tick().await.min(end);
        let w = std::mem::take(&mut *window.lock().unwrap_or_else(|p| p.into_inner()));
        let (proc_, bytes) = {
            let dir = data_dir.clone();
            let stats = proc_stats(pid);
            (
                stats,
                tokio::task::spawn_blocking(move || dir_bytes(&dir))
                    .await
                    .unwrap_or(0),
            )
        };
        if first_error.is_none() {
            first_error = w.first_error.clone();
        }
        let proc_ = match proc_ {
            Ok(p) => p,
            Err(e) => {
                tasks.abort_all();
                return Err(e);
            }
        };
        let s = sample((now - started).as_secs_f64(), proc_, bytes, w);
        report_progress(progress, &s);
        samples.push(s);
        if now >= end {
            break;
        }
    }
    // Requests still in flight at the end are waited for, not judged.
    while tasks.join_next().await.is_some() {}
    Ok((samples, first_error))
}

fn sample(t_s: f64, p: ProcStats, data_dir_bytes: u64, mut w: Window) -> Sample {
    w.ingest_ms.sort_by(f64::total_cmp);
    w.read_ms.sort_by(f64::total_cmp);
    Sample {
        t_s: (t_s * 10.0).round() / 10.0,
        rss_kib: p.rss_kib,
        rss_anon_kib: p.rss_anon_kib,
        fds: p.fds,
        threads: p.threads,
        data_dir_bytes,
        load1: load1(),
        events_accepted: w.accepted,
        ingest_requests: w.ingest_requests,
        ingest_p50_ms: round3(percentile(&w.ingest_ms, 50.0)),
        ingest_p99_ms: round3(percentile(&w.ingest_ms, 99.0)),
        read_requests: w.read_requests,
        read_p99_ms: round3(percentile(&w.read_ms, 99.0)),
        errors: w.errors,
        throttled: w.throttled,
        ingest_ms: w.ingest_ms,
        read_ms: w.read_ms,
    }
}

fn report_progress(pb: &ProgressBar, s: &Sample) {
    let line = format!(
        "t={:.0}s rss={:.1}MiB fds={} threads={} data={:.1}MiB load={:.1} accepted={} ingest_p99={:.1}ms read_p99={:.1}ms errors={}",
        s.t_s,
        s.rss_kib as f64 / 1024.0,
        s.fds,
        s.threads,
        s.data_dir_bytes as f64 / 1048576.0,
        s.load1,
        s.events_accepted,
        s.ingest_p99_ms,
        s.read_p99_ms,
        s.errors
    );
    if pb.is_hidden() {
        eprintln!("{line}");
    } else {
        pb.set_position(s.t_s as u64);
        pb.set_message(line);
    }
}

/// The open-loop schedule: batch `i` is due at `start + i × every`, none at or after `end`.
type Schedule = (tokio::time::Instant, Duration, tokio::time::Instant);

async fn ingest(
    target: &Target,
    pool: &[Bytes],
    batch: u64,
    next: &std::sync::atomic::AtomicUsize,
    (start, every, end): Schedule,
    window: &Shared,
) {
    let mut conn: Option<Conn> = None;
    loop {
        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let due = start + every.mul_f64(i as f64);
        if due >= end || pool.is_empty() {
            return;
        }
        tokio::time::sleep_until(due).await;
        let body = pool[i % pool.len()].clone();
        loop {
            let c = match conn.take() {
                Some(c) => c,
                None => match Conn::open(&target.addr).await {
                    Ok(c) => c,
                    Err(e) => {
                        with_window(window, |w| w.error(format!("connect {}: {e}", target.addr)));
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        break;
                    }
                },
            };
            let mut r = Report::default();
            let sent = send(target, c, body.clone(), batch, &mut r).await;
            with_window(window, |w| {
                w.ingest_requests += r.requests;
                w.accepted += r.events_accepted;
                w.throttled += r.throttled;
                w.ingest_ms.extend(&r.latencies_ms);
                w.errors += r.errors;
                if w.first_error.is_none() {
                    w.first_error = r.first_error.take();
                }
            });
            match sent {
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
    }
}

/// The reads of one poll round: what analysts, dashboards and enforcement points ask.
fn read_paths(mix: Mix) -> Vec<String> {
    let entity = match mix {
        Mix::Vitals | Mix::Mixed => "agent:agent-1",
        Mix::Http => "service:web-1",
    };
    vec![
        "/v1/findings?limit=50".into(),
        "/v1/incidents?limit=50".into(),
        "/v1/blocklist".into(),
        format!("/v1/entities/{entity}/verdict"),
    ]
}

async fn poll_reads(
    target: &Target,
    paths: &[String],
    every: Duration,
    end: tokio::time::Instant,
    window: &Shared,
) {
    let mut conn: Option<Conn> = None;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while tick.tick().await < end {
        for path in paths {
            match read_once(target, &mut conn, path).await {
                Ok(ms) => with_window(window, |w| {
                    w.read_requests += 1;
                    w.read_ms.push(ms);
                }),
                Err(e) => with_window(window, |w| {
                    w.read_requests += 1;
                    w.error(format!("GET {path}: {e}"));
                }),
            }
        }
    }
}

/// One `GET` on a kept-alive connection (opened again when it broke); its latency in ms.
async fn read_once(target: &Target, conn: &mut Option<Conn>, path: &str) -> Result<f64> {
    let mut c = match conn.take() {
        Some(c) => c,
        None => Conn::open(&target.addr).await?,
    };
    c.sender.ready().await?;
    let started = Instant::now();
    let resp = c.sender.send_request(target.get(path)?).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    *conn = Some(c);
    if !status.is_success() {
        bail!(
            "HTTP {status}: {}",
            String::from_utf8_lossy(&body)
                .chars()
                .take(200)
                .collect::<String>()
        );
    }
    Ok(ms)
}

/// The limits of "flat".
#[derive(Clone, Debug, Serialize)]
pub struct Bounds {
    pub rss_growth_pct: f64,
    pub rss_growth_mib: f64,
    pub fd_growth: u64,
    pub thread_growth: u64,
    pub p99_ratio: f64,
    pub p99_slack_ms: f64,
    /// Events accepted after the warm-up, as a share of what the schedule sent in that time.
    pub min_rate_kept: f64,
    /// Events per second the schedule sends.
    pub rate: f64,
}

impl From<&SoakArgs> for Bounds {
    fn from(a: &SoakArgs) -> Self {
        Bounds {
            rss_growth_pct: a.max_rss_growth_pct,
            rss_growth_mib: a.max_rss_growth_mib,
            fd_growth: a.max_fd_growth,
            thread_growth: a.max_thread_growth,
            p99_ratio: a.max_p99_ratio,
            p99_slack_ms: a.p99_slack_ms,
            min_rate_kept: 0.95,
            rate: a.rate as f64,
        }
    }
}

/// First third against last third of the judged samples, for one quantity.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Compared {
    pub first: f64,
    pub last: f64,
    pub limit: f64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Verdict {
    pub flat: bool,
    /// Samples judged (after the warm-up).
    pub samples: usize,
    /// Median RSS of each third, MiB; `limit` is the highest last-third median allowed.
    pub rss_mib: Compared,
    /// Lowest descriptor count of the first third, highest of the last.
    pub fds: Compared,
    pub threads: Compared,
    /// p99 of all ingest requests of each third, ms.
    pub ingest_p99_ms: Compared,
    pub read_p99_ms: Compared,
    pub errors: u64,
    pub throttled: u64,
    /// Accepted events per second after the warm-up.
    pub accepted_per_s: f64,
    pub failures: Vec<String>,
}

/// Decides whether the samples at or after `warmup` are flat under `b` (see the module doc).
pub fn judge(samples: &[Sample], warmup: Duration, b: &Bounds) -> Verdict {
    let warm = warmup.as_secs_f64();
    let judged: Vec<&Sample> = samples.iter().filter(|s| s.t_s > warm).collect();
    let mut v = Verdict {
        samples: judged.len(),
        ..Verdict::default()
    };
    if judged.len() < 3 {
        v.failures.push(format!(
            "only {} samples after the warm-up; at least 3 are needed (longer --duration or shorter --sample-every)",
            judged.len()
        ));
        return v;
    }
    let third = judged.len() / 3;
    let (first, last) = (&judged[..third], &judged[judged.len() - third..]);
    let mib = |s: &&Sample| s.rss_kib as f64 / 1024.0;
    let (rss0, rss1) = (median(first.iter().map(mib)), median(last.iter().map(mib)));
    v.rss_mib = Compared {
        first: round3(rss0),
        last: round3(rss1),
        limit: round3(rss0 + (rss0 * b.rss_growth_pct / 100.0).max(b.rss_growth_mib)),
    };
    if rss1 > v.rss_mib.limit {
        v.failures.push(format!(
            "RSS grew from {:.1} MiB to {:.1} MiB (limit {:.1})",
            rss0, rss1, v.rss_mib.limit
        ));
    }
    v.fds = growth(
        "descriptors",
        first,
        last,
        |s| s.fds,
        b.fd_growth,
        &mut v.failures,
    );
    v.threads = growth(
        "threads",
        first,
        last,
        |s| s.threads,
        b.thread_growth,
        &mut v.failures,
    );
    v.ingest_p99_ms = p99_growth("ingest", first, last, |s| &s.ingest_ms, b, &mut v.failures);
    v.read_p99_ms = p99_growth("read", first, last, |s| &s.read_ms, b, &mut v.failures);
    v.errors = judged.iter().map(|s| s.errors).sum();
    v.throttled = judged.iter().map(|s| s.throttled).sum();
    if v.errors > 0 {
        v.failures
            .push(format!("{} requests failed after the warm-up", v.errors));
    }
    let span = judged.last().map_or(0.0, |s| s.t_s)
        - samples
            .iter()
            .rev()
            .find(|s| s.t_s <= warm)
            .map_or(0.0, |s| s.t_s);
    let accepted: u64 = judged.iter().map(|s| s.events_accepted).sum();
    v.accepted_per_s = round3(accepted as f64 / span.max(1e-9));
    if v.accepted_per_s < b.min_rate_kept * b.rate {
        v.failures.push(format!(
            "accepted {:.0} events/s of the {:.0} sent (below {:.0} %)",
            v.accepted_per_s,
            b.rate,
            b.min_rate_kept * 100.0
        ));
    }
    v.flat = v.failures.is_empty();
    v
}

fn growth(
    what: &str,
    first: &[&Sample],
    last: &[&Sample],
    get: impl Fn(&Sample) -> u64,
    slack: u64,
    failures: &mut Vec<String>,
) -> Compared {
    let lo = first.iter().map(|s| get(s)).min().unwrap_or(0);
    let hi = last.iter().map(|s| get(s)).max().unwrap_or(0);
    if hi > lo + slack {
        failures.push(format!("{what} grew from {lo} to {hi} (at most +{slack})"));
    }
    Compared {
        first: lo as f64,
        last: hi as f64,
        limit: (lo + slack) as f64,
    }
}

fn p99_growth(
    what: &str,
    first: &[&Sample],
    last: &[&Sample],
    get: impl Fn(&Sample) -> &Vec<f64>,
    b: &Bounds,
    failures: &mut Vec<String>,
) -> Compared {
    let p99 = |part: &[&Sample]| {
        let mut all: Vec<f64> = part.iter().flat_map(|s| get(s).iter().copied()).collect();
        all.sort_by(f64::total_cmp);
        percentile(&all, 99.0)
    };
    let (p0, p1) = (p99(first), p99(last));
    let limit = p0 * b.p99_ratio + b.p99_slack_ms;
    if p1 > limit {
        failures.push(format!(
            "{what} p99 went from {p0:.1} ms to {p1:.1} ms (limit {limit:.1})"
        ));
    }
    Compared {
        first: round3(p0),
        last: round3(p1),
        limit: round3(limit),
    }
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(f64::total_cmp);
    percentile(&v, 50.0)
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

fn csv(samples: &[Sample]) -> String {
    let mut out = String::from(
        "t_s,rss_kib,rss_anon_kib,fds,threads,data_dir_bytes,load1,events_accepted,ingest_requests,ingest_p50_ms,ingest_p99_ms,read_requests,read_p99_ms,errors,throttled\n",
    );
    for s in samples {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
            s.t_s,
            s.rss_kib,
            s.rss_anon_kib,
            s.fds,
            s.threads,
            s.data_dir_bytes,
            s.load1,
            s.events_accepted,
            s.ingest_requests,
            s.ingest_p50_ms,
            s.ingest_p99_ms,
            s.read_requests,
            s.read_p99_ms,
            s.errors,
            s.throttled
        ));
    }
    out
}

#[derive(Debug, Serialize)]
struct Summary {
    pid: u32,
    rate: u64,
    duration_s: f64,
    warmup_s: f64,
    batch: u32,
    concurrency: u16,
    entities: u32,
    bounds: Bounds,
    /// The first and the last sample (a whole-run view next to the thirds).
    first: Option<Sample>,
    last: Option<Sample>,
    load1_max: f64,
    verdict: Verdict,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_error: Option<String>,
}

impl Summary {
    fn new(
        a: &SoakArgs,
        pid: u32,
        warmup: Duration,
        samples: &[Sample],
        verdict: Verdict,
        first_error: Option<String>,
    ) -> Self {
        Summary {
            pid,
            rate: a.rate,
            duration_s: a.duration.as_secs_f64(),
            warmup_s: warmup.as_secs_f64(),
            batch: a.batch,
            concurrency: a.concurrency,
            entities: a.entities,
            bounds: Bounds::from(a),
            first: samples.first().cloned(),
            last: samples.last().cloned(),
            load1_max: samples.iter().map(|s| s.load1).fold(0.0, f64::max),
            verdict,
            first_error,
        }
    }

    fn print_text(&self) {
        let v = &self.verdict;
        println!(
            "soak: {} events/s for {:.0} s against pid {} ({} samples judged after a {:.0} s warm-up; load average up to {:.1})",
            self.rate, self.duration_s, self.pid, v.samples, self.warmup_s, self.load1_max
        );
        println!(
            "accepted: {:.0} events/s after the warm-up",
            v.accepted_per_s
        );
        let row = |name: &str, c: &Compared, unit: &str| {
            println!(
                "{name:<13} first third {:>10.1}  last third {:>10.1}  limit {:>10.1} {unit}",
                c.first, c.last, c.limit
            );
        };
        row("RSS (median)", &v.rss_mib, "MiB");
        row("descriptors", &v.fds, "");
        row("threads", &v.threads, "");
        row("ingest p99", &v.ingest_p99_ms, "ms");
        row("read p99", &v.read_p99_ms, "ms");
        if let (Some(f), Some(l)) = (&self.first, &self.last) {
            println!(
                "data dir: {:.1} MiB at {:.0} s, {:.1} MiB at {:.0} s",
                f.data_dir_bytes as f64 / 1048576.0,
                f.t_s,
                l.data_dir_bytes as f64 / 1048576.0,
                l.t_s
            );
        }
        println!("errors: {}, throttled (429): {}", v.errors, v.throttled);
        if let Some(e) = &self.first_error {
            println!("first error: {e}");
        }
        println!(
            "verdict: {}",
            if v.flat {
                "flat".to_owned()
            } else {
                format!("NOT flat: {}", v.failures.join("; "))
            }
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds() -> Bounds {
        Bounds {
            rss_growth_pct: 10.0,
            rss_growth_mib: 16.0,
            fd_growth: 16,
            thread_growth: 32,
            p99_ratio: 3.0,
            p99_slack_ms: 25.0,
            min_rate_kept: 0.95,
            rate: 1000.0,
        }
    }

    /// A 90 s run sampled every 5 s: 1,000 events/s, RSS around 100 MiB with noise, 40
    /// descriptors, latencies around 2 ms. `tweak` bends sample `i`.
    fn run(tweak: impl Fn(usize, &mut Sample)) -> Vec<Sample> {
        (1..=18)
            .map(|i| {
                let mut s = Sample {
                    t_s: i as f64 * 5.0,
                    rss_kib: 100 * 1024 + [0, 3000, 1500, 4000][i % 4],
                    fds: 40 + (i % 3) as u64,
                    threads: 20,
                    events_accepted: 5000,
                    ingest_ms: vec![1.0, 2.0, 2.5, 4.0],
                    read_ms: vec![0.5, 1.0],
                    ..Sample::default()
                };
                tweak(i, &mut s);
                s
            })
            .collect()
    }

    #[test]
    fn a_steady_run_is_flat() {
        let v = judge(&run(|_, _| {}), Duration::from_secs(10), &bounds());
        assert!(v.flat, "{:?}", v.failures);
        assert_eq!(v.samples, 16);
        assert_eq!(v.accepted_per_s, 1000.0);
    }

    #[test]
    fn a_leak_of_a_mib_per_second_is_caught() {
        let leak = |i: usize, s: &mut Sample| s.rss_kib += i as u64 * 5 * 1024;
        let v = judge(&run(leak), Duration::from_secs(10), &bounds());
        assert!(!v.flat);
        assert!(v.failures[0].starts_with("RSS grew"), "{:?}", v.failures);
    }

    #[test]
    fn a_descriptor_per_request_is_caught() {
        // 5 requests per 5 s sample, one descriptor left open by each.
        let v = judge(
            &run(|i, s| s.fds += i as u64 * 5),
            Duration::from_secs(10),
            &bounds(),
        );
        assert!(!v.flat);
        assert!(
            v.failures.iter().any(|f| f.starts_with("descriptors grew")),
            "{:?}",
            v.failures
        );
    }

    #[test]
    fn slower_answers_failures_and_a_lagging_server_are_caught() {
        let slow = run(|i, s| {
            if i > 12 {
                s.ingest_ms = vec![80.0; 4];
            }
        });
        let v = judge(&slow, Duration::from_secs(10), &bounds());
        assert!(
            v.failures.iter().any(|f| f.starts_with("ingest p99")),
            "{:?}",
            v.failures
        );
        let failing = run(|i, s| s.errors = u64::from(i == 15));
        assert!(!judge(&failing, Duration::from_secs(10), &bounds()).flat);
        let lagging = run(|_, s| s.events_accepted = 4000);
        let v = judge(&lagging, Duration::from_secs(10), &bounds());
        assert!(
            v.failures.iter().any(|f| f.starts_with("accepted 800")),
            "{:?}",
            v.failures
        );
    }

    #[test]
    fn warm_up_growth_is_not_judged_and_too_few_samples_fail() {
        let growing_early = run(|i, s| s.rss_kib += if i <= 2 { 0 } else { 200 * 1024 });
        assert!(judge(&growing_early, Duration::from_secs(10), &bounds()).flat);
        let v = judge(&run(|_, _| {}), Duration::from_secs(80), &bounds());
        assert!(
            !v.flat && v.failures[0].starts_with("only 2 samples"),
            "{:?}",
            v.failures
        );
    }

    #[test]
    fn pid_is_read_from_the_lock_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("antibody.lock"),
            "pid 4321, `antibody serve`\n",
        )
        .unwrap();
        assert_eq!(pid_from_lock(dir.path()).unwrap(), 4321);
        std::fs::write(dir.path().join("antibody.lock"), "").unwrap();
        assert!(pid_from_lock(dir.path()).is_err());
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn own_process_is_sampled() {
        let p = proc_stats(std::process::id()).unwrap();
        assert!(p.rss_kib > 0 && p.threads >= 1 && p.fds >= 3, "{p:?}");
    }
}
