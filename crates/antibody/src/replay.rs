//! `antibody replay`: the detection engine run offline over a file.
//!
//! Output contract (stdout, one JSON object per line, stable):
//! - `{"type":"finding", …}` followed by the finding's fields as `GET /v1/findings/{id}`
//!   returns them, plus `incident` once correlated;
//! - `{"type":"incident", …}` followed by the incident's fields, each time an incident is
//!   opened, updated or closed (the latest version, so one incident appears many times).
//!
//! Determinism: nothing reads the wall clock or depends on hashing order. Event offsets are
//! the 0-based index of the event in the file (a `message repeated N times` auth line counts
//! N events), NDJSON events without `ts` get `ts = offset`, the engine is ticked from event
//! time whenever it crosses a whole second, and once at the end at `last ts + correlation
//! window + 1 ms` so every incident closes. Same file and flags ⇒ byte-identical stdout.
//! The summary and progress go to stderr.

use antibody_core::ingest::{parse_events, BodyFormat, IngestError, Limits};
use antibody_core::{Event, TenantId, TimestampMs};
use antibody_detect::{Engine, EngineConfig, Outputs};
use antibody_formats::{authlog, eve, AuthLogParser, EveParser};
use antibody_rules::RuleSet;
use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};
use std::io::{self, BufRead, BufReader, IsTerminal, Read, Write};

/// The ingest limits, except that history has no "now": any timestamp a file holds is fine.
fn replay_limits() -> &'static Limits {
    static LIMITS: std::sync::OnceLock<Limits> = std::sync::OnceLock::new();
    LIMITS.get_or_init(|| Limits {
        max_future_ms: i64::MAX,
        ..Limits::default()
    })
}
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Lines longer than this are counted invalid and not parsed (the ingest API's line limit).
const MAX_LINE_BYTES: usize = 1 << 20;
/// Invalid lines reported one by one on stderr before only being counted.
const MAX_REPORTED_ERRORS: u64 = 10;

#[derive(clap::Args)]
pub struct ReplayArgs {
    /// File to replay, `-` for stdin. Gzip input (`.gz`, or gzip magic bytes) is decompressed.
    pub file: PathBuf,

    /// Input format; detected from the first non-blank line when omitted.
    /// `ndjson`: antibody events, as `POST /v1/events` takes them.
    /// `eve`: Suricata EVE JSON, one record per line.
    /// `authlog`: syslog auth lines (OpenSSH sshd, PAM, su, login, ftpd…).
    #[arg(long, value_enum)]
    pub format: Option<InputFormat>,

    /// Directory of extra YAML rule files (`*.yml`, `*.yaml`), loaded on top of the built-in
    /// default rule pack.
    #[arg(long, value_name = "DIR")]
    pub rules: Option<PathBuf>,

    /// The `antibody.toml` whose `[engine]` section (baselines, web profiles, …) the replay
    /// runs with, as `serve` does; the file's other sections are checked and not used.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Tenant the events are attributed to (engine state is kept per tenant, as in `serve`).
    #[arg(long, default_value = "default")]
    pub tenant: String,

    /// Engine partitions, as `serve` shards entities. The output is identical across runs
    /// for the same value; different values may order a tick's output differently.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub partitions: u16,

    /// Year of the first line of an `authlog` file: classic syslog timestamps carry none.
    /// A fixed default (not today's date) keeps replays reproducible; the year advances when
    /// the log crosses New Year. Times are taken as UTC.
    #[arg(long, default_value_t = 2026, value_parser = clap::value_parser!(i32).range(1970..=9999))]
    pub year: i32,

    /// Also run the response engine: every decision (assessment, action, lifecycle change,
    /// escalation…) is printed as a `{"type":"decision"}` line. Actions run through a dry-run
    /// executor: they succeed on paper and touch nothing.
    #[arg(long)]
    pub respond: bool,

    /// What-if before a rollout: replay the decisions under the default playbooks plus the
    /// ones in DIR as well as under the default playbooks alone, and print every action that
    /// would appear or disappear (`{"type":"what_if"}` lines) and a summary. Implies --respond.
    #[arg(long, value_name = "DIR")]
    pub playbooks: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum InputFormat {
    Ndjson,
    Eve,
    Authlog,
}

/// A directory named on the command line must exist: the loaders take a missing one for an
/// empty one, and a typo would replay the defaults alone (a what-if of "0 changed").
fn existing_dir<'a>(flag: &str, dir: &'a Path) -> Result<&'a Path> {
    if dir.is_dir() {
        Ok(dir)
    } else {
        bail!("{flag} {}: no such directory", dir.display())
    }
}

