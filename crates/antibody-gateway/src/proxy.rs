//! One call through the gateway, in order: the route, the tenant (the antibody key), the
//! agent, the request's facts, the verdicts, the tenant's policy, then the upstream chain.
//! The response streams back through [`Metered`], which reads usage as it passes and, at
//! the end, charges the policy and emits the call's `llm` event. Each step is a plain
//! function of another module; this one only sequences them and does the I/O.

use crate::backend::{Backend, KeyRefusal};
use crate::bindings::Bindings;
use crate::config::{GatewayConfig, ScanMode};
use crate::emitter::Emitter;
use crate::gate::{gate_of, revoked_tool, strongest, Gate};
use crate::identity::{fingerprint, identify, Identity, Source};
use crate::limits::{Ask, Meter, Ticket};
use crate::refusal::Refusal;
use crate::request::{inspect, Facts, Route};
use crate::scan::injection;
use crate::upstream::{chain, relayed_head, upstream_headers, upstream_path, Pool, Sender};
use crate::usage::{from_body, Observed, SseScanner};
use crate::vitals::CallRecord;
use antibody_core::TenantId;
use antibody_executors::HttpClient;
use antibody_respond::enforce::{Answer, Rate};
use axum::body::Body;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::header::{HeaderMap, HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Method, Request, Response, StatusCode};
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// A buffered response is kept for usage up to this size; a larger one is passed on with
/// its usage unread (the call's event says so).
const MAX_INSPECT: usize = 8 << 20;
/// Time allowed to receive a request body.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Gateway {
    pub(crate) cfg: GatewayConfig,
    /// Rules run on prompts in `block` mode (the global layer at start).
    rules: Option<Arc<antibody_rules::RuleSet>>,
    pools: Vec<Pool>,
    /// Kept-alive connections to each `[[gateway.mcp_servers]]`, in its order.
    pub(crate) mcp_pools: Vec<Pool>,
    /// The binary's one outbound client: every upstream connection is made by it.
    pub(crate) http: HttpClient,
    pub(crate) backend: Arc<dyn Backend>,
    pub(crate) meter: Meter,
    bindings: Bindings,
    pub(crate) emitter: Emitter,
}

/// A call as the HTTP layer hands it over.
pub struct Call {
    pub method: Method,
    pub path_and_query: String,
    pub headers: HeaderMap,
    pub peer: IpAddr,
    pub body: Body,
}

impl Gateway {
    /// Must be called inside a tokio runtime (the event emitter starts a task). `rules`
    /// are needed in `block` scan mode only.
    pub fn new(
        cfg: GatewayConfig,
        backend: Arc<dyn Backend>,
        rules: Option<Arc<antibody_rules::RuleSet>>,
        http: HttpClient,
    ) -> Arc<Gateway> {
        Arc::new(Gateway {
            rules,
            http,
            pools: cfg.providers.iter().map(|_| Pool::default()).collect(),
            mcp_pools: cfg.mcp_servers.iter().map(|_| Pool::default()).collect(),
            cfg,
            emitter: Emitter::spawn(backend.clone()),
            backend,
            meter: Meter::default(),
            bindings: Bindings::default(),
        })
    }

    pub fn emitted(&self) -> &crate::emitter::EmitStats {
        &self.emitter.stats
    }

    pub async fn handle(self: &Arc<Self>, call: Call) -> Response<Body> {
        if let Some(server) = crate::mcp::proxy::server_of(&call.path_and_query) {
            let server = server.to_owned();
            return self.mcp(&server, call).await;
        }
        match self.run(call).await {
            Ok(r) => r,
            Err(refusal) => refusal_response(&refusal),
        }
    }

