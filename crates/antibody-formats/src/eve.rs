//! Suricata EVE JSON (one record per line, as Suricata writes `eve.json`) → events.
//!
//! | `event_type` | kind | attrs | metrics |
//! |---|---|---|---|
//! | `alert` | `alert` | `signature`, `signature_id`, `category`, `action`, + the flow attrs, + `host`/`method`/`path`/`query`/`user_agent`/`status` when the alert carries `http` | `severity` (Suricata's: 1 is the most severe) |
//! | `flow`, `netflow` | `net` | the flow attrs, `state` | `bytes_out` (to server), `bytes_in` (to client), `packets` |
//! | `http` | `http` | the flow attrs, `method`, `path`, `query`, `host`, `user_agent`, `status` | `bytes_out` (response length) |
//! | `dns` | `dns` | the flow attrs, `dns_type` (`query`/`answer`), `rrname`, `rrtype`, `rcode` | — |
//!
//! The flow attrs are `src_ip`, `src_port`, `dst_ip`, `dst_port`, `proto`, `app_proto`. The
//! entity is `ip:<src_ip>`, the side that started the flow: the one to watch, rate-limit or
//! block. A record without `src_ip` falls back to `host:<dest_ip>`. Other event types
//! (`stats`, `tls`, `fileinfo`, `anomaly`, …) are skipped.

use crate::ParseError;
use antibody_core::clock::parse_rfc3339;
use antibody_core::{AttrValue, Event, TenantId, TimestampMs};
use serde_json::{Map, Value};

/// Turns EVE lines into events for one tenant. Stateless.
#[derive(Debug, Clone)]
pub struct EveParser {
    tenant: TenantId,
}

type Obj = Map<String, Value>;

/// Events being assembled: attrs and metrics in the order they are found.
#[derive(Default)]
struct Fields {
    attrs: Vec<(String, AttrValue)>,
    metrics: Vec<(String, f64)>,
}

impl Fields {
    /// Copies `src[from]` as attr `to` when it is a string, number or boolean.
    fn attr(&mut self, to: &str, src: &Obj, from: &str) {
        let v = match src.get(from) {
            Some(Value::String(s)) if !s.is_empty() => AttrValue::Str(s.clone()),
            Some(Value::Number(n)) => match n.as_f64() {
                Some(f) => AttrValue::Num(f),
                None => return,
            },
            Some(Value::Bool(b)) => AttrValue::Bool(*b),
            _ => return,
        };
        self.attrs.push((to.to_owned(), v));
    }

    fn metric(&mut self, to: &str, value: Option<f64>) {
        if let Some(v) = value.filter(|v| v.is_finite()) {
            self.metrics.push((to.to_owned(), v));
        }
    }
}

impl EveParser {
    pub fn new(tenant: TenantId) -> Self {
        Self { tenant }
    }

    /// `Ok(None)` for a valid EVE record of a type that maps to no event.
    pub fn parse_line(&self, line: &str) -> Result<Option<Event>, ParseError> {
        let value: Value =
            serde_json::from_str(line).map_err(|e| ParseError::Json(e.to_string()))?;
        let Value::Object(rec) = value else {
            return Err(ParseError::Eve("not a JSON object"));
        };
        let event_type = rec
            .get("event_type")
            .and_then(Value::as_str)
            .ok_or(ParseError::Eve("missing event_type"))?;
        let stamp = rec
            .get("timestamp")
            .and_then(Value::as_str)
            .ok_or(ParseError::Eve("missing timestamp"))?;
        let ts = parse_timestamp(stamp).ok_or_else(|| ParseError::Timestamp(stamp.to_owned()))?;
        let mut f = Fields::default();
        let kind = match event_type {
            "alert" => alert(&rec, &mut f),
            "flow" | "netflow" => flow(&rec, &mut f),
            "http" => http(&rec, &mut f),
            "dns" => dns(&rec, &mut f),
            _ => return Ok(None),
        };
        let entity = match (str_field(&rec, "src_ip"), str_field(&rec, "dest_ip")) {
            (Some(src), _) => format!("ip:{src}"),
            (None, Some(dst)) => format!("host:{dst}"),
            (None, None) => return Err(ParseError::Eve("neither src_ip nor dest_ip")),
        };
        Ok(Some(Event {
            tenant: self.tenant.clone(),
            ts,
            entity,
            kind: kind.into(),
            metrics: f.metrics,
            attrs: f.attrs,
            id: None,
        }))
    }
}

