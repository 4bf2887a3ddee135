//! OTLP/HTTP traces and logs (protobuf or JSON) → `llm` events, and an agent's spans grouped
//! into task `vitals` ([`tasks`]). Pure: the caller passes the tenant, the time and the limits.
//!
//! Only GenAI telemetry becomes events: a span or log record with no `gen_ai.*` attribute is
//! accepted and skipped (an agent's process also exports its HTTP and database spans).
//!
//! | span (`gen_ai.operation.name`) | event | metrics | attrs |
//! |---|---|---|---|
//! | `chat`, `text_completion`, `generate_content`, `embeddings` (or none, with usage or a request model) | `llm` | `latency_ms` (span duration), `input_tokens`, `output_tokens`, `cached_tokens` (cache read), `cache_write_tokens`, `reasoning_tokens`, `ttft_ms`, `cost_usd` (only when the span carries `gen_ai.usage.cost`) | `model` (response model, else request model), `provider`, `agent`, `stream`, `prompt_hash`, `operation`, `conversation`, `prompt`, `error` |
//! | `execute_tool` | `llm` | `tool_latency_ms` | `tool`, `agent`, `operation`, `conversation`, `error` |
//! | `invoke_agent` | the task's `vitals` (below) | | |
//! | any other | `llm` | — | `operation`, `agent`, `model`, `provider`, `conversation`, `error` |
//!
//! Every event also carries `trace_id` and `span_id` (hex) and `source: "otlp"`, and the
//! idempotency id `otlp:<trace_id>:<span_id>`: an exporter that retries a batch whose answer
//! it lost (OTLP exporters retry on 429 and 503) adds each span once.
//!
//! Names read, newest first: `gen_ai.provider.name` / `gen_ai.system`;
//! `gen_ai.usage.input_tokens` / `prompt_tokens`; `output_tokens` / `completion_tokens`;
//! `gen_ai.usage.cache_read.input_tokens` / `input_tokens.cached` / `cache_read_input_tokens`;
//! `gen_ai.usage.cache_write.input_tokens` / `cache_creation.input_tokens` /
//! `input_tokens.cache_write` / `cache_creation_input_tokens`;
//! `gen_ai.usage.reasoning.output_tokens` / `output_tokens.reasoning` / `reasoning_tokens`;
//! `gen_ai.response.time_to_first_chunk` (seconds); `gen_ai.request.stream`;
//! `gen_ai.input.messages` / `gen_ai.prompt` (opt-in content, the `prompt` attr, cut to
//! `max_string_bytes` with `prompt_truncated: true`); `gen_ai.system_instructions` (hashed:
//! `prompt_hash` = the first 16 hex digits of its SHA-256).
//!
//! **Entity** `agent:<id>`: the span's `gen_ai.agent.id`, else its `gen_ai.agent.name`, else
//! the nearest ancestor span in the same request that names an agent, else the resource's
//! `service.name`, else `agent:unknown_service`. Model-call spans rarely name their agent; an
//! agent's spans exported before its `invoke_agent` span (another batch) are attributed to the
//! service.
//!
//! **Time**: an event's `ts` is the span's end. **Logs**: a record with a `gen_ai.*` attribute
//! or a `gen_ai.*` event name becomes an `llm` event with the attrs above and its `prompt`
//! (attrs, or the body of a `gen_ai.user.message`); its usage metrics are kept only when the
//! record is tied to no span — a record about a span repeats what the span's own export
//! carries, and counting it twice would double a budget's spend.
//!
//! **Refused** (counted in the response's `partial_success`, the rest is kept): a span
//! without a 16-byte trace id and an 8-byte span id, one that ends before it starts or too far
//! in the future (`max_future_ms`), an entity over `max_entity_bytes` or with control
//! characters, an attribute string over `max_string_bytes`. A body that does not decode,
//! holds more than `max_events` spans or records, or would take more than 4× `max_body_bytes`
//! once decoded (measured before decoding: [`budget`]) fails whole ([`OtlpError`]).

mod budget;
mod genai;
pub mod proto;
pub mod tasks;

use genai::Call;
pub use genai::Operation;
pub use tasks::{TaskSpan, TaskTable};

