//! Tenant self-service over the real binary: a tenant admin changes its own playbooks,
//! rules and response policy (validated with every error, versioned, diffed, rolled back,
//! audited with its key id, in force without a restart, durable over a restart) while other
//! tenants keep the global layer; tenant admins cannot touch the global layer or each other;
//! key and tenant changes are audited.

mod common;

use common::{eventually, Resp, TestServer, ADMIN_KEY};
use serde_json::Value;
use std::time::Duration;

/// A tenant's admin key and its id.
struct Tenant {
    key: String,
    key_id: String,
}

fn tenant(s: &TestServer, name: &str) -> Tenant {
    let r = s.post_json("/v1/tenants", ADMIN_KEY, &format!(r#"{{"name":"{name}"}}"#));
    assert_eq!(r.status, 201, "{}", r.text());
    let v = r.json();
    Tenant {
        key: v["admin_key"].as_str().unwrap().to_owned(),
        key_id: v["admin_key_id"].as_str().unwrap().to_owned(),
    }
}

fn send(s: &TestServer, method: &str, path: &str, key: &str, ct: &str, body: &str) -> Resp {
    s.request(
        method,
        path,
        Some(key),
        &[("Content-Type", ct)],
        body.as_bytes(),
    )
}

fn put_yaml(s: &TestServer, path: &str, key: &str, body: &str) -> Resp {
    send(s, "PUT", path, key, "application/yaml", body)
}

fn items(s: &TestServer, path: &str, key: &str) -> Vec<Value> {
    let r = s.get(path, key);
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    r.json()["items"].as_array().cloned().unwrap_or_default()
}

fn brute_force(ip: &str) -> String {
    (0..15)
        .map(|_| {
            format!(
                "{{\"entity\":\"host:ssh-1\",\"kind\":\"auth\",\"attrs\":{{\"src_ip\":\"{ip}\",\"user\":\"root\",\"service\":\"ssh\",\"outcome\":\"failure\"}}}}\n"
            )
        })
        .collect()
}

/// The tenant's block of `ip`, once it is in `status`.
fn block(s: &TestServer, key: &str, ip: &str, status: &str) -> Value {
    eventually(Duration::from_secs(20), || {
        items(s, &format!("/v1/actions?status={status}"), key)
            .into_iter()
            .find(|a| a["kind"] == "block_ip" && a["target"] == ip)
    })
}

/// The kinds of the tenant's findings.
fn findings(s: &TestServer, key: &str) -> Vec<String> {
    items(s, "/v1/findings", key)
        .iter()
        .filter_map(|f| f["kind"].as_str().map(str::to_owned))
        .collect()
}

fn audit(s: &TestServer, key: &str, kind: &str) -> Vec<Value> {
    items(s, &format!("/v1/audit?kind={kind}"), key)
}

/// B blocks brute force for two hours instead of the global one.
const LONG_BLOCK: &str = "- id: brute-force\n  description: Block brute force for longer\n  trigger:\n    kinds: [brute_force]\n  mode: auto\n  steps:\n    - action: block_ip\n      target: \"{{src_ip}}\"\n      ttl: [2h]\n      params: {scope: auth}\n";

#[test]
fn a_tenants_playbook_and_policy_are_audited_versioned_rolled_back_and_leave_others_alone() {
    let mut s = TestServer::start();
    let (a, b) = (tenant(&s, "alpha"), tenant(&s, "beta"));

    // Every error at once, with file:line; nothing stored.
    let bad = "- id: one\n  trigger: {kinds: [x]}\n  mode: yolo\n  steps:\n    - action: notify\n- id: two\n  steps: []\n";
    let r = put_yaml(&s, "/v1/playbooks/bad", &b.key, bad);
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.error_code(), "invalid_yaml");
    let msg = r.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(
        msg.contains("tenant/bad.yml:3:") && msg.contains("tenant/bad.yml:7:"),
        "{msg}"
    );
    assert_eq!(s.get("/v1/playbooks/bad/versions", &b.key).status, 404);
    let r = send(
        &s,
        "PUT",
        "/v1/policy",
        &b.key,
        "application/toml",
        "approvers = 0\ncolour = 1\n",
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.error_code(), "invalid_policy");
    let msg = r.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(
        msg.contains("tenant/policy.toml:1:") && msg.contains("tenant/policy.toml:2:"),
        "{msg}"
    );

    // B replaces the global brute-force playbook for itself, and sets its policy.
    let r = put_yaml(&s, "/v1/playbooks/bf", &b.key, LONG_BLOCK);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["version"], 1);
    let listed = items(&s, "/v1/playbooks", &b.key);
    let bf = listed.iter().find(|p| p["id"] == "brute-force").unwrap();
    assert_eq!(
        (bf["layer"].as_str(), bf["file"].as_str()),
        (Some("tenant"), Some("tenant/bf.yml"))
    );
    assert!(items(&s, "/v1/playbooks", &a.key)
        .iter()
        .all(|p| p["layer"] == "global"));
    let r = send(
        &s,
        "PUT",
        "/v1/policy",
        &b.key,
        "application/toml",
        "approval_risk = 9.5\n",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let r = send(
        &s,
        "PUT",
        "/v1/policy",
        &b.key,
        "application/json",
        r#"{"approval_risk": 9.8}"#,
    );
    assert_eq!(r.json()["version"], 2, "{}", r.text());
    let policy = s.get("/v1/policy", &b.key).json();
    assert_eq!(
        (
            policy["layer"].as_str(),
            policy["policy"]["approval_risk"].as_f64()
        ),
        (Some("tenant"), Some(9.8))
    );
    assert_eq!(s.get("/v1/policy", &a.key).json()["layer"], "global");
    assert_eq!(items(&s, "/v1/policy/versions", &b.key).len(), 2);

    // A's brute force still gets the global playbook; B's gets its own.
    assert_eq!(
        s.post_ndjson(&a.key, &brute_force("203.0.113.10")).status,
        202
    );
    assert_eq!(
        s.post_ndjson(&b.key, &brute_force("203.0.113.20")).status,
        202
    );
    assert_eq!(block(&s, &a.key, "203.0.113.10", "succeeded")["ttl"], 3600);
    assert_eq!(block(&s, &b.key, "203.0.113.20", "succeeded")["ttl"], 7200);

    // Audited in B's chain with B's key, before and after; nothing in A's.
    let puts = audit(&s, &b.key, "playbooks_put");
    let rec = &puts.last().expect("audited")["record"];
    assert_eq!(rec["actor"], b.key_id.as_str());
    assert_eq!(rec["subject"], "bf");
    assert_eq!(rec["data"]["before_sha256"], "none");
    assert_eq!(rec["data"]["version"], "1");
    assert!(
        rec["data"]["diff"]
            .as_str()
            .unwrap()
            .contains("+      ttl: [2h]"),
        "{rec}"
    );
    let policy_puts = audit(&s, &b.key, "policy_put");
    assert_eq!(policy_puts.len(), 2);
    let second = &policy_puts[1]["record"]["data"];
    assert_ne!(second["before_sha256"], second["after_sha256"]);
    assert!(audit(&s, &a.key, "playbooks_put").is_empty());
    assert!(audit(&s, &a.key, "policy_put").is_empty());

    // A second version, its diff, and a rollback to the first (a third version).
    let three_hours = LONG_BLOCK.replace("[2h]", "[3h]");
    assert_eq!(
        put_yaml(&s, "/v1/playbooks/bf", &b.key, &three_hours).json()["version"],
        2
    );
    let v2 = s.get("/v1/playbooks/bf/versions/2", &b.key).json();
    assert_eq!(v2["against"], 1);
    let diff: Vec<&str> = v2["diff"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        diff.contains(&"-      ttl: [2h]") && diff.contains(&"+      ttl: [3h]"),
        "{diff:?}"
    );
    let r = s.post_json("/v1/playbooks/bf/rollback", &b.key, r#"{"version":1}"#);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        (
            r.json()["version"].as_u64(),
            r.json()["rollback_of"].as_u64()
        ),
        (Some(3), Some(1))
    );
    let versions = items(&s, "/v1/playbooks/bf/versions", &b.key);
    assert_eq!(versions.len(), 3);
    assert_eq!(versions[2]["sha256"], versions[0]["sha256"]);
    assert_eq!(versions[2]["actor"], b.key_id.as_str());
    let rollbacks = audit(&s, &b.key, "playbooks_rollback");
    assert_eq!(rollbacks[0]["record"]["data"]["rollback_of"], "1");
    assert_eq!(s.get("/v1/playbooks/bf", &b.key).json()["text"], LONG_BLOCK);
    assert!(s.get("/v1/audit/verify", &b.key).json()["ok"]
        .as_bool()
        .unwrap_or(false));

    // Durable: after a restart the tenant layer is loaded from the store.
    s.stop();
    s.restart();
    assert_eq!(s.get("/v1/playbooks/bf", &b.key).json()["version"], 3);
    assert_eq!(
        s.get("/v1/policy", &b.key).json()["policy"]["approval_risk"],
        9.8
    );
    assert_eq!(
        s.post_ndjson(&b.key, &brute_force("203.0.113.21")).status,
        202
    );
    assert_eq!(block(&s, &b.key, "203.0.113.21", "succeeded")["ttl"], 7200);
}

