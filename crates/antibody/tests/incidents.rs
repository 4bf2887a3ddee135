//! Incidents people work, and one owner of every entity's lifecycle, over the real binary:
//! an approved infection heals and reads `healthy` everywhere with its incident resolved
//! `healed` and a post-mortem; ack / assign / notes / resolve / reopen round trip, audited
//! and tenant-isolated; the entity list filters, counts and pages; heal-all.

mod common;

use common::{eventually, next_event, open_stream, TestServer, ADMIN_KEY};
use serde_json::Value;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(20);

/// `n` ordinary vitals of `entity` (tokens 1000–1020).
fn normal(entity: &str, n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                "{{\"entity\":\"{entity}\",\"kind\":\"vitals\",\"metrics\":{{\"tokens\":{}}}}}\n",
                1000 + i % 3 * 10
            )
        })
        .collect()
}

fn spike(entity: &str) -> String {
    format!("{{\"entity\":\"{entity}\",\"kind\":\"vitals\",\"metrics\":{{\"tokens\":500000}}}}\n")
}

fn items(s: &TestServer, path: &str, key: &str) -> Vec<Value> {
    let r = s.get(path, key);
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    r.json()["items"].as_array().cloned().unwrap_or_default()
}

/// Learns a baseline for `entity`, spikes it and returns its pending action.
fn infect(s: &TestServer, entity: &str) -> Value {
    let body = normal(entity, 20) + &spike(entity);
    assert_eq!(s.post_ndjson(ADMIN_KEY, &body).status, 202);
    eventually(WAIT, || {
        items(s, "/v1/actions?status=pending_approval", ADMIN_KEY)
            .into_iter()
            .find(|a| a["target"] == entity)
    })
}

fn entity_state(s: &TestServer, entity: &str) -> String {
    let r = s.get(&format!("/v1/entities/{entity}"), ADMIN_KEY);
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["state"].as_str().unwrap_or("").to_owned()
}

fn post(s: &TestServer, path: &str, key: &str, body: &str) -> common::Resp {
    s.post_json(path, key, body)
}

