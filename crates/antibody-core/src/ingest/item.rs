//! One body item → one [`Event`]. The visitors build the event straight from the JSON tokens
//! (no `serde_json::Value`) and enforce every limit while reading. Two kinds of failure are
//! kept apart: a syntax error is the deserializer's error (fatal for a JSON array), a
//! validation error is an `Err(String)` inside `Ok` that rejects only this item. After a
//! validation error the rest of the item is skipped rather than built, so the deserializer
//! stays in step with the input.
//!
//! Depth: the event object is level 1, `metrics`/`attrs` level 2, a container inside them
//! level 3, and so on. Containers are only ever walked to measure depth; past `max_depth` they
//! are drained with [`IgnoredAny`], which serde_json skips iteratively, so no input can
//! overflow the stack.

use super::Limits;
use crate::clock::parse_rfc3339;
use crate::{AttrValue, Event, TenantId, TimestampMs};
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::fmt;

/// Longest accepted `kind`, in bytes.
pub const MAX_KIND_BYTES: usize = 64;
/// Longest accepted metric or attr name, in bytes.
pub const MAX_NAME_BYTES: usize = 128;
/// Longest accepted `id`, in bytes.
pub const MAX_ID_BYTES: usize = 256;
/// 9999-12-31T23:59:59.999Z: timestamps must print as four-digit-year RFC 3339.
const MAX_TS_MS: TimestampMs = 253_402_300_799_999;

/// A syntax-level result (`E`) around a validation result (a sentence for the sender).
type Checked<T, E> = Result<Result<T, String>, E>;

/// What every item needs to become an event.
#[derive(Clone, Copy)]
pub(super) struct Ctx<'a> {
    pub tenant: &'a TenantId,
    pub now_ms: TimestampMs,
    pub limits: &'a Limits,
}

/// Reads one item of a body: `Ok(Ok(event))`, `Ok(Err(why rejected))` or a syntax error.
pub(super) fn item_seed<'de>(
    ctx: Ctx<'_>,
) -> impl DeserializeSeed<'de, Value = Result<Event, String>> + '_ {
    ObjectSeed {
        reader: EventReader(ctx),
        depth: 1,
        max_depth: ctx.limits.max_depth,
    }
}

/// A JSON value where a scalar is expected; containers are skipped and only their shape kept.
enum Scalar<'de> {
    Str(Cow<'de, str>),
    Int(i64),
    Float(f64),
    Bool(bool),
    Null,
    Array,
    Object,
    TooDeep,
}

impl Scalar<'_> {
    fn shape(&self) -> &'static str {
        match self {
            Scalar::Str(_) => "a string",
            Scalar::Int(_) => "an integer",
            Scalar::Float(f) if f.is_finite() => "a number",
            Scalar::Float(_) => "a number out of range",
            Scalar::Bool(_) => "a boolean",
            Scalar::Null => "null",
            Scalar::Array => "an array",
            Scalar::Object => "an object",
            Scalar::TooDeep => "a value nested too deep",
        }
    }
}

fn too_deep(what: &str, max_depth: usize) -> String {
    format!("{what}: nesting deeper than {max_depth} levels")
}

/// Reads any value at `depth`, walking containers only to measure their depth.
#[derive(Clone, Copy)]
struct ScalarSeed {
    depth: usize,
    max_depth: usize,
}

impl ScalarSeed {
    fn child(self) -> ScalarSeed {
        ScalarSeed {
            depth: self.depth + 1,
            max_depth: self.max_depth,
        }
    }
}

impl<'de> DeserializeSeed<'de> for ScalarSeed {
    type Value = Scalar<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Scalar<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ScalarSeed {
    type Value = Scalar<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Scalar<'de>, E> {
        Ok(i64::try_from(v).map_or(Scalar::Float(v as f64), Scalar::Int))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Float(v))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Str(Cow::Owned(v)))
    }
    fn visit_unit<E>(self) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Scalar<'de>, A::Error> {
        let within = skip_seq(seq, self)?;
        Ok(if within {
            Scalar::Array
        } else {
            Scalar::TooDeep
        })
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Scalar<'de>, A::Error> {
        let within = skip_map(map, self)?;
        Ok(if within {
            Scalar::Object
        } else {
            Scalar::TooDeep
        })
    }
}

