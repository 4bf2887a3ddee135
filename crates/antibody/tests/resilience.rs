//! Response state that survives crashes and refuses to be silently lost: pending approvals,
//! active blocks and entity states survive a kill -9; an unreadable responder snapshot stops
//! start-up and names the file; a failed audit write makes the service not ready. And a
//! healed agent that settles at a new level re-converges instead of relapsing.

mod common;

use common::{eventually, TestServer, ADMIN_KEY};
use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::Duration;

const ATTACKER: &str = "203.0.113.66";

fn brute_force(ip: &str, n: usize) -> String {
    (0..n)
        .map(|_| {
            format!(
                "{{\"entity\":\"host:ssh-1\",\"kind\":\"auth\",\"attrs\":{{\"src_ip\":\"{ip}\",\"user\":\"root\",\"service\":\"ssh\",\"outcome\":\"failure\"}}}}\n"
            )
        })
        .collect()
}

/// 20 ordinary samples of `entity`'s tokens, then a spike far beyond them (≥ 5σ: waits for
/// approval).
fn infection(entity: &str) -> String {
    let mut body = String::new();
    for i in 0..20 {
        body.push_str(&format!(
            "{{\"entity\":\"{entity}\",\"kind\":\"vitals\",\"metrics\":{{\"tokens\":{}}}}}\n",
            1000 + i % 3 * 10
        ));
    }
    body.push_str(&format!(
        "{{\"entity\":\"{entity}\",\"kind\":\"vitals\",\"metrics\":{{\"tokens\":500000}}}}\n"
    ));
    body
}

fn actions(s: &TestServer, query: &str) -> Vec<Value> {
    let r = s.get(&format!("/v1/actions{query}"), ADMIN_KEY);
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["items"].as_array().cloned().unwrap_or_default()
}

fn pending_for(s: &TestServer, entity: &str) -> Option<Value> {
    actions(s, "?status=pending_approval")
        .into_iter()
        .find(|a| a["target"] == entity)
}

fn entity_state(s: &TestServer, entity: &str) -> String {
    let r = s.get(&format!("/v1/entities/{entity}"), ADMIN_KEY);
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["state"].as_str().unwrap_or("").to_owned()
}

fn blocked(s: &TestServer) -> bool {
    let r = s.get("/v1/blocklist", ADMIN_KEY);
    assert_eq!(r.status, 200, "{}", r.text());
    r.text().lines().any(|l| l == ATTACKER)
}

#[test]
fn pending_approvals_active_blocks_and_entity_states_survive_kill_9() {
    let mut s = TestServer::start();
    assert_eq!(
        s.post_ndjson(ADMIN_KEY, &brute_force(ATTACKER, 15)).status,
        202
    );
    eventually(Duration::from_secs(15), || blocked(&s).then_some(()));
    // One infection waits for approval (its agent contained meanwhile) ...
    assert_eq!(
        s.post_ndjson(ADMIN_KEY, &infection("agent:wait")).status,
        202
    );
    let pending = eventually(Duration::from_secs(15), || pending_for(&s, "agent:wait"));
    // ... the other is approved, applied, and its agent on probation.
    assert_eq!(
        s.post_ndjson(ADMIN_KEY, &infection("agent:heal")).status,
        202
    );
    let healing = eventually(Duration::from_secs(15), || pending_for(&s, "agent:heal"));
    let id = healing["id"].as_str().unwrap();
    let r = s.post_json(&format!("/v1/actions/{id}/approve"), ADMIN_KEY, "");
    assert_eq!(r.status, 200, "{}", r.text());
    eventually(Duration::from_secs(15), || {
        (entity_state(&s, "agent:heal") == "probation").then_some(())
    });
    let contained = entity_state(&s, "agent:wait");
    assert!(
        ["draining", "quarantined"].contains(&contained.as_str()),
        "{contained}"
    );

    s.kill9();
    s.restart();
    assert!(blocked(&s), "the block survives");
    let id = pending["id"].as_str().unwrap();
    let a = s.get(&format!("/v1/actions/{id}"), ADMIN_KEY).json();
    assert_eq!(a["status"], "pending_approval", "{a}");
    assert_eq!(entity_state(&s, "agent:heal"), "probation");
    let after = entity_state(&s, "agent:wait");
    assert!(
        ["draining", "quarantined"].contains(&after.as_str()),
        "{after}"
    );
    // The restored approval still works, and the probation goes on to its end.
    let r = s.post_json(&format!("/v1/actions/{id}/approve"), ADMIN_KEY, "");
    assert_eq!(r.status, 200, "{}", r.text());
    let mut normal = infection("agent:heal");
    normal.truncate(normal.rfind("{\"entity\"").unwrap());
    assert_eq!(s.post_ndjson(ADMIN_KEY, &normal).status, 202);
    eventually(Duration::from_secs(15), || {
        let r = s.get("/v1/audit?subject=agent:heal&kind=state", ADMIN_KEY);
        let items = r.json()["items"].as_array().cloned().unwrap_or_default();
        let last = items.last().map(|e| e["record"]["data"]["to"].clone());
        (last == Some(Value::from("healthy"))).then_some(())
    });
}

