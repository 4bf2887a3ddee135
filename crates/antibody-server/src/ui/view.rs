//! Shaping the API's JSON for display: plain functions, no web types.

use super::charts;
use serde_json::{json, Value};

const HOUR_MS: i64 = 3_600_000;

/// Severity order, worst first (the API's words).
const SEVERITIES: [&str; 5] = ["critical", "high", "medium", "low", "info"];

fn median(mut v: Vec<i64>) -> Option<i64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    Some(v[v.len() / 2])
}

/// A duration in milliseconds as `1 h 5 min`, `42 s`, `350 ms`.
pub fn duration(ms: i64) -> String {
    let s = ms / 1000;
    match s {
        _ if ms < 1000 => format!("{ms} ms"),
        0..=119 => format!("{s} s"),
        120..=3599 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, s / 60 % 60),
    }
}

pub fn overview(
    open: &[Value],
    pending: &[Value],
    recent: &[Value],
    postmortems: &[Value],
    now: i64,
) -> Value {
    let by_severity: Vec<Value> = SEVERITIES
        .iter()
        .map(|s| {
            let n = open.iter().filter(|i| i["severity"] == *s).count();
            json!({"severity": s, "count": n})
        })
        .collect();
    let mut top: Vec<&Value> = open.iter().collect();
    top.sort_by(|a, b| {
        let r = |v: &Value| v["risk"].as_f64().unwrap_or(0.0);
        r(b).total_cmp(&r(a))
    });
    let last_hour = recent
        .iter()
        .filter(|a| {
            a["result"]["ts"]
                .as_i64()
                .is_some_and(|ts| now - ts <= HOUR_MS)
        })
        .count();
    let times = |field: &str| {
        let v: Vec<i64> = postmortems
            .iter()
            .filter_map(|p| p["times"][field].as_i64())
            .collect();
        let n = v.len();
        json!({"median": median(v).map(duration), "n": n})
    };
    json!({
        "open": open.len(),
        "by_severity": by_severity,
        "top": top.into_iter().take(10).collect::<Vec<_>>(),
        "pending": pending.len(),
        "pending_items": pending.iter().take(5).collect::<Vec<_>>(),
        "actions_last_hour": last_hour,
        "ttd": times("time_to_detect_ms"),
        "ttr": times("time_to_respond_ms"),
        "ttrecover": times("time_to_recover_ms"),
    })
}

/// One chart per baseline: the findings' observed values of that metric over time in
/// the band mean ± k·σ.
pub fn charts(entity: &Value, findings: &[Value]) -> Value {
    let Some(baselines) = entity["baselines"].as_object() else {
        return json!([]);
    };
    baselines
        .iter()
        .map(|(metric, b)| {
            let mean = b["mean"].as_f64().unwrap_or(0.0);
            let std = b["std"].as_f64().unwrap_or(0.0);
            let mut points: Vec<(i64, f64)> = findings
                .iter()
                .filter(|f| f["evidence"]["metric"] == metric.as_str())
                .filter_map(|f| {
                    let ts = antibody_core::clock::parse_rfc3339(f["ts"].as_str()?)?;
                    Some((ts, f["evidence"]["value"].as_f64()?))
                })
                .collect();
            points.sort_by_key(|p| p.0);
            json!({
                "metric": metric,
                "mean": mean,
                "std": std,
                "n": b["n"],
                "points": points.len(),
                "svg": charts::band(&points, mean, std, super::pages::BAND_K),
            })
        })
        .collect()
}

/// A finding with its contributions as bars, largest first.
pub fn finding(mut f: Value) -> Value {
    let contributions: Vec<(String, f64)> = f["explanation"]["contributions"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_f64()?)))
                .collect()
        })
        .unwrap_or_default();
    let max = contributions
        .iter()
        .map(|(_, v)| v.abs())
        .fold(0.0_f64, f64::max);
    let mut bars: Vec<Value> = contributions
        .iter()
        .map(|(k, v)| {
            let frac = if max > 0.0 { v.abs() / max } else { 0.0 };
            json!({"feature": k, "value": v, "svg": charts::bar(frac)})
        })
        .collect();
    bars.sort_by(|a, b| {
        let m = |v: &Value| v["value"].as_f64().unwrap_or(0.0).abs();
        m(b).total_cmp(&m(a))
    });
    f["bars"] = json!(bars);
    f
}

/// Each item's document name (`tenant/mine.yml` → `mine`), for the editor's link.
pub fn with_doc_names(mut items: Vec<Value>) -> Vec<Value> {
    for i in &mut items {
        let file = i["file"].as_str().unwrap_or_default();
        let base = file.rsplit('/').next().unwrap_or(file);
        let name = base.rsplit_once('.').map_or(base, |(n, _)| n).to_owned();
        i["doc"] = json!(name);
    }
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_names_come_from_files() {
        let v = with_doc_names(vec![json!({"file": "tenant/mine.yml"}), json!({})]);
        assert_eq!(v[0]["doc"], "mine");
        assert_eq!(v[1]["doc"], "");
    }

    #[test]
    fn overview_counts_by_severity_and_hour() {
        let open = vec![
            json!({"id": "a", "severity": "high", "risk": 5.0}),
            json!({"id": "b", "severity": "high", "risk": 9.0}),
            json!({"id": "c", "severity": "low", "risk": 1.0}),
        ];
        let recent = vec![
            json!({"result": {"ts": 10_000}}),
            json!({"result": {"ts": 10_000 - 2 * HOUR_MS}}),
            json!({"result": null}),
        ];
        let pms = vec![
            json!({"times": {"time_to_detect_ms": 2000, "time_to_respond_ms": 500}}),
            json!({"times": {"time_to_detect_ms": 4000, "time_to_respond_ms": null}}),
        ];
        let v = overview(&open, &[], &recent, &pms, 10_000);
        assert_eq!(v["open"], 3);
        assert_eq!(v["by_severity"][1], json!({"severity": "high", "count": 2}));
        assert_eq!(v["top"][0]["id"], "b");
        assert_eq!(v["actions_last_hour"], 1);
        assert_eq!(v["ttd"], json!({"median": "4 s", "n": 2}));
        assert_eq!(v["ttr"], json!({"median": "500 ms", "n": 1}));
        assert_eq!(v["ttrecover"], json!({"median": null, "n": 0}));
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(duration(350), "350 ms");
        assert_eq!(duration(42_000), "42 s");
        assert_eq!(duration(125_000), "2 min 5 s");
        assert_eq!(duration(3_900_000), "1 h 5 min");
    }

    #[test]
    fn contributions_become_bars_largest_first() {
        let f = finding(json!({"explanation": {"contributions": {"a": 0.5, "b": -2.0}}}));
        assert_eq!(f["bars"][0]["feature"], "b");
        assert!(f["bars"][0]["svg"]
            .as_str()
            .unwrap()
            .contains("width=\"100.0\""));
        assert!(f["bars"][1]["svg"]
            .as_str()
            .unwrap()
            .contains("width=\"25.0\""));
        let none = finding(json!({"explanation": {"text": "x"}}));
        assert_eq!(none["bars"], json!([]));
    }
}