pub fn run(args: ReplayArgs) -> Result<()> {
    let rules = match &args.rules {
        Some(dir) => RuleSet::load_dir(existing_dir("--rules", dir)?)
            .with_context(|| format!("invalid rules in {}", dir.display()))?,
        None => RuleSet::default_pack(),
    };
    let cfg = engine_config(args.config.as_deref())?;
    let opts = Options {
        tenant: TenantId::new(&args.tenant),
        year: args.year,
        format: args.format,
    };
    let engine = Engine::new(cfg.clone(), rules, usize::from(args.partitions));
    let respond = if args.respond || args.playbooks.is_some() {
        let current = antibody_respond::PlaybookSet::default_pack()
            .map_err(|e| anyhow::anyhow!("the default playbook pack: {e}"))?;
        let candidate = match &args.playbooks {
            Some(dir) => Some(
                antibody_server::load_playbooks(existing_dir("--playbooks", dir)?)
                    .with_context(|| format!("invalid playbooks in {}", dir.display()))?,
            ),
            None => None,
        };
        Some(crate::respond_replay::Responders::new(current, candidate))
    } else {
        None
    };
    let progress = progress_bar(&args.file)?;
    let input = open_input(&args.file, &progress)?;
    let started = Instant::now();
    let mut sink = Sink::new(
        engine,
        cfg.correlation_window_ms,
        io::BufWriter::new(io::stdout().lock()),
    );
    sink.respond = respond;
    let result = replay(input, &opts, &mut sink);
    progress.finish_and_clear();
    let stats = match result {
        Err(e) if is_broken_pipe(&e) => return Ok(()),
        other => other?,
    };
    stats.print_summary(started.elapsed().as_secs_f64());
    Ok(())
}

/// The `[engine]` section of `--config`, validated as `serve` validates it.
fn engine_config(path: Option<&Path>) -> Result<EngineConfig> {
    let Some(path) = path else {
        return Ok(EngineConfig::default());
    };
    let cfg = crate::config::FileConfig::load(Some(path))?.engine;
    cfg.validate()
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(cfg)
}

/// What the replay needs besides the engine.
pub struct Options {
    pub tenant: TenantId,
    pub year: i32,
    pub format: Option<InputFormat>,
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.downcast_ref::<io::Error>()
        .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
}

fn progress_bar(path: &Path) -> Result<ProgressBar> {
    if !io::stderr().is_terminal() {
        return Ok(ProgressBar::hidden());
    }
    let len = if path == Path::new("-") {
        None
    } else {
        std::fs::metadata(path).ok().map(|m| m.len())
    };
    let pb = match len {
        Some(n) => ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stderr()).with_style(
            ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )?,
        ),
        None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()).with_style(
            ProgressStyle::with_template("{spinner} {bytes} {bytes_per_sec}")?,
        ),
    };
    Ok(pb)
}

/// The file (or stdin), counted by the progress bar, gunzipped when it starts with gzip's
/// magic bytes.
fn open_input(path: &Path, progress: &ProgressBar) -> Result<Box<dyn BufRead>> {
    let raw: Box<dyn Read> = if path == Path::new("-") {
        Box::new(io::stdin().lock())
    } else {
        Box::new(
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?,
        )
    };
    let mut reader = BufReader::with_capacity(256 << 10, progress.wrap_read(raw));
    let is_gzip = reader
        .fill_buf()
        .context("cannot read input")?
        .starts_with(&[0x1f, 0x8b]);
    if is_gzip {
        let gz = flate2::read::MultiGzDecoder::new(reader);
        return Ok(Box::new(BufReader::with_capacity(256 << 10, gz)));
    }
    Ok(Box::new(reader))
}