use antibody_core::ingest::Limits;
use antibody_core::{AttrValue, Event, TenantId, TimestampMs};
use genai::text;
use prost::Message as _;
use proto::{KeyValue, Resource, Span};
use sha2::Digest as _;
use std::collections::HashMap;

/// How an OTLP/HTTP body is encoded (its `Content-Type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// `application/x-protobuf` (the exporters' default).
    Protobuf,
    /// `application/json`.
    Json,
}

impl Encoding {
    pub fn from_content_type(content_type: Option<&str>) -> Option<Encoding> {
        let mime = content_type?.split(';').next().unwrap_or("").trim();
        let is = |m: &str| mime.eq_ignore_ascii_case(m);
        if is("application/x-protobuf") || is("application/protobuf") {
            Some(Encoding::Protobuf)
        } else if is("application/json") {
            Some(Encoding::Json)
        } else {
            None
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

/// Which OTLP signal a body carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    Traces,
    Logs,
}

impl Signal {
    fn name(self) -> &'static str {
        match self {
            Signal::Traces => "traces",
            Signal::Logs => "logs",
        }
    }

    fn items(self) -> &'static str {
        match self {
            Signal::Traces => "spans",
            Signal::Logs => "log records",
        }
    }
}

/// Why a whole OTLP body was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OtlpError {
    #[error("the body is not an OTLP {signal} export in protobuf: {reason}")]
    Protobuf {
        signal: &'static str,
        reason: String,
    },
    #[error("the body is not an OTLP {signal} export in JSON: {reason}")]
    Json {
        signal: &'static str,
        reason: String,
    },
    #[error("the request holds more than {limit} {items}")]
    TooMany { limit: usize, items: &'static str },
    #[error(
        "the body would take more than {budget} bytes once decoded; split it into smaller exports"
    )]
    TooLarge { budget: usize },
}

impl OtlpError {
    /// The API error code (its status is the server's to choose).
    pub fn code(&self) -> &'static str {
        match self {
            OtlpError::Protobuf { .. } | OtlpError::Json { .. } => "invalid_otlp",
            OtlpError::TooMany { .. } => "too_many_events",
            OtlpError::TooLarge { .. } => "payload_too_large",
        }
    }
}

/// What one export request turned into.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Mapped {
    /// Spans or log records in the body, GenAI or not.
    pub received: usize,
    pub events: Vec<Event>,
    /// The request's GenAI spans (and trace roots), for [`TaskTable`].
    pub tasks: Vec<TaskSpan>,
    /// Spans or log records refused, and the first reason.
    pub rejected: usize,
    pub first_error: Option<String>,
}

impl Mapped {
    fn reject(&mut self, why: String) {
        self.rejected += 1;
        self.first_error.get_or_insert(why);
    }
}

/// Everything an event is built against.
#[derive(Clone, Copy)]
struct Ctx<'a> {
    tenant: &'a TenantId,
    now_ms: TimestampMs,
    limits: &'a Limits,
}

/// Decodes a body after checking what it would cost ([`budget`]).
fn decode<M: prost::Message + Default + serde::de::DeserializeOwned>(
    body: &[u8],
    enc: Encoding,
    signal: Signal,
    limits: &Limits,
) -> Result<M, OtlpError> {
    budget::check(body, enc == Encoding::Json, signal, limits.max_body_bytes)?;
    let signal_name = signal.name();
    match enc {
        Encoding::Protobuf => M::decode(body).map_err(|e| OtlpError::Protobuf {
            signal: signal_name,
            reason: e.to_string(),
        }),
        Encoding::Json => serde_json::from_slice(body).map_err(|e| OtlpError::Json {
            signal: signal_name,
            reason: e.to_string(),
        }),
    }
}

fn too_many(n: usize, limits: &Limits, signal: Signal) -> Result<(), OtlpError> {
    if n > limits.max_events {
        return Err(OtlpError::TooMany {
            limit: limits.max_events,
            items: signal.items(),
        });
    }
    Ok(())
}

