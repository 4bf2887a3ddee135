//! Measures learned web profiles with the default rule pack on public data (sources and
//! licences in shared/data/README.md): the normal training traffic of HTTP DATASET CSIC 2010
//! (Giménez, Pérez Villegas, Álvarez Marañón 2010) is split into a part to learn from and a
//! held-out part, which gives the false-positive rate; attacks are built from held-out
//! requests by placing PayloadsAllTheThings Intruder payloads and HttpParamsDataset
//! (Morzeux) anomalous values into their parameters, and by structural changes a positive
//! model must catch (hidden resources, other methods, extra or missing parameters,
//! tampered and overlong values). The benchmark's own anomalous traffic is held out from
//! this project; nothing here is tuned to it.
//!
//! Two splits: `temporal` (learn from the first 70 %, test on the last 30 %) and
//! `shuffled` (a seeded random 70/30). Rates are printed (`--nocapture`); floors are
//! asserted with margin. Skips, loudly, when the data directory is absent.
//!
//! `cargo test --release -p antibody-detect --test web_profiles_eval -- --nocapture`

use antibody_core::{Detector, Event, TenantId};
use antibody_detect::{EngineConfig, Outputs, Partition};
use antibody_formats::RawHttpReader;
use antibody_rules::RuleSet;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

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

fn gunzip(path: &PathBuf) -> Vec<u8> {
    let file = std::fs::File::open(path).unwrap();
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(file)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// A small deterministic generator (xorshift64*): the evaluation needs no crate for this.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn csic() -> Option<Vec<Event>> {
    let raw = gunzip(&data("csic-2010/normalTrafficTraining.txt.gz")?);
    let events: Vec<Event> = RawHttpReader::new(&raw)
        .filter_map(Result::ok)
        .enumerate()
        .map(|(i, r)| r.to_event(TenantId::new("default"), i as i64 * 1000))
        .collect();
    assert_eq!(
        events.len(),
        36_000,
        "the CSIC training file holds 36,000 requests"
    );
    Some(events)
}

/// `(source, payload)`: every Intruder payload (not the target word lists), at most 300
/// per category taken at an even stride, and the HttpParamsDataset test file's `anom` rows.
fn payloads() -> Option<Vec<(String, String)>> {
    let text = String::from_utf8(gunzip(&data("payloads/payloads_all.jsonl.gz")?)).unwrap();
    let mut by_cat: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["kind"] != "payload" {
            continue;
        }
        let cat = v["category"].as_str().unwrap_or("?").to_owned();
        by_cat
            .entry(cat)
            .or_default()
            .push(v["payload"].as_str().unwrap_or("").to_owned());
    }
    let mut out = Vec::new();
    for (cat, items) in by_cat {
        let stride = (items.len() / 300).max(1);
        out.extend(
            items
                .into_iter()
                .step_by(stride)
                .take(300)
                .map(|p| (cat.clone(), p)),
        );
    }
    let csv = std::fs::read_to_string(data("http-params/payload_test.csv")?).unwrap();
    let mut anom = Vec::new();
    for line in csv.lines().skip(1) {
        // `"payload","length","attack_type","label"`; payloads may hold commas and quotes.
        let Some(rest) = line.strip_suffix(",\"anom\"") else {
            continue;
        };
        let Some((rest, kind)) = rest.rsplit_once(",\"") else {
            continue;
        };
        let Some((rest, _len)) = rest.rsplit_once(",\"") else {
            continue;
        };
        let payload = rest.trim_matches('"').replace("\"\"", "\"");
        anom.push((
            format!("http-params/{}", kind.trim_end_matches('"')),
            payload,
        ));
    }
    let mut by_kind: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (kind, p) in anom {
        by_kind.entry(kind).or_default().push(p);
    }
    for (kind, items) in by_kind {
        let stride = (items.len() / 300).max(1);
        out.extend(
            items
                .into_iter()
                .step_by(stride)
                .take(300)
                .map(|p| (kind.clone(), p)),
        );
    }
    Some(out)
}

/// Escapes what would change the request's structure (separators, spaces, non-ASCII), and
/// leaves the rest as the attacker wrote it (its own `%xx` included).
fn in_query(p: &str) -> String {
    let mut out = String::new();
    for b in p.bytes() {
        match b {
            b'&' | b'#' | b'+' | b' ' | b'=' | b'?' => out.push_str(&format!("%{b:02X}")),
            0..=0x20 | 0x7f..=0xff => out.push_str(&format!("%{b:02X}")),
            _ => out.push(char::from(b)),
        }
    }
    out
}

fn attr<'a>(ev: &'a Event, k: &str) -> Option<&'a str> {
    ev.attr_str(k)
}

fn set_attr(ev: &mut Event, k: &str, v: String) {
    ev.attrs.retain(|(x, _)| x != k);
    ev.attrs
        .push((k.to_owned(), antibody_core::AttrValue::Str(v)));
}

