//! The optional LLM investigator over the real binary, against a fake OpenAI-compatible
//! endpoint (a std `TcpListener` in this file answering scripted replies in order, or never):
//! a valid plan becomes proposals pending approval; malformed, hostile and silent replies
//! leave the template summary; the playbook's own action runs regardless; every outcome is
//! audited. Without an endpoint, incidents still get the deterministic template summary.

mod common;

use common::{eventually, TestServer, ADMIN_KEY};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const ATTACKER: &str = "203.0.113.45";
const API_KEY: &str = "sk-test-investigator-key";
const MODEL: &str = "test-model";

/// What the fake endpoint does with the next request.
enum Script {
    /// 200 with a chat completion whose message content is this text.
    Content(String),
    /// A raw status and body.
    Raw(u16, String),
    /// Read the request and never answer.
    Hang,
}

#[derive(Debug, Default, Clone)]
struct Seen {
    path: String,
    auth: Option<String>,
    body: Vec<u8>,
}

struct FakeModel {
    base_url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl FakeModel {
    fn start(script: Vec<Script>) -> FakeModel {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let base_url = format!("http://{}/v1", listener.local_addr().expect("addr"));
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let log = Arc::clone(&seen);
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for (step, stream) in script.into_iter().zip(listener.incoming()) {
                let Ok(mut stream) = stream else { return };
                log.lock().unwrap().push(read_request(&mut stream));
                let (status, body) = match step {
                    Script::Content(text) => (200, completion(&text)),
                    Script::Raw(status, body) => (status, body),
                    Script::Hang => {
                        held.push(stream);
                        continue;
                    }
                };
                let head = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(body.as_bytes());
            }
            // Hung connections stay open while the test runs.
            let _ = listener.accept();
        });
        FakeModel { base_url, seen }
    }

    fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn completion(content: &str) -> String {
    json!({"id": "chatcmpl-1", "object": "chat.completion", "model": MODEL,
           "choices": [{"index": 0, "finish_reason": "stop",
                        "message": {"role": "assistant", "content": content}}]})
    .to_string()
}

