//! The synthetic agent-behaviour generator: the seven Optikal scenarios, deterministic from a
//! seed, in the CSV schema of `shared/data/agent-behavior/optikal_training_data.csv`.
//!
//! Per-scenario distributions were measured on that file (per-type means, spreads, quantiles
//! and histograms: e.g. normal api calls are Poisson(50), privilege escalation is bimodal in
//! cpu/api — a recon phase then an exploitation phase — and prompt injection's response time
//! is a 70/30 mix of fast rejections and slow timeouts). The mix follows the file too:
//! 5/8 normal, 1/16 per threat scenario, behavioural drift labelled benign in its first half.
//!
//! - default: independent rows, shuffled, one hourly series per scenario (so timestamps,
//!   hour and weekday agree where the scenario follows the clock);
//! - `noise`: multiplicative measurement jitter on every metric, plus benign bursts (busy but
//!   healthy agents) and low-and-slow attacks (threats pulled halfway toward normal) as hard
//!   cases;
//! - `mixed`: per-agent sessions in time order instead; about half turn from normal to one
//!   attack at a random point (drift ramps up gradually from there), for sequence models.

use crate::features::AgentRaw;
use crate::rng::Rng;
use std::io::{self, Write};

pub const CSV_HEADER: &str = "timestamp,agent_id,cpu_usage_percent,memory_usage_mb,network_calls_count,file_operations_count,api_calls_count,error_count,hour_of_day,day_of_week,query_diversity,response_time_ms,success_rate,is_threat,threat_type,threat_severity";

/// 2026-01-01T00:00:00 UTC, in hours since the Unix epoch: timestamps start here.
const BASE_HOUR: i64 = 490_896;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scenario {
    Normal,
    CredentialAbuse,
    DataExfiltration,
    ResourceAbuse,
    BehavioralDrift,
    PromptInjection,
    PrivilegeEscalation,
}