#[test]
fn an_unreadable_responder_snapshot_stops_start_up_and_names_the_file() {
    let mut s = TestServer::start();
    assert_eq!(
        s.post_ndjson(ADMIN_KEY, &brute_force(ATTACKER, 15)).status,
        202
    );
    eventually(Duration::from_secs(15), || blocked(&s).then_some(()));
    s.stop();
    let path = s.dir.join("snapshots").join("responder.snap");
    let mut bytes = std::fs::read(&path).expect("a responder snapshot after a clean stop");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x5a;
    std::fs::write(&path, bytes).unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_antibody"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&s.dir)
        .env("ANTIBODY_ADMIN_KEY", ADMIN_KEY)
        .env_remove("ANTIBODY_LISTEN")
        .env_remove("ANTIBODY_DATA_DIR")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn antibody");
    let status = eventually(Duration::from_secs(30), || child.try_wait().unwrap());
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "started on a damaged snapshot: {stderr}");
    assert!(
        stderr.contains(&path.display().to_string()),
        "names the file: {stderr}"
    );
    assert!(
        stderr.contains("move it aside"),
        "says what to do: {stderr}"
    );
    assert!(!stderr.contains("listening on"), "{stderr}");
}

#[test]
fn a_failed_audit_write_makes_the_service_not_ready() {
    let s = TestServer::start();
    assert_eq!(s.get("/readyz", ADMIN_KEY).status, 200);
    let db = rusqlite::Connection::open(s.dir.join("antibody.db")).unwrap();
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    db.execute_batch(
        "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit
         BEGIN SELECT RAISE(ABORT, 'audit writes refused by the test'); END;",
    )
    .unwrap();
    assert_eq!(
        s.post_ndjson(ADMIN_KEY, &brute_force(ATTACKER, 15)).status,
        202
    );
    // The stage retries for a few seconds before it gives up.
    let r = eventually(Duration::from_secs(40), || {
        let r = s.get("/readyz", ADMIN_KEY);
        (r.status == 503).then_some(r)
    });
    assert_eq!(r.error_code(), "unavailable");
    let message = r.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(message.contains("audit"), "{message}");
    assert!(message.contains("refused by the test"), "{message}");
}

/// Tokens around `level` for `entity`, `n` events.
fn vitals(entity: &str, level: u32, n: u32) -> String {
    (0..n)
        .map(|i| {
            format!(
                "{{\"entity\":\"{entity}\",\"kind\":\"vitals\",\"metrics\":{{\"tokens\":{}}}}}\n",
                level + i % 3 * (level / 100)
            )
        })
        .collect()
}

fn token_findings(s: &TestServer, entity: &str) -> usize {
    let r = s.get(
        &format!("/v1/findings?entity={entity}&kind=token_spike&limit=1000"),
        ADMIN_KEY,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["items"].as_array().map_or(0, Vec::len)
}

/// The lifecycle states `entity` went through, from the audit chain.
fn states(s: &TestServer, entity: &str) -> Vec<String> {
    let r = s.get(&format!("/v1/audit?subject={entity}&kind=state"), ADMIN_KEY);
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["record"]["data"]["to"].as_str().map(str::to_owned))
        .collect()
}

