//! What a body would cost once decoded, found before decoding it.
//!
//! Decoding allocates a struct for every message in the body, and an empty message costs a
//! couple of bytes on the wire: 16 MB of empty spans would decode to gigabytes. So the body
//! is walked first, without allocating, along the schema the decoders follow: every element
//! of a repeated message field counts its struct's size, every string or byte field its
//! length. Over the budget, the body is refused before anything is built. Real use stays
//! far below it: typical OTLP decodes to ~2.5× its size, the budget is 4× `max_body_bytes`.

use super::proto;
use super::{OtlpError, Signal};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::cell::Cell;
use std::fmt;
use std::mem::size_of;

/// Decoded bytes allowed per byte of `max_body_bytes`.
pub const FACTOR: usize = 4;

/// The messages the decoders build, as far as memory goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Msg {
    TraceRequest,
    ResourceSpans,
    Resource,
    ScopeSpans,
    Span,
    Status,
    KeyValue,
    AnyValue,
    ArrayValue,
    KvList,
    LogsRequest,
    ResourceLogs,
    ScopeLogs,
    LogRecord,
}

/// A child message field: its message, and the size it adds when it is a repeated field's
/// element (an optional field lives inside its parent's struct).
fn child_pb(msg: Msg, field: u64) -> Option<(Msg, usize)> {
    use Msg::*;
    Some(match (msg, field) {
        (TraceRequest, 1) => (ResourceSpans, size_of::<proto::ResourceSpans>()),
        (ResourceSpans, 1) | (ResourceLogs, 1) => (Resource, 0),
        (ResourceSpans, 2) => (ScopeSpans, size_of::<proto::ScopeSpans>()),
        (Resource, 1) | (Span, 9) | (KvList, 1) | (LogRecord, 6) => {
            (KeyValue, size_of::<proto::KeyValue>())
        }
        (ScopeSpans, 2) => (Span, size_of::<proto::Span>()),
        (Span, 15) => (Status, 0),
        (KeyValue, 2) | (LogRecord, 5) => (AnyValue, 0),
        (AnyValue, 5) => (ArrayValue, 0),
        (AnyValue, 6) => (KvList, 0),
        (ArrayValue, 1) => (AnyValue, size_of::<proto::AnyValue>()),
        (LogsRequest, 1) => (ResourceLogs, size_of::<proto::ResourceLogs>()),
        (ResourceLogs, 2) => (ScopeLogs, size_of::<proto::ScopeLogs>()),
        (ScopeLogs, 2) => (LogRecord, size_of::<proto::LogRecord>()),
        _ => return None,
    })
}

/// The same schema by OTLP/JSON key (lowerCamelCase or snake_case).
fn child_json(msg: Msg, key: &str) -> Option<(Msg, usize)> {
    use Msg::*;
    let field = match (msg, key) {
        (TraceRequest, "resourceSpans" | "resource_spans") => 1,
        (ResourceSpans | ResourceLogs, "resource") => 1,
        (ResourceSpans, "scopeSpans" | "scope_spans") => 2,
        (Resource | Span | LogRecord, "attributes") => {
            return Some((KeyValue, size_of::<proto::KeyValue>()))
        }
        (ScopeSpans, "spans") => 2,
        (Span, "status") => 15,
        (KeyValue, "value") => 2,
        (LogRecord, "body") => 5,
        (AnyValue, "arrayValue" | "array_value") => 5,
        (AnyValue, "kvlistValue" | "kvlist_value") => 6,
        (ArrayValue | KvList, "values") => 1,
        (LogsRequest, "resourceLogs" | "resource_logs") => 1,
        (ResourceLogs, "scopeLogs" | "scope_logs") => 2,
        (ScopeLogs, "logRecords" | "log_records") => 2,
        _ => return None,
    };
    child_pb(msg, field)
}

/// Refuses a body whose decoded form would exceed `FACTOR × max_body_bytes`.
pub fn check(
    body: &[u8],
    json: bool,
    signal: Signal,
    max_body_bytes: usize,
) -> Result<(), OtlpError> {
    let budget = max_body_bytes.saturating_mul(FACTOR);
    let root = match signal {
        Signal::Traces => Msg::TraceRequest,
        Signal::Logs => Msg::LogsRequest,
    };
    let used = Cell::new(0usize);
    let within = if json {
        json_walk(body, root, &used, budget)
    } else {
        pb_walk(body, root, 0, &used, budget)
    };
    match within {
        Walk::Within => Ok(()),
        // JSON that does not parse fails the same way in the decoder, with its message.
        Walk::Malformed if json => Ok(()),
        // Protobuf the walk cannot follow is refused here: what it did not count must not
        // reach the decoder.
        Walk::Malformed => Err(OtlpError::Protobuf {
            signal: signal.name(),
            reason: "malformed wire data, a group field or nesting deeper than 100".into(),
        }),
        Walk::Over => Err(OtlpError::TooLarge { budget }),
    }
}