    async fn run(self: &Arc<Self>, call: Call) -> Result<Response<Body>, Refusal> {
        let started = Instant::now();
        let now = self.backend.now_ms();
        let path = call.path_and_query.split('?').next().unwrap_or("");
        let route = Route::of(path)
            .filter(|_| !self.cfg.providers.is_empty())
            .ok_or_else(|| {
                Refusal::new("not_found", format!("the gateway serves no route `{path}`"))
            })?;
        let key = client_key(&call.headers);
        let tenant = self.tenant(key.as_deref()).await?;
        let id = identify(
            call.headers.get("x-agent-id").map(HeaderValue::as_bytes),
            key.as_deref(),
            call.peer,
            call.headers
                .get(hyper::header::USER_AGENT)
                .map(HeaderValue::as_bytes),
        )
        .map_err(|e| Refusal::new("invalid_request", e.to_string()))?;
        let body = read_body(call.body, self.cfg.max_body_bytes).await?;
        let (facts, body) = if route.is_call() && call.method == Method::POST {
            let (facts, rewritten) = inspect(route, &body)
                .map_err(|e| Refusal::new("invalid_request", e.to_string()))?;
            (facts, rewritten.map_or(body, Bytes::from))
        } else {
            (Facts::default(), body)
        };
        let throttle = self.judge(&tenant, &id, key.as_deref(), call.peer, &facts.tools, now)?;
        let policy = self.backend.policy(&tenant);
        let ask = Ask {
            agent: &id.entity,
            model: facts.model.as_deref(),
            max_tokens: facts.max_tokens,
        };
        let record = CallRecord {
            tenant: Some(tenant.clone()),
            agent: id.entity.clone(),
            ts: now,
            route: route.as_str(),
            model: facts.model.clone(),
            stream: facts.stream,
            prompt_hash: facts.prompt_hash.clone(),
            prompt: facts
                .scan
                .clone()
                .filter(|_| self.cfg.scan != ScanMode::Off),
            scanned: self.cfg.scan != ScanMode::Off,
            ..CallRecord::default()
        };
        if let (ScanMode::Block, Some(rules), Some(text)) =
            (self.cfg.scan, &self.rules, &facts.scan)
        {
            if let Some(refusal) = injection(rules, &tenant, &id.entity, text) {
                // Refused, and still reported: the engine makes the finding from the event.
                let mut record = record;
                record.status = refusal.status();
                record.error = Some(refusal.code);
                record.latency_ms = ms(started.elapsed());
                self.emitter.emit(record.to_event());
                return Err(refusal);
            }
        }
        let ticket = self.meter.admit(&tenant, &policy, &ask, now)?;
        // Last, so a call another check refuses does not use up the throttle's allowance.
        if let Some((entity, rate)) = throttle {
            if let Err(refusal) = self.meter.throttle(&tenant, &entity, rate, now) {
                self.meter.refund(&ticket);
                return Err(refusal);
            }
        }
        let strip = facts.stream && !facts.client_usage;
        let sent = Sent {
            method: call.method,
            path_and_query: call.path_and_query,
            headers: call.headers,
            body,
        };
        Ok(self
            .forward(sent, record, ticket, route, strip, started)
            .await)
    }

    pub(crate) async fn tenant(&self, key: Option<&str>) -> Result<TenantId, Refusal> {
        let key = key.ok_or_else(|| {
            Refusal::new(
                "invalid_api_key",
                "send an antibody key as the API key (Authorization: Bearer …)",
            )
        })?;
        self.backend.tenant_of(key).await.map_err(|e| match e {
            KeyRefusal::Unknown => Refusal::new("invalid_api_key", "unknown API key"),
            KeyRefusal::Role => Refusal::new(
                "permission_denied",
                "this key's role cannot use the gateway (it needs ingest or above)",
            ),
            KeyRefusal::Unavailable(why) => Refusal::new(
                "unavailable",
                format!("the key store is unavailable: {why}"),
            ),
        })
    }

