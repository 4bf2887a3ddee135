//! The default packs on a stock install (no configuration at all), over the real binary:
//! each attack gets its playbook, no action fails and nothing escalates for want of an
//! executor, and `notify` lands in the built-in inbox (`GET /v1/notifications`); an
//! escalation does too. `serve --demo` runs its attacks the same way.

mod common;

use common::{eventually, TestServer, ADMIN_KEY};
use serde_json::Value;
use std::time::Duration;

fn items(s: &TestServer, path: &str) -> Vec<Value> {
    let r = s.get(path, ADMIN_KEY);
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    r.json()["items"].as_array().cloned().unwrap_or_default()
}

fn actions(s: &TestServer) -> Vec<Value> {
    items(s, "/v1/actions?limit=1000")
}

fn of_playbook(actions: &[Value], playbook: &str) -> Vec<Value> {
    actions
        .iter()
        .filter(|a| a["why"]["playbook"] == playbook)
        .cloned()
        .collect()
}

fn line(entity: &str, kind: &str, attrs: &str, metrics: &str) -> String {
    format!("{{\"entity\":\"{entity}\",\"kind\":\"{kind}\",\"attrs\":{{{attrs}}},\"metrics\":{{{metrics}}}}}\n")
}

/// A steady baseline of `metric` for `entity`, then one value far outside it.
fn spike(entity: &str, metric: &str, normal: u32, value: u32) -> String {
    let mut body: String = (0..20)
        .map(|i| {
            line(
                entity,
                "vitals",
                "",
                &format!("\"{metric}\":{}", normal + i % 3 * 10),
            )
        })
        .collect();
    body.push_str(&line(
        entity,
        "vitals",
        "",
        &format!("\"{metric}\":{value}"),
    ));
    body
}

/// One NDJSON body per attack, with the playbook each must get.
fn attacks() -> Vec<(&'static str, String)> {
    let http = |ip: &str, query: &str| {
        format!("\"src_ip\":\"{ip}\",\"method\":\"GET\",\"path\":\"/search\",\"query\":\"{query}\"")
    };
    let sqli = line(
        "host:web-1",
        "http",
        &http(
            "203.0.113.10",
            "id=1%27%20UNION%20SELECT%20password%20FROM%20users--",
        ),
        "",
    );
    let brute: String = (0..15)
        .map(|_| {
            line(
                "host:ssh-1",
                "auth",
                "\"src_ip\":\"203.0.113.11\",\"user\":\"root\",\"service\":\"ssh\",\"outcome\":\"failure\"",
                "",
            )
        })
        .collect();
    let flood: String = (0..320)
        .map(|_| line("host:web-2", "http", &http("203.0.113.12", "q=shoes"), ""))
        .collect();
    let scan: String = (0..25)
        .map(|port| {
            line(
                "host:db-1",
                "net",
                &format!(
                    "\"src_ip\":\"203.0.113.13\",\"dst_ip\":\"10.0.0.5\",\"dst_port\":{}",
                    1000 + port
                ),
                "",
            )
        })
        .collect();
    vec![
        ("web-attack", sqli),
        ("brute-force", brute),
        (
            "token-explosion",
            spike("agent:tokens", "tokens", 1000, 500_000),
        ),
        (
            "latency-spike",
            spike("agent:slow", "latency_ms", 800, 90_000),
        ),
        ("request-flood", flood),
        ("port-scan", scan),
    ]
}

/// Approved and executing actions have a result shortly after; none may end `failed`.
fn settled(s: &TestServer) -> Vec<Value> {
    eventually(Duration::from_secs(15), || {
        let all = actions(s);
        all.iter()
            .all(|a| a["status"] != "approved" && a["status"] != "executing")
            .then_some(all)
    })
}

fn escalations(s: &TestServer) -> Vec<Value> {
    items(s, "/v1/audit?kind=escalation&limit=1000")
}

