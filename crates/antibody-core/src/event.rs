//! The event: one observation about one entity, after parsing and validation.

use crate::{TenantId, TimestampMs};
use serde::{Deserialize, Serialize};

/// An attribute value: attrs are strings, numbers or booleans (API.md).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AttrValue {
    Str(String),
    Num(f64),
    Bool(bool),
}

impl AttrValue {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            AttrValue::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Writes the value as text (numbers without a trailing `.0` when whole).
    pub fn write_text(&self, out: &mut String) {
        use std::fmt::Write;
        match self {
            AttrValue::Str(s) => out.push_str(s),
            AttrValue::Num(n) if n.fract() == 0.0 && n.abs() < 1e15 => {
                let _ = write!(out, "{}", *n as i64);
            }
            AttrValue::Num(n) => {
                let _ = write!(out, "{n}");
            }
            AttrValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        }
    }

    pub fn to_text(&self) -> std::borrow::Cow<'_, str> {
        match self {
            AttrValue::Str(s) => std::borrow::Cow::Borrowed(s),
            other => {
                let mut s = String::new();
                other.write_text(&mut s);
                std::borrow::Cow::Owned(s)
            }
        }
    }
}

/// A parsed, validated event. `metrics` and `attrs` keep the sender's order; lookups are
/// linear because events carry a handful of fields and a scan beats hashing at that size.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    #[serde(skip_serializing, default = "crate::tenant::default_tenant")]
    pub tenant: TenantId,
    pub ts: TimestampMs,
    pub entity: String,
    pub kind: String,
    #[serde(default)]
    pub metrics: Vec<(String, f64)>,
    #[serde(default)]
    pub attrs: Vec<(String, AttrValue)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

impl Event {
    pub fn metric(&self, name: &str) -> Option<f64> {
        self.metrics
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| *v)
    }

    pub fn attr(&self, name: &str) -> Option<&AttrValue> {
        self.attrs.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    pub fn attr_str(&self, name: &str) -> Option<&str> {
        self.attr(name).and_then(AttrValue::as_str)
    }

    /// Appends the compact binary form used by the durable log.
    pub fn encode(&self, out: &mut Vec<u8>) {
        codec::put_str(out, self.tenant.as_str());
        out.extend_from_slice(&self.ts.to_le_bytes());
        codec::put_str(out, &self.entity);
        codec::put_str(out, &self.kind);
        match &self.id {
            Some(id) => {
                out.push(1);
                codec::put_str(out, id);
            }
            None => out.push(0),
        }
        codec::put_len(out, self.metrics.len());
        for (k, v) in &self.metrics {
            codec::put_str(out, k);
            out.extend_from_slice(&v.to_le_bytes());
        }
        codec::put_len(out, self.attrs.len());
        for (k, v) in &self.attrs {
            codec::put_str(out, k);
            match v {
                AttrValue::Str(s) => {
                    out.push(0);
                    codec::put_str(out, s);
                }
                AttrValue::Num(n) => {
                    out.push(1);
                    out.extend_from_slice(&n.to_le_bytes());
                }
                AttrValue::Bool(b) => out.push(2 + u8::from(*b)),
            }
        }
    }

    /// Decodes what [`Event::encode`] wrote. Never panics on corrupt input.
    pub fn decode(buf: &[u8]) -> Result<Event, codec::DecodeError> {
        let mut r = codec::Reader::new(buf);
        let tenant = TenantId::new(r.str()?);
        let ts = r.i64()?;
        let entity = r.str()?.to_owned();
        let kind = r.str()?.to_owned();
        let id = match r.u8()? {
            0 => None,
            1 => Some(r.str()?.to_owned()),
            _ => return Err(codec::DecodeError),
        };
        let n = r.len()?;
        let mut metrics = Vec::with_capacity(n.min(64));
        for _ in 0..n {
            let k = r.str()?.to_owned();
            metrics.push((k, r.f64()?));
        }
        let n = r.len()?;
        let mut attrs = Vec::with_capacity(n.min(64));
        for _ in 0..n {
            let k = r.str()?.to_owned();
            let v = match r.u8()? {
                0 => AttrValue::Str(r.str()?.to_owned()),
                1 => AttrValue::Num(r.f64()?),
                2 => AttrValue::Bool(false),
                3 => AttrValue::Bool(true),
                _ => return Err(codec::DecodeError),
            };
            attrs.push((k, v));
        }
        if !r.is_empty() {
            return Err(codec::DecodeError);
        }
        Ok(Event {
            tenant,
            ts,
            entity,
            kind,
            metrics,
            attrs,
            id,
        })
    }
}