    /// Verdicts of every entity the call is tied to: a refusal, or the throttle to count
    /// the call against once every other check passed.
    fn judge(
        &self,
        tenant: &TenantId,
        id: &Identity,
        key: Option<&str>,
        peer: IpAddr,
        tools: &[String],
        now: i64,
    ) -> Result<Option<(String, Rate)>, Refusal> {
        let verdicts = self.verdicts(tenant, id, key, peer, now);
        let gate = strongest(verdicts.iter().map(|(e, v)| gate_of(e, v, now)));
        if let Gate::Refuse(r) = gate {
            return Err(r);
        }
        if let Some(r) = verdicts.iter().find_map(|(e, v)| revoked_tool(e, v, tools)) {
            return Err(r);
        }
        match gate {
            Gate::Throttle { entity, rate } => Ok(Some((entity, rate))),
            Gate::Pass | Gate::Refuse(_) => Ok(None),
        }
    }

    /// The verdict of every entity a call is tied to: its agent, its address, and (a call
    /// that does not name its agent) every agent seen with its key or from its address.
    pub(crate) fn verdicts(
        &self,
        tenant: &TenantId,
        id: &Identity,
        key: Option<&str>,
        peer: IpAddr,
        now: i64,
    ) -> Vec<(String, Answer)> {
        let address = format!("ip:{peer}");
        let key_handle = key.map(|k| format!("key:{}", fingerprint(k.as_bytes())));
        let mut handles: Vec<&str> = vec![&address];
        if let Some(k) = &key_handle {
            handles.push(k);
        }
        let mut entities = vec![id.entity.clone(), address.clone()];
        if id.source == Source::Header {
            self.bindings.bind(tenant, &handles, &id.entity);
        } else {
            entities.extend(self.bindings.agents(tenant, &handles));
        }
        entities
            .into_iter()
            .map(|e| {
                let v = self.backend.verdict(tenant, &e, now);
                (e, v)
            })
            .collect()
    }

    async fn forward(
        self: &Arc<Self>,
        sent: Sent,
        mut record: CallRecord,
        ticket: Ticket,
        route: Route,
        strip: bool,
        started: Instant,
    ) -> Response<Body> {
        let order = chain(&self.cfg, &record.agent);
        let mut last: Option<Refusal> = None;
        for (attempt, &pi) in order.iter().enumerate() {
            let provider = &self.cfg.providers[pi];
            record.provider = provider.name.clone();
            record.retries = attempt as u32;
            let is_last = attempt + 1 == order.len();
            match self.send(pi, &sent).await {
                Ok((response, sender)) => {
                    let status = response.status();
                    if status.is_server_error() && !is_last {
                        tracing::warn!(provider = %provider.name, %status, "upstream failed; trying the fallback");
                        last = Some(Refusal::new(
                            "upstream_unavailable",
                            format!("provider `{}` answered {status}", provider.name),
                        ));
                        continue;
                    }
                    record.status = status.as_u16();
                    return self
                        .respond(response, sender, pi, record, ticket, route, strip, started);
                }
                Err(refusal) => {
                    tracing::warn!(provider = %provider.name, error = %refusal.message, "upstream unreachable");
                    last = Some(refusal);
                }
            }
        }
        let refusal = last.unwrap_or_else(|| Refusal::new("upstream_unavailable", "no provider"));
        record.error = Some(refusal.code);
        record.latency_ms = ms(started.elapsed());
        self.finish(record, &ticket, None);
        refusal_response(&refusal)
    }

    /// One attempt: a connection, the request, the response head within the timeout.
    async fn send(&self, pi: usize, sent: &Sent) -> Result<(Response<Incoming>, Sender), Refusal> {
        let p = &self.cfg.providers[pi];
        let mut request = Request::builder()
            .method(sent.method.clone())
            .uri(upstream_path(p, &sent.path_and_query))
            .body(Full::new(sent.body.clone()))
            .map_err(|e| {
                Refusal::new(
                    "invalid_request",
                    format!("cannot forward the request: {e}"),
                )
            })?;
        *request.headers_mut() = upstream_headers(p, &sent.headers, sent.body.len());
        let who = format!("provider `{}`", p.name);
        self.pools[pi]
            .exchange(&self.http, &p.endpoint, p.timeout, request, &who)
            .await
    }

