//! The response engine over the real binary: an SSH brute force gets its source blocked
//! (served at /v1/blocklist, surviving a restart, undoable), a ≥ 5σ token explosion waits
//! for approval, every decision lands in a tamper-evident audit chain, and another tenant
//! sees none of it.

mod common;

use common::{eventually, TestServer, ADMIN_KEY};
use serde_json::Value;
use std::time::Duration;

const ATTACKER: &str = "203.0.113.77";

fn brute_force(ip: &str, n: usize) -> String {
    (0..n)
        .map(|_| {
            format!(
                "{{\"entity\":\"host:ssh-1\",\"kind\":\"auth\",\"attrs\":{{\"src_ip\":\"{ip}\",\"user\":\"root\",\"service\":\"ssh\",\"outcome\":\"failure\"}}}}\n"
            )
        })
        .collect()
}

fn actions(s: &TestServer, query: &str) -> Vec<Value> {
    let r = s.get(&format!("/v1/actions{query}"), ADMIN_KEY);
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["items"].as_array().cloned().unwrap_or_default()
}

fn blocklist(s: &TestServer) -> String {
    let r = s.get("/v1/blocklist", ADMIN_KEY);
    assert_eq!(r.status, 200, "{}", r.text());
    r.text()
}

#[test]
fn brute_force_is_blocked_survives_restart_and_can_be_undone() {
    let mut s = TestServer::start();
    assert_eq!(
        s.post_ndjson(ADMIN_KEY, &brute_force(ATTACKER, 15)).status,
        202
    );
    let block = eventually(Duration::from_secs(15), || {
        actions(&s, "?status=succeeded")
            .into_iter()
            .find(|a| a["kind"] == "block_ip")
    });
    assert_eq!(block["target"], ATTACKER);
    assert_eq!(block["ttl"], 3600);
    assert!(
        block["why"]["playbook"]
            .as_str()
            .is_some_and(|p| !p.is_empty()),
        "{block}"
    );
    assert!(blocklist(&s).lines().any(|l| l == ATTACKER));
    let json = s.get("/v1/blocklist?format=json", ADMIN_KEY).json();
    let entry = &json["items"][0];
    assert_eq!(entry["target"], ATTACKER);
    let ttl = entry["ttl"].as_i64().unwrap();
    assert!((3500..=3600).contains(&ttl), "ttl {ttl}");

    // Enforcement points with the least key: an ingest key reads the blocklist.
    let ingest = s
        .post_json("/v1/keys", ADMIN_KEY, r#"{"role":"ingest"}"#)
        .json()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(s.get("/v1/blocklist", &ingest).text().contains(ATTACKER));

    // Restart: still blocked, with (about) the same remaining TTL.
    s.stop();
    s.restart();
    let json = s.get("/v1/blocklist?format=json", ADMIN_KEY).json();
    assert_eq!(
        json["items"][0]["target"], ATTACKER,
        "block lost over a restart: {json}"
    );
    let ttl_after = json["items"][0]["ttl"].as_i64().unwrap();
    assert!(
        ttl_after <= ttl && ttl_after >= ttl - 60,
        "ttl {ttl} → {ttl_after}"
    );

    // Undo by hand: gone from the blocklist, audited with the actor's key id.
    let id = block["id"].as_str().unwrap();
    let r = s.post_json(&format!("/v1/actions/{id}/undo"), ADMIN_KEY, "");
    assert_eq!(r.status, 200, "{}", r.text());
    eventually(Duration::from_secs(10), || {
        (!blocklist(&s).contains(ATTACKER)).then_some(())
    });
    let audit = s.get(&format!("/v1/audit?subject={id}"), ADMIN_KEY).json();
    let actors: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["record"]["actor"].as_str())
        .collect();
    assert!(actors.contains(&"engine"), "{actors:?}");
    assert!(
        actors.iter().any(|a| a.starts_with("k-")),
        "the undo names its key: {actors:?}"
    );

    // Another tenant sees no block, no action, no audit.
    let other = s
        .post_json("/v1/tenants", ADMIN_KEY, r#"{"name":"other"}"#)
        .json()["admin_key"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(s.get("/v1/blocklist", &other).text(), "");
    assert_eq!(s.get(&format!("/v1/actions/{id}"), &other).status, 404);
    assert_eq!(
        s.post_json(&format!("/v1/actions/{id}/approve"), &other, "")
            .status,
        404
    );
    assert!(s.get("/v1/audit", &other).json()["items"]
        .as_array()
        .unwrap()
        .is_empty());
}

#[test]
fn a_five_sigma_infection_waits_for_approval() {
    let s = TestServer::start();
    let mut body = String::new();
    for i in 0..20 {
        body.push_str(&format!(
            "{{\"entity\":\"agent:x\",\"kind\":\"vitals\",\"metrics\":{{\"tokens\":{}}}}}\n",
            1000 + i % 3 * 10
        ));
    }
    body.push_str("{\"entity\":\"agent:x\",\"kind\":\"vitals\",\"metrics\":{\"tokens\":500000}}\n");
    assert_eq!(s.post_ndjson(ADMIN_KEY, &body).status, 202);
    let pending = eventually(Duration::from_secs(15), || {
        actions(&s, "?status=pending_approval").into_iter().next()
    });
    let id = pending["id"].as_str().unwrap().to_owned();
    // People learn that it waits for them: the inbox names the action.
    let asked = eventually(Duration::from_secs(10), || {
        let n = s.get("/v1/notifications?kind=approval", ADMIN_KEY).json();
        n["items"].as_array().and_then(|a| a.first().cloned())
    });
    assert_eq!(asked["action"], id.as_str(), "{asked}");
    // The incident shows the responder's view: diagnosis and the action.
    let inc = s
        .get(
            &format!("/v1/incidents/{}", pending["incident"].as_str().unwrap()),
            ADMIN_KEY,
        )
        .json();
    assert!(!inc["diagnosis"].as_array().unwrap().is_empty(), "{inc}");
    assert!(
        inc["actions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["id"] == id.as_str()),
        "{inc}"
    );
    // Approving needs the analyst role and changes the action.
    let ingest = s
        .post_json("/v1/keys", ADMIN_KEY, r#"{"role":"ingest"}"#)
        .json()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        s.post_json(&format!("/v1/actions/{id}/approve"), &ingest, "")
            .status,
        403
    );
    let r = s.post_json(&format!("/v1/actions/{id}/approve"), ADMIN_KEY, "");
    assert_eq!(r.status, 200, "{}", r.text());
    let status = eventually(Duration::from_secs(10), || {
        let a = s.get(&format!("/v1/actions/{id}"), ADMIN_KEY).json();
        let st = a["status"].as_str().unwrap_or("").to_owned();
        (st != "pending_approval").then_some(st)
    });
    assert!(
        ["approved", "executing", "succeeded"].contains(&status.as_str()),
        "{status}"
    );
    assert_eq!(
        s.post_json("/v1/actions/nope/approve", ADMIN_KEY, "")
            .error_code(),
        "not_found"
    );
}

#[test]
fn the_audit_chain_detects_an_edited_record() {
    let mut s = TestServer::start();
    assert_eq!(
        s.post_ndjson(ADMIN_KEY, &brute_force("198.51.100.9", 15))
            .status,
        202
    );
    eventually(Duration::from_secs(15), || {
        actions(&s, "?status=succeeded").into_iter().next()
    });
    let v = s.get("/v1/audit/verify", ADMIN_KEY).json();
    assert_eq!(v["ok"], true, "{v}");
    let n = v["entries"].as_u64().unwrap();
    assert!(n >= 2, "{v}");
    let ndjson = s.get("/v1/audit?format=ndjson", ADMIN_KEY).text();
    assert_eq!(ndjson.lines().count() as u64, n);

    // Tamper with the second record in the database while the server is down.
    s.stop();
    let db = rusqlite::Connection::open(s.dir.join("antibody.db")).unwrap();
    let body: String = db
        .query_row("SELECT body FROM audit WHERE idx = 1", [], |r| r.get(0))
        .unwrap();
    let mut entry: Value = serde_json::from_str(&body).unwrap();
    entry["record"]["detail"] = Value::String("nothing to see here".into());
    db.execute(
        "UPDATE audit SET body = ?1 WHERE idx = 1",
        [entry.to_string()],
    )
    .unwrap();
    drop(db);
    s.restart();
    let v = s.get("/v1/audit/verify", ADMIN_KEY).json();
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["broken_at"], 1, "{v}");
}

#[test]
fn assets_are_validated_and_isolated() {
    let s = TestServer::start();
    let r = s.request(
        "PUT",
        "/v1/assets/host:web-1",
        Some(ADMIN_KEY),
        &[("Content-Type", "application/json")],
        br#"{"criticality":5,"owner":"web-team","tags":["prod"],"group":"web"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let bad = s.request(
        "PUT",
        "/v1/assets/host:web-2",
        Some(ADMIN_KEY),
        &[],
        br#"{"criticality":9}"#,
    );
    assert_eq!(bad.status, 400, "{}", bad.text());
    bad.error_code();
    let bulk = s.post_json(
        "/v1/assets",
        ADMIN_KEY,
        r#"[{"entity":"agent:1","criticality":2},{"entity":"agent:2","criticality":0}]"#,
    );
    assert_eq!(
        bulk.status,
        400,
        "one bad item rejects the import: {}",
        bulk.text()
    );
    let items = s.get("/v1/assets", ADMIN_KEY).json()["items"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["criticality"], 5);
    let other = s
        .post_json("/v1/tenants", ADMIN_KEY, r#"{"name":"other"}"#)
        .json()["admin_key"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(s.get("/v1/assets", &other).json()["items"]
        .as_array()
        .unwrap()
        .is_empty());
    assert_eq!(
        s.get("/v1/entities/host:web-1/verdict", &other).json()["verdict"],
        "allow"
    );
}

/// A latency spike on 10 of 20 agents of one group at once is one fleet incident diagnosed
/// `external_cause`, and nobody is quarantined for it.
#[test]
fn a_fleet_wide_spike_is_an_external_cause_not_twenty_infections() {
    let s = TestServer::start();
    let assets: Vec<String> = (0..20)
        .map(|i| format!("{{\"entity\":\"agent:f{i}\",\"criticality\":3,\"group\":\"fleet-a\"}}"))
        .collect();
    let r = s.post_json("/v1/assets", ADMIN_KEY, &format!("[{}]", assets.join(",")));
    assert_eq!(r.status, 200, "{}", r.text());
    let mut body = String::new();
    for round in 0..20 {
        for i in 0..20 {
            body.push_str(&format!(
                "{{\"entity\":\"agent:f{i}\",\"kind\":\"vitals\",\"metrics\":{{\"latency_ms\":{}}}}}\n",
                800 + (round + i) % 5 * 10
            ));
        }
    }
    assert_eq!(s.post_ndjson(ADMIN_KEY, &body).status, 202);
    let spikes: String =
        (0..10).map(|i| format!("{{\"entity\":\"agent:f{i}\",\"kind\":\"vitals\",\"metrics\":{{\"latency_ms\":9000}}}}\n")).collect();
    assert_eq!(s.post_ndjson(ADMIN_KEY, &spikes).status, 202);
    let fleet = eventually(Duration::from_secs(15), || {
        let items = s.get("/v1/incidents", ADMIN_KEY).json()["items"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        items.into_iter().find(|i| i["entity"] == "group:fleet-a")
    });
    assert_eq!(fleet["diagnosis"][0]["cause"], "external_cause", "{fleet}");
    // The members' own incidents point at the external cause too.
    let member = s.get("/v1/incidents?entity=agent:f0", ADMIN_KEY).json();
    assert_eq!(
        member["items"][0]["diagnosis"][0]["cause"], "external_cause",
        "{member}"
    );
    let quarantines = actions(&s, "?limit=1000")
        .into_iter()
        .filter(|a| a["kind"] == "quarantine" || a["kind"] == "isolate")
        .count();
    assert_eq!(
        quarantines, 0,
        "nobody is quarantined for an external cause"
    );
}

#[test]
fn a_pending_approval_survives_a_restart() {
    let mut s = TestServer::start();
    let mut body = String::new();
    for i in 0..20 {
        body.push_str(&format!(
            "{{\"entity\":\"agent:p\",\"kind\":\"vitals\",\"metrics\":{{\"tokens\":{}}}}}\n",
            1000 + i % 3 * 10
        ));
    }
    body.push_str("{\"entity\":\"agent:p\",\"kind\":\"vitals\",\"metrics\":{\"tokens\":500000}}\n");
    assert_eq!(s.post_ndjson(ADMIN_KEY, &body).status, 202);
    let pending = eventually(Duration::from_secs(15), || {
        actions(&s, "?status=pending_approval").into_iter().next()
    });
    let id = pending["id"].as_str().unwrap().to_owned();
    s.stop();
    s.restart();
    let a = s.get(&format!("/v1/actions/{id}"), ADMIN_KEY).json();
    assert_eq!(a["status"], "pending_approval", "{a}");
    let r = s.post_json(&format!("/v1/actions/{id}/approve"), ADMIN_KEY, "");
    assert_eq!(
        r.status,
        200,
        "the responder still knows the approval after a restart: {}",
        r.text()
    );
}

/// The global rules and playbooks (`?scope=global`) are listed, and replaced through the API
/// without a restart: a bad file is refused with every error and changes nothing; a good
/// one takes effect at once. (Tenants' own layers: tests/tenant.rs.)
#[test]
fn rules_and_playbooks_are_replaced_live() {
    let s = TestServer::start();
    let before = s.get("/v1/rules", ADMIN_KEY).json()["items"]
        .as_array()
        .unwrap()
        .len();
    assert!(before >= 8);
    assert!(!s.get("/v1/playbooks", ADMIN_KEY).json()["items"]
        .as_array()
        .unwrap()
        .is_empty());
    let put = |path: &str, key: &str, body: &str| {
        s.request(
            "PUT",
            path,
            Some(key),
            &[("Content-Type", "application/yaml")],
            body.as_bytes(),
        )
    };

    let bad = put(
        "/v1/rules/custom?scope=global",
        ADMIN_KEY,
        "- id: Bad Id\n  kind: x\n",
    );
    assert_eq!(bad.status, 400, "{}", bad.text());
    assert_eq!(bad.error_code(), "invalid_yaml");
    assert!(bad.text().contains("custom.yml"), "{}", bad.text());
    assert_eq!(
        put("/v1/rules/..%2Fescape?scope=global", ADMIN_KEY, "[]").status,
        400
    );

    // Tenant admins cannot change what every tenant shares.
    let other = s
        .post_json("/v1/tenants", ADMIN_KEY, r#"{"name":"other"}"#)
        .json()["admin_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let rule = "- id: canary-token\n  kind: canary\n  severity: high\n  events: {kinds: [http]}\n  signature:\n    fields: [query]\n    literals: [canary-7f3a]\n";
    assert_eq!(
        put("/v1/rules/custom?scope=global", &other, rule).status,
        403
    );

    let ok = put("/v1/rules/custom?scope=global", ADMIN_KEY, rule);
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(
        s.get("/v1/rules", ADMIN_KEY).json()["items"]
            .as_array()
            .unwrap()
            .len(),
        before + 1
    );
    let ev = r#"{"entity":"host:w","kind":"http","attrs":{"query":"q=canary-7f3a"}}"#;
    assert_eq!(s.post_json("/v1/events", ADMIN_KEY, ev).status, 202);
    eventually(Duration::from_secs(10), || {
        let items = s.get("/v1/findings?kind=canary", ADMIN_KEY).json()["items"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        (!items.is_empty()).then_some(())
    });
    assert!(s.dir.join("rules/custom.yml").exists());

    let pb = "- id: canary-notify\n  description: Tell someone\n  trigger:\n    kinds: [canary]\n  mode: notify\n  steps:\n    - action: notify\n      target: security\n";
    let ok = put("/v1/playbooks/canary?scope=global", ADMIN_KEY, pb);
    assert_eq!(ok.status, 200, "{}", ok.text());
    let ids: Vec<String> = s.get("/v1/playbooks", ADMIN_KEY).json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(ids.contains(&"canary-notify".to_owned()), "{ids:?}");
}

/// With a firewall command configured, a block also reaches the host: here the "firewall"
/// is `touch`/`rm` on a marker file (argv, never a shell), applied and undone with the block.
#[test]
fn block_ip_runs_the_configured_firewall_command_and_its_undo() {
    let tmp = tempfile::tempdir().unwrap();
    let (s, mark, block) = firewall_block(tmp.path(), "", "192.0.2.44");
    assert!(mark.exists(), "the firewall command did not run: {block}");
    assert!(blocklist(&s).contains("192.0.2.44"));
    let id = block["id"].as_str().unwrap();
    assert_eq!(
        s.post_json(&format!("/v1/actions/{id}/undo"), ADMIN_KEY, "")
            .status,
        200
    );
    eventually(Duration::from_secs(10), || (!mark.exists()).then_some(()));
}

/// An applied block whose firewall rule disappears is reported as drift (audit + stream).
#[test]
fn firewall_drift_is_detected_and_audited() {
    let tmp = tempfile::tempdir().unwrap();
    let (s, mark, block) = firewall_block(tmp.path(), "drift_check_secs = 1\n", "192.0.2.55");
    let id = block["id"].as_str().unwrap().to_owned();
    // Someone removes the rule behind antibody's back.
    std::fs::remove_file(mark).unwrap();
    let drift = eventually(Duration::from_secs(15), || {
        let items = s
            .get(&format!("/v1/audit?kind=drift&subject={id}"), ADMIN_KEY)
            .json()["items"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        items.into_iter().next()
    });
    assert_eq!(drift["record"]["actor"], "engine", "{drift}");
}

/// A webhook that keeps failing is retried with backoff, then the step fails and the
/// playbook escalates to a person.
#[test]
fn a_failing_webhook_is_retried_then_escalated() {
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = std::sync::Arc::new(AtomicUsize::new(0));
    let seen = hits.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let mut conn = conn;
            conn.set_read_timeout(Some(Duration::from_secs(2))).ok();
            let mut buf = [0u8; 8192];
            let _ = conn.read(&mut buf);
            seen.fetch_add(1, Ordering::SeqCst);
            let _ = conn.write_all(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\nConnection: close\r\n\r\nnope");
        }
    });
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(data.join("playbooks")).unwrap();
    // It also answers every hypothesis of a brute force, so no other playbook is left to
    // fall back to (see PLAYBOOKS.md): the failure escalates.
    std::fs::write(
        data.join("playbooks/hook.yml"),
        format!(
            "- id: tell-the-soc\n  description: Post brute force to the SOC\n  trigger:\n    kinds: [brute_force]\n    diagnoses: [brute_force, credential_abuse]\n  mode: auto\n  steps:\n    - action: webhook\n      target: soc\n      params: {{url: \"http://127.0.0.1:{port}/hook\"}}\n      on_failure: escalate\n"
        ),
    )
    .unwrap();
    let config = tmp.path().join("antibody.toml");
    std::fs::write(
        &config,
        "[executors.webhook]\nretries = 2\nbackoff_ms = 10\ntimeout_ms = 1000\n",
    )
    .unwrap();
    let s = TestServer::start_in(&data, &["--config", config.to_str().unwrap()]);
    assert_eq!(
        s.post_ndjson(ADMIN_KEY, &brute_force("198.51.100.66", 15))
            .status,
        202
    );
    let failed = eventually(Duration::from_secs(20), || {
        actions(&s, "?status=failed")
            .into_iter()
            .find(|a| a["kind"] == "webhook")
    });
    assert_eq!(hits.load(Ordering::SeqCst), 3, "one try and two retries");
    assert!(
        failed["result"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("500"),
        "{failed}"
    );
    eventually(Duration::from_secs(10), || {
        let items = s.get("/v1/audit?kind=escalation", ADMIN_KEY).json()["items"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        (!items.is_empty()).then_some(())
    });
}

/// A server whose "host firewall" is `touch`/`rm` (and `test -e` to check) on marker files in
/// `<tmp>/marks`; the brute force from `ip` is sent and its succeeded block returned.
fn firewall_block(
    tmp: &std::path::Path,
    extra_config: &str,
    ip: &str,
) -> (TestServer, std::path::PathBuf, Value) {
    let marks = tmp.join("marks");
    std::fs::create_dir_all(&marks).unwrap();
    let config = tmp.join("antibody.toml");
    std::fs::write(
        &config,
        format!(
            "{extra_config}[executors.block_ip]\nargv = [\"/usr/bin/touch\", \"{m}/blocked-{{target}}\"]\nundo_argv = [\"/bin/rm\", \"{m}/blocked-{{target}}\"]\ncheck_argv = [\"/usr/bin/test\", \"-e\", \"{m}/blocked-{{target}}\"]\n",
            m = marks.display()
        ),
    )
    .unwrap();
    let s = TestServer::start_in(&tmp.join("data"), &["--config", config.to_str().unwrap()]);
    assert_eq!(s.post_ndjson(ADMIN_KEY, &brute_force(ip, 15)).status, 202);
    let block = eventually(Duration::from_secs(15), || {
        actions(&s, "?status=succeeded")
            .into_iter()
            .find(|a| a["kind"] == "block_ip")
    });
    (s, marks.join(format!("blocked-{ip}")), block)
}