/// Turns one line into events in the chosen format.
enum Decoder {
    Ndjson(TenantId),
    Eve(EveParser),
    Auth(AuthLogParser),
}

/// What one line held.
enum Decoded {
    /// An event, happening `repeat` times in a row.
    Event(Event, u32),
    /// A well-formed line with nothing to detect on.
    Skipped,
}

impl Decoder {
    fn new(format: InputFormat, opts: &Options) -> Self {
        match format {
            InputFormat::Ndjson => Decoder::Ndjson(opts.tenant.clone()),
            InputFormat::Eve => Decoder::Eve(EveParser::new(opts.tenant.clone())),
            InputFormat::Authlog => {
                Decoder::Auth(AuthLogParser::new(opts.tenant.clone(), opts.year))
            }
        }
    }

    /// `offset` is the index the next event will get (its default timestamp for NDJSON).
    fn decode(&mut self, line: &[u8], offset: u64) -> Result<Decoded, String> {
        match self {
            Decoder::Ndjson(tenant) => {
                let now = TimestampMs::try_from(offset).unwrap_or(TimestampMs::MAX);
                let batch = parse_events(line, BodyFormat::Ndjson, tenant, now, replay_limits())
                    .map_err(|e| match e {
                        // One line is one item: say why it failed, not that "the body" did.
                        IngestError::NothingParseable { first_error } => first_error
                            .strip_prefix("item 0: ")
                            .map_or(first_error.clone(), str::to_owned),
                        other => other.to_string(),
                    })?;
                match (batch.events.into_iter().next(), batch.rejected.first()) {
                    (Some(ev), _) => Ok(Decoded::Event(ev, 1)),
                    (None, Some(r)) => Err(r.error.clone()),
                    (None, None) => Ok(Decoded::Skipped),
                }
            }
            Decoder::Eve(p) => match p.parse_line(&String::from_utf8_lossy(line)) {
                Ok(Some(ev)) => Ok(Decoded::Event(ev, 1)),
                Ok(None) => Ok(Decoded::Skipped),
                Err(e) => Err(e.to_string()),
            },
            Decoder::Auth(p) => match p.parse_line(&String::from_utf8_lossy(line)) {
                Ok(Some(r)) => Ok(Decoded::Event(r.event, r.repeat)),
                Ok(None) => Ok(Decoded::Skipped),
                Err(e) => Err(e.to_string()),
            },
        }
    }
}

/// The format of a file whose first non-blank line is `line`.
fn sniff(line: &[u8]) -> Option<InputFormat> {
    let text = String::from_utf8_lossy(line);
    if eve::looks_like(&text) {
        Some(InputFormat::Eve)
    } else if text.trim_start().starts_with('{') {
        Some(InputFormat::Ndjson)
    } else if authlog::looks_like(&text) {
        Some(InputFormat::Authlog)
    } else {
        None
    }
}

/// Counters for the stderr summary.
#[derive(Debug, Default)]
pub struct Stats {
    pub lines: u64,
    pub events: u64,
    pub skipped: u64,
    pub invalid: u64,
    pub findings: BTreeMap<String, u64>,
    pub incidents: u64,
    pub format: Option<InputFormat>,
}

impl Stats {
    fn print_summary(&self, elapsed_s: f64) {
        let findings: u64 = self.findings.values().sum();
        let by_kind: Vec<String> = self
            .findings
            .iter()
            .map(|(k, n)| format!("{k}={n}"))
            .collect();
        let rate = if elapsed_s > 0.0 {
            self.events as f64 / elapsed_s
        } else {
            0.0
        };
        let format = self.format.map_or("none", |f| match f {
            InputFormat::Ndjson => "ndjson",
            InputFormat::Eve => "eve",
            InputFormat::Authlog => "authlog",
        });
        eprintln!(
            "replay: format {format}; {} lines read, {} events, {} skipped, {} invalid",
            self.lines, self.events, self.skipped, self.invalid
        );
        eprintln!(
            "replay: {findings} findings [{}], {} incidents",
            by_kind.join(" "),
            self.incidents
        );
        eprintln!("replay: {elapsed_s:.3} s elapsed, {rate:.0} events/s");
    }
}

