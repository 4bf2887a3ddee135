//! Learned web profiles over the real binary: learn from normal requests spread over two
//! partitions, report what departs (one incident with a rule finding of the same request),
//! controls (false positive learned, reset, export, import, bad documents) and crash safety
//! of those controls (`kill -9` before any checkpoint holds them).

mod common;

use common::{eventually, TestServer, ADMIN_KEY};
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

const CONFIG: &str = "workers = 2\n[engine.web_profiles]\nlearn_requests = 20\n";

fn start(dir: &Path) -> TestServer {
    let cfg = dir.join("antibody.toml");
    std::fs::write(&cfg, CONFIG).unwrap();
    TestServer::start_in(&dir.join("data"), &["--config", cfg.to_str().unwrap()])
}

fn request(ip: u32, query: &str) -> String {
    json!({"entity": format!("ip:10.0.0.{ip}"), "kind": "http",
           "attrs": {"method": "GET", "path": "/shop/item.jsp", "query": query,
                     "host": "shop.example", "src_ip": format!("10.0.0.{ip}")}})
    .to_string()
}

/// `n` normal requests from 16 clients (both partitions see some).
fn learn(s: &TestServer, n: u32) {
    learn_as(s, ADMIN_KEY, n);
}

fn learn_as(s: &TestServer, key: &str, n: u32) {
    let body: Vec<String> = (0..n)
        .map(|i| request(i % 16, &format!("id={}&q=red+wine", i % 9 + 1)))
        .collect();
    let r = s.post_ndjson(key, &(body.join("\n") + "\n"));
    assert_eq!(r.status, 202, "{}", r.text());
}

fn findings(s: &TestServer, entity: &str) -> Vec<Value> {
    findings_as(s, ADMIN_KEY, entity)
}

fn findings_as(s: &TestServer, key: &str, entity: &str) -> Vec<Value> {
    let r = s.get(&format!("/v1/findings?entity={entity}&limit=100"), key);
    r.json()["items"].as_array().cloned().unwrap_or_default()
}

fn profiles(s: &TestServer) -> Value {
    profiles_as(s, ADMIN_KEY)
}