    #[allow(clippy::too_many_arguments)]
    fn respond(
        self: &Arc<Self>,
        response: Response<Incoming>,
        sender: Sender,
        pi: usize,
        mut record: CallRecord,
        ticket: Ticket,
        route: Route,
        strip: bool,
        started: Instant,
    ) -> Response<Body> {
        let (parts, incoming) = response.into_parts();
        let sse = parts
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if parts.status.is_client_error() {
            record.error = Some("upstream_4xx");
        } else if parts.status.is_server_error() {
            record.error = Some("upstream_5xx");
        }
        let mode = match (sse, route.is_call()) {
            (true, _) => {
                let scanner = SseScanner::new(strip);
                Mode::Sse(Box::new(if record.scanned {
                    scanner.with_text()
                } else {
                    scanner
                }))
            }
            (false, true) => Mode::Json(Vec::new()),
            (false, false) => Mode::Plain,
        };
        let changes_length = matches!(mode, Mode::Sse(_)) && strip;
        let builder = relayed_head(&parts, changes_length);
        let metered = Metered {
            inner: incoming,
            mode,
            gw: self.clone(),
            sender: Some(sender),
            pool: pi,
            record: Some(record),
            ticket,
            started,
            first: None,
        };
        builder.body(Body::new(metered)).unwrap_or_else(|_| {
            refusal_response(&Refusal::new("upstream_unavailable", "bad upstream head"))
        })
    }

    /// A call ended: charge the policy, emit the event.
    fn finish(&self, mut record: CallRecord, ticket: &Ticket, observed: Option<Observed>) {
        if let Some(o) = observed {
            record.observed = o;
        }
        let usage = record.observed.usage;
        if let Some(u) = usage {
            let models = [record.model.as_deref(), record.observed.model.as_deref()];
            record.cost_usd = self.cfg.prices.cost(models.into_iter().flatten(), &u);
        }
        let tokens = usage.map_or(0, |u| u.input + u.output);
        let now = self.backend.now_ms();
        self.meter
            .charge(ticket, tokens, record.cost_usd.unwrap_or(0.0), now);
        self.emitter.emit(record.to_event());
    }
}

struct Sent {
    method: Method,
    path_and_query: String,
    headers: HeaderMap,
    body: Bytes,
}

/// The antibody key: `X-Antibody-Key`, else the bearer key, else `api-key` (Azure clients).
pub(crate) fn client_key(h: &HeaderMap) -> Option<String> {
    let text = |name: &str| h.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(k) = text("x-antibody-key").filter(|k| !k.is_empty()) {
        return Some(k.to_owned());
    }
    if let Some(auth) = text("authorization") {
        let (scheme, rest) = auth.split_once(' ').unwrap_or((auth, ""));
        if scheme.eq_ignore_ascii_case("bearer") && !rest.trim().is_empty() {
            return Some(rest.trim().to_owned());
        }
    }
    text("api-key").filter(|k| !k.is_empty()).map(str::to_owned)
}

pub(crate) async fn read_body(body: Body, limit: usize) -> Result<Bytes, Refusal> {
    let read = Limited::new(body, limit).collect();
    match tokio::time::timeout(BODY_TIMEOUT, read).await {
        Err(_) => Err(Refusal::new(
            "invalid_request",
            "the request body did not arrive in time",
        )),
        Ok(Ok(c)) => Ok(c.to_bytes()),
        Ok(Err(e))
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(Refusal::new(
                "request_too_large",
                format!("the request body is over {limit} bytes"),
            ))
        }
        Ok(Err(e)) => Err(Refusal::new(
            "invalid_request",
            format!("cannot read the request body: {e}"),
        )),
    }
}

