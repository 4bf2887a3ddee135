//! The OTLP messages antibody reads, written by hand as `prost` structs: only the fields the
//! mapping uses (protobuf skips the others), so no `.proto` files, no `protoc` and no code
//! generation at build time. Field numbers are those of opentelemetry-proto v1
//! (`collector/{trace,logs}/v1`, `trace/v1`, `logs/v1`, `common/v1`, `resource/v1`).
//!
//! The same structs read OTLP/JSON (serde): lowerCamelCase keys (snake_case accepted too),
//! unknown keys ignored, 64-bit integers as strings or numbers, enums as integers or names,
//! and trace / span ids as hex (the OTLP/JSON rule) or base64 (what a generic proto3 JSON
//! encoder writes for `bytes`).

use base64::Engine as _;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::fmt;

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
pub struct ExportTraceServiceRequest {
    #[prost(message, repeated, tag = "1")]
    #[serde(default, rename = "resourceSpans", alias = "resource_spans")]
    pub resource_spans: Vec<ResourceSpans>,
}

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
pub struct ResourceSpans {
    #[prost(message, optional, tag = "1")]
    #[serde(default)]
    pub resource: Option<Resource>,
    #[prost(message, repeated, tag = "2")]
    #[serde(default, rename = "scopeSpans", alias = "scope_spans")]
    pub scope_spans: Vec<ScopeSpans>,
}

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
pub struct ScopeSpans {
    #[prost(message, repeated, tag = "2")]
    #[serde(default)]
    pub spans: Vec<Span>,
}

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
pub struct Resource {
    #[prost(message, repeated, tag = "1")]
    #[serde(default)]
    pub attributes: Vec<KeyValue>,
}

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Span {
    #[prost(bytes = "vec", tag = "1")]
    #[serde(default, alias = "trace_id", deserialize_with = "id")]
    pub trace_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    #[serde(default, alias = "span_id", deserialize_with = "id")]
    pub span_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "4")]
    #[serde(default, alias = "parent_span_id", deserialize_with = "id")]
    pub parent_span_id: Vec<u8>,
    #[prost(string, tag = "5")]
    #[serde(default)]
    pub name: String,
    #[prost(fixed64, tag = "7")]
    #[serde(default, alias = "start_time_unix_nano", deserialize_with = "u64_any")]
    pub start_time_unix_nano: u64,
    #[prost(fixed64, tag = "8")]
    #[serde(default, alias = "end_time_unix_nano", deserialize_with = "u64_any")]
    pub end_time_unix_nano: u64,
    #[prost(message, repeated, tag = "9")]
    #[serde(default)]
    pub attributes: Vec<KeyValue>,
    #[prost(message, optional, tag = "15")]
    #[serde(default)]
    pub status: Option<Status>,
}

/// `Status.code`: 0 unset, 1 ok, 2 error.
pub const STATUS_ERROR: i32 = 2;

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
pub struct Status {
    #[prost(string, tag = "2")]
    #[serde(default)]
    pub message: String,
    #[prost(int32, tag = "3")]
    #[serde(default, deserialize_with = "status_code")]
    pub code: i32,
}

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
pub struct ExportLogsServiceRequest {
    #[prost(message, repeated, tag = "1")]
    #[serde(default, rename = "resourceLogs", alias = "resource_logs")]
    pub resource_logs: Vec<ResourceLogs>,
}

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
pub struct ResourceLogs {
    #[prost(message, optional, tag = "1")]
    #[serde(default)]
    pub resource: Option<Resource>,
    #[prost(message, repeated, tag = "2")]
    #[serde(default, rename = "scopeLogs", alias = "scope_logs")]
    pub scope_logs: Vec<ScopeLogs>,
}

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
pub struct ScopeLogs {
    #[prost(message, repeated, tag = "2")]
    #[serde(default, rename = "logRecords", alias = "log_records")]
    pub log_records: Vec<LogRecord>,
}

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogRecord {
    #[prost(fixed64, tag = "1")]
    #[serde(default, alias = "time_unix_nano", deserialize_with = "u64_any")]
    pub time_unix_nano: u64,
    #[prost(fixed64, tag = "11")]
    #[serde(
        default,
        alias = "observed_time_unix_nano",
        deserialize_with = "u64_any"
    )]
    pub observed_time_unix_nano: u64,
    #[prost(message, optional, tag = "5")]
    #[serde(default)]
    pub body: Option<AnyValue>,
    #[prost(message, repeated, tag = "6")]
    #[serde(default)]
    pub attributes: Vec<KeyValue>,
    #[prost(bytes = "vec", tag = "9")]
    #[serde(default, alias = "trace_id", deserialize_with = "id")]
    pub trace_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "10")]
    #[serde(default, alias = "span_id", deserialize_with = "id")]
    pub span_id: Vec<u8>,
    #[prost(string, tag = "12")]
    #[serde(default, alias = "event_name")]
    pub event_name: String,
}

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
pub struct KeyValue {
    #[prost(string, tag = "1")]
    #[serde(default)]
    pub key: String,
    #[prost(message, optional, tag = "2")]
    #[serde(default)]
    pub value: Option<AnyValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct AnyValue {
    #[prost(oneof = "Value", tags = "1, 2, 3, 4, 5, 6, 7")]
    pub value: Option<Value>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Value {
    #[prost(string, tag = "1")]
    String(String),
    #[prost(bool, tag = "2")]
    Bool(bool),
    #[prost(int64, tag = "3")]
    Int(i64),
    #[prost(double, tag = "4")]
    Double(f64),
    #[prost(message, tag = "5")]
    Array(ArrayValue),
    #[prost(message, tag = "6")]
    KvList(KeyValueList),
    #[prost(bytes = "vec", tag = "7")]
    Bytes(Vec<u8>),
}

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
pub struct ArrayValue {
    #[prost(message, repeated, tag = "1")]
    #[serde(default)]
    pub values: Vec<AnyValue>,
}

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
pub struct KeyValueList {
    #[prost(message, repeated, tag = "1")]
    #[serde(default)]
    pub values: Vec<KeyValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ExportTraceServiceResponse {
    #[prost(message, optional, tag = "1")]
    pub partial_success: Option<PartialSuccess>,
}

/// `ExportTracePartialSuccess` and `ExportLogsPartialSuccess` have the same fields: the
/// count of spans (log records) refused and why.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PartialSuccess {
    #[prost(int64, tag = "1")]
    pub rejected: i64,
    #[prost(string, tag = "2")]
    pub error_message: String,
}

/// An `AnyValue` in OTLP/JSON: `{"stringValue": "x"}`, `{"intValue": "5"}`, … or `{}`.
impl<'de> Deserialize<'de> for AnyValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = AnyValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an OTLP AnyValue object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AnyValue, A::Error> {
                let mut value = None;
                while let Some(key) = map.next_key::<String>()? {
                    let v = match key.as_str() {
                        "stringValue" | "string_value" => Value::String(map.next_value()?),
                        "boolValue" | "bool_value" => Value::Bool(map.next_value()?),
                        "intValue" | "int_value" => Value::Int(map.next_value::<I64Any>()?.0),
                        "doubleValue" | "double_value" => {
                            Value::Double(map.next_value::<F64Any>()?.0)
                        }
                        "arrayValue" | "array_value" => Value::Array(map.next_value()?),
                        "kvlistValue" | "kvlist_value" => Value::KvList(map.next_value()?),
                        "bytesValue" | "bytes_value" => {
                            Value::Bytes(base64_bytes(&map.next_value::<String>()?)?)
                        }
                        _ => {
                            map.next_value::<de::IgnoredAny>()?;
                            continue;
                        }
                    };
                    value = Some(v);
                }
                Ok(AnyValue { value })
            }
        }
        d.deserialize_map(V)
    }
}

