//! Raw HTTP/1.x requests, one after another (request line, header lines, a blank line, a
//! body of `Content-Length` bytes), as web-server captures and the CSIC 2010 benchmark hold
//! them → `http` events. The entity is `ip:<X-Forwarded-For>` when the request names its
//! client, else `service:<Host>`. Line ends may be CRLF or LF; blank lines between requests
//! are skipped. Never panics: a request that cannot be read is a [`ParseError`] and the
//! reader moves on to the next request line.

use crate::ParseError;
use antibody_core::{AttrValue, Event, TenantId, TimestampMs};

/// Header bytes read per request before it is refused.
const MAX_HEADER_BYTES: usize = 64 << 10;
/// Body bytes kept per request (the rest is skipped).
const MAX_BODY_BYTES: usize = 1 << 20;

/// Reads requests one after another from a buffer.
pub struct RawHttpReader<'a> {
    buf: &'a [u8],
    pos: usize,
}

/// One request as sent.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RawRequest {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `http` event of this request, at `ts`.
    pub fn to_event(&self, tenant: TenantId, ts: TimestampMs) -> Event {
        let (path, query) = match self.target.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (self.target.as_str(), None),
        };
        let host = self.header("host").unwrap_or("");
        let entity = match self.header("x-forwarded-for") {
            Some(ip) => format!("ip:{}", ip.split(',').next().unwrap_or("").trim()),
            None => format!("service:{host}"),
        };
        let mut attrs = vec![
            ("method".to_owned(), self.method.clone()),
            ("path".to_owned(), path.to_owned()),
        ];
        let mut push = |k: &str, v: Option<&str>| {
            if let Some(v) = v {
                attrs.push((k.to_owned(), v.to_owned()));
            }
        };
        push("query", query);
        push("host", self.header("host"));
        push("user_agent", self.header("user-agent"));
        push("content_type", self.header("content-type"));
        push(
            "src_ip",
            self.header("x-forwarded-for")
                .map(|v| v.split(',').next().unwrap_or("").trim()),
        );
        if !self.body.is_empty() {
            attrs.push(("body".to_owned(), latin1(&self.body)));
        }
        Event {
            tenant,
            ts,
            entity,
            kind: "http".into(),
            metrics: vec![],
            attrs: attrs
                .into_iter()
                .map(|(k, v)| (k, AttrValue::Str(v)))
                .collect(),
            id: None,
        }
    }
}

/// Bytes as Latin-1 text: every byte one char, so nothing is lost or replaced.
fn latin1(b: &[u8]) -> String {
    b.iter().map(|&c| char::from(c)).collect()
}

impl<'a> RawHttpReader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// The next line (without its line end), or `None` at the end.
    fn line(&mut self) -> Option<&'a [u8]> {
        if self.pos >= self.buf.len() {
            return None;
        }
        let rest = &self.buf[self.pos..];
        let (line, used) = match rest.iter().position(|&c| c == b'\n') {
            Some(i) => (&rest[..i], i + 1),
            None => (rest, rest.len()),
        };
        self.pos += used;
        Some(line.strip_suffix(b"\r").unwrap_or(line))
    }

    fn request(&mut self, first: &[u8]) -> Result<RawRequest, ParseError> {
        let first = latin1(first);
        let mut parts = first.split_whitespace();
        let (Some(method), Some(target), Some(version)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(ParseError::Http(
                "a request line is `METHOD target HTTP/1.x`",
            ));
        };
        if !version.starts_with("HTTP/") || !method.bytes().all(|c| c.is_ascii_alphabetic()) {
            return Err(ParseError::Http(
                "a request line is `METHOD target HTTP/1.x`",
            ));
        }
        let mut req = RawRequest {
            method: method.to_owned(),
            target: target.to_owned(),
            ..RawRequest::default()
        };
        let mut header_bytes = 0;
        while let Some(line) = self.line() {
            if line.is_empty() {
                break;
            }
            header_bytes += line.len();
            if header_bytes > MAX_HEADER_BYTES {
                return Err(ParseError::Http("headers over 64 KiB"));
            }
            let line = latin1(line);
            let Some((k, v)) = line.split_once(':') else {
                return Err(ParseError::Http("a header line without `:`"));
            };
            req.headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
        let len = match req.header("content-length") {
            Some(v) => v
                .trim()
                .parse::<usize>()
                .map_err(|_| ParseError::Http("Content-Length is not a number"))?,
            None => 0,
        };
        let end = self.pos.saturating_add(len).min(self.buf.len());
        let body = &self.buf[self.pos..end];
        req.body = body[..body.len().min(MAX_BODY_BYTES)].to_vec();
        self.pos = end;
        Ok(req)
    }
}

impl Iterator for RawHttpReader<'_> {
    type Item = Result<RawRequest, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let line = self.line()?;
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return Some(self.request(line));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: &[u8] = b"GET http://localhost:8080/tienda1/index.jsp?a=1 HTTP/1.1\r\nUser-Agent: Mozilla/5.0 (compatible)\r\nHost: localhost:8080\r\n\r\n\r\nPOST /tienda1/publico/anadir.jsp HTTP/1.1\r\nHost: localhost:8080\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 13\r\nX-Forwarded-For: 203.0.113.9, 10.0.0.1\r\n\r\nid=3&B1=A%F1\xe9\r\n\r\n";

    #[test]
    fn reads_requests_with_and_without_bodies() {
        let reqs: Vec<RawRequest> = RawHttpReader::new(TWO).map(Result::unwrap).collect();
        assert_eq!(reqs.len(), 2);
        assert_eq!(
            reqs[0].target,
            "http://localhost:8080/tienda1/index.jsp?a=1"
        );
        assert_eq!(reqs[1].body, b"id=3&B1=A%F1\xe9");
        let ev = reqs[1].to_event(TenantId::new("t"), 5);
        assert_eq!(ev.entity, "ip:203.0.113.9");
        assert_eq!(ev.attr_str("body"), Some("id=3&B1=A%F1é"));
        assert_eq!(
            ev.attr_str("content_type"),
            Some("application/x-www-form-urlencoded")
        );
        let ev = reqs[0].to_event(TenantId::new("t"), 5);
        assert_eq!(ev.entity, "service:localhost:8080");
        assert_eq!(ev.attr_str("query"), Some("a=1"));
        assert_eq!(ev.attr_str("user_agent"), Some("Mozilla/5.0 (compatible)"));
    }

    #[test]
    fn bad_requests_are_errors_and_the_reader_moves_on() {
        let text =
            b"NOT A REQUEST\nGET / HTTP/1.1\nHost: a\nContent-Length: x\n\nGET /ok HTTP/1.0\n\n";
        let got: Vec<bool> = RawHttpReader::new(text).map(|r| r.is_ok()).collect();
        assert_eq!(got, [false, false, true]);
        let short = b"POST / HTTP/1.1\r\nContent-Length: 999\r\n\r\nab";
        let req = RawHttpReader::new(short).next().unwrap().unwrap();
        assert_eq!(req.body, b"ab");
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_read_without_panicking(bytes in proptest::collection::vec(0u8..=255, 0..512)) {
            for req in RawHttpReader::new(&bytes).take(1000).flatten() {
                let _ = req.to_event(TenantId::new("t"), 0);
            }
        }
    }
}