/// Our own length-prefixed codec: the event is the hottest record we write and read, the
/// format is six fields, and serde binary formats either lack untagged enums or pull in more
/// than we need.
pub mod codec {
    #[derive(Debug, thiserror::Error, PartialEq, Eq)]
    #[error("corrupt event record")]
    pub struct DecodeError;

    pub(crate) fn put_len(out: &mut Vec<u8>, n: usize) {
        out.extend_from_slice(&(n as u32).to_le_bytes());
    }

    pub(crate) fn put_str(out: &mut Vec<u8>, s: &str) {
        put_len(out, s.len());
        out.extend_from_slice(s.as_bytes());
    }

    pub(crate) struct Reader<'a> {
        buf: &'a [u8],
    }

    impl<'a> Reader<'a> {
        pub(crate) fn new(buf: &'a [u8]) -> Self {
            Self { buf }
        }
        fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
            if self.buf.len() < n {
                return Err(DecodeError);
            }
            let (a, b) = self.buf.split_at(n);
            self.buf = b;
            Ok(a)
        }
        pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
            Ok(self.take(1)?[0])
        }
        pub(crate) fn len(&mut self) -> Result<usize, DecodeError> {
            let b = self.take(4)?;
            Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        }
        pub(crate) fn i64(&mut self) -> Result<i64, DecodeError> {
            let b = self.take(8)?;
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            Ok(i64::from_le_bytes(a))
        }
        pub(crate) fn f64(&mut self) -> Result<f64, DecodeError> {
            Ok(f64::from_bits(self.i64()? as u64))
        }
        pub(crate) fn str(&mut self) -> Result<&'a str, DecodeError> {
            let n = self.len()?;
            std::str::from_utf8(self.take(n)?).map_err(|_| DecodeError)
        }
        pub(crate) fn is_empty(&self) -> bool {
            self.buf.is_empty()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Event {
        Event {
            tenant: TenantId::new("acme"),
            ts: 1_700_000_000_123,
            entity: "agent:research-7".into(),
            kind: "vitals".into(),
            metrics: vec![("tokens".into(), 1530.0), ("latency_ms".into(), 812.5)],
            attrs: vec![
                ("model".into(), AttrValue::Str("gpt-4.1".into())),
                ("status".into(), AttrValue::Num(200.0)),
                ("cached".into(), AttrValue::Bool(true)),
            ],
            id: Some("abc".into()),
        }
    }

    #[test]
    fn codec_round_trips() {
        let ev = sample();
        let mut buf = Vec::new();
        ev.encode(&mut buf);
        assert_eq!(Event::decode(&buf).unwrap(), ev);
    }

    #[test]
    fn attr_text_drops_integral_fraction() {
        assert_eq!(AttrValue::Num(200.0).to_text(), "200");
        assert_eq!(AttrValue::Num(0.5).to_text(), "0.5");
        assert_eq!(AttrValue::Bool(false).to_text(), "false");
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = Event::decode(&bytes);
        }

        #[test]
        fn truncated_records_are_rejected(cut in 0usize..80) {
            let mut buf = Vec::new();
            sample().encode(&mut buf);
            if cut < buf.len() {
                prop_assert!(Event::decode(&buf[..cut]).is_err());
            }
        }
    }
}