pub fn refusal_response(r: &Refusal) -> Response<Body> {
    let mut b = Response::builder()
        .status(StatusCode::from_u16(r.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(CONTENT_TYPE, "application/json");
    if let Some(s) = r.retry_after_s {
        b = b.header(RETRY_AFTER, s);
    }
    b.body(Body::from(r.body())).unwrap_or_default()
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

enum Mode {
    Sse(Box<SseScanner>),
    Json(Vec<u8>),
    Plain,
}

/// The upstream response body on its way to the client, observed as it passes.
struct Metered {
    inner: Incoming,
    mode: Mode,
    gw: Arc<Gateway>,
    /// The connection, back to the pool once the body was read to its end.
    sender: Option<Sender>,
    pool: usize,
    /// `Some` until the call is finished (its event emitted).
    record: Option<CallRecord>,
    ticket: Ticket,
    started: Instant,
    first: Option<Instant>,
}

impl Metered {
    fn end(&mut self, error: Option<&'static str>) {
        let Some(mut record) = self.record.take() else {
            return;
        };
        let observed = match &mut self.mode {
            Mode::Sse(s) => {
                // A cut stream's last partial event is read too (what it holds is dropped).
                s.finish(&mut Vec::new());
                Some(std::mem::take(&mut s.observed))
            }
            Mode::Json(buf) => Some(from_body(buf)),
            Mode::Plain => None,
        };
        if error.is_some() {
            record.error = record.error.or(error);
        }
        record.latency_ms = ms(self.started.elapsed());
        if record.stream {
            record.ttft_ms = self.first.map(|f| ms(f - self.started));
        }
        self.gw.finish(record, &self.ticket, observed);
        if error.is_none() {
            if let Some(s) = self.sender.take() {
                self.gw.pools[self.pool].checkin(s);
            }
        }
    }

    /// The upstream body ended well: what the scanner still held, and the call finished.
    fn complete(&mut self) -> Vec<u8> {
        let mut tail = Vec::new();
        if let Mode::Sse(s) = &mut self.mode {
            s.finish(&mut tail);
        }
        self.end(None);
        tail
    }

    /// What the client gets of one upstream chunk (`None`: nothing yet).
    fn pass(&mut self, data: Bytes) -> Option<Bytes> {
        if self.first.is_none() {
            self.first = Some(Instant::now());
        }
        match &mut self.mode {
            Mode::Sse(s) => {
                let mut out = Vec::new();
                s.push(&data, &mut out);
                if out.len() == data.len() {
                    // Nothing was held back or dropped: hand on the chunk itself.
                    return Some(data);
                }
                (!out.is_empty()).then(|| Bytes::from(out))
            }
            Mode::Json(buf) => {
                if buf.len() + data.len() <= MAX_INSPECT {
                    buf.extend_from_slice(&data);
                } else {
                    buf.clear();
                    self.mode = Mode::Plain;
                }
                Some(data)
            }
            Mode::Plain => Some(data),
        }
    }
}

impl hyper::body::Body for Metered {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        loop {
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    let tail = this.complete();
                    if !tail.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(Bytes::from(tail)))));
                    }
                    return Poll::Ready(None);
                }
                Poll::Ready(Some(Err(e))) => {
                    this.end(Some("upstream_cut"));
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        let mut out = this.pass(data);
                        // A body of known length may not be polled past its last byte:
                        // the call ends with that byte.
                        if this.inner.is_end_stream() {
                            let tail = this.complete();
                            if !tail.is_empty() {
                                let mut joined = out.map(Vec::from).unwrap_or_default();
                                joined.extend_from_slice(&tail);
                                out = Some(Bytes::from(joined));
                            }
                        }
                        match out {
                            Some(out) => return Poll::Ready(Some(Ok(Frame::data(out)))),
                            None if this.record.is_none() => return Poll::Ready(None),
                            None => {}
                        }
                    }
                    Err(frame) => return Poll::Ready(Some(Ok(frame))),
                },
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.record.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        match &self.mode {
            Mode::Sse(_) => SizeHint::default(),
            _ => self.inner.size_hint(),
        }
    }
}

impl Drop for Metered {
    fn drop(&mut self) {
        // The client went away before the end: the connection is dropped with this body,
        // which cancels the upstream call.
        self.end(Some("client_disconnected"));
    }
}