/// Decodes an `ExportTraceServiceRequest` and maps its spans.
pub fn map_traces(
    body: &[u8],
    enc: Encoding,
    tenant: &TenantId,
    now_ms: TimestampMs,
    limits: &Limits,
) -> Result<Mapped, OtlpError> {
    let req: proto::ExportTraceServiceRequest = decode(body, enc, Signal::Traces, limits)?;
    let n = req
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum();
    too_many(n, limits, Signal::Traces)?;
    let ctx = Ctx {
        tenant,
        now_ms,
        limits,
    };
    let mut out = Mapped {
        received: n,
        ..Mapped::default()
    };
    for rs in &req.resource_spans {
        let spans: Vec<&Span> = rs.scope_spans.iter().flat_map(|s| &s.spans).collect();
        map_resource_spans(&spans, service(rs.resource.as_ref()), ctx, &mut out);
    }
    Ok(out)
}

/// Decodes an `ExportLogsServiceRequest` and maps its GenAI records.
pub fn map_logs(
    body: &[u8],
    enc: Encoding,
    tenant: &TenantId,
    now_ms: TimestampMs,
    limits: &Limits,
) -> Result<Mapped, OtlpError> {
    let req: proto::ExportLogsServiceRequest = decode(body, enc, Signal::Logs, limits)?;
    let n = req
        .resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .map(|s| s.log_records.len())
        .sum();
    too_many(n, limits, Signal::Logs)?;
    let ctx = Ctx {
        tenant,
        now_ms,
        limits,
    };
    let mut out = Mapped {
        received: n,
        ..Mapped::default()
    };
    for rl in &req.resource_logs {
        let svc = service(rl.resource.as_ref());
        for rec in rl.scope_logs.iter().flat_map(|s| &s.log_records) {
            match log_event(rec, svc, ctx) {
                Ok(Some(ev)) => out.events.push(ev),
                Ok(None) => {}
                Err(why) => out.reject(why),
            }
        }
    }
    Ok(out)
}

/// The JSON form of an `Export{Trace,Logs}ServiceResponse` (OTLP/HTTP writes 64-bit
/// counts as strings).
#[derive(Debug, Default, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExportResponseJson {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partial_success: Option<PartialSuccessJson>,
}

#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PartialSuccessJson {
    /// Spans refused (traces).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejected_spans: Option<String>,
    /// Log records refused (logs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejected_log_records: Option<String>,
    pub error_message: String,
}

/// The body of the answer: an `Export{Trace,Logs}ServiceResponse` in the request's encoding,
/// with `partial_success` when something was refused.
pub fn response(enc: Encoding, signal: Signal, rejected: usize, message: Option<&str>) -> Vec<u8> {
    let partial = (rejected > 0).then(|| proto::PartialSuccess {
        rejected: i64::try_from(rejected).unwrap_or(i64::MAX),
        error_message: message.unwrap_or_default().to_owned(),
    });
    match enc {
        Encoding::Protobuf => proto::ExportTraceServiceResponse {
            partial_success: partial,
        }
        .encode_to_vec(),
        Encoding::Json => {
            let partial_success = partial.map(|p| {
                let count = Some(p.rejected.to_string());
                let (rejected_spans, rejected_log_records) = match signal {
                    Signal::Traces => (count, None),
                    Signal::Logs => (None, count),
                };
                PartialSuccessJson {
                    rejected_spans,
                    rejected_log_records,
                    error_message: p.error_message,
                }
            });
            serde_json::to_vec(&ExportResponseJson { partial_success }).unwrap_or_default()
        }
    }
}

fn service(resource: Option<&Resource>) -> Option<&str> {
    resource?
        .attributes
        .iter()
        .find(|kv| kv.key == "service.name")
        .and_then(|kv| text(kv.value.as_ref()))
}

/// The spans of one resource (one process): agents are inherited from ancestors among them.
fn map_resource_spans(spans: &[&Span], service: Option<&str>, ctx: Ctx<'_>, out: &mut Mapped) {
    let calls: Vec<Call> = spans.iter().map(|s| Call::read(&s.attributes)).collect();
    let by_id: HashMap<&[u8], usize> = spans
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.span_id.is_empty())
        .map(|(i, s)| (s.span_id.as_slice(), i))
        .collect();
    for (i, (span, call)) in spans.iter().zip(&calls).enumerate() {
        if !call.is_gen_ai && !span.parent_span_id.is_empty() {
            continue;
        }
        let agent = agent_of(i, spans, &calls, &by_id).or(service);
        match span_event(span, call, agent, ctx) {
            Ok((ev, task)) => {
                out.events.extend(ev);
                out.tasks.push(task);
            }
            Err(why) if call.is_gen_ai => out.reject(why),
            // A non-GenAI root with broken ids only loses its role of ending tasks.
            Err(_) => {}
        }
    }
}

