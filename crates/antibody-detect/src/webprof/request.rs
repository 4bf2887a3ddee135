//! What a web profile reads from an `http` event: the host, the method, the path and its
//! template, the parameters (query string, form body, JSON body flattened to dotted paths)
//! decoded to bytes, the media type and the user-agent family. Bounded: a request yields
//! at most [`MAX_PARAMS`] parameters, names of at most [`MAX_NAME`] bytes, and bodies are
//! read up to [`MAX_BODY`] bytes.

use crate::webprof::param::Shape;
use antibody_core::Event;
use serde::{Deserialize, Serialize};

/// Parameters read from one request; further ones are ignored (and counted as one item).
pub const MAX_PARAMS: usize = 128;
/// Longest parameter name kept (bytes); longer names are cut.
pub const MAX_NAME: usize = 96;
/// Body bytes read for parameters.
pub const MAX_BODY: usize = 64 << 10;
/// Path segments that form a template; deeper paths keep their first ones and `…`.
const MAX_SEGMENTS: usize = 24;
/// Template bytes kept.
const MAX_TEMPLATE: usize = 256;
/// JSON nesting followed when flattening a body.
const MAX_JSON_DEPTH: usize = 8;

/// HTTP methods; every other token is one `Other`, so a sender cannot grow state by
/// inventing method names.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    #[default]
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
    Options,
    Trace,
    Connect,
    Other,
}

impl Method {
    pub fn parse(s: &str) -> Self {
        let s = s.trim();
        if s.is_empty() {
            return Self::Get;
        }
        const ALL: [Method; 9] = [
            Method::Get,
            Method::Head,
            Method::Post,
            Method::Put,
            Method::Patch,
            Method::Delete,
            Method::Options,
            Method::Trace,
            Method::Connect,
        ];
        ALL.into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(s))
            .unwrap_or(Self::Other)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Head => "HEAD",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Patch => "PATCH",
            Self::Delete => "DELETE",
            Self::Options => "OPTIONS",
            Self::Trace => "TRACE",
            Self::Connect => "CONNECT",
            Self::Other => "OTHER",
        }
    }
}

/// One request as the profiles see it. Names and values are decoded into one buffer the
/// request keeps: a partition refills the same `Request` for every event ([`Request::read`]),
/// so the steady state allocates nothing.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Request {
    pub host: String,
    /// `(method, path template)`: the profile's key.
    pub key: (Method, String),
    /// The path as sent (no query), for explanations.
    pub path: String,
    /// Decoded names, back to back (UTF-8, so slicing them needs no check).
    names: String,
    /// Decoded values, back to back.
    buf: Vec<u8>,
    /// Per parameter: its name's span in `names`, its value's in `buf`.
    spans: Vec<(u32, u32, u32, u32)>,
    /// Each value's [`Shape`], in parameter order (see [`Request::finish`]).
    pub shapes: Vec<Shape>,
    /// More parameters than [`MAX_PARAMS`] were sent.
    pub truncated: bool,
    /// The multiset of parameter names, order left out (see [`Request::finish`]).
    pub combo: u64,
    /// Each parameter name's [`name_hash`], in parameter order.
    pub name_hashes: Vec<u64>,
    /// The media type, lowercased, without parameters (`application/json`); empty: none.
    content_type: String,
    /// The user agent's first product token (`Mozilla`, `curl`, `sqlmap`); empty: none.
    ua_family: String,
}

impl Request {
    /// Reads `ev` (kind `http`); `None` when it names no path.
    pub fn from_event(ev: &Event) -> Option<Self> {
        let mut req = Request::default();
        req.read(ev).then_some(req)
    }

    /// Refills this request from `ev`, keeping its buffers; false when `ev` names no path.
    pub fn read(&mut self, ev: &Event) -> bool {
        let Some(raw_path) = ev.attr_str("path") else {
            return false;
        };
        let (authority, path, inline_query) = split_target(raw_path);
        let host = ev.attr_str("host").or(authority).unwrap_or("");
        self.host.clear();
        self.host.push_str(host.trim());
        self.host.make_ascii_lowercase();
        self.key.0 = Method::parse(ev.attr_str("method").unwrap_or("GET"));
        template_into(path, &mut self.key.1);
        self.path.clear();
        self.path.push_str(path);
        self.names.clear();
        self.buf.clear();
        self.spans.clear();
        self.truncated = false;
        self.content_type.clear();
        if let Some(ct) = ev.attr_str("content_type") {
            let t = ct.split(';').next().unwrap_or("").trim();
            self.content_type.push_str(cut_str(t, 64));
            self.content_type.make_ascii_lowercase();
        }
        self.ua_family.clear();
        if let Some(ua) = ev.attr_str("user_agent") {
            let first = ua.trim().split([' ', '/', '(']).next().unwrap_or("");
            self.ua_family.push_str(cut_str(first, 32));
        }
        if let Some(q) = inline_query {
            self.read_form(q);
        }
        if let Some(q) = ev.attr_str("query") {
            self.read_form(q.strip_prefix('?').unwrap_or(q));
        }
        if let Some(body) = ev.attr_str("body") {
            self.read_body(body);
        }
        self.finish();
        true
    }

