//! Under overload the server answers 429 with `Retry-After` and the API's error shape, never
//! a 5xx, and everything it did accept is processed.

mod common;

use common::{eventually, TestServer, ADMIN_KEY};
use std::time::Duration;

#[test]
fn a_full_ingest_queue_gives_429_with_retry_after() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("antibody.toml");
    // One event in flight at most: any request that arrives while another waits for the
    // log is refused.
    std::fs::write(&config, "[limits]\nmax_queued_events = 1\n").unwrap();
    let data = tmp.path().join("data");
    let s = TestServer::start_in(&data, &["--config", config.to_str().unwrap()]);
    let addr = s.addr;
    let body: String = (0..1000)
        .map(|i| {
            format!(
                "{{\"entity\":\"agent:{}\",\"kind\":\"vitals\",\"metrics\":{{\"x\":1}}}}\n",
                i % 50
            )
        })
        .collect();
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let body = body.clone();
            std::thread::spawn(move || {
                (0..15)
                    .map(|_| {
                        common::request(
                            addr,
                            "POST",
                            "/v1/events",
                            Some(ADMIN_KEY),
                            &[("Content-Type", "application/x-ndjson")],
                            body.as_bytes(),
                        )
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let responses: Vec<_> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let mut accepted = 0u64;
    let mut throttled = 0;
    for r in &responses {
        match r.status {
            202 => accepted += r.json()["accepted"].as_u64().unwrap(),
            429 => {
                throttled += 1;
                assert_eq!(r.error_code(), "overloaded");
                let retry: u64 = r
                    .header("retry-after")
                    .expect("Retry-After")
                    .parse()
                    .unwrap();
                assert!(retry >= 1);
            }
            other => panic!("unexpected status {other}: {}", r.text()),
        }
    }
    assert!(throttled > 0, "no request was throttled");
    assert!(accepted > 0);
    eventually(Duration::from_secs(20), || {
        let m = s.request("GET", "/metrics", None, &[], b"").text();
        m.contains(&format!("antibody_events_processed_total {accepted}\n"))
            .then_some(())
    });
    drop(tmp);
}
