//! The binary's one outbound HTTP client ([`HttpClient`]), behind `webhook`, `notify` and
//! the investigator: one JSON POST over a fresh HTTP/1.1 connection (hyper over tokio;
//! `https://` through rustls with the system roots plus an optional CA bundle), optionally
//! signed with HMAC-SHA256 in `X-Antibody-Signature: sha256=<hex>`, bounded by a
//! per-attempt timeout and retried with deterministic exponential backoff. 2xx is success;
//! 408, 429, 5xx, connection errors and timeouts are retried; any other status fails at once.

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE, HOST, USER_AGENT};
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use sha2::Sha256;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// The header carrying the body's signature.
pub const SIGNATURE_HEADER: &str = "x-antibody-signature";
/// No single backoff delay exceeds this.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Response bytes kept for the result message.
const RESPONSE_SNIPPET: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("`{0}` is not a valid URL")]
    Invalid(String),
    #[error("only http:// and https:// URLs are supported, got `{0}`")]
    Scheme(String),
    #[error("credentials in the URL are not accepted; use a signing secret")]
    Credentials,
}

/// A parsed `http(s)://host[:port]/path` target.
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint {
    tls: bool,
    host: String,
    port: u16,
    authority: String,
    path: String,
}

impl Endpoint {
    pub fn parse(url: &str) -> Result<Self, UrlError> {
        let invalid = || UrlError::Invalid(url.to_owned());
        let uri: Uri = url.parse().map_err(|_| invalid())?;
        let tls = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            Some(other) => return Err(UrlError::Scheme(other.to_owned())),
            None => return Err(invalid()),
        };
        let authority = uri.authority().ok_or_else(invalid)?;
        if authority.as_str().contains('@') {
            return Err(UrlError::Credentials);
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        if host.is_empty() {
            return Err(invalid());
        }
        Ok(Self {
            tls,
            host: host.to_owned(),
            port: authority.port_u16().unwrap_or(if tls { 443 } else { 80 }),
            authority: authority.as_str().to_owned(),
            path: uri
                .path_and_query()
                .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned()),
        })
    }

    /// `host[:port]` as written (the `Host` header).
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// Path and query, `/` at least.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The full URL.
    pub fn url(&self) -> String {
        format!("{}://{}{}", self.scheme(), self.authority, self.path)
    }

    fn scheme(&self) -> &'static str {
        if self.tls {
            "https"
        } else {
            "http"
        }
    }

    /// Scheme, host and port only: for URLs whose path is itself a credential (chat
    /// webhooks), so results and logs never carry it.
    pub fn origin(&self) -> String {
        format!("{}://{}", self.scheme(), self.authority)
    }
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Endpoint({})", self.origin())
    }
}

/// Timeout and retry policy of one delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Per attempt: connect, send and read the response.
    pub timeout: Duration,
    /// Attempts after the first.
    pub retries: u32,
    /// Delay before the first retry; doubles for each later one.
    pub backoff: Duration,
}

impl RetryPolicy {
    /// The longest a delivery can take: every attempt timing out, plus every backoff. The
    /// server keeps this below the responder's execution timeout.
    pub fn worst_case(&self) -> Duration {
        let attempts = self.timeout.saturating_mul(self.retries.saturating_add(1));
        (0..self.retries).fold(attempts, |total, i| {
            total.saturating_add(backoff_delay(self.backoff, i))
        })
    }
}

/// The delay before retry number `retry` (0-based): `base · 2^retry`, capped at
/// [`MAX_BACKOFF`]. Deterministic, so a test or an operator can predict the schedule.
pub fn backoff_delay(base: Duration, retry: u32) -> Duration {
    base.checked_mul(2u32.saturating_pow(retry))
        .map_or(MAX_BACKOFF, |d| d.min(MAX_BACKOFF))
}

/// `sha256=<hex of HMAC-SHA256(key, body)>`.
pub fn sign(key: &[u8], body: &[u8]) -> String {
    // HMAC accepts keys of any length; the error branch cannot happen.
    let tag = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(body);
            hex::encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    };
    format!("sha256={tag}")
}

/// How a delivery ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivered {
    pub ok: bool,
    pub attempts: u32,
    /// The last HTTP status, if any response arrived.
    pub status: Option<u16>,
    /// One phrase: `HTTP 200`, `HTTP 404 (not retried)`, `timed out after 50 ms`, …
    pub last: String,
    /// The start of the last response body.
    pub response: String,
}

