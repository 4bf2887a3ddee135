//! The built-in `agent-behavior` feature set: 18 features from the 11 raw columns of an AI
//! agent's activity window (the Optikal schema).
//!
//! Raw counts are per observation window of `window_minutes` (1 in the Optikal data). Text
//! rows must hold finite numbers, and counts, memory and response time must not be negative.
//! Formulas (`c` = counts, `r` = per-minute rates, `h` = hour 0–23, `d` = weekday, Monday 0):
//!
//! | # | feature | formula |
//! |---|---|---|
//! | 0 | `api_calls_per_min` | `api_calls_count / window_minutes` |
//! | 1 | `errors_per_min` | `error_count / window_minutes` |
//! | 2 | `file_ops_per_min` | `file_operations_count / window_minutes` |
//! | 3 | `network_calls_per_min` | `network_calls_count / window_minutes` |
//! | 4 | `cpu` | `cpu_usage_percent / 100` |
//! | 5 | `memory_gb` | `memory_usage_mb / 1024` |
//! | 6 | `resource_intensity` | `cpu × memory_gb` |
//! | 7 | `error_rate` | `error_count / (api_calls_count + 1)` |
//! | 8 | `query_diversity` | as is (0–1) |
//! | 9 | `success_rate` | as is (0–1) |
//! | 10 | `is_night` | 1 if `0 ≤ h ≤ 6`, else 0 |
//! | 11 | `is_weekend` | 1 if `d ≥ 5`, else 0 |
//! | 12 | `hour_sin` | `sin(2π h / 24)` |
//! | 13 | `hour_cos` | `cos(2π h / 24)` |
//! | 14 | `response_time_s` | `response_time_ms / 1000` |
//! | 15 | `response_time_log` | `ln(1 + response_time_ms)` |
//! | 16 | `activity_score` | `(r_api / 100 + r_net / 50 + r_file / 10) / 3` — each rate over a busy-normal level, averaged |
//! | 17 | `suspicion_score` | `0.3 (1 − query_diversity) + 0.3 error_rate + 0.2 is_night + 0.2 (1 − success_rate)` — a hand-weighted prior |

use super::{parse_number, saturate, FieldError, RawRow};
use serde::{Deserialize, Serialize};

/// Bumped whenever a formula above changes, so old models refuse to load.
pub const FORMULA_VERSION: u32 = 1;

pub const AGENT_INPUT_COLUMNS: [&str; 11] = [
    "cpu_usage_percent",
    "memory_usage_mb",
    "network_calls_count",
    "file_operations_count",
    "api_calls_count",
    "error_count",
    "hour_of_day",
    "day_of_week",
    "query_diversity",
    "response_time_ms",
    "success_rate",
];

/// Counts, memory and response time (input positions): negative values are refused.
const NON_NEGATIVE: [usize; 6] = [1, 2, 3, 4, 5, 9];

pub const FEATURE_NAMES: [&str; 18] = [
    "api_calls_per_min",
    "errors_per_min",
    "file_ops_per_min",
    "network_calls_per_min",
    "cpu",
    "memory_gb",
    "resource_intensity",
    "error_rate",
    "query_diversity",
    "success_rate",
    "is_night",
    "is_weekend",
    "hour_sin",
    "hour_cos",
    "response_time_s",
    "response_time_log",
    "activity_score",
    "suspicion_score",
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentBehavior {
    /// Length of the window the raw counts cover.
    pub window_minutes: f64,
}

impl Default for AgentBehavior {
    fn default() -> Self {
        AgentBehavior {
            window_minutes: 1.0,
        }
    }
}

/// The 11 raw columns, typed.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct AgentRaw {
    pub cpu_usage_percent: f64,
    pub memory_usage_mb: f64,
    pub network_calls_count: f64,
    pub file_operations_count: f64,
    pub api_calls_count: f64,
    pub error_count: f64,
    pub hour_of_day: f64,
    pub day_of_week: f64,
    pub query_diversity: f64,
    pub response_time_ms: f64,
    pub success_rate: f64,
}

impl AgentRaw {
    /// In [`AGENT_INPUT_COLUMNS`] order.
    pub fn from_array(v: [f64; 11]) -> Self {
        AgentRaw {
            cpu_usage_percent: v[0],
            memory_usage_mb: v[1],
            network_calls_count: v[2],
            file_operations_count: v[3],
            api_calls_count: v[4],
            error_count: v[5],
            hour_of_day: v[6],
            day_of_week: v[7],
            query_diversity: v[8],
            response_time_ms: v[9],
            success_rate: v[10],
        }
    }

    pub fn to_array(&self) -> [f64; 11] {
        [
            self.cpu_usage_percent,
            self.memory_usage_mb,
            self.network_calls_count,
            self.file_operations_count,
            self.api_calls_count,
            self.error_count,
            self.hour_of_day,
            self.day_of_week,
            self.query_diversity,
            self.response_time_ms,
            self.success_rate,
        ]
    }
}

impl AgentBehavior {
    pub fn extract<R: RawRow + ?Sized>(&self, row: &R, out: &mut [f32]) -> Result<(), FieldError> {
        let mut v = [0.0f64; 11];
        for (i, slot) in v.iter_mut().enumerate() {
            *slot =
                parse_number(row.field(i)).map_err(|message| FieldError { input: i, message })?;
            if NON_NEGATIVE.contains(&i) && *slot < 0.0 {
                return Err(FieldError {
                    input: i,
                    message: format!("{} cannot be negative", AGENT_INPUT_COLUMNS[i]),
                });
            }
        }
        self.extract_raw(&AgentRaw::from_array(v), out);
        Ok(())
    }