#[test]
fn a_stock_install_answers_each_attack_with_its_playbook_and_never_fails_for_configuration() {
    let s = TestServer::start();
    let attacks = attacks();
    for (_, body) in &attacks {
        let r = s.post_ndjson(ADMIN_KEY, body);
        assert_eq!(r.status, 202, "{}", r.text());
    }
    for (playbook, _) in &attacks {
        eventually(Duration::from_secs(20), || {
            (!of_playbook(&actions(&s), playbook).is_empty()).then_some(())
        });
    }
    let all = settled(&s);
    let kinds = |playbook: &str| -> Vec<String> {
        let mut k: Vec<String> = of_playbook(&all, playbook)
            .iter()
            .map(|a| a["kind"].as_str().unwrap_or("").to_owned())
            .collect();
        k.sort();
        k
    };
    assert_eq!(kinds("web-attack"), ["block_ip", "notify"]);
    assert_eq!(kinds("brute-force"), ["block_ip"]);
    assert_eq!(kinds("token-explosion"), ["rate_limit"]);
    assert_eq!(kinds("latency-spike"), ["notify"]);
    assert_eq!(kinds("request-flood"), ["block_ip"]);
    assert_eq!(kinds("port-scan"), ["block_ip"]);
    let failed: Vec<&Value> = all.iter().filter(|a| a["status"] == "failed").collect();
    assert!(failed.is_empty(), "{failed:#?}");
    for ip in [
        "203.0.113.10",
        "203.0.113.11",
        "203.0.113.12",
        "203.0.113.13",
    ] {
        assert!(
            all.iter()
                .any(|a| a["target"] == ip && a["status"] == "succeeded"),
            "{ip} not blocked: {all:#?}"
        );
    }

    // Both notify actions were delivered to the inbox, and say so in their result and audit.
    let notes = items(&s, "/v1/notifications");
    for a in all.iter().filter(|a| a["kind"] == "notify") {
        assert_eq!(a["status"], "succeeded", "{a}");
        let result = a["result"]["message"].as_str().unwrap_or("");
        assert!(result.contains("built-in inbox"), "{a}");
        let n = notes
            .iter()
            .find(|n| n["action"] == a["id"])
            .unwrap_or_else(|| panic!("{} is not in the inbox: {notes:#?}", a["id"]));
        assert_eq!(n["kind"], "notify");
        assert_eq!(n["incident"], a["incident"]);
        assert_eq!(n["playbook"], a["why"]["playbook"]);
        let id = a["id"].as_str().unwrap();
        let audit = items(&s, &format!("/v1/audit?subject={id}"));
        assert!(
            audit
                .iter()
                .any(|e| e["record"]["data"]["result"].as_str() == Some(result)),
            "{audit:#?}"
        );
    }
    let delivered = notes.iter().filter(|n| n["kind"] == "notify").count();
    assert_eq!(delivered, 2, "{notes:#?}");
    // Every other entry asks a person about an action that waits for them.
    for n in notes.iter().filter(|n| n["kind"] != "notify") {
        assert_eq!(n["kind"], "approval", "{n}");
        let a = all
            .iter()
            .find(|a| a["id"] == n["action"])
            .expect("its action");
        assert_eq!(a["mode"], "approval", "{a}");
    }
    let escalated = escalations(&s);
    assert!(escalated.is_empty(), "{escalated:#?}");
}

