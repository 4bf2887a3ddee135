//! Clock steps as the real binary sees them through its API: event timestamps that jump
//! (a sender whose clock was a year behind, or ahead of the server's) must neither break an
//! entity's baselines nor stop detection. Steps of the server's own clock are covered where
//! time enters the engines, with the clock injected (`clock::is_due`, `expire_window` and the
//! partition, guard and responder tests).

mod common;

use common::{eventually, TestServer, ADMIN_KEY};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn vitals(entity: &str, ts: i64, tokens: u64) -> String {
    format!(
        "{{\"entity\":\"{entity}\",\"kind\":\"vitals\",\"ts\":{ts},\"metrics\":{{\"tokens\":{tokens}}}}}\n"
    )
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[test]
fn event_time_steps_keep_baselines_and_detection() {
    let s = TestServer::start();
    let now = now_ms();
    let year = 365 * 86_400_000;
    let steady = |from: i64| -> String {
        (0..20)
            .map(|i| vitals("agent:c", from + i * 1000, 1000 + (i as u64 % 5) * 10))
            .collect()
    };
    // A minute of normal traffic, then the sender's clock steps back a year, then forward
    // again to an hour ahead of the server (within the one-day allowance).
    for (body, accepted) in [
        (steady(now - 60_000), 20),
        (steady(now - year), 20),
        (steady(now + 3_600_000), 20),
    ] {
        let r = s.post_ndjson(ADMIN_KEY, &body);
        assert_eq!(r.status, 202, "{}", r.text());
        assert_eq!(r.json()["accepted"], accepted, "{}", r.text());
    }
    // Two days ahead is beyond the allowance: refused by name, the rest of the batch kept.
    let r = s.post_ndjson(
        ADMIN_KEY,
        &format!(
            "{}{}",
            vitals("agent:c", now + 2 * 86_400_000, 1000),
            vitals("agent:c", now, 1010)
        ),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(r.json()["accepted"], 1);
    assert!(r.text().contains("in the future"), "{}", r.text());
    // Every one of the 61 samples went into the baseline, whatever its timestamp.
    let n = eventually(Duration::from_secs(10), || {
        let r = s.get("/v1/entities/agent:c", ADMIN_KEY);
        let n = r.json()["baselines"]["tokens"]["n"].as_u64().unwrap_or(0);
        (n == 61).then_some(n)
    });
    assert_eq!(n, 61);
    // And a spike at the server's "now" is still caught against it.
    let r = s.post_ndjson(ADMIN_KEY, &vitals("agent:c", now_ms(), 250_000));
    assert_eq!(r.status, 202, "{}", r.text());
    let kind = eventually(Duration::from_secs(10), || {
        let r = s.get("/v1/findings?entity=agent:c", ADMIN_KEY);
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["items"][0]["kind"].as_str().map(str::to_owned)
    });
    assert_eq!(kind, "token_spike");
    assert_eq!(s.get("/readyz", ADMIN_KEY).status, 200);
}