enum Walk {
    Within,
    Over,
    Malformed,
}

fn charge(used: &Cell<usize>, n: usize, budget: usize) -> bool {
    used.set(used.get().saturating_add(n));
    used.get() <= budget
}

fn varint(buf: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = buf.split_first()?;
        *buf = rest;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Some(v);
        }
    }
    None
}

/// prost stops at 100 levels of nesting; so does the walk.
const MAX_DEPTH: u32 = 100;

fn pb_walk(mut buf: &[u8], msg: Msg, depth: u32, used: &Cell<usize>, budget: usize) -> Walk {
    if depth > MAX_DEPTH {
        return Walk::Malformed;
    }
    while !buf.is_empty() {
        let Some(tag) = varint(&mut buf) else {
            return Walk::Malformed;
        };
        let skip = match tag & 7 {
            0 => match varint(&mut buf) {
                Some(_) => 0,
                None => return Walk::Malformed,
            },
            1 => 8,
            5 => 4,
            2 => {
                let Some(len) = varint(&mut buf).and_then(|l| usize::try_from(l).ok()) else {
                    return Walk::Malformed;
                };
                let Some(inner) = buf.get(..len) else {
                    return Walk::Malformed;
                };
                let walked = match child_pb(msg, tag >> 3) {
                    Some((child, size)) => {
                        if !charge(used, size, budget) {
                            return Walk::Over;
                        }
                        pb_walk(inner, child, depth + 1, used, budget)
                    }
                    None if charge(used, len, budget) => Walk::Within,
                    None => Walk::Over,
                };
                if !matches!(walked, Walk::Within) {
                    return walked;
                }
                len
            }
            _ => return Walk::Malformed,
        };
        match buf.get(skip..) {
            Some(rest) => buf = rest,
            None => return Walk::Malformed,
        }
    }
    Walk::Within
}

fn json_walk(body: &[u8], root: Msg, used: &Cell<usize>, budget: usize) -> Walk {
    let mut de = serde_json::Deserializer::from_slice(body);
    let seed = Count {
        msg: Some(root),
        used,
        budget,
    };
    match seed.deserialize(&mut de) {
        Ok(()) => Walk::Within,
        Err(_) if used.get() > budget => Walk::Over,
        Err(_) => Walk::Malformed,
    }
}

/// Walks one JSON value as message `msg` (`None`: a value outside the schema, only its
/// strings counted), charging what decoding it would allocate.
#[derive(Clone, Copy)]
struct Count<'a> {
    msg: Option<Msg>,
    used: &'a Cell<usize>,
    budget: usize,
}

impl Count<'_> {
    fn charge<E: de::Error>(&self, n: usize) -> Result<(), E> {
        if charge(self.used, n, self.budget) {
            Ok(())
        } else {
            Err(E::custom("over budget"))
        }
    }
}

impl<'de> DeserializeSeed<'de> for Count<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

/// The elements of a repeated message field, each charged its struct's size.
struct Elements<'a> {
    count: Count<'a>,
    size: usize,
}

impl<'de> DeserializeSeed<'de> for Elements<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Elements<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of messages")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        loop {
            self.count.charge::<A::Error>(self.size)?;
            if seq.next_element_seed(self.count)?.is_none() {
                return Ok(());
            }
        }
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        // Not an array: the decoder refuses it; walk it only to keep the parser in step.
        self.count.visit_map(map)
    }
}

impl<'de> Visitor<'de> for Count<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.charge(v.len())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let outside = Count { msg: None, ..self };
        while seq.next_element_seed(outside)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match self.msg.and_then(|m| child_json(m, &key)) {
                Some((child, 0)) => map.next_value_seed(Count {
                    msg: Some(child),
                    ..self
                })?,
                Some((child, size)) => map.next_value_seed(Elements {
                    count: Count {
                        msg: Some(child),
                        ..self
                    },
                    size,
                })?,
                None if self.msg.is_some() => map.next_value_seed(Count { msg: None, ..self })?,
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}