#[test]
fn the_inbox_is_tenant_scoped_paged_and_validated_and_receives_escalations() {
    let s = TestServer::start();
    // A playbook that needs an executor the stock install lacks: its failure escalates, and
    // the escalation reaches a person through the inbox.
    let r = s.request(
        "PUT",
        "/v1/playbooks/hooks",
        Some(ADMIN_KEY),
        &[("Content-Type", "application/yaml")],
        // Its trigger also names the scan's diagnosis, so no other playbook is left to fall
        // back to (see `responder::fallback`).
        b"- id: scan-hook\n  trigger: {kinds: [port_scan], diagnoses: [reconnaissance]}\n  steps:\n    - action: webhook\n      params: {url: \"http://127.0.0.1:9/hook\"}\n",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let (_, sqli) = attacks().remove(0);
    let scan = attacks().remove(5).1;
    // The web attack's notification is also shown live.
    let mut stream = common::open_stream(&s, ADMIN_KEY);
    assert_eq!(s.post_ndjson(ADMIN_KEY, &sqli).status, 202);
    let live = common::next_event(&mut stream, "notification");
    assert_eq!(
        (&live["kind"], &live["playbook"]),
        (&"notify".into(), &"web-attack".into())
    );
    assert_eq!(s.post_ndjson(ADMIN_KEY, &scan).status, 202);
    let esc = eventually(Duration::from_secs(20), || {
        items(&s, "/v1/notifications?kind=escalation")
            .into_iter()
            .next()
    });
    assert_eq!(esc["entity"], "host:db-1");
    assert!(
        esc["message"].as_str().unwrap_or("").contains("webhook"),
        "{esc}"
    );
    assert!(!escalations(&s).is_empty());
    eventually(Duration::from_secs(20), || {
        (items(&s, "/v1/notifications").len() == 2).then_some(())
    });

    // Newest first, one page at a time, and filtered by incident.
    let first = s.get("/v1/notifications?limit=1", ADMIN_KEY).json();
    let next = first["next"].as_str().expect("a next cursor").to_owned();
    let second = s
        .get(
            &format!("/v1/notifications?limit=1&before={next}"),
            ADMIN_KEY,
        )
        .json();
    let (a, b) = (&first["items"][0], &second["items"][0]);
    assert_ne!(a["id"], b["id"]);
    assert!(a["ts"].as_str() >= b["ts"].as_str(), "{a} {b}");
    let incident = esc["incident"].as_str().unwrap();
    let only = items(&s, &format!("/v1/notifications?incident={incident}"));
    assert!(only.iter().all(|n| n["incident"] == incident) && !only.is_empty());

    // Bad input is a 400 in the API's shape; an ingest key may not read; another tenant sees
    // nothing.
    for q in [
        "kind=email",
        "limit=0",
        "since=yesterday",
        "before=nope",
        "colour=red",
    ] {
        let r = s.get(&format!("/v1/notifications?{q}"), ADMIN_KEY);
        assert_eq!(r.status, 400, "{q}: {}", r.text());
        assert_eq!(r.error_code(), "bad_request", "{q}");
    }
    let key = |body: &str, path: &str, field: &str| {
        s.post_json(path, ADMIN_KEY, body).json()[field]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let ingest = key(r#"{"role":"ingest"}"#, "/v1/keys", "key");
    assert_eq!(s.get("/v1/notifications", &ingest).status, 403);
    let other = key(r#"{"name":"other"}"#, "/v1/tenants", "admin_key");
    let r = s.get("/v1/notifications", &other);
    assert_eq!(r.status, 200);
    assert!(r.json()["items"].as_array().unwrap().is_empty());
}

#[test]
fn the_demo_runs_its_attacks_without_a_failure_or_an_escalation() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_in(dir.path(), &["--demo"]);
    // The simulator attacks every ten seconds: a token explosion, then an SQL injection,
    // whose notification reaches the inbox.
    eventually(Duration::from_secs(60), || {
        items(&s, "/v1/notifications")
            .into_iter()
            .find(|n| n["playbook"] == "web-attack")
    });
    let all = settled(&s);
    assert!(!of_playbook(&all, "token-explosion").is_empty(), "{all:#?}");
    let failed: Vec<&Value> = all.iter().filter(|a| a["status"] == "failed").collect();
    assert!(failed.is_empty(), "{failed:#?}");
    let escalated = escalations(&s);
    assert!(escalated.is_empty(), "{escalated:#?}");
}