/// Where the request carries its parameters: `query` or `body`.
fn param_field(ev: &Event) -> Option<&'static str> {
    if attr(ev, "body").is_some_and(|b| b.contains('=')) {
        Some("body")
    } else if attr(ev, "query").is_some_and(|q| q.contains('=')) {
        Some("query")
    } else {
        None
    }
}

/// Replaces (or, every other time, appends to) one parameter's value.
fn inject(ev: &Event, rng: &mut Rng, value: &str) -> Option<Event> {
    let field = param_field(ev)?;
    let text = attr(ev, field)?.trim_end().to_owned();
    let mut pairs: Vec<(String, String)> = text
        .split('&')
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_owned(), v.to_owned())
        })
        .collect();
    let i = rng.below(pairs.len());
    if rng.below(2) == 0 {
        pairs[i].1 = value.to_owned();
    } else {
        pairs[i].1.push_str(value);
    }
    let mut out = ev.clone();
    let joined: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    set_attr(&mut out, field, joined.join("&"));
    Some(out)
}

/// Structural anomalies a positive model has to catch: resources never served, methods
/// never used, extra and missing parameters, tampered and overlong values.
fn structural(ev: &Event, rng: &mut Rng) -> Option<(&'static str, Event)> {
    let mut out = ev.clone();
    let path = attr(ev, "path")?.to_owned();
    match rng.below(8) {
        0 => {
            let suffix = [
                ".bak",
                ".old",
                "~",
                ".orig",
                ".BAK",
                ".inc",
                ".txt",
                "/../WEB-INF/web.xml",
            ];
            set_attr(
                &mut out,
                "path",
                format!("{path}{}", suffix[rng.below(suffix.len())]),
            );
            Some(("hidden_resource", out))
        }
        1 => {
            let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
            let name = [
                "admin.jsp",
                "config.xml",
                "install.php",
                "backup.zip",
                "test.jsp",
                ".htaccess",
            ];
            set_attr(
                &mut out,
                "path",
                format!("{dir}/{}", name[rng.below(name.len())]),
            );
            Some(("hidden_resource", out))
        }
        2 => {
            let m = ["PUT", "DELETE", "TRACE", "OPTIONS", "PATCH"];
            set_attr(&mut out, "method", m[rng.below(m.len())].to_owned());
            Some(("method", out))
        }
        3 => {
            let field = param_field(ev).unwrap_or("query");
            let extra = [
                "debug=1",
                "admin=true",
                "role=admin",
                "cmd=ls",
                "show_source=1",
            ];
            let old = attr(ev, field).unwrap_or("").trim_end().to_owned();
            let sep = if old.is_empty() { "" } else { "&" };
            set_attr(
                &mut out,
                field,
                format!("{old}{sep}{}", extra[rng.below(extra.len())]),
            );
            Some(("extra_param", out))
        }
        4 => {
            // Tampering: a value of another shape (letters for digits and the reverse).
            let field = param_field(ev)?;
            let text = attr(ev, field)?.trim_end().to_owned();
            let mut pairs: Vec<(String, String)> = text
                .split('&')
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (k.to_owned(), v.to_owned())
                })
                .collect();
            let i = rng.below(pairs.len());
            let digits = pairs[i].1.bytes().any(|c| c.is_ascii_digit());
            pairs[i].1 = if digits {
                "abcXYZ".into()
            } else {
                "-99999999".into()
            };
            let joined: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
            set_attr(&mut out, field, joined.join("&"));
            Some(("tampered_value", out))
        }
        5 => {
            // One parameter left out.
            let field = param_field(ev)?;
            let text = attr(ev, field)?.trim_end().to_owned();
            let mut pairs: Vec<&str> = text.split('&').collect();
            pairs.remove(rng.below(pairs.len()));
            set_attr(&mut out, field, pairs.join("&"));
            Some(("missing_param", out))
        }
        6 => {
            // A number of the same shape far outside the range seen (a price of 0 or
            // 99,999,999, a negative quantity).
            let field = param_field(ev)?;
            let text = attr(ev, field)?.trim_end().to_owned();
            let mut pairs: Vec<(String, String)> = text
                .split('&')
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (k.to_owned(), v.to_owned())
                })
                .collect();
            let numeric: Vec<usize> = (0..pairs.len())
                .filter(|&i| {
                    !pairs[i].1.is_empty() && pairs[i].1.bytes().all(|c| c.is_ascii_digit())
                })
                .collect();
            if numeric.is_empty() {
                return None;
            }
            let i = numeric[rng.below(numeric.len())];
            pairs[i].1 = ["0", "99999999", "-5"][rng.below(3)].to_owned();
            let joined: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
            set_attr(&mut out, field, joined.join("&"));
            Some(("number_out_of_range", out))
        }
        _ => {
            let n = 300 + rng.below(3000);
            inject(ev, rng, &"A".repeat(n)).map(|e| ("overlong_value", e))
        }
    }
}

#[derive(Default)]
struct Tally {
    n: u64,
    by_profile: u64,
    by_rules: u64,
    by_any: u64,
}