/// One line of output: a tag, then the object's own fields.
#[derive(Serialize)]
struct Tagged<'a, T> {
    #[serde(rename = "type")]
    ty: &'static str,
    #[serde(flatten)]
    item: &'a T,
}

/// The engine and where its outputs go, with the deterministic tick schedule.
pub struct Sink<W: Write> {
    engine: Engine,
    window_ms: i64,
    out: W,
    outputs: Outputs,
    next_tick: Option<TimestampMs>,
    last_ts: Option<TimestampMs>,
    seen_incidents: HashSet<String>,
    /// The response engine(s), with `--respond` / `--playbooks`.
    pub respond: Option<crate::respond_replay::Responders>,
    now: TimestampMs,
}

impl<W: Write> Sink<W> {
    pub fn new(engine: Engine, window_ms: i64, out: W) -> Self {
        Self {
            engine,
            window_ms,
            out,
            outputs: Outputs::default(),
            next_tick: None,
            last_ts: None,
            seen_incidents: HashSet::new(),
            respond: None,
            now: 0,
        }
    }

    fn event(&mut self, offset: u64, ev: &Event, stats: &mut Stats) -> Result<()> {
        if let Some(next) = self.next_tick {
            if ev.ts >= next {
                self.now = ev.ts;
                self.engine.on_tick(ev.ts, &mut self.outputs);
                self.flush(stats)?;
                if let Some(r) = &mut self.respond {
                    r.tick(ev.ts, &mut self.engine, &mut self.out)?;
                }
            }
        }
        if self.next_tick.is_none_or(|next| ev.ts >= next) {
            self.next_tick = Some(
                ev.ts
                    .div_euclid(1000)
                    .saturating_add(1)
                    .saturating_mul(1000),
            );
        }
        self.last_ts = Some(self.last_ts.map_or(ev.ts, |t| t.max(ev.ts)));
        self.now = self.now.max(ev.ts);
        self.engine.on_event(offset, ev, &mut self.outputs);
        self.flush(stats)
    }

    /// The closing tick: one correlation window after the last event, every incident closes.
    fn finish(&mut self, stats: &mut Stats) -> Result<()> {
        if let Some(last) = self.last_ts {
            let end = last.saturating_add(self.window_ms).saturating_add(1);
            self.now = end;
            self.engine.on_tick(end, &mut self.outputs);
            self.flush(stats)?;
            if let Some(r) = &mut self.respond {
                r.tick(end, &mut self.engine, &mut self.out)?;
            }
        }
        if let Some(r) = &mut self.respond {
            r.finish(&mut self.out)?;
        }
        self.out.flush()?;
        Ok(())
    }

    fn flush(&mut self, stats: &mut Stats) -> Result<()> {
        for f in &self.outputs.findings {
            *stats.findings.entry(f.kind.clone()).or_default() += 1;
            write_line(&mut self.out, "finding", f)?;
        }
        for inc in &self.outputs.incidents {
            if self.seen_incidents.insert(inc.id.clone()) {
                stats.incidents += 1;
            }
            write_line(&mut self.out, "incident", inc)?;
        }
        if let Some(r) = &mut self.respond {
            r.outputs(&self.outputs, self.now, &mut self.engine, &mut self.out)?;
        }
        self.outputs.clear();
        Ok(())
    }
}

/// Writes `item` as one tagged JSON line; I/O errors stay `io::Error`s so a closed pipe
/// can be told apart.
fn write_line<W: Write, T: Serialize>(out: &mut W, ty: &'static str, item: &T) -> io::Result<()> {
    serde_json::to_writer(&mut *out, &Tagged { ty, item })?;
    out.write_all(b"\n")
}

