//! A store that fails for longer than the sink used to retry (~20 s): the real server keeps
//! the findings it could not write, says so on `/readyz`, and writes them once the store
//! takes writes again, without a restart.

mod common;

use common::{eventually, TestServer, ADMIN_KEY};
use std::time::Duration;

/// Twenty normal vitals then a token explosion: one `token_spike` finding for `entity`.
fn spike(entity: &str) -> String {
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

fn stored_findings(db: &rusqlite::Connection, entity: &str) -> i64 {
    db.query_row(
        "SELECT count(*) FROM findings WHERE entity = ?1",
        [entity],
        |r| r.get(0),
    )
    .expect("count findings")
}

fn ready(s: &TestServer) -> common::Resp {
    s.request("GET", "/readyz", None, &[], b"")
}

#[test]
fn findings_held_through_a_long_store_outage_are_written_when_it_ends() {
    let s = TestServer::start();
    let db = rusqlite::Connection::open(s.dir.join("antibody.db")).expect("open the store");
    db.busy_timeout(Duration::from_secs(5))
        .expect("busy timeout");
    assert_eq!(s.post_ndjson(ADMIN_KEY, &spike("agent:before")).status, 202);
    eventually(Duration::from_secs(10), || {
        (stored_findings(&db, "agent:before") > 0).then_some(())
    });

    // Every finding insert now fails inside SQLite (a runtime error, as a failing disk gives).
    db.execute_batch(
        "CREATE TRIGGER broken BEFORE INSERT ON findings BEGIN SELECT abs(-9223372036854775807 - 1); END;",
    )
    .expect("break the store");
    assert_eq!(s.post_ndjson(ADMIN_KEY, &spike("agent:during")).status, 202);
    let why = eventually(Duration::from_secs(10), || {
        let r = ready(&s);
        (r.status == 503).then(|| r.text())
    });
    assert!(why.contains("store"), "{why}");
    // Longer than the ~20 s after which the sink used to drop the batch.
    std::thread::sleep(Duration::from_secs(25));
    assert_eq!(ready(&s).status, 503, "still failing, still not ready");
    assert_eq!(stored_findings(&db, "agent:during"), 0);

    db.execute_batch("DROP TRIGGER broken")
        .expect("mend the store");
    eventually(Duration::from_secs(15), || {
        (ready(&s).status == 200).then_some(())
    });
    assert!(
        stored_findings(&db, "agent:during") > 0,
        "the finding held through the outage is stored"
    );
    assert_eq!(s.post_ndjson(ADMIN_KEY, &spike("agent:after")).status, 202);
    eventually(Duration::from_secs(10), || {
        (stored_findings(&db, "agent:after") > 0).then_some(())
    });
}
