//! Production hardening of the data path and keys (issue 17, part B): a log that fails
//! (file size limit standing in for a full disk) refuses whole batches and comes back by
//! itself; keys that expire, rotate and are hashed slowly when chosen; every key and tenant
//! change audited; a private, locked data dir; errors that say what to do.

mod common;

use common::{eventually, TestServer, ADMIN_KEY};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Events of ~2 KB each (no metrics: nothing to detect), with idempotency ids.
fn padded(prefix: &str, n: usize) -> String {
    let pad = "x".repeat(2000);
    (0..n)
        .map(|i| {
            format!(
                "{{\"id\":\"{prefix}-{i}\",\"entity\":\"host:h{}\",\"kind\":\"note\",\"attrs\":{{\"pad\":\"{pad}\"}}}}\n",
                i % 10
            )
        })
        .collect()
}

fn newest_segment(dir: &Path) -> PathBuf {
    let mut segs: Vec<PathBuf> = std::fs::read_dir(dir.join("log"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segs.sort();
    segs.pop().expect("a segment")
}

/// Sets the running server's soft limit on the size of any file it writes (`prlimit`): a
/// write past it fails with EFBIG, as a full disk fails one with ENOSPC, without filling
/// (or mounting) anything on this machine.
fn limit_file_size(s: &TestServer, bytes: Option<u64>) {
    let pid = s.pid().expect("running") as libc::pid_t;
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain prlimit(2) calls on our own child, with valid pointers.
    unsafe {
        assert_eq!(
            libc::prlimit(pid, libc::RLIMIT_FSIZE, std::ptr::null(), &mut old),
            0
        );
        let new = libc::rlimit {
            rlim_cur: bytes.unwrap_or(libc::RLIM_INFINITY),
            rlim_max: old.rlim_max,
        };
        assert_eq!(
            libc::prlimit(pid, libc::RLIMIT_FSIZE, &new, std::ptr::null_mut()),
            0,
            "prlimit: {}",
            std::io::Error::last_os_error()
        );
    }
}

fn metric(s: &TestServer, name: &str) -> u64 {
    let text = s.get("/metrics", ADMIN_KEY).text();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
}

#[test]
fn a_full_disk_refuses_whole_batches_and_ingest_resumes_once_space_is_back() {
    let mut s = TestServer::start();
    let warm = s.post_ndjson(ADMIN_KEY, &padded("warm", 1500));
    assert_eq!(warm.status, 202, "{}", warm.text());
    let segment = newest_segment(&s.dir);
    let before = std::fs::metadata(&segment).unwrap().len();
    // Room for ~30 more events; the next batch is ~2 MB.
    limit_file_size(&s, Some(before + 64 * 1024));
    let refused = s.post_ndjson(ADMIN_KEY, &padded("batch", 1000));
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert_eq!(refused.error_code(), "unavailable");
    assert_eq!(
        std::fs::metadata(&segment).unwrap().len(),
        before,
        "none of the refused batch may stay in the log"
    );
    let ready = s.request("GET", "/readyz", None, &[], b"");
    assert_eq!(ready.status, 503);
    assert!(ready.text().contains("durable log"), "{}", ready.text());
    // Still full: still refused, still not ready.
    assert_eq!(s.post_ndjson(ADMIN_KEY, &padded("batch", 1000)).status, 503);
    assert_eq!(s.request("GET", "/readyz", None, &[], b"").status, 503);

    limit_file_size(&s, None);
    eventually(Duration::from_secs(20), || {
        (s.request("GET", "/readyz", None, &[], b"").status == 200).then_some(())
    });
    let retried = s.post_ndjson(ADMIN_KEY, &padded("batch", 1000));
    assert_eq!(retried.status, 202, "{}", retried.text());
    assert_eq!(retried.json()["accepted"], 1000);
    assert_eq!(retried.json()["duplicates"], 0);

    // After a crash the log holds the warm-up and the batch, each exactly once.
    s.kill9();
    s.restart();
    assert_eq!(metric(&s, "antibody_log_next_offset"), 2500);
    let again = s.post_ndjson(ADMIN_KEY, &padded("batch", 1000));
    assert_eq!(again.json()["duplicates"], 1000, "{}", again.text());
}
