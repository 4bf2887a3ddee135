//! Parsing `POST /v1/events` bodies into validated [`Event`]s: content decoding, format
//! detection, per-item validation and every size limit. Pure: no I/O, no clock (the caller
//! passes `now_ms` and the tenant).
//!
//! Choices the API contract leaves open:
//! - A body is one JSON object, a JSON array of objects ([`BodyFormat::Json`]) or NDJSON
//!   ([`BodyFormat::Ndjson`]). A bad item rejects that item only; [`Rejected::index`] is its
//!   0-based position in the array, or among the non-blank NDJSON lines (blank lines, including
//!   whitespace-only ones, are skipped and not counted).
//! - A JSON syntax error in a JSON body (array or single object) fails the whole body with
//!   [`IngestError::InvalidJson`]; in NDJSON it rejects only that line. Numbers that overflow an
//!   `f64` (`1e400`) are syntax errors to serde_json, so they follow the same rule.
//! - An NDJSON line longer than `max_line_bytes` rejects that line, not the body.
//! - A leading UTF-8 byte-order mark is ignored.
//! - `null` for `ts`, `id`, `metrics` or `attrs` means "absent". `ts` is RFC 3339 or an
//!   integer of epoch milliseconds, within 1970-01-01 ..= 9999-12-31.
//! - Depth counts from the event object (level 1); `metrics`/`attrs` are level 2.

mod decode;
mod item;

pub use decode::decode_body;
pub use item::{EventItem, MAX_ID_BYTES, MAX_KIND_BYTES, MAX_NAME_BYTES};

use crate::{Event, TenantId, TimestampMs};
use item::{item_seed, Ctx};
use serde::de::{DeserializeSeed, Deserializer as _, Error as _, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Size limits for one request. The defaults are the public contract's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest body, after decompression.
    pub max_body_bytes: usize,
    /// Longest NDJSON line.
    pub max_line_bytes: usize,
    /// Most items (accepted or not) in one request.
    pub max_events: usize,
    /// Most metrics and attrs, together, in one event.
    pub max_fields: usize,
    /// Deepest nesting inside one event, the event object being level 1.
    pub max_depth: usize,
    /// Longest attr string value.
    pub max_string_bytes: usize,
    /// Longest `entity`.
    pub max_entity_bytes: usize,
    /// How far past "now" an event's `ts` may be. A clock gone wrong would otherwise pin
    /// windows and incidents open for years.
    pub max_future_ms: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 16 << 20,
            max_line_bytes: 1 << 20,
            max_events: 100_000,
            max_fields: 256,
            max_depth: 8,
            max_string_bytes: 64 << 10,
            max_entity_bytes: 512,
            max_future_ms: 24 * 3600 * 1000,
        }
    }
}

/// How a body holds its events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFormat {
    /// One JSON object or a JSON array of objects.
    Json,
    /// One JSON object per line.
    Ndjson,
}

impl BodyFormat {
    /// The format a `Content-Type` names, or `None` when it names neither (then [`Self::sniff`]).
    pub fn from_content_type(content_type: Option<&str>) -> Option<BodyFormat> {
        let mime = content_type?.split(';').next().unwrap_or("").trim();
        let is = |m: &str| mime.eq_ignore_ascii_case(m);
        if is("application/json") {
            Some(BodyFormat::Json)
        } else if is("application/x-ndjson") || is("application/ndjson") || is("application/jsonl")
        {
            Some(BodyFormat::Ndjson)
        } else {
            None
        }
    }

    /// Guesses from a decoded body: NDJSON when its first non-blank line is a whole object on
    /// its own (starts with `{`, ends with `}`) and another non-blank line follows; JSON
    /// otherwise (arrays, single objects, pretty-printed objects).
    pub fn sniff(body: &[u8]) -> BodyFormat {
        let mut lines = strip_bom(body)
            .split(|&b| b == b'\n')
            .map(trim_json_space)
            .filter(|line| !line.is_empty());
        match lines.next() {
            Some(first)
                if first.starts_with(b"{") && first.ends_with(b"}") && lines.next().is_some() =>
            {
                BodyFormat::Ndjson
            }
            _ => BodyFormat::Json,
        }
    }

