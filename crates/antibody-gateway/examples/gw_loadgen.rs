//! End-to-end gateway benchmark tools (see BENCHMARKS.md, "LLM gateway"):
//!
//! * `gw_loadgen upstream ADDR` — a fake OpenAI-compatible upstream: a fixed chat completion
//!   (buffered), or for `"stream": true` 10 SSE chunks `GW_CHUNK_GAP_MS` apart (default 0)
//!   ending with a usage chunk when asked.
//! * `gw_loadgen mcp-upstream ADDR` — a fake MCP server: every POST gets a `tools/call`
//!   result (JSON) for the request's id.
//! * `gw_loadgen measure ADDR N CONCURRENCY [stream|mcp]` — N calls over CONCURRENCY
//!   kept-alive connections; prints latency percentiles (for streams also time to first
//!   chunk) and calls per second. Agents are `GW_AGENT-0..7` (default `bench`). `mcp` sends
//!   `tools/call` to `/mcp/bench` (the gateway's MCP proxy; the fake MCP server takes any
//!   path).
//!
//! `cargo run --release -p antibody-gateway --example gw_loadgen -- …`

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

const KEY: &str = "ab_test_bootstrap_admin_key_0123456789";
const BUFFERED: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"fake-model","choices":[{"index":0,"message":{"role":"assistant","content":"Five bullet points, each under twenty words, as asked."},"finish_reason":"stop"}],"usage":{"prompt_tokens":40,"completion_tokens":12,"total_tokens":52}}"#;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    match args.get(1).map(String::as_str) {
        Some("upstream") => rt.block_on(upstream(&args[2], false)),
        Some("mcp-upstream") => rt.block_on(upstream(&args[2], true)),
        Some("measure") => {
            let n: usize = args[3].parse().expect("N");
            let c: usize = args[4].parse().expect("CONCURRENCY");
            let kind = match args.get(5).map(String::as_str) {
                Some("stream") => Kind::Stream,
                Some("mcp") => Kind::Mcp,
                _ => Kind::Buffered,
            };
            rt.block_on(measure(&args[2], n, c, kind));
        }
        _ => eprintln!(
            "usage: gw_loadgen upstream ADDR | mcp-upstream ADDR | measure ADDR N CONCURRENCY [stream|mcp]"
        ),
    }
}

/// A body fed from a channel: chunks leave as they are produced.
struct ChanBody(mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChanBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|c| c.map(|b| Ok(Frame::data(b))))
    }
}

type Out = http_body_util::Either<Full<Bytes>, ChanBody>;

async fn answer(req: Request<Incoming>) -> Result<Response<Out>, Infallible> {
    let body = req
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&body);
    if !text.contains("\"stream\":true") {
        let full = Full::new(Bytes::from_static(BUFFERED.as_bytes()));
        return Ok(with_type(
            http_body_util::Either::Left(full),
            "application/json",
        ));
    }
    let usage = text.contains("include_usage");
    let gap = std::env::var("GW_CHUNK_GAP_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0u64);
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        for i in 0..10 {
            if gap > 0 && i > 0 {
                tokio::time::sleep(Duration::from_millis(gap)).await;
            }
            let chunk = format!("data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"fake-model\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"tok{i} \"}}}}]}}\n\n");
            if tx.send(Bytes::from(chunk)).await.is_err() {
                return;
            }
        }
        if usage {
            let u = "data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":40,\"completion_tokens\":10}}\n\n";
            let _ = tx.send(Bytes::from_static(u.as_bytes())).await;
        }
        let _ = tx.send(Bytes::from_static(b"data: [DONE]\n\n")).await;
    });
    Ok(with_type(
        http_body_util::Either::Right(ChanBody(rx)),
        "text/event-stream",
    ))
}

fn with_type(body: Out, content_type: &'static str) -> Response<Out> {
    let mut r = Response::new(body);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    r
}

/// A `tools/call` result for the request's id (the loadgen sends small integer ids).
async fn mcp_answer(req: Request<Incoming>) -> Result<Response<Out>, Infallible> {
    let body = req
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let id = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("id").cloned())
        .unwrap_or(serde_json::Value::Null);
    let answer = format!(
        r#"{{"jsonrpc":"2.0","id":{id},"result":{{"content":[{{"type":"text","text":"Five results for the query, each with a title and a link."}}],"isError":false}}}}"#
    );
    Ok(with_type(
        http_body_util::Either::Left(Full::new(Bytes::from(answer))),
        "application/json",
    ))
}