fn new_tenant(s: &TestServer) -> String {
    s.post_json("/v1/tenants", ADMIN_KEY, r#"{"name":"other"}"#)
        .json()["admin_key"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Infects `entity`, approves its action, feeds one probation of normal vitals and waits
/// until it reads healthy; returns (action id, incident id).
fn heal(s: &TestServer, entity: &str) -> (String, String) {
    let pending = infect(s, entity);
    let (id, incident) = (
        pending["id"].as_str().unwrap().to_owned(),
        pending["incident"].as_str().unwrap().to_owned(),
    );
    let r = post(s, &format!("/v1/actions/{id}/approve"), ADMIN_KEY, "");
    assert_eq!(r.status, 200, "{}", r.text());
    eventually(WAIT, || {
        (entity_state(s, entity) == "probation").then_some(())
    });
    // Fresh normal vitals: one probation's worth of samples within baseline.
    assert_eq!(s.post_ndjson(ADMIN_KEY, &normal(entity, 5)).status, 202);
    eventually(WAIT, || {
        (entity_state(s, entity) == "healthy").then_some(())
    });
    (id, incident)
}

#[test]
fn an_approved_infection_heals_everywhere_and_its_incident_resolves_healed() {
    let s = TestServer::start();
    let (id, incident) = heal(&s, "agent:x");
    let listed = items(&s, "/v1/entities?state=healthy&kind=agent", ADMIN_KEY);
    assert!(
        listed.iter().any(|e| e["entity"] == "agent:x"),
        "{listed:?}"
    );
    let inc = eventually(WAIT, || {
        let inc = s
            .get(&format!("/v1/incidents/{incident}"), ADMIN_KEY)
            .json();
        (inc["status"] == "resolved").then_some(inc)
    });
    assert_eq!(inc["resolution"], "healed", "{inc}");
    assert_eq!(inc["resolved_by"], "engine", "{inc}");
    let resolved = items(&s, "/v1/incidents?status=resolved", ADMIN_KEY);
    assert!(resolved.iter().any(|i| i["id"] == incident.as_str()));
    let audit = items(
        &s,
        &format!("/v1/audit?kind=incident&subject={incident}"),
        ADMIN_KEY,
    );
    assert_eq!(
        audit[0]["record"]["data"]["resolution"], "healed",
        "{audit:?}"
    );

    let pm = eventually(WAIT, || {
        let r = s.get(&format!("/v1/incidents/{incident}/postmortem"), ADMIN_KEY);
        (r.status == 200).then(|| r.json())
    });
    assert_eq!(pm["resolution"], "healed");
    assert_eq!(pm["actions"][0]["id"], id.as_str());
    assert_eq!(pm["actions"][0]["took_effect"], true);
    assert!(!pm["evidence"].as_array().unwrap().is_empty(), "{pm}");
    for t in [
        "time_to_detect_ms",
        "time_to_respond_ms",
        "time_to_recover_ms",
    ] {
        assert!(
            pm["times"][t].as_i64().is_some_and(|ms| ms >= 0),
            "{t}: {pm}"
        );
    }
    let md = s.get(
        &format!("/v1/incidents/{incident}/postmortem?format=md"),
        ADMIN_KEY,
    );
    assert_eq!(md.status, 200);
    assert!(md
        .header("content-type")
        .unwrap_or("")
        .starts_with("text/markdown"));
    assert!(
        md.text().contains("## Actions and outcomes"),
        "{}",
        md.text()
    );

    // Detection no longer adds to the healed incident: the next anomaly opens a new one.
    assert_eq!(s.post_ndjson(ADMIN_KEY, &spike("agent:x")).status, 202);
    let next = eventually(WAIT, || {
        let open = items(&s, "/v1/incidents?entity=agent:x&status=open", ADMIN_KEY);
        open.into_iter().next()
    });
    assert_ne!(next["id"], incident.as_str());
}

/// Engine checkpoints do not record seals: after a crash the replayed log reopens the
/// healed incident in detection, and the response stage seals it again.
#[test]
fn a_healed_incident_stays_closed_to_new_findings_after_a_crash() {
    let mut s = TestServer::start();
    let (_, incident) = heal(&s, "agent:c");
    eventually(WAIT, || {
        let inc = s
            .get(&format!("/v1/incidents/{incident}"), ADMIN_KEY)
            .json();
        (inc["resolution"] == "healed").then_some(())
    });
    s.kill9();
    s.restart();
    eventually(WAIT, || {
        let e = s.get("/v1/entities/agent:c", ADMIN_KEY).json();
        e["open_incident"].is_null().then_some(())
    });
    let inc = s
        .get(&format!("/v1/incidents/{incident}"), ADMIN_KEY)
        .json();
    assert_eq!(
        (inc["status"].as_str(), inc["resolution"].as_str()),
        (Some("resolved"), Some("healed"))
    );
    assert_eq!(s.post_ndjson(ADMIN_KEY, &spike("agent:c")).status, 202);
    let next = eventually(WAIT, || {
        let open = items(&s, "/v1/incidents?entity=agent:c&status=open", ADMIN_KEY);
        open.into_iter().next()
    });
    assert_ne!(next["id"], incident.as_str());
}

#[test]
fn people_ack_assign_note_resolve_and_reopen_an_incident() {
    let s = TestServer::start();
    let pending = infect(&s, "agent:w");
    let incident = pending["incident"].as_str().unwrap().to_owned();
    let at = |verb: &str| format!("/v1/incidents/{incident}/{verb}");

    let r = s.get(&at("postmortem"), ADMIN_KEY);
    assert_eq!((r.status, r.error_code().as_str()), (404, "not_found"));

    let mut stream = open_stream(&s, ADMIN_KEY);
    let acked = post(&s, &at("ack"), ADMIN_KEY, "");
    assert_eq!(acked.status, 200, "{}", acked.text());
    let streamed = loop {
        let inc = next_event(&mut stream, "incident");
        if inc["id"] == incident.as_str() && inc["status"] == "acknowledged" {
            break inc;
        }
    };
    assert_eq!(streamed["acknowledged_by"], acked.json()["acknowledged_by"]);
    let acked = acked.json();
    assert_eq!(acked["status"], "acknowledged");
    let me = acked["acknowledged_by"].as_str().unwrap().to_owned();
    assert!(me.starts_with("k-"), "{me}");
    let again = post(&s, &at("ack"), ADMIN_KEY, "");
    assert_eq!(
        (again.status, again.error_code().as_str()),
        (409, "conflict")
    );
    let listed = items(&s, "/v1/incidents?status=acknowledged", ADMIN_KEY);
    assert_eq!(listed.len(), 1);

    let r = post(&s, &at("assign"), ADMIN_KEY, r#"{"to":"alice"}"#);
    assert_eq!(r.json()["assignee"], "alice");
    for bad in [r#"{}"#, r#"{"to":""}"#, r#"{"to":"a","x":1}"#, "not json"] {
        let r = post(&s, &at("assign"), ADMIN_KEY, bad);
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
        r.error_code();
    }
    let r = post(&s, &at("notes"), ADMIN_KEY, r#"{"text":"paged the owner"}"#);
    let inc = r.json();
    assert_eq!(inc["notes"][0]["text"], "paged the owner");
    assert_eq!(inc["notes"][0]["actor"], me.as_str());
    let events: Vec<&str> = inc["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["event"].as_str())
        .collect();
    let note = format!("note by {me}: paged the owner");
    assert!(events.contains(&note.as_str()), "{events:?}");
    assert!(
        events.iter().any(|e| e.starts_with("assigned to alice")),
        "{events:?}"
    );

    let r = post(&s, &at("resolve"), ADMIN_KEY, r#"{"resolution":"fixed"}"#);
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (400, "invalid_resolution")
    );
    assert!(r.text().contains("false_positive") && r.text().contains("accepted_risk"));
    let r = post(&s, &at("resolve"), ADMIN_KEY, r#"{"resolution":"quiet"}"#);
    assert_eq!(r.status, 400, "quiet is the engine's word: {}", r.text());
    let r = post(
        &s,
        &at("resolve"),
        ADMIN_KEY,
        r#"{"resolution":"false_positive","root_cause":"cost_overrun"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let inc = r.json();
    assert_eq!(
        (inc["status"].as_str(), inc["resolution"].as_str()),
        (Some("resolved"), Some("false_positive"))
    );
    assert_eq!(inc["root_cause"], "cost_overrun");
    assert_eq!(inc["assignee"], "alice", "kept through the resolution");
    let closed = items(&s, "/v1/incidents?status=closed", ADMIN_KEY);
    assert!(
        closed.iter().any(|i| i["id"] == incident.as_str()),
        "closed = resolved"
    );
    let pm = s.get(&at("postmortem"), ADMIN_KEY).json();
    assert_eq!(pm["root_cause"]["cause"], "cost_overrun");
    assert_eq!(pm["root_cause"]["source"], "analyst");
    assert_eq!(pm["notes"][0]["text"], "paged the owner");
    // A diagnosis cause teaches the diagnosis, as feedback does.
    let feedback = items(&s, "/v1/audit?kind=feedback", ADMIN_KEY);
    assert_eq!(feedback[0]["record"]["data"]["root_cause"], "cost_overrun");

    let r = post(&s, &at("reopen"), ADMIN_KEY, "{}");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "open");
    assert_eq!(r.json()["resolution"], Value::Null);
    assert_eq!(s.get(&at("postmortem"), ADMIN_KEY).status, 404);
    let r = post(
        &s,
        &at("resolve"),
        ADMIN_KEY,
        r#"{"resolution":"mitigated","root_cause":"a noisy upstream"}"#,
    );
    assert_eq!(
        r.json()["root_cause"],
        "a noisy upstream",
        "free text is kept as is"
    );

    let ops: Vec<String> = items(
        &s,
        &format!("/v1/audit?kind=incident&subject={incident}"),
        ADMIN_KEY,
    )
    .iter()
    .filter(|e| e["record"]["actor"] == me.as_str())
    .filter_map(|e| e["record"]["data"]["op"].as_str().map(str::to_owned))
    .collect();
    assert_eq!(
        ops,
        ["ack", "assign", "note", "resolve", "reopen", "resolve"]
    );

    // Roles and tenants.
    let ingest = post(&s, "/v1/keys", ADMIN_KEY, r#"{"role":"ingest"}"#).json()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        post(&s, &at("notes"), &ingest, r#"{"text":"x"}"#).status,
        403
    );
    let other = new_tenant(&s);
    for verb in ["ack", "reopen"] {
        let r = post(&s, &at(verb), &other, "");
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (404, "not_found"),
            "{verb}"
        );
    }
    assert_eq!(
        post(&s, &at("notes"), &other, r#"{"text":"x"}"#).status,
        404
    );
    assert_eq!(s.get(&at("postmortem"), &other).status, 404);
    assert!(items(&s, "/v1/incidents", &other).is_empty());
}

#[test]
fn the_entity_list_filters_counts_and_pages_per_tenant_and_heal_all_heals() {
    let s = TestServer::start();
    let mut body = String::new();
    for i in 0..12 {
        body += &normal(&format!("agent:a{i}"), 1); // still learning: initializing
    }
    for h in ["host:web", "host:db", "host:mail"] {
        body += &format!(
            "{{\"entity\":\"{h}\",\"kind\":\"auth\",\"attrs\":{{\"src_ip\":\"192.0.2.1\",\"user\":\"u\",\"outcome\":\"success\"}}}}\n"
        );
    }
    assert_eq!(s.post_ndjson(ADMIN_KEY, &body).status, 202);
    let page = eventually(WAIT, || {
        let v = s.get("/v1/entities", ADMIN_KEY).json();
        (v["items"].as_array().map_or(0, Vec::len) == 15).then_some(v)
    });
    assert_eq!(page["counts"]["initializing"], 12, "{page}");
    assert_eq!(page["counts"]["healthy"], 3, "{page}");
    assert_eq!(page["counts"]["quarantined"], 0, "every state is counted");
    assert_eq!(page["next_cursor"], Value::Null);
    let first = &page["items"][0];
    assert_eq!(first["entity"], "agent:a0");
    assert!(first["last_seen"].is_string() && first["open_incident"].is_null());

    let hosts = s.get("/v1/entities?kind=host", ADMIN_KEY).json();
    let names: Vec<&str> = hosts["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["entity"].as_str())
        .collect();
    assert_eq!(names, ["host:db", "host:mail", "host:web"]);
    assert_eq!(
        hosts["counts"]["initializing"], 0,
        "counts follow kind and q"
    );
    let q = items(&s, "/v1/entities?q=a1", ADMIN_KEY);
    let names: Vec<&str> = q.iter().filter_map(|e| e["entity"].as_str()).collect();
    assert_eq!(names, ["agent:a1", "agent:a10", "agent:a11"]);
    let healthy = s.get("/v1/entities?state=healthy", ADMIN_KEY).json();
    assert_eq!(healthy["items"].as_array().unwrap().len(), 3);
    assert_eq!(
        healthy["counts"]["initializing"], 12,
        "counts ignore the state filter"
    );

    // Pages of 4 cover all 15 once, in name order.
    let mut seen = Vec::new();
    let mut path = "/v1/entities?limit=4".to_owned();
    loop {
        let v = s.get(&path, ADMIN_KEY).json();
        let items = v["items"].as_array().unwrap();
        assert!(items.len() <= 4);
        seen.extend(
            items
                .iter()
                .filter_map(|e| e["entity"].as_str().map(str::to_owned)),
        );
        match v["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/entities?limit=4&cursor={c}"),
            None => break,
        }
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!((seen.len(), &seen), (15, &sorted));

    for bad in [
        "state=sick",
        "limit=0",
        "limit=1001",
        "cursor=zz",
        "color=red",
    ] {
        let r = s.get(&format!("/v1/entities?{bad}"), ADMIN_KEY);
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
        r.error_code();
    }
    assert!(s
        .get("/v1/entities?state=sick", ADMIN_KEY)
        .text()
        .contains("quarantined"));
    let other = new_tenant(&s);
    let theirs = s.get("/v1/entities", &other).json();
    assert!(theirs["items"].as_array().unwrap().is_empty());
    assert_eq!(theirs["counts"]["initializing"], 0);

    // Heal-all: a contained entity (drained while its approval waits) goes on probation.
    let pending = infect(&s, "agent:h");
    eventually(WAIT, || {
        (entity_state(&s, "agent:h") == "draining").then_some(())
    });
    let drained = s.get("/v1/entities?state=draining", ADMIN_KEY).json();
    assert_eq!(drained["items"][0]["entity"], "agent:h", "{drained}");
    assert_eq!(drained["counts"]["draining"], 1);
    assert_eq!(
        post(&s, "/v1/entities/heal-all", &other, "").json()["entities"],
        serde_json::json!([])
    );
    let r = post(&s, "/v1/entities/heal-all", ADMIN_KEY, "");
    assert_eq!(r.status, 200, "{}", r.text());
    let healed = r.json();
    assert_eq!(healed["entities"], serde_json::json!(["agent:h"]));
    let rejected = healed["items"].as_array().unwrap();
    assert!(
        rejected
            .iter()
            .any(|a| a["id"] == pending["id"] && a["status"] == "rejected"),
        "{healed}"
    );
    assert_eq!(entity_state(&s, "agent:h"), "probation");
}

/// 10,000 entities: the list still pages in well under a second a page (debug build).
#[test]
fn ten_thousand_entities_list_quickly() {
    let s = TestServer::start();
    let body: String = (0..10_000)
        .map(|i| format!("{{\"entity\":\"agent:n{i:05}\",\"kind\":\"vitals\",\"metrics\":{{\"tokens\":1000}}}}\n"))
        .collect();
    assert_eq!(s.post_ndjson(ADMIN_KEY, &body).status, 202);
    eventually(Duration::from_secs(60), || {
        let v = s.get("/v1/entities?limit=1", ADMIN_KEY).json();
        (v["counts"]["initializing"] == 10_000).then_some(())
    });
    let mut path = "/v1/entities?limit=1000".to_owned();
    let (mut pages, mut total, mut slowest) = (0, 0, Duration::ZERO);
    loop {
        let started = Instant::now();
        let v = s.get(&path, ADMIN_KEY).json();
        slowest = slowest.max(started.elapsed());
        pages += 1;
        total += v["items"].as_array().unwrap().len();
        match v["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/entities?limit=1000&cursor={c}"),
            None => break,
        }
    }
    assert_eq!((pages, total), (10, 10_000));
    eprintln!("10,000 entities: slowest page of 1,000 took {slowest:?}");
    assert!(slowest < Duration::from_secs(2), "slowest page {slowest:?}");
}