    /// The `Content-Type`'s format if it names one, else the sniffed one.
    pub fn detect(content_type: Option<&str>, body: &[u8]) -> BodyFormat {
        Self::from_content_type(content_type).unwrap_or_else(|| Self::sniff(body))
    }
}

/// Drops a leading UTF-8 byte-order mark, which some Windows tools write and JSON forbids.
fn strip_bom(body: &[u8]) -> &[u8] {
    body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body)
}

fn is_json_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn trim_json_space(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| !is_json_space(b)).unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|&b| !is_json_space(b))
        .map_or(start, |i| i + 1);
    &s[start..end]
}

/// What a body held: the events that passed and the items that did not.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ParsedBatch {
    pub events: Vec<Event>,
    pub rejected: Vec<Rejected>,
}

/// One rejected item, as reported in the 202 response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Rejected {
    /// 0-based position among the body's items (see the module docs for NDJSON).
    pub index: usize,
    /// Why, as a sentence for the sender.
    pub error: String,
}

/// Why a whole body was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IngestError {
    #[error("the request body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("the request holds more than {limit} events")]
    TooManyEvents { limit: usize },
    #[error("the body holds no acceptable event: {first_error}")]
    NothingParseable { first_error: String },
    #[error("invalid JSON at line {line}, column {column}: {message}")]
    InvalidJson {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("unsupported Content-Encoding `{0}`; use identity or gzip")]
    UnsupportedEncoding(String),
    #[error("the gzip body could not be decompressed: {0}")]
    BadGzip(String),
}

impl IngestError {
    /// The API error code (its HTTP status is the server's to choose: `antibody_server::error::CODES`).
    pub fn code(&self) -> &'static str {
        match self {
            IngestError::TooLarge { .. } => "payload_too_large",
            IngestError::TooManyEvents { .. } => "too_many_events",
            IngestError::NothingParseable { .. } => "no_valid_events",
            IngestError::InvalidJson { .. } => "invalid_json",
            IngestError::UnsupportedEncoding(_) => "unsupported_encoding",
            IngestError::BadGzip(_) => "invalid_gzip",
        }
    }

    fn from_json(e: &serde_json::Error) -> IngestError {
        IngestError::InvalidJson {
            line: e.line(),
            column: e.column(),
            message: bare_message(e),
        }
    }
}

/// serde_json's message without the " at line L column C" it appends.
fn bare_message(e: &serde_json::Error) -> String {
    let full = e.to_string();
    let position = format!(" at line {} column {}", e.line(), e.column());
    match full.strip_suffix(&position) {
        Some(bare) => bare.to_owned(),
        None => full,
    }
}

/// Parses a decoded body into events for `tenant`; items without `ts` get `now_ms`.
pub fn parse_events(
    body: &[u8],
    format: BodyFormat,
    tenant: &TenantId,
    now_ms: TimestampMs,
    limits: &Limits,
) -> Result<ParsedBatch, IngestError> {
    if body.len() > limits.max_body_bytes {
        return Err(IngestError::TooLarge {
            limit: limits.max_body_bytes,
        });
    }
    let ctx = Ctx {
        tenant,
        now_ms,
        limits,
    };
    let body = strip_bom(body);
    let mut batch = Collector::default();
    match format {
        BodyFormat::Json => parse_json(body, ctx, &mut batch)?,
        BodyFormat::Ndjson => parse_ndjson(body, ctx, &mut batch)?,
    }
    batch.finish()
}

/// Accumulates item outcomes in order.
#[derive(Default)]
struct Collector {
    batch: ParsedBatch,
    items: usize,
    overflowed: bool,
}

impl Collector {
    fn push(&mut self, outcome: Result<Event, String>) {
        match outcome {
            Ok(event) => self.batch.events.push(event),
            Err(error) => self.batch.rejected.push(Rejected {
                index: self.items,
                error,
            }),
        }
        self.items += 1;
    }