/// The agent a span names, or the nearest ancestor's (bounded walk: ids may form a cycle).
fn agent_of<'a>(
    mut i: usize,
    spans: &[&Span],
    calls: &'a [Call],
    by_id: &HashMap<&[u8], usize>,
) -> Option<&'a str> {
    for _ in 0..64 {
        if let Some(a) = calls[i].agent() {
            return Some(a);
        }
        i = *by_id.get(spans[i].parent_span_id.as_slice())?;
    }
    None
}

/// One span → its event (none for an agent's or a non-GenAI root span) and its task facts.
fn span_event(
    span: &Span,
    call: &Call,
    agent: Option<&str>,
    ctx: Ctx<'_>,
) -> Result<(Option<Event>, TaskSpan), String> {
    let (trace_id, span_id) = ids(&span.trace_id, &span.span_id)?;
    if span.end_time_unix_nano != 0 && span.end_time_unix_nano < span.start_time_unix_nano {
        return Err(format!("span {} ends before it starts", to_hex(&span_id)));
    }
    let end = if span.end_time_unix_nano != 0 {
        span.end_time_unix_nano
    } else {
        span.start_time_unix_nano
    };
    let ts = if end == 0 {
        ctx.now_ms
    } else {
        nanos_to_ms(end)
    };
    future(ts, ctx)?;
    let duration_ms = (span.start_time_unix_nano != 0 && span.end_time_unix_nano != 0)
        .then(|| (span.end_time_unix_nano - span.start_time_unix_nano) as f64 / 1e6);
    let error = span
        .status
        .as_ref()
        .is_some_and(|s| s.code == proto::STATUS_ERROR);
    let trace_root = span.parent_span_id.is_empty();
    let op = call.effective_operation();
    let mut task = TaskSpan {
        trace_id,
        span_id,
        entity: None,
        operation: op.clone(),
        trace_root,
        end_ms: ts,
        duration_ms,
        error,
        tokens: tokens(call),
        tool: None,
        model: call.model().map(str::to_owned),
        conversation: call.conversation.map(str::to_owned),
    };
    if !call.is_gen_ai {
        return Ok((None, task));
    }
    let entity = entity(agent, ctx.limits)?;
    task.entity = Some(entity.clone());
    task.tool = call.tool.map(str::to_owned);
    let Some(op) = op.filter(|op| *op != Operation::InvokeAgent) else {
        // An agent span is its task's root: the task's vitals stand for it.
        return Ok((None, task));
    };
    let mut b = Builder::new(ctx, &entity, agent);
    b.str("operation", Some(op.name()))?;
    match &op {
        Operation::ModelCall(_) => model_call(&mut b, call, duration_ms)?,
        Operation::Tool => {
            b.str("tool", call.tool)?;
            b.metric("tool_latency_ms", duration_ms);
        }
        Operation::InvokeAgent | Operation::Other(_) => {
            b.str("model", call.model())?;
            b.str("provider", call.provider)?;
        }
    }
    b.str("conversation", call.conversation)?;
    b.error(
        error,
        call,
        span.status.as_ref().map(|s| s.message.as_str()),
    )?;
    let (trace_hex, span_hex) = (to_hex(&trace_id), to_hex(&span_id));
    let id = format!("otlp:{trace_hex}:{span_hex}");
    b.ids(trace_hex, span_hex);
    Ok((Some(b.finish(ts, Some(id))), task))
}

fn model_call(b: &mut Builder<'_>, call: &Call, duration_ms: Option<f64>) -> Result<(), String> {
    b.metric("latency_ms", duration_ms);
    usage(b, call);
    b.metric("ttft_ms", call.ttft_s.map(|s| s * 1000.0));
    b.str("model", call.model())?;
    b.str("provider", call.provider)?;
    if let Some(stream) = call.stream {
        b.attrs.push(("stream".into(), AttrValue::Bool(stream)));
    }
    b.prompt(call);
    Ok(())
}