/// True when `line` is a JSON object with an `event_type` and a `timestamp`.
pub fn looks_like(line: &str) -> bool {
    matches!(serde_json::from_str::<Value>(line), Ok(Value::Object(o))
        if o.contains_key("event_type") && o.contains_key("timestamp"))
}

fn str_field<'a>(o: &'a Obj, k: &str) -> Option<&'a str> {
    o.get(k).and_then(Value::as_str).filter(|s| !s.is_empty())
}

fn obj<'a>(o: &'a Obj, k: &str) -> Option<&'a Obj> {
    o.get(k).and_then(Value::as_object)
}

fn flow_attrs(rec: &Obj, f: &mut Fields) {
    f.attr("src_ip", rec, "src_ip");
    f.attr("src_port", rec, "src_port");
    f.attr("dst_ip", rec, "dest_ip");
    f.attr("dst_port", rec, "dest_port");
    f.attr("proto", rec, "proto");
    f.attr("app_proto", rec, "app_proto");
}

fn http_attrs(http: &Obj, f: &mut Fields) {
    f.attr("method", http, "http_method");
    if let Some(url) = str_field(http, "url") {
        let (path, query) = url.split_once('?').unwrap_or((url, ""));
        f.attrs
            .push(("path".into(), AttrValue::Str(path.to_owned())));
        if !query.is_empty() {
            f.attrs
                .push(("query".into(), AttrValue::Str(query.to_owned())));
        }
    }
    f.attr("host", http, "hostname");
    f.attr("user_agent", http, "http_user_agent");
    f.attr("status", http, "status");
}

fn alert(rec: &Obj, f: &mut Fields) -> &'static str {
    if let Some(a) = obj(rec, "alert") {
        f.attr("signature", a, "signature");
        f.attr("signature_id", a, "signature_id");
        f.attr("category", a, "category");
        f.attr("action", a, "action");
        f.metric("severity", a.get("severity").and_then(Value::as_f64));
    }
    flow_attrs(rec, f);
    if let Some(h) = obj(rec, "http") {
        http_attrs(h, f);
    }
    "alert"
}

fn flow(rec: &Obj, f: &mut Fields) -> &'static str {
    flow_attrs(rec, f);
    let fl = rec
        .get("flow")
        .or_else(|| rec.get("netflow"))
        .and_then(Value::as_object);
    if let Some(fl) = fl {
        f.attr("state", fl, "state");
        let n = |k: &str| fl.get(k).and_then(Value::as_f64);
        f.metric("bytes_out", n("bytes_toserver").or_else(|| n("bytes")));
        f.metric("bytes_in", n("bytes_toclient"));
        let packets = match (n("pkts_toserver"), n("pkts_toclient")) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b).or_else(|| n("pkts")),
        };
        f.metric("packets", packets);
    }
    "net"
}

fn http(rec: &Obj, f: &mut Fields) -> &'static str {
    flow_attrs(rec, f);
    if let Some(h) = obj(rec, "http") {
        http_attrs(h, f);
        f.metric("bytes_out", h.get("length").and_then(Value::as_f64));
    }
    "http"
}

fn dns(rec: &Obj, f: &mut Fields) -> &'static str {
    flow_attrs(rec, f);
    if let Some(d) = obj(rec, "dns") {
        f.attr("dns_type", d, "type");
        f.attr("rrname", d, "rrname");
        f.attr("rrtype", d, "rrtype");
        f.attr("rcode", d, "rcode");
    }
    "dns"
}