    /// A request from its parts (a finding's evidence), shapes included.
    pub fn from_parts<'a>(
        host: &str,
        key: (Method, String),
        path: &str,
        params: impl Iterator<Item = (&'a str, &'a [u8])>,
        content_type: Option<&str>,
        ua_family: Option<&str>,
    ) -> Self {
        let mut req = Request {
            host: host.to_owned(),
            key,
            path: path.to_owned(),
            content_type: content_type.unwrap_or("").to_owned(),
            ua_family: ua_family.unwrap_or("").to_owned(),
            ..Request::default()
        };
        for (name, value) in params {
            req.push(name.as_bytes(), value, false);
        }
        req.finish();
        req
    }

    /// Summarises every value once (judging and learning both read the shapes, which keep
    /// their buffers from request to request), and the combination of names: the sum of
    /// each name's FNV-1a (a name sent twice is another combination, as parameter pollution
    /// is).
    fn finish(&mut self) {
        self.shapes.resize_with(self.spans.len(), Shape::default);
        for (shape, &(_, _, v, end)) in self.shapes.iter_mut().zip(&self.spans) {
            shape.fill(&self.buf[v as usize..end as usize]);
        }
        let names = self.names.as_bytes();
        self.name_hashes.clear();
        self.name_hashes.extend(
            self.spans
                .iter()
                .map(|&(n, n_end, _, _)| name_hash(&names[n as usize..n_end as usize])),
        );
        self.combo = self
            .name_hashes
            .iter()
            .fold(0u64, |sum, &h| sum.wrapping_add(h));
    }

    pub fn method(&self) -> Method {
        self.key.0
    }

    pub fn template(&self) -> &str {
        &self.key.1
    }

    pub fn content_type(&self) -> Option<&str> {
        (!self.content_type.is_empty()).then_some(self.content_type.as_str())
    }

    pub fn ua_family(&self) -> Option<&str> {
        (!self.ua_family.is_empty()).then_some(self.ua_family.as_str())
    }

    /// `(name, decoded value)` in request order; a name may repeat.
    pub fn params(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.spans.iter().map(|&(n, n_end, v, end)| {
            let name = self.names.get(n as usize..n_end as usize).unwrap_or("");
            (name, &self.buf[v as usize..end as usize])
        })
    }

    pub fn param_count(&self) -> usize {
        self.spans.len()
    }

    /// Appends one parameter, percent-decoding name and value when `encoded`. Names are
    /// kept as UTF-8 (lossily) and cut at [`MAX_NAME`] bytes.
    fn push(&mut self, name: &[u8], value: &[u8], encoded: bool) {
        if self.spans.len() >= MAX_PARAMS {
            self.truncated = true;
            return;
        }
        // Names are decoded through the value buffer, then kept as (lossy) UTF-8.
        let start = self.buf.len();
        if encoded {
            decode_into(name, &mut self.buf);
        } else {
            self.buf.extend_from_slice(name);
        }
        let name_start = self.names.len();
        match std::str::from_utf8(&self.buf[start..]) {
            Ok(n) => self.names.push_str(cut_str(n, MAX_NAME)),
            Err(_) => {
                let fixed = String::from_utf8_lossy(&self.buf[start..]);
                self.names.push_str(cut_str(&fixed, MAX_NAME));
            }
        }
        self.buf.truncate(start);
        if encoded {
            decode_into(value, &mut self.buf);
        } else {
            self.buf.extend_from_slice(value);
        }
        let span = |x: usize| u32::try_from(x).unwrap_or(u32::MAX);
        self.spans.push((
            span(name_start),
            span(self.names.len()),
            span(start),
            span(self.buf.len()),
        ));
    }

    /// `a=1&b=2`, `+` as space, percent-decoded.
    fn read_form(&mut self, text: &str) {
        for pair in text.as_bytes().split(|&b| b == b'&') {
            if pair.is_empty() {
                continue;
            }
            match pair.iter().position(|&b| b == b'=') {
                Some(i) => self.push(&pair[..i], &pair[i + 1..], true),
                None => self.push(pair, b"", true),
            }
        }
    }

    fn read_body(&mut self, body: &str) {
        let body = cut_str(body, MAX_BODY);
        let trimmed = body.trim_start();
        let looks_json = trimmed.starts_with('{') || trimmed.starts_with('[');
        let ct = &self.content_type;
        // The common media type first: no substring search.
        let (json, form) = if ct == "application/x-www-form-urlencoded" {
            (false, true)
        } else {
            (
                ct.contains("json") || (ct.is_empty() && looks_json),
                ct.contains("x-www-form-urlencoded") || (ct.is_empty() && body.contains('=')),
            )
        };
        if json {
            match serde_json::from_str::<serde_json::Value>(body) {
                Ok(v) => self.flatten("", &v, 0),
                // Not JSON after all: the whole body is one value.
                Err(_) => self.push(b"(body)", body.as_bytes(), false),
            }
        } else if form {
            self.read_form(body.trim_end_matches(['\r', '\n']));
        } else if !body.is_empty() {
            self.push(b"(body)", body.as_bytes(), false);
        }
    }

    /// JSON objects to dotted names, array elements under `name[]`.
    fn flatten(&mut self, name: &str, v: &serde_json::Value, depth: usize) {
        use serde_json::Value;
        if depth > MAX_JSON_DEPTH {
            self.push(name.as_bytes(), v.to_string().as_bytes(), false);
            return;
        }
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    let child = if name.is_empty() {
                        k.clone()
                    } else {
                        format!("{name}.{k}")
                    };
                    self.flatten(cut_str(&child, MAX_NAME), v, depth + 1);
                }
            }
            Value::Array(items) => {
                let child = format!("{name}[]");
                for item in items {
                    self.flatten(&child, item, depth + 1);
                }
            }
            Value::String(s) => self.push(name.as_bytes(), s.as_bytes(), false),
            Value::Null => self.push(name.as_bytes(), b"null", false),
            other => self.push(name.as_bytes(), other.to_string().as_bytes(), false),
        }
    }
}