/// Skips an array at `at.depth`; false when it nests deeper than allowed.
fn skip_seq<'de, A: SeqAccess<'de>>(mut seq: A, at: ScalarSeed) -> Result<bool, A::Error> {
    if at.depth <= at.max_depth {
        loop {
            match seq.next_element_seed(at.child())? {
                None => return Ok(true),
                Some(Scalar::TooDeep) => break,
                Some(_) => {}
            }
        }
    }
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(false)
}

/// Skips an object at `at.depth`; false when it nests deeper than allowed.
fn skip_map<'de, A: MapAccess<'de>>(mut map: A, at: ScalarSeed) -> Result<bool, A::Error> {
    if at.depth <= at.max_depth {
        loop {
            if map.next_key::<IgnoredAny>()?.is_none() {
                return Ok(true);
            }
            if let Scalar::TooDeep = map.next_value_seed(at.child())? {
                break;
            }
        }
    }
    drain_map(map).map(|()| false)
}

fn drain_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

/// Fills the entries of an object that must be an object: the event, `metrics` or `attrs`.
trait ObjectReader<'de>: Sized {
    type Output;
    /// Names the value in messages ("each event", "`metrics`").
    fn what(&self) -> &'static str;
    /// Reads the entries; `child` reads a value one level below the object.
    fn read<A: MapAccess<'de>>(self, map: A, child: ScalarSeed) -> Checked<Self::Output, A::Error>;
    /// What `null` stands for, if it is allowed.
    fn null(self) -> Option<Self::Output> {
        None
    }
}

/// Reads a value that must be a JSON object (or `null`, when the reader allows it).
struct ObjectSeed<R> {
    reader: R,
    depth: usize,
    max_depth: usize,
}

impl<R> ObjectSeed<R> {
    fn at(&self) -> ScalarSeed {
        ScalarSeed {
            depth: self.depth,
            max_depth: self.max_depth,
        }
    }
}

impl<'de, R: ObjectReader<'de>> ObjectSeed<R> {
    fn not_object(&self, shape: &str) -> Result<R::Output, String> {
        Err(format!(
            "{} must be a JSON object, found {shape}",
            self.reader.what()
        ))
    }
}

impl<'de, R: ObjectReader<'de>> DeserializeSeed<'de> for ObjectSeed<R> {
    type Value = Result<R::Output, String>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, R: ObjectReader<'de>> Visitor<'de> for ObjectSeed<R> {
    type Value = Result<R::Output, String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(self.not_object("a boolean"))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(self.not_object("a number"))
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(self.not_object("a number"))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(self.not_object("a number"))
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(self.not_object("a string"))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        let what = self.reader.what();
        Ok(self
            .reader
            .null()
            .ok_or_else(|| format!("{what} must be a JSON object, found null")))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        Ok(if skip_seq(seq, self.at())? {
            self.not_object("an array")
        } else {
            Err(too_deep(self.reader.what(), self.max_depth))
        })
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        if self.depth > self.max_depth {
            drain_map(map)?;
            return Ok(Err(too_deep(self.reader.what(), self.max_depth)));
        }
        let child = self.at().child();
        self.reader.read(map, child)
    }
}

/// The event's own fields.
/// The JSON Schema of one event as this parser reads it: the fields of [`Known`]. An item
/// that breaks it is rejected alone (listed in the 202's `rejected`), not the request.
pub struct EventItem;

impl schemars::JsonSchema for EventItem {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "EventIn".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let kind_pattern = "^[A-Za-z0-9_.:-]+$";
        let names = serde_json::json!({"minLength": 1, "maxLength": MAX_NAME_BYTES});
        schemars::json_schema!({
            "type": "object",
            "required": [Known::Entity.name(), Known::Kind.name()],
            "additionalProperties": false,
            "properties": {
                (Known::Ts.name()): {"description": "RFC 3339, or epoch milliseconds; default: arrival",
                    "oneOf": [{"type": "string", "format": "date-time"}, {"type": "integer", "minimum": 0}, {"type": "null"}]},
                (Known::Entity.name()): {"type": "string", "minLength": 1,
                    "maxLength": Limits::default().max_entity_bytes, "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]+$",
                    "description": "no control characters; at most `[limits] max_entity_bytes` (512 by default)"},
                (Known::Kind.name()): {"type": "string", "minLength": 1, "maxLength": MAX_KIND_BYTES, "pattern": kind_pattern},
                (Known::Metrics.name()): {"type": "object", "propertyNames": names,
                    "additionalProperties": {"type": "number"}},
                (Known::Attrs.name()): {"type": "object", "propertyNames": names,
                    "additionalProperties": {"type": ["string", "number", "boolean"]}},
                (Known::Id.name()): {"description": "idempotency id: a repeated one is stored once",
                    "type": ["string", "null"], "minLength": 1, "maxLength": MAX_ID_BYTES},
            }
        })
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Known {
    Ts,
    Entity,
    Kind,
    Metrics,
    Attrs,
    Id,
}

impl Known {
    fn bit(self) -> u8 {
        1 << self as u8
    }
    fn name(self) -> &'static str {
        match self {
            Known::Ts => "ts",
            Known::Entity => "entity",
            Known::Kind => "kind",
            Known::Metrics => "metrics",
            Known::Attrs => "attrs",
            Known::Id => "id",
        }
    }
}

