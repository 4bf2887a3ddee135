//! Prometheus metrics. Hand-rolled on atomics: the set is small and fixed, the hot path
//! only does relaxed adds, and the exporter crates pull in a second HTTP stack.

use antibody_core::TenantId;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency histogram buckets, in seconds.
const BUCKETS: [f64; 18] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1,
    0.25, 0.5, 1.0, 2.5, 5.0,
];

#[derive(Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|&b| s <= b) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_us.fetch_add(d.as_micros() as u64, Relaxed);
    }

    /// The smallest bucket bound holding quantile `q` of the observations (coarse p99).
    pub fn quantile_bound(&self, q: f64) -> Option<f64> {
        let total = self.count.load(Relaxed);
        if total == 0 {
            return None;
        }
        let want = (q * total as f64).ceil() as u64;
        let mut seen = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            seen += b.load(Relaxed);
            if seen >= want {
                return Some(BUCKETS[i]);
            }
        }
        Some(f64::INFINITY)
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cum = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            cum += b.load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{}\"}} {cum}", BUCKETS[i]);
        }
        let count = self.count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum {}", self.sum_us.load(Relaxed) as f64 / 1e6);
        let _ = writeln!(out, "{name}_count {count}");
    }
}

#[derive(Default)]
pub struct Metrics {
    pub events_accepted: AtomicU64,
    pub events_rejected: AtomicU64,
    pub events_duplicate: AtomicU64,
    pub requests_overloaded: AtomicU64,
    pub log_bytes: AtomicU64,
    pub log_next_offset: AtomicU64,
    pub queue_depth_events: AtomicU64,
    pub events_processed: AtomicU64,
    pub checkpoint_offset: AtomicU64,
    pub store_errors: AtomicU64,
    /// OTLP spans and log records received (GenAI or not).
    pub otlp_items: AtomicU64,
    /// OTLP tasks not grouped into vitals because the task table was full.
    pub otlp_tasks_untracked: AtomicU64,
    /// Syslog messages received (UDP datagrams and stream frames) and read.
    pub syslog_messages: AtomicU64,
    /// Syslog messages that could not be read (bad framing, header or values).
    pub syslog_malformed: AtomicU64,
    /// Syslog events not logged: UDP under overload, or the server stopping.
    pub syslog_dropped: AtomicU64,
    /// Engine time per event batch.
    pub detect_latency: Histogram,
    /// From the request's arrival to its findings being queryable and streamed.
    pub finding_visible_latency: Histogram,
    /// From the request's arrival to its events being fsynced (when the 202 can go out).
    pub ingest_durable_latency: Histogram,
    /// One group commit's append and fdatasync of the log.
    pub log_sync_latency: Histogram,
    /// One store transaction of engine outputs.
    pub store_write_latency: Histogram,
    /// From an incident update being stored to the action it caused being applied.
    pub action_latency: Histogram,
    /// Per tenant and kind: shown only to a key that may see the tenant (kinds name a
    /// tenant's own rules).
    findings_by_kind: Mutex<BTreeMap<(TenantId, String), u64>>,
    findings: AtomicU64,
}

impl Metrics {
    pub fn count_finding(&self, tenant: &TenantId, kind: &str) {
        self.findings.fetch_add(1, Relaxed);
        if let Ok(mut m) = self.findings_by_kind.lock() {
            match m.get_mut(&(tenant.clone(), kind.to_owned())) {
                Some(n) => *n += 1,
                None => {
                    m.insert((tenant.clone(), kind.to_owned()), 1);
                }
            }
        }
    }