/// Streams `input` through the engine; returns the counters.
pub fn replay<R: BufRead, W: Write>(
    mut input: R,
    opts: &Options,
    sink: &mut Sink<W>,
) -> Result<Stats> {
    let mut stats = Stats {
        format: opts.format,
        ..Stats::default()
    };
    let mut decoder = opts.format.map(|f| Decoder::new(f, opts));
    let mut line = Vec::with_capacity(4096);
    let mut offset = 0u64;
    while let Some(complete) = read_line(&mut input, &mut line, MAX_LINE_BYTES)? {
        stats.lines += 1;
        let text = trim_line(&line);
        if text.iter().all(u8::is_ascii_whitespace) {
            stats.skipped += 1;
            continue;
        }
        if !complete {
            report_invalid(&mut stats, format!("longer than {MAX_LINE_BYTES} bytes"));
            continue;
        }
        let decoder = match &mut decoder {
            Some(d) => d,
            None => {
                let Some(format) = sniff(text) else {
                    if text.starts_with(b"[") {
                        bail!("line {} opens a JSON array; replay reads one object per line (try `jq -c '.[]'`)", stats.lines)
                    }
                    bail!(
                        "cannot tell the format from line {}; pass --format ndjson|eve|authlog",
                        stats.lines
                    )
                };
                stats.format = Some(format);
                decoder.insert(Decoder::new(format, opts))
            }
        };
        match decoder.decode(text, offset) {
            Ok(Decoded::Event(ev, repeat)) => {
                for _ in 0..repeat {
                    sink.event(offset, &ev, &mut stats)?;
                    offset += 1;
                    stats.events += 1;
                }
            }
            Ok(Decoded::Skipped) => stats.skipped += 1,
            Err(e) => report_invalid(&mut stats, e),
        }
    }
    sink.finish(&mut stats)?;
    Ok(stats)
}

fn report_invalid(stats: &mut Stats, error: String) {
    stats.invalid += 1;
    if stats.invalid <= MAX_REPORTED_ERRORS {
        eprintln!("replay: line {}: {error}", stats.lines);
    } else if stats.invalid == MAX_REPORTED_ERRORS + 1 {
        eprintln!("replay: further invalid lines are only counted");
    }
}