fn profiles_as(s: &TestServer, key: &str) -> Value {
    let r = s.get("/v1/web-profiles", key);
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

fn requests_learned(s: &TestServer) -> u64 {
    learned_as(s, ADMIN_KEY)
}

fn learned_as(s: &TestServer, key: &str) -> u64 {
    profiles_as(s, key)["items"][0]["requests"]
        .as_u64()
        .unwrap_or(0)
}

fn put_mode(s: &TestServer, key: &str, mode: &str) -> common::Resp {
    s.request(
        "PUT",
        "/v1/web-profiles/mode",
        Some(key),
        &[("Content-Type", "application/json")],
        json!({ "mode": mode }).to_string().as_bytes(),
    )
}

fn mode_of(s: &TestServer, key: &str) -> Value {
    let r = s.get("/v1/web-profiles/mode", key);
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["mode"].clone()
}

fn anomalies_as(s: &TestServer, key: &str, entity: &str) -> Vec<Value> {
    findings_as(s, key, entity)
        .into_iter()
        .filter(|f| f["kind"] == "web_anomaly")
        .collect()
}

#[test]
fn profiles_learn_judge_and_take_controls_over_http() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(tmp.path());
    learn(&s, 160);
    eventually(Duration::from_secs(20), || {
        (requests_learned(&s) == 160).then_some(())
    });
    let p = profiles(&s);
    assert_eq!(p["mode"], "on");
    assert_eq!(p["items"][0]["template"], "/shop/item.jsp");
    assert_eq!(p["items"][0]["learning"], false);
    assert_eq!(p["items"][0]["params"][0]["name"], "id");

    // An injection the rules also see: one incident holding both findings.
    let r = s.post_ndjson(
        ADMIN_KEY,
        &(request(200, "id=1+union+select+pwd+from+users--&q=x") + "\n"),
    );
    assert_eq!(r.status, 202);
    let got = eventually(Duration::from_secs(20), || {
        let f = findings(&s, "ip:10.0.0.200");
        (f.len() == 2).then_some(f)
    });
    let anomaly = got
        .iter()
        .find(|f| f["kind"] == "web_anomaly")
        .expect("web_anomaly");
    let rule = got.iter().find(|f| f["kind"] == "sqli").expect("sqli");
    assert_eq!(anomaly["detector"], "profile");
    assert_eq!(anomaly["incident"], rule["incident"]);
    let text = anomaly["explanation"]["text"].as_str().unwrap();
    assert!(text.contains("parameter `id` expected digits"), "{text}");

    // A new but harmless value is flagged; marked false positive it is learned everywhere.
    let odd = "id=3&q=red+wine+(2019)";
    s.post_ndjson(ADMIN_KEY, &(request(201, odd) + "\n"));
    let fp = eventually(Duration::from_secs(20), || {
        findings(&s, "ip:10.0.0.201").pop()
    });
    assert_eq!(fp["kind"], "web_anomaly");
    let r = s.post_json(
        "/v1/feedback",
        ADMIN_KEY,
        &json!({"finding": fp["id"], "label": "false_positive"}).to_string(),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(r.json()["learned"], true);
    // The same value from clients of both partitions, then an attack as a marker.
    for ip in [202, 203, 204, 205] {
        s.post_ndjson(ADMIN_KEY, &(request(ip, odd) + "\n"));
    }
    s.post_ndjson(ADMIN_KEY, &(request(205, "id=<script>x</script>") + "\n"));
    eventually(Duration::from_secs(20), || {
        (!findings(&s, "ip:10.0.0.205").is_empty()).then_some(())
    });
    for ip in [202, 203, 204] {
        assert!(
            findings(&s, &format!("ip:10.0.0.{ip}")).is_empty(),
            "10.0.0.{ip}"
        );
    }
    // 10.0.0.205 sent the learned value, then the marker: only the marker is an anomaly.
    let marker: Vec<Value> = findings(&s, "ip:10.0.0.205")
        .into_iter()
        .filter(|f| f["kind"] == "web_anomaly")
        .collect();
    assert_eq!(marker.len(), 1);
    assert!(marker[0]["evidence"]["request"]
        .to_string()
        .contains("script"));

    // Export, reset, bad documents, import.
    let r = s.get("/v1/web-profiles/export", ADMIN_KEY);
    assert_eq!(r.status, 200);
    let doc = r.json();
    assert_eq!(doc["format"], "antibody-web-profiles");
    let r = s.request(
        "DELETE",
        "/v1/web-profiles?host=shop.example",
        Some(ADMIN_KEY),
        &[],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["reset"][0]["template"], "/shop/item.jsp");
    assert_eq!(profiles(&s)["items"], json!([]));
    let r = s.request(
        "DELETE",
        "/v1/web-profiles?method=FETCH",
        Some(ADMIN_KEY),
        &[],
        b"",
    );
    assert_eq!((r.status, r.error_code()), (400, "bad_request".into()));
    let mut other = doc.clone();
    other["version"] = json!(9);
    let r = s.post_json("/v1/web-profiles/import", ADMIN_KEY, &other.to_string());
    assert_eq!((r.status, r.error_code()), (400, "bad_request".into()));
    let r = s.post_json("/v1/web-profiles/import", ADMIN_KEY, "{\"profiles\": 3}");
    assert_eq!((r.status, r.error_code()), (400, "bad_request".into()));
    let r = s.post_json("/v1/web-profiles/import", ADMIN_KEY, &doc.to_string());
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["templates"], 1);
    // Each partition holds the whole imported profile: the list merges them.
    let merged = requests_learned(&s);
    assert!(merged >= 2 * 165, "{merged}");

    // Roles: an analyst reads, only an admin changes.
    let key = s
        .post_json("/v1/keys", ADMIN_KEY, "{\"role\":\"analyst\"}")
        .json()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(s.get("/v1/web-profiles", &key).status, 200);
    assert_eq!(s.get("/v1/web-profiles/export", &key).status, 403);
    let r = s.request("DELETE", "/v1/web-profiles", Some(&key), &[], b"");
    assert_eq!(r.status, 403);
    let audit = s
        .get("/v1/audit?kind=web_profiles_import", ADMIN_KEY)
        .json();
    assert!(!audit["items"].as_array().unwrap().is_empty(), "{audit}");
}

/// A reset and an import made after the last checkpoint survive `kill -9`, in their place
/// among the replayed events.
#[test]
fn controls_survive_a_crash_before_any_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = start(tmp.path());
    learn(&s, 100);
    eventually(Duration::from_secs(20), || {
        (requests_learned(&s) == 100).then_some(())
    });
    let doc = s.get("/v1/web-profiles/export", ADMIN_KEY).json();
    let r = s.request("DELETE", "/v1/web-profiles", Some(ADMIN_KEY), &[], b"");
    assert_eq!(r.status, 200);
    learn(&s, 10);
    eventually(Duration::from_secs(20), || {
        (requests_learned(&s) == 10).then_some(())
    });
    s.kill9();
    let s2 = start(tmp.path());
    // The 100 requests before the reset were replayed and reset again; the 10 after it stay.
    eventually(Duration::from_secs(20), || {
        (requests_learned(&s2) == 10).then_some(())
    });
    let r = s2.post_json("/v1/web-profiles/import", ADMIN_KEY, &doc.to_string());
    assert_eq!(r.status, 200);
    let imported = requests_learned(&s2);
    drop(s2);
    let s3 = start(tmp.path());
    eventually(Duration::from_secs(20), || {
        (requests_learned(&s3) == imported).then_some(())
    });
    drop(s);
}