    /// Findings by tenant and kind, for the tenants `visible` admits.
    pub fn render_findings(&self, out: &mut String, visible: impl Fn(&TenantId) -> bool) {
        let _ = writeln!(out, "# HELP antibody_tenant_findings_total Findings by tenant and kind.\n# TYPE antibody_tenant_findings_total counter");
        if let Ok(m) = self.findings_by_kind.lock() {
            for ((tenant, kind), n) in m.iter().filter(|((t, _), _)| visible(t)) {
                let _ = writeln!(
                    out,
                    "antibody_tenant_findings_total{{tenant=\"{}\",kind=\"{}\"}} {n}",
                    escape_label(tenant.as_str()),
                    escape_label(kind)
                );
            }
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let counters = [
            (
                "antibody_events_accepted_total",
                "Events accepted and durably logged.",
                &self.events_accepted,
            ),
            (
                "antibody_events_rejected_total",
                "Events rejected as invalid.",
                &self.events_rejected,
            ),
            (
                "antibody_events_duplicate_total",
                "Events dropped as repeats of an idempotency id.",
                &self.events_duplicate,
            ),
            (
                "antibody_requests_overloaded_total",
                "Ingest requests refused with 429.",
                &self.requests_overloaded,
            ),
            (
                "antibody_events_processed_total",
                "Events run through the engine.",
                &self.events_processed,
            ),
            (
                "antibody_store_errors_total",
                "Failed store writes (retried).",
                &self.store_errors,
            ),
            (
                "antibody_otlp_items_total",
                "OTLP spans and log records received.",
                &self.otlp_items,
            ),
            (
                "antibody_otlp_tasks_untracked_total",
                "OTLP agent tasks not grouped into vitals: the task table was full.",
                &self.otlp_tasks_untracked,
            ),
            (
                "antibody_syslog_messages_total",
                "Syslog messages received by the listener (UDP and TCP).",
                &self.syslog_messages,
            ),
            (
                "antibody_syslog_malformed_total",
                "Syslog messages or frames that could not be read.",
                &self.syslog_malformed,
            ),
            (
                "antibody_syslog_dropped_total",
                "Syslog events not logged (UDP under overload, or the server stopping).",
                &self.syslog_dropped,
            ),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Relaxed)
            );
        }
        let gauges = [
            (
                "antibody_log_bytes",
                "Bytes held by the durable log.",
                &self.log_bytes,
            ),
            (
                "antibody_log_next_offset",
                "Offset the next accepted event will get.",
                &self.log_next_offset,
            ),
            (
                "antibody_queue_depth_events",
                "Events accepted by HTTP but not yet logged.",
                &self.queue_depth_events,
            ),
            (
                "antibody_checkpoint_offset",
                "Log offset of the latest engine snapshot.",
                &self.checkpoint_offset,
            ),
        ];
        for (name, help, v) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {}",
                v.load(Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP antibody_findings_total Findings, all tenants (by tenant and kind: antibody_tenant_findings_total, with a key).\n# TYPE antibody_findings_total counter\nantibody_findings_total {}",
            self.findings.load(Relaxed)
        );
        self.detect_latency.render(
            &mut out,
            "antibody_detect_latency_seconds",
            "Engine time per event batch.",
        );
        self.action_latency.render(
            &mut out,
            "antibody_action_latency_seconds",
            "From an incident update being stored to the action it caused being applied.",
        );
        self.store_write_latency.render(
            &mut out,
            "antibody_store_write_latency_seconds",
            "One store transaction of engine outputs.",
        );
        self.finding_visible_latency.render(
            &mut out,
            "antibody_finding_visible_latency_seconds",
            "From ingest request arrival to its findings being queryable and streamed.",
        );
        self.ingest_durable_latency.render(
            &mut out,
            "antibody_ingest_durable_latency_seconds",
            "From ingest request arrival to its events being fsynced in the log.",
        );
        self.log_sync_latency.render(
            &mut out,
            "antibody_log_sync_latency_seconds",
            "One group commit: appending a batch to the log and fdatasync.",
        );
        out
    }
}

fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::default();
        m.events_accepted.fetch_add(3, Relaxed);
        let (a, b) = (TenantId::new("a"), TenantId::new("b"));
        m.count_finding(&a, "sqli");
        m.count_finding(&a, "sqli");
        m.count_finding(&b, "their_own_rule");
        m.detect_latency.observe(Duration::from_micros(300));
        let mut text = m.render();
        assert!(text.contains("antibody_events_accepted_total 3"));
        assert!(text.contains("antibody_findings_total 3\n"));
        assert!(
            !text.contains("sqli") && !text.contains("their_own_rule"),
            "{text}"
        );
        m.render_findings(&mut text, |t| *t == a);
        assert!(text.contains("antibody_tenant_findings_total{tenant=\"a\",kind=\"sqli\"} 2"));
        assert!(!text.contains("their_own_rule"), "{text}");
        assert!(text.contains("antibody_detect_latency_seconds_bucket{le=\"0.0005\"} 1"));
        assert!(text.contains("antibody_detect_latency_seconds_count 1"));
    }

    #[test]
    fn quantile_bound_is_coarse_but_right() {
        let h = Histogram::default();
        for _ in 0..99 {
            h.observe(Duration::from_micros(50));
        }
        h.observe(Duration::from_millis(40));
        assert_eq!(h.quantile_bound(0.99), Some(0.0001));
        assert_eq!(h.quantile_bound(1.0), Some(0.05));
    }
}

/// Per-model series: rows scored and reported, shadow agreement, drift (PSI per feature).
pub fn render_models(
    out: &mut String,
    stats: &std::collections::BTreeMap<
        (antibody_core::TenantId, String),
        antibody_detect::ModelStats,
    >,
) {
    use std::fmt::Write as _;
    if stats.is_empty() {
        return;
    }
    type Counter = fn(&antibody_detect::ModelStats) -> u64;
    let series: [(&str, &str, Counter); 4] = [
        (
            "antibody_model_scored_total",
            "Events a bound model scored.",
            |s| s.scored,
        ),
        (
            "antibody_model_reported_total",
            "Model findings reported.",
            |s| s.reported,
        ),
        (
            "antibody_model_review_total",
            "Low-confidence model findings queued for review.",
            |s| s.review,
        ),
        (
            "antibody_model_drift_alarms_total",
            "model_drift findings raised.",
            |s| s.drift_alarms,
        ),
    ];
    for (name, help, get) in series {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for ((tenant, id), s) in stats {
            let _ = writeln!(
                out,
                "{name}{{tenant=\"{tenant}\",model=\"{id}\"}} {}",
                get(s)
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP antibody_model_shadow_agreement Share of events a shadow model judged like the active one.\n# TYPE antibody_model_shadow_agreement gauge"
    );
    for ((tenant, id), s) in stats.iter().filter(|(_, s)| s.compared > 0) {
        let a = s.agreed as f64 / s.compared as f64;
        let _ = writeln!(
            out,
            "antibody_model_shadow_agreement{{tenant=\"{tenant}\",model=\"{id}\"}} {a}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP antibody_model_psi Population stability index of a model input against its training data (largest over partitions).\n# TYPE antibody_model_psi gauge"
    );
    for ((tenant, id), s) in stats {
        for (feature, psi) in &s.psi {
            let _ = writeln!(
                out,
                "antibody_model_psi{{tenant=\"{tenant}\",model=\"{id}\",feature=\"{}\"}} {psi}",
                escape_label(feature)
            );
        }
    }
}

#[cfg(test)]
mod model_tests {
    use super::*;

    #[test]
    fn model_series_escape_label_values() {
        let mut stats = std::collections::BTreeMap::new();
        let mut s = antibody_detect::ModelStats {
            scored: 3,
            compared: 4,
            agreed: 3,
            ..Default::default()
        };
        s.psi.insert("a\"b".to_owned(), 0.25);
        stats.insert((antibody_core::TenantId::new("t"), "m-v1".to_owned()), s);
        let mut out = String::new();
        render_models(&mut out, &stats);
        assert!(out.contains("antibody_model_scored_total{tenant=\"t\",model=\"m-v1\"} 3"));
        assert!(out.contains("antibody_model_shadow_agreement{tenant=\"t\",model=\"m-v1\"} 0.75"));
        assert!(out.contains(r#"feature="a\"b"} 0.25"#), "{out}");
    }
}