enum Field {
    Known(Known),
    /// An unknown key, already shortened for messages.
    Unknown(String),
}

/// Reads a top-level key without allocating unless it is unknown.
struct FieldSeed;

impl<'de> DeserializeSeed<'de> for FieldSeed {
    type Value = Field;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Field, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for FieldSeed {
    type Value = Field;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }
    fn visit_str<E>(self, v: &str) -> Result<Field, E> {
        Ok(match v {
            "ts" => Field::Known(Known::Ts),
            "entity" => Field::Known(Known::Entity),
            "kind" => Field::Known(Known::Kind),
            "metrics" => Field::Known(Known::Metrics),
            "attrs" => Field::Known(Known::Attrs),
            "id" => Field::Known(Known::Id),
            other => Field::Unknown(shown(other)),
        })
    }
}

/// Shortens user text quoted back in messages.
fn shown(s: &str) -> String {
    const MAX: usize = 64;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Reads the event object itself.
struct EventReader<'a>(Ctx<'a>);

impl<'de> ObjectReader<'de> for EventReader<'_> {
    type Output = Event;

    fn what(&self) -> &'static str {
        "each event"
    }

    fn read<A: MapAccess<'de>>(self, mut map: A, child: ScalarSeed) -> Checked<Event, A::Error> {
        let mut draft = Draft::default();
        while let Some(field) = map.next_key_seed(FieldSeed)? {
            if let Err(why) = draft.read_field(field, &mut map, child, self.0.limits)? {
                drain_map(map)?;
                return Ok(Err(why));
            }
        }
        Ok(draft.finish(self.0))
    }
}

/// The fields read so far.
#[derive(Default)]
struct Draft {
    seen: u8,
    ts: Option<TimestampMs>,
    entity: Option<String>,
    kind: Option<String>,
    metrics: Vec<(String, f64)>,
    attrs: Vec<(String, AttrValue)>,
    id: Option<String>,
}

impl Draft {
    /// Reads the value of `field`; always consumes it, valid or not.
    fn read_field<'de, A: MapAccess<'de>>(
        &mut self,
        field: Field,
        map: &mut A,
        child: ScalarSeed,
        limits: &Limits,
    ) -> Checked<(), A::Error> {
        let known = match field {
            Field::Known(known) => known,
            Field::Unknown(name) => {
                let value = map.next_value_seed(child)?;
                return Ok(Err(unknown_field(&name, &value, limits)));
            }
        };
        if self.seen & known.bit() != 0 {
            map.next_value::<IgnoredAny>()?;
            return Ok(Err(format!("duplicate field `{}`", known.name())));
        }
        self.seen |= known.bit();
        Ok(match known {
            Known::Ts => ts(map.next_value_seed(child)?, limits).map(|t| self.ts = t),
            Known::Entity => {
                entity(map.next_value_seed(child)?, limits).map(|e| self.entity = Some(e))
            }
            Known::Kind => kind(map.next_value_seed(child)?, limits).map(|k| self.kind = Some(k)),
            Known::Id => id(map.next_value_seed(child)?, limits).map(|i| self.id = i),
            Known::Metrics => {
                let seed = self.entries_seed("`metrics`", "metric", metric_value, child, limits);
                map.next_value_seed(seed)?.map(|m| self.metrics = m)
            }
            Known::Attrs => {
                let seed = self.entries_seed("`attrs`", "attr", attr_value, child, limits);
                map.next_value_seed(seed)?.map(|a| self.attrs = a)
            }
        })
    }