fn trim_line(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Reads one line into `buf` keeping at most `max` bytes of it; the rest of an over-long
/// line is consumed and dropped so a huge line cannot exhaust memory. `None` at end of
/// input, else whether the line fit.
fn read_line<R: BufRead>(input: &mut R, buf: &mut Vec<u8>, max: usize) -> io::Result<Option<bool>> {
    buf.clear();
    let mut fits = true;
    let mut read_any = false;
    loop {
        let chunk = input.fill_buf()?;
        if chunk.is_empty() {
            return Ok(read_any.then_some(fits));
        }
        read_any = true;
        let (take, done) = match memchr_newline(chunk) {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        if buf.len() + take <= max {
            buf.extend_from_slice(&chunk[..take]);
        } else {
            fits = false;
        }
        input.consume(take);
        if done {
            return Ok(Some(fits));
        }
    }
}

fn memchr_newline(chunk: &[u8]) -> Option<usize> {
    chunk.iter().position(|&b| b == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;
    use antibody_core::clock::format_rfc3339;
    use serde_json::Value;

    fn run_replay(input: &str, format: Option<InputFormat>) -> (Vec<Value>, Stats) {
        let opts = Options {
            tenant: TenantId::new("t"),
            year: 2026,
            format,
        };
        let cfg = EngineConfig::default();
        let engine = Engine::new(cfg.clone(), RuleSet::default_pack(), 2);
        let mut sink = Sink::new(engine, cfg.correlation_window_ms, Vec::new());
        let stats = replay(input.as_bytes(), &opts, &mut sink).unwrap();
        let out = String::from_utf8(sink.out).unwrap();
        (
            out.lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect(),
            stats,
        )
    }

    fn failures(n: usize, with_ts: bool) -> String {
        (0..n)
            .map(|i| {
                let ts = if with_ts { format!(r#""ts":{},"#, 1_000_000 + i * 1000) } else { String::new() };
                format!(r#"{{{ts}"entity":"host:h","kind":"auth","attrs":{{"src_ip":"192.0.2.1","user":"u","outcome":"failure"}}}}"#)
                    + "\n"
            })
            .collect()
    }

    #[test]
    fn findings_then_incident_updates_then_closing_tick() {
        let (out, stats) = run_replay(&failures(10, true), None);
        let types: Vec<&str> = out.iter().map(|v| v["type"].as_str().unwrap()).collect();
        assert_eq!(types, ["finding", "incident", "incident"]);
        assert_eq!(out[0]["kind"], "brute_force");
        assert_eq!(out[1]["status"], "open");
        assert_eq!(out[2]["status"], "resolved");
        assert_eq!(out[2]["resolution"], "quiet");
        assert_eq!(
            (stats.events, stats.incidents, stats.findings["brute_force"]),
            (10, 1, 1)
        );
        assert_eq!(stats.format, Some(InputFormat::Ndjson));
    }

    #[test]
    fn events_without_ts_are_timed_by_their_offset() {
        let (out, _) = run_replay(&format!("\n{}", failures(10, false)), None);
        assert_eq!(
            out[0]["ts"],
            format_rfc3339(9),
            "the 10th event has offset 9"
        );
    }

    #[test]
    fn counts_skipped_and_invalid_lines() {
        let input = format!("{}\n  \n{{oops\n[1]\n", failures(2, true));
        let (out, stats) = run_replay(&input, None);
        assert!(out.is_empty());
        assert_eq!(
            (stats.lines, stats.events, stats.skipped, stats.invalid),
            (6, 2, 2, 2)
        );
    }

    #[test]
    fn repeated_auth_lines_count_as_many_events() {
        let line = "Dec 10 07:13:56 LabSZ sshd[1]: message repeated 12 times: [ Failed password for root from 5.36.59.76 port 42393 ssh2]\n";
        let (out, stats) = run_replay(line, None);
        assert_eq!(
            (stats.events, stats.format),
            (12, Some(InputFormat::Authlog))
        );
        assert_eq!(out[0]["evidence"]["group"], "5.36.59.76");
    }

    #[test]
    fn unknown_format_is_an_error() {
        let opts = Options {
            tenant: TenantId::new("t"),
            year: 2026,
            format: None,
        };
        let cfg = EngineConfig::default();
        let mut sink = Sink::new(Engine::new(cfg, RuleSet::default_pack(), 1), 1, Vec::new());
        let err = replay(&b"hello\n"[..], &opts, &mut sink).unwrap_err();
        assert!(err.to_string().contains("--format"), "{err}");
    }

    #[test]
    fn sniffs_each_format() {
        assert_eq!(
            sniff(br#"{"entity":"a:b","kind":"k"}"#),
            Some(InputFormat::Ndjson)
        );
        assert_eq!(
            sniff(br#"{"timestamp":"2026-01-01T00:00:00Z","event_type":"alert"}"#),
            Some(InputFormat::Eve)
        );
        assert_eq!(
            sniff(b"Dec 10 06:55:46 LabSZ sshd[1]: x"),
            Some(InputFormat::Authlog)
        );
        assert_eq!(sniff(b"GET / HTTP/1.1"), None);
    }

    #[test]
    fn reads_lines_with_a_cap() {
        let mut input = &b"short\r\nthis line is too long\nlast"[..];
        let mut buf = Vec::new();
        assert_eq!(read_line(&mut input, &mut buf, 10).unwrap(), Some(true));
        assert_eq!(trim_line(&buf), b"short");
        assert_eq!(read_line(&mut input, &mut buf, 10).unwrap(), Some(false));
        assert_eq!(read_line(&mut input, &mut buf, 10).unwrap(), Some(true));
        assert_eq!(buf, b"last");
        assert_eq!(read_line(&mut input, &mut buf, 10).unwrap(), None);
    }
}