/// FNV-1a of a parameter name: combinations add them up, templates find names by them.
pub fn name_hash(name: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in name {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// `http://host:port/p?q` → (`host:port`, `/p`, `q`); `/p?q` → (none, `/p`, `q`).
fn split_target(raw: &str) -> (Option<&str>, &str, Option<&str>) {
    let (authority, rest) = match raw.split_once("://") {
        Some((_, after)) => match after.find('/') {
            Some(i) => (Some(&after[..i]), &after[i..]),
            None => (Some(after), "/"),
        },
        None => (None, raw),
    };
    let rest = rest.split('#').next().unwrap_or(rest);
    match rest.split_once('?') {
        Some((p, q)) => (authority, p, Some(q)),
        None => (authority, rest, None),
    }
}

/// The path with identifiers collapsed: all-digit segments to `{n}`, UUIDs to `{uuid}`,
/// long hex strings (hashes) to `{hex}`, long tokens mixing letters and digits to `{token}`.
pub fn template(path: &str) -> String {
    let mut out = String::new();
    template_into(path, &mut out);
    out
}

/// [`template`] into a reused string.
fn template_into(path: &str, out: &mut String) {
    out.clear();
    for (i, seg) in path.split('/').skip(1).enumerate() {
        if i == MAX_SEGMENTS {
            out.push_str("/…");
            break;
        }
        out.push('/');
        out.push_str(placeholder(seg).unwrap_or(seg));
        if out.len() > MAX_TEMPLATE {
            let cut = cut_str(out, MAX_TEMPLATE).len();
            out.truncate(cut);
            out.push('…');
            break;
        }
    }
    if out.is_empty() {
        out.push('/');
    }
}

fn placeholder(seg: &str) -> Option<&'static str> {
    let b = seg.as_bytes();
    if b.is_empty() {
        return None;
    }
    if b.iter().all(u8::is_ascii_digit) {
        return Some("{n}");
    }
    let hex = |s: &[u8]| s.iter().all(u8::is_ascii_hexdigit);
    if b.len() == 36
        && [8, 13, 18, 23].iter().all(|&i| b[i] == b'-')
        && b.split(|&c| c == b'-').all(hex)
    {
        return Some("{uuid}");
    }
    if b.len() >= 16 && hex(b) {
        return Some("{hex}");
    }
    let digits = b.iter().filter(|c| c.is_ascii_digit()).count();
    let token = b
        .iter()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_'));
    if b.len() >= 20 && token && digits >= 2 {
        return Some("{token}");
    }
    None
}

/// Percent-decoding to bytes, `+` as space; a `%` not followed by two hex digits stays.
pub fn decode(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    decode_into(s, &mut out);
    out
}

/// [`decode`], appended to `out`.
fn decode_into(s: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < s.len() => match (hexval(s[i + 1]), hexval(s[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
}

fn hexval(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a char boundary.
pub fn cut_str(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use antibody_core::{AttrValue, TenantId};

    fn http(attrs: &[(&str, &str)]) -> Event {
        Event {
            tenant: TenantId::new("t"),
            ts: 0,
            entity: "ip:1".into(),
            kind: "http".into(),
            metrics: vec![],
            attrs: attrs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), AttrValue::Str((*v).to_owned())))
                .collect(),
            id: None,
        }
    }

    #[test]
    fn identifiers_collapse_into_placeholders() {
        assert_eq!(template("/users/42/orders"), "/users/{n}/orders");
        assert_eq!(
            template("/o/123e4567-e89b-12d3-a456-426614174000"),
            "/o/{uuid}"
        );
        assert_eq!(
            template("/blob/d41d8cd98f00b204e9800998ecf8427e"),
            "/blob/{hex}"
        );
        assert_eq!(template("/s/AbCdEf0123456789xyzQ"), "/s/{token}");
        assert_eq!(template("/tienda1/index.jsp"), "/tienda1/index.jsp");
        assert_eq!(template(""), "/");
        assert!(template(&"/a".repeat(100)).ends_with('…'));
        assert!(template(&format!("/{}", "é".repeat(300))).len() <= MAX_TEMPLATE + 3);
    }

    #[test]
    fn reads_a_full_url_a_query_and_a_form_body() {
        let ev = http(&[
            ("method", "post"),
            (
                "path",
                "http://Shop.example:8080/tienda1/publico/anadir.jsp?x=%27a+b",
            ),
            (
                "content_type",
                "application/x-www-form-urlencoded; charset=x",
            ),
            ("body", "id=3&nombre=Vino+Rioja&B1=A%F1adir\r\n"),
            ("user_agent", "Mozilla/5.0 (compatible)"),
        ]);
        let r = Request::from_event(&ev).unwrap();
        assert_eq!(r.host, "shop.example:8080");
        assert_eq!(r.method(), Method::Post);
        assert_eq!(r.template(), "/tienda1/publico/anadir.jsp");
        let params: Vec<(&str, &[u8])> = r.params().collect();
        let names: Vec<&str> = params.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["x", "id", "nombre", "B1"]);
        assert_eq!(params[0].1, b"'a b");
        assert_eq!(params[3].1, b"A\xf1adir");
        assert_eq!(r.content_type(), Some("application/x-www-form-urlencoded"));
        assert_eq!(r.ua_family(), Some("Mozilla"));
        // Refilled from another event, nothing of the first stays.
        let mut again = r.clone();
        assert!(again.read(&http(&[("path", "/a/1")])));
        assert_eq!((again.template(), again.param_count()), ("/a/{n}", 0));
        assert_eq!(
            (again.content_type(), again.ua_family(), again.host.as_str()),
            (None, None, "")
        );
    }

    #[test]
    fn json_bodies_flatten_to_dotted_names() {
        let ev = http(&[
            ("path", "/api/v1/items/7"),
            ("content_type", "application/json"),
            ("body", r#"{"a":{"b":1,"c":["x","y"]},"d":null,"e":true}"#),
        ]);
        let r = Request::from_event(&ev).unwrap();
        assert_eq!(r.template(), "/api/v1/items/{n}");
        let got: Vec<(&str, &[u8])> = r.params().collect();
        assert_eq!(
            got,
            [
                ("a.b", &b"1"[..]),
                ("a.c[]", b"x"),
                ("a.c[]", b"y"),
                ("d", b"null"),
                ("e", b"true")
            ]
        );
    }

    #[test]
    fn decoding_keeps_broken_escapes() {
        assert_eq!(decode(b"%41%2"), b"A%2");
        assert_eq!(decode(b"%zz+%"), b"%zz %");
        assert_eq!(decode(b"%2527"), b"%27");
    }

    #[test]
    fn parameters_are_bounded() {
        let q: Vec<String> = (0..500).map(|i| format!("p{i}=1")).collect();
        let ev = http(&[("path", "/x"), ("query", &q.join("&"))]);
        let r = Request::from_event(&ev).unwrap();
        assert_eq!(r.param_count(), MAX_PARAMS);
        assert!(r.truncated);
        assert!(Request::from_event(&http(&[("method", "GET")])).is_none());
    }

    proptest::proptest! {
        #[test]
        fn any_request_parses_without_panicking(
            path in ".{0,300}", query in ".{0,300}", body in ".{0,300}", ct in ".{0,40}"
        ) {
            let ev = http(&[("path", &path), ("query", &query), ("body", &body), ("content_type", &ct)]);
            if let Some(r) = Request::from_event(&ev) {
                proptest::prop_assert!(r.param_count() <= MAX_PARAMS);
                proptest::prop_assert_eq!(r.shapes.len(), r.param_count());
                proptest::prop_assert!(r.template().starts_with('/'));
            }
        }
    }
}