    fn entries_seed<'l, T>(
        &self,
        what: &'static str,
        entry: &'static str,
        check: CheckFn<T>,
        child: ScalarSeed,
        limits: &'l Limits,
    ) -> ObjectSeed<EntriesReader<'l, T>> {
        ObjectSeed {
            reader: EntriesReader {
                what,
                entry,
                room: limits
                    .max_fields
                    .saturating_sub(self.metrics.len() + self.attrs.len()),
                check,
                limits,
            },
            depth: child.depth,
            max_depth: child.max_depth,
        }
    }

    fn finish(self, ctx: Ctx<'_>) -> Result<Event, String> {
        let entity = self.entity.ok_or("missing required field `entity`")?;
        let kind = self.kind.ok_or("missing required field `kind`")?;
        if let Some(ts) = self.ts {
            if ts.saturating_sub(ctx.now_ms) > ctx.limits.max_future_ms {
                return Err(format!(
                    "`ts` is more than {} h in the future; check the sender's clock",
                    ctx.limits.max_future_ms / 3_600_000
                ));
            }
        }
        Ok(Event {
            tenant: ctx.tenant.clone(),
            ts: self.ts.unwrap_or(ctx.now_ms),
            entity,
            kind,
            metrics: self.metrics,
            attrs: self.attrs,
            id: self.id,
        })
    }
}

fn unknown_field(name: &str, value: &Scalar<'_>, limits: &Limits) -> String {
    if let Scalar::TooDeep = value {
        return too_deep(&format!("field `{name}`"), limits.max_depth);
    }
    format!(
        "unknown field `{name}`; allowed fields are `entity`, `kind`, `ts`, `metrics`, `attrs` and `id`"
    )
}

fn string<'de>(field: &str, value: Scalar<'de>, limits: &Limits) -> Result<Cow<'de, str>, String> {
    match value {
        Scalar::Str(s) => Ok(s),
        Scalar::TooDeep => Err(too_deep(&format!("`{field}`"), limits.max_depth)),
        other => Err(format!(
            "`{field}` must be a string, found {}",
            other.shape()
        )),
    }
}

fn bounded<'de>(
    field: &str,
    value: Scalar<'de>,
    max: usize,
    limits: &Limits,
) -> Result<Cow<'de, str>, String> {
    let s = string(field, value, limits)?;
    if s.is_empty() {
        return Err(format!("`{field}` must not be empty"));
    }
    if s.len() > max {
        return Err(format!(
            "`{field}` is {} bytes; the limit is {max}",
            s.len()
        ));
    }
    Ok(s)
}

fn entity(value: Scalar<'_>, limits: &Limits) -> Result<String, String> {
    let s = bounded("entity", value, limits.max_entity_bytes, limits)?;
    if s.chars().any(char::is_control) {
        return Err("`entity` must not contain control characters".into());
    }
    Ok(s.into_owned())
}

fn kind(value: Scalar<'_>, limits: &Limits) -> Result<String, String> {
    let s = bounded("kind", value, MAX_KIND_BYTES, limits)?;
    let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-');
    if !s.bytes().all(allowed) {
        return Err(format!(
            "`kind` `{}` may only contain letters, digits, `_`, `.`, `:` and `-`",
            shown(&s)
        ));
    }
    Ok(s.into_owned())
}

fn id(value: Scalar<'_>, limits: &Limits) -> Result<Option<String>, String> {
    if let Scalar::Null = value {
        return Ok(None);
    }
    bounded("id", value, MAX_ID_BYTES, limits).map(|s| Some(s.into_owned()))
}

fn ts(value: Scalar<'_>, limits: &Limits) -> Result<Option<TimestampMs>, String> {
    let ms = match value {
        Scalar::Null => return Ok(None),
        Scalar::Int(ms) => ms,
        Scalar::Str(s) => parse_rfc3339(&s).ok_or_else(|| {
            format!(
                "`ts` `{}` is not an RFC 3339 timestamp such as 2026-11-21T10:00:00Z",
                shown(&s)
            )
        })?,
        Scalar::TooDeep => return Err(too_deep("`ts`", limits.max_depth)),
        Scalar::Float(_) => return Err("`ts` in epoch milliseconds must be an integer".into()),
        other => {
            return Err(format!(
                "`ts` must be an RFC 3339 string or epoch milliseconds, found {}",
                other.shape()
            ))
        }
    };
    if ms < 0 {
        return Err("`ts` is before 1970-01-01".into());
    }
    if ms > MAX_TS_MS {
        return Err("`ts` is after the year 9999".into());
    }
    Ok(Some(ms))
}

