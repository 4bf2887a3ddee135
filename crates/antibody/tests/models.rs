//! Learned detection over the real binary: a model trained by `antibody train` is uploaded,
//! scores live events as a detector (findings with contributions), low-confidence findings
//! wait in the review queue, analysts' labels retrain it into the shadow slot, and versions
//! are promoted and rolled back — every change audited, every endpoint tenant-isolated.

mod common;

use common::{eventually, TestServer, ADMIN_KEY};
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

use antibody_ml::features::AGENT_INPUT_COLUMNS as INPUTS;

fn antibody(args: &[&str]) {
    common::run_ok(args);
}

fn train(dir: &Path) -> Vec<u8> {
    std::fs::read(common::train_small_model(dir)).expect("bundle")
}

/// The generated rows as `vitals` events whose metrics carry the 11 raw columns.
fn events(dir: &Path, rows: usize, seed: &str, scale_cpu: f64) -> (String, Vec<bool>) {
    events_where(dir, rows, seed, scale_cpu, |_| true)
}

/// Like [`events`], keeping only the rows `keep` accepts (given `is_threat`).
fn events_where(
    dir: &Path,
    rows: usize,
    seed: &str,
    scale_cpu: f64,
    keep: impl Fn(bool) -> bool,
) -> (String, Vec<bool>) {
    let data = dir.join(format!("live-{seed}.csv"));
    let n = rows.to_string();
    antibody(&[
        "gen",
        "agent-behavior",
        "--rows",
        &n,
        "--seed",
        seed,
        "--out",
        data.to_str().unwrap(),
    ]);
    csv_events(&data, scale_cpu, keep)
}

/// A generated CSV's rows as `vitals` events, in file order, one second apart.
fn csv_events(data: &Path, scale_cpu: f64, keep: impl Fn(bool) -> bool) -> (String, Vec<bool>) {
    let text = std::fs::read_to_string(data).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (mut ndjson, mut threats) = (String::new(), Vec::new());
    for (i, line) in lines.enumerate() {
        let f: Vec<&str> = line.split(',').collect();
        if !keep(f[col("is_threat")] == "1") {
            continue;
        }
        let mut metrics = serde_json::Map::new();
        for c in INPUTS {
            let mut v: f64 = f[col(c)].parse().unwrap();
            if c == "cpu_usage_percent" {
                v *= scale_cpu;
            }
            metrics.insert(c.into(), json!(v));
        }
        let ev = json!({
            "ts": 1_795_000_000_000i64 + i as i64 * 1000,
            "entity": f[col("agent_id")],
            "kind": "vitals",
            "metrics": metrics,
        });
        ndjson.push_str(&ev.to_string());
        ndjson.push('\n');
        threats.push(f[col("is_threat")] == "1");
    }
    (ndjson, threats)
}

#[test]
fn a_model_with_a_sequence_part_scores_each_agents_session_over_http() {
    let tmp = tempfile::tempdir().unwrap();
    let sequence = ["--entity", "agent_id", "--sequence-epochs", "4"];
    let b = common::train_small_model_with(tmp.path(), &["--mixed"], &sequence);
    let bundle = std::fs::read(&b).unwrap();
    let s = TestServer::start();
    let r = s.post_json("/v1/models", ADMIN_KEY, &upload_body(&bundle, json!({})));
    assert_eq!(r.status, 201, "{}", r.text());

    // Sessions in time order: about half turn from normal to an attack part-way.
    let live = tmp.path().join("live.csv");
    antibody(&[
        "gen",
        "agent-behavior",
        "--rows",
        "400",
        "--seed",
        "12",
        "--mixed",
        "--out",
        live.to_str().unwrap(),
    ]);
    let (ndjson, threats) = csv_events(&live, 1.0, |_| true);
    assert_eq!(s.post_ndjson(ADMIN_KEY, &ndjson).status, 202);
    let threats = threats.iter().filter(|t| **t).count();
    let findings = eventually(Duration::from_secs(20), || {
        let r = s.get("/v1/findings?kind=model:agents&limit=1000", ADMIN_KEY);
        let items = r.json()["items"].as_array().cloned().unwrap_or_default();
        let reported = items.iter().filter(|f| f["severity"] != "info").count();
        (reported * 10 >= threats * 8).then_some(items)
    });
    // Every finding carries the sequence part's verdict over the agent's newest events:
    // one attention weight per step, summing to 1.
    let mut longest = 0;
    for f in &findings {
        let seq = &f["evidence"]["sequence"];
        let attention = seq["attention"].as_array().expect("attention weights");
        assert!((1..=10).contains(&attention.len()), "{seq}");
        let total: f64 = attention.iter().map(|w| w.as_f64().unwrap()).sum();
        assert!((total - 1.0).abs() < 1e-6, "{seq}");
        let q = seq["score"].as_f64().unwrap();
        let row = f["evidence"]["score"].as_f64().unwrap();
        assert!((f["score"].as_f64().unwrap() - q.max(row)).abs() < 1e-6);
        assert!(f["explanation"]["text"]
            .as_str()
            .unwrap()
            .contains("its sequence model gives"));
        longest = longest.max(attention.len());
    }
    assert_eq!(longest, 10, "full windows of the agents' last 10 events");
}