    fn finish(self) -> Result<ParsedBatch, IngestError> {
        if !self.batch.events.is_empty() {
            return Ok(self.batch);
        }
        let first_error = match self.batch.rejected.first() {
            Some(r) => format!("item {}: {}", r.index, r.error),
            None => {
                "the body is empty; send a JSON object, a JSON array of objects or NDJSON".into()
            }
        };
        Err(IngestError::NothingParseable { first_error })
    }
}

fn parse_json(body: &[u8], ctx: Ctx<'_>, batch: &mut Collector) -> Result<(), IngestError> {
    // Validating UTF-8 once up front lets serde_json borrow strings without re-checking them.
    let text = std::str::from_utf8(body).map_err(|e| invalid_utf8(body, e.valid_up_to()))?;
    let mut de = serde_json::Deserializer::from_str(text);
    match body.iter().copied().find(|&b| !is_json_space(b)) {
        None => return Ok(()),
        Some(b'[') => {
            let read = (&mut de).deserialize_seq(ArrayVisitor {
                ctx,
                batch: &mut *batch,
            });
            if batch.overflowed {
                return Err(IngestError::TooManyEvents {
                    limit: ctx.limits.max_events,
                });
            }
            read.map_err(|e| IngestError::from_json(&e))?;
        }
        Some(_) => {
            let item = item_seed(ctx)
                .deserialize(&mut de)
                .map_err(|e| IngestError::from_json(&e))?;
            batch.push(item);
        }
    }
    de.end()
        .map_err(|e| with_hint(IngestError::from_json(&e), body))
}

/// The body held several objects where JSON allows one: one per line is NDJSON sent under
/// the wrong `Content-Type`.
const NDJSON_AS_JSON: &str = "this body holds one object per line (NDJSON) but was sent as \
     `Content-Type: application/json`; send it as `application/x-ndjson` (curl: \
     -H 'Content-Type: application/x-ndjson' --data-binary @events.ndjson)";
/// Objects back to back on one line: what `curl -d @file` makes of an NDJSON file (it strips
/// the newlines).
const CONCATENATED: &str = "objects follow each other on one line, as `curl -d @file` makes of \
     NDJSON (it strips newlines); send the file with --data-binary @events.ndjson and \
     -H 'Content-Type: application/x-ndjson'";

/// Adds what to do to a "trailing characters" error that one of the two usual mistakes
/// above caused: another object right after the first.
fn with_hint(err: IngestError, body: &[u8]) -> IngestError {
    let IngestError::InvalidJson {
        line,
        column,
        message,
    } = err
    else {
        return err;
    };
    let hint = next_object_at(body, line, column).map(|newline_between| {
        if newline_between {
            NDJSON_AS_JSON
        } else {
            CONCATENATED
        }
    });
    IngestError::InvalidJson {
        line,
        column,
        message: match hint {
            Some(h) => format!("{message}; {h}"),
            None => message,
        },
    }
}

/// When the error at (`line`, `column`; 1-based) is a `{` right after an object's `}`:
/// whether a newline separates them.
fn next_object_at(body: &[u8], line: usize, column: usize) -> Option<bool> {
    let line_start: usize = body
        .split(|&b| b == b'\n')
        .take(line.saturating_sub(1))
        .map(|l| l.len() + 1)
        .sum();
    let at = line_start + column.saturating_sub(1);
    if body.get(at) != Some(&b'{') {
        return None;
    }
    let before = body.get(..at)?;
    let end = before.iter().rposition(|&b| !is_json_space(b))?;
    (before[end] == b'}').then(|| before[end..].contains(&b'\n'))
}

fn invalid_utf8(body: &[u8], valid_up_to: usize) -> IngestError {
    let before = &body[..valid_up_to];
    let line_start = memchr::memrchr(b'\n', before).map_or(0, |i| i + 1);
    IngestError::InvalidJson {
        line: memchr::memchr_iter(b'\n', before).count() + 1,
        column: valid_up_to - line_start + 1,
        message: "invalid UTF-8".into(),
    }
}

/// Reads a top-level array item by item, stopping as soon as it holds too many.
struct ArrayVisitor<'c, 'b> {
    ctx: Ctx<'c>,
    batch: &'b mut Collector,
}