fn base64_bytes<E: de::Error>(s: &str) -> Result<Vec<u8>, E> {
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(s))
        .map_err(|_| E::custom(format!("`{}` is not base64", shorten(s))))
}

/// A trace or span id: hex (OTLP/JSON), else base64 (proto3 JSON `bytes`). Hex is tried first;
/// the two cannot be confused at the valid lengths (16 and 32 hex digits against 12 and 24
/// base64 characters). Text that is neither is kept as its bytes: the span's id check then
/// refuses that span alone, not the whole export.
fn id<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    let s = String::deserialize(d)?;
    if s.len() % 2 == 0 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        if let Ok(bytes) = hex::decode(&s) {
            return Ok(bytes);
        }
    }
    Ok(base64_bytes::<D::Error>(&s).unwrap_or_else(|_| s.into_bytes()))
}

fn shorten(s: &str) -> &str {
    let mut end = s.len().min(40);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A 64-bit integer written as a JSON number or a decimal string (proto3 JSON allows both).
struct I64Any(i64);

impl<'de> Deserialize<'de> for I64Any {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = i64;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer or a decimal string")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
                Ok(v)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
                i64::try_from(v).map_err(|_| E::custom("integer out of range"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<i64, E> {
                v.trim()
                    .parse()
                    .map_err(|_| E::custom(format!("`{}` is not an integer", shorten(v))))
            }
        }
        d.deserialize_any(V).map(I64Any)
    }
}

/// A double as a JSON number or a string (`"NaN"`, `"Infinity"`, `"1.5"`).
struct F64Any(f64);

impl<'de> Deserialize<'de> for F64Any {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = f64;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
                Ok(v)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
                Ok(v as f64)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
                Ok(v as f64)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<f64, E> {
                v.trim()
                    .parse()
                    .map_err(|_| E::custom(format!("`{}` is not a number", shorten(v))))
            }
        }
        d.deserialize_any(V).map(F64Any)
    }
}

fn u64_any<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = u64;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an unsigned integer or a decimal string")
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
            Ok(v)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
            u64::try_from(v).map_err(|_| E::custom("negative timestamp"))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
            v.trim()
                .parse()
                .map_err(|_| E::custom(format!("`{}` is not an unsigned integer", shorten(v))))
        }
    }
    d.deserialize_any(V)
}

/// `Status.code` as an integer or its enum name (`STATUS_CODE_ERROR`).
fn status_code<'de, D: Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = i32;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a status code")
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<i32, E> {
            i32::try_from(v).map_err(|_| E::custom("status code out of range"))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<i32, E> {
            i32::try_from(v).map_err(|_| E::custom("status code out of range"))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<i32, E> {
            Ok(match v {
                "STATUS_CODE_UNSET" => 0,
                "STATUS_CODE_OK" => 1,
                "STATUS_CODE_ERROR" => STATUS_ERROR,
                other => {
                    return Err(E::custom(format!(
                        "unknown status code `{}`",
                        shorten(other)
                    )))
                }
            })
        }
    }
    d.deserialize_any(V)
}