fn usage(b: &mut Builder<'_>, call: &Call) {
    b.metric("input_tokens", call.input_tokens);
    b.metric("output_tokens", call.output_tokens);
    b.metric("cached_tokens", call.cache_read_tokens);
    b.metric("cache_write_tokens", call.cache_write_tokens);
    b.metric("reasoning_tokens", call.reasoning_tokens);
    b.metric("cost_usd", call.cost_usd);
}

fn tokens(call: &Call) -> Option<f64> {
    call.has_usage()
        .then(|| call.input_tokens.unwrap_or(0.0) + call.output_tokens.unwrap_or(0.0))
}

/// A log record → an `llm` event, `None` when it carries no GenAI telemetry.
fn log_event(
    rec: &proto::LogRecord,
    service: Option<&str>,
    ctx: Ctx<'_>,
) -> Result<Option<Event>, String> {
    let mut call = Call::read(&rec.attributes);
    let named = rec.event_name.starts_with("gen_ai.");
    if !call.is_gen_ai && !named {
        return Ok(None);
    }
    if call.prompt.is_none() && rec.event_name == "gen_ai.user.message" {
        call.prompt = genai::flat_text(rec.body.as_ref());
    }
    let time = if rec.time_unix_nano != 0 {
        rec.time_unix_nano
    } else {
        rec.observed_time_unix_nano
    };
    let ts = if time == 0 {
        ctx.now_ms
    } else {
        nanos_to_ms(time)
    };
    future(ts, ctx)?;
    let agent = call.agent().or(service);
    let entity = entity(agent, ctx.limits)?;
    let mut b = Builder::new(ctx, &entity, agent);
    let op = call.effective_operation();
    b.str("operation", op.as_ref().map(Operation::name))?;
    if !rec.event_name.is_empty() {
        b.str("event_name", Some(&rec.event_name))?;
    }
    b.str("model", call.model())?;
    b.str("provider", call.provider)?;
    b.str("tool", call.tool)?;
    b.str("conversation", call.conversation)?;
    b.prompt(&call);
    b.error(false, &call, None)?;
    if rec.span_id.is_empty() {
        usage(&mut b, &call);
    }
    if rec.trace_id.len() == 16 && rec.span_id.len() == 8 {
        b.ids(to_hex(&rec.trace_id), to_hex(&rec.span_id));
    }
    // Same record, same id: a retried export adds it once.
    let id = format!("otlp-log:{:016x}", fnv1a(&rec.encode_to_vec()));
    Ok(Some(b.finish(ts, Some(id))))
}

fn ids(trace: &[u8], span: &[u8]) -> Result<([u8; 16], [u8; 8]), String> {
    let trace: [u8; 16] = trace
        .try_into()
        .ok()
        .filter(|t: &[u8; 16]| t.iter().any(|b| *b != 0))
        .ok_or_else(|| {
            format!(
                "trace_id must be 16 bytes (32 hex digits), not all zero; got {} bytes",
                trace.len()
            )
        })?;
    let span: [u8; 8] = span
        .try_into()
        .ok()
        .filter(|s: &[u8; 8]| s.iter().any(|b| *b != 0))
        .ok_or_else(|| {
            format!(
                "span_id must be 8 bytes (16 hex digits), not all zero; got {} bytes",
                span.len()
            )
        })?;
    Ok((trace, span))
}

fn nanos_to_ms(ns: u64) -> TimestampMs {
    // u64 nanoseconds reach the year 2554: always within i64 milliseconds.
    (ns / 1_000_000) as TimestampMs
}

fn future(ts: TimestampMs, ctx: Ctx<'_>) -> Result<(), String> {
    if ts.saturating_sub(ctx.now_ms) > ctx.limits.max_future_ms {
        return Err(format!(
            "the span ends more than {} h in the future; check the sender's clock",
            ctx.limits.max_future_ms / 3_600_000
        ));
    }
    Ok(())
}