enum Attempt {
    Status(u16, String),
    Error(String),
}

/// The binary's one outbound HTTP client: built once at start (reading the trusted roots)
/// and shared by every caller; cheap to clone.
#[derive(Clone)]
pub struct HttpClient {
    tls: tokio_rustls::TlsConnector,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HttpClient")
    }
}

impl HttpClient {
    /// Trusts the system roots plus `ca_bundle` for `https://`.
    pub fn new(ca_bundle: Option<&Path>) -> Result<Self, crate::tls::TlsError> {
        let roots = crate::tls::outbound_roots(ca_bundle)?;
        let mut cfg = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| crate::tls::TlsError::Config(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            tls: tokio_rustls::TlsConnector::from(Arc::new(cfg)),
        })
    }

    /// POSTs `body` to `endpoint` under `policy`. `headers` are added as given.
    pub async fn post_json(
        &self,
        endpoint: &Endpoint,
        body: Bytes,
        headers: &[(HeaderName, HeaderValue)],
        policy: RetryPolicy,
    ) -> Delivered {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let attempt =
                tokio::time::timeout(policy.timeout, self.once(endpoint, body.clone(), headers))
                    .await
                    .unwrap_or_else(|_| {
                        Attempt::Error(format!("timed out after {} ms", policy.timeout.as_millis()))
                    });
            let (retryable, delivered) = judge(attempt, attempts);
            if !retryable || attempts > policy.retries {
                return delivered;
            }
            tokio::time::sleep(backoff_delay(policy.backoff, attempts - 1)).await;
        }
    }

    async fn once(
        &self,
        endpoint: &Endpoint,
        body: Bytes,
        headers: &[(HeaderName, HeaderValue)],
    ) -> Attempt {
        match self.exchange(endpoint, body, headers, 64 * 1024).await {
            Ok((status, response)) => {
                Attempt::Status(status, response.map_or_else(String::new, |b| snippet(&b)))
            }
            Err(why) => Attempt::Error(why),
        }
    }

    /// One POST; the response body is `None` when it exceeds `limit` bytes or cannot be
    /// read.
    pub async fn exchange(
        &self,
        endpoint: &Endpoint,
        body: Bytes,
        headers: &[(HeaderName, HeaderValue)],
        limit: usize,
    ) -> Result<(u16, Option<Bytes>), String> {
        let sender = self.connect(endpoint).await?;
        exchange_on(sender, endpoint, body, headers, limit).await
    }

    /// Opens one HTTP/1.1 connection to `endpoint` (TLS for `https://`; `TCP_NODELAY`, so
    /// requests and streamed chunks leave at once) and returns its sender. The connection
    /// runs on a task of its own until the sender is dropped and the last response read.
    /// Every outbound connection of the binary is made here (webhooks, notify, the
    /// investigator, the gateway's upstreams).
    pub async fn connect<B>(&self, endpoint: &Endpoint) -> Result<SendRequest<B>, String>
    where
        B: hyper::body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let stream = TcpStream::connect((endpoint.host.as_str(), endpoint.port))
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", endpoint.origin()))?;
        // Best effort: a socket that refuses it still works, only slower.
        let _ = stream.set_nodelay(true);
        if !endpoint.tls {
            return handshake(stream).await;
        }
        let name = ServerName::try_from(endpoint.host.clone())
            .map_err(|_| format!("`{}` is not a valid TLS server name", endpoint.host))?;
        let stream = self
            .tls
            .connect(name, stream)
            .await
            .map_err(|e| format!("TLS with {} failed: {e}", endpoint.origin()))?;
        handshake(stream).await
    }
}

async fn handshake<S, B>(stream: S) -> Result<SendRequest<B>, String>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake failed: {e}"))?;
    // The connection task ends when the response is read and the sender dropped.
    tokio::spawn(conn);
    Ok(sender)
}

/// Whether to retry, and the outcome if this was the last attempt.
fn judge(attempt: Attempt, attempts: u32) -> (bool, Delivered) {
    match attempt {
        Attempt::Status(status, response) => {
            let ok = (200..300).contains(&status);
            let retryable = status >= 500 || status == 408 || status == 429;
            let last = if ok || retryable {
                format!("HTTP {status}")
            } else {
                format!("HTTP {status} (not retried)")
            };
            let delivered = Delivered {
                ok,
                attempts,
                status: Some(status),
                last,
                response,
            };
            (retryable, delivered)
        }
        Attempt::Error(why) => {
            let delivered = Delivered {
                ok: false,
                attempts,
                status: None,
                last: why,
                response: String::new(),
            };
            (true, delivered)
        }
    }
}

