//! The HTTP API end to end over the real binary: auth, roles, tenant isolation on every
//! endpoint, findings and incidents from real detection, bad input, operational endpoints.

mod common;

use common::{eventually, next_event, open_stream, TestServer, ADMIN_KEY};
use serde_json::Value;
use std::time::Duration;

/// Twenty normal vitals then a token explosion: a `token_spike` finding for `entity`.
fn spike_events(entity: &str) -> String {
    let mut body = String::new();
    for i in 0..20 {
        body.push_str(&format!(
            "{{\"entity\":\"{entity}\",\"kind\":\"vitals\",\"metrics\":{{\"tokens\":{}}}}}\n",
            1000 + (i % 5) * 10
        ));
    }
    body.push_str(&format!(
        "{{\"entity\":\"{entity}\",\"kind\":\"vitals\",\"metrics\":{{\"tokens\":250000}}}}\n"
    ));
    body
}

fn first_finding(s: &TestServer, key: &str, entity: &str) -> Value {
    eventually(Duration::from_secs(10), || {
        let r = s.get(&format!("/v1/findings?entity={entity}"), key);
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["items"]
            .as_array()
            .and_then(|a| a.first().cloned())
    })
}

fn create_key(s: &TestServer, admin: &str, role: &str) -> (String, String) {
    let r = s.post_json("/v1/keys", admin, &format!("{{\"role\":\"{role}\"}}"));
    assert_eq!(r.status, 201, "{}", r.text());
    let v = r.json();
    (
        v["key"].as_str().unwrap().to_owned(),
        v["id"].as_str().unwrap().to_owned(),
    )
}

