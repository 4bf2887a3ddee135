//! Crash safety over the real binary: every acknowledged event survives `kill -9`, the engine
//! state comes back (snapshot + log tail), and nothing is counted twice.

mod common;

use common::{eventually, TestServer, ADMIN_KEY};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const BATCH: usize = 50;

/// Batch `b`: `BATCH` events with ids, a constant metric (never anomalous, so the baseline's
/// `n` counts exactly the events seen), and every tenth batch one spike (one finding).
fn batch(b: usize) -> String {
    let mut s = String::new();
    for i in 0..BATCH {
        let id = b * BATCH + i;
        let x = if b % 10 == 9 && i == BATCH - 1 {
            1000.0
        } else {
            1.0
        };
        s.push_str(&format!("{{\"id\":\"ev-{id}\",\"entity\":\"agent:d\",\"kind\":\"vitals\",\"metrics\":{{\"x\":{x}}}}}\n"));
    }
    s
}

fn spikes(batches: usize) -> usize {
    (0..batches).filter(|b| b % 10 == 9).count()
}

fn send_all(s: &TestServer, range: std::ops::Range<usize>) {
    for b in range {
        let r = s.post_ndjson(ADMIN_KEY, &batch(b));
        assert_eq!(r.status, 202, "{}", r.text());
    }
}

fn baseline_n(s: &TestServer) -> Option<u64> {
    let r = s.get("/v1/entities/agent:d", ADMIN_KEY);
    (r.status == 200).then(|| r.json()["baselines"]["x"]["n"].as_u64().unwrap_or(0))
}

fn finding_count(s: &TestServer) -> usize {
    let r = s.get("/v1/findings?entity=agent:d&limit=1000", ADMIN_KEY);
    r.json()["items"].as_array().map_or(0, Vec::len)
}

fn wait_for_n(s: &TestServer, want: u64) {
    eventually(Duration::from_secs(30), || {
        (baseline_n(s) == Some(want)).then_some(())
    });
}

#[test]
fn kill_9_loses_no_acknowledged_event_and_counts_none_twice() {
    let mut s = TestServer::start();

    // Phase 1: a clean stop writes a snapshot.
    send_all(&s, 0..20);
    let normal = |batches: usize| (batches * BATCH - spikes(batches)) as u64;
    wait_for_n(&s, normal(20));
    s.stop();
    s.restart();
    assert_eq!(
        baseline_n(&s),
        Some(normal(20)),
        "snapshot restored the baseline"
    );

    // Phase 2: kill -9 while a client is sending; remember what was acknowledged.
    let acked = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let addr = s.addr;
    let sender = {
        let (acked, stop) = (acked.clone(), stop.clone());
        std::thread::spawn(move || {
            for b in 20..200 {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let body = batch(b);
                let r = std::panic::catch_unwind(|| {
                    common::request(
                        addr,
                        "POST",
                        "/v1/events",
                        Some(ADMIN_KEY),
                        &[("Content-Type", "application/x-ndjson")],
                        body.as_bytes(),
                    )
                });
                match r {
                    Ok(r) if r.status == 202 => acked.store(b + 1, Ordering::SeqCst),
                    _ => break,
                }
            }
        })
    };
    eventually(Duration::from_secs(30), || {
        (acked.load(Ordering::SeqCst) >= 60).then_some(())
    });
    s.kill9();
    stop.store(true, Ordering::SeqCst);
    let _ = sender.join();
    let acked_batches = acked.load(Ordering::SeqCst);

    // Restart: at least everything acknowledged is there.
    s.restart();
    let n_after = eventually(Duration::from_secs(30), || baseline_n(&s));
    assert!(
        n_after >= normal(acked_batches),
        "lost acknowledged events: n={n_after}, acked batches={acked_batches}"
    );

    // Resend everything with the same ids: exactly-once in the end.
    send_all(&s, 0..200);
    wait_for_n(&s, normal(200));
    assert_eq!(
        finding_count(&s),
        spikes(200),
        "each spike is one finding, none repeated"
    );
}