fn tokens_learned(s: &TestServer, entity: &str) -> u64 {
    let r = s.get(&format!("/v1/entities/{entity}"), ADMIN_KEY);
    r.json()["baselines"]["tokens"]["n"].as_u64().unwrap_or(0)
}

const SHIFTED: &str = "agent:shift";

/// A server configured with `baseline` (`[engine.baseline]` lines) on which [`SHIFTED`]'s
/// token explosion was rate-limited automatically, and which passed probation and is
/// healthy again; the temp dir holds the config and data.
fn healed_agent(baseline: &str) -> (TestServer, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("antibody.toml");
    std::fs::write(
        &config,
        format!(
            "[respond.policy]\napproval_sigma = 1000000.0\napproval_risk = 10.0\n\
             [engine.baseline]\n{baseline}\n"
        ),
    )
    .unwrap();
    let data = tmp.path().join("data");
    let s = TestServer::start_in(&data, &["--config", config.to_str().unwrap()]);
    const E: &str = SHIFTED;
    assert_eq!(s.post_ndjson(ADMIN_KEY, &vitals(E, 1000, 30)).status, 202);
    assert_eq!(s.post_ndjson(ADMIN_KEY, &vitals(E, 20_000, 1)).status, 202);
    eventually(Duration::from_secs(15), || {
        (entity_state(&s, E) == "probation").then_some(())
    });
    assert_eq!(s.post_ndjson(ADMIN_KEY, &vitals(E, 1000, 5)).status, 202);
    eventually(Duration::from_secs(15), || {
        (states(&s, E).last().map(String::as_str) == Some("healthy")).then_some(())
    });
    assert_eq!(token_findings(&s, E), 1);
    (s, tmp)
}

/// Heal → re-converge: the agent's legitimate new level (+50 %) after the heal raises no
/// finding and no second incident cycle; a real attack during the window is still seen.
#[test]
fn a_healed_agent_settles_at_a_new_level_without_relapsing() {
    const E: &str = SHIFTED;
    let (s, _tmp) = healed_agent("reconverge_ms = 600000");
    let before = tokens_learned(&s, E);
    assert_eq!(s.post_ndjson(ADMIN_KEY, &vitals(E, 1500, 60)).status, 202);
    eventually(Duration::from_secs(15), || {
        (tokens_learned(&s, E) >= before + 60).then_some(())
    });
    assert_eq!(token_findings(&s, E), 1, "the new level is not reported");
    assert_eq!(states(&s, E).last().map(String::as_str), Some("healthy"));
    assert_eq!(
        states(&s, E).iter().filter(|st| *st == "suspected").count(),
        1,
        "one incident cycle: {:?}",
        states(&s, E)
    );
    assert_eq!(s.post_ndjson(ADMIN_KEY, &vitals(E, 500_000, 1)).status, 202);
    eventually(Duration::from_secs(15), || {
        (token_findings(&s, E) == 2).then_some(())
    });
}

/// The control: without re-convergence the same shift is reported again and again and the
/// agent relapses into a second incident cycle.
#[test]
fn without_reconvergence_the_same_shift_relapses() {
    const E: &str = SHIFTED;
    let (s, _tmp) = healed_agent("reconverge_ms = 0");
    assert_eq!(s.post_ndjson(ADMIN_KEY, &vitals(E, 1500, 60)).status, 202);
    eventually(Duration::from_secs(15), || {
        (token_findings(&s, E) > 1).then_some(())
    });
    eventually(Duration::from_secs(15), || {
        let suspected = states(&s, E).iter().filter(|st| *st == "suspected").count();
        (suspected == 2).then_some(())
    });
}