#[test]
fn tenant_admins_cannot_touch_the_global_layer_or_each_others_documents() {
    let s = TestServer::start();
    let (a, b) = (tenant(&s, "alpha"), tenant(&s, "beta"));
    for path in ["/v1/playbooks/bf?scope=global", "/v1/rules/bf?scope=global"] {
        let r = put_yaml(&s, path, &b.key, "[]");
        assert_eq!(r.status, 403, "{path}: {}", r.text());
        assert_eq!(r.error_code(), "forbidden");
    }
    assert!(!s.dir.join("playbooks/bf.yml").exists());
    let analyst = s
        .post_json("/v1/keys", &b.key, r#"{"role":"analyst"}"#)
        .json()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        put_yaml(&s, "/v1/playbooks/bf", &analyst, LONG_BLOCK).status,
        403
    );
    assert_eq!(
        send(&s, "PUT", "/v1/policy", &analyst, "application/json", "{}").status,
        403
    );

    // B's documents are B's: A's key addresses only A's (the name falls back to no file).
    assert_eq!(
        put_yaml(&s, "/v1/playbooks/bf", &b.key, LONG_BLOCK).status,
        200
    );
    assert_eq!(
        s.get("/v1/playbooks/bf", &analyst).json()["layer"],
        "tenant"
    );
    assert_eq!(s.get("/v1/playbooks/bf", &a.key).status, 404);
    assert_eq!(s.get("/v1/playbooks/bf/versions", &a.key).status, 404);
    assert_eq!(s.get("/v1/playbooks/bf/versions/1", &a.key).status, 404);
    assert_eq!(
        s.post_json("/v1/playbooks/bf/rollback", &a.key, r#"{"version":1}"#)
            .status,
        404
    );
    // The global file of a name is readable, as the starting point for a tenant's own.
    let global = s.get("/v1/playbooks/brute_force", &a.key).json();
    assert_eq!(global["layer"], "global");
    assert!(global["text"].as_str().unwrap().contains("id: brute-force"));
    let r = send(
        &s,
        "PUT",
        "/v1/policy",
        &b.key,
        "text/plain",
        "mode = \"auto\"",
    );
    assert_eq!(r.status, 415, "{}", r.text());
}

/// Tenant B switches to approval at run time: its next brute force waits while A's is
/// automatic, with no restart.
#[test]
fn approval_mode_for_one_tenant_waits_while_the_other_runs_automatically() {
    let s = TestServer::start();
    let (a, b) = (tenant(&s, "alpha"), tenant(&s, "beta"));
    let r = send(
        &s,
        "PUT",
        "/v1/policy",
        &b.key,
        "application/toml",
        "mode = \"approval\"\n",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        s.post_ndjson(&a.key, &brute_force("198.51.100.10")).status,
        202
    );
    assert_eq!(
        s.post_ndjson(&b.key, &brute_force("198.51.100.20")).status,
        202
    );
    assert_eq!(
        block(&s, &a.key, "198.51.100.10", "succeeded")["mode"],
        "auto"
    );
    let waiting = block(&s, &b.key, "198.51.100.20", "pending_approval");
    assert_eq!(waiting["mode"], "approval");
    assert!(
        waiting["why"]["text"]
            .as_str()
            .unwrap()
            .contains("tenant policy"),
        "{waiting}"
    );
    // Back to the configured policy (an empty document): automatic again.
    let r = send(&s, "PUT", "/v1/policy", &b.key, "application/json", "{}");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        s.post_ndjson(&b.key, &brute_force("198.51.100.21")).status,
        202
    );
    block(&s, &b.key, "198.51.100.21", "succeeded");
}