async fn exchange_on(
    mut sender: SendRequest<Full<Bytes>>,
    endpoint: &Endpoint,
    body: Bytes,
    headers: &[(HeaderName, HeaderValue)],
    limit: usize,
) -> Result<(u16, Option<Bytes>), String> {
    let mut builder = Request::post(endpoint.path.as_str())
        .header(HOST, endpoint.authority.as_str())
        .header(CONTENT_TYPE, "application/json")
        .header(USER_AGENT, concat!("antibody/", env!("CARGO_PKG_VERSION")));
    for (name, value) in headers {
        builder = builder.header(name, value);
    }
    let request = builder
        .body(Full::new(body))
        .map_err(|e| format!("cannot build the request: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    let status = response.status().as_u16();
    let body = Limited::new(response.into_body(), limit)
        .collect()
        .await
        .ok()
        .map(|collected| collected.to_bytes());
    Ok((status, body))
}

fn snippet(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(RESPONSE_SNIPPET)]);
    text.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::FakeServer;
    use proptest::prelude::*;

    fn client() -> HttpClient {
        crate::testkit::http_client()
    }

    fn policy(retries: u32) -> RetryPolicy {
        RetryPolicy {
            timeout: Duration::from_millis(500),
            retries,
            backoff: Duration::from_millis(1),
        }
    }

    #[test]
    fn parses_http_and_https_urls() {
        let e = Endpoint::parse("http://127.0.0.1:9000/hook?x=1").unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.path.as_str()),
            ("127.0.0.1", 9000, "/hook?x=1")
        );
        assert_eq!(e.url(), "http://127.0.0.1:9000/hook?x=1");
        assert_eq!(e.origin(), "http://127.0.0.1:9000");
        assert_eq!(format!("{e:?}"), "Endpoint(http://127.0.0.1:9000)");
        let v6 = Endpoint::parse("http://[::1]/").unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 80));
        assert_eq!(Endpoint::parse("http://example.com").unwrap().path, "/");
        let tls = Endpoint::parse("https://x/").unwrap();
        assert_eq!(
            (tls.tls, tls.port, tls.url()),
            (true, 443, "https://x/".into())
        );
        assert_eq!(
            Endpoint::parse("https://x:8443/a").unwrap().origin(),
            "https://x:8443"
        );
        assert_eq!(
            Endpoint::parse("ftp://x/"),
            Err(UrlError::Scheme("ftp".into()))
        );
        assert_eq!(Endpoint::parse("http://u:p@x/"), Err(UrlError::Credentials));
        for bad in ["", "x", "/path", "http://", "http:// x"] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let base = Duration::from_millis(100);
        let delays: Vec<u128> = (0..4).map(|i| backoff_delay(base, i).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800]);
        assert_eq!(backoff_delay(base, 40), MAX_BACKOFF);
        assert_eq!(backoff_delay(Duration::from_secs(u64::MAX), 3), MAX_BACKOFF);
        let p = RetryPolicy {
            timeout: Duration::from_secs(5),
            retries: 3,
            backoff: Duration::from_millis(500),
        };
        assert_eq!(
            p.worst_case(),
            Duration::from_millis(20_000 + 500 + 1_000 + 2_000)
        );
    }

    #[test]
    fn signature_is_rfc_4231_hmac_sha256() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn retries_5xx_then_succeeds_and_sends_headers() {
        let rt = crate::testkit::runtime();
        let server = FakeServer::start(&rt);
        server.fail_next(2, 503);
        let endpoint = Endpoint::parse(&server.url("/hook")).unwrap();
        let header = (
            HeaderName::from_static(SIGNATURE_HEADER),
            HeaderValue::from_static("sha256=ab"),
        );
        let got = rt.block_on(client().post_json(
            &endpoint,
            Bytes::from_static(b"{}"),
            &[header],
            policy(3),
        ));
        assert!(got.ok, "{got:?}");
        assert_eq!((got.attempts, got.status), (3, Some(200)));
        let reqs = server.requests();
        assert_eq!(reqs.len(), 3);
        assert_eq!(reqs[2].path, "/hook");
        assert_eq!(reqs[2].header(SIGNATURE_HEADER), Some("sha256=ab"));
        assert_eq!(reqs[2].header("content-type"), Some("application/json"));
        assert_eq!(reqs[2].body, b"{}");
    }

    #[test]
    fn fails_fast_on_4xx_but_retries_408_and_429() {
        let rt = crate::testkit::runtime();
        let server = FakeServer::start(&rt);
        let endpoint = Endpoint::parse(&server.url("/")).unwrap();
        server.fail_next(5, 404);
        let got = rt.block_on(client().post_json(&endpoint, Bytes::new(), &[], policy(3)));
        assert_eq!((got.ok, got.attempts), (false, 1));
        assert_eq!(got.last, "HTTP 404 (not retried)");
        assert_eq!(got.response, "fake failure");
        server.fail_next(0, 200);
        for status in [408, 429] {
            server.fail_next(1, status);
            let got = rt.block_on(client().post_json(&endpoint, Bytes::new(), &[], policy(3)));
            assert_eq!((got.ok, got.attempts), (true, 2), "{status}");
        }
    }

    #[test]
    fn gives_up_after_the_retries() {
        let rt = crate::testkit::runtime();
        let server = FakeServer::start(&rt);
        server.fail_next(10, 500);
        let endpoint = Endpoint::parse(&server.url("/")).unwrap();
        let got = rt.block_on(client().post_json(&endpoint, Bytes::new(), &[], policy(2)));
        assert_eq!((got.ok, got.attempts, got.status), (false, 3, Some(500)));
        assert_eq!(server.requests().len(), 3);
    }

    #[test]
    fn timeouts_and_refused_connections_are_retried() {
        let rt = crate::testkit::runtime();
        let server = FakeServer::start(&rt);
        server.hang_next(1);
        let endpoint = Endpoint::parse(&server.url("/")).unwrap();
        let quick = RetryPolicy {
            timeout: Duration::from_millis(50),
            ..policy(1)
        };
        let got = rt.block_on(client().post_json(&endpoint, Bytes::new(), &[], quick));
        assert_eq!((got.ok, got.attempts), (true, 2), "{got:?}");
        let closed = Endpoint::parse(&crate::testkit::closed_port_url()).unwrap();
        let got = rt.block_on(client().post_json(&closed, Bytes::new(), &[], policy(1)));
        assert_eq!((got.ok, got.attempts, got.status), (false, 2, None));
        assert!(got.last.starts_with("cannot connect"), "{}", got.last);
    }

    /// `https://` goes through rustls: a server whose certificate chains to the CA bundle is
    /// reached; without the bundle the same server is refused (not silently trusted).
    #[test]
    fn https_trusts_the_ca_bundle_and_nothing_else() {
        let rt = crate::testkit::runtime();
        let pki = crate::tls::testing::pki(&["localhost"]);
        let server = FakeServer::start_tls(&rt, &pki);
        let dir = tempfile::tempdir().unwrap();
        let bundle = dir.path().join("ca.pem");
        std::fs::write(&bundle, &pki.ca_pem).unwrap();
        let endpoint = Endpoint::parse(&server.url("/hook")).unwrap();
        assert!(endpoint.url().starts_with("https://localhost:"));
        let trusted = HttpClient::new(Some(&bundle)).unwrap();
        let got =
            rt.block_on(trusted.post_json(&endpoint, Bytes::from_static(b"{}"), &[], policy(0)));
        assert!(got.ok, "{got:?}");
        assert_eq!(server.requests()[0].body, b"{}");
        let got = rt.block_on(client().post_json(&endpoint, Bytes::new(), &[], policy(0)));
        assert!(!got.ok);
        assert!(
            got.last.starts_with("TLS with https://localhost"),
            "{}",
            got.last
        );
        assert_eq!(server.requests().len(), 1);
    }

    proptest! {
        #[test]
        fn url_parser_never_panics(s in ".{0,64}") {
            let _ = Endpoint::parse(&s);
        }

        #[test]
        fn valid_urls_round_trip(
            host in "[a-z][a-z0-9-]{0,12}",
            port in 1u16..,
            path in "(/[a-zA-Z0-9_.~-]{1,8}){0,3}",
        ) {
            let e = Endpoint::parse(&format!("http://{host}:{port}{path}")).unwrap();
            prop_assert_eq!((e.host.as_str(), e.port), (host.as_str(), port));
            let path = if path.is_empty() { "/".to_owned() } else { path };
            prop_assert_eq!(e.url(), format!("http://{host}:{port}{path}"));
        }
    }
}
