//! The listener under abuse, over loopback against the real binary: protocol errors in the
//! API's JSON shape, slow heads and idle sockets closed, connection caps, the 413 a client
//! still sending can read, security headers and CORS, and one tenant's slow bodies never
//! throttling another. TLS: tests/tls.rs.

mod common;

use common::{TestServer, ADMIN_KEY};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

fn start_with(toml: &str) -> (TestServer, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("antibody.toml");
    std::fs::write(&config, toml).unwrap();
    let s = TestServer::start_in(&tmp.path().join("data"), &["--config", path(&config)]);
    (s, tmp)
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Sends raw bytes and reads until the server closes (or 10 s pass).
fn raw(s: &TestServer, bytes: &[u8]) -> String {
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = c.write_all(bytes);
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn json_error(response: &str) -> (u16, String) {
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {response:?}"));
    let body = response.split("\r\n\r\n").nth(1).unwrap_or("");
    let v: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {response:?}"));
    assert!(v["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
    (status, v["error"]["code"].as_str().unwrap().to_owned())
}

#[test]
fn protocol_errors_below_the_router_have_json_bodies() {
    let s = TestServer::start();
    let huge_header = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(70_000)
    );
    assert_eq!(
        json_error(&raw(&s, huge_header.as_bytes())),
        (431, "headers_too_large".into())
    );
    let many: String = (0..150).map(|i| format!("X-H{i}: v\r\n")).collect();
    let many = format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{many}\r\n");
    assert_eq!(
        json_error(&raw(&s, many.as_bytes())),
        (431, "headers_too_large".into())
    );
    let long_uri = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(9_000));
    assert_eq!(
        json_error(&raw(&s, long_uri.as_bytes())),
        (414, "uri_too_long".into())
    );
    assert_eq!(
        json_error(&raw(&s, b"NOT HTTP AT ALL\r\n\r\n")),
        (400, "bad_request".into())
    );
}

#[test]
fn slow_heads_and_idle_connections_are_closed() {
    let (s, _tmp) = start_with("[limits]\nheader_timeout_ms = 300\nidle_timeout_ms = 1500\n");
    // Half a request head, then nothing: closed after the header timeout, not the idle one.
    let mut loris = TcpStream::connect(s.addr).unwrap();
    loris
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    loris.write_all(b"GET /healthz HTTP/1.1\r\nHost:").unwrap();
    let t = Instant::now();
    let mut buf = [0u8; 64];
    assert_eq!(loris.read(&mut buf).unwrap_or(0), 0);
    let took = t.elapsed();
    assert!(took < Duration::from_millis(1200), "closed after {took:?}");
    // A socket that never sends: closed after the idle timeout.
    let mut idle = TcpStream::connect(s.addr).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let t = Instant::now();
    assert_eq!(idle.read(&mut buf).unwrap_or(0), 0);
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(1400) && took < Duration::from_secs(8),
        "closed after {took:?}"
    );
    // A keep-alive connection serves request after request within the limits.
    let mut ka = TcpStream::connect(s.addr).unwrap();
    ka.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    for _ in 0..3 {
        ka.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let n = ka.read(&mut [0u8; 1024]).unwrap();
        assert!(n > 0);
    }
    assert_eq!(s.get("/healthz", ADMIN_KEY).status, 200);
}

/// The gateway runs on the same listener: `[gateway.limits]` closes its slow heads and caps
/// its connections per address, answering in JSON.
#[test]
fn the_gateway_port_closes_slow_heads_and_caps_connections() {
    let (s, _tmp) = start_with(
        "[limits]\nheader_timeout_ms = 30000\n\
         [gateway]\nlisten = \"127.0.0.1:0\"\n\
         [gateway.limits]\nheader_timeout_ms = 300\nmax_connections_per_ip = 2\n\
         [[gateway.providers]]\nname = \"none\"\nurl = \"http://127.0.0.1:9\"\n",
    );
    let gateway: std::net::SocketAddr = s
        .startup
        .iter()
        .find_map(|l| l.split("gateway serving on ").nth(1))
        .and_then(|a| a.trim().parse().ok())
        .unwrap_or_else(|| panic!("no gateway line in {:?}", s.startup));
    let mut loris = TcpStream::connect(gateway).unwrap();
    loris
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    loris
        .write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost:")
        .unwrap();
    let t = Instant::now();
    assert_eq!(loris.read(&mut [0u8; 64]).unwrap_or(0), 0);
    let took = t.elapsed();
    assert!(took < Duration::from_millis(1200), "closed after {took:?}");
    let held: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(gateway).unwrap())
        .collect();
    let mut c = TcpStream::connect(gateway).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = c.write_all(b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    assert_eq!(
        json_error(&String::from_utf8_lossy(&out)),
        (429, "too_many_connections".into())
    );
    drop(held);
    // The API's own limits are untouched by the gateway's.
    assert_eq!(s.get("/healthz", ADMIN_KEY).status, 200);
}

#[test]
fn connection_caps_answer_in_json_and_free_their_slot() {
    let (s, _tmp) = start_with("[limits]\nmax_connections = 4\nmax_connections_per_ip = 3\n");
    let held: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(s.addr).unwrap())
        .collect();
    // Every address here is 127.0.0.1, so the per-address cap is met first.
    let refused = raw(&s, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(json_error(&refused), (429, "too_many_connections".into()));
    drop(held);
    common::eventually(Duration::from_secs(10), || {
        (s.get("/healthz", ADMIN_KEY).status == 200).then_some(())
    });
}

#[test]
fn the_global_connection_cap_answers_503() {
    let (s, _tmp) = start_with("[limits]\nmax_connections = 2\n");
    let held: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(s.addr).unwrap())
        .collect();
    let refused = raw(&s, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(json_error(&refused), (503, "server_busy".into()));
    drop(held);
    common::eventually(Duration::from_secs(10), || {
        (s.get("/healthz", ADMIN_KEY).status == 200).then_some(())
    });
}

/// Python's urllib sends the whole body before it reads: a server that answers 413 and
/// closes at once resets the connection and urllib reports BrokenPipe. With lingering close
/// it reads the 413.
#[test]
fn python_urllib_reads_the_413_of_an_oversized_body() {
    let (s, _tmp) = start_with("[limits]\nmax_body_bytes = 100000\n");
    let script = format!(
        r#"
import urllib.request, urllib.error
body = b'{{"entity":"a","kind":"vitals","metrics":{{"x":1}}}}\n' * 400000
req = urllib.request.Request("http://{addr}/v1/events", data=body,
    headers={{"Authorization": "Bearer {ADMIN_KEY}", "Content-Type": "application/x-ndjson"}})
try:
    urllib.request.urlopen(req, timeout=30)
    print("accepted")
except urllib.error.HTTPError as e:
    print(e.code, e.read().decode())
"#,
        addr = s.addr
    );
    let out = std::process::Command::new("python3")
        .args(["-c", &script])
        .output()
        .expect("python3 is needed for this test (the issue's reproduction)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "python failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with("413 ") && stdout.contains("payload_too_large"),
        "{stdout}"
    );
}

#[test]
fn security_headers_no_store_and_a_closed_cors() {
    let (s, _tmp) = start_with("[cors]\nallowed_origins = [\"https://console.example.com\"]\n");
    let anonymous = s.request("GET", "/healthz", None, &[], b"");
    assert_eq!(anonymous.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(anonymous.header("x-frame-options"), Some("DENY"));
    assert_eq!(anonymous.header("cache-control"), None);
    let keyed = s.get("/v1/findings", ADMIN_KEY);
    assert_eq!(keyed.status, 200);
    assert_eq!(keyed.header("cache-control"), Some("no-store"));
    assert_eq!(keyed.header("x-content-type-options"), Some("nosniff"));
    // Errors too.
    let refused = s.get("/v1/findings", "not-a-key");
    assert_eq!(refused.status, 401);
    assert_eq!(refused.header("cache-control"), Some("no-store"));
    let preflight = |origin: &str| {
        s.request(
            "OPTIONS",
            "/v1/findings",
            None,
            &[
                ("Origin", origin),
                ("Access-Control-Request-Method", "GET"),
                ("Access-Control-Request-Headers", "authorization"),
            ],
            b"",
        )
    };
    let evil = preflight("https://evil.example.com");
    assert_eq!(evil.status, 403);
    assert_eq!(evil.error_code(), "origin_not_allowed");
    assert_eq!(evil.header("access-control-allow-origin"), None);
    let ok = preflight("https://console.example.com");
    assert_eq!(ok.status, 204);
    assert_eq!(
        ok.header("access-control-allow-origin"),
        Some("https://console.example.com")
    );
    assert!(ok
        .header("access-control-allow-headers")
        .is_some_and(|h| h.contains("authorization")));
    let from = |origin: &str| {
        s.request(
            "GET",
            "/v1/findings",
            Some(ADMIN_KEY),
            &[("Origin", origin)],
            b"",
        )
    };
    assert_eq!(
        from("https://evil.example.com").header("access-control-allow-origin"),
        None
    );
    assert_eq!(
        from("https://console.example.com").header("access-control-allow-origin"),
        Some("https://console.example.com")
    );
}

#[test]
fn cors_is_closed_by_default() {
    let s = TestServer::start();
    let r = s.request(
        "OPTIONS",
        "/v1/events",
        None,
        &[
            ("Origin", "http://localhost:3000"),
            ("Access-Control-Request-Method", "POST"),
        ],
        b"",
    );
    assert_eq!(r.status, 403);
    assert_eq!(r.header("access-control-allow-origin"), None);
}

#[test]
fn the_bearer_scheme_is_case_insensitive() {
    let s = TestServer::start();
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let auth = format!("{scheme} {ADMIN_KEY}");
        let r = s.request(
            "GET",
            "/v1/findings",
            None,
            &[("Authorization", &auth)],
            b"",
        );
        assert_eq!(r.status, 200, "{scheme}: {}", r.text());
    }
    let r = s.request(
        "GET",
        "/v1/findings",
        None,
        &[("Authorization", &format!("Basic {ADMIN_KEY}"))],
        b"",
    );
    assert_eq!(r.status, 401);
}

/// Opens a request to `/v1/events` announcing `len` bytes, sends a few and keeps the
/// connection: a slow sender.
fn slow_body(s: &TestServer, key: &str) -> TcpStream {
    let mut c = TcpStream::connect(s.addr).unwrap();
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/x-ndjson\r\nContent-Length: 100000\r\n\r\n{{\"entity\""
    );
    c.write_all(head.as_bytes()).unwrap();
    c
}

fn ingest_key(s: &TestServer, admin: &str) -> String {
    let r = s.post_json("/v1/keys", admin, r#"{"role":"ingest"}"#);
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()["key"].as_str().unwrap().to_owned()
}

/// Waits until exactly `n` of `socks` have been answered (refused with 429) and returns the
/// others, which the server holds as slow bodies. Slow bodies are admitted concurrently, so
/// the test settles them before it probes.
fn settle(mut socks: Vec<TcpStream>, n: usize) -> Vec<TcpStream> {
    let mut answered = vec![false; socks.len()];
    common::eventually(Duration::from_secs(20), || {
        for (sock, done) in socks
            .iter_mut()
            .zip(answered.iter_mut())
            .filter(|(_, d)| !**d)
        {
            sock.set_read_timeout(Some(Duration::from_millis(20)))
                .unwrap();
            let mut buf = [0u8; 512];
            if let Ok(k) = sock.read(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..k]);
                assert!(k == 0 || text.starts_with("HTTP/1.1 429 "), "{text}");
                *done = true;
            }
        }
        (answered.iter().filter(|d| **d).count() == n).then_some(())
    });
    socks
        .into_iter()
        .zip(answered)
        .filter(|(_, d)| !d)
        .map(|(s, _)| s)
        .collect()
}

/// The issue's attack: 32 slow bodies from one tenant's ingest key. Before, they took every
/// shared slot and every tenant got 429 for as long as they were held.
#[test]
fn one_tenants_slow_bodies_never_throttle_another() {
    let (s, _tmp) = start_with("[limits]\nbody_timeout_ms = 20000\n");
    let r = s.post_json("/v1/tenants", ADMIN_KEY, r#"{"name":"victim"}"#);
    assert_eq!(r.status, 201, "{}", r.text());
    let victim_admin = r.json()["admin_key"].as_str().unwrap().to_owned();
    let victim = ingest_key(&s, &victim_admin);
    let attacker = ingest_key(&s, ADMIN_KEY);
    // Past the key's share (8) the slow bodies are refused at once: 8 are held.
    let held = settle((0..32).map(|_| slow_body(&s, &attacker)).collect(), 24);
    assert_eq!(held.len(), 8);
    let event = "{\"entity\":\"agent:v\",\"kind\":\"vitals\",\"metrics\":{\"x\":1}}\n";
    // The attacker's own requests are past its share: 429 naming the key's share (the
    // first to run out), Retry-After set.
    let own = s.post_ndjson(&attacker, event);
    assert_eq!(own.status, 429, "{}", own.text());
    assert_eq!(own.error_code(), "overloaded");
    assert!(own.json()["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("this key")));
    assert!(own.header("retry-after").is_some());
    // Another key of the attacking tenant meets the tenant's share.
    let second = ingest_key(&s, ADMIN_KEY);
    let more = settle((0..16).map(|_| slow_body(&s, &second)).collect(), 8);
    assert_eq!(more.len(), 8, "the tenant's share is 16 bodies");
    let tenant_full = s.post_ndjson(&second, event);
    assert_eq!(tenant_full.status, 429, "{}", tenant_full.text());
    assert!(tenant_full.json()["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("this tenant")));
    // The other tenant is served all along.
    for _ in 0..20 {
        let r = s.post_ndjson(&victim, event);
        assert_eq!(r.status, 202, "{}", r.text());
    }
    drop((held, more));
}