async fn upstream(addr: &str, mcp: bool) {
    let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
    eprintln!("upstream on {}", listener.local_addr().expect("addr"));
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let _ = tcp.set_nodelay(true);
        tokio::spawn(async move {
            let io = TokioIo::new(tcp);
            let conn = hyper::server::conn::http1::Builder::new();
            let _ = if mcp {
                conn.serve_connection(io, hyper::service::service_fn(mcp_answer))
                    .await
            } else {
                conn.serve_connection(io, hyper::service::service_fn(answer))
                    .await
            };
        });
    }
}

struct Sample {
    total: Duration,
    first: Duration,
    max_gap: Duration,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Buffered,
    Stream,
    Mcp,
}

async fn measure(addr: &str, n: usize, c: usize, kind: Kind) {
    let stream = kind == Kind::Stream;
    let (path, body) = match kind {
        Kind::Stream => (
            "/v1/chat/completions",
            r#"{"model":"fake-model","stream":true,"max_tokens":256,"messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Summarise the report."}]}"#,
        ),
        Kind::Buffered => (
            "/v1/chat/completions",
            r#"{"model":"fake-model","max_tokens":256,"messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Summarise the report."}]}"#,
        ),
        Kind::Mcp => (
            "/mcp/bench",
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","arguments":{"query":"quarterly report","limit":5}}}"#,
        ),
    };
    let per = n.div_ceil(c);
    let addr: Arc<str> = Arc::from(addr);
    let started = Instant::now();
    let mut tasks = Vec::new();
    let prefix: Arc<str> = Arc::from(std::env::var("GW_AGENT").unwrap_or_else(|_| "bench".into()));
    for w in 0..c {
        let addr = addr.clone();
        let prefix = prefix.clone();
        tasks.push(tokio::spawn(async move {
            let tcp = tokio::net::TcpStream::connect(&*addr)
                .await
                .expect("connect");
            let _ = tcp.set_nodelay(true);
            let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                .await
                .expect("handshake");
            tokio::spawn(conn);
            let mut samples = Vec::with_capacity(per);
            for _ in 0..per {
                let req = Request::post(path)
                    .header("host", &*addr)
                    .header("accept", "application/json, text/event-stream")
                    .header("authorization", format!("Bearer {KEY}"))
                    .header("x-agent-id", format!("{prefix}-{}", w % 8))
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from_static(body.as_bytes())))
                    .expect("request");
                let t0 = Instant::now();
                send.ready().await.expect("ready");
                let resp = send.send_request(req).await.expect("send");
                assert!(resp.status().is_success(), "status {}", resp.status());
                let mut b = resp.into_body();
                let mut first = None;
                let mut last = Instant::now();
                let mut max_gap = Duration::ZERO;
                while let Some(f) = b.frame().await {
                    let f = f.expect("body");
                    if f.is_data() {
                        let now = Instant::now();
                        if first.is_none() {
                            first = Some(now - t0);
                        } else {
                            max_gap = max_gap.max(now - last);
                        }
                        last = now;
                    }
                }
                samples.push(Sample {
                    total: t0.elapsed(),
                    first: first.unwrap_or_default(),
                    max_gap,
                });
            }
            samples
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("worker"));
    }
    let secs = started.elapsed().as_secs_f64();
    let show = |name: &str, mut v: Vec<Duration>| {
        v.sort_unstable();
        let p = |q: f64| v[((v.len() as f64 * q) as usize).min(v.len() - 1)].as_secs_f64() * 1e6;
        println!(
            "{name}: p50 {:.0} µs  p90 {:.0} µs  p99 {:.0} µs  max {:.0} µs",
            p(0.5),
            p(0.9),
            p(0.99),
            p(1.0)
        );
    };
    println!(
        "{} calls, concurrency {c}, {:.0} calls/s",
        all.len(),
        all.len() as f64 / secs
    );
    if stream {
        show("first chunk", all.iter().map(|s| s.first).collect());
        show(
            "largest gap between chunks",
            all.iter().map(|s| s.max_gap).collect(),
        );
    }
    show("total", all.into_iter().map(|s| s.total).collect());
}