/// A tenant's mode through the API: `learn_only` reports nothing and goes on learning, `off`
/// neither learns nor reports, another tenant keeps its own mode, and both modes survive
/// `kill -9` before any checkpoint holds them (replayed at their place in the log).
#[test]
fn a_tenants_mode_is_set_over_http_and_leaves_other_tenants_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = start(tmp.path());
    let r = s.post_json("/v1/tenants", ADMIN_KEY, r#"{"name":"beta"}"#);
    assert_eq!(r.status, 201, "{}", r.text());
    let beta = r.json()["admin_key"].as_str().unwrap().to_owned();
    assert_eq!(mode_of(&s, ADMIN_KEY), "on");
    let r = put_mode(&s, ADMIN_KEY, "learn_only");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), json!({"mode": "learn_only", "previous": "on"}));
    let r = put_mode(&s, ADMIN_KEY, "sometimes");
    assert_eq!((r.status, r.error_code()), (400, "bad_request".into()));
    assert_eq!(mode_of(&s, ADMIN_KEY), "learn_only");
    assert_eq!(mode_of(&s, &beta), "on", "another tenant keeps its mode");
    assert_eq!(profiles(&s)["mode"], "learn_only");

    learn_as(&s, ADMIN_KEY, 40);
    learn_as(&s, &beta, 40);
    eventually(Duration::from_secs(20), || {
        (requests_learned(&s) == 40 && learned_as(&s, &beta) == 40).then_some(())
    });
    // The same attack: reported for beta (on); learned without a finding in learn_only.
    let attack = request(200, "id=<script>x</script>&q=red+wine") + "\n";
    assert_eq!(s.post_ndjson(&beta, &attack).status, 202);
    assert_eq!(s.post_ndjson(ADMIN_KEY, &attack).status, 202);
    eventually(Duration::from_secs(20), || {
        (!anomalies_as(&s, &beta, "ip:10.0.0.200").is_empty()).then_some(())
    });
    eventually(Duration::from_secs(20), || {
        (requests_learned(&s) == 41).then_some(())
    });
    // Back on, a marker from the same client (its partition, in order) is reported: the
    // learn_only attack before it was not.
    assert_eq!(put_mode(&s, ADMIN_KEY, "on").status, 200);
    let marker = request(200, "id=1%27+OR+%271%27%3D%271&q=red+wine") + "\n";
    assert_eq!(s.post_ndjson(ADMIN_KEY, &marker).status, 202);
    let got = eventually(Duration::from_secs(20), || {
        let got = anomalies_as(&s, ADMIN_KEY, "ip:10.0.0.200");
        (!got.is_empty()).then_some(got)
    });
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0]["evidence"]["request"].to_string().contains("OR"));

    // Off for beta: its requests are neither learned nor judged.
    assert_eq!(put_mode(&s, &beta, "off").status, 200);
    learn_as(&s, &beta, 10);
    let attack = request(201, "id=<script>x</script>&q=red+wine") + "\n";
    assert_eq!(s.post_ndjson(&beta, &attack).status, 202);
    // A barrier: the default tenant's later requests, on every partition, are learned.
    learn(&s, 16);
    eventually(Duration::from_secs(20), || {
        (requests_learned(&s) == 57).then_some(())
    });
    assert_eq!(learned_as(&s, &beta), 40);
    assert!(anomalies_as(&s, &beta, "ip:10.0.0.201").is_empty());
    let audit = s.get("/v1/audit?kind=web_profiles_mode", ADMIN_KEY).json();
    let details: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["record"]["detail"].as_str())
        .collect();
    assert_eq!(
        details,
        [
            "web profile mode on → learn_only",
            "web profile mode learn_only → on"
        ],
        "{audit}"
    );

    s.kill9();
    let s2 = start(tmp.path());
    eventually(Duration::from_secs(20), || {
        (requests_learned(&s2) == 57).then_some(())
    });
    assert_eq!(learned_as(&s2, &beta), 40);
    assert_eq!(mode_of(&s2, ADMIN_KEY), "on");
    assert_eq!(mode_of(&s2, &beta), "off");
    drop(s);
}