    /// The typed path (generator, engine): `out.len()` must be 18.
    pub fn extract_raw(&self, raw: &AgentRaw, out: &mut [f32]) {
        let w = if self.window_minutes > 0.0 {
            self.window_minutes
        } else {
            1.0
        };
        let api = raw.api_calls_count / w;
        let errors = raw.error_count / w;
        let files = raw.file_operations_count / w;
        let net = raw.network_calls_count / w;
        let cpu = raw.cpu_usage_percent / 100.0;
        let mem_gb = raw.memory_usage_mb / 1024.0;
        let error_rate = raw.error_count / (raw.api_calls_count + 1.0);
        let h = raw.hour_of_day;
        let is_night = if (0.0..=6.0).contains(&h) { 1.0 } else { 0.0 };
        let is_weekend = if raw.day_of_week >= 5.0 { 1.0 } else { 0.0 };
        let angle = std::f64::consts::TAU * h / 24.0;
        let rt = raw.response_time_ms.max(0.0);
        let activity = (api / 100.0 + net / 50.0 + files / 10.0) / 3.0;
        let suspicion = 0.3 * (1.0 - raw.query_diversity)
            + 0.3 * error_rate
            + 0.2 * is_night
            + 0.2 * (1.0 - raw.success_rate);
        let values = [
            api,
            errors,
            files,
            net,
            cpu,
            mem_gb,
            cpu * mem_gb,
            error_rate,
            raw.query_diversity,
            raw.success_rate,
            is_night,
            is_weekend,
            angle.sin(),
            angle.cos(),
            rt / 1000.0,
            rt.ln_1p(),
            activity,
            suspicion,
        ];
        for (o, v) in out.iter_mut().zip(values) {
            *o = saturate(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_text_parses_or_errors_and_numbers_give_finite_features(
            fields in prop::collection::vec("\\PC{0,10}", 11),
            values in prop::collection::vec(0f64..1e6, 11),
        ) {
            let refs: Vec<&str> = fields.iter().map(String::as_str).collect();
            let mut out = [0f32; 18];
            let _ = AgentBehavior::default().extract(refs.as_slice(), &mut out);
            let text: Vec<String> = values.iter().map(|v| v.to_string()).collect();
            let refs: Vec<&str> = text.iter().map(String::as_str).collect();
            AgentBehavior::default().extract(refs.as_slice(), &mut out).unwrap();
            prop_assert!(out.iter().all(|v| v.is_finite()));
        }
    }

    fn sample() -> AgentRaw {
        AgentRaw::from_array([
            24.0, 512.0, 18.0, 9.0, 53.0, 2.0, 3.0, 5.0, 0.7, 100.0, 0.96,
        ])
    }

    #[test]
    fn formulas() {
        let mut out = [0f32; 18];
        AgentBehavior::default().extract_raw(&sample(), &mut out);
        let close = |a: f32, b: f64| (a as f64 - b).abs() < 1e-5;
        assert!(close(out[0], 53.0) && close(out[3], 18.0));
        assert!(close(out[4], 0.24) && close(out[5], 0.5) && close(out[6], 0.12));
        assert!(close(out[7], 2.0 / 54.0));
        assert!(close(out[10], 1.0) && close(out[11], 1.0));
        assert!(close(out[12], (std::f64::consts::TAU * 3.0 / 24.0).sin()));
        assert!(close(out[14], 0.1) && close(out[15], 101f64.ln()));
        assert!(close(out[16], (0.53 + 0.36 + 0.9) / 3.0));
        let susp = 0.3 * 0.3 + 0.3 * (2.0 / 54.0) + 0.2 + 0.2 * 0.04;
        assert!(close(out[17], susp));
    }

    #[test]
    fn numbers_beyond_f32_saturate_to_finite_features() {
        // Finite as f64, beyond f32: api_calls_per_min, cpu and cpu × memory overflow.
        let mut raw = sample();
        raw.api_calls_count = 1e39;
        raw.cpu_usage_percent = 1e300;
        let mut out = [0f32; 18];
        AgentBehavior::default().extract_raw(&raw, &mut out);
        assert!(out.iter().all(|v| v.is_finite()), "{out:?}");
        assert_eq!((out[0], out[4], out[6]), (f32::MAX, f32::MAX, f32::MAX));
        // Features the huge inputs do not reach are what the ordinary formulas give.
        let mut plain = [0f32; 18];
        AgentBehavior::default().extract_raw(&sample(), &mut plain);
        assert_eq!(out[8..16], plain[8..16]);
    }

    #[test]
    fn window_scales_rates_only() {
        let mut a = [0f32; 18];
        let mut b = [0f32; 18];
        AgentBehavior::default().extract_raw(&sample(), &mut a);
        AgentBehavior {
            window_minutes: 2.0,
        }
        .extract_raw(&sample(), &mut b);
        assert_eq!(a[0] / 2.0, b[0]);
        assert_eq!(a[7], b[7]);
    }

    #[test]
    fn text_fields_parse_or_name_the_column() {
        let fields: Vec<String> = sample().to_array().iter().map(|v| v.to_string()).collect();
        let mut refs: Vec<&str> = fields.iter().map(String::as_str).collect();
        let mut out = [0f32; 18];
        AgentBehavior::default()
            .extract(refs.as_slice(), &mut out)
            .unwrap();
        refs[5] = "-1";
        let err = AgentBehavior::default()
            .extract(refs.as_slice(), &mut out)
            .unwrap_err();
        assert!(err.message.contains("error_count cannot be negative"));
        refs[5] = "2";
        refs[4] = "lots";
        let err = AgentBehavior::default()
            .extract(refs.as_slice(), &mut out)
            .unwrap_err();
        assert_eq!(err.input, 4);
        assert!(err.message.contains("lots"));
    }
}