/// EVE writes `2018-03-24T14:37:19.037299-0600` (offset without a colon), and some sensors
/// no offset at all (taken as UTC); RFC 3339 proper is accepted too.
fn parse_timestamp(s: &str) -> Option<TimestampMs> {
    let frac_end = s
        .char_indices()
        .skip(19)
        .find(|&(_, c)| !(c.is_ascii_digit() || c == '.'))
        .map_or(s.len(), |(i, _)| i);
    let (head, zone) = s.split_at(frac_end);
    match zone.as_bytes() {
        [] => parse_rfc3339(&format!("{head}Z")),
        [sign @ (b'+' | b'-'), h1, h2, m1, m2]
            if [h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit()) =>
        {
            let (sign, h, m) = (char::from(*sign), &zone[1..3], &zone[3..5]);
            parse_rfc3339(&format!("{head}{sign}{h}:{m}"))
        }
        _ => parse_rfc3339(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(line: &str) -> Option<Event> {
        EveParser::new(TenantId::new("t")).parse_line(line).unwrap()
    }

    fn text(ev: &Event, k: &str) -> Option<String> {
        ev.attr(k).map(|v| v.to_text().into_owned())
    }

    // Alert lines from FrankHassanabad/suricata-sample-data (MIT), wrccdc-2018 and honeypot-2018.
    const ALERT: &str = r#"{"timestamp":"2018-03-24T14:37:19.037299-0600","flow_id":928532049924531,"pcap_cnt":169577,"event_type":"alert","src_ip":"0.0.0.0","src_port":26078,"dest_ip":"10.47.8.150","dest_port":22,"proto":"TCP","alert":{"action":"allowed","gid":1,"signature_id":2001219,"rev":20,"signature":"ET SCAN Potential SSH Scan","category":"Attempted Information Leak","severity":2},"flow":{"pkts_toserver":1,"pkts_toclient":0,"bytes_toserver":74,"bytes_toclient":0,"start":"2018-03-24T14:37:19.037299-0600"}}"#;
    const NO_ZONE: &str = r#"{"timestamp":"2019-01-02T03:50:11.315110","flow_id":52710912,"in_iface":"eth0","event_type":"alert","src_ip":"8.42.77.171","src_port":49678,"dest_ip":"138.68.3.71","dest_port":22,"proto":"TCP","alert":{"action":"allowed","gid":1,"signature_id":2001219,"rev":19,"signature":"ET SCAN Potential SSH Scan","category":"Attempted Information Leak","severity":2}}"#;

    #[test]
    fn alert_maps_signature_and_flow() {
        let ev = parse(ALERT).unwrap();
        assert_eq!(
            (ev.kind.as_str(), ev.entity.as_str()),
            ("alert", "ip:0.0.0.0")
        );
        assert_eq!(ev.ts, parse_rfc3339("2018-03-24T20:37:19.037Z").unwrap());
        assert_eq!(
            text(&ev, "signature").as_deref(),
            Some("ET SCAN Potential SSH Scan")
        );
        assert_eq!(
            text(&ev, "category").as_deref(),
            Some("Attempted Information Leak")
        );
        assert_eq!(text(&ev, "dst_ip").as_deref(), Some("10.47.8.150"));
        assert_eq!(ev.attr("dst_port"), Some(&AttrValue::Num(22.0)));
        assert_eq!(text(&ev, "proto").as_deref(), Some("TCP"));
        assert_eq!(ev.metric("severity"), Some(2.0));
    }

    #[test]
    fn timestamp_without_zone_is_utc() {
        let ev = parse(NO_ZONE).unwrap();
        assert_eq!(ev.ts, parse_rfc3339("2019-01-02T03:50:11.315Z").unwrap());
        assert_eq!(ev.entity, "ip:8.42.77.171");
        assert_eq!(
            parse_timestamp("2019-01-02T03:50:11Z"),
            parse_rfc3339("2019-01-02T03:50:11Z")
        );
        assert_eq!(
            parse_timestamp("2019-01-02T03:50:11+01:00"),
            parse_rfc3339("2019-01-02T02:50:11Z")
        );
        assert_eq!(parse_timestamp("2019-01-02T03:50:11+0x00"), None);
    }

    #[test]
    fn alert_with_http_carries_request_fields() {
        let line = r#"{"timestamp":"2015-06-01T10:00:00.000000+0000","event_type":"alert","src_ip":"10.0.0.1","src_port":5000,"dest_ip":"10.0.0.2","dest_port":80,"proto":"TCP","app_proto":"http","alert":{"signature":"ET WEB_SERVER SQL Injection","category":"Web Application Attack","severity":1},"http":{"hostname":"shop","url":"/item.php?id=1%20or%201=1","http_user_agent":"sqlmap","http_method":"GET","status":200,"length":512}}"#;
        let ev = parse(line).unwrap();
        assert_eq!(text(&ev, "path").as_deref(), Some("/item.php"));
        assert_eq!(text(&ev, "query").as_deref(), Some("id=1%20or%201=1"));
        assert_eq!(text(&ev, "host").as_deref(), Some("shop"));
        assert_eq!(text(&ev, "status").as_deref(), Some("200"));
        assert_eq!(text(&ev, "app_proto").as_deref(), Some("http"));
    }

    #[test]
    fn flow_http_and_dns() {
        let flow = r#"{"timestamp":"2026-01-01T00:00:00Z","event_type":"flow","src_ip":"10.0.0.1","dest_ip":"10.0.0.2","dest_port":443,"proto":"TCP","flow":{"pkts_toserver":3,"pkts_toclient":2,"bytes_toserver":300,"bytes_toclient":2000,"state":"closed"}}"#;
        let ev = parse(flow).unwrap();
        assert_eq!(ev.kind, "net");
        assert_eq!(
            ev.metrics,
            vec![
                ("bytes_out".into(), 300.0),
                ("bytes_in".into(), 2000.0),
                ("packets".into(), 5.0)
            ]
        );
        assert_eq!(text(&ev, "state").as_deref(), Some("closed"));

        let http = r#"{"timestamp":"2026-01-01T00:00:00Z","event_type":"http","src_ip":"10.0.0.1","dest_ip":"10.0.0.2","http":{"http_method":"POST","url":"/login","length":12}}"#;
        let ev = parse(http).unwrap();
        assert_eq!(
            (ev.kind.as_str(), text(&ev, "method").as_deref()),
            ("http", Some("POST"))
        );
        assert_eq!(ev.metric("bytes_out"), Some(12.0));

        let dns = r#"{"timestamp":"2026-01-01T00:00:00Z","event_type":"dns","src_ip":"10.0.0.1","dest_ip":"10.0.0.53","dns":{"type":"query","rrname":"evil.example","rrtype":"TXT"}}"#;
        let ev = parse(dns).unwrap();
        assert_eq!(
            (ev.kind.as_str(), text(&ev, "rrname").as_deref()),
            ("dns", Some("evil.example"))
        );
    }

    #[test]
    fn other_types_skip_and_bad_records_fail() {
        assert_eq!(
            parse(r#"{"timestamp":"2026-01-01T00:00:00Z","event_type":"stats","stats":{}}"#),
            None
        );
        let p = EveParser::new(TenantId::new("t"));
        for bad in [
            "",
            "[]",
            "{",
            r#"{"timestamp":"2026-01-01T00:00:00Z"}"#,
            r#"{"event_type":"alert","src_ip":"1.2.3.4"}"#,
            r#"{"timestamp":"yesterday","event_type":"alert","src_ip":"1.2.3.4"}"#,
            r#"{"timestamp":"2026-01-01T00:00:00Z","event_type":"alert"}"#,
        ] {
            assert!(p.parse_line(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sniffing() {
        assert!(looks_like(ALERT));
        assert!(!looks_like(r#"{"entity":"host:a","kind":"auth"}"#));
        assert!(!looks_like("Dec 10 06:55:46 LabSZ sshd[1]: x"));
    }

    proptest! {
        #[test]
        fn never_panics(line in "\\PC{0,120}") {
            let _ = EveParser::new(TenantId::new("t")).parse_line(&line);
        }

        #[test]
        fn timestamps_never_panic(ts in "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]{8,14}[-+Z0-9:]{0,6}") {
            let _ = parse_timestamp(&ts);
        }

        #[test]
        fn any_field_types_never_panic(
            v in prop_oneof![Just("1".to_string()), Just("\"x\"".to_string()), Just("null".to_string()),
                Just("[1]".to_string()), Just("{\"a\":1}".to_string()), Just("1e308".to_string())],
            ty in prop_oneof![Just("alert"), Just("flow"), Just("http"), Just("dns")],
        ) {
            let line = format!(r#"{{"timestamp":"2026-01-01T00:00:00Z","event_type":"{ty}","src_ip":{v},"dest_ip":{v},"dest_port":{v},"alert":{v},"flow":{v},"http":{v},"dns":{v}}}"#);
            let _ = EveParser::new(TenantId::new("t")).parse_line(&line);
        }
    }
}
