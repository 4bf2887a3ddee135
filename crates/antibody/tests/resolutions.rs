//! What a person's resolution does over the real binary: a false positive lifts what the
//! incident put in force and rejects its waiting actions (approving one is refused); a
//! post-mortem lost between the resolution and its write is written at the next start; a
//! resolution that cannot be stored answers 503, not 200.

mod common;

use common::{eventually, TestServer, ADMIN_KEY};
use serde_json::Value;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

/// 20 ordinary vitals of `entity`, then a token spike: a pending action, the entity drained.
fn infect(s: &TestServer, entity: &str) -> Value {
    let mut body: String = (0..20)
        .map(|i| {
            format!(
                "{{\"entity\":\"{entity}\",\"kind\":\"vitals\",\"metrics\":{{\"tokens\":{}}}}}\n",
                1000 + i % 3 * 10
            )
        })
        .collect();
    body.push_str(&format!(
        "{{\"entity\":\"{entity}\",\"kind\":\"vitals\",\"metrics\":{{\"tokens\":500000}}}}\n"
    ));
    assert_eq!(s.post_ndjson(ADMIN_KEY, &body).status, 202);
    eventually(WAIT, || {
        let r = s.get("/v1/actions?status=pending_approval", ADMIN_KEY);
        let items = r.json()["items"].as_array().cloned().unwrap_or_default();
        items.into_iter().find(|a| a["target"] == entity)
    })
}

fn state(s: &TestServer, entity: &str) -> String {
    let r = s.get(&format!("/v1/entities/{entity}"), ADMIN_KEY);
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["state"].as_str().unwrap_or("").to_owned()
}

fn resolve(s: &TestServer, incident: &str, resolution: &str) -> common::Resp {
    let body = format!("{{\"resolution\":\"{resolution}\"}}");
    s.post_json(
        &format!("/v1/incidents/{incident}/resolve"),
        ADMIN_KEY,
        &body,
    )
}

#[test]
fn a_false_positive_lifts_containment_and_rejects_waiting_actions() {
    let s = TestServer::start();
    let pending = infect(&s, "agent:x");
    let (id, incident) = (
        pending["id"].as_str().unwrap(),
        pending["incident"].as_str().unwrap(),
    );
    assert!(
        matches!(state(&s, "agent:x").as_str(), "draining" | "quarantined"),
        "{}",
        state(&s, "agent:x")
    );
    let verdict = s.get("/v1/entities/agent:x/verdict", ADMIN_KEY).json();
    assert_eq!(verdict["verdict"], "quarantine", "{verdict}");

    let r = resolve(&s, incident, "false_positive");
    assert_eq!(r.status, 200, "{}", r.text());
    let verdict = s.get("/v1/entities/agent:x/verdict", ADMIN_KEY).json();
    assert_eq!(verdict["verdict"], "allow", "{verdict}");
    assert_eq!(state(&s, "agent:x"), "healthy");
    let action = s.get(&format!("/v1/actions/{id}"), ADMIN_KEY).json();
    assert_eq!(action["status"], "rejected", "{action}");
    let why = action["result"]["message"].as_str().unwrap_or("");
    assert!(
        why.starts_with(&format!("incident {incident} resolved false_positive by ")),
        "{action}"
    );
    let r = s.post_json(&format!("/v1/actions/{id}/approve"), ADMIN_KEY, "");
    assert_eq!((r.status, r.error_code().as_str()), (409, "conflict"));
    // The entity's way back is in the audit chain, by the person.
    let r = s
        .get("/v1/audit?subject=agent:x&kind=state", ADMIN_KEY)
        .json();
    let last = r["items"].as_array().and_then(|i| i.last()).cloned();
    let last = last.unwrap_or_default();
    assert_eq!(last["record"]["data"]["to"], "healthy", "{r}");
    assert_ne!(last["record"]["actor"], "engine", "{r}");
}

#[test]
fn approving_an_action_of_a_resolved_incident_is_a_conflict() {
    let s = TestServer::start();
    let pending = infect(&s, "agent:m");
    let (id, incident) = (
        pending["id"].as_str().unwrap(),
        pending["incident"].as_str().unwrap(),
    );
    let r = resolve(&s, incident, "mitigated");
    assert_eq!(r.status, 200, "{}", r.text());
    // `mitigated` leaves the containment as it stands.
    assert!(
        matches!(state(&s, "agent:m").as_str(), "draining" | "quarantined"),
        "{}",
        state(&s, "agent:m")
    );
    let r = s.post_json(&format!("/v1/actions/{id}/approve"), ADMIN_KEY, "");
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (409, "conflict"),
        "{}",
        r.text()
    );
}

#[test]
fn a_missing_postmortem_is_written_at_the_next_start() {
    let mut s = TestServer::start();
    let pending = infect(&s, "agent:p");
    let incident = pending["incident"].as_str().unwrap().to_owned();
    let pm = format!("/v1/incidents/{incident}/postmortem");
    assert_eq!(resolve(&s, &incident, "false_positive").status, 200);
    assert_eq!(s.get(&pm, ADMIN_KEY).status, 200);
    s.kill9();
    // As if the process died between storing the resolution and writing its report.
    let db = rusqlite::Connection::open(s.dir.join("antibody.db")).unwrap();
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(db.execute("DELETE FROM postmortems", []).unwrap(), 1);
    drop(db);
    s.restart();
    let got = eventually(WAIT, || {
        let r = s.get(&pm, ADMIN_KEY);
        (r.status == 200).then(|| r.json())
    });
    assert_eq!(got["resolution"], "false_positive", "{got}");
    assert_eq!(got["incident"], incident.as_str());
}

#[test]
fn a_resolution_that_cannot_be_stored_is_unavailable_and_changes_nothing() {
    let s = TestServer::start();
    let pending = infect(&s, "agent:u");
    let incident = pending["incident"].as_str().unwrap().to_owned();
    let db = rusqlite::Connection::open(s.dir.join("antibody.db")).unwrap();
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    db.execute_batch(
        "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit
         BEGIN SELECT RAISE(ABORT, 'audit writes refused by the test'); END;",
    )
    .unwrap();
    let r = resolve(&s, &incident, "false_positive");
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (503, "unavailable"),
        "{}",
        r.text()
    );
    assert_eq!(s.get("/readyz", ADMIN_KEY).status, 503);
    db.execute_batch("DROP TRIGGER refuse_audit").unwrap();
    let inc = s
        .get(&format!("/v1/incidents/{incident}"), ADMIN_KEY)
        .json();
    assert_ne!(inc["status"], "resolved", "{inc}");
    // Nothing was sealed or lifted: the entity is still held.
    assert_ne!(state(&s, "agent:u"), "healthy");
}
