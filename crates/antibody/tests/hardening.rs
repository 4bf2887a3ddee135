//! Production hardening of the data path and keys (issue 17, part B): a log that fails
//! (a file-size limit standing in for a full disk, a descriptor limit for exhausted
//! descriptors, both set on the running server with prlimit) refuses whole batches and
//! comes back by itself; keys that expire, rotate and are hashed slowly when chosen; every key and tenant
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

/// One request on a connection kept open, so it needs no new descriptor in the server.
fn keep_alive_request(conn: &mut std::net::TcpStream, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    write!(
        conn,
        "POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_KEY}\r\n\
         Content-Type: application/x-ndjson\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        conn.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    conn.read_exact(&mut body).unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn limit_descriptors(s: &TestServer, n: Option<u64>) {
    let pid = s.pid().expect("running") as libc::pid_t;
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain prlimit(2) calls on our own child, with valid pointers.
    unsafe {
        assert_eq!(
            libc::prlimit(pid, libc::RLIMIT_NOFILE, std::ptr::null(), &mut old),
            0
        );
        let new = libc::rlimit {
            rlim_cur: n.unwrap_or(old.rlim_max),
            rlim_max: old.rlim_max,
        };
        assert_eq!(
            libc::prlimit(pid, libc::RLIMIT_NOFILE, &new, std::ptr::null_mut()),
            0
        );
    }
}

#[test]
fn without_descriptors_a_batch_that_needs_a_new_segment_is_refused_whole_and_ingest_comes_back() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("antibody.toml");
    // Small segments, so the next batch needs a new file; no checkpoint during the test.
    std::fs::write(&config, "[log]\nsegment_mb = 1\ncheckpoint_secs = 3600\n").unwrap();
    let dir = tmp.path().join("data");
    let s = TestServer::start_in(&dir, &["--config", config.to_str().unwrap()]);
    let mut conn = std::net::TcpStream::connect(s.addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let (status, _) = keep_alive_request(&mut conn, &padded("warm", 100));
    assert_eq!(status, 202);
    // (The metric is published just after the acknowledgement.)
    let before = eventually(Duration::from_secs(10), || {
        let n = metric(&s, "antibody_log_next_offset");
        (n == 100).then_some(n)
    });
    // No new descriptor at all (the open connection keeps its own): the roll to a new
    // segment cannot open its file.
    limit_descriptors(&s, Some(0));
    let (status, body) = keep_alive_request(&mut conn, &padded("big", 600));
    limit_descriptors(&s, None);
    assert_eq!(status, 503, "{body}");
    eventually(Duration::from_secs(20), || {
        (s.request("GET", "/readyz", None, &[], b"").status == 200).then_some(())
    });
    assert_eq!(
        metric(&s, "antibody_log_next_offset"),
        before,
        "nothing of the refused batch"
    );
    let again = s.post_ndjson(ADMIN_KEY, &padded("big", 600));
    assert_eq!(again.status, 202, "{}", again.text());
    assert_eq!(again.json()["accepted"], 600);
    eventually(Duration::from_secs(10), || {
        (metric(&s, "antibody_log_next_offset") == before + 600).then_some(())
    });
}

fn antibody(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_antibody"))
        .args(args)
        .env_remove("ANTIBODY_DATA_DIR")
        .env_remove("NO_COLOR")
        .output()
        .expect("run antibody")
}

fn items(s: &TestServer, path: &str, key: &str) -> Vec<serde_json::Value> {
    let r = s.get(path, key);
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    r.json()["items"].as_array().cloned().unwrap_or_default()
}

fn new_key(s: &TestServer, key: &str, body: &str) -> (String, String) {
    let r = s.post_json("/v1/keys", key, body);
    assert_eq!(r.status, 201, "{}", r.text());
    let v = r.json();
    (
        v["key"].as_str().unwrap().to_owned(),
        v["id"].as_str().unwrap().to_owned(),
    )
}

fn delete_key(s: &TestServer, key: &str, id: &str) -> common::Resp {
    s.request("DELETE", &format!("/v1/keys/{id}"), Some(key), &[], b"")
}

#[test]
fn the_bootstrap_key_is_deleted_only_by_itself_and_a_tenant_keeps_an_admin_key() {
    let s = TestServer::start();
    let boot_id = items(&s, "/v1/keys", ADMIN_KEY)[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (second, second_id) = new_key(&s, ADMIN_KEY, r#"{"role":"admin"}"#);
    let r = delete_key(&s, &second, &boot_id);
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("bootstrap"), "{}", r.text());
    let r = s.post_json(&format!("/v1/keys/{boot_id}/rotate"), &second, "");
    assert_eq!(
        r.status,
        403,
        "only the bootstrap key rotates itself: {}",
        r.text()
    );
    // The other admin can go (the bootstrap one is left), then the bootstrap key is the
    // tenant's last admin key and stays, even asked by itself.
    assert_eq!(delete_key(&s, ADMIN_KEY, &second_id).status, 204);
    let r = delete_key(&s, ADMIN_KEY, &boot_id);
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(r.text().contains("last admin key"), "{}", r.text());
    // In another tenant: its only admin cannot delete itself either.
    let t = s
        .post_json("/v1/tenants", ADMIN_KEY, r#"{"name":"solo"}"#)
        .json();
    let (admin, admin_id) = (
        t["admin_key"].as_str().unwrap().to_owned(),
        t["admin_key_id"].as_str().unwrap().to_owned(),
    );
    assert_eq!(delete_key(&s, &admin, &admin_id).status, 409);
    assert_eq!(s.get("/v1/keys", &admin).status, 200);
}

#[test]
fn keys_expire_rotate_without_downtime_and_every_change_is_audited() {
    let s = TestServer::start();
    let (ingest, ingest_id) = new_key(&s, ADMIN_KEY, r#"{"role":"ingest","expires_in":"30d"}"#);
    let listed = items(&s, "/v1/keys", ADMIN_KEY);
    let row = listed
        .iter()
        .find(|k| k["id"] == ingest_id.as_str())
        .unwrap();
    let expires = row["expires_ms"].as_i64().unwrap();
    let created = row["created_ms"].as_i64().unwrap();
    assert_eq!(expires - created, 30 * 86_400_000);
    assert!(row["last_used_ms"].is_null());
    let ev = r#"{"entity":"host:a","kind":"note"}"#;
    assert_eq!(s.post_ndjson(&ingest, ev).status, 202);
    let listed = items(&s, "/v1/keys", ADMIN_KEY);
    let row = listed
        .iter()
        .find(|k| k["id"] == ingest_id.as_str())
        .unwrap();
    assert!(row["last_used_ms"].as_i64().is_some(), "{row}");
    let r = s.post_json(
        "/v1/keys",
        ADMIN_KEY,
        r#"{"role":"ingest","expires_in":"soon"}"#,
    );
    assert_eq!(r.status, 400, "{}", r.text());

    // Rotation: both keys work until the grace period ends, then only the new one, and
    // the old one is refused saying it expired.
    let r = s.post_json(
        &format!("/v1/keys/{ingest_id}/rotate"),
        ADMIN_KEY,
        r#"{"grace":"2s"}"#,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let rotated = r.json();
    let fresh = rotated["key"].as_str().unwrap().to_owned();
    assert_eq!(rotated["role"], "ingest");
    assert_eq!(rotated["replaces"]["id"], ingest_id.as_str());
    assert_eq!(s.post_ndjson(&ingest, ev).status, 202);
    assert_eq!(s.post_ndjson(&fresh, ev).status, 202);
    let refused = eventually(Duration::from_secs(15), || {
        let r = s.post_ndjson(&ingest, ev);
        (r.status == 401).then_some(r)
    });
    assert!(refused.text().contains("expired"), "{}", refused.text());
    assert_eq!(s.post_ndjson(&fresh, ev).status, 202);
    let unknown = s.post_ndjson("not-a-key-at-all", ev);
    assert_eq!(unknown.status, 401);
    assert!(unknown.text().contains("admin.key"), "{}", unknown.text());

    let kinds: Vec<String> = items(&s, "/v1/audit?limit=1000", ADMIN_KEY)
        .iter()
        .map(|e| e["record"]["kind"].as_str().unwrap_or("").to_owned())
        .collect();
    for k in ["tenant_create", "key_create", "key_rotate"] {
        assert!(kinds.iter().any(|x| x == k), "{k} not audited: {kinds:?}");
    }
    assert_eq!(s.get("/v1/audit/verify", ADMIN_KEY).json()["ok"], true);
}

#[test]
fn the_cli_is_locked_out_while_a_server_runs_and_audits_its_own_changes() {
    let mut s = TestServer::start();
    let dir = s.dir.to_str().unwrap().to_owned();
    let pid = s.pid().unwrap();
    let busy = antibody(&["keys", "create", "--role", "ingest", "--data-dir", &dir]);
    assert!(!busy.status.success());
    let err = String::from_utf8_lossy(&busy.stderr);
    assert!(err.contains(&format!("pid {pid}")), "{err}");
    assert!(err.contains("POST /v1/keys"), "{err}");
    // A second server on the same data dir is refused the same way (and must not run on:
    // it is stopped after a deadline either way).
    let mut second = std::process::Command::new(env!("CARGO_BIN_EXE_antibody"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir", &dir])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let exited = loop {
        if let Some(status) = second.try_wait().unwrap() {
            break Some(status);
        }
        if std::time::Instant::now() > deadline {
            let _ = second.kill();
            let _ = second.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().unwrap(), &mut err).unwrap();
    assert!(
        exited.is_some_and(|st| !st.success()),
        "a second server started on a held data dir"
    );
    assert!(err.contains(&format!("pid {pid}")), "{err}");

    s.stop();
    let made = antibody(&[
        "keys",
        "create",
        "--role",
        "analyst",
        "--expires-in",
        "7d",
        "--data-dir",
        &dir,
    ]);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let key: serde_json::Value = serde_json::from_slice(&made.stdout).unwrap();
    assert!(key["expires_ms"].as_i64().is_some());
    let made = antibody(&["tenants", "create", "cli-made", "--data-dir", &dir]);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let tenant: serde_json::Value = serde_json::from_slice(&made.stdout).unwrap();

    s.restart();
    let by_cli: Vec<(String, String)> = items(&s, "/v1/audit?actor=cli", ADMIN_KEY)
        .iter()
        .map(|e| {
            (
                e["record"]["kind"].as_str().unwrap().to_owned(),
                e["record"]["subject"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        by_cli,
        [
            (
                "key_create".to_owned(),
                key["id"].as_str().unwrap().to_owned()
            ),
            (
                "tenant_create".to_owned(),
                tenant["id"].as_str().unwrap().to_owned()
            ),
        ]
    );
    assert_eq!(s.get("/v1/audit/verify", ADMIN_KEY).json()["ok"], true);
    let admin = tenant["admin_key"].as_str().unwrap();
    let own = items(&s, "/v1/audit?actor=cli", admin);
    assert_eq!(
        own.len(),
        1,
        "the new tenant's chain holds its admin key's creation"
    );
    // The server appends after what the CLI wrote, and the chain still verifies.
    new_key(&s, ADMIN_KEY, r#"{"role":"ingest"}"#);
    eventually(Duration::from_secs(10), || {
        let v = s.get("/v1/audit/verify", ADMIN_KEY).json();
        (v["ok"] == true && v["entries"].as_u64() > Some(4)).then_some(())
    });
}

#[cfg(unix)]
#[test]
fn the_data_dir_is_private_and_an_older_one_is_tightened() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    std::fs::create_dir_all(dir.join("rules")).unwrap();
    std::fs::write(dir.join("rules/old.yml"), "").unwrap();
    for (p, m) in [
        (dir.clone(), 0o755),
        (dir.join("rules"), 0o755),
        (dir.join("rules/old.yml"), 0o644),
    ] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    }
    let mut s = TestServer::start_in(&dir, &[]);
    assert_eq!(s.post_ndjson(ADMIN_KEY, &padded("p", 10)).status, 202);
    s.stop();
    let mut stack = vec![dir.clone()];
    let mut seen = 0;
    while let Some(d) = stack.pop() {
        let mode = std::fs::metadata(&d).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{}", d.display());
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let meta = e.metadata().unwrap();
            if meta.is_dir() {
                stack.push(e.path());
            } else {
                seen += 1;
                let mode = meta.permissions().mode() & 0o777;
                assert_eq!(mode, 0o600, "{}", e.path().display());
            }
        }
    }
    assert!(
        seen >= 5,
        "database, log segment, snapshots, lock, rules file: {seen}"
    );
}

#[test]
fn an_unwritable_data_dir_is_reported_once_with_the_fix() {
    // Refused even to root (sysfs takes no new directories), without touching a real disk.
    let out = antibody(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        "/sys/antibody-test-data",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("/sys/antibody-test-data").count(), 1, "{err}");
    assert!(
        err.contains("--data-dir") && err.contains("write access"),
        "{err}"
    );
}

#[test]
fn logs_carry_no_colour_when_stderr_is_not_a_terminal() {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_antibody"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(tmp.path())
        .env("ANTIBODY_ADMIN_KEY", ADMIN_KEY)
        .env("ANTIBODY_LOG", "info")
        .env_remove("NO_COLOR")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = Vec::new();
    for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)) {
        let line = line.unwrap();
        let done = line.contains("listening on");
        lines.push(line);
        if done {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(lines.iter().any(|l| l.contains("INFO")), "{lines:?}");
    assert!(
        lines.iter().all(|l| !l.contains('\u{1b}')),
        "ANSI escapes in piped logs: {lines:?}"
    );
}

#[test]
fn common_ingest_mistakes_are_answered_with_what_to_do() {
    let s = TestServer::start();
    let one = r#"{"entity":"host:a","kind":"note"}"#;
    let as_json = s.post_json("/v1/events", ADMIN_KEY, &format!("{one}\n{one}\n"));
    assert_eq!(as_json.status, 400);
    assert!(
        as_json.text().contains("application/x-ndjson"),
        "{}",
        as_json.text()
    );
    // What `curl -d @events.ndjson` sends: newlines gone, form content type.
    let stripped = s.request(
        "POST",
        "/v1/events",
        Some(ADMIN_KEY),
        &[("Content-Type", "application/x-www-form-urlencoded")],
        format!("{one}{one}").as_bytes(),
    );
    assert_eq!(stripped.status, 400);
    assert!(
        stripped.text().contains("--data-binary"),
        "{}",
        stripped.text()
    );
    let no_key = s.request("POST", "/v1/events", None, &[], one.as_bytes());
    assert_eq!(no_key.status, 401);
    assert!(no_key.text().contains("admin.key"), "{}", no_key.text());
}

/// The README's commands as a newcomer pastes them: its shell blocks, one command a line.
fn readme_commands(section: Option<&str>) -> Vec<String> {
    let readme = include_str!("../../../README.md");
    let text = match section {
        Some(title) => {
            let start = readme.find(title).expect("section");
            let rest = &readme[start + title.len()..];
            &rest[..rest.find("\n## ").unwrap_or(rest.len())]
        }
        None => readme,
    };
    text.split("```sh")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .flat_map(str::lines)
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_readme_starts_one_server_and_fills_in_the_ids_it_uses() {
    let starts: Vec<String> = readme_commands(None)
        .into_iter()
        .filter(|l| l.contains("antibody serve") || l.contains("-- serve"))
        .collect();
    let on_default_port: Vec<&String> = starts.iter().filter(|l| !l.contains("--listen")).collect();
    assert_eq!(
        on_default_port.len(),
        1,
        "servers started on :8080: {starts:?}"
    );
    assert!(
        starts
            .iter()
            .all(|l| l == on_default_port[0] || l.contains("--data-dir")),
        "a second server needs its own data dir: {starts:?}"
    );
    for line in readme_commands(Some("## Quickstart")) {
        assert!(
            !line.contains("_ID") && !line.contains("<"),
            "a placeholder the reader must fill in: {line}"
        );
    }
}

#[test]
fn cargo_build_at_the_root_builds_what_cargo_run_builds() {
    let out = std::process::Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let defaults: Vec<&str> = meta["workspace_default_members"]
        .as_array()
        .expect("cargo reports default members")
        .iter()
        .filter_map(|m| m.as_str())
        .collect();
    // One package, the binary `cargo run` builds: the same crates with the same features.
    assert_eq!(defaults.len(), 1, "{defaults:?}");
    assert!(defaults[0].contains("crates/antibody#"), "{defaults:?}");
}