#[test]
fn a_tenant_rule_fires_only_for_that_tenants_events() {
    let mut s = TestServer::start();
    let (a, b) = (tenant(&s, "alpha"), tenant(&s, "beta"));
    let rule = "- id: canary-token\n  kind: canary\n  severity: high\n  events: {kinds: [http]}\n  signature:\n    fields: [query]\n    literals: [canary-7f3a]\n";
    let r = put_yaml(&s, "/v1/rules/canary", &b.key, rule);
    assert_eq!(r.status, 200, "{}", r.text());
    let mine = items(&s, "/v1/rules", &b.key);
    assert!(mine
        .iter()
        .any(|r| r["id"] == "canary-token" && r["layer"] == "tenant"));
    assert!(items(&s, "/v1/rules", &a.key)
        .iter()
        .all(|r| r["id"] != "canary-token"));

    // One event carrying the canary and an SQL injection: A's global rules see only the latter.
    let ev = r#"{"entity":"host:w","kind":"http","attrs":{"query":"id=1' UNION SELECT password FROM users -- canary-7f3a"}}"#;
    assert_eq!(s.post_json("/v1/events", &a.key, ev).status, 202);
    assert_eq!(s.post_json("/v1/events", &b.key, ev).status, 202);
    let of_a = eventually(Duration::from_secs(10), || {
        let k = findings(&s, &a.key);
        k.contains(&"sqli".to_owned()).then_some(k)
    });
    assert!(!of_a.contains(&"canary".to_owned()), "{of_a:?}");
    eventually(Duration::from_secs(10), || {
        let k = findings(&s, &b.key);
        (k.contains(&"canary".to_owned()) && k.contains(&"sqli".to_owned())).then_some(())
    });

    // Still B's alone after a restart.
    s.stop();
    s.restart();
    assert_eq!(s.post_json("/v1/events", &b.key, ev).status, 202);
    eventually(Duration::from_secs(10), || {
        let n = findings(&s, &b.key)
            .iter()
            .filter(|k| *k == "canary")
            .count();
        (n == 2).then_some(())
    });
}