impl<'de> Visitor<'de> for ArrayVisitor<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON array of events")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(item) = seq.next_element_seed(item_seed(self.ctx))? {
            if self.batch.items == self.ctx.limits.max_events {
                self.batch.overflowed = true;
                return Err(A::Error::custom("too many events"));
            }
            self.batch.push(item);
        }
        Ok(())
    }
}

#[cfg(test)]
mod hint_tests {
    use super::*;

    fn error_of(body: &str) -> String {
        let limits = Limits::default();
        let t = TenantId::new("t");
        match parse_events(body.as_bytes(), BodyFormat::Json, &t, 0, &limits) {
            Err(e) => e.to_string(),
            Ok(p) => panic!("parsed {} events", p.events.len()),
        }
    }

    #[test]
    fn ndjson_sent_as_json_and_curl_d_newline_stripping_say_what_to_do() {
        let one = r#"{"entity":"a","kind":"k"}"#;
        let ndjson = error_of(&format!("{one}\n{one}\n"));
        assert!(
            ndjson.contains("application/x-ndjson") && ndjson.contains("NDJSON"),
            "{ndjson}"
        );
        let stripped = error_of(&format!("{one}{one}{one}"));
        assert!(
            stripped.contains("curl -d") && stripped.contains("--data-binary"),
            "{stripped}"
        );
        let spaced = error_of(&format!("{one} {one}"));
        assert!(spaced.contains("curl -d"), "{spaced}");
        // Other syntax errors keep serde's message alone.
        let other = error_of(r#"{"entity":"a","kind":"k"} x"#);
        assert!(
            !other.contains("curl") && !other.contains("NDJSON"),
            "{other}"
        );
        let broken = error_of(r#"{"entity":"a",,}"#);
        assert!(!broken.contains("curl"), "{broken}");
        // The same stripped file sent as NDJSON: one line, refused saying why.
        let t = TenantId::new("t");
        let line = format!("{one}{one}");
        let e = parse_events(
            line.as_bytes(),
            BodyFormat::Ndjson,
            &t,
            0,
            &Limits::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("curl -d"), "{e}");
    }
}

fn parse_ndjson(body: &[u8], ctx: Ctx<'_>, batch: &mut Collector) -> Result<(), IngestError> {
    // Counting lines is far cheaper than the reallocations (and copies) of a growing Vec.
    let lines = memchr::memchr_iter(b'\n', body).count() + 1;
    batch.batch.events.reserve(lines.min(ctx.limits.max_events));
    let mut rest = body;
    while !rest.is_empty() {
        let (line, next) = match memchr::memchr(b'\n', rest) {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &[][..]),
        };
        rest = next;
        if line.iter().all(|&b| is_json_space(b)) {
            continue;
        }
        if batch.items == ctx.limits.max_events {
            return Err(IngestError::TooManyEvents {
                limit: ctx.limits.max_events,
            });
        }
        batch.push(parse_line(line, ctx));
    }
    Ok(())
}

/// One NDJSON line; every failure, syntax included, is this line's rejection.
fn parse_line(line: &[u8], ctx: Ctx<'_>) -> Result<Event, String> {
    let max = ctx.limits.max_line_bytes;
    if line.len() > max {
        return Err(format!("line is {} bytes; the limit is {max}", line.len()));
    }
    let text = std::str::from_utf8(line)
        .map_err(|e| format!("invalid UTF-8 at byte {} of the line", e.valid_up_to()))?;
    let mut de = serde_json::Deserializer::from_str(text);
    let syntax = |e: serde_json::Error| {
        format!(
            "invalid JSON at column {}: {}",
            e.column(),
            bare_message(&e)
        )
    };
    let item = item_seed(ctx).deserialize(&mut de).map_err(syntax)?;
    de.end().map_err(|e| {
        let concatenated = next_object_at(line, 1, e.column()).is_some();
        let message = syntax(e);
        if concatenated {
            format!("{message}; {CONCATENATED}")
        } else {
            message
        }
    })?;
    item
}

#[cfg(test)]
mod tests;