impl Scenario {
    pub const ALL: [Scenario; 7] = [
        Scenario::Normal,
        Scenario::CredentialAbuse,
        Scenario::DataExfiltration,
        Scenario::ResourceAbuse,
        Scenario::BehavioralDrift,
        Scenario::PromptInjection,
        Scenario::PrivilegeEscalation,
    ];
    pub const THREATS: [Scenario; 6] = [
        Scenario::CredentialAbuse,
        Scenario::DataExfiltration,
        Scenario::ResourceAbuse,
        Scenario::BehavioralDrift,
        Scenario::PromptInjection,
        Scenario::PrivilegeEscalation,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Normal => "normal",
            Scenario::CredentialAbuse => "credential_abuse",
            Scenario::DataExfiltration => "data_exfiltration",
            Scenario::ResourceAbuse => "resource_abuse",
            Scenario::BehavioralDrift => "behavioral_drift",
            Scenario::PromptInjection => "prompt_injection",
            Scenario::PrivilegeEscalation => "privilege_escalation",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GenConfig {
    pub rows: usize,
    pub seed: u64,
    pub noise: bool,
    pub mixed: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GenRow {
    /// Hours since the Unix epoch.
    pub hour: i64,
    pub agent: u32,
    pub raw: AgentRaw,
    /// The labelled type: `Normal` for benign rows, including early drift.
    pub label: Scenario,
    pub severity: f64,
}

impl GenRow {
    pub fn is_threat(&self) -> bool {
        self.label != Scenario::Normal
    }
}

/// Generates exactly `cfg.rows` rows.
pub fn generate(cfg: &GenConfig) -> Vec<GenRow> {
    let mut rng = Rng::new(cfg.seed);
    let mut rows = if cfg.mixed {
        sessions(cfg.rows, &mut rng)
    } else {
        independent(cfg.rows, &mut rng)
    };
    if cfg.noise {
        for r in &mut rows {
            add_noise(r, &mut rng);
        }
    }
    rows
}

/// The Optikal mix: 10 parts normal, 1 part each threat, then shuffled.
fn independent(n: usize, rng: &mut Rng) -> Vec<GenRow> {
    let per_threat = n / 16;
    let n_normal = n - per_threat * 6;
    let mut rows = Vec::with_capacity(n);
    for s in Scenario::ALL {
        let count = if s == Scenario::Normal {
            n_normal
        } else {
            per_threat
        };
        for i in 0..count {
            let hour = BASE_HOUR + i as i64;
            let progress = i as f64 / count as f64;
            let row = sample(s, progress, hour, rng);
            // Agent pools as in the shared file: drift on 19 agents, escalation on 49.
            let pool = match s {
                Scenario::BehavioralDrift => 19,
                Scenario::PrivilegeEscalation => 49,
                _ => 99,
            };
            let agent = 1 + rng.index(pool) as u32;
            rows.push(GenRow { agent, ..row });
        }
    }
    rng.shuffle(&mut rows);
    rows
}

/// Per-agent sessions of 20–60 hourly rows; about half turn malicious part-way.
fn sessions(n: usize, rng: &mut Rng) -> Vec<GenRow> {
    let mut rows = Vec::with_capacity(n);
    let mut agent = 100u32;
    while rows.len() < n {
        let len = (20 + rng.index(41)).min(n - rows.len());
        let mut hour = BASE_HOUR + rng.index(24 * 180) as i64;
        let attack = rng
            .bernoulli(0.5)
            .then(|| Scenario::THREATS[rng.index(Scenario::THREATS.len())]);
        let turn = if attack.is_some() {
            (len as f64 * rng.uniform(0.3, 0.7)) as usize
        } else {
            len
        };
        for i in 0..len {
            let row = match attack {
                Some(s) if i >= turn => {
                    let progress = (i - turn) as f64 / (len - turn).max(1) as f64;
                    if s == Scenario::DataExfiltration {
                        hour = next_night_hour(hour, rng);
                    }
                    sample(s, progress, hour, rng)
                }
                _ => sample(Scenario::Normal, 0.0, hour, rng),
            };
            rows.push(GenRow { agent, ..row });
            hour += 1;
        }
        agent += 1;
    }
    rows
}

fn next_night_hour(hour: i64, rng: &mut Rng) -> i64 {
    if hour.rem_euclid(24) < 6 {
        return hour;
    }
    let midnight = hour - hour.rem_euclid(24) + 24;
    midnight + rng.index(6) as i64
}

fn clock(hour: i64) -> (f64, f64) {
    let h = hour.rem_euclid(24);
    // 1970-01-01 was a Thursday: weekday 3 with Monday = 0.
    let weekday = (hour.div_euclid(24) + 3).rem_euclid(7);
    (h as f64, weekday as f64)
}

fn random_clock(rng: &mut Rng) -> (f64, f64) {
    (rng.index(24) as f64, rng.index(7) as f64)
}

/// One row of scenario `s`; `progress` (0–1) is the position within the scenario's series
/// (drift factor, escalation phase).
fn sample(s: Scenario, progress: f64, hour: i64, rng: &mut Rng) -> GenRow {
    let mut label = s;
    let severity;
    let (h, d);
    let m = match s {
        Scenario::Normal => {
            (h, d) = clock(hour);
            severity = 0.0;
            DriftLaw::at(0.0).sample(rng)
        }
        Scenario::CredentialAbuse => {
            (h, d) = random_clock(rng);
            severity = rng.uniform(0.7, 1.0);
            Metrics {
                cpu: rng.normal(70.0, 15.0),
                mem: rng.normal(1024.0, 256.0),
                net: rng.poisson(200.0),
                files: rng.poisson(50.0),
                api: rng.poisson(500.0),
                errors: rng.poisson(10.0),
                diversity: rng.uniform(0.1, 0.3),
                response: rng.gamma(5.0, 100.0),
                success: rng.uniform(0.6, 0.8),
            }
        }
        Scenario::DataExfiltration => {
            // Night only: the clock's hour when the series is at night, else a random one.
            (h, d) = if hour.rem_euclid(24) < 6 {
                clock(hour)
            } else {
                (rng.index(6) as f64, rng.index(7) as f64)
            };
            severity = rng.uniform(0.8, 1.0);
            Metrics {
                cpu: rng.normal(50.0, 10.0),
                mem: rng.normal(768.0, 128.0),
                net: rng.poisson(500.0),
                files: rng.poisson(100.0),
                api: rng.poisson(300.0),
                errors: rng.poisson(5.0),
                diversity: rng.uniform(0.2, 0.4),
                response: rng.gamma(3.0, 75.0),
                success: rng.uniform(0.85, 0.95),
            }
        }
        Scenario::ResourceAbuse => {
            (h, d) = random_clock(rng);
            severity = rng.uniform(0.7, 0.95);
            Metrics {
                cpu: rng.normal(90.0, 5.0),
                mem: rng.normal(2048.0, 512.0),
                net: rng.poisson(100.0),
                files: rng.poisson(20.0),
                api: rng.poisson(1000.0),
                errors: rng.poisson(20.0),
                diversity: rng.uniform(0.15, 0.35),
                response: rng.gamma(10.0, 50.0),
                success: rng.uniform(0.5, 0.7),
            }
        }
        Scenario::BehavioralDrift => {
            (h, d) = clock(hour);
            let f = progress;
            if f <= 0.5 {
                label = Scenario::Normal;
            }
            severity = (f - 0.3).max(0.0);
            DriftLaw::at(f).sample(rng)
        }
        Scenario::PromptInjection => {
            (h, d) = random_clock(rng);
            severity = rng.uniform(0.65, 0.95);
            let response = if rng.bernoulli(0.7) {
                rng.gamma(1.0, 20.0)
            } else {
                rng.gamma(5.0, 400.0)
            };
            Metrics {
                cpu: rng.normal(35.0, 8.0),
                mem: rng.normal(600.0, 100.0),
                net: rng.poisson(80.0),
                files: rng.poisson(15.0),
                api: rng.poisson(150.0),
                errors: rng.poisson(25.0),
                diversity: rng.uniform(0.8, 1.0),
                response,
                success: rng.uniform(0.3, 0.6),
            }
        }
        Scenario::PrivilegeEscalation => {
            (h, d) = random_clock(rng);
            severity = rng.uniform(0.75, 1.0);
            escalation(progress > 0.4, rng)
        }
    };
    finish(m, h, d, hour, label, severity)
}

fn escalation(exploiting: bool, rng: &mut Rng) -> Metrics {
    let (cpu, mem, api, errors, files, diversity, success) = if exploiting {
        (
            rng.normal(75.0, 10.0),
            rng.normal(1500.0, 300.0),
            rng.poisson(200.0),
            rng.poisson(8.0),
            rng.poisson(120.0),
            rng.uniform(0.05, 0.15),
            rng.uniform(0.7, 0.9),
        )
    } else {
        (
            rng.normal(25.0, 5.0),
            rng.normal(400.0, 80.0),
            rng.poisson(400.0),
            rng.poisson(30.0),
            rng.poisson(80.0),
            rng.uniform(0.05, 0.2),
            rng.uniform(0.2, 0.45),
        )
    };
    Metrics {
        cpu,
        mem,
        net: rng.poisson(60.0),
        files,
        api,
        errors,
        diversity,
        response: rng.gamma(3.0, 80.0),
        success,
    }
}

struct Metrics {
    cpu: f64,
    mem: f64,
    net: u64,
    files: u64,
    api: u64,
    errors: u64,
    diversity: f64,
    response: f64,
    success: f64,
}

/// The law of a normal agent's row drifted by factor `f` (0 = normal, 1 = fully drifted):
/// one set of parameters for the sampler and for [`DriftLaw::log_density`], so analyses
/// that need the generator's exact densities (the Bayes floor in `examples/oracle.rs`) read
/// the same numbers the rows were drawn from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DriftLaw {
    /// Normal: (mean, sd).
    cpu: (f64, f64),
    mem: (f64, f64),
    /// Poisson means.
    net: f64,
    files: f64,
    api: f64,
    errors: f64,
    /// Uniform: [lo, hi].
    diversity: (f64, f64),
    /// Gamma: (shape, scale).
    response: (f64, f64),
    success: (f64, f64),
}

impl DriftLaw {
    pub fn at(f: f64) -> Self {
        DriftLaw {
            cpu: (30.0 + 40.0 * f, 10.0),
            mem: (512.0 + 512.0 * f, 128.0),
            net: 20.0 + (80.0 * f).floor(),
            files: 5.0 + (20.0 * f).floor(),
            api: 50.0 + (200.0 * f).floor(),
            errors: 1.0 + (5.0 * f).floor(),
            diversity: (0.6 - 0.4 * f, 0.9 - 0.5 * f),
            response: (2.0 + 5.0 * f, 50.0),
            success: (0.95 - 0.2 * f, 1.0 - 0.1 * f),
        }
    }

    fn sample(&self, rng: &mut Rng) -> Metrics {
        Metrics {
            cpu: rng.normal(self.cpu.0, self.cpu.1),
            mem: rng.normal(self.mem.0, self.mem.1),
            net: rng.poisson(self.net),
            files: rng.poisson(self.files),
            api: rng.poisson(self.api),
            errors: rng.poisson(self.errors),
            diversity: rng.uniform(self.diversity.0, self.diversity.1),
            response: rng.gamma(self.response.0, self.response.1),
            success: rng.uniform(self.success.0, self.success.1),
        }
    }

    /// ln p(row) under this law, up to terms that do not depend on `f` (the normal and gamma
    /// normalisers are kept, the counts' `ln k!` dropped); `-inf` outside a uniform's range.
    /// Ignores the clamps `finish` applies (cpu to 0–100, memory and response at 0), which a
    /// row in the law's bulk never reaches.
    pub fn log_density(&self, raw: &AgentRaw) -> f64 {
        let normal = |x: f64, (m, s): (f64, f64)| -0.5 * ((x - m) / s).powi(2) - s.ln();
        let poisson = |k: f64, lambda: f64| k * lambda.ln() - lambda;
        let uniform = |x: f64, (lo, hi): (f64, f64)| {
            if (lo..=hi).contains(&x) {
                -(hi - lo).ln()
            } else {
                f64::NEG_INFINITY
            }
        };
        let gamma = |x: f64, (k, theta): (f64, f64)| {
            if x > 0.0 {
                (k - 1.0) * x.ln() - x / theta - ln_gamma(k) - k * theta.ln()
            } else {
                f64::NEG_INFINITY
            }
        };
        normal(raw.cpu_usage_percent, self.cpu)
            + normal(raw.memory_usage_mb, self.mem)
            + poisson(raw.network_calls_count, self.net)
            + poisson(raw.file_operations_count, self.files)
            + poisson(raw.api_calls_count, self.api)
            + poisson(raw.error_count, self.errors)
            + uniform(raw.query_diversity, self.diversity)
            + gamma(raw.response_time_ms, self.response)
            + uniform(raw.success_rate, self.success)
    }
}

/// ln Γ(x) for x > 0 (Lanczos, g = 7, 9 terms: about 15 significant digits).
fn ln_gamma(x: f64) -> f64 {
    const G: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x) Γ(1 − x) = π / sin(πx).
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let t = x + 7.5;
    let sum = G[1..]
        .iter()
        .enumerate()
        .fold(G[0], |acc, (i, g)| acc + g / (x + 1.0 + i as f64));
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}

fn finish(m: Metrics, h: f64, d: f64, hour: i64, label: Scenario, severity: f64) -> GenRow {
    GenRow {
        hour,
        agent: 0,
        raw: AgentRaw {
            cpu_usage_percent: m.cpu.clamp(0.0, 100.0),
            memory_usage_mb: m.mem.max(0.0),
            network_calls_count: m.net as f64,
            file_operations_count: m.files as f64,
            api_calls_count: m.api as f64,
            error_count: m.errors as f64,
            hour_of_day: h,
            day_of_week: d,
            query_diversity: m.diversity,
            response_time_ms: m.response.max(0.0),
            success_rate: m.success,
        },
        label,
        severity,
    }
}

/// `--noise`: ±15 % log-normal jitter on every metric; 3 % of benign rows become bursts
/// (2–4× the calls of a busy healthy agent, still diverse and successful); 3 % of threats
/// become low-and-slow (their counts pulled halfway toward normal).
fn add_noise(r: &mut GenRow, rng: &mut Rng) {
    let threat = r.is_threat();
    let raw = &mut r.raw;
    if !threat && rng.bernoulli(0.03) {
        let k = rng.uniform(2.0, 4.0);
        raw.api_calls_count = (raw.api_calls_count * k).round();
        raw.network_calls_count = (raw.network_calls_count * k).round();
        raw.cpu_usage_percent = (raw.cpu_usage_percent * 1.5).min(100.0);
    } else if threat && rng.bernoulli(0.03) {
        raw.api_calls_count = ((raw.api_calls_count + 50.0) / 2.0).round();
        raw.network_calls_count = ((raw.network_calls_count + 20.0) / 2.0).round();
        raw.file_operations_count = ((raw.file_operations_count + 5.0) / 2.0).round();
    }
    let mut jitter = |v: &mut f64, integer: bool| {
        let scaled = *v * (0.15 * rng.std_normal()).exp();
        *v = if integer { scaled.round() } else { scaled };
    };
    jitter(&mut raw.cpu_usage_percent, false);
    jitter(&mut raw.memory_usage_mb, false);
    jitter(&mut raw.network_calls_count, true);
    jitter(&mut raw.file_operations_count, true);
    jitter(&mut raw.api_calls_count, true);
    jitter(&mut raw.error_count, true);
    jitter(&mut raw.response_time_ms, false);
    raw.cpu_usage_percent = raw.cpu_usage_percent.min(100.0);
    raw.query_diversity = (raw.query_diversity + 0.03 * rng.std_normal()).clamp(0.0, 1.0);
    raw.success_rate = (raw.success_rate + 0.02 * rng.std_normal()).clamp(0.0, 1.0);
}

/// Writes the rows as CSV in the shared file's schema.
pub fn write_csv(rows: &[GenRow], out: &mut impl Write) -> io::Result<()> {
    writeln!(out, "{CSV_HEADER}")?;
    for r in rows {
        let v = &r.raw;
        writeln!(
            out,
            "{},agent_{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            iso_hour(r.hour),
            r.agent,
            v.cpu_usage_percent,
            v.memory_usage_mb,
            v.network_calls_count,
            v.file_operations_count,
            v.api_calls_count,
            v.error_count,
            v.hour_of_day,
            v.day_of_week,
            v.query_diversity,
            v.response_time_ms,
            v.success_rate,
            u8::from(r.is_threat()),
            r.label.name(),
            r.severity,
        )?;
    }
    Ok(())
}

/// `YYYY-MM-DDTHH:00:00` for hours since the Unix epoch (civil-from-days, proleptic
/// Gregorian).
fn iso_hour(hour: i64) -> String {
    let days = hour.div_euclid(24);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:00:00",
        hour.rem_euclid(24)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(rows: usize, seed: u64) -> GenConfig {
        GenConfig {
            rows,
            seed,
            ..GenConfig::default()
        }
    }

    #[test]
    fn dates_and_weekdays() {
        assert_eq!(iso_hour(BASE_HOUR), "2026-01-01T00:00:00");
        assert_eq!(iso_hour(BASE_HOUR + 24 * 59 + 13), "2026-03-01T13:00:00");
        assert_eq!(iso_hour(0), "1970-01-01T00:00:00");
        // 2026-01-01 is a Thursday.
        assert_eq!(clock(BASE_HOUR), (0.0, 3.0));
    }

    #[test]
    fn ln_gamma_matches_factorials() {
        for (x, fact) in [
            (1.0, 1.0),
            (2.0, 1.0),
            (5.0, 24.0),
            (10.5, 1_133_278.388_948_441_4),
        ] {
            let want: f64 = f64::ln(fact);
            assert!((ln_gamma(x) - want).abs() < 1e-9, "{x}: {}", ln_gamma(x));
        }
        // Γ(1/2) = √π, through the reflection branch.
        assert!((ln_gamma(0.5) - std::f64::consts::PI.sqrt().ln()).abs() < 1e-12);
    }

    #[test]
    fn the_drift_density_finds_the_factor_its_rows_were_drawn_at() {
        let mut rng = Rng::new(3);
        let grid: Vec<f64> = (0..=100).map(|i| f64::from(i) / 100.0).collect();
        for f in [0.0, 0.25, 0.5, 0.8] {
            let rows: Vec<GenRow> = (0..200)
                .map(|_| sample(Scenario::BehavioralDrift, f, BASE_HOUR, &mut rng))
                .collect();
            // The maximum-likelihood factor of the whole batch.
            let best = grid
                .iter()
                .copied()
                .max_by(|&a, &b| {
                    let ll = |g: f64| -> f64 {
                        let law = DriftLaw::at(g);
                        rows.iter().map(|r| law.log_density(&r.raw)).sum()
                    };
                    ll(a).total_cmp(&ll(b))
                })
                .unwrap();
            assert!((best - f).abs() <= 0.02, "drawn at {f}, most likely {best}");
        }
        // Outside a uniform's range the row is impossible under the law.
        let mut raw = sample(Scenario::Normal, 0.0, BASE_HOUR, &mut rng).raw;
        raw.success_rate = 0.5;
        assert_eq!(DriftLaw::at(0.0).log_density(&raw), f64::NEG_INFINITY);
    }

    #[test]
    fn deterministic_sized_and_seed_sensitive() {
        let a = generate(&cfg(1000, 5));
        assert_eq!(a.len(), 1000);
        assert_eq!(a, generate(&cfg(1000, 5)));
        assert_ne!(a, generate(&cfg(1000, 6)));
        let mut csv = Vec::new();
        write_csv(&a, &mut csv).unwrap();
        let text = String::from_utf8(csv).unwrap();
        assert_eq!(text.lines().count(), 1001);
        assert!(text.starts_with(CSV_HEADER));
    }

    #[test]
    fn mix_and_scenario_signatures_match_the_shared_file() {
        let rows = generate(&cfg(16_000, 1));
        let mut by: HashMap<Scenario, Vec<&GenRow>> = HashMap::new();
        for r in &rows {
            by.entry(r.label).or_default().push(r);
        }
        assert_eq!(by[&Scenario::CredentialAbuse].len(), 1000);
        // Drift rows are labelled benign in their first half.
        let drift = by[&Scenario::BehavioralDrift].len();
        assert!((490..=510).contains(&drift), "{drift}");
        let mean = |s: Scenario, f: fn(&AgentRaw) -> f64| {
            let v = &by[&s];
            v.iter().map(|r| f(&r.raw)).sum::<f64>() / v.len() as f64
        };
        assert!((mean(Scenario::ResourceAbuse, |r| r.api_calls_count) - 1000.0).abs() < 5.0);
        assert!((mean(Scenario::DataExfiltration, |r| r.network_calls_count) - 500.0).abs() < 5.0);
        assert!(by[&Scenario::DataExfiltration]
            .iter()
            .all(|r| r.raw.hour_of_day < 6.0));
        assert!((mean(Scenario::PromptInjection, |r| r.error_count) - 25.0).abs() < 1.0);
        let pe_low_cpu = by[&Scenario::PrivilegeEscalation]
            .iter()
            .filter(|r| r.raw.cpu_usage_percent < 45.0)
            .count();
        assert!(
            (350..450).contains(&pe_low_cpu),
            "recon phase ≈ 40 %: {pe_low_cpu}"
        );
    }

    #[test]
    fn mixed_sessions_turn_from_normal_to_malicious_in_time_order() {
        let rows = generate(&GenConfig {
            rows: 3000,
            seed: 3,
            mixed: true,
            noise: true,
        });
        assert_eq!(rows.len(), 3000);
        let mut turned = 0;
        for session in rows.chunk_by(|a, b| a.agent == b.agent) {
            assert!(session.windows(2).all(|w| w[0].hour < w[1].hour));
            let first_threat = session.iter().position(GenRow::is_threat);
            if let Some(p) = first_threat {
                assert!(p > 0, "sessions start benign");
                turned += 1;
            }
        }
        assert!(turned > 10);
        assert!(rows
            .iter()
            .all(|r| (0.0..=100.0).contains(&r.raw.cpu_usage_percent)));
    }
}