#[test]
fn detection_isolation_roles_and_errors() {
    let s = TestServer::start();

    // Tenant B with its own admin key; only the bootstrap admin may create tenants.
    let r = s.post_json("/v1/tenants", ADMIN_KEY, r#"{"name":"beta"}"#);
    assert_eq!(r.status, 201, "{}", r.text());
    let b_admin = r.json()["admin_key"].as_str().unwrap().to_owned();
    let b_tenant = r.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(
        s.post_json("/v1/tenants", &b_admin, r#"{"name":"gamma"}"#)
            .status,
        403
    );
    assert_eq!(
        s.post_json("/v1/tenants", ADMIN_KEY, r#"{"name":"beta"}"#)
            .status,
        409
    );

    // Tenant A (default) detects a token spike.
    let (a_ingest, a_ingest_id) = create_key(&s, ADMIN_KEY, "ingest");
    let (a_analyst, _) = create_key(&s, ADMIN_KEY, "analyst");
    let r = s.post_ndjson(&a_ingest, &spike_events("agent:a1"));
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(r.json()["accepted"], 21);
    let f = first_finding(&s, &a_analyst, "agent:a1");
    assert_eq!(f["kind"], "token_spike");
    assert_eq!(f["detector"], "baseline");
    assert!(f["evidence"]["sigma"].as_f64().unwrap() >= 3.0);
    assert!(f["explanation"]["text"]
        .as_str()
        .unwrap()
        .contains("tokens"));
    let fid = f["id"].as_str().unwrap().to_owned();
    let iid = f["incident"].as_str().unwrap().to_owned();

    assert_eq!(
        s.get(&format!("/v1/findings/{fid}"), &a_analyst).status,
        200
    );
    let inc = s.get(&format!("/v1/incidents/{iid}"), &a_analyst);
    assert_eq!(inc.status, 200);
    let risk = inc.json()["risk"].as_f64().unwrap();
    assert!((0.0..=10.0).contains(&risk) && risk > 0.0);
    // The response engine owns the state: suspected once it took the incident, or already
    // containing it.
    let ent = eventually(Duration::from_secs(10), || {
        let ent = s.get("/v1/entities/agent:a1", &a_analyst).json();
        let state = ent["state"].as_str().unwrap_or("").to_owned();
        ["suspected", "draining", "quarantined"]
            .contains(&state.as_str())
            .then_some(ent)
    });
    assert!(ent["baselines"]["tokens"]["n"].as_u64().unwrap() >= 15);

    // Every endpoint with tenant B's key: A's objects do not exist for B.
    let b = &b_admin;
    assert_eq!(s.get(&format!("/v1/findings/{fid}"), b).status, 404);
    assert_eq!(s.get(&format!("/v1/incidents/{iid}"), b).status, 404);
    assert_eq!(s.get("/v1/entities/agent:a1", b).status, 404);
    assert_eq!(
        s.request(
            "DELETE",
            &format!("/v1/keys/{a_ingest_id}"),
            Some(b),
            &[],
            b""
        )
        .status,
        404
    );
    assert_eq!(
        s.get("/v1/findings", b).json()["items"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        s.get("/v1/incidents", b).json()["items"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    let b_keys = s.get("/v1/keys", b).json();
    let b_keys = b_keys["items"].as_array().unwrap();
    assert_eq!(b_keys.len(), 1);
    assert_eq!(b_keys[0]["tenant"], b_tenant.as_str());
    assert_eq!(s.get("/v1/tenants", b).status, 403);
    // B's events land in B only.
    let r = s.post_ndjson(
        b,
        "{\"entity\":\"agent:a1\",\"kind\":\"vitals\",\"metrics\":{\"tokens\":5}}\n",
    );
    assert_eq!(r.status, 202);
    let b_ent = eventually(Duration::from_secs(10), || {
        let r = s.get("/v1/entities/agent:a1", b);
        (r.status == 200).then(|| r.json())
    });
    assert_eq!(
        b_ent["baselines"]["tokens"]["n"], 1,
        "B's entity must not see A's baseline"
    );

    // Roles: ingest cannot read, analyst cannot ingest or manage keys, nobody without a key.
    assert_eq!(s.get("/v1/findings", &a_ingest).error_code(), "forbidden");
    assert_eq!(s.post_ndjson(&a_analyst, &spike_events("x")).status, 403);
    assert_eq!(
        s.post_json("/v1/keys", &a_analyst, r#"{"role":"admin"}"#)
            .status,
        403
    );
    assert_eq!(
        s.request("GET", "/v1/findings", None, &[], b"")
            .error_code(),
        "unauthorized"
    );
    assert_eq!(s.get("/v1/findings", "ab_nope").status, 401);

    // A deleted key stops working.
    assert_eq!(
        s.request(
            "DELETE",
            &format!("/v1/keys/{a_ingest_id}"),
            Some(ADMIN_KEY),
            &[],
            b""
        )
        .status,
        204
    );
    assert_eq!(s.post_ndjson(&a_ingest, &spike_events("x")).status, 401);
}

#[test]
fn bad_input_gets_clear_4xx() {
    let s = TestServer::start();
    let k = ADMIN_KEY;
    let post = |ct: &str, body: &[u8]| {
        s.request("POST", "/v1/events", Some(k), &[("Content-Type", ct)], body)
    };

    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("malformed json", b"{\"entity\": ".to_vec()),
        ("wrong type", br#"{"entity": 5, "kind": "vitals"}"#.to_vec()),
        ("missing entity", br#"{"kind": "vitals"}"#.to_vec()),
        (
            "metric not a number",
            br#"{"entity":"a","kind":"vitals","metrics":{"tokens":"many"}}"#.to_vec(),
        ),
        (
            "NaN literal",
            br#"{"entity":"a","kind":"vitals","metrics":{"tokens":NaN}}"#.to_vec(),
        ),
        (
            "overflow to inf",
            br#"{"entity":"a","kind":"vitals","metrics":{"tokens":1e400}}"#.to_vec(),
        ),
        (
            "invalid utf-8",
            b"{\"entity\":\"\xff\xfe\",\"kind\":\"vitals\"}".to_vec(),
        ),
        (
            "deep nesting",
            format!("{}{}", "[".repeat(5000), "]".repeat(5000)).into_bytes(),
        ),
        ("empty", Vec::new()),
    ];
    for (name, body) in cases {
        let r = post("application/json", &body);
        assert!(
            (400..500).contains(&r.status),
            "{name}: status {} {}",
            r.status,
            r.text()
        );
        r.error_code();
    }
    let huge = format!(
        r#"{{"entity":"a","kind":"log","attrs":{{"msg":"{}"}}}}"#,
        "x".repeat(2 << 20)
    );
    let r = post("application/json", huge.as_bytes());
    assert!((400..500).contains(&r.status), "huge string: {}", r.status);

    // NDJSON: a bad line rejects that line only.
    let r = post(
        "application/x-ndjson",
        b"{\"entity\":\"a\",\"kind\":\"vitals\"}\n{oops\n{\"kind\":\"vitals\"}\n",
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let v = r.json();
    assert_eq!(v["accepted"], 1);
    let rejected: Vec<u64> = v["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["index"].as_u64().unwrap())
        .collect();
    assert_eq!(rejected, vec![1, 2]);

    // Gzip bodies.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(
        &mut gz,
        b"[{\"entity\":\"a\",\"kind\":\"vitals\"},{\"entity\":\"b\",\"kind\":\"vitals\"}]",
    )
    .unwrap();
    let r = s.request(
        "POST",
        "/v1/events",
        Some(k),
        &[("Content-Encoding", "gzip")],
        &gz.finish().unwrap(),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(r.json()["accepted"], 2);

    // Too large → 413.
    let big = vec![b' '; 17 << 20];
    assert_eq!(post("application/json", &big).status, 413);

    // Query and path errors, unknown routes and methods keep the error shape.
    assert_eq!(s.get("/v1/findings?limit=0", k).error_code(), "bad_request");
    assert_eq!(
        s.get("/v1/findings?since=yesterday", k).error_code(),
        "bad_request"
    );
    assert_eq!(
        s.get("/v1/findings?colour=red", k).error_code(),
        "bad_request"
    );
    assert_eq!(
        s.get("/v1/incidents?status=maybe", k).error_code(),
        "bad_request"
    );
    assert_eq!(s.get("/v1/nope", k).error_code(), "not_found");
    assert_eq!(
        s.request("PUT", "/v1/findings", Some(k), &[], b"").status,
        405
    );
    assert_eq!(
        s.post_json("/v1/keys", k, "{\"role\":\"root\"}")
            .error_code(),
        "bad_request"
    );
    assert_eq!(
        s.post_json("/v1/tenants", k, "{\"name\":\"Bad Name!\"}")
            .error_code(),
        "bad_request"
    );
}

#[test]
fn idempotency_ids_are_accepted_once() {
    let s = TestServer::start();
    let body = "{\"id\":\"e-1\",\"entity\":\"agent:i\",\"kind\":\"vitals\",\"metrics\":{\"tokens\":1}}\n\
                {\"id\":\"e-1\",\"entity\":\"agent:i\",\"kind\":\"vitals\",\"metrics\":{\"tokens\":1}}\n";
    let r = s.post_ndjson(ADMIN_KEY, body);
    assert_eq!(r.json()["duplicates"], 1);
    assert_eq!(r.json()["accepted"], 1, "a repeated id is accepted once");
    let r = s.post_ndjson(ADMIN_KEY, body);
    assert_eq!(r.json()["duplicates"], 2);
    assert_eq!(r.json()["accepted"], 0);
    let n = eventually(Duration::from_secs(10), || {
        let r = s.get("/v1/entities/agent:i", ADMIN_KEY);
        (r.status == 200).then(|| r.json()["baselines"]["tokens"]["n"].as_u64().unwrap())
    });
    assert_eq!(n, 1);
}

#[test]
fn operational_endpoints() {
    let s = TestServer::start();
    assert_eq!(s.request("GET", "/healthz", None, &[], b"").status, 200);
    assert_eq!(s.request("GET", "/readyz", None, &[], b"").status, 200);
    s.post_ndjson(ADMIN_KEY, &spike_events("agent:m"));
    first_finding(&s, ADMIN_KEY, "agent:m");
    let m = s.request("GET", "/metrics", None, &[], b"").text();
    for needle in [
        "antibody_events_accepted_total 21",
        "antibody_log_bytes",
        "antibody_queue_depth_events",
        "antibody_findings_total ",
        "antibody_detect_latency_seconds_count",
    ] {
        assert!(m.contains(needle), "metrics lack {needle}:\n{m}");
    }
    // Anonymous: nothing that names a tenant or its kinds of findings (kinds name a
    // tenant's own rules).
    assert!(!m.contains("tenant=") && !m.contains("kind="), "{m}");
    let keyed = s.get("/metrics", ADMIN_KEY).text();
    assert!(
        keyed.contains("antibody_tenant_findings_total{tenant=\"default\",kind=\"token_spike\"}"),
        "{keyed}"
    );
    let api = s.request("GET", "/openapi.json", None, &[], b"").json();
    assert_eq!(api["openapi"], "3.1.0");
    for path in [
        "/v1/events",
        "/v1/findings",
        "/v1/incidents/{id}",
        "/v1/entities/{entity}",
        "/v1/entities",
        "/v1/incidents/{id}/resolve",
        "/v1/incidents/{id}/postmortem",
        "/v1/stream",
        "/v1/keys/{id}",
    ] {
        assert!(api["paths"][path].is_object(), "openapi lacks {path}");
    }
}

#[test]
fn stream_delivers_only_the_callers_tenants_findings() {
    let s = TestServer::start();
    let r = s.post_json("/v1/tenants", ADMIN_KEY, r#"{"name":"other"}"#);
    let b_admin = r.json()["admin_key"].as_str().unwrap().to_owned();
    let mut a_stream = open_stream(&s, ADMIN_KEY);
    let mut b_stream = open_stream(&s, &b_admin);
    assert_eq!(
        s.post_ndjson(ADMIN_KEY, &spike_events("agent:a-only"))
            .status,
        202
    );
    assert_eq!(
        next_event(&mut a_stream, "finding")["entity"],
        "agent:a-only"
    );
    assert_eq!(
        s.post_ndjson(&b_admin, &spike_events("agent:b-only"))
            .status,
        202
    );
    // B's first finding is its own: A's never reached B's stream.
    assert_eq!(
        next_event(&mut b_stream, "finding")["entity"],
        "agent:b-only"
    );
}