/// The entity an agent's telemetry is about.
fn entity(agent: Option<&str>, limits: &Limits) -> Result<String, String> {
    let e = format!("agent:{}", agent.unwrap_or("unknown_service"));
    if e.len() > limits.max_entity_bytes {
        return Err(format!(
            "entity `{}…` is {} bytes; the limit is {}",
            e.chars().take(40).collect::<String>(),
            e.len(),
            limits.max_entity_bytes
        ));
    }
    if e.chars().any(char::is_control) {
        return Err("the agent name must not contain control characters".into());
    }
    Ok(e)
}

/// Lower-case hex (`hex::encode` goes through a `char` iterator: several times slower on
/// this path, where every event carries two ids).
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = Vec::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)]);
        out.push(DIGITS[usize::from(b & 0xf)]);
    }
    // Only ASCII digits were pushed.
    String::from_utf8(out).unwrap_or_default()
}

/// FNV-1a, 64-bit: a stable id for a record that has no ids of its own.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// An event being assembled under the request's limits.
struct Builder<'a> {
    ctx: Ctx<'a>,
    entity: &'a str,
    metrics: Vec<(String, f64)>,
    attrs: Vec<(String, AttrValue)>,
}

impl<'a> Builder<'a> {
    fn new(ctx: Ctx<'a>, entity: &'a str, agent: Option<&str>) -> Self {
        let mut attrs = vec![("source".to_owned(), AttrValue::Str("otlp".into()))];
        if let Some(a) = agent {
            attrs.push(("agent".into(), AttrValue::Str(a.to_owned())));
        }
        Builder {
            ctx,
            entity,
            metrics: Vec::new(),
            attrs,
        }
    }

    fn metric(&mut self, name: &str, v: Option<f64>) {
        if let Some(v) = v.filter(|v| v.is_finite()) {
            self.metrics.push((name.to_owned(), v));
        }
    }

    /// A sender's string as an attr; over the limit refuses the span.
    fn str(&mut self, name: &str, v: Option<&str>) -> Result<(), String> {
        let Some(v) = v else { return Ok(()) };
        let max = self.ctx.limits.max_string_bytes;
        if v.len() > max {
            return Err(format!(
                "attr `{name}` is {} bytes; the limit is {max}",
                v.len()
            ));
        }
        self.attrs
            .push((name.to_owned(), AttrValue::Str(v.to_owned())));
        Ok(())
    }

    /// The prompt is content to scan, often long: cut to the limit rather than refused.
    fn prompt(&mut self, call: &Call) {
        if let Some(p) = &call.prompt {
            let max = self.ctx.limits.max_string_bytes;
            let mut end = p.len().min(max);
            while !p.is_char_boundary(end) {
                end -= 1;
            }
            self.attrs
                .push(("prompt".into(), AttrValue::Str(p[..end].to_owned())));
            if end < p.len() {
                self.attrs
                    .push(("prompt_truncated".into(), AttrValue::Bool(true)));
            }
        }
        if let Some(system) = &call.system {
            let digest = sha2::Sha256::digest(system.as_bytes());
            let hash = to_hex(&digest[..8]);
            self.attrs
                .push(("prompt_hash".into(), AttrValue::Str(hash)));
        }
    }

    fn error(&mut self, failed: bool, call: &Call, message: Option<&str>) -> Result<(), String> {
        let why = call
            .error_type
            .or(message.filter(|m| !m.is_empty()))
            .or(failed.then_some("error"));
        self.str("error", why)
    }

    fn ids(&mut self, trace_hex: String, span_hex: String) {
        self.attrs
            .push(("trace_id".into(), AttrValue::Str(trace_hex)));
        self.attrs
            .push(("span_id".into(), AttrValue::Str(span_hex)));
    }

    fn finish(self, ts: TimestampMs, id: Option<String>) -> Event {
        Event {
            tenant: self.ctx.tenant.clone(),
            ts,
            entity: self.entity.to_owned(),
            kind: "llm".into(),
            metrics: self.metrics,
            attrs: self.attrs,
            id,
        }
    }
}

/// `KeyValue` for tests and benches that build requests.
pub fn kv(key: &str, value: proto::Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(proto::AnyValue { value: Some(value) }),
    }
}

#[cfg(test)]
mod tests;
