//! Drives the real `antibody` binary over HTTP: start, stop, kill -9, restart, and a tiny
//! HTTP/1.1 client (a few lines over `TcpStream` instead of a client crate).

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const ADMIN_KEY: &str = "ab_test_bootstrap_admin_key_0123456789";

pub struct TestServer {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub dir: PathBuf,
    /// What the server printed before its `listening on` line (the gateway's address).
    pub startup: Vec<String>,
    _tmp: Option<tempfile::TempDir>,
}

impl TestServer {
    pub fn start() -> TestServer {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_path_buf();
        let mut s = Self::start_in(&dir, &[]);
        s._tmp = Some(tmp);
        s
    }

    pub fn start_in(dir: &Path, extra: &[&str]) -> TestServer {
        let mut child = Command::new(env!("CARGO_BIN_EXE_antibody"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir)
            .args(extra)
            .env("ANTIBODY_ADMIN_KEY", ADMIN_KEY)
            .env("ANTIBODY_LOG", "info")
            .env_remove("ANTIBODY_LISTEN")
            .env_remove("ANTIBODY_DATA_DIR")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn antibody");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !sent {
                    if let Some(addr) = line.split("listening on ").nth(1) {
                        let addr = addr.split_whitespace().next().unwrap_or("").to_owned();
                        let _ = tx.send(Ok(addr));
                        sent = true;
                        continue;
                    }
                    let _ = tx.send(Err(line));
                } else if std::env::var_os("ANTIBODY_TEST_VERBOSE").is_some() {
                    eprintln!("server: {line}");
                }
            }
        });
        let mut log = Vec::new();
        let addr = loop {
            match rx.recv_timeout(Duration::from_secs(60)) {
                Ok(Ok(addr)) => break addr.parse().expect("listen address"),
                Ok(Err(line)) => log.push(line),
                Err(_) => panic!("server did not start; its output:\n{}", log.join("\n")),
            }
        };
        TestServer {
            child: Some(child),
            addr,
            dir: dir.to_path_buf(),
            startup: log,
            _tmp: None,
        }
    }

    /// The server process's id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL: no shutdown hook runs, exactly like a crash.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
    }

    /// Starts a new process on the same data dir (the temp dir stays with `self`).
    pub fn restart(&mut self) {
        let mut next = Self::start_in(&self.dir, &[]);
        self.child = next.child.take();
        self.addr = next.addr;
    }

    pub fn get(&self, path: &str, key: &str) -> Resp {
        self.request("GET", path, Some(key), &[], b"")
    }

    pub fn post_json(&self, path: &str, key: &str, body: &str) -> Resp {
        self.request(
            "POST",
            path,
            Some(key),
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        )
    }

    pub fn post_ndjson(&self, key: &str, body: &str) -> Resp {
        self.request(
            "POST",
            "/v1/events",
            Some(key),
            &[("Content-Type", "application/x-ndjson")],
            body.as_bytes(),
        )
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Resp {
        request(self.addr, method, path, key, headers, body)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill9();
    }
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    /// Asserts the API's error shape and returns its code.
    pub fn error_code(&self) -> String {
        let v = self.json();
        let code = v["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("no error.code in {v}"));
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "no error.message in {v}"
        );
        code.to_owned()
    }
}

pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    key: Option<&str>,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(k) = key {
        head.push_str(&format!("Authorization: Bearer {k}\r\n"));
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    // A server may answer (413, 429) and close before a large body is all sent: a failed
    // write is fine as long as the response can be read.
    let sent = s
        .write_all(head.as_bytes())
        .and_then(|()| s.write_all(body));
    let mut raw = Vec::new();
    let read = s.read_to_end(&mut raw);
    if raw.is_empty() {
        sent.expect("write request");
        read.expect("read response");
    }
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> Resp {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("response head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Resp {
        status,
        headers,
        body,
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&b[..eol]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = eol + 2;
        out.extend_from_slice(&b[start..(start + size).min(b.len())]);
        b = &b[(start + size + 2).min(b.len())..];
    }
    out
}

/// Polls `f` until it returns `Some`, up to `timeout`: the pipeline is asynchronous, so a
/// finding appears shortly after the 202. Polling a real server is the one place a test waits.
pub fn eventually<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "condition not met within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Opens `/v1/stream` and returns the reader once the response headers are in (the
/// subscription exists from then on).
pub fn open_stream(s: &TestServer, key: &str) -> BufReader<TcpStream> {
    let mut conn = TcpStream::connect(s.addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(
        conn,
        "GET /v1/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\r\n"
    )
    .unwrap();
    let mut reader = BufReader::new(conn);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.contains("200"), "{line}");
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        if line == "\r\n" {
            return reader;
        }
    }
}