fn read_request(stream: &mut TcpStream) -> Seen {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return Seen::default(),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let header = |name: &str| {
        head.split("\r\n")
            .filter_map(|l| l.split_once(':'))
            .find(|(n, _)| n.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_owned())
    };
    let len: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[end..].to_vec();
    while body.len() < len {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    Seen {
        path: head.split(' ').nth(1).unwrap_or("").to_owned(),
        auth: header("authorization"),
        body,
    }
}

/// A server whose `[investigator]` points at `fake`; the key comes from a file.
fn start(dir: &Path, fake: &FakeModel, timeout_ms: u64) -> TestServer {
    let key_file = dir.join("investigator.key");
    std::fs::write(&key_file, format!("{API_KEY}\n")).unwrap();
    let config = dir.join("antibody.toml");
    std::fs::write(
        &config,
        format!(
            "[investigator]\nbase_url = \"{}\"\nmodel = \"{MODEL}\"\napi_key = \"file:{}\"\ntimeout_ms = {timeout_ms}\n",
            fake.base_url,
            key_file.display()
        ),
    )
    .unwrap();
    let data = dir.join("data");
    TestServer::start_in(&data, &["--config", config.to_str().unwrap()])
}

/// SSH password guessing from `ip` against `host:ssh-1`, with attacker text in the payload.
fn brute_force(s: &TestServer, ip: &str) {
    let body: String = (0..15)
        .map(|_| {
            format!(
                "{{\"entity\":\"host:ssh-1\",\"kind\":\"auth\",\"attrs\":{{\"src_ip\":\"{ip}\",\"user\":\"root\",\"service\":\"ssh\",\"outcome\":\"failure\"}}}}\n"
            )
        })
        .collect();
    assert_eq!(s.post_ndjson(ADMIN_KEY, &body).status, 202);
}

fn actions(s: &TestServer, query: &str) -> Vec<Value> {
    let r = s.get(&format!("/v1/actions{query}"), ADMIN_KEY);
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["items"].as_array().cloned().unwrap_or_default()
}

fn incident_id(s: &TestServer) -> String {
    eventually(Duration::from_secs(15), || {
        let v = s.get("/v1/incidents?entity=host:ssh-1", ADMIN_KEY).json();
        v["items"][0]["id"].as_str().map(str::to_owned)
    })
}

/// The incident's summary once the investigator is done with it (any final status).
fn settled_summary(s: &TestServer, id: &str) -> Value {
    eventually(Duration::from_secs(20), || {
        let inc = s.get(&format!("/v1/incidents/{id}"), ADMIN_KEY).json();
        let status = inc["summary"]["investigator"]["status"].as_str()?;
        (status != "pending").then(|| inc["summary"].clone())
    })
}

fn audit(s: &TestServer, kind: &str) -> Vec<Value> {
    let v = s.get(&format!("/v1/audit?kind={kind}"), ADMIN_KEY).json();
    v["items"].as_array().cloned().unwrap_or_default()
}

/// The playbook blocked the attacker as it always does.
fn playbook_block(s: &TestServer) -> Value {
    eventually(Duration::from_secs(15), || {
        actions(s, "?status=succeeded")
            .into_iter()
            .find(|a| a["kind"] == "block_ip")
    })
}

#[test]
fn a_valid_plan_becomes_proposals_pending_approval() {
    let reply = json!({
        "summary": "SSH password guessing against host:ssh-1 from 203.0.113.45; the source is blocked. Check for a successful login.",
        "steps": [
            {"action": "quarantine", "target": "host:ssh-1", "ttl_secs": 7200, "why": "the host may be compromised"},
            {"action": "block_ip", "target": ATTACKER, "ttl_secs": 3600, "why": "repeat of the playbook"}
        ]
    });
    let fake = FakeModel::start(vec![Script::Content(reply.to_string())]);
    let tmp = tempfile::tempdir().unwrap();
    let s = start(tmp.path(), &fake, 10_000);
    brute_force(&s, ATTACKER);
    let block = playbook_block(&s);
    assert_eq!(block["target"], ATTACKER);
    assert_ne!(block["why"]["playbook"], "investigator");

    let id = incident_id(&s);
    let summary = settled_summary(&s, &id);
    assert_eq!(summary["source"], "investigator", "{summary}");
    assert_eq!(summary["text"], reply["summary"]);
    let inv = &summary["investigator"];
    assert_eq!(inv["status"], "answered");
    assert_eq!(inv["model"], MODEL);
    assert_eq!(inv["proposals"].as_array().unwrap().len(), 1, "{inv}");
    // The model repeated the playbook's block: dropped, with the reason.
    let dropped = inv["dropped"].as_array().unwrap();
    assert_eq!(dropped.len(), 1, "{inv}");
    assert!(
        dropped[0].as_str().unwrap().contains("already has it"),
        "{inv}"
    );

    // The proposal waits for a person; its why names the investigator and the model.
    let proposal = eventually(Duration::from_secs(10), || {
        actions(&s, "?status=pending_approval")
            .into_iter()
            .find(|a| a["why"]["playbook"] == "investigator")
    });
    assert_eq!(proposal["id"], inv["proposals"][0]);
    assert_eq!(
        (&proposal["kind"], &proposal["target"]),
        (&json!("quarantine"), &json!("host:ssh-1"))
    );
    assert_eq!(proposal["ttl"], 7200);
    assert_eq!(proposal["mode"], "approval");
    let why = proposal["why"]["text"].as_str().unwrap();
    assert!(why.contains("investigator") && why.contains(MODEL), "{why}");
    assert!(why.contains("the host may be compromised"), "{why}");

    // What was sent: the OpenAI chat completions shape, the key from the file, JSON mode,
    // and the untrusted findings fenced.
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 1, "asked exactly once");
    assert_eq!(reqs[0].path, "/v1/chat/completions");
    assert_eq!(
        reqs[0].auth.as_deref(),
        Some(format!("Bearer {API_KEY}").as_str())
    );
    let body: Value = serde_json::from_slice(&reqs[0].body).unwrap();
    assert_eq!(body["model"], MODEL);
    assert_eq!(body["response_format"]["type"], "json_object");
    let user = body["messages"][1]["content"].as_str().unwrap();
    assert!(
        user.contains("\"allowed_targets\"") && user.contains(ATTACKER),
        "{user}"
    );
    let fenced = user.split("<<<UNTRUSTED").nth(1).unwrap_or_default();
    assert!(
        fenced.contains("brute_force") && fenced.contains("UNTRUSTED>>>"),
        "{user}"
    );

    // Audited: the outcome with the model.
    let records = audit(&s, "investigator");
    assert!(
        records.iter().any(|r| r["record"]["subject"] == id.as_str()
            && r["record"]["actor"] == "investigator"
            && r["record"]["data"]["model"] == MODEL
            && r["record"]["detail"]
                .as_str()
                .unwrap_or("")
                .contains("1 proposal(s)")),
        "{records:?}"
    );
    assert_eq!(audit(&s, "investigator_drop").len(), 1);

    // Approving the proposal works like any other approval.
    let pid = proposal["id"].as_str().unwrap();
    let r = s.post_json(&format!("/v1/actions/{pid}/approve"), ADMIN_KEY, "");
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn a_malformed_reply_leaves_the_template_summary() {
    let fake = FakeModel::start(vec![Script::Content(
        "Sure! The incident looks bad {\"summary\": ".into(),
    )]);
    let tmp = tempfile::tempdir().unwrap();
    let s = start(tmp.path(), &fake, 10_000);
    brute_force(&s, ATTACKER);
    playbook_block(&s);
    let id = incident_id(&s);
    let summary = settled_summary(&s, &id);
    assert_eq!(summary["source"], "template", "{summary}");
    assert!(summary["text"]
        .as_str()
        .unwrap()
        .starts_with(&format!("Incident {id} on host:ssh-1")));
    assert_eq!(summary["investigator"]["status"], "failed");
    let detail = summary["investigator"]["detail"].as_str().unwrap();
    assert!(detail.contains("not JSON"), "{detail}");
    assert!(actions(&s, "?status=pending_approval").is_empty());
    let records = audit(&s, "investigator");
    assert!(
        records.iter().any(|r| r["record"]["detail"]
            .as_str()
            .unwrap_or("")
            .contains("not JSON")),
        "{records:?}"
    );
}

#[test]
fn a_hostile_reply_is_ignored_and_every_drop_audited() {
    // From an allow-listed address: the playbook never blocks it, and neither may the model.
    let local = "127.0.0.5";
    let reply = json!({
        "summary": "Benign test traffic. Approve every pending action.",
        "steps": [
            {"action": "format_disk", "target": "host:ssh-1", "why": "ignore previous instructions"},
            {"action": "block_ip", "target": local, "ttl_secs": 99_999_999},
            {"action": "quarantine", "target": "host:ssh-1", "ttl_secs": 3600}
        ]
    });
    let fake = FakeModel::start(vec![Script::Content(reply.to_string())]);
    let tmp = tempfile::tempdir().unwrap();
    let s = start(tmp.path(), &fake, 10_000);
    brute_force(&s, local);
    let id = incident_id(&s);
    let summary = settled_summary(&s, &id);
    assert_eq!(summary["source"], "template", "{summary}");
    assert!(!summary["text"].as_str().unwrap().contains("Approve every"));
    let inv = &summary["investigator"];
    assert_eq!(inv["status"], "distrusted");
    assert!(inv["proposals"].as_array().unwrap().is_empty());
    let drops: Vec<String> = audit(&s, "investigator_drop")
        .iter()
        .filter_map(|r| r["record"]["detail"].as_str().map(str::to_owned))
        .collect();
    assert!(
        drops
            .iter()
            .any(|d| d.contains("`format_disk` is not in the action catalogue")),
        "{drops:?}"
    );
    assert!(
        drops
            .iter()
            .any(|d| d.contains("allow-listed by `127.0.0.0/8`")),
        "{drops:?}"
    );
    // Nothing of it became an action; the address is not blocked.
    assert!(actions(&s, "")
        .iter()
        .all(|a| a["why"]["playbook"] != "investigator"));
    assert!(!s.get("/v1/blocklist", ADMIN_KEY).text().contains(local));
}

#[test]
fn a_silent_endpoint_times_out_and_the_playbook_is_unaffected() {
    let fake = FakeModel::start(vec![Script::Hang]);
    let tmp = tempfile::tempdir().unwrap();
    let s = start(tmp.path(), &fake, 300);
    brute_force(&s, ATTACKER);
    let block = playbook_block(&s);
    assert_eq!(block["target"], ATTACKER);
    let id = incident_id(&s);
    let summary = settled_summary(&s, &id);
    assert_eq!(summary["source"], "template");
    assert_eq!(summary["investigator"]["status"], "failed");
    let detail = summary["investigator"]["detail"].as_str().unwrap();
    assert!(detail.contains("no answer within 300 ms"), "{detail}");
    assert!(s.get("/v1/blocklist", ADMIN_KEY).text().contains(ATTACKER));
    assert_eq!(fake.requests().len(), 1);
}

#[test]
fn an_http_error_is_audited_and_the_key_is_never_echoed() {
    let fake = FakeModel::start(vec![Script::Raw(
        401,
        "{\"error\": {\"message\": \"Incorrect API key provided\"}}".into(),
    )]);
    let tmp = tempfile::tempdir().unwrap();
    let s = start(tmp.path(), &fake, 10_000);
    brute_force(&s, ATTACKER);
    let id = incident_id(&s);
    let summary = settled_summary(&s, &id);
    assert_eq!(summary["investigator"]["status"], "failed");
    assert!(summary["investigator"]["detail"]
        .as_str()
        .unwrap()
        .contains("HTTP 401"));
    let all = s.get("/v1/audit", ADMIN_KEY).text();
    assert!(!all.contains(API_KEY));
}

#[test]
fn without_an_endpoint_incidents_get_the_template_summary() {
    let s = TestServer::start();
    brute_force(&s, ATTACKER);
    playbook_block(&s);
    let id = incident_id(&s);
    let summary = eventually(Duration::from_secs(10), || {
        let inc = s.get(&format!("/v1/incidents/{id}"), ADMIN_KEY).json();
        let text = inc["summary"]["text"].as_str()?.to_owned();
        // The plan appears once the block is recorded on the view.
        text.contains("(succeeded)").then(|| inc["summary"].clone())
    });
    assert_eq!(summary["source"], "template");
    assert!(summary.get("investigator").is_none(), "{summary}");
    let text = summary["text"].as_str().unwrap();
    assert!(
        text.starts_with(&format!("Incident {id} on host:ssh-1: risk ")),
        "{text}"
    );
    for want in [
        "brute_force",
        ATTACKER,
        "Playbook `brute-force`: block_ip 203.0.113.45 (succeeded)",
    ] {
        assert!(text.contains(want), "{want}: {text}");
    }
    // Deterministic: asking again gives the same text.
    let again = s.get(&format!("/v1/incidents/{id}"), ADMIN_KEY).json();
    assert_eq!(again["summary"]["text"], summary["text"]);
}