fn upload_body(bundle: &[u8], extra: Value) -> String {
    use base64::Engine as _;
    let mapping: serde_json::Map<String, Value> = INPUTS
        .iter()
        .map(|c| (c.to_string(), json!(format!("metrics.{c}"))))
        .collect();
    let mut body = json!({
        "name": "agents",
        "file": base64::engine::general_purpose::STANDARD.encode(bundle),
        "event_kind": "vitals",
        "mapping": mapping,
        "drift_window": 200,
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body.to_string()
}

fn models(s: &TestServer, key: &str) -> Vec<Value> {
    let r = s.get("/v1/models", key);
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["items"].as_array().unwrap().clone()
}

fn slot_of(items: &[Value], id: &str) -> String {
    items
        .iter()
        .find(|m| m["id"] == id)
        .map(|m| m["slot"].as_str().unwrap().to_owned())
        .unwrap_or_default()
}

#[test]
fn a_trained_model_detects_learns_from_labels_and_is_promoted_and_rolled_back() {
    let tmp = tempfile::tempdir().unwrap();
    let bundle = train(tmp.path());
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let config = tmp.path().join("antibody.toml");
    std::fs::write(&config, "[models]\nretrain_min_labels = 4\n").unwrap();
    let s = TestServer::start_in(&data, &["--config", config.to_str().unwrap()]);

    // Bad uploads get clear 4xx and store nothing.
    let r = s.post_json(
        "/v1/models",
        ADMIN_KEY,
        &upload_body(b"not a model", json!({})),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("cannot be served"), "{}", r.text());
    let mut partial = json!({"mapping": {"cpu_usage_percent": "metrics.cpu"}});
    let r = s.post_json(
        "/v1/models",
        ADMIN_KEY,
        &upload_body(&bundle, partial.take()),
    );
    assert_eq!(r.status, 400);
    assert!(
        r.text().contains("no field for the model inputs"),
        "{}",
        r.text()
    );
    let r = s.post_json(
        "/v1/models",
        ADMIN_KEY,
        &upload_body(&bundle, json!({"name": "Bad Name"})),
    );
    assert_eq!(r.status, 400);
    assert!(models(&s, ADMIN_KEY).is_empty());

    // The first version of a name goes active.
    let r = s.post_json("/v1/models", ADMIN_KEY, &upload_body(&bundle, json!({})));
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["id"], "agents-v1");
    assert_eq!(r.json()["slot"], "active");

    // Live traffic: the model reports threats with their explanation.
    let (ndjson, threats) = events(tmp.path(), 300, "11", 1.0);
    assert_eq!(s.post_ndjson(ADMIN_KEY, &ndjson).status, 202);
    let findings = eventually(Duration::from_secs(20), || {
        let r = s.get("/v1/findings?kind=model:agents&limit=500", ADMIN_KEY);
        let items = r.json()["items"].as_array().cloned().unwrap_or_default();
        let reported = items.iter().filter(|f| f["severity"] != "info").count();
        (reported * 10 >= threats.iter().filter(|t| **t).count() * 8).then_some(items)
    });
    let f = findings.iter().find(|f| f["severity"] != "info").unwrap();
    assert_eq!(f["detector"], "model:agents");
    assert!(f["score"].as_f64().unwrap() >= f["evidence"]["threshold"].as_f64().unwrap());
    assert!(!f["explanation"]["contributions"]
        .as_object()
        .unwrap()
        .is_empty());
    assert!(f["explanation"]["text"]
        .as_str()
        .unwrap()
        .contains("driven by"));
    assert!(f["evidence"]["features"]["error_rate"].is_number());
    let live = eventually(Duration::from_secs(10), || {
        let m = models(&s, ADMIN_KEY);
        let live = m[0]["live"].clone();
        (live["scored"].as_u64() == Some(300)).then_some(live)
    });
    assert!(live["reported"].as_u64().unwrap() > 0);

    // Low-confidence findings wait for a label; labels retrain into the shadow slot.
    let queue = s.get("/v1/review-queue?limit=50", ADMIN_KEY).json()["items"]
        .as_array()
        .unwrap()
        .clone();
    let mut to_label: Vec<Value> = queue;
    to_label.extend(
        findings
            .iter()
            .filter(|f| f["severity"] != "info")
            .take(4)
            .cloned(),
    );
    let mut retraining = false;
    for (i, f) in to_label.iter().take(6).enumerate() {
        let label = if i % 2 == 0 {
            "true_positive"
        } else {
            "false_positive"
        };
        let body = json!({"finding": f["id"], "label": label}).to_string();
        let r = s.post_json("/v1/feedback", ADMIN_KEY, &body);
        assert_eq!(r.status, 202, "{}", r.text());
        retraining |= r.json()["retraining"] == true;
    }
    assert!(retraining, "4 labels reach retrain_min_labels");
    let after = eventually(Duration::from_secs(60), || {
        let m = models(&s, ADMIN_KEY);
        (slot_of(&m, "agents-v2") == "shadow").then_some(m)
    });
    assert_eq!(
        slot_of(&after, "agents-v1"),
        "active",
        "never straight to active"
    );
    let v2 = after.iter().find(|m| m["id"] == "agents-v2").unwrap();
    assert!(v2["info"]["lineage"]["labels"].as_u64().unwrap() >= 4);

    // The shadow scores the same traffic silently and reports its agreement. (The registry
    // shows the new slot a moment before the engine serves it, hence the resending.)
    let more = events(tmp.path(), 100, "12", 1.0).0;
    let more: Vec<&str> = more.lines().collect();
    let mut sent = 0;
    let agreement = eventually(Duration::from_secs(20), || {
        let chunk = more[sent % 100..(sent % 100) + 10].join("\n");
        assert_eq!(s.post_ndjson(ADMIN_KEY, &chunk).status, 202);
        sent += 10;
        let m = models(&s, ADMIN_KEY);
        let v2 = m.iter().find(|m| m["id"] == "agents-v2")?.clone();
        v2["live"]["shadow_agreement"].as_f64()
    });
    assert!(agreement > 0.5, "{agreement}");

    // Promote and roll back, by id; another tenant cannot see or touch any of it.
    let other = s
        .post_json("/v1/tenants", ADMIN_KEY, r#"{"name":"other"}"#)
        .json()["admin_key"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(models(&s, &other).is_empty());
    assert_eq!(
        s.post_json("/v1/models/agents-v2/promote", &other, "")
            .status,
        404
    );
    assert!(s.get("/v1/review-queue", &other).json()["items"]
        .as_array()
        .unwrap()
        .is_empty());
    let r = s.post_json("/v1/models/agents-v2/promote", ADMIN_KEY, "");
    assert_eq!(r.status, 200, "{}", r.text());
    let m = models(&s, ADMIN_KEY);
    assert_eq!(
        (slot_of(&m, "agents-v1"), slot_of(&m, "agents-v2")),
        ("retired".into(), "active".into())
    );
    assert_eq!(
        s.post_json("/v1/models/agents-v2/promote", ADMIN_KEY, "")
            .status,
        409
    );
    let r = s.post_json("/v1/models/agents-v2/rollback", ADMIN_KEY, "");
    assert_eq!(r.status, 200, "{}", r.text());
    let m = models(&s, ADMIN_KEY);
    assert_eq!(
        (slot_of(&m, "agents-v1"), slot_of(&m, "agents-v2")),
        ("active".into(), "retired".into())
    );

    let audit = s.get("/v1/audit?limit=1000", ADMIN_KEY).json();
    let kinds: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["record"]["kind"].as_str().or(e["kind"].as_str()))
        .collect();
    for k in [
        "model_upload",
        "model_retrain",
        "model_promote",
        "model_rollback",
    ] {
        assert!(kinds.contains(&k), "{k} not audited: {kinds:?}");
    }
    assert_eq!(s.get("/v1/audit/verify", ADMIN_KEY).json()["ok"], true);
}

#[test]
fn a_label_on_a_metric_beyond_f32_does_not_block_retraining() {
    let tmp = tempfile::tempdir().unwrap();
    let bundle = train(tmp.path());
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let config = tmp.path().join("antibody.toml");
    std::fs::write(&config, "[models]\nretrain_min_labels = 2\n").unwrap();
    let s = TestServer::start_in(&data, &["--config", config.to_str().unwrap()]);
    let r = s.post_json("/v1/models", ADMIN_KEY, &upload_body(&bundle, json!({})));
    assert_eq!(r.status, 201, "{}", r.text());

    // Threat rows, the first with an API call count that is finite but beyond f32.
    let (ndjson, _) = events_where(tmp.path(), 200, "31", 1.0, |threat| threat);
    let mut lines: Vec<Value> = ndjson
        .lines()
        .take(20)
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    lines[0]["entity"] = json!("agent-huge");
    lines[0]["metrics"]["api_calls_count"] = json!(1e39);
    let body: Vec<String> = lines.iter().map(Value::to_string).collect();
    assert_eq!(s.post_ndjson(ADMIN_KEY, &body.join("\n")).status, 202);
    let huge = eventually(Duration::from_secs(20), || {
        let r = s.get("/v1/findings?entity=agent-huge", ADMIN_KEY);
        r.json()["items"].as_array()?.first().cloned()
    });
    // Every feature is a number the label can carry (an infinite one was stored as null).
    let features = huge["evidence"]["features"].as_object().unwrap();
    assert!(features.values().all(Value::is_number), "{features:?}");
    let other = eventually(Duration::from_secs(20), || {
        let r = s.get("/v1/findings?kind=model:agents&limit=50", ADMIN_KEY);
        let items = r.json()["items"].as_array()?.clone();
        items.into_iter().find(|f| f["entity"] != "agent-huge")
    });

    let mut retraining = false;
    for f in [&huge, &other] {
        let body = json!({"finding": f["id"], "label": "true_positive"}).to_string();
        let r = s.post_json("/v1/feedback", ADMIN_KEY, &body);
        assert_eq!(r.status, 202, "{}", r.text());
        retraining |= r.json()["retraining"] == true;
    }
    assert!(retraining, "2 labels reach retrain_min_labels");
    let kinds = eventually(Duration::from_secs(60), || {
        let audit = s.get("/v1/audit?limit=1000", ADMIN_KEY).json();
        let kinds: Vec<String> = audit["items"]
            .as_array()?
            .iter()
            .filter_map(|e| e["record"]["kind"].as_str().or(e["kind"].as_str()))
            .filter(|k| k.starts_with("model_retrain"))
            .map(str::to_owned)
            .collect();
        (!kinds.is_empty()).then_some(kinds)
    });
    assert_eq!(kinds, ["model_retrain"]);
    let m = models(&s, ADMIN_KEY);
    let v2 = m.iter().find(|m| m["id"] == "agents-v2").unwrap();
    assert_eq!(v2["slot"], "shadow");
    assert_eq!(v2["info"]["lineage"]["labels"], 2);
    assert_eq!(v2["info"]["lineage"]["skipped_labels"], 0);
}

#[test]
fn drifted_inputs_raise_model_drift_and_survive_in_metrics() {
    let tmp = tempfile::tempdir().unwrap();
    let bundle = train(tmp.path());
    let s = TestServer::start();
    let r = s.post_json("/v1/models", ADMIN_KEY, &upload_body(&bundle, json!({})));
    assert_eq!(r.status, 201, "{}", r.text());
    // Benign traffic like the training data's raises nothing (the reference is benign rows)…
    let (calm, _) = events_where(tmp.path(), 1500, "21", 1.0, |threat| !threat);
    assert!(calm.lines().count() >= 600);
    assert_eq!(s.post_ndjson(ADMIN_KEY, &calm).status, 202);
    eventually(Duration::from_secs(20), || {
        let m = models(&s, ADMIN_KEY);
        (m[0]["live"]["scored"].as_u64()? >= 600).then_some(())
    });
    let r = s.get("/v1/findings?kind=model_drift", ADMIN_KEY);
    assert!(
        r.json()["items"].as_array().unwrap().is_empty(),
        "{}",
        r.text()
    );
    // …five times the CPU it was trained on, on every agent, does.
    let (ndjson, _) = events_where(tmp.path(), 1500, "22", 5.0, |threat| !threat);
    assert_eq!(s.post_ndjson(ADMIN_KEY, &ndjson).status, 202);
    let drift = eventually(Duration::from_secs(20), || {
        let r = s.get("/v1/findings?kind=model_drift", ADMIN_KEY);
        r.json()["items"].as_array()?.first().cloned()
    });
    assert_eq!(drift["entity"], "model:agents");
    assert!(drift["evidence"]["psi"].as_f64().unwrap() >= 0.2);
    let m = models(&s, ADMIN_KEY);
    let psi = &m[0]["live"]["drift"]["psi"];
    assert!(
        psi.as_object()
            .unwrap()
            .values()
            .any(|v| v.as_f64().unwrap() >= 0.2),
        "{psi}"
    );
    let metrics = s.get("/metrics", ADMIN_KEY).text();
    assert!(metrics.contains("antibody_model_psi{"), "drift in /metrics");
    // Model series name tenants: never to an anonymous scrape, nor to another tenant.
    let anonymous = s.request("GET", "/metrics", None, &[], b"").text();
    assert!(anonymous.contains("antibody_events_accepted_total"));
    assert!(!anonymous.contains("antibody_model_"), "{anonymous}");
    assert_eq!(s.get("/metrics", "not-a-key").status, 401);
    let r = s.post_json("/v1/tenants", ADMIN_KEY, r#"{"name":"other"}"#);
    let other = r.json()["admin_key"].as_str().unwrap().to_string();
    let theirs = s.get("/metrics", &other).text();
    assert!(!theirs.contains("antibody_model_psi{"), "{theirs}");
}