/// Validates one `metrics` or `attrs` value, given the entry's name.
type CheckFn<T> = fn(&str, Scalar<'_>, &Limits) -> Result<T, String>;

fn metric_value(name: &str, value: Scalar<'_>, limits: &Limits) -> Result<f64, String> {
    match value {
        Scalar::Int(i) => Ok(i as f64),
        Scalar::Float(f) if f.is_finite() => Ok(f),
        Scalar::TooDeep => Err(too_deep(&format!("metric `{name}`"), limits.max_depth)),
        other => Err(format!(
            "metric `{name}` must be a finite number, found {}",
            other.shape()
        )),
    }
}

fn attr_value(name: &str, value: Scalar<'_>, limits: &Limits) -> Result<AttrValue, String> {
    match value {
        Scalar::Str(s) if s.len() > limits.max_string_bytes => Err(format!(
            "attr `{name}` is {} bytes; the limit is {}",
            s.len(),
            limits.max_string_bytes
        )),
        Scalar::Str(s) => Ok(AttrValue::Str(s.into_owned())),
        Scalar::Int(i) => Ok(AttrValue::Num(i as f64)),
        Scalar::Float(f) if f.is_finite() => Ok(AttrValue::Num(f)),
        Scalar::Bool(b) => Ok(AttrValue::Bool(b)),
        Scalar::TooDeep => Err(too_deep(&format!("attr `{name}`"), limits.max_depth)),
        other => Err(format!(
            "attr `{name}` must be a string, number or boolean, found {}",
            other.shape()
        )),
    }
}

/// Reads `metrics` or `attrs`: names checked, values checked by `check`, the event's total
/// entry count bounded while reading so a huge object cannot be built first.
struct EntriesReader<'l, T> {
    what: &'static str,
    entry: &'static str,
    room: usize,
    check: CheckFn<T>,
    limits: &'l Limits,
}

impl<T> EntriesReader<'_, T> {
    fn entry(
        &self,
        name: Result<String, String>,
        value: Scalar<'_>,
    ) -> Result<(String, T), String> {
        let name = name?;
        let value = (self.check)(&name, value, self.limits)?;
        Ok((name, value))
    }
}

impl<'de, T> ObjectReader<'de> for EntriesReader<'_, T> {
    type Output = Vec<(String, T)>;

    fn what(&self) -> &'static str {
        self.what
    }

    fn read<A: MapAccess<'de>>(
        self,
        mut map: A,
        child: ScalarSeed,
    ) -> Checked<Self::Output, A::Error> {
        let mut entries = Vec::with_capacity(4);
        let names = NameSeed { entry: self.entry };
        while let Some(name) = map.next_key_seed(names)? {
            let value = map.next_value_seed(child)?;
            let failure = match self.entry(name, value) {
                Ok(pair) if entries.len() < self.room => {
                    entries.push(pair);
                    continue;
                }
                Ok(_) => format!(
                    "more than {} metrics and attrs in one event",
                    self.limits.max_fields
                ),
                Err(why) => why,
            };
            drain_map(map)?;
            return Ok(Err(failure));
        }
        Ok(match find_duplicate(&entries) {
            Some(name) => Err(format!("duplicate {} `{name}`", self.entry)),
            None => Ok(entries),
        })
    }

    fn null(self) -> Option<Self::Output> {
        Some(Vec::new())
    }
}

/// Reads a metric or attr name: non-empty, at most [`MAX_NAME_BYTES`].
#[derive(Clone, Copy)]
struct NameSeed {
    entry: &'static str,
}

impl NameSeed {
    fn check(self, name: &str) -> Result<(), String> {
        if name.is_empty() {
            return Err(format!("{} names must not be empty", self.entry));
        }
        if name.len() > MAX_NAME_BYTES {
            return Err(format!(
                "{} name `{}` is longer than {MAX_NAME_BYTES} bytes",
                self.entry,
                shown(name)
            ));
        }
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for NameSeed {
    type Value = Result<String, String>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for NameSeed {
    type Value = Result<String, String>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a name")
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(self.check(v).map(|()| v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(self.check(&v).map(|()| v))
    }
}

/// The first repeated name, if any. Pairwise for the usual handful, sorted beyond that so a
/// 256-entry object stays cheap.
fn find_duplicate<T>(entries: &[(String, T)]) -> Option<&str> {
    if entries.len() <= 16 {
        return entries
            .iter()
            .enumerate()
            .find(|(i, (name, _))| entries[..*i].iter().any(|(prev, _)| prev == name))
            .map(|(_, (name, _))| name.as_str());
    }
    let mut names: Vec<&str> = entries.iter().map(|(name, _)| name.as_str()).collect();
    names.sort_unstable();
    names.windows(2).find(|w| w[0] == w[1]).map(|w| w[0])
}
