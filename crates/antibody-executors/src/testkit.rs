//! Test helpers: a runtime, a fake HTTP receiver on loopback that records requests and can
//! be told to fail or hang, request builders and a synchronous `execute`.

use antibody_core::TenantId;
use antibody_respond::executor::{ExecOp, ExecRequest, ExecResult, Executor};
use antibody_respond::{Action, ActionKind, ActionStatus, Mode, ParamValue, Params, Why};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::{Child, Command};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::runtime::Runtime;

/// One client per test process, as the binary has one.
pub fn http_client() -> crate::http::HttpClient {
    static CLIENT: std::sync::OnceLock<crate::http::HttpClient> = std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| crate::http::HttpClient::new(None).unwrap())
        .clone()
}

pub fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[derive(Clone, Debug)]
pub struct Recorded {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

#[derive(Default)]
struct State {
    requests: Vec<Recorded>,
    /// Scripted answers, used first: `(status, body)`.
    replies: std::collections::VecDeque<(u16, String)>,
    fail: u32,
    fail_status: u16,
    hang: u32,
}

/// A loopback HTTP/1.1 receiver: answers 200 `ok` unless scripted, told to fail or to hang.
#[derive(Clone)]
pub struct FakeServer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    tls: bool,
}

impl FakeServer {
    pub fn start(rt: &Runtime) -> Self {
        let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let server = Self {
            addr: listener.local_addr().unwrap(),
            state: Arc::default(),
            tls: false,
        };
        let state = server.state.clone();
        rt.spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, state.clone()));
            }
        });
        server
    }

    /// The same receiver behind TLS with `pki`'s leaf certificate (named `localhost`).
    pub fn start_tls(rt: &Runtime, pki: &crate::tls::testing::TestPki) -> Self {
        use rustls::pki_types::pem::PemObject;
        let certs = rustls::pki_types::CertificateDer::pem_slice_iter(pki.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(pki.key_pem.as_bytes()).unwrap();
        let cfg = rustls::ServerConfig::builder_with_provider(crate::tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
        let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let server = Self {
            addr: listener.local_addr().unwrap(),
            state: Arc::default(),
            tls: true,
        };
        let state = server.state.clone();
        rt.spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (acceptor, state) = (acceptor.clone(), state.clone());
                tokio::spawn(async move {
                    if let Ok(tls) = acceptor.accept(stream).await {
                        serve(tls, state).await;
                    }
                });
            }
        });
        server
    }

    pub fn url(&self, path: &str) -> String {
        if self.tls {
            format!("https://localhost:{}{path}", self.addr.port())
        } else {
            format!("http://{}{path}", self.addr)
        }
    }

    /// The next `n` requests get `status`.
    pub fn fail_next(&self, n: u32, status: u16) {
        let mut s = self.state.lock().unwrap();
        s.fail = n;
        s.fail_status = status;
    }

    /// The next requests get these answers, in order, before any failure or hang.
    pub fn reply_next(&self, status: u16, body: impl Into<String>) {
        self.state
            .lock()
            .unwrap()
            .replies
            .push_back((status, body.into()));
    }

    /// The next `n` requests get no answer.
    pub fn hang_next(&self, n: u32) {
        self.state.lock().unwrap().hang = n;
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, state: Arc<Mutex<State>>) {
    let Some(recorded) = read_request(&mut stream).await else {
        return;
    };
    let answer = {
        let mut s = state.lock().unwrap();
        s.requests.push(recorded);
        if let Some(reply) = s.replies.pop_front() {
            Some(reply)
        } else if s.hang > 0 {
            s.hang -= 1;
            None
        } else if s.fail > 0 {
            s.fail -= 1;
            Some((s.fail_status, "fake failure".to_owned()))
        } else {
            Some((200, "ok".to_owned()))
        }
    };
    let Some((status, body)) = answer else {
        tokio::time::sleep(Duration::from_secs(30)).await;
        return;
    };
    let response = format!(
        "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

async fn read_request<S: AsyncRead + Unpin>(stream: &mut S) -> Option<Recorded> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let path = lines.next()?.split(' ').nth(1)?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Recorded {
        path,
        headers,
        body,
    })
}

/// A URL on loopback where nothing listens.
pub fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/")
}

pub fn strs(items: &[&str]) -> ParamValue {
    ParamValue::List(items.iter().map(|s| (*s).to_owned()).collect())
}

pub fn action(id: &str, kind: ActionKind, target: &str, params: Params) -> Action {
    Action {
        id: id.into(),
        incident: "i-1".into(),
        kind,
        target: target.into(),
        params,
        mode: Mode::Auto,
        status: ActionStatus::Executing,
        ttl: 60,
        executor: kind.as_str().into(),
        result: None,
        why: Why {
            playbook: "pb".into(),
            rule: "step 1".into(),
            text: "brute force from one address".into(),
            numbers: BTreeMap::new(),
        },
    }
}

pub fn request(action: Action, op: ExecOp) -> ExecRequest {
    ExecRequest {
        tenant: TenantId::new("acme"),
        entity: "agent:x".into(),
        op,
        action,
        asset: None,
    }
}

/// Runs one request and waits for its completion.
pub fn execute(exec: &dyn Executor, request: ExecRequest) -> ExecResult {
    let (tx, rx) = mpsc::channel();
    exec.execute(
        request,
        Box::new(move |r| {
            let _ = tx.send(r);
        }),
    );
    let result = rx.recv_timeout(Duration::from_secs(20)).unwrap();
    assert!(
        rx.recv_timeout(Duration::from_millis(1)).is_err(),
        "completion called twice"
    );
    result
}

/// A child `sleep` that is killed and reaped when the test ends.
pub struct Sleeper(pub Child);

impl Sleeper {
    pub fn start() -> Self {
        Self(Command::new("/bin/sleep").arg("30").spawn().unwrap())
    }
    pub fn state(&self) -> char {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.0.id())).unwrap();
        crate::signal::process_state(&stat).unwrap()
    }
    /// The state once no signal is pending: a SIGSTOP takes effect only when the child
    /// next runs, so a state read right after `kill` may predate it.
    pub fn settled_state(&self) -> char {
        let path = format!("/proc/{}/status", self.0.id());
        for _ in 0..2000 {
            let status = std::fs::read_to_string(&path).unwrap();
            let pending = status
                .lines()
                .filter(|l| l.starts_with("SigPnd:") || l.starts_with("ShdPnd:"))
                .any(|l| {
                    l.split_whitespace()
                        .nth(1)
                        .is_some_and(|m| m.bytes().any(|b| b != b'0'))
                });
            if !pending {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        self.state()
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
