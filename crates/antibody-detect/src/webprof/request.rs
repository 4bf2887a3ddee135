//! What a web profile reads from an `http` event: the host, the method, the path and its
//! template, the parameters (query string, form body, JSON body flattened to dotted paths)
//! decoded to bytes, the media type and the user-agent family. Bounded: a request yields
//! at most [`MAX_PARAMS`] parameters, names of at most [`MAX_NAME`] bytes, and bodies are
//! read up to [`MAX_BODY`] bytes.

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
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
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
        match s.trim().to_ascii_uppercase().as_str() {
            "GET" | "" => Self::Get,
            "HEAD" => Self::Head,
            "POST" => Self::Post,
            "PUT" => Self::Put,
            "PATCH" => Self::Patch,
            "DELETE" => Self::Delete,
            "OPTIONS" => Self::Options,
            "TRACE" => Self::Trace,
            "CONNECT" => Self::Connect,
            _ => Self::Other,
        }
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

/// One request as the profiles see it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Request {
    pub host: String,
    pub method: Option<Method>,
    /// The path as sent (no query), for explanations.
    pub path: String,
    pub template: String,
    /// `(name, decoded value)` in request order; a name may repeat.
    pub params: Vec<(String, Vec<u8>)>,
    /// More parameters than [`MAX_PARAMS`] were sent.
    pub truncated: bool,
    /// The media type, lowercased, without parameters (`application/json`).
    pub content_type: Option<String>,
    /// The user agent's first product token (`Mozilla`, `curl`, `sqlmap`).
    pub ua_family: Option<String>,
}

impl Request {
    /// Reads `ev` (kind `http`); `None` when it names no path.
    pub fn from_event(ev: &Event) -> Option<Self> {
        let raw_path = ev.attr_str("path")?;
        let mut req = Request {
            method: Some(Method::parse(ev.attr_str("method").unwrap_or("GET"))),
            content_type: ev.attr_str("content_type").map(media_type),
            ua_family: ev.attr_str("user_agent").map(ua_family),
            ..Request::default()
        };
        let (authority, path, inline_query) = split_target(raw_path);
        let host = ev.attr_str("host").or(authority).unwrap_or("");
        req.host = host.trim().to_ascii_lowercase();
        req.path = path.to_owned();
        req.template = template(path);
        if let Some(q) = inline_query {
            req.read_form(q);
        }
        if let Some(q) = ev.attr_str("query") {
            req.read_form(q.strip_prefix('?').unwrap_or(q));
        }
        if let Some(body) = ev.attr_str("body") {
            req.read_body(body);
        }
        Some(req)
    }

    fn push(&mut self, name: String, value: Vec<u8>) {
        if self.params.len() >= MAX_PARAMS {
            self.truncated = true;
            return;
        }
        self.params.push((name, value));
    }

    /// `a=1&b=2`, `+` as space, percent-decoded.
    fn read_form(&mut self, text: &str) {
        for pair in text.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = String::from_utf8_lossy(&decode(name.as_bytes())).into_owned();
            self.push(cut_name(name), decode(value.as_bytes()));
        }
    }

    fn read_body(&mut self, body: &str) {
        let body = cut_str(body, MAX_BODY);
        let ct = self.content_type.as_deref().unwrap_or("");
        let trimmed = body.trim_start();
        let looks_json = trimmed.starts_with('{') || trimmed.starts_with('[');
        if ct.contains("json") || (ct.is_empty() && looks_json) {
            match serde_json::from_str::<serde_json::Value>(body) {
                Ok(v) => self.flatten("", &v, 0),
                // Not JSON after all: the whole body is one value.
                Err(_) => self.push("(body)".into(), body.as_bytes().to_vec()),
            }
        } else if ct.contains("x-www-form-urlencoded") || (ct.is_empty() && body.contains('=')) {
            self.read_form(body.trim_end_matches(['\r', '\n']));
        } else if !body.is_empty() {
            self.push("(body)".into(), body.as_bytes().to_vec());
        }
    }

    /// JSON objects to dotted names, array elements under `name[]`.
    fn flatten(&mut self, name: &str, v: &serde_json::Value, depth: usize) {
        use serde_json::Value;
        if depth > MAX_JSON_DEPTH {
            self.push(cut_name(name.to_owned()), v.to_string().into_bytes());
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
                    self.flatten(&cut_name(child), v, depth + 1);
                }
            }
            Value::Array(items) => {
                let child = format!("{name}[]");
                for item in items {
                    self.flatten(&child, item, depth + 1);
                }
            }
            Value::String(s) => self.push(name.to_owned(), s.as_bytes().to_vec()),
            Value::Null => self.push(name.to_owned(), b"null".to_vec()),
            other => self.push(name.to_owned(), other.to_string().into_bytes()),
        }
    }
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
    let mut out = String::with_capacity(path.len().min(MAX_TEMPLATE));
    for (i, seg) in path.split('/').skip(1).enumerate() {
        if i == MAX_SEGMENTS {
            out.push_str("/…");
            break;
        }
        out.push('/');
        out.push_str(placeholder(seg).unwrap_or(seg));
        if out.len() > MAX_TEMPLATE {
            let cut = cut_str(&out, MAX_TEMPLATE).len();
            out.truncate(cut);
            out.push('…');
            break;
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    out
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
    out
}

fn hexval(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn media_type(ct: &str) -> String {
    let t = ct.split(';').next().unwrap_or("").trim();
    cut_str(t, 64).to_ascii_lowercase()
}

fn ua_family(ua: &str) -> String {
    let first = ua.trim().split([' ', '/', '(']).next().unwrap_or("");
    cut_str(first, 32).to_owned()
}

fn cut_name(mut name: String) -> String {
    let cut = cut_str(&name, MAX_NAME).len();
    name.truncate(cut);
    name
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
        assert_eq!(r.method, Some(Method::Post));
        assert_eq!(r.template, "/tienda1/publico/anadir.jsp");
        let names: Vec<&str> = r.params.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["x", "id", "nombre", "B1"]);
        assert_eq!(r.params[0].1, b"'a b");
        assert_eq!(r.params[3].1, b"A\xf1adir");
        assert_eq!(
            r.content_type.as_deref(),
            Some("application/x-www-form-urlencoded")
        );
        assert_eq!(r.ua_family.as_deref(), Some("Mozilla"));
    }

    #[test]
    fn json_bodies_flatten_to_dotted_names() {
        let ev = http(&[
            ("path", "/api/v1/items/7"),
            ("content_type", "application/json"),
            ("body", r#"{"a":{"b":1,"c":["x","y"]},"d":null,"e":true}"#),
        ]);
        let r = Request::from_event(&ev).unwrap();
        assert_eq!(r.template, "/api/v1/items/{n}");
        let got: Vec<(&str, &[u8])> = r
            .params
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_slice()))
            .collect();
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
        assert_eq!(r.params.len(), MAX_PARAMS);
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
                proptest::prop_assert!(r.params.len() <= MAX_PARAMS);
                proptest::prop_assert!(r.template.starts_with('/'));
            }
        }
    }
}