/// A heal the engine's checkpoint does not know yet (no checkpoint since; the responder's
/// snapshot is newer) still re-converges after a crash: the stage asks again at start.
#[test]
fn reconvergence_after_a_heal_survives_a_crash() {
    const E: &str = SHIFTED;
    // No engine checkpoint during the test: the restart replays the whole log.
    let (mut s, _tmp) = healed_agent("reconverge_ms = 600000\n[log]\ncheckpoint_secs = 3600");
    // Any person's command writes the responder's snapshot, which now holds the heal.
    let r = s.post_json("/v1/actions/approve-all", ADMIN_KEY, "");
    assert_eq!(r.status, 200, "{}", r.text());
    let learned = tokens_learned(&s, E);
    s.kill9();
    s.restart();
    eventually(Duration::from_secs(15), || {
        (tokens_learned(&s, E) >= learned).then_some(())
    });
    let before = tokens_learned(&s, E);
    assert_eq!(s.post_ndjson(ADMIN_KEY, &vitals(E, 1500, 60)).status, 202);
    eventually(Duration::from_secs(15), || {
        (tokens_learned(&s, E) >= before + 60).then_some(())
    });
    assert_eq!(token_findings(&s, E), 1, "the new level is not reported");
    assert_eq!(states(&s, E).last().map(String::as_str), Some("healthy"));
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The previous build's data dir (store schema 5, a version-1 responder snapshot, its log),
/// killed -9 with an active block and a pending approval (see
/// `tests/fixtures/data-dir-v5/README.md`): this build starts on it and holds both.
#[test]
fn the_previous_builds_data_dir_starts_with_its_blocks_and_approvals() {
    let tmp = tempfile::tempdir().unwrap();
    let fixture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/data-dir-v5");
    copy_dir(&fixture, tmp.path());
    let s = TestServer::start_in(tmp.path(), &[]);
    assert_eq!(s.request("GET", "/readyz", None, &[], b"").status, 200);
    // The block: in force until its year is up, then expired, never lost.
    let block = actions(&s, "?limit=1000")
        .into_iter()
        .find(|a| a["kind"] == "block_ip" && a["target"] == "203.0.113.77")
        .expect("the block_ip action survives");
    let entry = s.get("/v1/blocklist?format=json", ADMIN_KEY).json()["items"]
        .as_array()
        .and_then(|items| items.first().cloned());
    match block["status"].as_str() {
        Some("succeeded") => {
            let entry = entry.expect("a block in force is on the blocklist");
            assert_eq!(entry["target"], "203.0.113.77", "{entry}");
            assert_eq!(entry["action"], block["id"], "{entry}");
        }
        Some("expired") => assert!(entry.is_none(), "{entry:?}"),
        other => panic!("block_ip is {other:?}: {block}"),
    }
    // The pending approval, the contained agent and its asset, and the approval still works.
    let pending = pending_for(&s, "agent:x").expect("the pending approval survives");
    assert_eq!(pending["kind"], "rate_limit", "{pending}");
    let verdict = s.get("/v1/entities/agent:x/verdict", ADMIN_KEY).json();
    assert_eq!(verdict["verdict"], "quarantine", "{verdict}");
    let assets = s.get("/v1/assets", ADMIN_KEY).json();
    assert_eq!(assets["items"][0]["owner"], "team-research", "{assets}");
    let id = pending["id"].as_str().unwrap();
    let r = s.post_json(&format!("/v1/actions/{id}/approve"), ADMIN_KEY, "");
    assert_eq!(r.status, 200, "{}", r.text());
    let status = eventually(Duration::from_secs(10), || {
        let a = s.get(&format!("/v1/actions/{id}"), ADMIN_KEY).json();
        (a["status"] != "pending_approval").then(|| a["status"].clone())
    });
    assert!(["approved", "executing", "succeeded"].contains(&status.as_str().unwrap_or("")));
    // Old incidents read in the new shape; the audit chain carries on unbroken.
    let incidents = s.get("/v1/incidents", ADMIN_KEY).json();
    assert!(
        !incidents["items"].as_array().unwrap().is_empty(),
        "{incidents}"
    );
    let verify = s.get("/v1/audit/verify", ADMIN_KEY).json();
    assert_eq!(verify["ok"], true, "{verify}");
}