#[test]
fn key_and_tenant_changes_are_in_the_audit_chain() {
    let s = TestServer::start();
    let boot_id = items(&s, "/v1/keys", ADMIN_KEY)
        .into_iter()
        .find(|k| k["bootstrap"] == true)
        .and_then(|k| k["id"].as_str().map(str::to_owned))
        .unwrap();
    let created = s
        .post_json("/v1/tenants", ADMIN_KEY, r#"{"name":"gamma"}"#)
        .json();
    let (tid, admin) = (
        created["id"].as_str().unwrap().to_owned(),
        created["admin_key"].as_str().unwrap().to_owned(),
    );
    let admin_id = created["admin_key_id"].as_str().unwrap().to_owned();
    // The newest: the first start recorded tenant `default`'s own creation before it.
    let rec = audit(&s, ADMIN_KEY, "tenant_create").last().unwrap()["record"].clone();
    assert_eq!(
        (rec["subject"].as_str(), rec["actor"].as_str()),
        (Some(tid.as_str()), Some(boot_id.as_str()))
    );
    assert_eq!(rec["data"]["admin_key"], admin_id.as_str());

    let key = s
        .post_json("/v1/keys", &admin, r#"{"role":"analyst"}"#)
        .json();
    let kid = key["id"].as_str().unwrap().to_owned();
    let r = s.request("DELETE", &format!("/v1/keys/{kid}"), Some(&admin), &[], b"");
    assert_eq!(r.status, 204, "{}", r.text());
    for kind in ["key_create", "key_delete"] {
        let rec = audit(&s, &admin, kind)[0]["record"].clone();
        assert_eq!(
            (rec["subject"].as_str(), rec["actor"].as_str()),
            (Some(kid.as_str()), Some(admin_id.as_str())),
            "{kind}"
        );
        assert_eq!(rec["data"]["role"], "analyst");
    }

    let r = s.request(
        "DELETE",
        &format!("/v1/tenants/{tid}"),
        Some(ADMIN_KEY),
        &[],
        b"",
    );
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(
        s.get("/v1/playbooks", &admin).status,
        401,
        "its keys are revoked"
    );
    let rec = audit(&s, ADMIN_KEY, "tenant_delete")[0]["record"].clone();
    assert_eq!(rec["subject"], tid.as_str());
    assert_eq!(rec["data"]["keys_revoked"], "1");
    let again = s.request(
        "DELETE",
        &format!("/v1/tenants/{tid}"),
        Some(ADMIN_KEY),
        &[],
        b"",
    );
    assert_eq!(again.status, 404);
    let default = s.request("DELETE", "/v1/tenants/default", Some(ADMIN_KEY), &[], b"");
    assert_eq!(default.status, 409);
    assert!(s.get("/v1/audit/verify", ADMIN_KEY).json()["ok"]
        .as_bool()
        .unwrap_or(false));
}

/// Runs the binary with no ambient server settings, so only the given flags count.
fn cli(args: &[&str]) -> std::process::Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_antibody"));
    for var in [
        "ANTIBODY_URL",
        "ANTIBODY_KEY",
        "ANTIBODY_ADMIN_KEY",
        "ANTIBODY_DATA_DIR",
    ] {
        cmd.env_remove(var);
    }
    cmd.args(args).output().expect("run antibody")
}

#[test]
fn the_cli_gets_puts_lists_versions_and_rolls_back_for_the_keys_tenant() {
    let s = TestServer::start();
    let b = tenant(&s, "beta");
    let url = format!("http://{}", s.addr);
    let run = |args: &[&str]| {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--url", &url, "--key", &b.key]);
        cli(&all)
    };
    let ok = |args: &[&str]| {
        let out = run(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    for cmd in ["playbooks", "rules", "policy"] {
        let out = cli(&[cmd, "--help"]);
        assert!(
            out.status.success() && !out.stdout.is_empty(),
            "{cmd} --help"
        );
        for sub in ["get", "put", "versions", "rollback"] {
            assert!(
                cli(&[cmd, sub, "--help"]).status.success(),
                "{cmd} {sub} --help"
            );
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_owned()
    };

    // The global file is the starting point; the tenant's own version replaces it.
    assert!(ok(&["playbooks", "get", "brute_force"]).contains("id: brute-force"));
    let first = file("bf.yml", LONG_BLOCK);
    assert!(ok(&["playbooks", "put", "bf", &first]).contains("version 1"));
    let second = file("bf2.yml", &LONG_BLOCK.replace("[2h]", "[3h]"));
    assert!(ok(&["playbooks", "put", "bf", &second]).contains("version 2"));
    let listed = ok(&["playbooks", "get"]);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("brute-force") && l.contains("tenant")),
        "{listed}"
    );
    assert_eq!(
        ok(&["playbooks", "get", "bf", "--version", "1"]),
        LONG_BLOCK
    );
    let table = ok(&["playbooks", "versions", "bf"]);
    assert_eq!(table.lines().count(), 3, "{table}");
    let diff = ok(&["playbooks", "versions", "bf", "--show", "2"]);
    assert!(
        diff.contains("-      ttl: [2h]") && diff.contains("+      ttl: [3h]"),
        "{diff}"
    );
    assert!(ok(&["playbooks", "rollback", "bf", "1"]).contains("version 3, restoring version 1"));
    assert_eq!(ok(&["playbooks", "get", "bf"]), LONG_BLOCK);

    // A refusal shows every error with its line and fails.
    let bad = file("bad.yml", "- id: x\n  kind: canary\n- id: y\n");
    let out = run(&["rules", "put", "bad", &bad]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("tenant/bad.yml:1:") && err.contains("tenant/bad.yml:3:"),
        "{err}"
    );
    let out = run(&["playbooks", "put", "bf", &first, "--global"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a tenant admin cannot replace global files"
    );

    // The policy, from TOML and JSON files.
    let toml = file("policy.toml", "mode = \"approval\"\n");
    assert!(ok(&["policy", "put", &toml]).contains("version 1"));
    let json = file("policy.json", r#"{"modes": {"brute-force": "dry_run"}}"#);
    assert!(ok(&["policy", "put", &json]).contains("version 2"));
    let v: Value = serde_json::from_str(&ok(&["policy", "get"])).unwrap();
    assert_eq!(v["policy"]["modes"]["brute-force"], "dry_run");
    assert_eq!(
        v["policy"]["mode"],
        Value::Null,
        "version 2 replaced version 1"
    );
    assert!(ok(&["policy", "rollback", "1"]).contains("version 3"));
    assert_eq!(
        ok(&["policy", "get", "--document"]),
        "mode = \"approval\"\n"
    );
    assert_eq!(ok(&["policy", "versions"]).lines().count(), 4);
}