/// The data of the next `event: <event>` on the stream.
pub fn next_event(reader: &mut BufReader<TcpStream>, event: &str) -> serde_json::Value {
    let mut line = String::new();
    let mut in_event = false;
    for _ in 0..10_000 {
        line.clear();
        assert!(reader.read_line(&mut line).unwrap() > 0, "stream closed");
        let l = line.trim_end();
        if let Some(name) = l.strip_prefix("event: ") {
            in_event = name == event;
        } else if let (true, Some(data)) = (in_event, l.strip_prefix("data: ")) {
            return serde_json::from_str(data).unwrap();
        }
    }
    panic!("no {event} on the stream");
}

/// Runs `antibody` with `args` and fails the test with its stderr unless it succeeds.
pub fn run_ok(args: &[&str]) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_antibody"))
        .args(args)
        .output()
        .expect("run antibody");
    assert!(
        out.status.success(),
        "antibody {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A small but real model for tests: generated agent data, 20 trees, 2 folds, written as an
/// upload bundle (`antibody train --bundle`); returns the bundle's path.
pub fn train_small_model(dir: &Path) -> PathBuf {
    train_small_model_with(dir, &[], &[])
}

/// [`train_small_model`] with extra `antibody gen` and `antibody train` arguments.
pub fn train_small_model_with(dir: &Path, gen: &[&str], train: &[&str]) -> PathBuf {
    let data = dir.join("train.csv");
    let (d, m, b) = (
        data.to_str().expect("utf-8 path"),
        dir.join("model"),
        dir.join("model.bundle"),
    );
    let mut gen_args = vec![
        "gen",
        "agent-behavior",
        "--rows",
        "1200",
        "--seed",
        "5",
        "--out",
        d,
    ];
    gen_args.extend_from_slice(gen);
    run_ok(&gen_args);
    let (m, b_path) = (
        m.to_str().expect("utf-8 path"),
        b.to_str().expect("utf-8 path"),
    );
    let mut train_args = vec![
        "train",
        "--data",
        d,
        "--features",
        "agent-behavior",
        "--label",
        "is_threat",
        "--out",
        m,
        "--trees",
        "20",
        "--folds",
        "2",
        "--bundle",
        b_path,
    ];
    train_args.extend_from_slice(train);
    run_ok(&train_args);
    b
}

/// A test certificate authority (rcgen): issues leaves for servers and clients.
pub struct Ca {
    pub cert: rcgen::Certificate,
    pub key: rcgen::KeyPair,
}

impl Ca {
    pub fn new() -> Ca {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        Ca {
            cert: params.self_signed(&key).unwrap(),
            key,
        }
    }

    /// A leaf for `name`, written as `<stem>.crt` and `<stem>.key` in `dir`.
    pub fn issue(&self, dir: &Path, stem: &str, name: &str) -> (PathBuf, PathBuf) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_owned()])
            .unwrap()
            .signed_by(&key, &self.cert, &self.key)
            .unwrap();
        let (c, k) = (
            dir.join(format!("{stem}.crt")),
            dir.join(format!("{stem}.key")),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }

    /// The CA's own certificate, written to `path` (a client CA bundle).
    pub fn write(&self, path: &Path) -> PathBuf {
        std::fs::write(path, self.cert.pem()).unwrap();
        path.to_owned()
    }
}