impl Tally {
    fn add(&mut self, out: &Outputs) {
        self.n += 1;
        let profile = out.findings.iter().any(|f| f.detector == Detector::Profile);
        let rule = out.findings.iter().any(|f| f.detector.is_rule());
        self.by_profile += u64::from(profile);
        self.by_rules += u64::from(rule);
        self.by_any += u64::from(profile || rule);
    }
    fn rate(x: u64, n: u64) -> f64 {
        x as f64 / n.max(1) as f64
    }
    fn row(&self, name: &str) -> String {
        format!(
            "| {name} | {} | {:.2} % | {:.2} % | {:.2} % |",
            self.n,
            100.0 * Self::rate(self.by_rules, self.n),
            100.0 * Self::rate(self.by_profile, self.n),
            100.0 * Self::rate(self.by_any, self.n)
        )
    }
}

fn step(p: &mut Partition, offset: &mut u64, ev: &Event) -> Outputs {
    let mut out = Outputs::default();
    p.on_event(*offset, ev, &mut out);
    *offset += 1;
    out
}

struct Result_ {
    normal: Tally,
    attacks: BTreeMap<String, Tally>,
    all: Tally,
}

fn evaluate(learn: &[Event], test: &[Event], payloads: &[(String, String)], seed: u64) -> Result_ {
    let cfg = Arc::new(EngineConfig::default());
    let rules = Arc::new(RuleSet::default_pack());
    let mut p = Partition::new(cfg.clone(), rules.clone());
    let mut offset = 0;
    for ev in learn {
        step(&mut p, &mut offset, ev);
    }
    let learned = p.snapshot().unwrap();
    let mut normal = Tally::default();
    for ev in test {
        let out = step(&mut p, &mut offset, ev);
        if std::env::var_os("SHOW_FP").is_some() {
            for f in &out.findings {
                println!("FP {}: {}", f.detector, f.explanation.text);
            }
        }
        normal.add(&out);
    }
    // Attacks are judged by the profiles as they stood after learning, not after the
    // held-out normal traffic (which would be learning from the test set).
    let mut p = Partition::restore(cfg, rules, &learned).unwrap();
    let mut rng = Rng(seed);
    let (mut attacks, mut all) = (BTreeMap::<String, Tally>::new(), Tally::default());
    let with_params: Vec<&Event> = test.iter().filter(|e| param_field(e).is_some()).collect();
    for (source, payload) in payloads {
        let base = with_params[rng.below(with_params.len())];
        let Some(ev) = inject(base, &mut rng, &in_query(payload)) else {
            continue;
        };
        let out = step(&mut p, &mut offset, &ev);
        attacks.entry(source.clone()).or_default().add(&out);
        all.add(&out);
    }
    for _ in 0..1200 {
        let base = &test[rng.below(test.len())];
        let Some((kind, ev)) = structural(base, &mut rng) else {
            continue;
        };
        let out = step(&mut p, &mut offset, &ev);
        if out.findings.is_empty() && std::env::var_os("SHOW_MISSES").is_some() {
            println!(
                "MISS {kind}: {:?} {:?}",
                attr(&ev, "path"),
                attr(&ev, param_field(&ev).unwrap_or("query"))
            );
        }
        attacks
            .entry(format!("structural/{kind}"))
            .or_default()
            .add(&out);
        all.add(&out);
    }
    Result_ {
        normal,
        attacks,
        all,
    }
}

fn report(name: &str, r: &Result_) {
    println!("\nsplit `{name}`: | traffic | requests | rules | profiles | combined |");
    println!("{}", r.normal.row("held-out normal (false positives)"));
    for (k, t) in &r.attacks {
        println!("{}", t.row(k));
    }
    println!("{}", r.all.row("all attacks (detection)"));
}

#[test]
fn profiles_with_rules_detect_attacks_on_held_out_traffic() {
    let (Some(events), Some(payloads)) = (csic(), payloads()) else {
        return;
    };
    let cut = events.len() * 7 / 10;
    let temporal = evaluate(&events[..cut], &events[cut..], &payloads, 7);
    report("temporal", &temporal);

    let mut shuffled = events.clone();
    let mut rng = Rng(0x5eed);
    for i in (1..shuffled.len()).rev() {
        shuffled.swap(i, rng.below(i + 1));
    }
    for (i, ev) in shuffled.iter_mut().enumerate() {
        ev.ts = i as i64 * 1000;
    }
    let random = evaluate(&shuffled[..cut], &shuffled[cut..], &payloads, 11);
    report("shuffled", &random);

    for r in [&temporal, &random] {
        let fp = Tally::rate(r.normal.by_any, r.normal.n);
        let det = Tally::rate(r.all.by_any, r.all.n);
        assert!(fp <= 0.01, "false positives {:.2} %", fp * 100.0);
        assert!(det >= 0.95, "detection {:.2} %", det * 100.0);
        assert!(
            r.all.by_any > r.all.by_rules,
            "profiles add detections the rules miss"
        );
    }
}
